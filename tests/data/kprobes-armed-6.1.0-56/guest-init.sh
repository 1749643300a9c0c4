# The guest's part (a scripts/qemu-boot fragment: busybox, /proc, /sys, debugfs and tracefs are
# there): define the kprobe events of /probes, enable them all, run the workload (which fires
# the trigger probe), then print what the kernel counted and said.
cd /sys/kernel/tracing
echo ===DEFINE===
while read -r line; do
  [ -z "$line" ] && continue
  if echo "$line" >> kprobe_events 2>/tmp/err; then echo "DEFINED $line"; else echo "REFUSED $line: $(cat /tmp/err)"; fi
done < /probes
echo ===ENABLE===
for e in events/kprobes/*/enable; do
  if echo 1 > "$e" 2>/tmp/err; then echo "ENABLED $e"; else echo "NOT-ENABLED $e: $(cat /tmp/err)"; fi
done
echo ===RUN===
i=0
while [ $i -lt 20 ]; do cat /proc/version > /dev/null; i=$((i + 1)); done
echo ===LATE===
# a probe defined now runs register_kprobe (and its inlined get_kprobe) under the armed probes
if echo 'p:late vfs_write' >> kprobe_events 2>/tmp/err; then echo "DEFINED p:late vfs_write"; else echo "REFUSED p:late: $(cat /tmp/err)"; fi
echo 0 > events/kprobes/enable
echo ===PROFILE===
cat kprobe_profile
echo ===DMESG===
dmesg | grep -iE 'kprobe|recurs|bug|warn|unrecoverable|panic|oops|stack' | grep -v 'Command line'
echo ===END===

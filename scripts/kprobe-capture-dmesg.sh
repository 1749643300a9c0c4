# A scripts/qemu-boot fragment (busybox sh, in the guest), scripts/kprobe-capture.sh's with the
# kernel's own words: each refused definition's answer line ends with ` | dmesg: <line>`, the
# last kernel log line the attempt printed (arch_prepare_kprobe's printk, trace_kprobe's "Could
# not probe notrace function" …), or ` | dmesg:` when it printed none. The log is cleared before
# each definition (dmesg -c).
t=/sys/kernel/tracing
echo ===BEGIN available_filter_functions===; cat $t/available_filter_functions; echo ===END available_filter_functions===
echo ===BEGIN kprobes_blacklist===; cat /sys/kernel/debug/kprobes/blacklist; echo ===END kprobes_blacklist===
echo ===BEGIN cpuinfo===; cat /proc/cpuinfo; echo ===END cpuinfo===
echo ===BEGIN dmesg===; dmesg -c | grep -i -e kprobe -e 'cpu features' -e 'cpu_features' -e 'hash\|radix' -e 'ftrace'; echo ===END dmesg===
echo ===BEGIN kprobe_events===
echo > $t/error_log
while read -r id target; do
  [ -n "$id" ] || continue
  dmesg -c > /dev/null
  err=$( { echo "p:ps/$id $target" >> $t/kprobe_events; } 2>&1 )
  if [ $? -eq 0 ]; then
    echo "$id $target ok"
    echo "-:ps/$id" >> $t/kprobe_events
  else
    why=$(grep -o 'error: .*' $t/error_log | tail -n 1)
    said=$(dmesg -c | tail -n 1 | sed 's/^\[[^]]*\] //')
    echo "$id $target ${err##*: } | ${why#error: } | dmesg: $said"
    echo > $t/error_log
  fi
done < /probes
echo ===END kprobe_events===

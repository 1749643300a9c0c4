# A scripts/qemu-boot fragment (busybox sh, in the guest): the tracing files the kernel itself
# lists, then its answer to a kprobe_events definition for each line `ID TARGET` of /probes
# (TARGET: SYM+0xOFF or 0xADDRESS). Each definition is written alone and removed again; the
# answer line is `ID TARGET ok`, or `ID TARGET <write error> | <trace_kprobe error_log line>`.
t=/sys/kernel/tracing
echo ===BEGIN available_filter_functions===; cat $t/available_filter_functions; echo ===END available_filter_functions===
echo ===BEGIN kprobes_blacklist===; cat /sys/kernel/debug/kprobes/blacklist; echo ===END kprobes_blacklist===
echo ===BEGIN cpuinfo===; cat /proc/cpuinfo; echo ===END cpuinfo===
echo ===BEGIN kprobe_events===
echo > $t/error_log
while read -r id target; do
  [ -n "$id" ] || continue
  err=$( { echo "p:ps/$id $target" >> $t/kprobe_events; } 2>&1 )
  if [ $? -eq 0 ]; then
    echo "$id $target ok"
    echo "-:ps/$id" >> $t/kprobe_events
  else
    why=$(grep -o 'error: .*' $t/error_log | tail -n 1)
    echo "$id $target ${err##*: } | ${why#error: }"
    echo > $t/error_log
  fi
done < /probes
echo ===END kprobe_events===
echo ===BEGIN dmesg===; dmesg | grep -i -e kprobe -e 'CPU features' -e alternatives -e 'CPU0: Booted'; echo ===END dmesg===

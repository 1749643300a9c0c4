#!/bin/sh
mount -t proc proc /proc; mount -t sysfs sys /sys
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
for m in crc32c_generic libcrc32c nfnetlink nf_tables irqbypass kvm; do insmod /mods/$m.ko || echo "INSMOD-FAILED $m"; done
echo ===MODS-BEGIN===; cat /proc/modules; echo ===MODS-END===
echo ===BL-BEGIN===; cat /sys/kernel/debug/kprobes/blacklist; echo ===BL-END===
echo ===AFF-BEGIN===; grep '\[' /sys/kernel/tracing/available_filter_functions; echo ===AFF-END===
echo ===KALLSYMS-BEGIN===; grep -E '\[(kvm|nf_tables)\]' /proc/kallsyms; echo ===KALLSYMS-END===
echo ===KPE-BEGIN===
n=0
while read spec; do
  n=$((n+1))
  if echo "p:patchscope/p$n $spec" >> /sys/kernel/tracing/kprobe_events 2>/dev/null; then echo "ACCEPTED $spec"; else echo "REFUSED $spec"; fi
done < /points.txt
echo ===KPE-END===
echo ===ERRLOG-BEGIN===; cat /sys/kernel/tracing/error_log; echo ===ERRLOG-END===
echo ===EVENTS-BEGIN===; cat /sys/kernel/tracing/kprobe_events; echo ===EVENTS-END===
poweroff -f

# A module's function of a vmlinux function's name, as the booted kernel resolves it (run by
# scripts/qemu-boot with the modules given by -i; see README.md "Names a module shares").
try() {  # $1: a label; $2: the kprobe_events definition
  if echo "$2" >> /sys/kernel/tracing/kprobe_events 2>/dev/null; then echo "$1 ACCEPTED ${2#* }"; else echo "$1 REFUSED ${2#* }"; fi
}
n=0
ask() { for spec in "$@"; do n=$((n+1)); try "$phase" "p:shadow/p$n $spec"; done; }
echo ===BEGIN kprobe_events_shadow===
phase=before ask kvm_resume kvm_suspend kvm_vcpu_ioctl
for m in irqbypass kvm; do insmod /$m.ko || echo "INSMOD-FAILED $m"; done
phase=loaded ask kvm_resume kvm_suspend kvm:kvm_resume kvm:kvm_suspend kvm_vcpu_ioctl kvm:kvm_vcpu_ioctl
echo ===END kprobe_events_shadow===
echo ===BEGIN kallsyms_shadow===
grep -E ' (kvm_resume|kvm_suspend|kvm_vcpu_ioctl)( |$)' /proc/kallsyms
echo ===END kallsyms_shadow===
echo ===BEGIN kprobes_list_shadow===
cat /sys/kernel/debug/kprobes/list
echo ===END kprobes_list_shadow===
echo ===BEGIN error_log_shadow===
cat /sys/kernel/tracing/error_log
echo ===END error_log_shadow===

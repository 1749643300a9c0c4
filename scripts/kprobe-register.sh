# A scripts/qemu-boot fragment (busybox sh, in the guest): register_kprobe's own answers, asked by
# the kpcheck module (scripts/kpcheck, built against the booted kernel's headers) for each
# address of /regaddrs and each name of /regsyms, 200 at a time; its init fails on purpose, so
# nothing stays loaded. Prints the module's `kpcheck a ADDR RET` / `kpcheck s NAME ADDR RET`
# lines, each followed by the kernel log lines the attempt printed (arch_prepare_kprobe's).
echo ===BEGIN register_kprobe===
dmesg -c > /dev/null
for list in regaddrs:addrs regsyms:syms; do
  file=/${list%%:*} param=${list##*:}
  n=200
  [ $param = syms ] && n=100
  xargs -n $n < $file | while read -r batch; do
    insmod /kpcheck.ko "$param=$(echo $batch | tr ' ' ,)" 2> /dev/null
    dmesg -c | sed 's/^\[[^]]*\] //' | grep -v -e 'loading out-of-tree' -e 'module verification failed' -e 'taints kernel'
  done
done
echo ===END register_kprobe===

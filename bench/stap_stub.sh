#!/bin/bash
# A stub kernel build dir that lets SystemTap 4.8 list probe points (`stap -r DIR -L ...`) on a
# machine with no kernel build tree (docs/list-vs-stap.md).
#
#   bench/stap_stub.sh [-k VMLINUX] [DIR]
#
# Prints DIR (default: ${XDG_CACHE_HOME:-$HOME/.cache}/patchscope-stap-stub/host, or .../KRELEASE
# with -k). Without a build dir every `stap -L 'process(...)...'` fails before it reads any DWARF
# ("Checking .../build/.config failed"). The stub holds what stap checks:
#   .config                        the running kernel's (/proc/config.gz, /boot/config-*), else the
#                                  three options process probes need (CONFIG_UPROBES,
#                                  CONFIG_ARCH_SUPPORTS_UPROBES, CONFIG_TRACEPOINTS)
#   include/config/kernel.release  `uname -r`, or the release in VMLINUX's name with -k
#   Module.symvers                 empty
#   System.map                     a line for arch_uretprobe_hijack_return_addr, which .return
#                                  needs ("process return probes not available"); with -k the
#                                  whole `nm -n VMLINUX`
#   vmlinux                        with -k: a symlink to VMLINUX, where stap looks for the
#                                  kernel's DWARF (`kernel.function(...)`)
# Safe to run again: the dir is rebuilt each time (a few ms; nm on a vmlinux takes ~2 s).
set -euo pipefail
vmlinux=
while getopts "k:" o; do
  case $o in
    k) vmlinux=$(readlink -f "$OPTARG") ;;
    *) sed -n '2,22p' "$0"; exit 2 ;;
  esac
done
shift $((OPTIND - 1))
base=${XDG_CACHE_HOME:-$HOME/.cache}/patchscope-stap-stub
release=$(uname -r)
if [[ -n $vmlinux ]]; then
  [[ -r $vmlinux ]] || { echo "stap_stub.sh: cannot read $vmlinux" >&2; exit 1; }
  # Debian names it vmlinux-6.1.0-56-amd64
  name=$(basename "$vmlinux")
  [[ $name == vmlinux-* ]] && release=${name#vmlinux-}
fi
dir=${1:-$base/$([[ -n $vmlinux ]] && echo "$release" || echo host)}
mkdir -p "$dir/include/config"
if [[ -r /proc/config.gz ]]; then
  zcat /proc/config.gz >"$dir/.config"
elif [[ -r /boot/config-$(uname -r) ]]; then
  cp "/boot/config-$(uname -r)" "$dir/.config"
else
  printf 'CONFIG_UPROBES=y\nCONFIG_ARCH_SUPPORTS_UPROBES=y\nCONFIG_TRACEPOINTS=y\n' >"$dir/.config"
fi
echo "$release" >"$dir/include/config/kernel.release"
: >"$dir/Module.symvers"
if [[ -n $vmlinux ]]; then
  ln -sfn "$vmlinux" "$dir/vmlinux"
  nm -n "$vmlinux" >"$dir/System.map"
else
  rm -f "$dir/vmlinux"
  printf 'ffffffff81100000 T arch_uretprobe_hijack_return_addr\n' >"$dir/System.map"
fi
echo "$dir"

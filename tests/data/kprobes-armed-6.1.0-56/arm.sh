#!/bin/sh
# Boots Debian's 6.1.0-56 kernel of ARCH under QEMU (TCG, scripts/qemu-boot) once per probe set
# and keeps what the guest printed. Usage: arm.sh ARCH OUT_DIR SET...  — each SET is a file of
# kprobe_events lines (the first, event "trig", is the probe the workload fires); OUT_DIR/SET.log
# gets guest-init.sh's output, ending with ===END=== when the guest finished, and a last line
# "qemu-boot-exit N" (1: the guest never finished — a hang caught by the timeout, or a crash).
set -eu
arch=$1 out=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
boot=$here/../../../scripts/qemu-boot
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
for set in "$@"; do
  name=$(basename "$set" .probes)
  cp "$set" "$work/probes"
  rc=0
  "$boot" -a "$arch" -t 600 -x "loglevel=4" -i "$work/probes" 6.1.0-56 "$here/guest-init.sh" > "$out/$name.log" || rc=$?
  echo "qemu-boot-exit $rc" >> "$out/$name.log"
done

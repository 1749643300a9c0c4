"""Figures for ``refused-address`` on a kernel image: the site tables, what register_kprobe and
kprobe_events answer at every function entry (and, for amd64, whether the predicted notrace
entries are the names the booted kernel's available_filter_functions lacks), and on arm64 the
kernel's literal backward scan over every instruction of the text beside the LL/SC window model
of rules/atomics.py.

    python bench/refused.py VMLINUX [--filter-functions FILE]
"""

from __future__ import annotations

import argparse
import collections
import time
from pathlib import Path

import numpy as np

import patchscope
from patchscope import _core
from patchscope.index.context import Context
from patchscope.rules import atomics, kprobe_target, refused, refused_arm64

CHUNK = 200_000


def entries(cx: Context, img: refused.KernelImage) -> tuple[np.ndarray, list[str]]:
    """Every function symbol's address in the core text, and its name."""
    rows, addrs = cx.func_symbols
    inside = np.zeros(len(addrs), bool)
    for lo, hi in img.text:
        inside |= (addrs >= lo) & (addrs < hi)
    rows, addrs = rows[inside], addrs[inside]
    return addrs, [cx.string(cx.sym["name"][r]) for r in rows.tolist()]


def entry_figures(cx: Context, img: refused.KernelImage, aff: Path | None) -> None:
    addrs, names = entries(cx, img)
    t = time.perf_counter()
    got = refused.refusals(cx, addrs)
    took = time.perf_counter() - t
    first = collections.Counter(
        next((r.reason for r in rs if r.interface == refused.REGISTER_KPROBE), "accepted") for rs in got
    )
    print(f"function entries: {len(addrs)} ({took:.1f} s, {len(addrs) / took:,.0f} addresses/s)")
    for reason, n in first.most_common():
        print(f"  register_kprobe {reason:20} {n}")
    notrace = {n for n, rs in zip(names, got) if any(r.reason == "notrace" for r in rs)}
    unique = sum(any(r.reason == "non-unique-symbol" for r in rs) for rs in got)
    print(f"  kprobe_events notrace: {len(notrace)} names; non-unique name: {unique} entries")
    if aff is not None:
        # the booted kernel lists the names of its ftrace records: compare the entries whose own
        # kallsyms extent holds a record (a .cold part is accepted through its base, unlisted)
        listed = {line.split()[0] for line in aff.read_text().splitlines() if line.strip()}
        listed = {n for n in listed if not n.startswith("__ftrace_invalid_address__")}  # disabled records
        found, start, end, _ = img.kallsyms.containing_all(addrs)
        own = {n for n, t in zip(names, found & img.traced(start, end)) if t}
        print(
            f"  vs available_filter_functions ({len(listed)} names): entries with a record {len(own)} names, "
            f"listed {len(own & listed)}, not listed {len(own - listed)}; listed names with no entry record "
            f"{len(listed - own)}"
        )
        print("    not listed:", sorted(own - listed)[:12])
        print("    listed without a record:", sorted(listed - own)[:12])


def text_words(img: refused.KernelImage) -> np.ndarray:
    """Every 4-byte aligned address of the core text."""
    return np.concatenate([np.arange(lo, hi, 4, dtype=np.uint64) for lo, hi in img.text])


def literal_scan(cx: Context, img: refused.KernelImage, version: tuple[int, int]) -> dict[int, int]:
    """``is_probed_address_atomic`` at every instruction of the text the decoder accepts: the
    refused address and the load-exclusive that opens its sequence."""
    out: dict[int, int] = {}
    for start in range(0, len(words := text_words(img)), CHUNK):
        addrs = words[start : start + CHUNK]
        p = refused.Probes.of(img, addrs, version)
        ok = p.found & (refused_arm64.a64_rejections(p.words) == 0)
        opener = refused_arm64.scan_back(img, addrs[ok], p.sym_start[ok], refused_arm64.a64_exclusive_masks(p))
        hit = opener != _core.NO_TARGET
        out.update(zip(addrs[ok][hit].tolist(), opener[hit].tolist()))
    return out


def window_model(cx: Context) -> set[int]:
    """Instructions strictly inside the windows rules/atomics.py reports (after the LL, up to
    and without the SC; an unterminated window to its end)."""
    inside: set[int] = set()
    for f in atomics.llsc_window(cx):
        lo, hi = int(f.evidence["low"], 16), int(f.evidence["high"], 16)
        end = hi - 4 if f.evidence["terminated"] else hi
        inside.update(range(lo + 4, end, 4))
    return inside


def arm64_figures(cx: Context, img: refused.KernelImage) -> None:
    for version in ((6, 1), kprobe_target.ARM64_EXCLUSIVE_MASK_FIX_SINCE):
        t = time.perf_counter()
        scan = literal_scan(cx, img, version)
        took = time.perf_counter() - t
        openers = np.array(sorted(set(scan.values())), np.uint64)
        exclusive = set(openers[refused_arm64.is_exclusive(img.words(openers))].tolist())
        by_true = sum(o in exclusive for o in scan.values())
        print(
            f"arm64 literal backward scan, masks of {version}: {len(scan)} refused instructions "
            f"({took:.0f} s over {len(text_words(img))}), opened by {len(openers)} load-exclusives by the mask: "
            f"{len(exclusive)} real exclusives ({by_true} refusals), {len(openers) - len(exclusive)} LDAR/LSE "
            f"({len(scan) - by_true} refusals)"
        )
        if version == (6, 1):
            model = window_model(cx)
            lit = set(scan)
            real = {a for a, o in scan.items() if o in exclusive}
            print(
                f"  window model (rules/atomics.py): {len(model)} instructions inside windows; "
                f"both {len(model & lit)}; model only (accepted by the kernel) {len(model - lit)}; "
                f"kernel only {len(lit - model)} "
                f"(of which after a real exclusive {len(real - model)})"
            )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("vmlinux", type=Path)
    ap.add_argument("--filter-functions", type=Path, help="available_filter_functions of the booted kernel")
    args = ap.parse_args()
    cx = Context(patchscope.open(args.vmlinux))
    img = cx.shared(refused.KernelImage)
    print(f"{args.vmlinux.name}: {cx.b.info['kernel_release']} ({img.arch}), kernel rules of {img.version}")
    print("sites:", {kind: len(v[0]) for kind, v in sorted(img.sites.items())}, f"ftrace records: {len(img.records)}")
    entry_figures(cx, img, args.filter_functions)
    if img.arch == "aarch64":
        arm64_figures(cx, img)


if __name__ == "__main__":
    main()

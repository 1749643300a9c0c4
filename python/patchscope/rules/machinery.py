"""Functions the probing machinery itself runs: probing one recurses into the machinery.

A static call graph (direct calls and tail jumps from the decoded code of every instance) is
walked from the entry points of the kernel's kprobe, kretprobe, ftrace and livepatch handlers.
The kernel guards recursion (``kprobe_running()``, ftrace's recursion bits) in most of them —
a nested hit is counted as *missed* rather than crashing — so what a static walk can say is
"this runs inside the machinery": the probe will not fire there, or, before the guard, recurse.
Only callees up to ``DEPTH`` calls from a root are reported; past that the closure covers much of
the kernel (printk, allocators) and says little.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patchscope import _core
from patchscope.index.context import Context
from patchscope.rules.finding import Band, Finding, code
from patchscope.rules.kernel import blacklist

MACHINERY_REACHABLE = code(
    "machinery-reachable",
    Band.GRAY,
    "called from the kprobe/ftrace/livepatch handlers: a probe here runs inside the machinery and is missed "
    "or recurses",
)

#: The handlers, and why each is a root.
ROOTS = {
    "kprobe_int3_handler": "x86 int3 trap → kprobe pre-handler dispatch",
    "kprobe_breakpoint_handler": "arm64 BRK trap → kprobe dispatch",
    "kprobe_handler": "riscv/ppc/s390 breakpoint → kprobe dispatch",
    "kprobe_post_process": "x86 after the single-step of a probed instruction",
    "kprobe_ftrace_handler": "ftrace-based kprobes (a kprobe on a function entry)",
    "aggr_pre_handler": "several kprobes on one address",
    "aggr_post_handler": "several kprobes on one address",
    "pre_handler_kretprobe": "kretprobe entry: hijacks the return address",
    "kretprobe_rethook_handler": "kretprobe return",
    "rethook_trampoline_handler": "the return trampoline of kretprobes and fprobes",
    "arch_rethook_trampoline_callback": "the return trampoline (arch part)",
    "optimized_callback": "x86 jump-optimised kprobes",
    "opt_pre_handler": "jump-optimised kprobes",
    "arch_ftrace_ops_list_func": "ftrace: every traced call with several ftrace_ops",
    "klp_ftrace_handler": "livepatch: every call of a patched function",
    "fprobe_handler": "fprobe entry (BPF kprobe_multi)",
}

#: Calls from a root, at most, for a function to be reported.
DEPTH = 2


def machinery_reachable(cx: Context) -> Iterator[Finding]:
    by_name = cx.symbol_addresses(ROOTS)
    roots = {n: why for n, why in ROOTS.items() if n in by_name}
    if not roots:
        return
    lows = cx.inst.column("low_pc").to_numpy()
    order = np.argsort(lows, kind="stable")
    callees = _callees(cx, lows, order)
    at = {int(lows[r]): int(r) for r in order.tolist()}
    path: dict[int, list[str]] = {}
    frontier = [at[by_name[n]] for n in roots if by_name[n] in at]
    for row in frontier:
        path[row] = [cx.instance_symbol(row)]
    for _ in range(DEPTH):
        nxt = []
        for row in frontier:
            for callee in callees.get(row, ()):
                if callee not in path:
                    path[callee] = [*path[row], cx.instance_symbol(callee)]
                    nxt.append(callee)
        frontier = nxt
    bl = blacklist(cx)
    for row, via in sorted(path.items(), key=lambda p: (len(p[1]), p[1])):
        if bl.at(int(lows[row])) is not None or len(via) == 1:
            continue  # the kernel already refuses it, or it is a root (itself blacklisted)
        symbol = via[-1]
        yield Finding(
            MACHINERY_REACHABLE,
            int(cx.inst_fid[row]),
            f"{symbol} runs inside the probing machinery: {' → '.join(via)} ({roots[via[0]]}); not on the "
            "kernel's blacklist, so a probe is accepted and then missed or recursive",
            {"instance": symbol, "path": via, "root": via[0], "why": roots[via[0]], "depth": len(via) - 1},
            instance=row,
            address=int(lows[row]),
        )


def _callees(cx: Context, lows: np.ndarray, order: np.ndarray) -> dict[int, set[int]]:
    """Instance row → rows of the instances it calls or tail-jumps to (at their entry)."""
    ev = cx.machine.events
    kind = ev.column("kind").to_numpy()
    pick = np.isin(kind, (_core.kind.CALL_DIRECT, _core.kind.TAIL_JUMP_DIRECT))
    src = ev.column("function_id").to_numpy()[pick]
    target = ev.column("target").to_numpy()[pick]
    sorted_lows = lows[order]
    pos = np.searchsorted(sorted_lows, target)
    hit = (pos < len(sorted_lows)) & (sorted_lows[np.minimum(pos, len(sorted_lows) - 1)] == target)
    out: dict[int, set[int]] = {}
    for s, t in zip(src[hit].tolist(), order[pos[hit]].tolist()):
        out.setdefault(int(s), set()).add(int(t))
    return out


RULES = [machinery_reachable]

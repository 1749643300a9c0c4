"""The static call graph of a binary's out-of-line instances, from their decoded code.

An edge is a direct call or a tail jump to an instance's entry (symbol-only
instances included: asm, thunks). A static-call trampoline (``__SCT__name``, x86) is such an
instance; its jump is to the target the image starts with, a guess (the kernel may retarget
it at boot, as PREEMPT_DYNAMIC does), so its edges are marked ``static-call``. The ftrace site's
call (``__fentry__``) is no edge.
Indirect calls are counted per instance but have no target here; whoever knows one adds it.

The edges are kept sorted by caller (CSR), so the callees of a row are one slice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, auto
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.context import Context

STATIC_CALL_TRAMPOLINE = "__SCT__"
#: The compiler's ftrace call: a NOP until a tracer patches it, so no edge.
FTRACE_SITE_CALLS = ("__fentry__", "_mcount", "mcount", "__gnu_mcount_nc")


class Via(IntEnum):
    """How a caller reaches a callee."""

    CALL = auto()
    TAIL_JUMP = auto()
    STATIC_CALL = auto()
    #: Declared by whoever walks the graph (a function pointer the source names).
    POINTER = auto()

    @property
    def label(self) -> str:
        return self.name.lower().replace("_", "-")


@dataclass(frozen=True)
class CallGraph:
    """``callee[start[r]:start[r+1]]`` are the rows instance ``r`` calls, ``via`` how, ``site``
    the address of the call, ``cold`` whether the call is outside the caller's entry range (in a
    ``.cold`` part: a path the compiler was told is unlikely); ``indirect[r]`` counts its
    indirect calls and jumps."""

    start: np.ndarray
    callee: np.ndarray
    via: np.ndarray
    site: np.ndarray
    cold: np.ndarray
    indirect: np.ndarray

    def callees(self, row: int) -> tuple[list[int], list[int], list[int], list[bool]]:
        lo, hi = int(self.start[row]), int(self.start[row + 1])
        sl = slice(lo, hi)
        return self.callee[sl].tolist(), self.via[sl].tolist(), self.site[sl].tolist(), self.cold[sl].tolist()

    @cached_property
    def edges(self) -> int:
        return len(self.callee)


def call_graph(cx: Context) -> CallGraph:
    """The call graph of ``cx``'s instances (built once per context: ``cx.shared(call_graph)``)."""
    ev = cx.machine.events
    kind = ev.column("kind").to_numpy()
    src = ev.column("function_id").to_numpy().astype(np.int64)
    n = cx.inst.num_rows
    indirect = np.bincount(
        src[np.isin(kind, (_core.kind.CALL_INDIRECT, _core.kind.TAIL_JUMP_INDIRECT))], minlength=n
    ).astype(np.int64)
    pick = np.isin(kind, (_core.kind.CALL_DIRECT, _core.kind.TAIL_JUMP_DIRECT))
    src, target = src[pick], ev.column("target").to_numpy()[pick]
    site = ev.column("address").to_numpy()[pick]
    via = np.where(kind[pick] == _core.kind.CALL_DIRECT, Via.CALL, Via.TAIL_JUMP).astype(np.uint8)
    callee = instance_at(cx, target)
    via[np.isin(src, _static_call_trampolines(cx))] = Via.STATIC_CALL
    keep = (callee >= 0) & ~np.isin(callee, _named(cx, FTRACE_SITE_CALLS))
    src, callee, via, site = src[keep], callee[keep], via[keep], site[keep]
    lows, highs = cx.inst_main_range
    cold = (site < lows[src]) | (site >= highs[src])
    order = np.lexsort((callee, src))
    start = np.searchsorted(src[order], np.arange(n + 1))
    return CallGraph(start, callee[order], via[order], site[order], cold[order], indirect)


def instance_at(cx: Context, addrs: np.ndarray) -> np.ndarray:
    """The row of the instance whose entry is each address, or -1."""
    lows = cx.inst.column("low_pc").to_numpy()
    order = np.argsort(lows, kind="stable")
    pos = np.searchsorted(lows[order], addrs)
    clipped = np.minimum(pos, len(order) - 1)
    found = (pos < len(order)) & (lows[order[clipped]] == addrs)
    return np.where(found, order[clipped], -1).astype(np.int64)


def _static_call_trampolines(cx: Context) -> np.ndarray:
    """Rows of the instances that are static-call trampolines (``__SCT__name``)."""
    pool = np.flatnonzero(pc.starts_with(cx.pool, STATIC_CALL_TRAMPOLINE).to_numpy(zero_copy_only=False))
    return np.flatnonzero(np.isin(cx.inst_name, pool))


def _named(cx: Context, names: tuple[str, ...]) -> np.ndarray:
    """Rows of the instances named one of ``names``."""
    pool = np.flatnonzero(pc.is_in(cx.pool, value_set=pa.array(names, cx.pool.type)).to_numpy(zero_copy_only=False))
    return np.flatnonzero(np.isin(cx.inst_name, pool))

"""Line probes: a source line as the concrete addresses the line table gives it.

A line is rarely one address in optimized code. GCC duplicates it (unrolled loops, tail
duplication, every inlined copy of a header function), interleaves it with other lines, and
marks one address as the start of several lines at once — line x of ``a`` and line y of an
inlined ``b`` — told apart only by location views, which an address-based probe cannot pick.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

import numpy as np

from patchscope import _core
from patchscope.index.context import Context
from patchscope.probes.places import places
from patchscope.probes.syntax import LineSpec
from patchscope.rules.atomics import InlineSites, inline_sites_at


@dataclass
class LineMatch:
    address: int
    file: str
    line: int
    is_stmt: bool
    #: Other lines that start at the same address (``file:line``), in view order.
    also: list[str] = field(default_factory=list)
    #: The chain of inlined functions the address is inside, innermost first.
    inline_chain: list[str] = field(default_factory=list)
    #: Innermost inline site row holding the address, -1.
    site: int = -1

    def describe(self) -> str:
        text = f"line {self.line}" + ("" if self.is_stmt else " (not a statement start)")
        if self.inline_chain:
            text += ", inside " + " inlined into ".join(f"`{f}`" for f in self.inline_chain)
        if self.also:
            text += f"; the address also starts {', '.join(self.also)}"
        return text


class LineIndex:
    """The line table sorted by address (the core emits it per sequence)."""

    def __init__(self, cx: Context) -> None:
        raw = cx.raw("lines")
        addr = raw.column("address").to_numpy()
        self.order = np.argsort(addr, kind="stable")
        self.address = addr[self.order]
        self.file = raw.column("file").to_numpy()[self.order]
        self.line = raw.column("line").to_numpy()[self.order]
        self.flags = raw.column("flags").to_numpy()[self.order]
        #: The distinct file names (pool indices) the table uses.
        self.files = np.unique(self.file)

    def rows_in(self, low: int, high: int) -> slice:
        return slice(int(np.searchsorted(self.address, low, "left")), int(np.searchsorted(self.address, high, "left")))

    def rows_at(self, addr: int) -> slice:
        return slice(
            int(np.searchsorted(self.address, addr, "left")), int(np.searchsorted(self.address, addr, "right"))
        )


def line_index(cx: Context) -> LineIndex:
    return cx.shared(LineIndex)


def prologue_end(cx: Context, low: int, high: int) -> int | None:
    """Where SystemTap puts a function probe in unoptimized code: the first ``prologue_end``
    row in ``[low, high)``, else the second line row (the first statement after the prologue)."""
    ix = line_index(cx)
    s = ix.rows_in(low, high)
    flags, addrs = ix.flags[s], ix.address[s]
    marked = np.flatnonzero(flags & _core.lineflag.PROLOGUE_END)
    if marked.size:
        return int(addrs[marked[0]])
    later = addrs[addrs > low]
    return int(later[0]) if later.size else None


def file_matches(path: str, pattern: str) -> bool:
    """A ``@FILE`` pattern as SystemTap and perf match it: a glob on the whole path or its tail."""
    return fnmatch.fnmatchcase(path, pattern) or fnmatch.fnmatchcase(path, "*/" + pattern.lstrip("/"))


def _files_matching(cx: Context, pattern: str | None) -> np.ndarray:
    """Pool indices of the file names of the line table that ``pattern`` names."""
    ids = line_index(cx).files
    if pattern is None:
        return ids
    return np.array([i for i in ids.tolist() if file_matches(cx.string(i), pattern)], dtype=ids.dtype)


def line_addresses(cx: Context, file: str | None, spec: LineSpec, fids: list[int] | None) -> list[LineMatch]:
    """Every statement-start address of the line(s) ``spec`` in ``file``; with ``fids``, only
    inside those functions' instances and inline sites, and a relative ``spec`` counts from
    each one's declaration line."""
    ix = line_index(cx)
    rows = np.zeros(len(ix.address), bool)
    for f, lo, hi in _targets(cx, file, spec, fids):
        rows |= np.isin(ix.file, f) & (ix.line >= lo) & (ix.line <= hi)
    stmt = rows & ((ix.flags & _core.lineflag.IS_STMT) != 0)
    if stmt.any():
        rows = stmt
    picked = np.flatnonzero(rows)
    if fids is not None:
        picked = picked[_inside(cx, fids, ix.address[picked])]
    first = np.unique(ix.address[picked], return_index=True)[1]
    return [
        line_match(
            cx,
            int(ix.address[r]),
            cx.string(int(ix.file[r])),
            int(ix.line[r]),
            bool(ix.flags[r] & _core.lineflag.IS_STMT),
        )
        for r in picked[first].tolist()
    ]


def _targets(
    cx: Context, file: str | None, spec: LineSpec, fids: list[int] | None
) -> list[tuple[np.ndarray, int, int]]:
    if spec.any:
        return [(_files_matching(cx, file), 0, 1 << 31)]
    if not spec.relative or fids is None:
        return [(_files_matching(cx, file), spec.low, spec.high)]
    decl_file = cx.functions.column("decl_file")
    decl_line = cx.functions.column("decl_line").to_numpy()
    out = []
    for fid in fids:
        base = int(decl_line[fid])
        out.append((_files_matching(cx, file or decl_file[fid].as_py()), base + spec.low, base + spec.high))
    return out


def _inside(cx: Context, fids: list[int], addrs: np.ndarray) -> np.ndarray:
    """Which of ``addrs`` lie in an instance or an inline site of ``fids``."""
    keep = np.zeros(len(addrs), bool)
    for row in (r for f in fids for r in cx.instances_of.get(f, [])):
        for lo, hi in cx.inst_ranges(row):
            keep |= (addrs >= lo) & (addrs < hi)
    sites = cx.shared(InlineSites)
    mine = np.isin(cx.site_fid[sites.site], fids)
    for lo, hi in zip(sites.low[mine].tolist(), sites.high[mine].tolist()):
        keep |= (addrs >= lo) & (addrs < hi)
    return keep


def line_match(cx: Context, addr: int, file: str, line: int, is_stmt: bool) -> LineMatch:
    """The row at ``addr`` as a line probe lands there: the other lines
    starting at the address, the inline chain holding it."""
    ix = line_index(cx)
    here = ix.rows_at(addr)
    rows = [(cx.string(int(f)), int(n)) for f, n in zip(ix.file[here].tolist(), ix.line[here].tolist())]
    also = [f"{f}:{n}" for f, n in rows if (f, n) != (file, line)]
    m = LineMatch(addr, file, line, is_stmt, list(dict.fromkeys(also)))
    row = places(cx).instance_at(addr)
    if row >= 0:
        chain = inline_sites_at(cx, row, addr)
        m.site = chain[0] if chain else -1
        m.inline_chain = [cx.fn_name[int(cx.site_fid[s])] for s in chain] + [cx.instance_symbol(row)] if chain else []
    return m

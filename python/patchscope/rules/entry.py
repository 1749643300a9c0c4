"""Entry and return: the caveats of the "relatively safe" band that the machine code and the
kernel's own tables show — no ftrace site, no return, several names for one entry."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.context import Context
from patchscope.rules.finding import Band, Finding, code, hexa

NO_FTRACE_SITE = code(
    "no-ftrace-site",
    Band.GRAY,
    "no ftrace call site recorded for the function: livepatch and fentry/fexit cannot attach",
)
NORETURN = code("noreturn", Band.GRAY, "the function never returns: a return probe never fires")
MULTIPLE_ENTRIES = code("multiple-entries", Band.GRAY, "several function symbols name the same entry address")

#: Tables of ftrace call-site records (the core's ``kernel_pointers.table``).
FTRACE_TABLES = ("__mcount_loc", "__patchable_function_entries")


class Entries:
    """The ftrace records of a binary and the instance each falls in."""

    def __init__(self, cx: Context) -> None:
        kp = cx.table("kernel_pointers")
        is_site = pc.is_in(kp.column("table").cast(pa.string()), value_set=pa.array(FTRACE_TABLES, pa.string()))
        sites = kp.filter(is_site)
        values = sites.column("value").to_numpy()
        self.records = np.sort(values[values != 0])
        self.table = sites.column("table")[0].as_py() if sites.num_rows else "__mcount_loc"
        self.kernel = cx.is_kernel()
        self.applies = self.kernel or bool(len(self.records))

    def record_in(self, lo: int, hi: int) -> int | None:
        i = np.searchsorted(self.records, lo, "left")
        return int(self.records[i]) if i < len(self.records) and self.records[i] < hi else None


def no_ftrace_site(cx: Context) -> Iterator[Finding]:
    """For a kernel image or module, or a user binary built with -fpatchable-function-entry:
    each instance's main range must hold an ftrace record (kernel/trace/ftrace.c
    ``ftrace_location``: the first record within the function)."""
    e = Entries(cx)
    if not e.applies:
        return
    consequence = (
        "kernel livepatch, fentry/fexit and ftrace cannot attach; kprobe_events refuses it as a notrace "
        "function, register_kprobe still takes it"
        if e.kernel
        else "nothing that patches the binary's own patchable entries can attach"
    )
    lows, highs = cx.inst_main_range
    i = np.searchsorted(e.records, lows, "left")
    hit = e.records[np.minimum(i, len(e.records) - 1)] if len(e.records) else np.zeros_like(lows)
    traced = (i < len(e.records)) & (hit < highs)
    for row in np.flatnonzero(~traced & (highs > lows)).tolist():
        lo, hi = int(lows[row]), int(highs[row])
        where, _ = cx.section_at(lo)
        symbol = cx.instance_symbol(row)
        note = "; in init text, which is gone after boot anyway" if where and where.startswith(".init") else ""
        yield Finding(
            NO_FTRACE_SITE,
            int(cx.inst_fid[row]),
            f"{symbol}: no {e.table} record in {hexa(lo)}-{hexa(hi)} (section {where}){note}: {consequence}",
            {"instance": symbol, "low": hexa(lo), "high": hexa(hi), "section": where, "table": e.table},
            instance=row,
            address=lo,
        )


def noreturn(cx: Context) -> Iterator[Finding]:
    flags = cx.inst.column("noreturn").to_numpy(zero_copy_only=False)
    for row in np.flatnonzero(flags).tolist():
        symbol = cx.instance_symbol(row)
        yield Finding(
            NORETURN,
            int(cx.inst_fid[row]),
            f"{symbol} is declared noreturn (DW_AT_noreturn): a return probe is accepted but never fires",
            {"instance": symbol, "source": "DW_AT_noreturn"},
            instance=row,
            address=cx.inst_low(row),
        )


def multiple_entries(cx: Context) -> Iterator[Finding]:
    """Once per shared address, on the DWARF instance there (or the first symbol-only one)."""
    _, addrs = cx.func_symbols
    shared = np.unique(addrs[1:][addrs[1:] == addrs[:-1]])
    lows = cx.inst.column("low_pc").to_numpy()
    rows = np.flatnonzero(np.isin(lows, shared))
    rows = rows[np.lexsort((cx.inst_die[rows] == _core.NO_DIE, lows[rows]))]  # by address, DWARF first
    seen: set[int] = set()
    for row in rows.tolist():
        addr = int(lows[row])
        if addr in seen:
            continue
        seen.add(addr)
        names = sorted({cx.string(cx.sym["name"][s]) for s in cx.symbols_at(addr)})
        yield Finding(
            MULTIPLE_ENTRIES,
            int(cx.inst_fid[row]),
            f"{len(names)} symbols name the entry {hexa(addr)}: {', '.join(names)}; a probe on any of them "
            "fires for calls through all",
            {"instance": cx.instance_symbol(row), "symbols": names},
            instance=row,
            address=addr,
        )


RULES = [no_ftrace_site, noreturn, multiple_entries]

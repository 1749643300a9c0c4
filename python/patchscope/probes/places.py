"""Where code lives, for resolving probe points: instance ranges by address, function
symbols by name, and where an entry probe on an instance lands."""

from __future__ import annotations

from functools import cached_property

import numpy as np

from patchscope.index.context import Context
from patchscope.index.functions import range_bounds
from patchscope.rules.entry import Entries


class Places:
    """Where code lives: instance ranges by address, function symbols by name."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        counts = cx.inst_range_count
        flat = range_bounds(cx.inst.column("ranges"))
        rows = np.repeat(np.arange(len(counts)), counts)
        order = np.argsort(flat[:, 0], kind="stable")
        self.low, self.high, self.row = flat[order, 0], flat[order, 1], rows[order]
        self.entries = Entries(cx)

    def instance_at(self, addr: int) -> int:
        """The instance whose ranges hold ``addr``, or -1."""
        i = int(np.searchsorted(self.low, addr, "right")) - 1
        return int(self.row[i]) if i >= 0 and addr < self.high[i] else -1

    @cached_property
    def symbol_names(self) -> dict[str, list[int]]:
        """Function symbol name → rows in the symbols table (a name may repeat: statics)."""
        rows, _ = self.cx.func_symbols
        out: dict[str, list[int]] = {}
        names = self.cx.sym["name"][rows]
        for r, n in zip(rows.tolist(), names.tolist()):
            out.setdefault(self.cx.string(n), []).append(r)
        return out

    @cached_property
    def _entries(self) -> tuple[np.ndarray, np.ndarray]:
        """Every instance's entry probe address, and whether it is its ftrace call site (the
        first record within the instance's main range, as ``ftrace_location`` finds it)."""
        low, high = self.cx.inst_main_range
        records = self.entries.records if self.entries.applies else np.zeros(0, np.uint64)
        i = np.searchsorted(records, low, "left")
        hit = records[np.minimum(i, len(records) - 1)] if len(records) else low
        traced = (i < len(records)) & (hit < high) if len(records) else np.zeros(len(low), bool)
        return np.where(traced, hit, low), traced

    def entry(self, row: int) -> tuple[int, str]:
        """Where an entry probe on an instance lands, and why there (see ``instance_code``)."""
        addr, traced = self._entries
        return int(addr[row]), "ftrace call site" if traced[row] else "function entry"


def places(cx: Context) -> Places:
    return cx.shared(Places)

"""The kernel's own kprobe blacklist, rebuilt from the vmlinux as ``init_kprobes()`` builds it
(kernel/kprobes.c: ``populate_kprobe_blacklist``,
``kprobe_add_area_blacklist``): the containing kallsyms symbol of
every ``_kprobe_blacklist`` entry (``NOKPROBE_SYMBOL``), every symbol of ``.kprobes.text`` and of
the ``noinstr`` text, and the architecture's areas (entry text on x86). A kallsyms symbol's size
is the distance to the next symbol, not ``st_size``; a clone ``foo.isra.0`` is refused when
``foo`` is."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.context import Context
from patchscope.rules.finding import Band, Code, Finding, code, hexa

KPROBE_BLACKLIST = code(
    "kprobe-blacklist",
    Band.HAZARDOUS,
    "the kernel refuses kprobes here: NOKPROBE_SYMBOL, .kprobes.text, or a clone of a blacklisted function",
)
NOINSTR = code("noinstr", Band.HAZARDOUS, "noinstr text: no instrumentation of any kind, the kernel refuses kprobes")
ENTRY_TEXT = code(
    "entry-text", Band.HAZARDOUS, "low-level entry code (entry/irqentry text): the kernel refuses kprobes"
)

RETURN_PROBE_REFUSED = code(
    "return-probe-refused",
    Band.HAZARDOUS,
    "register_kretprobe refuses a return probe on it (the architecture's kretprobe blacklist)",
)

#: ``kretprobe_blacklist[]`` per architecture (arch/x86/kernel/kprobes/core.c): functions that
#: switch stacks, where a hijacked return address would return on another task's stack.
KRETPROBE_BLACKLIST = {"x86_64": {"__switch_to": "switches the stack: the return lands on another task"}}

#: Areas, by their bounds symbols, with the code a symbol inside gets. x86's arch area is the
#: entry text; arm64 adds irqentry and hyp text, riscv/s390/loongarch irqentry.
AREAS = [
    ("__kprobes_text_start", "__kprobes_text_end", KPROBE_BLACKLIST, ".kprobes.text"),
    ("__noinstr_text_start", "__noinstr_text_end", NOINSTR, "noinstr text"),
]
ARCH_AREAS = {
    "x86_64": [("__entry_text_start", "__entry_text_end", ENTRY_TEXT, "entry text")],
    "aarch64": [
        ("__entry_text_start", "__entry_text_end", ENTRY_TEXT, "entry text"),
        ("__irqentry_text_start", "__irqentry_text_end", ENTRY_TEXT, "irqentry text"),
        ("__hyp_text_start", "__hyp_text_end", ENTRY_TEXT, "hyp text"),
    ],
    "riscv64": [("__irqentry_text_start", "__irqentry_text_end", ENTRY_TEXT, "irqentry text")],
    "s390x": [("__irqentry_text_start", "__irqentry_text_end", ENTRY_TEXT, "irqentry text")],
}

#: Symbol kinds kallsyms keeps (function, object, untyped); sections and files it drops.
_KALLSYMS_KINDS = (_core.symkind.FUNC, _core.symkind.OBJECT, _core.symkind.NOTYPE)


@dataclass(frozen=True)
class Entry:
    start: int
    end: int
    name: str
    why: str
    code: Code


class Kallsyms:
    """The symbols kallsyms would have, sorted, with its notion of size."""

    def __init__(self, cx: Context) -> None:
        sy = cx.raw("symbols")
        kind = sy.column("kind").to_numpy()
        names = sy.column("name").to_numpy()
        keep = np.isin(kind, _KALLSYMS_KINDS) & (sy.column("section").to_numpy() != 0) & (names != 0)
        rows = np.flatnonzero(keep)
        addr = sy.column("address").to_numpy()[rows]
        order = np.lexsort((kind[rows] != _core.symkind.FUNC, addr))  # at one address, functions first
        self.rows, self.addr = rows[order], addr[order]
        self.distinct = np.unique(self.addr)
        self.cx = cx

    def containing(self, addr: int) -> tuple[int, int, str] | None:
        """(start, end, name) of the kallsyms symbol holding ``addr``."""
        i = int(np.searchsorted(self.addr, addr, "right")) - 1
        if i < 0:
            return None
        start = int(self.addr[i])
        j = int(np.searchsorted(self.distinct, start, "right"))
        if j >= len(self.distinct):
            return None
        first = int(np.searchsorted(self.addr, start, "left"))
        return start, int(self.distinct[j]), self.cx.string(self.cx.sym["name"][self.rows[first]])

    def containing_all(self, addrs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """:meth:`containing` of many addresses at once: (found, start, end, name's pool index)."""
        addrs = np.asarray(addrs, np.uint64)
        i = np.searchsorted(self.addr, addrs, "right") - 1
        start = self.addr[np.maximum(i, 0)] if len(self.addr) else np.zeros_like(addrs)
        j = np.searchsorted(self.distinct, start, "right")
        found = (i >= 0) & (j < len(self.distinct))
        end = self.distinct[np.minimum(j, len(self.distinct) - 1)] if len(self.distinct) else start
        first = np.searchsorted(self.addr, start, "left")
        names = self.cx.sym["name"][self.rows[np.minimum(first, len(self.rows) - 1)]] if len(self.rows) else first
        return found, start, np.where(found, end, start), np.where(found, names, 0)

    @cached_property
    def name_counts(self) -> dict[int, int]:
        """How many kallsyms symbols bear each name (by pool index): a name kprobe_events
        cannot resolve when it is not unique."""
        names, counts = np.unique(self.cx.sym["name"][self.rows], return_counts=True)
        return dict(zip(names.tolist(), counts.tolist()))

    def starts_in(self, lo: int, hi: int) -> list[int]:
        starts: list[int] = self.distinct[(self.distinct >= lo) & (self.distinct < hi)].tolist()
        return starts


class Blacklist:
    """The rebuilt blacklist of one kernel image: its entries, in the kernel's order."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        areas = AREAS + ARCH_AREAS.get(cx.arch, [])
        self.bounds = cx.symbol_addresses(["__start_kprobe_blacklist", *(n for a in areas for n in a[:2])])
        self.kernel = "__start_kprobe_blacklist" in self.bounds

    @cached_property
    def entries(self) -> list[Entry]:
        if not self.kernel:
            return []
        ks = Kallsyms(self.cx)
        out: list[Entry] = []
        kp = self.cx.table("kernel_pointers")
        values = kp.filter(pc.equal(kp.column("table").cast(pa.string()), pa.scalar("_kprobe_blacklist"))).column(
            "value"
        )
        text = _text_ranges(self.cx)
        for v in values.to_numpy().tolist():
            hit = ks.containing(v) if _in(text, v) else None
            if hit:
                out.append(Entry(*hit, "NOKPROBE_SYMBOL", KPROBE_BLACKLIST))
        for start, stop, c, why in AREAS + ARCH_AREAS.get(self.cx.arch, []):
            lo, hi = self.bounds.get(start), self.bounds.get(stop)
            if lo is None or hi is None:
                continue
            for a in ks.starts_in(lo, hi):
                hit = ks.containing(a)
                if hit:
                    out.append(Entry(*hit, why, c))
        return out

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray, list[Entry]]:
        es = sorted(self.entries, key=lambda e: e.start)
        return np.array([e.start for e in es], np.uint64), np.array([e.end for e in es], np.uint64), es

    def at(self, addr: int) -> Entry | None:
        starts, ends, es = self._sorted
        i = int(np.searchsorted(starts, addr, "right")) - 1
        return es[i] if i >= 0 and addr < ends[i] else None

    @cached_property
    def names(self) -> dict[str, Entry]:
        return {e.name: e for e in self.entries}


def _text_ranges(cx: Context) -> list[tuple[int, int]]:
    s = cx.table("sections")
    flags = s.column("flags").to_numpy()
    execute = (flags & 0x4) != 0  # SHF_EXECINSTR
    lo = s.column("address").to_numpy()[execute]
    return list(zip(lo.tolist(), (lo + s.column("size").to_numpy()[execute]).tolist()))


def _in(ranges: list[tuple[int, int]], addr: int) -> bool:
    return any(lo <= addr < hi for lo, hi in ranges)


def blacklist(cx: Context) -> Blacklist:
    return cx.shared(Blacklist)


def refused(cx: Context) -> Iterator[Finding]:
    """Each out-of-line instance whose entry the rebuilt blacklist covers, or whose stem is a
    blacklisted symbol (within_kprobe_blacklist's '.suffix' rule)."""
    bl = blacklist(cx)
    if not bl.kernel:
        return
    lows = cx.inst.column("low_pc").to_numpy()
    starts, ends, _ = bl._sorted
    i = np.searchsorted(starts, lows, "right") - 1
    inside = (i >= 0) & (lows < ends[np.maximum(i, 0)])
    main = cx.inst_main_symbol
    suffixed = (main >= 0) & (cx.sym["suffix"][np.maximum(main, 0)] != 0)
    for row in np.flatnonzero(inside | suffixed).tolist():
        e, via = bl.at(int(lows[row])), None
        if e is None:
            base = cx.instance_symbol(row).split(".", 1)[0]
            e, via = bl.names.get(base), base
            if e is None:
                continue
        symbol = cx.instance_symbol(row)
        reason = f"a clone of {via}, which is blacklisted ({e.why})" if via else e.why
        yield Finding(
            e.code,
            int(cx.inst_fid[row]),
            f"{symbol}: register_kprobe refuses it: {reason}; blacklisted range {hexa(e.start)}-{hexa(e.end)} "
            f"({e.name})",
            {"instance": symbol, "range": [hexa(e.start), hexa(e.end)], "symbol": e.name, "why": e.why, "via": via},
            instance=row,
            address=int(lows[row]),
        )


def return_probe_refused(cx: Context) -> Iterator[Finding]:
    if not blacklist(cx).kernel:
        return
    listed = KRETPROBE_BLACKLIST.get(cx.arch, {})
    for fid, name in enumerate(cx.fn_name):
        why = listed.get(name)
        if why is None:
            continue
        for row in cx.instances_of.get(fid, []):
            symbol = cx.instance_symbol(row)
            yield Finding(
                RETURN_PROBE_REFUSED,
                fid,
                f"{symbol}: register_kretprobe refuses it ({why}; arch kretprobe_blacklist); entry probes are accepted",
                {"instance": symbol, "why": why, "list": "kretprobe_blacklist"},
                instance=row,
                address=cx.inst_low(row),
            )


RULES = [refused, return_probe_refused]

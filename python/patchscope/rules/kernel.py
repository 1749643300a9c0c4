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
    # arm64 6.1 arch_populate_kprobe_blacklist; the hyp idmap only when the kernel runs at EL1
    # (is_kernel_in_hyp_mode() false: no VHE), as under QEMU without virtualization=on
    "aarch64": [
        ("__entry_text_start", "__entry_text_end", ENTRY_TEXT, "entry text"),
        ("__irqentry_text_start", "__irqentry_text_end", ENTRY_TEXT, "irqentry text"),
        ("__idmap_text_start", "__idmap_text_end", ENTRY_TEXT, "idmap text"),
        ("__hyp_text_start", "__hyp_text_end", ENTRY_TEXT, "hyp text"),
        ("__hyp_idmap_text_start", "__hyp_idmap_text_end", ENTRY_TEXT, "hyp idmap text"),
    ],
    "riscv64": [("__irqentry_text_start", "__irqentry_text_end", ENTRY_TEXT, "irqentry text")],
    "s390x": [("__irqentry_text_start", "__irqentry_text_end", ENTRY_TEXT, "irqentry text")],
}

#: Symbol kinds kallsyms keeps (function, object, untyped); sections and files it drops.
_KALLSYMS_KINDS = (_core.symkind.FUNC, _core.symkind.OBJECT, _core.symkind.NOTYPE)
#: Names kallsyms never holds (6.1): scripts/mksysmap's filter (ARM mapping symbols ``$x``/``$d``,
#: local labels, CRCs, ksymtab strings) and scripts/kallsyms.c ``is_ignored_symbol``.
_KALLSYMS_IGNORED_PREFIXES = (
    "$",
    ".L",
    "__crc_",
    "__kstrtab_",
    "__kstrtabns_",
    "__efistub_",
    "__kvm_nvhe_$",
    "__kvm_nvhe_.L",
    "__AArch64ADRPThunk_",
    "__ARMV5PILongThunk_",
    "__ARMV7PILongThunk_",
    "__ThumbV7PILongThunk_",
    "__LA25Thunk_",
    "__microLA25Thunk_",
    "__kcfi_typeid_",
)
_KALLSYMS_IGNORED_SUFFIXES = ("_from_arm", "_from_thumb", "_veneer")
_KALLSYMS_IGNORED_MATCHES = (".long_branch.", ".plt_branch.")


#: ELF ``st_bind`` of a weak symbol (the symbols table keeps the raw value).
STB_WEAK = 2


def _linker_provided(name: str) -> bool:
    """scripts/kallsyms.c ``may_be_linker_script_provide_symbol``: ``__start_X``, ``__stop_X``,
    ``__end_X``, ``__X_start``, ``__X_end``."""
    return (
        len(name) >= 8
        and name.startswith("__")
        and (name.startswith(("__start_", "__stop_", "__end_")) or name.endswith(("_start", "_end")))
    )


def _kallsyms_ignored(names: pa.LargeStringArray) -> np.ndarray:
    """:func:`_kallsyms_ignores` of many names at once (a kernel has 100,000 and more)."""
    hit = pc.equal(names, pa.scalar("L0", names.type))
    for prefix in _KALLSYMS_IGNORED_PREFIXES:
        hit = pc.or_(hit, pc.starts_with(names, prefix))
    for suffix in _KALLSYMS_IGNORED_SUFFIXES:
        hit = pc.or_(hit, pc.ends_with(names, suffix))
    for middle in _KALLSYMS_IGNORED_MATCHES:
        hit = pc.or_(hit, pc.match_substring(names, middle))
    return np.asarray(hit.to_numpy(zero_copy_only=False), bool)


def _kallsyms_ignores(name: str) -> bool:
    return (
        name == "L0"
        or name.startswith(_KALLSYMS_IGNORED_PREFIXES)
        or name.endswith(_KALLSYMS_IGNORED_SUFFIXES)
        or any(m in name for m in _KALLSYMS_IGNORED_MATCHES)
    )


@dataclass(frozen=True)
class Entry:
    start: int
    end: int
    name: str
    why: str
    code: Code


def _alias_rank(cx: Context, names: np.ndarray, addr: np.ndarray) -> np.ndarray:
    """scripts/kallsyms.c ``compare_symbols`` after the weak ones: among the symbols of one
    address, the one kallsyms prints first is not a linker-script bound, has the fewest leading
    underscores, then comes first in ``nm -n``'s order (by name, LC_COLLATE=C). Ranked only
    where an address has several names."""
    values, counts = np.unique(addr, return_counts=True)
    shared = np.flatnonzero(np.isin(addr, values[counts > 1]))
    text = [cx.string(int(i)) for i in names[shared].tolist()]
    keys = sorted(
        range(len(text)),
        key=lambda k: (_linker_provided(text[k]), len(text[k]) - len(text[k].lstrip("_")), text[k].encode()),
    )
    rank = np.zeros(len(addr), np.int64)
    rank[shared[keys]] = np.arange(1, len(keys) + 1)
    return rank


class Kallsyms:
    """The symbols kallsyms would have, sorted, with its notion of size."""

    def __init__(self, cx: Context) -> None:
        sy = cx.raw("symbols")
        kind = sy.column("kind").to_numpy()
        names = sy.column("name").to_numpy()
        keep = np.isin(kind, _KALLSYMS_KINDS) & (sy.column("section").to_numpy() != 0) & (names != 0)
        ids = np.unique(names[keep])
        keep &= ~np.isin(names, ids[_kallsyms_ignored(cx.pool.take(pa.array(ids)))])
        rows = np.flatnonzero(keep)
        addr = sy.column("address").to_numpy()[rows]
        weak = sy.column("binding").to_numpy()[rows] == STB_WEAK
        order = np.lexsort((_alias_rank(cx, names[rows], addr), weak, addr))
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


#: A module's areas are sections of its own, added when it is loaded (kernel/module/main.c
#: ``find_module_sections``: ``kprobes_text_start``, ``noinstr_text_start``; kernel/kprobes.c
#: ``add_module_kprobe_blacklist``, beside the module's ``_kprobe_blacklist`` entries).
MODULE_AREAS = [(".kprobes.text", KPROBE_BLACKLIST, ".kprobes.text"), (".noinstr.text", NOINSTR, "noinstr text")]


class Blacklist:
    """The rebuilt blacklist of one kernel image, or of one module as loading it adds to the
    kernel's: its entries, in the kernel's order."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        areas = AREAS + ARCH_AREAS.get(cx.arch, [])
        self.bounds = cx.symbol_addresses(["__start_kprobe_blacklist", *(n for a in areas for n in a[:2])])
        sections = cx.table("sections").column("name").to_pylist()
        self.module = "__start_kprobe_blacklist" not in self.bounds and (
            ".modinfo" in sections or ".gnu.linkonce.this_module" in sections
        )
        #: Whether the binary is kernel code a blacklist applies to: the image or a module.
        self.kernel = "__start_kprobe_blacklist" in self.bounds or self.module

    @cached_property
    def entries(self) -> list[Entry]:
        if not self.kernel:
            return []
        ks = self.cx.shared(Kallsyms)
        out: list[Entry] = []
        kp = self.cx.table("kernel_pointers")
        values = kp.filter(pc.equal(kp.column("table").cast(pa.string()), pa.scalar("_kprobe_blacklist"))).column(
            "value"
        )
        text = self._kernel_text()
        for v in values.to_numpy().tolist():
            hit = ks.containing(v) if _in(text, v) else None
            if hit:
                out.append(Entry(*hit, "NOKPROBE_SYMBOL", KPROBE_BLACKLIST))
        for lo, hi, c, why in self._areas():
            for a in ks.starts_in(lo, hi):
                hit = ks.containing(a)
                if hit:
                    out.append(Entry(*hit, why, c))
        return out

    def _areas(self) -> Iterator[tuple[int, int, Code, str]]:
        """The blacklisted areas: between bounds symbols in an image, whole sections in a module."""
        if self.module:
            s = self.cx.table("sections")
            names = s.column("name").to_pylist()
            lows, sizes = s.column("address").to_numpy(), s.column("size").to_numpy()
            for name, c, why in MODULE_AREAS:
                for i in (i for i, n in enumerate(names) if n == name and sizes[i]):
                    yield int(lows[i]), int(lows[i] + sizes[i]), c, why
            return
        for start, stop, c, why in AREAS + ARCH_AREAS.get(self.cx.arch, []):
            lo, hi = self.bounds.get(start), self.bounds.get(stop)
            if lo is not None and hi is not None:
                yield lo, hi, c, why

    def _kernel_text(self) -> list[tuple[int, int]]:
        """Where ``kernel_text_address`` holds while init_kprobes runs (before init text is
        freed): ``[_stext, _etext)`` and ``[_sinittext, _einittext)``. A NOKPROBE_SYMBOL elsewhere
        (arm64's SDEI trampolines, in .entry.tramp.text after _etext) is skipped."""
        pairs = (("_stext", "_etext"), ("_sinittext", "_einittext"))
        b = self.cx.symbol_addresses([n for pair in pairs for n in pair])
        spans = [(b[lo], b[hi]) for lo, hi in pairs if lo in b and hi in b]
        return spans or _text_ranges(self.cx)

    @cached_property
    def _sorted(self) -> tuple[np.ndarray, np.ndarray, list[Entry]]:
        es = sorted(self.entries, key=lambda e: e.start)
        return np.array([e.start for e in es], np.uint64), np.array([e.end for e in es], np.uint64), es

    def at(self, addr: int) -> Entry | None:
        starts, ends, es = self._sorted
        i = int(np.searchsorted(starts, addr, "right")) - 1
        return es[i] if i >= 0 and addr < ends[i] else None

    def holding(self, addrs: np.ndarray) -> np.ndarray:
        """:meth:`at` of many addresses: the index in the sorted entries of the one holding
        each, or -1."""
        starts, ends, _ = self._sorted
        if not len(starts):  # a module with no blacklist of its own
            return np.full(len(addrs), -1, np.int64)
        i = np.searchsorted(starts, addrs, "right") - 1
        return np.where((i >= 0) & (addrs < ends[np.maximum(i, 0)]), i, -1)

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
    if not bl.entries:
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

"""What the kernel answers to a kprobe at each address, predicted from the vmlinux or module.

Two interfaces, two columns. ``register_kprobe`` is where every probe ends up (a SystemTap
module calls it directly; perf, bpftrace and tracefs go through it too). The trace_kprobe front
end (kernel/trace/trace_kprobe.c: tracefs ``kprobe_events`` and the ``perf_kprobe`` PMU that
perf and bpftrace open) refuses more before it gets there: a function ftrace cannot trace, and
a symbol name that is not unique.

Each rule below is one check of the kernel, as written in Linux 6.1 (Debian's linux-source-6.1
6.1.192, the source of the 6.1.0-56 kernel the project was checked against; see
shared/reference/hazard_rules.md §3 and §4), in the order the kernel makes them, so the first
refusal of an address is the error it returns:

* ``_kprobe_addr``: kallsyms must hold the address (``ENOENT``); on x86 a probe on a symbol's
  ``ENDBR`` moves past it (``arch_adjust_kprobe_addr``).
* ``check_kprobe_address_safe``: an ftrace record (arm64 6.1 has no KPROBES_ON_FTRACE:
  ``EINVAL``), core kernel text, ``within_kprobe_blacklist`` (rules/kernel.py),
  ``jump_label_text_reserved``, ``static_call_text_reserved``, ``find_bug``,
  ``is_cfi_preamble_symbol`` (all ``EINVAL``).
* ``arch_prepare_kprobe``. x86: ``can_probe`` (an instruction boundary, decoding from the
  kallsyms symbol: ``EILSEQ``), ``__copy_instruction`` (``EINVAL``), ``prepare_emulation``
  (``EOPNOTSUPP``). arm64: alignment, ``search_exception_tables``, ``arm_kprobe_decode_insn``
  with its backward scan for an open load-exclusive (all ``EINVAL``).

The running kernel rewrites some of its code at boot (alternatives, paravirt calls, retpolines,
return thunks): inside those sites an answer that depends on the instruction bytes is read from
the file's bytes and marked ``certain=False``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope.index import code as k
from patchscope.index.binary import Binary
from patchscope.rules import kernel
from patchscope.rules.context import Context
from patchscope.rules.entry import Entries
from patchscope.rules.finding import Band, Finding, code, hexa

REFUSED_ADDRESS = code(
    "refused-address",
    Band.HAZARDOUS,
    "the kernel refuses a kprobe at this address (register_kprobe, or only its kprobe_events front end)",
)

#: Interfaces. Every probe reaches register_kprobe; the trace_kprobe front end (tracefs
#: kprobe_events, the perf_kprobe PMU) checks more first, one check only for a probe given by name.
REGISTER_KPROBE = "register_kprobe"
KPROBE_EVENTS = "kprobe_events"
KPROBE_EVENTS_BY_NAME = "kprobe_events (by symbol name)"

#: Kinds of ``kernel_sites`` whose bytes the kernel rewrites at boot.
BOOT_REWRITTEN = ("alternative", "paravirt", "retpoline", "return-thunk")

#: Releases where a rule changed: x86 ``is_exception_insn`` (commit e884edbb844f, probes-v6.9);
#: arm64 load/store-exclusive masks narrowed to exclusives only (2025, Peilin Ye; the first
#: release is from memory, hazard_rules.md §1.2 — 6.1 has the old masks).
X86_EXCEPTION_INSN_SINCE = (6, 9)
ARM64_EXCLUSIVE_MASK_FIX_SINCE = (6, 15)


@dataclass(frozen=True)
class Refusal:
    """One reason the kernel refuses a probe at an address.

    ``reason``: a sub-reason of ``refused-address`` (``not-insn-boundary``, ``jump-label`` …);
    ``errno``: what the kernel returns when this is the first reason (``EILSEQ``, ``EINVAL`` …);
    ``interface``: :data:`REGISTER_KPROBE` (every interface), :data:`KPROBE_EVENTS` or
    :data:`KPROBE_EVENTS_BY_NAME`; ``certain``: False where the kernel rewrites the bytes at
    boot and the answer was read from the file's bytes."""

    reason: str
    errno: str
    interface: str
    message: str
    evidence: dict[str, Any] = field(hash=False)
    certain: bool = True


def refusals(
    target: Binary | Context, addresses: Sequence[int] | np.ndarray, *, version: tuple[int, int] | None = None
) -> list[list[Refusal]]:
    """For each address, every reason the kernel would refuse a kprobe there, in the kernel's
    order: first the register_kprobe refusals, then those only the kprobe_events front end adds.
    An empty list means accepted. ``version`` overrides the kernel release the image states.
    Raises ValueError for a binary that is neither a kernel image nor a module."""
    cx = target if isinstance(target, Context) else Context(target)
    img = cx.shared(KernelImage)
    p = Probes.of(img, np.asarray(addresses, np.uint64), version or img.version)
    out: list[list[Refusal]] = [[] for _ in range(len(p.addr))]
    for rule in RULES:
        for row, r in rule(img, p):
            out[row].append(r)
    return out


def answer(found: list[Refusal], interface: str = REGISTER_KPROBE, by_name: bool = False) -> str | None:
    """The error an interface returns for one address's refusals (None: accepted). The front
    end's own checks come before register_kprobe's."""
    front = [r for r in found if r.interface == KPROBE_EVENTS_BY_NAME and by_name]
    front += [r for r in found if r.interface == KPROBE_EVENTS]
    mine = front if interface == KPROBE_EVENTS else []
    first = next(iter(mine + [r for r in found if r.interface == REGISTER_KPROBE]), None)
    return first.errno if first else None


def rewritten_at_boot(target: Binary | Context, addresses: Sequence[int] | np.ndarray) -> list[list[str]]:
    """For each address, the kinds of boot-time rewrite whose sites hold it (``alternative``,
    ``paravirt``, ``retpoline``, ``return-thunk``): where the file's bytes are not what the
    kernel runs. A paravirt call is also an alternative."""
    cx = target if isinstance(target, Context) else Context(target)
    img = cx.shared(KernelImage)
    addrs = np.asarray(addresses, np.uint64)
    held = {kind: img.site_holding(kind, addrs) >= 0 for kind in BOOT_REWRITTEN}
    return [[kind for kind in BOOT_REWRITTEN if held[kind][i]] for i in range(len(addrs))]


#: Tools whose probes go through the trace_kprobe front end (tracefs, the perf_kprobe PMU).
THROUGH_TRACE_KPROBE = frozenset({"perf", "bpftrace", "kprobe_events"})


def for_tool(found: list[Refusal], tool: str, by_name: bool) -> list[Refusal]:
    """The refusals a tool meets: register_kprobe's for all (a SystemTap module calls it
    directly), the front end's too for perf, bpftrace and kprobe_events, its by-name check
    only when the probe names a symbol."""
    front = tool in THROUGH_TRACE_KPROBE
    return [
        r
        for r in found
        if r.interface == REGISTER_KPROBE
        or (front and r.interface == KPROBE_EVENTS)
        or (front and by_name and r.interface == KPROBE_EVENTS_BY_NAME)
    ]


def evidence(address: int, found: list[Refusal]) -> dict[str, Any]:
    """The evidence of a ``refused-address`` finding: the answer of each interface, every refusal."""
    return {
        "address": hexa(address),
        "errno": {
            REGISTER_KPROBE: answer(found),
            KPROBE_EVENTS: answer(found, KPROBE_EVENTS),
            KPROBE_EVENTS_BY_NAME: answer(found, KPROBE_EVENTS, by_name=True),
        },
        "refusals": [
            {"reason": r.reason, "errno": r.errno, "interface": r.interface, "certain": r.certain, **r.evidence}
            for r in found
        ],
    }


def finding(cx: Context, address: int, found: list[Refusal]) -> Finding:
    """A ``refused-address`` finding for one probe address and its refusals (for ``check``)."""
    inst = _instance_at(cx, address)
    return Finding(
        REFUSED_ADDRESS,
        int(cx.inst_fid[inst]) if inst >= 0 else -1,
        found[0].message,
        evidence(address, found),
        instance=inst,
        address=address,
    )


# -- the image ----------------------------------------------------------------------------------


class KernelImage:
    """A kernel image or module as register_kprobe sees it."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        self.arch = cx.b.arch
        names = set(cx.b.sections.column("name").to_pylist())
        self.module = ".modinfo" in names or ".gnu.linkonce.this_module" in names
        if not (self.module or cx.is_kernel()):
            raise ValueError(f"{cx.b.path}: not a kernel image or module: kprobes do not apply")
        self.version = release_version(cx.b.info.get("kernel_release", ""))
        self.kallsyms = cx.shared(kernel.Kallsyms)
        self.blacklist = kernel.blacklist(cx)

    @cached_property
    def sites(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per kind of ``kernel_sites``: (address, size, key, flags), sorted by address."""
        t = self.cx.b.kernel_sites
        kinds = t.column("kind").cast("string")
        out = {}
        for kind in set(kinds.to_pylist()):
            s = t.filter(pc.equal(kinds, kind))
            addr = s.column("address").to_numpy()
            order = np.argsort(addr, kind="stable")
            out[kind] = tuple(s.column(c).to_numpy()[order] for c in ("address", "size", "key", "flags"))
        return out

    def site_holding(self, kind: str, addrs: np.ndarray) -> np.ndarray:
        """Index (in :attr:`sites`) of the site of ``kind`` whose ``[address, address+size)``
        holds each address, or -1. Sites of one kind do not overlap."""
        if kind not in self.sites:
            return np.full(len(addrs), -1)
        start, size = self.sites[kind][:2]
        i = np.searchsorted(start, addrs, "right") - 1
        j = np.maximum(i, 0)
        inside = (i >= 0) & (addrs < start[j] + size[j].astype(np.uint64)) if len(start) else i >= 0
        return np.where(inside, i, -1)

    def rewritten(self, addrs: np.ndarray) -> np.ndarray:
        """Whether a boot-rewritten site holds each address."""
        out = np.zeros(len(addrs), bool)
        for kind in BOOT_REWRITTEN:
            out |= self.site_holding(kind, addrs) >= 0
        return out

    @cached_property
    def records(self) -> np.ndarray:
        """The ftrace records as the kernel keeps them (``rec->ip``, after ``ftrace_call_adjust``):
        arm64 with patchable entries (two NOPs) records the second NOP, where the call goes."""
        recs = Entries(self.cx).records
        if self.arch == "aarch64" and len(recs):
            at = self.cx.b.probe_sites(recs, recs)
            nop = at.column("kind").to_numpy() == k.NOP
            recs = np.sort(np.where(nop, recs + np.uint64(4), recs))
        return recs

    def traced(self, start: np.ndarray, end: np.ndarray) -> np.ndarray:
        """Whether an ftrace record lies in each ``[start, end)`` (``ftrace_location_range``)."""
        recs = self.records
        if not len(recs):
            return np.zeros(len(start), bool)
        i = np.searchsorted(recs, start, "left")
        return (i < len(recs)) & (recs[np.minimum(i, len(recs) - 1)] < end)

    @cached_property
    def text(self) -> list[tuple[int, int]]:
        """Where ``core_kernel_text`` (or a module's text) is after boot: ``[_stext, _etext)`` in
        a vmlinux, else the executable sections that are not init or exit text."""
        bounds = self.cx.symbol_addresses(["_stext", "_etext"])
        if not self.module and len(bounds) == 2:
            return [(bounds["_stext"], bounds["_etext"])]
        s = self.cx.b.sections
        execute = (s.column("flags").to_numpy() & 0x4) != 0  # SHF_EXECINSTR
        return [
            (int(a), int(a) + int(z))
            for a, z, n, x in zip(
                s.column("address").to_numpy(), s.column("size").to_numpy(), s.column("name").to_pylist(), execute
            )
            if x and z and not n.startswith((".init.", ".exit."))
        ]

    def bases(self, name_ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """For symbols named ``foo.suffix`` (pool indices): whether the name has a dot, and the
        address of ``foo`` (``kprobe_lookup_name``; NO_TARGET when there is none). One lookup
        per batch: the kernel's ``.suffix`` rules (blacklist, notrace) ask it of every address."""
        ids = np.unique(name_ids)
        names = {int(i): self.cx.string(int(i)) for i in ids.tolist()}
        base = {i: n.split(".", 1)[0] for i, n in names.items() if "." in n}
        found = self.cx.symbol_addresses(set(base.values())) if base else {}
        addr = {i: found.get(b, k.NO_TARGET) for i, b in base.items()}
        dotted = np.array([int(i) in base for i in name_ids.tolist()], bool)
        return dotted, np.array([addr.get(int(i), k.NO_TARGET) for i in name_ids.tolist()], np.uint64)

    def words(self, addrs: np.ndarray) -> np.ndarray:
        """The 32-bit little-endian words at ``addrs`` (arm64 instructions)."""
        if not len(addrs):
            return np.zeros(0, np.uint32)
        t = self.cx.b.probe_sites(addrs, addrs)
        return (t.column("bytes0").to_numpy() & np.uint64(0xFFFFFFFF)).astype(np.uint32)

    def symbol_name(self, addr: int) -> str:
        found, start, _, name = self.kallsyms.containing_all(np.array([addr], np.uint64))
        if not found[0]:
            return hexa(addr)
        off = addr - int(start[0])
        return self.cx.string(int(name[0])) + (f"+{off:#x}" if off else "")


def release_version(release: str) -> tuple[int, int] | None:
    """(major, minor) of a kernel release string such as ``6.1.0-56-amd64``."""
    m = re.match(r"(\d+)\.(\d+)", release)
    return (int(m.group(1)), int(m.group(2))) if m else None


# -- the addresses --------------------------------------------------------------------------------


@dataclass
class Probes:
    """A batch of addresses and what the rules read about each: the kallsyms symbol holding it
    and the instruction there, decoded from that symbol's start."""

    addr: np.ndarray
    #: Where register_kprobe puts the probe: ``addr``, or past an ENDBR at a symbol's start.
    at: np.ndarray
    found: np.ndarray
    sym_start: np.ndarray
    sym_end: np.ndarray
    sym_name: np.ndarray
    insn: np.ndarray
    size: np.ndarray
    kind: np.ndarray
    status: np.ndarray
    raw: np.ndarray  # (n, 16) uint8: the instruction's first bytes
    version: tuple[int, int] | None
    uncertain: np.ndarray

    @classmethod
    def of(cls, img: KernelImage, addrs: np.ndarray, version: tuple[int, int] | None) -> Probes:
        found, start, end, name = img.kallsyms.containing_all(addrs)
        decode_from = np.where(found, start, addrs)
        sites = img.cx.b.probe_sites(decode_from, addrs)
        at = addrs.copy()
        endbr = found & (addrs == start) & (sites.column("kind").to_numpy() == k.ENDBR)
        if endbr.any():  # x86 IBT: a probe on the symbol lands after its ENDBR (arch_adjust_kprobe_addr)
            at[endbr] = addrs[endbr] + np.uint64(4)
            moved = img.cx.b.probe_sites(decode_from[endbr], at[endbr])
            sites = _replace_rows(sites, np.flatnonzero(endbr), moved)
        raw = np.stack([sites.column("bytes0").to_numpy(), sites.column("bytes1").to_numpy()], axis=1)
        return cls(
            addr=addrs,
            at=at,
            found=found,
            sym_start=start,
            sym_end=end,
            sym_name=name,
            insn=sites.column("insn").to_numpy(),
            size=sites.column("size").to_numpy(),
            kind=sites.column("kind").to_numpy(),
            status=sites.column("status").to_numpy(),
            raw=raw.astype("<u8").view(np.uint8).reshape(-1, 16),
            version=version,
            uncertain=img.rewritten(at),
        )

    def where(self, img: KernelImage, row: int) -> str:
        if not self.found[row]:
            return hexa(self.addr[row])
        off = int(self.addr[row] - self.sym_start[row])
        name = img.cx.string(int(self.sym_name[row]))
        return f"{name}+{off:#x}" if off else name

    def since(self, release: tuple[int, int]) -> bool:
        """Whether the kernel is that release or later (an unknown release counts as 6.1)."""
        return (self.version or (6, 1)) >= release

    @property
    def words(self) -> np.ndarray:
        """The first 4 bytes of each instruction as a little-endian word (arm64)."""
        return self.raw[:, :4].copy().view("<u4").ravel()

    def bytes_hex(self, row: int) -> str:
        return " ".join(f"{b:02x}" for b in self.raw[row][: max(int(self.size[row]), 1)])


def _replace_rows(table: pa.Table, rows: np.ndarray, other: pa.Table) -> pa.Table:
    """``table`` with ``rows`` taken from ``other`` (which has one row for each)."""
    cols = {}
    for name in table.column_names:
        col = table.column(name).to_numpy().copy()
        col[rows] = other.column(name).to_numpy()
        cols[name] = col
    return pa.table(cols)


Rule = Callable[[KernelImage, Probes], Iterator[tuple[int, Refusal]]]


def _refusal(
    img: KernelImage,
    p: Probes,
    row: int,
    reason: str,
    errno: str,
    text: str,
    interface: str = REGISTER_KPROBE,
    certain: bool = True,
    **evidence: Any,
) -> tuple[int, Refusal]:
    where = p.where(img, row)
    ev = {"reason": reason, "address": hexa(p.addr[row]), "symbol": where, **evidence}
    if p.at[row] != p.addr[row]:
        ev["probed_at"] = hexa(p.at[row])
    return row, Refusal(reason, errno, interface, f"{where} ({hexa(p.addr[row])}): {text}", ev, certain)


# -- register_kprobe: resolving the address -----------------------------------------------------------


def no_symbol(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``_kprobe_addr``: kallsyms_lookup_size_offset must find a symbol holding the address."""
    for row in np.flatnonzero(~p.found).tolist():
        yield _refusal(img, p, row, "no-symbol", "ENOENT", "no kallsyms symbol holds it (_kprobe_addr)")


# -- check_kprobe_address_safe ----------------------------------------------------------------------


def ftrace_record(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``check_ftrace_location``: a probe exactly on an ftrace record becomes an ftrace-based
    kprobe where the kernel has KPROBES_ON_FTRACE (x86), and is refused where it does not
    (arm64 in 6.1). (Inside an x86 ``call __fentry__``, see :func:`not_insn_boundary`.)"""
    recs = img.records
    if img.arch != "aarch64" or not len(recs):
        return
    i = np.minimum(np.searchsorted(recs, p.at, "left"), len(recs) - 1)
    for row in np.flatnonzero((recs[i] == p.at) & p.found).tolist():
        yield _refusal(
            img,
            p,
            row,
            "ftrace-site",
            "EINVAL",
            "the ftrace call site itself (the NOP ftrace patches into a call): arm64 6.1 has no "
            "KPROBES_ON_FTRACE, so check_ftrace_location refuses it",
            ftrace_site=hexa(p.at[row]),
        )


def not_kernel_text(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``core_kernel_text`` / ``__module_text_address``: after boot, only the core text (no
    init text, which is freed) of the kernel or of a module."""
    inside = np.zeros(len(p.at), bool)
    for lo, hi in img.text:
        inside |= (p.at >= lo) & (p.at < hi)
    for row in np.flatnonzero(p.found & ~inside).tolist():
        section, _ = img.cx.section_at(int(p.at[row]))
        yield _refusal(
            img,
            p,
            row,
            "not-kernel-text",
            "EINVAL",
            f"not in the kernel's text after boot (section {section}): init text is freed, data is not code "
            "(core_kernel_text)",
            section=section,
        )


def blacklisted(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``within_kprobe_blacklist``: the rebuilt blacklist (rules/kernel.py), or the base symbol of
    a suffixed one (``foo.isra.0`` when ``foo`` is listed)."""
    bl = img.blacklist
    if not bl.kernel or not len(bl.entries):
        return
    entry = _blacklist_entry(bl, p.at)
    dotted, base = img.bases(p.sym_name)
    via_base = np.where((entry < 0) & dotted & (base != k.NO_TARGET), _blacklist_entry(bl, base), -1)
    es = bl._sorted[2]
    for row in np.flatnonzero(p.found & ((entry >= 0) | (via_base >= 0))).tolist():
        via = None if entry[row] >= 0 else img.cx.string(int(p.sym_name[row])).split(".", 1)[0]
        e = es[entry[row] if entry[row] >= 0 else via_base[row]]
        how = f"a clone of {via}, which is blacklisted ({e.why})" if via else e.why
        yield _refusal(
            img,
            p,
            row,
            e.code.name,  # type: ignore[attr-defined]
            "EINVAL",
            f"in the kprobe blacklist: {how}; range {hexa(e.start)}-{hexa(e.end)} ({e.name})",
            range=[hexa(e.start), hexa(e.end)],
            listed=e.name,
            why=e.why,
            via=via,
        )


def _blacklist_entry(bl: kernel.Blacklist, addrs: np.ndarray) -> np.ndarray:
    """Index in the blacklist's sorted entries of the one holding each address, or -1
    (``Blacklist.at`` for many addresses)."""
    starts, ends, _ = bl._sorted
    i = np.searchsorted(starts, addrs, "right") - 1
    return np.where((i >= 0) & (addrs < ends[np.maximum(i, 0)]), i, -1)


def reserved_site(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``jump_label_text_reserved`` and ``static_call_text_reserved``: a probe overlapping the
    patched instruction (``[code, code + size)``: the 2- or 5-byte jump or NOP of a static
    branch, the 5-byte call of a static call) would be overwritten by the next patch."""
    for kind, what in (
        ("jump-label", "a static branch (jump label) site"),
        ("static-call", "a static call site"),
    ):
        hit = img.site_holding(kind, p.at)
        addr, size, key, _ = img.sites.get(kind, (None,) * 4)
        for row in np.flatnonzero((hit >= 0) & p.found).tolist():
            i = hit[row]
            site = int(addr[i])
            yield _refusal(
                img,
                p,
                row,
                kind,
                "EINVAL",
                f"inside {what}: the {int(size[i])}-byte instruction at {hexa(site)}, rewritten when "
                f"{img.symbol_name(int(key[i]))} changes ({kind.replace('-', '_')}_text_reserved)",
                site=hexa(site),
                size=int(size[i]),
                key=img.symbol_name(int(key[i])),
            )


def bug_site(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``find_bug``: the trap instruction of a BUG()/WARN() (an exact ``__bug_table`` address)."""
    if "bug" not in img.sites:
        return
    addr, _, _, flags = img.sites["bug"]
    i = np.minimum(np.searchsorted(addr, p.at, "left"), max(len(addr) - 1, 0))
    for row in np.flatnonzero((addr[i] == p.at) & p.found).tolist():
        warn = bool(flags[i[row]] & 1)  # BUGFLAG_WARNING
        yield _refusal(
            img,
            p,
            row,
            "bug-site",
            "EINVAL",
            f"the trap of a {'WARN' if warn else 'BUG'}() (a __bug_table entry: find_bug)",
            kind="WARN" if warn else "BUG",
        )


def cfi_preamble(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``is_cfi_preamble_symbol``: the ``__cfi_``/``__pfx_`` padding before a function."""
    ids = np.unique(p.sym_name[p.found])
    preamble = [i for i in ids.tolist() if img.cx.string(i).startswith(("__cfi_", "__pfx_"))]
    for row in np.flatnonzero(p.found & np.isin(p.sym_name, preamble)).tolist():
        yield _refusal(img, p, row, "cfi-preamble", "EINVAL", "a CFI/padding preamble symbol")


# -- arch_prepare_kprobe: x86 ---------------------------------------------------------------------------

#: Legacy prefixes the kernel's decoder skips before the opcode.
X86_PREFIXES = (0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67)
#: Xen's and KVM's "ud2; .ascii" that marks an instruction to emulate (asm/emulate_prefix.h).
EMULATE_PREFIXES = (bytes([0x0F, 0x0B, 0x78, 0x65, 0x6E]), bytes([0x0F, 0x0B, 0x6B, 0x76, 0x6D]))


def not_insn_boundary(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """x86 ``can_probe``: decoding from the kallsyms symbol's start must land exactly on the
    address, and nothing before it may fail to decode (EILSEQ)."""
    if not img.arch.startswith(("x86", "i386")):
        return
    ok = p.found & (p.status == 0)
    inside = ok & (p.insn != p.at) & (p.insn != k.NO_TARGET)
    in_fentry, fentry = _fentry_holding(img, p)
    for row in np.flatnonzero(inside).tolist():
        if in_fentry[row]:
            yield _refusal(
                img,
                p,
                row,
                "ftrace-site",
                "EILSEQ",
                f"inside the 5-byte `call __fentry__` ftrace site at {hexa(fentry[row])} (a NOP5 at run time): only "
                "its first byte is a probe point (can_probe)",
                ftrace_site=hexa(fentry[row]),
            )
            continue
        yield _refusal(
            img,
            p,
            row,
            "not-insn-boundary",
            "EILSEQ",
            f"inside the {int(p.size[row])}-byte instruction at {hexa(p.insn[row])} ({p.bytes_hex(row)}): decoding "
            "from the symbol never lands here (can_probe)",
            certain=not p.uncertain[row],
            instruction=hexa(p.insn[row]),
            bytes=p.bytes_hex(row),
        )
    for row in np.flatnonzero(p.found & ((p.status & k.SITE_DECODE_ERROR) != 0)).tolist():
        yield _refusal(
            img,
            p,
            row,
            "undecodable",
            "EILSEQ",
            "bytes before it in the symbol decode to no instruction, so can_probe cannot walk to it",
            certain=not p.uncertain[row],
        )


def _fentry_holding(img: KernelImage, p: Probes) -> tuple[np.ndarray, np.ndarray]:
    """Whether an x86 ftrace record's 5-byte call holds each address past its first byte, and
    that record."""
    recs = img.records
    if img.arch != "x86_64" or not len(recs):
        return np.zeros(len(p.at), bool), p.at
    i = np.searchsorted(recs, p.at, "right") - 1
    rec = recs[np.maximum(i, 0)]
    return (i >= 0) & (p.at > rec) & (p.at < rec + np.uint64(5)), rec


@dataclass
class X86Opcode:
    """What the kernel's instruction decoder says the x86 checks look at: the opcode bytes
    after the legacy and REX prefixes, the ModRM byte, the address size."""

    op: np.ndarray
    op2: np.ndarray
    modrm: np.ndarray  # the byte after a one-byte opcode
    modrm_0f: np.ndarray  # the byte after a two-byte 0F xx opcode
    addr32: np.ndarray
    vex: np.ndarray

    @classmethod
    def of(cls, raw: np.ndarray) -> X86Opcode:
        n = len(raw)
        at = np.zeros(n, np.int64)
        addr32 = np.zeros(n, bool)
        for _ in range(14):
            b = raw[np.arange(n), np.minimum(at, 15)]
            pre = np.isin(b, X86_PREFIXES) & (at < 14)
            addr32 |= pre & (b == 0x67)
            at += pre
        b = raw[np.arange(n), np.minimum(at, 15)]
        at += (b >= 0x40) & (b <= 0x4F)  # REX
        pick = lambda d: raw[np.arange(n), np.minimum(at + d, 15)]  # noqa: E731
        op = pick(0)
        return cls(op, pick(1), pick(1), pick(2), addr32, np.isin(op, (0xC4, 0xC5, 0x62)))


def x86_unprobeable(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """What x86 cannot single-step or emulate, in the kernel's order: ``is_exception_insn``
    (6.9+, in can_probe: EILSEQ), ``__copy_instruction`` (EINVAL: an emulate prefix, an int3
    left by someone else, MOV/POP SS), ``prepare_emulation`` (EOPNOTSUPP: far call/jmp, iret,
    VMX, indirect call/jmp through memory)."""
    if not img.arch.startswith(("x86", "i386")):
        return
    on = p.found & (p.status == 0) & (p.insn == p.at)
    rows = np.flatnonzero(on)
    if not len(rows):
        return
    x = X86Opcode.of(p.raw[rows])
    for j, row in enumerate(rows.tolist()):
        got = _x86_refusal(x, j, p.raw[row], int(p.kind[row]), p.since(X86_EXCEPTION_INSN_SINCE))
        if got:
            errno, why = got
            yield _refusal(
                img,
                p,
                row,
                "unprobeable-insn",
                errno,
                f"{why} ({p.bytes_hex(row)})",
                certain=not p.uncertain[row],
                bytes=p.bytes_hex(row),
            )


def _x86_refusal(x: X86Opcode, j: int, raw: np.ndarray, kind: int, v69: bool) -> tuple[str, str] | None:
    """The kernel's answer for instruction ``j`` of ``x`` (on a boundary), or None (accepted)."""
    op, op2, modrm, modrm_0f = int(x.op[j]), int(x.op2[j]), int(x.modrm[j]), int(x.modrm_0f[j])
    addr32, vex = bool(x.addr32[j]), bool(x.vex[j])
    if kind == k.ERROR:
        return "EINVAL", "the instruction does not decode (__copy_instruction)"
    if vex:
        return None
    if v69 and (op in (0xCC, 0xCD, 0xCE, 0xF1) or (op == 0x0F and op2 in (0xFF, 0xB9, 0x0B))):
        return "EILSEQ", "an INT or UD instruction (is_exception_insn, 6.9+)"
    if bytes(raw[:5]) in EMULATE_PREFIXES:
        return "EINVAL", "a Xen/KVM emulate-prefixed instruction (__copy_instruction)"
    if op == 0xCC:
        return "EINVAL", "an int3: another breakpoint is there, the original cannot be recovered (__copy_instruction)"
    if op == 0x1F or (op == 0x8E and (modrm >> 3) & 7 == 2):
        return "EINVAL", "MOV/POP to SS, which masks the single-step trap (insn_masking_exception)"
    if op in (0x9A, 0xEA):
        return "EOPNOTSUPP", "a far call/jmp (prepare_emulation)"
    if op == 0xCF:
        return "EOPNOTSUPP", "an iret (prepare_emulation)"
    if op == 0x0F and op2 == 0x01 and (modrm_0f >> 3) & 7 == 0 and modrm_0f >> 6 == 3:
        return "EOPNOTSUPP", "a VMX instruction (prepare_emulation)"
    if op == 0xFF and (modrm >> 3) & 7 in (3, 5):
        return "EOPNOTSUPP", "a far indirect call/jmp (prepare_emulation)"
    if op == 0xFF and (modrm >> 3) & 7 in (2, 4) and (addr32 or modrm >> 6 != 3):
        return "EOPNOTSUPP", "an indirect call/jmp through memory, which kprobes cannot emulate (prepare_emulation)"
    return None


# -- arch_prepare_kprobe: arm64 --------------------------------------------------------------------------

A64_SPCLREG_DAIF = 0xDA11
#: ``aarch64_insn_is_steppable_hint``: the hints (insn & 0xFE0) that may be single-stepped.
A64_STEPPABLE_HINTS = (0x000, 0x07 << 5, 0x08 << 5, 0x0A << 5, 0x18 << 5, 0x19 << 5, 0x1A << 5, 0x1B << 5)
A64_STEPPABLE_HINTS += (0x20 << 5, 0x22 << 5, 0x24 << 5, 0x26 << 5)


#: Why ``arm_kprobe_decode_insn`` rejects an instruction, by the codes :func:`a64_rejections` gives.
A64_WHY = (
    None,
    "a branch that is not simulated (pointer-authenticating)",
    "an MSR (system register write)",
    "an exception-generating instruction (svc/hvc/smc/brk/hlt)",
    "an eret",
    "an MRS other than of DAIF",
    "a hint not on the steppable list (wfe, yield, aut*…)",
    "a PRFM (literal)",
    "a load/store-exclusive (aarch64_insn_is_exclusive)",
)


def a64_rejections(words: np.ndarray) -> np.ndarray:
    """``arm_kprobe_decode_insn`` without the atomic scan, for many instruction words: the index
    in :data:`A64_WHY` of why each is INSN_REJECTED, 0 when it is stepped out of line or
    simulated. The clauses of ``aarch64_insn_is_steppable`` in order, then what
    ``arm_probe_decode_insn`` simulates (masks of arch/arm64/include/asm/insn.h, 6.1)."""
    w = np.asarray(words, np.uint32)

    def m(mask: int, value: int) -> np.ndarray:
        return (w & np.uint32(mask)) == np.uint32(value)

    adr = m(0x1F000000, 0x10000000)  # adr/adrp
    simulated = (
        m(0xFF000010, 0x54000000)  # b.cond
        | m(0x7E000000, 0x34000000)  # cbz/cbnz
        | m(0x7E000000, 0x36000000)  # tbz/tbnz
        | adr
        | m(0x7C000000, 0x14000000)  # b/bl
        | m(0xFFFFFC1F, 0xD61F0000)  # br
        | m(0xFFFFFC1F, 0xD63F0000)  # blr
        | m(0xFFFFFC1F, 0xD65F0000)  # ret
    )
    branch = (simulated & ~adr) | m(0xFFFFFBFF, 0xD65F0BFF) | m(0xFEFFF800, 0xD61F0800) | m(0xFEFFF800, 0xD63F0800)
    br_sys = np.isin((w >> 25) & 0xF, (0xA, 0xB))  # AARCH64_INSN_CLS_BR_SYS
    daif = ((w & 0x1FFFE0) >> 5) == A64_SPCLREG_DAIF
    steppable_hint = np.isin(w & 0xFE0, A64_STEPPABLE_HINTS)
    clauses = [  # (condition, code): the first that holds decides
        (m(0xBF000000, 0x18000000) | m(0xFF000000, 0x98000000), 0),  # LDR/LDRSW (literal): simulated
        (br_sys & branch, np.where(simulated, 0, 1)),
        (br_sys & (m(0xFFF8F01F, 0xD500401F) | m(0xFFF00000, 0xD5100000)), 2),
        (br_sys & m(0xFF000000, 0xD4000000), 3),
        (br_sys & (m(0xFFFFFFFF, 0xD69F03E0) | m(0xFFFFFBFF, 0xD69F0BFF)), 4),
        (br_sys & m(0xFFF00000, 0xD5300000), np.where(daif, 0, 5)),
        (br_sys & m(0xFFFFF01F, 0xD503201F), np.where(steppable_hint, 0, 6)),
        (br_sys | adr, 0),
        (m(0xFF000000, 0xD8000000), 7),
        (m(0x3F800000, 0x08000000), 8),
    ]
    why = np.zeros(len(w), np.int8)
    undecided = np.ones(len(w), bool)
    for cond, code_ in clauses:
        hit = undecided & cond
        why[hit] = np.broadcast_to(code_, len(w))[hit]
        undecided &= ~cond
    return why


def a64_rejected(word: int) -> str | None:
    """Why one instruction word is INSN_REJECTED, or None."""
    return A64_WHY[int(a64_rejections(np.array([word], np.uint32))[0])]


def a64_exclusive_masks(p: Probes) -> tuple[tuple[int, int], tuple[int, int]]:
    """(load_ex, store_ex) masks of ``aarch64_insn_is_load_ex``/``store_ex``: before the 2025 fix
    they ignore bit 23, so LDAR/CASA also count as load-exclusive and STLR/CAS as store-exclusive."""
    if p.since(ARM64_EXCLUSIVE_MASK_FIX_SINCE):
        return (0x3FC00000, 0x08400000), (0x3FC00000, 0x08000000)
    return (0x3F400000, 0x08400000), (0x3F400000, 0x08000000)


def is_exclusive(words: np.ndarray) -> np.ndarray:
    """``aarch64_insn_is_exclusive``: LDXR/STXR and their acquire/release/pair forms, CASP."""
    return (np.asarray(words, np.uint32) & np.uint32(0x3F800000)) == np.uint32(0x08000000)


def a64_unprobeable(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """arm64 ``arch_prepare_kprobe``: a 4-byte aligned address, no exception-table fixup, and an
    instruction the decoder accepts (all EINVAL)."""
    if img.arch != "aarch64":
        return
    misaligned = p.found & ((p.at & 3) != 0)
    hit = img.site_holding("extable", p.at)
    fixup = (hit >= 0) & (img.sites["extable"][0][np.maximum(hit, 0)] == p.at) if "extable" in img.sites else hit > 0
    why = a64_rejections(p.words)
    for row in np.flatnonzero(p.found & (misaligned | fixup | (why > 0))).tolist():
        if misaligned[row]:
            yield _refusal(img, p, row, "misaligned", "EINVAL", "not 4-byte aligned (arch_prepare_kprobe)")
        elif fixup[row]:
            yield _refusal(
                img,
                p,
                row,
                "exception-table",
                "EINVAL",
                "an instruction with an exception-table fixup (a user access): search_exception_tables",
            )
        else:
            yield _refusal(
                img,
                p,
                row,
                "unprobeable-insn",
                "EINVAL",
                f"{A64_WHY[why[row]]} (arm_kprobe_decode_insn)",
                word=f"{int(p.words[row]):08x}",
            )


#: ``MAX_ATOMIC_CONTEXT_SIZE``: how far back arm64 looks for an open load-exclusive, in instructions.
A64_ATOMIC_SCAN = 32


def atomic_window(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """arm64 ``is_probed_address_atomic``: from the instruction before the address back to the
    kallsyms symbol's start, at most 32 instructions, the first load-exclusive (by the kernel's
    mask) before any store-exclusive refuses the probe. Only for instructions the decoder did
    not already reject."""
    if img.arch != "aarch64":
        return
    rows = np.flatnonzero(p.found & ((p.at & 3) == 0) & (a64_rejections(p.words) == 0))
    if not len(rows):
        return
    opener = scan_back(img, p.at[rows], p.sym_start[rows], a64_exclusive_masks(p))
    hit = np.flatnonzero(opener != k.NO_TARGET)
    words = img.words(opener[hit])
    for j, word in zip(hit.tolist(), words.tolist()):
        row, at = int(rows[j]), int(opener[j])
        exclusive = bool(is_exclusive(np.array([word]))[0])
        what = "a load-exclusive" if exclusive else "an LDAR/LSE CAS that the 6.1 load-exclusive mask also matches"
        yield _refusal(
            img,
            p,
            row,
            "atomic-window",
            "EINVAL",
            f"{(int(p.at[row]) - at) // 4} instructions after {what} at {hexa(at)} ({word:08x}) with no "
            "store-exclusive between: inside an LL/SC sequence (is_probed_address_atomic)",
            opener=hexa(at),
            opener_word=f"{word:08x}",
            exclusive=exclusive,
        )


def scan_back(
    img: KernelImage, at: np.ndarray, sym_start: np.ndarray, masks: tuple[tuple[int, int], tuple[int, int]]
) -> np.ndarray:
    """``is_probed_address_atomic`` for many addresses at once: the address of the load-exclusive
    that opens an LL/SC sequence around each, or NO_TARGET. The scan runs from ``at - 4`` down
    to ``scan_end`` inclusive: the symbol's start when it is less than 128 bytes back, else
    ``at - 128``; a store-exclusive met first ends it."""
    offset = at - sym_start
    scan_end = np.where(offset < 4 * A64_ATOMIC_SCAN, at - (offset // 4) * 4, at - 4 * A64_ATOMIC_SCAN)
    back = at[:, None] - np.uint64(4) * np.arange(1, A64_ATOMIC_SCAN + 1, dtype=np.uint64)[None, :]
    valid = (back >= scan_end[:, None]) & (back < at[:, None])
    want = np.unique(back[valid])
    words = img.words(want)
    w = np.zeros(back.shape, np.uint32)
    w[valid] = words[np.searchsorted(want, back[valid])]
    (lm, lv), (sm, sv) = masks
    store = valid & ((w & sm) == sv)
    load = valid & ((w & lm) == lv) & ~store
    first = np.argmax(store | load, axis=1)
    hit = (store | load).any(axis=1) & load[np.arange(len(at)), first]
    return np.where(hit, back[np.arange(len(at)), first], np.uint64(k.NO_TARGET))


# -- the kprobe_events front end ------------------------------------------------------------------------


def notrace_function(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """trace_kprobe ``within_notrace_func``: the kallsyms symbol holding the address must hold an
    ftrace record, or, for ``foo.cold`` or ``foo.isra.0``, the symbol ``foo`` must (a suffixed
    name whose base does not exist is refused); else "Could not probe notrace function"
    (EINVAL), at any offset. register_kprobe itself does not care."""
    if not len(img.records):
        return  # no dynamic ftrace: the check is compiled out
    notrace = p.found & ~img.traced(p.sym_start, p.sym_end)
    dotted, base = img.bases(p.sym_name)
    found, start, end, _ = img.kallsyms.containing_all(base)
    base_traced = (base != k.NO_TARGET) & found & img.traced(start, end)
    for row in np.flatnonzero(notrace & ~(dotted & base_traced)).tolist():
        name = img.cx.string(int(p.sym_name[row]))
        yield _refusal(
            img,
            p,
            row,
            "notrace",
            "EINVAL",
            f'{name} has no ftrace record: kprobe_events refuses it ("Could not probe notrace function"); '
            "register_kprobe accepts it",
            interface=KPROBE_EVENTS,
        )


def non_unique_symbol(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """trace_kprobe ``number_of_same_symbols``: a probe given as ``SYM+OFFS`` is refused when
    kallsyms has the name more than once (EADDRNOTAVAIL); by address it is accepted, and
    register_kprobe silently takes the first match."""
    counts = img.kallsyms.name_counts
    many = np.array([counts.get(i, 0) > 1 for i in p.sym_name.tolist()], bool)
    for row in np.flatnonzero(p.found & many).tolist():
        n = counts[int(p.sym_name[row])]
        if n > 1:
            name = img.cx.string(int(p.sym_name[row]))
            yield _refusal(
                img,
                p,
                row,
                "non-unique-symbol",
                "EADDRNOTAVAIL",
                f"{n} kallsyms symbols are named {name}: kprobe_events refuses {name}+offset; give the address",
                interface=KPROBE_EVENTS_BY_NAME,
                count=n,
            )


#: The rules in the kernel's order of checks.
RULES: list[Rule] = [
    no_symbol,
    ftrace_record,
    not_kernel_text,
    blacklisted,
    reserved_site,
    bug_site,
    cfi_preamble,
    not_insn_boundary,
    x86_unprobeable,
    a64_unprobeable,
    atomic_window,
    notrace_function,
    non_unique_symbol,
]


# -- the scan's rule --------------------------------------------------------------------------------------

#: Reasons rules/kernel.py already reports for a whole function.
BLACKLIST_REASONS = frozenset({"kprobe-blacklist", "noinstr", "entry-text"})


def refused_entries(cx: Context) -> Iterator[Finding]:
    """Each out-of-line instance whose entry register_kprobe surely refuses for a reason other
    than the blacklist (which ``kprobe-blacklist``/``noinstr``/``entry-text`` report): a function
    that starts with a static branch, an int3, a BUG…"""
    try:
        cx.shared(KernelImage)
    except ValueError:
        return
    # At the symbol, where a probe on the name goes. An instance without one is skipped: GCC's
    # DW_AT_low_pc lies past arm64's patchable-entry NOPs, so such a DWARF instance's low_pc is
    # no entry (its symbol is an instance of its own).
    main = cx.inst_main_symbol
    rows = np.flatnonzero((cx.inst_range_count > 0) & (main >= 0))
    lows = cx.sym["address"][main[rows]]
    found = refusals(cx, lows)
    for low, refs in zip(lows.tolist(), found):
        # certain ones only: a paravirt call at an entry is refused in the file's bytes, not in
        # the ones the kernel patches in at boot
        refs = [r for r in refs if r.interface == REGISTER_KPROBE and r.reason not in BLACKLIST_REASONS and r.certain]
        if refs:
            yield finding(cx, low, refs)


def _instance_at(cx: Context, address: int) -> int:
    lows, highs = cx.inst_main_range
    hit = np.flatnonzero((lows <= address) & (address < highs))
    return int(hit[0]) if len(hit) else -1


RULES_SCAN = [refused_entries]

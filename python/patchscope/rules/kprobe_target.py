"""What a kprobe request is made of, as the refusal checks read it: the kernel image (its
tables, release and code), the addresses asked about (the instruction holding each), and a
refusal (reason, errno, interface). The checks themselves: rules/refused.py (the generic ones,
in the kernel's order), rules/refused_x86.py, rules/refused_arm64.py, rules/refused_ppc.py."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.context import Context
from patchscope.rules import kernel
from patchscope.rules.entry import Entries
from patchscope.rules.finding import hexa

REGISTER_KPROBE = "register_kprobe"
KPROBE_EVENTS = "kprobe_events"
KPROBE_EVENTS_BY_NAME = "kprobe_events (by symbol name)"

#: Kinds of ``kernel_sites`` whose bytes the kernel rewrites at boot.
BOOT_REWRITTEN = ("alternative", "paravirt", "retpoline", "return-thunk")

#: Releases where a rule changed: x86 ``is_exception_insn`` (commit e884edbb844f, probes-v6.9);
#: arm64 load/store-exclusive masks narrowed to exclusives only (2025, Peilin Ye; 6.15 as the
#: first release with it is unverified against a tag — 6.1, which the tests check, has the old
#: masks).
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


# -- the image ----------------------------------------------------------------------------------


class KernelImage:
    """A kernel image or module as register_kprobe sees it."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        self.arch = cx.arch
        names = set(cx.table("sections").column("name").to_pylist())
        self.module = ".modinfo" in names or ".gnu.linkonce.this_module" in names
        if not (self.module or cx.is_kernel()):
            raise ValueError(f"{cx.path}: not a kernel image or module: kprobes do not apply")
        self.version = release_version(cx.info.get("kernel_release", ""))
        self.kallsyms = cx.shared(kernel.Kallsyms)
        self.blacklist = kernel.blacklist(cx)

    @cached_property
    def sites(self) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        """Per kind of ``kernel_sites``: (address, size, key, flags), sorted by address."""
        t = self.cx.table("kernel_sites")
        kinds = t.column("kind").cast(pa.string())
        out: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}
        for kind in set(cast(list[str], kinds.to_pylist())):  # every site has a kind
            s = t.filter(pc.equal(kinds, pa.scalar(kind)))
            addr = s.column("address").to_numpy()
            order = np.argsort(addr, kind="stable")
            address, size, key, flags = (s.column(c).to_numpy()[order] for c in ("address", "size", "key", "flags"))
            out[kind] = (address, size, key, flags)
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
            at = self.cx.probe_sites(recs, recs)
            nop = at.column("kind").to_numpy() == _core.kind.NOP
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
        s = self.cx.table("sections")
        execute = (s.column("flags").to_numpy() & 0x4) != 0  # SHF_EXECINSTR
        names = cast(list[str], s.column("name").to_pylist())  # every section has a name
        return [
            (int(a), int(a) + int(z))
            for a, z, n, x in zip(s.column("address").to_numpy(), s.column("size").to_numpy(), names, execute)
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
        addr = {i: found.get(b, _core.NO_TARGET) for i, b in base.items()}
        dotted = np.array([int(i) in base for i in name_ids.tolist()], bool)
        return dotted, np.array([addr.get(int(i), _core.NO_TARGET) for i in name_ids.tolist()], np.uint64)

    def words(self, addrs: np.ndarray) -> np.ndarray:
        """The 32-bit little-endian words at ``addrs`` (arm64 instructions)."""
        if not len(addrs):
            return np.zeros(0, np.uint32)
        t = self.cx.probe_sites(addrs, addrs)
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
    #: x86: the opcode as the kernel's decoder lays it out (the core's ``probe_sites``): the
    #: first opcode byte, the next, the byte in the ModRM's place, a 0x67 prefix, VEX/EVEX.
    op: np.ndarray
    op2: np.ndarray
    modrm: np.ndarray
    addr32: np.ndarray
    vex: np.ndarray
    version: tuple[int, int] | None
    uncertain: np.ndarray
    #: arm64: the cpucaps of the CPU the kernel runs on (``--cpu``), None when unknown
    cpu: frozenset[int] | None = None

    @classmethod
    def of(
        cls,
        img: KernelImage,
        addrs: np.ndarray,
        version: tuple[int, int] | None,
        cpu: frozenset[int] | None = None,
        at: np.ndarray | None = None,
    ) -> Probes:
        """``at``: where ``_kprobe_addr`` put each probe before the symbol lookup, when that is
        not ``addrs`` (ppc64's ``kprobe_lookup_name`` for a probe given as ``SYM``)."""
        at = addrs.copy() if at is None else at.copy()
        found, start, end, name = img.kallsyms.containing_all(at)
        decode_from = np.where(found, start, at)
        sites = img.cx.probe_sites(decode_from, at)
        endbr = found & (at == start) & (sites.column("kind").to_numpy() == _core.kind.ENDBR)
        if endbr.any():  # x86 IBT: a probe on the symbol lands after its ENDBR (arch_adjust_kprobe_addr)
            at[endbr] = at[endbr] + np.uint64(4)
            moved = img.cx.probe_sites(decode_from[endbr], at[endbr])
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
            op=sites.column("op").to_numpy(),
            op2=sites.column("op2").to_numpy(),
            modrm=sites.column("modrm").to_numpy(),
            addr32=sites.column("addr32").to_numpy().astype(bool),
            vex=sites.column("vex").to_numpy().astype(bool),
            version=version,
            uncertain=img.rewritten(at),
            cpu=cpu,
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


def refusal(
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

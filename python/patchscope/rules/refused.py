"""What the kernel answers to a kprobe at each address, predicted from the vmlinux or module.

Two interfaces, two columns. ``register_kprobe`` is where every probe ends up (a SystemTap
module calls it directly; perf, bpftrace and tracefs go through it too). The trace_kprobe front
end (kernel/trace/trace_kprobe.c: tracefs ``kprobe_events`` and the ``perf_kprobe`` PMU that
perf and bpftrace open) refuses more before it gets there: a function ftrace cannot trace, and
a symbol name that is not unique.

Each rule — below, and the arch checks in refused_x86.py, refused_arm64.py, refused_arm.py,
refused_ppc.py and refused_s390.py — is one check of the kernel, as written in Linux 6.1
(Debian's linux-source-6.1 6.1.192, the source of the 6.1.0-56 kernel the project was checked
against; docs/findings/refused-address.md lists the checks), in the order the kernel makes
them, so the first refusal of an address is the error it returns:

* ``_kprobe_addr``: kallsyms must hold the address (``ENOENT``); on x86 a probe on a symbol's
  ``ENDBR`` moves past it (``arch_adjust_kprobe_addr``).
* ``check_kprobe_address_safe``: an ftrace record (arm64 6.1 has no KPROBES_ON_FTRACE:
  ``EINVAL``), core kernel text, ``within_kprobe_blacklist`` (rules/kernel.py),
  ``jump_label_text_reserved``, ``static_call_text_reserved``, ``find_bug``,
  ``is_cfi_preamble_symbol`` (all ``EINVAL``).
* ``arch_prepare_kprobe``. x86: ``can_probe`` (an instruction boundary, decoding from the
  kallsyms symbol: ``EILSEQ``), ``__copy_instruction`` (``EINVAL``), ``prepare_emulation``
  (``EOPNOTSUPP``). arm64: alignment, ``search_exception_tables``, ``arm_kprobe_decode_insn``
  with its backward scan for an open load-exclusive (all ``EINVAL``). powerpc: alignment,
  ``can_single_step``, the suffix of a prefixed instruction (all ``EINVAL``); before them
  ``arch_within_kprobe_blacklist`` refuses the head text, and a probe given as ``SYM`` moves
  to the ftrace call site or the local entry (``kprobe_lookup_name``, ``by_name``). s390x
  (refused_s390.py): ``can_probe`` (even, an instruction boundary),
  ``probe_is_prohibited_opcode`` (``EINVAL``). 32-bit ARM (refused_arm.py): alignment,
  ``arm_probes_decode_insn``, the stack check (all ``EINVAL``).

The running kernel rewrites some of its code at boot (alternatives, paravirt calls, retpolines,
return thunks): inside those sites an answer that depends on the instruction bytes is read from
the file's bytes and marked ``certain=False``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.rules.finding import Band, Finding, code, hexa
from patchscope.rules.kprobe_target import (
    BOOT_REWRITTEN,
    KPROBE_EVENTS,
    KPROBE_EVENTS_BY_NAME,
    REGISTER_KPROBE,
    KernelImage,
    Probes,
    Refusal,
    Rule,
    refusal,
)
from patchscope.rules.refused_arm import arm_arch_prepare
from patchscope.rules.refused_arm64 import a64_arch_prepare
from patchscope.rules.refused_ppc import is_elfv2, ppc_arch_prepare, ppc_head_text, ppc_lookup_name
from patchscope.rules.refused_s390 import s390_arch_prepare
from patchscope.rules.refused_x86 import not_insn_boundary, x86_unprobeable

REFUSED_ADDRESS = code(
    "refused-address",
    Band.HAZARDOUS,
    "the kernel refuses a kprobe at this address (register_kprobe, or only its kprobe_events front end)",
)

#: Interfaces. Every probe reaches register_kprobe; the trace_kprobe front end (tracefs
#: kprobe_events, the perf_kprobe PMU) checks more first, one check only for a probe given by name.


def refusals(
    target: Binary | Context,
    addresses: Sequence[int] | np.ndarray,
    *,
    version: tuple[int, int] | None = None,
    cpu: frozenset[int] | None = None,
    by_name: Sequence[bool] | np.ndarray | bool = False,
) -> list[list[Refusal]]:
    """For each address, every reason the kernel would refuse a kprobe there, in the kernel's
    order: first the register_kprobe refusals, then those only the kprobe_events front end adds.
    An empty list means accepted. ``version`` overrides the kernel release the image states;
    ``cpu`` (arm64 cpucaps, refused_arm64.a64_cpu) fixes the code the alternatives patch in.
    ``by_name`` (per address, or for all): the probe names the symbol starting there (``SYM``,
    ``SYM+0``), which ppc64 moves (:func:`by_name_lands`).
    Raises ValueError for a binary that is neither a kernel image nor a module."""
    cx = target if isinstance(target, Context) else Context(target)
    img = cx.shared(KernelImage)
    addrs = np.asarray(addresses, np.uint64)
    p = Probes.of(img, addrs, version or img.version, cpu, at=by_name_lands(img, addrs, by_name))
    out: list[list[Refusal]] = [[] for _ in range(len(p.addr))]
    for rule in RULES:
        for row, r in rule(img, p):
            out[row].append(r)
    return out


def by_name_lands(
    img: KernelImage, addrs: np.ndarray, by_name: Sequence[bool] | np.ndarray | bool
) -> np.ndarray | None:
    """Where ``_kprobe_addr`` puts a probe given as ``SYM+0`` for each address (None: all where
    asked). ppc64 ELFv2 only: ``kprobe_lookup_name`` moves it to the ftrace call site or the local
    entry; a probe by address, or at ``SYM+OFFS`` with OFFS > 0, stays."""
    named = np.broadcast_to(np.asarray(by_name, bool), addrs.shape)
    if not is_elfv2(img) or not named.any():
        return None
    found, start, _, _ = img.kallsyms.containing_all(addrs)
    move = named & found & (addrs == start)
    out = addrs.copy()
    out[move] = ppc_lookup_name(img, addrs[move])
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


def finding(cx: Context, inst: int, address: int, found: list[Refusal]) -> Finding:
    """A ``refused-address`` finding for one probe address of instance row ``inst``."""
    return Finding(
        REFUSED_ADDRESS,
        int(cx.inst_fid[inst]) if inst >= 0 else -1,
        found[0].message,
        evidence(address, found),
        instance=inst,
        address=address,
    )


# -- register_kprobe: resolving the address -----------------------------------------------------------


def no_symbol(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``_kprobe_addr``: kallsyms_lookup_size_offset must find a symbol holding the address."""
    for row in np.flatnonzero(~p.found).tolist():
        yield refusal(img, p, row, "no-symbol", "ENOENT", "no kallsyms symbol holds it (_kprobe_addr)")


# -- check_kprobe_address_safe ----------------------------------------------------------------------


def ftrace_record(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``check_ftrace_location``: a probe exactly on an ftrace record becomes an ftrace-based
    kprobe where the kernel has KPROBES_ON_FTRACE (x86), and is refused where it does not
    (arm64 in 6.1). (Inside an x86 ``call __fentry__``, see :func:`not_insn_boundary`.)"""
    recs = img.records
    if img.arch not in ("aarch64", "arm") or not len(recs):  # neither has KPROBES_ON_FTRACE in 6.1
        return
    i = np.minimum(np.searchsorted(recs, p.at, "left"), len(recs) - 1)
    for row in np.flatnonzero((recs[i] == p.at) & p.found).tolist():
        yield refusal(
            img,
            p,
            row,
            "ftrace-site",
            "EINVAL",
            "the ftrace call site itself (the NOP ftrace patches into a call): "
            f"{'arm' if img.arch == 'arm' else 'arm64'} 6.1 has no KPROBES_ON_FTRACE, "
            "so check_ftrace_location refuses it",
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
        yield refusal(
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
    entry = bl.holding(p.at)
    dotted, base = img.bases(p.sym_name)
    via_base = np.where((entry < 0) & dotted & (base != _core.NO_TARGET), bl.holding(base), -1)
    es = bl._sorted[2]
    for row in np.flatnonzero(p.found & ((entry >= 0) | (via_base >= 0))).tolist():
        via = None if entry[row] >= 0 else img.cx.string(int(p.sym_name[row])).split(".", 1)[0]
        e = es[entry[row] if entry[row] >= 0 else via_base[row]]
        how = f"a clone of {via}, which is blacklisted ({e.why})" if via else e.why
        yield refusal(
            img,
            p,
            row,
            e.code.name,
            "EINVAL",
            f"in the kprobe blacklist: {how}; range {hexa(e.start)}-{hexa(e.end)} ({e.name})",
            range=[hexa(e.start), hexa(e.end)],
            listed=e.name,
            why=e.why,
            via=via,
        )


def reserved_site(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """``jump_label_text_reserved`` and ``static_call_text_reserved``: a probe overlapping the
    patched instruction (``[code, code + size)``: the 2- or 5-byte jump or NOP of a static
    branch, the 5-byte call of a static call) would be overwritten by the next patch."""
    for kind, what in (
        ("jump-label", "a static branch (jump label) site"),
        ("static-call", "a static call site"),
    ):
        if kind not in img.sites:
            continue
        hit = img.site_holding(kind, p.at)
        addr, size, key, _ = img.sites[kind]
        for row in np.flatnonzero((hit >= 0) & p.found).tolist():
            i = hit[row]
            site = int(addr[i])
            yield refusal(
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
        yield refusal(
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
        yield refusal(img, p, row, "cfi-preamble", "EINVAL", "a CFI/padding preamble symbol")


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
    base_traced = (base != _core.NO_TARGET) & found & img.traced(start, end)
    for row in np.flatnonzero(notrace & ~(dotted & base_traced)).tolist():
        name = img.cx.string(int(p.sym_name[row]))
        yield refusal(
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
            yield refusal(
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
    ppc_head_text,
    reserved_site,
    bug_site,
    cfi_preamble,
    not_insn_boundary,
    x86_unprobeable,
    a64_arch_prepare,
    ppc_arch_prepare,
    s390_arch_prepare,
    arm_arch_prepare,
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
    # At the symbol, where a probe on the name goes; an instance no symbol names is skipped
    main = cx.inst_main_symbol
    rows = np.flatnonzero((cx.inst_range_count > 0) & (main >= 0))
    lows = cx.sym["address"][main[rows]]
    found = refusals(cx, lows)
    for row, low, refs in zip(rows.tolist(), lows.tolist(), found):
        # certain ones only: a paravirt call at an entry is refused in the file's bytes, not in
        # the ones the kernel patches in at boot
        refs = [r for r in refs if r.interface == REGISTER_KPROBE and r.reason not in BLACKLIST_REASONS and r.certain]
        if refs:
            yield finding(cx, row, low, refs)


RULES_SCAN = [refused_entries]

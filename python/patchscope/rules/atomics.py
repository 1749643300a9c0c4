"""Atomic sequences a probe must not enter: load-linked … store-conditional windows, hardware
transactions, and atomics done inside a helper whose form is chosen at run time.

Read from the decoded machine code (the core's ``LL``/``SC``/``TM_*``/``HLE`` events and, for
the evidence and the control flow, ``instructions``). Encodings, window lengths and the kernels'
behaviour are those of GDB's ``*_deal_with_atomic_sequence``, the arm64 kprobe decoder
(arch/arm64/kernel/probes/decode-insn.c), Intel SDM Vol.1 §16.3.7 and the kernel's
Documentation/powerpc/transactional_memory.rst; docs/findings/llsc-window.md and tm-region.md
say what each finding means.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import TypedDict, cast

import numpy as np
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index import machine
from patchscope.index.context import Context
from patchscope.index.machine import Instruction
from patchscope.rules.finding import Band, Finding, code, hexa
from patchscope.rules.returns import Events, _events

LLSC_WINDOW = code(
    "llsc-window",
    Band.HAZARDOUS,
    "a load-linked … store-conditional window: a probe inside clears the reservation, the store "
    "fails on every retry and the loop livelocks",
)
TM_REGION = code(
    "tm-region",
    Band.HAZARDOUS,
    "a hardware transaction (or an HLE-elided lock): a probe inside aborts it, so the probe never "
    "fires or the fallback path runs instead",
)
ATOMIC_HELPER_CALL = code(
    "atomic-helper-call",
    Band.GRAY,
    "a call to an outline-atomic (__aarch64_*) or libatomic (__atomic_*) helper: the atomic's LL/SC "
    "or single-instruction form is chosen at run time inside the helper",
)

#: How many instructions after its load-linked a store-conditional may come and still close the
#: window: the arm64 kernel scans 32 back (``is_probed_address_atomic``), GDB 16 (30 on
#: LoongArch), the RISC-V spec bounds a constrained LR/SC loop at 16.
WINDOW_MAX = {"aarch64": 32, "loongarch64": 30}
WINDOW_DEFAULT = 16

#: Why a probe inside a window livelocks, per architecture.
LLSC_WHY = {
    "aarch64": "the probe's exception return clears the exclusive monitor",
    "ppc64le": "every interrupt return clears the reservation (stdcx. in the exit path)",
    "ppc64": "every interrupt return clears the reservation (stdcx. in the exit path)",
    "riscv64": "the trap return invalidates the reservation (sc in RESTORE_ALL)",
}

#: What an unmatched load-linked means to the kernel, per architecture.
UNTERMINATED = {
    "aarch64": "the arm64 kernel refuses kprobes in the 32 instructions after an unmatched load-exclusive "
    "(is_probed_address_atomic)",
}

#: Names of the transactional-memory flavour, its begin and end, per architecture.
TM_NAMES = {
    "x86_64": ("RTM", "XBEGIN", "XEND"),
    "x86": ("RTM", "XBEGIN", "XEND"),
    "ppc64le": ("HTM", "tbegin.", "tend."),
    "ppc64": ("HTM", "tbegin.", "tend."),
    "aarch64": ("TME", "TSTART", "TCOMMIT"),
    "s390x": ("TX", "TBEGIN", "TEND"),
}
#: What a probe inside a transaction does, per flavour.
TM_WHY = {
    "RTM": "a breakpoint (#BP) or debug trap inside an RTM transaction aborts it (Intel SDM Vol.1 16.3.7): "
    "the probe never fires and the fallback path runs instead",
    "HTM": "any trap inside a transaction makes the kernel reclaim it: it fails each time the probe is hit "
    "and takes the failure path (code without a non-transactional fallback livelocks)",
    "TME": "a breakpoint inside a TME transaction fails it (cause DBG) without taking the debug exception: "
    "the probe never fires",
    "TX": "a program interruption inside a transaction (the probe's breakpoint) aborts it (z/Architecture "
    "Principles of Operation, Transactional Execution): the interruption is reported at the abort, with "
    "the transaction's stores discarded, and the abort path after TBEGIN runs instead",
}
HLE_WHY = (
    "a trap inside the elided critical section aborts elision and the lock is really taken: "
    "correct, but the probe turns lock elision off"
)
#: Aborts that never fall through inside a transaction; ppc's conditional ``tabort?c[i].`` do.
UNCONDITIONAL_ABORTS = ("xabort", "tabort.", "tcancel", "tabort")
#: s390 branches taken when TBEGIN did not start the transaction (condition code 1-3: BRC/BRCL
#: mask 7, capstone's ``jne``/``jgne``): right after TBEGIN, the target is the abort handler.
S390_ABORTED = re.compile(r"jg?n[ez]\s")

#: Call targets that do an atomic operation at run time: libgcc's arm64 outline atomics and
#: libatomic's operations (its libatomic.map: the generic and sized load, store, exchange,
#: compare-exchange, fetch-op and op-fetch, test-and-set), also behind a ppc64
#: ``xxxxxxxx.plt_call.`` stub. Spelled out, not ``__atomic_*``: a program's own function may
#: share the prefix (glibc's ``__atomic_wide_counter_load_relaxed`` is two plain loads), and
#: ``__atomic_is_lock_free`` is a query. RE2 syntax (Arrow runs it).
HELPER = (
    r"^(?:[0-9a-f]{8}\.plt_call\.)?"
    r"(__aarch64_(?:cas|swp|ldadd|ldclr|ldeor|ldset)(?:1|2|4|8|16)_(?:relax|acq|rel|acq_rel|sync)"
    r"|__atomic_(?:(?:load|store|exchange|compare_exchange|test_and_set)(?:_(?:1|2|4|8|16))?"
    r"|(?:fetch_(?:add|sub|and|or|xor|nand)|(?:add|sub|and|or|xor|nand)_fetch)_(?:1|2|4|8|16)))"
    r"(?:@.*)?$"
)
_HELPER_RE = re.compile(HELPER)
HELPER_WHY = {
    "outline": "libgcc's outline-atomic helper picks at run time (by __aarch64_have_lse_atomics) between one "
    "LSE instruction and an LDAXR/STLXR loop: the LL/SC window, if any, is inside the helper",
    "libatomic": "the operation runs inside libatomic, which picks an LL/SC loop, a single atomic instruction "
    "or a lock at run time: any window is in libatomic, not here",
}
#: How a call reached its helper, in a sentence.
VIA = {
    "PLT": "the PLT",
    "PLT (call stub)": "a PLT call stub",
    "GOT slot (-fno-plt)": "a GOT slot (-fno-plt)",
    "relocation (undefined symbol)": "an undefined symbol (relocation)",
}
#: PLT sections: a call into one of these goes through a GOT slot named by a dynamic relocation.
PLT_SECTIONS = (".plt", ".plt.sec", ".plt.got", ".iplt")


class InstanceCode:
    """The decoded instructions of one instance (all its ranges) and their control flow."""

    def __init__(self, parts: list[list[Instruction]]) -> None:
        self.insns: list[Instruction] = []
        self.part: list[int] = []  # per instruction, the index of its range
        for p, got in enumerate(parts):
            self.insns += got
            self.part += [p] * len(got)
        self.index = {x["address"]: i for i, x in enumerate(self.insns)}

    def at(self, addr: int) -> int | None:
        return self.index.get(int(addr))

    def next_of(self, i: int) -> int | None:
        j = i + 1
        return j if j < len(self.insns) and self.part[j] == self.part[i] else None

    def successors(self, i: int) -> list[int]:
        """Where control goes after instruction ``i`` inside the instance. A transaction's
        begin falls through (the started path); calls return; indirect jumps are not followed."""
        x = self.insns[i]
        kind, nxt = x["kind"], self.next_of(i)
        out: list[int | None] = []
        if kind in (_core.kind.ERROR, _core.kind.JUMP_INDIRECT, _core.kind.TAIL_JUMP_INDIRECT):
            pass
        elif kind == _core.kind.RETURN:
            if x["extra"] & _core.flag.CONDITIONAL:
                out.append(nxt)
        elif kind in (_core.kind.JUMP, _core.kind.TAIL_JUMP_DIRECT, _core.kind.JUMP_TO_ENTRY):
            out.append(self.at(x["target"]))
            if x["extra"] & _core.flag.CONDITIONAL:
                out.append(nxt)
        elif kind == _core.kind.TRAP:
            if x["extra"] & 0xFF == _core.trap.CONDITIONAL:  # its low byte; ppc tw/td with TO != 31
                out.append(nxt)
        else:
            out.append(nxt)
        return [j for j in out if j is not None]

    def falls_through(self, i: int) -> bool:
        """Whether execution can continue at the next instruction (not after a return or an
        unconditional jump)."""
        x = self.insns[i]
        if x["kind"] in (_core.kind.RETURN, _core.kind.JUMP, _core.kind.TAIL_JUMP_DIRECT, _core.kind.JUMP_TO_ENTRY):
            return bool(x["extra"] & _core.flag.CONDITIONAL)
        return x["kind"] not in (_core.kind.JUMP_INDIRECT, _core.kind.TAIL_JUMP_INDIRECT, _core.kind.ERROR)

    def line(self, i: int, cx: Context) -> str:
        x = self.insns[i]
        text = x["text"]
        if x["target"] != _core.NO_TARGET and x["kind"] == _core.kind.CALL_DIRECT:
            text = re.sub(r"0x[0-9a-f]+$", cx.name_at(x["target"]), text)
        return f"{hexa(x['address'])}: {text}"

    def mnemonic(self, i: int) -> str:
        return self.insns[i]["text"].split(None, 1)[0]

    def runs(self, members: list[int]) -> list[list[str]]:
        """Sorted instruction indexes as contiguous address ranges ``[low, high)``."""
        out: list[list[int]] = []
        for i in sorted(members):
            x = self.insns[i]
            lo, hi = x["address"], x["address"] + x["size"]
            if out and out[-1][1] == lo:
                out[-1][1] = hi
            else:
                out.append([lo, hi])
        return [[hexa(a), hexa(b)] for a, b in out]


#: Batched decoding: ranges closer than this are decoded in one call (a call has a fixed cost of
#: ~10 ms on a vmlinux), up to this many bytes per call.
DECODE_GAP, DECODE_SPAN = 1024, 256 * 1024


def decode(cx: Context, rows: list[int]) -> dict[int, InstanceCode]:
    """The code of each instance of ``rows``, decoded in few ``instructions`` calls: nearby
    ranges share one linear decode, sliced per range where it lands on the range's start
    (else that range is decoded alone)."""
    ranges = sorted((lo, hi) for row in rows for lo, hi in cx.inst_ranges(row) if hi > lo)
    spans: list[list[int]] = []
    for lo, hi in ranges:
        if spans and lo - spans[-1][1] <= DECODE_GAP and max(hi, spans[-1][1]) - spans[-1][0] <= DECODE_SPAN:
            spans[-1][1] = max(spans[-1][1], hi)
        else:
            spans.append([lo, hi])
    lows, highs = (np.array([s[i] for s in spans], np.uint64) for i in (0, 1))
    decoded = list(zip(lows.tolist(), machine.instructions_many(cx.b.core, lows, highs)))
    starts = [lo for lo, _ in decoded]
    addrs = [np.array([x["address"] for x in insns], np.uint64) for _, insns in decoded]

    def part(lo: int, hi: int) -> list[Instruction]:
        s = int(np.searchsorted(starts, lo, "right")) - 1
        a = int(np.searchsorted(addrs[s], lo, "left"))
        if a < len(addrs[s]) and addrs[s][a] == lo:
            return decoded[s][1][a : int(np.searchsorted(addrs[s], hi, "left"))]
        return cx.instructions(lo, hi)

    return {row: InstanceCode([part(lo, hi) for lo, hi in cx.inst_ranges(row) if hi > lo]) for row in rows}


class InlineSites:
    """The address ranges of the concrete inline sites (``ranges`` rows owned by a site DIE),
    sorted by start: which inlined functions cover an address."""

    def __init__(self, cx: Context) -> None:
        dies = cx.sites.column("die").to_numpy()
        order = np.argsort(dies, kind="stable")
        owner = cx.raw("ranges").column("owner").to_numpy()
        pos = np.minimum(np.searchsorted(dies[order], owner), max(len(dies) - 1, 0))
        hit = (dies[order][pos] == owner) if len(dies) else np.zeros(len(owner), bool)
        site = order[pos[hit]]
        low = cx.raw("ranges").column("low").to_numpy()[hit]
        high = cx.raw("ranges").column("high").to_numpy()[hit]
        by_low = np.argsort(low, kind="stable")
        self.site, self.low, self.high = site[by_low], low[by_low], high[by_low]
        self.depth = cx.sites.column("depth").to_numpy()

    def covering(self, addr: int, floor: int) -> list[int]:
        """Rows of the inline sites covering ``addr``, innermost first. ``floor``: the start of the
        instance range holding ``addr`` (no site range of this instance starts before it)."""
        # as uint64: a Python int makes NumPy convert the whole array on every call
        a = np.searchsorted(self.low, np.uint64(floor), "left")
        b = np.searchsorted(self.low, np.uint64(addr), "right")
        rows = np.unique(self.site[a:b][self.high[a:b] > addr])
        return sorted(rows.tolist(), key=lambda r: -int(self.depth[r]))


def _inline_sites(cx: Context) -> InlineSites:
    return cx.shared(InlineSites)


def inline_sites_at(cx: Context, row: int, addr: int) -> list[int]:
    """Rows of the inline sites of instance ``row`` that hold ``addr``, innermost first."""
    covering = _inline_sites(cx).covering(addr, cx.range_start(row, addr))
    return [r for r in covering if cx.caller_instance[r] == row]


class InlineCall(TypedDict):
    """One inlined function around an address, and where it was inlined."""

    function: str
    call_file: str | None
    call_line: int


def inline_context(cx: Context, row: int, addr: int) -> tuple[list[InlineCall], str]:
    """The chain of inlined functions ``addr`` belongs to, innermost first, and a sentence
    ("inside `a` inlined into `b` inlined into `foo`")."""
    symbol = cx.instance_symbol(row)
    if cx.inst_die[row] == _core.NO_DIE:
        return [], f"no DWARF describes {symbol}, so no inline context is known"
    rows = inline_sites_at(cx, row, addr)
    if not rows:
        return [], f"not inside any inlined function (no inline site of {symbol} covers {hexa(addr)})"
    chain: list[InlineCall] = []
    for r in rows:
        file = cx.sites.column("call_file")[r].as_py()
        line = int(cx.sites.column("call_line")[r].as_py() or 0)
        chain.append({"function": cx.fn_name[int(cx.site_fid[r])], "call_file": file, "call_line": line})
    names = [f"`{c['function']}`" for c in chain] + [f"`{symbol}`"]
    return chain, "inside " + " inlined into ".join(names)


# -- LL/SC windows ----------------------------------------------------------------------------


def _instances_with(ev: Events, *kinds: int) -> list[int]:
    rows: list[int] = np.unique(ev.fid[np.isin(ev.kind, kinds)]).astype(np.int64).tolist()
    return rows


class Window(TypedDict):
    """An LL/SC window's bounds ``[low, high)`` and its branches, as evidence."""

    low: int
    high: int
    branch_targets: list[dict[str, str]]
    exits: list[dict[str, str]]


def _window_details(cx: Context, code_: InstanceCode, first: int, last: int) -> Window:
    """Branch targets inside ``[first, last]`` (and where they come from), branches leaving it."""
    lo = code_.insns[first]["address"]
    hi = code_.insns[last]["address"] + code_.insns[last]["size"]
    targets: list[dict[str, str]] = []
    exits: list[dict[str, str]] = []
    for i, x in enumerate(code_.insns):
        t = x["target"]
        if (
            x["kind"] in (_core.kind.JUMP, _core.kind.TAIL_JUMP_DIRECT, _core.kind.JUMP_TO_ENTRY)
            and t != _core.NO_TARGET
        ):
            if lo <= t < hi:
                targets.append({"target": hexa(t), "from": hexa(x["address"])})
            elif first <= i <= last:
                exits.append({"from": hexa(x["address"]), "to": hexa(t) if code_.at(t) is not None else cx.name_at(t)})
        elif first <= i <= last and x["kind"] == _core.kind.RETURN:
            exits.append({"from": hexa(x["address"]), "to": "return"})
    return {"low": lo, "high": hi, "branch_targets": targets, "exits": exits}


def llsc_window(cx: Context) -> Iterator[Finding]:
    """Each LL with the first SC after it (no other LL between, at most ``WINDOW_MAX``
    instructions on, in the same range); an LL without one is reported as unterminated,
    up to the next LL, ``WINDOW_MAX`` instructions, a return or unconditional jump, or the end
    of its range."""
    ev = _events(cx)
    arch = cx.arch
    limit = WINDOW_MAX.get(arch, WINDOW_DEFAULT)
    why = LLSC_WHY.get(arch, "the trap and its return clear the reservation")
    rows = _instances_with(ev, _core.kind.LL)
    codes = decode(cx, rows)
    for row in rows:
        code_ = codes[row]
        idx = ev.of(row, _core.kind.LL, _core.kind.SC)
        # (instruction, kind, extra) of each LL and SC the decoded code holds, in address order
        marks = sorted(
            (i, int(ev.kind[e]), int(ev.extra[e])) for e in idx.tolist() if (i := code_.at(ev.addr[e])) is not None
        )
        symbol = cx.instance_symbol(row)
        for n, (ll, kind, extra) in enumerate(marks):
            if kind != _core.kind.LL:
                continue
            after = marks[n + 1] if n + 1 < len(marks) else None
            sc = None
            if (
                after
                and after[1] == _core.kind.SC
                and after[0] - ll <= limit
                and code_.part[after[0]] == code_.part[ll]
            ):
                sc = after[0]
            if sc is not None:
                last = sc
            else:
                last = ll
                stop = after[0] if after else len(code_.insns)
                while last + 1 < stop and last + 1 - ll <= limit and code_.part[last + 1] == code_.part[ll]:
                    last += 1
                    if not code_.falls_through(last):
                        break
            d = _window_details(cx, code_, ll, last)
            chain, where = inline_context(cx, row, d["low"])
            listing = [code_.line(i, cx) for i in range(ll, last + 1)]
            evidence = {
                "instance": symbol,
                "low": hexa(d["low"]),
                "high": hexa(d["high"]),
                "terminated": sc is not None,
                "load": code_.mnemonic(ll),
                "store": code_.mnemonic(sc) if sc is not None else None,
                "access_size": extra & _core.flag.SIZE_MASK,
                "acquire": bool(extra & _core.flag.ACQUIRE),
                "release": bool(after[2] & _core.flag.RELEASE) if sc is not None and after else False,
                "pair": bool(extra & _core.flag.PAIR),
                "instructions": listing,
                "branch_targets": d["branch_targets"],
                "exits": d["exits"],
                "inline_context": chain,
                "inline": where,
            }
            span = f"{hexa(d['low'])}-{hexa(d['high'])}"
            if sc is not None:
                msg = (
                    f"{symbol}: LL/SC window {span} ({code_.mnemonic(ll)} … {code_.mnemonic(sc)}, "
                    f"{len(listing)} instructions), {where}: a probe anywhere inside livelocks the sequence — "
                    f"{why}, so the store-conditional fails on every retry"
                )
            else:
                msg = (
                    f"{symbol}: {code_.mnemonic(ll)} at {hexa(d['low'])} has no store-conditional within {limit} "
                    f"instructions (unterminated window {span}), {where}: a load-linked used for a wait (WFE) or "
                    f"a sequence whose store-conditional is reached another way; {UNTERMINATED.get(arch, why)}"
                )
            yield Finding(LLSC_WINDOW, int(cx.inst_fid[row]), msg, evidence, instance=row, address=d["low"])


# -- transactional memory ---------------------------------------------------------------------


def _transaction(code_: InstanceCode, begin: int) -> tuple[list[int], list[int], bool, list[int]]:
    """The instructions on some path from a transaction's begin to one of its ends (commit or
    unconditional abort), not through another begin; else (no end in this instance) every
    instruction reachable from the begin. Returns (members, ends, terminated, open exits: the
    ways out of the function reachable from the begin without an end)."""
    reach: set[int] = set()
    ends: list[int] = []
    open_exits: list[int] = []
    aborted = _abort_branch(code_, begin)
    stack = list(code_.successors(begin))
    while stack:
        i = stack.pop()
        if i in reach or i == begin:
            continue
        x = code_.insns[i]
        if x["kind"] == _core.kind.TM_BEGIN:
            continue
        reach.add(i)
        if i == aborted:  # only the started path stays in the transaction
            stack.extend(j for j in [code_.next_of(i)] if j is not None)
            continue
        if x["kind"] == _core.kind.TM_END or (
            x["kind"] == _core.kind.TM_ABORT and code_.mnemonic(i) in UNCONDITIONAL_ABORTS
        ):
            ends.append(i)
            continue
        leaves = x["kind"] in (
            _core.kind.RETURN,
            _core.kind.JUMP_INDIRECT,
            _core.kind.TAIL_JUMP_DIRECT,
            _core.kind.TAIL_JUMP_INDIRECT,
        ) or (x["kind"] == _core.kind.JUMP and code_.at(x["target"]) is None)
        if leaves:
            open_exits.append(i)
        stack.extend(code_.successors(i))
    if not ends:
        return sorted(reach | {begin}), [], False, sorted(open_exits)
    return sorted(_leading_to(code_, reach, ends, begin) | {begin}), sorted(ends), True, sorted(open_exits)


def _abort_branch(code_: InstanceCode, begin: int) -> int | None:
    """The s390 ``brc 7`` right after TBEGIN: its target is the abort handler, run outside the
    transaction (TBEGIN sets condition code 0 when the transaction started)."""
    nxt = code_.next_of(begin)
    if code_.mnemonic(begin) != "tbegin" or nxt is None or not S390_ABORTED.match(code_.insns[nxt]["text"]):
        return None
    return nxt


def _leading_to(code_: InstanceCode, reach: set[int], ends: list[int], start: int | None = None) -> set[int]:
    """The instructions of ``reach`` on some path to one of ``ends`` (the ends included), with
    ``start`` as a way in that no path comes back through."""
    preds: dict[int, list[int]] = {}
    for i in (reach | {start} if start is not None else reach).difference(ends):
        for j in code_.successors(i):
            if j in reach:
                preds.setdefault(j, []).append(i)
    back = set(ends)
    stack = list(ends)
    while stack:
        for p in preds.get(stack.pop(), []):
            if p not in back:
                back.add(p)
                stack.append(p)
    return back


def _committed_here(code_: InstanceCode, entry: int) -> tuple[list[int], list[int]]:
    """The commits reachable from the instance's entry without passing a begin or an
    unconditional abort: they end a transaction begun before the call (glibc's
    ``__lll_unlock_elision`` commits what ``__lll_lock_elision`` began). Returns (the
    instructions on some path from the entry to one of them, the commits); ([], []) if none."""
    reach: set[int] = set()
    ends: list[int] = []
    stack = [entry]
    while stack:
        i = stack.pop()
        if i in reach:
            continue
        x = code_.insns[i]
        if x["kind"] == _core.kind.TM_BEGIN or (
            x["kind"] == _core.kind.TM_ABORT and code_.mnemonic(i) in UNCONDITIONAL_ABORTS
        ):
            continue
        reach.add(i)
        if x["kind"] == _core.kind.TM_END:
            ends.append(i)
            continue
        stack.extend(code_.successors(i))
    if not ends:
        return [], []
    return sorted(_leading_to(code_, reach, ends)), sorted(ends)


def tm_region(cx: Context) -> Iterator[Finding]:
    ev = _events(cx)
    flavour, begin_name, end_name = TM_NAMES.get(cx.arch, ("TM", "begin", "end"))
    rows = _instances_with(ev, _core.kind.TM_BEGIN, _core.kind.HLE, _core.kind.TM_END)
    codes = decode(cx, rows)
    for row in rows:
        code_ = codes[row]
        symbol = cx.instance_symbol(row)
        fid = int(cx.inst_fid[row])
        yield from _tm_committed_here(cx, row, code_, symbol, fid, flavour, end_name)
        for e in ev.of(row, _core.kind.TM_BEGIN, _core.kind.HLE).tolist():
            i = code_.at(ev.addr[e])
            if i is None:
                continue
            addr = int(ev.addr[e])
            chain, where = inline_context(cx, row, addr)
            if ev.kind[e] == _core.kind.HLE:
                prefix = "xacquire" if ev.extra[e] & _core.flag.XACQUIRE else "xrelease"
                yield Finding(
                    TM_REGION,
                    fid,
                    f"{symbol}: {prefix}-prefixed {code_.mnemonic(i)} at {hexa(addr)} (HLE), {where}: {HLE_WHY}",
                    {
                        "instance": symbol,
                        "kind": "HLE",
                        "prefix": prefix,
                        "instructions": [code_.line(i, cx)],
                        "inline_context": chain,
                        "inline": where,
                    },
                    instance=row,
                    address=addr,
                )
                continue
            members, ends, terminated, open_exits = _transaction(code_, i)
            lo = code_.insns[members[0]]["address"]
            hi = code_.insns[members[-1]]["address"] + code_.insns[members[-1]]["size"]
            inner = {
                kind: [code_.line(j, cx) for j in members if code_.insns[j]["kind"] == kk]
                for kind, kk in (
                    ("aborts", _core.kind.TM_ABORT),
                    ("tests", _core.kind.TM_TEST),
                    ("other_tm", _core.kind.TM_OTHER),
                )
            }
            inside = set(members)
            targets = [
                {"target": hexa(x["target"]), "from": hexa(x["address"])}
                for x in code_.insns
                if x["kind"] in (_core.kind.JUMP, _core.kind.JUMP_TO_ENTRY) and code_.at(x["target"]) in inside
            ]
            fallback = code_.insns[i]["target"]
            if (aborted := _abort_branch(code_, i)) is not None:
                fallback = code_.insns[aborted]["target"]
            ranges = code_.runs(members)
            evidence = {
                "instance": symbol,
                "kind": flavour,
                "begin": hexa(addr),
                "ends": [code_.line(j, cx) for j in ends],
                "terminated": terminated,
                "exits_without_end": [code_.line(j, cx) for j in open_exits],
                "fallback": hexa(fallback) if fallback != _core.NO_TARGET else None,
                "ranges": ranges,
                "low": hexa(lo),
                "high": hexa(hi),
                "instructions": [code_.line(j, cx) for j in members],
                **inner,
                "branch_targets": targets,
                "inline_context": chain,
                "inline": where,
            }
            if terminated:
                closing = ", ".join(code_.mnemonic(j) + " at " + hexa(code_.insns[j]["address"]) for j in ends)
                msg = (
                    f"{symbol}: {flavour} transaction from {begin_name} at {hexa(addr)} to {closing} "
                    f"({len(members)} instructions in {len(ranges)} range(s)), {where}: "
                    f"{TM_WHY.get(flavour, 'a probe inside aborts the transaction')}"
                )
            else:
                msg = (
                    f"{symbol}: {flavour} transaction begun by {begin_name} at {hexa(addr)} has no {end_name} in "
                    f"{symbol} (it ends in another function, e.g. an unlock): all {len(members)} instructions "
                    f"reachable from it may run transactionally, {where}: "
                    f"{TM_WHY.get(flavour, 'a probe inside aborts the transaction')}"
                )
            yield Finding(TM_REGION, fid, msg, evidence, instance=row, address=addr)


def _tm_committed_here(
    cx: Context, row: int, code_: InstanceCode, symbol: str, fid: int, flavour: str, end_name: str
) -> Iterator[Finding]:
    """A region from the instance's entry to commits no begin of its own leads to: the caller's
    transaction is still open there (``begin`` and ``fallback`` are null, ``opened_elsewhere``)."""
    entry = code_.at(cx.inst_low(row))
    if entry is None or not any(x["kind"] == _core.kind.TM_END for x in code_.insns):
        return
    members, ends = _committed_here(code_, entry)
    if not ends:
        return
    lo = code_.insns[members[0]]["address"]
    hi = code_.insns[members[-1]]["address"] + code_.insns[members[-1]]["size"]
    chain, where = inline_context(cx, row, int(code_.insns[ends[0]]["address"]))
    inside = set(members)
    evidence = {
        "instance": symbol,
        "kind": flavour,
        "begin": None,
        "opened_elsewhere": True,
        "ends": [code_.line(j, cx) for j in ends],
        "terminated": True,
        "exits_without_end": [],
        "fallback": None,
        "ranges": code_.runs(members),
        "low": hexa(lo),
        "high": hexa(hi),
        "instructions": [code_.line(j, cx) for j in members],
        **{
            kind: [code_.line(j, cx) for j in members if code_.insns[j]["kind"] == kk]
            for kind, kk in (
                ("aborts", _core.kind.TM_ABORT),
                ("tests", _core.kind.TM_TEST),
                ("other_tm", _core.kind.TM_OTHER),
            )
        },
        "branch_targets": [
            {"target": hexa(x["target"]), "from": hexa(x["address"])}
            for x in code_.insns
            if x["kind"] in (_core.kind.JUMP, _core.kind.JUMP_TO_ENTRY) and code_.at(x["target"]) in inside
        ],
        "inline_context": chain,
        "inline": where,
    }
    closing = ", ".join(code_.mnemonic(j) + " at " + hexa(code_.insns[j]["address"]) for j in ends)
    msg = (
        f"{symbol}: {closing} commits the {flavour} transaction begun before the call (no begin on the way, "
        f"e.g. the unlock of an elided lock): the {len(members)} instructions from its entry to the {end_name} "
        f"run transactionally, {where}: {TM_WHY.get(flavour, 'a probe inside aborts the transaction')}"
    )
    yield Finding(TM_REGION, fid, msg, evidence, instance=row, address=lo)


# -- calls to atomic helpers --------------------------------------------------------------------


class Plt:
    """Names of PLT stubs and GOT slots, by address: the symbol the dynamic relocation of a
    slot names, and the stub that jumps through that slot (the core's ``plt_names``)."""

    def __init__(self, cx: Context) -> None:
        t = cx.plt_names()
        got = t.column("got").to_numpy().astype(bool)
        # neither column has nulls
        pairs = zip(
            cast("list[int]", t.column("address").to_pylist()),
            cast("list[str]", t.column("name").to_pylist()),
            got.tolist(),
        )
        self.by_stub: dict[int, str] = {}
        self.by_slot: dict[int, str] = {}
        for address, name, is_slot in pairs:
            (self.by_slot if is_slot else self.by_stub)[address] = name

    def name(self, entry: int) -> str | None:
        return self.by_stub.get(entry)


def plt(cx: Context) -> Plt:
    return cx.shared(Plt)


def _helper(name: str | None) -> str | None:
    """The helper's plain name if ``name`` is one, else None."""
    if not name:
        return None
    m = _HELPER_RE.match(name)
    return m.group(1) if m else None


class HelperCall(TypedDict):
    """A call to an atomic helper, as evidence."""

    at: str
    helper: str
    via: str
    #: None when an undefined symbol's relocation names the helper.
    target: str | None
    tail: bool
    family: str


def atomic_helper_call(cx: Context) -> Iterator[Finding]:
    """Direct calls and tail jumps whose target is a helper: a function symbol with a helper's
    name, a PLT entry whose GOT slot's relocation names one, or (relocatable files) an
    undefined helper symbol; and x86 ``call *slot(%rip)`` (``-fno-plt``) through a GOT slot
    whose relocation names one."""
    ev = _events(cx)
    direct = np.isin(ev.kind, (_core.kind.CALL_DIRECT, _core.kind.TAIL_JUMP_DIRECT))
    slot = np.isin(ev.kind, (_core.kind.CALL_INDIRECT, _core.kind.TAIL_JUMP_INDIRECT)) & (
        (ev.extra & _core.flag.SLOT) != 0
    )
    slot &= ev.target != _core.NO_TARGET
    calls = np.flatnonzero(direct | slot)
    if not len(calls):
        return
    targets = ev.target[calls]
    through_slot = slot[calls]
    # candidates: addresses of helper-named symbols, every PLT entry and GOT slot (named below)
    rows, addrs = cx.code_symbols
    named = pc.match_substring_regex(cx.pool, HELPER).to_numpy(zero_copy_only=False)
    candidate = np.isin(targets, addrs[named[cx.sym["name"][rows]]]) | through_slot
    s = cx.table("sections")
    for name, lo, size in zip(
        s.column("name").to_pylist(), s.column("address").to_pylist(), s.column("size").to_pylist()
    ):
        if name in PLT_SECTIONS and lo:
            candidate |= (targets >= lo) & (targets < lo + size)
    external = (ev.extra[calls] & _core.flag.EXTERNAL) != 0  # relocatable file: target_name
    ext_names = cx.machine.events.column("target_name").to_pylist() if external.any() else []
    resolved: dict[int, tuple[str | None, str]] = {}
    by_row: dict[int, list[HelperCall]] = {}
    for j in np.flatnonzero(candidate | external).tolist():
        i = int(calls[j])
        t = int(ev.target[i])
        if external[j]:
            helper, via = _helper(ext_names[i]), "relocation (undefined symbol)"
        elif through_slot[j]:
            helper, via = _helper(plt(cx).by_slot.get(t)), "GOT slot (-fno-plt)"
        else:
            if t not in resolved:
                section = cx.section_at(t)[0]
                if section in PLT_SECTIONS:
                    resolved[t] = (_helper(plt(cx).name(t)), "PLT")
                else:
                    name = cx.name_at(t)
                    resolved[t] = (_helper(name), "PLT (call stub)" if ".plt_call." in name else "direct")
            helper, via = resolved[t]
        if helper is None:
            continue
        by_row.setdefault(int(ev.fid[i]), []).append(
            {
                "at": hexa(ev.addr[i]),
                "helper": helper,
                "via": via,
                "target": None if external[j] else hexa(t),
                "tail": bool(ev.kind[i] in (_core.kind.TAIL_JUMP_DIRECT, _core.kind.TAIL_JUMP_INDIRECT)),
                "family": "outline" if helper.startswith("__aarch64_") else "libatomic",
            }
        )
    lows = cx.inst.column("low_pc").to_numpy()
    with_windows = {int(lows[r]): cx.instance_symbol(r) for r in _instances_with(ev, _core.kind.LL)}
    for row, sites in sorted(by_row.items()):
        symbol = cx.instance_symbol(row)
        helpers = sorted({s["helper"] for s in sites})
        families = sorted({s["family"] for s in sites})
        vias = sorted({c["via"] for c in sites if c["via"] != "direct"})
        local = sorted(
            {
                with_windows[a]
                for c in sites
                if c["via"] == "direct" and c["target"] is not None and (a := int(c["target"], 16)) in with_windows
            }
        )
        msg = (
            f"{symbol} does its atomic operations through {len(sites)} call(s) to {', '.join(helpers)}"
            + (f" (via {', '.join(VIA[v] for v in vias)})" if vias else "")
            + ": "
            + "; ".join(HELPER_WHY[f] for f in families)
            + (f" (in this binary: see llsc-window on {', '.join(local)})" if local else "")
        )
        yield Finding(
            ATOMIC_HELPER_CALL,
            int(cx.inst_fid[row]),
            msg,
            {"instance": symbol, "calls": sites, "helpers": helpers},
            instance=row,
            address=int(sites[0]["at"], 16),
        )


RULES = [llsc_window, tm_region, atomic_helper_call]

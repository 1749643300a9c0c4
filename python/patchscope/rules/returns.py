"""Returns: where a return probe really fires, read from the decoded machine code — tail calls
leave through another function, tail recursion becomes a loop, some functions never return."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cached_property
from typing import Any

import numpy as np

from patchscope import _core
from patchscope.index.context import Context, local_entry_offset
from patchscope.index.functions import rows_of
from patchscope.rules.entry import MULTIPLE_ENTRIES, NORETURN, Entries
from patchscope.rules.finding import Band, Finding, code, hexa

TAIL_CALL_EXIT = code(
    "tail-call-exit",
    Band.GRAY,
    "the function leaves through a jump to another function: a return probe fires at that one's return",
)
RECURSION_AS_LOOP = code(
    "recursion-as-loop",
    Band.GRAY,
    "a self call became a jump back to the entry: an entry probe undercounts the recursion",
)
RECURSIVE = code("recursive", Band.SAFE, "the function calls itself for real: every level is an entry and a return")


class Events:
    """The code events of each instance, by kind."""

    def __init__(self, cx: Context) -> None:
        ev = cx.machine.events
        self.fid = ev.column("function_id").to_numpy()
        self.kind = ev.column("kind").to_numpy()
        self.addr = ev.column("address").to_numpy()
        self.size = ev.column("size").to_numpy()
        self.target = ev.column("target").to_numpy()
        self.extra = ev.column("extra").to_numpy()
        self.bounds = np.searchsorted(self.fid, np.arange(cx.inst.num_rows + 1))

    def of(self, row: int, *kinds: int) -> np.ndarray:
        a, b = int(self.bounds[row]), int(self.bounds[row + 1])
        kind = self.kind[a:b]
        # a few compares, not np.isin: its set-up costs more than a function's events, and
        # ``function`` and ``report`` ask once per instance
        hit = kind == kinds[0]
        for k in kinds[1:]:
            hit |= kind == k
        return np.flatnonzero(hit) + a

    @cached_property
    def per_instance(self) -> dict[int, np.ndarray]:
        counts = {}
        for kind in (
            _core.kind.RETURN,
            _core.kind.TAIL_JUMP_DIRECT,
            _core.kind.TAIL_JUMP_INDIRECT,
            _core.kind.JUMP_TO_ENTRY,
            _core.kind.CALL_DIRECT,
        ):
            sel = self.kind == kind
            counts[kind] = np.bincount(self.fid[sel].astype(np.int64), minlength=len(self.bounds) - 1)
        return counts


def _events(cx: Context) -> Events:
    return cx.shared(Events)


def tail_call_exit(cx: Context) -> Iterator[Finding]:
    ev = _events(cx)
    jumps = np.flatnonzero(np.isin(ev.kind, (_core.kind.TAIL_JUMP_DIRECT, _core.kind.TAIL_JUMP_INDIRECT)))
    names = {t: cx.name_at(t) for t in np.unique(ev.target[jumps]).tolist() if t != _core.NO_TARGET}
    returns = ev.per_instance[_core.kind.RETURN]
    rows = ev.fid[jumps]
    if not len(rows):
        return
    bounds = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1], [True]]))
    for a, b in zip(bounds[:-1].tolist(), bounds[1:].tolist()):
        row = int(rows[a])
        exits: list[dict[str, Any]] = []
        for i in jumps[a:b].tolist():
            target = int(ev.target[i])
            direct = ev.kind[i] == _core.kind.TAIL_JUMP_DIRECT and target != _core.NO_TARGET
            exits.append(
                {
                    "at": hexa(ev.addr[i]),
                    "to": names[target] if direct else "indirect",
                    "thunk": names.get(target) if ev.extra[i] & _core.flag.THUNK else None,
                    "conditional": bool(ev.extra[i] & _core.flag.CONDITIONAL),
                }
            )
        symbol = cx.instance_symbol(row)
        targets = sorted({e["to"] for e in exits})
        n_ret = int(returns[row])
        yield Finding(
            TAIL_CALL_EXIT,
            int(cx.inst_fid[row]),
            f"{symbol} leaves by {len(exits)} jump(s) to {', '.join(targets)}"
            f"{f' beside its {n_ret} return(s)' if n_ret else ' and has no return of its own'}: "
            "a return probe on it fires when the target returns, with the target's value",
            {"instance": symbol, "exits": exits, "returns": n_ret},
            instance=row,
            address=int(ev.addr[jumps[a]]),
        )


def _self_calls(cx: Context) -> tuple[np.ndarray, np.ndarray]:
    """The DWARF call sites that target their own function: (calling DIE, tail-call flag)."""
    cs = cx.raw("call_sites")
    fn = cs.column("function").to_numpy()
    target = cs.column("target").to_numpy()
    sp_die = cx.sp["die"]
    # a call site's target is the called function's DIE (abstract or declaration): compare source ids
    origin = rows_of(sp_die, fn)
    tgt = rows_of(sp_die, target)
    same = (origin >= 0) & (tgt >= 0)
    own = np.where(origin >= 0, cx.sp["origin"][np.maximum(origin, 0)], _core.NO_DIE)
    own = np.where(own == _core.NO_DIE, fn, own)
    same &= (target == own) | (target == fn)
    return fn[same], cs.column("tail").to_numpy()[same]


def _self_call_sites(cx: Context, row: int) -> tuple[int, int]:
    """DWARF call sites in an instance that target its own source function: (calls, tail calls)."""
    fns, tails = cx.shared(_self_calls)
    mine = fns == cx.inst_die[row]
    return int(mine.sum()), int(tails[mine].sum())


def recursion(cx: Context) -> Iterator[Finding]:
    ev = _events(cx)
    counts = ev.per_instance
    lows = cx.inst.column("low_pc").to_numpy()
    calls = ev.kind == _core.kind.CALL_DIRECT
    near_own_entry = calls & (ev.target >= lows[ev.fid]) & (ev.target < lows[ev.fid] + 16)
    candidates = np.union1d(np.flatnonzero(counts[_core.kind.JUMP_TO_ENTRY]), ev.fid[near_own_entry])
    for row in candidates.astype(np.int64).tolist():
        loops = counts[_core.kind.JUMP_TO_ENTRY][row]
        calls = ev.of(row, _core.kind.CALL_DIRECT)
        entries = {int(lows[row]), int(lows[row]) + _local_entry(cx, row)}  # ppc64 calls the local entry
        self_calls = [i for i in calls.tolist() if int(ev.target[i]) in entries]
        if not loops and not self_calls:
            continue
        symbol = cx.instance_symbol(row)
        dwarf_calls, dwarf_tail = _self_call_sites(cx, row) if cx.inst_die[row] != _core.NO_DIE else (0, 0)
        fid = int(cx.inst_fid[row])
        if loops:
            jumps = [hexa(ev.addr[i]) for i in ev.of(row, _core.kind.JUMP_TO_ENTRY).tolist()]
            yield Finding(
                RECURSION_AS_LOOP,
                fid,
                f"{symbol} jumps back to its entry at {', '.join(jumps)}"
                + (f" where the DWARF records {dwarf_tail} tail self call(s)" if dwarf_tail else "")
                + ": recursive calls there are not entries; an entry probe counts them once",
                {"instance": symbol, "jumps_to_entry": jumps, "dwarf_self_tail_calls": dwarf_tail},
                instance=row,
                address=int(lows[row]),
            )
        if self_calls:
            at = [hexa(ev.addr[i]) for i in self_calls]
            yield Finding(
                RECURSIVE,
                fid,
                f"{symbol} calls itself at {', '.join(at)}: each level is an entry and a return",
                {"instance": symbol, "self_calls": at, "dwarf_self_calls": dwarf_calls},
                instance=row,
                address=int(ev.addr[self_calls[0]]),
            )


def entered_mid_function(cx: Context) -> Iterator[Finding]:
    """Jumps from other instances into the middle of one (not its entry, not its ppc64 local
    entry): a second way in that an entry probe does not see."""
    ev = _events(cx)
    jumps = np.flatnonzero(np.isin(ev.kind, (_core.kind.TAIL_JUMP_DIRECT,)) & (ev.target != _core.NO_TARGET))
    lows = cx.inst.column("low_pc").to_numpy()
    highs = np.array([r[0][1] if r else lo for r, lo in zip(cx.inst.column("ranges").to_pylist(), lows)])
    order = np.argsort(lows, kind="stable")
    targets = ev.target[jumps]
    pos = np.searchsorted(lows[order], targets, "right") - 1
    row = order[np.maximum(pos, 0)]
    inside = (pos >= 0) & (targets > lows[row]) & (targets < highs[row]) & (row != ev.fid[jumps])
    by_row: dict[int, list[dict[str, Any]]] = {}
    for j, r in zip(jumps[inside].tolist(), row[inside].tolist()):
        if int(ev.target[j]) - int(lows[r]) == _local_entry(cx, r):
            continue
        by_row.setdefault(r, []).append(
            {"from": cx.instance_symbol(int(ev.fid[j])), "at": hexa(ev.addr[j]), "to": cx.name_at(int(ev.target[j]))}
        )
    for r, entries in sorted(by_row.items()):
        symbol = cx.instance_symbol(r)
        yield Finding(
            MULTIPLE_ENTRIES,
            int(cx.inst_fid[r]),
            f"{symbol} is also entered mid-function by {len(entries)} jump(s) from other functions "
            f"({', '.join(sorted({e['from'] for e in entries}))}): an entry probe does not see those entries",
            {"instance": symbol, "jumped_into": entries},
            instance=r,
            address=int(lows[r]),
        )


def _local_entry(cx: Context, row: int) -> int:
    main = cx.inst_main_symbol[row]
    return local_entry_offset(int(cx.sym["other"][main])) if main >= 0 and cx.arch.startswith("ppc64") else 0


def noreturn_in_code(cx: Context) -> Iterator[Finding]:
    """No return instruction and no tail jump on any path, where DWARF says nothing."""
    ev = _events(cx)
    counts = ev.per_instance
    exits = counts[_core.kind.RETURN] + counts[_core.kind.TAIL_JUMP_DIRECT] + counts[_core.kind.TAIL_JUMP_INDIRECT]
    declared = cx.inst.column("noreturn").to_numpy(zero_copy_only=False)
    decoded = cx.machine.ranges
    ok = np.zeros(cx.inst.num_rows, bool)
    ids = decoded.column("function_id").to_numpy()
    good = (decoded.column("insn_count").to_numpy() > 0) & (decoded.column("decode_errors").to_numpy() == 0)
    ok[ids[good]] = True
    for row in np.flatnonzero((exits == 0) & ~declared & ok).tolist():
        symbol = cx.instance_symbol(row)
        yield Finding(
            NORETURN,
            int(cx.inst_fid[row]),
            f"{symbol} has no return instruction and no tail jump on any path: a return probe never fires",
            {"instance": symbol, "source": "machine code"},
            instance=row,
            address=cx.inst_low(row),
        )


RULES = [tail_call_exit, recursion, noreturn_in_code, entered_mid_function]


def instance_code(cx: Context, row: int, ftrace: Entries | None = None) -> dict[str, Any]:
    """Where probes on an instance really land: the entry the kernel uses (its ftrace site,
    else past ENDBR/BTI, else the ppc64 local entry), every return, every tail-call exit."""
    ev = _events(cx)
    low = cx.inst_low(row)
    hi = cx.inst_ranges(row)[0][1] if cx.inst_range_count[row] else low
    entry, why = low, "symbol address"
    record = ftrace.record_in(low, hi) if ftrace is not None else None
    if record is not None:
        entry, why = record, "ftrace call site (__mcount_loc)"
    elif len(landing := [i for i in ev.of(row, _core.kind.ENDBR).tolist() if ev.addr[i] == low]):
        entry, why = low + int(ev.size[landing[0]]), "after the ENDBR/BTI landing pad"
    elif off := _local_entry(cx, row):
        entry, why = low + off, "ppc64 local entry point"
    return {
        "probe_entry": hexa(entry),
        "probe_entry_is": why,
        "returns": [hexa(ev.addr[i]) for i in ev.of(row, _core.kind.RETURN).tolist()],
        "tail_exits": [
            {
                "at": hexa(ev.addr[i]),
                "to": cx.name_at(int(ev.target[i])) if ev.target[i] != _core.NO_TARGET else "indirect",
            }
            for i in ev.of(row, _core.kind.TAIL_JUMP_DIRECT, _core.kind.TAIL_JUMP_INDIRECT).tolist()
        ],
    }

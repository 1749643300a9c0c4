"""Where a probe point really lands: the concrete addresses each tool would probe.

The tools resolve the same name differently (SystemTap's ``dwflpp``, perf's probe finder,
bpftrace's probe matcher, the kernel's ``trace_kprobe``; docs/list-vs-stap.md): SystemTap
and perf read DWARF and reach inline sites, but stap misses the out-of-line ``.part`` body and
perf 6.1 fails on a function with a ``.cold`` part; bpftrace and kprobe_events take symbol
names, so a clone must be named with its suffix and inline sites are never reached; fentry
attaches through BTF, which pahole builds without any suffixed clone. Each resolution says
where the tool lands, which places the source function runs at it does not reach, and why.
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from patchscope import _core
from patchscope.index.context import Context
from patchscope.index.functions import origin_roots, rows_of
from patchscope.index.tables import pool_indices
from patchscope.probes import syntax as ps
from patchscope.probes.lines import LineMatch, file_matches, line_addresses, prologue_end
from patchscope.probes.places import places
from patchscope.rules.finding import hexa


@dataclass
class Landing:
    """One address a probe point puts a probe at."""

    address: int
    fid: int
    #: ``entry``, ``inline``, ``return``, ``statement`` or ``address``.
    kind: str
    #: Row of the out-of-line instance holding the address (for an inline site: its caller).
    instance: int = -1
    #: Row of the innermost inline site the probe is *for* (``.inline``) or inside (statements).
    site: int = -1
    #: Why this address: "ftrace call site", "entry + 0x1a", "line 6132 (is_stmt)".
    how: str = ""
    line: LineMatch | None = None


@dataclass
class Missed:
    """A place the source function runs at that this point does not probe."""

    fid: int
    where: str
    why: str


@dataclass
class Resolution:
    point: ps.ProbePoint
    landings: list[Landing] = field(default_factory=list)
    missed: list[Missed] = field(default_factory=list)
    #: Why the tool would place no probe at all (the point is then unresolved).
    errors: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def resolve(cx: Context, point: ps.ProbePoint) -> Resolution:
    res = Resolution(point)
    _check_target(cx, res)
    if point.mode == ps.ADDRESS:
        _at_address(cx, res, point.address or 0)
    elif point.tool in ("bpftrace", "kprobe_events"):
        _by_symbol(cx, res)
    elif point.mode == ps.STATEMENT and (point.line is not None or point.lazy is not None):
        _by_line(cx, res)
    else:
        _by_dwarf(cx, res)
    if not res.landings and not res.errors:
        res.errors.append(f"{point.text}: no such function or line in {cx.path.name}")
    return res


def _check_target(cx: Context, res: Resolution) -> None:
    """The point names a module or a program: say so when it is not the binary checked."""
    kind, _, name = res.point.target.partition(":")
    here = cx.path.name
    if kind == "module" and here.split(".")[0].replace("-", "_") != name.replace("-", "_"):
        res.notes.append(f"the point is for module {name}; checked against {here}")
    elif kind == "process" and name and Path(name).name != here:
        res.notes.append(f"the point is for {name}; checked against {here}")
    elif kind == "kernel" and res.point.tool == "stap" and not cx.is_kernel():
        res.notes.append(f"the point is for the kernel; {here} is not a kernel image")


# -- by DWARF name (SystemTap, perf) -------------------------------------------------------------


def matching_functions(cx: Context, pattern: str, file: str | None, glob: bool = True) -> list[int]:
    """Source functions named ``pattern`` (a shell glob), declared in a file matching ``file``
    (SystemTap and perf match ``@FILE`` against the end of the path)."""
    fids = [f for f in cx.find_functions(pattern) if glob or cx.fn_name[f] == pattern]
    if file:
        decl = cx.functions.column("decl_file")
        fids = [f for f in fids if file_matches(decl[f].as_py() or "", file)]
    return fids


def _by_dwarf(cx: Context, res: Resolution) -> None:
    p = res.point
    fids = matching_functions(cx, p.function or "*", p.file)
    if p.line is not None and p.mode != ps.STATEMENT:  # stap function("f@file:N"): declared at N
        line = cx.functions.column("decl_line").to_numpy()
        fids = [f for f in fids if p.line.any or p.line.low <= line[f] <= p.line.high]
    if p.mode == ps.EXPORTED:
        fids = [f for f in fids if _exported(cx, f)]
    if p.tool == "perf":
        fids = [f for f in fids if not _perf_refuses(cx, res, f)]
    for fid in fids:
        if p.mode == ps.CALLEES:
            _callees(cx, res, fid)
        elif p.mode != ps.INLINE:
            _out_of_line(cx, res, fid)
        if p.mode not in (ps.ENTRY, ps.INLINE, ps.CALLEES) and cx.sites_of(fid).size:
            res.missed.append(_missed_sites(cx, fid, f"{p.mode} probes reach out-of-line entries only"))
    if p.mode in (ps.ENTRY, ps.INLINE):
        _inline_sites(cx, res, fids)


def _exported(cx: Context, fid: int) -> bool:
    name = cx.fn_name[fid]
    if cx.is_kernel():
        return bool(cx.symbol_addresses([f"__ksymtab_{name}"]))
    return bool(cx.functions.column("external")[fid].as_py())


def _perf_refuses(cx: Context, res: Resolution, fid: int) -> bool:
    """perf 6.1 cannot resolve a function whose DIE has a ``.cold`` range: "Failed to find
    symbol at 0x…" (tools/perf/util/probe-finder.c trusts DW_AT_low_pc of a DW_AT_ranges DIE)."""
    for row in cx.instances_of.get(fid, []):
        if cx.inst_range_count[row] > 1 and any(
            int(cx.sym["suffix_kinds"][s]) & _core.suffix.COLD for s in cx.inst_symbols(row)
        ):
            res.errors.append(
                f"perf probe 6.1 fails on {cx.instance_symbol(row)}: its DWARF has a .cold range "
                f'("Failed to find symbol at {hexa(cx.inst_low(row))}")'
            )
            return True
    return False


def _out_of_line(cx: Context, res: Resolution, fid: int) -> None:
    p = res.point
    for row in cx.instances_of.get(fid, []):
        symbol = cx.instance_symbol(row)
        if p.tool == "stap" and int(cx.inst_suffix_kinds[row]) & _core.suffix.PART:
            res.missed.append(Missed(fid, symbol, "SystemTap does not map a .part body back to its source name"))
            continue
        if p.offset is not None:
            addr = cx.inst_low(row) + p.offset
            if places(cx).instance_at(addr) != row:  # probe-finder.c: dwarf_haspc(sp_die, paddr)
                res.errors.append(f'perf: "Specified offset is out of {cx.fn_name[fid]}" ({symbol}+{p.offset:#x})')
                continue
            res.landings.append(Landing(addr, fid, ps.STATEMENT, row, how=f"{symbol}+{p.offset:#x}"))
            continue
        addr, how = _entry_for(cx, row, p)
        res.landings.append(Landing(addr, fid, ps.RETURN if p.is_return else ps.ENTRY, row, how=how))


def _entry_for(cx: Context, row: int, p: ps.ProbePoint) -> tuple[int, str]:
    addr, how = places(cx).entry(row)
    if p.tool == "stap" and not _optimized(cx, row):
        end = _prologue_end(cx, row)
        if end is not None:
            return end, "prologue end (SystemTap, unoptimized code)"
    return addr, how


def _optimized(cx: Context, row: int) -> bool:
    """SystemTap skips the prologue only in code built without optimization (its "auto" mode:
    optimized code has location lists valid from the entry); the unit's producer says which."""
    return bool(cx.shared(_optimized_instances)[row])


def _optimized_instances(cx: Context) -> np.ndarray:
    units = cx.table("units")
    offsets = units.column("offset").to_numpy()
    optimized = np.array([re.search(r" -O(?!0)", p or "") is not None for p in units.column("producer").to_pylist()])
    out = np.ones(len(cx.inst_die), bool)
    known = (cx.inst_die != _core.NO_DIE) & bool(len(offsets))
    unit = np.maximum(np.searchsorted(offsets, cx.inst_die[known], "right") - 1, 0)
    out[known] = optimized[unit] if len(offsets) else True
    return out


def _prologue_end(cx: Context, row: int) -> int | None:
    low, high = (int(v[row]) for v in cx.inst_main_range)
    return prologue_end(cx, low, high)


def _inline_sites(cx: Context, res: Resolution, fids: list[int]) -> None:
    """Every inline site of ``fids``, each function's after its out-of-line entries (all at
    once: ``kernel.function("*")`` has 311,000 of them)."""
    rank = np.full(len(cx.fn_name), -1, np.int64)
    rank[fids] = np.arange(len(fids))
    site_rank = rank[cx.site_fid]
    sites = np.flatnonzero(site_rank >= 0)
    sites = sites[np.argsort(site_rank[sites], kind="stable")]
    names = cx.site_caller_name[sites].tolist()
    res.landings += [
        Landing(addr, fid, ps.INLINE, caller, site, how=f"inlined into {cx.string(name) or '?'}")
        for site, addr, fid, caller, name in zip(
            sites.tolist(),
            cx.site_entry_pc[sites].tolist(),
            cx.site_fid[sites].tolist(),
            cx.caller_instance[sites].tolist(),
            names,
        )
    ]
    position = {f: i for i, f in enumerate(fids)}
    res.landings.sort(key=lambda lnd: position.get(lnd.fid, -1))  # stable: entries stay first


def _missed_sites(cx: Context, fid: int, why: str) -> Missed:
    n = len(cx.sites_of(fid))
    return Missed(fid, f"{n} inline site{'s' * (n != 1)}", why)


def _callees(cx: Context, res: Resolution, fid: int) -> None:
    """stap ``.callee("X")``: the entries of the functions ``fid`` calls, and the sites
    inlined into it, matching X."""
    want = res.point.callee or "*"
    mine = set(cx.instances_of.get(fid, []))
    caller = cx.caller_instance
    for site in np.flatnonzero(np.isin(caller, list(mine))).tolist():
        callee = int(cx.site_fid[site])
        if fnmatch.fnmatchcase(cx.fn_name[callee], want):
            addr = int(cx.site_entry_pc[site])
            res.landings.append(
                Landing(addr, callee, ps.INLINE, int(caller[site]), site, how=f"inlined into {cx.site_caller(site)}")
            )
    for callee in _called_functions(cx, mine):
        if fnmatch.fnmatchcase(cx.fn_name[callee], want):
            for row in cx.instances_of.get(callee, []):
                addr, how = places(cx).entry(row)
                res.landings.append(Landing(addr, callee, ps.ENTRY, row, how=f"{how}, called from {cx.fn_name[fid]}"))


def _called_functions(cx: Context, instances: set[int]) -> list[int]:
    """The source functions the DWARF call sites of ``instances`` name, as SystemTap's
    ``iterate_over_callees`` finds them: a call site without a callee DIE (an indirect call)
    names none."""
    cs = cx.raw("call_sites")
    fn = cs.column("function").to_numpy()
    target = cs.column("target").to_numpy()
    dies = cx.inst_die[sorted(instances)] if instances else np.array([], np.uint64)
    targets = np.unique(target[np.isin(fn, dies) & (target != _core.NO_DIE)])
    rows = rows_of(cx.sp["die"], targets)
    callees = cx.shared(_Callees)
    return sorted({f for r in rows[rows >= 0].tolist() if (f := callees.fid_of(r)) is not None})


class _Callees:
    """The source function a call site's callee DIE stands for."""

    def __init__(self, cx: Context) -> None:
        sp = cx.sp
        #: The DIE carrying each subprogram's name (the key of its source function).
        self.root = origin_roots(sp["die"], sp["origin"], sp["specification"])
        self.name = sp["name"]
        self.external = (sp["flags"] & _core.spflag.EXTERNAL) != 0
        rows = rows_of(sp["die"], cx.inst_die)
        known = rows >= 0
        self.by_root: dict[int, int] = dict(zip(self.root[rows[known]].tolist(), cx.inst_fid[known].tolist()))
        # An external callee declared in the caller's unit is defined in another one, found
        # by name (stap's external_function_query): the first external function with code.
        names = pool_indices(cx.functions.column("name"))
        code = cx.functions.column("external").to_numpy(zero_copy_only=False) & (
            cx.functions.column("instances").to_numpy() > 0
        )
        self.by_name: dict[int, int] = {}
        for fid in np.flatnonzero(code).tolist():
            self.by_name.setdefault(int(names[fid]), fid)

    def fid_of(self, row: int) -> int | None:
        root = int(self.root[row])
        if root in self.by_root:
            return self.by_root[root]
        return self.by_name.get(int(self.name[root])) if self.external[root] else None


# -- by symbol (bpftrace, kprobe_events) ---------------------------------------------------------


def _by_symbol(cx: Context, res: Resolution) -> None:
    p = res.point
    pl = places(cx)
    pattern = p.function or ""
    names = [n for n in pl.symbol_names if fnmatch.fnmatchcase(n, pattern)] if p.glob else [pattern]
    names = [n for n in names if n in pl.symbol_names]
    if p.tool == "bpftrace" and p.glob and any(c in pattern for c in "*?["):
        hidden = [n for n in names if ".part." in n]
        names = [n for n in names if ".part." not in n]
        if hidden:
            res.notes.append(f"bpftrace leaves .part symbols out of wildcard matches: {', '.join(hidden[:5])}")
    if not names:
        _suggest_clones(cx, res, pattern)
        return
    for name in names:
        _symbol_landings(cx, res, name, pl.symbol_names[name])
    _unreached_by_symbol(cx, res)


def _symbol_landings(cx: Context, res: Resolution, name: str, rows: list[int]) -> None:
    p = res.point
    kind = p.notes[0] if p.notes else ""
    if len(rows) > 1 and p.tool == "kprobe_events":
        res.errors.append(f"{name} names {len(rows)} functions: kprobe_events refuses it (EADDRNOTAVAIL)")
        return
    for srow in rows[:1] if p.tool == "kprobe_events" else rows:
        addr = int(cx.sym["address"][srow])
        row = places(cx).instance_at(addr)
        fid = int(cx.inst_fid[row]) if row >= 0 else -1
        if kind in ("fentry", "fexit") and "." in name:
            res.errors.append(f"{name}: BTF has no suffixed clone (pahole skips it), {kind} cannot attach")
            continue
        if p.offset and p.offset >= int(cx.sym_size[srow]):
            res.errors.append(_outside(p, name, int(cx.sym_size[srow])))
        elif p.offset:
            res.landings.append(Landing(addr + p.offset, fid, ps.STATEMENT, row, how=f"{name}+{p.offset:#x}"))
        else:
            entry, how = places(cx).entry(row) if row >= 0 else (addr, "symbol address")
            res.landings.append(Landing(entry, fid, ps.RETURN if p.is_return else ps.ENTRY, row, how=how))


def _outside(p: ps.ProbePoint, name: str, size: int) -> str:
    """What the tool answers to an offset at or past the end of the symbol."""
    off = p.offset or 0
    if p.tool == "bpftrace":  # attached_probe.cpp: func_offset >= sym.size
        return f"bpftrace: \"Offset outside the function bounds ('{name}' size is {size})\""
    if off > 0xFFFF_FFFF:  # trace_kprobe.c: offset > UINT_MAX is BAD_PROBE_ADDR
        return f'kprobe_events: "Invalid probed address or symbol" ({name}+{off:#x}: an offset is at most 32 bits)'
    # kprobes.c _kprobe_addr: sym + off is re-based onto whichever symbol holds it
    return f"{name}+{off:#x} is past the end of {name} ({size} bytes): the kernel would probe another function there"


def _suggest_clones(cx: Context, res: Resolution, name: str) -> None:
    """A symbol probe names one build's clone: say which copies of that function this build has."""
    stem = name.split(".")[0]
    others = sorted(n for n in places(cx).symbol_names if n.split(".")[0] == stem and n != name)
    if others:
        res.errors.append(f"no symbol {name} in this build; it has {', '.join(others[:5])}: name one of them")


def _unreached_by_symbol(cx: Context, res: Resolution) -> None:
    """A symbol probe never sees the function's inline sites, nor its other clones."""
    hit = {(landing.fid, landing.instance) for landing in res.landings}
    for fid in sorted({f for f, _ in hit if f >= 0}):
        if cx.sites_of(fid).size:
            res.missed.append(_missed_sites(cx, fid, "a probe on a symbol never sees inlined copies"))
        for row in cx.instances_of.get(fid, []):
            if (fid, row) not in hit:
                res.missed.append(
                    Missed(fid, cx.instance_symbol(row), "another out-of-line copy, under its own symbol")
                )


# -- by address and by line ----------------------------------------------------------------------


def _at_address(cx: Context, res: Resolution, addr: int) -> None:
    row = places(cx).instance_at(addr)
    if row < 0:
        res.errors.append(f"{hexa(addr)} is not inside any function's code")
        return
    fid = int(cx.inst_fid[row])
    res.landings.append(Landing(addr, fid, ps.ADDRESS, row, how=cx.name_at(addr)))


def _by_line(cx: Context, res: Resolution) -> None:
    p = res.point
    if p.lazy is not None:
        res.errors.append(f"perf's lazy pattern ;{p.lazy} matches source text, which the binary does not hold")
        return
    assert p.line is not None
    fids = matching_functions(cx, p.function, p.file) if p.function else None
    for m in line_addresses(cx, p.file, p.line, fids):
        row = places(cx).instance_at(m.address)
        fid = int(cx.inst_fid[row]) if row >= 0 else -1
        res.landings.append(Landing(m.address, fid, ps.STATEMENT, row, m.site, how=m.describe(), line=m))

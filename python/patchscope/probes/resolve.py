"""Where a probe point really lands: the concrete addresses each tool would probe.

The tools resolve the same name differently (SystemTap's ``dwflpp``, perf's probe finder,
bpftrace's probe matcher, the kernel's ``trace_kprobe``; docs/list-vs-stap.md): SystemTap
and perf read DWARF and reach inline sites, but stap misses the out-of-line ``.part`` body and
perf 6.1 reads DWARF first and falls back to the symbol table when that fails
(``probes/perf.py``); bpftrace and kprobe_events take symbol
names, so a clone must be named with its suffix and inline sites are never reached; fentry
attaches through BTF, which pahole builds without any suffixed clone. Each resolution says
where the tool lands, which places the source function runs at it does not reach, and why.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.context import Context
from patchscope.index.functions import origin_roots, rows_of
from patchscope.index.tables import pool_indices
from patchscope.probes import perf, scripts, stap, tapsets
from patchscope.probes import syntax as ps
from patchscope.probes.lines import LineMatch, file_matches, line_addresses, line_match, prologue_end
from patchscope.probes.places import places
from patchscope.rules.finding import hexa
from patchscope.rules.kernel import blacklist


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
    #: The tracepoints a tracepoint point names in this build (no address: nothing is patched).
    events: list[str] = field(default_factory=list)


def resolve(cx: Context, point: ps.ProbePoint) -> Resolution:
    res = Resolution(point)
    if point.mode in _NOT_CODE:
        _NOT_CODE[point.mode](cx, res)
        return res
    _check_target(cx, res)
    if res.errors:
        return res
    if point.mode == ps.ADDRESS:
        _at_address(cx, res, point.address or 0)
    elif point.by_symbol:
        _by_symbol(cx, res)
    elif point.tool == "perf" and point.mode == ps.STATEMENT and point.function and point.line is not None:
        _perf_by_line(cx, res)
    elif point.tool == "stap" and point.mode == ps.STATEMENT and point.function and point.line and not point.line.any:
        _stap_by_line(cx, res)
    elif point.mode == ps.STATEMENT and (point.line is not None or point.lazy is not None):
        _by_line(cx, res)
    elif point.tool == "perf":
        _by_perf(cx, res)
    else:
        _by_dwarf(cx, res)
    if point.tool == "perf":
        res.notes += dict.fromkeys(n for lnd in res.landings if (n := perf.shared_name(cx, lnd.address)))
    if point.tool == "stap":
        _skip_init_exit(cx, res)
        _skip_blocklisted(cx, res)
    if not res.landings and not res.errors:
        res.errors.append(f"{point.text}: no such function or line in {cx.path.name}")
    module = point.target.partition(":")[2] if point.target.startswith("module:") else ""
    unmatched = res.errors and res.errors[-1].endswith(cx.path.name)
    if unmatched and point.function and not module and not any(c in point.function for c in "*?["):
        res.errors[-1] += _closest(cx, point.function)
    if module and not res.landings and _kernel(cx):
        res.errors = [f"not in this binary: a function of module {module}, in its .ko", *res.errors]
    return res


def _no_code(cx: Context, res: Resolution) -> None:
    res.notes.append(f"places no probe in code: {res.point.kind}")


def _tracepoint(cx: Context, res: Resolution) -> None:
    """A tracepoint is a stable interface the kernel built in: it resolves when this build has
    it (``__tracepoint_NAME``; a syscall's ``sys_enter_X``/``sys_exit_X`` from
    ``__syscall_meta__X``, CONFIG_FTRACE_SYSCALLS)."""
    p = res.point
    names = cx.shared(_tracepoints)
    pattern = p.function or ""
    hits = (
        [n for n in names if fnmatch.fnmatchcase(n, pattern)]
        if any(c in pattern for c in "*?[")
        else ([pattern] if pattern in names else [])
    )
    if hits:
        res.events += hits
        res.notes.append(f"a tracepoint ({len(hits)} in this build): a stable interface, no code is patched")
    else:
        res.errors.append(f"no tracepoint {pattern} in this build" + _closest_in(pattern, names))


def _tracepoints(cx: Context) -> set[str]:
    names = cx.pool.take(pa.array(np.unique(cx.sym["name"])))
    out = set()
    for n in cast("list[str]", names.filter(pc.starts_with(names, "__tracepoint_")).to_pylist()):
        out.add(n[len("__tracepoint_") :])
    for n in cast("list[str]", names.filter(pc.starts_with(names, "__syscall_meta__")).to_pylist()):
        out.update((f"sys_enter_{n[16:]}", f"sys_exit_{n[16:]}"))
    return out


def _alias(cx: Context, res: Resolution) -> None:
    """A tapset alias (``syscall.open``): the points its tapset derives, each resolved as
    written there (``probes/tapsets.py``), put together as this point's; when stap would print
    an error on the way (a required target that places nothing), none."""
    point = res.point
    try:
        lib = tapsets.library(cx.shared(_build))
    except tapsets.NoLibrary as e:
        res.errors.append(f"{point.kind}: a SystemTap tapset alias, not expanded: {e}")
        return
    done = cx.shared(_targets)
    elsewhere: dict[str, None] = {}  # modules whose targets are not in this binary

    def place(p: ps.ProbePoint) -> str | None:
        r = done.get(p)
        if r is None:
            r = done[p] = resolve(cx, p)
        if r.landings or r.events or p.mode == ps.NO_CODE:
            return None
        if p.target.startswith("module:") and _kernel(cx):
            elsewhere[p.target.partition(":")[2]] = None
        return r.errors[0] if r.errors else f"{p.text}: no match"

    found = tapsets.expand(lib, point, place)
    res.notes += found.notes
    modules = f"its targets in modules are not in this binary: {', '.join(elsewhere)}" if elsewhere else ""
    if modules:
        res.notes.append(modules)
    names = ", ".join(f"{'.'.join(a.name)} ({a.where})" for a in found.aliases[:3])
    more = f" and {len(found.aliases) - 3} more" if len(found.aliases) > 3 else ""
    if found.errors:
        res.errors += [f"stap stops on tapset alias {point.kind}: {e}" for e in found.errors[:4]]
        if modules:
            res.errors[0] += f" ({modules}: pass the kernel tree)"
        return
    placed = list(dict.fromkeys(found.placed))
    shown = ", ".join(p.text for p in placed[:4]) + (f", … ({len(placed)} in all)" if len(placed) > 4 else "")
    res.notes.insert(0, f"tapset alias {names}{more}: probes {shown or 'nothing (optional)'}")
    seen = set()
    for p in placed:
        r = done[p]
        for lnd in r.landings:
            if (lnd.address, lnd.kind) not in seen:
                seen.add((lnd.address, lnd.kind))
                res.landings.append(lnd)
        res.missed += r.missed
        res.events += [e for e in r.events if e not in res.events]
        res.notes += [n for n in r.notes if n not in res.notes]
    if placed and all(p.mode == ps.NO_CODE for p in placed):
        res.point = dataclasses.replace(point, mode=ps.NO_CODE, kind=f"{point.kind}: {placed[0].kind}")


def _build(cx: Context) -> scripts.Build:
    return scripts.build_of(cx.info)


def _targets(cx: Context) -> dict[ps.ProbePoint, Resolution]:
    """The resolution of each point a tapset alias derives: ``syscall.*`` names many twice."""
    return {}


def _label(cx: Context, res: Resolution) -> None:
    res.errors.append(f'.label("{res.point.callee}"): the index holds no DWARF labels; not resolved')


_NOT_CODE = {ps.NO_CODE: _no_code, ps.TRACEPOINT: _tracepoint, ps.ALIAS: _alias, ps.LABEL: _label}


def _skip_init_exit(cx: Context, res: Resolution) -> None:
    """SystemTap skips functions in init and exit text, which is freed or never run once the
    kernel is up (tapsets.cxx ``dwarf_query::add_probe_point``: "skipping … in init/exit
    section"), with a warning: they are left out, not judged."""
    if not _kernel(cx) or not res.landings:
        return
    start, end, names = cx.sections
    addrs = np.array([lnd.address for lnd in res.landings], np.uint64)
    i = np.maximum(np.searchsorted(start, addrs, "right") - 1, 0)
    gone = np.array([n.startswith((".init", ".exit")) for n in names], bool)[i] & (addrs < end[i])
    if gone.any():
        skipped = sorted({cx.fn_name[lnd.fid] for lnd, g in zip(res.landings, gone.tolist()) if g and lnd.fid >= 0})
        res.landings = [lnd for lnd, g in zip(res.landings, gone.tolist()) if not g]
        res.notes.append(
            f"stap skips {int(gone.sum())} place(s) in init/exit text, as it warns: {', '.join(skipped[:5])}"
        )


def _skip_blocklisted(cx: Context, res: Resolution) -> None:
    """SystemTap's own blocklist (``probes/stap.py``): the probes it warns about and skips;
    the others at a ppc64 global entry move to the local entry (``get_lep``)."""
    kept = []
    for lnd in res.landings:
        rule = stap.blocklisted(cx, lnd.fid, lnd.kind, lnd.address) if lnd.fid >= 0 else None
        if rule:
            res.notes.append(f"stap skips {cx.fn_name[lnd.fid]} at {hexa(lnd.address)}: {rule} (its blocklist)")
        else:
            kept.append(dataclasses.replace(lnd, address=stap.local_entry(cx, lnd.address)))
    if res.landings and not kept:
        res.errors.append(f"stap: every place of {res.point.text} is on its blocklist")
    res.landings = kept


def _closest(cx: Context, name: str) -> str:
    """Why a name is not found: the clones it has under other names, else the closest names."""
    stem = name.split(".")[0]
    inlined = [f for f in matching_functions(cx, stem, None, glob=False) if not cx.instances_of.get(f)]
    if inlined and stem == name:
        n = sum(len(cx.sites_of(f)) for f in inlined)
        return f": {name} is inlined wherever it is called ({n} inline sites), no symbol is left to probe"
    clones = sorted(n for n in cx.shared(_symbols_by_stem).get(stem, []) if n != name)
    if clones:
        return f", only as the clone {', '.join(clones[:4])}: name one of them"
    return ": renamed or inlined away in this build?" + _closest_in(name, cx.shared(_NamesByWord).around(name))


def _symbols_by_stem(cx: Context) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for n in places(cx).symbol_names:
        out.setdefault(n.split(".")[0], []).append(n)
    return out


class _NamesByWord:
    """Every function and symbol name of the binary, searched by each word of a name
    (``vfs_read``: ``vfs`` and ``read``), words of three characters or more: difflib over
    80,000 names takes a second a name, over the few hundred that share a word, milliseconds.
    The names holding a word are found by one regular expression in C, then checked word by
    word, rather than by indexing every word of every name first (seconds, for the few names
    that do not resolve)."""

    def __init__(self, cx: Context) -> None:
        names = sorted({n for n in cx.fn_name if n} | set(places(cx).symbol_names), key=lambda n: (len(n), n))
        #: by length, so that the names of about one length are one slice
        self.names = pa.array(names, pa.string())
        self.lengths = np.fromiter(map(len, names), np.int64, len(names))

    def around(self, name: str) -> set[str]:
        """The names of about ``name``'s length that share one of its words (a typo may be in
        any word: ``vfs_raed`` meets ``vfs_read`` through ``vfs``)."""
        words = set(_words(name))
        if not words:
            return set()
        lo = int(np.searchsorted(self.lengths, len(name) - 3, "left"))
        hi = int(np.searchsorted(self.lengths, len(name) + 3, "right"))
        near = self.names[lo:hi]
        some = pc.match_substring_regex(near, "|".join(re.escape(w) for w in sorted(words)))
        found = cast("list[str]", near.filter(some).to_pylist())  # no nulls: built from names
        return {n for n in found if not words.isdisjoint(_words(n))}


def _words(name: str) -> list[str]:
    return [w for w in re.split(r"[_.]+", name) if len(w) >= 3]


def _closest_in(name: str, names: Iterable[str]) -> str:
    near = difflib.get_close_matches(name, _could_be_close(name, sorted(names), 0.75), n=4, cutoff=0.75)
    return f" closest: {', '.join(near)}" if near else ""


def _could_be_close(name: str, names: list[str], cutoff: float) -> list[str]:
    """The names whose ``quick_ratio`` with ``name`` (difflib's bound: the characters the two
    share, counted with repeats) reaches ``cutoff``, counted for all names at once: difflib
    computes it name by name in Python, and drops the others before it compares anything,
    so its answer over these is its answer over all."""
    if len(names) < 256 or not name.isascii() or not all(n.isascii() for n in names):
        return names
    data = np.frombuffer("".join(names).encode(), np.uint8)
    lengths = np.fromiter(map(len, names), np.int64, len(names))
    owner = np.repeat(np.arange(len(names)), lengths)
    counts = np.bincount(owner * 256 + data, minlength=len(names) * 256).reshape(len(names), 256)
    mine = np.bincount(np.frombuffer(name.encode(), np.uint8), minlength=256)
    shared = np.minimum(counts, mine).sum(axis=1)
    keep = 2.0 * shared / (lengths + len(name)) >= cutoff
    return [n for n, k in zip(names, keep.tolist()) if k]


def _check_target(cx: Context, res: Resolution) -> None:
    """The point names a module or a program: say so when it is not the binary checked."""
    kind, _, name = res.point.target.partition(":")
    here = cx.path.name
    if kind == "process" and _kernel(cx):
        res.errors.append(f"a user-space point (of {name or 'a process'}): check it against that program, not {here}")
    elif kind == "module" and any(c in name for c in "*?[") and _kernel(cx):
        # tapsets.cxx: module("*") iterates over modules only, never the kernel itself
        res.errors.append(f'module("{name}") matches modules only, never the kernel: {here} is not one')
    elif kind == "module" and not fnmatch.fnmatchcase(here.split(".")[0].replace("-", "_"), name.replace("-", "_")):
        res.notes.append(f"the point is for module {name}; checked against {here}")
    elif kind == "process" and name and Path(name).name != here:
        res.notes.append(f"the point is for {name}; checked against {here}")
    elif kind == "kernel" and res.point.tool == "stap" and not _kernel(cx):
        res.notes.append(f"the point is for the kernel; {here} is not a kernel image")


# -- by DWARF name (SystemTap, perf) -------------------------------------------------------------


def matching_functions(cx: Context, pattern: str, file: str | None, glob: bool = True) -> list[int]:
    """Source functions named ``pattern`` (a shell glob), declared in a file matching ``file``
    (SystemTap and perf match ``@FILE`` against the end of the path)."""
    if any(c in pattern for c in "*?["):
        fids = [f for f in cx.find_functions(pattern) if glob or cx.fn_name[f] == pattern]
    else:  # a plain name, looked up once per binary: a probe file may name thousands
        fids = cx.shared(_FunctionsByName).get(pattern, [])
    if file:
        decl = cx.shared(_decl_files)
        wanted = {d for d in {decl[f] for f in fids} if file_matches(d or "", file)}  # each file once
        fids = [f for f in fids if decl[f] in wanted]
    return fids


class _FunctionsByName(dict[str, list[int]]):
    """Source function ids by name, in id order."""

    def __init__(self, cx: Context) -> None:
        super().__init__()
        for fid, name in enumerate(cx.fn_name):
            self.setdefault(name, []).append(fid)


def _kernel(cx: Context) -> bool:
    """Whether the binary is a kernel image, asked once (each question scans the string pool)."""
    return cx.shared(Context.is_kernel)


def _decl_files(cx: Context) -> list[str | None]:
    files: list[str | None] = cx.functions.column("decl_file").to_pylist()
    return files


def _by_dwarf(cx: Context, res: Resolution) -> None:
    p = res.point
    fids = matching_functions(cx, p.function or "*", p.file)
    if p.line is not None and p.mode != ps.STATEMENT:  # stap function("f@file:N"): declared at N
        line = cx.functions.column("decl_line").to_numpy()
        fids = [f for f in fids if p.line.any or p.line.low <= line[f] <= p.line.high]
    if p.mode == ps.EXPORTED:
        fids = [f for f in fids if _exported(cx, f)]
    if p.tool == "stap" and any(stap.dwarf_without_code(cx, f) for f in fids):
        res.notes.append("stap matches a DWARF DIE of that name with no code (folded by ICF): it probes nothing there")
        fids = [f for f in fids if not stap.dwarf_without_code(cx, f)]
    for fid in fids:
        if p.mode == ps.CALLEES:
            _callees(cx, res, fid)
        elif p.mode != ps.INLINE or (p.tool == "stap" and cx.fn_status[fid] == "symbol-only"):
            _out_of_line(cx, res, fid)  # stap's query_module_symtab: a bare symbol even for .inline
        if p.mode not in (ps.ENTRY, ps.INLINE, ps.CALLEES) and cx.sites_of(fid).size:
            res.missed.append(_missed_sites(cx, fid, f"{p.mode} probes reach out-of-line entries only"))
    if p.mode in (ps.ENTRY, ps.INLINE):
        _inline_sites(cx, res, fids)


def _exported(cx: Context, fid: int) -> bool:
    name = cx.fn_name[fid]
    if _kernel(cx):
        return bool(cx.symbol_addresses([f"__ksymtab_{name}"]))
    return bool(cx.functions.column("external")[fid].as_py())


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
    if res.point.tool == "stap":  # inline_dupes: one probe per entry pc, the first site's (DIE order)
        pairs = np.stack([cx.site_fid[sites].astype(np.uint64), cx.site_entry_pc[sites].astype(np.uint64)])
        sites = sites[np.sort(np.unique(pairs, axis=1, return_index=True)[1])]
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
    if p.tool == "bpftrace" and "*" in pattern:
        names = _bpftrace_wildcard(cx, res, pattern)
    else:
        # bpftrace's only wildcard is "*" (util/wildcard.cpp): "tree?sum" names no symbol
        wild = p.glob and p.tool != "bpftrace" and any(c in pattern for c in "*?[")
        names = [n for n in pl.symbol_names if fnmatch.fnmatchcase(n, pattern)] if wild else [pattern]
        names = [n for n in names if n in pl.symbol_names]
    if not names and pattern and not any(c in pattern for c in "*?["):
        asm = _untyped_code_symbol(cx, pattern)
        if asm is not None:
            names, symbols = [pattern], {pattern: [asm]}
            _symbol_landings(cx, res, pattern, symbols[pattern])
            res.notes.append(f"{pattern} is an untyped (assembly) symbol: kallsyms and kprobes take it as a function")
            return
    if not names:
        _suggest_clones(cx, res, pattern)
        return
    for name in names:
        _symbol_landings(cx, res, name, pl.symbol_names[name])
    _unreached_by_symbol(cx, res)


def _bpftrace_wildcard(cx: Context, res: Resolution, pattern: str) -> list[str]:
    """bpftrace expands a wildcard over the traceable functions only — those with an ftrace
    site, outside init text, not on the kprobe blacklist (probe_matcher.cpp
    ``get_symbols_from_traceable_funcs``), ``.part.`` variants dropped — and only ``*`` is a
    wildcard there (util/wildcard.cpp ``wildcard_match``)."""
    rx = re.compile(".*".join(re.escape(t) for t in pattern.split("*")), re.S)
    traceable = cx.shared(_traceable)
    names = [n for n in traceable if rx.fullmatch(n) and ".part." not in n]
    known = places(cx).symbol_names
    left = sorted(n for n in known if rx.fullmatch(n) and n not in traceable)
    if left:
        res.notes.append(
            f"bpftrace's wildcard leaves out {len(left)} symbol(s) it cannot trace "
            f"(no ftrace site, init text, blacklisted or .part): {', '.join(left[:5])}"
        )
    return [n for n in names if n in known]


def _names_at(cx: Context, addresses: np.ndarray) -> set[str]:
    """:meth:`Context.name_at` of many addresses: those at a symbol's own address (every
    record of an x86 kernel: its ``__fentry__`` call is the entry) looked up at once."""
    rows, addrs = cx.code_symbols
    i = np.minimum(np.searchsorted(addrs, addresses, "left"), max(len(addrs) - 1, 0))
    exact = addrs[i] == addresses if len(addrs) else np.zeros(len(addresses), bool)
    names = {cx.string(n) for n in np.unique(cx.sym["name"][rows[i[exact]]]).tolist()}
    return names | {cx.name_at(int(a)) for a in addresses[~exact].tolist()}


def _traceable(cx: Context) -> set[str]:
    """The names a booted kernel lists in ``available_filter_functions`` less its kprobe
    blacklist: the symbol at each ``__mcount_loc`` record outside init text."""
    pl = places(cx)
    if not pl.entries.applies:
        return set(pl.symbol_names)
    start, _, sections = cx.sections
    records = pl.entries.records
    i = np.maximum(np.searchsorted(start, records, "right") - 1, 0)
    init = np.array([n.startswith(".init") for n in sections], bool)[i]
    names = _names_at(cx, records[~init])
    blacklisted = set(blacklist(cx).names)
    return {n for n in names if "+" not in n and not n.startswith(".") and n not in blacklisted}


def _untyped_code_symbol(cx: Context, name: str) -> int | None:
    """The symbol row of an untyped symbol in a text section (``entry_SYSCALL_64``,
    ``asm_exc_page_fault``): the kernel's kallsyms lists it as a function."""
    rows, addrs = cx.code_symbols
    addr = cx.symbol_addresses([name]).get(name)
    if addr is None or "text" not in (cx.section_at(addr)[0] or ""):
        return None
    here = rows[np.searchsorted(addrs, addr, "left") : np.searchsorted(addrs, addr, "right")].tolist()
    hits = [int(r) for r in here if cx.string(cx.sym["name"][r]) == name]
    return hits[0] if hits else None


def _symbol_landings(cx: Context, res: Resolution, name: str, rows: list[int]) -> None:
    p = res.point
    kind = p.notes[0] if p.notes else ""
    if len(rows) > 1 and p.tool == "kprobe_events":
        res.errors.append(f"{name} names {len(rows)} functions: kprobe_events refuses it (EADDRNOTAVAIL)")
        return
    for srow in rows[:1] if p.tool in ("kprobe_events", "fail_function") else rows:
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
        elif row < 0 or addr != int(cx.inst_main_range[0][row]):  # a .cold part's own symbol
            res.landings.append(Landing(addr, fid, ps.RETURN if p.is_return else ps.ENTRY, row, how=f"symbol {name}"))
        else:
            entry, how = places(cx).entry(row)
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
    """A symbol probe names one build's clone: say which copies of that function this build
    has, or the closest names."""
    if any(c in name for c in "*?["):
        return  # resolve() says nothing matched
    why = "" if res.point.target.startswith("module:") else _closest(cx, name)
    res.errors.append(f"no symbol {name} in this build" + why)


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


def _stap_by_line(cx: Context, res: Resolution) -> None:
    """``statement("F@FILE:N")`` as stap places it (``probes/stap.py``): a line per DIE of F."""
    p = res.point
    assert p.line is not None and p.function
    found, error = stap.line_places(cx, matching_functions(cx, p.function, p.file), p.line)
    if error:
        res.errors.append(f'stap: "{error}"')
    for s in found:
        m = line_match(cx, s.address, cx.functions.column("decl_file")[s.fid].as_py() or "", s.line, True)
        res.landings.append(Landing(s.address, s.fid, ps.STATEMENT, s.instance, s.site, how=m.describe(), line=m))


# -- perf probe: its DWARF pass, then its symbol-table fallback (probes/perf.py) -----------------


def _by_perf(cx: Context, res: Resolution) -> None:
    p = res.point
    if p.is_return:  # try_to_find_probe_trace_events: "The retprobe doesn't need debuginfo" (5.12)
        res.notes.append("perf takes a return probe from the symbol table, never from DWARF")
        _perf_symbols(cx, res)
        return
    fids = [f for f in matching_functions(cx, p.function or "*", p.file) if cx.fn_status[f] != "symbol-only"]
    error = _perf_dwarf_pass(cx, res, fids)
    if not error:
        if not res.landings:
            res.errors.append(f"perf: \"Probe point '{p.text}' not found.\"")
        return
    res.landings.clear()
    if p.file or p.args:  # perf_probe_event_need_dwarf: no fallback
        res.errors.append(f'perf: "{error}"')
        return
    res.notes.append(f'perf\'s DWARF pass fails ("{error}"): it falls back to the symbol table')
    _perf_symbols(cx, res)


def _perf_symbols(cx: Context, res: Resolution) -> None:
    p = res.point
    placed, error = perf.symbol_fallback(cx, p.function or "*", p.offset or 0, p.is_return)
    if error:
        res.errors.append(f'perf: "{error}"')
    kind = ps.RETURN if p.is_return else ps.STATEMENT if p.offset else ps.ENTRY
    for addr, name in placed:
        row = places(cx).instance_at(addr)
        fid = int(cx.inst_fid[row]) if row >= 0 else -1
        res.landings.append(Landing(addr, fid, kind, row, how=f"symbol {name}+{p.offset or 0:#x}"))
    _unreached_by_symbol(cx, res)


def _perf_dwarf_pass(cx: Context, res: Resolution, fids: list[int]) -> str:
    """``probe_point_search_cb``: a function with an abstract DIE through its instances in DIE
    order (``die_walk_instances``: out-of-line copies and inline sites; the first "not found"
    ends the walk quietly, keeping what it placed), any other at its own entry; the first
    error perf meets, or ""."""
    for fid in fids:
        abstract = cx.sites_of(fid).size > 0 or any(
            cx.origin_of(int(cx.inst_die[r])) != _core.NO_DIE for r in cx.instances_of.get(fid, [])
        )
        for die, row, site in _perf_instances(cx, fid):
            error = _perf_place(cx, res, fid, row, site)
            if error and (error.startswith("Specified offset") or not abstract):
                return error
            if error:
                res.notes.append(f'perf stops at DIE {die:#x} ("{error}"), keeping the places before it')
                break
    if len(res.landings) > perf.MAX_PROBES:
        return f"Too many( > {perf.MAX_PROBES}) probe point found."
    return ""


def _perf_instances(cx: Context, fid: int) -> list[tuple[int, int, int]]:
    """(DIE, instance row, inline site row or -1) of ``fid``'s instances, in DIE order, less
    the redundant inline sites perf skips."""
    out = [(int(cx.inst_die[r]), r, -1) for r in cx.instances_of.get(fid, []) if cx.inst_die[r] != _core.NO_DIE]
    dies = cx.sites.column("die").to_numpy()
    out += [
        (int(dies[s]), int(cx.caller_instance[s]), s)
        for s in cx.sites_of(fid).tolist()
        if not perf.redundant_site(cx, s)
    ]
    return sorted(out)


def _perf_place(cx: Context, res: Resolution, fid: int, row: int, site: int) -> str | None:
    """One instance (or inline site) of ``fid`` as ``call_probe_finder`` converts it."""
    off = res.point.offset or 0
    if site >= 0:
        addr = int(cx.site_entry_pc[site]) + off
        error = perf.no_symbol_at(cx, row, addr)
        if not error:
            how = f"inlined into {cx.site_caller(site)}"
            res.landings.append(Landing(addr, fid, ps.INLINE, row, site, how=how))
        return error
    addr = int(cx.inst_main_range[0][row]) + off
    if off and places(cx).instance_at(addr) != row:  # convert_to_trace_point: dwarf_haspc
        return f"Specified offset is out of {cx.fn_name[fid]}"
    error = perf.no_symbol_at(cx, row, addr)
    if error:
        return error
    if off:
        res.landings.append(Landing(addr, fid, ps.STATEMENT, row, how=f"{cx.instance_symbol(row)}+{off:#x}"))
    else:
        entry, how = places(cx).entry(row)
        res.landings.append(Landing(entry, fid, ps.ENTRY, row, how=how))
    return None


def _perf_by_line(cx: Context, res: Resolution) -> None:
    p = res.point
    assert p.line is not None and p.function
    if p.line.relative and p.line.low == p.line.high == 0:  # F:0 is no line: the entry
        text = p.function + (f"@{p.file}" if p.file else "")  # synthesize_perf_probe_point
        entry = resolve(cx, dataclasses.replace(p, text=text, mode=ps.ENTRY, line=None))
        res.landings, res.errors, res.notes, res.missed = entry.landings, entry.errors, entry.notes, entry.missed
        return
    fids = [f for f in matching_functions(cx, p.function, p.file) if cx.fn_status[f] != "symbol-only"]
    found = perf.line_places(cx, fids, p.line)
    if found.error:
        res.errors.append(f'perf: "{found.error}"')
    elif not found.matches:
        res.errors.append(f"perf: \"Probe point '{p.text}' not found.\"")
    for m in found.matches:
        row = places(cx).instance_at(m.address)
        fid = int(cx.inst_fid[row]) if row >= 0 else -1
        if m.site >= 0:
            fid = int(cx.site_fid[m.site]) if int(cx.site_fid[m.site]) in fids else fid
        if fid not in fids:
            res.notes.append(
                f"line {m.line} is past the end of {p.function}: perf probes it in {cx.name_at(m.address)}"
            )
        res.landings.append(Landing(m.address, fid, ps.STATEMENT, row, m.site, how=m.describe(), line=m))

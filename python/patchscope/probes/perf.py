"""perf probe 6.1 as it really resolves a point, transcribed from its source.

perf reads the DWARF first (``tools/perf/util/probe-finder.c``, ``dwarf-aux.c``) and, when that
pass fails with an error (not when it merely finds nothing) and the point needs no DWARF — no
line, no file, no variable — it falls back to the ELF symbol table
(``util/probe-event.c``: ``try_to_find_probe_trace_events`` then
``find_probe_trace_events_from_map``). What the DWARF pass refuses:

* an address in a function whose DIE has ``DW_AT_ranges`` (a ``.cold`` part) in an ``ET_DYN``
  file (PIE, shared library): ``convert_to_trace_point`` finds no ``DW_AT_entry_pc``/``low_pc``,
  asks ``dwfl_module_addrsym`` for the symbol at the *unbiased* DWARF address, but libdwfl
  reports an offline ``ET_DYN`` at a bias (``OFFLINE_REDZONE``), so no symbol is there: "Failed
  to find symbol at 0x…". An ``ET_EXEC`` (vmlinux) has no bias and the lookup succeeds;
* ``%return`` on an inline site, an offset outside the function's DIE (``dwarf_haspc``), more
  than ``--max-probes`` (128) places.

A line ``F:N`` is the DWARF pass only (``find_probe_point_by_line``): every ``is_stmt`` row of
F's compile unit with line ``decl_line + N`` in F's file — anywhere in the unit, so past F's end
it lands in the next function — each checked by ``verify_representive_line``: the first
``is_stmt`` row at the address (or, at a function's entry, its declaration line) must be that
line, else the whole point fails with "This line is sharing the address with other lines" and
the line to use instead. ``F:0`` is no line at all: the function's entry.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from patchscope import _core
from patchscope.index.context import Context
from patchscope.index.tables import pool_indices
from patchscope.probes.lines import LineMatch, line_match
from patchscope.probes.places import places
from patchscope.probes.syntax import ENTRY, RETURN, LineSpec
from patchscope.rules.atomics import inline_sites_at

#: ``probe_conf.max_probes`` (``MAX_PROBES``, util/probe-event.h): more places fail the point.
MAX_PROBES = 128


def biased_ranges(cx: Context) -> bool:
    """Whether libdwfl reports this file at a bias (an ``ET_DYN``): perf then cannot find the
    symbol of a DIE that has no entry address."""
    return cx.info.get("kind") == "shared"


def kernel(cx: Context) -> bool:
    """``cx.is_kernel()``, asked once per binary (a point may be one of thousands)."""
    return cx.shared(Context.is_kernel)


def shared_name(cx: Context, addr: int) -> str | None:
    """The kernel symbol perf writes for ``addr`` (``post_process_probe_trace_point``: the
    ELF symbol holding it), when other functions share that name: a kprobe on a name several
    symbols have is refused (trace_kprobe's ``number_of_same_symbols``: EADDRNOTAVAIL)."""
    if not kernel(cx):
        return None
    name = cx.name_at(addr).split("+")[0]
    n = len(places(cx).symbol_names.get(name, []))
    return (
        f"perf writes {name}+offset, a name {n} functions share: the kernel refuses it (EADDRNOTAVAIL)"
        if n > 1
        else None
    )


def no_symbol_at(cx: Context, row: int, addr: int) -> str | None:
    """perf's "Failed to find symbol" for an address of instance ``row``, or None."""
    if row >= 0 and cx.inst_range_count[row] > 1 and biased_ranges(cx):
        return f"Failed to find symbol at {addr:#x}"
    return None


def redundant_site(cx: Context, site: int) -> bool:
    """``__die_walk_instances_cb``: an inline site whose call line and file are the inlined
    function's own declaration (a macro-generated function calling itself) is skipped."""
    fid = int(cx.site_fid[site])
    call_line = int(cx.sites.column("call_line")[site].as_py() or 0)
    if call_line != int(cx.functions.column("decl_line")[fid].as_py() or 0):
        return False
    return bool(cx.sites.column("call_file")[site].as_py() == cx.functions.column("decl_file")[fid].as_py())


def symbol_fallback(cx: Context, pattern: str, offset: int, is_return: bool) -> tuple[list[tuple[int, str]], str]:
    """``find_probe_trace_events_from_map``: the function symbols ``pattern`` globs (a version
    after ``@`` cut off), each at its address plus ``offset``; or the error perf prints."""
    rows = [
        r
        for name, rs in places(cx).symbol_names.items()
        if fnmatch.fnmatchcase(name.split("@")[0], pattern)
        for r in rs
    ]
    target = "kernel" if kernel(cx) else cx.path.resolve()  # pev->target ?: "kernel"
    if not rows:
        return [], f"Failed to find symbol {pattern} in {target}"
    if len(rows) > MAX_PROBES:
        return [], f"Too many functions matched in {target}"
    out = []
    for r in rows:
        name, size = cx.string(int(cx.sym["name"][r])), int(cx.sym_size[r])
        if offset > size:  # offs > size: an offset equal to the size is placed
            return [], f"Offset {offset} is bigger than the size of {name}"
        if is_return and offset:
            return [], "Return probe must be on the head of a real function"
        out.append((int(cx.sym["address"][r]) + offset, name))
    return out, ""


@dataclass
class PerfLines:
    matches: list[LineMatch] = field(default_factory=list)
    error: str = ""


class UnitLines:
    """Each compile unit's line rows as libdw's ``dwarf_getsrclines`` orders them (by address,
    an end of sequence first, else table order), built per unit when first asked."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        self.unit = cx.raw("lines").column("unit").to_numpy()
        self.bounds = np.searchsorted(self.unit, np.arange(int(self.unit.max(initial=0)) + 2))
        offsets = cx.table("units").column("offset").to_numpy()
        #: The unit of each instance and of each inline site, by its DIE.
        self.inst_unit = _units_of(offsets, cx.inst_die)
        self.site_unit = _units_of(offsets, cx.sites.column("die").to_numpy())
        # declarations and calls as (line, file pool index): __die_walk_funclines reports them
        self.decl_file = pool_indices(cx.functions.column("decl_file"))
        self.decl_line = cx.functions.column("decl_line").to_numpy()
        self.call_file = pool_indices(cx.sites.column("call_file"))
        self.call_line = cx.sites.column("call_line").to_numpy()
        self._units: dict[int, Unit] = {}

    def of(self, unit: int) -> Unit:
        if unit not in self._units:
            self._units[unit] = Unit(self, unit)
        return self._units[unit]


def _units_of(offsets: np.ndarray, dies: np.ndarray) -> np.ndarray:
    units = np.searchsorted(offsets, dies, "right") - 1
    units[dies == _core.NO_DIE] = -1
    return units


class Unit:
    def __init__(self, ul: UnitLines, unit: int) -> None:
        self.cx = cx = ul.cx
        lo, hi = int(ul.bounds[unit]), int(ul.bounds[min(unit + 1, len(ul.bounds) - 1)])
        raw = cx.raw("lines").slice(lo, hi - lo)
        addr = raw.column("address").to_numpy()
        flags = raw.column("flags").to_numpy()
        end = (flags & _core.lineflag.END_SEQUENCE) != 0
        order = np.lexsort((~end, addr))
        self.address = addr[order]
        self.file = raw.column("file").to_numpy()[order]
        self.line = raw.column("line").to_numpy()[order]
        self.stmt = (flags[order] & _core.lineflag.IS_STMT) != 0
        walked = self.stmt & ~end[order]
        # What die_walk_lines visits over a unit: its is_stmt rows, then each function's
        # declaration at its entry and each inline site's call line and its function's
        # declaration at its entry (__die_walk_culines_cb); sorted by line, stable.
        d_line, d_file, d_addr = _declarations(cx, ul, unit)
        line = np.concatenate([self.line[walked].astype(np.int64), d_line])
        by_line = np.argsort(line, kind="stable")
        self.walk_line = line[by_line]
        self.walk_file = np.concatenate([self.file[walked].astype(np.int64), d_file])[by_line]
        self.walk_addr = np.concatenate([self.address[walked].astype(np.uint64), d_addr])[by_line]

    def walk(self, line: int) -> list[tuple[str, int]]:
        """(file, address) of each place ``die_walk_lines`` reports ``line`` at, in its order."""
        s = slice(*np.searchsorted(self.walk_line, [line, line + 1]).tolist())
        return [(self.cx.string(f), a) for f, a in zip(self.walk_file[s].tolist(), self.walk_addr[s].tolist())]

    def statement_at(self, addr: int) -> int:
        """``cu_getsrc_die``: the first ``is_stmt`` row at ``addr``, -1."""
        i = int(np.searchsorted(self.address, addr, "left"))
        while i < len(self.address) and self.address[i] == addr:
            if self.stmt[i]:
                return i
            i += 1
        return -1


def _declarations(cx: Context, ul: UnitLines, unit: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(lines, files, addresses) of each instance's declaration at its entry, and of each
    inline site's call and its function's declaration at its entry (``__die_walk_funclines``);
    one without a file or line left out."""
    rows = np.flatnonzero(ul.inst_unit == unit)
    fids = cx.inst_fid[rows]
    sites = np.flatnonzero(ul.site_unit == unit)
    site_fids, site_pc = cx.site_fid[sites], cx.site_entry_pc[sites]
    line = np.concatenate([ul.decl_line[fids], ul.call_line[sites], ul.decl_line[site_fids]]).astype(np.int64)
    file = np.concatenate([ul.decl_file[fids], ul.call_file[sites], ul.decl_file[site_fids]]).astype(np.int64)
    addr = np.concatenate([cx.inst_main_range[0][rows], site_pc, site_pc]).astype(np.uint64)
    keep = (line > 0) & np.array([bool(cx.string(f)) for f in file.tolist()], bool)
    return line[keep], file[keep], addr[keep]


def unit_lines(cx: Context) -> UnitLines:
    return cx.shared(UnitLines)


def function_units(cx: Context, fid: int) -> list[int]:
    """The compile units holding ``fid``'s DIEs: its instances' and its inline sites'."""
    ul = unit_lines(cx)
    units = set(ul.inst_unit[cx.instances_of.get(fid, [])].tolist()) | set(ul.site_unit[cx.sites_of(fid)].tolist())
    return sorted(units - {-1})


def line_places(cx: Context, fids: list[int], spec: LineSpec) -> PerfLines:
    """``F:N`` for each of ``fids`` (the functions perf matches by name), as
    ``probe_point_line_walker`` walks F's unit."""
    out = PerfLines()
    decl_file = cx.functions.column("decl_file")
    decl_line = cx.functions.column("decl_line").to_numpy()
    seen: set[int] = set()
    for fid in fids:
        fname, base = decl_file[fid].as_py() or "", int(decl_line[fid])
        for unit in function_units(cx, fid):
            u = unit_lines(cx).of(unit)
            for lno in range(base + spec.low, base + spec.high + 1):
                for file, addr in u.walk(lno):
                    if not _tail_equal(file, fname):
                        continue
                    out.error = _shared_address(cx, u, fid, file, lno, addr) or _symbol_error(cx, addr) or ""
                    if out.error:
                        out.matches = []
                        return out
                    if addr not in seen:
                        seen.add(addr)
                        out.matches.append(line_match(cx, addr, file, lno, True))
    if len(out.matches) > MAX_PROBES:
        out.matches, out.error = [], f"Too many( > {MAX_PROBES}) probe point found."
    return out


def _tail_equal(a: str, b: str) -> bool:
    """``strtailcmp``: equal over the length of the shorter, compared from the end."""
    return a.endswith(b) or b.endswith(a)


def _symbol_error(cx: Context, addr: int) -> str | None:
    return no_symbol_at(cx, places(cx).instance_at(addr), addr)


def _shared_address(cx: Context, u: Unit, fid: int, file: str, lno: int, addr: int) -> str | None:
    """``verify_representive_line``: the line perf reads back at ``addr``, if another one."""
    row = places(cx).instance_at(addr)
    low = int(cx.inst_main_range[0][row]) if row >= 0 else -1
    if low == addr:  # cu_find_lineinfo: at a function's entry, its declaration
        back_fid = int(cx.inst_fid[row])
        back_file = cx.functions.column("decl_file")[back_fid].as_py() or ""
        back_line = int(cx.functions.column("decl_line")[back_fid].as_py() or 0)
    else:
        pos = u.statement_at(addr)
        if pos < 0:
            return None
        back_file, back_line = cx.string(int(u.file[pos])), int(u.line[pos])
    if back_file != file or back_line == lno:
        return None
    return (
        "This line is sharing the address with other lines. "
        f"Please try to probe at {_suggest(cx, fid, row, addr, back_file, back_line)} instead."
    )


def _suggest(cx: Context, fid: int, row: int, addr: int, file: str, line: int) -> str:
    """The line perf names instead: relative to the function asked for when it is a scope at
    ``addr`` (``find_best_scope``), else the file's absolute line."""
    scopes = ([int(cx.inst_fid[row])] if row >= 0 else []) + [
        int(cx.site_fid[s]) for s in reversed(inline_sites_at(cx, row, addr) if row >= 0 else [])
    ]
    name = cx.fn_name[fid]
    for scope in scopes:
        if cx.fn_name[scope] == name:
            return f"{name}:{line - int(cx.functions.column('decl_line')[scope].as_py() or 0)}"
    return f"{file}:{line}"


# -- variables: what ``perf probe -V`` lists at a probe address ---------------------------------

#: How perf probe 6.1 takes a variable at an address (``convert_variable_location`` with no
#: target argument, as ``-V`` calls it): only the expression's *first* operation is read —
#: ``DW_OP_reg*``/``regx`` a register, ``DW_OP_breg*``/``bregx``/``fbreg`` memory there, ``DW_OP_addr``
#: a static — and ``DW_AT_const_value`` as an immediate (``\\imm``, when the kernel's tracefs
#: README offers it).
READS = "reads"
#: A value computed from a register (``DW_OP_bregN off; …; DW_OP_stack_value``): perf reads
#: memory at the register plus offset instead — a value the variable never had.
READS_MEMORY = "reads-memory-instead"
#: A value in pieces whose first piece is a register: perf reads that register alone.
READS_PIECE = "reads-first-piece"
#: A parameter with no location at its function's entry: perf takes its first location later in
#: the function ("fuzzed by fentry mcount"), a value of another moment.
READS_LATER = "reads-later"
#: Not the scope's: a variable of a callee inlined at the address, which perf lists as its own.
CALLEE = "a-callee's"
#: In scope, and perf does not list it (no location there, or one it cannot express).
NOT_LISTED = "not-listed"


@dataclass(frozen=True)
class PerfScope:
    """One place perf lists variables at: the DIE it starts from (an instance or an inline
    site), the address, and the entry and end of the real function holding it (``sp_die``)."""

    die: int
    address: int
    entry: int
    end: int


def perf_scope(cx: Context, instance: int, site: int, address: int) -> PerfScope:
    """The place perf lists variables at for a landing: its inline site's DIE, else its
    instance's, at ``address`` (where perf asks: :func:`asked_address`)."""
    die = int(cx.sites.column("die")[site].as_py()) if site >= 0 else int(cx.inst_die[instance])
    low, high = (int(v[instance]) for v in cx.inst_main_range)
    # dwarf_highpc fails on a DIE with DW_AT_ranges: no later address is searched
    end = high if cx.inst_range_count[instance] == 1 else low - 1
    return PerfScope(die, address, low, end)


def asked_address(cx: Context, kind: str, instance: int, how: str, address: int) -> int:
    """The address perf computes for a landing: an entry at the function's first byte (the
    kernel, not perf, moves a kprobe there to the ftrace call site)."""
    if kind in (ENTRY, RETURN) and instance >= 0 and how == "ftrace call site":
        return int(cx.inst_main_range[0][instance])
    return address


def listed_variables(cx: Context, places: list[PerfScope]) -> list[dict[str, str]]:
    """``add_available_vars`` at each place: every parameter and variable of the DIE, of its
    lexical blocks *and of the inline sites* holding the address (``collect_variables_cb``
    descends into any child that has the pc, so a callee inlined there lends its variables to
    the function), each mapped to how perf reads it. Names perf would not list are absent."""
    from patchscope.index.variables import variables_at_table

    asked: list[tuple[int, int, int]] = []  # (place, die, address)
    for i, p in enumerate(places):
        asked += [(i, die, p.address) for die in [p.die, *_callee_dies(cx, p)]]
    scope_of = [die == places[i].die for i, die, _ in asked]
    out: list[dict[str, str]] = [{} for _ in places]
    if not asked:
        return out
    t = variables_at_table(cx.b, [(d, a) for _, d, a in asked])
    later = _first_later(cx, t, asked, places)
    names = ("pair", "name", "param", "state", "kind", "flags", "reg", "view_only")
    cols = {n: t.column(n).to_pylist() for n in names}
    for j, (pair, name, param, state, kind, flags, reg, view) in enumerate(zip(*cols.values())):
        how = _reads(state, int(kind), int(flags), int(reg), bool(view))
        if how is None and param and later[j] is not None:
            how = later[j]
        if how is not None:
            out[asked[pair][0]].setdefault(name, how if scope_of[pair] else CALLEE)
    return out


def _reads(state: str, kind: int, flags: int, reg: int, view_only: bool) -> str | None:
    k, f = _core.location_kind, _core.location_flag
    if state == "out-of-scope" or kind == k.NONE or view_only:
        return None
    if flags & f.CONST_VALUE:
        return READS
    if not flags & f.LEADS_WITH_PLACE:
        return None  # a literal, an entry value, a parameter ref, an implicit pointer: -ENOTSUP
    if kind == k.COMPUTED:
        return READS_MEMORY
    if kind == k.MEMORY and not flags & (f.FRAME_BASE | f.STATIC) and reg == _core.NO_REG:
        return READS_MEMORY  # an address computed (breg; deref …): perf stops at the breg
    if kind == k.COMPOSITE:
        return READS_PIECE
    return READS


def _callee_dies(cx: Context, p: PerfScope) -> list[int]:
    """The inline sites nested in ``p.die`` (at any depth) that hold ``p.address``."""
    row = places(cx).instance_at(p.address)
    if row < 0:
        return []
    chain = inline_sites_at(cx, row, p.address)
    site_die = cx.sites.column("die").to_numpy()
    if p.die == int(cx.inst_die[row]):
        return [int(site_die[s]) for s in chain]
    die, parent = cx.shared(_site_parents)
    out = []
    for site in chain:
        d = int(site_die[site])
        while d != p.die and d != _core.NO_DIE:
            i = int(np.searchsorted(die, d))  # ``die`` is sorted: sites come in DIE order
            d = int(parent[i]) if i < len(die) and die[i] == d else _core.NO_DIE
        if d == p.die and int(site_die[site]) != p.die:
            out.append(int(site_die[site]))
    return out


def _site_parents(cx: Context) -> tuple[np.ndarray, np.ndarray]:
    """Each inline site's DIE and the DIE of the scope it sits in, by DIE."""
    die, parent = cx.sites.column("die").to_numpy(), cx.sites.column("parent").to_numpy()
    order = np.argsort(die, kind="stable")
    return die[order], parent[order]


def _first_later(cx: Context, t: Any, asked: list[tuple[int, int, int]], places_: list[PerfScope]) -> list[str | None]:
    """For each row of ``t`` with no location at the address: when the address is its real
    function's entry, how perf reads the parameter at the first later address in the function
    a location-list entry covers (``for (addr += 1; addr <= highpc; addr++)``), else None."""
    from patchscope.index.variables import scope_variables

    out: list[str | None] = [None] * t.num_rows
    pairs = t.column("pair").to_numpy()
    dies = t.column("die").to_numpy()
    want = [
        j
        for j in range(t.num_rows)
        if places_[asked[int(pairs[j])][0]].address == places_[asked[int(pairs[j])][0]].entry
    ]
    if not want:
        return out
    scopes = sorted({asked[int(pairs[j])][1] for j in want})
    v, _ = scope_variables(cx.b, np.array(scopes, np.uint64))
    cols = {n: v.column(n).to_numpy() for n in ("die", "low", "high", "kind", "flags", "reg")}
    for j in want:
        p = places_[asked[int(pairs[j])][0]]
        mine = np.flatnonzero(cols["die"] == dies[j])
        start = np.maximum(cols["low"][mine], p.address + 1)
        hit = (start < cols["high"][mine]) & (start <= p.end) & (cols["low"][mine] < cols["high"][mine])
        if not hit.any():
            continue
        first = mine[hit][np.argmin(start[hit])]  # the first of equal ones
        how = _reads("", int(cols["kind"][first]), int(cols["flags"][first]), int(cols["reg"][first]), False)
        out[j] = READS_LATER if how == READS else how
    return out


def annotate(cx: Context, landings: list[Any], variables: list[list[dict[str, Any]]]) -> list[str | None]:
    """What ``perf probe -V`` says at each landing of a perf point: each variable record gets
    ``perf`` (how perf reads it, or :data:`NOT_LISTED`); returns for each landing a note when
    perf lists a callee's variables as the function's. A symbol-table landing has no DWARF pass."""
    dwarf = [i for i, lnd in enumerate(landings) if lnd.instance >= 0 and not lnd.how.startswith("symbol ")]
    where = [
        perf_scope(cx, lnd.instance, lnd.site, asked_address(cx, lnd.kind, lnd.instance, lnd.how, lnd.address))
        for lnd in (landings[i] for i in dwarf)
    ]
    notes: list[str | None] = [None] * len(landings)
    for i, found in zip(dwarf, listed_variables(cx, where)):
        for v in variables[i]:
            v["perf"] = found.get(v["name"], NOT_LISTED)
        lent = sorted(n for n, how in found.items() if how == CALLEE)
        if lent:
            notes[i] = (
                f"perf -V at {landings[i].address:#x} also lists {', '.join(lent)}: variables of a function "
                "inlined there, which perf reads as this function's (collect_variables_cb descends into it)"
            )
    return notes

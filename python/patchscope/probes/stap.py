"""SystemTap 4.8 as it really resolves a point, transcribed from its source (``tapsets.cxx``,
``dwflpp.cxx``).

A line, ``statement("F@FILE:N")`` (``dwflpp::iterate_over_srcfile_lines``,
``collect_lines_for_single_lineno``): for each DIE of F — each out-of-line instance but a
``.part`` body, each inline site — the *lowest* address of the rows of F's compile unit with
line N in F's declaration file (every row ``dwarf_getsrclines`` gives: ``is_stmt`` or not)
that the DIE covers (``dwarf_haspc``: all its ranges, a ``.cold`` part too); one address per
DIE, each address once. A compile unit where F's DIEs hold no such row is an error ("no line
records for FILE:N") that refuses the whole point. The probe's
scope is the DIE holding the address and its lexical blocks (``inner_die_containing_pc``
"intentionally doesn't cross into inlines"), so a probe inside a callee inlined into F sees F's
variables, not the callee's.

Variables (``dwarf_derived_probe::saveargs``, what ``stap -L`` lists and a handler may read):
every ``DW_TAG_variable`` and ``DW_TAG_formal_parameter`` with a name and a type, in the probe's
scope and the scopes holding it (for a function, ``.return`` or ``.inline`` probe the
function's or inline site's DIE itself, so not its lexical blocks), that has
``DW_AT_const_value`` or a location whose expression at the address is not empty
(``dwarf_getlocation_addr``). stap does not ask whether the expression can be read: an entry
value, a caller's parameter (``DW_OP_GNU_parameter_ref``), an implicit pointer are all listed.

A symbol with no DWARF is found by ``query_module_symtab`` for any function point, ``.inline``
too: stap probes ``function("_init").inline`` at ``_init``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from patchscope import _core
from patchscope.index.context import Context, local_entry_offset
from patchscope.probes import perf
from patchscope.probes import syntax as ps
from patchscope.probes.syntax import LineSpec
from patchscope.rules import peers
from patchscope.rules.atomics import InlineSites

#: ``VariableAt.state`` values stap does not list: no location expression at the address.
UNLISTED = frozenset({"optimized-out", "out-of-scope"})


def listed(kind: str, variables: list[dict[str, Any]]) -> list[str]:
    """``$name`` of each variable stap lists at a landing of ``kind``."""
    whole_scope = kind == ps.STATEMENT
    return [
        f"${v['name']}"
        for v in variables
        if v["state"] not in UNLISTED and not v["view_only"] and (whole_scope or not v["in_block"])
    ]


@dataclass(frozen=True)
class LinePlace:
    address: int
    fid: int
    line: int
    #: The instance holding the address (an inline site's: its caller's).
    instance: int
    #: The inline site of ``fid`` whose DIE is the probe's scope, -1: the instance's.
    site: int


@dataclass(frozen=True)
class _Die:
    fid: int
    instance: int
    site: int
    unit: int
    ranges: tuple[tuple[int, int], ...]


def line_places(cx: Context, fids: list[int], spec: LineSpec) -> tuple[list[LinePlace], str]:
    """``statement("F@FILE:N")`` (or ``N-M``, ``+N``) over ``fids``: the places stap probes,
    or none and its error. stap walks the compile units in order, each with F's DIEs declared in
    one file (``query_cu``, ``iterate_over_srcfile_lines``); for a single line a unit whose DIEs
    hold no row of it throws "no line records", which ends the whole query: a header's inline
    function whose copy in one unit lost the line refuses the point everywhere."""
    ul = perf.unit_lines(cx)
    decl_line = cx.functions.column("decl_line").to_numpy()
    groups: dict[tuple[int, int], list[_Die]] = {}
    for d in sorted((d for fid in fids for d in _dies(cx, fid)), key=lambda d: d.unit):
        groups.setdefault((d.unit, int(ul.decl_file[d.fid])), []).append(d)
    single = spec.low == spec.high
    chosen: list[tuple[int, int]] = []  # (address, line), one per DIE and line
    for (unit, file), dies in groups.items():
        found = []
        for lineno in range(spec.low, spec.high + 1):
            for d in dies:
                n = lineno + int(decl_line[d.fid]) if spec.relative else lineno
                addr = _lowest(ul.of(unit), file, n, d.ranges)
                if addr is not None:
                    found.append((addr, n))
        if single and not found:
            line = spec.low + (int(decl_line[dies[0].fid]) if spec.relative else 0)
            return [], f"no line records for {cx.string(file)}:{line}"
        chosen += found
    everything = [d for dies in groups.values() for d in dies]
    places, seen = [], set()
    for addr, n in chosen:
        if addr not in seen:
            seen.add(addr)
            places += [LinePlace(addr, d.fid, n, d.instance, d.site) for d in everything if _covers(d.ranges, addr)]
    if places or not fids:
        return places, ""
    file = cx.functions.column("decl_file")[fids[0]].as_py()
    return [], f"no line records for {file}:{spec.low + (int(decl_line[fids[0]]) if spec.relative else 0)}"


def _dies(cx: Context, fid: int) -> list[_Die]:
    """The DIEs stap matches for ``fid``: its out-of-line instances but ``.part`` bodies
    (never mapped back to their source name), and its inline sites, one per entry address
    (``query_dwarf_inline_instance``: ``inline_dupes`` keeps the first site in DIE order at an
    entry pc, so the ranges of the others are never searched)."""
    ul = perf.unit_lines(cx)
    out = [
        _Die(fid, row, -1, int(ul.inst_unit[row]), tuple((int(lo), int(hi)) for lo, hi in cx.inst_ranges(row)))
        for row in cx.instances_of.get(fid, [])
        if not int(cx.inst_suffix_kinds[row]) & _core.suffix.PART and ul.inst_unit[row] >= 0
    ]
    sites = cx.sites_of(fid)
    if sites.size:
        s = cx.shared(InlineSites)
        entries = cx.site_entry_pc[sites]
        for site in sites[np.unique(entries, return_index=True)[1]].tolist():
            mine = s.site == site
            ranges = tuple(zip(s.low[mine].tolist(), s.high[mine].tolist()))
            out.append(_Die(fid, int(cx.caller_instance[site]), site, int(ul.site_unit[site]), ranges))
    return [d for d in out if d.unit >= 0]


def _lowest(u: perf.Unit, file: int, line: int, ranges: tuple[tuple[int, int], ...]) -> int | None:
    """The lowest address of the unit's rows of ``file:line`` inside ``ranges``."""
    hit = (u.line == line) & (u.file == file)
    if not hit.any():
        return None
    addrs = u.address[hit]
    inside = np.zeros(len(addrs), bool)
    for lo, hi in ranges:
        inside |= (addrs >= lo) & (addrs < hi)
    return int(addrs[inside].min()) if inside.any() else None


def _covers(ranges: tuple[tuple[int, int], ...], addr: int) -> bool:
    return any(lo <= addr < hi for lo, hi in ranges)


def blocklisted(cx: Context, fid: int, kind: str, addr: int) -> str | None:
    """Why stap skips a probe of ``fid`` at ``addr`` (``dwflpp::blocklisted_p``: it warns and
    places nothing there), or None. The section rule is ``resolve._skip_init_exit``'s."""
    name = cx.fn_name[fid]
    if not perf.kernel(cx):
        return (
            "a return probe of a function without the normal entry ABI"
            if (kind == ps.RETURN and peers.STAP_USER_RETURN.match(name))
            else None
        )
    file = cx.functions.column("decl_file")[fid].as_py() or ""
    section = cx.section_at(addr)[0]
    rule = peers.kernel_rule(cx.arch, name, file, section, peers.STAP_FUNCTIONS.match(name) is not None)
    if rule and rule.startswith("a blocklisted return probe") and kind != ps.RETURN:
        return None
    return rule


def local_entry(cx: Context, addr: int) -> int:
    """``get_lep``: on ppc64 ELFv2 every probe at a function symbol's address (its global
    entry, which sets up the TOC) moves to its local entry, the offset ``st_other`` encodes."""
    return addr + cx.shared(_local_entries).get(addr, 0)


def _local_entries(cx: Context) -> dict[int, int]:
    if not cx.arch.startswith("ppc64"):
        return {}
    other, address = cx.sym["other"], cx.sym["address"]
    keep = (other & 0xE0) != 0
    return {int(a): local_entry_offset(int(o)) for a, o in zip(address[keep].tolist(), other[keep].tolist())}


def dwarf_without_code(cx: Context, fid: int) -> bool:
    """Whether a function patchscope knows by its symbol only has a subprogram DIE of its name
    with no code (a body GCC's ICF folded into another): stap matches that DIE, which has no
    entry pc, and ``update_symtab`` has given the symbol that DIE, so ``query_module_symtab``
    skips it too — stap probes nothing. An inline definition (``DW_AT_inline``: the vmlinux's
    ``blk_freeze_queue``, whose out-of-line copy lost its DWARF) is never given to a symbol
    ("inlines will never be in the symbol table"), so its symbol is probed."""
    return cx.fn_status[fid] == "symbol-only" and cx.fn_name[fid] in cx.shared(_symbol_dies)


def _symbol_dies(cx: Context) -> frozenset[str]:
    """Names of the subprogram DIEs ``update_symtab`` may give a symbol: definitions (a
    declaration is not one) that ``dwarf_func_inline`` does not call inline."""
    flags = cx.sp["flags"]
    given = (flags & (_core.spflag.DECLARATION | _core.spflag.INLINE)) == 0
    return frozenset(cx.string(int(n)) for n in np.unique(cx.sp["name"][given]).tolist())

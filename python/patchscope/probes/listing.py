"""A ``stap -L`` listing, told truthfully: clones under their real names, and on each line only
the variables that really have a value at that address.

stap names an ``.isra``/``.constprop`` clone by its source name and lists every variable in
scope, located or not; here ``compute_level.isra.0`` is itself, and ``$cfg`` is left out of
its line because the clone no longer receives it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.index.variables import variables_at_table
from patchscope.probes import syntax as ps
from patchscope.probes.judge import scopes
from patchscope.probes.places import places
from patchscope.probes.resolve import Landing, Resolution, resolve
from patchscope.rules.finding import hexa
from patchscope.rules.writes import variable_writes

#: Variable states a probe can read a value from.
READABLE = frozenset({"register", "memory", "constant", "computed", "pieces"})
#: Suffix kinds of a body GCC changed (``.part``, ``.isra``, ``.constprop``, ``.lto_priv``,
#: ``.clone``), named by its symbol; an alias (``.localalias``, ``__GI_x``) is not one.
CHANGED = _core.suffix.PART | _core.suffix.ISRA | _core.suffix.CONSTPROP | _core.suffix.LTO_PRIV | _core.suffix.CLONE


@dataclass
class Line:
    """One line of the listing: a probe point and the variables that exist there."""

    point: str
    variables: list[str]
    #: ``pc=`` of each address the line stands for (one, with ``-v``).
    pcs: list[int] = field(default_factory=list)
    #: ``--writes``: by variable, what a write to it at the line's one address would do.
    writes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def text(self, verbose: bool) -> str:
        pcs = f" pc={','.join(hexa(a) for a in self.pcs)}" if verbose else ""
        writes = [f"{name}={w['verdict']}" for name, w in self.writes.items()]
        return " ".join([self.point + pcs, *self.variables, *(["writes:", *writes] if writes else [])])


def listing(binary: Binary, pattern: str, verbose: bool, writes: bool = False) -> tuple[list[Line], list[str]]:
    """The lines for ``pattern`` (a SystemTap function or statement point) and any errors;
    ``writes`` (one line per address): what a write to each variable there would do."""
    verbose = verbose or writes
    cx = Context(binary)
    point = ps.parse(pattern)
    if point.tool != "stap":
        raise ps.ProbeSyntaxError(pattern, 0, 'list takes a SystemTap pattern, e.g. kernel.function("*")')
    res = resolve(cx, point)
    parts = _part_bodies(cx, res)
    landings = res.landings + parts
    at = variables_at_table(binary, list(zip(scopes(cx, landings), (lnd.address for lnd in landings))))
    lines = list(_lines(cx, point, landings, at, verbose, _write_verdicts(cx, landings) if writes else None))
    # resolve's "no such function" when a .part body is all there is
    return lines, [] if parts and not res.landings else res.errors


def _write_verdicts(cx: Context, landings: list[Landing]) -> list[dict[str, dict[str, Any]]]:
    """At each landing: the write verdict of every variable there."""
    places = [(lnd.instance, scope, lnd.address) for lnd, scope in zip(landings, scopes(cx, landings))]
    return [{name: v.record() for name, v in found.items()} for found in variable_writes(cx, places)]


def _part_bodies(cx: Context, res: Resolution) -> list[Landing]:
    """The ``.part`` bodies stap leaves out (``resolve`` follows it and records them as missed):
    the listing names them, ``buf_process.part.0``."""
    if res.point.mode == ps.INLINE:
        return []
    landed = {lnd.instance for lnd in res.landings if lnd.kind != ps.INLINE}
    kind = ps.RETURN if res.point.is_return else ps.ENTRY
    return [
        Landing(places(cx).entry(row)[0], fid, kind, row, how=".part body")
        for fid in dict.fromkeys(m.fid for m in res.missed)
        for row in cx.instances_of.get(fid, [])
        if row not in landed and int(cx.inst_suffix_kinds[row]) & _core.suffix.PART
    ]


def _instance_name(cx: Context, row: int, fid: int) -> str:
    """A changed body by its symbol (``compute_level.isra.0``); any other instance by its DWARF
    name, which stap's ``function("…")`` matches: the first symbol at its address may be an
    alias (glibc's ``__GI_x``, a versioned ``x@GLIBC_2.2.5``, ``x.localalias``). A symbol
    loses its ``@VERSION``, which stap would read as ``@FILE``."""
    if int(cx.inst_die[row]) == _core.NO_DIE or int(cx.inst_suffix_kinds[row]) & CHANGED:
        return cx.instance_symbol(row).split("@")[0]
    return cx.fn_name[fid]


def _lines(
    cx: Context,
    point: ps.ProbePoint,
    landings: list[Landing],
    at: pa.Table,
    verbose: bool,
    writes: list[dict[str, dict[str, Any]]] | None = None,
) -> Iterator[Line]:
    groups: dict[tuple[int, int, str], list[int]] = {}
    for i, lnd in enumerate(landings):
        key = (lnd.fid, i if verbose else lnd.instance if lnd.kind != ps.INLINE else -1, lnd.kind)
        groups.setdefault(key, []).append(i)
    ordered = sorted(groups.items(), key=lambda kv: (cx.fn_name[kv[0][0]], kv[0][1:]))
    line_of = np.empty(len(landings), np.int64)
    for n, (_, members) in enumerate(ordered):
        line_of[members] = n
    present = _present(at, line_of, [len(m) for _, m in ordered])
    for ((fid, _, kind), members), variables in zip(ordered, present):
        first = landings[members[0]]
        name = _instance_name(cx, first.instance, fid) if kind != ps.INLINE and first.instance >= 0 else cx.fn_name[fid]
        variables = ["$return", *variables] if kind == ps.RETURN else variables
        pcs = [landings[i].address for i in members]
        yield Line(_point_text(cx, point, fid, name, kind), variables, pcs, writes[members[0]] if writes else {})


def _point_text(cx: Context, point: ps.ProbePoint, fid: int, name: str, kind: str) -> str:
    files, lines = cx.shared(_declarations)
    where = f"{name}@{files[fid]}:{lines[fid]}" if files[fid] else name
    target = point.target
    head = (
        "kernel"
        if target == "kernel"
        else f'module("{target[7:]}")'
        if target.startswith("module:")
        else f'process("{target[8:] or cx.path.resolve()}")'  # stap -x names the program by its path
    )
    suffix = {ps.INLINE: ".inline", ps.RETURN: ".return"}.get(kind, "")
    if point.mode == ps.CALL and kind == ps.ENTRY:
        suffix = ".call"
    return f'{head}.function("{where}"){suffix}'


def _declarations(cx: Context) -> tuple[list[str | None], list[int]]:
    lines: list[int] = cx.functions.column("decl_line").to_numpy().tolist()
    return cx.functions.column("decl_file").to_pylist(), lines


def _present(at: pa.Table, line_of: np.ndarray, sizes: list[int]) -> list[list[str]]:
    """For each line, ``$name:type`` of the variables readable at every one of its addresses;
    one readable at some of them only is marked ``?``. Keyed by name and type: one line can hold
    copies of a function built for char and for wchar_t (glibc's memcpy_lowcase: ``$dest:char*``
    at 2 sites, ``$dest:wchar_t*`` at 2)."""
    # stap -L lists a function's own variables, not those of its lexical blocks; a binding in
    # a later location view of the address is not seen by a probe there
    seen = pc.is_in(at.column("state"), value_set=pa.array(sorted(READABLE)))
    seen = pc.and_(seen, pc.invert(pc.or_(at.column("in_block"), at.column("view_only"))))
    t = at.filter(seen)
    # the stubs want every argument of one type; Arrow takes the separator as a scalar
    keys = pc.binary_join_element_wise(  # type: ignore[call-overload]
        t.column("name"), t.column("type"), pa.scalar(":", pa.large_string())
    ).to_pylist()
    counts: list[dict[str, int]] = [{} for _ in sizes]
    pairs = t.column("pair").to_numpy()
    # an address counts once per key: one scope can hold two `__ret` of one type (macro copies)
    lines = line_of.tolist()
    for pair, key in dict.fromkeys(zip(pairs.tolist(), keys)):
        found = counts[lines[pair]]
        found[key] = found.get(key, 0) + 1
    return [[f"${k}" + ("" if c == size else "?") for k, c in found.items()] for found, size in zip(counts, sizes)]

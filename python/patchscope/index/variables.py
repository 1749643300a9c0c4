"""Variables in scope at an address: for a concrete function instance or an inline site,
every parameter and local variable, and where it lives at that address.

The core answers per scope, location by location (``_core.Binary.variables``,
``core/src/dwarf/scope.rs``): table ``variables`` has one row per (variable, location) with the
addresses ``[low, high)`` where that location holds; table ``blocks`` the ranges of the
lexical blocks the variables sit in. Here those become the state of each variable at given
addresses, for many (scope, address) pairs at once, without a Python object per row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import pyarrow as pa

from patchscope import _core
from patchscope.index.abi import reg_name
from patchscope.index.tables import Columns, list_array

if TYPE_CHECKING:
    from patchscope.index.binary import Binary

#: ``VariableAt.state`` of each location kind.
STATES = {
    _core.location_kind.NONE: "optimized-out",
    _core.location_kind.REGISTER: "register",
    _core.location_kind.MEMORY: "memory",
    _core.location_kind.ENTRY_VALUE: "entry-value-only",
    _core.location_kind.PARAM_REF: "parameter-ref",
    _core.location_kind.CONSTANT: "constant",
    _core.location_kind.COMPUTED: "computed",
    _core.location_kind.COMPOSITE: "pieces",
    _core.location_kind.IMPLICIT_POINTER: "implicit-pointer",
    _core.location_kind.ERROR: "unreadable",
}
#: The state of a variable whose lexical block does not cover the address.
OUT_OF_SCOPE = "out-of-scope"
#: The state of a value in pieces of which one has no location (``location_flag.PIECE_MISSING``).
PIECES_MISSING = "pieces-missing"
_STATE_NAMES = np.array([STATES.get(k, "unreadable") for k in range(max(STATES) + 1)], object)


#: The fields of :class:`VariableAt`, in order.
FIELDS = ("name", "type", "param", "state", "locations", "multiple", "view_only", "in_block")


@dataclass
class VariableAt:
    """One variable of a scope, at one address.

    ``state`` is where its value is there (a key of :data:`STATES`' values, or
    ``out-of-scope``); ``locations`` says it for a person (``%rdi``, ``fbreg-24``, ``=42``),
    the location that holds first. ``multiple``: more than one location-list entry binds at
    the address (GCC's location views give several states to one address).
    ``view_only``: the location holds only in a later view of the address, which a probe
    placed by address does not select. ``in_block``: declared in a lexical block of the scope,
    not at its top (``stap -L`` lists only the top's; a probe in the block reads it too).
    """

    name: str
    type: str
    param: bool
    state: str
    locations: list[str] = field(default_factory=list)
    multiple: bool = False
    view_only: bool = False
    in_block: bool = False

    def record(self) -> dict[str, Any]:
        """Its fields as a dict (``dataclasses.asdict`` deep-copies field by field: ten times
        slower over the thousands of variables of a probe file's landings)."""
        return {**vars(self), "locations": list(self.locations)}


def scope_variables(binary: Binary, scopes: list[int] | np.ndarray) -> tuple[pa.Table, pa.Table]:
    """Tables ``variables`` and ``blocks`` of the scopes (DIEs of concrete instances or
    inline sites), with string columns decoded; DIEs that are no such scope yield no rows."""
    dies = np.unique(np.asarray(scopes, dtype=np.uint64))
    dies = dies[dies != _core.NO_DIE]
    cols = Columns.from_core(binary.core.variables(dies.tobytes()))
    return cols.table("variables"), cols.table("blocks")


def variables_at(binary: Binary, scope: int, address: int) -> list[VariableAt]:
    """The variables of ``scope`` at ``address``, in source order."""
    return variables_at_many(binary, [(scope, address)])[0]


def variables_at_many(binary: Binary, pairs: list[tuple[int, int]]) -> list[list[VariableAt]]:
    """The variables of each (scope, address) pair, in source order, with one core call."""
    table = variables_at_table(binary, pairs)
    out: list[list[VariableAt]] = [[] for _ in pairs]
    columns = [table.column(name).to_pylist() for name in ("pair", *FIELDS)]
    for pair, *fields in zip(*columns):
        out[pair].append(VariableAt(*fields))
    return out


def variables_at_table(binary: Binary, pairs: list[tuple[int, int]]) -> pa.Table:
    """:func:`variables_at_many` as one table, without a Python object per variable: one row
    per pair and variable, ordered by pair and source order. Columns: ``pair`` (index into
    ``pairs``), ``scope``, ``address``, ``die``, ``position`` and the fields of
    :class:`VariableAt`, and ``kind`` and ``reg``: the chosen location's ``_core.location_kind``
    (``NONE`` when none binds) and DWARF register (``_core.NO_REG`` when none), its ``value``
    (the offset of a memory location, the constant) and ``flags`` (``_core.location_flag``)."""
    scope = np.array([p[0] for p in pairs], dtype=np.uint64)
    address = np.array([p[1] for p in pairs], dtype=np.uint64)
    variables, blocks = scope_variables(binary, scope)
    return _at(variables, blocks, scope, address, binary.arch)


def _at(variables: pa.Table, blocks: pa.Table, scope: np.ndarray, address: np.ndarray, arch: str) -> pa.Table:
    v = {
        name: variables.column(name).to_numpy()
        for name in ("scope", "die", "low", "high", "kind", "flags", "reg", "value")
    }
    # The rows of each pair: the core returns each scope's rows together, in DIE order.
    pair, row = _expand(np.searchsorted(v["scope"], scope, "left"), np.searchsorted(v["scope"], scope, "right"))
    a = address[pair]
    low, high, view = v["low"][row], v["high"][row], (v["flags"][row] & _core.location_flag.VIEW_ONLY) != 0
    binds = np.where(view, low == a, (low <= a) & (a < high)) & (v["kind"][row] != _core.location_kind.NONE)
    # One group per (pair, variable), ordered: the binding rows first, view-only ones last.
    die = v["die"][row]
    starts = np.ones(len(row), bool)
    starts[1:] = (pair[1:] != pair[:-1]) | (die[1:] != die[:-1])
    group = np.cumsum(starts) - 1
    order = np.lexsort((row, view, ~binds, group))
    first = order[np.flatnonzero(starts)]  # each group's chosen row
    count = np.bincount(group, weights=binds, minlength=len(first)).astype(np.int64)
    chosen = binds[first]

    at = row[first]
    block = variables.column("block").to_numpy()[at]
    in_scope = _in_block(block, a[first], blocks)
    kind = np.where(chosen, v["kind"][at], _core.location_kind.NONE)
    state = np.where(in_scope, _STATE_NAMES[kind], OUT_OF_SCOPE)
    state[in_scope & chosen & ((v["flags"][at] & _core.location_flag.PIECE_MISSING) != 0)] = PIECES_MISSING
    listed = order[binds[order]]  # by group, the chosen first
    listed = listed[in_scope[group[listed]]]
    offsets = np.zeros(len(first) + 1, np.int64)
    offsets[1:] = np.cumsum(np.where(in_scope, count, 0))
    texts = _describe(variables, row[listed], arch)
    take = pa.array(at)
    # from_pydict, which pa.table calls: the stubs type only its mapping as chunked arrays
    return pa.Table.from_pydict(
        {
            "pair": pa.array(pair[first], pa.int64()),
            "scope": pa.array(scope[pair[first]]),
            "address": pa.array(a[first]),
            "die": pa.array(v["die"][at]),
            "position": variables.column("position").take(take),
            "name": variables.column("name").take(take).cast(pa.large_string()),
            "type": variables.column("type").take(take).cast(pa.large_string()),
            "param": pa.array(variables.column("param").to_numpy()[at] != 0),
            "state": pa.array(state, pa.string()),
            "locations": list_array(offsets, pa.array(texts, pa.string())),
            "multiple": pa.array(in_scope & (count > 1)),
            "view_only": pa.array(in_scope & chosen & view[first]),
            "in_block": pa.array(block != _core.NO_DIE),
            "kind": pa.array(np.where(in_scope, kind, _core.location_kind.NONE).astype(np.uint8)),
            "reg": pa.array(np.where(in_scope & chosen, v["reg"][at], _core.NO_REG).astype(np.uint16)),
            "value": pa.array(np.where(in_scope & chosen, v["value"][at], 0).astype(np.int64)),
            "flags": pa.array(np.where(in_scope & chosen, v["flags"][at], 0).astype(np.uint8)),
        }
    )


def _expand(starts: np.ndarray, ends: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For runs ``[starts[i], ends[i])``: each element's run index and the element."""
    counts = (ends - starts).astype(np.int64)
    run = np.repeat(np.arange(len(starts)), counts)
    at = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return run, starts[run] + at


def _in_block(block: np.ndarray, address: np.ndarray, blocks: pa.Table) -> np.ndarray:
    """Whether each variable's lexical block (``NO_DIE``: none, the whole scope) covers its address."""
    inside: np.ndarray = block == _core.NO_DIE
    ask = np.flatnonzero(~inside)
    if len(ask) == 0:
        return inside
    b = {name: blocks.column(name).to_numpy() for name in ("block", "low", "high")}
    order = np.argsort(b["block"], kind="stable")
    ids = b["block"][order]
    q, r = _expand(np.searchsorted(ids, block[ask], "left"), np.searchsorted(ids, block[ask], "right"))
    r = order[r]
    hit = (b["low"][r] <= address[ask][q]) & (address[ask][q] < b["high"][r])
    inside[ask] = np.bincount(q, weights=hit, minlength=len(ask)) > 0
    return inside


def _describe(variables: pa.Table, rows: np.ndarray, arch: str) -> np.ndarray:
    """Each row's location for a person, computed once per distinct location."""
    col = {n: variables.column(n).to_numpy()[rows].astype(np.int64) for n in ("kind", "reg", "value", "flags")}
    small = (
        col["kind"]
        | (col["flags"] & (_core.location_flag.FRAME_BASE | _core.location_flag.STATIC)) << 8
        | col["reg"] << 16
    )
    order = np.lexsort((col["value"], small))
    s, v = small[order], col["value"][order]
    new = np.ones(len(rows), bool)
    new[1:] = (s[1:] != s[:-1]) | (v[1:] != v[:-1])
    first = order[new]
    text = [describe(int(k), int(r), int(v), int(f), arch) for k, r, v, f in zip(*(col[n][first] for n in col))]
    out = np.empty(len(rows), object)
    out[order] = np.array(text, object)[np.cumsum(new) - 1]
    return out


def describe(kind: int, reg: int, value: int, flags: int, arch: str) -> str:
    """One location, as ``%rdi``, ``fbreg-24``, ``%rsp+8``, ``@0x…``, ``=42``, ``entry(%rsi)``."""
    name = f"%{reg_name(arch, reg)}" if reg != _core.NO_REG else ""
    if kind == _core.location_kind.REGISTER:
        return name
    if kind == _core.location_kind.MEMORY:
        if flags & _core.location_flag.FRAME_BASE:
            return f"fbreg{value:+d}"
        if flags & _core.location_flag.STATIC:
            return f"@{value & 0xFFFF_FFFF_FFFF_FFFF:#x}"
        return f"{name}{value:+d}" if name else "computed-address"
    if kind == _core.location_kind.CONSTANT:
        return f"={value}"
    if kind == _core.location_kind.ENTRY_VALUE:
        return f"entry({name})" if name else "entry-value"
    if kind == _core.location_kind.COMPOSITE:
        return f"pieces({name}…)" if name else "pieces"
    return STATES.get(kind, "unreadable")

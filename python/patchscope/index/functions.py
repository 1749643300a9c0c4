"""Source functions, their out-of-line instances and their inline sites.

A *source function* is what a person names in a probe: one function of the source code,
identified by name and declaration file and line. GCC may emit it as several DIEs: an
abstract DIE per unit that inlines it, a concrete DIE per out-of-line copy or clone
(``.constprop``, ``.isra``, ``.part``; a ``.cold`` part is a second range of the same DIE),
and one ``DW_TAG_inlined_subroutine`` per inline site. Each of these is followed through
``DW_AT_abstract_origin`` and ``DW_AT_specification`` to the DIE that carries the name.

DWARF instances are joined to ELF symbols by address, never by name. A function is *not*,
*fully* or *selectively inlined* by counting its instances and inline sites; ``DW_AT_inline``
is not used, since GCC sets it on the abstract DIE of every IPA clone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import numpy as np
import pyarrow as pa

from patchscope import _core
from patchscope.index.tables import Columns, list_array

NOT_INLINED = "not-inlined"
FULLY_INLINED = "fully-inlined"
SELECTIVELY_INLINED = "selectively-inlined"
SYMBOL_ONLY = "symbol-only"


def rows_of(sorted_dies: np.ndarray, dies: np.ndarray) -> np.ndarray:
    """The row of each DIE in ``sorted_dies`` (the core emits DIEs in offset order), -1 where absent."""
    pos = np.searchsorted(sorted_dies, dies)
    pos = np.minimum(pos, max(len(sorted_dies) - 1, 0))
    found = (len(sorted_dies) > 0) & (sorted_dies[pos] == dies) if len(sorted_dies) else np.zeros(len(dies), bool)
    return np.where(found, pos, -1)


def group_ids(*columns: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Numbers the distinct tuples of ``columns`` in sorted order: returns one row of each
    group and the group of every row (``np.unique(axis=0)``, without its slow sort of rows)."""
    order = np.lexsort(columns[::-1])
    change = np.zeros(len(order), bool)
    if len(order):
        change[0] = True
        for c in columns:
            sc = c[order]
            change[1:] |= sc[1:] != sc[:-1]
    group_sorted = np.cumsum(change) - 1
    ids = np.empty(len(order), np.int64)
    ids[order] = group_sorted
    return order[change], ids


def origin_roots(die: np.ndarray, origin: np.ndarray, spec: np.ndarray) -> np.ndarray:
    """For each subprogram row, the row reached by following abstract origin, then
    specification, until neither is present (chains are short: concrete → abstract →
    declaration)."""
    ref = np.where(origin != _core.NO_DIE, origin, spec)
    row = np.arange(len(die))
    for _ in range(8):
        target = rows_of(die, ref[row])
        moving = target >= 0
        moving &= target != row
        if not moving.any():
            break
        row = np.where(moving, target, row)
    return row


@dataclass
class Inventory:
    """The function inventory of one binary, as Arrow tables.

    ``functions``: one row per source function (``fid``), with its counts and status.
    ``instances``: one row per out-of-line instance (a concrete DIE with code, or a function
    symbol that no DWARF describes), with its address ranges and the rows of the symbols
    table found at their starts (the main symbol first, then ``.cold`` parts).
    ``inline_sites``: the core's inline-site table with the source function of each.
    """

    functions: pa.Table
    instances: pa.Table
    inline_sites: pa.Table


def build(cols: Columns) -> Inventory:
    sp = cols.raw["subprograms"]
    die = sp.column("die").to_numpy()
    flags = sp.column("flags").to_numpy()
    root = origin_roots(die, sp.column("origin").to_numpy(), sp.column("specification").to_numpy())
    name = sp.column("name").to_numpy()[root]
    file = sp.column("decl_file").to_numpy()[root]
    line = sp.column("decl_line").to_numpy()[root]
    external = (flags[root] & _core.spflag.EXTERNAL) != 0

    has_code = (flags & _core.spflag.HAS_CODE) != 0
    inl = cols.raw["inline_sites"]
    inl_fn_row = rows_of(die, inl.column("function").to_numpy())
    inl_origin_row = rows_of(die, inl.column("origin").to_numpy())
    # Sites inside abstract instance trees are a description, not code.
    concrete_site = (inl_fn_row >= 0) & (inl_origin_row >= 0)
    concrete_site[concrete_site] &= has_code[inl_fn_row[concrete_site]]

    # Source-function ids over the named roots of instances and inline sites.
    inst_rows = np.flatnonzero(has_code & (name != 0))
    site_rows = np.flatnonzero(concrete_site)
    site_sp = inl_origin_row[site_rows]
    keys = np.concatenate([inst_rows, site_sp])
    first, fid = group_ids(name[keys], file[keys], line[keys])
    uniq = np.stack([name[keys][first], file[keys][first], line[keys][first]], axis=1)
    inst_fid, site_fid = fid[: len(inst_rows)], fid[len(inst_rows) :]
    nfn = len(uniq)
    # external: any DIE of the function says so (the abstract DIE carries it for inlines)
    ext = np.zeros(nfn, bool)
    np.logical_or.at(ext, fid, external[keys])

    instances = _instances(cols, inst_rows, inst_fid, die, root)
    sym = _symbol_only(cols, instances)
    # Symbol-only functions get ids after the DWARF ones, one per stem.
    stems = sym["stem"]
    uniq_stems, stem_fid = np.unique(stems, return_inverse=True)
    stem_fid = stem_fid.reshape(-1) + nfn

    n_inst = np.bincount(inst_fid, minlength=nfn)
    n_sites = np.bincount(site_fid, minlength=nfn)
    status = np.where(n_sites == 0, NOT_INLINED, np.where(n_inst == 0, FULLY_INLINED, SELECTIVELY_INLINED))
    n_sym_inst = np.bincount(stem_fid - nfn, minlength=len(uniq_stems))

    functions = pa.table(
        {
            "fid": np.arange(nfn + len(uniq_stems), dtype=np.int64),
            "name": _dict(cols, np.concatenate([uniq[:, 0], uniq_stems]).astype(np.uint32)),
            "decl_file": _dict(cols, np.concatenate([uniq[:, 1], np.zeros(len(uniq_stems))]).astype(np.uint32)),
            "decl_line": np.concatenate([uniq[:, 2], np.zeros(len(uniq_stems))]).astype(np.uint32),
            "external": np.concatenate([ext, np.zeros(len(uniq_stems), bool)]),
            "instances": np.concatenate([n_inst, n_sym_inst]).astype(np.int64),
            "inline_sites": np.concatenate([n_sites, np.zeros(len(uniq_stems))]).astype(np.int64),
            "status": pa.array(np.concatenate([status, np.full(len(uniq_stems), SYMBOL_ONLY)])),
        }
    )
    instances = pa.concat_tables(
        [
            instances.append_column("fid", pa.array(inst_fid.astype(np.int64))),
            _symbol_only_table(cols, sym, stem_fid),
        ]
    )
    sites = cols.table("inline_sites").filter(pa.array(concrete_site))
    sites = sites.append_column("fid", pa.array(site_fid.astype(np.int64)))
    return Inventory(functions=functions, instances=instances, inline_sites=sites)


def _dict(cols: Columns, indices: np.ndarray) -> pa.DictionaryArray[Any, Any]:
    return pa.DictionaryArray.from_arrays(pa.array(indices, type=pa.uint32()), cols.pool)


def _func_symbols(cols: Columns) -> dict[str, np.ndarray]:
    sy = cols.raw["symbols"]
    kind = sy.column("kind").to_numpy()
    sect = sy.column("section").to_numpy()
    keep = np.flatnonzero((kind == _core.symkind.FUNC) & (sect != 0))
    addr = sy.column("address").to_numpy()[keep]
    order = np.argsort(addr, kind="stable")
    rows = keep[order]
    return {"row": rows, "address": addr[order], "size": sy.column("size").to_numpy()[rows]}


def _with_patchable_entry(fs: dict[str, np.ndarray], lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Range starts moved back over a patchable entry. With ``-fpatchable-function-entry=N``
    (arm64 kernels' ftrace: 2 NOPs) GCC puts the NOPs at the symbol but ``DW_AT_low_pc`` after
    them, so the function's DWARF and its symbol would not meet: a range with no symbol at its
    start, inside a function symbol that starts at most 16 bytes earlier and ends where the
    range ends, starts at that symbol."""
    i = np.searchsorted(fs["address"], lo, "right") - 1
    j = np.maximum(i, 0)
    start = fs["address"][j] if len(fs["address"]) else lo
    end = start + (fs["size"][j] if len(fs["address"]) else 0)
    moved = (i >= 0) & (start < lo) & (lo - start <= 16) & (end == hi)
    return np.where(moved, start, lo)


def _instances(
    cols: Columns, inst_rows: np.ndarray, inst_fid: np.ndarray, die: np.ndarray, root: np.ndarray
) -> pa.Table:
    """One row per concrete DIE with code: its ranges and the symbols at their starts."""
    sp = cols.raw["subprograms"]
    rg = cols.raw["ranges"]
    owner = rg.column("owner").to_numpy()
    inst_die = die[inst_rows]
    flags = sp.column("flags").to_numpy()
    # The core emits ranges in DIE order, so both `owner` and `inst_die` are sorted.
    rr = np.flatnonzero(np.isin(owner, inst_die, assume_unique=False))
    lo = rg.column("low").to_numpy()[rr]
    hi = rg.column("high").to_numpy()[rr]
    inst_of_range = np.searchsorted(inst_die, owner[rr])
    n = len(inst_rows)
    range_offsets = np.searchsorted(inst_of_range, np.arange(n + 1)).astype(np.int32)
    size = np.bincount(inst_of_range, weights=(hi - lo).astype(np.float64), minlength=n).astype(np.uint64)

    fs = _func_symbols(cols)
    dwarf_lo, lo = lo, _with_patchable_entry(fs, lo, hi)
    a = np.searchsorted(fs["address"], lo, side="left")
    b = np.searchsorted(fs["address"], lo, side="right")
    per_range = b - a
    first = np.repeat(a, per_range)
    step = np.arange(per_range.sum()) - np.repeat(np.cumsum(per_range) - per_range, per_range)
    sym_rows = fs["row"][first + step]
    per_inst = np.bincount(inst_of_range, weights=per_range, minlength=n).astype(np.int64)
    sym_offsets = np.concatenate([[0], np.cumsum(per_inst)]).astype(np.int32)

    pairs = pa.FixedSizeListArray.from_arrays(pa.array(np.stack([lo, hi], axis=1).ravel()), 2)
    return pa.table(
        {
            "die": pa.array(inst_die),
            "entry_pc": pa.array(sp.column("entry_pc").to_numpy()[inst_rows]),
            "low_pc": pa.array(_moved(sp.column("low_pc").to_numpy()[inst_rows], dwarf_lo, lo)),
            "size": pa.array(size),
            # DW_AT_noreturn sits on the declaration or abstract DIE as often as on the concrete one
            "noreturn": pa.array(((flags[inst_rows] | flags[root[inst_rows]]) & _core.spflag.NORETURN) != 0),
            "symbols": list_array(sym_offsets, pa.array(sym_rows, type=pa.uint32())),
            "ranges": list_array(range_offsets, pairs),
        }
    )


def _moved(low_pc: np.ndarray, before: np.ndarray, after: np.ndarray) -> np.ndarray:
    """``low_pc`` of each instance, following its range start where that moved."""
    moved = before != after
    if not moved.any():
        return low_pc
    order = np.argsort(before[moved], kind="stable")
    b, a = before[moved][order], after[moved][order]
    pos = np.minimum(np.searchsorted(b, low_pc), len(b) - 1)
    return np.where(b[pos] == low_pc, a[pos], low_pc)


def range_bounds(ranges: pa.ChunkedArray[Any]) -> np.ndarray:
    """Every ``[low, high)`` of an instances' ``ranges`` column (a list of pairs per row),
    row after row: shape (ranges, 2)."""
    # the stubs say combine_chunks gives an Array, which has no flatten
    pairs = cast("pa.ListArray[Any]", ranges.combine_chunks()).flatten()
    return cast("pa.FixedSizeListArray[Any, Any]", pairs).flatten().to_numpy().reshape(-1, 2)


def _symbol_only(cols: Columns, instances: pa.Table) -> dict[str, np.ndarray]:
    """Function symbols at no DWARF instance's range start (assembly, stripped code)."""
    fs = _func_symbols(cols)
    starts = range_bounds(instances.column("ranges"))[:, 0]
    covered = np.isin(fs["address"], starts)
    rows = fs["row"][~covered]
    sy = cols.raw["symbols"]
    return {
        "row": rows,
        "stem": sy.column("stem").to_numpy()[rows],
        "name": sy.column("name").to_numpy()[rows],
        "address": sy.column("address").to_numpy()[rows],
        "size": sy.column("size").to_numpy()[rows],
    }


def _symbol_only_table(cols: Columns, sym: dict[str, np.ndarray], fid: np.ndarray) -> pa.Table:
    n = len(sym["row"])
    return pa.table(
        {
            "die": pa.array(np.full(n, _core.NO_DIE)),
            "entry_pc": pa.array(sym["address"]),
            "low_pc": pa.array(sym["address"]),
            "size": pa.array(sym["size"]),
            "noreturn": pa.array(np.zeros(n, bool)),
            "symbols": list_array(np.arange(n + 1, dtype=np.int32), pa.array(sym["row"], type=pa.uint32())),
            "ranges": list_array(
                np.arange(n + 1, dtype=np.int32),
                pa.FixedSizeListArray.from_arrays(
                    pa.array(np.stack([sym["address"], sym["address"] + sym["size"]], axis=1).ravel()), 2
                ),
            ),
            "fid": pa.array(fid.astype(np.int64)),
        }
    )

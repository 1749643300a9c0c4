"""The source lines an out-of-line instance's code was compiled from: the span of its own
function's lines in the line table.

A line probe (``patch.c:57``, a SystemTap ``.statement``) names a line, so it moves whenever
the function moves in its file, even when its code does not change. The span is what
``patchscope diff`` compares for that: the lowest and highest line, among the line-table rows
at the instance's addresses, that belong to the function itself — rows of its declaration
file, not above its declaration line. Rows of functions inlined into it from other files
(headers), or defined above it in the same file, are left out by those two conditions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.cache import derived_product
from patchscope.index.functions import Inventory, range_bounds
from patchscope.index.tables import Columns, pool_indices


@derived_product
@dataclass
class LineSpans:
    """``instances``: per row of the inventory's instances, ``first_line`` and ``last_line``
    of its function's own lines at its addresses; both 0 when it has none."""

    instances: pa.Table


def spans(cols: Columns, inv: Inventory) -> LineSpans:
    lines = cols.raw["lines"]
    addr = lines.column("address").to_numpy()
    inst = inv.instances
    counts = pc.list_value_length(inst.column("ranges")).to_numpy(zero_copy_only=False)
    bounds = range_bounds(inst.column("ranges"))
    range_owner = np.repeat(np.arange(inst.num_rows), counts)
    # The range holding each line row (ranges do not overlap): one search over the ranges
    # sorted by start, rather than sorting the millions of line rows.
    by_low = np.argsort(bounds[:, 0], kind="stable")
    at = np.searchsorted(bounds[by_low, 0], addr, "right") - 1
    r = by_low[np.maximum(at, 0)]
    inside = (at >= 0) & (addr < bounds[r, 1]) & ((lines.column("flags").to_numpy() & _core.lineflag.END_SEQUENCE) == 0)
    rows = np.flatnonzero(inside)
    owner = range_owner[r[rows]]

    fid = inst.column("fid").to_numpy()[owner]
    fn = inv.functions
    decl_file = pool_indices(fn.column("decl_file"))[fid]
    decl_line = fn.column("decl_line").to_numpy()[fid]
    line = lines.column("line").to_numpy()[rows]
    own = (lines.column("file").to_numpy()[rows] == decl_file) & (line >= decl_line) & (decl_file != 0)
    first = np.full(inst.num_rows, np.iinfo(np.uint32).max, np.uint32)
    last = np.zeros(inst.num_rows, np.uint32)
    np.minimum.at(first, owner[own], line[own])
    np.maximum.at(last, owner[own], line[own])
    first[last == 0] = 0
    return LineSpans(pa.table({"first_line": first, "last_line": last}))

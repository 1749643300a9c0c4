"""The diff page's data: ``diff``'s document, each change in words, and for a function whose
code changed the instructions of that clone in both builds, addresses masked, side by side."""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.report import diff

#: Changed functions whose code is shown: the rest are listed in words only.
CODE_SHOWN = 2000
#: Absolute addresses and PC-relative displacements: what moves when nothing changed.
_ADDRESS = re.compile(r"0x[0-9a-f]{5,}")


def document(old: Binary, new: Binary) -> dict[str, Any]:
    doc = diff.document(old, new)
    wanted = []
    for f in doc["functions"]:
        f["words"] = diff.describe(f) if f["old"] and f["new"] else f["changes"]
        if f.get("code_changed") and len(wanted) < CODE_SHOWN:
            wanted.append((f, f["code_changed"][0]))
    keys = [(f["name"], f["decl_file"] or "", shape) for f, shape in wanted]
    sides = {side: _code(b, keys) for side, b in (("old", old), ("new", new))}
    for k, (f, shape) in enumerate(wanted):
        f["code"] = {"shape": shape, "old": sides["old"][k], "new": sides["new"][k]}
    return doc


def _code(b: Binary, keys: list[tuple[str, str, str]]) -> list[list[str]]:
    """The masked instructions of the first range of the instance of each (function, file,
    clone shape), in one core call."""
    cx = Context(b)
    lows, highs = cx.inst_main_range
    fn_file = cx.functions.column("decl_file").to_pylist()
    row_of: dict[tuple[str, str, str], int] = {}
    for row, fid in enumerate(cx.inst_fid.tolist()):
        if fid >= 0:
            key = (cx.fn_name[fid], fn_file[fid] or "", _core.clone_shape(cx.instance_symbol(row)))
            row_of.setdefault(key, row)
    rows = [row_of.get(k, -1) for k in keys]
    found = [r for r in rows if r >= 0]
    insns, strings = cx.instructions_of(lows[found], highs[found])
    starts = np.searchsorted(insns.column("range").to_numpy(), np.arange(len(found) + 1))
    text = [_ADDRESS.sub("ADDR", strings[i]) for i in insns.column("text").to_numpy().tolist()]
    out, k = [], 0
    for r in rows:
        if r < 0:
            out.append([])
            continue
        out.append(text[starts[k] : starts[k + 1]])
        k += 1
    return out

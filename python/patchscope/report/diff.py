"""Two builds side by side: which source functions changed how they were compiled.

Source functions are correlated by name and declaration file — not line, which moves between
builds; several statics of one name in one file are paired in declaration order. Per function:
inlining status and inline-site count, the out-of-line instances by their clone suffixes with
the ``.N`` numbers and ``.llvm.<hash>`` dropped (so renumbering is no change), and the band.

Schema ``patchscope.diff`` version 1.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Any

from patchscope.index.binary import Binary
from patchscope.rules import findings

SCHEMA = "patchscope.diff"
VERSION = 1

_NUMBERS = re.compile(r"\.(\d+|llvm\.[0-9a-f]+)(?=\.|$)")


def clone_shape(symbol: str | None) -> str:
    """``foo.isra.3.cold`` → ``foo.isra.cold``: what a clone is, without its number."""
    return _NUMBERS.sub("", symbol) if symbol else "(no symbol)"


def _functions(b: Binary) -> dict[tuple[str, str], list[dict[str, Any]]]:
    inv = b.inventory
    fn = inv.functions
    bands = findings(b).bands.column("band").to_pylist()
    names, files = fn.column("name").to_pylist(), fn.column("decl_file").to_pylist()
    lines = fn.column("decl_line").to_pylist()
    status, sites = fn.column("status").to_pylist(), fn.column("inline_sites").to_pylist()
    pool = b.cols.pool.to_pylist()
    sym_name = b.cols.raw["symbols"].column("name").to_numpy()
    clones: dict[int, list[str]] = defaultdict(list)
    for fid, syms in zip(inv.instances.column("fid").to_pylist(), inv.instances.column("symbols").to_pylist()):
        # the instance by all its symbols: a .cold part appearing is a change too
        clones[fid].append("+".join(clone_shape(pool[sym_name[s]]) for s in syms) or clone_shape(None))
    out: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for fid in sorted(range(fn.num_rows), key=lambda i: lines[i] or 0):
        out[(names[fid], files[fid] or "")].append(
            {
                "status": status[fid],
                "inline_sites": sites[fid],
                "instances": sorted(clones.get(fid, [])),
                "band": bands[fid],
            }
        )
    return out


def document(old: Binary, new: Binary) -> dict[str, Any]:
    a, b = _functions(old), _functions(new)
    changed, counts = [], defaultdict(int)
    for key in sorted(set(a) | set(b)):
        olds, news = a.get(key, []), b.get(key, [])
        for i in range(max(len(olds), len(news))):
            before = olds[i] if i < len(olds) else None
            after = news[i] if i < len(news) else None
            kinds = _changes(before, after)
            for k in kinds:
                counts[k] += 1
            if kinds:
                changed.append(
                    {"name": key[0], "decl_file": key[1] or None, "changes": kinds, "old": before, "new": after}
                )
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "old": {k: old.info[k] for k in ("path", "build_id")},
        "new": {k: new.info[k] for k in ("path", "build_id")},
        "summary": {"functions_old": sum(map(len, a.values())), "functions_new": sum(map(len, b.values())), **counts},
        "functions": changed,
    }


def _changes(before: dict[str, Any] | None, after: dict[str, Any] | None) -> list[str]:
    if before is None:
        return ["added"]
    if after is None:
        return ["removed"]
    kinds = []
    if before["status"] != after["status"]:
        kinds.append("inlining")
    elif before["inline_sites"] != after["inline_sites"]:
        kinds.append("inline-sites")
    if before["instances"] != after["instances"]:
        kinds.append("clones")
    if before["band"] != after["band"]:
        kinds.append("band")
    return kinds

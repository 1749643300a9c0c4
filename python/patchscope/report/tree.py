"""A kernel tree's documents: each binary's part, and the whole tree's summary.

``--format json`` of a command over a tree is ``{"tree": …, "binaries": [{"name",
<the command's document for that binary>}], "failed": [{"binary", "path", "error"}]}``;
``scan --summary`` adds the counts of every binary added up.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from patchscope.index.tree import Tree

SCHEMA = "patchscope.tree"
VERSION = 1


def document(tree: Tree, parts: list[tuple[str, str, dict[str, Any]]], failed: list[dict[str, str]]) -> dict[str, Any]:
    """``parts``: (name, path, document) of each binary that was analysed."""
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "tree": _tree(tree),
        "binaries": [{"name": name, **doc} for name, _, doc in parts],
        "failed": failed,
    }


def scan_summary(docs: list[dict[str, Any]]) -> dict[str, Any]:
    """The scan summaries of several binaries added up: functions, inlining, bands, codes."""
    out: dict[str, Any] = {"binaries": len(docs), "functions": sum(d["summary"]["functions"] for d in docs)}
    for key in ("inlining", "functions_by_band", "functions_by_code"):
        total: Counter[str] = Counter()
        for d in docs:
            total.update(d["summary"][key])
        first = docs[0]["summary"][key] if docs else {}
        # the first binary's key order (bands by severity), then codes only others have
        out[key] = {k: total[k] for k in [*first, *sorted(set(total) - set(first))]}
    out["functions_by_code"] = dict(sorted(out["functions_by_code"].items()))
    return out


def diff_document(
    old: Tree, new: Tree, parts: list[tuple[str, dict[str, Any]]], failed: list[dict[str, str]]
) -> dict[str, Any]:
    """Two trees: the binaries only one has, and each common one's diff (``patchscope.diff``)
    with its counts of changes; a binary none of whose functions changed is counted, not listed."""
    old_names, new_names = dict(old.binaries()), dict(new.binaries())
    binaries = []
    for name, doc in parts:
        changes = {k: v for k, v in doc["summary"].items() if not k.startswith("functions_")}
        if changes:
            binaries.append({"name": name, "changes": changes, **doc})
    return {
        "schema": SCHEMA + ".diff",
        "version": VERSION,
        "old": _tree(old),
        "new": _tree(new),
        "summary": {"changed": len(binaries), "unchanged": len(parts) - len(binaries)},
        "added": sorted(set(new_names) - set(old_names)),
        "removed": sorted(set(old_names) - set(new_names)),
        "binaries": binaries,
        "failed": failed,
    }


def _tree(tree: Tree) -> dict[str, Any]:
    return {"root": str(tree.root), "release": tree.release, "vmlinux": str(tree.vmlinux) if tree.vmlinux else None}

"""Two builds side by side: what ``patchscope diff`` prints, and its JSON. The matching and
comparing of functions is :mod:`patchscope.index.builds`; the bands come from the rules.

Schema ``patchscope.diff`` version 2 (version 1 had no ``code``, ``signature``, ``moved``,
``body-lines``, and no ``decl_line``, ``lines``, ``params``, ``code`` in the states).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from patchscope.index import builds
from patchscope.index.binary import Binary
from patchscope.probes import syntax as ps
from patchscope.report import probe_diff
from patchscope.rules import findings

SCHEMA = "patchscope.diff"
VERSION = 2


def _functions(b: Binary) -> dict[builds.Key, list[builds.Function]]:
    return builds.functions(b, findings(b).bands.column("band").to_pylist())


def document(
    old: Binary, new: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError] | None = None
) -> dict[str, Any]:
    """The functions that changed between ``old`` and ``new``; with ``points``, how each
    resolves in both (``probes``)."""
    a, b = _functions(old), _functions(new)
    changed, counts = [], defaultdict(int)
    for key, before, after, kinds in builds.changes(a, b):
        for k in kinds:
            counts[k] += 1
        record: dict[str, Any] = {"name": key[0], "decl_file": key[1] or None, "changes": kinds}
        if before and after and "code" in kinds:
            record["code_changed"] = builds.code_changed(before, after)
        if before and after and "moved" in kinds:
            record["moved_by"] = after.decl_line - before.decl_line  # type: ignore[operator]
        record["old"] = before.state() if before else None
        record["new"] = after.state() if after else None
        changed.append(record)
    doc = {
        "schema": SCHEMA,
        "version": VERSION,
        "old": {k: old.info[k] for k in ("path", "build_id")},
        "new": {k: new.info[k] for k in ("path", "build_id")},
        "summary": {"functions_old": sum(map(len, a.values())), "functions_new": sum(map(len, b.values())), **counts},
        "functions": changed,
    }
    if points is not None:
        doc["probes"] = probe_diff.document(old, new, points)
    return doc


def describe(f: dict[str, Any]) -> list[str]:
    """The changes of one function record of :func:`document`, in words."""
    old, new = f["old"], f["new"]
    body_length = builds.body_length
    words = {
        "inlining": lambda: f"inlining {old['status']} → {new['status']}",
        "inline-sites": lambda: f"inline sites {old['inline_sites']} → {new['inline_sites']}",
        "clones": lambda: f"clones {', '.join(old['instances']) or 'none'} → {', '.join(new['instances']) or 'none'}",
        "band": lambda: f"band {old['band']} → {new['band']}",
        "code": lambda: "code changed: " + ", ".join(f["code_changed"]),
        "signature": lambda: f"signature ({', '.join(old['params'])}) → ({', '.join(new['params'])})",
        "moved": lambda: (
            f"moved by {f['moved_by']:+d} lines"
            + ("" if "code" in f["changes"] else " (same code; every line probe in it shifts)")
        ),
        "body-lines": lambda: f"body {body_length(old)} → {body_length(new)} lines",
    }
    return [words[k]() if k in words else k for k in f["changes"]]

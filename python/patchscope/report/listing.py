"""The ``stap -L`` listing as a document: ``patchscope.list`` v2 (``docs/schema/list-2.json``).
The lines themselves are :mod:`patchscope.probes.listing`."""

from __future__ import annotations

from typing import Any

from patchscope.index.binary import Binary
from patchscope.probes.listing import Line
from patchscope.rules.finding import hexa

SCHEMA = "patchscope.list"
VERSION = 2


def document(binary: Binary, pattern: str, lines: list[Line], errors: list[str]) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": binary.info["path"],
        "pattern": pattern,
        "errors": errors,
        "lines": [
            {
                "point": ln.point,
                "variables": ln.variables,
                "pcs": [hexa(a) for a in ln.pcs],
                **({"writes": ln.writes} if ln.writes else {}),
            }
            for ln in lines
        ],
    }

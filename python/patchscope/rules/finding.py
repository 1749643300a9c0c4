"""Findings: the project's public vocabulary.

A finding is ``(code, band, subject, evidence, explanation)``. Its *code* is a stable contract,
documented in ``docs/findings/<code>.md`` with a minimal C example and tested on a fixture.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import pyarrow as pa


class Band(IntEnum):
    """Bands of the safety spectrum, in increasing order of danger."""

    SAFE = 0
    GRAY = 1
    HAZARDOUS = 2

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Code:
    name: str
    band: Band
    summary: str


CODES: dict[str, Code] = {}


def code(name: str, band: Band, summary: str) -> Code:
    """Declares a finding code (once, in the rule module that produces it)."""
    if name in CODES:
        raise ValueError(f"finding code {name} declared twice")
    CODES[name] = c = Code(name, band, summary)
    return c


@dataclass(frozen=True)
class Finding:
    code: Code
    fid: int
    message: str
    evidence: dict[str, Any]
    #: Row of the out-of-line instance in the inventory's ``instances`` table, or -1.
    instance: int = -1
    address: int | None = None


_FIELDS: list[tuple[str, pa.DataType]] = [
    ("code", pa.string()),
    ("band", pa.string()),
    ("fid", pa.int64()),
    ("instance", pa.int64()),
    ("address", pa.uint64()),
    ("message", pa.string()),
    ("evidence", pa.string()),
]
SCHEMA = pa.schema(_FIELDS)


def to_table(findings: Iterable[Finding]) -> pa.Table:
    """Findings as one Arrow table; evidence is JSON text, so the table stays flat."""
    rows = list(findings)
    return pa.table(
        {
            "code": [f.code.name for f in rows],
            "band": [f.code.band.label for f in rows],
            "fid": [f.fid for f in rows],
            "instance": [f.instance for f in rows],
            "address": [f.address for f in rows],
            "message": [f.message for f in rows],
            "evidence": [json.dumps(f.evidence, separators=(",", ":")) for f in rows],
        },
        schema=SCHEMA,
    )


def hexa(v: int) -> str:
    return f"{int(v):#x}"

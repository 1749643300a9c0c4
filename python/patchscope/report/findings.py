"""Findings as records: what ``patchscope scan`` and ``patchscope function`` print, and their JSON.

Schema ``patchscope.scan`` version 1: ``docs/schema/scan-1.json``.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope.index.binary import Binary
from patchscope.rules import CODES, Findings, findings, verdict

SCHEMA = "patchscope.scan"
VERSION = 1


def finding_records(table: pa.Table) -> list[dict[str, Any]]:
    cols = {c: table.column(c).to_pylist() for c in ("code", "band", "message", "evidence", "address")}
    out = []
    for code, band, message, evidence, address in zip(*cols.values()):
        rec = {"code": code, "band": band, "message": message, "evidence": json.loads(evidence)}
        if address is not None:
            rec["address"] = f"{address:#x}"
        out.append(rec)
    return out


def of_function(f: Findings, fid: int) -> pa.Table:
    return f.findings.filter(pc.equal(f.findings.column("fid"), fid))


def document(
    binary: Binary, band: str | None, code: str | None, with_findings: bool, summary_only: bool = False
) -> dict[str, Any]:
    """The scan of a whole binary: summary, and the functions that pass the filters."""
    f = findings(binary)
    fn = binary.inventory.functions
    bands = f.bands
    keep = np.full(bands.num_rows, not summary_only)
    if band:
        keep &= np.asarray(bands.column("band").to_pylist()) == band
    if code:
        has = np.zeros(bands.num_rows, bool)
        has[f.findings.filter(pc.equal(f.findings.column("code"), code)).column("fid").to_numpy()] = True
        keep &= has
    rows = np.flatnonzero(keep)
    names = fn.column("name").to_pylist()
    order = rows[np.argsort(np.asarray([names[i] for i in rows], dtype=object), kind="stable")]
    by_fid = by_function(f.findings) if with_findings else {}
    files, lines = fn.column("decl_file").to_pylist(), fn.column("decl_line").to_pylist()
    band_col, codes_col = bands.column("band").to_pylist(), bands.column("codes").to_pylist()
    functions = []
    for i in order.tolist():
        rec: dict[str, Any] = {
            "name": names[i],
            "decl_file": files[i] or None,
            "decl_line": lines[i] or None,
            "band": band_col[i],
            "codes": codes_col[i],
        }
        if with_findings:
            rec["findings"] = by_fid.get(i, [])
        functions.append(rec)
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": {k: binary.info[k] for k in ("path", "arch", "kind", "build_id", "dwarf", "debug_file")},
        "summary": {"functions": fn.num_rows, "inlining": inlining(fn), **verdict.summary(bands, f.findings)},
        "codes": codes(),
        "functions": functions,
    }


def codes() -> dict[str, dict[str, str]]:
    """Every finding code's band and one-line meaning."""
    return {c.name: {"band": c.band.label, "summary": c.summary} for c in CODES.values()}


def inlining(functions: pa.Table) -> dict[str, int]:
    """Source functions per inlining status (decided by counting, never from DW_AT_inline)."""
    counts = {c["values"]: c["counts"] for c in pc.value_counts(functions.column("status")).to_pylist()}
    return {s: counts.get(s, 0) for s in ("not-inlined", "fully-inlined", "selectively-inlined", "symbol-only")}


def by_function(table: pa.Table) -> dict[int, list[dict[str, Any]]]:
    """The finding records of each function id."""
    out: dict[int, list[dict[str, Any]]] = {}
    for fid, rec in zip(table.column("fid").to_pylist(), finding_records(table)):
        out.setdefault(fid, []).append(rec)
    return out

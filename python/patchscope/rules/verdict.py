"""Verdicts: the band of each source function, from its findings."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope.rules.finding import Band

_RANK = {b.label: int(b) for b in Band}


def function_bands(functions: pa.Table, findings: pa.Table) -> pa.Table:
    """One row per source function: its band (the worst of its findings, ``safe`` without
    any) and its finding codes."""
    n = functions.num_rows
    worst = np.zeros(n, np.int8)
    fid = findings.column("fid").to_numpy()
    rank = np.array([_RANK[b] for b in findings.column("band").to_numpy(zero_copy_only=False).tolist()], np.int8)
    np.maximum.at(worst, fid, rank)
    codes: list[list[str]] = [[] for _ in range(n)]
    for f, c in zip(fid.tolist(), findings.column("code").to_pylist()):
        if c not in codes[f]:
            codes[f].append(c)
    labels = np.array([b.label for b in Band])
    return pa.table(
        {
            "fid": functions.column("fid"),
            "name": functions.column("name"),
            "band": pa.array(labels[worst]),
            "codes": pa.array(codes, type=pa.list_(pa.string())),
        }
    )


def summary(bands: pa.Table, findings: pa.Table) -> dict[str, dict[str, int]]:
    # pyarrow-stubs type StructArray.to_pylist as no list of dicts
    counts: list[dict[str, Any]] = pc.value_counts(bands.column("band")).to_pylist()  # type: ignore[misc, assignment]
    by_band = {c["values"]: c["counts"] for c in counts}
    per_code = pa.table({"code": findings.column("code"), "fid": findings.column("fid")})
    functions_per_code = per_code.group_by("code").aggregate([("fid", "count_distinct")]).to_pylist()
    return {
        "functions_by_band": {b.label: by_band.get(b.label, 0) for b in Band},
        "functions_by_code": dict(sorted((r["code"], r["fid_count_distinct"]) for r in functions_per_code)),
    }

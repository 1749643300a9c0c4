"""``patchscope stats DATASET``: the experiments a survey dataset answers, build by build.

A dataset (``patchscope survey``) holds each function's inlining status, instances and inline
sites, and its band — not the call sites or parameter locations the full experiments read — so
from it come the design note's experiment 1 across builds (source functions by inlining status,
inline sites, out-of-line instances), the bands, and its question "which functions changed
inlining in any of them": a function (binary, name, declaring file) whose statuses in one build
differ from those in another build that has it. Read with DuckDB, one query per count.

Schema ``patchscope.stats.survey`` version 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from patchscope.index.functions import FULLY_INLINED, NOT_INLINED, SELECTIVELY_INLINED, SYMBOL_ONLY
from patchscope.rules import Band

SCHEMA = "patchscope.stats.survey"
VERSION = 1
STATUSES = (NOT_INLINED, FULLY_INLINED, SELECTIVELY_INLINED, SYMBOL_ONLY)


def is_dataset(path: str | Path) -> bool:
    """Whether a folder is a survey dataset (what ``survey -o`` writes)."""
    p = Path(path)
    return (p / "failed.parquet").is_file() and (p / "functions").is_dir()


def document(dataset: Path, examples: int = 10) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()

    def table(name: str) -> str:
        glob = str(dataset / name / "**" / "*.parquet").replace("'", "''")
        return f"read_parquet('{glob}', hive_partitioning = true)"

    fn = table("functions")
    builds: dict[tuple[str, str], dict[str, Any]] = {}
    for build, arch, binaries in con.execute(
        f'select build, arch, count(distinct "binary") from {fn} group by all order by all'
    ).fetchall():
        builds[build, arch] = {
            "build": build,
            "arch": arch,
            "binaries": binaries,
            "functions": dict.fromkeys(STATUSES, 0),
            "functions_by_band": {b.label: 0 for b in Band},
        }
    for build, arch, status, n, sites in con.execute(
        f"select build, arch, status, count(*), sum(inline_sites) from {fn} group by all"
    ).fetchall():
        rec = builds[build, arch]
        rec["functions"][status] = n
        rec["inline_sites"] = rec.get("inline_sites", 0) + int(sites or 0)
    for build, arch, band, n in con.execute(f"select build, arch, band, count(*) from {fn} group by all").fetchall():
        builds[build, arch]["functions_by_band"][band] = n
    for build, arch, n in con.execute(
        f"select build, arch, count(*) from {table('instances')} group by all"
    ).fetchall():
        builds[build, arch]["instances"] = n
    for rec in builds.values():
        rec["source_functions"] = sum(n for s, n in rec["functions"].items() if s != SYMBOL_ONLY)
        rec.setdefault("instances", 0)
        rec.setdefault("inline_sites", 0)
        rec["label"] = rec["build"] if len({a for _, a in builds}) == 1 else f"{rec['build']}/{rec['arch']}"
    failed = con.execute(f"select count(*) from read_parquet('{dataset / 'failed.parquet'}')").fetchone()
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "dataset": str(dataset),
        "builds": list(builds.values()),
        "failed": failed[0] if failed else 0,
        "inlining_changed": _inlining_changed(con, fn, examples),
    }


def _inlining_changed(con: Any, fn: str, examples: int) -> dict[str, Any]:
    """The functions whose inlining status differs between two builds that have them: a name
    declared twice in one binary (two statics) counts as its statuses, together, per build."""
    per_build = f"""select "binary", name, coalesce(decl_file, '') as decl_file, build,
        string_agg(status, '+' order by status) as statuses from {fn}
        where status <> '{SYMBOL_ONLY}' group by all"""
    changed = f"""select "binary", name, decl_file, map(list(build order by build), list(statuses order by build))
        from ({per_build}) group by all having count(distinct statuses) > 1"""
    (count,) = con.execute(f"select count(*) from ({changed})").fetchone()
    rows = con.execute(f"{changed} order by 1, 2, 3 limit {int(examples)}").fetchall()
    return {
        "functions": count,
        "examples": [
            {"binary": b, "name": n, "decl_file": d or None, "statuses": statuses} for b, n, d, statuses in rows
        ],
    }

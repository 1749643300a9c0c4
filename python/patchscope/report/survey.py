"""One binary as rows of a survey dataset (``patchscope survey``): its functions, out-of-line
instances, inline sites and findings, and one row of facts about the binary.

Plain columns (strings, not the index's dictionary arrays, which Parquet would store per file
and readers would merge badly across thousands of files); the partition keys (build,
architecture, binary) are added by the writer, not here.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.rules import findings

#: The dataset's tables, in the order they are written.
TABLES = ("binaries", "functions", "instances", "inline_sites", "findings")


def tables(b: Binary) -> dict[str, pa.Table]:
    cx = Context(b)
    f = findings(b)
    fn = b.inventory.functions
    names = pa.array(cx.fn_name, pa.string())
    inst, sites = b.inventory.instances, b.inventory.inline_sites
    inst_fid, site_fid, finding_fid = (
        inst.column("fid").to_numpy(),
        sites.column("fid").to_numpy(),
        f.findings.column("fid").to_numpy(),
    )
    return {
        "binaries": pa.table(
            {
                "path": [b.info["path"]],
                "kind": [b.info["kind"]],
                "build_id": [b.info["build_id"]],
                "dwarf": [b.info["dwarf"]],
                "kernel_release": [b.info.get("kernel_release", "")],
                "functions": pa.array([fn.num_rows], pa.int64()),
                "instances": pa.array([inst.num_rows], pa.int64()),
                "inline_sites": pa.array([sites.num_rows], pa.int64()),
                "findings": pa.array([f.findings.num_rows], pa.int64()),
            }
        ),
        "functions": pa.table(
            {
                "fid": fn.column("fid"),
                "name": names,
                "decl_file": fn.column("decl_file").cast(pa.string()),
                "decl_line": fn.column("decl_line"),
                "status": fn.column("status"),
                "instances": fn.column("instances"),
                "inline_sites": fn.column("inline_sites"),
                "band": f.bands.column("band"),
                "codes": f.bands.column("codes"),
            }
        ),
        "instances": pa.table(
            {
                "fid": inst.column("fid"),
                "function": names.take(pa.array(inst_fid)),
                "symbol": pa.array([cx.string(i) for i in cx.inst_name.tolist()], pa.string()),
                "low_pc": inst.column("low_pc"),
                "size": inst.column("size"),
                "ranges": pc.list_value_length(inst.column("ranges")),
                "noreturn": inst.column("noreturn"),
            }
        ),
        "inline_sites": pa.table(
            {
                "fid": sites.column("fid"),
                "function": names.take(pa.array(site_fid)),
                "entry_pc": sites.column("entry_pc"),
                "depth": sites.column("depth"),
                "call_file": sites.column("call_file").cast(pa.string()),
                "call_line": sites.column("call_line"),
            }
        ),
        "findings": pa.table(
            {
                "fid": f.findings.column("fid"),
                "function": names.take(pa.array(np.asarray(finding_fid, np.int64))),
                "code": f.findings.column("code"),
                "band": f.findings.column("band"),
                "address": f.findings.column("address"),
                "message": f.findings.column("message"),
                "evidence": f.findings.column("evidence"),
            }
        ),
    }

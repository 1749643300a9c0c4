"""One source function in full: what ``patchscope function`` prints, and its JSON
(``patchscope.function`` v1): its inventory record, each instance with the code facts of its
entry and returns, its band and its findings with their evidence."""

from __future__ import annotations

from typing import Any

from patchscope.index.binary import Binary
from patchscope.report import findings as report
from patchscope.report.inventory import BULK, InventoryView
from patchscope.rules import findings
from patchscope.rules.entry import Entries
from patchscope.rules.returns import instance_code

SCHEMA = "patchscope.function"
VERSION = 1


def document(b: Binary, fids: list[int]) -> dict[str, Any]:
    return {"schema": SCHEMA, "version": VERSION, "binary": b.info["path"], "functions": records(b, fids)}


def records(b: Binary, fids: list[int]) -> list[dict[str, Any]]:
    """The record of each function of ``fids``; many at once read whole tables once."""
    f = findings(b)
    bulk = len(fids) > BULK
    view = InventoryView(b, bulk=bulk)
    cx = view.cx
    ftrace = Entries(cx)
    ftrace = ftrace if ftrace.applies else None
    bands = f.bands.column("band").to_pylist()
    by_fid = report.by_function(f.findings) if bulk else None
    out = []
    for fid in fids:
        rec = view.record(fid)
        for inst, row in zip(rec["instances"], view.instance_rows(fid)):
            inst.update(instance_code(cx, int(row), ftrace))
        rec["band"] = bands[fid]
        if by_fid is None:
            rec["findings"] = report.finding_records(report.of_function(f, fid))
        else:
            rec["findings"] = by_fid.get(fid, [])
        out.append(rec)
    return out

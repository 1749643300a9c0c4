"""``patchscope scan BINARY``: every source function on the spectrum, with a summary."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from patchscope.cli import common
from patchscope.report import findings as report
from patchscope.rules import CODES, Band

TABLE_LIMIT = 2000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--band", choices=[b.label for b in Band], help="only functions in this band")
    p.add_argument("--code", choices=sorted(CODES), help="only functions with this finding")
    p.add_argument("--summary", action="store_true", help="the summary alone, no per-function lines")


def run(args: argparse.Namespace) -> int:
    b = common.open_binary(args)
    doc = report.document(b, args.band, args.code, with_findings=args.format == "json", summary_only=args.summary)
    common.emit(args, doc, lambda con: render(con, doc))
    return 0


def render(con: Any, doc: dict[str, Any]) -> None:
    s = doc["summary"]
    con.print(f"{doc['binary']['path']} ({doc['binary']['arch']}): {s['functions']} source functions", markup=False)
    inl = s["inlining"]
    dwarf = sum(v for k, v in inl.items() if k != "symbol-only") or 1
    con.print(
        "inlining: "
        + ", ".join(f"{inl[k]} {k} ({100 * inl[k] / dwarf:.1f} %)" for k in list(inl)[:3])
        + f"; {inl['symbol-only']} symbol-only",
        markup=False,
    )
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("band", "functions"):
        t.add_column(col)
    for band, n in s["functions_by_band"].items():
        t.add_row(band, str(n))
    con.print(t)
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("finding", "band", "functions", "meaning"):
        t.add_column(col)
    for code, n in s["functions_by_code"].items():
        c = doc["codes"][code]
        t.add_row(code, c["band"], str(n), Text(c["summary"]))
    con.print(t)
    fns = doc["functions"]
    if not fns:
        return
    con.print()
    if len(fns) > TABLE_LIMIT:
        # rich lays out every print; tens of thousands of lines go straight to the file
        con.file.writelines(f"{f['name']}\t{decl_text(f)}\t{f['band']}\t{','.join(f['codes'])}\n" for f in fns)
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("function", "declared", "band", "findings"):
        t.add_column(col)
    for f in fns:
        t.add_row(Text(f["name"]), Text(decl_text(f)), f["band"], Text(", ".join(f["codes"])))
    con.print(t)


def decl_text(f: dict[str, Any]) -> str:
    return f"{f['decl_file']}:{f['decl_line']}" if f["decl_file"] else "-"

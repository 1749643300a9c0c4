"""``patchscope scan BINARY``: every source function on the spectrum, with a summary."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

from patchscope.cli import common, pool
from patchscope.index.binary import Binary
from patchscope.index.tree import Tree
from patchscope.report import findings as report
from patchscope.report import tree as tree_report
from patchscope.rules import CODES, Band

TABLE_LIMIT = 2000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--band", choices=[b.label for b in Band], help="only functions in this band")
    p.add_argument("--code", choices=sorted(CODES), help="only functions with this finding")
    p.add_argument("--summary", action="store_true", help="the summary alone, no per-function lines")


def run(args: argparse.Namespace) -> int:
    tree = common.kernel_tree(args)
    if tree is not None:
        return run_tree(args, tree)
    doc = scan(args, "", common.open_binary(args))
    common.emit(args, doc, lambda con: render(con, doc))
    return 0


def scan(args: argparse.Namespace, name: str, b: Binary) -> dict[str, Any]:
    return report.document(b, args.band, args.code, with_findings=args.format == "json", summary_only=args.summary)


def run_tree(args: argparse.Namespace, tree: Tree) -> int:
    """Every binary of the tree in a pool; one document with each binary's part and, added up,
    the summary of the whole kernel."""
    results = pool.run(args, tree, scan)
    parts = [(p.name, p.path, p.doc) for p in results.done if p.doc is not None]
    doc = tree_report.document(tree, parts, results.failures())
    doc["summary"] = tree_report.scan_summary([d for _, _, d in parts])
    if args.summary:
        for part in doc["binaries"]:
            part.pop("codes")  # the same for every binary: once, at the top
    doc["codes"] = report.codes()

    def show(con: Any) -> None:
        if not parts:
            con.print(f"{tree.root}: no binary could be analysed", markup=False)
            return
        arch = parts[0][2]["binary"]["arch"]
        head = {"binary": {"path": f"{tree.root} ({len(parts)} binaries, {len(results.failed)} failed)", "arch": arch}}
        functions = [{**f, "name": f"{name}:{f['name']}"} for name, _, d in parts for f in d["functions"]]
        render(con, {**head, "summary": doc["summary"], "codes": doc["codes"], "functions": functions})

    common.emit(args, doc, show)
    return pool.exit_status(results)


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

"""``patchscope functions BINARY [PATTERN]``: the function inventory."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from rich.table import Table
from rich.text import Text

from patchscope.cli import common, pool
from patchscope.index.binary import Binary
from patchscope.index.tree import Tree
from patchscope.report import inventory
from patchscope.report import tree as tree_report

#: Above this many functions, plain lines instead of a table (rich lays out a table whole).
TABLE_LIMIT = 2000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", nargs="?", help='shell glob on source function names (default "*")')
    p.add_argument("-v", "--verbose", action="store_true", help="list every inline site with its address and caller")


def run(args: argparse.Namespace) -> int:
    tree = common.kernel_tree(args)
    if tree is not None:
        return run_tree(args, tree)
    doc = functions(args, "", common.open_binary(args))
    common.emit(args, doc, lambda con: render(con, doc, args.verbose))
    if not doc["functions"] and args.pattern:
        common.warn(f"no source function matches {args.pattern!r}")
        return 1
    return 0


def functions(args: argparse.Namespace, name: str, b: Binary) -> dict[str, Any]:
    return inventory.document(b, args.pattern, args.verbose or args.format == "json")


def run_tree(args: argparse.Namespace, tree: Tree) -> int:
    """The inventory of every binary of the tree, each function named ``BINARY:NAME``."""
    results = pool.run(args, tree, functions)
    parts = [(p.name, p.path, p.doc) for p in results.done if p.doc is not None]
    doc = tree_report.document(tree, parts, results.failures())
    summary: Counter[str] = Counter()
    for _, _, d in parts:
        summary.update(d["summary"])
    merged = {
        "binary": {"path": str(tree.root)},
        "summary": summary,
        "functions": [{**f, "name": f"{name}:{f['name']}"} for name, _, d in parts for f in d["functions"]],
    }
    common.emit(args, doc, lambda con: render(con, merged, args.verbose))
    if not merged["functions"] and args.pattern:
        common.warn(f"no source function matches {args.pattern!r}")
        return pool.exit_status(results, 1)
    return pool.exit_status(results)


def instance_text(i: dict[str, Any]) -> str:
    name = i["symbol"] or "(no symbol)"
    parts = [f"{r['symbol'] or '?'} {r['low']}-{r['high']}" for r in i["ranges"]]
    return f"{name}  [{', '.join(parts)}]"


def decl(f: dict[str, Any]) -> str:
    return f"{f['decl_file']}:{f['decl_line']}" if f["decl_file"] else "-"


def render(con: Any, doc: dict[str, Any], verbose: bool) -> None:
    fns = doc["functions"]
    if len(fns) > TABLE_LIMIT:
        # rich lays out every print; tens of thousands of lines go straight to the file
        con.file.writelines(
            f"{f['name']}\t{decl(f)}\t{f['status']}\t{f['inline_sites']['count']}\t"
            + ("; ".join(instance_text(i) for i in f["instances"]) or "-")
            + "\n"
            for f in fns
        )
    else:
        t = Table(box=None, pad_edge=False, header_style="bold")
        for col in ("function", "declared", "status", "inline sites", "out-of-line instances"):
            t.add_column(col, overflow="fold")
        for f in fns:
            inst = "\n".join(instance_text(i) for i in f["instances"]) or "-"
            sites = str(f["inline_sites"]["count"])
            if verbose and f["inline_sites"]["sites"]:
                sites += "\n" + "\n".join(
                    f"{s['entry_pc']} in {s['caller']} ({s['call_file']}:{s['call_line']})"
                    for s in f["inline_sites"]["sites"]
                )
            t.add_row(*(Text(c) for c in (f["name"], decl(f), f["status"], sites, inst)))
        con.print(t)
    s = doc["summary"]
    con.print(
        f"\n{len(fns)} function(s) shown; in {doc['binary']['path']}: "
        + ", ".join(
            f"{s.get(k, 0)} {k}" for k in ("not-inlined", "fully-inlined", "selectively-inlined", "symbol-only")
        ),
        markup=False,
    )

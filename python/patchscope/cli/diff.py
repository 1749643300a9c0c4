"""``patchscope diff OLD NEW``: how two builds of one program compiled its functions differently."""

from __future__ import annotations

import argparse
from typing import Any

from rich.table import Table
from rich.text import Text

import patchscope
from patchscope.cli import common, pool
from patchscope.index.binary import Binary
from patchscope.index.tree import Tree
from patchscope.report import diff as report
from patchscope.report import tree as tree_report

TABLE_LIMIT = 2000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("new", help="the second build (the first is BINARY)")
    p.add_argument("--new-debug-file", metavar="FILE", help="separate debug file of the second build")
    p.add_argument(
        "--probes", metavar="FILE", help="probe points (one per line, or a .stp file): how each resolves in OLD and NEW"
    )


def run(args: argparse.Namespace) -> int:
    old_tree = common.kernel_tree(args)
    if old_tree is not None:
        return run_trees(args, old_tree)
    old = common.open_binary(args)
    new = common.open_binary(
        argparse.Namespace(**{**vars(args), "binary": args.new, "debug_file": args.new_debug_file})
    )
    doc = report.document(old, new, common.probe_file(args.probes, new.info) if args.probes else None)

    def show(con: Any) -> None:
        if "probes" in doc:
            render_probes(con, doc["probes"])
        else:
            render(con, doc)

    common.emit(args, doc, show)
    return 0


def run_trees(args: argparse.Namespace, old: Tree) -> int:
    """Two kernel trees: which modules were added and removed, and how each one in both
    changed — every pair compared in the pool."""
    if args.probes:
        raise common.UserError("--probes with two kernel trees: check the points against each tree")
    new = common.kernel_tree(argparse.Namespace(binary=args.new, release=None, debug_file=None))
    if new is None:
        raise common.UserError(f"{args.new}: not a folder; diff compares a tree with a tree")
    args.new_tree = new
    both = [n for n, _ in old.binaries() if n in dict(new.binaries())]
    results = pool.run(args, old, diff_pair, names=both)
    doc = tree_report.diff_document(old, new, [(p.name, p.doc) for p in results.done if p.doc], results.failures())
    common.emit(args, doc, lambda con: render_trees(con, doc))
    return pool.exit_status(results)


def diff_pair(args: argparse.Namespace, name: str, old: Binary) -> dict[str, Any]:
    """In a worker: binary ``name`` of the old tree against its namesake in the new one."""
    path = dict(args.new_tree.binaries())[name]
    wrong = args.new_tree.check_module(name) if name in args.new_tree.modules else None
    if wrong:
        raise common.UserError(wrong)
    try:
        new = patchscope.open(path, use_cache=not args.no_cache)
    except patchscope.BinaryError as e:
        raise common.UserError(str(e)) from None
    return report.document(old, new)


def render_trees(con: Any, doc: dict[str, Any]) -> None:
    s = doc["summary"]
    con.print(
        f"{doc['old']['root']} → {doc['new']['root']}: {s['changed']} binaries changed, {s['unchanged']} unchanged, "
        f"{len(doc['added'])} added, {len(doc['removed'])} removed, {len(doc['failed'])} failed",
        markup=False,
    )
    for part in doc["binaries"]:
        if part["changes"]:
            counts = ", ".join(f"{v} {k}" for k, v in part["changes"].items())
            con.print(Text.assemble((part["name"], "bold"), f": {counts}"))
    for word in ("added", "removed"):
        if doc[word]:
            con.print(Text(f"{word}: {' '.join(doc[word])}"))


def render_probes(con: Any, probes: list[dict[str, Any]]) -> None:
    for p in probes:
        o, n = p["old"], p["new"]
        con.print(
            Text.assemble(
                (p["probe"], "bold"),
                f"  {o['verdict']} ({o['places']} places) → {n['verdict']} ({n['places']} places): ",
                p["summary"],
            )
        )
        for place in p["lost"][:10]:
            con.print(Text(f"    - {place}"), style="red")
        for place in p["gained"][:10]:
            con.print(Text(f"    + {place}"), style="green")


def _state(s: dict[str, Any] | None) -> str:
    if s is None:
        return "-"
    inst = ", ".join(s["instances"]) or "no instance"
    where = f":{s['decl_line']}" if s["decl_line"] else ""
    return f"{s['status']} ({s['inline_sites']} sites); {inst}; {s['band']}; line{where or ' -'}"


def _changed(f: dict[str, Any]) -> str:
    return "; ".join(report.describe(f)) if f["old"] and f["new"] else ", ".join(f["changes"])


def render(con: Any, doc: dict[str, Any]) -> None:
    s = doc["summary"]
    con.print(
        f"{doc['old']['path']} → {doc['new']['path']}: {s['functions_old']} → {s['functions_new']} source functions; "
        + ", ".join(f"{v} {k}" for k, v in s.items() if not k.startswith("functions_")),
        markup=False,
    )
    moved_only = sum(1 for f in doc["functions"] if "moved" in f["changes"] and "code" not in f["changes"])
    if moved_only:
        con.print(f"{moved_only} functions moved with the same code: their line probes shift", markup=False)
    fns = doc["functions"]
    if len(fns) > TABLE_LIMIT:
        con.file.writelines(
            f"{f['name']}\t{f['decl_file'] or '-'}\t{_changed(f)}\t{_state(f['old'])}\t{_state(f['new'])}\n"
            for f in fns
        )
        return
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("function", "declared in", "changed", "old", "new"):
        t.add_column(col, overflow="fold")
    for f in fns:
        cells = (f["name"], f["decl_file"] or "-", _changed(f), _state(f["old"]), _state(f["new"]))
        t.add_row(*(Text(x) for x in cells))
    con.print(t)

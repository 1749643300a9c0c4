"""``patchscope list BINARY PATTERN``: a ``stap -L`` listing with the variables that really exist."""

from __future__ import annotations

import argparse
from typing import Any

from patchscope.cli import common, pool
from patchscope.index.binary import Binary
from patchscope.index.tree import Tree
from patchscope.probes import route
from patchscope.probes import syntax as ps
from patchscope.probes.listing import listing
from patchscope.report import listing as report
from patchscope.report import tree as tree_report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", metavar="PATTERN", help="a SystemTap probe pattern, e.g. 'kernel.function(\"tcp_*\")'")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per address, with pc=")
    p.add_argument(
        "--writes", action="store_true", help="with each variable, whether a write to it there would take (implies -v)"
    )


def run(args: argparse.Namespace) -> int:
    tree = common.kernel_tree(args)
    if tree is not None:
        return run_tree(args, tree)
    b = common.open_binary(args)
    try:
        lines, errors = listing(b, args.pattern, args.verbose, args.writes)
    except ps.ProbeSyntaxError as e:
        raise common.UserError(f"{e.message}\n{e.pointer()}") from None
    doc = report.document(b, args.pattern, lines, errors)

    def show(con: Any) -> None:
        # plain text, written at once: a whole kernel's listing is 80,000 lines
        con.file.write("".join(ln.text(args.verbose or args.writes) + "\n" for ln in lines))

    common.emit(args, doc, show)
    for e in errors:
        common.warn(e)
    return 0 if lines else 1


def run_tree(args: argparse.Namespace, tree: Tree) -> int:
    """The pattern listed in the binaries of the tree it names (``module("nf_*")`` in those
    modules, ``kernel.*`` in the vmlinux), one binary after another."""
    try:
        point = ps.parse(args.pattern)
    except ps.ProbeSyntaxError as e:
        raise common.UserError(f"{e.message}\n{e.pointer()}") from None
    where = route.route(tree, point)
    if where.error:
        raise common.UserError(where.error)
    results = pool.run(args, tree, list_in, names=where.binaries)
    parts = [(p.name, p.path, p.doc) for p in results.done if p.doc is not None]
    doc = tree_report.document(tree, [(n, p, d["listing"]) for n, p, d in parts], results.failures())
    common.emit(args, doc, lambda con: con.file.write("".join(d["text"] for _, _, d in parts)))
    for _, _, d in parts:
        for e in d["listing"]["errors"]:
            common.warn(e)
    return pool.exit_status(results, 0 if any(d["listing"]["lines"] for _, _, d in parts) else 1)


def list_in(args: argparse.Namespace, name: str, b: Binary) -> dict[str, Any]:
    """In a worker: the listing of one binary, as its document and as text."""
    lines, errors = listing(b, args.pattern, args.verbose)
    return {
        "listing": report.document(b, args.pattern, lines, errors),
        "text": "".join(ln.text(args.verbose) + "\n" for ln in lines),
    }

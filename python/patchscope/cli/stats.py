"""``patchscope stats BINARY [BINARY...]``: the inlining, cloning, inline-argument and band
experiments, side by side, as tables (standard output) and plots (``--plots DIR``). A BINARY
may be a kernel tree: one build, every binary of it in the pool, the counts added up."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from patchscope.cli import common, pool
from patchscope.index.binary import Binary
from patchscope.index.tree import Tree
from patchscope.report import stats as report
from patchscope.report import survey_stats as survey_report
from patchscope.report.stats_plots import write_plots, write_survey_plot

Row = tuple[str, list[str]]

CALL_DESTINATIONS = {
    "here": "to a function of this binary, with DWARF",
    "here_no_dwarf": "to a symbol of this binary without DWARF",
    "elsewhere": "to another binary",
    "indirect": "indirect",
}
SHAPE_TEXT = {
    "several-copies": "several copies without a clone suffix",
    "original+clones": "one original and its clone(s)",
    "several-clones": "two clones or more, no original",
    "one-clone": "one clone, no original",
    "cold-part": "with a .cold part (any shape)",
}

#: The positional list that may continue after options (see ``main.parse``).
TRAILING = "more"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("more", nargs="*", metavar="BINARY", help="further builds to compare, side by side")
    p.add_argument(
        "--debug-for",
        action="append",
        default=[],
        metavar="BINARY=FILE",
        help="separate debug file of one of the binaries (repeatable; --debug-file is the first binary's)",
    )
    p.add_argument("--plots", metavar="DIR", help="write one plot per experiment into DIR")
    p.add_argument("--plot-format", choices=("png", "svg"), default="png", help="plot file format (default: png)")
    p.add_argument("--examples", type=int, default=3, metavar="N", help="example functions per clone shape (3)")
    p.add_argument("--top", type=int, default=10, metavar="N", help="worst functions for inline-site arguments (10)")


def run(args: argparse.Namespace) -> int:
    paths = [args.binary, *args.more]  # BINARY is None with -r RELEASE
    if any(p and survey_report.is_dataset(p) for p in paths):
        return run_dataset(args, paths)
    debug = _debug_files(args, paths)
    labels = report.short_labels([p or args.release for p in paths])
    recs: list[dict[str, Any]] = []
    failed: list[dict[str, str]] = []
    for i, (path, label) in enumerate(zip(paths, labels)):
        one = argparse.Namespace(
            **{**vars(args), "binary": path, "debug_file": debug[path], "release": args.release if i == 0 else None}
        )
        tree = common.kernel_tree(one)
        if tree is None:
            recs.append(_binary_record(one, label))
        else:
            rec, lost = _tree_record(one, tree, label)
            recs.append(rec)
            failed += [{"build": rec["label"], **f} for f in lost]
    doc: dict[str, Any] = {"schema": report.SCHEMA, "version": report.VERSION, "binaries": recs}
    if failed:
        doc["failed"] = failed
    if args.plots:
        t0 = time.perf_counter()
        try:
            doc["plots"] = write_plots(doc, Path(args.plots), args.plot_format)
        except OSError as e:
            raise common.UserError(f"{args.plots}: {e.strerror}") from None
        doc["plot_seconds"] = round(time.perf_counter() - t0, 3)
    common.emit(args, doc, lambda con: render(con, doc))
    return 2 if failed else 0


def run_dataset(args: argparse.Namespace, paths: list[str | None]) -> int:
    """A survey dataset: experiment 1 and the bands build by build, and the functions whose
    inlining changed between builds."""
    if len(paths) > 1:
        raise common.UserError("stats reads one survey dataset, alone: its builds are its columns")
    doc = survey_report.document(Path(str(paths[0])), args.examples)
    if args.plots:
        try:
            doc["plots"] = write_survey_plot(doc, Path(args.plots), args.plot_format)
        except OSError as e:
            raise common.UserError(f"{args.plots}: {e.strerror}") from None
    common.emit(args, doc, lambda con: render_dataset(con, doc))
    return 0


def _binary_record(args: argparse.Namespace, label: str) -> dict[str, Any]:
    t0 = time.perf_counter()
    b = common.open_binary(args)
    opened = round(time.perf_counter() - t0, 3)
    rec = report.of_binary(b, label, args.examples, args.top)
    rec["seconds"] = {"open": opened, **rec["seconds"]}
    return rec


def _tree_record(args: argparse.Namespace, tree: Tree, label: str) -> tuple[dict[str, Any], list[dict[str, str]]]:
    """A kernel tree as one build: every binary's experiments in the pool, added up; the
    binaries that failed (each named on stderr too)."""
    results = pool.run(args, tree, experiments)
    parts = [(p.name, p.doc) for p in results.done if p.doc is not None]
    if not parts:
        raise common.UserError(f"{tree.root}: no binary of the tree could be analysed")
    rec = report.added_up(parts, tree.release or label, str(tree.root), args.examples, args.top)
    return rec, results.failures()


def experiments(args: argparse.Namespace, name: str, b: Binary) -> dict[str, Any]:
    """In a worker: the experiments on one binary of a tree."""
    return report.of_binary(b, name, args.examples, args.top)


def _debug_files(args: argparse.Namespace, paths: Sequence[str]) -> dict[str, str | None]:
    debug: dict[str, str | None] = dict.fromkeys(paths)
    debug[paths[0]] = args.debug_file
    for item in args.debug_for:
        binary, sep, file = item.partition("=")
        if not sep or binary not in debug:
            raise common.UserError(f"--debug-for {item}: expected BINARY=FILE with BINARY one of the binaries")
        debug[binary] = file
    return debug


# -- tables ----------------------------------------------------------------------------------------


def render(con: Any, doc: dict[str, Any]) -> None:
    recs = doc["binaries"]
    labels = [r["label"] for r in recs]
    for r in recs:
        what = f"{r['binaries']} binaries" if "binaries" in r else f"build-id {r['build_id'] or '-'}"
        con.print(f"{r['label']}: {r['path']} ({r['arch']}, {what})", markup=False)
    for f in doc.get("failed", []):
        con.print(f"{f['build']}: {f['binary']} failed: {f['error']}", markup=False)
    _side_by_side(con, "1. .call vs .inline: source functions and call sites", labels, _call_rows(recs))
    _side_by_side(con, "2. several versions of one function in one build", labels, _version_rows(recs))
    _examples(con, recs)
    _side_by_side(con, "3. arguments at inline sites (readable at the site's entry)", labels, _arg_rows(recs))
    _worst(con, recs)
    _side_by_side(con, "bands and findings (source functions)", labels, _band_rows(recs))
    _side_by_side(con, "seconds", labels, _timing_rows(recs))
    for name, path in doc.get("plots", {}).items():
        con.print(f"plot {name}: {path}", markup=False)
    if "plot_seconds" in doc:
        con.print(f"plots written in {doc['plot_seconds']:.2f} s", markup=False)


def render_dataset(con: Any, doc: dict[str, Any]) -> None:
    recs = doc["builds"]
    labels = [r["label"] for r in recs]
    con.print(f"{doc['dataset']}: {len(recs)} builds, {doc['failed']} binaries failed", markup=False)
    rows: list[Row] = [("binaries", [_n(r["binaries"]) for r in recs])]
    rows.append(("source functions (DWARF)", [_n(r["source_functions"]) for r in recs]))
    rows += [
        (f"  {s}", [_pct(r["functions"][s], r["source_functions"]) for r in recs]) for s in survey_report.STATUSES[:3]
    ]
    rows.append(("symbol-only functions (no DWARF)", [_n(r["functions"][report.SYMBOL_ONLY]) for r in recs]))
    rows.append(("out-of-line instances", [_n(r["instances"]) for r in recs]))
    rows.append(("inline sites", [_n(r["inline_sites"]) for r in recs]))
    _side_by_side(con, "1. .call vs .inline across builds", labels, rows)
    total = [sum(r["functions_by_band"].values()) for r in recs]
    bands = (
        [
            (f"  {b}", [_pct(r["functions_by_band"][b], n) for r, n in zip(recs, total)])
            for b in recs[0]["functions_by_band"]
        ]
        if recs
        else []
    )
    _side_by_side(con, "bands (functions)", labels, [("functions", [_n(n) for n in total]), *bands])
    changed = doc["inlining_changed"]
    con.print()
    con.print(f"functions whose inlining changed between builds: {changed['functions']:,}", markup=False)
    for e in changed["examples"]:
        how = ", ".join(f"{b} {s}" for b, s in e["statuses"].items())
        con.print(Text(f"  {e['binary']}:{e['name']} ({e['decl_file'] or '-'}): {how}"))
    for name, path in doc.get("plots", {}).items():
        con.print(f"plot {name}: {path}", markup=False)


def _side_by_side(con: Any, title: str, labels: list[str], rows: Iterable[Row]) -> None:
    t = Table(title=title, title_justify="left", title_style="bold", box=None, pad_edge=False, header_style="bold")
    t.add_column("")
    for label in labels:
        t.add_column(label, justify="right")
    for name, cells in rows:
        t.add_row(Text(name), *(Text(c) for c in cells))
    con.print()
    con.print(t)


def _n(x: int) -> str:
    return f"{x:,}"


def _pct(x: int, whole: int) -> str:
    return f"{x:,} ({100 * x / whole:.1f} %)" if whole else _n(x)


def _call_rows(recs: list[dict[str, Any]]) -> Iterable[Row]:
    c = [r["calls"] for r in recs]
    yield "source functions (DWARF)", [_n(x["source_functions"]) for x in c]
    for status in report.STATUSES[:3]:
        yield f"  {status}", [_pct(x["functions"][status], x["source_functions"]) for x in c]
    yield "  with an out-of-line entry (.call)", [_pct(x["with_entry"], x["source_functions"]) for x in c]
    yield "  inlined somewhere (.inline)", [_pct(x["inlined"], x["source_functions"]) for x in c]
    yield "symbol-only functions (no DWARF)", [_n(x["functions"][report.SYMBOL_ONLY]) for x in c]
    yield "inline sites", [_n(x["call_sites"]["inline"]) for x in c]
    yield "DWARF call sites", [_n(x["call_sites"]["dwarf_calls"]) for x in c]
    for key, text in CALL_DESTINATIONS.items():
        yield f"  {text}", [_pct(x["call_sites"][key], x["call_sites"]["dwarf_calls"]) for x in c]
    yield (
        "inlined share of calls to this binary's DWARF functions",
        [f"{100 * x['inlined_share_of_resolved']:.1f} %" for x in c],
    )
    yield "inlined share of all calls", [f"{100 * x['inlined_share_of_all']:.1f} %" for x in c]
    yield "called functions, by the share of their calls inlined", [_n(x["called_functions"]) for x in c]
    for bucket in report.INLINED_SHARE_BUCKETS:
        yield (
            f"  {bucket} inlined",
            [_pct(x["called_functions_by_inlined_share"][bucket], x["called_functions"]) for x in c],
        )


def _version_rows(recs: list[dict[str, Any]]) -> Iterable[Row]:
    v = [r["versions"] for r in recs]
    yield "functions with an out-of-line entry", [_n(x["functions_with_entry"]) for x in v]
    yield (
        "  with several versions (instances or a .cold part)",
        [_pct(x["functions_with_several_versions"], x["functions_with_entry"]) for x in v],
    )
    for shape in (*report.SHAPES, "cold-part"):
        yield f"  {SHAPE_TEXT[shape]}", [_pct(x["shapes"][shape]["functions"], x["functions_with_entry"]) for x in v]
    yield "  several copies, with clones too", [_n(x["several_copies_with_clones"]) for x in v]
    yield "most instances of one function", [_n(x["max_instances"]) for x in v]
    suffixes = report.keys_by_total(x["instances_by_suffix"] for x in v)
    yield "out-of-line instances by suffix", [_n(sum(x["instances_by_suffix"].values())) for x in v]
    for s in suffixes:
        yield f"  {s}", [_n(x["instances_by_suffix"].get(s, 0)) for x in v]


def _examples(con: Any, recs: list[dict[str, Any]]) -> None:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("binary", "shape", "function", "declared in", "instances"):
        t.add_column(col, overflow="fold")
    for r in recs:
        for shape, s in r["versions"]["shapes"].items():
            for e in s["examples"]:
                t.add_row(
                    *(Text(x) for x in (r["label"], shape, e["name"], e["decl_file"] or "-")),
                    Text(", ".join(e["instances"])),
                )
    if t.row_count:
        con.print()
        con.print(t)


def _arg_rows(recs: list[dict[str, Any]]) -> Iterable[Row]:
    a = [r["inline_args"] for r in recs]
    yield "inline sites", [_n(x["sites"]) for x in a]
    texts = {"all": "every parameter readable", "some": "some", "none": "none", "no-params": "no parameters"}
    for cls in report.SITE_CLASSES:
        yield f"  {texts[cls]}", [_pct(x["sites_by_class"][cls], x["sites"]) for x in a]
    yield "(site, parameter) pairs", [_n(x["param_sites"]) for x in a]
    yield "  readable", [_pct(x["param_sites_readable"], x["param_sites"]) for x in a]
    for kind in report.keys_by_total(x["param_sites_by_location"] for x in a):
        yield f"  {kind}", [_pct(x["param_sites_by_location"].get(kind, 0), x["param_sites"]) for x in a]
    yield "inlined functions with parameters, by share readable", [_n(x["functions"]) for x in a]
    for bucket in report.READABLE_SHARE_BUCKETS:
        yield f"  {bucket}", [_pct(x["functions_by_readable_share"][bucket], x["functions"]) for x in a]


def _worst(con: Any, recs: list[dict[str, Any]]) -> None:
    t = Table(box=None, pad_edge=False, header_style="bold")
    for col in ("binary", "function", "declared in", "sites", "all/some/none", "readable at sites, per parameter"):
        t.add_column(col, overflow="fold")
    for r in recs:
        for w in r["inline_args"]["worst"]:
            per = ", ".join(f"{k} {v}/{w['sites']}" for k, v in w["readable"].items())
            cells = (
                r["label"],
                w["name"],
                w["decl_file"] or "-",
                _n(w["sites"]),
                f"{w['all']}/{w['some']}/{w['none']}",
                per,
            )
            t.add_row(*(Text(x) for x in cells))
    if t.row_count:
        con.print()
        con.print(t)


def _band_rows(recs: list[dict[str, Any]]) -> Iterable[Row]:
    b = [r["bands"] for r in recs]
    totals = [sum(x["functions_by_band"].values()) for x in b]
    yield "functions", [_n(n) for n in totals]
    for band in b[0]["functions_by_band"]:
        yield f"  {band}", [_pct(x["functions_by_band"][band], n) for x, n in zip(b, totals)]
    yield "functions per finding code", ["" for _ in b]
    for code in report.keys_by_total(x["functions_by_code"] for x in b):
        yield f"  {code}", [_n(x["functions_by_code"].get(code, 0)) for x in b]


def _timing_rows(recs: list[dict[str, Any]]) -> Iterable[Row]:
    for step in recs[0]["seconds"]:
        yield step, [f"{r['seconds'][step]:.2f}" for r in recs]

"""``patchscope stats BINARY [BINARY...]``: the design note's experiments, side by side, as
tables (standard output) and plots (``--plots DIR``)."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from rich.table import Table
from rich.text import Text

from patchscope.cli import common
from patchscope.report import stats as report

HELP = "the design note's experiments (inlining, clones, inline-site arguments, bands) as tables and plots"

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
    paths = [args.binary, *args.more]
    debug = _debug_files(args, paths)
    binaries, opened = [], []
    for path in paths:
        t0 = time.perf_counter()
        binaries.append(
            common.open_binary(argparse.Namespace(**{**vars(args), "binary": path, "debug_file": debug[path]}))
        )
        opened.append(round(time.perf_counter() - t0, 3))
    doc = report.document(binaries, examples=args.examples, top=args.top)
    for rec, seconds in zip(doc["binaries"], opened):
        rec["seconds"] = {"open": seconds, **rec["seconds"]}
    if args.plots:
        t0 = time.perf_counter()
        doc["plots"] = write_plots(doc, Path(args.plots), args.plot_format)
        doc["plot_seconds"] = round(time.perf_counter() - t0, 3)
    common.emit(args, doc, lambda con: render(con, doc))
    return 0


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
        con.print(f"{r['label']}: {r['path']} ({r['arch']}, build-id {r['build_id'] or '-'})", markup=False)
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
    suffixes = _keys_in_order(x["instances_by_suffix"] for x in v)
    yield "out-of-line instances by suffix", [_n(sum(x["instances_by_suffix"].values())) for x in v]
    for s in suffixes:
        yield f"  {s}", [_n(x["instances_by_suffix"].get(s, 0)) for x in v]


def _keys_in_order(dicts: Iterable[dict[str, int]]) -> list[str]:
    """The keys of several counters, the largest total first."""
    total: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            total[k] = total.get(k, 0) + n
    return sorted(total, key=lambda k: (-total[k], k))


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
    for kind in _keys_in_order(x["param_sites_by_location"] for x in a):
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
    for code in _keys_in_order(x["functions_by_code"] for x in b):
        yield f"  {code}", [_n(x["functions_by_code"].get(code, 0)) for x in b]


def _timing_rows(recs: list[dict[str, Any]]) -> Iterable[Row]:
    for step in recs[0]["seconds"]:
        yield step, [f"{r['seconds'][step]:.2f}" for r in recs]


# -- plots -----------------------------------------------------------------------------------------

#: Counts whose largest is this many times the smallest get a log axis.
LOG_SPAN = 20
#: Height of one bar of a horizontal panel, in inches: the tick labels must not touch.
BAR_HEIGHT = 0.17
Series = list[tuple[str, list[float]]]


def write_plots(doc: dict[str, Any], folder: Path, fmt: str) -> dict[str, str]:
    """One figure per experiment, the binaries side by side in grouped bars; returns the paths."""
    import matplotlib

    matplotlib.use("Agg")  # files only: no display, whatever the environment says
    import matplotlib.pyplot as plt

    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise common.UserError(f"{folder}: {e.strerror}") from None
    recs = doc["binaries"]
    out = {}
    for name, draw in (
        ("calls", _plot_calls),
        ("versions", _plot_versions),
        ("inline-args", _plot_inline_args),
        ("bands", _plot_bands),
    ):
        fig = draw(plt, recs)
        path = folder / f"{name}.{fmt}"
        fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
        plt.close(fig)
        out[name] = str(path)
    return out


def _figure(
    plt: Any, recs: list[dict[str, Any]], title: str, panels: int, width: float = 6.0, rows: int = 0
) -> tuple[Any, Any]:
    """``rows``: categories of the tallest horizontal panel, which sets the height."""
    height = max(5.2, 1.8 + BAR_HEIGHT * rows * len(recs))
    fig, axes = plt.subplots(1, panels, figsize=(width * panels, height), layout="constrained")
    fig.suptitle(title, fontsize=14, fontweight="bold")
    return fig, list(axes) if panels > 1 else [axes]


def _legend(fig: Any, axes: list[Any]) -> None:
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), frameon=False, fontsize=11)


def _bars(
    ax: Any,
    categories: Sequence[str],
    series: Series,
    *,
    percent: bool = False,
    horizontal: bool = False,
    title: str = "",
    axis_label: str = "",
) -> None:
    """Grouped bars: one group per category, one bar per binary, each bar labelled with its value."""
    n = len(series)
    width = 0.8 / n
    pos = list(range(len(categories)))
    top = max((v for _, vals in series for v in vals), default=0)
    positive = [v for _, vals in series for v in vals if v > 0]
    log = not percent and positive and max(positive) / min(positive) >= LOG_SPAN
    bar = ax.barh if horizontal else ax.bar
    for i, (label, vals) in enumerate(series):
        offsets = [p - 0.4 + width * (i + 0.5) for p in pos]
        drawn = bar(offsets, vals, width, label=label, color=f"C{i}")
        texts = [_percent_text(v) if percent else _short(v) for v in vals]
        ax.bar_label(drawn, texts, padding=2, fontsize=8, rotation=0 if horizontal or n <= 2 else 90)
    ticks, lim, scale = (
        (ax.set_yticks, ax.set_xlim, ax.set_xscale) if horizontal else (ax.set_xticks, ax.set_ylim, ax.set_yscale)
    )
    ticks(pos, categories, fontsize=9)
    if horizontal:
        ax.invert_yaxis()  # the first category on top, as in the table
    if log:
        scale("log")
        lim(min(positive) / 3, top * 6)  # room for the labels beyond the longest bar
    else:
        lim(0, (top or 1) * 1.18)
    (ax.set_xlabel if horizontal else ax.set_ylabel)(axis_label + (" (log scale)" if log else ""), fontsize=10)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="x" if horizontal else "y", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)


def _percent_text(v: float) -> str:
    if 0 < v < 0.05:
        return "<0.1 %"  # rare, but there: not "0.0 %"
    return f"{v:.0f} %" if v >= 9.5 else f"{v:.1f} %"


def _short(v: float) -> str:
    """A bar's label, at most four characters wide so that neighbours never touch."""
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e3:
        return f"{v / 1e3:.1f}k" if v < 1e4 else f"{v / 1e3:.0f}k"
    return f"{v:.0f}"


def _percent(counts: dict[str, int], keys: Sequence[str]) -> list[float]:
    whole = sum(counts.get(k, 0) for k in keys)
    return [100 * counts.get(k, 0) / whole if whole else 0.0 for k in keys]


def _plot_calls(plt: Any, recs: list[dict[str, Any]]) -> Any:
    fig, ax = _figure(plt, recs, "1. .call vs .inline: out-of-line entries and inlined calls", 3)
    statuses = report.STATUSES[:3]
    _bars(
        ax[0],
        ["not inlined", "fully inlined", "selectively\ninlined"],
        [(r["label"], _percent(r["calls"]["functions"], statuses)) for r in recs],
        percent=True,
        title="Source functions by inlining status",
        axis_label="% of source functions (DWARF)",
    )
    keys = ("inline", *report.DESTINATIONS)
    _bars(
        ax[1],
        [
            "inline\nsites",
            "calls: DWARF\nfunction here",
            "calls: symbol\nhere, no DWARF",
            "calls to\nother binaries",
            "indirect\ncalls",
        ],
        [(r["label"], [r["calls"]["call_sites"][k] for k in keys]) for r in recs],
        title="Call sites: inlined vs DWARF call sites",
        axis_label="call sites",
    )
    buckets = report.INLINED_SHARE_BUCKETS
    _bars(
        ax[2],
        ["never\ninlined", "under half\ninlined", "half or more\ninlined", "always\ninlined"],
        [(r["label"], _percent(r["calls"]["called_functions_by_inlined_share"], buckets)) for r in recs],
        percent=True,
        title="Called functions by share of their calls inlined",
        axis_label="% of called functions",
    )
    _legend(fig, ax)
    return fig


def _plot_versions(plt: Any, recs: list[dict[str, Any]]) -> Any:
    suffixes = [s for s in _keys_in_order(r["versions"]["instances_by_suffix"] for r in recs) if s != "original"]
    suffixes = suffixes[:12]
    fig, ax = _figure(plt, recs, "2. Several versions of one function in one build", 2, width=7.0, rows=len(suffixes))
    _bars(
        ax[0],
        [
            "several copies\n(no suffix)",
            "original\n+ clones",
            "2+ clones,\nno original",
            "one clone,\nno original",
            ".cold part\n(any shape)",
        ],
        [(r["label"], [r["versions"]["shapes"][s]["functions"] for s in (*report.SHAPES, "cold-part")]) for r in recs],
        title="Functions by shape of their versions",
        axis_label="source functions",
    )
    _bars(
        ax[1],
        suffixes,
        [(r["label"], [r["versions"]["instances_by_suffix"].get(s, 0) for s in suffixes]) for r in recs],
        horizontal=True,
        title="Clone instances by suffix (numbers dropped)",
        axis_label="out-of-line instances",
    )
    _legend(fig, ax)
    return fig


def _plot_inline_args(plt: Any, recs: list[dict[str, Any]]) -> Any:
    kinds = _keys_in_order(r["inline_args"]["param_sites_by_location"] for r in recs)
    fig, ax = _figure(plt, recs, "3. Arguments at inline sites, readable at the site's entry", 3, rows=len(kinds))
    classes = report.SITE_CLASSES[:3]  # sites of functions without parameters have nothing to miss
    _bars(
        ax[0],
        ["every parameter", "some", "none"],
        [(r["label"], _percent(r["inline_args"]["sites_by_class"], classes)) for r in recs],
        percent=True,
        title="Inline sites by parameters readable",
        axis_label="% of inline sites with parameters",
    )
    _bars(
        ax[1],
        kinds,
        [(r["label"], _percent(r["inline_args"]["param_sites_by_location"], kinds)) for r in recs],
        percent=True,
        horizontal=True,
        title="(site, parameter) pairs by location at entry\n(green: readable by a probe, red: not)",
        axis_label="% of (site, parameter) pairs",
    )
    for tick in ax[1].get_yticklabels():
        tick.set_color("darkgreen" if tick.get_text() in report.READABLE_KINDS else "firebrick")
    buckets = report.READABLE_SHARE_BUCKETS
    _bars(
        ax[2],
        list(buckets),
        [(r["label"], [r["inline_args"]["functions_by_readable_share"][b] for b in buckets]) for r in recs],
        title="Inlined functions by share of (site, parameter)\npairs readable",
        axis_label="inlined functions with parameters",
    )
    _legend(fig, ax)
    return fig


def _plot_bands(plt: Any, recs: list[dict[str, Any]]) -> Any:
    codes = _keys_in_order(r["bands"]["functions_by_code"] for r in recs)
    fig, ax = _figure(plt, recs, "Bands and finding codes", 2, width=7.0, rows=len(codes))
    bands = list(recs[0]["bands"]["functions_by_band"])
    _bars(
        ax[0],
        bands,
        [(r["label"], _percent(r["bands"]["functions_by_band"], bands)) for r in recs],
        percent=True,
        title="Source functions by band",
        axis_label="% of functions",
    )
    _bars(
        ax[1],
        codes,
        [(r["label"], [r["bands"]["functions_by_code"].get(c, 0) for c in codes]) for r in recs],
        horizontal=True,
        title="Functions per finding code",
        axis_label="source functions",
    )
    _legend(fig, ax)
    return fig

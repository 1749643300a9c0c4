"""The plots of ``patchscope stats``: one figure per experiment, the binaries side by side in
grouped bars (matplotlib, imported only when plots are asked for)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from patchscope.report import stats as report

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

    folder.mkdir(parents=True, exist_ok=True)
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


def write_survey_plot(doc: dict[str, Any], folder: Path, fmt: str) -> dict[str, str]:
    """Experiment 1 across the builds of a survey dataset, in one figure (``stats DATASET``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    recs = doc["builds"]
    fig, ax = _figure(plt, recs, "1. .call vs .inline across builds", 2)
    statuses = report.STATUSES[:3]
    _bars(
        ax[0],
        ["not inlined", "fully inlined", "selectively\ninlined"],
        [(r["label"], _percent(r["functions"], statuses)) for r in recs],
        percent=True,
        title="Source functions by inlining status",
        axis_label="% of source functions (DWARF)",
    )
    _bars(
        ax[1],
        ["source\nfunctions", "out-of-line\ninstances", "inline\nsites"],
        [(r["label"], [r["source_functions"], r["instances"], r["inline_sites"]]) for r in recs],
        title="Functions, instances and inline sites",
        axis_label="count",
    )
    _legend(fig, ax)
    path = folder / f"survey-calls.{fmt}"
    fig.savefig(path, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None)
    plt.close(fig)
    return {"survey-calls": str(path)}


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
    suffixes = [s for s in report.keys_by_total(r["versions"]["instances_by_suffix"] for r in recs) if s != "original"]
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
    kinds = report.keys_by_total(r["inline_args"]["param_sites_by_location"] for r in recs)
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
    codes = report.keys_by_total(r["bands"]["functions_by_code"] for r in recs)
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

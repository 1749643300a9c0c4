"""Inlining: functions with no out-of-line copy, or with one that misses callers, and the
arguments that survive at each inline site."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patchscope import _core
from patchscope.index.context import Context
from patchscope.index.functions import group_ids, rows_of
from patchscope.rules.finding import Band, Finding, code, hexa

FULLY_INLINED = code("fully-inlined", Band.GRAY, "no out-of-line instance: no .call, no .return; only inline sites")
SELECTIVELY_INLINED = code(
    "selectively-inlined",
    Band.GRAY,
    "an out-of-line copy and inline sites: a probe on the symbol misses the inlined callers",
)
INLINE_ARGS_DIFFER = code(
    "inline-args-differ",
    Band.GRAY,
    "at some inline sites some parameters have no location or constant at the site's entry",
)

#: Sites listed in a finding's evidence, at most (the count is always exact).
SITES_SHOWN = 8


def _sites(cx: Context, rows: np.ndarray) -> list[dict[str, str]]:
    return [{"entry_pc": hexa(cx.site_entry_pc[r]), "caller": cx.site_caller(r)} for r in rows[:SITES_SHOWN]]


def fully_inlined(cx: Context) -> Iterator[Finding]:
    for fid in np.flatnonzero(cx.fn_status == "fully-inlined").tolist():
        rows = cx.sites_of(fid)
        callers = cx.callers_of(fid)
        yield Finding(
            FULLY_INLINED,
            fid,
            f"{cx.fn_name[fid]} exists only inlined, at {len(rows)} site(s) in {len(callers)} function(s): "
            "no entry symbol, no return to probe",
            {"sites": len(rows), "callers": callers[:SITES_SHOWN], "first_sites": _sites(cx, rows)},
        )


def selectively_inlined(cx: Context) -> Iterator[Finding]:
    part = (cx.inst_suffix_kinds & _core.suffix.PART) != 0
    for fid in np.flatnonzero(cx.fn_status == "selectively-inlined").tolist():
        inst = cx.instances_of.get(fid, [])
        if inst and all(part[i] for i in inst):
            continue  # a .part split: partial-inline says it better
        rows = cx.sites_of(fid)
        symbols = [cx.instance_symbol(i) for i in inst]
        yield Finding(
            SELECTIVELY_INLINED,
            fid,
            f"a probe on {', '.join(symbols)} misses the {len(rows)} inlined call site(s) in "
            f"{len(cx.callers_of(fid))} function(s)",
            {"instances": symbols, "sites": len(rows), "first_sites": _sites(cx, rows)},
        )


def inline_args_differ(cx: Context) -> Iterator[Finding]:
    """Per inlined function: for each source parameter, at how many of its sites an
    address-based probe can read it at the site's entry (the '.inline arguments'
    experiment of ``patchscope stats``). A parameter with no DIE at a site counts as unreadable there."""
    p = cx.params
    site_die = cx.sites.column("die").to_numpy()
    srow = rows_of(site_die, p["owner"])
    at_site = np.flatnonzero(srow >= 0)
    srow = srow[at_site]
    name = p["name"][at_site].astype(np.int64)
    origin_row = rows_of(p["die"], p["origin"][at_site])
    unnamed = (name == 0) & (origin_row >= 0)
    name[unnamed] = p["name"][origin_row[unnamed]]
    fid = cx.site_fid[srow]
    readable = cx.param_readable[at_site]
    view = (p["loc_flags"][at_site] & _core.location_flag.VIEW_ONLY) != 0
    first, group = group_ids(fid, name)
    n_read = np.bincount(group, weights=readable, minlength=len(first)).astype(np.int64)
    n_view = np.bincount(group, weights=view, minlength=len(first)).astype(np.int64)
    g_fid, g_name = fid[first], name[first]
    n_sites = np.bincount(cx.site_fid, minlength=cx.functions.num_rows)[g_fid]
    flagged_fids = np.unique(g_fid[n_read < n_sites])
    # (site row, name) pairs readable there, for the sites that evidence shows
    shown_sites = np.concatenate([cx.sites_of(f)[:SITES_SHOWN] for f in flagged_fids.tolist()] or [np.empty(0)])
    pick = np.flatnonzero(readable & np.isin(srow, shown_sites))
    readable_at = set(zip(srow[pick].tolist(), name[pick].tolist()))
    pcs = cx.site_entry_pc
    lo = np.searchsorted(g_fid, flagged_fids, "left")
    hi = np.searchsorted(g_fid, flagged_fids, "right")
    for f, a, b in zip(flagged_fids.tolist(), lo.tolist(), hi.tolist()):
        rows = cx.sites_of(f)
        names = [cx.string(n) for n in g_name[a:b]]
        per_param = dict(zip(names, n_read[a:b].tolist()))
        views = {n: v for n, v in zip(names, n_view[a:b].tolist()) if v}
        shown = []
        for r in rows[:SITES_SHOWN]:
            gone = [n for n, nid in zip(names, g_name[a:b].tolist()) if (r, nid) not in readable_at]
            if gone:
                shown.append({"entry_pc": hexa(pcs[r]), "caller": cx.site_caller(r), "unavailable": gone})
        summary = ", ".join(
            f"{n} at {k}/{len(rows)}" + (f" ({views[n]} bound only in a later location view)" if n in views else "")
            for n, k in per_param.items()
        )
        yield Finding(
            INLINE_ARGS_DIFFER,
            f,
            f"{cx.fn_name[f]} inlined at {len(rows)} site(s); readable at the site's entry: {summary}",
            {"sites": len(rows), "readable": per_param, "view_only": views, "sites_missing": shown},
        )


RULES = [fully_inlined, selectively_inlined, inline_args_differ]

"""Probe points judged: what ``patchscope check`` prints, and its JSON (``patchscope.check`` v1).

Per point: the addresses it resolves to, each with its band, reasons and the variables in scope
there; the point's own findings; one verdict — ``safe``, ``gray``, ``hazardous`` or
``unresolved`` (the tool would place no probe, or the point does not parse). The judging is
:mod:`patchscope.probes.judge`; this module shapes the document.
"""

from __future__ import annotations

from typing import Any

from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.judge import UNRESOLVED, Judge, LandingVerdict, PointVerdict, overall, syntax_error
from patchscope.rules.finding import hexa

SCHEMA = "patchscope.check"
VERSION = 1


def document(binary: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError]) -> dict[str, Any]:
    judge = Judge(binary)
    records = [_syntax_error(p) if isinstance(p, ps.ProbeSyntaxError) else _point(judge.cx, judge(p)) for p in points]
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": binary.info["path"],
        "verdict": overall([r["verdict"] for r in records]),
        "points": records,
    }


def _syntax_error(e: ps.ProbeSyntaxError) -> dict[str, Any]:
    return {
        "probe": e.text,
        "origin": e.origin,
        "verdict": UNRESOLVED,
        "errors": [syntax_error(e)],
        "pointer": e.pointer(),
        "landings": [],
        "findings": [],
        "notes": [],
    }


def _point(cx: Context, v: PointVerdict) -> dict[str, Any]:
    point, res = v.point, v.resolution
    return {
        "probe": point.text,
        "tool": point.tool,
        "origin": point.origin,
        "verdict": v.verdict,
        "errors": res.errors,
        "notes": res.notes + (["optional point (?): resolving to nothing is allowed"] if point.optional else []),
        "findings": [r.record() for r in v.reasons],
        "landings": [_landing(cx, lv) for lv in v.landings],
    }


def _landing(cx: Context, lv: LandingVerdict) -> dict[str, Any]:
    lnd = lv.landing
    return {
        "address": hexa(lnd.address),
        "function": cx.fn_name[lnd.fid] if lnd.fid >= 0 else None,
        "in": cx.instance_symbol(lnd.instance) if lnd.instance >= 0 else None,
        "kind": lnd.kind,
        "how": lnd.how,
        "band": lv.band.label,
        "reasons": [r.record() for r in lv.reasons],
        "variables": lv.variables,
    }

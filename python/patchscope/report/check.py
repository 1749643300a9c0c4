"""Probe points judged: what ``patchscope check`` prints, and its JSON (``patchscope.check`` v2).

Per point: the addresses it resolves to, each with its band, reasons, the variables in scope
there (each with what a write to it there would do) and the handler's writes judged there;
the point's own findings; one verdict — ``safe``, ``gray``, ``hazardous`` or
``unresolved`` (the tool would place no probe, or the point does not parse). The judging is
:mod:`patchscope.probes.judge`; this module shapes the document.
"""

from __future__ import annotations

from typing import Any

from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.index.tree import Tree
from patchscope.probes import route
from patchscope.probes import syntax as ps
from patchscope.probes.judge import (
    NO_CODE,
    UNRESOLVED,
    Judge,
    LandingVerdict,
    PointVerdict,
    overall,
    syntax_error,
    write_error,
)
from patchscope.rules.finding import Band, hexa

SCHEMA = "patchscope.check"
VERSION = 2


def document(
    binary: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError], cpu: frozenset[int] | None = None
) -> dict[str, Any]:
    judge = Judge(binary, cpu)
    image = judge.cx.is_kernel()
    #: a module's point against a vmlinux alone resolves nowhere: judged by no one
    away = {i: why for i, p in enumerate(points) if image and (why := _not_in_image(p))}
    judged = [p for i, p in enumerate(points) if isinstance(p, ps.ProbePoint) and i not in away]
    verdicts = iter(judge.many(judged))
    #: (origin, header) of a header whose ``!`` point resolved: stap places no later point of it
    settled: dict[tuple[str | None, str], str] = {}
    records = []
    for i, p in enumerate(points):
        if isinstance(p, ps.ProbeSyntaxError):
            records.append(document_error(p))
            continue
        if i in away:
            records.append(unresolved(p, away[i]))
            continue
        v = next(verdicts)
        group = (p.origin, p.header or p.text)
        if p.header and group in settled:
            records.append(_not_placed(p, settled[group]))
            continue
        if p.sufficient and v.verdict != UNRESOLVED and v.resolution.landings:
            settled[group] = p.text
        records.append(_point(judge.cx, v))
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": binary.info["path"],
        "verdict": overall([r["verdict"] for r in records]),
        "points": records,
    }


def _not_in_image(p: ps.ProbePoint | ps.ProbeSyntaxError) -> str | None:
    return route.not_in_image(p) if isinstance(p, ps.ProbePoint) else None


def tree_document(tree: Tree, records: list[dict[str, Any]], failed: list[dict[str, str]]) -> dict[str, Any]:
    """The points checked against a kernel tree, each in the binaries it routes to."""
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": str(tree.root),
        "verdict": overall([r["verdict"] for r in records]),
        "points": records,
        "failed": failed,
    }


def unresolved(point: ps.ProbePoint, error: str) -> dict[str, Any]:
    """A point no binary could resolve, and why."""
    return {
        "probe": point.text,
        "tool": point.tool,
        "origin": point.origin,
        "verdict": Band.SAFE.label if point.optional else UNRESOLVED,
        "errors": [error],
        "notes": [],
        "findings": [],
        "landings": [],
    }


def merged(point: ps.ProbePoint, parts: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """One point's records from every binary it was resolved in, as one: each landing says
    which binary it is in; binaries where it found nothing (``module("*")`` over thousands of
    modules) are not listed one by one."""
    hits = [(name, r) for name, r in parts if r["landings"]]
    if len(parts) == 1 and not hits:
        return parts[0][1]
    if not hits:
        return unresolved(point, f"{point.text}: resolves in none of the {len(parts)} binaries it names")
    first = hits[0][1]
    carets = _carets([r for _, r in hits])
    return {
        **{k: v for k, v in first.items() if k != "pointer"},
        **({"pointer": "\n".join(c for c, _ in carets)} if carets else {}),
        "verdict": overall([r["verdict"] for _, r in hits]),
        "errors": [e for _, e in carets],
        "notes": sorted({n for _, r in hits for n in r["notes"]}),
        "findings": [f for _, r in hits for f in r["findings"]],
        "landings": [{"binary": name, **lnd} for name, r in hits for lnd in r["landings"]],
    }


def _carets(records: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The handler's bad writes of a point's records from several binaries, once each: (caret,
    two lines; error); a record's last errors are those its pointer shows."""
    out: dict[tuple[str, str], None] = {}
    for r in records:
        lines = r["pointer"].split("\n") if "pointer" in r else []
        pairs = ["\n".join(lines[i : i + 2]) for i in range(0, len(lines), 2)]
        out.update(dict.fromkeys(zip(pairs, r["errors"][len(r["errors"]) - len(pairs) :])))
    return list(out)


def document_error(e: ps.ProbeSyntaxError) -> dict[str, Any]:
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


def _not_placed(point: ps.ProbePoint, by: str) -> dict[str, Any]:
    """A later alternative of a header whose sufficient (``!``) point resolved: stap does not
    place it (elaborate.cxx: a sufficient point that resolves ends the header's list)."""
    return {
        "probe": point.text,
        "tool": point.tool,
        "origin": point.origin,
        "verdict": NO_CODE,
        "errors": [],
        "notes": [f"not placed: {by} before it is sufficient (!) and resolved"],
        "findings": [],
        "landings": [],
    }


def _point(cx: Context, v: PointVerdict) -> dict[str, Any]:
    point, res = v.point, v.resolution
    return {
        "probe": point.text,
        "tool": point.tool,
        "origin": point.origin,
        "verdict": v.verdict,
        **({"pointer": "\n".join(e.pointer() for e in v.write_errors)} if v.write_errors else {}),
        "errors": res.errors + [write_error(e) for e in v.write_errors],
        "notes": res.notes
        + list(point.notes if point.tool == "stap" else ())
        + (["optional point (?): resolving to nothing is allowed"] if point.optional else []),
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
        "writes": [w.record() for w in lv.writes],
    }

"""Probe points judged: what ``patchscope check`` prints, and its JSON (``patchscope.check`` v1).

Per point: the addresses it resolves to, each with its band, reasons and the variables in scope
there; the point's own findings; one verdict — ``safe``, ``gray``, ``hazardous`` or
``unresolved`` (the tool would place no probe, or the point does not parse).
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

import numpy as np

from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.index.tables import NO_DIE
from patchscope.index.variables import variables_at_many
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import Landing, Resolution, resolve
from patchscope.rules import findings, refused
from patchscope.rules.finding import Band, hexa
from patchscope.rules.points import FindingsAt, Reason, mid_instruction, point_reasons, variable_reasons, worst

SCHEMA = "patchscope.check"
VERSION = 1
UNRESOLVED = "unresolved"
#: Exit status per overall verdict: a CI job gates on it.
EXIT = {Band.SAFE.label: 0, Band.GRAY.label: 1, Band.HAZARDOUS.label: 2, UNRESOLVED: 2}


def document(binary: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError]) -> dict[str, Any]:
    cx = Context(binary)
    at = FindingsAt(findings(binary))
    records = [_syntax_error(p) if isinstance(p, ps.ProbeSyntaxError) else _point(cx, at, p) for p in points]
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": binary.info["path"],
        "verdict": overall([r["verdict"] for r in records]),
        "points": records,
    }


def overall(verdicts: list[str]) -> str:
    return max(verdicts, key=lambda v: EXIT[v] * 2 + (v == UNRESOLVED), default=Band.SAFE.label)


def _syntax_error(e: ps.ProbeSyntaxError) -> dict[str, Any]:
    return {
        "probe": e.text,
        "origin": e.origin,
        "verdict": UNRESOLVED,
        "errors": [f"syntax error at character {e.pos + 1}: {e.message}"],
        "pointer": e.pointer(),
        "landings": [],
        "findings": [],
        "notes": [],
    }


def _point(cx: Context, at: FindingsAt, point: ps.ProbePoint) -> dict[str, Any]:
    res = resolve(cx, point)
    variables = _variables(cx, res.landings)
    landings = [_landing(cx, at, res, *each) for each in zip(res.landings, variables, _address_reasons(cx, res))]
    own = point_reasons(cx, res)
    if res.landings:
        verdict = max([Band[d["band"].upper()] for d in landings] + [worst(own)]).label
    else:
        verdict = Band.SAFE.label if point.optional else UNRESOLVED
    return {
        "probe": point.text,
        "tool": point.tool,
        "origin": point.origin,
        "verdict": verdict,
        "errors": res.errors,
        "notes": res.notes + (["optional point (?): resolving to nothing is allowed"] if point.optional else []),
        "findings": [r.record() for r in own],
        "landings": landings,
    }


def _landing(
    cx: Context, at: FindingsAt, res: Resolution, lnd: Landing, variables: list[dict], here: list[Reason]
) -> dict[str, Any]:
    reasons: list[Reason] = at.at(lnd, res.point.tool) if lnd.fid >= 0 else []
    reasons += here + variable_reasons(variables, res.point.args)
    return {
        "address": hexa(lnd.address),
        "function": cx.fn_name[lnd.fid] if lnd.fid >= 0 else None,
        "in": cx.instance_symbol(lnd.instance) if lnd.instance >= 0 else None,
        "kind": lnd.kind,
        "how": lnd.how,
        "band": worst(reasons).label,
        "reasons": [r.record() for r in reasons],
        "variables": variables,
    }


def _address_reasons(cx: Context, res: Resolution) -> list[list[Reason]]:
    """What the address itself says at each landing: the kernel's refusal for kernel code, an
    instruction cut in two for user-space code (no kernel check stands in front of a uprobe)."""
    if res.point.target.startswith("process:"):
        return mid_instruction(cx, res.landings)
    c = refused.REFUSED_ADDRESS
    return [
        [Reason(c.name, c.band, found[0].message, refused.evidence(lnd.address, found))] if found else []
        for lnd, found in zip(res.landings, _refusals(cx, res))
    ]


def _refusals(cx: Context, res: Resolution) -> list[list[refused.Refusal]]:
    """What the kernel answers at each landing of a kernel or module point, for the point's
    tool; the blacklist's refusals are left to its own findings (kprobe-blacklist …)."""
    point = res.point
    none: list[list[refused.Refusal]] = [[] for _ in res.landings]
    if not res.landings:
        return none
    try:
        found = refused.refusals(cx, [lnd.address for lnd in res.landings])
    except ValueError:  # not a kernel image or module: no kprobes
        return none
    by_name = point.function is not None and point.address is None
    return [
        [r for r in refused.for_tool(rs, point.tool, by_name) if r.reason not in refused.BLACKLIST_REASONS]
        for rs in found
    ]


def scopes(cx: Context, landings: list[Landing]) -> list[int]:
    """The DIE whose variables a probe at each landing sees: its inline site, else its
    instance (``NO_DIE`` when no DWARF describes the code)."""
    site_die = cx.shared(_site_dies)
    return [
        int(site_die[lnd.site])
        if lnd.site >= 0
        else int(cx.inst_die[lnd.instance])
        if lnd.instance >= 0
        else int(NO_DIE)
        for lnd in landings
    ]


def _site_dies(cx: Context) -> np.ndarray:
    return cx.sites.column("die").to_numpy()


def _variables(cx: Context, landings: list[Landing]) -> list[list[dict]]:
    pairs = list(zip(scopes(cx, landings), (lnd.address for lnd in landings)))
    known = [i for i, (scope, _) in enumerate(pairs) if scope != int(NO_DIE)]
    out: list[list[dict]] = [[] for _ in pairs]
    if known:
        found = variables_at_many(cx.b, [pairs[i] for i in known])
        for i, vs in zip(known, found):
            out[i] = [asdict(v) for v in vs]
    return out

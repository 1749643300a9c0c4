"""Probe points across two builds: where each one lands in OLD and in NEW, and what that means
for a script written against OLD ("stops firing in 3 of its 5 callers in NEW").

Where each point lands in each build is :mod:`patchscope.probes.diff`; this module shapes the
records of ``patchscope diff --probes``.
"""

from __future__ import annotations

from typing import Any

from patchscope.index.binary import Binary
from patchscope.probes import syntax as ps
from patchscope.probes.diff import PointChange, Side, compare
from patchscope.probes.judge import UNRESOLVED


def document(old: Binary, new: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError]) -> list[dict[str, Any]]:
    return [_record(c) for c in compare(old, new, points)]


def _record(c: PointChange) -> dict[str, Any]:
    lost, gained = c.lost, c.gained
    return {
        "probe": c.probe,
        "old": _side(c.old),
        "new": _side(c.new),
        "lost": lost,
        "gained": gained,
        "summary": summary(c.old, c.new, len(lost), len(gained), _count(c.old)),
    }


def _side(s: Side) -> dict[str, Any]:
    return {"verdict": s.verdict, "places": _count(s), "errors": s.errors}


def _count(s: Side) -> int:
    return sum(s.places.values())


def summary(old: Side, new: Side, lost: int, gained: int, before: int) -> str:
    if old.verdict != UNRESOLVED and new.verdict == UNRESOLVED:
        return f"resolves in OLD, not in NEW: {'; '.join(new.errors) or 'no such place'}"
    if old.verdict == UNRESOLVED and new.verdict != UNRESOLVED:
        return "resolves only in NEW"
    parts = []
    if lost:
        parts.append(f"stops firing at {lost} of its {before} places in NEW")
    if gained:
        parts.append(f"fires at {gained} new place(s)")
    if old.verdict != new.verdict:
        parts.append(f"band {old.verdict} → {new.verdict}")
    return "; ".join(parts) or "unchanged"

"""Probe points across two builds: where each one lands in OLD and in NEW, and what that means
for a script written against OLD ("stops firing in 3 of its 5 callers in NEW").

A place is named so that it survives relinking: the function, the kind of place (entry, inline
site, line) and the code it is in by clone shape (``.N`` dropped) — never the address.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from patchscope.index.binary import Binary
from patchscope.index.builds import clone_shape
from patchscope.probes import syntax as ps
from patchscope.report import check


def document(old: Binary, new: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError]) -> list[dict[str, Any]]:
    before = check.document(old, points)["points"]
    after = check.document(new, points)["points"]
    return [compare(a, b) for a, b in zip(before, after)]


def _places(rec: dict[str, Any]) -> Counter[str]:
    return Counter(
        f"{lnd['function']} {lnd['kind']} in {clone_shape(lnd['in'])}"
        + (f" ({lnd['how']})" if lnd["kind"] == "statement" else "")
        for lnd in rec["landings"]
    )


def compare(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    was, now = _places(old), _places(new)
    lost, gained = sorted((was - now).elements()), sorted((now - was).elements())
    return {
        "probe": old["probe"],
        "old": {"verdict": old["verdict"], "places": sum(was.values()), "errors": old["errors"]},
        "new": {"verdict": new["verdict"], "places": sum(now.values()), "errors": new["errors"]},
        "lost": lost,
        "gained": gained,
        "summary": summary(old, new, len(lost), len(gained), sum(was.values())),
    }


def summary(old: dict[str, Any], new: dict[str, Any], lost: int, gained: int, before: int) -> str:
    if old["verdict"] != "unresolved" and new["verdict"] == "unresolved":
        return f"resolves in OLD, not in NEW: {'; '.join(new['errors']) or 'no such place'}"
    if old["verdict"] == "unresolved" and new["verdict"] != "unresolved":
        return "resolves only in NEW"
    parts = []
    if lost:
        parts.append(f"stops firing at {lost} of its {before} places in NEW")
    if gained:
        parts.append(f"fires at {gained} new place(s)")
    if old["verdict"] != new["verdict"]:
        parts.append(f"band {old['verdict']} → {new['verdict']}")
    return "; ".join(parts) or "unchanged"

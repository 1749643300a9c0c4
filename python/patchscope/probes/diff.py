"""Probe points across two builds: where each one lands in OLD and in NEW, and which places it
stops or starts firing at.

A place is named so that it survives relinking: the function, the kind of place (entry, inline
site, line) and the code it is in by clone shape (``.N`` dropped) — never the address.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from patchscope.index.binary import Binary
from patchscope.index.builds import clone_shape
from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.judge import UNRESOLVED, Judge, syntax_error, write_error
from patchscope.probes.resolve import Landing


@dataclass
class Side:
    """A point in one build: its verdict, why it does not resolve, the places it fires at."""

    verdict: str
    errors: list[str]
    places: Counter[str]


@dataclass
class PointChange:
    """A point in OLD and in NEW."""

    probe: str
    old: Side
    new: Side

    @property
    def lost(self) -> list[str]:
        return sorted((self.old.places - self.new.places).elements())

    @property
    def gained(self) -> list[str]:
        return sorted((self.new.places - self.old.places).elements())


def compare(old: Binary, new: Binary, points: list[ps.ProbePoint | ps.ProbeSyntaxError]) -> list[PointChange]:
    before, after = Judge(old), Judge(new)
    return [PointChange(p.text, _side(before, p), _side(after, p)) for p in points]


def _side(judge: Judge, point: ps.ProbePoint | ps.ProbeSyntaxError) -> Side:
    if isinstance(point, ps.ProbeSyntaxError):
        return Side(UNRESOLVED, [syntax_error(point)], Counter())
    v = judge(point)
    errors = v.resolution.errors + [write_error(e) for e in v.write_errors]
    return Side(v.verdict, errors, Counter(_place(judge.cx, lv.landing) for lv in v.landings))


def _place(cx: Context, lnd: Landing) -> str:
    function = cx.fn_name[lnd.fid] if lnd.fid >= 0 else None
    where = cx.instance_symbol(lnd.instance) if lnd.instance >= 0 else None
    return f"{function} {lnd.kind} in {clone_shape(where)}" + (f" ({lnd.how})" if lnd.kind == ps.STATEMENT else "")

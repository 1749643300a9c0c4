"""perf probe itself as the oracle of ``check``'s perf predictions: each point asked of
``perf probe -x/-k BINARY -D POINT`` (a dry run: nothing is registered, no root needed) and of
``patchscope.probes.resolve``, the answers compared as (addresses, or refused with perf's own
message). Used by tests/test_perf_oracle.py (the fixtures) and bench/perf_agreement.py (a vmlinux
sample, whose answers are kept in tests/data/)."""

from __future__ import annotations

import re
import subprocess
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from patchscope.index.context import Context
from patchscope.probes import perf
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import Landing, resolve


@dataclass(frozen=True)
class Answer:
    #: The addresses probed, sorted; None when the point is refused.
    addresses: tuple[int, ...] | None
    #: perf's reason for a refusal (its last warning; both lines of "sharing the address").
    message: str = ""
    #: How many distinct places perf wrote (a kernel name several statics share stands for
    #: all their addresses in ``addresses``).
    places: int = 0


_EVENT = re.compile(r"^[pr]:\S+ (\S+)$")


def perf_answer(target: list[str], point: str, symbols: dict[str, list[int]] | None = None) -> Answer:
    """perf's dry run; a kernel event names ``symbol+offset``, turned into addresses with
    ``symbols`` (a static name several functions share gives each candidate: see
    :func:`settle`)."""
    r = subprocess.run(["perf", "probe", *target, "-D", point], capture_output=True, text=True, timeout=300)
    lines = (r.stdout + r.stderr).splitlines()
    events = [m.group(1) for line in lines if (m := _EVENT.match(line))]
    said = [line.strip() for line in lines if not _EVENT.match(line) and "Error: Failed to add events" not in line]
    if r.returncode != 0:
        tail = said[-2:] if said and said[-1].startswith("Please try") else said[-1:]
        return Answer(None, " ".join(tail))
    return Answer(tuple(sorted({a for e in events for a in _addresses(e, symbols)})), places=len(set(events)))


def _addresses(place: str, symbols: dict[str, list[int]] | None) -> list[int]:
    where = place.rsplit(":", 1)[-1]
    if where.startswith("0x"):
        return [int(where, 16)]
    name, _, off = where.partition("+")
    assert symbols is not None, place
    return [base + int(off or "0", 0) for base in symbols[name]]


def settle(theirs: Answer, mine: Answer) -> Answer:
    """perf's answer with each ambiguous ``symbol+offset`` read as the candidate patchscope
    also found, when it found one (perf computed that very address, then wrote it by name)."""
    if theirs.addresses is None or mine.addresses is None:
        return theirs
    if len(mine.addresses) == theirs.places and set(mine.addresses) <= set(theirs.addresses):
        return mine
    return Answer(theirs.addresses)


def patchscope_answer(cx: Context, point: str) -> Answer:
    res = resolve(cx, ps.parse(point))
    if res.errors:
        return Answer(None, " ".join(_quoted(e) for e in res.errors))
    addresses = tuple(sorted({_asked(cx, lnd) for lnd in res.landings}))
    return Answer(addresses, places=len(addresses))


def _quoted(error: str) -> str:
    """The tool's own words inside ``perf: "..."``."""
    m = re.fullmatch(r'perf: "(.*)"', error)
    return m.group(1) if m else error


def _asked(cx: Context, lnd: Landing) -> int:
    return perf.asked_address(cx, lnd.kind, lnd.instance, lnd.how, lnd.address)


def function_points(cx: Context, names: list[str], lines: int) -> list[str]:
    """Every kind perf takes for each function: its entry, ``%return``, ``F:0`` and lines 1..N."""
    return [p for n in names for p in (n, f"{n}%return", *(f"{n}:{i}" for i in range(lines + 1)))]


def probed_names(cx: Context) -> list[str]:
    """Names of the functions with code: out-of-line or inlined."""
    return sorted({cx.fn_name[f] for f in range(len(cx.fn_name)) if cx.instances_of.get(f) or cx.sites_of(f).size})


def compare(
    cx: Context, target: list[str], points: list[str], symbols: dict[str, list[int]] | None = None
) -> list[tuple[str, Answer, Answer]]:
    """(point, perf's answer, patchscope's) for every point, perf asked four at a time."""
    with ThreadPoolExecutor(4) as pool:
        theirs = list(pool.map(lambda p: perf_answer(target, p, symbols), points))
    return [(p, t, patchscope_answer(cx, p)) for p, t in zip(points, theirs)]


def agrees(theirs: Answer, mine: Answer) -> bool:
    return settle(theirs, mine) == mine


def absolute(path: Path) -> str:
    return str(path.resolve())


def point_kind(point: str) -> str:
    """``function``, ``return`` or ``line`` (``F:0`` is a function entry to perf)."""
    if point.endswith("%return"):
        return "return"
    if ":" in point and not point.endswith(":0"):
        return "line"
    return "function"


# -- variables: perf probe -V ------------------------------------------------------------------

_AT = re.compile(r"^\t@<(\S+)>$")
_VAR = re.compile(r"^\t\t(?:.*)\t(\S+)$")

#: What ``perf probe -V`` answers: for each place its label — the ELF symbol holding it plus
#: the offset (``a+8``), the symbol's clone suffix cut off (perf names a user-space ``.part``
#: clone by its stem, a kernel one in full) — and the names listed there, sorted. None: no place.
Listing = tuple[tuple[str, tuple[str, ...]], ...]


def perf_variables(target: list[str], function: str) -> Listing | None:
    """``perf probe -V FUNC`` as perf printed it ("(null)": a place perf found no name for, and
    listed nothing at, is no place)."""
    r = subprocess.run(["perf", "probe", *target, "-V", function], capture_output=True, text=True, timeout=300)
    if r.returncode != 0:
        return None
    out: list[tuple[str, set[str]]] = []
    for line in r.stdout.splitlines():
        if m := _AT.match(line):
            out.append((_stem(m.group(1)), set()))
        elif (m := _VAR.match(line)) and out:
            out[-1][1].add(m.group(1))
    listing = tuple(sorted((label, tuple(sorted(v))) for label, v in out if not label.startswith("(null)")))
    return listing or None


def patchscope_variables(cx: Context, function: str) -> Listing | None:
    """What ``check`` predicts ``perf probe -V FUNC`` lists: each place of the point (written
    where perf asks for it) with every name :func:`perf.listed_variables` gives there."""
    res = resolve(cx, ps.parse(function))
    landings = [lnd for lnd in res.landings if not lnd.how.startswith("symbol ")]
    if res.errors or not landings:  # -V reads DWARF only: no symbol-table fallback
        return None
    found = perf.listed_variables(cx, [perf_scope(cx, lnd) for lnd in landings])
    seen: dict[int, tuple[str, tuple[str, ...]]] = {}
    for lnd, names in zip(landings, found):
        at = _asked(cx, lnd)
        if at not in seen:  # available_var_finder_overlap: an address once
            seen[at] = (_label(cx, at), tuple(sorted(names)))
    return tuple(sorted(seen.values()))


def _label(cx: Context, addr: int) -> str:
    name, _, off = cx.name_at(addr).partition("+")
    return _stem(f"{name}+{int(off or '0', 0)}")


def _stem(label: str) -> str:
    name, _, off = label.partition("+")
    return f"{name.split('.')[0]}+{off}"


def perf_scope(cx: Context, lnd: Landing) -> perf.PerfScope:
    return perf.perf_scope(cx, lnd.instance, lnd.site, _asked(cx, lnd))

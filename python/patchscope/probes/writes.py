"""Writes in probe handlers, and their verdicts at each place a point fires.

SystemTap handlers write target variables in guru mode (``stap -g``): ``$x = v``, ``$x->f = v``,
``$x[i] = v``, ``$return = v`` in a ``.return`` probe, and the compound forms (``+=``, ``|=``,
``++``, ``--`` …), which read and write. A write to ``$x`` stores into the location the DWARF
gives for ``x`` at the probed address; a write to ``$x->f`` or ``$x[i]`` stores into the memory
``x`` points to, which needs ``x`` readable there and is not followed further. Whether each
store takes is decided by :mod:`patchscope.rules.writes`; here the writes are read from the
handler's text and put together per point.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import Landing
from patchscope.rules.override import override_findings
from patchscope.rules.writes import (
    CODE_OF,
    NOT_WRITABLE,
    PARTIAL,
    TAKES,
    UNCHECKED,
    WRITE_PARTIAL,
    WriteVerdict,
    return_write,
)

#: Strings, comments and embedded C: nothing in them is a write.
_SKIP = re.compile(r'"(?:\\.|[^"\\])*"|#[^\n]*|//[^\n]*|/\*.*?\*/|%\{.*?%\}', re.S)
#: ``$x …op`` and ``++$x`` / ``--$x``: the target, its member or index path, the operator.
_WRITE = re.compile(
    r"(?<![$\w])(?P<pre>\+\+|--)?\s*\$(?P<name>[A-Za-z_]\w*)(?P<path>(?:\s*(?:->|\.)\s*\w+|\s*\[[^\]\n]*\])*)"
    r"\s*(?P<op>\+\+|--|(?:<<|>>|[-+*/%&|^])?=(?!=))?"
)

#: bpftrace's ``override(v)``: forces the function's return (rules/override.py).
_OVERRIDE = re.compile(r"(?<![\w$.])override\s*\(\s*(?P<value>[^()]*?)\s*\)")

#: A write outside guru mode: stap refuses to compile it.
GURU_NOTE = "stap runs a script that writes target variables only in guru mode (stap -g)"


@dataclass(frozen=True)
class Write:
    """One write in a handler."""

    #: the variable written (``return`` for ``$return``)
    name: str
    #: ``->f``, ``[i]`` …: the write goes through the pointer into memory; empty: into the variable
    path: str
    #: ``=``, ``+=``, ``++`` …
    op: str
    #: the write as written
    text: str

    @property
    def through_pointer(self) -> bool:
        return bool(self.path)


def writes_in(handler: str) -> list[Write]:
    """The writes to target variables in a handler's text, in order."""
    code = _SKIP.sub(lambda m: " " * len(m.group()), handler)
    out = []
    for m in _WRITE.finditer(code):
        op = m.group("pre") or m.group("op")
        if not op:
            continue
        path = re.sub(r"\s+", "", m.group("path") or "")
        out.append(Write(m.group("name"), path, op, m.group().strip()))
    for m in _OVERRIDE.finditer(code):
        out.append(Write("override", "", "override", m.group().strip()))
    return list(dict.fromkeys(out))


def override_value(point: ps.ProbePoint) -> tuple[bool, int | None]:
    """Whether the point forces its function's return (``fail_function:F``, ``override(v)`` in
    a handler), and the value when it is a literal."""
    if point.tool == "fail_function":
        given = [n for n in point.notes if n.startswith("retval=")]
        return True, int(given[0].split("=", 1)[1]) if given else None
    texts = [w.text for w in writes_in(point.handler) if w.name == "override"]
    if not texts:
        return False, None
    m = re.fullmatch(r"override\s*\(\s*(-?(?:0[xX][0-9a-fA-F]+|\d+))\s*\)", texts[0])
    return True, int(m.group(1), 0) if m else None


def override_reasons(cx: Context, point: ps.ProbePoint, lnd: Landing) -> list[tuple[Any, str, dict[str, Any]]]:
    """Why forcing the return at ``lnd`` fails or misses (rules/override.py)."""
    forces, value = override_value(point)
    if not forces:
        return []
    entry = cx.inst_low(lnd.instance) if lnd.instance >= 0 else lnd.address
    at_entry = lnd.kind == ps.ENTRY
    return override_findings(cx, point.tool, lnd.fid, entry, at_entry, value)


@dataclass
class LandingWrite:
    """One write judged at one landing."""

    write: Write
    verdict: WriteVerdict

    def record(self) -> dict[str, Any]:
        return {"write": self.write.text, "variable": self.write.name, **self.verdict.record()}


def judge_writes(
    cx: Context,
    point: ps.ProbePoint,
    landings: list[Landing],
    verdicts: list[dict[str, WriteVerdict]],
) -> list[list[LandingWrite]]:
    """Each write of the point's handler at each landing, given every variable's verdict there."""
    writes = writes_in(point.handler)
    out: list[list[LandingWrite]] = [[] for _ in landings]
    if not writes:
        return out
    returns: dict[int, WriteVerdict] = {}
    for lnd, found, mine in zip(landings, verdicts, out):
        for w in (w for w in writes if w.name != "override" or w.path):
            mine.append(LandingWrite(w, _one(cx, w, lnd, found, returns)))
    return out


def _one(
    cx: Context, w: Write, lnd: Landing, found: dict[str, WriteVerdict], returns: dict[int, WriteVerdict]
) -> WriteVerdict:
    if w.name == "return":
        if lnd.kind != ps.RETURN:
            return WriteVerdict(NOT_WRITABLE, "$return exists only in a .return probe")
        if lnd.instance < 0:
            return WriteVerdict(UNCHECKED, "no out-of-line instance: its callers are not known")
        if lnd.instance not in returns:
            returns[lnd.instance] = return_write(cx, lnd.instance)
        return returns[lnd.instance]
    v = found.get(w.name)
    if v is None:
        return WriteVerdict(NOT_WRITABLE, f"no variable {w.name} in scope here")
    if w.through_pointer and v.verdict != NOT_WRITABLE:
        return WriteVerdict(UNCHECKED, f"{w.text} stores into the memory {w.name} points to: not followed", v.evidence)
    return v


def write_reasons(landing_writes: list[LandingWrite]) -> list[tuple[Any, str, dict[str, Any]]]:
    """(code, message, evidence) of the findings the writes at one landing give."""
    out = []
    for lw in landing_writes:
        c = CODE_OF.get(lw.verdict.verdict)
        if c is not None:
            out.append((c, f"{lw.write.text}: {lw.verdict.why}", {"write": lw.write.text, **lw.verdict.evidence}))
    return out


def partial(per_landing: list[list[LandingWrite]], where: list[str]) -> list[tuple[Any, str, dict[str, Any]]]:
    """A write that takes at some landings and not at others: the point's own finding."""
    out = []
    texts = dict.fromkeys(lw.write.text for lws in per_landing for lw in lws)
    for text in texts:
        verdicts = [next((lw.verdict.verdict for lw in lws if lw.write.text == text), None) for lws in per_landing]
        took = [w for w, v in zip(where, verdicts) if v == TAKES]
        missed = [w for w, v in zip(where, verdicts) if v in CODE_OF and v != PARTIAL]
        if took and missed:
            message = f"{text} takes at {len(took)} place(s) and not at {len(missed)}: {', '.join(missed[:6])}"
            out.append((WRITE_PARTIAL, message, {"write": text, "takes": took, "does_not": missed}))
    return out

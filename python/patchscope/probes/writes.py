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
    does_not_fit,
    has_members,
    indexable,
    is_aggregate,
    is_scalar,
    return_write,
)

#: Strings, comments and embedded C: nothing in them is a write. One left open runs to the end
#: (as the script reader reads it): matched once, not again from each later start.
_SKIP = re.compile(r'"(?:\\.|[^"\\])*(?:"|\\?\Z)|#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z)|%\{.*?(?:%\}|\Z)', re.S)
#: ``$x …op`` and ``++$x`` / ``--$x``: the target, its member or index path, the operator.
#: Each repetition stops at a character it cannot take (spaces only after ``++``, an index at
#: the next ``[``), so that no start rescans a long run: a handler of hostile text is linear.
_WRITE = re.compile(
    r"(?<![$\w])(?:(?P<pre>\+\+|--)\s*)?\$(?P<name>[A-Za-z_]\w*)(?P<path>(?:\s*(?:->|\.)\s*\w+|\s*\[[^\[\]\n]*\])*)"
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
    """The writes to target variables in a handler's text, in order (each written once)."""
    code = _code(handler)
    out = [site.write for site in _sites(code)]
    for m in _OVERRIDE.finditer(code):
        out.append(Write("override", "", "override", m.group().strip()))
    return list(dict.fromkeys(out))


def _code(handler: str) -> str:
    """The handler with its strings, comments and embedded C blanked: offsets stay true."""
    return _SKIP.sub(lambda m: " " * len(m.group()), handler)


@dataclass(frozen=True)
class _Site:
    """A write where the handler has it: offsets of its ``$``, of its member or index path."""

    write: Write
    name_at: int
    path_at: int
    #: where the stored value starts (after ``=``), -1 for the other operators
    value_at: int


def _sites(code: str) -> list[_Site]:
    out = []
    for m in _WRITE.finditer(code):
        op = m.group("pre") or m.group("op")
        if not op:
            continue
        raw = m.group("path") or ""
        path = re.sub(r"\s+", "", raw)
        path_at = m.start("path") + len(raw) - len(raw.lstrip())
        value_at = m.end("op") if m.group("op") == "=" else -1
        out.append(_Site(Write(m.group("name"), path, op, m.group().strip()), m.start("name") - 1, path_at, value_at))
    return out


#: A literal stored whole: a string (adjacent ones are one), or an integer (decimal, 0x hex,
#: 0 octal), alone up to the statement's end.
_LITERAL = re.compile(
    r'\s*(?:(?P<string>"(?:\\.|[^"\\])*"(?:\s*"(?:\\.|[^"\\])*")*)|(?P<number>-?\s*(?:0[xX][0-9a-fA-F]+|\d+)))'
)
_STATEMENT_END = re.compile(r"\s*(?:[;}\n]|\Z|(?=[$@A-Za-z_]))")
#: ``@defined($x)``, ``@choose_defined($a, $b)``: the handler allows for ``$x`` being absent.
_GUARDED = re.compile(r"@(?:defined|choose_defined)\s*\(([^;{}]{0,500}?)\)")


def write_errors(
    point: ps.ProbePoint,
    places: list[str],
    landings: list[Landing],
    variables: list[list[dict[str, Any]]],
    returns: list[str | None],
    arch: str,
) -> list[ps.ProbeSyntaxError]:
    """The handler's writes that cannot be what its author meant, each an error with a caret
    under the offending text: a variable that does not exist where the probe fires, a field
    or an index of a number, a value the variable's type cannot hold — ``$return`` too, by
    the type each return landing's function returns (``returns``: None elsewhere), and none
    when it returns ``void``. stap refuses the first two ("unable to find local", "invalid
    access"), and stores the low bytes of the third.
    Only SystemTap's ``$x`` are target variables (bpftrace's are its own scratch ones), and
    only at landings whose variables the DWARF gives (``kprobe.function`` has none).
    ``places`` names each landing for the messages."""
    if point.tool != "stap" or point.kind == "kprobe" or "$" not in point.handler:
        return []
    handler, code = point.handler, _code(point.handler)
    guarded = {v for g in _GUARDED.findall(code) for v in re.findall(r"\$(\w+)", g)}
    # each landing's variables by name, once: a point may land at thousands of places
    known = [
        (place, {v["name"]: v for v in vs if v["state"] != "out-of-scope"})
        for place, lnd, vs in zip(places, landings, variables)
        if lnd.instance >= 0 or lnd.site >= 0
    ]
    found: dict[tuple[int, str], None] = {}
    for site in _sites(code):
        name = site.write.name
        value = _value(site, handler, code)
        if name == "return":
            for kind in dict.fromkeys(t for t in returns if t is not None):
                bad = _misfit(site, kind, value, arch)
                if bad:
                    found[bad] = None
            continue
        absent = [(place, vs) for place, vs in known if name not in vs]
        if absent and name not in guarded:
            found[site.name_at, _absent(name, absent, len(known))] = None
        for kind in dict.fromkeys(vs[name]["type"] for _, vs in known if name in vs):
            bad = _misfit(site, kind, value, arch)
            if bad:
                found[bad] = None
    return [_caret(point, handler, at, message) for at, message in found]


def _absent(name: str, absent: list[tuple[str, dict[str, Any]]], of: int) -> str:
    """Where ``$name`` does not exist, and what does there."""
    place, vs = absent[0]
    if len(absent) < of:
        shown = ", ".join(p for p, _ in absent[:4]) + (" …" if len(absent) > 4 else "")
        return f"no variable ${name} at {len(absent)} of the {of} places the probe fires: {shown}"
    here = sorted(f"${v}" for v in vs)
    seen = f"in scope there: {', '.join(here[:8])}{' …' if len(here) > 8 else ''}" if here else "none is in scope"
    others = "" if of == 1 else " (nor at the other place)" if of == 2 else f" (nor at the {of - 1} other places)"
    return f"no variable ${name} at {place}{others}: {seen}"


def _value(site: _Site, handler: str, code: str) -> tuple[int, str | int, bool] | None:
    """(offset, value, written in hex) of the literal a plain ``=`` stores: a string's text as
    written, or an integer; ``None`` for an expression, whose value is not known here, or
    another operator."""
    if site.write.path or site.value_at < 0:
        return None
    m = _LITERAL.match(handler, site.value_at)
    if not m or not _STATEMENT_END.match(code, m.end()):
        return None
    if m.group("string"):
        return m.start("string"), m.group("string"), False
    digits = re.sub(r"\s+", "", m.group("number"))
    value = _integer(digits)
    return (m.start("number"), value, "x" in digits.lower()) if value is not None else None


def _misfit(site: _Site, kind: str, value: tuple[int, str | int, bool] | None, arch: str) -> tuple[int, str] | None:
    """(offset in the handler, why) when the write does not fit the variable's type ``kind``."""
    name, path = site.write.name, site.write.path
    if kind == "void":
        return site.name_at, f"${name}: the function returns void: there is no value to write"
    if not path and is_aggregate(kind):
        return site.name_at, f"${name} is {kind}: a whole struct cannot be written, only a member of it ($x->f)"
    if path.startswith(("->", ".")) and has_members(kind) is False:
        return site.path_at, f"${name} is {kind}, no struct nor a pointer to one: it has no field {path.lstrip('.->')}"
    if path.startswith("[") and indexable(kind) is False:
        return site.path_at, f"${name} is {kind}, neither an array nor a pointer: {path} indexes nothing"
    if value is None:
        return None
    at, literal, hex_digits = value
    if isinstance(literal, str):
        return (at, f"${name} is {kind}: a string cannot be stored in it") if is_scalar(kind) else None
    why = does_not_fit(kind, literal, hex_digits, arch)
    return (at, f"${name}: {why}") if why else None


#: How much of a long handler line an error shows either side of its caret.
_SHOWN = 72


def _caret(point: ps.ProbePoint, handler: str, at: int, message: str) -> ps.ProbeSyntaxError:
    """The error on the handler's line that holds offset ``at`` (tabs as one space each, so
    that the caret stands under the character); of a long line, the part around the caret,
    cut with ``…`` — found within that window, so that thousands of errors on a megabyte
    line cost no more than the line."""
    low, high = max(at - _SHOWN, 0), min(at + _SHOWN, len(handler))
    start = handler.rfind("\n", low, at) + 1 or low
    end = handler.find("\n", at, high)
    end = high if end < 0 else end
    line = handler[start:end].replace("\t", " ")
    lead = len(line) - len(line.lstrip())
    text, pos = line.strip(), at - start - lead
    if start == low and low > 0 and handler[low - 1] != "\n":
        text, pos = "…" + text, pos + 1
    if end == high and high < len(handler) and handler[high] != "\n":
        text += "…"
    e = ps.ProbeSyntaxError(text, pos, message)
    e.origin = point.origin
    return e


def _integer(digits: str) -> int | None:
    """A stap integer literal: decimal, ``0x`` hex, or octal with a leading ``0`` (``None``
    for ``09``, which is none); past 40 digits, a value no type holds (Python refuses to
    convert 4,300 digits, and no variable is wider than 128 bits)."""
    negative, body = digits.startswith("-"), digits.lstrip("-")
    if len(body) > 40:
        value = 1 << 200
    elif len(body) > 1 and body[0] == "0" and body[1] not in "xX":
        if not set(body) <= set("01234567"):
            return None
        value = int(body, 8)
    else:
        value = int(body, 0)
    return -value if negative else value


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

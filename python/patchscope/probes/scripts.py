"""Whole probe scripts, read as their tools read them: SystemTap ``.stp`` files and bpftrace
programs (``.bt``).

Each reader returns the script's probes as :class:`ScriptProbe` — where the probe is, the
attach points its header names as written, and its action block (text and offset), whose
:meth:`ScriptProbe.statements` a later pass can search (``override(…)``, ``$var = v``) — and,
from them, the probe points, each a :class:`~patchscope.probes.syntax.ProbePoint` or the
:class:`~patchscope.probes.syntax.ProbeSyntaxError` that says where it is malformed. Comments
(``#``, ``//``, ``/* */``), strings and SystemTap's embedded C (``%{ … %}``) are matched whole
in one left-to-right pass, so nothing inside them is read as code, and a megabyte of hostile
script is read in linear time.

SystemTap's preprocessor (``%( COND %? … %: … %)``, parse.cxx ``eval_pp_conditional``) is
evaluated against the build the script is checked on (:class:`Build`): ``kernel_v``/
``kernel_vr`` by ``strverscmp``, ``arch`` by glob, ``CONFIG_*`` when the build's config is known
— otherwise the branch is unknown, the ``%?`` branch is read and its points say so. Script
arguments (``$1`` raw, ``@1`` as a string, ``$#``) come from ``--arg``.
"""

from __future__ import annotations

import bisect
import fnmatch
import functools
import re
import shlex
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from patchscope.probes import syntax as ps
from patchscope.probes.syntax import ProbeFileError, ProbePoint, ProbeSyntaxError

Point = ProbePoint | ProbeSyntaxError


@dataclass(frozen=True)
class Build:
    """What a script's preprocessor conditions ask of the build it will run on."""

    #: ``uname -r`` of the kernel (``6.1.0-56-amd64``), when the binary states it.
    release: str | None = None
    #: SystemTap's name of the architecture (``x86_64``, ``arm64``, ``powerpc``).
    arch: str | None = None
    #: ``CONFIG_*`` → value (``y``, ``m``, a number or string), when the build's config is known.
    config: dict[str, str] | None = None
    #: Script arguments (``stap script.stp ARG…``, ``bpftrace script.bt ARG…``).
    args: tuple[str, ...] = ()


#: SystemTap's architecture names (util.cxx ``normalize_machine``) for the binary's.
STAP_ARCH = {
    "x86_64": "x86_64",
    "aarch64": "arm64",
    "ppc64": "powerpc",
    "ppc64le": "powerpc",
    "riscv64": "riscv",
    "s390x": "s390",
    "arm": "arm",
}


def build_of(info: dict[str, str], args: tuple[str, ...] = ()) -> Build:
    """The build a binary states: its kernel release, architecture, and the config in a
    ``config-RELEASE`` (or ``config``) file beside it, as Debian ships one in /boot."""
    release = info.get("kernel_release") or None
    config = None
    if release and info.get("path"):
        here = Path(info["path"]).parent
        found = [c for c in (here / f"config-{release}", here / "config") if c.is_file()]
        config = read_config(found[0]) if found else None
    return Build(release, STAP_ARCH.get(info.get("arch", "")), config, args)


def read_config(path: Path) -> dict[str, str]:
    """A kernel ``.config`` file: ``CONFIG_X=v`` lines (quotes dropped); ``# … is not set`` is
    absent, as stap reads it."""
    out = {}
    for line in path.read_text(errors="replace").splitlines():
        m = re.match(r"(CONFIG_\w+)=(.*)", line)
        if m:
            out[m.group(1)] = m.group(2).strip('"')
    return out


@dataclass(frozen=True)
class Statement:
    """One statement of an action block: its offset in the script, and its text."""

    at: int
    text: str


@dataclass(frozen=True)
class ScriptProbe:
    """One probe of a script: its attach points as written, and its action block."""

    #: ``stap`` or ``bpftrace``.
    language: str
    #: The line of the header's first attach point.
    line: int
    #: (offset in the script, text) of each attach point the header names, as written.
    points: tuple[tuple[int, str], ...]
    #: The action block between its braces, and the offset of its first character.
    body: str
    body_at: int
    #: stap ``probe NAME = …`` defines the alias NAME.
    alias: str | None = None
    #: bpftrace's ``/predicate/``.
    predicate: str | None = None

    def statements(self) -> list[Statement]:
        """The block's statements, cut at ``;`` and braces outside parentheses (and, in
        SystemTap, where a statement needs no ``;``, at line ends); comments are left out."""
        return list(_statements(self.body, self.body_at, self.language == "stap"))


# -- the one tokenizer ---------------------------------------------------------------------------

#: Comments, strings and SystemTap's embedded C; an unterminated one runs to the end of the
#: script (where the tool stops with an error): matched at once, never rescanned from each
#: later position.
_OPAQUE = (
    r"(?P<comment>(?<![$@])\#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z))"
    r'|(?P<string>"(?:\\.|[^"\\\n])*(?:"|\\?\Z|(?=\n)))'
    r"|(?P<embedded>%\{.*?(?:%\}|\Z))"
)
_TOKENS = re.compile(
    _OPAQUE
    + r"|(?P<space>\s+)|(?P<open>\{)|(?P<close>\})|(?P<semi>;)|(?P<word>[\w@$]+)|(?P<punct>[^\w\s{}\"#/%@$;]+|[/%#])",
    re.S,
)
#: Only what the probe reader acts on: the opaque tokens, braces, parentheses and the word
#: ``probe``. Every character it passes over would have been a space, word or punctuation
#: token of ``_TOKENS`` (none of those can hold the first character of these), so the two
#: cut a script alike, and the reader's Python loop sees a handful of tokens per probe.
_SIGNIFICANT = re.compile(
    _OPAQUE + r"|(?P<open>\{+)|(?P<close>\}+)|(?P<paren>[()])|(?P<probe>(?<![\w@$])probe(?![\w@$]))",
    re.S,
)
#: Everything up to the next brace outside comments, strings and embedded C, in one match
#: (nothing follows the repetition, so it never backtracks).
_TO_BRACE = re.compile(
    r'(?:[^{}"#/%]+|(?<![$@])\#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\\n])*(?:"|\\?\Z|(?=\n))'
    r"|%\{.*?(?:%\}|\Z)|[#/%])*",
    re.S,
)


def _tokens(source: str, pos: int = 0) -> Iterator[re.Match[str]]:
    while pos < len(source):
        m = _TOKENS.match(source, pos)
        assert m  # every character starts some token
        pos = m.end()
        yield m


def blank_comments(text: str) -> str:
    """``text`` with its comments turned to spaces (line ends kept): offsets stay true."""
    if "#" not in text and "/" not in text:  # no comment can start: most headers
        return text
    return "".join(re.sub(r"[^\n]", " ", m.group()) if m.lastgroup == "comment" else m.group() for m in _tokens(text))


def _block_end(source: str, start: int) -> int:
    """The offset just past the ``}`` closing the block that opens at ``start`` (a ``{``):
    the text between braces is passed over by one regular-expression match."""
    depth, pos, n = 0, start, len(source)
    while pos < n:
        pos = _TO_BRACE.match(source, pos).end()  # type: ignore[union-attr]  # matches the empty string
        if pos >= n:
            break
        depth += 1 if source[pos] == "{" else -1
        pos += 1
        if depth <= 0:
            return pos
    return n


def _statements(body: str, at: int, line_ends: bool) -> Iterator[Statement]:
    depth, start = 0, 0
    parts: list[str] = []
    for m in _tokens(body):
        kind, text = m.lastgroup, m.group()
        cut = kind in ("open", "close") or (kind == "semi" and depth == 0)
        cut |= line_ends and kind == "space" and "\n" in text and depth == 0
        if kind == "punct":
            depth = max(depth + text.count("(") + text.count("[") - text.count(")") - text.count("]"), 0)
        if cut:
            stmt = "".join(parts).strip()
            if stmt:
                yield Statement(at + start + _lead(parts), stmt)
            parts, start = [], m.end()
        elif kind != "comment":
            parts.append(text)
        else:
            parts.append(" " * len(text))
    stmt = "".join(parts).strip()
    if stmt:
        yield Statement(at + start + _lead(parts), stmt)


def _lead(parts: list[str]) -> int:
    joined = "".join(parts)
    return len(joined) - len(joined.lstrip())


class _Lines:
    """Line numbers of offsets, by bisection over the line starts."""

    def __init__(self, source: str) -> None:
        self.starts = [m.end() for m in re.finditer("\n", source)]

    def __call__(self, at: int) -> int:
        return bisect.bisect_right(self.starts, at) + 1


# -- SystemTap -----------------------------------------------------------------------------------


def stp_probes(source: str) -> list[ScriptProbe]:
    """Every top-level ``probe`` statement of a (preprocessed) SystemTap script."""
    found = []
    depth, pos, n = 0, 0, len(source)
    line = _Lines(source)
    while pos < n:
        m = _SIGNIFICANT.search(source, pos)
        if not m:
            break
        pos, kind = m.end(), m.lastgroup
        if kind == "open":
            depth += pos - m.start()
        elif kind == "close":
            depth = max(depth - (pos - m.start()), 0)
        elif kind == "probe" and depth == 0:
            header_end = _stp_header_end(source, pos)
            done = _block_end(source, header_end)  # read on after it: its braces balance
            header = blank_comments(source[pos:header_end])
            alias, points_at = _stp_header(header)
            points = tuple((pos + at, text) for at, text in points_at)
            body_at = min(header_end + 1, n)
            body = source[body_at : max(done - 1, body_at)]
            first = points[0][0] if points else m.start()
            found.append(ScriptProbe("stap", line(first), points, body, body_at, alias))
            pos = done
    return found


#: A header with no comment, brace group or nested parentheses, up to the ``{`` after it: the
#: common case, matched at once (the token walk below decides the others).
_PLAIN_HEADER = re.compile(
    # one character per step, so that a header without its brace fails in linear time
    r'(?:[^{}()"#/%]|"(?:\\.|[^"\\\n])*"|\((?:[^{}()"#/%]|"(?:\\.|[^"\\\n])*")*\))*\{',
    re.S,
)


def _stp_header_end(source: str, pos: int) -> int:
    """The offset of the ``{`` that opens the probe's body: not one inside parentheses, nor a
    brace group's, which follows a ``.`` (``kernel.{function("a"), …}``) or opens within one."""
    plain = _PLAIN_HEADER.match(source, pos)
    if plain and source[pos : plain.end() - 1].rstrip()[-1:] not in (".", ",", ""):
        return plain.end() - 1
    paren, group, last = 0, 0, ""
    for m in _SIGNIFICANT.finditer(source, pos):
        kind = m.lastgroup
        gap = source[pos : m.start()].rstrip()  # words and punctuation: the last one counts
        if gap:
            last = gap[-1]
        pos = m.end()
        if kind == "open":
            for at in range(m.start(), pos):  # a run of braces, one at a time
                if paren == 0:
                    if group == 0 and last not in (".", ",", ""):  # "" : a header may open with a group
                        return at
                    group += 1
                last = "{"
            continue
        if kind == "close":
            group = max(group - (pos - m.start()), 0)
        elif kind == "paren":
            paren += 1 if m.group() == "(" else -1
        if kind != "comment":
            last = m.group()[-1]
    return len(source)


def _stp_header(header: str) -> tuple[str | None, list[tuple[int, str]]]:
    """(alias name, [(offset, point text)]) of a header: ``NAME = P, …`` or ``P, …``."""
    m = re.match(r"\s*([\w.]+)\s*\+?=(?!=)", header)
    is_alias = bool(m) and '"' not in header[: m.end()]  # type: ignore[union-attr]
    start = m.end() if m and is_alias else 0
    out, at = [], start
    for piece in ps.split_top(header[start:], ","):
        if piece.strip():
            out.append((at + len(piece) - len(piece.lstrip()), piece.strip()))
        at += len(piece) + 1
    return (m.group(1) if m and is_alias else None), out


#: ``$name`` in a handler: a target variable read at the probe (``$$vars``, ``$return`` are not).
_TARGET_VAR = re.compile(r"(?<![$\w])\$(?!return\b)([A-Za-z_]\w*)")
#: ``@defined($x)``, ``@choose_defined($a, $b)``: a variable that may be absent (up to 500
#: characters: an unclosed one must not be rescanned to the end from each of thousands).
_GUARD = re.compile(r"@(?:defined|choose_defined)\s*\(([^;{}]{0,500}?)\)")


def target_reads(body: str) -> list[str]:
    """The target variables a handler reads unguarded: one that appears in ``@defined`` or
    ``@choose_defined`` may be absent, and stap compiles the other branch."""
    text = blank_comments(body)
    guarded = {v for g in _GUARD.findall(text) for v in _TARGET_VAR.findall(g)}
    return [v for v in dict.fromkeys(_TARGET_VAR.findall(text)) if v not in guarded]


def stp_probe_points(source: str, name: str = "script.stp", build: Build | None = None) -> list[Point]:
    """Every probe point of a SystemTap script, preprocessed against ``build``, with plain
    aliases (``probe a = kernel.…``) expanded; a point that does not parse is returned as its
    error, the others still are."""
    build = build or Build()
    text, unknown = preprocess(source, build)
    probes = stp_probes(text)
    line = _Lines(text)
    aliases = {p.alias: p.points for p in probes if p.alias}
    todo: list[tuple[int, int, str, tuple[str, ...], str | None, str]] = []
    for probe in probes:
        if probe.alias:
            continue
        reads = tuple(target_reads(probe.body))
        header = ", ".join(t for _, t in probe.points) if len(probe.points) > 1 else None
        for at, written in probe.points:
            expanded = aliases.get(written.rstrip("?! "), ((at, written),))
            if len(todo) + len(expanded) > ps.MAX_POINTS:
                raise ProbeFileError(f"{name}: more than {ps.MAX_POINTS:,} probe points once aliases are expanded")
            todo += [(at, at2, point_text, reads, header, probe.body) for at2, point_text in expanded]
    out: list[Point] = []
    notes_at = _covering(unknown, [t[1] for t in todo])
    for at, at2, point_text, reads, header, body in todo:
        notes = notes_at[at2]
        where = f"{name}:{line(at)}"
        out += _stap_from(_substitute(point_text, build.args), where, reads, header, notes, body)
    return out


def _covering(ranges: list[tuple[int, int, str]], offsets: list[int]) -> dict[int, tuple[str, ...]]:
    """For each offset, the ``why`` of every range ``lo <= at < hi`` holding it, in the
    ranges' order: one sweep over both sorted, not each offset against each range (a script
    of 20,000 conditional probes took 8 s)."""
    order = sorted(range(len(ranges)), key=lambda i: ranges[i][0])
    out: dict[int, tuple[str, ...]] = {}
    active: list[int] = []  # the ranges begun before the offset: preprocessor ranges nest
    k = 0
    for at in sorted(set(offsets)):
        while k < len(order) and ranges[order[k]][0] <= at:
            active.append(order[k])
            k += 1
        active = [i for i in active if ranges[i][1] > at]  # ended ranges end for every later offset
        out[at] = tuple(ranges[i][2] for i in sorted(active))
    return out


def _stap_from(
    text: str | ProbeSyntaxError,
    origin: str,
    reads: tuple[str, ...],
    header: str | None,
    notes: tuple[str, ...],
    handler: str,
) -> list[Point]:
    if isinstance(text, ProbeSyntaxError):
        text.origin = origin
        return [text]
    try:
        points = _stap_points(text)
    except ProbeSyntaxError as e:
        e.origin = origin
        return [e]
    return [
        _evolve(p, origin=origin, args=p.args + reads, header=header, notes=p.notes + notes, handler=handler)
        for p in points
    ]


_FIELDS = frozenset(f.name for f in fields(ProbePoint))


def _evolve(point: ProbePoint, **changes: object) -> ProbePoint:
    """``dataclasses.replace`` without its walk over every field and its ``__init__``: a copy
    for each of a script's points (a third of the time of reading 32,000 probes went there).
    ``ProbePoint`` has no ``__post_init__`` nor slots, so its ``__dict__`` is the point."""
    assert changes.keys() <= _FIELDS, changes.keys() - _FIELDS
    new = object.__new__(ProbePoint)
    new.__dict__.update(point.__dict__, **changes)
    return new


@functools.lru_cache(maxsize=1024)
def _stap_points(text: str) -> tuple[ps.ProbePoint, ...]:
    """A point written many times in a script (each use of an alias, a generated script) is
    parsed once; the points are frozen, so sharing them is safe."""
    return tuple(ps.stap_points(text))


def _substitute(text: str, args: tuple[str, ...]) -> str | ProbeSyntaxError:
    """``$N`` (the argument as written) and ``@N`` (as a string) in a probe point; an argument
    not given is stap's "command line argument index N out of range"."""
    if "$" not in text and "@" not in text:
        return text
    for m in re.finditer(r"[$@](\d+)", text):
        n = int(m.group(1))
        if not 1 <= n <= len(args):
            return ProbeSyntaxError(text, m.start(), f"script argument {m.group()} not given (--arg)")

    def value(m: re.Match[str]) -> str:
        arg = args[int(m.group(1)) - 1]
        return arg if m.group().startswith("$") else '"' + arg.replace('"', '\\"') + '"'

    return re.sub(r"[$@](\d+)", value, text)


# -- SystemTap's preprocessor ---------------------------------------------------------------------

_PP = re.compile(
    r'(?P<skip>(?<![$@])\#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\\n])*(?:"|\\?\Z|(?=\n))|%\{.*?(?:%\}|\Z))'
    r"|(?P<define>@define\s+\w+(?:\s*\(\s*(?:\w+\s*(?:,\s*\w+\s*)*)?\))?\s*%\()|(?P<open>%\()|(?P<then>%\?)|(?P<orelse>%:)|(?P<close>%\))",
    re.S,
)


@dataclass
class _Frame:
    start: int
    macro: bool = False
    cond_end: int = -1
    else_at: int = -1
    value: bool | None = True
    why: str = ""
    nested: list[tuple[int, int]] = field(default_factory=list)


def preprocess(source: str, build: Build) -> tuple[str, list[tuple[int, int, str]]]:
    """``source`` with the branches the preprocessor drops, and ``@define`` bodies, turned to
    spaces (line ends kept, so offsets and lines stay true); and the ranges read on an unknown
    condition, with why."""
    blank: list[tuple[int, int]] = []
    unknown: list[tuple[int, int, str]] = []
    stack: list[_Frame] = []
    for m in _PP.finditer(source):
        kind = m.lastgroup
        if kind == "define" or kind == "open":
            stack.append(_Frame(m.start(), macro=kind == "define", cond_end=m.end()))
        elif kind == "then" and stack and not stack[-1].macro:
            f = stack[-1]
            f.value, f.why = evaluate(source[f.cond_end : m.start()], build)
            blank.append((f.start, m.end()))
            f.cond_end = m.end()
        elif kind == "orelse" and stack and not stack[-1].macro:
            stack[-1].else_at = m.start()
        elif kind == "close" and stack:
            f = stack.pop()
            _close(f, m, blank, unknown)
    out, pos = [], 0
    for lo, hi in sorted(blank):
        if hi <= pos:
            continue
        lo = max(lo, pos)
        out += [source[pos:lo], re.sub(r"[^\n]", " ", source[lo:hi])]
        pos = hi
    out.append(source[pos:])
    return "".join(out), unknown


def _close(f: _Frame, m: re.Match[str], blank: list[tuple[int, int]], unknown: list[tuple[int, int, str]]) -> None:
    if f.macro:
        blank.append((f.start, m.end()))
        return
    then_end = f.else_at if f.else_at >= 0 else m.start()
    if f.value is False:
        blank.append((f.cond_end, then_end + 2 * (f.else_at >= 0)))  # the %: too
    else:
        blank.append((then_end, m.start()))
        if f.value is None:
            unknown.append((f.cond_end, then_end, f"preprocessor: {f.why}; the %? branch was read"))
    blank.append((m.start(), m.end()))


#: The SystemTap whose rules ``probes/stap.py`` transcribes: ``systemtap_v`` in a condition.
SYSTEMTAP_VERSION = "4.8"

_TERM = re.compile(r'\s*(?P<l>"[^"]*"|[\w$@#]+)\s*(?P<op>==|!=|<=|>=|<|>)\s*(?P<r>"[^"]*"|-?\w+)\s*\Z')


def evaluate(cond: str, build: Build) -> tuple[bool | None, str]:
    """A condition: terms joined by ``&&`` and ``||`` (``&&`` binds first), each
    ``L OP R``; three-valued, an unknown term making only what it decides unknown."""
    whys: list[str] = []
    any_true, unknown = False, False
    for alternative in cond.split("||"):
        value: bool | None = True
        for term in alternative.split("&&"):
            v, why = _term(term, build)
            if why:
                whys.append(why)
            value = False if (value is False or v is False) else (None if (value is None or v is None) else True)
        any_true |= value is True
        unknown |= value is None
    if any_true:
        return True, ""
    return (None, "; ".join(whys) or f"{cond.strip()} is unknown") if unknown else (False, "")


def _term(term: str, build: Build) -> tuple[bool | None, str]:
    m = _TERM.match(term)
    if not m:
        return None, f"{term.strip()!r} is not evaluated here"
    left, op, right = m.group("l"), m.group("op"), m.group("r").strip('"')
    if left in ("kernel_v", "kernel_vr"):
        if not build.release:
            return None, f"{left} unknown (the binary states no kernel release)"
        target = build.release if left == "kernel_vr" else build.release.split("-")[0]
        return _version_compare(target, op, right), ""
    if left == "arch":
        if not build.arch:
            return None, "arch unknown"
        return fnmatch.fnmatchcase(build.arch, right) == (op == "=="), ""
    if left.startswith("CONFIG_"):
        if build.config is None:
            return None, f"{left} unknown (no IKCONFIG nor config-* file beside the binary)"
        return fnmatch.fnmatchcase(build.config.get(left, ""), right) == (op == "=="), ""
    if left in ("$#", "@#"):
        return _compare(len(build.args), op, int(right) if right.lstrip("-").isdigit() else 0), ""
    if left == "systemtap_v":  # stap's --compatible version, by default its own
        return _version_compare(SYSTEMTAP_VERSION, op, right), ""
    if left == "runtime":
        return fnmatch.fnmatchcase("kernel", right) == (op == "=="), ""
    return None, f"{left} unknown here"


def _version_compare(target: str, op: str, query: str) -> bool:
    """stap's ``kernel_v``: glob for ``==``/``!=`` with a wildcard, else ``strverscmp``."""
    if any(c in query for c in "*?["):
        return fnmatch.fnmatchcase(target, query) == (op == "==")
    return _compare(_version_key(target), op, _version_key(query))


def _version_key(v: str) -> tuple[tuple[int, int | str], ...]:
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in re.findall(r"\d+|\D+", v))


def _compare(a: object, op: str, b: object) -> bool:
    ops: dict[str, Callable[[object, object], bool]] = {
        "==": lambda x, y: x == y,
        "!=": lambda x, y: x != y,
        "<": lambda x, y: x < y,  # type: ignore[operator]
        ">": lambda x, y: x > y,  # type: ignore[operator]
        "<=": lambda x, y: x <= y,  # type: ignore[operator]
        ">=": lambda x, y: x >= y,  # type: ignore[operator]
    }
    return ops[op](a, b)


# -- bpftrace -------------------------------------------------------------------------------------

#: Top-level items of a bpftrace program that are not probes, and how far each runs.
_BT_NOT_PROBES = {
    "struct": "block",
    "union": "block",
    "enum": "block",
    "typedef": "semicolon",
    "config": "block",
    "import": "semicolon",
    "fn": "block",
    "macro": "block",
    "let": "semicolon",
}


def bt_probes(source: str) -> list[ScriptProbe]:
    """Every probe of a bpftrace program (parser.cpp ``parse_probe``): attach points up to the
    predicate or the block; C definitions, ``config``, ``fn`` and ``macro`` skipped."""
    found = []
    line = _Lines(source)
    pos = 0
    while pos < len(source):
        m = _TOKENS.match(source, pos)
        assert m
        kind = m.lastgroup
        if kind in ("space", "comment", "semi", "close"):
            pos = m.end()
            continue
        skip = _BT_NOT_PROBES.get(m.group()) if kind == "word" else None
        # found only when needed: 10,000 typedefs each looking for the next brace took 78 s
        brace = -1 if skip == "semicolon" else _next_brace(source, pos)
        if skip == "semicolon" or (skip == "block" and brace < 0):
            pos = _after_semicolon(source, pos)
            continue
        if brace < 0:
            break
        end = _block_end(source, brace)
        if skip is None:
            header = blank_comments(source[pos:brace])
            points, predicate = _bt_header(header, pos)
            first = points[0][0] if points else pos
            found.append(
                ScriptProbe(
                    "bpftrace",
                    line(first),
                    points,
                    source[brace + 1 : max(end - 1, brace + 1)],
                    brace + 1,
                    predicate=predicate,
                )
            )
        pos = end
    return found


def _next_brace(source: str, pos: int) -> int:
    """The next ``{`` outside comments and strings, passing over ``}``, or -1."""
    while pos < len(source):
        pos = _TO_BRACE.match(source, pos).end()  # type: ignore[union-attr]  # matches the empty string
        if pos < len(source) and source[pos] == "{":
            return pos
        pos += 1
    return -1


def _after_semicolon(source: str, pos: int) -> int:
    depth = 0
    for m in _tokens(source, pos):
        depth += (m.lastgroup == "open") - (m.lastgroup == "close")
        if depth == 0 and m.lastgroup == "semi":
            return m.end()
    return len(source)


def _bt_header(header: str, at: int) -> tuple[tuple[tuple[int, str], ...], str | None]:
    """The attach points of a header and its predicate: a point ends at a space, a ``,``, or a
    ``/`` before any ``:`` (parser.cpp ``parse_attach_point``); a ``/`` where a point would
    start opens the predicate."""
    points: list[tuple[int, str]] = []
    i, n = 0, len(header)
    while i < n:
        c = header[i]
        if c.isspace() or c == ",":
            i += 1
            continue
        if c == "/":
            return tuple(points), header[i:].strip()
        start = i
        while i < n:
            c = header[i]
            if c == '"':
                close = header.find('"', i + 1)
                i = close + 1 if close >= 0 else n
                continue
            if c.isspace() or c == "," or (c == "/" and ":" not in header[start:i]):
                break
            i += 1
        points.append((at + start, header[start:i]))
    return tuple(points), None


def bt_probe_points(source: str, name: str = "script.bt", build: Build | None = None) -> list[Point]:
    """Every attach point of a bpftrace program (positional ``$N`` from ``build.args``)."""
    build = build or Build()
    line = _Lines(source)
    out: list[Point] = []
    for probe in bt_probes(source):
        header = ", ".join(t for _, t in probe.points) if len(probe.points) > 1 else None
        for at, written in probe.points:
            origin = f"{name}:{line(at)}"
            text = _bt_positional(written, build.args)
            try:
                out.append(replace(ps.parse_bpftrace(text), origin=origin, header=header, handler=probe.body))
            except ProbeSyntaxError as e:
                e.origin = origin
                out.append(e)
    return out


def _bt_positional(text: str, args: tuple[str, ...]) -> str:
    """``$N`` in an attach point is replaced by the argument (an absent one by nothing, as
    bpftrace's ``get_param`` answers)."""
    return re.sub(r"\$(\d+)", lambda m: args[int(m.group(1)) - 1] if 0 < int(m.group(1)) <= len(args) else "", text)


# -- files ----------------------------------------------------------------------------------------

#: A probe file is read whole: past this size it is no list of probe points (``/dev/zero``).
PROBE_FILE_LIMIT = 16 << 20


def load_points(path: str, build: Build | None = None) -> list[Point]:
    """The probe points of a file: a SystemTap script (``.stp``), a bpftrace program
    (``.bt``), else one point or command line per line (blank lines and ``#`` comments
    skipped)."""
    try:
        with open(path, "rb") as f:
            data = f.read(PROBE_FILE_LIMIT + 1)
    except OSError as e:
        raise ProbeFileError(f"{path}: {e.strerror}") from None
    if len(data) > PROBE_FILE_LIMIT:
        raise ProbeFileError(f"{path}: larger than {PROBE_FILE_LIMIT >> 20} MiB, too large for a probe file")
    # a byte that is not UTF-8 stays where it is, and the point holding it gets a caret there
    text = data.decode("utf-8", "surrogateescape")
    if path.endswith(".stp"):
        return stp_probe_points(text, path, build)
    if path.endswith(".bt"):
        return bt_probe_points(text, path, build)
    out: list[Point] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            out += [_with_origin(p, f"{path}:{n}") for p in parse_line(line.strip(), build, f"{path}:{n}")]
    return out


def parse_line(text: str, build: Build | None = None, name: str = "-e") -> list[Point]:
    """One argument or line: a one-line program (``bpftrace -e 'PROGRAM'``, ``stap -e
    'SCRIPT'``, options and script arguments after it as the tools take them), else every
    point :func:`~patchscope.probes.syntax.parse_all` reads in it."""
    m = re.match(r"(?:sudo\s+)?(bpftrace|stap)\s", text)
    if not m:
        return ps.parse_all(text)
    try:
        words = shlex.split(text)
    except ValueError as e:
        return [ProbeSyntaxError(text, len(text), str(e))]
    if "-e" not in words[:-1]:
        return ps.parse_all(text)
    at = words.index("-e")
    program, args = words[at + 1], tuple(w for w in words[at + 2 :] if not w.startswith("-"))
    build = replace(build or Build(), args=args or (build.args if build else ()))
    read = bt_probe_points if m.group(1) == "bpftrace" else stp_probe_points
    return read(program, name, build)


def _with_origin(p: Point, origin: str) -> Point:
    if isinstance(p, ProbeSyntaxError):
        p.origin = origin
        return p
    return replace(p, origin=origin)

"""Probe points as people write them, parsed into one shape.

Four dialects, each faithful to its tool's grammar:

- SystemTap: ``kernel.function("PATTERN[@FILE[:LINE]]")[.call|.inline|.return|.exported|
  .callee("X")|.callees]``, ``kernel.statement("…")``, ``module("M").…``, ``process("PATH").…``,
  and whole ``.stp`` files (see :func:`stp_probe_points`).
- perf probe: ``[[GRP:]EVENT=]FUNC[@SRC][:RLN|+OFFS|%return|;PTN] [ARG…]`` and
  ``SRC[:ALN|;PTN] [ARG…]`` (tools/perf/util/probe-event.c ``parse_perf_probe_point``).
- bpftrace: ``kprobe:F[+OFF]``, ``kretprobe:F``, ``uprobe:BIN:F``, ``uretprobe:BIN:F``,
  ``fentry:``/``fexit:`` (and their short and ``kfunc`` spellings).
- kprobe_events: ``p[:[GRP/]EV] [MOD:]SYM[+OFF]|ADDR [ARGS]``, ``r[N][:…] SYM[+0]``; and a bare
  address ``0xffffffff81000000``.

A malformed point raises :class:`ProbeSyntaxError` with the offset of the offending character.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace

#: What a probe point asks for at the places it resolves to.
ENTRY, CALL, INLINE, RETURN, EXPORTED, CALLEES, STATEMENT, ADDRESS = (
    "entry",  # stap .function / perf FUNC: out-of-line entries and inline sites
    "call",  # out-of-line entries only
    "inline",  # inline sites only
    "return",
    "exported",
    "callees",
    "statement",  # a source line (or FUNC+OFF / FUNC:RLN)
    "address",
)


class ProbeSyntaxError(ValueError):
    """A probe point that does not parse; ``pos`` is the offset of the offending character."""

    def __init__(self, text: str, pos: int, message: str) -> None:
        super().__init__(message)
        self.text, self.pos, self.message = text, pos, message
        #: ``file.stp:LINE`` when the point came from a script.
        self.origin: str | None = None

    def pointer(self) -> str:
        """Two lines: the probe point, and a caret under the offending character."""
        return f"{self.text}\n{' ' * self.pos}^"


class ProbeFileError(ValueError):
    """A probe file that cannot be read, or not as one: the message is one line."""


@dataclass(frozen=True)
class LineSpec:
    """``N``, ``N-M``, ``*`` or, for perf's ``FUNC:RLN`` and stap's ``+N``, relative to the
    function's declaration line."""

    low: int
    high: int
    relative: bool = False
    any: bool = False

    def __str__(self) -> str:
        if self.any:
            return "*"
        text = str(self.low) if self.low == self.high else f"{self.low}-{self.high}"
        return f"+{text}" if self.relative else text


@dataclass(frozen=True)
class ProbePoint:
    text: str
    #: ``stap``, ``perf``, ``bpftrace``, ``kprobe_events`` or ``address``.
    tool: str
    mode: str
    #: ``kernel``, ``module:NAME`` or ``process:PATH``.
    target: str = "kernel"
    function: str | None = None
    file: str | None = None
    line: LineSpec | None = None
    offset: int | None = None
    address: int | None = None
    #: The callee pattern of stap's ``.callee("X")``.
    callee: str | None = None
    #: perf's lazy pattern ``;PTN`` (matched against source text, which a binary does not hold).
    lazy: str | None = None
    #: Variables the probe reads (perf ARGs, stap ``$var`` in a handler is not parsed).
    args: tuple[str, ...] = ()
    #: stap's ``?`` / ``!``: a point that may resolve to nothing.
    optional: bool = False
    #: Where the point came from (``file.stp:LINE``) when read from a script.
    origin: str | None = None
    #: Whether the function name was matched as a glob pattern (every tool but kprobe_events).
    glob: bool = True
    notes: tuple[str, ...] = field(default=())

    @property
    def is_return(self) -> bool:
        return self.mode == RETURN


_C_NAME = re.compile(r"[A-Za-z_*?\[\]][A-Za-z0-9_.*?\[\]!-]*\Z")
_NUMBER = re.compile(r"(0[xX][0-9a-fA-F]+|\d+)\Z")


def parse(text: str) -> ProbePoint:
    """One probe point in any dialect, told apart by its shape."""
    _check_utf8(text)
    s = text.strip()
    if not s:
        raise ProbeSyntaxError(text, 0, "empty probe point")
    lead = len(text) - len(text.lstrip())
    try:
        if re.match(r"(kernel|module|process)\b", s):
            return parse_stap(s)
        if re.match(r"(kprobe|kretprobe|uprobe|uretprobe|fentry|fexit|kfunc|kretfunc|k|kr|u|ur|f|fr):", s):
            return parse_bpftrace(s)
        if re.match(r"[pr]\d*(:\S*)?\s", s):
            return parse_kprobe_event(s)
        if _NUMBER.match(s):
            return ProbePoint(text=s, tool="address", mode=ADDRESS, address=number(s, s, 0, "an address"))
        return parse_perf(s)
    except ProbeSyntaxError as e:
        raise ProbeSyntaxError(text, e.pos + lead, e.message) from None


#: A byte that is not UTF-8, as Python decodes it from argv or a file (``surrogateescape``).
_RAW_BYTE = re.compile("[\udc80-\udcff]")

#: Addresses and offsets are 64-bit in every tool; a DWARF line number is 32-bit.
ADDRESS_BITS, LINE_BITS = 64, 32


def _check_utf8(text: str) -> None:
    """A byte that is not UTF-8 names nothing any tool could match: say where it is (the
    point's text shows U+FFFD there, so it can still be printed)."""
    m = _RAW_BYTE.search(text)
    if m:
        shown = _RAW_BYTE.sub("\ufffd", text)
        raise ProbeSyntaxError(shown, m.start(), f"byte {ord(m.group()) - 0xDC00:#04x} is not UTF-8")


def number(digits: str, text: str, at: int, what: str, bits: int = ADDRESS_BITS) -> int:
    """``digits`` (decimal or 0x hex, as ``_NUMBER`` matched them) as an int, refused past
    ``bits`` bits before any conversion: a 5,000-digit number is one point's error."""
    hexa = digits[:2] in ("0x", "0X")
    body = (digits[2:] if hexa else digits).lstrip("0")
    # a hex digit is 4 bits, a decimal one more than 3
    value = int(body or "0", 16 if hexa else 10) if len(body) <= (bits // 4 if hexa else bits // 3 + 1) else -1
    if not 0 <= value < 1 << bits:
        shown = digits if len(digits) <= 24 else digits[:24] + "…"
        raise ProbeSyntaxError(text, at, f"{what} {shown} does not fit in {bits} bits")
    return value


# -- SystemTap ---------------------------------------------------------------------------------


@dataclass
class _Component:
    name: str
    arg: str | int | None
    pos: int
    #: Where the argument's text starts (inside its quotes).
    at: int = 0
    #: The indices in ``arg`` of characters written escaped (``\"``): each is one more in the text.
    escapes: tuple[int, ...] = ()

    def place(self, k: int) -> int:
        """The position in the point's text of ``arg[k]``."""
        return self.at + k + sum(e <= k for e in self.escapes)


class _Scanner:
    """A cursor over one probe point, raising errors at its position."""

    def __init__(self, text: str, pos: int = 0) -> None:
        self.text, self.pos = text, pos
        #: The escapes of the last string read (see ``_Component.escapes``).
        self.escapes: list[int] = []

    def error(self, message: str, pos: int | None = None) -> ProbeSyntaxError:
        return ProbeSyntaxError(self.text, self.pos if pos is None else pos, message)

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def skip_space(self) -> None:
        while self.peek().isspace():
            self.pos += 1

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {ch!r}, found {found}")
        self.pos += 1

    def identifier(self) -> str:
        m = re.compile(r"[A-Za-z_*][A-Za-z0-9_*]*").match(self.text, self.pos)
        if not m:
            raise self.error("expected a probe point component (an identifier)")
        self.pos = m.end()
        return m.group()

    def string(self) -> str:
        start = self.pos
        self.expect('"')
        out: list[str] = []
        self.escapes = []
        while self.peek() not in ('"', ""):
            if self.peek() == "\\":
                self.escapes.append(len(out))
                self.pos += 1
            out.append(self.peek())
            self.pos += 1
        if not self.peek():
            raise self.error("unterminated string", start)
        self.pos += 1
        return "".join(out)

    def literal(self) -> str | int:
        if self.peek() == '"':
            return self.string()
        m = re.compile(r"-?(0[xX][0-9a-fA-F]+|\d+)").match(self.text, self.pos)
        if not m:
            raise self.error("expected a string or a number")
        value = number(m.group(1), self.text, m.start(1), "the number")
        self.pos = m.end()
        return -value if m.group().startswith("-") else value

    def components(self) -> list[_Component]:
        parts = []
        while True:
            pos = self.pos
            name = self.identifier()
            arg: str | int | None = None
            at, self.escapes = pos, []
            if self.peek() == "(":
                self.pos += 1
                at = self.pos + (self.peek() == '"')
                arg = self.literal()
                self.expect(")")
            parts.append(_Component(name, arg, pos, at, tuple(self.escapes)))
            if self.peek() != ".":
                return parts
            self.pos += 1


def parse_stap(text: str) -> ProbePoint:
    sc = _Scanner(text)
    parts = sc.components()
    optional = False
    sc.skip_space()
    while sc.peek() in ("?", "!"):
        optional = True
        sc.pos += 1
    sc.skip_space()
    if sc.peek() and not text.startswith("if", sc.pos):
        raise sc.error(f"unexpected {sc.peek()!r} after the probe point")
    return _stap_point(text, parts, optional)


def _stap_point(text: str, parts: list[_Component], optional: bool) -> ProbePoint:
    head, rest = parts[0], parts[1:]
    target = _stap_target(text, head)
    if not rest or rest[0].name not in ("function", "statement"):
        pos = rest[0].pos if rest else len(text)
        raise ProbeSyntaxError(text, pos, 'expected .function("…") or .statement("…")')
    what = rest[0]
    if what.arg is None:
        raise ProbeSyntaxError(text, what.pos + len(what.name), f'.{what.name} needs ("PATTERN")')
    base = ProbePoint(text=text, tool="stap", mode=ENTRY, target=target, optional=optional)
    point = _stap_statement(text, what, base) if what.name == "statement" else _stap_function(text, what, base)
    return _stap_suffixes(text, rest[1:], point)


def _stap_target(text: str, head: _Component) -> str:
    if head.name == "kernel" and head.arg is None:
        return "kernel"
    if head.name == "module" and isinstance(head.arg, str):
        return f"module:{head.arg}"
    if head.name == "process" and isinstance(head.arg, str):
        return f"process:{head.arg}"
    if head.name == "process" and head.arg is None:
        return "process:"
    raise ProbeSyntaxError(text, head.pos, 'expected kernel, module("NAME") or process("PATH")')


def _stap_function(text: str, what: _Component, base: ProbePoint) -> ProbePoint:
    if not isinstance(what.arg, str):
        raise ProbeSyntaxError(text, what.pos, ".function takes a string pattern")
    func, file, line = _function_spec(what.arg, text, what.place)
    return replace(base, function=func, file=file, line=line)


def _stap_statement(text: str, what: _Component, base: ProbePoint) -> ProbePoint:
    if isinstance(what.arg, int):
        if what.arg < 0:
            raise ProbeSyntaxError(text, what.at, "an address is not negative")
        return replace(base, mode=ADDRESS, address=what.arg)
    if what.arg is None:
        raise ProbeSyntaxError(text, what.pos, ".statement takes a pattern or an address")
    func, file, line = _function_spec(what.arg, text, what.place)
    if line is None:
        raise ProbeSyntaxError(text, what.place(len(what.arg)), 'a statement needs a line: "FUNC@FILE:LINE"')
    return replace(base, mode=STATEMENT, function=func, file=file, line=line)


def _function_spec(spec: str, text: str, place: Callable[[int], int]) -> tuple[str, str | None, LineSpec | None]:
    """``FUNC[@FILE[:LINE]]``, ``FUNC:LINE`` (stap: relative with ``+``); ``place`` gives the
    position in ``text`` of a character of ``spec``."""
    func, _, where = spec.partition("@")
    file, line = where, None
    if ":" in where:
        file, _, ln = where.partition(":")
        line = _line_spec(ln, text, place(len(func) + 1 + len(file) + 1))
    elif ":" in func:
        func, _, ln = func.partition(":")
        line = _line_spec(ln, text, place(len(func) + 1))
    if not func:
        raise ProbeSyntaxError(text, place(0), 'empty function pattern (use "*" for every function)')
    return func, file or None, line


def _line_spec(s: str, text: str, at: int) -> LineSpec:
    if s == "*":
        return LineSpec(0, 0, any=True)
    m = re.fullmatch(r"(\+)?(\d+)(?:-(\d+))?", s)
    if not m:
        raise ProbeSyntaxError(text, at, f"bad line number {s!r} (N, N-M, +N or *)")
    low = number(m.group(2), text, at, "line", LINE_BITS)
    high = number(m.group(3), text, at + m.start(3), "line", LINE_BITS) if m.group(3) else low
    return LineSpec(low, high, relative=bool(m.group(1)))


def _stap_suffixes(text: str, parts: list[_Component], point: ProbePoint) -> ProbePoint:
    modes = {"call": CALL, "inline": INLINE, "return": RETURN, "exported": EXPORTED}
    for p in parts:
        if p.name in modes and p.arg is None and point.mode in (ENTRY, CALL, EXPORTED):
            point = replace(point, mode=modes[p.name])
        elif p.name == "callee" and isinstance(p.arg, str):
            point = replace(point, mode=CALLEES, callee=p.arg)
        elif p.name == "callees":
            point = replace(point, mode=CALLEES, callee="*")
        elif p.name in ("maxactive", "absolute", "nearest"):
            continue  # how the probe is placed, not where
        else:
            raise ProbeSyntaxError(text, p.pos, f"unexpected .{p.name} here")
    return point


#: Each use of an alias repeats its points: a few MiB of script could name billions.
MAX_POINTS = 1_000_000


def stp_probe_points(source: str, name: str = "script.stp") -> list[ProbePoint | ProbeSyntaxError]:
    """Every probe point of a SystemTap script, with plain aliases (``probe a = kernel.…``)
    expanded; a point that does not parse is returned as its error, the others still are."""
    out: list[ProbePoint | ProbeSyntaxError] = []
    for text, where, reads in _expanded(source, name):
        point = _parse_from(text, where)
        if isinstance(point, ProbePoint):
            point = replace(point, args=point.args + tuple(dict.fromkeys(reads)))
        out.append(point)
    return out


def _expanded(source: str, name: str) -> list[tuple[str, str, list[str]]]:
    """(point text, ``file:LINE``, variables read) of every point once aliases are expanded,
    counted before any is parsed."""
    aliases: dict[str, list[str]] = {}
    out: list[tuple[str, str, list[str]]] = []
    for lineno, head, points, is_alias, reads in _stp_probes(source):
        if is_alias:
            aliases[head] = points
            continue
        for p in points:
            texts = aliases.get(p.rstrip("?!"), [p])
            if len(out) + len(texts) > MAX_POINTS:
                raise ProbeFileError(f"{name}: more than {MAX_POINTS:,} probe points once aliases are expanded")
            out += [(text, f"{name}:{lineno}", reads) for text in texts]
    return out


#: An unterminated comment, string or embedded C runs to the end of the script (where stap
#: stops with an error): matched at once, never rescanned from each later position.
_STP_TOKENS = re.compile(
    r'(?P<skip>\#[^\n]*|//[^\n]*|/\*.*?(?:\*/|\Z)|"(?:\\.|[^"\\])*(?:"|\Z)|%\{.*?(?:%\}|\Z)|\s+|[^\w\s{}"#/%]+)'
    r"|(?P<open>\{)|(?P<close>\})|(?P<word>\w+)",
    re.S,
)


def _stp_probes(source: str) -> list[tuple[int, str, list[str], bool, list[str]]]:
    """(line, alias name, point texts, is_alias, ``$variables`` its body reads) of each
    top-level ``probe`` statement, in one pass over the script."""
    found = []
    depth, done = 0, 0
    line, counted = 1, 0
    for m in _tokens(source):
        if m.start() < done:  # inside a probe already read
            continue
        depth = max(depth + bool(m.group("open")) - bool(m.group("close")), 0)
        if depth == 0 and m.group("word") == "probe":
            line += source.count("\n", counted, m.start())
            counted = m.start()
            header_end = _header_end(source, m.end())
            done = _body_end(source, header_end)  # its braces balance: depth stays 0
            reads = _TARGET_VAR.findall(source[header_end:done])
            found.append((line, *_probe_header(source[m.end() : header_end]), reads))
    return found


def _tokens(source: str, pos: int = 0) -> Iterator[re.Match[str]]:
    """The script's braces and words from ``pos`` on; comments, strings and embedded C
    (``%{ … %}``) are matched whole, so nothing inside them counts."""
    while pos < len(source):
        m = _STP_TOKENS.match(source, pos)
        if not m:  # a lone / or % that starts no comment nor embedded C
            pos += 1
            continue
        pos = m.end()
        yield m


def _header_end(source: str, pos: int) -> int:
    """The offset of the ``{`` that opens the probe's body (strings and parentheses skipped)."""
    depth, i = 0, pos
    while i < len(source):
        c = source[i]
        if c == '"':
            close = source.find('"', i + 1)
            i = close + 1 if close >= 0 else len(source)
            continue
        depth += c == "("
        depth -= c == ")"
        if c == "{" and depth == 0:
            return i
        i += 1
    return len(source)


#: ``$name`` in a handler: a target variable read at the probe (``$$vars``, ``$return`` are not).
_TARGET_VAR = re.compile(r"(?<![$\w])\$(?!return\b)([A-Za-z_]\w*)")


def _body_end(source: str, start: int) -> int:
    """The offset just past the ``}`` closing the body that opens at ``start``."""
    depth = 0
    for m in _tokens(source, start):
        depth += bool(m.group("open")) - bool(m.group("close"))
        if depth == 0:
            return m.end()
    return len(source)


def _probe_header(header: str) -> tuple[str, list[str], bool]:
    name, eq, rest = header.partition("=")
    is_alias = bool(eq) and not rest.startswith("=") and '"' not in name and "(" not in name
    points = rest if is_alias else header
    texts = [t.strip() for t in _split_top(points, ",") if t.strip()]
    return name.strip(), texts, is_alias


def _split_top(s: str, sep: str) -> list[str]:
    out, depth, start, quoted = [], 0, 0, False
    for i, c in enumerate(s):
        if c == '"' and (i == 0 or s[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and c in "()":
            depth += 1 if c == "(" else -1
        elif not quoted and depth == 0 and c == sep:
            out.append(s[start:i])
            start = i + 1
    out.append(s[start:])
    return out


# -- perf probe --------------------------------------------------------------------------------


def parse_perf(text: str) -> ProbePoint:
    """``[[GRP:]EVENT=]FUNC[@SRC][:RLN|+OFFS|%return|;PTN] [ARG…]`` or ``SRC[:ALN|;PTN] [ARG…]``."""
    spec, _, argtext = text.partition(" ")
    start = 0
    event = re.match(r"(?:[A-Za-z_][\w.]*:)?[A-Za-z_]\w*=", spec)
    if event:
        start = event.end()
    body = spec[start:]
    m = re.search(r"[;:+%]", body)
    head, tail = (body[: m.start()], body[m.start() :]) if m else (body, "")
    func, _, src = head.partition("@")
    base = ProbePoint(text=text, tool="perf", mode=ENTRY, args=_perf_args(argtext))
    if not func:
        raise ProbeSyntaxError(text, start, "expected a function or a source file name")
    is_function = bool(src) or bool(_C_NAME.match(func))  # else SRC:ALN
    point = replace(base, function=func, file=src or None) if is_function else replace(base, file=func)
    return _perf_tail(text, start + len(head), tail, point)


def _perf_tail(text: str, at: int, tail: str, point: ProbePoint) -> ProbePoint:
    if not tail:
        if point.function is None:
            raise ProbeSyntaxError(text, at, "a source file needs :LINE or ;PATTERN")
        return point
    kind, value = tail[0], tail[1:]
    if kind == ";":
        return replace(point, mode=STATEMENT, lazy=value)
    if kind == "%":
        if value != "return":
            raise ProbeSyntaxError(text, at + 1, f"unknown %{value} (only %return)")
        return replace(point, mode=RETURN)
    if kind == "+":
        if not _NUMBER.match(value) or point.function is None:
            raise ProbeSyntaxError(text, at + 1, "+OFFS needs a function and a number")
        return replace(point, mode=STATEMENT, offset=number(value, text, at + 1, "offset"))
    m = re.fullmatch(r"(\d+)(%return)?", value)
    if not m or m.group(2):
        raise ProbeSyntaxError(text, at + 1, f"bad line number {value!r}")
    line = number(m.group(1), text, at + 1, "line", LINE_BITS)
    return replace(point, mode=STATEMENT, line=LineSpec(line, line, relative=point.function is not None))


def _perf_args(argtext: str) -> tuple[str, ...]:
    """The variable each ARG reads: ``[NAME=]VAR[->f|.f|[i]][:TYPE]``; registers (``%ax``),
    symbols (``@sym``), ``$retval``, ``$params`` and ``$vars`` name no variable of the scope."""
    out = []
    for arg in argtext.split():
        expr = arg.partition("=")[2] if re.match(r"\w+=", arg) else arg
        m = re.match(r"[A-Za-z_]\w*", expr)
        if m:
            out.append(m.group())
        elif expr in ("$params", "$vars"):
            out.append(expr)
    return tuple(out)


# -- bpftrace and kprobe_events ------------------------------------------------------------------

_BPFTRACE_KIND = {
    "k": "kprobe",
    "kr": "kretprobe",
    "u": "uprobe",
    "ur": "uretprobe",
    "f": "fentry",
    "fr": "fexit",
    "kfunc": "fentry",
    "kretfunc": "fexit",
}


def parse_bpftrace(text: str) -> ProbePoint:
    kind, _, rest = text.partition(":")
    kind = _BPFTRACE_KIND.get(kind, kind)
    at = len(kind) + 1 if text.startswith(kind) else text.index(":") + 1
    base = ProbePoint(text=text, tool="bpftrace", mode=RETURN if kind in ("kretprobe", "uretprobe", "fexit") else CALL)
    base = replace(base, notes=(kind,))
    if kind in ("uprobe", "uretprobe"):
        path, sep, rest = rest.rpartition(":")
        if not sep or not path:
            raise ProbeSyntaxError(text, at, f"{kind} needs BINARY:FUNCTION")
        base = replace(base, target=f"process:{path}")
        at += len(path) + 1
    elif rest.count(":") == 1:  # kprobe:MODULE:FUNC, fentry:MODULE:FUNC
        module, _, rest = rest.partition(":")
        base = replace(base, target=f"module:{module}")
        at += len(module) + 1
    return _symbol_offset(text, at, rest, base)


def _symbol_offset(text: str, at: int, spec: str, base: ProbePoint) -> ProbePoint:
    """``SYM``, ``SYM+OFF`` or an address."""
    if not spec:
        raise ProbeSyntaxError(text, at, "expected a function name")
    if _NUMBER.match(spec):
        return replace(base, mode=ADDRESS, address=number(spec, text, at, "an address"))
    name, plus, off = spec.partition("+")
    if not _C_NAME.match(name):
        bad = next((i for i, c in enumerate(name) if not (c.isalnum() or c in "_.*?[]")), 0)
        raise ProbeSyntaxError(text, at + bad, f"{name!r} is not a function name")
    if plus:
        if base.notes and base.notes[0] in ("fentry", "fexit"):  # BTF names a function, never a place in it
            raise ProbeSyntaxError(text, at + len(name), f"{base.notes[0]} takes no offset")
        if not _NUMBER.match(off):
            raise ProbeSyntaxError(text, at + len(name) + 1, f"bad offset {off!r}")
        offset = number(off, text, at + len(name) + 1, "offset")
        if base.mode == RETURN and offset:
            raise ProbeSyntaxError(text, at + len(name) + 1, "a return probe takes no offset")
        return replace(base, function=name, offset=offset, mode=base.mode if base.is_return else STATEMENT)
    return replace(base, function=name)


def parse_kprobe_event(text: str) -> ProbePoint:
    """A line of tracefs ``kprobe_events`` / ``uprobe_events``."""
    m = re.match(r"([pr])(\d*)(?::(\S*))?\s+(\S+)\s*(.*)", text)
    if not m:
        raise ProbeSyntaxError(text, 0, "expected p|r[:EVENT] SYMBOL[+OFFS] [ARGS]")
    kind, spec = m.group(1), m.group(4)
    base = ProbePoint(text=text, tool="kprobe_events", mode=RETURN if kind == "r" else CALL, glob=False)
    at = m.start(4)
    if ":" in spec and not _NUMBER.match(spec):
        module, _, spec = spec.rpartition(":")
        target = f"process:{module}" if "/" in module else f"module:{module}"
        base = replace(base, target=target)
        at += len(module) + 1
    # 6.1's fetch-args are registers, stack slots, $argN and memory: none names a variable
    return _symbol_offset(text, at, spec, base)


#: A probe file is read whole: past this size it is no list of probe points (``/dev/zero``).
PROBE_FILE_LIMIT = 16 << 20


def load_points(path: str) -> list[ProbePoint | ProbeSyntaxError]:
    """The probe points of a file: a SystemTap script (``.stp``), else one point per line
    (blank lines and ``#`` comments skipped)."""
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
        return stp_probe_points(text, path)
    out: list[ProbePoint | ProbeSyntaxError] = []
    for n, line in enumerate(text.splitlines(), 1):
        if line.strip() and not line.lstrip().startswith("#"):
            out.append(_parse_from(line.strip(), f"{path}:{n}"))
    return out


def _parse_from(text: str, origin: str) -> ProbePoint | ProbeSyntaxError:
    try:
        return replace(parse(text), origin=origin)
    except ProbeSyntaxError as e:
        e.origin = origin
        return e

"""Probe points as people write them, parsed into one shape.

Four dialects, each faithful to its tool's grammar:

- SystemTap: ``kernel.function("PATTERN[@FILE[:LINE]]")[.call|.inline|.return|.exported|
  .callee("X")|.callees]``, ``kernel.statement("…")``, ``module("M").…``, ``process("PATH").…``,
  and whole ``.stp`` files (see :func:`patchscope.probes.scripts.stp_probe_points`).
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
import shlex
from collections.abc import Callable
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
#: A probe that patches no code: timers, begin/end, perf counters, deletions (``-:ev``).
NO_CODE = "no-code"
#: A tracepoint (stap ``kernel.trace``, bpftrace ``tracepoint:``/``rawtracepoint:``): a
#: stable interface the kernel built in, judged by whether this build has it.
TRACEPOINT = "tracepoint"
#: A SystemTap tapset alias (``syscall.open``, ``vfs.read``) that was not expanded.
ALIAS = "alias"
#: stap ``.label("L")``: a C label inside a function.
LABEL = "label"


class ProbeSyntaxError(ValueError):
    """A probe point that does not parse; ``pos`` is the offset of the offending character."""

    def __init__(self, text: str, pos: int, message: str) -> None:
        # a byte that is not UTF-8 is shown as U+FFFD, so that any error can be printed
        text, message = _RAW_BYTE.sub("\ufffd", text), _RAW_BYTE.sub("\ufffd", message)
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
    #: The handler's text, braces included, when the point came from a script (its writes:
    #: :mod:`patchscope.probes.writes`).
    handler: str = ""
    notes: tuple[str, ...] = field(default=())
    #: stap's ``!``: once this point resolves, the later points of its header are not placed.
    sufficient: bool = False
    #: The header (or command line) the point was written in, when it holds several points.
    header: str | None = None
    #: Why the point places no probe in code (``NO_CODE``), or what a ``TRACEPOINT`` names.
    kind: str = ""

    @property
    def by_symbol(self) -> bool:
        """Resolved through the symbol table, as kprobes resolve a name (not through DWARF)."""
        return self.tool in ("bpftrace", "kprobe_events", "fail_function") or self.kind == "kprobe"

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
        if _is_stap(s):
            return parse_stap(s)
        if s.startswith("fail_function:"):
            return parse_fail_function(s)
        if re.match(r"[pr]\d*(:\S*)?\s|-:", s):
            return parse_kprobe_event(s)
        if _is_bpftrace(s):
            return parse_bpftrace(s)
        if _NUMBER.match(s):
            return ProbePoint(text=s, tool="address", mode=ADDRESS, address=number(s, s, 0, "an address"))
        return parse_perf(s)
    except ProbeSyntaxError as e:
        raise ProbeSyntaxError(text, e.pos + lead, e.message) from None


#: What only a SystemTap point starts with (a lone word such as ``begin`` is no perf function:
#: perf probe's FUNC is a C name, and these are stap's families).
_STAP_HEAD = re.compile(
    r"(kernel|module|process|kprobe|timer|procfs|perf)\s*[.(]|(begin|end|error|never)\b\s*([?!(]|\Z)"
)


def _is_stap(s: str) -> bool:
    return bool(_STAP_HEAD.match(s)) and not _is_bpftrace(s)


def _is_bpftrace(s: str) -> bool:
    head, colon, _ = s.partition(":")
    return (bool(colon) or head in ("BEGIN", "END")) and head in BPFTRACE_TYPES


#: A byte that is not UTF-8, as Python decodes it from argv or a file (``surrogateescape``).
_RAW_BYTE = re.compile("[\udc80-\udcff]")

#: Addresses and offsets are 64-bit in every tool; a DWARF line number is 32-bit.
ADDRESS_BITS, LINE_BITS = 64, 32


def _check_utf8(text: str) -> None:
    """A byte that is not UTF-8 names nothing any tool could match: say where it is (the
    point's text shows U+FFFD there, so it can still be printed)."""
    m = _RAW_BYTE.search(text)
    if m:
        raise ProbeSyntaxError(text, m.start(), f"byte {ord(m.group()) - 0xDC00:#04x} is not UTF-8")


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


#: ``\s`` is ``str.isspace``'s set: the scanner's steps as single matches (a script of 32,000
#: probes is read a character at a time otherwise).
_SPACES = re.compile(r"\s*")
_IDENTIFIER = re.compile(r"[A-Za-z_*][A-Za-z0-9_*]*")
_PLAIN_STRING = re.compile(r'"([^"\\]*)"')


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
        self.pos = _SPACES.match(self.text, self.pos).end()  # type: ignore[union-attr]  # matches ""

    def expect(self, ch: str) -> None:
        if self.peek() != ch:
            found = repr(self.peek()) if self.peek() else "the end"
            raise self.error(f"expected {ch!r}, found {found}")
        self.pos += 1

    def identifier(self) -> str:
        m = _IDENTIFIER.match(self.text, self.pos)
        if not m:
            raise self.error("expected a probe point component (an identifier)")
        self.pos = m.end()
        return m.group()

    def string(self) -> str:
        plain = _PLAIN_STRING.match(self.text, self.pos)
        if plain:  # no escape: the text between the quotes, as the loop below would read it
            self.pos, self.escapes = plain.end(), []
            return plain.group(1)
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
            text, escapes = self.string(), self.escapes
            while self._ahead('"'):  # adjacent strings are one (stap's lexer joins them)
                self.skip_space()
                more = self.string()
                escapes, text = escapes + [len(text) + e for e in self.escapes], text + more
            self.escapes = escapes
            return text
        m = re.compile(r"-?(0[xX][0-9a-fA-F]+|\d+)").match(self.text, self.pos)
        if not m:
            raise self.error("expected a string or a number")
        value = number(m.group(1), self.text, m.start(1), "the number")
        self.pos = m.end()
        return -value if m.group().startswith("-") else value

    def _ahead(self, ch: str) -> bool:
        """Whether ``ch`` comes next once spaces are skipped (the cursor stays: spaces between
        a point's tokens are allowed, as stap's lexer allows them)."""
        return self.text.startswith(ch, _SPACES.match(self.text, self.pos).end())  # type: ignore[union-attr]

    def component(self) -> _Component:
        pos = self.pos
        name = self.identifier()
        arg: str | int | None = None
        at, self.escapes = pos, []
        if self._ahead("("):
            self.skip_space()
            self.pos += 1
            self.skip_space()
            at = self.pos + (self.peek() == '"')
            arg = self.literal()
            self.skip_space()
            self.expect(")")
        return _Component(name, arg, pos, at, tuple(self.escapes))

    def sequences(self) -> list[list[_Component]]:
        """The component lists a point stands for: ``kernel.{function("a"), function("b")}.return``
        is two (parse.cxx ``parse_component``: a brace group is a list of point tails, each
        may end in ``?`` or ``!``, kept as a marker component)."""
        seqs: list[list[_Component]] = [[]]
        while True:
            if self.peek() == "{":
                seqs = [s + g for g in self._group() for s in seqs]
                if len(seqs) > MAX_POINTS:
                    raise self.error(f"more than {MAX_POINTS:,} probe points in one brace group")
            else:
                part = self.component()
                seqs = [[*s, part] for s in seqs]
            if not self._ahead("."):
                return seqs
            self.skip_space()
            self.pos += 1
            self.skip_space()

    def _group(self) -> list[list[_Component]]:
        self.expect("{")
        out: list[list[_Component]] = []
        while True:
            self.skip_space()
            alternatives = self.sequences()
            self.skip_space()
            while self.peek() in ("?", "!"):
                alternatives = [[*a, _Component(self.peek(), None, self.pos)] for a in alternatives]
                self.pos += 1
                self.skip_space()
            out += alternatives
            if self.peek() != ",":
                self.expect("}")
                return out
            self.pos += 1


def parse_stap(text: str) -> ProbePoint:
    """One SystemTap point (a brace group naming several is refused: see :func:`stap_points`)."""
    points = stap_points(text)
    if len(points) > 1:
        raise ProbeSyntaxError(text, text.index("{"), f"this names {len(points)} probe points")
    return points[0]


def stap_points(text: str) -> list[ProbePoint]:
    """``COMPONENTS[?|!][ if (COND)]``, each brace group expanded (in the order stap expands it)."""
    _check_utf8(text)
    plain = _plain_components(text)
    if plain is not None:
        return [_stap_point(text, plain, False)]
    seqs, end, optional, sufficient = _marked_sequences(text)
    out = []
    for seq in seqs:
        marks = [c.name for c in seq if c.name in ("?", "!")]
        parts = [c for c in seq if c.name not in ("?", "!")]
        point = _stap_point(text, parts, optional or bool(marks))
        if sufficient or "!" in marks:
            point = replace(point, sufficient=True)
        tail = "".join(marks) + text[end:].strip()
        out.append(replace(point, text=_spelled(parts, tail)) if len(seqs) > 1 else point)
    return out


def _marked_sequences(text: str) -> tuple[list[list[_Component]], int, bool, bool]:
    """The component sequences of a point, where they end, and whether the whole point is
    marked optional (``?``) and sufficient (``!``); an ``if (COND)`` may follow."""
    sc = _Scanner(text)
    seqs = sc.sequences()
    end = sc.pos
    sc.skip_space()
    optional = sufficient = False
    while sc.peek() in ("?", "!"):
        optional, sufficient = True, sufficient or sc.peek() == "!"
        sc.pos += 1
        sc.skip_space()
    if sc.peek() and not re.match(r"if\s*\(", text[sc.pos :]):
        raise sc.error(f"unexpected {sc.peek()!r} after the probe point")
    return seqs, end, optional, sufficient


#: A point written plainly: ``name`` and ``name("…")`` components joined by dots, with no
#: space, escape, number, brace group, mark or condition — most points of a script, cut by one
#: match into what :meth:`_Scanner.sequences` would read, at a fraction of its cost.
_PLAIN_COMPONENT = r'([A-Za-z_*][A-Za-z0-9_*]*)(?:\("([^"\\]*)"\))?'
_PLAIN_POINT = re.compile(rf"{_PLAIN_COMPONENT}(?:\.{_PLAIN_COMPONENT})*\Z")
_COMPONENT = re.compile(_PLAIN_COMPONENT)


def _plain_components(text: str) -> list[_Component] | None:
    if not _PLAIN_POINT.match(text):
        return None
    # each match ends where the next "." is: a string holds no quote, so none starts inside one
    return [
        _Component(m.group(1), m.group(2), m.start(), m.start(2) if m.group(2) is not None else m.start())
        for m in _COMPONENT.finditer(text)
    ]


def _spelled(parts: list[_Component], tail: str) -> str:
    """One expanded alternative of a brace group, written out."""

    def one(c: _Component) -> str:
        if c.arg is None:
            return c.name
        arg = str(c.arg) if isinstance(c.arg, int) else '"' + c.arg.replace('"', '\\"') + '"'
        return f"{c.name}({arg})"

    return ".".join(one(c) for c in parts) + (f" {tail}" if tail and tail[0] not in "?!" else tail)


#: Probe families that patch no code (tapsets/*.stp, stap's man page "PROBE POINT FAMILIES").
_STAP_NO_CODE = {
    "begin": "runs when the session starts",
    "end": "runs when the session ends",
    "error": "runs when the session stops on an error",
    "never": "never runs",
    "timer": "a timer",
    "procfs": "a file under /proc/systemtap",
    "perf": "a perf counter event",
    "netfilter": None,  # a tapset alias (netfilter.ipv4.*), not a family
}


def _stap_point(text: str, parts: list[_Component], optional: bool) -> ProbePoint:
    head, rest = parts[0], parts[1:]
    base = ProbePoint(text=text, tool="stap", mode=ENTRY, optional=optional)
    if _STAP_NO_CODE.get(head.name):
        return replace(base, mode=NO_CODE, kind=f"{head.name}: {_STAP_NO_CODE[head.name]}")
    if head.name == "kprobe":
        return _stap_kprobe(text, rest, replace(base, kind="kprobe", glob=True))
    if head.name not in ("kernel", "module", "process"):
        return replace(base, mode=ALIAS, kind=".".join(p.name for p in parts), function=head.name)
    target = _stap_target(text, head)
    if rest and rest[0].name == "data" and head.name == "kernel":
        return replace(base, mode=NO_CODE, kind="data: a hardware watchpoint on data, no code is patched")
    if rest and rest[0].name == "trace" and isinstance(rest[0].arg, str) and head.name == "kernel":
        return replace(base, mode=TRACEPOINT, function=rest[0].arg, kind="tracepoint")
    if target.startswith("process:") and (not rest or rest[0].name not in ("function", "statement")):
        event = ".".join(p.name for p in rest) or "process"
        why = "an SDT marker, placed by the program's build" if "mark" in event else "a process event (utrace)"
        return replace(base, target=target, mode=NO_CODE, kind=f"{event}: {why}")
    if not rest or rest[0].name not in ("function", "statement"):
        pos = rest[0].pos if rest else len(text)
        raise ProbeSyntaxError(text, pos, 'expected .function("…") or .statement("…")')
    what = rest[0]
    if what.arg is None:
        raise ProbeSyntaxError(text, what.pos + len(what.name), f'.{what.name} needs ("PATTERN")')
    base = ProbePoint(text=text, tool="stap", mode=ENTRY, optional=optional, target=target)
    point = _stap_statement(text, what, base) if what.name == "statement" else _stap_function(text, what, base)
    return _stap_suffixes(text, rest[1:], point)


def _stap_kprobe(text: str, rest: list[_Component], base: ProbePoint) -> ProbePoint:
    """``kprobe[.module("M")].function("F")[.return]``, ``kprobe.statement(ADDR).absolute``:
    placed by symbol name through kallsyms, without DWARF (tapset-dwarfless)."""
    if rest and rest[0].name == "module" and isinstance(rest[0].arg, str):
        base, rest = replace(base, target=f"module:{rest[0].arg}"), rest[1:]
    if not rest or rest[0].name not in ("function", "statement") or rest[0].arg is None:
        pos = rest[0].pos if rest else len(text)
        raise ProbeSyntaxError(text, pos, 'expected .function("NAME") or .statement(ADDRESS) after kprobe')
    what, rest = rest[0], rest[1:]
    if isinstance(what.arg, int):
        point = replace(base, mode=ADDRESS, address=what.arg)
    else:
        point = replace(base, mode=CALL, function=what.arg)
    # tapsets.cxx registers F[.call|.return[.maxactive(N)]] and statement(ADDR).absolute (only)
    allowed = [("absolute",)] if point.mode == ADDRESS else [("call",), ("return",), ("return", "maxactive")]
    if point.mode == ADDRESS and point.target != "kernel":
        raise ProbeSyntaxError(text, what.pos, "kprobe.module(…) takes .function, not .statement")
    names = tuple(p.name for p in rest)
    if names and names not in allowed:
        bad = next((p for p, a in zip(rest, max(allowed, key=lambda a: _common(a, names))) if p.name != a), rest[-1])
        raise ProbeSyntaxError(text, bad.pos, f"unexpected .{bad.name} here")
    if point.mode == ADDRESS and not names:
        raise ProbeSyntaxError(text, len(text), "kprobe.statement(ADDRESS) needs .absolute")
    return replace(point, mode=RETURN) if names[:1] == ("return",) else point


def _common(a: tuple[str, ...], b: tuple[str, ...]) -> int:
    """How many leading names two suffix lists share."""
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def _stap_target(text: str, head: _Component) -> str:
    if head.name == "kernel" and head.arg is None:
        return "kernel"
    if head.name == "module" and isinstance(head.arg, str):
        return f"module:{head.arg}"
    if head.name == "process" and head.arg is not None:
        return f"process:{head.arg}"
    if head.name == "process":
        return "process:"
    raise ProbeSyntaxError(text, head.pos, 'expected kernel, module("NAME") or process("PATH")')


def _stap_function(text: str, what: _Component, base: ProbePoint) -> ProbePoint:
    if not isinstance(what.arg, str):
        raise ProbeSyntaxError(text, what.pos, ".function takes a string pattern")
    func, file, line = _function_spec(what.arg, text, what.place)
    # built at once rather than by replace(): a script's every .function point comes here
    return ProbePoint(text, "stap", base.mode, base.target, func, file, line, optional=base.optional)


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
    sep = re.search(r"[:+]", where)  # tapsets.cxx parse_function_spec: find_first_of(":+")
    if sep:
        file, ln = where[: sep.start()], where[sep.start() + (sep.group() == ":") :]
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
        elif p.name == "label" and isinstance(p.arg, str):
            point = replace(point, mode=LABEL, callee=p.arg)
        elif p.name in ("maxactive", "absolute", "nearest"):
            continue  # how the probe is placed, not where
        else:
            raise ProbeSyntaxError(text, p.pos, f"unexpected .{p.name} here")
    return point


#: Each use of an alias repeats its points: a few MiB of script could name billions.
MAX_POINTS = 1_000_000


def split_top(s: str, sep: str) -> list[str]:
    if sep not in s:  # one piece: most headers
        return [s]
    out, depth, start, quoted = [], 0, 0, False
    for i, c in enumerate(s):
        if c == '"' and (i == 0 or s[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and c in "({[)}]":
            depth += 1 if c in "({[" else -1
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
    if re.fullmatch(r"%?sdt_\w+:\w+|%\w+:?\w*", body):  # a pre-defined SDT or cached event
        return ProbePoint(text=text, tool="perf", mode=NO_CODE, kind="an SDT or cached event")
    m = re.search(r"(?<!\\)[;:+%]", body)  # '\\' escapes a special character (ESCAPED CHARACTER)
    head, tail = (body[: m.start()], body[m.start() :]) if m else (body, "")
    at = re.search(r"(?<!\\)@", head)
    func, src = (head[: at.start()], head[at.end() :]) if at else (head, "")
    func, src = _unescape(func), _unescape(src)
    base = ProbePoint(text=text, tool="perf", mode=ENTRY, args=_perf_args(argtext))
    if not func:
        raise ProbeSyntaxError(text, start, "expected a function or a source file name")
    is_function = bool(src) or bool(_C_NAME.match(func)) or "@" in func  # else SRC:ALN
    point = replace(base, function=func, file=src or None) if is_function else replace(base, file=func)
    return _perf_tail(text, start + len(head), tail, point)


def _unescape(s: str) -> str:
    return re.sub(r"\\([=@+:;])", r"\1", s)


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


#: perf probe's options that take a value (tools/perf/builtin-probe.c ``options``), by what
#: they do to the points; ``None``: a query that places no probe.
_PERF_VALUE_OPTIONS = {
    "-a": "add",
    "--add": "add",
    "-D": "add",
    "--definition": "add",
    "-d": "del",
    "--del": "del",
    "-L": "line",
    "--line": "line",
    "-V": "vars",
    "--vars": "vars",
    "-m": "module",
    "--module": "module",
    "-x": "exec",
    "--exec": "exec",
    "-k": "vmlinux",
    "--vmlinux": "vmlinux",
    "-s": "source",
    "--source": "source",
    "--max-probes": "ignore",
    "--target-ns": "ignore",
    "--filter": "ignore",
    "--symfs": "ignore",
}
_PERF_FLAGS = {
    "-f",
    "--force",
    "-n",
    "--dry-run",
    "-q",
    "--quiet",
    "-v",
    "--verbose",
    "--no-inlines",
    "--externs",
    "--demangle",
    "--no-demangle",
    "--demangle-kernel",
    "--cache",
    "--bootconfig",
    "-l",
    "--list",
    "-F",
    "--funcs",
    "--range",
    "--no-range",
}


def perf_command(text: str) -> list[ProbePoint]:
    """``[sudo] perf probe [OPTIONS] [PROBE…]`` as people paste it: every ``-a``/``--add``/
    ``--add=``/``-D`` is a point, the words left over are one more (perf joins them,
    ``parse_probe_event_argv``); ``-m``/``-x`` say where; ``--del``, ``-L``, ``-V``, ``-l``
    place nothing."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise ProbeSyntaxError(text, len(text), str(e)) from None
    while words and words[0] in ("sudo", "$", "#"):
        words = words[1:]
    words = words[2:] if words[:2] == ["perf", "probe"] else words[1:]
    target, adds, others, loose = "kernel", [], [], []
    i = 0
    while i < len(words):
        w = words[i]
        name, eq, value = w.partition("=") if w.startswith("--") else (w[:2], "", w[2:])
        if w.startswith("-") and not w[1:2].isdigit() and name in _PERF_VALUE_OPTIONS:
            if not value and not eq:
                i += 1
                if i >= len(words):
                    raise ProbeSyntaxError(text, len(text), f"{name} needs a value")
                value = words[i]
            what = _PERF_VALUE_OPTIONS[name]
            if what == "add":
                adds.append(value)
            elif what in ("module", "exec"):
                target = _perf_target(what, value)
            elif what in ("del", "line", "vars"):
                others.append(f"{name} {value}")
        elif w.startswith("-") and w.partition("=")[0] in _PERF_FLAGS:
            if w in ("-l", "--list", "-F", "--funcs"):
                others.append(w)
        elif w.startswith("-") and len(w) > 1:
            raise ProbeSyntaxError(text, _find(text, w), f"unknown perf probe option {w}")
        else:
            loose.append(w)
        i += 1
    if loose and loose[0].startswith("/") and len(loose) > 1 and target == "kernel":
        # "perf probe checks if the first argument after the options is an absolute path"
        target = _perf_target("module" if loose[0].endswith(".ko") else "exec", loose.pop(0))
    if loose:
        adds.append(" ".join(loose))
    out = [replace(parse_perf(spec), target=target, header=text if len(adds) > 1 else None) for spec in adds]
    out += [
        ProbePoint(text=f"perf probe {o}", tool="perf", mode=NO_CODE, kind=_PERF_QUERY[o.split()[0]]) for o in others
    ]
    if not out:
        raise ProbeSyntaxError(text, len(text), "perf probe with nothing to add")
    return out


_PERF_QUERY = {
    "-d": "deletes an event",
    "--del": "deletes an event",
    "-L": "lists lines",
    "--line": "lists lines",
    "-V": "lists variables",
    "--vars": "lists variables",
    "-l": "lists events",
    "--list": "lists events",
    "-F": "lists functions",
    "--funcs": "lists functions",
}


def perf_tools(text: str, tool: str) -> ProbePoint:
    """A line of Brendan Gregg's perf-tools ``kprobe``/``uprobe`` (``kprobe [-p PID] [-d SECS]
    'p:ev SYM ARGS' [FILTER]``): its definition is a kprobe_events line, where ``p:SYM`` alone
    also names the symbol, and ``uprobe``'s ``p:BIN:FUNC`` a program and its function."""
    try:
        words = shlex.split(text)
    except ValueError as e:
        raise ProbeSyntaxError(text, len(text), str(e)) from None
    words = words[1:] if words[0] == "sudo" else words
    rest = words[1:]
    while rest and rest[0].startswith("-"):
        rest = rest[2:] if rest[0] in ("-p", "-d", "-L") else rest[1:]
    if not rest:
        raise ProbeSyntaxError(text, len(text), f"{tool}: expected a probe definition")
    spec = rest[0]
    words = spec.split()
    if tool == "kprobe" and re.match(r"[pr]:", spec) and (len(words) < 2 or re.search(r"[=%$]", words[1])):
        # kernel/kprobe: "if probe name unspecified, default to function name"
        spec = f"{spec[:2]}{words[0][2:]} {spec[2:]}"
    u = re.fullmatch(r"([pr])(?::([A-Za-z_]\w*))?\s*(?:\s|:)([^\s:]+):(\S+)(.*)", spec) if tool == "uprobe" else None
    if u:
        kind, _, binary, func, args = u.groups()
        point = parse_kprobe_event(f"{kind} {func}{args}")
        return replace(point, text=spec, target=f"process:{binary}")
    return replace(parse_kprobe_event(spec), text=spec)


def _perf_target(what: str, value: str) -> str:
    """``-m`` takes a module name or a .ko path; ``-x`` a program."""
    if what == "exec":
        return f"process:{value}"
    stem = value.rsplit("/", 1)[-1].split(".ko")[0]
    return f"module:{stem}"


def _find(text: str, word: str) -> int:
    at = text.find(word)
    return max(at, 0)


def parse_all(text: str) -> list[ProbePoint | ProbeSyntaxError]:
    """Every point one argument or line names: a stap brace group or comma list, a bpftrace
    header of several attach points, a whole ``perf probe`` command line, an ``echo … >
    kprobe_events`` line; a point that does not parse is its error, the others still are."""
    s = text.strip()
    if _RAW_BYTE.search(text) or not s:
        return [_one(text)]
    echo = re.fullmatch(r"(?:sudo\s+)?echo\s+(?:-n\s+)?(['\"]?)(.*?)\1\s*>>?\s*\S*(?:k|u)probe_events", s)
    if echo:
        s = echo.group(2)
    tool = re.match(r"(?:sudo\s+)?(?:\S*/)?(kprobe|uprobe)\s", s)
    if tool:
        try:
            return [perf_tools(s, tool.group(1))]
        except ProbeSyntaxError as e:
            return [e]
    if re.match(r"(sudo\s+)?perf\s+probe\b|perf-probe\b", s):
        try:
            return list(perf_command(s))
        except ProbeSyntaxError as e:
            return [e]
    if _is_stap(s):
        return _each(s, split_top(s, ","), stap_points)
    if _is_bpftrace(s) and "," in s:
        return _each(s, split_top(s, ","), lambda t: [parse_bpftrace(t)])
    return [_one(s if echo else text)]


def _each(
    text: str, pieces: list[str], parse_one: Callable[[str], list[ProbePoint]]
) -> list[ProbePoint | ProbeSyntaxError]:
    out: list[ProbePoint | ProbeSyntaxError] = []
    at = 0
    for piece in pieces:
        lead = len(piece) - len(piece.lstrip())
        try:
            points = parse_one(piece.strip())
            out += [replace(p, header=text) if len(pieces) > 1 else p for p in points]
        except ProbeSyntaxError as e:
            out.append(ProbeSyntaxError(text, at + lead + e.pos, e.message))
        at += len(piece) + 1
    return out


def _one(text: str) -> ProbePoint | ProbeSyntaxError:
    try:
        return parse(text)
    except ProbeSyntaxError as e:
        return e


# -- bpftrace and kprobe_events ------------------------------------------------------------------

#: bpftrace's probe types and their short names (src/ast/attachpoint.h ``probetypeName``).
_BPFTRACE_KIND = {
    "k": "kprobe",
    "kr": "kretprobe",
    "u": "uprobe",
    "ur": "uretprobe",
    "f": "fentry",
    "fr": "fexit",
    "kfunc": "fentry",
    "kretfunc": "fexit",
    "t": "tracepoint",
    "rt": "rawtracepoint",
    "U": "usdt",
    "p": "profile",
    "i": "interval",
    "s": "software",
    "h": "hardware",
    "w": "watchpoint",
    "aw": "asyncwatchpoint",
    "it": "iter",
}
#: Probe types that patch no code, and what each is instead.
_BPFTRACE_NO_CODE = {
    "BEGIN": "runs when the program starts",
    "END": "runs when the program ends",
    "begin": "runs when the program starts",
    "end": "runs when the program ends",
    "self": "a bpftrace signal",
    "profile": "a timer on every CPU",
    "interval": "a timer",
    "software": "a software perf event",
    "hardware": "a hardware perf counter",
    "watchpoint": "a hardware watchpoint on data",
    "asyncwatchpoint": "a hardware watchpoint on data",
    "iter": "a BPF iterator over kernel objects",
    "usdt": "an SDT marker, placed by the program's build",
    "test": "a BPF test run",
    "bench": "a BPF benchmark run",
}
BPFTRACE_TYPES = frozenset(_BPFTRACE_KIND) | set(_BPFTRACE_KIND.values()) | set(_BPFTRACE_NO_CODE)


def _bpftrace_parts(text: str) -> list[tuple[int, str]]:
    """The attach point cut at ``:`` outside quotes, each part with its offset (bpftrace's
    ``AttachPointParser::lex_attachpoint``; quotes are dropped, a ``\\`` escapes inside them)."""
    parts: list[tuple[int, str]] = []
    start, quoted = 0, False
    cur: list[str] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c == ":" and not quoted:
            parts.append((start, "".join(cur)))
            start, cur = i + 1, []
        elif c == '"':
            quoted = not quoted
        elif quoted and c == "\\" and i + 1 < len(text):
            i += 1
            cur.append(text[i])
        else:
            cur.append(c)
        i += 1
    parts.append((start, "".join(cur)))
    return parts


def parse_bpftrace(text: str) -> ProbePoint:
    """One attach point: ``TYPE:…`` as bpftrace's ``AttachPointParser`` splits it."""
    _check_utf8(text)
    parts = _bpftrace_parts(text)
    kind = _BPFTRACE_KIND.get(parts[0][1], parts[0][1])
    rest = parts[1:]
    base = ProbePoint(text=text, tool="bpftrace", mode=CALL, notes=(kind,), kind=kind)
    if kind in _BPFTRACE_NO_CODE:
        return replace(base, mode=NO_CODE, kind=f"{kind}: {_BPFTRACE_NO_CODE[kind]}")
    if kind in ("tracepoint", "rawtracepoint"):
        return _bpftrace_tracepoint(text, kind, rest, base)
    if kind not in ("kprobe", "kretprobe", "uprobe", "uretprobe", "fentry", "fexit"):
        raise ProbeSyntaxError(text, 0, f"invalid probe type: {parts[0][1]}")
    if kind in ("kretprobe", "uretprobe", "fexit"):
        base = replace(base, mode=RETURN)
    if kind.startswith("u"):
        if len(rest) not in (2, 3):  # BIN:FUNC, BIN:LANG:FUNC
            raise ProbeSyntaxError(text, len(text), f"{kind} needs BINARY:FUNCTION")
        base = replace(base, target=f"process:{rest[0][1]}")
    elif len(rest) == 2:  # kprobe:MODULE:FUNC, fentry:MODULE:FUNC
        base = replace(base, target=f"module:{rest[0][1]}")
    elif len(rest) != 1:
        raise ProbeSyntaxError(text, len(text), f"{kind} takes 1 or 2 arguments, [MODULE:]FUNCTION")
    at, spec = rest[-1]
    return _symbol_offset(text, at, spec, base)


def _bpftrace_tracepoint(text: str, kind: str, rest: list[tuple[int, str]], base: ProbePoint) -> ProbePoint:
    if kind == "tracepoint" and len(rest) != 2:
        raise ProbeSyntaxError(text, len(text), "tracepoint takes CATEGORY:NAME")
    if kind == "rawtracepoint" and len(rest) not in (1, 2):
        raise ProbeSyntaxError(text, len(text), "rawtracepoint takes [MODULE:]NAME")
    category = rest[0][1] if kind == "tracepoint" else ""
    if not rest[-1][1]:
        raise ProbeSyntaxError(text, rest[-1][0], "expected a tracepoint name")
    return replace(base, mode=TRACEPOINT, function=rest[-1][1], kind=category)


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


def parse_fail_function(text: str) -> ProbePoint:
    """``fail_function:FUNC[=RETVAL]``: what ``echo FUNC > /sys/kernel/debug/fail_function/inject``
    (and ``echo RETVAL > …/FUNC/retval``) asks for; the kernel looks the exact symbol up
    (kernel/fail_function.c ``fei_write``: ``kallsyms_lookup_name``)."""
    spec = text[len("fail_function:") :]
    name, eq, value = spec.partition("=")
    base = ProbePoint(text=text, tool="fail_function", mode=CALL, glob=False)
    if eq:
        if not re.fullmatch(r"-?(0[xX][0-9a-fA-F]+|\d+)", value):
            raise ProbeSyntaxError(text, len(text) - len(value), f"bad return value {value!r}")
        base = replace(base, notes=(f"retval={int(value, 0)}",))
    return _symbol_offset(text, len("fail_function:"), name, base)


def parse_kprobe_event(text: str) -> ProbePoint:
    """A line of tracefs ``kprobe_events`` / ``uprobe_events``, cut into words as the kernel
    cuts it (trace_kprobe.c ``__trace_kprobe_create``, Linux 6.1): ``p[:[GRP/][EV]] [MOD:]SYM
    [+OFFS]|ADDR [FETCHARGS]``, ``r[MAXACTIVE][:…] SYM[%return]…``, ``-:[GRP/]EV`` (a deletion,
    which places nothing). Fetch-args follow the symbol and are never part of it."""
    words = [(m.start(), m.group()) for m in re.finditer(r"\S+", text)]
    head_at, head = words[0]
    m = re.fullmatch(r"([pr-])(\d*)(?::(.*))?", head)
    if not m:
        raise ProbeSyntaxError(text, head_at, f"{head!r}: expected p, r or -, then :[GROUP/]EVENT")
    kind, maxactive, event = m.groups()
    if event is not None and not re.fullmatch(r"(?:[A-Za-z_]\w*/)?(?:[A-Za-z_]\w*)?", event):
        raise ProbeSyntaxError(text, head_at + head.index(":") + 1, f"{event!r} is not [GROUP/]EVENT")
    if kind == "-":
        if maxactive or not event or len(words) > 1:
            raise ProbeSyntaxError(text, head_at, "a deletion is -:[GROUP/]EVENT alone")
        return ProbePoint(text=text, tool="kprobe_events", mode=NO_CODE, kind=f"deletes the event {event}")
    if maxactive and kind == "p":  # MAXACT_NO_KPROBE
        raise ProbeSyntaxError(text, head_at + 1, "maxactive is only for return probes (r)")
    if len(words) < 2:
        raise ProbeSyntaxError(text, len(text), "expected the probed symbol or address")
    at, spec = words[1]
    base = ProbePoint(text=text, tool="kprobe_events", mode=RETURN if kind == "r" else CALL, glob=False)
    if spec.endswith("%return"):  # 5.11+: p SYM%return is a return probe
        spec, base = spec[: -len("%return")], replace(base, mode=RETURN)
    if ":" in spec and not _NUMBER.match(spec):
        module, _, spec = spec.rpartition(":")
        target = f"process:{module}" if "/" in module else f"module:{module}"
        base = replace(base, target=target)
        at += len(module) + 1
    # 6.1's fetch-args are registers, stack slots, $argN and memory: none names a variable
    return _symbol_offset(text, at, spec, base)


#: One component of a SystemTap point: its name and its argument (``function("f")``).
Component = tuple[str, str | int | None]


def stap_locations(text: str) -> list[tuple[tuple[Component, ...], bool, bool]]:
    """The component lists a SystemTap point names, brace groups expanded, each with whether
    it is optional (``?``) and sufficient (``!``) — what stap matches against its probe
    families and tapset aliases (an ``if (COND)`` after it is not read)."""
    _check_utf8(text)
    seqs, _, optional, sufficient = _marked_sequences(text)
    out = []
    for seq in seqs:
        marks = [c.name for c in seq if c.name in ("?", "!")]
        parts = tuple((c.name, c.arg) for c in seq if c.name not in ("?", "!"))
        out.append((parts, optional or bool(marks), sufficient or "!" in marks))
    return out

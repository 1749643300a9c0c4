"""Property-based tests of the probe syntax: any text is either probe points or a
``ProbeSyntaxError`` with a caret inside it — never another exception — and points built
from the grammar parse back to what they were built from.

Kept fast in the suite; a long session runs by hand with
``PATCHSCOPE_FUZZ_EXAMPLES=100000 pytest tests/test_probe_fuzz.py``."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

import patchscope
from conftest import BIN
from patchscope.probes import scripts
from patchscope.probes import syntax as ps
from patchscope.report import check

EXAMPLES = int(os.environ.get("PATCHSCOPE_FUZZ_EXAMPLES", "150"))
fuzz = settings(
    max_examples=EXAMPLES,
    deadline=None if EXAMPLES > 1000 else 2000,
    database=None,  # the suite leaves nothing behind
    suppress_health_check=[HealthCheck.too_slow],
)

#: Pieces of every dialect's grammar, so random text reaches past the first character.
GRAMMAR = [
    *("kernel", "module", "process", ".function", ".statement", ".call", ".return", ".inline"),
    *(".callee", ".callees", ".exported", ".maxactive", "(", ")", '"', "\\", "@", ":", "+", "-"),
    *("%return", ";", "=", "*", "?", "!", " ", ",", "kprobe:", "kretprobe:", "uprobe:", "fentry:"),
    *("fexit:", "kfunc:", "ur:", "p ", "r ", "p:", "r5:", "0x", "0", "7", "18446744073709551616"),
    *("main", "tree_sum", "a.c", "/bin/x", "$var", "%ax", "if", "\n", "{", "}", "/*", "*/", "#"),
    *("BEGIN", "END", "tracepoint:", "t:", "interval:s:1", "/pid == 1/", "override(-12)", "$1", "@x"),
    *("#include <x.h>", "struct s { int a; };", "config = {", "fn f(): int {", "//", "'", "`"),
]
#: A byte that is not UTF-8, as Python decodes it (``surrogateescape``).
RAW_BYTES = st.characters(min_codepoint=0xDC80, max_codepoint=0xDCFF)
TEXT = st.one_of(
    st.text(),
    st.lists(st.sampled_from(GRAMMAR) | st.text(max_size=3) | RAW_BYTES, max_size=30).map("".join),
)


def parses_or_says_where(text: str) -> ps.ProbePoint | ps.ProbeSyntaxError:
    try:
        return ps.parse(text)
    except ps.ProbeSyntaxError as e:
        assert 0 <= e.pos <= len(e.text)
        e.pointer().encode()  # printable: a byte that is not UTF-8 is shown as U+FFFD
        return e


@fuzz
@given(TEXT)
def test_any_text_is_a_point_or_a_caret_error(text: str) -> None:
    parses_or_says_where(text)


@fuzz
@given(TEXT)
@example("$1\udc80")  # found by this test: an error's text holding a byte that is not UTF-8
def test_any_script_is_points_and_caret_errors(source: str) -> None:
    for p in scripts.stp_probe_points("probe " + source) + scripts.stp_probe_points(source):
        assert isinstance(p, ps.ProbePoint | ps.ProbeSyntaxError)
        if isinstance(p, ps.ProbeSyntaxError):
            assert 0 <= p.pos <= len(p.text)
            p.pointer().encode()


@fuzz
@given(TEXT)
def test_any_bpftrace_program_is_points_and_caret_errors(source: str) -> None:
    for p in scripts.bt_probe_points(source) + scripts.bt_probe_points(source + " { @[probe] = count(); }"):
        assert isinstance(p, ps.ProbePoint | ps.ProbeSyntaxError)
        if isinstance(p, ps.ProbeSyntaxError):
            assert 0 <= p.pos <= len(p.text)
            p.pointer().encode()


#: A word that starts another dialect (``f:1`` is bpftrace's fentry, ``h:1`` its hardware
#: probe, not perf's line 1: such a perf point is written as its whole ``perf probe`` line).
HEADS = {"kernel", "module", "process", *ps.BPFTRACE_TYPES}
NAME = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,20}", fullmatch=True).filter(lambda n: n not in HEADS)
FILE = st.from_regex(r"[a-z][a-z0-9_/]{0,12}\.c", fullmatch=True)
LINE = st.integers(1, (1 << ps.LINE_BITS) - 1 - 50)
OFFSET = st.integers(0, (1 << ps.ADDRESS_BITS) - 1)


@fuzz
@given(NAME, FILE, LINE, st.integers(0, 50), st.sampled_from(["", ".call", ".return", ".inline"]))
def test_stap_points_round_trip(name: str, file: str, low: int, span: int, suffix: str) -> None:
    line = ps.LineSpec(low, low + span)
    p = ps.parse(f'kernel.function("{name}@{file}:{line}"){suffix}')
    assert (p.tool, p.function, p.file, p.line) == ("stap", name, file, line)
    assert p.mode == {"": ps.ENTRY, ".call": ps.CALL, ".return": ps.RETURN, ".inline": ps.INLINE}[suffix]


@fuzz
@given(NAME, OFFSET, st.booleans(), st.sampled_from(["kprobe:", "p ", "p:ev "]))
def test_symbol_offsets_round_trip(name: str, offset: int, hexa: bool, head: str) -> None:
    p = ps.parse(f"{head}{name}+{offset:#x}" if hexa else f"{head}{name}+{offset}")
    assert (p.function, p.offset) == (name, offset)


@fuzz
@given(NAME, st.one_of(LINE.map(str), OFFSET.map(lambda o: f"+{o:#x}")))
def test_perf_points_round_trip(name: str, where: str) -> None:
    p = ps.parse(f"{name}:{where}" if where[0] != "+" else name + where)
    if where[0] == "+":
        assert p.offset == int(where[1:], 16)
    else:
        assert p.line == ps.LineSpec(int(where), int(where), relative=True)


@fuzz
@given(st.integers(1 << ps.ADDRESS_BITS, 1 << 80), st.sampled_from(["uprobe:x:main+", "main+", "kprobe:main+", ""]))
def test_numbers_past_64_bits_are_caret_errors(value: int, head: str) -> None:
    e = parses_or_says_where(head + str(value))
    assert isinstance(e, ps.ProbeSyntaxError) and "does not fit in 64 bits" in e.message


_corpus: list[patchscope.Binary] = []


@settings(fuzz, max_examples=max(EXAMPLES // 3, 20))
@given(st.lists(TEXT, min_size=1, max_size=3))
def test_any_points_are_judged_without_an_exception(texts: list[str]) -> None:
    """Whatever parses is resolved and judged on the corpus: an error is the point's own."""
    if not _corpus:
        _corpus.append(patchscope.open(BIN / "x86_64/corpus"))
    points = [parses_or_says_where(t) for t in texts]
    doc = check.document(_corpus[0], points)
    assert len(doc["points"]) == len(points)

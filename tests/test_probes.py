"""Probe points: the four dialects' parsers, errors that point at the character, and where each
tool really lands on the fixture (checked against objdump/nm facts of fixtures/bin/x86_64)."""

from __future__ import annotations

import subprocess

import pytest

import patchscope
from conftest import BIN
from patchscope.index.context import Context
from patchscope.probes import scripts
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import resolve

X86 = BIN / "x86_64/corpus"


@pytest.fixture(scope="module")
def cx() -> Context:
    return Context(patchscope.open(X86))


# -- syntax ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "tool", "mode", "function", "file", "line", "offset"),
    [
        ('kernel.function("tcp_sendmsg").return', "stap", "return", "tcp_sendmsg", None, None, None),
        ('kernel.function("trace_event_name").inline', "stap", "inline", "trace_event_name", None, None, None),
        ('kernel.function("f@net/ipv4/*.c:100-120")', "stap", "entry", "f", "net/ipv4/*.c", "100-120", None),
        ('kernel.statement("*@mm/page_alloc.c:6132")', "stap", "statement", "*", "mm/page_alloc.c", "6132", None),
        ('process("/lib/libc.so.6").function("malloc").call', "stap", "call", "malloc", None, None, None),
        ("do_sys_open:12 filename", "perf", "statement", "do_sys_open", None, "+12", None),
        ("vfs_read+0x1a", "perf", "statement", "vfs_read", None, None, 0x1A),
        ("do_exit%return", "perf", "return", "do_exit", None, None, None),
        ("fs/open.c:1200", "perf", "statement", None, "fs/open.c", "1200", None),
        ("kprobe:vfs_read+0x1a", "bpftrace", "statement", "vfs_read", None, None, 0x1A),
        ("kretprobe:do_exit", "bpftrace", "return", "do_exit", None, None, None),
        ("uprobe:/lib/x86_64-linux-gnu/libc.so.6:malloc", "bpftrace", "call", "malloc", None, None, None),
        ("fentry:vfs_read", "bpftrace", "call", "vfs_read", None, None, None),
        ("p:grp/ev do_sys_open dfd=%di", "kprobe_events", "call", "do_sys_open", None, None, None),
        ("r:ev do_exit", "kprobe_events", "return", "do_exit", None, None, None),
    ],
)
def test_dialects_parse(text, tool, mode, function, file, line, offset) -> None:
    p = ps.parse(text)
    assert (p.tool, p.mode, p.function, p.file) == (tool, mode, function, file)
    assert (str(p.line) if p.line else None) == line
    assert p.offset == offset


def test_targets_and_arguments() -> None:
    assert ps.parse('module("ext4").function("ext4_*")').target == "module:ext4"
    assert ps.parse("uprobe:/bin/bash:readline").target == "process:/bin/bash"
    assert ps.parse("ev=do_sys_open dfd filename:string $params").args == ("dfd", "filename", "$params")
    assert ps.parse("0xffffffff81000000").address == 0xFFFFFFFF81000000


@pytest.mark.parametrize(
    ("text", "pos", "message"),
    [
        ('kernel.function("foo"', 21, "expected ')'"),
        ('kernel.function("foo', 16, "unterminated string"),
        ('kernel.function("foo").bogus', 23, "unexpected .bogus"),
        ('kernel.funtion("x")', 7, "expected .function"),
        ("kprobe:foo bar", 10, "is not a function name"),
        ("do_exit%exit", 8, "unknown %exit"),
        ("kretprobe:do_exit+4", 18, "a return probe takes no offset"),
    ],
)
def test_malformed_points_say_where(text, pos, message) -> None:
    with pytest.raises(ps.ProbeSyntaxError) as e:
        ps.parse(text)
    assert e.value.pos == pos, e.value.pointer()
    assert message in e.value.message
    assert e.value.pointer().splitlines()[1] == " " * pos + "^"


def test_stp_script_points_aliases_and_target_variables() -> None:
    script = """# a comment with probe kernel.function("nope")
probe my_open = kernel.function("do_sys_open") { }
probe kernel.function("a"), kernel.function("b").return ? { printf("{%d}", $len) }
function f() { probe_x = 1 }
probe my_open { println($filename, $$vars) }
probe kernel.function("c" { }
"""
    points = scripts.stp_probe_points(script, "t.stp")
    good = [p for p in points if isinstance(p, ps.ProbePoint)]
    bad = [p for p in points if isinstance(p, ps.ProbeSyntaxError)]
    assert [(p.function, p.mode, p.origin) for p in good] == [
        ("a", "entry", "t.stp:3"),
        ("b", "return", "t.stp:3"),
        ("do_sys_open", "entry", "t.stp:5"),
    ]
    assert good[1].optional and good[0].args == ("len",) and good[2].args == ("filename",)
    assert len(bad) == 1 and bad[0].origin == "t.stp:6"


# -- resolution on the fixture -------------------------------------------------------------------


def _symbols() -> dict[str, int]:
    out = subprocess.run(["nm", X86], capture_output=True, text=True, check=True).stdout
    return {n: int(a, 16) for a, _, n in (line.split() for line in out.splitlines() if len(line.split()) == 3)}


def _where(cx: Context, text: str) -> tuple[list[tuple[str, str]], list[str], list[str]]:
    r = resolve(cx, ps.parse(text))
    return [(cx.instance_symbol(lnd.instance), lnd.kind) for lnd in r.landings], [m.where for m in r.missed], r.errors


def test_stap_misses_the_part_body_perf_does_not(cx) -> None:
    landings, missed, _ = _where(cx, 'process("x").function("buf_process")')
    assert landings == [("part_entry", "inline")] * 3
    assert missed == ["buf_process.part.0"]
    landings, missed, _ = _where(cx, "buf_process")
    assert ("buf_process.part.0", "entry") in landings and len(landings) == 4 and not missed


def test_perf_fails_on_cold_split_stap_does_not(cx) -> None:
    # a PIE: perf's DWARF pass fails, its symbol table places the entry; with a variable it
    # needs DWARF and fails (perf probe -x corpus -D 'hot_sum' / 'hot_sum n')
    landings, _, errors = _where(cx, "hot_sum")
    assert landings == [("hot_sum", "entry")] and not errors
    landings, _, errors = _where(cx, "hot_sum n")
    assert not landings and errors == ['perf: "Failed to find symbol at 0x1490"']
    landings, _, _ = _where(cx, 'process("x").function("hot_sum")')
    assert landings == [("hot_sum", "entry")]


def test_symbol_probes_need_the_clone_name(cx) -> None:
    _, _, errors = _where(cx, "kprobe:compute_level")
    assert "no symbol compute_level in this build, only as the clone compute_level.isra.0" in errors[0]
    r = resolve(cx, ps.parse("uprobe:x:compute_level.isra.0"))
    assert [lnd.address for lnd in r.landings] == [_symbols()["compute_level.isra.0"]]


def test_symbol_probe_misses_inline_sites(cx) -> None:
    landings, missed, _ = _where(cx, "uprobe:x:helper_both")
    assert landings == [("helper_both", "entry")]
    assert missed == ["2 inline sites"]


def test_offset_and_raw_address(cx) -> None:
    base = _symbols()["tm_increment"]
    r = resolve(cx, ps.parse("kprobe:tm_increment+0x4"))
    assert [(lnd.address, lnd.kind) for lnd in r.landings] == [(base + 4, "statement")]
    r = resolve(cx, ps.parse(hex(base + 4)))
    assert cx.instance_symbol(r.landings[0].instance) == "tm_increment"
    assert "not inside any function" in resolve(cx, ps.parse("0x10")).errors[0]


def test_line_probe_in_inlined_copies(cx) -> None:
    # part.c:6, in three copies inlined into part_entry: stap probes each copy's lowest row
    r = resolve(cx, ps.parse('process("x").statement("buf_process@src/part.c:6")'))
    assert len(r.landings) == 3
    assert all(lnd.line and lnd.line.line == 6 and lnd.line.inline_chain[0] == "buf_process" for lnd in r.landings)


def test_perf_refuses_a_line_sharing_its_address(cx) -> None:
    # perf probe -x corpus -D buf_process:2 (part.c:6): the first is_stmt row at 0x17c6 is
    # part.c:24, so perf refuses the whole point and names that line
    r = resolve(cx, ps.parse("buf_process:2"))
    assert not r.landings
    assert r.errors == [
        'perf: "This line is sharing the address with other lines. Please try to probe at src/part.c:24 instead."'
    ]


def test_return_probes_reach_out_of_line_only(cx) -> None:
    landings, missed, _ = _where(cx, 'process("x").function("helper_both").return')
    assert landings == [("helper_both", "return")]
    assert missed == ["2 inline sites"]


def test_diff_probes_between_o2_and_o3(tmp_path) -> None:
    """-O3 inlines drain everywhere (drain.part.0 is gone) and adds scale_mixed.constprop.0."""
    from patchscope.probes.scripts import load_points
    from patchscope.report import probe_diff

    f = tmp_path / "probes.txt"
    f.write_text('# written against -O2\nuprobe:x:drain.part.0\nprocess("x").function("scale_mixed")\n')
    f.write_text(f.read_text() + 'kernel.function("x\n')
    old, new = patchscope.open(X86), patchscope.open(BIN / "x86_64-O3/corpus")
    gone, clone, broken = probe_diff.document(old, new, load_points(str(f)))
    # resolves in OLD, not in NEW
    assert (gone["old"]["verdict"], gone["new"]["verdict"]) == ("gray", "unresolved")
    assert gone["lost"] == ["drain entry in drain.part"] and gone["gained"] == []
    assert clone["gained"] == ["scale_mixed entry in scale_mixed.constprop"] and clone["lost"] == []
    assert (clone["old"]["verdict"], clone["new"]["verdict"]) == ("safe", "gray")
    assert broken["old"]["verdict"] == broken["new"]["verdict"] == "unresolved"

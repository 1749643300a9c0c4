"""Probe input that once broke ``check`` or made it lie: invented callees, offsets past a
function's end, offsets where the tool takes none, bytes that are not UTF-8, hostile sizes."""

from __future__ import annotations

import fnmatch
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

import patchscope
from conftest import BIN
from patchscope.probes import scripts, writes
from patchscope.probes import syntax as ps
from patchscope.probes.resolve import Landing
from patchscope.report import check

X86 = BIN / "x86_64/corpus"


def judge(binary: Path | patchscope.Binary, *texts: str) -> list[dict]:
    b = binary if isinstance(binary, patchscope.Binary) else patchscope.open(binary)
    return check.document(b, [ps.parse(t) for t in texts])["points"]


@pytest.fixture(scope="module")
def kernel(vmlinux: Path) -> patchscope.Binary:
    return patchscope.open(vmlinux)


def called(rec: dict) -> set[str]:
    return {lnd["in"] for lnd in rec["landings"] if lnd["kind"] == "entry"}


def test_callees_are_the_direct_calls_objdump_shows() -> None:
    (rec,) = judge(X86, 'process.function("main").callees')
    # objdump -d: main and main.cold call these 31 functions directly (and printf through the
    # PLT, and double_fp through a pointer, which name no function of the binary)
    assert called(rec) == {
        "hot_sum",
        "parse_level",
        "constprop_entry",
        "isra_entry",
        "part_entry",
        "combo_entry",
        "inline_entry",
        "helper_both",
        "wrapper_tail",
        "wrapper_notail",
        "wrapper_xtu",
        "wrapper_indirect",
        "dispatch_tail",
        "is_even_rec",
        "is_odd_rec",
        "fact_tail",
        "tree_sum",
        "ackermann",
        "tree_depth",
        "collide_a_entry",
        "collide_b_entry",
        "cas_increment",
        "fetch_add",
        "exchange",
        "cas_byte",
        "atomic_max",
        "tm_increment",
        "spin_trylock",
        "spin_unlock",
        "die_unreachable",
        "fatal_error",
    }


def test_callees_on_the_kernel(kernel: patchscope.Binary) -> None:
    (rec,) = judge(kernel, 'kernel.function("vfs_read").callees')
    # objdump -d: vfs_read calls rw_verify_area, __fsnotify_parent, fsnotify, __get_task_ioprio
    assert {"rw_verify_area", "__fsnotify_parent", "fsnotify", "__get_task_ioprio"} <= called(rec)
    assert "parse_nolapic_timer" not in called(rec)


def run(*args: str | bytes | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", *args],
        capture_output=True,
        text=True,
        errors="replace",
        timeout=300,
    )


def test_offset_past_the_end_is_refused_as_each_tool_refuses_it() -> None:
    uprobe, huge, perf, kprobe, wide, inside = judge(
        X86,
        f"uprobe:{X86}:main+99999999",
        "uprobe:x:main+18446744073709551615",
        "tree_sum+1000",
        "p:ev main+0x10000",
        "p:ev main+0x100000000",
        "uprobe:x:main+0x2f",
    )
    assert uprobe["errors"] == ["bpftrace: \"Offset outside the function bounds ('main' size is 600)\""]
    assert huge["errors"] == uprobe["errors"] and not huge["landings"]
    # perf's DWARF pass says "Specified offset is out of tree_sum", then its symbol table does
    assert perf["errors"] == ['perf: "Offset 1000 is bigger than the size of tree_sum"']
    assert "past the end of main (600 bytes)" in kprobe["errors"][0]
    assert "Invalid probed address or symbol" in wide["errors"][0]
    assert {r["verdict"] for r in (uprobe, huge, perf, kprobe, wide)} == {"unresolved"}
    assert inside["landings"][0]["address"] == "0x116f"  # main + 0x2f, as objdump places it


def test_offset_past_the_end_on_the_kernel(kernel: patchscope.Binary) -> None:
    (rec,) = judge(kernel, "vfs_read+0x100000")
    assert rec["errors"] == ['perf: "Offset 1048576 is bigger than the size of vfs_read"']
    assert not rec["landings"]


def perf_places(target: list[str], point: str) -> bool:
    """Whether perf probe itself (a dry run, ``-D``) would place ``point``."""
    r = subprocess.run(["perf", "probe", *target, "-D", point], capture_output=True, text=True, timeout=120)
    return r.returncode == 0


def places_it(binary: Path | patchscope.Binary, point: str) -> bool:
    (rec,) = judge(binary, point)
    assert bool(rec["landings"]) != bool(rec["errors"]), rec
    return bool(rec["landings"])


needs_perf = pytest.mark.skipif(shutil.which("perf") is None, reason="perf absent (Debian's linux-perf)")


@needs_perf
@pytest.mark.parametrize("offset", [0, 4, 49, 51, 1000])
def test_offsets_as_perf_itself_places_them(offset: int) -> None:
    """tree_sum is 50 bytes: perf 6.1 places 0..50 and refuses past that."""
    point = f"tree_sum+{offset}"
    assert places_it(X86, point) == perf_places(["-x", str(X86)], point)


@needs_perf
def test_offset_at_the_end_as_perf_places_it() -> None:
    """perf 6.1 also places an offset equal to the symbol's size: its DWARF pass refuses it
    (outside the DIE), its symbol-table fallback checks offs > size (util/probe-event.c)."""
    assert places_it(X86, "tree_sum+50") == perf_places(["-x", str(X86)], "tree_sum+50")


@needs_perf
@pytest.mark.parametrize("offset", [0x10, 0x30B, 0x30C, 0x30D, 0x100000])
def test_kernel_offsets_as_perf_itself_places_them(vmlinux: Path, kernel: patchscope.Binary, offset: int) -> None:
    """vfs_read is 0x30c bytes in 6.1.0-56."""
    point = f"vfs_read+{offset:#x}"
    assert places_it(kernel, point) == perf_places(["-k", str(vmlinux)], point)


@pytest.mark.parametrize(
    ("text", "caret", "message"),
    [
        ("fentry:main+1", 11, "fentry takes no offset"),
        ("kfunc:main+0", 10, "fentry takes no offset"),
        ("fexit:vmlinux:main+1", 18, "fexit takes no offset"),
        ("main:" + "9" * 5000, 5, "does not fit in 32 bits"),
        ("uprobe:x:main+18446744073709551616", 14, "does not fit in 64 bits"),
        ("kprobe:main+0x10000000000000000", 12, "does not fit in 64 bits"),
        ("kernel.statement(0x1ffffffffffffffff)", 17, "does not fit in 64 bits"),
        ('kernel.function("f@a.c:4294967296")', 23, "does not fit in 32 bits"),
        ("kernel.statement(-5)", 17, "not negative"),
        ('kernel.function("a\\"b@x.c:12x")', 26, "bad line number"),  # the caret counts the escape
        ('process.function("ma\udcffin")', 20, "byte 0xff is not UTF-8"),
    ],
)
def test_hostile_points_are_caret_errors(text: str, caret: int, message: str) -> None:
    with pytest.raises(ps.ProbeSyntaxError) as e:
        ps.parse(text)
    assert (e.value.pos, message in e.value.message) == (caret, True)
    assert "\udcff" not in e.value.pointer()  # printable whatever the terminal's encoding


def test_an_escaped_quote_is_part_of_the_pattern() -> None:
    assert ps.parse('kernel.function("a\\"b")').function == 'a"b'


def test_one_bad_point_never_stops_the_others() -> None:
    hostile = ["main:" + "9" * 5000, 'kernel.function("a\\"b")', "uprobe:x:main+18446744073709551616"]
    r = run(X86, "--format=json", *hostile, os.fsencode('process.function("ma\udcffin")'), "uprobe:x:tree_sum")
    assert r.returncode == 2, r.stderr
    doc = json.loads(r.stdout)
    assert [p["verdict"] for p in doc["points"]] == ["unresolved"] * 4 + ["safe"]


def test_a_probe_file_that_is_not_utf8(tmp_path: Path) -> None:
    points = tmp_path / "points.txt"
    points.write_bytes(b"uprobe:x:ma\xffin\nuprobe:x:tree_sum\n")
    script = tmp_path / "probes.stp"
    script.write_bytes(
        b'probe process("x").function("a\xff") {} /* \xfe */\nprobe process("x").function("tree_sum") {}\n'
    )
    for args in (["--probes", points], [script]):
        r = run(X86, "--format=json", *args)
        assert r.returncode == 2 and not r.stderr
        bad, good = json.loads(r.stdout)["points"]
        assert "byte 0xff is not UTF-8" in bad["errors"][0] and "\ufffd" in bad["probe"]
        assert good["verdict"] == "safe"


def test_a_probe_file_without_end_is_refused() -> None:
    r = run(X86, "--probes", "/dev/zero")
    assert r.returncode == 2
    assert r.stderr.strip() == "patchscope: error: /dev/zero: larger than 16 MiB, too large for a probe file"


ORDINARY = 'probe process("x").function("tree_sum") { println($n) }\n'


@pytest.mark.parametrize(
    "script",
    [
        ORDINARY * (1_000_000 // len(ORDINARY)),  # 17,857 probes
        "/* " * 350_000,  # each comment once ran to the end: 150 KB took 39 s
        '"' * 1_000_000,
        "%{ " * 350_000,
        'probe process("x").function("a") ' + '"b", ' * 25_000 + "{}",
        "{" * 1_000_000,
        "".join(f'probe kernel.function("f{i}") {{}}\n' for i in range(32_000)),  # each point parsed
        # each conditional once checked every probe against every unknown branch: 8 s for 20,000
        "".join(f'%( CONFIG_X{i} == "y" %? probe kernel.function("g{i}") {{}} %)\n' for i in range(16_000)),
        "@define a(" * 100_000,  # each unclosed parameter list was read to the end: 27 s
        'probe kernel.function("f") {' + "@defined(" * 100_000 + "}",  # each unclosed guard too
    ],
    ids=[
        *("probes", "comments", "quotes", "embedded-c", "header-strings", "braces", "distinct", "conditional"),
        *("define-parameters", "defined-guards"),
    ],
)
def test_the_stp_reader_is_linear(script: str) -> None:
    """A megabyte of script is read in well under a second (the bound is generous for a
    loaded machine; a quadratic reader takes minutes)."""
    start = time.process_time()
    scripts.stp_probe_points(script)
    assert time.process_time() - start < 5


@pytest.mark.parametrize("tail", ['"\\', '"abc\\', 'probe kernel.function("f") { x = "\\'])
def test_a_script_ending_inside_a_string_on_a_backslash_is_read(tail: str) -> None:
    """A string cut by the end of the script right after its backslash matched no token (the
    tokenizer's assert, an internal error); it runs to the end, as any unterminated string."""
    points = scripts.stp_probe_points('probe kernel.function("a") {}\n' + tail)
    assert [p.function for p in points if isinstance(p, ps.ProbePoint)][:1] == ["a"]
    assert scripts.blank_comments(tail) == tail


@pytest.mark.parametrize(
    "handler",
    [" " * 1_000_000, "/* " * 350_000, "$x[" * 350_000, '$x = "' * 150_000, "@defined(" * 100_000],
    ids=["spaces", "comments", "indices", "strings", "guards"],
)
def test_the_write_reader_is_linear(handler: str) -> None:
    """The handler's writes are read in linear time too: a run of spaces was rescanned from
    each of its characters (1 MB: minutes), an unclosed comment from each ``/*``."""
    point = replace(ps.parse('process("x").function("f")'), handler=handler)
    start = time.process_time()
    writes.writes_in(handler)
    landing = Landing(0x1000, -1, ps.ENTRY, instance=0)
    writes.write_errors(
        point, ["0x1000"], [landing], [[{"name": "x", "type": "char", "state": "register"}]], [None], "x86_64"
    )
    assert time.process_time() - start < 5


@pytest.mark.parametrize(
    "program",
    ["typedef int a;\n" * 70_000 + "BEGIN {}", "kprobe:f { $x = 1; }\n" * 50_000, "struct s { int a; }\n" * 50_000],
    ids=["typedefs", "probes", "structs"],
)
def test_the_bt_reader_is_linear(program: str) -> None:
    """Each typedef once looked for the next brace, to the end: 10,000 of them took 78 s."""
    start = time.process_time()
    scripts.bt_probe_points(program)
    assert time.process_time() - start < 5


def test_diff_refuses_a_probe_file_without_end_too() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "diff", X86, X86, "--probes", "/dev/zero"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "larger than 16 MiB" in r.stderr


def test_aliases_cannot_multiply_points_without_bound() -> None:
    alias = "probe a = " + ", ".join(f'process("x").function("f{i}")' for i in range(2000)) + " {}\n"
    start = time.process_time()
    with pytest.raises(ps.ProbeFileError, match="more than 1,000,000 probe points"):
        scripts.stp_probe_points(alias + "probe a {}\n" * 1000, "many.stp")
    assert time.process_time() - start < 5  # refused before a point is parsed


@pytest.mark.parametrize("pattern", ["*sum*", "*_*_*", "*e*e*", "?r*[dt]*"])
def test_globs_with_several_stars_match_as_fnmatch_does(pattern: str) -> None:
    """Python's fnmatch translates a second star into an atomic group, which Arrow's RE2
    refused: ``kernel.function("*tcp*")`` was an internal error (found by the fuzzer)."""
    b = patchscope.open(X86)
    names = b.inventory.functions.column("name").to_pylist()
    found = {names[f] for f in b.find_functions(pattern)}
    assert found == {n for n in names if n and fnmatch.fnmatchcase(n, pattern)} and found

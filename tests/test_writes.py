"""Writes in handlers (`$var = v`, `$return = v`) and their verdicts: read from the script,
judged from the location lists and the register liveness, and proven by running them under
gdb (tests/write_proof.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import jsonschema
import numpy as np
import pytest

import patchscope
from patchscope import _core
from patchscope.index.context import Context
from patchscope.probes import scripts
from patchscope.probes import syntax as ps
from patchscope.probes.judge import Judge
from patchscope.probes.writes import LandingWrite, Write, partial, writes_in
from patchscope.rules.writes import NO_EFFECT, TAKES, WriteVerdict, does_not_fit, has_members, indexable, is_aggregate

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "fixtures/bin/x86_64-writes/corpus"
sys.path.insert(0, str(ROOT / "tests"))


def test_writes_are_read_from_the_handler() -> None:
    body = '{ $a = 1; $b += 2; ++$n; $p->f |= 4; $q[2] = 0; if ($c == 3) print($d); $return = -12 # $x = 1\n "$y = 2" }'
    found = [(w.name, w.path, w.op) for w in writes_in(body)]
    assert found == [
        ("a", "", "="),
        ("b", "", "+="),
        ("n", "", "++"),
        ("p", "->f", "|="),
        ("q", "[2]", "="),
        ("return", "", "="),
    ]
    assert writes_in("{ print($a == $b, $c <= 2) }") == []


def _point(tmp_path: Path, probe: str, body: str) -> ps.ProbePoint:
    script = tmp_path / "w.stp"
    script.write_text(f'probe process("{BIN}").{probe} {body}\n')
    (point,) = scripts.load_points(str(script))
    assert isinstance(point, ps.ProbePoint)
    return point


@pytest.fixture(scope="module")
def judge() -> Judge:
    return Judge(patchscope.open(BIN))


def _writes(judge: Judge, point: ps.ProbePoint) -> list[list[dict[str, object]]]:
    return [[w.record() for w in lv.writes] for lv in judge(point).landings]


def test_constprop_parameter_is_not_writable(judge: Judge, tmp_path: Path) -> None:
    v = judge(_point(tmp_path, 'function("scaled")', "{ $mode = 1 }"))
    (lv,) = v.landings
    assert [r.code for r in lv.reasons if r.code.startswith("write")] == ["write-not-writable"]
    assert lv.writes[0].verdict.evidence["locations"] == ["=3"]
    assert v.verdict == "hazardous"
    assert any("stap -g" in n for n in v.resolution.notes)


def test_dead_register_is_no_effect_and_live_one_takes(judge: Judge, tmp_path: Path) -> None:
    # line 18 (sink(r)): r is in %rdi, sink's argument; b is named %rsi, which sink never reads
    # nor writes and nothing reads after (its copy in %rbx is what the final add reads): gdb
    # agrees; a is there only as an entry value
    v = judge(_point(tmp_path, 'statement("dead_after_use@src/extra/writes.c:18")', "{ $a = 5; $b = 1; $r = 2 }"))
    by_var = {w.write.name: w.verdict.verdict for lv in v.landings for w in lv.writes}
    assert by_var == {"a": "not-writable", "b": "no-effect", "r": "takes"}
    # in the epilogue, b is still named %rbx, which the pop gives back to the caller (stap puts
    # line 21 itself at the add before, where %rbx is read: the address is probed instead)
    pop = _epilogue(judge, "pop %rbx")
    v = judge(_point(tmp_path, f"statement({pop:#x}).absolute", "{ $b = 1 }"))
    (r,) = [r for lv in v.landings for r in lv.reasons if r.code == "write-no-effect"]
    assert int(r.evidence["overwritten_at"], 16) == pop


def _row(cx: Context, symbol: str) -> int:
    """The row of the instance named ``symbol``."""
    return [cx.instance_symbol(i) for i in range(len(cx.inst_die))].index(symbol)


def _epilogue(judge: Judge, text: str) -> int:
    """The address of dead_after_use's instruction spelled `text`."""
    low = judge.cx.symbol_addresses(["dead_after_use"])["dead_after_use"]
    (at,) = [i["address"] for i in judge.cx.instructions(low, low + 0x40) if i["text"] == text]
    return int(at)


def test_copy_spills_over(judge: Judge, tmp_path: Path) -> None:
    (lv,) = judge(_point(tmp_path, 'function("shared_register")', "{ $a = 5 }")).landings
    (r,) = [r for r in lv.reasons if r.code == "write-spills-over"]
    assert r.evidence["shared_with"] == ["copy"] and r.evidence["register"] == "%rdi"


def test_frame_slot_read_then_dead(judge: Judge, tmp_path: Path) -> None:
    # in_frame's volatile slot (fbreg-40): line 74 reads it; at line 75 (sink(r)) nothing reads
    # it before line 76 stores over it; then the return's load reads it again
    def at(line: int) -> list[tuple[str, dict[str, object]]]:
        v = judge(_point(tmp_path, f'statement("in_frame@src/extra/writes.c:{line}")', "{ $slot = 1 }"))
        return [(w.verdict.verdict, w.verdict.evidence) for lv in v.landings for w in lv.writes]

    ((verdict, evidence),) = at(74)
    assert verdict == TAKES and evidence["slot"] == "fbreg-40"
    reader = int(str(evidence["read_at"]), 16)
    assert judge.cx.instructions(reader, reader + 8)[0]["text"] == "mov 8(%rsp),%rbp"
    ((verdict, evidence),) = at(75)
    assert verdict == NO_EFFECT
    store = int(str(evidence["overwritten_at"]), 16)
    assert judge.cx.instructions(store, store + 8)[0]["text"] == "mov %rax,8(%rsp)"


def test_return_write_reads_the_callers(judge: Judge, tmp_path: Path) -> None:
    (lv,) = judge(_point(tmp_path, 'function("computed").return', "{ $return = 1 }")).landings
    assert lv.writes[0].verdict.verdict == TAKES
    (lv,) = judge(_point(tmp_path, 'function("computed")', "{ $return = 1 }")).landings
    assert lv.writes[0].verdict.verdict == "not-writable"  # no $return at an entry


def test_partial_names_the_places_it_misses() -> None:
    w = Write("x", "", "=", "$x =")
    per = [[LandingWrite(w, WriteVerdict(TAKES, ""))], [LandingWrite(w, WriteVerdict(NO_EFFECT, ""))]]
    ((c, _, evidence),) = partial(per, ["0x10", "0x20"])
    assert c.name == "write-partial" and evidence["does_not"] == ["0x20"] and evidence["takes"] == ["0x10"]


def test_liveness_against_the_instructions() -> None:
    """At each instruction of loop_sum: %rdi (n) is read until the loop's last compare."""
    cx = Context(patchscope.open(BIN))
    row = _row(cx, "loop_sum")
    low, high = cx.inst_ranges(row)[0]
    insns = cx.instructions(low, high)
    t = cx.liveness(
        np.full(len(insns), row, np.uint64),
        np.array([i["address"] for i in insns], np.uint64),
        np.full(len(insns), 5, np.uint64),
    )
    live = dict(zip((i["text"] for i in insns), t.column("live").to_pylist()))
    status = dict(zip((i["text"] for i in insns), t.column("status").to_pylist()))
    assert (live["test %rdi,%rdi"], status["test %rdi,%rdi"]) == (1, 0)
    # a return does not read %rdi, but loop_sum never writes it: a caller built with -fipa-ra may
    assert (live["ret"], status["ret"]) == (1, _core.live_status.CALLERS)
    # every reader named is an instruction that mentions %rdi, or where the function leaves
    texts = {i["address"]: i["text"] for i in insns}
    for reader in t.column("reader").to_pylist():
        assert reader == _core.NO_TARGET or "rdi" in texts[reader] or texts[reader] == "ret"


def test_check_json_v2_validates(tmp_path: Path) -> None:
    script = tmp_path / "w.stp"
    script.write_text(f'probe process("{BIN}").function("scaled") {{ $mode = 1 }}\n')
    out = tmp_path / "check.json"
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", str(BIN), str(script), "--format=json", "-o", out],
        capture_output=True,
    )
    assert r.returncode == 2
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/check-2.json").read_text()))
    assert doc["points"][0]["landings"][0]["writes"][0]["verdict"] == "not-writable"


A64 = ROOT / "fixtures/bin/aarch64-writes/corpus"


@pytest.fixture(scope="module")
def a64() -> Judge:
    return Judge(patchscope.open(A64))


def _a64_writes(a64: Judge, tmp_path: Path, probe: str, body: str) -> list[tuple[str, str, str]]:
    script = tmp_path / "a.stp"
    script.write_text(f'probe process("{A64}").{probe} {body}\n')
    (point,) = scripts.load_points(str(script))
    assert isinstance(point, ps.ProbePoint)
    return [(w.write.name, w.verdict.verdict, w.verdict.why) for lv in a64(point).landings for w in lv.writes]


def test_aarch64_dead_and_live_registers(a64: Judge, tmp_path: Path) -> None:
    # line 18 (sink(r)), at the mov x19, x1: a's x0 is overwritten by the next mov, b's x1 read now
    got = _a64_writes(a64, tmp_path, 'statement("dead_after_use@src/extra/writes.c:18")', "{ $a = 5; $b = 1 }")
    assert [(n, v) for n, v, _ in got] == [("a", "no-effect"), ("b", "takes")]
    at = int(got[0][2].split("overwritten at ")[1].split(":")[0], 16)
    assert a64.cx.instructions(at, at + 4)[0]["text"] == "mov x0, x20"
    # in the epilogue: b's x19 is read by the add, then restored by the ldp before anyone reads
    # it, then gone from the location list
    ldp = _epilogue(a64, "ldp x19, x20, [sp, #0x10]")
    verdicts = []
    for at in (ldp - 4, ldp, ldp + 4):
        got = _a64_writes(a64, tmp_path, f"statement({at:#x}).absolute", "{ $b = 1 }")
        verdicts += [v for _, v, _ in got]
        if at == ldp:
            assert int(got[0][2].split("overwritten at ")[1].split(":")[0], 16) == ldp
    assert verdicts == ["takes", "no-effect", "not-writable"]


def test_aarch64_copy_spills_over_and_return_is_read(a64: Judge, tmp_path: Path) -> None:
    got = _a64_writes(a64, tmp_path, 'statement("shared_register@src/extra/writes.c:29")', "{ $a = 5 }")
    assert got[0][:2] == ("a", "spills-over") and "%x4 holds copy" in got[0][2]
    got = _a64_writes(a64, tmp_path, 'function("computed").return', "{ $return = 1 }")
    assert got[0][1] == TAKES


RV64 = ROOT / "fixtures/bin/riscv64-writes/corpus"
PPC64LE = ROOT / "fixtures/bin/ppc64le-writes/corpus"


@pytest.mark.parametrize("binary", [BIN, A64, RV64, PPC64LE], ids=["x86_64", "aarch64", "riscv64", "ppc64le"])
def test_verdicts_agree_with_gdb(binary: Path) -> None:
    """Every write gdb performs agrees with the verdict (docs/write-proof.md). aarch64, riscv64
    and ppc64le run under qemu-user with gdb-multiarch."""
    import write_proof

    missing = write_proof.tools(binary)
    if missing:
        pytest.skip(f"not installed: {', '.join(missing)}")
    found = write_proof.cases(binary)
    write_proof.run_gdb(binary, found)
    counted = write_proof.agreement(found)
    assert counted["counted"] >= 90
    assert [c for c in found if c.observed not in write_proof.UNCOUNTED and not c.agrees] == []


INJECT = ROOT / "fixtures/bin/x86_64-inject/corpus"
VMLINUX = Path("/root/.cache/patchscope-kernels/amd64/6.1.0-56/vmlinux-6.1.0-56-amd64")


@pytest.fixture(scope="module")
def inject() -> Judge:
    return Judge(patchscope.open(INJECT))


def _codes(judge: Judge, text: str) -> dict[str, dict[str, object]]:
    return {r.code: r.evidence for lv in judge(ps.parse(text)).landings for r in lv.reasons}


def test_error_injection_list_is_rebuilt_from_the_section(inject: Judge) -> None:
    """Cross-checked against the symbols the fixture's entries point to (readelf -x of the
    section shows the same three (address, type) pairs)."""
    from patchscope.rules.override import injection_list

    found = injection_list(inject.cx)
    at = inject.cx.symbol_addresses(["open_thing", "alloc_thing", "check_ok"])
    assert found == {at["open_thing"]: "ERRNO", at["alloc_thing"]: "NULL", at["check_ok"]: "TRUE"}


def test_fail_function_and_override_verdicts(inject: Judge) -> None:
    assert not _codes(inject, "fail_function:open_thing=-12")
    assert _codes(inject, "fail_function:open_thing=1")["override-bad-value"] == {"type": "ERRNO", "value": 1}
    assert "override-refused" in _codes(inject, "fail_function:not_listed")
    assert _codes(inject, "fail_function:check_ok")["override-misses-inlined"]["inlined_into"] == ["main"]
    point = replace(ps.parse("kprobe:alloc_thing"), handler="{ override(-12) }")
    (lv,) = inject(point).landings
    assert [r.code for r in lv.reasons if r.code.startswith("override")] == ["override-bad-value"]


def test_a_kernel_without_error_injection_cannot_override(judge: Judge) -> None:
    # the writes fixture has no within_error_injection_list: nothing can be overridden
    ev = _codes(judge, "fail_function:computed")["override-refused"]
    assert "within_error_injection_list" in ev["missing"]


@pytest.mark.skipif(not VMLINUX.exists(), reason="Debian 6.1.0-56 vmlinux not fetched")
def test_debian_61_cannot_override() -> None:
    """Debian's 6.1 amd64 config has no CONFIG_FUNCTION_ERROR_INJECTION: say so, do not guess."""
    j = Judge(patchscope.open(VMLINUX))
    point = replace(ps.parse("kprobe:do_sys_openat2"), handler="{ override(-12) }")
    (lv,) = j(point).landings
    (r,) = [r for r in lv.reasons if r.code == "override-refused"]
    assert r.evidence["missing"] == ["within_error_injection_list", "bpf_override_return"]


def test_list_writes_json_v2(tmp_path: Path) -> None:
    out = tmp_path / "list.json"
    point = f'process("{BIN}").function("shared_register")'
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "list", str(BIN), point, "--writes", "--format=json", "-o", out],
        capture_output=True,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/list-2.json").read_text()))
    (line,) = doc["lines"]
    assert line["writes"]["a"]["verdict"] == "spills-over" and line["writes"]["copy"]["verdict"] == "spills-over"


# -- bad writes: errors with a caret (issue 12, "Bad input") -------------------------------------

BAD = """probe process("{bin}").function("loop_sum") {{ $nope = 1 }}
probe process("{bin}").function("loop_sum") {{ $n = 5 }}
probe process("{bin}").function("loop_sum") {{
\tif ($n > 2)
\t\t$n->f = 1 # a long has no field
}}
probe process("{bin}").function("main") {{ $argc = "str"; $argc = 4294967296; $argc = 0xffffffff; $h = -1 }}
probe process("{bin}").function("loop_sum") {{ $n[0] = 1 }}
"""


def _caret_under(pointer: str) -> str:
    """The text a two-line pointer's caret stands under, up to the next space."""
    line, caret = pointer.split("\n")
    return line[len(caret) - 1 :].split(" ")[0]


def test_bad_writes_are_errors_with_a_caret_and_the_others_are_checked(tmp_path: Path) -> None:
    script = tmp_path / "bad.stp"
    script.write_text(BAD.format(bin=BIN))
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", str(BIN), str(script), "--format=json"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 2 and not r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/check-2.json").read_text()))
    nope, good, field, values, index = doc["points"]
    assert good["verdict"] == "safe" and "pointer" not in good and not good["errors"]
    assert nope["verdict"] == "unresolved"
    assert nope["errors"] == ["in the handler: no variable $nope at 0x401330 (loop_sum): in scope there: $acc, $k, $n"]
    assert _caret_under(nope["pointer"]) == "$nope"
    assert field["verdict"] == "unresolved" and field["origin"].endswith("bad.stp:3")
    assert field["errors"] == ["in the handler: $n is long int, no struct nor a pointer to one: it has no field f"]
    assert field["pointer"].split("\n")[0] == "$n->f = 1 # a long has no field"  # the line, tabs gone
    assert _caret_under(field["pointer"]) == "->f"
    assert values["verdict"] == "unresolved"
    assert values["errors"] == [
        "in the handler: $argc is int: a string cannot be stored in it",
        "in the handler: $argc: 4294967296 does not fit in int (-2147483648 to 2147483647 on x86_64)",
        "in the handler: $h: -1 does not fit in long unsigned int (0 to 18446744073709551615 on x86_64)",
    ]  # 0xffffffff is an int's bit pattern: allowed
    lines = values["pointer"].split("\n")
    assert [_caret_under("\n".join(lines[i : i + 2])) for i in (0, 2, 4)] == ['"str";', "4294967296;", "-1"]
    assert index["errors"] == ["in the handler: $n is long int, neither an array nor a pointer: [0] indexes nothing"]
    # the landings are still judged and shown
    assert values["landings"][0]["writes"][0]["verdict"] == "takes"


def test_bad_writes_in_the_text_report(tmp_path: Path) -> None:
    """Each offending line, its caret, then its error."""
    script = tmp_path / "bad.stp"
    script.write_text(BAD.format(bin=BIN))
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", str(BIN), str(script)], capture_output=True, text=True
    )
    assert r.returncode == 2
    lines = r.stdout.splitlines()
    at = lines.index('  $argc = "str"; $argc = 4294967296; $argc = 0xffffffff; $h = -1')
    assert lines[at + 1] == "          ^"
    assert lines[at + 2] == "  error: in the handler: $argc is int: a string cannot be stored in it"
    assert lines[at + 3] == lines[at]
    assert lines[at + 4] == "                         ^"
    assert lines[-1] == "verdict: unresolved"


def test_a_variable_missing_at_some_places_names_them(judge: Judge, tmp_path: Path) -> None:
    """``twice`` is inlined twice: at the first instruction of one copy, ``y``'s lexical block
    has not begun — stap would refuse the script ("unable to find local")."""
    point = _point(tmp_path, 'function("twice")', "{ $y = 1 }")
    (e,) = judge(point).write_errors
    assert e.message == "no variable $y at 1 of the 2 places the probe fires: 0x401370 (twice)"
    assert judge(point).verdict == "unresolved"
    point = _point(tmp_path, 'function("twice")', "{ $a = 1 }")
    (e,) = judge(point).write_errors
    assert e.message == "no variable $a at 0x401370 (twice) (nor at the other place): in scope there: $x"


@pytest.mark.parametrize(
    "body",
    [
        "{ if (@defined($nope)) $nope = 1 }",  # stap compiles the other branch
        "{ $n = $n + 300 }",  # an expression: its value is not known here
        "{ $n += 1 << 70 }",  # a compound write: its verdict decides
        "{ $n = 0x7fffffffffffffff }",
        "{ $n = -9223372036854775808 }",
        '{ printf("$nope = 1") /* $nope = 2 */ }',
        "{ $return = 300 }",
    ],
)
def test_writes_that_are_no_error(judge: Judge, tmp_path: Path, body: str) -> None:
    assert judge(_point(tmp_path, 'function("loop_sum")', body)).write_errors == []


def test_bpftrace_scratch_variables_are_not_target_variables(judge: Judge) -> None:
    point = ps.parse_bpftrace(f"uprobe:{BIN}:loop_sum")
    point = replace(point, handler="{ $nope = 1; $n = 300 }")
    assert judge(point).write_errors == []


@pytest.mark.parametrize(
    ("kind", "value", "arch", "why"),
    [
        ("char", 300, "x86_64", "300 does not fit in char (-128 to 127 on x86_64)"),
        ("char", 200, "x86_64", "200 does not fit in char (-128 to 127 on x86_64)"),
        ("char", 200, "aarch64", None),  # unsigned there
        ("char", -1, "aarch64", "-1 does not fit in char (0 to 255 on aarch64)"),
        ("unsigned char const", 256, "x86_64", "256 does not fit in unsigned char (0 to 255 on x86_64)"),
        ("_Bool", 2, "x86_64", "2 does not fit in _Bool (0 to 1 on x86_64)"),
        ("u8", 255, "x86_64", None),
        ("s16", 40000, "x86_64", "40000 does not fit in s16 (-32768 to 32767 on x86_64)"),
        ("long int", 1 << 40, "arm", f"{1 << 40} does not fit in long int (-2147483648 to 2147483647 on arm)"),
        ("long int", 1 << 40, "x86_64", None),
        ("struct page*", 1 << 64, "x86_64", f"{1 << 64} does not fit in struct page* (0 to {(1 << 64) - 1} on x86_64)"),
        ("my_typedef_t", 1 << 100, "x86_64", None),  # the spelling does not say
        ("enum e", 1 << 100, "x86_64", None),
    ],
)
def test_a_literal_fits_its_type(kind: str, value: int, arch: str, why: str | None) -> None:
    assert does_not_fit(kind, value, False, arch) == why


def test_a_hex_literal_may_be_a_signed_types_bit_pattern() -> None:
    assert does_not_fit("char", 0xFF, True, "x86_64") is None
    assert does_not_fit("int", 0xFFFFFFFF, True, "x86_64") is None
    assert does_not_fit("int", 0x1FFFFFFFF, True, "x86_64") is not None


@pytest.mark.parametrize(
    ("kind", "members", "index"),
    [
        ("long int", False, False),
        ("struct sk_buff*", True, True),
        ("struct sk_buff* const", True, True),
        ("struct sk_buff", True, False),
        ("union u", True, False),
        ("char const*", False, True),
        ("char**", None, True),
        ("int[]", None, True),
        ("enum e", False, False),
        ("size_t", False, False),
        ("my_typedef_t", None, None),
    ],
)
def test_which_types_have_fields_and_indices(kind: str, members: bool | None, index: bool | None) -> None:
    assert has_members(kind) is members and indexable(kind) is index
    assert is_aggregate(kind) is (kind.startswith(("struct ", "union ")) and not kind.endswith(("*", "* const")))


def test_bad_writes_survive_the_merge_of_a_trees_binaries(tmp_path: Path) -> None:
    """Against a kernel tree a point's records from each binary are merged into one: its bad
    writes are kept, each once."""
    from patchscope.report import check as report

    script = tmp_path / "bad.stp"
    script.write_text(BAD.format(bin=BIN))
    points = scripts.load_points(str(script))
    doc = report.document(patchscope.open(BIN), points)
    values = doc["points"][3]
    point = points[3]
    assert isinstance(point, ps.ProbePoint)
    merged = report.merged(point, [("a", values), ("b", values)])
    assert merged["errors"] == values["errors"] and merged["pointer"] == values["pointer"]
    good = report.merged(point, [("a", doc["points"][1])])
    assert "pointer" not in good and good["errors"] == []


def test_a_whole_struct_is_not_written(vmlinux: Path, tmp_path: Path) -> None:
    """tnum_sub(struct tnum a, struct tnum b): stap refuses ``$a = 0`` ("'struct tnum' is being
    accessed instead of a member such as '->mask'") and writes ``$a->mask``."""
    script = tmp_path / "tnum.stp"
    script.write_text(
        'probe kernel.function("tnum_sub") { $a = 0 }\nprobe kernel.function("tnum_sub") { $a->mask = 0 }\n'
    )
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", str(vmlinux), str(script), "--format=json"],
        capture_output=True,
        text=True,
    )
    whole, member = json.loads(r.stdout)["points"]
    assert whole["verdict"] == "unresolved" and _caret_under(whole["pointer"]) == "$a"
    assert whole["errors"] == [
        "in the handler: $a is struct tnum: a whole struct cannot be written, only a member of it ($x->f)"
    ]
    assert not member["errors"]


def test_a_caller_keeping_its_value_across_the_call_sees_the_write(judge: Judge, a64: Judge, tmp_path: Path) -> None:
    """GCC's -fipa-ra: reuses_argument keeps y in %rdi across its call to kept_by_caller, which
    never writes %rdi, and reads it after; x, in %rdi, is dead in kept_by_caller from line 87
    on, yet a write to it changes the caller's y (gdb agrees: test_verdicts_agree_with_gdb). On
    aarch64 x is in x0, which the function overwrites (the caller keeps y in x1 instead)."""
    point = _point(tmp_path, 'statement("kept_by_caller@src/extra/writes.c:87")', "{ $x = 1 }")
    ((w,),) = [lv.writes for lv in judge(point).landings]
    assert w.verdict.verdict == "spills-over"
    after = judge.cx.symbol_addresses(["reuses_argument"])["reuses_argument"] + 5  # after its call
    assert w.verdict.evidence["callers_reading"] == [f"reuses_argument ({after:#x})"]
    ret = judge.cx.instructions(int(w.verdict.evidence["left_at"], 16), int(w.verdict.evidence["left_at"], 16) + 1)
    assert ret[0]["text"] == "ret"
    got = _a64_writes(a64, tmp_path, 'statement("kept_by_caller@src/extra/writes.c:87")', "{ $x = 1 }")
    assert [v for _, v, _ in got] == ["not-writable"]  # x0 now holds t: x is only an entry value


KEPT_BY_CALLER = r"""
__attribute__((noinline, noclone)) long kept_by_caller(long x)
{
	long t = x * 3;
	t = t * t + 1;
	return t;
}

long reuses_argument(long y)
{
	return kept_by_caller(y) * 5 + y;
}
"""


def test_a_relocatable_file_knows_its_callees(tmp_path: Path) -> None:
    """In a .o (a kernel module before loading) the functions sit at section offsets: the
    callees are found there all the same, and so is the caller that keeps %rdi (-fipa-ra)."""
    from patchscope.rules.writes import variable_writes

    (tmp_path / "k.c").write_text(KEPT_BY_CALLER)
    subprocess.run(["gcc", "-O2", "-g", "-c", "k.c", "-o", "k.o"], cwd=tmp_path, check=True)
    cx = Context(patchscope.open(tmp_path / "k.o"))
    row = _row(cx, "kept_by_caller")
    low = cx.inst_low(row)
    after_lea = low + cx.instructions(low, low + 16)[0]["size"]
    (got,) = variable_writes(cx, [(row, int(cx.inst_die[row]), after_lea)])
    assert got["x"].verdict == "spills-over"
    assert got["x"].evidence["callers_reading"][0].startswith("reuses_argument (")
    # the call reads only what kept_by_caller reads: %rsi, no argument of it, is not read there
    caller = _row(cx, "reuses_argument")
    (call,) = [i for i in cx.instructions(*cx.inst_ranges(caller)[0]) if i["text"].startswith("call")]
    t = cx.liveness(np.array([caller], np.uint64), np.array([call["address"]], np.uint64), np.array([4], np.uint64))
    assert t.column("status").to_pylist() == [_core.live_status.CALLERS]


def test_return_is_checked_against_the_return_type(tmp_path: Path) -> None:
    """``$return`` in a ``.return`` probe is checked against what the function returns (its
    DWARF type, spelt as stap spells it): nothing for ``void``, a ``long`` for ``work``."""
    judge = Judge(patchscope.open(BIN))
    assert judge.cx.return_type(_row(judge.cx, "sink")) == "void"
    errors = {
        body: [e.message for e in judge(_point(tmp_path, f'function("{fn}").return', body)).write_errors]
        for fn, body in (("sink", "{ $return = 1 }"), ("work", '{ $return = "no" }'), ("work", "{ $return = 5 }"))
    }
    assert errors == {
        "{ $return = 1 }": ["$return: the function returns void: there is no value to write"],
        '{ $return = "no" }': ["$return is long int: a string cannot be stored in it"],
        "{ $return = 5 }": [],
    }

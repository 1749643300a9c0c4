"""``patchscope check``: bands per address, the point-level findings, exit status for CI, and
malformed points reported without stopping the others."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest

import patchscope
from conftest import BIN, ROOT, vmlinux_path
from patchscope.probes import syntax as ps
from patchscope.probes.judge import variable_reasons
from patchscope.report import check

X86 = BIN / "x86_64/corpus"
VARS = BIN / "x86_64-vars/corpus"


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def judge(binary: Path, *texts: str) -> list[dict]:
    return check.document(patchscope.open(binary), [ps.parse(t) for t in texts])["points"]


def codes(rec: dict) -> set[str]:
    return {f["code"] for f in rec["findings"]} | {r["code"] for lnd in rec["landings"] for r in lnd["reasons"]}


def test_exit_status_gates_on_the_worst_point() -> None:
    assert run(X86, "uprobe:x:tree_sum").returncode == 0
    assert run(X86, "uprobe:x:tree_sum", 'process("x").function("buf_process")').returncode == 1
    assert run(X86, "uprobe:x:tree_sum", "kprobe:compute_level").returncode == 2  # no such symbol


def test_partial_coverage_names_what_is_missed() -> None:
    (rec,) = judge(X86, 'process("x").function("buf_process")')
    (f,) = [f for f in rec["findings"] if f["code"] == "partial-coverage"]
    assert f["evidence"]["missed"][0]["where"] == "buf_process.part.0"
    assert rec["verdict"] == "gray"


def test_line_fragile_in_inlined_copies() -> None:
    (rec,) = judge(X86, 'process("x").statement("buf_process@src/part.c:6")')
    (f,) = [f for f in rec["findings"] if f["code"] == "line-fragile"]
    assert f["evidence"]["reasons"]
    # stap probes the lowest row of part.c:6 (is_stmt or not) in each of the three copies of
    # buf_process inlined into part_entry, as stap -v -L prints them (tests/test_stap_oracle.py;
    # the line-fragile evidence itself has no structured fields)
    assert [(lnd["address"], lnd["in"]) for lnd in rec["landings"]] == [
        ("0x17b1", "part_entry"),
        ("0x17c6", "part_entry"),
        ("0x17e3", "part_entry"),
    ]


def test_return_probe_on_a_tail_calling_function() -> None:
    (rec,) = judge(X86, "kretprobe:wrapper_tail")
    assert "tail-call-exit" in codes(rec)
    (entry,) = judge(X86, "kprobe:wrapper_tail")
    assert "tail-call-exit" not in codes(entry)  # an entry probe is not concerned


def test_probe_inside_an_llsc_window_is_hazardous() -> None:
    binary = BIN / "aarch64/corpus"
    b = patchscope.open(binary)
    from patchscope.rules import findings

    f = findings(b).findings.to_pylist()
    window = json.loads(next(r["evidence"] for r in f if r["code"] == "llsc-window"))
    low, high = int(window["low"], 16), int(window["high"], 16)
    inside, after = judge(binary, hex(low + 4), hex(high + 4))
    assert inside["verdict"] == "hazardous" and "llsc-window" in codes(inside)
    assert "llsc-window" not in codes(after)


def test_malformed_point_is_reported_and_the_others_still_checked() -> None:
    r = run(X86, "--format=json", 'process("x").function("clampi', "uprobe:x:tree_sum")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    bad, good = doc["points"]
    assert bad["verdict"] == "unresolved" and "unterminated string" in bad["errors"][0]
    assert bad["pointer"].splitlines()[1].endswith("^")
    assert good["verdict"] == "safe" and good["landings"][0]["in"] == "tree_sum"
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/check-2.json").read_text()))
    human = run(X86, 'process("x").function("clampi', "uprobe:x:tree_sum")
    assert 'process("x").function("clampi\n' in human.stdout and "^" in human.stdout


def test_stp_script(tmp_path) -> None:
    script = tmp_path / "probes.stp"
    script.write_text(
        'probe process("x").function("tree_sum") { println($n) }\nprobe process("x").function("hot_sum").return {}\n'
    )
    doc = json.loads(run(X86, script, "--format=json").stdout)
    assert [p["origin"] for p in doc["points"]] == [f"{script}:1", f"{script}:2"]
    assert doc["points"][0]["landings"][0]["in"] == "tree_sum"


def test_a_point_repeated_in_a_script_keeps_each_origin(tmp_path) -> None:
    """Judged once per batch, reported at each place it is written, and the same each time."""
    script = tmp_path / "probes.stp"
    body = 'probe process("x").function("tree_sum") { println($n) }\n'
    script.write_text(body + 'probe process("x").function("hot_sum") {}\n' + body)
    doc = json.loads(run(X86, script, "--format=json").stdout)
    first, _, again = doc["points"]
    assert (first["origin"], again["origin"]) == (f"{script}:1", f"{script}:3")
    assert {k: v for k, v in first.items() if k != "origin"} == {k: v for k, v in again.items() if k != "origin"}


@pytest.mark.skipif(vmlinux_path() is None, reason="Debian 6.1.0-56 vmlinux not fetched")
def test_design_note_probes_on_the_debian_kernel() -> None:
    preallocate, trace_name, show_mem, kprobe_exit, kretprobe_exit, atomic_line = judge(
        vmlinux_path(),
        'kernel.function("preallocate_pmds")',
        'kernel.function("trace_event_name").inline',
        'kernel.function("show_mem_node_skip")',
        "kprobe:do_exit",
        "kretprobe:do_exit",
        'kernel.statement("cpu_report_death@kernel/smpboot.c:485")',
    )
    # only a .constprop.0 clone whose body is `xor %eax,%eax; jmp __x86_return_thunk`
    assert [lnd["in"] for lnd in preallocate["landings"]] == ["preallocate_pmds.constprop.0"]
    assert {"constprop-clone", "constprop-trivial-body"} <= codes(preallocate)
    # every inline site, none of them out of line
    assert len(trace_name["landings"]) == 43 and {lnd["kind"] for lnd in trace_name["landings"]} == {"inline"}
    assert "selectively-inlined" in codes(trace_name)  # an out-of-line copy exists too
    # stap reaches the 5 inline sites, not show_mem_node_skip.part.0
    assert len(show_mem["landings"]) == 5 and "partial-coverage" in codes(show_mem)
    assert kprobe_exit["landings"][0]["in"] == "do_exit" and "noreturn" not in codes(kprobe_exit)
    assert "noreturn" in codes(kretprobe_exit) and kretprobe_exit["verdict"] != "safe"
    # stap probes the lowest row of smpboot.c:485 (not an is_stmt one: the one at 0x…6662 starts
    # inlined arch_atomic_try_cmpxchg lines too), and lists $oldstate and $cpu there (stap -v -L)
    (lnd,) = atomic_line["landings"]
    assert lnd["address"] == "0xffffffff810d665c" and "line-fragile" not in codes(atomic_line)


def test_inline_copies_of_a_blacklisted_function() -> None:
    (point,) = judge(BIN / "x86_64-kprobes/corpus", 'kernel.function("get_kprobe").inline')
    by_caller = {lnd["in"]: {r["code"] for r in lnd["reasons"]} for lnd in point["landings"]}
    assert "blacklisted-copy" in by_caller["register_kprobe"]
    assert "blacklisted-copy-in-machinery" in by_caller["machinery_helper"]
    assert "kprobe-blacklist" in by_caller["kprobe_int3_handler"]  # the protected copy
    assert not {"blacklisted-copy", "blacklisted-copy-in-machinery"} & by_caller["kprobe_int3_handler"]
    assert point["verdict"] == "hazardous"


@pytest.mark.skipif(vmlinux_path() is None, reason="Debian 6.1.0-56 vmlinux not fetched")
def test_get_kprobe_inline_on_the_debian_kernel() -> None:
    """stap refuses get_kprobe (declared in kernel/kprobes.c, on its blocklist: "function
    get_kprobe is in blocklisted file"); perf reaches its inline copies."""
    stap_point, point = judge(vmlinux_path(), 'kernel.function("get_kprobe").inline', "get_kprobe")
    assert not stap_point["landings"] and stap_point["verdict"] == "unresolved"
    said = {lnd["in"]: {r["code"] for r in lnd["reasons"]} for lnd in point["landings"]}
    assert {c for c, codes in said.items() if "blacklisted-copy" in codes} == {
        "register_kprobe",
        "__get_valid_kprobe",
        "get_optimized_kprobe",
    }


def test_variables_in_json_follow_the_schema() -> None:
    r = run(VARS, "--format=json", "entry_value_after_call+12 a b", "block_scoped scoped")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/check-2.json").read_text()))
    after_call, block = doc["points"]
    # perf places the offset in the inline site in main too (perf probe -D: 0x1084 and 0x11dc)
    assert [lnd["address"] for lnd in after_call["landings"]] == ["0x1084", "0x11dc"]
    states = {v["name"]: v["state"] for v in after_call["landings"][1]["variables"]}
    assert states["b"] == "entry-value-only" and states["a"] == "register"
    assert "var-entry-value-only" in codes(after_call)
    assert "var-unavailable" in codes(block) and r.returncode == 1


def test_mid_instruction_offsets_in_user_space() -> None:
    """objdump: tm_increment starts with a 2-byte mov at 0x1df0; +3 starts the next instruction."""
    cut, whole = judge(X86, "uprobe:x:tm_increment+0x1", "uprobe:x:tm_increment+3")
    (reason,) = [r for r in cut["landings"][0]["reasons"] if r["code"] == "mid-instruction"]
    assert reason["evidence"] == {"instruction": "0x1df0", "size": 2}
    assert cut["verdict"] == "hazardous"
    assert "mid-instruction" not in codes(whole)


def test_a_view_only_variable_is_unavailable_in_the_table_and_to_a_probe() -> None:
    """mix32's x at 0x1a91 is bound only in a later location view of that address (the
    address also starts inline.c:10-14), so a probe placed there reads nothing."""
    point = 'process("x").statement("mix32@*:*")'
    (rec,) = judge(X86, point)
    (x,) = [v for lnd in rec["landings"] if lnd["address"] == "0x1a91" for v in lnd["variables"]]
    assert x["view_only"] and x["name"] == "x"
    (reason,) = variable_reasons([x], ("x",))
    assert reason.code == "var-unavailable" and reason.evidence["variable"] == x
    out = run(X86, point).stdout
    assert "$x:unsigned int (view only: unavailable)" in out

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
    (rec,) = judge(X86, "buf_process:2")
    (f,) = [f for f in rec["findings"] if f["code"] == "line-fragile"]
    assert f["evidence"]["reasons"]
    # part.c:6 is two is_stmt rows (llvm-dwarfdump --debug-line), both in copies of buf_process
    # inlined into part_entry (the line-fragile evidence itself has no structured fields)
    assert [(lnd["address"], lnd["in"]) for lnd in rec["landings"]] == [
        ("0x17c6", "part_entry"),
        ("0x17ed", "part_entry"),
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
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/check-1.json").read_text()))
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
    # smpboot.c:485 starts at the same address as inlined arch_atomic_try_cmpxchg lines
    assert "line-fragile" in codes(atomic_line)
    (lnd,) = atomic_line["landings"]
    assert "`arch_atomic_try_cmpxchg` inlined into `atomic_try_cmpxchg` inlined into `cpu_report_death`" in lnd["how"]


def test_variables_in_json_follow_the_schema() -> None:
    r = run(VARS, "--format=json", "entry_value_after_call+12 a b", "block_scoped scoped")
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/check-1.json").read_text()))
    after_call, block = doc["points"]
    states = {v["name"]: v["state"] for v in after_call["landings"][0]["variables"]}
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

"""Every finding code on the fixtures it was written for, on each architecture, and the
contract around the codes (documentation, bands, scan JSON)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys

import jsonschema
import pytest

import patchscope
from conftest import BIN, ROOT
from patchscope import rules

ARCHES = ["x86_64", "aarch64", "ppc64le", "riscv64"]


def by_code(variant: str) -> dict[str, list[dict]]:
    b = patchscope.open(BIN / variant / "corpus")
    f = rules.findings(b)
    names = b.inventory.functions.column("name").to_pylist()
    out: dict[str, list[dict]] = {}
    for r in f.findings.to_pylist():
        r["function"] = names[r["fid"]]
        r["evidence"] = json.loads(r["evidence"])
        out.setdefault(r["code"], []).append(r)
    return out


def functions_with(variant: str, code: str) -> set[str]:
    return {r["function"] for r in by_code(variant).get(code, [])}


def test_cold_split_x86() -> None:
    assert functions_with("x86_64", "cold-split") == {
        "hot_sum", "parse_level", "drain", "sum_mode", "validate_cfg", "main",
    }  # fmt: skip
    (hot,) = [r for r in by_code("x86_64")["cold-split"] if r["function"] == "hot_sum"]
    parts = hot["evidence"]["parts"]
    assert [p["symbol"] for p in parts] == ["hot_sum", "hot_sum.cold"]
    assert parts[1]["stmt_addresses"] > 0


@pytest.mark.parametrize("variant", ["aarch64", "ppc64le", "riscv64"])
def test_no_cold_split_by_default_off_x86(variant: str) -> None:
    assert functions_with(variant, "cold-split") == set()


def test_cold_split_arm64_with_partitioning() -> None:
    assert "hot_sum" in functions_with("aarch64-partition", "cold-split")


@pytest.mark.parametrize("variant", ARCHES)
def test_constprop_clone(variant: str) -> None:
    found = {r["function"]: r["evidence"] for r in by_code(variant)["constprop-clone"]}
    assert found["scale_table"]["fixed"] == [{"param": "mode", "value": 3}]
    assert found["const_param_worker"]["fixed"] == [{"param": "k", "value": 42}]
    assert found["scale_table"]["other_instances"] == []


def test_constprop_original_survives_at_o3() -> None:
    (r,) = [r for r in by_code("x86_64-O3")["constprop-clone"] if r["function"] == "scale_mixed"]
    # the original survives beside the clone
    assert (r["evidence"]["instance"], r["evidence"]["other_instances"]) == ("scale_mixed.constprop.0", ["scale_mixed"])


@pytest.mark.parametrize("variant", ARCHES)
def test_isra_abi_changed(variant: str) -> None:
    found = {r["function"]: r for r in by_code(variant)["isra-abi-changed"]}
    assert {"compute_level", "level_noinline"} <= set(found)
    cl = found["compute_level"]["evidence"]
    assert cl["abi_changed"]
    params = {p["param"]: p for p in cl["params"]}
    assert params["cfg"]["status"].startswith("parameter ref")
    # x is the second source parameter but arrives in the third argument register
    assert params["x"]["moved"] == "arg1 -> arg2"
    assert [w["arg"] for w in cl["positional"]] == [0, 1]


def test_isra_register_names_per_abi() -> None:
    regs = {}
    for variant in ARCHES:
        (cl,) = [r for r in by_code(variant)["isra-abi-changed"] if r["function"] == "compute_level"]
        regs[variant] = {p["param"]: p.get("register") for p in cl["evidence"]["params"]}["x"]
    assert regs == {"x86_64": "rdx", "aarch64": "x2", "ppc64le": "r5", "riscv64": "a2"}


@pytest.mark.parametrize("variant", ARCHES)
def test_partial_inline(variant: str) -> None:
    found = {r["function"]: r["evidence"] for r in by_code(variant)["partial-inline"]}
    assert found["buf_process"] == {"instance": "buf_process.part.0", "head_sites": 3, "callers": ["part_entry"]}


@pytest.mark.parametrize("variant", ARCHES)
def test_inlining(variant: str) -> None:
    assert {"clampi", "mix32", "sq"} <= functions_with(variant, "fully-inlined")
    assert functions_with(variant, "selectively-inlined") >= {"helper_both", "op_double"}
    assert "buf_process" not in functions_with(variant, "selectively-inlined")  # partial-inline says it
    (cl,) = [r for r in by_code(variant)["fully-inlined"] if r["function"] == "clampi"]
    assert cl["evidence"]["sites"] == 6


def test_inline_args_differ_sees_location_views() -> None:
    (cl,) = [r for r in by_code("x86_64")["inline-args-differ"] if r["function"] == "clampi"]
    ev = cl["evidence"]
    assert ev["sites"] == 6
    assert ev["readable"] == {"v": 0, "lo": 0, "hi": 0}
    assert ev["view_only"] == {"v": 6, "lo": 6, "hi": 6}


@pytest.mark.parametrize("variant", ARCHES)
def test_name_collision(variant: str) -> None:
    found = by_code(variant)["name-collision"]
    assert {r["function"] for r in found} == {"lookup"}
    assert len(found) == 2
    assert sorted(found[0]["evidence"]["functions"]) == ["lookup (src/collide_a.c:4)", "lookup (src/collide_b.c:4)"]


@pytest.mark.parametrize("variant", ARCHES)
def test_plain_functions_are_safe(variant: str) -> None:
    b = patchscope.open(BIN / variant / "corpus")
    bands = rules.findings(b).bands
    band = dict(zip(bands.column("name").to_pylist(), bands.column("band").to_pylist()))
    for name in ("wrapper_notail", "tree_sum", "real_impl", "fact_tail"):
        assert band[name] == "safe", name
    for name in ("compute_level", "buf_process", "clampi", "hot_sum" if variant == "x86_64" else "scale_table"):
        assert band[name] == "gray", name


def test_every_code_is_documented_and_tested() -> None:
    tests = "".join(t.read_text() for t in (ROOT / "tests").glob("test_*.py"))
    index = (ROOT / "docs/findings/README.md").read_text()
    for name, c in rules.CODES.items():
        page = ROOT / "docs/findings" / f"{name}.md"
        assert page.is_file(), name
        text = page.read_text()
        assert f"`{name}` ({c.band.label})" in text
        assert "```c" in text, f"{name}: no C example"
        assert f"`{name}`" in index
        assert re.search(rf'"{re.escape(name)}"', tests), f"{name}: no test names it"


def test_scan_json_validates(tmp_path) -> None:
    out = tmp_path / "scan.json"
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "scan", str(BIN / "x86_64/corpus"), "--format=json", "-o", out],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    doc = json.loads(out.read_text())
    jsonschema.validate(doc, json.loads((ROOT / "docs/schema/scan-1.json").read_text()))
    assert doc["summary"]["functions_by_code"]["isra-abi-changed"] == 4
    assert sum(doc["summary"]["functions_by_band"].values()) == doc["summary"]["functions"]


def test_function_command_shows_evidence() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "function", str(BIN / "x86_64/corpus"), "compute_level"],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stderr
    assert "compute_level.isra.0" in r.stdout
    assert "[gray] isra-abi-changed" in r.stdout
    assert "x arrives in arg2 (rdx), not arg1" in r.stdout


@pytest.mark.parametrize("variant", ARCHES)
def test_noreturn(variant: str) -> None:
    found = {r["evidence"]["instance"]: r["evidence"]["source"] for r in by_code(variant)["noreturn"]}
    assert found.pop("fatal_error") == found.pop("die_unreachable") == "DW_AT_noreturn"
    # crt's _start ends in a call to __libc_start_main; on ppc64le it tail-jumps instead
    assert found == ({} if variant == "ppc64le" else {"_start": "machine code"})


@pytest.mark.parametrize("variant", ARCHES)
def test_constprop_trivial_body(variant: str) -> None:
    (r,) = by_code(variant)["constprop-trivial-body"]
    assert r["evidence"]["instance"] == "check_flags.constprop.0"
    assert len(r["evidence"]["instructions"]) == 2  # the constant load, the return
    assert functions_with(variant, "constprop-clone") >= {"check_flags", "scale_table"}


@pytest.mark.parametrize("variant", ARCHES)
def test_tail_call_exit(variant: str) -> None:
    exits = {r["evidence"]["instance"]: r["evidence"] for r in by_code(variant)["tail-call-exit"]}
    assert sorted(e["to"] for e in exits["dispatch_tail"]["exits"]) == ["op_add", "op_sub", "real_impl"]
    assert [e["to"] for e in exits["wrapper_tail"]["exits"]] == ["real_impl"]
    assert "wrapper_notail" not in exits
    # ELFv2 needs the TOC back after a call into another file, and an indirect call: no sibling call
    assert ("wrapper_indirect" in exits) == (variant != "ppc64le")
    assert ("wrapper_xtu" in exits) == (variant != "ppc64le")
    odd = [e["to"] for e in exits["is_odd_rec"]["exits"]]
    assert odd == (["is_even_rec (local entry)"] if variant == "ppc64le" else ["is_even_rec"])


@pytest.mark.parametrize("variant", ARCHES)
def test_recursive(variant: str) -> None:
    assert functions_with(variant, "recursive") == {"tree_sum", "tree_depth", "ackermann"}
    # tail recursion eliminated before code generation leaves no trace in the binary
    assert "fact_tail" not in functions_with(variant, "recursion-as-loop")


def test_no_ftrace_site_and_multiple_entries() -> None:
    found = by_code("x86_64-entries")
    nf = {r["evidence"]["instance"]: r for r in found["no-ftrace-site"]}
    assert set(nf) == {"notrace_work", "_start"}
    assert nf["notrace_work"]["evidence"]["table"] == "__patchable_function_entries"
    (me,) = found["multiple-entries"]
    assert me["evidence"]["symbols"] == ["alias_work", "real_work"]


def test_no_ftrace_site_needs_records() -> None:
    """A binary with neither kernel tables nor patchable entries is not judged."""
    assert "no-ftrace-site" not in by_code("x86_64")


def test_kernel_blacklist_in_miniature() -> None:
    found = by_code("x86_64-kprobes")
    got = {(code, r["evidence"]["instance"], r["evidence"]["why"]) for code in found for r in found[code]
           if code in ("kprobe-blacklist", "noinstr", "entry-text")}  # fmt: skip
    assert got == {
        ("kprobe-blacklist", "do_int3", "NOKPROBE_SYMBOL"),
        ("kprobe-blacklist", "kprobe_handler", "NOKPROBE_SYMBOL"),
        ("kprobe-blacklist", "kprobe_int3_handler", "NOKPROBE_SYMBOL"),
        ("kprobe-blacklist", "get_kprobe", "NOKPROBE_SYMBOL"),
        ("kprobe-blacklist", "kprobe_fault_handler", ".kprobes.text"),
        ("noinstr", "exc_nmi", "noinstr text"),
        ("noinstr", "exc_int3", "noinstr text"),
        ("entry-text", "entry_syscall", "entry text"),
    }
    b = patchscope.open(BIN / "x86_64-kprobes/corpus")
    band = dict(
        zip(rules.findings(b).bands.column("name").to_pylist(), rules.findings(b).bands.column("band").to_pylist())
    )
    assert band["exc_nmi"] == "hazardous" and band["ordinary"] != "hazardous"


def test_machinery_reach_split_by_the_guard() -> None:
    found = by_code("x86_64-kprobes")
    (before,) = found["machinery-recursion"]  # exc_int3 runs it before kprobe_int3_handler's guard
    assert before["function"] == "trap_helper" and before["evidence"]["path"] == ["exc_int3", "trap_helper"]
    assert before["evidence"]["recurses"] == ["int3"] and before["band"] == "hazardous"
    (after,) = found["machinery-reachable"]
    assert after["evidence"]["path"] == ["kprobe_int3_handler", "machinery_helper"]
    assert after["evidence"]["phase"] == "after-guard" and not after["evidence"]["guessed"]
    assert "machinery-reachable" not in by_code("x86_64")  # no kprobe handler, no machinery


def test_blacklisted_code_inlined_elsewhere() -> None:
    from elftools.elf.elffile import ELFFile

    found = by_code("x86_64-kprobes")
    copies = {
        r["evidence"]["caller"]: (r["code"], int(r["evidence"]["address"], 16))
        for r in found["blacklisted-copy"] + found["blacklisted-copy-in-machinery"]
    }
    assert {c: code for c, (code, _) in copies.items()} == {
        "register_kprobe": "blacklisted-copy",
        "machinery_helper": "blacklisted-copy-in-machinery",  # the handler runs it
    }
    with open(BIN / "x86_64-kprobes/corpus", "rb") as f:  # pyelftools: each copy lies in its caller's symbol
        symtab = ELFFile(f).get_section_by_name(".symtab")
        spans = {s.name: (s["st_value"], s["st_value"] + s["st_size"]) for s in symtab.iter_symbols()}
    assert all(spans[c][0] <= a < spans[c][1] for c, (_, a) in copies.items())
    (protected,) = found["inlined-into-blacklisted"]  # get_kprobe's own copies are the findings above
    assert protected["function"] == "kprobe_running" and protected["evidence"]["open_copies"] == 1
    assert [p["caller"] for p in protected["evidence"]["protected"]] == ["kprobe_int3_handler"]


def test_systemtap_blocklist_second_opinion() -> None:
    user = {r["function"]: r["evidence"]["rule"] for r in by_code("x86_64")["systemtap-blocklist"]}
    assert user == {"_start": "return probes (no normal function-entry ABI)"}
    kernel = {r["function"]: r["evidence"]["rule"] for r in by_code("x86_64-kprobes")["systemtap-blocklist"]}
    assert kernel == {"do_int3": "a blocklisted function name"}


def test_no_blacklist_outside_kernels() -> None:
    assert not {"kprobe-blacklist", "noinstr", "entry-text", "return-probe-refused"} & set(by_code("x86_64"))


# codes tested in tests/test_atomics.py: "llsc-window", "tm-region", "atomic-helper-call"; s390x's
# tm-region here (no s390x fixture build), and on glibc in tests/test_libc.py

TX_INCREMENT = r"""
__attribute__((noinline)) int tx_increment(int *p)
{
    if (__builtin_tbegin((void *)0) == 0) {  /* tbegin; jne to the laa fallback */
        if (*p < 0)
            __builtin_tabort(256);           /* tabort 256 */
        int v = ++*p;
        __builtin_tend();                    /* tend */
        return v;
    }
    return __atomic_add_fetch(p, 1, __ATOMIC_SEQ_CST);
}
int main(void) { static int x; return tx_increment(&x); }
"""


def test_tm_region_s390x(tmp_path) -> None:
    gcc = "s390x-linux-gnu-gcc"
    if shutil.which(gcc) is None:
        pytest.skip(f"{gcc} absent")
    (tmp_path / "tx.c").write_text(TX_INCREMENT)
    subprocess.run([gcc, "-O2", "-g", "-march=zEC12", "-mhtm", "tx.c", "-o", "tx"], cwd=tmp_path, check=True)
    b = patchscope.open(tmp_path / "tx")
    (r,) = [r for r in rules.findings(b).findings.to_pylist() if r["code"] == "tm-region"]
    ev = json.loads(r["evidence"])
    assert (ev["kind"], ev["instance"], ev["terminated"]) == ("TX", "tx_increment", True)
    assert [x.split(": ")[1].split()[0] for x in ev["ends"]] == ["tend", "tabort"]
    words = [x.split(": ")[1].split()[0] for x in ev["instructions"]]
    assert words[:2] == ["tbegin", "jne"] and "laa" not in words  # the jne's target is the fallback
    assert ev["fallback"] == ev["instructions"][1].rsplit(" ", 1)[1] and ev["exits_without_end"] == []


def test_systemtap_blocklist_4_8_additions() -> None:
    """stap 4.8's dwflpp::build_kernel_blocklist adds these unconditionally (strings /usr/bin/stap)."""
    from patchscope.rules import peers

    assert peers.STAP_FUNCTIONS.match("smaps_pte_range") and peers.STAP_FUNCTIONS.match("special_mapping_fault")
    assert peers._STAP_FILES.match("fs/seq_file.c") and not peers._STAP_FILES.match("fs/seq_file.h")

"""Debian's 6.1.0-56 amd64 vmlinux, when present (../shared/data/fetch-debian-kernel.sh 6.1.0-56)."""

from __future__ import annotations

from pathlib import Path

import pyarrow.compute as pc
import pytest

import patchscope
from patchscope import _core
from patchscope.index.variables import scope_variables
from patchscope.report.inventory import InventoryView


@pytest.fixture(scope="module")
def kernel(vmlinux: Path) -> patchscope.Binary:
    return patchscope.open(vmlinux)


def test_table_sizes(kernel: patchscope.Binary) -> None:
    """The counts measured with pyelftools and llvm-dwarfdump before the project started
    (pyelftools, llvm-dwarfdump --statistics): exact, not merely within 1 %."""
    assert kernel.units.num_rows == 2352
    assert kernel.unit_errors() == []
    assert kernel.subprograms.num_rows == 256_197
    assert kernel.inline_sites.num_rows == 311_113
    assert kernel.call_sites.num_rows == 209_195
    assert kernel.params.num_rows == 910_203
    assert kernel.lines.num_rows == 4_310_087
    # 129,792 entries in .symtab, less the null symbol at index 0
    assert kernel.symbols.num_rows == 129_791
    assert sum(kernel.call_sites.column("tail").to_pylist()) == 17_041


def record(kernel: patchscope.Binary, name: str) -> dict:
    (fid,) = kernel.find_functions(name)
    return InventoryView(kernel).record(fid)


def test_preallocate_pmds_constprop(kernel: patchscope.Binary) -> None:
    r = record(kernel, "preallocate_pmds")
    assert r["decl_file"] == "arch/x86/mm/pgtable.c"
    assert [i["symbol"] for i in r["instances"]] == ["preallocate_pmds.constprop.0"]
    assert r["instances"][0]["suffixes"] == ["constprop.0"]


def test_show_mem_node_skip_part(kernel: patchscope.Binary) -> None:
    r = record(kernel, "show_mem_node_skip")
    assert r["status"] == "selectively-inlined"
    assert [i["symbol"] for i in r["instances"]] == ["show_mem_node_skip.part.0"]
    assert r["inline_sites"]["count"] == 5
    assert {s["caller"] for s in r["inline_sites"]["sites"]} == {"__show_free_areas"}


def test_inline_shares(kernel: patchscope.Binary) -> None:
    """Not / fully / selectively inlined, beside DepSurf's 53-58 % / 32-35 % / 9-11 % for 6.x."""
    status = kernel.inventory.functions.column("status").to_pylist()
    counts = {s: status.count(s) for s in ("not-inlined", "fully-inlined", "selectively-inlined")}
    total = sum(counts.values())
    assert counts == {"not-inlined": 39_966, "fully-inlined": 28_402, "selectively-inlined": 5_212}
    assert 0.50 < counts["not-inlined"] / total < 0.60
    assert total > 70_000


def findings_of(kernel: patchscope.Binary, code: str) -> list[dict]:
    import json

    from patchscope import rules

    f = rules.findings(kernel).findings
    names = kernel.inventory.functions.column("name").to_pylist()
    out = []
    for r in f.to_pylist():
        if r["code"] == code:
            r["function"] = names[r["fid"]]
            r["evidence"] = json.loads(r["evidence"])
            out.append(r)
    return out


def test_preallocate_pmds_trivial_body(kernel: patchscope.Binary) -> None:
    (r,) = [r for r in findings_of(kernel, "constprop-trivial-body") if r["function"] == "preallocate_pmds"]
    assert r["evidence"]["instructions"] == [
        "0xffffffff81089650: call __fentry__",
        "0xffffffff81089655: xor %eax,%eax",
        "0xffffffff81089657: jmp __x86_return_thunk",
    ]


def test_show_mem_node_skip_partial_inline(kernel: patchscope.Binary) -> None:
    (r,) = [r for r in findings_of(kernel, "partial-inline") if r["function"] == "show_mem_node_skip"]
    assert r["evidence"] == {"instance": "show_mem_node_skip.part.0", "head_sites": 5, "callers": ["__show_free_areas"]}


def test_every_isra_symbol_judged(kernel: patchscope.Binary) -> None:
    """Every .isra clone (its entry symbol, .cold parts aside) gets isra-abi-changed: with the
    parameters that changed, or abi_changed false."""
    syms = kernel.symbols
    names = syms.column("name").to_pylist()
    kinds = syms.column("suffix_kinds").to_pylist()
    isra = {n for n, k in zip(names, kinds) if k & 4 and not k & 1 and n}
    found = findings_of(kernel, "isra-abi-changed")
    judged = {r["evidence"]["instance"] for r in found}
    assert isra - judged == set()
    assert len(found) == 364  # one per instance: some static names repeat across files
    unchanged = [r["evidence"] for r in found if not r["evidence"]["abi_changed"]]
    assert 0 < len(unchanged) < len(found)
    # abi_changed false: no parameter removed or moved, every argument register holds its parameter
    assert all(ev["positional"] == [] for ev in unchanged)
    assert all(p["status"] != "removed" and "moved" not in p for ev in unchanged for p in ev["params"])


def test_dwarf_tail_calls_are_tail_jumps(kernel: patchscope.Binary) -> None:
    """Every DW_AT_call_tail_call site is a tail-call exit in the code: the jump ends at the
    site's return address (a retpoline thunk jump is followed by an int3 first)."""
    import numpy as np

    from patchscope import _core

    cs = kernel.call_sites
    tail = cs.column("tail").to_numpy() == 1
    ret = cs.column("return_pc").to_numpy()[tail]
    ev = kernel.machine.events
    kind = ev.column("kind").to_numpy()
    jumps = np.isin(kind, (_core.kind.TAIL_JUMP_DIRECT, _core.kind.TAIL_JUMP_INDIRECT, _core.kind.JUMP_TO_ENTRY))
    end = ev.column("address").to_numpy()[jumps] + ev.column("size").to_numpy()[jumps]
    found = np.isin(ret, end) | np.isin(ret, end + 1)
    assert len(ret) == 17_041
    assert found.all(), [hex(x) for x in ret[~found][:5]]
    assert int(jumps.sum()) > len(ret)  # and more: jumps with no call-site DWARF


def test_ftrace_sites_map_to_functions(kernel: patchscope.Binary) -> None:
    """The kernel's own list: 40,521 __mcount_loc records; 40,021 fall at the start of a
    function instance, the other 500 in no symbol at all (overridden __weak bodies, shown as
    __ftrace_invalid_address___N by the running kernel)."""
    import numpy as np

    from patchscope.index.context import Context
    from patchscope.rules.entry import Entries

    e = Entries(Context(kernel))
    assert len(e.records) == 40_521
    lows = kernel.inventory.instances.column("low_pc").to_numpy()
    assert int(np.isin(e.records, lows).sum()) == 40_021
    nf = findings_of(kernel, "no-ftrace-site")
    assert "do_exit" not in {r["evidence"]["instance"] for r in nf}
    assert "verify_cpu" in {r["evidence"]["instance"] for r in nf}


def test_recursion_as_loop(kernel: patchscope.Binary) -> None:
    assert "__vlan_find_dev_deep_rcu" in {r["function"] for r in findings_of(kernel, "recursion-as-loop")}


def test_multiple_entries(kernel: patchscope.Binary) -> None:
    found = findings_of(kernel, "multiple-entries")
    aliases = {tuple(r["evidence"]["symbols"]) for r in found if "symbols" in r["evidence"]}
    assert ("__do_sys_ni_syscall", "__ia32_sys_ni_syscall", "__x64_sys_ni_syscall") in aliases
    jumped = {r["evidence"]["instance"] for r in found if "jumped_into" in r["evidence"]}
    assert jumped == {"xen_read_cr0"}


def test_ftrace_sites_equal_the_booted_kernels_list(kernel: patchscope.Binary) -> None:
    """available_filter_functions of the same build, booted under QEMU
    (tests/data/debian-6.1.0-56-amd64/README.md): every __mcount_loc record outside init text
    (freed after boot) at a symbol start is listed by name; every record that is not at a
    symbol start is one of its __ftrace_invalid_address___N lines (overridden __weak bodies).
    Where two symbols share the address, kallsyms may name it by the other: compared by address."""
    from collections import Counter
    from pathlib import Path

    from patchscope.index.context import Context
    from patchscope.rules.entry import Entries

    ref = (Path(__file__).parent / "data/debian-6.1.0-56-amd64/available_filter_functions").read_text().split()
    invalid = [n for n in ref if n.startswith("__ftrace_invalid_address___")]
    listed = Counter(n for n in ref if not n.startswith("__ftrace_invalid_address___"))
    cx = Context(kernel)
    ours: Counter[str] = Counter()
    not_at_symbol = 0
    for r in Entries(cx).records.tolist():
        if (cx.section_at(r)[0] or "").startswith(".init"):
            continue
        name = cx.name_at(r)
        if "+" in name or name.startswith("."):
            not_at_symbol += 1
        else:
            ours[name] += 1
    assert not_at_symbol == len(invalid) == 597
    assert sum(ours.values()) == sum(listed.values()) == 37_655
    only_ours, only_kernel = ours - listed, listed - ours
    assert sum(only_ours.values()) == sum(only_kernel.values()) <= 5
    syms = kernel.symbols
    address = {}
    for n, a in zip(syms.column("name").to_pylist(), syms.column("address").to_pylist()):
        address.setdefault(n, set()).add(a)
    ours_at = set().union(*(address[n] for n in only_ours))
    kernel_at = set().union(*(address[n] for n in only_kernel))
    assert ours_at == kernel_at  # the same addresses, named by an alias


def test_blacklist_equals_the_booted_kernels(kernel: patchscope.Binary) -> None:
    """The rebuilt kprobe blacklist against /sys/kernel/debug/kprobes/blacklist of the same
    build booted under QEMU with nokaslr: the same 427 ranges, under the same names."""
    from collections import Counter
    from pathlib import Path

    from patchscope.index.context import Context
    from patchscope.rules.kernel import blacklist

    ref = []
    for line in (Path(__file__).parent / "data/debian-6.1.0-56-amd64/kprobes_blacklist").read_text().splitlines():
        span, name = line.split("\t")
        lo, hi = span.split("-")
        ref.append((int(lo, 16), int(hi, 16), name))
    ours = [(e.start, e.end, e.name) for e in blacklist(Context(kernel)).entries]
    assert Counter((a, z) for a, z, _ in ours) == Counter((a, z) for a, z, _ in ref)
    # the name kallsyms prints for an address several symbols share (scripts/kallsyms.c
    # compare_symbols): __x86_indirect_thunk_array, not the linker's __indirect_thunk_start
    assert sorted(ours) == sorted(ref)
    clones = {r["evidence"]["instance"] for r in findings_of(kernel, "kprobe-blacklist") if r["evidence"]["via"]}
    assert "nmi_handle.part.0" in clones


def test_machinery_reach(kernel: patchscope.Binary) -> None:
    found = {r["evidence"]["instance"]: r["evidence"] for r in findings_of(kernel, "machinery-reachable")}
    assert found["rcu_is_watching"]["path"] == ["arch_ftrace_ops_list_func", "rcu_is_watching"]
    # reached through the trace_kprobe pre-handler, a function pointer: a guessed edge, said so
    copy = found["copy_from_kernel_nofault"]
    assert copy["path"][:3] == ["kprobe_int3_handler", "kprobe_dispatcher", "kprobe_perf_func"] and copy["guessed"]
    assert copy["steps"][1]["via"] == "pointer: p->pre_handler (its address is stored in no data, set by code)"
    assert len(found) > 1500 and max(e["depth"] for e in found.values()) > 10  # no depth cap
    # everything the kernel runs before its guards is blacklisted on 6.1 amd64
    assert findings_of(kernel, "machinery-recursion") == []


def test_blacklisted_code_inlined_elsewhere(kernel: patchscope.Binary) -> None:
    copies = findings_of(kernel, "blacklisted-copy") + findings_of(kernel, "blacklisted-copy-in-machinery")
    by_function: dict[str, list[str]] = {}
    for r in copies:
        by_function.setdefault(r["function"], []).append(r["evidence"]["caller"])
    assert {f: len(c) for f, c in by_function.items()} == {
        "notifier_call_chain": 7,
        "get_kprobe": 3,
        "native_load_idt": 3,
        "rethook_recycle": 2,
    }
    assert sorted(by_function["get_kprobe"]) == ["__get_valid_kprobe", "get_optimized_kprobe", "register_kprobe"]
    (inside,) = findings_of(kernel, "blacklisted-copy-in-machinery")
    assert inside["evidence"]["caller"] == "blocking_notifier_call_chain"


def test_systemtap_blocklist(kernel: patchscope.Binary) -> None:
    found = {r["function"]: r["evidence"]["rule"] for r in findings_of(kernel, "systemtap-blocklist")}
    assert found["do_exit"].startswith("a blocklisted return probe")
    assert found["_raw_spin_lock"] == "a blocklisted function name"
    assert found["register_kprobe"] == "declared in blocklisted file kernel/kprobes.c"


def test_return_probe_refused(kernel: patchscope.Binary) -> None:
    assert {r["function"] for r in findings_of(kernel, "return-probe-refused")} == {"__switch_to"}


@pytest.fixture(scope="module")
def diff_50_56(kernel: patchscope.Binary) -> dict[tuple[str, str], dict]:
    """``patchscope diff`` of Debian's 6.1.0-50 (6.1.176) and 6.1.0-56 (6.1.192): the changed
    functions by (name, file), and the summary under ``("", "summary")``."""
    from conftest import vmlinux_path
    from patchscope.report.diff import document

    old_path = vmlinux_path("6.1.0-50")
    if old_path is None:
        pytest.skip("6.1.0-50 vmlinux absent (fetch-debian-kernel.sh 6.1.0-50)")
    doc = document(patchscope.open(old_path), kernel)
    return {**{(f["name"], f["decl_file"]): f for f in doc["functions"]}, ("", "summary"): doc["summary"]}


def test_diff_50_against_56(diff_50_56: dict) -> None:
    """Spot-checked by hand with nm on both builds (6.1.0-50 → 6.1.0-56)."""
    by = diff_50_56
    flush = by[("__flush_work", "kernel/workqueue.c")]
    assert flush["old"]["instances"] == ["__flush_work.isra"] and flush["new"]["instances"] == ["__flush_work"]
    assert by[("__init_single_page", "mm/page_alloc.c")]["old"]["instances"] == ["__init_single_page.constprop"]
    tail = by[("__bpf_skb_change_tail", "net/core/filter.c")]
    assert (tail["old"]["status"], tail["new"]["status"]) == ("selectively-inlined", "fully-inlined")
    fspick = by[("__do_sys_fspick", "fs/fsopen.c")]
    assert (fspick["old"]["status"], fspick["new"]["status"]) == ("fully-inlined", "not-inlined")
    assert by[("", "summary")]["inlining"] > 100


def test_diff_code_and_lines_50_against_56(diff_50_56: dict) -> None:
    """Code changed or not, spot-checked with ``objdump -d`` of both builds (addresses and
    symbol names set aside):

    - tcp_cwnd_restart: struct tcp_sock grew, ``mov 0x6c8(%r13),%ebx`` → ``mov 0x6f0(%r13),%ebx``;
    - queue_ra_store: struct request_queue, ``cmpq $0x0,0x80(%rdi)`` → ``0xa0(%rdi)``;
    - __count_memcg_events: ``call cgroup_rstat_updated`` → ``call __cgroup_rstat_updated``;
    - __vga_put: the same instructions; only addresses, and its dynamic-debug descriptor's
      __COUNTER__ (``__UNIQUE_ID_ddebug312`` → ``…317``), changed: not reported;
    - bq_enqueue: the same; its per-CPU variable moved (``mov $0x2d7f0,%r12`` → ``$0x2d800``);
    - unset_regulator_supplies: the same code, 11 lines further down drivers/regulator/core.c.
    """
    by = diff_50_56
    for name, file in [
        ("tcp_cwnd_restart", "net/ipv4/tcp_output.c"),
        ("queue_ra_store", "block/blk-sysfs.c"),
        ("__count_memcg_events", "mm/memcontrol.c"),
    ]:
        f = by[(name, file)]
        assert f["changes"] == ["code"] and f["code_changed"] == [name], name
    assert ("__vga_put", "drivers/pci/vgaarb.c") not in by
    assert ("bq_enqueue", "kernel/bpf/cpumap.c") not in by
    moved = by[("unset_regulator_supplies", "drivers/regulator/core.c")]
    assert moved["changes"] == ["moved"] and moved["moved_by"] == 11
    assert moved["old"]["code"] == moved["new"]["code"]
    s = by[("", "summary")]
    # of 74,426 → 74,603 source functions: 16 stable releases grew some much-used structures
    assert (s["code"], s["moved"], s["signature"]) == (4160, 19628, 78)


def test_variables_of_every_instance(kernel: patchscope.Binary) -> None:
    """Every concrete instance is found, no unit fails, and a scope asked alone (the walk
    then jumps over nearly all of its unit by DW_AT_sibling) reads as when asked with all."""
    dies = [d for d in kernel.inventory.instances.column("die").to_pylist() if d != 2**64 - 1]
    found = _core.Binary(str(kernel.path)).variables(dies)
    assert found["info"]["found"] == str(len(dies)) and found["info"]["errors"] == ""
    together, _ = scope_variables(kernel, dies)
    assert together.num_rows > 800_000
    for die in dies[:: len(dies) // 25]:
        alone, _ = scope_variables(kernel, [die])
        rows = together.filter(pc.equal(together.column("scope"), die))
        assert alone.to_pylist() == rows.to_pylist()


def test_vfs_read_variables_as_stap_lists_them(kernel: patchscope.Binary) -> None:
    """stap -L 'kernel.function("vfs_read")': $file:struct file* $buf:char* $count:size_t
    $pos:loff_t*; at the entry in the argument registers of the x86-64 ABI."""
    (fid,) = kernel.find_functions("vfs_read")
    (inst,) = [r for r in kernel.inventory.instances.to_pylist() if r["fid"] == fid]
    at = kernel.variables_at(inst["die"], inst["entry_pc"])
    params = [(v.name, v.type, v.locations) for v in at if v.param]
    assert params == [
        ("file", "struct file*", ["%rdi"]),
        ("buf", "char*", ["%rsi"]),
        ("count", "size_t", ["%rdx"]),
        ("pos", "loff_t*", ["%rcx"]),
    ]
    assert [(v.name, v.type, v.state) for v in at if not v.param] == [("ret", "ssize_t", "optimized-out")]


def test_machinery_on_6_1_0_50() -> None:
    """The figures docs/machinery.md gives for the older kernel."""
    from conftest import vmlinux_path
    from patchscope.index.context import Context
    from patchscope.rules import machinery

    path = vmlinux_path("6.1.0-50")
    if path is None:
        pytest.skip("6.1.0-50 vmlinux absent (fetch-debian-kernel.sh 6.1.0-50)")
    cx = Context(patchscope.open(path))
    copies = list(machinery.blacklisted_copies(cx))
    assert len(copies) == 15 and len({f.fid for f in copies}) == 4
    reach = list(machinery.machinery_reach(cx))
    assert len(reach) == 1917 and all(f.code is machinery.MACHINERY_REACHABLE for f in reach)


def test_a_tapset_alias_lands_where_stap_derives_it(kernel: patchscope.Binary) -> None:
    """``syscall.open`` on 6.1: no ``sys_open`` in DWARF, so the kprobe alternative with the
    x86_64 wrappers — the four probes ``stap -p2`` derives for this kernel."""
    from patchscope.index.context import Context
    from patchscope.probes import scripts, tapsets
    from patchscope.probes.resolve import resolve

    if not (tapsets.tapset_dir() / "linux/sysc_open.stp").is_file():
        pytest.skip("SystemTap's tapset library is not installed (systemtap-common)")
    cx = Context(kernel)
    (point,) = scripts.stp_probe_points("probe syscall.open { }")
    res = resolve(cx, point)
    assert not res.errors
    assert sorted(cx.instance_symbol(lnd.instance) for lnd in res.landings) == [
        "__ia32_compat_sys_open",
        "__ia32_sys_open",
        "__x64_compat_sys_open",
        "__x64_sys_open",
    ]

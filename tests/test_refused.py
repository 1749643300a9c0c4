"""``refused-address``: what register_kprobe and kprobe_events answer, address by address
(rules/refused.py), on the kernels in miniature (fixtures/src/extra/sites.c, kprobes.c) and on
Debian's 6.1.0-56 kernels when present. Every fixture offset below was read with objdump -d."""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

import patchscope
from conftest import BIN, ROOT
from patchscope import rules
from patchscope.index.context import Context
from patchscope.rules import refused, refused_arm64, refused_ppc, refused_s390


def context(variant: str) -> Context:
    return Context(patchscope.open(BIN / variant))


@pytest.fixture(scope="module")
def x86() -> Context:
    return context("x86_64-sites/corpus")


@pytest.fixture(scope="module")
def arm() -> Context:
    return context("aarch64-sites/corpus")


def at(cx: Context, name: str, off: int = 0) -> int:
    return cx.symbol_addresses([name])[name] + off


def reasons(cx: Context, name: str, offsets: list[int], **kw) -> list[list[tuple[str, str, str]]]:
    """(reason, errno, interface) of each refusal at ``name+off``."""
    got = refused.refusals(cx, [at(cx, name, o) for o in offsets], **kw)
    return [[(r.reason, r.errno, r.interface) for r in rs] for rs in got]


AFF = ROOT / "tests/data/debian-6.1.0-56-amd64/available_filter_functions"

K, E, N = refused.REGISTER_KPROBE, refused.KPROBE_EVENTS, refused.KPROBE_EVENTS_BY_NAME


# -- x86_64 ---------------------------------------------------------------------------------------


def test_x86_ftrace_entry_and_boundaries(x86: Context) -> None:
    # stats_enabled: call __fentry__ (5) | nopl 0x0(%rax,%rax,1) (5, the static branch) | lea | ret
    got = reasons(x86, "stats_enabled", [0, 1, 4, 5, 6, 10, 11, 13])
    assert got[0] == []  # the ftrace record: an ftrace-based kprobe, accepted
    assert got[1] == got[2] == [("ftrace-site", "EILSEQ", K)]
    assert got[3] == [("jump-label", "EINVAL", K)]
    assert got[4] == [("jump-label", "EINVAL", K), ("not-insn-boundary", "EILSEQ", K)]
    assert got[5] == []  # lea 0x1(%rdi),%eax
    assert got[6] == [("not-insn-boundary", "EILSEQ", K)]
    assert got[7] == []  # ret


def test_x86_jump_label_sizes_and_notrace(x86: Context) -> None:
    # debug_enabled+7: a 2-byte jmp (the other static-branch form); +9 is the xor after it
    assert reasons(x86, "debug_enabled", [7, 8, 9]) == [
        [("jump-label", "EINVAL", K)],
        [("jump-label", "EINVAL", K), ("not-insn-boundary", "EILSEQ", K)],
        [],
    ]
    # branch_first is notrace and starts with its static branch: kprobe_events refuses all of it
    got = reasons(x86, "branch_first", [0, 2])
    assert got == [[("jump-label", "EINVAL", K), ("notrace", "EINVAL", E)], [("notrace", "EINVAL", E)]]
    (r,) = refused.refusals(x86, [at(x86, "branch_first")])
    assert r[0].evidence["key"] == "debug_key" and r[0].evidence["size"] == 2
    assert refused.answer(r) == "EINVAL"


def test_x86_static_call_bug_int3_memory_call(x86: Context) -> None:
    assert reasons(x86, "uses_static_call", [5, 7, 10]) == [
        [("static-call", "EINVAL", K)],
        [("static-call", "EINVAL", K), ("not-insn-boundary", "EILSEQ", K)],
        [],  # add $0x1,%eax after the call
    ]
    warn, _, bug = refused.refusals(x86, [at(x86, "checked_div", o) for o in (0x18, 0x1A, 0x1D)])
    assert [(r.reason, r.evidence["kind"]) for r in warn] == [("bug-site", "WARN")]
    assert [(r.reason, r.evidence["kind"]) for r in bug] == [("bug-site", "BUG")]
    assert reasons(x86, "checked_div", [0x1A]) == [[]]  # xor after the WARN's ud2
    assert reasons(x86, "has_int3", [0xA, 0xB]) == [[("unprobeable-insn", "EINVAL", K)], []]
    (r,) = refused.refusals(x86, [at(x86, "calls_through_memory", 9)])[0]
    assert (r.reason, r.errno, r.evidence["bytes"]) == ("unprobeable-insn", "EOPNOTSUPP", "ff 15 01 2d 00 00")


def test_x86_version_keyed_exception_insn(x86: Context) -> None:
    # a ud2 that is no BUG (__builtin_trap, in the .cold part): 6.1 accepts it, 6.9 refuses it
    assert reasons(x86, "trap_if_negative.cold", [0]) == [[]]
    assert reasons(x86, "trap_if_negative.cold", [0], version=(6, 9)) == [[("unprobeable-insn", "EILSEQ", K)]]
    # the .cold part has no ftrace record, its base does: kprobe_events accepts it
    assert all(r.reason != "notrace" for r in refused.refusals(x86, [at(x86, "trap_if_negative.cold")])[0])


def test_x86_extable_is_accepted_init_text_is_not(x86: Context) -> None:
    assert reasons(x86, "read_user", [0xA]) == [[]]  # only arm64 refuses exception-table entries
    assert reasons(x86, "setup_early", [0]) == [[("not-kernel-text", "EINVAL", K)]]


def test_x86_names_and_unknown_addresses(x86: Context) -> None:
    twins = [a for a, n in _symbols(x86) if n == "twin"]
    assert len(twins) == 2
    got = refused.refusals(x86, [twins[0] + 5, 0x10])
    assert [(r.reason, r.errno, r.interface) for r in got[0]] == [("non-unique-symbol", "EADDRNOTAVAIL", N)]
    assert refused.answer(got[0]) is None
    assert refused.answer(got[0], E, by_name=True) == "EADDRNOTAVAIL"
    assert refused.answer(got[0], E, by_name=False) is None
    assert [(r.reason, r.errno) for r in got[1]] == [("no-symbol", "ENOENT")]


def test_accepted_addresses_stay_accepted(x86: Context, arm: Context) -> None:
    """Every instruction boundary of plain_work past the ftrace site, on both architectures."""
    for cx in (x86, arm):
        lo = at(cx, "plain_work")
        insns = cx.b.instructions(lo, lo + 0x40)
        bounds = [i["address"] for i in insns if i["address"] >= lo + (5 if cx.b.arch == "x86_64" else 8)]
        assert len(bounds) > 8
        assert refused.refusals(cx, np.array(bounds, np.uint64)) == [[] for _ in bounds]


def _symbols(cx: Context) -> list[tuple[int, str]]:
    sy = cx.b.symbols
    return list(zip(sy.column("address").to_pylist(), sy.column("name").to_pylist()))


# -- arm64 ----------------------------------------------------------------------------------------


def test_arm64_entry_alignment_sites(arm: Context) -> None:
    # stats_enabled: nop | nop (the ftrace record, rec->ip) | nop (static branch) | add | ret
    got = reasons(arm, "stats_enabled", [0, 2, 4, 8, 12])
    assert got == [
        [],
        [("misaligned", "EINVAL", K)],
        [("ftrace-site", "EINVAL", K)],  # 6.1 arm64: no KPROBES_ON_FTRACE
        [("jump-label", "EINVAL", K)],
        [],
    ]
    assert reasons(arm, "checked_div", [0x1C]) == [[("bug-site", "EINVAL", K), ("unprobeable-insn", "EINVAL", K)]]
    assert reasons(arm, "read_user", [0xC, 0x10]) == [[("exception-table", "EINVAL", K)], []]
    assert reasons(arm, "trap_if_negative", [0x14]) == [[("unprobeable-insn", "EINVAL", K)]]  # brk #0x3e8


def test_arm64_llsc_window(arm: Context) -> None:
    # llsc_add: nop, nop, ldxr, add, stxr, cbnz, mov, ret
    got = refused.refusals(arm, [at(arm, "llsc_add", o) for o in (8, 0xC, 0x10, 0x14, 0x18)])
    assert [[r.reason for r in rs] for rs in got] == [
        ["unprobeable-insn"],
        ["atomic-window"],
        ["unprobeable-insn"],
        [],  # cbnz: the scan meets stxr first
        [],
    ]
    assert got[1][0].evidence["opener"] == hex(at(arm, "llsc_add", 8))
    assert got[1][0].evidence["exclusive"] is True


def test_arm64_old_masks(arm: Context) -> None:
    """6.1's load-exclusive mask matches LDAR and CASA, its store-exclusive mask STLR."""
    offsets = [8, 0xC, 0x1C]
    assert [len(rs) for rs in reasons(arm, "acquire_then_work", offsets)] == [0, 1, 1]
    (r,) = refused.refusals(arm, [at(arm, "acquire_then_work", 0xC)])[0]
    assert (r.reason, r.evidence["exclusive"], r.evidence["opener_word"]) == ("atomic-window", False, "88dffc02")
    assert reasons(arm, "acquire_then_work", offsets, version=(6, 15)) == [[], [], []]
    assert reasons(arm, "cas_then_work", [0xC]) == [[("atomic-window", "EINVAL", K)]]
    assert reasons(arm, "cas_then_work", [0xC], version=(6, 15)) == [[]]
    # llsc_with_release: ldxr, stlr, add, stxr — the stlr ends 6.1's scan, so the add is accepted
    assert reasons(arm, "llsc_with_release", [0xC, 0x10]) == [[("atomic-window", "EINVAL", K)], []]
    assert reasons(arm, "llsc_with_release", [0x10], version=(6, 15)) == [[("atomic-window", "EINVAL", K)]]


# -- modules and the blacklist --------------------------------------------------------------------


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_module_sites(arch: str) -> None:
    cx = context(f"{arch}-sites/module.o")
    img = cx.shared(refused.KernelImage)
    assert img.module and img.version == (6, 1)
    site = int(cx.b.kernel_sites.column("address")[0].as_py())  # the static branch of stats_enabled
    assert [r.reason for r in refused.refusals(cx, [site])[0]] == ["jump-label"]
    assert [r.reason for r in refused.refusals(cx, [at(cx, "setup_early")])[0]] == ["not-kernel-text"]


def test_blacklist_reasons() -> None:
    cx = context("x86_64-kprobes/corpus")
    names = ["do_int3", "kprobe_fault_handler", "exc_nmi", "entry_syscall", "ordinary"]
    got = refused.refusals(cx, [at(cx, n) for n in names])
    assert [[r.reason for r in rs] for rs in got] == [
        ["kprobe-blacklist"],
        ["kprobe-blacklist"],
        ["noinstr"],
        ["entry-text"],
        [],
    ]


def test_not_a_kernel() -> None:
    with pytest.raises(ValueError, match="not a kernel image"):
        refused.refusals(patchscope.open(BIN / "x86_64/corpus"), [0x1000])


def test_scan_reports_refused_entries() -> None:
    """In scan: entries refused for another reason than the blacklist."""
    for variant, want in (
        ("x86_64-sites/corpus", {"branch_first": "jump-label", "setup_early": "not-kernel-text"}),
        ("aarch64-sites/corpus", {"branch_first": "jump-label", "setup_early": "not-kernel-text"}),
    ):
        b = patchscope.open(BIN / variant)
        f = rules.findings(b).findings
        names = b.inventory.functions.column("name").to_pylist()
        got = {
            names[r["fid"]]: json.loads(r["evidence"])["refusals"][0]["reason"]
            for r in f.to_pylist()
            if r["code"] == "refused-address"
        }
        assert got == want, variant
        band = dict(zip(rules.findings(b).bands.column("name").to_pylist(), rules.findings(b).bands.column("band")))
        assert str(band["branch_first"]) == "hazardous"


def test_boot_rewritten_sites_are_uncertain() -> None:
    """x86_64-boot (fixtures/src/extra/boot.c): each site the kernel rewrites at boot sits next to
    the same bytes outside any table. An answer read from the bytes is uncertain inside the site
    only (offsets from objdump -d)."""
    cx = context("x86_64-boot/corpus")
    where = [
        ("pv_irq_disable", 0x9),  # call *pv_ops+0x8(%rip), 6 bytes: .parainstructions + .altinstructions
        ("pv_irq_disable", 0xA),
        ("pv_irq_disable", 0xF),  # the same call, in no table
        ("pv_irq_disable", 0x10),
        ("via_retpoline", 0x8),  # call __x86_indirect_thunk_rax: .retpoline_sites
        ("via_retpoline", 0x9),
        ("via_retpoline", 0x10),  # the same call, in no table
        ("via_retpoline", 0x11),
        ("thunk_return", 0xE),  # jmp __x86_return_thunk (e9 rel32): .return_sites
        ("thunk_return", 0xF),
        ("thunk_return", 0x13),  # the same jmp, in no table
        ("thunk_return", 0x14),
    ]
    addrs = [at(cx, n, o) for n, o in where]
    assert refused.rewritten_at_boot(cx, addrs) == [["alternative", "paravirt"]] * 2 + [[]] * 2 + (
        [["retpoline"]] * 2 + [[]] * 2 + [["return-thunk"]] * 2 + [[]] * 2
    )
    got = [[(r.reason, r.errno, r.interface, r.certain) for r in rs] for rs in refused.refusals(cx, addrs)]
    unprobeable, inside = ("unprobeable-insn", "EOPNOTSUPP", K), ("not-insn-boundary", "EILSEQ", K)
    assert got == [
        [(*unprobeable, False)],  # the file's indirect call; the running kernel has a cli there
        [(*inside, False)],
        [(*unprobeable, True)],
        [(*inside, True)],
        [],  # a direct call: accepted either way
        [(*inside, False)],
        [],
        [(*inside, True)],
        [],
        [(*inside, False)],  # the kernel runs `ret; int3` here
        [],
        [(*inside, True)],
    ]
    # what a refused-address finding carries: each refusal's certainty
    pv, _, beside = refused.refusals(cx, addrs[:3])
    assert [r["certain"] for r in refused.evidence(addrs[0], pv)["refusals"]] == [False]
    assert [r["certain"] for r in refused.evidence(addrs[2], beside)["refusals"]] == [True]
    # the same bytes in a kernel without those tables: plain_work is no site
    sites = context("x86_64-sites/corpus")
    assert refused.rewritten_at_boot(sites, [at(sites, "plain_work")]) == [[]]


def test_check_reports_refusals_per_tool() -> None:
    """``patchscope check``: a landing the kernel refuses gets a refused-address reason, with the
    refusals the point's tool meets."""
    from patchscope.probes import syntax as ps
    from patchscope.report import check

    b = patchscope.open(BIN / "x86_64-sites/corpus")
    texts = ["kprobe:branch_first", 'kernel.function("stats_enabled")', "kprobe:stats_enabled+5", "kprobe:twin"]
    first, stats, inside, twin = check.document(b, [ps.parse(t) for t in texts])["points"]

    def refusal(rec: dict) -> list[dict]:
        return [r for lnd in rec["landings"] for r in lnd["reasons"] if r["code"] == "refused-address"]

    (r,) = refusal(first)
    assert [x["reason"] for x in r["evidence"]["refusals"]] == ["jump-label", "notrace"]
    assert first["verdict"] == "hazardous"
    assert refusal(stats) == [] and stats["verdict"] == "safe"
    assert refusal(inside)[0]["evidence"]["errno"]["register_kprobe"] == "EINVAL"
    # bpftrace names the symbol: the front end's by-name check applies (two static `twin`s)
    assert {x["reason"] for r in refusal(twin) for x in r["evidence"]["refusals"]} == {"non-unique-symbol"}


# -- Debian 6.1.0-56 ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def amd64(vmlinux: Path) -> Context:
    return Context(patchscope.open(vmlinux))


def vm(cx: Context, name: str, off: int = 0) -> list[tuple[str, str, str]]:
    (rs,) = refused.refusals(cx, [at(cx, name, off)])
    return [(r.reason, r.errno, r.interface) for r in rs]


def test_vmlinux_amd64_release(amd64: Context) -> None:
    assert amd64.b.info["kernel_release"] == "6.1.0-56-amd64"
    assert amd64.shared(refused.KernelImage).version == (6, 1)


def test_vmlinux_amd64_what_the_booted_kernel_answered(amd64: Context) -> None:
    """What Debian's 6.1.0-56 kernel, booted under QEMU, answered to register_kprobe at these
    addresses (the project's first probe of the real kernel; the answers are the asserts), on
    addresses read with objdump -d."""
    # do_exit: call __fentry__ at +0 (accepted, ftrace-based), +1..+4 EILSEQ, push %r15 at +5
    assert vm(amd64, "do_exit") == []
    assert [vm(amd64, "do_exit", o) for o in (1, 4)] == [[("ftrace-site", "EILSEQ", K)]] * 2
    assert vm(amd64, "do_exit", 5) == []
    assert vm(amd64, "do_exit", 6) == [("not-insn-boundary", "EILSEQ", K)]  # inside push %r15 (41 57)
    # want_init_on_free starts with a static branch (xchg %ax,%ax, 2 bytes) and has no fentry
    assert vm(amd64, "want_init_on_free") == [("jump-label", "EINVAL", K), ("notrace", "EINVAL", E)]
    # do_one_initcall+0xec: call __SCT__tp_func_initcall_finish (a static call)
    assert vm(amd64, "do_one_initcall", 0xEC)[0] == ("static-call", "EINVAL", K)
    # NOKPROBE, noinstr, entry text
    assert vm(amd64, "do_int3")[0][0] == "kprobe-blacklist"
    assert vm(amd64, "exc_nmi")[0][0] == "noinstr"
    assert vm(amd64, "entry_SYSCALL_64")[0][0] == "entry-text"


def test_vmlinux_amd64_warn_and_return_thunk(amd64: Context) -> None:
    # refcount_warn_saturate+0x51: ud2 (a WARN: __bug_table flags 0x909), then
    # +0x53: jmp __x86_return_thunk (5 bytes), rewritten at boot to ret; int3 ...
    # (lib/refcount.c is built without ftrace: kprobe_events refuses all of it, as
    # available_filter_functions of the booted kernel lacks it)
    got = refused.refusals(amd64, [at(amd64, "refcount_warn_saturate", o) for o in (0x51, 0x52, 0x53, 0x54)])
    assert all(rs[-1].reason == "notrace" and rs[-1].interface == E for rs in got)
    (warn,), (mid,), ret, (thunk,) = ([r for r in rs if r.interface == K] for rs in got)
    assert (warn.reason, warn.errno, warn.evidence["kind"]) == ("bug-site", "EINVAL", "WARN")
    assert (mid.reason, mid.errno, mid.certain) == ("not-insn-boundary", "EILSEQ", True)
    assert ret == []
    # the booted kernel said EINVAL here (its live bytes are int3 padding): refused either way
    assert (thunk.reason, thunk.errno, thunk.certain) == ("not-insn-boundary", "EILSEQ", False)
    assert refused.rewritten_at_boot(amd64, [at(amd64, "refcount_warn_saturate", 0x54)]) == [["return-thunk"]]


def test_vmlinux_amd64_notrace_is_what_ftrace_lists(amd64: Context) -> None:
    """kprobe_events' notrace check at every function entry of the core text, against the
    booted kernel's available_filter_functions: every listed name is predicted traceable, and of
    the 67 predicted names it does not list, 66 are aliases of listed ones (kallsyms prints one
    name per address)."""
    img = amd64.shared(refused.KernelImage)
    rows, addrs = amd64.func_symbols
    inside = (addrs >= img.text[0][0]) & (addrs < img.text[0][1])
    addrs, rows = addrs[inside], rows[inside]
    names = [amd64.string(amd64.sym["name"][r]) for r in rows.tolist()]
    got = refused.refusals(amd64, addrs)
    found, start, end, _ = img.kallsyms.containing_all(addrs)
    own = found & img.traced(start, end)
    assert all((not any(r.reason == "notrace" for r in rs)) or not o for rs, o in zip(got, own))
    listed = {n for n in AFF.read_text().split() if not n.startswith("__ftrace_invalid_address__")}
    traced = {n for n, o in zip(names, own) if o}
    assert listed <= traced
    by_addr: dict[int, set[str]] = {}
    for a, n in zip(addrs.tolist(), names):
        by_addr.setdefault(a, set()).add(n)
    extra = traced - listed
    assert len(extra) == 67
    aliases = {x for x in extra if any(by_addr[a] & listed for a, n in zip(addrs.tolist(), names) if n == x)}
    # the other: its kallsyms extent runs over the body of an overridden weak function, whose
    # record ftrace keeps disabled (listed as __ftrace_invalid_address___N), and
    # ftrace_location_range still finds it
    assert extra - aliases == {"bpf_dispatcher_nop_func"}


def test_vmlinux_amd64_bug_sites(amd64: Context) -> None:
    img = amd64.shared(refused.KernelImage)
    addr = img.sites["bug"][0]
    assert len(addr) == 7743  # 0x16af4 bytes of 12-byte entries
    text = [a for a in addr.tolist() if any(lo <= a < hi for lo, hi in img.text)]
    got = refused.refusals(amd64, text)
    assert all(rs and rs[0].reason in ("bug-site", "kprobe-blacklist", "noinstr", "entry-text") for rs in got)
    assert sum(rs[0].reason == "bug-site" for rs in got) > 7000
    assert all(any(r.reason == "bug-site" for r in rs) for rs in got)


def test_vmlinux_amd64_site_tables(amd64: Context) -> None:
    img = amd64.shared(refused.KernelImage)
    counts = {k: len(v[0]) for k, v in img.sites.items()}
    assert counts == {
        "jump-label": 6299,  # 0x189b0 bytes of 16-byte entries
        "static-call": 4085,  # 0x7fa8 bytes of 8-byte entries
        "bug": 7743,
        "extable": 600,
        "alternative": 4667,
        "paravirt": 3848,
        "retpoline": 8823,
        "return-thunk": 50858,
    }
    sizes = img.sites["jump-label"][1]
    assert set(sizes.tolist()) == {2, 5}
    # a pv_ops call: file bytes say `call *pv_ops+0xf0(%rip)` (EOPNOTSUPP), the running kernel
    # patched it: uncertain
    (r,) = refused.refusals(amd64, [at(amd64, "do_exit", 0x2F)])[0]
    assert (r.reason, r.errno, r.certain) == ("unprobeable-insn", "EOPNOTSUPP", False)
    assert refused.rewritten_at_boot(amd64, [at(amd64, "do_exit", 0x2F)]) == [["alternative", "paravirt"]]


# -- Debian 6.1.0-56 arm64 ------------------------------------------------------------------------


def arm64_vmlinux() -> Path | None:
    env = os.environ.get("PATCHSCOPE_VMLINUX_ARM64_6_1_0_56")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    p = cache / "patchscope-kernels/arm64/6.1.0-56/vmlinux-6.1.0-56-arm64"
    return p if p.is_file() else None


@pytest.fixture(scope="module")
def arm64() -> Context:
    p = arm64_vmlinux()
    if p is None:
        pytest.skip("Debian 6.1.0-56 arm64 vmlinux absent (fetch-debian-kernel.sh -a arm64 6.1.0-56)")
    return Context(patchscope.open(p))


def test_vmlinux_arm64_entries_and_blacklist(arm64: Context) -> None:
    assert arm64.b.info["kernel_release"] == "6.1.0-56-arm64"
    # vfs_read: nop | nop (rec->ip: ftrace_call_adjust + 4) | paciasp | ... (objdump -d)
    assert [vm(arm64, "vfs_read", o) for o in (0, 2, 4, 8)] == [
        [],
        [("misaligned", "EINVAL", K)],
        [("ftrace-site", "EINVAL", K)],  # no KPROBES_ON_FTRACE on arm64 6.1
        [],  # paciasp is a steppable hint
    ]
    # the pointer tables hold zeros in the file: every value comes from .rela.dyn's
    # R_AARCH64_RELATIVE addends (44,279 __mcount_loc + 93 _kprobe_blacklist entries)
    values = arm64.b.kernel_pointers.column("value").to_numpy()
    assert len(values) == 44_372 and (values != 0).all()
    img = arm64.shared(refused.KernelImage)
    assert {kind: len(v[0]) for kind, v in img.sites.items()} == {
        "jump-label": 7530,
        "bug": 7270,
        "extable": 789,
        "alternative": 30362,  # 0x58f38 bytes of 12-byte struct alt_instr
    }
    assert vm(arm64, "kprobe_breakpoint_handler")[0][0] == "kprobe-blacklist"
    assert vm(arm64, "do_debug_exception")[0][0] == "kprobe-blacklist"


def test_vmlinux_arm64_atomic_scan(arm64: Context) -> None:
    """osq_lock+0xa0: the __cmpwait sequence `ldxr w2,[x3]; eor; cbnz; wfe`, an LL with no SC;
    +0xcc: `ldar w2,[x3]` after an unconditional branch, +0xd0 after it (objdump -d)."""
    got = refused.refusals(arm64, [at(arm64, "osq_lock", o) for o in (0xA0, 0xA4, 0xAC, 0xCC, 0xD0)])
    assert [[r.reason for r in rs] for rs in got] == [
        ["unprobeable-insn"],  # the exclusive itself
        ["atomic-window"],
        ["unprobeable-insn"],  # wfe: not a steppable hint
        ["atomic-window"],  # the kernel scans back linearly, through the branch
        ["atomic-window"],
    ]
    ldxr = hex(at(arm64, "osq_lock", 0xA0))
    assert (got[1][0].evidence["opener"], got[1][0].evidence["exclusive"]) == (ldxr, True)
    # +0xd0: 6.1's mask stops at the ldar; the fixed one goes on to the ldxr
    assert got[4][0].evidence["opener"] == hex(at(arm64, "osq_lock", 0xCC))
    (fixed,) = refused.refusals(arm64, [at(arm64, "osq_lock", 0xD0)], version=(6, 15))[0]
    assert fixed.evidence["opener"] == ldxr
    # queued_spin_lock_slowpath+0x2b0, after `stlr w0,[x1]` at +0x2a8 and an ldxr at +0x26c:
    # 6.1's store-exclusive mask takes the stlr for the end of the sequence
    assert vm(arm64, "queued_spin_lock_slowpath", 0x2B0) == []
    (r,) = refused.refusals(arm64, [at(arm64, "queued_spin_lock_slowpath", 0x2B0)], version=(6, 15))[0]
    assert (r.reason, r.evidence["opener"]) == ("atomic-window", hex(at(arm64, "queued_spin_lock_slowpath", 0x26C)))


def test_vmlinux_arm64_dwarf_meets_symbols_over_the_patchable_entry(arm64: Context) -> None:
    """GCC puts DW_AT_low_pc of vfs_read at 0x…528, after the 2 ftrace NOPs at the symbol
    (0x…520, nm): the instance starts at the symbol, named by it, with its ftrace site."""
    (fid,) = arm64.b.find_functions("vfs_read")
    (row,) = arm64.instances_of[fid]
    assert arm64.instance_symbol(row) == "vfs_read"
    assert arm64.inst_low(row) == 0xFFFF8000083AB520 and int(arm64.inst.column("entry_pc")[row].as_py()) != 0
    assert arm64.b.inventory.functions.column("status").to_pylist().count("symbol-only") < 1000


ARM64_BOOTED = ROOT / "tests/data/debian-6.1.0-56-arm64"
#: busybox's strerror text of each errno a kprobe_events write returned
STRERROR = {
    "ok": None,
    "Invalid argument": "EINVAL",
    "No such file or directory": "ENOENT",
    "Cannot assign requested address": "EADDRNOTAVAIL",
    "Invalid or incomplete multibyte or wide character": "EILSEQ",
}


def booted_answers(cx: Context, cpu: str) -> list[tuple[str, int, bool, str | None]]:
    """(probe id, address, given by name, errno or None) of each kprobe_events definition the
    booted arm64 kernel answered on QEMU's ``cpu`` (tests/data/debian-6.1.0-56-arm64/README.md)."""
    out = []
    for line in (ARM64_BOOTED / f"kprobe_events-{cpu}").read_text().splitlines():
        pid, target, answer = line.split(" ", 2)
        by_name = not target.startswith("0x")
        sym, _, off = target.partition("+")
        address = at(cx, sym, int(off, 16)) if by_name else int(target, 16)
        out.append((pid, address, by_name, STRERROR[answer.split(" | ")[0]]))
    return out


def test_vmlinux_arm64_ftrace_list_equals_the_booted_kernels(arm64: Context) -> None:
    """available_filter_functions of the booted kernel, line for line as a multiset: the
    kallsyms name of every ftrace record (rec->ip, the second patchable NOP) in the core text,
    42,038 of them, no __ftrace_invalid_address___ line; aliases named as kallsyms orders them."""
    from collections import Counter

    img = arm64.shared(refused.KernelImage)
    (lo, hi), recs = img.text[0], img.records
    recs = recs[(recs >= lo) & (recs < hi)]
    _, _, _, names = img.kallsyms.containing_all(recs)
    ours = Counter(arm64.string(int(n)) for n in names.tolist())
    theirs = Counter((ARM64_BOOTED / "available_filter_functions").read_text().split())
    assert sum(theirs.values()) == 42_038
    assert ours == theirs


def test_vmlinux_arm64_blacklist_equals_the_booted_kernels(arm64: Context) -> None:
    """/sys/kernel/debug/kprobes/blacklist of the booted kernel (nokaslr: link-time addresses):
    the same 553 ranges under the same names — the idmap and hyp idmap texts included, the SDEI
    trampolines (NOKPROBE_SYMBOL, but after _etext) and the $d/$x mapping symbols left out."""
    ref = []
    for line in (ARM64_BOOTED / "kprobes_blacklist").read_text().splitlines():
        span, name = line.split("\t")
        lo, hi = span.split("-")
        ref.append((int(lo, 16), int(hi, 16), name))
    ours = [(e.start, e.end, e.name) for e in arm64.shared(refused.KernelImage).blacklist.entries]
    assert len(ref) == 553
    assert sorted(ours) == sorted(ref)
    assert {n for _, _, n in ours} >= {"__cpu_setup", "__kvm_nvhe____kvm_hyp_init"}
    assert "__sdei_asm_entry_trampoline" not in {n for _, _, n in ours}


@pytest.mark.parametrize("model", ["cortex-a57", "max"])
def test_vmlinux_arm64_kprobe_events_answers(arm64: Context, model: str) -> None:
    """The booted kernel's answer to 1,271 kprobe_events definitions (entries, the ftrace NOP,
    clones, notrace code, every rejected instruction class, MRS of DAIF and of other registers,
    LL/SC and LDAR windows, LSE, jump-label/BUG/extable/alternative sites, random instructions),
    on two QEMU CPUs: told the CPU (``cpu=``), every prediction equals the kernel's answer; not
    told, every answer that differs is one the prediction marks as depending on the CPU."""
    answers = booted_answers(arm64, model)
    addrs = [a for _, a, _, _ in answers]
    assert len(answers) == 1271
    told = refused.refusals(arm64, addrs, cpu=refused_arm64.a64_cpu(model))
    assert [refused.answer(f, E, by_name) for (_, _, by_name, _), f in zip(answers, told)] == [
        errno for _, _, _, errno in answers
    ]
    assert all(r.certain for f in told for r in f)
    blind = refused.refusals(arm64, addrs)
    differ = [f for (_, _, by_name, errno), f in zip(answers, blind) if refused.answer(f, E, by_name) != errno]
    assert all(not f[0].certain and f[0].evidence["cpu_dependent"] for f in differ)
    refusing = {pid.split("_")[0] for pid, _, _, errno in answers if errno}
    assert {"mrsdaif", "llsc", "ldarwin", "ftracenop", "rej8", "bug", "jumplabel", "notrace"} <= refusing
    assert not any(errno for pid, _, _, errno in answers if pid.startswith(("mrsother_", "afterstore_")))


def test_vmlinux_arm64_cpu_dependent_answers(arm64: Context) -> None:
    """Where the two CPUs' kernels answered differently: an `ldr` that the Cortex-A57 erratum
    832075 alternative turns into `ldar` (which 6.1's load-exclusive mask takes for an open
    LL/SC sequence), and LL/SC sequences that max's LSE atomics alternative replaces."""
    a57, mx = booted_answers(arm64, "cortex-a57"), booted_answers(arm64, "max")
    changed = [a for (_, a, _, e1), (_, _, _, e2) in zip(a57, mx) if e1 != e2]
    assert len(changed) == 33
    caps = {c for f in refused.refusals(arm64, changed) for r in f for c in r.evidence.get("cpu_dependent", [])}
    assert {"WORKAROUND_DEVICE_LOAD_ACQUIRE", "HAS_LSE_ATOMICS"} <= caps
    ldr = at(arm64, "arm_smmu_context_fault", 0xB4)
    (r,) = refused.refusals(arm64, [ldr])[0]
    assert (r.reason, r.certain) == ("atomic-window", False)
    assert r.message.split(": ", 1)[1].startswith("depends on the CPU: refused with ")
    assert refused.refusals(arm64, [ldr], cpu=refused_arm64.a64_cpu("max")) == [[]]


def test_arm64_cpu_spec() -> None:
    assert (
        refused_arm64.a64_cpu("lse,PAN")
        == refused_arm64.a64_cpu("has_lse_atomics,pan")
        == {
            refused_arm64.A64_CPUCAPS.index("HAS_LSE_ATOMICS"),
            refused_arm64.A64_CPUCAPS.index("HAS_PAN"),
        }
    )
    with pytest.raises(ValueError, match="unknown arm64 CPU 'cortex-a99'"):
        refused_arm64.a64_cpu("cortex-a99")


def test_vmlinux_arm64_check_bands_by_cpu(arm64: Context) -> None:
    """``patchscope check``: a refusal that depends on the CPU is gray; told the CPU, it is the
    kernel's answer on that CPU (accepted on max, refused on the Cortex-A57)."""
    from patchscope.probes import syntax as ps
    from patchscope.report import check

    point = [ps.parse("kprobe:arm_smmu_context_fault+0xb4")]
    verdicts = [
        check.document(arm64.b, point, cpu)["points"][0]["verdict"]
        for cpu in (None, refused_arm64.a64_cpu("max"), refused_arm64.a64_cpu("cortex-a57"))
    ]
    assert verdicts == ["gray", "safe", "hazardous"]


# -- powerpc (refused_ppc.py) and Debian 6.1.0-56 ppc64el ----------------------------------------


def test_ppc_can_single_step() -> None:
    """arch/powerpc/include/asm/probes.h, word by word (encodings from the Power ISA)."""
    refused_words = {
        0x7FE00008: 1,  # trap (tw 31,0,0)
        0x0C000000: 1,  # twi 0,r0,0: never traps, refused all the same
        0x0B090000: 1,  # tdi
        0x7C000088: 1,  # td
        0x44000002: 2,  # sc
        0x44000001: 2,  # scv 0
        0x4C000024: 3,  # rfid
        0x4C000224: 3,  # hrfid
        0x4C0000A4: 3,  # rfscv
        0x4C0002E4: 4,  # stop
        0x7C000124: 5,  # mtmsr r0
        0x7D600164: 5,  # mtmsrd r11,0
        0x7D610164: 5,  # mtmsrd r11,1
    }
    stepped = [0x7C0000A6, 0x4C00012C, 0x4E800020, 0x7C0802A6, 0x7C0004AC, 0x7C00F828, 0x7C00F92D, 0x60000000]
    words = np.array([*refused_words, *stepped], np.uint32)  # mfmsr, isync, blr, mflr, sync, lwarx, stwcx., nop
    assert refused_ppc.ppc_unsteppable(words).tolist() == [*refused_words.values(), *[0] * len(stepped)]


PPC64EL_BOOTED = ROOT / "tests/data/debian-6.1.0-56-ppc64el"
#: The kernel log line each refusal prints (kprobe_events' dmesg column), by our first reason;
#: check_kprobe_address_safe's refusals print nothing.
PPC_SAID = {
    "notrace": "trace_kprobe: Could not probe notrace function",
    "unprobeable-insn": "Cannot register a kprobe on instructions that can't be single stepped",
    "misaligned": "Attempt to register kprobe at an unaligned address",
    "prefixed-suffix": "Cannot register a kprobe on the second word of prefixed instruction",
}


@pytest.fixture(scope="module")
def ppc64el() -> Context:
    return booted_lists("ppc64el", "6.1.0-56", "powerpc64le")[0]


def test_vmlinux_ppc64el_kprobe_events_answers(ppc64el: Context) -> None:
    """The booted kernel's answer to 1,181 kprobe_events definitions (tests/data/debian-6.1.0-56-ppc64el:
    `SYM+0` by name and by address, the global entry's `addi`, the local entry, the ftrace call
    site and its neighbours, functions without a TOC setup, clones, notrace code, the blacklist
    and head text, traps, mtmsrd, larx/stcx. windows, BUG/WARN, jump labels, feature fixups,
    misaligned and random addresses): every errno equal, and the kernel log line of each
    refusal is the one our first reason implies."""
    answers = []
    for line in (PPC64EL_BOOTED / "kprobe_events").read_text().splitlines():
        pid, target, answer = line.split(" ", 2)
        by_name = not target.startswith("0x")
        sym, _, off = target.partition("+")
        address = at(ppc64el, sym, int(off, 16)) if by_name else int(target, 16)
        said = answer.split(" | dmesg: ")[1] if " | dmesg: " in answer else ""
        answers.append((pid, address, by_name, STRERROR[answer.split(" | ")[0]], said))
    assert len(answers) == 1181
    found = refused.refusals(ppc64el, [a for _, a, _, _, _ in answers], by_name=[b for _, _, b, _, _ in answers])
    ours = [refused.answer(f, E, by_name) for (_, _, by_name, _, _), f in zip(answers, found)]
    assert ours == [errno for _, _, _, errno, _ in answers]
    for (pid, _, by_name, errno, said), f in zip(answers, found):
        if errno:
            first = [r for r in f if r.interface == N and by_name] + [r for r in f if r.interface == E]
            first = (first + [r for r in f if r.interface == K])[0]  # refused.answer's order
            expected = PPC_SAID.get(first.reason, "")
            assert said.startswith(expected) and (said == "") == (expected == ""), pid
    refusing = {pid.split("_")[0] for pid, _, _, errno, _ in answers if errno}
    assert {"rej1", "rej5", "twi0", "bug", "jumplabel", "head", "blacklisted", "misaligned", "notrace"} <= refusing
    accepting = ("entry", "ftrace", "local", "tocaddi", "larx", "stcx", "window", "afterstcx", "ftrfixup", "mfmsr")
    assert not any(errno for pid, _, _, errno, _ in answers if pid.startswith(tuple(c + "_" for c in accepting)))


def test_vmlinux_ppc64el_register_kprobe_answers(ppc64el: Context) -> None:
    """register_kprobe's own answers, from the kpcheck module in the booted kernel (no front end:
    notrace code too): the 1,287 addresses of `regaddrs` (every kprobe_events target, and the
    sc, rfid, stop, trap and mtmsrd of notrace code) and the 296 names of `regsyms` at offset 0,
    where the probe landed (`kp.addr`) as well. Every errno and landing equal, and the log line
    each attempt printed is the one our first reason implies. busybox's insmod retries a failed
    finit_module with init_module, so every batch ran twice: both runs answered alike."""
    answers: dict[tuple[str, str], tuple[int, int, str]] = {}
    said = ""
    for line in (PPC64EL_BOOTED / "register_kprobe").read_text().splitlines():
        if not line.startswith("kpcheck "):
            said = line  # printed by the attempt whose answer follows
            continue
        _, kind, what, *rest = line.split()
        got = (int(rest[0] if kind == "s" else what, 16), int(rest[-1]), said)
        assert answers.setdefault((kind, what), got) == got
        said = ""
    errno = {0: None, -22: "EINVAL"}
    by_addr = [v for (kind, _), v in answers.items() if kind == "a"]
    names = [what for kind, what in answers if kind == "s"]
    assert (len(by_addr), len(names)) == (1287, 296)
    found = refused.refusals(ppc64el, [a for a, _, _ in by_addr])
    ours = [[r for r in f if r.interface == K] for f in found]
    assert [refused.answer(f) for f in found] == [errno[ret] for _, ret, _ in by_addr]
    assert [PPC_SAID.get(f[0].reason, "") if f else "" for f in ours] == [s for _, _, s in by_addr]
    assert {f[0].reason for f in ours if f} >= {"unprobeable-insn", "prefixed-suffix", "head-text", "bug-site"}
    starts = np.array([at(ppc64el, n) for n in names], np.uint64)
    img = ppc64el.shared(refused.KernelImage)
    landed = [answers[("s", n)][0] for n in names]
    assert refused.by_name_lands(img, starts, True).tolist() == landed
    found = refused.refusals(ppc64el, starts, by_name=True)
    assert [refused.answer(f) for f in found] == [errno[answers[("s", n)][1]] for n in names]


def test_vmlinux_ppc64el_feature_fixups(ppc64el: Context) -> None:
    """Feature fixups rewrite 2,205 words at boot by CPU feature; only 6 change what
    can_single_step says (a big-endian `b` read as `tdi`, the `mtmsrd` of denorm_assist and
    unrecoverable_mce), each refused first for a certain reason, the head text or the
    blacklist: no answer of this kernel depends on the CPU, and those 6 say they would."""
    fixups = ppc64el.shared(refused_ppc.PpcFixups.of)
    img = ppc64el.shared(refused.KernelImage)
    assert len(fixups.at) == 2205
    file, patched = refused_ppc.ppc_words(img, fixups.at), fixups.patched(img, fixups.at)
    differ = fixups.at[refused_ppc.ppc_unsteppable(file) != refused_ppc.ppc_unsteppable(patched)]
    assert [img.symbol_name(int(a)) for a in differ] == [
        "start_first_256B",
        "exc_real_0x200_machine_check",
        "exc_real_0x700_program_check",
        "denorm_assist+0x8",
        "denorm_assist+0xc",
        "unrecoverable_mce+0x4",
    ]
    for f in refused.refusals(ppc64el, differ):
        first, last = f[0], [r for r in f if r.interface == K][-1]
        assert first.certain and first.reason in ("head-text", "kprobe-blacklist")
        assert (last.reason, last.certain, bool(last.evidence["cpu_dependent"])) == ("unprobeable-insn", False, True)


def test_vmlinux_ppc64el_sym0_moves(ppc64el: Context) -> None:
    """vfs_read: `addis r2,r12` | `addi r2,r2` | `mflr r0` (local entry) | `bl _mcount` (the
    ftrace record) (objdump -d). `vfs_read` by name lands on the record, an ftrace-based kprobe;
    by address it stays on the global entry, an ordinary one; both are accepted."""
    v = at(ppc64el, "vfs_read")
    img = ppc64el.shared(refused.KernelImage)
    assert refused.by_name_lands(img, np.array([v, v + 8], np.uint64), True).tolist() == [v + 12, v + 8]
    assert refused.by_name_lands(img, np.array([v], np.uint64), False) is None
    assert refused.refusals(ppc64el, [v, v, v + 2], by_name=[True, False, False])[:2] == [[], []]
    (r,) = refused.refusals(ppc64el, [v + 2])[0]
    assert r.reason == "misaligned"
    (h,) = [r for r in refused.refusals(ppc64el, [at(ppc64el, "_stext", 0x100)])[0] if r.interface == K]
    assert h.reason == "head-text"


def test_vmlinux_ppc64el_check_moves_named_probes(ppc64el: Context) -> None:
    """``check``: bpftrace's `kprobe:__do_sys_reboot` (a notrace function) is given to the kernel
    by name, so its refusal is decided at the local entry, +8; SystemTap's probe of the same
    function lands there itself (get_lep) and is not moved again."""
    from patchscope.probes import syntax as ps
    from patchscope.report import check

    start = at(ppc64el, "__do_sys_reboot")
    points = [ps.parse("kprobe:__do_sys_reboot"), ps.parse('kernel.function("__do_sys_reboot")')]
    bpf, stap = check.document(ppc64el.b, points, None)["points"]
    (lnd,) = bpf["landings"]
    (r,) = [x for x in lnd["reasons"] if x["code"] == "refused-address"]
    assert int(lnd["address"], 16) == start and r["evidence"]["refusals"][0]["probed_at"] == hex(start + 8)
    assert [int(x["address"], 16) for x in stap["landings"]] == [start + 8] and stap["verdict"] == "safe"


# -- Debian 6.1 ppc64el, armhf, s390x: the lists ----------------------------------------------------


def booted_lists(arch: str, abi: str, flavour: str) -> tuple[Context, Path]:
    """The Debian vmlinux of ``arch`` (skipped when absent) and its booted kernel's lists."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    p = cache / f"patchscope-kernels/{arch}/{abi}/vmlinux-{abi}-{flavour}"
    if not p.is_file():
        pytest.skip(f"Debian {abi} {arch} vmlinux absent (fetch-debian-kernel.sh -a {arch} {abi})")
    return Context(patchscope.open(p)), ROOT / f"tests/data/debian-{abi}-{arch}"


def ftrace_names(cx: Context) -> Counter[str]:
    """The kallsyms names of the ftrace records in the core text: available_filter_functions."""
    img = cx.shared(refused.KernelImage)
    (lo, hi), recs = img.text[0], img.records
    _, _, _, names = img.kallsyms.containing_all(recs[(recs >= lo) & (recs < hi)])
    return Counter(cx.string(int(n)) for n in names.tolist())


def blacklist_lines(booted: Path) -> Counter[tuple[int, int, str]]:
    out: Counter[tuple[int, int, str]] = Counter()
    for line in (booted / "kprobes_blacklist").read_text().splitlines():
        span, name = line.split("\t")
        start, end = span.split("-")
        out[(int(start, 16), int(end, 16), name)] += 1
    return out


@pytest.mark.parametrize(
    ("arch", "flavour", "traced", "listed"),
    [("ppc64el", "powerpc64le", 32_264, 200), ("armhf", "armmp", 37_353, 122)],
)
def test_vmlinux_lists_equal_the_booted_kernels(arch: str, flavour: str, traced: int, listed: int) -> None:
    """tests/data/debian-6.1.0-56-ppc64el and -armhf: the booted kernel's
    available_filter_functions (as a multiset of the kallsyms names of the ftrace records) and
    kprobes/blacklist (ranges and names) equal patchscope's, with no rule of their own."""
    cx, booted = booted_lists(arch, "6.1.0-56", flavour)
    theirs = Counter((booted / "available_filter_functions").read_text().split())
    assert sum(theirs.values()) == traced
    assert ftrace_names(cx) == theirs
    ref = blacklist_lines(booted)
    assert sum(ref.values()) == listed
    assert Counter((e.start, e.end, e.name) for e in cx.shared(refused.KernelImage).blacklist.entries) == ref


def test_vmlinux_s390x_lists_equal_the_booted_kernels() -> None:
    """tests/data/debian-6.1.0-50-s390x: available_filter_functions (28,378) and the blacklist
    (120 lines) equal patchscope's. The kernel lists `__kretprobe_trampoline` twice
    (NOKPROBE_SYMBOL and .kprobes.text), and its `_kprobe_blacklist` entry is an R_390_64
    relocation against the symbol, not an R_390_RELATIVE one: the core resolves both."""
    cx, booted = booted_lists("s390x", "6.1.0-50", "s390x")
    theirs = Counter((booted / "available_filter_functions").read_text().split())
    assert sum(theirs.values()) == 28_378
    assert ftrace_names(cx) == theirs
    ref = blacklist_lines(booted)
    assert sum(ref.values()) == 120
    assert Counter((e.start, e.end, e.name) for e in cx.shared(refused.KernelImage).blacklist.entries) == ref
    assert [n for (_, _, n), k in ref.items() if k > 1] == ["kprobe_exceptions_notify", "__kretprobe_trampoline"]


def test_vmlinux_s390x_kprobe_events_answers() -> None:
    """The booted s390x kernel's answer to 1,094 kprobe_events definitions
    (tests/data/debian-6.1.0-50-s390x/probes, scripts/choose-s390x-kprobes): entries (the ftrace
    NOP, accepted as an ftrace-based kprobe), the halfwords inside the NOP, in the middle of 4-
    and 6-byte instructions and of jump-label and BUG sites (can_probe's boundary walk), odd
    addresses, every prohibited opcode the text holds (DIAG, EX, EXRL, STNSM, STOSM, EPSW),
    compare-and-swap instructions and the instructions around them (accepted: s390 has no
    atomic-window check), clones, notrace and blacklisted code: every prediction equals the
    kernel's answer."""
    cx, booted = booted_lists("s390x", "6.1.0-50", "s390x")
    answers = []
    for line in (booted / "kprobe_events").read_text().splitlines():
        pid, target, answer = line.split(" ", 2)
        by_name = not target.startswith("0x")
        sym, _, off = target.partition("+")
        address = at(cx, sym, int(off, 16)) if by_name else int(target, 16)
        answers.append((pid, address, by_name, STRERROR[answer.split(" | ")[0]]))
    assert len(answers) == 1094
    found = refused.refusals(cx, [a for _, a, _, _ in answers])
    assert [refused.answer(f, E, by_name) for (_, _, by_name, _), f in zip(answers, found)] == [
        errno for _, _, _, errno in answers
    ]
    first = {pid.split("_")[0]: f[0].reason for (pid, _, _, _), f in zip(answers, found) if f}
    assert first["mid6at2"] == first["ftrace2"] == "not-insn-boundary"
    assert (first["odd"], first["nostosm"], first["noexrl"]) == ("misaligned", "unprobeable-insn", "unprobeable-insn")
    assert not any(errno for pid, _, _, errno in answers if pid.startswith(("cs_", "csbefore_", "csafter_", "random_")))


def test_s390_prohibited_and_known_opcodes() -> None:
    """probe_is_prohibited_opcode, row by row: the first byte or halfword decides; is_known_insn
    by the kernel's disassembler table (a 0x00xx halfword is known only as 0x0000 or 0x0002)."""
    rows = {
        "ad0f1000": "stosm",
        "c6000000": "exrl",
        "c6020000": None,  # pfdrl: same first byte, another low nibble
        "e5600000ff00": "tbegin",
        "e5610000ff00": "tbeginc",
        "b2f80000": "tend",
        "b2fc0000": None,  # tabort: allowed
        "ba123000": None,  # cs
        "eb1230000030": None,  # csg
        "b98d0010": "epsw",
        "07fe": None,  # br %r14
    }
    raw = np.zeros((len(rows), 16), np.uint8)
    for i, h in enumerate(rows):
        raw[i, : len(h) // 2] = np.frombuffer(bytes.fromhex(h), np.uint8)
    assert refused_s390.s390_prohibited(raw) == list(rows.values())
    assert refused_s390.s390_known(raw).all()
    odd = np.zeros((4, 16), np.uint8)
    odd[:, :2] = [[0x00, 0x00], [0x00, 0x02], [0x00, 0x01], [0xB2, 0x03]]
    assert refused_s390.s390_known(odd).tolist() == [True, True, False, False]


# -- Debian 6.1.0-56 armhf: kprobe answers ----------------------------------------------------------


def test_vmlinux_armhf_kprobe_events_answers() -> None:
    """tests/data/debian-6.1.0-56-armhf: the booted ARM-mode kernel's answer to 804 kprobe_events
    definitions (entries, the `bl __gnu_mcount_nc` ftrace site and the `push {lr}` before it,
    clones, notrace and blacklisted code, each class the decode tables or the stack check
    reject, conditional instructions, literal-pool words, LDREX/STREX windows, jump-label and
    BUG sites, misaligned and random addresses) equals patchscope's, every one."""
    cx, booted = booted_lists("armhf", "6.1.0-56", "armmp")
    answers = []
    for line in (booted / "kprobe_events").read_text().splitlines():
        pid, target, answer = line.split(" ", 2)
        by_name = not target.startswith("0x")
        sym, _, off = target.partition("+")
        address = at(cx, sym, int(off, 16)) if by_name else int(target, 16)
        answers.append((pid.split("_")[0], address, by_name, STRERROR[answer.split(" | ")[0]]))
    assert len(answers) == 804
    found = refused.refusals(cx, [a for _, a, _, _ in answers])
    ours = [refused.answer(f, E, by_name) for (_, _, by_name, _), f in zip(answers, found)]
    assert ours == [errno for *_, errno in answers]
    refusing = {cat for cat, *_, errno in answers if errno}
    assert {"ftrace", "rej3", "rej8", "rej21", "bug", "jumplabel", "notrace", "misaligned"} <= refusing
    assert not any(errno for cat, *_, errno in answers if cat in ("window", "afterstrex", "pushlr", "cond"))
    reasons = {r.reason for f in found for r in f}
    assert {"ftrace-site", "unprobeable-insn", "bug-site", "jump-label", "misaligned"} <= reasons


def test_armhf_decode_tables() -> None:
    """refused_arm on words of the armmp kernel (objdump -d): what arm_probes_decode_insn and
    the stack check do with them."""
    from patchscope.rules.refused_arm import arm_rejected

    accepted = [0xE52DE004, 0xEB000000, 0xE12FFF1E, 0xE8BD8010, 0x03A00001, 0xE92D4FF0, 0xE1A0C00D]
    assert [arm_rejected(w) for w in accepted] == [None] * len(accepted)  # push {lr}, bl, bx lr, pop, moveq, push
    assert "synchronization" in (arm_rejected(0xE1932F9F) or "")  # ldrex r2, [r3]
    assert "coprocessor" in (arm_rejected(0xEE1D7F70) or "")  # mrc p15, 0, r7, c13, c0, 3
    assert "undefined" in (arm_rejected(0xE7F001F2) or "")  # BUG()
    assert "stack" in (arm_rejected(0xE50D0050) or "")  # str r0, [sp, #-80]
    assert arm_rejected(0xE50D0040) is None  # str r0, [sp, #-64]
    assert "stack" in (arm_rejected(0xE78D0001) or "")  # str r0, [sp, r1]
    assert "register" in (arm_rejected(0xE5BF0004) or "")  # ldr r0, [pc, #4]! : writeback to pc

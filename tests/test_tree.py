"""A kernel tree as one target: finding its binaries, routing points to them, the pool, bad trees.

The small tree is made of fixtures: the kernel in miniature (``x86_64-kprobes``) as its vmlinux,
the relocatable objects built like a ``.ko`` (``x86_64-rel``, ``x86_64-sites``) as modules,
with a ``.modinfo`` vermagic added by objcopy where a test needs one.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from test_cli import run

from conftest import BIN
from patchscope.index import tree as kt

RELEASE = "6.1.0-test"
KERNEL = BIN / "x86_64-kprobes" / "corpus"
FOO = BIN / "x86_64-rel" / "module.o"
SITES = BIN / "x86_64-sites" / "module.o"


def with_vermagic(src: Path, dest: Path, release: str) -> Path:
    info = dest.with_suffix(".modinfo")
    info.write_bytes(f"license=GPL\0vermagic={release} SMP preempt mod_unload modversions \0".encode())
    has = b".modinfo" in src.read_bytes()  # x86_64-sites has one: its contents replaced
    how = "--update-section" if has else "--add-section"
    subprocess.run(["objcopy", how, f".modinfo={info}", str(src), str(dest)], check=True)
    info.unlink()
    return dest


@pytest.fixture
def small_tree(tmp_path: Path) -> Path:
    """``lib/modules/RELEASE`` of a debug package: modules below, the vmlinux in ``boot/``."""
    root = tmp_path / "usr/lib/debug/lib/modules" / RELEASE
    (root / "kernel/fs").mkdir(parents=True)
    boot = tmp_path / "usr/lib/debug/boot"
    boot.mkdir(parents=True)
    shutil.copy(KERNEL, boot / f"vmlinux-{RELEASE}")
    with_vermagic(FOO, root / "kernel/fs/foo.ko", RELEASE)
    with_vermagic(SITES, root / "kernel/bar-baz.ko", RELEASE)
    return root


def test_finds_vmlinux_and_modules_named_as_the_kernel_names_them(small_tree: Path) -> None:
    t = kt.find(small_tree)
    assert t.release == RELEASE
    assert t.vmlinux is not None and t.vmlinux.name == f"vmlinux-{RELEASE}"
    assert sorted(t.modules) == ["bar_baz", "foo"]
    assert t.matching("bar-baz") == t.matching("bar_b*") == ["bar_baz"]
    assert kt.vermagic(t.modules["foo"]) == f"{RELEASE} SMP preempt mod_unload modversions "
    # the root of the extracted package is the same tree
    assert kt.find(small_tree.parents[4]).modules == t.modules


def test_release_found_under_the_debug_roots(small_tree: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kt, "DEBUG_ROOTS", ("/nonexistent", str(small_tree.parent)))
    assert kt.find(release=RELEASE).root == small_tree
    with pytest.raises(kt.TreeError, match="no tree under"):
        kt.find(release="9.9.9")


def test_build_directory(tmp_path: Path) -> None:
    (tmp_path / "include/config").mkdir(parents=True)
    (tmp_path / "include/config/kernel.release").write_text(RELEASE + "\n")
    (tmp_path / "net").mkdir()
    shutil.copy(KERNEL, tmp_path / "vmlinux")
    shutil.copy(FOO, tmp_path / "net/foo.ko")
    t = kt.find(tmp_path)
    assert (t.release, t.vmlinux, list(t.modules)) == (RELEASE, tmp_path / "vmlinux", ["foo"])


def test_scan_summary_of_the_tree_adds_up_each_binary(small_tree: Path) -> None:
    whole = run("scan", "--summary", "--format", "json", small_tree)
    assert whole.returncode == 0, whole.stderr
    doc = json.loads(whole.stdout)
    assert [b["name"] for b in doc["binaries"]] == ["vmlinux", "bar_baz", "foo"]
    alone = [
        json.loads(run("scan", "--format", "json", "--summary", b["binary"]["path"]).stdout) for b in doc["binaries"]
    ]
    assert doc["summary"]["functions"] == sum(a["summary"]["functions"] for a in alone)
    for band, n in doc["summary"]["functions_by_band"].items():
        assert n == sum(a["summary"]["functions_by_band"][band] for a in alone)
    assert doc["failed"] == []


def test_check_routes_each_point_to_its_binary(small_tree: Path) -> None:
    points = [
        'module("foo").function("combo_entry")',
        "kprobe:bar-baz:branch_first",
        "p:ev foo:combo_entry",
        'module("*").function("branch_first")',
        'kernel.function("nope")',
        'module("nope").function("x")',
    ]
    r = run("check", "--format", "json", small_tree, *points)
    recs = {p["probe"]: p for p in json.loads(r.stdout)["points"]}
    assert {lnd["binary"] for lnd in recs[points[0]]["landings"]} == {"foo"}
    assert {lnd["binary"] for lnd in recs[points[1]]["landings"]} == {"bar_baz"}
    assert {lnd["binary"] for lnd in recs[points[2]]["landings"]} == {"foo"}
    assert {lnd["binary"] for lnd in recs[points[3]]["landings"]} == {"bar_baz"}
    (error,) = recs[points[4]]["errors"]
    assert error.startswith(f'kernel.function("nope"): no such function or line in vmlinux-{RELEASE}:')
    assert recs[points[5]]["errors"] == [f"module nope is not in the kernel tree {small_tree}"]
    # the same addresses as the module checked alone
    alone = json.loads(run("check", "--format", "json", small_tree / "kernel/fs/foo.ko", points[0]).stdout)
    assert [lnd["address"] for lnd in alone["points"][0]["landings"]] == [
        lnd["address"] for lnd in recs[points[0]]["landings"]
    ]


def test_perf_module_option(small_tree: Path) -> None:
    r = run("check", "--format", "json", small_tree, "-m", "foo", "combo_entry")
    rec = json.loads(r.stdout)["points"][0]
    assert rec["landings"] and {lnd["binary"] for lnd in rec["landings"]} == {"foo"}


def test_module_point_against_a_vmlinux_alone(tmp_path: Path) -> None:
    r = run("check", KERNEL, 'module("ext4").function("ext4_file_open")')
    assert r.returncode == 2
    assert "module ext4 is not in this binary — pass the kernel tree" in r.stdout


# -- bad trees ----------------------------------------------------------------------------------


def test_corrupt_module_named_and_the_rest_analysed(small_tree: Path) -> None:
    (small_tree / "kernel/broken.ko").write_bytes(FOO.read_bytes()[:1000])
    r = run("scan", "--summary", "--format", "json", small_tree)
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    assert [f["binary"] for f in doc["failed"]] == ["broken"]
    assert [b["name"] for b in doc["binaries"]] == ["vmlinux", "bar_baz", "foo"]
    assert r.stderr.count("\n") == 1 and "broken.ko" in r.stderr and "Traceback" not in r.stderr


def test_module_of_another_kernel_skipped(small_tree: Path) -> None:
    with_vermagic(FOO, small_tree / "kernel/other.ko", "5.10.0-99-amd64")
    r = run("scan", "--summary", "--format", "json", small_tree)
    doc = json.loads(r.stdout)
    assert r.returncode == 2
    (failed,) = doc["failed"]
    assert (
        failed["binary"] == "other" and f"built for kernel 5.10.0-99-amd64 (vermagic), not {RELEASE}" in failed["error"]
    )
    assert len(doc["binaries"]) == 3


def test_module_twice_refused(small_tree: Path) -> None:
    with_vermagic(FOO, small_tree / "kernel/fs/bar_baz.ko", RELEASE)
    t = kt.find(small_tree)
    assert "bar_baz" not in t.modules
    assert list(t.refused) == ["bar_baz"] and "module bar_baz is in the tree 2 times" in t.refused["bar_baz"]
    r = run("scan", "--summary", "--format", "json", small_tree)
    assert [f["binary"] for f in json.loads(r.stdout)["failed"]] == ["bar_baz"] and r.returncode == 2


def test_two_kernels_in_one_folder_refused(small_tree: Path, tmp_path: Path) -> None:
    (small_tree.parent / "5.10.0-99-amd64").mkdir()
    r = run("scan", "--summary", tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.strip() == (
        f"patchscope: error: {tmp_path}: 2 kernels in one folder (5.10.0-99-amd64, {RELEASE}); pass one"
    )
    build = tmp_path / "build"
    build.mkdir()
    shutil.copy(KERNEL, build / "vmlinux")
    shutil.copy(KERNEL, build / "vmlinux-5.10.0")
    r = run("scan", "--summary", build)
    assert r.returncode == 2 and "2 kernel images in one folder (vmlinux, vmlinux-5.10.0); pass one" in r.stderr


def test_not_a_tree(tmp_path: Path) -> None:
    r = run("scan", "--summary", tmp_path)
    assert r.returncode == 2
    why = "is a directory, and no kernel tree: neither a vmlinux nor any .ko module in it"
    assert r.stderr.strip() == f"patchscope: error: {tmp_path}: {why}"
    r = run("function", tmp_path, "x")
    assert r.returncode == 2 and "function takes one binary" in r.stderr


# -- the real tree ------------------------------------------------------------------------------


def debian_tree() -> Path | None:
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    tree = cache / "patchscope-kernels/amd64/6.1.0-56/tree"
    # .complete: written by fetch-debian-kernel.sh once the extraction is over
    return tree / "usr/lib/debug/lib/modules/6.1.0-56-amd64" if (tree / ".complete").exists() else None


def test_debian_tree_nf_tables() -> None:
    t = debian_tree()
    if t is None:
        pytest.skip("Debian 6.1.0-56 module tree absent (../shared/data/fetch-debian-kernel.sh -m 6.1.0-56)")
    tree = kt.find(t)
    assert tree.release == "6.1.0-56-amd64" and len(tree.modules) == 4023 and tree.refused == {}
    assert tree.check_module("nf_tables") is None
    point = 'module("nf_tables").function("nf_tables_newrule")'
    doc = json.loads(run("check", "--format", "json", t, point).stdout)
    alone = json.loads(run("check", "--format", "json", tree.modules["nf_tables"], point).stdout)
    (rec,) = doc["points"]
    assert [lnd["binary"] for lnd in rec["landings"]] == ["nf_tables"]
    assert [lnd["address"] for lnd in rec["landings"]] == [lnd["address"] for lnd in alone["points"][0]["landings"]]
    # checked against the vmlinux alone, the module's point is refused, not resolved in the kernel
    assert "pass the kernel tree" in run("check", tree.vmlinux, point).stdout


def test_diff_of_two_trees(tmp_path: Path) -> None:
    """Which modules were added, removed, changed — and each changed one as ``diff`` of the pair."""
    diff = BIN / "diff" / "x86_64-rel"
    for side in ("old", "new"):
        (tmp_path / side / "kernel").mkdir(parents=True)
        shutil.copy(KERNEL, tmp_path / side / "vmlinux")
        shutil.copy(diff / side / "module.o", tmp_path / side / "kernel" / "foo.ko")
    shutil.copy(FOO, tmp_path / "old/kernel/gone.ko")
    shutil.copy(SITES, tmp_path / "new/kernel/added.ko")
    r = run("diff", "--format", "json", tmp_path / "old", tmp_path / "new")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert (doc["added"], doc["removed"]) == (["added"], ["gone"])
    assert doc["summary"] == {"changed": 1, "unchanged": 1}  # the vmlinux is the same file
    (foo,) = doc["binaries"]
    pair = json.loads(run("diff", "--format", "json", diff / "old/module.o", diff / "new/module.o").stdout)
    assert foo["name"] == "foo" and foo["functions"] == pair["functions"]
    assert foo["changes"] == {k: v for k, v in pair["summary"].items() if not k.startswith("functions_")}
    r = run("diff", tmp_path / "old", diff / "new/module.o")
    assert r.returncode == 2 and "diff compares a tree with a tree" in r.stderr


# -- a module's own rules -----------------------------------------------------------------------

MODULE = BIN / "x86_64-kprobes-module" / "module.o"


def test_module_blacklist_is_its_own() -> None:
    """What loading the module adds to the kernel's blacklist (add_module_kprobe_blacklist): the
    functions its ``_kprobe_blacklist`` relocations name (read here by pyelftools), and its
    ``.kprobes.text`` and ``.noinstr.text`` sections; its init text is refused once it is loaded."""
    from elftools.elf.elffile import ELFFile

    with open(MODULE, "rb") as f:
        elf = ELFFile(f)
        rela = elf.get_section_by_name(".rela_kprobe_blacklist")
        symtab = elf.get_section_by_name(".symtab")
        listed = {symtab.get_symbol(r["r_info_sym"]).name for r in rela.iter_relocations()}
        in_area = {
            s.name: elf.get_section(s["st_shndx"]).name
            for s in symtab.iter_symbols()
            if s["st_info"]["type"] == "STT_FUNC"
            and elf.get_section(s["st_shndx"]).name in (".kprobes.text", ".noinstr.text")
        }
    assert listed == {"mod_handler"}
    assert in_area == {"mod_fault_handler": ".kprobes.text", "mod_nmi": ".noinstr.text"}
    doc = json.loads(run("scan", "--format", "json", MODULE).stdout)
    codes = {f["name"]: set(f["codes"]) for f in doc["functions"]}
    for name in listed | {"mod_fault_handler"}:
        assert "kprobe-blacklist" in codes[name]
    assert "noinstr" in codes["mod_nmi"]
    assert codes["mod_ordinary"] == set()
    init = next(f for f in doc["functions"] if f["name"] == "mod_init")
    (refused,) = [x for x in init["findings"] if x["code"] == "refused-address"]
    assert [r["reason"] for r in refused["evidence"]["refusals"]] == ["not-kernel-text"]


# -- modules of the booted kernel (tests/data/debian-6.1.0-56-amd64/modules/README.md) -------------

BOOTED = Path(__file__).parent / "data/debian-6.1.0-56-amd64/modules"


def _booted(name: str) -> list[list[str]]:
    return [line.split() for line in (BOOTED / name).read_text().splitlines()]


@pytest.fixture(scope="module")
def debian() -> kt.Tree:
    t = debian_tree()
    if t is None:
        pytest.skip("Debian 6.1.0-56 module tree absent (../shared/data/fetch-debian-kernel.sh -m 6.1.0-56)")
    return kt.find(t)


@pytest.mark.parametrize("module", ["kvm", "nf_tables"])
def test_module_blacklist_equals_the_booted_kernels(debian: kt.Tree, module: str) -> None:
    """The module's part of /sys/kernel/debug/kprobes/blacklist once it is loaded: kvm's two
    noinstr functions, nothing of nf_tables; the same names and sizes (the addresses are the
    load address's)."""
    import patchscope
    from patchscope.index.context import Context
    from patchscope.rules.kernel import blacklist

    ref = sorted(
        (name, int(z, 16) - int(a, 16))
        for span, name, m in _booted("kprobes_blacklist")
        if m == f"[{module}]"
        for a, z in [span.split("-")]
    )
    ours = sorted(
        (e.name, e.end - e.start) for e in blacklist(Context(patchscope.open(debian.modules[module]))).entries
    )
    assert ours == ref
    assert len(ref) == (2 if module == "kvm" else 0)


@pytest.mark.parametrize("module", ["kvm", "nf_tables"])
def test_module_ftrace_sites_equal_the_booted_kernels(debian: kt.Tree, module: str) -> None:
    """The module's lines of available_filter_functions: its __mcount_loc records outside init
    text (freed after the module's init) at a symbol start by name; the records at no symbol start
    are its ``__ftrace_invalid_address___N`` lines (as in the vmlinux: tests/test_vmlinux.py)."""
    from collections import Counter

    import patchscope
    from patchscope.index.context import Context
    from patchscope.rules.entry import Entries

    names = [name for name, m in _booted("available_filter_functions") if m == f"[{module}]"]
    invalid = [n for n in names if n.startswith("__ftrace_invalid_address___")]
    listed = Counter(n for n in names if not n.startswith("__ftrace_invalid_address___"))
    cx = Context(patchscope.open(debian.modules[module]))
    at = [cx.name_at(r) for r in Entries(cx).records.tolist() if not (cx.section_at(r)[0] or "").startswith(".init")]
    ours = Counter(n for n in at if "+" not in n)
    assert ours == listed
    assert len(at) - sum(ours.values()) == len(invalid) == {"kvm": 16, "nf_tables": 0}[module]
    assert len(names) == {"kvm": 1323, "nf_tables": 491}[module]


def test_module_points_refused_as_the_booted_kernel_refuses_them(debian: kt.Tree) -> None:
    """``p:ev M:f`` written to tracefs kprobe_events of the booted kernel with kvm and nf_tables
    loaded: init and exit text and kvm's noinstr functions refused, the others accepted."""
    answers = {spec: verdict for verdict, spec in _booted("kprobe_events")}
    r = run("check", "--format", "json", debian.root, *(f"p:ev {spec}" for spec in answers))
    for rec in json.loads(r.stdout)["points"]:
        refused = any(
            f["code"] in ("refused-address", "kprobe-blacklist", "noinstr")
            for lnd in rec["landings"]
            for f in lnd["reasons"]
        )
        assert refused == (answers[rec["probe"].removeprefix("p:ev ")] == "REFUSED"), rec["probe"]
    assert sorted(answers.values()).count("ACCEPTED") == 2


def test_functions_and_list_over_a_tree(small_tree: Path) -> None:
    r = run("functions", "--format", "json", small_tree, "drain")
    doc = json.loads(r.stdout)
    found = {b["name"]: [f["name"] for f in b["functions"]] for b in doc["binaries"]}
    assert found == {"vmlinux": [], "bar_baz": [], "foo": ["drain"]}
    assert "foo:drain" in run("functions", small_tree, "drain").stdout
    point = 'module("foo").function("drain")'
    listed = run("list", small_tree, point)
    assert listed.returncode == 0
    assert listed.stdout == run("list", small_tree / "kernel/fs/foo.ko", point).stdout
    r = run("list", small_tree, 'module("nope").function("*")')
    assert r.returncode == 2 and f"module nope is not in the kernel tree {small_tree}" in r.stderr


def test_release_option_on_the_command_line(
    small_tree: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``check -r RELEASE POINT``: the first word after the options is a point, not a binary."""
    from patchscope.cli import main

    monkeypatch.setattr(kt, "DEBUG_ROOTS", (str(small_tree.parent),))
    status = main.main(["check", "--format", "json", "-r", RELEASE, 'module("foo").function("combo_entry")'])
    (rec,) = json.loads(capsys.readouterr().out)["points"]
    assert status == 0 and [lnd["binary"] for lnd in rec["landings"]] == ["foo"]


def test_missing_module_and_missing_vmlinux(small_tree: Path) -> None:
    """A module whose file is gone (a dangling link) is one line; a tree without its vmlinux
    still serves its modules, and a point in the kernel image says what is missing."""
    (small_tree / "kernel/gone.ko").symlink_to(small_tree / "nowhere.ko")
    (small_tree.parents[2] / "boot" / f"vmlinux-{RELEASE}").unlink()
    r = run("check", "--format", "json", small_tree, 'module("foo").function("combo_entry")', "kprobe:vfs_read")
    assert r.returncode == 2
    doc = json.loads(r.stdout)
    recs = {p["probe"]: p for p in doc["points"]}
    assert recs['module("foo").function("combo_entry")']["landings"]
    assert recs["kprobe:vfs_read"]["errors"] == [
        f"kprobe:vfs_read: a point in the kernel image, and {small_tree} has no vmlinux"
    ]
    r = run("scan", "--summary", "--format", "json", small_tree)
    (failed,) = json.loads(r.stdout)["failed"]
    assert failed["binary"] == "gone" and "No such file or directory" in failed["error"] and r.returncode == 2


def test_stats_of_a_tree_adds_up_each_binary(small_tree: Path) -> None:
    """``stats TREE BINARY``: the tree is one build, every count the sum of its binaries' alone."""
    r = run("stats", "--format", "json", small_tree, SITES)
    assert r.returncode == 0, r.stderr
    whole, single = json.loads(r.stdout)["binaries"]
    assert (whole["label"], whole["binaries"], single["path"]) == (RELEASE, 3, str(SITES))
    paths = [small_tree.parents[2] / "boot" / f"vmlinux-{RELEASE}", small_tree / "kernel/bar-baz.ko"]
    alone = json.loads(run("stats", "--format", "json", *paths, small_tree / "kernel/fs/foo.ko").stdout)["binaries"]

    def total(*keys: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for rec in alone:
            d = rec
            for k in keys:
                d = d[k]
            for k, v in d.items():
                out[k] = out.get(k, 0) + v
        return out

    assert whole["calls"]["functions"] == total("calls", "functions")
    assert whole["calls"]["call_sites"] == total("calls", "call_sites")
    assert whole["versions"]["instances_by_suffix"] == total("versions", "instances_by_suffix")
    assert whole["inline_args"]["sites_by_class"] == total("inline_args", "sites_by_class")
    assert whole["bands"]["functions_by_band"] == total("bands", "functions_by_band")
    assert whole["bands"]["functions_by_code"] == total("bands", "functions_by_code")
    assert whole["calls"]["source_functions"] == sum(a["calls"]["source_functions"] for a in alone) > 0
    inline = whole["calls"]["call_sites"]["inline"]
    assert whole["calls"]["inlined_share_of_all"] == round(
        inline / (inline + whole["calls"]["call_sites"]["dwarf_calls"]), 4
    )
    examples = [e["name"] for s in whole["versions"]["shapes"].values() for e in s["examples"]]
    assert examples and all(e.split(":")[0] in ("vmlinux", "foo", "bar_baz") for e in examples)
    # the table names the tree and its binaries
    table = run("stats", small_tree).stdout
    assert f"{RELEASE}: {small_tree} (x86_64, 3 binaries)" in table


def test_stats_of_a_tree_names_the_binary_that_failed(small_tree: Path) -> None:
    (small_tree / "kernel/broken.ko").write_bytes(FOO.read_bytes()[:1000])
    r = run("stats", "--format", "json", small_tree)
    assert r.returncode == 2 and "broken.ko" in r.stderr and "Traceback" not in r.stderr
    doc = json.loads(r.stdout)
    assert [(f["build"], f["binary"]) for f in doc["failed"]] == [(RELEASE, "broken")]
    assert doc["binaries"][0]["binaries"] == 3


# -- names a module shares with the vmlinux -----------------------------------------------------


def test_module_function_of_a_vmlinux_name(small_tree: Path) -> None:
    """A module defining ``ordinary``, which the vmlinux has too: a bare name the kernel looks up
    (``p:ev ordinary``, ``kprobe:ordinary``) is the vmlinux's, and refused while the module is
    loaded; ``M:f`` and stap's ``kernel.function`` are exact. A name only the module has is
    found in the module. (The booted kernel's answers: the next test.)"""
    shadow = small_tree / "kernel/fs/foo.ko"
    subprocess.run(["objcopy", "--redefine-sym", "combo_entry=ordinary", str(shadow)], check=True)
    points = [
        "p:ev ordinary",
        "kprobe:ordinary",
        "p:ev foo:ordinary",
        'kernel.function("ordinary")',
        "p:ev real_impl",
        "perf probe real_impl",
    ]
    r = run("check", "--format", "json", small_tree, *points)
    recs = {p["probe"]: p for p in json.loads(r.stdout)["points"]}
    for p in points[:2]:
        assert {lnd["binary"] for lnd in recs[p]["landings"]} == {"vmlinux"}
        (note,) = recs[p]["notes"]
        assert note.startswith("module foo defines ordinary too: while it is loaded the kernel refuses the name")
        assert "foo:ordinary names the module's" in note
    assert {lnd["binary"] for lnd in recs[points[2]]["landings"]} == {"foo"} and recs[points[2]]["notes"] == []
    assert {lnd["binary"] for lnd in recs[points[3]]["landings"]} == {"vmlinux"}
    assert not any("defines" in n for n in recs[points[3]]["notes"])
    assert {lnd["binary"] for lnd in recs[points[4]]["landings"]} == {"foo"}
    assert recs[points[4]]["notes"] == [
        "real_impl is not in the vmlinux: the kernel finds it in module foo once loaded"
    ]
    perf = recs["real_impl"]  # the perf line's point, as perf names it
    assert perf["landings"] == [] and "real_impl is defined in module foo: perf probe -m foo real_impl" in perf["notes"]
    # the names the module would add to kallsyms, and no other
    assert kt.kallsyms_holds(shadow, ["ordinary", "real_impl", "nope"]) == {"ordinary", "real_impl"}


def test_module_names_as_the_booted_kernel_resolves_them(debian: kt.Tree) -> None:
    """With kvm loaded (kprobe_events_shadow): kvm_resume and kvm_suspend, static functions of
    both the vmlinux and kvm.ko, are refused by name and accepted as kvm:NAME; kvm_vcpu_ioctl,
    kvm's alone, lands in kvm — where the kernel put each (kprobes_list_shadow)."""
    answers = [line.split(maxsplit=2) for line in (BOOTED / "kprobe_events_shadow").read_text().splitlines()]
    loaded = {spec: verdict for phase, verdict, spec in answers if phase == "loaded"}
    r = run("check", "--format", "json", debian.root, *(f"p:ev {spec}" for spec in loaded))
    # ADDRESS k NAME+0x0 [MODULE] [FLAGS]: the binary each accepted probe landed in
    landed = {
        (w[2].split("+")[0], "vmlinux" if w[3].startswith("[") else w[3])
        for w in (ln.split() for ln in (BOOTED / "kprobes_list_shadow").read_text().splitlines())
    }
    for rec in json.loads(r.stdout)["points"]:
        spec = rec["probe"].removeprefix("p:ev ")
        refused_by_name = any("the kernel refuses the name" in n for n in rec["notes"])
        assert refused_by_name == (loaded[spec] == "REFUSED"), spec
        if loaded[spec] == "ACCEPTED":
            (binary,) = {lnd["binary"] for lnd in rec["landings"]}
            assert (spec.rpartition(":")[2], binary) in landed, spec
    assert sorted(loaded.values()).count("REFUSED") == 2


def with_build_id(path: Path, byte: int) -> Path:
    """``path`` given a GNU build-id note of twenty bytes ``byte`` (in place)."""
    note = path.with_suffix(".note")
    note.write_bytes(struct.pack("<III", 4, 20, 3) + b"GNU\0" + bytes([byte]) * 20)
    how = "--update-section" if kt.build_id(path) else "--add-section"
    subprocess.run(["objcopy", how, f".note.gnu.build-id={note}", str(path)], check=True)
    note.unlink()
    return path


def test_debug_module_of_another_build_skipped(small_tree: Path) -> None:
    """A debug tree beside the installed modules (``/usr/lib/debug/lib/modules/R`` and
    ``/lib/modules/R``): a debug module whose build-id is not the installed one's is of another
    build of the release — named and skipped; the one that matches is analysed."""
    installed = small_tree.parents[5] / "lib/modules" / RELEASE
    (installed / "kernel/fs").mkdir(parents=True)
    for rel, debug, shipped in (("kernel/fs/foo.ko", 1, 2), ("kernel/bar-baz.ko", 3, 3)):
        with_build_id(small_tree / rel, debug)
        with_build_id(shutil.copy(small_tree / rel, installed / rel), shipped)
    t = kt.find(small_tree)
    assert t.installed == installed and kt.build_id(t.modules["foo"]) == "01" * 20
    assert t.check_module("bar_baz") is None
    assert t.check_module("foo") == (
        f"{t.modules['foo']}: module foo has build-id {'01' * 20}, the installed {installed / 'kernel/fs/foo.ko'} "
        f"has {'02' * 20}: another build of the kernel; skipped"
    )
    r = run("scan", "--summary", "--format", "json", small_tree)
    doc = json.loads(r.stdout)
    assert r.returncode == 2 and [f["binary"] for f in doc["failed"]] == ["foo"]
    assert [b["name"] for b in doc["binaries"]] == ["vmlinux", "bar_baz"]
    assert r.stderr.count("\n") == 1 and "another build of the kernel" in r.stderr


def test_debian_debug_module_is_the_shipped_ones_build() -> None:
    """Debian's debug kvm.ko and the kvm.ko of linux-image-6.1.0-56-amd64 share their build-id
    (the package scripts/qemu-boot unpacks, when present)."""
    t = debian_tree()
    shipped = Path.home() / ".cache/patchscope-qemu/amd64/6.1.0-56-amd64/pkg/lib/modules/6.1.0-56-amd64"
    if t is None or not shipped.is_dir():
        pytest.skip("Debian 6.1.0-56 debug tree or its linux-image package absent")
    tree = kt.find(t)
    twin = shipped / tree.modules["kvm"].relative_to(tree.root)
    assert kt.build_id(twin) == kt.build_id(tree.modules["kvm"]) == "bcaa711b37112a102028687524d55521b820a4b0"
    assert kt.check_module(tree.modules["kvm"], "kvm", kt.Expected(tree.release, twin)) is None


# -- the documents' schemas (docs/schema/tree-1.json, tree-diff-1.json, check-2.json) ------------

SCHEMAS = Path(__file__).parents[1] / "docs/schema"


def validate(doc: dict[str, object], name: str) -> None:
    import jsonschema

    jsonschema.validate(doc, json.loads((SCHEMAS / name).read_text()))


def test_tree_documents_follow_their_schemas(small_tree: Path, tmp_path: Path) -> None:
    (small_tree / "kernel/broken.ko").write_bytes(FOO.read_bytes()[:1000])
    scan = json.loads(run("scan", "--format", "json", small_tree).stdout)
    validate(scan, "tree-1.json")
    with pytest.raises(Exception, match="is not of type 'array'"):  # the schema can fail
        validate({**scan, "failed": None}, "tree-1.json")
    assert scan["failed"] and scan["failed"][0]["binary"] == "broken"
    for part in scan["binaries"]:  # each part is the scan document of its binary
        validate({k: v for k, v in part.items() if k != "name"}, "scan-1.json")
    validate(json.loads(run("scan", "--summary", "--format", "json", small_tree).stdout), "tree-1.json")
    functions = json.loads(run("functions", "--format", "json", small_tree, "drain").stdout)
    validate(functions, "tree-1.json")
    for part in functions["binaries"]:
        validate({k: v for k, v in part.items() if k != "name"}, "functions-1.json")
    listing = json.loads(run("list", "--format", "json", small_tree, 'module("foo").function("drain")').stdout)
    validate(listing, "tree-1.json")
    validate({k: v for k, v in listing["binaries"][0].items() if k != "name"}, "list-2.json")
    check = json.loads(run("check", "--format", "json", small_tree, "p:ev foo:combo_entry", "kprobe:ordinary").stdout)
    validate(check, "check-2.json")
    assert check["points"][0]["landings"][0]["binary"] == "foo" and check["failed"] == []
    diff = BIN / "diff" / "x86_64-rel"
    for side in ("old", "new"):
        (tmp_path / side / "kernel").mkdir(parents=True)
        shutil.copy(KERNEL, tmp_path / side / "vmlinux")
        shutil.copy(diff / side / "module.o", tmp_path / side / "kernel" / "foo.ko")
    shutil.copy(FOO, tmp_path / "old/kernel/gone.ko")
    doc = json.loads(run("diff", "--format", "json", tmp_path / "old", tmp_path / "new").stdout)
    validate(doc, "tree-diff-1.json")
    assert doc["binaries"][0]["changes"] and doc["removed"] == ["gone"]

"""What people really write: every probe syntax of stap, bpftrace, perf probe and
kprobe_events, and whole scripts (.stp, .bt), parsed as each tool parses them — each case
after the tool's own grammar (parse.cxx, tapsets.cxx; bpftrace's parser.cpp and
attachpoint_passes.cpp; perf's builtin-probe.c; the kernel's trace_kprobe.c)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import BIN
from patchscope.probes import scripts
from patchscope.probes import syntax as ps
from patchscope.probes.scripts import Build

X86 = BIN / "x86_64/corpus"


def points(text: str) -> list[ps.ProbePoint]:
    out = ps.parse_all(text)
    assert all(isinstance(p, ps.ProbePoint) for p in out), [getattr(p, "message", "") for p in out]
    return out  # type: ignore[return-value]


def error(text: str) -> ps.ProbeSyntaxError:
    (e,) = ps.parse_all(text)
    assert isinstance(e, ps.ProbeSyntaxError)
    return e


# -- SystemTap points ------------------------------------------------------------------------------


def test_stap_brace_group_and_comma_list() -> None:
    got = points('kernel.{function("a"), function("b")}.return ?, kernel.function("c")')
    assert [(p.function, p.mode, p.optional) for p in got] == [
        ("a", "return", True),
        ("b", "return", True),
        ("c", "entry", False),
    ]
    assert got[0].text == 'kernel.function("a").return?'
    nested = points('kernel.{function("a").{call,return}, statement("b@x.c:3")}')
    assert [(p.function, p.mode) for p in nested] == [("a", "call"), ("a", "return"), ("b", "statement")]


def test_stap_sufficient_optional_and_condition() -> None:
    (p,) = points('kernel.function("a")! if (pid() == 1)')
    assert p.optional and p.sufficient
    (q,) = points('kernel.function("a")?')
    assert q.optional and not q.sufficient
    assert error('kernel.function("a") when (x)').message.startswith("unexpected 'w'")


def test_stap_relative_lines_ranges_and_labels() -> None:
    (rel,) = points('kernel.statement("vfs_read@*+3")')
    assert (rel.file, str(rel.line), rel.mode) == ("*", "+3", "statement")
    (rng,) = points('kernel.statement("*@fs/read_write.c:100-120")')
    assert (rng.line.low, rng.line.high, rng.line.relative) == (100, 120, False)  # type: ignore[union-attr]
    (label,) = points('kernel.function("do_exit").label("out")')
    assert (label.mode, label.callee) == (ps.LABEL, "out")


def test_stap_kprobe_family() -> None:
    (f,) = points('kprobe.function("vfs_read").return')
    assert (f.mode, f.kind, f.by_symbol) == ("return", "kprobe", True)
    (m,) = points('kprobe.module("ext4").function("ext4_file_open")')
    assert (m.target, m.function) == ("module:ext4", "ext4_file_open")
    (a,) = points("kprobe.statement(0xffffffff81000000).absolute")
    assert (a.mode, a.address) == ("address", 0xFFFFFFFF81000000)


@pytest.mark.parametrize(
    "text",
    ["begin", "end", "error", "never", "timer.ms(100)", "timer.profile", 'procfs("x").read', "perf.hw.cpu_cycles"],
)
def test_stap_families_that_touch_no_code(text: str) -> None:
    (p,) = points(text)
    assert p.mode == ps.NO_CODE and p.kind.startswith(text.split(".")[0].split("(")[0])


def test_stap_tracepoints_markers_and_tapset_aliases() -> None:
    (tp,) = points('kernel.trace("sched_switch")')
    assert (tp.mode, tp.function) == (ps.TRACEPOINT, "sched_switch")
    (mark,) = points('process("/bin/x").mark("query__start")')
    assert mark.mode == ps.NO_CODE and "SDT" in mark.kind
    (alias,) = ps.stap_points("syscall.open")  # in a script; a lone argument could be perf's
    assert (alias.mode, alias.kind) == (ps.ALIAS, "syscall.open")
    (star,) = points('module("*").function("ext4_*[ab]*")')
    assert (star.target, star.function) == ("module:*", "ext4_*[ab]*")


# -- bpftrace points -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "mode", "target", "function", "kind"),
    [
        ("kprobe:ext4:ext4_file_open", "call", "module:ext4", "ext4_file_open", "kprobe"),
        ("fentry:ext4:ext4_file_open", "call", "module:ext4", "ext4_file_open", "fentry"),
        ("kfunc:vfs_read", "call", "kernel", "vfs_read", "fentry"),
        ("kretfunc:vfs_read", "return", "kernel", "vfs_read", "fexit"),
        ("tracepoint:syscalls:sys_enter_openat", ps.TRACEPOINT, "kernel", "sys_enter_openat", "syscalls"),
        ("t:sched:sched_switch", ps.TRACEPOINT, "kernel", "sched_switch", "sched"),
        ("rawtracepoint:sched_switch", ps.TRACEPOINT, "kernel", "sched_switch", ""),
        ("uprobe:/bin/bash:readline+4", "statement", "process:/bin/bash", "readline", "uprobe"),
        ('uprobe:"/opt/a:b/x":main', "call", "process:/opt/a:b/x", "main", "uprobe"),
        ("uprobe:/bin/x:cpp:main", "call", "process:/bin/x", "main", "uprobe"),
    ],
)
def test_bpftrace_attach_points(text: str, mode: str, target: str, function: str, kind: str) -> None:
    (p,) = points(text)
    assert (p.mode, p.target, p.function, p.kind) == (mode, target, function, kind)


@pytest.mark.parametrize(
    "text", ["BEGIN", "END", "interval:s:1", "profile:hz:99", "software:faults:1", "usdt:/bin/x:p:n"]
)
def test_bpftrace_types_that_touch_no_code(text: str) -> None:
    (p,) = points(text)
    assert p.mode == ps.NO_CODE


def test_bpftrace_several_attach_points_in_one_argument() -> None:
    got = points("kprobe:vfs_read, kprobe:vfs_write,tracepoint:sched:sched_switch")
    assert [(p.function, p.mode) for p in got] == [
        ("vfs_read", "call"),
        ("vfs_write", "call"),
        ("sched_switch", ps.TRACEPOINT),
    ]
    assert got[0].header == got[2].header  # one header: a module name is never read from a comma


def test_bpftrace_errors() -> None:
    assert error("kretprobe:do_exit+4").message == "a return probe takes no offset"
    with pytest.raises(ps.ProbeSyntaxError, match="invalid probe type: bogus"):
        ps.parse_bpftrace("bogus:x")
    assert error("fentry:vfs_read+4").message == "fentry takes no offset"
    assert error("tracepoint:sched_switch").message == "tracepoint takes CATEGORY:NAME"


# -- perf probe command lines and kprobe_events ----------------------------------------------------


def test_perf_command_lines() -> None:
    got = points("sudo perf probe -m ext4 -a 'ext4_file_open file' --add=ext4_sync_fs%return")
    assert [(p.function, p.mode, p.target, p.args) for p in got] == [
        ("ext4_file_open", "entry", "module:ext4", ("file",)),
        ("ext4_sync_fs", "return", "module:ext4", ()),
    ]
    (x,) = points("perf probe -x /lib/x86_64-linux-gnu/libc.so.6 malloc size")
    assert (x.target, x.function, x.args) == ("process:/lib/x86_64-linux-gnu/libc.so.6", "malloc", ("size",))
    (k,) = points("perf probe -k /boot/vmlinux 'do_sys_openat2:10 dfd'")
    assert (k.function, str(k.line)) == ("do_sys_openat2", "+10")
    (lazy,) = points("perf probe -a 'vfs_read;count*'")
    assert lazy.lazy == "count*"
    for query in (
        "perf probe --del probe:vfs_read",
        "perf probe -d 'probe:*'",
        "perf probe -V vfs_read",
        "perf probe -l",
    ):
        assert [p.mode for p in points(query)] == [ps.NO_CODE]
    assert error("perf probe -Q vfs_read").message == "unknown perf probe option -Q"


@pytest.mark.parametrize(
    ("text", "mode", "function", "target"),
    [
        ("p do_sys_open file=+0(%si):string", "call", "do_sys_open", "kernel"),
        ("p:myprobe do_sys_open dfd=%ax filename=%dx flags=%cx mode=+4($stack)", "call", "do_sys_open", "kernel"),
        ("r10:myretprobe do_sys_open $retval", "return", "do_sys_open", "kernel"),
        ("p:grp/ev ext4:ext4_file_open", "call", "ext4_file_open", "module:ext4"),
        ("p:ev do_exit%return", "return", "do_exit", "kernel"),
        (
            "echo 'p:myopen do_sys_open filename=+0(%si):string' > /sys/kernel/tracing/kprobe_events",
            "call",
            "do_sys_open",
            "kernel",
        ),
    ],
)
def test_kprobe_events_lines(text: str, mode: str, function: str, target: str) -> None:
    (p,) = points(text)
    assert (p.mode, p.function, p.target, p.glob) == (mode, function, target, False)


def test_kprobe_events_deletions_and_errors_name_the_token() -> None:
    (d,) = points("-:myprobe")
    assert d.mode == ps.NO_CODE and "myprobe" in d.kind
    e = error("p10:ev do_exit")
    assert (e.pos, e.message) == (1, "maxactive is only for return probes (r)")
    e = error("p:my-probe do_exit arg=%di")
    assert (e.pos, e.message) == (2, "'my-probe' is not [GROUP/]EVENT")
    e = error("p:ev do_exit+x1 dfd=%di")
    assert e.pos == 13 and "'x1'" in e.message


# -- whole SystemTap scripts ------------------------------------------------------------------------

STP = r"""#!/usr/bin/stap
# probe kernel.function("in_a_hash_comment")
// probe kernel.function("in_a_line_comment")
/* probe kernel.function("in_a_block_comment") { */
global n
probe begin { printf("probe kernel.function(\"in_a_string\") {\n") }
probe kernel.function("vfs_read") /* mid-header */ , # another
      kernel.function("vfs_write").return? {
  n++; if (@defined($count)) x = $count
  printf("%s", @choose_defined($file->f_path, $nope))
  y = $pos  // $not_read
}
%( kernel_v >= "5.10" %?
probe kernel.function("ksys_read") { }
%:
probe kernel.function("sys_read") { }
%)
%( arch == "x86_64" && CONFIG_SMP == "y" %? probe kernel.function("smp_x") { } %)
%( arch == "arm*" || kernel_vr == "6.1.0-56-*" %? probe kernel.function("either") { } %)
@define guarded %( probe kernel.function("in_a_macro") { } %)
probe kernel.function(@1).call, kernel.function(@2) { }
function f() { probe_not = 1 }
probe timer.s(5) { exit() }
"""
BUILD = Build(release="6.1.0-56-amd64", arch="x86_64", config=None, args=("do_exit", "do_fork"))


def test_stp_script_reads_what_stap_reads() -> None:
    got = scripts.stp_probe_points(STP, "t.stp", BUILD)
    assert all(isinstance(p, ps.ProbePoint) for p in got), got
    assert [(p.text, p.origin) for p in got] == [  # type: ignore[union-attr]
        ("begin", "t.stp:6"),
        ('kernel.function("vfs_read")', "t.stp:7"),
        ('kernel.function("vfs_write").return?', "t.stp:8"),
        ('kernel.function("ksys_read")', "t.stp:14"),
        ('kernel.function("smp_x")', "t.stp:18"),
        ('kernel.function("either")', "t.stp:19"),
        ('kernel.function("do_exit").call', "t.stp:21"),
        ('kernel.function("do_fork")', "t.stp:21"),
        ("timer.s(5)", "t.stp:23"),
    ]


def test_stp_guarded_variables_are_not_reads() -> None:
    got = scripts.stp_probe_points(STP, "t.stp", BUILD)
    assert got[1].args == ("pos",)  # type: ignore[union-attr]


def test_stp_preprocessor_against_the_build() -> None:
    got = scripts.stp_probe_points(STP, "t.stp", BUILD)
    smp = got[4]
    assert "CONFIG_SMP unknown" in " ".join(smp.notes)  # type: ignore[union-attr]
    known = Build(release="6.1.0-56-amd64", arch="x86_64", config={"CONFIG_SMP": "y"}, args=BUILD.args)
    assert not scripts.stp_probe_points(STP, "t.stp", known)[4].notes  # type: ignore[union-attr]
    old = Build(release="5.4.0-1-amd64", arch="aarch64", config={}, args=BUILD.args)
    texts = [p.text for p in scripts.stp_probe_points(STP, "t.stp", old)]  # type: ignore[union-attr]
    assert 'kernel.function("sys_read")' in texts and 'kernel.function("smp_x")' not in texts
    assert scripts.evaluate(' kernel_v < "6.1.10" ', BUILD) == (True, "")  # strverscmp, not strings
    assert scripts.evaluate(' kernel_v >= "6.10" ', BUILD) == (False, "")
    assert scripts.evaluate(" $# == 2 ", BUILD) == (True, "")


def test_stp_missing_script_argument_is_one_points_error() -> None:
    got = scripts.stp_probe_points(STP, "t.stp", Build(args=("do_exit",)))
    bad = [p for p in got if isinstance(p, ps.ProbeSyntaxError)]
    assert [(e.message, e.origin) for e in bad] == [("script argument @2 not given (--arg)", "t.stp:21")]
    # $N is the argument as written, a token: a name there is no string, as stap says too
    (raw,) = scripts.stp_probe_points("probe kernel.function($1) {}", "r.stp", Build(args=("do_exit",)))
    assert isinstance(raw, ps.ProbeSyntaxError) and raw.message == "expected a string or a number"


def test_stp_statements_of_a_probe() -> None:
    (probe,) = [p for p in scripts.stp_probes(STP) if "vfs_read" in p.points[0][1]]
    texts = [s.text for s in probe.statements()]
    assert texts[:3] == [
        "n++",
        "if (@defined($count)) x = $count",
        'printf("%s", @choose_defined($file->f_path, $nope))',
    ]
    assert texts[3] == "y = $pos"
    for s in probe.statements():
        assert STP[s.at : s.at + len(s.text)] == s.text


# -- whole bpftrace programs -------------------------------------------------------------------------

BT = r"""#!/usr/bin/env bpftrace
/*
 * kprobe:in_a_comment { }
 */
#include <linux/fs.h>
struct data { int a; char b[8]; };
config = { max_map_keys = 1 }

BEGIN
{
	printf("Tracing kprobe:in_a_string { ... Hit Ctrl-C to end.\n");
}

kprobe:vfs_read,
kprobe:vfs_readv, kretprobe:vfs_write
/comm == "bash" && pid != 1/
{
	if (arg2 > 1) { @big[comm] = count(); }  // } unbalanced in a comment
	$x = "}"; override(-1);
}

uprobe:/bin/bash:readline { @ = 1 }
tracepoint:syscalls:sys_enter_open* { }
kprobe:$1 { }

END { clear(@big); }
"""


def test_bt_program_reads_what_bpftrace_reads() -> None:
    got = scripts.bt_probe_points(BT, "t.bt", Build(args=("do_exit",)))
    assert all(isinstance(p, ps.ProbePoint) for p in got), got
    assert [(p.text, p.origin) for p in got] == [  # type: ignore[union-attr]
        ("BEGIN", "t.bt:9"),
        ("kprobe:vfs_read", "t.bt:14"),
        ("kprobe:vfs_readv", "t.bt:15"),
        ("kretprobe:vfs_write", "t.bt:15"),
        ("uprobe:/bin/bash:readline", "t.bt:22"),
        ("tracepoint:syscalls:sys_enter_open*", "t.bt:23"),
        ("kprobe:do_exit", "t.bt:24"),
        ("END", "t.bt:26"),
    ]


def test_bt_predicate_body_and_statements() -> None:
    probe = scripts.bt_probes(BT)[1]
    assert probe.predicate == '/comm == "bash" && pid != 1/'
    texts = [s.text for s in probe.statements()]
    assert texts == ["if (arg2 > 1)", "@big[comm] = count()", '$x = "}"', "override(-1)"]
    for s in probe.statements():
        assert BT[s.at : s.at + len(s.text)] == s.text


def test_bt_has_no_brace_expansion() -> None:
    """parser.cpp ``parse_attach_point`` ends an attach point at ``{``: ``kprobe:{a,b}`` is the
    attach point ``kprobe:`` and a block, refused as bpftrace refuses it."""
    got = scripts.bt_probe_points("kprobe:{vfs_read,vfs_write} { }")
    assert isinstance(got[0], ps.ProbeSyntaxError) and got[0].message == "expected a function name"


# -- check, end to end on the fixture ---------------------------------------------------------------


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "check", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_check_a_bt_file_with_non_code_probes(tmp_path: Path) -> None:
    bt = tmp_path / "t.bt"
    bt.write_text('BEGIN { printf("hi\\n"); }\nuprobe:x:tree_sum { @n = count(); }\ninterval:s:1 { exit(); }\n')
    r = run(X86, "--format=json", bt)
    doc = json.loads(r.stdout)
    assert [p["verdict"] for p in doc["points"]] == ["no-code", "safe", "no-code"]
    assert r.returncode == 0 and doc["verdict"] == "safe"
    only = tmp_path / "begin.bt"
    only.write_text("BEGIN { exit(); }\n")
    r = run(X86, "--format=json", only)
    assert r.returncode == 0 and json.loads(r.stdout)["verdict"] == "no-code"


def test_check_stap_sufficiency(tmp_path: Path) -> None:
    stp = tmp_path / "t.stp"
    stp.write_text('probe process("x").function("tree_sum")!, process("x").function("no_such_fn") { }\n')
    doc = json.loads(run(X86, "--format=json", stp).stdout)
    assert [p["verdict"] for p in doc["points"]] == ["safe", "no-code"]
    assert "not placed" in doc["points"][1]["notes"][0]


def test_check_script_arguments(tmp_path: Path) -> None:
    stp = tmp_path / "t.stp"
    stp.write_text('probe process("x").function(@1) { }\n')
    ok = run(X86, "--format=json", stp, "--arg", "tree_sum")
    assert ok.returncode == 0, ok.stdout
    missing = json.loads(run(X86, "--format=json", stp).stdout)
    assert "script argument @1 not given" in missing["points"][0]["errors"][0]


# -- on Debian's 6.1.0-56 vmlinux, against what the booted kernel listed ---------------------------

BOOTED = Path(__file__).parent / "data/debian-6.1.0-56-amd64"


@pytest.fixture(scope="module")
def kcx(vmlinux: Path):  # type: ignore[no-untyped-def]
    import patchscope
    from patchscope.index.context import Context

    return Context(patchscope.open(vmlinux))


def _resolve(kcx, text: str):  # type: ignore[no-untyped-def]
    from patchscope.probes.resolve import resolve

    (p,) = ps.parse_all(text)
    assert isinstance(p, ps.ProbePoint)
    return resolve(kcx, p)


def test_bpftrace_wildcard_is_the_booted_kernels_traceable_set(kcx) -> None:  # type: ignore[no-untyped-def]
    """bpftrace expands ``kprobe:vfs_*`` over available_filter_functions less the kprobe
    blacklist: the booted kernel's own lists give the expected names."""
    import fnmatch

    listed = set((BOOTED / "available_filter_functions").read_text().split())
    blacklisted = {line.split()[-1] for line in (BOOTED / "kprobes_blacklist").read_text().splitlines() if line}
    for pattern in ("vfs_*", "*_sys_open*", "tcp_*_ack*"):
        want = {n for n in listed - blacklisted if fnmatch.fnmatchcase(n, pattern) and ".part." not in n}
        got = {kcx.instance_symbol(lnd.instance) for lnd in _resolve(kcx, f"kprobe:{pattern}").landings}
        assert got == want, (pattern, got ^ want)


def test_tracepoints_and_assembly_entries_resolve(kcx) -> None:  # type: ignore[no-untyped-def]
    for text in ("tracepoint:sched:sched_switch", "tracepoint:syscalls:sys_enter_openat", 'kernel.trace("sched_*")'):
        r = _resolve(kcx, text)
        assert r.events and not r.errors, text
    assert _resolve(kcx, "tracepoint:sched:no_such_tp").errors
    r = _resolve(kcx, "p:ev entry_SYSCALL_64")
    entry = kcx.symbol_addresses(["entry_SYSCALL_64"])["entry_SYSCALL_64"]
    assert [lnd.address for lnd in r.landings] == [entry]


def test_unresolved_names_say_why(kcx) -> None:  # type: ignore[no-untyped-def]
    assert "only as the clone preallocate_pmds.constprop.0" in _resolve(kcx, "kprobe:preallocate_pmds").errors[0]
    assert "is inlined wherever it is called" in _resolve(kcx, "kprobe:blk_account_io_start").errors[0]
    assert "closest: vfs_read" in _resolve(kcx, "kprobe:vfs_raed").errors[0]
    assert "user-space point" in _resolve(kcx, "uprobe:/bin/bash:readline").errors[0]
    assert "modules only" in _resolve(kcx, 'module("*").function("ext4_file_open")').errors[0]


def test_stap_skips_init_text(kcx) -> None:  # type: ignore[no-untyped-def]
    r = _resolve(kcx, 'kernel.function("start_kernel")')
    assert not r.landings and any("init/exit text" in n for n in r.notes)


def test_systemtap_v_is_the_version_modelled() -> None:
    from patchscope.probes import scripts

    text = 'probe %( systemtap_v >= "2.6" %? kernel.function("new") %: kernel.function("old") %) { }'
    (p,) = scripts.stp_probe_points(text)
    assert p.function == "new" and not p.notes

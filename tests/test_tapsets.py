"""SystemTap tapset aliases expanded as stap 4.8 expands them (probes/tapsets.py), on a tiny
library of our own (tests/data/tapsets); one test reads the installed library, when there is
one, and one judges an alias on the Debian vmlinux."""

from __future__ import annotations

from pathlib import Path

import pytest

from patchscope.probes import scripts, tapsets
from patchscope.probes import syntax as ps

ROOT = Path(__file__).resolve().parents[1]
LIBRARY = ROOT / "tests/data/tapsets"
X86 = scripts.Build("6.1.0-56-amd64", "x86_64", None)


@pytest.fixture(autouse=True)
def _library(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATCHSCOPE_TAPSETS", str(LIBRARY))


def expand(text: str, present: set[str], build: scripts.Build = X86) -> tapsets.Expansion:
    """``text`` expanded in a kernel whose functions are ``present``."""

    def place(p: ps.ProbePoint) -> str | None:
        if p.mode in (ps.NO_CODE, ps.TRACEPOINT) or p.function in present:
            return None
        return f"{p.text}: no such function"

    return tapsets.expand(tapsets.library(build), ps.parse(text), place)


def placed(e: tapsets.Expansion) -> list[str]:
    return [p.text for p in e.placed]


def test_a_sufficient_target_that_places_ends_the_list() -> None:
    e = expand("syscall.open", {"sys_open", "__x64_sys_open"})
    assert placed(e) == ['kernel.function("sys_open").call'] and not e.errors


def test_a_failing_required_target_under_an_optional_one_is_tolerated() -> None:
    """dw_syscall.open is ``!`` (optional): its required __syscall.open failing is no error,
    and the kprobe alternative, with the macro put in and its braces expanded, is placed."""
    e = expand("syscall.open", {"__x64_sys_open", "__ia32_sys_open"})
    assert placed(e) == ['kprobe.function("__ia32_sys_open")', 'kprobe.function("__x64_sys_open")']
    assert not e.errors
    assert [".".join(a.name) for a in e.aliases][:3] == ["syscall.open", "dw_syscall.open", "__syscall.compat_open"]


def test_braces_in_a_kprobe_name_are_alternatives_of_one_target() -> None:
    e = expand("syscall.open", {"__x64_sys_open"})
    assert placed(e) == ['kprobe.function("__x64_sys_open")'] and not e.errors


def test_the_macro_is_the_architecture_s() -> None:
    arm = scripts.Build("6.1.0-56-arm64", "arm64", None)
    e = expand("syscall.open", {"__arm64_sys_open"}, arm)
    assert placed(e) == ['kprobe.function("__arm64_sys_open")']


def test_the_architecture_directory_is_the_build_s() -> None:
    assert placed(expand("arch.entry", {"entry_SYSCALL_64"})) == ['kprobe.function("entry_SYSCALL_64")']
    arm = scripts.Build("6.1.0-56-arm64", "arm64", None)
    assert placed(expand("arch.entry", {"el0_svc"}, arm)) == ['kprobe.function("el0_svc")']


def test_a_required_target_that_places_nothing_stops_stap() -> None:
    e = expand("syscall.broken", {"close_fd"})
    assert not e.placed and "no_such_function" in e.errors[0]


def test_an_optional_use_tolerates_everything_below_it() -> None:
    e = expand("syscall.broken ?", set())
    assert not e.placed and not e.errors


def test_required_and_optional_targets_of_one_alias() -> None:
    both = expand("syscall.close", {"close_fd", "__x64_sys_close"})
    assert placed(both) == ['kernel.function("close_fd").call', 'kprobe.function("__x64_sys_close")']
    assert placed(expand("syscall.close", {"close_fd"})) == ['kernel.function("close_fd").call']
    assert expand("syscall.close", {"__x64_sys_close"}).errors  # close_fd is required


def test_a_wildcard_matches_alias_names_component_by_component() -> None:
    """``syscall.*`` is every two-component syscall alias (not ``syscall.open.return``); a
    match that fails is left out, as stap ignores errors while expanding wildcards."""
    e = expand("syscall.*", {"sys_open", "close_fd"})
    assert placed(e) == ['kernel.function("close_fd").call', 'kernel.function("sys_open").call']
    returns = expand("syscall.*.return", {"sys_open", "close_fd"})
    assert placed(returns) == ['kernel.function("close_fd").return', 'kernel.function("sys_open").return']


def test_a_wildcard_that_matches_nothing_is_an_error_unless_optional() -> None:
    assert expand("nosuch.*", set()).errors
    assert not expand("syscall.zz*", set()).placed


def test_a_suffix_goes_after_each_target() -> None:
    """``vfs.read.return``: no alias of that name, so the alias ``vfs.read`` with the suffix
    (elaborate.cxx try_suffix_expansion)."""
    e = expand("vfs.read.return", {"vfs_read"})
    assert placed(e) == ['kernel.function("vfs_read").return']


def test_the_preprocessor_picks_the_definition() -> None:
    assert placed(expand("vfs.read", {"vfs_read", "old_vfs_read"})) == ['kernel.function("vfs_read")']
    old = scripts.Build("4.19.0-1-amd64", "x86_64", None)
    assert placed(expand("vfs.read", {"vfs_read", "old_vfs_read"}, old)) == ['kernel.function("old_vfs_read")']


def test_a_brace_group_in_a_target() -> None:
    e = expand("vfs.write", {"vfs_writev"})
    assert placed(e) == ['kernel.function("vfs_writev")'] and not e.errors


def test_an_alias_loop_is_refused() -> None:
    e = expand("loop.a", set())
    assert "recursive loop" in e.errors[0]


def test_an_alias_of_a_non_code_probe() -> None:
    e = expand("oneshot", set())
    assert [p.mode for p in e.placed] == [ps.NO_CODE]


def test_an_unknown_alias_is_an_error() -> None:
    assert "mismatch" in expand("syscall.nosuch", set()).errors[0]
    assert "truncated" in expand("syscall", set()).errors[0]


def test_no_library_is_one_line(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATCHSCOPE_TAPSETS", str(tmp_path))
    with pytest.raises(tapsets.NoLibrary, match="not installed") as e:
        tapsets.library(X86)
    assert "\n" not in str(e.value)


def test_the_library_is_read_once() -> None:
    tapsets.library(X86)
    before = tapsets._load.cache_info().hits
    tapsets.library(X86)
    assert tapsets._load.cache_info().hits == before + 1


def test_reading_a_script_does_not_read_the_library() -> None:
    tapsets._load.cache_clear()
    scripts.stp_probe_points("probe syscall.open, vfs.read { }")
    assert tapsets._load.cache_info().currsize == 0


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("__{ia32,x64}_sys_open", ["__ia32_sys_open", "__x64_sys_open"]),
        ("a{b,c{d,e}}f", ["abf", "acdf", "acef"]),
        ("{a,b}{c,d}", ["ac", "ad", "bc", "bd"]),
        ("plain", ["plain"]),
        ("open{brace", ["open{brace"]),
    ],
)
def test_csh_braces(pattern: str, names: list[str]) -> None:
    assert tapsets.braces(pattern) == names


@pytest.mark.parametrize(
    "text",
    [
        'kprobe.function("f").call',
        'kprobe.function("f").return.maxactive(4)',
        'kprobe.module("ext4").function("f").call',
        "kprobe.statement(0xffffffff81000000).absolute",
    ],
)
def test_kprobe_suffixes_stap_accepts(text: str) -> None:
    ps.parse(text)


@pytest.mark.parametrize(
    "text",
    [
        'kprobe.function("f").exported',
        'kprobe.function("f").inline',
        'kprobe.function("f").call.return',
        'kprobe.function("f").maxactive(4)',
        "kprobe.statement(0xffffffff81000000)",
        'kprobe.module("ext4").statement(0x10).absolute',
    ],
)
def test_kprobe_suffixes_stap_refuses(text: str) -> None:
    """What stap 4.8's kprobe builder answers with "invalid suffix", "probe point truncated"
    or "mismatch" (checked with ``stap -p2``)."""
    with pytest.raises(ps.ProbeSyntaxError):
        ps.parse(text)


# -- SystemTap's own library ---------------------------------------------------------------


def _installed() -> Path:
    path = tapsets.DEFAULT_DIR
    if not (path / "linux/sysc_open.stp").is_file():
        pytest.skip("SystemTap's tapset library is not installed (systemtap-common)")
    return path


def test_the_installed_library_expands_syscall_open_on_6_1(monkeypatch: pytest.MonkeyPatch) -> None:
    """On 6.1 x86_64 there is no ``sys_open`` (the syscall wrappers are ``__x64_sys_open``
    …): the DWARF alternative places nothing and the kprobe one places the wrappers, as
    ``stap -p2`` derives them for the Debian 6.1.0-56 kernel."""
    monkeypatch.setenv("PATCHSCOPE_TAPSETS", str(_installed()))
    names = ROOT / "tests/data/debian-6.1.0-56-amd64/available_filter_functions"
    present = {line.split()[0] for line in names.read_text().splitlines() if line.strip()}
    e = expand("syscall.open", present)
    assert placed(e) == [
        'kprobe.function("__ia32_compat_sys_open")',
        'kprobe.function("__x64_compat_sys_open")',
        'kprobe.function("__ia32_sys_open")',
        'kprobe.function("__x64_sys_open")',
    ]
    assert not e.errors


def test_a_definition_on_an_unknown_condition_is_tolerated_and_said() -> None:
    e = expand("vfs.open", {"vfs_open"})
    assert placed(e) == ['kernel.function("vfs_open")'] and not e.errors
    assert "CONFIG_OLD_VFS unknown" in e.notes[0]
    known = scripts.Build("6.1.0-56-amd64", "x86_64", {})
    e = expand("vfs.open", {"vfs_open"}, known)
    assert placed(e) == ['kernel.function("vfs_open")'] and not e.notes


def test_a_netfilter_hook_places_no_code() -> None:
    e = expand("netfilter.ipv4.pre_routing", set())
    assert [p.mode for p in e.placed] == [ps.NO_CODE] and not e.errors

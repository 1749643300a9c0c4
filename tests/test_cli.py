"""The command line: exit codes, JSON against its schema, and one clean line for bad input."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from conftest import BIN, ROOT

SCHEMA = json.loads((ROOT / "docs/schema/functions-1.json").read_text())
X86 = BIN / "x86_64/corpus"


def run(*args: str | Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        **kwargs,
    )


def one_error_line(r: subprocess.CompletedProcess[str], words: str) -> None:
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("patchscope: error: ") and words in lines[0], r.stderr


def test_functions_table() -> None:
    r = run("functions", X86, "hot_sum")
    assert r.returncode == 0, r.stderr
    assert "hot_sum.cold 0x1080-0x1095" in r.stdout
    assert "not-inlined" in r.stdout


def test_functions_verbose_lists_sites() -> None:
    r = run("functions", X86, "buf_process", "-v")
    assert r.returncode == 0
    assert r.stdout.count("in part_entry (src/part.c:") == 3


@pytest.mark.parametrize("variant", ["x86_64", "aarch64", "ppc64le", "riscv64", "x86_64-nodebug"])
def test_json_validates(variant: str) -> None:
    r = run("functions", BIN / variant / "corpus", "--format", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    jsonschema.validate(doc, SCHEMA)
    assert doc["functions"]


def test_output_file(tmp_path: Path) -> None:
    out = tmp_path / "inv.json"
    r = run("functions", X86, "--format", "json", "-o", out)
    assert r.returncode == 0 and r.stdout == ""
    jsonschema.validate(json.loads(out.read_text()), SCHEMA)


def test_no_match_exits_1() -> None:
    r = run("functions", X86, "no_such_function_*")
    assert r.returncode == 1
    assert "no source function matches" in r.stderr


def test_nodebug_says_so() -> None:
    r = run("functions", BIN / "x86_64-nodebug/corpus", "compute_level*")
    assert r.returncode == 0
    assert "no DWARF debug info" in r.stderr
    assert "compute_level.isra.0" in r.stdout
    assert "symbol-only" in r.stdout


@pytest.mark.parametrize(
    "args",
    [
        ("scan",),
        ("function", "main"),
        ("check", 'process.function("main")'),
        ("stats",),
        ("diff", BIN / "x86_64-nodebug/corpus"),
    ],
    ids=lambda a: a[0],
)
def test_nodebug_every_command_answers(args: tuple[str | Path, ...]) -> None:
    """No line table, no DWARF: the rules that read them find nothing, and say nothing wrong."""
    command, *rest = args
    r = run(command, BIN / "x86_64-nodebug/corpus", *rest)
    assert r.returncode in (0, 1, 2) and "internal error" not in r.stderr, r.stderr
    assert r.stdout.strip()


def bad_inputs(tmp: Path) -> dict[str, tuple[Path, str]]:
    data = X86.read_bytes()
    cases = {
        "missing": (tmp / "nope", "no such file"),
        "directory": (tmp, "is a directory"),
        "empty": (tmp / "empty", "not an ELF file"),
        "text": (tmp / "text", "not an ELF file"),
        "truncated-header": (tmp / "trunc40", "malformed ELF"),
        "truncated-half": (tmp / "half", ""),
    }
    (tmp / "empty").write_bytes(b"")
    (tmp / "text").write_text("#!/bin/sh\necho hi\n")
    (tmp / "trunc40").write_bytes(data[:40])
    (tmp / "half").write_bytes(data[: len(data) // 2])
    return cases


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text", "truncated-header", "truncated-half"])
def test_bad_input_one_line(case: str, tmp_path: Path) -> None:
    path, words = bad_inputs(tmp_path)[case]
    before = set(tmp_path.rglob("*"))
    r = run("functions", path)
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("patchscope: error: "), r.stderr
    assert words in lines[0]
    assert "Traceback" not in r.stderr and "panicked" not in r.stderr
    assert set(tmp_path.rglob("*")) == before  # nothing written beside the input


def test_corrupt_dwarf_is_reported_and_rest_indexed(tmp_path: Path) -> None:
    """A unit whose DIEs are garbage is named on stderr; the other units are still indexed."""
    from elftools.elf.elffile import ELFFile

    data = bytearray(X86.read_bytes())
    with X86.open("rb") as f:
        info = ELFFile(f).get_section_by_name(".debug_info")
        off, size = info["sh_offset"], info["sh_size"]
    # Skip the first unit's header (12 bytes in DWARF 5), then smash its first DIEs.
    data[off + 12 : off + 12 + 64] = b"\xff" * 64
    bad = tmp_path / "corrupt"
    bad.write_bytes(bytes(data))
    assert size > 200
    r = run("functions", bad, "hot_sum")
    assert "could not be read whole" in r.stderr
    assert r.returncode in (0, 1)
    r2 = run("functions", bad, "*", "--format", "json")
    assert len(json.loads(r2.stdout)["functions"]) > 40


def with_byte_ff(tmp: Path) -> Path:
    """A copy of the corpus whose function ``hot_sum`` (its DWARF name and its symbol) and source
    file ``cold.c`` have a byte that is not UTF-8: a binary's names are bytes, not text."""
    from elftools.elf.elffile import ELFFile

    data = bytearray(X86.read_bytes())
    with X86.open("rb") as f:
        elf = ELFFile(f)
        for section, name, byte in (
            (".debug_str", b"hot_sum", 3),
            (".strtab", b"hot_sum", 3),
            (".debug_line_str", b"src/cold.c", 7),
        ):
            s = elf.get_section_by_name(section)
            at = (b"\0" + s.data()).index(b"\0" + name + b"\0")  # the whole string, maybe at 0
            data[s["sh_offset"] + at + byte] = 0xFF
    path = tmp / "corpus"
    path.write_bytes(bytes(data))
    return path


@pytest.mark.parametrize("encoding", ["", "utf-8:strict"], ids=["locale", "strict"])
def test_paths_given_not_utf8_are_written_back(encoding: str, tmp_path: Path) -> None:
    """A path named by bytes that are not UTF-8 is never fatal, on standard output (whatever
    its error handler) or in an ``-o`` file."""
    binary = tmp_path / os.fsdecode(b"corpus\xff")
    binary.write_bytes(X86.read_bytes())
    out = tmp_path / os.fsdecode(b"out\xff.txt")
    env = {**os.environ, "PYTHONIOENCODING": encoding}
    r = subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", "scan", binary, "--summary"], capture_output=True, env=env
    )
    assert r.returncode == 0 and b" (x86_64): 67 source functions" in r.stdout, r.stderr
    assert run("scan", binary, "--summary", "-o", out, env=env).returncode == 0
    assert b" (x86_64): 67 source functions" in out.read_bytes()


@pytest.mark.parametrize(
    "argv",
    [["scan"], ["functions", "hot*"], ["list", 'process("x").function("hot*")'], ["function", "hot*"]],
    ids=lambda a: a[0],
)
def test_names_not_utf8_are_shown_escaped(argv: list[str], tmp_path: Path) -> None:
    r = run(argv[0], with_byte_ff(tmp_path), *argv[1:], "--no-cache")
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert "hot\\xffsum" in r.stdout and "src/col\\xff.c" in r.stdout


def test_failed_output_keeps_the_old_file(tmp_path: Path) -> None:
    """A write that fails half-way (here a file size limit) leaves the old file whole."""
    out = tmp_path / "scan.json"
    out.write_text("the previous report\n")

    def small_files() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    r = run("scan", X86, "--format", "json", "-o", out, "--no-cache", preexec_fn=small_files)
    assert r.returncode == 2
    one_error_line(r, "File too large")
    assert out.read_text() == "the previous report\n"
    assert [p.name for p in tmp_path.iterdir()] == ["scan.json"]


def test_output_keeps_its_mode(tmp_path: Path) -> None:
    out = tmp_path / "scan.txt"
    out.write_text("old")
    out.chmod(0o640)
    assert run("scan", X86, "-o", out).returncode == 0
    assert out.stat().st_mode & 0o777 == 0o640 and out.read_text().startswith(f"{X86} (x86_64)")


@pytest.mark.parametrize("given", ["binary", "symlink", "debug-file", "probe-file"])
def test_output_never_replaces_an_input(given: str, tmp_path: Path) -> None:
    binary = tmp_path / "corpus"
    binary.write_bytes(X86.read_bytes())
    probes = tmp_path / "points.txt"
    probes.write_text('process("x").function("hot_sum")\n')
    (tmp_path / "link").symlink_to(binary)
    argv, target = {
        "binary": (["scan", binary], binary),
        "symlink": (["scan", binary], tmp_path / "link"),
        "debug-file": (["scan", X86, "--debug-file", binary], binary),
        "probe-file": (["check", binary, "--probes", probes], probes),
    }[given]
    before = target.read_bytes()
    r = run(*argv, "-o", target)
    assert r.returncode == 2
    one_error_line(r, "refusing to overwrite")
    assert target.read_bytes() == before


def test_full_standard_output_is_one_line() -> None:
    with open("/dev/full", "w") as full:
        argv = [sys.executable, "-m", "patchscope.cli.main", "scan", str(X86)]
        r = subprocess.run(argv, stdout=full, stderr=subprocess.PIPE, text=True, timeout=120)
    assert r.returncode == 2
    one_error_line(r, "standard output: No space left on device")


@pytest.mark.parametrize("form", ["json", "table"])
def test_closed_pipe_keeps_the_verdict(form: str) -> None:
    """``check … | head -c1``: the reader left, the verdict (2 here) is still the exit status."""
    points = ['process("x").function("*")'] * 40  # more output than a pipe holds
    p = subprocess.Popen(
        [sys.executable, "-m", "patchscope.cli.main", "check", str(X86), *points, "--format", form],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert p.stdout is not None and p.stderr is not None
    assert p.stdout.read(1)
    p.stdout.close()
    assert p.wait(timeout=120) == 2
    assert p.stderr.read() == b""


MIPS = BIN / "elf-arches/mips/corpus"


@pytest.mark.parametrize("argv", [["scan"], ["function", "main"], ["check", 'process("x").function("main")']])
def test_undecodable_machine_code_is_one_line(argv: list[str]) -> None:
    r = run(argv[0], MIPS, *argv[1:])
    assert r.returncode == 2
    one_error_line(r, f"{argv[0]}: machine code of architecture mips cannot be decoded")


def test_undecodable_machine_code_lists_from_dwarf() -> None:
    assert run("functions", MIPS).returncode == 0


def test_arm_thumb_code_is_decoded() -> None:
    """elf-arches/arm: Debian armhf user space is Thumb-2 (`$t` mapping symbols); main's
    `pop {…, pc}` is found as its return."""
    r = run("function", BIN / "elf-arches/arm/corpus", "main")
    assert r.returncode == 0
    assert "returns: 0x6aa" in r.stdout


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
@pytest.mark.parametrize("moment", ["core-scan", "cache-write"])
def test_signal_ends_a_run_at_once_and_cleanly(sig: signal.Signals, moment: str, vmlinux: Path, tmp_path: Path) -> None:
    """During the core's scan (GIL released) and during the cache's background writes: the
    exit is at once, with 128 + the signal, one line, no ``.tmp-*`` entry and no ``-o`` file.
    Started as the console script starts it: a signal sent while a loaded machine is still
    importing is held until the run can end cleanly."""
    cache, out = tmp_path / "cache", tmp_path / "out" / "scan.txt"
    out.parent.mkdir()
    program = "import patchscope.cli.program as p; p.run()"
    p = subprocess.Popen(
        [sys.executable, "-c", program, "scan", str(vmlinux), "-o", str(out)],
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PATCHSCOPE_CACHE": str(cache)},
    )
    start = time.monotonic()

    def ready() -> bool:
        if moment == "cache-write":
            return any(cache.rglob(".tmp-*"))
        return time.monotonic() - start > 1.0  # imports done, the core reading the DWARF

    while not ready() and p.poll() is None and time.monotonic() - start < 60:
        time.sleep(0.02)
    assert p.poll() is None, "the scan ended before the signal"
    sent = time.monotonic()
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert time.monotonic() - sent < 1.0
    assert p.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    assert err == f"patchscope: error: {'interrupted' if sig == signal.SIGINT else 'terminated'}\n"
    assert not list(cache.rglob(".tmp-*")) and not list(out.parent.iterdir())


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_while_the_program_starts_is_held_not_a_traceback(sig: signal.Signals) -> None:
    """A signal that lands while the program's modules are still being imported (here: sent
    right after the console script's module, before ``interrupt.install``) waits for the run to
    take it: 128 + the signal, one line, no KeyboardInterrupt traceback from an import."""
    code = (
        "import os, signal, sys\n"
        "import patchscope.cli.program as program\n"
        f"os.kill(os.getpid(), {int(sig)})\n"
        "import patchscope.cli.main, patchscope.cli.common  # more imports after the signal\n"
        "sys.argv = ['patchscope', 'scan', sys.argv[1]]\n"
        "program.run()\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(X86)], capture_output=True, text=True, timeout=60)
    assert r.returncode == {signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    assert r.stderr == f"patchscope: error: {'interrupted' if sig == signal.SIGINT else 'terminated'}\n"


def test_console_script_starts_at_the_program_module() -> None:
    """The entry point is the module that holds the signals first (pyproject's console script)."""
    assert 'patchscope = "patchscope.cli.program:run"' in (ROOT / "pyproject.toml").read_text()


def test_binary_truncated_during_a_run(tmp_path: Path) -> None:
    """Another process truncates the binary after it was opened: a mapped file would kill the
    reader with SIGBUS; a file of this size is read whole and the queries go on."""
    binary = tmp_path / "corpus"
    binary.write_bytes(X86.read_bytes())
    code = (
        "import os, sys, patchscope\n"
        "b = patchscope.open(sys.argv[1], use_cache=False)\n"
        "os.truncate(sys.argv[1], 0)\n"
        "print(b.machine.events.num_rows > 0)\n"
    )
    r = subprocess.run([sys.executable, "-c", code, str(binary)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and r.stdout == "True\n", r.stderr


def test_check_cpu_is_arm64_only_and_named() -> None:
    """``check --cpu``: one clear line for a binary whose boot-time patching is not modelled per
    CPU, and for a CPU that is neither a known QEMU model nor cpucaps."""
    r = run("check", X86, "kprobe:hot_sum", "--cpu", "max")
    assert r.returncode == 2
    one_error_line(r, "--cpu applies to arm64 kernels")
    r = run("check", BIN / "aarch64/corpus", "kprobe:hot_sum", "--cpu", "cortex-a99")
    assert r.returncode == 2
    one_error_line(r, "unknown arm64 CPU 'cortex-a99'")

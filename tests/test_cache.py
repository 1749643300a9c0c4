"""The on-disk cache cannot lie: damaged, partial, missing, stale, unwritable or abandoned
entries are rebuilt or skipped with at most one warning line, never a crash or a wrong answer."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from conftest import BIN

X86 = BIN / "x86_64/corpus"


def run(*args: str | Path, cache: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "patchscope.cli.main", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PATCHSCOPE_CACHE": str(cache), **env},
    )


@pytest.fixture
def setup(tmp_path: Path) -> tuple[Path, Path, str]:
    """A copy of a fixture, a cache holding its entry and derived products, its scan's output."""
    binary, cache = tmp_path / "corpus", tmp_path / "cache"
    shutil.copy2(X86, binary)
    first = run("scan", binary, cache=cache)
    assert first.returncode == 0 and first.stderr == ""
    return binary, cache, first.stdout


def entry(cache: Path) -> Path:
    (d,) = [d for d in cache.iterdir() if not d.name.startswith(".")]
    return d


def warm(binary: Path, cache: Path, expected: str) -> str:
    """Runs scan twice: the first answers right, with at most one warning line (returned);
    the second from a whole cache again, silently."""
    r = run("scan", binary, cache=cache)
    assert r.returncode == 0, r.stderr
    assert r.stdout == expected
    assert len(r.stderr.splitlines()) <= 1
    again = run("scan", binary, cache=cache)
    assert (again.returncode, again.stdout, again.stderr) == (0, expected, "")
    return r.stderr


def test_flipped_byte_in_derived_product(setup: tuple[Path, Path, str]) -> None:
    binary, cache, out = setup
    f = entry(cache) / "derived/findings/bands.arrow"
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= 0xFF
    f.write_bytes(data)
    assert "derived/findings/bands.arrow: checksum" in warm(binary, cache, out)


@pytest.mark.parametrize("damage", ["missing", "emptied", "flipped"])
def test_damaged_table(setup: tuple[Path, Path, str], damage: str) -> None:
    binary, cache, out = setup
    f = entry(cache) / "units.arrow"
    if damage == "missing":
        f.unlink()
    elif damage == "emptied":
        f.write_bytes(b"")
    else:
        data = bytearray(f.read_bytes())
        data[-100] ^= 1
        f.write_bytes(data)
    reason = {"missing": "missing", "emptied": "length", "flipped": "checksum"}[damage]
    assert warm(binary, cache, out) == (
        f"patchscope: warning: cache entry for corpus damaged (units.arrow: {reason}); re-indexing\n"
    )


def test_in_place_edit_with_same_size_and_mtime(setup: tuple[Path, Path, str]) -> None:
    """A symbol renamed in place: same size, mtime put back; the cache must not answer."""
    binary, cache, out = setup
    st = binary.stat()
    data = binary.read_bytes()
    # A function's name in the string tables, renamed to another of the same length.
    names = (b"\x00" + n.encode() + b"\x00" for n in out.split() if n.isidentifier() and len(n) > 6)
    old = next(n for n in names if n in data)
    new = old[:2] + (b"Q" if old[2:3] != b"Q" else b"R") + old[3:]
    binary.write_bytes(data.replace(old, new))
    os.utime(binary, ns=(st.st_atime_ns, st.st_mtime_ns))
    r = run("scan", binary, cache=cache)
    assert r.returncode == 0 and r.stderr == ""
    assert new[1:-1].decode() in r.stdout or r.stdout != out
    assert len([d for d in cache.iterdir() if not d.name.startswith(".")]) == 2


def test_touch_does_not_reindex(setup: tuple[Path, Path, str]) -> None:
    binary, cache, out = setup
    before = {d.name for d in cache.iterdir()}
    binary.touch()
    assert warm(binary, cache, out) == ""
    assert {d.name for d in cache.iterdir()} == before


def test_unwritable_cache(tmp_path: Path) -> None:
    """A file where the cache folder should be (tests run as root: chmod would not stop them)."""
    cache = tmp_path / "cache"
    cache.write_text("not a folder")
    r = run("scan", X86, cache=cache)
    plain = run("scan", X86, "--no-cache", cache=cache)
    assert r.returncode == 0 and r.stdout == plain.stdout
    assert "Traceback" not in r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith("patchscope: warning: cache at ") and line.endswith("; not saved")


def test_dead_writers_temporaries_swept(setup: tuple[Path, Path, str], tmp_path: Path) -> None:
    _, cache, _ = setup
    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = cache / f".tmp-{dead.pid}-abc"
    (stale / "x").mkdir(parents=True)
    live = cache / f".tmp-{os.getpid()}-abc"
    live.mkdir()
    other = tmp_path / "other"
    shutil.copy2(X86, other)
    with other.open("r+b") as f:  # another content: a new entry is written, and sweeps
        f.seek(0, 2)
        f.write(b"\0")
    assert run("scan", other, cache=cache).returncode == 0
    assert not stale.exists() and live.exists()


def test_lru_eviction_under_a_tiny_cap(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    copies = []
    for i in range(3):
        p = tmp_path / f"corpus{i}"
        p.write_bytes(X86.read_bytes() + bytes([i]))  # three contents, three entries
        copies.append(p)
    env: dict[str, Any] = {}
    for p in copies[:2]:
        assert run("functions", p, cache=cache, **env).returncode == 0
        time.sleep(0.05)
    size = sum(f.stat().st_size for f in entry_of(cache, copies[0]).rglob("*") if f.is_file())
    # corpus0 used again: corpus1 is now the least recently used.
    assert run("functions", copies[0], cache=cache).returncode == 0
    time.sleep(0.05)
    r = run("functions", copies[2], cache=cache, PATCHSCOPE_CACHE_MAX=str(int(size * 2.5)))
    assert r.returncode == 0 and r.stderr == ""
    listed = run("cache", "--list", cache=cache).stdout
    assert str(copies[0]) in listed and str(copies[2]) in listed and str(copies[1]) not in listed


def entry_of(cache: Path, binary: Path) -> Path:
    entries = [d for d in cache.iterdir() if not d.name.startswith(".")]  # .contents, .tmp-*
    (d,) = [d for d in entries if str(binary) in (d / "manifest.json").read_text()]
    return d


def test_cache_list_and_clear(setup: tuple[Path, Path, str]) -> None:
    binary, cache, _ = setup
    (cache / f".tmp-{os.getpid()}-x").mkdir()
    listed = run("cache", "--list", cache=cache)
    assert listed.returncode == 0 and str(binary.resolve()) in listed.stdout
    assert listed.stdout.splitlines()[-1].startswith("1 entries, ")
    cleared = run("cache", "--clear", cache=cache)
    assert cleared.returncode == 0 and cleared.stdout.startswith("removed ")
    assert list(cache.iterdir()) == []


def test_killed_writers_temporary_swept_by_the_next_write(vmlinux: Path, tmp_path: Path) -> None:
    """kill -9 during the cache write of a vmlinux leaves its ``.tmp-<pid>-`` folder (no
    handler runs); the next run that writes the cache removes it."""
    cache = tmp_path / "cache"
    p = subprocess.Popen(
        [sys.executable, "-m", "patchscope.cli.main", "functions", str(vmlinux)],
        stdout=subprocess.DEVNULL,
        env={**os.environ, "PATCHSCOPE_CACHE": str(cache)},
    )
    start = time.monotonic()
    while not any(cache.glob(".tmp-*")) and p.poll() is None and time.monotonic() - start < 60:
        time.sleep(0.02)
    p.kill()
    p.wait()
    assert [t.name.startswith(f".tmp-{p.pid}-") for t in cache.glob(".tmp-*")] == [True]
    assert run("functions", X86, cache=cache).returncode == 0
    assert not list(cache.rglob(".tmp-*"))


def test_content_is_remembered_by_stat(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A warm open does not re-read the binary to know its content: the CRC is kept by the
    files' stat, which any write (and any touch) changes through the ctime."""
    import patchscope
    from patchscope.index import cache

    monkeypatch.setenv("PATCHSCOPE_CACHE", str(tmp_path / "cache"))
    binary = tmp_path / "corpus"
    shutil.copy2(X86, binary)
    core = patchscope.open(binary, use_cache=False).core
    real = cache.identity(core)["content"]
    (memo,) = (tmp_path / "cache" / cache.CONTENTS).iterdir()
    memo.write_text("remembered")
    assert cache.identity(core)["content"] == "remembered"
    os.utime(binary)  # moves the ctime, whatever the mtime is set to
    assert cache.identity(core)["content"] == real


def test_any_damage_to_any_cache_file_is_rebuilt() -> None:
    """Fuzzed: a byte flipped, a file cut short, emptied or removed, anywhere in an entry or
    its derived products — the next run gives the same tables and findings as a fresh index.
    ``PATCHSCOPE_FUZZ_EXAMPLES`` runs more."""
    import tempfile

    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    import patchscope
    from patchscope.index import cache
    from patchscope.rules import findings

    def index(binary: Path) -> tuple[Any, ...]:
        b = patchscope.open(binary)
        out = (b.inventory.functions, b.inventory.instances, b.machine.events, findings(b).findings)
        cache.wait()  # the derived products' writes
        return out

    root = Path(tempfile.mkdtemp(prefix="patchscope-fuzz-cache-"))
    old = os.environ.get("PATCHSCOPE_CACHE")
    os.environ["PATCHSCOPE_CACHE"] = str(root / "cache")
    try:
        binary = root / "corpus"
        shutil.copy2(X86, binary)
        fresh = index(binary)
        files = sorted(p for p in (root / "cache").rglob("*") if p.is_file() and ".contents" not in p.parts)
        assert len(files) > 10

        @settings(
            max_examples=int(os.environ.get("PATCHSCOPE_FUZZ_EXAMPLES", "12")),
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        )
        @given(st.sampled_from(range(len(files))), st.sampled_from(["flip", "cut", "empty", "remove"]), st.floats(0, 1))
        def damaged_then_read(which: int, how: str, where: float) -> None:
            shutil.rmtree(root / "cache", ignore_errors=True)
            index(binary)  # the entry again, every file in place
            path = files[which]
            data = path.read_bytes()
            at = min(int(where * len(data)), max(len(data) - 1, 0))
            if how == "flip" and data:
                path.write_bytes(data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :])
            elif how == "cut":
                path.write_bytes(data[:at])
            elif how == "empty":
                path.write_bytes(b"")
            else:
                path.unlink()
            got = index(binary)
            assert all(a.equals(b) for a, b in zip(got, fresh))

        damaged_then_read()
    finally:
        if old is None:
            os.environ.pop("PATCHSCOPE_CACHE", None)
        else:
            os.environ["PATCHSCOPE_CACHE"] = old
        shutil.rmtree(root, ignore_errors=True)

"""The on-disk cache: a scan's raw tables as uncompressed Arrow IPC files, memory-mapped on
load so that a second run over the same binary reads nothing it does not touch.

A store that cannot lie. Keyed by content: the build-ids (``_core.Binary.identify``) and the
CRC-32 of every byte of the binary, its debug file and its supplementary file
(``_core.Binary.content``, remembered by the files' stat: see :func:`content`), with the core's
build — an edit in place that keeps size and mtime is seen, a ``touch`` re-indexes nothing.
Each entry (and each derived product beside it, under ``derived/<name>/``) ends with a
manifest of its files' sizes and CRC-32s, written last and checked on every load: a damaged,
partial or missing file makes that entry be rebuilt, with one warning line, never a crash on a
memory-mapped wreck. Written atomically (a ``.tmp-<pid>-*`` folder, fsynced, renamed into
place; the folders of dead writers are swept), kept under ``PATCHSCOPE_CACHE_MAX`` bytes by
evicting the least recently used entries. A cache that cannot be written is skipped with one
warning. Arrow IPC rather than Parquet: Parquet must be decoded on every load, an IPC file is
used in place.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import json
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pyarrow as pa

from patchscope import _core
from patchscope.index.functions import Inventory
from patchscope.index.tables import Columns

#: The dataclasses of tables that may be cached as derived products, by class name.
_DERIVED: dict[str, type] = {}


def derived_product(cls: type) -> type:
    """Class decorator: a dataclass whose fields are Arrow tables, cacheable beside an index."""
    _DERIVED[cls.__name__] = cls
    return cls


derived_product(Inventory)

FORMAT = 2
MANIFEST = "manifest.json"
#: Touched on every load: its mtime is the entry's last use, for eviction.
USED = "used"
DEFAULT_MAX = 4 << 30


def cache_root() -> Path:
    env = os.environ.get("PATCHSCOPE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "patchscope"


def cache_max() -> int:
    """``PATCHSCOPE_CACHE_MAX`` in bytes (``500M``, ``4G``, ``123456``); 4G by default."""
    text = os.environ.get("PATCHSCOPE_CACHE_MAX", "").strip()
    m = re.fullmatch(r"(\d+)\s*([KMGT]?)i?B?", text, re.IGNORECASE)
    if not text:
        return DEFAULT_MAX
    if m is None:
        _warn(f"PATCHSCOPE_CACHE_MAX={text!r} is not a size (like 500M or 4G); using 4G")
        return DEFAULT_MAX
    return int(m[1]) << (10 * " KMGT".index(m[2].upper() or " "))


def identity(core: _core.Binary) -> dict[str, str]:
    """What the key is made of: ``core.identify()`` and the files' :func:`content`."""
    ident = core.identify()
    ident["content"] = content(core, ident)
    return ident


def cache_key(ident: dict[str, str]) -> str:
    """A key from the identities of the files a scan reads (:func:`identity`): their
    build-ids and the CRC-32 of their bytes (a stripped or patched copy shares the build-id)."""
    # The core's build, not just its version: tables change shape between builds.
    core = Path(_core.__file__).stat()
    parts = [f"core={_core.__version__}:{core.st_size}:{core.st_mtime_ns}", f"format={FORMAT}"]
    parts += [f"{k}={ident[k]}" for k in ("build_id", "debug_build_id", "sup_build_id", "content")]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


#: Where the content CRC of files is remembered by their stat (not an entry: its name hides it).
CONTENTS = ".contents"


def content(core: _core.Binary, ident: dict[str, str]) -> str:
    """The CRC-32 of the files' bytes (``core.content()``), remembered by their stat. A file
    whose device, inode, size, mtime and ctime are what they were when it was hashed has not
    been written since (every write, and every ``touch``, moves the ctime, which no user can
    set back), so a warm run need not read 600 MB of vmlinux again to know it."""
    stamps = []
    for f in (str(core.path), ident["debug_file"], ident["sup_file"]):
        if f:
            st = os.stat(f)
            stamps.append(
                f"{os.path.realpath(f)}:{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}:{st.st_ctime_ns}"
            )
    # surrogateescape: a path given with bytes that are not UTF-8 is hashed as those bytes
    memo = cache_root() / CONTENTS / hashlib.sha256("\n".join(stamps).encode(errors="surrogateescape")).hexdigest()[:32]
    try:
        return memo.read_text()
    except OSError:
        pass
    crc = core.content()
    try:
        memo.parent.mkdir(parents=True, exist_ok=True)
        tmp = memo.with_name(f".tmp-{os.getpid()}-{memo.name}")
        tmp.write_text(crc)
        os.replace(tmp, memo)
    except OSError:
        pass  # then the next run hashes again: slower, never wrong
    return crc


_warned: set[str] = set()


def _warn(message: str) -> None:
    """One line on stderr, once a process: the cache never stops a run, nor floods it."""
    _warn_once(message, message)


def _warn_once(topic: str, message: str) -> None:
    if topic not in _warned:
        _warned.add(topic)
        print(f"patchscope: warning: {message}", file=sys.stderr, flush=True)


#: Keys this process loaded or wrote: never evicted under it.
_in_use: set[str] = set()


def load(key: str, label: str = "") -> Columns | None:
    """The tables of an entry, or None if absent or damaged (said once on stderr)."""
    d = cache_root() / key
    if not d.is_dir():
        return None
    listed, problem = _check(d)
    if problem is None:
        try:
            info = json.loads((d / "info.json").read_text())
            pool = cast(pa.LargeStringArray, _read(d / "strings.arrow").column(0).combine_chunks())
            # Only the files the manifest vouches for: a stray one is no table of this entry.
            raw = {n[: -len(".arrow")]: _read(d / n) for n in listed if n.endswith(".arrow") and n != "strings.arrow"}
        except (OSError, ValueError, pa.ArrowException) as e:
            problem = f"{type(e).__name__}"
        else:
            _in_use.add(key)
            _touch(d / USED)
            return Columns(info=info, pool=pool, raw=raw)
    _warn(f"cache entry for {label or key} damaged ({problem}); re-indexing")
    return None


def _check(d: Path) -> tuple[list[str], str | None]:
    """The files the manifest of an entry or product lists, and what is wrong with them, or None."""
    try:
        files: dict[str, list[int]] = json.loads((d / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError, TypeError):
        return [], f"{MANIFEST}: missing"
    names = sorted(files)
    for name, got in zip(names, _core.crc32_files([str(d / n) for n in names])):
        if got is None:
            return names, f"{name}: missing"
        if got[0] != files[name][0]:
            return names, f"{name}: length"
        if got[1] != files[name][1]:
            return names, f"{name}: checksum"
    return names, None


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # a read-only cache still serves; it forgets the order of use
        path.touch()


_writers: list[threading.Thread] = []


def in_background(write: Callable[[], object]) -> None:
    """Runs a cache write while the caller goes on (Arrow releases the GIL while writing),
    after the writes started before it; the interpreter waits for the writers before it
    exits, so no half-written entry is left. A failure is one warning line, never a traceback."""
    before = list(_writers)

    def run() -> None:
        for t in before:
            t.join()
        try:
            write()
        except Exception as e:  # a thread's traceback would reach the user
            if not _abandoned:  # a process leaving on a signal says nothing of its cache
                _warn_once("write", f"cache at {cache_root()} cannot be written ({e}); not saved")

    t = threading.Thread(target=run, name="patchscope-cache", daemon=False)
    t.start()
    _writers.append(t)


def wait() -> None:
    """Blocks until every background write has finished."""
    while _writers:
        _writers.pop().join()


#: The ``.tmp-*`` folders of the writes in flight, and whether the process is leaving.
_scratch: set[Path] = set()
_scratch_lock = threading.Lock()
_abandoned = False


def _scratch_dir(root: Path) -> Path:
    """A temporary folder named by this process's pid, so that a later run can tell it from
    a live writer's and remove it when this process died (killed -9) before cleaning it."""
    with _scratch_lock:
        if _abandoned:
            raise OSError("the cache is closed")
        tmp = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-", dir=root))
        _scratch.add(tmp)
        return tmp


def _publish(tmp: Path, dest: Path) -> None:
    """Renames ``tmp`` onto ``dest``; a damaged ``dest`` is moved aside first (a rename onto a
    non-empty folder fails) and removed after."""
    _sync(tmp)
    with _scratch_lock:
        if _abandoned:
            raise OSError("the cache is closed")
        old = Path(tempfile.mkdtemp(prefix=f".tmp-{os.getpid()}-old-", dir=dest.parent)) if dest.exists() else None
        if old is not None:
            os.replace(dest, old)
        os.replace(tmp, dest)
        _scratch.discard(tmp)
    _sync(dest.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _sync(path: Path) -> None:
    """fsync of a file or a folder by any descriptor of it (Arrow's writer keeps none we can
    reach; a folder's own descriptor makes a rename in it durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def abandon_writes() -> None:
    """For a process about to exit at once (on a signal, see ``cli/interrupt.py``): the writes
    in flight are never published and their ``.tmp-*`` folders are removed. A writer may still
    create a file in one while it is removed, hence the retries; it creates none once it is gone."""
    global _abandoned
    with _scratch_lock:
        _abandoned = True
        for tmp in _scratch:
            for _ in range(10):
                shutil.rmtree(tmp, ignore_errors=True)
                if not tmp.exists():
                    break


def save(key: str, cols: Columns, path: str = "") -> None:
    """Writes an entry atomically, replacing a damaged one (an ``OSError`` if the cache cannot
    be written: :func:`in_background` says so once). Then sweeps the folders of dead writers
    and evicts down to the size cap."""
    root = cache_root()
    root.mkdir(parents=True, exist_ok=True)
    if root not in _swept:
        _sweep(root)
        _swept.add(root)
    tmp = _scratch_dir(root)
    try:
        (tmp / "info.json").write_text(json.dumps(cols.info))
        _write(tmp / "strings.arrow", pa.table({"s": cols.pool}))
        for name, table in cols.raw.items():
            _write(tmp / f"{name}.arrow", table)
        _write_manifest(tmp, {"path": path, "build_id": cols.info.get("build_id", "")})
        _touch(tmp / USED)
        _publish(tmp, root / key)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _in_use.add(key)
    _keep_under_cap(root, _size(root / key))


def _write_manifest(d: Path, extra: dict[str, str]) -> None:
    """The sizes and CRC-32s of every file in ``d``, fsynced, written last: its presence says
    the rest is complete."""
    names = sorted(p.name for p in d.iterdir() if p.is_file())
    for n in names:
        _sync(d / n)
    sums = _core.crc32_files([str(d / n) for n in names])
    files = {n: list(s) for n, s in zip(names, sums) if s is not None}
    with open(d / MANIFEST, "w") as f:
        json.dump({**extra, "files": files}, f)
        f.flush()
        os.fsync(f.fileno())


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # another user's live process
    return True


#: The caches whose dead writers' folders this process removed (once: a run over a kernel tree
#: writes thousands of entries, and each sweep globs every one of them).
_swept: set[Path] = set()
#: The cache's size as last counted, plus what this process wrote since; and what it wrote
#: since that count.
_size_estimate: dict[Path, int] = {}
_written_since: dict[Path, int] = {}


def _keep_under_cap(root: Path, written: int) -> None:
    """Evicts when the cache may be over its cap. Counting it walks every entry, so it is
    counted once, then again only when this process's own writes since bring the estimate over
    the cap or reach a sixteenth of it (other processes write too): a kernel tree's thousands of
    entries are each counted a few times, not once per entry written."""
    cap = cache_max()
    since = _written_since.get(root, 0) + written
    estimate = _size_estimate.get(root, 0) + written
    if root in _size_estimate and estimate <= cap and since < cap // 16:
        _size_estimate[root], _written_since[root] = estimate, since
        return
    evict(root, cap)
    _size_estimate[root] = sum(e.size for e in entries(root))
    _written_since[root] = 0


def _sweep(root: Path) -> None:
    """Removes the ``.tmp-<pid>-*`` folders whose writer is gone."""
    for tmp in [*root.glob(".tmp-*"), *root.glob("*/derived/.tmp-*")]:
        m = re.match(r"\.tmp-(\d+)-", tmp.name)
        if m is None or (int(m[1]) != os.getpid() and not _alive(int(m[1]))):
            shutil.rmtree(tmp, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Entry:
    """An entry of the cache, as ``patchscope cache --list`` shows it."""

    key: str
    path: str
    build_id: str
    size: int
    last_used: float


def entries(root: Path | None = None) -> list[Entry]:
    """Every entry of the cache, least recently used first."""
    root = cache_root() if root is None else root
    found = []
    for d in sorted(root.iterdir()) if root.is_dir() else []:
        if d.is_dir() and not d.name.startswith("."):
            try:
                meta = json.loads((d / MANIFEST).read_text())
            except (OSError, ValueError):
                meta = {}
            found.append(Entry(d.name, meta.get("path", ""), meta.get("build_id", ""), _size(d), _last_used(d)))
    return sorted(found, key=lambda e: e.last_used)


def _size(d: Path) -> int:
    return sum(p.stat().st_size for p in _files(d))


def _files(d: Path) -> Iterator[Path]:
    for dirpath, _, names in os.walk(d):
        yield from (Path(dirpath) / n for n in names)


def _last_used(d: Path) -> float:
    for p in (d / USED, d / MANIFEST, d):
        try:
            return p.stat().st_mtime
        except OSError:
            continue
    return 0.0


def evict(root: Path, cap: int) -> list[str]:
    """Removes the least recently used entries until the cache is under ``cap`` bytes, never
    one this process uses; returns their keys."""
    found = entries(root)
    total = sum(e.size for e in found)
    gone = []
    for e in found:
        if total <= cap:
            break
        if e.key in _in_use:
            continue
        _remove(root / e.key)
        total -= e.size
        gone.append(e.key)
    return gone


def _remove(d: Path) -> None:
    """Renames the folder aside first, so that no reader ever sees half of it."""
    aside = d.parent / f".tmp-{os.getpid()}-gone-{d.name}-{time.monotonic_ns()}"
    try:
        os.replace(d, aside)
    except OSError:
        return
    shutil.rmtree(aside, ignore_errors=True)


def clear(root: Path | None = None) -> int:
    """Removes every entry and temporary folder; returns the bytes freed."""
    root = cache_root() if root is None else root
    freed = 0
    for d in list(root.iterdir()) if root.is_dir() else []:
        if d.is_dir():
            freed += _size(d)
            shutil.rmtree(d, ignore_errors=True)
    return freed


@functools.cache
def code_fingerprint() -> str:
    """A hash of patchscope's Python sources: derived products change when the rules do."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parents[1].rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def load_derived(key: str, name: str, label: str = "") -> Any | None:
    """A dataclass of tables saved by :func:`save_derived`, or None (a damaged one said once)."""
    d = cache_root() / key / "derived" / name
    try:
        meta = json.loads((d / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    if meta.get("format") != FORMAT or meta.get("code") != code_fingerprint():
        return None  # a product of older code: rebuilt without a word
    _, problem = _check(d)
    if problem is None:
        try:
            return _DERIVED[meta["class"]](**{f: _read(d / f"{f}.arrow") for f in meta["fields"]})
        except (OSError, ValueError, KeyError, TypeError, pa.ArrowException) as e:
            problem = type(e).__name__
    _warn(f"cache entry for {label or key} damaged (derived/{name}/{problem}); rebuilding {name}")
    return None


def save_derived(key: str, name: str, value: Any) -> None:
    """Saves beside a complete entry of tables, never in place of a missing one."""
    if not (cache_root() / key / MANIFEST).is_file():
        return
    root = cache_root() / key / "derived"
    root.mkdir(parents=True, exist_ok=True)
    tmp = _scratch_dir(root)
    try:
        names = [f.name for f in dataclasses.fields(value)]
        for f in names:
            _write(tmp / f"{f}.arrow", getattr(value, f))
        meta = {"format": FORMAT, "code": code_fingerprint(), "class": type(value).__name__, "fields": names}
        (tmp / "meta.json").write_text(json.dumps(meta))
        _write_manifest(tmp, {})
        _publish(tmp, root / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    _keep_under_cap(cache_root(), _size(root / name))


def _write(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)


def _read(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()

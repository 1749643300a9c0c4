"""The on-disk cache: a scan's raw tables as uncompressed Arrow IPC files, memory-mapped on
load so that a second run over the same binary reads nothing it does not touch.

Keyed by build-id (or, for a binary without one, by path, size and mtime) together with the
debug file's identity and the core's version, so a rebuilt core or another debug file never
reads a stale index. Arrow IPC rather than Parquet: Parquet must be decoded on every load,
an IPC file is used in place.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
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

FORMAT = 1


def cache_root() -> Path:
    env = os.environ.get("PATCHSCOPE_CACHE")
    if env:
        return Path(env)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "patchscope"


def cache_key(path: Path, ident: dict[str, str]) -> str:
    """A key from the identities of the files a scan reads (``_core.Binary.identify``): build-id,
    size and mtime (a stripped or patched copy shares the build-id), or the path, size and
    mtime of a file without one."""
    # The core's build, not just its version: tables change shape between builds.
    core = Path(_core.__file__).stat()
    parts = [f"core={_core.__version__}:{core.st_size}:{core.st_mtime_ns}", f"format={FORMAT}"]
    files = [(path, ident["build_id"])]
    for role in ("debug", "sup"):
        if ident[f"{role}_file"]:
            files.append((Path(ident[f"{role}_file"]), ident[f"{role}_build_id"]))
    for p, bid in files:
        st = p.stat()
        parts.append(f"{f'bid={bid}' if bid else f'file={p.resolve()}'}:{st.st_size}:{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def load(key: str) -> Columns | None:
    d = cache_root() / key
    try:
        info = json.loads((d / "info.json").read_text())
        pool = cast(pa.LargeStringArray, _read(d / "strings.arrow").column(0).combine_chunks())
        raw = {p.stem: _read(p) for p in d.glob("*.arrow") if p.stem != "strings"}
    except (OSError, ValueError, pa.ArrowException):
        return None
    return Columns(info=info, pool=pool, raw=raw)


_writers: list[threading.Thread] = []


def in_background(write: Callable[[], object]) -> None:
    """Runs a cache write while the caller goes on (Arrow releases the GIL while writing),
    after the writes started before it; the interpreter waits for the writers before it
    exits, so no half-written entry is left."""
    before = list(_writers)

    def run() -> None:
        for t in before:
            t.join()
        write()

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
    with _scratch_lock:
        if _abandoned:
            raise OSError("the cache is closed")
        tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=root))
        _scratch.add(tmp)
        return tmp


def _publish(tmp: Path, dest: Path) -> None:
    with _scratch_lock:
        if _abandoned:
            raise OSError("the cache is closed")
        os.replace(tmp, dest)
        _scratch.discard(tmp)


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


def save(key: str, cols: Columns) -> bool:
    """Writes atomically (a temporary folder renamed into place). A cache that cannot be
    written is skipped, never an error; returns whether it was written."""
    root = cache_root()
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = _scratch_dir(root)
    except OSError:
        return False
    try:
        (tmp / "info.json").write_text(json.dumps(cols.info))
        _write(tmp / "strings.arrow", pa.table({"s": cols.pool}))
        for name, table in cols.raw.items():
            _write(tmp / f"{name}.arrow", table)
        _publish(tmp, root / key)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
        return (root / key).is_dir()  # another process may have won the race
    return True


@functools.cache
def code_fingerprint() -> str:
    """A hash of patchscope's Python sources: derived products change when the rules do."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).parents[1].rglob("*.py")):
        h.update(p.read_bytes())
    return h.hexdigest()[:16]


def load_derived(key: str, name: str) -> Any | None:
    """A dataclass of tables saved by :func:`save_derived`, or None."""
    d = cache_root() / key / "derived" / name
    try:
        meta = json.loads((d / "meta.json").read_text())
        if meta["format"] != FORMAT or meta.get("code") != code_fingerprint():
            return None
        cls = _DERIVED[meta["class"]]
        return cls(**{f: _read(d / f"{f}.arrow") for f in meta["fields"]})
    except (OSError, ValueError, KeyError, pa.ArrowException):
        return None


def save_derived(key: str, name: str, value: Any) -> None:
    """Saves beside a complete entry of tables, never in place of a missing one."""
    if not (cache_root() / key / "info.json").is_file():
        return
    root = cache_root() / key / "derived"
    try:
        root.mkdir(parents=True, exist_ok=True)
        tmp = _scratch_dir(root)
    except OSError:
        return  # a read-only cache, or a process that is leaving: ``tmp`` is not there to remove
    try:
        names = [f.name for f in dataclasses.fields(value)]
        for f in names:
            _write(tmp / f"{f}.arrow", getattr(value, f))
        meta = {"format": FORMAT, "code": code_fingerprint(), "class": type(value).__name__, "fields": names}
        (tmp / "meta.json").write_text(json.dumps(meta))
        shutil.rmtree(root / name, ignore_errors=True)  # a product of older code
        _publish(tmp, root / name)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)


def _write(path: Path, table: pa.Table) -> None:
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
        w.write_table(table)


def _read(path: Path) -> pa.Table:
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()

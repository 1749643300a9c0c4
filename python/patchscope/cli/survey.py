"""``patchscope survey BUILD... -o DATASET``: many builds as one Parquet dataset, on Dask.

A BUILD is a kernel tree (its vmlinux and every module, see ``index/tree.py``) or one binary,
named ``NAME=PATH`` or after its release (a tree) or file. Every binary of every build is one
Dask task: it is opened and judged on a worker (from that worker's index cache), and its rows
(``report/survey.py``) come back to this process, which writes them under
``DATASET/<table>/build=B/arch=A/binary=N/part-0.parquet`` (hive partitioning: DuckDB's
``read_parquet('DATASET/functions/**/*.parquet', hive_partitioning=true)``, pandas and polars
read it as one table). A binary that fails is one row of ``DATASET/failed.parquet`` and one line
on stderr; the rows of every other binary are kept. The dataset is written whole or not at all.

By default the tasks run on an in-process local cluster (one worker process per core, or
``PATCHSCOPE_JOBS``); ``--scheduler tcp://HOST:PORT`` sends them to a running Dask cluster,
whose workers must reach the builds by the same paths (shared storage, or copies at the same
paths on every worker) and have patchscope installed.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import shutil
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from patchscope.cli import common, pool
from patchscope.index.tree import Expected

BINARY = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("builds", nargs="+", metavar="BUILD", help="a kernel tree or a binary, optionally NAME=PATH")
    p.add_argument("-o", "--output", metavar="DATASET", required=True, help="the dataset folder to write")
    p.add_argument("--scheduler", metavar="tcp://HOST:PORT", help="a running Dask scheduler (default: a local cluster)")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the on-disk index cache")


@dataclass(frozen=True)
class Task:
    build: str
    binary: str
    path: str
    #: What a module must match (its tree's release, the installed module), None when unchecked.
    expected: Expected | None
    use_cache: bool


def run(args: argparse.Namespace) -> int:
    tasks = list(_tasks(args))
    out = Path(args.output)
    if out.exists() and not out.is_dir():
        raise common.UserError(f"{out}: exists and is not a folder")
    client = _client(args.scheduler)
    failed: list[dict[str, str]] = []
    with client, _replacing(out) as tmp:
        for task, result in _results(client, tasks):
            if isinstance(result, str):
                common.warn(f"error: {result}")
                failed.append({"build": task.build, "binary": task.binary, "path": task.path, "error": result})
            else:
                _write(tmp, task, *result)
        _write_failed(tmp, failed)
    return 2 if failed else 0


def _tasks(args: argparse.Namespace) -> Iterator[Task]:
    from patchscope.index import tree as kt

    names = set()
    for spec in args.builds:
        name, eq, path = spec.partition("=")
        if not eq:
            name, path = "", spec
        if not os.path.exists(path):
            raise common.UserError(f"{path}: no such file or folder")
        if os.path.isdir(path):
            try:
                t = kt.find(path)
            except kt.TreeError as e:
                raise common.UserError(str(e)) from None
            name = name or t.release or Path(path).name
            for line in t.refused.values():
                common.warn(f"error: {line}")
            binaries = [(b, p, t.expected(b)) for b, p in t.binaries()]
        else:
            name = name or Path(path).name
            binaries = [(Path(path).name, Path(path), None)]
        if name in names:
            raise common.UserError(f"build {name} given twice; name them NAME=PATH")
        names.add(name)
        for b, p, expected in binaries:
            yield Task(name, b, str(p), expected, not args.no_cache)


def survey_binary(task: Task) -> tuple[str, dict[str, bytes]] | str:
    """On a worker: the architecture of one binary and its rows as Parquet files' bytes (encoded
    here, on as many workers as there are, not in the one process that writes them), or its
    failure in one line."""
    import patchscope
    from patchscope.index import cache
    from patchscope.index import tree as kt
    from patchscope.report import survey

    wrong = kt.check_module(Path(task.path), task.binary, task.expected)
    if wrong:
        return wrong
    try:
        b = patchscope.open(task.path, use_cache=task.use_cache)
        files = {name: _parquet(table) for name, table in survey.tables(b).items()}
        cache.wait()
        return b.arch, files
    except Exception as e:  # one binary's failure is its row in failed.parquet
        if common.core_error(e):  # its message names the file
            return str(e)
        return f"{task.path}: {type(e).__name__}: {e}"


def _parquet(table: Any) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(table, sink)
    return bytes(sink.getvalue())


def _client(scheduler: str | None) -> Any:
    from dask.distributed import Client, LocalCluster

    if scheduler:
        try:
            return Client(scheduler, timeout="20s")
        except OSError as e:
            raise common.UserError(f"{scheduler}: cannot reach the Dask scheduler ({e})") from None
    # A worker process is started by spawn, which runs the parent's main script again to import
    # it — and the script the installer writes runs the program unguarded. Without a __file__
    # the main module is not run again; the workers import what they run by name.
    sys.modules["__main__"].__dict__.pop("__file__", None)
    # the workers' own logs silenced: a heartbeat that meets the scheduler closing at the end
    # printed a traceback; a binary's failure comes back as its task's result, never a log
    cluster = LocalCluster(
        n_workers=pool.workers(),
        threads_per_worker=1,
        processes=True,
        dashboard_address=None,
        silence_logs=logging.CRITICAL,
    )
    return Client(cluster)


def _results(client: Any, tasks: list[Task]) -> Iterator[tuple[Task, tuple[str, dict[str, bytes]] | str]]:
    from dask.distributed import as_completed

    futures = client.map(survey_binary, tasks, pure=False)
    by_key = {f.key: t for f, t in zip(futures, tasks)}
    with _progress(len(tasks)) as advance:
        for fut in as_completed(futures):
            task = by_key[fut.key]
            try:
                result = fut.result()
            except Exception as e:  # a worker lost: its task is the binary's failure
                result = f"{task.path}: the worker analysing it failed ({type(e).__name__}: {e})"
            fut.release()
            advance(task.binary)
            yield task, result


@contextlib.contextmanager
def _progress(total: int) -> Iterator[Any]:
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    bar = Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
        transient=True,
    )
    with bar:
        task = bar.add_task("binaries", total=total)
        yield lambda name: bar.update(task, advance=1, description=name)


def _partition(tmp: Path, table: str, task: Task, arch: str) -> Path:
    q = urllib.parse.quote
    return (
        tmp
        / table
        / f"build={q(task.build, safe='')}"
        / f"arch={q(arch, safe='')}"
        / f"binary={q(task.binary, safe='')}"
    )


def _write(tmp: Path, task: Task, arch: str, files: dict[str, bytes]) -> None:
    for table, data in files.items():
        d = _partition(tmp, table, task, arch)
        d.mkdir(parents=True, exist_ok=True)
        (d / "part-0.parquet").write_bytes(data)


def _write_failed(tmp: Path, failed: list[dict[str, str]]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = ("build", "binary", "path", "error")
    pq.write_table(
        pa.table({c: pa.array([f[c] for f in failed], pa.string()) for c in columns}), tmp / "failed.parquet"
    )


@contextlib.contextmanager
def _replacing(out: Path) -> Iterator[Path]:
    """A dataset folder written whole or not at all: into a temporary folder beside it, then
    renamed over it (the old one moved aside first, and removed once the new one is in place)."""
    out = out.absolute()
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp-{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    try:
        yield tmp
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        if out.exists():
            os.replace(out, old)
        os.replace(tmp, out)
        shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise

"""Thousands of binaries in one run: a pool of worker processes over a kernel tree's binaries.

Each worker opens one binary at a time (from the on-disk cache when it was indexed before),
runs the command's per-binary function on it and sends back its document; a binary that fails
— unreadable, corrupt, built for another kernel — is named with its one line and the others
carry on. The largest binaries go first, so that the vmlinux does not end the run alone.
Processes, not threads: the rules are Python, and one interpreter runs one rule at a time.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import multiprocessing
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from patchscope.cli import common
from patchscope.index import tree as kt

if TYPE_CHECKING:
    from patchscope.index.binary import Binary
    from patchscope.index.tree import Tree

#: A command's work on one binary of a tree, given its name in the tree: its document (a
#: module-level function, so that it can be sent to a worker process).
Work = Callable[[argparse.Namespace, str, "Binary"], dict[str, Any]]


@dataclass
class Part:
    """One binary's share of a tree run: its document, or why there is none."""

    name: str
    path: str
    doc: dict[str, Any] | None = None
    error: str | None = None


@dataclass
class Results:
    parts: list[Part] = field(default_factory=list)

    @property
    def done(self) -> list[Part]:
        return [p for p in self.parts if p.doc is not None]

    @property
    def failed(self) -> list[Part]:
        return [p for p in self.parts if p.error is not None]

    def failures(self) -> list[dict[str, str]]:
        return [{"binary": p.name, "path": p.path, "error": p.error or ""} for p in self.failed]


def workers() -> int:
    """``PATCHSCOPE_JOBS``, else one per core."""
    return max(1, int(os.environ.get("PATCHSCOPE_JOBS") or os.cpu_count() or 1))


def run(args: argparse.Namespace, tree: Tree, work: Work, names: list[str] | None = None) -> Results:
    """``work`` on the tree's binaries named in ``names`` (default: all), in a pool; each
    failure is warned about on stderr as it happens, in one line."""
    named = None if names is None else set(names)
    wanted = [(n, p) for n, p in tree.binaries() if named is None or n in named]
    wanted.sort(key=lambda np_: -_size(np_[1]))
    parts = {name: Part(name, str(path)) for name, path in wanted}
    if len(wanted) == 1:  # one binary: no pool to start
        name, path = wanted[0]
        _fill(parts[name], _one(args, tree.expected(name), work, name, path))
        if parts[name].error:
            common.warn(f"error: {parts[name].error}")
    else:
        _pool(args, tree, work, wanted, parts)
    results = Results([parts[n] for n, _ in sorted(wanted, key=lambda np_: (np_[0] != kt.VMLINUX, np_[0]))])
    for name, line in tree.refused.items():
        if named is None or name in named:
            common.warn(f"error: {line}")
            results.parts.append(Part(name, "", error=line))
    return results


def _pool(
    args: argparse.Namespace, tree: Tree, work: Work, wanted: list[tuple[str, Path]], parts: dict[str, Part]
) -> None:
    progress = _progress(len(wanted))
    # fork: the parent has opened no binary (no core threads to lose), and a worker starts
    # with the modules already imported
    ctx = multiprocessing.get_context("fork")
    with progress, cf.ProcessPoolExecutor(min(workers(), len(wanted)), ctx, initializer=_worker_start) as pool:
        task = progress.add_task("binaries", total=len(wanted)) if not progress.disable else None
        # each task gets what its module is checked against, not the tree: thousands of tasks
        # would each carry every path of the tree to the workers
        futures = {pool.submit(_one, args, tree.expected(name), work, name, path): name for name, path in wanted}
        for fut in cf.as_completed(futures):
            name = futures[fut]
            try:
                _fill(parts[name], fut.result())
            except cf.process.BrokenProcessPool:  # a worker killed (out of memory, a signal)
                parts[name].error = f"{parts[name].path}: the worker analysing it died"
            if parts[name].error:
                common.warn(f"error: {parts[name].error}")
            if task is not None:
                progress.update(task, advance=1, description=name)


def _fill(part: Part, outcome: tuple[dict[str, Any] | None, str | None]) -> None:
    part.doc, part.error = outcome


def _one(
    args: argparse.Namespace, expected: kt.Expected | None, work: Work, name: str, path: Path
) -> tuple[dict[str, Any] | None, str | None]:
    """In a worker: one binary's document, or its one-line failure."""
    import patchscope
    from patchscope.index import cache

    wrong = kt.check_module(path, name, expected)
    if wrong:
        return None, wrong
    try:
        b = patchscope.open(path, use_cache=not args.no_cache)
        doc = work(args, name, b)
        cache.wait()  # the entry is written before the next binary's memory is asked for
        return doc, None
    except common.UserError as e:
        return None, f"{path}: {e}"
    except Exception as e:  # one binary's failure is its own line, never the run's end
        if common.core_error(e):
            return None, str(e)
        return None, f"{path}: {type(e).__name__}: {e}"


def _worker_start() -> None:
    """Ctrl-C reaches the whole process group: a worker ends at once, the parent says why."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT, signal.SIGTERM})
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _progress(total: int) -> Any:
    """A rich progress bar on a terminal; nothing otherwise."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    err = Console(stderr=True)
    return Progress(
        TextColumn("{task.description:<24}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal or total < 2,
        transient=True,
    )


def exit_status(results: Results, status: int = 0) -> int:
    """A run some binaries of which failed is no success."""
    return max(status, 2) if results.failed else status

"""``patchscope report BINARY -o DIR``: a static site of the spectrum, entered at
``DIR/index.html``, that opens from ``file://`` with no server and no network. With
``--probes FILE`` it adds the ``check`` of those points; with ``--old OLD``, the ``diff`` of
OLD → BINARY."""

from __future__ import annotations

import argparse
import contextlib
import os
import secrets
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

from patchscope.cli import common, interrupt


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.set_defaults(format="table")
    p.add_argument(
        "--probes",
        dest="probe_file",
        metavar="FILE",
        help="probe points (one per line, or a .stp file): their check, linked to the functions",
    )
    p.add_argument("--old", metavar="OLD", help="an older build of BINARY: what changed, function by function")
    p.add_argument("--old-debug-file", metavar="FILE", help="separate debug file of OLD")
    p.add_argument("--no-figures", action="store_true", help="leave out the stats figures (the slowest part)")


def run(args: argparse.Namespace) -> int:
    if not args.output:
        raise common.UserError("report: give the folder to write with -o DIR")
    b = common.open_binary(args)
    points = common.probe_file(args.probe_file, b.info) if args.probe_file else None
    old = None
    if args.old:
        old = common.open_binary(
            argparse.Namespace(**{**vars(args), "binary": args.old, "debug_file": args.old_debug_file})
        )
    from patchscope.report.site import write

    t0 = time.perf_counter()
    with _replacing(Path(args.output)) as out:
        write(out, b, points=points, old=old, figures=not args.no_figures)
    common.warn(f"report written to {args.output}/index.html in {time.perf_counter() - t0:.1f} s")
    return 0


@contextlib.contextmanager
def _replacing(target: Path) -> Iterator[Path]:
    """A folder written whole or not at all: built beside ``target``, then renamed over it. An
    existing ``target`` is replaced only if it is empty or an earlier report (it has the
    marker file): never a folder of someone else's files."""
    from patchscope.report.site import MARKER

    if target.exists() and not (target / MARKER).exists() and (not target.is_dir() or any(target.iterdir())):
        raise common.UserError(f"{target}: exists and is not a patchscope report; refusing to replace it")
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    try:
        with interrupt.temporary_dir(tmp):
            yield tmp
            old = target.with_name(f".{target.name}.old-{secrets.token_hex(4)}")
            if target.exists():
                os.replace(target, old)
            os.replace(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
    except OSError as e:
        raise common.UserError(f"{target}: {e.strerror}") from None

"""What every subcommand shares: opening the binary, the output options, failing cleanly."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import patchscope

if TYPE_CHECKING:
    from rich.console import Console

    from patchscope.index.binary import Binary


class UserError(Exception):
    """Something the user can fix; printed as one line, exit status 2."""


def fail(message: str, code: int = 2) -> int:
    print(f"patchscope: error: {message}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    print(f"patchscope: {message}", file=sys.stderr)


def add_binary_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("binary", help="ELF file: vmlinux, a .ko module, an executable or a shared library")
    p.add_argument("--debug-file", metavar="FILE", help="separate debug file (default: found by build-id or debuglink)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE instead of standard output")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the on-disk index cache")


def open_binary(args: argparse.Namespace) -> Binary:
    from rich.console import Console  # here, not above: ``patchscope --help`` needs no rich

    err = Console(stderr=True)
    status = err.status(f"indexing {Path(args.binary).name}") if err.is_terminal else contextlib.nullcontext()
    try:
        with status:
            b = patchscope.open(args.binary, args.debug_file, use_cache=not args.no_cache)
    except patchscope.BinaryError as e:
        raise UserError(str(e)) from None
    if not b.has_dwarf:
        warn(f"note: {args.binary} has no DWARF debug info; the inventory comes from the symbol table alone")
    errors = b.unit_errors()
    if errors:
        warn(f"warning: {len(errors)} DWARF unit(s) could not be read whole; first: {errors[0]}")
    return b


@contextlib.contextmanager
def output(args: argparse.Namespace) -> Iterator[IO[str]]:
    if not args.output:
        yield sys.stdout
        return
    try:
        with open(args.output, "w") as f:
            yield f
    except OSError as e:
        raise UserError(f"{args.output}: {e.strerror}") from None


def console(out: IO[str]) -> Console:
    """A console for ``out``; a file or pipe gets wide lines, since nobody reads it at 80 columns."""
    from rich.console import Console

    tty = out.isatty()
    return Console(file=out, highlight=False, width=None if tty else 240, force_terminal=tty or None)


def emit(args: argparse.Namespace, doc: dict[str, Any], render: Callable[[Console], None]) -> None:
    """Writes ``doc`` where ``-o`` says: as JSON, or through ``render`` for a person."""
    with output(args) as out:
        if args.format == "json":
            write_json(out, doc)
        else:
            render(console(out))


def write_json(out: IO[str], doc: dict[str, Any]) -> None:
    """Compact, and through the C encoder: ``indent`` switches json to its pure-Python encoder,
    minutes for a whole kernel. ``python -m json.tool`` indents it for reading."""
    out.write(json.dumps(doc, separators=(",", ":")))
    out.write("\n")

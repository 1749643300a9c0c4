"""What every subcommand shares: opening the binary, the output options, failing cleanly."""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import secrets
import stat
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import patchscope
from patchscope.cli import interrupt

if TYPE_CHECKING:
    from rich.console import Console

    from patchscope.index.binary import Binary
    from patchscope.index.tree import Tree
    from patchscope.probes import syntax as ps


class UserError(Exception):
    """Something the user can fix; printed as one line, exit status 2."""


def fail(message: str, code: int = 2) -> int:
    print(f"patchscope: error: {message}", file=sys.stderr)
    return code


def warn(message: str) -> None:
    print(f"patchscope: {message}", file=sys.stderr)


def core_error(e: Exception) -> bool:
    """Whether ``e`` is the core's ``CoreError``: a binary that cannot be read as asked, said in
    one line for a person. Looked up, not imported: ``patchscope --help`` loads no core."""
    core = sys.modules.get("patchscope._core")
    return core is not None and isinstance(e, core.CoreError)


def add_binary_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "binary",
        help="ELF file: vmlinux, a .ko module, an executable or a shared library; or a kernel tree folder "
        "(lib/modules/RELEASE of a debug package, an extracted package, a build directory)",
    )
    p.add_argument(
        "-r",
        "--release",
        metavar="RELEASE",
        help="in place of BINARY: the kernel tree of RELEASE (/usr/lib/debug/lib/modules)",
    )
    p.add_argument("--debug-file", metavar="FILE", help="separate debug file (default: found by build-id or debuglink)")
    p.add_argument("--format", choices=("table", "json"), default="table", help="output format (default: table)")
    p.add_argument("-o", "--output", metavar="FILE", help="write the output to FILE instead of standard output")
    p.add_argument("--no-cache", action="store_true", help="neither read nor write the on-disk index cache")


def kernel_tree(args: argparse.Namespace) -> Tree | None:
    """The kernel tree the command runs over (a folder given, or ``-r RELEASE``), or None for
    one binary."""
    from patchscope.index import tree

    if args.binary is None and args.release is None:
        raise UserError("give a BINARY, a kernel tree folder or -r RELEASE")
    if args.release is None and not os.path.isdir(args.binary):
        return None
    try:
        t = tree.find(args.binary, args.release)
    except tree.TreeError as e:
        raise UserError(str(e)) from None
    if getattr(args, "debug_file", None):
        raise UserError("--debug-file names one binary's debug file; a kernel tree has its own")
    return t


def open_binary(args: argparse.Namespace) -> Binary:
    from rich.console import Console  # here, not above: ``patchscope --help`` needs no rich

    if args.binary is None or os.path.isdir(args.binary):
        raise UserError(
            f"{args.command} takes one binary; a kernel tree is for scan, functions, list, check, diff and stats"
        )
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


#: The arguments that name files a command reads (``check``'s PROBE list holds its .stp files,
#: ``diff --probes`` is one; ``--debug-for`` is BINARY=FILE).
INPUTS = (
    "binary",
    "debug_file",
    "new",
    "new_debug_file",
    "more",
    "probe_file",
    "probes",
    "debug_for",
    "old",
    "old_debug_file",
)

#: The exit status of a run whose reader closed the pipe early when the command itself had
#: nothing to say: 128 + SIGPIPE, what a shell reports for a writer the closed pipe killed.
READER_LEFT = 141

_reader_left = False

#: A path given as bytes that are not UTF-8 (``x\xff``) reaches Python with surrogates in
#: place of those bytes: written out as those bytes again (where rich does not show them as
#: U+FFFD), never an encoding error, as standard output does in a C locale.
PATH_BYTES = "surrogateescape"


def probe_file(path: str, info: dict[str, str] | None = None) -> list[ps.ProbePoint | ps.ProbeSyntaxError]:
    """The points of a probe file or script, read against the build ``info`` describes (its
    release, architecture and config: a script's preprocessor asks them); a file that cannot be
    read is one line."""
    from patchscope.probes import scripts, syntax

    try:
        return scripts.load_points(path, scripts.build_of(info or {}))
    except syntax.ProbeFileError as e:
        raise UserError(str(e)) from None


def refuse_to_overwrite_inputs(args: argparse.Namespace) -> None:
    """``scan X -o X`` would replace the binary by its report: an ``-o`` file that is one of
    the inputs given (the same file, by any path) is an error, before any work is done."""
    if not getattr(args, "output", None):
        return
    for path in _inputs(args):
        with contextlib.suppress(OSError):  # an input that does not exist is not this file
            if os.path.samefile(path, args.output):
                raise UserError(f"{args.output}: is an input file ({path}); refusing to overwrite it")


def _inputs(args: argparse.Namespace) -> Iterator[str]:
    for name in INPUTS:
        value = getattr(args, name, None)
        for item in [value] if isinstance(value, str) else value or []:
            yield item.partition("=")[2] if name == "debug_for" else item


@contextlib.contextmanager
def output(args: argparse.Namespace) -> Iterator[IO[str]]:
    if not args.output:
        with _stdout() as out:
            yield out
        return
    try:
        with _replacing(args.output) as f:
            yield f
    except OSError as e:
        raise UserError(f"{args.output}: {e.strerror}") from None


@contextlib.contextmanager
def _stdout() -> Iterator[IO[str]]:
    """Standard output, flushed here so that its errors are ours: a reader that closed the pipe
    (``| head``) stops the output, not the run (see :func:`exit_status`); a full disk or
    ``/dev/full`` is one line. Either way what is still buffered goes nowhere, so that the
    interpreter's own flush at exit does not fail again."""
    global _reader_left
    try:
        yield sys.stdout
        sys.stdout.flush()
    except BrokenPipeError:
        _discard_stdout()
        _reader_left = True
    except OSError as e:
        _discard_stdout()
        raise UserError(f"standard output: {e.strerror}") from None


def _discard_stdout() -> None:
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def exit_status(status: int) -> int:
    """A command's exit status, unless its reader left before the end and it was 0: a report
    nobody read whole is not a success, and a verdict (``check``'s 1 or 2) is kept."""
    return (status or READER_LEFT) if _reader_left else status


@contextlib.contextmanager
def _replacing(name: str) -> Iterator[IO[str]]:
    """A file written whole or not at all: into a temporary beside it, synced, then renamed
    over it, so that a failure or a signal (see ``interrupt``) leaves the old file as it was.
    Through a symbolic link, as ``open`` writes; what is not a regular file (``/dev/null``, a
    FIFO) cannot be replaced and is written in place."""
    target = Path(os.path.realpath(name))
    try:
        mode: int | None = target.stat().st_mode
    except FileNotFoundError:
        mode = None
    if mode is not None and not stat.S_ISREG(mode):
        with open(name, "w", errors=PATH_BYTES) as f:
            yield f
        return
    tmp = target.with_name(f".{target.name}.tmp-{secrets.token_hex(4)}")
    with interrupt.temporary(tmp, 0o666) as fd, open(fd, "w", errors=PATH_BYTES) as f:  # 0o666 less the umask
        try:
            if mode is not None:
                os.fchmod(fd, stat.S_IMODE(mode))  # the old file's mode, which ``open`` would keep
            yield f
            f.flush()
            os.fsync(fd)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def console(out: IO[str]) -> Console:
    """A console for ``out``; a file or pipe gets its lines whole (tables 240 columns wide),
    since nobody reads it at 80 columns."""
    from rich.console import Console
    from rich.text import Text

    tty = out.isatty()

    class Output(Console):
        def on_broken_pipe(self) -> None:
            """rich's own exits with status 1; ``_stdout`` keeps the command's."""
            raise BrokenPipeError

        def print(self, *objects: Any, **options: Any) -> None:
            """Lines of text to a file or pipe are written as they are: no style reaches it
            anyway, and rich's layout of each line (measured, wrapped, flushed) made a check
            of 20,000 points spend a minute printing."""
            if tty or set(options) - {"style"} or not all(isinstance(o, Text) for o in objects):
                super().print(*objects, **options)
            else:
                self.file.write(" ".join(o.plain for o in objects) + "\n")

    return Output(file=out, highlight=False, width=None if tty else 240, force_terminal=tty or None)


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

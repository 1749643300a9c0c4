"""``patchscope`` command line: one subcommand a module, errors as one line on stderr."""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Iterable, Sequence
from types import ModuleType

from patchscope.cli import common

#: Each command: the module that implements it (``patchscope.cli.<module>``, imported only
#: when that command runs, so that ``--help`` loads no index or rule) and its help line.
COMMANDS = {
    "scan": ("scan", "the whole binary on the safety spectrum: a summary, then one line per function"),
    "function": ("function", "one source function: its instances, inline sites and findings, with evidence"),
    "functions": ("functions", "source functions: out-of-line instances and clones, .cold parts, inline sites"),
    "check": ("check", "judge probe points (SystemTap, perf, bpftrace, kprobe_events, .stp files) against a build"),
    "list": (
        "listing",
        "list probe points in stap -L form, clones under their real names, with the variables that exist there",
    ),
    "diff": ("diff", "two builds side by side: inlining, clones, bands, code, lines and probes that changed"),
    "stats": (
        "stats",
        "experiments over builds (inlining, clones, inline-site arguments, bands) as tables and plots",
    ),
    "survey": (
        "survey",
        "many builds (kernel trees or binaries) as one Parquet dataset, on a Dask cluster",
    ),
    "report": ("report", "a static HTML site of the spectrum (overview, every function, disassembly) in -o DIR"),
    "cache": ("cache", "the on-disk index cache: list its entries (--list) or remove them (--clear)"),
}


def command(name: str) -> ModuleType:
    return importlib.import_module(f"patchscope.cli.{COMMANDS[name][0]}")


def parser(commands: Iterable[str] = COMMANDS) -> argparse.ArgumentParser:
    """Every command with its help line, and the arguments of ``commands`` (default: all)."""
    p = argparse.ArgumentParser(
        prog="patchscope",
        description="Where is it safe to probe or live-patch a compiled binary?",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, text) in COMMANDS.items():
        sp = sub.add_parser(name, help=text, description=text)
        if name in commands:
            module = command(name)
            if getattr(module, "BINARY", True):
                common.add_binary_options(sp)
            module.add_arguments(sp)
    return p


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but a command's trailing list (``nargs="*"``, named by its module's
    ``TRAILING``) may continue after options: ``check BIN --format json P1 P2``. argparse's own
    ``parse_intermixed_args`` does not work with subcommands."""
    argv = sys.argv[1:] if argv is None else list(argv)
    argv, release = _release(argv)
    p = parser([a for a in argv if not a.startswith("-")][:1])
    args, extra = p.parse_known_args(argv)
    trailing = getattr(command(args.command), "TRAILING", None)
    if extra and (trailing is None or any(e.startswith("-") for e in extra)):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, trailing, getattr(args, trailing) + extra)
    if release is not None:
        args.binary, args.release = None, release
    return args


def _release(argv: list[str]) -> tuple[list[str], str | None]:
    """``-r RELEASE`` names the kernel tree in place of BINARY: taken out of ``argv``, and an
    empty BINARY put after the command, so that the positional arguments that follow keep their
    places (argparse cannot leave out a positional that others follow)."""
    for i, a in enumerate(argv):
        if a == "--":
            break
        if a in ("-r", "--release") and i + 1 < len(argv):
            rest = argv[:i] + argv[i + 2 :]
            return [*rest[:1], "", *rest[1:]], argv[i + 1]
        if a.startswith("--release="):
            rest = argv[:i] + argv[i + 1 :]
            return [*rest[:1], "", *rest[1:]], a.partition("=")[2]
    return argv, None


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        common.refuse_to_overwrite_inputs(args)
        return common.exit_status(command(args.command).run(args))
    except common.UserError as e:
        return common.fail(str(e))
    except KeyboardInterrupt:  # when called as a function; the program has ``interrupt``
        return common.fail("interrupted", code=130)
    except Exception as e:  # the promise: never a traceback for the user
        if common.core_error(e):
            # Say what is missing rather than run what can run: without machine code (an
            # architecture the core cannot decode) the bands of scan, function, check and diff
            # would call functions safe whose returns, tail calls and atomics nobody looked at.
            # functions and list need DWARF alone, and work.
            return common.fail(f"{args.command}: {e}")
        if os.environ.get("PATCHSCOPE_DEBUG"):
            raise
        return common.fail(f"internal error: {type(e).__name__}: {e} (set PATCHSCOPE_DEBUG=1 for details)")


def run() -> None:
    """The ``patchscope`` program, once :mod:`patchscope.cli.program` has taken the signals."""
    sys.stdout.reconfigure(errors=common.PATH_BYTES)  # type: ignore[union-attr]
    sys.exit(main())


if __name__ == "__main__":
    from patchscope.cli import program

    program.run()

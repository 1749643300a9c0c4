"""``patchscope`` command line: one subcommand a module, errors as one line on stderr."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from patchscope.cli import check, common, diff, function, functions, listing, scan, stats

COMMANDS = {
    "scan": scan,
    "function": function,
    "functions": functions,
    "check": check,
    "list": listing,
    "diff": diff,
    "stats": stats,
}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="patchscope",
        description="Where is it safe to probe or live-patch a compiled binary?",
    )
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, mod in COMMANDS.items():
        sp = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        common.add_binary_options(sp)
        mod.add_arguments(sp)
    return p


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Like ``parse_args``, but a command's trailing list (``nargs="*"``, named by its module's
    ``TRAILING``) may continue after options: ``check BIN --format json P1 P2``. argparse's own
    ``parse_intermixed_args`` does not work with subcommands."""
    p = parser()
    args, extra = p.parse_known_args(argv)
    trailing = getattr(COMMANDS[args.command], "TRAILING", None)
    if extra and (trailing is None or any(e.startswith("-") for e in extra)):
        p.error(f"unrecognized arguments: {' '.join(extra)}")
    if extra:
        setattr(args, trailing, getattr(args, trailing) + extra)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    try:
        return COMMANDS[args.command].run(args)
    except common.UserError as e:
        return common.fail(str(e))
    except KeyboardInterrupt:
        return common.fail("interrupted", code=130)
    except BrokenPipeError:
        # `patchscope functions vmlinux | head`: the reader left; that is not an error.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except Exception as e:  # the promise: never a traceback for the user
        if os.environ.get("PATCHSCOPE_DEBUG"):
            raise
        return common.fail(f"internal error: {type(e).__name__}: {e} (set PATCHSCOPE_DEBUG=1 for details)")


if __name__ == "__main__":
    sys.exit(main())

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


def main(argv: Sequence[str] | None = None) -> int:
    args = parser().parse_args(argv)
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

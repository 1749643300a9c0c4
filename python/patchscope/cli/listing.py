"""``patchscope list BINARY PATTERN``: a ``stap -L`` listing with the variables that really exist."""

from __future__ import annotations

import argparse
from typing import Any

from patchscope.cli import common
from patchscope.probes import syntax as ps
from patchscope.probes.listing import listing
from patchscope.report import listing as report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("pattern", metavar="PATTERN", help="a SystemTap probe pattern, e.g. 'kernel.function(\"tcp_*\")'")
    p.add_argument("-v", "--verbose", action="store_true", help="one line per address, with pc=")


def run(args: argparse.Namespace) -> int:
    b = common.open_binary(args)
    try:
        lines, errors = listing(b, args.pattern, args.verbose)
    except ps.ProbeSyntaxError as e:
        raise common.UserError(f"{e.message}\n{e.pointer()}") from None
    doc = report.document(b, args.pattern, lines, errors)

    def show(con: Any) -> None:
        # plain text, written at once: a whole kernel's listing is 80,000 lines
        con.file.write("".join(ln.text(args.verbose) + "\n" for ln in lines))

    common.emit(args, doc, show)
    for e in errors:
        common.warn(e)
    return 0 if lines else 1

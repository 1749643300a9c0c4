"""``patchscope cache --list | --clear``: what the on-disk index cache holds, and emptying it."""

from __future__ import annotations

import argparse

from patchscope.index import cache
from patchscope.report import cache as report

#: No binary to open: ``cli/main.py`` adds no binary options to this command.
BINARY = False


def add_arguments(p: argparse.ArgumentParser) -> None:
    what = p.add_mutually_exclusive_group(required=True)
    what.add_argument("--list", action="store_true", help="each entry: last use, size, build-id, binary path")
    what.add_argument("--clear", action="store_true", help="remove every entry and temporary folder")


def run(args: argparse.Namespace) -> int:
    root = cache.cache_root()
    if args.clear:
        freed = cache.clear(root)
        print(f"removed {report.size(freed)} from {root}")
        return 0
    print(f"cache: {root} (cap {report.size(cache.cache_max())}, PATCHSCOPE_CACHE_MAX)")
    print("\n".join(report.listing(cache.entries(root))))
    return 0

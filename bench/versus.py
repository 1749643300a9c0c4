"""Benchmark: two patchscope source trees side by side, command by command, in one run.

    python bench/versus.py OLD_TREE NEW_TREE [--runs N] [--vmlinux PATH] [--old-vmlinux PATH]

A tree is a checkout with its compiled core in ``python/patchscope/`` (``maturin develop``, or a
copied ``_core.abi3.so``); each command runs as its own process with that tree first on
``PYTHONPATH``, under this interpreter. The trees take turns run by run, so a load on the
machine falls on both alike; the best of ``--runs`` is kept and the ratio NEW / OLD printed
(below 1: the new tree is faster). Indexing runs cold (an empty cache) and warm; the other
commands run on a warm index with their findings cached, as a user's second call does. This is
what a refactoring must not make slower: start-up, a warm ``function``, index, scan, list,
check and diff on a vmlinux (and the fixture when no vmlinux is at hand).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

from common import ROOT, Run, run, table

FIXTURE = ROOT / "fixtures/bin/x86_64/corpus"


def commands(binary: Path, old_binary: Path | None) -> list[tuple[str, list[str], bool]]:
    """(label, arguments, whether the run starts from an empty cache)."""
    b = str(binary)
    cmds = [
        ("patchscope --help (start-up)", ["--help"], False),
        ("index, cold cache", ["functions", b, "no_such_function_xyz"], True),
        ("index, warm cache", ["functions", b, "no_such_function_xyz"], False),
        ("function (warm)", ["function", b, "vfs_read" if old_binary else "main"], False),
        ("scan --format json (warm)", ["scan", b, "--format", "json", "-o", "/dev/null"], False),
        ('list function("vfs_*") -v', ["list", b, 'kernel.function("vfs_*")', "-v"], False),
        (
            "check 4 points",
            [
                "check",
                b,
                'kernel.function("vfs_read")',
                'kernel.function("tcp_sendmsg").return',
                "kprobe:do_exit",
                "vfs_read+0x1a",
                "-o",
                "/dev/null",
            ],
            False,
        ),
        ('check function("tcp_*")', ["check", b, 'kernel.function("tcp_*")', "-o", "/dev/null"], False),
    ]
    if old_binary is not None:
        cmds.append(("diff OLD NEW (warm)", ["diff", str(old_binary), b, "-o", "/dev/null"], False))
    if old_binary is None:  # the fixture is a user-space program
        cmds = [(lbl, [a.replace("kernel.", "process.") for a in argv], cold) for lbl, argv, cold in cmds]
    return cmds


def once(tree: Path, argv: list[str], cache: str, label: str) -> Run:
    env = {"PYTHONPATH": str(tree / "python"), "PATCHSCOPE_CACHE": cache}
    return run(label, [sys.executable, "-m", "patchscope.cli.main", *argv], env, check=False)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("old", type=Path)
    ap.add_argument("new", type=Path)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--vmlinux", type=Path)
    ap.add_argument("--old-vmlinux", type=Path, help="an older build, for diff")
    args = ap.parse_args()
    binary = args.vmlinux or FIXTURE
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    caches = {t: tempfile.mkdtemp(prefix=f"patchscope-versus-{t}-") for t in trees}
    best: dict[tuple[str, str], Run] = {}
    try:
        for t, tree in trees.items():  # warm both caches, the older build's too
            for b in filter(None, (binary, args.old_vmlinux)):
                once(tree, ["scan", str(b), "-o", "/dev/null"], caches[t], "warm-up")
        for label, argv, cold in commands(binary, args.old_vmlinux):
            for _ in range(args.runs):
                for t, tree in trees.items():
                    cache = tempfile.mkdtemp(prefix="patchscope-cold-") if cold else caches[t]
                    r = once(tree, argv, cache, label)
                    if cold:
                        shutil.rmtree(cache, ignore_errors=True)
                    if (t, label) not in best or r.seconds < best[t, label].seconds:
                        best[t, label] = r
    finally:
        for c in caches.values():
            shutil.rmtree(c, ignore_errors=True)
    print(f"binary: {binary}   old: {trees['old']}   new: {trees['new']}   best of {args.runs}\n")
    rows = [("command", "old s", "new s", "new/old", "old MiB", "new MiB")]
    for label, _, _ in commands(binary, args.old_vmlinux):
        o, n = best["old", label], best["new", label]
        rows.append(
            (
                label,
                f"{o.seconds:.3f}",
                f"{n.seconds:.3f}",
                f"{n.seconds / o.seconds:.2f}x",
                f"{o.max_rss_mb:.0f}",
                f"{n.max_rss_mb:.0f}",
            )
        )
    print(table(rows))


if __name__ == "__main__":
    main()

"""Shared by the benchmarks: run a command as a child, with its wall time and peak memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


@dataclass
class Run:
    label: str
    seconds: float
    max_rss_mb: float
    stdout: str
    #: The child's CPU time (user + system): on a loaded shared machine, what wall time would
    #: be on an idle one.
    cpu_seconds: float = 0.0


def run(label: str, argv: list[str], env: dict[str, str] | None = None, check: bool = True) -> Run:
    """Runs ``argv`` to completion; peak RSS from the child's own rusage (wait4). ``check``:
    a failing child ends the benchmark (``check``'s exit status 1 and 2 are answers, not failures)."""
    t = time.perf_counter()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **(env or {})})
    out = p.stdout.read() if p.stdout else b""
    _, status, usage = os.wait4(p.pid, 0)
    seconds = time.perf_counter() - t
    if check and status != 0:
        err = p.stderr.read().decode() if p.stderr else ""
        raise SystemExit(f"{label}: exit status {status}: {err.strip()[:500]}")
    cpu = usage.ru_utime + usage.ru_stime
    return Run(label, seconds, usage.ru_maxrss / 1024, out.decode(errors="replace"), cpu)


def python(code: str, env: dict[str, str] | None = None, label: str = "") -> Run:
    return run(label, [sys.executable, "-c", code], env)


def vmlinux() -> Path:
    from conftest import vmlinux_path

    p = vmlinux_path()
    if p is None:
        raise SystemExit("no vmlinux: run ../shared/data/fetch-debian-kernel.sh 6.1.0-56 first")
    return p


def table(rows: list[tuple[str, ...]]) -> str:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(r, widths)) for r in rows)

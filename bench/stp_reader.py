"""The ``.stp`` reader's CPU time on megabyte scripts, beside ``stap -p1`` on the same file.

    python bench/stp_reader.py [--python PY] [--repeat N]

Each script is written to a temporary file and read by ``scripts.stp_probe_points`` (CPU time
of the reading alone, the best of ``--repeat`` runs, in a child interpreter so that
``--python /work/main/.venv/bin/python`` gives the figures before a change); ``stap -p1``
(parse and preprocess, SystemTap's pass 1, with the stub build dir of bench/stap_stub.sh) reads
the same file when it is a script stap accepts, and the ratio is ours over stap's CPU time.
Issue 18's bound: a megabyte of script, 32,000 probes, in ≤ 1 s.

Measured 2026-12-05 on the shared 2-core machine (CPU s, best of 3; before: main at fe246a7):

    script        points   before   after   stap -p1   after / stap
    probes         32000    1.316   0.667      0.235           2.8x
    handlers        8000    0.577   0.311      0.251           1.2x
    conditional    16000    5.282   0.483      0.170           2.8x
    quotes (1 MB)      0    0.340   0.212          —
    braces (1 MB)      0    0.469   0.046          —
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, table

N = 32_000


def scripts() -> dict[str, tuple[str, bool]]:
    """name → (text, whether stap -p1 accepts it)."""
    handler = '{ if (@defined($n)) printf("%d /* not a comment */ {\\n", $n) /* } */ else { x = "}" } }'
    cond = '%( CONFIG_X{i} == "y" %? probe kernel.function("g{i}") {{}} %)\n'
    return {
        "probes": ("".join(f'probe kernel.function("f{i}") {{}}\n' for i in range(N)), True),
        "handlers": ("".join(f'probe process("x").function("f{i}") {handler}\n' for i in range(N // 4)), True),
        "conditional": ("".join(cond.format(i=i) for i in range(N // 2)), True),
        "comments": ("/* " * 350_000, False),
        "quotes": ('"' * 1_000_000, False),
        "braces": ("{" * 1_000_000, False),
    }


READ = """
import sys, time
from patchscope.probes import scripts
text = open(sys.argv[1]).read()
best = float("inf")
for _ in range(int(sys.argv[2])):
    scripts._stap_points.cache_clear()  # each run parses its points
    start = time.process_time()
    points = scripts.stp_probe_points(text)
    best = min(best, time.process_time() - start)
print(best, len(points))
"""


def ours(python: str, path: Path, repeat: int) -> tuple[float, int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "python")} if python == sys.executable else None
    out = subprocess.run([python, "-c", READ, str(path), str(repeat)], capture_output=True, text=True, env=env)
    if out.returncode:
        raise SystemExit(out.stderr.strip()[-500:])
    seconds, points = out.stdout.split()
    return float(seconds), int(points)


def stap_cpu(path: Path, stub: str) -> float | None:
    """CPU seconds of ``stap -p1`` (user + system, from the child's rusage), None if refused."""
    p = subprocess.Popen(["stap", "-p1", "-r", stub, str(path)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(p.pid, 0)
    return usage.ru_utime + usage.ru_stime if status == 0 else None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--python", default=sys.executable, help="the interpreter whose patchscope is timed")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    stub = ""
    if shutil.which("stap"):
        stub = subprocess.run(
            ["bash", str(ROOT / "bench/stap_stub.sh")], capture_output=True, text=True, check=True
        ).stdout.strip()
    rows = [("script", "size", "points", "ours (CPU s)", "stap -p1 (CPU s)", "ours / stap")]
    with tempfile.TemporaryDirectory() as tmp:
        for name, (text, stap_reads) in scripts().items():
            path = Path(tmp) / f"{name}.stp"
            path.write_text(text)
            seconds, points = ours(args.python, path, args.repeat)
            theirs = stap_cpu(path, stub) if stub and stap_reads else None
            ratio = f"{seconds / theirs:.1f}x" if theirs else "—"
            shown = f"{theirs:.3f}" if theirs is not None else "—"
            rows.append((name, f"{len(text) / 1e6:.2f} MB", str(points), f"{seconds:.3f}", shown, ratio))
    print(table(rows))


if __name__ == "__main__":
    main()

"""The corpus of real probe points and scripts (tests/data/corpus/README.md), read and judged.

    python bench/corpus.py parse                 # every point: parsed, or the error; per source
    python bench/corpus.py stap                  # our reading of SystemTap's examples vs `stap -p1`
    python bench/corpus.py check VMLINUX [--python PY] [--json OUT]
                                                 # verdict counts and each script's exit status

``stap`` needs SystemTap (Debian's ``systemtap``, ``systemtap-doc`` for the examples) and a stub
build dir (bench/stap_stub.sh -k VMLINUX): stap's pass 1 parses and preprocesses a script and
prints every probe's points, brace groups expanded — the reference for what our reader reads.
``check --python`` runs the judging in another tree's interpreter (``/work/main/.venv/bin/python``:
the figures before a change), in one process for the whole corpus.
"""

from __future__ import annotations

import argparse
import collections
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT / "tests/data/corpus"
STAP_EXAMPLES = [Path("/usr/share/systemtap/examples"), Path("/usr/share/doc/systemtap/examples")]
RELEASE, ARCH = "6.1.0-56-amd64", "x86_64"


def files() -> list[Path]:
    """Every script and point list of the corpus, the SystemTap examples where installed."""
    out = [*sorted(CORPUS.glob("bpftrace*/*.bt")), CORPUS / "points.txt"]
    for d in STAP_EXAMPLES:
        out += sorted(d.rglob("*.stp")) if d.is_dir() else []
    return out


def script_args(path: Path) -> tuple[str, ...]:
    """The arguments the example's own test passes (its ``.meta`` file's ``test_check: stap
    -p4 SCRIPT ARGS``), else as many as the script reads (``$N``, ``@N``), each ``1``."""
    meta = path.with_suffix(".meta")
    if meta.is_file():
        m = re.search(r"^test_check:\s*(.*)$", meta.read_text(errors="replace"), re.M)
        words = shlex.split(m.group(1)) if m else []
        if path.name in words:
            rest = words[words.index(path.name) + 1 :]
            args, skip = [], False
            for w in rest:
                if skip or w in ("-c", "-T", "-x", "-d", "-D", "-I", "-r", "-B", "-S"):
                    skip = not skip
                    continue
                if not w.startswith("-"):
                    args.append(w)
            return tuple(args)
    n = max((int(m) for m in re.findall(r"[$@]([1-9]\d*)\b", path.read_text(errors="replace"))), default=0)
    return ("1",) * n


def cmd_parse(_: argparse.Namespace) -> None:
    from patchscope.probes import scripts
    from patchscope.probes import syntax as ps

    by_source: dict[str, list[int]] = collections.defaultdict(lambda: [0, 0])
    for f in files():
        source = f.parent.name if f.suffix else f.name
        build = scripts.Build(RELEASE, ARCH, None, script_args(f))
        for p in scripts.load_points(str(f), build):
            by_source[source][0] += 1
            if isinstance(p, ps.ProbeSyntaxError):
                by_source[source][1] += 1
                print(f"  {p.origin}: {p.text[:80]!r}: {p.message}")
    total = [sum(v[i] for v in by_source.values()) for i in (0, 1)]
    for source, (n, bad) in sorted(by_source.items()):
        print(f"{source:28} {n:6} points  {bad:4} syntax errors")
    share = 100 * (1 - total[1] / total[0])
    print(f"{'all':28} {total[0]:6} points  {total[1]:4} syntax errors  ({share:.2f} % parsed)")


# -- against stap -p1 ----------------------------------------------------------------------------


def _normal(point: str) -> str:
    """A point as stap -p1 prints it: no spaces outside strings, no ``if (…)`` condition."""
    point = re.split(r"\s*\bif\s*\(", point, maxsplit=1)[0]
    point = re.sub(r'"\s*"', "", point)  # adjacent strings are one
    parts = re.split(r'("(?:\\.|[^"\\])*")', point)
    return "".join(part if i % 2 else re.sub(r"\s+", "", part) for i, part in enumerate(parts))


def _stap_headers(dump: str) -> list[str]:
    from patchscope.probes import syntax as ps

    out = []
    for line in dump.splitlines():
        line = line.removeprefix("%}")  # the dump prints embedded C's end and the next probe on one line
        if line.startswith("probe ") and line.rstrip().endswith("{"):
            header = line[len("probe ") : line.rstrip().rindex("{")]
            if re.match(r"[\w.]+\s*\+?=(?!=)", header):  # an alias definition
                header = header.split("=", 1)[1]
            out += [_normal(p) for p in ps.split_top(header, ",") if p.strip()]
    return out


def _ours(text: str, build: object) -> list[str]:
    """Every point of every probe and alias, arguments put in and brace groups expanded, as
    stap -p1 prints them (aliases unexpanded)."""
    from patchscope.probes import scripts
    from patchscope.probes import syntax as ps

    pre, _ = scripts.preprocess(text, build)  # type: ignore[arg-type]
    out = []
    for probe in scripts.stp_probes(pre):
        for _, written in probe.points:
            filled = scripts._substitute(written, build.args)  # type: ignore[attr-defined]
            try:
                out += [_normal(p.text) for p in ps.stap_points(filled)] if isinstance(filled, str) else [written]
            except ps.ProbeSyntaxError:
                out.append(_normal(written))
    return out


def cmd_stap(args: argparse.Namespace) -> None:
    from patchscope.probes import scripts

    stub = subprocess.run(
        ["bash", str(ROOT / "bench/stap_stub.sh"), "-k", args.vmlinux], capture_output=True, text=True, check=True
    ).stdout.strip()
    config = scripts.read_config(Path(stub) / ".config")
    same = differ = failed = 0
    for f in [f for f in files() if f.suffix == ".stp"]:
        text = f.read_text(errors="replace")
        argv = script_args(f)
        stap = ["stap", "-g", "-p1", "-r", stub, str(f), *argv]
        r = subprocess.run(stap, capture_output=True, text=True, timeout=120)
        if r.returncode:
            failed += 1
            print(f"  stap -p1 refuses {f}: {r.stderr.strip().splitlines()[:1]}")
            continue
        build = scripts.Build(RELEASE, ARCH, config, argv)
        ours = sorted(_ours(text, build))
        theirs = sorted(_stap_headers(r.stdout))
        if ours == theirs:
            same += 1
        else:
            differ += 1
            print(f"  {f}: ours {len(ours)} points, stap's {len(theirs)}")
            for a, b in zip(ours, theirs):
                if a != b:
                    print(f"     ours {a!r}  stap {b!r}")
                    break
    print(f"{same} scripts read point for point as stap -p1 reads them, {differ} differ, {failed} refused by stap -p1")


# -- judged on a vmlinux -------------------------------------------------------------------------

#: Runs inside the interpreter of the tree measured (this one, or main's for the figures before).
JUDGE = r"""
import collections, json, sys
import patchscope
from patchscope.report import check as report
vmlinux, paths = sys.argv[1], sys.argv[2:]
b = patchscope.open(vmlinux)
try:
    from patchscope.probes import scripts
    build = scripts.build_of(b.info)
    load = lambda p, a: scripts.load_points(p, scripts.Build(build.release, build.arch, build.config, a))
except ImportError:  # a tree before probes/scripts.py
    from patchscope.probes import syntax as ps
    load = lambda p, a: ps.load_points(p)
out = {}
for path, args in (json.loads(a) for a in paths):
    try:
        doc = report.document(b, load(path, tuple(args)))
    except Exception as e:  # a batch crash: the whole file is lost
        out[path] = {"crash": f"{type(e).__name__}: {e}"}
        continue
    out[path] = {"verdict": doc["verdict"], "points": [
        {"probe": p["probe"], "verdict": p["verdict"], "errors": p["errors"][:1]} for p in doc["points"]]}
print(json.dumps(out))
"""

EXIT = {"no-code": 0, "safe": 0, "gray": 1, "hazardous": 2, "unresolved": 2}


def cmd_check(args: argparse.Namespace) -> None:
    paths = [json.dumps([str(f), script_args(f)]) for f in files()]
    r = subprocess.run([args.python, "-c", JUDGE, args.vmlinux, *paths], capture_output=True, text=True)
    if r.returncode:
        raise SystemExit(r.stderr[-2000:])
    docs = json.loads(r.stdout)
    if args.json:
        Path(args.json).write_text(json.dumps(docs, indent=1))
    verdicts: collections.Counter[str] = collections.Counter()
    crashes = 0
    why: collections.Counter[str] = collections.Counter()
    for path, doc in docs.items():
        if "crash" in doc:
            crashes += 1
            print(f"  batch crash: {path}: {doc['crash']}")
            continue
        for p in doc["points"]:
            verdicts[p["verdict"]] += 1
            if p["verdict"] == "unresolved":
                why[_reason(p["errors"][0] if p["errors"] else "")] += 1
    scripts_by_exit = collections.Counter(EXIT[d["verdict"]] for d in docs.values() if "verdict" in d)
    print(f"{len(docs)} files, {sum(verdicts.values())} points, {crashes} batch crashes")
    print("verdicts: " + ", ".join(f"{k} {v}" for k, v in sorted(verdicts.items())))
    print("files by exit status: " + ", ".join(f"{k}: {v}" for k, v in sorted(scripts_by_exit.items())))
    print("unresolved, why:")
    for reason, n in why.most_common():
        print(f"  {n:5}  {reason}")


def _reason(error: str) -> str:
    """An error message with its names taken out: the kinds of reason, counted."""
    for pattern, kind in [
        (r"stap stops on tapset alias .*(mismatch|truncated)", "not a tapset alias (a script's own, or none)"),
        (r"stap stops on tapset alias .*not in this binary", "tapset alias: its targets are in modules"),
        (r"stap stops on tapset alias", "tapset alias: a required target does not resolve (stap stops)"),
        (r"tapset alias", "a SystemTap tapset alias, not expanded"),
        (r"matches modules only", 'module("*"): modules only, not the kernel'),
        (r"only as the clone", "named by its source name; the build has only a clone"),
        (r"^syntax error", "syntax error"),
        (r"no tracepoint", "no such tracepoint in this build"),
        (r"no symbol .* closest|renamed or inlined", "not in this build (closest names given)"),
        (r"no symbol", "no such symbol in this build"),
        (r"no such function or line", "no such function or line in this build"),
        (r"perf probe 6.1 fails", "perf 6.1 fails on a .cold split"),
        (r"lazy pattern", "perf's lazy pattern: source text not in the binary"),
        (r"label", ".label: labels not indexed"),
        (r"BTF", "fentry on a suffixed clone"),
    ]:
        if re.search(pattern, error):
            return kind
    return error[:100]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    sub.add_parser("parse")
    s = sub.add_parser("stap")
    s.add_argument("vmlinux")
    c = sub.add_parser("check")
    c.add_argument("vmlinux")
    c.add_argument("--python", default=sys.executable)
    c.add_argument("--json")
    args = p.parse_args()
    {"parse": cmd_parse, "stap": cmd_stap, "check": cmd_check}[args.cmd](args)


if __name__ == "__main__":
    main()

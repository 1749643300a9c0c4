"""``patchscope check BINARY PROBE…``: judge probe points as a tool would place them.

Exit status: 0 when every point is safe, 1 when some are gray, 2 when any is hazardous,
unresolved or malformed — so a CI job can gate a probe script on the build it will run on.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.text import Text

from patchscope.cli import common, pool
from patchscope.index.binary import Binary
from patchscope.index.tree import Tree
from patchscope.probes import judge, route, scripts
from patchscope.probes import syntax as ps
from patchscope.probes.listing import READABLE
from patchscope.report import check as report
from patchscope.rules import refused_arm64

#: The positional list that may continue after options (see ``main.parse``).
TRAILING = "probes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "probes",
        nargs="*",
        metavar="PROBE",
        help="a probe point, e.g. 'kernel.function(\"tcp_sendmsg\").return', 'do_sys_open:12 filename', "
        "'kprobe:vfs_read+0x1a', a whole 'perf probe …' line, or a .stp or .bt script",
    )
    p.add_argument(
        "--probes", dest="probe_file", metavar="FILE", help="probe points, one per line (or a .stp or .bt script)"
    )
    p.add_argument(
        "--arg",
        dest="script_args",
        action="append",
        default=[],
        metavar="ARG",
        help="a script argument ($1, @1 …), in order; repeat for each",
    )
    p.add_argument(
        "-m", "--module", metavar="MODULE", help="perf probe's -m: its points are in this module of the tree"
    )
    p.add_argument(
        "--cpu",
        metavar="MODEL|CAPS",
        help="arm64: the CPU the kernel runs on, a QEMU model (cortex-a57, max) or cpucaps (lse_atomics,pan): "
        "the code its alternatives patch in; without it, an answer that depends on the CPU is gray",
    )


def _is_script(text: str) -> bool:
    return text.endswith((".stp", ".bt"))


def points_of(args: argparse.Namespace, build: scripts.Build) -> list[ps.ProbePoint | ps.ProbeSyntaxError]:
    out: list[ps.ProbePoint | ps.ProbeSyntaxError] = []
    files = [a for a in args.probes if _is_script(a)] + ([args.probe_file] if args.probe_file else [])
    for text in args.probes:
        if not _is_script(text):
            out += scripts.parse_line(text, build)
    for path in files:
        try:
            out.extend(scripts.load_points(path, build))
        except ps.ProbeFileError as e:
            raise common.UserError(str(e)) from None
    if not out:
        raise common.UserError("no probe points given")
    return out


def cpu_of(args: argparse.Namespace, arch: str) -> frozenset[int] | None:
    """The cpucaps ``--cpu`` names, for an arm64 binary (the only architecture whose boot-time
    patching is modelled per CPU)."""
    if args.cpu is None:
        return None
    if arch != "aarch64":
        raise common.UserError(f"--cpu applies to arm64 kernels; this binary is {arch}")
    try:
        return refused_arm64.a64_cpu(args.cpu)
    except ValueError as e:
        raise common.UserError(str(e)) from None


def run(args: argparse.Namespace) -> int:
    if not args.probes and not args.probe_file:
        raise common.UserError("no probe points given")
    tree = common.kernel_tree(args)
    if tree is None:
        b = common.open_binary(args)
        doc = report.document(b, _points(args, b.info), cpu_of(args, b.arch))
    else:
        info = tree.info()
        cpu_of(args, info["arch"])  # a wrong --cpu is one line before any worker starts
        doc = _tree_document(args, tree, _points(args, info))

    def show(con: Any) -> None:
        for rec in doc["points"]:
            render(con, rec)
        con.print(Text.assemble("verdict: ", (doc["verdict"], "bold")))

    common.emit(args, doc, show)
    return max(judge.EXIT[doc["verdict"]], 2 if doc.get("failed") else 0)


def _points(args: argparse.Namespace, info: dict[str, str]) -> list[ps.ProbePoint | ps.ProbeSyntaxError]:
    """The points given, read against the build (its release, architecture and config) and
    put in perf's ``-m`` module when one is named."""
    points = points_of(args, scripts.build_of(info, tuple(args.script_args)))
    return [p if isinstance(p, ps.ProbeSyntaxError) else route.with_module(p, args.module) for p in points]


def _tree_document(
    args: argparse.Namespace, tree: Tree, points: list[ps.ProbePoint | ps.ProbeSyntaxError]
) -> dict[str, Any]:
    """Each point routed to the binaries of the tree it is in, judged there by the pool, and
    its records merged back: one record per point, as for one binary."""
    placed = [(i, p) for i, p in enumerate(points) if isinstance(p, ps.ProbePoint)]
    routes = dict(zip((i for i, _ in placed), route.routes(tree, [p for _, p in placed])))
    args.routed = {}
    for i, r in routes.items():
        for name in r.binaries:
            args.routed.setdefault(name, []).append(i)
    args.points = {i: r.point for i, r in routes.items()}  # what a worker needs: no syntax error
    results = pool.run(args, tree, judge_routed, names=list(args.routed))
    parts = {p.name: p for p in results.parts}
    records = []
    for i, p in enumerate(points):
        if isinstance(p, ps.ProbeSyntaxError):
            records.append(report.document_error(p))
            continue
        r = routes[i]
        got = [(n, parts[n]) for n in r.binaries]
        done = [(n, part.doc["points"][args.routed[n].index(i)]) for n, part in got if part.doc is not None]
        if done:
            records.append(report.merged(p, done))
        else:
            records.append(report.unresolved(p, r.error or "; ".join(part.error or "" for _, part in got[:3])))
        records[-1]["notes"] = [*records[-1]["notes"], *r.notes]
    return report.tree_document(tree, records, results.failures())


def judge_routed(args: argparse.Namespace, name: str, b: Binary) -> dict[str, Any]:
    """In a worker: the points routed to binary ``name``, judged there."""
    return report.document(b, [args.points[i] for i in args.routed[name]], cpu_of(args, b.arch))


def render(con: Any, r: dict[str, Any]) -> None:
    origin = f"  ({r['origin']})" if r.get("origin") else ""
    con.print(Text.assemble((r["probe"], "bold"), origin, "  ", (r["verdict"], "bold")))
    # each caret (two lines) over its error: the last errors are the ones with carets
    carets = r["pointer"].split("\n") if "pointer" in r else []
    pairs = [carets[i : i + 2] for i in range(0, len(carets), 2)]
    plain = r["errors"][: len(r["errors"]) - len(pairs)] if pairs else r["errors"]
    for e in plain:
        con.print(Text(f"  error: {e}"), style="red")
    for pair, e in zip(pairs, r["errors"][len(plain) :]):
        con.print(Text("  " + "\n  ".join(pair)), style="red")
        con.print(Text(f"  error: {e}"), style="red")
    for n in r["notes"]:
        con.print(Text(f"  note: {n}"), style="dim")
    for f in r["findings"]:
        con.print(Text.assemble("  ", (f"[{f['band']}] {f['code']}", "bold"), f": {f['message']}"))
    for lnd in r["landings"]:
        binary = f"{lnd['binary']}:" if "binary" in lnd else ""
        con.print(Text(f"  {binary}{lnd['address']}  {lnd['in'] or '?'}  {lnd['kind']} ({lnd['how']})  {lnd['band']}"))
        for f in lnd["reasons"]:
            con.print(Text.assemble("      ", (f"[{f['band']}] {f['code']}", "bold"), f": {f['message']}"))
            if f["evidence"]:
                con.print(Text("          " + json.dumps(f["evidence"], separators=(", ", ": "))[:400]), style="dim")
        for w in lnd.get("writes", []):
            con.print(Text(f"      write {w['write']}  {w['verdict']}: {w['why']}"))
        in_scope = [v for v in lnd["variables"] if v["state"] != "out-of-scope"]  # all of them in the JSON
        if in_scope:
            con.print(Text("      variables: " + "  ".join(_variable(v) for v in in_scope)), style="dim")
    con.print()


def _variable(v: dict[str, Any]) -> str:
    # bound only in a later location view: no probe by address reads it (as `list -v` hides it)
    where = "view only: unavailable" if v["view_only"] else ",".join(v["locations"]) or v["state"]
    perf = v.get("perf", "")
    if perf == "not-listed" and (v["view_only"] or v["state"] not in READABLE):
        perf = ""  # no one reads it: nothing to add
    return f"${v['name']}:{v['type']} ({where}{_PERF_SAYS.get(perf, '')})"


#: What a perf point's variable adds to its location when perf probe does not read it as it is.
_PERF_SAYS = {
    "reads-memory-instead": "; perf reads memory there instead",
    "reads-first-piece": "; perf reads the first piece only",
    "reads-later": "; perf reads its first later location",
    "not-listed": "; perf cannot read it",
}

"""``patchscope check BINARY PROBE…``: judge probe points as a tool would place them.

Exit status: 0 when every point is safe, 1 when some are gray, 2 when any is hazardous,
unresolved or malformed — so a CI job can gate a probe script on the build it will run on.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.text import Text

from patchscope.cli import common
from patchscope.probes import judge
from patchscope.probes import syntax as ps
from patchscope.report import check as report

#: The positional list that may continue after options (see ``main.parse``).
TRAILING = "probes"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "probes",
        nargs="*",
        metavar="PROBE",
        help="a probe point, e.g. 'kernel.function(\"tcp_sendmsg\").return', 'do_sys_open:12 filename', "
        "'kprobe:vfs_read+0x1a', or a .stp file",
    )
    p.add_argument("--probes", dest="probe_file", metavar="FILE", help="probe points, one per line (or a .stp file)")


def points_of(args: argparse.Namespace) -> list[ps.ProbePoint | ps.ProbeSyntaxError]:
    out: list[ps.ProbePoint | ps.ProbeSyntaxError] = []
    files = [a for a in args.probes if a.endswith(".stp")] + ([args.probe_file] if args.probe_file else [])
    for text in args.probes:
        if not text.endswith(".stp"):
            try:
                out.append(ps.parse(text))
            except ps.ProbeSyntaxError as e:
                out.append(e)
    for path in files:
        try:
            out.extend(ps.load_points(path))
        except ps.ProbeFileError as e:
            raise common.UserError(str(e)) from None
    if not out:
        raise common.UserError("no probe points given")
    return out


def run(args: argparse.Namespace) -> int:
    points = points_of(args)
    b = common.open_binary(args)
    doc = report.document(b, points)

    def show(con: Any) -> None:
        for rec in doc["points"]:
            render(con, rec)
        con.print(Text.assemble("verdict: ", (doc["verdict"], "bold")))

    common.emit(args, doc, show)
    return judge.EXIT[doc["verdict"]]


def render(con: Any, r: dict[str, Any]) -> None:
    origin = f"  ({r['origin']})" if r.get("origin") else ""
    con.print(Text.assemble((r["probe"], "bold"), origin, "  ", (r["verdict"], "bold")))
    if "pointer" in r:
        con.print(Text("  " + r["pointer"].replace("\n", "\n  ")), style="red")
    for e in r["errors"]:
        con.print(Text(f"  error: {e}"), style="red")
    for n in r["notes"]:
        con.print(Text(f"  note: {n}"), style="dim")
    for f in r["findings"]:
        con.print(Text.assemble("  ", (f"[{f['band']}] {f['code']}", "bold"), f": {f['message']}"))
    for lnd in r["landings"]:
        con.print(Text(f"  {lnd['address']}  {lnd['in'] or '?'}  {lnd['kind']} ({lnd['how']})  {lnd['band']}"))
        for f in lnd["reasons"]:
            con.print(Text.assemble("      ", (f"[{f['band']}] {f['code']}", "bold"), f": {f['message']}"))
            if f["evidence"]:
                con.print(Text("          " + json.dumps(f["evidence"], separators=(", ", ": "))[:400]), style="dim")
        in_scope = [v for v in lnd["variables"] if v["state"] != "out-of-scope"]  # all of them in the JSON
        if in_scope:
            con.print(Text("      variables: " + "  ".join(_variable(v) for v in in_scope)), style="dim")
    con.print()


def _variable(v: dict[str, Any]) -> str:
    where = ",".join(v["locations"]) or v["state"]
    return f"${v['name']}:{v['type']} ({where})"

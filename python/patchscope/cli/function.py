"""``patchscope function BINARY NAME``: one source function, instance by instance, with its findings."""

from __future__ import annotations

import argparse
import json
from typing import Any

from rich.text import Text

from patchscope.cli import common
from patchscope.report import function as report


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("name", help="source function name (a shell glob matches several)")


def run(args: argparse.Namespace) -> int:
    b = common.open_binary(args)
    fids = list(b.find_functions(args.name))
    if not fids:
        common.warn(f"no source function named {args.name!r}")
        return 1
    doc = report.document(b, fids)

    def show(con: Any) -> None:
        for rec in doc["functions"]:
            render(con, rec)

    common.emit(args, doc, show)
    return 0


def render(con: Any, r: dict[str, Any]) -> None:
    decl = f"{r['decl_file']}:{r['decl_line']}" if r["decl_file"] else "no DWARF"
    con.print(Text.assemble((r["name"], "bold"), f"  {decl}  {r['status']}  band: ", (r["band"], "bold")))
    for i in r["instances"]:
        con.print(
            f"  instance {i['symbol'] or '(no symbol)'}  entry {i['entry_pc']}  {i['size']} bytes",
            markup=False,
        )
        for p in i["ranges"]:
            con.print(f"    {p['low']}-{p['high']}  {p['symbol'] or ''}", markup=False)
        con.print(f"    probes enter at {i['probe_entry']} ({i['probe_entry_is']})", markup=False)
        con.print(f"    returns: {', '.join(i['returns']) or 'none'}", markup=False)
        for t in i["tail_exits"]:
            con.print(f"    tail-call exit at {t['at']} to {t['to']}", markup=False)
    sites = r["inline_sites"]
    if sites["count"]:
        con.print(f"  inline sites: {sites['count']}", markup=False)
        for s in sites["sites"]:
            con.print(f"    {s['entry_pc']} in {s['caller']} ({s['call_file']}:{s['call_line']})", markup=False)
    for f in r["findings"]:
        con.print(Text.assemble("  ", (f"[{f['band']}] {f['code']}", "bold"), f": {f['message']}"))
        con.print(Text("      " + json.dumps(f["evidence"], separators=(", ", ": "))), style="dim")
    con.print()

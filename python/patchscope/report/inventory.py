"""The function inventory as records: what ``patchscope functions`` prints and its JSON.

Schema ``patchscope.functions`` version 1 is documented in ``docs/schema/functions-1.json``.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

import pyarrow as pa

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.rules.finding import hexa

SCHEMA = "patchscope.functions"
#: Above this many functions, whole tables are converted at once.
BULK = 500
VERSION = 1

#: `isra.0.cold` → [`isra.0`, `cold`]: a suffix kind with its optional number.
_SUFFIX = re.compile(r"(llvm\.[0-9a-f]+|[A-Za-z_]+(?:\.\d+)?|\d+)")


def suffix_chain(suffix: str) -> list[str]:
    return _SUFFIX.findall(suffix) if suffix else []


class InventoryView:
    """One binary's inventory as records, by function id. The rows come from the query view
    (:class:`~patchscope.index.context.Context`); this only decides how to read them: row by
    row, or, with ``bulk``, whole tables converted to Python once."""

    def __init__(self, binary: Binary, bulk: bool = False) -> None:
        self.cx = Context(binary)
        self.bulk = bulk

    @cached_property
    def _all_functions(self) -> list[dict[str, Any]]:
        return self.cx.functions.to_pylist()

    @cached_property
    def _all_inst(self) -> list[dict[str, Any]]:
        return self.cx.inst.to_pylist()

    def _row(self, table: str, row: int) -> dict[str, Any]:
        if self.bulk:
            return (self._all_functions if table == "functions" else self._all_inst)[row]
        t = {"functions": self.cx.functions, "inst": self.cx.inst, "sites": self.cx.sites}[table]
        return t.slice(row, 1).to_pylist()[0]

    def string(self, index: int) -> str:
        """A pooled string: from the whole pool converted once in bulk, else alone."""
        return self.cx.string(index) if self.bulk else self.cx.pool[int(index)].as_py()

    def record(self, fid: int, verbose: bool = True) -> dict[str, Any]:
        f = self._row("functions", fid)
        rec: dict[str, Any] = {
            "name": f["name"],
            "decl_file": f["decl_file"] or None,
            "decl_line": f["decl_line"] or None,
            "external": f["external"],
            "status": f["status"],
            "instances": [self._instance(r) for r in self.instance_rows(fid)],
        }
        site_rows = self.cx.sites_of(fid)
        rec["inline_sites"] = {
            "count": len(site_rows),
            "sites": [self._site(int(r)) for r in site_rows] if verbose else None,
        }
        return rec

    def instance_rows(self, fid: int) -> list[int]:
        """Rows of a function's instances, in the order ``record`` lists them."""
        return self.cx.instances_of.get(fid, [])

    def _instance(self, row: int) -> dict[str, Any]:
        r = self._row("inst", row)
        sym = self.cx.sym
        syms = r["symbols"]
        names = [self.string(sym["name"][s]) for s in syms]
        parts = []
        for lo, hi in r["ranges"]:
            at = [n for n, s in zip(names, syms) if sym["address"][s] == lo]
            parts.append({"low": hexa(lo), "high": hexa(hi), "symbol": at[0] if at else None})
        return {
            "symbol": names[0] if names else None,
            "symbols": names,
            "suffixes": suffix_chain(self.string(sym["suffix"][syms[0]])) if syms else [],
            "die": hexa(r["die"]) if r["die"] != _core.NO_DIE else None,
            "entry_pc": hexa(r["entry_pc"]),
            "size": r["size"],
            "noreturn": r["noreturn"],
            "ranges": parts,
        }

    @cached_property
    def _all_sites(self) -> list[dict[str, Any]]:
        """Every site's record, built column by column: a kernel has hundreds of thousands."""
        cx = self.cx
        sites = cx.sites
        cols = [sites.column(c).to_pylist() for c in ("entry_pc", "depth", "call_file", "call_line", "die")]
        callers = cx.site_caller_name.tolist()
        return [
            {
                "entry_pc": f"{pc:#x}",
                "caller": self.string(caller) or "?",
                "depth": depth,
                "call_file": file or None,
                "call_line": line or None,
                "die": f"{die:#x}",
            }
            for pc, depth, file, line, die, caller in zip(*cols, callers)
        ]

    def _site(self, row: int) -> dict[str, Any]:
        if self.bulk:
            return self._all_sites[row]
        s = self._row("sites", row)
        return {
            "entry_pc": hexa(s["entry_pc"]),
            "caller": self.string(self.cx.site_caller_name[row]) or "?",
            "depth": s["depth"],
            "call_file": s["call_file"] or None,
            "call_line": s["call_line"] or None,
            "die": hexa(s["die"]),
        }


def summary(binary: Binary) -> dict[str, int]:
    status = binary.inventory.functions.column("status")
    counts = pa.compute.value_counts(status).to_pylist()
    return {c["values"]: c["counts"] for c in counts}


def document(binary: Binary, pattern: str | None, verbose: bool) -> dict[str, Any]:
    fids = list(binary.find_functions(pattern))
    view = InventoryView(binary, bulk=len(fids) > BULK)
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binary": {k: binary.info[k] for k in ("path", "arch", "kind", "build_id", "dwarf", "debug_file")},
        "pattern": pattern,
        "summary": summary(binary),
        "functions": [view.record(fid, verbose) for fid in fids],
    }

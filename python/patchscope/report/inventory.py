"""The function inventory as records: what ``patchscope functions`` prints and its JSON.

Schema ``patchscope.functions`` version 1 is documented in ``docs/schema/functions-1.json``.
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any

import numpy as np
import pyarrow as pa

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context

SCHEMA = "patchscope.functions"
#: Above this many functions, whole tables are converted at once.
BULK = 500
VERSION = 1

#: `isra.0.cold` → [`isra.0`, `cold`]: a suffix kind with its optional number.
_SUFFIX = re.compile(r"(llvm\.[0-9a-f]+|[A-Za-z_]+(?:\.\d+)?|\d+)")


def suffix_chain(suffix: str) -> list[str]:
    return _SUFFIX.findall(suffix) if suffix else []


def hexa(v: int) -> str:
    return f"{v:#x}"


class InventoryView:
    """Random access to one binary's inventory by function id."""

    def __init__(self, binary: Binary, bulk: bool = False) -> None:
        """``bulk``: about to read most of the binary, so convert whole tables to Python once
        instead of row by row."""
        self.b = binary
        self.bulk = bulk
        inv = binary.inventory
        self.functions = inv.functions
        self.inst = inv.instances
        self.sites = inv.inline_sites
        self.inst_fid = self.inst.column("fid").to_numpy()
        self.site_fid = self.sites.column("fid").to_numpy()
        self.inst_order = np.argsort(self.inst_fid, kind="stable")
        self.site_order = np.argsort(self.site_fid, kind="stable")
        cx = Context(binary)
        self.pool = cx.pool
        self.sym_name, self.sym_suffix, self.sym_address = (cx.sym[c] for c in ("name", "suffix", "address"))
        inst_die = self.inst.column("die").to_numpy()
        self.die_order = np.argsort(inst_die, kind="stable")
        self.inst_die_sorted = inst_die[self.die_order]
        self.inst_fid_sorted = self.inst_fid[self.inst_order]
        self.site_fid_sorted = self.site_fid[self.site_order]

    def _rows(self, order: np.ndarray, sorted_keys: np.ndarray, fid: int) -> np.ndarray:
        a, b = np.searchsorted(sorted_keys, fid, "left"), np.searchsorted(sorted_keys, fid, "right")
        return order[a:b]

    @cached_property
    def _all(self) -> dict[str, list[dict[str, Any]]]:
        return {"functions": self.functions.to_pylist(), "inst": self.inst.to_pylist(), "sites": self.sites.to_pylist()}

    @cached_property
    def _strings(self) -> list[str]:
        return self.pool.to_pylist()

    def _row(self, table: str, row: int) -> dict[str, Any]:
        if self.bulk:
            return self._all[table][row]
        t = {"functions": self.functions, "inst": self.inst, "sites": self.sites}[table]
        return t.slice(row, 1).to_pylist()[0]

    def instance_name(self, row: int) -> str:
        syms = self._row("inst", row)["symbols"]
        if syms:
            return self.string(self.sym_name[syms[0]])
        return self._row("functions", int(self.inst_fid[row]))["name"]

    def caller_of(self, function_die: int) -> str:
        i = np.searchsorted(self.inst_die_sorted, np.uint64(function_die))
        if i < len(self.inst_die_sorted) and self.inst_die_sorted[i] == function_die:
            return self.instance_name(int(self.die_order[i]))
        return "?"

    def record(self, fid: int, verbose: bool = True) -> dict[str, Any]:
        f = self._row("functions", fid)
        rec: dict[str, Any] = {
            "name": f["name"],
            "decl_file": f["decl_file"] or None,
            "decl_line": f["decl_line"] or None,
            "external": f["external"],
            "status": f["status"],
            "instances": [self._instance(int(r)) for r in self.instance_rows(fid)],
        }
        site_rows = self._rows(self.site_order, self.site_fid_sorted, fid)
        rec["inline_sites"] = {
            "count": len(site_rows),
            "sites": [self._site(int(r)) for r in site_rows] if verbose else None,
        }
        return rec

    def instance_rows(self, fid: int) -> np.ndarray:
        """Rows of a function's instances, in the order ``record`` lists them."""
        return self._rows(self.inst_order, self.inst_fid_sorted, fid)

    def string(self, index: int) -> str:
        return self._strings[int(index)] if self.bulk else self.pool[int(index)].as_py()

    def _instance(self, row: int) -> dict[str, Any]:
        r = self._row("inst", row)
        syms = r["symbols"]
        names = [self.string(self.sym_name[s]) for s in syms]
        parts = []
        for lo, hi in r["ranges"]:
            at = [n for n, s in zip(names, syms) if self.sym_address[s] == lo]
            parts.append({"low": hexa(lo), "high": hexa(hi), "symbol": at[0] if at else None})
        return {
            "symbol": names[0] if names else None,
            "symbols": names,
            "suffixes": suffix_chain(self.string(self.sym_suffix[syms[0]])) if syms else [],
            "die": hexa(r["die"]) if r["die"] != _core.NO_DIE else None,
            "entry_pc": hexa(r["entry_pc"]),
            "size": r["size"],
            "noreturn": r["noreturn"],
            "ranges": parts,
        }

    def _site(self, row: int) -> dict[str, Any]:
        s = self._row("sites", row)
        return {
            "entry_pc": hexa(s["entry_pc"]),
            "caller": self.caller_of(s["function"]),
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

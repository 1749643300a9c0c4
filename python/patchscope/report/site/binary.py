"""The site of one binary: the overview (``scan``'s summary, ``stats``'s figures), the table
of every source function, and per function its ``function`` record with the disassembly of
each of its instances."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.compute as pc

from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.index.functions import range_bounds
from patchscope.index.tables import list_offsets
from patchscope.report import findings as scan
from patchscope.report import function
from patchscope.report import stats as experiments
from patchscope.report.site import CHUNK, encode, write_packed, write_script
from patchscope.rules import findings

#: One hex digit per instruction size: every ISA patchscope decodes has instructions of ≤ 15 bytes.
_HEX = np.frombuffer(b"0123456789abcdef", np.uint8)
IDENTITY = ("path", "arch", "kind", "build_id", "dwarf", "debug_file", "kernel_release", "kernel_banner")


def write(b: Binary, out: Path, pages: list[str], figures: bool = True) -> dict[str, Any]:
    """Writes the data files of ``b`` into ``out/data`` (and its figures into ``out/figures``);
    returns the overview. ``pages``: the optional pages the site has (``probes``, ``diff``)."""
    doc = overview(b, out if figures else None)
    doc["pages"] = pages
    write_script(out / "data" / "overview.js", "overview", doc)
    write_script(out / "data" / "functions.js", "functions", table(b))
    with ThreadPoolExecutor(max_workers=1) as pool:
        written = [
            pool.submit(write_packed, out / "data" / "f" / f"{n}.js", f"chunk{n}", encode(chunk))
            for n, chunk in enumerate(chunks(b))
        ]
        for w in written:
            w.result()
    return doc


def overview(b: Binary, out: Path | None) -> dict[str, Any]:
    """``scan``'s summary and codes, the build's identity, and the ``stats`` experiments as SVG
    figures (paths relative to the site) when ``out`` is given."""
    doc = scan.document(b, None, None, with_findings=False, summary_only=True)
    doc["binary"] = {k: b.info.get(k) or None for k in IDENTITY}
    doc["chunk"] = CHUNK
    if out is not None:
        from patchscope.report.stats_plots import write_plots

        stats = experiments.document([b])
        plots = write_plots(stats, out / "figures", "svg")
        doc["figures"] = {k: str(Path(v).relative_to(out)) for k, v in plots.items()}
    return doc


def table(b: Binary) -> dict[str, Any]:
    """Every source function as columns, by function id: the rows of the functions table."""
    f = findings(b)
    cx = Context(b)
    fn = b.inventory.functions
    files, file_of = np.unique(
        np.asarray([x or "" for x in fn.column("decl_file").to_pylist()], dtype=object), return_inverse=True
    )
    codes = sorted({c for cs in f.bands.column("codes").to_pylist() for c in cs})
    code_ix = {c: i for i, c in enumerate(codes)}
    statuses = sorted(set(fn.column("status").to_pylist()))
    bands = ["safe", "gray", "hazardous"]
    n = fn.num_rows
    instances = np.bincount(cx.inst_fid[cx.inst_fid >= 0], minlength=n)[:n]
    sites = np.bincount(cx.site_fid[cx.site_fid >= 0], minlength=n)[:n]
    return {
        "files": files.tolist(),
        "codes": codes,
        "statuses": statuses,
        "bands": bands,
        "name": fn.column("name").to_pylist(),
        "file": file_of.tolist(),
        "line": [x or 0 for x in fn.column("decl_line").to_pylist()],
        "band": [bands.index(x) for x in f.bands.column("band").to_pylist()],
        "code": [[code_ix[c] for c in cs] for cs in f.bands.column("codes").to_pylist()],
        "status": [statuses.index(x) for x in fn.column("status").to_pylist()],
        "instances": instances.tolist(),
        "sites": sites.tolist(),
    }


def chunks(b: Binary) -> list[dict[str, Any]]:
    """The ``function`` records of every function, :data:`CHUNK` by :data:`CHUNK` in id order,
    each instance with the disassembly of each of its ranges (``code``)."""
    n = b.inventory.functions.num_rows
    records = function.records(b, list(range(n)))
    code = Disassembly(Context(b))
    for fid, rec in enumerate(records):
        for inst, row in zip(rec["instances"], code.cx.instances_of.get(fid, [])):
            inst["code"] = code.of_instance(int(row))
    return [{str(i): records[i] for i in range(lo, min(lo + CHUNK, n))} for lo in range(0, n, CHUNK)]


class Disassembly:
    """The instructions of every range of every instance, decoded in one core call."""

    def __init__(self, cx: Context) -> None:
        self.cx = cx
        ranges = cx.inst.column("ranges")
        self.first_range, _ = list_offsets(ranges)
        bounds = range_bounds(ranges)
        self.lows = bounds[:, 0]
        insns, strings = cx.instructions_of(bounds[:, 0], bounds[:, 1])
        self.starts = np.searchsorted(insns.column("range").to_numpy(), np.arange(len(bounds) + 1))
        self.sizes = _HEX[np.minimum(insns.column("size").to_numpy(), 15)].tobytes().decode()
        self.text = [strings[i] for i in pc.cast(insns.column("text"), "int64").to_numpy().tolist()]

    def of_instance(self, row: int) -> list[dict[str, Any]]:
        """Per range of the instance: its low address, the size of each instruction (one hex
        digit each, addresses follow from them) and their texts, a line each (one JSON string
        encodes much faster than millions)."""
        out = []
        for r in range(int(self.first_range[row]), int(self.first_range[row + 1])):
            lo, hi = int(self.starts[r]), int(self.starts[r + 1])
            text = "\n".join(self.text[lo:hi])
            out.append({"low": hex(int(self.lows[r])), "sizes": self.sizes[lo:hi], "text": text})
        return out

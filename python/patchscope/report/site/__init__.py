"""``patchscope report``: a static site of one binary (or of a ``check``, or of two builds)
that opens from ``file://`` with no server and no network.

Everything the pages show comes from the other commands' documents (:mod:`..findings`,
:mod:`..function`, :mod:`..check`, :mod:`..diff`, :mod:`..stats`); this module only lays them
out as files. Browsers refuse ``fetch`` of ``file://`` URLs, so data travels as scripts that
call ``PS.load(name, value)``; per-function data (records and disassembly, tens of MB for a
kernel) goes into chunks of :data:`CHUNK` functions, gzip-compressed and base64-encoded, which
the page inflates with the browser's own ``DecompressionStream``. The pages build their DOM with
``textContent`` only: a name from the binary is never parsed as HTML.
"""

from __future__ import annotations

import base64
import gzip
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from patchscope.index.binary import Binary
    from patchscope.probes import syntax as ps

#: Functions per data chunk: one chunk is what a function page loads.
CHUNK = 256
#: The marker that tells a folder is a report this command may replace.
MARKER = ".patchscope-report"
ASSETS = ("index.html", "functions.html", "function.html", "site.css", "site.js")


def write_script(path: Path, name: str, value: Any) -> None:
    """A data file the pages load with a ``<script>`` element (``fetch`` is refused from ``file://``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    # "</" escaped (JSON allows "\/") keeps the file data even if a page ever inlines it
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace("</", "<\\/")
    path.write_text(f"PS.load({json.dumps(name)},{text});\n", encoding="utf-8")


def encode(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def write_packed(path: Path, name: str, raw: bytes) -> None:
    """A data file whose value is the gzip-compressed JSON ``raw`` in base64
    (``PS.loadPacked``). Level 1: a kernel's chunks are tens of MB of JSON, and level 6 triples
    the time for a fifth less. zlib releases the GIL: a thread compresses while the next chunk
    is encoded."""
    packed = base64.b64encode(gzip.compress(raw, compresslevel=1, mtime=0)).decode()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"PS.loadPacked({json.dumps(name)},{json.dumps(packed)});\n", encoding="ascii")


def copy_assets(out: Path, pages: list[str]) -> None:
    """The pages, their CSS and JS (package data, nothing fetched), and the optional ``pages``
    the site has data for."""
    root = resources.files(__name__) / "assets"
    for name in [*ASSETS, *(f"{p}.html" for p in pages)]:
        with resources.as_file(root / name) as src:
            shutil.copyfile(src, out / name)
    (out / MARKER).write_text("written by patchscope report; the whole folder is replaced on the next run\n")


def write(
    out: Path,
    b: Binary,
    points: list[ps.ProbePoint | ps.ProbeSyntaxError] | None = None,
    old: Binary | None = None,
    figures: bool = True,
) -> None:
    """The whole site into the folder ``out``: ``b``'s pages, the check of ``points``, the diff
    of ``old`` → ``b``."""
    from patchscope.report.site import binary, changes

    pages = []
    if points is not None:
        from patchscope.report import check

        write_script(out / "data" / "probes.js", "probes", check.document(b, points))
        pages.append("probes")
    if old is not None:
        write_script(out / "data" / "diff.js", "diff", changes.document(old, b))
        pages.append("diff")
    binary.write(b, out, pages, figures)
    copy_assets(out, pages)

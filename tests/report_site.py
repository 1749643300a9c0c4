"""Reading a report's data files back as the pages do: ``PS.load(name, JSON)`` and
``PS.loadPacked(name, base64 of gzip of JSON)``."""

from __future__ import annotations

import base64
import gzip
import json
import re
from pathlib import Path
from typing import Any

_CALL = re.compile(r'^PS\.(load|loadPacked)\("([^"]+)",(.*)\);\n$', re.S)


def data(path: Path) -> Any:
    m = _CALL.match(path.read_text())
    assert m, path
    value = json.loads(m.group(3))
    return json.loads(gzip.decompress(base64.b64decode(value))) if m.group(1) == "loadPacked" else value


def function_record(site: Path, name: str) -> dict[str, Any]:
    table = data(site / "data/functions.js")
    fid = table["name"].index(name)
    chunk = fid // data(site / "data/overview.js")["chunk"]
    return data(site / f"data/f/{chunk}.js")[str(fid)]

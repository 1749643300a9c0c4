"""``patchscope cache --list`` as text: one line per entry, least recently used first."""

from __future__ import annotations

import time

from patchscope.index.cache import Entry


def size(n: int) -> str:
    """``186.0M``: bytes in the largest unit (up to G) that keeps the number under 1024."""
    value, unit = float(n), "B"
    for u in "KMG":
        if value < 1024:
            break
        value, unit = value / 1024, u
    return f"{n}B" if unit == "B" else f"{value:.1f}{unit}"


def listing(entries: list[Entry]) -> list[str]:
    """Each entry: last use, size, build-id and the binary it was indexed from; then the total."""
    rows = [
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e.last_used))}  {size(e.size):>7}  "
        f"{e.build_id or '-':<40}  {e.path or '(unknown: damaged or older entry)'}"
        for e in entries
    ]
    return [*rows, f"{len(entries)} entries, {size(sum(e.size for e in entries))}"]

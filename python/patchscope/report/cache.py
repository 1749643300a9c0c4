"""``patchscope cache --list`` as text: one line per entry, least recently used first."""

from __future__ import annotations

import time

from patchscope.index.cache import Entry


def size(n: int) -> str:
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError("unreachable")


def listing(entries: list[Entry]) -> list[str]:
    """Each entry: last use, size, build-id and the binary it was indexed from; then the total."""
    rows = [
        f"{time.strftime('%Y-%m-%d %H:%M', time.localtime(e.last_used))}  {size(e.size):>7}  "
        f"{e.build_id or '-':<40}  {e.path or '(unknown: damaged or older entry)'}"
        for e in entries
    ]
    return [*rows, f"{len(entries)} entries, {size(sum(e.size for e in entries))}"]

"""Names: several source functions behind one name."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator

from patchscope.index.context import Context
from patchscope.rules.finding import Band, Finding, code

NAME_COLLISION = code(
    "name-collision",
    Band.GRAY,
    "several distinct source functions share the name: a probe by name is ambiguous",
)


def name_collision(cx: Context) -> Iterator[Finding]:
    by_name: dict[str, list[int]] = defaultdict(list)
    for fid, (name, status) in enumerate(zip(cx.fn_name, cx.fn_status.tolist())):
        if status != "symbol-only":
            by_name[name].append(fid)
    for name, fids in by_name.items():
        if len(fids) < 2:
            continue
        where = [cx.function_label(f) for f in fids]
        for fid in fids:
            yield Finding(
                NAME_COLLISION,
                fid,
                f"{len(fids)} source functions are named {name}: {', '.join(where)}",
                {"functions": where},
            )


RULES = [name_collision]

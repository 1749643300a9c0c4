"""patchscope: where is it safe to probe or live-patch a compiled binary?

>>> import patchscope
>>> b = patchscope.open("vmlinux")
>>> b.inventory.functions          # one row per source function
"""

from __future__ import annotations

# Not typing's: the program imports this package before it can take Ctrl-C (cli.program),
# and typing alone costs 8 ms of that window.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from patchscope.index.binary import Binary, BinaryError, open

__all__ = ["Binary", "BinaryError", "open"]


def __getattr__(name: str) -> Any:
    """The index on first use, not on ``import patchscope``: ``patchscope --help`` and the
    probe-point parser need neither numpy, Arrow nor the core."""
    if name in __all__:
        from patchscope.index import binary

        return getattr(binary, name)
    raise AttributeError(f"module 'patchscope' has no attribute {name!r}")

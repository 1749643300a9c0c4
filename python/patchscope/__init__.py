"""patchscope: where is it safe to probe or live-patch a compiled binary?

>>> import patchscope
>>> b = patchscope.open("vmlinux")
>>> b.inventory.functions          # one row per source function
"""

from patchscope.index.binary import Binary, BinaryError, open

__all__ = ["Binary", "BinaryError", "open"]

"""One clone shape (``foo.constprop.0.isra.0`` → ``foo.constprop.isra``), the core's: the
fingerprints name symbols by it, and the diff and stats reports ask the core for it."""

from __future__ import annotations

import pytest

from patchscope import _core
from patchscope.index.builds import clone_shape
from patchscope.report.stats import suffix_shape

SHAPES = [
    ("foo", "foo"),
    ("foo.constprop.0.isra.0", "foo.constprop.isra"),
    ("foo.isra.3.cold", "foo.isra.cold"),
    ("drain.part.0.cold", "drain.part.cold"),
    ("foo.cold", "foo.cold"),
    ("bar.llvm.1234abcd", "bar"),
    ("bar.llvm.123", "bar"),
    ("bar.llvm.123.cold", "bar.cold"),
    ("__already_done.12", "__already_done"),
    ("__UNIQUE_ID_ddebug312", "__UNIQUE_ID_ddebug"),
    ("__UNIQUE_ID_ddebug312.cold", "__UNIQUE_ID_ddebug.cold"),
    ("__UNIQUE_ID___addressable_foo42", "__UNIQUE_ID___addressable_foo"),
    (".foo.part.1", ".foo.part"),  # a ppc64 ELFv1 dot symbol keeps its dot
    ("0000002a.plt_call.puts", ".plt_call.puts"),  # a ppc64 linker stub: no input section number
    ("foo.lto_priv.0", "foo.lto_priv"),
]


@pytest.mark.parametrize(("name", "shape"), SHAPES)
def test_clone_shape(name: str, shape: str) -> None:
    assert _core.clone_shape(name) == shape
    assert clone_shape(name) == shape


def test_no_symbol() -> None:
    assert clone_shape(None) == clone_shape("") == "(no symbol)"


@pytest.mark.parametrize(
    ("suffix", "shape"),
    [("constprop.0.isra.0", "constprop.isra"), ("isra.0", "isra"), ("part.3.cold", "part.cold"), ("0", "original")],
)
def test_suffix_shape(suffix: str, shape: str) -> None:
    assert suffix_shape(suffix) == shape

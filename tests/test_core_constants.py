"""The core's constants have one definition, in Rust, exported as groups (``_core.kind.RETURN``,
``_core.flag.SLOT``, ``_core.NO_DIE`` …): the stub ``_core.pyi`` declares exactly what the
compiled module exports, and no module of the package keeps a copy of a value."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT
from patchscope import _core

PACKAGE = ROOT / "python/patchscope"


def group(g: type) -> dict[str, int]:
    return {k: v for k, v in vars(g).items() if k.isupper()}


#: The exported constant groups by name (``kind``, ``flag`` …): the module's lower-case classes.
GROUPS = {n: getattr(_core, n) for n in _core.__all__ if n.islower() and isinstance(getattr(_core, n), type)}
#: Every name the core gives a value: the groups' members and the single constants.
EXPORTED = {n for g in GROUPS.values() for n in group(g)} | {n for n in _core.__all__ if n.isupper()}


# -- the stub names the module ------------------------------------------------------------------


def stub() -> ast.Module:
    return ast.parse((PACKAGE / "_core.pyi").read_text())


def declared(body: list[ast.stmt]) -> set[str]:
    """Names a stub body declares: classes, functions, annotated names (not private aliases)."""
    names = {n.name for n in body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    names |= {n.target.id for n in body if isinstance(n, ast.AnnAssign) and isinstance(n.target, ast.Name)}
    return {n for n in names if not n.startswith("_") or n.startswith("__")}


def test_stub_declares_exactly_the_module() -> None:
    assert declared(stub().body) == set(_core.__all__)


def test_stub_declares_each_group_and_binary_exactly() -> None:
    classes = {c.name: c for c in stub().body if isinstance(c, ast.ClassDef)}
    for name, g in GROUPS.items():
        assert declared(classes[name].body) == set(group(g)), name
    public = {m for m in dir(_core.Binary) if not m.startswith("_")}
    assert declared(classes["Binary"].body) - {"__new__"} == public


def test_groups_are_whole() -> None:
    """Kinds are distinct within their group, flags are single bits (``SIZE_MASK`` a field)."""
    for g in (_core.kind, _core.location_kind, _core.symkind, _core.how, _core.trap):
        values = list(group(g).values())
        assert len(values) == len(set(values)), g.__name__
    for g in (_core.status, _core.site_status, _core.spflag, _core.lineflag, _core.suffix, _core.location_flag):
        assert all(v & (v - 1) == 0 for v in group(g).values()), f"{g.__name__}: bits"
    assert len(group(_core.kind)) == 25


def test_every_location_kind_has_a_name() -> None:
    from patchscope.index import context

    assert set(context.LOC_NAMES) == set(group(_core.location_kind).values())


# -- no copies ----------------------------------------------------------------------------------


def int_literal(node: ast.expr) -> bool:
    """An expression of int literals alone: ``4``, ``1 << 63``, ``-1``, ``np.uint64(0xFF)``."""
    if isinstance(node, ast.Constant):
        return type(node.value) is int
    if isinstance(node, ast.UnaryOp):
        return int_literal(node.operand)
    if isinstance(node, ast.BinOp):
        return int_literal(node.left) and int_literal(node.right)
    if isinstance(node, ast.Call):
        return bool(node.args) and all(int_literal(a) for a in node.args)
    return False


def assignments(tree: ast.AST) -> Iterator[tuple[int, str, ast.expr]]:
    """(line, name, value) of every name bound by an assignment, tuples unpacked pairwise."""
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            pairs = [(t, node.value) for t in node.targets]
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            pairs = [(node.target, node.value)]
        else:
            continue
        while pairs:
            target, value = pairs.pop()
            if isinstance(target, ast.Name):
                yield node.lineno, target.id, value
            elif isinstance(target, ast.Tuple) and isinstance(value, ast.Tuple) and len(target.elts) == len(value.elts):
                pairs += zip(target.elts, value.elts)


def is_copy_name(name: str) -> bool:
    """A core constant's name, alone or with a prefix (``LOC_REGISTER``, ``SITE_NO_BYTES``)."""
    return name in EXPORTED or any(name.endswith("_" + core) for core in EXPORTED)


def copies(package: Path) -> list[str]:
    """``file:line: NAME`` of every int literal bound to a name the core gives a value."""
    out = []
    for path in sorted(package.rglob("*.py")):
        for line, name, value in assignments(ast.parse(path.read_text(), str(path))):
            if int_literal(value) and is_copy_name(name):
                out.append(f"{path.relative_to(package.parent)}:{line}: {name}")
    return out


def test_no_module_copies_a_core_constant() -> None:
    assert copies(PACKAGE) == []


def test_a_copy_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "patchscope"
    pkg.mkdir()
    (pkg / "copies.py").write_text(
        "import numpy as np\n"
        "RETURN, JUMP = 1, 33\n"
        "LOC_REGISTER = 1\n"
        "NO_DIE = np.uint64(0xFFFF_FFFF_FFFF_FFFF)\n"
        "class C:\n    SUP_BIT: int = 1 << 63\n"
    )
    (pkg / "fine.py").write_text(
        "from patchscope import _core\n"
        "RETURN = _core.kind.RETURN\n"
        "READABLE = (_core.location_kind.REGISTER, 5)\n"
        "TABLE_LIMIT = 2000\n"
        'ENTRY, RETURN = "entry", "return"\n'
    )
    assert sorted(copies(pkg)) == [
        "patchscope/copies.py:2: JUMP",
        "patchscope/copies.py:2: RETURN",
        "patchscope/copies.py:3: LOC_REGISTER",
        "patchscope/copies.py:4: NO_DIE",
        "patchscope/copies.py:6: SUP_BIT",
    ]

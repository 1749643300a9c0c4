"""The core's constants, exported from their one Rust definition (``_core.kind.RETURN`` …),
against the hand copies the Python side still keeps: each copy must equal the export."""

from __future__ import annotations

import importlib
from types import ModuleType

import pytest

from patchscope import _core


def module(*names: str) -> ModuleType:
    """The first of ``names`` that imports (a module may have moved)."""
    for name in names:
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError:
            continue
    raise ModuleNotFoundError(names[0])


def group(g: type) -> dict[str, int]:
    return {k: v for k, v in vars(g).items() if k.isupper()}


CODE = ("patchscope.index.machine", "patchscope.index.code")
CONTEXT = ("patchscope.index.context", "patchscope.rules.context")

# (module candidates, exported group, names in the group, prefix of the copy's names)
COPIES = [
    (
        CODE,
        _core.kind,
        "RETURN TAIL_JUMP_DIRECT TAIL_JUMP_INDIRECT CALL_DIRECT CALL_INDIRECT JUMP_TO_ENTRY LL SC LSE_ATOMIC "
        "ORDERED TM_BEGIN TM_END TM_ABORT TM_TEST TM_OTHER HLE TRAP ENDBR LOCAL_ENTRY ENTRY_NOPS "
        "OTHER NOP JUMP JUMP_INDIRECT ERROR",
        "",
    ),
    (CODE, _core.flag, "CONDITIONAL THUNK", ""),
    (CODE, _core.site_status, "NO_BYTES DECODE_ERROR BAD_START", "SITE_"),
    (
        ("patchscope.index.variables",),
        _core.location_kind,
        "NONE REGISTER MEMORY ENTRY_VALUE PARAM_REF CONSTANT COMPUTED COMPOSITE IMPLICIT_POINTER ERROR",
        "",
    ),
    (("patchscope.index.variables",), _core.location_flag, "LIST VIEW_ONLY FRAME_BASE STATIC", ""),
    (
        CONTEXT,
        _core.location_kind,
        "NONE REGISTER MEMORY ENTRY_VALUE PARAM_REF CONSTANT COMPUTED COMPOSITE NOT_AT_ENTRY IMPLICIT_POINTER ERROR",
        "LOC_",
    ),
    (CONTEXT, _core.location_flag, "LIST VIEW_ONLY", "LOC_"),
    (CONTEXT, _core.suffix, "COLD PART ISRA CONSTPROP", "SUFFIX_"),
    (("patchscope.index.functions",), _core.spflag, "EXTERNAL DECLARATION ARTIFICIAL NORETURN HAS_CODE", ""),
    (("patchscope.index.functions",), _core.symkind, "FUNC", "SYM_"),
    (("patchscope.report.stats",), _core.symkind, "NOTYPE", "SYM_"),
    (("patchscope.probes.lines",), _core.lineflag, "IS_STMT END_SEQUENCE PROLOGUE_END", ""),
    (("patchscope.index.lines",), _core.lineflag, "END_SEQUENCE", ""),
]


@pytest.mark.parametrize(
    ("modules", "exported", "names", "prefix"),
    COPIES,
    ids=[f"{m[-1].rsplit('.', 1)[1]}-{g.__name__}-{p or 'plain'}" for m, g, _, p in COPIES],
)
def test_hand_copies_equal_the_core(modules: tuple[str, ...], exported: type, names: str, prefix: str) -> None:
    mod = module(*modules)
    for name in names.split():
        assert getattr(mod, prefix + name) == getattr(exported, name), f"{mod.__name__}.{prefix}{name}"


def test_single_values() -> None:
    assert module(*CODE).NO_TARGET == _core.NO_TARGET == 2**64 - 1
    assert module("patchscope.index.tables").NO_DIE == _core.NO_DIE
    assert module("patchscope.index.variables").NO_REG == _core.NO_REG
    assert _core.SUP_BIT == 1 << 63


def test_names_and_tuples() -> None:
    """Copies that are not one name per value: by position, by key, and literals in the rules."""
    how = group(_core.how)
    names = tuple(name.lower() for name, _ in sorted(how.items(), key=lambda kv: kv[1]))
    assert names == module(*CODE).HOW
    assert list(how.values()) == list(range(len(how)))
    context = module(*CONTEXT)
    assert set(context.LOC_NAMES) == set(group(_core.location_kind).values())
    sym = _core.symkind
    assert module("patchscope.rules.kernel")._KALLSYMS_KINDS == (sym.FUNC, sym.OBJECT, sym.NOTYPE)
    # rules/atomics.py spells these as literals: extra & 0xFF, 0x100, 0x400; a trap's
    # subkind 4; HLE's bit 1; the SLOT (4) and EXTERNAL (16) bits of a branch.
    flag = _core.flag
    assert (flag.SIZE_MASK, flag.ACQUIRE, flag.PAIR) == (0xFF, 0x100, 0x400)
    assert _core.trap.CONDITIONAL == 4
    assert (flag.XACQUIRE, flag.SLOT, flag.EXTERNAL) == (1, 4, 16)


def test_groups_are_whole() -> None:
    """Every group exports each of its constants, with distinct values within a group of kinds."""
    for g in (_core.kind, _core.location_kind, _core.symkind, _core.how, _core.trap):
        values = list(group(g).values())
        assert len(values) == len(set(values)), g.__name__
    for g in (_core.status, _core.site_status, _core.spflag, _core.lineflag, _core.suffix, _core.location_flag):
        assert all(v & (v - 1) == 0 for v in group(g).values()), f"{g.__name__}: bits"
    assert len(group(_core.kind)) == 25


def test_stub_names_the_module() -> None:
    """``_core.pyi`` declares every constant group, constant and method the module has."""
    import ast
    from pathlib import Path

    stub = ast.parse((Path(_core.__file__).parent / "_core.pyi").read_text())
    classes = {c.name: c for c in stub.body if isinstance(c, ast.ClassDef)}
    declared = lambda c: {n.target.id for n in c.body if isinstance(n, ast.AnnAssign)}  # noqa: E731
    for name, value in vars(_core).items():
        if isinstance(value, type) and not issubclass(value, BaseException) and name != "Binary":
            assert declared(classes[name]) == set(group(value)), name
    methods = {f.name for f in classes["Binary"].body if isinstance(f, ast.FunctionDef)}
    assert {m for m in dir(_core.Binary) if not m.startswith("_")} <= methods

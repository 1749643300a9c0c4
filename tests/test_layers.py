"""The package's layers import only downwards: _core < index < rules < probes < report < cli.

Every import counts — at module level, inside a function, under ``if TYPE_CHECKING:`` — since
each is an arrow a reader must follow and a cycle waiting to happen. The package's
``__init__`` (``patchscope.open``) may re-export from the index, and nothing else.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

from conftest import ROOT

LAYERS = ("_core", "index", "rules", "probes", "report", "cli")
#: What ``import patchscope`` reaches: the index, re-exported.
PACKAGE_LAYER = LAYERS.index("index")


def layer(module: str) -> int | None:
    """The layer of a ``patchscope…`` module; None for other packages."""
    parts = module.split(".")
    if parts[0] != "patchscope":
        return None
    if len(parts) == 1:
        return PACKAGE_LAYER
    return LAYERS.index(parts[1]) if parts[1] in LAYERS else PACKAGE_LAYER


def module_name(path: Path, package_root: Path) -> str:
    parts = list(path.relative_to(package_root.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[int, str]]:
    """(line, module) of every import in ``tree``, relative ones resolved. ``from a import b``
    counts as importing ``a.b``: ``b`` may be a module, and if it is not, ``a.b`` is in
    ``a``'s layer anyway."""
    here = module.split(".") if is_package else module.split(".")[:-1]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(here[: len(here) - node.level + 1] + ([base] if base else []))
            out += [(node.lineno, f"{base}.{a.name}") for a in node.names]
    return out


def upward_arrows(package_root: Path) -> list[str]:
    """Every import from a module to a higher layer, as ``file:line: a -> b``."""
    bad = []
    for path in sorted(package_root.rglob("*.py")):
        module = module_name(path, package_root)
        own = layer(module)
        tree = ast.parse(path.read_text(), str(path))
        for line, target in imported(tree, module, path.name == "__init__.py"):
            to = layer(target)
            if own is not None and to is not None and to > own:
                bad.append(f"{path.relative_to(package_root.parent)}:{line}: {LAYERS[own]} -> {target}")
    return bad


def test_no_import_goes_up_a_layer() -> None:
    assert upward_arrows(ROOT / "python/patchscope") == []


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    pkg = tmp_path / "patchscope"
    (pkg / "index").mkdir(parents=True)
    (pkg / "rules").mkdir()
    (pkg / "index/__init__.py").write_text("")
    (pkg / "index/view.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from patchscope.rules import abi\n"
    )
    (pkg / "rules/__init__.py").write_text("def f():\n    from ..report import check\n")
    assert upward_arrows(pkg) == [
        "patchscope/index/view.py:3: index -> patchscope.rules.abi",
        "patchscope/rules/__init__.py:2: rules -> patchscope.report.check",
    ]


def test_the_index_and_the_help_load_no_rule() -> None:
    """``patchscope.open`` loads the index alone; ``patchscope --help`` not even that."""
    code = (
        "import sys, patchscope; patchscope.open; import patchscope.cli.main as m;"
        "print(sorted({n.split('.')[1] for n in sys.modules if n.startswith('patchscope.')}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "['_core', 'cli', 'index']"
    code = (
        "import sys, contextlib, io\n"
        "from patchscope.cli import main\n"
        "with contextlib.suppress(SystemExit), contextlib.redirect_stdout(io.StringIO()): main.main(['--help'])\n"
        "print(sorted(n for n in sys.modules if n.startswith(('patchscope.', 'numpy', 'pyarrow'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    cli = ["patchscope.cli", "patchscope.cli.common", "patchscope.cli.interrupt", "patchscope.cli.main"]
    assert out.strip() == str(cli)

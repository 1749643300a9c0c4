from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
BIN = FIXTURES / "bin"

#: Variants whose oracle (fixtures/expected/*.json) describes a linked binary.
LINKED = [
    "x86_64",
    "x86_64-O3",
    "x86_64-dwarf4",
    "aarch64",
    "aarch64-outline",
    "aarch64-partition",
    "ppc64le",
    "riscv64",
]


def expected(variant: str) -> dict:
    return json.loads((FIXTURES / "expected" / f"{variant}.json").read_text())


def fixture_path(variant: str) -> Path:
    return FIXTURES / expected(variant)["file"]


def vmlinux_path(abi: str = "6.1.0-56", arch: str = "amd64") -> Path | None:
    tag = abi.replace(".", "_").replace("-", "_")
    tag = tag if arch == "amd64" else f"{arch}_{tag}"
    env = os.environ.get(f"PATCHSCOPE_VMLINUX_{tag}")
    if env:
        return Path(env)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    p = cache / "patchscope-kernels" / arch / abi / f"vmlinux-{abi}-{arch}"
    return p if p.is_file() else None


@pytest.fixture(autouse=True, scope="session")
def private_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Tests never touch the user's cache (the vmlinux tests keep one for the session)."""
    os.environ["PATCHSCOPE_CACHE"] = str(tmp_path_factory.mktemp("cache"))


@pytest.fixture(scope="session")
def vmlinux() -> Path:
    p = vmlinux_path()
    if p is None:
        pytest.skip("Debian 6.1.0-56 amd64 vmlinux absent (../shared/data/fetch-debian-kernel.sh 6.1.0-56)")
    return p

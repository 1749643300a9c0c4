"""Where the DWARF lives: separate debug files, compression, dwz, relocatable objects,
other ELF kinds, and the on-disk cache."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import patchscope
from conftest import BIN, expected
from patchscope.index.binary import TABLES


def inventory_summary(b: patchscope.Binary) -> set[tuple]:
    f = b.inventory.functions
    return set(zip(*(f.column(c).to_pylist() for c in ("name", "decl_file", "decl_line", "status", "inline_sites"))))


@pytest.fixture(scope="module")
def reference() -> patchscope.Binary:
    return patchscope.open(BIN / "x86_64/corpus")


def test_debuglink_beside_binary(reference: patchscope.Binary) -> None:
    b = patchscope.open(BIN / "x86_64-split/corpus")
    assert b.info["dwarf"] == "separate"
    assert b.info["debug_file"].endswith("corpus.debug")
    assert b.subprograms.num_rows == reference.subprograms.num_rows
    assert inventory_summary(b) == inventory_summary(reference)


def test_build_id_under_debug_root(tmp_path: Path, reference: patchscope.Binary) -> None:
    alone = tmp_path / "bin" / "corpus"
    alone.parent.mkdir()
    shutil.copy(BIN / "x86_64-split/corpus", alone)
    bid = reference.info["build_id"]
    target = tmp_path / "debug" / ".build-id" / bid[:2] / f"{bid[2:]}.debug"
    target.parent.mkdir(parents=True)
    shutil.copy(BIN / "x86_64-split/corpus.debug", target)
    b = patchscope.open(alone, debug_roots=[str(tmp_path / "debug")])
    assert b.info["debug_file"] == str(target)
    assert inventory_summary(b) == inventory_summary(reference)
    # without the root: nothing found, symbols only
    assert patchscope.open(alone, debug_roots=[]).info["dwarf"] == "none"


def test_explicit_debug_file_must_belong() -> None:
    with pytest.raises(patchscope.BinaryError, match="does not belong"):
        patchscope.open(BIN / "x86_64-split/corpus", BIN / "x86_64-O3/corpus")


def test_explicit_debug_file_without_dwarf() -> None:
    with pytest.raises(patchscope.BinaryError, match="no DWARF"):
        patchscope.open(BIN / "x86_64-split/corpus", BIN / "x86_64-nodebug/corpus")


@pytest.mark.parametrize("variant", ["x86_64-gz", "x86_64-zstd"])
def test_compressed_sections(variant: str, reference: patchscope.Binary) -> None:
    b = patchscope.open(BIN / variant / "corpus")
    compressed = b.sections.filter(b.sections.column("compressed").to_numpy().astype(bool))
    assert any(n.startswith(".debug_info") for n in compressed.column("name").to_pylist())
    for t in ("subprograms", "inline_sites", "call_sites", "params", "lines"):
        assert getattr(b, t).to_pylist() == getattr(reference, t).to_pylist(), t


def test_dwz_supplementary_file(reference: patchscope.Binary) -> None:
    b = patchscope.open(BIN / "x86_64-dwz/corpus")
    assert b.info["altlink"].startswith("corpus.alt ")
    assert b.info["sup_file"].endswith("corpus.alt")
    sup_dies = [d for d in b.subprograms.column("die").to_pylist() if d >> 63]
    assert sup_dies, "the supplementary file's partial units are scanned"
    assert inventory_summary(b) == inventory_summary(reference)


def altlink(path: Path) -> tuple[str, str]:
    """The name and build-id (hex) in a file's ``.gnu_debugaltlink``."""
    from elftools.elf.elffile import ELFFile

    with path.open("rb") as f:
        data = ELFFile(f).get_section_by_name(".gnu_debugaltlink").data()
    name, _, build_id = data.partition(b"\0")
    return name.decode(), build_id.hex()


def instance_types(b: patchscope.Binary) -> list[list[tuple[str, str]]]:
    inst = b.inventory.instances
    dies, entries = inst.column("die").to_pylist(), inst.column("entry_pc").to_pylist()
    return [[(v.name, v.type) for v in b.variables_at(d, e)] for d, e in zip(dies, entries)]


def test_dwz_supplementary_file_under_debug_root(tmp_path: Path) -> None:
    """The ``.alt`` found only by its build-id under a debug root (the altlink's relative path
    leads nowhere): every query of the binary reads it, not only the scan."""
    name, build_id = altlink(BIN / "x86_64-dwz/corpus")
    alone = tmp_path / "bin" / "corpus"
    alone.parent.mkdir()
    shutil.copy(BIN / "x86_64-dwz/corpus", alone)
    root = tmp_path / "debug"
    sup = root / ".build-id" / build_id[:2] / f"{build_id[2:]}.debug"
    sup.parent.mkdir(parents=True)
    shutil.copy(BIN / "x86_64-dwz" / name, sup)
    assert not (alone.parent / name).exists()

    normal = patchscope.open(BIN / "x86_64-dwz/corpus", use_cache=False)
    b = patchscope.open(alone, debug_roots=[str(root)], use_cache=False)
    assert b.info["sup_file"] == str(sup)
    assert b.core.sup_file_found_by == f"build-id under {root}"
    want, got = instance_types(normal), instance_types(b)
    assert sum(map(len, want)) > 0
    assert not [t for vs in got for _, t in vs if t == "<unknown>"]
    assert got == want


def test_cache_key_follows_the_supplementary_file(tmp_path: Path) -> None:
    """A scan reads the ``.alt``'s units: a changed ``.alt`` must not be served from the cache;
    a touched one (same bytes) keeps its key."""
    import os

    from patchscope.index import cache

    for f in ("corpus", altlink(BIN / "x86_64-dwz/corpus")[0]):
        shutil.copy(BIN / "x86_64-dwz" / f, tmp_path / f)
    path = tmp_path / "corpus"
    before = cache.cache_key(cache.identity(patchscope.open(path, use_cache=False).core))
    sup = tmp_path / altlink(path)[0]
    os.utime(sup, ns=(sup.stat().st_atime_ns, sup.stat().st_mtime_ns + 10**9))
    assert cache.cache_key(cache.identity(patchscope.open(path, use_cache=False).core)) == before
    with sup.open("ab") as f:
        f.write(b"\0")
    after = cache.cache_key(cache.identity(patchscope.open(path, use_cache=False).core))
    assert before != after


@pytest.mark.parametrize("variant", ["x86_64-rel", "aarch64-rel"])
def test_relocatable_object(variant: str) -> None:
    """A .o like a .ko: relocations applied to the DWARF, each section at its own address."""
    b = patchscope.open(BIN / variant / "module.o")
    assert b.info["kind"] == "relocatable"
    exp = expected(variant)
    inv = b.inventory.functions
    got = dict(zip(inv.column("name").to_pylist(), inv.column("inline_sites").to_pylist()))
    for name, e in exp["functions"].items():
        assert got[name] == e["inline_sites"], name
    inst = b.inventory.instances
    lows = [r[0][0] for r in inst.column("ranges").to_pylist()]
    assert len(set(lows)) == len(lows), "functions in different sections must not share addresses"
    named = [s for s in inst.column("symbols").to_pylist() if s]
    assert len(named) >= len(exp["functions"]) - sum(e["out_of_line"] == 0 for e in exp["functions"].values())


@pytest.mark.parametrize(
    ("arch", "cls", "endian"),
    [
        ("ppc64", "elf64", "big"),
        ("s390x", "elf64", "big"),
        ("arm", "elf32", "little"),
        ("mips", "elf32", "big"),
    ],
)
def test_other_elf_kinds(arch: str, cls: str, endian: str) -> None:
    b = patchscope.open(BIN / "elf-arches" / arch / "corpus")
    assert (b.info["arch"], b.info["class"], b.info["endian"]) == (arch, cls, endian)
    f = b.inventory.functions
    status = dict(zip(f.column("name").to_pylist(), f.column("status").to_pylist()))
    assert status["hot_sum"] == "not-inlined"
    assert status["clampi"] == "fully-inlined"
    assert status["buf_process"] == "selectively-inlined"
    # Thumb bit (arm) and .opd descriptors (ppc64 ELFv1) resolved: hot_sum's symbol joins its DIE
    assert "hot_sum" not in {n for n, s in status.items() if s == "symbol-only"}


def test_cache_round_trip() -> None:
    path = BIN / "riscv64/corpus"
    first = patchscope.open(path)
    inv = first.inventory
    second = patchscope.open(path)
    assert second.from_cache
    for t in TABLES:
        assert getattr(second, t).equals(getattr(first, t)), t
    assert second.inventory.functions.equals(inv.functions)
    assert not patchscope.open(path, use_cache=False).from_cache

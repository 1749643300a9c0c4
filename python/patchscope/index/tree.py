"""A kernel as one target: its vmlinux and every module, found in a folder.

Four shapes of folder, as stap's and perf's ``-r RELEASE`` find them and as distributions ship
them: a ``lib/modules/RELEASE`` folder of a debug package (``/usr/lib/debug/lib/modules/RELEASE``,
its vmlinux beside the modules or in ``usr/lib/debug/boot/vmlinux-RELEASE``), the root of an
extracted debug package (one ``usr/lib/debug/lib/modules/*`` below it), a kernel build directory
(``vmlinux`` + ``**/*.ko``, its release in ``include/config/kernel.release``), and ``-r RELEASE``
looked up under the debug roots.

Modules are named as the kernel names them (``scripts/Makefile.modfinal``: the file's stem,
``-`` read as ``_``, kernel/module/main.c compares them so). A module is checked against the
tree only when it is used — its ``.modinfo`` vermagic names the release it was built for
(include/linux/vermagic.h: ``UTS_RELEASE " " …``) — so that one module of a tree costs one
module. What cannot belong to one kernel is refused with one line each: two vmlinux images or
two releases in one folder refuse the tree; a module name twice, or a module built for another
release, refuses that module and the rest of the tree stays.
"""

from __future__ import annotations

import fnmatch
import os
import struct
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

#: Where ``-r RELEASE`` is looked for, in this order (stap's ``kernel_build_tree`` and perf's
#: vmlinux search path read the debug tree first).
DEBUG_ROOTS = ("/usr/lib/debug/lib/modules", "/lib/modules")

#: The name of the kernel image among a tree's binaries.
VMLINUX = "vmlinux"

_SECTION_NOBITS = 8


class TreeError(ValueError):
    """A folder that is no kernel tree, or not one kernel's: the message is one line."""


def module_name(path: str | os.PathLike[str]) -> str:
    """The module's name as the kernel spells it: ``nf-tables.ko`` and ``nf_tables.ko`` alike."""
    return Path(path).name.split(".", 1)[0].replace("-", "_")


@dataclass
class Tree:
    """One kernel: its image and its modules by name."""

    root: Path
    release: str | None
    vmlinux: Path | None
    modules: dict[str, Path]
    #: Modules left out when the tree was found (a name given twice), each with its one line.
    refused: dict[str, str] = field(default_factory=dict)
    #: The modules the system runs, beside a debug tree (``/lib/modules/RELEASE`` beside
    #: ``/usr/lib/debug/lib/modules/RELEASE``): each debug module must be their build.
    installed: Path | None = None

    def binaries(self) -> list[tuple[str, Path]]:
        """Every binary of the tree as (name, path): the vmlinux first, then modules by name."""
        image = [(VMLINUX, self.vmlinux)] if self.vmlinux else []
        return image + sorted(self.modules.items())

    def matching(self, pattern: str) -> list[str]:
        """Module names matching a shell glob, ``-`` and ``_`` alike (stap's ``module("nf_*")``)."""
        glob = pattern.replace("-", "_")
        return [m for m in sorted(self.modules) if fnmatch.fnmatchcase(m, glob)]

    def check_module(self, name: str) -> str | None:
        """Why module ``name`` does not belong to this tree's kernel (one line), or None."""
        return check_module(self.modules[name], name, self.expected(name))

    def expected(self, name: str) -> Expected | None:
        """What binary ``name`` is checked against (None for the vmlinux): the tree's release,
        and the installed module at the same place, whose build it must be."""
        if name not in self.modules:
            return None
        twin = self.installed / self.modules[name].relative_to(self.root) if self.installed else None
        return Expected(self.release, twin if twin and twin.is_file() else None)

    def holding(self, names: Collection[str]) -> tuple[set[str], dict[str, list[str]]]:
        """Which of ``names`` the vmlinux's kallsyms holds, and for each name the modules whose
        kallsyms would hold it once loaded — where the kernel looks a bare name up."""
        image = kallsyms_holds(self.vmlinux, names, image=True) if self.vmlinux and names else set()
        modules: dict[str, list[str]] = {}
        for m, path in sorted(self.modules.items()) if names else ():
            try:
                held = kallsyms_holds(path, names)
            except (OSError, TreeError):  # a corrupt module is named where it is analysed
                continue
            for name in held:
                modules.setdefault(name, []).append(m)
        return image, modules

    def info(self) -> dict[str, str]:
        """What a script's preprocessor asks of the build (``kernel_v``, ``arch``), read from
        the image's ELF header without indexing it; the keys are those of ``Binary.info``."""
        image = self.vmlinux or next(iter(self.modules.values()), None)
        arch = elf_machine(image) if image else None
        path = str(self.vmlinux) if self.vmlinux else ""
        return {"kernel_release": self.release or "", "path": path, "arch": arch or "unknown"}


@dataclass(frozen=True)
class Expected:
    """What a module of a tree must match (small: sent to a worker with each task)."""

    release: str | None
    #: The installed module of the same name and place, when the system has one.
    installed: Path | None = None


def check_module(path: Path, name: str, expected: Expected | None) -> str | None:
    """Why the module at ``path`` was not built for the kernel ``expected`` describes (one
    line), or None: its vermagic names another release (what ``insmod`` refuses), or its
    build-id is not that of the installed module it is the debug file of (a debug package of
    another build of the same release: its addresses and code are not those that run)."""
    if expected is None:
        return None
    try:
        magic = vermagic(path)
        mine = build_id(path)
        theirs = build_id(expected.installed) if expected.installed else None
    except OSError as e:
        return f"{e.filename or path}: {e.strerror or e}"
    except TreeError as e:
        return str(e)
    built_for = magic.split()[0] if magic and magic.split() else ""
    if magic is not None and expected.release is not None and built_for != expected.release:
        return f"{path}: module {name} was built for kernel {built_for} (vermagic), not {expected.release}; skipped"
    if mine and theirs and mine != theirs:
        return (
            f"{path}: module {name} has build-id {mine}, the installed {expected.installed} has {theirs}: "
            "another build of the kernel; skipped"
        )
    return None


def find(path: str | os.PathLike[str] | None = None, release: str | None = None) -> Tree:
    """The kernel tree at ``path``, or the one ``-r RELEASE`` names under the debug roots."""
    if path is None:
        if release is None:
            raise TreeError("give a kernel tree folder or -r RELEASE")
        return _from_release(release)
    root = Path(path)
    if not root.is_dir():
        raise TreeError(f"{root}: not a folder")
    releases = sorted(root.glob("usr/lib/debug/lib/modules/*")) or sorted(root.glob("lib/modules/*"))
    if len(releases) > 1:
        raise TreeError(
            f"{root}: {len(releases)} kernels in one folder ({', '.join(r.name for r in releases)}); pass one"
        )
    if releases:
        root = releases[0]
    return _found(root, release or _release_of(root))


def _from_release(release: str) -> Tree:
    for base in DEBUG_ROOTS:
        d = Path(base) / release
        if d.is_dir():
            return _found(d, release)
    raise TreeError(f"kernel {release}: no tree under {' or '.join(DEBUG_ROOTS)}")


def _release_of(root: Path) -> str | None:
    """The release a folder names: a build dir's ``include/config/kernel.release``, else the
    name of a ``lib/modules/RELEASE`` folder."""
    try:
        return (root / "include/config/kernel.release").read_text().strip() or None
    except OSError:
        pass
    return root.name if root.parent.name == "modules" and root.parent.parent.name == "lib" else None


def _found(root: Path, release: str | None) -> Tree:
    vmlinux = _vmlinux(root, release)
    modules: dict[str, Path] = {}
    twice: dict[str, list[Path]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for f in sorted(filenames):
            if f.endswith(".ko"):
                p = Path(dirpath) / f
                name = module_name(f)
                if name in modules or name in twice:
                    twice.setdefault(name, [modules.pop(name)] if name in modules else []).append(p)
                else:
                    modules[name] = p
    if vmlinux is None and not modules and not twice:
        raise TreeError(f"{root}: is a directory, and no kernel tree: neither a vmlinux nor any .ko module in it")
    refused = {
        name: f"module {name} is in the tree {len(paths)} times ({', '.join(map(str, paths))}): "
        "two kernels mixed; skipped"
        for name, paths in sorted(twice.items())
    }
    return Tree(root, release, vmlinux, modules, refused, _installed(root))


def _installed(root: Path) -> Path | None:
    """``PREFIX/lib/modules/RELEASE`` for a debug tree at ``PREFIX/usr/lib/debug/lib/modules/RELEASE``."""
    if root.parts[-6:-1] != ("usr", "lib", "debug", "lib", "modules"):
        return None
    twin = root.parents[5] / "lib/modules" / root.name
    return twin if twin.is_dir() and twin.resolve() != root.resolve() else None


def _vmlinux(root: Path, release: str | None) -> Path | None:
    """The tree's image: ``vmlinux`` or ``vmlinux-RELEASE`` in the folder, else the debug
    package's ``boot/vmlinux-RELEASE`` (``lib/modules/RELEASE`` → ``../../../boot``)."""
    here = [p for p in sorted(root.glob("vmlinux*")) if p.is_file() and not p.name.endswith((".o", ".a", ".lds"))]
    images = [p for p in here if p.name == VMLINUX or p.name.startswith("vmlinux-")]
    if len(images) > 1 and not (release and root / f"vmlinux-{release}" in images):
        raise TreeError(
            f"{root}: {len(images)} kernel images in one folder ({', '.join(p.name for p in images)}); pass one"
        )
    if release and root / f"vmlinux-{release}" in images:
        return root / f"vmlinux-{release}"
    if images:
        return images[0]
    if release:
        boot = root.parent.parent.parent / "boot" / f"vmlinux-{release}"
        if boot.is_file():
            return boot
    return None


def build_id(path: Path) -> str | None:
    """The GNU build-id of an ELF file, in hex (None when it has none)."""
    note = elf_section(path, ".note.gnu.build-id")
    if note is None or len(note) < 16:
        return None
    end = "<" if _little(path) else ">"
    namesz, descsz, kind = struct.unpack_from(end + "III", note)
    start = 12 + (namesz + 3) // 4 * 4
    return note[start : start + descsz].hex() if kind == _NT_GNU_BUILD_ID else None


_NT_GNU_BUILD_ID = 3


def _little(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(6)[5:6] != b"\x02"


def vermagic(path: Path) -> str | None:
    """The ``vermagic=`` of a module's ``.modinfo`` (None when it has none)."""
    info = elf_section(path, ".modinfo")
    if info is None:
        return None
    for entry in info.split(b"\0"):
        if entry.startswith(b"vermagic="):
            return entry[len("vermagic=") :].decode("utf-8", "replace")
    return None


#: e_machine → the architecture's name as the core spells it (core/src/elf.rs ``arch_name``).
_MACHINES = {62: "x86_64", 183: "aarch64", 40: "arm", 22: "s390x", 243: "riscv64"}


def elf_machine(path: Path) -> str | None:
    """The architecture of an ELF file by its header alone (None when unknown or unreadable)."""
    try:
        with open(path, "rb") as f:
            head = f.read(20)
    except OSError:
        return None
    if head[:4] != b"\x7fELF" or len(head) < 20:
        return None
    machine = struct.unpack_from("<H" if head[5] == 1 else ">H", head, 18)[0]
    if machine == 21:  # EM_PPC64
        return "ppc64le" if head[5] == 1 else "ppc64"
    return _MACHINES.get(machine)


def elf_section(path: Path, name: str) -> bytes | None:
    """The bytes of one section, read through the section headers alone (a module's
    ``.modinfo`` without reading its megabytes of DWARF); None when absent or NOBITS."""
    with open(path, "rb") as f:
        elf = _Sections(f, path)
        h = elf.named(name)
        return None if h is None or h[1] == _SECTION_NOBITS else elf.read(h)


def kallsyms_holds(path: Path, names: Collection[str], image: bool = False) -> set[str]:
    """Which of ``names`` a binary's kallsyms holds: its defined, named symbols in allocated
    sections — for a module once loaded, not those of its init sections (kernel/module/kallsyms.c
    ``is_core_symbol``: they go with the init text); for the ``image``, its init symbols too. The
    symbol table is read only when the string table holds one of the names: thousands of
    modules are asked about a few names at a time."""
    with open(path, "rb") as f:
        elf = _Sections(f, path)
        symtab = elf.named(".symtab")
        if symtab is None or symtab[9] == 0 or not 0 < symtab[6] < len(elf.headers):
            return set()
        strings = elf.read(elf.headers[symtab[6]])
        wanted = {n.encode() for n in names if b"\0" + n.encode() + b"\0" in strings}
        if not wanted:
            return set()
        data = elf.read(symtab)
    core = [bool(h[2] & _SHF_ALLOC) and (image or not elf.name_of(h).startswith(".init")) for h in elf.headers]
    shape = elf.end + ("IBBHQQ" if elf.wide else "IIIBBH")
    out = set()
    for fields in struct.iter_unpack(shape, data[: len(data) - len(data) % symtab[9]]):
        name, shndx = fields[0], fields[3] if elf.wide else fields[5]
        if name and 0 < shndx < len(core) and core[shndx]:
            text = strings[name : strings.find(b"\0", name)]
            if text in wanted:
                out.add(text.decode())
    return out


_SHF_ALLOC = 2


class _Sections:
    """An ELF file's section headers, each (name, type, flags, addr, offset, size, link, info,
    addralign, entsize), read without the rest of the file."""

    def __init__(self, f: BinaryIO, path: Path) -> None:
        self.f, self.path = f, path
        head = f.read(64)
        if head[:4] != b"\x7fELF" or len(head) < 52 or head[4] not in (1, 2):
            raise TreeError(f"{path}: not an ELF file; skipped")
        self.wide, self.end = head[4] == 2, "<" if head[5] == 1 else ">"
        shoff = struct.unpack_from(self.end + ("Q" if self.wide else "I"), head, 0x28 if self.wide else 0x20)[0]
        entsize, count, names = struct.unpack_from(self.end + "HHH", head, 0x3A if self.wide else 0x2E)
        f.seek(shoff)
        table = f.read(entsize * count)
        shape = self.end + ("IIQQQQIIQQ" if self.wide else "IIIIIIIIII")
        if entsize < struct.calcsize(shape) or len(table) < entsize * count or names >= count:
            raise TreeError(f"{path}: truncated or corrupt ELF section headers; skipped")
        self.headers = [struct.unpack_from(shape, table, i * entsize) for i in range(count)]
        self.strings = self.read(self.headers[names])

    def read(self, h: tuple[int, ...]) -> bytes:
        self.f.seek(h[4])
        data = self.f.read(h[5])
        if len(data) < h[5]:
            raise TreeError(f"{self.path}: a section runs past the end of the file; truncated; skipped")
        return data

    def name_of(self, h: tuple[int, ...]) -> str:
        end = self.strings.find(b"\0", h[0])
        return self.strings[h[0] : end if end >= 0 else None].decode("utf-8", "replace")

    def named(self, name: str) -> tuple[int, ...] | None:
        return next((h for h in self.headers if self.name_of(h) == name), None)

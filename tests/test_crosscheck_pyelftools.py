"""Cross-check of the core's tables against an independent reader: pyelftools.

For every fixture binary, the DWARF is walked again with pyelftools (its own DIE parser,
attribute decoding, range/location list readers, expression parser and line-program state
machine) and the core's tables must agree with it **row for row**, in the same order
(units in ``.debug_info`` order, DIEs in depth-first order within a unit):

* ``units``: offset, version, kind, address size, name, comp_dir, producer, language, DIE
  count, line-row count;
* ``subprograms``: every column (name read from the DIE itself, references as global
  ``.debug_info`` offsets, every flag bit, ``decl_file`` as a path relative to comp_dir);
* ``ranges``: ``DW_AT_low_pc``/``DW_AT_high_pc`` first, then ``DW_AT_ranges`` (pyelftools'
  ``RangeLists``, base address applied here);
* ``inline_sites``, ``call_sites``: every column;
* ``params``: every column, with the location kind evaluated at the owner's entry address
  (location lists from pyelftools' ``LocationParser``, expressions from its
  ``DWARFExprParser``, classified here from the documented meaning of each kind);
* ``lines``: every row (address, file, line, column, flags, view, unit);
* ``symbols`` vs pyelftools' ``.symtab`` (null symbol excluded), ``sections`` vs its section
  headers (null section excluded).

The core's own conventions are recomputed here, not taken from it: the synthetic section
layout of relocatable objects (``section_bases``), code addresses of ARM Thumb and ppc64 ELFv1
function symbols (``CodeAddress``), the SUP_BIT on the DIEs of a dwz supplementary file.
Location kinds that no fixture reaches at an entry address (frame base, entry values, pieces
...) are checked on copies of four fixtures whose expressions are rewritten in place
(``test_param_location_kinds_rewritten``).

Where pyelftools is wrong or cannot decode something, the work-around is described where it
is made (zstd sections, is_stmt of end_sequence rows, sh_type numbers, 64-bit DWARF
DW_OP_GNU_parameter_ref).
"""

from __future__ import annotations

import contextlib
import functools
import shutil
import struct
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import pytest

elftools = pytest.importorskip("elftools")

import numpy as np  # noqa: E402
from elftools.common.exceptions import ELFCompressionError  # noqa: E402
from elftools.dwarf.constants import DW_LNS_negate_stmt  # noqa: E402
from elftools.dwarf.dwarf_expr import DWARFExprParser  # noqa: E402
from elftools.dwarf.locationlists import (  # noqa: E402
    BaseAddressEntry as LocBase,
)
from elftools.dwarf.locationlists import (  # noqa: E402
    LocationEntry,
    LocationExpr,
    LocationParser,
)
from elftools.dwarf.ranges import BaseAddressEntry as RangeBase  # noqa: E402
from elftools.dwarf.ranges import RangeEntry  # noqa: E402
from elftools.elf.elffile import ELFFile  # noqa: E402

import patchscope  # noqa: E402
from patchscope import _core  # noqa: E402
from patchscope.index.binary import TABLES  # noqa: E402
from patchscope.index.tables import Columns  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "fixtures" / "bin"

NONE = 0xFFFF_FFFF_FFFF_FFFF  # "no DIE"
NO_REG = 0xFFFF

# subprograms.flags
EXTERNAL, DECLARATION, ARTIFICIAL, NORETURN, HAS_CODE, PROTOTYPED, SP_INLINE = 1, 2, 4, 8, 16, 32, 64
# lines.flags
IS_STMT, END_SEQUENCE, PROLOGUE_END, EPILOGUE_BEGIN, BASIC_BLOCK = 1, 2, 4, 8, 16
# params.loc_kind (documented in core/src/dwarf/location.rs)
K_NONE, K_REGISTER, K_MEMORY, K_ENTRY_VALUE, K_PARAM_REF = 0, 1, 2, 3, 4
K_CONSTANT, K_COMPUTED, K_COMPOSITE, K_NOT_AT_ENTRY, K_IMPLICIT_POINTER, K_ERROR = 5, 6, 7, 8, 9, 10


class Fixture(NamedTuple):
    id: str
    path: str
    debug_file: str | None = None
    sup_file: str | None = None  # the dwz supplementary file (.gnu_debugaltlink)


#: Fixtures with DWARF.
DWARF_FIXTURES = [
    Fixture("x86_64", "x86_64/corpus"),
    Fixture("x86_64-O3", "x86_64-O3/corpus"),
    Fixture("x86_64-dwarf4", "x86_64-dwarf4/corpus"),
    Fixture("aarch64", "aarch64/corpus"),
    Fixture("aarch64-outline", "aarch64-outline/corpus"),
    Fixture("aarch64-partition", "aarch64-partition/corpus"),
    Fixture("ppc64le", "ppc64le/corpus"),
    Fixture("riscv64", "riscv64/corpus"),
    Fixture("x86_64-gz", "x86_64-gz/corpus"),
    Fixture("x86_64-zstd", "x86_64-zstd/corpus"),
    Fixture("x86_64-rel", "x86_64-rel/module.o"),
    Fixture("aarch64-rel", "aarch64-rel/module.o"),
    Fixture("x86_64-split", "x86_64-split/corpus", "x86_64-split/corpus.debug"),
    Fixture("elf-arches/arm", "elf-arches/arm/corpus"),
    Fixture("elf-arches/mips", "elf-arches/mips/corpus"),
    Fixture("elf-arches/ppc64", "elf-arches/ppc64/corpus"),
    Fixture("elf-arches/s390x", "elf-arches/s390x/corpus"),
    # dwz: the core appends the supplementary file's own units (DIE offsets | SUP_BIT)
    Fixture("x86_64-dwz", "x86_64-dwz/corpus", sup_file="x86_64-dwz/corpus.alt"),
]
#: Fixtures checked at the ELF level only.
ELF_ONLY_FIXTURES = [
    Fixture("x86_64-nodebug", "x86_64-nodebug/corpus"),
]
ALL_FIXTURES = DWARF_FIXTURES + ELF_ONLY_FIXTURES
BY_ID = {f.id: f for f in ALL_FIXTURES}
DWARF_IDS = [f.id for f in DWARF_FIXTURES]
ALL_IDS = [f.id for f in ALL_FIXTURES]


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


def uleb128(v: int) -> bytes:
    out = bytearray()
    while True:
        b, v = v & 0x7F, v >> 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def s64(v: int) -> int:
    """An integer as the i64 the core stores."""
    v &= 0xFFFF_FFFF_FFFF_FFFF
    return v - (1 << 64) if v >= 1 << 63 else v


def text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bytes):
        return v.decode("utf-8", errors="replace")
    return str(v)


REF_FORMS_CU_RELATIVE = {"DW_FORM_ref1", "DW_FORM_ref2", "DW_FORM_ref4", "DW_FORM_ref8", "DW_FORM_ref_udata"}


def ref(die, name: str) -> int:
    """A reference attribute as a global ``.debug_info`` offset (DWARF 5 §7.5.5)."""
    attr = die.attributes.get(name)
    if attr is None:
        return NONE
    if attr.form in REF_FORMS_CU_RELATIVE:
        return attr.value + die.cu.cu_offset
    if attr.form == "DW_FORM_ref_addr":
        return attr.value
    if attr.form in ("DW_FORM_GNU_ref_alt", "DW_FORM_ref_sup4", "DW_FORM_ref_sup8"):
        return attr.value | (1 << 63)
    return NONE  # DW_FORM_ref_sig8 and the like: not a .debug_info offset


def first_ref(die, *names: str) -> int:
    """The value of the *last* of ``names`` present in attribute order (as a one-pass reader
    that overwrites sees it); in practice only one of them is ever present."""
    out = NONE
    for a in die.attributes.values():
        if a.name in names:
            out = ref(die, a.name)
    return out


def flag(die, name: str) -> bool:
    attr = die.attributes.get(name)
    return attr is not None and bool(attr.value)


def udata(die, name: str, default: int = 0) -> int:
    attr = die.attributes.get(name)
    if attr is None or not isinstance(attr.value, int):
        return default
    return attr.value


ADDRESS_FORMS = {
    "DW_FORM_addr",
    "DW_FORM_addrx",
    "DW_FORM_addrx1",
    "DW_FORM_addrx2",
    "DW_FORM_addrx3",
    "DW_FORM_addrx4",
    "DW_FORM_GNU_addr_index",
}


# --------------------------------------------------------------------------------------
# File names (DWARF 5 §6.2.4; DWARF 4 §6.2.4: file 0 / directory 0 are implicit)
# --------------------------------------------------------------------------------------


class FileNames:
    """Paths of a unit's file table, relative to comp_dir and without leading ``./``,
    which is how the core names files in ``decl_file``, ``call_file`` and ``lines.file``."""

    def __init__(self, lineprog, comp_dir: bytes | None) -> None:
        self.lp = lineprog
        self.comp_dir = comp_dir or b""
        self.cache: dict[int, str] = {}

    def path(self, index: int | None) -> str:
        if index is None or self.lp is None:
            return ""
        if index not in self.cache:
            self.cache[index] = self._path(index)
        return self.cache[index]

    def _path(self, index: int) -> str:
        hdr = self.lp.header
        files = hdr["file_entry"]
        dirs = hdr["include_directory"]
        if hdr["version"] >= 5:
            if index >= len(files):
                return ""
            entry = files[index]
            d = entry.dir_index
            directory = dirs[d] if d < len(dirs) else None
        else:
            if index == 0 or index > len(files):
                return ""
            entry = files[index - 1]
            d = entry.dir_index
            # directory 0 is the compilation directory
            dirs = [self.comp_dir or None, *dirs]
            directory = dirs[d] if d < len(dirs) else None
        name = entry.name
        if not name.startswith(b"/") and directory:
            name = directory + b"/" + name
        cd = self.comp_dir
        if cd and len(name) > len(cd) and name.startswith(cd) and name[len(cd) : len(cd) + 1] == b"/":
            name = name[len(cd) + 1 :]
        while name.startswith(b"./"):
            name = name[2:]
        return text(name)


# --------------------------------------------------------------------------------------
# Location expressions: the kinds of core/src/dwarf/location.rs, from pyelftools' parse
# --------------------------------------------------------------------------------------

UNSIGNED_LITERALS = {"DW_OP_const1u", "DW_OP_const2u", "DW_OP_const4u", "DW_OP_const8u", "DW_OP_constu"}
SIGNED_LITERALS = {"DW_OP_const1s", "DW_OP_const2s", "DW_OP_const4s", "DW_OP_const8s", "DW_OP_consts"}


def op_register(op) -> int | None:
    if op.op_name.startswith("DW_OP_reg") and op.op_name[9:].isdigit():
        return int(op.op_name[9:])
    if op.op_name == "DW_OP_regx":
        return op.args[0]
    return None


class Loc(NamedTuple):
    kind: int
    reg: int = NO_REG
    value: int = 0
    flags: int = 0  # LIST = 1 (from a location list), VIEW_ONLY = 2 (bound only at [pc, pc))


def classify(parser: DWARFExprParser, expr: list[int] | bytes, big_endian: bool) -> Loc:
    """The kind of one location description, from the meaning of each kind:

    PARAM_REF if it uses DW_OP_GNU_parameter_ref; ENTRY_VALUE (with the register named
    inside) if it uses DW_OP_(GNU_)entry_value; IMPLICIT_POINTER; CONSTANT for
    DW_OP_implicit_value or "literal; DW_OP_stack_value"; COMPOSITE for pieces (register of
    the first op, if it is one); COMPUTED for any other DW_OP_stack_value; REGISTER for a
    register location; MEMORY for the rest. Empty: NONE; undecodable: ERROR.
    """
    try:
        ops = parser.parse_expr(list(expr))
    except Exception:
        return Loc(K_ERROR)
    if not ops:
        return Loc(K_NONE)
    names = [op.op_name for op in ops]
    if "DW_OP_GNU_parameter_ref" in names:
        return Loc(K_PARAM_REF)
    for op in ops:
        if op.op_name in ("DW_OP_entry_value", "DW_OP_GNU_entry_value"):
            inner = op.args[0]
            reg = op_register(inner[0]) if inner else None
            return Loc(K_ENTRY_VALUE, NO_REG if reg is None else reg)
    if "DW_OP_implicit_pointer" in names or "DW_OP_GNU_implicit_pointer" in names:
        return Loc(K_IMPLICIT_POINTER)
    implicit = [op for op in ops if op.op_name == "DW_OP_implicit_value"]
    if implicit:
        data = bytes(implicit[-1].args[0][:8])
        return Loc(K_CONSTANT, NO_REG, s64(int.from_bytes(data, "big" if big_endian else "little")))
    reg = op_register(ops[0])
    if "DW_OP_piece" in names or "DW_OP_bit_piece" in names:
        return Loc(K_COMPOSITE, NO_REG if reg is None else reg)
    if "DW_OP_stack_value" in names:
        first = ops[0]
        literal = None
        if first.op_name.startswith("DW_OP_lit") and first.op_name[9:].isdigit():
            literal = int(first.op_name[9:])
        elif first.op_name in UNSIGNED_LITERALS or first.op_name in SIGNED_LITERALS:
            literal = s64(first.args[0])
        if literal is not None and len(ops) == 2:
            return Loc(K_CONSTANT, NO_REG, literal)
        return Loc(K_COMPUTED)
    if reg is not None:
        return Loc(K_REGISTER, reg)
    return Loc(K_MEMORY)


def const_value(attr) -> int:
    """DW_AT_const_value as an i64: data forms unsigned, sdata/implicit_const signed,
    blocks as their first eight bytes in little-endian order ("as stored")."""
    v = attr.value
    if isinstance(v, int):
        return s64(v)
    if isinstance(v, (list, bytes)):
        return s64(int.from_bytes(bytes(v[:8]), "little"))
    return 0


# --------------------------------------------------------------------------------------
# The pyelftools walk
# --------------------------------------------------------------------------------------

FUNC, INLINE, OTHER = "function", "inline", "other"


class Scope(NamedTuple):
    die: int
    kind: str
    entry_pc: int
    function: int
    inline_scope: int
    inline_depth: int


ROOT_SCOPE = Scope(NONE, OTHER, 0, NONE, NONE, 0)


@dataclass
class Oracle:
    units: list[dict] = field(default_factory=list)
    subprograms: list[dict] = field(default_factory=list)
    params: list[dict] = field(default_factory=list)
    inline_sites: list[dict] = field(default_factory=list)
    call_sites: list[dict] = field(default_factory=list)
    ranges: list[dict] = field(default_factory=list)
    lines: list[dict] = field(default_factory=list)
    symbols: list[dict] = field(default_factory=list)
    symbols_from: str = ""
    symtab_entries: int = 0
    sections: list[dict] = field(default_factory=list)
    #: params whose location is a location list (for the report)
    loclist_params: int = 0
    #: where the expression deciding each param's loc_kind lives:
    #: (param DIE, section name, offset in section, expression bytes)
    param_sites: list[tuple[int, str, int, bytes]] = field(default_factory=list)
    #: False when the DWARF was read from an inflated copy (offsets not those of the file)
    param_sites_valid: bool = True


class UnitWalker:
    def __init__(
        self, dwarf, cu, out: Oracle, big_endian: bool, locparser: LocationParser, tag: int, unit_index: int
    ) -> None:
        #: OR-ed into every DIE offset: SUP_BIT for the units of a dwz supplementary file
        self.tag = tag
        self.unit_index = unit_index
        self.dwarf = dwarf
        self.cu = cu
        self.out = out
        self.big_endian = big_endian
        self.locparser = locparser
        self.version = cu.header["version"]
        self.addr_size = cu.header["address_size"]
        self.addr_mask = (1 << (8 * self.addr_size)) - 1
        self.expr = DWARFExprParser(cu.structs)
        top = cu.get_top_DIE()
        self.top = top
        self.comp_dir = top.attributes["DW_AT_comp_dir"].value if "DW_AT_comp_dir" in top.attributes else None
        self.files = FileNames(dwarf.line_program_for_CU(cu), self.comp_dir)
        # The base address of range and location lists: the unit's DW_AT_low_pc (§2.17.3).
        low = top.attributes.get("DW_AT_low_pc")
        self.base = low.value if low is not None else 0
        self.dies = 0

    def off(self, die) -> int:
        return die.offset | self.tag

    def ref(self, die, name: str) -> int:
        r = ref(die, name)
        return r if r == NONE else r | self.tag

    def first_ref(self, die, *names: str) -> int:
        r = first_ref(die, *names)
        return r if r == NONE else r | self.tag

    # -- address attributes ------------------------------------------------------------

    def extent(self, die) -> tuple[int, int, list[tuple[int, int]]]:
        """(low_pc, entry_pc, ranges) of a subprogram or inline site."""
        a = die.attributes
        low = a["DW_AT_low_pc"].value if "DW_AT_low_pc" in a else None
        ranges: list[tuple[int, int]] = []
        if low is not None and "DW_AT_high_pc" in a:
            hp = a["DW_AT_high_pc"]
            # DWARF 4 §2.17.2: a constant-class high_pc is an offset from low_pc.
            high = hp.value if hp.form in ADDRESS_FORMS else (low + hp.value) & 0xFFFF_FFFF_FFFF_FFFF
            if high > low:
                ranges.append((low, high))
        if "DW_AT_ranges" in a:
            ranges.extend(self.range_list(die, a["DW_AT_ranges"]))
        low_pc = low if low is not None else (ranges[0][0] if ranges else 0)
        entry = low_pc
        if "DW_AT_entry_pc" in a:
            ep = a["DW_AT_entry_pc"]
            # DWARF 5 §2.18: a constant-class entry_pc is an offset from the low address.
            entry = ep.value if ep.form in ADDRESS_FORMS else (low_pc + ep.value) & 0xFFFF_FFFF_FFFF_FFFF
        return low_pc, entry, ranges

    def range_list(self, die, attr) -> list[tuple[int, int]]:
        rl = self.dwarf.range_lists()
        assert rl is not None, f"DIE {die.offset:#x}: DW_AT_ranges without a ranges section"
        entries = rl.get_range_list_at_offset(attr.value, cu=self.cu)
        base = self.base
        out = []
        for e in entries:
            if isinstance(e, RangeBase):
                base = e.base_address
            elif isinstance(e, RangeEntry):
                if e.is_absolute:
                    lo, hi = e.begin_offset, e.end_offset
                else:
                    lo, hi = (base + e.begin_offset) & self.addr_mask, (base + e.end_offset) & self.addr_mask
                if hi > lo:
                    out.append((lo, hi))
            else:  # pragma: no cover
                raise AssertionError(f"unexpected range entry {e!r}")
        return out

    # -- locations ---------------------------------------------------------------------

    def location_at(self, die, attr, pc: int) -> Loc:
        loc = self.locparser.parse_from_attribute(attr, self.version, die)
        if isinstance(loc, LocationExpr):
            if attr.form == "DW_FORM_exprloc":
                n = len(loc.loc_expr)
                start = attr.offset + len(uleb128(n))  # DW_FORM_exprloc: ULEB128 length, then the bytes
                self.out.param_sites.append((self.off(die), ".debug_info", start, bytes(loc.loc_expr)))
            return classify(self.expr, loc.loc_expr, self.big_endian)
        self.out.loclist_params += 1
        section = ".debug_loclists" if self.version >= 5 else ".debug_loc"
        base = self.base
        default = None
        in_view = None
        for e in loc:
            if isinstance(e, LocBase):
                base = e.base_address
            elif isinstance(e, LocationEntry):
                if e.begin_offset == -1 and e.end_offset == -1:  # DW_LLE_default_location
                    default = e
                    continue
                if e.is_absolute:
                    lo, hi = e.begin_offset, e.end_offset
                else:
                    lo, hi = (base + e.begin_offset) & self.addr_mask, (base + e.end_offset) & self.addr_mask
                if lo <= pc < hi:
                    self.note_site(die, section, e)
                    return classify(self.expr, e.loc_expr, self.big_endian)._replace(flags=1)
                if lo == hi == pc and in_view is None:
                    in_view = e  # an empty range at pc: the value holds only in a location view
        if in_view is not None:
            return classify(self.expr, in_view.loc_expr, self.big_endian)._replace(flags=3)
        if default is not None:
            self.note_site(die, section, default)
            return classify(self.expr, default.loc_expr, self.big_endian)._replace(flags=1)
        return Loc(K_NOT_AT_ENTRY, flags=1)

    def note_site(self, die, section: str, e: LocationEntry) -> None:
        # A location list entry ends with its expression (DWARF 5 §7.7.3, DWARF 4 §7.7.3).
        start = e.entry_offset + e.entry_length - len(e.loc_expr)
        self.out.param_sites.append((self.off(die), section, start, bytes(e.loc_expr)))

    # -- the walk ----------------------------------------------------------------------

    def walk(self) -> None:
        self.visit(self.top, ROOT_SCOPE, 0)

    def visit(self, die, parent: Scope, position: int) -> None:
        self.dies += 1
        tag = die.tag
        me = parent._replace(die=self.off(die), kind=OTHER)
        if tag == "DW_TAG_subprogram":
            me = self.subprogram(die, parent)
        elif tag == "DW_TAG_inlined_subroutine":
            me = self.inline_site(die, parent)
        elif tag == "DW_TAG_formal_parameter" and parent.kind != OTHER:
            self.param(die, parent, position)
        elif tag in ("DW_TAG_call_site", "DW_TAG_GNU_call_site"):
            self.call_site(die, parent)
        if die.has_children:
            n = 0
            for child in die.iter_children():
                self.visit(child, me, n)
                if child.tag == "DW_TAG_formal_parameter":
                    n += 1

    def subprogram(self, die, parent: Scope) -> Scope:
        low_pc, entry, ranges = self.extent(die)
        flags = 0
        for bit, name in (
            (EXTERNAL, "DW_AT_external"),
            (DECLARATION, "DW_AT_declaration"),
            (ARTIFICIAL, "DW_AT_artificial"),
            (NORETURN, "DW_AT_noreturn"),
            (PROTOTYPED, "DW_AT_prototyped"),
        ):
            if flag(die, name):
                flags |= bit
        if ranges:
            flags |= HAS_CODE
        if udata(die, "DW_AT_inline") in (1, 2, 3):  # dwarf_func_inline != 0
            flags |= SP_INLINE
        a = die.attributes
        linkage = a.get("DW_AT_linkage_name") or a.get("DW_AT_MIPS_linkage_name")
        self.out.subprograms.append(
            {
                "die": self.off(die),
                "parent": parent.function,
                "name": text(a["DW_AT_name"].value) if "DW_AT_name" in a else "",
                "linkage_name": text(linkage.value) if linkage is not None else "",
                "origin": self.ref(die, "DW_AT_abstract_origin"),
                "specification": self.ref(die, "DW_AT_specification"),
                "inline": udata(die, "DW_AT_inline"),
                "flags": flags,
                "decl_file": self.files.path(udata(die, "DW_AT_decl_file", -1)) if "DW_AT_decl_file" in a else "",
                "decl_line": udata(die, "DW_AT_decl_line"),
                "calling_convention": udata(die, "DW_AT_calling_convention"),
                "low_pc": low_pc,
                "entry_pc": entry,
            }
        )
        self.add_ranges(self.off(die), ranges)
        return Scope(self.off(die), FUNC, entry, self.off(die), self.off(die), 0)

    def inline_site(self, die, parent: Scope) -> Scope:
        low_pc, entry, ranges = self.extent(die)
        a = die.attributes
        depth = parent.inline_depth + 1
        self.out.inline_sites.append(
            {
                "die": self.off(die),
                "origin": self.ref(die, "DW_AT_abstract_origin"),
                "function": parent.function,
                "parent": parent.inline_scope,
                "depth": depth,
                "entry_pc": entry,
                "low_pc": low_pc,
                "call_file": self.files.path(udata(die, "DW_AT_call_file")) if "DW_AT_call_file" in a else "",
                "call_line": udata(die, "DW_AT_call_line"),
                "call_column": udata(die, "DW_AT_call_column"),
            }
        )
        self.add_ranges(self.off(die), ranges)
        return Scope(self.off(die), INLINE, entry, parent.function, self.off(die), depth)

    def add_ranges(self, owner: int, ranges: list[tuple[int, int]]) -> None:
        self.out.ranges.extend({"owner": owner, "low": lo, "high": hi} for lo, hi in ranges)

    def param(self, die, owner: Scope, position: int) -> None:
        a = die.attributes
        loc = Loc(K_NONE)
        # Both attributes on one DIE would be contradictory DWARF; the last one read wins.
        for attr in a.values():
            if attr.name == "DW_AT_const_value":
                loc = Loc(K_CONSTANT, NO_REG, const_value(attr))
            elif attr.name == "DW_AT_location":
                loc = self.location_at(die, attr, owner.entry_pc)
        self.out.params.append(
            {
                "die": self.off(die),
                "owner": owner.die,
                "position": position,
                "name": text(a["DW_AT_name"].value) if "DW_AT_name" in a else "",
                "origin": self.ref(die, "DW_AT_abstract_origin"),
                "artificial": int(flag(die, "DW_AT_artificial")),
                "loc_kind": loc.kind,
                "loc_flags": loc.flags,
                "loc_reg": loc.reg,
                "const_value": loc.value,
            }
        )

    def call_site(self, die, scope: Scope) -> None:
        a = die.attributes

        def addr(*names: str) -> int:
            out = 0
            for attr in a.values():
                if attr.name in names:
                    out = attr.value
            return out

        self.out.call_sites.append(
            {
                "die": self.off(die),
                "function": scope.function,
                "scope": scope.inline_scope,
                "return_pc": addr("DW_AT_call_return_pc", "DW_AT_low_pc"),
                "call_pc": addr("DW_AT_call_pc"),
                "target": self.first_ref(die, "DW_AT_call_origin", "DW_AT_abstract_origin"),
                "tail": int(flag(die, "DW_AT_call_tail_call") or flag(die, "DW_AT_GNU_tail_call")),
                "indirect": int("DW_AT_call_target" in a or "DW_AT_GNU_call_site_target" in a),
            }
        )

    # -- line program ------------------------------------------------------------------

    def lines(self, unit_index: int) -> int:
        lp = self.dwarf.line_program_for_CU(self.cu)
        if lp is None:
            return 0
        n = 0
        prev, view, fresh = 0, 0, True
        default_is_stmt = bool(lp.header["default_is_stmt"])
        is_stmt = default_is_stmt
        for entry in lp.get_entries():
            # pyelftools bug (0.33, dwarf/lineprogram.py): on DW_LNE_end_sequence it sets
            # `state.is_stmt = 0` before appending the row, but DWARF 5 §6.2.5.3 says the
            # end_sequence row is appended "using the current values of the state-machine
            # registers" (readelf, llvm-dwarfdump and gimli all keep the register). So the
            # is_stmt register is tracked here from the DW_LNS_negate_stmt opcodes, and the
            # value of every other row is checked against pyelftools' own.
            if entry.command == DW_LNS_negate_stmt and not entry.is_extended:
                is_stmt = not is_stmt
            st = entry.state
            if st is None:
                continue
            if st.end_sequence:
                row_is_stmt = is_stmt
                is_stmt = default_is_stmt
            else:
                row_is_stmt = bool(st.is_stmt)
                assert row_is_stmt == is_stmt, f"line program of unit {unit_index}: is_stmt replay diverged"
            # GCC's location views: a row's rank among consecutive rows at one address,
            # restarting at every new address and every new sequence.
            view = min(view + 1, 0xFFFF) if (not fresh and st.address == prev) else 0
            flags = (
                (IS_STMT if row_is_stmt else 0)
                | (END_SEQUENCE if st.end_sequence else 0)
                | (PROLOGUE_END if st.prologue_end else 0)
                | (EPILOGUE_BEGIN if st.epilogue_begin else 0)
                | (BASIC_BLOCK if st.basic_block else 0)
            )
            self.out.lines.append(
                {
                    "address": st.address,
                    "file": self.files.path(st.file),
                    "line": st.line,
                    "column": st.column,
                    "flags": flags,
                    "view": view,
                    "unit": unit_index,
                }
            )
            prev, fresh = st.address, bool(st.end_sequence)
            n += 1
        return n


UNIT_KINDS = {
    "DW_UT_compile": 1,
    "DW_UT_partial": 2,
    "DW_UT_type": 3,
    "DW_UT_skeleton": 4,
    "DW_UT_split_compile": 5,
    "DW_UT_split_type": 6,
}


SUP_BIT = 1 << 63


def walk_dwarf(elf: ELFFile, out: Oracle, sup_elf: ELFFile | None = None) -> None:
    """Every unit of ``elf``'s DWARF, then (dwz) every unit of the supplementary file's, with
    SUP_BIT set in their DIE offsets, as the core appends them."""
    # relocate_dwarf_sections=True (the default): relocatable objects get relocated
    dwarf = elf.get_dwarf_info(follow_links=False)
    parts = [(dwarf, 0)]
    if sup_elf is not None:
        sup = sup_elf.get_dwarf_info(follow_links=False)
        dwarf.supplementary_dwarfinfo = sup  # DW_FORM_GNU_strp_alt strings are read from it
        parts.append((sup, SUP_BIT))
    big_endian = not elf.little_endian
    for d, tag in parts:
        locparser = LocationParser(d.location_lists())
        seen_programs: set[int] = set()  # dwz partial units share a line program: rows once
        for cu in d.iter_CUs():
            walk_unit(d, cu, out, big_endian, locparser, tag, seen_programs)


def walk_unit(
    dwarf, cu, out: Oracle, big_endian: bool, locparser: LocationParser, tag: int, seen_programs: set[int]
) -> None:
    # DW_OP_GNU_parameter_ref's operand is a 4-byte CU offset in GCC's encoding, which
    # pyelftools reads as an offset-size value: right only for 32-bit DWARF (all of the
    # fixtures). A 64-bit-DWARF unit would need its own parser here.
    assert cu.structs.dwarf_format == 32, f"unit {cu.cu_offset:#x}: 64-bit DWARF not handled"
    index = len(out.units)  # the unit's row in the units table
    w = UnitWalker(dwarf, cu, out, big_endian, locparser, tag, index)
    w.walk()
    top = w.top.attributes
    stmt_list = top["DW_AT_stmt_list"].value if "DW_AT_stmt_list" in top else None
    nlines = 0
    if stmt_list is None or stmt_list not in seen_programs:
        nlines = w.lines(index)
        if stmt_list is not None:
            seen_programs.add(stmt_list)
    out.units.append(
        {
            "offset": cu.cu_offset | tag,
            "version": cu.header["version"],
            "kind": UNIT_KINDS.get(cu.header.get("unit_type"), 1),
            "address_size": cu.header["address_size"],
            "name": text(top["DW_AT_name"].value) if "DW_AT_name" in top else "",
            "comp_dir": text(w.comp_dir),
            "producer": text(top["DW_AT_producer"].value) if "DW_AT_producer" in top else "",
            "language": top["DW_AT_language"].value if "DW_AT_language" in top else 0,
            "dies": w.dies,
            "lines": nlines,
            "error": "",
        }
    )


# --------------------------------------------------------------------------------------
# ELF: sections and symbols
# --------------------------------------------------------------------------------------


def raw_section_header(elf: ELFFile, index: int) -> tuple[int, int]:
    """(sh_type, sh_flags) as numbers: pyelftools turns sh_type into a name, so the header
    is read again here from its raw bytes."""
    e = elf.header
    endian = "<" if elf.little_endian else ">"
    elf.stream.seek(e["e_shoff"] + index * e["e_shentsize"])
    raw = elf.stream.read(e["e_shentsize"])
    if elf.elfclass == 64:
        _name, sh_type, sh_flags = struct.unpack(endian + "IIQ", raw[:16])
    else:
        _name, sh_type, sh_flags = struct.unpack(endian + "III", raw[:12])
    return sh_type, sh_flags


SHF_ALLOC = 0x2
SHF_COMPRESSED = 0x800
SHT_NOBITS = 8
SHN_COMMON = 0xFFF2
SHN_LORESERVE = 0xFF00


def is_relocatable(elf: ELFFile) -> bool:
    return elf.header["e_type"] == "ET_REL"


def section_bases(elf: ELFFile) -> dict[int, int]:
    """The address each section is given, by section index.

    In a relocatable object every section is at address 0, so the core (core/src/elf.rs,
    ``section_bases``: "As libdwfl does") lays the allocated sections out one after another
    in index order, each at its own alignment, and uses those addresses for the sections
    table, the symbols and the relocated DWARF alike; non-allocated sections stay at 0.
    That convention is recomputed here from pyelftools' section headers. Any other file:
    sh_addr."""
    bases: dict[int, int] = {}
    nxt = 0
    rel = is_relocatable(elf)
    for i, sec in enumerate(elf.iter_sections()):
        if i == 0:
            continue
        if not rel:
            bases[i] = sec["sh_addr"]
        elif sec["sh_flags"] & SHF_ALLOC:
            align = max(sec["sh_addralign"], 1)
            nxt = -(-nxt // align) * align
            bases[i] = nxt
            nxt += sec["sh_size"]
        else:
            bases[i] = 0
    return bases


def read_sections(elf: ELFFile, out: Oracle) -> None:
    bases = section_bases(elf)
    for i, sec in enumerate(elf.iter_sections()):
        if i == 0:
            continue  # the null section: not a section
        sh_type, sh_flags = raw_section_header(elf, i)
        assert sh_flags == sec["sh_flags"]
        compressed = bool(sh_flags & SHF_COMPRESSED) or (sec.name.startswith(".zdebug") and sec.data()[:4] == b"ZLIB")
        out.sections.append(
            {
                "name": sec.name,
                "index": i,
                "address": bases[i],
                "size": sec["sh_size"],
                "offset": 0 if sh_type == SHT_NOBITS else sec["sh_offset"],  # NOBITS: no file space
                "type": sh_type,
                "flags": sh_flags,
                "compressed": int(compressed),
            }
        )


#: symbols.kind, from STT_*: OTHER=0 FUNC=1 OBJECT=2 SECTION=3 FILE=4 TLS=5 NOTYPE=6
STT_KIND = {0: 6, 1: 2, 2: 1, 3: 3, 4: 4, 5: 2, 6: 5, 10: 1}
STT_FUNC, STT_GNU_IFUNC = 2, 10


def symtab(elf: ELFFile, sh_type: str):
    for sec in elf.iter_sections():
        if sec["sh_type"] == sh_type and sec.num_symbols() > 1:
            return sec
    return None


class CodeAddress:
    """Where a function symbol's code starts, the core's convention for ``symbols.address``
    (core/src/elf.rs, ``CodeAddress``): an ARM function symbol has the Thumb bit cleared; a
    ppc64 ELFv1 function symbol in ``.opd`` names a descriptor whose first doubleword is the
    code address. Read here from pyelftools' view of the file."""

    def __init__(self, elf: ELFFile) -> None:
        machine = elf.header["e_machine"]
        self.thumb = machine == "EM_ARM"
        self.opd = None
        if machine == "EM_PPC64":
            for i, sec in enumerate(elf.iter_sections()):
                if sec.name == ".opd":
                    self.opd = (i, sec["sh_addr"], sec.data())
        self.order = "little" if elf.little_endian else "big"

    def of(self, value: int, stt: int, shndx: Any) -> int:
        if stt not in (STT_FUNC, STT_GNU_IFUNC):
            return value
        if self.thumb:
            return value & ~1
        if self.opd is not None and shndx == self.opd[0]:
            at = value - self.opd[1]
            if at >= 0 and at + 8 <= len(self.opd[2]):
                return int.from_bytes(self.opd[2][at : at + 8], self.order)
        return value


def read_symbols(elf: ELFFile, debug_elf: ELFFile | None, out: Oracle) -> None:
    """``.symtab`` of the binary, else of the debug file, else ``.dynsym``."""
    sec, origin = symtab(elf, "SHT_SYMTAB"), "symtab"
    if sec is None and debug_elf is not None:
        sec, origin = symtab(debug_elf, "SHT_SYMTAB"), "debug-file symtab"
    if sec is None:
        sec, origin = symtab(elf, "SHT_DYNSYM"), "dynsym"
    out.symbols_from = origin
    if sec is None:
        return
    out.symtab_entries = sec.num_symbols()
    owner = sec.elffile
    code = CodeAddress(owner)
    bases = section_bases(owner) if is_relocatable(owner) else {}
    data = sec.data()
    entsize = sec["sh_entsize"]
    # st_info and st_other as raw bytes (pyelftools decodes them into names and bit fields)
    info_at = 4 if owner.elfclass == 64 else 12
    for i, sym in enumerate(sec.iter_symbols()):
        if i == 0:
            continue  # the null symbol is not a symbol
        st_info, st_other = data[i * entsize + info_at], data[i * entsize + info_at + 1]
        shndx = sym["st_shndx"]
        section = shndx if isinstance(shndx, int) and 0 < shndx < SHN_LORESERVE else 0
        # a COMMON symbol's value is its alignment, not an address
        value = 0 if shndx in ("SHN_COMMON", SHN_COMMON) else sym["st_value"]
        out.symbols.append(
            {
                "name": sym.name,
                "address": code.of(value, st_info & 0xF, shndx) + bases.get(section, 0),
                "size": sym["st_size"],
                "kind": STT_KIND.get(st_info & 0xF, 6),
                "binding": st_info >> 4,
                "other": st_other,
                "section": section,
            }
        )


# --------------------------------------------------------------------------------------
# Building both sides (once per fixture)
# --------------------------------------------------------------------------------------


def pyelftools_reads_dwarf(elf: ELFFile) -> bool:
    try:
        for sec in elf.iter_sections():
            if sec.name.startswith(".debug_") and sec.compressed:
                sec.data()
    except ELFCompressionError:
        return False
    return True


def decompressed_copy(path: Path, tmp: Path) -> Path:
    """pyelftools 0.33 only inflates ELFCOMPRESS_ZLIB sections (elf/sections.py raises
    "Unknown compression type" for ELFCOMPRESS_ZSTD, and Python 3.11 has no zstd module).
    Work-around: binutils' objcopy inflates the debug sections into a copy, whose DWARF
    bytes are those of the original; pyelftools walks that copy. (Sections and symbols are
    still read from the original file.)"""
    objcopy = shutil.which("objcopy")
    if objcopy is None:
        pytest.skip("pyelftools cannot inflate ELFCOMPRESS_ZSTD sections and objcopy is missing")
    out = tmp / (path.name + ".inflated")
    subprocess.run([objcopy, "--decompress-debug-sections", str(path), str(out)], check=True)
    return out


def laid_out_copy(elf: ELFFile, path: Path, tmp: Path) -> Path:
    """A copy of a relocatable object whose defined symbols hold their address in the
    synthetic layout of ``section_bases`` (COMMON symbols: 0), so that pyelftools' own
    relocation of the debug sections (S + A, with S = st_value) yields the addresses the
    core's layout gives. Only ``.symtab`` values change; every other byte is the original."""
    bases = section_bases(elf)
    raw = bytearray(path.read_bytes())
    end = "<" if elf.little_endian else ">"
    fmt, at = (end + "Q", 8) if elf.elfclass == 64 else (end + "I", 4)
    for sec in elf.iter_sections():
        if sec["sh_type"] != "SHT_SYMTAB":
            continue
        for i, sym in enumerate(sec.iter_symbols()):
            shndx = sym["st_shndx"]
            pos = sec["sh_offset"] + i * sec["sh_entsize"] + at
            if isinstance(shndx, int) and 0 < shndx < SHN_LORESERVE:
                struct.pack_into(fmt, raw, pos, sym["st_value"] + bases[shndx])
            elif shndx == "SHN_COMMON":
                struct.pack_into(fmt, raw, pos, 0)
    out = tmp / (path.name + ".laid-out")
    out.write_bytes(bytes(raw))
    return out


def build_oracle(path: Path, debug_path: Path | None, dwarf: bool, sup_path: Path | None = None) -> Oracle:
    out = Oracle()
    with contextlib.ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory()))

        def elf_of(p: Path) -> ELFFile:
            return ELFFile(stack.enter_context(open(p, "rb")))

        elf = elf_of(path)
        debug_elf = elf_of(debug_path) if debug_path else None
        read_sections(elf, out)
        read_symbols(elf, debug_elf, out)
        if not dwarf:
            return out
        dwarf_elf, dwarf_path = (debug_elf, debug_path) if debug_elf else (elf, path)
        if not pyelftools_reads_dwarf(dwarf_elf):
            dwarf_elf = elf_of(decompressed_copy(dwarf_path, tmp))
            out.param_sites_valid = False
        elif is_relocatable(dwarf_elf):
            dwarf_elf = elf_of(laid_out_copy(dwarf_elf, dwarf_path, tmp))
        walk_dwarf(dwarf_elf, out, elf_of(sup_path) if sup_path else None)
    return out


@functools.cache
def oracle(fid: str) -> Oracle:
    fx = BY_ID[fid]
    path = BIN / fx.path
    if not path.exists():
        pytest.skip(f"fixture {fx.path} not built")
    return build_oracle(
        path,
        BIN / fx.debug_file if fx.debug_file else None,
        fx in DWARF_FIXTURES,
        BIN / fx.sup_file if fx.sup_file else None,
    )


TABLE_NAMES = TABLES  # every table of the core


def core_tables(path: Path, debug_file: Path | None = None) -> tuple[dict[str, str], dict[str, list[dict]]]:
    b = patchscope.open(path, debug_file=debug_file, use_cache=False)
    return dict(b.info), {n: getattr(b, n).to_pylist() for n in TABLE_NAMES}


@functools.cache
def core(fid: str) -> tuple[dict[str, str], dict[str, list[dict]]]:
    fx = BY_ID[fid]
    return core_tables(BIN / fx.path, BIN / fx.debug_file if fx.debug_file else None)


# --------------------------------------------------------------------------------------
# Comparison with a useful message
# --------------------------------------------------------------------------------------

HEX_FIELDS = {
    "die",
    "parent",
    "origin",
    "specification",
    "function",
    "scope",
    "owner",
    "target",
    "low_pc",
    "entry_pc",
    "return_pc",
    "call_pc",
    "low",
    "high",
    "address",
    "offset",
}


def show(row: dict | None, fields: list[str]) -> str:
    if row is None:
        return "(no row)"
    parts = []
    for k in fields:
        v = row.get(k)
        parts.append(f"{k}={v:#x}" if k in HEX_FIELDS and isinstance(v, int) else f"{k}={v!r}")
    return ", ".join(parts)


def assert_rows(
    fid: str,
    table: str,
    core_rows: list[dict],
    oracle_rows: list[dict],
    fields: list[str],
    key: str | None = "die",
) -> None:
    mine = [tuple(r[f] for f in fields) for r in core_rows]
    theirs = [tuple(r[f] for f in fields) for r in oracle_rows]
    if mine == theirs:
        return
    i = next((i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b), min(len(mine), len(theirs)))
    c = core_rows[i] if i < len(core_rows) else None
    o = oracle_rows[i] if i < len(oracle_rows) else None
    where = ""
    if key is not None:
        k = (c or o or {}).get(key)
        where = f" (DIE {k:#x})" if isinstance(k, int) else ""
    diff = [f for f in fields if c is not None and o is not None and c[f] != o[f]]
    pytest.fail(
        f"{fid}: {table}: core has {len(mine)} rows, pyelftools {len(theirs)}; "
        f"first difference at row {i}{where}"
        + (f" in {diff}" if diff else "")
        + f"\n  core:       {show(c, fields)}\n  pyelftools: {show(o, fields)}",
        pytrace=False,
    )


# --------------------------------------------------------------------------------------
# The tests
# --------------------------------------------------------------------------------------

dwarf_fixtures = pytest.mark.parametrize("fid", DWARF_IDS)
all_fixtures = pytest.mark.parametrize("fid", ALL_IDS)

#: The llvm-dwarfdump oracle (fixtures/expected/<variant>.json) that counts each fixture's DIEs:
#: its own, or that of the build it was packaged from (same DWARF, split / compressed / dwz).
#: elf-arches/* have none.
DIE_COUNTS_OF = {
    **{v: v for v in ("x86_64", "x86_64-O3", "x86_64-dwarf4", "aarch64", "aarch64-outline")},
    **{v: v for v in ("aarch64-partition", "ppc64le", "riscv64", "x86_64-rel", "aarch64-rel")},
    **{v: "x86_64" for v in ("x86_64-gz", "x86_64-zstd", "x86_64-split", "x86_64-dwz")},
}
#: Every build of the whole corpus inlines clampi (6 sites), mix32 (3) and sq (3) fully
#: (fixtures/README.md, "fully inlined static").
CORPUS_MIN_INLINE_SITES = 12


def die_counts(fid: str) -> dict[str, int] | None:
    """``die_counts`` of the fixture's llvm-dwarfdump oracle, or None."""
    import json

    v = DIE_COUNTS_OF.get(fid)
    return json.loads((ROOT / "fixtures/expected" / f"{v}.json").read_text())["die_counts"] if v else None


@dwarf_fixtures
def test_units(fid: str) -> None:
    info, t = core(fid)
    o = oracle(fid)
    assert info["unit_errors"] == "0", [u["error"] for u in t["units"] if u["error"]]
    assert o.units, "pyelftools found no units"
    assert_rows(
        fid,
        "units",
        t["units"],
        o.units,
        [
            "offset",
            "version",
            "kind",
            "address_size",
            "name",
            "comp_dir",
            "producer",
            "language",
            "dies",
            "lines",
            "error",
        ],
        key="offset",
    )


@dwarf_fixtures
def test_subprograms(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.subprograms
    assert_rows(
        fid,
        "subprograms",
        t["subprograms"],
        o.subprograms,
        [
            "die",
            "parent",
            "name",
            "linkage_name",
            "origin",
            "specification",
            "inline",
            "flags",
            "decl_file",
            "decl_line",
            "calling_convention",
            "low_pc",
            "entry_pc",
        ],
    )


@dwarf_fixtures
def test_ranges(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.ranges
    assert_rows(fid, "ranges", t["ranges"], o.ranges, ["owner", "low", "high"], key="owner")


@dwarf_fixtures
def test_inline_sites(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    # not two empty lists: pyelftools finds what llvm-dwarfdump counted
    counts = die_counts(fid)
    if counts is not None:
        assert len(o.inline_sites) == counts["inlined_subroutine"] > 0
    else:
        assert len(o.inline_sites) >= CORPUS_MIN_INLINE_SITES
    assert_rows(
        fid,
        "inline_sites",
        t["inline_sites"],
        o.inline_sites,
        [
            "die",
            "origin",
            "function",
            "parent",
            "depth",
            "entry_pc",
            "low_pc",
            "call_file",
            "call_line",
            "call_column",
        ],
    )


@dwarf_fixtures
def test_call_sites(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    counts = die_counts(fid)
    tails = sum(bool(r["tail"]) for r in o.call_sites)
    if counts is not None:
        assert (len(o.call_sites), tails) == (counts["call_site"], counts["call_site_tail"])
    assert len(o.call_sites) > 0 and tails > 0
    assert_rows(
        fid,
        "call_sites",
        t["call_sites"],
        o.call_sites,
        ["die", "function", "scope", "return_pc", "call_pc", "target", "tail", "indirect"],
    )


@dwarf_fixtures
def test_params(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.params
    # identity and structure first, so that a location difference is reported as such
    assert_rows(fid, "params", t["params"], o.params, ["die", "owner", "position", "name", "origin", "artificial"])
    assert_rows(
        fid,
        "params (location at the owner's entry)",
        t["params"],
        o.params,
        ["die", "owner", "loc_kind", "loc_flags", "loc_reg", "const_value"],
    )


@dwarf_fixtures
def test_lines(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.lines
    # (address, line, is_stmt, end_sequence) per unit first: the core of the line table
    for unit in sorted({r["unit"] for r in o.lines} | {r["unit"] for r in t["lines"]}):
        mine = [r for r in t["lines"] if r["unit"] == unit]
        theirs = [r for r in o.lines if r["unit"] == unit]
        simple, simple_o = _line_essentials(mine), _line_essentials(theirs)
        assert_rows(
            fid,
            f"lines of unit {unit}",
            simple,
            simple_o,
            ["address", "line", "is_stmt", "end_sequence"],
            key=None,
        )
    assert_rows(
        fid,
        "lines",
        t["lines"],
        o.lines,
        ["address", "file", "line", "column", "flags", "view", "unit"],
        key=None,
    )


def _line_essentials(rows: list[dict]) -> list[dict]:
    return [
        {
            "address": r["address"],
            "line": r["line"],
            "is_stmt": bool(r["flags"] & IS_STMT),
            "end_sequence": bool(r["flags"] & END_SEQUENCE),
        }
        for r in rows
    ]


@all_fixtures
def test_symbols(fid: str) -> None:
    info, t = core(fid)
    o = oracle(fid)
    assert info["symbols_from"] == o.symbols_from
    assert o.symbols
    # the table has one row per symbol-table entry but the null one (index 0)
    assert len(t["symbols"]) == o.symtab_entries - 1, f"{len(t['symbols'])} rows, {o.symtab_entries} entries"
    assert_rows(
        fid,
        "symbols",
        t["symbols"],
        o.symbols,
        ["name", "address", "size", "kind", "binding", "other", "section"],
        key=None,
    )


@all_fixtures
def test_sections(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.sections
    assert_rows(
        fid,
        "sections",
        t["sections"],
        o.sections,
        ["name", "index", "address", "size", "offset", "type", "flags", "compressed"],
        key=None,
    )


@pytest.mark.parametrize("fid", [f.id for f in ELF_ONLY_FIXTURES if f.id == "x86_64-nodebug"])
def test_no_dwarf_no_rows(fid: str) -> None:
    info, t = core(fid)
    assert info["dwarf"] == "none"
    for name in ("units", "subprograms", "params", "inline_sites", "call_sites", "ranges", "lines"):
        assert t[name] == [], name


# --------------------------------------------------------------------------------------
# Location kinds the fixtures do not reach at an entry address
# --------------------------------------------------------------------------------------
#
# At -O2 every parameter's location at its owner's entry is a register, a constant, a
# DW_OP_GNU_parameter_ref, a computed value or an implicit pointer: no fixture has a frame-base
# (MEMORY) or DW_OP_entry_value location *at the entry address*. So the expressions that decide
# the kinds are rewritten in place, in a copy of the binary, with same-length expressions of
# every kind (padded with DW_OP_nop), and the core and pyelftools read the copy.


class Template(NamedTuple):
    kind: int
    code: bytes
    reg: int = NO_REG
    value: int | None = None  # CONSTANT: value if little-endian, or a (little, big) pair
    pad: bool = True  # may be followed by DW_OP_nop (not for "literal; stack_value")


NOP = 0x96
TEMPLATES = [
    Template(K_IMPLICIT_POINTER, bytes([0xA0, 0x10, 0, 0, 0, 0x00])),  # implicit_pointer <0x10> +0
    Template(K_CONSTANT, bytes([0x9E, 0x04, 0x2A, 0, 0, 0]), value=(0x2A, 0x2A000000)),  # implicit_value 4
    Template(K_PARAM_REF, bytes([0xFA, 0x10, 0, 0, 0])),  # GNU_parameter_ref <0x10>
    Template(K_ENTRY_VALUE, bytes([0xF3, 0x02, 0x90, 0x11, 0x9F]), reg=17),  # GNU_entry_value(regx 17); stack_value
    Template(K_ENTRY_VALUE, bytes([0xA3, 0x01, 0x55]), reg=5),  # entry_value(reg5)
    Template(K_COMPOSITE, bytes([0x50, 0x93, 0x08]), reg=0),  # reg0; piece 8
    Template(K_CONSTANT, bytes([0x9E, 0x01, 0x2A]), value=(0x2A, 0x2A)),  # implicit_value 1
    Template(K_CONSTANT, bytes([0x09, 0xFD, 0x9F]), value=(-3, -3), pad=False),  # const1s -3; stack_value
    Template(K_COMPUTED, bytes([0x53, 0x9F])),  # reg3; stack_value
    Template(K_MEMORY, bytes([0x91, 0x6C])),  # fbreg -20
    Template(K_REGISTER, bytes([0x90, 0x21]), reg=33),  # regx 33
    Template(K_CONSTANT, bytes([0x37, 0x9F]), value=(7, 7), pad=False),  # lit7; stack_value
    Template(K_MEMORY, bytes([0x30])),  # lit0: a literal address
    Template(K_ERROR, bytes([0xFF])),  # not an opcode
    Template(K_REGISTER, bytes([0x5D]), reg=13),  # reg13
]


def plan_mutations(
    sites: list[tuple[int, str, int, bytes]],
) -> list[tuple[tuple[int, str, int, bytes], Template]]:
    """Gives every site a template that fits, longest sites first, least-used template first.
    GCC shares one location list between parameters with the same location (x86_64: 0x22d5
    and 0x22e2): a shared expression is rewritten once."""
    used = [0] * len(TEMPLATES)
    plan = []
    seen = set()
    for site in sorted(sites, key=lambda s: -len(s[3])):
        if (site[1], site[2]) in seen:
            continue
        seen.add((site[1], site[2]))
        n = len(site[3])
        fits = [i for i, t in enumerate(TEMPLATES) if len(t.code) == n or (t.pad and len(t.code) < n)]
        if not fits:
            continue
        i = min(fits, key=lambda i: used[i])
        used[i] += 1
        plan.append((site, TEMPLATES[i]))
    return plan


@pytest.mark.parametrize("fid", ["x86_64", "x86_64-dwarf4", "elf-arches/s390x", "elf-arches/mips"])
def test_param_location_kinds_rewritten(fid: str, tmp_path: Path) -> None:
    fx = BY_ID[fid]
    src = BIN / fx.path
    o = oracle(fid)
    assert o.param_sites and o.param_sites_valid
    raw = bytearray(src.read_bytes())
    with open(src, "rb") as f:
        elf = ELFFile(f)
        sec_off = {}
        for sec in elf.iter_sections():
            if sec.name in (".debug_info", ".debug_loc", ".debug_loclists"):
                assert not sec.compressed
                sec_off[sec.name] = sec["sh_offset"]
        big = not elf.little_endian
    plan = plan_mutations(o.param_sites)
    by_site = {}
    for (die, section, off, code), t in plan:
        at = sec_off[section] + off
        assert bytes(raw[at : at + len(code)]) == code, f"param {die:#x}: expression not where expected"
        raw[at : at + len(code)] = t.code + bytes([NOP] * (len(code) - len(t.code)))
        value = 0 if t.value is None else t.value[1 if big else 0]
        by_site[(section, off)] = (t.kind, t.reg, value)
    expect = {die: by_site[(section, off)] for die, section, off, _ in o.param_sites if (section, off) in by_site}
    mutated = tmp_path / src.name
    mutated.write_bytes(bytes(raw))

    theirs = build_oracle(mutated, None, True)
    _, mine = core_tables(mutated)
    # the oracle reads each rewritten expression as what it was written to be
    for p in theirs.params:
        if p["die"] in expect:
            got = (p["loc_kind"], p["loc_reg"], p["const_value"])
            assert got == expect[p["die"]], f"pyelftools side: param {p['die']:#x}: {got} != {expect[p['die']]}"
    kinds = {e[0] for e in expect.values()}
    assert {K_REGISTER, K_MEMORY, K_ENTRY_VALUE, K_PARAM_REF, K_CONSTANT, K_COMPUTED, K_COMPOSITE} <= kinds
    assert_rows(
        fid + " (rewritten expressions)",
        "params",
        mine["params"],
        theirs.params,
        ["die", "owner", "position", "loc_kind", "loc_reg", "const_value"],
    )


# --------------------------------------------------------------------------------------
# What a function returns (the liveness of a return reads only its result registers)
# --------------------------------------------------------------------------------------

QUALIFIERS = {
    "DW_TAG_typedef",
    "DW_TAG_const_type",
    "DW_TAG_volatile_type",
    "DW_TAG_restrict_type",
    "DW_TAG_atomic_type",
}
POINTERS = {"DW_TAG_pointer_type", "DW_TAG_reference_type", "DW_TAG_rvalue_reference_type"}
INTEGER_ENCODINGS = {
    "DW_ATE_signed",
    "DW_ATE_unsigned",
    "DW_ATE_signed_char",
    "DW_ATE_unsigned_char",
    "DW_ATE_boolean",
    "DW_ATE_UTF",
}


def result_class(die) -> int:
    """``_core.result`` of a subprogram DIE, read with pyelftools."""
    from elftools.dwarf.enums import ENUM_DW_ATE

    encodings = {v: k for k, v in ENUM_DW_ATE.items()}
    while "DW_AT_type" not in die.attributes and "DW_AT_abstract_origin" in die.attributes:
        die = die.get_DIE_from_attribute("DW_AT_abstract_origin")
    if "DW_AT_type" not in die.attributes:
        return _core.result.VOID
    t = die.get_DIE_from_attribute("DW_AT_type")
    while t.tag in QUALIFIERS and "DW_AT_type" in t.attributes:
        t = t.get_DIE_from_attribute("DW_AT_type")
    size = udata(t, "DW_AT_byte_size")
    if t.tag in POINTERS or (t.tag == "DW_TAG_enumeration_type" and 1 <= size <= 8):
        return _core.result.INTEGER
    if t.tag == "DW_TAG_base_type" and 1 <= size <= 8:
        encoding = encodings.get(udata(t, "DW_AT_encoding"))
        if encoding in INTEGER_ENCODINGS:
            return _core.result.INTEGER
        if encoding == "DW_ATE_float":
            return _core.result.FLOAT
    return _core.result.UNKNOWN


@pytest.mark.parametrize(
    "path",
    [
        "x86_64/corpus",
        "x86_64-O3/corpus",
        "aarch64/corpus",
        "ppc64le/corpus",
        "riscv64/corpus",
        "elf-arches/arm/corpus",
        "x86_64-writes/corpus",
    ],
)
def test_result_classes(path: str) -> None:
    with open(BIN / path, "rb") as f:
        dwarf = ELFFile(f).get_dwarf_info()
        want = {
            die.offset: result_class(die)
            for cu in dwarf.iter_CUs()
            for die in cu.iter_DIEs()
            if die.tag == "DW_TAG_subprogram"
        }
    b = patchscope.open(BIN / path, use_cache=False)
    dies = np.array(sorted(want), np.uint64)
    got = Columns.from_core(b.core.result_classes(dies.tobytes())).table("results").column("class").to_pylist()
    assert dict(zip(dies.tolist(), got)) == want
    assert set(want.values()) >= {_core.result.VOID, _core.result.INTEGER}

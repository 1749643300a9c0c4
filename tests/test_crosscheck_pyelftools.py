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

Where pyelftools cannot decode something, the work-around is described where it is made.
"""

from __future__ import annotations

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

from elftools.common.exceptions import ELFCompressionError  # noqa: E402
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

ROOT = Path(__file__).resolve().parent.parent
BIN = ROOT / "fixtures" / "bin"

NONE = 0xFFFF_FFFF_FFFF_FFFF  # "no DIE"
NO_REG = 0xFFFF

# subprograms.flags
EXTERNAL, DECLARATION, ARTIFICIAL, NORETURN, HAS_CODE, PROTOTYPED = 1, 2, 4, 8, 16, 32
# lines.flags
IS_STMT, END_SEQUENCE, PROLOGUE_END, EPILOGUE_BEGIN, BASIC_BLOCK = 1, 2, 4, 8, 16
# params.loc_kind (documented in core/src/dwarf/location.rs)
K_NONE, K_REGISTER, K_MEMORY, K_ENTRY_VALUE, K_PARAM_REF = 0, 1, 2, 3, 4
K_CONSTANT, K_COMPUTED, K_COMPOSITE, K_NOT_AT_ENTRY, K_IMPLICIT_POINTER, K_ERROR = 5, 6, 7, 8, 9, 10


class Fixture(NamedTuple):
    id: str
    path: str
    debug_file: str | None = None


#: Fixtures with DWARF, as the brief lists them.
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
]
#: Fixtures checked at the ELF level only (no DWARF, or DWARF split over a dwz
#: supplementary file, which is outside this cross-check).
ELF_ONLY_FIXTURES = [
    Fixture("x86_64-nodebug", "x86_64-nodebug/corpus"),
    Fixture("x86_64-dwz", "x86_64-dwz/corpus"),
]
ALL_FIXTURES = DWARF_FIXTURES + ELF_ONLY_FIXTURES
BY_ID = {f.id: f for f in ALL_FIXTURES}
DWARF_IDS = [f.id for f in DWARF_FIXTURES]
ALL_IDS = [f.id for f in ALL_FIXTURES]


# --------------------------------------------------------------------------------------
# Small helpers
# --------------------------------------------------------------------------------------


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


ADDRESS_FORMS = {"DW_FORM_addr", "DW_FORM_addrx", "DW_FORM_addrx1", "DW_FORM_addrx2", "DW_FORM_addrx3",
                 "DW_FORM_addrx4", "DW_FORM_GNU_addr_index"}


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
            if d == 0:
                directory = self.comp_dir or None
            else:
                directory = dirs[d - 1] if d - 1 < len(dirs) else None
        name = entry.name
        if not name.startswith(b"/") and directory:
            name = directory + b"/" + name
        cd = self.comp_dir
        if cd and len(name) > len(cd) and name.startswith(cd) and name[len(cd):len(cd) + 1] == b"/":
            name = name[len(cd) + 1:]
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
    sections: list[dict] = field(default_factory=list)
    #: loc_kind of each param DIE that came from a location list (for the report)
    loclist_params: int = 0


class UnitWalker:
    def __init__(self, dwarf, cu, out: Oracle, big_endian: bool, locparser: LocationParser) -> None:
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
            return classify(self.expr, loc.loc_expr, self.big_endian)
        self.out.loclist_params += 1
        base = self.base
        default = None
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
                    return classify(self.expr, e.loc_expr, self.big_endian)
        if default is not None:
            return classify(self.expr, default.loc_expr, self.big_endian)
        return Loc(K_NOT_AT_ENTRY)

    # -- the walk ----------------------------------------------------------------------

    def walk(self) -> None:
        self.visit(self.top, ROOT_SCOPE, 0)

    def visit(self, die, parent: Scope, position: int) -> None:
        self.dies += 1
        tag = die.tag
        me = parent._replace(die=die.offset, kind=OTHER)
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
        for bit, name in ((EXTERNAL, "DW_AT_external"), (DECLARATION, "DW_AT_declaration"),
                          (ARTIFICIAL, "DW_AT_artificial"), (NORETURN, "DW_AT_noreturn"),
                          (PROTOTYPED, "DW_AT_prototyped")):
            if flag(die, name):
                flags |= bit
        if ranges:
            flags |= HAS_CODE
        a = die.attributes
        linkage = a.get("DW_AT_linkage_name") or a.get("DW_AT_MIPS_linkage_name")
        self.out.subprograms.append({
            "die": die.offset,
            "parent": parent.function,
            "name": text(a["DW_AT_name"].value) if "DW_AT_name" in a else "",
            "linkage_name": text(linkage.value) if linkage is not None else "",
            "origin": ref(die, "DW_AT_abstract_origin"),
            "specification": ref(die, "DW_AT_specification"),
            "inline": udata(die, "DW_AT_inline"),
            "flags": flags,
            "decl_file": self.files.path(udata(die, "DW_AT_decl_file", -1)) if "DW_AT_decl_file" in a else "",
            "decl_line": udata(die, "DW_AT_decl_line"),
            "calling_convention": udata(die, "DW_AT_calling_convention"),
            "low_pc": low_pc,
            "entry_pc": entry,
        })
        self.add_ranges(die.offset, ranges)
        return Scope(die.offset, FUNC, entry, die.offset, die.offset, 0)

    def inline_site(self, die, parent: Scope) -> Scope:
        low_pc, entry, ranges = self.extent(die)
        a = die.attributes
        depth = parent.inline_depth + 1
        self.out.inline_sites.append({
            "die": die.offset,
            "origin": ref(die, "DW_AT_abstract_origin"),
            "function": parent.function,
            "parent": parent.inline_scope,
            "depth": depth,
            "entry_pc": entry,
            "low_pc": low_pc,
            "call_file": self.files.path(udata(die, "DW_AT_call_file")) if "DW_AT_call_file" in a else "",
            "call_line": udata(die, "DW_AT_call_line"),
            "call_column": udata(die, "DW_AT_call_column"),
        })
        self.add_ranges(die.offset, ranges)
        return Scope(die.offset, INLINE, entry, parent.function, die.offset, depth)

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
        self.out.params.append({
            "die": die.offset,
            "owner": owner.die,
            "position": position,
            "name": text(a["DW_AT_name"].value) if "DW_AT_name" in a else "",
            "origin": ref(die, "DW_AT_abstract_origin"),
            "artificial": int(flag(die, "DW_AT_artificial")),
            "loc_kind": loc.kind,
            "loc_reg": loc.reg,
            "const_value": loc.value,
        })

    def call_site(self, die, scope: Scope) -> None:
        a = die.attributes

        def addr(*names: str) -> int:
            out = 0
            for attr in a.values():
                if attr.name in names:
                    out = attr.value
            return out

        self.out.call_sites.append({
            "die": die.offset,
            "function": scope.function,
            "scope": scope.inline_scope,
            "return_pc": addr("DW_AT_call_return_pc", "DW_AT_low_pc"),
            "call_pc": addr("DW_AT_call_pc"),
            "target": first_ref(die, "DW_AT_call_origin", "DW_AT_abstract_origin"),
            "tail": int(flag(die, "DW_AT_call_tail_call") or flag(die, "DW_AT_GNU_tail_call")),
            "indirect": int("DW_AT_call_target" in a or "DW_AT_GNU_call_site_target" in a),
        })

    # -- line program ------------------------------------------------------------------

    def lines(self, unit_index: int) -> int:
        lp = self.dwarf.line_program_for_CU(self.cu)
        if lp is None:
            return 0
        n = 0
        prev, view, fresh = 0, 0, True
        for entry in lp.get_entries():
            st = entry.state
            if st is None:
                continue
            # GCC's location views: a row's rank among consecutive rows at one address,
            # restarting at every new address and every new sequence.
            view = min(view + 1, 0xFFFF) if (not fresh and st.address == prev) else 0
            flags = ((IS_STMT if st.is_stmt else 0) | (END_SEQUENCE if st.end_sequence else 0)
                     | (PROLOGUE_END if st.prologue_end else 0) | (EPILOGUE_BEGIN if st.epilogue_begin else 0)
                     | (BASIC_BLOCK if st.basic_block else 0))
            self.out.lines.append({
                "address": st.address,
                "file": self.files.path(st.file),
                "line": st.line,
                "column": st.column,
                "flags": flags,
                "view": view,
                "unit": unit_index,
            })
            prev, fresh = st.address, bool(st.end_sequence)
            n += 1
        return n


UNIT_KINDS = {"DW_UT_compile": 1, "DW_UT_partial": 2, "DW_UT_type": 3, "DW_UT_skeleton": 4,
              "DW_UT_split_compile": 5, "DW_UT_split_type": 6}


def walk_dwarf(elf: ELFFile, out: Oracle) -> None:
    dwarf = elf.get_dwarf_info()  # relocate_dwarf_sections=True: relocatable objects get relocated
    locparser = LocationParser(dwarf.location_lists())
    big_endian = not elf.little_endian
    for index, cu in enumerate(dwarf.iter_CUs()):
        # DW_OP_GNU_parameter_ref's operand is a 4-byte CU offset in GCC's encoding, which
        # pyelftools reads as an offset-size value: right only for 32-bit DWARF (all of the
        # fixtures). A 64-bit-DWARF unit would need its own parser here.
        assert cu.structs.dwarf_format == 32, f"unit {cu.cu_offset:#x}: 64-bit DWARF not handled"
        w = UnitWalker(dwarf, cu, out, big_endian, locparser)
        w.walk()
        nlines = w.lines(index)
        top = w.top.attributes
        out.units.append({
            "offset": cu.cu_offset,
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
        })


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


SHF_COMPRESSED = 0x800


def read_sections(elf: ELFFile, out: Oracle) -> None:
    for i, sec in enumerate(elf.iter_sections()):
        if i == 0:
            continue  # the null section: not a section
        sh_type, sh_flags = raw_section_header(elf, i)
        assert sh_flags == sec["sh_flags"]
        nobits = sh_type == 8  # SHT_NOBITS occupies no file space
        compressed = bool(sh_flags & SHF_COMPRESSED) or (
            sec.name.startswith(".zdebug") and sec.data()[:4] == b"ZLIB"
        )
        out.sections.append({
            "name": sec.name,
            "index": i,
            "address": sec["sh_addr"],
            "size": sec["sh_size"],
            "offset": 0 if nobits else sec["sh_offset"],
            "type": sh_type,
            "flags": sh_flags,
            "compressed": int(compressed),
        })


#: symbols.kind, from STT_*: OTHER=0 FUNC=1 OBJECT=2 SECTION=3 FILE=4 TLS=5 NOTYPE=6
STT_KIND = {0: 6, 1: 2, 2: 1, 3: 3, 4: 4, 5: 2, 6: 5, 10: 1}
SHN_LORESERVE = 0xFF00


def symtab(elf: ELFFile, sh_type: str):
    for sec in elf.iter_sections():
        if sec["sh_type"] == sh_type and sec.num_symbols() > 1:
            return sec
    return None


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
    data = sec.data()
    entsize = sec["sh_entsize"]
    # st_info and st_other as raw bytes (pyelftools decodes them into names and bit fields)
    info_at = 4 if sec.elffile.elfclass == 64 else 12
    for i, sym in enumerate(sec.iter_symbols()):
        if i == 0:
            continue  # the null symbol is not a symbol
        st_info, st_other = data[i * entsize + info_at], data[i * entsize + info_at + 1]
        shndx = sym["st_shndx"]
        section = shndx if isinstance(shndx, int) and 0 < shndx < SHN_LORESERVE else 0
        out.symbols.append({
            "name": sym.name,
            "address": sym["st_value"],
            "size": sym["st_size"],
            "kind": STT_KIND.get(st_info & 0xF, 6),
            "binding": st_info >> 4,
            "other": st_other,
            "section": section,
        })


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


@functools.lru_cache(maxsize=None)
def oracle(fid: str) -> Oracle:
    fx = BY_ID[fid]
    path = BIN / fx.path
    if not path.exists():
        pytest.skip(f"fixture {fx.path} not built")
    out = Oracle()
    with tempfile.TemporaryDirectory() as tmp, open(path, "rb") as f:
        elf = ELFFile(f)
        dbg_f = open(BIN / fx.debug_file, "rb") if fx.debug_file else None  # noqa: SIM115
        try:
            debug_elf = ELFFile(dbg_f) if dbg_f else None
            read_sections(elf, out)
            read_symbols(elf, debug_elf, out)
            if fx in DWARF_FIXTURES:
                dwarf_elf, dwarf_path = (debug_elf, BIN / fx.debug_file) if debug_elf else (elf, path)
                if pyelftools_reads_dwarf(dwarf_elf):
                    walk_dwarf(dwarf_elf, out)
                else:
                    with open(decompressed_copy(dwarf_path, Path(tmp)), "rb") as g:
                        walk_dwarf(ELFFile(g), out)
        finally:
            if dbg_f:
                dbg_f.close()
    return out


@functools.lru_cache(maxsize=None)
def core(fid: str) -> tuple[dict[str, str], dict[str, list[dict]]]:
    fx = BY_ID[fid]
    dbg = BIN / fx.debug_file if fx.debug_file else None
    b = patchscope.open(BIN / fx.path, debug_file=dbg, use_cache=False)
    names = ("units", "subprograms", "params", "inline_sites", "call_sites", "ranges", "lines",
             "symbols", "sections")
    return dict(b.info), {n: getattr(b, n).to_pylist() for n in names}


# --------------------------------------------------------------------------------------
# Comparison with a useful message
# --------------------------------------------------------------------------------------

HEX_FIELDS = {"die", "parent", "origin", "specification", "function", "scope", "owner", "target", "low_pc",
              "entry_pc", "return_pc", "call_pc", "low", "high", "address", "offset"}


def show(row: dict | None, fields: list[str]) -> str:
    if row is None:
        return "(no row)"
    parts = []
    for k in fields:
        v = row.get(k)
        parts.append(f"{k}={v:#x}" if k in HEX_FIELDS and isinstance(v, int) else f"{k}={v!r}")
    return ", ".join(parts)


def assert_rows(fid: str, table: str, core_rows: list[dict], oracle_rows: list[dict], fields: list[str],
                key: str | None = "die") -> None:
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


@dwarf_fixtures
def test_units(fid: str) -> None:
    info, t = core(fid)
    o = oracle(fid)
    assert info["unit_errors"] == "0", [u["error"] for u in t["units"] if u["error"]]
    assert o.units, "pyelftools found no units"
    assert_rows(fid, "units", t["units"], o.units,
                ["offset", "version", "kind", "address_size", "name", "comp_dir", "producer", "language",
                 "dies", "lines", "error"], key="offset")


@dwarf_fixtures
def test_subprograms(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.subprograms
    assert_rows(fid, "subprograms", t["subprograms"], o.subprograms,
                ["die", "parent", "name", "linkage_name", "origin", "specification", "inline", "flags",
                 "decl_file", "decl_line", "calling_convention", "low_pc", "entry_pc"])


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
    assert_rows(fid, "inline_sites", t["inline_sites"], o.inline_sites,
                ["die", "origin", "function", "parent", "depth", "entry_pc", "low_pc", "call_file",
                 "call_line", "call_column"])


@dwarf_fixtures
def test_call_sites(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert_rows(fid, "call_sites", t["call_sites"], o.call_sites,
                ["die", "function", "scope", "return_pc", "call_pc", "target", "tail", "indirect"])


@dwarf_fixtures
def test_params(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.params
    # identity and structure first, so that a location difference is reported as such
    assert_rows(fid, "params", t["params"], o.params, ["die", "owner", "position", "name", "origin", "artificial"])
    assert_rows(fid, "params (location at the owner's entry)", t["params"], o.params,
                ["die", "owner", "loc_kind", "loc_reg", "const_value"])


@dwarf_fixtures
def test_lines(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.lines
    # (address, line, is_stmt, end_sequence) per unit first: the core of the line table
    for unit in sorted({r["unit"] for r in o.lines} | {r["unit"] for r in t["lines"]}):
        mine = [r for r in t["lines"] if r["unit"] == unit]
        theirs = [r for r in o.lines if r["unit"] == unit]
        simple = [{"address": r["address"], "line": r["line"], "is_stmt": bool(r["flags"] & IS_STMT),
                   "end_sequence": bool(r["flags"] & END_SEQUENCE)} for r in mine]
        simple_o = [{"address": r["address"], "line": r["line"], "is_stmt": bool(r["flags"] & IS_STMT),
                     "end_sequence": bool(r["flags"] & END_SEQUENCE)} for r in theirs]
        assert_rows(fid, f"lines of unit {unit}", simple, simple_o, ["address", "line", "is_stmt", "end_sequence"],
                    key=None)
    assert_rows(fid, "lines", t["lines"], o.lines,
                ["address", "file", "line", "column", "flags", "view", "unit"], key=None)


@all_fixtures
def test_symbols(fid: str) -> None:
    info, t = core(fid)
    o = oracle(fid)
    assert info["symbols_from"] == o.symbols_from
    assert o.symbols
    assert all(r["name"] or r["address"] or r["size"] or r["kind"] for r in t["symbols"][:1]), \
        "the null symbol is in the table"
    assert_rows(fid, "symbols", t["symbols"], o.symbols,
                ["name", "address", "size", "kind", "binding", "other", "section"], key=None)


@all_fixtures
def test_sections(fid: str) -> None:
    _, t = core(fid)
    o = oracle(fid)
    assert o.sections
    assert_rows(fid, "sections", t["sections"], o.sections,
                ["name", "index", "address", "size", "offset", "type", "flags", "compressed"], key=None)


@pytest.mark.parametrize("fid", [f.id for f in ELF_ONLY_FIXTURES if f.id == "x86_64-nodebug"])
def test_no_dwarf_no_rows(fid: str) -> None:
    info, t = core(fid)
    assert info["dwarf"] == "none"
    for name in ("units", "subprograms", "params", "inline_sites", "call_sites", "ranges", "lines"):
        assert t[name] == [], name

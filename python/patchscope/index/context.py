"""The query view of one binary: its inventory and DWARF tables, indexed the way the rules,
the probe resolver and the reports ask (names, instances, inline sites, symbols by address,
sections, parameters). Everything above the index reads the binary's facts through it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cached_property
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.functions import range_bounds, rows_of
from patchscope.index.machine import Instruction, MachineFacts
from patchscope.index.tables import list_offsets, pool_indices
from patchscope.index.variables import VariableAt, variables_at_many

#: ``params.loc_kind`` for a person.
LOC_NAMES = {
    _core.location_kind.NONE: "optimized out",
    _core.location_kind.REGISTER: "register",
    _core.location_kind.MEMORY: "memory",
    _core.location_kind.ENTRY_VALUE: "entry value only",
    _core.location_kind.PARAM_REF: "parameter ref (caller's value)",
    _core.location_kind.CONSTANT: "constant",
    _core.location_kind.COMPUTED: "computed",
    _core.location_kind.COMPOSITE: "in pieces",
    _core.location_kind.NOT_AT_ENTRY: "no location at entry",
    _core.location_kind.IMPLICIT_POINTER: "implicit pointer",
    _core.location_kind.ERROR: "undecodable",
}
#: Kinds whose value a probe at the owner's entry can read.
READABLE = (
    _core.location_kind.REGISTER,
    _core.location_kind.MEMORY,
    _core.location_kind.CONSTANT,
    _core.location_kind.COMPUTED,
    _core.location_kind.COMPOSITE,
)

T = TypeVar("T")

#: Bounds symbols only a kernel image has.
KERNEL_MARKS = ("__start_mcount_loc", "__start_kprobe_blacklist")


def local_entry_offset(st_other: int) -> int:
    """ppc64 ELFv2: the local entry point's offset, encoded in st_other bits 5-7."""
    return ((1 << ((st_other >> 5) & 7)) >> 2) << 2


class Context:
    """One binary as the layers above the index see it. Everything is computed on first use and kept."""

    def __init__(self, binary: Binary) -> None:
        self.b = binary
        self._shared: dict[Callable[[Context], Any], Any] = {}
        inv = binary.inventory
        self.functions = inv.functions
        self.inst = inv.instances
        self.sites = inv.inline_sites
        self.pool = binary.cols.pool

    def shared(self, build: Callable[[Context], T]) -> T:
        """What ``build`` makes of this binary, made once and shared by every rule that asks."""
        if build not in self._shared:
            self._shared[build] = build(self)
        made: T = self._shared[build]
        return made

    # -- the binary ------------------------------------------------------------------------

    @property
    def arch(self) -> str:
        return self.b.arch

    @property
    def path(self) -> Path:
        return self.b.path

    @property
    def info(self) -> dict[str, str]:
        """What the core says about the file: ``arch``, ``kind``, ``kernel_release`` …"""
        return self.b.info

    def table(self, name: str) -> pa.Table:
        """A table of the scan with its string columns decoded (``sections``, ``units`` …)."""
        return self.b.cols.table(name)

    def raw(self, name: str) -> pa.Table:
        """A table of the scan as the core wrote it: its string columns are pool indices."""
        return self.b.cols.raw[name]

    @property
    def machine(self) -> MachineFacts:
        """The machine-code facts of every out-of-line instance."""
        return self.b.machine

    def instructions(self, low: int, high: int) -> list[Instruction]:
        """The instructions of ``[low, high)``, decoded from ``low``."""
        return self.b.instructions(low, high)

    def instructions_of(self, lows: np.ndarray, highs: np.ndarray) -> tuple[pa.Table, list[str]]:
        """The instructions of many ranges, each decoded from its low end: table ``insns`` (with
        ``range``, the index of its range, and ``text`` an index into the strings beside it)."""
        return self.b.instructions_of(lows, highs)

    def probe_sites(self, starts: np.ndarray, addresses: np.ndarray) -> pa.Table:
        """The instruction holding each address, decoding from its start."""
        return self.b.probe_sites(starts, addresses)

    def liveness(self, rows: np.ndarray, addresses: np.ndarray, regs: np.ndarray) -> pa.Table:
        """Whether DWARF register ``regs[i]`` is read at ``addresses[i]`` of instance
        ``rows[i]`` before it is overwritten (``index.machine.liveness``)."""
        return self.b.liveness(rows, addresses, regs)

    def return_type(self, instance: int) -> str:
        """The type instance ``instance`` returns, spelt as ``stap -L`` spells it (``void``)."""
        return str(self.b.results.column("type")[instance].as_py())

    def plt_names(self) -> pa.Table:
        """PLT stubs and GOT slots by the symbol their dynamic relocation names."""
        return self.b.plt_names()

    @cached_property
    def function_pointers(self) -> pa.Table:
        """Function addresses stored in the image's data (``at``, ``value``, ``section``)."""
        return self.b.function_pointers()

    def find_functions(self, pattern: str | None) -> Iterator[int]:
        """Ids of the source functions whose name matches the shell glob ``pattern``."""
        return self.b.find_functions(pattern)

    def variables_at(self, pairs: list[tuple[int, int]]) -> list[list[VariableAt]]:
        """The variables in scope at each (scope DIE, address)."""
        return variables_at_many(self.b, pairs)

    # -- the string pool -------------------------------------------------------------------

    @cached_property
    def _strings(self) -> list[str]:
        return self.b.cols.strings()

    def string(self, index: int) -> str:
        return self._strings[int(index)]

    # -- functions ---------------------------------------------------------------------------

    @cached_property
    def fn_name(self) -> list[str]:
        names = self._strings
        return [names[i] for i in pool_indices(self.functions.column("name")).tolist()]

    @cached_property
    def fn_status(self) -> np.ndarray:
        return np.asarray(self.functions.column("status").to_pylist())

    def function_label(self, fid: int) -> str:
        f = self.functions
        file = f.column("decl_file")[fid].as_py()
        line = f.column("decl_line")[fid].as_py()
        return f"{self.fn_name[fid]} ({file}:{line})" if file else self.fn_name[fid]

    # -- instances ---------------------------------------------------------------------------

    @cached_property
    def inst_fid(self) -> np.ndarray:
        return self.inst.column("fid").to_numpy()

    @cached_property
    def inst_die(self) -> np.ndarray:
        return self.inst.column("die").to_numpy()

    def inst_symbols(self, row: int) -> list[int]:
        symbols: list[int] = self.inst.column("symbols")[row].as_py()
        return symbols

    def inst_ranges(self, row: int) -> list[list[int]]:
        ranges: list[list[int]] = self.inst.column("ranges")[row].as_py()
        return ranges

    def range_start(self, row: int, addr: int) -> int:
        """The start of instance ``row``'s range (main or ``.cold``) that holds ``addr`` (``addr``
        itself when none does): where decoding starts, below which no inline site of it lies."""
        return next((lo for lo, hi in self.inst_ranges(row) if lo <= addr < hi), addr)

    def inst_low(self, row: int) -> int:
        return int(self.inst.column("low_pc")[row].as_py())

    @cached_property
    def sym(self) -> dict[str, np.ndarray]:
        sy = self.raw("symbols")
        return {c: sy.column(c).to_numpy() for c in ("name", "suffix", "suffix_kinds", "address", "other")}

    @cached_property
    def inst_main_symbol(self) -> np.ndarray:
        """Row in the symbols table of each instance's main symbol, -1 when it has none."""
        offsets, symbols = list_offsets(self.inst.column("symbols"))
        values = symbols.to_numpy()
        has = offsets[1:] > offsets[:-1]
        main = np.full(len(has), -1, np.int64)
        main[has] = values[offsets[:-1][has]]
        return main

    @cached_property
    def inst_main_range(self) -> tuple[np.ndarray, np.ndarray]:
        """Each instance's first (entry) range as (lows, highs); empty where it has none."""
        offsets, _ = list_offsets(self.inst.column("ranges"))
        bounds = range_bounds(self.inst.column("ranges"))
        has = offsets[1:] > offsets[:-1]
        first = offsets[:-1][has]
        lows = self.inst.column("low_pc").to_numpy().copy()
        highs = lows.copy()
        lows[has], highs[has] = bounds[first, 0], bounds[first, 1]
        return lows, highs

    @cached_property
    def inst_range_count(self) -> np.ndarray:
        counts: np.ndarray = pc.list_value_length(self.inst.column("ranges")).to_numpy(zero_copy_only=False)
        return counts

    @cached_property
    def inst_suffix_kinds(self) -> np.ndarray:
        """Suffix kinds of each instance's main symbol (0 when it has none)."""
        main = self.inst_main_symbol
        kinds = np.zeros(len(main), np.uint16)
        has = main >= 0
        kinds[has] = self.sym["suffix_kinds"][main[has]]
        return kinds

    @cached_property
    def inst_name(self) -> np.ndarray:
        """Pool index of each instance's name: its main symbol, else its function's name."""
        main = self.inst_main_symbol
        fn_names = pool_indices(self.functions.column("name"))
        names: np.ndarray = fn_names[self.inst_fid]
        has = main >= 0
        names[has] = self.sym["name"][main[has]]
        return names

    def instance_symbol(self, row: int) -> str:
        return self.string(self.inst_name[row])

    def instance_parts(self, row: int) -> list[dict[str, Any]]:
        """Each range of an instance with the symbol at its start."""
        by_addr = {int(self.sym["address"][s]): self.string(self.sym["name"][s]) for s in self.inst_symbols(row)}
        return [{"symbol": by_addr.get(lo), "low": lo, "high": hi} for lo, hi in self.inst_ranges(row)]

    @cached_property
    def instances_of(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for row, fid in enumerate(self.inst_fid.tolist()):
            out.setdefault(fid, []).append(row)
        return out

    # -- function symbols by address -----------------------------------------------------------

    @cached_property
    def func_symbols(self) -> tuple[np.ndarray, np.ndarray]:
        sy = self.raw("symbols")
        func = (sy.column("kind").to_numpy() == _core.symkind.FUNC) & (sy.column("section").to_numpy() != 0)
        rows = np.flatnonzero(func)
        rows = rows[np.argsort(self.sym["address"][rows], kind="stable")]
        return rows, self.sym["address"][rows]

    def symbol_addresses(self, names: Iterable[str]) -> dict[str, int]:
        """The address of each of ``names`` that a defined symbol has, found in the string pool
        rather than by converting every symbol name."""
        ids = np.flatnonzero(pc.is_in(self.pool, value_set=pa.array(list(names))).to_numpy(zero_copy_only=False))
        sy = self.raw("symbols")
        rows = np.flatnonzero(np.isin(self.sym["name"], ids) & (sy.column("section").to_numpy() != 0))
        return {self.string(self.sym["name"][r]): int(self.sym["address"][r]) for r in rows.tolist()}

    def is_kernel(self) -> bool:
        """A kernel image: its ftrace or kprobe-blacklist table has bounds symbols."""
        return bool(self.symbol_addresses(KERNEL_MARKS))

    def symbols_at(self, addr: int) -> np.ndarray:
        """Rows of the function symbols whose value is ``addr``."""
        rows, addrs = self.func_symbols
        return rows[np.searchsorted(addrs, addr, "left") : np.searchsorted(addrs, addr, "right")]

    @cached_property
    def code_symbols(self) -> tuple[np.ndarray, np.ndarray]:
        """Function symbols and untyped ones (assembly entry points such as
        ``__x86_return_thunk``), by address: what names a branch target."""
        sy = self.raw("symbols")
        kind = sy.column("kind").to_numpy()
        named = (
            np.isin(kind, (_core.symkind.FUNC, _core.symkind.NOTYPE))
            & (sy.column("section").to_numpy() != 0)
            & (self.sym["name"] != 0)
        )
        rows = np.flatnonzero(named)
        rows = rows[np.lexsort((kind[rows] != _core.symkind.FUNC, self.sym["address"][rows]))]  # functions first
        return rows, self.sym["address"][rows]

    def name_at(self, addr: int) -> str:
        """A name for a branch target: the symbol there, its ppc64 local entry, the symbol
        that covers it as ``sym+0xoff``, else the section (``.plt+0x10``)."""
        rows, addrs = self.code_symbols
        i = int(np.searchsorted(addrs, addr, "right")) - 1
        if i >= 0 and addrs[i] == addr:
            i = int(np.searchsorted(addrs, addr, "left"))
        if i >= 0:
            row = rows[i]
            name = self.string(self.sym["name"][row])
            off = int(addr - addrs[i])
            if off == 0:
                return name
            if self.arch.startswith("ppc64") and off == local_entry_offset(int(self.sym["other"][row])):
                return f"{name} (local entry)"
            if off < self.sym_size[row] or (
                self.sym_size[row] == 0 and self.section_at(addr)[0] == self.section_at(int(addrs[i]))[0]
            ):
                return f"{name}+{off:#x}"
        section, start = self.section_at(addr)
        return f"{section}+{addr - start:#x}" if section else f"{addr:#x}"

    @cached_property
    def sym_size(self) -> np.ndarray:
        return self.raw("symbols").column("size").to_numpy()

    @cached_property
    def sections(self) -> tuple[np.ndarray, np.ndarray, list[str]]:
        s = self.table("sections")
        order = np.argsort(s.column("address").to_numpy(), kind="stable")
        start = s.column("address").to_numpy()[order]
        return start, start + s.column("size").to_numpy()[order], [s.column("name")[int(i)].as_py() for i in order]

    def section_at(self, addr: int) -> tuple[str | None, int]:
        """The (allocated) section holding ``addr`` and its start address."""
        start, end, names = self.sections
        i = int(np.searchsorted(start, addr, "right")) - 1
        while i >= 0 and start[i] == start[min(i + 1, len(start) - 1)] and addr >= end[i]:
            i -= 1
        return (names[i], int(start[i])) if i >= 0 and addr < end[i] and start[i] else (None, 0)

    # -- inline sites --------------------------------------------------------------------------

    @cached_property
    def site_fid(self) -> np.ndarray:
        return self.sites.column("fid").to_numpy()

    @cached_property
    def site_entry_pc(self) -> np.ndarray:
        return self.sites.column("entry_pc").to_numpy()

    @cached_property
    def _site_order(self) -> tuple[np.ndarray, list[int]]:
        """Site rows grouped by function, and where each function's group starts."""
        order = np.argsort(self.site_fid, kind="stable")
        starts = np.searchsorted(self.site_fid[order], np.arange(self.functions.num_rows + 1))
        return order, starts.tolist()

    def sites_of(self, fid: int) -> np.ndarray:
        """Rows of the inline sites of ``fid``, in DIE order."""
        order, starts = self._site_order
        return order[starts[fid] : starts[fid + 1]]

    def callers_of(self, fid: int) -> list[str]:
        """The instances that ``fid`` is inlined into, by name, sorted."""
        starts = self._site_order[1]
        return sorted(set(self._caller_names_grouped[starts[fid] : starts[fid + 1]]))

    @cached_property
    def _caller_names_grouped(self) -> list[str]:
        names = self._strings
        return [names[i] or "?" for i in self.site_caller_name[self._site_order[0]].tolist()]

    @cached_property
    def caller_instance(self) -> np.ndarray:
        """For each inline site, the row of the out-of-line instance it is in (-1: none)."""
        order = np.argsort(self.inst_die, kind="stable")
        pos = rows_of(self.inst_die[order], self.sites.column("function").to_numpy())
        return np.where(pos >= 0, order[np.maximum(pos, 0)], -1)

    @cached_property
    def site_caller_name(self) -> np.ndarray:
        """Pool index of the name of the instance each inline site is in (0: unknown)."""
        inst = self.caller_instance
        return np.where(inst >= 0, self.inst_name[np.maximum(inst, 0)], 0)

    def site_caller(self, site_row: int) -> str:
        return self.string(self.site_caller_name[site_row]) or "?"

    # -- DWARF subprograms and parameters --------------------------------------------------------

    @cached_property
    def sp(self) -> dict[str, np.ndarray]:
        t = self.raw("subprograms")
        return {c: t.column(c).to_numpy() for c in ("die", "origin", "specification", "flags", "name")}

    def origin_of(self, die: int) -> int:
        """The abstract origin of a concrete subprogram DIE, or ``NO_DIE``."""
        row = rows_of(self.sp["die"], np.array([die], np.uint64))[0]
        return int(self.sp["origin"][row]) if row >= 0 else _core.NO_DIE

    @cached_property
    def params(self) -> dict[str, np.ndarray]:
        t = self.raw("params")
        return {
            c: t.column(c).to_numpy()
            for c in (
                "die",
                "owner",
                "position",
                "name",
                "origin",
                "loc_kind",
                "loc_flags",
                "loc_reg",
                "const_value",
            )
        }

    def params_of(self, owner: int) -> np.ndarray:
        """Rows of the parameters owned by ``owner`` (the core emits them in DIE order)."""
        own = self.params["owner"]
        a = np.searchsorted(own, np.uint64(owner), "left")
        b = np.searchsorted(own, np.uint64(owner), "right")
        return np.arange(a, b)

    @cached_property
    def param_readable(self) -> np.ndarray:
        """Whether an address-based probe at the owner's entry can read each parameter: a
        readable kind, not bound only in a later location view of that address."""
        p = self.params
        readable: np.ndarray = np.isin(p["loc_kind"], READABLE) & (
            (p["loc_flags"] & _core.location_flag.VIEW_ONLY) == 0
        )
        return readable

    def param_status(self, row: int) -> str:
        text = LOC_NAMES[int(self.params["loc_kind"][row])]
        if self.params["loc_flags"][row] & _core.location_flag.VIEW_ONLY:
            text += ", only in a later location view of the address"
        return text

    def param_name(self, row: int) -> str:
        """A parameter's name, through its abstract origin when it has none itself."""
        name = int(self.params["name"][row])
        if name == 0:
            origin = self.params["origin"][row]
            orow = rows_of(self.params["die"], np.array([origin], np.uint64))[0]
            if orow >= 0:
                name = int(self.params["name"][orow])
        return self.string(name) if name else "?"

    def source_params(self, concrete_die: int) -> list[tuple[int, str]]:
        """The source parameters (die, name) of a function, in declaration order: those of
        its abstract origin when it has one, else its own."""
        origin = self.origin_of(concrete_die)
        owner = origin if origin != _core.NO_DIE else concrete_die
        return [(int(self.params["die"][r]), self.param_name(int(r))) for r in self.params_of(owner)]

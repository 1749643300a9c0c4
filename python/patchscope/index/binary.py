"""``patchscope.open``: one binary, its tables, and the source functions they describe."""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Callable, Iterator
from functools import cached_property
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index import cache, functions, lines, machine, variables
from patchscope.index.machine import CodeFingerprints, Instruction, MachineFacts
from patchscope.index.tables import Columns, pool_indices

T = TypeVar("T")

#: Raised for a file that cannot be read as asked; its message is one line for a person.
BinaryError = _core.CoreError

TABLES = (
    "sections",
    "symbols",
    "kernel_pointers",
    "kernel_sites",
    "units",
    "subprograms",
    "params",
    "inline_sites",
    "call_sites",
    "ranges",
    "lines",
)


class Binary:
    """A compiled binary and the facts patchscope extracted from it.

    Every table of the core is an attribute (``b.subprograms``, ``b.lines`` …) holding a
    ``pyarrow.Table``; ``b.sql(query)`` runs DuckDB over them; ``b.inventory`` resolves
    source functions, instances and inline sites.
    """

    def __init__(
        self, path: Path, core: _core.Binary, cols: Columns, from_cache: bool, cache_key: str | None = None
    ) -> None:
        self.path = path
        #: The file, its debug file and its supplementary file, opened once: every query of
        #: the core (code facts, variables, probe sites…) asks this one object.
        self.core = core
        self.cols = cols
        self.from_cache = from_cache
        self.cache_key = cache_key

    @property
    def info(self) -> dict[str, str]:
        return self.cols.info

    @property
    def arch(self) -> str:
        return self.info["arch"]

    @property
    def has_dwarf(self) -> bool:
        return self.info["dwarf"] != "none"

    def __getattr__(self, name: str) -> pa.Table:
        if name in TABLES:
            return self.cols.table(name)
        raise AttributeError(name)

    @cached_property
    def inventory(self) -> functions.Inventory:
        return self.derived("inventory", lambda: functions.build(self.cols))

    @cached_property
    def machine(self) -> MachineFacts:
        """Returns, tail jumps, calls and atomic regions of every out-of-line instance."""
        return self.derived("machine", lambda: machine.decode(self.core, self.inventory.instances))

    @cached_property
    def fingerprints(self) -> CodeFingerprints:
        """Position-independent code fingerprints of every range of every out-of-line instance."""
        return self.derived("fingerprints", lambda: machine.fingerprint(self.core, self.inventory.instances))

    @cached_property
    def line_spans(self) -> lines.LineSpans:
        """The first and last source line of each out-of-line instance's own code."""
        return self.derived("line_spans", lambda: lines.spans(self.cols, self.inventory))

    def instructions(self, low: int, high: int) -> list[Instruction]:
        return machine.instructions(self.core, low, high)

    def instructions_of(self, lows: np.ndarray, highs: np.ndarray) -> tuple[pa.Table, list[str]]:
        """The instructions of many ranges at once (``index.machine.instructions_of``)."""
        return machine.instructions_of(self.core, lows, highs)

    def variables_at(self, scope: int, address: int) -> list[variables.VariableAt]:
        """The variables of a concrete instance or inline site (its DIE) at ``address``."""
        return variables.variables_at(self, scope, address)

    def probe_sites(self, starts: np.ndarray, addresses: np.ndarray) -> pa.Table:
        """The instruction holding each address, decoding from its start (``index.machine.probe_sites``)."""
        return machine.probe_sites(self.core, starts, addresses)

    @cached_property
    def _ranges(self) -> tuple[bytes, bytes, bytes]:
        return machine.range_columns(self.inventory.instances)

    @cached_property
    def results(self) -> pa.Table:
        """What each instance returns, by row: ``class`` and ``type`` (``index.machine.Results``)."""
        return self.derived("results", lambda: machine.results(self.core, self.inventory.instances)).table

    @cached_property
    def _result_classes(self) -> bytes:
        return machine.result_classes(self.results)

    def liveness(self, rows: np.ndarray, addresses: np.ndarray, regs: np.ndarray) -> pa.Table:
        """Whether each register is read at each address of each instance (``index.machine.liveness``)."""
        return machine.liveness(self.core, self._ranges, self._result_classes, rows, addresses, regs)

    def plt_names(self) -> pa.Table:
        """PLT stubs (``got`` 0) and GOT slots (``got`` 1) by the symbol their dynamic
        relocation names: ``address``, ``name``, ``got``."""
        return machine.plt_names(self.core)

    def function_pointers(self) -> pa.Table:
        """Function addresses stored in the image's data: ``at``, ``value``, ``section``."""
        return machine.function_pointers(self.core)

    def derived(self, name: str, build: Callable[[], T]) -> T:
        """A product of the tables, kept in the cache beside them (tables of a dataclass)."""
        if self.cache_key is None:
            return build()
        found: T | None = cache.load_derived(self.cache_key, name, self.path.name) if self.from_cache else None
        if found is not None:
            return found
        value = build()
        key = self.cache_key
        cache.in_background(lambda: cache.save_derived(key, name, value))  # after the tables' entry
        return value

    def unit_errors(self) -> list[str]:
        errs = self.cols.table("units").column("error").to_pylist()
        return [e for e in errs if e]

    def sql(self, query: str, **extra: pa.Table) -> pa.Table:
        """Runs ``query`` with every table (and the inventory's) visible by name."""
        import duckdb

        con = duckdb.connect()
        for name in TABLES:
            con.register(name, self.cols.table(name))
        inv = self.inventory
        con.register("functions", inv.functions)
        con.register("instances", inv.instances)
        con.register("sites", inv.inline_sites)
        for name, table in extra.items():
            con.register(name, table)
        result: pa.Table = con.sql(query).to_arrow_table()  # duckdb's relation says Any
        return result

    def find_functions(self, pattern: str | None) -> Iterator[int]:
        """Ids of the source functions whose name matches a shell glob (as SystemTap's
        ``function("PATTERN")``), in name order."""
        ids, names = self._functions_by_name
        if pattern in (None, "*"):
            wanted = np.ones(len(self.cols.pool), bool)
        else:
            # Python's translation ends in \\Z, which RE2 (Arrow's engine) spells \\z, and makes
            # each run after a star atomic, (?>…), which RE2 lacks and needs not: it never backtracks.
            regex = "^" + fnmatch.translate(pattern).replace("\\Z", "\\z").replace("(?>", "(?:")
            wanted = pc.match_substring_regex(self.cols.pool, regex).to_numpy(zero_copy_only=False)
        wanted[0] = False  # the empty name
        return iter(ids[wanted[names]].tolist())

    @cached_property
    def _functions_by_name(self) -> tuple[np.ndarray, np.ndarray]:
        """The source function ids in name order and their names' pool indices: sorted once,
        not at each pattern (75,000 names take a quarter of a second)."""
        idx = pool_indices(self.inventory.functions.column("name"))
        text = self.cols.pool.take(pa.array(idx)).to_numpy(zero_copy_only=False)
        order = np.argsort(text, kind="stable")
        return order, idx[order]


def open(
    path: str | os.PathLike[str],
    debug_file: str | os.PathLike[str] | None = None,
    *,
    debug_roots: list[str] | None = None,
    use_cache: bool = True,
    progress: Callable[[str], None] | None = None,
) -> Binary:
    """Opens a binary: from the on-disk cache when it was indexed before, else by a scan."""
    p = Path(path)
    dbg = str(debug_file) if debug_file is not None else None
    core = _core.Binary(str(p), dbg, debug_roots)
    ident = cache.identity(core) if use_cache else None
    key = cache.cache_key(ident) if ident is not None else None
    if ident is not None and key is not None:
        cache.wait()  # an entry this process is still writing
        cols = cache.load(key, p.name)
        if cols is not None:
            # The same bytes may have been indexed under other names: the key is the content.
            cols.info.update(path=str(p), debug_file=ident["debug_file"], sup_file=ident["sup_file"])
            return Binary(p, core, cols, from_cache=True, cache_key=key)
    if progress:
        progress(f"indexing {p.name}")
    cols = Columns.from_core(core.scan())
    if key is not None:
        cache.in_background(lambda: cache.save(key, cols, str(p.resolve())))
    return Binary(p, core, cols, from_cache=False, cache_key=key)

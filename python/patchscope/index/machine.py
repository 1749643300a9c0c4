"""Machine-code facts of every out-of-line instance: one ``_core.Binary.code_facts`` call over
all their ranges (an instance's row in the inventory is its ``function_id``); and their code
fingerprints, one ``_core.Binary.fingerprints`` call over the same ranges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope import _core
from patchscope.index.cache import derived_product
from patchscope.index.functions import range_bounds
from patchscope.index.tables import Columns

#: ``normal_form.how`` for a person, by value (``_core.how``: what became of a field).
HOW = tuple(n.lower() for n in sorted(filter(str.isupper, vars(_core.how)), key=lambda n: getattr(_core.how, n)))


@derived_product
@dataclass
class MachineFacts:
    """``ranges``: one row per decoded range; ``events``: returns, tail jumps, calls, atomics…"""

    ranges: pa.Table
    events: pa.Table


@derived_product
@dataclass
class Results:
    """What each instance returns, by row, from its DWARF type: ``class`` (``_core.result``,
    as the calling conventions place it) and ``type`` (spelt as ``stap -L`` spells it, ``void``
    for none). Cached: reading them touches every unit of the DWARF."""

    table: pa.Table


@derived_product
@dataclass
class CodeFingerprints:
    """``ranges``: one row per range of every instance (``function_id`` = its row in the
    inventory's instances, the entry range first), with ``fingerprint``: the CRC-32 of its
    instructions with every position-dependent field replaced by what it refers to (the
    core's ``code::fingerprint``). Equal fingerprints: the same code, wherever it was placed."""

    ranges: pa.Table

    def by_instance(self, n_instances: int) -> list[tuple[int, ...]]:
        """Each instance's fingerprints, one per range, in range order (entry first)."""
        out: list[tuple[int, ...]] = [()] * n_instances
        ids = self.ranges.column("function_id").to_numpy().tolist()
        for i, s in zip(ids, self.ranges.column("fingerprint").to_numpy().tolist()):
            out[i] += (s,)
        return out


def _range_columns(instances: pa.Table) -> tuple[bytes, bytes, bytes]:
    """Every range of every instance as the core takes them: ids, lows, highs."""
    ranges = instances.column("ranges")
    counts = pc.list_value_length(ranges).to_numpy(zero_copy_only=False)
    pairs = range_bounds(ranges)
    ids = np.repeat(np.arange(instances.num_rows, dtype=np.uint64), counts)
    return ids.tobytes(), pairs[:, 0].copy().tobytes(), pairs[:, 1].copy().tobytes()


def decode(core: _core.Binary, instances: pa.Table) -> MachineFacts:
    found = Columns.from_core(core.code_facts(*_range_columns(instances)))
    return MachineFacts(found.table("code_ranges"), found.table("code_events"))


def fingerprint(core: _core.Binary, instances: pa.Table) -> CodeFingerprints:
    found = Columns.from_core(core.fingerprints(*_range_columns(instances)))
    return CodeFingerprints(found.table("code_fingerprints"))


class Instruction(TypedDict):
    """A row of table ``insns``."""

    address: int
    size: int
    #: ``_core.kind``
    kind: int
    #: ``_core.NO_TARGET`` when the instruction has none.
    target: int
    #: ``_core.flag`` bits of a branch or an atomic; a trap's ``_core.trap`` in the low byte.
    extra: int
    text: str
    #: The symbol an undefined target's relocation names (relocatable files), else empty.
    target_name: str


class NormalField(TypedDict):
    """A row of table ``normal_form``: one position-dependent field, or an instruction left out."""

    address: int
    size: int
    mask: int
    #: ``_core.how``
    how: int
    name: str
    offset: int


def normal_form(core: _core.Binary, low: int, high: int, entry: bool = True) -> tuple[int, list[NormalField]]:
    """How the fingerprint of ``[low, high)`` sees it: the fingerprint, and one row per
    position-dependent field (``how``: :data:`HOW`) or instruction left out."""
    found = Columns.from_core(core.normal_form(low, high, entry))
    # the rows have the table's columns, which the core fixes
    return int(found.info["fingerprint"]), cast("list[NormalField]", found.table("normal_form").to_pylist())


def instructions(core: _core.Binary, low: int, high: int) -> list[Instruction]:
    """Every instruction of ``[low, high)`` with its text, for evidence."""
    # the rows have the table's columns, which the core fixes
    return cast("list[Instruction]", Columns.from_core(core.instructions(low, high)).table("insns").to_pylist())


def instructions_many(core: _core.Binary, lows: np.ndarray, highs: np.ndarray) -> list[list[Instruction]]:
    """:func:`instructions` of many ranges in one core call (the decoder is built once: on 32-bit
    ARM that reads every mapping symbol); a range no section holds gets no instruction."""
    found = core.instructions_of(
        np.ascontiguousarray(lows, np.uint64).tobytes(), np.ascontiguousarray(highs, np.uint64).tobytes()
    )
    out: list[list[Instruction]] = [[] for _ in range(len(lows))]
    for r in Columns.from_core(found).table("insns").to_pylist():
        # the rows have the table's columns, which the core fixes
        out[int(r["range"])].append(cast("Instruction", r))
    return out


def range_columns(instances: pa.Table) -> tuple[bytes, bytes, bytes]:
    """Every range of every instance as the core takes them: ids, lows, highs."""
    return _range_columns(instances)


def results(core: _core.Binary, instances: pa.Table) -> Results:
    """What each instance returns, by instance row (:class:`Results`)."""
    dies = np.ascontiguousarray(instances.column("die").to_numpy(), np.uint64)
    return Results(Columns.from_core(core.result_classes(dies.tobytes())).table("results"))


def result_classes(results: pa.Table) -> bytes:
    """The ``class`` column of :func:`results` as :func:`liveness` takes it."""
    return np.ascontiguousarray(results.column("class").to_numpy(), np.uint64).tobytes()


def liveness(
    core: _core.Binary,
    ranges: tuple[bytes, bytes, bytes],
    results: bytes,
    rows: np.ndarray,
    addresses: np.ndarray,
    regs: np.ndarray,
) -> pa.Table:
    """For each (instance row, address, DWARF register): whether the register is read at the
    address before it is overwritten, over the instance's control-flow graph (every range):
    ``live``, ``reader``/``writer`` (the instruction that reads / overwrites it first,
    ``_core.NO_TARGET`` when none), ``status`` (``_core.live_status``). ``ranges``: every
    instance's, from :func:`range_columns`; ``results``: what each returns, from
    :func:`result_classes` (a return reads only its result registers)."""
    ids = np.ascontiguousarray(rows, np.uint64).tobytes()
    at = np.ascontiguousarray(addresses, np.uint64).tobytes()
    reg = np.ascontiguousarray(regs, np.uint64).tobytes()
    found = core.liveness(*ranges, results, ids, at, reg)
    return Columns.from_core(found).table("liveness")


def instructions_of(core: _core.Binary, lows: np.ndarray, highs: np.ndarray) -> tuple[pa.Table, list[str]]:
    """Every instruction of many ranges, each decoded from its low end, in one core call: table
    ``insns`` as the core wrote it (``range``: the index of its range; ``text``: an index into
    the strings returned beside it)."""
    found = core.instructions_of(
        np.ascontiguousarray(lows, np.uint64).tobytes(), np.ascontiguousarray(highs, np.uint64).tobytes()
    )
    cols = Columns.from_core(found)
    return cols.raw["insns"], cols.strings()


def plt_names(core: _core.Binary) -> pa.Table:
    """PLT stubs (``got`` 0) and GOT slots (``got`` 1) by the symbol their dynamic relocation
    names: ``address``, ``name``, ``got``."""
    return Columns.from_core(core.plt_names()).table("plt_names")


def function_pointers(core: _core.Binary) -> pa.Table:
    """Function addresses stored in the image's data: ``at`` (the word), ``value`` (the
    function's address), ``section``."""
    return Columns.from_core(core.function_pointers()).table("function_pointers")


def probe_sites(core: _core.Binary, starts: np.ndarray, addresses: np.ndarray) -> pa.Table:
    """For each address, the instruction holding it when decoding linearly from its start
    (``insn`` equals the address exactly on an instruction boundary), with its first 16 bytes."""
    starts = np.ascontiguousarray(starts, np.uint64)
    addresses = np.ascontiguousarray(addresses, np.uint64)
    found = core.probe_sites(starts.tobytes(), addresses.tobytes())
    return Columns.from_core(found).table("probe_sites")

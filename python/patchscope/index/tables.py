"""The core's columns as Arrow tables.

The core returns every table as plain columns plus one string pool; a string column is a
column of ``uint32`` indices into that pool. Here they become Arrow tables whose string
columns are dictionary arrays over the shared pool: no per-row Python object, no copy of the
strings, and the indices stay at hand for fast grouping (``column.indices``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import pyarrow as pa

from patchscope import _core

#: Field metadata that marks a ``uint32`` column as indices into the string pool.
STRING_MARK = {b"patchscope": b"str"}


@dataclass
class Columns:
    """One scan: its facts about the file (``info``), the string pool and the raw tables."""

    info: dict[str, str]
    pool: pa.LargeStringArray
    raw: dict[str, pa.Table]
    _decoded: dict[str, pa.Table] = field(default_factory=dict, repr=False)

    @classmethod
    def from_core(cls, scan: _core._Answer) -> Columns:
        offsets, data = scan["strings"]
        n = len(offsets) // 8 - 1
        # the stubs type from_buffers as the base class's, a StringArray
        pool = cast(pa.LargeStringArray, pa.LargeStringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data)))
        raw = {name: _raw_table(cols) for name, cols in scan["tables"].items()}
        return cls(info=dict(scan["info"]), pool=pool, raw=raw)

    def strings(self) -> list[str]:
        """The string pool as Python strings."""
        return cast(list[str], self.pool.to_pylist())  # the pool has no nulls

    def table(self, name: str) -> pa.Table:
        """The table with its string columns decoded as dictionary arrays."""
        if name not in self._decoded:
            self._decoded[name] = _decode(self.raw[name], self.pool)
        return self._decoded[name]

    def column(self, table: str, column: str) -> np.ndarray:
        """A numeric column (or a string column's pool indices) as a NumPy array, without copy."""
        return self.raw[table].column(column).to_numpy()


def pool_indices(column: pa.ChunkedArray[Any]) -> np.ndarray:
    """The pool indices of a string column of a decoded table (a dictionary column)."""
    # combine_chunks keeps the dictionary type; the stubs say Array
    return cast("pa.DictionaryArray[Any, Any]", column.combine_chunks()).indices.to_numpy()


def list_offsets(column: pa.ChunkedArray[Any]) -> tuple[np.ndarray, pa.Array[Any]]:
    """A list column's offsets (row ``i`` is ``values[offsets[i]:offsets[i + 1]]``) and values."""
    # combine_chunks keeps the list type; the stubs say Array
    col = cast("pa.ListArray[Any]", column.combine_chunks())
    return col.offsets.to_numpy(), col.values


def list_array(offsets: np.ndarray, values: pa.Array[Any]) -> pa.ListArray[Any]:
    """A list column from the offsets of each row's values into ``values``."""
    return pa.ListArray.from_arrays(pa.array(offsets), values)


def _raw_table(cols: dict[str, tuple[str, bytes]]) -> pa.Table:
    fields: list[pa.Field[Any]] = []
    arrays: list[pa.Array[Any]] = []
    for name, (dtype, buf) in cols.items():
        if dtype == "str":
            arr = pa.array(np.frombuffer(buf, dtype=np.uint32))
            fields.append(pa.field(name, pa.uint32(), metadata=STRING_MARK))
        else:
            arr = pa.array(np.frombuffer(buf, dtype=np.dtype(dtype)))
            fields.append(pa.field(name, arr.type))
        arrays.append(arr)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _decode(raw: pa.Table, pool: pa.LargeStringArray) -> pa.Table:
    fields, arrays = [], []
    for f, col in zip(raw.schema, raw.columns):
        if f.metadata and f.metadata.get(b"patchscope") == b"str":
            chunks = [pa.DictionaryArray.from_arrays(c, pool) for c in col.chunks]
            # the stubs have no overload for a list of dictionary arrays with their type
            col = pa.chunked_array(chunks, type=pa.dictionary(pa.uint32(), pa.large_string()))  # type: ignore[call-overload]
            f = pa.field(f.name, col.type)
        fields.append(f)
        arrays.append(col)
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))

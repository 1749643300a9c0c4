"""Two builds side by side: source functions matched between them, and which changed how they
were compiled, which changed code, and which only moved.

Source functions are correlated by name and declaration file — not line, which moves between
builds; several statics of one name in one file are paired in declaration order. Per function,
a change of each of these is reported (the ``changes`` list, and the summary's counts):

``added``, ``removed``
    the function exists in one build only.
``inlining``, ``inline-sites``
    its inlining status (not, fully, selectively inlined), or only its count of inline sites.
``clones``
    its out-of-line instances by their clone shapes: suffixes without the ``.N`` numbers and
    ``.llvm.<hash>`` (so renumbering is no change); a ``.cold`` part is part of its instance.
``band``
    its band on the safety spectrum.
``code``
    the code of an instance present in both builds (same shape): its fingerprint, a CRC of its
    instructions with every position-dependent field replaced by what it refers to, as
    klp-build checksums functions (``index.machine.CodeFingerprints``). A function that only moved,
    or whose callees or data moved, keeps its fingerprint. ``code_changed`` names the instances.
``signature``
    its parameter list (names, in order; DWARF types are not compared).
``moved``
    its declaration line: ``moved_by`` lines. Its code may be the same, but every line probe in
    it (``file.c:N``) now names another line.
``body-lines``
    its body's length: from its declaration line to the last line its code comes from (lines
    added or removed inside it move the line probes below them).

The band is the one value not read from the binary: the caller rates each function (the
rules' bands) and the comparison treats it as a label.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from typing import Any, NamedTuple

import numpy as np

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.functions import group_ids, origin_roots
from patchscope.index.tables import list_offsets, pool_indices


def clone_shape(symbol: str | None) -> str:
    """``foo.isra.3.cold`` → ``foo.isra.cold``: what a clone is, without its number (and
    ``__UNIQUE_ID_ddebug312`` → ``__UNIQUE_ID_ddebug``): the core's ``clone_shape``, by which
    its fingerprints name the symbols they refer to."""
    return _core.clone_shape(symbol) if symbol else "(no symbol)"


def _instance_shapes(b: Binary, pool: list[str]) -> list[str]:
    """Each instance by all its symbols (``drain.part+drain.part.cold``): a .cold part
    appearing is a change too."""
    sym_name = b.cols.raw["symbols"].column("name").to_numpy()
    shape: dict[int, str] = {}
    out = []
    offsets, symbols = list_offsets(b.inventory.instances.column("symbols"))
    rows = symbols.to_numpy()
    for lo, hi in zip(offsets[:-1].tolist(), offsets[1:].tolist()):
        names = [int(sym_name[s]) for s in rows[lo:hi]]
        for n in names:
            if n not in shape:
                shape[n] = clone_shape(pool[n])
        out.append("+".join(shape[n] for n in names) or clone_shape(None))
    return out


def _parameters(b: Binary, pool: list[str]) -> dict[int, tuple[str, ...]]:
    """Each source function's parameter names, in order, from the DIE that carries its name
    (the abstract DIE, or the only concrete one), else from any DIE with code."""
    sp = b.cols.raw["subprograms"]
    die = sp.column("die").to_numpy()
    root = origin_roots(die, sp.column("origin").to_numpy(), sp.column("specification").to_numpy())
    key = [sp.column(c).to_numpy()[root] for c in ("name", "decl_file", "decl_line")]
    fn = b.inventory.functions
    fkey = [pool_indices(fn.column(c)) for c in ("name", "decl_file")]
    fkey.append(fn.column("decl_line").to_numpy())
    # functions and subprogram rows that share (name, file, line) share a group
    n = fn.num_rows
    _, group = group_ids(*(np.concatenate([f.astype(np.uint64), k.astype(np.uint64)]) for f, k in zip(fkey, key)))
    fid_of_group = np.full(group.max() + 1 if len(group) else 0, -1, np.int64)
    fid_of_group[group[:n]] = np.arange(n)
    row_fid = fid_of_group[group[n:]]
    usable = (row_fid >= 0) & ((sp.column("flags").to_numpy() & _core.spflag.DECLARATION) == 0)
    rows = np.flatnonzero(usable)
    rows = rows[np.lexsort((root[rows] != rows, row_fid[rows]))]  # per function, its root first
    fids = row_fid[rows]
    first = np.flatnonzero(np.r_[True, fids[1:] != fids[:-1]]) if len(fids) else fids
    chosen, chosen_fid = rows[first], fids[first]

    pm = b.cols.raw["params"]
    owner = pm.column("owner").to_numpy()  # the core emits parameters in DIE order
    start = np.searchsorted(owner, die[chosen], "left")
    count = np.searchsorted(owner, die[chosen], "right") - start
    at = np.arange(count.sum()) - np.repeat(np.cumsum(count) - count, count) + np.repeat(start, count)
    names = [pool[x] for x in pm.column("name").to_numpy()[at].tolist()]
    out, i = {}, 0
    for f, c in zip(chosen_fid.tolist(), count.tolist()):
        out[f] = tuple(names[i : i + c])
        i += c
    return out


class Function(NamedTuple):
    """One source function of one build, as two builds compare it."""

    status: str
    inline_sites: int
    band: str
    decl_line: int | None
    #: the first and last line its out-of-line code comes from (``index.lines``)
    lines: tuple[int, int] | None
    params: tuple[str, ...] | None
    #: (clone shape, fingerprints of its ranges) of each out-of-line instance, sorted
    code: tuple[tuple[str, tuple[int, ...]], ...]

    def by_shape(self) -> dict[str, list[str]]:
        """Fingerprints by clone shape: ``1a2b3c4d``, or ``1a2b3c4d+5e6f7a8b`` for an
        instance with a ``.cold`` part."""
        out: dict[str, list[str]] = defaultdict(list)
        for shape, sums in self.code:
            out[shape].append("+".join(f"{s:08x}" for s in sums))
        return dict(out)

    def state(self) -> dict[str, Any]:
        """The JSON form."""
        return {
            "status": self.status,
            "inline_sites": self.inline_sites,
            "instances": [shape for shape, _ in self.code],
            "band": self.band,
            "decl_line": self.decl_line,
            "lines": list(self.lines) if self.lines else None,
            "params": list(self.params) if self.params is not None else None,
            "code": self.by_shape(),
        }


#: A source function's identity across builds: its name and declaration file.
Key = tuple[str, str]


def functions(b: Binary, bands: Sequence[str]) -> dict[Key, list[Function]]:
    """The source functions of ``b`` by key, several of one key in declaration order;
    ``bands`` is each function's band, by function id."""
    inv = b.inventory
    fn = inv.functions
    pool = b.cols.strings()
    # through the pool: much faster than decoding the dictionary columns row by row
    names, files = ([pool[i] for i in pool_indices(fn.column(c)).tolist()] for c in ("name", "decl_file"))
    decl_lines = fn.column("decl_line").to_numpy()
    status, sites = fn.column("status").to_pylist(), fn.column("inline_sites").to_pylist()
    params = _parameters(b, pool)

    inst_fid = inv.instances.column("fid").to_numpy()
    code: dict[int, list[tuple[str, tuple[int, ...]]]] = defaultdict(list)
    sums = b.fingerprints.by_instance(inv.instances.num_rows)
    for fid, shape, s in zip(inst_fid.tolist(), _instance_shapes(b, pool), sums):
        code[fid].append((shape, s))
    # a function's lines: from the first of any of its instances to the last of any
    spans = b.line_spans.instances
    first, last = spans.column("first_line").to_numpy(), spans.column("last_line").to_numpy()
    has = last > 0
    span_first = np.full(fn.num_rows, np.iinfo(np.uint32).max, np.uint32)
    span_last = np.zeros(fn.num_rows, np.uint32)
    np.minimum.at(span_first, inst_fid[has], first[has])
    np.maximum.at(span_last, inst_fid[has], last[has])

    out: dict[Key, list[Function]] = defaultdict(list)
    firsts, lasts, lines_of = span_first.tolist(), span_last.tolist(), decl_lines.tolist()
    for fid in np.argsort(decl_lines, kind="stable").tolist():
        out[(names[fid], files[fid] or "")].append(
            Function(
                status[fid],
                sites[fid],
                bands[fid],
                lines_of[fid] or None,
                (firsts[fid], lasts[fid]) if lasts[fid] else None,
                params.get(fid),
                tuple(sorted(code[fid])) if fid in code else (),
            )
        )
    return out


def changes(
    a: dict[Key, list[Function]], b: dict[Key, list[Function]]
) -> Iterator[tuple[Key, Function | None, Function | None, list[str]]]:
    """Each function that changed between builds ``a`` and ``b``, by key: its key, its two
    states (None where it is missing) and its kinds of change."""
    for key in sorted(set(a) | set(b)):
        olds, news = a.get(key, []), b.get(key, [])
        for i in range(max(len(olds), len(news))):
            before = olds[i] if i < len(olds) else None
            after = news[i] if i < len(news) else None
            if before == after:
                continue  # the common case, compared field by field in C
            kinds = _changes(before, after)
            if kinds:
                yield key, before, after, kinds


def code_changed(before: Function, after: Function) -> list[str]:
    """The clone shapes in both builds whose instances' fingerprints differ."""
    if before.code == after.code:
        return []
    old, new = before.by_shape(), after.by_shape()
    return [shape for shape in sorted(set(old) & set(new)) if sorted(old[shape]) != sorted(new[shape])]


def _changes(before: Function | None, after: Function | None) -> list[str]:
    if before is None:
        return ["added"]
    if after is None:
        return ["removed"]
    kinds = []
    if before.status != after.status:
        kinds.append("inlining")
    elif before.inline_sites != after.inline_sites:
        kinds.append("inline-sites")
    if before.code != after.code and [s for s, _ in before.code] != [s for s, _ in after.code]:
        kinds.append("clones")
    if before.band != after.band:
        kinds.append("band")
    if code_changed(before, after):
        kinds.append("code")
    if None not in (before.params, after.params) and before.params != after.params:
        kinds.append("signature")
    if None not in (before.decl_line, after.decl_line) and before.decl_line != after.decl_line:
        kinds.append("moved")
    old_body, new_body = body_length(before), body_length(after)
    if old_body is not None and new_body is not None and old_body != new_body:
        kinds.append("body-lines")
    return kinds


def body_length(f: Function | dict[str, Any]) -> int | None:
    """Lines from the declaration to the last line the function's code comes from. (Its
    first line with code depends on what the compiler kept of the prologue; its last, the
    closing brace or the last return, is steadier.)"""
    lines, decl = (f.lines, f.decl_line) if isinstance(f, Function) else (f["lines"], f["decl_line"])
    return lines[1] - decl if lines and decl else None

"""The inlining, cloning, inline-argument and band experiments over builds, as records (``patchscope stats``).

* ``calls`` — ``.call`` vs ``.inline``: source functions by inlining status, and the call sites
  of the binary split into inline sites and DWARF call sites (to a function of this binary,
  to one elsewhere, indirect); per called function, the share of its calls that were inlined.
* ``versions`` — functions with several versions in one build: an original beside its clones,
  several clones, several out-of-line copies of one source function, ``.cold`` parts; and every
  instance by the shape of its clone suffix.
* ``inline_args`` — per inline site, how many of the inlined function's parameters a probe at
  the site's entry can read (all, some, none); per function, the share of (site, parameter)
  pairs readable; the functions with the most sites that miss a parameter.
* ``bands`` — source functions per band and per finding code (the rules' verdicts).

Counts only read the core's tables and the inventory; the rules are asked for ``bands`` alone.

A kernel tree is one build: each binary's record is computed apart (in the pool) and
:func:`added_up` adds the counts into one record of the same shape, the shares computed again
from the sums, the examples and worst functions the tree's (named ``BINARY:NAME``).

Schema ``patchscope.stats`` version 1.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import (
    LOC_NAMES,
    READABLE,
    Context,
)
from patchscope.index.functions import (
    FULLY_INLINED,
    NOT_INLINED,
    SELECTIVELY_INLINED,
    SYMBOL_ONLY,
    origin_roots,
    rows_of,
)
from patchscope.rules import findings, verdict

SCHEMA = "patchscope.stats"
VERSION = 1

STATUSES = (NOT_INLINED, FULLY_INLINED, SELECTIVELY_INLINED, SYMBOL_ONLY)
#: Suffix kinds that make a symbol a clone (``.part``, ``.isra``, ``.constprop``).
CLONE_SUFFIXES = _core.suffix.PART | _core.suffix.ISRA | _core.suffix.CONSTPROP

#: Per called function, the share of its calls that were inlined: exactly 0, in [0, 1/2),
#: in [1/2, 1), exactly 1.
INLINED_SHARE_BUCKETS = ("0 %", "0-50 %", "50-100 %", "100 %")
INLINED_SHARE_EDGES = (0.5,)
#: Per inlined function, the share of its (site, parameter) pairs readable; the middle buckets
#: are half-open, [25 %, 50 %) and so on.
READABLE_SHARE_BUCKETS = ("0 %", "0-25 %", "25-50 %", "50-75 %", "75-100 %", "100 %")
READABLE_SHARE_EDGES = (0.25, 0.5, 0.75)
SITE_CLASSES = ("all", "some", "none", "no-params")
#: Where a DWARF call site goes: a function this binary describes in DWARF, a symbol it defines
#: without DWARF (assembly, IFUNC), a function of another binary, or through a pointer.
DESTINATIONS = ("here", "here_no_dwarf", "elsewhere", "indirect")
HERE, HERE_NO_DWARF, ELSEWHERE, INDIRECT = range(len(DESTINATIONS))
#: Shapes of a function's out-of-line instances, exclusive: several copies without a clone
#: suffix (a static of a header, emitted in several units; clones may come too), one original
#: and its clones, clones and no original, a single clone. A ``.cold`` part is counted apart.
SHAPES = ("several-copies", "original+clones", "several-clones", "one-clone")
NO_SYMBOL = "(no symbol)"
#: Why a parameter cannot be read at a site: its location kind, or no DIE there at all.
NO_DIE_AT_SITE = "no DIE at the site"
VIEW_ONLY = "only in a later location view"
#: The location kinds (as ``param_sites_by_location`` names them) a probe can read.
READABLE_KINDS = frozenset(LOC_NAMES[k] for k in READABLE)

# -- the document ------------------------------------------------------------------------------


def document(binaries: Sequence[Binary], examples: int = 3, top: int = 10) -> dict[str, Any]:
    """Every experiment on every binary, in the order given."""
    labels = short_labels([str(b.path) for b in binaries])
    return {
        "schema": SCHEMA,
        "version": VERSION,
        "binaries": [of_binary(b, label, examples, top) for b, label in zip(binaries, labels)],
    }


def of_binary(b: Binary, label: str, examples: int, top: int) -> dict[str, Any]:
    timing: dict[str, float] = {}
    out: dict[str, Any] = {
        "label": label,
        "path": str(b.path),
        "build_id": b.info.get("build_id") or None,
        "arch": b.arch,
    }
    for name, compute in (
        ("calls", lambda: calls(b)),
        ("versions", lambda: versions(b, examples)),
        ("inline_args", lambda: inline_args(b, top)),
        ("bands", lambda: bands(b)),
    ):
        t0 = time.perf_counter()
        out[name] = compute()
        timing[name] = round(time.perf_counter() - t0, 3)
    out["seconds"] = timing
    return out


def short_labels(paths: Sequence[str]) -> list[str]:
    """The shortest path tails that tell the binaries apart (``x86_64/corpus``, ``x86_64-O3/corpus``)."""
    parts = [Path(p).parts for p in paths]
    for n in range(1, max((len(p) for p in parts), default=1) + 1):
        tails = ["/".join(p[-n:]) for p in parts]
        if len(set(tails)) == len(tails):
            return tails
    return [f"{t} #{i + 1}" for i, t in enumerate(paths)]  # the same file twice


def share(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _bucket(shares: np.ndarray, edges: Sequence[float], names: Sequence[str]) -> dict[str, int]:
    """Counts of ``shares`` (0..1) in named buckets: exactly 0, between the ``edges`` (half-open),
    exactly 1 — so that "never" and "always" stand apart from "mostly"."""
    middle = 1 + np.searchsorted(np.asarray(edges), shares, "right")
    idx = np.where(shares <= 0, 0, np.where(shares >= 1, len(names) - 1, middle))
    return dict(zip(names, np.bincount(idx, minlength=len(names)).tolist()))


# -- 1. .call vs .inline ------------------------------------------------------------------------


def calls(b: Binary) -> dict[str, Any]:
    cx = Context(b)
    fn = cx.functions
    status = Counter(fn.column("status").to_pylist())
    n_dwarf = fn.num_rows - status[SYMBOL_ONLY]
    fid, dest = call_targets(cx)
    inline = cx.sites.num_rows
    by_dest = np.bincount(dest, minlength=len(DESTINATIONS))
    here = int(by_dest[0])
    # per function called at all: its inline sites against the DWARF calls that reach it
    n_inline = fn.column("inline_sites").to_numpy()
    total = n_inline + np.bincount(fid[dest == 0], minlength=fn.num_rows)
    called = total > 0
    return {
        "functions": {s: status[s] for s in STATUSES},
        "source_functions": n_dwarf,
        "with_entry": status[NOT_INLINED] + status[SELECTIVELY_INLINED],
        "inlined": status[FULLY_INLINED] + status[SELECTIVELY_INLINED],
        "call_sites": {"inline": inline, "dwarf_calls": len(dest), **dict(zip(DESTINATIONS, by_dest.tolist()))},
        "inlined_share_of_resolved": share(inline, inline + here),
        "inlined_share_of_all": share(inline, inline + len(dest)),
        "called_functions": int(called.sum()),
        "called_functions_by_inlined_share": _bucket(
            n_inline[called] / total[called], INLINED_SHARE_EDGES, INLINED_SHARE_BUCKETS
        ),
    }


def call_targets(cx: Context) -> tuple[np.ndarray, np.ndarray]:
    """For each DWARF call site in code: the source function it reaches (-1: none with DWARF)
    and where it goes (an index into DESTINATIONS).

    The target DIE is an abstract DIE or a declaration. It is matched by name, file and line;
    else, as the linker would, by name to a symbol of this binary and by address to the
    instance there (``free`` is ``__libc_free``'s alias; a prototype's line is not the
    definition's); else by name among external functions (a relocatable file's symbols)."""
    cs = cx.raw("call_sites")
    sp = cx.raw("subprograms")
    die = sp.column("die").to_numpy()
    has_code = (sp.column("flags").to_numpy() & _core.spflag.HAS_CODE) != 0
    caller = rows_of(die, cs.column("function").to_numpy())
    in_code = (caller >= 0) & has_code[np.maximum(caller, 0)]  # not a call site in an abstract tree
    target = cs.column("target").to_numpy()[in_code]
    indirect = (cs.column("indirect").to_numpy()[in_code] != 0) | (target == _core.NO_DIE)
    root = origin_roots(die, sp.column("origin").to_numpy(), sp.column("specification").to_numpy())
    keys = np.stack([sp.column(c).to_numpy()[root].astype(np.int64) for c in ("name", "decl_file", "decl_line")], 1)
    resolve = _Resolver(cx)
    # one look-up per distinct target, not per call site
    rows, which = np.unique(rows_of(die, target), return_inverse=True)
    found = [resolve(tuple(keys[r].tolist())) if r >= 0 else (-1, INDIRECT) for r in rows.tolist()]
    fid = np.array([f for f, _ in found], np.int64)[which.reshape(-1)]
    dest = np.array([d for _, d in found], np.int64)[which.reshape(-1)]
    dest[indirect] = INDIRECT
    return fid, dest


class _Resolver:
    """A call target's (name, file, line) to (source function, destination)."""

    def __init__(self, cx: Context) -> None:
        fn = cx.functions
        names = fn.column("name").combine_chunks().indices.to_numpy()
        files = fn.column("decl_file").combine_chunks().indices.to_numpy()
        lines = fn.column("decl_line").to_numpy()
        self.dwarf = np.asarray(fn.column("status").to_pylist()) != SYMBOL_ONLY
        self.by_key = {
            (int(n), int(f), int(ln)): i for i, (n, f, ln) in enumerate(zip(names, files, lines)) if self.dwarf[i]
        }
        ext = np.flatnonzero(fn.column("external").to_numpy(zero_copy_only=False) & self.dwarf)
        count = Counter(names[ext].tolist())
        self.by_external_name = {int(names[i]): int(i) for i in ext.tolist() if count[int(names[i])] == 1}
        self.pool = cx.pool
        self.symbol_address = _defined_code_symbols(cx)
        self.instance_at = _instances_by_start(cx)

    def __call__(self, key: tuple[int, int, int]) -> tuple[int, int]:
        if key in self.by_key:
            return self.by_key[key], HERE
        name = self.pool[key[0]].as_py()
        # GCC names the callee of an expanded builtin __builtin_memcpy; the call goes to memcpy
        address = self.symbol_address.get(name, self.symbol_address.get(name.removeprefix("__builtin_")))
        if address is not None:
            fid = self.instance_at.get(address, -1)
            return (fid, HERE) if fid >= 0 and self.dwarf[fid] else (-1, HERE_NO_DWARF)
        if key[0] in self.by_external_name:
            return self.by_external_name[key[0]], HERE
        return -1, ELSEWHERE


def _instances_by_start(cx: Context) -> dict[int, int]:
    """Start address of every range of every instance → its source function (an instance with
    DW_AT_ranges has no low_pc of its own)."""
    inst = cx.inst
    ranges = inst.column("ranges").combine_chunks()
    starts = ranges.values.flatten().to_numpy()[::2]
    owner = np.repeat(inst.column("fid").to_numpy(), np.diff(ranges.offsets.to_numpy()))
    return dict(zip(starts.tolist(), owner.tolist()))


def _defined_code_symbols(cx: Context) -> dict[str, int]:
    """Name → address of the function and untyped symbols defined in this binary."""
    sy = cx.raw("symbols")
    kind = sy.column("kind").to_numpy()
    rows = np.flatnonzero(
        np.isin(kind, (_core.symkind.FUNC, _core.symkind.NOTYPE)) & (sy.column("section").to_numpy() != 0)
    )
    names = cx.pool.take(sy.column("name").to_numpy()[rows]).to_pylist()
    # the first definition of a name wins; several are statics, which the key matched already
    out: dict[str, int] = {}
    for name, address in zip(names, sy.column("address").to_numpy()[rows].tolist()):
        out.setdefault(name, address)
    return out


# -- 2. several versions of one function ----------------------------------------------------------


def versions(b: Binary, examples: int) -> dict[str, Any]:
    cx = Context(b)
    inst = _instance_shapes(cx)
    fn = cx.functions
    dwarf = np.asarray(fn.column("status").to_pylist()) != SYMBOL_ONLY
    fid = inst["fid"]
    n = fn.num_rows
    originals = np.bincount(fid[~inst["clone"]], minlength=n)
    clones = np.bincount(fid[inst["clone"]], minlength=n)
    cold = np.bincount(fid[inst["cold"]], minlength=n)
    masks = {
        "several-copies": originals >= 2,
        "original+clones": (originals == 1) & (clones >= 1),
        "several-clones": (originals == 0) & (clones >= 2),
        "one-clone": (originals == 0) & (clones == 1),
        "cold-part": cold >= 1,
    }
    names = fn.column("name").to_pylist()
    files = fn.column("decl_file").to_pylist()
    shapes: dict[str, Any] = {}
    for shape, mask in masks.items():
        rows = np.flatnonzero(mask & dwarf)
        # the most versions first: the striking examples
        pick = rows[np.lexsort((rows, -(originals + clones)[rows]))][:examples]
        shapes[shape] = {
            "functions": len(rows),
            "examples": [
                {
                    "name": names[i],
                    "decl_file": files[i],
                    "versions": int((originals + clones)[i]),
                    "instances": _instance_names(cx, inst, i),
                }
                for i in pick.tolist()
            ],
        }
    several = (originals + clones >= 2) | (cold >= 1)
    return {
        "functions_with_entry": int(((originals + clones) > 0)[dwarf].sum()),
        "functions_with_several_versions": int((several & dwarf).sum()),
        "several_copies_with_clones": int((masks["several-copies"] & (clones >= 1) & dwarf).sum()),
        "shapes": shapes,
        "instances_by_suffix": dict(Counter(inst["shape"][dwarf[fid]].tolist()).most_common()),
        "max_instances": int((originals + clones)[dwarf].max(initial=0)),
    }


def _instance_shapes(cx: Context) -> dict[str, np.ndarray]:
    """Per out-of-line instance: its function, whether its main symbol is a clone, whether it
    has a ``.cold`` part, and its suffix with the numbers dropped (``constprop.isra``)."""
    inst = cx.inst
    sy = cx.raw("symbols")
    kinds = sy.column("suffix_kinds").to_numpy()
    suffix = sy.column("suffix").to_numpy()
    col = inst.column("symbols").combine_chunks()
    offsets = col.offsets.to_numpy()
    values = col.values.to_numpy().astype(np.int64)
    main, main_kinds = cx.inst_main_symbol, cx.inst_suffix_kinds
    owner = np.repeat(np.arange(len(main)), np.diff(offsets))
    cold = np.zeros(len(main), bool)
    cold[owner[(kinds[values] & _core.suffix.COLD) != 0]] = True
    pool = cx.pool
    text = {i: pool[int(i)].as_py() for i in np.unique(suffix[main[main >= 0]]).tolist()}
    shape = np.array(
        [
            NO_SYMBOL if m < 0 else suffix_shape(text[int(suffix[m])]) if k & CLONE_SUFFIXES else "original"
            for m, k in zip(main.tolist(), main_kinds.tolist())
        ],
        dtype=object,
    )
    return {
        "fid": inst.column("fid").to_numpy(),
        "clone": (main_kinds & CLONE_SUFFIXES) != 0,
        "cold": cold,
        "shape": shape,
        "main": main,
    }


def suffix_shape(suffix: str) -> str:
    """``constprop.0.isra.0`` → ``constprop.isra``: what a clone is, without its numbers (the
    core's ``clone_shape`` of a name with this suffix, less the name's stem ``f.``)."""
    return _core.clone_shape(f"f.{suffix}")[2:] or "original"


def _instance_names(cx: Context, inst: dict[str, np.ndarray], fid: int) -> list[str]:
    """The out-of-line instances of one function by symbol, ``+cold`` where a part was split off."""
    name = cx.raw("symbols").column("name").to_numpy()
    out = []
    for r in np.flatnonzero(inst["fid"] == fid).tolist():
        m = inst["main"][r]
        text = cx.pool[int(name[m])].as_py() if m >= 0 else NO_SYMBOL
        out.append(text + (" +cold" if inst["cold"][r] else ""))
    # a header's static has tens of copies of one name: counted, not repeated
    return [f"{n} ({k} copies)" if k > 1 else n for n, k in sorted(Counter(out).items())]


# -- 3. arguments at inline sites ----------------------------------------------------------------


def inline_args(b: Binary, top: int) -> dict[str, Any]:
    cx = Context(b)
    site = _site_params(cx)
    cls = site["class"]
    per_site = dict(zip(SITE_CLASSES, np.bincount(cls, minlength=len(SITE_CLASSES)).tolist()))
    fn = _function_params(site, cx.functions.num_rows)
    with_params = np.flatnonzero(fn["pairs"] > 0)
    shares = fn["readable"][with_params] / fn["pairs"][with_params]
    return {
        "sites": len(cls),
        "sites_by_class": per_site,
        "param_sites": int(site["params"].sum()),
        "param_sites_readable": int(site["readable"].sum()),
        "param_sites_by_location": _unreadable_reasons(cx, site),
        "functions": len(with_params),
        "functions_by_readable_share": _bucket(shares, READABLE_SHARE_EDGES, READABLE_SHARE_BUCKETS),
        "functions_all_readable_everywhere": int((shares >= 1).sum()),
        "worst": _worst(cx, site, fn, top),
    }


def _site_params(cx: Context) -> dict[str, np.ndarray]:
    """Per concrete inline site: the inlined function's parameter count (those of the abstract
    DIE the site points to), how many of them the site can read at its entry, and its class
    (an index into SITE_CLASSES). A parameter with no DIE at the site counts as unreadable."""
    sites = cx.sites
    p = cx.raw("params")
    owner = p.column("owner").to_numpy()  # the core emits parameters in DIE order: sorted by owner
    origin = sites.column("origin").to_numpy()
    n_params = np.searchsorted(owner, origin, "right") - np.searchsorted(owner, origin, "left")
    site_die = sites.column("die").to_numpy()
    at = rows_of(site_die, owner)
    readable = readable_params(cx)
    n_read = np.bincount(at[(at >= 0) & readable], minlength=len(site_die))
    n_read = np.minimum(n_read, n_params)  # never more than the function has
    cls = np.select([n_params == 0, n_read == n_params, n_read == 0], [3, 0, 2], default=1)
    return {"fid": sites.column("fid").to_numpy(), "params": n_params, "readable": n_read, "class": cls, "at": at}


def readable_params(cx: Context) -> np.ndarray:
    """Whether a probe at the owner's entry reads each parameter: a readable kind, bound at the
    address itself and not only in a later location view (as the rules decide)."""
    p = cx.raw("params")
    flags = p.column("loc_flags").to_numpy()
    return np.isin(p.column("loc_kind").to_numpy(), READABLE) & ((flags & _core.location_flag.VIEW_ONLY) == 0)


def _function_params(site: dict[str, np.ndarray], n: int) -> dict[str, np.ndarray]:
    fid = site["fid"]
    out = {
        "pairs": np.bincount(fid, weights=site["params"], minlength=n).astype(np.int64),
        "readable": np.bincount(fid, weights=site["readable"], minlength=n).astype(np.int64),
        "sites": np.bincount(fid, minlength=n),
    }
    for i, c in enumerate(SITE_CLASSES):
        out[c] = np.bincount(fid[site["class"] == i], minlength=n)
    return out


def _unreadable_reasons(cx: Context, site: dict[str, np.ndarray]) -> dict[str, int]:
    """(site, parameter) pairs by the parameter's location kind at the site's entry."""
    p = cx.raw("params")
    at = site["at"]
    mine = at >= 0
    kinds = p.column("loc_kind").to_numpy()[mine].astype(np.int16)
    view = (p.column("loc_flags").to_numpy()[mine] & _core.location_flag.VIEW_ONLY) != 0
    counts = Counter(np.where(view, -1, kinds).tolist())
    out = {(VIEW_ONLY if k < 0 else LOC_NAMES.get(k, str(k))): v for k, v in counts.most_common()}
    missing = int(site["params"].sum()) - int(mine.sum())
    if missing > 0:
        out[NO_DIE_AT_SITE] = missing
    return out


def _worst(cx: Context, site: dict[str, np.ndarray], fn: dict[str, np.ndarray], top: int) -> list[dict[str, Any]]:
    """The functions with the most inline sites that miss a parameter; ties: the lower share."""
    missing = fn["some"] + fn["none"]
    rows = np.flatnonzero(missing > 0)
    share_read = fn["readable"][rows] / np.maximum(fn["pairs"][rows], 1)
    pick = rows[np.lexsort((rows, share_read, -missing[rows]))][:top]
    f = cx.functions
    names, files = f.column("name"), f.column("decl_file")
    return [
        {
            "name": names[i].as_py(),
            "decl_file": files[i].as_py() or None,
            "sites": int(fn["sites"][i]),
            **{c: int(fn[c][i]) for c in ("all", "some", "none")},
            "readable": per_param_readable(cx, site, i),
        }
        for i in pick.tolist()
    ]


def per_param_readable(cx: Context, site: dict[str, np.ndarray], fid: int) -> dict[str, int]:
    """At how many of ``fid``'s inline sites each of its parameters is readable, by name. A
    site's parameter DIE points to its unit's abstract parameter; every unit's abstract DIE
    lists the same parameters in the same order, so the position in that list is the key."""
    p = cx.raw("params")
    owner, die = p.column("owner").to_numpy(), p.column("die").to_numpy()
    rows = np.flatnonzero(site["fid"] == fid)
    abstract = cx.sites.column("origin").to_numpy()[rows[0]]
    first = int(np.searchsorted(owner, abstract, "left"))
    names = [
        cx.pool[int(n)].as_py() or f"#{k + 1}"
        for k, n in enumerate(p.column("name").to_numpy()[first : first + int(site["params"][rows[0]])])
    ]
    mine = np.flatnonzero(np.isin(site["at"], rows) & readable_params(cx))
    origin = rows_of(die, p.column("origin").to_numpy()[mine])
    origin = origin[origin >= 0]
    position = origin - np.searchsorted(owner, owner[origin], "left")
    counts = np.bincount(position[position < len(names)], minlength=len(names))
    return dict(zip(names, counts.tolist()))


# -- bands and finding codes ---------------------------------------------------------------------


def bands(b: Binary) -> dict[str, Any]:
    f = findings(b)
    return verdict.summary(f.bands, f.findings)


def keys_by_total(dicts: Iterable[dict[str, int]]) -> list[str]:
    """The keys of several counters, the largest total first."""
    total: dict[str, int] = {}
    for d in dicts:
        for k, n in d.items():
            total[k] = total.get(k, 0) + n
    return sorted(total, key=lambda k: (-total[k], k))


# -- a kernel tree: its binaries' records added up -----------------------------------------------


def added_up(
    parts: Sequence[tuple[str, dict[str, Any]]], label: str, path: str, examples: int, top: int
) -> dict[str, Any]:
    """One record for several binaries' (``parts``: name and record of each, from
    :func:`of_binary`): counts summed, shares of the sums, the examples and the worst functions
    of all of them (each named ``BINARY:NAME``), seconds summed (CPU, not the run's wall time)."""
    recs = [r for _, r in parts]
    return {
        "label": label,
        "path": path,
        "build_id": None,
        "arch": recs[0]["arch"] if recs else "unknown",
        "binaries": len(recs),
        "calls": _calls_added(recs),
        "versions": _versions_added(parts, examples),
        "inline_args": _inline_args_added(parts, top),
        "bands": {k: _summed(r["bands"][k] for r in recs) for k in ("functions_by_band", "functions_by_code")},
        "seconds": _summed([r["seconds"] for r in recs], ndigits=3),
    }


def _summed(dicts: Iterable[dict[str, Any]], ndigits: int | None = None) -> dict[str, Any]:
    """Counters added key by key, in the order the keys first come."""
    out: dict[str, Any] = {}
    for d in dicts:
        for k, v in d.items():
            out[k] = out.get(k, 0) + v
    return {k: round(v, ndigits) for k, v in out.items()} if ndigits is not None else out


def _ordered(out: dict[str, Any], like: list[dict[str, Any]]) -> dict[str, Any]:
    """``out``'s keys in the order of one binary's record."""
    return {k: out[k] for k in like[0]} if like else out


def _by_count(d: dict[str, int]) -> dict[str, int]:
    return dict(sorted(d.items(), key=lambda kv: (-kv[1], kv[0])))


def _calls_added(recs: list[dict[str, Any]]) -> dict[str, Any]:
    c = [r["calls"] for r in recs]
    scalar = ("source_functions", "with_entry", "inlined", "called_functions")
    out: dict[str, Any] = {"functions": _summed(x["functions"] for x in c)}
    out |= {k: sum(x[k] for x in c) for k in scalar}
    sites = _summed(x["call_sites"] for x in c)
    inline = sites.get("inline", 0)
    out["call_sites"] = sites
    out["inlined_share_of_resolved"] = share(inline, inline + sites.get("here", 0))
    out["inlined_share_of_all"] = share(inline, inline + sites.get("dwarf_calls", 0))
    out["called_functions_by_inlined_share"] = _summed(x["called_functions_by_inlined_share"] for x in c)
    return _ordered(out, c)


def _versions_added(parts: Sequence[tuple[str, dict[str, Any]]], examples: int) -> dict[str, Any]:
    v = [r["versions"] for _, r in parts]
    shapes: dict[str, Any] = {}
    for shape in v[0]["shapes"] if v else ():
        picked = [
            {**e, "name": f"{name}:{e['name']}"}
            for name, r in parts
            for e in r["versions"]["shapes"][shape]["examples"]
        ]
        picked.sort(key=lambda e: -e.get("versions", 0))  # stable: the vmlinux's first among equals
        shapes[shape] = {"functions": sum(x["shapes"][shape]["functions"] for x in v), "examples": picked[:examples]}
    scalar = ("functions_with_entry", "functions_with_several_versions", "several_copies_with_clones")
    out = {
        **{k: sum(x[k] for x in v) for k in scalar},
        "shapes": shapes,
        "instances_by_suffix": _by_count(_summed(x["instances_by_suffix"] for x in v)),
        "max_instances": max((x["max_instances"] for x in v), default=0),
    }
    return _ordered(out, v)


def _inline_args_added(parts: Sequence[tuple[str, dict[str, Any]]], top: int) -> dict[str, Any]:
    a = [r["inline_args"] for _, r in parts]
    scalar = ("sites", "param_sites", "param_sites_readable", "functions", "functions_all_readable_everywhere")
    worst = [{**w, "name": f"{name}:{w['name']}"} for name, r in parts for w in r["inline_args"]["worst"]]
    # as each binary ranks them: the most sites missing a parameter first
    worst.sort(key=lambda w: -(w["some"] + w["none"]))
    out = {
        **{k: sum(x[k] for x in a) for k in scalar},
        "sites_by_class": _summed(x["sites_by_class"] for x in a),
        "param_sites_by_location": _by_count(_summed(x["param_sites_by_location"] for x in a)),
        "functions_by_readable_share": _summed(x["functions_by_readable_share"] for x in a),
        "worst": worst[:top],
    }
    return _ordered(out, a)

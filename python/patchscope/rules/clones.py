"""Clones and splits: ``.cold``, ``.constprop``, ``.isra`` and ``.part`` instances.

A probe placed by source name lands on these under another name, with another body or
another calling convention than the source shows.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patchscope.index.tables import NO_DIE
from patchscope.rules import abi
from patchscope.rules.context import (
    LOC_CONSTANT,
    LOC_REGISTER,
    SUFFIX_CONSTPROP,
    SUFFIX_ISRA,
    SUFFIX_PART,
    Context,
)
from patchscope.rules.finding import Band, Finding, code, hexa

COLD_SPLIT = code(
    "cold-split",
    Band.GRAY,
    "part of the function lives in a separate .cold range that tools resolving one range miss",
)
CONSTPROP_CLONE = code(
    "constprop-clone",
    Band.GRAY,
    "a .constprop clone: some arguments are fixed constants, the body specialised",
)
ISRA_ABI_CHANGED = code(
    "isra-abi-changed",
    Band.GRAY,
    "an .isra clone: parameters removed, replaced by scalars or moved to other registers",
)
PARTIAL_INLINE = code(
    "partial-inline",
    Band.GRAY,
    "a .part split: the head is inlined into its callers, only the tail is out of line",
)


def cold_split(cx: Context) -> Iterator[Finding]:
    """From the ranges, not the suffix: a split part need not have a ``.cold`` symbol."""
    lines = cx.b.cols.raw["lines"]
    addr = lines.column("address").to_numpy()
    stmt = (lines.column("flags").to_numpy() & 1) != 0
    stmt_addrs = np.sort(addr[stmt])  # np.unique hashes, which is slower on millions of rows
    stmt_addrs = stmt_addrs[np.concatenate([[True], stmt_addrs[1:] != stmt_addrs[:-1]])]
    for row in np.flatnonzero(cx.inst_range_count >= 2).tolist():
        parts = cx.instance_parts(row)
        cold = [p for p in parts[1:] if p["symbol"] is None or ".cold" in p["symbol"]]
        if not cold:
            continue
        for p in cold:
            a = np.searchsorted(stmt_addrs, p["low"], "left")
            b = np.searchsorted(stmt_addrs, p["high"], "left")
            p["stmt_addresses"] = int(b - a)
        fid = int(cx.inst_fid[row])
        main = cx.instance_symbol(row)
        where = ", ".join(f"{p['symbol'] or '(no symbol)'} {hexa(p['low'])}-{hexa(p['high'])}" for p in cold)
        yield Finding(
            COLD_SPLIT,
            fid,
            f"{main} continues in {where}: {sum(p['stmt_addresses'] for p in cold)} statement address(es) "
            "there; a tool that resolves only the first range (perf probe fails on such functions) misses "
            "the code, returns and lines of the cold part",
            {
                "instance": main,
                "parts": [{**p, "low": hexa(p["low"]), "high": hexa(p["high"])} for p in parts],
            },
            instance=row,
            address=cold[0]["low"],
        )


def _param_table(cx: Context, row: int) -> tuple[list[tuple[int, str]], dict[int, int]]:
    """The source parameters of an instance, and which of them the instance has (by the
    abstract parameter's DIE → the instance's parameter row)."""
    die = int(cx.inst_die[row])
    source = cx.source_params(die)
    have = {int(cx.params["origin"][r]): int(r) for r in cx.params_of(die)}
    return source, have


def constprop_clone(cx: Context) -> Iterator[Finding]:
    kinds = cx.inst_suffix_kinds
    for row in np.flatnonzero((kinds & SUFFIX_CONSTPROP) != 0).tolist():
        if cx.inst_die[row] == NO_DIE:
            continue
        fid = int(cx.inst_fid[row])
        source, have = _param_table(cx, row)
        fixed, absent = [], []
        for pdie, name in source:
            r = have.get(pdie)
            if r is None:
                absent.append(name)
            elif cx.params["loc_kind"][r] == LOC_CONSTANT:
                fixed.append({"param": name, "value": int(cx.params["const_value"][r])})
        others = [cx.instance_symbol(o) for o in cx.instances_of.get(fid, []) if o != row]
        originals = [o for o in others if ".constprop" not in o]
        main = cx.instance_symbol(row)
        said = [f"{f['param']}={f['value']:#x}" for f in fixed] + [f"{a} (absent)" for a in absent]
        yield Finding(
            CONSTPROP_CLONE,
            fid,
            f"{main}: {', '.join(said) or 'no parameter visibly fixed'}; "
            + (f"the original survives as {', '.join(originals)}" if originals else "no unspecialised copy exists"),
            {"instance": main, "fixed": fixed, "absent": absent, "other_instances": others},
            instance=row,
            address=cx.inst_low(row),
        )


def isra_abi_changed(cx: Context) -> Iterator[Finding]:
    """pahole's checks: each source parameter's register at entry against the register the
    ABI gives its position; parameters gone, known only at the call site, or moved."""
    arch = cx.b.arch
    int_args = abi.INT_ARGS.get(arch, [])
    kinds = cx.inst_suffix_kinds
    for row in np.flatnonzero((kinds & SUFFIX_ISRA) != 0).tolist():
        if cx.inst_die[row] == NO_DIE:
            continue
        fid = int(cx.inst_fid[row])
        source, have = _param_table(cx, row)
        params, unreadable, moved, slots = [], [], [], {}
        for pos, (pdie, name) in enumerate(source):
            r = have.get(pdie)
            p = {"param": name, "position": pos}
            if r is None:
                p["status"] = "removed"
                unreadable.append(name)
            else:
                p["status"] = cx.param_status(r)
                if not cx.param_readable[r]:
                    unreadable.append(name)
                if cx.params["loc_kind"][r] == LOC_REGISTER:
                    reg = int(cx.params["loc_reg"][r])
                    p["register"] = abi.reg_name(arch, reg)
                    slot = abi.arg_slot(arch, reg)
                    if slot is not None:
                        slots[slot] = name
                        if slot != pos:
                            p["moved"] = f"arg{pos} -> arg{slot}"
                            moved.append(f"{name} arrives in arg{slot} ({p['register']}), not arg{pos}")
            params.append(p)
        wrong_args = [
            {
                "arg": k,
                "source_param": source[k][1],
                "holds": slots.get(k, "an unnamed value (a replacement scalar)"),
            }
            for k in range(min(len(source), len(int_args)))
            if slots.get(k) != source[k][1]
        ]
        main = cx.instance_symbol(row)
        changed = unreadable or wrong_args or moved
        if changed:
            msg = (
                f"{main}: a tool listing source parameters (stap -L) shows "
                f"{', '.join(n for _, n in source) or 'none'} but cannot read {', '.join(unreadable) or 'none'}"
            )
            if moved:
                msg += "; " + "; ".join(moved)
            if wrong_args:
                msg += "; positional access reads the wrong value: " + ", ".join(
                    f"arg{w['arg']} holds {w['holds']}, not {w['source_param']}" for w in wrong_args
                )
        else:
            msg = f"{main}: every source parameter still arrives in its ABI register (ABI unchanged)"
        yield Finding(
            ISRA_ABI_CHANGED,
            fid,
            msg,
            {"instance": main, "abi_changed": bool(changed), "params": params, "positional": wrong_args},
            instance=row,
            address=cx.inst_low(row),
        )


def partial_inline(cx: Context) -> Iterator[Finding]:
    kinds = cx.inst_suffix_kinds
    for row in np.flatnonzero((kinds & SUFFIX_PART) != 0).tolist():
        fid = int(cx.inst_fid[row])
        sites = cx.sites_of(fid)
        callers = sorted(cx.string(i) for i in set(cx.site_caller_name[sites].tolist()))
        main = cx.instance_symbol(row)
        yield Finding(
            PARTIAL_INLINE,
            fid,
            f"{main} is the out-of-line tail; the head is inlined at {len(sites)} site(s) in "
            f"{', '.join(callers) or 'no caller with DWARF'}: an entry probe on {main} sees only the calls "
            "that pass the head's test",
            {"instance": main, "head_sites": len(sites), "callers": callers},
            instance=row,
            address=cx.inst_low(row),
        )


RULES = [cold_split, constprop_clone, isra_abi_changed, partial_inline]

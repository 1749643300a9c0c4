"""Clones and splits: ``.cold``, ``.constprop``, ``.isra`` and ``.part`` instances.

A probe placed by source name lands on these under another name, with another body or
another calling convention than the source shows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import numpy as np

from patchscope import _core
from patchscope.index import abi
from patchscope.index.context import Context
from patchscope.index.machine import Instruction
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
CONSTPROP_TRIVIAL_BODY = code(
    "constprop-trivial-body",
    Band.GRAY,
    "the .constprop clone's code is a constant return: no path through it is left to patch or probe",
)
PARTIAL_INLINE = code(
    "partial-inline",
    Band.GRAY,
    "a .part split: the head is inlined into its callers, only the tail is out of line",
)


def cold_split(cx: Context) -> Iterator[Finding]:
    """From the ranges, not the suffix: a split part need not have a ``.cold`` symbol."""
    lines = cx.raw("lines")
    addr = lines.column("address").to_numpy()
    stmt = (lines.column("flags").to_numpy() & _core.lineflag.IS_STMT) != 0
    stmt_addrs = np.sort(addr[stmt])  # np.unique hashes, which is slower on millions of rows
    first = np.ones(len(stmt_addrs), bool)  # of each run of one address (none without a line table)
    first[1:] = stmt_addrs[1:] != stmt_addrs[:-1]
    stmt_addrs = stmt_addrs[first]
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
    for row in np.flatnonzero((kinds & _core.suffix.CONSTPROP) != 0).tolist():
        if cx.inst_die[row] == _core.NO_DIE:
            continue
        fid = int(cx.inst_fid[row])
        source, have = _param_table(cx, row)
        fixed, absent = [], []
        for pdie, name in source:
            r = have.get(pdie)
            if r is None:
                absent.append(name)
            elif cx.params["loc_kind"][r] == _core.location_kind.CONSTANT:
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


#: A constant loaded into the return register, per architecture (the text of ``instructions``).
CONSTANT_RETURN = {
    "x86_64": re.compile(r"^(xor\s+%eax,%eax|mov[lq]?\s+\$-?(0x)?[0-9a-f]+,%[er]ax)$"),
    "aarch64": re.compile(r"^mov[zn]?\s+[wx]0,\s*#-?(0x)?[0-9a-f]+$"),
    "ppc64le": re.compile(r"^li\s+r?3,\s*-?(0x)?[0-9a-f]+$"),
    "ppc64": re.compile(r"^li\s+r?3,\s*-?(0x)?[0-9a-f]+$"),
    "riscv64": re.compile(r"^(c\.)?(li\s+a0,\s*-?(0x)?[0-9a-f]+|mv\s+a0,\s*zero)$"),
}
#: What the kernel puts before a function's own first instruction.
ENTRY_SCAFFOLD_CALLS = {"__fentry__", "mcount", "_mcount", "__gnu_mcount_nc"}
#: Instructions a trivial body may hold, at most (scaffolding included).
TRIVIAL_MAX = 8


def constprop_trivial_body(cx: Context) -> Iterator[Finding]:
    """Decided from the decoded instructions: past the entry scaffolding (ENDBR/BTI, patchable
    NOPs, the ftrace call) the body is at most one constant load into the return register
    and a return, like ``preallocate_pmds.constprop.0`` (``xor %eax,%eax; ret``)."""
    pattern = CONSTANT_RETURN.get(cx.arch)
    if pattern is None:
        return
    ranges = cx.machine.ranges
    ids = ranges.column("function_id").to_numpy()
    counts = ranges.column("insn_count").to_numpy()
    first = np.unique(ids, return_index=True)[1]  # an instance's entry range comes first
    short = np.zeros(cx.inst.num_rows, bool)
    short[ids[first]] = counts[first] <= TRIVIAL_MAX
    # a constant return has a return and at most the ftrace call: skip the rest undecoded
    ev = cx.machine.events
    fid, kind = ev.column("function_id").to_numpy(), ev.column("kind").to_numpy()
    returns = np.bincount(fid[kind == _core.kind.RETURN].astype(np.int64), minlength=cx.inst.num_rows)
    calls = np.bincount(fid[kind == _core.kind.CALL_DIRECT].astype(np.int64), minlength=cx.inst.num_rows)
    short &= (returns >= 1) & (calls <= 1)
    for row in np.flatnonzero(short & ((cx.inst_suffix_kinds & _core.suffix.CONSTPROP) != 0)).tolist():
        lo, hi = cx.inst_ranges(row)[0]
        insns = cx.instructions(lo, hi)
        body = _past_scaffold(cx, insns)
        end = next((i for i, x in enumerate(body) if x["kind"] == _core.kind.RETURN), None)
        if end is None or end > 1 or (end == 1 and not pattern.match(body[0]["text"])):
            continue
        main = cx.instance_symbol(row)
        listing = [f"{hexa(x['address'])}: {_text(cx, x)}" for x in insns[: insns.index(body[end]) + 1]]
        yield Finding(
            CONSTPROP_TRIVIAL_BODY,
            int(cx.inst_fid[row]),
            f"{main} is only {'; '.join(_text(cx, x) for x in body[: end + 1])}: with its arguments fixed, "
            f"gcc folded the body to {'a constant' if end else 'nothing'}; a patch or probe that expects a path "
            "through it cannot work",
            {"instance": main, "instructions": listing},
            instance=row,
            address=lo,
        )


def _past_scaffold(cx: Context, insns: list[Instruction]) -> list[Instruction]:
    i = 0
    while i < len(insns):
        x = insns[i]
        call = x["kind"] == _core.kind.CALL_DIRECT and cx.name_at(x["target"]) in ENTRY_SCAFFOLD_CALLS
        if not (call or x["kind"] in (_core.kind.ENDBR, _core.kind.NOP, _core.kind.ENTRY_NOPS)):
            break
        i += 1
    return insns[i:]


def _text(cx: Context, x: Instruction) -> str:
    """An instruction's text with its branch target named."""
    if x["target"] != _core.NO_TARGET and x["kind"] in (
        _core.kind.CALL_DIRECT,
        _core.kind.RETURN,
        _core.kind.TAIL_JUMP_DIRECT,
        _core.kind.JUMP,
    ):
        return re.sub(r"0x[0-9a-f]+$", cx.name_at(x["target"]), x["text"])
    return x["text"]


def isra_abi_changed(cx: Context) -> Iterator[Finding]:
    """pahole's checks: each source parameter's register at entry against the register the
    ABI gives its position; parameters gone, known only at the call site, or moved."""
    arch = cx.arch
    int_args = abi.INT_ARGS.get(arch, [])
    kinds = cx.inst_suffix_kinds
    for row in np.flatnonzero((kinds & _core.suffix.ISRA) != 0).tolist():
        if cx.inst_die[row] == _core.NO_DIE:
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
                if cx.params["loc_kind"][r] == _core.location_kind.REGISTER:
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
    for row in np.flatnonzero((kinds & _core.suffix.PART) != 0).tolist():
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


RULES = [cold_split, constprop_clone, constprop_trivial_body, isra_abi_changed, partial_inline]

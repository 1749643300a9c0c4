"""Verdicts for probe points: each address a point resolves to gets the findings that concern
a probe *there* — its instance's, its function's, the atomic region around it — plus the
point's own: lines that are not one place, variables that are not there, places missed."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.rules.finding import CODES, Band, Code, code, hexa
from patchscope.rules.refused import THROUGH_TRACE_KPROBE

if TYPE_CHECKING:
    from patchscope.probes.lines import LineMatch
    from patchscope.probes.resolve import Landing, Resolution
    from patchscope.rules import Findings

LINE_FRAGILE = code(
    "line-fragile",
    Band.GRAY,
    "the source line is not one address: duplicated, shared with an inlined function's line, or not a statement start",
)
VAR_UNAVAILABLE = code(
    "var-unavailable",
    Band.GRAY,
    "a variable the probe reads has no location at the probed address (optimized out there)",
)
VAR_ENTRY_VALUE_ONLY = code(
    "var-entry-value-only",
    Band.GRAY,
    "a variable the probe reads exists only as its value at the caller's call (DW_OP_entry_value)",
)
VAR_MULTIPLE_LOCATIONS = code(
    "var-multiple-locations",
    Band.GRAY,
    "a variable has several locations at the probed address (location views): which one holds depends on the view",
)
PARTIAL_COVERAGE = code(
    "partial-coverage",
    Band.GRAY,
    "the probe point misses places where the source function runs (other copies, clones, inline sites)",
)

MID_INSTRUCTION = code(
    "mid-instruction",
    Band.HAZARDOUS,
    "the address is inside an instruction: a breakpoint written there corrupts it (uprobes do not check)",
)

#: Findings on a function or instance that concern a probe at its entry.
AT_ENTRY = frozenset(
    {
        "constprop-clone",
        "constprop-trivial-body",
        "isra-abi-changed",
        "partial-inline",
        "recursion-as-loop",
        "multiple-entries",
        "name-collision",
    }
)
#: ... and at its return.
AT_RETURN = AT_ENTRY | {"tail-call-exit", "noreturn", "return-probe-refused"}
#: ... and at one of its inline sites: no call, no return, arguments maybe gone.
AT_INLINE = frozenset({"fully-inlined", "selectively-inlined", "inline-args-differ"})
#: Findings about the code an address is in, whichever function the probe was aimed at.
AT_ADDRESS = frozenset({"kprobe-blacklist", "noinstr", "entry-text", "machinery-reachable"})
#: Findings about a region of addresses, named in their evidence as ``low``..``high``.
IN_REGION = frozenset({"llsc-window", "tm-region"})


@dataclass
class Reason:
    code: str
    band: Band
    message: str
    evidence: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of(cls, c: Code, message: str, **evidence: Any) -> Reason:
        return cls(c.name, c.band, message, evidence)

    def record(self) -> dict[str, Any]:
        return {"code": self.code, "band": self.band.label, "message": self.message, "evidence": self.evidence}


class FindingsAt:
    """One binary's findings, indexed by function and by instance."""

    def __init__(self, f: Findings) -> None:
        t = f.findings
        self.code = t.column("code").to_pylist()
        self.message = t.column("message").to_pylist()
        self.evidence = t.column("evidence").to_pylist()
        self.by_fid: dict[int, list[int]] = {}
        self.by_instance: dict[int, list[int]] = {}
        self.instance = t.column("instance").to_pylist()
        for i, (fid, inst) in enumerate(zip(t.column("fid").to_pylist(), self.instance)):
            self.by_fid.setdefault(fid, []).append(i)
            if inst >= 0:
                self.by_instance.setdefault(inst, []).append(i)

    def reason(self, i: int) -> Reason:
        c = CODES[self.code[i]]
        return Reason(c.name, c.band, self.message[i], json.loads(self.evidence[i]))

    def at(self, landing: Landing, tool: str) -> list[Reason]:
        """The findings that concern a probe at ``landing``."""
        wanted = {ps.RETURN: AT_RETURN, ps.ENTRY: AT_ENTRY, ps.INLINE: AT_INLINE}.get(landing.kind, frozenset())
        if tool == "stap":
            wanted = wanted | {"systemtap-blocklist"}
        if landing.kind == ps.ENTRY and tool in THROUGH_TRACE_KPROBE:  # "Could not probe notrace function"
            wanted = wanted | {"no-ftrace-site"}
        picked = []
        for i in self.by_fid.get(landing.fid, []):
            if self.code[i] in wanted and self.instance[i] in (-1, landing.instance):
                picked.append(i)
        for i in self.by_instance.get(landing.instance, []):
            if self.code[i] in AT_ADDRESS or (self.code[i] in IN_REGION and _inside(self.evidence[i], landing.address)):
                picked.append(i)
        return [self.reason(i) for i in dict.fromkeys(picked)]


def _inside(evidence: str, addr: int) -> bool:
    ev = json.loads(evidence)
    return int(ev["low"], 16) <= addr <= int(ev["high"], 16)


def point_reasons(cx: Context, res: Resolution) -> list[Reason]:
    """What concerns the point as a whole: places it misses, lines that are not one place."""
    out = []
    if res.missed:
        where = "; ".join(f"{m.where} ({m.why})" for m in res.missed[:8])
        out.append(
            Reason.of(
                PARTIAL_COVERAGE,
                f"misses {len(res.missed)} place(s) where {cx.fn_name[res.missed[0].fid]} runs: {where}",
                missed=[{"function": cx.fn_name[m.fid], "where": m.where, "why": m.why} for m in res.missed],
            )
        )
    lines = [landing.line for landing in res.landings if landing.line is not None]
    why = fragility(lines)
    if why:
        out.append(Reason.of(LINE_FRAGILE, "; ".join(why[:4]), reasons=why))
    return out


def variable_reasons(variables: list[dict[str, Any]], wanted: tuple[str, ...]) -> list[Reason]:
    """The ``var-*`` findings for the variables a probe reads (``$params``/``$vars``: all)."""
    out = []
    everything = "$vars" in wanted or "$params" in wanted
    for v in variables:
        if not (everything and (v["param"] or "$vars" in wanted)) and v["name"] not in wanted:
            continue
        if v["state"] in ("optimized-out", "out-of-scope", "implicit-pointer"):
            out.append(Reason.of(VAR_UNAVAILABLE, f"{v['name']} is {v['state']} here", variable=v))
        elif v["state"] in ("entry-value-only", "parameter-ref"):
            out.append(Reason.of(VAR_ENTRY_VALUE_ONLY, f"{v['name']} exists only as the caller's value", variable=v))
        if v.get("multiple"):
            where = ", ".join(v["locations"])
            out.append(Reason.of(VAR_MULTIPLE_LOCATIONS, f"{v['name']} is in several places here: {where}", variable=v))
    missing = [w for w in wanted if not w.startswith("$") and w not in {v["name"] for v in variables}]
    for name in missing:
        out.append(Reason.of(VAR_UNAVAILABLE, f"no variable {name} in scope here", variable={"name": name}))
    return out


def fragility(matches: list[LineMatch]) -> list[str]:
    """Why a line probe may not fire where, or as often as, its author expects."""
    why = []
    if len(matches) > 1:
        where = sorted({m.inline_chain[0] if m.inline_chain else "" for m in matches} - {""})
        why.append(
            f"the line is {len(matches)} addresses ({', '.join(hexa(m.address) for m in matches[:6])}"
            f"{', …' if len(matches) > 6 else ''})" + (f", in inlined copies of {', '.join(where)}" if where else "")
        )
    for m in matches:
        if m.inline_chain:
            chain = " inlined into ".join(f"`{f}`" for f in m.inline_chain)
            why.append(f"{hexa(m.address)} is inside {chain}: the caller's line and the inlined function's at once")
        if m.also:
            why.append(
                f"{hexa(m.address)} is also the start of {', '.join(m.also[:4])} (told apart only by location views)"
            )
        if not m.is_stmt:
            why.append(f"{hexa(m.address)} is not a statement start (is_stmt false): the line has no clean boundary")
    return why


def mid_instruction(cx: Context, landings: list[Landing]) -> list[list[Reason]]:
    """For user-space code, where no kernel check stands between an offset and the breakpoint:
    each offset or address landing that decoding from its range's start does not reach."""
    out: list[list[Reason]] = [[] for _ in landings]
    ask = [
        i
        for i, lnd in enumerate(landings)
        if lnd.kind in (ps.STATEMENT, ps.ADDRESS) and lnd.line is None and lnd.instance >= 0
    ]
    starts = [cx.range_start(landings[i].instance, landings[i].address) for i in ask]
    if not ask:
        return out
    sites = cx.b.probe_sites(np.array(starts, np.uint64), np.array([landings[i].address for i in ask], np.uint64))
    for i, insn, size in zip(ask, sites.column("insn").to_pylist(), sites.column("size").to_pylist()):
        if insn != landings[i].address:
            at = landings[i].address
            message = f"{hexa(at)} is byte {at - insn} of the {size}-byte instruction at {hexa(insn)}"
            out[i].append(Reason.of(MID_INSTRUCTION, message, instruction=hexa(insn), size=size))
    return out


def worst(reasons: list[Reason]) -> Band:
    return max((r.band for r in reasons), default=Band.SAFE)

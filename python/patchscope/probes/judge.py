"""Verdicts for probe points: each address a point resolves to gets the findings that concern
a probe *there* — its instance's, its function's, the atomic region around it, the kernel's
refusal or an instruction cut in two — and the variables in scope there; the point gets its
own findings (lines that are not one place, variables that are not there, places missed) and
one verdict: a band, or ``unresolved`` when the tool would place no probe."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any, cast

import numpy as np

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.probes import syntax as ps
from patchscope.probes.lines import LineMatch
from patchscope.probes.resolve import Landing, Resolution, resolve
from patchscope.rules import Findings, findings, refused
from patchscope.rules.finding import CODES, Band, Code, hexa
from patchscope.rules.kprobe_target import Refusal
from patchscope.rules.points import (
    LINE_FRAGILE,
    MID_INSTRUCTION,
    PARTIAL_COVERAGE,
    VAR_ENTRY_VALUE_ONLY,
    VAR_MULTIPLE_LOCATIONS,
    VAR_UNAVAILABLE,
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
        # every finding has these (finding.to_table): no nulls
        self.code = cast("list[str]", t.column("code").to_pylist())
        self.message = cast("list[str]", t.column("message").to_pylist())
        self.evidence = cast("list[str]", t.column("evidence").to_pylist())
        self.by_fid: dict[int, list[int]] = {}
        self.by_instance: dict[int, list[int]] = {}
        self.instance = cast("list[int]", t.column("instance").to_pylist())
        for i, (fid, inst) in enumerate(zip(cast("list[int]", t.column("fid").to_pylist()), self.instance)):
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
        if landing.kind == ps.ENTRY and tool in refused.THROUGH_TRACE_KPROBE:  # "Could not probe notrace function"
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
    sites = cx.probe_sites(np.array(starts, np.uint64), np.array([landings[i].address for i in ask], np.uint64))
    insns: list[int] = sites.column("insn").to_numpy().tolist()
    for i, insn, size in zip(ask, insns, sites.column("size").to_pylist()):
        if insn != landings[i].address:
            at = landings[i].address
            message = f"{hexa(at)} is byte {at - insn} of the {size}-byte instruction at {hexa(insn)}"
            out[i].append(Reason.of(MID_INSTRUCTION, message, instruction=hexa(insn), size=size))
    return out


def worst(reasons: list[Reason]) -> Band:
    return max((r.band for r in reasons), default=Band.SAFE)


UNRESOLVED = "unresolved"
#: Exit status per overall verdict: a CI job gates on it.
EXIT = {Band.SAFE.label: 0, Band.GRAY.label: 1, Band.HAZARDOUS.label: 2, UNRESOLVED: 2}


def syntax_error(e: ps.ProbeSyntaxError) -> str:
    """Why a point that does not parse is ``unresolved``."""
    return f"syntax error at character {e.pos + 1}: {e.message}"


def overall(verdicts: list[str]) -> str:
    """The worst of several verdicts; ``unresolved`` is worse than ``hazardous``."""
    return max(verdicts, key=lambda v: EXIT[v] * 2 + (v == UNRESOLVED), default=Band.SAFE.label)


@dataclass
class LandingVerdict:
    """One address a point resolves to: what concerns a probe there, and the variables it sees."""

    landing: Landing
    reasons: list[Reason]
    variables: list[dict[str, Any]]

    @property
    def band(self) -> Band:
        return worst(self.reasons)


@dataclass
class PointVerdict:
    """One probe point judged: its resolution, each landing's verdict, its own findings."""

    point: ps.ProbePoint
    resolution: Resolution
    landings: list[LandingVerdict]
    reasons: list[Reason]
    #: a band's label, or ``unresolved``
    verdict: str


class Judge:
    """Judges probe points against one binary, whose findings are computed (or loaded) once."""

    def __init__(self, binary: Binary) -> None:
        self.cx = Context(binary)
        self.at = FindingsAt(findings(binary))

    def __call__(self, point: ps.ProbePoint) -> PointVerdict:
        cx, res = self.cx, resolve(self.cx, point)
        landings = [
            LandingVerdict(lnd, self._findings_at(lnd, point.tool) + here + variable_reasons(vs, point.args), vs)
            for lnd, vs, here in zip(res.landings, _variables(cx, res.landings), _address_reasons(cx, res))
        ]
        own = point_reasons(cx, res)
        if res.landings:
            verdict = max([lv.band for lv in landings] + [worst(own)]).label
        else:
            verdict = Band.SAFE.label if point.optional else UNRESOLVED
        return PointVerdict(point, res, landings, own, verdict)

    def _findings_at(self, lnd: Landing, tool: str) -> list[Reason]:
        return self.at.at(lnd, tool) if lnd.fid >= 0 else []


def _address_reasons(cx: Context, res: Resolution) -> list[list[Reason]]:
    """What the address itself says at each landing: the kernel's refusal for kernel code, an
    instruction cut in two for user-space code (no kernel check stands in front of a uprobe)."""
    if res.point.target.startswith("process:"):
        return mid_instruction(cx, res.landings)
    c = refused.REFUSED_ADDRESS
    return [
        [Reason(c.name, c.band, found[0].message, refused.evidence(lnd.address, found))] if found else []
        for lnd, found in zip(res.landings, _refusals(cx, res))
    ]


def _refusals(cx: Context, res: Resolution) -> list[list[Refusal]]:
    """What the kernel answers at each landing of a kernel or module point, for the point's
    tool; the blacklist's refusals are left to its own findings (kprobe-blacklist …)."""
    point = res.point
    none: list[list[Refusal]] = [[] for _ in res.landings]
    if not res.landings:
        return none
    try:
        found = refused.refusals(cx, [lnd.address for lnd in res.landings])
    except ValueError:  # not a kernel image or module: no kprobes
        return none
    by_name = point.function is not None and point.address is None
    return [
        [r for r in refused.for_tool(rs, point.tool, by_name) if r.reason not in refused.BLACKLIST_REASONS]
        for rs in found
    ]


def scopes(cx: Context, landings: list[Landing]) -> list[int]:
    """The DIE whose variables a probe at each landing sees: its inline site, else its
    instance (``NO_DIE`` when no DWARF describes the code)."""
    site_die = cx.shared(_site_dies)
    return [
        int(site_die[lnd.site])
        if lnd.site >= 0
        else int(cx.inst_die[lnd.instance])
        if lnd.instance >= 0
        else _core.NO_DIE
        for lnd in landings
    ]


def _site_dies(cx: Context) -> np.ndarray:
    return cx.sites.column("die").to_numpy()


def _variables(cx: Context, landings: list[Landing]) -> list[list[dict[str, Any]]]:
    pairs = list(zip(scopes(cx, landings), (lnd.address for lnd in landings)))
    known = [i for i, (scope, _) in enumerate(pairs) if scope != _core.NO_DIE]
    out: list[list[dict[str, Any]]] = [[] for _ in pairs]
    if known:
        found = cx.variables_at([pairs[i] for i in known])
        for i, vs in zip(known, found):
            out[i] = [asdict(v) for v in vs]
    return out

"""Verdicts for probe points: each address a point resolves to gets the findings that concern
a probe *there* — its instance's, its function's, the atomic region around it, the kernel's
refusal or an instruction cut in two — and the variables in scope there; the point gets its
own findings (lines that are not one place, variables that are not there, places missed) and
one verdict: a band, or ``unresolved`` when the tool would place no probe."""

from __future__ import annotations

import json
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np

from patchscope import _core
from patchscope.index.binary import Binary
from patchscope.index.context import Context
from patchscope.probes import perf
from patchscope.probes import syntax as ps
from patchscope.probes.lines import LineMatch
from patchscope.probes.resolve import Landing, Resolution, resolve
from patchscope.probes.writes import (
    GURU_NOTE,
    LandingWrite,
    judge_writes,
    override_reasons,
    partial,
    write_errors,
    write_reasons,
    writes_in,
)
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
from patchscope.rules.writes import WriteVerdict, variable_writes

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
#: ... and at that one inline site: findings about one inlined copy, matched by its address.
AT_COPY = frozenset({"blacklisted-copy", "blacklisted-copy-in-machinery"})
#: Findings about the code an address is in, whichever function the probe was aimed at.
AT_ADDRESS = frozenset({"kprobe-blacklist", "noinstr", "entry-text", "machinery-reachable", "machinery-recursion"})
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
        self.address = cast("list[int | None]", t.column("address").to_pylist())
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
        if landing.kind == ps.ENTRY and tool in refused.THROUGH_TRACE_KPROBE:  # "Could not probe notrace function"
            wanted = wanted | {"no-ftrace-site"}
        picked = []
        for i in self.by_fid.get(landing.fid, []):
            if self._concerns(i, landing, wanted):
                picked.append(i)
        for i in self.by_instance.get(landing.instance, []):
            if self.code[i] in AT_ADDRESS or (self.code[i] in IN_REGION and _inside(self.evidence[i], landing.address)):
                picked.append(i)
        return [self.reason(i) for i in dict.fromkeys(picked)]

    def _concerns(self, i: int, landing: Landing, wanted: frozenset[str]) -> bool:
        """Whether finding ``i`` of the landing's function concerns it: one of the ``wanted``
        codes on its instance or the whole function, or, at an inline site, that copy's own."""
        if self.code[i] in wanted and self.instance[i] in (-1, landing.instance):
            return True
        return landing.kind == ps.INLINE and self.code[i] in AT_COPY and self.address[i] == landing.address


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
        elif v.get("view_only"):  # a probe placed by address selects no later view
            why = f"{v['name']} is bound only in a later location view of this address, which no probe selects"
            out.append(Reason.of(VAR_UNAVAILABLE, why, variable=v))
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
#: A point that places no probe in code (``begin``, timers, ``-:ev``), or that its tool would
#: not place (a later alternative of stap's ``!``): nothing to judge, nothing to fear.
NO_CODE = "no-code"
#: Exit status per overall verdict: a CI job gates on it.
EXIT = {NO_CODE: 0, Band.SAFE.label: 0, Band.GRAY.label: 1, Band.HAZARDOUS.label: 2, UNRESOLVED: 2}


def syntax_error(e: ps.ProbeSyntaxError) -> str:
    """Why a point that does not parse is ``unresolved``."""
    return f"syntax error at character {e.pos + 1}: {e.message}"


def write_error(e: ps.ProbeSyntaxError) -> str:
    """Why a point whose handler writes what it cannot mean is ``unresolved``."""
    return f"in the handler: {e.message}"


def overall(verdicts: list[str]) -> str:
    """The worst of several verdicts; ``unresolved`` is worse than ``hazardous``."""
    return max(verdicts, key=lambda v: EXIT[v] * 2 + (v == UNRESOLVED) - (v == NO_CODE), default=Band.SAFE.label)


@dataclass
class LandingVerdict:
    """One address a point resolves to: what concerns a probe there, and the variables it sees."""

    landing: Landing
    reasons: list[Reason]
    variables: list[dict[str, Any]]
    #: the handler's writes, judged here
    writes: list[LandingWrite] = field(default_factory=list)

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
    #: the handler's writes that cannot be meant, each with a caret under its text (``unresolved``)
    write_errors: list[ps.ProbeSyntaxError] = field(default_factory=list)


class Judge:
    """Judges probe points against one binary, whose findings are computed (or loaded) once."""

    def __init__(self, binary: Binary, cpu: frozenset[int] | None = None) -> None:
        self.cx = Context(binary)
        self.at = FindingsAt(findings(binary))
        self._judged: dict[ps.ProbePoint, PointVerdict] = {}
        self.cpu = cpu  # arm64 cpucaps the kernel runs with (refused.refusals), None: unknown

    def __call__(self, point: ps.ProbePoint) -> PointVerdict:
        return self.many([point])[0]

    def many(self, points: list[ps.ProbePoint]) -> list[PointVerdict]:
        """Every point at once, each judged once per batch whatever the number of times (and
        places in a script) it is written: a generated probe list repeats points by the
        thousand."""
        keys = [replace(p, origin=None) for p in points]
        fresh = list(dict.fromkeys(k for k in keys if k not in self._judged))
        self._judged.update(zip(fresh, self._judge(fresh)))
        return [replace(self._judged[k], point=p) for k, p in zip(keys, points)]

    def _judge(self, points: list[ps.ProbePoint]) -> list[PointVerdict]:
        """The variables, the write verdicts and the address checks of all the points'
        landings are one core query each, however many points a probe file holds."""
        cx = self.cx
        resolutions = [resolve(cx, p) for p in points]
        flat = [lnd for r in resolutions for lnd in r.landings]
        found = _variables(cx, flat)
        _perf_listing(cx, resolutions, found)
        variables = iter(found)
        writable = iter(variable_writes(cx, [(lnd.instance, s, lnd.address) for lnd, s in zip(flat, scopes(cx, flat))]))
        here = iter(_address_reasons(cx, resolutions, self.cpu))
        return [
            self._verdict(
                res, [next(variables) for _ in res.landings], [next(writable) for _ in res.landings], next(here)
            )
            for res in resolutions
        ]

    def _verdict(
        self,
        res: Resolution,
        variables: list[list[dict[str, Any]]],
        writable: list[dict[str, WriteVerdict]],
        here: list[list[Reason]],
    ) -> PointVerdict:
        cx, point = self.cx, res.point
        writes = _writes(cx, point, res, variables, writable)
        landings = [
            LandingVerdict(
                lnd,
                self._findings_at(lnd, point.tool)
                + at
                + variable_reasons(vs, point.args)
                + [Reason.of(c, m, **ev) for c, m, ev in write_reasons(ws) + override_reasons(cx, point, lnd)],
                vs,
                ws,
            )
            for lnd, vs, at, ws in zip(res.landings, variables, here, writes)
        ]
        own = point_reasons(cx, res) + [
            Reason.of(c, m, **ev) for c, m, ev in partial(writes, [hexa(lnd.address) for lnd in res.landings])
        ]
        if res.landings:
            verdict = max([lv.band for lv in landings] + [worst(own)]).label
        elif point.mode == ps.NO_CODE:
            verdict = NO_CODE
        else:
            verdict = Band.SAFE.label if point.optional or res.events else UNRESOLVED
        places = [
            f"{hexa(lnd.address)} ({cx.fn_name[lnd.fid]})" if lnd.fid >= 0 else hexa(lnd.address)
            for lnd in res.landings
        ]
        returns = [
            cx.return_type(lnd.instance) if lnd.kind == "return" and lnd.instance >= 0 else None for lnd in res.landings
        ]
        bad = write_errors(point, places, res.landings, variables, returns, cx.arch)
        return PointVerdict(point, res, landings, own, UNRESOLVED if bad else verdict, bad)

    def _findings_at(self, lnd: Landing, tool: str) -> list[Reason]:
        return self.at.at(lnd, tool) if lnd.fid >= 0 else []


def _address_reasons(
    cx: Context, resolutions: list[Resolution], cpu: frozenset[int] | None
) -> list[list[list[Reason]]]:
    """What the address itself says at each landing of each point: the kernel's refusal for
    kernel code (gray when no refusal is certain: it depends on bytes the kernel patches at boot,
    such as the CPU's alternatives), an instruction cut in two for user-space code (no kernel check stands in front
    of a uprobe). One query for the user-space landings, one for the kernel's."""
    user = [lnd for r in resolutions if r.point.target.startswith("process:") for lnd in r.landings]
    kernel = [lnd.address for r in resolutions if not r.point.target.startswith("process:") for lnd in r.landings]
    # a probe the kernel is given by name, which ppc64 moves from the symbol (kprobe_lookup_name)
    named = [
        r.point.function is not None and r.point.address is None and r.point.tool in refused.THROUGH_TRACE_KPROBE
        for r in resolutions
        if not r.point.target.startswith("process:")
        for _ in r.landings
    ]
    cut = iter(mid_instruction(cx, user))
    found = iter(_refusals(cx, kernel, cpu, named))
    c = refused.REFUSED_ADDRESS
    out = []
    for res in resolutions:
        if res.point.target.startswith("process:"):
            out.append([next(cut) for _ in res.landings])
            continue
        by_name = res.point.function is not None and res.point.address is None
        reasons = []
        for lnd in res.landings:
            rs = [
                r
                for r in refused.for_tool(next(found), res.point.tool, by_name)
                # code no instance describes (an assembly entry) has no findings to carry the blacklist's
                if r.reason not in refused.BLACKLIST_REASONS or lnd.instance < 0
            ]
            reasons.append([Reason(c.name, _band(rs), rs[0].message, refused.evidence(lnd.address, rs))] if rs else [])
        out.append(reasons)
    return out


def _band(found: list[Refusal]) -> Band:
    return refused.REFUSED_ADDRESS.band if any(r.certain for r in found) else Band.GRAY


def _refusals(
    cx: Context, addresses: list[int], cpu: frozenset[int] | None, by_name: list[bool]
) -> list[list[Refusal]]:
    """What the kernel answers at each address (nothing for a binary with no kprobes); which
    of it concerns a point's tool is for the caller to pick, the blacklist's refusals being
    left to its own findings (kprobe-blacklist …)."""
    none: list[list[Refusal]] = [[] for _ in addresses]
    if not addresses:
        return none
    try:
        return refused.refusals(cx, addresses, cpu=cpu, by_name=by_name)
    except ValueError:  # not a kernel image or module: no kprobes
        return none


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


def _writes(
    cx: Context,
    point: ps.ProbePoint,
    res: Resolution,
    variables: list[list[dict[str, Any]]],
    verdicts: list[dict[str, WriteVerdict]],
) -> list[list[LandingWrite]]:
    """Each variable's write verdict at each landing (``write`` in its record), and the
    handler's writes judged (noted in ``res.notes`` when they need guru mode)."""
    landings, notes = res.landings, res.notes
    if point.tool == "stap" and any(w.name != "override" for w in writes_in(point.handler)):
        notes.append(GURU_NOTE)
    for vs, found in zip(variables, verdicts):
        for v in vs:
            if v["name"] in found:
                v["write"] = found[v["name"]].record()
    return judge_writes(cx, point, landings, verdicts)


def _perf_listing(cx: Context, resolutions: list[Resolution], variables: list[list[dict[str, Any]]]) -> None:
    """What perf -V says at every landing of the perf points, in one query for all of them:
    ``perf`` in each variable's record, a note where perf lists a callee's variables."""
    owners: list[Resolution] = []
    landings: list[Landing] = []
    found: list[list[dict[str, Any]]] = []
    at = 0
    for res in resolutions:
        if res.point.tool == "perf":
            owners += [res] * len(res.landings)
            landings += res.landings
            found += variables[at : at + len(res.landings)]
        at += len(res.landings)
    for res, note in zip(owners, perf.annotate(cx, landings, found) if landings else []):
        if note:
            res.notes.append(note)


def _variables(cx: Context, landings: list[Landing]) -> list[list[dict[str, Any]]]:
    pairs = list(zip(scopes(cx, landings), (lnd.address for lnd in landings)))
    known = [i for i, (scope, _) in enumerate(pairs) if scope != _core.NO_DIE]
    out: list[list[dict[str, Any]]] = [[] for _ in pairs]
    if known:
        found = cx.variables_at([pairs[i] for i in known])
        for i, vs in zip(known, found):
            out[i] = [v.record() for v in vs]
    return out

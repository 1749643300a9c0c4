"""What the probing machinery runs, and what a probe there does.

The call graph (index/callgraph.py: direct calls, tail jumps, static calls) is walked to a fixed
point, with no depth cap, and completed by the calls through function pointers that the kernel's
source names (``POINTERS``: the ftrace trampoline's patched call, ``p->pre_handler``,
``rh->handler`` …) — those edges are guesses and marked ``pointer`` in the evidence.

Two walks, split by the recursion guard (Linux 6.1):

* **before the guard**: from where a hit enters the kernel (``ENTRIES``: the int3 trap, the
  ftrace trampolines, the return trampoline, the optprobe detour) up to the guard — in a
  ``GUARDS`` function only the calls made before it are followed, and a trap entry's calls made
  only for a trap that is no kprobe's (``NOT_ON_A_HIT``) are not. Every hit runs this code, so a
  probe in it is hit again while being handled, and again: it **recurses**.
* **after the guard**: everything the guard functions and the handlers they call run. A nested
  hit there finds ``kprobe_running()`` (or ftrace's recursion bit) set, is counted in
  ``nmissed`` and skipped: the probe is **missed** whenever another probe is being handled.

A guard function's calls after the guard is released (its closing ``preempt_enable_notrace()``)
are counted as under it: the walk knows calls, not where in the function they are.

The same reach decides the blacklisted code that is inlined elsewhere: the kernel refuses a
probe only on the out-of-line symbol, so each inlined copy it accepts is a finding, hazardous
when the copy's caller runs inside the machinery. And a function inlined *into* blacklisted code
is protected at that copy only.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from patchscope import _core
from patchscope.index.callgraph import CallGraph, Via, call_graph, instance_at
from patchscope.index.context import Context
from patchscope.rules import refused
from patchscope.rules.entry import Entries
from patchscope.rules.finding import Band, Finding, code, hexa
from patchscope.rules.kernel import blacklist

MACHINERY_RECURSION = code(
    "machinery-recursion",
    Band.HAZARDOUS,
    "runs on every probe hit before the recursion guard: a probe here is hit again while it is handled, and recurses",
)
MACHINERY_REACHABLE = code(
    "machinery-reachable",
    Band.GRAY,
    "runs inside the kprobe/ftrace/livepatch handlers, after the recursion guard: this probe misses every "
    "hit that happens while another probe is being handled",
)
BLACKLISTED_COPY_IN_MACHINERY = code(
    "blacklisted-copy-in-machinery",
    Band.HAZARDOUS,
    "an inlined copy of a blacklisted function, in a caller that runs inside the probing machinery: the "
    "kernel accepts a probe there, and the probe fires inside the machinery",
)
BLACKLISTED_COPY = code(
    "blacklisted-copy",
    Band.GRAY,
    "an inlined copy of a blacklisted function: the blacklist covers only the out-of-line symbol, the kernel "
    "accepts a probe in this copy",
)
INLINED_INTO_BLACKLISTED = code(
    "inlined-into-blacklisted",
    Band.SAFE,
    "inlined into blacklisted code: the kernel refuses a probe at those copies only, not at the function's "
    "other places",
)

#: How a probe at an address is hit: an int3 (or BRK) kprobe, a kprobe on an ftrace site (only
#: a function's entry with an ftrace record), a return probe (any function a kretprobe takes).
INT3, FTRACE, RETURN = "int3", "ftrace", "return"

#: Where a hit enters the kernel (x86_64 and arm64, Linux 6.1): the kind of probe, and why.
ENTRIES = {
    "exc_int3": (INT3, "the int3 trap of every int3 kprobe (arch/x86/kernel/traps.c)"),
    "do_debug_exception": (INT3, "the BRK and single-step exceptions of every arm64 kprobe (arch/arm64/mm/fault.c)"),
    "ftrace_regs_caller": (FTRACE, "the ftrace trampoline of every ftrace-based kprobe (arch/x86/kernel/ftrace_64.S)"),
    "ftrace_caller": (FTRACE, "the ftrace trampoline without registers (fprobes)"),
    "arch_rethook_trampoline_callback": (
        RETURN,
        "the return trampoline of every kretprobe (arch/x86/kernel/rethook.c)",
    ),
    "optimized_callback": (INT3, "the detour buffer of every jump-optimised kprobe (arch/x86/kernel/kprobes/opt.c)"),
}

#: Where the recursion guard sits: the check, and the calls made before it.
GUARDS: dict[str, tuple[str, frozenset[str]]] = {
    # arch/x86/kernel/kprobes/core.c: p = get_kprobe(addr); if (p) { if (kprobe_running()) ...
    "kprobe_int3_handler": ("kprobe_running()", frozenset({"get_kprobe"})),
    # arch/arm64/kernel/probes/kprobes.c: the same order
    "kprobe_breakpoint_handler": ("kprobe_running()", frozenset({"get_kprobe"})),
    # arch/x86/kernel/kprobes/ftrace.c: ftrace_test_recursion_trylock() first
    "kprobe_ftrace_handler": ("ftrace_test_recursion_trylock()", frozenset()),
    "optimized_callback": ("kprobe_running()", frozenset()),
    # kernel/kprobes.c: if (kprobe_running()) { kprobes_inc_nmissed_count() ...
    "kretprobe_rethook_handler": ("kprobe_running()", frozenset()),
    # kernel/trace/ftrace.c __ftrace_ops_list_func: trace_test_and_set_recursion() first
    "arch_ftrace_ops_list_func": ("trace_test_and_set_recursion()", frozenset()),
    "fprobe_handler": ("ftrace_test_recursion_trylock()", frozenset()),
    "klp_ftrace_handler": ("ftrace_test_recursion_trylock()", frozenset()),
}

#: Calls the path to a guard makes only when the hit is not a kprobe's, from the 6.1 source.
NOT_ON_A_HIT = {
    # arch/x86/kernel/traps.c: user mode, or after kprobe_int3_handler() said it is not its int3
    "exc_int3": frozenset(
        {"notify_die", "do_trap", "die", "irqentry_enter_from_user_mode", "irqentry_exit_to_user_mode"}
    ),
    "do_int3": frozenset({"notify_die"}),
    # arch/arm64/mm/fault.c: arm64_notify_die() only when the hook did not handle the exception;
    # arch/arm64/kernel/debug-monitors.c: a signal only for a BRK from user mode or with no hook
    "do_debug_exception": frozenset({"arm64_notify_die"}),
    "brk_handler": frozenset({"send_user_sigtrap"}),
    # kernel/rcu/tree.c: "If we're here from NMI there's nothing to do" — irqentry_nmi_enter() was
    "__rcu_irq_enter_check_tick": frozenset({"_raw_spin_lock", "_raw_spin_unlock", "tick_nohz_dep_set_cpu"}),
    # kernel/trace/rethook.c: call_rcu() only for a rethook being freed (its handler cleared)
    "rethook_recycle": frozenset({"call_rcu"}),
}

#: Where the machinery hands over to other code, calls not followed: the preemption point of a
#: closing ``preempt_enable_notrace()`` (run when a reschedule is pending, after the handler,
#: the guard released), and printk (an error report before a BUG; in the trap's NMI context
#: kernel/printk/printk.c only stores the message and defers the console to irq_work).
EXITS = frozenset(
    {
        "__SCT__preempt_schedule_notrace",
        "__SCT__preempt_schedule",
        "preempt_schedule_notrace",
        "preempt_schedule",
        "_printk",
        "__warn_printk",
    }
)

#: The kprobe pre-handlers the image defines (kernel/kprobes.c, kernel/trace/trace_kprobe.c).
PRE_HANDLERS = ("aggr_pre_handler", "pre_handler_kretprobe", "kprobe_dispatcher")

#: Calls through function pointers, from the 6.1 source: caller → (callees, the pointer).
POINTERS: dict[str, tuple[tuple[str, ...], str]] = {
    "ftrace_regs_caller": (
        ("kprobe_ftrace_handler", "arch_ftrace_ops_list_func", "klp_ftrace_handler"),
        "ftrace_regs_call, patched to the ftrace_ops' function",
    ),
    "ftrace_caller": (
        ("arch_ftrace_ops_list_func", "fprobe_handler"),
        "ftrace_call, patched to the ftrace_ops' function",
    ),
    "arch_ftrace_ops_list_func": (("kprobe_ftrace_handler", "klp_ftrace_handler", "fprobe_handler"), "op->func"),
    "kprobe_int3_handler": (PRE_HANDLERS, "p->pre_handler"),
    "kprobe_ftrace_handler": (PRE_HANDLERS, "p->pre_handler"),
    "kprobe_breakpoint_handler": (PRE_HANDLERS, "p->pre_handler"),
    "aggr_pre_handler": (PRE_HANDLERS[1:], "kp->pre_handler"),
    "kprobe_post_process": (("aggr_post_handler",), "p->post_handler"),
    "rethook_trampoline_handler": (("kretprobe_rethook_handler", "fprobe_exit_handler"), "rh->handler"),
    "kretprobe_rethook_handler": (("kretprobe_dispatcher",), "rp->handler"),
    "do_debug_exception": (("brk_handler",), "inf->fn (debug_fault_info[], arm64)"),
    "call_break_hook": (("kprobe_breakpoint_handler", "kprobe_breakpoint_ss_handler"), "hook->fn (arm64 BRK hooks)"),
}

#: Handlers that run under a guard without being reached through ``POINTERS``.
ROOTS = {
    "kprobe_post_process": "x86 after the single-step of a probed instruction",
    "pre_handler_kretprobe": "kretprobe entry: hijacks the return address",
    "opt_pre_handler": "jump-optimised kprobes",
}

BEFORE, AFTER = "before-guard", "after-guard"


@dataclass
class Reach:
    """Instance row → (parent row, how reached, call site) of each walk, and what it covers."""

    before: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    after: dict[int, tuple[int, int, int]] = field(default_factory=dict)
    #: Before the guard: the kinds of probe whose hits run each row.
    kinds: dict[int, set[str]] = field(default_factory=dict)
    why: dict[int, str] = field(default_factory=dict)
    #: Edges followed, and how many of them were function pointers (guesses).
    edges: int = 0
    guessed: int = 0
    #: Indirect calls in reached code that no known pointer resolves.
    unresolved: int = 0

    #: Rows whose entry holds an ftrace record: a kprobe on the entry goes through ftrace.
    traced: set[int] = field(default_factory=set)
    #: Each pointer call's target → where the image's data holds its address (``obj+0xoff``):
    #: the binary's confirmation that the guess can happen; empty when only code sets it.
    stored: dict[int, list[str]] = field(default_factory=dict)

    def recurses(self, row: int) -> list[str]:
        """The kinds of probe at ``row`` whose hit runs ``row`` again before the guard: any
        int3 kprobe or kretprobe on the path of such hits, an ftrace-based kprobe only on a
        function's entry with an ftrace record."""
        kinds = self.kinds.get(row, set())
        return sorted(k for k in kinds if k != FTRACE or row in self.traced)

    def phase(self, row: int) -> str | None:
        return BEFORE if self.recurses(row) else AFTER if row in self.after else None

    @property
    def rows(self) -> set[int]:
        return self.before.keys() | self.after.keys()

    def path(self, row: int) -> list[tuple[int, int]]:
        """(row, how it was reached) from the root of its walk to ``row``."""
        walk = self.before if self.phase(row) == BEFORE or row not in self.after else self.after
        out = []
        while row >= 0:
            parent, via, _ = walk[row]
            out.append((row, via))
            row = parent
        return out[::-1]


def reach(cx: Context) -> Reach:
    """Both walks over ``cx``'s call graph (made once per context: ``cx.shared(reach)``)."""
    g = cx.shared(call_graph)
    rows = _rows_by_name(cx, {*ENTRIES, *GUARDS, *ROOTS, *NOT_ON_A_HIT, *POINTERS, *PRE_HANDLERS, *_pointees()})
    names = {r: n for n, r in rows.items()}
    out = Reach()
    out.why.update({rows[n]: why for n, (_, why) in ENTRIES.items() if n in rows})
    for kind in (INT3, FTRACE, RETURN):
        seen: dict[int, tuple[int, int, int]] = {}
        _walk(
            cx, g, rows, names, [rows[n] for n, (k, _) in ENTRIES.items() if k == kind and n in rows], seen, out, True
        )
        for row, step in seen.items():
            out.before.setdefault(row, step)
            out.kinds.setdefault(row, set()).add(kind)
    guards = [rows[n] for n in GUARDS if n in rows]
    roots = guards + [rows[n] for n in ROOTS if n in rows and rows[n] not in guards]
    out.why.update({rows[n]: f"runs under {GUARDS[n][0]}" for n in GUARDS if n in rows})
    out.why.update({rows[n]: why for n, why in ROOTS.items() if n in rows})
    _walk(cx, g, rows, names, roots, out.after, out, guarded=False)
    out.traced = _traced(cx, out.kinds)
    out.stored = _stored(cx, [rows[t] for t in _pointees() if t in rows])
    out.unresolved = int(sum(g.indirect[r] for r in out.rows if names.get(r) not in POINTERS))
    return out


def _walk(
    cx: Context,
    g: CallGraph,
    rows: dict[str, int],
    names: dict[int, str],
    sources: list[int],
    seen: dict[int, tuple[int, int, int]],
    out: Reach,
    guarded: bool,
) -> None:
    """Breadth-first to a fixed point from ``sources``; ``guarded``: stop at each guard."""
    for s in sources:
        seen.setdefault(s, (-1, Via.CALL, 0))
    frontier = list(dict.fromkeys(sources))
    while frontier:
        nxt = []
        for u in frontier:
            for v, via, site in _next(cx, g, rows, names.get(u), u, guarded):
                out.edges += 1
                out.guessed += via == Via.POINTER
                if v not in seen:
                    seen[v] = (u, via, site)
                    nxt.append(v)
        frontier = nxt


def _next(
    cx: Context, g: CallGraph, rows: dict[str, int], name: str | None, u: int, guarded: bool
) -> Iterator[tuple[int, int, int]]:
    """The calls followed out of ``u``: not those of an error path (from a ``.cold`` part, or to
    a function that does not return: panic, BUG, the stack protector's failure), not, before a
    guard, those made after it, and not those an entry makes only for a trap that is no kprobe's."""
    noreturn = _noreturn(cx)
    keep = GUARDS[name][1] if guarded and name in GUARDS else None
    skip = NOT_ON_A_HIT.get(name or "", frozenset())
    for v, via, site, cold in zip(*g.callees(u)):
        if cold or noreturn[v]:
            continue
        callee = cx.instance_symbol(v)
        if (keep is None or callee in keep) and callee not in skip and callee not in EXITS:
            yield v, via, site
    if keep is not None:
        return
    targets, _ = POINTERS.get(name or "", ((), ""))
    yield from ((rows[t], int(Via.POINTER), 0) for t in targets if t in rows)


def _traced(cx: Context, rows: Iterable[int]) -> set[int]:
    e = Entries(cx)
    lows, highs = cx.inst_main_range
    return {r for r in rows if e.record_in(int(lows[r]), int(highs[r])) is not None}


def _stored(cx: Context, targets: list[int]) -> dict[int, list[str]]:
    """Where the image's data holds each target's address (core: ``function_pointers``), as the
    data object holding the word (``kprobe_ftrace_ops+0x0``); the kernel's own tables of code
    addresses (``__mcount_loc``, the blacklist: ``kernel_pointers``) are not pointers to call."""
    fp = cx.function_pointers
    at, values = fp.column("at").to_numpy(), fp.column("value").to_numpy()
    tables = cx.table("kernel_pointers").column("at").to_numpy()
    at, values = at[~np.isin(at, tables)], values[~np.isin(at, tables)]
    lows = cx.inst.column("low_pc").to_numpy()
    return {t: [_data_object(cx, int(a)) for a in at[values == lows[t]].tolist()] for t in targets}


def _data_object(cx: Context, addr: int) -> str:
    """``object+0xoff`` for the data symbol whose extent holds ``addr``, else ``section+0xoff``."""
    objects = cx.raw("symbols").column("kind").to_numpy() == _core.symkind.OBJECT
    lo = cx.sym["address"]
    inside = np.flatnonzero(objects & (lo <= addr) & (addr < lo + cx.sym_size))
    if len(inside):
        row = int(inside[0])
        return f"{cx.string(int(cx.sym['name'][row]))}+{addr - int(lo[row]):#x}"
    section, start = cx.section_at(addr)
    return f"{section}+{addr - start:#x}"


def _noreturn(cx: Context) -> np.ndarray:
    return cx.shared(_noreturn_column)


def _noreturn_column(cx: Context) -> np.ndarray:
    return cx.inst.column("noreturn").to_numpy(zero_copy_only=False)


def _pointees() -> set[str]:
    return {t for targets, _ in POINTERS.values() for t in targets}


def _rows_by_name(cx: Context, names: set[str]) -> dict[str, int]:
    """The instance row at the address of each named symbol that is an instance's entry."""
    by_name = cx.symbol_addresses(names)
    rows = instance_at(cx, np.array(list(by_name.values()), np.uint64))
    return {n: int(r) for n, r in zip(by_name, rows.tolist()) if r >= 0}


def _pointer_how(cx: Context, r: Reach, parent: int, child: int) -> str:
    why = POINTERS.get(cx.instance_symbol(parent), ((), "a function pointer"))[1]
    held = r.stored.get(child, [])
    where = f"stored in {', '.join(held[:3])}" if held else "its address is stored in no data, set by code"
    return f"pointer: {why} ({where})"


def path_evidence(cx: Context, r: Reach, row: int) -> list[dict[str, str]]:
    """Each step of the path to ``row``: the function, and how its caller reached it."""
    steps = r.path(row)
    out = [{"function": cx.instance_symbol(steps[0][0]), "via": "root"}]
    for (parent, _), (child, via) in zip(steps, steps[1:]):
        how = _pointer_how(cx, r, parent, child) if via == Via.POINTER else Via(via).label
        out.append({"function": cx.instance_symbol(child), "via": how})
    return out


def machinery_reach(cx: Context) -> Iterator[Finding]:
    """Each instance the machinery runs that the kernel does not refuse, by its phase."""
    r = cx.shared(reach)
    if not r.before and not r.after:
        return
    lows = cx.inst.column("low_pc").to_numpy()
    listed = blacklist(cx).holding(lows) >= 0
    for row in sorted(r.rows):
        if listed[row] or row in r.why or r.phase(row) is None:
            continue  # the kernel refuses it already, it is a root, or a nested hit is handled as any
        yield _reach_finding(cx, r, row, int(lows[row]))


def _reach_finding(cx: Context, r: Reach, row: int, low: int) -> Finding:
    steps = path_evidence(cx, r, row)
    names = [s["function"] for s in steps]
    root = r.path(row)[0][0]
    before = r.phase(row) == BEFORE
    what = (
        f"before the recursion guard: a probe here ({', '.join(r.recurses(row))}) recurses"
        if before
        else "after the recursion guard: this probe misses every hit that happens while another probe is being handled"
    )
    return Finding(
        MACHINERY_RECURSION if before else MACHINERY_REACHABLE,
        int(cx.inst_fid[row]),
        f"{names[-1]} runs inside the probing machinery {what}: {' → '.join(names)} ({r.why[root]}); "
        "not on the kernel's blacklist, so a probe is accepted",
        {
            "instance": names[-1],
            "path": names,
            "steps": steps,
            "root": names[0],
            "why": r.why[root],
            "phase": r.phase(row),
            "recurses": r.recurses(row),
            "guessed": any(s["via"].startswith("pointer") for s in steps),
            "depth": len(names) - 1,
        },
        instance=row,
        address=low,
    )


def blacklisted_copies(cx: Context) -> Iterator[Finding]:
    """Each inlined copy of a blacklisted function at which the kernel accepts a probe."""
    copies = _blacklisted_sites(cx)
    if not len(copies):
        return
    pcs = cx.site_entry_pc[copies]
    found = refused.refusals(cx, pcs)
    r = cx.shared(reach)
    for site, pc, why in zip(copies.tolist(), pcs.tolist(), found):
        if refused.answer(why) is None:
            yield _copy_finding(cx, r, site, int(pc))


def _blacklisted_sites(cx: Context) -> np.ndarray:
    """Rows of the inline sites of functions whose out-of-line instance the blacklist covers."""
    return np.flatnonzero(np.isin(cx.site_fid, _listed_functions(cx)))


def _listed_functions(cx: Context) -> np.ndarray:
    """The functions an out-of-line instance of which the blacklist covers."""
    bl = blacklist(cx)
    if not bl.kernel:
        return np.zeros(0, np.int64)
    listed = bl.holding(cx.inst.column("low_pc").to_numpy()) >= 0
    return np.unique(cx.inst_fid[listed]).astype(np.int64)


def _copy_finding(cx: Context, r: Reach, site: int, pc: int) -> Finding:
    fid = int(cx.site_fid[site])
    caller = int(cx.caller_instance[site])
    name, where = cx.fn_name[fid], cx.site_caller(site)
    phase = r.phase(caller) if caller >= 0 else None
    path = [s["function"] for s in path_evidence(cx, r, caller)] if phase else []
    evidence = {"function": name, "caller": where, "address": hexa(pc), "phase": phase, "path": path}
    if phase is None:
        return Finding(
            BLACKLISTED_COPY,
            fid,
            f"{name} is blacklisted, but its copy inlined into {where} at {hexa(pc)} is not: the kernel accepts a "
            f"probe there; {where} does not run inside the machinery",
            evidence,
            instance=caller,
            address=pc,
        )
    return Finding(
        BLACKLISTED_COPY_IN_MACHINERY,
        fid,
        f"{name} is blacklisted, but its copy inlined into {where} at {hexa(pc)} is not, and {where} runs inside "
        f"the machinery ({phase}): {' → '.join(path)}",
        evidence,
        instance=caller,
        address=pc,
    )


def inlined_into_blacklisted(cx: Context) -> Iterator[Finding]:
    """Each function with copies in blacklisted code and places elsewhere: protected there only."""
    bl = blacklist(cx)
    if not bl.kernel:
        return
    pcs = cx.site_entry_pc
    inside = bl.holding(pcs) >= 0
    open_instance = bl.holding(cx.inst.column("low_pc").to_numpy()) < 0
    listed = set(_listed_functions(cx).tolist())  # their copies are blacklisted-copy findings
    for fid in np.unique(cx.site_fid[inside]).tolist():
        if fid in listed:
            continue
        sites = cx.sites_of(fid)
        protected = sites[inside[sites]]
        open_sites = sites[~inside[sites]]
        instances = [r for r in cx.instances_of.get(fid, []) if open_instance[r]]
        if not len(open_sites) and not instances:
            continue
        into = sorted({cx.site_caller(int(s)) for s in protected.tolist()})
        yield Finding(
            INLINED_INTO_BLACKLISTED,
            fid,
            f"{cx.fn_name[fid]} is inlined into blacklisted {', '.join(into[:4])}: the kernel refuses a probe "
            f"at these {len(protected)} copies only; {len(open_sites)} other copies and {len(instances)} "
            "out-of-line instances take one",
            {
                "protected": [{"caller": cx.site_caller(int(s)), "address": hexa(pcs[s])} for s in protected],
                "open_copies": len(open_sites),
                "open_instances": [cx.instance_symbol(r) for r in instances],
            },
        )


RULES = [machinery_reach, blacklisted_copies, inlined_into_blacklisted]

"""The armed-probe experiment on Debian's 6.1.0-56 kernels (amd64, arm64): which probes, what
patchscope predicts for each, and what the booted kernel did (parsed from ``logs/ARCH/``).

    python experiment.py ARCH VMLINUX       # writes sets/ARCH/*.probes (the input of arm.sh)
    sh arm.sh ARCH logs/ARCH sets/ARCH/*.probes

Each set is one boot. Its first probe, ``trig``, is the one the workload fires (busybox ``cat``
opens files: ``do_sys_openat2``); its fetch arguments make the trace_kprobe handler read user
and kernel memory (``strncpy_from_user_nofault``, ``copy_from_kernel_nofault``). The other
probes sit in the code that handler runs (predicted *missed*), in inlined copies of blacklisted
functions (predicted *accepted*, and hit when the kernel registers or disables a later probe,
see ``guest-init.sh``), in a copy the blacklist protects (predicted *refused*), and in a control
function no handler runs (predicted *fine*).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

import patchscope
from patchscope.index.context import Context
from patchscope.rules import machinery, refused
from patchscope.rules.entry import Entries
from patchscope.rules.kprobe_target import KPROBE_EVENTS

HERE = Path(__file__).parent
#: do_sys_openat2(dfd, filename, how): the user string and the kernel struct it is given.
TRIGGERS = {
    "amd64": "p:trig do_sys_openat2 name=+0(%si):ustring how=+0(%dx):u64",
    "arm64": "p:trig do_sys_openat2 name=+0(%x1):ustring how=+0(%x2):u64",
}


@dataclass(frozen=True)
class Probe:
    """One armed probe: its event, where, and what kind of place it is."""

    event: str
    symbol: str
    #: ``entry`` (on the function's entry: ftrace-based when it has an ftrace record),
    #: ``insn`` (the first instruction after the ftrace site: an int3 kprobe), ``return``, or
    #: ``copy:FUNCTION`` (the entry of that function's copy inlined into ``symbol``).
    where: str

    def offset(self, cx: Context) -> int:
        low = cx.symbol_addresses([self.symbol])[self.symbol]
        if self.where == "insn":
            return _after_ftrace_site(cx, low) - low
        if self.where.startswith("copy:"):
            return _copy_in(cx, self.where[5:], self.symbol) - low
        return 0

    def line(self, cx: Context) -> str:
        off = self.offset(cx)
        kind = "r" if self.where == "return" else "p"
        return f"{kind}:{self.event} {self.symbol}" + (f"+{off:#x}" if off else "")


#: What the trigger's handler runs (its fetch arguments), and a control no handler runs.
HANDLER_PATH = [
    Probe("m_copy", "copy_from_kernel_nofault", "entry"),
    Probe("m_copy_insn", "copy_from_kernel_nofault", "insn"),
    Probe("m_struser", "strncpy_from_user_nofault", "entry"),
    Probe("m_ret_copy", "copy_from_kernel_nofault", "return"),
    Probe("c_getname", "getname_flags", "entry"),
]

#: The sets of each architecture: one boot each.
SETS = {
    "amd64": {
        "handler-path": HANDLER_PATH,
        "blacklisted-copies": [
            Probe("bc_register", "register_kprobe", "copy:get_kprobe"),
            Probe("bc_valid", "__get_valid_kprobe", "copy:get_kprobe"),
            Probe("bc_optimized", "get_optimized_kprobe", "copy:get_kprobe"),
            Probe("bc_blocking", "blocking_notifier_call_chain", "copy:notifier_call_chain"),
            Probe("bc_raw", "raw_notifier_call_chain", "copy:notifier_call_chain"),
            Probe("bc_flush_task", "rethook_flush_task", "copy:rethook_recycle"),
            Probe("pr_protected", "kprobe_int3_handler", "copy:get_kprobe_ctlblk"),
        ],
        # calls before a guard the walk does not follow (machinery.NOT_ON_A_HIT): if they ran on
        # every hit, a probe there would recurse — one probe per boot
        "pruned-call-rcu": [Probe("u_call_rcu", "call_rcu", "return")],
        "pruned-nohz": [Probe("u_nohz", "tick_nohz_dep_set_cpu", "entry")],
    },
    "arm64": {
        "handler-path": HANDLER_PATH,
        "blacklisted-copies": [
            Probe("bc_raw", "raw_notifier_call_chain", "copy:notifier_call_chain"),
            Probe("bc_srcu", "srcu_notifier_call_chain", "copy:notifier_call_chain"),
            Probe("bc_branch", "aarch64_set_branch_offset", "copy:aarch64_insn_encode_immediate"),
            Probe("bc_fastforward", "user_fastforward_single_step", "copy:clear_user_regs_spsr_ss"),
            Probe("pr_protected", "kprobe_breakpoint_handler", "copy:get_kprobe_ctlblk"),
        ],
        "pruned-notify-die": [Probe("u_notify_die", "arm64_notify_die", "entry")],
    },
}


def _after_ftrace_site(cx: Context, low: int) -> int:
    """The first instruction after the function's ftrace call (or its second instruction)."""
    lows, highs = cx.inst_main_range
    row = int(np.flatnonzero(lows == low)[0])
    record = Entries(cx).record_in(low, int(highs[row]))
    insns = cx.instructions(low, int(highs[row]))
    after = [i["address"] for i in insns if record is not None and i["address"] > record]
    return after[0] if after else insns[1]["address"]


def _copy_in(cx: Context, function: str, caller: str) -> int:
    """The entry of the first copy of ``function`` inlined into ``caller``."""
    for fid in cx.find_functions(function):
        for site in cx.sites_of(fid).tolist():
            if cx.site_caller(site) == caller:
                return int(cx.site_entry_pc[site])
    raise LookupError(f"no copy of {function} in {caller}")


def predict(cx: Context, probe: Probe) -> str:
    """``refused``; ``recurses`` (before a guard); ``missed`` (after it: a hit while a handler
    runs the code is missed, every one when the trigger's handler runs it); ``fine``."""
    addr = cx.symbol_addresses([probe.symbol])[probe.symbol] + probe.offset(cx)
    found = refused.refusals(cx, [addr])[0]
    if refused.answer(found, KPROBE_EVENTS, by_name=True) is not None:
        return "refused"
    row = _instance_holding(cx, addr)
    phase = cx.shared(machinery.reach).phase(row) if row >= 0 else None
    return {machinery.BEFORE: "recurses", machinery.AFTER: "missed"}.get(phase or "", "fine")


#: What each prediction allows the kernel to do. The reach is static, a may-analysis: code it
#: says a handler may run is missed when a handler runs it, which this workload may never do
#: (no miss, hits elsewhere, or not run at all); code outside it must never be missed every time.
AGREES = {
    "refused": {"refused"},
    "recurses": {"recurses"},
    "missed": {"missed", "fine", "not-run"},
    "fine": {"fine", "not-run"},
}


def _instance_holding(cx: Context, addr: int) -> int:
    lows, highs = cx.inst_main_range
    hit = np.flatnonzero((lows <= addr) & (addr < highs))
    return int(hit[0]) if len(hit) else -1


@dataclass(frozen=True)
class Outcome:
    """What the kernel did with one probe in one boot."""

    defined: bool
    hits: int
    missed: int
    #: The boot reached its end (no hang: QEMU's timeout; no crash: the guest's last marker).
    completed: bool
    warnings: tuple[str, ...]

    def verdict(self, fired: int) -> str:
        """``missed`` when the probe missed at least every one of the ``fired`` hits of the
        trigger (its handler runs the probed code each time); a few misses are hits in
        interrupts that arrived while an ftrace-based handler ran with interrupts on."""
        if not self.defined:
            return "refused"
        if not self.completed:
            return "recurses"
        if not self.hits and not self.missed:
            return "not-run"
        return "missed" if fired and self.missed >= fired else "fine"


def outcomes(log: str) -> dict[str, Outcome]:
    """Each event's outcome in one serial log (the trigger's too: ``trig``)."""
    completed = "===END===" in log and log.rstrip().endswith("qemu-boot-exit 0")
    defined = {m.group(1) for m in re.finditer(r"^DEFINED [pr]:(\S+)", log, re.M)}
    refusedp = {m.group(1) for m in re.finditer(r"^REFUSED [pr]:(\S+)", log, re.M)}
    profile = log.split("===PROFILE===", 1)[-1].split("===DMESG===", 1)[0] if completed else ""
    counts = {
        m.group(1): (int(m.group(2)), int(m.group(3)))
        for m in re.finditer(r"^\s+(\S+)\s+(\d+)\s+(\d+)$", profile, re.M)
    }
    dmesg = log.split("===DMESG===", 1)[-1]
    warnings = tuple(line for line in dmesg.splitlines() if re.search(r"recurs|Unrecoverable|BUG|WARNING|Oops", line))
    return {e: Outcome(e in defined, *counts.get(e, (0, 0)), completed, warnings) for e in sorted(defined | refusedp)}


def write_sets(arch: str, vmlinux: str) -> None:
    cx = Context(patchscope.open(vmlinux))
    (HERE / "sets" / arch).mkdir(parents=True, exist_ok=True)
    for name, probes in SETS[arch].items():
        lines = [TRIGGERS[arch], *(p.line(cx) for p in probes)]
        (HERE / "sets" / arch / f"{name}.probes").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    write_sets(sys.argv[1], sys.argv[2])

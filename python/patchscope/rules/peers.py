"""Second opinions: what the probing tools themselves refuse, reported as their policy and
kept apart from the kernel's own rules.

SystemTap's lists are transcribed from ``dwflpp::build_kernel_blocklist`` and
``build_user_blocklist`` (systemtap 4.8, dwflpp.cxx).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from patchscope.index.context import Context
from patchscope.rules.finding import Band, Finding, code

SYSTEMTAP_BLOCKLIST = code(
    "systemtap-blocklist",
    Band.GRAY,
    "SystemTap refuses to probe it (its own blocklist, a tool policy, not the kernel's)",
)

_STAP_SECTIONS = re.compile(
    r"^(\.init\.|\.exit\.|\.devinit\.|\.devexit\.|\.cpuinit\.|\.cpuexit\.|\.meminit\.|\.memexit\.)"
)
STAP_FUNCTIONS = re.compile(
    "^("
    + "|".join(
        [
            r"atomic_notifier_call_chain|default_do_nmi|__die|die_nmi|do_debug|do_general_protection|do_int3",
            r"do_IRQ|do_page_fault|do_sparc64_fault|do_trap|dummy_nmi_callback|flush_icache_range",
            r"ia64_bad_break|ia64_do_page_fault|ia64_fault|io_check_error|mem_parity_error|nmi_watchdog_tick",
            r"notifier_call_chain|oops_begin|oops_end|program_check_exception|single_step_exception|sync_regs",
            r"unhandled_fault|unknown_nmi_error|xen_[gs]et_debugreg|xen_irq_.*|xen_.*_fl_direct.*|check_events",
            r"xen_adjust_exception_frame|xen_iret.*|xen_sysret64.*|test_ti_thread_flag.*",
            r"inat_get_opcode_attribute|system_call_after_swapgs|HYPERVISOR_[gs]et_debugreg",
            r"HYPERVISOR_event_channel_op|hash_64|hash_ptr|native_set_pte",
            r".*raw_.*_lock.*|.*raw_.*_unlock.*|.*raw_.*_trylock.*|.*read_lock.*|.*read_unlock.*",
            r".*read_trylock.*|.*write_lock.*|.*write_unlock.*|.*write_trylock.*|.*write_seqlock.*",
            r".*write_sequnlock.*|.*spin_lock.*|.*spin_unlock.*|.*spin_trylock.*|.*spin_is_locked.*",
            r"rwsem_.*lock.*|.*mutex_.*lock.*|atomic_.*|atomic64_.*|get_bh|put_bh",
            r".*apic.*|.*APIC.*|.*softirq.*|.*IRQ.*|.*_intr.*|__delay|.*kernel_text.*|get_current|current_.*",
            r".*exception_tables.*|.*setup_rt_frame.*|.*preempt_count.*|preempt_schedule",
            r"special_mapping_.*|.*_pte_.*",  # added unconditionally ("RHEL6 pre-beta 2.6.32-19.el6")
        ]
    )
    + ")$"
)
_STAP_X86_64 = re.compile(r"^__switch_to$")
_STAP_RETURN = re.compile(r"^(do_exit|sys_exit|sys_exit_group)$")
_STAP_FILES = re.compile(
    r"^(kernel/kprobes\.c|arch/.*/kernel/kprobes\.c|.*/include/asm/io\.h|.*/include/asm/io-defs\.h"
    r"|.*/include/asm/io_64\.h|.*/include/asm/bitops\.h|drivers/ide/ide-iops\.c|arch/.*/kernel/paravirt\.c"
    r"|.*/include/asm/paravirt\.h|fs/seq_file\.c)$"
)
STAP_USER_RETURN = re.compile(r"^(_start|__.*\.get_pc_thunk\..*)$")


def systemtap_blocklist(cx: Context) -> Iterator[Finding]:
    """Per source function, the first SystemTap rule that matches, in its own order: section,
    .kprobes.text, function name, return-only names, declaration file."""
    kernel = cx.is_kernel()
    files = cx.functions.column("decl_file").to_pylist()
    # the name regexes run once per distinct name, in Arrow's RE2, not once per function in Python
    fn_names = cast("pa.DictionaryArray[Any, Any]", cx.functions.column("name").combine_chunks())
    matched = pc.match_substring_regex(fn_names.dictionary, STAP_FUNCTIONS.pattern).to_numpy(zero_copy_only=False)
    blocked_name = matched[fn_names.indices.to_numpy()]
    start, end, names = cx.sections
    lows = cx.inst.column("low_pc").to_numpy()
    i = np.searchsorted(start, lows, "right") - 1
    first = np.full(cx.functions.num_rows, -1)
    first[cx.inst_fid[::-1]] = np.arange(len(lows))[::-1]  # each function's first instance
    for fid, name in enumerate(cx.fn_name):
        row = first[fid]
        section = names[i[row]] if row >= 0 and i[row] >= 0 and lows[row] < end[i[row]] else None
        if kernel:
            rule = kernel_rule(cx.arch, name, files[fid] or "", section, bool(blocked_name[fid]))
        else:
            rule = "return probes (no normal function-entry ABI)" if STAP_USER_RETURN.match(name) else None
        if rule:
            yield Finding(
                SYSTEMTAP_BLOCKLIST,
                fid,
                f"SystemTap refuses {name}: {rule} (dwflpp::blocklisted_p); the kernel itself may accept it",
                {"rule": rule, "section": section, "decl_file": files[fid]},
            )


def kernel_rule(arch: str, name: str, file: str, section: str | None, blocked_name: bool) -> str | None:
    if section and _STAP_SECTIONS.match(section):
        return f"in blocklisted section {section}"
    if section == ".kprobes.text":
        return "a kprobes function"
    if blocked_name or (arch == "x86_64" and _STAP_X86_64.match(name)):
        return "a blocklisted function name"
    if _STAP_RETURN.match(name):
        return "a blocklisted return probe (the function does not return)"
    if _STAP_FILES.match(file):
        return f"declared in blocklisted file {file}"
    return None


RULES = [systemtap_blocklist]

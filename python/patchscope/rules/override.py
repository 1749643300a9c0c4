"""Forcing a function's return: bpftrace's ``override(v)`` and the kernel's ``fail_function``.

Both go through the kernel's function error injection (Linux 6.1): the function must be on the
error-injection list that ``populate_error_injection_list`` (lib/error-inject.c) builds from the
``_error_injection_whitelist`` entries ``ALLOW_ERROR_INJECTION(fn, TYPE)`` leaves, each
``struct error_injection_entry { unsigned long addr; int etype; }`` — rebuilt here from the same
entries (the core's ``kernel_pointers`` rows of that table, two words per entry). The kernel
checks, each refusal one line here:

- built with it at all: ``within_error_injection_list`` exists only under
  ``CONFIG_FUNCTION_ERROR_INJECTION``; ``fail_function`` needs ``CONFIG_FAIL_FUNCTION``
  (kernel/fail_function.c, ``fei_kprobe_handler``), ``override()`` ``CONFIG_BPF_KPROBE_OVERRIDE``
  (kernel/trace/bpf_trace.c, ``bpf_override_return``). Debian's 6.1 kernels have none of them;
- the address is on the list (``within_error_injection_list``: ``fei_write`` answers ``-ENXIO``,
  ``perf_event_attach_bpf_prog`` ``-EINVAL``), and for ``override()`` the kprobe is on the
  function's entry (``trace_kprobe_on_func_entry``);
- the value: ``fail_function`` replaces one that does not fit the type (``adjust_error_retval``:
  ``-EINVAL`` for ERRNO, 0 for NULL, 1 for TRUE); ``override()`` takes it as it is, so a caller
  may get a value the function never returns.

The list names one address: a copy of the function inlined into a caller is not overridden.
"""

from __future__ import annotations

from typing import Any, cast

import pyarrow as pa
import pyarrow.compute as pc

from patchscope.index.context import Context
from patchscope.rules.finding import Band, Code, code, hexa

OVERRIDE_REFUSED = code(
    "override-refused",
    Band.HAZARDOUS,
    "the return cannot be forced there: the kernel was built without error injection, the function "
    "is not on its error-injection list, or the probe is not on the entry of its out-of-line symbol",
)
OVERRIDE_BAD_VALUE = code(
    "override-bad-value",
    Band.HAZARDOUS,
    "the forced value does not fit the function's error-injection type (ERRNO, NULL, ERRNO_NULL, TRUE)",
)
OVERRIDE_MISSES_INLINED = code(
    "override-misses-inlined",
    Band.GRAY,
    "the function is also inlined into callers: their copies are not overridden",
)

#: ``EI_ETYPE_*`` of 6.1 include/asm-generic/error-injection.h, by value.
ETYPES = ("NONE", "NULL", "ERRNO", "ERRNO_NULL", "TRUE")
#: The symbol that says the kernel has each tool's way in.
NEEDS = {"fail_function": "fei_kprobe_handler", "bpftrace": "bpf_override_return"}
#: include/linux/err.h
MAX_ERRNO = 4095


def injection_list(cx: Context) -> dict[int, str]:
    """The rebuilt error-injection list: function address → its type."""
    kp = cx.table("kernel_pointers")
    rows = kp.filter(pc.equal(kp.column("table").cast(pa.string()), pa.scalar("_error_injection_whitelist")))
    values = cast("list[int]", rows.sort_by("at").column("value").to_pylist())
    return {addr: ETYPES[t] if t < len(ETYPES) else f"type {t}" for addr, t in zip(values[0::2], values[1::2])}


def fits(etype: str, value: int) -> bool:
    """Whether ``value`` is a return of type ``etype`` (6.1 ``adjust_error_retval``)."""
    errno = -MAX_ERRNO <= value < 0
    return {"NULL": value == 0, "ERRNO": errno, "ERRNO_NULL": errno or value == 0, "TRUE": value != 0}.get(etype, True)


def override_findings(
    cx: Context, tool: str, fid: int, address: int, at_entry: bool, value: int | None
) -> list[tuple[Code, str, dict[str, Any]]]:
    """Why forcing the return of function ``fid`` with a probe at ``address`` fails, or misses."""
    have = cx.symbol_addresses(["within_error_injection_list", *NEEDS.values()])
    needs = ["within_error_injection_list", NEEDS.get(tool, "")]
    lacking = [n for n in needs if n and n not in have]
    name = cx.fn_name[fid] if fid >= 0 else hexa(address)
    if lacking:
        why = f"this kernel cannot override: it has no {', '.join(lacking)} (built without what {tool} needs)"
        return [(OVERRIDE_REFUSED, why, {"missing": lacking})]
    listed = injection_list(cx)
    if address not in listed:
        return [(OVERRIDE_REFUSED, f"{name} is not on the kernel's error-injection list", {"address": hexa(address)})]
    out: list[tuple[Code, str, dict[str, Any]]] = []
    if not at_entry:
        out.append((OVERRIDE_REFUSED, f"{hexa(address)} is not the entry of {name}", {"address": hexa(address)}))
    etype = listed[address]
    if value is not None and not fits(etype, value):
        why = f"{name} is ALLOW_ERROR_INJECTION({etype}): {value} is not such a return"
        out.append((OVERRIDE_BAD_VALUE, why, {"type": etype, "value": value}))
    sites = cx.sites_of(fid).tolist() if fid >= 0 else []
    if sites:
        callers = sorted({cx.site_caller(int(s)) for s in sites})
        why = f"{name} is also inlined into {', '.join(callers[:8])}: those copies are not overridden"
        out.append((OVERRIDE_MISSES_INLINED, why, {"inlined_into": callers, "sites": len(sites)}))
    return out

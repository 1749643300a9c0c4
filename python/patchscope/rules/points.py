"""The finding codes about probe points rather than functions: lines that are not one place,
variables that are not there, places missed, an address inside an instruction. Declared here
so that they belong to the vocabulary (``CODES``) with every other finding; the judging that
gives them is :mod:`patchscope.probes.judge`."""

from __future__ import annotations

from patchscope.rules import refused  # noqa: F401  (its codes come first in the vocabulary's order)
from patchscope.rules.finding import Band, code

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

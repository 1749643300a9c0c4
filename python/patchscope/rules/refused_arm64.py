"""register_kprobe's arm64 checks (arch/arm64/kernel/probes/, Linux 6.1): the instructions
``arm_kprobe_decode_insn`` cannot step, and ``is_probed_address_atomic``'s backward scan for an
open load-exclusive, with 6.1's masks (which also match LDAR and CAS)."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patchscope import _core
from patchscope.rules.finding import hexa
from patchscope.rules.kprobe_target import ARM64_EXCLUSIVE_MASK_FIX_SINCE, KernelImage, Probes, Refusal, refusal

A64_SPCLREG_DAIF = 0xDA11
#: ``aarch64_insn_is_steppable_hint``: the hints (insn & 0xFE0) that may be single-stepped.
A64_STEPPABLE_HINTS: tuple[int, ...] = (
    0x000,
    0x07 << 5,
    0x08 << 5,
    0x0A << 5,
    0x18 << 5,
    0x19 << 5,
    0x1A << 5,
    0x1B << 5,
)
A64_STEPPABLE_HINTS += (0x20 << 5, 0x22 << 5, 0x24 << 5, 0x26 << 5)


#: Why ``arm_kprobe_decode_insn`` rejects an instruction, by the codes :func:`a64_rejections` gives.
A64_WHY = (
    None,
    "a branch that is not simulated (pointer-authenticating)",
    "an MSR (system register write)",
    "an exception-generating instruction (svc/hvc/smc/brk/hlt)",
    "an eret",
    "an MRS other than of DAIF",
    "a hint not on the steppable list (wfe, yield, aut*…)",
    "a PRFM (literal)",
    "a load/store-exclusive (aarch64_insn_is_exclusive)",
)


def a64_rejections(words: np.ndarray) -> np.ndarray:
    """``arm_kprobe_decode_insn`` without the atomic scan, for many instruction words: the index
    in :data:`A64_WHY` of why each is INSN_REJECTED, 0 when it is stepped out of line or
    simulated. The clauses of ``aarch64_insn_is_steppable`` in order, then what
    ``arm_probe_decode_insn`` simulates (masks of arch/arm64/include/asm/insn.h, 6.1)."""
    w = np.asarray(words, np.uint32)

    def m(mask: int, value: int) -> np.ndarray:
        holds: np.ndarray = (w & np.uint32(mask)) == np.uint32(value)
        return holds

    adr = m(0x1F000000, 0x10000000)  # adr/adrp
    simulated = (
        m(0xFF000010, 0x54000000)  # b.cond
        | m(0x7E000000, 0x34000000)  # cbz/cbnz
        | m(0x7E000000, 0x36000000)  # tbz/tbnz
        | adr
        | m(0x7C000000, 0x14000000)  # b/bl
        | m(0xFFFFFC1F, 0xD61F0000)  # br
        | m(0xFFFFFC1F, 0xD63F0000)  # blr
        | m(0xFFFFFC1F, 0xD65F0000)  # ret
    )
    branch = (simulated & ~adr) | m(0xFFFFFBFF, 0xD65F0BFF) | m(0xFEFFF800, 0xD61F0800) | m(0xFEFFF800, 0xD63F0800)
    br_sys = np.isin((w >> 25) & 0xF, (0xA, 0xB))  # AARCH64_INSN_CLS_BR_SYS
    daif = ((w & 0x1FFFE0) >> 5) == A64_SPCLREG_DAIF
    steppable_hint = np.isin(w & 0xFE0, A64_STEPPABLE_HINTS)
    clauses: list[tuple[np.ndarray, int | np.ndarray]] = [  # (condition, code): the first that holds decides
        (m(0xBF000000, 0x18000000) | m(0xFF000000, 0x98000000), 0),  # LDR/LDRSW (literal): simulated
        (br_sys & branch, np.where(simulated, 0, 1)),
        (br_sys & (m(0xFFF8F01F, 0xD500401F) | m(0xFFF00000, 0xD5100000)), 2),
        (br_sys & m(0xFF000000, 0xD4000000), 3),
        (br_sys & (m(0xFFFFFFFF, 0xD69F03E0) | m(0xFFFFFBFF, 0xD69F0BFF)), 4),
        (br_sys & m(0xFFF00000, 0xD5300000), np.where(daif, 0, 5)),
        (br_sys & m(0xFFFFF01F, 0xD503201F), np.where(steppable_hint, 0, 6)),
        (br_sys | adr, 0),
        (m(0xFF000000, 0xD8000000), 7),
        (m(0x3F800000, 0x08000000), 8),
    ]
    why = np.zeros(len(w), np.int8)
    undecided = np.ones(len(w), bool)
    for cond, code_ in clauses:
        hit = undecided & cond
        why[hit] = np.broadcast_to(code_, len(w))[hit]
        undecided &= ~cond
    return why


def a64_rejected(word: int) -> str | None:
    """Why one instruction word is INSN_REJECTED, or None."""
    return A64_WHY[int(a64_rejections(np.array([word], np.uint32))[0])]


def a64_exclusive_masks(p: Probes) -> tuple[tuple[int, int], tuple[int, int]]:
    """(load_ex, store_ex) masks of ``aarch64_insn_is_load_ex``/``store_ex``: before the 2025 fix
    they ignore bit 23, so LDAR/CASA also count as load-exclusive and STLR/CAS as store-exclusive."""
    if p.since(ARM64_EXCLUSIVE_MASK_FIX_SINCE):
        return (0x3FC00000, 0x08400000), (0x3FC00000, 0x08000000)
    return (0x3F400000, 0x08400000), (0x3F400000, 0x08000000)


def is_exclusive(words: np.ndarray) -> np.ndarray:
    """``aarch64_insn_is_exclusive``: LDXR/STXR and their acquire/release/pair forms, CASP."""
    exclusive: np.ndarray = (np.asarray(words, np.uint32) & np.uint32(0x3F800000)) == np.uint32(0x08000000)
    return exclusive


def a64_unprobeable(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """arm64 ``arch_prepare_kprobe``: a 4-byte aligned address, no exception-table fixup, and an
    instruction the decoder accepts (all EINVAL)."""
    if img.arch != "aarch64":
        return
    misaligned = p.found & ((p.at & 3) != 0)
    hit = img.site_holding("extable", p.at)
    fixup = (hit >= 0) & (img.sites["extable"][0][np.maximum(hit, 0)] == p.at) if "extable" in img.sites else hit > 0
    why = a64_rejections(p.words)
    for row in np.flatnonzero(p.found & (misaligned | fixup | (why > 0))).tolist():
        if misaligned[row]:
            yield refusal(img, p, row, "misaligned", "EINVAL", "not 4-byte aligned (arch_prepare_kprobe)")
        elif fixup[row]:
            yield refusal(
                img,
                p,
                row,
                "exception-table",
                "EINVAL",
                "an instruction with an exception-table fixup (a user access): search_exception_tables",
            )
        else:
            yield refusal(
                img,
                p,
                row,
                "unprobeable-insn",
                "EINVAL",
                f"{A64_WHY[why[row]]} (arm_kprobe_decode_insn)",
                word=f"{int(p.words[row]):08x}",
            )


#: ``MAX_ATOMIC_CONTEXT_SIZE``: how far back arm64 looks for an open load-exclusive, in instructions.
A64_ATOMIC_SCAN = 32


def atomic_window(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """arm64 ``is_probed_address_atomic``: from the instruction before the address back to the
    kallsyms symbol's start, at most 32 instructions, the first load-exclusive (by the kernel's
    mask) before any store-exclusive refuses the probe. Only for instructions the decoder did
    not already reject."""
    if img.arch != "aarch64":
        return
    rows = np.flatnonzero(p.found & ((p.at & 3) == 0) & (a64_rejections(p.words) == 0))
    if not len(rows):
        return
    opener = scan_back(img, p.at[rows], p.sym_start[rows], a64_exclusive_masks(p))
    hit = np.flatnonzero(opener != _core.NO_TARGET)
    words = img.words(opener[hit])
    for j, word in zip(hit.tolist(), words.tolist()):
        row, at = int(rows[j]), int(opener[j])
        exclusive = bool(is_exclusive(np.array([word]))[0])
        what = "a load-exclusive" if exclusive else "an LDAR/LSE CAS that the 6.1 load-exclusive mask also matches"
        yield refusal(
            img,
            p,
            row,
            "atomic-window",
            "EINVAL",
            f"{(int(p.at[row]) - at) // 4} instructions after {what} at {hexa(at)} ({word:08x}) with no "
            "store-exclusive between: inside an LL/SC sequence (is_probed_address_atomic)",
            opener=hexa(at),
            opener_word=f"{word:08x}",
            exclusive=exclusive,
        )


def scan_back(
    img: KernelImage, at: np.ndarray, sym_start: np.ndarray, masks: tuple[tuple[int, int], tuple[int, int]]
) -> np.ndarray:
    """``is_probed_address_atomic`` for many addresses at once: the address of the load-exclusive
    that opens an LL/SC sequence around each, or NO_TARGET. The scan runs from ``at - 4`` down
    to ``scan_end`` inclusive: the symbol's start when it is less than 128 bytes back, else
    ``at - 128``; a store-exclusive met first ends it."""
    offset = at - sym_start
    scan_end = np.where(offset < 4 * A64_ATOMIC_SCAN, at - (offset // 4) * 4, at - 4 * A64_ATOMIC_SCAN)
    back = at[:, None] - np.uint64(4) * np.arange(1, A64_ATOMIC_SCAN + 1, dtype=np.uint64)[None, :]
    valid = (back >= scan_end[:, None]) & (back < at[:, None])
    want = np.unique(back[valid])
    words = img.words(want)
    w = np.zeros(back.shape, np.uint32)
    w[valid] = words[np.searchsorted(want, back[valid])]
    (lm, lv), (sm, sv) = masks
    store = valid & ((w & sm) == sv)
    load = valid & ((w & lm) == lv) & ~store
    first = np.argmax(store | load, axis=1)
    hit = (store | load).any(axis=1) & load[np.arange(len(at)), first]
    return np.where(hit, back[np.arange(len(at)), first], np.uint64(_core.NO_TARGET))

"""register_kprobe's 32-bit ARM checks (arch/arm/probes/, Linux 6.1, an ARM-mode kernel: no
CONFIG_THUMB2_KERNEL, as Debian's armmp): ``arch_prepare_kprobe`` refuses an address that is
not 4-byte aligned, an instruction ``arm_probes_decode_insn`` rejects (its decode tables in
decode-arm.c, the register checks of decode.c's ``decode_regs``), and one that stores to the
stack below sp by an unknown amount or by more than ``MAX_STACK_SIZE`` (kprobes/checkers-arm.c),
all EINVAL. Unlike arm64 there is no scan for an open load-exclusive: a probe between LDREX and
STREX is accepted (and makes the STREX fail each time it is hit; rules/atomics.py says so)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from patchscope.rules.kprobe_target import KernelImage, Probes, Refusal, refusal

#: arch/arm/include/asm/kprobes.h: the most stack one instruction may store below sp.
MAX_STACK_SIZE = 64

#: Actions the stack checker examines (``arm_stack_checker``).
STACK_ACTIONS = frozenset({"LDRSTRD", "STORE_EXTRA", "STORE", "LDMSTM"})


@dataclass(frozen=True)
class Entry:
    """One decode_item: ``kind`` table/reject/or/leaf; a leaf has its action and ``REGS``."""

    kind: str
    mask: int
    value: int
    sub: tuple[Entry, ...] = ()
    why: str = ""
    action: str = ""
    regs: tuple[str, str, str, str, str] = ("", "", "", "", "")


def T(mask: int, value: int, sub: tuple[Entry, ...], why: str) -> Entry:
    """DECODE_TABLE; ``why`` names what reaching its DECODE_END means."""
    return Entry("table", mask, value, sub, why)


def R(mask: int, value: int, why: str) -> Entry:
    return Entry("reject", mask, value, why=why)


def OR(mask: int, value: int) -> Entry:
    return Entry("or", mask, value)


def L(mask: int, value: int, action: str, *regs: str) -> Entry:
    """DECODE_SIMULATE/EMULATE/CUSTOM(X), with REGS(r16, r12, r8, r4, r0) when given."""
    rs = tuple(regs) if regs else ("", "", "", "", "")
    return Entry("leaf", mask, value, action=action, regs=rs)  # type: ignore[arg-type]


ARM_1111 = (
    L(0xFE300000, 0xF4100000, "PRELOAD_IMM"),
    L(0xFE300010, 0xF6100000, "PRELOAD_REG"),
    L(0xFE000000, 0xFA000000, "BRANCH_IMM"),
)
MISC = (
    L(0x0FF000F0, 0x01000000, "MRS", "", "NOPC", "", "", ""),
    L(0x0FF000F0, 0x01200010, "BRANCH_REG"),
    L(0x0FF000F0, 0x01200030, "BRANCH_REG", "", "", "", "", "NOPC"),
    L(0x0FF000F0, 0x01600010, "CLZ", "", "NOPC", "", "", "NOPC"),
    L(0x0F9000F0, 0x01000050, "SATURATING_ARITHMETIC", "NOPC", "NOPC", "", "", "NOPC"),
)
HALF_MUL = (
    L(0x0FF00090, 0x01400080, "MUL1", "NOPC", "NOPC", "NOPC", "", "NOPC"),
    OR(0x0FF000B0, 0x012000A0),
    L(0x0FF00090, 0x01600080, "MUL2", "NOPC", "", "NOPC", "", "NOPC"),
    OR(0x0FF00090, 0x01000080),
    L(0x0FF000B0, 0x01200080, "MUL2", "NOPC", "NOPC", "NOPC", "", "NOPC"),
)
MUL = (
    L(0x0FE000F0, 0x00000090, "MUL2", "NOPC", "", "NOPC", "", "NOPC"),
    OR(0x0FE000F0, 0x00200090),
    L(0x0FF000F0, 0x00600090, "MUL2", "NOPC", "NOPC", "NOPC", "", "NOPC"),
    OR(0x0FF000F0, 0x00400090),
    L(0x0F8000F0, 0x00800090, "MUL1", "NOPC", "NOPC", "NOPC", "", "NOPC"),
)
EXTRA_LOAD_STORE = (
    R(0x0F200090, 0x00200090, "an unprivileged load/store (STRHT/LDRHT/LDRSBT/LDRSHT)"),
    R(0x0E10E0D0, 0x0000E0D0, "LDRD/STRD of lr and pc"),
    L(0x0E5000D0, 0x000000D0, "LDRSTRD", "NOPCWB", "NOPCX", "", "", "NOPC"),
    L(0x0E5000D0, 0x004000D0, "LDRSTRD", "NOPCWB", "NOPCX", "", "", ""),
    L(0x0E5000F0, 0x000000B0, "STORE_EXTRA", "NOPCWB", "NOPC", "", "", "NOPC"),
    L(0x0E500090, 0x00100090, "LOAD_EXTRA", "NOPCWB", "NOPC", "", "", "NOPC"),
    L(0x0E5000F0, 0x004000B0, "STORE_EXTRA", "NOPCWB", "NOPC", "", "", ""),
    L(0x0E500090, 0x00500090, "LOAD_EXTRA", "NOPCWB", "NOPC", "", "", ""),
)
DP_REG = (
    R(0x0E10F000, 0x0010F000, "a flag-setting data-processing instruction into pc (<op>S pc, …)"),
    L(0xFFFFFFFF, 0xE1A0C00D, "MOV_IP_SP"),
    L(0x0F900010, 0x01100000, "DATA_PROCESSING_REG", "ANY", "", "", "", "ANY"),
    L(0x0FA00010, 0x01A00000, "DATA_PROCESSING_REG", "", "ANY", "", "", "ANY"),
    L(0x0E000010, 0x00000000, "DATA_PROCESSING_REG", "ANY", "ANY", "", "", "ANY"),
    L(0x0F900090, 0x01100010, "DATA_PROCESSING_REG", "NOPC", "", "NOPC", "", "NOPC"),
    L(0x0FA00090, 0x01A00010, "DATA_PROCESSING_REG", "", "NOPC", "NOPC", "", "NOPC"),
    L(0x0E000090, 0x00000010, "DATA_PROCESSING_REG", "NOPC", "NOPC", "NOPC", "", "NOPC"),
)
DP_IMM = (
    L(0x0FB00000, 0x03000000, "MOV_HALFWORD", "", "NOPC", "", "", ""),
    OR(0x0FFF00FF, 0x03200001),
    L(0x0FFF00FF, 0x03200004, "SEV"),
    L(0x0FFF00FC, 0x03200000, "WFE"),
    R(0x0FB00000, 0x03200000, "a hint other than nop/yield/wfe/wfi/sev (dbg …) or an MSR (immediate)"),
    R(0x0E10F000, 0x0210F000, "a flag-setting data-processing instruction into pc (<op>S pc, …)"),
    L(0x0F900000, 0x03100000, "DATA_PROCESSING_IMM", "ANY", "", "", "", ""),
    L(0x0FA00000, 0x03A00000, "DATA_PROCESSING_IMM", "", "ANY", "", "", ""),
    L(0x0E000000, 0x02000000, "DATA_PROCESSING_IMM", "ANY", "ANY", "", "", ""),
)
MEDIA_0110 = (
    L(0x0FF000F0, 0x068000B0, "SATURATE", "NOPC", "NOPC", "", "", "NOPC"),
    OR(0x0FA00030, 0x06A00010),
    L(0x0FB000F0, 0x06A00030, "SATURATE", "", "NOPC", "", "", "NOPC"),
    L(0x0FB00070, 0x06B00030, "REV", "", "NOPC", "", "", "NOPC"),
    R(0x0FB00010, 0x06000010, "an unallocated media encoding"),
    R(0x0F8000F0, 0x060000B0, "an unallocated media encoding"),
    R(0x0F8000F0, 0x060000D0, "an unallocated media encoding"),
    L(0x0F800010, 0x06000010, "MMI", "NOPC", "NOPC", "", "", "NOPC"),
    L(0x0FF00030, 0x06800010, "PACK", "NOPC", "NOPC", "", "", "NOPC"),
    R(0x0FB000F0, 0x06900070, "an unallocated media encoding"),
    L(0x0F8F00F0, 0x068F0070, "EXTEND", "", "NOPC", "", "", "NOPC"),
    L(0x0F8000F0, 0x06800070, "EXTEND_ADD", "NOPCX", "NOPC", "", "", "NOPC"),
)
MEDIA_0111 = (
    R(0x0FF000F0, 0x07F000F0, "a permanently undefined instruction (udf: BUG(), a kprobe's own breakpoint)"),
    L(0x0FF00090, 0x07400010, "MUL_ADD_LONG", "NOPC", "NOPC", "NOPC", "", "NOPC"),
    OR(0x0FF0F090, 0x0700F010),
    OR(0x0FF0F0D0, 0x0750F010),
    L(0x0FF0F0F0, 0x0780F010, "MUL_ADD", "NOPC", "", "NOPC", "", "NOPC"),
    OR(0x0FF00090, 0x07000010),
    OR(0x0FF000D0, 0x07500010),
    L(0x0FF000F0, 0x07800010, "MUL_ADD", "NOPC", "NOPCX", "NOPC", "", "NOPC"),
    L(0x0FF000D0, 0x075000D0, "MUL_ADD", "NOPC", "NOPC", "NOPC", "", "NOPC"),
    L(0x0FA00070, 0x07A00050, "BITFIELD", "", "NOPC", "", "", "NOPC"),
    L(0x0FE0007F, 0x07C0001F, "BITFIELD", "", "NOPC", "", "", ""),
    L(0x0FE00070, 0x07C00010, "BITFIELD", "", "NOPC", "", "", "NOPCX"),
)
LOAD_STORE = (
    R(0x0C40F000, 0x0440F000, "LDRB/STRB of pc"),
    R(0x0D200000, 0x04200000, "an unprivileged load/store (LDRT/STRT/LDRBT/STRBT)"),
    L(0x0E100000, 0x04000000, "STORE", "NOPCWB", "ANY", "", "", ""),
    L(0x0E100000, 0x04100000, "LOAD", "NOPCWB", "ANY", "", "", ""),
    L(0x0E100000, 0x06000000, "STORE", "NOPCWB", "ANY", "", "", "NOPC"),
    L(0x0E100000, 0x06100000, "LOAD", "NOPCWB", "ANY", "", "", "NOPC"),
)
BLOCK = (L(0x0E400000, 0x08000000, "LDMSTM"),)

#: ``probes_decode_arm_table``.
ARM_TABLE: tuple[Entry, ...] = (
    T(
        0xF0000000,
        0xF0000000,
        ARM_1111,
        "an unconditional instruction not simulated (cps, setend, srs, rfe, clrex/dmb/dsb/isb, NEON, coprocessor)",
    ),
    T(0x0F900080, 0x01000000, MISC, "a miscellaneous instruction not simulated (msr, mrs spsr, bxj, bkpt, smc)"),
    T(0x0F900090, 0x01000080, HALF_MUL, "an unallocated halfword multiply"),
    T(0x0F0000F0, 0x00000090, MUL, "an unallocated multiply"),
    T(0x0F0000F0, 0x01000090, (), "a synchronization primitive (ldrex/strex and their b/h/d forms, swp)"),
    T(0x0E000090, 0x00000090, EXTRA_LOAD_STORE, "an unallocated extra load/store"),
    T(0x0E000000, 0x00000000, DP_REG, "an unallocated data-processing encoding"),
    T(0x0E000000, 0x02000000, DP_IMM, "an unallocated data-processing encoding"),
    T(0x0F000010, 0x06000010, MEDIA_0110, "an unallocated media encoding"),
    T(0x0F000010, 0x07000010, MEDIA_0111, "an unallocated media encoding"),
    T(0x0C000000, 0x04000000, LOAD_STORE, "an unallocated load/store"),
    T(0x0E000000, 0x08000000, BLOCK, "an LDM/STM of the user registers or an exception return (ldm …^)"),
    L(0x0E000000, 0x0A000000, "BRANCH"),
    R(0x0C000000, 0x0C000000, "a coprocessor instruction or svc (mcr/mrc, VFP loads/stores, vmrs …)"),
)

#: Why ``arm_probes_decode_insn`` rejects: index 0 accepted, then every reason the tables give.
ARM_WHY: list[str | None] = [None]
_WHY_INDEX: dict[str, int] = {}


def _code(why: str) -> int:
    if why not in _WHY_INDEX:
        _WHY_INDEX[why] = len(ARM_WHY)
        ARM_WHY.append(why)
    return _WHY_INDEX[why]


def _register(table: tuple[Entry, ...]) -> None:
    for e in table:
        if e.why:
            _code(e.why)
        _register(e.sub)


WHY_NO_ENTRY = _code("an instruction the decode table has no entry for")
WHY_REGISTER = _code("a register the decode table does not allow there (pc, or pc with writeback)")
WHY_STACK = _code(f"a store below sp by an unknown amount or by more than {MAX_STACK_SIZE} bytes (arm_check_stack)")
_register(ARM_TABLE)
ACTIONS = ["", *sorted({e.action for t in ARM_TABLE for e in (t, *t.sub) if e.action})]


def _regs_ok(w: np.ndarray, regs: tuple[str, ...]) -> np.ndarray:
    """``decode_regs``: each REGS nibble (bits 19:16, 15:12, 11:8, 7:4, 3:0) of its type."""
    ok = np.ones(len(w), bool)
    writeback = ((w ^ np.uint32(0x01000000)) & np.uint32(0x01200000)) != 0
    for shift, t in zip((16, 12, 8, 4, 0), regs):
        r = (w >> np.uint32(shift)) & np.uint32(0xF)
        if t in ("NOPC", "NOPCX"):
            ok &= r != 15
        elif t == "NOPCWB":
            ok &= ~writeback | (r != 15)
        elif t in ("NOSPPC", "NOSPPCX"):
            ok &= (r & 0xD) != 0xD
        elif t == "NOSP":
            ok &= r != 13
        elif t == "SP":
            ok &= r == 13
        elif t == "PC":
            ok &= r == 15
    return ok


def _run(
    table: tuple[Entry, ...], end_why: str, w: np.ndarray, rows: np.ndarray, why: np.ndarray, act: np.ndarray
) -> None:
    """``probes_decode_insn`` over one table for the instructions ``rows``: sets ``why`` (0 for
    decoded) and ``act`` (the action's index) of each."""
    pending = rows
    ored = np.zeros(len(rows), bool)  # a DECODE_OR matched: the next non-OR entry applies
    for e in table:
        if not len(pending):
            return
        hit = ored | ((w[pending] & np.uint32(e.mask)) == np.uint32(e.value))
        if e.kind == "or":
            ored = hit
            continue
        got = pending[hit]
        pending, ored = pending[~hit], np.zeros(int((~hit).sum()), bool)
        if e.kind == "table":
            _run(e.sub, e.why, w, got, why, act)
        elif e.kind == "reject":
            why[got] = _code(e.why)
        else:
            bad = ~_regs_ok(w[got], e.regs)
            why[got[bad]] = WHY_REGISTER
            act[got[~bad]] = ACTIONS.index(e.action)
    why[pending] = _code(end_why) if end_why else WHY_NO_ENTRY


def stack_space(words: np.ndarray) -> np.ndarray:
    """``arm_check_stack`` of checkers-arm.c: how many bytes below sp each store writes, -1 when
    unknown (a register offset from sp), 0 when not a store to the stack."""
    w = np.asarray(words, np.uint32)

    def m(mask: int, value: int) -> np.ndarray:
        holds: np.ndarray = (w & np.uint32(mask)) == np.uint32(value)
        return holds

    unknown = (
        m(0x0E10000F, 0x0600000D) | m(0x0E1F0000, 0x060D0000) | m(0x0E5000BF, 0x000000BD) | m(0x0E5F00B0, 0x000D00B0)
    )
    stmdx = m(0x0EDF0000, 0x080D0000)
    xxx = m(0x0F9F0000, 0x050D0000)
    x0x = m(0x0FDF00B0, 0x014D00B0)
    regs = np.unpackbits((w & np.uint32(0xFFFF)).astype("<u2").view(np.uint8).reshape(-1, 2), axis=1).sum(axis=1)
    pre = (w & np.uint32(1 << 24)) != 0
    out = np.zeros(len(w), np.int64)
    out = np.where(x0x, ((w & 0xF00) >> 4).astype(np.int64) + (w & 0xF).astype(np.int64), out)
    out = np.where(xxx, (w & 0xFFF).astype(np.int64), out)
    out = np.where(stmdx, (regs.astype(np.int64) - np.where(pre, 0, 1)) * 4, out)
    result: np.ndarray = np.where(unknown, -1, out)
    return result


def arm_rejections(words: np.ndarray) -> np.ndarray:
    """``arm_probes_decode_insn`` then the stack check, for many A32 words: the index in
    :data:`ARM_WHY` of why each is refused, 0 when accepted. The tables match the word with a
    condition made ``al`` (``prepare_emulated_insn``); the stack checker reads it as it is."""
    w0 = np.asarray(words, np.uint32)
    w = np.where(w0 < np.uint32(0xE0000000), (w0 | np.uint32(0xE0000000)) & np.uint32(0xEFFFFFFF), w0)
    why = np.zeros(len(w), np.int16)
    act = np.zeros(len(w), np.int16)
    _run(ARM_TABLE, "", w, np.arange(len(w)), why, act)
    checked = np.isin(act, [ACTIONS.index(a) for a in STACK_ACTIONS]) & (why == 0)
    space = stack_space(w0[checked])
    rows = np.flatnonzero(checked)
    why[rows[(space < 0) | (space > MAX_STACK_SIZE)]] = WHY_STACK
    return why


def arm_rejected(word: int) -> str | None:
    """Why one A32 word is refused by arch_prepare_kprobe's decode, or None."""
    return ARM_WHY[int(arm_rejections(np.array([word], np.uint32))[0])]


def arm_arch_prepare(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """ARM ``arch_prepare_kprobe``: a 4-byte aligned address and an instruction the decoder
    accepts whose stack use is known and small, else EINVAL."""
    if img.arch != "arm":
        return
    misaligned = p.found & ((p.at & 3) != 0)
    why = np.zeros(len(p.at), np.int16)
    rows = np.flatnonzero(p.found & ~misaligned)
    words = img.words(p.at[rows])
    why[rows] = arm_rejections(words)
    word_of = dict(zip(rows.tolist(), words.tolist()))
    for row in np.flatnonzero(misaligned | (why > 0)).tolist():
        if misaligned[row]:
            yield refusal(img, p, row, "misaligned", "EINVAL", "not 4-byte aligned (arch_prepare_kprobe)")
        else:
            text = f"{ARM_WHY[why[row]]} (arm_probes_decode_insn)"
            yield refusal(img, p, row, "unprobeable-insn", "EINVAL", text, word=f"{word_of[row]:08x}")

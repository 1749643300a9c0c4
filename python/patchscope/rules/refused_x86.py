"""register_kprobe's x86 checks (arch/x86/kernel/kprobes/core.c, Linux 6.1): ``can_probe`` —
an instruction boundary, decoding from the kallsyms symbol — and the opcodes
``__copy_instruction`` and ``prepare_emulation`` refuse."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patchscope import _core
from patchscope.rules.finding import hexa
from patchscope.rules.kprobe_target import X86_EXCEPTION_INSN_SINCE, KernelImage, Probes, Refusal, refusal

#: Legacy prefixes the kernel's decoder skips before the opcode.
X86_PREFIXES = (0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67)
#: Xen's and KVM's "ud2; .ascii" that marks an instruction to emulate (asm/emulate_prefix.h).
EMULATE_PREFIXES = (bytes([0x0F, 0x0B, 0x78, 0x65, 0x6E]), bytes([0x0F, 0x0B, 0x6B, 0x76, 0x6D]))


def not_insn_boundary(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """x86 ``can_probe``: decoding from the kallsyms symbol's start must land exactly on the
    address, and nothing before it may fail to decode (EILSEQ)."""
    if not img.arch.startswith(("x86", "i386")):
        return
    ok = p.found & (p.status == 0)
    inside = ok & (p.insn != p.at) & (p.insn != _core.NO_TARGET)
    in_fentry, fentry = _fentry_holding(img, p)
    for row in np.flatnonzero(inside).tolist():
        if in_fentry[row]:
            yield refusal(
                img,
                p,
                row,
                "ftrace-site",
                "EILSEQ",
                f"inside the 5-byte `call __fentry__` ftrace site at {hexa(fentry[row])} (a NOP5 at run time): only "
                "its first byte is a probe point (can_probe)",
                ftrace_site=hexa(fentry[row]),
            )
            continue
        yield refusal(
            img,
            p,
            row,
            "not-insn-boundary",
            "EILSEQ",
            f"inside the {int(p.size[row])}-byte instruction at {hexa(p.insn[row])} ({p.bytes_hex(row)}): decoding "
            "from the symbol never lands here (can_probe)",
            certain=not p.uncertain[row],
            instruction=hexa(p.insn[row]),
            bytes=p.bytes_hex(row),
        )
    for row in np.flatnonzero(p.found & ((p.status & _core.site_status.DECODE_ERROR) != 0)).tolist():
        yield refusal(
            img,
            p,
            row,
            "undecodable",
            "EILSEQ",
            "bytes before it in the symbol decode to no instruction, so can_probe cannot walk to it",
            certain=not p.uncertain[row],
        )


def _fentry_holding(img: KernelImage, p: Probes) -> tuple[np.ndarray, np.ndarray]:
    """Whether an x86 ftrace record's 5-byte call holds each address past its first byte, and
    that record."""
    recs = img.records
    if img.arch != "x86_64" or not len(recs):
        return np.zeros(len(p.at), bool), p.at
    i = np.searchsorted(recs, p.at, "right") - 1
    rec = recs[np.maximum(i, 0)]
    return (i >= 0) & (p.at > rec) & (p.at < rec + np.uint64(5)), rec


def x86_unprobeable(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """What x86 cannot single-step or emulate, in the kernel's order: ``is_exception_insn``
    (6.9+, in can_probe: EILSEQ), ``__copy_instruction`` (EINVAL: an emulate prefix, an int3
    left by someone else, MOV/POP SS), ``prepare_emulation`` (EOPNOTSUPP: far call/jmp, iret,
    VMX, indirect call/jmp through memory)."""
    if not img.arch.startswith(("x86", "i386")):
        return
    on = p.found & (p.status == 0) & (p.insn == p.at)
    rows = np.flatnonzero(on)
    if not len(rows):
        return
    for row in rows.tolist():
        got = _x86_refusal(p, row, p.since(X86_EXCEPTION_INSN_SINCE))
        if got:
            errno, why = got
            yield refusal(
                img,
                p,
                row,
                "unprobeable-insn",
                errno,
                f"{why} ({p.bytes_hex(row)})",
                certain=not p.uncertain[row],
                bytes=p.bytes_hex(row),
            )


def _x86_refusal(p: Probes, row: int, v69: bool) -> tuple[str, str] | None:
    """The kernel's answer for the instruction of ``row`` (on a boundary), or None (accepted)."""
    op, op2, modrm = int(p.op[row]), int(p.op2[row]), int(p.modrm[row])
    addr32, vex = bool(p.addr32[row]), bool(p.vex[row])
    if int(p.kind[row]) == _core.kind.ERROR:
        return "EINVAL", "the instruction does not decode (__copy_instruction)"
    if vex:
        return None
    if v69 and (op in (0xCC, 0xCD, 0xCE, 0xF1) or (op == 0x0F and op2 in (0xFF, 0xB9, 0x0B))):
        return "EILSEQ", "an INT or UD instruction (is_exception_insn, 6.9+)"
    if bytes(p.raw[row][:5]) in EMULATE_PREFIXES:
        return "EINVAL", "a Xen/KVM emulate-prefixed instruction (__copy_instruction)"
    if op == 0xCC:
        return "EINVAL", "an int3: another breakpoint is there, the original cannot be recovered (__copy_instruction)"
    if op == 0x1F or (op == 0x8E and (modrm >> 3) & 7 == 2):
        return "EINVAL", "MOV/POP to SS, which masks the single-step trap (insn_masking_exception)"
    if op in (0x9A, 0xEA):
        return "EOPNOTSUPP", "a far call/jmp (prepare_emulation)"
    if op == 0xCF:
        return "EOPNOTSUPP", "an iret (prepare_emulation)"
    if op == 0x0F and op2 == 0x01 and (modrm >> 3) & 7 == 0 and modrm >> 6 == 3:
        return "EOPNOTSUPP", "a VMX instruction (prepare_emulation)"
    if op == 0xFF and (modrm >> 3) & 7 in (3, 5):
        return "EOPNOTSUPP", "a far indirect call/jmp (prepare_emulation)"
    if op == 0xFF and (modrm >> 3) & 7 in (2, 4) and (addr32 or modrm >> 6 != 3):
        return "EOPNOTSUPP", "an indirect call/jmp through memory, which kprobes cannot emulate (prepare_emulation)"
    return None

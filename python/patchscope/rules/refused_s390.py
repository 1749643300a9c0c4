"""register_kprobe's s390 checks (arch/s390/kernel/kprobes.c and probes.c, Linux 6.1).

``arch_prepare_kprobe`` refuses (all EINVAL) what ``can_probe`` refuses — an odd address, and
one that walking the instruction lengths (the top two bits of each first byte) from the kallsyms
symbol's start does not land on — then what ``probe_is_prohibited_opcode`` refuses: bytes the
kernel's own disassembler does not know (``is_known_insn``, arch/s390/kernel/dis.c, the table
of rules/s390_opcodes.py), then BASSM, BSM, DIAG, EX, STNSM, STOSM, EXRL, PR, BSA, BAKR, BSG,
PC, PT, EPSW, TBEGIN, TBEGINC and TEND. That is all: no window around the address is looked at
(neither the instructions inside a transaction, nor TABORT, nor a compare-and-swap loop: CS/CSG
are stepped out of line like any other instruction), and s390 has KPROBES_ON_FTRACE, so the
ftrace NOP (``brcl 0,0``, patched to ``brcl 0,<trampoline>`` at boot) is accepted as an
ftrace-based kprobe, and the halfwords inside it are no instruction boundary.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from patchscope import _core
from patchscope.rules.finding import hexa
from patchscope.rules.kprobe_target import KernelImage, Probes, Refusal, refusal
from patchscope.rules.s390_opcodes import ONE_BYTE, OPCODE_OFFSET

#: ``probe_is_prohibited_opcode``: by the first byte, by the first halfword (EXRL: 0xC6, low nibble 0).
S390_PROHIBITED_BYTE = {0x0C: "bassm", 0x0B: "bsm", 0x83: "diag", 0x44: "ex", 0xAC: "stnsm", 0xAD: "stosm"}
S390_PROHIBITED_HALF = {
    0x0101: "pr",
    0xB25A: "bsa",
    0xB240: "bakr",
    0xB258: "bsg",
    0xB218: "pc",
    0xB228: "pt",
    0xB98D: "epsw",
    0xE560: "tbegin",
    0xE561: "tbeginc",
    0xB2F8: "tend",
}


def s390_known(raw: np.ndarray) -> np.ndarray:
    """``is_known_insn`` for rows of bytes (n, ≥6): ``find_insn`` finds the first byte in the
    opcode-offset table and ``code[byte] & mask`` among its entries, else the byte among the
    one-byte opcodes."""
    first = raw[:, 0]
    known = np.isin(first, np.frombuffer(ONE_BYTE, np.uint8))
    for opcode, (byte, mask, frags) in OPCODE_OFFSET.items():
        rows = first == opcode
        known[rows] = np.isin(raw[rows, byte] & mask, np.frombuffer(frags, np.uint8))
    return known


def s390_prohibited(raw: np.ndarray) -> list[str | None]:
    """The mnemonic ``probe_is_prohibited_opcode`` refuses each row for after ``is_known_insn``,
    or None."""
    out: list[str | None] = []
    for b0, b1 in raw[:, :2].tolist():
        half = b0 << 8 | b1
        name = S390_PROHIBITED_BYTE.get(b0) or S390_PROHIBITED_HALF.get(half)
        out.append(name or ("exrl" if b0 == 0xC6 and b1 & 0x0F == 0 else None))
    return out


def s390_arch_prepare(img: KernelImage, p: Probes) -> Iterator[tuple[int, Refusal]]:
    """s390 ``arch_prepare_kprobe`` (EINVAL): ``can_probe`` (an even address on an instruction
    boundary, walking from the kallsyms symbol), then ``probe_is_prohibited_opcode`` on the
    instruction there."""
    if img.arch != "s390x":
        return
    odd = p.found & ((p.at & 1) != 0)
    inside = p.found & ~odd & ((p.insn != p.at) | (p.status != 0))
    stop = np.full(len(p.at), _core.NO_TARGET, np.uint64)
    walked = np.flatnonzero(p.found & ~odd & ~inside & (p.at > p.sym_start))
    stop[walked] = zero_opcode_before(img, p.sym_start[walked], p.at[walked])
    stopped = stop != _core.NO_TARGET
    rows = np.flatnonzero(p.found & ~odd & ~inside & ~stopped)
    known = s390_known(p.raw[rows])
    prohibited = s390_prohibited(p.raw[rows])
    refused = dict(zip(rows.tolist(), zip(known.tolist(), prohibited)))
    for row in np.flatnonzero(odd | inside | stopped | np.isin(np.arange(len(p.at)), rows)).tolist():
        if odd[row]:
            yield refusal(img, p, row, "misaligned", "EINVAL", "an odd address (can_probe)")
        elif stopped[row]:
            yield refusal(
                img,
                p,
                row,
                "undecodable",
                "EINVAL",
                f"walking from the symbol, can_probe meets a halfword with opcode 0x00 at {hexa(stop[row])} "
                "(QEMU's breakpoint, or data): it stops there, not knowing the instruction's length",
                stop=hexa(stop[row]),
            )
        elif inside[row]:
            held = f"inside the {int(p.size[row])}-byte instruction at {hexa(p.insn[row])}"
            yield refusal(
                img,
                p,
                row,
                "not-insn-boundary",
                "EINVAL",
                f"{held}: walking the instruction lengths from the symbol does not land on it (can_probe)",
                insn=hexa(p.insn[row]),
            )
        else:
            is_known, mnemonic = refused[row]
            if is_known and not mnemonic:
                continue
            code = p.bytes_hex(row).replace(" ", "")
            if not is_known:
                why = f"bytes {code} are no instruction the kernel's disassembler knows (is_known_insn)"
            else:
                why = f"a {mnemonic} ({code}), which probe_is_prohibited_opcode refuses"
            yield refusal(img, p, row, "unprobeable-insn", "EINVAL", why, insn=code, mnemonic=mnemonic)


def zero_opcode_before(img: KernelImage, starts: np.ndarray, ats: np.ndarray) -> np.ndarray:
    """For each walk ``[start, at)``, the first instruction whose first byte is 0x00, or
    NO_TARGET: ``can_probe`` gives up there (6.1.176 as Debian builds it: a 0x00xx halfword
    that is no kprobe's breakpoint, which QEMU's own breakpoints would also look like). The core
    classifies such halfwords as traps, so only those are read."""
    out = np.full(len(starts), _core.NO_TARGET, np.uint64)
    if not len(starts):
        return out
    insns, _ = img.cx.instructions_of(starts, ats)
    trap = insns.column("kind").to_numpy() == _core.kind.TRAP
    addrs = insns.column("address").to_numpy()[trap]
    walk = insns.column("range").to_numpy()[trap]
    if not len(addrs):
        return out
    first = img.cx.probe_sites(addrs, addrs).column("bytes0").to_numpy() & np.uint64(0xFF)
    zero = first == 0
    # the first per walk: instructions come in address order within a range
    walks, at = np.unique(walk[zero], return_index=True)
    out[walks] = addrs[zero][at]
    return out

"""register_kprobe's s390 checks (arch/s390/kernel/kprobes.c and probes.c, Linux 6.1).

``arch_prepare_kprobe`` refuses an odd address, then whatever ``probe_is_prohibited_opcode``
refuses (all EINVAL): bytes the kernel's own disassembler does not know (``is_known_insn``,
arch/s390/kernel/dis.c, the table of rules/s390_opcodes.py), then BASSM, BSM, DIAG, EX, STNSM,
STOSM, EXRL, PR, BSA, BAKR, BSG, PC, PT, EPSW, TBEGIN, TBEGINC and TEND. That is all: the
kernel reads the halfwords at the address whatever instruction holds it (no boundary check, so
the middle of an instruction is probed if its bytes decode as an allowed one), looks at no
window around it (neither the instructions of a transaction, nor TABORT, nor a compare-and-swap
loop: CS/CSG are stepped out of line like any other instruction), and has KPROBES_ON_FTRACE, so
the ftrace NOP (``brcl 0,0``, patched to ``brcl 0,<trampoline>`` at boot) is accepted as an
ftrace-based kprobe.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

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
#: The ftrace NOP's size (MCOUNT_INSN_SIZE, a 6-byte ``brcl``).
S390_FTRACE_INSN_SIZE = 6


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
    """s390 ``arch_prepare_kprobe`` (EINVAL): an odd address; else the bytes at the address as an
    instruction, known to the kernel's disassembler and not prohibited. Inside the ftrace NOP
    (past its first halfword) the kernel reads the displacement it patched in at boot, not the
    file's zeros: such an answer is uncertain."""
    if img.arch != "s390x":
        return
    rows = np.flatnonzero(p.found)
    odd = (p.at[rows] & 1) != 0
    for row in rows[odd].tolist():
        yield refusal(img, p, row, "misaligned", "EINVAL", "an odd address (arch_prepare_kprobe)")
    rows = rows[~odd]
    if not len(rows):
        return
    at = p.at[rows]
    sites = img.cx.probe_sites(at, at)  # the kernel decodes from the address itself
    raw = np.stack([sites.column("bytes0").to_numpy(), sites.column("bytes1").to_numpy()], axis=1)
    raw = raw.astype("<u8").view(np.uint8).reshape(-1, 16)
    known = s390_known(raw)
    prohibited = s390_prohibited(raw)
    in_nop = _inside_ftrace_nop(img, at)
    for i, row in enumerate(rows.tolist()):
        if known[i] and not prohibited[i]:
            continue
        size = (2, 4, 4, 6)[raw[i, 0] >> 6]
        code = raw[i, :size].tobytes().hex()
        boot = "the ftrace NOP's displacement, which ftrace_init_nop rewrites at boot: " if in_nop[i] else ""
        if not known[i]:
            why = f"{boot}bytes {code} are no instruction the kernel's disassembler knows (is_known_insn)"
        else:
            why = f"{boot}a {prohibited[i]} ({code}), which probe_is_prohibited_opcode refuses"
        yield refusal(
            img, p, row, "unprobeable-insn", "EINVAL", why, certain=not in_nop[i], insn=code, mnemonic=prohibited[i]
        )


def _inside_ftrace_nop(img: KernelImage, at: np.ndarray) -> np.ndarray:
    """Whether each address lies in an ftrace record's ``brcl`` past its opcode halfword."""
    recs = img.records
    if not len(recs):
        return np.zeros(len(at), bool)
    i = np.searchsorted(recs, at, "right") - 1
    rec = recs[np.maximum(i, 0)]
    return (i >= 0) & (at > rec) & (at < rec + np.uint64(S390_FTRACE_INSN_SIZE))

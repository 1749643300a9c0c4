"""Calling conventions: which DWARF register carries the k-th integer argument, and the
registers' names, per architecture. Only integer-class arguments are modelled: a parameter
found in a floating-point register is reported as such, not judged."""

from __future__ import annotations

#: DWARF register numbers of the integer argument registers, in order.
INT_ARGS: dict[str, list[int]] = {
    "x86_64": [5, 4, 1, 2, 8, 9],  # rdi rsi rdx rcx r8 r9 (System V AMD64)
    "aarch64": list(range(0, 8)),  # x0-x7 (AAPCS64)
    "ppc64le": list(range(3, 11)),  # r3-r10 (ELFv2)
    "ppc64": list(range(3, 11)),  # r3-r10 (ELFv1)
    "riscv64": list(range(10, 18)),  # a0-a7 = x10-x17 (LP64)
    "s390x": list(range(2, 7)),  # r2-r6
}

_X86 = ["rax", "rdx", "rcx", "rbx", "rsi", "rdi", "rbp", "rsp"] + [f"r{i}" for i in range(8, 16)] + ["rip"]
_X86 += [f"xmm{i}" for i in range(16)]
_RISCV = ["zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1"] + [f"a{i}" for i in range(8)]
_RISCV += [f"s{i}" for i in range(2, 12)] + ["t3", "t4", "t5", "t6"] + [f"f{i}" for i in range(32)]


def reg_name(arch: str, reg: int) -> str:
    """The assembler name of DWARF register ``reg``."""
    if arch == "x86_64" and reg < len(_X86):
        return _X86[reg]
    if arch == "aarch64":
        return f"x{reg}" if reg < 31 else "sp" if reg == 31 else f"v{reg - 64}" if 64 <= reg < 96 else f"r{reg}"
    if arch in ("ppc64le", "ppc64"):
        return f"r{reg}" if reg < 32 else f"f{reg - 32}" if reg < 64 else f"reg{reg}"
    if arch == "riscv64" and reg < len(_RISCV):
        return _RISCV[reg]
    if arch == "s390x":
        return f"r{reg}" if reg < 16 else f"f{reg - 16}"
    return f"reg{reg}"


def arg_slot(arch: str, reg: int) -> int | None:
    """The integer argument slot that DWARF register ``reg`` is, or None."""
    regs = INT_ARGS.get(arch)
    return regs.index(reg) if regs and reg in regs else None

//! Register liveness over a function instance's control-flow graph: whether a value put into
//! a register at an address is read before it is overwritten or the function leaves.
//!
//! This is the fact a write (`$var = v` in a SystemTap handler, `set var` in gdb) needs: a
//! write into a register nobody reads again changes nothing. The graph is the instance's
//! instructions over all its ranges (a `.cold` part included): direct jumps between them are
//! edges, a jump out of them is a tail call. What leaves the function reads what the ABI says
//! the next code reads (System V AMD64, "Function Calling Sequence", §3.2; AAPCS64, "The
//! base procedure call standard", §6; the RISC-V ELF psABI's register convention): a call
//! reads the argument registers and clobbers the caller-saved ones; a return reads the
//! return-value registers and hands the callee-saved ones back to the caller; a tail jump
//! does both. A return reads only the result registers of the function's DWARF return type
//! (`returns`: none for `void`, the first integer or floating-point one for a scalar, all of
//! them when not known). A direct call to a function of the binary reads only the argument registers the
//! callee may read and clobbers only what the callee writes itself, followed two calls deep
//! (GCC's `-fipa-ra` lets the caller rely on that); where a function leaves, the caller-saved
//! registers it never writes are marked [`live_status::CALLERS`]: a caller may keep its own
//! value there. Where the code cannot be followed (an indirect jump, bytes that do not decode, a jump into the
//! middle of an instruction) every register counts as read: the answer errs towards "the
//! write takes", never towards "it does nothing".
//!
//! Registers are bits of a `u64`. x86_64: bit `n` for DWARF register `n` (0–16 the general
//! registers in DWARF order, 17–32 `xmm0`–`xmm15`), from iced's operand info. aarch64: bits
//! 0–30 `x0`–`x30`, 31 `sp`, 32–63 `v0`–`v31` (DWARF 0–31 and 64–95), from the operand
//! fields of the A64 encoding groups (`aarch64::registers`). riscv64: bit `n` for DWARF
//! register `n` (x1–x31, f0–f31 in 32–63), from the RV64GC encodings (`riscv::registers`),
//! with the psABI's register convention at calls and returns. ppc64 (ELFv2): bit `n` for DWARF
//! register `n` (r0–r31, f0–f31 in 32–63), from the word's forms (`ppc_registers`). Other
//! architectures answer
//! [`live_status::UNSUPPORTED`].

use std::sync::Mutex;

use iced_x86::{InstructionInfoFactory, OpAccess, Register};
use object::{Object, ObjectKind, ObjectSymbol, SymbolKind};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::{aarch64, flag, kind, ppc_registers, riscv, x86, Decoder, Image, Insn, Isa, Opened, NO_TARGET};
use crate::dwarf::result;
use crate::elf;
use crate::error::{Error, Result};
use crate::table::{Chunk, Scan, Strings, Table};

/// Bits of `liveness.status`.
pub mod live_status {
    consts! {
        /// No instruction of the function starts at the address.
        pub const NOT_INSN: u8 = 1;
        /// The architecture is not analysed: `live` is 1 (assumed read).
        pub const UNSUPPORTED: u8 = 2;
        /// Some path from the address reaches code that cannot be followed (an indirect jump,
        /// undecodable bytes), where every register was taken as read.
        pub const UNFOLLOWED: u8 = 4;
        /// Live only because the function leaves with it: the register is caller-saved and the
        /// function never writes it, so a caller in the same unit compiled with GCC's
        /// `-fipa-ra` (on at -O2, off with -pg) may keep its own value there across the call.
        /// `reader` is where the function leaves.
        pub const CALLERS: u8 = 8;
    }
}

const NONE: u32 = u32::MAX;

/// One instruction as the dataflow sees it.
#[derive(Clone, Copy, Debug)]
struct Step {
    address: u64,
    uses: u64,
    /// Registers the instruction overwrites whole (a partial write keeps the rest: not here).
    defs: u64,
    /// The next instruction is a successor.
    falls: bool,
    /// A direct jump's target (`NO_TARGET`: none), linked by [`link`].
    target: u64,
    succ: [u32; 2],
    /// Code that cannot be followed (see [`live_status::UNFOLLOWED`]).
    unfollowed: bool,
    /// How the instruction leaves the function, if it does ([`exit`]).
    exit: u8,
    /// A direct call's target (`NO_TARGET`: none).
    callee: u64,
    /// Where the function leaves: the caller-saved registers it never writes, which a caller
    /// compiled with GCC's `-fipa-ra` may keep its own values in across the call (see
    /// [`live_status::CALLERS`]).
    callers_read: u64,
}

/// Values of [`Step::exit`].
mod exit {
    pub const NONE: u8 = 0;
    pub const CALL: u8 = 1;
    pub const RETURN: u8 = 2;
    /// A jump out of the instance's ranges.
    pub const TAIL: u8 = 3;
}

/// x86_64 DWARF register numbers (System V AMD64 ABI, Figure 3.36).
mod reg {
    pub const RAX: u32 = 0;
    pub const RDX: u32 = 1;
    pub const RCX: u32 = 2;
    pub const RBX: u32 = 3;
    pub const RSI: u32 = 4;
    pub const RDI: u32 = 5;
    pub const RBP: u32 = 6;
    pub const RSP: u32 = 7;
    pub const R8: u32 = 8;
    pub const R11: u32 = 11;
    pub const R12: u32 = 12;
    pub const R15: u32 = 15;
    pub const XMM0: u32 = 17;
    pub const XMM15: u32 = 32;
}

const fn bit(r: u32) -> u64 {
    1 << r
}

/// Registers `from..=to`.
const fn span(from: u32, to: u32) -> u64 {
    (u64::MAX >> (63 - to)) & !((1u64 << from) - 1)
}

/// What the ABI says about the registers at a call, a return and a tail jump.
struct Abi {
    /// Every register tracked.
    all: u64,
    /// What a call reads.
    call_reads: u64,
    /// What a call clobbers: the caller-saved registers.
    call_clobbers: u64,
    /// What the caller reads after a return: the return value and its callee-saved registers.
    return_reads: u64,
    /// The result registers among those, and the first integer and floating-point one.
    results: u64,
    int_result: u64,
    float_result: u64,
    /// The bit of a DWARF register, 0 if not tracked.
    bit: fn(u64) -> u64,
}

/// System V AMD64.
const X86_64: Abi = Abi {
    all: ALL,
    call_reads: CALL_READS,
    call_clobbers: CALL_CLOBBERS,
    return_reads: RETURN_READS,
    results: bit(reg::RAX) | bit(reg::RDX) | span(reg::XMM0, reg::XMM0 + 1),
    int_result: bit(reg::RAX),
    float_result: bit(reg::XMM0),
    bit: x86_bit,
};

fn x86_bit(r: u64) -> u64 {
    if r < 64 {
        (1u64 << r) & ALL
    } else {
        0
    }
}

/// Every register tracked: the general registers and xmm0–15.
const ALL: u64 = span(reg::RAX, reg::R15) | span(reg::XMM0, reg::XMM15);
/// What a call reads: the integer and vector argument registers, %al (the vector count of a
/// variadic call) and the stack pointer.
const CALL_READS: u64 = bit(reg::RDI)
    | bit(reg::RSI)
    | bit(reg::RDX)
    | bit(reg::RCX)
    | span(reg::R8, reg::R8 + 1)
    | bit(reg::RAX)
    | bit(reg::RSP)
    | span(reg::XMM0, reg::XMM0 + 7);
/// What a call clobbers: the caller-saved registers.
const CALL_CLOBBERS: u64 = bit(reg::RAX)
    | bit(reg::RCX)
    | bit(reg::RDX)
    | bit(reg::RSI)
    | bit(reg::RDI)
    | span(reg::R8, reg::R11)
    | span(reg::XMM0, reg::XMM15);
/// What the caller reads after a return: the return value and its callee-saved registers.
const RETURN_READS: u64 = bit(reg::RAX)
    | bit(reg::RDX)
    | span(reg::XMM0, reg::XMM0 + 1)
    | bit(reg::RSP)
    | bit(reg::RBX)
    | bit(reg::RBP)
    | span(reg::R12, reg::R15);

/// AAPCS64 (bits as [`aarch64::registers`] sets them).
mod a64 {
    use super::{aarch64::SP, span};

    /// v`n`'s bit.
    const fn v(n: u32) -> u32 {
        32 + n
    }
    /// Arguments in x0–x7, the indirect result address in x8, v0–v7; the stack.
    pub const CALL_READS: u64 = span(0, 8) | SP | span(v(0), v(7));
    /// The corruptible registers x0–x18 (x16/x17 for veneers, x18 not reserved in user space;
    /// the kernel keeps it for its shadow call stack, where no variable lives) and the link
    /// register; v0–v7 and v16–v31 (v8–v15 keep their low 64 bits, all a d-register variable has).
    pub const CALL_CLOBBERS: u64 = span(0, 18) | 1 << 30 | span(v(0), v(7)) | span(v(16), v(31));
    /// The result in x0–x1 (a 16-byte value) or v0–v3 (a homogeneous aggregate); x19–x29,
    /// sp and v8–v15 handed back; x30, where the caller resumes.
    pub const RETURN_READS: u64 = span(0, 1) | span(19, 30) | SP | span(v(0), v(3)) | span(v(8), v(15));
    pub const RESULTS: u64 = span(0, 1) | span(v(0), v(3));
    pub const FLOAT_RESULT: u64 = 1 << v(0);
}

const AARCH64: Abi = Abi {
    all: aarch64::EVERY,
    call_reads: a64::CALL_READS,
    call_clobbers: a64::CALL_CLOBBERS,
    return_reads: a64::RETURN_READS,
    results: a64::RESULTS,
    int_result: 1,
    float_result: a64::FLOAT_RESULT,
    bit: aarch64_bit,
};

/// DWARF x0–x30, sp (0–31) and v0–v31 (64–95).
fn aarch64_bit(r: u64) -> u64 {
    match r {
        0..=31 => 1 << r,
        64..=95 => 1 << (r - 32),
        _ => 0,
    }
}

/// RISC-V ELF psABI, "Integer/Floating-point Register Convention" (bits as
/// [`riscv::registers`] sets them: DWARF 0–63).
mod rv {
    use super::span;

    /// f`n`'s bit.
    const fn f(n: u32) -> u32 {
        32 + n
    }
    /// sp, gp and tp: the stack, and the two registers nothing allocates.
    const FIXED: u64 = span(2, 4);
    /// Arguments in a0–a7 and fa0–fa7; the stack.
    pub const CALL_READS: u64 = span(10, 17) | span(f(10), f(17)) | FIXED;
    /// The caller-saved registers: ra, t0–t2, a0–a7, t3–t6; ft0–ft7, fa0–fa7, ft8–ft11.
    pub const CALL_CLOBBERS: u64 = span(1, 1)
        | span(5, 7)
        | span(10, 17)
        | span(28, 31)
        | span(f(0), f(7))
        | span(f(10), f(17))
        | span(f(28), f(31));
    /// The result in a0–a1 (two words) or fa0–fa1; s0–s11, fs0–fs11, sp, gp, tp handed back;
    /// ra, where the caller resumes.
    pub const RETURN_READS: u64 = span(10, 11)
        | span(f(10), f(11))
        | span(8, 9)
        | span(18, 27)
        | span(f(8), f(9))
        | span(f(18), f(27))
        | FIXED
        | span(1, 1);
    pub const RESULTS: u64 = span(10, 11) | span(f(10), f(11));
    pub const INT_RESULT: u64 = 1 << 10;
    pub const FLOAT_RESULT: u64 = 1 << f(10);
}

const RISCV: Abi = Abi {
    all: riscv::EVERY,
    call_reads: rv::CALL_READS,
    call_clobbers: rv::CALL_CLOBBERS,
    return_reads: rv::RETURN_READS,
    results: rv::RESULTS,
    int_result: rv::INT_RESULT,
    float_result: rv::FLOAT_RESULT,
    bit: riscv_bit,
};

/// DWARF x1–x31 (1–31) and f0–f31 (32–63); x0 is no variable's home.
fn riscv_bit(r: u64) -> u64 {
    if (1..64).contains(&r) {
        1 << r
    } else {
        0
    }
}

/// ELFv2 (64-bit Power), "Register Roles" (bits as [`ppc_registers::registers`] sets them:
/// DWARF 0–63). LR, CTR and the CR fields hold no variable: not tracked.
mod elfv2 {
    use super::span;

    /// f`n`'s bit.
    const fn f(n: u32) -> u32 {
        32 + n
    }
    /// r1 (the stack), r2 (the TOC) and r13 (the thread pointer).
    const FIXED: u64 = span(1, 2) | span(13, 13);
    /// Arguments in r3–r10 and f1–f13; the stack and the TOC.
    pub const CALL_READS: u64 = span(3, 10) | span(f(1), f(13)) | FIXED;
    /// The volatile registers: r0, r3–r12, f0–f13.
    pub const CALL_CLOBBERS: u64 = span(0, 0) | span(3, 12) | span(f(0), f(13));
    /// The result in r3–r4 (a 16-byte value) or f1–f8 (a homogeneous aggregate); r14–r31,
    /// f14–f31, r1, r2 and r13 handed back.
    pub const RETURN_READS: u64 = span(3, 4) | span(f(1), f(8)) | span(14, 31) | span(f(14), f(31)) | FIXED;
    pub const RESULTS: u64 = span(3, 4) | span(f(1), f(8));
    pub const INT_RESULT: u64 = 1 << 3;
    pub const FLOAT_RESULT: u64 = 1 << f(1);
}

const PPC64: Abi = Abi {
    all: ppc_registers::EVERY,
    call_reads: elfv2::CALL_READS,
    call_clobbers: elfv2::CALL_CLOBBERS,
    return_reads: elfv2::RETURN_READS,
    results: elfv2::RESULTS,
    int_result: elfv2::INT_RESULT,
    float_result: elfv2::FLOAT_RESULT,
    bit: ppc_bit,
};

/// DWARF r0–r31 (0–31) and f0–f31 (32–63).
fn ppc_bit(r: u64) -> u64 {
    if r < 64 {
        1 << r
    } else {
        0
    }
}

/// The DWARF register of an iced register (its full width), if tracked.
fn dwarf(r: Register) -> Option<u32> {
    let full = r.full_register();
    let n = match full {
        Register::RAX => reg::RAX,
        Register::RDX => reg::RDX,
        Register::RCX => reg::RCX,
        Register::RBX => reg::RBX,
        Register::RSI => reg::RSI,
        Register::RDI => reg::RDI,
        Register::RBP => reg::RBP,
        Register::RSP => reg::RSP,
        _ if (Register::R8..=Register::R15).contains(&full) => reg::R8 + (full as u32 - Register::R8 as u32),
        _ if (Register::ZMM0..=Register::ZMM15).contains(&full) => reg::XMM0 + (full as u32 - Register::ZMM0 as u32),
        _ => return None,
    };
    Some(n)
}

/// The registers one x86 instruction reads, and those it overwrites whole, from iced's
/// instruction info (memory operands' base and index registers are reads).
fn x86_access(info: &mut InstructionInfoFactory, ins: &iced_x86::Instruction) -> (u64, u64) {
    let (mut uses, mut defs) = (0, 0);
    for u in info.info(ins).used_registers() {
        let Some(n) = dwarf(u.register()) else { continue };
        let r = u.register();
        match u.access() {
            // a 32-bit write zero-extends into the whole register; narrower ones merge
            OpAccess::Write if r.is_gpr32() || r.is_gpr64() => defs |= bit(n),
            OpAccess::Write | OpAccess::CondWrite | OpAccess::NoMemAccess | OpAccess::None => {}
            _ => uses |= bit(n),
        }
    }
    (uses, defs & !uses)
}

/// The steps of one instruction, its control flow from its kind.
fn step(abi: &Abi, i: &Insn, uses: u64, defs: u64, decoded: bool) -> Step {
    let mut s = Step {
        address: i.address,
        uses,
        defs,
        falls: true,
        target: NO_TARGET,
        succ: [NONE; 2],
        unfollowed: !decoded,
        exit: exit::NONE,
        callee: NO_TARGET,
        callers_read: 0,
    };
    match i.kind {
        kind::RETURN => {
            s.uses |= abi.return_reads;
            s.falls = false;
            s.exit = exit::RETURN;
        }
        kind::CALL_DIRECT | kind::CALL_INDIRECT => {
            s.exit = exit::CALL;
            if i.kind == kind::CALL_DIRECT && i.extra & (flag::EXTERNAL | flag::THUNK) == 0 {
                s.callee = i.target;
            }
            // a retpoline thunk's register is in its name, not in the instruction: any
            s.uses |= if i.extra & flag::THUNK != 0 { abi.all } else { abi.call_reads };
            s.defs = abi.call_clobbers & !s.uses;
        }
        kind::JUMP if i.extra & flag::EXTERNAL != 0 => {
            s.exit = exit::TAIL;
            s.uses |= abi.call_reads | abi.return_reads;
            s.falls = i.extra & flag::CONDITIONAL != 0;
        }
        kind::JUMP => {
            s.target = i.target;
            s.falls = i.extra & flag::CONDITIONAL != 0;
        }
        // a switch table or a tail call through a pointer: not followed
        kind::JUMP_INDIRECT | kind::ERROR => {
            s.uses = abi.all;
            s.unfollowed = true;
            s.falls = false;
        }
        _ => {}
    }
    if !decoded {
        s.uses = abi.all;
    }
    s
}

/// The instructions of one instance (its ranges, the entry first) as linked steps.
fn x86_steps(dec: &Decoder, img: &Image, ranges: &[(u64, u64)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut ends = Vec::with_capacity(ranges.len());
    let mut info = InstructionInfoFactory::new();
    for &(low, high) in ranges {
        let code = img.code(low, high);
        x86::walk_decoded(dec, 64, code.bytes, low, &mut |i, decoded| {
            let (uses, defs) = decoded.map_or((ALL, 0), |(ins, _)| x86_access(&mut info, ins));
            steps.push(step(&X86_64, i, uses, defs, decoded.is_some()));
        });
        ends.push(steps.len());
    }
    link(&X86_64, &mut steps, &ends, ranges);
    steps
}

/// The same for aarch64: each word's registers from its encoding.
fn aarch64_steps(dec: &Decoder, img: &Image, ranges: &[(u64, u64)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut ends = Vec::with_capacity(ranges.len());
    for &(low, high) in ranges {
        let code = img.code(low, high);
        dec.walk(code.bytes, low, |i| {
            let at = i.address.wrapping_sub(low) as usize;
            let word = code.bytes.get(at..at + 4).filter(|_| i.kind != kind::ERROR);
            let (uses, defs) =
                word.map_or((AARCH64.all, 0), |b| aarch64::registers(u32::from_le_bytes([b[0], b[1], b[2], b[3]])));
            steps.push(step(&AARCH64, i, uses, defs, word.is_some()));
        });
        ends.push(steps.len());
    }
    link(&AARCH64, &mut steps, &ends, ranges);
    steps
}

/// The same for RISC-V: each instruction's registers from its encoding (2 or 4 bytes).
fn riscv_steps(dec: &Decoder, img: &Image, ranges: &[(u64, u64)]) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    let mut ends = Vec::with_capacity(ranges.len());
    for &(low, high) in ranges {
        let code = img.code(low, high);
        dec.walk(code.bytes, low, |i| {
            let at = i.address.wrapping_sub(low) as usize;
            let raw = code.bytes.get(at..at + usize::from(i.size)).filter(|_| i.kind != kind::ERROR);
            let (uses, defs) = raw.map_or((RISCV.all, 0), riscv::registers);
            steps.push(step(&RISCV, i, uses, defs, raw.is_some()));
        });
        ends.push(steps.len());
    }
    link(&RISCV, &mut steps, &ends, ranges);
    steps
}

/// The same for 64-bit Power: each word (in the file's byte order) from its encoding; a
/// prefixed (8-byte) instruction reads everything.
fn ppc_steps(dec: &Decoder, img: &Image, ranges: &[(u64, u64)]) -> Vec<Step> {
    let big_endian = matches!(dec.isa, Isa::Ppc { big_endian: true, .. });
    let mut steps: Vec<Step> = Vec::new();
    let mut ends = Vec::with_capacity(ranges.len());
    for &(low, high) in ranges {
        let code = img.code(low, high);
        dec.walk(code.bytes, low, |i| {
            let at = i.address.wrapping_sub(low) as usize;
            let raw = code.bytes.get(at..at + 4).filter(|_| i.kind != kind::ERROR && i.size == 4);
            let (uses, defs) = raw.map_or((PPC64.all, 0), |b| {
                let b = [b[0], b[1], b[2], b[3]];
                ppc_registers::registers(if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
            });
            steps.push(step(&PPC64, i, uses, defs, i.kind != kind::ERROR));
        });
        ends.push(steps.len());
    }
    link(&PPC64, &mut steps, &ends, ranges);
    steps
}

/// The successors: the next instruction of the same range when a step falls through; a
/// jump's target when an instruction of the instance starts there. A target outside every
/// range is a tail call (it reads what a call and a return read); one inside a range but
/// not at an instruction's start cannot be followed.
fn link(abi: &Abi, steps: &mut [Step], ends: &[usize], ranges: &[(u64, u64)]) {
    let mut by_address: Vec<(u64, u32)> = steps.iter().enumerate().map(|(k, s)| (s.address, k as u32)).collect();
    by_address.sort_unstable();
    let mut range_end = ends.iter().copied();
    let mut end = range_end.next().unwrap_or(0);
    let n_steps = steps.len();
    for (k, s) in steps.iter_mut().enumerate() {
        while k >= end {
            end = range_end.next().unwrap_or(usize::MAX);
        }
        let mut n = 0;
        if s.falls && k + 1 < end.min(n_steps) {
            s.succ[n] = (k + 1) as u32;
            n += 1;
        }
        let t = s.target;
        if t == NO_TARGET {
            continue;
        }
        match by_address.binary_search_by_key(&t, |&(a, _)| a) {
            Ok(at) => s.succ[n] = by_address[at].1,
            Err(_) if ranges.iter().any(|&(l, h)| l <= t && t < h) => {
                s.uses = abi.all;
                s.unfollowed = true;
            }
            Err(_) => {
                s.uses |= abi.call_reads | abi.return_reads;
                s.exit = exit::TAIL;
            }
        }
    }
}

/// What one function, entered by a direct call, does to the registers: what it may read of
/// them at its entry, and what its own instructions overwrite.
#[derive(Clone, Copy, Debug)]
struct Callee {
    reads: u64,
    writes: u64,
}

/// A direct call reads only the argument registers its callee may read, and clobbers only what
/// the callee writes itself, where the binary says where the callee is (`callee`). The ABI's
/// sets are what a caller may assume of any callee; GCC knows more of one in the same unit
/// (`-fipa-ra`, on at -O2): code that reads a caller-saved register after a call without
/// setting it again shows the compiler knew the callee keeps it. A callee's entry reads are a
/// superset of what it reads, its own writes a part of what it clobbers, so a value before the
/// call is taken as dead only where it is. Returns the registers the function's calls are known
/// to clobber: all of an indirect or external call's, a known callee's own writes, none of an
/// unknown callee's.
fn refine_calls(abi: &Abi, steps: &mut [Step], callee: impl Fn(u64) -> Option<Callee>) -> u64 {
    let mut clobbered = 0;
    for s in steps.iter_mut().filter(|s| s.exit == exit::CALL) {
        if s.callee == NO_TARGET {
            clobbered |= s.defs;
        } else if let Some(c) = callee(s.callee) {
            s.uses = (s.uses & !abi.call_reads) | (abi.call_reads & c.reads);
            s.defs = abi.call_clobbers & !s.uses & c.writes;
            clobbered |= s.defs;
        }
    }
    clobbered
}

/// Where the function leaves, the caller reads only the result registers of what it returns
/// (`class`, [`result`] from its DWARF type): a `long` is in the first integer one, a `void`
/// in none. A tail jump still hands the callee its arguments.
fn narrow_results(abi: &Abi, steps: &mut [Step], class: u8) {
    let kept = match class {
        result::VOID => 0,
        result::INTEGER => abi.int_result,
        result::FLOAT => abi.float_result,
        _ => abi.results,
    };
    let dropped = abi.results & !kept;
    for s in steps.iter_mut() {
        match s.exit {
            exit::RETURN => s.uses &= !dropped,
            exit::TAIL => s.uses &= !(dropped & !abi.call_reads),
            _ => {}
        }
    }
}

/// The registers a function's own instructions overwrite (calls left out).
fn own_writes(steps: &[Step]) -> u64 {
    steps.iter().filter(|s| s.exit != exit::CALL).fold(0, |w, s| w | s.defs)
}

/// Where the function leaves, the caller-saved registers it never writes, nor its calls
/// clobber (`clobbered`), may be read by a caller compiled with `-fipa-ra`.
fn leave_to_callers(abi: &Abi, steps: &mut [Step], clobbered: u64) {
    let kept = abi.call_clobbers & !own_writes(steps) & !clobbered;
    for s in steps.iter_mut().filter(|s| matches!(s.exit, exit::RETURN | exit::TAIL)) {
        s.callers_read = kept & !s.uses;
    }
}

/// What a step reads, with what callers may read where it leaves (`callers`) or without.
fn reads(s: &Step, callers: bool) -> u64 {
    if callers {
        s.uses | s.callers_read
    } else {
        s.uses
    }
}

/// Live-in registers of every step: a backward fixpoint, swept in reverse order.
fn live_in(steps: &[Step], callers: bool) -> Vec<u64> {
    let mut live = vec![0u64; steps.len()];
    let mut changed = true;
    while changed {
        changed = false;
        for k in (0..steps.len()).rev() {
            let s = &steps[k];
            let out = s.succ.iter().filter(|&&n| n != NONE).fold(0, |acc, &n| acc | live[n as usize]);
            let new = reads(s, callers) | (out & !s.defs);
            if new != live[k] {
                live[k] = new;
                changed = true;
            }
        }
    }
    live
}

/// The first step, breadth first from `from`, that reads `b` (`read`) or overwrites it
/// (`!read`) before the other does; a path that overwrites (reads) it first stops there.
/// `callers`: as [`reads`].
fn first(steps: &[Step], from: usize, b: u64, read: bool, callers: bool, seen: &mut [bool]) -> Option<usize> {
    seen.iter_mut().for_each(|s| *s = false);
    let mut queue = std::collections::VecDeque::from([from]);
    seen[from] = true;
    while let Some(k) = queue.pop_front() {
        let s = &steps[k];
        let used = reads(s, callers) & b;
        let (hit, stop) = if read { (used, s.defs & b) } else { (s.defs & b, used) };
        if hit != 0 {
            return Some(k);
        }
        if stop != 0 {
            continue;
        }
        for &n in s.succ.iter().filter(|&&n| n != NONE) {
            if !std::mem::replace(&mut seen[n as usize], true) {
                queue.push_back(n as usize);
            }
        }
    }
    None
}

/// One row of `liveness`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Answer {
    pub live: bool,
    pub reader: u64,
    pub writer: u64,
    pub status: u8,
}

const UNKNOWN: Answer = Answer { live: true, reader: NO_TARGET, writer: NO_TARGET, status: live_status::NOT_INSN };

/// The answers for the queries `(address, reg)` of one function.
fn answer(abi: &Abi, steps: &[Step], queries: &[(u64, u64)]) -> Vec<Answer> {
    let live = live_in(steps, false);
    let kept = if steps.iter().any(|s| s.callers_read != 0) { live_in(steps, true) } else { live.clone() };
    let mut by_address: Vec<(u64, usize)> = steps.iter().enumerate().map(|(k, s)| (s.address, k)).collect();
    by_address.sort_unstable();
    let mut seen = vec![false; steps.len()];
    queries
        .iter()
        .map(|&(address, r)| {
            let Ok(at) = by_address.binary_search_by_key(&address, |&(a, _)| a) else { return UNKNOWN };
            let k = by_address[at].1;
            let b = (abi.bit)(r);
            if b == 0 {
                return Answer { live: true, reader: NO_TARGET, writer: NO_TARGET, status: live_status::UNSUPPORTED };
            }
            if live[k] & b != 0 {
                let reader = first(steps, k, b, true, false, &mut seen);
                let status = if reader.is_some_and(|j| steps[j].unfollowed) { live_status::UNFOLLOWED } else { 0 };
                let reader = reader.map_or(NO_TARGET, |j| steps[j].address);
                Answer { live: true, reader, writer: NO_TARGET, status }
            } else if kept[k] & b != 0 {
                let reader = first(steps, k, b, true, true, &mut seen).map_or(NO_TARGET, |j| steps[j].address);
                Answer { live: true, reader, writer: NO_TARGET, status: live_status::CALLERS }
            } else {
                let writer = first(steps, k, b, false, false, &mut seen).map_or(NO_TARGET, |j| steps[j].address);
                Answer { live: false, reader: NO_TARGET, writer, status: 0 }
            }
        })
        .collect()
}

// ---- frame slots (x86_64): a variable at `DW_OP_fbreg` or `DW_OP_breg7`/`6` + offset ----
//
// A slot is a span of bytes at an offset from the CFA (the value of %rsp before the call that
// entered the function: GCC's frame base on x86_64 is `DW_OP_call_frame_cfa`). %rsp is followed
// forward from the entry (CFA − 8 there) through pushes, pops, `add`/`sub`/`lea` of constants,
// `mov %rbp,%rsp` and `leave`; %rbp through `mov %rsp,%rbp`. An access based on either, known
// there, is at a known offset; one based on them unknown counts as reading the slot. Whether the
// frame's address escapes (`lea` of a stack address, `mov %rsp` into another register) decides
// the rest: then a call, and an access through any other pointer, may read the slot too.
// A return reads the slots of the caller's frame (offset ≥ 0: stack arguments), a tail jump
// those and, when the frame escapes, every one. Outgoing stack arguments are stored just
// before their call into slots no variable names: a call is not taken to read the frame.

/// Bit of a `liveness` query's `regs` value that makes it a frame slot: the low 32 bits are the
/// slot's offset from the CFA (signed), bits 32–47 its size in bytes.
pub mod query {
    consts! {
        pub const SLOT: u64 = 1 << 63;
    }
}

/// One memory access of an instruction.
#[derive(Clone, Copy, Debug)]
struct Access {
    /// Based on %rsp (`Some(false)`) or %rbp (`Some(true)`) without an index; `None`: another
    /// pointer.
    base_bp: Option<bool>,
    displacement: i64,
    size: u64,
    /// Reads (a read-modify-write too); else overwrites.
    read: bool,
}

/// What an instruction does to %rsp and %rbp.
#[derive(Clone, Copy, Debug, Default)]
struct Moves {
    /// %rsp += delta (push, pop, add, sub, lea of a constant)
    sp_delta: Option<i64>,
    /// %rsp = %rbp + this (`mov %rbp,%rsp`: 0; `leave`: 8)
    sp_from_bp: Option<i64>,
    sp_unknown: bool,
    bp_from_sp: bool,
    bp_unknown: bool,
}

/// The memory accesses and stack moves of each step (the same walk as [`x86_steps`]), and
/// whether the frame's address escapes.
fn x86_frame(dec: &Decoder, img: &Image, ranges: &[(u64, u64)]) -> (Vec<Vec<Access>>, Vec<Moves>, bool) {
    use iced_x86::{Mnemonic, OpKind};
    let (mut accesses, mut moves, mut escapes) = (Vec::new(), Vec::new(), false);
    let (mut lea_bp, mut frame_pointer) = (false, false);
    let mut info = InstructionInfoFactory::new();
    for &(low, high) in ranges {
        let code = img.code(low, high);
        x86::walk_decoded(dec, 64, code.bytes, low, &mut |i, decoded| {
            let Some((ins, _)) = decoded else {
                accesses.push(Vec::new());
                moves.push(Moves { sp_unknown: true, bp_unknown: true, ..Moves::default() });
                return;
            };
            let facts = info.info(ins);
            let mut a = Vec::new();
            for m in facts.used_memory() {
                let base_bp = match (m.base(), m.index()) {
                    (Register::RSP, Register::None) => Some(false),
                    (Register::RBP, Register::None) => Some(true),
                    _ => None,
                };
                let read = match m.access() {
                    OpAccess::Write => false,
                    // a conditional write may not happen: as a read, it keeps the slot live
                    OpAccess::Read | OpAccess::CondRead | OpAccess::CondWrite => true,
                    OpAccess::ReadWrite | OpAccess::ReadCondWrite => true,
                    _ => continue, // lea, nop: no access
                };
                let size = m.memory_size().size() as u64;
                a.push(Access { base_bp, displacement: m.displacement() as i64, size, read });
            }
            accesses.push(a);
            let writes = |r: Register| {
                facts.used_registers().iter().any(|u| {
                    u.register().full_register() == r
                        && matches!(
                            u.access(),
                            OpAccess::Write | OpAccess::ReadWrite | OpAccess::CondWrite | OpAccess::ReadCondWrite
                        )
                })
            };
            let (op0, op1) =
                (ins.op0_register(), ins.op_count().checked_sub(1).map_or(Register::None, |_| ins.op1_register()));
            let imm = || (ins.op1_kind() != OpKind::Register).then(|| ins.immediate(1) as i64);
            let mut mv = Moves::default();
            match ins.mnemonic() {
                _ if i.kind == kind::CALL_DIRECT || i.kind == kind::CALL_INDIRECT => {}
                Mnemonic::Push | Mnemonic::Pop | Mnemonic::Pushfq | Mnemonic::Popfq => {
                    mv.sp_delta = Some(i64::from(ins.stack_pointer_increment()));
                }
                Mnemonic::Add | Mnemonic::Sub if op0 == Register::RSP => match imm() {
                    Some(v) => mv.sp_delta = Some(if ins.mnemonic() == Mnemonic::Add { v } else { -v }),
                    None => mv.sp_unknown = true,
                },
                Mnemonic::Lea
                    if op0 == Register::RSP
                        && ins.memory_base() == Register::RSP
                        && ins.memory_index() == Register::None =>
                {
                    mv.sp_delta = Some(ins.memory_displacement64() as i64);
                }
                Mnemonic::Mov if op0 == Register::RSP && op1 == Register::RBP => mv.sp_from_bp = Some(0),
                Mnemonic::Mov if op0 == Register::RBP && op1 == Register::RSP => mv.bp_from_sp = true,
                Mnemonic::Leave => {
                    mv.sp_from_bp = Some(8);
                    mv.bp_unknown = true;
                }
                _ => mv.sp_unknown = writes(Register::RSP),
            }
            if !mv.bp_from_sp && writes(Register::RBP) {
                mv.bp_unknown = true;
            }
            // a stack address put anywhere but %rsp/%rbp: the frame escapes (through %rbp only
            // if it is a frame pointer, below)
            let stack = |r: Register| matches!(r, Register::RSP | Register::RBP);
            let lea = ins.mnemonic() == Mnemonic::Lea && !stack(op0);
            let copy_stack = ins.mnemonic() == Mnemonic::Mov && op1 == Register::RSP && !stack(op0);
            escapes |= copy_stack || (lea && ins.memory_base() == Register::RSP);
            lea_bp |= lea && ins.memory_base() == Register::RBP && ins.memory_index() == Register::None;
            frame_pointer |= mv.bp_from_sp;
            moves.push(mv);
        });
    }
    // without `mov %rsp,%rbp`, %rbp is one more general register: what it points to is not the frame
    if !frame_pointer {
        accesses.iter_mut().flatten().filter(|a| a.base_bp == Some(true)).for_each(|a| a.base_bp = None);
    }
    (accesses, moves, escapes || (lea_bp && frame_pointer))
}

/// %rsp and %rbp as offsets from the CFA before each step (`None`: not known), followed
/// forward from the entry.
fn stack_offsets(steps: &[Step], moves: &[Moves]) -> Vec<(Option<i64>, Option<i64>)> {
    let mut at: Vec<Option<(Option<i64>, Option<i64>)>> = vec![None; steps.len()];
    if steps.is_empty() {
        return Vec::new();
    }
    at[0] = Some((Some(-8), None));
    let mut work = vec![0usize];
    while let Some(k) = work.pop() {
        let Some((sp, bp)) = at[k] else { continue };
        let m = &moves[k];
        let mut out_sp = match (m.sp_delta, m.sp_from_bp) {
            (Some(d), _) => sp.map(|v| v + d),
            (_, Some(d)) => bp.map(|v| v + d),
            _ => sp,
        };
        if m.sp_unknown {
            out_sp = None;
        }
        let out_bp = if m.bp_from_sp {
            sp
        } else if m.bp_unknown {
            None
        } else {
            bp
        };
        for &n in steps[k].succ.iter().filter(|&&n| n != NONE) {
            let n = n as usize;
            let merged = match at[n] {
                None => (out_sp, out_bp),
                Some((s2, b2)) => (if s2 == out_sp { s2 } else { None }, if b2 == out_bp { b2 } else { None }),
            };
            if at[n] != Some(merged) {
                at[n] = Some(merged);
                work.push(n);
            }
        }
    }
    at.into_iter().map(|s| s.unwrap_or((None, None))).collect()
}

/// The steps of one slot `[offset, offset + size)`: bit 0 used where the slot is read, defined
/// where it is overwritten whole.
fn slot_steps(
    steps: &[Step],
    frame: &(Vec<Vec<Access>>, Vec<Moves>, bool),
    offsets: &[(Option<i64>, Option<i64>)],
    offset: i64,
    size: u64,
) -> Vec<Step> {
    let (accesses, _, escapes) = frame;
    let end = offset + size as i64;
    steps
        .iter()
        .enumerate()
        .map(|(k, s)| {
            let (sp, bp) = offsets[k];
            let mut used = s.unfollowed;
            let mut defined = false;
            for a in &accesses[k] {
                let base = match a.base_bp {
                    Some(true) => bp,
                    Some(false) => sp,
                    None => {
                        used |= *escapes && a.read;
                        continue;
                    }
                };
                let Some(base) = base else {
                    used = true;
                    continue;
                };
                let (from, to) = (base + a.displacement, base + a.displacement + a.size as i64);
                if to <= offset || end <= from {
                    continue;
                }
                if a.read || from > offset || to < end {
                    used = true;
                } else {
                    defined = true;
                }
            }
            used |= match s.exit {
                exit::CALL => *escapes,
                exit::RETURN => offset >= 0,
                exit::TAIL => offset >= 0 || *escapes,
                _ => false,
            };
            Step { uses: u64::from(used), defs: u64::from(defined && !used), callers_read: 0, ..*s }
        })
        .collect()
}

/// Every register is the one bit of a slot's steps.
const SLOT: Abi = Abi {
    all: 1,
    call_reads: 0,
    call_clobbers: 0,
    return_reads: 0,
    results: 0,
    int_result: 0,
    float_result: 0,
    bit: |_| 1,
};

/// The answers for slot queries `(address, regs value)` of one x86_64 function.
fn slot_answers(
    dec: &Decoder,
    img: &Image,
    ranges: &[(u64, u64)],
    steps: &[Step],
    queries: &[(u64, u64)],
) -> Vec<Answer> {
    let frame = x86_frame(dec, img, ranges);
    if frame.0.len() != steps.len() {
        return vec![UNKNOWN; queries.len()];
    }
    let offsets = stack_offsets(steps, &frame.1);
    queries
        .iter()
        .map(|&(address, r)| {
            let (offset, size) = (i64::from(r as u32 as i32), (r >> 32) & 0xFFFF);
            answer(&SLOT, &slot_steps(steps, &frame, &offsets, offset, size.max(1)), &[(address, 0)])[0]
        })
        .collect()
}

/// The linked steps of an instance's ranges, for one architecture.
type StepsOf = fn(&Decoder, &Image, &[(u64, u64)]) -> Vec<Step>;

/// How many calls deep an analysed function's calls are followed (its callees, theirs, …):
/// past that a call is the ABI's.
const CALL_DEPTH: u32 = 3;

/// The functions a direct call may enter, by the extents of the binary's function symbols, and
/// what each does to the registers ([`Callee`]), decoded once.
struct Callees<'a, 'd> {
    extents: Vec<(u64, u64)>,
    /// By entry and depth: the answer does not depend on which caller asked first.
    known: Mutex<FxHashMap<(u64, u32), Callee>>,
    /// What each function returns ([`result`]), by entry address, where known.
    results: FxHashMap<u64, u8>,
    abi: &'static Abi,
    dec: &'a Decoder,
    img: &'a Image<'d>,
    steps_of: StepsOf,
}

impl<'a, 'd> Callees<'a, 'd> {
    fn new(
        o: &Opened<'d>,
        results: FxHashMap<u64, u8>,
        abi: &'static Abi,
        dec: &'a Decoder,
        img: &'a Image<'d>,
        steps_of: StepsOf,
    ) -> Self {
        // a relocatable file's symbols are section offsets: laid out as the image lays them
        let relocatable = o.file.kind() == ObjectKind::Relocatable;
        let bases = if relocatable { elf::section_bases(o.symbols()) } else { Vec::new() };
        let extents: Vec<(u64, u64)> = o
            .symbols()
            .symbols()
            .filter(|s| s.kind() == SymbolKind::Text && s.size() > 0 && s.is_definition())
            .map(|s| {
                let base = s.section_index().and_then(|i| bases.get(i.0)).copied().unwrap_or(0);
                let low = s.address().wrapping_add(base);
                (low, low.wrapping_add(s.size()))
            })
            .collect();
        Callees::of_extents(extents, results, abi, dec, img, steps_of)
    }

    /// The same from the functions' extents `[low, high)` and what the functions entered at
    /// these addresses return ([`result`]).
    fn of_extents(
        mut extents: Vec<(u64, u64)>,
        results: FxHashMap<u64, u8>,
        abi: &'static Abi,
        dec: &'a Decoder,
        img: &'a Image<'d>,
        steps_of: StepsOf,
    ) -> Self {
        extents.sort_unstable();
        extents.dedup_by_key(|e| e.0);
        Callees { extents, known: Mutex::new(FxHashMap::default()), results, abi, dec, img, steps_of }
    }

    /// The linked steps of a function's ranges, its return narrowed to what it returns
    /// (`class`), its calls followed `depth` calls deep; and what those calls are known to
    /// clobber ([`refine_calls`]).
    fn steps(&self, ranges: &[(u64, u64)], class: u8, depth: u32) -> (Vec<Step>, u64) {
        let mut steps = (self.steps_of)(self.dec, self.img, ranges);
        narrow_results(self.abi, &mut steps, class);
        let clobbered = match depth {
            0 => 0,
            _ => refine_calls(self.abi, &mut steps, |g| self.of(g, depth - 1)),
        };
        (steps, clobbered)
    }

    /// The function entered at `entry`, its own calls followed `depth` more levels; None when
    /// no function symbol starts there.
    fn of(&self, entry: u64, depth: u32) -> Option<Callee> {
        if let Some(&c) = self.known.lock().ok()?.get(&(entry, depth)) {
            return Some(c);
        }
        let at = self.extents.binary_search_by_key(&entry, |e| e.0).ok()?;
        let class = self.results.get(&entry).copied().unwrap_or(result::UNKNOWN);
        let (steps, _) = self.steps(&[self.extents[at]], class, depth);
        let reads = live_in(&steps, false).first().copied().unwrap_or(self.abi.all);
        let c = Callee { reads, writes: own_writes(&steps) };
        self.known.lock().ok()?.insert((entry, depth), c);
        Some(c)
    }
}

/// For each query `(ids[q], addresses[q], regs[q])`: whether DWARF register `regs[q]` is live
/// at `addresses[q]` in the function whose ranges are the rows `(fids, lows, highs)` with id
/// `ids[q]` (its entry range first, as for [`super::facts`]). `returns[id]` is what function
/// `id` returns ([`result`]; past the end, or [`result::UNKNOWN`]: every result register).
///
/// Table `liveness`, one row per query in the order given: `live` (1: some path reads the
/// register before overwriting it — or the code cannot tell), `reader` (an instruction that
/// reads it first, when live), `writer` (one that overwrites it first, when not; `NO_TARGET`
/// when every path leaves without reading it), `status` ([`live_status`]).
#[allow(clippy::too_many_arguments)]
pub fn liveness(
    o: &Opened,
    fids: &[u64],
    lows: &[u64],
    highs: &[u64],
    returns: &[u64],
    ids: &[u64],
    addresses: &[u64],
    regs: &[u64],
) -> Result<Scan> {
    if fids.len() != lows.len() || fids.len() != highs.len() || ids.len() != addresses.len() || ids.len() != regs.len()
    {
        return Err(Error::new("liveness: the range columns, or the query columns, differ in length".to_string()));
    }
    let mut strings = Strings::default();
    let dec = Decoder::for_file(&o.file, o.symbols(), &mut strings)?;
    let img = Image::new(&o.file);
    let analysed: Option<(&Abi, StepsOf)> = match dec.isa {
        Isa::X86 { bits: 64 } => Some((&X86_64, x86_steps)),
        Isa::Aarch64 => Some((&AARCH64, aarch64_steps)),
        Isa::Riscv { xlen: 64 } => Some((&RISCV, riscv_steps)),
        Isa::Ppc { bits64: true, .. } => Some((&PPC64, ppc_steps)),
        _ => None,
    };

    let mut ranges: Vec<(u64, usize)> = fids.iter().copied().zip(0..).collect();
    ranges.sort_by_key(|&(id, row)| (id, row));
    // each function's entry (its first range) with what it returns, for the callees' facts
    let entries: FxHashMap<u64, u8> = ranges
        .chunk_by(|a, b| a.0 == b.0)
        .filter_map(|rows| Some((lows[rows[0].1], *returns.get(usize::try_from(rows[0].0).ok()?)? as u8)))
        .collect();
    let callees = analysed.map(|(abi, steps_of)| Callees::new(o, entries, abi, &dec, &img, steps_of));
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&q| ids[q]);
    let groups: Vec<&[usize]> = order.chunk_by(|&a, &b| ids[a] == ids[b]).collect();
    let found: Vec<Vec<(usize, Answer)>> = groups
        .par_iter()
        .map(|qs| {
            let id = ids[qs[0]];
            let from = ranges.partition_point(|&(f, _)| f < id);
            let rows: Vec<(u64, u64)> =
                ranges[from..].iter().take_while(|&&(f, _)| f == id).map(|&(_, r)| (lows[r], highs[r])).collect();
            let queries: Vec<(u64, u64)> = qs.iter().map(|&q| (addresses[q], regs[q])).collect();
            let got = if let Some(callees) = &callees {
                let abi = callees.abi;
                let run = || {
                    let class = returns.get(id as usize).map_or(result::UNKNOWN, |&c| c as u8);
                    let (mut steps, clobbered) = callees.steps(&rows, class, CALL_DEPTH);
                    leave_to_callers(abi, &mut steps, clobbered);
                    let (slots, regs): (Vec<usize>, Vec<usize>) =
                        (0..queries.len()).partition(|&q| queries[q].1 & query::SLOT != 0);
                    let mut got = vec![UNKNOWN; queries.len()];
                    let asked: Vec<(u64, u64)> = regs.iter().map(|&q| queries[q]).collect();
                    for (q, a) in regs.iter().zip(answer(abi, &steps, &asked)) {
                        got[*q] = a;
                    }
                    let asked: Vec<(u64, u64)> = slots.iter().map(|&q| queries[q]).collect();
                    let found = if !asked.is_empty() && matches!(dec.isa, Isa::X86 { bits: 64 }) {
                        slot_answers(&dec, &img, &rows, &steps, &asked)
                    } else {
                        vec![Answer { status: live_status::UNSUPPORTED, ..UNKNOWN }; asked.len()]
                    };
                    for (q, a) in slots.iter().zip(found) {
                        got[*q] = a;
                    }
                    got
                };
                std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)).unwrap_or_else(|_| vec![UNKNOWN; qs.len()])
            } else {
                vec![Answer { status: live_status::UNSUPPORTED, ..UNKNOWN }; qs.len()]
            };
            qs.iter().copied().zip(got).collect()
        })
        .collect();
    let mut out = vec![UNKNOWN; ids.len()];
    for (q, a) in found.into_iter().flatten() {
        out[q] = a;
    }
    let table = Table::new(vec![
        ("live", Chunk::U8(out.iter().map(|a| u8::from(a.live)).collect())),
        ("reader", Chunk::U64(out.iter().map(|a| a.reader).collect())),
        ("writer", Chunk::U64(out.iter().map(|a| a.writer).collect())),
        ("status", Chunk::U8(out.iter().map(|a| a.status).collect())),
    ]);
    let info = vec![("path", o.path.display().to_string()), ("arch", elf::arch_name(&o.file).to_string())];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("liveness", table)], string_offsets, string_data })
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: u64 = 0x1000;

    fn ask(code: &[u8], queries: &[(u64, u64)]) -> Vec<Answer> {
        let dec = Decoder::new(Isa::X86 { bits: 64 });
        let img = Image::from_parts(vec![(BASE, code)]);
        answer(&X86_64, &x86_steps(&dec, &img, &[(BASE, BASE + code.len() as u64)]), queries)
    }

    #[test]
    fn read_then_dead() {
        // imul %rsi,%rdi; mov %rdi,%rax; ret
        let code = [0x48, 0x0f, 0xaf, 0xfe, 0x48, 0x89, 0xf8, 0xc3];
        let (rdi, rsi, rax, rbx) = (u64::from(reg::RDI), u64::from(reg::RSI), u64::from(reg::RAX), u64::from(reg::RBX));
        let got = ask(
            &code,
            &[(BASE, rsi), (BASE + 4, rdi), (BASE + 4, rsi), (BASE + 7, rdi), (BASE + 4, rax), (BASE + 7, rbx)],
        );
        assert_eq!((got[0].live, got[0].reader), (true, BASE));
        assert_eq!((got[1].live, got[1].reader), (true, BASE + 4));
        assert!(!got[2].live, "%rsi is not read after the imul");
        assert!(!got[3].live, "a return does not read %rdi");
        assert_eq!((got[4].live, got[4].writer), (false, BASE + 4), "the mov overwrites %rax first");
        assert!(got[5].live, "the caller reads its callee-saved %rbx");
        assert_eq!(got[1].status, 0);
        assert_eq!(ask(&code, &[(BASE + 1, rdi)])[0].status, live_status::NOT_INSN);
    }

    #[test]
    fn a_return_reads_the_result_registers_of_its_type() {
        let dec = Decoder::new(Isa::X86 { bits: 64 });
        let code = [0xc3]; // ret
        let img = Image::from_parts(vec![(BASE, &code[..])]);
        let (rax, rdx, xmm0) = (u64::from(reg::RAX), u64::from(reg::RDX), u64::from(reg::XMM0));
        let live = |class| {
            let mut steps = x86_steps(&dec, &img, &[(BASE, BASE + 1)]);
            narrow_results(&X86_64, &mut steps, class);
            answer(&X86_64, &steps, &[(BASE, rax), (BASE, rdx), (BASE, xmm0)])
                .iter()
                .map(|a| a.live)
                .collect::<Vec<_>>()
        };
        assert_eq!(live(result::UNKNOWN), [true, true, true], "a 16-byte value, or two doubles");
        assert_eq!(live(result::INTEGER), [true, false, false]);
        assert_eq!(live(result::FLOAT), [false, false, true]);
        assert_eq!(live(result::VOID), [false, false, false]);
    }

    #[test]
    fn a_known_callee_keeps_what_it_does_not_write() {
        // caller: 0: mov $1,%r10d   6: call callee   b: add %r10,%rax   e: ret
        // callee at +0x100: lea (%rdi,%rdi,2),%rax; ret
        let caller = [0x41, 0xba, 0x01, 0x00, 0x00, 0x00, 0xe8, 0xf5, 0x00, 0x00, 0x00, 0x4c, 0x01, 0xd0, 0xc3];
        let callee = [0x48, 0x8d, 0x04, 0x7f, 0xc3];
        let (at, end) = (BASE + 0x100, BASE + 0x105);
        let dec = Decoder::new(Isa::X86 { bits: 64 });
        let img = Image::from_parts(vec![(BASE, &caller[..]), (at, &callee[..])]);
        let extents = vec![(BASE, BASE + 15), (at, end)];
        let callees = Callees::of_extents(extents, FxHashMap::default(), &X86_64, &dec, &img, x86_steps);
        let steps_of = |low, high| {
            let (mut steps, clobbered) = callees.steps(&[(low, high)], result::UNKNOWN, CALL_DEPTH);
            leave_to_callers(&X86_64, &mut steps, clobbered);
            steps
        };
        let (rdi, rsi, r10, rax) = (u64::from(reg::RDI), u64::from(reg::RSI), 10, u64::from(reg::RAX));
        // the callee never writes %r10: the value set before the call is read after it
        let got = answer(&X86_64, &steps_of(BASE, BASE + 15), &[(BASE + 6, r10), (BASE + 6, rsi), (BASE + 6, rdi)]);
        assert_eq!((got[0].live, got[0].reader, got[0].status), (true, BASE + 11, 0));
        // the callee reads %rdi, not %rsi; it writes neither: left to the caller's callers
        assert_eq!((got[1].live, got[1].status), (true, live_status::CALLERS), "%rsi is not an argument here");
        assert_eq!((got[2].live, got[2].reader, got[2].status), (true, BASE + 6, 0));
        // in the callee: %rdi is dead after the lea, but the caller may keep its own value there
        let got = answer(&X86_64, &steps_of(at, end), &[(at + 4, rdi), (at + 4, rax)]);
        assert_eq!((got[0].live, got[0].reader, got[0].status), (true, at + 4, live_status::CALLERS));
        assert_eq!((got[1].live, got[1].status), (true, 0), "%rax is the return value");
    }

    #[test]
    fn calls_loops_and_tail_jumps() {
        // 0: xor %eax,%eax   2: call +0 (to 7, outside nothing: a call)   7: add $1,%rax
        // b: cmp %rdi,%rax   e: jne 7   10: jmp far away (a tail call)
        let code = [
            0x31, 0xc0, 0xe8, 0x00, 0x00, 0x00, 0x00, 0x48, 0x83, 0xc0, 0x01, 0x48, 0x39, 0xf8, 0x75, 0xf7, 0xe9, 0x00,
            0x10, 0x00, 0x00,
        ];
        let (rdi, rsi, rbx, rcx) = (u64::from(reg::RDI), u64::from(reg::RSI), u64::from(reg::RBX), u64::from(reg::RCX));
        let got = ask(&code, &[(BASE + 2, rsi), (BASE + 7, rdi), (BASE + 7, rsi), (BASE + 7, rbx), (BASE + 7, rcx)]);
        assert!(got[0].live, "a call reads the argument registers");
        assert_eq!((got[1].live, got[1].reader), (true, BASE + 0xb), "the loop's compare reads %rdi");
        assert!(got[2].live, "a tail call reads the argument registers");
        assert!(got[3].live, "a tail call hands the callee-saved registers on");
        assert!(got[4].live, "%rcx is the fourth argument of the tail call");
    }

    /// aarch64 words at BASE, analysed over `ranges` (offsets from BASE).
    fn ask_a64(words: &[u32], ranges: &[(u64, u64)], queries: &[(u64, u64)]) -> Vec<Answer> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let dec = Decoder::new(Isa::Aarch64);
        let img = Image::from_parts(vec![(BASE, &bytes)]);
        let ranges: Vec<(u64, u64)> = ranges.iter().map(|&(l, h)| (BASE + l, BASE + h)).collect();
        answer(&AARCH64, &aarch64_steps(&dec, &img, &ranges), queries)
    }

    #[test]
    fn aarch64_read_then_dead() {
        // 0: mul x0, x0, x1   4: mov x2, x0   8: ret
        let code = [0x9b01_7c00, 0xaa00_03e2, 0xd65f_03c0];
        let got = ask_a64(&code, &[(0, 12)], &[(BASE, 1), (BASE + 4, 1), (BASE + 4, 0), (BASE + 8, 2), (BASE + 8, 19)]);
        assert_eq!((got[0].live, got[0].reader), (true, BASE), "the mul reads x1");
        assert_eq!((got[1].live, got[1].reader), (true, BASE + 8), "x1 may be a 16-byte result's high half");
        assert_eq!((got[2].live, got[2].reader), (true, BASE + 4), "the mov reads x0");
        assert!(!got[3].live, "a return does not read x2");
        assert!(got[4].live, "the caller reads its callee-saved x19");
    }

    #[test]
    fn aarch64_calls_loops_and_tail_branches() {
        // 0: mov x9, #1   4: bl +0x100   8: add x9, x9, #1   c: cbz x3, 8   10: cmp x9, x2
        // 14: b.ne 8   18: b +0x2000 (a tail call)
        let code = [0xd280_0029, 0x9400_0040, 0x9100_0529, 0xb4ff_ffe3, 0xeb02_013f, 0x54ff_ffa1, 0x1400_0800];
        let got = ask_a64(
            &code,
            &[(0, 28)],
            &[
                (BASE + 4, 9),
                (BASE + 4, 7),
                (BASE + 4, 8),
                (BASE + 4, 10),
                (BASE + 8, 3),
                (BASE + 0x18, 30),
                (BASE + 8, 20),
            ],
        );
        assert_eq!((got[0].live, got[0].writer), (false, BASE + 4), "the call clobbers x9");
        assert!(got[1].live, "a call reads x7, an argument register");
        assert!(got[2].live, "and x8, the indirect result's address");
        assert!(!got[3].live, "x10 is corruptible: the call overwrites it");
        assert_eq!((got[4].live, got[4].reader), (true, BASE + 0xc), "the loop's cbz reads x3");
        assert!(got[5].live, "a tail call hands x30 on: the callee returns through it");
        assert!(got[6].live, "a tail call hands the callee-saved x20 back");
    }

    #[test]
    fn aarch64_loads_stores_and_vectors() {
        // 0: stp x29, x30, [sp, #-32]!   4: str x3, [sp, #16]   8: ldp x19, x20, [sp, #16]
        // c: ldr d8, [sp, #8]   10: ldp x29, x30, [sp], #32   14: ret
        let code = [0xa9be_7bfd, 0xf900_0be3, 0xa941_53f3, 0xfd40_07e8, 0xa8c2_7bfd, 0xd65f_03c0];
        let (d8, d9) = (64 + 8, 64 + 9);
        let got = ask_a64(
            &code,
            &[(0, 24)],
            &[(BASE, 3), (BASE, 19), (BASE, d8), (BASE, d9), (BASE + 4, 31), (BASE + 0x10, 29), (BASE + 0x14, 29)],
        );
        assert_eq!((got[0].live, got[0].reader), (true, BASE + 4), "the str reads x3");
        assert_eq!((got[1].live, got[1].writer), (false, BASE + 8), "the ldp overwrites x19 first");
        assert_eq!((got[2].live, got[2].writer), (false, BASE + 0xc), "the ldr overwrites d8 first");
        assert!(got[3].live, "d9 is handed back to the caller");
        assert!(got[4].live, "sp is read by every access");
        assert_eq!((got[5].live, got[5].writer), (false, BASE + 0x10), "the ldp restores x29");
        assert!(got[6].live, "x29 is the caller's frame pointer");
    }

    #[test]
    fn aarch64_cold_part_is_followed() {
        // hot 0: cbz x0, cold   4: mov x0, x1   8: ret; cold 0x100: add x0, x4, x2   0x104: b 8
        let mut code = vec![0u32; 0x42];
        code[..3].copy_from_slice(&[0xb400_0800, 0xaa01_03e0, 0xd65f_03c0]);
        code[0x40..].copy_from_slice(&[0x8b02_0080, 0x17ff_ffc1]);
        let hot_cold = [(0, 12), (0x100, 0x108)];
        let got = ask_a64(&code, &hot_cold, &[(BASE, 4), (BASE + 4, 4), (BASE + 0x104, 0)]);
        assert_eq!((got[0].live, got[0].reader), (true, BASE + 0x100), "the .cold part reads x4");
        assert!(!got[1].live, "past the branch to .cold, x4 is not read");
        assert!(got[2].live, "the branch back reaches the ret, which reads x0");
        let hot = ask_a64(&code, &[(0, 12)], &[(BASE, 4)]);
        assert!(hot[0].live, "without its .cold range, the branch is a tail call that may read x4");
    }

    #[test]
    fn aarch64_operands() {
        use aarch64::{registers, SP};
        let x = |r: u32| 1u64 << r;
        // add x0, sp, #16: sp read, x0 written
        assert_eq!(registers(0x9100_43e0), (SP, x(0)));
        // movk x1, #1, lsl #16: x1 read (the rest of it kept)
        assert_eq!(registers(0xf2a0_0021), (x(1), 0));
        // csel x2, x3, x4, eq
        assert_eq!(registers(0x9a84_0062), (x(3) | x(4), x(2)));
        // ldr x5, [x6, x7, lsl #3]
        assert_eq!(registers(0xf867_78c5), (x(6) | x(7), x(5)));
        // stxr w8, x9, [x10]: the status in w8
        assert_eq!(registers(0xc808_7d49), (x(9) | x(10), x(8)));
        // ldadd x11, x12, [x13]
        assert_eq!(registers(0xf82b_01ac), (x(11) | x(13), x(12)));
        // cmp x9, x2 (subs xzr, x9, x2): nothing written
        assert_eq!(registers(0xeb02_013f), (x(9) | x(2), 0));
        // svc #0: anything
        assert_eq!(registers(0xd400_0001).0, aarch64::EVERY);
    }

    /// RISC-V code (RV64GC) at BASE.
    fn ask_rv(code: &[u8], queries: &[(u64, u64)]) -> Vec<Answer> {
        let dec = Decoder::new(Isa::Riscv { xlen: 64 });
        let img = Image::from_parts(vec![(BASE, code)]);
        answer(&RISCV, &riscv_steps(&dec, &img, &[(BASE, BASE + code.len() as u64)]), queries)
    }

    #[test]
    fn riscv_read_then_dead() {
        // 0: mul a0,a0,a1   4: c.mv a2,a0   6: c.ret
        let code = [0x33, 0x05, 0xb5, 0x02, 0x2a, 0x86, 0x82, 0x80];
        let got = ask_rv(&code, &[(BASE, 11), (BASE + 4, 11), (BASE + 4, 10), (BASE + 6, 12), (BASE + 6, 9)]);
        assert_eq!((got[0].live, got[0].reader), (true, BASE), "the mul reads a1");
        assert_eq!((got[1].live, got[1].reader), (true, BASE + 6), "a1 may be a two-word result's high half");
        assert_eq!((got[2].live, got[2].reader), (true, BASE + 4), "the c.mv reads a0");
        assert!(!got[3].live, "a return does not read a2");
        assert!(got[4].live, "the caller reads its callee-saved s1");
    }

    #[test]
    fn riscv_calls() {
        // 0: li s1,1   4: jal ra,+0x100   8: add a0,s1,a6   c: c.ret
        let code = [0x93, 0x04, 0x10, 0x00, 0xef, 0x00, 0x00, 0x10, 0x33, 0x85, 0x04, 0x01, 0x82, 0x80];
        let (t0, s1, a6, a7, fs0, ft0) = (5, 9, 16, 17, 32 + 8, 32);
        let got = ask_rv(&code, &[(BASE + 4, t0), (BASE + 4, a7), (BASE + 4, s1), (BASE + 4, a6), (BASE + 8, fs0)]);
        assert_eq!((got[0].live, got[0].writer), (false, BASE + 4), "the call clobbers t0");
        assert!(got[1].live, "a call reads a7, an argument register");
        assert_eq!((got[2].live, got[2].reader), (true, BASE + 8), "s1 survives the call, read by the add");
        assert_eq!(got[3].reader, BASE + 4, "the call reads a6 first");
        assert!(got[4].live, "fs0 is handed back to the caller");
        assert!(!ask_rv(&code, &[(BASE + 8, ft0)])[0].live, "ft0 is not");
    }

    #[test]
    fn riscv_operands() {
        use riscv::registers;
        let x = |r: u32| 1u64 << r;
        let f = |r: u32| 1u64 << (32 + r);
        let w = |v: u32| v.to_le_bytes();
        let h = |v: u16| v.to_le_bytes();
        assert_eq!(registers(&w(0x0081_3407)), (x(2), f(8)), "fld fs0,8(sp)");
        assert_eq!(registers(&w(0x0011_3423)), (x(1) | x(2), 0), "sd ra,8(sp)");
        assert_eq!(registers(&w(0x0006_9463)), (x(13), 0), "bnez a3: x0 is not a register");
        assert_eq!(registers(&w(0xe207_86d3)), (f(15), x(13)), "fmv.x.d a3,fa5");
        assert_eq!(registers(&w(0xd226_7753)), (x(12), f(14)), "fcvt.d.l fa4,a2");
        assert_eq!(registers(&w(0x00b6_352f)), (x(11) | x(12), x(10)), "amoadd.d a0,a1,(a2)");
        assert_eq!(registers(&w(0xc000_2573)), (0, x(10)), "rdcycle a0");
        assert_eq!(registers(&w(0x0000_0073)).0, riscv::EVERY, "ecall: anything");
        assert_eq!(registers(&h(0x081c)), (x(2), x(15)), "c.addi4spn a5,sp,16");
        assert_eq!(registers(&h(0xe798)), (x(15) | x(14), 0), "c.sd a4,8(a5)");
        assert_eq!(registers(&h(0x952e)), (x(10) | x(11), 0), "c.add a0,a1: a0 read, so not counted as written");
    }

    /// ppc64le words at BASE.
    fn ask_ppc(words: &[u32], queries: &[(u64, u64)]) -> Vec<Answer> {
        let bytes: Vec<u8> = words.iter().flat_map(|w| w.to_le_bytes()).collect();
        let dec = Decoder::new(Isa::Ppc { big_endian: false, bits64: true });
        let img = Image::from_parts(vec![(BASE, &bytes)]);
        answer(&PPC64, &ppc_steps(&dec, &img, &[(BASE, BASE + bytes.len() as u64)]), queries)
    }

    #[test]
    fn ppc_read_then_dead() {
        // 0: mulld r30,r3,r4   4: mr r31,r4   8: blr
        let code = [0x7fc3_21d2, 0x7c9f_2378, 0x4e80_0020];
        let got = ask_ppc(&code, &[(BASE, 3), (BASE + 4, 3), (BASE + 4, 4), (BASE + 8, 30), (BASE + 8, 5)]);
        assert_eq!((got[0].live, got[0].reader), (true, BASE), "the mulld reads r3");
        assert_eq!((got[1].live, got[1].reader), (true, BASE + 8), "r3 is the return value");
        assert_eq!((got[2].live, got[2].reader), (true, BASE + 4), "mr reads r4");
        assert!(got[3].live, "the caller reads its non-volatile r30");
        assert!(!got[4].live, "a return does not read r5");
    }

    #[test]
    fn ppc_calls() {
        // 0: li r9,1   4: bl +0x100   8: add r3,r9,r10   c: blr
        let code = [0x3920_0001, 0x4800_0101, 0x7c69_5214, 0x4e80_0020];
        let (f1, f14, f9) = (32 + 1, 32 + 14, 32 + 9);
        let got = ask_ppc(
            &code,
            &[
                (BASE + 4, 9),
                (BASE + 4, 10),
                (BASE + 4, 11),
                (BASE + 4, 0),
                (BASE + 8, f14),
                (BASE + 8, f1),
                (BASE + 8, f9),
            ],
        );
        assert_eq!((got[0].live, got[0].reader), (true, BASE + 4), "r9 is an argument register: the call reads it");
        assert_eq!(got[1].reader, BASE + 4, "the call reads r10, an argument register");
        assert_eq!((got[2].live, got[2].writer), (false, BASE + 4), "r11 is volatile");
        assert!(!got[3].live, "so is r0");
        assert!(got[4].live, "f14 is handed back to the caller");
        assert!(got[5].live, "f1 may be the result: the return type is not known");
        assert!(!got[6].live, "f9 is neither a result nor non-volatile");
    }

    #[test]
    fn ppc_operands() {
        use ppc_registers::registers;
        let x = |r: u32| 1u64 << r;
        let f = |r: u32| 1u64 << (32 + r);
        assert_eq!(registers(0xebc1_fff0), (x(1), x(30)), "ld r30,-16(r1)");
        assert_eq!(registers(0xf821_ffd1), (x(1), 0), "stdu r1,-48(r1): r1 read and written");
        assert_eq!(registers(0xc9c1_0008), (x(1), f(14)), "lfd f14,8(r1)");
        assert_eq!(registers(0x3860_0005), (0, x(3)), "li r3,5: RA 0 is the value 0");
        assert_eq!(registers(0xfc20_1090), (f(2), f(1)), "fmr f1,f2");
        assert_eq!(registers(0xff81_1000), (f(1) | f(2), 0), "fcmpu cr7,f1,f2 writes no FPR");
        assert_eq!(registers(0x4e80_0421), (x(12), 0), "bctrl: the callee's global entry reads r12");
        assert_eq!(registers(0x78c5_1800), (x(6), x(5)), "rotldi r5,r6,3");
        assert_eq!(registers(0x7c64_289e), (x(4) | x(5), x(3)), "iseleq r3,r4,r5");
        assert_eq!(registers(0x4400_0002).0, ppc_registers::EVERY, "sc: anything");
    }

    /// Frame-slot queries on x86_64 code at BASE.
    fn ask_slots(code: &[u8], queries: &[(u64, i64, u64)]) -> Vec<Answer> {
        let dec = Decoder::new(Isa::X86 { bits: 64 });
        let img = Image::from_parts(vec![(BASE, code)]);
        let ranges = [(BASE, BASE + code.len() as u64)];
        let steps = x86_steps(&dec, &img, &ranges);
        let asked: Vec<(u64, u64)> =
            queries.iter().map(|&(a, off, size)| (a, query::SLOT | (off as i32 as u32 as u64) | size << 32)).collect();
        slot_answers(&dec, &img, &ranges, &steps, &asked)
    }

    #[test]
    fn frame_slot_read_before_overwritten() {
        // 0: sub $0x18,%rsp  4: mov %rdi,0x8(%rsp)  9: mov 0x8(%rsp),%rax  e: call  13: movq $0,0x8(%rsp)
        // 1c: mov 0x8(%rsp),%rax  21: add $0x18,%rsp  25: ret — the slot is CFA-24
        let code = [
            0x48, 0x83, 0xec, 0x18, 0x48, 0x89, 0x7c, 0x24, 0x08, 0x48, 0x8b, 0x44, 0x24, 0x08, 0xe8, 0xfb, 0x00, 0x00,
            0x00, 0x48, 0xc7, 0x44, 0x24, 0x08, 0x00, 0x00, 0x00, 0x00, 0x48, 0x8b, 0x44, 0x24, 0x08, 0x48, 0x83, 0xc4,
            0x18, 0xc3,
        ];
        let got = ask_slots(&code, &[(BASE, -24, 8), (BASE + 9, -24, 8), (BASE + 0xe, -24, 8), (BASE + 0x21, -24, 8)]);
        assert_eq!((got[0].live, got[0].writer), (false, BASE + 4), "the first mov fills the slot");
        assert_eq!((got[1].live, got[1].reader), (true, BASE + 9), "the load reads it");
        assert_eq!(
            (got[2].live, got[2].writer),
            (false, BASE + 0x13),
            "a call does not read a frame that does not escape"
        );
        assert!(!got[3].live, "the frame is gone after the return");
        let wide = ask_slots(&code, &[(BASE + 0xe, -28, 8)]);
        assert!(wide[0].live, "an 8-byte store over half of the slot does not overwrite it whole");
    }

    #[test]
    fn frame_slot_escapes_and_rbp() {
        // 0: push %rbx  1: mov %rsp,%rbp  4: lea 0x8(%rbp),%rdi  8: movq $1,-0x10(%rbp)  10: call
        // 15: leave  16: ret
        let code = [
            0x53, 0x48, 0x89, 0xe5, 0x48, 0x8d, 0x7d, 0x08, 0x48, 0xc7, 0x45, 0xf0, 0x01, 0x00, 0x00, 0x00, 0xe8, 0xfb,
            0x00, 0x00, 0x00, 0xc9, 0xc3,
        ];
        let got = ask_slots(&code, &[(BASE, -16, 8), (BASE + 4, -32, 8), (BASE + 0x10, -32, 8), (BASE + 0x15, -32, 8)]);
        assert_eq!((got[0].live, got[0].writer), (false, BASE), "the push overwrites CFA-16");
        assert_eq!((got[1].live, got[1].writer), (false, BASE + 8), "the movq through %rbp fills CFA-32");
        assert_eq!((got[2].live, got[2].reader), (true, BASE + 0x10), "the frame escapes: the call may read it");
        assert!(!got[3].live, "leave and ret free the frame");
    }
}

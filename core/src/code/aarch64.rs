//! AArch64: fixed 32-bit little-endian words, classified by mask. Masks from the Arm ARM
//! (A64 encoding index) as the kernel spells them in arch/arm64/include/asm/insn.h
//! (`aarch64_insn_is_load_ex`, `_store_ex`, `_exclusive` …) and its kprobe decoder
//! (arch/arm64/kernel/probes/decode-insn.c) tests them.

use super::fingerprint::{Field, Fields, Pairs, Value};
use super::{flag, kind, sext, trap, word, Class, Decoder, Insn};

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, bytes: &[u8], address: u64, f: &mut F) {
    let mut words = bytes.chunks_exact(4);
    let mut at = address;
    for b in &mut words {
        let w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        let mut c = classify(w, at);
        let name = if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) { dec.relocate(&mut c, at, at + 4) } else { 0 };
        f(&Insn { address: at, size: 4, kind: c.kind, target: c.target, extra: c.extra, name });
        at = at.wrapping_add(4);
    }
    let rest = words.remainder().len();
    if rest > 0 {
        f(&Insn::new(at, rest as u8, kind::ERROR));
    }
}

/// The PC-relative word offsets, as bits of the instruction word.
const IMM26: u32 = 0x03FF_FFFF;
const IMM19: u32 = 0x00FF_FFE0;
const IMM14: u32 = 0x0007_FFE0;

/// `pc` plus the word offset held in the bits `field` of `w`, sign-extended.
fn rel(pc: u64, w: u32, field: u32) -> u64 {
    let imm = (w & field) >> field.trailing_zeros();
    pc.wrapping_add((sext(imm, field.count_ones()) << 2) as u64)
}

// (mask, value) of the forms both the classifier and the printer tell apart.

/// B 0x14000000 / BL 0x94000000, mask 0xFC000000: imm26 (insn.h `b`, `bl`).
const B_BL: (u32, u32) = (0x7C00_0000, 0x1400_0000);
/// B.cond 0x54000000 mask 0xFF000010 (and BC.cond, bit 4 set): imm19.
const B_COND: (u32, u32) = (0xFF00_0000, 0x5400_0000);
/// CBZ 0x34000000 / CBNZ 0x35000000, mask 0x7E000000: imm19.
const CBZ: (u32, u32) = (0x7E00_0000, 0x3400_0000);
/// TBZ 0x36000000 / TBNZ 0x37000000, mask 0x7E000000: imm14.
const TBZ: (u32, u32) = (0x7E00_0000, 0x3600_0000);
/// UDF #imm16: 0x00000000 mask 0xFFFF0000 (permanently undefined).
const UDF: (u32, u32) = (0xFFFF_0000, 0);
/// Exception generation, 0xD4000000 mask 0xFF000000, imm16 in bits 20:5; by opc and LL
/// (mask 0xFFE0001F): BRK, HLT, TCANCEL #imm16 (TME); the rest are SVC, HVC, SMC, DCPS.
const EXCEPTION: u32 = 0xFFE0_001F;
const BRK: u32 = 0xD420_0000;
const HLT: u32 = 0xD440_0000;
const TCANCEL: u32 = 0xD460_0000;

/// Rd (also Rt): bits 4:0.
fn rd(w: u32) -> u32 {
    w & 31
}

/// Rn: bits 9:5.
fn rn(w: u32) -> u32 {
    (w >> 5) & 31
}

fn is(w: u32, (mask, value): (u32, u32)) -> bool {
    w & mask == value
}

/// The direct branches: (the bits of the offset, kind, flags), or `None`.
fn branch(w: u32) -> Option<(u32, u8, u32)> {
    if is(w, B_BL) {
        let k = if w >> 31 != 0 { kind::CALL_DIRECT } else { kind::JUMP };
        return Some((IMM26, k, 0));
    }
    // cond 111x: always
    if is(w, B_COND) {
        let cond = if w & 0xE == 0xE { 0 } else { flag::CONDITIONAL };
        return Some((IMM19, kind::JUMP, cond));
    }
    if is(w, CBZ) {
        return Some((IMM19, kind::JUMP, flag::CONDITIONAL));
    }
    if is(w, TBZ) {
        return Some((IMM14, kind::JUMP, flag::CONDITIONAL));
    }
    None
}

/// Classifies one instruction word at `pc`.
pub fn classify(w: u32, pc: u64) -> Class {
    if let Some((field, k, extra)) = branch(w) {
        return Class::to(k, rel(pc, w, field), extra);
    }
    // Unconditional branch (register), 0xD6000000 mask 0xFE000000.
    if w & 0xFE00_0000 == 0xD600_0000 {
        return match w & 0xFFFF_FC1F {
            0xD61F_0000 => Class::of(kind::JUMP_INDIRECT), // BR
            0xD63F_0000 => Class::of(kind::CALL_INDIRECT), // BLR
            0xD65F_0000 => Class::of(kind::RETURN),        // RET
            // RETAA/RETAB 0xD65F0BFF mask 0xFFFFFBFF (insn.h `ret_auth`)
            _ if w & 0xFFFF_FBFF == 0xD65F_0BFF => Class::with(kind::RETURN, flag::AUTH),
            // BRAA/BRAB/BRAAZ/BRABZ 0xD61F0800 mask 0xFEFFF800 (`br_auth`)
            _ if w & 0xFEFF_F800 == 0xD61F_0800 => Class::with(kind::JUMP_INDIRECT, flag::AUTH),
            // BLRAA… 0xD63F0800 mask 0xFEFFF800 (`blr_auth`)
            _ if w & 0xFEFF_F800 == 0xD63F_0800 => Class::with(kind::CALL_INDIRECT, flag::AUTH),
            _ => Class::OTHER, // ERET, DRPS …
        };
    }
    if w & 0xFF00_0000 == 0xD400_0000 {
        let imm = (w >> 5) & 0xFFFF;
        return match w & EXCEPTION {
            BRK | HLT => Class::with(kind::TRAP, trap::BREAKPOINT | imm << 16),
            TCANCEL => Class::with(kind::TM_ABORT, imm),
            _ => Class::OTHER, // SVC, HVC, SMC, DCPS
        };
    }
    // System instructions, 0xD5000000 mask 0xFFC00000.
    if w & 0xFFC0_0000 == 0xD500_0000 {
        return match w {
            0xD503_201F => Class::of(kind::NOP),
            // BTI {c,j,jc}: HINT #32..#38 step 2, 0xD503241F mask 0xFFFFFF3F.
            _ if w & 0xFFFF_FF3F == 0xD503_241F => Class::with(kind::ENDBR, (w >> 6) & 3),
            0xD503_307F => Class::of(kind::TM_END), // TCOMMIT
            _ if w & 0xFFFF_FFE0 == 0xD523_3060 => Class::of(kind::TM_BEGIN), // TSTART Xt
            _ if w & 0xFFFF_FFE0 == 0xD523_3160 => Class::of(kind::TM_TEST), // TTEST Xt
            _ => Class::OTHER,
        };
    }
    if is(w, UDF) {
        return Class::with(kind::TRAP, trap::UNDEFINED | (w & 0xFFFF) << 16);
    }
    // Load/store exclusive and ordered, bits 29:24 = 001000.
    if w & 0x3F00_0000 == 0x0800_0000 {
        return exclusive(w);
    }
    // LSE atomic memory operations (LDADD, LDCLR, LDEOR, LDSET, LD[SU]MAX/MIN, SWP):
    // size 111 V=0 00 A R 1 Rs o3 opc 00 Rn Rt, mask 0x3F200C00 / 0x38200000;
    // o3=1 with opc≠000 is LDAPR (RCpc load), not an atomic.
    if w & 0x3F20_0C00 == 0x3820_0000 {
        let (o3, opc) = ((w >> 15) & 1, (w >> 12) & 7);
        if o3 == 1 && opc != 0 {
            return Class::OTHER;
        }
        let mut extra = 1 << (w >> 30);
        if w & (1 << 23) != 0 {
            extra |= flag::ACQUIRE;
        }
        if w & (1 << 22) != 0 {
            extra |= flag::RELEASE;
        }
        return Class::with(kind::LSE_ATOMIC, extra);
    }
    Class::OTHER
}

/// The load/store exclusive group (size 001000 o2 L o1 Rs o0 Rt2 Rn Rt), with the kernel's
/// masks: `aarch64_insn_is_exclusive` 0x3F800000/0x08000000, and 6.1's (pre-2025)
/// `is_load_ex` 0x3F400000/0x08400000 and `is_store_ex` 0x3F400000/0x08000000, which
/// ignore o2 and so also match LDAR/STLR/CAS.
fn exclusive(w: u32) -> Class {
    let size = w >> 30;
    let (o2, l, o1, o0) = ((w >> 23) & 1, (w >> 22) & 1, (w >> 21) & 1, (w >> 15) & 1);
    let mut extra = 0;
    if w & 0x3F40_0000 == 0x0840_0000 {
        extra |= flag::K_LOAD_EX;
    }
    if w & 0x3F40_0000 == 0x0800_0000 {
        extra |= flag::K_STORE_EX;
    }
    if w & 0x3F80_0000 == 0x0800_0000 {
        extra |= flag::K_EXCLUSIVE;
    }
    let acq = if l == 1 { flag::ACQUIRE } else { 0 };
    let relf = if o0 == 1 { flag::RELEASE } else { 0 };
    match (o2, o1) {
        // CASP{A,L,AL}: bit 31 = 0; L = acquire, o0 = release; a pair of 4- or 8-byte registers.
        (0, 1) if size >> 1 == 0 => Class::with(kind::LSE_ATOMIC, (8 << (size & 1)) | flag::PAIR | acq | relf | extra),
        // LDXR/LDAXR (L=1; o0 = acquire), STXR/STLXR (L=0; o0 = release), b/h/w/x; o1 = pair.
        (0, _) => {
            let bytes = if o1 == 1 { 2 << size } else { 1 << size };
            let pair = if o1 == 1 { flag::PAIR } else { 0 };
            if l == 1 {
                Class::with(kind::LL, bytes | pair | if o0 == 1 { flag::ACQUIRE } else { 0 } | extra)
            } else {
                Class::with(kind::SC, bytes | pair | relf | extra)
            }
        }
        // CAS{A,L,AL}{B,H}: L = acquire, o0 = release.
        (_, 1) => Class::with(kind::LSE_ATOMIC, (1 << size) | acq | relf | extra),
        // LDAR/LDLAR (L=1), STLR/STLLR (L=0).
        _ => {
            let order = if l == 1 { flag::ACQUIRE } else { flag::RELEASE };
            Class::with(kind::ORDERED, (1 << size) | order | extra)
        }
    }
}

/// The position-dependent fields of `w` at `pc`, for the fingerprint: branch offsets, `adr`,
/// the literal load, and the `adrp` + `add`/`ldr`/`str` `:lo12:` pair (A64 encoding index),
/// whose page `pairs` carries from the `adrp` to its partner.
pub(super) fn fields(w: u32, pc: u64, pairs: &mut Pairs) -> Fields {
    let (rd, rn) = (rd(w) as usize, rn(w) as usize);
    let mut out = Fields::default();
    if let Some((field, ..)) = branch(w) {
        out.push(Field { mask: field, value: Value::Pc(rel(pc, w, field)) });
        return out;
    }
    // adr, adrp: immhi (bits 23:5) : immlo (bits 30:29)
    const IMMHI_LO: u32 = 0x60FF_FFE0;
    let imm21 = || sext(((w >> 3) & 0x001F_FFFC) | ((w >> 29) & 3), 21);
    if w & 0x9F00_0000 == 0x1000_0000 {
        // adr: a byte offset
        out.push(Field { mask: IMMHI_LO, value: Value::Pc(pc.wrapping_add(imm21() as u64)) });
    } else if w & 0x9F00_0000 == 0x9000_0000 {
        // adrp: the page; its :lo12: partner names the target
        pairs.high[rd] = Some((pc & !0xFFF).wrapping_add((imm21() << 12) as u64));
        out.push(Field { mask: IMMHI_LO, value: Value::Hidden });
        return out;
    } else if w & 0x3B00_0000 == 0x1800_0000 {
        // ldr (literal): imm19 words from pc
        out.push(Field { mask: IMM19, value: Value::Pc(rel(pc, w, IMM19)) });
    } else if let Some(page) = pairs.high[rn] {
        const IMM12: u32 = 0x003F_FC00;
        let lo12 = u64::from((w >> 10) & 0xFFF);
        if w & 0xFF80_0000 == 0x9100_0000 {
            // add xd, xn, #:lo12:sym (64-bit, unshifted)
            out.push(Field { mask: IMM12, value: Value::Addr(page.wrapping_add(lo12)) });
        } else if w & 0x3B00_0000 == 0x3900_0000 {
            // ldr/str (unsigned offset): the offset is scaled by the access size
            let mut scale = w >> 30;
            if w & (1 << 26) != 0 && w & (1 << 23) != 0 && scale == 0 {
                scale = 4; // 128-bit SIMD&FP
            }
            out.push(Field { mask: IMM12, value: Value::Addr(page.wrapping_add(lo12 << scale)) });
        }
    }
    if writes_rd(w) {
        pairs.high[rd] = None;
    }
    out
}

/// Whether the instruction (probably) writes the register in bits 4:0: not a store, not a
/// branch or system instruction. Close enough to end an `adrp` pairing when its register is
/// reused.
fn writes_rd(w: u32) -> bool {
    let load_store = w & 0x0A00_0000 == 0x0800_0000;
    let branch_system = w & 0x1C00_0000 == 0x1400_0000;
    !(branch_system || (load_store && w & (1 << 22) == 0))
}

/// A mnemonic for what the classifier knows, `.inst 0x…` for the rest.
pub(super) fn text(bytes: &[u8], i: &Insn) -> String {
    let Some(w) = word(bytes, false) else { return "(bad)".into() };
    let t = i.target;
    let reg = rn(w);
    let x = |r: u32| if r == 31 { "xzr".to_string() } else { format!("x{r}") };
    match i.kind {
        kind::JUMP if is(w, B_COND) => format!("b.{} {t:#x}", COND[(w & 15) as usize]),
        kind::JUMP if is(w, CBZ) => {
            format!("{} {}, {t:#x}", if w & (1 << 24) != 0 { "cbnz" } else { "cbz" }, x(rd(w)))
        }
        kind::JUMP if is(w, TBZ) => {
            let bit = ((w >> 31) << 5) | ((w >> 19) & 31);
            format!("{} {}, #{bit}, {t:#x}", if w & (1 << 24) != 0 { "tbnz" } else { "tbz" }, x(rd(w)))
        }
        kind::JUMP => format!("b {t:#x}"),
        kind::CALL_DIRECT => format!("bl {t:#x}"),
        kind::RETURN if i.extra & flag::AUTH != 0 => if w & (1 << 10) != 0 { "retab" } else { "retaa" }.into(),
        kind::RETURN if reg == 30 => "ret".into(),
        kind::RETURN => format!("ret {}", x(reg)),
        kind::JUMP_INDIRECT => format!("br{} {}", if i.extra & flag::AUTH != 0 { "a*" } else { "" }, x(reg)),
        kind::CALL_INDIRECT => format!("blr{} {}", if i.extra & flag::AUTH != 0 { "a*" } else { "" }, x(reg)),
        kind::NOP => "nop".into(),
        kind::ENDBR => ["bti", "bti c", "bti j", "bti jc"][(i.extra & 3) as usize].into(),
        kind::TRAP if is(w, UDF) => format!("udf #{:#x}", i.extra >> 16),
        kind::TRAP if w & EXCEPTION == HLT => format!("hlt #{:#x}", i.extra >> 16),
        kind::TRAP => format!("brk #{:#x}", i.extra >> 16),
        kind::TM_BEGIN => format!("tstart {}", x(rd(w))),
        kind::TM_TEST => format!("ttest {}", x(rd(w))),
        kind::TM_END => "tcommit".into(),
        kind::TM_ABORT => format!("tcancel #{:#x}", i.extra),
        kind::LL | kind::SC | kind::ORDERED | kind::LSE_ATOMIC => format!("{} (.inst {w:#010x})", atomic_name(w, i)),
        _ => format!(".inst {w:#010x}"),
    }
}

const COND: [&str; 16] =
    ["eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", "nv"];

fn atomic_name(w: u32, i: &Insn) -> String {
    let suffix = match (w >> 30, i.extra & flag::PAIR != 0) {
        (0, false) => "b",
        (1, false) => "h",
        _ => "",
    };
    let (acq, rel) = (i.extra & flag::ACQUIRE != 0, i.extra & flag::RELEASE != 0);
    let pair = i.extra & flag::PAIR != 0;
    let base = match i.kind {
        kind::LL => format!("ld{}x{}", if acq { "a" } else { "" }, if pair { "p" } else { "r" }),
        kind::SC => format!("st{}x{}", if rel { "l" } else { "" }, if pair { "p" } else { "r" }),
        kind::ORDERED if acq => "ldar".into(),
        kind::ORDERED => "stlr".into(),
        _ if w & 0x3F00_0000 == 0x0800_0000 => {
            format!("cas{}{}{}", if pair { "p" } else { "" }, if acq { "a" } else { "" }, if rel { "l" } else { "" })
        }
        _ => {
            let op = if (w >> 15) & 1 == 1 {
                "swp"
            } else {
                ["ldadd", "ldclr", "ldeor", "ldset", "ldsmax", "ldsmin", "ldumax", "ldumin"][((w >> 12) & 7) as usize]
            };
            format!("{op}{}{}", if acq { "a" } else { "" }, if rel { "l" } else { "" })
        }
    };
    format!("{base}{suffix}")
}

// ---- the registers an instruction reads and writes, for the liveness (`liveness.rs`) ----
//
// A register set is a `u64`: bit n for xn/wn (n < 31), bit 31 for sp, bit 32 + n for vn (its
// b/h/s/d/q views alike). Register 31 of an operand is the zero register except where the
// Arm ARM says `Xn|SP`. What is not decoded here reads everything and writes nothing: the
// liveness then errs towards "the register is read".

/// Every register: the answer for an instruction not decoded.
pub(super) const EVERY: u64 = u64::MAX;
/// The stack pointer's bit.
pub(super) const SP: u64 = 1 << 31;
/// v0–v31.
pub(super) const VECTORS: u64 = 0xFFFF_FFFF << 32;

/// xn, nothing for 31 (xzr).
fn x(r: u32) -> u64 {
    if r == 31 {
        0
    } else {
        1 << r
    }
}

/// xn, sp for 31.
fn xsp(r: u32) -> u64 {
    1 << r
}

fn v(r: u32) -> u64 {
    1 << (32 + r)
}

/// A register pair (CASP, whose first register is even).
fn x2(r: u32) -> u64 {
    x(r) | x(r + 1)
}

/// Rm: bits 20:16 (also Rs).
fn rm(w: u32) -> u32 {
    (w >> 16) & 31
}

/// Ra, Rt2: bits 14:10.
fn ra(w: u32) -> u32 {
    (w >> 10) & 31
}

/// The registers `w` reads and those it writes whole, by the A64 encoding groups (op0, bits
/// 28:25). Flags (NZCV) are not tracked. A call's and a return's ABI effects are the
/// liveness's; here only the operands the encoding names.
pub(super) fn registers(w: u32) -> (u64, u64) {
    let (uses, defs) = match (w >> 25) & 0xF {
        0b1000 | 0b1001 => dp_immediate(w),
        0b1010 | 0b1011 => branch_system(w),
        0b0101 | 0b1101 => dp_register(w),
        // SIMD & FP data processing: read as every vector and the general register in Rn
        // (SCVTF, FMOV, DUP, INS from one); the general registers it writes (FMOV, FCVTZS,
        // UMOV to one) not counted as written
        0b0111 | 0b1111 => (VECTORS | x(rn(w)), 0),
        op0 if op0 & 0b0101 == 0b0100 => load_store(w),
        _ => (EVERY, 0),
    };
    (uses, defs & !uses)
}

/// Data processing, immediate (op0 100x).
fn dp_immediate(w: u32) -> (u64, u64) {
    let (d, n) = (rd(w), rn(w));
    let opc = (w >> 29) & 3;
    match (w >> 23) & 7 {
        0 | 1 => (0, x(d)), // ADR, ADRP
        // ADD/ADDS/SUB/SUBS #imm: Xn|SP; Xd|SP unless flags are set (S, bit 29)
        2 => (xsp(n), if opc & 1 == 1 { x(d) } else { xsp(d) }),
        // logical #imm: Xd|SP but for ANDS (opc 11)
        4 => (x(n), if opc == 3 { x(d) } else { xsp(d) }),
        // MOVN, MOVZ write Xd; MOVK (opc 11) keeps the rest of it
        5 if opc == 3 => (x(d), x(d)),
        5 => (0, x(d)),
        // SBFM, UBFM; BFM (opc 01) keeps the rest of Xd
        6 => (x(n) | if opc == 1 { x(d) } else { 0 }, x(d)),
        7 => (x(n) | x(rm(w)), x(d)), // EXTR
        _ => (EVERY, 0),              // with tags (MTE)
    }
}

/// Branches, exception generation and system instructions (op0 101x).
fn branch_system(w: u32) -> (u64, u64) {
    let (t, n) = (rd(w), rn(w));
    if is(w, CBZ) || is(w, TBZ) {
        return (x(t), 0);
    }
    if is(w, B_BL) || is(w, B_COND) {
        return (0, 0);
    }
    // BR, BLR, RET and their authenticating forms (bit 11), whose modifier is in bits 4:0
    // (Xm|SP; RETAA: sp and x30)
    if w & 0xFE1F_F000 == 0xD61F_0000 && matches!((w >> 21) & 0xF, 0 | 1 | 2 | 8 | 9) {
        let auth = if w & (1 << 11) != 0 { xsp(t) | x(30) } else { 0 };
        return (x(n) | auth, 0);
    }
    if w & 0xFF00_0000 == 0xD400_0000 {
        // BRK, HLT (a BUG or WARN reads registers to print them, not to change the path)
        // and SVC, HVC, SMC (a call into the kernel or firmware: any register)
        return if matches!(w & EXCEPTION, BRK | HLT) { (0, 0) } else { (EVERY, 0) };
    }
    if w & 0xFFC0_0000 == 0xD500_0000 {
        // hints: NOP, BTI; PACIASP, AUTIASP… sign or check x30 with sp, x17 with x16
        if w & 0xFFFF_F01F == 0xD503_201F {
            let plain = w == 0xD503_201F || w & 0xFFFF_FF3F == 0xD503_241F;
            return if plain { (0, 0) } else { (x(16) | x(17) | x(30) | SP, 0) };
        }
        // MRS, SYSL (L, bit 21) write Xt; MSR, SYS read it; barriers name xzr
        return if w & (1 << 21) != 0 { (0, x(t)) } else { (x(t), 0) };
    }
    if is(w, UDF) {
        return (0, 0);
    }
    (EVERY, 0)
}

/// Data processing, register (op0 x101).
fn dp_register(w: u32) -> (u64, u64) {
    let (d, n, m) = (rd(w), rn(w), rm(w));
    if w & (1 << 28) == 0 {
        // ADD/SUB (extended register): Xn|SP, and Xd|SP unless flags are set
        if w & (1 << 24) != 0 && w & (1 << 21) != 0 {
            return (xsp(n) | x(m), if w & (1 << 29) != 0 { x(d) } else { xsp(d) });
        }
        // logical and ADD/SUB (shifted register)
        return (x(n) | x(m), x(d));
    }
    if w & (1 << 24) != 0 {
        return (x(n) | x(m) | x(ra(w)), x(d)); // MADD, MSUB, SMADDL, UMULH …
    }
    match (w >> 21) & 7 {
        // ADC, SBC; RMIF, SETF (flags only)
        0 if (w >> 10) & 0x3F == 0 => (x(n) | x(m), x(d)),
        0 => (x(n), 0),
        // CCMN, CCMP: register (bit 11 clear) or immediate; flags only
        2 => (x(n) | if w & (1 << 11) == 0 { x(m) } else { 0 }, 0),
        4 => (x(n) | x(m), x(d)), // CSEL, CSINC, CSINV, CSNEG
        // two sources: UDIV, SDIV, LSLV …, CRC32*, PACGA
        6 if w & (1 << 30) == 0 => (xsp(n) | x(m), x(d)),
        // one source: RBIT, REV, CLZ, CLS; PAC*/AUT* (opcode2 = 1) sign Xd with Xn|SP
        6 if m != 0 => (xsp(n) | x(d), x(d)),
        6 => (x(n), x(d)),
        _ => (EVERY, 0),
    }
}

/// Loads and stores (op0 x1x0).
fn load_store(w: u32) -> (u64, u64) {
    let (t, n, m, t2) = (rd(w), rn(w), rm(w), ra(w));
    let vector = w & (1 << 26) != 0;
    let reg = |r: u32| if vector { v(r) } else { x(r) };
    if w & 0x3F00_0000 == 0x0800_0000 {
        let (o2, l, o1) = ((w >> 23) & 1, (w >> 22) & 1, (w >> 21) & 1);
        return match (o2, o1) {
            (0, 1) if w >> 31 == 0 => (x2(m) | x2(t) | xsp(n), x2(m)), // CASP: Rs pair compared and loaded
            (0, _) if l == 1 => (xsp(n), x(t) | if o1 == 1 { x(t2) } else { 0 }), // LDXR, LDXP
            (0, _) => (xsp(n) | x(t) | if o1 == 1 { x(t2) } else { 0 }, x(m)), // STXR, STXP: status in Ws
            (_, 1) => (xsp(n) | x(m) | x(t), x(m)),                    // CAS: Rs compared and loaded
            _ if l == 1 => (xsp(n), x(t)),                             // LDAR, LDLAR
            _ => (xsp(n) | x(t), 0),                                   // STLR, STLLR
        };
    }
    // load register (literal); PRFM (opc 11)
    if w & 0x3B00_0000 == 0x1800_0000 {
        return if !vector && w >> 30 == 3 { (0, 0) } else { (0, reg(t)) };
    }
    // LDP, STP, LDNP, STNP, LDPSW: writeback with post- and pre-index (bit 23)
    if w & 0x3A00_0000 == 0x2800_0000 {
        let back = if w & (1 << 23) != 0 { xsp(n) } else { 0 };
        let pair = reg(t) | reg(t2);
        return if w & (1 << 22) != 0 { (xsp(n), pair | back) } else { (xsp(n) | pair, back) };
    }
    // LSE atomics: Rs is the operand, Rt gets the old value; LDAPR (o3 with opc ≠ 000)
    if w & 0x3F20_0C00 == 0x3820_0000 {
        let ldapr = (w >> 15) & 1 == 1 && (w >> 12) & 7 != 0;
        return if ldapr { (xsp(n), x(t)) } else { (xsp(n) | x(m), x(t)) };
    }
    // load/store register: unsigned offset (bits 25:24 = 01) or the bits-25:24 = 00 forms
    let unsigned = w & 0x3B00_0000 == 0x3900_0000;
    if !unsigned && w & 0x3B00_0000 != 0x3800_0000 {
        // SIMD structures (LD1…ST4): every vector, and Rm of a post-index by register
        if w & 0xBF00_0000 == 0x0C00_0000 {
            return (VECTORS | xsp(n) | if w & (1 << 23) != 0 { x(m) } else { 0 }, 0);
        }
        return (EVERY, 0);
    }
    let (size, opc, op) = (w >> 30, (w >> 22) & 3, (w >> 10) & 3);
    let wide = w & (1 << 21) != 0;
    let (index, back) = match (unsigned, wide, op) {
        (true, ..) => (0, 0),
        (false, false, 1 | 3) => (0, xsp(n)), // post-index, pre-index
        (false, false, _) => (0, 0),          // unscaled, unprivileged
        (false, true, 2) => (x(m), 0),        // register offset
        // LDRAA, LDRAB: writeback with bit 11
        (false, true, 1 | 3) if !vector && size == 3 => {
            return (xsp(n), x(t) | if op == 3 { xsp(n) } else { 0 });
        }
        _ => return (EVERY, 0),
    };
    let load = if vector { opc & 1 == 1 } else { opc != 0 };
    if !vector && size == 3 && opc == 2 {
        return (xsp(n) | index, back); // PRFM
    }
    if load {
        (xsp(n) | index, reg(t) | back)
    } else {
        (xsp(n) | index | reg(t), back)
    }
}

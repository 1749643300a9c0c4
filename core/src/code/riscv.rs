//! RISC-V (RV64/RV32 with C): 16-bit parcels, little-endian; the low bits of the first
//! parcel give the length (unprivileged ISA §1.5). Encodings from the unprivileged ISA
//! (RV32I/RV64I base, "C" and "A" chapters) and binutils' include/opcode/riscv-opc.h.

use super::fingerprint::{Few, Field, Fields, Pairs, Value};
use super::{flag, kind, sext, trap, word, Class, Decoder, Insn, NO_TARGET};

const RA: u32 = 1;
const T0: u32 = 5;

/// The immediates, as bits of the word: U (`auipc`, also J's bits), I, S (also B's bits);
/// of a compressed parcel, CJ (`c.j`/`c.jal`) and CB (`c.beqz`/`c.bnez`).
const U_IMM: u32 = 0xFFFF_F000;
const J_IMM: u32 = U_IMM;
const I_IMM: u32 = 0xFFF0_0000;
const S_IMM: u32 = 0xFE00_0F80;
const B_IMM: u32 = S_IMM;
const CJ_IMM: u32 = 0x1FFC;
const CB_IMM: u32 = 0x1C7C;

fn rd(w: u32) -> u32 {
    (w >> 7) & 31
}

fn rs1(w: u32) -> u32 {
    (w >> 15) & 31
}

fn i_imm(w: u32) -> i64 {
    sext(w >> 20, 12)
}

fn s_imm(w: u32) -> i64 {
    sext(((w >> 25) << 5) | ((w >> 7) & 31), 12)
}

/// What `auipc` at `pc` puts in rd: pc + the U-immediate.
fn auipc_value(w: u32, pc: u64) -> u64 {
    pc.wrapping_add(sext(w & U_IMM, 32) as u64)
}

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, xlen: u32, bytes: &[u8], address: u64, f: &mut F) {
    let mut at = 0usize;
    // The last instruction's AUIPC: (its address, rd, pc + imm) — an AUIPC+JALR pair is a
    // direct call (`call`) or jump (`tail`) to pc + hi + lo.
    let mut auipc: Option<(u64, u32, u64)> = None;
    while at + 2 <= bytes.len() {
        let pc = address.wrapping_add(at as u64);
        let lo = u16::from_le_bytes([bytes[at], bytes[at + 1]]);
        let pair = auipc.take();
        let (size, mut c, from) = if lo & 3 != 3 {
            let (c, paired) = classify16(lo, pc, xlen, pair);
            (2usize, c, if paired { pair.map_or(pc, |p| p.0) } else { pc })
        } else if lo & 0x1C != 0x1C {
            let Some(w) = word(&bytes[at..], false) else { break };
            if w & 0x7F == 0x17 && rd(w) != 0 {
                auipc = Some((pc, rd(w), auipc_value(w, pc)));
            }
            let (c, paired) = classify32(w, pc, pair);
            (4, c, if paired { pair.map_or(pc, |p| p.0) } else { pc })
        } else if lo & 0x3F == 0x1F {
            (6, Class::OTHER, pc) // 48-bit
        } else if lo & 0x7F == 0x3F {
            (8, Class::OTHER, pc) // 64-bit
        } else {
            f(&Insn::new(pc, 2, kind::ERROR));
            at += 2;
            continue;
        };
        if at + size > bytes.len() {
            break;
        }
        let end = pc.wrapping_add(size as u64);
        let name = if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) { dec.relocate(&mut c, from, end) } else { 0 };
        f(&Insn { address: pc, size: size as u8, kind: c.kind, target: c.target, extra: c.extra, name });
        at += size;
    }
    if at < bytes.len() {
        f(&Insn::new(address.wrapping_add(at as u64), (bytes.len() - at) as u8, kind::ERROR));
    }
}

/// An indirect jump through `rs1` + `imm`: paired with the AUIPC just before it that set
/// `rs1`, a direct jump or call. Returns the class and whether it was paired.
fn jump_register(rd: u32, rs1: u32, imm: i64, pair: Option<(u64, u32, u64)>) -> (Class, bool) {
    let link = if rd == T0 { flag::ALT_LINK } else { 0 };
    if let Some((_, _, base)) = pair.filter(|p| p.1 == rs1) {
        let t = base.wrapping_add(imm as u64);
        return (Class::to(if rd == 0 { kind::JUMP } else { kind::CALL_DIRECT }, t, link), true);
    }
    let c = match (rd, rs1) {
        // ret = jalr x0, 0(ra); jr t0 returns from a t0-linked (millicode) call.
        (0, RA) => Class::of(kind::RETURN),
        (0, T0) => Class::with(kind::RETURN, flag::ALT_LINK),
        (0, _) => Class::of(kind::JUMP_INDIRECT),
        _ => Class::with(kind::CALL_INDIRECT, link),
    };
    (c, false)
}

/// Classifies a 32-bit instruction at `pc`; `pair` is the AUIPC just before it, if any.
pub fn classify32(w: u32, pc: u64, pair: Option<(u64, u32, u64)>) -> (Class, bool) {
    let (rd, rs1) = (rd(w), rs1(w));
    let c = match w & 0x7F {
        // JAL: J-immediate imm[20|10:1|11|19:12]; rd = x0 is `j`, ra/t0 a call.
        0x6F => {
            let imm =
                ((w >> 31) << 20) | (((w >> 21) & 0x3FF) << 1) | (((w >> 20) & 1) << 11) | (((w >> 12) & 0xFF) << 12);
            let t = pc.wrapping_add(sext(imm, 21) as u64);
            let link = if rd == T0 { flag::ALT_LINK } else { 0 };
            Class::to(if rd == 0 { kind::JUMP } else { kind::CALL_DIRECT }, t, link)
        }
        // JALR (funct3 0): I-immediate.
        0x67 if (w >> 12) & 7 == 0 => return jump_register(rd, rs1, i_imm(w), pair),
        // BRANCH: B-immediate imm[12|10:5] … imm[4:1|11].
        0x63 => {
            let imm = ((w >> 31) << 12) | (((w >> 25) & 0x3F) << 5) | (((w >> 8) & 0xF) << 1) | (((w >> 7) & 1) << 11);
            Class::to(kind::JUMP, pc.wrapping_add(sext(imm, 13) as u64), flag::CONDITIONAL)
        }
        // AUIPC x0 is Zicfilp's `lpad` landing pad.
        0x17 if rd == 0 => Class::of(kind::ENDBR),
        0x2F => amo(w),
        // EBREAK 0x00100073; UNIMP = csrrw x0, cycle, x0 = 0xC0001073.
        0x73 if w == 0x0010_0073 => Class::with(kind::TRAP, trap::BREAKPOINT),
        0x73 if w == 0xC000_1073 => Class::with(kind::TRAP, trap::UNDEFINED),
        // addi x0, x0, 0
        0x13 if w == 0x13 => Class::of(kind::NOP),
        _ => Class::OTHER,
    };
    (c, false)
}

/// The "A" extension (opcode AMO 0x2F): LR/SC by riscv-opc.h's masks, the rest AMO*.
fn amo(w: u32) -> Class {
    let funct3 = (w >> 12) & 7;
    let mut extra = if funct3 <= 4 { 1 << funct3 } else { 0 };
    if w & (1 << 26) != 0 {
        extra |= flag::ACQUIRE;
    }
    if w & (1 << 25) != 0 {
        extra |= flag::RELEASE;
    }
    // LR.W 0x1000202F / LR.D 0x1000302F, mask 0xF9F0707F (aq/rl ignored).
    if w & 0xF9F0_707F == 0x1000_202F || w & 0xF9F0_707F == 0x1000_302F {
        return Class::with(kind::LL, extra);
    }
    // SC.W 0x1800202F / SC.D 0x1800302F, mask 0xF800707F.
    if w & 0xF800_707F == 0x1800_202F || w & 0xF800_707F == 0x1800_302F {
        return Class::with(kind::SC, extra);
    }
    match w >> 27 {
        0x02 | 0x03 => Class::OTHER, // LR/SC of other widths: not in the A extension
        _ => Class::with(kind::LSE_ATOMIC, extra),
    }
}

/// Classifies a 16-bit (C extension) instruction at `pc`.
pub fn classify16(h: u16, pc: u64, xlen: u32, pair: Option<(u64, u32, u64)>) -> (Class, bool) {
    let h = u32::from(h);
    let funct3 = h >> 13;
    let c = match (h & 3, funct3) {
        // The all-zero parcel is defined illegal (c.unimp).
        _ if h == 0 => Class::with(kind::TRAP, trap::UNDEFINED),
        _ if h == 1 => Class::of(kind::NOP), // c.nop
        // C.J (101) / C.JAL (001, RV32 only; RV64's is C.ADDIW): CJ-immediate.
        (1, 5) => Class::to(kind::JUMP, pc.wrapping_add(cj(h) as u64), 0),
        (1, 1) if xlen == 32 => Class::to(kind::CALL_DIRECT, pc.wrapping_add(cj(h) as u64), 0),
        // C.BEQZ (110) / C.BNEZ (111): CB-immediate imm[8|4:3] … imm[7:6|2:1|5].
        (1, 6 | 7) => {
            let imm = (((h >> 12) & 1) << 8)
                | (((h >> 10) & 3) << 3)
                | (((h >> 5) & 3) << 6)
                | (((h >> 3) & 3) << 1)
                | (((h >> 2) & 1) << 5);
            Class::to(kind::JUMP, pc.wrapping_add(sext(imm, 9) as u64), flag::CONDITIONAL)
        }
        // Quadrant 2, funct3 100: C.JR / C.MV (bit 12 = 0), C.EBREAK / C.JALR / C.ADD.
        (2, 4) => {
            let (rs1, rs2, b12) = ((h >> 7) & 31, (h >> 2) & 31, (h >> 12) & 1);
            match (b12, rs1, rs2) {
                (0, r, 0) if r != 0 => return jump_register(0, r, 0, pair),
                (1, 0, 0) => Class::with(kind::TRAP, trap::BREAKPOINT),
                (1, r, 0) => return jump_register(RA, r, 0, pair),
                _ => Class::OTHER,
            }
        }
        _ => Class::OTHER,
    };
    (c, false)
}

/// The CJ-format offset: imm[11|4|9:8|10|6|7|3:1|5] in bits 12..2.
fn cj(h: u32) -> i64 {
    let imm = (((h >> 12) & 1) << 11)
        | (((h >> 11) & 1) << 4)
        | (((h >> 9) & 3) << 8)
        | (((h >> 8) & 1) << 10)
        | (((h >> 7) & 1) << 6)
        | (((h >> 6) & 1) << 7)
        | (((h >> 3) & 7) << 1)
        | (((h >> 2) & 1) << 5);
    sext(imm, 12)
}

/// The position-dependent fields of the instruction `raw` at `pc`, for the fingerprint:
/// `jal`, branches, `c.j`/`c.jal`, `c.beqz`/`c.bnez`, and the `auipc` pair with the I- or
/// S-type instruction that adds its `%pcrel_lo` (`jalr`, `addi`, loads, stores), whose high
/// part `pairs` carries from the `auipc`.
pub(super) fn fields(raw: &[u8], pc: u64, xlen: u32, pairs: &mut Pairs) -> Fields {
    if raw.len() == 2 {
        let h = u16::from_le_bytes([raw[0], raw[1]]);
        let (c, _) = classify16(h, pc, xlen, None);
        let h = u32::from(h);
        // Any other compressed instruction may write rd (bits 11:7) or rd' (bits 4:2).
        pairs.high[rd(h) as usize] = None;
        pairs.high[(8 + ((h >> 2) & 7)) as usize] = None;
        if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) && c.target != NO_TARGET {
            let mask = if h & 0xC000 == 0xC000 { CB_IMM } else { CJ_IMM }; // c.beqz/c.bnez : c.j/c.jal
            return Few::of(Field { mask, value: Value::Pc(c.target) });
        }
        return Fields::default();
    }
    let Some(w) = word(raw, false) else { return Fields::default() };
    let (opcode, rd, rs1) = (w & 0x7F, rd(w) as usize, rs1(w) as usize);
    let mut out = Fields::default();
    match opcode {
        0x6F => out.push(Field { mask: J_IMM, value: Value::Pc(classify32(w, pc, None).0.target) }),
        0x63 => out.push(Field { mask: B_IMM, value: Value::Pc(classify32(w, pc, None).0.target) }),
        0x17 if rd != 0 => {
            pairs.high[rd] = Some(auipc_value(w, pc));
            out.push(Field { mask: U_IMM, value: Value::Hidden });
            return out;
        }
        // I-type: jalr, addi, loads, FP loads
        0x67 | 0x03 | 0x07 | 0x13 if opcode != 0x13 || (w >> 12) & 7 == 0 => {
            if let Some(hi) = pairs.high[rs1] {
                out.push(Field { mask: I_IMM, value: Value::Addr(hi.wrapping_add(i_imm(w) as u64)) });
            }
        }
        // S-type: stores, FP stores
        0x23 | 0x27 => {
            if let Some(hi) = pairs.high[rs1] {
                out.push(Field { mask: S_IMM, value: Value::Addr(hi.wrapping_add(s_imm(w) as u64)) });
            }
        }
        _ => {}
    }
    // Branches and stores write no register.
    if !matches!(opcode, 0x63 | 0x23 | 0x27) {
        pairs.high[rd] = None;
    }
    out
}

const ABI: [&str; 32] = [
    "zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5", "a6", "a7", "s2",
    "s3", "s4", "s5", "s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
];

/// A mnemonic for what the classifier knows, `.insn 0x…` for the rest.
pub(super) fn text(bytes: &[u8], i: &Insn) -> String {
    let t = i.target;
    let raw = match i.size {
        2 => u32::from(u16::from_le_bytes([bytes[0], bytes[1]])),
        4 => u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]),
        _ => return format!(".insn {}-byte", i.size),
    };
    let rd = ABI[rd(raw) as usize];
    let rs1 = ABI[rs1(raw) as usize];
    match i.kind {
        kind::RETURN if i.extra & flag::ALT_LINK != 0 => "jr t0".into(),
        kind::RETURN => "ret".into(),
        kind::JUMP if i.extra & flag::CONDITIONAL != 0 => format!("b* {t:#x}"),
        kind::JUMP => format!("j {t:#x}"),
        kind::CALL_DIRECT if i.size == 4 && raw & 0x7F == 0x6F => format!("jal {rd},{t:#x}"),
        kind::CALL_DIRECT => format!("jalr (auipc pair) {t:#x}"),
        kind::JUMP_INDIRECT if i.size == 2 => format!("jr {rd}"),
        kind::JUMP_INDIRECT => format!("jr {rs1}"),
        kind::CALL_INDIRECT if i.size == 2 => format!("jalr {rd}"),
        kind::CALL_INDIRECT => format!("jalr {rd},{rs1}"),
        kind::NOP => "nop".into(),
        kind::TRAP if i.extra & 0xff == trap::BREAKPOINT => "ebreak".into(),
        kind::TRAP => "unimp".into(),
        kind::ENDBR => "lpad".into(),
        kind::LL | kind::SC | kind::LSE_ATOMIC => {
            let w = if (raw >> 12) & 7 == 3 { "d" } else { "w" };
            let op = match raw >> 27 {
                0x02 => "lr",
                0x03 => "sc",
                0x01 => "amoswap",
                0x00 => "amoadd",
                0x04 => "amoxor",
                0x0C => "amoand",
                0x08 => "amoor",
                0x10 => "amomin",
                0x14 => "amomax",
                0x18 => "amominu",
                0x1C => "amomaxu",
                0x05 => "amocas",
                _ => "amo?",
            };
            let ord = match (i.extra & flag::ACQUIRE != 0, i.extra & flag::RELEASE != 0) {
                (true, true) => ".aqrl",
                (true, false) => ".aq",
                (false, true) => ".rl",
                _ => "",
            };
            format!("{op}.{w}{ord} {rd},({rs1})")
        }
        _ if i.size == 2 => format!(".insn {raw:#06x}"),
        _ => format!(".insn {raw:#010x}"),
    }
}

// ---- the registers an instruction reads and writes, for the liveness (`liveness.rs`) ----
//
// A register set is a `u64` whose bit n is DWARF register n (RISC-V ELF psABI, "DWARF Register
// Numbers"): x1–x31 in bits 1–31 (x0, always zero, is never set), f0–f31 in bits 32–63. What is
// not decoded here (vector, 48- and 64-bit encodings, reserved ones) reads everything and
// writes nothing: the liveness then errs towards "the register is read".

/// Every register: the answer for an instruction not decoded.
pub(super) const EVERY: u64 = !1;
const SP: u32 = 2;

/// xn; nothing for x0.
fn x(r: u32) -> u64 {
    (1u64 << r) & !1
}

fn f(r: u32) -> u64 {
    1 << (32 + r)
}

fn rs2(w: u32) -> u32 {
    (w >> 20) & 31
}

/// The registers the instruction `raw` (2 or 4 bytes) reads and those it writes whole.
pub(super) fn registers(raw: &[u8]) -> (u64, u64) {
    let (uses, defs) = match *raw {
        [a, b] => compressed(u32::from(u16::from_le_bytes([a, b]))),
        [a, b, c, d] => full(u32::from_le_bytes([a, b, c, d])),
        _ => (EVERY, 0),
    };
    (uses, defs & !uses)
}

/// A 32-bit instruction, by its major opcode (unprivileged ISA, "RV32/64G Instruction Set
/// Listings").
fn full(w: u32) -> (u64, u64) {
    let (d, s1, s2, funct3) = (rd(w), rs1(w), rs2(w), (w >> 12) & 7);
    match w & 0x7F {
        0x37 | 0x17 | 0x6F => (0, x(d)),                         // LUI, AUIPC, JAL
        0x67 | 0x03 | 0x13 | 0x1B => (x(s1), x(d)),              // JALR, loads, OP-IMM(-32)
        0x63 | 0x23 => (x(s1) | x(s2), 0),                       // branches, stores
        0x33 | 0x3B => (x(s1) | x(s2), x(d)),                    // OP, OP-32 (M included)
        0x07 if (1..=4).contains(&funct3) => (x(s1), f(d)),      // FLH/FLW/FLD/FLQ
        0x27 if (1..=4).contains(&funct3) => (x(s1) | f(s2), 0), // FSH/FSW/FSD/FSQ
        0x0F => (0, 0),                                          // FENCE, FENCE.I
        0x2F => atomic(w),
        0x43 | 0x47 | 0x4B | 0x4F => (f(s1) | f(s2) | f(w >> 27), f(d)), // FMADD … FNMADD
        0x53 => op_fp(w),
        0x73 => system(w),
        _ => (EVERY, 0),
    }
}

/// LR, SC and the AMOs: rs1 the address, rs2 the operand (LR has none), rd the old value;
/// AMOCAS (funct5 00101) compares rd too.
fn atomic(w: u32) -> (u64, u64) {
    let (d, s1, s2) = (rd(w), rs1(w), rs2(w));
    match w >> 27 {
        0x02 => (x(s1), x(d)),
        0x05 => (x(s1) | x(s2) | x(d), x(d)),
        _ => (x(s1) | x(s2), x(d)),
    }
}

/// OP-FP by funct5: which side of each operand is a general register.
fn op_fp(w: u32) -> (u64, u64) {
    let (d, s1, s2) = (rd(w), rs1(w), rs2(w));
    match w >> 27 {
        0x00..=0x05 => (f(s1) | f(s2), f(d)), // FADD, FSUB, FMUL, FDIV, FSGNJ*, FMIN/FMAX
        0x08 | 0x0B => (f(s1), f(d)),         // FCVT between formats, FSQRT
        0x14 => (f(s1) | f(s2), x(d)),        // FEQ, FLT, FLE
        0x18 | 0x1C => (f(s1), x(d)),         // FCVT to an integer, FMV.X.*, FCLASS
        0x1A | 0x1E => (x(s1), f(d)),         // FCVT from an integer, FMV.*.X
        _ => (EVERY, 0),
    }
}

/// SYSTEM: the CSR instructions read rs1 (not the immediate forms) and write rd; EBREAK reads
/// nothing that changes the path (a BUG or WARN prints registers); ECALL, xRET, WFI … anything.
fn system(w: u32) -> (u64, u64) {
    match (w >> 12) & 7 {
        1..=3 => (x(rs1(w)), x(rd(w))),
        5..=7 => (0, x(rd(w))),
        0 if w == 0x0010_0073 => (0, 0),
        _ => (EVERY, 0),
    }
}

/// A compressed instruction ("C" extension, RV64), by quadrant and funct3.
fn compressed(h: u32) -> (u64, u64) {
    let r = (h >> 7) & 31; // rd/rs1 (CR, CI)
    let s2 = (h >> 2) & 31; // rs2 (CR, CSS)
    let r1p = 8 + ((h >> 7) & 7); // rs1'/rd' (CL, CS, CB, CA)
    let r2p = 8 + ((h >> 2) & 7); // rd'/rs2' (CL, CS, CA, CIW)
    let sp = x(SP);
    match (h & 3, h >> 13) {
        (0, 0) if h == 0 => (0, 0),                                // c.unimp
        (0, 0) => (sp, x(r2p)),                                    // C.ADDI4SPN
        (0, 1) => (x(r1p), f(r2p)),                                // C.FLD
        (0, 2 | 3) => (x(r1p), x(r2p)),                            // C.LW, C.LD
        (0, 5) => (x(r1p) | f(r2p), 0),                            // C.FSD
        (0, 6 | 7) => (x(r1p) | x(r2p), 0),                        // C.SW, C.SD
        (1, 0 | 1) => (x(r), x(r)),                                // C.ADDI (C.NOP), C.ADDIW
        (1, 2) => (0, x(r)),                                       // C.LI
        (1, 3) if r == SP => (sp, sp),                             // C.ADDI16SP
        (1, 3) => (0, x(r)),                                       // C.LUI
        (1, 4) if (h >> 10) & 3 == 3 => (x(r1p) | x(r2p), x(r1p)), // C.SUB … C.ADDW
        (1, 4) => (x(r1p), x(r1p)),                                // C.SRLI, C.SRAI, C.ANDI
        (1, 5) => (0, 0),                                          // C.J
        (1, 6 | 7) => (x(r1p), 0),                                 // C.BEQZ, C.BNEZ
        (2, 0) => (x(r), x(r)),                                    // C.SLLI
        (2, 1) => (sp, f(r)),                                      // C.FLDSP
        (2, 2 | 3) => (sp, x(r)),                                  // C.LWSP, C.LDSP
        (2, 4) => match ((h >> 12) & 1, r, s2) {
            (0, _, 0) => (x(r), 0),     // C.JR
            (0, ..) => (x(s2), x(r)),   // C.MV
            (1, 0, 0) => (0, 0),        // C.EBREAK
            (1, _, 0) => (x(r), x(RA)), // C.JALR
            _ => (x(r) | x(s2), x(r)),  // C.ADD
        },
        (2, 5) => (sp | f(s2), 0),     // C.FSDSP
        (2, 6 | 7) => (sp | x(s2), 0), // C.SWSP, C.SDSP
        _ => (EVERY, 0),
    }
}

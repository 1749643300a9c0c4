//! s390x (z/Architecture): big-endian instructions of 2, 4 or 6 bytes, the length given by
//! the two top bits of the first byte (00: 2, 01 and 10: 4, 11: 6; Principles of Operation,
//! "Instruction formats"), so every halfword-aligned byte string walks without a decode
//! error. Opcodes as binutils' opcodes/s390-opc.txt and the kernel's
//! arch/s390/tools/opcodes.txt name them; the kernel's kprobe checks (probes.c
//! `probe_is_prohibited_opcode`) read the same first halfwords.

use super::fingerprint::{Field, Fields, Value};
use super::{flag, kind, sext, trap, Class, Decoder, Insn};

/// The instruction length from its first byte.
pub fn length(first: u8) -> usize {
    match first >> 6 {
        0 => 2,
        1 | 2 => 4,
        _ => 6,
    }
}

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, bytes: &[u8], address: u64, f: &mut F) {
    let mut at = 0usize;
    let mut epilogue = Epilogue::default();
    while at < bytes.len() {
        let pc = address.wrapping_add(at as u64);
        let size = length(bytes[at]);
        if at + size > bytes.len() {
            break;
        }
        let insn = &bytes[at..at + size];
        let mut c = classify(insn, pc);
        if epilogue.returns(insn, &c) {
            c = Class::of(kind::RETURN);
        }
        let end = pc.wrapping_add(size as u64);
        let name = if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) { dec.relocate(&mut c, pc, end) } else { 0 };
        f(&Insn { address: pc, size: size as u8, kind: c.kind, target: c.target, extra: c.extra, name });
        at += size;
    }
    if at < bytes.len() {
        f(&Insn::new(address.wrapping_add(at as u64), (bytes.len() - at) as u8, kind::ERROR));
    }
}

/// The return register of the ELF ABI: `br %r14` returns.
const R14: u8 = 14;

/// GCC's usual s390x epilogue loads the saved return address into another register and
/// branches there after restoring the callee-saved ones: `lg %r4,272(%r15); lmg %r6,%r15,
/// 208(%r15); br %r4` (most of the kernel's returns), with the return value's computation
/// often scheduled in between. A `br %rN` a few instructions after an `lg %rN,d(%r15)`, with
/// no branch and no instruction naming %rN as its first register between, is such a return,
/// not an indirect tail call.
#[derive(Default)]
struct Epilogue {
    /// The register of the last `lg rN,d(%r15)` and how many instructions ago it was.
    loaded: Option<(u8, u8)>,
}

impl Epilogue {
    /// How far back the load may be.
    const WINDOW: u8 = 8;

    fn returns(&mut self, b: &[u8], c: &Class) -> bool {
        let back = self.loaded.take().map(|(r, n)| (r, n + 1)).filter(|&(_, n)| n <= Self::WINDOW);
        // BCR 15,rN
        if c.kind == kind::JUMP_INDIRECT && b[0] == 0x07 && b[1] >> 4 == 15 {
            return back.is_some_and(|(r, _)| r == b[1] & 15);
        }
        // LG R1,D2(X2,B2) = E3 R1|X2 B2|DL DL DH 04, with no index and B2 = %r15
        if b.len() == 6 && b[0] == 0xE3 && b[5] == 0x04 && b[1] & 15 == 0 && b[2] >> 4 == 15 {
            self.loaded = Some((b[1] >> 4, 0));
        } else if c.kind == kind::OTHER || c.kind == kind::NOP {
            // most formats put the register they write first (R1); a branch ends the block
            self.loaded = back.filter(|&(r, _)| b[1] >> 4 != r);
        }
        false
    }
}

/// `pc` plus twice the signed halfword count in `imm` of `bits` bits (the relative branches).
fn rel(pc: u64, imm: u32, bits: u32) -> u64 {
    pc.wrapping_add((sext(imm, bits) * 2) as u64)
}

/// A branch on condition with mask `m`: 15 always, 0 never (a NOP), else conditional.
fn on_mask(m: u8, k: u8, target: u64) -> Class {
    match m {
        0 => Class::of(kind::NOP),
        15 => Class::to(k, target, 0),
        _ => Class::to(k, target, flag::CONDITIONAL),
    }
}

/// Classifies one instruction (`b` holds exactly its bytes) at `pc`.
pub fn classify(b: &[u8], pc: u64) -> Class {
    let (op, r1, r2) = (b[0], b[1] >> 4, b[1] & 15);
    let imm16 = || u32::from(u16::from_be_bytes([b[2], b[3]]));
    match (op, b.len()) {
        // The all-zero opcode byte is no instruction: `.long 0`, the kprobe breakpoint 0x0002.
        (0x00, _) => Class::with(kind::TRAP, trap::UNDEFINED | u32::from(b[1]) << 16),
        // TRAP2 0x01FF.
        (0x01, _) if b[1] == 0xFF => Class::with(kind::TRAP, trap::BREAKPOINT),
        // SVC I
        (0x0A, _) => Class::with(kind::TRAP, trap::INTERRUPT | u32::from(b[1]) << 16),
        // BCR M1,R2: r2 = 0 never branches (`bcr 15,0` serializes); `br %r14` returns.
        (0x07, _) if r2 == 0 => Class::of(if r1 == 0 { kind::NOP } else { kind::OTHER }),
        (0x07, _) if r2 == R14 && r1 != 0 => Class::with(kind::RETURN, if r1 == 15 { 0 } else { flag::CONDITIONAL }),
        (0x07, _) => match r1 {
            0 => Class::of(kind::NOP),
            15 => Class::of(kind::JUMP_INDIRECT),
            _ => Class::with(kind::JUMP_INDIRECT, flag::CONDITIONAL),
        },
        // BASR/BALR R1,R2: r2 = 0 only loads the address.
        (0x0D | 0x05, _) if r2 != 0 => Class::of(kind::CALL_INDIRECT),
        // BC M1,D2(X2,B2): to an address computed from registers.
        (0x47, _) => match r1 {
            0 => Class::of(kind::NOP),
            15 => Class::of(kind::JUMP_INDIRECT),
            _ => Class::with(kind::JUMP_INDIRECT, flag::CONDITIONAL),
        },
        // BAS/BAL R1,D2(X2,B2)
        (0x4D | 0x45, _) => Class::of(kind::CALL_INDIRECT),
        // MC: BUG()/WARN() (monitor class 0, enabled by the kernel) always traps.
        (0xAF, _) => Class::with(kind::TRAP, trap::UNDEFINED | u32::from(b[1]) << 16),
        // CS/CDS R1,R3,D2(B2): compare and swap, 4 bytes / a pair of 4.
        (0xBA, _) => Class::with(kind::LSE_ATOMIC, 4),
        (0xBB, _) => Class::with(kind::LSE_ATOMIC, 4 | flag::PAIR),
        // RI: BRC (x4) M1,RI2; BRAS (x5); BRCT/BRCTG (x6, x7) loop on a count.
        (0xA7, _) => match r2 {
            4 => on_mask(r1, kind::JUMP, rel(pc, imm16(), 16)),
            5 => Class::to(kind::CALL_DIRECT, rel(pc, imm16(), 16), 0),
            6 | 7 => Class::to(kind::JUMP, rel(pc, imm16(), 16), flag::CONDITIONAL),
            _ => Class::OTHER,
        },
        // BRXH/BRXLE R1,R3,RI2
        (0x84 | 0x85, _) => Class::to(kind::JUMP, rel(pc, imm16(), 16), flag::CONDITIONAL),
        // RIL: BRCL (x4) M1,RI2 (`jg`; `brcl 0,0` is the ftrace NOP); BRASL (x5).
        (0xC0, 6) if r2 == 4 || r2 == 5 => {
            let t = rel(pc, u32::from_be_bytes([b[2], b[3], b[4], b[5]]), 32);
            if r2 == 5 {
                Class::to(kind::CALL_DIRECT, t, 0)
            } else {
                on_mask(r1, kind::JUMP, t)
            }
        }
        // BRCTH R1,RI2 (0xCC6)
        (0xCC, 6) if r2 == 6 => {
            Class::to(kind::JUMP, rel(pc, u32::from_be_bytes([b[2], b[3], b[4], b[5]]), 32), flag::CONDITIONAL)
        }
        (0xB2, _) => b2(b[1]),
        (0xE5, 6) => match b[1] {
            // TBEGIN / TBEGINC D1(B1),I2
            0x60 | 0x61 => Class::of(kind::TM_BEGIN),
            _ => Class::OTHER,
        },
        (0xE3, 6) if b[5] == 0x25 => Class::of(kind::TM_OTHER), // NTSTG: non-transactional store
        (0xEB, 6) => eb(b[5]),
        (0xEC, 6) => ec(b[5], rel(pc, imm16(), 16)),
        // CSST: compare and swap and store
        (0xC8, 6) if r2 == 2 => Class::with(kind::LSE_ATOMIC, 8),
        _ => Class::OTHER,
    }
}

/// The 0xB2xx S-format instructions: transactions, TRAP4.
fn b2(op2: u8) -> Class {
    match op2 {
        0xF8 => Class::of(kind::TM_END),                   // TEND
        0xFC => Class::of(kind::TM_ABORT),                 // TABORT D2(B2)
        0xEC => Class::of(kind::TM_TEST),                  // ETND R1: extract transaction nesting depth
        0xE8 => Class::of(kind::TM_OTHER),                 // PPA: perform processor assist (TX abort assist)
        0xFF => Class::with(kind::TRAP, trap::BREAKPOINT), // TRAP4
        _ => Class::OTHER,
    }
}

/// The 0xEBxx…xx RSY instructions: compare and swap, interlocked load-and-update.
fn eb(op2: u8) -> Class {
    match op2 {
        0x14 => Class::with(kind::LSE_ATOMIC, 4),              // CSY
        0x30 => Class::with(kind::LSE_ATOMIC, 8),              // CSG
        0x31 => Class::with(kind::LSE_ATOMIC, 4 | flag::PAIR), // CDSY
        0x3E => Class::with(kind::LSE_ATOMIC, 8 | flag::PAIR), // CDSG
        // LAN LAO LAX LAA LAAL (4 bytes), and their G forms (8)
        0xF4 | 0xF6 | 0xF7 | 0xF8 | 0xFA => Class::with(kind::LSE_ATOMIC, 4),
        0xE4 | 0xE6 | 0xE7 | 0xE8 | 0xEA => Class::with(kind::LSE_ATOMIC, 8),
        _ => Class::OTHER,
    }
}

/// The 0xECxx…xx RIE instructions: compare and branch relative (to `t`), compare and trap.
fn ec(op2: u8, t: u64) -> Class {
    match op2 {
        // BRXHG/BRXLG, CRJ CGRJ CLRJ CLGRJ, CIJ CGIJ CLIJ CLGIJ
        0x44 | 0x45 | 0x76 | 0x64 | 0x77 | 0x65 | 0x7E | 0x7C | 0x7F | 0x7D => {
            Class::to(kind::JUMP, t, flag::CONDITIONAL)
        }
        // CIT CGIT CLFIT CLGIT: compare immediate and trap
        0x70..=0x73 => Class::with(kind::TRAP, trap::CONDITIONAL),
        _ => Class::OTHER,
    }
}

/// The PC-relative fields of one instruction (`b` holds exactly its bytes) for the
/// fingerprints, as byte masks (bit *n* = byte *n*, as on x86): the 16-bit halfword counts of
/// the RI/RSI/RIE branches and the 32-bit ones of the RIL branches, `larl` and the
/// relative-long loads, stores and compares (0xC4x, 0xC6x), all at bytes 2 on.
pub(super) fn fields(b: &[u8], pc: u64) -> Fields {
    const HALF: u32 = 0b1100;
    const WORD: u32 = 0b11_1100;
    let mut out = Fields::default();
    let r2 = b[1] & 15;
    let relative = match (b[0], b.len()) {
        (0xA7, 4) if (4..=7).contains(&r2) => Some(HALF),
        (0x84 | 0x85, 4) => Some(HALF),
        (0xEC, 6) if matches!(b[5], 0x44 | 0x45 | 0x64 | 0x65 | 0x76 | 0x77 | 0x7C..=0x7F) => Some(HALF),
        (0xC0, 6) if matches!(r2, 0 | 4 | 5) => Some(WORD),
        (0xC4, 6) if r2 != 0 && r2 != 1 && r2 != 3 && r2 != 9 && r2 != 0xA => Some(WORD),
        (0xC6, 6) if !matches!(r2, 1 | 3 | 9 | 0xB) => Some(WORD),
        (0xCC, 6) if r2 == 6 => Some(WORD),
        _ => None,
    };
    if let Some(mask) = relative {
        let t = if mask == HALF {
            rel(pc, u32::from(u16::from_be_bytes([b[2], b[3]])), 16)
        } else {
            rel(pc, u32::from_be_bytes([b[2], b[3], b[4], b[5]]), 32)
        };
        out.push(Field { mask, value: Value::Pc(t) });
    }
    out
}

/// Text for evidence without capstone: branch mnemonics with targets, the kinds by name, and
/// `.insn` with the bytes for the rest.
pub(super) fn text(bytes: &[u8], i: &Insn) -> String {
    let t = i.target;
    let cond = i.extra & flag::CONDITIONAL != 0;
    match i.kind {
        kind::RETURN if cond => "bcr (cond),%r14".into(),
        kind::RETURN if i.extra & flag::THUNK != 0 => format!("jg {t:#x} (return thunk)"),
        kind::RETURN if bytes.first() == Some(&0x07) => format!("br %r{}", bytes[1] & 15),
        kind::RETURN => "(return)".into(),
        kind::JUMP if cond => format!("j (cond) {t:#x}"),
        kind::JUMP if i.size == 6 => format!("jg {t:#x}"),
        kind::JUMP => format!("j {t:#x}"),
        kind::CALL_DIRECT if i.size == 6 => format!("brasl {t:#x}"),
        kind::CALL_DIRECT => format!("bras {t:#x}"),
        kind::NOP if i.size == 6 => "jgnop".into(),
        kind::NOP => "nop".into(),
        kind::TM_BEGIN => "tbegin".into(),
        kind::TM_END => "tend".into(),
        kind::TM_ABORT => "tabort".into(),
        _ => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            format!(".insn 0x{hex}")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(bytes: &[u8], pc: u64) -> Insn {
        let mut out = Vec::new();
        super::walk(&Decoder::new(super::super::Isa::S390), bytes, pc, &mut |i| out.push(*i));
        assert_eq!(out.len(), 1, "{bytes:02x?}");
        out[0]
    }

    #[test]
    fn lengths_come_from_the_first_byte() {
        assert_eq!([0x07, 0x40, 0x47, 0x80, 0xB2, 0xC0, 0xE3].map(length), [2, 4, 4, 4, 4, 6, 6]);
        // 2 + 4 + 6 bytes, then a 4-byte opcode with only 2 bytes left
        let mut n = Vec::new();
        let code = [0x07, 0xFE, 0xA7, 0xF4, 0x00, 0x02, 0xC0, 0xE5, 0, 0, 0, 0, 0xA7, 0xF4];
        super::walk(&Decoder::new(super::super::Isa::S390), &code, 0x1000, &mut |i| {
            n.push((i.address, i.size, i.kind))
        });
        assert_eq!(
            n,
            [
                (0x1000, 2, kind::RETURN),
                (0x1002, 4, kind::JUMP),
                (0x1006, 6, kind::CALL_DIRECT),
                (0x100C, 2, kind::ERROR)
            ]
        );
    }

    #[test]
    fn branches_calls_returns() {
        let j = one(&[0xA7, 0xF4, 0xFF, 0xFE], 0x1000); // j .-4
        assert_eq!((j.kind, j.target, j.extra), (kind::JUMP, 0xFFC, 0));
        let jne = one(&[0xA7, 0x74, 0x00, 0x08], 0x1000);
        assert_eq!((jne.kind, jne.target, jne.extra), (kind::JUMP, 0x1010, flag::CONDITIONAL));
        let jg = one(&[0xC0, 0xF4, 0x00, 0x00, 0x00, 0x10], 0x1000);
        assert_eq!((jg.kind, jg.target), (kind::JUMP, 0x1020));
        let brasl = one(&[0xC0, 0xE5, 0xFF, 0xFF, 0xFF, 0xF0], 0x1000);
        assert_eq!((brasl.kind, brasl.target), (kind::CALL_DIRECT, 0xFE0));
        assert_eq!(one(&[0x0D, 0xE1], 0).kind, kind::CALL_INDIRECT); // basr %r14,%r1
        assert_eq!(one(&[0x07, 0xFE], 0).kind, kind::RETURN);
        assert_eq!(one(&[0x07, 0xF1], 0).kind, kind::JUMP_INDIRECT);
        assert_eq!(one(&[0x07, 0x07], 0).kind, kind::NOP); // nopr %r7
        assert_eq!(one(&[0x07, 0xF0], 0).kind, kind::OTHER); // bcr 15,0: serialization
        assert_eq!(one(&[0xC0, 0x04, 0, 0, 0, 0], 0).kind, kind::NOP); // the ftrace NOP
    }

    #[test]
    fn epilogue_through_another_register_returns() {
        let mut n = Vec::new();
        // lg %r4,272(%r15); lmg %r6,%r15,208(%r15); br %r4; then lg %r1,0(%r2); br %r1
        let code = [
            0xE3, 0x40, 0xF1, 0x10, 0x00, 0x04, 0xEB, 0x6F, 0xF0, 0xD0, 0x00, 0x04, 0x07, 0xF4, 0xE3, 0x10, 0x20, 0x00,
            0x00, 0x04, 0x07, 0xF1,
        ];
        super::walk(&Decoder::new(super::super::Isa::S390), &code, 0, &mut |i| n.push(i.kind));
        assert_eq!(n, [kind::OTHER, kind::OTHER, kind::RETURN, kind::OTHER, kind::JUMP_INDIRECT]);
    }

    #[test]
    fn relative_fields() {
        let f = fields(&[0xC0, 0xE5, 0, 0, 0, 0x10], 0x1000); // brasl %r14,.+32
        assert_eq!(f.as_slice(), [Field { mask: 0b11_1100, value: Value::Pc(0x1020) }]);
        let f = fields(&[0xA7, 0xF4, 0xFF, 0xFE], 0x1000); // j .-4
        assert_eq!(f.as_slice(), [Field { mask: 0b1100, value: Value::Pc(0xFFC) }]);
        assert_eq!(fields(&[0xC0, 0x1F, 0, 0, 0, 1], 0).as_slice(), []); // lgfi: an immediate
        assert_eq!(fields(&[0xC4, 0x18, 0, 0, 0, 4], 0x100).as_slice().len(), 1);
        // lgrl
    }

    #[test]
    fn transactions_atomics_traps() {
        assert_eq!(one(&[0xE5, 0x60, 0, 0, 0xFF, 0x00], 0).kind, kind::TM_BEGIN);
        assert_eq!(one(&[0xE5, 0x61, 0, 0, 0xFF, 0x00], 0).kind, kind::TM_BEGIN);
        assert_eq!(one(&[0xB2, 0xF8, 0, 0], 0).kind, kind::TM_END);
        assert_eq!(one(&[0xB2, 0xFC, 0, 0], 0).kind, kind::TM_ABORT);
        assert_eq!(one(&[0xBA, 0x12, 0x30, 0x00], 0).extra, 4); // cs
        assert_eq!(one(&[0xEB, 0x12, 0x30, 0x00, 0x00, 0x30], 0).extra, 8); // csg
        assert_eq!(one(&[0xEB, 0x12, 0x30, 0x00, 0x00, 0xE8], 0).kind, kind::LSE_ATOMIC); // laag
        assert_eq!(one(&[0xAF, 0x00, 0x00, 0x00], 0).kind, kind::TRAP); // mc 0,0: BUG()
        assert_eq!(one(&[0x00, 0x02], 0).extra & 0xFF, trap::UNDEFINED); // the kprobe breakpoint
    }
}

//! 32-bit ARM: A32 words (4 bytes, little-endian) and, where the ELF's mapping symbols say
//! `$t`, Thumb-2 (T16/T32 halfwords); `$d` marks literal pools, walked as opaque words.
//! Encodings from the Arm ARM (A32/T32 encoding index) as the kernel's kprobes decoder
//! (arch/arm/probes/decode-arm.c) spells its masks. Debian's armmp kernel is built in ARM
//! mode (no CONFIG_THUMB2_KERNEL); Debian's armhf user space is Thumb-2 by default.

use super::{flag, kind, sext, trap, Class, Decoder, Insn};

/// A mapping symbol's mode: `$a`, `$t`, `$d`.
pub(super) const MODE_ARM: u8 = b'a';
pub(super) const MODE_THUMB: u8 = b't';
pub(super) const MODE_DATA: u8 = b'd';

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, bytes: &[u8], address: u64, f: &mut F) {
    let map = &dec.arm_map;
    let mut next = map.partition_point(|&(a, _)| a <= address);
    let mut mode = if next > 0 { map[next - 1].1 } else { MODE_ARM };
    let end = address + bytes.len() as u64;
    let mut at = address;
    while at < end {
        while next < map.len() && map[next].0 <= at {
            mode = map[next].1;
            next += 1;
        }
        // A mode never runs past the next mapping symbol.
        let limit = map.get(next).map_or(end, |&(a, _)| a.min(end));
        let rest = &bytes[(at - address) as usize..(limit - address) as usize];
        let i = match mode {
            MODE_THUMB => thumb_step(dec, rest, at),
            MODE_DATA => data_word(rest, at),
            _ => arm_step(dec, rest, at),
        };
        f(&i);
        at += u64::from(i.size.max(1));
    }
}

/// A word of a `$d` region: opaque, but for the `udf` of a BUG()/WARN(), which the kernel
/// emits with `.word` (so the assembler marks it data).
fn data_word(b: &[u8], at: u64) -> Insn {
    let n = b.len().min(4) as u8;
    match b.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) {
        Some(w) if w & 0x0FF0_00F0 == 0x07F0_00F0 && cond(w) == 0xE => {
            let c = classify(w, at);
            Insn { address: at, size: 4, kind: c.kind, target: c.target, extra: c.extra, name: 0 }
        }
        _ => Insn::new(at, n, kind::OTHER),
    }
}

fn arm_step(dec: &Decoder, b: &[u8], at: u64) -> Insn {
    let Some(w) = b.get(..4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]])) else {
        return Insn::new(at, b.len() as u8, kind::ERROR);
    };
    let mut c = classify(w, at);
    let name = if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) { dec.relocate(&mut c, at, at + 4) } else { 0 };
    Insn { address: at, size: 4, kind: c.kind, target: c.target, extra: c.extra, name }
}

/// The condition field: 0xE always, 0xF the unconditional space.
fn cond(w: u32) -> u32 {
    w >> 28
}

fn conditional(w: u32) -> u32 {
    if cond(w) < 0xE {
        flag::CONDITIONAL
    } else {
        0
    }
}

/// B/BL/BLX target: pc + 8 + imm24 × 4 (A32 reads pc two words ahead).
fn branch_target(pc: u64, w: u32) -> u64 {
    pc.wrapping_add(8).wrapping_add((sext(w & 0x00FF_FFFF, 24) << 2) as u64)
}

/// Classifies one A32 word at `pc`.
pub fn classify(w: u32, pc: u64) -> Class {
    let c = conditional(w);
    if cond(w) == 0xF {
        // BLX (immediate) 1111 101H: a call that switches to Thumb; H adds a halfword.
        if w & 0x0E00_0000 == 0x0A00_0000 {
            return Class::to(kind::CALL_DIRECT, branch_target(pc, w) + u64::from((w >> 23) & 2), 0);
        }
        return Class::OTHER; // PLD, CPS, SRS, RFE, NEON, CLREX, barriers …
    }
    // B (0xA) / BL (0xB): cccc 101L imm24
    if w & 0x0E00_0000 == 0x0A00_0000 {
        let k = if w & (1 << 24) != 0 { kind::CALL_DIRECT } else { kind::JUMP };
        return Class::to(k, branch_target(pc, w), c);
    }
    // BX Rm cccc 0001 0010 1111 1111 1111 0001 mmmm; BLX Rm …0011 mmmm
    match w & 0x0FFF_FFF0 {
        0x012F_FF10 if w & 0xF == 14 => return Class::with(kind::RETURN, c),
        0x012F_FF10 => return Class::with(kind::JUMP_INDIRECT, c),
        0x012F_FF30 => return Class::with(kind::CALL_INDIRECT, c),
        _ => {}
    }
    // BKPT 1110 0001 0010 imm12 0111 imm4; UDF 1110 0111 1111 imm12 1111 imm4 (BUG(), kprobes)
    let imm16 = ((w >> 4) & 0xFFF0) | (w & 0xF);
    if w & 0x0FF0_00F0 == 0x0120_0070 {
        return Class::with(kind::TRAP, trap::BREAKPOINT | imm16 << 16);
    }
    if w & 0x0FF0_00F0 == 0x07F0_00F0 {
        return Class::with(kind::TRAP, trap::UNDEFINED | imm16 << 16);
    }
    // SVC cccc 1111 imm24
    if w & 0x0F00_0000 == 0x0F00_0000 {
        return Class::with(kind::TRAP, trap::INTERRUPT | (w & 0xFFFF) << 16);
    }
    // Load/store exclusive and acquire/release: cccc 0001 1 op L Rn Rt 1x ex 1001 Rt2;
    // bits 9:8 = 11 exclusive, 10 acquire-exclusive (v8), 00 LDA/STL (v8, not exclusive).
    if w & 0x0F80_00F0 == 0x0180_0090 {
        return exclusive(w);
    }
    if w == 0xE320_F000 || w == 0xE1A0_0000 {
        return Class::of(kind::NOP); // nop (hint), mov r0, r0
    }
    // LDM with pc in the list: pop {…, pc}, ldmdb fp, {…, sp, pc} (the frame epilogue)
    if w & 0x0E10_8000 == 0x0810_8000 {
        return Class::with(kind::RETURN, c);
    }
    // LDR pc, [sp], #4 (pop {pc}); other loads of pc are jumps through a table or pointer
    if w & 0x0C10_F000 == 0x0410_F000 {
        return if w & 0x0FFF_FFFF == 0x049D_F004 {
            Class::with(kind::RETURN, c)
        } else {
            Class::with(kind::JUMP_INDIRECT, c)
        };
    }
    // MOV pc, lr; other data processing into pc (add pc, pc, rX: a switch)
    if writes_pc_dp(w) {
        return if w & 0x0FFF_FFFF == 0x01A0_F00E {
            Class::with(kind::RETURN, c)
        } else {
            Class::with(kind::JUMP_INDIRECT, c)
        };
    }
    Class::OTHER
}

/// Data processing (register or immediate) with Rd = pc, not a compare (TST/TEQ/CMP/CMN
/// write no register) and not in the miscellaneous or multiply/extra-load spaces.
fn writes_pc_dp(w: u32) -> bool {
    if w & 0x0C00_F000 != 0x0000_F000 {
        return false;
    }
    let imm = w & (1 << 25) != 0;
    let op = (w >> 21) & 0xF;
    // op 10xx: compares with S, the miscellaneous space, MOVW/MOVT and MSR without
    if (8..=11).contains(&op) {
        return false;
    }
    imm || w & 0x90 != 0x90
}

fn exclusive(w: u32) -> Class {
    let load = w & (1 << 20) != 0;
    let (bytes, pair) = match (w >> 21) & 3 {
        0 => (4, 0),
        1 => (8, flag::PAIR),
        2 => (1, 0),
        _ => (2, 0),
    };
    let order = if load { flag::ACQUIRE } else { flag::RELEASE };
    match (w >> 8) & 3 {
        3 => Class::with(if load { kind::LL } else { kind::SC }, bytes | pair),
        2 => Class::with(if load { kind::LL } else { kind::SC }, bytes | pair | order),
        0 => Class::with(kind::ORDERED, bytes | order),
        _ => Class::OTHER,
    }
}

// ---- Thumb-2 ---------------------------------------------------------------------------

fn thumb_step(dec: &Decoder, b: &[u8], at: u64) -> Insn {
    let Some(h1) = b.get(..2).map(|b| u16::from_le_bytes([b[0], b[1]])) else {
        return Insn::new(at, b.len() as u8, kind::ERROR);
    };
    // 32-bit when the first halfword's top five bits are 11101, 11110 or 11111.
    if h1 >> 11 < 0b11101 {
        let c = classify_t16(h1, at);
        return Insn { address: at, size: 2, kind: c.kind, target: c.target, extra: c.extra | flag::THUMB, name: 0 };
    }
    let Some(h2) = b.get(2..4).map(|b| u16::from_le_bytes([b[0], b[1]])) else {
        return Insn::new(at, b.len() as u8, kind::ERROR);
    };
    let mut c = classify_t32((u32::from(h1) << 16) | u32::from(h2), at);
    let name = if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) { dec.relocate(&mut c, at, at + 4) } else { 0 };
    Insn { address: at, size: 4, kind: c.kind, target: c.target, extra: c.extra | flag::THUMB, name }
}

/// One T16 halfword at `pc` (Thumb reads pc as the instruction's address + 4).
pub fn classify_t16(h: u16, pc: u64) -> Class {
    let h = u32::from(h);
    let pc4 = pc.wrapping_add(4);
    match h {
        0x4770 => return Class::of(kind::RETURN), // bx lr
        0xBF00 => return Class::of(kind::NOP),
        _ => {}
    }
    if h & 0xFF87 == 0x4700 {
        return Class::of(kind::JUMP_INDIRECT); // bx rm
    }
    if h & 0xFF87 == 0x4780 {
        return Class::of(kind::CALL_INDIRECT); // blx rm
    }
    if h & 0xFF00 == 0xBD00 {
        return Class::of(kind::RETURN); // pop {…, pc}
    }
    if h & 0xFF00 == 0xBE00 {
        return Class::with(kind::TRAP, trap::BREAKPOINT | (h & 0xFF) << 16); // bkpt
    }
    if h & 0xFF00 == 0xDE00 {
        return Class::with(kind::TRAP, trap::UNDEFINED | (h & 0xFF) << 16); // udf
    }
    if h & 0xFF00 == 0xDF00 {
        return Class::with(kind::TRAP, trap::INTERRUPT | (h & 0xFF) << 16); // svc
    }
    if h & 0xF000 == 0xD000 {
        // b<cond>: imm8 halfwords
        return Class::to(kind::JUMP, pc4.wrapping_add((sext(h & 0xFF, 8) << 1) as u64), flag::CONDITIONAL);
    }
    if h & 0xF800 == 0xE000 {
        return Class::to(kind::JUMP, pc4.wrapping_add((sext(h & 0x7FF, 11) << 1) as u64), 0);
    }
    if h & 0xF500 == 0xB100 {
        // cbz/cbnz: i:imm5 halfwords, forward only
        let off = ((h >> 9) & 1) << 6 | ((h >> 3) & 0x1F) << 1;
        return Class::to(kind::JUMP, pc4 + u64::from(off), flag::CONDITIONAL);
    }
    if h & 0xFF78 == 0x4678 && h & 0x87 == 0x87 {
        return Class::of(kind::JUMP_INDIRECT); // mov pc, rm
    }
    Class::OTHER
}

/// One T32 instruction (first halfword in bits 31:16) at `pc`.
pub fn classify_t32(w: u32, pc: u64) -> Class {
    let pc4 = pc.wrapping_add(4);
    // B/BL/BLX (immediate): 11110 S imm10 | 1 J1 x J2 imm11
    if w & 0xF800_8000 == 0xF000_8000 {
        let s = (w >> 26) & 1;
        let (j1, j2) = ((w >> 13) & 1, (w >> 11) & 1);
        let (i1, i2) = (1 ^ j1 ^ s, 1 ^ j2 ^ s);
        let op = (w >> 12) & 5; // bits 14 and 12
        let imm11 = w & 0x7FF;
        if op & 1 == 0 && op & 4 == 0 {
            // B<cond>.W: S:J2:J1:imm6:imm11
            if (w >> 23) & 7 == 7 {
                return Class::OTHER; // misc control (barriers, msr/mrs)
            }
            let imm = s << 20 | j2 << 19 | j1 << 18 | ((w >> 16) & 0x3F) << 12 | imm11 << 1;
            return Class::to(kind::JUMP, pc4.wrapping_add(sext(imm, 21) as u64), flag::CONDITIONAL);
        }
        let imm = s << 24 | i1 << 23 | i2 << 22 | ((w >> 16) & 0x3FF) << 12 | imm11 << 1;
        let target = pc4.wrapping_add(sext(imm, 25) as u64);
        return match op {
            1 => Class::to(kind::JUMP, target, 0),             // B.W
            5 => Class::to(kind::CALL_DIRECT, target, 0),      // BL
            _ => Class::to(kind::CALL_DIRECT, target & !3, 0), // BLX to ARM: Align(pc, 4)
        };
    }
    // LDM/POP.W with pc: 1110 100x x0x1 Rn | P M x reglist
    if w & 0xFE50_8000 == 0xE810_8000 {
        return Class::of(kind::RETURN);
    }
    // LDR.W pc, [sp], #4 (pop.w {pc}); ldr pc, […] otherwise
    if w == 0xF85D_FB04 {
        return Class::of(kind::RETURN);
    }
    if w & 0xFF70_F000 == 0xF850_F000 || w & 0xFFF0_F000 == 0xF8D0_F000 {
        return Class::of(kind::JUMP_INDIRECT);
    }
    // TBB/TBH: switch tables
    if w & 0xFFF0_FFE0 == 0xE8D0_F000 {
        return Class::of(kind::JUMP_INDIRECT);
    }
    // LDREX 1110 1000 0101 / STREX 1110 1000 0100; B/H/D 1110 1000 110L … 01xx
    match w & 0xFFF0_0000 {
        0xE850_0000 => return Class::with(kind::LL, 4),
        0xE840_0000 => return Class::with(kind::SC, 4),
        _ => {}
    }
    if w & 0xFFE0_00C0 == 0xE8C0_0040 {
        let load = w & (1 << 20) != 0;
        let (bytes, pair) = match (w >> 4) & 3 {
            0 => (1, 0),
            1 => (2, 0),
            _ => (8, flag::PAIR),
        };
        return Class::with(if load { kind::LL } else { kind::SC }, bytes | pair);
    }
    if w == 0xF3AF_8000 {
        return Class::of(kind::NOP); // nop.w
    }
    if w & 0xFFF0_F000 == 0xF7F0_A000 {
        return Class::with(kind::TRAP, trap::UNDEFINED | (((w >> 4) & 0xF000) | (w & 0xFFF)) << 16);
        // udf.w
    }
    Class::OTHER
}

/// A mnemonic for what the classifier knows, `.inst 0x…` for the rest.
pub(super) fn text(bytes: &[u8], i: &Insn) -> String {
    let t = i.target;
    let thumb = i.extra & flag::THUMB != 0;
    let word = match (thumb, i.size, bytes) {
        (true, 2, [a, b, ..]) => u32::from(u16::from_le_bytes([*a, *b])),
        (true, 4, [a, b, c, d, ..]) => {
            (u32::from(u16::from_le_bytes([*a, *b])) << 16) | u32::from(u16::from_le_bytes([*c, *d]))
        }
        (false, 4, [a, b, c, d, ..]) => u32::from_le_bytes([*a, *b, *c, *d]),
        _ => return "(bad)".into(),
    };
    let cc = if thumb || cond(word) >= 0xE { "" } else { COND[cond(word) as usize] };
    match i.kind {
        kind::JUMP => format!("b{cc} {t:#x}"),
        kind::CALL_DIRECT if !thumb && cond(word) == 0xF => format!("blx {t:#x}"),
        kind::CALL_DIRECT => format!("bl{cc} {t:#x}"),
        kind::RETURN if !thumb && word & 0x0FFF_FFF0 == 0x012F_FF10 => format!("bx{cc} lr"),
        kind::RETURN if thumb && word == 0x4770 => "bx lr".into(),
        kind::RETURN => format!("pop{cc} {{…, pc}}"),
        kind::JUMP_INDIRECT => format!("(jump to a register) .inst {word:#010x}"),
        kind::CALL_INDIRECT => format!("blx{cc} r{}", if thumb { (word >> 3) & 15 } else { word & 15 }),
        kind::NOP => "nop".into(),
        kind::TRAP => format!(
            "{} #{:#x}",
            match i.extra & 0xFF {
                trap::BREAKPOINT => "bkpt",
                trap::INTERRUPT => "svc",
                _ => "udf",
            },
            i.extra >> 16
        ),
        kind::LL => format!("ldrex{} (.inst {word:#010x})", suffix(i.extra)),
        kind::SC => format!("strex{} (.inst {word:#010x})", suffix(i.extra)),
        kind::ORDERED => format!(
            "{}{} (.inst {word:#010x})",
            if i.extra & flag::ACQUIRE != 0 { "lda" } else { "stl" },
            suffix(i.extra)
        ),
        _ => format!(".inst {word:#010x}"),
    }
}

fn suffix(extra: u32) -> &'static str {
    match extra & flag::SIZE_MASK {
        1 => "b",
        2 => "h",
        8 => "d",
        _ => "",
    }
}

const COND: [&str; 16] = ["eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "", ""];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a32_branches_and_returns() {
        // bl 0x1000 from 0x2000: imm24 = (0x1000 - 0x2008) / 4
        let bl = 0xEB00_0000 | (((0x1000i64 - 0x2008) >> 2) as u32 & 0xFF_FFFF);
        assert_eq!(classify(bl, 0x2000), Class::to(kind::CALL_DIRECT, 0x1000, 0));
        assert_eq!(classify(0x1A00_0001, 0x2000), Class::to(kind::JUMP, 0x200C, flag::CONDITIONAL)); // bne
        assert_eq!(classify(0xE12F_FF1E, 0).kind, kind::RETURN); // bx lr
        assert_eq!(classify(0xE8BD_8010, 0).kind, kind::RETURN); // pop {r4, pc}
        assert_eq!(classify(0xE89D_A800, 0).kind, kind::RETURN); // ldm sp, {fp, sp, pc}
        assert_eq!(classify(0xE49D_F004, 0).kind, kind::RETURN); // pop {pc}
        assert_eq!(classify(0xE1A0_F00E, 0).kind, kind::RETURN); // mov pc, lr
        assert_eq!(classify(0xE08F_F100, 0).kind, kind::JUMP_INDIRECT); // add pc, pc, r0, lsl #2
        assert_eq!(classify(0xE12F_FF33, 0).kind, kind::CALL_INDIRECT); // blx r3
        assert_eq!(classify(0xE150_000F, 0).kind, kind::OTHER); // cmp r0, pc: no write
        assert_eq!(classify(0xE52D_E004, 0).kind, kind::OTHER); // push {lr}
        assert_eq!(classify(0xFA00_0000, 0x100), Class::to(kind::CALL_DIRECT, 0x108, 0));
        // blx imm
    }

    #[test]
    fn a32_exclusives_and_traps() {
        assert_eq!(classify(0xE193_2F9F, 0), Class::with(kind::LL, 4)); // ldrex r2, [r3]
        assert_eq!(classify(0xE183_1F92, 0), Class::with(kind::SC, 4)); // strex r1, r2, [r3]
        assert_eq!(classify(0xE1B3_2F9F, 0), Class::with(kind::LL, 8 | flag::PAIR)); // ldrexd
        assert_eq!(classify(0xE1D3_2F9F, 0), Class::with(kind::LL, 1)); // ldrexb
        assert_eq!(classify(0xE7F0_01F2, 0), Class::with(kind::TRAP, trap::UNDEFINED | 0x12 << 16)); // BUG()
        assert_eq!(classify(0xE120_0070, 0).kind, kind::TRAP); // bkpt
        assert_eq!(classify(0xE320_F000, 0).kind, kind::NOP);
    }

    #[test]
    fn t32_branches() {
        // bl from 0x1000 to 0x2000: offset 0xFFC
        let (off, s) = (0x2000u32 - 0x1004, 0u32);
        let (imm10, imm11) = ((off >> 12) & 0x3FF, (off >> 1) & 0x7FF);
        let (j1, j2) = (1 ^ ((off >> 23) & 1) ^ s, 1 ^ ((off >> 22) & 1) ^ s);
        let w = 0xF000_D000 | s << 26 | imm10 << 16 | j1 << 13 | j2 << 11 | imm11;
        assert_eq!(classify_t32(w, 0x1000), Class::to(kind::CALL_DIRECT, 0x2000, 0));
        assert_eq!(classify_t16(0x4770, 0).kind, kind::RETURN);
        assert_eq!(classify_t16(0xBD10, 0).kind, kind::RETURN); // pop {r4, pc}
        assert_eq!(classify_t16(0xD001, 0x100), Class::to(kind::JUMP, 0x106, flag::CONDITIONAL));
        assert_eq!(classify_t32(0xE852_3F00, 0).kind, kind::LL); // ldrex r3, [r2]
        assert_eq!(classify_t32(0xE8BD_8010, 0).kind, kind::RETURN); // pop.w {r4, pc}
    }
}

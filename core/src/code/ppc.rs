//! Power ISA (ppc64 LE/BE, ELFv1 and ELFv2, and 32-bit): fixed 32-bit words in the file's
//! byte order, classified by primary opcode and extended opcode. Encodings from the Power
//! ISA v3.1 book I (branch facility, X-forms of opcode 31); LL/SC (l?arx, st?cx.) and TM
//! (tbegin. … trechkpt.) masks from book II and the TM facility chapter.

use super::{flag, kind, sext, trap, Class, Decoder, Insn};

fn word(b: &[u8], big_endian: bool) -> u32 {
    let a = [b[0], b[1], b[2], b[3]];
    if big_endian {
        u32::from_be_bytes(a)
    } else {
        u32::from_le_bytes(a)
    }
}

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, big_endian: bool, bytes: &[u8], address: u64, f: &mut F) {
    let mut at = 0usize;
    while at + 4 <= bytes.len() {
        let w = word(&bytes[at..], big_endian);
        let pc = address.wrapping_add(at as u64);
        // Prefixed instructions (v3.1, primary opcode 1): a prefix word and a suffix word.
        if w >> 26 == 1 {
            if at + 8 > bytes.len() {
                break;
            }
            f(&Insn::new(pc, 8, kind::OTHER));
            at += 8;
            continue;
        }
        let mut c = classify(w, pc);
        let name = if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) { dec.relocate(&mut c, pc, pc + 4) } else { 0 };
        f(&Insn { address: pc, size: 4, kind: c.kind, target: c.target, extra: c.extra, name });
        at += 4;
    }
    if at < bytes.len() {
        f(&Insn::new(address.wrapping_add(at as u64), (bytes.len() - at) as u8, kind::ERROR));
    }
}

/// BO of a B-form or XL-form branch: `1z1zz` (0x14 set) branches always.
fn conditional(w: u32) -> u32 {
    if (w >> 21) & 0x14 == 0x14 {
        0
    } else {
        flag::CONDITIONAL
    }
}

/// Classifies one instruction word at `pc`.
pub fn classify(w: u32, pc: u64) -> Class {
    let lk = w & 1 != 0;
    match w >> 26 {
        // I-form b/ba/bl/bla: LI (bits 6..29) sign-extended, AA = 0x2, LK = 0x1.
        18 => {
            let off = sext(w & 0x03FF_FFFC, 26) as u64;
            let t = if w & 2 != 0 { off } else { pc.wrapping_add(off) };
            Class::to(if lk { kind::CALL_DIRECT } else { kind::JUMP }, t, 0)
        }
        // B-form bc/bca/bcl/bcla: BO, BI, BD (bits 16..29) sign-extended, AA, LK.
        16 => {
            let off = sext(w & 0xFFFC, 16) as u64;
            let t = if w & 2 != 0 { off } else { pc.wrapping_add(off) };
            Class::to(if lk { kind::CALL_DIRECT } else { kind::JUMP }, t, conditional(w))
        }
        // XL-form, XO in bits 21..30: 16 bclr (blr), 528 bcctr (bctr), 560 bctar.
        19 => match (w >> 1) & 0x3FF {
            16 if lk => Class::with(kind::CALL_INDIRECT, conditional(w)), // blrl
            16 => Class::with(kind::RETURN, conditional(w)),
            528 | 560 if lk => Class::with(kind::CALL_INDIRECT, conditional(w)),
            528 | 560 => Class::with(kind::JUMP_INDIRECT, conditional(w)),
            _ => Class::OTHER,
        },
        31 => opcode31(w),
        // D-form tdi (2) / twi (3): TO = 31 traps always (BUG), otherwise conditionally (WARN).
        2 | 3 => trap_class(w),
        // ori 0,0,0
        24 if w == 0x6000_0000 => Class::of(kind::NOP),
        _ => Class::OTHER,
    }
}

fn trap_class(w: u32) -> Class {
    let to = (w >> 21) & 31;
    let sub = if to == 31 { trap::UNDEFINED } else { trap::CONDITIONAL };
    Class::with(kind::TRAP, sub | to << 16)
}

fn opcode31(w: u32) -> Class {
    // Load and reserve, mask 0xFC0007FE (EH hint ignored).
    let ll = match w & 0xFC00_07FE {
        0x7C00_0068 => 1,                                  // lbarx
        0x7C00_00E8 => 2,                                  // lharx
        0x7C00_0028 => 4,                                  // lwarx
        0x7C00_00A8 => 8,                                  // ldarx
        0x7C00_0228 => 16,                                 // lqarx
        0x7C00_0008 | 0x7C00_0088 => return trap_class(w), // tw (XO 4), td (XO 68)
        _ => 0,
    };
    if ll != 0 {
        return Class::with(kind::LL, ll);
    }
    // Store conditional and the TM instructions, mask 0xFC0007FF (XO and Rc).
    match w & 0xFC00_07FF {
        0x7C00_056D => Class::with(kind::SC, 1),  // stbcx.
        0x7C00_05AD => Class::with(kind::SC, 2),  // sthcx.
        0x7C00_012D => Class::with(kind::SC, 4),  // stwcx.
        0x7C00_01AD => Class::with(kind::SC, 8),  // stdcx.
        0x7C00_016D => Class::with(kind::SC, 16), // stqcx.
        0x7C00_051D => Class::of(kind::TM_BEGIN), // tbegin. (XO 654)
        0x7C00_055D => Class::of(kind::TM_END),   // tend. (XO 686), tendall.
        // tabort. 910, tabortwc. 782, tabortdc. 814, tabortwci. 846, tabortdci. 878
        0x7C00_071D | 0x7C00_061D | 0x7C00_065D | 0x7C00_069D | 0x7C00_06DD => Class::of(kind::TM_ABORT),
        0x7C00_059C => Class::of(kind::TM_TEST), // tcheck (XO 718)
        // tsr. 750 (tsuspend./tresume.), treclaim. 942, trechkpt. 1006
        0x7C00_05DD | 0x7C00_075D | 0x7C00_07DD => Class::of(kind::TM_OTHER),
        _ => Class::OTHER,
    }
}

/// The ELFv2 global entry point's TOC setup at the start of a function (ELFv2 ABI
/// §2.3.2.1): `addis r2,r12,…; addi r2,r2,…`, its absolute form `lis r2,…; addi r2,r2,…`,
/// or the large-model `ld r2,-8(r12); add r2,r2,r12`. The local entry follows it.
pub(super) fn local_entry(bytes: &[u8], big_endian: bool) -> Option<u32> {
    if bytes.len() < 8 {
        return None;
    }
    let (a, b) = (word(bytes, big_endian), word(&bytes[4..], big_endian));
    let addi_r2 = b & 0xFFFF_0000 == 0x3842_0000;
    let addis_r2 = matches!(a & 0xFFFF_0000, 0x3C4C_0000 | 0x3C40_0000); // addis r2,r12 / lis r2
    let found = (addis_r2 && addi_r2) || (a == 0xE84C_FFF8 && b == 0x7C42_6214);
    found.then_some(8)
}

/// A mnemonic for what the classifier knows, `.long 0x…` for the rest.
pub(super) fn text(bytes: &[u8], big_endian: bool, i: &Insn) -> String {
    if bytes.len() < 4 || i.size != 4 {
        return "(prefixed)".into();
    }
    let w = word(bytes, big_endian);
    let t = i.target;
    let lk = if w & 1 != 0 { "l" } else { "" };
    let (bo, bi) = ((w >> 21) & 31, (w >> 16) & 31);
    match (i.kind, w >> 26) {
        (kind::JUMP | kind::CALL_DIRECT, 18) => format!("b{lk}{} {t:#x}", if w & 2 != 0 { "a" } else { "" }),
        (kind::JUMP | kind::CALL_DIRECT, _) if i.extra & flag::CONDITIONAL == 0 => format!("b{lk} {t:#x}"),
        (kind::JUMP | kind::CALL_DIRECT, _) => format!("bc{lk} {bo},{bi},{t:#x}"),
        (kind::RETURN, _) if i.extra & flag::CONDITIONAL == 0 => "blr".into(),
        (kind::RETURN, _) => format!("bclr {bo},{bi}"),
        (kind::JUMP_INDIRECT | kind::CALL_INDIRECT, _) if (w >> 1) & 0x3FF == 16 => format!("bclrl {bo},{bi}"),
        (kind::JUMP_INDIRECT | kind::CALL_INDIRECT, _) if i.extra & flag::CONDITIONAL == 0 => format!("bctr{lk}"),
        (kind::JUMP_INDIRECT | kind::CALL_INDIRECT, _) => format!("bcctr{lk} {bo},{bi}"),
        (kind::NOP, _) => "nop".into(),
        (kind::TRAP, _) if w == 0x7FE0_0008 => "trap".into(),
        (kind::TRAP, op) => {
            let name = match op {
                2 => "tdi",
                3 => "twi",
                _ if w & 0x80 != 0 => "td",
                _ => "tw",
            };
            format!(
                "{name} {bo},r{bi},{}",
                if op < 4 { format!("{}", w as u16 as i16) } else { format!("r{}", (w >> 11) & 31) }
            )
        }
        _ => {
            let name = match w & 0xFC00_07FE {
                0x7C00_0068 => "lbarx",
                0x7C00_00E8 => "lharx",
                0x7C00_0028 => "lwarx",
                0x7C00_00A8 => "ldarx",
                0x7C00_0228 => "lqarx",
                _ => match w & 0xFC00_07FF {
                    0x7C00_056D => "stbcx.",
                    0x7C00_05AD => "sthcx.",
                    0x7C00_012D => "stwcx.",
                    0x7C00_01AD => "stdcx.",
                    0x7C00_016D => "stqcx.",
                    0x7C00_051D => "tbegin.",
                    0x7C00_055D => "tend.",
                    0x7C00_071D => "tabort.",
                    0x7C00_061D => "tabortwc.",
                    0x7C00_065D => "tabortdc.",
                    0x7C00_069D => "tabortwci.",
                    0x7C00_06DD => "tabortdci.",
                    0x7C00_059C => "tcheck",
                    0x7C00_05DD => "tsr.",
                    0x7C00_075D => "treclaim.",
                    0x7C00_07DD => "trechkpt.",
                    _ => return format!(".long {w:#010x}"),
                },
            };
            if i.kind == kind::LL || i.kind == kind::SC {
                format!("{name} r{bo},r{bi},r{}", (w >> 11) & 31)
            } else {
                name.into()
            }
        }
    }
}

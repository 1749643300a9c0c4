//! Power ISA (ppc64 LE/BE, ELFv1 and ELFv2, and 32-bit): fixed 32-bit words in the file's
//! byte order, classified by primary opcode and extended opcode. Encodings from the Power
//! ISA v3.1 book I (branch facility, X-forms of opcode 31); LL/SC (l?arx, st?cx.) and TM
//! (tbegin. … trechkpt.) masks from book II and the TM facility chapter.

use object::{Object, ObjectSymbol};

use super::fingerprint::{Few, Field, Fields, Pairs, Value};
use super::{flag, kind, sext, trap, word, Class, Decoder, Insn};

/// Signed immediates, as bits of the word: the offset of `b` (LI), the offset of `bc` (BD)
/// and the DS-form displacement (the low two bits are the opcode's), the D-form
/// displacement (also `addis`'s high half).
const LI: u32 = 0x03FF_FFFC;
const BD: u32 = 0x0000_FFFC;
const DS: u32 = BD;
const D: u32 = 0x0000_FFFF;

/// The signed immediate in the bits `field` of `w` (all of them reach bit 0 or 2, in place).
fn simm(w: u32, field: u32) -> i64 {
    sext(w & field, 32 - field.leading_zeros())
}

/// `base` plus the high half of `addis` (`@ha`): D shifted left 16.
fn add_high(base: u64, w: u32) -> u64 {
    base.wrapping_add((simm(w, D) << 16) as u64)
}

/// RT (also RS, BO, TO): bits 6..10.
fn rt(w: u32) -> u32 {
    (w >> 21) & 31
}

/// RA (also BI): bits 11..15.
fn ra(w: u32) -> u32 {
    (w >> 16) & 31
}

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, big_endian: bool, bytes: &[u8], address: u64, f: &mut F) {
    let mut at = 0usize;
    while let Some(w) = word(&bytes[at..], big_endian) {
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
        // B-form bc/bca/bcl/bcla: BO, BI, BD (bits 16..29) sign-extended, AA, LK.
        op @ (18 | 16) => {
            let off = simm(w, offset_field(op)) as u64;
            let t = if w & 2 != 0 { off } else { pc.wrapping_add(off) };
            let cond = if op == 16 { conditional(w) } else { 0 };
            Class::to(if lk { kind::CALL_DIRECT } else { kind::JUMP }, t, cond)
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

/// The offset of the direct branch of primary opcode `op` (18 or 16).
fn offset_field(op: u32) -> u32 {
    if op == 18 {
        LI
    } else {
        BD
    }
}

fn trap_class(w: u32) -> Class {
    let to = rt(w);
    let sub = if to == 31 { trap::UNDEFINED } else { trap::CONDITIONAL };
    Class::with(kind::TRAP, sub | to << 16)
}

/// The load-and-reserve, store-conditional and TM instructions of opcode 31, for the
/// classifier and the printer: (mask, value, mnemonic, kind, extra). Load and reserve by
/// mask 0xFC0007FE (EH hint ignored), the others by 0xFC0007FF (XO and Rc); `extra` is the
/// access size.
const X_FORMS: [(u32, u32, &str, u8, u32); 21] = [
    (0xFC00_07FE, 0x7C00_0068, "lbarx", kind::LL, 1),
    (0xFC00_07FE, 0x7C00_00E8, "lharx", kind::LL, 2),
    (0xFC00_07FE, 0x7C00_0028, "lwarx", kind::LL, 4),
    (0xFC00_07FE, 0x7C00_00A8, "ldarx", kind::LL, 8),
    (0xFC00_07FE, 0x7C00_0228, "lqarx", kind::LL, 16),
    (0xFC00_07FF, 0x7C00_056D, "stbcx.", kind::SC, 1),
    (0xFC00_07FF, 0x7C00_05AD, "sthcx.", kind::SC, 2),
    (0xFC00_07FF, 0x7C00_012D, "stwcx.", kind::SC, 4),
    (0xFC00_07FF, 0x7C00_01AD, "stdcx.", kind::SC, 8),
    (0xFC00_07FF, 0x7C00_016D, "stqcx.", kind::SC, 16),
    (0xFC00_07FF, 0x7C00_051D, "tbegin.", kind::TM_BEGIN, 0), // XO 654
    (0xFC00_07FF, 0x7C00_055D, "tend.", kind::TM_END, 0),     // XO 686, also tendall.
    (0xFC00_07FF, 0x7C00_071D, "tabort.", kind::TM_ABORT, 0), // XO 910
    (0xFC00_07FF, 0x7C00_061D, "tabortwc.", kind::TM_ABORT, 0), // XO 782
    (0xFC00_07FF, 0x7C00_065D, "tabortdc.", kind::TM_ABORT, 0), // XO 814
    (0xFC00_07FF, 0x7C00_069D, "tabortwci.", kind::TM_ABORT, 0), // XO 846
    (0xFC00_07FF, 0x7C00_06DD, "tabortdci.", kind::TM_ABORT, 0), // XO 878
    (0xFC00_07FF, 0x7C00_059C, "tcheck", kind::TM_TEST, 0),   // XO 718
    (0xFC00_07FF, 0x7C00_05DD, "tsr.", kind::TM_OTHER, 0),    // XO 750: tsuspend., tresume.
    (0xFC00_07FF, 0x7C00_075D, "treclaim.", kind::TM_OTHER, 0), // XO 942
    (0xFC00_07FF, 0x7C00_07DD, "trechkpt.", kind::TM_OTHER, 0), // XO 1006
];

/// The entry of [`X_FORMS`] that `w` is, if any.
fn x_form(w: u32) -> Option<&'static (u32, u32, &'static str, u8, u32)> {
    X_FORMS.iter().find(|f| w & f.0 == f.1)
}

fn opcode31(w: u32) -> Class {
    // tw (XO 4), td (XO 68)
    if matches!(w & 0xFC00_07FE, 0x7C00_0008 | 0x7C00_0088) {
        return trap_class(w);
    }
    x_form(w).map_or(Class::OTHER, |&(_, _, _, k, extra)| Class::with(k, extra))
}

/// The ELFv2 global entry point's TOC setup at the start of a function (ELFv2 ABI
/// §2.3.2.1): `addis r2,r12,…; addi r2,r2,…`, its absolute form `lis r2,…; addi r2,r2,…`,
/// or the large-model `ld r2,-8(r12); add r2,r2,r12`. The local entry follows it.
pub(super) fn local_entry(bytes: &[u8], big_endian: bool) -> Option<u32> {
    let (a, b) = (word(bytes, big_endian)?, word(bytes.get(4..)?, big_endian)?);
    let addi_r2 = b & 0xFFFF_0000 == 0x3842_0000;
    let addis_r2 = matches!(a & 0xFFFF_0000, 0x3C4C_0000 | 0x3C40_0000); // addis r2,r12 / lis r2
    let found = (addis_r2 && addi_r2) || (a == 0xE84C_FFF8 && b == 0x7C42_6214);
    found.then_some(8)
}

/// The position-dependent fields of `w` at `pc`, for the fingerprint: the offsets of
/// `b`/`bl` (LI) and `bc` (BD), when relative (AA = 0); and, given the TOC pointer, the
/// TOC-relative data addresses: `addis rX,r2,hi` with the D- or DS-form instruction that adds
/// the low half to rX (`addi`, loads, stores), or the low half alone on r2 (what the linker
/// leaves when it relaxes the `addis` to a `nop`). `pairs` carries the high halves.
pub(super) fn fields(w: u32, pc: u64, toc: Option<u64>, pairs: &mut Pairs) -> Fields {
    let c = classify(w, pc);
    if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT) {
        if w & 2 != 0 {
            return Fields::default(); // absolute (AA = 1)
        }
        return Few::of(Field { mask: offset_field(w >> 26), value: Value::Pc(c.target) });
    }
    let (op, rt, ra) = (w >> 26, rt(w) as usize, ra(w) as usize);
    let mut out = Fields::default();
    if let Some(toc) = toc {
        // (RA = 0 reads as the number 0, not r0)
        let base = match ra {
            0 => None,
            2 => Some(toc),
            _ => pairs.high[ra],
        };
        match (op, base) {
            // addis rX,r2,hi: the high half
            (15, _) if ra == 2 => {
                pairs.high[rt] = Some(add_high(toc, w));
                out.push(Field { mask: D, value: Value::Hidden });
                return out;
            }
            // addi and the D-form loads and stores: a 16-bit displacement
            (14 | 32..=55, Some(b)) => {
                out.push(Field { mask: D, value: Value::Addr(b.wrapping_add(simm(w, D) as u64)) });
            }
            // DS-form ld/lwa (58) and std (62)
            (58 | 62, Some(b)) => {
                out.push(Field { mask: DS, value: Value::Addr(b.wrapping_add(simm(w, DS) as u64)) });
            }
            _ => {}
        }
    }
    // Whatever this wrote no longer holds a TOC high half: RT for most forms, RA for the
    // logical and shift forms (both cleared; a store writes neither, but clearing is safe).
    pairs.high[rt] = None;
    pairs.high[ra] = None;
    out
}

/// The field of the global entry's TOC setup (`addis r2,r12,(.TOC.-func)@ha; addi
/// r2,r2,…@l`): the distance to the TOC, hidden as the fingerprint's other pair halves are.
pub(super) const TOC_SETUP: Field = Field { mask: D, value: Value::Hidden };

/// ppc64: the value of r2, the `.TOC.` symbol's address.
pub(super) fn toc(symbols: &object::File) -> Option<u64> {
    symbols.symbols().find(|s| s.name_bytes() == Ok(b".TOC.") && !s.is_undefined()).map(|s| s.address())
}

/// The ELFv2 call stubs the linker puts in `.text` (`[std r2,24(r1);] [addis r12,r2,hi;]
/// ld r12,lo(r2|r12); mtctr r12; bctr`), given to `f` as (the stub's offset in `bytes`, the
/// PLT slot it loads).
pub(super) fn call_stubs(bytes: &[u8], big_endian: bool, toc: u64, mut f: impl FnMut(u64, u64)) {
    let words: Vec<u32> = bytes.chunks_exact(4).map(|b| word(b, big_endian).unwrap_or(0)).collect();
    for (n, w) in words.iter().enumerate() {
        // mtctr r12; bctr
        if *w != 0x7D89_03A6 || words.get(n + 1) != Some(&0x4E80_0420) || n == 0 {
            continue;
        }
        let ld = words[n - 1];
        // ld r12,lo(r2) or ld r12,lo(r12) after addis r12,r2,hi
        if ld & 0xFFE0_0003 != 0xE980_0000 {
            continue;
        }
        let (base, mut start) = match (ra(ld), n.checked_sub(2).map(|p| words[p])) {
            (2, _) => (toc, n - 1),
            (12, Some(addis)) if addis & 0xFFFF_0000 == 0x3D82_0000 => (add_high(toc, addis), n - 2),
            _ => continue,
        };
        if start > 0 && words[start - 1] == 0xF841_0018 {
            start -= 1; // std r2,24(r1): the TOC save
        }
        f(4 * start as u64, base.wrapping_add(simm(ld, DS) as u64));
    }
}

/// A mnemonic for what the classifier knows, `.long 0x…` for the rest.
pub(super) fn text(bytes: &[u8], big_endian: bool, i: &Insn) -> String {
    let Some(w) = word(bytes, big_endian).filter(|_| i.size == 4) else { return "(prefixed)".into() };
    let t = i.target;
    let lk = if w & 1 != 0 { "l" } else { "" };
    let (bo, bi) = (rt(w), ra(w));
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
                if op < 4 { format!("{}", simm(w, D)) } else { format!("r{}", (w >> 11) & 31) }
            )
        }
        _ => {
            let Some(&(_, _, name, ..)) = x_form(w) else { return format!(".long {w:#010x}") };
            if i.kind == kind::LL || i.kind == kind::SC {
                format!("{name} r{bo},r{bi},r{}", (w >> 11) & 31)
            } else {
                name.into()
            }
        }
    }
}

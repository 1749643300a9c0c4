//! Power ISA (64-bit): the registers an instruction reads and writes, for the liveness
//! (`liveness.rs`). Apart from `ppc.rs`'s classifier, which says where control goes; this says
//! what each word's operand fields name, from the Power ISA v3.1 book I forms (D, DS, X, XO,
//! M, MD, MDS, A, XL).
//!
//! A register set is a `u64` whose bit n is DWARF register n (ELFv2 ABI, "DWARF Register
//! Mapping"): r0–r31 in bits 0–31, f0–f31 in bits 32–63 — the homes of variables. LR, CTR,
//! XER, the CR fields and the vector registers are not tracked. What is not decoded here
//! (vector and VSX arithmetic, decimal floating point, rare system forms) reads everything
//! and writes nothing: the liveness then errs towards "the register is read".

/// Every register: the answer for an instruction not decoded.
pub(super) const EVERY: u64 = u64::MAX;
/// f0–f31 (also VSX registers vs0–vs31).
pub(super) const FPRS: u64 = 0xFFFF_FFFF << 32;

fn x(r: u32) -> u64 {
    1 << r
}

/// RA in a base-address position: 0 names the value 0, not r0.
fn x0(r: u32) -> u64 {
    if r == 0 {
        0
    } else {
        1 << r
    }
}

fn f(r: u32) -> u64 {
    1 << (32 + r)
}

/// RT/RS/FRT/FRS: bits 6..10.
fn rt(w: u32) -> u32 {
    (w >> 21) & 31
}

/// RA/FRA: bits 11..15.
fn ra(w: u32) -> u32 {
    (w >> 16) & 31
}

/// RB/FRB: bits 16..20.
fn rb(w: u32) -> u32 {
    (w >> 11) & 31
}

/// FRC: bits 21..25.
fn rc(w: u32) -> u32 {
    (w >> 6) & 31
}

/// The registers the word `w` reads and those it writes whole.
pub(super) fn registers(w: u32) -> (u64, u64) {
    let (uses, defs) = primary(w);
    (uses, defs & !uses)
}

fn primary(w: u32) -> (u64, u64) {
    let (t, a, b) = (rt(w), ra(w), rb(w));
    match w >> 26 {
        2 | 3 => (x(a), 0),              // tdi, twi
        7 | 8 | 12 | 13 => (x(a), x(t)), // mulli, subfic, addic, addic.
        10 | 11 => (x(a), 0),            // cmpli, cmpi: a CR field
        14 | 15 => (x0(a), x(t)),        // addi (li), addis (lis)
        16 | 18 => (0, 0),               // bc, b: CR and CTR only
        19 => branch_cr(w),
        20 => (x(t) | x(a), x(a)),        // rlwimi merges into RA
        21 => (x(t), x(a)),               // rlwinm
        23 => (x(t) | x(b), x(a)),        // rlwnm
        24 if w == 0x6000_0000 => (0, 0), // nop
        24..=29 => (x(t), x(a)),          // ori, oris, xori, xoris, andi., andis.
        30 => rotate64(w),
        31 => opcode31(w),
        32..=35 | 40..=43 => (x0(a), x(t)), // lwz, lbz, lhz, lha (and the update forms)
        36..=39 | 44 | 45 => (x(t) | x0(a), 0), // stw, stb, sth (and the update forms)
        48..=51 => (x0(a), f(t)),           // lfs, lfd (and the update forms)
        52..=55 => (f(t) | x0(a), 0),       // stfs, stfd (and the update forms)
        58 if w & 3 <= 2 => (x0(a), x(t)),  // ld, ldu, lwa
        62 if w & 3 <= 1 => (x(t) | x0(a), 0), // std, stdu
        59 | 63 => floating(w),
        _ => (EVERY, 0),
    }
}

/// Opcode 19 (XL-form): branches to LR, CTR or TAR (whose operands are not tracked), the CR
/// logical operations, isync; `addpcis` (DX-form).
fn branch_cr(w: u32) -> (u64, u64) {
    match (w >> 1) & 0x3FF {
        // bcctrl: the callee's global entry point reads r12, which holds its address
        // (ELFv2, "Function Calls"); the ABI's reads are the liveness's
        528 if w & 1 != 0 => (x(12), 0),
        16 | 528 | 560 => (0, 0),
        0 | 33 | 129 | 150 | 193 | 225 | 257 | 289 | 417 | 449 => (0, 0), // mcrf, cr*, isync
        xo if xo & 0x1F == 2 => (0, x(rt(w))),                            // addpcis
        _ => (EVERY, 0),
    }
}

/// Opcode 30: rldicl, rldicr, rldic (MD), rldimi (merges into RA); rldcl, rldcr (MDS).
fn rotate64(w: u32) -> (u64, u64) {
    let (s, a, b) = (rt(w), ra(w), rb(w));
    match (w >> 2) & 7 {
        0..=2 => (x(s), x(a)),
        3 => (x(s) | x(a), x(a)),
        4 if (w >> 1) & 0xF <= 9 => (x(s) | x(b), x(a)),
        _ => (EVERY, 0),
    }
}

/// Opcode 31: the X- and XO-forms.
fn opcode31(w: u32) -> (u64, u64) {
    let (t, a, b) = (rt(w), ra(w), rb(w));
    let xo = (w >> 1) & 0x3FF;
    match xo {
        // loads indexed (the update forms write RA, which they read), load and reserve
        21 | 23 | 53 | 55 | 87 | 119 | 279 | 311 | 341 | 343 | 373 | 375 | 532 | 534 | 790 | 20 | 52 | 84 | 116 => {
            (x0(a) | x(b), x(t))
        }
        // stores indexed, store conditional (a CR field)
        149 | 151 | 181 | 183 | 215 | 247 | 407 | 439 | 660 | 662 | 918 | 150 | 214 | 694 | 726 => {
            (x(t) | x0(a) | x(b), 0)
        }
        535 | 567 | 599 | 631 | 855 | 887 => (x0(a) | x(b), f(t)), // lfsx, lfdx, lfiwax … (and update)
        663 | 695 | 727 | 759 | 983 => (f(t) | x0(a) | x(b), 0),   // stfsx, stfdx, stfiwx … (and update)
        // logical and shifts: RS, RB → RA
        24 | 27 | 28 | 60 | 124 | 284 | 316 | 412 | 444 | 476 | 536 | 539 | 792 | 794 => (x(t) | x(b), x(a)),
        // one source: srawi, extsb/h/w, cntlz*, cnttz*, popcnt*, sradi, extswsli (XS)
        824 | 954 | 922 | 986 | 26 | 58 | 538 | 570 | 122 | 378 | 506 | 826 | 827 | 890 | 891 => (x(t), x(a)),
        0 | 32 | 4 | 68 => (x(a) | x(b), 0), // cmp, cmpl (a CR field), tw, td
        265 | 267 | 777 | 779 => (x(a) | x(b), x(t)), // modud, moduw, modsd, modsw
        339 | 19 | 83 | 128 => (0, x(t)),    // mfspr (mflr, mfctr), mfcr/mfocrf, mfmsr, setb
        467 | 144 | 146 | 178 => (x(t), 0),  // mtspr (mtlr, mtctr), mtcrf, mtmsr, mtmsrd
        // sync, eieio and the cache hints: an address at most
        598 | 854 | 278 | 246 | 86 | 54 | 982 | 1014 => (x0(a) | x(b), 0),
        // mfvsrd, mfvsrwz, mfvsrld: a VSX register into RA (read as every FPR)
        51 | 115 | 307 => (FPRS, x(a)),
        // mtvsrd, mtvsrwa, mtvsrwz, mtvsrdd: RA (RB) into a VSX register (not counted as written)
        179 | 211 | 243 | 435 => (x0(a) | x(b), 0),
        _ => arithmetic(w),
    }
}

/// The XO-form arithmetic of opcode 31 (OE ignored); isel (A-form).
fn arithmetic(w: u32) -> (u64, u64) {
    let (t, a, b) = (rt(w), ra(w), rb(w));
    if (w >> 1) & 0x1F == 15 {
        return (x0(a) | x(b), x(t)); // isel: a CR bit picks RA|0 or RB
    }
    match (w >> 1) & 0x1FF {
        // add, addc, adde, subf, subfc, subfe, mul*, div*
        266 | 10 | 138 | 40 | 8 | 136 | 235 | 233 | 75 | 11 | 73 | 9 | 491 | 459 | 489 | 457 | 425 | 393 | 427
        | 395 => (x(a) | x(b), x(t)),
        104 | 202 | 234 | 200 | 232 => (x(a), x(t)), // neg, addze, addme, subfze, subfme
        _ => (EVERY, 0),
    }
}

/// Opcodes 59 and 63, floating point: the A-forms (fadd … fnmadd) and the X-forms that write
/// FRT; the compares write a CR field (whose number sits where FRT would).
fn floating(w: u32) -> (u64, u64) {
    let (t, a, b, c) = (rt(w), ra(w), rb(w), rc(w));
    if (18..=31).contains(&((w >> 1) & 0x1F)) {
        return (f(a) | f(b) | f(c), f(t));
    }
    match (w >> 1) & 0x3FF {
        // fmr, fneg, fabs, fnabs, frsp, fctiw[z], fctid[z], fcfid[u][s], fctidu[z], fri*
        72 | 40 | 264 | 136 | 12 | 14 | 15 | 814 | 815 | 846 | 942 | 943 | 974 | 392 | 424 | 456 | 488 => (f(b), f(t)),
        8 => (f(a) | f(b), f(t)),   // fcpsgn
        0 | 32 => (f(a) | f(b), 0), // fcmpu, fcmpo
        _ => (FPRS, 0),
    }
}

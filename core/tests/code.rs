//! The machine-code layer: each ISA's classifier on hand-assembled bytes (encodings taken
//! from `as` + `objdump -d` of the cross binutils, shown beside each), the per-function
//! events (tail jumps against all of a function's ranges, jumps to the entry, entry NOPs,
//! ppc64 local entries, decode errors), and the file-level entry points on the fixtures.

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};
use patchscope_core::binary::Binary;
use patchscope_core::code::{
    self, flag, function_events, kind, status, thunk, trap, Code, Decoder, Event, Image, Insn, Isa, NO_TARGET,
};
use patchscope_core::table::{Chunk, Scan, Table};

const N: u64 = NO_TARGET;

/// (offset, size, kind, target, extra) of every instruction.
fn decode(isa: Isa, bytes: &[u8], at: u64) -> Vec<(u64, u8, u8, u64, u32)> {
    Decoder::new(isa).decode(bytes, at).iter().map(|i| (i.address - at, i.size, i.kind, i.target, i.extra)).collect()
}

fn words_le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn words_be(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_be_bytes()).collect()
}

// ---- x86-64 ----------------------------------------------------------------------------------

const X86: &[u8] = &[
    0xf3, 0x0f, 0x1e, 0xfa, // 0: endbr64
    0x0f, 0x1f, 0x04, 0x00, // 4: nopl (%rax,%rax,1)
    0x66, 0x90, // 8: xchg %ax,%ax
    0xc3, // a: ret
    0xc2, 0x08, 0x00, // b: ret $0x8
    0xeb, 0x1e, // e: jmp 0x2e
    0xe9, 0xfb, 0x01, 0x00, 0x00, // 10: jmp 0x210
    0x74, 0x0e, // 15: je 0x25
    0x0f, 0x85, 0xfa, 0x03, 0x00, 0x00, // 17: jne 0x417
    0xe8, 0xfb, 0x00, 0x00, 0x00, // 1d: call 0x11d
    0xff, 0xe0, // 22: jmp *%rax
    0xff, 0xd0, // 24: call *%rax
    0xff, 0x15, 0x00, 0x01, 0x00, 0x00, // 26: call *0x100(%rip)  # 0x12c
    0xff, 0x25, 0x00, 0x01, 0x00, 0x00, // 2c: jmp *0x100(%rip)  # 0x132
    0x3e, 0xff, 0xe0, // 32: notrack jmp *%rax
    0xc7, 0xf8, 0x00, 0x00, 0x00, 0x00, // 35: xbegin 0x3b
    0x0f, 0x01, 0xd5, // 3b: xend
    0xc6, 0xf8, 0x42, // 3e: xabort $0x42
    0x0f, 0x01, 0xd6, // 41: xtest
    0xf2, 0xf0, 0x01, 0x07, // 44: xacquire lock add %eax,(%rdi)
    0xf3, 0xf0, 0x01, 0x07, // 48: xrelease lock add %eax,(%rdi)
    0xf3, 0x89, 0x07, // 4c: xrelease mov %eax,(%rdi)
    0xf0, 0x01, 0x07, // 4f: lock add %eax,(%rdi)
    0x0f, 0x0b, // 52: ud2
    0xcc, // 54: int3
    0xcd, 0x80, // 55: int $0x80
    0x0f, 0xb9, 0xc0, // 57: ud1 %eax,%eax
    0x48, 0xcb, // 5a: lretq
    0x48, 0xcf, // 5c: iretq
    0xf2, 0x0f, 0x01, 0xe8, // 5e: xsusldtrk
];

#[test]
fn x86_classes() {
    let got = decode(Isa::X86 { bits: 64 }, X86, 0);
    let want = vec![
        (0x0, 4, kind::ENDBR, N, 0),
        (0x4, 4, kind::NOP, N, 0),
        (0x8, 2, kind::NOP, N, 0),
        (0xa, 1, kind::RETURN, N, 0),
        (0xb, 3, kind::RETURN, N, 0),
        (0xe, 2, kind::JUMP, 0x2e, 0),
        (0x10, 5, kind::JUMP, 0x210, 0),
        (0x15, 2, kind::JUMP, 0x25, flag::CONDITIONAL),
        (0x17, 6, kind::JUMP, 0x417, flag::CONDITIONAL),
        (0x1d, 5, kind::CALL_DIRECT, 0x11d, 0),
        (0x22, 2, kind::JUMP_INDIRECT, N, 0),
        (0x24, 2, kind::CALL_INDIRECT, N, 0),
        (0x26, 6, kind::CALL_INDIRECT, 0x12c, flag::SLOT),
        (0x2c, 6, kind::JUMP_INDIRECT, 0x132, flag::SLOT),
        (0x32, 3, kind::JUMP_INDIRECT, N, 0),
        (0x35, 6, kind::TM_BEGIN, 0x3b, 0),
        (0x3b, 3, kind::TM_END, N, 0),
        (0x3e, 3, kind::TM_ABORT, N, 0x42),
        (0x41, 3, kind::TM_TEST, N, 0),
        (0x44, 4, kind::HLE, N, flag::XACQUIRE),
        (0x48, 4, kind::HLE, N, flag::XRELEASE),
        (0x4c, 3, kind::HLE, N, flag::XRELEASE),
        (0x4f, 3, kind::OTHER, N, 0),
        (0x52, 2, kind::TRAP, N, trap::UNDEFINED),
        (0x54, 1, kind::TRAP, N, trap::BREAKPOINT),
        (0x55, 2, kind::TRAP, N, trap::INTERRUPT | 0x80 << 16),
        (0x57, 3, kind::TRAP, N, trap::UNDEFINED),
        (0x5a, 2, kind::RETURN, N, flag::FAR),
        (0x5c, 2, kind::RETURN, N, flag::FAR),
        (0x5e, 4, kind::TM_OTHER, N, 0),
    ];
    assert_eq!(got, want);
}

#[test]
fn x86_thunks_and_bad_bytes() {
    let mut dec = Decoder::new(Isa::X86 { bits: 64 });
    dec.add_thunk(0x2000, thunk::RETURN);
    dec.add_thunk(0x3000, thunk::INDIRECT);
    let bytes = [
        0xe9, 0xfb, 0x0f, 0x00, 0x00, // 1000: jmp 0x2000 <__x86_return_thunk>
        0x0f, 0x84, 0xf5, 0x0f, 0x00, 0x00, // 1005: je 0x2000 <__x86_return_thunk>
        0xe9, 0xf0, 0x1f, 0x00, 0x00, // 100b: jmp 0x3000 <__x86_indirect_thunk_rax>
        0xe8, 0xeb, 0x1f, 0x00, 0x00, // 1010: call 0x3000 <__x86_indirect_thunk_rax>
        0x06, // 1015: (bad) in 64-bit mode
        0xc3, // 1016: ret
        0x0f, // 1017: truncated
    ];
    let got: Vec<_> = dec.decode(&bytes, 0x1000).iter().map(|i| (i.address, i.kind, i.target, i.extra)).collect();
    assert_eq!(
        got,
        vec![
            (0x1000, kind::RETURN, 0x2000, flag::THUNK),
            (0x1005, kind::RETURN, 0x2000, flag::THUNK | flag::CONDITIONAL),
            (0x100b, kind::JUMP_INDIRECT, 0x3000, flag::THUNK),
            (0x1010, kind::CALL_INDIRECT, 0x3000, flag::THUNK),
            (0x1015, kind::ERROR, N, 0),
            (0x1016, kind::RETURN, N, 0),
            (0x1017, kind::ERROR, N, 0),
        ]
    );
    let insns = dec.decode(&bytes, 0x1000);
    let text = dec.texts(&bytes, 0x1000, &insns);
    assert_eq!(text[0], "jmp 0x2000");
    assert_eq!(text[4], "(bad)");
    assert_eq!(text[5], "ret");
    // A range that ends inside an instruction: one error for the rest, not a resync.
    let got = decode(Isa::X86 { bits: 64 }, &[0x90, 0xe8, 0x00, 0x00], 0);
    assert_eq!(got, vec![(0, 1, kind::NOP, N, 0), (1, 3, kind::ERROR, N, 0)]);
    // A pointer slot is shown as objdump does, with its address.
    let slot = [0xff, 0x15, 0x00, 0x01, 0x00, 0x00];
    let insns = dec.decode(&slot, 0x26);
    assert_eq!(dec.texts(&slot, 0x26, &insns), vec!["call *0x100(%rip)  # 0x12c"]);
}

// ---- aarch64 ---------------------------------------------------------------------------------

#[test]
fn aarch64_classes() {
    use flag::*;
    let words = [
        0xd65f03c0, // 0: ret
        0x14000004, // 4: b 14
        0x94000010, // 8: bl 48
        0x54000041, // c: b.ne 14
        0x34000040, // 10: cbz w0, 18
        0x37000040, // 14: tbnz w0, #0, 1c
        0xd61f0200, // 18: br x16
        0xd63f0020, // 1c: blr x1
        0xd65f0bff, // 20: retaa
        0xd71f0822, // 24: braa x1, x2
        0x885ffc01, // 28: ldaxr w1, [x0]
        0x8802fc01, // 2c: stlxr w2, w1, [x0]
        0xc85f7c01, // 30: ldxr x1, [x0]
        0xc8027c01, // 34: stxr w2, x1, [x0]
        0x085ffc01, // 38: ldaxrb w1, [x0]
        0x4802fc01, // 3c: stlxrh w2, w1, [x0]
        0xc87f0801, // 40: ldxp x1, x2, [x0]
        0xc8238801, // 44: stlxp w3, x1, x2, [x0]
        0x889ffc01, // 48: stlr w1, [x0]
        0xc8dffc01, // 4c: ldar x1, [x0]
        0x88e1fc02, // 50: casal w1, w2, [x0]
        0x88e17c02, // 54: casa w1, w2, [x0]
        0x48207c82, // 58: casp x0, x1, x2, x3, [x4]
        0xb8e10040, // 5c: ldaddal w1, w0, [x2]
        0xf8218040, // 60: swp x1, x0, [x2]
        0xb8bfc020, // 64: ldapr w0, [x1]
        0xd4210000, // 68: brk #0x800
        0x00000003, // 6c: udf #3
        0xd503201f, // 70: nop
        0xd503245f, // 74: bti c
        0xd4400020, // 78: hlt #0x1
        0xd4000001, // 7c: svc #0x0
        0xd5233060, // 80: tstart x0
        0xd503307f, // 84: tcommit
        0xd4600840, // 88: tcancel #66
        0xd5233161, // 8c: ttest x1
        0x5400004e, // 90: b.al 98
    ];
    let got = decode(Isa::Aarch64, &words_le(&words), 0);
    let (kl, ks, ke) = (K_LOAD_EX, K_STORE_EX, K_EXCLUSIVE);
    let want = vec![
        (0x0, 4, kind::RETURN, N, 0),
        (0x4, 4, kind::JUMP, 0x14, 0),
        (0x8, 4, kind::CALL_DIRECT, 0x48, 0),
        (0xc, 4, kind::JUMP, 0x14, CONDITIONAL),
        (0x10, 4, kind::JUMP, 0x18, CONDITIONAL),
        (0x14, 4, kind::JUMP, 0x1c, CONDITIONAL),
        (0x18, 4, kind::JUMP_INDIRECT, N, 0),
        (0x1c, 4, kind::CALL_INDIRECT, N, 0),
        (0x20, 4, kind::RETURN, N, AUTH),
        (0x24, 4, kind::JUMP_INDIRECT, N, AUTH),
        (0x28, 4, kind::LL, N, 4 | ACQUIRE | kl | ke),
        (0x2c, 4, kind::SC, N, 4 | RELEASE | ks | ke),
        (0x30, 4, kind::LL, N, 8 | kl | ke),
        (0x34, 4, kind::SC, N, 8 | ks | ke),
        (0x38, 4, kind::LL, N, 1 | ACQUIRE | kl | ke),
        (0x3c, 4, kind::SC, N, 2 | RELEASE | ks | ke),
        (0x40, 4, kind::LL, N, 16 | PAIR | kl | ke),
        (0x44, 4, kind::SC, N, 16 | PAIR | RELEASE | ks | ke),
        // The 6.1 kernel's masks ignore o2: STLR looks like a store-exclusive, LDAR and
        // CASA like load-exclusives.
        (0x48, 4, kind::ORDERED, N, 4 | RELEASE | ks),
        (0x4c, 4, kind::ORDERED, N, 8 | ACQUIRE | kl),
        (0x50, 4, kind::LSE_ATOMIC, N, 4 | ACQUIRE | RELEASE | kl),
        (0x54, 4, kind::LSE_ATOMIC, N, 4 | ACQUIRE | kl),
        (0x58, 4, kind::LSE_ATOMIC, N, 16 | PAIR | ks | ke),
        (0x5c, 4, kind::LSE_ATOMIC, N, 4 | ACQUIRE | RELEASE),
        (0x60, 4, kind::LSE_ATOMIC, N, 8),
        (0x64, 4, kind::OTHER, N, 0),
        (0x68, 4, kind::TRAP, N, trap::BREAKPOINT | 0x800 << 16),
        (0x6c, 4, kind::TRAP, N, trap::UNDEFINED | 3 << 16),
        (0x70, 4, kind::NOP, N, 0),
        (0x74, 4, kind::ENDBR, N, 1),
        (0x78, 4, kind::TRAP, N, trap::BREAKPOINT | 1 << 16),
        (0x7c, 4, kind::OTHER, N, 0),
        (0x80, 4, kind::TM_BEGIN, N, 0),
        (0x84, 4, kind::TM_END, N, 0),
        (0x88, 4, kind::TM_ABORT, N, 66),
        (0x8c, 4, kind::TM_TEST, N, 0),
        (0x90, 4, kind::JUMP, 0x98, 0),
    ];
    assert_eq!(got, want);
    // The small printer (the capstone feature replaces it in the Python module).
    if cfg!(not(feature = "capstone")) {
        let dec = Decoder::new(Isa::Aarch64);
        let b = words_le(&words);
        let insns = dec.decode(&b, 0);
        let text = dec.texts(&b, 0, &insns);
        assert_eq!(
            (text[2].as_str(), text[3].as_str(), text[10].as_str()),
            ("bl 0x48", "b.ne 0x14", "ldaxr (.inst 0x885ffc01)")
        );
    }
    // A trailing partial word is a decode error, never a panic.
    let mut short = words_le(&words[..2]);
    short.push(0xd6);
    let got = decode(Isa::Aarch64, &short, 0x400000);
    assert_eq!(got.last(), Some(&(8, 1, kind::ERROR, N, 0)));
    // Negative offsets: b .-8 at 0x1000.
    assert_eq!(decode(Isa::Aarch64, &words_le(&[0x17fffffe]), 0x1000)[0].3, 0xff8);
}

// ---- ppc64 -----------------------------------------------------------------------------------

const PPC: [u32; 44] = [
    0x3c4c0000, // 0: addis r2,r12,0
    0x38420000, // 4: addi r2,r2,0
    0x60000000, // 8: nop
    0x4e800020, // c: blr
    0x48000010, // 10: b 20
    0x48000041, // 14: bl 54
    0x41820008, // 18: beq 20
    0x409efff8, // 1c: bne cr7,14
    0x4200000c, // 20: bdnz 2c
    0x48000005, // 24: bl 28
    0x429f0005, // 28: bcl 20,4*cr7+so,2c
    0x4d820020, // 2c: beqlr
    0x4c9e0020, // 30: bnelr cr7
    0x4e800420, // 34: bctr
    0x4e800421, // 38: bctrl
    0x4e800021, // 3c: blrl
    0x4e800460, // 40: btar
    0x7d201828, // 44: lwarx r9,0,r3
    0x7d2018a9, // 48: ldarx r9,0,r3,1
    0x7d201868, // 4c: lbarx r9,0,r3
    0x7d2018e8, // 50: lharx r9,0,r3
    0x7d001a28, // 54: lqarx r8,0,r3
    0x7d20192d, // 58: stwcx. r9,0,r3
    0x7d2019ad, // 5c: stdcx. r9,0,r3
    0x7d201d6d, // 60: stbcx. r9,0,r3
    0x7d201dad, // 64: sthcx. r9,0,r3
    0x7d00196d, // 68: stqcx. r8,0,r3
    0x7c00051d, // 6c: tbegin.
    0x7c00055d, // 70: tend.
    0x7e00055d, // 74: tendall.
    0x7c03071d, // 78: tabort. r3
    0x7c03261d, // 7c: tabortwc. 0,r3,r4
    0x7c032edd, // 80: tabortdci. 0,r3,5
    0x7c00059c, // 84: tcheck cr0
    0x7c0005dd, // 88: tsuspend.
    0x7c2005dd, // 8c: tresume.
    0x7c03075d, // 90: treclaim. r3
    0x7c0007dd, // 94: trechkpt.
    0x7fe00008, // 98: trap
    0x0fe00000, // 9c: twui r0,0
    0x0b030000, // a0: tdnei r3,0
    0x7c832008, // a4: tweq r3,r4
    0x44000002, // a8: sc
    0x48000102, // ac: ba 100
];

fn ppc_want() -> Vec<(u64, u8, u8, u64, u32)> {
    use flag::CONDITIONAL as C;
    vec![
        (0x0, 4, kind::OTHER, N, 0),
        (0x4, 4, kind::OTHER, N, 0),
        (0x8, 4, kind::NOP, N, 0),
        (0xc, 4, kind::RETURN, N, 0),
        (0x10, 4, kind::JUMP, 0x20, 0),
        (0x14, 4, kind::CALL_DIRECT, 0x54, 0),
        (0x18, 4, kind::JUMP, 0x20, C),
        (0x1c, 4, kind::JUMP, 0x14, C),
        (0x20, 4, kind::JUMP, 0x2c, C),
        (0x24, 4, kind::CALL_DIRECT, 0x28, 0),
        (0x28, 4, kind::CALL_DIRECT, 0x2c, 0),
        (0x2c, 4, kind::RETURN, N, C),
        (0x30, 4, kind::RETURN, N, C),
        (0x34, 4, kind::JUMP_INDIRECT, N, 0),
        (0x38, 4, kind::CALL_INDIRECT, N, 0),
        (0x3c, 4, kind::CALL_INDIRECT, N, 0),
        (0x40, 4, kind::JUMP_INDIRECT, N, 0),
        (0x44, 4, kind::LL, N, 4),
        (0x48, 4, kind::LL, N, 8),
        (0x4c, 4, kind::LL, N, 1),
        (0x50, 4, kind::LL, N, 2),
        (0x54, 4, kind::LL, N, 16),
        (0x58, 4, kind::SC, N, 4),
        (0x5c, 4, kind::SC, N, 8),
        (0x60, 4, kind::SC, N, 1),
        (0x64, 4, kind::SC, N, 2),
        (0x68, 4, kind::SC, N, 16),
        (0x6c, 4, kind::TM_BEGIN, N, 0),
        (0x70, 4, kind::TM_END, N, 0),
        (0x74, 4, kind::TM_END, N, 0),
        (0x78, 4, kind::TM_ABORT, N, 0),
        (0x7c, 4, kind::TM_ABORT, N, 0),
        (0x80, 4, kind::TM_ABORT, N, 0),
        (0x84, 4, kind::TM_TEST, N, 0),
        (0x88, 4, kind::TM_OTHER, N, 0),
        (0x8c, 4, kind::TM_OTHER, N, 0),
        (0x90, 4, kind::TM_OTHER, N, 0),
        (0x94, 4, kind::TM_OTHER, N, 0),
        (0x98, 4, kind::TRAP, N, trap::UNDEFINED | 31 << 16),
        (0x9c, 4, kind::TRAP, N, trap::UNDEFINED | 31 << 16),
        (0xa0, 4, kind::TRAP, N, trap::CONDITIONAL | 24 << 16),
        (0xa4, 4, kind::TRAP, N, trap::CONDITIONAL | 4 << 16),
        (0xa8, 4, kind::OTHER, N, 0),
        (0xac, 4, kind::JUMP, 0x100, 0),
    ]
}

#[test]
fn ppc_classes_both_byte_orders() {
    let le = Isa::Ppc { big_endian: false, bits64: true };
    let be = Isa::Ppc { big_endian: true, bits64: true };
    assert_eq!(decode(le, &words_le(&PPC), 0), ppc_want());
    assert_eq!(decode(be, &words_be(&PPC), 0), ppc_want());
    // The ELFv2 global entry: addis r2,r12 / addi r2,r2 (and the large-model form).
    assert_eq!(Decoder::new(le).local_entry(&words_le(&PPC)), Some(8));
    assert_eq!(Decoder::new(be).local_entry(&words_be(&[0xe84cfff8, 0x7c426214])), Some(8));
    assert_eq!(Decoder::new(le).local_entry(&words_le(&PPC[2..])), None);
    // ELFv1 has no local entries.
    assert_eq!(Decoder::new(Isa::Aarch64).local_entry(&words_le(&PPC)), None);
    // A prefixed (v3.1) instruction takes 8 bytes: pnop.
    let got = decode(le, &words_le(&[0x07000000, 0x00000000, 0x4e800020]), 0);
    assert_eq!(got, vec![(0, 8, kind::OTHER, N, 0), (8, 4, kind::RETURN, N, 0)]);
}

// ---- riscv64 ---------------------------------------------------------------------------------

#[test]
fn riscv_classes() {
    use flag::*;
    let halves: &[u16] = &[
        0x8082, // 0: ret (c.jr ra)
        0x8782, // 2: jr a5
        0x9782, // 4: jalr a5
    ];
    let mut b: Vec<u8> = halves.iter().flat_map(|h| h.to_le_bytes()).collect();
    b.extend(0x010000efu32.to_le_bytes()); // 6: jal ra,16
    b.extend(0xa021u16.to_le_bytes()); // a: c.j 12
    b.extend(0x00b50663u32.to_le_bytes()); // c: beq a0,a1,18
    b.extend(0xfd75u16.to_le_bytes()); // 10: c.bnez a0,c
    b.extend(0xc119u16.to_le_bytes()); // 12: c.beqz a0,18
    b.extend(0x9002u16.to_le_bytes()); // 14: c.ebreak
    b.extend(0x00100073u32.to_le_bytes()); // 16: ebreak
    b.extend(0xc0001073u32.to_le_bytes()); // 1a: unimp
    b.extend(0x0000u16.to_le_bytes()); // 1e: c.unimp
    b.extend(0x00000013u32.to_le_bytes()); // 20: nop
    b.extend(0x0001u16.to_le_bytes()); // 24: c.nop
    b.extend(0x1405272fu32.to_le_bytes()); // 26: lr.w.aq a4,(a0)
    b.extend(0x1cd5262fu32.to_le_bytes()); // 2a: sc.w.aq a2,a3,(a0)
    b.extend(0x1007b72fu32.to_le_bytes()); // 2e: lr.d a4,(a5)
    b.extend(0x1ab7b6afu32.to_le_bytes()); // 32: sc.d.rl a3,a1,(a5)
    b.extend(0x04e527afu32.to_le_bytes()); // 36: amoadd.w.aq a5,a4,(a0)
    b.extend(0x0805302fu32.to_le_bytes()); // 3a: amoswap.d zero,zero,(a0)
    b.extend(0x00001097u32.to_le_bytes()); // 3e: auipc ra,0x1
    b.extend(0xff0080e7u32.to_le_bytes()); // 42: jalr ra,-16(ra)  # 102e
    b.extend(0x00000317u32.to_le_bytes()); // 46: auipc t1,0x0
    b.extend(0x00830067u32.to_le_bytes()); // 4a: jr 8(t1)  # 4e
    b.extend(0x8282u16.to_le_bytes()); // 4e: jr t0
    b.extend(0x008002efu32.to_le_bytes()); // 50: jal t0,58
    b.extend(0x00000317u32.to_le_bytes()); // 54: auipc t1,0x0
    b.extend(0x00030313u32.to_le_bytes()); // 58: addi t1,t1,0
    b.extend(0x00030067u32.to_le_bytes()); // 5c: jr t1 (not paired: the auipc is not just before)
    b.extend(0x00000017u32.to_le_bytes()); // 60: lpad 0 (auipc x0)
    b.extend(0x001fu16.to_le_bytes()); // 64: a 48-bit instruction's first parcel
    b.extend([0, 0, 0, 0]);
    b.extend(0x007fu16.to_le_bytes()); // 6a: an 80-bit+ length: undecodable parcel
    b.extend(0x8082u16.to_le_bytes()); // 6c: ret
    let got = decode(Isa::Riscv { xlen: 64 }, &b, 0);
    let want = vec![
        (0x0, 2, kind::RETURN, N, 0),
        (0x2, 2, kind::JUMP_INDIRECT, N, 0),
        (0x4, 2, kind::CALL_INDIRECT, N, 0),
        (0x6, 4, kind::CALL_DIRECT, 0x16, 0),
        (0xa, 2, kind::JUMP, 0x12, 0),
        (0xc, 4, kind::JUMP, 0x18, CONDITIONAL),
        (0x10, 2, kind::JUMP, 0xc, CONDITIONAL),
        (0x12, 2, kind::JUMP, 0x18, CONDITIONAL),
        (0x14, 2, kind::TRAP, N, trap::BREAKPOINT),
        (0x16, 4, kind::TRAP, N, trap::BREAKPOINT),
        (0x1a, 4, kind::TRAP, N, trap::UNDEFINED),
        (0x1e, 2, kind::TRAP, N, trap::UNDEFINED),
        (0x20, 4, kind::NOP, N, 0),
        (0x24, 2, kind::NOP, N, 0),
        (0x26, 4, kind::LL, N, 4 | ACQUIRE),
        (0x2a, 4, kind::SC, N, 4 | ACQUIRE),
        (0x2e, 4, kind::LL, N, 8),
        (0x32, 4, kind::SC, N, 8 | RELEASE),
        (0x36, 4, kind::LSE_ATOMIC, N, 4 | ACQUIRE),
        (0x3a, 4, kind::LSE_ATOMIC, N, 8),
        (0x3e, 4, kind::OTHER, N, 0),
        (0x42, 4, kind::CALL_DIRECT, 0x102e, 0),
        (0x46, 4, kind::OTHER, N, 0),
        (0x4a, 4, kind::JUMP, 0x4e, 0),
        (0x4e, 2, kind::RETURN, N, ALT_LINK),
        (0x50, 4, kind::CALL_DIRECT, 0x58, ALT_LINK),
        (0x54, 4, kind::OTHER, N, 0),
        (0x58, 4, kind::OTHER, N, 0),
        (0x5c, 4, kind::JUMP_INDIRECT, N, 0),
        (0x60, 4, kind::ENDBR, N, 0),
        (0x64, 6, kind::OTHER, N, 0),
        (0x6a, 2, kind::ERROR, N, 0),
        (0x6c, 2, kind::RETURN, N, 0),
    ];
    assert_eq!(got, want);
    // RV32: 0x2001 is c.jal (RV64: c.addiw).
    assert_eq!(decode(Isa::Riscv { xlen: 32 }, &0x2001u16.to_le_bytes(), 0x100)[0].2, kind::CALL_DIRECT);
    assert_eq!(decode(Isa::Riscv { xlen: 64 }, &0x2001u16.to_le_bytes(), 0x100)[0].2, kind::OTHER);
}

// ---- per-function events ---------------------------------------------------------------------

type Events = Vec<(u64, u8, u64, u32)>;

fn events(dec: &Decoder, parts: &[Code]) -> (Vec<code::RangeFacts>, Events) {
    let mut ev: Vec<Event> = Vec::new();
    let facts = function_events(dec, parts, &mut ev);
    (facts, ev.iter().map(|e| (e.address, e.kind, e.target, e.extra)).collect())
}

fn part(low: u64, bytes: &[u8]) -> Code<'_> {
    Code { low, high: low + bytes.len() as u64, bytes, status: 0 }
}

#[test]
fn x86_function_events() {
    let dec = Decoder::new(Isa::X86 { bits: 64 });
    // Hot part at 0x1000, cold part at 0x800.
    let hot = [
        0xf3, 0x0f, 0x1e, 0xfa, // 1000: endbr64
        0x0f, 0x1f, 0x44, 0x00, 0x00, // 1004: nopl 0x0(%rax,%rax,1)  (a patchable entry)
        0x85, 0xff, // 1009: test %edi,%edi
        0x0f, 0x84, 0xeb, 0xf7, 0xff, 0xff, // 100b: je 0x7fc → into cold at 0x800? (0x1011-0x815)
        0x74, 0x02, // 1011: je 0x1015 (inside)
        0xeb, 0xeb, // 1013: jmp 0x1000 (to the entry)
        0xe9, 0xe6, 0x0f, 0x00, 0x00, // 1015: jmp 0x2000 (tail)
    ];
    let cold = [
        0xe8, 0xfb, 0x27, 0x00, 0x00, // 800: call 0x3000
        0xe9, 0x07, 0x08, 0x00, 0x00, // 805: jmp 0x1011 (back into hot)
        0xff, 0xe0, // 80a: jmp *%rax
        0xc3, // 80c: ret
    ];
    let (facts, ev) = events(&dec, &[part(0x1000, &hot), part(0x800, &cold)]);
    assert_eq!(facts.len(), 2);
    assert_eq!((facts[0].insns, facts[0].errors, facts[0].first_bad), (7, 0, u64::MAX));
    assert_eq!(facts[1].insns, 4);
    assert_eq!(
        ev,
        vec![
            (0x1000, kind::ENDBR, N, 0),
            (0x1004, kind::ENTRY_NOPS, N, 1),
            // je 0x7fc: outside both ranges (the cold part starts at 0x800).
            (0x100b, kind::TAIL_JUMP_DIRECT, 0x7fc, flag::CONDITIONAL),
            (0x1013, kind::JUMP_TO_ENTRY, 0x1000, 0),
            (0x1015, kind::TAIL_JUMP_DIRECT, 0x2000, 0),
            (0x800, kind::CALL_DIRECT, 0x3000, 0),
            (0x80a, kind::TAIL_JUMP_INDIRECT, N, 0),
            (0x80c, kind::RETURN, N, 0),
        ]
    );
    // Without its cold part the function's jump into it is a tail jump.
    let (_, ev) = events(&dec, &[part(0x800, &cold)]);
    assert!(ev.contains(&(0x805, kind::TAIL_JUMP_DIRECT, 0x1011, 0)));
    // Bad bytes are counted with the offset of the first, and decoding goes on.
    let bad = [0x90, 0x06, 0x06, 0xc3];
    let (facts, ev) = events(&dec, &[part(0x10, &bad)]);
    assert_eq!((facts[0].insns, facts[0].errors, facts[0].first_bad), (2, 2, 1));
    assert_eq!(ev, vec![(0x10, kind::ENTRY_NOPS, N, 1), (0x13, kind::RETURN, N, 0)]);
}

#[test]
fn ppc_local_entry_and_jump_to_it() {
    let dec = Decoder::new(Isa::Ppc { big_endian: false, bits64: true });
    let words = [
        0x3c4c0002, // 1000: addis r2,r12,2
        0x38427f00, // 1004: addi r2,r2,32512
        0x60000000, // 1008: nop
        0x2c030000, // 100c: cmpwi r3,0
        0x4182fff8, // 1010: beq 1008 (the local entry)
        0x4bffefed, // 1014: bl 0 (a call)
        0x4e800020, // 1018: blr
    ];
    let b = words_le(&words);
    let (_, ev) = events(&dec, &[part(0x1000, &b)]);
    assert_eq!(
        ev,
        vec![
            (0x1000, kind::LOCAL_ENTRY, 0x1008, 8),
            (0x1008, kind::ENTRY_NOPS, N, 1),
            (0x1010, kind::JUMP_TO_ENTRY, 0x1008, flag::CONDITIONAL),
            (0x1014, kind::CALL_DIRECT, 0x0, 0),
            (0x1018, kind::RETURN, N, 0),
        ]
    );
}

#[test]
fn aarch64_function_events() {
    let dec = Decoder::new(Isa::Aarch64);
    let words = [
        0xd503245f, // 0: bti c
        0xd503201f, // 4: nop
        0xd503201f, // 8: nop
        0x885ffc01, // c: ldaxr w1, [x0]
        0x8802fc01, // 10: stlxr w2, w1, [x0]
        0x35ffffc2, // 14: cbnz w2, c (inside)
        0xb4ffff60, // 18: cbz x0, 4 (inside, not the entry)
        0x17fffffa, // 1c: b 4
        0x14000100, // 20: b 420 (tail)
        0xd61f0200, // 24: br x16
    ];
    let b = words_le(&words);
    let (facts, ev) = events(&dec, &[part(0, &b)]);
    assert_eq!(facts[0].insns, 10);
    let kinds: Vec<_> = ev.iter().map(|e| (e.0, e.1)).collect();
    assert_eq!(
        kinds,
        vec![
            (0x0, kind::ENDBR),
            (0x4, kind::ENTRY_NOPS),
            (0xc, kind::LL),
            (0x10, kind::SC),
            (0x20, kind::TAIL_JUMP_DIRECT),
            (0x24, kind::TAIL_JUMP_INDIRECT),
        ]
    );
    assert_eq!(ev[1].3, 2, "two entry NOPs");
}

#[test]
fn image_lookup() {
    let a = [1u8; 16];
    let b = [2u8; 8];
    let img = Image::from_parts(vec![(0x100, &a[..]), (0x200, &b[..])]);
    let c = img.code(0x104, 0x108);
    assert_eq!((c.bytes.len(), c.status), (4, 0));
    let c = img.code(0x204, 0x210);
    assert_eq!((c.bytes.len(), c.status), (4, status::TRUNCATED));
    assert_eq!(img.code(0x180, 0x190).status, status::NO_BYTES);
    assert_eq!(img.code(0x50, 0x60).status, status::NO_BYTES);
    assert_eq!(img.code(0x108, 0x108).bytes.len(), 0);
}

// ---- the fixtures ----------------------------------------------------------------------------

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bin").join(rel)
}

fn open(path: &Path) -> Binary {
    Binary::open(path, None, &[]).unwrap()
}

/// (address, size) of the defined symbol `name`, at the synthetic addresses of a relocatable file.
fn symbol(path: &Path, name: &str) -> (u64, u64) {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let bases = patchscope_core::elf::section_bases(&file);
    let s = file.symbols().find(|s| s.name() == Ok(name) && !s.is_undefined()).unwrap_or_else(|| panic!("{name}"));
    let base = match file.kind() {
        object::ObjectKind::Relocatable => s.section_index().map_or(0, |i| bases[i.0]),
        _ => 0,
    };
    (s.address() + base, s.size())
}

fn column<'a>(t: &'a Table, name: &str) -> &'a [Chunk] {
    &t.columns.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("column {name}")).1.chunks
}

fn u64s(t: &Table, name: &str) -> Vec<u64> {
    column(t, name)
        .iter()
        .flat_map(|c| match c {
            Chunk::U64(v) => v.clone(),
            Chunk::U32(v) | Chunk::Str(v) => v.iter().map(|&x| u64::from(x)).collect(),
            Chunk::U8(v) => v.iter().map(|&x| u64::from(x)).collect(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn table<'a>(s: &'a Scan, name: &str) -> &'a Table {
    &s.tables.iter().find(|(n, _)| *n == name).unwrap().1
}

fn string(s: &Scan, i: u64) -> String {
    let (a, b) = (s.string_offsets[i as usize] as usize, s.string_offsets[i as usize + 1] as usize);
    String::from_utf8_lossy(&s.string_data[a..b]).into_owned()
}

/// Every event of the functions named, as (function id, address, kind, target, target name).
fn facts_of(path: &Path, names: &[&str]) -> Vec<(u64, u64, u8, u64, String)> {
    let (mut ids, mut lows, mut highs) = (vec![], vec![], vec![]);
    for (i, n) in names.iter().enumerate() {
        let (a, s) = symbol(path, n);
        ids.push(i as u64);
        lows.push(a);
        highs.push(a + s);
    }
    let s = open(path).code_facts(&ids, &lows, &highs).unwrap();
    let r = table(&s, "code_ranges");
    assert_eq!(u64s(r, "decode_errors"), vec![0; names.len()]);
    assert_eq!(u64s(r, "status"), vec![0; names.len()]);
    assert!(u64s(r, "insn_count").iter().all(|&n| n > 0));
    let e = table(&s, "code_events");
    let (f, a, k, t, n) =
        (u64s(e, "function_id"), u64s(e, "address"), u64s(e, "kind"), u64s(e, "target"), u64s(e, "target_name"));
    (0..f.len()).map(|i| (f[i], a[i], k[i] as u8, t[i], string(&s, n[i]))).collect()
}

#[test]
fn fixture_tail_calls_x86_64() {
    let p = fixture("x86_64/corpus");
    let ev = facts_of(&p, &["wrapper_tail", "wrapper_notail", "wrapper_indirect", "tm_increment"]);
    let real = symbol(&p, "real_impl").0;
    assert!(ev.iter().any(|e| e.0 == 0 && e.2 == kind::TAIL_JUMP_DIRECT && e.3 == real));
    assert!(!ev.iter().any(|e| e.0 == 0 && e.2 == kind::RETURN));
    assert!(ev.iter().any(|e| e.0 == 1 && e.2 == kind::CALL_DIRECT && e.3 == real));
    assert!(ev.iter().any(|e| e.0 == 2 && e.2 == kind::TAIL_JUMP_INDIRECT));
    let tm: Vec<u8> =
        ev.iter().filter(|e| e.0 == 3 && e.2 >= kind::TM_BEGIN && e.2 <= kind::TM_OTHER).map(|e| e.2).collect();
    assert_eq!(tm, vec![kind::TM_BEGIN, kind::TM_END, kind::TM_ABORT]);
}

#[test]
fn fixture_relocatable_targets() {
    // In a `.o`, a branch to another section or to an undefined symbol is a relocation.
    for arch in ["x86_64-rel", "aarch64-rel"] {
        let p = fixture(&format!("{arch}/module.o"));
        let ev = facts_of(&p, &["wrapper_xtu", "wrapper_tail", "wrapper_notail"]);
        let real = symbol(&p, "real_impl").0;
        assert!(
            ev.iter().any(|e| e.0 == 0 && e.2 == kind::TAIL_JUMP_DIRECT && e.3 == NO_TARGET && e.4 == "helper_both"),
            "{arch}: {ev:?}"
        );
        assert!(ev.iter().any(|e| e.0 == 1 && e.2 == kind::TAIL_JUMP_DIRECT && e.3 == real), "{arch}: {ev:?}");
        assert!(ev.iter().any(|e| e.0 == 2 && e.2 == kind::CALL_DIRECT && e.3 == real), "{arch}: {ev:?}");
    }
}

#[test]
fn fixture_ppc64_elfv1_big_endian() {
    // ELFv1: the symbol is a descriptor in .opd whose first doubleword is the code
    // address. `check_flags.constprop.0` is `li r3,0; blr`.
    let p = fixture("elf-arches/ppc64/corpus");
    let (desc, _) = symbol(&p, "check_flags.constprop.0");
    let data = std::fs::read(&p).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let opd = file.section_by_name(".opd").unwrap();
    let at = (desc - object::ObjectSection::address(&opd)) as usize;
    let bytes = object::ObjectSection::data(&opd).unwrap();
    let a = u64::from_be_bytes(bytes[at..at + 8].try_into().unwrap());
    let got = open(&p).code_facts(&[7], &[a], &[a + 8]).unwrap();
    let e = table(&got, "code_events");
    assert_eq!(u64s(e, "kind"), vec![u64::from(kind::RETURN)]);
    assert_eq!(u64s(e, "function_id"), vec![7]);
    assert_eq!(u64s(e, "address"), vec![a + 4]);
    assert_eq!(u64s(table(&got, "code_ranges"), "insn_count"), vec![2]);
}

#[test]
fn fixture_errors_and_instructions() {
    let p = fixture("x86_64/corpus");
    let e = open(&p).code_facts(&[1, 2], &[0], &[1]).err().unwrap();
    assert!(e.0.contains("differ in length"), "{e}");
    let e = open(&fixture("elf-arches/mips/corpus")).code_facts(&[1], &[0], &[4]).err().unwrap();
    assert!(e.0.contains("mips") && e.0.contains("cannot be decoded"), "{e}");
    assert!(Binary::open(Path::new("/nonexistent"), None, &[]).is_err());
    // A range in no section: reported, not fatal.
    let s = open(&p).code_facts(&[5], &[0xdead_0000], &[0xdead_0010]).unwrap();
    assert_eq!(u64s(table(&s, "code_ranges"), "status"), vec![u64::from(status::NO_BYTES)]);

    let (a, size) = symbol(&p, "tm_increment");
    let s = open(&p).instructions(a, a + size).unwrap();
    let t = table(&s, "insns");
    let addr = u64s(t, "address");
    assert_eq!(addr[0], a);
    let sizes = u64s(t, "size");
    assert_eq!(addr.last().zip(sizes.last()).map(|(a, s)| a + s), Some(a + size));
    let text: Vec<String> = u64s(t, "text").into_iter().map(|i| string(&s, i)).collect();
    assert!(text.iter().any(|x| x.starts_with("xbegin")), "{text:?}");
    assert!(text.iter().any(|x| x == "xabort $0x42"), "{text:?}");
    let kinds = u64s(t, "kind");
    let xend = text.iter().position(|x| x == "xend").unwrap();
    assert_eq!(kinds[xend], u64::from(kind::TM_END));
}

/// Many ranges in one call: each range's rows as `instructions` gives them alone, in order,
/// tagged with the range's index; a range no section holds has none.
#[test]
fn instructions_of_many_ranges() {
    let p = fixture("x86_64/corpus");
    let b = open(&p);
    let ranges: Vec<(u64, u64)> =
        ["tm_increment", "hot_sum"].iter().map(|n| symbol(&p, n)).map(|(a, size)| (a, a + size)).collect();
    let lows = [ranges[0].0, 0xdead_0000, ranges[1].0];
    let highs = [ranges[0].1, 0xdead_0010, ranges[1].1];
    let many = b.instructions_of(&lows, &highs).unwrap();
    let t = table(&many, "insns");
    let mut expected_range = Vec::new();
    let mut expected_address = Vec::new();
    for (r, (lo, hi)) in [(0u64, ranges[0]), (2, ranges[1])] {
        let alone = b.instructions(lo, hi).unwrap();
        let addresses = u64s(table(&alone, "insns"), "address");
        expected_range.extend(std::iter::repeat_n(r, addresses.len()));
        expected_address.extend(addresses);
    }
    assert_eq!(u64s(t, "range"), expected_range);
    assert_eq!(u64s(t, "address"), expected_address);
}

#[test]
fn u64_bytes() {
    let b: Vec<u8> = [1u64, u64::MAX].iter().flat_map(|v| v.to_ne_bytes()).collect();
    assert_eq!(code::u64s_from_bytes(&b).unwrap(), vec![1, u64::MAX]);
    assert!(code::u64s_from_bytes(&b[..5]).is_err());
    let _ = Insn { address: 0, size: 1, kind: 0, target: 0, extra: 0, name: 0 };
}

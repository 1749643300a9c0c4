//! x86 and x86-64, decoded with iced-x86 (variable-length: a real decoder is needed to
//! find instruction boundaries at all). Encodings from the Intel SDM vol. 2; the TM and
//! HLE ones (XBEGIN/XEND/XABORT/XTEST, XACQUIRE/XRELEASE) from vol. 1 ch. 16.

use iced_x86::{DecoderOptions, FlowControl, Instruction, Mnemonic, OpKind, Register};

use super::fingerprint::{Field, Fields, Value};
use super::{flag, kind, trap, Class, Decoder, Insn};

pub(super) fn walk<F: FnMut(&Insn)>(dec: &Decoder, bits: u32, bytes: &[u8], address: u64, f: &mut F) {
    walk_decoded(dec, bits, bytes, address, &mut |i, _| f(i));
}

/// [`walk`], handing over with each instruction iced's decoding of it and the decoder (whose
/// `get_constant_offsets` locates its displacement and immediate); `None` for bad bytes.
pub(super) fn walk_decoded<F>(dec: &Decoder, bits: u32, bytes: &[u8], address: u64, f: &mut F)
where
    F: FnMut(&Insn, Option<(&Instruction, &iced_x86::Decoder)>),
{
    let mut d = iced_x86::Decoder::with_ip(bits, bytes, address, DecoderOptions::NONE);
    let mut ins = Instruction::default();
    while d.can_decode() {
        let pos = d.position();
        let at = address.wrapping_add(pos as u64);
        d.decode_out(&mut ins);
        if ins.is_invalid() && d.last_error() == iced_x86::DecoderError::NoMoreBytes {
            // The range ends inside an instruction: one error for the rest.
            f(&Insn::new(at, (bytes.len() - pos).min(255) as u8, kind::ERROR), None);
            break;
        }
        if ins.is_invalid() {
            // Resynchronise one byte on, as objdump's "(bad)" does.
            let next = pos + 1;
            if d.set_position(next).is_err() {
                break;
            }
            d.set_ip(address.wrapping_add(next as u64));
            f(&Insn::new(at, 1, kind::ERROR), None);
            continue;
        }
        let len = ins.len() as u64;
        let mut c = classify(&ins);
        let mut name = 0;
        if matches!(c.kind, kind::JUMP | kind::CALL_DIRECT | kind::TM_BEGIN) {
            // A relocatable object's rel32 field (E8/E9/0F 8x/C7 F8) holds S + A − P.
            name = dec.relocate(&mut c, at + 1, at + len);
            if name == 0 && c.extra & flag::THUNK == 0 {
                let t = dec.thunk_at(c.target);
                if t != 0 {
                    dec.apply_thunk(&mut c, t);
                }
            }
        }
        let i = Insn { address: at, size: len as u8, kind: c.kind, target: c.target, extra: c.extra, name };
        f(&i, Some((&ins, &d)));
    }
}

/// Classifies one decoded instruction (no thunks, no relocations).
pub(super) fn classify(ins: &Instruction) -> Class {
    match ins.mnemonic() {
        // F3 0F 1E FA / F3 0F 1E FB (CET landing pads).
        Mnemonic::Endbr64 | Mnemonic::Endbr32 => return Class::of(kind::ENDBR),
        // C7 F8 rel32 (66 C7 F8 rel16): target = fallback address.
        Mnemonic::Xbegin => return Class::to(kind::TM_BEGIN, ins.near_branch_target(), 0),
        // 0F 01 D5
        Mnemonic::Xend => return Class::of(kind::TM_END),
        // C6 F8 ib
        Mnemonic::Xabort => return Class::with(kind::TM_ABORT, u32::from(ins.immediate8())),
        // 0F 01 D6
        Mnemonic::Xtest => return Class::of(kind::TM_TEST),
        // F2 0F 01 E8 / E9 (TSXLDTRK)
        Mnemonic::Xsusldtrk | Mnemonic::Xresldtrk => return Class::of(kind::TM_OTHER),
        // 0F 0B ud2, 0F B9 ud1, 0F FF ud0 (the kernel's is_exception_insn)
        Mnemonic::Ud0 | Mnemonic::Ud1 | Mnemonic::Ud2 => return Class::with(kind::TRAP, trap::UNDEFINED),
        // CC int3, F1 int1
        Mnemonic::Int3 | Mnemonic::Int1 => return Class::with(kind::TRAP, trap::BREAKPOINT),
        // CD ib int n
        Mnemonic::Int => return Class::with(kind::TRAP, trap::INTERRUPT | u32::from(ins.immediate8()) << 16),
        // CE into (32-bit only)
        Mnemonic::Into => return Class::with(kind::TRAP, trap::INTERRUPT | 4 << 16),
        // 90, 0F 1F /0 (any length, any prefixes)
        Mnemonic::Nop => return Class::of(kind::NOP),
        _ => {}
    }
    // XACQUIRE (F2) / XRELEASE (F3): iced sets these only where the SDM allows them.
    if ins.has_xacquire_prefix() {
        return Class::with(kind::HLE, flag::XACQUIRE);
    }
    if ins.has_xrelease_prefix() {
        return Class::with(kind::HLE, flag::XRELEASE);
    }
    match ins.flow_control() {
        FlowControl::Return => {
            // C3 / C2 iw near return; the rest (retf, iret, sysret, sysexit …) flagged FAR.
            let far = if ins.mnemonic() == Mnemonic::Ret { 0 } else { flag::FAR };
            Class::with(kind::RETURN, far)
        }
        FlowControl::UnconditionalBranch if is_near(ins.op0_kind()) => {
            Class::to(kind::JUMP, ins.near_branch_target(), 0)
        }
        FlowControl::UnconditionalBranch => Class::with(kind::JUMP_INDIRECT, flag::FAR),
        FlowControl::ConditionalBranch => Class::to(kind::JUMP, ins.near_branch_target(), flag::CONDITIONAL),
        FlowControl::IndirectBranch => indirect(ins, kind::JUMP_INDIRECT),
        FlowControl::Call if is_near(ins.op0_kind()) => Class::to(kind::CALL_DIRECT, ins.near_branch_target(), 0),
        FlowControl::Call => Class::with(kind::CALL_INDIRECT, flag::FAR),
        FlowControl::IndirectCall => indirect(ins, kind::CALL_INDIRECT),
        _ => Class::OTHER,
    }
}

fn is_near(k: OpKind) -> bool {
    matches!(k, OpKind::NearBranch16 | OpKind::NearBranch32 | OpKind::NearBranch64)
}

/// FF /2, FF /4 (and far FF /3, FF /5): through a register or memory; a RIP-relative slot
/// (a GOT entry, say) is given as the target with the SLOT flag.
fn indirect(ins: &Instruction, k: u8) -> Class {
    let far = if ins.is_jmp_far_indirect() || ins.is_call_far_indirect() { flag::FAR } else { 0 };
    if ins.is_ip_rel_memory_operand() {
        Class::to(k, ins.ip_rel_memory_address(), flag::SLOT | far)
    } else {
        Class::with(k, far)
    }
}

/// The position-dependent fields of a decoded instruction, for the fingerprint: the branch
/// displacement, the RIP-relative or absolute displacement and the 32/64-bit immediate, as
/// iced locates them (`ConstantOffsets`). `kernel_percpu`: an x86-64 kernel, whose `%gs:`
/// displacements and `mov $var,%reg` immediates are per-CPU offsets.
pub(super) fn fields(ins: &Instruction, d: &iced_x86::Decoder, kernel_percpu: bool) -> Fields {
    let co = d.get_constant_offsets(ins);
    let mut out = Fields::default();
    if co.has_immediate() {
        let mask = byte_mask(co.immediate_offset(), co.immediate_size());
        for n in 0..ins.op_count() {
            match ins.op_kind(n) {
                k if is_near(k) => {
                    out.push(Field { mask, value: Value::Pc(ins.near_branch_target()) });
                }
                // The kernel's this_cpu_ptr(&var): `mov $var,%reg` (sign-extended imm32, the
                // form GCC gives a symbol's address; a small number gets `mov $n,%r32`), then
                // `add %gs:this_cpu_off,%reg`. var is an offset into .data..percpu.
                OpKind::Immediate32to64 if kernel_percpu && ins.mnemonic() == Mnemonic::Mov => {
                    out.push(Field { mask, value: Value::Percpu(ins.immediate(n)) });
                }
                OpKind::Immediate32 | OpKind::Immediate32to64 | OpKind::Immediate64 => {
                    out.push(Field { mask, value: Value::Imm(ins.immediate(n)) });
                }
                _ => continue,
            }
            break;
        }
    }
    if co.has_displacement() && co.displacement_size() >= 4 {
        let mask = byte_mask(co.displacement_offset(), co.displacement_size());
        let value = if ins.is_ip_rel_memory_operand() {
            Value::Pc(ins.ip_rel_memory_address())
        } else if kernel_percpu && ins.segment_prefix() == Register::GS {
            Value::Percpu(ins.memory_displacement64())
        } else {
            Value::Imm(ins.memory_displacement64())
        };
        out.push(Field { mask, value });
    }
    out
}

/// The [`Field`] mask of `len` bytes at offset `at` of an instruction: bit *n* is byte *n*.
pub(super) fn byte_mask(at: usize, len: usize) -> u32 {
    if at >= 32 {
        return 0;
    }
    let ones = if len >= 32 { u32::MAX } else { (1u32 << len) - 1 };
    ones << at
}

/// The stubs of a `.plt`, `.plt.sec` or `.plt.got` section at `address`: each `[endbr64;]
/// [bnd] jmp *slot(%rip)` is given to `f` as (its first byte, the slot). Lazy `.plt` entries
/// that push and jump to the resolver have no slot of their own and are skipped.
pub(super) fn plt_stubs(bits: u32, address: u64, bytes: &[u8], mut f: impl FnMut(u64, u64)) {
    let mut d = iced_x86::Decoder::with_ip(bits, bytes, address, DecoderOptions::NONE);
    let mut landing = None;
    for ins in &mut d {
        let c = classify(&ins);
        if c.kind == kind::ENDBR {
            landing = Some(ins.ip());
            continue;
        }
        if c.kind == kind::JUMP_INDIRECT && c.extra & flag::SLOT != 0 {
            f(landing.unwrap_or(ins.ip()), c.target);
        }
        landing = None;
    }
}

/// GNU-assembler (AT&T) text, as objdump prints it.
pub(super) fn text(bits: u32, bytes: &[u8], address: u64) -> String {
    use iced_x86::{Formatter, GasFormatter};
    let mut d = iced_x86::Decoder::with_ip(bits, bytes, address, DecoderOptions::NONE);
    let ins = d.decode();
    if ins.is_invalid() {
        return "(bad)".into();
    }
    let mut fmt = GasFormatter::new();
    let o = fmt.options_mut();
    o.set_space_after_operand_separator(false);
    o.set_branch_leading_zeros(false);
    o.set_uppercase_hex(false);
    o.set_rip_relative_addresses(true);
    let mut out = String::new();
    fmt.format(&ins, &mut out);
    // objdump writes `call *0x10(%rip)`, iced `callq *0x10(%rip)`.
    for (long, short) in [("callq ", "call "), ("jmpq ", "jmp ")] {
        if let Some(rest) = out.strip_prefix(long) {
            out = format!("{short}{rest}");
        }
    }
    out
}

/// The legacy prefixes the kernel's instruction decoder skips before the opcode.
const LEGACY_PREFIXES: [u8; 11] = [0xF0, 0xF2, 0xF3, 0x2E, 0x36, 0x3E, 0x26, 0x64, 0x65, 0x66, 0x67];

/// An instruction's first bytes as the kernel's decoder (`arch/x86/lib/insn.c`) lays them
/// out, which is what the kprobe checks (`__copy_instruction`, `prepare_emulation`,
/// `is_exception_insn`) test: up to 14 legacy prefixes, a REX byte (64-bit), the opcode.
/// iced knows the instruction but keeps neither the prefixes' order nor the ModRM byte.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Layout {
    /// The first opcode byte.
    pub op: u8,
    /// The byte after it: the second opcode byte of `0F xx`.
    pub op2: u8,
    /// The byte in the ModRM's place: after `0F 38 xx` and `0F 3A xx`, `0F xx`, or `op`.
    pub modrm: u8,
    /// A 0x67 prefix: the other address size.
    pub addr32: bool,
    /// A VEX or EVEX prefix (`C4`/`C5`/`62`; outside 64-bit mode only before a register
    /// ModRM, else they are LES/LDS/BOUND).
    pub vex: bool,
}

/// The [`Layout`] of the instruction whose first bytes (zero past its end) are `bytes`.
pub(super) fn layout(bytes: &[u8; 16], bits: u32) -> Layout {
    let mut at = 0;
    let mut addr32 = false;
    while at < 14 && LEGACY_PREFIXES.contains(&bytes[at]) {
        addr32 |= bytes[at] == 0x67;
        at += 1;
    }
    if bits == 64 && (0x40..=0x4F).contains(&bytes[at]) {
        at += 1;
    }
    let byte = |i: usize| bytes[(at + i).min(15)];
    let (op, op2) = (byte(0), byte(1));
    let opcode_len = match (op, op2) {
        (0x0F, 0x38 | 0x3A) => 3,
        (0x0F, _) => 2,
        _ => 1,
    };
    let vex = matches!(op, 0xC4 | 0xC5 | 0x62) && (bits == 64 || op2 >= 0xC0);
    Layout { op, op2, modrm: byte(opcode_len), addr32, vex }
}

#[cfg(test)]
mod tests {
    use super::{layout, plt_stubs};

    #[test]
    fn plt_stubs_by_their_slots() {
        #[rustfmt::skip]
        let plt = [
            0xf3, 0x0f, 0x1e, 0xfa,                   // 1000: endbr64
            0xf2, 0xff, 0x25, 0xe2, 0x2f, 0x00, 0x00, // 1004: bnd jmp *0x2fe2(%rip)
            0x0f, 0x1f, 0x44, 0x00, 0x00,             // 100b: nopl 0x0(%rax,%rax,1)
            0xff, 0x25, 0x10, 0x00, 0x00, 0x00,       // 1010: jmp *0x10(%rip)
            0x68, 0x00, 0x00, 0x00, 0x00,             // 1016: push $0x0 (lazy: no slot)
            0xf2, 0xe9, 0x00, 0x00, 0x00, 0x00,       // 101b: bnd jmp 1021
        ];
        let mut got = Vec::new();
        plt_stubs(64, 0x1000, &plt, |stub, slot| got.push((stub, slot)));
        assert_eq!(got, vec![(0x1000, 0x100b + 0x2fe2), (0x1010, 0x1016 + 0x10)]);
    }

    fn of(b: &[u8], bits: u32) -> (u8, u8, u8, bool, bool) {
        let mut raw = [0u8; 16];
        raw[..b.len()].copy_from_slice(b);
        let l = layout(&raw, bits);
        (l.op, l.op2, l.modrm, l.addr32, l.vex)
    }

    #[test]
    fn prefixes_rex_opcode_modrm() {
        // call *0x10(%rax) with a segment prefix and REX.W
        assert_eq!(of(&[0x2E, 0x48, 0xFF, 0x50, 0x10], 64), (0xFF, 0x50, 0x50, false, false));
        // addr32 call *%rax
        assert_eq!(of(&[0x67, 0xFF, 0xD0], 64), (0xFF, 0xD0, 0xD0, true, false));
        // vmcall: 0F 01 C1, the ModRM after two opcode bytes
        assert_eq!(of(&[0x0F, 0x01, 0xC1], 64), (0x0F, 0x01, 0xC1, false, false));
        // pshufb: 0F 38 00 /r
        assert_eq!(of(&[0x66, 0x0F, 0x38, 0x00, 0xC1], 64).2, 0xC1);
        // i386: 0x40 is inc %eax, not REX; C5 before a memory ModRM is LDS
        assert_eq!(of(&[0x40], 32).0, 0x40);
        assert!(!of(&[0xC5, 0x06], 32).4);
        assert!(of(&[0xC5, 0xF8, 0x77], 64).4);
    }
}

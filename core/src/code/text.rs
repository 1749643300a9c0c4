//! Instruction text, for evidence: iced's GNU-style formatter on x86; capstone on the
//! other ISAs when the `capstone` feature is built, else the classifiers' own small printers
//! (branch mnemonics with targets, the atomics by name, `.inst` words for the rest).

use super::{kind, Insn, Isa};

pub(super) struct Printer {
    isa: Isa,
    #[cfg(feature = "capstone")]
    cs: Option<capstone::Capstone>,
    /// 32-bit ARM's Thumb mode.
    #[cfg(feature = "capstone")]
    cs_thumb: Option<capstone::Capstone>,
}

impl Printer {
    pub fn new(isa: Isa) -> Self {
        Printer {
            isa,
            #[cfg(feature = "capstone")]
            cs: capstone_for(isa),
            #[cfg(feature = "capstone")]
            cs_thumb: if isa == Isa::Arm { capstone_thumb() } else { None },
        }
    }

    /// The text of `i`, whose bytes start `bytes`, with its target (or pointer slot)
    /// appended as a comment when the text does not show it as an address.
    pub fn text(&self, bytes: &[u8], i: &Insn) -> String {
        let mut s = self.bare(bytes, i);
        if i.target != super::NO_TARGET && !s.contains(&format!("{:#x}", i.target)) {
            s.push_str(&format!("  # {:#x}", i.target));
        }
        s
    }

    fn bare(&self, bytes: &[u8], i: &Insn) -> String {
        let bytes = &bytes[..usize::from(i.size).min(bytes.len())];
        if i.kind == kind::ERROR {
            return "(bad)".into();
        }
        if let Isa::X86 { bits } = self.isa {
            return super::x86::text(bits, bytes, i.address);
        }
        #[cfg(feature = "capstone")]
        {
            let thumb = self.isa == Isa::Arm && i.extra & super::flag::THUMB != 0;
            let cs = if thumb { self.cs_thumb.as_ref() } else { self.cs.as_ref() };
            if let Some(s) = cs.and_then(|cs| capstone_text(cs, bytes, i.address)) {
                return s;
            }
        }
        match self.isa {
            Isa::Aarch64 => super::aarch64::text(bytes, i),
            Isa::Ppc { big_endian, .. } => super::ppc::text(bytes, big_endian, i),
            Isa::Riscv { .. } => super::riscv::text(bytes, i),
            Isa::S390 => super::s390::text(bytes, i),
            Isa::Arm => super::arm::text(bytes, i),
            _ => "(bad)".into(),
        }
    }
}

#[cfg(feature = "capstone")]
fn capstone_for(isa: Isa) -> Option<capstone::Capstone> {
    use capstone::prelude::*;
    match isa {
        Isa::Aarch64 => Capstone::new().arm64().mode(arch::arm64::ArchMode::Arm).build(),
        Isa::Ppc { big_endian, bits64 } => Capstone::new()
            .ppc()
            .mode(if bits64 { arch::ppc::ArchMode::Mode64 } else { arch::ppc::ArchMode::Mode32 })
            .endian(if big_endian { capstone::Endian::Big } else { capstone::Endian::Little })
            .build(),
        Isa::Riscv { xlen } => Capstone::new()
            .riscv()
            .mode(if xlen == 64 { arch::riscv::ArchMode::RiscV64 } else { arch::riscv::ArchMode::RiscV32 })
            .extra_mode([arch::riscv::ArchExtraMode::RiscVC].iter().copied())
            .build(),
        Isa::S390 => Capstone::new().sysz().mode(arch::sysz::ArchMode::Default).build(),
        Isa::Arm => Capstone::new().arm().mode(arch::arm::ArchMode::Arm).build(),
        Isa::X86 { .. } => return None,
    }
    .ok()
}

#[cfg(feature = "capstone")]
fn capstone_thumb() -> Option<capstone::Capstone> {
    use capstone::prelude::*;
    Capstone::new().arm().mode(arch::arm::ArchMode::Thumb).build().ok()
}

#[cfg(feature = "capstone")]
fn capstone_text(cs: &capstone::Capstone, bytes: &[u8], address: u64) -> Option<String> {
    let insns = cs.disasm_count(bytes, address, 1).ok()?;
    let first = insns.iter().next()?;
    let (m, o) = (first.mnemonic().unwrap_or(""), first.op_str().unwrap_or(""));
    Some(if o.is_empty() { m.to_string() } else { format!("{m} {o}") })
}

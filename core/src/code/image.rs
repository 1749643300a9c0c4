//! Where the bytes of an address range are: the allocated sections with file contents, at
//! their addresses (the synthetic ones of [`crate::elf::section_bases`] in a relocatable
//! object, so that they agree with the symbols and the DWARF).

use object::{Object, ObjectSection};

use super::{status, Code};
use crate::elf;

pub struct Image<'d> {
    /// (address, bytes), sorted by address; no empty or NOBITS sections.
    sections: Vec<(u64, &'d [u8])>,
}

impl<'d> Image<'d> {
    pub fn new(file: &object::File<'d>) -> Self {
        let bases = elf::section_bases(file);
        let mut sections: Vec<(u64, &'d [u8])> = file
            .sections()
            .filter(|s| {
                matches!(s.flags(), object::SectionFlags::Elf { sh_type, sh_flags }
                    if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0 && sh_type != object::elf::SHT_NOBITS)
            })
            .filter_map(|s| {
                let data = s.data().ok()?;
                (!data.is_empty()).then(|| (bases.get(s.index().0).copied().unwrap_or(0), data))
            })
            .collect();
        sections.sort_by_key(|&(a, _)| a);
        Image { sections }
    }

    /// From bytes already in memory (tests).
    pub fn from_parts(mut sections: Vec<(u64, &'d [u8])>) -> Self {
        sections.sort_by_key(|&(a, _)| a);
        Image { sections }
    }

    /// The bytes of `[low, high)`, as far as one section holds them.
    pub fn code(&self, low: u64, high: u64) -> Code<'d> {
        let none = Code { low, high, bytes: &[], status: status::NO_BYTES };
        if high <= low {
            return Code { status: 0, ..none };
        }
        // The nearest section starting at or before `low` that contains it (a few back, as
        // sections can overlap: x86's .data..percpu sits at address 0).
        let i = self.sections.partition_point(|&(a, _)| a <= low);
        let Some(&(base, data)) = self.sections[..i].iter().rev().take(8).find(|&&(a, d)| low - a < d.len() as u64)
        else {
            return none;
        };
        let from = (low - base) as usize;
        let want = high - low;
        let have = (data.len() - from) as u64;
        if want > have {
            Code { low, high, bytes: &data[from..], status: status::TRUNCATED }
        } else {
            Code { low, high, bytes: &data[from..from + want as usize], status: 0 }
        }
    }
}

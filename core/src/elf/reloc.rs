//! The one reader of relocations: a relocatable object's (a `.o`, a `.ko`), each with its
//! target resolved to the synthetic section addresses of [`super::section_bases`], and the
//! dynamic ones of a linked file, each with its `.dynsym` name. Applying relocations to
//! debug sections, resolving branches, normalizing fingerprints and reading a module's
//! kernel tables all read them here.

use object::{Object, ObjectSection, ObjectSymbol, ObjectSymbolTable, RelocationTarget};

/// One relocation of a section: the field at `offset` is to hold S + A (− P, PC-relative).
pub struct Reloc<'d> {
    /// The field's offset in its section.
    pub offset: u64,
    pub rel: object::Relocation,
    /// S: the target symbol's address (its section's base plus its value) or the target
    /// section's base.
    pub s: u64,
    /// The target symbol's name; empty for a section.
    pub name: &'d [u8],
    /// The target symbol is undefined: another object, or the kernel, resolves it.
    pub undefined: bool,
}

impl Reloc<'_> {
    /// The field's size in bytes; 4 where the relocation type does not say.
    pub fn size(&self) -> usize {
        match self.rel.size() {
            0 => 4,
            bits => usize::from(bits / 8),
        }
    }

    /// A: explicit (RELA), or for REL the field's contents in `data` (its section's bytes),
    /// sign-extended; 0 when the field lies outside them.
    pub fn addend(&self, data: &[u8], little: bool) -> i64 {
        if !self.rel.has_implicit_addend() {
            return self.rel.addend();
        }
        let size = self.size().min(8);
        let Some(field) = usize::try_from(self.offset).ok().and_then(|at| data.get(at..at.checked_add(size)?)) else {
            return 0;
        };
        let value = super::read_uint(field, little);
        let shift = 64 - 8 * size as u32;
        ((value << shift) as i64) >> shift
    }
}

/// Every relocation of `section` of a relocatable `file` whose target can be read (a symbol
/// or a section), with `bases` from [`super::section_bases`].
pub fn relocations<'d, 'f>(
    file: &'f object::File<'d>,
    section: &object::Section<'d, 'f>,
    bases: &'f [u64],
) -> impl Iterator<Item = Reloc<'d>> + 'f {
    let base_of = |i: object::SectionIndex| bases.get(i.0).copied().unwrap_or(0);
    section.relocations().filter_map(move |(offset, rel)| {
        let (s, name, undefined) = match rel.target() {
            RelocationTarget::Symbol(i) => {
                let sym = file.symbol_by_index(i).ok()?;
                let s = sym.section_index().map_or(0, base_of).wrapping_add(sym.address());
                (s, sym.name_bytes().unwrap_or(b""), sym.is_undefined())
            }
            RelocationTarget::Section(i) => (base_of(i), &b""[..], false),
            _ => return None,
        };
        Some(Reloc { offset, rel, s, name, undefined })
    })
}

/// The dynamic relocations of a linked `file` that name a `.dynsym` symbol: the address of
/// the field (a GOT slot, say), the relocation and the symbol's name.
pub fn dynamic<'d, 'f>(file: &'f object::File<'d>) -> impl Iterator<Item = (u64, object::Relocation, &'d [u8])> + 'f {
    let dynsym = file.dynamic_symbol_table();
    file.dynamic_relocations().into_iter().flatten().filter_map(move |(address, rel)| {
        let RelocationTarget::Symbol(i) = rel.target() else { return None };
        let name = dynsym.as_ref()?.symbol_by_index(i).ok()?.name_bytes().ok()?;
        Some((address, rel, name))
    })
}

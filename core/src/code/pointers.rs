//! Function pointers stored in the image's data: every aligned pointer-sized word of an
//! allocated, non-executable section whose value is the address of a function symbol.
//! In a kernel these are the notifier blocks, `ftrace_ops`, static-call keys, the
//! `kprobe_blacklist`-like tables and every operations table: the places an indirect call
//! can load its target from. Facts for the call graph's indirect edges; which call reads
//! which pointer is for the caller to decide. A word the file holds as zero and a dynamic
//! `R_*_RELATIVE` relocation fills (the relocatable arm64 vmlinux) is read as relocated; a
//! relocatable object's words stay zero until the module loader relocates them: no row.

use object::{Object, ObjectSection, ObjectSymbol, SymbolKind};

use super::Opened;
use crate::error::Result;
use crate::table::{Chunk, Scan, Strings, Table};
use crate::{elf, kernel};

/// Table `function_pointers` (`at`, `value`, `section`): the address of each word, the
/// function address it holds, the section it is in; ordered by `at`.
pub fn function_pointers(o: &Opened) -> Result<Scan> {
    let mut starts: Vec<u64> = o
        .symbols()
        .symbols()
        .filter(|s| s.kind() == SymbolKind::Text && s.address() != 0)
        .map(|s| s.address())
        .collect();
    starts.sort_unstable();
    starts.dedup();
    let width = if o.file.is_64() { 8 } else { 4 };
    let little = o.file.is_little_endian();
    let relocated = kernel::relative_relocs(&o.file);
    let mut strings = Strings::default();
    let (mut at, mut value, mut section) = (vec![], vec![], vec![]);
    for s in o.file.sections().filter(holds_data) {
        let Ok(data) = s.data() else { continue };
        let name = strings.intern_owned(s.name_bytes().unwrap_or_default().to_vec());
        let base = s.address();
        let first = (width - base % width) % width;
        for off in (first as usize..data.len().saturating_sub(width as usize - 1)).step_by(width as usize) {
            let word = base + off as u64;
            let v = match kernel::read_word(&data[off..off + width as usize], little) {
                0 => relocated.get(&word).copied().unwrap_or(0),
                v => v,
            };
            if starts.binary_search(&v).is_ok() {
                at.push(word);
                value.push(v);
                section.push(name);
            }
        }
    }
    let table =
        Table::new(vec![("at", Chunk::U64(at)), ("value", Chunk::U64(value)), ("section", Chunk::Str(section))]);
    let info = vec![("path", o.path.display().to_string()), ("arch", elf::arch_name(&o.file).to_string())];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("function_pointers", table)], string_offsets, string_data })
}

/// The program's own data: allocated `PROGBITS`, not code (relocation and symbol sections
/// hold addresses too, as addends and values, which nothing calls through).
fn holds_data(s: &object::Section) -> bool {
    matches!(s.flags(), object::SectionFlags::Elf { sh_type, sh_flags }
        if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0
            && sh_flags.0 & object::elf::SHF_EXECINSTR.0 == 0
            && sh_type == object::elf::SHT_PROGBITS)
}

//! The kernel's pointer tables: `__mcount_loc` / `__patchable_function_entries` (ftrace call
//! sites) and `_kprobe_blacklist` (`NOKPROBE_SYMBOL`), read as the kernel reads them.
//!
//! In a linked vmlinux they are not sections of their own but runs of `.init.data` between
//! `__start_*` / `__stop_*` symbols; in a module they are sections, filled in by relocations.
//! A relocatable arm64 vmlinux keeps zeros in the file and the values as `R_*_RELATIVE`
//! addends in `.rela.dyn` (shared/reference/hazard_rules.md §4.2).

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol};

use crate::elf::section_data;
use crate::table::{Chunk, Strings, Table};

/// The tables read, by name, with their bounds symbols in a linked image.
const TABLES: &[(&str, &str, &str)] = &[
    ("__mcount_loc", "__start_mcount_loc", "__stop_mcount_loc"),
    ("_kprobe_blacklist", "__start_kprobe_blacklist", "__stop_kprobe_blacklist"),
    ("__patchable_function_entries", "__start_patchable_function_entries", "__stop_patchable_function_entries"),
];

/// One row per entry: which table, the entry's own address, and the pointer it holds.
pub fn pointer_tables<'d>(file: &object::File<'d>, strings: &mut Strings<'d>) -> Table {
    let (mut table, mut at, mut value) = (vec![], vec![], vec![]);
    let width = if file.is_64() { 8 } else { 4 };
    let relative = relative_relocs(file);
    let symbols: HashMap<&[u8], u64> = file
        .symbols()
        .filter_map(|s| Some((s.name_bytes().ok()?, s.address())))
        .filter(|(n, _)| n.starts_with(b"__st"))
        .collect();
    for &(name, start, stop) in TABLES {
        let entries = match (symbols.get(start.as_bytes()), symbols.get(stop.as_bytes())) {
            (Some(&lo), Some(&hi)) if hi > lo => read_vma(file, lo, hi),
            _ => read_section(file, name),
        };
        let id = strings.intern_str(name.as_bytes());
        for (addr, bytes) in entries.iter().flat_map(|(base, data)| {
            data.chunks_exact(width).enumerate().map(move |(i, b)| (base.wrapping_add((i * width) as u64), b))
        }) {
            let mut v = read_word(bytes, file.is_little_endian());
            if v == 0 {
                v = relative.get(&addr).copied().unwrap_or(0);
            }
            table.push(id);
            at.push(addr);
            value.push(v);
        }
    }
    Table::new(vec![("table", Chunk::Str(table)), ("at", Chunk::U64(at)), ("value", Chunk::U64(value))])
}

/// The bytes of `[lo, hi)` in the linked image, from the section that holds them.
fn read_vma(file: &object::File, lo: u64, hi: u64) -> Vec<(u64, Vec<u8>)> {
    file.sections()
        .find(|s| s.address() <= lo && s.address().checked_add(s.size()).is_some_and(|end| hi <= end))
        .and_then(|s| {
            let data = s.data().ok()?;
            let from = usize::try_from(lo - s.address()).ok()?;
            let to = usize::try_from(hi - s.address()).ok()?;
            Some(vec![(lo, data.get(from..to)?.to_vec())])
        })
        .unwrap_or_default()
}

/// A module's table section, relocated (it holds zeros until then).
fn read_section(file: &object::File, name: &str) -> Vec<(u64, Vec<u8>)> {
    let Some(s) = file.section_by_name(name) else { return vec![] };
    let base = crate::elf::section_bases(file).get(s.index().0).copied().unwrap_or(0);
    match section_data(file, name) {
        Ok(data) => vec![(base, data.into_owned())],
        Err(_) => vec![],
    }
}

fn read_word(b: &[u8], little: bool) -> u64 {
    let mut buf = [0u8; 8];
    if little {
        buf[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(buf)
    } else {
        buf[8 - b.len()..].copy_from_slice(b);
        u64::from_be_bytes(buf)
    }
}

/// `r_offset → addend` of the dynamic `R_*_RELATIVE` relocations (`.rela.dyn`).
fn relative_relocs(file: &object::File) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    if let Some(relocs) = file.dynamic_relocations() {
        for (offset, r) in relocs {
            if let object::RelocationFlags::Elf { r_type } = r.flags() {
                if is_relative(file.architecture(), r_type) {
                    out.insert(offset, r.addend() as u64);
                }
            }
        }
    }
    out
}

fn is_relative(arch: object::Architecture, r_type: object::elf::RelocationType) -> bool {
    use object::{elf, Architecture as A};
    match arch {
        A::Aarch64 => r_type == elf::R_AARCH64_RELATIVE,
        A::X86_64 => r_type == elf::R_X86_64_RELATIVE,
        A::PowerPc64 => r_type == elf::R_PPC64_RELATIVE,
        A::Riscv64 => r_type == elf::R_RISCV_RELATIVE,
        A::S390x => r_type == elf::R_390_RELATIVE,
        _ => false,
    }
}

//! The kernel's pointer tables: `__mcount_loc` / `__patchable_function_entries` (ftrace call
//! sites), `_kprobe_blacklist` (`NOKPROBE_SYMBOL`) and `_error_injection_whitelist`
//! (`ALLOW_ERROR_INJECTION`: `struct error_injection_entry { unsigned long addr; int etype; }`,
//! two words per entry, the function and its `EI_ETYPE_*`), read as the kernel reads them.
//!
//! In a linked vmlinux they are not sections of their own but runs of `.init.data` between
//! `__start_*` / `__stop_*` symbols; in a module they are sections, filled in by relocations.
//! A relocatable arm64 vmlinux keeps zeros in the file and the values as `R_*_RELATIVE`
//! addends in `.rela.dyn` (arm64's `CONFIG_RELOCATABLE`: the kernel applies them at boot).

use std::collections::HashMap;

use object::{Object, ObjectSection, ObjectSymbol};

use crate::elf::section_data;
use crate::table::{Chunk, Strings, Table};

/// The tables read, by name, with their bounds symbols in a linked image.
const TABLES: &[(&str, &str, &str)] = &[
    ("__mcount_loc", "__start_mcount_loc", "__stop_mcount_loc"),
    ("_kprobe_blacklist", "__start_kprobe_blacklist", "__stop_kprobe_blacklist"),
    ("__patchable_function_entries", "__start_patchable_function_entries", "__stop_patchable_function_entries"),
    // 6.1 include/asm-generic/vmlinux.lds.h ERROR_INJECT_WHITELIST()
    ("_error_injection_whitelist", "__start_error_injection_whitelist", "__stop_error_injection_whitelist"),
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

pub(crate) fn read_word(b: &[u8], little: bool) -> u64 {
    let mut buf = [0u8; 8];
    if little {
        buf[..b.len()].copy_from_slice(b);
        u64::from_le_bytes(buf)
    } else {
        buf[8 - b.len()..].copy_from_slice(b);
        u64::from_be_bytes(buf)
    }
}

/// `r_offset → value` of the dynamic relocations (`.rela.dyn`): the addend of an `R_*_RELATIVE`
/// one, S + A of an absolute one against a symbol (s390x keeps `R_390_64` against global
/// symbols such as `__kretprobe_trampoline` in `_kprobe_blacklist`).
///
/// Read from every allocated RELA section rather than through `object`'s dynamic relocations,
/// which skips a section not linked to `.dynsym`: the arm64 vmlinux links `.rela.dyn` to
/// `.symtab` (sh_link), so its 198,589 relocations would be lost.
pub(crate) fn relative_relocs(file: &object::File) -> HashMap<u64, u64> {
    let mut out = HashMap::new();
    let (width, little) = (if file.is_64() { 8 } else { 4 }, file.is_little_endian());
    for s in file.sections() {
        let object::SectionFlags::Elf { sh_type, sh_flags } = s.flags() else { continue };
        if sh_type != object::elf::SHT_RELA || sh_flags.0 & object::elf::SHF_ALLOC.0 == 0 {
            continue;
        }
        let Ok(data) = s.data() else { continue };
        for e in data.chunks_exact(3 * width) {
            let info = read_word(&e[width..2 * width], little);
            let r_type = if width == 8 { info & 0xffff_ffff } else { info & 0xff };
            let (at, addend) = (read_word(&e[..width], little), read_word(&e[2 * width..], little));
            if is_relative(file.architecture(), object::elf::RelocationType(r_type as u32)) {
                out.insert(at, addend);
            } else if is_absolute(file.architecture(), object::elf::RelocationType(r_type as u32)) {
                let index = if width == 8 { info >> 32 } else { info >> 8 };
                if let Some(value) = symbol_value(file, index as usize) {
                    out.insert(at, value.wrapping_add(addend));
                }
            }
        }
    }
    out
}

/// The symbol a dynamic relocation names: `.dynsym` when the file has one (s390x links
/// `.rela.dyn` to it), else `.symtab` (the arm64 vmlinux links `.rela.dyn` there).
fn symbol_value(file: &object::File, index: usize) -> Option<u64> {
    let table = file.dynamic_symbol_table().or_else(|| file.symbol_table())?;
    object::ObjectSymbolTable::symbol_by_index(&table, object::SymbolIndex(index)).ok().map(|s| s.address())
}

fn is_absolute(arch: object::Architecture, r_type: object::elf::RelocationType) -> bool {
    use object::{elf, Architecture as A};
    match arch {
        A::Aarch64 => r_type == elf::R_AARCH64_ABS64,
        A::X86_64 => r_type == elf::R_X86_64_64,
        A::PowerPc64 => r_type == elf::R_PPC64_ADDR64,
        A::Riscv64 => r_type == elf::R_RISCV_64,
        A::S390x => r_type == elf::R_390_64,
        _ => false,
    }
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

/// The kernel's tables of code sites, one row per entry: `__jump_table` (static branches),
/// `.static_call_sites`, `__bug_table` (BUG/WARN), `__ex_table` (instructions with an
/// exception fixup), and the sites rewritten at boot (`.altinstructions`,
/// `.parainstructions`, `.retpoline_sites`, `.return_sites`).
///
/// Each entry names a code address, mostly as a 32-bit offset from the field itself (the
/// kernel's `CONFIG_HAVE_ARCH_JUMP_LABEL_RELATIVE`, `CONFIG_GENERIC_BUG_RELATIVE_POINTERS`
/// and the x86 `s32` tables): such offsets are resolved by the linker even in a relocatable
/// arm64 vmlinux, so only absolute pointers need the `.rela.dyn` addends. In a module
/// (ET_REL) every field is a relocation: its value is the relocation's S + A.
pub fn site_tables<'d>(file: &object::File<'d>, strings: &mut Strings<'d>) -> Table {
    let mut rows = Sites::default();
    let arch = crate::elf::arch_name(file);
    if file.is_64() || arch == "arm" {
        let ctx = SiteContext::new(file);
        for spec in SITE_TABLES.iter().chain(ARM_SITE_TABLES).filter(|s| s.arches.contains(&arch)) {
            let id = strings.intern_str(spec.kind.as_bytes());
            for e in ctx.entries(file, spec) {
                rows.push(id, e);
            }
        }
    }
    rows.finish()
}

/// Where an entry keeps a code or data address.
#[derive(Clone, Copy)]
enum Field {
    /// `s32` offset from the field's own address (`.long sym - .`).
    Rel32(usize),
    /// `long` offset from the field (`.quad sym - .`), as the jump label's key.
    Rel64(usize),
    /// An absolute pointer (`.quad sym`).
    Abs64(usize),
    /// A 32-bit image's absolute pointer (`.long sym`).
    Abs32(usize),
}

/// How many bytes of code an entry covers.
#[derive(Clone, Copy)]
enum Size {
    Fixed(u8),
    /// The length of the instruction at the address (x86 `arch_jump_entry_size`, the ud2 of a BUG).
    Decoded,
    /// A `u8` field of the entry (`alt_instr.instrlen`, `paravirt_patch_site.len`).
    Byte(usize),
}

struct SiteTable {
    kind: &'static str,
    /// The section in a module; in a linked image, the bounds symbols below.
    section: &'static str,
    start: &'static str,
    stop: &'static str,
    /// Entry sizes the layout may have, tried in order (`struct bug_entry` is 12 bytes with
    /// `CONFIG_DEBUG_BUGVERBOSE`, 8 without): the first whose every entry lands in code wins.
    strides: &'static [usize],
    code: Field,
    size: Size,
    target: Option<Field>,
    key: Option<Field>,
    /// Offset of a `u16` flags field, per stride.
    flags: &'static [(usize, usize)],
    arches: &'static [&'static str],
}

const RELATIVE_JUMP_LABELS: &[&str] = &["x86_64", "aarch64", "riscv64", "ppc64le", "ppc64", "s390x"];

/// The layouts, from the 6.1 headers: `struct jump_entry` (include/linux/jump_label.h, relative
/// form), `struct static_call_site` (include/linux/static_call_types.h), `struct bug_entry`
/// (include/asm-generic/bug.h, relative pointers), `struct exception_table_entry` (x86 and
/// arm64: `int insn, fixup` + data), `struct alt_instr` (arch/x86/include/asm/alternative.h;
/// arm64's, arch/arm64/include/asm/alternative.h, has the same layout: its `u16` is the cpucap,
/// with bit 15 for a callback that patches the site itself),
/// `struct paravirt_patch_site` (arch/x86/include/asm/paravirt_types.h).
const SITE_TABLES: &[SiteTable] = &[
    SiteTable {
        kind: "jump-label",
        section: "__jump_table",
        start: "__start___jump_table",
        stop: "__stop___jump_table",
        strides: &[16],
        code: Field::Rel32(0),
        size: Size::Decoded,
        target: Some(Field::Rel32(4)),
        key: Some(Field::Rel64(8)),
        flags: &[],
        arches: RELATIVE_JUMP_LABELS,
    },
    SiteTable {
        kind: "static-call",
        section: ".static_call_sites",
        start: "__start_static_call_sites",
        stop: "__stop_static_call_sites",
        strides: &[8],
        code: Field::Rel32(0),
        size: Size::Fixed(5), // CALL_INSN_SIZE
        target: None,
        key: Some(Field::Rel32(4)),
        flags: &[],
        arches: &["x86_64"],
    },
    SiteTable {
        kind: "bug",
        section: "__bug_table",
        start: "__start___bug_table",
        stop: "__stop___bug_table",
        strides: &[12, 8],
        code: Field::Rel32(0),
        size: Size::Decoded,
        target: None,
        key: None,
        flags: &[(12, 10), (8, 4)],
        // ppc64 6.1: GENERIC_BUG_RELATIVE_POINTERS, the same 12-byte entry with BUGVERBOSE;
        // s390x: `mc 0,0` with the same relative 12-byte entry (arch/s390/include/asm/bug.h)
        arches: &["x86_64", "aarch64", "riscv64", "ppc64le", "ppc64", "s390x"],
    },
    SiteTable {
        kind: "extable",
        section: "__ex_table",
        start: "__start___ex_table",
        stop: "__stop___ex_table",
        strides: &[12],
        code: Field::Rel32(0),
        size: Size::Decoded,
        target: Some(Field::Rel32(4)),
        key: None,
        flags: &[],
        arches: &["x86_64", "aarch64", "riscv64"],
    },
    SiteTable {
        kind: "alternative",
        section: ".altinstructions",
        start: "__alt_instructions",
        stop: "__alt_instructions_end",
        strides: &[12],
        code: Field::Rel32(0),
        size: Size::Byte(10),
        target: Some(Field::Rel32(4)),
        key: None,
        flags: &[(12, 8)], // the CPU feature bit
        arches: &["x86_64", "aarch64"],
    },
    SiteTable {
        kind: "paravirt",
        section: ".parainstructions",
        start: "__parainstructions",
        stop: "__parainstructions_end",
        strides: &[16],
        code: Field::Abs64(0),
        size: Size::Byte(9),
        target: None,
        key: None,
        flags: &[],
        arches: &["x86_64"],
    },
    SiteTable {
        kind: "retpoline",
        section: ".retpoline_sites",
        start: "__retpoline_sites",
        stop: "__retpoline_sites_end",
        strides: &[4],
        code: Field::Rel32(0),
        size: Size::Decoded,
        target: None,
        key: None,
        flags: &[],
        arches: &["x86_64"],
    },
    SiteTable {
        kind: "return-thunk",
        section: ".return_sites",
        start: "__return_sites",
        stop: "__return_sites_end",
        strides: &[4],
        code: Field::Rel32(0),
        size: Size::Decoded,
        target: None,
        key: None,
        flags: &[],
        arches: &["x86_64"],
    },
];

/// 32-bit ARM has neither relative jump labels nor relative bug entries: `struct jump_entry`
/// is `u32 code, target, key` (arch/arm/include/asm/jump_label.h's `.word`s) and `struct
/// bug_entry` starts with `unsigned long bug_addr` (arch/arm/include/asm/bug.h).
const ARM_SITE_TABLES: &[SiteTable] = &[
    SiteTable {
        kind: "jump-label",
        section: "__jump_table",
        start: "__start___jump_table",
        stop: "__stop___jump_table",
        strides: &[12],
        code: Field::Abs32(0),
        size: Size::Fixed(4), // JUMP_LABEL_NOP_SIZE
        target: Some(Field::Abs32(4)),
        key: Some(Field::Abs32(8)),
        flags: &[],
        arches: &["arm"],
    },
    SiteTable {
        kind: "bug",
        section: "__bug_table",
        start: "__start___bug_table",
        stop: "__stop___bug_table",
        strides: &[12, 8],
        code: Field::Abs32(0),
        size: Size::Decoded,
        target: None,
        key: None,
        flags: &[(12, 10), (8, 4)],
        arches: &["arm"],
    },
];

/// One entry, resolved.
struct Site {
    at: u64,
    address: u64,
    size: u8,
    target: u64,
    key: u64,
    flags: u32,
}

#[derive(Default)]
struct Sites {
    kind: Vec<u32>,
    at: Vec<u64>,
    address: Vec<u64>,
    size: Vec<u8>,
    target: Vec<u64>,
    key: Vec<u64>,
    flags: Vec<u32>,
}

impl Sites {
    fn push(&mut self, kind: u32, s: Site) {
        self.kind.push(kind);
        self.at.push(s.at);
        self.address.push(s.address);
        self.size.push(s.size);
        self.target.push(s.target);
        self.key.push(s.key);
        self.flags.push(s.flags);
    }

    fn finish(self) -> Table {
        Table::new(vec![
            ("kind", Chunk::Str(self.kind)),
            ("at", Chunk::U64(self.at)),
            ("address", Chunk::U64(self.address)),
            ("size", Chunk::U8(self.size)),
            ("target", Chunk::U64(self.target)),
            ("key", Chunk::U64(self.key)),
            ("flags", Chunk::U32(self.flags)),
        ])
    }
}

/// What reading any site table of one file needs.
struct SiteContext<'d> {
    symbols: HashMap<&'d [u8], u64>,
    relative: HashMap<u64, u64>,
    /// `[start, end)` of the executable sections (synthetic addresses in a module).
    code: Vec<(u64, u64)>,
    image: crate::code::Image<'d>,
    decoder: Option<crate::code::Decoder>,
    little: bool,
    relocatable: bool,
}

/// A table's bytes, where they start, and (in a module) the S + A of each relocated field
/// by its address.
struct Raw {
    base: u64,
    data: Vec<u8>,
    relocated: HashMap<u64, u64>,
}

impl<'d> SiteContext<'d> {
    fn new(file: &object::File<'d>) -> Self {
        let wanted: Vec<&str> = SITE_TABLES.iter().flat_map(|s| [s.start, s.stop]).collect();
        let symbols = file
            .symbols()
            .filter(|s| s.section_index().is_some())
            .filter_map(|s| Some((s.name_bytes().ok()?, s.address())))
            .filter(|(n, _)| wanted.iter().any(|w| w.as_bytes() == *n))
            .collect();
        let bases = crate::elf::section_bases(file);
        let code = file
            .sections()
            .filter(|s| s.kind() == object::SectionKind::Text && s.size() > 0)
            .map(|s| {
                let lo = bases.get(s.index().0).copied().unwrap_or(0);
                (lo, lo.wrapping_add(s.size()))
            })
            .collect();
        SiteContext {
            symbols,
            relative: relative_relocs(file),
            code,
            image: crate::code::Image::new(file),
            decoder: crate::code::Isa::from_arch(crate::elf::arch_name(file)).ok().map(crate::code::Decoder::new),
            little: file.is_little_endian(),
            relocatable: file.kind() == object::ObjectKind::Relocatable,
        }
    }

    fn entries(&self, file: &object::File<'d>, spec: &SiteTable) -> Vec<Site> {
        let Some(raw) = self.raw(file, spec) else { return vec![] };
        let fitting: Vec<usize> = spec.strides.iter().copied().filter(|s| raw.data.len() % s == 0).collect();
        let Some(&fallback) = fitting.first() else { return vec![] };
        // The first layout whose every entry names code; else the first that fits the size.
        let stride = fitting
            .iter()
            .copied()
            .find(|&s| (0..raw.data.len()).step_by(s).all(|o| self.in_code(self.field(&raw, o, spec.code))))
            .unwrap_or(fallback);
        (0..raw.data.len()).step_by(stride).map(|o| self.site(&raw, o, stride, spec)).collect()
    }

    fn site(&self, raw: &Raw, o: usize, stride: usize, spec: &SiteTable) -> Site {
        let address = self.field(raw, o, spec.code);
        let size = match spec.size {
            Size::Fixed(n) => n,
            Size::Byte(at) => raw.data.get(o + at).copied().unwrap_or(0),
            Size::Decoded => self.insn_len(address),
        };
        let key = spec.key.map_or(0, |f| self.field(raw, o, f));
        let flags = match spec.flags.iter().find(|(s, _)| *s == stride) {
            Some(&(_, at)) => raw.data.get(o + at..o + at + 2).map_or(0, |b| read_word(b, self.little) as u32),
            // Jump labels and static calls keep their flags in the key's low bits.
            None => (key & 3) as u32,
        };
        Site {
            at: raw.base + o as u64,
            address,
            size,
            target: spec.target.map_or(crate::code::NO_TARGET, |f| self.field(raw, o, f)),
            key: key & !3,
            flags,
        }
    }

    /// The address a field of the entry at offset `o` names.
    fn field(&self, raw: &Raw, o: usize, f: Field) -> u64 {
        let (at, width) = match f {
            Field::Rel32(at) | Field::Abs32(at) => (o + at, 4),
            Field::Rel64(at) | Field::Abs64(at) => (o + at, 8),
        };
        let here = raw.base + at as u64;
        if let Some(&v) = raw.relocated.get(&here) {
            return v;
        }
        let Some(bytes) = raw.data.get(at..at + width) else { return 0 };
        let v = read_word(bytes, self.little);
        match f {
            Field::Rel32(_) => here.wrapping_add(crate::code::sext(v as u32, 32) as u64),
            Field::Rel64(_) => here.wrapping_add(v),
            Field::Abs64(_) if v == 0 => self.relative.get(&here).copied().unwrap_or(0),
            Field::Abs64(_) | Field::Abs32(_) => v,
        }
    }

    fn in_code(&self, a: u64) -> bool {
        self.code.iter().any(|&(lo, hi)| lo <= a && a < hi)
    }

    fn insn_len(&self, address: u64) -> u8 {
        let Some(dec) = &self.decoder else { return 0 };
        let code = self.image.code(address, address.saturating_add(16));
        let mut first = None;
        dec.walk(code.bytes, address, |i| {
            first.get_or_insert(i.size);
        });
        first.unwrap_or(0)
    }

    /// The table's bytes: between its bounds symbols in a linked image, else its section.
    fn raw(&self, file: &object::File<'d>, spec: &SiteTable) -> Option<Raw> {
        if let (Some(&lo), Some(&hi)) =
            (self.symbols.get(spec.start.as_bytes()), self.symbols.get(spec.stop.as_bytes()))
        {
            if !self.relocatable && hi > lo {
                let (base, data) = read_vma(file, lo, hi).into_iter().next()?;
                return Some(Raw { base, data, relocated: HashMap::new() });
            }
        }
        let s = file.section_by_name(spec.section)?;
        let base = crate::elf::section_bases(file).get(s.index().0).copied().unwrap_or(0);
        let data = s.data().ok()?.to_vec();
        let relocated = if self.relocatable { relocated_fields(file, &s, base) } else { HashMap::new() };
        Some(Raw { base, data, relocated })
    }
}

/// In a module: the value S + A of every relocation of `section`, by the field's address. For
/// a PC-relative field (`R_X86_64_PC32`, `R_AARCH64_PREL32`) the field will hold S + A − P,
/// so S + A is the address it names either way.
fn relocated_fields(file: &object::File, section: &object::Section, base: u64) -> HashMap<u64, u64> {
    let bases = crate::elf::section_bases(file);
    let data = section.data().unwrap_or(&[]);
    crate::elf::reloc::relocations(file, section, &bases)
        .map(|r| (base.wrapping_add(r.offset), r.s.wrapping_add(r.addend(data, file.is_little_endian()) as u64)))
        .collect()
}

/// What kernel the image says it is: `("kernel_banner", …)` from `linux_banner` ("Linux version
/// 6.1.0-56-amd64 (…) #1 SMP PREEMPT_DYNAMIC Debian 6.1.192-2 …") in a vmlinux, and
/// `("kernel_release", "6.1.0-56-amd64")` from it or from a module's `.modinfo` `vermagic=`.
/// Empty strings when the file is neither.
pub fn identity(file: &object::File) -> [(&'static str, String); 2] {
    let banner = file
        .symbols()
        .find(|s| s.name_bytes().ok() == Some(b"linux_banner".as_slice()) && s.section_index().is_some())
        .and_then(|s| c_string_at(file, s.address(), s.size().clamp(1, 1024)))
        .unwrap_or_default();
    let release = match banner.strip_prefix("Linux version ") {
        Some(rest) => rest.split_whitespace().next().unwrap_or_default().to_string(),
        None => vermagic(file).unwrap_or_default(),
    };
    [("kernel_banner", banner), ("kernel_release", release)]
}

fn c_string_at(file: &object::File, address: u64, max: u64) -> Option<String> {
    let (_, bytes) = read_vma(file, address, address.checked_add(max)?).into_iter().next()?;
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    Some(String::from_utf8_lossy(&bytes[..end]).trim_end().to_string())
}

/// The release in a module's `vermagic=6.1.0-56-amd64 SMP preempt mod_unload modversions`.
fn vermagic(file: &object::File) -> Option<String> {
    let data = file.section_by_name(".modinfo")?.data().ok()?;
    data.split(|&b| b == 0)
        .find_map(|kv| kv.strip_prefix(b"vermagic="))
        .and_then(|v| v.split(|&b| b == b' ').next())
        .map(|r| String::from_utf8_lossy(r).into_owned())
}

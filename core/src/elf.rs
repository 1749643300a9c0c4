//! The ELF layer: the file, its sections and symbols, and where its DWARF really lives
//! (in the file, in a separate debug file found by build-id or debuglink, and in a dwz
//! supplementary file).

pub mod reloc;
mod truncation;

use std::borrow::Cow;
use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection, ObjectSymbol, SymbolFlags, SymbolKind};

use crate::error::{Error, Result};
use crate::table::{Chunk, Strings, Table};

/// A file in memory, read whole or mapped. Every table borrows from it, without copies.
pub struct Mapped {
    pub path: PathBuf,
    // Before `map`: fields drop in order, so the range is unregistered before it is unmapped.
    _guard: Option<truncation::Guard>,
    map: Bytes,
}

/// Files up to this size are read whole rather than mapped (see [`Bytes`]).
const READ_WHOLE: u64 = 64 << 20;

/// A mapped file that another process truncates while it is read kills the reader with
/// SIGBUS. A file of modest size (a module, a program, a library) is read whole instead,
/// as fast from the page cache, and is then immune; a vmlinux with its DWARF, hundreds of
/// megabytes of which a run reads a part, stays mapped, and [`truncation`] turns that
/// SIGBUS into one line.
enum Bytes {
    Read(Vec<u8>),
    Mapped(memmap2::Mmap),
}

impl std::ops::Deref for Bytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Bytes::Read(v) => v,
            Bytes::Mapped(m) => m,
        }
    }
}

impl Mapped {
    pub fn open(path: &Path) -> Result<Self> {
        let meta = std::fs::metadata(path).map_err(|e| Error::new(format!("{}: {}", path.display(), io_reason(&e))))?;
        if meta.is_dir() {
            return Err(Error::new(format!("{}: is a directory, not an ELF file", path.display())));
        }
        if !meta.is_file() {
            // A FIFO would block `open` until a writer came; a device is no ELF file either.
            return Err(Error::new(format!("{}: not a regular file", path.display())));
        }
        let mut file = File::open(path).map_err(|e| Error::new(format!("{}: {}", path.display(), io_reason(&e))))?;
        let mut guard = None;
        let map = if meta.len() <= READ_WHOLE {
            // The allocator aligns it to 16 bytes, as the ELF structures `object` reads in
            // place need (it checks: a misaligned buffer would be called malformed, not misread).
            let mut bytes = Vec::with_capacity(meta.len() as usize);
            file.read_to_end(&mut bytes).map_err(|e| Error::new(format!("{}: {}", path.display(), io_reason(&e))))?;
            Bytes::Read(bytes)
        } else {
            // SAFETY: the map is read-only; the file truncated underneath us by another
            // process is the one way it can fail, and the guard answers that.
            let map = unsafe { memmap2::Mmap::map(&file) }
                .map_err(|e| Error::new(format!("{}: cannot map: {e}", path.display())))?;
            guard = Some(truncation::guard(map.as_ptr(), map.len(), path));
            Bytes::Mapped(map)
        };
        Ok(Mapped { path: path.to_path_buf(), _guard: guard, map })
    }

    /// Gives the mapped pages back (they stay in the page cache, and a later read faults
    /// them in again): after a whole scan, the hundreds of MB of DWARF it touched would
    /// otherwise count in the process's resident size for as long as the binary is open.
    pub fn release_pages(&self) {
        if let Bytes::Mapped(m) = &self.map {
            // SAFETY: a read-only private file mapping: dropping its pages loses nothing,
            // the next access reads the same bytes from the file again. Advice is only
            // advice, so a failure changes nothing either.
            let _ = unsafe { m.unchecked_advise(memmap2::UncheckedAdvice::DontNeed) };
        }
    }

    /// The CRC-32 of the whole file (the cache's key: the bytes every scan reads).
    pub fn crc32(&self) -> u32 {
        match &self.map {
            Bytes::Read(v) => crate::checksum::crc32(v),
            Bytes::Mapped(m) => crate::checksum::crc32_map(m),
        }
    }

    pub fn parse(&self) -> Result<object::File<'_>> {
        if self.map.len() < 4 || &self.map[..4] != b"\x7fELF" {
            return Err(Error::new(format!("{}: not an ELF file", self.path.display())));
        }
        object::File::parse(&*self.map).map_err(|e| Error::new(format!("{}: malformed ELF: {e}", self.path.display())))
    }
}

fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => e.to_string(),
    }
}

/// The architectures whose code and calling conventions patchscope knows; anything else
/// still gets sections, symbols and DWARF.
pub fn arch_name(file: &object::File) -> &'static str {
    use object::Architecture as A;
    match file.architecture() {
        A::X86_64 => "x86_64",
        A::I386 => "i386",
        A::Aarch64 => "aarch64",
        A::Arm => "arm",
        A::PowerPc64 if file.is_little_endian() => "ppc64le",
        A::PowerPc64 => "ppc64",
        A::PowerPc => "ppc",
        A::Riscv64 => "riscv64",
        A::Riscv32 => "riscv32",
        A::S390x => "s390x",
        A::Mips => "mips",
        A::Mips64 | A::Mips64_N32 => "mips64",
        A::LoongArch64 => "loongarch64",
        A::Sparc64 => "sparc64",
        _ => "unknown",
    }
}

pub fn kind_name(file: &object::File) -> &'static str {
    match file.kind() {
        object::ObjectKind::Relocatable => "relocatable",
        object::ObjectKind::Executable => "executable",
        object::ObjectKind::Dynamic => "shared",
        object::ObjectKind::Core => "core",
        _ => "unknown",
    }
}

pub fn has_dwarf(file: &object::File) -> bool {
    file.section_by_name(".debug_info").is_some_and(|s| s.size() > 0 && !is_nobits(&s))
}

fn is_nobits(s: &object::Section) -> bool {
    matches!(s.flags(), object::SectionFlags::Elf { sh_type, .. } if sh_type == object::elf::SHT_NOBITS)
}

/// The largest expansion a compressed debug section may claim (zlib tops out near 1032:1).
const MAX_INFLATE: u64 = 1100;

/// The bytes of a section, decompressed (SHF_COMPRESSED zlib/zstd, or GNU `.zdebug_`) and,
/// in a relocatable object such as a kernel module, with its relocations applied.
pub fn section_data<'d>(file: &object::File<'d>, name: &str) -> Result<Cow<'d, [u8]>> {
    let Some(section) = file.section_by_name(name) else {
        return Ok(Cow::Borrowed(&[]));
    };
    if is_nobits(&section) {
        return Ok(Cow::Borrowed(&[]));
    }
    if let Ok(range) = section.compressed_file_range() {
        // A corrupt header can claim any size; the allocation would abort the process.
        if range.uncompressed_size > MAX_INFLATE.saturating_mul(range.compressed_size.max(1)) {
            return Err(Error::new(format!(
                "section {name}: compressed header claims {} bytes from {} (corrupt)",
                range.uncompressed_size, range.compressed_size
            )));
        }
    }
    let data = section.uncompressed_data().map_err(|e| Error::new(format!("section {name}: {e}")))?;
    if file.kind() != object::ObjectKind::Relocatable {
        // Executables and shared objects carry the DWARF already relocated, even when
        // linked with --emit-relocs (vmlinux keeps .rela.debug_*).
        return Ok(data);
    }
    relocate(file, &section, data)
}

/// Synthetic addresses for a relocatable object's allocated sections.
///
/// In a `.o` or `.ko` every section starts at address 0, so addresses alone cannot tell two
/// functions in different `.text.*` sections apart. As libdwfl does, each allocated section
/// is given its own place, one after another; symbols, section rows and relocated DWARF
/// addresses all use them. For other files this is every section's own address.
pub fn section_bases(file: &object::File) -> Vec<u64> {
    let n = file.sections().map(|s| s.index().0 + 1).max().unwrap_or(0);
    let mut bases = vec![0u64; n];
    let relocatable = file.kind() == object::ObjectKind::Relocatable;
    let mut next = 0u64;
    for s in file.sections() {
        bases[s.index().0] = if !relocatable {
            s.address()
        } else if is_alloc(&s) {
            // Sizes and alignments come from the file: wrap rather than overflow on garbage.
            let align = s.align().clamp(1, 1 << 32);
            next = next.div_ceil(align).wrapping_mul(align);
            let at = next;
            next = next.wrapping_add(s.size());
            at
        } else {
            0
        };
    }
    bases
}

fn is_alloc(s: &object::Section) -> bool {
    matches!(s.flags(), object::SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0)
}

/// Applies a relocatable object's absolute relocations to one of its debug sections, with
/// the synthetic section addresses of [`section_bases`]. Other relocation kinds (RISC-V's
/// ADD/SUB pairs inside line programs, say) are left as they are, as readelf does.
fn relocate<'d>(
    file: &object::File<'d>,
    section: &object::Section<'d, '_>,
    data: Cow<'d, [u8]>,
) -> Result<Cow<'d, [u8]>> {
    let mut bytes = data.into_owned();
    let little = file.is_little_endian();
    let bases = section_bases(file);
    for r in reloc::relocations(file, section, &bases) {
        let size = usize::from(r.rel.size() / 8);
        if r.rel.kind() != object::RelocationKind::Absolute || !(size == 4 || size == 8) {
            continue;
        }
        let addend = r.addend(&bytes, little);
        let Some(slot) = usize::try_from(r.offset).ok().and_then(|at| bytes.get_mut(at..at.checked_add(size)?)) else {
            return Err(Error::new(format!(
                "relocation at {:#x} outside section {}",
                r.offset,
                section.name().unwrap_or("?")
            )));
        };
        write_uint(slot, r.s.wrapping_add(addend as u64), little);
    }
    Ok(Cow::Owned(bytes))
}

fn read_uint(b: &[u8], little: bool) -> u64 {
    let mut v = 0u64;
    for i in 0..b.len() {
        let byte = if little { b[b.len() - 1 - i] } else { b[i] };
        v = (v << 8) | u64::from(byte);
    }
    v
}

fn write_uint(b: &mut [u8], mut v: u64, little: bool) {
    let n = b.len();
    for i in 0..n {
        let at = if little { i } else { n - 1 - i };
        b[at] = v as u8;
        v >>= 8;
    }
}

/// Identity and links of one ELF file.
pub struct Identity<'d> {
    pub build_id: Option<&'d [u8]>,
    pub debuglink: Option<(&'d [u8], u32)>,
    pub altlink: Option<(&'d [u8], &'d [u8])>,
}

pub fn identity<'d>(file: &object::File<'d>) -> Identity<'d> {
    Identity {
        build_id: file.build_id().ok().flatten(),
        debuglink: file.gnu_debuglink().ok().flatten(),
        altlink: file.gnu_debugaltlink().ok().flatten(),
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where gdb, SystemTap and elfutils look for a separate debug file, in their order, each
/// with how it is found: build-id under each debug root, then the debuglink beside the file,
/// in `.debug/` beside it, and under each debug root followed by the file's own directory.
pub fn debug_file_candidates(binary: &Path, id: &Identity, roots: &[PathBuf]) -> Vec<(PathBuf, String)> {
    let mut out = Vec::new();
    if let Some(bid) = id.build_id.filter(|b| b.len() >= 2) {
        let h = hex(bid);
        for root in roots {
            let p = root.join(".build-id").join(&h[..2]).join(format!("{}.debug", &h[2..]));
            out.push((p, format!("build-id under {}", root.display())));
        }
    }
    if let Some((name, _)) = id.debuglink {
        let name = String::from_utf8_lossy(name).into_owned();
        let dir = binary.parent().unwrap_or(Path::new("."));
        out.push((dir.join(&name), "debuglink beside the binary".into()));
        out.push((dir.join(".debug").join(&name), "debuglink in .debug/".into()));
        let absdir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        for root in roots {
            let rel = absdir.strip_prefix("/").unwrap_or(&absdir);
            out.push((root.join(rel).join(&name), format!("debuglink under {}", root.display())));
        }
    }
    out.retain(|(p, _)| p != binary);
    out
}

/// Does `candidate` belong to the binary? Build-ids must agree where both have one;
/// otherwise the debuglink CRC (of the whole debug file) must match.
pub fn debug_file_matches(candidate: &Mapped, id: &Identity) -> bool {
    let Ok(file) = candidate.parse() else { return false };
    let theirs = identity(&file);
    match (id.build_id, theirs.build_id) {
        (Some(a), Some(b)) => a == b,
        _ => match id.debuglink {
            Some((_, crc)) => crc32fast::hash(&candidate.map) == crc,
            None => false,
        },
    }
}

/// The `sections` table.
pub fn sections_table<'d>(file: &object::File<'d>, strings: &mut Strings<'d>) -> Table {
    let bases = section_bases(file);
    let (mut name, mut index, mut address, mut size, mut offset, mut kind, mut flags, mut compressed) =
        (vec![], vec![], vec![], vec![], vec![], vec![], vec![], vec![]);
    for s in file.sections() {
        name.push(strings.intern_str(s.name_bytes().unwrap_or(b"")));
        index.push(s.index().0 as u32);
        address.push(bases[s.index().0]);
        size.push(s.size());
        offset.push(s.file_range().map_or(0, |(o, _)| o));
        let (t, f) = match s.flags() {
            object::SectionFlags::Elf { sh_type, sh_flags } => (sh_type.0, sh_flags.0),
            _ => (0, 0),
        };
        kind.push(t);
        flags.push(f);
        let packed = s.compressed_file_range().is_ok_and(|r| r.format != object::CompressionFormat::None);
        compressed.push(u8::from(packed));
    }
    Table::new(vec![
        ("name", Chunk::Str(name)),
        ("index", Chunk::U32(index)),
        ("address", Chunk::U64(address)),
        ("size", Chunk::U64(size)),
        ("offset", Chunk::U64(offset)),
        ("type", Chunk::U32(kind)),
        ("flags", Chunk::U64(flags)),
        ("compressed", Chunk::U8(compressed)),
    ])
}

/// Symbol kinds as stored in the `symbols.kind` column.
pub mod symkind {
    consts! {
        pub const OTHER: u8 = 0;
        pub const FUNC: u8 = 1;
        pub const OBJECT: u8 = 2;
        pub const SECTION: u8 = 3;
        pub const FILE: u8 = 4;
        pub const TLS: u8 = 5;
        pub const NOTYPE: u8 = 6;
    }
}

/// Bits of the `symbols.suffix_kinds` column: the clone and split suffixes a compiler appends.
pub mod suffix {
    consts! {
        pub const COLD: u16 = 1;
        pub const PART: u16 = 2;
        pub const ISRA: u16 = 4;
        pub const CONSTPROP: u16 = 8;
        pub const LTO_PRIV: u16 = 16;
        pub const LLVM: u16 = 32;
        pub const LOCALALIAS: u16 = 64;
        pub const CLONE: u16 = 128;
        pub const OTHER: u16 = 256;
    }
}

/// Splits `foo.isra.0.cold` into the stem `foo` and the suffix chain `isra.0.cold`, with
/// the set of suffix kinds. A C identifier never contains a dot, so the first dot that does
/// not start the name ends the stem (ppc64 ELFv1 dot-symbols keep their leading dot).
pub fn split_suffixes(name: &[u8]) -> (&[u8], &[u8], u16) {
    let start = usize::from(name.first() == Some(&b'.'));
    let Some(dot) = name[start..].iter().position(|&c| c == b'.').map(|p| p + start) else {
        return (name, b"", 0);
    };
    let (stem, chain) = (&name[..dot], &name[dot + 1..]);
    let mut kinds = 0;
    let mut tokens = chain.split(|&c| c == b'.').peekable();
    while let Some(tok) = tokens.next() {
        kinds |= match tok {
            b"cold" => suffix::COLD,
            b"part" => suffix::PART,
            b"isra" => suffix::ISRA,
            b"constprop" => suffix::CONSTPROP,
            b"lto_priv" => suffix::LTO_PRIV,
            b"llvm" => suffix::LLVM,
            b"localalias" => suffix::LOCALALIAS,
            b"clone" | b"specialized" => suffix::CLONE,
            t if !t.is_empty() && t.iter().all(u8::is_ascii_digit) => 0,
            _ => suffix::OTHER,
        };
        if tok == b"llvm" {
            tokens.next(); // the hash that follows is part of the suffix, not a kind
        }
    }
    (stem, chain, kinds)
}

/// A symbol name as klp-build compares names: without the numbers the compiler gives clones
/// and statics (`foo.isra.3` → `foo.isra`, `__already_done.12` → `__already_done`,
/// `__UNIQUE_ID_ddebug312` → `__UNIQUE_ID_ddebug`) and without `.llvm.<hash>`, so that
/// renumbering between builds is no change. The one rule: code fingerprints name symbols
/// this way, and Python's diff and stats ask for it (`_core.clone_shape`).
pub fn clone_shape(name: &[u8]) -> Vec<u8> {
    clone_shape_parts(name).concat()
}

/// The pieces of `name` that its shape keeps: the stem, then `.token` for each token that is
/// not a number (nor `llvm` and the hash after it).
pub(crate) fn clone_shape_parts(name: &[u8]) -> Vec<&[u8]> {
    // The stem ends at the first dot that does not start the name (ppc64 ELFv1 `.foo`).
    let stem_end = name.iter().skip(1).position(|&b| b == b'.').map_or(name.len(), |p| p + 1);
    let (mut stem, rest) = name.split_at(stem_end);
    // ppc64 linker stubs, `0000002a.plt_call.foo`: the number is the stub's input section,
    // which changes with the link.
    if stem.len() == 8 && stem.iter().all(u8::is_ascii_hexdigit) && !rest.is_empty() {
        stem = b"";
    }
    // `__UNIQUE_ID_<prefix><counter>` (the kernel's __UNIQUE_ID(), e.g. dynamic debug
    // descriptors): the counter is the compiler's __COUNTER__, which any earlier use in the
    // unit shifts. klp-build strips it the same way.
    if stem.starts_with(b"__UNIQUE_ID_") {
        while let [head @ .., last] = stem {
            if !last.is_ascii_digit() {
                break;
            }
            stem = head;
        }
    }
    let mut parts = vec![stem];
    let mut tokens = rest.split(|&b| b == b'.').skip(1);
    while let Some(token) = tokens.next() {
        if token == b"llvm" {
            tokens.next();
        } else if token.is_empty() || !token.iter().all(u8::is_ascii_digit) {
            parts.extend([&b"."[..], token]);
        }
    }
    parts
}

/// The `symbols` table: `.symtab` of `primary`, or of `fallback` (the debug file) when the
/// binary is stripped, or `.dynsym` as a last resort. Returns the table and where it came from.
pub fn symbols_table<'d>(
    primary: &object::File<'d>,
    fallback: Option<&object::File<'d>>,
    strings: &mut Strings<'d>,
) -> (Table, &'static str) {
    let (file, origin) = if primary.symbols().next().is_some() {
        (primary, "symtab")
    } else if let Some(f) = fallback.filter(|f| f.symbols().next().is_some()) {
        (f, "debug-file symtab")
    } else {
        (primary, "dynsym")
    };
    let syms: Vec<object::Symbol> =
        if origin == "dynsym" { file.dynamic_symbols().collect() } else { file.symbols().collect() };
    let bases = section_bases(file);
    let code = CodeAddress::new(file);
    let mut t = SymbolColumns::with_capacity(syms.len());
    for s in &syms {
        let base = match (file.kind(), s.section_index()) {
            (object::ObjectKind::Relocatable, Some(i)) => bases.get(i.0).copied().unwrap_or(0),
            _ => 0,
        };
        t.push(s, code.of(s).wrapping_add(base), strings);
    }
    (t.finish(), origin)
}

/// Where a function symbol's code starts, which is what DWARF addresses name: ARM marks
/// Thumb functions by setting bit 0 of the symbol value, and on ppc64 ELFv1 a function
/// symbol names its descriptor in `.opd`, whose first doubleword is the code address.
struct CodeAddress<'d> {
    thumb: bool,
    opd: Option<(object::SectionIndex, u64, &'d [u8])>,
    big_endian: bool,
}

impl<'d> CodeAddress<'d> {
    fn new(file: &object::File<'d>) -> Self {
        let opd = (file.architecture() == object::Architecture::PowerPc64)
            .then(|| file.section_by_name(".opd"))
            .flatten()
            .and_then(|s| Some((s.index(), s.address(), s.data().ok()?)));
        CodeAddress {
            thumb: file.architecture() == object::Architecture::Arm,
            opd,
            big_endian: !file.is_little_endian(),
        }
    }

    fn of(&self, s: &object::Symbol) -> u64 {
        let value = s.address();
        if s.kind() != SymbolKind::Text {
            return value;
        }
        if self.thumb {
            return value & !1;
        }
        match self.opd {
            Some((index, base, data)) if s.section_index() == Some(index) => {
                let at = usize::try_from(value.wrapping_sub(base)).unwrap_or(usize::MAX);
                at.checked_add(8).and_then(|end| data.get(at..end)).map_or(value, |b| read_uint(b, !self.big_endian))
            }
            _ => value,
        }
    }
}

#[derive(Default)]
struct SymbolColumns {
    name: Vec<u32>,
    stem: Vec<u32>,
    suffix: Vec<u32>,
    suffix_kinds: Vec<u16>,
    address: Vec<u64>,
    size: Vec<u64>,
    kind: Vec<u8>,
    binding: Vec<u8>,
    other: Vec<u8>,
    section: Vec<u32>,
}

impl SymbolColumns {
    fn with_capacity(n: usize) -> Self {
        SymbolColumns {
            name: Vec::with_capacity(n),
            stem: Vec::with_capacity(n),
            suffix: Vec::with_capacity(n),
            suffix_kinds: Vec::with_capacity(n),
            address: Vec::with_capacity(n),
            size: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            binding: Vec::with_capacity(n),
            other: Vec::with_capacity(n),
            section: Vec::with_capacity(n),
        }
    }

    fn push<'d>(&mut self, s: &object::Symbol<'d, '_>, address: u64, strings: &mut Strings<'d>) {
        let name = s.name_bytes().unwrap_or(b"");
        let (stem, chain, kinds) = split_suffixes(name);
        self.name.push(strings.intern_str(name));
        self.stem.push(strings.intern_str(stem));
        self.suffix.push(strings.intern_str(chain));
        self.suffix_kinds.push(kinds);
        self.address.push(address);
        self.size.push(s.size());
        self.kind.push(match s.kind() {
            SymbolKind::Text => symkind::FUNC,
            SymbolKind::Data => symkind::OBJECT,
            SymbolKind::Section => symkind::SECTION,
            SymbolKind::File => symkind::FILE,
            SymbolKind::Tls => symkind::TLS,
            SymbolKind::Unknown => symkind::NOTYPE,
            _ => symkind::OTHER,
        });
        let (bind, other) = match s.flags() {
            SymbolFlags::Elf { st_info, st_other } => (st_info.st_bind().0, st_other.0),
            _ => (0, 0),
        };
        self.binding.push(bind);
        self.other.push(other);
        self.section.push(s.section_index().map_or(0, |i| i.0 as u32));
    }

    fn finish(self) -> Table {
        Table::new(vec![
            ("name", Chunk::Str(self.name)),
            ("stem", Chunk::Str(self.stem)),
            ("suffix", Chunk::Str(self.suffix)),
            ("suffix_kinds", Chunk::U16(self.suffix_kinds)),
            ("address", Chunk::U64(self.address)),
            ("size", Chunk::U64(self.size)),
            ("kind", Chunk::U8(self.kind)),
            ("binding", Chunk::U8(self.binding)),
            ("other", Chunk::U8(self.other)),
            ("section", Chunk::U32(self.section)),
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_chains() {
        let k = |n: &str| {
            let (s, c, k) = split_suffixes(n.as_bytes());
            (String::from_utf8_lossy(s).into_owned(), String::from_utf8_lossy(c).into_owned(), k)
        };
        assert_eq!(k("foo"), ("foo".into(), "".into(), 0));
        assert_eq!(k("foo.isra.0.cold"), ("foo".into(), "isra.0.cold".into(), suffix::ISRA | suffix::COLD));
        assert_eq!(k("a.constprop.0.isra.0").2, suffix::CONSTPROP | suffix::ISRA);
        assert_eq!(k("x.part.3.constprop.1").2, suffix::PART | suffix::CONSTPROP);
        assert_eq!(k("f.lto_priv.0").2, suffix::LTO_PRIV);
        assert_eq!(k("g.llvm.1234567890").2, suffix::LLVM);
        assert_eq!(k("h.localalias").2, suffix::LOCALALIAS);
        assert_eq!(k("count.0").2, 0);
        assert_eq!(k(".ppcfunc"), (".ppcfunc".into(), "".into(), 0));
        assert_eq!(k("__func__.weird").2, suffix::OTHER);
    }

    #[test]
    fn uint_roundtrip() {
        for little in [true, false] {
            let mut b = [0u8; 8];
            write_uint(&mut b, 0x1122_3344_5566_7788, little);
            assert_eq!(read_uint(&b, little), 0x1122_3344_5566_7788);
            let mut b4 = [0u8; 4];
            write_uint(&mut b4, 0xdead_beef, little);
            assert_eq!(read_uint(&b4, little), 0xdead_beef);
        }
    }

    #[test]
    fn clone_shapes() {
        assert_eq!(clone_shape(b"foo.constprop.0.isra.12"), b"foo.constprop.isra");
        assert_eq!(clone_shape(b"bar.llvm.1234abcd"), b"bar");
        assert_eq!(clone_shape(b"__already_done.12"), b"__already_done");
        assert_eq!(clone_shape(b"0000002a.plt_call.puts"), b".plt_call.puts");
        assert_eq!(clone_shape(b".foo.part.1"), b".foo.part");
        assert_eq!(clone_shape(b"__UNIQUE_ID_ddebug312"), b"__UNIQUE_ID_ddebug");
        assert_eq!(clone_shape(b"foo.part.0.cold"), b"foo.part.cold");
    }
}

//! Malformed input: `scan` must answer `Err` (one line, for a person) or `Ok` (partial
//! results), and never panic, hang or allocate without bound, whatever the bytes.
//!
//! `fuzz-*.bin` under `tests/data/` are inputs found by the fuzz targets in `core/fuzz/`
//! (minimised with `cargo fuzz tmin`, or reduced by hand where tmin could not shrink an ELF
//! whose offsets point past its end); the rest are made by hand. A global allocator records
//! the largest single allocation of each scan, so "no huge allocation" is checked too.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};
use patchscope_core::binary::Binary;
use patchscope_core::error::Error;
use patchscope_core::table::{Chunk, Column, Scan, Table};

// ---- allocation watch ---------------------------------------------------------------------

/// No single allocation of a scan of these (small) files may come near this.
const MAX_ALLOC: usize = 256 << 20;
/// Above this the allocator refuses (a null pointer) rather than let a test machine
/// reserve terabytes; a fallible reservation then fails and an infallible one aborts.
const REFUSE_ABOVE: usize = 4 << 30;

/// The system allocator, remembering the largest single request made on each thread.
struct Watch;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|l| l.set(l.get().max(size)));
}

unsafe impl GlobalAlloc for Watch {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        if layout.size() > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        if new_size > REFUSE_ABOVE {
            return std::ptr::null_mut();
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static WATCH: Watch = Watch;

// ---- helpers ------------------------------------------------------------------------------

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bin").join(rel)
}

fn data(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)
}

/// A file of this test's own, alone in a directory of its own (a debuglink or altlink in a
/// malformed file is looked up beside it, never beside the fixtures); both go on drop.
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
        if let Some(dir) = self.0.parent() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

fn scratch(name: &str, bytes: &[u8]) -> Scratch {
    let dir = std::env::temp_dir().join(format!("patchscope-malformed-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("input.elf");
    std::fs::write(&path, bytes).unwrap();
    Scratch(path)
}

/// Scans `path`, failing the test with the panic's message if one escapes, or if a single
/// allocation on this thread (where the sections are loaded and decompressed; the units'
/// rayon workers are not watched) asks for more than [`MAX_ALLOC`].
fn scan_path(path: &Path) -> Result<Scan, Error> {
    LARGEST.with(|l| l.set(0));
    let result = catch_unwind(AssertUnwindSafe(|| Binary::open(path, None, &[])?.scan()));
    let largest = LARGEST.with(|l| l.get());
    let r = result.unwrap_or_else(|p| {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        panic!("scan({}) panicked: {msg}", path.display())
    });
    assert!(
        largest <= MAX_ALLOC,
        "scan({}) asked for one allocation of {largest} bytes ({:.1} GiB)",
        path.display(),
        largest as f64 / f64::from(1u32 << 30)
    );
    match &r {
        Ok(s) => check_scan(s),
        Err(e) => check_message(e),
    }
    r
}

fn check_message(e: &Error) {
    let m = e.to_string();
    assert!(!m.is_empty(), "empty error message");
    assert!(!m.contains('\n'), "error message of more than one line: {m:?}");
}

/// Equal-length columns of one type, string indices inside the pool, well-formed pool offsets.
fn check_scan(s: &Scan) {
    let n = s.string_offsets.len().checked_sub(1).expect("string pool has offsets");
    assert_eq!(*s.string_offsets.last().unwrap() as usize, s.string_data.len());
    assert!(s.string_offsets.windows(2).all(|w| w[0] <= w[1]));
    for (name, t) in &s.tables {
        for (col, c) in &t.columns {
            assert_eq!(c.len(), t.rows(), "{name}.{col}: ragged");
            assert!(c.chunks.iter().all(|ch| ch.dtype() == c.dtype()), "{name}.{col}: chunks of mixed types");
            for ch in &c.chunks {
                if let Chunk::Str(v) = ch {
                    assert!(v.iter().all(|&i| (i as usize) < n), "{name}.{col}: string index outside the pool");
                }
            }
        }
    }
}

fn expect_err(path: &Path, contains: &str) -> String {
    match scan_path(path) {
        Ok(_) => panic!("{}: expected an error", path.display()),
        Err(e) => {
            assert!(e.0.contains(contains), "{:?} does not contain {contains:?}", e.0);
            e.0
        }
    }
}

fn table<'s>(s: &'s Scan, name: &str) -> &'s Table {
    &s.tables.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no table {name}")).1
}

fn column<'t>(t: &'t Table, name: &str) -> &'t Column {
    &t.columns.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no column {name}")).1
}

/// A string column's pool indices, its chunks concatenated.
fn str_values(c: &Column) -> Vec<u32> {
    c.chunks
        .iter()
        .flat_map(|ch| match ch {
            Chunk::Str(v) => v.iter().copied(),
            other => panic!("not a string column: {}", other.dtype()),
        })
        .collect()
}

fn u64_values(c: &Column) -> Vec<u64> {
    c.chunks
        .iter()
        .flat_map(|ch| match ch {
            Chunk::U64(v) => v.iter().copied(),
            other => panic!("not a u64 column: {}", other.dtype()),
        })
        .collect()
}

fn string(s: &Scan, i: u32) -> String {
    let (a, b) = (s.string_offsets[i as usize] as usize, s.string_offsets[i as usize + 1] as usize);
    String::from_utf8_lossy(&s.string_data[a..b]).into_owned()
}

fn info<'s>(s: &'s Scan, key: &str) -> &'s str {
    &s.info.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no info {key}")).1
}

// ---- hand-made cases ---------------------------------------------------------------------

#[test]
fn empty_file() {
    expect_err(&scratch("empty", b""), "not an ELF file");
}

#[test]
fn three_bytes_of_magic() {
    expect_err(&scratch("three", b"\x7fEL"), "not an ELF file");
}

#[test]
fn elf_header_only() {
    let bytes = std::fs::read(fixture("x86_64/corpus")).unwrap();
    // 64 bytes is a whole ELF64 header whose section headers lie beyond the end of the file.
    expect_err(&scratch("header64", &bytes[..64]), "malformed ELF");
}

#[test]
fn random_bytes_with_elf_magic() {
    // xorshift64*: the same bytes on every run.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d)
    };
    for round in 0..200u32 {
        let len = 16 + (next() % 8192) as usize;
        let mut bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        bytes[..4].copy_from_slice(b"\x7fELF");
        // Half of them with a plausible class and data encoding, so `object` reads further.
        if round % 2 == 0 {
            bytes[4] = 1 + (round / 2 % 2) as u8;
            bytes[5] = 1 + (round / 4 % 2) as u8;
            bytes[6] = 1;
        }
        let _ = scan_path(&scratch(&format!("random-{round}"), &bytes));
    }
}

#[test]
fn fixtures_truncated_at_half() {
    for rel in [
        "x86_64/corpus",
        "x86_64-dwarf4/corpus",
        "x86_64-gz/corpus",
        "x86_64-zstd/corpus",
        "x86_64-rel/module.o",
        "x86_64-split/corpus.debug",
        "x86_64-dwz/corpus",
        "aarch64/corpus",
        "elf-arches/ppc64/corpus",
        "elf-arches/mips/corpus",
    ] {
        let bytes = std::fs::read(fixture(rel)).unwrap();
        let name = format!("half-{}", rel.replace('/', "-"));
        // Section headers sit at the end of these files: cut in half, the file cannot be
        // read as ELF at all.
        expect_err(&scratch(&name, &bytes[..bytes.len() / 2]), "malformed ELF");
    }
}

#[test]
fn directory() {
    let dir = std::env::temp_dir();
    let msg = expect_err(&dir, "is a directory");
    assert!(msg.starts_with(&dir.display().to_string()));
}

#[test]
fn missing_path() {
    let p = std::env::temp_dir().join(format!("patchscope-no-such-file-{}", std::process::id()));
    expect_err(&p, "no such file");
}

/// Every byte of `.debug_abbrev` / `.debug_line` / `.debug_str` … inverted in turn would be
/// slow; instead every 97th byte of the whole DWARF of the main fixture is inverted, one file
/// per section, so each reader sees garbage in the middle of real data.
#[test]
fn each_debug_section_scrambled() {
    let path = fixture("x86_64/corpus");
    let bytes = std::fs::read(&path).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    for s in file.sections() {
        let name = s.name().unwrap().to_string();
        if !name.starts_with(".debug_") {
            continue;
        }
        let (off, len) = s.file_range().unwrap();
        let mut copy = bytes.clone();
        for i in (off as usize..(off + len) as usize).step_by(97) {
            copy[i] = !copy[i];
        }
        let s = scan_path(&scratch(&format!("scrambled{name}"), &copy)).expect("the ELF layer is intact");
        assert_eq!(info(&s, "dwarf"), "embedded");
    }
}

/// Garbage where the second DIE of one unit starts: that unit reports an error in
/// `units.error`, every other unit is read as before.
#[test]
fn corrupt_unit_is_isolated() {
    let path = fixture("x86_64/corpus");
    let bytes = std::fs::read(&path).unwrap();
    let (info_off, victim, victim_index, n_units) = {
        let file = object::File::parse(&*bytes).unwrap();
        let sec = file.section_by_name(".debug_info").unwrap();
        let (info_off, _) = sec.file_range().unwrap();
        let load = |id: gimli::SectionId| -> Result<&[u8], gimli::Error> {
            Ok(file.section_by_name(id.name()).and_then(|s| s.data().ok()).unwrap_or(&[]))
        };
        let sections = gimli::DwarfSections::load(load).unwrap();
        let dwarf = sections.borrow(|s| gimli::EndianSlice::new(s, gimli::LittleEndian));
        let headers: Vec<_> = {
            let mut it = dwarf.units();
            std::iter::from_fn(|| it.next().unwrap()).collect()
        };
        // The unit in the middle, so that units before and after it are left.
        let victim_index = headers.len() / 2;
        let h = headers[victim_index];
        let unit = dwarf.unit(h).unwrap();
        let mut raw = unit.entries_raw(None).unwrap();
        let abbrev = raw.read_abbreviation().unwrap().expect("root DIE");
        raw.skip_attributes(abbrev.attributes()).unwrap();
        let second = raw.next_offset().to_debug_info_offset(&unit.header).unwrap().0;
        (info_off as usize, second, victim_index, headers.len())
    };
    assert!(n_units >= 3, "the fixture has several units");

    let before = scan_path(&path).unwrap();
    let mut copy = bytes.clone();
    // An unterminated ULEB128 where an abbreviation code should be.
    copy[info_off + victim..info_off + victim + 12].fill(0xff);
    let after = scan_path(&scratch("corrupt-unit", &copy)).expect("a broken unit is not a broken file");

    let units = table(&after, "units");
    assert_eq!(units.rows(), n_units, "every unit still has its row");
    let errors = str_values(column(units, "error"));
    let dies = u64_values(column(units, "dies"));
    let bad: Vec<usize> = (0..errors.len()).filter(|&i| errors[i] != 0).collect();
    assert_eq!(bad, vec![victim_index], "only the corrupted unit reports an error");
    let msg = string(&after, errors[victim_index]);
    assert!(msg.contains("DIEs"), "error names the DIE walk: {msg}");
    assert!(!msg.contains('\n'));
    assert_eq!(info(&after, "unit_errors"), "1");
    // The other units are read exactly as before.
    let dies_before = u64_values(column(table(&before, "units"), "dies"));
    for i in (0..n_units).filter(|&i| i != victim_index) {
        assert!(dies[i] > 0);
        assert_eq!(dies[i], dies_before[i], "unit {i} read differently");
    }
    assert!(table(&after, "subprograms").rows() > 0);
    assert!(table(&after, "subprograms").rows() < table(&before, "subprograms").rows());
}

// ---- inputs found by fuzzing (core/fuzz) -------------------------------------------------

/// scan_elf (minimised with `cargo fuzz tmin`): an ET_REL file whose SHF_ALLOC sections have
/// sizes and alignments near 2^64. Laying them out one after another in
/// `elf::section_bases` overflowed `next.div_ceil(align) * align` (and `next += s.size()`);
/// wrapping arithmetic since bb7706c.
#[test]
fn fuzz_section_bases_overflow() {
    let _ = scan_path(&data("fuzz-section-bases-overflow.bin"));
}

// ---- more hand-made cases, for the ELF layer's own arithmetic -----------------------------

/// Overwrites the big- or little-endian u64 at `at`.
fn put_u64(bytes: &mut [u8], at: usize, v: u64, big: bool) {
    let b = if big { v.to_be_bytes() } else { v.to_le_bytes() };
    bytes[at..at + 8].copy_from_slice(&b);
}

/// ppc64 ELFv1: a function symbol in `.opd` whose value lies just *below* `.opd`'s address.
/// `CodeAddress::of` computes `value - base` (wrapping) and then `at + 8`, which overflowed
/// (checked since 6ee96a6).
#[test]
fn ppc64_opd_symbol_below_opd() {
    let mut bytes = std::fs::read(fixture("elf-arches/ppc64/corpus")).unwrap();
    let (sym_at, opd_addr) = {
        let file = object::File::parse(&*bytes).unwrap();
        let opd = file.section_by_name(".opd").unwrap();
        let symtab = file.section_by_name(".symtab").unwrap();
        let (symtab_off, _) = symtab.file_range().unwrap();
        let sym = object::Object::symbols(&file)
            .find(|s| {
                object::ObjectSymbol::kind(s) == object::SymbolKind::Text
                    && object::ObjectSymbol::section_index(s) == Some(opd.index())
            })
            .expect("a function symbol in .opd");
        // Elf64_Sym: st_name u32, st_info u8, st_other u8, st_shndx u16, st_value u64, st_size u64.
        (symtab_off as usize + object::ObjectSymbol::index(&sym).0 * 24 + 8, opd.address())
    };
    for delta in 1..=8 {
        put_u64(&mut bytes, sym_at, opd_addr - delta, true);
        let s = scan_path(&scratch(&format!("opd-below-{delta}"), &bytes)).expect("only one symbol is odd");
        assert!(table(&s, "symbols").rows() > 0);
    }
}

/// A relocatable object (like a kernel module) whose allocated sections claim sizes near
/// 2^64: their synthetic addresses (`elf::section_bases`) must not overflow (fixed in bb7706c).
#[test]
fn relocatable_with_huge_alloc_sections() {
    let mut bytes = std::fs::read(fixture("x86_64-rel/module.o")).unwrap();
    let shdrs: Vec<usize> = {
        let file = object::File::parse(&*bytes).unwrap();
        let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().unwrap()) as usize;
        file.sections()
            .filter(|s| matches!(s.flags(), object::SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0))
            .filter(|s| s.kind() != object::SectionKind::UninitializedData)
            .map(|s| shoff + s.index().0 * 64)
            .collect()
    };
    assert!(shdrs.len() >= 2);
    // Elf64_Shdr.sh_size is at +32. Only the sizes of the (NOBITS-free) alloc sections change,
    // their file ranges are then out of bounds but no section data is read for the table.
    for &h in &shdrs[..2] {
        put_u64(&mut bytes, h + 32, u64::MAX - 0x10, false);
    }
    let _ = scan_path(&scratch("rel-huge-sizes", &bytes));
}

/// `SHF_COMPRESSED` debug sections whose compression header claims a huge uncompressed size:
/// `object` reserves that size before decompressing (its documentation says to check it
/// first for untrusted files), so the claim must be bounded before `uncompressed_data()`.
/// (Found by fuzzing; bounded in elf::section_data since bb7706c.)
#[test]
fn compressed_section_claims_huge_size() {
    for rel in ["x86_64-gz/corpus", "x86_64-zstd/corpus"] {
        let mut bytes = std::fs::read(fixture(rel)).unwrap();
        let at = {
            let file = object::File::parse(&*bytes).unwrap();
            let (off, _) = file.section_by_name(".debug_info").unwrap().file_range().unwrap();
            off as usize
        };
        // Elf64_Chdr: ch_type u32, ch_reserved u32, ch_size u64, ch_addralign u64.
        for claim in [1u64 << 30, 1 << 40] {
            put_u64(&mut bytes, at + 8, claim, false);
            let name = format!("chsize-{}-{claim:x}", rel.replace('/', "-"));
            let _ = scan_path(&scratch(&name, &bytes));
        }
    }
}

/// scan_elf: the fuzzer's inputs were `x86_64-gz/corpus` with an Elf64_Chdr.ch_size of up to
/// 2^62 (ASan: "requested allocation size … exceeds maximum supported size", in
/// `object::CompressedData::decompress` under `elf::section_data`). Reduced by hand to a
/// 320-byte ELF: one SHF_COMPRESSED `.debug_info` (zlib, 16 bytes) claiming 2^40 bytes.
/// Bounded in elf::section_data since bb7706c.
#[test]
fn fuzz_compressed_size() {
    let _ = scan_path(&data("fuzz-compressed-size.bin"));
}

// ---- hand-made DWARF ----------------------------------------------------------------------

/// One section of a hand-made ELF.
struct Sec<'a> {
    name: &'a str,
    sh_type: u32,
    addr: u64,
    data: Vec<u8>,
    link: u32,
    info: u32,
    entsize: u64,
}

impl<'a> Sec<'a> {
    fn progbits(name: &'a str, addr: u64, data: Vec<u8>) -> Self {
        Sec { name, sh_type: 1, addr, data, link: 0, info: 0, entsize: 0 }
    }
}

/// A minimal little-endian x86_64 ELF64 executable holding just `sections` and a trailing
/// `.shstrtab`: enough for `scan` to find sections, symbols and DWARF.
fn elf64(sections: &[Sec]) -> Vec<u8> {
    let mut shstrtab = vec![0u8];
    let mut names = Vec::new();
    for name in sections.iter().map(|s| s.name).chain(std::iter::once(".shstrtab")) {
        names.push(shstrtab.len() as u32);
        shstrtab.extend_from_slice(name.as_bytes());
        shstrtab.push(0);
    }
    let strtab = Sec { name: ".shstrtab", sh_type: 3, addr: 0, data: shstrtab, link: 0, info: 0, entsize: 0 };
    let mut out = vec![0u8; 64];
    let mut headers = vec![[0u8; 64]]; // SHN_UNDEF
    for (i, s) in sections.iter().chain(std::iter::once(&strtab)).enumerate() {
        let offset = out.len() as u64;
        out.extend_from_slice(&s.data);
        let mut h = [0u8; 64];
        h[0..4].copy_from_slice(&names[i].to_le_bytes());
        h[4..8].copy_from_slice(&s.sh_type.to_le_bytes());
        h[16..24].copy_from_slice(&s.addr.to_le_bytes());
        h[24..32].copy_from_slice(&offset.to_le_bytes());
        h[32..40].copy_from_slice(&(s.data.len() as u64).to_le_bytes());
        h[40..44].copy_from_slice(&s.link.to_le_bytes());
        h[44..48].copy_from_slice(&s.info.to_le_bytes());
        h[48..56].copy_from_slice(&1u64.to_le_bytes()); // sh_addralign
        h[56..64].copy_from_slice(&s.entsize.to_le_bytes());
        headers.push(h);
    }
    while out.len() % 8 != 0 {
        out.push(0);
    }
    let shoff = out.len() as u64;
    for h in &headers {
        out.extend_from_slice(h);
    }
    let e = &mut out[..64];
    e[..4].copy_from_slice(b"\x7fELF");
    e[4] = 2; // ELFCLASS64
    e[5] = 1; // ELFDATA2LSB
    e[6] = 1; // EV_CURRENT
    e[16..18].copy_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    e[18..20].copy_from_slice(&62u16.to_le_bytes()); // EM_X86_64
    e[20..24].copy_from_slice(&1u32.to_le_bytes());
    e[40..48].copy_from_slice(&shoff.to_le_bytes());
    e[52..54].copy_from_slice(&64u16.to_le_bytes()); // e_ehsize
    e[58..60].copy_from_slice(&64u16.to_le_bytes()); // e_shentsize
    e[60..62].copy_from_slice(&(headers.len() as u16).to_le_bytes());
    e[62..64].copy_from_slice(&(headers.len() as u16 - 1).to_le_bytes()); // e_shstrndx
    out
}

fn tiny_elf(sections: &[(&str, Vec<u8>)]) -> Vec<u8> {
    elf64(&sections.iter().map(|(n, d)| Sec::progbits(n, 0, d.clone())).collect::<Vec<_>>())
}

/// `.symtab` + `.strtab` (to be placed at section indices `at` and `at + 1`) with global
/// symbols (name, value) defined in section 1.
fn symtab(at: u32, symbols: &[(&str, u64)]) -> [Sec<'static>; 2] {
    let mut strtab = vec![0u8];
    let mut syms = vec![0u8; 24]; // the null symbol
    for &(name, value) in symbols {
        let mut e = [0u8; 24];
        e[0..4].copy_from_slice(&(strtab.len() as u32).to_le_bytes());
        e[4] = 0x10; // STB_GLOBAL, STT_NOTYPE
        e[6..8].copy_from_slice(&1u16.to_le_bytes());
        e[8..16].copy_from_slice(&value.to_le_bytes());
        syms.extend_from_slice(&e);
        strtab.extend_from_slice(name.as_bytes());
        strtab.push(0);
    }
    [
        Sec { name: ".symtab", sh_type: 2, addr: 0, data: syms, link: at + 1, info: 1, entsize: 24 },
        Sec { name: ".strtab", sh_type: 3, addr: 0, data: strtab, link: 0, info: 0, entsize: 0 },
    ]
}

/// One DWARF 4 compile unit: `.debug_info` with `dies` after the root DIE (abbreviation 1),
/// `.debug_abbrev` with `abbrevs` (code, tag, has_children; no attributes) after the root's.
fn one_unit(abbrevs: &[(u8, u8, bool)], dies: &[u8]) -> Vec<u8> {
    let mut abbrev = vec![1, 0x11, 1, 0, 0]; // 1: DW_TAG_compile_unit, children, no attributes
    for &(code, tag, children) in abbrevs {
        abbrev.extend_from_slice(&[code, tag, u8::from(children), 0, 0]);
    }
    abbrev.push(0);
    let mut body = vec![4, 0, 0, 0, 0, 0, 8]; // version 4, abbrev offset 0, address size 8
    body.push(1);
    body.extend_from_slice(dies);
    body.push(0); // end of the root's children
    let mut info = (body.len() as u32).to_le_bytes().to_vec();
    info.extend_from_slice(&body);
    tiny_elf(&[(".debug_info", info), (".debug_abbrev", abbrev)])
}

fn unit_errors(s: &Scan) -> Vec<String> {
    str_values(column(table(s, "units"), "error")).into_iter().filter(|&i| i != 0).map(|i| string(s, i)).collect()
}

#[test]
fn tiny_elf_is_read() {
    // A subprogram with two parameters.
    let elf = one_unit(&[(2, 0x2e, true), (3, 0x05, false)], &[2, 3, 3, 0]);
    let s = scan_path(&scratch("tiny", &elf)).unwrap();
    assert_eq!(info(&s, "units"), "1");
    assert!(unit_errors(&s).is_empty(), "{:?}", unit_errors(&s));
    assert_eq!(table(&s, "subprograms").rows(), 1);
    assert_eq!(table(&s, "params").rows(), 2);
}

/// More than 65535 parameters under one subprogram: `params.position` is a u16 (the count
/// overflowed and the unit became an `internal error` row; saturating since 6ee96a6).
#[test]
fn many_parameters() {
    let mut dies = vec![2];
    dies.extend(std::iter::repeat_n(3u8, 70_000));
    dies.push(0);
    let elf = one_unit(&[(2, 0x2e, true), (3, 0x05, false)], &dies);
    let s = scan_path(&scratch("many-params", &elf)).unwrap();
    assert!(unit_errors(&s).is_empty(), "{:?}", unit_errors(&s));
    assert_eq!(table(&s, "params").rows(), 70_000);
}

/// Inline sites nested more than 65535 deep: `inline_sites.depth` is a u16 (saturating since
/// 6ee96a6).
#[test]
fn deeply_nested_inline_sites() {
    let n = 70_000;
    let mut dies = vec![2];
    dies.extend(std::iter::repeat_n(4u8, n));
    dies.extend(std::iter::repeat_n(0u8, n + 1));
    let elf = one_unit(&[(2, 0x2e, true), (4, 0x1d, true)], &dies);
    let s = scan_path(&scratch("deep-inline", &elf)).unwrap();
    assert!(unit_errors(&s).is_empty(), "{:?}", unit_errors(&s));
    assert_eq!(table(&s, "inline_sites").rows(), n);
}

/// A DIE tree a million levels deep is walked without recursion.
#[test]
fn deeply_nested_dies() {
    let n = 1_000_000;
    let mut dies = std::iter::repeat_n(2u8, n).collect::<Vec<_>>();
    dies.extend(std::iter::repeat_n(0u8, n));
    let elf = one_unit(&[(2, 0x0b, true)], &dies); // DW_TAG_lexical_block
    let s = scan_path(&scratch("deep-blocks", &elf)).unwrap();
    assert!(unit_errors(&s).is_empty(), "{:?}", unit_errors(&s));
}

// ---- kernel pointer tables ----------------------------------------------------------------

/// A linked image whose `__mcount_loc` section sits at the very top of the address space:
/// the entries' addresses (`base + i * width`) must not overflow (wrapping since 6ee96a6).
#[test]
fn mcount_loc_section_at_top_of_address_space() {
    let elf = elf64(&[Sec::progbits("__mcount_loc", u64::MAX - 7, vec![0x11; 16])]);
    let s = scan_path(&scratch("mcount-top", &elf)).unwrap();
    assert_eq!(table(&s, "kernel_pointers").rows(), 2);
}

/// `__start_mcount_loc` / `__stop_mcount_loc` inside a section whose sh_addr + sh_size
/// passes 2^64: finding the section that holds them must not overflow (checked since 6ee96a6).
#[test]
fn mcount_bounds_in_section_past_top_of_address_space() {
    let top = u64::MAX - 0xf;
    let [sym, str_] = symtab(2, &[("__start_mcount_loc", top), ("__stop_mcount_loc", top + 8)]);
    let elf = elf64(&[Sec::progbits(".init.data", top, vec![0x22; 0x20]), sym, str_]);
    let _ = scan_path(&scratch("mcount-bounds-top", &elf));
}

/// The bounds symbols of a well-formed table are read (checks the hand-made ELF above).
#[test]
fn mcount_bounds_read() {
    let base = 0x40_0000;
    let mut data = Vec::new();
    for v in [0x1000u64, 0x2000, 0x3000] {
        data.extend_from_slice(&v.to_le_bytes());
    }
    let [sym, str_] = symtab(2, &[("__start_mcount_loc", base + 8), ("__stop_mcount_loc", base + 24)]);
    let elf = elf64(&[Sec::progbits(".init.data", base, data), sym, str_]);
    let s = scan_path(&scratch("mcount-bounds", &elf)).unwrap();
    let t = table(&s, "kernel_pointers");
    assert_eq!(u64_values(column(t, "at")), vec![base + 8, base + 16]);
    assert_eq!(u64_values(column(t, "value")), vec![0x2000, 0x3000]);
}

// ---- files that are not regular files -----------------------------------------------------

/// A stripped binary whose `.gnu_debuglink` file, beside it, is a FIFO. Opening a FIFO for
/// reading blocks until a writer comes, so the look-up must not open anything but regular
/// files. (An absolute debuglink or altlink name can point anywhere, /dev included.)
#[cfg(target_os = "linux")]
#[test]
fn debuglink_to_a_fifo() {
    // x86_64-split/corpus: no DWARF, `.gnu_debuglink` = "corpus.debug", looked for beside it.
    let bin = scratch("debuglink-fifo", &std::fs::read(fixture("x86_64-split/corpus")).unwrap());
    let fifo = bin.parent().unwrap().join("corpus.debug");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    let path = bin.to_path_buf();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let r = Binary::open(&path, None, &[]).and_then(|b| b.scan());
        let _ = tx.send(r.map(|_| ()).map_err(|e| e.0));
    });
    let outcome = rx.recv_timeout(std::time::Duration::from_secs(5));
    if outcome.is_err() {
        // Unblock the reader (a writer arrives, then leaves) so the thread can finish.
        drop(std::fs::OpenOptions::new().write(true).open(&fifo));
        let _ = rx.recv_timeout(std::time::Duration::from_secs(5));
    }
    let _ = std::fs::remove_file(&fifo);
    assert!(outcome.is_ok(), "scan still blocked after 5 s: it opened the FIFO found by .gnu_debuglink");
}

//! The DWARF layer: every unit scanned in parallel (rayon), each into its own columns and
//! string pool, then concatenated in unit order.
//!
//! DIEs are named by their global `.debug_info` offset; a DIE of a dwz supplementary file
//! has [`SUP_BIT`] set. [`NONE`] (all ones) means "no DIE".

mod files;
mod lines;
pub mod location;
pub mod scope;
mod types;
mod units;
mod walk;

use std::borrow::Cow;
use std::panic::{catch_unwind, AssertUnwindSafe};

use gimli::{AttributeValue, EndianSlice, RunTimeEndian, UnitOffset};
use rayon::prelude::*;

use crate::error::Result;
use crate::table::{Chunk, Strings, Table};
use files::FileTable;
pub use lines::lineflag;
pub use types::result;
pub use walk::spflag;

pub type Slice<'d> = EndianSlice<'d, RunTimeEndian>;
pub type Sections<'d> = gimli::DwarfSections<Cow<'d, [u8]>>;

pub const SUP_BIT: u64 = 1 << 63;
pub const NONE: u64 = u64::MAX;

/// What a unit's readers need to hand: the DWARF, the unit, and how to name its DIEs.
pub struct Ctx<'d, 'u> {
    pub dwarf: &'u gimli::Dwarf<Slice<'d>>,
    pub unit: &'u gimli::Unit<Slice<'d>>,
    pub comp_dir: Option<&'d [u8]>,
    tag: u64,
}

impl<'d> Ctx<'d, '_> {
    fn die(&self, off: UnitOffset) -> u64 {
        off.to_debug_info_offset(&self.unit.header).map_or(NONE, |o| o.0 as u64 | self.tag)
    }

    fn reference(&self, v: AttributeValue<Slice<'d>>) -> u64 {
        match v {
            AttributeValue::UnitRef(o) => self.die(o),
            AttributeValue::DebugInfoRef(o) => o.0 as u64 | self.tag,
            AttributeValue::DebugInfoRefSup(o) => o.0 as u64 | SUP_BIT,
            _ => NONE,
        }
    }

    fn string(&self, strings: &mut Strings<'d>, v: AttributeValue<Slice<'d>>) -> u32 {
        self.dwarf.attr_string(self.unit, v).map_or(0, |s| strings.intern_str(s.slice()))
    }

    fn file(&self, strings: &mut Strings<'d>, files: &mut FileTable, v: AttributeValue<Slice<'d>>) -> u32 {
        let index = match v {
            AttributeValue::FileIndex(i) => Some(i),
            other => other.udata_value(),
        };
        index.map_or(0, |i| files.id(self, strings, i))
    }
}

/// Loads the debug sections of `file` (decompressed, relocated if it is a relocatable object).
pub fn load_sections<'d>(file: &object::File<'d>) -> Result<Sections<'d>> {
    gimli::DwarfSections::load(|id| crate::elf::section_data(file, id.name()))
}

pub fn endian(file: &object::File) -> RunTimeEndian {
    use object::Object;
    if file.is_little_endian() {
        RunTimeEndian::Little
    } else {
        RunTimeEndian::Big
    }
}

pub fn borrow<'d>(s: &'d Sections<'_>, e: RunTimeEndian) -> gimli::Dwarf<Slice<'d>> {
    s.borrow(|c| EndianSlice::new(c.as_ref(), e))
}

/// What a run of consecutive units yielded: rayon folds units into one of these per split
/// and joins neighbours in order, so columns grow in a few large buffers (glibc grows those
/// with mremap, without copying) instead of thousands of small ones.
#[derive(Default)]
struct Acc<'d> {
    strings: Strings<'d>,
    facts: walk::Facts,
    lines: lines::Lines,
    /// Columns already closed by a join, followed by `facts` and `lines`.
    done: Vec<Vec<(&'static str, Table)>>,
    units: Vec<UnitRow<'d>>,
}

impl<'d> Acc<'d> {
    fn tables(&mut self) -> Vec<Vec<(&'static str, Table)>> {
        let mut all = std::mem::take(&mut self.done);
        let mut open = std::mem::take(&mut self.facts).into_tables();
        open.push(("lines", std::mem::take(&mut self.lines).into_table()));
        all.push(open);
        all
    }

    /// `self` followed by `next`, whose string indices are translated into ours.
    fn join(mut self, mut next: Acc<'d>) -> Acc<'d> {
        let map = self.strings.absorb(&next.strings);
        let mut theirs = next.tables();
        for tables in &mut theirs {
            for (_, t) in tables.iter_mut() {
                t.remap(&map);
            }
        }
        self.done = self.tables();
        self.done.extend(theirs);
        self.units.append(&mut next.units);
        self
    }
}

#[derive(Default)]
struct UnitRow<'d> {
    offset: u64,
    version: u16,
    kind: u8,
    address_size: u8,
    name: &'d [u8],
    comp_dir: &'d [u8],
    producer: &'d [u8],
    language: u16,
    line_program: Option<usize>,
    dies: u64,
    lines: u64,
    error: Option<String>,
}

/// The DWARF tables of one file, merged into `strings`.
pub struct Tables {
    pub tables: Vec<(&'static str, Table)>,
    pub units: usize,
    pub unit_errors: usize,
}

/// Scans every unit of `dwarf`. `tag` is OR-ed into every DIE offset ([`SUP_BIT`] for a
/// supplementary file scanned in its own right).
///
/// Units are numbered from `first_unit` on (the `lines.unit` column), so that a
/// supplementary file's units follow the main file's.
pub fn scan<'d>(dwarf: &gimli::Dwarf<Slice<'d>>, tag: u64, first_unit: u32, strings: &mut Strings<'d>) -> Tables {
    let mut headers = Vec::new();
    let mut trailing_error = None;
    let mut iter = dwarf.units();
    loop {
        match iter.next() {
            Ok(Some(h)) => headers.push(h),
            Ok(None) => break,
            Err(e) => {
                // A broken unit header hides the rest of the section: stop there, keep the rest.
                trailing_error = Some(format!("unit header after {} units: {e}", headers.len()));
                break;
            }
        }
    }
    let acc = headers
        .into_par_iter()
        .enumerate()
        .fold(Acc::default, |mut acc, (i, h)| {
            scan_unit_guarded(&mut acc, dwarf, h, first_unit + i as u32, tag);
            acc
        })
        .reduce(Acc::default, Acc::join);
    finish(acc, trailing_error, strings)
}

/// A unit's global name: its `.debug_info` offset, tagged for a supplementary file.
fn unit_offset(header: &gimli::UnitHeader<Slice<'_>>, tag: u64) -> u64 {
    header.debug_info_offset().map_or(0, |o| o.0 as u64) | tag
}

fn scan_unit_guarded<'d>(
    acc: &mut Acc<'d>,
    dwarf: &gimli::Dwarf<Slice<'d>>,
    header: gimli::UnitHeader<Slice<'d>>,
    index: u32,
    tag: u64,
) {
    let offset = unit_offset(&header, tag);
    let before = acc.units.len();
    if let Err(p) = catch_unwind(AssertUnwindSafe(|| scan_unit(acc, dwarf, header, index, tag))) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        acc.units.truncate(before);
        acc.units.push(UnitRow {
            offset,
            error: Some(format!("unit at {:#x}: internal error: {msg}", offset & !SUP_BIT)),
            ..Default::default()
        });
    }
}

fn scan_unit<'d>(
    acc: &mut Acc<'d>,
    dwarf: &gimli::Dwarf<Slice<'d>>,
    header: gimli::UnitHeader<Slice<'d>>,
    index: u32,
    tag: u64,
) {
    let mut row = UnitRow {
        offset: unit_offset(&header, tag),
        version: header.version(),
        kind: unit_kind(&header.type_()),
        address_size: header.address_size(),
        ..Default::default()
    };
    let unit = match dwarf.unit(header) {
        Ok(u) => u,
        Err(e) => {
            row.error = Some(format!("unit at {:#x}: {e}", row.offset & !SUP_BIT));
            acc.units.push(row);
            return;
        }
    };
    row.name = unit.name.map_or(&[][..], |s| s.slice());
    row.comp_dir = unit.comp_dir.map_or(&[][..], |s| s.slice());
    let (producer, language) = root_facts(dwarf, &unit);
    row.producer = producer;
    row.language = language;
    row.line_program = unit.line_program.as_ref().map(|p| p.header().offset().0);
    let cx = Ctx { dwarf, unit: &unit, comp_dir: unit.comp_dir.map(|s| s.slice()), tag };
    let mut files = FileTable::new();
    let dies_before = acc.facts.dies;
    let dies = walk::walk(&cx, &mut acc.strings, &mut files, &mut acc.facts);
    row.dies = acc.facts.dies - dies_before;
    let lines_before = acc.lines.len();
    let lines = lines::read(&cx, index, &mut acc.strings, &mut files, &mut acc.lines);
    row.lines = (acc.lines.len() - lines_before) as u64;
    row.error = [dies.err().map(|e| format!("DIEs: {e}")), lines.err().map(|e| format!("line program: {e}"))]
        .into_iter()
        .flatten()
        .reduce(|a, b| format!("{a}; {b}"))
        .map(|e| format!("unit at {:#x}: {e}", row.offset & !SUP_BIT));
    acc.units.push(row);
}

fn root_facts<'d>(dwarf: &gimli::Dwarf<Slice<'d>>, unit: &gimli::Unit<Slice<'d>>) -> (&'d [u8], u16) {
    let mut entries = unit.entries();
    let Ok(Some(root)) = entries.next_dfs().map(|o| o.cloned()) else { return (&[], 0) };
    let producer = root
        .attr_value(gimli::DW_AT_producer)
        .and_then(|v| dwarf.attr_string(unit, v).ok())
        .map_or(&[][..], |s| s.slice());
    let language = match root.attr_value(gimli::DW_AT_language) {
        Some(AttributeValue::Language(l)) => l.0,
        _ => 0,
    };
    (producer, language)
}

fn unit_kind(t: &gimli::UnitType<usize>) -> u8 {
    match t {
        gimli::UnitType::Compilation => 1,
        gimli::UnitType::Partial => 2,
        gimli::UnitType::Type { .. } => 3,
        gimli::UnitType::Skeleton(_) => 4,
        gimli::UnitType::SplitCompilation(_) => 5,
        gimli::UnitType::SplitType { .. } => 6,
    }
}

fn schema() -> Vec<(&'static str, Table)> {
    let mut tables = walk::Facts::default().into_tables();
    tables.push(("lines", lines::Lines::default().into_table()));
    tables
}

fn finish<'d>(mut acc: Acc<'d>, trailing_error: Option<String>, strings: &mut Strings<'d>) -> Tables {
    let map = strings.absorb(&acc.strings);
    let mut tables = schema();
    for part in acc.tables() {
        for ((_, mine), (_, mut theirs)) in tables.iter_mut().zip(part) {
            theirs.remap(&map);
            mine.append(theirs);
        }
    }
    let units = acc.units.len();
    if let Some(e) = trailing_error {
        acc.units.push(UnitRow { error: Some(e), ..Default::default() });
    }
    drop_shared_line_programs(&mut tables, &mut acc.units);
    let mut u = UnitColumns::default();
    for row in acc.units {
        u.push(row, strings);
    }
    let unit_errors = u.error.iter().filter(|&&e| e != 0).count();
    tables.push(("units", u.finish()));
    Tables { tables, units, unit_errors }
}

/// dwz's partial units share their compile unit's line program: keep its rows once.
fn drop_shared_line_programs(tables: &mut [(&'static str, Table)], units: &mut [UnitRow]) {
    let mut seen = rustc_hash::FxHashSet::default();
    let mut drop = Vec::new();
    let mut at = 0usize;
    for u in units.iter_mut() {
        let n = u.lines as usize;
        if n > 0 && u.line_program.is_some_and(|o| !seen.insert(o)) {
            drop.push(at..at + n);
            u.lines = 0;
        }
        at += n;
    }
    if let Some((_, lines)) = tables.iter_mut().find(|(name, _)| *name == "lines") {
        lines.drop_rows(&drop);
    }
}

#[derive(Default)]
struct UnitColumns {
    offset: Vec<u64>,
    version: Vec<u16>,
    kind: Vec<u8>,
    address_size: Vec<u8>,
    name: Vec<u32>,
    comp_dir: Vec<u32>,
    producer: Vec<u32>,
    language: Vec<u16>,
    dies: Vec<u64>,
    lines: Vec<u64>,
    error: Vec<u32>,
}

impl UnitColumns {
    fn push<'d>(&mut self, r: UnitRow<'d>, strings: &mut Strings<'d>) {
        self.offset.push(r.offset);
        self.version.push(r.version);
        self.kind.push(r.kind);
        self.address_size.push(r.address_size);
        self.name.push(strings.intern_str(r.name));
        self.comp_dir.push(strings.intern_str(r.comp_dir));
        self.producer.push(strings.intern_str(r.producer));
        self.language.push(r.language);
        self.dies.push(r.dies);
        self.lines.push(r.lines);
        self.error.push(r.error.map_or(0, |e| strings.intern_owned(e.into_bytes())));
    }

    fn finish(self) -> Table {
        Table::new(vec![
            ("offset", Chunk::U64(self.offset)),
            ("version", Chunk::U16(self.version)),
            ("kind", Chunk::U8(self.kind)),
            ("address_size", Chunk::U8(self.address_size)),
            ("name", Chunk::Str(self.name)),
            ("comp_dir", Chunk::Str(self.comp_dir)),
            ("producer", Chunk::Str(self.producer)),
            ("language", Chunk::U16(self.language)),
            ("dies", Chunk::U64(self.dies)),
            ("lines", Chunk::U64(self.lines)),
            ("error", Chunk::Str(self.error)),
        ])
    }
}

/// The empty tables, for a file without DWARF: same schema, no rows.
pub fn empty(strings: &mut Strings<'_>) -> Tables {
    finish(Acc::default(), None, strings)
}

/// What each function of `functions` (subprogram DIEs, concrete or abstract) returns: table
/// `results`, in the order given, with `class` (as the calling conventions place it:
/// [`result`]) and `type` (spelt as `stap -L` spells it, `void` for none).
pub fn result_classes<'d>(dwarf: &gimli::Dwarf<Slice<'d>>, functions: &[u64], strings: &mut Strings<'d>) -> Table {
    let units = units::Units::new(dwarf);
    let (mut classes, mut names) = (Vec::with_capacity(functions.len()), Vec::with_capacity(functions.len()));
    for &die in functions {
        let (class, name) = types::result_of(&units, die);
        classes.push(class);
        names.push(strings.intern_owned(name.into_bytes()));
    }
    Table::new(vec![("class", Chunk::U8(classes)), ("type", Chunk::Str(names))])
}

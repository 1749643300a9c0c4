//! One binary, opened once: the file, its separate debug file and its dwz supplementary
//! file, each found once (and how it was found remembered), then asked any question.
//!
//! Finding the files reads and checksums candidates; it happens in [`Binary::open`] and
//! never again. Each query parses the mapped files anew, which costs only their headers.

use std::path::{Path, PathBuf};

use object::Object;
use rayon::prelude::*;

use crate::code::{self, fingerprint, pointers, Opened};
use crate::dwarf;
use crate::elf::{self, Mapped};
use crate::error::{Error, Result};
use crate::table::{Scan, Strings};

/// A file found on the way to the DWARF, and how.
pub struct Found {
    pub map: Mapped,
    /// `given`, `build-id under ROOT`, `debuglink beside the binary`, `altlink path`…
    pub how: String,
}

impl Found {
    fn build_id(&self) -> Option<String> {
        elf::identity(&self.map.parse().ok()?).build_id.map(elf::hex)
    }
}

/// The path of a file found, or "" when there is none (as the `info` and `identify` columns say).
fn path_of(found: &Option<Found>) -> String {
    found.as_ref().map(|f| f.map.path.display().to_string()).unwrap_or_default()
}

pub struct Binary {
    pub path: PathBuf,
    file: Mapped,
    /// The separate debug file: named by the caller, or found when the file has no DWARF.
    pub debug: Option<Found>,
    /// The dwz supplementary file that the DWARF's `.gnu_debugaltlink` names.
    pub sup: Option<Found>,
}

impl Binary {
    /// Opens `path` and finds its debug file (unless `debug_file` names it) and its
    /// supplementary file, looking under `debug_roots` (`/usr/lib/debug`, say).
    pub fn open(path: &Path, debug_file: Option<&Path>, debug_roots: &[PathBuf]) -> Result<Binary> {
        let file = Mapped::open(path)?;
        let obj = file.parse()?;
        let debug = find_debug_file(path, &obj, debug_file, debug_roots)?;
        let debug_obj = debug.as_ref().map(|d| d.map.parse()).transpose()?;
        let dwarf_obj = debug_obj.as_ref().unwrap_or(&obj);
        let sup = elf::identity(dwarf_obj).altlink.and_then(|(name, build_id)| {
            let dwarf_path = debug.as_ref().map_or(path, |d| &d.map.path);
            find_sup(dwarf_path, &String::from_utf8_lossy(name), &elf::hex(build_id), debug_roots)
        });
        Ok(Binary { path: path.to_path_buf(), file, debug, sup })
    }

    pub fn build_id(&self) -> Result<Option<String>> {
        Ok(elf::identity(&self.file.parse()?).build_id.map(elf::hex))
    }

    pub fn debug_build_id(&self) -> Option<String> {
        self.debug.as_ref()?.build_id()
    }

    pub fn sup_build_id(&self) -> Option<String> {
        self.sup.as_ref()?.build_id()
    }

    /// What the cache key of a scan needs: `build_id`, `debug_file`, `debug_build_id`,
    /// `sup_file`, `sup_build_id` (a scan reads the supplementary file's units too).
    pub fn identify(&self) -> Result<Vec<(&'static str, String)>> {
        Ok(vec![
            ("build_id", self.build_id()?.unwrap_or_default()),
            ("debug_file", path_of(&self.debug)),
            ("debug_build_id", self.debug_build_id().unwrap_or_default()),
            ("sup_file", path_of(&self.sup)),
            ("sup_build_id", self.sup_build_id().unwrap_or_default()),
        ])
    }

    /// The CRC-32 of the file, its debug file and its supplementary file, hashed in parallel
    /// (hex, joined by `-`): an edit in place that keeps size and mtime changes it, a `touch`
    /// does not.
    pub fn content(&self) -> String {
        let maps: Vec<&Mapped> = self.maps().collect();
        let crcs: Vec<u32> = maps.par_iter().map(|m| m.crc32()).collect();
        crcs.iter().map(|c| format!("{c:08x}")).collect::<Vec<_>>().join("-")
    }

    /// The file, then its debug file and its supplementary file where there are any.
    fn maps(&self) -> impl Iterator<Item = &Mapped> {
        std::iter::once(&self.file).chain([&self.debug, &self.sup].into_iter().flatten().map(|f| &f.map))
    }

    /// Sections, symbols, kernel tables and every DWARF table of the binary.
    pub fn scan(&self) -> Result<Scan> {
        let scan = self.scan_tables();
        self.maps().for_each(Mapped::release_pages);
        scan
    }

    fn scan_tables(&self) -> Result<Scan> {
        let clock = Clock::new();
        let bin_obj = self.file.parse()?;
        let id = elf::identity(&bin_obj);
        let mut info: Vec<(&'static str, String)> = vec![
            ("path", self.path.display().to_string()),
            ("arch", elf::arch_name(&bin_obj).into()),
            ("class", if bin_obj.is_64() { "elf64" } else { "elf32" }.into()),
            ("endian", if bin_obj.is_little_endian() { "little" } else { "big" }.into()),
            ("kind", elf::kind_name(&bin_obj).into()),
            ("entry", format!("{:#x}", bin_obj.entry())),
            ("build_id", id.build_id.map(elf::hex).unwrap_or_default()),
            ("debuglink", id.debuglink.map(|(n, _)| String::from_utf8_lossy(n).into_owned()).unwrap_or_default()),
        ];
        let debug_obj = self.debug.as_ref().map(|d| d.map.parse()).transpose()?;
        let dwarf_obj = debug_obj.as_ref().unwrap_or(&bin_obj);
        info.push(("debug_file", path_of(&self.debug)));
        let altlink = elf::identity(dwarf_obj).altlink;
        info.push((
            "altlink",
            altlink.map(|(n, b)| format!("{} {}", String::from_utf8_lossy(n), elf::hex(b))).unwrap_or_default(),
        ));
        info.push(("sup_file", path_of(&self.sup)));
        let has_dwarf = elf::has_dwarf(dwarf_obj);
        info.push((
            "dwarf",
            match (has_dwarf, self.debug.is_some()) {
                (false, _) => "none",
                (true, false) => "embedded",
                (true, true) => "separate",
            }
            .into(),
        ));

        let loaded = self.dwarf_sections()?;
        let mut strings = Strings::default();
        let mut tables = vec![("sections", elf::sections_table(&bin_obj, &mut strings))];
        let (symbols, origin) = elf::symbols_table(&bin_obj, debug_obj.as_ref(), &mut strings);
        tables.push(("symbols", symbols));
        tables.push(("kernel_pointers", crate::kernel::pointer_tables(&bin_obj, &mut strings)));
        tables.push(("kernel_sites", crate::kernel::site_tables(&bin_obj, &mut strings)));
        info.extend(crate::kernel::identity(&bin_obj));
        info.push(("symbols_from", origin.into()));
        clock.lap("open, sections, symbols");

        let mut found = match loaded.main() {
            Some(d) => dwarf::scan(&d, 0, 0, &mut strings),
            None => dwarf::empty(&mut strings),
        };
        clock.lap("DWARF units");
        if let Some(s) = loaded.sup() {
            // The supplementary file's own units (dwz partial units): the abstract DIEs that
            // the main file's references with DW_FORM_GNU_ref_alt point to.
            let sup_found = dwarf::scan(&s, dwarf::SUP_BIT, found.units as u32, &mut strings);
            found.units += sup_found.units;
            found.unit_errors += sup_found.unit_errors;
            for ((_, mine), (_, theirs)) in found.tables.iter_mut().zip(sup_found.tables) {
                mine.append(theirs);
            }
        }
        tables.extend(found.tables);
        let (units, unit_errors) = (found.units, found.unit_errors);
        info.push(("units", units.to_string()));
        info.push(("unit_errors", unit_errors.to_string()));
        let (string_offsets, string_data) = strings.to_arrow();
        clock.lap("string pool");
        Ok(Scan { info, tables, string_offsets, string_data })
    }

    /// The variables of `scopes` (DIEs of concrete functions and inline sites) and where they
    /// live: tables `variables` and `blocks` (see [`dwarf::scope`]).
    pub fn variables(&self, scopes: &[u64]) -> Result<Scan> {
        let clock = Clock::new();
        let loaded = self.dwarf_sections()?;
        clock.lap("open");
        let mut strings = Strings::default();
        let main = loaded.main();
        let answer =
            dwarf::scope::scope_variables(main.as_ref().unwrap_or(&gimli::Dwarf::default()), scopes, &mut strings);
        clock.lap("scope variables");
        let has_dwarf = main.is_some();
        let (string_offsets, string_data) = strings.to_arrow();
        let info = vec![
            ("path", self.path.display().to_string()),
            ("dwarf", if has_dwarf { "yes" } else { "none" }.to_string()),
            ("scopes", answer.requested.to_string()),
            ("found", answer.found.to_string()),
            ("errors", answer.errors.join("\n")),
        ];
        Ok(Scan { info, tables: answer.tables, string_offsets, string_data })
    }

    /// What each function of `functions` (subprogram DIEs) returns: table `results` (see
    /// [`dwarf::result_classes`]).
    pub fn result_classes(&self, functions: &[u64]) -> Result<Scan> {
        let loaded = self.dwarf_sections()?;
        let main = loaded.main();
        let mut strings = Strings::default();
        let table = dwarf::result_classes(main.as_ref().unwrap_or(&gimli::Dwarf::default()), functions, &mut strings);
        let (string_offsets, string_data) = strings.to_arrow();
        let info = vec![("path", self.path.display().to_string())];
        Ok(Scan { info, tables: vec![("results", table)], string_offsets, string_data })
    }

    /// `code_ranges` and `code_events` of function ranges (see [`code::facts`]).
    pub fn code_facts(&self, ids: &[u64], lows: &[u64], highs: &[u64]) -> Result<Scan> {
        code::facts(&self.opened()?, ids, lows, highs)
    }

    /// The `insns` table of `[low, high)` (see [`code::instructions`]).
    pub fn instructions(&self, low: u64, high: u64) -> Result<Scan> {
        code::instructions(&self.opened()?, low, high)
    }

    /// The `insns` table of many ranges, with their index in `range` (see [`code::instructions_of`]).
    pub fn instructions_of(&self, lows: &[u64], highs: &[u64]) -> Result<Scan> {
        code::instructions_of(&self.opened()?, lows, highs)
    }

    /// The `probe_sites` table (see [`code::probe_sites`]).
    pub fn probe_sites(&self, starts: &[u64], addresses: &[u64]) -> Result<Scan> {
        code::probe_sites(&self.opened()?, starts, addresses)
    }

    /// The `liveness` table (see [`code::liveness::liveness`]).
    pub fn liveness(
        &self,
        ranges: [&[u64]; 3],
        returns: &[u64],
        ids: &[u64],
        addresses: &[u64],
        regs: &[u64],
    ) -> Result<Scan> {
        let [fids, lows, highs] = ranges;
        code::liveness::liveness(&self.opened()?, fids, lows, highs, returns, ids, addresses, regs)
    }

    /// The `code_fingerprints` table (see [`fingerprint::fingerprints`]).
    pub fn fingerprints(&self, ids: &[u64], lows: &[u64], highs: &[u64]) -> Result<Scan> {
        fingerprint::fingerprints(&self.opened()?, ids, lows, highs)
    }

    /// The `normal_form` table of `[low, high)` (see [`fingerprint::normal_form`]).
    pub fn normal_form(&self, low: u64, high: u64, entry: bool) -> Result<Scan> {
        fingerprint::normal_form(&self.opened()?, low, high, entry)
    }

    /// The `plt_names` table: PLT stubs and GOT slots by name (see [`fingerprint::plt_names`]).
    pub fn plt_names(&self) -> Result<Scan> {
        fingerprint::plt_names(&self.opened()?)
    }

    /// The `function_pointers` table: function addresses stored in data (see
    /// [`pointers::function_pointers`]).
    pub fn function_pointers(&self) -> Result<Scan> {
        pointers::function_pointers(&self.opened()?)
    }

    /// The file parsed for decoding, with its debug file's symbols when it has none.
    fn opened(&self) -> Result<Opened<'_>> {
        let file = self.file.parse()?;
        let debug = match &self.debug {
            Some(d) if file.symbols().next().is_none() => Some(d.map.parse()?),
            _ => None,
        };
        Ok(Opened { path: &self.path, file, debug })
    }

    /// The DWARF's sections (of the file or its debug file) and the supplementary file's,
    /// loaded: decompressed and, in a relocatable object, relocated.
    fn dwarf_sections(&self) -> Result<DwarfSections<'_>> {
        let bin_obj = self.file.parse()?;
        let debug_obj = self.debug.as_ref().map(|d| d.map.parse()).transpose()?;
        let dwarf_obj = debug_obj.as_ref().unwrap_or(&bin_obj);
        let sup_obj = self.sup.as_ref().map(|s| s.map.parse()).transpose()?;
        Ok(DwarfSections {
            main: if elf::has_dwarf(dwarf_obj) { Some(dwarf::load_sections(dwarf_obj)?) } else { None },
            sup: sup_obj.as_ref().map(dwarf::load_sections).transpose()?,
            endian: dwarf::endian(dwarf_obj),
        })
    }
}

struct DwarfSections<'d> {
    main: Option<dwarf::Sections<'d>>,
    sup: Option<dwarf::Sections<'d>>,
    endian: gimli::RunTimeEndian,
}

impl DwarfSections<'_> {
    /// The binary's DWARF, its references into the supplementary file resolvable.
    fn main(&self) -> Option<gimli::Dwarf<dwarf::Slice<'_>>> {
        let mut d = dwarf::borrow(self.main.as_ref()?, self.endian);
        if let Some(s) = &self.sup {
            d.set_sup(dwarf::borrow(s, self.endian));
        }
        Some(d)
    }

    /// The supplementary file's own DWARF.
    fn sup(&self) -> Option<gimli::Dwarf<dwarf::Slice<'_>>> {
        Some(dwarf::borrow(self.sup.as_ref()?, self.endian))
    }
}

/// The separate debug file, when the binary has no DWARF of its own (or one was named).
fn find_debug_file(path: &Path, bin: &object::File, given: Option<&Path>, roots: &[PathBuf]) -> Result<Option<Found>> {
    let id = elf::identity(bin);
    if let Some(p) = given {
        let m = Mapped::open(p)?;
        if !elf::has_dwarf(&m.parse()?) {
            return Err(Error::new(format!("{}: no DWARF debug info in this debug file", p.display())));
        }
        if !elf::debug_file_matches(&m, &id) && (id.build_id.is_some() || id.debuglink.is_some()) {
            return Err(Error::new(format!(
                "{}: debug file does not belong to {} (build-id or debuglink CRC differs)",
                p.display(),
                path.display()
            )));
        }
        return Ok(Some(Found { map: m, how: "given".into() }));
    }
    if elf::has_dwarf(bin) {
        return Ok(None);
    }
    Ok(elf::debug_file_candidates(path, &id, roots).into_iter().find_map(|(cand, how)| {
        let m = Mapped::open(&cand).ok()?;
        elf::debug_file_matches(&m, &id).then_some(Found { map: m, how })
    }))
}

/// The dwz supplementary file: the altlink path as written (absolute, or relative to the
/// file holding the DWARF), or by its build-id under the debug roots.
fn find_sup(dwarf_path: &Path, name: &str, build_id: &str, roots: &[PathBuf]) -> Option<Found> {
    let dir = dwarf_path.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![(dir.join(name), "altlink path".to_string())];
    if build_id.len() > 2 {
        for root in roots {
            let p = root.join(".build-id").join(&build_id[..2]).join(format!("{}.debug", &build_id[2..]));
            candidates.push((p, format!("build-id under {}", root.display())));
        }
    }
    candidates.into_iter().find_map(|(p, how)| {
        let found = Found { map: Mapped::open(&p).ok()?, how };
        (found.build_id().as_deref() == Some(build_id)).then_some(found)
    })
}

/// Phase timings on stderr when `PATCHSCOPE_TIMING` is set: for profiling, not for tests.
struct Clock(Option<std::cell::Cell<std::time::Instant>>);

impl Clock {
    fn new() -> Self {
        Clock(std::env::var_os("PATCHSCOPE_TIMING").map(|_| std::cell::Cell::new(std::time::Instant::now())))
    }

    fn lap(&self, what: &str) {
        if let Some(t) = &self.0 {
            eprintln!("core: {what}: {:.3} s", t.get().elapsed().as_secs_f64());
            t.set(std::time::Instant::now());
        }
    }
}

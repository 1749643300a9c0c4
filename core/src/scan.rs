//! One binary, read whole: its identity, sections, symbols and DWARF (wherever it lives).

use std::path::{Path, PathBuf};

use object::Object;

use crate::dwarf;
use crate::elf::{self, Mapped};
use crate::error::{Error, Result};
use crate::table::{Strings, Table};

pub struct Options {
    pub path: PathBuf,
    pub debug_file: Option<PathBuf>,
    pub debug_roots: Vec<PathBuf>,
}

/// The result of a scan, owning all its data.
pub struct Scan {
    pub info: Vec<(&'static str, String)>,
    pub tables: Vec<(&'static str, Table)>,
    /// The string pool in Arrow's large-string layout.
    pub string_offsets: Vec<i64>,
    pub string_data: Vec<u8>,
}

pub fn scan(opts: &Options) -> Result<Scan> {
    let clock = Clock::new();
    let bin = Mapped::open(&opts.path)?;
    let bin_obj = bin.parse()?;
    let id = elf::identity(&bin_obj);
    let mut info: Vec<(&'static str, String)> = vec![
        ("path", opts.path.display().to_string()),
        ("arch", elf::arch_name(&bin_obj).into()),
        ("class", if bin_obj.is_64() { "elf64" } else { "elf32" }.into()),
        ("endian", if bin_obj.is_little_endian() { "little" } else { "big" }.into()),
        ("kind", elf::kind_name(&bin_obj).into()),
        ("entry", format!("{:#x}", bin_obj.entry())),
        ("build_id", id.build_id.map(elf::hex).unwrap_or_default()),
        ("debuglink", id.debuglink.map(|(n, _)| String::from_utf8_lossy(n).into_owned()).unwrap_or_default()),
    ];

    let debug = find_debug_file(opts, &bin_obj, &id)?;
    let debug_obj = debug.as_ref().map(|m| m.parse()).transpose()?;
    let dwarf_obj = debug_obj.as_ref().unwrap_or(&bin_obj);
    info.push(("debug_file", debug.as_ref().map(|m| m.path.display().to_string()).unwrap_or_default()));

    let dwarf_id = elf::identity(dwarf_obj);
    let altlink = dwarf_id.altlink.map(|(name, bid)| (String::from_utf8_lossy(name).into_owned(), elf::hex(bid)));
    let sup = match &altlink {
        Some((name, bid)) => find_sup(dwarf_obj_path(opts, debug.as_ref()), name, bid, &opts.debug_roots),
        None => None,
    };
    let sup_obj = sup.as_ref().map(|m| m.parse()).transpose()?;
    info.push(("altlink", altlink.as_ref().map(|(n, b)| format!("{n} {b}")).unwrap_or_default()));
    info.push(("sup_file", sup.as_ref().map(|m| m.path.display().to_string()).unwrap_or_default()));

    let has_dwarf = elf::has_dwarf(dwarf_obj);
    info.push((
        "dwarf",
        match (has_dwarf, debug.is_some()) {
            (false, _) => "none",
            (true, false) => "embedded",
            (true, true) => "separate",
        }
        .into(),
    ));

    let sections = if has_dwarf { Some(dwarf::load_sections(dwarf_obj)?) } else { None };
    let sup_sections = sup_obj.as_ref().map(dwarf::load_sections).transpose()?;

    let mut strings = Strings::default();
    let mut tables = vec![("sections", elf::sections_table(&bin_obj, &mut strings))];
    let (symbols, origin) = elf::symbols_table(&bin_obj, debug_obj.as_ref(), &mut strings);
    tables.push(("symbols", symbols));
    tables.push(("kernel_pointers", crate::kernel::pointer_tables(&bin_obj, &mut strings)));
    tables.push(("kernel_sites", crate::kernel::site_tables(&bin_obj, &mut strings)));
    info.extend(crate::kernel::identity(&bin_obj));
    info.push(("symbols_from", origin.into()));

    clock.lap("open, sections, symbols");
    let endian = dwarf::endian(dwarf_obj);
    let mut found = match &sections {
        Some(s) => {
            let mut d = dwarf::borrow(s, endian);
            if let Some(ss) = &sup_sections {
                d.set_sup(dwarf::borrow(ss, endian));
            }
            dwarf::scan(&d, 0, 0, &mut strings)
        }
        None => dwarf::empty(&mut strings),
    };
    clock.lap("DWARF units");
    if let Some(ss) = &sup_sections {
        // The supplementary file's own units (dwz partial units): the abstract DIEs that
        // the main file's references with DW_FORM_GNU_ref_alt point to.
        let sup_found = dwarf::scan(&dwarf::borrow(ss, endian), dwarf::SUP_BIT, found.units as u32, &mut strings);
        found.units += sup_found.units;
        found.unit_errors += sup_found.unit_errors;
        for ((_, mine), (_, theirs)) in found.tables.iter_mut().zip(sup_found.tables) {
            mine.append(theirs);
        }
    }
    info.push(("units", found.units.to_string()));
    info.push(("unit_errors", found.unit_errors.to_string()));
    tables.extend(found.tables);

    let (string_offsets, string_data) = strings.to_arrow();
    clock.lap("string pool");
    Ok(Scan { info, tables, string_offsets, string_data })
}

/// Opens the DWARF of a binary where [`scan`] finds it (in the file or its separate debug
/// file, with its dwz supplementary file) and hands it to `f`; `None` when there is none.
pub fn with_dwarf<T>(opts: &Options, f: impl FnOnce(Option<&gimli::Dwarf<dwarf::Slice<'_>>>) -> T) -> Result<T> {
    let bin = Mapped::open(&opts.path)?;
    let bin_obj = bin.parse()?;
    let id = elf::identity(&bin_obj);
    let debug = find_debug_file(opts, &bin_obj, &id)?;
    let debug_obj = debug.as_ref().map(|m| m.parse()).transpose()?;
    let dwarf_obj = debug_obj.as_ref().unwrap_or(&bin_obj);
    if !elf::has_dwarf(dwarf_obj) {
        return Ok(f(None));
    }
    let sup = elf::identity(dwarf_obj).altlink.and_then(|(name, bid)| {
        find_sup(
            dwarf_obj_path(opts, debug.as_ref()),
            &String::from_utf8_lossy(name),
            &elf::hex(bid),
            &opts.debug_roots,
        )
    });
    let sup_obj = sup.as_ref().map(|m| m.parse()).transpose()?;
    let sections = dwarf::load_sections(dwarf_obj)?;
    let sup_sections = sup_obj.as_ref().map(dwarf::load_sections).transpose()?;
    let endian = dwarf::endian(dwarf_obj);
    let mut d = dwarf::borrow(&sections, endian);
    if let Some(ss) = &sup_sections {
        d.set_sup(dwarf::borrow(ss, endian));
    }
    Ok(f(Some(&d)))
}

/// The variables of `scopes` (DIEs of concrete functions and inline sites) and where they
/// live: tables `variables` and `blocks` (see [`dwarf::scope`]).
pub fn variables(opts: &Options, scopes: &[u64]) -> Result<Scan> {
    let clock = Clock::new();
    with_dwarf(opts, |dwarf| {
        clock.lap("open");
        let mut strings = Strings::default();
        let answer = match dwarf {
            Some(d) => dwarf::scope::scope_variables(d, scopes, &mut strings),
            None => dwarf::scope::scope_variables(&gimli::Dwarf::default(), scopes, &mut strings),
        };
        clock.lap("scope variables");
        let (string_offsets, string_data) = strings.to_arrow();
        let info = vec![
            ("path", opts.path.display().to_string()),
            ("dwarf", if dwarf.is_some() { "yes" } else { "none" }.to_string()),
            ("scopes", answer.requested.to_string()),
            ("found", answer.found.to_string()),
            ("errors", answer.errors.join("\n")),
        ];
        Scan { info, tables: answer.tables, string_offsets, string_data }
    })
}

/// Which files a scan would read, without reading their DWARF: the cache key.
pub fn identify(opts: &Options) -> Result<Vec<(&'static str, String)>> {
    let bin = Mapped::open(&opts.path)?;
    let bin_obj = bin.parse()?;
    let id = elf::identity(&bin_obj);
    let debug = find_debug_file(opts, &bin_obj, &id)?;
    let debug_id = match &debug {
        Some(m) => m.parse().ok().and_then(|f| elf::identity(&f).build_id.map(elf::hex)),
        None => None,
    };
    Ok(vec![
        ("build_id", id.build_id.map(elf::hex).unwrap_or_default()),
        ("debug_file", debug.as_ref().map(|m| m.path.display().to_string()).unwrap_or_default()),
        ("debug_build_id", debug_id.unwrap_or_default()),
    ])
}

fn dwarf_obj_path<'a>(opts: &'a Options, debug: Option<&'a Mapped>) -> &'a Path {
    debug.map_or(&opts.path, |m| &m.path)
}

/// The separate debug file, when the binary has no DWARF of its own (or one was named).
fn find_debug_file(opts: &Options, bin: &object::File, id: &elf::Identity) -> Result<Option<Mapped>> {
    if let Some(p) = &opts.debug_file {
        let m = Mapped::open(p)?;
        let obj = m.parse()?;
        if !elf::has_dwarf(&obj) {
            return Err(Error::new(format!("{}: no DWARF debug info in this debug file", p.display())));
        }
        if !elf::debug_file_matches(&m, id) && (id.build_id.is_some() || id.debuglink.is_some()) {
            return Err(Error::new(format!(
                "{}: debug file does not belong to {} (build-id or debuglink CRC differs)",
                p.display(),
                opts.path.display()
            )));
        }
        drop(obj);
        return Ok(Some(m));
    }
    if elf::has_dwarf(bin) {
        return Ok(None);
    }
    for cand in elf::debug_file_candidates(&opts.path, id, &opts.debug_roots) {
        if let Ok(m) = Mapped::open(&cand) {
            if elf::debug_file_matches(&m, id) {
                return Ok(Some(m));
            }
        }
    }
    Ok(None)
}

/// The dwz supplementary file: the altlink path as written (absolute, or relative to the
/// debug file), or by its build-id under the debug roots.
fn find_sup(dwarf_path: &Path, name: &str, build_id: &str, roots: &[PathBuf]) -> Option<Mapped> {
    let dir = dwarf_path.parent().unwrap_or(Path::new("."));
    let mut candidates = vec![dir.join(name)];
    if build_id.len() > 2 {
        for root in roots {
            candidates.push(root.join(".build-id").join(&build_id[..2]).join(format!("{}.debug", &build_id[2..])));
        }
    }
    candidates.into_iter().find_map(|p| {
        let m = Mapped::open(&p).ok()?;
        let matches =
            m.parse().ok().and_then(|f| elf::identity(&f).build_id.map(elf::hex)).is_some_and(|b| b == build_id);
        matches.then_some(m)
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

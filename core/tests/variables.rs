//! `Binary::variables` (`dwarf::scope`) on the fixtures.
//!
//! Two readers of the same location lists must agree: the scan's `params` table says where
//! each parameter is at its owner's entry (`walk::location_at`), and the variables query
//! says where it is address range by range (`scope::location_list`). Every offset of
//! `.debug_info` asked as a scope finds exactly the DIEs that are functions or inline sites.
//! Broken files and scrambled DWARF give an error or rows, never a panic.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};

use object::{Object, ObjectSection};
use patchscope_core::binary::Binary;
use patchscope_core::dwarf::location::{flag, kind};
use patchscope_core::error::Result;
use patchscope_core::table::{Chunk, Scan, Table};

const LINKED: [&str; 8] =
    ["x86_64", "x86_64-O3", "x86_64-dwarf4", "aarch64", "aarch64-outline", "aarch64-partition", "ppc64le", "riscv64"];
const HAS_CODE: u64 = 16;
const NONE: u64 = u64::MAX;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bin").join(rel)
}

fn scan(path: &Path) -> Result<Scan> {
    Binary::open(path, None, &[])?.scan()
}

fn variables(path: &Path, scopes: &[u64]) -> Result<Scan> {
    Binary::open(path, None, &[])?.variables(scopes)
}

fn table<'s>(s: &'s Scan, name: &str) -> &'s Table {
    &s.tables.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no table {name}")).1
}

/// Any integer column, its chunks concatenated, as i128 (wide enough for u64 and i64).
fn ints(t: &Table, name: &str) -> Vec<i128> {
    let (_, c) = t.columns.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("no column {name}"));
    let mut out = Vec::new();
    for ch in &c.chunks {
        match ch {
            Chunk::U8(v) => out.extend(v.iter().map(|&x| i128::from(x))),
            Chunk::U16(v) => out.extend(v.iter().map(|&x| i128::from(x))),
            Chunk::U32(v) | Chunk::Str(v) => out.extend(v.iter().map(|&x| i128::from(x))),
            Chunk::U64(v) => out.extend(v.iter().map(|&x| i128::from(x))),
            Chunk::I64(v) => out.extend(v.iter().map(|&x| i128::from(x))),
        }
    }
    out
}

/// The rows of `t`, each the values of `names` in order.
fn records(t: &Table, names: &[&str]) -> Vec<Vec<i128>> {
    let cols: Vec<Vec<i128>> = names.iter().map(|c| ints(t, c)).collect();
    (0..t.rows()).map(|i| cols.iter().map(|c| c[i]).collect()).collect()
}

fn info<'s>(s: &'s Scan, key: &str) -> &'s str {
    &s.info.iter().find(|(k, _)| *k == key).unwrap_or_else(|| panic!("no info {key}")).1
}

/// Runs the query, turning an escaped panic into a test failure with its message.
fn query(path: &Path, scopes: &[u64]) -> Result<Scan> {
    catch_unwind(AssertUnwindSafe(|| variables(path, scopes))).unwrap_or_else(|p| {
        let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned());
        panic!("variables({}) panicked: {}", path.display(), msg.unwrap_or_default())
    })
}

/// Every concrete function (with code) and inline site, with its entry address.
fn scopes(s: &Scan) -> HashMap<u64, u64> {
    let sp = table(s, "subprograms");
    let (die, flags, entry) = (ints(sp, "die"), ints(sp, "flags"), ints(sp, "entry_pc"));
    let mut out: HashMap<u64, u64> =
        (0..die.len()).filter(|&i| flags[i] as u64 & HAS_CODE != 0).map(|i| (die[i] as u64, entry[i] as u64)).collect();
    let inl = table(s, "inline_sites");
    out.extend(ints(inl, "die").into_iter().zip(ints(inl, "entry_pc")).map(|(d, e)| (d as u64, e as u64)));
    out
}

/// One location row of the variables table.
struct Row {
    low: u64,
    high: u64,
    kind: u8,
    reg: u16,
    value: i64,
    flags: u8,
}

/// The variables table's rows by variable DIE, in order.
fn rows_by_die(v: &Scan) -> HashMap<u64, Vec<Row>> {
    let mut out: HashMap<u64, Vec<Row>> = HashMap::new();
    for r in records(table(v, "variables"), &["die", "low", "high", "kind", "reg", "value", "flags"]) {
        out.entry(r[0] as u64).or_default().push(Row {
            low: r[1] as u64,
            high: r[2] as u64,
            kind: r[3] as u8,
            reg: r[4] as u16,
            value: r[5] as i64,
            flags: r[6] as u8,
        });
    }
    out
}

/// The row that holds at `pc`, as `location_at` picks it: the first entry covering `pc`,
/// else the first empty one at `pc` (a location view).
fn at(rows: &[Row], pc: u64) -> Option<&Row> {
    let view = |r: &&Row| r.flags & flag::VIEW_ONLY != 0;
    rows.iter()
        .find(|r| !view(r) && r.low <= pc && pc < r.high)
        .or_else(|| rows.iter().find(|r| view(r) && r.low == pc))
}

#[test]
fn parameters_at_entry_agree_with_the_scan() {
    let mut compared = 0;
    for variant in LINKED {
        let path = fixture(&format!("{variant}/corpus"));
        let s = scan(&path).unwrap();
        let entries = scopes(&s);
        let wanted: Vec<u64> = entries.keys().copied().collect();
        let v = query(&path, &wanted).unwrap();
        assert_eq!(info(&v, "found"), wanted.len().to_string(), "{variant}: every scope found");
        assert_eq!(info(&v, "errors"), "");
        let rows = rows_by_die(&v);
        let params = records(table(&s, "params"), &["die", "owner", "loc_kind", "loc_flags", "loc_reg", "const_value"]);
        for p in params {
            let (die, owner) = (p[0] as u64, p[1] as u64);
            let Some(&pc) = entries.get(&owner) else { continue };
            let (k, flags, reg, value) = (p[2] as u8, p[3] as u8, p[4] as u16, p[5] as i64);
            let mine = rows.get(&die).unwrap_or_else(|| panic!("{variant}: parameter {die:#x} has no rows"));
            let found = at(mine, pc).filter(|r| !(r.kind == kind::NONE && r.flags & flag::LIST != 0));
            let what = format!("{variant}: parameter {die:#x} at {pc:#x}");
            if k == kind::NOT_AT_ENTRY {
                assert!(found.is_none(), "{what}: the scan found no entry");
                continue;
            }
            let r = found.unwrap_or_else(|| panic!("{what}: no row holds"));
            assert_eq!(r.kind, k, "{what}");
            assert_eq!(r.flags & (flag::LIST | flag::VIEW_ONLY), flags, "{what}");
            if k != kind::MEMORY {
                // memory rows also name their base register and offset; params do not
                assert_eq!((r.reg, r.value), (reg, value), "{what}");
            }
            compared += 1;
        }
    }
    assert!(compared > 500, "compared {compared} parameters");
}

/// Every byte offset of `.debug_info` asked at once: exactly the DIEs that are functions or
/// inline sites are found, and every row belongs to one of them.
#[test]
fn every_offset_as_a_scope() {
    for variant in ["x86_64", "aarch64", "x86_64-dwarf4"] {
        let path = fixture(&format!("{variant}/corpus"));
        let bytes = std::fs::read(&path).unwrap();
        let size = object::File::parse(&*bytes).unwrap().section_by_name(".debug_info").unwrap().size();
        let s = scan(&path).unwrap();
        let (sp, inl) = (table(&s, "subprograms"), table(&s, "inline_sites"));
        let mut real: Vec<u64> = ints(sp, "die").into_iter().chain(ints(inl, "die")).map(|d| d as u64).collect();
        real.sort_unstable();
        let mut all: Vec<u64> = (0..size + 64).collect();
        all.extend([NONE, NONE - 1, 1 << 63, (1 << 63) | real[0]]);
        let v = query(&path, &all).unwrap();
        assert_eq!(info(&v, "found"), real.len().to_string(), "{variant}");
        let vars = table(&v, "variables");
        let rows_scopes = ints(vars, "scope");
        assert!(rows_scopes.iter().all(|&d| real.binary_search(&(d as u64)).is_ok()));
        assert!(rows_scopes.windows(2).all(|w| w[0] <= w[1]), "rows grouped by scope, in order");
        let one = query(&path, &real).unwrap();
        assert_eq!(table(&one, "variables").rows(), vars.rows(), "{variant}: the same rows");
    }
}

/// A scope asked alone (the walk jumps over nearly the whole unit) reads as when asked with
/// every other scope.
#[test]
fn a_scope_alone_reads_as_in_company() {
    let path = fixture("x86_64/corpus");
    let s = scan(&path).unwrap();
    let mut all: Vec<u64> = scopes(&s).into_keys().collect();
    all.sort_unstable();
    let together = query(&path, &all).unwrap();
    let names = ["scope", "die", "position", "block", "low", "high", "kind", "reg", "value", "flags"];
    let rows = records(table(&together, "variables"), &names);
    let mut compared = 0;
    for &scope in &all {
        let alone = records(table(&query(&path, &[scope]).unwrap(), "variables"), &names);
        let mine: Vec<_> = rows.iter().filter(|r| r[0] as u64 == scope).cloned().collect();
        assert_eq!(alone, mine, "scope {scope:#x}");
        compared += mine.len();
    }
    assert!(compared > 100);
}

#[test]
fn dwz_supplementary_origins_and_types() {
    let plain = fixture("x86_64/corpus");
    let dwz = fixture("x86_64-dwz/corpus");
    let count = |path: &Path| {
        let s = scan(path).unwrap();
        let wanted: Vec<u64> = scopes(&s).into_keys().collect();
        let v = query(path, &wanted).unwrap();
        let t = table(&v, "variables");
        // names and types are read from the supplementary file: none may be missing
        let (names, types) = (ints(t, "name"), ints(t, "type"));
        assert!(names.iter().zip(&types).all(|(&n, &t)| n != 0 && t != 0), "{}", path.display());
        (info(&v, "found").to_string(), t.rows())
    };
    assert_eq!(count(&dwz), count(&plain));
}

/// Scopes of files that are not whole: every fixture cut at half, and each debug section
/// with every 97th byte inverted. Ok or Err, never a panic.
#[test]
fn broken_files_never_panic() {
    let path = fixture("x86_64/corpus");
    let bytes = std::fs::read(&path).unwrap();
    let s = scan(&path).unwrap();
    let wanted: Vec<u64> = scopes(&s).into_keys().collect();
    let dir = std::env::temp_dir().join(format!("patchscope-variables-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = object::File::parse(&*bytes).unwrap();
    let mut copies = vec![("half".to_string(), bytes[..bytes.len() / 2].to_vec())];
    for sec in file.sections().filter(|s| s.name().is_ok_and(|n| n.starts_with(".debug_"))) {
        let (off, len) = sec.file_range().unwrap();
        let mut copy = bytes.clone();
        for i in (off as usize..(off + len) as usize).step_by(97) {
            copy[i] = !copy[i];
        }
        copies.push((sec.name().unwrap().to_string(), copy));
    }
    for (name, copy) in copies {
        let p = dir.join(format!("corpus{name}"));
        std::fs::write(&p, copy).unwrap();
        if let Err(e) = query(&p, &wanted) {
            assert!(!e.0.is_empty() && !e.0.contains('\n'), "{name}: {:?}", e.0);
        }
        std::fs::remove_file(&p).unwrap();
    }
    std::fs::remove_dir(&dir).unwrap();
    assert!(query(Path::new("/nonexistent/file"), &wanted).is_err());
}

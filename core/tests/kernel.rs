//! The kernel's site tables (`kernel_sites`), the kernel's release (scan info) and `probe_sites`
//! on the kernel-in-miniature fixtures (fixtures/src/extra/sites.c), linked as a vmlinux is and
//! relocatable as a module is. Every address below was read with objdump -d / objdump -s /
//! nm of the fixture (the table entries decoded by hand: field address + s32).

use std::path::{Path, PathBuf};

use object::{Object, ObjectSymbol};
use patchscope_core::binary::Binary;
use patchscope_core::code::{self, kind, site_status, Decoder, Image, Isa, NO_TARGET};
use patchscope_core::table::{Chunk, Scan, Table};

const N: u64 = NO_TARGET;

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../fixtures/bin").join(rel)
}

fn open(path: &Path) -> Binary {
    Binary::open(path, None, &[]).unwrap()
}

fn scanned(rel: &str) -> Scan {
    Binary::open(&fixture(rel), None, &[]).and_then(|b| b.scan()).unwrap()
}

fn table<'a>(s: &'a Scan, name: &str) -> &'a Table {
    &s.tables.iter().find(|(n, _)| *n == name).unwrap_or_else(|| panic!("table {name}")).1
}

fn u64s(t: &Table, name: &str) -> Vec<u64> {
    t.columns
        .iter()
        .find(|(n, _)| *n == name)
        .unwrap_or_else(|| panic!("column {name}"))
        .1
        .chunks
        .iter()
        .flat_map(|c| match c {
            Chunk::U64(v) => v.clone(),
            Chunk::U32(v) | Chunk::Str(v) => v.iter().map(|&x| u64::from(x)).collect(),
            Chunk::U8(v) => v.iter().map(|&x| u64::from(x)).collect(),
            other => panic!("{other:?}"),
        })
        .collect()
}

fn string(s: &Scan, i: u64) -> String {
    let (a, b) = (s.string_offsets[i as usize] as usize, s.string_offsets[i as usize + 1] as usize);
    String::from_utf8_lossy(&s.string_data[a..b]).into_owned()
}

fn info<'a>(s: &'a Scan, key: &str) -> &'a str {
    &s.info.iter().find(|(k, _)| *k == key).unwrap().1
}

/// (kind, at, address, size, target, key, flags) of every `kernel_sites` row.
type Row = (String, u64, u64, u64, u64, u64, u64);

fn sites(s: &Scan) -> Vec<Row> {
    let t = table(s, "kernel_sites");
    let c: Vec<Vec<u64>> =
        ["kind", "at", "address", "size", "target", "key", "flags"].iter().map(|n| u64s(t, n)).collect();
    (0..c[0].len()).map(|i| (string(s, c[0][i]), c[1][i], c[2][i], c[3][i], c[4][i], c[5][i], c[6][i])).collect()
}

fn row(kind: &str, at: u64, address: u64, size: u64, target: u64, key: u64, flags: u64) -> Row {
    (kind.to_string(), at, address, size, target, key, flags)
}

/// The address of a defined symbol, at the synthetic addresses of a relocatable file.
fn symbol(path: &Path, name: &str) -> u64 {
    let data = std::fs::read(path).unwrap();
    let file = object::File::parse(&*data).unwrap();
    let bases = patchscope_core::elf::section_bases(&file);
    let s = file.symbols().find(|s| s.name() == Ok(name) && !s.is_undefined()).unwrap_or_else(|| panic!("{name}"));
    let base = match file.kind() {
        object::ObjectKind::Relocatable => s.section_index().map_or(0, |i| bases[i.0]),
        _ => 0,
    };
    s.address() + base
}

#[test]
fn sites_x86_64_linked() {
    let s = scanned("x86_64-sites/corpus");
    assert_eq!(
        sites(&s),
        vec![
            // stats_enabled+5: the NOP5 form (after `call __fentry__`), key sched_stats_key
            row("jump-label", 0x404020, 0x4011f5, 5, 0x401200, 0x404108, 0),
            // debug_enabled+7: a 2-byte jmp, key debug_key with branch = 1 in the low bit
            row("jump-label", 0x404030, 0x401217, 2, 0x401220, 0x404104, 1),
            // branch_first+0 (notrace: the static branch is its first instruction)
            row("jump-label", 0x404040, 0x401230, 2, 0x401238, 0x404104, 0),
            // uses_static_call+5: call __SCT__fixture_call, key __SCK__fixture_call
            row("static-call", 0x404050, 0x4012e5, 5, N, 0x404018, 0),
            // checked_div: the WARN_ON ud2 (BUGFLAG_WARNING) and the BUG ud2
            row("bug", 0x404058, 0x401258, 2, N, 0, 1),
            row("bug", 0x404064, 0x40125d, 2, N, 0, 0),
            // read_user: movl (%rdi),%eax with its fixup
            row("extable", 0x404070, 0x40126a, 2, 0x40126c, 0, 0),
        ]
    );
    assert_eq!(info(&s, "kernel_release"), "6.1.0-56-fixture");
    assert!(info(&s, "kernel_banner").starts_with("Linux version 6.1.0-56-fixture (patchscope) #1 SMP"));
}

#[test]
fn sites_aarch64_linked() {
    let s = scanned("aarch64-sites/corpus");
    assert_eq!(
        sites(&s),
        vec![
            row("jump-label", 0x420028, 0x400738, 4, 0x400744, 0x420110, 0),
            row("jump-label", 0x420038, 0x400758, 4, 0x400768, 0x420108, 1),
            row("jump-label", 0x420048, 0x400770, 4, 0x40077c, 0x420108, 0),
            // brk #0x800
            row("bug", 0x420058, 0x4007a0, 4, N, 0, 1),
            row("bug", 0x420064, 0x4007ac, 4, N, 0, 0),
            row("extable", 0x420070, 0x4007bc, 4, 0x4007c0, 0, 0),
        ]
    );
}

#[test]
fn sites_of_a_module_are_its_relocations() {
    // In a .o every field holds zero until the loader applies R_X86_64_PC32 / R_AARCH64_PREL32:
    // the site is the relocation's S + A, at the synthetic section addresses.
    for (arch, after_entry) in [("x86_64", 5), ("aarch64", 8)] {
        let p = fixture(&format!("{arch}-sites/module.o"));
        let s = scanned(&format!("{arch}-sites/module.o"));
        assert_eq!(info(&s, "kernel_release"), "6.1.0-56-fixture", "{arch}: from .modinfo vermagic");
        assert_eq!(info(&s, "kernel_banner"), "");
        let got = sites(&s);
        let kinds: Vec<&str> = got.iter().map(|r| r.0.as_str()).collect();
        let want: &[&str] = if arch == "x86_64" {
            &["jump-label", "jump-label", "jump-label", "static-call", "bug", "bug", "extable"]
        } else {
            &["jump-label", "jump-label", "jump-label", "bug", "bug", "extable"]
        };
        assert_eq!(kinds, want, "{arch}");
        let stats = symbol(&p, "stats_enabled");
        assert_eq!(got[0].2, stats + after_entry, "{arch}: the static branch after the ftrace entry");
        assert_eq!(got[0].5, symbol(&p, "sched_stats_key"), "{arch}");
        assert_eq!((got[1].5, got[1].6), (symbol(&p, "debug_key"), 1), "{arch}");
        assert_eq!(got[2].2, symbol(&p, "branch_first"), "{arch}");
        let read_user = symbol(&p, "read_user");
        let ex = got.iter().find(|r| r.0 == "extable").unwrap();
        assert!(ex.2 > read_user && ex.2 < read_user + 0x20 && ex.4 == ex.2 + ex.3, "{arch}: {ex:?}");
        if arch == "x86_64" {
            assert_eq!(got[3].2, symbol(&p, "uses_static_call") + 5);
            assert_eq!(got[3].5, symbol(&p, "__SCK__fixture_call"));
        }
    }
}

#[test]
fn no_sites_outside_a_kernel() {
    let s = scanned("x86_64/corpus");
    assert!(sites(&s).is_empty());
    assert_eq!(info(&s, "kernel_release"), "");
}

#[test]
fn probe_sites_on_the_fixture() {
    let p = fixture("x86_64-sites/corpus");
    let f = symbol(&p, "stats_enabled");
    // call __fentry__ (5) | nopl 0x0(%rax,%rax,1) (5) | lea 0x1(%rdi),%eax (3)
    let addrs = [f, f + 1, f + 5, f + 9, f + 10];
    let s = open(&p).probe_sites(&[f; 5], &addrs).unwrap();
    let t = table(&s, "probe_sites");
    assert_eq!(u64s(t, "address"), addrs);
    assert_eq!(u64s(t, "insn"), vec![f, f, f + 5, f + 5, f + 10]);
    assert_eq!(u64s(t, "size"), vec![5, 5, 5, 5, 3]);
    assert_eq!(u64s(t, "kind")[0], u64::from(kind::CALL_DIRECT));
    assert_eq!(u64s(t, "kind")[2], u64::from(kind::NOP));
    assert_eq!(u64s(t, "bytes0")[2], 0x0000_0000_0044_1f0f); // 0f 1f 44 00 00, zero past its end
    assert_eq!(u64s(t, "status"), vec![0; 5]);
    // unordered input, several starts: rows come back in the order given
    let g = symbol(&p, "debug_enabled");
    let s = open(&p).probe_sites(&[g, f, g], &[g + 7, f + 6, g]).unwrap();
    assert_eq!(u64s(table(&s, "probe_sites"), "insn"), vec![g + 7, f + 5, g]);
    assert!(open(&p).probe_sites(&[1], &[]).is_err());
}

#[test]
fn walk_to_statuses() {
    let dec = Decoder::new(Isa::X86 { bits: 64 });
    // nop | (bad: 0x06 is invalid in 64-bit mode) | ret | ret
    let bytes = [0x90, 0x06, 0xc3, 0xc3];
    let img = Image::from_parts(vec![(0x1000, &bytes[..])]);
    let got = code::walk_to(&dec, &img, 0x1000, &[0xff0, 0x1000, 0x1001, 0x1002, 0x1003, 0x1010]);
    let st: Vec<u8> = got.iter().map(|s| s.status).collect();
    assert_eq!(
        st,
        vec![site_status::BAD_START, 0, 0, site_status::DECODE_ERROR, site_status::DECODE_ERROR, site_status::NO_BYTES]
    );
    assert_eq!(got[2].kind, kind::ERROR);
    assert_eq!(got[3].insn, 0x1002);
    assert_eq!(code::walk_to(&dec, &img, 0x5000, &[0x5000])[0].status, site_status::NO_BYTES);
}

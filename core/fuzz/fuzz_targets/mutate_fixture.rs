//! A real fixture ELF with the fuzz input applied as byte patches inside its DWARF only, so
//! that the ELF layer always parses and coverage reaches the DWARF reader.
//!
//! Input: `[fixture] (op off0 off1 off2 value)*`
//! * `fixture % 3` picks the fixture: the x86_64 DWARF 5 executable (the main target), its
//!   DWARF 4 build (`.debug_loc` / `.debug_ranges`, GNU call sites), or the relocatable
//!   `module.o` (where the `.rela.debug_*` sections are patchable too).
//! * each 5-byte patch: a 24-bit little-endian offset taken modulo the total size of the
//!   patchable sections (walked in file order), and an op: `op % 4` = 0 set the byte to
//!   `value`, 1 xor it with `value`, 2 add `value`, 3 fill four bytes with `value` (for
//!   lengths and offsets: 0xff ff ff ff, 0).
#![no_main]

mod common;

use std::sync::OnceLock;

use object::{Object, ObjectSection};

struct Fixture {
    bytes: &'static [u8],
    /// File ranges (start, len) of the patchable sections.
    ranges: Vec<(usize, usize)>,
    total: usize,
}

macro_rules! fixture {
    ($rel:literal) => {
        include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../fixtures/bin/", $rel))
    };
}

static FIXTURES: [&[u8]; 3] =
    [fixture!("x86_64/corpus"), fixture!("x86_64-dwarf4/corpus"), fixture!("x86_64-rel/module.o")];

fn fixtures() -> &'static [Fixture] {
    static F: OnceLock<Vec<Fixture>> = OnceLock::new();
    F.get_or_init(|| {
        FIXTURES
            .iter()
            .map(|&bytes| {
                let file = object::File::parse(bytes).expect("fixture parses");
                let mut ranges: Vec<(usize, usize)> = file
                    .sections()
                    .filter(|s| {
                        let n = s.name().unwrap_or("");
                        n.starts_with(".debug_") || n.starts_with(".rela.debug_")
                    })
                    .filter_map(|s| s.file_range())
                    .map(|(o, l)| (o as usize, l as usize))
                    .filter(|&(o, l)| l > 0 && o + l <= bytes.len())
                    .collect();
                ranges.sort_unstable();
                let total = ranges.iter().map(|r| r.1).sum();
                assert!(total > 0, "fixture without debug sections");
                Fixture { bytes, ranges, total }
            })
            .collect()
    })
}

impl Fixture {
    /// The file offset of the `i`-th patchable byte (`i < total`).
    fn at(&self, mut i: usize) -> usize {
        for &(start, len) in &self.ranges {
            if i < len {
                return start + i;
            }
            i -= len;
        }
        unreachable!()
    }
}

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&which, patches)) = data.split_first() else { return };
    let fx = &fixtures()[usize::from(which) % FIXTURES.len()];
    let mut bytes = fx.bytes.to_vec();
    for p in patches.chunks_exact(5) {
        let (op, value) = (p[0], p[4]);
        let i = (usize::from(p[1]) | usize::from(p[2]) << 8 | usize::from(p[3]) << 16) % fx.total;
        let at = fx.at(i);
        match op % 4 {
            0 => bytes[at] = value,
            1 => bytes[at] ^= value,
            2 => bytes[at] = bytes[at].wrapping_add(value),
            _ => {
                for k in 0..4 {
                    // stay inside the patchable bytes
                    let j = fx.at((i + k) % fx.total);
                    bytes[j] = value;
                }
            }
        }
    }
    common::scan_bytes(&bytes);
});

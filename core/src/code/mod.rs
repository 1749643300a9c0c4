//! The machine-code layer: facts about the instructions of function ranges.
//!
//! Python hands over every range of every out-of-line function instance (`.cold` parts
//! included) as `(function_id, low, high)`; the core decodes them in parallel and returns
//! two tables: `code_ranges` (one row per range given, in the order given) and
//! `code_events` (returns, tail-call exits, calls, jumps back to the entry, LL/SC and
//! transactional-memory instructions, traps, landing pads, entry prologues). It says what
//! the instructions are; the rules in Python decide what that means for a probe.
//!
//! x86 is decoded with `iced-x86`. The fixed-width ISAs (aarch64, ppc, riscv) are
//! classified by hand: telling a branch, an exclusive load or a trap apart in a fixed-width
//! encoding takes a few masks per instruction, which is faster than any general
//! disassembler and needs no C library. Text for evidence comes from iced's formatter on
//! x86 and, for the others, from capstone when the `capstone` feature is built (the Python
//! module), else from a small printer that names only what the classifiers know.

mod aarch64;
mod arm;
pub mod fingerprint;
mod image;
pub mod liveness;
pub mod pointers;
mod ppc;
mod ppc_registers;
mod riscv;
mod s390;
mod text;
mod x86;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;

use object::{Object, ObjectSection, ObjectSymbol};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use crate::elf;
use crate::error::{Error, Result};
use crate::table::{Chunk, Scan, Strings, Table};

pub use image::Image;

/// Instruction and event kinds: the `kind` column of `code_events` and of `insns`.
///
/// One numbering for both tables. Event-only kinds need the function's other ranges to
/// be known (a jump is a *tail* jump only if it leaves all of them); `insns` reports the
/// context-free kinds ([`kind::JUMP`], [`kind::JUMP_INDIRECT`], [`kind::NOP`] …) instead.
pub mod kind {
    consts! {
        /// Anything not classified below (`insns` only).
        pub const OTHER: u8 = 0;
        /// x86 `ret`/`ret imm` (and, flagged FAR, `iret`/`sysret`/`retf`), a `jmp` to
        /// `__x86_return_thunk` (flagged THUNK); aarch64 `ret`/`retaa`; ppc `blr` and the
        /// conditional `b?lr`; riscv `ret` = `jalr x0, 0(ra)` and `c.jr ra`.
        pub const RETURN: u8 = 1;
        /// A direct jump (conditional or not) whose target is outside every range of the function.
        pub const TAIL_JUMP_DIRECT: u8 = 2;
        /// An indirect jump (x86 `jmp *…`, a jump to `__x86_indirect_thunk_*`; aarch64 `br`;
        /// ppc `bctr`; riscv `jr rs` with rs ≠ ra). Switch tables look the same: Python decides.
        pub const TAIL_JUMP_INDIRECT: u8 = 3;
        /// A direct call, with its target (x86 `call __fentry__` is one of these).
        pub const CALL_DIRECT: u8 = 4;
        /// An indirect call (a call to `__x86_indirect_thunk_*` is one, flagged THUNK, with target).
        pub const CALL_INDIRECT: u8 = 5;
        /// A direct jump to the function's entry (its first range's low; on ppc64 ELFv2 also
        /// the local entry point): a self tail call turned into a loop.
        pub const JUMP_TO_ENTRY: u8 = 6;
        /// Load-linked / load-exclusive: aarch64 LDXR/LDAXR/LDXP/LDAXP (b/h/w/x), ppc
        /// l[bhwdq]arx, riscv LR.W/LR.D. `extra`: size in bytes | [`flag`] ACQUIRE/RELEASE/PAIR/K*.
        pub const LL: u8 = 7;
        /// Store-conditional / store-exclusive: aarch64 STXR/STLXR/STXP/STLXP, ppc
        /// st[bhwdq]cx., riscv SC.W/SC.D. `extra` as for [`LL`].
        pub const SC: u8 = 8;
        /// A single-instruction atomic read-modify-write: aarch64 LSE CAS/CASP/LDADD/…/SWP,
        /// riscv AMO*. (x86 `lock` instructions are not reported.) `extra` as for [`LL`]: the
        /// aarch64 K* bits say which of the kernel's exclusive masks wrongly match it.
        pub const LSE_ATOMIC: u8 = 9;
        /// aarch64 LDAR/LDLAR/STLR/STLLR: not exclusive, but matched by the pre-2025 kernel
        /// masks `aarch64_insn_is_load_ex`/`store_ex` (6.1), so a kernel-exact rule needs them.
        pub const ORDERED: u8 = 10;
        /// x86 XBEGIN (target = fallback address), ppc `tbegin.`, aarch64 TSTART.
        pub const TM_BEGIN: u8 = 11;
        /// x86 XEND, ppc `tend.`, aarch64 TCOMMIT.
        pub const TM_END: u8 = 12;
        /// x86 XABORT (`extra` = imm8), ppc `tabort*.`, aarch64 TCANCEL (`extra` = imm16).
        pub const TM_ABORT: u8 = 13;
        /// x86 XTEST, ppc `tcheck`, aarch64 TTEST.
        pub const TM_TEST: u8 = 14;
        /// Other TM instructions: ppc `tsr.` (tsuspend./tresume.), `treclaim.`, `trechkpt.`;
        /// x86 XSUSLDTRK/XRESLDTRK.
        pub const TM_OTHER: u8 = 15;
        /// An x86 instruction with an HLE prefix: `extra` = [`flag::XACQUIRE`] or [`flag::XRELEASE`].
        pub const HLE: u8 = 16;
        /// ud0/ud1/ud2, int3, int n, int1; aarch64 brk/hlt/udf; ppc tw/td/twi/tdi; riscv
        /// ebreak/c.ebreak/unimp. `extra` = [`trap`] subkind | immediate << 16.
        pub const TRAP: u8 = 17;
        /// A landing pad: x86 endbr64/endbr32, aarch64 BTI (`extra` = its c/j bits),
        /// riscv `lpad`.
        pub const ENDBR: u8 = 18;
        /// ppc64 ELFv2 global-entry TOC setup at the entry (`addis r2,r12,…; addi r2,r2,…`
        /// and its variants): `target` = the local entry point, `extra` = its offset.
        pub const LOCAL_ENTRY: u8 = 19;
        /// NOPs at the entry (after an ENDBR/BTI or the ppc64 TOC setup): patchable-function-
        /// entry sites. `size` = their bytes, `extra` = how many.
        pub const ENTRY_NOPS: u8 = 20;

        /// `insns` only: a NOP of any length.
        pub const NOP: u8 = 32;
        /// `insns` only: a direct jump (conditional if flagged), with its target.
        pub const JUMP: u8 = 33;
        /// `insns` only: an indirect jump.
        pub const JUMP_INDIRECT: u8 = 34;
        /// `insns` only: bytes that decode to no instruction; `size` = bytes skipped.
        pub const ERROR: u8 = 255;
    }
}

/// Bits of `extra` for branch kinds (RETURN, jumps, calls) and for the atomics.
pub mod flag {
    consts! {
        /// A conditional branch (x86 jcc, aarch64 b.cond/cbz/tbz, ppc bc/b?lr/b?ctr, riscv b*).
        pub const CONDITIONAL: u32 = 1;
        /// x86: the target is `__x86_return_thunk` or an `__x86_indirect_thunk_*` (by symbol name).
        pub const THUNK: u32 = 2;
        /// x86 `jmp/call *disp(%rip)`: `target` is the address of the pointer slot, not the target.
        pub const SLOT: u32 = 4;
        /// aarch64 pointer-authenticating branch (`retaa`, `braa`, `blraa` …).
        pub const AUTH: u32 = 8;
        /// Relocatable file: the target is an undefined symbol, named in `target_name`;
        /// `target` is then `u64::MAX`.
        pub const EXTERNAL: u32 = 16;
        /// riscv: the link register is t0 (x5), the alternate link register.
        pub const ALT_LINK: u32 = 32;
        /// x86 far return or interrupt return (`retf`, `iret`, `sysret`, `sysexit`).
        pub const FAR: u32 = 64;
        /// 32-bit ARM: a Thumb instruction (the mapping symbols say `$t`), any kind.
        pub const THUMB: u32 = 0x8000;

        /// Atomics: `extra & SIZE_MASK` is the access size in bytes (both halves of a pair).
        pub const SIZE_MASK: u32 = 0xff;
        pub const ACQUIRE: u32 = 0x100;
        pub const RELEASE: u32 = 0x200;
        pub const PAIR: u32 = 0x400;
        /// aarch64: matched by the pre-2025 `aarch64_insn_is_load_ex` mask `0x3F400000/0x08400000`.
        pub const K_LOAD_EX: u32 = 0x1000;
        /// aarch64: matched by the pre-2025 `aarch64_insn_is_store_ex` mask `0x3F400000/0x08000000`.
        pub const K_STORE_EX: u32 = 0x2000;
        /// aarch64: matched by `aarch64_insn_is_exclusive` `0x3F800000/0x08000000` (kprobes reject it).
        pub const K_EXCLUSIVE: u32 = 0x4000;

        /// HLE: the F2 prefix on a lock/xchg form.
        pub const XACQUIRE: u32 = 1;
        /// HLE: the F3 prefix on a lock/xchg/mov-to-memory form.
        pub const XRELEASE: u32 = 2;
    }
}

/// `extra & 0xff` of a TRAP; the instruction's immediate (if any) is `extra >> 16`.
pub mod trap {
    consts! {
        /// Always traps: ud0/ud1/ud2, aarch64 udf, ppc `trap` (tw/td/twi/tdi with TO = 31), riscv unimp.
        pub const UNDEFINED: u32 = 1;
        /// A breakpoint: int3, int1, aarch64 brk/hlt, riscv ebreak/c.ebreak.
        pub const BREAKPOINT: u32 = 2;
        /// x86 `int n` / `into`.
        pub const INTERRUPT: u32 = 3;
        /// ppc conditional trap (tw/td/twi/tdi with TO ≠ 31): WARN_ON and friends.
        pub const CONDITIONAL: u32 = 4;
    }
}

/// Bits of `code_ranges.status`.
pub mod status {
    consts! {
        /// No section with file bytes holds the range's start.
        pub const NO_BYTES: u8 = 1;
        /// The range runs past the end of its section; decoded up to there.
        pub const TRUNCATED: u8 = 2;
        /// Decoding this function failed internally; its events are dropped.
        pub const INTERNAL: u8 = 4;
    }
}

/// "No target" in the `target` columns.
pub const NO_TARGET: u64 = u64::MAX;

/// One decoded instruction, classified.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub address: u64,
    pub size: u8,
    pub kind: u8,
    pub target: u64,
    pub extra: u32,
    /// Index in the decoder's string pool of the undefined symbol a relocation names, or 0.
    pub name: u32,
}

impl Insn {
    fn new(address: u64, size: u8, kind: u8) -> Self {
        Insn { address, size, kind, target: NO_TARGET, extra: 0, name: 0 }
    }
}

/// What a classifier says about one instruction word, before relocations.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Class {
    pub kind: u8,
    pub target: u64,
    pub extra: u32,
}

impl Class {
    pub const OTHER: Class = Class { kind: kind::OTHER, target: NO_TARGET, extra: 0 };

    pub fn of(kind: u8) -> Self {
        Class { kind, target: NO_TARGET, extra: 0 }
    }

    pub fn to(kind: u8, target: u64, extra: u32) -> Self {
        Class { kind, target, extra }
    }

    pub fn with(kind: u8, extra: u32) -> Self {
        Class { kind, target: NO_TARGET, extra }
    }
}

/// The instruction sets the classifiers know.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Isa {
    X86 {
        bits: u32,
    },
    Aarch64,
    Ppc {
        big_endian: bool,
        bits64: bool,
    },
    Riscv {
        xlen: u32,
    },
    S390,
    /// 32-bit ARM: A32, and Thumb-2 where the mapping symbols say so.
    Arm,
}

impl Isa {
    /// From [`crate::elf::arch_name`].
    pub fn from_arch(arch: &str) -> Result<Isa> {
        Ok(match arch {
            "x86_64" => Isa::X86 { bits: 64 },
            "i386" => Isa::X86 { bits: 32 },
            "aarch64" => Isa::Aarch64,
            "ppc64le" => Isa::Ppc { big_endian: false, bits64: true },
            "ppc64" => Isa::Ppc { big_endian: true, bits64: true },
            "ppc" => Isa::Ppc { big_endian: true, bits64: false },
            "riscv64" => Isa::Riscv { xlen: 64 },
            "riscv32" => Isa::Riscv { xlen: 32 },
            "s390x" => Isa::S390,
            "arm" => Isa::Arm,
            other => {
                return Err(Error::new(format!(
                    "machine code of architecture {other} cannot be decoded \
                     (known: x86_64, i386, aarch64, ppc64le, ppc64, ppc, riscv64, riscv32, s390x, arm)"
                )))
            }
        })
    }
}

/// x86 thunk kinds, found by symbol name.
pub mod thunk {
    pub const RETURN: u8 = 1;
    pub const INDIRECT: u8 = 2;

    /// `__x86_return_thunk` (compiler `-mfunction-return=thunk-extern`, the kernel's return
    /// thunk) and the retpolines `__x86_indirect_thunk_*` (and 6.2+'s call/jump variants).
    pub fn of_name(name: &[u8]) -> u8 {
        if name == b"__x86_return_thunk" {
            RETURN
        } else if name.starts_with(b"__x86_indirect_thunk")
            || name.starts_with(b"__x86_indirect_call_thunk_")
            || name.starts_with(b"__x86_indirect_jump_thunk_")
        {
            INDIRECT
        } else {
            0
        }
    }
}

/// A branch relocation of a relocatable object, resolved as far as the file allows.
#[derive(Clone, Copy, Debug)]
struct Reloc {
    /// Where the relocated field is (synthetic address).
    at: u64,
    /// S + A: the target, for a defined symbol.
    value: u64,
    /// x86 PC32/PLT32: the field holds S + A − P, relative to the field, not to the end of
    /// the instruction; the target is `value + (insn_end − at)`.
    pc_field: bool,
    /// The undefined symbol's name in the pool, or 0 for a defined symbol.
    name: u32,
    thunk: u8,
}

/// Decodes and classifies instructions of one ISA, knowing the file's thunks and, for a
/// relocatable object, its branch relocations.
pub struct Decoder {
    pub isa: Isa,
    thunks: FxHashMap<u64, u8>,
    relocs: Vec<Reloc>,
    /// 32-bit ARM: the mapping symbols (`$a`, `$t`, `$d`) by address; empty means A32.
    arm_map: Vec<(u64, u8)>,
}

impl Decoder {
    pub fn new(isa: Isa) -> Self {
        Decoder { isa, thunks: FxHashMap::default(), relocs: Vec::new(), arm_map: Vec::new() }
    }

    /// Marks `address` as an x86 thunk ([`thunk::RETURN`] or [`thunk::INDIRECT`]).
    pub fn add_thunk(&mut self, address: u64, kind: u8) {
        self.thunks.insert(address, kind);
    }

    /// The decoder for `file`'s code: its thunks from `symbols` (the file's own symbol
    /// table, or its debug file's), and its branch relocations if it is relocatable, with
    /// undefined symbols' names interned in `strings`.
    pub fn for_file<'d>(
        file: &object::File<'d>,
        symbols: &object::File<'d>,
        strings: &mut Strings<'d>,
    ) -> Result<Self> {
        let mut dec = Decoder::new(Isa::from_arch(elf::arch_name(file))?);
        let relocatable = file.kind() == object::ObjectKind::Relocatable;
        if matches!(dec.isa, Isa::X86 { .. }) {
            let bases = if relocatable { elf::section_bases(symbols) } else { Vec::new() };
            for s in symbols.symbols() {
                let k = thunk::of_name(s.name_bytes().unwrap_or(b""));
                if k != 0 && !s.is_undefined() {
                    let base = s.section_index().and_then(|i| bases.get(i.0)).copied().unwrap_or(0);
                    dec.add_thunk(s.address().wrapping_add(base), k);
                }
            }
        }
        if dec.isa == Isa::Arm {
            dec.arm_map = arm_mapping(symbols, relocatable);
        }
        if relocatable {
            dec.relocs = branch_relocs(file, dec.isa, strings);
        }
        Ok(dec)
    }

    /// Calls `f` for every instruction of `bytes` (which start at `address`), in order;
    /// undecodable bytes come as [`kind::ERROR`].
    pub fn walk(&self, bytes: &[u8], address: u64, mut f: impl FnMut(&Insn)) {
        match self.isa {
            Isa::X86 { bits } => x86::walk(self, bits, bytes, address, &mut f),
            Isa::Aarch64 => aarch64::walk(self, bytes, address, &mut f),
            Isa::Ppc { big_endian, .. } => ppc::walk(self, big_endian, bytes, address, &mut f),
            Isa::Riscv { xlen } => riscv::walk(self, xlen, bytes, address, &mut f),
            Isa::S390 => s390::walk(self, bytes, address, &mut f),
            Isa::Arm => arm::walk(self, bytes, address, &mut f),
        }
    }

    /// Every instruction of `bytes`.
    pub fn decode(&self, bytes: &[u8], address: u64) -> Vec<Insn> {
        let mut out = Vec::with_capacity(bytes.len() / 4);
        self.walk(bytes, address, |i| out.push(*i));
        out
    }

    /// The text of each of `insns`, decoded from `bytes` (which start at `address`).
    pub fn texts(&self, bytes: &[u8], address: u64, insns: &[Insn]) -> Vec<String> {
        let p = text::Printer::new(self.isa);
        insns.iter().map(|i| p.text(bytes.get((i.address - address) as usize..).unwrap_or(&[]), i)).collect()
    }

    /// The ppc64 ELFv2 global entry sequence at the start of `bytes`: the local entry offset.
    pub fn local_entry(&self, bytes: &[u8]) -> Option<u32> {
        match self.isa {
            Isa::Ppc { big_endian, bits64: true } => ppc::local_entry(bytes, big_endian),
            _ => None,
        }
    }

    fn thunk_at(&self, target: u64) -> u8 {
        if self.thunks.is_empty() {
            0
        } else {
            self.thunks.get(&target).copied().unwrap_or(0)
        }
    }

    /// The branch relocation whose field lies in `[start, end)`, if any.
    fn reloc_in(&self, start: u64, end: u64) -> Option<&Reloc> {
        if self.relocs.is_empty() {
            return None;
        }
        let i = self.relocs.partition_point(|r| r.at < start);
        self.relocs.get(i).filter(|r| r.at < end)
    }

    /// Applies a relocation of `[start, end)` to a direct branch's class: the resolved
    /// target, or EXTERNAL with the symbol's name. Returns the name index.
    ///
    /// The relocated field lies in `[field_from, end)`; `end` is the instruction's end.
    fn relocate(&self, c: &mut Class, field_from: u64, end: u64) -> u32 {
        let Some(r) = self.reloc_in(field_from, end) else { return 0 };
        if r.name != 0 {
            c.target = NO_TARGET;
            c.extra |= flag::EXTERNAL;
        } else if r.pc_field {
            c.target = r.value.wrapping_add(end.wrapping_sub(r.at));
        } else {
            c.target = r.value;
        }
        if r.thunk != 0 {
            self.apply_thunk(c, r.thunk);
        }
        r.name
    }

    /// x86: a jump or call to a thunk becomes a return or an indirect branch.
    fn apply_thunk(&self, c: &mut Class, k: u8) {
        match (c.kind, k) {
            (kind::JUMP, thunk::RETURN) => {
                c.kind = kind::RETURN;
                c.extra |= flag::THUNK;
            }
            (kind::JUMP, thunk::INDIRECT) => {
                c.kind = kind::JUMP_INDIRECT;
                c.extra |= flag::THUNK;
            }
            (kind::CALL_DIRECT, thunk::INDIRECT) => {
                c.kind = kind::CALL_INDIRECT;
                c.extra |= flag::THUNK;
            }
            _ => {}
        }
    }
}

/// 32-bit ARM: where A32, Thumb and literal data start, by the ELF mapping symbols (`$a`,
/// `$t`, `$d`, perhaps with a `.suffix`), sorted by address. Without them, the function
/// symbols stand in: an odd value is Thumb code at the even address below it.
fn arm_mapping(symbols: &object::File, relocatable: bool) -> Vec<(u64, u8)> {
    let bases = if relocatable { elf::section_bases(symbols) } else { Vec::new() };
    let base = |s: &object::Symbol| s.section_index().and_then(|i| bases.get(i.0)).copied().unwrap_or(0);
    let mut map: Vec<(u64, u8)> = symbols
        .symbols()
        .filter_map(|s| {
            let n = s.name_bytes().ok()?;
            let mode = match n {
                [b'$', m @ (b'a' | b't' | b'd'), rest @ ..] if rest.is_empty() || rest[0] == b'.' => *m,
                _ => return None,
            };
            Some((s.address().wrapping_add(base(&s)), mode))
        })
        .collect();
    if map.is_empty() {
        map = symbols
            .symbols()
            .filter(|s| s.kind() == object::SymbolKind::Text && !s.is_undefined())
            .map(|s| {
                let a = s.address().wrapping_add(base(&s));
                if a & 1 == 1 {
                    (a - 1, arm::MODE_THUMB)
                } else {
                    (a, arm::MODE_ARM)
                }
            })
            .collect();
    }
    map.sort_unstable();
    map.dedup_by_key(|m| m.0);
    map
}

/// The branch relocations of a relocatable object, sorted by field address.
fn branch_relocs<'d>(file: &object::File<'d>, isa: Isa, strings: &mut Strings<'d>) -> Vec<Reloc> {
    use object::elf::*;
    use object::RelocationFlags;
    let bases = elf::section_bases(file);
    let mut out = Vec::new();
    for section in file.sections() {
        if section.kind() != object::SectionKind::Text {
            continue;
        }
        let base = bases.get(section.index().0).copied().unwrap_or(0);
        let data = section.data().unwrap_or(&[]);
        for r in elf::reloc::relocations(file, &section, &bases) {
            let RelocationFlags::Elf { r_type } = r.rel.flags() else { continue };
            let (wanted, pc_field) = match isa {
                Isa::X86 { bits: 64 } => (matches!(r_type, R_X86_64_PC32 | R_X86_64_PLT32), true),
                Isa::X86 { .. } => (matches!(r_type, R_386_PC32 | R_386_PLT32), true),
                Isa::Aarch64 => (
                    matches!(r_type, R_AARCH64_JUMP26 | R_AARCH64_CALL26 | R_AARCH64_CONDBR19 | R_AARCH64_TSTBR14),
                    false,
                ),
                Isa::Ppc { .. } => (
                    matches!(
                        r_type,
                        R_PPC64_REL24
                            | R_PPC64_REL14
                            | R_PPC64_REL14_BRTAKEN
                            | R_PPC64_REL14_BRNTAKEN
                            | RelocationType(116) /* R_PPC64_REL24_NOTOC */
                    ),
                    false,
                ),
                // The field holds (S + A - P) / 2 with P the field, 2 bytes into the instruction.
                Isa::S390 => (matches!(r_type, R_390_PC16DBL | R_390_PLT16DBL | R_390_PC32DBL | R_390_PLT32DBL), false),
                Isa::Arm => (
                    matches!(r_type, R_ARM_CALL | R_ARM_JUMP24 | R_ARM_PC24 | R_ARM_THM_PC22 | R_ARM_THM_JUMP24),
                    false,
                ),
                Isa::Riscv { .. } => (
                    matches!(
                        r_type,
                        R_RISCV_BRANCH
                            | R_RISCV_JAL
                            | R_RISCV_CALL
                            | R_RISCV_CALL_PLT
                            | R_RISCV_RVC_BRANCH
                            | R_RISCV_RVC_JUMP
                    ),
                    false,
                ),
            };
            if !wanted {
                continue;
            }
            let addend = r.addend(data, file.is_little_endian());
            let (value, name) =
                if r.undefined { (0, strings.intern_str(r.name)) } else { (r.s.wrapping_add(addend as u64), 0) };
            // s390: the branch goes to S + A - P relative to the instruction, 2 bytes before P.
            let value = if isa == Isa::S390 && name == 0 { value.wrapping_sub(2) } else { value };
            // Only x86 has thunks; a section (no name) is none.
            let thunk = if matches!(isa, Isa::X86 { .. }) { thunk::of_name(r.name) } else { 0 };
            out.push(Reloc { at: base.wrapping_add(r.offset), value, pc_field, name, thunk });
        }
    }
    out.sort_by_key(|r| r.at);
    out
}

/// One range's bytes: `bytes` may be shorter than `high - low` (see `status`).
#[derive(Clone, Copy, Debug)]
pub struct Code<'a> {
    pub low: u64,
    pub high: u64,
    pub bytes: &'a [u8],
    pub status: u8,
}

/// One row of `code_ranges`, apart from the function id and the bounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RangeFacts {
    pub insns: u32,
    pub errors: u32,
    /// Offset from `low` of the first undecodable byte, or `u64::MAX`.
    pub first_bad: u64,
    pub status: u8,
}

/// One row of `code_events`, apart from the function id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Event {
    pub address: u64,
    pub size: u8,
    pub kind: u8,
    pub target: u64,
    pub extra: u32,
    pub name: u32,
}

impl Event {
    fn of(i: &Insn, kind: u8) -> Self {
        Event { address: i.address, size: i.size, kind, target: i.target, extra: i.extra, name: i.name }
    }
}

/// The events of one function, given all its ranges (the entry range first), appended to
/// `events` in range order and by address within a range.
pub fn function_events(dec: &Decoder, parts: &[Code], events: &mut Vec<Event>) -> Vec<RangeFacts> {
    let Some(first) = parts.first() else { return Vec::new() };
    let entry = first.low;
    let local = dec.local_entry(first.bytes);
    if let Some(off) = local {
        events.push(Event {
            address: entry,
            size: off as u8,
            kind: kind::LOCAL_ENTRY,
            target: entry + u64::from(off),
            extra: off,
            name: 0,
        });
    }
    let local_target = local.map(|o| entry + u64::from(o));
    let inside = |t: u64| parts.iter().any(|p| p.low <= t && t < p.high);
    let mut out = Vec::with_capacity(parts.len());
    for (n, part) in parts.iter().enumerate() {
        let mut facts = RangeFacts { first_bad: u64::MAX, status: part.status, ..Default::default() };
        // Entry NOPs: after an optional landing pad and the ppc64 TOC setup.
        let mut nops = EntryNops {
            phase: if n == 0 { 0 } else { 2 },
            skip_to: local_target.unwrap_or(entry),
            ..Default::default()
        };
        dec.walk(part.bytes, part.low, |i| {
            if i.kind == kind::ERROR {
                facts.errors += 1;
                if facts.first_bad == u64::MAX {
                    facts.first_bad = i.address - part.low;
                }
                return;
            }
            facts.insns += 1;
            if nops.phase < 2 {
                nops.step(i, entry, events);
            }
            let k = match i.kind {
                kind::OTHER | kind::NOP => return,
                kind::JUMP => {
                    if i.extra & flag::EXTERNAL == 0 && (i.target == entry || Some(i.target) == local_target) {
                        kind::JUMP_TO_ENTRY
                    } else if i.extra & flag::EXTERNAL != 0 || !inside(i.target) {
                        kind::TAIL_JUMP_DIRECT
                    } else {
                        return;
                    }
                }
                kind::JUMP_INDIRECT => kind::TAIL_JUMP_INDIRECT,
                k => k,
            };
            events.push(Event::of(i, k));
        });
        nops.finish(events);
        out.push(facts);
    }
    out
}

#[derive(Default)]
struct EntryNops {
    /// 0: a landing pad may come; 1: counting NOPs; 2: done.
    phase: u8,
    skip_to: u64,
    start: u64,
    bytes: u32,
    count: u32,
}

impl EntryNops {
    fn step(&mut self, i: &Insn, entry: u64, events: &mut Vec<Event>) {
        if i.address < self.skip_to {
            return;
        }
        if self.phase == 0 {
            self.phase = 1;
            if i.kind == kind::ENDBR && i.address == entry {
                return;
            }
        }
        if i.kind == kind::NOP {
            if self.count == 0 {
                self.start = i.address;
            }
            self.count += 1;
            self.bytes += u32::from(i.size);
        } else {
            self.finish(events);
        }
    }

    fn finish(&mut self, events: &mut Vec<Event>) {
        if self.phase == 1 && self.count > 0 {
            events.push(Event {
                address: self.start,
                size: self.bytes.min(255) as u8,
                kind: kind::ENTRY_NOPS,
                target: NO_TARGET,
                extra: self.count,
                name: 0,
            });
        }
        self.phase = 2;
    }
}

/// Reads native-endian `u64`s (NumPy's `tobytes()` of a `uint64` array).
pub fn u64s_from_bytes(b: &[u8]) -> Result<Vec<u64>> {
    if b.len() % 8 != 0 {
        return Err(Error::new(format!("{} bytes is not a whole number of u64 values", b.len())));
    }
    Ok(b.chunks_exact(8).map(|c| u64::from_ne_bytes(c.try_into().expect("8 bytes"))).collect())
}

/// A binary parsed for decoding: the file, and its debug file when the file has no symbols
/// of its own (a stripped binary's code is named by the debug file's).
pub struct Opened<'d> {
    pub path: &'d Path,
    pub file: object::File<'d>,
    pub debug: Option<object::File<'d>>,
}

impl<'d> Opened<'d> {
    pub fn symbols(&self) -> &object::File<'d> {
        self.debug.as_ref().unwrap_or(&self.file)
    }
}

/// The function-range columns every code query takes must be of one length.
pub(crate) fn check_ranges(ids: &[u64], lows: &[u64], highs: &[u64]) -> Result<()> {
    if ids.len() == lows.len() && ids.len() == highs.len() {
        return Ok(());
    }
    Err(Error::new(format!(
        "function_ids, lows and highs differ in length ({}, {}, {})",
        ids.len(),
        lows.len(),
        highs.len()
    )))
}

/// `code_ranges` and `code_events` for the function ranges `(ids[i], lows[i], highs[i])`
/// of a binary.
///
/// All ranges of one function (an out-of-line instance with its `.cold` part, say) share an
/// id; the first of them given is its entry. A jump is a tail jump when it leaves all of
/// them. `code_ranges` has one row per range, in the order given; `code_events` is ordered
/// by function id, then by the ranges' order, then by address.
pub fn facts(o: &Opened, ids: &[u64], lows: &[u64], highs: &[u64]) -> Result<Scan> {
    check_ranges(ids, lows, highs)?;
    let mut strings = Strings::default();
    let dec = Decoder::for_file(&o.file, o.symbols(), &mut strings)?;
    let img = Image::new(&o.file);

    // Functions: the input rows grouped by id, each group in input order.
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| ids[i as usize]);
    let mut groups: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < order.len() {
        let id = ids[order[at] as usize];
        let end = at + order[at..].partition_point(|&i| ids[i as usize] == id);
        groups.push((at, end));
        at = end;
    }

    struct Part {
        rows: Vec<(u32, RangeFacts)>,
        events: Table,
    }
    let parts: Vec<Part> = groups
        .par_chunks(64)
        .map(|chunk| {
            let mut rows = Vec::new();
            let mut ev: Vec<Event> = Vec::new();
            let mut ev_ids: Vec<u64> = Vec::new();
            for &(a, b) in chunk {
                let members = &order[a..b];
                let id = ids[members[0] as usize];
                let code: Vec<Code> = members.iter().map(|&r| img.code(lows[r as usize], highs[r as usize])).collect();
                let mark = ev.len();
                let got = catch_unwind(AssertUnwindSafe(|| function_events(&dec, &code, &mut ev)));
                match got {
                    Ok(facts) => rows.extend(members.iter().copied().zip(facts)),
                    Err(_) => {
                        ev.truncate(mark);
                        rows.extend(members.iter().zip(&code).map(|(&r, c)| {
                            (
                                r,
                                RangeFacts {
                                    first_bad: u64::MAX,
                                    status: c.status | status::INTERNAL,
                                    ..Default::default()
                                },
                            )
                        }));
                    }
                }
                ev_ids.resize(ev.len(), id);
            }
            Part { rows, events: events_table(ev_ids, &ev) }
        })
        .collect();

    let n = ids.len();
    let mut facts = vec![RangeFacts::default(); n];
    let mut events = events_table(Vec::new(), &[]);
    for p in parts {
        for (r, f) in p.rows {
            facts[r as usize] = f;
        }
        events.append(p.events);
    }
    let ranges = Table::new(vec![
        ("function_id", Chunk::U64(ids.to_vec())),
        ("low", Chunk::U64(lows.to_vec())),
        ("high", Chunk::U64(highs.to_vec())),
        ("insn_count", Chunk::U32(facts.iter().map(|f| f.insns).collect())),
        ("decode_errors", Chunk::U32(facts.iter().map(|f| f.errors).collect())),
        ("first_bad_offset", Chunk::U64(facts.iter().map(|f| f.first_bad).collect())),
        ("status", Chunk::U8(facts.iter().map(|f| f.status).collect())),
    ]);
    let info = vec![
        ("path", o.path.display().to_string()),
        ("arch", elf::arch_name(&o.file).to_string()),
        ("ranges", n.to_string()),
        ("functions", groups.len().to_string()),
        ("events", events.rows().to_string()),
    ];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("code_ranges", ranges), ("code_events", events)], string_offsets, string_data })
}

fn events_table(ids: Vec<u64>, ev: &[Event]) -> Table {
    Table::new(vec![
        ("function_id", Chunk::U64(ids)),
        ("address", Chunk::U64(ev.iter().map(|e| e.address).collect())),
        ("size", Chunk::U8(ev.iter().map(|e| e.size).collect())),
        ("kind", Chunk::U8(ev.iter().map(|e| e.kind).collect())),
        ("target", Chunk::U64(ev.iter().map(|e| e.target).collect())),
        ("extra", Chunk::U32(ev.iter().map(|e| e.extra).collect())),
        ("target_name", Chunk::Str(ev.iter().map(|e| e.name).collect())),
    ])
}

/// The `insns` table of `[low, high)`: every instruction with its kind and text.
pub fn instructions(o: &Opened, low: u64, high: u64) -> Result<Scan> {
    if Image::new(&o.file).code(low, high).status & status::NO_BYTES != 0 {
        return Err(Error::new(format!("{}: no section holds code at {low:#x}", o.path.display())));
    }
    instructions_of(o, &[low], &[high])
}

/// The `insns` table of many ranges at once, each decoded from its low end, with the index of
/// its range in column `range`: the decoder (symbols, thunks, relocations) is built once, which
/// costs more than decoding one function. A range no section holds gives no row.
pub fn instructions_of(o: &Opened, lows: &[u64], highs: &[u64]) -> Result<Scan> {
    let mut strings = Strings::default();
    let dec = Decoder::for_file(&o.file, o.symbols(), &mut strings)?;
    let img = Image::new(&o.file);
    let (mut insns, mut text, mut range) = (Vec::new(), Vec::new(), Vec::new());
    for (r, (&low, &high)) in lows.iter().zip(highs).enumerate() {
        let code = img.code(low, high);
        if code.status & status::NO_BYTES != 0 {
            continue;
        }
        let found = dec.decode(code.bytes, low);
        text.extend(dec.texts(code.bytes, low, &found).into_iter().map(|s| strings.intern_owned(s.into_bytes())));
        range.extend(std::iter::repeat_n(r as u32, found.len()));
        insns.extend(found);
    }
    let table = Table::new(vec![
        ("address", Chunk::U64(insns.iter().map(|i| i.address).collect())),
        ("size", Chunk::U8(insns.iter().map(|i| i.size).collect())),
        ("kind", Chunk::U8(insns.iter().map(|i| i.kind).collect())),
        ("target", Chunk::U64(insns.iter().map(|i| i.target).collect())),
        ("extra", Chunk::U32(insns.iter().map(|i| i.extra).collect())),
        ("text", Chunk::Str(text)),
        ("target_name", Chunk::Str(insns.iter().map(|i| i.name).collect())),
        ("range", Chunk::U32(range)),
    ]);
    let info = vec![("path", o.path.display().to_string()), ("arch", elf::arch_name(&o.file).to_string())];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("insns", table)], string_offsets, string_data })
}

/// Sign-extends the low `bits` bits of `v`.
#[inline]
pub(crate) fn sext(v: u32, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((u64::from(v) << shift) as i64) >> shift
}

/// The instruction word at the start of `b` (a fixed-width ISA's, in its byte order).
fn word(b: &[u8], big_endian: bool) -> Option<u32> {
    let b: [u8; 4] = b.get(..4)?.try_into().ok()?;
    Some(if big_endian { u32::from_be_bytes(b) } else { u32::from_le_bytes(b) })
}

/// Bits of `probe_sites.status`.
pub mod site_status {
    consts! {
        /// No section with file bytes holds the decoding start.
        pub const NO_BYTES: u8 = 1;
        /// Bytes between the start and the address decode to no instruction: the walk cannot
        /// tell where instructions are (x86 `can_probe` gives up the same way).
        pub const DECODE_ERROR: u8 = 2;
        /// The start lies after the address.
        pub const BAD_START: u8 = 4;
    }
}

/// For each `(start, address)`: the instruction that holds `address` when decoding linearly
/// from `start`, as the kernel's x86 `can_probe` walks from the containing kallsyms symbol.
///
/// Table `probe_sites`, one row per pair in the order given: `address`, `insn` (where that
/// instruction starts: `address` itself exactly when it is an instruction boundary; NO_TARGET
/// when not reached), `size`, `kind` and `extra` as in `insns`, `bytes0`/`bytes1` (its first
/// 16 bytes, little-endian, zero past its end or the section's), `status` ([`site_status`])
/// and, on x86 (else 0), the opcode as the kernel's decoder lays it out: `op`, `op2`, `modrm`,
/// `addr32`, `vex` (see `x86::Layout`).
pub fn probe_sites(o: &Opened, starts: &[u64], addresses: &[u64]) -> Result<Scan> {
    if starts.len() != addresses.len() {
        return Err(Error::new(format!(
            "starts and addresses differ in length ({}, {})",
            starts.len(),
            addresses.len()
        )));
    }
    let mut strings = Strings::default();
    let dec = Decoder::for_file(&o.file, o.symbols(), &mut strings)?;
    let img = Image::new(&o.file);

    // One linear walk per start, over its addresses in increasing order.
    let mut order: Vec<usize> = (0..starts.len()).collect();
    order.sort_by_key(|&i| (starts[i], addresses[i]));
    let groups: Vec<&[usize]> = order.chunk_by(|&a, &b| starts[a] == starts[b]).collect();
    let found: Vec<Vec<(usize, SiteInsn)>> = groups
        .par_iter()
        .map(|rows| {
            let wanted: Vec<u64> = rows.iter().map(|&r| addresses[r]).collect();
            let got = walk_to(&dec, &img, starts[rows[0]], &wanted);
            rows.iter().copied().zip(got).collect()
        })
        .collect();
    let mut sites = vec![SiteInsn::default(); starts.len()];
    for (r, s) in found.into_iter().flatten() {
        sites[r] = s;
    }
    let layouts: Vec<x86::Layout> = match dec.isa {
        Isa::X86 { bits } => sites.iter().map(|s| x86::layout(&le_bytes(s.bytes), bits)).collect(),
        _ => vec![x86::Layout::default(); sites.len()],
    };
    let table = Table::new(vec![
        ("address", Chunk::U64(addresses.to_vec())),
        ("insn", Chunk::U64(sites.iter().map(|s| s.insn).collect())),
        ("size", Chunk::U8(sites.iter().map(|s| s.size).collect())),
        ("kind", Chunk::U8(sites.iter().map(|s| s.kind).collect())),
        ("extra", Chunk::U32(sites.iter().map(|s| s.extra).collect())),
        ("bytes0", Chunk::U64(sites.iter().map(|s| s.bytes[0]).collect())),
        ("bytes1", Chunk::U64(sites.iter().map(|s| s.bytes[1]).collect())),
        ("op", Chunk::U8(layouts.iter().map(|l| l.op).collect())),
        ("op2", Chunk::U8(layouts.iter().map(|l| l.op2).collect())),
        ("modrm", Chunk::U8(layouts.iter().map(|l| l.modrm).collect())),
        ("addr32", Chunk::U8(layouts.iter().map(|l| u8::from(l.addr32)).collect())),
        ("vex", Chunk::U8(layouts.iter().map(|l| u8::from(l.vex)).collect())),
        ("status", Chunk::U8(sites.iter().map(|s| s.status).collect())),
    ]);
    let info = vec![("path", o.path.display().to_string()), ("arch", elf::arch_name(&o.file).to_string())];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("probe_sites", table)], string_offsets, string_data })
}

/// One row of `probe_sites`, apart from the address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SiteInsn {
    pub insn: u64,
    pub size: u8,
    pub kind: u8,
    pub extra: u32,
    pub bytes: [u64; 2],
    pub status: u8,
}

impl Default for SiteInsn {
    fn default() -> Self {
        SiteInsn { insn: NO_TARGET, size: 0, kind: kind::ERROR, extra: 0, bytes: [0; 2], status: 0 }
    }
}

/// Decodes from `start` to past the last of `wanted` (sorted): the instruction holding each.
pub fn walk_to(dec: &Decoder, img: &Image, start: u64, wanted: &[u64]) -> Vec<SiteInsn> {
    let mut out = vec![SiteInsn::default(); wanted.len()];
    let Some(&last) = wanted.last() else { return out };
    let code = img.code(start, last.saturating_add(16));
    if code.status & status::NO_BYTES != 0 {
        out.iter_mut().for_each(|s| s.status = site_status::NO_BYTES);
        return out;
    }
    let mut next = wanted.partition_point(|&a| a < start);
    out[..next].iter_mut().for_each(|s| s.status = site_status::BAD_START);
    let mut broken = false;
    dec.walk(code.bytes, start, |i| {
        let end = i.address.saturating_add(u64::from(i.size.max(1)));
        while next < wanted.len() && wanted[next] < end {
            let from = (i.address - start) as usize;
            out[next] = SiteInsn {
                insn: i.address,
                size: i.size,
                kind: i.kind,
                extra: i.extra,
                bytes: first_bytes(&code.bytes[from..], usize::from(i.size)),
                status: if broken { site_status::DECODE_ERROR } else { 0 },
            };
            next += 1;
        }
        broken |= i.kind == kind::ERROR;
    });
    // Past the end of the section's bytes.
    out[next..].iter_mut().for_each(|s| s.status = site_status::NO_BYTES);
    out
}

/// The 16 bytes of `probe_sites.bytes0`/`bytes1`.
fn le_bytes(words: [u64; 2]) -> [u8; 16] {
    let mut out = [0u8; 16];
    out[..8].copy_from_slice(&words[0].to_le_bytes());
    out[8..].copy_from_slice(&words[1].to_le_bytes());
    out
}

fn first_bytes(bytes: &[u8], size: usize) -> [u64; 2] {
    let mut buf = [0u8; 16];
    let n = size.min(16).min(bytes.len());
    buf[..n].copy_from_slice(&bytes[..n]);
    [u64::from_le_bytes(buf[..8].try_into().expect("8")), u64::from_le_bytes(buf[8..].try_into().expect("8"))]
}

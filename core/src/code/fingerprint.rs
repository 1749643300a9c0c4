//! Code fingerprints: a checksum of each function range that stays the same when the code
//! only moved.
//!
//! klp-build (`objtool klp checksum`, Linux 6.19) tells a changed function from an unchanged
//! one by hashing its instructions with every relocated field replaced by what it refers to:
//! a call to `foo` hashes as "call foo", wherever `foo` was placed. This module does the same
//! on the binary patchscope reads. In a relocatable object (`.o`, `.ko`) the relocations say
//! which fields refer to what. In a linked binary they are gone, so the fields are found by
//! decoding: every PC-relative branch target and data reference that leaves the range; every
//! absolute address (x86 immediates and displacements that fall inside the image of an
//! `ET_EXEC` file, such as the kernel's `mov $sym,%rdi`); the x86-64 kernel's per-CPU offsets
//! (`%gs:var`, `mov $var,%reg`); the aarch64 `adrp` + `:lo12:`, riscv `auipc` + `%pcrel_lo` and
//! ppc64 TOC-relative (`addis rX,r2` + `ld`/`addi`) pairs. Each such field is cleared and
//! replaced by the symbol it points into — its name without the numbers the compiler adds
//! (`foo.isra.3` hashes as `foo.isra`, `__UNIQUE_ID_ddebug312` as `__UNIQUE_ID_ddebug`) — and
//! the offset; by `foo@plt` or `foo@got` for the PLT stubs and GOT slots of dynamic linking;
//! by the contents of the string literal it points to when no symbol covers it; or by
//! nothing. A branch inside the range keeps its bytes: they are relative, so they only change
//! when the code between does.
//!
//! Left out of the hash, because they change without the function changing: NOPs at the entry
//! (ftrace's patched `call __fentry__`, `-fpatchable-function-entry`), a call to `__fentry__`
//! or `_mcount` anywhere, the ppc64 global-entry TOC setup (its immediates are the distance to
//! `.TOC.`), and NOPs at the end of a range (alignment padding).
//!
//! Each ISA's module finds the fields of its instructions, beside its classifier
//! (`x86::fields`, `aarch64::fields`, `ppc::fields`, `riscv::fields`); this module decides what
//! each becomes, and hashes.
//!
//! Written here rather than taken from a library: no crate normalizes machine code for
//! comparison across builds, and objtool's checksum needs the relocations a linked file lacks.

use object::{Object, ObjectSection, ObjectSymbol, RelocationKind, SymbolKind};
use rayon::prelude::*;
use rustc_hash::FxHashSet;

use super::{aarch64, kind, ppc, riscv, s390, word, x86, Code, Decoder, Image, Insn, Isa, Opened};
use crate::elf;
use crate::error::{Error, Result};
use crate::table::{Chunk, Scan, Strings, Table};

/// How a field of an instruction was normalized: the `how` column of `normal_form`.
pub mod how {
    consts! {
        /// Kept as encoded: a branch inside the range, or a constant that is no address.
        pub const RAW: u8 = 0;
        /// Cleared, and replaced by the symbol it points into (clone numbers dropped) + offset.
        pub const SYMBOL: u8 = 1;
        /// Cleared, and replaced by its offset from the range's start (a relocation that points
        /// back into the range itself).
        pub const LOCAL: u8 = 2;
        /// Cleared, and replaced by the contents of the string literal it points to.
        pub const STRING: u8 = 3;
        /// Cleared, nothing in its place (an `adrp` page, or an address no symbol covers).
        pub const MASKED: u8 = 4;
        /// The whole instruction is left out of the hash (entry NOPs, `call __fentry__`,
        /// trailing padding).
        pub const SKIPPED: u8 = 5;
    }
}

/// The longest string literal whose contents are hashed; a longer one is only masked.
const MAX_STRING: u64 = 64;

/// What a position-dependent field of an instruction holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Value {
    /// A PC-relative target (branch, RIP-relative operand, `adr`): relative, so kept as
    /// encoded when it stays inside the range.
    Pc(u64),
    /// A full address put together from a pair (`adrp` + `:lo12:`, `auipc` + `%pcrel_lo`).
    Addr(u64),
    /// An x86 immediate or absolute displacement: an address only if it falls in the image.
    Imm(u64),
    /// An x86-64 kernel per-CPU variable: a `%gs:` displacement, or the `mov $var,%reg` of
    /// `this_cpu_ptr()` — an offset into `.data..percpu` (linked at 0). Resolved only inside
    /// it; outside it is a plain number.
    Percpu(u64),
    /// Cleared with nothing in its place: the page of an `adrp`, the high part of an
    /// `auipc`, the ppc64 TOC setup — the instruction that completes the pair names the target.
    Hidden,
}

/// One field: the bits it occupies (x86: bit *n* = byte *n* of the instruction; fixed-width
/// ISAs: the bits of the instruction word) and what it holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Field {
    pub mask: u32,
    pub value: Value,
}

impl Default for Field {
    fn default() -> Self {
        Field { mask: 0, value: Value::Hidden }
    }
}

/// Up to `N` items without a heap allocation: the fields and the tokens of one instruction
/// (an x86 instruction has at most a displacement and an immediate; a relocation or two).
#[derive(Clone, Copy, Debug)]
pub(super) struct Few<T: Copy, const N: usize> {
    items: [T; N],
    len: usize,
}

impl<T: Copy + Default, const N: usize> Default for Few<T, N> {
    fn default() -> Self {
        Few { items: [T::default(); N], len: 0 }
    }
}

impl<T: Copy + Default, const N: usize> Few<T, N> {
    pub fn of(item: T) -> Self {
        let mut f = Self::default();
        f.push(item);
        f
    }

    /// Appends `item`; beyond `N` items the rest are dropped (no instruction has that many).
    pub fn push(&mut self, item: T) {
        if self.len < N {
            self.items[self.len] = item;
            self.len += 1;
        }
    }

    pub(super) fn as_slice(&self) -> &[T] {
        &self.items[..self.len]
    }
}

/// The fields of one instruction, as each ISA's `fields` finds them.
pub(super) type Fields = Few<Field, 2>;

/// Register state of the pairs that build an address in two instructions: the value an
/// `adrp`, `auipc` or TOC `addis` left in each register, until the register is written again.
#[derive(Default)]
pub(super) struct Pairs {
    pub high: [Option<u64>; 32],
}

/// What replaces a cleared field in the hashed stream.
#[derive(Clone, Copy, Debug, Default)]
enum Token<'d> {
    #[default]
    Raw,
    Symbol {
        hash: u32,
        name: &'d [u8],
        offset: i64,
    },
    Local(u64),
    Str(u32),
    Masked,
}

impl Token<'_> {
    fn how(&self) -> u8 {
        match self {
            Token::Raw => how::RAW,
            Token::Symbol { .. } => how::SYMBOL,
            Token::Local(_) => how::LOCAL,
            Token::Str(_) => how::STRING,
            Token::Masked => how::MASKED,
        }
    }

    /// Appends the token to the hashed stream, after the instruction's bytes (a tag byte
    /// first, which says what kind of token follows).
    fn write(&self, buf: &mut Vec<u8>) {
        match *self {
            Token::Raw => {}
            Token::Symbol { hash, offset, .. } => {
                buf.push(0xF1);
                buf.extend_from_slice(&hash.to_le_bytes());
                buf.extend_from_slice(&offset.to_le_bytes());
            }
            Token::Local(off) => {
                buf.push(0xF2);
                buf.extend_from_slice(&off.to_le_bytes());
            }
            Token::Str(crc) => {
                buf.push(0xF3);
                buf.extend_from_slice(&crc.to_le_bytes());
            }
            Token::Masked => buf.push(0xF4),
        }
    }
}

fn shape_hash(name: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    for part in elf::clone_shape_parts(name) {
        h.update(part);
    }
    h.finalize()
}

/// `__fentry__` (x86 `-mfentry`) and the `mcount` spellings of `-pg` on the other ISAs.
fn is_ftrace_call(name: &[u8]) -> bool {
    matches!(name, b"__fentry__" | b"mcount" | b"_mcount" | b"__mcount")
}

/// One symbol a field may point into.
struct Sym<'d> {
    address: u64,
    size: u64,
    hash: u32,
    name: &'d [u8],
}

/// Which of the symbols at one address names it, smallest first: (zero-sized, untyped,
/// local, name length).
type Rank = (bool, bool, bool, usize);

/// The file's symbols by address, one per address (the one a person would name: sized
/// before zero-sized, functions and objects before untyped labels, global before local,
/// then the shortest name).
struct Symbols<'d> {
    by_address: Vec<Sym<'d>>,
    /// Their addresses alone: the binary search stays in fewer cache lines.
    addresses: Vec<u64>,
}

impl<'d> Symbols<'d> {
    fn new(file: &object::File<'d>) -> Self {
        let bases = elf::section_bases(file);
        let relocatable = file.kind() == object::ObjectKind::Relocatable;
        let mut all: Vec<(u64, Rank, Sym<'d>)> = Vec::new();
        for s in file.symbols() {
            let Some(section) = s.section_index() else { continue };
            let Ok(name) = s.name_bytes() else { continue };
            // aarch64/arm/riscv mapping symbols ($x, $d) and assembler-local labels name no code.
            if name.is_empty() || name[0] == b'$' || name.starts_with(b".L") {
                continue;
            }
            let typed = match s.kind() {
                SymbolKind::Text | SymbolKind::Data | SymbolKind::Tls => true,
                SymbolKind::Unknown | SymbolKind::Label => false,
                _ => continue,
            };
            let base = if relocatable { bases.get(section.0).copied().unwrap_or(0) } else { 0 };
            let address = s.address().wrapping_add(base);
            let rank = (s.size() == 0, !typed, !s.is_global(), name.len());
            all.push((address, rank, Sym { address, size: s.size(), hash: shape_hash(name), name }));
        }
        all.sort_unstable_by(|a, b| (a.0, a.1, a.2.name).cmp(&(b.0, b.1, b.2.name)));
        all.dedup_by_key(|e| e.0);
        Symbols::sorted(all.into_iter().map(|e| e.2).collect())
    }

    fn sorted(by_address: Vec<Sym<'d>>) -> Self {
        let addresses = by_address.iter().map(|s| s.address).collect();
        Symbols { by_address, addresses }
    }

    /// The symbol whose extent holds `t` (or a zero-sized one exactly at `t`), nearest first.
    fn containing(&self, t: u64) -> Option<&Sym<'d>> {
        let i = self.addresses.partition_point(|&a| a <= t);
        self.by_address[..i].iter().rev().take(16).find(|s| t - s.address < s.size.max(1))
    }
}

/// Names for what dynamic linking adds without symbols: GOT slots, named `foo@got` by their
/// `JUMP_SLOT`/`GLOB_DAT` relocation, and PLT stubs, `foo@plt` (as objdump names them).
/// Without them every call to a shared library would hash alike.
#[derive(Default)]
struct Dynamic {
    /// GOT slot address → (shape hash, name).
    slots: rustc_hash::FxHashMap<u64, (u32, Vec<u8>)>,
    /// Stub address → (shape hash, name).
    stubs: rustc_hash::FxHashMap<u64, (u32, Vec<u8>)>,
}

impl Dynamic {
    /// The GOT slots and PLT stubs of `file`; with `toc` (ppc64 ELFv2), the linker's call
    /// stubs in `.text` too.
    fn of(file: &object::File, isa: Isa, toc: Option<u64>) -> Self {
        let mut d = Dynamic::slots_and_plt(file, isa);
        if let Some(toc) = toc {
            d.ppc_stubs(file, &Image::new(file), toc);
        }
        d
    }

    fn slots_and_plt(file: &object::File, isa: Isa) -> Self {
        use object::elf::*;
        use object::RelocationFlags;
        let mut d = Dynamic::default();
        let mut jump_slots = Vec::new();
        for (slot, r, name) in elf::reloc::dynamic(file) {
            let RelocationFlags::Elf { r_type } = r.flags() else { continue };
            let jump = matches!(
                (isa, r_type),
                (Isa::X86 { .. }, R_X86_64_JUMP_SLOT)
                    | (Isa::Aarch64, R_AARCH64_JUMP_SLOT)
                    | (Isa::Riscv { .. }, R_RISCV_JUMP_SLOT)
                    | (Isa::Ppc { .. }, R_PPC64_JMP_SLOT)
            );
            let data = matches!(
                (isa, r_type),
                (Isa::X86 { .. }, R_X86_64_GLOB_DAT)
                    | (Isa::Aarch64, R_AARCH64_GLOB_DAT)
                    | (Isa::Ppc { .. }, R_PPC64_GLOB_DAT)
            );
            if jump || data {
                d.slots.insert(slot, named(name, b"@got"));
            }
            if jump {
                jump_slots.push((slot, name));
            }
        }
        match isa {
            Isa::X86 { bits } => {
                for plt in file.sections().filter(|s| s.name().is_ok_and(|n| n.starts_with(".plt"))) {
                    // `[endbr64;] [bnd] jmp *slot(%rip)`
                    x86::plt_stubs(bits, plt.address(), plt.data().unwrap_or(&[]), |stub, slot| {
                        d.name_stub(stub, slot)
                    });
                }
            }
            // aarch64 and riscv lazy PLTs: a 32-byte header, then one 16-byte stub per
            // JUMP_SLOT, in the order of their GOT slots.
            Isa::Aarch64 | Isa::Riscv { .. } => {
                if let Some(plt) = file.section_by_name(".plt") {
                    jump_slots.sort_unstable();
                    for (n, (_, name)) in jump_slots.iter().enumerate() {
                        d.stubs.insert(plt.address() + 32 + 16 * n as u64, named(name, b"@plt"));
                    }
                }
            }
            // 32-bit ARM PLT stubs (`add ip, pc …; ldr pc, …`) are not named yet
            Isa::Ppc { .. } | Isa::S390 | Isa::Arm => {}
        }
        d
    }

    /// ppc64 ELFv2 call stubs the linker puts in `.text`: each loads a PLT slot, which names
    /// it. They have no symbols; objdump makes up `<…plt_call.foo>` names for them the same way.
    fn ppc_stubs(&mut self, file: &object::File, img: &Image, toc: u64) {
        if self.slots.is_empty() {
            return;
        }
        let big_endian = !file.is_little_endian();
        for text in file.sections().filter(|s| s.kind() == object::SectionKind::Text) {
            let code = img.code(text.address(), text.address() + text.size());
            ppc::call_stubs(code.bytes, big_endian, toc, |offset, slot| self.name_stub(text.address() + offset, slot));
        }
    }

    /// Names the PLT stub at `stub` after the GOT slot it jumps through, if that is named.
    fn name_stub(&mut self, stub: u64, slot: u64) {
        if let Some((_, name)) = self.slots.get(&slot) {
            let name = name.strip_suffix(b"@got").unwrap_or(name);
            self.stubs.insert(stub, named(name, b"@plt"));
        }
    }
}

/// ppc64: the value of r2, to which data addresses are relative.
fn toc(symbols: &object::File, isa: Isa) -> Option<u64> {
    match isa {
        Isa::Ppc { bits64: true, .. } => ppc::toc(symbols),
        _ => None,
    }
}

fn named(name: &[u8], suffix: &[u8]) -> (u32, Vec<u8>) {
    let full = [name, suffix].concat();
    (shape_hash(&full), full)
}

/// What a relocation of a relocatable object points to.
#[derive(Clone, Copy, Debug)]
enum RelocTarget<'d> {
    /// S + A at the synthetic addresses of [`elf::section_bases`].
    Defined(u64),
    Undefined {
        name: &'d [u8],
        hash: u32,
        addend: i64,
    },
}

/// A relocation of a code section.
#[derive(Clone, Copy, Debug)]
struct Reloc<'d> {
    at: u64,
    len: u8,
    /// x86 PC-relative: the field holds S + A − P and the CPU adds the instruction's end, so
    /// the target is S + A + (end − P).
    pc_field: bool,
    target: RelocTarget<'d>,
}

/// Every relocation of the code sections, sorted by place.
fn code_relocs<'d>(file: &object::File<'d>, isa: Isa) -> Vec<Reloc<'d>> {
    use object::elf::*;
    use object::RelocationFlags;
    let bases = elf::section_bases(file);
    let x86 = matches!(isa, Isa::X86 { .. });
    let mut out = Vec::new();
    for section in file.sections().filter(|s| s.kind() == object::SectionKind::Text) {
        let base = bases.get(section.index().0).copied().unwrap_or(0);
        let data = section.data().unwrap_or(&[]);
        for r in elf::reloc::relocations(file, &section, &bases) {
            let RelocationFlags::Elf { r_type } = r.rel.flags() else { continue };
            // No relocation, and RISC-V's linker-relaxation markers, which change no bits.
            if r_type.0 == 0 || (matches!(isa, Isa::Riscv { .. }) && matches!(r_type, R_RISCV_RELAX | R_RISCV_ALIGN)) {
                continue;
            }
            let addend = r.addend(data, file.is_little_endian());
            let target = if r.undefined {
                RelocTarget::Undefined { name: r.name, hash: shape_hash(r.name), addend }
            } else {
                RelocTarget::Defined(r.s.wrapping_add(addend as u64))
            };
            let pc_field = x86
                && matches!(
                    r.rel.kind(),
                    RelocationKind::Relative | RelocationKind::PltRelative | RelocationKind::GotRelative
                );
            out.push(Reloc { at: base.wrapping_add(r.offset), len: r.size() as u8, pc_field, target });
        }
    }
    out.sort_by_key(|r| r.at);
    out
}

/// One row of `normal_form`: a field of an instruction, or an instruction left out.
#[derive(Clone, Debug)]
pub struct Row {
    pub address: u64,
    pub size: u8,
    pub mask: u32,
    pub how: u8,
    pub name: Vec<u8>,
    pub offset: i64,
}

/// The normalized stream of one range, and optionally why each field became what it is.
#[derive(Default)]
struct Out {
    buf: Vec<u8>,
    rows: Option<Vec<Row>>,
}

impl Out {
    fn row(&mut self, i: &Insn, mask: u32, token: &Token) {
        if let Some(rows) = &mut self.rows {
            let (name, offset) = match *token {
                Token::Symbol { name, offset, .. } => (elf::clone_shape(name), offset),
                Token::Local(off) => (Vec::new(), off as i64),
                _ => (Vec::new(), 0),
            };
            rows.push(Row { address: i.address, size: i.size, mask, how: token.how(), name, offset });
        }
    }

    fn skip(&mut self, i: &Insn) {
        self.row(i, 0, &Token::Raw);
        if let Some(last) = self.rows.as_mut().and_then(|r| r.last_mut()) {
            last.how = how::SKIPPED;
        }
    }
}

/// Where the walk over a range is: still in the entry's prologue (where NOPs are ftrace's),
/// and in a run of NOPs that may turn out to be the trailing padding.
struct Walk {
    prologue: bool,
    /// The length of the stream before the current run of NOPs.
    nops: Option<usize>,
    /// The NOPs of that run (kept only when explaining).
    run: Vec<Insn>,
}

impl Walk {
    fn end_run(&mut self) {
        self.nops = None;
        self.run.clear();
    }
}

/// Everything normalization needs to know about the file.
pub struct Normalizer<'d> {
    dec: Decoder,
    img: Image<'d>,
    symbols: Symbols<'d>,
    relocs: Vec<Reloc<'d>>,
    dynamic: Dynamic,
    /// `[low, high)` of the allocated sections of an `ET_EXEC` file (not counting those linked
    /// at 0): where an x86 constant is taken for an address. A position-independent file has
    /// no absolute addresses in its code, and there a small constant would look like one.
    image: Option<(u64, u64)>,
    /// x86-64 kernel: `[0, size)` of `.data..percpu`, which `%gs:` displacements index.
    percpu: Option<(u64, u64)>,
    /// ppc64 ELFv2: the value of r2 (the `.TOC.` symbol), to which data addresses are relative.
    toc: Option<u64>,
}

impl<'d> Normalizer<'d> {
    /// For `file`, with the symbols of `symbols` (the file's own, or its debug file's).
    pub fn new(file: &object::File<'d>, symbols: &object::File<'d>) -> Result<Self> {
        let mut scratch = Strings::default();
        let dec = Decoder::for_file(file, symbols, &mut scratch)?;
        let relocatable = file.kind() == object::ObjectKind::Relocatable;
        let relocs = if relocatable { code_relocs(file, dec.isa) } else { Vec::new() };
        let alloc = |s: &object::Section| matches!(s.flags(), object::SectionFlags::Elf { sh_flags, .. } if sh_flags.0 & object::elf::SHF_ALLOC.0 != 0);
        let mut image = None;
        if file.kind() == object::ObjectKind::Executable {
            let (lo, hi) = file
                .sections()
                .filter(|s| alloc(s) && s.address() != 0)
                .fold((u64::MAX, 0), |(lo, hi), s| (lo.min(s.address()), hi.max(s.address() + s.size())));
            image = (lo < hi).then_some((lo, hi));
        }
        let percpu = match dec.isa {
            Isa::X86 { bits: 64 } if !relocatable => {
                file.section_by_name(".data..percpu").filter(|s| s.address() == 0).map(|s| (0, s.size()))
            }
            _ => None,
        };
        let toc = toc(symbols, dec.isa);
        let dynamic = Dynamic::of(file, dec.isa, toc);
        let img = Image::new(file);
        Ok(Normalizer { dec, img, symbols: Symbols::new(symbols), relocs, dynamic, image, percpu, toc })
    }

    /// From bytes and symbols already in memory (tests): `image` as for an `ET_EXEC` file.
    #[cfg(test)]
    fn from_parts(isa: Isa, sections: Vec<(u64, &'d [u8])>, symbols: &[(u64, u64, &'d [u8])], image: bool) -> Self {
        let mut by_address: Vec<Sym<'d>> =
            symbols.iter().map(|&(address, size, name)| Sym { address, size, hash: shape_hash(name), name }).collect();
        by_address.sort_by_key(|s| s.address);
        let image = image.then_some((0x1000, u64::MAX));
        Normalizer {
            dec: Decoder::new(isa),
            img: Image::from_parts(sections),
            symbols: Symbols::sorted(by_address),
            relocs: Vec::new(),
            dynamic: Dynamic::default(),
            image,
            percpu: None,
            toc: None,
        }
    }

    /// The fingerprint of one range; `entry` says it holds the function's entry.
    pub fn fingerprint(&self, code: &Code, entry: bool, scratch: &mut Vec<u8>) -> u32 {
        let mut out = Out { buf: std::mem::take(scratch), rows: None };
        out.buf.clear();
        self.normalize(code, entry, &mut out);
        let crc = crc32fast::hash(&out.buf);
        *scratch = out.buf;
        crc
    }

    /// The rows of `normal_form` for one range.
    pub fn explain(&self, code: &Code, entry: bool) -> Vec<Row> {
        let mut out = Out { buf: Vec::new(), rows: Some(Vec::new()) };
        self.normalize(code, entry, &mut out);
        out.rows.unwrap_or_default()
    }

    fn normalize(&self, code: &Code, entry: bool, out: &mut Out) {
        let mut walk = Walk { prologue: entry, nops: None, run: Vec::new() };
        self.each_insn(code, entry, |i, raw, fields, in_setup| {
            self.step(i, raw, fields, in_setup, code, &mut walk, out)
        });
        // NOPs at the end: alignment padding, not code.
        if let Some(at) = walk.nops {
            out.buf.truncate(at);
            for i in &walk.run {
                out.skip(i);
            }
        }
    }

    /// Calls `f` with each instruction of the range, its bytes, its position-dependent
    /// fields, and whether it is part of the ppc64 global entry's TOC setup.
    fn each_insn(&self, code: &Code, entry: bool, mut f: impl FnMut(&Insn, &[u8], &[Field], bool)) {
        let bytes_of = |i: &Insn| {
            let at = (i.address - code.low) as usize;
            &code.bytes[at..(at + usize::from(i.size)).min(code.bytes.len())]
        };
        let mut pairs = Pairs::default();
        match self.dec.isa {
            Isa::X86 { bits } => x86::walk_decoded(&self.dec, bits, code.bytes, code.low, &mut |i, decoded| {
                let fields = decoded.map(|(ins, d)| x86::fields(ins, d, self.percpu.is_some())).unwrap_or_default();
                f(i, bytes_of(i), fields.as_slice(), false);
            }),
            Isa::Aarch64 => self.dec.walk(code.bytes, code.low, |i| {
                let raw = bytes_of(i);
                let fields = word(raw, false).map(|w| aarch64::fields(w, i.address, &mut pairs)).unwrap_or_default();
                f(i, raw, fields.as_slice(), false);
            }),
            Isa::Ppc { big_endian, .. } => {
                // ELFv2: the global entry's TOC setup comes before the local entry.
                let setup_end = if entry { self.dec.local_entry(code.bytes).map_or(0, u64::from) } else { 0 };
                self.dec.walk(code.bytes, code.low, |i| {
                    let raw = bytes_of(i);
                    let in_setup = i.address - code.low < setup_end;
                    let fields = if in_setup {
                        Few::of(ppc::TOC_SETUP)
                    } else {
                        word(raw, big_endian)
                            .map(|w| ppc::fields(w, i.address, self.toc, &mut pairs))
                            .unwrap_or_default()
                    };
                    f(i, raw, fields.as_slice(), in_setup);
                });
            }
            Isa::Riscv { xlen } => self.dec.walk(code.bytes, code.low, |i| {
                let raw = bytes_of(i);
                let fields = riscv::fields(raw, i.address, xlen, &mut pairs);
                f(i, raw, fields.as_slice(), false);
            }),
            Isa::S390 => self.dec.walk(code.bytes, code.low, |i| {
                let raw = bytes_of(i);
                let fields =
                    if raw.len() == usize::from(i.size) { s390::fields(raw, i.address) } else { Few::default() };
                f(i, raw, fields.as_slice(), false);
            }),
            // 32-bit ARM: the imm24 of an A32 B/BL/BLX; Thumb and literal loads not told apart yet
            Isa::Arm => self.dec.walk(code.bytes, code.low, |i| {
                let a32 = i.size == 4 && i.extra & super::flag::THUMB == 0;
                let branch = a32 && matches!(i.kind, kind::JUMP | kind::CALL_DIRECT) && i.target != super::NO_TARGET;
                let fields: super::fingerprint::Fields = if branch {
                    Few::of(Field { mask: 0x00FF_FFFF, value: Value::Pc(i.target) })
                } else {
                    Few::default()
                };
                f(i, bytes_of(i), fields.as_slice(), false);
            }),
        }
    }

    /// Normalizes one instruction into `out`, or leaves it out.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        i: &Insn,
        raw: &[u8],
        fields: &[Field],
        in_setup: bool,
        code: &Code,
        walk: &mut Walk,
        out: &mut Out,
    ) {
        if i.kind == kind::ERROR {
            out.buf.extend_from_slice(raw);
            walk.end_run();
            walk.prologue = false;
            return;
        }
        if walk.prologue && !in_setup {
            if i.kind == kind::NOP {
                out.skip(i);
                return;
            }
            // a landing pad (endbr64, bti) may precede the patchable NOPs
            walk.prologue = i.kind == kind::ENDBR && i.address == code.low;
        }
        let tokens = self.tokens(i, code, fields);
        if i.kind == kind::CALL_DIRECT
            && tokens.as_slice().iter().any(|(_, t)| matches!(t, Token::Symbol { name, .. } if is_ftrace_call(name)))
        {
            out.skip(i);
            return;
        }
        if i.kind == kind::NOP && tokens.len == 0 {
            walk.nops.get_or_insert(out.buf.len());
            if out.rows.is_some() {
                walk.run.push(*i);
            }
        } else {
            walk.end_run();
        }
        self.emit(i, raw, tokens.as_slice(), out);
    }

    /// Appends one instruction, its fields cleared, then the tokens that replace them.
    fn emit(&self, i: &Insn, raw: &[u8], tokens: &[(u32, Token)], out: &mut Out) {
        let mask = tokens.iter().filter(|(_, t)| !matches!(t, Token::Raw)).fold(0, |m, (f, _)| m | f);
        match self.dec.isa {
            // s390x fields are byte masks too: its instructions are 2, 4 or 6 bytes
            Isa::X86 { .. } | Isa::S390 => {
                out.buf.extend(raw.iter().enumerate().map(|(n, &b)| if mask >> n & 1 != 0 { 0 } else { b }));
            }
            _ => out.buf.extend_from_slice(&clear_word_bits(raw, mask, self.big_endian())),
        }
        for (m, t) in tokens {
            t.write(&mut out.buf);
            out.row(i, *m, t);
        }
    }

    fn big_endian(&self) -> bool {
        matches!(self.dec.isa, Isa::Ppc { big_endian: true, .. })
    }

    /// The tokens of one instruction, each with the bits of its field: from the relocations
    /// where the file has them, else from the decoded fields.
    fn tokens(&self, i: &Insn, code: &Code, fields: &[Field]) -> Few<(u32, Token<'_>), 4> {
        let end = i.address + u64::from(i.size);
        let relocs = self.relocs_in(i.address, end);
        let mut out = Few::default();
        let x86 = matches!(self.dec.isa, Isa::X86 { .. });
        let mut reloc_bits = 0u32;
        for r in relocs {
            let bits = if x86 { x86::byte_mask((r.at - i.address) as usize, usize::from(r.len)) } else { 0 };
            reloc_bits |= bits;
            let adjust = if r.pc_field { end - r.at } else { 0 };
            let t = match r.target {
                RelocTarget::Undefined { name, hash, addend } => {
                    Token::Symbol { hash, name, offset: addend.wrapping_add(adjust as i64) }
                }
                RelocTarget::Defined(v) => self.resolve(v.wrapping_add(adjust), code),
            };
            out.push((bits, t));
        }
        for f in fields {
            if !relocs.is_empty() && (!x86 || f.mask & reloc_bits != 0) {
                // The relocation names the target; the decoded bits are its placeholder.
                if !x86 {
                    out.push((f.mask, Token::Masked));
                }
                continue;
            }
            out.push((f.mask, self.token(f.value, code)));
        }
        out
    }

    fn relocs_in(&self, start: u64, end: u64) -> &[Reloc<'d>] {
        if self.relocs.is_empty() {
            return &[];
        }
        let a = self.relocs.partition_point(|r| r.at < start);
        let b = a + self.relocs[a..].partition_point(|r| r.at < end);
        &self.relocs[a..b]
    }

    fn token(&self, v: Value, code: &Code) -> Token<'_> {
        let inside = |t: u64| code.low <= t && t < code.high;
        let within = |w: Option<(u64, u64)>, t: u64| w.is_some_and(|(lo, hi)| lo <= t && t < hi);
        match v {
            Value::Pc(t) if inside(t) => Token::Raw,
            Value::Pc(t) | Value::Addr(t) => self.resolve(t, code),
            Value::Percpu(t) if within(self.percpu, t) => self.resolve(t, code),
            Value::Imm(t) | Value::Percpu(t) if within(self.image, t) => self.resolve(t, code),
            Value::Imm(_) | Value::Percpu(_) => Token::Raw,
            Value::Hidden => Token::Masked,
        }
    }

    /// What an address stands for: the range itself, a symbol, a GOT slot or PLT stub, a
    /// string literal, or nothing.
    fn resolve(&self, t: u64, code: &Code) -> Token<'_> {
        if code.low <= t && t < code.high {
            return Token::Local(t - code.low);
        }
        if let Some(s) = self.symbols.containing(t) {
            return Token::Symbol { hash: s.hash, name: s.name, offset: t.wrapping_sub(s.address) as i64 };
        }
        if let Some((hash, name)) = self.dynamic.slots.get(&t).or_else(|| self.dynamic.stubs.get(&t)) {
            return Token::Symbol { hash: *hash, name, offset: 0 };
        }
        self.string_at(t).map_or(Token::Masked, Token::Str)
    }

    /// The CRC of the C string at `t`, if the bytes there look like one: printable ASCII (and
    /// the kernel's KERN_SOH level marker) ended by a NUL within [`MAX_STRING`] bytes. Jump
    /// tables and other constants have no symbol either, but fail this test.
    fn string_at(&self, t: u64) -> Option<u32> {
        let c = self.img.code(t, t.saturating_add(MAX_STRING + 1));
        let n = c.bytes.iter().position(|&b| b == 0)?;
        let text = &c.bytes[..n];
        let printable = |b: &u8| matches!(b, 0x20..=0x7e | b'\t' | b'\n' | b'\r' | 0x01);
        (n >= 2 && text.iter().all(printable)).then(|| crc32fast::hash(text))
    }
}

/// The bytes of a fixed-width instruction (or RISC-V parcel) with `mask`'s bits cleared.
fn clear_word_bits(raw: &[u8], mask: u32, big_endian: bool) -> Vec<u8> {
    if mask == 0 {
        return raw.to_vec();
    }
    match raw.len() {
        2 => (u16::from_le_bytes([raw[0], raw[1]]) & !(mask as u16)).to_le_bytes().to_vec(),
        4 => {
            let w = word(raw, big_endian).unwrap_or(0) & !mask;
            if big_endian { w.to_be_bytes() } else { w.to_le_bytes() }.to_vec()
        }
        _ => raw.to_vec(),
    }
}

/// The first range given for each function id is its entry.
fn entries(ids: &[u64]) -> Vec<bool> {
    let mut seen = FxHashSet::default();
    ids.iter().map(|&id| seen.insert(id)).collect()
}

/// `code_fingerprints`: one row per range `(ids[i], lows[i], highs[i])`, in the order given,
/// with the CRC-32 of its normalized instructions. The first range given of each id is the
/// function's entry (where NOPs and the ftrace call are left out).
pub fn fingerprints(o: &Opened, ids: &[u64], lows: &[u64], highs: &[u64]) -> Result<Scan> {
    super::check_ranges(ids, lows, highs)?;
    let norm = Normalizer::new(&o.file, o.symbols())?;
    let entry = entries(ids);
    let sums: Vec<u32> = (0..ids.len())
        .into_par_iter()
        .with_min_len(64)
        .map_init(Vec::new, |scratch, r| {
            let code = norm.img.code(lows[r], highs[r]);
            // Should normalizing fail, the raw bytes: a change may then be reported that is
            // none (the code moved), but none is missed.
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| norm.fingerprint(&code, entry[r], scratch)))
                .unwrap_or_else(|_| crc32fast::hash(code.bytes))
        })
        .collect();
    let table = Table::new(vec![
        ("function_id", Chunk::U64(ids.to_vec())),
        ("low", Chunk::U64(lows.to_vec())),
        ("high", Chunk::U64(highs.to_vec())),
        ("fingerprint", Chunk::U32(sums)),
    ]);
    let info = vec![
        ("path", o.path.display().to_string()),
        ("arch", elf::arch_name(&o.file).to_string()),
        ("ranges", ids.len().to_string()),
    ];
    let (string_offsets, string_data) = Strings::default().to_arrow();
    Ok(Scan { info, tables: vec![("code_fingerprints", table)], string_offsets, string_data })
}

/// `normal_form` of `[low, high)`: what the fingerprint makes of each position-dependent
/// field (one row per field, and one per instruction left out), for evidence and tests.
pub fn normal_form(o: &Opened, low: u64, high: u64, entry: bool) -> Result<Scan> {
    let norm = Normalizer::new(&o.file, o.symbols())?;
    let code = norm.img.code(low, high);
    if code.status & super::status::NO_BYTES != 0 {
        return Err(Error::new(format!("{}: no section holds code at {low:#x}", o.path.display())));
    }
    let rows = norm.explain(&code, entry);
    let mut strings = Strings::default();
    let names = rows.iter().map(|r| strings.intern_owned(r.name.clone())).collect();
    let table = Table::new(vec![
        ("address", Chunk::U64(rows.iter().map(|r| r.address).collect())),
        ("size", Chunk::U8(rows.iter().map(|r| r.size).collect())),
        ("mask", Chunk::U32(rows.iter().map(|r| r.mask).collect())),
        ("how", Chunk::U8(rows.iter().map(|r| r.how).collect())),
        ("name", Chunk::Str(names)),
        ("offset", Chunk::I64(rows.iter().map(|r| r.offset).collect())),
    ]);
    let info = vec![
        ("path", o.path.display().to_string()),
        ("arch", elf::arch_name(&o.file).to_string()),
        ("fingerprint", norm.fingerprint(&code, entry, &mut Vec::new()).to_string()),
    ];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("normal_form", table)], string_offsets, string_data })
}

/// What dynamic linking names without symbols, as the fingerprints name it: table
/// `plt_names` (address, name, got): each PLT stub (`got` 0; x86 `.plt*` entries, aarch64 and
/// riscv lazy PLT entries, ppc64 ELFv2 call stubs in `.text`) and each GOT slot (`got` 1) with
/// the symbol its `JUMP_SLOT`/`GLOB_DAT` relocation names. Empty for an ISA not decoded.
pub fn plt_names(o: &Opened) -> Result<Scan> {
    let d = match Isa::from_arch(elf::arch_name(&o.file)) {
        Ok(isa) => Dynamic::of(&o.file, isa, toc(o.symbols(), isa)),
        Err(_) => Dynamic::default(),
    };
    let mut rows: Vec<(u8, u64, &[u8])> = Vec::new();
    for (got, map, suffix) in [(0, &d.stubs, b"@plt"), (1, &d.slots, b"@got")] {
        rows.extend(map.iter().map(|(&at, (_, name))| (got, at, name.strip_suffix(suffix).unwrap_or(name))));
    }
    rows.sort_unstable();
    let mut strings = Strings::default();
    let names = rows.iter().map(|r| strings.intern_owned(r.2.to_vec())).collect();
    let table = Table::new(vec![
        ("address", Chunk::U64(rows.iter().map(|r| r.1).collect())),
        ("name", Chunk::Str(names)),
        ("got", Chunk::U8(rows.iter().map(|r| r.0).collect())),
    ]);
    let info = vec![("path", o.path.display().to_string()), ("arch", elf::arch_name(&o.file).to_string())];
    let (string_offsets, string_data) = strings.to_arrow();
    Ok(Scan { info, tables: vec![("plt_names", table)], string_offsets, string_data })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(isa: Isa, at: u64, code: &[u8], symbols: &[(u64, u64, &[u8])]) -> u32 {
        let n = Normalizer::from_parts(isa, vec![(at, code)], symbols, true);
        n.fingerprint(&n.img.code(at, at + code.len() as u64), true, &mut Vec::new())
    }

    const X86: Isa = Isa::X86 { bits: 64 };

    fn rel32(from_end: u64, to: u64) -> [u8; 4] {
        (to.wrapping_sub(from_end) as i32).to_le_bytes()
    }

    /// `call callee; mov data(%rip),%rax; movq $table,%rdi; ret` at `at`, with `prefix` first.
    fn x86_caller(at: u64, prefix: &[u8], callee: u64, data: u64, table: u64) -> Vec<u8> {
        let mut c = prefix.to_vec();
        let p = at + prefix.len() as u64;
        c.push(0xe8);
        c.extend(rel32(p + 5, callee));
        c.extend([0x48, 0x8b, 0x05]);
        c.extend(rel32(p + 12, data));
        c.extend([0x48, 0xc7, 0xc7]);
        c.extend((table as i32).to_le_bytes());
        c.push(0xc3);
        c
    }

    const FOO: &[u8] = b"foo";
    const BAR: &[u8] = b"bar";
    const DATA: &[u8] = b"counter";
    const TABLE: &[u8] = b"table";

    #[test]
    fn moved_code_and_moved_targets_keep_the_fingerprint() {
        let (k1, k2) = (0xffff_ffff_8200_1000u64, 0xffff_ffff_8200_2040u64);
        let a = x86_caller(0x1000, &[], 0x2000, 0x4000, k1);
        let syms_a = [(0x2000, 16, FOO), (0x4000, 8, DATA), (k1, 64, TABLE)];
        let b = x86_caller(0x1130, &[], 0x2470, 0x4818, k2);
        let syms_b = [(0x2470, 16, FOO), (0x4810, 16, DATA), (k2, 64, TABLE)];
        let fa = sum(X86, 0x1000, &a, &syms_a);
        // data at another offset into its symbol is another reference
        assert_ne!(fa, sum(X86, 0x1130, &b, &syms_b));
        let syms_b = [(0x2470, 16, FOO), (0x4818, 8, DATA), (k2, 64, TABLE)];
        assert_eq!(fa, sum(X86, 0x1130, &b, &syms_b));
        // another callee is another function
        let syms_c = [(0x2470, 16, BAR), (0x4818, 8, DATA), (k2, 64, TABLE)];
        assert_ne!(fa, sum(X86, 0x1130, &b, &syms_c));
    }

    #[test]
    fn clone_numbers_are_no_change() {
        let a = x86_caller(0x1000, &[], 0x2000, 0x4000, 0x10);
        let s1: [(u64, u64, &[u8]); 1] = [(0x2000, 16, b"foo.isra.0")];
        let s2: [(u64, u64, &[u8]); 1] = [(0x2000, 16, b"foo.isra.3")];
        let s3: [(u64, u64, &[u8]); 1] = [(0x2000, 16, b"foo.constprop.0")];
        assert_eq!(sum(X86, 0x1000, &a, &s1), sum(X86, 0x1000, &a, &s2));
        assert_ne!(sum(X86, 0x1000, &a, &s1), sum(X86, 0x1000, &a, &s3));
    }

    #[test]
    fn ftrace_entry_and_padding_are_left_out() {
        let syms: [(u64, u64, &[u8]); 3] = [(0x2000, 16, FOO), (0x4000, 8, DATA), (0x3000, 1, b"__fentry__")];
        let plain = sum(X86, 0x1000, &x86_caller(0x1000, &[], 0x2000, 0x4000, 0x10), &syms);
        // endbr64 stays: it is code
        let endbr = [0xf3, 0x0f, 0x1e, 0xfa];
        let with_endbr = sum(X86, 0x1000, &x86_caller(0x1000, &endbr, 0x2000, 0x4000, 0x10), &syms);
        assert_ne!(plain, with_endbr);
        // ftrace's NOP, or its call __fentry__, after the landing pad
        let nop5 = [0xf3, 0x0f, 0x1e, 0xfa, 0x0f, 0x1f, 0x44, 0x00, 0x00];
        assert_eq!(with_endbr, sum(X86, 0x1000, &x86_caller(0x1000, &nop5, 0x2000, 0x4000, 0x10), &syms));
        let mut fentry = endbr.to_vec();
        fentry.push(0xe8);
        fentry.extend(rel32(0x1009, 0x3000));
        assert_eq!(with_endbr, sum(X86, 0x1000, &x86_caller(0x1000, &fentry, 0x2000, 0x4000, 0x10), &syms));
        // alignment NOPs after the return
        let mut padded = x86_caller(0x1000, &[], 0x2000, 0x4000, 0x10);
        padded.extend([0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00, 0x90]);
        assert_eq!(plain, sum(X86, 0x1000, &padded, &syms));
    }

    #[test]
    fn explain_names_each_field() {
        let code = x86_caller(0x1000, &[], 0x2000, 0x4000, 0x10);
        let syms = [(0x2000, 16, FOO), (0x4000, 8, DATA)];
        let n = Normalizer::from_parts(X86, vec![(0x1000, &code[..])], &syms, true);
        let rows = n.explain(&n.img.code(0x1000, 0x1000 + code.len() as u64), true);
        let got: Vec<(u64, u32, u8, &[u8])> = rows.iter().map(|r| (r.address, r.mask, r.how, &r.name[..])).collect();
        // e8 rel32: bytes 1..5; 48 8b 05 disp32: bytes 3..7; 48 c7 c7 imm32 (0x10, no address)
        let want: Vec<(u64, u32, u8, &[u8])> =
            vec![(0x1000, 0x1e, how::SYMBOL, FOO), (0x1005, 0x78, how::SYMBOL, DATA), (0x100c, 0x78, how::RAW, b"")];
        assert_eq!(got, want);
    }

    fn aarch64_caller(at: u64, callee: u64, data: u64) -> Vec<u8> {
        let page = |a: u64| a & !0xfff;
        let imm = (page(data).wrapping_sub(page(at)) as i64 >> 12) as u32;
        let adrp = 0x9000_0000 | (imm & 3) << 29 | ((imm >> 2) & 0x7ffff) << 5; // adrp x0, data
        let add = 0x9100_0000 | ((data & 0xfff) as u32) << 10; // add x0, x0, #:lo12:data
        let bl = 0x9400_0000 | ((callee.wrapping_sub(at + 8) >> 2) as u32 & 0x03ff_ffff);
        [adrp, add, bl, 0xd65f_03c0].iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn aarch64_adrp_pairs_and_calls() {
        let a = aarch64_caller(0x1000, 0x2000, 0x5010);
        let b = aarch64_caller(0x1400, 0x3000, 0x7230);
        let sa = [(0x2000, 16, FOO), (0x5000, 32, DATA)];
        let sb = [(0x3000, 16, FOO), (0x7220, 32, DATA)];
        assert_eq!(sum(Isa::Aarch64, 0x1000, &a, &sa), sum(Isa::Aarch64, 0x1400, &b, &sb));
        let sc = [(0x3000, 16, FOO), (0x7230, 32, DATA)]; // another offset into the data
        assert_ne!(sum(Isa::Aarch64, 0x1000, &a, &sa), sum(Isa::Aarch64, 0x1400, &b, &sc));
    }

    fn riscv_caller(at: u64, callee: u64) -> Vec<u8> {
        let off = callee.wrapping_sub(at) as i64;
        let hi = ((off + 0x800) >> 12) as u32;
        let lo = (off - (i64::from(hi as i32) << 12)) as u32;
        let auipc = (hi << 12) | (1 << 7) | 0x17; // auipc ra, hi
        let jalr = ((lo & 0xfff) << 20) | (1 << 15) | (1 << 7) | 0x67; // jalr ra, lo(ra)
        [auipc, jalr, 0x0000_8067].iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn riscv_auipc_pairs() {
        let rv = Isa::Riscv { xlen: 64 };
        let a = riscv_caller(0x1000, 0x2a00);
        let b = riscv_caller(0x1800, 0x9100);
        assert_eq!(sum(rv, 0x1000, &a, &[(0x2a00, 8, FOO)]), sum(rv, 0x1800, &b, &[(0x9100, 8, FOO)]));
        assert_ne!(sum(rv, 0x1000, &a, &[(0x2a00, 8, FOO)]), sum(rv, 0x1800, &b, &[(0x9100, 8, BAR)]));
    }
}

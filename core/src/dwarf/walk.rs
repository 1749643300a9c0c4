//! One pass over a unit's DIEs, keeping subprograms, their parameters, inline sites and
//! call sites; every other DIE is skipped without decoding its attributes.

use gimli::constants as dw;
use gimli::{AttributeValue, Expression, RawLocListEntry};

use super::files::FileTable;
use super::location::{classify, flag, Loc};
use super::{Ctx, Slice};
use crate::error::Result;
use crate::table::{Chunk, Strings, Table};

/// The scope a DIE sits in, as the walk needs it.
#[derive(Clone, Copy)]
struct Scope {
    die: u64,
    kind: ScopeKind,
    /// Where the owner's code starts: the address parameter locations are evaluated at.
    entry_pc: u64,
    /// The enclosing `DW_TAG_subprogram`.
    function: u64,
    /// The nearest enclosing inline site, or the function.
    inline_scope: u64,
    inline_depth: u16,
    next_param: u16,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum ScopeKind {
    Function,
    Inline,
    Other,
}

const NONE: u64 = u64::MAX;

/// The columns of one unit's DIE facts.
#[derive(Default)]
pub struct Facts {
    sp: Subprograms,
    params: Params,
    inl: InlineSites,
    calls: CallSites,
    ranges: Ranges,
    pub dies: u64,
}

#[derive(Default)]
struct Subprograms {
    die: Vec<u64>,
    parent: Vec<u64>,
    name: Vec<u32>,
    linkage_name: Vec<u32>,
    origin: Vec<u64>,
    specification: Vec<u64>,
    inline: Vec<u8>,
    flags: Vec<u8>,
    decl_file: Vec<u32>,
    decl_line: Vec<u32>,
    calling_convention: Vec<u8>,
    low_pc: Vec<u64>,
    entry_pc: Vec<u64>,
}

/// Bits of `subprograms.flags`.
pub mod spflag {
    consts! {
        pub const EXTERNAL: u8 = 1;
        pub const DECLARATION: u8 = 2;
        pub const ARTIFICIAL: u8 = 4;
        pub const NORETURN: u8 = 8;
        pub const HAS_CODE: u8 = 16;
        pub const PROTOTYPED: u8 = 32;
        /// `DW_AT_inline` other than `DW_INL_not_inlined`: an abstract inline definition as
        /// libdw's `dwarf_func_inline` says (non-zero for inlined, declared inlined and declared
        /// not inlined). SystemTap asks it of each DIE: such a DIE is never given to a symbol
        /// (`update_symtab`), and `.function` walks its inline instances instead of its entry.
        pub const INLINE: u8 = 64;
    }
}

#[derive(Default)]
struct Params {
    die: Vec<u64>,
    owner: Vec<u64>,
    position: Vec<u16>,
    name: Vec<u32>,
    origin: Vec<u64>,
    artificial: Vec<u8>,
    loc_kind: Vec<u8>,
    loc_flags: Vec<u8>,
    loc_reg: Vec<u16>,
    const_value: Vec<i64>,
}

#[derive(Default)]
struct InlineSites {
    die: Vec<u64>,
    origin: Vec<u64>,
    function: Vec<u64>,
    parent: Vec<u64>,
    depth: Vec<u16>,
    entry_pc: Vec<u64>,
    low_pc: Vec<u64>,
    call_file: Vec<u32>,
    call_line: Vec<u32>,
    call_column: Vec<u16>,
}

#[derive(Default)]
struct CallSites {
    die: Vec<u64>,
    function: Vec<u64>,
    scope: Vec<u64>,
    return_pc: Vec<u64>,
    call_pc: Vec<u64>,
    target: Vec<u64>,
    tail: Vec<u8>,
    indirect: Vec<u8>,
}

#[derive(Default)]
struct Ranges {
    owner: Vec<u64>,
    low: Vec<u64>,
    high: Vec<u64>,
}

impl Facts {
    pub fn into_tables(self) -> Vec<(&'static str, Table)> {
        let Facts { sp, params: p, inl, calls: c, ranges: r, .. } = self;
        vec![
            (
                "subprograms",
                Table::new(vec![
                    ("die", Chunk::U64(sp.die)),
                    ("parent", Chunk::U64(sp.parent)),
                    ("name", Chunk::Str(sp.name)),
                    ("linkage_name", Chunk::Str(sp.linkage_name)),
                    ("origin", Chunk::U64(sp.origin)),
                    ("specification", Chunk::U64(sp.specification)),
                    ("inline", Chunk::U8(sp.inline)),
                    ("flags", Chunk::U8(sp.flags)),
                    ("decl_file", Chunk::Str(sp.decl_file)),
                    ("decl_line", Chunk::U32(sp.decl_line)),
                    ("calling_convention", Chunk::U8(sp.calling_convention)),
                    ("low_pc", Chunk::U64(sp.low_pc)),
                    ("entry_pc", Chunk::U64(sp.entry_pc)),
                ]),
            ),
            (
                "params",
                Table::new(vec![
                    ("die", Chunk::U64(p.die)),
                    ("owner", Chunk::U64(p.owner)),
                    ("position", Chunk::U16(p.position)),
                    ("name", Chunk::Str(p.name)),
                    ("origin", Chunk::U64(p.origin)),
                    ("artificial", Chunk::U8(p.artificial)),
                    ("loc_kind", Chunk::U8(p.loc_kind)),
                    ("loc_flags", Chunk::U8(p.loc_flags)),
                    ("loc_reg", Chunk::U16(p.loc_reg)),
                    ("const_value", Chunk::I64(p.const_value)),
                ]),
            ),
            (
                "inline_sites",
                Table::new(vec![
                    ("die", Chunk::U64(inl.die)),
                    ("origin", Chunk::U64(inl.origin)),
                    ("function", Chunk::U64(inl.function)),
                    ("parent", Chunk::U64(inl.parent)),
                    ("depth", Chunk::U16(inl.depth)),
                    ("entry_pc", Chunk::U64(inl.entry_pc)),
                    ("low_pc", Chunk::U64(inl.low_pc)),
                    ("call_file", Chunk::Str(inl.call_file)),
                    ("call_line", Chunk::U32(inl.call_line)),
                    ("call_column", Chunk::U16(inl.call_column)),
                ]),
            ),
            (
                "call_sites",
                Table::new(vec![
                    ("die", Chunk::U64(c.die)),
                    ("function", Chunk::U64(c.function)),
                    ("scope", Chunk::U64(c.scope)),
                    ("return_pc", Chunk::U64(c.return_pc)),
                    ("call_pc", Chunk::U64(c.call_pc)),
                    ("target", Chunk::U64(c.target)),
                    ("tail", Chunk::U8(c.tail)),
                    ("indirect", Chunk::U8(c.indirect)),
                ]),
            ),
            (
                "ranges",
                Table::new(vec![
                    ("owner", Chunk::U64(r.owner)),
                    ("low", Chunk::U64(r.low)),
                    ("high", Chunk::U64(r.high)),
                ]),
            ),
        ]
    }
}

/// Address facts common to subprograms, inline sites and lexical blocks.
#[derive(Default)]
pub(super) struct Extent<'d> {
    low: Option<u64>,
    high: Option<u64>,
    high_is_offset: bool,
    entry_addr: Option<u64>,
    entry_offset: Option<u64>,
    ranges: Option<AttributeValue<Slice<'d>>>,
    first: Option<u64>,
}

impl Extent<'_> {
    /// The first address of the code: `DW_AT_low_pc`, else the first listed range.
    fn low_pc(&self) -> u64 {
        self.low.or(self.first).unwrap_or(0)
    }

    /// `DW_AT_entry_pc` (an address, or in DWARF 5 an offset from the low address), else
    /// the low address.
    fn entry_pc(&self) -> u64 {
        match (self.entry_addr, self.entry_offset) {
            (Some(a), _) => a,
            (None, Some(off)) => self.low_pc().wrapping_add(off),
            _ => self.low_pc(),
        }
    }

    /// Writes the owner's ranges (`low_pc`/`high_pc` first, then `DW_AT_ranges` in list
    /// order) and returns how many there were.
    fn emit(&mut self, cx: &Ctx, out: &mut Ranges, owner: u64) -> usize {
        self.each(cx, |lo, hi| {
            out.owner.push(owner);
            out.low.push(lo);
            out.high.push(hi);
        })
    }

    /// Calls `push` with each non-empty range, in the order of [`Extent::emit`], and
    /// returns how many there were.
    pub(super) fn each(&mut self, cx: &Ctx, mut push: impl FnMut(u64, u64)) -> usize {
        let mut n = 0;
        let mut keep = |lo: u64, hi: u64| {
            push(lo, hi);
            n += 1;
        };
        if let (Some(low), Some(high)) = (self.low, self.high) {
            let high = if self.high_is_offset { low.wrapping_add(high) } else { high };
            if high > low {
                keep(low, high);
            }
        }
        if let Some(v) = self.ranges.take() {
            if let Ok(Some(mut it)) = cx.dwarf.attr_ranges(cx.unit, v) {
                while let Ok(Some(r)) = it.next() {
                    if r.end > r.begin {
                        self.first.get_or_insert(r.begin);
                        keep(r.begin, r.end);
                    }
                }
            }
        }
        n
    }
}

/// Walks one unit. Rows found before an error are kept; the error is returned beside them.
pub fn walk<'d>(cx: &Ctx<'d, '_>, strings: &mut Strings<'d>, files: &mut FileTable, out: &mut Facts) -> Result<()> {
    let mut raw = cx.unit.entries_raw(None)?;
    let mut stack: Vec<Scope> = Vec::with_capacity(32);
    let root = Scope {
        die: NONE,
        kind: ScopeKind::Other,
        entry_pc: 0,
        function: NONE,
        inline_scope: NONE,
        inline_depth: 0,
        next_param: 0,
    };
    while !raw.is_empty() {
        let depth = raw.next_depth().max(0) as usize;
        let offset = cx.die(raw.next_offset());
        let Some(abbrev) = raw.read_abbreviation()? else { continue };
        out.dies += 1;
        stack.truncate(depth);
        let parent = stack.last().copied().unwrap_or(root);
        let mut me = Scope { die: offset, kind: ScopeKind::Other, ..parent };
        match abbrev.tag() {
            dw::DW_TAG_subprogram => {
                me = subprogram(cx, strings, files, &mut raw, abbrev, &parent, offset, out)?;
            }
            dw::DW_TAG_inlined_subroutine => {
                me = inline_site(cx, strings, files, &mut raw, abbrev, &parent, offset, out)?;
            }
            dw::DW_TAG_formal_parameter if parent.kind != ScopeKind::Other => {
                // Saturating: a corrupt unit can claim more parameters than a u16 counts.
                let position = stack.last_mut().map_or(0, |s| {
                    let p = s.next_param;
                    s.next_param = p.saturating_add(1);
                    p
                });
                param(cx, strings, &mut raw, abbrev, &parent, offset, position, out)?;
            }
            dw::DW_TAG_call_site | dw::DW_TAG_GNU_call_site => {
                call_site(cx, &mut raw, abbrev, &parent, offset, out)?;
            }
            _ => raw.skip_attributes(abbrev.attributes())?,
        }
        if abbrev.has_children() {
            stack.push(me);
        }
    }
    Ok(())
}

/// Reads an address-class attribute.
pub(super) fn address(cx: &Ctx, v: AttributeValue<Slice>) -> Option<u64> {
    cx.dwarf.attr_address(cx.unit, v).ok().flatten()
}

pub(super) fn read_extent<'d>(
    cx: &Ctx<'d, '_>,
    e: &mut Extent<'d>,
    name: dw::DwAt,
    v: AttributeValue<Slice<'d>>,
) -> bool {
    match name {
        dw::DW_AT_low_pc => e.low = address(cx, v),
        dw::DW_AT_high_pc => match v {
            AttributeValue::Addr(_) | AttributeValue::DebugAddrIndex(_) => e.high = address(cx, v),
            other => {
                e.high = other.udata_value();
                e.high_is_offset = true;
            }
        },
        dw::DW_AT_entry_pc => match v {
            AttributeValue::Addr(_) | AttributeValue::DebugAddrIndex(_) => e.entry_addr = address(cx, v),
            other => e.entry_offset = other.udata_value(),
        },
        dw::DW_AT_ranges => e.ranges = Some(v),
        _ => return false,
    }
    true
}

#[allow(clippy::too_many_arguments)]
fn subprogram<'d>(
    cx: &Ctx<'d, '_>,
    strings: &mut Strings<'d>,
    files: &mut FileTable,
    raw: &mut gimli::EntriesRaw<'_, Slice<'d>>,
    abbrev: &gimli::Abbreviation,
    parent: &Scope,
    die: u64,
    out: &mut Facts,
) -> Result<Scope> {
    let (mut name, mut linkage, mut origin, mut spec) = (0, 0, NONE, NONE);
    let (mut inline, mut flags, mut file, mut line, mut cc) = (0u8, 0u8, 0u32, 0u32, 0u8);
    let mut ext = Extent::default();
    for spec_ in abbrev.attributes() {
        let attr = raw.read_attribute(*spec_)?;
        let v = attr.value();
        match attr.name() {
            dw::DW_AT_name => name = cx.string(strings, v),
            dw::DW_AT_linkage_name | dw::DW_AT_MIPS_linkage_name => linkage = cx.string(strings, v),
            dw::DW_AT_abstract_origin => origin = cx.reference(v),
            dw::DW_AT_specification => spec = cx.reference(v),
            dw::DW_AT_inline => inline = small(v),
            dw::DW_AT_external => flags |= flag(v, spflag::EXTERNAL),
            dw::DW_AT_declaration => flags |= flag(v, spflag::DECLARATION),
            dw::DW_AT_artificial => flags |= flag(v, spflag::ARTIFICIAL),
            dw::DW_AT_noreturn => flags |= flag(v, spflag::NORETURN),
            dw::DW_AT_prototyped => flags |= flag(v, spflag::PROTOTYPED),
            dw::DW_AT_decl_file => file = cx.file(strings, files, v),
            dw::DW_AT_decl_line => line = v.udata_value().unwrap_or(0) as u32,
            dw::DW_AT_calling_convention => cc = small(v),
            n => {
                read_extent(cx, &mut ext, n, v);
            }
        }
    }
    if ext.emit(cx, &mut out.ranges, die) > 0 {
        flags |= spflag::HAS_CODE;
    }
    if matches!(inline, 1..=3) {
        flags |= spflag::INLINE;
    }
    let sp = &mut out.sp;
    sp.die.push(die);
    sp.parent.push(parent.function);
    sp.name.push(name);
    sp.linkage_name.push(linkage);
    sp.origin.push(origin);
    sp.specification.push(spec);
    sp.inline.push(inline);
    sp.flags.push(flags);
    sp.decl_file.push(file);
    sp.decl_line.push(line);
    sp.calling_convention.push(cc);
    sp.low_pc.push(ext.low_pc());
    sp.entry_pc.push(ext.entry_pc());
    Ok(Scope {
        die,
        kind: ScopeKind::Function,
        entry_pc: ext.entry_pc(),
        function: die,
        inline_scope: die,
        inline_depth: 0,
        next_param: 0,
    })
}

#[allow(clippy::too_many_arguments)]
fn inline_site<'d>(
    cx: &Ctx<'d, '_>,
    strings: &mut Strings<'d>,
    files: &mut FileTable,
    raw: &mut gimli::EntriesRaw<'_, Slice<'d>>,
    abbrev: &gimli::Abbreviation,
    parent: &Scope,
    die: u64,
    out: &mut Facts,
) -> Result<Scope> {
    let (mut origin, mut file, mut line, mut column) = (NONE, 0u32, 0u32, 0u16);
    let mut ext = Extent::default();
    for spec in abbrev.attributes() {
        let attr = raw.read_attribute(*spec)?;
        let v = attr.value();
        match attr.name() {
            dw::DW_AT_abstract_origin => origin = cx.reference(v),
            dw::DW_AT_call_file => file = cx.file(strings, files, v),
            dw::DW_AT_call_line => line = v.udata_value().unwrap_or(0) as u32,
            dw::DW_AT_call_column => column = v.udata_value().unwrap_or(0) as u16,
            n => {
                read_extent(cx, &mut ext, n, v);
            }
        }
    }
    ext.emit(cx, &mut out.ranges, die);
    let depth = parent.inline_depth.saturating_add(1);
    let t = &mut out.inl;
    t.die.push(die);
    t.origin.push(origin);
    t.function.push(parent.function);
    t.parent.push(parent.inline_scope);
    t.depth.push(depth);
    t.entry_pc.push(ext.entry_pc());
    t.low_pc.push(ext.low_pc());
    t.call_file.push(file);
    t.call_line.push(line);
    t.call_column.push(column);
    Ok(Scope {
        die,
        kind: ScopeKind::Inline,
        entry_pc: ext.entry_pc(),
        function: parent.function,
        inline_scope: die,
        inline_depth: depth,
        next_param: 0,
    })
}

#[allow(clippy::too_many_arguments)]
fn param<'d>(
    cx: &Ctx<'d, '_>,
    strings: &mut Strings<'d>,
    raw: &mut gimli::EntriesRaw<'_, Slice<'d>>,
    abbrev: &gimli::Abbreviation,
    owner: &Scope,
    die: u64,
    position: u16,
    out: &mut Facts,
) -> Result<()> {
    let (mut name, mut origin, mut artificial) = (0, NONE, 0u8);
    let mut loc = Loc::NONE;
    for spec in abbrev.attributes() {
        let attr = raw.read_attribute(*spec)?;
        let v = attr.value();
        match attr.name() {
            dw::DW_AT_name => name = cx.string(strings, v),
            dw::DW_AT_abstract_origin => origin = cx.reference(v),
            dw::DW_AT_artificial => artificial = flag(v, 1),
            dw::DW_AT_const_value => loc = Loc::constant(constant(v)),
            dw::DW_AT_location => loc = location_at(cx, v, owner.entry_pc),
            _ => {}
        }
    }
    let p = &mut out.params;
    p.die.push(die);
    p.owner.push(owner.die);
    p.position.push(position);
    p.name.push(name);
    p.origin.push(origin);
    p.artificial.push(artificial);
    p.loc_kind.push(loc.kind);
    p.loc_flags.push(loc.flags);
    p.loc_reg.push(loc.reg);
    p.const_value.push(loc.value);
    Ok(())
}

/// The location of a variable at `pc`: a single expression holds everywhere in its scope;
/// a location list is searched for the entry covering `pc`.
fn location_at<'d>(cx: &Ctx<'d, '_>, v: AttributeValue<Slice<'d>>, pc: u64) -> Loc {
    let enc = cx.unit.encoding();
    if let AttributeValue::Exprloc(e) = v {
        return classify(e, enc);
    }
    if let AttributeValue::Block(b) = v {
        return classify(Expression(b), enc);
    }
    let Ok(Some(mut list)) = cx.dwarf.attr_locations(cx.unit, v) else {
        return Loc::ERROR;
    };
    let mut in_view = None;
    loop {
        let raw = match list.next_raw() {
            Ok(Some(raw)) => raw,
            Ok(None) => break,
            Err(_) => return Loc::ERROR.with_flags(flag::LIST),
        };
        let (raw, empty) = widen_empty(raw);
        match list.convert_raw(raw) {
            Ok(Some(e)) if empty && e.range.begin == pc => in_view = in_view.or(Some(e.data)),
            Ok(Some(e)) if !empty && e.range.begin <= pc && pc < e.range.end => {
                return classify(e.data, enc).with_flags(flag::LIST)
            }
            Ok(_) => {}
            Err(_) => return Loc::ERROR.with_flags(flag::LIST),
        }
    }
    match in_view {
        Some(e) => classify(e, enc).with_flags(flag::LIST | flag::VIEW_ONLY),
        None => Loc::NOT_AT_ENTRY.with_flags(flag::LIST),
    }
}

/// gimli drops location-list entries with an empty range, taking them for tombstones of
/// discarded code; with location views (`DW_AT_GNU_locviews`) GCC uses `[pc, pc)` to bind a
/// value at a view of `pc`. Such an entry is widened to one byte so that gimli still applies
/// base addresses to it, and marked.
pub(super) fn widen_empty(raw: RawLocListEntry<Slice>) -> (RawLocListEntry<Slice>, bool) {
    use RawLocListEntry as E;
    match raw {
        E::OffsetPair { begin, end, data } if begin == end && begin != 0 => {
            (E::OffsetPair { begin, end: end + 1, data }, true)
        }
        E::StartEnd { begin, end, data } if begin == end => (E::StartEnd { begin, end: end + 1, data }, true),
        E::AddressOrOffsetPair { begin, end, data } if begin == end => {
            (E::AddressOrOffsetPair { begin, end: end + 1, data }, true)
        }
        E::StartLength { begin, length: 0, data } => (E::StartLength { begin, length: 1, data }, true),
        E::StartxLength { begin, length: 0, data } => (E::StartxLength { begin, length: 1, data }, true),
        other => (other, false),
    }
}

fn call_site<'d>(
    cx: &Ctx<'d, '_>,
    raw: &mut gimli::EntriesRaw<'_, Slice<'d>>,
    abbrev: &gimli::Abbreviation,
    scope: &Scope,
    die: u64,
    out: &mut Facts,
) -> Result<()> {
    let (mut ret, mut call, mut target, mut tail, mut indirect) = (0, 0, NONE, 0u8, 0u8);
    for spec in abbrev.attributes() {
        let attr = raw.read_attribute(*spec)?;
        let v = attr.value();
        match attr.name() {
            dw::DW_AT_call_return_pc | dw::DW_AT_low_pc => ret = address(cx, v).unwrap_or(0),
            dw::DW_AT_call_pc => call = address(cx, v).unwrap_or(0),
            dw::DW_AT_call_origin | dw::DW_AT_abstract_origin => target = cx.reference(v),
            dw::DW_AT_call_tail_call | dw::DW_AT_GNU_tail_call => tail = flag(v, 1),
            dw::DW_AT_call_target | dw::DW_AT_GNU_call_site_target => indirect = 1,
            _ => {}
        }
    }
    let c = &mut out.calls;
    c.die.push(die);
    c.function.push(scope.function);
    c.scope.push(scope.inline_scope);
    c.return_pc.push(ret);
    c.call_pc.push(call);
    c.target.push(target);
    c.tail.push(tail);
    c.indirect.push(indirect);
    Ok(())
}

/// A small enumerated value (`DW_INL_*`, `DW_CC_*`), which gimli's `value()` types.
fn small(v: AttributeValue<Slice>) -> u8 {
    match v {
        AttributeValue::Inline(dw::DwInl(x)) | AttributeValue::CallingConvention(dw::DwCc(x)) => x,
        other => other.udata_value().unwrap_or(0) as u8,
    }
}

pub(super) fn flag(v: AttributeValue<Slice>, bit: u8) -> u8 {
    match v {
        AttributeValue::Flag(false) => 0,
        _ => bit,
    }
}

/// `DW_AT_const_value` as a 64-bit integer (blocks: their first eight bytes, as stored).
/// GCC writes negative constants as `DW_FORM_sdata`, so fixed-size data forms are unsigned.
pub(super) fn constant(v: AttributeValue<Slice>) -> i64 {
    match v {
        AttributeValue::Sdata(x) => x,
        AttributeValue::Udata(x) => x as i64,
        AttributeValue::Data1(x) => i64::from(x),
        AttributeValue::Data2(x) => i64::from(x),
        AttributeValue::Data4(x) => i64::from(x),
        AttributeValue::Data8(x) => x as i64,
        AttributeValue::Block(b) => {
            let bytes = b.slice();
            let mut buf = [0u8; 8];
            let n = bytes.len().min(8);
            buf[..n].copy_from_slice(&bytes[..n]);
            i64::from_le_bytes(buf)
        }
        _ => 0,
    }
}

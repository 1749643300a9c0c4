//! Variables in scope: for chosen concrete functions and inline sites, every parameter and
//! local variable, each location it has, and the addresses where that location holds.
//!
//! A query, not part of the scan: a kernel has 15 M DIEs and a probe asks about a few
//! scopes. The scopes are grouped by unit and each unit is read once, front to back, in
//! parallel over units, jumping by `DW_AT_sibling` over subtrees that hold no wanted scope.
//! A scope the walk does not meet as a DIE start is not found; nothing is ever parsed from a
//! guessed offset.
//!
//! A scope's variables are its `DW_TAG_formal_parameter` and `DW_TAG_variable` children,
//! also inside `DW_TAG_lexical_block`s, but not inside nested inline sites or functions:
//! those are scopes of their own. Name and type are read through `DW_AT_abstract_origin`
//! wherever it points (another unit, the dwz supplementary file). A block-scope `extern`
//! declaration is skipped: it lives elsewhere.
//!
//! Table `variables`, one row per (variable, location), grouped by scope (in DIE order),
//! each scope's variables in source order:
//!
//! | column | |
//! |---|---|
//! | `scope`, `die` | the scope's DIE and the variable's |
//! | `name`, `type` | strings; the type spelt as `stap -L` does (see `dwarf/types.rs`) |
//! | `param` | 1 for a formal parameter |
//! | `position` | the variable's place in its scope, in source order |
//! | `block` | the innermost lexical block with code around it, or `NONE` |
//! | `low`, `high` | where the location holds: `[0, u64::MAX)` for a single expression, a constant or no location; a list entry's own range; `low == high` for an empty entry (flag `VIEW_ONLY`) |
//! | `kind`, `reg`, `value`, `flags` | the location as [`super::location::classify`] sees it; `value` is the constant, or the offset/address of a memory location ([`super::location::with_address`]) |
//!
//! Table `blocks`: `block`, `low`, `high`, each range of each lexical block met.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gimli::constants as dw;
use gimli::{AttributeValue, Expression, UnitOffset};
use rayon::prelude::*;
use rustc_hash::FxHashMap;

use super::location::{classify, flag, with_address, Loc};
use super::units::Units;
use super::walk::{constant, flag as attr_flag, read_extent, widen_empty, Extent};
use super::{types, Ctx, Slice, NONE};
use crate::error::Result;
use crate::table::{Chunk, Strings, Table};

/// The answer: tables `variables` and `blocks`, and how many scopes were found.
pub struct Answer {
    pub tables: Vec<(&'static str, Table)>,
    pub requested: usize,
    pub found: usize,
    /// Units that could not be read whole, one line each.
    pub errors: Vec<String>,
}

/// The variables of `scopes` (global DIE names, in any order, repeats allowed), their
/// strings merged into `strings`.
pub fn scope_variables<'d>(dwarf: &gimli::Dwarf<Slice<'d>>, scopes: &[u64], strings: &mut Strings<'d>) -> Answer {
    let units = Units::new(dwarf);
    let mut wanted = scopes.to_vec();
    wanted.sort_unstable();
    wanted.dedup();
    let parts: Vec<Part> =
        by_unit(&units, &wanted).into_par_iter().map(|(i, offs)| read_unit(&units, i, &offs)).collect();
    let mut rows = Rows::default().into_tables();
    let (mut found, mut errors) = (0, Vec::new());
    for part in parts {
        let map = strings.absorb(&part.strings);
        for ((_, mine), (_, mut theirs)) in rows.iter_mut().zip(part.rows.into_tables()) {
            theirs.remap(&map);
            mine.append(theirs);
        }
        found += part.found;
        errors.extend(part.error);
    }
    Answer { tables: rows, requested: wanted.len(), found, errors }
}

/// `wanted` (sorted) split by unit, as offsets within it; DIEs outside every unit are dropped.
fn by_unit(units: &Units, wanted: &[u64]) -> Vec<(usize, Vec<UnitOffset>)> {
    let mut groups: Vec<(usize, Vec<UnitOffset>)> = Vec::new();
    for (i, off) in wanted.iter().filter_map(|&die| units.find(die)) {
        match groups.last_mut() {
            Some((j, offs)) if *j == i => offs.push(off),
            _ => groups.push((i, vec![off])),
        }
    }
    groups
}

/// What one unit yielded, in its own string pool.
#[derive(Default)]
struct Part<'d> {
    strings: Strings<'d>,
    rows: Rows,
    found: usize,
    error: Option<String>,
}

/// Reads one unit under a guard: a unit that makes the reader panic yields an error and
/// no rows, never a panic across the binding.
fn read_unit<'d>(units: &Units<'_, 'd>, i: usize, wanted: &[UnitOffset]) -> Part<'d> {
    let run = || {
        let Some(cx) = units.ctx(i) else {
            return Part { error: units.error(i), ..Part::default() };
        };
        let mut w = Walker {
            units,
            part: Part::default(),
            origins: FxHashMap::default(),
            types: FxHashMap::default(),
            locs: Vec::new(),
        };
        let walked = w.walk(&cx, wanted);
        w.part.error = walked.err().map(|e| format!("unit at {:#x}: {e}", units.offset(i)));
        w.part.rows.vars = std::mem::take(&mut w.part.rows.vars).in_source_order();
        w.part
    };
    catch_unwind(AssertUnwindSafe(run)).unwrap_or_else(|_| Part {
        error: Some(format!("unit at {:#x}: internal error while reading variables", units.offset(i))),
        ..Part::default()
    })
}

/// Where the walk is: inside a wanted scope (its DIE, and the innermost lexical block with
/// code) or outside every one ([`OUTSIDE`]).
#[derive(Clone, Copy)]
struct Frame {
    scope: u64,
    block: u64,
}

const OUTSIDE: Frame = Frame { scope: NONE, block: NONE };

struct Walker<'u, 'a, 'd> {
    units: &'u Units<'a, 'd>,
    part: Part<'d>,
    /// Abstract origin → (name, type DIE).
    origins: FxHashMap<u64, (u32, u64)>,
    /// Type DIE → its spelling.
    types: FxHashMap<u64, u32>,
    /// The locations of the variable at hand (kept to save an allocation per variable).
    locs: Vec<(u64, u64, Loc)>,
}

/// One variable's columns, shared by the rows of its locations.
struct Var {
    scope: u64,
    die: u64,
    name: u32,
    ty: u32,
    param: u8,
    block: u64,
    /// Where it comes in the source: its abstract origin, else its own DIE.
    source: u64,
}

/// The attributes of a variable DIE that matter here.
#[derive(Default)]
struct VarAttrs<'d> {
    name: Option<AttributeValue<Slice<'d>>>,
    ty: Option<u64>,
    origin: Option<u64>,
    location: Option<AttributeValue<Slice<'d>>>,
    constant: Option<i64>,
    declaration: bool,
}

type Raw<'a, 'd> = gimli::EntriesRaw<'a, Slice<'d>>;

impl<'d> Walker<'_, '_, 'd> {
    /// One pass over the unit's DIEs, in offset order, meeting the `wanted` offsets (sorted)
    /// on the way. Subtrees that hold no wanted scope and no variable of one are jumped
    /// over (most of a unit is types), and the pass ends after the last wanted scope.
    fn walk(&mut self, cx: &Ctx<'d, '_>, wanted: &[UnitOffset]) -> Result<()> {
        let mut dies = Cursor::new(cx.unit)?;
        let mut stack: Vec<Frame> = Vec::with_capacity(32);
        let mut next = 0;
        while !dies.raw.is_empty() {
            let depth = dies.depth();
            let offset = dies.raw.next_offset();
            let Some(abbrev) = dies.raw.read_abbreviation()? else { continue };
            stack.truncate(depth);
            let parent = stack.last().copied().unwrap_or(OUTSIDE);
            // Wanted offsets passed over were no DIE starts.
            while next < wanted.len() && wanted[next] < offset {
                next += 1;
            }
            let is_wanted = next < wanted.len() && wanted[next] == offset;
            next += usize::from(is_wanted);
            let die = cx.die(offset);
            let raw = &mut dies.raw;
            let me = match abbrev.tag() {
                dw::DW_TAG_subprogram | dw::DW_TAG_inlined_subroutine if is_wanted => {
                    self.part.found += 1;
                    skip(raw, abbrev)?;
                    Frame { scope: die, block: NONE }
                }
                dw::DW_TAG_lexical_block if parent.scope != NONE => {
                    // A block with no extent at all is transparent (gdb reads its variables as
                    // the enclosing block's); one whose extent is empty (`low_pc == high_pc`)
                    // lost its code, and its variables are in scope nowhere.
                    let declared = self.block(cx, raw, abbrev, die)?;
                    Frame { block: if declared { die } else { parent.block }, ..parent }
                }
                tag @ (dw::DW_TAG_formal_parameter | dw::DW_TAG_variable) if parent.scope != NONE => {
                    self.variable(cx, raw, abbrev, &parent, die, tag == dw::DW_TAG_formal_parameter)?;
                    parent
                }
                // Anything else holds no variable of a wanted scope, but may hold a scope.
                _ => {
                    let sibling = skip_to_sibling(raw, abbrev)?;
                    let holds_wanted = |end: UnitOffset| wanted.get(next).is_some_and(|&w| w < end);
                    if sibling.is_some_and(|end| end > offset && !holds_wanted(end) && dies.jump(end, depth)) {
                        continue;
                    }
                    OUTSIDE
                }
            };
            if abbrev.has_children() {
                stack.push(me);
            }
            if next == wanted.len() && stack.iter().all(|f| f.scope == NONE) {
                break;
            }
        }
        Ok(())
    }

    /// A lexical block: its ranges go to `blocks`; true if it has any.
    fn block(
        &mut self,
        cx: &Ctx<'d, '_>,
        raw: &mut Raw<'_, 'd>,
        abbrev: &gimli::Abbreviation,
        die: u64,
    ) -> Result<bool> {
        let mut ext = Extent::default();
        let mut declared = false;
        for spec in abbrev.attributes() {
            let attr = raw.read_attribute(*spec)?;
            declared |= read_extent(cx, &mut ext, attr.name(), attr.value());
        }
        let b = &mut self.part.rows.blocks;
        ext.each(cx, |lo, hi| {
            b.block.push(die);
            b.low.push(lo);
            b.high.push(hi);
        });
        Ok(declared)
    }

    fn variable(
        &mut self,
        cx: &Ctx<'d, '_>,
        raw: &mut Raw<'_, 'd>,
        abbrev: &gimli::Abbreviation,
        frame: &Frame,
        die: u64,
        param: bool,
    ) -> Result<()> {
        let mut a = VarAttrs::default();
        for spec in abbrev.attributes() {
            let attr = raw.read_attribute(*spec)?;
            let v = attr.value();
            match attr.name() {
                dw::DW_AT_name => a.name = Some(v),
                dw::DW_AT_type => a.ty = Some(cx.reference(v)),
                dw::DW_AT_abstract_origin => a.origin = Some(cx.reference(v)),
                dw::DW_AT_location => a.location = Some(v),
                dw::DW_AT_const_value => a.constant = Some(constant(v)),
                dw::DW_AT_declaration => a.declaration = attr_flag(v, 1) != 0,
                _ => {}
            }
        }
        // A block-scope `extern` declares a variable that lives elsewhere.
        if a.declaration {
            return Ok(());
        }
        let (name, ty) = self.name_and_type(cx, &a);
        let (scope, block, source) = (frame.scope, frame.block, a.origin.unwrap_or(die));
        let var = Var { scope, die, name, ty, param: u8::from(param), block, source };
        locations(cx, &a, &mut self.locs);
        for &(low, high, loc) in &self.locs {
            self.part.rows.vars.push(&var, low, high, loc);
        }
        Ok(())
    }

    /// The variable's name and type, from its own DIE or else from its abstract origin.
    fn name_and_type(&mut self, cx: &Ctx<'d, '_>, a: &VarAttrs<'d>) -> (u32, u32) {
        let mut name = a.name.map_or(0, |v| cx.string(&mut self.part.strings, v));
        let mut ty = a.ty.unwrap_or(NONE);
        if let (true, Some(origin)) = (name == 0 || ty == NONE, a.origin) {
            let (n, t) = self.origin(origin);
            name = if name == 0 { n } else { name };
            ty = if ty == NONE { t } else { ty };
        }
        (name, self.type_name(ty))
    }

    /// Name and type DIE of an abstract origin, following its own origins (a clone's
    /// parameter points to the abstract one) a few steps at most.
    fn origin(&mut self, die: u64) -> (u32, u64) {
        if let Some(&found) = self.origins.get(&die) {
            return found;
        }
        let (mut name, mut ty, mut at) = (None, NONE, die);
        for _ in 0..8 {
            let Some(d) = self.units.die(at) else { break };
            name = name.or(d.name);
            ty = if ty == NONE { d.ty } else { ty };
            if (name.is_some() && ty != NONE) || d.origin == NONE {
                break;
            }
            at = d.origin;
        }
        let found = (name.map_or(0, |n| self.part.strings.intern_str(n)), ty);
        self.origins.insert(die, found);
        found
    }

    fn type_name(&mut self, ty: u64) -> u32 {
        if ty == NONE {
            return 0;
        }
        if let Some(&s) = self.types.get(&ty) {
            return s;
        }
        let s = self.part.strings.intern_owned(types::spell(self.units, ty).into_bytes());
        self.types.insert(ty, s);
        s
    }
}

fn skip(raw: &mut Raw<'_, '_>, abbrev: &gimli::Abbreviation) -> Result<()> {
    Ok(raw.skip_attributes(abbrev.attributes())?)
}

/// Skips a DIE's attributes but `DW_AT_sibling`, where the DIE after its subtree starts.
fn skip_to_sibling(raw: &mut Raw<'_, '_>, abbrev: &gimli::Abbreviation) -> Result<Option<UnitOffset>> {
    let specs = abbrev.attributes();
    let at = if abbrev.has_children() { specs.iter().position(|s| s.name() == dw::DW_AT_sibling) } else { None };
    let Some(at) = at else {
        skip(raw, abbrev)?;
        return Ok(None);
    };
    raw.skip_attributes(&specs[..at])?;
    let sibling = raw.read_attribute(specs[at])?;
    raw.skip_attributes(&specs[at + 1..])?;
    Ok(match sibling.value() {
        AttributeValue::UnitRef(o) => Some(o),
        _ => None,
    })
}

/// A unit's DIEs in offset order, that can jump over a subtree.
struct Cursor<'u, 'd> {
    unit: &'u gimli::Unit<Slice<'d>>,
    raw: Raw<'u, 'd>,
    /// The depth of where the reader started: it counts depth from there.
    base: isize,
}

impl<'u, 'd> Cursor<'u, 'd> {
    fn new(unit: &'u gimli::Unit<Slice<'d>>) -> Result<Self> {
        Ok(Cursor { unit, raw: unit.entries_raw(None)?, base: 0 })
    }

    /// The depth of the next DIE.
    fn depth(&self) -> usize {
        (self.base + self.raw.next_depth()).max(0) as usize
    }

    /// Continues at `offset`, a DIE at `depth`; false (and nothing changed) if it is
    /// outside the unit.
    fn jump(&mut self, offset: UnitOffset, depth: usize) -> bool {
        let Ok(raw) = self.unit.entries_raw(Some(offset)) else { return false };
        self.raw = raw;
        self.base = depth as isize;
        true
    }
}

/// Everywhere in the scope: a single expression's or a constant's range.
const EVERYWHERE: (u64, u64) = (0, u64::MAX);

/// Each location of a variable with the addresses `[low, high)` where it holds. A single
/// expression, a constant or nothing at all holds everywhere; a location list's entries
/// hold where they say, an empty `[pc, pc)` one only in a location view of `pc`
/// ([`flag::VIEW_ONLY`], low = high = pc).
fn locations<'d>(cx: &Ctx<'d, '_>, a: &VarAttrs<'d>, out: &mut Vec<(u64, u64, Loc)>) {
    out.clear();
    let (lo, hi) = EVERYWHERE;
    let enc = cx.unit.encoding();
    let expr = match a.location {
        None => return out.push((lo, hi, a.constant.map_or(Loc::NONE, const_value))),
        Some(AttributeValue::Exprloc(e)) => e,
        Some(AttributeValue::Block(b)) => Expression(b),
        Some(list) => return location_list(cx, list, out),
    };
    out.push((lo, hi, described(expr, enc)));
}

/// A `DW_AT_const_value`, flagged as one (perf probe reads it, not an expression's literal).
fn const_value(v: i64) -> Loc {
    Loc::constant(v).with_flags(flag::CONST_VALUE)
}

fn described(expr: Expression<Slice>, enc: gimli::Encoding) -> Loc {
    with_address(classify(expr, enc), expr, enc)
}

/// A location list's entries, all flagged [`flag::LIST`]. A list without entries holds
/// nothing anywhere (kind `NONE`); a list that cannot be read to its end is one
/// `ERROR` row, as no part of it can be trusted.
fn location_list<'d>(cx: &Ctx<'d, '_>, v: AttributeValue<Slice<'d>>, out: &mut Vec<(u64, u64, Loc)>) {
    let (lo, hi) = EVERYWHERE;
    if list_entries(cx, v, out).is_none() {
        out.clear();
        out.push((lo, hi, Loc::ERROR));
    } else if out.is_empty() {
        out.push((lo, hi, Loc::NONE));
    }
    for (_, _, loc) in out.iter_mut() {
        *loc = loc.with_flags(flag::LIST);
    }
}

/// Appends the entries of a location list; `None` if it cannot be read to its end.
fn list_entries<'d>(cx: &Ctx<'d, '_>, v: AttributeValue<Slice<'d>>, out: &mut Vec<(u64, u64, Loc)>) -> Option<()> {
    let enc = cx.unit.encoding();
    let mut list = cx.dwarf.attr_locations(cx.unit, v).ok()??;
    while let Some(raw) = list.next_raw().ok()? {
        let (raw, empty) = widen_empty(raw);
        let Some(e) = list.convert_raw(raw).ok()? else { continue };
        let loc = described(e.data, enc);
        out.push(match empty {
            true => (e.range.begin, e.range.begin, loc.with_flags(flag::VIEW_ONLY)),
            false => (e.range.begin, e.range.end, loc),
        });
    }
    Some(())
}

/// The columns of both tables.
#[derive(Default)]
struct Rows {
    vars: Variables,
    blocks: Blocks,
}

#[derive(Default)]
struct Variables {
    scope: Vec<u64>,
    die: Vec<u64>,
    name: Vec<u32>,
    ty: Vec<u32>,
    param: Vec<u8>,
    block: Vec<u64>,
    low: Vec<u64>,
    high: Vec<u64>,
    kind: Vec<u8>,
    reg: Vec<u16>,
    value: Vec<i64>,
    flags: Vec<u8>,
    /// Each row's [`Var::source`], to order by: not a column.
    source: Vec<u64>,
    /// Filled in by [`Variables::in_source_order`].
    position: Vec<u16>,
}

impl Variables {
    fn push(&mut self, v: &Var, low: u64, high: u64, loc: Loc) {
        self.scope.push(v.scope);
        self.die.push(v.die);
        self.name.push(v.name);
        self.ty.push(v.ty);
        self.param.push(v.param);
        self.block.push(v.block);
        self.low.push(low);
        self.high.push(high);
        self.kind.push(loc.kind);
        self.reg.push(loc.reg);
        self.value.push(loc.value);
        self.flags.push(loc.flags);
        self.source.push(v.source);
    }

    /// The rows grouped by scope, each scope's variables in source order, numbered.
    ///
    /// The DIEs do not say it: GCC lists an inline site's parameters last to first, and an
    /// IPA-SRA clone's removed parameter after the others. Their abstract origins, written
    /// as the source declares them, do. A nested wanted scope also interleaves its rows
    /// with its parent's.
    fn in_source_order(mut self) -> Variables {
        let mut order: Vec<usize> = (0..self.scope.len()).collect();
        order.sort_by_key(|&i| (self.scope[i], self.source[i], self.die[i], i));
        fn permute<T: Copy>(v: &mut Vec<T>, order: &[usize]) {
            *v = order.iter().map(|&i| v[i]).collect();
        }
        permute(&mut self.scope, &order);
        permute(&mut self.die, &order);
        permute(&mut self.name, &order);
        permute(&mut self.ty, &order);
        permute(&mut self.param, &order);
        permute(&mut self.block, &order);
        permute(&mut self.low, &order);
        permute(&mut self.high, &order);
        permute(&mut self.kind, &order);
        permute(&mut self.reg, &order);
        permute(&mut self.value, &order);
        permute(&mut self.flags, &order);
        self.source.clear();
        let mut position = 0u16;
        self.position = (0..self.scope.len())
            .map(|i| {
                if i > 0 && self.scope[i] != self.scope[i - 1] {
                    position = 0;
                } else if i > 0 && self.die[i] != self.die[i - 1] {
                    position = position.saturating_add(1);
                }
                position
            })
            .collect();
        self
    }
}

#[derive(Default)]
struct Blocks {
    block: Vec<u64>,
    low: Vec<u64>,
    high: Vec<u64>,
}

impl Rows {
    fn into_tables(self) -> Vec<(&'static str, Table)> {
        let Rows { vars: v, blocks: b } = self;
        vec![
            (
                "variables",
                Table::new(vec![
                    ("scope", Chunk::U64(v.scope)),
                    ("die", Chunk::U64(v.die)),
                    ("name", Chunk::Str(v.name)),
                    ("type", Chunk::Str(v.ty)),
                    ("param", Chunk::U8(v.param)),
                    ("position", Chunk::U16(v.position)),
                    ("block", Chunk::U64(v.block)),
                    ("low", Chunk::U64(v.low)),
                    ("high", Chunk::U64(v.high)),
                    ("kind", Chunk::U8(v.kind)),
                    ("reg", Chunk::U16(v.reg)),
                    ("value", Chunk::I64(v.value)),
                    ("flags", Chunk::U8(v.flags)),
                ]),
            ),
            (
                "blocks",
                Table::new(vec![
                    ("block", Chunk::U64(b.block)),
                    ("low", Chunk::U64(b.low)),
                    ("high", Chunk::U64(b.high)),
                ]),
            ),
        ]
    }
}

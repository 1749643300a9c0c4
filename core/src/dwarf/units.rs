//! Random access to DIEs by their global name: every unit of a file and of its dwz
//! supplementary file, indexed by offset and parsed at most once, when first needed.
//!
//! The scan reads units front to back and never needs this; a query that follows
//! `DW_AT_abstract_origin` or `DW_AT_type` to wherever it points does.

use std::sync::OnceLock;

use gimli::constants as dw;
use gimli::{DebugInfoOffset, UnitOffset};

use super::{Ctx, Slice, NONE, SUP_BIT};

struct Slot<'d> {
    /// Global name of the first byte of the unit header, and of the byte after the unit.
    start: u64,
    end: u64,
    header: gimli::UnitHeader<Slice<'d>>,
    /// `None` once parsing failed: the unit's DIEs are then unreadable.
    unit: OnceLock<Option<gimli::Unit<Slice<'d>>>>,
}

/// The units of one file (and its supplementary file), in offset order.
pub struct Units<'a, 'd> {
    dwarf: &'a gimli::Dwarf<Slice<'d>>,
    slots: Vec<Slot<'d>>,
}

/// The few attributes of a DIE that naming needs.
#[derive(Clone, Copy)]
pub struct Die<'d> {
    pub tag: dw::DwTag,
    pub name: Option<&'d [u8]>,
    /// `DW_AT_type`, as a global DIE name ([`NONE`] if absent).
    pub ty: u64,
    /// `DW_AT_abstract_origin` ([`NONE`] if absent).
    pub origin: u64,
    pub has_children: bool,
    /// `DW_AT_byte_size` (0 if absent) and `DW_AT_encoding` (0 if absent): a type's.
    pub byte_size: u64,
    pub encoding: u8,
}

impl<'a, 'd> Units<'a, 'd> {
    /// Reads every unit header of `dwarf` and of its supplementary file. A header that
    /// cannot be read ends its section, as in the scan.
    pub fn new(dwarf: &'a gimli::Dwarf<Slice<'d>>) -> Self {
        let mut slots = Vec::new();
        headers(dwarf, 0, &mut slots);
        if let Some(sup) = dwarf.sup() {
            headers(sup, SUP_BIT, &mut slots);
        }
        Units { dwarf, slots }
    }

    /// The unit holding DIE `die`, and the DIE's offset within it.
    pub fn find(&self, die: u64) -> Option<(usize, UnitOffset)> {
        let i = self.slots.partition_point(|s| s.start <= die).checked_sub(1)?;
        let slot = &self.slots[i];
        if die >= slot.end {
            return None;
        }
        let offset = DebugInfoOffset((die & !SUP_BIT) as usize).to_unit_offset(&slot.header)?;
        Some((i, offset))
    }

    /// The reading context of unit `i`, parsing it on first use.
    pub fn ctx(&self, i: usize) -> Option<Ctx<'d, '_>> {
        let slot = self.slots.get(i)?;
        let tag = slot.start & SUP_BIT;
        let dwarf = if tag == 0 { self.dwarf } else { self.dwarf.sup()? };
        let unit = slot.unit.get_or_init(|| dwarf.unit(slot.header).ok()).as_ref()?;
        Some(Ctx { dwarf, unit, comp_dir: unit.comp_dir.map(|s| s.slice()), tag })
    }

    /// Where unit `i` starts in its file's `.debug_info`, for messages.
    pub fn offset(&self, i: usize) -> u64 {
        self.slots.get(i).map_or(0, |s| s.start & !SUP_BIT)
    }

    /// Why unit `i` cannot be read, if it cannot.
    pub fn error(&self, i: usize) -> Option<String> {
        let slot = self.slots.get(i)?;
        let dwarf = if slot.start & SUP_BIT == 0 { self.dwarf } else { self.dwarf.sup()? };
        dwarf.unit(slot.header).err().map(|e| format!("unit at {:#x}: {e}", self.offset(i)))
    }

    /// The DIE named `die`, if it is one that can be read.
    pub fn die(&self, die: u64) -> Option<Die<'d>> {
        let (i, offset) = self.find(die)?;
        let cx = self.ctx(i)?;
        read_die(&cx, offset)
    }

    /// The children of DIE `die`, in order (not their descendants).
    pub fn children(&self, die: u64) -> Vec<Die<'d>> {
        let mut out = Vec::new();
        let Some((i, offset)) = self.find(die) else { return out };
        let Some(cx) = self.ctx(i) else { return out };
        let Ok(mut raw) = cx.unit.entries_raw(Some(offset)) else { return out };
        let Ok(Some(parent)) = raw.read_abbreviation() else { return out };
        if !parent.has_children() || !skip(&mut raw, parent) {
            return out;
        }
        // The parent was at depth 0, its children are at 1; back at 0, they have ended.
        while !raw.is_empty() && raw.next_depth() > 0 {
            let depth = raw.next_depth();
            let Ok(next) = raw.read_abbreviation() else { break };
            let Some(abbrev) = next else { continue };
            if depth == 1 {
                match read_attributes(&cx, &mut raw, abbrev) {
                    Some(d) => out.push(d),
                    None => break,
                }
            } else if !skip(&mut raw, abbrev) {
                break;
            }
        }
        out
    }
}

fn headers<'d>(dwarf: &gimli::Dwarf<Slice<'d>>, tag: u64, out: &mut Vec<Slot<'d>>) {
    let mut iter = dwarf.units();
    while let Ok(Some(header)) = iter.next() {
        let Some(start) = header.debug_info_offset().map(|o| o.0 as u64 | tag) else { break };
        let end = start + header.length_including_self() as u64;
        out.push(Slot { start, end, header, unit: OnceLock::new() });
    }
}

fn skip(raw: &mut gimli::EntriesRaw<'_, Slice<'_>>, abbrev: &gimli::Abbreviation) -> bool {
    raw.skip_attributes(abbrev.attributes()).is_ok()
}

/// Reads the DIE at `offset` of the unit of `cx`.
fn read_die<'d>(cx: &Ctx<'d, '_>, offset: UnitOffset) -> Option<Die<'d>> {
    let mut raw = cx.unit.entries_raw(Some(offset)).ok()?;
    let abbrev = raw.read_abbreviation().ok()??;
    read_attributes(cx, &mut raw, abbrev)
}

fn read_attributes<'d>(
    cx: &Ctx<'d, '_>,
    raw: &mut gimli::EntriesRaw<'_, Slice<'d>>,
    abbrev: &gimli::Abbreviation,
) -> Option<Die<'d>> {
    let mut d = Die {
        tag: abbrev.tag(),
        name: None,
        ty: NONE,
        origin: NONE,
        has_children: abbrev.has_children(),
        byte_size: 0,
        encoding: 0,
    };
    for spec in abbrev.attributes() {
        let attr = raw.read_attribute(*spec).ok()?;
        match attr.name() {
            dw::DW_AT_name => d.name = cx.dwarf.attr_string(cx.unit, attr.value()).ok().map(|s| s.slice()),
            dw::DW_AT_type => d.ty = cx.reference(attr.value()),
            dw::DW_AT_abstract_origin => d.origin = cx.reference(attr.value()),
            dw::DW_AT_byte_size => d.byte_size = attr.udata_value().unwrap_or(0),
            dw::DW_AT_encoding => d.encoding = attr.u8_value().unwrap_or(0),
            _ => {}
        }
    }
    Some(d)
}

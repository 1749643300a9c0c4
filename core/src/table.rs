//! Columnar tables: what the core hands to Python.
//!
//! A table is a list of named, typed columns of equal length. String columns hold `u32`
//! indices into one [`Strings`] pool per scan, so that a name repeated in every unit is stored
//! once and becomes a dictionary-encoded Arrow column on the Python side.

use std::borrow::Cow;
use rayon::prelude::*;
use rustc_hash::FxHashMap;

/// One column of plain machine values.
#[derive(Debug)]
pub enum Column {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    /// Indices into the scan's string pool.
    Str(Vec<u32>),
}

impl Column {
    pub fn len(&self) -> usize {
        match self {
            Column::U8(v) => v.len(),
            Column::U16(v) => v.len(),
            Column::U32(v) | Column::Str(v) => v.len(),
            Column::U64(v) => v.len(),
            Column::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy dtype string of the column's elements (native byte order).
    pub fn dtype(&self) -> &'static str {
        match self {
            Column::U8(_) => "u1",
            Column::U16(_) => "u2",
            Column::U32(_) => "u4",
            Column::Str(_) => "str",
            Column::U64(_) => "u8",
            Column::I64(_) => "i8",
        }
    }

    /// The column's elements as native-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        fn raw<T: Copy>(v: &[T]) -> &[u8] {
            // SAFETY: plain integer types with no padding; the slice covers exactly the
            // initialised elements, and u8 has alignment 1.
            unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        }
        match self {
            Column::U8(v) => v,
            Column::U16(v) => raw(v),
            Column::U32(v) | Column::Str(v) => raw(v),
            Column::U64(v) => raw(v),
            Column::I64(v) => raw(v),
        }
    }

    /// Concatenates the parts of one column (one part per unit), translating the string
    /// indices of part `i` through `remaps[i]`.
    fn concat(parts: Vec<Column>, remaps: &[Vec<u32>]) -> Column {
        let total = parts.iter().map(Column::len).sum();
        let mut out = match parts.first() {
            Some(c) => empty_like(c),
            None => return Column::U8(Vec::new()),
        };
        out.reserve(total);
        for (part, remap) in parts.into_iter().zip(remaps) {
            out.extend(part, Some(remap));
        }
        out
    }

    fn reserve(&mut self, n: usize) {
        match self {
            Column::U8(v) => v.reserve_exact(n),
            Column::U16(v) => v.reserve_exact(n),
            Column::U32(v) | Column::Str(v) => v.reserve_exact(n),
            Column::U64(v) => v.reserve_exact(n),
            Column::I64(v) => v.reserve_exact(n),
        }
    }

    fn extend(&mut self, other: Column, remap: Option<&[u32]>) {
        match (self, other) {
            (Column::U8(a), Column::U8(b)) => a.extend(b),
            (Column::U16(a), Column::U16(b)) => a.extend(b),
            (Column::U32(a), Column::U32(b)) => a.extend(b),
            (Column::U64(a), Column::U64(b)) => a.extend(b),
            (Column::I64(a), Column::I64(b)) => a.extend(b),
            (Column::Str(a), Column::Str(b)) => match remap {
                Some(m) => a.extend(b.into_iter().map(|i| m[i as usize])),
                None => a.extend(b),
            },
            _ => unreachable!("tables of one kind always have the same column types"),
        }
    }
}

/// A named set of equal-length columns.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<(&'static str, Column)>,
}

impl Table {
    pub fn new(columns: Vec<(&'static str, Column)>) -> Self {
        Table { columns }
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// Concatenates tables of one schema (one per unit), column by column in parallel.
    pub fn concat(schema: Table, parts: Vec<Table>, remaps: &[Vec<u32>]) -> Table {
        let names: Vec<&'static str> = schema.columns.iter().map(|(n, _)| *n).collect();
        let mut by_column: Vec<Vec<Column>> = schema.columns.into_iter().map(|(_, c)| vec![c]).collect();
        for part in parts {
            for (slot, (_, c)) in by_column.iter_mut().zip(part.columns) {
                slot.push(c);
            }
        }
        // The schema's own (empty) column leads each list; give it an empty remap.
        let mut all_remaps = Vec::with_capacity(remaps.len() + 1);
        all_remaps.push(Vec::new());
        all_remaps.extend_from_slice(remaps);
        let columns = by_column.into_par_iter().map(|cs| Column::concat(cs, &all_remaps)).collect::<Vec<_>>();
        Table::new(names.into_iter().zip(columns).collect())
    }

    /// Appends `other` (same schema). Its string indices refer to a pool that `remap`
    /// translates into ours, or to ours already when `remap` is `None`.
    pub fn append(&mut self, other: Table, remap: Option<&[u32]>) {
        if self.columns.is_empty() {
            // First part: adopt its schema, but still translate its string indices.
            self.columns = other
                .columns
                .iter()
                .map(|(n, c)| (*n, empty_like(c)))
                .collect();
        }
        for ((name, mine), (theirs_name, theirs)) in self.columns.iter_mut().zip(other.columns) {
            debug_assert_eq!(*name, theirs_name);
            mine.extend(theirs, remap);
        }
    }
}

fn empty_like(c: &Column) -> Column {
    match c {
        Column::U8(_) => Column::U8(Vec::new()),
        Column::U16(_) => Column::U16(Vec::new()),
        Column::U32(_) => Column::U32(Vec::new()),
        Column::U64(_) => Column::U64(Vec::new()),
        Column::I64(_) => Column::I64(Vec::new()),
        Column::Str(_) => Column::Str(Vec::new()),
    }
}

/// An interning string pool. Index 0 is always the empty string, so "absent" needs no
/// separate null mask.
#[derive(Debug)]
pub struct Strings<'a> {
    index: FxHashMap<Cow<'a, [u8]>, u32>,
    pub items: Vec<Cow<'a, [u8]>>,
}

impl Default for Strings<'_> {
    fn default() -> Self {
        let mut s = Strings {
            index: FxHashMap::default(),
            items: Vec::new(),
        };
        s.intern(Cow::Borrowed(b""));
        s
    }
}

impl<'a> Strings<'a> {
    pub fn intern(&mut self, s: Cow<'a, [u8]>) -> u32 {
        if let Some(&i) = self.index.get(s.as_ref()) {
            return i;
        }
        let i = self.items.len() as u32;
        self.items.push(s.clone());
        self.index.insert(s, i);
        i
    }

    pub fn intern_str(&mut self, s: &'a [u8]) -> u32 {
        self.intern(Cow::Borrowed(s))
    }

    pub fn intern_owned(&mut self, s: Vec<u8>) -> u32 {
        self.intern(Cow::Owned(s))
    }

    /// Interns every string of `other` and returns the map from its indices to ours.
    pub fn absorb(&mut self, other: &Strings<'a>) -> Vec<u32> {
        other.items.iter().map(|s| self.intern(s.clone())).collect()
    }

    /// Arrow's large-string layout: `i64` offsets (n + 1) and the concatenated bytes.
    pub fn to_arrow(&self) -> (Vec<i64>, Vec<u8>) {
        let total: usize = self.items.iter().map(|s| s.len()).sum();
        let mut offsets = Vec::with_capacity(self.items.len() + 1);
        let mut data = Vec::with_capacity(total);
        offsets.push(0);
        for s in &self.items {
            data.extend_from_slice(s);
            offsets.push(data.len() as i64);
        }
        (offsets, data)
    }
}

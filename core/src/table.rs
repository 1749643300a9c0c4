//! Columnar tables: what the core hands to Python.
//!
//! A table is a list of named, typed columns of equal length. String columns hold `u32`
//! indices into one [`Strings`] pool per scan, so that a name repeated in every unit is stored
//! once and becomes a dictionary-encoded Arrow column on the Python side.
//!
//! A column is a list of chunks (one per DWARF unit, say) that are never concatenated here:
//! the binding copies them once, straight into the Python buffer.

use std::borrow::Cow;

use rustc_hash::FxHashMap;

/// The answer to one query of a binary: facts about it (`info`), its tables, and the
/// string pool their string columns index, owning all their data.
pub struct Scan {
    pub info: Vec<(&'static str, String)>,
    pub tables: Vec<(&'static str, Table)>,
    /// The string pool in Arrow's large-string layout.
    pub string_offsets: Vec<i64>,
    pub string_data: Vec<u8>,
}

/// One chunk of plain machine values.
#[derive(Debug)]
pub enum Chunk {
    U8(Vec<u8>),
    U16(Vec<u16>),
    U32(Vec<u32>),
    U64(Vec<u64>),
    I64(Vec<i64>),
    /// Indices into a string pool.
    Str(Vec<u32>),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Chunk::U8(v) => v.len(),
            Chunk::U16(v) => v.len(),
            Chunk::U32(v) | Chunk::Str(v) => v.len(),
            Chunk::U64(v) => v.len(),
            Chunk::I64(v) => v.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The NumPy dtype string of the elements (native byte order); `"str"` for pool indices.
    pub fn dtype(&self) -> &'static str {
        match self {
            Chunk::U8(_) => "u1",
            Chunk::U16(_) => "u2",
            Chunk::U32(_) => "u4",
            Chunk::Str(_) => "str",
            Chunk::U64(_) => "u8",
            Chunk::I64(_) => "i8",
        }
    }

    /// The elements as native-endian bytes.
    pub fn bytes(&self) -> &[u8] {
        fn raw<T: Copy>(v: &[T]) -> &[u8] {
            // SAFETY: plain integer types with no padding; the slice covers exactly the
            // initialised elements, and u8 has alignment 1.
            unsafe { std::slice::from_raw_parts(v.as_ptr().cast::<u8>(), std::mem::size_of_val(v)) }
        }
        match self {
            Chunk::U8(v) => v,
            Chunk::U16(v) => raw(v),
            Chunk::U32(v) | Chunk::Str(v) => raw(v),
            Chunk::U64(v) => raw(v),
            Chunk::I64(v) => raw(v),
        }
    }

    /// Appends element `i` of `other`, a chunk of the same type.
    fn push_from(&mut self, other: &Chunk, i: usize) {
        match (self, other) {
            (Chunk::U8(a), Chunk::U8(b)) => a.push(b[i]),
            (Chunk::U16(a), Chunk::U16(b)) => a.push(b[i]),
            (Chunk::U32(a), Chunk::U32(b)) | (Chunk::Str(a), Chunk::Str(b)) => a.push(b[i]),
            (Chunk::U64(a), Chunk::U64(b)) => a.push(b[i]),
            (Chunk::I64(a), Chunk::I64(b)) => a.push(b[i]),
            _ => unreachable!("chunks of one column have one type"),
        }
    }

    /// Translates string indices from a unit's own pool into the merged one.
    pub fn remap(&mut self, map: &[u32]) {
        if let Chunk::Str(v) = self {
            for i in v.iter_mut() {
                *i = map[*i as usize];
            }
        }
    }
}

fn first_like(c: &Chunk) -> Chunk {
    match c {
        Chunk::U8(_) => Chunk::U8(Vec::new()),
        Chunk::U16(_) => Chunk::U16(Vec::new()),
        Chunk::U32(_) => Chunk::U32(Vec::new()),
        Chunk::U64(_) => Chunk::U64(Vec::new()),
        Chunk::I64(_) => Chunk::I64(Vec::new()),
        Chunk::Str(_) => Chunk::Str(Vec::new()),
    }
}

/// A column: its chunks, in order. The first chunk also fixes the type of an empty column.
#[derive(Debug)]
pub struct Column {
    pub chunks: Vec<Chunk>,
}

impl From<Chunk> for Column {
    fn from(c: Chunk) -> Self {
        Column { chunks: vec![c] }
    }
}

impl Column {
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn dtype(&self) -> &'static str {
        self.chunks.first().map_or("u1", Chunk::dtype)
    }

    pub fn byte_len(&self) -> usize {
        self.chunks.iter().map(|c| c.bytes().len()).sum()
    }

    /// Copies the column's bytes into `out`, which is [`Column::byte_len`] long.
    pub fn write_bytes(&self, out: &mut [u8]) {
        let mut at = 0;
        for c in &self.chunks {
            let b = c.bytes();
            out[at..at + b.len()].copy_from_slice(b);
            at += b.len();
        }
    }
}

/// A named set of equal-length columns.
#[derive(Debug, Default)]
pub struct Table {
    pub columns: Vec<(&'static str, Column)>,
}

impl Table {
    pub fn new(columns: Vec<(&'static str, Chunk)>) -> Self {
        Table { columns: columns.into_iter().map(|(n, c)| (n, Column::from(c))).collect() }
    }

    pub fn rows(&self) -> usize {
        self.columns.first().map_or(0, |(_, c)| c.len())
    }

    /// Appends the chunks of `other`, a table of the same schema.
    pub fn append(&mut self, other: Table) {
        for ((name, mine), (theirs_name, theirs)) in self.columns.iter_mut().zip(other.columns) {
            debug_assert_eq!(*name, theirs_name);
            mine.chunks.extend(theirs.chunks);
        }
    }

    /// Removes the rows in `ranges` (sorted, disjoint), leaving one chunk per column.
    pub fn drop_rows(&mut self, ranges: &[std::ops::Range<usize>]) {
        if ranges.is_empty() {
            return;
        }
        for (_, c) in &mut self.columns {
            let Some(first) = c.chunks.first() else { continue };
            let mut kept = first_like(first);
            let mut at = 0usize;
            let mut skip = ranges.iter().peekable();
            for chunk in &c.chunks {
                for i in 0..chunk.len() {
                    while skip.peek().is_some_and(|r| r.end <= at) {
                        skip.next();
                    }
                    if !skip.peek().is_some_and(|r| r.contains(&at)) {
                        kept.push_from(chunk, i);
                    }
                    at += 1;
                }
            }
            c.chunks = vec![kept];
        }
    }

    pub fn remap(&mut self, map: &[u32]) {
        for (_, c) in &mut self.columns {
            for chunk in &mut c.chunks {
                chunk.remap(map);
            }
        }
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
        let mut s = Strings { index: FxHashMap::default(), items: Vec::new() };
        s.intern(Cow::Borrowed(b""));
        s
    }
}

impl<'a> Strings<'a> {
    /// Every string enters the pool here. The pool is read as UTF-8 (pyarrow decodes it), and
    /// a binary's names and paths are bytes: a string that is not UTF-8 is interned escaped
    /// (see [`escape_invalid_utf8`]), and its raw bytes map to the escaped entry.
    pub fn intern(&mut self, s: Cow<'a, [u8]>) -> u32 {
        if let Some(&i) = self.index.get(s.as_ref()) {
            return i;
        }
        if std::str::from_utf8(&s).is_err() {
            let i = self.intern(Cow::Owned(escape_invalid_utf8(&s)));
            self.index.insert(s, i);
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

/// `bytes` with each byte that is not part of valid UTF-8 written as the four characters
/// `\xNN` (lowercase hex): readable, never fatal, and the byte can be read back off the text.
pub fn escape_invalid_utf8(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        out.extend_from_slice(chunk.valid().as_bytes());
        for b in chunk.invalid() {
            out.extend_from_slice(format!("\\x{b:02x}").as_bytes());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_concatenate_on_write() {
        let mut t = Table::new(vec![("a", Chunk::U16(vec![1, 2])), ("s", Chunk::Str(vec![1]))]);
        let mut u = Table::new(vec![("a", Chunk::U16(vec![3])), ("s", Chunk::Str(vec![0, 1]))]);
        u.remap(&[5, 7]);
        t.append(u);
        assert_eq!(t.rows(), 3);
        let (_, a) = &t.columns[0];
        let mut out = vec![0u8; a.byte_len()];
        a.write_bytes(&mut out);
        assert_eq!(out, [1u16, 2, 3].iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<_>>());
        let (_, s) = &t.columns[1];
        let mut out = vec![0u8; s.byte_len()];
        s.write_bytes(&mut out);
        assert_eq!(out, [1u32, 5, 7].iter().flat_map(|v| v.to_ne_bytes()).collect::<Vec<_>>());
    }

    #[test]
    fn interning() {
        let mut s = Strings::default();
        let a = s.intern_str(b"foo");
        assert_eq!(s.intern_owned(b"foo".to_vec()), a);
        assert_eq!(s.intern_str(b""), 0);
        let mut other = Strings::default();
        let b = other.intern_str(b"bar");
        let f = other.intern_str(b"foo");
        let map = s.absorb(&other);
        assert_eq!(map[f as usize], a);
        assert_eq!(s.items[map[b as usize] as usize].as_ref(), b"bar");
    }

    #[test]
    fn invalid_utf8_is_interned_escaped() {
        let mut s = Strings::default();
        let bad = s.intern_str(b"hot\xffsum");
        assert_eq!(s.items[bad as usize].as_ref(), br"hot\xffsum");
        assert_eq!(s.intern_owned(b"hot\xffsum".to_vec()), bad);
        assert_eq!(s.intern_str(br"hot\xffsum"), bad);
        assert_eq!(escape_invalid_utf8(b"\xc3\xa9\xc3"), r"é\xc3".as_bytes());
        let (_, data) = s.to_arrow();
        assert!(std::str::from_utf8(&data).is_ok());
    }
}

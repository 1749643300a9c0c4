//! A unit's file table, as paths relative to the compilation directory.

use gimli::AttributeValue;

use super::{Ctx, Slice};
use crate::table::Strings;

/// Maps the file indices of one unit (`DW_AT_decl_file`, `DW_AT_call_file`, line rows) to
/// interned paths, computed once per unit and on first use.
pub struct FileTable {
    ids: Vec<Option<u32>>,
}

impl FileTable {
    pub fn new() -> Self {
        FileTable { ids: Vec::new() }
    }

    pub fn id<'d>(&mut self, cx: &Ctx<'d, '_>, strings: &mut Strings<'d>, index: u64) -> u32 {
        let i = index as usize;
        if i >= 1 << 20 {
            return 0; // a corrupt index: no path rather than a huge table
        }
        if i >= self.ids.len() {
            self.ids.resize(i + 1, None);
        }
        if let Some(id) = self.ids[i] {
            return id;
        }
        let id = path(cx, index).map_or(0, |p| strings.intern_owned(p));
        self.ids[i] = Some(id);
        id
    }
}

/// `dir/name` for file `index`, with the compilation directory and `./` taken off, so that
/// the same source file has the same path in every unit and in every build.
fn path(cx: &Ctx<'_, '_>, index: u64) -> Option<Vec<u8>> {
    let program = cx.unit.line_program.as_ref()?;
    let header = program.header();
    let file = header.file(index)?;
    let name = attr_bytes(cx, file.path_name())?;
    let mut out = Vec::with_capacity(64);
    if !name.starts_with(b"/") {
        if let Some(dir) = file.directory(header).and_then(|d| attr_bytes(cx, d)) {
            if !dir.is_empty() {
                out.extend_from_slice(dir);
                out.push(b'/');
            }
        }
    }
    out.extend_from_slice(name);
    Some(relative_to(out, cx.comp_dir))
}

fn relative_to(mut path: Vec<u8>, comp_dir: Option<&[u8]>) -> Vec<u8> {
    // Only an absolute compilation directory is the build machine's: a relative one
    // (glibc's `./libio`) is where the file lies in the source tree, and stays.
    if let Some(dir) = comp_dir.filter(|d| d.starts_with(b"/")) {
        if path.len() > dir.len() && path.starts_with(dir) && path[dir.len()] == b'/' {
            path.drain(..=dir.len());
        }
    }
    while path.starts_with(b"./") {
        path.drain(..2);
    }
    path
}

fn attr_bytes<'d>(cx: &Ctx<'d, '_>, v: AttributeValue<Slice<'d>>) -> Option<&'d [u8]> {
    cx.dwarf.attr_string(cx.unit, v).ok().map(|s| s.slice())
}

#[cfg(test)]
mod tests {
    use super::relative_to;

    #[test]
    fn relative_paths() {
        let cd = Some(&b"/build/linux"[..]);
        assert_eq!(relative_to(b"/build/linux/mm/pgtable.c".to_vec(), cd), b"mm/pgtable.c");
        assert_eq!(relative_to(b"./include/linux/mm.h".to_vec(), cd), b"include/linux/mm.h");
        assert_eq!(relative_to(b"/usr/include/stdio.h".to_vec(), cd), b"/usr/include/stdio.h");
        assert_eq!(relative_to(b"/build/linuxx/a.c".to_vec(), cd), b"/build/linuxx/a.c");
        assert_eq!(relative_to(b"./libio/genops.c".to_vec(), Some(b"./libio")), b"libio/genops.c");
    }
}

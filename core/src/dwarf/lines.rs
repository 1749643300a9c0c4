//! The rows of a unit's line-number program.

use super::files::FileTable;
use super::Ctx;
use crate::error::Result;
use crate::table::{Chunk, Strings, Table};

/// Bits of `lines.flags`.
pub mod lineflag {
    consts! {
        pub const IS_STMT: u8 = 1;
        pub const END_SEQUENCE: u8 = 2;
        pub const PROLOGUE_END: u8 = 4;
        pub const EPILOGUE_BEGIN: u8 = 8;
        pub const BASIC_BLOCK: u8 = 16;
    }
}

#[derive(Default)]
pub struct Lines {
    address: Vec<u64>,
    file: Vec<u32>,
    line: Vec<u32>,
    column: Vec<u16>,
    flags: Vec<u8>,
    view: Vec<u16>,
    unit: Vec<u32>,
}

impl Lines {
    pub fn into_table(self) -> Table {
        Table::new(vec![
            ("address", Chunk::U64(self.address)),
            ("file", Chunk::Str(self.file)),
            ("line", Chunk::U32(self.line)),
            ("column", Chunk::U16(self.column)),
            ("flags", Chunk::U8(self.flags)),
            ("view", Chunk::U16(self.view)),
            ("unit", Chunk::U32(self.unit)),
        ])
    }

    pub fn len(&self) -> usize {
        self.address.len()
    }
}

/// Appends the unit's rows. The location view of a row is its rank among the rows at the
/// same address (GCC's view numbering restarts at 0 whenever the address advances); gimli
/// has no notion of views, so they are counted here.
pub fn read<'d>(
    cx: &Ctx<'d, '_>,
    unit_index: u32,
    strings: &mut Strings<'d>,
    files: &mut FileTable,
    out: &mut Lines,
) -> Result<()> {
    let Some(program) = cx.unit.line_program.clone() else { return Ok(()) };
    let mut rows = program.rows();
    let (mut prev_addr, mut view, mut fresh) = (0u64, 0u16, true);
    while let Some((_, row)) = rows.next_row()? {
        let addr = row.address();
        view = if !fresh && addr == prev_addr { view.saturating_add(1) } else { 0 };
        let mut flags = 0;
        for (on, bit) in [
            (row.is_stmt(), lineflag::IS_STMT),
            (row.end_sequence(), lineflag::END_SEQUENCE),
            (row.prologue_end(), lineflag::PROLOGUE_END),
            (row.epilogue_begin(), lineflag::EPILOGUE_BEGIN),
            (row.basic_block(), lineflag::BASIC_BLOCK),
        ] {
            if on {
                flags |= bit;
            }
        }
        out.address.push(addr);
        out.file.push(files.id(cx, strings, row.file_index()));
        out.line.push(row.line().map_or(0, |l| l.get() as u32));
        out.column.push(match row.column() {
            gimli::ColumnType::LeftEdge => 0,
            gimli::ColumnType::Column(c) => c.get() as u16,
        });
        out.flags.push(flags);
        out.view.push(view);
        out.unit.push(unit_index);
        prev_addr = addr;
        fresh = row.end_sequence();
    }
    Ok(())
}

//! Where a parameter lives at one address: the *kind* of its location description.
//!
//! This is a fact about the expression, not a verdict: whether "only as an entry value" is
//! good enough for a probe is for the rules to say.

use gimli::{Encoding, Endianity, Expression, Operation, Reader};

/// Values of the `params.loc_kind` column.
pub mod kind {
    consts! {
        /// No `DW_AT_location` and no `DW_AT_const_value`, or an empty expression: optimized out.
        pub const NONE: u8 = 0;
        /// In register `loc_reg` (DWARF register number).
        pub const REGISTER: u8 = 1;
        /// In memory: frame base or register plus offset, or a static address.
        pub const MEMORY: u8 = 2;
        /// Only as `DW_OP_entry_value` / `DW_OP_GNU_entry_value`: the value the caller passed,
        /// recoverable only from the caller's call-site parameters.
        pub const ENTRY_VALUE: u8 = 3;
        /// `DW_OP_GNU_parameter_ref`: an IPA-SRA clone's parameter known only at the call site.
        pub const PARAM_REF: u8 = 4;
        /// A known constant (`DW_AT_const_value`, a literal with `DW_OP_stack_value`,
        /// `DW_OP_implicit_value`); the value is in `const_value`.
        pub const CONSTANT: u8 = 5;
        /// Computed from other values (`DW_OP_stack_value` over an expression).
        pub const COMPUTED: u8 = 6;
        /// In pieces (`DW_OP_piece`); `loc_reg` is the first piece's register, if any.
        pub const COMPOSITE: u8 = 7;
        /// A location list exists but no entry covers the owner's entry address.
        pub const NOT_AT_ENTRY: u8 = 8;
        /// `DW_OP_implicit_pointer`: points to a value that no longer exists in memory.
        pub const IMPLICIT_POINTER: u8 = 9;
        /// The expression could not be decoded.
        pub const ERROR: u8 = 10;
    }
}

/// Bits of the `params.loc_flags` column.
pub mod flag {
    consts! {
        /// The location is given by a location list (it changes across the scope).
        pub const LIST: u8 = 1;
        /// Only an empty range `[pc, pc)` binds it at the address: it holds in a later location
        /// view of `pc` (GCC's `DW_AT_GNU_locviews`), which an address-based probe cannot select.
        pub const VIEW_ONLY: u8 = 2;
        /// In memory at the frame base plus `value` (`DW_OP_fbreg`). Variables table only.
        pub const FRAME_BASE: u8 = 4;
        /// In memory at the static address `value` (`DW_OP_addr`). Variables table only.
        pub const STATIC: u8 = 8;
        /// In pieces, one of which has no location (a `DW_OP_piece` with nothing before it):
        /// that part of the value is gone.
        pub const PIECE_MISSING: u8 = 16;
        /// The expression's first operation names a register or an address (`DW_OP_reg*`,
        /// `regx`, `breg*`, `bregx`, `fbreg`, `addr`): the one operation perf probe reads
        /// (`convert_variable_location`), whatever follows it — so a value computed from a
        /// register is read as memory there. Variables table only.
        pub const LEADS_WITH_PLACE: u8 = 32;
        /// The value is the variable's `DW_AT_const_value`, not a location expression's
        /// literal (perf probe reads the one as an immediate, never the other). Variables
        /// table only.
        pub const CONST_VALUE: u8 = 64;
    }
}

/// The classified location: kind, register (or `u16::MAX`), constant value, flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Loc {
    pub kind: u8,
    pub reg: u16,
    pub value: i64,
    pub flags: u8,
}

pub const NO_REG: u16 = u16::MAX;

impl Loc {
    pub const NONE: Loc = Loc::of(kind::NONE, NO_REG);
    pub const NOT_AT_ENTRY: Loc = Loc::of(kind::NOT_AT_ENTRY, NO_REG);
    pub const ERROR: Loc = Loc::of(kind::ERROR, NO_REG);

    pub const fn of(kind: u8, reg: u16) -> Loc {
        Loc { kind, reg, value: 0, flags: 0 }
    }

    pub fn constant(value: i64) -> Loc {
        Loc { value, ..Loc::of(kind::CONSTANT, NO_REG) }
    }

    pub fn with_flags(self, flags: u8) -> Loc {
        Loc { flags: self.flags | flags, ..self }
    }
}

/// Classifies one location expression.
pub fn classify<R: Reader<Offset = usize>>(expr: Expression<R>, encoding: Encoding) -> Loc {
    let mut ops = expr.clone().operations(encoding);
    let mut first: Option<Operation<R>> = None;
    let (mut stack_value, mut piece, mut entry, mut param_ref, mut implicit_ptr) = (false, false, false, false, false);
    let mut literal: Option<i64> = None;
    let mut implicit: Option<i64> = None;
    let mut n = 0;
    // a piece whose own location is empty: nothing since the start or the last piece
    let (mut located, mut missing) = (false, false);
    loop {
        let op = match ops.next() {
            Ok(Some(op)) => op,
            Ok(None) => break,
            Err(_) => return Loc::ERROR,
        };
        n += 1;
        located |= !matches!(op, Operation::Piece { .. });
        match &op {
            Operation::StackValue => stack_value = true,
            Operation::Piece { .. } => {
                piece = true;
                missing |= !located;
                located = false;
            }
            Operation::EntryValue { .. } => entry = true,
            Operation::ParameterRef { .. } => param_ref = true,
            Operation::ImplicitPointer { .. } => implicit_ptr = true,
            Operation::UnsignedConstant { value } if n == 1 => literal = Some(*value as i64),
            Operation::SignedConstant { value } if n == 1 => literal = Some(*value),
            Operation::ImplicitValue { data } => implicit = Some(small_value(data.clone())),
            _ => {}
        }
        if first.is_none() {
            first = Some(op);
        }
    }
    let Some(first) = first else { return Loc::NONE };
    let reg = match first {
        Operation::Register { register } => register.0,
        _ => NO_REG,
    };
    if param_ref {
        return Loc::of(kind::PARAM_REF, NO_REG);
    }
    if entry {
        return Loc::of(kind::ENTRY_VALUE, entry_register(expr_entry(&expr, encoding)));
    }
    if implicit_ptr {
        return Loc::of(kind::IMPLICIT_POINTER, NO_REG);
    }
    if let Some(v) = implicit {
        return Loc::constant(v);
    }
    if piece {
        let loc = Loc::of(kind::COMPOSITE, reg);
        return if missing { loc.with_flags(flag::PIECE_MISSING) } else { loc };
    }
    if stack_value {
        return match (literal, n) {
            (Some(v), 2) => Loc::constant(v),
            _ => Loc::of(kind::COMPUTED, NO_REG),
        };
    }
    if reg != NO_REG {
        return Loc::of(kind::REGISTER, reg);
    }
    Loc::of(kind::MEMORY, NO_REG)
}

/// Where a [`kind::MEMORY`] location is, when one operation says it: `DW_OP_fbreg N`
/// ([`flag::FRAME_BASE`], value N), `DW_OP_bregR N` (register R, value N), `DW_OP_addr A`
/// ([`flag::STATIC`], value A). Any other address is computed, and `loc` is returned as it is.
/// Any kind gets [`flag::LEADS_WITH_PLACE`] when its first operation names a place.
///
/// Kept apart from [`classify`], whose `params` columns say only the kind of a memory location.
pub fn with_address<R: Reader<Offset = usize>>(loc: Loc, expr: Expression<R>, encoding: Encoding) -> Loc {
    let mut ops = expr.operations(encoding);
    let first = ops.next();
    let loc = match &first {
        Ok(Some(
            Operation::Register { .. }
            | Operation::RegisterOffset { .. }
            | Operation::FrameOffset { .. }
            | Operation::Address { .. },
        )) => loc.with_flags(flag::LEADS_WITH_PLACE),
        _ => loc,
    };
    if loc.kind != kind::MEMORY {
        return loc;
    }
    let (Ok(Some(op)), Ok(None)) = (first, ops.next()) else { return loc };
    match op {
        Operation::FrameOffset { offset } => Loc { value: offset, ..loc.with_flags(flag::FRAME_BASE) },
        Operation::RegisterOffset { register, offset, .. } => Loc { reg: register.0, value: offset, ..loc },
        Operation::Address { address } => Loc { value: address as i64, ..loc.with_flags(flag::STATIC) },
        _ => loc,
    }
}

/// The expression inside the first `DW_OP_entry_value`, if any.
fn expr_entry<R: Reader<Offset = usize>>(expr: &Expression<R>, encoding: Encoding) -> Option<Expression<R>> {
    let mut ops = expr.clone().operations(encoding);
    while let Ok(Some(op)) = ops.next() {
        if let Operation::EntryValue { expression } = op {
            return Some(Expression(expression));
        }
    }
    None
}

/// `DW_OP_entry_value(DW_OP_regN)`: the register whose entry value is meant.
fn entry_register<R: Reader<Offset = usize>>(inner: Option<Expression<R>>) -> u16 {
    // The inner expression of an entry value is a DWARF register op, decoded by hand
    // because it is a fixed one- or two-opcode form (DW_OP_reg0..31 = 0x50..0x6f,
    // DW_OP_regx = 0x90 ULEB).
    let Some(Expression(mut r)) = inner else { return NO_REG };
    match r.read_u8() {
        Ok(op @ 0x50..=0x6f) => u16::from(op - 0x50),
        Ok(0x90) => r.read_uleb128().map_or(NO_REG, |v| v as u16),
        _ => NO_REG,
    }
}

fn small_value<R: Reader<Offset = usize>>(data: R) -> i64 {
    let bytes = data.to_slice().unwrap_or_default();
    let n = bytes.len().min(8);
    let mut buf = [0u8; 8];
    buf[..n].copy_from_slice(&bytes[..n]);
    if data.endian().is_big_endian() {
        buf[..n].reverse();
    }
    i64::from_le_bytes(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gimli::{EndianSlice, Format, LittleEndian};

    fn loc(bytes: &[u8]) -> Loc {
        let enc = Encoding { format: Format::Dwarf32, version: 5, address_size: 8 };
        classify(Expression(EndianSlice::new(bytes, LittleEndian)), enc)
    }

    #[test]
    fn kinds() {
        assert_eq!(loc(&[]), Loc::NONE);
        assert_eq!(loc(&[0x55]), Loc::of(kind::REGISTER, 5)); // DW_OP_reg5
        assert_eq!(loc(&[0x91, 0x10]).kind, kind::MEMORY); // DW_OP_fbreg 16
        assert_eq!(loc(&[0x3a, 0x9f]), Loc::constant(10)); // DW_OP_lit10; stack_value
                                                           // DW_OP_entry_value(DW_OP_reg4); DW_OP_stack_value
        assert_eq!(loc(&[0xa3, 0x01, 0x54, 0x9f]), Loc::of(kind::ENTRY_VALUE, 4));
        // DW_OP_GNU_parameter_ref 0x452; DW_OP_stack_value (the bytes gcc emits for .isra)
        assert_eq!(loc(&[0xfa, 0x52, 0x04, 0x00, 0x00, 0x9f]).kind, kind::PARAM_REF);
        // DW_OP_breg7 8; DW_OP_stack_value
        assert_eq!(loc(&[0x77, 0x08, 0x9f]).kind, kind::COMPUTED);
        // DW_OP_reg0; DW_OP_piece 8; DW_OP_reg1; DW_OP_piece 8
        assert_eq!(loc(&[0x50, 0x93, 0x08, 0x51, 0x93, 0x08]), Loc::of(kind::COMPOSITE, 0));
        // DW_OP_reg0; DW_OP_piece 8; DW_OP_piece 8: the second half is gone
        let half = Loc::of(kind::COMPOSITE, 0).with_flags(flag::PIECE_MISSING);
        assert_eq!(loc(&[0x50, 0x93, 0x08, 0x93, 0x08]), half);
        // DW_OP_implicit_value 4 bytes = 7
        assert_eq!(loc(&[0x9e, 0x04, 7, 0, 0, 0]), Loc::constant(7));
        assert_eq!(loc(&[0xff]).kind, kind::ERROR);
    }

    fn addressed(bytes: &[u8]) -> Loc {
        let enc = Encoding { format: Format::Dwarf32, version: 5, address_size: 8 };
        let e = Expression(EndianSlice::new(bytes, LittleEndian));
        with_address(classify(e, enc), e, enc)
    }

    #[test]
    fn memory_operands() {
        let lead = flag::LEADS_WITH_PLACE;
        // DW_OP_fbreg -24
        let fb = addressed(&[0x91, 0x68]);
        assert_eq!((fb.kind, fb.reg, fb.value, fb.flags), (kind::MEMORY, NO_REG, -24, flag::FRAME_BASE | lead));
        // DW_OP_breg7 8
        let b = addressed(&[0x77, 0x08]);
        assert_eq!((b.kind, b.reg, b.value, b.flags), (kind::MEMORY, 7, 8, lead));
        // DW_OP_addr 0x1000
        let a = addressed(&[0x03, 0, 0x10, 0, 0, 0, 0, 0, 0]);
        assert_eq!((a.value, a.flags), (0x1000, flag::STATIC | lead));
        // DW_OP_breg7 8; DW_OP_deref: an address computed at run time
        assert_eq!(addressed(&[0x77, 0x08, 0x06]), Loc::of(kind::MEMORY, NO_REG).with_flags(lead));
        // not memory: only the lead flag
        assert_eq!(addressed(&[0x55]), Loc::of(kind::REGISTER, 5).with_flags(lead));
    }

    #[test]
    fn what_perf_reads_first() {
        let lead = |bytes: &[u8]| addressed(bytes).flags & flag::LEADS_WITH_PLACE != 0;
        // DW_OP_breg5 0; DW_OP_lit1; DW_OP_plus; DW_OP_stack_value: computed, led by a register
        assert!(lead(&[0x75, 0x00, 0x31, 0x22, 0x9f]));
        // DW_OP_reg0; DW_OP_piece 8; DW_OP_reg1; DW_OP_piece 8
        assert!(lead(&[0x50, 0x93, 0x08, 0x51, 0x93, 0x08]));
        // DW_OP_lit10; DW_OP_stack_value: a constant perf cannot express
        assert!(!lead(&[0x3a, 0x9f]));
        // DW_OP_entry_value(DW_OP_reg4); DW_OP_stack_value
        assert!(!lead(&[0xa3, 0x01, 0x54, 0x9f]));
        // DW_OP_piece 8; DW_OP_reg1; DW_OP_piece 8: the first piece is gone
        assert!(!lead(&[0x93, 0x08, 0x51, 0x93, 0x08]));
    }
}

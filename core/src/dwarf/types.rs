//! Types spelt in C the way SystemTap's `stap -L` prints a variable's type, so that a listing
//! reads like the tool it stands beside:
//!
//! - base types and typedefs by name: `int`, `long unsigned int`, `size_t`;
//! - `struct X`, `union X`, `enum X`; `struct {...}` when anonymous;
//! - qualifiers and declarators as suffixes, innermost first: `char const*`,
//!   `struct page* const`, `int volatile*`, `char* restrict`, references `&`, `&&`;
//! - arrays without their bound, `char[]`, as stap prints them;
//! - function types as `int (*) (struct file*, long int)`: the declarators between the return
//!   and the parameter types, `(void)` for none, `...` for variadic;
//! - a pointer to `struct __va_list_tag` is `va_list`; a missing referenced type is `void`.
//!
//! A type with nothing to spell it by (an unknown tag, a broken reference, a loop) is
//! `<unknown>`, as in stap.

use gimli::constants as dw;

use super::units::{Die, Units};
use super::NONE;

pub const UNKNOWN: &str = "<unknown>";

/// How many DIEs one spelling may read, and how deep types may nest: a corrupt file can
/// make types that refer to themselves, and spelling them would never end (or end the
/// stack). Real C nests a few levels.
const BUDGET: usize = 4096;
const MAX_DEPTH: usize = 64;

/// The spelling of type DIE `die`.
pub fn spell(units: &Units, die: u64) -> String {
    let mut s = Speller { units, budget: BUDGET, depth: 0, broken: false };
    match s.decl(die) {
        Some(text) if !s.broken => text,
        _ => UNKNOWN.to_string(),
    }
}

/// What a function returns, as the calling conventions place it: the `class` column of
/// [`result_classes`](super::result_classes).
pub mod result {
    consts! {
        /// Not known (the DIE cannot be read, or the type is an aggregate, wider than a
        /// register, complex, …): every result register counts.
        pub const UNKNOWN: u8 = 0;
        /// Nothing: no `DW_AT_type`.
        pub const VOID: u8 = 1;
        /// An integer, a pointer, an enum or a bool of at most 8 bytes: the first integer
        /// result register.
        pub const INTEGER: u8 = 2;
        /// A `float` or `double`: the first floating-point result register.
        pub const FLOAT: u8 = 3;
    }
}

/// How far [`result_of`] follows `DW_AT_abstract_origin`, and typedefs and qualifiers.
const RESULT_HOPS: usize = 16;

/// What the function whose (concrete or abstract) subprogram DIE is `die` returns: its
/// [`result`] class and its type spelt as [`spell`] spells it (`void` for none).
pub fn result_of(units: &Units, die: u64) -> (u8, String) {
    let mut at = die;
    for _ in 0..RESULT_HOPS {
        let Some(d) = units.die(at) else { break };
        match (d.ty, d.origin) {
            (NONE, NONE) => return (result::VOID, "void".to_string()),
            (NONE, origin) => at = origin,
            (ty, _) => return (result_class(units, ty), spell(units, ty)),
        }
    }
    (result::UNKNOWN, UNKNOWN.to_string())
}

/// The [`result`] class of a value of type DIE `ty`.
fn result_class(units: &Units, ty: u64) -> u8 {
    let mut at = ty;
    for _ in 0..RESULT_HOPS {
        let Some(d) = units.die(at) else { return result::UNKNOWN };
        match d.tag {
            dw::DW_TAG_typedef
            | dw::DW_TAG_const_type
            | dw::DW_TAG_volatile_type
            | dw::DW_TAG_restrict_type
            | dw::DW_TAG_atomic_type
                if d.ty != NONE =>
            {
                at = d.ty
            }
            dw::DW_TAG_pointer_type | dw::DW_TAG_reference_type | dw::DW_TAG_rvalue_reference_type => {
                return result::INTEGER
            }
            dw::DW_TAG_enumeration_type if (1..=8).contains(&d.byte_size) => return result::INTEGER,
            dw::DW_TAG_base_type if (1..=8).contains(&d.byte_size) => {
                return match dw::DwAte(d.encoding) {
                    dw::DW_ATE_float => result::FLOAT,
                    dw::DW_ATE_signed
                    | dw::DW_ATE_unsigned
                    | dw::DW_ATE_signed_char
                    | dw::DW_ATE_unsigned_char
                    | dw::DW_ATE_boolean
                    | dw::DW_ATE_UTF => result::INTEGER,
                    _ => result::UNKNOWN,
                }
            }
            _ => return result::UNKNOWN,
        }
    }
    result::UNKNOWN
}

struct Speller<'u, 'a, 'd> {
    units: &'u Units<'a, 'd>,
    budget: usize,
    depth: usize,
    /// The budget or the depth ran out: whatever was spelt is not the type.
    broken: bool,
}

impl<'d> Speller<'_, '_, 'd> {
    fn die(&mut self, die: u64) -> Option<Die<'d>> {
        if die == NONE {
            return None;
        }
        let Some(left) = self.budget.checked_sub(1) else {
            self.broken = true;
            return None;
        };
        self.budget = left;
        self.units.die(die)
    }

    /// Runs `f` one level deeper, unless that is too deep.
    fn deeper<T>(&mut self, f: impl FnOnce(&mut Self) -> Option<T>) -> Option<T> {
        if self.depth >= MAX_DEPTH {
            self.broken = true;
            return None;
        }
        self.depth += 1;
        let r = f(self);
        self.depth -= 1;
        r
    }

    /// The whole declaration: a function type wraps the declarators spelt so far.
    fn decl(&mut self, die: u64) -> Option<String> {
        self.deeper(|s| {
            let mut declarators = String::new();
            let mut function = None;
            if !s.spell_into(die, &mut declarators, &mut function) {
                return None;
            }
            match function {
                None => Some(declarators),
                Some(f) => s.function(f, &declarators),
            }
        })
    }

    fn function(&mut self, die: u64, declarators: &str) -> Option<String> {
        let f = self.die(die)?;
        let ret = if f.ty == NONE { "void".to_string() } else { self.decl(f.ty)? };
        let mut params = Vec::new();
        if f.has_children {
            for child in self.units.children(die) {
                match child.tag {
                    dw::DW_TAG_unspecified_parameters => params.push("...".to_string()),
                    dw::DW_TAG_formal_parameter if child.ty == NONE => params.push("void".to_string()),
                    dw::DW_TAG_formal_parameter => params.push(self.decl(child.ty)?),
                    _ => {}
                }
            }
        }
        let params = if params.is_empty() { "void".to_string() } else { params.join(", ") };
        Some(format!("{ret} ({declarators}) ({params})"))
    }

    /// Appends the spelling of `die` to `out`; false, with nothing appended, for a DIE that
    /// is no type. A function type appends nothing and is left in `function`.
    fn spell_into(&mut self, die: u64, out: &mut String, function: &mut Option<u64>) -> bool {
        match self.die(die) {
            Some(d) => self.spell_die(die, &d, out, function),
            None => false,
        }
    }

    fn spell_die(&mut self, die: u64, d: &Die, out: &mut String, function: &mut Option<u64>) -> bool {
        self.deeper(|s| s.spell_known(die, d, out, function).then_some(())).is_some()
    }

    fn spell_known(&mut self, die: u64, d: &Die, out: &mut String, function: &mut Option<u64>) -> bool {
        let keyword = match d.tag {
            dw::DW_TAG_structure_type => "struct ",
            dw::DW_TAG_union_type => "union ",
            dw::DW_TAG_enumeration_type => "enum ",
            dw::DW_TAG_class_type => "class ",
            dw::DW_TAG_base_type | dw::DW_TAG_typedef => "",
            dw::DW_TAG_subroutine_type => {
                *function = Some(die);
                return true;
            }
            dw::DW_TAG_pointer_type
            | dw::DW_TAG_reference_type
            | dw::DW_TAG_rvalue_reference_type
            | dw::DW_TAG_array_type
            | dw::DW_TAG_const_type
            | dw::DW_TAG_volatile_type
            | dw::DW_TAG_restrict_type => {
                self.modifier(d, out, function);
                return true;
            }
            _ => return false,
        };
        out.push_str(keyword);
        out.push_str(&d.name.map_or("{...}".into(), String::from_utf8_lossy));
        true
    }

    /// A declarator or qualifier: what it applies to, then its suffix.
    fn modifier(&mut self, d: &Die, out: &mut String, function: &mut Option<u64>) {
        let inner = if d.ty == NONE { None } else { self.die(d.ty) };
        if d.tag == dw::DW_TAG_pointer_type
            && inner.is_some_and(|i| i.tag == dw::DW_TAG_structure_type && i.name == Some(b"__va_list_tag"))
        {
            out.push_str("va_list");
            return;
        }
        if !inner.is_some_and(|i| self.spell_die(d.ty, &i, out, function)) {
            out.push_str("void");
        }
        let is_reference =
            inner.is_some_and(|i| matches!(i.tag, dw::DW_TAG_reference_type | dw::DW_TAG_rvalue_reference_type));
        out.push_str(match d.tag {
            dw::DW_TAG_pointer_type => "*",
            dw::DW_TAG_reference_type => "&",
            dw::DW_TAG_rvalue_reference_type => "&&",
            dw::DW_TAG_array_type => "[]",
            // A reference is constant anyway: GCC's extra const on one says nothing.
            dw::DW_TAG_const_type if is_reference => "",
            dw::DW_TAG_const_type => " const",
            dw::DW_TAG_volatile_type => " volatile",
            _ => " restrict",
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gimli::{EndianSlice, RunTimeEndian};

    /// Spells DIE `at` of a DWARF 4 unit of hand-made DIEs: the CU, then `dies` (an
    /// abbreviation code and, for codes 2-4, a `DW_FORM_ref4` to a unit offset; 0 closes a
    /// list of children), then the CU's closing null.
    fn spell_in(dies: &[(u8, u32)], at: u64) -> String {
        #[rustfmt::skip]
        let abbrev: &[u8] = &[
            1, 0x11, 1, 0, 0,             // compile_unit, children
            2, 0x0f, 0, 0x49, 0x13, 0, 0, // pointer_type, DW_AT_type ref4
            3, 0x15, 1, 0x49, 0x13, 0, 0, // subroutine_type, children, DW_AT_type ref4
            4, 0x05, 0, 0x49, 0x13, 0, 0, // formal_parameter, DW_AT_type ref4
            5, 0x15, 1, 0, 0,             // subroutine_type, children, returning void
            6, 0x0f, 0, 0, 0,             // pointer_type to void
            0,
        ];
        let mut body = vec![1u8];
        for &(code, to) in dies {
            body.push(code);
            if (2..=4).contains(&code) {
                body.extend_from_slice(&to.to_le_bytes());
            }
        }
        body.push(0);
        let mut info = ((body.len() + 7) as u32).to_le_bytes().to_vec();
        info.extend_from_slice(&[4, 0, 0, 0, 0, 0, 8]); // version 4, abbrev offset 0, 8-byte addresses
        info.extend_from_slice(&body);
        let dwarf = gimli::Dwarf::load(|id| {
            let data: &[u8] = match id {
                gimli::SectionId::DebugInfo => &info,
                gimli::SectionId::DebugAbbrev => abbrev,
                _ => &[],
            };
            Ok::<_, gimli::Error>(EndianSlice::new(data, RunTimeEndian::Little))
        })
        .unwrap();
        spell(&Units::new(&dwarf), at)
    }

    #[test]
    fn function_pointer() {
        // 12: pointer to 17, a function returning void and taking 24, a pointer to void
        assert_eq!(spell_in(&[(2, 17), (5, 0), (4, 24), (0, 0), (6, 0)], 12), "void (*) (void*)");
        assert_eq!(spell_in(&[(2, 17), (5, 0), (4, 24), (0, 0), (6, 0)], 24), "void*");
    }

    #[test]
    fn loops_are_unknown_not_endless() {
        // 12: a pointer to itself
        assert_eq!(spell_in(&[(2, 12)], 12), UNKNOWN);
        // 12: pointer to 17, a function returning 12 and taking a 12
        assert_eq!(spell_in(&[(2, 17), (3, 12), (4, 12), (0, 0)], 12), UNKNOWN);
        // a reference outside the unit: nothing to spell
        assert_eq!(spell_in(&[(2, 17)], 9999), UNKNOWN);
    }
}

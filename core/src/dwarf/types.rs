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

/// How many DIEs one spelling may read: a corrupt file can make function types that refer
/// to each other, and spelling them would never end.
const BUDGET: usize = 4096;

/// The spelling of type DIE `die`.
pub fn spell(units: &Units, die: u64) -> String {
    Speller { units, budget: BUDGET }.decl(die).unwrap_or_else(|| UNKNOWN.to_string())
}

struct Speller<'u, 'a, 'd> {
    units: &'u Units<'a, 'd>,
    budget: usize,
}

impl<'d> Speller<'_, '_, 'd> {
    fn die(&mut self, die: u64) -> Option<Die<'d>> {
        self.budget = self.budget.checked_sub(1)?;
        if die == NONE {
            return None;
        }
        self.units.die(die)
    }

    /// The whole declaration: a function type wraps the declarators spelt so far.
    fn decl(&mut self, die: u64) -> Option<String> {
        let mut declarators = String::new();
        let mut function = None;
        if !self.spell_into(die, &mut declarators, &mut function) {
            return None;
        }
        match function {
            None => Some(declarators),
            Some(f) => self.function(f, &declarators),
        }
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

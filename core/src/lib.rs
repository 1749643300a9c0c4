//! patchscope's core: facts about a compiled binary, extracted fast and handed over as
//! columns. It never decides what is safe to probe; the Python rules do.

/// Declares a group of constants (the body of its own `mod`) and, beside them, `ALL`: each
/// one's name and value, which the Python module exports so that no value is copied by hand.
macro_rules! consts {
    ($( $(#[$doc:meta])* pub const $name:ident: $ty:ty = $value:expr; )*) => {
        $( $(#[$doc])* pub const $name: $ty = $value; )*
        /// Every constant of the group, by name, as the Python module exports them.
        pub const ALL: &[(&str, u64)] = &[$((stringify!($name), $name as u64)),*];
    };
}

pub mod binary;
pub mod checksum;
pub mod code;
pub mod dwarf;
pub mod elf;
pub mod error;
pub mod kernel;
pub mod table;

#[cfg(feature = "python")]
mod python;

//! patchscope's core: facts about a compiled binary, extracted fast and handed over as
//! columns. It never decides what is safe to probe; the Python rules do.

pub mod binary;
pub mod code;
pub mod dwarf;
pub mod elf;
pub mod error;
pub mod kernel;
pub mod table;

#[cfg(feature = "python")]
mod python;

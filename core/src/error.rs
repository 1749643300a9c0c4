//! One error type for the whole core: a message meant for a person, one line long.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error(pub String);

impl Error {
    pub fn new(msg: impl Into<String>) -> Self {
        Error(msg.into())
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

impl From<gimli::Error> for Error {
    fn from(e: gimli::Error) -> Self {
        Error(format!("DWARF: {e}"))
    }
}

pub type Result<T> = std::result::Result<T, Error>;

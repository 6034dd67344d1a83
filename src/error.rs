//! One error type whose variant decides the exit status (design: 1 refused by the system,
//! 2 bad usage or config).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Bad command line, settings or wg-quick config: nothing was changed. Exit 2.
    Usage(String),
    /// The system refused (a program failed, a file could not be written). Exit 1.
    System(String),
}

impl Error {
    pub fn usage(msg: impl Into<String>) -> Self {
        Error::Usage(msg.into())
    }

    pub fn system(msg: impl Into<String>) -> Self {
        Error::System(msg.into())
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Usage(_) => 2,
            Error::System(_) => 1,
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            // What a message repeats of a file, an argument or a program's output is shown
            // with its control characters escaped, wherever it was made.
            Error::Usage(m) | Error::System(m) => f.write_str(&crate::config::quote::text(m)),
        }
    }
}

impl From<std::io::Error> for Error {
    // fs-err's io::Error messages already name the file and the operation.
    fn from(e: std::io::Error) -> Self {
        Error::System(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

//! Exit-code classification shared by every tool.
//!
//! Errors travel as `anyhow::Error`; a [`BadInput`] anywhere in the chain
//! means the caller gave us something wrong (exit 2), anything else is a
//! failure while doing the work (exit 1).

use std::fmt;

/// Marks an error caused by bad usage or bad input: the tool exits 2.
#[derive(Debug)]
pub struct BadInput(pub String);

impl BadInput {
    /// An `anyhow::Error` that exits 2 with `msg`.
    pub fn err(msg: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(BadInput(msg.into()))
    }
}

impl fmt::Display for BadInput {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for BadInput {}

/// The process exit status for `err`: 2 for bad input, 1 otherwise.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    if err.chain().any(|e| e.is::<BadInput>()) {
        2
    } else {
        1
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn bad_input_survives_context() {
        let e: anyhow::Result<()> = Err(BadInput::err("treefile: bad"));
        let e = e.context("while composing").unwrap_err();
        assert_eq!(exit_code(&e), 2);
        assert_eq!(exit_code(&anyhow::anyhow!("disk full")), 1);
    }
}

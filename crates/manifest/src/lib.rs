//! The releng manifest: one JSON document that flows through a pipeline of
//! releng tools on stdin/stdout.
//!
//! ```text
//! {"header": {"type": "releng-manifest", "version": "1.0"},
//!  "payload": {"repo": {…}, "composes": [...], "summary": {…}, …}}
//! ```
//!
//! Each tool reads the document, replaces the one section it owns and writes
//! the whole document back. Sections it does not own, including ones this
//! version of the library has never heard of, pass through untouched, so
//! tools of different versions can share a pipeline.
//!
//! The crate also holds the command-line conventions every tool shares
//! ([`cli`]): `--manifest`/`--output`, `-v`/`-q`, exit codes and the
//! generation of man pages and shell completions.

pub mod cli;
mod dates;
mod envelope;
mod error;
mod io;
mod mirror_sections;
pub mod progress;
pub mod schema;
pub mod sections;
pub mod treepath;

pub use dates::iso8601;
pub use envelope::{Manifest, Section, FORMAT_VERSION, MANIFEST_TYPE};
pub use error::{exit_code, BadInput};
pub use io::{read_input, write_atomic, write_output, Input, Output};
pub use mirror_sections::*;
pub use sections::*;

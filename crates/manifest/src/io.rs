//! Where the manifest comes from and where it goes.

use std::fs;
use std::io::{self, IsTerminal, Read, Write};
use std::os::unix::fs::FileTypeExt;
use std::path::{Path, PathBuf};

use anyhow::Context;

use crate::envelope::Manifest;
use crate::error::BadInput;

/// Where a tool reads its manifest from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// Standard input, when it is not a terminal.
    Stdin,
    /// `--manifest FILE`.
    File(PathBuf),
}

/// Where a tool writes its manifest to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Standard output.
    Stdout,
    /// `--output FILE`, replaced atomically.
    File(PathBuf),
}

/// Reads the manifest from `input`.
///
/// A terminal, `/dev/null` or a closed stdin starts a new manifest: the tool
/// is the first step of a pipeline. An empty pipe does too, with a warning,
/// because it usually means the previous step failed.
pub fn read_input(input: &Input) -> anyhow::Result<Manifest> {
    match input {
        Input::File(path) => {
            let bytes = fs::read(path).map_err(|e| {
                BadInput::err(format!("manifest {}: cannot read: {e}", path.display()))
            })?;
            Manifest::parse(&bytes, &path.display().to_string())
        }
        Input::Stdin => {
            let stdin = io::stdin();
            if stdin.is_terminal() {
                return Ok(Manifest::new());
            }
            match stdin_file_type() {
                // /dev/null and other character devices carry no manifest.
                Some(t) if t.is_char_device() => return Ok(Manifest::new()),
                None => return Ok(Manifest::new()),
                Some(_) => {}
            }
            let mut bytes = Vec::new();
            match stdin.lock().read_to_end(&mut bytes) {
                Ok(_) => {}
                Err(e) if e.raw_os_error() == Some(libc_ebadf()) => return Ok(Manifest::new()),
                Err(e) => return Err(e).context("reading the manifest from stdin"),
            }
            if bytes.iter().all(u8::is_ascii_whitespace) {
                log::warn!(
                    "stdin is empty: starting a new manifest (if a previous step \
                     was piped in, it produced nothing)"
                );
                return Ok(Manifest::new());
            }
            Manifest::parse(&bytes, "<stdin>")
        }
    }
}

/// Writes the whole manifest to `output`. A file is replaced atomically: a
/// reader sees the old document or the new one, never a mix.
pub fn write_output(manifest: &Manifest, output: &Output) -> anyhow::Result<()> {
    match output {
        Output::Stdout => {
            let mut out = io::BufWriter::with_capacity(1 << 16, io::stdout().lock());
            manifest
                .write_to(&mut out)
                .and_then(|()| out.flush())
                .context("writing the manifest to stdout")
        }
        Output::File(path) => write_atomic(path, |f| manifest.write_to(f))
            .with_context(|| format!("writing the manifest to {}", path.display())),
    }
}

/// Writes `path` through a temporary file in the same directory, synced
/// before it is renamed over `path`; `fill` writes the content.
pub fn write_atomic(
    path: &Path,
    fill: impl FnOnce(&mut io::BufWriter<&mut fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let mut tmp = tempfile::Builder::new()
        .prefix(&format!(".{}.", name.as_deref().unwrap_or("manifest")))
        .suffix(".tmp")
        .tempfile_in(dir)?;
    {
        let mut out = io::BufWriter::with_capacity(1 << 16, tmp.as_file_mut());
        fill(&mut out)?;
        out.flush()?;
    }
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
}

fn stdin_file_type() -> Option<fs::FileType> {
    fs::metadata("/proc/self/fd/0")
        .or_else(|_| fs::metadata("/dev/stdin"))
        .ok()
        .map(|m| m.file_type())
}

const fn libc_ebadf() -> i32 {
    9
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_write_replaces_and_leaves_no_temp_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.json");
        fs::write(&path, "old").unwrap();
        let mut m = Manifest::new();
        m.push("composes", &serde_json::json!({"ref": "x"}))
            .unwrap();
        write_output(&m, &Output::File(path.clone())).unwrap();
        let back = read_input(&Input::File(path.clone())).unwrap();
        assert_eq!(back, m);
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, [std::ffi::OsString::from("m.json")]);
    }

    #[test]
    fn missing_manifest_file_is_bad_input() {
        let e = read_input(&Input::File("/nonexistent/m.json".into())).unwrap_err();
        assert_eq!(crate::exit_code(&e), 2);
        assert!(format!("{e}").contains("/nonexistent/m.json"));
    }
}

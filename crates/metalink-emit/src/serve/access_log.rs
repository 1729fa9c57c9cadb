//! The access log: one line a request, written to stderr in blocks.

use std::io::Write;
use std::sync::Mutex;

/// Access log bytes buffered before a write to stderr.
const LOG_BUFFER: usize = 64 * 1024;

/// Access log lines gathered in memory and written to stderr in blocks:
/// a write per request would cost more than the request.
pub(super) struct AccessLog {
    /// Off under `-q`: only errors then.
    off: bool,
    buf: Mutex<Vec<u8>>,
}

impl AccessLog {
    /// An empty log; `off` drops every line.
    pub(super) fn new(off: bool) -> AccessLog {
        AccessLog {
            off,
            buf: Mutex::default(),
        }
    }

    /// Adds one line; writes the block out once it is full.
    pub(super) fn line(&self, args: std::fmt::Arguments) {
        if self.off {
            return;
        }
        let full = {
            let mut buf = self.buf.lock().unwrap_or_else(|e| e.into_inner());
            let _ = buf.write_fmt(args);
            buf.push(b'\n');
            if buf.len() >= LOG_BUFFER {
                Some(std::mem::take(&mut *buf))
            } else {
                None
            }
        };
        if let Some(block) = full {
            let _ = std::io::stderr().write_all(&block);
        }
    }

    /// Writes out what is buffered.
    pub(super) fn flush(&self) {
        let block = std::mem::take(&mut *self.buf.lock().unwrap_or_else(|e| e.into_inner()));
        if !block.is_empty() {
            let _ = std::io::stderr().write_all(&block);
        }
    }
}

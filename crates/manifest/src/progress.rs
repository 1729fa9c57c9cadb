//! Progress bars for long work, drawn on stderr only when stderr is a
//! terminal and the tool is not `-q`: a pipeline's logs and CI output stay
//! plain, and stdout (the manifest) is never touched.

use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressFinish, ProgressStyle};

/// A bar (or spinner) that does nothing when it is hidden. Cheap to clone
/// and safe to share between worker threads.
#[derive(Clone)]
pub struct Progress(ProgressBar);

impl Progress {
    /// A bar counting `len` items of `what` ("packages", "hosts").
    pub fn bar(len: u64, what: &str) -> Progress {
        // Cleared when the last clone goes, also on an early error return.
        let pb = ProgressBar::with_draw_target(Some(len), target())
            .with_finish(ProgressFinish::AndClear);
        pb.set_style(
            ProgressStyle::with_template(&format!(
                "{{prefix}} [{{bar:30}}] {{pos}}/{{len}} {what} {{msg}}"
            ))
            .expect("valid template")
            .progress_chars("=> "),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        Progress(pb)
    }

    /// A spinner counting items of unknown number (`what` empty: a spinner
    /// showing only its phase message).
    pub fn spinner(what: &str) -> Progress {
        let pb =
            ProgressBar::with_draw_target(None, target()).with_finish(ProgressFinish::AndClear);
        pb.set_style(
            ProgressStyle::with_template(&if what.is_empty() {
                "{prefix} {spinner} {msg}".to_string()
            } else {
                format!("{{prefix}} {{spinner}} {{pos}} {what} {{msg}}")
            })
            .expect("valid template"),
        );
        pb.enable_steady_tick(Duration::from_millis(200));
        Progress(pb)
    }

    /// Names the phase, e.g. "downloading".
    pub fn with_prefix(self, prefix: &str) -> Progress {
        self.0.set_prefix(prefix.to_string());
        self
    }

    /// Counts `n` more items done.
    pub fn inc(&self, n: u64) {
        self.0.inc(n);
    }

    /// Shows `msg` after the count, e.g. the current package.
    pub fn message(&self, msg: impl Into<String>) {
        if !self.0.is_hidden() {
            self.0.set_message(msg.into());
        }
    }

    /// True when nothing is drawn.
    pub fn is_hidden(&self) -> bool {
        self.0.is_hidden()
    }

    /// Removes the bar from the terminal.
    pub fn finish(&self) {
        self.0.finish_and_clear();
    }
}

/// stderr when it is a terminal and messages are wanted, else nowhere.
fn target() -> ProgressDrawTarget {
    if std::io::stderr().is_terminal() && log::max_level() >= log::LevelFilter::Info {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    }
}

#[cfg(test)]
mod tests {
    use super::Progress;

    #[test]
    fn hidden_when_stderr_is_not_a_terminal() {
        // Test runners capture stderr: no terminal, so nothing is drawn and
        // counting still works.
        if std::io::IsTerminal::is_terminal(&std::io::stderr()) {
            eprintln!("SKIPPED: stderr is a terminal here");
            return;
        }
        let p = Progress::bar(3, "items").with_prefix("testing");
        assert!(p.is_hidden());
        p.inc(2);
        p.message("x");
        p.finish();
        assert!(Progress::spinner("dirs").is_hidden());
    }
}

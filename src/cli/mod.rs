//! What the commands share: exit statuses and error kinds, argument groups, value
//! parsers, and the output that is created only when there is something to write.

pub mod grad_graph;
pub mod inspect;
pub mod ops;
pub mod proxies;
pub mod score;

use anyhow::Result;
use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
pub use zerocost::scoring::spec::{positive, ShapeArgs};

/// Every model was read and scored (proxy-level errors are part of the output).
pub const EXIT_OK: i32 = 0;
/// At least one model could not be read or scored.
pub const EXIT_MODEL: i32 = 1;
/// A usage or input error not tied to one model (bad flag, conflicting flags, unwritable
/// output, bad data source); clap's own errors exit with it too.
pub const EXIT_USAGE: i32 = 2;

/// How the command was called is wrong (found after parsing): reported like clap's errors.
#[derive(Debug)]
pub struct Usage(pub String);

/// One model could not be read or scored: exit status 1. The message names the file once.
#[derive(Debug)]
pub struct ModelFailed(pub String);

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for Usage {}

impl fmt::Display for ModelFailed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}
impl std::error::Error for ModelFailed {}

pub fn usage(msg: String) -> anyhow::Error {
    Usage(msg).into()
}

/// `e`, a failure of the model at `path`, as one line that names the file once: the
/// library's messages often name it already, sometimes at several levels of context.
pub fn model_failed(path: &Path, e: &anyhow::Error) -> ModelFailed {
    let shown = path.display().to_string();
    // one_line already says a repeated `file: ` once
    let text = zerocost::error_text::one_line(e);
    ModelFailed(if text.contains(&shown) { text } else { format!("{shown}: {text}") })
}

/// Standard output, or a file (checked writable beforehand) created at the first write,
/// so that a run where nothing succeeded leaves no file behind, nor truncates one.
pub struct Output {
    path: Option<PathBuf>,
    out: Option<Box<dyn Write>>,
}

impl Output {
    pub fn new(path: Option<PathBuf>) -> Output {
        Output { path, out: None }
    }

    pub fn write(&mut self, text: &str) -> Result<()> {
        if self.out.is_none() {
            self.out = Some(match &self.path {
                Some(p) => Box::new(std::fs::File::create(p).map_err(|e| anyhow::anyhow!("-o {}: cannot create: {e}", p.display()))?),
                None => Box::new(std::io::stdout()),
            });
        }
        let out = self.out.as_mut().expect("opened above");
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    pub fn is_empty(&self) -> bool {
        self.out.is_none()
    }
}

/// Writes one document to standard output in `format` (the commands without `-o`).
pub fn print(text: &str) -> Result<()> {
    Output::new(None).write(text)
}

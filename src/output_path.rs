//! Output files are checked before any work: a run of minutes or hours must not end on
//! "cannot create" or a wrong extension.

use anyhow::{bail, Result};
use std::fs::OpenOptions;
use std::path::Path;

/// The extension of `path`, lower-case ("" when there is none).
pub fn extension(path: &Path) -> String {
    path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase()
}

/// Checks that `path` (given as `flag`) has one of `extensions` (any when empty) and can be
/// written: an existing file is opened for appending (never truncated), a new one's folder
/// must exist and accept a file (probed with a temporary file that is removed at once).
pub fn check_writable(path: &Path, flag: &str, extensions: &[&str]) -> Result<()> {
    let shown = path.display();
    if !extensions.is_empty() && !extensions.contains(&extension(path).as_str()) {
        let want: Vec<String> = extensions.iter().map(|e| format!(".{e}")).collect();
        bail!("{flag} {shown}: use a file name ending in {}", want.join(", "));
    }
    if path.is_dir() {
        bail!("{flag} {shown}: is a folder, not a file");
    }
    if path.exists() {
        if let Err(e) = OpenOptions::new().append(true).open(path) {
            bail!("{flag} {shown}: cannot write: {e}");
        }
        return Ok(());
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        bail!("{flag} {shown}: folder {} does not exist", parent.display());
    }
    let probe = parent.join(format!(".zerocost-write-check-{}", std::process::id()));
    match OpenOptions::new().write(true).create_new(true).open(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(e) => bail!("{flag} {shown}: cannot create a file in {}: {e}", parent.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_extension_missing_folder_and_good_paths() {
        let dir = std::env::temp_dir().join(format!("zc-outpath-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let e = check_writable(&dir.join("plot.jpg"), "--plot", &["svg", "png"]).unwrap_err().to_string();
        assert!(e.contains(".svg, .png"), "{e}");
        let e = check_writable(&dir.join("nope/out.json"), "-o", &[]).unwrap_err().to_string();
        assert!(e.contains("does not exist"), "{e}");
        check_writable(&dir.join("out.svg"), "--plot", &["svg", "png"]).unwrap();
        assert!(!dir.join("out.svg").exists(), "the check must not leave a file behind");
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

//! A clone must run everything it documents with nothing beside it: no committed file may
//! point outside the repository at the hand-over folder (`shared/` beside the checkout).

use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The committed files (`git ls-files`), or every file outside target/ and .git/ when git
/// is not available.
fn repository_files() -> Vec<PathBuf> {
    let listed = std::process::Command::new("git").arg("ls-files").arg("-z").current_dir(root()).output();
    if let Ok(o) = listed {
        if o.status.success() && !o.stdout.is_empty() {
            return o.stdout.split(|b| *b == 0).filter(|p| !p.is_empty()).map(|p| root().join(String::from_utf8_lossy(p).as_ref())).collect();
        }
    }
    let mut out = Vec::new();
    let mut stack = vec![root()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap().flatten() {
            let p = e.path();
            let name = e.file_name();
            if p.is_dir() {
                if name != "target" && name != ".git" {
                    stack.push(p);
                }
            } else {
                out.push(p);
            }
        }
    }
    out
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    hay.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn no_committed_path_reaches_outside_the_repository() {
    // spelt in pieces so that this file does not match itself
    let needles = [[".", "./shared"].concat(), ["/work", "/shared"].concat()];
    let files = repository_files();
    assert!(files.len() > 50, "found only {} files", files.len());
    let mut bad = Vec::new();
    for f in &files {
        let Ok(bytes) = std::fs::read(f) else { continue };
        for n in &needles {
            if contains(&bytes, n.as_bytes()) {
                bad.push(format!("{} mentions {n}", f.strip_prefix(root()).unwrap_or(f).display()));
            }
        }
    }
    assert!(bad.is_empty(), "paths outside the repository:\n{}", bad.join("\n"));
}

#[test]
fn the_examples_data_is_in_the_repository() {
    for p in ["data/nb201_accuracy.csv", "data/README.md", "tests/reference/inputs.npy", "tests/reference/nb201_1/ref.json"] {
        assert!(Path::new(&root().join(p)).exists(), "{p} is missing");
    }
}

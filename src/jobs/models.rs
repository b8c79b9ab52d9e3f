//! The models of a job: files, directories (every `.onnx` below), globs and list files (CSV,
//! YAML or plain text) with per-model metadata. Each model gets an id, its path relative to
//! the job's root written with `/`, which is what results record and resumption matches.

use super::yaml::{Doc, Problem};
use crate::search::space::Generated;
use anyhow::{anyhow, bail, Result};
use serde_json::{Map, Value as Json};
use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// One model to score.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelRef {
    /// Path relative to the job root, `/`-separated (what results call `model`).
    pub id: String,
    /// Where the file is, for opening.
    pub path: PathBuf,
    /// Known facts about the model (e.g. `accuracy`), copied into its result line.
    pub metadata: Map<String, Json>,
    /// A cell of a built-in space, generated instead of read (`path` is then empty).
    pub generated: Option<Generated>,
}

/// Extensions that mark a list file rather than a model.
pub const LIST_EXTENSIONS: &[&str] = &["csv", "yaml", "yml", "txt", "lst"];

pub fn is_list_file(p: &str) -> bool {
    Path::new(p)
        .extension()
        .and_then(|e| e.to_str())
        .map(|e| LIST_EXTENSIONS.contains(&e.to_ascii_lowercase().as_str()))
        .unwrap_or(false)
}

fn has_glob_chars(s: &str) -> bool {
    s.contains(['*', '?', '['])
}

/// `.` and `..` removed lexically (no file-system access, symlinks kept as written).
pub fn normalize(p: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    out.iter().collect()
}

fn absolute(p: &Path) -> PathBuf {
    if p.is_absolute() {
        normalize(p)
    } else {
        normalize(&std::env::current_dir().unwrap_or_default().join(p))
    }
}

/// The id of `path`: relative to `root` (with `..` where it lies outside), `/`-separated.
pub fn model_id(root: &Path, path: &Path) -> String {
    let (root, path) = (absolute(root), absolute(path));
    let rc: Vec<Component> = root.components().collect();
    let pc: Vec<Component> = path.components().collect();
    let common = rc.iter().zip(&pc).take_while(|(a, b)| a == b).count();
    if common == 0 {
        return path.to_string_lossy().replace('\\', "/");
    }
    let mut parts: Vec<String> = vec!["..".to_string(); rc.len() - common];
    parts.extend(pc[common..].iter().map(|c| c.as_os_str().to_string_lossy().into_owned()));
    parts.join("/")
}

/// Every `.onnx` file below `dir`, sorted.
fn walk(dir: &Path, out: &mut Vec<PathBuf>) -> Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| anyhow!("cannot read directory {}: {e}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            walk(&p, out)?;
        } else if p.extension().and_then(|e| e.to_str()).map(|e| e.eq_ignore_ascii_case("onnx")).unwrap_or(false) {
            out.push(p);
        }
    }
    Ok(())
}

/// The model files a pattern names: a file, a directory (every `.onnx` below it) or a glob.
pub fn expand(base: &Path, pattern: &str) -> Result<Vec<PathBuf>> {
    if pattern.trim().is_empty() {
        bail!("empty model path");
    }
    if has_glob_chars(pattern) {
        let full = if Path::new(pattern).is_absolute() {
            pattern.to_string()
        } else {
            let b = glob::Pattern::escape(&base.to_string_lossy());
            if b.is_empty() { pattern.to_string() } else { format!("{}/{}", b.trim_end_matches('/'), pattern) }
        };
        let paths = glob::glob(&full).map_err(|e| anyhow!("bad glob `{pattern}`: {e}"))?;
        let mut files: Vec<PathBuf> = paths.filter_map(|p| p.ok()).filter(|p| p.is_file()).collect();
        files.sort();
        if files.is_empty() {
            bail!("`{pattern}` matches no file (looked under {})", show_dir(base));
        }
        return Ok(files);
    }
    let p = base.join(pattern);
    if p.is_dir() {
        let mut files = Vec::new();
        walk(&p, &mut files)?;
        if files.is_empty() {
            bail!("no .onnx file under {}", p.display());
        }
        Ok(files)
    } else if p.is_file() {
        Ok(vec![p])
    } else {
        bail!("no such file or directory: {}", p.display())
    }
}

fn show_dir(p: &Path) -> String {
    if p.as_os_str().is_empty() { ".".into() } else { p.display().to_string() }
}

/// A CSV cell as JSON: integers and finite floats become numbers, `true`/`false` booleans,
/// anything else a string; empty cells are left out by the caller.
pub fn cell_value(s: &str) -> Json {
    let t = s.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Json::from(i);
    }
    if let Ok(f) = t.parse::<f64>() {
        if f.is_finite() {
            return Json::from(f);
        }
    }
    match t {
        "true" | "True" | "TRUE" => Json::Bool(true),
        "false" | "False" | "FALSE" => Json::Bool(false),
        _ => Json::String(t.to_string()),
    }
}

/// Parses CSV (RFC 4180 quoting, `""` escapes, CRLF, a BOM); lines starting with `#` and
/// blank lines are skipped. Returns each record with the line it starts on (1-based).
pub fn parse_csv(text: &str) -> std::result::Result<Vec<(usize, Vec<String>)>, (usize, String)> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut rows = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        // comment or blank line
        if chars.peek() == Some(&'#') {
            for c in chars.by_ref() {
                if c == '\n' {
                    break;
                }
            }
            line += 1;
            continue;
        }
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut was_quoted = false;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err((start, "unterminated quoted field".into()));
                }
                break;
            };
            if quoted {
                if c == '"' {
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        field.push('"');
                    } else {
                        quoted = false;
                    }
                } else {
                    if c == '\n' {
                        line += 1;
                    }
                    field.push(c);
                }
                continue;
            }
            match c {
                '"' if field.trim().is_empty() && !was_quoted => {
                    field.clear();
                    quoted = true;
                    was_quoted = true;
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    was_quoted = false;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => {
                    line += 1;
                    break;
                }
                _ => field.push(c),
            }
        }
        fields.push(field);
        if fields.len() == 1 && fields[0].trim().is_empty() {
            continue;
        }
        rows.push((start, fields.into_iter().map(|f| f.trim().to_string()).collect()));
    }
    Ok(rows)
}

/// An entry of a list file: the line it is on, the path as written, its metadata.
type Entry = (Option<usize>, String, Map<String, Json>);

/// A problem of the list file at a line.
type Here<'a> = dyn Fn(Option<usize>, String) -> Problem + 'a;

/// Reads a list file into models. CSV: a header with a `path` column (or `model`), other
/// columns become metadata. YAML: a list of `{path: ..., KEY: VALUE...}` or a mapping
/// `PATH: {KEY: VALUE...}`. Text: one path per line (`#` comments). Paths are relative to
/// the list file's folder. Problems carry the list file's own line numbers.
pub fn read_list(list: &Path, root: &Path) -> std::result::Result<Vec<ModelRef>, Vec<Problem>> {
    let file = list.display().to_string();
    let here = |line: Option<usize>, message: String| Problem { file: file.clone(), line, column: None, message };
    let text = std::fs::read_to_string(list).map_err(|e| vec![here(None, format!("cannot read the list file: {e}"))])?;
    let dir = list.parent().map(Path::to_path_buf).unwrap_or_default();
    let ext = list.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    let mut problems = Vec::new();
    let items = match ext.as_str() {
        "csv" => csv_entries(&text, &here, &mut problems)?,
        "yaml" | "yml" => yaml_entries(&file, &text, &here, &mut problems)?,
        _ => text_entries(&text),
    };
    let mut out = Vec::new();
    for (line, path, meta) in items {
        match expand(&dir, &path) {
            Ok(files) => out.extend(files.into_iter().map(|f| ModelRef { id: model_id(root, &f), path: f, metadata: meta.clone(), generated: None })),
            Err(e) => problems.push(here(line, format!("{e:#}"))),
        }
    }
    if problems.is_empty() {
        Ok(out)
    } else {
        problems.sort_by_key(|p| p.line);
        Err(problems)
    }
}

/// A CSV list: the `path` (or `model`) column, the other columns as metadata.
fn csv_entries(text: &str, here: &Here, problems: &mut Vec<Problem>) -> std::result::Result<Vec<Entry>, Vec<Problem>> {
    let rows = parse_csv(text).map_err(|(l, m)| vec![here(Some(l), m)])?;
    let Some(((hl, header), body)) = rows.split_first() else {
        return Err(vec![here(None, "the list file is empty".into())]);
    };
    let col = header.iter().position(|h| h == "path").or_else(|| header.iter().position(|h| h == "model"));
    let Some(col) = col else {
        return Err(vec![here(Some(*hl), format!("the header needs a `path` (or `model`) column, found: {}", header.join(",")))]);
    };
    let mut items = Vec::new();
    for (line, row) in body {
        if row.len() != header.len() {
            problems.push(here(Some(*line), format!("{} fields, the header has {}", row.len(), header.len())));
            continue;
        }
        let mut meta = Map::new();
        for (i, (h, v)) in header.iter().zip(row).enumerate() {
            if i != col && !v.is_empty() {
                meta.insert(h.clone(), cell_value(v));
            }
        }
        items.push((Some(*line), row[col].clone(), meta));
    }
    Ok(items)
}

/// A YAML list: a sequence of paths or `{path: ..., KEY: VALUE...}`, or a mapping
/// `PATH: {KEY: VALUE...}`.
fn yaml_entries(file: &str, text: &str, here: &Here, problems: &mut Vec<Problem>) -> std::result::Result<Vec<Entry>, Vec<Problem>> {
    use super::yaml::{key, kind, Seg};
    let doc = Doc::parse(file, text).map_err(|p| vec![p])?;
    let to_meta = |v: &serde_yaml::Value, path: &[Seg], problems: &mut Vec<Problem>| -> Option<Map<String, Json>> {
        match serde_json::to_value(v) {
            Ok(Json::Object(m)) => Some(m),
            Ok(Json::Null) => Some(Map::new()),
            Ok(_) => {
                problems.push(doc.problem(path, "metadata must be a mapping"));
                None
            }
            Err(e) => {
                problems.push(doc.problem(path, format!("metadata: {e}")));
                None
            }
        }
    };
    let mut items = Vec::new();
    match &doc.value {
        serde_yaml::Value::Sequence(seq) => {
            for (i, entry) in seq.iter().enumerate() {
                let p = [Seg::Index(i)];
                let line = doc.locate(&p).0;
                match entry {
                    serde_yaml::Value::String(s) => items.push((line, s.clone(), Map::new())),
                    serde_yaml::Value::Mapping(_) => {
                        let Some(mut meta) = to_meta(entry, &p, problems) else { continue };
                        let path = meta.remove("path").or_else(|| meta.remove("model"));
                        match path {
                            Some(Json::String(s)) => items.push((line, s, meta)),
                            _ => problems.push(doc.problem(&p, "each entry needs `path: FILE`")),
                        }
                    }
                    other => problems.push(doc.problem(&p, format!("expected a path or a mapping, found {}", kind(other)))),
                }
            }
        }
        serde_yaml::Value::Mapping(m) => {
            for (k, v) in m {
                let Some(name) = k.as_str() else {
                    problems.push(doc.problem(&[], "keys must be model paths"));
                    continue;
                };
                let p = [key(name)];
                let line = doc.locate_key(&p).and_then(|l| l.0);
                if let Some(meta) = to_meta(v, &p, problems) {
                    items.push((line, name.to_string(), meta));
                }
            }
        }
        other => return Err(vec![here(Some(1), format!("expected a list of models, found {}", kind(other)))]),
    }
    Ok(items)
}

/// A text list: one path per line, `#` comments.
fn text_entries(text: &str) -> Vec<Entry> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty() && !l.trim().starts_with('#'))
        .map(|(i, l)| (Some(i + 1), l.trim().to_string(), Map::new()))
        .collect()
}

/// Sorted by id, the same model named twice merged (later metadata keys win).
pub fn dedup(models: Vec<ModelRef>) -> Vec<ModelRef> {
    let mut by_id: BTreeMap<String, ModelRef> = BTreeMap::new();
    for m in models {
        match by_id.get_mut(&m.id) {
            Some(prev) => {
                for (k, v) in m.metadata {
                    prev.metadata.insert(k, v);
                }
            }
            None => {
                by_id.insert(m.id.clone(), m);
            }
        }
    }
    by_id.into_values().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_comments_and_lines() {
        let rows = parse_csv("# made up\nmodel,accuracy\n\"a,b\",1.5\r\n\nc,\"x\"\"y\"\n").unwrap();
        assert_eq!(rows, vec![
            (2, vec!["model".to_string(), "accuracy".to_string()]),
            (3, vec!["a,b".to_string(), "1.5".to_string()]),
            (5, vec!["c".to_string(), "x\"y".to_string()]),
        ]);
        assert!(parse_csv("a,\"b\n").is_err());
    }

    #[test]
    fn ids_are_relative_to_the_root() {
        assert_eq!(model_id(Path::new("examples/.."), Path::new("models/a.onnx")), "models/a.onnx");
        assert_eq!(model_id(Path::new("examples"), Path::new("models/a.onnx")), "../models/a.onnx");
        assert_eq!(model_id(Path::new(""), Path::new("./models/./a.onnx")), "models/a.onnx");
        assert_eq!(normalize(Path::new("a/../../b")), PathBuf::from("../b"));
    }

    #[test]
    fn cells() {
        assert_eq!(cell_value("3"), Json::from(3));
        assert_eq!(cell_value("93.5"), Json::from(93.5));
        assert_eq!(cell_value("nan"), Json::from("nan"));
        assert_eq!(cell_value("resnet"), Json::from("resnet"));
    }
}

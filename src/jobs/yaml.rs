//! YAML with line numbers: serde_yaml reads the values (YAML's own typing of numbers,
//! booleans and null), a second, span-keeping parse (`marked-yaml`) tells where each key and
//! value starts, so that every problem in a file can be reported with its line, not only the
//! first one serde would stop at.

use marked_yaml::{LoaderOptions, Node};
use serde_yaml::Value;
use std::fmt;

/// One problem in a file, at a line (1-based) when known.
#[derive(Clone, Debug, PartialEq)]
pub struct Problem {
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.line, self.column) {
            (Some(l), Some(c)) => write!(f, "{}:{}:{}: {}", self.file, l, c, self.message),
            (Some(l), None) => write!(f, "{}:{}: {}", self.file, l, self.message),
            _ => write!(f, "{}: {}", self.file, self.message),
        }
    }
}

/// Several problems, reported together.
#[derive(Debug)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = self.0.len();
        writeln!(f, "{n} error{} in the job:", if n == 1 { "" } else { "s" })?;
        for (i, p) in self.0.iter().enumerate() {
            write!(f, "  {p}")?;
            if i + 1 < n {
                writeln!(f)?;
            }
        }
        Ok(())
    }
}

impl std::error::Error for Problems {}

/// A step of a path into a document.
#[derive(Clone, Debug)]
pub enum Seg {
    Key(String),
    Index(usize),
}

pub fn key(k: &str) -> Seg {
    Seg::Key(k.to_string())
}

/// Renders a path as `models[2].metadata`.
pub fn path_str(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// A parsed YAML document: its value and where its nodes are.
pub struct Doc {
    pub file: String,
    pub value: Value,
    marked: Option<Node>,
    text: String,
}

impl Doc {
    /// Parses `text`; a syntax error is returned as a located problem.
    pub fn parse(file: &str, text: &str) -> Result<Doc, Problem> {
        let value: Value = serde_yaml::from_str(text).map_err(|e| {
            let loc = e.location();
            let msg = e.to_string();
            // serde_yaml appends " at line L column C"; the location is given separately.
            let msg = match msg.find(" at line ") {
                Some(i) if loc.is_some() => msg[..i].to_string(),
                _ => msg,
            };
            Problem {
                file: file.to_string(),
                line: loc.as_ref().map(|l| l.line()),
                column: loc.as_ref().map(|l| l.column()),
                message: format!("invalid YAML: {msg}"),
            }
        })?;
        let marked = marked_yaml::parse_yaml_with_options(0, text, LoaderOptions::default())
            .or_else(|_| marked_yaml::parse_yaml_with_options(0, text, LoaderOptions::default().toplevel_sequence()))
            .ok();
        Ok(Doc { file: file.to_string(), value, marked, text: text.to_string() })
    }

    fn node(&self, path: &[Seg]) -> Option<&Node> {
        let mut node = self.marked.as_ref()?;
        for seg in path {
            node = match (seg, node) {
                (Seg::Key(k), Node::Mapping(m)) => m.get_node(k)?,
                (Seg::Index(i), Node::Sequence(s)) => s.get(*i)?,
                _ => return None,
            };
        }
        Some(node)
    }

    /// Line and column where the value at `path` starts; else where its key is written;
    /// else the nearest located ancestor.
    pub fn locate(&self, path: &[Seg]) -> (Option<usize>, Option<usize>) {
        if path.is_empty() {
            return (Some(1), None);
        }
        if let Some(m) = self.node(path).and_then(|n| n.span().start()) {
            return (Some(m.line()), Some(m.column()));
        }
        if let Some(pos) = self.locate_key(path) {
            return pos;
        }
        if self.marked.is_none() {
            if let Some(Seg::Key(k)) = path.first() {
                if let Some(line) = self.scan_top_key(k) {
                    return (Some(line), None);
                }
            }
        }
        match path.split_last() {
            Some((_, parent)) => self.locate(parent),
            None => (Some(1), None),
        }
    }

    /// Where the key that ends `path` is written (path must end with a key).
    pub fn locate_key(&self, path: &[Seg]) -> Option<(Option<usize>, Option<usize>)> {
        let (last, parent) = path.split_last()?;
        let Seg::Key(k) = last else { return None };
        match self.node(parent)? {
            Node::Mapping(m) => {
                let (key, _) = m.iter().find(|(key, _)| key.as_str() == k)?;
                let s = key.span().start()?;
                Some((Some(s.line()), Some(s.column())))
            }
            _ => None,
        }
    }

    /// A fallback for documents the span parser cannot read (anchors, tags): the line of a
    /// top-level `key:`.
    fn scan_top_key(&self, k: &str) -> Option<usize> {
        self.text.lines().position(|l| {
            l.strip_prefix(k).map(|rest| rest.trim_start().starts_with(':')).unwrap_or(false)
        }).map(|i| i + 1)
    }

    pub fn problem(&self, path: &[Seg], message: impl Into<String>) -> Problem {
        let (line, column) = self.locate(path);
        Problem { file: self.file.clone(), line, column, message: message.into() }
    }

    pub fn key_problem(&self, path: &[Seg], message: impl Into<String>) -> Problem {
        let (line, column) = self.locate_key(path).unwrap_or_else(|| self.locate(path));
        Problem { file: self.file.clone(), line, column, message: message.into() }
    }
}

/// Levenshtein distance, for "did you mean" hints.
pub fn distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != *cb);
            cur.push(sub.min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

/// "unknown key `x`" with the nearest known key as a hint: the closest by edit distance, or
/// else the one sharing the longest start (`proxy` is 3 edits from `proxies`, too many for a
/// short word, but plainly meant).
pub fn unknown_key(k: &str, known: &[&str]) -> String {
    let shared_start = |c: &str| k.chars().zip(c.chars()).take_while(|(a, b)| a == b).count();
    let closest = known.iter().map(|c| (distance(k, c), *c)).min().filter(|(d, _)| *d <= 2.max(k.chars().count() / 3)).map(|(_, c)| c);
    let longest_start = known.iter().map(|c| (shared_start(c), *c)).max_by_key(|(n, _)| *n).filter(|(n, _)| *n >= 4).map(|(_, c)| c);
    let only_extension = || Some(known.iter().filter(|c| k.len() >= 3 && c.starts_with(k)).collect::<Vec<_>>()).filter(|v| v.len() == 1).map(|v| *v[0]);
    match closest.or(longest_start).or_else(only_extension) {
        Some(c) => format!("unknown key `{k}` (did you mean `{c}`?)"),
        None => format!("unknown key `{k}` (known: {})", known.join(", ")),
    }
}

/// The value's type in words, for messages.
pub fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_nested_keys_and_values() {
        let text = "a: 1\nmodels:\n  - x.onnx\n  - path: y.onnx\n    acc: 3\n";
        let d = Doc::parse("j.yaml", text).unwrap();
        assert_eq!(d.locate(&[key("a")]).0, Some(1));
        assert_eq!(d.locate(&[key("models"), Seg::Index(0)]).0, Some(3));
        assert_eq!(d.locate_key(&[key("models"), Seg::Index(1), key("acc")]).unwrap().0, Some(5));
        assert_eq!(path_str(&[key("models"), Seg::Index(1), key("acc")]), "models[1].acc");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let e = Doc::parse("j.yaml", "a: 1\nb: [1, 2\nc: 3\n").err().unwrap();
        assert!(e.line.is_some(), "{e}");
    }

    #[test]
    fn hints() {
        assert_eq!(unknown_key("bach_size", &["batch_size", "seed"]), "unknown key `bach_size` (did you mean `batch_size`?)");
        let keys = super::super::spec::KEYS;
        assert!(unknown_key("proxy", keys).contains("did you mean `proxies`"));
        assert!(unknown_key("worker", keys).contains("did you mean `workers`"));
        assert!(unknown_key("normalization", keys).contains("did you mean `normalize`"));
        assert!(unknown_key("xyz", keys).contains("known: name"));
    }
}

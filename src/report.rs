//! Formatting of results: the output formats (table, JSON, JSON lines, CSV), aligned text
//! tables and CSV lines, and the score reports.

use crate::output_path::extension;
use crate::proxies::value::score_to_json;
use crate::proxies::ProxyResult;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::path::Path;

/// An output format of `score`, `inspect` and `proxies`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Aligned text for people.
    Table,
    /// One JSON document.
    Json,
    /// One compact JSON object per line.
    Jsonl,
    /// Comma-separated values with a header line.
    Csv,
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Table => "table",
            Format::Json => "json",
            Format::Jsonl => "jsonl",
            Format::Csv => "csv",
        }
    }

    /// The format an output file's extension names (`.txt` is the table).
    pub fn from_extension(ext: &str) -> Option<Format> {
        match ext {
            "txt" => Some(Format::Table),
            "json" => Some(Format::Json),
            "jsonl" => Some(Format::Jsonl),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}

/// The format to write: `--format` when given, else the one the extension of `-o` names,
/// else a table. An unknown extension, or one that contradicts `--format`, is refused (the
/// message is a usage error's); a name without extension needs `--format`.
pub fn resolve_format(format: Option<Format>, output: Option<&Path>) -> Result<Format, String> {
    let Some(path) = output else { return Ok(format.unwrap_or(Format::Table)) };
    let ext = extension(path);
    if let (Some(f), "") = (format, ext.as_str()) {
        return Ok(f); // a name without extension (`-o /dev/stdout`) takes the format given
    }
    let named = Format::from_extension(&ext)
        .ok_or_else(|| format!("-o {}: unknown extension; use .txt (table), .json, .jsonl or .csv (or no extension and --format)", path.display()))?;
    match format {
        Some(f) if f != named => {
            Err(format!("--format {} contradicts -o {} (a .{ext} file holds {})", f.as_str(), path.display(), named.as_str()))
        }
        _ => Ok(named),
    }
}

/// What text output shows for a proxy without a value (an error, or NaN).
pub const MISSING: &str = "-";

/// A score as text: integral values (params, flops, counts) in full, others with 7
/// significant digits, [`MISSING`] when there is none.
pub fn fmt_score(v: Option<f64>) -> String {
    match v {
        Some(x) if x.is_nan() => MISSING.into(),
        Some(x) if x.fract() == 0.0 && x.abs() < 1e15 => format!("{x:.0}"),
        Some(x) => format!("{x:.6e}"),
        None => MISSING.into(),
    }
}

/// Rows as aligned text: each column as wide as its widest cell, right-aligned where
/// `right[i]`, two spaces between columns, `indent` before each row, no trailing blanks.
pub fn align(rows: &[Vec<String>], right: &[bool], indent: &str) -> String {
    let cols = rows.iter().map(Vec::len).max().unwrap_or(0);
    let width: Vec<usize> = (0..cols).map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .enumerate()
            .map(|(c, v)| if right.get(c).copied().unwrap_or(false) { format!("{v:>w$}", w = width[c]) } else { format!("{v:<w$}", w = width[c]) })
            .collect();
        s.push_str(indent);
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}

/// One CSV field, quoted only where it must be (RFC 4180).
pub fn csv_field(s: &str) -> Cow<'_, str> {
    if s.contains([',', '"', '\n', '\r']) {
        Cow::Owned(format!("\"{}\"", s.replace('"', "\"\"")))
    } else {
        Cow::Borrowed(s)
    }
}

/// One CSV line (with its newline).
pub fn csv_line<S: AsRef<str>>(fields: &[S]) -> String {
    let f: Vec<Cow<str>> = fields.iter().map(|s| csv_field(s.as_ref())).collect();
    f.join(",") + "\n"
}

/// One model's scores as the JSON object of SPEC §2.
pub fn score_json(model: &str, engine: &str, batch: usize, results: &IndexMap<String, ProxyResult>, layers: Option<&[String]>) -> Value {
    let mut scores = Map::new();
    let mut seconds = Map::new();
    let mut errors = Map::new();
    // why a score is ±∞ (written "inf" / "-inf", `proxies::value`)
    let mut infinite = Map::new();
    let mut per_layer = Map::new();
    let mut details = Map::new();
    let mut engines = Map::new();
    for (name, r) in results {
        if let Some(e) = &r.engine {
            engines.insert(name.clone(), json!(e));
        }
        scores.insert(name.clone(), r.value.as_ref().map(|v| score_to_json(v.total)).unwrap_or(Value::Null));
        if let Some(why) = r.value.as_ref().and_then(|v| v.infinite.as_ref()) {
            infinite.insert(name.clone(), json!(why));
        }
        seconds.insert(name.clone(), json!((r.seconds * 1e6).round() / 1e6));
        if let Some(e) = &r.error {
            errors.insert(name.clone(), json!(e));
        }
        if let Some(v) = &r.value {
            if let Some(pl) = &v.per_layer {
                per_layer.insert(name.clone(), json!(pl));
            }
            if let Some(d) = &v.details {
                details.insert(name.clone(), d.clone());
            }
        }
    }
    let mut obj = Map::new();
    obj.insert("model".into(), json!(model));
    obj.insert("engine".into(), json!(engine));
    if !engines.is_empty() {
        // proxies whose programs ran on another engine (float64 programs under ONNX Runtime)
        obj.insert("engines".into(), Value::Object(engines));
    }
    obj.insert("batch".into(), json!(batch));
    obj.insert("scores".into(), Value::Object(scores));
    if let Some(layers) = layers {
        obj.insert("layers".into(), json!(layers));
        obj.insert("per_layer".into(), Value::Object(per_layer));
        if !details.is_empty() {
            obj.insert("details".into(), Value::Object(details));
        }
    }
    obj.insert("seconds".into(), Value::Object(seconds));
    if !errors.is_empty() {
        obj.insert("errors".into(), Value::Object(errors));
    }
    if !infinite.is_empty() {
        obj.insert("infinite".into(), Value::Object(infinite));
    }
    Value::Object(obj)
}

/// A human-readable table of one model's scores (then, with `layers`, each proxy's
/// per-layer values).
pub fn score_table(model: &str, engine: &str, batch: usize, results: &IndexMap<String, ProxyResult>, layers: Option<&[String]>) -> String {
    let mut s = format!("{model}  (engine {engine}, batch {batch})\n");
    let mut rows = vec![vec!["proxy".to_string(), "score".into(), "seconds".into(), String::new()]];
    for (name, r) in results {
        let mut note = Vec::new();
        if let Some(e) = &r.error {
            note.push(format!("({e})"));
        }
        if let Some(why) = r.value.as_ref().and_then(|v| v.infinite.as_ref()) {
            note.push(format!("({why})"));
        }
        if let Some(e) = &r.engine {
            note.push(format!("(on {e})"));
        }
        rows.push(vec![name.clone(), fmt_score(r.value.as_ref().map(|v| v.total)), format!("{:.3}", r.seconds), note.join("  ")]);
    }
    s.push_str(&align(&rows, &[false, true, true, false], "  "));
    for (name, r) in results {
        if let (Some(layers), Some(pl)) = (layers, r.value.as_ref().and_then(|v| v.per_layer.as_ref())) {
            s.push_str(&format!("  {name} per layer:\n"));
            let rows: Vec<Vec<String>> = layers.iter().zip(pl).map(|(l, v)| vec![l.clone(), fmt_score(Some(*v))]).collect();
            s.push_str(&align(&rows, &[false, true], "    "));
        }
    }
    s
}

/// The header of [`score_csv`]'s rows; `layer` only with per-layer values.
pub fn score_csv_header(per_layer: bool) -> &'static str {
    if per_layer {
        "model,proxy,layer,score,seconds,error\n"
    } else {
        "model,proxy,score,seconds,error\n"
    }
}

/// CSV rows of one model: `model,proxy,score,seconds,error` per proxy. With `layers`, a
/// `layer` column: each proxy's row (empty layer) is followed by one row per scored layer
/// (layer name and value; seconds and error empty). A missing score is an empty field.
pub fn score_csv(model: &str, results: &IndexMap<String, ProxyResult>, layers: Option<&[String]>) -> String {
    let mut s = String::new();
    for (name, r) in results {
        let score = match &r.value {
            Some(v) if !v.total.is_nan() => v.total.to_string(),
            _ => String::new(),
        };
        let (seconds, err) = (format!("{:.6}", r.seconds), r.error.clone().unwrap_or_default());
        let Some(layers) = layers else {
            s.push_str(&csv_line(&[model, name, &score, &seconds, &err]));
            continue;
        };
        s.push_str(&csv_line(&[model, name, "", &score, &seconds, &err]));
        if let Some(pl) = r.value.as_ref().and_then(|v| v.per_layer.as_ref()) {
            for (l, v) in layers.iter().zip(pl) {
                s.push_str(&csv_line(&[model, name, l, &v.to_string(), "", ""]));
            }
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_in_full_others_in_seven_digits_missing_as_a_dash() {
        assert_eq!(fmt_score(Some(128186.0)), "128186");
        assert_eq!(fmt_score(Some(2.9768504)), "2.976850e0");
        assert_eq!(fmt_score(None), MISSING);
        assert_eq!(fmt_score(Some(f64::NAN)), MISSING);
    }

    #[test]
    fn columns_are_as_wide_as_their_content() {
        let rows = vec![vec!["proxy".into(), "score".into()], vec!["az_expressivity".into(), "1".into()]];
        assert_eq!(align(&rows, &[false, true], ""), "proxy            score\naz_expressivity      1\n");
    }

    #[test]
    fn format_from_flag_or_extension_and_contradictions_refused() {
        let p = Path::new("out.JSON");
        assert_eq!(resolve_format(None, Some(p)), Ok(Format::Json));
        assert_eq!(resolve_format(Some(Format::Json), Some(p)), Ok(Format::Json));
        assert!(resolve_format(Some(Format::Csv), Some(p)).unwrap_err().contains("contradicts"));
        assert!(resolve_format(None, Some(Path::new("out.xlsx"))).unwrap_err().contains("unknown extension"));
        assert_eq!(resolve_format(None, None), Ok(Format::Table));
        assert_eq!(resolve_format(Some(Format::Csv), None), Ok(Format::Csv));
        assert_eq!(resolve_format(Some(Format::Jsonl), Some(Path::new("/dev/stdout"))), Ok(Format::Jsonl));
        assert!(resolve_format(None, Some(Path::new("/dev/stdout"))).is_err());
    }

    #[test]
    fn csv_fields_are_quoted_only_where_needed() {
        assert_eq!(csv_line(&["a", "b,c", "d\"e"]), "a,\"b,c\",\"d\"\"e\"\n");
    }
}

//! Formatting of score results (table, JSON, JSON lines, CSV).

use crate::proxies::ProxyResult;
use indexmap::IndexMap;
use serde_json::{json, Map, Value};

/// One model's scores as the JSON object of SPEC §2.
pub fn score_json(model: &str, engine: &str, batch: usize, results: &IndexMap<String, ProxyResult>, layers: Option<&[String]>) -> Value {
    let mut scores = Map::new();
    let mut seconds = Map::new();
    let mut errors = Map::new();
    let mut per_layer = Map::new();
    let mut details = Map::new();
    let mut engines = Map::new();
    for (name, r) in results {
        if let Some(e) = &r.engine {
            engines.insert(name.clone(), json!(e));
        }
        scores.insert(name.clone(), r.value.as_ref().map(|v| json!(v.total)).unwrap_or(Value::Null));
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
    Value::Object(obj)
}

/// A human-readable table of one model's scores.
pub fn score_table(model: &str, engine: &str, batch: usize, results: &IndexMap<String, ProxyResult>, layers: Option<&[String]>) -> String {
    let mut s = format!("{model}  (engine {engine}, batch {batch})\n");
    s.push_str(&format!("  {:<12} {:>16} {:>10}\n", "proxy", "score", "seconds"));
    for (name, r) in results {
        let score = match &r.value {
            Some(v) => format!("{:.6e}", v.total),
            None => "null".into(),
        };
        s.push_str(&format!("  {:<12} {:>16} {:>10.3}", name, score, r.seconds));
        if let Some(e) = &r.error {
            s.push_str(&format!("  ({e})"));
        }
        if let Some(e) = &r.engine {
            s.push_str(&format!("  (on {e})"));
        }
        s.push('\n');
    }
    if let Some(layers) = layers {
        for (name, r) in results {
            if let Some(pl) = r.value.as_ref().and_then(|v| v.per_layer.as_ref()) {
                s.push_str(&format!("  {name} per layer:\n"));
                for (l, v) in layers.iter().zip(pl) {
                    s.push_str(&format!("    {:<48} {:.6e}\n", l, v));
                }
            }
        }
    }
    s
}

/// CSV rows `model,proxy,score,seconds,error` (header printed by the caller once).
pub fn score_csv(model: &str, results: &IndexMap<String, ProxyResult>) -> String {
    let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
    let mut s = String::new();
    for (name, r) in results {
        let score = r.value.as_ref().map(|v| format!("{}", v.total)).unwrap_or_default();
        let err = r.error.as_deref().map(quote).unwrap_or_default();
        s.push_str(&format!("{},{},{},{:.6},{}\n", quote(model), name, score, r.seconds, err));
    }
    s
}

pub const CSV_HEADER: &str = "model,proxy,score,seconds,error\n";

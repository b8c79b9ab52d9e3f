//! A proxy's value on one model, and how a score is written to and read from JSON.
//!
//! A score is a number, or ±∞ where the proxy's definition gives it (AZ-NAS's components:
//! the authors' code scores an identity block or a NaN entropy −∞). JSON has no
//! infinities: such a score is written as the string `"-inf"` (or `"inf"`), and the
//! result's `infinite` object says why (`{"az_trainability": "block 3 (…) passes the
//! gradient through unchanged …"}`). A finite score is a JSON number, as always.

use serde::Serialize;
use serde_json::Value;

/// A proxy's value on one model: the score, and per-layer values in scored-layer order
/// where the proxy is a sum over layers.
#[derive(Clone, Debug, Serialize)]
pub struct ProxyValue {
    pub total: f64,
    pub per_layer: Option<Vec<f64>>,
    /// Extra numbers (e.g. GraSP's Σ|W⊙Hg|), reported with `--per-layer`.
    pub details: Option<Value>,
    /// Why `total` is ±∞, where the proxy's definition makes it so. A non-finite total
    /// without a reason is an error (`find_measures`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub infinite: Option<String>,
}

impl ProxyValue {
    pub fn from_layers(per_layer: Vec<f64>) -> ProxyValue {
        ProxyValue { total: per_layer.iter().sum(), per_layer: Some(per_layer), details: None, infinite: None }
    }
    pub fn scalar(total: f64) -> ProxyValue {
        ProxyValue { total, per_layer: None, details: None, infinite: None }
    }
    pub fn with_details(total: f64, details: Value) -> ProxyValue {
        ProxyValue { total, per_layer: None, details: Some(details), infinite: None }
    }
    /// −∞ as the value the proxy's definition gives, `why` saying what made it so.
    pub fn minus_infinity(why: impl Into<String>, details: Option<Value>) -> ProxyValue {
        ProxyValue { total: f64::NEG_INFINITY, per_layer: None, details, infinite: Some(why.into()) }
    }
}

/// A score as JSON: a number, or `"inf"` / `"-inf"` (NaN, never a score, is null).
pub fn score_to_json(x: f64) -> Value {
    match x {
        f64::INFINITY => Value::from("inf"),
        f64::NEG_INFINITY => Value::from("-inf"),
        x => serde_json::json!(x),
    }
}

/// A score read back from JSON as [`score_to_json`] writes it; `None` for anything else.
pub fn score_from_json(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => n.as_f64().filter(|x| x.is_finite()),
        Value::String(s) if s == "inf" => Some(f64::INFINITY),
        Value::String(s) if s == "-inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// The score of proxy `name` in a result line (`{"scores": {…}, "errors": {…}}`).
///
/// Lines written before scores could be ±∞ carried AZ-NAS's −∞ as a null score and an
/// error ending in "AZ-NAS's <component> is −∞"; such a line still reads as −∞. Nothing
/// writes that form any more, so no message of today's code is read for its meaning.
pub fn score_in_line(line: &Value, name: &str) -> Option<f64> {
    line.get("scores").and_then(|s| s.get(name)).and_then(score_from_json).or_else(|| {
        let e = line.get("errors")?.get(name)?.as_str()?;
        (super::az_nas::COMPONENTS.contains(&name) && e.contains("AZ-NAS's") && e.ends_with("is −∞")).then_some(f64::NEG_INFINITY)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn infinities_round_trip_as_strings_and_numbers_as_numbers() {
        for x in [f64::NEG_INFINITY, f64::INFINITY, 0.0, -1.5e-300, 3.0] {
            assert_eq!(score_from_json(&score_to_json(x)), Some(x));
        }
        assert_eq!(score_to_json(2.5), json!(2.5));
        assert_eq!(score_to_json(f64::NEG_INFINITY), json!("-inf"));
        assert_eq!(score_from_json(&Value::Null), None);
    }

    #[test]
    fn a_result_line_gives_its_scores_and_older_lines_their_minus_infinity() {
        let line = json!({"scores": {"a": 1.0, "az_trainability": "-inf", "b": null}, "errors": {"b": "failed"}});
        assert_eq!(score_in_line(&line, "a"), Some(1.0));
        assert_eq!(score_in_line(&line, "az_trainability"), Some(f64::NEG_INFINITY));
        assert_eq!(score_in_line(&line, "b"), None);
        let old = json!({"scores": {"az_trainability": null}, "errors": {"az_trainability": "block 1 ('a' → 'b') passes the gradient through unchanged (an identity block): AZ-NAS's trainability is −∞"}});
        assert_eq!(score_in_line(&old, "az_trainability"), Some(f64::NEG_INFINITY));
        let failed = json!({"scores": {"az_expressivity": null}, "errors": {"az_expressivity": "az_nas needs at least two block outputs"}});
        assert_eq!(score_in_line(&failed, "az_expressivity"), None);
    }
}

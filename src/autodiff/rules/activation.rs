//! Gradient rules (to be written).

use super::Rule;

pub fn rule(op: &str) -> Option<Rule> {
    let _ = op;
    None
}

//! The vector-Jacobian rules, one per ONNX op, grouped by family (one file each). A rule
//! receives the node, the gradient of each output (None where nothing flows back) and
//! which inputs need a gradient; it appends nodes through the builder and returns one
//! optional gradient per input, of that input's shape. Rules emit only ops that have
//! rules themselves, so gradient programs can be differentiated again.

pub mod activation;
pub mod conv;
pub mod elementwise;
pub mod linalg;
pub mod norm;
pub mod pool;
pub mod reduce;
pub mod shape;

use crate::onnx::builder::Builder;
use crate::onnx::ir::Node;
use anyhow::Result;

pub type Rule = fn(&mut Builder, &Node, &[Option<String>], &[bool]) -> Result<Vec<Option<String>>>;

/// Ops whose outputs carry no gradient (integer or boolean results, piecewise-constant
/// functions): their inputs receive none.
pub const NON_DIFFERENTIABLE: &[&str] = &[
    "Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "Not", "And", "Or", "Xor", "ArgMax", "ArgMin",
    "Shape", "Size", "Floor", "Ceil", "Round", "Sign", "IsNaN", "IsInf", "ConstantOfShape", "Range", "OneHot",
    crate::onnx::composite::STOP_GRADIENT,
];

fn no_gradient(_: &mut Builder, n: &Node, _: &[Option<String>], _: &[bool]) -> Result<Vec<Option<String>>> {
    Ok(vec![None; n.inputs.len()])
}

type Family = (&'static str, fn(&str) -> Option<Rule>);

/// The rule tables of the families, one file each.
const FAMILIES: &[Family] = &[
    ("elementwise", elementwise::rule),
    ("activation", activation::rule),
    ("reduce", reduce::rule),
    ("shape", shape::rule),
    ("linalg", linalg::rule),
    ("conv", conv::rule),
    ("pool", pool::rule),
    ("norm", norm::rule),
];

/// The rule of `op`, if it has one.
pub fn rule_for(op: &str) -> Option<Rule> {
    if NON_DIFFERENTIABLE.contains(&op) {
        return Some(no_gradient);
    }
    FAMILIES.iter().find_map(|(_, rule)| rule(op))
}

/// The family (file in `rules/`) whose table holds the rule of `op`.
pub fn family_of(op: &str) -> Option<&'static str> {
    FAMILIES.iter().find(|(_, rule)| rule(op).is_some()).map(|(name, _)| *name)
}

pub fn is_differentiable(op: &str) -> bool {
    rule_for(op).is_some()
}

/// The gradient of output 0, which single-output rules are only called with.
pub(crate) fn gy0(gy: &[Option<String>]) -> Result<&str> {
    gy.first().and_then(|g| g.as_deref()).ok_or_else(|| anyhow::anyhow!("no gradient for output 0"))
}

//! The input Jacobian ∂(Σ outputs)/∂input, one row per sample (jacob_cov, epe_nas): from
//! the loss pass when that runs and computed it, else from a program of its own.

use super::base::Base;
use super::loss::{loss_planned, LossPass};
use super::{output, seed_ones, sum_output_program, SEED};
use crate::onnx::ir::{Graph, Tensor};
use crate::proxies::{split, Ctx, Pass};
use anyhow::Result;
use std::rc::Rc;

#[derive(Debug)]
pub struct JacobianPass;

impl Pass for JacobianPass {
    type Output = Rc<Tensor>;
    fn run(&self, ctx: &Ctx) -> Result<Rc<Tensor>> {
        if loss_planned(ctx) {
            if let Some(j) = &ctx.pass(&LossPass)?.jacobian {
                return Ok(j.clone());
            }
        }
        let build = |b: &Base| sum_output_program(&b.graph, &b.graph.inputs[..1]);
        let readers = ctx.readers(&["jacob_cov", "epe_nas"]);
        let plan = split::plan(ctx, "the Jacobian pass", &readers, &build, |p| &p.0)?;
        let rows = |c: &split::Chunk<(Graph, Vec<String>)>| {
            let g = &c.base.graph;
            let x = ctx.input_rows(g, c.rows.clone())?;
            let seed = seed_ones(g)?;
            let out = c.run.run(&[(&g.inputs[0], &x), (SEED, &seed)])?;
            output(&out, &c.program.1[0]).cloned()
        };
        Ok(Rc::new(split::run(ctx, plan, &build, |p| &p.0, rows, |a, b| split::concat_rows(&a, &b))?))
    }
}

//! GraSP's Hessian-gradient product Hg per scored layer (g = the loss pass's ∂L/∂W): from
//! the loss pass when grasp was among the wanted proxies, else from a loss program of its own.

use super::loss::{run_loss, LossPass};
use super::loss_program::LossExtras;
use crate::onnx::ir::Tensor;
use crate::proxies::{Ctx, Pass};
use anyhow::{anyhow, Result};
use std::rc::Rc;

#[derive(Debug)]
pub struct HessianGradPass;

impl Pass for HessianGradPass {
    type Output = Rc<Vec<Tensor>>;
    fn run(&self, ctx: &Ctx) -> Result<Rc<Vec<Tensor>>> {
        if let Some(hg) = &ctx.pass(&LossPass)?.hessian_grad {
            return Ok(hg.clone());
        }
        let extras = LossExtras { grasp: true, ..Default::default() };
        run_loss(ctx, extras)?.hessian_grad.ok_or_else(|| anyhow!("the GraSP program returned no Hg"))
    }
}

//! `zerocost grad-graph`: writes the forward+backward program (mean cross-entropy loss) as
//! an ONNX file that any engine can run.

use super::{model_failed, positive, ShapeArgs, EXIT_OK};
use anyhow::Result;
use clap::ValueEnum;
use std::path::PathBuf;
use zerocost::onnx::canon::CanonOptions;
use zerocost::onnx::Model;
use zerocost::proxies;

/// Which gradients become outputs of the program.
#[derive(Clone, Copy, ValueEnum, PartialEq)]
pub enum Wrt {
    Weights,
    Input,
    All,
}

#[derive(clap::Args)]
pub struct GradGraphArgs {
    /// The ONNX model file.
    #[arg(value_name = "MODEL")]
    model: PathBuf,
    /// The ONNX file to write (.onnx).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Which gradients become outputs.
    #[arg(long, value_enum, default_value = "weights")]
    wrt: Wrt,
    /// Batch size of the program's input.
    #[arg(long, default_value_t = 64, value_parser = positive, value_name = "N")]
    batch_size: usize,
    #[command(flatten)]
    shape: ShapeArgs,
}

/// Checks the output path first (a usage error, exit status 2); every later failure is the
/// model's (exit status 1).
pub fn run(args: GradGraphArgs) -> Result<i32> {
    zerocost::output_path::check_writable(&args.output, "-o", &["onnx"])?;
    let model = args.model.clone();
    write_program(args).map_err(|e| anyhow::Error::new(model_failed(&model, &e)))
}

fn write_program(args: GradGraphArgs) -> Result<i32> {
    let GradGraphArgs { model, output, wrt, batch_size, shape } = args;
    shape.apply_budget();
    let m = Model::load(&model)?;
    let shapes = m.input_shapes(batch_size, shape.shape())?;
    let g = m.canonical(&shapes, &CanonOptions { bn: *shape.bn, ..Default::default() })?;
    let layers = zerocost::onnx::layers::scored_layers(&g)?;
    let (weights, input) = match wrt {
        Wrt::Weights => (true, false),
        Wrt::Input => (false, true),
        Wrt::All => (true, true),
    };
    let program = proxies::passes::grad_graph(&g, &layers, weights, input)?;
    zerocost::onnx::proto::write_model(&program, &output)?;
    eprintln!("wrote {}: inputs {:?}, outputs {:?}", output.display(), program.inputs, program.outputs);
    Ok(EXIT_OK)
}

//! `zerocost inspect`: a model's inputs, outputs, scored layers and ops.

use super::{model_failed, positive, print, ShapeArgs, EXIT_OK};
use anyhow::Result;
use std::path::PathBuf;
use zerocost::inspect;
use zerocost::onnx::Model;
use zerocost::report::Format;

#[derive(clap::Args)]
pub struct InspectArgs {
    /// The ONNX model file to describe.
    #[arg(value_name = "MODEL")]
    model: PathBuf,
    /// Output format: table, json (one object), jsonl (the same object on one line) or csv
    /// (one row per scored layer).
    #[arg(long, value_enum, default_value = "table", value_name = "FORMAT")]
    format: Format,
    /// Batch size at which the input and output shapes are shown.
    #[arg(long, default_value_t = 1, value_parser = positive, value_name = "N")]
    batch_size: usize,
    #[command(flatten)]
    shape: ShapeArgs,
}

pub fn run(args: InspectArgs) -> Result<i32> {
    args.shape.apply_budget();
    let info = Model::load(&args.model)
        .and_then(|m| inspect::inspect(&m, args.batch_size, args.shape.shape(), *args.shape.bn))
        .map_err(|e| model_failed(&args.model, &e))?;
    let text = match args.format {
        Format::Table => inspect::render(&info),
        Format::Json => serde_json::to_string_pretty(&info)? + "\n",
        Format::Jsonl => serde_json::to_string(&info)? + "\n",
        Format::Csv => inspect::csv(&info),
    };
    print(&text)?;
    Ok(EXIT_OK)
}

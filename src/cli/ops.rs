//! `zerocost ops`: every op zerocost accepts, the opsets whose form it reads, and how it is
//! handled (a gradient rule and its family, lowered at import into what, removed at import,
//! or no gradient and why). The table is read from the op registry, `zerocost::ops`.

use super::{print, EXIT_OK};
use anyhow::Result;
use zerocost::ops::{rows, OpRow, LATEST_OPSET};
use zerocost::report::{align, csv_line, Format};

#[derive(clap::Args)]
pub struct OpsArgs {
    /// Output format: table, json (one array), jsonl (one object per line) or csv.
    #[arg(long, value_enum, default_value = "table", value_name = "FORMAT")]
    format: Format,
}

const COLUMNS: [&str; 7] = ["op", "since", "until", "handling", "differentiable", "detail", "note"];

fn fields(r: &OpRow) -> [String; 7] {
    [r.op.into(), r.since.to_string(), r.until.to_string(), r.handling.into(), r.differentiable.to_string(), r.detail.clone(), r.note.into()]
}

fn table(rows: &[OpRow]) -> String {
    let mut t = vec![vec!["op".to_string(), "opsets".into(), "handling".into(), "detail".into()]];
    for r in rows {
        let detail = if r.note.is_empty() { r.detail.clone() } else { format!("{}; {}", r.detail, r.note) };
        t.push(vec![r.op.into(), format!("{}-{}", r.since, r.until), r.handling.into(), detail]);
    }
    format!(
        "{}\nrule: a gradient rule (detail: its family in src/ops/); lowered: rewritten at import into \
         ops with rules; removed: dropped at import; no-gradient: runs, no gradient flows through it.\n\
         Opsets: the forms import reads (up to opset {LATEST_OPSET}).\n",
        align(&t, &[false; 4], "")
    )
}

pub fn run(args: OpsArgs) -> Result<i32> {
    let rows = rows();
    let text = match args.format {
        Format::Table => table(&rows),
        Format::Json => serde_json::to_string_pretty(&rows)? + "\n",
        Format::Jsonl => rows.iter().map(|r| serde_json::to_string(r).map(|s| s + "\n")).collect::<Result<String, _>>()?,
        Format::Csv => std::iter::once(csv_line(&COLUMNS)).chain(rows.iter().map(|r| csv_line(&fields(r)))).collect(),
    };
    print(&text)?;
    Ok(EXIT_OK)
}

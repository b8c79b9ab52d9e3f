//! `zerocost proxies`: the registered proxies, what they compute and which way they rank.

use super::{print, EXIT_OK};
use anyhow::Result;
use serde_json::{json, Value};
use zerocost::proxies::{registry, Proxy, PAPER_PROXIES};
use zerocost::report::{align, csv_line, Format};

#[derive(clap::Args)]
pub struct ProxiesArgs {
    /// Output format: table, json (one array), jsonl (one object per line) or csv.
    #[arg(long, value_enum, default_value = "table", value_name = "FORMAT")]
    format: Format,
}

const COLUMNS: [&str; 7] = ["name", "default", "direction", "data", "passes", "paper", "about"];

/// A proxy's fields in [`COLUMNS`] order.
fn fields(p: &Proxy) -> [String; 7] {
    let default = PAPER_PROXIES.contains(&p.name);
    [p.name.into(), default.to_string(), p.direction.as_str().into(), p.data.as_str().into(), p.passes.into(), p.paper.into(), p.about.into()]
}

fn to_json(p: &Proxy) -> Value {
    json!({
        "name": p.name,
        "default": PAPER_PROXIES.contains(&p.name),
        "direction": p.direction.as_str(),
        "data": p.data.as_str(),
        "passes": p.passes,
        "paper": p.paper,
        "about": p.about,
    })
}

fn table(proxies: &[Proxy]) -> String {
    let mut rows = vec![vec!["proxy".to_string(), "better".into(), "data".into(), "passes".into(), "paper".into()]];
    let mut about = Vec::new();
    for p in proxies {
        let mark = if PAPER_PROXIES.contains(&p.name) { "*" } else { "" };
        rows.push(vec![format!("{}{mark}", p.name), p.direction.as_str().into(), p.data.as_str().into(), p.passes.into(), p.paper.into()]);
        about.push(vec![p.name.to_string(), p.about.to_string()]);
    }
    let (rows, about) = (align(&rows, &[false; 5], ""), align(&about, &[false; 2], "  "));
    format!("{rows}* the default set (when --proxy is not given)\n\nWhat each computes:\n{about}")
}

pub fn run(args: ProxiesArgs) -> Result<i32> {
    let proxies = registry();
    let text = match args.format {
        Format::Table => table(&proxies),
        Format::Json => serde_json::to_string_pretty(&proxies.iter().map(to_json).collect::<Vec<_>>())? + "\n",
        Format::Jsonl => proxies.iter().map(|p| to_json(p).to_string() + "\n").collect(),
        Format::Csv => std::iter::once(csv_line(&COLUMNS)).chain(proxies.iter().map(|p| csv_line(&fields(p)))).collect(),
    };
    print(&text)?;
    Ok(EXIT_OK)
}

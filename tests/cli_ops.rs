//! `zerocost ops`: the table of accepted ops in each format, exit status 0.

use serde_json::Value;
use std::process::Command;

fn ops(format: &str) -> std::process::Output {
    let out = Command::new(env!("CARGO_BIN_EXE_zerocost")).args(["ops", "--format", format]).output().unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    out
}

#[test]
fn json_lists_known_ops_with_their_handling() {
    let v: Value = serde_json::from_slice(&ops("json").stdout).unwrap();
    let rows = v.as_array().unwrap();
    assert!(rows.len() > 80, "{} ops", rows.len());
    let find = |op: &str| rows.iter().find(|r| r["op"] == op).unwrap_or_else(|| panic!("{op} not listed"));
    let conv = find("Conv");
    assert_eq!(conv["handling"], "rule");
    assert_eq!(conv["detail"], "conv");
    assert_eq!(conv["differentiable"], true);
    assert_eq!(find("CumSum")["detail"], "reduce");
    for op in ["LRN", "GroupNormalization", "Mish", "DepthToSpace", "Gelu", "LayerNormalization"] {
        assert_eq!(find(op)["handling"], "lowered", "{op}");
    }
    assert_eq!(find("Identity")["handling"], "removed");
    let argmax = find("ArgMax");
    assert_eq!(argmax["handling"], "no-gradient");
    assert_eq!(argmax["differentiable"], false);
    let up = find("Upsample");
    assert_eq!((up["since"].as_i64(), up["until"].as_i64()), (Some(7), Some(9)));
    let names: Vec<&str> = rows.iter().map(|r| r["op"].as_str().unwrap()).collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "rows are sorted by op");
}

#[test]
fn table_and_csv_list_the_same_ops() {
    let table = String::from_utf8(ops("table").stdout).unwrap();
    assert!(table.contains("GroupNormalization") && table.contains("lowered"), "{table}");
    let csv = String::from_utf8(ops("csv").stdout).unwrap();
    let mut lines = csv.lines();
    assert_eq!(lines.next(), Some("op,since,until,handling,differentiable,detail,note"));
    let json: Value = serde_json::from_slice(&ops("json").stdout).unwrap();
    assert_eq!(lines.count(), json.as_array().unwrap().len());
}

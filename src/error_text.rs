//! One line per error, each thing named once. Contexts added at several levels (the file
//! at import, the node at inference, the node again in the rule) would otherwise repeat
//! themselves: `x.onnx: while importing node 'c' (Conv): x.onnx: shape inference failed
//! for node 'c' (Conv): node 'c' (Conv): strides 0 out of range`.

/// The error and its causes joined with ": ", leaving out a `part: ` that an earlier part
/// already says (the file name, a node's description).
pub fn one_line(e: &anyhow::Error) -> String {
    let mut said: Vec<String> = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        for part in split_parts(&text) {
            let repeated = part.len() >= 6 && said.iter().any(|s| s.contains(part));
            if !repeated && !part.is_empty() {
                said.push(part.to_string());
            }
        }
    }
    said.join(": ").replace('\n', " ")
}

/// Splits at ": " outside quotes and brackets (a shape `[1, 2]` or a quoted name stays whole).
fn split_parts(text: &str) -> Vec<&str> {
    let mut parts = Vec::new();
    let (mut depth, mut quoted, mut start) = (0i32, false, 0);
    let bytes = text.as_bytes();
    for (i, &b) in bytes.iter().enumerate() {
        match b {
            b'\'' | b'"' => quoted = !quoted,
            b'[' | b'(' | b'{' if !quoted => depth += 1,
            b']' | b')' | b'}' if !quoted => depth -= 1,
            b':' if !quoted && depth <= 0 && bytes.get(i + 1) == Some(&b' ') => {
                parts.push(text[start..i].trim());
                start = i + 2;
            }
            _ => {}
        }
    }
    parts.push(text[start..].trim());
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::{anyhow, Context};

    #[test]
    fn repeated_files_and_nodes_are_said_once() {
        let e: anyhow::Result<()> = Err(anyhow!("node 'c' (Conv): strides 0 out of range"));
        let e = e.context("x.onnx: shape inference failed for node 'c' (Conv)").context("x.onnx: while importing node 'c' (Conv)").unwrap_err();
        assert_eq!(one_line(&e), "x.onnx: while importing node 'c' (Conv): shape inference failed for node 'c' (Conv): strides 0 out of range");
        let e = anyhow!("sym.onnx: input 'input' has symbolic dimensions (h: 1, w: 2)").context("sym.onnx");
        assert_eq!(one_line(&e), "sym.onnx: input 'input' has symbolic dimensions (h: 1, w: 2)");
    }
}

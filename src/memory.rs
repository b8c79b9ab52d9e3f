//! The memory budget: sizes that come from a file (input batches, initializers, external
//! data, the tensors of a program at the chosen batch) are compared with it before anything
//! is allocated, so that a hostile or mistaken file gets a one-line error instead of
//! aborting the process (Rust aborts on a failed allocation; nothing can catch that).
//!
//! The budget is process-wide: `--max-memory` (or `max_memory:` in a job) sets it once at
//! start-up; by default it is 80% of the memory available to the process (the smaller of
//! the machine's available memory and the address-space limit, `ulimit -v`).

use anyhow::{bail, Result};
use std::sync::atomic::{AtomicU64, Ordering};

/// 0: not set, use [`default_budget`].
static MAX_MEMORY: AtomicU64 = AtomicU64::new(0);

/// Sets the budget in bytes for the rest of the process (0 restores the default).
pub fn set_max_memory(bytes: u64) {
    MAX_MEMORY.store(bytes, Ordering::SeqCst);
}

/// The budget in bytes.
pub fn budget() -> u64 {
    match MAX_MEMORY.load(Ordering::SeqCst) {
        0 => default_budget(),
        b => b,
    }
}

/// 80% of what this process can have: `MemAvailable` of /proc/meminfo and the
/// address-space limit, whichever is smaller (16 GiB where neither can be read). Read once,
/// at the first check: checks run for every folded constant and every program.
pub fn default_budget() -> u64 {
    static DEFAULT: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *DEFAULT.get_or_init(read_default_budget)
}

fn read_default_budget() -> u64 {
    let available = std::fs::read_to_string("/proc/meminfo").ok().and_then(|t| {
        t.lines().find_map(|l| l.strip_prefix("MemAvailable:")?.trim().strip_suffix("kB")?.trim().parse::<u64>().ok()).map(|kb| kb * 1024)
    });
    let limit = address_space_limit();
    let usable = match (available, limit) {
        (Some(a), Some(l)) => a.min(l),
        (Some(a), None) => a,
        (None, Some(l)) => l,
        (None, None) => 16 << 30,
    };
    usable / 5 * 4
}

/// The soft RLIMIT_AS (`ulimit -v`), when one is set.
fn address_space_limit() -> Option<u64> {
    // /proc/self/limits: "Max address space  <soft> <hard> bytes"
    let t = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = t.lines().find(|l| l.starts_with("Max address space"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// The text of a caught panic (engines and proxies turn panics into errors of the model).
pub fn panic_message(p: Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| s.to_string())).unwrap_or_else(|| "unknown panic".into())
}

/// Bytes as people read them: 1.5 GiB, 640 MiB, 12 KiB, 80 B.
pub fn human(bytes: u128) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 { format!("{bytes} B") } else { format!("{v:.1} {}", UNITS[u]) }
}

/// Parses a size: a number of bytes with an optional unit (K, M, G, T with or without
/// `B`/`iB`, powers of 1024), e.g. `4G`, `512MiB`, `1.5g`, `1000000`.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let v: f64 = num.parse().map_err(|_| format!("bad size '{s}': expected e.g. 4G, 512M or a number of bytes"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let unit = unit.trim_end_matches("ib").trim_end_matches('b');
    let scale: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return Err(format!("bad size '{s}': unknown unit (use K, M, G or T)")),
    };
    let bytes = v * scale as f64;
    if !(bytes >= 1.0 && bytes < u64::MAX as f64) {
        return Err(format!("bad size '{s}': must be at least one byte"));
    }
    Ok(bytes as u64)
}

/// Number of elements of a shape, without overflow.
pub fn elements(shape: &[usize]) -> u128 {
    shape.iter().fold(1u128, |a, &d| a.saturating_mul(d as u128))
}

/// Fails when `bytes` are over the budget; `what` names the thing asked for (the file, the
/// tensor and its shape), as the error says it.
pub fn check(what: impl std::fmt::Display, bytes: u128) -> Result<()> {
    let b = budget();
    if bytes > b as u128 {
        bail!("{what} needs {} ({bytes} bytes), over the memory budget of {} (--max-memory)", human(bytes), human(b as u128));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_and_print() {
        assert_eq!(parse_size("4G").unwrap(), 4 << 30);
        assert_eq!(parse_size("512MiB").unwrap(), 512 << 20);
        assert_eq!(parse_size("1.5g").unwrap(), 3 << 29);
        assert_eq!(parse_size("1000").unwrap(), 1000);
        assert!(parse_size("4X").is_err() && parse_size("").is_err() && parse_size("0").is_err());
        assert_eq!(human(1536 << 20), "1.5 GiB");
        assert_eq!(human(80), "80 B");
        assert_eq!(elements(&[1 << 40, 1 << 30, 1 << 40]), 1u128 << 110);
        assert_eq!(elements(&[usize::MAX, usize::MAX, usize::MAX]), u128::MAX);
    }

    #[test]
    fn the_default_budget_is_positive() {
        assert!(default_budget() > 0);
    }
}

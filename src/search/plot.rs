//! Best accuracy against trained models: the mean over repeats and the interquartile band,
//! one curve per variant (like Figure 2 of the zero-cost-proxies paper). SVG or PNG.

use super::algo::Row;
use anyhow::{anyhow, bail, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::path::Path;

/// Per step (1-based index − 1): (mean, 25th percentile, 75th percentile).
pub type Curve = Vec<(f64, f64, f64)>;

/// Linear-interpolated percentile (numpy's default) of sorted values.
fn percentile(sorted: &[f64], q: f64) -> f64 {
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Curves of the best value so far per variant (in order of first appearance): best
/// accuracy, or best proxy score when the trace has no accuracies. The bool tells which.
pub fn curves(rows: &[Row]) -> (Vec<(String, Curve)>, bool) {
    let use_acc = rows.iter().any(|r| r.best_accuracy.is_some());
    let mut order: Vec<String> = Vec::new();
    // variant -> repeat -> values per step
    let mut by: BTreeMap<String, BTreeMap<usize, Vec<Option<f64>>>> = BTreeMap::new();
    for r in rows {
        if !order.contains(&r.variant) {
            order.push(r.variant.clone());
        }
        let v = if use_acc { r.best_accuracy } else { r.best_proxy };
        let seq = by.entry(r.variant.clone()).or_default().entry(r.repeat).or_default();
        if seq.len() < r.step {
            seq.resize(r.step, None);
        }
        seq[r.step - 1] = v;
    }
    let mut out = Vec::new();
    for name in order {
        let reps = &by[&name];
        let steps = reps.values().map(|s| s.len()).max().unwrap_or(0);
        let mut curve = Vec::with_capacity(steps);
        for s in 0..steps {
            let mut vals: Vec<f64> = reps.values().filter_map(|seq| seq.get(s).copied().flatten()).filter(|v| v.is_finite()).collect();
            if vals.is_empty() {
                curve.push((f64::NAN, f64::NAN, f64::NAN));
                continue;
            }
            vals.sort_by(f64::total_cmp);
            let mean = vals.iter().sum::<f64>() / vals.len() as f64;
            curve.push((mean, percentile(&vals, 0.25), percentile(&vals, 0.75)));
        }
        out.push((name, curve));
    }
    (out, use_acc)
}

const COLORS: [RGBColor; 6] = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44), RGBColor(148, 103, 189), RGBColor(255, 127, 14), RGBColor(23, 190, 207)];

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, Shift>, rows: &[Row], title: &str) -> Result<()>
where
    DB::ErrorType: 'static,
{
    let (curves, use_acc) = curves(rows);
    let steps = curves.iter().map(|c| c.1.len()).max().unwrap_or(0);
    if steps == 0 {
        bail!("nothing to plot: the trace is empty");
    }
    let finite = curves.iter().flat_map(|c| c.1.iter()).flat_map(|&(m, a, b)| [m, a, b]).filter(|v| v.is_finite());
    let (mut lo, mut hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(l, h), v| (l.min(v), h.max(v)));
    if !lo.is_finite() {
        bail!("nothing to plot: no accuracy or proxy value in the trace");
    }
    // the paper's plots focus on the top: start the axis where the curves settle
    let settle: Vec<f64> = curves.iter().filter_map(|c| c.1.get((c.1.len() / 10).min(c.1.len() - 1)).map(|t| t.1)).filter(|v| v.is_finite()).collect();
    if let Some(s) = settle.iter().copied().reduce(f64::min) {
        lo = lo.max(s - 0.15 * (hi - s).max(1e-9));
    }
    if hi - lo < 1e-9 {
        hi += 0.5;
        lo -= 0.5;
    }
    let pad = 0.05 * (hi - lo);
    let e = |err: DrawingAreaErrorKind<DB::ErrorType>| anyhow!("plot: {err}");
    root.fill(&WHITE).map_err(e)?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(12)
        .x_label_area_size(45)
        .y_label_area_size(60)
        .build_cartesian_2d(1f64..steps.max(2) as f64, (lo - pad)..(hi + pad))
        .map_err(e)?;
    chart
        .configure_mesh()
        .x_desc("trained models")
        .y_desc(if use_acc { "best accuracy" } else { "best proxy score" })
        .x_label_formatter(&|x| format!("{x:.0}"))
        .label_style(("sans-serif", 14))
        .axis_desc_style(("sans-serif", 15))
        .light_line_style(WHITE.mix(0.0))
        .draw()
        .map_err(e)?;
    for (k, (name, curve)) in curves.iter().enumerate() {
        let color = COLORS[k % COLORS.len()];
        let pts: Vec<(f64, (f64, f64, f64))> = curve.iter().enumerate().filter(|(_, t)| t.0.is_finite()).map(|(i, t)| ((i + 1) as f64, *t)).collect();
        let mut band: Vec<(f64, f64)> = pts.iter().map(|(x, t)| (*x, t.2)).collect();
        band.extend(pts.iter().rev().map(|(x, t)| (*x, t.1)));
        chart.draw_series(std::iter::once(Polygon::new(band, color.mix(0.18).filled()))).map_err(e)?;
        chart
            .draw_series(LineSeries::new(pts.iter().map(|(x, t)| (*x, t.0)), color.stroke_width(2)))
            .map_err(e)?
            .label(name.as_str())
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2)));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .label_font(("sans-serif", 14))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK.mix(0.4))
        .draw()
        .map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// Draws the trace to `path` (`.svg` or `.png`).
pub fn plot(rows: &[Row], title: &str, path: &Path) -> Result<()> {
    let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular());
    let (w, h) = (800u32, 520u32);
    let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("").to_ascii_lowercase();
    match ext.as_str() {
        "svg" => {
            let mut svg = String::new();
            draw(SVGBackend::with_string(&mut svg, (w, h)).into_drawing_area(), rows, title)?;
            std::fs::write(path, svg).with_context(|| format!("cannot write {}", path.display()))
        }
        "png" => {
            let mut buf = vec![0u8; (w * h * 3) as usize];
            draw(BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area(), rows, title)?;
            let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("plot: bad buffer"))?;
            img.save_with_format(path, image::ImageFormat::Png).with_context(|| format!("cannot write {}", path.display()))
        }
        _ => bail!("--plot: use a .svg or .png file name"),
    }
}

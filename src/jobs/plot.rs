//! Plots of a correlation report: a scatter per proxy (score against accuracy, the score on a
//! log axis where it is positive and spans two decades or more) and a bar chart of Spearman ρ
//! per proxy, each as SVG and PNG.
//!
//! Text is laid out with a font compiled into the binary (DejaVu Sans, through plotters'
//! `ab_glyph` backend), so plots render the same on a machine without any system fonts. The
//! PNG is rasterised by plotters and encoded with the `image` crate.

use super::correlate::{ProxyStats, Report};
use anyhow::{anyhow, Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::Once;

const FONT: &str = "sans-serif";
const SIZE: (u32, u32) = (800, 600);

fn register_fonts() -> Result<()> {
    static ONCE: Once = Once::new();
    let mut res = Ok(());
    ONCE.call_once(|| {
        res = plotters::style::register_font(FONT, FontStyle::Normal, dejavu::sans::regular())
            .and_then(|_| plotters::style::register_font(FONT, FontStyle::Bold, dejavu::sans::bold()))
            .map_err(|_| anyhow!("the embedded font could not be loaded"));
    });
    res
}

type DrawResult<E> = std::result::Result<(), DrawingAreaErrorKind<E>>;

/// Whether the scores deserve a log axis.
pub fn wants_log(xs: &[f64]) -> bool {
    let (min, max) = xs.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
    min > 0.0 && max / min >= 100.0
}

fn padded(min: f64, max: f64) -> (f64, f64) {
    if !(min.is_finite() && max.is_finite()) {
        return (0.0, 1.0);
    }
    let span = max - min;
    if span <= 0.0 {
        let d = if min == 0.0 { 1.0 } else { min.abs() * 0.1 };
        return (min - d, max + d);
    }
    (min - 0.05 * span, max + 0.05 * span)
}

/// A tick label: plain digits for moderate magnitudes, scientific otherwise.
pub fn tick(x: f64) -> String {
    let a = x.abs();
    if a == 0.0 {
        return "0".into();
    }
    if (1e-3..1e5).contains(&a) {
        let decimals = (3 - a.log10().floor() as i32).clamp(0, 6) as usize;
        let s = format!("{x:.decimals$}");
        if s.contains('.') { s.trim_end_matches('0').trim_end_matches('.').to_string() } else { s }
    } else {
        format!("{x:.2e}")
    }
}

fn scatter<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, p: &ProxyStats) -> DrawResult<DB::ErrorType> {
    area.fill(&WHITE)?;
    let xs: Vec<f64> = p.points.iter().map(|q| q.0).collect();
    let ys: Vec<f64> = p.points.iter().map(|q| q.1).collect();
    let (ymin, ymax) = padded(ys.iter().copied().fold(f64::INFINITY, f64::min), ys.iter().copied().fold(f64::NEG_INFINITY, f64::max));
    let caption = format!("{}: spearman {}, kendall {}, n = {}", p.name, super::correlate::fmt_stat(p.spearman), super::correlate::fmt_stat(p.kendall), p.n);
    let dot = |(x, y): (f64, f64)| Circle::new((x, y), 4, BLUE.mix(0.6).filled());
    let xmin = xs.iter().copied().fold(f64::INFINITY, f64::min);
    let xmax = xs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if wants_log(&xs) {
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d((xmin / 1.5..xmax * 1.5).log_scale(), ymin..ymax)?;
        chart
            .configure_mesh()
            .x_desc(format!("{} (log scale)", p.name))
            .y_desc("accuracy")
            .label_style((FONT, 14))
            .x_label_formatter(&|x| format!("{x:.0e}"))
            .draw()?;
        chart.draw_series(p.points.iter().copied().map(dot))?;
    } else {
        let (xmin, xmax) = padded(xmin, xmax);
        let mut chart = ChartBuilder::on(area)
            .caption(caption, (FONT, 22))
            .margin(15)
            .x_label_area_size(45)
            .y_label_area_size(60)
            .build_cartesian_2d(xmin..xmax, ymin..ymax)?;
        chart
            .configure_mesh()
            .x_desc(p.name.as_str())
            .y_desc("accuracy")
            .label_style((FONT, 14))
            .x_label_formatter(&|x| tick(*x))
            .x_labels(6)
            .draw()?;
        chart.draw_series(p.points.iter().copied().map(dot))?;
    }
    area.present()
}

fn bars<DB: DrawingBackend>(area: &DrawingArea<DB, Shift>, r: &Report) -> DrawResult<DB::ErrorType> {
    area.fill(&WHITE)?;
    let n = r.proxies.len().max(1);
    // the first proxy at the top
    let row = |i: usize| n - 1 - i;
    let names: Vec<String> = r.proxies.iter().rev().map(|p| p.name.clone()).collect();
    let mut chart = ChartBuilder::on(area)
        .caption(format!("Spearman rho per proxy (n = {})", r.n), (FONT, 22))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(110)
        .build_cartesian_2d(-1.0f64..1.0f64, (0..n - 1).into_segmented())?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(n)
        .y_label_formatter(&|v| match v {
            SegmentValue::CenterOf(i) => names.get(*i).cloned().unwrap_or_default(),
            _ => String::new(),
        })
        .x_desc("Spearman rho with accuracy, in each proxy's direction (the paper reports |rho|)")
        .label_style((FONT, 14))
        .draw()?;
    chart.draw_series(r.proxies.iter().enumerate().filter(|(_, p)| p.spearman.is_finite()).map(|(i, p)| {
        let color = if p.spearman >= 0.0 { BLUE.mix(0.7) } else { RED.mix(0.7) };
        let mut rect = Rectangle::new([(0.0, SegmentValue::Exact(row(i))), (p.spearman, SegmentValue::Exact(row(i) + 1))], color.filled());
        rect.set_margin(5, 5, 0, 0);
        rect
    }))?;
    chart.draw_series(r.proxies.iter().enumerate().map(|(i, p)| {
        let x = if p.spearman.is_finite() && p.spearman >= 0.0 { -0.02 } else { 0.02 };
        let text = super::correlate::fmt_stat(p.spearman);
        let style = TextStyle::from((FONT, 14).into_font()).pos(plotters::style::text_anchor::Pos::new(
            if x < 0.0 { plotters::style::text_anchor::HPos::Right } else { plotters::style::text_anchor::HPos::Left },
            plotters::style::text_anchor::VPos::Center,
        ));
        Text::new(text, (x, SegmentValue::CenterOf(row(i))), style)
    }))?;
    chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, SegmentValue::Exact(0)), (0.0, SegmentValue::Exact(n))], BLACK)))?;
    area.present()
}

fn png(path: &Path, draw: impl FnOnce(&DrawingArea<BitMapBackend, Shift>) -> Result<()>) -> Result<()> {
    let (w, h) = SIZE;
    let mut buf = vec![0u8; (w * h * 3) as usize];
    {
        let area = BitMapBackend::with_buffer(&mut buf, (w, h)).into_drawing_area();
        draw(&area)?;
    }
    let img = image::RgbImage::from_raw(w, h, buf).ok_or_else(|| anyhow!("bad image buffer"))?;
    img.save(path).with_context(|| format!("cannot write {}", path.display()))
}

fn svg(path: &Path, draw: impl FnOnce(&DrawingArea<SVGBackend, Shift>) -> Result<()>) -> Result<()> {
    let area = SVGBackend::new(path, SIZE).into_drawing_area();
    draw(&area)
}

fn safe(name: &str) -> String {
    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Writes `scatter_PROXY.{svg,png}` for each proxy with points and `spearman.{svg,png}`
/// into `dir`; returns the files written.
pub fn write_plots(dir: &Path, r: &Report) -> Result<Vec<PathBuf>> {
    register_fonts()?;
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let mut written = Vec::new();
    let err = |e: String| anyhow!("plotting failed: {e}");
    for p in r.proxies.iter().filter(|p| !p.points.is_empty()) {
        let base = dir.join(format!("scatter_{}", safe(&p.name)));
        let (s, g) = (base.with_extension("svg"), base.with_extension("png"));
        svg(&s, |a| scatter(a, p).map_err(|e| err(e.to_string())))?;
        png(&g, |a| scatter(a, p).map_err(|e| err(e.to_string())))?;
        written.extend([s, g]);
    }
    let (s, g) = (dir.join("spearman.svg"), dir.join("spearman.png"));
    svg(&s, |a| bars(a, r).map_err(|e| err(e.to_string())))?;
    png(&g, |a| bars(a, r).map_err(|e| err(e.to_string())))?;
    written.extend([s, g]);
    Ok(written)
}

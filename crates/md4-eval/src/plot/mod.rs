//! Plots for the paper's figures (spec §10.8): line plots of named series (optionally log-scale
//! y, optional error bars; Fig. 1, Fig. 4), grouped bar charts (tokens revealed per step,
//! Fig. 2 right) and a token-grid "unmasking" picture (Fig. 3). Every plot is a [`Chart`] that
//! [`write_chart`] writes as PNG and SVG, with a CSV of exactly the data drawn.
//!
//! This file holds what every chart shares: the font, the palette, the [`Chart`] trait and its
//! one writer, the axes and legend, and the long-form series frames; the charts live in
//! [`line`], [`bar`] and [`grid`].
//!
//! plotters runs without system fonts here (features `ab_glyph`, no `ttf`): DejaVu Sans is
//! embedded from `assets/` (Bitstream Vera licence, `assets/LICENSE-DejaVu.txt`) and registered
//! under every family name this module uses.

use crate::table::write_csv;
use anyhow::{Context, Result, anyhow, ensure};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::coord::types::RangedCoordf64;
use plotters::prelude::*;
use polars::prelude::*;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod bar;
mod grid;
mod line;

pub use bar::BarChart;
pub use grid::{TokenGrid, step_color};
pub use line::LinePlot;

static DEJAVU_SANS: &[u8] = include_bytes!("../../assets/DejaVuSans.ttf");

/// Font family names registered with the embedded font (plotters' default is `sans-serif`).
pub const FONT_FAMILIES: [&str; 4] = ["sans-serif", "serif", "monospace", "DejaVu Sans"];

pub(crate) const FONT: &str = "sans-serif";

/// Register the embedded font under [`FONT_FAMILIES`] (idempotent; called by every plot).
pub fn register_fonts() -> Result<()> {
    static REGISTERED: OnceLock<bool> = OnceLock::new();
    let ok = REGISTERED.get_or_init(|| {
        FONT_FAMILIES
            .iter()
            .all(|family| plotters::style::register_font(family, FontStyle::Normal, DEJAVU_SANS).is_ok())
    });
    ensure!(*ok, "the embedded DejaVu Sans font could not be parsed");
    Ok(())
}

/// The tab10 colours, in order.
const PALETTE: [RGBColor; 10] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
];

fn series_color(index: usize) -> RGBColor {
    PALETTE[index % PALETTE.len()]
}

/// The files a plot wrote.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlotFiles {
    pub png: PathBuf,
    pub svg: PathBuf,
    pub csv: PathBuf,
}

impl PlotFiles {
    fn at(stem: &Path) -> Self {
        Self {
            png: stem.with_extension("png"),
            svg: stem.with_extension("svg"),
            csv: stem.with_extension("csv"),
        }
    }
}

/// A picture written as PNG and SVG of the same size, with a CSV of exactly the data drawn.
pub trait Chart {
    /// What drawing needs that can fail to compute (axis ranges); found before any file is written.
    type Layout;
    /// Checks the data and computes the layout.
    fn layout(&self) -> Result<Self::Layout>;
    /// Pixel size of the PNG (and the SVG's viewport).
    fn pixels(&self) -> (u32, u32);
    /// Draws the chart on a fresh drawing area.
    fn draw<DB: DrawingBackend>(
        &self,
        layout: &Self::Layout,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>;
    /// The data drawn, one row per point or cell.
    fn frame(&self) -> Result<DataFrame>;
}

/// Write `<stem>.png`, `<stem>.svg` and `<stem>.csv` of a chart.
pub fn write_chart<C: Chart>(chart: &C, stem: &Path) -> Result<PlotFiles> {
    let layout = chart.layout()?;
    let files = PlotFiles::at(stem);
    create_parent(stem)?;
    register_fonts()?;
    let size = chart.pixels();
    render(BitMapBackend::new(&files.png, size), &files.png, |root| chart.draw(&layout, root))?;
    render(SVGBackend::new(&files.svg, size), &files.svg, |root| chart.draw(&layout, root))?;
    write_csv(&mut chart.frame()?, &files.csv)?;
    Ok(files)
}

/// The caption, margins and label areas of every chart with axes.
fn cartesian<'a, DB, Y>(
    root: &'a DrawingArea<DB, Shift>,
    title: &str,
    x_range: Range<f64>,
    y_spec: Y,
) -> Result<
    ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y::CoordDescType>>,
    DrawingAreaErrorKind<DB::ErrorType>,
>
where
    DB: DrawingBackend,
    Y: AsRangedCoord<Value = f64>,
{
    ChartBuilder::on(root)
        .caption(title, (FONT, 22))
        .margin(12)
        .x_label_area_size(48)
        .y_label_area_size(80)
        .build_cartesian_2d(x_range, y_spec)
}

/// The grid, tick labels ([`axis_number`]) and axis descriptions; `x_mesh: false` leaves out
/// the vertical grid lines (bar charts).
fn draw_axes<DB, Y>(
    chart: &mut ChartContext<'_, DB, Cartesian2d<RangedCoordf64, Y>>,
    x_label: &str,
    y_label: &str,
    x_mesh: bool,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend,
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let mut mesh = chart.configure_mesh();
    if !x_mesh {
        mesh.disable_x_mesh();
    }
    mesh.x_desc(x_label)
        .y_desc(y_label)
        .label_style((FONT, 15))
        .axis_desc_style((FONT, 17))
        .light_line_style(RGBColor(235, 235, 235));
    mesh.x_label_formatter(&axis_number).y_label_formatter(&axis_number).draw()
}

/// The legend box of the labelled series.
fn draw_legend<'a, DB, Y>(
    chart: &mut ChartContext<'a, DB, Cartesian2d<RangedCoordf64, Y>>,
    legend: Legend,
) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
where
    DB: DrawingBackend + 'a,
    Y: Ranged<ValueType = f64>,
{
    chart
        .configure_series_labels()
        .position(legend.position())
        .label_font((FONT, 15))
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
}

/// One named series of (x, y) points with optional ± error bars.
#[derive(Clone, Debug, PartialEq)]
pub struct Series {
    pub name: String,
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// Half-widths of error bars (e.g. standard errors), one per point.
    pub err: Option<Vec<f64>>,
}

impl Series {
    pub fn new(name: &str, x: Vec<f64>, y: Vec<f64>) -> Self {
        Self { name: name.into(), x, y, err: None }
    }

    /// How much a training curve still improved over the last fifth of its x range: the
    /// relative drop (y(a) − y(last)) / y(a), where a is the first point at or after 80 % of the
    /// last x. None with fewer than two points in that window's span.
    pub fn last_fifth_improvement(&self) -> Option<f64> {
        let last = self.x.len().checked_sub(1)?;
        let cut = 0.8 * self.x[last];
        let a = self.x.iter().position(|&x| x >= cut)?;
        (a < last).then(|| (self.y[a] - self.y[last]) / self.y[a])
    }

    pub fn with_err(mut self, err: Vec<f64>) -> Self {
        self.err = Some(err);
        self
    }

    fn check(&self) -> Result<()> {
        ensure!(!self.x.is_empty(), "series '{}' is empty", self.name);
        ensure!(
            self.x.len() == self.y.len(),
            "series '{}': {} x values but {} y values",
            self.name,
            self.x.len(),
            self.y.len()
        );
        if let Some(err) = &self.err {
            ensure!(
                err.len() == self.x.len(),
                "series '{}': {} error bars for {} points",
                self.name,
                err.len(),
                self.x.len()
            );
        }
        Ok(())
    }

    fn err_at(&self, i: usize) -> f64 {
        self.err.as_ref().map_or(0.0, |e| e[i])
    }
}

/// Every chart of series needs at least one, each well formed.
fn check_series(what: &str, title: &str, series: &[Series]) -> Result<()> {
    ensure!(!series.is_empty(), "{what} '{title}' has no series");
    series.iter().try_for_each(Series::check)
}

/// Where the legend goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Legend {
    UpperLeft,
    UpperRight,
    LowerLeft,
    LowerRight,
}

impl Legend {
    fn position(&self) -> SeriesLabelPosition {
        match self {
            Self::UpperLeft => SeriesLabelPosition::UpperLeft,
            Self::UpperRight => SeriesLabelPosition::UpperRight,
            Self::LowerLeft => SeriesLabelPosition::LowerLeft,
            Self::LowerRight => SeriesLabelPosition::LowerRight,
        }
    }
}

/// Series in long form: one row per point, columns series, x, y, err (null without error bars).
pub fn series_frame(series: &[Series]) -> Result<DataFrame> {
    let names: Vec<&str> =
        series.iter().flat_map(|s| std::iter::repeat_n(s.name.as_str(), s.x.len())).collect();
    let x: Vec<f64> = series.iter().flat_map(|s| s.x.iter().copied()).collect();
    let y: Vec<f64> = series.iter().flat_map(|s| s.y.iter().copied()).collect();
    let err: Vec<Option<f64>> =
        series.iter().flat_map(|s| (0..s.x.len()).map(|i| s.err.as_ref().map(|e| e[i]))).collect();
    Ok(df!("series" => names, "x" => x, "y" => y, "err" => err)?)
}

/// Series back from a long-form frame (the inverse of [`series_frame`], order preserved).
pub fn frame_series(df: &DataFrame) -> Result<Vec<Series>> {
    let names = df.column("series")?.str()?;
    // Whole-number floats and all-null columns may come back from a CSV as integers or
    // strings; cast so that the inverse holds for every series.
    let x = df.column("x")?.cast(&DataType::Float64)?;
    let y = df.column("y")?.cast(&DataType::Float64)?;
    let err = df.column("err")?.cast(&DataType::Float64)?;
    let (x, y, err) = (x.f64()?, y.f64()?, err.f64()?);
    let mut out: Vec<Series> = Vec::new();
    for i in 0..df.height() {
        let name = names.get(i).context("null series name")?;
        if out.last().is_none_or(|s| s.name != name) {
            out.push(Series::new(name, Vec::new(), Vec::new()));
        }
        let s = out.last_mut().context("no series")?;
        s.x.push(x.get(i).context("null x")?);
        s.y.push(y.get(i).context("null y")?);
        if let Some(e) = err.get(i) {
            s.err.get_or_insert_with(Vec::new).push(e);
        }
    }
    Ok(out)
}

/// A short tick label: plain decimals for 1e−3 ≤ |v| < 1e6 (`0.5`, `15000`), otherwise
/// scientific with trimmed mantissa (`1e-5`, `2.5e6`); float noise such as 9.999999e−5 is
/// rounded away.
pub fn axis_number(v: &f64) -> String {
    let a = v.abs();
    if a == 0.0 || !a.is_finite() {
        format!("{v}")
    } else if (1e-3..1e6).contains(&a) {
        let s = format!("{v:.4}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        let s = format!("{v:.2e}");
        let (mantissa, exponent) = s.split_once('e').unwrap_or((&s, "0"));
        format!("{}e{exponent}", mantissa.trim_end_matches('0').trim_end_matches('.'))
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.filter(|v| v.is_finite()).fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

pub(crate) fn create_parent(stem: &Path) -> Result<()> {
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// Draw on a fresh backend and flush it to `path`.
pub(crate) fn render<DB: DrawingBackend>(
    backend: DB,
    path: &Path,
    draw: impl FnOnce(&DrawingArea<DB, Shift>) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>,
) -> Result<()> {
    let root = backend.into_drawing_area();
    draw(&root).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    root.present().map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests;

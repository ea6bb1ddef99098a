//! Plots for the paper's figures (spec §10.8): line plots of named series (optionally log-scale
//! y, optional error bars; Fig. 1, Fig. 4), grouped bar charts (tokens revealed per step,
//! Fig. 2 right) and a token-grid "unmasking" picture (Fig. 3). Every plot is written as PNG
//! and SVG, with a CSV of exactly the data drawn.
//!
//! plotters runs without system fonts here (features `ab_glyph`, no `ttf`): DejaVu Sans is
//! embedded from `assets/` (Bitstream Vera licence, `assets/LICENSE-DejaVu.txt`) and registered
//! under every family name this module uses.

use crate::table::write_csv;
use anyhow::{Context, Result, anyhow, bail, ensure};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::*;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

static DEJAVU_SANS: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");

/// Font family names registered with the embedded font (plotters' default is `sans-serif`).
pub const FONT_FAMILIES: [&str; 4] = ["sans-serif", "serif", "monospace", "DejaVu Sans"];

const FONT: &str = "sans-serif";

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

/// A line plot of several named series.
#[derive(Clone, Debug, PartialEq)]
pub struct LinePlot {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    /// Logarithmic y axis (every plotted y must be positive).
    pub log_y: bool,
    pub legend: Legend,
    /// Pixel size of the PNG (and the SVG's viewport).
    pub size: (u32, u32),
    pub series: Vec<Series>,
}

impl LinePlot {
    pub fn new(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            log_y: false,
            legend: Legend::UpperRight,
            size: (800, 560),
            series,
        }
    }

    /// Write `<stem>.png`, `<stem>.svg` and `<stem>.csv` (columns series, x, y, err).
    pub fn write(&self, stem: &Path) -> Result<PlotFiles> {
        ensure!(!self.series.is_empty(), "plot '{}' has no series", self.title);
        for s in &self.series {
            s.check()?;
        }
        let (x_range, y_range) = self.ranges()?;
        let files = PlotFiles::at(stem);
        create_parent(stem)?;
        register_fonts()?;
        let draw = |files: &PlotFiles| -> Result<()> {
            if self.log_y {
                let y = y_range.clone().log_scale();
                render(BitMapBackend::new(&files.png, self.size), &files.png, |root| {
                    self.draw_on(root, &x_range, y.clone())
                })?;
                render(SVGBackend::new(&files.svg, self.size), &files.svg, |root| {
                    self.draw_on(root, &x_range, y.clone())
                })
            } else {
                let y = y_range.clone();
                render(BitMapBackend::new(&files.png, self.size), &files.png, |root| {
                    self.draw_on(root, &x_range, y.clone())
                })?;
                render(SVGBackend::new(&files.svg, self.size), &files.svg, |root| {
                    self.draw_on(root, &x_range, y.clone())
                })
            }
        };
        draw(&files)?;
        write_csv(&mut series_frame(&self.series)?, &files.csv)?;
        Ok(files)
    }

    /// Axis ranges covering every point and error bar, with a little padding.
    fn ranges(&self) -> Result<(std::ops::Range<f64>, std::ops::Range<f64>)> {
        let xs = self.series.iter().flat_map(|s| s.x.iter().copied());
        let (x_lo, x_hi) = min_max(xs).context("no finite x values")?;
        let ys = self
            .series
            .iter()
            .flat_map(|s| (0..s.y.len()).flat_map(move |i| [s.y[i] - s.err_at(i), s.y[i] + s.err_at(i)]));
        let y_range = if self.log_y {
            let ys: Vec<f64> = ys.filter(|&y| y > 0.0).collect();
            if let Some(bad) =
                self.series.iter().flat_map(|s| s.y.iter()).find(|&&y| y <= 0.0 || !y.is_finite())
            {
                bail!("plot '{}': log-scale y needs positive finite values, got {bad}", self.title);
            }
            let (lo, hi) = min_max(ys.into_iter()).context("no positive y values")?;
            let pad = (hi / lo).powf(0.04).max(1.05);
            lo / pad..hi * pad
        } else {
            let (lo, hi) = min_max(ys).context("no finite y values")?;
            let pad = if hi > lo { 0.04 * (hi - lo) } else { 0.5 * lo.abs().max(1.0) };
            lo - pad..hi + pad
        };
        let x_range = if x_hi > x_lo { x_lo..x_hi } else { x_lo - 0.5..x_hi + 0.5 };
        Ok((x_range, y_range))
    }

    fn draw_on<DB, Y>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x_range: &std::ops::Range<f64>,
        y_spec: Y,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range.clone(), y_spec)?;
        let mut mesh = chart.configure_mesh();
        mesh.x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(RGBColor(235, 235, 235));
        mesh.x_label_formatter(&axis_number).y_label_formatter(&axis_number).draw()?;
        for (index, series) in self.series.iter().enumerate() {
            let color = series_color(index);
            let points: Vec<(f64, f64)> = series.x.iter().copied().zip(series.y.iter().copied()).collect();
            chart
                .draw_series(LineSeries::new(points, color.stroke_width(2)))?
                .label(series.name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], color.stroke_width(3)));
            if let Some(err) = &series.err {
                let y_lo = chart.y_range().start;
                let bars = series.x.iter().zip(&series.y).zip(err).map(|((&x, &y), &e)| {
                    let low = if self.log_y { (y - e).max(y_lo) } else { y - e };
                    PathElement::new(vec![(x, low), (x, y + e)], color.stroke_width(1))
                });
                chart.draw_series(bars)?;
                chart.draw_series(
                    series.x.iter().zip(&series.y).map(|(&x, &y)| Circle::new((x, y), 3, color.filled())),
                )?;
            }
        }
        chart
            .configure_series_labels()
            .position(self.legend.position())
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// A grouped bar chart: at each x, one bar per series side by side.
#[derive(Clone, Debug, PartialEq)]
pub struct BarChart {
    pub title: String,
    pub x_label: String,
    pub y_label: String,
    pub legend: Legend,
    pub size: (u32, u32),
    /// Series share their x positions (bar centres, spaced by at least `slot`).
    pub series: Vec<Series>,
    /// Width of the slot at each x that the group of bars fills (in x units).
    pub slot: f64,
}

impl BarChart {
    pub fn new(title: &str, x_label: &str, y_label: &str, series: Vec<Series>) -> Self {
        Self {
            title: title.into(),
            x_label: x_label.into(),
            y_label: y_label.into(),
            legend: Legend::UpperRight,
            size: (900, 520),
            series,
            slot: 0.9,
        }
    }

    /// Write `<stem>.png`, `<stem>.svg` and `<stem>.csv` (columns series, x, y, err).
    pub fn write(&self, stem: &Path) -> Result<PlotFiles> {
        ensure!(!self.series.is_empty(), "bar chart '{}' has no series", self.title);
        for s in &self.series {
            s.check()?;
        }
        let half = self.slot / 2.0;
        let (x_lo, x_hi) =
            min_max(self.series.iter().flat_map(|s| s.x.iter().copied())).context("no finite x")?;
        let (y_lo, y_hi) =
            min_max(self.series.iter().flat_map(|s| s.y.iter().copied())).context("no finite y")?;
        let y_range = y_lo.min(0.0)..(y_hi.max(0.0) * 1.08).max(f64::MIN_POSITIVE);
        let x_range = x_lo - half - 0.5..x_hi + half + 0.5;
        let files = PlotFiles::at(stem);
        create_parent(stem)?;
        register_fonts()?;
        render(BitMapBackend::new(&files.png, self.size), &files.png, |root| {
            self.draw_on(root, &x_range, &y_range)
        })?;
        render(SVGBackend::new(&files.svg, self.size), &files.svg, |root| {
            self.draw_on(root, &x_range, &y_range)
        })?;
        write_csv(&mut series_frame(&self.series)?, &files.csv)?;
        Ok(files)
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
        x_range: &std::ops::Range<f64>,
        y_range: &std::ops::Range<f64>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, (FONT, 22))
            .margin(12)
            .x_label_area_size(48)
            .y_label_area_size(80)
            .build_cartesian_2d(x_range.clone(), y_range.clone())?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_label_formatter(&axis_number)
            .y_label_formatter(&axis_number)
            .x_desc(self.x_label.as_str())
            .y_desc(self.y_label.as_str())
            .label_style((FONT, 15))
            .axis_desc_style((FONT, 17))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()?;
        let n = self.series.len() as f64;
        let width = self.slot / n;
        for (index, series) in self.series.iter().enumerate() {
            let color = series_color(index);
            let offset = -self.slot / 2.0 + index as f64 * width;
            let bars = series.x.iter().zip(&series.y).map(move |(&x, &y)| {
                Rectangle::new([(x + offset, 0.0), (x + offset + width, y)], color.mix(0.85).filled())
            });
            chart
                .draw_series(bars)?
                .label(series.name.as_str())
                .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 18, y + 6)], color.filled()));
        }
        chart
            .configure_series_labels()
            .position(self.legend.position())
            .label_font((FONT, 15))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        Ok(())
    }
}

/// A sample drawn as a grid of cells, one per token, coloured by the reverse step at which
/// the token was revealed (1 = first step), with the token's text drawn in its cell.
#[derive(Clone, Debug, PartialEq)]
pub struct TokenGrid {
    pub title: String,
    /// One short label per token (a character for text8; write spaces as `␣` or `·`).
    pub tokens: Vec<String>,
    /// The step (1..=steps) at which each token was revealed.
    pub reveal_step: Vec<usize>,
    pub steps: usize,
    /// Cells per row.
    pub columns: usize,
    /// Cell side in pixels.
    pub cell: u32,
}

impl TokenGrid {
    pub fn new(
        title: &str,
        tokens: Vec<String>,
        reveal_step: Vec<usize>,
        steps: usize,
        columns: usize,
    ) -> Self {
        Self { title: title.into(), tokens, reveal_step, steps, columns, cell: 22 }
    }

    /// Pixel size of the picture: the grid plus a title band and a colour bar.
    pub fn size(&self) -> (u32, u32) {
        let rows = self.tokens.len().div_ceil(self.columns.max(1)) as u32;
        let width = (self.columns as u32 * self.cell + 2 * Self::MARGIN).max(420);
        (width, rows * self.cell + Self::TITLE + Self::COLORBAR + 2 * Self::MARGIN)
    }

    const MARGIN: u32 = 16;
    const TITLE: u32 = 34;
    const COLORBAR: u32 = 58;

    /// Write `<stem>.png`, `<stem>.svg` and `<stem>.csv` (columns position, row, column, token, step).
    pub fn write(&self, stem: &Path) -> Result<PlotFiles> {
        ensure!(!self.tokens.is_empty(), "token grid '{}' is empty", self.title);
        ensure!(self.columns > 0 && self.steps > 0, "token grid needs positive columns and steps");
        ensure!(
            self.tokens.len() == self.reveal_step.len(),
            "token grid: {} tokens but {} reveal steps",
            self.tokens.len(),
            self.reveal_step.len()
        );
        if let Some(bad) = self.reveal_step.iter().find(|&&s| s == 0 || s > self.steps) {
            bail!("token grid: reveal step {bad} is outside 1..={}", self.steps);
        }
        let files = PlotFiles::at(stem);
        create_parent(stem)?;
        register_fonts()?;
        let size = self.size();
        render(BitMapBackend::new(&files.png, size), &files.png, |root| self.draw_on(root))?;
        render(SVGBackend::new(&files.svg, size), &files.svg, |root| self.draw_on(root))?;
        let n = self.tokens.len();
        let mut df = df!(
            "position" => (0..n as u64).collect::<Vec<_>>(),
            "row" => (0..n).map(|i| (i / self.columns) as u64).collect::<Vec<_>>(),
            "column" => (0..n).map(|i| (i % self.columns) as u64).collect::<Vec<_>>(),
            "token" => self.tokens.clone(),
            "step" => self.reveal_step.iter().map(|&s| s as u64).collect::<Vec<_>>(),
        )?;
        write_csv(&mut df, &files.csv)?;
        Ok(files)
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (width, _) = self.size();
        let (m, cell) = (Self::MARGIN as i32, self.cell as i32);
        let centre = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(
            self.title.as_str(),
            (width as i32 / 2, m + Self::TITLE as i32 / 2 - 4),
            TextStyle::from((FONT, 20).into_font()).color(&BLACK).pos(centre),
        ))?;
        let top = m + Self::TITLE as i32;
        let font_size = (self.cell as f64 * 0.62).max(8.0);
        for (i, (token, &step)) in self.tokens.iter().zip(&self.reveal_step).enumerate() {
            let (r, c) = ((i / self.columns) as i32, (i % self.columns) as i32);
            let (x0, y0) = (m + c * cell, top + r * cell);
            let fill = step_color(step, self.steps);
            root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], fill.filled()))?;
            root.draw(&Rectangle::new([(x0, y0), (x0 + cell, y0 + cell)], WHITE.stroke_width(1)))?;
            let ink = if luminance(fill) < 0.5 { WHITE } else { BLACK };
            let style = TextStyle::from((FONT, font_size).into_font()).color(&ink).pos(centre);
            root.draw(&Text::new(token.as_str(), (x0 + cell / 2, y0 + cell / 2), style))?;
        }
        // Colour bar: reveal step 1 … steps.
        let rows = self.tokens.len().div_ceil(self.columns) as i32;
        let bar_top = top + rows * cell + 12;
        let (bar_left, bar_right) = (m + 90, width as i32 - m - 40);
        let label = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
        root.draw(&Text::new("reveal step", (m, bar_top + 2), label.clone()))?;
        let span = (bar_right - bar_left).max(1);
        for px in 0..span {
            let step = 1 + (px as f64 / span as f64 * self.steps as f64) as usize;
            let x = bar_left + px;
            root.draw(&Rectangle::new(
                [(x, bar_top), (x + 1, bar_top + 14)],
                step_color(step.min(self.steps), self.steps).filled(),
            ))?;
        }
        let tick = label.pos(Pos::new(HPos::Center, VPos::Top));
        for step in [1, self.steps.div_ceil(2), self.steps] {
            let x = bar_left + ((step - 1) as f64 / (self.steps.max(2) - 1) as f64 * span as f64) as i32;
            root.draw(&Text::new(step.to_string(), (x, bar_top + 20), tick.clone()))?;
        }
        Ok(())
    }
}

/// Viridis-like colour for `step` of `steps` (dark purple early, yellow late).
pub fn step_color(step: usize, steps: usize) -> RGBColor {
    const STOPS: [(f64, [f64; 3]); 5] = [
        (0.0, [68.0, 1.0, 84.0]),
        (0.25, [59.0, 82.0, 139.0]),
        (0.5, [33.0, 145.0, 140.0]),
        (0.75, [94.0, 201.0, 98.0]),
        (1.0, [253.0, 231.0, 37.0]),
    ];
    let f =
        if steps <= 1 { 1.0 } else { (step.saturating_sub(1)) as f64 / (steps - 1) as f64 }.clamp(0.0, 1.0);
    let k = STOPS.iter().rposition(|(at, _)| *at <= f).unwrap_or(0).min(STOPS.len() - 2);
    let ((a, ca), (b, cb)) = (STOPS[k], STOPS[k + 1]);
    let w = (f - a) / (b - a);
    let mix = |i: usize| (ca[i] + w * (cb[i] - ca[i])).round() as u8;
    RGBColor(mix(0), mix(1), mix(2))
}

fn luminance(c: RGBColor) -> f64 {
    (0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64) / 255.0
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

fn create_parent(stem: &Path) -> Result<()> {
    if let Some(parent) = stem.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    Ok(())
}

/// Draw on a fresh backend and flush it to `path`.
fn render<DB: DrawingBackend>(
    backend: DB,
    path: &Path,
    draw: impl FnOnce(&DrawingArea<DB, Shift>) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>,
) -> Result<()> {
    let root = backend.into_drawing_area();
    draw(&root).map_err(|e| anyhow!("drawing {}: {e}", path.display()))?;
    root.present().map_err(|e| anyhow!("writing {}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn last_fifth_improvement_reads_the_end_of_the_curve() {
        let s = Series::new("c", vec![50.0, 100.0, 150.0, 200.0, 250.0], vec![5.0, 4.0, 3.5, 3.2, 3.04]);
        // 80 % of 250 is 200: (3.2 − 3.04) / 3.2 = 5 %.
        assert!((s.last_fifth_improvement().unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(Series::new("one", vec![1.0], vec![2.0]).last_fifth_improvement(), None);
    }

    use super::*;

    fn png_size(path: &Path) -> (u32, u32) {
        let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
        let reader = decoder.read_info().unwrap();
        let info = reader.info();
        (info.width, info.height)
    }

    fn assert_files(files: &PlotFiles, size: (u32, u32)) {
        for path in [&files.png, &files.svg, &files.csv] {
            assert!(std::fs::metadata(path).unwrap().len() > 0, "{} is empty", path.display());
        }
        assert_eq!(png_size(&files.png), size);
        let svg = std::fs::read_to_string(&files.svg).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    }

    fn two_series() -> Vec<Series> {
        let x: Vec<f64> = (1..=20).map(|i| i as f64 / 20.0).collect();
        vec![
            Series::new("linear", x.clone(), x.iter().map(|t| 1.0 / t).collect()),
            Series::new("poly2", x.clone(), x.iter().map(|t| 2.0 / t).collect())
                .with_err(x.iter().map(|t| 0.1 * t).collect()),
        ]
    }

    #[test]
    fn line_plot_writes_png_svg_and_round_tripping_csv() {
        let dir = tempfile::tempdir().unwrap();
        let mut plot = LinePlot::new("weights", "t", "|α'/(1−α)|", two_series());
        plot.log_y = true;
        plot.size = (640, 400);
        let files = plot.write(&dir.path().join("sub/weights")).unwrap();
        assert_eq!(files.png, dir.path().join("sub/weights.png"));
        assert_files(&files, (640, 400));
        let svg = std::fs::read_to_string(&files.svg).unwrap();
        assert!(svg.contains("linear") && svg.contains("poly2"), "legend labels missing from the svg");
        let back = frame_series(&crate::table::read_csv(&files.csv).unwrap()).unwrap();
        assert_eq!(back, plot.series);
    }

    #[test]
    fn linear_scale_line_plot_and_bad_inputs() {
        let dir = tempfile::tempdir().unwrap();
        let plot = LinePlot::new("alpha", "t", "α", two_series());
        assert_files(&plot.write(&dir.path().join("alpha")).unwrap(), (800, 560));
        let mut log =
            LinePlot::new("bad", "t", "y", vec![Series::new("zero", vec![0.0, 1.0], vec![0.0, 1.0])]);
        log.log_y = true;
        assert!(log.write(&dir.path().join("bad")).unwrap_err().to_string().contains("positive"));
        let ragged = LinePlot::new("ragged", "t", "y", vec![Series::new("r", vec![0.0, 1.0], vec![1.0])]);
        assert!(ragged.write(&dir.path().join("ragged")).is_err());
    }

    #[test]
    fn bar_chart_writes_all_files() {
        let dir = tempfile::tempdir().unwrap();
        let x: Vec<f64> = (1..=16).map(f64::from).collect();
        let series = vec![
            Series::new("linear", x.clone(), vec![4.0; 16]),
            Series::new("cosine", x.clone(), x.iter().map(|s| s / 2.0).collect()),
        ];
        let chart = BarChart::new("revealed", "step", "tokens", series);
        let files = chart.write(&dir.path().join("bars")).unwrap();
        assert_files(&files, (900, 520));
        let back = frame_series(&crate::table::read_csv(&files.csv).unwrap()).unwrap();
        assert_eq!(back, chart.series);
    }

    #[test]
    fn token_grid_writes_all_files() {
        let dir = tempfile::tempdir().unwrap();
        let text = "the quick brown fox";
        let tokens: Vec<String> =
            text.chars().map(|c| if c == ' ' { "·".into() } else { c.to_string() }).collect();
        let steps: Vec<usize> = (0..tokens.len()).map(|i| 1 + (i * 7) % 10).collect();
        let grid = TokenGrid::new("unmasking", tokens.clone(), steps.clone(), 10, 8);
        let files = grid.write(&dir.path().join("grid")).unwrap();
        assert_files(&files, grid.size());
        let df = crate::table::read_csv(&files.csv).unwrap();
        let got_tokens: Vec<String> =
            df.column("token").unwrap().str().unwrap().iter().map(|t| t.unwrap().to_string()).collect();
        assert_eq!(got_tokens, tokens);
        let got_steps: Vec<i64> =
            df.column("step").unwrap().i64().unwrap().iter().map(Option::unwrap).collect();
        assert_eq!(got_steps, steps.iter().map(|&s| s as i64).collect::<Vec<_>>());
        let bad = TokenGrid::new("bad", tokens, vec![11; steps.len()], 10, 8);
        assert!(bad.write(&dir.path().join("bad")).unwrap_err().to_string().contains("outside"));
    }

    #[test]
    fn axis_numbers_are_short() {
        let values = [1e-6, 9.999999e-5, 0.001, 0.0099999, 0.5, 1.0, 15000.0, 2.5e6, 0.0, -0.25];
        let labels: Vec<String> = values.iter().map(axis_number).collect();
        assert_eq!(labels, ["1e-6", "1e-4", "0.001", "0.01", "0.5", "1", "15000", "2.5e6", "0", "-0.25"]);
    }

    #[test]
    fn step_colors_run_from_dark_to_light() {
        assert_eq!(step_color(1, 100), RGBColor(68, 1, 84));
        assert_eq!(step_color(100, 100), RGBColor(253, 231, 37));
        let lum: Vec<f64> = (1..=100).map(|s| luminance(step_color(s, 100))).collect();
        assert!(lum.windows(2).all(|w| w[1] >= w[0] - 1e-9), "luminance is not monotone");
    }
}

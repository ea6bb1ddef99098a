//! Line plots of named series, optionally on a log-scale y axis and with error bars (Figs. 1, 4).

use super::{
    Chart, Legend, PlotFiles, Series, cartesian, check_series, draw_axes, draw_legend, min_max, series_color,
    series_frame, write_chart,
};
use anyhow::{Context, Result, bail};
use plotters::coord::Shift;
use plotters::coord::ranged1d::{AsRangedCoord, Ranged, ValueFormatter};
use plotters::prelude::*;
use polars::prelude::DataFrame;
use std::ops::Range;
use std::path::Path;

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
        write_chart(self, stem)
    }

    /// Axis ranges covering every point and error bar, with a little padding.
    fn ranges(&self) -> Result<(Range<f64>, Range<f64>)> {
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
        x_range: &Range<f64>,
        y_spec: Y,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>>
    where
        DB: DrawingBackend,
        Y: AsRangedCoord<Value = f64>,
        Y::CoordDescType: Ranged<ValueType = f64> + ValueFormatter<f64>,
    {
        root.fill(&WHITE)?;
        let mut chart = cartesian(root, &self.title, x_range.clone(), y_spec)?;
        draw_axes(&mut chart, &self.x_label, &self.y_label, true)?;
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
        draw_legend(&mut chart, self.legend)
    }
}

impl Chart for LinePlot {
    type Layout = (Range<f64>, Range<f64>);

    fn layout(&self) -> Result<Self::Layout> {
        check_series("plot", &self.title, &self.series)?;
        self.ranges()
    }

    fn pixels(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(
        &self,
        (x_range, y_range): &Self::Layout,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        if self.log_y {
            self.draw_on(root, x_range, y_range.clone().log_scale())
        } else {
            self.draw_on(root, x_range, y_range.clone())
        }
    }

    fn frame(&self) -> Result<DataFrame> {
        series_frame(&self.series)
    }
}

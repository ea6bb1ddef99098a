//! Grouped bar charts: at each x, one bar per series side by side (Fig. 2 right).

use super::{
    Chart, Legend, PlotFiles, Series, cartesian, check_series, draw_axes, draw_legend, min_max, series_color,
    series_frame, write_chart,
};
use anyhow::{Context, Result};
use plotters::coord::Shift;
use plotters::prelude::*;
use polars::prelude::DataFrame;
use std::ops::Range;
use std::path::Path;

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
        write_chart(self, stem)
    }
}

impl Chart for BarChart {
    type Layout = (Range<f64>, Range<f64>);

    fn layout(&self) -> Result<Self::Layout> {
        check_series("bar chart", &self.title, &self.series)?;
        let half = self.slot / 2.0;
        let (x_lo, x_hi) =
            min_max(self.series.iter().flat_map(|s| s.x.iter().copied())).context("no finite x")?;
        let (y_lo, y_hi) =
            min_max(self.series.iter().flat_map(|s| s.y.iter().copied())).context("no finite y")?;
        let y_range = y_lo.min(0.0)..(y_hi.max(0.0) * 1.08).max(f64::MIN_POSITIVE);
        let x_range = x_lo - half - 0.5..x_hi + half + 0.5;
        Ok((x_range, y_range))
    }

    fn pixels(&self) -> (u32, u32) {
        self.size
    }

    fn draw<DB: DrawingBackend>(
        &self,
        (x_range, y_range): &Self::Layout,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let mut chart = cartesian(root, &self.title, x_range.clone(), y_range.clone())?;
        draw_axes(&mut chart, &self.x_label, &self.y_label, false)?;
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
        draw_legend(&mut chart, self.legend)
    }

    fn frame(&self) -> Result<DataFrame> {
        series_frame(&self.series)
    }
}

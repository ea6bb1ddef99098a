//! The token-grid "unmasking" picture (Fig. 3): one cell per token, coloured by its reveal step.

use super::{Chart, FONT, PlotFiles, write_chart};
use anyhow::{Result, bail, ensure};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use polars::prelude::*;
use std::path::Path;

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
        write_chart(self, stem)
    }
}

impl Chart for TokenGrid {
    type Layout = ();

    fn layout(&self) -> Result<()> {
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
        Ok(())
    }

    fn pixels(&self) -> (u32, u32) {
        self.size()
    }

    fn draw<DB: DrawingBackend>(
        &self,
        _: &(),
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

    fn frame(&self) -> Result<DataFrame> {
        let n = self.tokens.len();
        Ok(df!(
            "position" => (0..n as u64).collect::<Vec<_>>(),
            "row" => (0..n).map(|i| (i / self.columns) as u64).collect::<Vec<_>>(),
            "column" => (0..n).map(|i| (i % self.columns) as u64).collect::<Vec<_>>(),
            "token" => self.tokens.clone(),
            "step" => self.reveal_step.iter().map(|&s| s as u64).collect::<Vec<_>>(),
        )?)
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

pub(super) fn luminance(c: RGBColor) -> f64 {
    (0.299 * c.0 as f64 + 0.587 * c.1 as f64 + 0.114 * c.2 as f64) / 255.0
}

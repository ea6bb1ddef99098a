//! Image samples as pictures (spec §7.2 token layout, §10.6, Figs. 6 and 9): images held as
//! sub-pixel tokens `[B, H·W·C]` in `[H, W, C]` order become a lossless 8-bit PNG grid (grey or
//! RGB, so the tokens can be read back exactly from the file), and several grids become one
//! labelled overview picture with a panel per sampler setting.

use crate::plot::{FONT, create_parent, register_fonts, render};
use anyhow::{Context, Result, ensure};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::path::Path;

/// Images of one shape, laid out `columns` per row with 1-pixel black gutters.
#[derive(Clone, Debug, PartialEq)]
pub struct ImageGrid {
    pub height: usize,
    pub width: usize,
    /// 1 (grey) or 3 (RGB).
    pub channels: usize,
    pub columns: usize,
    /// Every image's sub-pixels in `[H, W, C]` order, image after image.
    pub pixels: Vec<u8>,
}

impl ImageGrid {
    /// A grid of the images in `tokens` (`count · H·W·C` values in 0..=255), as close to square
    /// as possible.
    pub fn new(tokens: &[i64], height: usize, width: usize, channels: usize) -> Result<Self> {
        ensure!(channels == 1 || channels == 3, "images must have 1 or 3 channels, got {channels}");
        let per_image = height * width * channels;
        ensure!(
            per_image > 0 && !tokens.is_empty() && tokens.len().is_multiple_of(per_image),
            "{} tokens are not a whole number of {height}x{width}x{channels} images",
            tokens.len()
        );
        let pixels = tokens
            .iter()
            .map(|&t| u8::try_from(t).with_context(|| format!("token {t} is not a pixel value 0..=255")))
            .collect::<Result<Vec<u8>>>()?;
        let count = tokens.len() / per_image;
        let columns = (count as f64).sqrt().ceil() as usize;
        Ok(Self { height, width, channels, columns, pixels })
    }

    pub fn count(&self) -> usize {
        self.pixels.len() / (self.height * self.width * self.channels)
    }

    /// Pixel size (width, height) of the grid, gutters included.
    pub fn size(&self) -> (usize, usize) {
        let rows = self.count().div_ceil(self.columns);
        (self.columns * (self.width + 1) + 1, rows * (self.height + 1) + 1)
    }

    /// The grid's sub-pixels, row-major with `channels` values per pixel (gutters 0).
    pub fn canvas(&self) -> Vec<u8> {
        let (h, w, c) = (self.height, self.width, self.channels);
        let (gw, gh) = self.size();
        let mut canvas = vec![0u8; gw * gh * c];
        for (i, image) in self.pixels.chunks_exact(h * w * c).enumerate() {
            let (r, q) = (i / self.columns, i % self.columns);
            for y in 0..h {
                let src = &image[y * w * c..(y + 1) * w * c];
                let (gy, gx) = (1 + r * (h + 1) + y, 1 + q * (w + 1));
                canvas[(gy * gw + gx) * c..(gy * gw + gx + w) * c].copy_from_slice(src);
            }
        }
        canvas
    }

    /// Write the grid as an 8-bit grey or RGB PNG.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        create_parent(path)?;
        let (gw, gh) = self.size();
        let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
        let mut encoder = png::Encoder::new(std::io::BufWriter::new(file), gw as u32, gh as u32);
        encoder.set_color(if self.channels == 1 { png::ColorType::Grayscale } else { png::ColorType::Rgb });
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().with_context(|| format!("writing {}", path.display()))?;
        writer.write_image_data(&self.canvas()).with_context(|| format!("writing {}", path.display()))?;
        writer.finish().with_context(|| format!("writing {}", path.display()))
    }

    /// The colour of grid pixel (x, y).
    fn color(&self, canvas: &[u8], x: usize, y: usize) -> RGBColor {
        let (gw, _) = self.size();
        let at = (y * gw + x) * self.channels;
        match self.channels {
            1 => RGBColor(canvas[at], canvas[at], canvas[at]),
            _ => RGBColor(canvas[at], canvas[at + 1], canvas[at + 2]),
        }
    }
}

/// Labelled image grids side by side, `columns` panels per row, each pixel drawn as a
/// `zoom × zoom` square, under a title. A label may span several lines (`\n`).
#[derive(Clone, Debug, PartialEq)]
pub struct ImagePanels {
    pub title: String,
    pub panels: Vec<(String, ImageGrid)>,
    pub columns: usize,
    pub zoom: usize,
}

impl ImagePanels {
    const MARGIN: usize = 12;
    const TITLE: usize = 34;
    const LINE: usize = 17;

    pub fn new(title: &str, panels: Vec<(String, ImageGrid)>, columns: usize) -> Self {
        Self { title: title.into(), panels, columns, zoom: 2 }
    }

    /// Height of the label band above every grid (the longest label's lines).
    fn label_band(&self) -> usize {
        let lines = self.panels.iter().map(|(label, _)| label.lines().count()).max().unwrap_or(1);
        5 + Self::LINE * lines.max(1)
    }

    /// Size of one panel cell (the largest grid, zoomed, plus its label band).
    fn cell(&self) -> (usize, usize) {
        let (w, h) =
            self.panels.iter().map(|(_, g)| g.size()).fold((0, 0), |(w, h), (gw, gh)| (w.max(gw), h.max(gh)));
        (w * self.zoom + Self::MARGIN, h * self.zoom + self.label_band() + Self::MARGIN)
    }

    /// Pixel size (width, height) of the picture.
    pub fn size(&self) -> (usize, usize) {
        let (cw, ch) = self.cell();
        let rows = self.panels.len().div_ceil(self.columns.max(1));
        ((self.columns * cw + Self::MARGIN).max(480), rows * ch + Self::TITLE + Self::MARGIN)
    }

    /// Write the picture as PNG.
    pub fn write_png(&self, path: &Path) -> Result<()> {
        ensure!(!self.panels.is_empty(), "image panels '{}' are empty", self.title);
        ensure!(self.columns > 0 && self.zoom > 0, "image panels need positive columns and zoom");
        create_parent(path)?;
        register_fonts()?;
        let (w, h) = self.size();
        render(BitMapBackend::new(path, (w as u32, h as u32)), path, |root| self.draw_on(root))
    }

    fn draw_on<DB: DrawingBackend>(
        &self,
        root: &DrawingArea<DB, Shift>,
    ) -> Result<(), DrawingAreaErrorKind<DB::ErrorType>> {
        root.fill(&WHITE)?;
        let (width, _) = self.size();
        let centre = Pos::new(HPos::Center, VPos::Center);
        root.draw(&Text::new(
            self.title.as_str(),
            (width as i32 / 2, (Self::MARGIN + Self::TITLE / 2) as i32 - 4),
            TextStyle::from((FONT, 18).into_font()).color(&BLACK).pos(centre),
        ))?;
        let (cw, ch) = self.cell();
        let label = TextStyle::from((FONT, 14).into_font()).color(&BLACK);
        for (i, (name, grid)) in self.panels.iter().enumerate() {
            let (r, q) = (i / self.columns, i % self.columns);
            let (x0, y0) = (Self::MARGIN + q * cw, Self::TITLE + Self::MARGIN + r * ch);
            for (k, line) in name.lines().enumerate() {
                root.draw(&Text::new(line, (x0 as i32, (y0 + 2 + k * Self::LINE) as i32), label.clone()))?;
            }
            let top = y0 + self.label_band();
            let canvas = grid.canvas();
            let (gw, gh) = grid.size();
            for y in 0..gh {
                for x in 0..gw {
                    let color = grid.color(&canvas, x, y);
                    let (px, py) = ((x0 + x * self.zoom) as i32, (top + y * self.zoom) as i32);
                    let z = self.zoom as i32;
                    root.draw(&Rectangle::new([(px, py), (px + z, py + z)], color.filled()))?;
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_png(path: &Path) -> (png::OutputInfo, Vec<u8>) {
        let decoder = png::Decoder::new(std::fs::File::open(path).unwrap());
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).unwrap();
        buf.truncate(info.buffer_size());
        (info, buf)
    }

    #[test]
    fn grey_grid_round_trips_every_token() {
        // Five 2x3 grey images: a 3-column grid of 2 rows, 1-pixel gutters.
        let tokens: Vec<i64> = (0..30).map(|i| (i * 8) % 256).collect();
        let grid = ImageGrid::new(&tokens, 2, 3, 1).unwrap();
        assert_eq!((grid.count(), grid.columns, grid.size()), (5, 3, (13, 7)));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("grid.png");
        grid.write_png(&path).unwrap();
        let (info, data) = read_png(&path);
        assert_eq!((info.width, info.height, info.color_type), (13, 7, png::ColorType::Grayscale));
        // Image 4 (row 1, column 1), pixel (y 1, x 2) sits at grid (x 1 + 4 + 2, y 1 + 3 + 1).
        assert_eq!(data[5 * 13 + 7] as i64, tokens[4 * 6 + 3 + 2]);
        assert_eq!(data[0], 0, "gutters are black");
        // Every image reads back exactly.
        for i in 0..5 {
            let (r, q) = (i / 3, i % 3);
            for y in 0..2 {
                for x in 0..3 {
                    let at = (1 + r * 3 + y) * 13 + 1 + q * 4 + x;
                    assert_eq!(data[at] as i64, tokens[i * 6 + y * 3 + x]);
                }
            }
        }
    }

    #[test]
    fn rgb_grid_keeps_channel_order_and_bad_tokens_fail() {
        let tokens: Vec<i64> = vec![10, 20, 30, 40, 50, 60];
        let grid = ImageGrid::new(&tokens, 1, 2, 3).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rgb.png");
        grid.write_png(&path).unwrap();
        let (info, data) = read_png(&path);
        assert_eq!((info.width, info.height, info.color_type), (4, 3, png::ColorType::Rgb));
        assert_eq!(&data[(4 + 1) * 3..(4 + 3) * 3], &[10, 20, 30, 40, 50, 60]);
        assert!(ImageGrid::new(&[256, 0], 1, 2, 1).unwrap_err().to_string().contains("256"));
        assert!(ImageGrid::new(&[1, 2, 3], 1, 2, 1).is_err());
        assert!(ImageGrid::new(&[1, 2], 1, 1, 2).is_err());
    }

    #[test]
    fn panels_draw_every_grid() {
        let a = ImageGrid::new(&[255; 8], 2, 2, 1).unwrap();
        let b = ImageGrid::new(&[0; 4], 2, 2, 1).unwrap();
        let panels =
            ImagePanels::new("two settings", vec![("white\ntwo lines".into(), a), ("black".into(), b)], 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("panels.png");
        panels.write_png(&path).unwrap();
        let (info, data) = read_png(&path);
        let (w, h) = panels.size();
        assert_eq!((info.width as usize, info.height as usize), (w, h));
        // The first panel's first image pixel (zoom 2) is white, the second panel's is black.
        let channels = if info.color_type == png::ColorType::Rgba { 4 } else { 3 };
        let pixel = |x: usize, y: usize| data[(y * w + x) * channels];
        let top = ImagePanels::TITLE + ImagePanels::MARGIN + panels.label_band();
        let (cw, _) = panels.cell();
        assert_eq!(panels.label_band(), 5 + 2 * ImagePanels::LINE);
        assert_eq!(pixel(ImagePanels::MARGIN + 2, top + 2), 255);
        assert_eq!(pixel(ImagePanels::MARGIN + cw + 2, top + 2), 0);
        assert!(ImagePanels::new("empty", vec![], 2).write_png(&path).is_err());
    }
}

//! Image decoding into sub-pixel tokens (spec §9.4, §12 item 25): every 8-bit channel value is a
//! token in 0..=255 (mask 256), laid out `[H, W, C]` and flattened, as the reference does.
//! PNG and JPEG are decoded with clear errors for bad magic numbers, truncated data and
//! unexpected sizes; ImageNet stand-ins are box-downsampled.

use anyhow::{Context, Result, anyhow, bail, ensure};

/// An 8-bit image in `[H, W, C]` order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Image {
    pub height: u32,
    pub width: u32,
    pub channels: u32,
    pub data: Vec<u8>,
}

impl Image {
    /// `[H, W, C]`.
    pub fn shape(&self) -> [u32; 3] {
        [self.height, self.width, self.channels]
    }
    /// Fails unless the image has exactly the given `[H, W, C]`.
    pub fn expect_shape(&self, shape: [u32; 3], what: &str) -> Result<()> {
        ensure!(self.shape() == shape, "{what}: image is {:?} (H, W, C), expected {shape:?}", self.shape());
        Ok(())
    }
}

const PNG_MAGIC: &[u8] = b"\x89PNG\r\n\x1a\n";
const JPEG_MAGIC: &[u8] = &[0xff, 0xd8, 0xff];

/// Decodes PNG or JPEG, picked by the magic number.
pub fn decode_image(bytes: &[u8], what: &str) -> Result<Image> {
    if bytes.starts_with(PNG_MAGIC) {
        decode_png(bytes, what)
    } else if bytes.starts_with(JPEG_MAGIC) {
        decode_jpeg(bytes, what)
    } else {
        bail!(
            "{what}: unknown image format (magic {:02x?}; expected PNG or JPEG)",
            &bytes[..bytes.len().min(8)]
        )
    }
}

/// Decodes an 8-bit PNG (grey, grey+alpha, RGB, RGBA or palette, expanded to 8 bits per channel).
pub fn decode_png(bytes: &[u8], what: &str) -> Result<Image> {
    ensure!(bytes.starts_with(PNG_MAGIC), "{what}: bad PNG magic {:02x?}", &bytes[..bytes.len().min(8)]);
    let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().map_err(|e| anyhow!("{what}: bad PNG header: {e}"))?;
    let mut buf = vec![0u8; reader.output_buffer_size()];
    let info =
        reader.next_frame(&mut buf).map_err(|e| anyhow!("{what}: truncated or corrupt PNG data: {e}"))?;
    ensure!(info.bit_depth == png::BitDepth::Eight, "{what}: {:?}-bit PNG, expected 8-bit", info.bit_depth);
    let channels = info.color_type.samples() as u32;
    buf.truncate(info.buffer_size());
    ensure!(info.line_size == info.width as usize * channels as usize, "{what}: unexpected PNG row padding");
    Ok(Image { height: info.height, width: info.width, channels, data: buf })
}

/// Decodes a baseline or progressive JPEG (grey or RGB; CMYK is rejected).
pub fn decode_jpeg(bytes: &[u8], what: &str) -> Result<Image> {
    ensure!(bytes.starts_with(JPEG_MAGIC), "{what}: bad JPEG magic {:02x?}", &bytes[..bytes.len().min(3)]);
    let mut decoder = jpeg_decoder::Decoder::new(std::io::Cursor::new(bytes));
    let data = decoder.decode().map_err(|e| anyhow!("{what}: truncated or corrupt JPEG: {e}"))?;
    let info = decoder.info().with_context(|| format!("{what}: JPEG without header info"))?;
    let channels = match info.pixel_format {
        jpeg_decoder::PixelFormat::L8 => 1,
        jpeg_decoder::PixelFormat::RGB24 => 3,
        other => bail!("{what}: unsupported JPEG pixel format {other:?}"),
    };
    let (height, width) = (info.height as u32, info.width as u32);
    ensure!(
        data.len() == (height * width * channels) as usize,
        "{what}: JPEG decoded to {} bytes, expected {height}x{width}x{channels}",
        data.len()
    );
    Ok(Image { height, width, channels, data })
}

/// Converts to RGB: grey is replicated, alpha is dropped.
pub fn to_rgb(img: Image) -> Image {
    match img.channels {
        3 => img,
        1 => Image { channels: 3, data: img.data.iter().flat_map(|&v| [v, v, v]).collect(), ..img },
        2 => Image {
            channels: 3,
            data: img.data.chunks_exact(2).flat_map(|p| [p[0], p[0], p[0]]).collect(),
            ..img
        },
        _ => Image {
            channels: 3,
            data: img.data.chunks_exact(4).flat_map(|p| [p[0], p[1], p[2]]).collect(),
            ..img
        },
    }
}

/// Converts to one grey channel; colour images are rejected rather than silently mixed.
pub fn to_grey(img: Image, what: &str) -> Result<Image> {
    match img.channels {
        1 => Ok(img),
        2 => Ok(Image { channels: 1, data: img.data.chunks_exact(2).map(|p| p[0]).collect(), ..img }),
        c => bail!("{what}: expected a greyscale image, got {c} channels"),
    }
}

/// Box filter downsampling by an integer `factor`: each output value is the mean of a
/// `factor × factor` block, rounded half up (`(sum + n/2) / n`).
pub fn box_downsample(img: &Image, factor: u32) -> Result<Image> {
    ensure!(factor >= 1, "downsampling factor must be at least 1");
    ensure!(
        img.height.is_multiple_of(factor) && img.width.is_multiple_of(factor),
        "image of {}x{} is not divisible by the factor {factor}",
        img.height,
        img.width
    );
    let (h, w, c) = ((img.height / factor) as usize, (img.width / factor) as usize, img.channels as usize);
    let (f, src_w) = (factor as usize, img.width as usize);
    let n = (f * f) as u32;
    let mut out = vec![0u8; h * w * c];
    for y in 0..h {
        for x in 0..w {
            for ch in 0..c {
                let mut sum = 0u32;
                for dy in 0..f {
                    let row = (y * f + dy) * src_w;
                    for dx in 0..f {
                        sum += img.data[(row + x * f + dx) * c + ch] as u32;
                    }
                }
                out[(y * w + x) * c + ch] = ((sum + n / 2) / n) as u8;
            }
        }
    }
    Ok(Image { height: h as u32, width: w as u32, channels: img.channels, data: out })
}

/// Centre-crops the largest square whose side is a multiple of `side`, then box-downsamples it
/// to `side × side` (for a 512×512 image and side 64: a plain ×8 box filter).
pub fn center_crop_box(img: &Image, side: u32) -> Result<Image> {
    let crop = img.height.min(img.width) / side * side;
    ensure!(crop >= side, "image of {}x{} is smaller than {side}x{side}", img.height, img.width);
    let (top, left) = ((img.height - crop) / 2, (img.width - crop) / 2);
    let c = img.channels as usize;
    let mut data = Vec::with_capacity((crop * crop) as usize * c);
    for y in top..top + crop {
        let row = (y * img.width + left) as usize * c;
        data.extend_from_slice(&img.data[row..row + crop as usize * c]);
    }
    let square = Image { height: crop, width: crop, channels: img.channels, data };
    box_downsample(&square, crop / side)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn encode_png(w: u32, h: u32, color: png::ColorType, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut enc = png::Encoder::new(&mut out, w, h);
            enc.set_color(color);
            enc.set_depth(png::BitDepth::Eight);
            let mut writer = enc.write_header().unwrap();
            writer.write_image_data(data).unwrap();
        }
        out
    }

    #[test]
    fn png_round_trip_in_hwc_order() {
        let (w, h) = (3u32, 2u32);
        let px: Vec<u8> = (0..(w * h * 3) as u8).map(|i| i * 7).collect();
        let img = decode_image(&encode_png(w, h, png::ColorType::Rgb, &px), "t.png").unwrap();
        assert_eq!(img.shape(), [2, 3, 3]);
        assert_eq!(img.data, px, "row-major, channels last");
        let grey = decode_png(&encode_png(2, 2, png::ColorType::Grayscale, &[1, 2, 3, 4]), "g").unwrap();
        assert_eq!((grey.channels, to_rgb(grey.clone()).data[..6].to_vec()), (1, vec![1, 1, 1, 2, 2, 2]));
        assert!(to_grey(img.clone(), "c").is_err());
        assert!(
            img.expect_shape([32, 32, 3], "t.png").unwrap_err().to_string().contains("expected [32, 32, 3]")
        );
    }

    #[test]
    fn png_and_jpeg_errors_are_clear() {
        let good = encode_png(4, 4, png::ColorType::Rgb, &[9; 48]);
        let truncated = &good[..good.len() - 20];
        let err = decode_image(truncated, "cifar.png").unwrap_err().to_string();
        assert!(err.contains("cifar.png") && err.contains("PNG"), "{err}");
        let err = decode_image(b"GIF89a....", "x.gif").unwrap_err().to_string();
        assert!(err.contains("unknown image format"), "{err}");
        let err = decode_jpeg(&[0xff, 0xd8, 0xff, 0xe0, 0, 16], "x.jpg").unwrap_err().to_string();
        assert!(err.contains("x.jpg") && err.contains("JPEG"), "{err}");
    }

    #[test]
    fn box_downsample_averages_blocks() {
        // 4x4 grey image, factor 2: block means of (0,1,4,5), (2,3,6,7), ...
        let img = Image { height: 4, width: 4, channels: 1, data: (0..16).collect() };
        let small = box_downsample(&img, 2).unwrap();
        // (0+1+4+5)/4 = 2.5 → 3 (half up); (2+3+6+7)/4 = 4.5 → 5; (8+9+12+13)/4 = 10.5 → 11; 12.5 → 13.
        assert_eq!(small.data, [3, 5, 11, 13]);
        let rgb = Image {
            height: 2,
            width: 2,
            channels: 3,
            data: vec![10, 20, 30, 10, 20, 30, 10, 20, 30, 14, 24, 34],
        };
        assert_eq!(box_downsample(&rgb, 2).unwrap().data, [11, 21, 31]);
        assert!(box_downsample(&img, 3).is_err());
    }

    #[test]
    fn center_crop_then_box() {
        // 4 rows x 6 columns, side 2: crop the central 4x4 (columns 1..5), then 2x2 means.
        let img = Image { height: 4, width: 6, channels: 1, data: (0..24).collect() };
        let out = center_crop_box(&img, 2).unwrap();
        // Block (rows 0-1, cols 1-2): 1, 2, 7, 8 → 4.5 → 5.
        assert_eq!(out.data, [5, 7, 17, 19]);
        assert_eq!(center_crop_box(&img, 4).unwrap().shape(), [4, 4, 1]);
        assert!(center_crop_box(&img, 5).is_err());
    }
}

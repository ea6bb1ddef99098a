//! IDX files (LeCun's MNIST format, used by Fashion-MNIST, spec §9.4 stand-in): a big-endian
//! magic `0x0000 TT DD` (TT = element type, 0x08 = u8; DD = number of dimensions), DD big-endian
//! u32 sizes, then the elements. Errors name the file and say what is wrong: bad magic,
//! truncation, trailing bytes, unexpected sizes.

use anyhow::{Context, Result, bail, ensure};

/// A decoded u8 IDX array.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<u32>,
    pub data: Vec<u8>,
}

/// Parses an IDX byte buffer holding u8 elements; `what` names the file in errors.
pub fn parse_idx(bytes: &[u8], what: &str) -> Result<IdxArray> {
    ensure!(bytes.len() >= 4, "{what}: truncated idx file ({} bytes, no magic number)", bytes.len());
    let magic = u32::from_be_bytes(bytes[0..4].try_into().unwrap());
    let (zero, dtype, ndim) = (magic >> 16, (magic >> 8) & 0xff, (magic & 0xff) as usize);
    if zero != 0 || ndim == 0 {
        bail!("{what}: bad idx magic number {magic:#010x} (expected 0x000008DD with DD dimensions)");
    }
    if dtype != 0x08 {
        bail!("{what}: idx element type {dtype:#04x} is not unsigned byte (0x08)");
    }
    let header = 4 + 4 * ndim;
    ensure!(bytes.len() >= header, "{what}: truncated idx header ({} bytes, need {header})", bytes.len());
    let dims: Vec<u32> =
        (0..ndim).map(|i| u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().unwrap())).collect();
    let count = dims
        .iter()
        .try_fold(1u64, |n, &d| n.checked_mul(d as u64))
        .with_context(|| format!("{what}: idx dims {dims:?} overflow: not an idx file"))?;
    let have = (bytes.len() - header) as u64;
    ensure!(have >= count, "{what}: truncated idx data: dims {dims:?} need {count} bytes, file has {have}");
    ensure!(have == count, "{what}: {} trailing bytes after idx data of dims {dims:?}", have - count);
    Ok(IdxArray { dims, data: bytes[header..].to_vec() })
}

/// Checks that an array has exactly the expected dimensions.
pub fn expect_dims(array: &IdxArray, dims: &[u32], what: &str) -> Result<()> {
    ensure!(array.dims == dims, "{what}: idx dims {:?}, expected {dims:?}", array.dims);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(dims: &[u32], data: &[u8]) -> Vec<u8> {
        let mut b = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            b.extend_from_slice(&d.to_be_bytes());
        }
        b.extend_from_slice(data);
        b
    }

    #[test]
    fn parses_images_and_labels() {
        let images = parse_idx(&idx(&[2, 2, 3], &(0..12).collect::<Vec<u8>>()), "x").unwrap();
        assert_eq!(images.dims, [2, 2, 3]);
        assert_eq!(images.data[11], 11);
        let labels = parse_idx(&idx(&[3], &[9, 0, 0]), "y").unwrap();
        assert_eq!(labels.data, [9, 0, 0]);
        expect_dims(&labels, &[3], "y").unwrap();
        assert!(expect_dims(&labels, &[4], "y").unwrap_err().to_string().contains("expected [4]"));
    }

    #[test]
    fn clear_errors_for_bad_files() {
        let err = |b: &[u8]| parse_idx(b, "train-images").unwrap_err().to_string();
        let mut bad_magic = idx(&[1], &[0]);
        bad_magic[0] = 0x1f; // e.g. a file that is still gzip-compressed
        assert!(err(&bad_magic).contains("bad idx magic"), "{}", err(&bad_magic));
        let mut float = idx(&[1], &[0]);
        float[2] = 0x0d;
        assert!(err(&float).contains("not unsigned byte"));
        assert!(err(&idx(&[2, 3], &[0; 5])).contains("truncated idx data"));
        assert!(err(&idx(&[2], &[0; 3])).contains("trailing bytes"));
        assert!(err(&[0, 0, 8, 3, 0, 0]).contains("truncated idx header"));
        assert!(err(&[0, 0]).contains("train-images"));
    }
}

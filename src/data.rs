//! MNIST: reads the original IDX files (gzipped or raw), verifies them against the folder's
//! `SHA256SUMS`, which must list each file read (digests of the decompressed files; `data/mnist`
//! ships one), scales pixels to [0, 1] and splits them as TensorFlow's `read_data_sets` does (the first
//! 5,000 training images are validation).

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

use crate::checksum::sha256_hex;

use crate::config::{DataConfig, IMAGE_PIXELS};
use crate::error::{Error, Result};

/// File stems of the four MNIST files.
pub const TRAIN_IMAGES: &str = "train-images-idx3-ubyte";
/// Training labels.
pub const TRAIN_LABELS: &str = "train-labels-idx1-ubyte";
/// Test images.
pub const TEST_IMAGES: &str = "t10k-images-idx3-ubyte";
/// Test labels.
pub const TEST_LABELS: &str = "t10k-labels-idx1-ubyte";

/// A set of images, row-major, with their labels. Pixels are kept as the file's bytes (0-255),
/// a quarter of the memory of f32, and scaled to [0, 1] as a batch is assembled.
#[derive(Debug, Clone)]
pub struct Images {
    /// `len * 784` pixel bytes, 0 background, 255 ink.
    pub bytes: Vec<u8>,
    /// One label (0-9) per image.
    pub labels: Vec<u8>,
}

impl Images {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// Pixel bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.bytes[i * IMAGE_PIXELS..(i + 1) * IMAGE_PIXELS]
    }

    /// All pixels, scaled to [0, 1].
    pub fn pixels(&self) -> Vec<f32> {
        self.bytes.iter().map(|&b| scale(b)).collect()
    }

    fn range(&self, start: usize, end: usize) -> Images {
        Images {
            bytes: self.bytes[start * IMAGE_PIXELS..end * IMAGE_PIXELS].to_vec(),
            labels: self.labels[start..end].to_vec(),
        }
    }
}

/// Images with their runs of blank pixels left out, for the images a run trains on.
///
/// Why: most of an MNIST digit's pixels are background, and unpacked the training images would
/// be the largest thing a training run holds (BENCHMARKS.md, Memory, has the sizes). A batch
/// decodes to the same `f32` values as scaling the bytes ([`scale`]).
///
/// Each image is a sequence of segments: a count of blank (0) pixels, a count of pixels that
/// follow as stored bytes, then those bytes (counts up to 255), until its 784 pixels are
/// covered.
#[derive(Debug, Clone)]
pub struct PackedImages {
    segments: Vec<u8>,
    /// Where each image's segments start.
    starts: Vec<usize>,
    /// Each image's label (class-conditional runs train on them).
    labels: Vec<u8>,
}

impl PackedImages {
    /// Packs `images`, keeping their labels.
    pub fn pack(images: &Images) -> PackedImages {
        let mut segments = Vec::new();
        let mut starts = Vec::with_capacity(images.len());
        for i in 0..images.len() {
            starts.push(segments.len());
            let image = images.image(i);
            let mut at = 0;
            while at < IMAGE_PIXELS {
                let blank = image[at..]
                    .iter()
                    .take(255)
                    .take_while(|&&b| b == 0)
                    .count();
                at += blank;
                let ink = image[at..]
                    .iter()
                    .take(255)
                    .take_while(|&&b| b != 0)
                    .count();
                segments.extend([blank as u8, ink as u8]);
                segments.extend_from_slice(&image[at..at + ink]);
                at += ink;
            }
        }
        segments.shrink_to_fit();
        PackedImages {
            segments,
            starts,
            labels: images.labels.clone(),
        }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.starts.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.starts.is_empty()
    }

    /// Bytes held.
    pub fn packed_bytes(&self) -> usize {
        self.segments.len() + self.starts.len() * (std::mem::size_of::<usize>() + 1)
    }

    /// Image `i`'s label.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// Appends image `i`'s pixels, scaled to [0, 1], to `out`.
    pub fn push_pixels(&self, i: usize, out: &mut Vec<f32>) {
        let base = out.len();
        out.resize(base + IMAGE_PIXELS, scale(0));
        let image = &mut out[base..];
        let (mut at, mut k) = (0, self.starts[i]);
        while at < IMAGE_PIXELS {
            let (blank, ink) = (self.segments[k] as usize, self.segments[k + 1] as usize);
            at += blank;
            let bytes = &self.segments[k + 2..k + 2 + ink];
            for (v, &b) in image[at..at + ink].iter_mut().zip(bytes) {
                *v = scale(b);
            }
            at += ink;
            k += 2 + ink;
        }
    }
}

/// MNIST split for training.
#[derive(Debug, Clone)]
pub struct Mnist {
    /// Images the GAN trains on.
    pub train: Images,
    /// The held-out first images of the training file.
    pub validation: Images,
}

/// Loads the training file and splits it per the config.
pub fn load_train(config: &DataConfig) -> Result<Mnist> {
    let sums = read_checksums(&config.dir)?;
    let images = read_images(&config.dir, TRAIN_IMAGES, &sums)?;
    let labels = read_labels(&config.dir, TRAIN_LABELS, &sums)?;
    let path = config.dir.join(TRAIN_LABELS);
    let all = pair(images, labels, &path)?;
    let v = config.validation_size;
    let n = config.train_size.unwrap_or(all.len().saturating_sub(v));
    if v + n > all.len() {
        return Err(Error::Data {
            path: config.dir.join(TRAIN_IMAGES),
            message: format!(
                "holds {} images, fewer than the {v} validation + {n} training images the config asks for",
                all.len()
            ),
        });
    }
    // Split without a second copy of the training bytes: the validation images are copied
    // out, then the training images are moved down within the same buffer.
    let validation = all.range(0, v);
    let Images {
        mut bytes,
        mut labels,
    } = all;
    bytes.truncate((v + n) * IMAGE_PIXELS);
    bytes.drain(..v * IMAGE_PIXELS);
    labels.truncate(v + n);
    labels.drain(..v);
    if bytes.len() < bytes.capacity() / 2 {
        bytes.shrink_to_fit(); // a small train_size need not hold the whole file
    }
    Ok(Mnist {
        validation,
        train: Images { bytes, labels },
    })
}

/// Loads the 10,000 test images.
pub fn load_test(dir: &Path) -> Result<Images> {
    let sums = read_checksums(dir)?;
    let images = read_images(dir, TEST_IMAGES, &sums)?;
    let labels = read_labels(dir, TEST_LABELS, &sums)?;
    pair(images, labels, &dir.join(TEST_LABELS))
}

/// A pixel byte as a value in [0, 1].
pub fn scale(byte: u8) -> f32 {
    byte as f32 / 255.0
}

fn pair(bytes: Vec<u8>, labels: Vec<u8>, path: &Path) -> Result<Images> {
    if bytes.len() != labels.len() * IMAGE_PIXELS {
        return Err(Error::Data {
            path: path.to_path_buf(),
            message: format!(
                "{} labels for {} images",
                labels.len(),
                bytes.len() / IMAGE_PIXELS
            ),
        });
    }
    Ok(Images { bytes, labels })
}

/// How to make a `SHA256SUMS` for a folder of files that are known to be good.
const MAKE_SUMS: &str = "if the files are the originals, write one with \
    `cd DIR && for f in *-ubyte*; do printf '%s  %s\\n' \"$(gunzip -cf \"$f\" | sha256sum | cut -d' ' -f1)\" \"${f%.gz}\"; done > SHA256SUMS`";

/// The `SHA256SUMS` of a data folder: stem -> hex digest. Required, and it must list every
/// file read: a folder that cannot be verified could train on damaged data without a word.
fn read_checksums(dir: &Path) -> Result<BTreeMap<String, String>> {
    let path = dir.join("SHA256SUMS");
    if !dir.is_dir() {
        return Err(Error::Data {
            path: dir.to_path_buf(),
            message: "no such folder".into(),
        });
    }
    let text = match crate::files::read_string(&path, crate::files::SMALL) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(Error::Data {
                path,
                message: format!("is missing, so the MNIST files cannot be verified; {MAKE_SUMS}"),
            });
        }
        Err(e) => return Err(Error::io("cannot read", &path, e)),
    };
    Ok(text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let sum = parts.next()?;
            let name = parts.next()?.trim_start_matches('*');
            Some((name.trim_end_matches(".gz").to_string(), sum.to_lowercase()))
        })
        .collect())
}

/// Reads the MNIST file `<stem>.gz` or `<stem>` of `dir`, decompressing when gzipped, and checks
/// the decompressed bytes against `sums`, which must list the stem.
fn read_file(
    dir: &Path,
    stem: &str,
    sums: &BTreeMap<String, String>,
) -> Result<(PathBuf, Vec<u8>)> {
    let gz = dir.join(format!("{stem}.gz"));
    let path = if gz.exists() { gz } else { dir.join(stem) };
    let bytes = read_maybe_gzipped(&path)?;
    let Some(expected) = sums.get(stem) else {
        return Err(Error::Data {
            path: dir.join("SHA256SUMS"),
            message: format!(
                "lists no checksum for `{stem}`, so it cannot be verified; {MAKE_SUMS}"
            ),
        });
    };
    let actual = sha256_hex(&bytes);
    if &actual != expected {
        return Err(Error::Data {
            path,
            message: format!(
                "checksum mismatch: SHA256SUMS says {expected}, the file's content is {actual}"
            ),
        });
    }
    Ok((path, bytes))
}

/// The most bytes an IDX file may hold, on disk or decompressed: MNIST's largest is 47 MB, and
/// a file (or a gzip stream) claiming more is refused before it is read into memory.
pub const MAX_IDX_BYTES: u64 = crate::files::IDX.max_bytes;

/// Reads exactly `path` (a regular file: [`crate::files::read`]), decompressing it when it is
/// gzipped (by its content, not its name), never holding more than [`MAX_IDX_BYTES`] of it.
fn read_maybe_gzipped(path: &Path) -> Result<Vec<u8>> {
    let path = path.to_path_buf();
    let bad = |message: String| Error::Data {
        path: path.clone(),
        message,
    };
    let raw = crate::files::read(&path, crate::files::IDX)
        .map_err(|e| bad(format!("cannot read: {e}")))?;
    if !raw.starts_with(&[0x1f, 0x8b]) {
        return Ok(raw);
    }
    // gzip's trailer holds the uncompressed size (mod 2^32): reserve it (within the bound), so
    // that the buffer does not grow by doubling past it.
    let size = raw.len().checked_sub(4).map_or(0, |at| {
        u32::from_le_bytes(raw[at..].try_into().expect("4 bytes"))
    });
    let mut out = Vec::with_capacity((size as u64).min(MAX_IDX_BYTES) as usize);
    flate2::read::GzDecoder::new(&raw[..])
        .take(MAX_IDX_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| {
            bad(format!(
                "corrupt gzip data ({e}): the file is damaged or truncated"
            ))
        })?;
    if out.len() as u64 > MAX_IDX_BYTES {
        return Err(bad(format!(
            "decompresses to more than {} MB, larger than any MNIST file: not an MNIST IDX file",
            MAX_IDX_BYTES >> 20
        )));
    }
    Ok(out)
}

/// Parses an IDX header, checking the magic number and that the body has exactly the bytes the
/// header promises. Returns the dimensions and the body.
pub fn parse_idx<'a>(
    bytes: &'a [u8],
    path: &Path,
    expect_magic: u32,
) -> Result<(Vec<usize>, &'a [u8])> {
    let bad = |message: String| Error::Data {
        path: path.to_path_buf(),
        message,
    };
    if bytes.len() < 4 {
        return Err(bad(format!("only {} bytes: not an IDX file", bytes.len())));
    }
    let magic = u32::from_be_bytes(bytes[0..4].try_into().expect("4 bytes"));
    if magic != expect_magic {
        return Err(bad(format!(
            "magic number {magic} where an IDX file of this kind has {expect_magic}"
        )));
    }
    let ndim = (magic & 0xff) as usize;
    let header = 4 + 4 * ndim;
    if bytes.len() < header {
        return Err(bad("truncated IDX header".into()));
    }
    let dims: Vec<usize> = (0..ndim)
        .map(|i| {
            u32::from_be_bytes(bytes[4 + 4 * i..8 + 4 * i].try_into().expect("4 bytes")) as usize
        })
        .collect();
    let body = &bytes[header..];
    let Some(expected) = dims.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) else {
        return Err(bad(format!(
            "header promises more data than can be addressed ({dims:?}), the file has {} bytes: \
             not an IDX file of this kind",
            body.len()
        )));
    };
    if body.len() != expected {
        return Err(bad(format!(
            "header promises {expected} bytes of data ({dims:?}), the file has {}: truncated or padded",
            body.len()
        )));
    }
    Ok((dims, body))
}

/// Reads any IDX3 image file of 28 x 28 images (gzipped or raw), e.g. one that `gan-run sample`
/// or another tool wrote, as pixels in [0, 1]. Exactly the file named is read (never `X.gz`
/// in place of `X`), and it has no checksum to check.
pub fn read_idx_images(path: &Path) -> Result<Vec<f32>> {
    // Not MNIST's data folder: its errors must not point the user there.
    let as_samples = |e: Error| match e {
        Error::Data { path, message } => Error::Samples { path, message },
        other => other,
    };
    let bytes = read_maybe_gzipped(path).map_err(as_samples)?;
    Ok(image_bytes(path.to_path_buf(), bytes)
        .map_err(as_samples)?
        .iter()
        .map(|&b| scale(b))
        .collect())
}

fn read_images(dir: &Path, stem: &str, sums: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let (path, bytes) = read_file(dir, stem, sums)?;
    image_bytes(path, bytes)
}

/// The pixels of an IDX3 file of 28 x 28 images, in the file's own buffer.
fn image_bytes(path: PathBuf, bytes: Vec<u8>) -> Result<Vec<u8>> {
    let (dims, body) = parse_idx(&bytes, &path, 2051)?;
    if dims.len() != 3 || dims[1] != 28 || dims[2] != 28 {
        return Err(Error::Data {
            path,
            message: format!("expected N x 28 x 28 images, found dimensions {dims:?}"),
        });
    }
    let header = bytes.len() - body.len();
    let mut bytes = bytes;
    bytes.drain(..header); // the pixels, in the same buffer
    Ok(bytes)
}

fn read_labels(dir: &Path, stem: &str, sums: &BTreeMap<String, String>) -> Result<Vec<u8>> {
    let (path, bytes) = read_file(dir, stem, sums)?;
    let (_, body) = parse_idx(&bytes, &path, 2049)?;
    Ok(body.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn idx(magic: u32, dims: &[u32], body: &[u8]) -> Vec<u8> {
        let mut v = magic.to_be_bytes().to_vec();
        for d in dims {
            v.extend(d.to_be_bytes());
        }
        v.extend(body);
        v
    }

    /// The file named is the file read: `X` is never replaced by a neighbouring `X.gz`.
    #[test]
    fn an_idx_path_is_read_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let good = idx(2051, &[1, 28, 28], &[7; 784]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gz, &good).unwrap();
        std::fs::write(dir.path().join("x.gz"), gz.finish().unwrap()).unwrap();
        std::fs::write(dir.path().join("x"), b"not an idx file").unwrap();
        let err = read_idx_images(&dir.path().join("x"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("/x:") || err.contains("/x "), "{err}");
        let pixels = read_idx_images(&dir.path().join("x.gz")).unwrap();
        assert_eq!(pixels, vec![scale(7); 784]);
    }

    /// Every test image, and images with no ink, all ink and alternating pixels, decode to
    /// exactly what the unpacked images give.
    #[test]
    fn packed_images_decode_to_the_same_pixels() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("data/mnist");
        let mut images = load_test(&dir).unwrap();
        let patterns: [fn(usize) -> u8; 4] =
            [|_| 0, |_| 255, |j| (j % 2) as u8 * 7, |j| (j % 300) as u8];
        for pattern in patterns {
            images.bytes.extend((0..IMAGE_PIXELS).map(pattern));
            images.labels.push(0);
        }
        let packed = PackedImages::pack(&images);
        assert_eq!(packed.len(), images.len());
        assert!(
            packed.packed_bytes() < images.bytes.len() / 2,
            "{}",
            packed.packed_bytes()
        );
        let (mut expected, mut got) = (Vec::new(), Vec::new());
        for i in 0..images.len() {
            expected.extend(images.image(i).iter().map(|&b| scale(b)));
            packed.push_pixels(i, &mut got);
        }
        assert_eq!(got, expected);
    }

    #[test]
    fn idx_header_is_checked() {
        let p = Path::new("x");
        let good = idx(2051, &[1, 2, 2], &[0, 1, 2, 3]);
        let (dims, body) = parse_idx(&good, p, 2051).unwrap();
        assert_eq!((dims, body.len()), (vec![1, 2, 2], 4));
        let e = parse_idx(&good[..good.len() - 1], p, 2051).unwrap_err();
        assert!(e.to_string().contains("truncated"), "{e}");
        let e = parse_idx(&good, p, 2049).unwrap_err();
        assert!(e.to_string().contains("magic"), "{e}");
    }
}

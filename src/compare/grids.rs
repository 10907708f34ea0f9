//! `diff`'s picture: two runs' sample grids side by side, epoch by epoch, labelled.

use super::RunRecord;
use crate::error::{Error, Result};
use crate::run_dir::{sample_grid_name, SAMPLES_DIR};

/// A PNG with, per common epoch, A's sample grid on the left and B's on the right, under a
/// header that says which is A and which B, each row labelled with its epoch.
pub fn side_by_side_png(a: &RunRecord, b: &RunRecord, epochs: &[usize]) -> Result<Vec<u8>> {
    let load = |r: &RunRecord, e: usize| -> Result<image::GrayImage> {
        let p = r.dir.join(SAMPLES_DIR).join(sample_grid_name(e, None));
        let failed = |err: String| Error::RunDir {
            path: p.clone(),
            message: format!("cannot read sample grid: {err}"),
        };
        let bytes =
            crate::files::read(&p, crate::files::IMAGE).map_err(|e| failed(e.to_string()))?;
        Ok(image::load_from_memory(&bytes)
            .map_err(|e| failed(e.to_string()))?
            .to_luma8())
    };
    let mut pairs = Vec::new();
    for &e in epochs {
        pairs.push((e, load(a, e)?, load(b, e)?));
    }
    const GAP: u32 = 8;
    // Room for the labels: a header row for A and B, a left margin for epochs of up to five
    // digits (glyphs 3x5 pixels, drawn at twice their size).
    const SCALE: u32 = 2;
    const HEADER: u32 = 5 * SCALE + 6;
    const MARGIN: u32 = 5 * 4 * SCALE + 4;
    let left_width = pairs.iter().map(|(_, x, _)| x.width()).max().unwrap_or(0);
    let width = pairs
        .iter()
        .map(|(_, x, y)| MARGIN + x.width() + GAP + y.width())
        .max()
        .unwrap_or(MARGIN);
    let height = HEADER
        + pairs
            .iter()
            .map(|(_, x, y)| x.height().max(y.height()) + GAP)
            .sum::<u32>();
    let mut out = image::GrayImage::from_pixel(width, height, image::Luma([128]));
    draw_text(&mut out, 2, 3, "EP", SCALE);
    draw_text(&mut out, MARGIN + left_width / 2 - 3, 3, "A", SCALE);
    if let Some((_, _, right)) = pairs.first() {
        let b_x = MARGIN + left_width + GAP + right.width() / 2 - 3;
        draw_text(&mut out, b_x, 3, "B", SCALE);
    }
    let mut top = HEADER;
    for (epoch, x, y) in &pairs {
        draw_text(&mut out, 2, top + 2, &epoch.to_string(), SCALE);
        image::imageops::replace(&mut out, x, MARGIN as i64, top as i64);
        image::imageops::replace(&mut out, y, (MARGIN + x.width() + GAP) as i64, top as i64);
        top += x.height().max(y.height()) + GAP;
    }
    let mut bytes = std::io::Cursor::new(Vec::new());
    out.write_to(&mut bytes, image::ImageFormat::Png)
        .expect("in-memory PNG");
    Ok(bytes.into_inner())
}

/// Draws `text` (digits and the letters A, B, E, P; anything else is skipped) in white, its
/// top left corner at `(x, y)`, each glyph pixel `scale` pixels wide.
fn draw_text(img: &mut image::GrayImage, x: u32, y: u32, text: &str, scale: u32) {
    /// 3x5 glyphs, one row per entry, the high bit on the left.
    fn glyph(c: char) -> Option<[u8; 5]> {
        Some(match c {
            '0' => [7, 5, 5, 5, 7],
            '1' => [2, 6, 2, 2, 7],
            '2' => [7, 1, 7, 4, 7],
            '3' => [7, 1, 7, 1, 7],
            '4' => [5, 5, 7, 1, 1],
            '5' => [7, 4, 7, 1, 7],
            '6' => [7, 4, 7, 5, 7],
            '7' => [7, 1, 2, 2, 2],
            '8' => [7, 5, 7, 5, 7],
            '9' => [7, 5, 7, 1, 7],
            'A' => [2, 5, 7, 5, 5],
            'B' => [6, 5, 6, 5, 6],
            'E' => [7, 4, 6, 4, 7],
            'P' => [6, 5, 6, 4, 4],
            _ => return None,
        })
    }
    for (i, c) in text.chars().enumerate() {
        let Some(rows) = glyph(c) else { continue };
        let left = x + i as u32 * 4 * scale;
        for (row, bits) in rows.iter().enumerate() {
            for col in 0..3u32 {
                if bits & (4 >> col) == 0 {
                    continue;
                }
                for dy in 0..scale {
                    for dx in 0..scale {
                        let (px, py) = (left + col * scale + dx, y + row as u32 * scale + dy);
                        if px < img.width() && py < img.height() {
                            img.put_pixel(px, py, image::Luma([255]));
                        }
                    }
                }
            }
        }
    }
}

//! The patch geometry that `conv2d` and `conv_transpose2d` share (not a layer kind): which
//! pixel of an image each number of a `kernel x kernel` patch reads, at each stride step.
//!
//! Why one geometry for both kinds: a transposed convolution is the adjoint of the convolution
//! with the same geometry, so the fast path runs each kind's forward pass with the other's
//! backward arithmetic. Patches are unfolded into columns (`im2col`) so that a convolution is
//! one matrix product per batch through faer, and folded back (`col2im`) for its adjoint. The
//! reference on dfdx's tape is the same map as a dense matrix gathered from the kernel
//! ([`Patches::dense_index`]): slow and large, but plainly the definition, and dfdx 0.13's own
//! `conv2d` needs a nightly compiler.

use std::cell::RefCell;

use rayon::prelude::*;

/// Patches of `kernel x kernel` pixels over all channels of a `[channels, height, width]`
/// image, `stride` apart, the image padded with `padding` zeros on each side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Patches {
    /// Channels of the image.
    pub channels: usize,
    /// Its height.
    pub height: usize,
    /// Its width.
    pub width: usize,
    /// Side of a patch.
    pub kernel: usize,
    /// Step between patches.
    pub stride: usize,
    /// Zeros around the image.
    pub padding: usize,
    /// Patches down.
    pub out_height: usize,
    /// Patches across.
    pub out_width: usize,
}

/// Below this many numbers, unfolding and folding run on the calling thread.
const SPLIT: usize = 1 << 15;

/// How many image values [`Patches::fold`] sums in one task.
const FOLD_BLOCK_VALUES: usize = 1 << 16;

thread_local! {
    /// Each thread's phase-major sums for [`Patches::fold`], kept from call to call so that a
    /// training step does not allocate them.
    static PHASED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

impl Patches {
    /// The patches of a `[channels, height, width]` image; an error when a patch would not fit
    /// the padded image once.
    pub fn new(
        (channels, height, width): (usize, usize, usize),
        kernel: usize,
        stride: usize,
        padding: usize,
    ) -> Result<Patches, String> {
        let steps = |side: usize| {
            let padded = side + 2 * padding;
            (padded >= kernel).then(|| (padded - kernel) / stride + 1)
        };
        match (steps(height), steps(width)) {
            (Some(out_height), Some(out_width)) => Ok(Patches {
                channels,
                height,
                width,
                kernel,
                stride,
                padding,
                out_height,
                out_width,
            }),
            _ => Err(format!(
                "a {kernel}x{kernel} kernel does not fit a {height}x{width} image padded by \
                 {padding}"
            )),
        }
    }

    /// Patch positions (`out_height * out_width`).
    pub fn positions(&self) -> usize {
        self.out_height * self.out_width
    }

    /// Numbers in one patch (`channels * kernel * kernel`): the rows of the unfolded columns.
    pub fn patch_len(&self) -> usize {
        self.channels * self.kernel * self.kernel
    }

    /// Numbers in one image.
    pub fn image_len(&self) -> usize {
        self.channels * self.height * self.width
    }

    /// Patch number `row` as (its channel's first image row, `ky`, `kx`).
    fn patch_number(&self, row: usize) -> (usize, usize, usize) {
        let k2 = self.kernel * self.kernel;
        let (c, ky, kx) = (row / k2, (row % k2) / self.kernel, row % self.kernel);
        (c * self.height, ky, kx)
    }

    /// The first and past-the-last patch steps along a side at which kernel offset `k` reads
    /// the image rather than padding.
    fn steps_inside(&self, k: usize, side: usize, steps: usize) -> (usize, usize) {
        let s = self.stride;
        let first = self.padding.saturating_sub(k).div_ceil(s);
        let end = match (side + self.padding).checked_sub(k) {
            Some(reach) => reach.div_ceil(s),
            None => 0,
        };
        (first, end.min(steps).max(first))
    }

    /// Calls `f(image_start, position_start, count)` for each line of patch number `row`'s
    /// reads that fall on the image: positions `position_start..+count` read pixels
    /// `image_start`, `+stride`, ... In position order: the definition that the dense reference
    /// ([`Patches::dense_index`]) and the tests read; `unfold` and `fold` walk the same lines in
    /// the phase-major layout ([`Patches::phased_lines`]).
    fn each_span(&self, row: usize, mut f: impl FnMut(usize, usize, usize)) {
        let (plane, ky, kx) = self.patch_number(row);
        let (y0, y1) = self.steps_inside(ky, self.height, self.out_height);
        let (x0, x1) = self.steps_inside(kx, self.width, self.out_width);
        if x1 == x0 {
            return;
        }
        for y in y0..y1 {
            let iy = y * self.stride + ky - self.padding;
            let ix = x0 * self.stride + kx - self.padding;
            f(
                (plane + iy) * self.width + ix,
                y * self.out_width + x0,
                x1 - x0,
            );
        }
    }

    /// Unfolds `rows` images (`rows x image_len`, row-major) into `columns`
    /// (`patch_len x rows * positions`): column `b * positions + p` is image `b`'s patch `p`.
    pub fn unfold(&self, images: &[f32], rows: usize, columns: &mut [f32]) {
        let mut phased = vec![0.0; self.phased_len(rows)];
        self.unfold_with(images, rows, columns, &mut phased);
    }

    /// Values of `rows` images in the phase-major layout: the scratch that
    /// [`Patches::unfold_with`] takes.
    pub fn phased_len(&self, rows: usize) -> usize {
        rows * self.channels * self.phase_plane()
    }

    /// [`Patches::unfold`] with its scratch given (`phased_len(rows)` values, overwritten), so
    /// that a training step does not allocate it.
    ///
    /// Why through the phase-major layout (see [`Patches::phased_index`]): each patch number's
    /// line then copies neighbours instead of gathering every `stride`-th pixel, and each image
    /// is rearranged once rather than read that way once per patch number.
    pub fn unfold_with(
        &self,
        images: &[f32],
        rows: usize,
        columns: &mut [f32],
        phased: &mut [f32],
    ) {
        let (len, positions) = (self.image_len(), self.positions());
        assert_eq!(images.len(), rows * len, "images");
        assert_eq!(
            columns.len(),
            self.patch_len() * rows * positions,
            "columns"
        );
        assert_eq!(phased.len(), self.phased_len(rows), "phased");
        let phased_len = self.channels * self.phase_plane();
        let rearrange = |(image, phased): (&[f32], &mut [f32])| self.phase(image, phased);
        if images.len() < SPLIT {
            images
                .chunks_exact(len)
                .zip(phased.chunks_exact_mut(phased_len))
                .for_each(rearrange);
        } else {
            images
                .par_chunks_exact(len)
                .zip(phased.par_chunks_exact_mut(phased_len))
                .for_each(rearrange);
        }
        let phased = &*phased;
        let body = |(r, out): (usize, &mut [f32])| {
            out.fill(0.0);
            let Some(lines) = self.phased_lines(r) else {
                return;
            };
            let n = lines.n;
            for (out, image) in out
                .chunks_exact_mut(positions)
                .zip(phased.chunks_exact(phased_len))
            {
                for (at, p) in lines.clone() {
                    out[p..p + n].copy_from_slice(&image[at..at + n]);
                }
            }
        };
        let row_len = rows * positions;
        if columns.len() < SPLIT {
            columns.chunks_exact_mut(row_len).enumerate().for_each(body);
        } else {
            columns
                .par_chunks_exact_mut(row_len)
                .enumerate()
                .for_each(body);
        }
    }

    /// Folds `columns` (as [`Patches::unfold`] lays them out) back into `images`, overwriting
    /// them: each pixel gets the sum of every patch number that reads it, added in patch-number
    /// order whatever the thread count.
    ///
    /// Why a few images at a time, patch number outside: each patch number's columns for those
    /// images lie side by side, so the reads run along memory, and the images being summed stay
    /// in cache. Walking one image at a time through every patch number read a short piece of
    /// each of a thousand rows far apart (perf: 15% of the DCGAN step).
    pub fn fold(&self, columns: &[f32], rows: usize, images: &mut [f32]) {
        let (len, positions) = (self.image_len(), self.positions());
        assert_eq!(images.len(), rows * len, "images");
        assert_eq!(
            columns.len(),
            self.patch_len() * rows * positions,
            "columns"
        );
        let row_len = rows * positions;
        // Images per task: their sums fit in a core's cache (a quarter of a megabyte), and
        // every thread gets a share (a task's images do not change its bits).
        let share = rows.div_ceil(rayon::current_num_threads()).max(1);
        let block = (FOLD_BLOCK_VALUES / len.max(1)).clamp(1, share);
        let body = |(t, block_images): (usize, &mut [f32])| {
            let first = t * block;
            let count = block_images.len() / len;
            let phased_len = self.channels * self.phase_plane();
            // Nothing inside the borrow calls rayon, so no other task runs on this thread
            // while it is held.
            PHASED.with_borrow_mut(|scratch| {
                if scratch.len() < count * phased_len {
                    scratch.resize(count * phased_len, 0.0);
                }
                let sums = &mut scratch[..count * phased_len];
                sums.fill(0.0);
                for r in 0..self.patch_len() {
                    let Some(lines) = self.phased_lines(r) else {
                        continue;
                    };
                    let patch_row = &columns[r * row_len..(r + 1) * row_len];
                    for (b, phased) in sums.chunks_exact_mut(phased_len).enumerate() {
                        let column = &patch_row[(first + b) * positions..][..positions];
                        for (at, p) in lines.clone() {
                            phased[at..at + lines.n]
                                .iter_mut()
                                .zip(&column[p..p + lines.n])
                                .for_each(|(v, c)| *v += c)
                        }
                    }
                }
                for (image, phased) in block_images
                    .chunks_exact_mut(len)
                    .zip(sums.chunks_exact(phased_len))
                {
                    self.unphase(phased, image);
                }
            });
        };
        if images.len() < SPLIT {
            images.chunks_mut(block * len).enumerate().for_each(body);
        } else {
            images
                .par_chunks_mut(block * len)
                .enumerate()
                .for_each(body);
        }
    }

    /// Values per channel in the phase-major layout (see [`Patches::phased_index`]).
    fn phase_plane(&self) -> usize {
        let s = self.stride;
        s * s * self.height.div_ceil(s) * self.width.div_ceil(s)
    }

    /// The lines of patch number `row`'s reads that fall on the image, as (phase-major start,
    /// first position) pairs of `n` values each: [`Patches::each_span`] in the phase-major
    /// layout, its index worked out once per patch number (a line down is a phase row down).
    fn phased_lines(&self, row: usize) -> Option<PhasedLines> {
        let (plane, ky, kx) = self.patch_number(row);
        let (y0, y1) = self.steps_inside(ky, self.height, self.out_height);
        let (x0, x1) = self.steps_inside(kx, self.width, self.out_width);
        if x1 == x0 || y1 == y0 {
            return None;
        }
        let iy = y0 * self.stride + ky - self.padding;
        let ix = x0 * self.stride + kx - self.padding;
        let (step, n, lines) = (self.width.div_ceil(self.stride), x1 - x0, y1 - y0);
        // Whole lines on both sides (a 7 x 7 phase read by 7 x 7 positions): one run.
        let (n, lines) = match step == n && self.out_width == n {
            true => (n * lines, 1),
            false => (n, lines),
        };
        Some(PhasedLines {
            start: self.phased_index((plane + iy) * self.width + ix),
            step,
            position: y0 * self.out_width + x0,
            out_width: self.out_width,
            lines,
            n,
        })
    }

    /// Where pixel `i` of an image (channel-major, as `each_span` numbers it) lies when each
    /// channel is split into `stride x stride` phases (pixels whose row and column leave the
    /// same remainders), each phase a small image of its own. The pixels that one patch number
    /// reads along a line are `stride` apart in the image and side by side in their phase, so
    /// folding adds runs of neighbours instead of every `stride`-th value.
    #[inline]
    fn phased_index(&self, i: usize) -> usize {
        let (s, area) = (self.stride, self.height * self.width);
        let (c, at) = (i / area, i % area);
        let (y, x) = (at / self.width, at % self.width);
        let (hp, wp) = (self.height.div_ceil(s), self.width.div_ceil(s));
        c * self.phase_plane() + ((y % s) * s + x % s) * hp * wp + (y / s) * wp + x / s
    }

    /// An image in the phase-major layout (every pixel copied once; cells past the image's
    /// edge, where a side is not a multiple of the stride, left as they were).
    fn phase(&self, image: &[f32], phased: &mut [f32]) {
        let s = self.stride;
        let (hp, wp) = (self.height.div_ceil(s), self.width.div_ceil(s));
        for (c, channel) in image.chunks_exact(self.height * self.width).enumerate() {
            let planes = &mut phased[c * self.phase_plane()..];
            for (y, line) in channel.chunks_exact(self.width).enumerate() {
                for px in 0..s.min(self.width) {
                    let to = &mut planes[((y % s) * s + px) * hp * wp + (y / s) * wp..];
                    to.iter_mut()
                        .zip(line[px..].iter().step_by(s))
                        .for_each(|(t, v)| *t = *v);
                }
            }
        }
    }

    /// An image from its phase-major layout (every pixel copied once).
    fn unphase(&self, phased: &[f32], image: &mut [f32]) {
        let s = self.stride;
        let (hp, wp) = (self.height.div_ceil(s), self.width.div_ceil(s));
        for (c, channel) in image.chunks_exact_mut(self.height * self.width).enumerate() {
            let planes = &phased[c * self.phase_plane()..];
            for (y, line) in channel.chunks_exact_mut(self.width).enumerate() {
                for px in 0..s.min(self.width) {
                    let from = &planes[((y % s) * s + px) * hp * wp + (y / s) * wp..];
                    line[px..]
                        .iter_mut()
                        .step_by(s)
                        .zip(from)
                        .for_each(|(v, f)| *v = *f);
                }
            }
        }
    }

    /// The convolution of an image with `filters` kernels as one dense `[image_len, filters *
    /// positions]` matrix (`y = x M`, outputs channel-major), given as an index into the
    /// kernels `[filters, patch_len]` for each entry, `None` where the entry is zero.
    pub fn dense_index(&self, filters: usize) -> Vec<Option<usize>> {
        let (positions, patch) = (self.positions(), self.patch_len());
        let columns = filters * positions;
        let mut index = vec![None; self.image_len() * columns];
        for f in 0..filters {
            for r in 0..patch {
                self.each_span(r, |i, p, n| {
                    for j in 0..n {
                        let entry = (i + j * self.stride) * columns + f * positions + p + j;
                        index[entry] = Some(f * patch + r);
                    }
                });
            }
        }
        index
    }
}

/// A patch number's lines in the phase-major layout that [`Patches::unfold_with`] reads and
/// [`Patches::fold`] sums into: an iterator of (start in that layout, first position) pairs,
/// each line `n` values long.
#[derive(Debug, Clone)]
struct PhasedLines {
    start: usize,
    step: usize,
    position: usize,
    out_width: usize,
    lines: usize,
    n: usize,
}

impl Iterator for PhasedLines {
    type Item = (usize, usize);

    fn next(&mut self) -> Option<(usize, usize)> {
        if self.lines == 0 {
            return None;
        }
        let line = (self.start, self.position);
        self.start += self.step;
        self.position += self.out_width;
        self.lines -= 1;
        Some(line)
    }
}

/// `[rows, channels, positions]` (rows of channel-major images) to `[channels, rows *
/// positions]`: a batch's channels side by side, as one product wants them.
pub fn channels_first(x: &[f32], rows: usize, channels: usize, positions: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * channels * positions);
    assert_eq!(out.len(), x.len());
    for (b, image) in x.chunks_exact(channels * positions).enumerate() {
        for (c, plane) in image.chunks_exact(positions).enumerate() {
            out[(c * rows + b) * positions..][..positions].copy_from_slice(plane);
        }
    }
}

/// The inverse of [`channels_first`].
pub fn rows_first(x: &[f32], rows: usize, channels: usize, positions: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * channels * positions);
    assert_eq!(out.len(), x.len());
    for (b, image) in out.chunks_exact_mut(channels * positions).enumerate() {
        for (c, plane) in image.chunks_exact_mut(positions).enumerate() {
            plane.copy_from_slice(&x[(c * rows + b) * positions..][..positions]);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 1-channel 3x3 image, 2x2 kernel, stride 1, padding 0: four patches, read by hand.
    #[test]
    fn unfold_reads_patches_and_fold_adds_them_back() {
        let p = Patches::new((1, 3, 3), 2, 1, 0).unwrap();
        assert_eq!((p.out_height, p.out_width, p.patch_len()), (2, 2, 4));
        let image: Vec<f32> = (1..=9).map(|v| v as f32).collect();
        let mut columns = vec![0.0; 16];
        p.unfold(&image, 1, &mut columns);
        // Row r is patch number r (ky, kx) at each of the four positions.
        assert_eq!(
            columns,
            [1., 2., 4., 5., 2., 3., 5., 6., 4., 5., 7., 8., 5., 6., 8., 9.]
        );
        let mut back = vec![7.0; 9];
        p.fold(&[1.0; 16], 1, &mut back);
        // How many patches cover each pixel.
        assert_eq!(back, [1., 2., 1., 2., 4., 2., 1., 2., 1.]);
    }

    /// Folding is unfolding's adjoint: <unfold(x), c> = <x, fold(c)>, padding and stride
    /// included, over two images.
    #[test]
    fn fold_is_the_adjoint_of_unfold() {
        let p = Patches::new((2, 5, 4), 3, 2, 1).unwrap();
        let rows = 2;
        let x: Vec<f32> = (0..rows * p.image_len())
            .map(|i| (i as f32 * 0.37).sin())
            .collect();
        let n = p.patch_len() * rows * p.positions();
        let c: Vec<f32> = (0..n).map(|i| (i as f32 * 0.11).cos()).collect();
        let mut ux = vec![0.0; n];
        p.unfold(&x, rows, &mut ux);
        let mut fc = vec![0.0; x.len()];
        p.fold(&c, rows, &mut fc);
        let lhs: f64 = ux.iter().zip(&c).map(|(a, b)| (a * b) as f64).sum();
        let rhs: f64 = x.iter().zip(&fc).map(|(a, b)| (a * b) as f64).sum();
        assert!((lhs - rhs).abs() < 1e-4, "{lhs} vs {rhs}");
    }

    /// Unfolding against the definition, pixel by pixel with signed arithmetic, for strides,
    /// paddings and kernels that leave partial lines at every edge.
    #[test]
    fn unfold_matches_the_definition() {
        for (c, h, w, k, s, pad) in [(2, 5, 4, 3, 2, 1), (1, 7, 7, 4, 3, 2), (3, 4, 6, 2, 1, 0)] {
            let p = Patches::new((c, h, w), k, s, pad).unwrap();
            let rows = 2;
            let x: Vec<f32> = (0..rows * p.image_len()).map(|i| i as f32 + 1.0).collect();
            let mut columns = vec![0.0; p.patch_len() * rows * p.positions()];
            p.unfold(&x, rows, &mut columns);
            let mut want = Vec::new();
            for r in 0..p.patch_len() {
                let (ch, ky, kx) = (r / (k * k), (r % (k * k)) / k, r % k);
                for b in 0..rows {
                    for y in 0..p.out_height {
                        for xx in 0..p.out_width {
                            let iy = (y * s + ky) as isize - pad as isize;
                            let ix = (xx * s + kx) as isize - pad as isize;
                            let inside =
                                (0..h as isize).contains(&iy) && (0..w as isize).contains(&ix);
                            want.push(match inside {
                                true => {
                                    x[b * p.image_len() + (ch * h + iy as usize) * w + ix as usize]
                                }
                                false => 0.0,
                            });
                        }
                    }
                }
            }
            assert_eq!(columns, want, "{c}x{h}x{w} k{k} s{s} p{pad}");
        }
    }

    /// Folding against the definition (each image, patch numbers in order, each line's reads
    /// added where `each_span` says), to the bit: for strides, paddings and odd sides, over
    /// enough images for several tasks on two threads, and on one thread.
    #[test]
    fn fold_matches_the_definition_to_the_bit() {
        for (c, h, w, k, s, pad) in [(2, 5, 4, 3, 2, 1), (1, 7, 7, 4, 3, 2), (3, 4, 6, 2, 1, 0)] {
            let p = Patches::new((c, h, w), k, s, pad).unwrap();
            let rows = SPLIT.div_ceil(p.image_len()) + 3;
            let n = p.patch_len() * rows * p.positions();
            let columns: Vec<f32> = (0..n).map(|i| ((i * 7919) % 1013) as f32 / 97.0).collect();
            let mut want = vec![0.0; rows * p.image_len()];
            for (b, image) in want.chunks_exact_mut(p.image_len()).enumerate() {
                for r in 0..p.patch_len() {
                    let column = &columns[(r * rows + b) * p.positions()..][..p.positions()];
                    p.each_span(r, |i, at, count| {
                        for j in 0..count {
                            image[i + j * s] += column[at + j];
                        }
                    });
                }
            }
            let mut got = vec![f32::NAN; want.len()];
            p.fold(&columns, rows, &mut got);
            assert_eq!(got, want, "{c}x{h}x{w} k{k} s{s} p{pad}");
            let mut alone = vec![f32::NAN; want.len()];
            rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .unwrap()
                .install(|| p.fold(&columns, rows, &mut alone));
            assert_eq!(alone, want, "one thread: {c}x{h}x{w} k{k} s{s} p{pad}");
        }
    }

    /// `unfold_with` reads nothing of its scratch that it did not write: NaN left in it by an
    /// earlier user (cells past the edge of an image whose sides are not multiples of the
    /// stride) does not reach the columns.
    #[test]
    fn unfold_ignores_what_its_scratch_held() {
        for (c, h, w, k, s, pad) in [(2, 5, 4, 3, 2, 1), (1, 7, 7, 4, 3, 2)] {
            let p = Patches::new((c, h, w), k, s, pad).unwrap();
            let rows = 3;
            let x: Vec<f32> = (0..rows * p.image_len()).map(|i| i as f32).collect();
            let mut want = vec![0.0; p.patch_len() * rows * p.positions()];
            p.unfold(&x, rows, &mut want);
            let mut got = vec![f32::NAN; want.len()];
            let mut scratch = vec![f32::NAN; p.phased_len(rows)];
            p.unfold_with(&x, rows, &mut got, &mut scratch);
            assert_eq!(got, want, "{c}x{h}x{w} k{k} s{s} p{pad}");
        }
    }

    #[test]
    fn a_kernel_larger_than_the_padded_image_is_refused() {
        let message = Patches::new((1, 2, 2), 5, 1, 1).unwrap_err();
        assert!(
            message.contains("5x5") && message.contains("2x2"),
            "{message}"
        );
        assert!(Patches::new((1, 2, 2), 4, 1, 1).is_ok());
    }

    #[test]
    fn channels_first_and_rows_first_are_inverses() {
        let x: Vec<f32> = (0..24).map(|v| v as f32).collect();
        let mut a = vec![0.0; 24];
        channels_first(&x, 2, 3, 4, &mut a);
        assert_eq!(&a[..8], [0., 1., 2., 3., 12., 13., 14., 15.]);
        let mut b = vec![0.0; 24];
        rows_first(&a, 2, 3, 4, &mut b);
        assert_eq!(b, x);
    }
}

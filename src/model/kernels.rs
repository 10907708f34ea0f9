//! Hand-written kernels for the training hot path, on plain row-major `f32` buffers.
//!
//! Why they exist: dfdx 0.13's matrix products go through `gemm` 0.15, whose AVX-512 kernels
//! need nightly Rust, and its element-wise ops, batch-norm and Adam are single-threaded scalar
//! loops. The products here go through faer's safe `matmul` (AVX-512 on stable Rust), and the
//! element-wise passes are split by rows; BENCHMARKS.md has the timings. A product split in
//! halves gives the same bits as an unsplit one for the paper's shapes, and so does a whole paper
//! step (both tested), so results there do not depend on the thread count. The products and Adam
//! are tested against dfdx, the column sums against a plain loop.

use faer::{Accum, MatMut, MatRef, Par};
use rayon::prelude::*;

/// Below this many multiply-adds a product runs on one thread: splitting costs more than it
/// saves.
const SPLIT_MACS: usize = 1 << 18;
/// Element-wise passes over fewer elements than this run on one thread.
const SPLIT_ELEMENTS: usize = 1 << 14;

/// faer's product on the calling thread, followed by [`clear_upper_vector_state`].
fn faer_matmul(c: MatMut<'_, f32>, accum: Accum, a: MatRef<'_, f32>, b: MatRef<'_, f32>) {
    faer::linalg::matmul::matmul(c, accum, a, b, 1.0f32, Par::Seq);
    clear_upper_vector_state();
}

/// Runs `vzeroupper` where the CPU has AVX. Every faer product is followed by it.
///
/// Why: faer's AVX-512 product kernels (private-gemm-x86 0.1.22, generated assembly) return
/// with the upper halves of the vector registers dirty, whereas compilers end every function
/// that uses wide registers with a `vzeroupper`. Legacy-SSE code run after that (on AMD EPYC, at
/// least) is several times slower until something clears them. gan-run's own code is normally
/// built for the native CPU (`.cargo/config.toml`), but the prebuilt standard library and libc
/// it calls are SSE code either way. BENCHMARKS.md has the measurements.
#[inline]
fn clear_upper_vector_state() {
    #[cfg(target_arch = "x86_64")]
    {
        // The feature check is std's, cached after the first call.
        if let Some(avx) = pulp::core_arch::x86::Avx::try_new() {
            avx._mm256_zeroupper();
        }
    }
}

/// A row-major matrix view: `rows x cols` values, or the transpose of one.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    transposed: bool,
}

impl<'a> Mat<'a> {
    /// `data` as a `rows x cols` row-major matrix.
    pub fn new(data: &'a [f32], rows: usize, cols: usize) -> Mat<'a> {
        assert_eq!(data.len(), rows * cols, "matrix buffer size");
        Mat {
            data,
            rows,
            cols,
            transposed: false,
        }
    }

    /// The transpose, without copying.
    pub fn t(self) -> Mat<'a> {
        Mat {
            transposed: !self.transposed,
            ..self
        }
    }

    fn view(&self) -> MatRef<'a, f32> {
        let v = MatRef::from_row_major_slice(self.data, self.rows, self.cols);
        if self.transposed {
            v.transpose()
        } else {
            v
        }
    }
}

/// `c = a b` (overwriting `c`, which must hold `a.rows x b.cols` values). A large product is
/// split into two halves (by columns, or by rows when there are more rows) run with
/// `rayon::join`, each on one thread: faer's own parallel mode keeps its threads spinning after
/// a product returns, which on two cores slows the element-wise work and Adam that follow.
pub fn matmul(a: Mat<'_>, b: Mat<'_>, c: &mut [f32]) {
    product(a, b, c, Accum::Replace)
}

/// `c += a b`: lets a layer start `c` at its bias instead of zeroing it and adding the bias
/// in a second pass.
pub fn matmul_add(a: Mat<'_>, b: Mat<'_>, c: &mut [f32]) {
    product(a, b, c, Accum::Add)
}

/// `c = a b` on the calling thread only (`examples/product_shapes.rs` times products both ways).
pub fn matmul_one_thread(a: Mat<'_>, b: Mat<'_>, c: &mut [f32]) {
    let (a, b) = (a.view(), b.view());
    let (m, n) = (a.nrows(), b.ncols());
    assert_eq!(c.len(), m * n, "output buffer size");
    let c = MatMut::from_row_major_slice_mut(c, m, n);
    faer_matmul(c, Accum::Replace, a, b);
}

fn product(a: Mat<'_>, b: Mat<'_>, c: &mut [f32], accum: Accum) {
    let (a, b) = (a.view(), b.view());
    let (m, k, n) = (a.nrows(), a.ncols(), b.ncols());
    assert_eq!(k, b.nrows(), "inner dimensions");
    assert_eq!(c.len(), m * n, "output buffer size");
    let c = MatMut::from_row_major_slice_mut(c, m, n);
    let product =
        |c: MatMut<'_, f32>, a: MatRef<'_, f32>, b: MatRef<'_, f32>| faer_matmul(c, accum, a, b);
    if m * k * n < SPLIT_MACS || rayon::current_num_threads() < 2 {
        product(c, a, b);
    } else if n >= m {
        let h = n / 2;
        let (c1, c2) = c.split_at_col_mut(h);
        let (b1, b2) = b.split_at_col(h);
        rayon::join(|| product(c1, a, b1), || product(c2, a, b2));
    } else {
        let h = m / 2;
        let (c1, c2) = c.split_at_row_mut(h);
        let (a1, a2) = a.split_at_row(h);
        rayon::join(|| product(c1, a1, b), || product(c2, a2, b));
    }
}

/// Buffers of the training step kept from one step to the next, so that a step neither asks
/// the allocator for its large buffers nor zeroes them.
///
/// Why: `vec![0.0; n]` writes every value before a product or a copy overwrites it; with the
/// weight gradients (now in `backprop::Workspace`) that was 3% of a paper step's cycles
/// (`perf`). The pool holds layer outputs, the copies a backward pass keeps, and input
/// gradients. A buffer taken from here holds whatever its last user left, so it is only for
/// outputs that are written in full (a product's `c`, a copy), or scratch whose unwritten
/// values are never read (`Patches::unfold_with`'s cells past an image's edge). Buffers are
/// matched by length: a
/// step's shapes repeat, so each step finds the buffers the one before gave back.
#[derive(Debug, Clone, Default)]
pub struct BufferPool {
    free: Vec<Vec<f32>>,
}

impl BufferPool {
    /// At most this many buffers are kept, and at most `PER_LENGTH` of one length; more are
    /// dropped. Callers give buffers they did not take (a batch of images from the data), so a
    /// pool could otherwise fill with buffers of a length it never hands out. A paper step
    /// holds at most four of one length at a time (G's widest layer in its backward pass:
    /// three kept by the forward pass and the input gradient); a DCGAN step up to eight (the
    /// 128 x 7 x 7 maps, each layer of G and D making them the same size): with four, it
    /// asked the allocator for 10 MB a step, which the kernel zeroed page by page (perf).
    const CAPACITY: usize = 48;
    const PER_LENGTH: usize = 8;

    /// A buffer of `len` values: a kept one of that length (old contents), or a new one of
    /// zeros.
    pub fn take(&mut self, len: usize) -> Vec<f32> {
        match self.free.iter().position(|b| b.len() == len) {
            Some(i) => self.free.swap_remove(i),
            None => vec![0.0; len],
        }
    }

    /// A copy of `x` in a kept buffer.
    pub fn copy_of(&mut self, x: &[f32]) -> Vec<f32> {
        let mut copy = self.take(x.len());
        copy.copy_from_slice(x);
        copy
    }

    /// Fills every kept buffer with NaN: a test that a step's result does not depend on what
    /// earlier steps left in its buffers.
    #[cfg(test)]
    pub(crate) fn poison(&mut self) {
        self.free.iter_mut().for_each(|b| b.fill(f32::NAN));
    }

    /// Keeps `buffer` for a later [`BufferPool::take`] of its length.
    pub fn give(&mut self, buffer: Vec<f32>) {
        let same_length = self.free.iter().filter(|b| b.len() == buffer.len()).count();
        if self.free.len() < Self::CAPACITY && same_length < Self::PER_LENGTH && !buffer.is_empty()
        {
            self.free.push(buffer);
        }
    }
}

/// `x` (`rows x cols`, row-major) transposed into a new `cols x rows` row-major buffer, a tile
/// at a time so that both sides stay in cache.
///
/// Why: in a weight gradient `x^T g` with `x` read in place, faer's kernels stride through `x`
/// by whole rows. Beyond a few hundred rows that costs more than a transpose first (see
/// `backprop`'s `weight_gradient`; BENCHMARKS.md has the figures).
pub fn transpose(x: &[f32], rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0.0; x.len()];
    transpose_into(x, rows, cols, &mut out);
    out
}

/// [`transpose`] into `out` (every value overwritten), split across threads when large.
pub fn transpose_into(x: &[f32], rows: usize, cols: usize, out: &mut [f32]) {
    assert_eq!(x.len(), rows * cols, "matrix buffer size");
    assert_eq!(out.len(), x.len(), "output buffer size");
    const TILE: usize = 16;
    // One task per TILE output rows (TILE columns of `x`), walked a tile of `x`'s rows at a time.
    let block = |(b, out_rows): (usize, &mut [f32])| {
        let c0 = b * TILE;
        for r0 in (0..rows).step_by(TILE) {
            let r1 = (r0 + TILE).min(rows);
            for (dc, column) in out_rows.chunks_mut(rows).enumerate() {
                let c = c0 + dc;
                for (o, r) in column[r0..r1].iter_mut().zip(r0..r1) {
                    *o = x[r * cols + c];
                }
            }
        }
    };
    if rows == 0 || cols == 0 {
        return;
    }
    if x.len() < SPLIT_ELEMENTS {
        out.chunks_mut(TILE * rows).enumerate().for_each(block);
    } else {
        out.par_chunks_mut(TILE * rows).enumerate().for_each(block);
    }
}

/// Runs `f` on one of rayon's worker threads, the caller waiting: for loops of many small
/// parallel regions, such as the training step's.
///
/// Why: `rayon::join` called from outside the pool hands its work to the pool and parks the
/// caller until it is done, so every product and element-wise pass of a step would wake two
/// threads through the OS scheduler. Called from a worker, it runs one half on that thread while
/// the other worker takes the rest, with far fewer context switches (BENCHMARKS.md has the
/// figures). Where the work runs does not change its arithmetic. Called from a worker already
/// (e.g. inside `ThreadPool::install`), `f` runs right there.
pub fn on_worker<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    // rayon documents it: "the closure given to `scope()` executes in the Rayon thread pool".
    // The caller's tracing span goes along, so that events keep their run and epoch.
    let span = tracing::Span::current();
    rayon::scope(|_| span.in_scope(f))
}

/// Applies `f(row_index, row)` to each `cols`-wide row of `x`, split across threads when large.
pub fn for_rows(x: &mut [f32], cols: usize, f: impl Fn(usize, &mut [f32]) + Sync + Send) {
    if x.len() < SPLIT_ELEMENTS {
        x.chunks_mut(cols).enumerate().for_each(|(i, r)| f(i, r));
    } else {
        x.par_chunks_mut(cols)
            .enumerate()
            .for_each(|(i, r)| f(i, r));
    }
}

/// Applies `f` to each element in place, split across threads when large.
pub fn map_in_place(x: &mut [f32], f: impl Fn(&mut f32) + Sync + Send) {
    if x.len() < SPLIT_ELEMENTS {
        x.iter_mut().for_each(f);
    } else {
        x.par_chunks_mut(4096)
            .for_each(|xs| xs.iter_mut().for_each(&f));
    }
}

/// Applies `f(a, b)` element by element, `a` mutable, split across threads when large.
pub fn zip_map(a: &mut [f32], b: &[f32], f: impl Fn(&mut f32, f32) + Sync + Send) {
    assert_eq!(a.len(), b.len());
    if a.len() < SPLIT_ELEMENTS {
        a.iter_mut().zip(b).for_each(|(x, &y)| f(x, y));
    } else {
        a.par_chunks_mut(4096)
            .zip(b.par_chunks(4096))
            .for_each(|(xs, ys)| xs.iter_mut().zip(ys).for_each(|(x, &y)| f(x, y)));
    }
}

/// Column sums of a `rows x cols` matrix, summed over rows in order (one thread per column
/// block, so the order does not depend on the thread count).
pub fn column_sums(x: &[f32], cols: usize, out: &mut [f32]) {
    column_reduce(x, cols, out, |acc, v| acc + v);
}

/// `out[j] = fold over rows of f(acc, x[i][j])`, starting from 0.
pub fn column_reduce(
    x: &[f32],
    cols: usize,
    out: &mut [f32],
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) {
    assert_eq!(out.len(), cols);
    let block = 64;
    let body = |(b, chunk): (usize, &mut [f32])| {
        chunk.fill(0.0);
        let (start, width) = (b * block, chunk.len());
        for row in x.chunks_exact(cols) {
            for (acc, &v) in chunk.iter_mut().zip(&row[start..start + width]) {
                *acc = f(*acc, v);
            }
        }
    };
    if x.len() < SPLIT_ELEMENTS {
        out.chunks_mut(block).enumerate().for_each(body);
    } else {
        out.par_chunks_mut(block).enumerate().for_each(body);
    }
}

/// Per channel of a batch of channel-major images (each `channels` planes of `positions`
/// values), the sum of `f(a, b)` over every image's plane, `a` and `b` read element by element.
/// Each plane is summed in 16 lanes (its last `positions % 16` values apart), images in order,
/// so the result is the same whatever the thread count; channels are split across threads.
///
/// Why not columns of a transposed batch: regrouping an image batch into rows of channels and
/// back cost batch-norm more than its arithmetic (perf, `configs/dcgan.toml`'s step).
pub fn plane_sums(
    a: &[f32],
    b: &[f32],
    channels: usize,
    positions: usize,
    f: impl Fn(f32, f32) -> f32 + Sync + Send,
) -> Vec<f32> {
    const LANES: usize = 16;
    assert_eq!(a.len(), b.len());
    let image = channels * positions;
    debug_assert_eq!(a.len() % image.max(1), 0, "whole images");
    let channel = |c: usize| -> f32 {
        let (mut lanes, mut tail) = ([0.0f32; LANES], 0.0f32);
        for start in (c * positions..a.len()).step_by(image) {
            let (pa, pb) = (&a[start..start + positions], &b[start..start + positions]);
            let (mut ca, mut cb) = (pa.chunks_exact(LANES), pb.chunks_exact(LANES));
            for (xa, xb) in (&mut ca).zip(&mut cb) {
                for ((lane, &x), &y) in lanes.iter_mut().zip(xa).zip(xb) {
                    *lane += f(x, y);
                }
            }
            for (&x, &y) in ca.remainder().iter().zip(cb.remainder()) {
                tail += f(x, y);
            }
        }
        lanes.iter().sum::<f32>() + tail
    };
    if a.len() < SPLIT_ELEMENTS {
        (0..channels).map(channel).collect()
    } else {
        (0..channels).into_par_iter().map(channel).collect()
    }
}

/// Applies `f(image_index, channel, plane)` to each plane of a batch of channel-major images,
/// split across threads by image when large.
pub fn for_planes(
    x: &mut [f32],
    channels: usize,
    positions: usize,
    f: impl Fn(usize, usize, &mut [f32]) + Sync + Send,
) {
    for_rows(x, channels * positions, |i, image| {
        for (c, plane) in image.chunks_exact_mut(positions).enumerate() {
            f(i, c, plane)
        }
    });
}

/// Adam on plain buffers, with dfdx's `adam_kernel` arithmetic (same operations, same order),
/// split across threads.
#[allow(clippy::too_many_arguments)]
pub fn adam(
    t: i32,
    lr: f32,
    betas: [f32; 2],
    eps: f32,
    param: &mut [f32],
    m: &mut [f32],
    v: &mut [f32],
    grad: &[f32],
) {
    let (c1, c2) = (
        (1.0 - betas[0].powi(t)).recip(),
        (1.0 - betas[1].powi(t)).recip(),
    );
    type Chunk<'a> = (((&'a mut [f32], &'a mut [f32]), &'a mut [f32]), &'a [f32]);
    let step = |(((p, m), v), g): Chunk<'_>| {
        for (((p, m), v), &g) in p.iter_mut().zip(m).zip(v).zip(g) {
            *m = *m * betas[0] + g * (1.0 - betas[0]);
            *v = *v * betas[1] + g.powi(2) * (1.0 - betas[1]);
            let m_hat = *m * c1;
            let v_hat = *v * c2;
            *p -= lr * m_hat / (v_hat.sqrt() + eps);
        }
    };
    const CHUNK: usize = 8192;
    if param.len() < SPLIT_ELEMENTS {
        step((((param, m), v), grad));
    } else {
        param
            .par_chunks_mut(CHUNK)
            .zip(m.par_chunks_mut(CHUNK))
            .zip(v.par_chunks_mut(CHUNK))
            .zip(grad.par_chunks(CHUNK))
            .for_each(step);
    }
}

/// Asserts that two buffers agree to `tol`, relative to their magnitude (tests of the kernels
/// and of the steps built on them).
#[cfg(test)]
pub(crate) fn assert_close(a: &[f32], b: &[f32], tol: f32, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: lengths");
    for (i, (x, y)) in a.iter().zip(b).enumerate() {
        assert!(
            (x - y).abs() <= tol * (1.0 + x.abs().max(y.abs())),
            "{what}: element {i}: {x} vs {y}"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::{adam, column_sums, matmul, matmul_add, plane_sums, Mat};
    use crate::model::Matrix;
    use dfdx::prelude::*;

    fn close(a: &[f32], b: &[f32], tol: f32) {
        super::assert_close(a, b, tol, "product");
    }

    /// Every orientation the training step uses, large enough to be split, against dfdx.
    #[test]
    fn matmul_matches_dfdx_in_every_orientation() {
        let dev = Cpu::seed_from_u64(3);
        for (m, k, n) in [(3, 4, 5), (100, 300, 200), (200, 250, 40), (1, 7, 1)] {
            let a: Matrix = dev.sample_normal_like(&(m, k));
            let b: Matrix = dev.sample_normal_like(&(k, n));
            let expect = a.clone().matmul(b.clone()).as_vec();
            let (av, bv) = (a.as_vec(), b.as_vec());
            let mut c = vec![f32::NAN; m * n];
            matmul(Mat::new(&av, m, k), Mat::new(&bv, k, n), &mut c);
            close(&c, &expect, 1e-5);
            let mut ones = vec![1.0; m * n];
            matmul_add(Mat::new(&av, m, k), Mat::new(&bv, k, n), &mut ones);
            let plus_one: Vec<f32> = expect.iter().map(|v| v + 1.0).collect();
            close(&ones, &plus_one, 1e-5);
            // A stored transposed: a^T is [k, m] row-major.
            let at = a.clone().permute::<_, Axes2<1, 0>>().as_vec();
            matmul(Mat::new(&at, k, m).t(), Mat::new(&bv, k, n), &mut c);
            close(&c, &expect, 1e-5);
            let bt = b.clone().permute::<_, Axes2<1, 0>>().as_vec();
            matmul(Mat::new(&av, m, k), Mat::new(&bt, n, k).t(), &mut c);
            close(&c, &expect, 1e-5);
        }
    }

    /// A split product gives the same bits as an unsplit one, so results do not depend on
    /// the number of threads.
    #[test]
    fn products_do_not_depend_on_the_thread_count() {
        let dev = Cpu::seed_from_u64(5);
        for (m, k, n) in [
            (100, 1024, 784),
            (200, 784, 1024),
            (1024, 100, 512),
            (100, 256, 100),
            (1024, 1024, 784), // batch 1024's widest
            (784, 2048, 1024), // a weight gradient at batch 1024, D's rows
        ] {
            let a: Vec<f32> = dev.sample_normal_like(&(m, k)).as_vec();
            let b: Vec<f32> = dev.sample_normal_like(&(k, n)).as_vec();
            let run = |threads: usize| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut c = vec![0.0; m * n];
                pool.install(|| matmul(Mat::new(&a, m, k), Mat::new(&b, k, n), &mut c));
                // A weight gradient's orientation: the left operand read transposed in place.
                let mut c_t = vec![0.0; k * n];
                pool.install(|| matmul(Mat::new(&a, m, k).t(), Mat::new(&c, m, n), &mut c_t));
                (c, c_t)
            };
            assert!(run(1) == run(2), "{m}x{k}x{n}");
        }
    }

    #[test]
    fn the_pool_hands_back_kept_buffers_by_length_and_keeps_few_of_each() {
        let mut pool = super::BufferPool::default();
        let kept = vec![7.0; 10];
        let address = kept.as_ptr();
        pool.give(kept);
        assert_eq!(
            pool.take(11),
            vec![0.0; 11],
            "no buffer of that length: zeros"
        );
        let again = pool.take(10);
        assert_eq!(again.as_ptr(), address, "the kept buffer itself");
        assert_eq!(again, vec![7.0; 10], "with its old contents");
        for _ in 0..10 {
            pool.give(vec![1.0; 5]);
        }
        let held = std::iter::from_fn(|| Some(pool.take(5)))
            .take_while(|b| b[0] == 1.0)
            .count();
        assert_eq!(held, super::BufferPool::PER_LENGTH);
    }

    #[test]
    fn transpose_swaps_rows_and_columns() {
        // Sizes that are not multiples of the tile; the second is split across threads.
        for (rows, cols) in [(37, 21), (203, 785)] {
            let x: Vec<f32> = (0..rows * cols).map(|i| i as f32).collect();
            let t = super::transpose(&x, rows, cols);
            for r in 0..rows {
                for c in 0..cols {
                    assert_eq!(t[c * rows + r], x[r * cols + c], "({r}, {c})");
                }
            }
        }
    }

    #[test]
    fn on_worker_runs_on_a_pool_thread() {
        assert_eq!(
            rayon::current_thread_index(),
            None,
            "tests run outside the pool"
        );
        assert!(super::on_worker(rayon::current_thread_index).is_some());
    }

    #[test]
    fn adam_matches_dfdx_bit_for_bit() {
        let dev = Cpu::seed_from_u64(4);
        let n = 40_000; // large enough to be split across threads
        let mut p: Tensor<(usize,), f32, Cpu> = dev.sample_normal_like(&(n,));
        let g: Vec<f32> = dev.sample_normal_like(&(n,)).as_vec();
        let cfg = AdamConfig {
            lr: 2e-4,
            betas: [0.5, 0.999],
            eps: 1e-8,
            weight_decay: None,
        };
        // dfdx's kernel takes its device's buffers: borrow them from gradient stores.
        let (mut s1, mut s2, mut s3) = (
            Gradients::<f32, Cpu>::leaky(),
            Gradients::leaky(),
            Gradients::leaky(),
        );
        let m1 = s1.get_or_alloc_mut(&p).unwrap();
        let v1 = s2.get_or_alloc_mut(&p).unwrap();
        let g1 = s3.get_or_alloc_mut(&p).unwrap();
        g1.copy_from_slice(&g);
        let (mut p2, mut m2, mut v2) = (p.as_vec(), vec![0.0; n], vec![0.0; n]);
        for t in 1..=3 {
            cfg.try_update(t, &mut p, m1, v1, g1).unwrap();
            adam(t, 2e-4, [0.5, 0.999], 1e-8, &mut p2, &mut m2, &mut v2, &g);
        }
        assert_eq!(p.as_vec(), p2);
        assert_eq!((m1.to_vec(), v1.to_vec()), (m2, v2));
    }

    #[test]
    fn column_sums_add_each_column() {
        let x: Vec<f32> = (0..300 * 70).map(|i| (i % 7) as f32).collect();
        let mut out = vec![0.0; 70];
        column_sums(&x, 70, &mut out);
        for (j, s) in out.iter().enumerate() {
            let direct: f32 = (0..300).map(|i| x[i * 70 + j]).sum();
            assert_eq!(*s, direct);
        }
    }

    /// Per-channel sums over every image's plane, against an f64 sum of the definition, on a
    /// batch large enough to split across threads, with planes of 49 values (three lanes' worth
    /// and a remainder); and the same bits on one thread as on two.
    #[test]
    fn plane_sums_add_each_channel_over_every_image() {
        let (rows, channels, positions) = (30, 12, 49);
        let x: Vec<f32> = (0..rows * channels * positions)
            .map(|i| ((i * 37 % 101) as f32 - 50.0) / 7.0)
            .collect();
        let y: Vec<f32> = x.iter().map(|v| v.sin()).collect();
        let sums = plane_sums(&x, &y, channels, positions, |a, b| a * b);
        for (c, got) in sums.iter().enumerate() {
            let want: f64 = (0..rows)
                .flat_map(|b| (0..positions).map(move |p| (b * channels + c) * positions + p))
                .map(|i| x[i] as f64 * y[i] as f64)
                .sum();
            assert!(
                (*got as f64 - want).abs() < 1e-3,
                "channel {c}: {got} vs {want}"
            );
        }
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap()
            .install(|| plane_sums(&x, &y, channels, positions, |a, b| a * b));
        assert_eq!(one_thread, sums);
    }
}

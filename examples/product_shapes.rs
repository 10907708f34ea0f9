//! Times each matrix product of the paper config's step alone, at a given batch, in the
//! orientations the step uses: `cargo run --release --example product_shapes -- 1024`.
//!
//! Why: `gan-run bench` gives the whole step's product rate; this says which product loses it
//! (BENCHMARKS.md's scaling section used it to find the slow weight-gradient orientation).
use gan_run::model::kernels::{matmul, matmul_one_thread, on_worker, transpose, Mat};
use std::time::Instant;

/// GFLOP/s of `f`, best of seven after a warm-up.
fn gflops(f: &mut dyn FnMut(), flops: f64) -> f64 {
    f();
    let best = (0..7)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::MAX, f64::min);
    flops / best / 1e9
}

fn main() {
    let batch: usize = std::env::args()
        .nth(1)
        .map_or(100, |s| s.parse().expect("the batch size, a number"));
    println!("GFLOP/s; 'both' splits the product over two threads, 'one' runs it on one");
    println!(
        "rows x in -> out: forward both | dW both, one, one with x transposed, both with x \
         transposed | dX both, one"
    );
    on_worker(|| {
        let paper_layers = [
            (100, 256),
            (256, 512),
            (512, 1024),
            (1024, 784),
            (784, 1024),
            (1024, 512),
            (512, 256),
        ];
        for (i, o) in paper_layers {
            // D sees the real and generated batches together.
            for rows in [batch, 2 * batch] {
                let x: Vec<f32> = (0..rows * i).map(|k| (k % 13) as f32 * 0.01).collect();
                let w: Vec<f32> = (0..i * o).map(|k| (k % 7) as f32 * 0.01).collect();
                let g: Vec<f32> = (0..rows * o).map(|k| (k % 5) as f32 * 0.01).collect();
                let (mut y, mut dw, mut dx) =
                    (vec![0.0; rows * o], vec![0.0; i * o], vec![0.0; rows * i]);
                let fl = 2.0 * (rows * i * o) as f64;
                let (xm, wm, gm) = (
                    Mat::new(&x, rows, i),
                    Mat::new(&w, i, o),
                    Mat::new(&g, rows, o),
                );
                let fwd = gflops(&mut || matmul(xm, wm, &mut y), fl);
                let dw2 = gflops(&mut || matmul(xm.t(), gm, &mut dw), fl);
                let dw1 = gflops(&mut || matmul_one_thread(xm.t(), gm, &mut dw), fl);
                let dwt = gflops(
                    &mut || {
                        let xt = transpose(&x, rows, i);
                        matmul_one_thread(Mat::new(&xt, i, rows), gm, &mut dw)
                    },
                    fl,
                );
                let dwt2 = gflops(
                    &mut || {
                        let xt = transpose(&x, rows, i);
                        matmul(Mat::new(&xt, i, rows), gm, &mut dw)
                    },
                    fl,
                );
                let dx2 = gflops(&mut || matmul(gm, wm.t(), &mut dx), fl);
                let dx1 = gflops(&mut || matmul_one_thread(gm, wm.t(), &mut dx), fl);
                println!(
                    "{rows:5} x {i:4} -> {o:4}: {fwd:6.1} | {dw2:6.1} {dw1:6.1} {dwt:6.1} {dwt2:6.1} | {dx2:6.1} {dx1:6.1}"
                );
            }
        }
    });
}

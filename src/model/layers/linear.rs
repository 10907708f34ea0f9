//! The fully connected layer `y = x W + b`, `W` stored `[in, out]`.

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::{BackwardPass, FastLayer, ForwardPass, LayerKind, ReferenceLayer, RowCoupling, Saved};
use crate::model::init::InitConfig;
use crate::model::kernels::{column_sums, for_rows, matmul, matmul_add, transpose_into, Mat};
use crate::model::{Matrix, Mode, TensorVisitor, Vector};

/// `{type = "linear", out = 256}`, optionally with `in`, checked against what reaches it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LinearSpec {
    /// Expected input width: optional, checked against the previous layer when given.
    #[serde(rename = "in", default, skip_serializing_if = "Option::is_none")]
    pub input: Option<usize>,
    /// Output width.
    pub out: usize,
}

impl LayerKind for LinearSpec {
    type Layer = Linear;

    fn check(&self) -> Result<(), (&'static str, String)> {
        match self.out {
            0 => Err(("out", "must be at least 1".into())),
            _ => Ok(()),
        }
    }

    fn output_width(&self, input: usize) -> Result<usize, String> {
        match self.input {
            Some(declared) if declared != input => Err(format!(
                "this linear layer declares in = {declared}, but {input} features reach it"
            )),
            _ => Ok(self.out),
        }
    }

    fn sizes(&self, input: f64, output: f64) -> (f64, f64) {
        (input * output + output, 0.0)
    }

    fn build(&self, input: usize, init: &InitConfig, dev: &Cpu, rng: &mut ChaCha8Rng) -> Linear {
        let out = self.out;
        Linear {
            weight: dev.tensor_from_vec(init.weights.sample(input * out, rng), (input, out)),
            bias: dev.tensor_from_vec(init.biases.sample(out, rng), (out,)),
        }
    }
}

/// A linear layer's tensors.
#[derive(Debug, Clone)]
pub struct Linear {
    /// `[in, out]`
    pub weight: Matrix,
    /// `[out]`
    pub bias: Vector,
}

impl ReferenceLayer for Linear {
    type Fast = FastLinear;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        let (batch, out) = (x.shape().0, self.weight.shape().1);
        // [batch, in] x [in, out] + [out] -> [batch, out]
        x.matmul(self.weight.clone())
            + self
                .bias
                .clone()
                .broadcast_like::<_, Axis<0>>(&(batch, out))
    }

    fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        v.visit("weight", &mut self.weight, true);
        v.visit("bias", &mut self.bias, true);
    }

    fn output_width(&self, _: usize) -> usize {
        self.weight.shape().1
    }

    fn macs_per_row(&self) -> f64 {
        (self.weight.shape().0 * self.weight.shape().1) as f64
    }

    fn fast(&self) -> FastLinear {
        let (input, out) = *self.weight.shape();
        FastLinear { input, out }
    }
}

/// A linear layer's widths on the fast path; its tensors are `[weight, bias]`.
#[derive(Debug, Clone)]
pub struct FastLinear {
    input: usize,
    out: usize,
}

impl FastLayer for FastLinear {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let [weight, bias] = tensors else {
            unreachable!("a linear layer visits two tensors")
        };
        let rows = pass.rows;
        let mut y = pass.pool.take(rows * self.out);
        let b = &*bias;
        for_rows(&mut y, self.out, |_, r| r.copy_from_slice(b));
        matmul_add(
            Mat::new(x, rows, self.input),
            Mat::new(weight, self.input, self.out),
            &mut y,
        );
        Saved::Input(std::mem::replace(x, y))
    }

    fn backward(
        &mut self,
        tensors: &mut [Vec<f32>],
        saved: Saved,
        g: &mut Vec<f32>,
        pass: &mut BackwardPass<'_, '_>,
    ) -> Option<Vec<f32>> {
        let Saved::Input(x) = saved else {
            unreachable!("a linear layer keeps its input")
        };
        let [weight, bias] = tensors else {
            unreachable!("a linear layer visits two tensors")
        };
        let (rows, input, out) = (pass.rows, self.input, self.out);
        // Both products split over both threads, one after the other. In the step that measured
        // the same as one thread each side by side, with one way instead of four.
        let mut dw = std::mem::take(pass.weight_grad);
        let db = pass.param_grads.then(|| {
            weight_gradient(
                &x,
                rows,
                input,
                g,
                out,
                room(&mut dw, input * out),
                pass.transposed_input,
            );
            let mut db = vec![0.0; out];
            column_sums(g, out, &mut db);
            db
        });
        // Computed from the weights before their update.
        if pass.propagate {
            let mut dx = pass.pool.take(rows * input);
            matmul(
                Mat::new(g, rows, out),
                Mat::new(weight, input, out).t(),
                &mut dx,
            );
            pass.pool.give(std::mem::replace(g, dx));
        }
        if let Some(db) = db {
            pass.hand_over(0, weight, &dw[..input * out]);
            pass.hand_over(1, bias, &db);
        }
        *pass.weight_grad = dw;
        Some(x)
    }

    fn row_coupling(&self) -> RowCoupling {
        RowCoupling::None
    }

    fn keeps_its_input(&self) -> bool {
        true
    }
}

/// `dw = x^T g` for a layer input `x` (`rows x input`) and output gradient `g` (`rows x out`),
/// over both threads, with `x` transposed first.
///
/// Why transposed: faer packs the left operand but reads the right one in place, and `x^T` read
/// in place strides by whole rows: at batch 1024 the transposed product runs at 93-113 GFLOP/s
/// against 72-97 in place (`examples/product_shapes.rs`). At batch 100 reading `x^T` in place
/// was faster alone (105-128 against 95-118) but no faster in the step, and it sums in another
/// order: the paper config's results would change in their last bits from earlier versions',
/// so the transposed product is kept for every batch.
fn weight_gradient(
    x: &[f32],
    rows: usize,
    input: usize,
    g: &[f32],
    out: usize,
    dw: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let x_t = room(scratch, rows * input);
    transpose_into(x, rows, input, x_t);
    matmul(Mat::new(x_t, input, rows), Mat::new(g, rows, out), dw);
}

/// The first `len` values of `buffer`, grown (with zeros) when shorter: scratch space whose
/// old contents the caller overwrites.
fn room(buffer: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buffer.len() < len {
        buffer.resize(len, 0.0);
    }
    &mut buffer[..len]
}

#[cfg(test)]
mod tests {
    use super::super::testing::fast_matches_tape;
    use super::*;

    #[test]
    fn declared_input_is_checked() {
        let spec = LinearSpec {
            input: Some(4),
            out: 1,
        };
        assert_eq!(spec.output_width(4), Ok(1));
        let message = spec.output_width(3).unwrap_err();
        assert!(
            message.contains("in = 4") && message.contains('3'),
            "{message}"
        );
    }

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "linear", out = 4}"#, true);
    }
}

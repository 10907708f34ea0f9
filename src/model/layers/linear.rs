//! The fully connected layer `y = x W + b`, `W` stored `[in, out]`, optionally spectrally
//! normalised (`spectral`: `W / sigma`).

use dfdx::prelude::*;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};

use super::spectral::{power_iteration, sigma, through_sigma, Spectral};
use super::{
    BackwardPass, FastLayer, FeatureShape, ForwardPass, LayerKind, PenaltyPass, ReferenceLayer,
    RowCoupling, Saved,
};
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
    /// Divide the weights by their spectral norm (one power iteration per step). Off, it is
    /// left out of the text the fingerprint hashes (`config::fingerprint`), so that runs from
    /// before it existed resume.
    #[serde(default)]
    pub spectral_norm: bool,
}

impl LayerKind for LinearSpec {
    type Layer = Linear;

    fn check(&self) -> Result<(), (&'static str, String)> {
        match self.out {
            0 => Err(("out", "must be at least 1".into())),
            _ => Ok(()),
        }
    }

    fn output_shape(&self, input: FeatureShape) -> Result<FeatureShape, String> {
        let input = input.expect_flat("a linear layer")?;
        match self.input {
            Some(declared) if declared != input => Err(format!(
                "this linear layer declares in = {declared}, but {input} features reach it"
            )),
            _ => Ok(FeatureShape::Flat(self.out)),
        }
    }

    fn sizes(&self, input: FeatureShape, output: FeatureShape) -> (f64, f64) {
        let (input, output) = (input.len() as f64, output.len() as f64);
        let singular_vectors = if self.spectral_norm {
            input + output
        } else {
            0.0
        };
        (input * output + output, singular_vectors)
    }

    fn build(
        &self,
        input: FeatureShape,
        init: &InitConfig,
        dev: &Cpu,
        rng: &mut ChaCha8Rng,
    ) -> Linear {
        let input = input.len();
        let out = self.out;
        let weight = init.weights.sample(input * out, rng);
        let spectral = self
            .spectral_norm
            .then(|| Spectral::new(&weight, out, dev, rng));
        Linear {
            weight: dev.tensor_from_vec(weight, (input, out)),
            bias: dev.tensor_from_vec(init.biases.sample(out, rng), (out,)),
            spectral,
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
    /// Spectral norm's singular vectors, when the layer has it.
    pub spectral: Option<Spectral>,
}

impl Linear {
    /// Spectral norm's estimate of `W`'s largest singular value, `sigma = v^T W u` from the
    /// kept `u` and `v` (what the next forward pass divides by, before its power iteration);
    /// `None` without spectral norm.
    pub fn sigma(&self) -> Option<f64> {
        Some(self.spectral.as_ref()?.sigma(&self.weight))
    }

    /// The weight the forward pass multiplies by: `W`, or `W / sigma` with spectral norm, in
    /// the forward pass's arithmetic (what an export hands to other tools).
    pub fn effective_weight(&self) -> Matrix {
        match &self.spectral {
            None => self.weight.clone(),
            Some(spectral) => spectral.divide::<NoneTape>(&self.weight),
        }
    }
}

impl ReferenceLayer for Linear {
    type Fast = FastLinear;

    fn forward<T: Tape<f32, Cpu> + Merge<NoneTape>>(
        &mut self,
        x: Matrix<T>,
        _: &mut Mode<'_>,
    ) -> Matrix<T> {
        let (batch, out) = (x.shape().0, self.weight.shape().1);
        let bias = self
            .bias
            .clone()
            .broadcast_like::<_, Axis<0>>(&(batch, out));
        let Some(spectral) = &self.spectral else {
            // [batch, in] x [in, out] + [out] -> [batch, out]
            return x.matmul(self.weight.clone()) + bias;
        };
        let weight = spectral.divide::<T>(&self.weight);
        x.matmul(weight) + bias
    }

    fn visit<V: TensorVisitor>(&mut self, v: &mut V) {
        v.visit("weight", &mut self.weight, true);
        v.visit("bias", &mut self.bias, true);
        if let Some(spectral) = &mut self.spectral {
            v.visit("spectral_u", &mut spectral.u, false);
            v.visit("spectral_v", &mut spectral.v, false);
        }
    }

    fn output_width(&self, _: usize) -> usize {
        self.weight.shape().1
    }

    fn macs_per_row(&self) -> f64 {
        (self.weight.shape().0 * self.weight.shape().1) as f64
    }

    fn fast(&self) -> FastLinear {
        let (input, out) = *self.weight.shape();
        FastLinear {
            input,
            out,
            spectral: self.spectral.is_some(),
        }
    }

    fn spectral_sigma(&self) -> Option<f64> {
        self.sigma()
    }

    fn start_step(&mut self) {
        if let Some(spectral) = &mut self.spectral {
            spectral.start_step(&self.weight);
        }
    }
}

/// A linear layer's widths on the fast path; its tensors are `[weight, bias]`, then
/// `[u, v]` with spectral norm.
#[derive(Debug, Clone)]
pub struct FastLinear {
    input: usize,
    out: usize,
    spectral: bool,
}

impl FastLinear {
    /// `1 / sigma` with spectral norm, else 1.
    fn inverse_sigma(&self, tensors: &[Vec<f32>]) -> f32 {
        match (self.spectral, tensors) {
            (true, [weight, _, u, v]) => 1.0 / sigma(weight, self.out, u, v),
            _ => 1.0,
        }
    }
}

impl FastLayer for FastLinear {
    fn forward(
        &mut self,
        tensors: &mut [Vec<f32>],
        x: &mut Vec<f32>,
        pass: &mut ForwardPass<'_>,
    ) -> Saved {
        let rows = pass.rows;
        let mut y = pass.pool.take(rows * self.out);
        let (weight, b) = (&tensors[0], &tensors[1]);
        let (x_mat, w_mat) = (
            Mat::new(x, rows, self.input),
            Mat::new(weight, self.input, self.out),
        );
        if self.spectral {
            // (x W) / sigma + b: the product scaled, rather than a scaled copy of W.
            let scale = self.inverse_sigma(tensors);
            matmul(x_mat, w_mat, &mut y);
            for_rows(&mut y, self.out, |_, r| {
                r.iter_mut().zip(b).for_each(|(y, b)| *y = *y * scale + b)
            });
        } else {
            for_rows(&mut y, self.out, |_, r| r.copy_from_slice(b));
            matmul_add(x_mat, w_mat, &mut y);
        }
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
        let scale = self.inverse_sigma(tensors);
        let (params, spectral) = tensors.split_at_mut(2);
        let [weight, bias] = params else {
            unreachable!("a linear layer visits its weight and bias first")
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
            if let [u, v] = spectral {
                through_sigma(&mut dw[..input * out], weight, scale, u, v);
            }
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
            if self.spectral {
                for_rows(&mut dx, input, |_, r| {
                    r.iter_mut().for_each(|d| *d *= scale)
                });
            }
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

    fn start_step(&mut self, tensors: &mut [Vec<f32>]) {
        if let [weight, _, u, v] = tensors {
            power_iteration(weight, self.out, u, v);
        }
    }

    /// The first backward pass made `g_in = g_out W^T / sigma`: the penalty's gradient with
    /// respect to `W / sigma` is `adjoint^T g_out` (then through sigma as for any weight
    /// gradient), none reaches the bias, and the adjoint moves on as `adjoint W / sigma`.
    fn penalty_pass(&self, tensors: &[Vec<f32>], pass: PenaltyPass<'_>) -> bool {
        let PenaltyPass {
            rows,
            out_grad,
            adjoint,
            grads,
            ..
        } = pass;
        let (input, out) = (self.input, self.out);
        let scale = self.inverse_sigma(tensors);
        let weight = &tensors[0];
        let mut dw = vec![0.0; input * out];
        matmul(
            Mat::new(adjoint, rows, input).t(),
            Mat::new(out_grad, rows, out),
            &mut dw,
        );
        if let [_, _, u, v] = tensors {
            through_sigma(&mut dw, weight, scale, u, v);
        }
        grads[0].iter_mut().zip(&dw).for_each(|(g, d)| *g += d);
        let mut next = vec![0.0; rows * out];
        matmul(
            Mat::new(adjoint, rows, input),
            Mat::new(weight, input, out),
            &mut next,
        );
        if self.spectral {
            next.iter_mut().for_each(|d| *d *= scale);
        }
        *adjoint = next;
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
            spectral_norm: false,
        };
        let flat = FeatureShape::Flat;
        assert_eq!(spec.output_shape(flat(4)), Ok(flat(1)));
        let message = spec.output_shape(flat(3)).unwrap_err();
        assert!(
            message.contains("in = 4") && message.contains('3'),
            "{message}"
        );
        let image = FeatureShape::Image {
            channels: 1,
            height: 2,
            width: 2,
        };
        let message = spec.output_shape(image).unwrap_err();
        assert!(message.contains("flatten"), "{message}");
    }

    #[test]
    fn gradients_match_the_tape() {
        fast_matches_tape(r#"{type = "linear", out = 4}"#, true);
        fast_matches_tape(r#"{type = "linear", out = 4, spectral_norm = true}"#, true);
        fast_matches_tape(r#"{type = "linear", out = 4, spectral_norm = true}"#, false);
    }

    /// The effective weight, as a plain layer's weight, gives the spectrally normalised layer's
    /// outputs bit for bit: what an export relies on.
    #[test]
    fn the_effective_weight_is_the_normalised_forward_pass() {
        use rand::SeedableRng;
        let dev = Cpu::default();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let spec = LinearSpec {
            input: None,
            out: 5,
            spectral_norm: true,
        };
        let mut layer = spec.build(
            FeatureShape::Flat(7),
            &crate::model::init::InitConfig::default(),
            &dev,
            &mut rng,
        );
        let x: Matrix = dev.sample_normal_like(&(4, 7));
        let normalised = layer.forward(x.clone(), &mut Mode::Eval).as_vec();
        let mut plain = layer.clone();
        plain.weight = layer.effective_weight();
        plain.spectral = None;
        assert_ne!(plain.weight.as_vec(), layer.weight.as_vec());
        assert_eq!(plain.forward(x, &mut Mode::Eval).as_vec(), normalised);
    }

    /// Power iterations converge to the top singular value: for a matrix with singular values
    /// 3 and 1, sigma reaches 3, and the normalised layer's product has norm 1.
    #[test]
    fn sigma_converges_to_the_largest_singular_value() {
        // W = R diag(3, 1) with R a rotation by 30 degrees: singular values 3 and 1.
        let (c, s) = (30f32.to_radians().cos(), 30f32.to_radians().sin());
        let weight = [3.0 * c, -s, 3.0 * s, c];
        let (mut u, mut v) = (vec![0.6, 0.8], vec![0.0, 0.0]);
        for _ in 0..30 {
            power_iteration(&weight, 2, &mut u, &mut v);
        }
        let sigma = sigma(&weight, 2, &u, &v);
        assert!((sigma - 3.0).abs() < 1e-5, "{sigma}");
    }
}

//! Checks every kind's file runs on its own layer: the fast passes against the tape.

use super::*;
use crate::model::backprop::{PlainNet, Workspace};
use crate::model::Network;
use rand::SeedableRng;

/// `layer` (a TOML inline table) between two linear layers, in the network's own update or
/// outside it: the fast pass's output, input gradient and (in its own update) every
/// parameter gradient against the tape's.
pub(crate) fn fast_matches_tape(layer: &str, train: bool) {
    let layers = format!(r#"{{type = "linear", out = 6}}, {layer}, {{type = "linear", out = 3}}"#);
    network_matches_tape(&layers, 5, layer, train);
}

/// As [`fast_matches_tape`], for a layer that takes images: `layer` on a `[2, 5, 6]` input,
/// then flattened into a linear layer.
pub(crate) fn fast_matches_image_tape(layer: &str, train: bool) {
    let layers = format!(
        r#"{{type = "reshape", shape = [2, 5, 6]}}, {layer}, {{type = "flatten"}},
           {{type = "linear", out = 3}}"#
    );
    network_matches_tape(&layers, 60, layer, train);
}

/// The network of `layers` on `input` features: fast passes against the tape's.
pub(crate) fn network_matches_tape(layers: &str, input: usize, layer: &str, train: bool) {
    let text = format!("layers = [{layers}]");
    #[derive(serde::Deserialize)]
    struct L {
        layers: Vec<LayerSpec>,
    }
    let specs = toml::from_str::<L>(&text).unwrap().layers;
    let dev = Cpu::seed_from_u64(3);
    let init = InitConfig {
        weights: crate::model::init::InitKind::Normal { std: 0.5 },
        ..InitConfig::default()
    };
    let mut rng = ChaCha8Rng::seed_from_u64(1);
    let mut net = Network::build("n", &specs, input, &init, &dev, &mut rng);
    let x: Matrix = dev.sample_normal_like(&(4, input));
    let w: Matrix = dev.sample_uniform_like(&(4, 3));
    let mut tape_rng = ChaCha8Rng::seed_from_u64(9);
    let mut fast_rng = tape_rng.clone();
    let mode = match train {
        true => Mode::Train { rng: &mut tape_rng },
        false => Mode::Eval,
    };
    let mut reference = net.clone();
    let y = reference.forward(x.clone().leaky_traced(), mode);
    let y_values = y.as_vec();
    let grads = (y * w.clone()).sum::<Rank0, _>().backward();
    let mut plain = PlainNet::check_out(&net);
    let mut workspace = Workspace::default();
    let (out, trace) = plain.forward(
        x.as_vec(),
        4,
        train.then_some(&mut fast_rng),
        true,
        &mut workspace,
    );
    crate::model::kernels::assert_close(&out, &y_values, 1e-5, &format!("{layer}: output"));
    // Outside its own update a network is never trained: only its input gradient counts.
    let mut collected = Vec::new();
    let params = match train {
        true => ParamGradUse::Collect(&mut collected),
        false => ParamGradUse::Skip,
    };
    let dx = plain
        .backward(trace, w.as_vec(), true, params, &mut workspace)
        .unwrap();
    let grad = grads.get(&x).as_vec();
    crate::model::kernels::assert_close(&dx, &grad, 1e-5, &format!("{layer}: input"));
    if !train {
        return;
    }
    struct Grads<'a>(&'a Gradients<f32, Cpu>, Vec<Vec<f32>>);
    impl TensorVisitor for Grads<'_> {
        fn visit<S: Shape>(&mut self, _: &str, t: &mut Tensor<S, f32, Cpu>, trainable: bool) {
            if trainable {
                self.1.push(self.0.get(t).as_vec());
            }
        }
    }
    let mut tape = Grads(&grads, Vec::new());
    net.visit(&mut tape);
    assert_eq!(tape.1.len(), collected.len(), "{layer}: trainable tensors");
    for (i, (a, b)) in collected.iter().zip(&tape.1).enumerate() {
        crate::model::kernels::assert_close(a, b, 1e-5, &format!("{layer}: tensor {i}"));
    }
}

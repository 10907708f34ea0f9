"""Draw MNIST digits from a `gan-run export` with numpy alone (safetensors only reads the file).

    python examples/generate.py runs/paper/generator.safetensors --n 100 --out digits.npy
    python examples/generate.py G.safetensors --noise noise.safetensors --out digits.npy

With `--noise` (written by `gan-run sample --noise-out`), the images equal gan-run's own for
that noise, up to float rounding. docs/checkpoint-format.md describes the file.
"""

import argparse
import json

import numpy as np
from safetensors import safe_open


def load(path):
    """The tensors and metadata of an export."""
    with safe_open(path, framework="np") as f:
        tensors = {name: f.get_tensor(name) for name in f.keys()}
        metadata = f.metadata()
    if metadata.get("format") != "gan-run-weights-1":
        raise SystemExit(f"{path}: not a gan-run export (format {metadata.get('format')!r})")
    return tensors, metadata


def forward(tensors, layers, z, generation_mode):
    """Runs the generator's layer list on one batch of noise rows, as gan-run does outside
    training: batch-norm on this batch's statistics (mode `batch`) or its running statistics
    (mode `running`), or bypassed (`tutorial_bypass`); dropout off."""
    x = z.astype(np.float32)
    for i, layer in enumerate(layers):
        kind = layer["type"]
        name = f"generator.layers.{i}"
        if kind == "linear":
            x = x @ tensors[f"{name}.weight"] + tensors[f"{name}.bias"]  # weight is [in, out]
        elif kind == "leaky_relu":
            x = np.where(x >= 0, x, np.float32(layer["slope"]) * x)
        elif kind == "relu":
            x = np.maximum(x, 0)
        elif kind == "tanh":
            x = np.tanh(x)
        elif kind == "sigmoid":
            x = 1 / (1 + np.exp(-x))
        elif kind == "batch_norm":
            if generation_mode == "tutorial_bypass":
                continue
            if layer["mode"] == "running":
                mean, var = tensors[f"{name}.running_mean"], tensors[f"{name}.running_var"]
            else:  # `batch`: this batch's mean and biased variance
                mean, var = x.mean(axis=0), x.var(axis=0)
            x = (x - mean) / np.sqrt(var + np.float32(layer["eps"]))
            x = x * tensors[f"{name}.scale"] + tensors[f"{name}.offset"]
        elif kind in ("dropout", "identity"):
            pass
        else:
            raise SystemExit(f"layer {i}: unknown type {kind!r}")
    return x.astype(np.float32)


def generate(tensors, metadata, noise, n, generation_mode=None):
    """`n` images from noise rows, in batches of the run's batch size as gan-run draws them
    (batch-norm statistics depend on the batch)."""
    layers = json.loads(metadata["generator_layers"])
    mode = generation_mode or metadata["generation_mode"]
    batch = int(metadata["batch_size"])
    out = [forward(tensors, layers, noise[at:at + batch], mode) for at in range(0, len(noise), batch)]
    return np.concatenate(out)[:n]


def uniform_noise(metadata, rows, seed):
    """Fresh noise as the config describes it (numpy's generator: not gan-run's stream)."""
    noise = json.loads(metadata["noise"])
    dist, dim = noise["distribution"], noise["dim"]
    rng = np.random.default_rng(seed)
    if dist["kind"] == "uniform":
        return rng.uniform(dist["low"], dist["high"], (rows, dim)).astype(np.float32)
    return rng.normal(dist["mean"], dist["std"], (rows, dim)).astype(np.float32)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("export")
    p.add_argument("--noise", help="noise from `gan-run sample --noise-out`")
    p.add_argument("--n", type=int, help="images (default: those of --noise, else 100)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--generation", choices=["as_trained", "tutorial_bypass"])
    p.add_argument("--out", required=True, help="a .npy file of [n, 784] pixels in [0, 1]")
    args = p.parse_args()
    tensors, metadata = load(args.export)
    if args.noise:
        with safe_open(args.noise, framework="np") as f:
            noise, n = f.get_tensor("noise"), int(f.metadata()["images"])
        n = args.n or n
    else:
        n = args.n or 100
        batch = int(metadata["batch_size"])
        noise = uniform_noise(metadata, -(-n // batch) * batch, args.seed)
    images = generate(tensors, metadata, noise, n, args.generation)
    np.save(args.out, images)
    print(f"{args.out}: {images.shape[0]} images, mean pixel {images.mean():.4f}")


if __name__ == "__main__":
    main()

"""Draw MNIST digits from a `gan-run export` with numpy alone (safetensors only reads the file).

    python examples/generate.py runs/paper/generator.safetensors --n 100 --out digits.npy
    python examples/generate.py G.safetensors --noise noise.safetensors --out digits.npy
    python examples/generate.py runs/cdcgan/generator.safetensors --label 7 --out sevens.npy

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


def conv2d(x, weight, bias, layer):
    """A convolution of `[batch, c, h, w]` images: weight `[out, c * k * k]` (PyTorch's
    `[out, c, kh, kw]` flattened), cross-correlation as in PyTorch."""
    k, s, p = layer["kernel"], layer["stride"], layer["padding"]
    batch, c, h, w = x.shape
    w4 = weight.reshape(-1, c, k, k)
    x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    oh, ow = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1
    y = np.zeros((batch, w4.shape[0], oh, ow), np.float32)
    for i in range(k):
        for j in range(k):
            patch = x[:, :, i:i + s * (oh - 1) + 1:s, j:j + s * (ow - 1) + 1:s]
            y += np.einsum("bchw,oc->bohw", patch, w4[:, :, i, j])
    return y if bias is None else y + bias[None, :, None, None]


def conv_transpose2d(x, weight, bias, layer):
    """A transposed convolution (PyTorch's, no output padding): weight `[c, out * k * k]`
    (PyTorch's `[c, out, kh, kw]` flattened); each input pixel spreads a weighted patch."""
    k, s, p = layer["kernel"], layer["stride"], layer["padding"]
    batch, c, h, w = x.shape
    w4 = weight.reshape(c, -1, k, k)
    full = np.zeros((batch, w4.shape[1], (h - 1) * s + k, (w - 1) * s + k), np.float32)
    for i in range(k):
        for j in range(k):
            full[:, :, i:i + s * (h - 1) + 1:s, j:j + s * (w - 1) + 1:s] += np.einsum(
                "bchw,co->bohw", x, w4[:, :, i, j])
    y = full[:, :, p:full.shape[2] - p, p:full.shape[3] - p]
    return y if bias is None else y + bias[None, :, None, None]


def forward(tensors, layers, z, generation_mode):
    """Runs the generator's layer list on one batch of input rows, as gan-run does outside
    training: batch-norm on this batch's statistics (mode `batch`) or its running statistics
    (mode `running`), per channel on images, or bypassed (`tutorial_bypass`); dropout off.
    Images travel as `[batch, c, h, w]` between a `reshape` and a `flatten`."""
    x = z.astype(np.float32)
    for i, layer in enumerate(layers):
        kind = layer["type"]
        name = f"generator.layers.{i}"
        bias = tensors.get(f"{name}.bias")
        if kind == "linear":
            x = x @ tensors[f"{name}.weight"] + bias  # weight is [in, out]
        elif kind == "reshape":
            x = x.reshape(len(x), *layer["shape"])
        elif kind == "upsample":  # nearest neighbour
            x = x.repeat(layer["scale"], axis=2).repeat(layer["scale"], axis=3)
        elif kind == "flatten":
            x = x.reshape(len(x), -1)
        elif kind == "conv2d":
            x = conv2d(x, tensors[f"{name}.weight"], bias, layer)
        elif kind == "conv_transpose2d":
            x = conv_transpose2d(x, tensors[f"{name}.weight"], bias, layer)
        elif kind == "leaky_relu":
            x = np.where(x >= 0, x, np.float32(layer["slope"]) * x)
        elif kind == "relu":
            x = np.maximum(x, 0)
        elif kind == "elu":
            x = np.where(x > 0, x, np.float32(layer.get("alpha", 1.0)) * np.expm1(np.minimum(x, 0)))
        elif kind == "tanh":
            x = np.tanh(x)
        elif kind == "sigmoid":
            x = 1 / (1 + np.exp(-x))
        elif kind == "batch_norm":
            if generation_mode == "tutorial_bypass":
                continue
            # Per feature of flat rows; per channel of images, over the batch and positions.
            axes, shape = ((0,), (-1,)) if x.ndim == 2 else ((0, 2, 3), (1, -1, 1, 1))
            if layer["mode"] == "running":
                mean, var = tensors[f"{name}.running_mean"], tensors[f"{name}.running_var"]
            else:  # `batch`: this batch's mean and biased variance
                mean, var = x.mean(axis=axes), x.var(axis=axes)
            x = (x - mean.reshape(shape)) / np.sqrt(var.reshape(shape) + np.float32(layer["eps"]))
            x = x * tensors[f"{name}.scale"].reshape(shape) + tensors[f"{name}.offset"].reshape(shape)
        elif kind == "layer_norm" and layer.get("over_channels"):  # each position's channels
            mean, var = x.mean(axis=1, keepdims=True), x.var(axis=1, keepdims=True)
            x = (x - mean) / np.sqrt(var + np.float32(layer["eps"]))
            x = x * tensors[f"{name}.scale"].reshape(1, -1, 1, 1) + tensors[f"{name}.offset"].reshape(1, -1, 1, 1)
        elif kind == "layer_norm":
            rows = x.reshape(len(x), -1)
            mean, var = rows.mean(axis=1, keepdims=True), rows.var(axis=1, keepdims=True)
            rows = (rows - mean) / np.sqrt(var + np.float32(layer["eps"]))
            x = (rows * tensors[f"{name}.scale"] + tensors[f"{name}.offset"]).reshape(x.shape)
        elif kind in ("dropout", "identity"):
            pass
        else:
            raise SystemExit(f"layer {i}: unknown type {kind!r}")
    return x.reshape(len(x), -1).astype(np.float32)


def generator_input(metadata, noise, labels):
    """G's input rows: the noise, followed for a class-conditional run by each label one-hot."""
    if "conditioning" not in metadata:
        return noise
    conditioning = json.loads(metadata["conditioning"])
    if conditioning["generator"] != "one_hot":
        raise SystemExit(f"G reads labels as {conditioning['generator']!r}: not implemented here")
    classes = conditioning["classes"]
    return np.concatenate([noise, np.eye(classes, dtype=np.float32)[labels]], axis=1)


def balanced_labels(metadata, rows):
    """gan-run's default labels: image i is (i // classes) % classes, one digit per grid row."""
    classes = json.loads(metadata["conditioning"])["classes"]
    return (np.arange(rows) // classes) % classes


def batch_coupled(metadata, generation_mode=None):
    """Whether G normalises each generation batch by its own statistics (batch-norm in mode
    `batch`, drawn as trained): then one class is drawn as gan-run draws it, from balanced
    batches, keeping that class's images (a batch of one label cancels the label out)."""
    layers = json.loads(metadata["generator_layers"])
    mode = generation_mode or metadata["generation_mode"]
    return mode == "as_trained" and any(
        l["type"] == "batch_norm" and l["mode"] == "batch" for l in layers)


def generate(tensors, metadata, noise, n, generation_mode=None, labels=None, keep=None):
    """`n` images from noise rows (and, for a class-conditional run, their labels), in batches
    of the run's batch size as gan-run draws them (batch-norm statistics depend on the
    batch); with `keep`, the first `n` of the rows labelled `keep`."""
    layers = json.loads(metadata["generator_layers"])
    mode = generation_mode or metadata["generation_mode"]
    batch = int(metadata["batch_size"])
    if "conditioning" in metadata and labels is None:
        labels = balanced_labels(metadata, len(noise))
    rows = generator_input(metadata, noise, labels)
    out = np.concatenate([forward(tensors, layers, rows[at:at + batch], mode)
                          for at in range(0, len(rows), batch)])
    if keep is not None:
        out = out[np.asarray(labels) == keep]
    return out[:n]


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
    p.add_argument("--label", type=int, help="a class-conditional run: draw this class only")
    p.add_argument("--out", required=True, help="a .npy file of [n, 784] pixels in [0, 1]")
    args = p.parse_args()
    tensors, metadata = load(args.export)
    labels = None
    if args.label is not None:
        if "conditioning" not in metadata:
            raise SystemExit(f"{args.export}: not class-conditional; drop --label")
        conditioning = json.loads(metadata["conditioning"])
        classes = conditioning["classes"]
        if not 0 <= args.label < classes:
            raise SystemExit(f"{args.export}: --label {args.label}: its classes are 0 to {classes - 1}")
    keep = None
    if args.noise:
        with safe_open(args.noise, framework="np") as f:
            noise, n = f.get_tensor("noise"), int(f.metadata()["images"])
            if "labels" in f.keys():
                labels = f.get_tensor("labels").astype(np.int64)
            if "kept_label" in f.metadata():
                keep = int(f.metadata()["kept_label"])
        n = args.n or n
    else:
        n = args.n or 100
        batch = int(metadata["batch_size"])
        rows = n
        if args.label is not None and batch_coupled(metadata, args.generation):
            # Balanced labels give image i digit (i // classes) % classes: the row of the n-th
            # image of the class asked for, as gan-run draws it.
            classes = json.loads(metadata["conditioning"])["classes"]
            runs, within = divmod(n - 1, classes)
            rows = runs * classes * classes + args.label * classes + within + 1
        noise = uniform_noise(metadata, -(-rows // batch) * batch, args.seed)
    if args.label is not None:
        if batch_coupled(metadata, args.generation):
            labels, keep = balanced_labels(metadata, len(noise)), args.label
        else:
            labels, keep = np.full(len(noise), args.label), None
    images = generate(tensors, metadata, noise, n, args.generation, labels, keep)
    if len(images) < n:
        raise SystemExit(f"{args.noise}: holds {len(images)} images of class {keep}, not {n}")
    np.save(args.out, images)
    print(f"{args.out}: {images.shape[0]} images, mean pixel {images.mean():.4f}")


if __name__ == "__main__":
    main()

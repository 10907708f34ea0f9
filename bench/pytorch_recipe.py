#!/usr/bin/env python3
"""The MLP recipe in PyTorch, trained on MNIST, its samples written for `gan-run eval --samples`.

The recipe of issue 25: the GAN paper's MLP widths (G 100-256-512-1024-784, D 784-1024-512-
256-1) with the stabilisers GAN tools default to: the non-saturating loss, spectral norm on
every linear layer of D (PyTorch's own `parametrizations.spectral_norm`, one power iteration
per step), no batch-norm in D, a moving average of G's weights at 0.999 (the samples are drawn
from it), Adam 2e-4 (0.5, 0.999) for both networks, batch 100. It trains `--epochs` epochs,
prints each epoch's mean losses and wall time, and writes `--n` images from the moving average
as a gzipped IDX3 file (magic 2051, count, 28, 28, one byte a pixel, 0-255), what
`gan-run sample --out FILE.gz` writes; the last line printed is a JSON object. The comparison
with configs/mlp-best.toml is one command away:

    python bench/pytorch_recipe.py --epochs 50 --out /tmp/torch.gz && target/release/gan-run eval --samples /tmp/torch.gz

or, the same, `--eval target/release/gan-run` (the scores' table follows the JSON line).

Like configs/mlp-best.toml: G's layers (linear, leaky ReLU 0.2, batch-norm on the current
batch's statistics with scale 1, offset 0 and eps 1e-5 and no running statistics, three times,
then linear and sigmoid; no dropout), D's layers (linear and leaky ReLU 0.2, the last linear a
logit), uniform [-1, 1] noise of 100 dimensions, every weight and bias of both networks drawn
from a normal of std 0.02 cut at two standard deviations (TensorFlow's truncated_normal), the
data (the training file's images, pixels / 255; its first 5,000 held out as validation, as
`data.validation_size` says, the other 55,000 trained on, reshuffled every epoch, 550 batches),
one D step then one G step per batch, D's real and fake batches in one pass, the loss binary
cross-entropy on D's logit (D: real 1, fake 0; G: its fakes as real), Adam's eps 1e-8, the
average a copy of G at the start and updated after every G step, and generation in batches of
100 (G's batch-norm on each generation batch's statistics, as gan-run's `as_trained`).

What differs from configs/mlp-best.toml:
- the epochs: 50 by default (the issue's measurement), where the config trains 71;
- spectral norm's starting vectors: PyTorch draws u and runs 15 power iterations when the
  layer is made, gan-run draws u and computes v from it once. After that both run one power
  iteration at the start of each of D's own updates (here: D in train mode in its step, in
  eval mode, which reuses u and v, in G's step), with gradients through sigma, u and v fixed;
- the random streams (PyTorch's generator, not gan-run's ChaCha8 streams): the same seed draws
  other weights, noise and data order, so a seed here is not gan-run's seed;
- the arithmetic: PyTorch's kernels round differently from gan-run's;
- no scoring, sample grids or checkpoints during training: only the last epoch's average
  draws the samples.
"""

import argparse
import copy
import gzip
import hashlib
import json
import os
import resource
import struct
import subprocess
import time
from pathlib import Path

# OpenMP workers that sleep while they wait, rather than spin: on a machine shared with other
# jobs, spinning threads took most of the CPU time this process got. Set before torch loads.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import torch.nn as nn  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch.nn.utils.parametrizations import spectral_norm  # noqa: E402

NOISE_DIM, PIXELS, BATCH = 100, 784, 100
EMA_DECAY = 0.999
DATA_DIR = Path(__file__).resolve().parent.parent / "data" / "mnist"


def read_idx_images(path, sums):
    """A gzipped IDX3 image file as uint8 [count, 784], its decompressed bytes checked
    against the folder's SHA256SUMS (what gan-run checks)."""
    raw = gzip.decompress(path.read_bytes())
    name = path.name.removesuffix(".gz")
    if name in sums and hashlib.sha256(raw).hexdigest() != sums[name]:
        raise SystemExit(f"{path}: sha256 differs from SHA256SUMS")
    magic, count, rows, cols = struct.unpack(">IIII", raw[:16])
    if magic != 2051 or (rows, cols) != (28, 28) or len(raw) != 16 + count * PIXELS:
        raise SystemExit(f"{path}: not a 28x28 IDX3 image file")
    return np.frombuffer(raw, dtype=np.uint8, offset=16).reshape(count, PIXELS)


def load_train(data_dir, validation_size):
    """The training file's images after the first `validation_size`, in [0, 1]."""
    sums = {}
    sums_path = data_dir / "SHA256SUMS"
    if sums_path.exists():
        for line in sums_path.read_text().splitlines():
            if line and not line.startswith("#"):
                digest, name = line.split()
                sums[name] = digest
    images = read_idx_images(data_dir / "train-images-idx3-ubyte.gz", sums)
    return torch.from_numpy(images[validation_size:].astype(np.float32) / 255.0)


def write_idx3_gz(path, images):
    """`images` in [0, 1], [n, 784], as a gzipped IDX3 file, written whole or not at all."""
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    header = struct.pack(">IIII", 2051, pixels.shape[0], 28, 28)
    tmp = path.with_name(path.name + ".tmp")
    with gzip.open(tmp, "wb") as f:
        f.write(header + pixels.tobytes())
    os.replace(tmp, path)


class BatchStatisticsNorm(nn.Module):
    """Batch-norm in gan-run's mode `batch`: the current batch's statistics in every pass, no
    running statistics. Scale ones, offset zeros; eps 1e-5."""

    def __init__(self, width, eps=1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))
        self.offset = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, x):
        return F.batch_norm(x, None, None, self.scale, self.offset, training=True, eps=self.eps)


def truncated_normal_linear(n_in, n_out):
    # tf.truncated_normal(stddev=0.02) for weights and biases: cut at two standard deviations.
    layer = nn.Linear(n_in, n_out)
    for p in (layer.weight, layer.bias):
        nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
    return layer


def generator():
    return nn.Sequential(
        truncated_normal_linear(NOISE_DIM, 256), nn.LeakyReLU(0.2), BatchStatisticsNorm(256),
        truncated_normal_linear(256, 512), nn.LeakyReLU(0.2), BatchStatisticsNorm(512),
        truncated_normal_linear(512, 1024), nn.LeakyReLU(0.2), BatchStatisticsNorm(1024),
        truncated_normal_linear(1024, PIXELS), nn.Sigmoid(),
    )


def discriminator():
    # Spectral norm on every linear, wrapped after the initialisation; ends in a logit.
    sn = lambda n_in, n_out: spectral_norm(truncated_normal_linear(n_in, n_out))  # noqa: E731
    return nn.Sequential(
        sn(PIXELS, 1024), nn.LeakyReLU(0.2),
        sn(1024, 512), nn.LeakyReLU(0.2),
        sn(512, 256), nn.LeakyReLU(0.2),
        sn(256, 1),
    )


def noise(rows):
    return torch.rand(rows, NOISE_DIM) * 2 - 1  # Uniform[-1, 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("samples.gz"), help="gzipped IDX3 file")
    ap.add_argument("--n", type=int, default=10000, help="images to write")
    ap.add_argument("--data-dir", type=Path, default=DATA_DIR)
    ap.add_argument("--eval", metavar="GAN_RUN",
                    help="then score the samples with this gan-run binary: eval --samples OUT")
    ap.add_argument("--validation-size", type=int, default=5000,
                    help="first training images held out (configs/mlp-best.toml's)")
    args = ap.parse_args()
    if not args.out.name.endswith(".gz"):
        raise SystemExit("--out must end in .gz (a gzipped IDX3 file)")

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train = load_train(args.data_dir, args.validation_size)
    batches = len(train) // BATCH

    G, D = generator(), discriminator()
    G_ema = copy.deepcopy(G).requires_grad_(False)
    g_opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    labels = torch.cat([torch.ones(BATCH, 1), torch.zeros(BATCH, 1)])

    start = time.perf_counter()
    history = []
    for epoch in range(1, args.epochs + 1):
        epoch_start = time.perf_counter()
        order = torch.randperm(len(train))
        d_sum = g_sum = 0.0
        for step in range(batches):
            real = train[order[step * BATCH:(step + 1) * BATCH]]

            # D step: D in train mode (one power iteration per layer), real and fake in one
            # pass; the loss is the real batch's mean plus the fake batch's.
            D.train().requires_grad_(True)
            with torch.no_grad():
                fake = G(noise(BATCH))
            logits = D(torch.cat([real, fake]))
            per_image = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
            d_loss = per_image[:BATCH].mean() + per_image[BATCH:].mean()
            d_opt.zero_grad(set_to_none=True)
            d_loss.backward()
            d_opt.step()

            # G step, non-saturating: G's fakes labelled real. D in eval mode reuses the D
            # step's u and v (no second power iteration) and its parameters take no gradient.
            D.eval().requires_grad_(False)
            g_logits = D(G(noise(BATCH)))
            g_loss = F.binary_cross_entropy_with_logits(g_logits, torch.ones_like(g_logits))
            g_opt.zero_grad(set_to_none=True)
            g_loss.backward()
            g_opt.step()
            with torch.no_grad():
                for a, p in zip(G_ema.parameters(), G.parameters()):
                    a.mul_(EMA_DECAY).add_(p, alpha=1 - EMA_DECAY)

            d_sum += d_loss.item()
            g_sum += g_loss.item()
            if not (np.isfinite(d_sum) and np.isfinite(g_sum)):
                raise SystemExit(f"non-finite loss at epoch {epoch}, step {step + 1}")
        row = {
            "epoch": epoch,
            "d_loss": d_sum / batches,
            "g_loss": g_sum / batches,
            "seconds": time.perf_counter() - epoch_start,
        }
        history.append(row)
        print(f"epoch {epoch:3d}  d_loss {row['d_loss']:.4f}  g_loss {row['g_loss']:.4f}  "
              f"{row['seconds']:.1f} s", flush=True)
    train_seconds = time.perf_counter() - start

    # The moving average draws the samples, in generation batches of the training batch size.
    gen = torch.Generator().manual_seed(args.seed)
    with torch.no_grad():
        images = torch.cat([
            G_ema(torch.rand(BATCH, NOISE_DIM, generator=gen) * 2 - 1)
            for _ in range((args.n + BATCH - 1) // BATCH)
        ])[:args.n]
    write_idx3_gz(args.out, images)

    print(json.dumps({
        "framework": "pytorch",
        "version": torch.__version__,
        "recipe": "mlp-best (issue 25)",
        "epochs": args.epochs,
        "seed": args.seed,
        "threads": torch.get_num_threads(),
        "train_images": len(train),
        "samples": str(args.out),
        "n": args.n,
        "train_seconds": train_seconds,
        "mean_epoch_seconds": train_seconds / max(args.epochs, 1),
        "d_loss": history[-1]["d_loss"] if history else None,
        "g_loss": history[-1]["g_loss"] if history else None,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }), flush=True)
    if args.eval:
        command = [args.eval, "eval", "--samples", str(args.out), "--data-dir", str(args.data_dir)]
        raise SystemExit(subprocess.run(command).returncode)


if __name__ == "__main__":
    main()

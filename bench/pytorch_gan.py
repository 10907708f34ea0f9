#!/usr/bin/env python3
"""configs/paper.toml's model and training step in PyTorch, timed on CPU.

The same arithmetic as `gan-run bench configs/paper.toml`: one step is one discriminator
step then one generator step, batch 100, on a random uniform "real" batch (the arithmetic
does not depend on the pixel values). The last line printed is a JSON object.

    python bench/pytorch_gan.py --steps 200 --warmup 10 --threads 2
"""

import argparse
import json
import resource
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

NOISE_DIM, PIXELS, BATCH = 100, 784, 100


class BatchNormOnlyInTrain(nn.Module):
    """The tutorial's batch-norm: batch statistics (no running ones) in G's own update,
    bypassed (identity) otherwise. Learnable scale (ones) and offset (zeros); eps 1e-3."""

    def __init__(self, width, eps=1e-3):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))
        self.offset = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, x):
        if not self.training:
            return x
        return F.batch_norm(x, None, None, self.scale, self.offset, training=True, eps=self.eps)


def init_truncated_normal(module):
    # tf.truncated_normal(stddev=0.02) for weights and biases: cut at two standard deviations.
    if isinstance(module, nn.Linear):
        for p in (module.weight, module.bias):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)


def generator():
    return nn.Sequential(
        nn.Linear(NOISE_DIM, 256), nn.LeakyReLU(0.2), BatchNormOnlyInTrain(256),
        nn.Linear(256, 512), nn.LeakyReLU(0.2), BatchNormOnlyInTrain(512),
        nn.Linear(512, 1024), nn.LeakyReLU(0.2), BatchNormOnlyInTrain(1024),
        nn.Dropout(0.5),  # keep_prob 0.5, only in G's own update
        nn.Linear(1024, PIXELS), nn.Sigmoid(),
    )


def discriminator():
    # Ends in a logit; the loss applies the sigmoid. No batch-norm or dropout, so its mode
    # does not matter.
    return nn.Sequential(
        nn.Linear(PIXELS, 1024), nn.LeakyReLU(0.2),
        nn.Linear(1024, 512), nn.LeakyReLU(0.2),
        nn.Linear(512, 256), nn.LeakyReLU(0.2),
        nn.Linear(256, 1),
    )


def tutorial_double_sigmoid_bce(logits, label):
    # The tutorial fed D's sigmoid output to a with-logits loss: the sigmoid applied twice.
    probs = torch.sigmoid(logits)
    return F.binary_cross_entropy_with_logits(probs, torch.full_like(probs, label))


def noise():
    return torch.rand(BATCH, NOISE_DIM) * 2 - 1  # Uniform[-1, 1]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    G, D = generator(), discriminator()
    G.apply(init_truncated_normal)
    D.apply(init_truncated_normal)
    g_opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.1, 0.999), eps=1e-8)
    real = torch.rand(BATCH, PIXELS)

    def step():
        # Discriminator step: G outside its own update (batch-norm bypassed, no dropout).
        G.eval()
        with torch.no_grad():
            fake = G(noise())
        # Two passes, not one batch of both, as the tutorial (and gan-run) does.
        d_loss = tutorial_double_sigmoid_bce(D(real), 1.0) + tutorial_double_sigmoid_bce(D(fake), 0.0)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

        # Generator step: G in its own update (batch statistics, dropout). The backward pass
        # also fills D's gradients; only G's optimizer moves, and D's are cleared next step.
        G.train()
        g_loss = tutorial_double_sigmoid_bce(D(G(noise())), 1.0)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return d_loss, g_loss

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        d_loss, g_loss = step()
    seconds = time.perf_counter() - start
    if not (torch.isfinite(d_loss) and torch.isfinite(g_loss)):
        raise SystemExit(f"non-finite loss: d {d_loss.item()} g {g_loss.item()}")

    print(json.dumps({
        "framework": "pytorch",
        "version": torch.__version__,
        "steps": args.steps,
        "steps_per_sec": args.steps / seconds,
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "threads": torch.get_num_threads(),
    }))


if __name__ == "__main__":
    main()

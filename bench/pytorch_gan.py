#!/usr/bin/env python3
"""configs/paper.toml's model and training step in PyTorch, timed on CPU.

The same arithmetic as `gan-run bench configs/paper.toml`: one step is one discriminator
step then one generator step, batch 100, on a random uniform "real" batch (the arithmetic
does not depend on the pixel values). The last line printed is a JSON object. `--batch` and
`--width` (the hidden widths' scale) are for bench/scaling.sh.

    python bench/pytorch_gan.py --steps 200 --warmup 10 --threads 2
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import report, time_steps  # bench/timing.py: the same loop for every framework

NOISE_DIM, PIXELS = 100, 784
# The batch size and the hidden widths' scale (1: the paper's 256/512/1024), set by main().
BATCH, WIDTH = 100, 1.0


def hidden(width):
    return int(width * WIDTH)


class BatchStatisticsNorm(nn.Module):
    """The tutorial's batch-norm: the current batch's statistics in every pass (its training
    graph never bypasses it), no running statistics. Scale ones, offset zeros; eps 1e-5."""

    def __init__(self, width, eps=1e-5):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(width))
        self.offset = nn.Parameter(torch.zeros(width))
        self.eps = eps

    def forward(self, x):
        return F.batch_norm(x, None, None, self.scale, self.offset, training=True, eps=self.eps)


def init_truncated_normal(module):
    # tf.truncated_normal(stddev=0.02) for weights and biases: cut at two standard deviations.
    if isinstance(module, nn.Linear):
        for p in (module.weight, module.bias):
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)


def generator():
    a, b, c = hidden(256), hidden(512), hidden(1024)
    return nn.Sequential(
        nn.Linear(NOISE_DIM, a), nn.LeakyReLU(0.2), BatchStatisticsNorm(a),
        nn.Linear(a, b), nn.LeakyReLU(0.2), BatchStatisticsNorm(b),
        nn.Linear(b, c), nn.LeakyReLU(0.2), BatchStatisticsNorm(c),
        nn.Dropout(0.5),  # keep_prob 0.5, only in G's own update (train mode)
        nn.Linear(c, PIXELS), nn.Sigmoid(),
    )


def discriminator():
    # Ends in a logit; the loss applies the sigmoid. No batch-norm or dropout, so its mode
    # does not matter.
    a, b, c = hidden(1024), hidden(512), hidden(256)
    return nn.Sequential(
        nn.Linear(PIXELS, a), nn.LeakyReLU(0.2),
        nn.Linear(a, b), nn.LeakyReLU(0.2),
        nn.Linear(b, c), nn.LeakyReLU(0.2),
        nn.Linear(c, 1),
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
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--width", type=float, default=1.0, help="hidden widths x this")
    args = ap.parse_args()
    global BATCH, WIDTH
    BATCH, WIDTH = args.batch, args.width

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    G, D = generator(), discriminator()
    G.apply(init_truncated_normal)
    D.apply(init_truncated_normal)
    g_opt = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.1, 0.999), eps=1e-8)
    real = torch.rand(BATCH, PIXELS)

    def step():
        # Discriminator step: G without dropout (eval mode; batch-norm still on batch statistics).
        G.eval()
        with torch.no_grad():
            fake = G(noise())
        # Two passes, not one batch of both, as the tutorial (and gan-run) does.
        d_loss = tutorial_double_sigmoid_bce(D(real), 1.0) + tutorial_double_sigmoid_bce(D(fake), 0.0)
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

        # Generator step: G in its own update (dropout on). The backward pass
        # also fills D's gradients; only G's optimizer moves, and D's are cleared next step.
        G.train()
        g_loss = tutorial_double_sigmoid_bce(D(G(noise())), 1.0)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        return d_loss, g_loss

    seconds, losses = time_steps(step, args.warmup, args.steps)
    report("pytorch", torch.__version__, args.steps, seconds, torch.get_num_threads(), losses)


if __name__ == "__main__":
    main()

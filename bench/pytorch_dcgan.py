#!/usr/bin/env python3
"""configs/dcgan.toml's model and training step in PyTorch, timed on CPU.

The same step as `gan-run bench configs/dcgan.toml` (src/train/step.rs): one discriminator step
(G run without gradients on fresh noise, then D on the real batch and on the generated batch
in two passes, since D's batch-norm must see each batch alone) and one generator step (fresh
noise, G and D forward, back through both, G's Adam), then the moving average of G's weights
(decay 0.999), batch 100, on a random uniform "real" batch (the arithmetic does not depend on
the pixel values). Idiomatic PyTorch: the G step's backward pass also computes D's weight
gradients, which nobody uses (gan-run and TensorFlow skip them). With --r1-weight, R1 on D
as the config's `gradient_penalty = { kind = "r1", weight, every }` runs it: on D steps 0,
every, 2 every, ... a further pass of D over the real batch, its input gradient by
torch.autograd.grad with create_graph (double backpropagation), and weight * every / 2 times
the batch mean of its squared norm added to D's loss. The last line printed is a JSON object.

    python bench/pytorch_dcgan.py --steps 40 --warmup 10 --threads 2 [--r1-weight 1 --r1-every 4]
"""

import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F

from timing import report, time_steps  # bench/timing.py: the same loop for every framework

NOISE_DIM = 100
EMA_DECAY = 0.999


def batch_norm(channels):
    # mode = "batch": the current batch's statistics in every pass, no running statistics
    # (eps 1e-5, scale ones, offset zeros), per channel.
    return nn.BatchNorm2d(channels, eps=1e-5, track_running_stats=False)


def generator():
    return nn.Sequential(
        nn.Linear(NOISE_DIM, 1024),
        nn.BatchNorm1d(1024, eps=1e-5, track_running_stats=False), nn.ReLU(),
        nn.Linear(1024, 128 * 7 * 7),
        nn.Unflatten(1, (128, 7, 7)),
        batch_norm(128), nn.ReLU(),
        nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, bias=False),  # 14 x 14
        batch_norm(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1),  # 28 x 28
        nn.Sigmoid(),
    )


def discriminator():
    # Ends in a logit; the loss applies the sigmoid.
    return nn.Sequential(
        nn.Conv2d(1, 64, 4, stride=2, padding=1),  # 14 x 14
        nn.LeakyReLU(0.2),
        nn.Conv2d(64, 128, 4, stride=2, padding=1, bias=False),  # 7 x 7
        batch_norm(128), nn.LeakyReLU(0.2),
        nn.Flatten(),
        nn.Linear(128 * 7 * 7, 1024),
        nn.BatchNorm1d(1024, eps=1e-5, track_running_stats=False), nn.LeakyReLU(0.2),
        nn.Linear(1024, 1),
    )


def init_weights(module):
    # [init]: weights normal(0, 0.02), biases zeros (batch-norm keeps ones and zeros).
    if isinstance(module, (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)


def bce_logits(logits, label):
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, label))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--r1-weight", type=float, default=0.0, help="R1 on D (0: none)")
    ap.add_argument("--r1-every", type=int, default=1, help="R1 on every N-th D step")
    args = ap.parse_args()
    batch = args.batch

    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    G, D = generator(), discriminator()
    G.apply(init_weights)
    D.apply(init_weights)
    ema = [p.detach().clone() for p in G.parameters()]
    g_params = list(G.parameters())
    g_opt = torch.optim.Adam(g_params, lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    d_opt = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999), eps=1e-8)
    real = torch.rand(batch, 1, 28, 28)

    def noise():
        return torch.randn(batch, NOISE_DIM)

    d_steps = 0

    def r1(weight):
        # D's own pass over the real batch, as gan-run's penalty makes it (src/train/step.rs).
        x = real.detach().requires_grad_(True)
        (g,) = torch.autograd.grad(D(x).sum(), x, create_graph=True)
        return weight / 2 * g.pow(2).flatten(1).sum(1).mean()

    def step():
        nonlocal d_steps
        # Discriminator step. Two passes of D, not one batch of both: batch-norm.
        with torch.no_grad():
            fake = G(noise())
        d_loss = bce_logits(D(real), 1.0) + bce_logits(D(fake), 0.0)
        if args.r1_weight > 0 and d_steps % args.r1_every == 0:
            d_loss = d_loss + r1(args.r1_weight * args.r1_every)
        d_steps += 1
        d_opt.zero_grad(set_to_none=True)
        d_loss.backward()
        d_opt.step()

        # Generator step (non-saturating), on fresh noise as gan-run draws it.
        g_loss = bce_logits(D(G(noise())), 1.0)
        g_opt.zero_grad(set_to_none=True)
        g_loss.backward()
        g_opt.step()
        # The moving average, as torch.optim.swa_utils' EMA does it: ema += (1 - decay)(p - ema).
        with torch.no_grad():
            torch._foreach_lerp_(ema, g_params, 1.0 - EMA_DECAY)
        return d_loss, g_loss

    seconds, losses = time_steps(step, args.warmup, args.steps)
    report("pytorch", torch.__version__, args.steps, seconds, torch.get_num_threads(), losses,
           model="dcgan", batch=batch)


if __name__ == "__main__":
    main()

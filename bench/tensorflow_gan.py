#!/usr/bin/env python3
"""configs/paper.toml's model and training step in TensorFlow 1-style graph mode, timed on CPU.

As the tutorial wrote it: tf.compat.v1 placeholders, variables drawn from a truncated normal
(std 0.02), and two AdamOptimizer minimize ops each restricted to its own network's variables.
One step is one discriminator step then one generator step, batch 100, on a random uniform
"real" batch. The last line printed is a JSON object.

    python bench/tensorflow_gan.py --steps 200 --warmup 10 --threads 2
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet the start-up banner

import numpy as np
import tensorflow as tf

from timing import report, time_steps  # bench/timing.py: the same loop for every framework

tf1 = tf.compat.v1
NOISE_DIM, PIXELS = 100, 784
# The batch size and the hidden widths' scale (1: the paper's 256/512/1024), set by main().
BATCH, WIDTH = 100, 1.0


def hidden(widths):
    return [int(w * WIDTH) for w in widths]


def dense_vars(name, n_in, n_out):
    # tf.truncated_normal(stddev=0.02) for weights and biases, as the tutorial.
    with tf1.variable_scope(name):
        init = tf1.truncated_normal_initializer(stddev=0.02)
        return (tf1.get_variable("w", [n_in, n_out], initializer=init),
                tf1.get_variable("b", [n_out], initializer=init))


def leaky_relu(x):
    return tf.nn.leaky_relu(x, alpha=0.2)


class Generator:
    def __init__(self):
        self.widths = [NOISE_DIM] + hidden([256, 512, 1024])
        with tf1.variable_scope("generator"):
            self.hidden = [dense_vars(f"fc{i}", a, b)
                           for i, (a, b) in enumerate(zip(self.widths, self.widths[1:]))]
            self.bn = [(tf1.get_variable(f"bn{i}/scale", [w], initializer=tf1.ones_initializer()),
                        tf1.get_variable(f"bn{i}/offset", [w], initializer=tf1.zeros_initializer()))
                       for i, w in enumerate(self.widths[1:])]
            self.out = dense_vars("out", self.widths[-1], PIXELS)

    def __call__(self, z, dropout):
        """Batch-norm on the current batch's statistics in every pass (eps 1e-5, no running
        statistics), as the tutorial's training graph does; dropout 0.5 only in G's own update."""
        h = z
        for (w, b), (scale, offset) in zip(self.hidden, self.bn):
            h = leaky_relu(tf.matmul(h, w) + b)
            mean, var = tf.nn.moments(h, axes=[0])
            h = tf.nn.batch_normalization(h, mean, var, offset, scale, variance_epsilon=1e-5)
        if dropout:
            h = tf.nn.dropout(h, rate=0.5)
        w, b = self.out
        return tf.sigmoid(tf.matmul(h, w) + b)


class Discriminator:
    def __init__(self):
        self.widths = [PIXELS] + hidden([1024, 512, 256]) + [1]
        with tf1.variable_scope("discriminator"):
            self.layers = [dense_vars(f"fc{i}", a, b)
                           for i, (a, b) in enumerate(zip(self.widths, self.widths[1:]))]

    def __call__(self, x):
        """Returns a logit; the loss applies the sigmoid."""
        h = x
        for i, (w, b) in enumerate(self.layers):
            h = tf.matmul(h, w) + b
            if i + 1 < len(self.layers):
                h = leaky_relu(h)
        return h


def tutorial_double_sigmoid_bce(logits, label):
    # The tutorial fed D's sigmoid output to a with-logits loss: the sigmoid applied twice.
    probs = tf.sigmoid(logits)
    return tf.reduce_mean(
        tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(probs), label), logits=probs))


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

    tf1.disable_eager_execution()
    tf1.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x = tf1.placeholder(tf.float32, [BATCH, PIXELS], name="x")
    z = tf1.placeholder(tf.float32, [BATCH, NOISE_DIM], name="z")
    G, D = Generator(), Discriminator()
    g_vars = tf1.trainable_variables("generator")
    d_vars = tf1.trainable_variables("discriminator")

    # Discriminator step: G without dropout (batch-norm on batch statistics all the same). Two
    # passes of D, not one batch of both, as the tutorial (and gan-run) does.
    fake_eval = tf.stop_gradient(G(z, dropout=False))
    d_loss = tutorial_double_sigmoid_bce(D(x), 1.0) + tutorial_double_sigmoid_bce(D(fake_eval), 0.0)
    d_train = tf1.train.AdamOptimizer(2e-4, beta1=0.1, beta2=0.999, epsilon=1e-8).minimize(
        d_loss, var_list=d_vars)

    # Generator step: G in its own update. TensorFlow differentiates only towards var_list,
    # so unlike gan-run and PyTorch it never computes D's weight gradients here.
    g_loss = tutorial_double_sigmoid_bce(D(G(z, dropout=True)), 1.0)
    g_train = tf1.train.AdamOptimizer(2e-4, beta1=0.5, beta2=0.999, epsilon=1e-8).minimize(
        g_loss, var_list=g_vars)

    config = tf1.ConfigProto(intra_op_parallelism_threads=args.threads,
                             inter_op_parallelism_threads=args.threads)
    real = rng.random((BATCH, PIXELS), dtype=np.float32)

    def noise():
        return rng.uniform(-1.0, 1.0, (BATCH, NOISE_DIM)).astype(np.float32)

    with tf1.Session(config=config) as sess:
        sess.run(tf1.global_variables_initializer())

        def step():
            dl, _ = sess.run([d_loss, d_train], feed_dict={x: real, z: noise()})
            gl, _ = sess.run([g_loss, g_train], feed_dict={z: noise()})
            return dl, gl

        seconds, losses = time_steps(step, args.warmup, args.steps)
    report("tensorflow", tf.__version__, args.steps, seconds, args.threads, losses,
           batch=BATCH, width=WIDTH)


if __name__ == "__main__":
    main()

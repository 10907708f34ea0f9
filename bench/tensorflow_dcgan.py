#!/usr/bin/env python3
"""configs/dcgan.toml's model and training step in TensorFlow 1-style graph mode, timed on CPU.

In the style of bench/tensorflow_gan.py: tf.compat.v1 placeholders and variables, two
AdamOptimizer minimize ops each restricted to its own network's variables, and
tf.train.ExponentialMovingAverage (decay 0.999) of G's variables run after G's update. The
step is gan-run's (src/train/step.rs): one discriminator step (G on fresh noise, gradients
stopped; D on the real batch and the generated batch in two passes, since D's batch-norm must
see each batch alone) and one generator step on fresh noise, batch 100, on a random uniform
"real" batch. TensorFlow differentiates only towards var_list, so, like gan-run, its G step
computes no D weight gradients.

Images are NHWC, TensorFlow's layout for convolutions on CPU (its NCHW kernels are GPU ones):
G's second linear layer's 6272 outputs are read as [7, 7, 128] and D's last maps flattened the same
way, which only permutes the linear layers' units. Batch-norm is fused_batch_norm in training
mode (the batch's statistics, per channel, eps 1e-5), which Keras's BatchNormalization uses
for images. TensorFlow 2.21 logs "remapper failed: ... LeakyReluGrad ... missing node
'discriminator/BiasAdd'" once: grappler's fusion of D's first convolution, bias and LeakyReLU
is dropped because the gradient reads the bias-add (on this machine, 20 steps with the remapper
off ran as fast). With --r1-weight, R1 on D as the config's `gradient_penalty = { kind =
"r1", weight, every }` runs it: on D steps 0, every, 2 every, ... a second train op of the same
Adam, whose loss adds weight * every / 2 times the batch mean of the squared norm of D's input
gradient on a further pass over the real batch (tf.gradients, then differentiated again). The
last line printed is a JSON object.

    python bench/tensorflow_dcgan.py --steps 40 --warmup 10 --threads 2 [--r1-weight 1 --r1-every 4]
"""

import argparse
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # quiet the start-up banner

import numpy as np
import tensorflow as tf

from timing import report, time_steps  # bench/timing.py: the same loop for every framework

tf1 = tf.compat.v1
NOISE_DIM = 100
EMA_DECAY = 0.999


def weight(name, shape):
    # [init]: weights normal(0, 0.02).
    return tf1.get_variable(name, shape, initializer=tf1.random_normal_initializer(stddev=0.02))


def zeros(name, shape):
    return tf1.get_variable(name, shape, initializer=tf1.zeros_initializer())


def batch_norm(name, x):
    """The current batch's statistics in every pass, per channel; scale ones, offset zeros."""
    channels = x.shape[-1]
    scale = tf1.get_variable(f"{name}/scale", [channels], initializer=tf1.ones_initializer())
    offset = zeros(f"{name}/offset", [channels])
    y, _, _ = tf1.nn.fused_batch_norm(x, scale, offset, epsilon=1e-5, is_training=True)
    return y


def dense_batch_norm(name, x):
    """Batch-norm of a fully connected layer's units: fused_batch_norm on them read as 1x1 maps."""
    units = x.shape[-1]
    return tf.reshape(batch_norm(name, tf.reshape(x, [-1, 1, 1, units])), [-1, units])


def generator(z, batch):
    with tf1.variable_scope("generator", reuse=tf1.AUTO_REUSE):
        h = tf.matmul(z, weight("fc0/w", [NOISE_DIM, 1024])) + zeros("fc0/b", [1024])
        h = tf.nn.relu(dense_batch_norm("bn_fc0", h))
        h = tf.matmul(h, weight("fc/w", [1024, 7 * 7 * 128])) + zeros("fc/b", [7 * 7 * 128])
        h = tf.nn.relu(batch_norm("bn0", tf.reshape(h, [batch, 7, 7, 128])))
        # Transposed convolutions: filters [kh, kw, out, in]; "SAME" with kernel 4 and stride 2
        # pads one on each side, as padding = 1 does.
        h = tf.nn.conv2d_transpose(h, weight("up1/w", [4, 4, 64, 128]), [batch, 14, 14, 64],
                                   strides=2, padding="SAME")
        h = tf.nn.relu(batch_norm("bn1", h))
        h = tf.nn.conv2d_transpose(h, weight("up2/w", [4, 4, 1, 64]), [batch, 28, 28, 1],
                                   strides=2, padding="SAME")
        h = tf.nn.bias_add(h, zeros("up2/b", [1]))
        return tf.sigmoid(h)


def discriminator(x, batch):
    """Returns a logit; the loss applies the sigmoid."""
    with tf1.variable_scope("discriminator", reuse=tf1.AUTO_REUSE):
        h = tf.nn.conv2d(x, weight("c1/w", [4, 4, 1, 64]), strides=2, padding="SAME")
        h = tf.nn.leaky_relu(tf.nn.bias_add(h, zeros("c1/b", [64])), alpha=0.2)
        h = tf.nn.conv2d(h, weight("c2/w", [4, 4, 64, 128]), strides=2, padding="SAME")
        h = tf.nn.leaky_relu(batch_norm("bn2", h), alpha=0.2)
        h = tf.reshape(h, [batch, 7 * 7 * 128])
        h = tf.matmul(h, weight("fc/w", [7 * 7 * 128, 1024])) + zeros("fc/b", [1024])
        h = tf.nn.leaky_relu(dense_batch_norm("bn_fc", h), alpha=0.2)
        return tf.matmul(h, weight("out/w", [1024, 1])) + zeros("out/b", [1])


def bce_logits(logits, label):
    return tf.reduce_mean(tf.nn.sigmoid_cross_entropy_with_logits(
        labels=tf.fill(tf.shape(logits), label), logits=logits))


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

    tf1.disable_eager_execution()
    tf1.set_random_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    x = tf1.placeholder(tf.float32, [batch, 28, 28, 1], name="x")
    z = tf1.placeholder(tf.float32, [batch, NOISE_DIM], name="z")
    fake_eval = tf.stop_gradient(generator(z, batch))
    g_vars = tf1.trainable_variables("generator")
    d_loss = (bce_logits(discriminator(x, batch), 1.0)
              + bce_logits(discriminator(fake_eval, batch), 0.0))
    d_vars = tf1.trainable_variables("discriminator")
    d_opt = tf1.train.AdamOptimizer(2e-4, beta1=0.5, beta2=0.999, epsilon=1e-8)
    d_train = d_opt.minimize(d_loss, var_list=d_vars)
    d_train_r1 = d_train
    if args.r1_weight > 0:
        # D's own pass over the real batch, as gan-run's penalty makes it (src/train/step.rs).
        (g,) = tf.gradients(tf.reduce_sum(discriminator(x, batch)), [x])
        r1 = (args.r1_weight * args.r1_every / 2) * tf.reduce_mean(
            tf.reduce_sum(tf.square(g), axis=[1, 2, 3]))
        d_train_r1 = d_opt.minimize(d_loss + r1, var_list=d_vars)

    g_loss = bce_logits(discriminator(generator(z, batch), batch), 1.0)
    g_train = tf1.train.AdamOptimizer(2e-4, beta1=0.5, beta2=0.999, epsilon=1e-8).minimize(
        g_loss, var_list=g_vars)
    with tf.control_dependencies([g_train]):
        g_train_and_average = tf1.train.ExponentialMovingAverage(EMA_DECAY).apply(g_vars)

    config = tf1.ConfigProto(intra_op_parallelism_threads=args.threads,
                             inter_op_parallelism_threads=args.threads)
    real = rng.random((batch, 28, 28, 1), dtype=np.float32)

    def noise():
        return rng.standard_normal((batch, NOISE_DIM), dtype=np.float32)

    with tf1.Session(config=config) as sess:
        sess.run(tf1.global_variables_initializer())

        d_steps = 0

        def step():
            nonlocal d_steps
            train = d_train_r1 if d_steps % args.r1_every == 0 else d_train
            d_steps += 1
            dl, _ = sess.run([d_loss, train], feed_dict={x: real, z: noise()})
            gl, _ = sess.run([g_loss, g_train_and_average], feed_dict={z: noise()})
            return dl, gl

        seconds, losses = time_steps(step, args.warmup, args.steps)
    report("tensorflow", tf.__version__, args.steps, seconds, args.threads, losses,
           model="dcgan", batch=batch)


if __name__ == "__main__":
    main()

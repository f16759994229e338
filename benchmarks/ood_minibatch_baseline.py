"""IRM's Colored-MNIST MLP trained on minibatches, as the zoo entries train, instead of the full batches
of `mibzoo reproduce table4`'s baselines (issue 12, thirty-first session: does a penalty that works on
whole environments still work on minibatches of 2,500 images?).

    PYTHONPATH=$PWD python benchmarks/ood_minibatch_baseline.py {none,irm,fishr,fishr_squared} \
        [--batch 2500] [--updates 600] [--anneal 190] [--weight 91257] [--seed 0]

Everything else is IRM's recipe (`mibzoo.reproduce.ood_baselines`: 390 units, L2 0.0011, Adam 5e-4,
the penalty weight 1 before update ``--anneal`` and ``--weight`` after, the loss divided by it). Each
minibatch is drawn from both training environments; the risk is the mean over the environments of
their mean cross-entropy. Penalties, from the minibatch: ``irm``, IRMv1's squared scale gradient per
environment from the batch's halves (unbiased); ``fishr``, Fishr's gradient-variance gap from the
halves; ``fishr_squared``, the same squared on all rows (Fishr's own form). Every 100 updates it prints
the risk and the penalty; at the end a JSON line with the accuracies (%) on the training environments,
the test environment, the test environment with its colours swapped, and their colour-neutral mean.
"""
import argparse
import json
import time

import numpy as np

PENALTIES = ("none", "irm", "fishr", "fishr_squared")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("penalty", choices=PENALTIES)
    parser.add_argument("--batch", type=int, default=2500)
    parser.add_argument("--updates", type=int, default=600)
    parser.add_argument("--anneal", type=int, default=190)
    parser.add_argument("--weight", type=float, default=91257.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    import mibzoo.data
    from mibzoo.estimators.gradient_variance import gradient_variance_gap, last_layer_gradients
    from mibzoo.estimators.halves import group_half_means
    from mibzoo.reproduce import ood_baselines

    train = mibzoo.data.load_arrays("colored_mnist", "train")
    test = mibzoo.data.load_arrays("colored_mnist", "test")
    keras.utils.set_random_seed(args.seed)
    settings = ood_baselines.IRM_SETTINGS
    x = ood_baselines.features(train["image"]).astype("float32")
    y = np.asarray(train["label"], "float32")
    environments = np.eye(2, dtype="float32")[np.asarray(train["env"])]
    mlp = ood_baselines.build_mlp(x.shape[1], settings.hidden, args.seed)
    optimizer = keras.optimizers.Adam(settings.learning_rate)
    optimizer.build(mlp.trainable_variables)
    hidden_layers, final_layer = mlp.layers[:-1], mlp.layers[-1]

    @tf.function(jit_compile=True)
    def step(xb, yb, eb, weight):
        with tf.GradientTape() as tape:
            h = xb
            for layer in hidden_layers:
                h = layer(h)
            logits = final_layer(h)[:, 0]
            rows = tf.nn.sigmoid_cross_entropy_with_logits(labels=yb, logits=logits)
            risk = tf.reduce_mean(tf.reduce_sum(eb * rows[:, None], 0) / tf.reduce_sum(eb, 0))
            residuals = tf.sigmoid(logits) - yb
            if args.penalty == "irm":
                # d/ds BCE(s f) at s = 1 is (σ(f) − y) f: its environment means from the two halves.
                means, _, _ = group_half_means((residuals * logits)[:, None], eb)
                penalty = tf.reduce_mean(means[0, :, 0] * means[1, :, 0])
            elif args.penalty.startswith("fishr"):
                penalty = gradient_variance_gap(last_layer_gradients(residuals[:, None], h), eb,
                                                pairs="none" if args.penalty == "fishr_squared" else "halves")
            else:
                penalty = tf.constant(0.0)
            norm = tf.add_n([tf.reduce_sum(tf.square(w)) for w in mlp.trainable_variables])
            loss = (risk + settings.l2 * norm + weight * penalty) / tf.maximum(weight, 1.0)
        optimizer.apply_gradients(zip(tape.gradient(loss, mlp.trainable_variables), mlp.trainable_variables))
        return risk, penalty

    rng = np.random.default_rng(args.seed)
    order, position, started = rng.permutation(len(x)), 0, time.perf_counter()
    for update in range(args.updates):
        if position + args.batch > len(x):
            order, position = rng.permutation(len(x)), 0
        rows = order[position:position + args.batch]
        position += args.batch
        weight = args.weight if update >= args.anneal else min(1.0, args.weight)
        risk, penalty = step(x[rows], y[rows], environments[rows], tf.constant(weight, tf.float32))
        if update % 100 == 0:
            print(f"update {update}: risk {float(risk):.4f} penalty {float(penalty):.3g}", flush=True)

    def accuracy(arrays):
        logits = mlp(ood_baselines.features(arrays["image"]).astype("float32"))[:, 0]
        return 100.0 * ood_baselines.accuracy(logits, np.asarray(arrays["label"], "float32"))

    env = np.asarray(train["env"])
    train_acc = float(np.mean([accuracy({k: v[env == e] for k, v in train.items()}) for e in (0, 1)]))
    test_acc, swapped = accuracy(test), accuracy(ood_baselines.swap_colours(test))
    print(json.dumps({**vars(args), "train": round(train_acc, 2), "test": round(test_acc, 2),
                      "swapped": round(swapped, 2), "neutral": round((test_acc + swapped) / 2, 2),
                      "seconds": round(time.perf_counter() - started, 1)}))


if __name__ == "__main__":
    main()

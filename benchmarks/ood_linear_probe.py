"""What an OOD entry's z holds: linear read-outs of q(z | x) on Colored-MNIST after training.

Trains a zoo entry as `mibzoo reproduce table4` does (`train_zoo_model`), then reads the means of
q(z | x) (`mibzoo.metrics.probe.posterior_means`) with the project's linear classifier
(`mibzoo.metrics.fairness.linear_classifier`: scikit-learn's logistic regression) and with the
label-conditional invariance statistics of `mibzoo.estimators`:

- the entry's own predictor p(y | x) = E_q(z|x) p(y | z) at 128 draws: training environments, test
  environment, and the test environment with its colours swapped (`ood_baselines.swap_colours`);
- a logistic regression fitted on the training environments (what ERM reads from z);
- one fitted on half of the test environment and read on the other half (how much of the label z
  holds where the colour is reversed);
- one fitted on half of the test environment together with the same images colour-swapped (the
  colour says nothing about the label there), read on the other half and its swap: the shape z holds;
- IRMv1's penalty (Arjovsky et al. 2019) on a linear read-out of the fixed means, full batch;
- `group_conditional_mean_gap` and `group_conditional_mmd` between the training environments on
  5,000 training rows, at the means of q and at draws from it, with the posterior's mean scale.

Usage:
  PYTHONPATH=$PWD python benchmarks/ood_linear_probe.py ood_cmnist 30 2500 ['OVERRIDES'] --seed S [--hide F]
"""
import argparse
import json

import numpy as np

from ood_probe import colored_mnist_splits, run_arguments


def logistic_accuracies(fit_x, fit_y, reads, seed):
    """Accuracy % of the project's linear classifier (`mibzoo.metrics.fairness.linear_classifier`:
    standardized features, scikit-learn's logistic regression) fitted on (fit_x, fit_y), on each
    (x, y) of ``reads``."""
    from mibzoo.metrics.fairness import linear_classifier

    head = linear_classifier(seed).fit(fit_x, fit_y)
    return [100.0 * float(np.mean(head.predict(x) == y)) for x, y in reads]


def irm_linear_head(z, labels, envs, penalty, steps=1500, seed=0):
    """A linear read-out w·z + b trained full batch on the mean risk of the training environments plus
    ``penalty`` times IRMv1's squared gradient along a scale of the logit (from a third of the steps
    on; the objective divided by the penalty weight from there, as IRM's code does). Returns it."""
    import tensorflow as tf

    from mibzoo.reproduce.ood_baselines import irm_penalty, mean_nll

    tf.random.set_seed(seed)
    z = tf.constant(z, tf.float32)
    labels = tf.constant(labels, tf.float32)
    rows = [np.flatnonzero(envs == e) for e in np.unique(envs)]
    weights = tf.Variable(tf.zeros((z.shape[-1], 1)))
    bias = tf.Variable(tf.zeros((1,)))
    optimizer = tf.keras.optimizers.Adam(1e-2)

    @tf.function
    def step(weight):
        with tf.GradientTape() as tape:
            logits = (z @ weights + bias)[:, 0]
            total = 0.0
            for r in rows:
                env_logits, env_labels = tf.gather(logits, r), tf.gather(labels, r)
                total += (mean_nll(env_logits, env_labels) + weight * irm_penalty(env_logits, env_labels)) / len(rows)
            total /= tf.maximum(1.0, weight)
        optimizer.apply_gradients(zip(tape.gradient(total, [weights, bias]), [weights, bias]))

    for k in range(steps):
        step(tf.constant(penalty if k >= steps // 3 else 1.0))
    return lambda x: (x @ weights.numpy() + bias.numpy())[:, 0] > 0


def main():
    parser = run_arguments(argparse.ArgumentParser(description=__doc__.split("\n")[0]))
    parser.add_argument("--irm-penalty", type=float, default=1e4, help="IRMv1 weight of the linear read-out")
    args = parser.parse_args()

    import keras

    import mibzoo.data
    from mibzoo.estimators.conditional_means import group_conditional_mean_gap
    from mibzoo.estimators.mmd import group_conditional_mmd, unit_scale
    from mibzoo.metrics.probe import posterior_means
    from mibzoo.reproduce.table3 import train_zoo_model
    from mibzoo.reproduce.table4 import label_accuracies

    original, train, present, test, swapped = colored_mnist_splits(args.hide, args.seed)
    model = train_zoo_model(args.entry, mibzoo.data.info("colored_mnist").modalities, train, args.epochs, args.batch,
                            args.seed, overrides=json.loads(args.overrides), present=present,
                            compile_options={"critic_optimizer": keras.optimizers.Adam(1e-3)})
    own = [100.0 * float(np.mean(list(label_accuracies(model, arrays, 128, args.seed).values())))
           for arrays in (original, test, swapped)]
    print(f"{args.entry} seed {args.seed} hide {args.hide} {args.overrides}")
    print("  p(y | x), 128 draws: train envs %.1f / test env %.1f / swapped %.1f" % tuple(own))

    train_z, test_z, swapped_z = (posterior_means(model, a, ["image"]) for a in (original, test, swapped))
    train_y, test_y, envs = (np.asarray(original["label"]), np.asarray(test["label"]), np.asarray(original["env"]))
    half = len(test_y) // 2
    first, second = slice(0, half), slice(half, None)
    erm = logistic_accuracies(train_z, train_y, [(train_z, train_y), (test_z, test_y), (swapped_z, test_y)], args.seed)
    print("  logistic regression on the mean of q(z | x), fitted on the training envs: "
          "train envs %.1f / test env %.1f / swapped %.1f" % tuple(erm))
    bound = logistic_accuracies(test_z[first], test_y[first], [(test_z[second], test_y[second])], args.seed)
    print("  fitted on half of the test env, read on the other half: %.1f" % bound[0])
    balanced = logistic_accuracies(np.concatenate([test_z[first], swapped_z[first]]),
                                   np.concatenate([test_y[first], test_y[first]]),
                                   [(test_z[second], test_y[second]), (swapped_z[second], test_y[second])], args.seed)
    print("  fitted on half of the test env and its colour swap (colour-balanced): test env %.1f / swapped %.1f, "
          "colour-neutral %.1f" % (*balanced, np.mean(balanced)))
    irm = irm_linear_head(train_z, train_y, envs, args.irm_penalty)
    print("  IRMv1 linear read-out (weight %g, full batch): train envs %.1f / test env %.1f / swapped %.1f"
          % (args.irm_penalty, *(100.0 * np.mean(irm(z) == y)
                                 for z, y in ((train_z, train_y), (test_z, test_y), (swapped_z, test_y)))))

    rng = np.random.default_rng(args.seed)
    rows = rng.permutation(len(train_y))[:5000]
    one_hot_y, one_hot_e = np.eye(2, dtype="float32")[train_y[rows]], np.eye(3, dtype="float32")[envs[rows]]
    scales = np.asarray(model.encode({"image": np.asarray(original["image"])[rows]})["scale"])
    draws = train_z[rows] + scales * rng.normal(size=scales.shape).astype("float32")
    for name, z in (("means of q", train_z[rows]), ("draws from q", draws)):
        z = unit_scale(z)
        print("  Z ⊥ E | Y statistics at the %s: whitened mean gap %.4f, MMD (inverse multiquadric) %.5f"
              % (name, float(group_conditional_mean_gap(z, one_hot_y, one_hot_e)),
                 float(group_conditional_mmd(z, one_hot_y, one_hot_e, kernel="imq"))))
    print("  posterior scale (mean over the 5,000 rows and the dimensions) %.3f, standard deviation of the "
          "means over all training images %.3f" % (float(scales.mean()), float(train_z.std(0).mean())))

if __name__ == "__main__":
    main()

"""What an `ood_cmnist` run holds when its penalty starts (issue 12, thirty-eighth session): forks at
the onset showed that seed 4 of the table is lost before it, so this reads the state after the first
200 network updates (10 epochs at batch 2,500, the entry's learning rate 5e-4) for several seeds.

For each seed it trains the entry as `mibzoo reproduce table4` does for those updates and prints, from
the means of q(z | x) and q(u_image | x) on the training images, how much digit shape each holds: the
ROC AUC of a logistic regression (scikit-learn) of the label on them within each colour group (fitted
on half of the group, scored on the other half, averaged over the two colours). The colour is constant
within a group, so the AUC reads shape alone; with IRM's 25 % label noise even a perfect shape
classifier stays far from 1.

Usage:
  PYTHONPATH=$PWD python benchmarks/ood_onset_state.py SEED [SEED ...]
"""
import argparse

import numpy as np

ONSET_EPOCHS, BATCH, LEARNING_RATE = 10, 2500, 5e-4


def shape_auc(features, labels, channel, seed=0):
    """Mean over the two colour groups of the held-out ROC AUC of a logistic regression of ``labels``
    on ``features`` fitted on a random half of the group."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rng = np.random.default_rng(seed)
    aucs = []
    for colour in (0, 1):
        rows = rng.permutation(np.flatnonzero(channel == colour))
        fit, score = rows[: len(rows) // 2], rows[len(rows) // 2:]
        classifier = LogisticRegression(max_iter=2000).fit(features[fit], labels[fit])
        aucs.append(roc_auc_score(labels[score], classifier.predict_proba(features[score])[:, 1]))
    return float(np.mean(aucs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seeds", type=int, nargs="+")
    args = parser.parse_args()

    import keras

    import mibzoo.data
    from mibzoo.reproduce.table3 import train_zoo_model

    train = mibzoo.data.load_arrays("colored_mnist", "train")
    images, labels = np.asarray(train["image"]), np.asarray(train["label"]).astype(int)
    channel = (images[..., 1].reshape(len(images), -1).sum(1) > 0).astype(int)
    for seed in args.seeds:
        model = train_zoo_model("ood_cmnist", mibzoo.data.info("colored_mnist").modalities, train, ONSET_EPOCHS, BATCH,
                                seed, LEARNING_RATE, compile_options={"critic_optimizer": keras.optimizers.Adam(1e-3)})
        encoded = [model.encode({"image": images[i:i + 5000]}) for i in range(0, len(images), 5000)]
        z = np.concatenate([np.asarray(e["loc"]) for e in encoded])
        u = np.concatenate([np.asarray(e["private"]["image"]["loc"]) for e in encoded])
        print(f"seed {seed}: shape within a colour after {int(model.optimizer.iterations)} updates: "
              f"z AUC {shape_auc(z, labels, channel):.3f}, u_image AUC {shape_auc(u, labels, channel):.3f}", flush=True)


if __name__ == "__main__":
    main()

"""What an `ood_cmnist` run holds when its penalty starts (issue 12, thirty-eighth session): forks at
the onset showed that seed 4 of the table is lost before it, so this reads the state after the
network updates before the onset (the `delay_steps` of the entry's penalty schedule: 200, i.e. 10
epochs at the table's batch of 2,500 and learning rate 5e-4, `table4.Budget`) for several seeds.

For each seed it trains the entry as `mibzoo reproduce table4` does for those updates and prints, from
the means of q(z | x) and q(u_image | x) on the training images, how much digit shape each holds: the
ROC AUC of a logistic regression (scikit-learn) of the label on them within each colour group (fitted
on half of the group, scored on the other half, averaged over the two colours). The colour is constant
within a group, so the AUC reads shape alone; with IRM's 25 % label noise even a perfect shape
classifier stays far from 1. Across colours (thirty-ninth session): the same regression fitted on one
colour's group and scored on the other's, i.e. whether the two colours' shape directions are one.

Usage:
  PYTHONPATH=$PWD python benchmarks/ood_onset_state.py SEED [SEED ...]
"""
import argparse

import numpy as np

ENTRY = "ood_cmnist"


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


def transfer_auc(features, labels, channel):
    """Mean over the two colours of the ROC AUC, on the other colour's group, of a logistic regression
    of ``labels`` on ``features`` fitted on one colour's group: whether the direction that reads the
    shape of one colour's digits reads the shape of the other's. A network sees the two colours through
    separate input weights, so nothing before the penalty makes the two directions one; an invariant
    predictor needs them to be."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    aucs = []
    for colour in (0, 1):
        fit, score = channel == colour, channel != colour
        classifier = LogisticRegression(max_iter=2000).fit(features[fit], labels[fit])
        aucs.append(roc_auc_score(labels[score], classifier.predict_proba(features[score])[:, 1]))
    return float(np.mean(aucs))


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("seeds", type=int, nargs="+")
    args = parser.parse_args()

    import keras

    import mibzoo.data
    from mibzoo.registry import entry_spec
    from mibzoo.reproduce.ood_baselines import single_channel_split
    from mibzoo.reproduce.table3 import train_zoo_model
    from mibzoo.reproduce.table4 import Budget

    train = mibzoo.data.load_arrays("colored_mnist", "train")
    images, labels = np.asarray(train["image"]), np.asarray(train["label"]).astype(int)
    _, channel = single_channel_split(images)
    budget = Budget()
    batch = budget.batch_size[ENTRY]
    onset = entry_spec(ENTRY).config["term_options"]["environment_recalibration"]["weight_schedule"]["config"]["delay_steps"]
    epochs, rest = divmod(onset, -(-len(images) // batch))
    if rest:
        raise SystemExit(f"ood_onset_state: the onset at update {onset} is not at the end of an epoch of batch {batch}")
    for seed in args.seeds:
        model = train_zoo_model(ENTRY, mibzoo.data.info("colored_mnist").modalities, train, epochs, batch, seed,
                                budget.learning_rate[ENTRY],
                                compile_options={"critic_optimizer": keras.optimizers.Adam(budget.critic_learning_rate)})
        encoded = [model.encode({"image": images[i:i + 5000]}) for i in range(0, len(images), 5000)]
        z = np.concatenate([np.asarray(e["loc"]) for e in encoded])
        u = np.concatenate([np.asarray(e["private"]["image"]["loc"]) for e in encoded])
        print(f"seed {seed}: shape within a colour after {int(model.optimizer.iterations)} updates: "
              f"z AUC {shape_auc(z, labels, channel):.3f}, u_image AUC {shape_auc(u, labels, channel):.3f}; "
              f"across colours: z AUC {transfer_auc(z, labels, channel):.3f}, "
              f"u_image AUC {transfer_auc(u, labels, channel):.3f}", flush=True)


if __name__ == "__main__":
    main()

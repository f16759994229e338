"""How a fairness entry's Table 3 scores move from epoch to epoch of one run (issue 11: is the
spread of DEO over seeds where training stops, or where it goes?).

    PYTHONPATH=$PWD python benchmarks/fair_epochs.py ENTRY EPOCHS ['{"beta2": 3000}'] [--dataset adult]
        [--seeds 0] [--from-epoch 1]

Trains ENTRY on the table's split for each seed exactly as `mibzoo reproduce table3` does
(`table3_runs.splits`, `train_zoo_model`, the table's batch size, Adam 1e-3) and after every epoch
from ``--from-epoch`` scores U_x the table's way (`fairness.representation_fairness`: logistic
regression C = 1 on standardized U_x fit on the whole training split): ACC, DEO with its sign
(TPR(a=0) − TPR(a=1); negative: a = 1 favoured), DP. The last epoch's row is the table's row.
"""
import argparse
import json
import time

import numpy as np
from fair_probe import add_run_arguments  # the benchmarks directory is on sys.path when run as a script


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add_run_arguments(parser)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--from-epoch", type=int, default=1, help="first epoch (1-based) to score")
    args = parser.parse_args()

    import keras

    import mibzoo.data
    from mibzoo.metrics import fairness
    from mibzoo.reproduce.table3_runs import FULL, splits, train_zoo_model

    overrides = json.loads(args.overrides)
    modalities = mibzoo.data.info(args.dataset).modalities
    batch = FULL.batch_size[args.dataset]
    for seed, train, test in splits(args.dataset, args.seeds, FULL):
        y, a = np.asarray(test["target"]), np.asarray(test["a"])

        class Score(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                if epoch + 1 < args.from_epoch:
                    return
                u_train = fairness.representation(self.model, train)
                u_test = fairness.representation(self.model, test)
                classifier = fairness.linear_classifier(seed).fit(u_train, train["target"])
                y_hat = classifier.predict(u_test).astype("int64")
                scores = fairness.fairness_scores(y, y_hat, a)
                gap = np.mean(y_hat[(y == 1) & (a == 0)]) - np.mean(y_hat[(y == 1) & (a == 1)])
                print(f"  seed {seed} epoch {epoch + 1:3d}: ACC {scores['acc']:.3f} DEO {scores['deo']:.3f} "
                      f"(signed {gap:+.3f}) DP {scores['dp']:.3f}", flush=True)

        started = time.perf_counter()
        train_zoo_model(args.entry, modalities, train, args.epochs, batch, seed, overrides=overrides, callbacks=[Score()])
        print(f"{args.entry} {args.dataset} seed {seed} {args.epochs} ep batch {batch} {json.dumps(overrides)} "
              f"({time.perf_counter() - started:.0f} s with scoring)", flush=True)


if __name__ == "__main__":
    main()

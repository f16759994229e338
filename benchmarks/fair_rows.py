"""The rows of `mibzoo reproduce table3` for one fairness entry on one data set, with overrides:
the table's splits, budget and scoring (`table3_runs.splits`, `entry_scores`, `FULL`), without
rerunning every other row.

    PYTHONPATH=$PWD python benchmarks/fair_rows.py ENTRY DATASET ['{"beta2": 10000}'] [--seeds 0 1 2 3 4]

Prints ACC / DEO / DP per seed (German: per split) and their mean ± std (sample std, as the table).
"""
import argparse
import json
import time

import numpy as np


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("entry")
    parser.add_argument("dataset", choices=("adult", "german"))
    parser.add_argument("overrides", nargs="?", default="{}", help="JSON: hyperparameters or model fields")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    args = parser.parse_args()

    import mibzoo.data
    from mibzoo.reproduce.table3_runs import FULL, entry_scores, splits

    overrides = json.loads(args.overrides)
    modalities = mibzoo.data.info(args.dataset).modalities
    started, rows = time.perf_counter(), []
    for seed, train, test in splits(args.dataset, args.seeds, FULL):
        rows.append(entry_scores(args.entry, args.dataset, train, test, seed, FULL, modalities, overrides or None))
        print(f"  seed {seed}: " + " ".join(f"{k.upper()} {v:.3f}" for k, v in rows[-1].items()), flush=True)
    summary = " ".join(f"{metric.upper()} {np.mean(values):.3f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.3f}"
                       for metric in ("acc", "deo", "dp") for values in [[r[metric] for r in rows]])
    print(f"{args.entry} {args.dataset} {json.dumps(overrides)}: {summary} "
          f"({time.perf_counter() - started:.0f} s)", flush=True)


if __name__ == "__main__":
    main()

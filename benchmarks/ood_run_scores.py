"""Table 4's accuracies of `mibzoo train` runs on `colored_mnist`, read as `mibzoo reproduce table4`
reads its own runs (issue 12, fortieth session).

    python benchmarks/ood_run_scores.py RUN_DIR [RUN_DIR ...] [--samples 128]

For each run directory prints one JSON line: the training environments' mean accuracy and their gap
(environment 0 − environment 1), the test environment's accuracy, and the test environment's with its
colours swapped
(`mibzoo.reproduce.table4.entry_accuracies`, argmax of E_q(z|x) p(y | z) over ``--samples`` draws
seeded with the run's seed), for the run's final model (``model.keras``: with
``--restore-most-invariant``, its selected epoch) and for its newest checkpoint (the last epoch);
plus the selected epoch and the per-epoch ``invariance_gain`` readings of its history.

Example, the command the fortieth session measured:

    python -m mibzoo train ood_cmnist --dataset colored_mnist --epochs 30 --hide-labels label=0.5 \\
        --restore-most-invariant 20 --seed 0 --out runs/semi_0
    python benchmarks/ood_run_scores.py runs/semi_0
"""
import argparse
import json


def scores(model, train, test, samples, seed):
    """``{"train_acc", "env_gap", "test_acc", "swapped_acc"}`` in % (points), as the table reports
    them; ``env_gap`` is its "env 0 − env 1" column (`mibzoo.reproduce.table4.environment_gap`)."""
    from mibzoo.reproduce.table4 import entry_accuracies, environment_gap

    accuracies = entry_accuracies(model, train, test, samples, seed)
    return {"train_acc": round(100 * accuracies["train_acc"], 2), "env_gap": round(environment_gap(accuracies), 2),
            "test_acc": round(100 * accuracies["test_acc"], 2), "swapped_acc": round(100 * accuracies["swapped_acc"], 2)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="run directories written by mibzoo train")
    parser.add_argument("--samples", type=int, default=128, help="draws of z per image (the table's 128)")
    args = parser.parse_args()

    import mibzoo.data
    from mibzoo.checkpoints import RunCheckpoints
    from mibzoo.experiment import load_model, load_run_model
    from mibzoo.run_records import read_json

    train = mibzoo.data.load_arrays("colored_mnist", "train")
    test = mibzoo.data.load_arrays("colored_mnist", "test")
    for run in args.runs:
        record = read_json(f"{run}/run.json")
        if record.get("dataset") != "colored_mnist":
            raise SystemExit(f"{run}: a run on {record.get('dataset')!r}, not colored_mnist")
        seed = record["seed"]
        checkpoints = RunCheckpoints(run)
        newest = checkpoints.manifest()["checkpoints"][-1]
        last = load_model(checkpoints.folder / newest["file"], newest["sha256"])
        print(json.dumps({
            "run": run, "entry": record["entry"], "seed": seed, "hidden_labels": record.get("hidden_labels"),
            "train_seconds": record["train_seconds"], "selected_epoch": record.get("selected_epoch"),
            **scores(load_run_model(run), train, test, args.samples, seed),
            "last_epoch": newest["epoch"],
            "last": scores(last, train, test, args.samples, seed),
            "invariance_gain": {row["epoch"] + 1: row["invariance_gain"] for row in checkpoints.history()
                                if "invariance_gain" in row},
        }), flush=True)


if __name__ == "__main__":
    main()

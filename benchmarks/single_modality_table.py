"""Prints the markdown table of docs/results.md's single-modality section from run directories
written by `mibzoo train` and `mibzoo evaluate` (their run.json and metrics.json), and copies each
run's plots next to the docs (``--plots DIR``).

    PYTHONPATH=$PWD python benchmarks/single_modality_table.py RUN_DIR [RUN_DIR ...] [--plots DIR]
"""
import argparse
import json
import pathlib
import shutil

COLUMNS = [("sample_quality/image/confidence", "confidence ↑", "{:.3f}"),
           ("sample_quality/image/class_entropy", "class entropy (nats) ↑", "{:.3f}"),
           ("sample_quality/image/frechet", "Fréchet ↓", "{:.1f}"),
           ("code_accuracy/digit_code/image", "code → class ↑", "{:.3f}"),
           ("log_likelihood/joint", "log-likelihood ↑", "{:.1f}"),
           ("probe/joint", "probe ↑", "{:.3f}"),
           ("reconstruction/image", "reconstruction ↓", "{:.4f}")]


def row(run_dir):
    run_dir = pathlib.Path(run_dir)
    run = json.loads((run_dir / "run.json").read_text())
    values = json.loads((run_dir / "metrics.json").read_text())["metrics"]
    rate = run.get("learning_rate")
    options = f" --learning-rate {rate:g}" if rate is not None else ""
    command = (f"`mibzoo train {run['entry']} --dataset {run['dataset']} --epochs {run['epochs_completed']}{options} "
               f"--out RUN && mibzoo evaluate RUN`")
    cells = [fmt.format(values[key]) if key in values else "—" for key, _, fmt in COLUMNS]
    return (f"| `{run['entry']}` | {run['epochs_completed']} | " + " | ".join(cells)
            + f" | {run['train_seconds']:.0f} | {command} |")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("runs", nargs="+", help="run directories")
    parser.add_argument("--plots", help="copy RUN/plots/*.png to DIR/<entry>_<name>.png")
    args = parser.parse_args()
    print("| entry | epochs | " + " | ".join(title for _, title, _ in COLUMNS) + " | train s | command |")
    print("|---|---|" + "---|" * len(COLUMNS) + "---|---|")
    for run_dir in args.runs:
        print(row(run_dir))
        if args.plots:
            entry = json.loads((pathlib.Path(run_dir) / "run.json").read_text())["entry"]
            for png in sorted((pathlib.Path(run_dir) / "plots").glob("*.png")):
                target = pathlib.Path(args.plots) / f"{entry}_{png.name}"
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(png, target)


if __name__ == "__main__":
    main()

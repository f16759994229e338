"""Figures for comparisons and runs (matplotlib, Agg backend: works without a display).

- `sample_grid`: cross-modal samples, each conditioning input beside what was generated from it;
- `prior_grid`: joint samples from the prior, one column per sample, one row per modality;
- `latent_grid`: a table of samples (rows and columns labelled by latent values: InfoGAN's codes ×
  samples, continuous-code traversals);
- `metric_bars`: one bar chart per metric, models side by side, error bars = std over seeds;
- `figure_to_array`: a figure as an RGB array (for TensorBoard image summaries).

Values of any modality kind are drawn: images as pictures (two-channel images as red/green),
categoricals as their most likely class (and its probability), vectors as bar plots.

Example:

```python
from mibzoo import plots
plots.sample_grid(images_a, model.generate({"image_a": images_a}, "image_b", num_samples=4),
                  image_spec, image_spec, title="image_a -> image_b", path="grid.png")
```
"""
import pathlib

import numpy as np


def _pyplot():
    import matplotlib
    matplotlib.use("Agg", force=False)  # no display needed; a no-op if Agg is already in use
    import matplotlib.pyplot as plt
    return plt


def _as_rgb(image):
    image = np.clip(np.asarray(image, "float32"), 0.0, 1.0)
    channels = image.shape[-1]
    if channels == 1:
        return image[..., 0], "gray"
    if channels == 2:  # Colored-MNIST: red and green channels
        return np.concatenate([image, np.zeros(image.shape[:-1] + (1,), "float32")], -1), None
    return image[..., :3], None


def draw(ax, value, spec):
    """Draws one example of a modality on a matplotlib axis."""
    value = np.asarray(value)
    ax.set_xticks([])
    ax.set_yticks([])
    kind = spec["kind"]
    if kind == "image":
        picture, cmap = _as_rgb(value)
        ax.imshow(picture, cmap=cmap, vmin=0.0, vmax=1.0)
    elif kind == "categorical":
        if value.ndim == 0 or value.size == 1:
            text = f"{int(value.reshape(-1)[0])}"
        else:
            k = int(np.argmax(value))
            text = f"{k}\n({float(value[k]):.2f})" if not np.allclose(value, np.eye(len(value))[k]) else f"{k}"
        ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    else:
        flat = value.reshape(-1)
        ax.bar(np.arange(len(flat)), flat, color="tab:blue")


def sample_grid(conditioning, generated, source_spec, target_spec, title=None, path=None):
    """Conditioning inputs (first column) beside samples generated from them.

    Args:
        conditioning: ``[n, *event]`` the inputs (categoricals: ids or one-hot rows).
        generated: ``[S, n, *event]`` samples of the target (as `MIBModel.generate` returns).
        source_spec, target_spec: modality specs of both.
        title: figure title.
        path: if given, the figure is saved there as PNG and closed.

    Returns:
        The matplotlib figure (None if saved to ``path``).
    """
    plt = _pyplot()
    conditioning = np.asarray(conditioning)
    generated = np.asarray(generated)
    if generated.ndim < 2 or generated.shape[1] != len(conditioning):
        raise ValueError(f"sample_grid: generated must be [S, n, ...] with n = {len(conditioning)} conditioning "
                         f"inputs; got shape {list(generated.shape)}")
    n, s = len(conditioning), len(generated)
    fig, axes = plt.subplots(n, s + 1, figsize=(1.1 * (s + 1) + 0.3, 1.1 * n + 0.5), squeeze=False)
    for row in range(n):
        draw(axes[row, 0], conditioning[row], source_spec)
        for col in range(s):
            draw(axes[row, col + 1], generated[col, row], target_spec)
    axes[0, 0].set_title("input", fontsize=8)
    for col in range(s):
        axes[0, col + 1].set_title(f"sample {col + 1}", fontsize=8)
    for row in range(n):
        axes[row, 0].spines[:].set_color("tab:red")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


def prior_grid(samples, specs, title=None, path=None):
    """Joint samples from the prior: one column per sample, one row per modality.

    Args:
        samples: ``{modality: [n, *event]}`` (as `MIBModel.sample` returns).
        specs: ``{modality: spec}``.
        title, path: as `sample_grid`.
    """
    plt = _pyplot()
    names = list(samples)
    n = len(np.asarray(samples[names[0]]))
    fig, axes = plt.subplots(len(names), n, figsize=(1.0 * n + 0.8, 1.1 * len(names) + 0.5), squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            draw(axes[r, c], np.asarray(samples[name])[c], specs[name])
        axes[r, 0].set_ylabel(name, fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


def latent_grid(values, spec, row_labels=None, column_labels=None, title=None, path=None):
    """A table of samples of one modality: ``values[r, c]`` drawn in row r, column c.

    Args:
        values: ``[R, C, *event]``, e.g. samples with an InfoGAN code fixed to value r (rows) and the
            other latents of column c (`mibzoo.metrics.codes.code_samples`), or a traversal of a
            continuous code.
        spec: the modality's spec.
        row_labels, column_labels: optional labels (R and C strings).
        title, path: as `sample_grid`.
    """
    plt = _pyplot()
    values = np.asarray(values)
    if values.ndim < 3:
        raise ValueError(f"latent_grid: values must be [rows, columns, ...], got shape {list(values.shape)}")
    rows, cols = values.shape[:2]
    for labels, count, what in ((row_labels, rows, "row_labels"), (column_labels, cols, "column_labels")):
        if labels is not None and len(labels) != count:
            raise ValueError(f"latent_grid: {what} has {len(labels)} entries for {count}")
    fig, axes = plt.subplots(rows, cols, figsize=(0.8 * cols + 0.9, 0.8 * rows + 0.6), squeeze=False)
    for r in range(rows):
        for c in range(cols):
            draw(axes[r, c], values[r, c], spec)
        if row_labels is not None:
            axes[r, 0].set_ylabel(str(row_labels[r]), fontsize=8, rotation=0, ha="right", va="center")
    if column_labels is not None:
        for c in range(cols):
            axes[0, c].set_title(str(column_labels[c]), fontsize=7)
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


def metric_bars(summary, metrics, path=None, chance=None, title=None, higher_is_better=None):
    """Bar charts of metrics across models, error bars = std over seeds.

    Args:
        summary: ``{model: {metric: {"mean": m, "std": s, "n": k}}}`` (`Report.summary`).
        metrics: metric names to draw (one panel each).
        path: PNG path (the figure is closed after saving); None returns the figure.
        chance: optional ``{metric: chance level}`` drawn as a dashed line.
        title: figure title.
        higher_is_better: optional ``callable(metric) -> bool`` marking each panel ↑ or ↓.
    """
    plt = _pyplot()
    models = list(summary)
    metrics = list(metrics)
    if not metrics:
        raise ValueError("metric_bars: no metrics to draw")
    cols = min(3, len(metrics))
    rows = int(np.ceil(len(metrics) / cols))
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.0 * rows), squeeze=False)
    colours = plt.get_cmap("tab10")(np.arange(len(models)) % 10)
    for k, metric in enumerate(metrics):
        ax = axes[k // cols, k % cols]
        means = [summary[m].get(metric, {}).get("mean", np.nan) for m in models]
        stds = [summary[m].get(metric, {}).get("std", 0.0) or 0.0 for m in models]
        ax.bar(np.arange(len(models)), means, yerr=stds, capsize=4, color=colours)
        ax.set_xticks(np.arange(len(models)))
        ax.set_xticklabels(models, rotation=30, ha="right", fontsize=8)
        arrow = "" if higher_is_better is None else (" ↑" if higher_is_better(metric) else " ↓")
        ax.set_title(metric + arrow, fontsize=9)
        finite = [v for v in means if np.isfinite(v)]
        if finite and all(v < 0 for v in finite):
            # log-likelihoods: zoom on the range where the models differ
            low = min(m - s for m, s in zip(means, stds) if np.isfinite(m))
            high = max(m + s for m, s in zip(means, stds) if np.isfinite(m))
            pad = 0.1 * (high - low) + 1e-3
            ax.set_ylim(low - pad, min(0.0, high + pad))
        if chance and metric in chance:
            ax.axhline(chance[metric], color="gray", linestyle="--", linewidth=1, label="chance")
            ax.legend(fontsize=7, loc="lower right")
    for k in range(len(metrics), rows * cols):
        axes[k // cols, k % cols].axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return _finish(fig, path)


def figure_to_array(fig):
    """An RGB ``uint8`` array ``[H, W, 3]`` of a figure (the figure is closed)."""
    plt = _pyplot()
    fig.canvas.draw()
    array = np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()
    plt.close(fig)
    return array


def _finish(fig, path):
    if path is None:
        return fig
    plt = _pyplot()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return None


def accuracy_fairness(panels, sweep, path):
    """ACC against DEO: one panel per data set (our models as means with std bars, published
    points hollow) and one for a hyperparameter sweep; written atomically as a PNG.

    Args:
        panels: ``{dataset: (ours, published)}``, each ``{label: ((deo, deo_std), (acc, acc_std))}``.
        sweep: ``[(value, deo, acc)]`` of one model over a hyperparameter (β2), drawn as a line.
        path: the PNG to write.
    """
    from mibzoo.files import atomic_path

    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels) + 1, figsize=(5.2 * (len(panels) + 1), 4.6))
    cycle = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    labels = list(dict.fromkeys(label for ours, _ in panels.values() for label in ours))
    colours = {label: cycle[k % len(cycle)] for k, label in enumerate(labels)}
    for ax, (dataset, (ours, published)) in zip(axes, panels.items()):
        for label, ((deo, deo_std), (acc, acc_std)) in ours.items():
            ax.errorbar(deo, acc, xerr=deo_std, yerr=acc_std, fmt="o", color=colours[label], label=label, capsize=3)
        for label, ((deo, deo_std), (acc, acc_std)) in published.items():
            ax.errorbar(deo, acc, xerr=deo_std or None, yerr=acc_std or None, fmt="s", mfc="none", color="grey",
                        alpha=0.6, capsize=2)
            ax.annotate(label, (deo, acc), fontsize=6, color="grey", xytext=(3, 3), textcoords="offset points")
        ax.set_title(f"{dataset} (filled: ours; hollow grey: published)", fontsize=9)
        ax.set_xlabel("DEO (lower is fairer)")
        ax.set_ylabel("ACC")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    ax = axes[-1]
    if sweep:
        values, deo, acc = zip(*sweep)
        ax.plot(deo, acc, "-o", color=colours.get("fair_mmd", cycle[0]))
        for value, x, y in sweep:
            ax.annotate(f"β2={value:g}", (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
    ax.set_title("fair_mmd on adult over β2", fontsize=9)
    ax.set_xlabel("DEO (lower is fairer)")
    ax.set_ylabel("ACC")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)


def train_test_accuracy(ours, published, path):
    """Train-environment against test-environment accuracy (Table 4): our methods as means with std
    bars, published rows as hollow grey squares, and the diagonal (no generalization gap); written
    atomically as a PNG.

    Args:
        ours: ``{label: ((train, train_std), (test, test_std))}`` in %.
        published: the same for the paper's rows.
        path: the PNG to write.
    """
    from mibzoo.files import atomic_path

    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 5.2))
    # Grey marks the published rows, so no row of ours is drawn in it.
    from matplotlib.colors import to_hex

    cycle = [c for c in plt.rcParams["axes.prop_cycle"].by_key()["color"] if to_hex(c) not in ("#7f7f7f", "#808080")]
    for k, (label, ((train, train_std), (test, test_std))) in enumerate(ours.items()):
        ax.errorbar(train, test, xerr=train_std, yerr=test_std, fmt="o", color=cycle[k % len(cycle)], label=label,
                    capsize=3)
    for label, ((train, train_std), (test, test_std)) in published.items():
        ax.errorbar(train, test, xerr=train_std or None, yerr=test_std or None, fmt="s", mfc="none", color="grey",
                    alpha=0.6, capsize=2)
        ax.annotate(label, (train, test), fontsize=6, color="grey", xytext=(3, 3), textcoords="offset points")
    ax.plot([0, 100], [0, 100], ":", color="grey", lw=0.8)
    ax.set_xlim(40, 100)
    ax.set_ylim(0, 100)
    ax.set_xlabel("accuracy on the training environments (%)")
    ax.set_ylabel("accuracy on the test environment (%)")
    ax.set_title("Colored-MNIST (filled: ours; hollow grey: published)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)

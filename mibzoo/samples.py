"""A model's samples for people to look at: cross-modal generations of every ordered pair of
modalities, joint samples from the prior, InfoGAN-style code grids and traversals, as arrays and
as PNG grids (`mibzoo.plots`). `mibzoo evaluate` writes them into ``RUN_DIR/plots/``; the
TensorBoard callback logs them per epoch."""
import pathlib

import numpy as np


def cross_modal_samples(model, examples, seed=0, num_samples=4, prior_samples=None):
    """Samples of every ordered pair of modalities, and joint samples from the prior.

    Args:
        model: an `MIBModel`.
        examples: ``{modality: [n, ...]}`` conditioning inputs.
        seed: sampling seed.
        num_samples: draws per conditioning input.
        prior_samples: joint samples from the prior (default: as many as examples).

    Returns:
        ``{"cross": {(source, target): (inputs, generated [num_samples, n, ...])}, "prior":
        {modality: [prior_samples, ...]}}`` as numpy arrays; ``cross`` is empty for models
        without an inference network.
    """
    import keras

    specs = model.modality_specs
    cross = {}
    if model.has_inference:
        for source in specs:
            for target in specs:
                if source != target and source in examples:
                    generated = model.generate({source: examples[source]}, target, num_samples=num_samples, seed=seed)
                    cross[(source, target)] = (np.asarray(examples[source]), keras.ops.convert_to_numpy(generated))
    count = prior_samples or len(next(iter(examples.values())))
    prior = {k: keras.ops.convert_to_numpy(v) for k, v in model.sample(count, seed=seed).items()}
    return {"cross": cross, "prior": prior}


def write_sample_plots(model, examples, folder, seed=0, num_samples=4):
    """PNG grids: ``samples_<A>-to-<B>.png`` for every ordered pair of modalities (inputs beside
    generated samples) and ``prior.png`` (joint samples from the prior). Returns the paths."""
    from mibzoo import plots

    folder = pathlib.Path(folder)
    specs = model.modality_specs
    samples = cross_modal_samples(model, examples, seed, num_samples)
    paths = []
    for (source, target), (conditioning, generated) in samples["cross"].items():
        path = folder / f"samples_{source}-to-{target}.png"
        plots.sample_grid(conditioning, generated, specs[source], specs[target],
                          title=f"{model.name}: {source} -> {target}", path=path)
        paths.append(path)
    plots.prior_grid(samples["prior"], specs, title=f"{model.name}: samples from the prior", path=folder / "prior.png")
    return paths + [folder / "prior.png"] + write_code_plots(model, folder, seed)


def write_code_plots(model, folder, seed=0, columns=10):
    """PNG grids of InfoGAN-style codes, per image modality: ``codes_<block>_<modality>.png`` (one row
    per value of a categorical code, ``columns`` samples each, column j with the same other latents)
    and ``traversal_<block>_<d>_<modality>.png`` (dimension d of a continuous code from −2 to 2 along
    each row). Returns the paths (none for models without codes)."""
    from mibzoo import plots
    from mibzoo.metrics import codes

    folder = pathlib.Path(folder)
    images = [m for m, spec in model.modality_specs.items() if spec["kind"] == "image"]
    paths = []
    for m in images:
        for block in codes.categorical_code_blocks(model):
            values = codes.code_samples(model, block, m, columns, seed)
            path = folder / f"codes_{block}_{m}.png"
            plots.latent_grid(values, model.modality_specs[m], row_labels=[f"{block}={k}" for k in range(len(values))],
                              title=f"{model.name}: {m} for each value of {block}", path=path)
            paths.append(path)
        for block in codes.continuous_code_blocks(model):
            for d in range(dict(zip(model.block_names, model.block_sizes))[block]):
                steps = (-2.0, -1.0, 0.0, 1.0, 2.0)
                values = codes.code_traversal(model, block, d, m, steps, seed=seed)
                path = folder / f"traversal_{block}_{d}_{m}.png"
                plots.latent_grid(values, model.modality_specs[m], column_labels=[f"{v:+g}" for v in steps],
                                  title=f"{model.name}: {block}[{d}] from -2 to 2", path=path)
                paths.append(path)
    return paths

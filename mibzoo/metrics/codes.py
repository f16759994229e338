"""Does a categorical latent code control the class of what is generated? (InfoGAN, Chen et al. 2016)

For a categorical code block with K values (``"prior": "categorical"``, e.g. infogan's
``digit_code``), samples are drawn with the code fixed to each value k (the other blocks from the
prior) and read by a classifier. That gives a K × C table ``counts[k, c]`` (samples of code k read
as class c). Codes are learned without labels, so code k may stand for any class: the score is the
accuracy of the best one-to-one assignment of codes to classes (the Hungarian algorithm,
`scipy.optimize.linear_sum_assignment`), the usual unsupervised clustering accuracy. InfoGAN
reports about 5% error for its 10-way code on MNIST (Chen et al. 2016, Sec. 7.1); chance is about
1/K (higher for small samples).

Example:

```python
clf = mibzoo.classifiers.get("mnist_digit")
code_class_accuracy(model, "digit_code", "image", clf)
# {'accuracy': 0.93, 'assignment': [7, 2, ...], 'counts': [[...], ...]}
```
"""
import numpy as np

from mibzoo.metrics import _common
from mibzoo.spec import CONTINUOUS_PRIORS


def best_assignment_accuracy(counts):
    """Accuracy of the best one-to-one assignment of rows (codes) to columns (classes).

    Args:
        counts: ``[K, C]`` non-negative counts, ``counts[k, c]`` the samples of code k read as class c.

    Returns:
        ``(accuracy, assignment)``: the matched share of all samples, and ``assignment[k]``, the class
        given to code k (-1 for codes left without a class when K > C).
    """
    from scipy.optimize import linear_sum_assignment

    counts = np.asarray(counts, "float64")
    if counts.ndim != 2 or counts.size == 0 or np.any(counts < 0) or counts.sum() <= 0:
        raise ValueError(f"counts: got shape {list(counts.shape)}; expected a [K, C] table of non-negative counts "
                         f"with a positive total")
    rows, cols = linear_sum_assignment(counts, maximize=True)
    assignment = np.full(counts.shape[0], -1, "int64")
    assignment[rows] = cols
    return float(counts[rows, cols].sum() / counts.sum()), assignment


def code_samples(model, block, modality, samples_per_code=100, seed=0):
    """``[K, samples_per_code, *event]``: samples of ``modality`` with code ``block`` fixed to each of its
    K values (same seed for every value: column j shares its other latents across codes)."""
    _common.check_modalities(model, [modality], "code_samples")
    blocks = dict(zip(getattr(model, "block_names", []), getattr(model, "block_sizes", [])))
    priors = dict(zip(getattr(model, "block_names", []), getattr(model, "block_priors", [])))
    if priors.get(block) != "categorical":
        categorical = [b for b, p in priors.items() if p == "categorical"]
        raise ValueError(f"code_samples: {block!r} is not a categorical latent block of the model; its categorical "
                         f"blocks are {categorical}")
    return np.stack([_common.to_numpy(model.sample(samples_per_code, seed=seed, mode="mean",
                                                   latents={block: np.full(samples_per_code, k)})[modality])
                     for k in range(blocks[block])])


def code_class_accuracy(model, block, modality, classifier, classes=10, samples_per_code=100, seed=0):
    """How well the categorical code ``block`` controls the class of generated ``modality``.

    Args:
        model: an `MIBModel` (``block_names``, ``block_sizes``, ``block_priors``, ``sample`` with
            ``latents=``).
        block: a categorical latent block (infogan: ``"digit_code"``).
        modality: the generated modality that the classifier reads.
        classifier: a classifier for `mibzoo.classifiers.predict_classes`.
        classes: number of classes C the classifier tells apart.
        samples_per_code: samples per code value.
        seed: sampling seed.

    Returns:
        ``{"accuracy": float, "assignment": [K] class per code, "counts": [K, C] table}``.
    """
    from mibzoo.classifiers import predict_classes

    images = code_samples(model, block, modality, samples_per_code, seed)
    counts = np.zeros((len(images), classes), "int64")
    for k, batch in enumerate(images):
        ids = predict_classes(classifier, batch)
        counts[k] = np.bincount(ids, minlength=classes)[:classes]
    accuracy, assignment = best_assignment_accuracy(counts)
    return {"accuracy": accuracy, "assignment": assignment.tolist(), "counts": counts.tolist()}


def categorical_code_blocks(model):
    """Names of the model's categorical code blocks (``"prior": "categorical"``)."""
    return [b for b, p in zip(getattr(model, "block_names", []), getattr(model, "block_priors", []))
            if p == "categorical"]


def continuous_code_blocks(model):
    """Names of the model's continuous InfoGAN codes (``"code": true`` with a normal or uniform prior)."""
    return [b["name"] for b in model.model_config["shared"] if b.get("code") and b.get("prior") in CONTINUOUS_PRIORS]


def code_traversal(model, block, dimension, modality, values=(-2.0, -1.0, 0.0, 1.0, 2.0), rows=10, seed=0):
    """``[rows, len(values), *event]``: samples with dimension ``dimension`` of the continuous block
    ``block`` set to each of ``values`` (columns), every other latent drawn once per row and kept
    along the row. With a categorical code in the model, row r fixes it to r (mod its size), as
    InfoGAN's Figure 2 does."""
    _common.check_modalities(model, [modality], "code_traversal")
    sizes = dict(zip(model.block_names, model.block_sizes))
    if block not in sizes or dict(zip(model.block_names, model.block_priors))[block] not in CONTINUOUS_PRIORS:
        raise ValueError(f"code_traversal: {block!r} is not a continuous latent block; continuous blocks are "
                         f"{[b for b, p in zip(model.block_names, model.block_priors) if p in CONTINUOUS_PRIORS]}")
    if not 0 <= dimension < sizes[block]:
        raise ValueError(f"code_traversal: dimension {dimension} of block {block!r} (size {sizes[block]})")
    # The block's other dimensions come from the same seeded draw in every column.
    base = _common.to_numpy(model.prior_sample(rows, model.forward_pass(None, seed=seed).noise))
    start, offsets = 0, {}
    for name, size in zip(model.block_names, model.block_sizes):
        offsets[name] = (start, start + size)
        start += size
    fixed = {name: base[:, s:e] for name, (s, e) in offsets.items()}
    categorical = categorical_code_blocks(model)
    if categorical:
        fixed[categorical[0]] = np.arange(rows) % sizes[categorical[0]]
    columns = []
    for value in values:
        code = fixed[block].copy()
        code[:, dimension] = value
        columns.append(_common.to_numpy(model.sample(rows, seed=seed, mode="mean",
                                                     latents={**fixed, block: code})[modality]))
    return np.stack(columns, axis=1)

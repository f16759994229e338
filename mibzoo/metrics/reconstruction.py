"""Reconstruction error: how well x_i comes back through z ~ q(z | x_S) (posterior means).

Per modality: the mean squared error per element between the input and the mean of
p(x_i | z ⊙ m_i^p, u_i) for images, vectors and tabular rows; the share of wrongly reconstructed
classes (argmax) for categorical modalities. Lower is better.
"""
import numpy as np

from mibzoo.metrics import _common


def reconstruction_error(model, arrays, modalities=None, inputs=None, batch_size=256, limit=None):
    """Per-modality reconstruction error from the modalities ``inputs``.

    Args:
        model: an `MIBModel` (or an object with ``modality_specs`` and ``reconstruct``).
        arrays: ``{key: np.ndarray}`` with the modalities.
        modalities: modalities to score (default: all).
        inputs: modalities the posterior is inferred from (default: all; a modality outside
            ``inputs`` is then scored as a cross-modal reconstruction).
        batch_size: examples per ``reconstruct`` call.
        limit: use only the first ``limit`` examples.

    Returns:
        ``{modality: error}``: MSE per element, or the class error rate for categoricals.

    Example:

    ```python
    reconstruction_error(model, test)      # {'image': 0.012, 'label': 0.03}
    ```
    """
    specs = _common.modality_specs(model)
    names = list(modalities or specs)
    given = list(inputs or specs)
    _common.check_modalities(model, names + given, "reconstruction_error")
    _common.check_keys(arrays, sorted(set(names + given)), "reconstruction_error")
    sums = {m: 0.0 for m in names}
    counts = {m: 0 for m in names}
    for _, batch in _common.batches(arrays, sorted(set(names + given)), batch_size, limit):
        recon = model.reconstruct({m: batch[m] for m in given})
        for m in names:
            out = _common.to_numpy(recon[m])
            truth = batch[m]
            if specs[m]["kind"] == "categorical":
                truth_ids = truth.reshape(-1) if truth.ndim == 1 or truth.shape[-1] == 1 else truth.argmax(-1)
                sums[m] += float(np.sum(out.argmax(-1) != truth_ids))
                counts[m] += len(truth_ids)
            else:
                sums[m] += float(np.sum(np.square(out - truth)))
                counts[m] += truth.size
    return {m: sums[m] / counts[m] for m in names}

"""Quality of prior samples of image modalities, read by the project's own digit classifier.

For a model that can sample (``model.sample(n)``: a GAN, a VAE, a multimodal model), three numbers
per classifiable image modality:

- ``confidence``: the classifier's mean top-class probability on the samples, E_x[max_k p(k | x)]
  (real MNIST test digits: about 0.99; blurry or non-digit samples score lower);
- ``class_entropy``: the entropy, in nats, of the histogram of predicted classes,
  H(ĉ) = −Σ_k π_k log π_k with π_k the share of samples read as class k (log 10 ≈ 2.303 for a
  uniform spread over the ten digits, 0 when every sample is read as one class: mode collapse);
- ``frechet``: the Fréchet distance between Gaussians fitted to the classifier's penultimate
  features of real and of generated images (Heusel et al. 2017, Eq. 6, with the digit classifier
  in place of Inception: the MNIST counterpart of FID),
  d² = ‖μ_r − μ_g‖² + Tr(Σ_r + Σ_g − 2 (Σ_r Σ_g)^{1/2}).

Reference: M. Heusel, H. Ramsauer, T. Unterthiner, B. Nessler, S. Hochreiter. GANs Trained by a
Two Time-Scale Update Rule Converge to a Local Nash Equilibrium. NeurIPS 2017 (FID);
T. Salimans et al. Improved Techniques for Training GANs. NeurIPS 2016 (confidence and class
spread, the two parts of the Inception score).

Example:

```python
clf = mibzoo.classifiers.get("mnist_digit")
test = mibzoo.data.load_arrays("mnist", "test", limit=1000)
prior_sample_quality(model, {"image": clf}, {"image": test["image"]})
# {'image/confidence': 0.95, 'image/class_entropy': 2.28, 'image/frechet': 3.1}
```
"""
import weakref

import numpy as np

from mibzoo.classifiers import classifier_output
from mibzoo.metrics import _common

# Feature extractors built per classifier (building one and tracing its predict costs seconds).
_EXTRACTORS = weakref.WeakKeyDictionary()


def _keras_model(classifier):
    import keras

    return isinstance(classifier, keras.Model)


def class_probabilities(classifier, x, batch_size=512):
    """``[B, K]`` class probabilities of ``classifier`` on ``x``.

    Args:
        classifier: a Keras model ending in a softmax, an object with ``predict(x)`` or a callable
            returning ``[B, K]`` probabilities (rows summing to 1).
        x: a batch of inputs.
        batch_size: Keras models predict in chunks of this size.

    Raises:
        ValueError: the output is not a ``[B, K]`` array of probabilities (class ids or logits
            cannot give a confidence).
    """
    out = _common.to_numpy(classifier_output(classifier, x, batch_size)).astype("float64")
    if out.ndim != 2:
        raise ValueError(f"classifier output: got shape {list(out.shape)}; sample quality needs [B, K] class "
                         f"probabilities")
    if np.any(out < -1e-6) or not np.allclose(out.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("classifier output: rows are not probabilities (negative or not summing to 1); sample "
                         "quality needs a classifier ending in a softmax")
    return out


def penultimate_features(classifier, x, batch_size=512):
    """``[B, F]`` activations of the classifier's last hidden layer (the input of its output layer).

    Args:
        classifier: a Keras model (Sequential or functional; dropout layers just before the output are
            skipped, they are the identity at inference) or an object with a ``features(x)`` method.
        x: a batch of inputs.
        batch_size: Keras models predict in chunks of this size.
    """
    import keras

    if hasattr(classifier, "features"):
        return _common.to_numpy(classifier.features(x)).astype("float64").reshape(len(x), -1)
    if not _keras_model(classifier):
        raise TypeError(f"classifier: got {type(classifier).__name__}; Fréchet features need a Keras model or "
                        f"an object with a features(x) method")
    if classifier not in _EXTRACTORS:
        layers = [layer for layer in classifier.layers if not isinstance(layer, keras.layers.InputLayer)]
        index = len(layers) - 2
        while index >= 0 and isinstance(layers[index], keras.layers.Dropout):
            index -= 1
        if index < 0:
            raise ValueError(f"classifier {classifier.name!r} has no hidden layer to take features from")
        _EXTRACTORS[classifier] = keras.Model(classifier.inputs, layers[index].output)
    out = _EXTRACTORS[classifier].predict(np.asarray(x), batch_size=batch_size, verbose=0)
    return np.asarray(out, "float64").reshape(len(x), -1)


def _sqrt_psd(matrix):
    """Symmetric square root of a symmetric positive semi-definite matrix (eigendecomposition)."""
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2.0)
    return (vectors * np.sqrt(np.clip(values, 0.0, None))) @ vectors.T


def frechet_distance(mu1, sigma1, mu2, sigma2):
    """Squared Fréchet (2-Wasserstein) distance between N(μ1, Σ1) and N(μ2, Σ2).

    d² = ‖μ1 − μ2‖² + Tr(Σ1) + Tr(Σ2) − 2 Tr((Σ1 Σ2)^{1/2}) (Dowson & Landau 1982; Heusel et al.
    2017, Eq. 6). The trace of the matrix square root is computed as the sum of the square roots of
    the eigenvalues of Σ1^{1/2} Σ2 Σ1^{1/2} (a symmetric PSD matrix similar to Σ1 Σ2), which is
    stable where Σ1 Σ2 is singular.

    Returns:
        A float ≥ 0 (rounding can leave −1e-12; clipped to 0).
    """
    mu1, mu2 = np.asarray(mu1, "float64").reshape(-1), np.asarray(mu2, "float64").reshape(-1)
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, "float64")), np.atleast_2d(np.asarray(sigma2, "float64"))
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape or sigma1.shape != (len(mu1), len(mu1)):
        raise ValueError(f"frechet_distance: means {mu1.shape}, {mu2.shape} and covariances {sigma1.shape}, "
                         f"{sigma2.shape} must be [D] and [D, D] for one D")
    root1 = _sqrt_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((middle + middle.T) / 2.0), 0.0, None))))
    value = float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * trace_sqrt)
    return max(value, 0.0)


def gaussian_statistics(features):
    """Mean ``[F]`` and unbiased covariance ``[F, F]`` of ``[n, F]`` features (n ≥ 2)."""
    features = np.asarray(features, "float64")
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"features: got shape {list(features.shape)}, expected [n >= 2, F]")
    return features.mean(axis=0), np.cov(features, rowvar=False).reshape(features.shape[1], features.shape[1])


def class_histogram_entropy(class_ids, classes):
    """Entropy in nats of the histogram of ``class_ids`` over ``classes`` classes (log K when uniform)."""
    ids = np.asarray(class_ids).reshape(-1).astype("int64")
    if len(ids) == 0:
        raise ValueError("class_histogram_entropy: no class ids")
    if ids.min() < 0 or ids.max() >= classes:
        raise ValueError(f"class ids must lie in [0, {classes}), got [{ids.min()}, {ids.max()}]")
    shares = np.bincount(ids, minlength=classes) / len(ids)
    shares = shares[shares > 0]
    return float(-np.sum(shares * np.log(shares))) + 0.0  # + 0.0: one class gives 0, not -0


def image_quality(classifier, generated, real, batch_size=512):
    """Confidence, class-histogram entropy and Fréchet distance of generated against real images.

    Args:
        classifier: see `class_probabilities` and `penultimate_features`.
        generated: ``[n, *event]`` generated images (n ≥ 2).
        real: ``[m, *event]`` real images of the same kind (m ≥ 2).
        batch_size: prediction chunk size.

    Returns:
        ``{"confidence": float, "class_entropy": float (nats), "frechet": float}``.
    """
    generated, real = _common.to_numpy(generated), _common.to_numpy(real)
    if generated.shape[1:] != real.shape[1:]:
        raise ValueError(f"generated images {list(generated.shape[1:])} and real images {list(real.shape[1:])} "
                         f"differ in shape")
    probabilities = class_probabilities(classifier, generated, batch_size)
    fake_stats = gaussian_statistics(penultimate_features(classifier, generated, batch_size))
    real_stats = gaussian_statistics(penultimate_features(classifier, real, batch_size))
    return {"confidence": float(np.mean(np.max(probabilities, axis=1))),
            "class_entropy": class_histogram_entropy(np.argmax(probabilities, axis=1), probabilities.shape[1]),
            "frechet": frechet_distance(*real_stats, *fake_stats)}


def prior_sample_quality(model, readers, real, num_samples=1000, batch_size=250, seed=0):
    """`image_quality` of prior samples of every image modality in ``readers``.

    Args:
        model: an `MIBModel` or any object with ``modality_specs`` and ``sample(n, seed, mode)``
            returning ``{modality: [n, *event]}``.
        readers: ``{modality: classifier}`` (image modalities; others are skipped).
        real: ``{modality: [m, *event]}`` real images the Fréchet distance compares with.
        num_samples: prior samples per modality (decoded with ``mode="mean"``: pixel probabilities).
        batch_size: samples per call of ``sample``.
        seed: base seed (batch ``b`` uses ``seed + b``).

    Returns:
        ``{"<modality>/confidence": ..., "<modality>/class_entropy": ..., "<modality>/frechet": ...}``.
    """
    specs = _common.modality_specs(model)
    images = [m for m, clf in readers.items() if clf is not None and specs.get(m, {}).get("kind") == "image"]
    _common.check_keys(real, images, "sample_quality")
    if not images:
        return {}
    drawn = {m: [] for m in images}
    for b, start in enumerate(range(0, num_samples, batch_size)):
        samples = model.sample(min(batch_size, num_samples - start), seed=seed + b, mode="mean")
        for m in images:
            drawn[m].append(_common.to_numpy(samples[m]))
    out = {}
    for m in images:
        scores = image_quality(readers[m], np.concatenate(drawn[m]), real[m])
        out.update({f"{m}/{k}": v for k, v in scores.items()})
    return out

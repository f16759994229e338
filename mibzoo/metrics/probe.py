"""Latent linear-probe accuracy: how linearly readable a label is from the posterior means.

Features are the means of q(z | x_S) (Eq. 13) from any subset S of the modalities; a
multinomial logistic regression is fit on training examples and scored on test examples. The
regression is solved here in numpy (no scikit-learn dependency): standardized features, L2
penalty, Nesterov-accelerated gradient descent with step 1/L (L bounds the Hessian), which
converges for these few dozen features in a few hundred steps.

Reference: G. Alain, Y. Bengio. Understanding intermediate layers using linear classifier
probes. ICLR 2017 workshop.
"""
import numpy as np

from mibzoo.metrics import _common


def fit_logistic_regression(features, labels, classes, l2=1e-4, steps=500):
    """Multinomial logistic regression by accelerated gradient descent.

    Args:
        features: ``[n, d]`` floats.
        labels: ``[n]`` ints in [0, classes).
        classes: number of classes K.
        l2: L2 penalty on the weights (not the biases).
        steps: gradient steps.

    Returns:
        ``predict(features) -> class ids``: a function closing over the fitted weights and the
        training standardization.
    """
    x = np.asarray(features, "float64")
    y = np.asarray(labels).reshape(-1).astype("int64")
    if x.ndim != 2 or len(x) != len(y):
        raise ValueError(f"fit_logistic_regression: features [n, d] and labels [n] needed, got "
                         f"{list(x.shape)} and {list(y.shape)}")
    if y.min() < 0 or y.max() >= classes:
        raise ValueError(f"fit_logistic_regression: labels must lie in [0, {classes}), got [{y.min()}, {y.max()}]")
    mean, std = x.mean(0), x.std(0) + 1e-8
    x = np.concatenate([(x - mean) / std, np.ones((len(x), 1))], axis=1)  # bias column
    n, d = x.shape
    onehot = np.eye(classes)[y]
    # Softmax cross-entropy has Hessian ≤ ½ XᵀX / n (per class block); plus the L2 term.
    lipschitz = 0.5 * np.linalg.eigvalsh(x.T @ x / n)[-1] + l2
    step = 1.0 / lipschitz
    penalty = np.ones((d, 1))
    penalty[-1] = 0.0
    w = np.zeros((d, classes))
    previous = w
    for t in range(1, steps + 1):
        look = w + (t - 1) / (t + 2) * (w - previous)
        logits = x @ look
        logits -= logits.max(1, keepdims=True)
        probs = np.exp(logits)
        probs /= probs.sum(1, keepdims=True)
        grad = x.T @ (probs - onehot) / n + l2 * penalty * look
        previous, w = w, look - step * grad

    def predict(new_features):
        z = (np.asarray(new_features, "float64") - mean) / std
        return np.argmax(z @ w[:-1] + w[-1], axis=1)

    return predict


def posterior_means(model, arrays, modalities=None, batch_size=512, limit=None):
    """``[n, Dz]`` means of q(z | x_S) for the modalities S (default: all)."""
    names = list(modalities or _common.modality_specs(model))
    _common.check_modalities(model, names, "posterior_means")
    _common.check_keys(arrays, names, "posterior_means")
    out = [_common.to_numpy(model.encode({m: batch[m] for m in names})["loc"])
           for _, batch in _common.batches(arrays, names, batch_size, limit)]
    return np.concatenate(out, axis=0)


def linear_probe_accuracy(model, train_arrays, test_arrays, label_key, modalities=None, classes=None,
                          batch_size=512, train_limit=None, test_limit=None, l2=1e-4, steps=500):
    """Test accuracy of a logistic regression from posterior means to ``label_key``.

    Args:
        model: an `MIBModel` (or an object with ``modality_specs`` and ``encode``).
        train_arrays: ``{key: np.ndarray}`` the probe is fit on.
        test_arrays: ``{key: np.ndarray}`` it is scored on.
        label_key: the label to predict (e.g. ``"digit"``).
        modalities: the subset S the posterior is inferred from (default: all).
        classes: number of classes (default: 1 + the largest label seen).
        batch_size: examples per ``encode`` call.
        train_limit, test_limit: use only the first examples of each split.
        l2, steps: regression penalty and optimization steps.

    Returns:
        Accuracy in [0, 1].

    Example:

    ```python
    linear_probe_accuracy(model, train, test, "digit", modalities=["image"])
    ```
    """
    _common.check_keys(train_arrays, [label_key], "linear_probe_accuracy (train)")
    _common.check_keys(test_arrays, [label_key], "linear_probe_accuracy (test)")
    train_x = posterior_means(model, train_arrays, modalities, batch_size, train_limit)
    test_x = posterior_means(model, test_arrays, modalities, batch_size, test_limit)
    train_y = np.asarray(train_arrays[label_key])[:len(train_x)].reshape(-1)
    test_y = np.asarray(test_arrays[label_key])[:len(test_x)].reshape(-1)
    classes = classes or int(max(train_y.max(), test_y.max())) + 1
    predict = fit_logistic_regression(train_x, train_y, classes, l2, steps)
    return float(np.mean(predict(test_x) == test_y))

"""How much a predictor's errors depend on the environment, read on data (issue 12, Sec. 6).

G_ood asks for E ⊥ Y | Z: once z is known, the environment says nothing more about the label. If
it holds, no environment can do better than the pooled predictor p(y | z) by recalibrating it for
itself. `recalibration_gain` measures what such a per-environment recalibration would save, on a
whole dataset; the term `environment_recalibration` (`mibzoo.estimators.recalibration`) estimates
the same quantity from a minibatch, in one gradient step, to train with.
"""
import numpy as np

# Effectively unregularized refits: the gain is a likelihood ratio of maximum-likelihood fits.
_INVERSE_RIDGE = 1e6


def _fitted_nll(features, labels):
    """Summed negative log-likelihood of a multinomial logistic regression of ``labels`` on
    ``features`` (with intercepts) fitted by maximum likelihood (scikit-learn)."""
    from sklearn.linear_model import LogisticRegression

    classes = np.unique(labels)
    if len(classes) == 1:  # one class only: the intercept alone predicts it with certainty
        return 0.0
    fit = LogisticRegression(C=_INVERSE_RIDGE, max_iter=2000).fit(features, labels)
    probs = fit.predict_proba(features)
    picked = probs[np.arange(len(labels)), np.searchsorted(fit.classes_, labels)]
    return float(-np.sum(np.log(np.clip(picked, 1e-12, 1.0))))


def recalibration_gain(log_probs, labels, environments):
    """Nats per example that recalibrating a predictor for each environment saves over
    recalibrating it once for all: a reading of I(E; Y | Z) along the predictor's logits.

    With ``ℓ`` the predictor's centred log-probabilities (for two classes, its logit), the pooled
    refit is a logistic regression ``softmax(A ℓ + b)`` fitted on all examples and the per-environment
    refit one ``softmax(A_e ℓ + b_e)`` fitted on each environment's examples; the gain is the
    difference of their fitted cross-entropies, divided by the number of examples. It is ≥ 0 (the
    per-environment family contains the pooled one), 0 when every environment's best recalibration
    is the pooled one (E ⊥ Y given the predictor's output), and grows when the predictor leans on
    something whose link to Y differs between environments (Colored-MNIST's colour: its agreement
    with the label is 90 % in one training environment and 80 % in the other). As the data grow it
    tends to I(E; Y | ℓ) restricted to affine recalibrations, a lower bound on I(E; Y | Z).

    Args:
        log_probs: ``[N, K]`` log-probabilities (or logits) of the K ≥ 2 classes.
        labels: ``[N]`` class indices in ``0..K-1``.
        environments: ``[N]`` environment indices (any hashable values).

    Returns:
        The gain, a float ≥ 0 (up to the optimizer's tolerance).

    Raises:
        ValueError: the shapes disagree, or there are fewer than two classes or one environment.
    """
    log_probs = np.asarray(log_probs, "float64")
    labels = np.asarray(labels).astype(int).reshape(-1)
    environments = np.asarray(environments).reshape(-1)
    if log_probs.ndim != 2 or log_probs.shape[1] < 2:
        raise ValueError(f"recalibration_gain: log_probs must be [N, K] with K >= 2 classes, got shape {log_probs.shape}")
    if not len(labels) == len(environments) == len(log_probs):
        raise ValueError(f"recalibration_gain: {len(log_probs)} rows of log_probs, {len(labels)} labels and "
                         f"{len(environments)} environments; expected one of each per example")
    if len(labels) == 0:
        raise ValueError("recalibration_gain: no examples")
    if labels.min() < 0 or labels.max() >= log_probs.shape[1]:
        raise ValueError(f"recalibration_gain: labels must lie in 0..{log_probs.shape[1] - 1}, got "
                         f"{labels.min()}..{labels.max()}")
    envs = np.unique(environments)
    if len(envs) < 2:
        raise ValueError(f"recalibration_gain: needs examples of at least two environments, got {envs.tolist()}")
    # Centred log-probabilities: the refit reads differences between classes (for K = 2, the logit).
    features = (log_probs - log_probs.mean(axis=1, keepdims=True))[:, : log_probs.shape[1] - 1]
    pooled = _fitted_nll(features, labels)
    separate = sum(_fitted_nll(features[environments == e], labels[environments == e]) for e in envs)
    return max(0.0, (pooled - separate) / len(labels))

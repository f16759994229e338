"""Fairness of a classifier on a representation: accuracy, equal opportunity, demographic parity.

The protocol of the paper's fairness case study (Sec. 5, Table 3; Song et al. 2019, Creager et al.
2019): a representation is learned without the target ``y``; a *linear* classifier (logistic
regression) is then fit on the representation of the training split to predict ``y`` and scored on
the test split, where its predictions are also compared across the groups of the binary sensitive
attribute ``a``:

- ``acc``: test accuracy;
- ``deo``: difference of equal opportunity (Hardt et al. 2016),
  ``|P(ŷ=1 | y=1, a=0) − P(ŷ=1 | y=1, a=1)|``, the gap between the groups' true positive rates;
- ``dp``: demographic-parity difference, ``|P(ŷ=1 | a=0) − P(ŷ=1 | a=1)|``.

Each function works on plain arrays, so any representation (a model's ``u`` or ``z``, raw
features, a baseline's embedding) is scored the same way.

Example:

```python
from mibzoo.metrics import fairness
fairness.classifier_fairness(u_train, y_train, u_test, y_test, a_test)
# {'acc': 0.83, 'deo': 0.02, 'dp': 0.09}
fairness.representation_fairness(model, train_arrays, test_arrays)   # a model's U_x
```

References: M. Hardt, E. Price, N. Srebro. Equality of Opportunity in Supervised Learning.
NeurIPS 2016. R. Zhang, M. Koyama, K. Ishiguro, ICML 2020, Sec. 5.
"""
import numpy as np

from mibzoo.metrics import _common

__all__ = ["accuracy", "equal_opportunity_difference", "demographic_parity_difference", "fairness_scores",
           "linear_classifier", "classifier_fairness", "probe_information", "representation",
           "representation_fairness"]


def _binary(values, what):
    values = np.asarray(values)
    if values.ndim == 2 and values.shape[1] == 1:
        values = values[:, 0]
    if values.ndim != 1:
        raise ValueError(f"{what}: expected a 1-d array of 0/1 values, got shape {list(values.shape)}")
    if values.dtype.kind == "f" and not np.all(np.isfinite(values)):
        raise ValueError(f"{what}: contains NaN or Inf")
    if not np.all(np.isin(values, (0, 1))):
        bad = values[~np.isin(values, (0, 1))][0].item()
        raise ValueError(f"{what}: expected binary values 0/1, found {bad!r}")
    return values.astype("int64")


def _same_length(**arrays):
    lengths = {name: len(v) for name, v in arrays.items()}
    if len(set(lengths.values())) != 1:
        raise ValueError(f"arrays of different lengths: {lengths}")
    if not next(iter(lengths.values())):
        raise ValueError(f"empty arrays: {sorted(lengths)}")


def accuracy(y_true, y_pred):
    """Share of predictions equal to the labels (binary labels)."""
    y_true, y_pred = _binary(y_true, "y_true"), _binary(y_pred, "y_pred")
    _same_length(y_true=y_true, y_pred=y_pred)
    return float(np.mean(y_true == y_pred))


def _group_rates(y_pred, sensitive, condition, what, among=""):
    rates = []
    for group in (0, 1):
        rows = (sensitive == group) & condition
        if not rows.any():
            raise ValueError(f"{what}: no example of group a={group}{among}; the difference between the groups "
                             f"is undefined")
        rates.append(float(np.mean(y_pred[rows])))
    return rates


def equal_opportunity_difference(y_true, y_pred, sensitive):
    """DEO (Hardt et al. 2016): ``|TPR(a=0) − TPR(a=1)|``, TPR = P(ŷ=1 | y=1, a).

    Args:
        y_true: ``[n]`` binary labels y.
        y_pred: ``[n]`` binary predictions ŷ.
        sensitive: ``[n]`` binary sensitive attribute a.

    Raises:
        ValueError: non-binary inputs, different lengths, or a group without positives.
    """
    y_true, y_pred, sensitive = (_binary(v, w) for v, w in ((y_true, "y_true"), (y_pred, "y_pred"),
                                                             (sensitive, "sensitive")))
    _same_length(y_true=y_true, y_pred=y_pred, sensitive=sensitive)
    tpr0, tpr1 = _group_rates(y_pred, sensitive, y_true == 1, "equal_opportunity_difference", " with y=1")
    return abs(tpr0 - tpr1)


def demographic_parity_difference(y_pred, sensitive):
    """``|P(ŷ=1 | a=0) − P(ŷ=1 | a=1)|`` (statistical parity gap)."""
    y_pred, sensitive = _binary(y_pred, "y_pred"), _binary(sensitive, "sensitive")
    _same_length(y_pred=y_pred, sensitive=sensitive)
    rate0, rate1 = _group_rates(y_pred, sensitive, np.ones_like(y_pred, bool), "demographic_parity_difference")
    return abs(rate0 - rate1)


def fairness_scores(y_true, y_pred, sensitive):
    """``{"acc", "deo", "dp"}`` of binary predictions."""
    return {"acc": accuracy(y_true, y_pred), "deo": equal_opportunity_difference(y_true, y_pred, sensitive),
            "dp": demographic_parity_difference(y_pred, sensitive)}


def linear_classifier(seed=0, max_iter=2000):
    """The linear classifier of the protocol: standardized features, then scikit-learn's
    ``LogisticRegression`` (L2, C = 1, lbfgs)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=max_iter, random_state=seed))


def _features(values, what):
    values = np.asarray(values, "float64")
    if values.ndim == 1:
        values = values[:, None]
    if values.ndim != 2:
        raise ValueError(f"{what}: expected features [n, d], got shape {list(values.shape)}")
    if not np.all(np.isfinite(values)):
        raise ValueError(f"{what}: contains NaN or Inf")
    return values


def classifier_fairness(train_features, train_target, test_features, test_target, test_sensitive,
                        classifier=None):
    """Fits a classifier on training features and scores its test predictions.

    Args:
        train_features: ``[n, d]`` representation of the training split.
        train_target: ``[n]`` binary target y of the training split.
        test_features: ``[m, d]`` representation of the test split.
        test_target: ``[m]`` binary target of the test split.
        test_sensitive: ``[m]`` binary sensitive attribute of the test split.
        classifier: an unfitted scikit-learn estimator with ``fit`` / ``predict`` (default:
            `linear_classifier`, the paper's protocol; baselines pass others, e.g. an MLP).

    Returns:
        ``{"acc", "deo", "dp"}`` on the test split.
    """
    train_x = _features(train_features, "train_features")
    test_x = _features(test_features, "test_features")
    train_y = _binary(train_target, "train_target")
    _same_length(train_features=train_x, train_target=train_y)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_features has {train_x.shape[1]} columns, test_features {test_x.shape[1]}")
    if len(np.unique(train_y)) < 2:
        raise ValueError("train_target: a classifier needs both classes in the training split")
    from threadpoolctl import threadpool_limits  # a scikit-learn dependency

    classifier = classifier if classifier is not None else linear_classifier()
    # One BLAS thread: at these sizes threads do not help, and on a busy machine OpenBLAS threads
    # spinning against other processes made an MLP fit on Adult 15x slower (154 s against 11 s).
    with threadpool_limits(limits=1):
        classifier.fit(train_x, train_y)
        predicted = classifier.predict(test_x).astype("int64")
    return fairness_scores(test_target, predicted, test_sensitive)


def probe_information(train_features, train_labels, test_features, test_labels, classifier=None):
    """How much a probe learns about binary ``labels`` (e.g. ``a``) from features, in nats.

    The variational lower bound of Barber & Agakov (2003), I(U; A) ≥ H(A) − E[−log q(a | u)], for
    the probe q fitted on the training split and evaluated on the test split: the drop of the test
    cross-entropy from the training prior P(a) (a probe that ignores u) to the probe,

        Î = mean_test[−log P_train(a)] − mean_test[−log q(a | u)].

    It is 0 for a probe no better than the prior and at most about H(A) (log 2 nats for balanced
    a); a linear probe (the default, `linear_classifier`) bounds only the linearly readable part,
    a richer ``classifier`` (any scikit-learn estimator with ``predict_proba``) more of it. A
    negative value means the probe overfits (its test cross-entropy exceeds the prior's).

    Args:
        train_features, test_features: ``[n, d]`` / ``[m, d]`` features (e.g. U_x).
        train_labels, test_labels: ``[n]`` / ``[m]`` binary labels.
        classifier: an unfitted estimator with ``fit`` / ``predict_proba`` (default: `linear_classifier`).

    Returns:
        The estimate in nats (float).
    """
    train_x = _features(train_features, "train_features")
    test_x = _features(test_features, "test_features")
    train_y = _binary(train_labels, "train_labels")
    test_y = _binary(test_labels, "test_labels")
    _same_length(train_features=train_x, train_labels=train_y)
    _same_length(test_features=test_x, test_labels=test_y)
    if train_x.shape[1] != test_x.shape[1]:
        raise ValueError(f"train_features has {train_x.shape[1]} columns, test_features {test_x.shape[1]}")
    prior = float(np.mean(train_y))
    if prior in (0.0, 1.0):
        raise ValueError("train_labels: a probe needs both classes in the training split")
    from threadpoolctl import threadpool_limits

    classifier = classifier if classifier is not None else linear_classifier()
    with threadpool_limits(limits=1):
        classifier.fit(train_x, train_y)
        p1 = classifier.predict_proba(test_x)[:, list(classifier.classes_).index(1)]
    eps = 1e-12
    q = np.clip(np.where(test_y == 1, p1, 1.0 - p1), eps, 1.0)
    prior_q = np.where(test_y == 1, prior, 1.0 - prior)
    return float(np.mean(-np.log(prior_q)) - np.mean(-np.log(q)))


def representation(model, arrays, modality="x", batch_size=1024, limit=None):
    """The fair representation of a model from ``modality`` alone, ``[n, d]``.

    Models with a private latent for ``modality`` give the mean of q(u_x | x) (U_x of the fairness
    objective, Eq. 17); models without one give the mean of q(z | x) (e.g. a plain VAE on x). The sensitive
    attribute is not an input: U_x is inferred from x alone (Eq. 4), so the representation exists
    for people whose ``a`` is unknown and cannot copy ``a`` verbatim.

    Args:
        model: an `MIBModel` (or an object with ``modality_specs`` and ``encode``).
        arrays: ``{key: np.ndarray}`` holding ``modality``.
        modality: the observed modality the representation is inferred from.
        batch_size: rows per ``encode`` call.
        limit: only the first rows.
    """
    _common.check_modalities(model, [modality], "representation")
    _common.check_keys(arrays, [modality], "representation")
    out = []
    for _, batch in _common.batches(arrays, [modality], batch_size, limit):
        encoded = model.encode({modality: batch[modality]})
        private = encoded.get("private", {})
        out.append(_common.to_numpy(private[modality]["loc"] if modality in private else encoded["loc"]))
    return np.concatenate(out, axis=0)


def representation_fairness(model, train_arrays, test_arrays, target="target", sensitive="a", modality="x",
                            train_limit=None, test_limit=None, classifier=None):
    """``{"acc", "deo", "dp"}`` of a linear classifier on a model's `representation`.

    Args:
        model: a trained `MIBModel`.
        train_arrays, test_arrays: ``{key: np.ndarray}`` with ``modality``, ``target``, ``sensitive``.
        target: key of the held-out target y (never a modality of the model).
        sensitive: key of the sensitive attribute a.
        modality: the modality the representation is inferred from.
        train_limit, test_limit: use only the first rows of each split.
        classifier: see `classifier_fairness`.
    """
    _common.check_keys(train_arrays, [target], "representation_fairness (train)")
    _common.check_keys(test_arrays, [target, sensitive], "representation_fairness (test)")
    train_x = representation(model, train_arrays, modality, limit=train_limit)
    test_x = representation(model, test_arrays, modality, limit=test_limit)
    return classifier_fairness(train_x, np.asarray(train_arrays[target])[:len(train_x)], test_x,
                               np.asarray(test_arrays[target])[:len(test_x)],
                               np.asarray(test_arrays[sensitive])[:len(test_x)], classifier)

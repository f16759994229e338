"""`mibzoo.metrics.invariance.recalibration_gain` against independent computations: a NumPy
Newton fit of the logistic refits, the closed form of a saturated refit, and the limits where no
environment can recalibrate better than the pool."""
import numpy as np
import pytest

from mibzoo.metrics.invariance import recalibration_gain


def _binary_entropy(p):
    return -(p * np.log(p) + (1 - p) * np.log(1 - p))


def _newton_logistic_nll(x, y, steps=50):
    """Summed NLL of σ(a x + b) fitted by Newton's method (IRLS), in NumPy."""
    design = np.stack([x, np.ones_like(x)], 1)
    w = np.zeros(2)
    for _ in range(steps):
        p = 1 / (1 + np.exp(-design @ w))
        gradient = design.T @ (p - y)
        hessian = design.T @ (design * (p * (1 - p))[:, None])
        w -= np.linalg.solve(hessian, gradient)
    p = np.clip(1 / (1 + np.exp(-design @ w)), 1e-12, 1 - 1e-12)
    return -np.sum(y * np.log(p) + (1 - y) * np.log(1 - p))


def _as_log_probs(logit):
    """``[N, 2]`` log-probabilities of a binary predictor with logit ``logit``."""
    return np.stack([-np.logaddexp(0, logit), -np.logaddexp(0, -logit)], 1)


def test_matches_newton_fits_of_the_pooled_and_per_environment_refits(rng):
    n = 3000
    env = rng.integers(0, 2, n)
    logit = rng.normal(size=n) * 2
    # the predictor is over-confident in environment 0 and under-confident in environment 1
    true_logit = np.where(env == 0, 0.5, 1.7) * logit + np.where(env == 0, 0.3, -0.2)
    y = (rng.random(n) < 1 / (1 + np.exp(-true_logit))).astype(int)
    pooled = _newton_logistic_nll(logit, y)
    separate = sum(_newton_logistic_nll(logit[env == e], y[env == e]) for e in (0, 1))
    expected = (pooled - separate) / n
    assert expected > 0.01
    assert recalibration_gain(_as_log_probs(logit), y, env) == pytest.approx(expected, rel=1e-4)


def test_a_feature_whose_agreement_differs_between_environments_gains_the_entropy_difference():
    # The predictor's logit is a binary colour that agrees with the label in exactly 90 % of
    # environment 0 and 80 % of environment 1 (Colored-MNIST's training environments). The refits
    # are saturated (two cells, two parameters), so their cross-entropies are the empirical
    # conditional entropies: the gain is H(85 %) − (H(90 %) + H(80 %)) / 2 in closed form.
    rows = []
    for env, agreement in enumerate((0.9, 0.8)):
        for colour in (0, 1):
            agree = np.arange(1000) < agreement * 1000
            rows.append((np.full(1000, colour), np.where(agree, colour, 1 - colour), np.full(1000, env)))
    colour, y, env = (np.concatenate(parts) for parts in zip(*rows))
    expected = _binary_entropy(0.85) - (_binary_entropy(0.9) + _binary_entropy(0.8)) / 2
    assert recalibration_gain(_as_log_probs(4.0 * colour - 2.0), y, env) == pytest.approx(expected, rel=1e-4)


def test_zero_when_every_environment_holds_the_same_examples(rng):
    logit = rng.normal(size=500)
    y = (rng.random(500) < 1 / (1 + np.exp(-logit))).astype(int)
    copies = np.concatenate([logit, logit, logit]), np.concatenate([y, y, y]), np.repeat([0, 1, 2], 500)
    assert recalibration_gain(_as_log_probs(copies[0]), copies[1], copies[2]) == pytest.approx(0.0, abs=1e-7)


def test_small_when_environments_are_assigned_at_random(rng):
    n = 20000
    logit = rng.normal(size=n)
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    gain = recalibration_gain(_as_log_probs(logit), y, rng.integers(0, 2, n))
    # two extra parameters fitted on noise save about 2 / (2n) nats per example (Wilks)
    assert 0.0 <= gain < 5 / n


def test_several_classes_and_label_free_environments():
    rng = np.random.default_rng(3)
    n = 3000
    env = rng.integers(0, 2, n)
    scores = rng.normal(size=(n, 3))
    sharpness = np.where(env == 0, 0.3, 2.0)[:, None]
    probs = np.exp(sharpness * scores)
    probs /= probs.sum(1, keepdims=True)
    y = np.array([rng.choice(3, p=p) for p in probs])
    gain = recalibration_gain(np.log(np.exp(scores) / np.exp(scores).sum(1, keepdims=True)), y, env)
    assert gain > 0.02
    # an environment with a single class is fitted exactly by its intercepts
    one_class = np.concatenate([env, np.full(50, 7)])
    assert recalibration_gain(np.concatenate([scores, scores[:50]]), np.concatenate([y, np.zeros(50, int)]),
                              one_class) >= 0


@pytest.mark.parametrize("log_probs, labels, envs, message", [
    (np.zeros((4, 1)), [0, 0, 0, 0], [0, 0, 1, 1], "K >= 2"),
    (np.zeros((4, 2)), [0, 1, 0], [0, 0, 1, 1], "one of each per example"),
    (np.zeros((4, 2)), [0, 1, 2, 0], [0, 0, 1, 1], "labels must lie in 0..1"),
    (np.zeros((4, 2)), [0, 1, 0, 1], [0, 0, 0, 0], "at least two environments"),
    (np.zeros((0, 2)), [], [], "no examples"),
])
def test_bad_input_is_refused_with_what_was_wrong(log_probs, labels, envs, message):
    with pytest.raises(ValueError, match=message):
        recalibration_gain(log_probs, np.asarray(labels, int), np.asarray(envs))

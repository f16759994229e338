"""Fairness metrics (mibzoo.metrics.fairness) against hand-computed values and fairlearn."""
import numpy as np
import pytest

from mibzoo.metrics import fairness

# Ten people: a = 0 for the first five. Positives (y = 1): rows 0, 1, 2 (a=0) and 5, 6, 7, 8 (a=1).
Y = np.array([1, 1, 1, 0, 0, 1, 1, 1, 1, 0])
A = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
PRED = np.array([1, 0, 0, 1, 0, 1, 1, 1, 0, 1])
# By hand: TPR(a=0) = 1/3 (row 0 of rows 0-2), TPR(a=1) = 3/4 (rows 5, 6, 7 of 5-8), DEO = 5/12.
# P(ŷ=1 | a=0) = 2/5 (rows 0, 3), P(ŷ=1 | a=1) = 4/5 (rows 5, 6, 7, 9), DP = 2/5.
# Correct: rows 0, 4, 5, 6, 7 -> accuracy 5/10.


def test_scores_match_hand_computed_values():
    scores = fairness.fairness_scores(Y, PRED, A)
    assert scores["acc"] == pytest.approx(0.5)
    assert scores["deo"] == pytest.approx(5 / 12)
    assert scores["dp"] == pytest.approx(0.4)


def test_deo_is_symmetric_in_the_groups_and_ignores_negatives():
    flipped = fairness.equal_opportunity_difference(Y, PRED, 1 - A)
    assert flipped == pytest.approx(5 / 12)
    # Changing predictions for y = 0 changes accuracy and DP but not DEO.
    changed = PRED.copy()
    changed[[3, 4, 9]] = 1 - changed[[3, 4, 9]]
    assert fairness.equal_opportunity_difference(Y, changed, A) == pytest.approx(5 / 12)
    assert fairness.demographic_parity_difference(changed, A) != pytest.approx(0.4)


def test_deo_matches_fairlearn_on_random_predictions():
    fairlearn_metrics = pytest.importorskip("fairlearn.metrics")
    rng = np.random.default_rng(0)
    y, pred, a = (rng.integers(0, 2, 500) for _ in range(3))
    want = fairlearn_metrics.equal_opportunity_difference(y, pred, sensitive_features=a)
    assert fairness.equal_opportunity_difference(y, pred, a) == pytest.approx(want, abs=1e-12)
    want_dp = fairlearn_metrics.demographic_parity_difference(y, pred, sensitive_features=a)
    assert fairness.demographic_parity_difference(pred, a) == pytest.approx(want_dp, abs=1e-12)


def test_bad_inputs_get_clear_errors():
    with pytest.raises(ValueError, match="binary values 0/1, found 2"):
        fairness.fairness_scores(Y, np.where(PRED == 1, 2, 0), A)
    with pytest.raises(ValueError, match="different lengths"):
        fairness.accuracy(Y, PRED[:-1])
    with pytest.raises(ValueError, match="no example of group a=0 with y=1"):
        fairness.equal_opportunity_difference(np.array([0, 1]), np.array([1, 1]), np.array([0, 1]))
    with pytest.raises(ValueError, match="NaN or Inf"):
        fairness.classifier_fairness(np.array([[0.0], [np.nan]]), [0, 1], np.zeros((2, 1)), [0, 1], [0, 1])
    with pytest.raises(ValueError, match="both classes"):
        fairness.classifier_fairness(np.zeros((3, 1)), [1, 1, 1], np.zeros((2, 1)), [0, 1], [0, 1])


def test_linear_classifier_on_features_that_hold_y_or_only_a():
    """A feature equal to y gives a perfect, perfectly fair classifier; a feature equal to a
    predicts ŷ = a, whose DEO and DP are both 1 by construction."""
    rng = np.random.default_rng(1)
    y, a = rng.integers(0, 2, 400), rng.integers(0, 2, 400)
    perfect = fairness.classifier_fairness(y[:300, None], y[:300], y[300:, None], y[300:], a[300:])
    assert perfect == {"acc": 1.0, "deo": 0.0, "dp": pytest.approx(abs(y[300:][a[300:] == 0].mean()
                                                                        - y[300:][a[300:] == 1].mean()))}
    # y = a for 90% of the people: a logistic regression on a predicts ŷ = a.
    y_a = np.where(rng.random(400) < 0.9, a, 1 - a)
    biased = fairness.classifier_fairness(a[:300, None], y_a[:300], a[300:, None], y_a[300:], a[300:])
    assert biased["deo"] == 1.0 and biased["dp"] == 1.0
    assert biased["acc"] == pytest.approx(np.mean(y_a[300:] == a[300:]))


class _Encoder:
    """A stand-in model: U_x = 2x (private latent of x) and z = −x."""

    modality_specs = {"x": {"kind": "vector", "size": 1}, "a": {"kind": "categorical", "classes": 2}}

    def __init__(self, private):
        self.private = private

    def encode(self, inputs):
        x = np.asarray(inputs["x"], "float32")
        return {"loc": -x, "private": {"x": {"loc": 2 * x}} if self.private else {}}


def test_representation_is_the_private_latent_of_x_when_there_is_one():
    arrays = {"x": np.arange(5, dtype="float32")[:, None]}
    np.testing.assert_array_equal(fairness.representation(_Encoder(True), arrays, batch_size=2)[:, 0],
                                  2 * np.arange(5))
    np.testing.assert_array_equal(fairness.representation(_Encoder(False), arrays)[:, 0], -np.arange(5))
    with pytest.raises(ValueError, match="'b' is not a modality"):
        fairness.representation(_Encoder(True), arrays, modality="b")


def _gaussian_classes(n, prior, mu, rng):
    a = (rng.random(n) < prior).astype("int64")
    return rng.standard_normal(n) + np.where(a == 1, mu, -mu), a


def test_probe_information_matches_the_mutual_information_of_gaussian_classes():
    # u | a ~ N(±mu, 1): the log-odds is linear in u, so the logistic probe is the Bayes posterior
    # and its bound is tight: I(U; A) = H(A) − E H(A | U), integrated numerically below.
    prior, mu = 0.3, 0.8
    rng = np.random.default_rng(0)
    u_train, a_train = _gaussian_classes(40000, prior, mu, rng)
    u_test, a_test = _gaussian_classes(40000, prior, mu, rng)
    grid = np.linspace(-12, 12, 200001)
    pdf = lambda m: np.exp(-0.5 * (grid - m) ** 2) / np.sqrt(2 * np.pi)  # noqa: E731
    joint1, joint0 = prior * pdf(mu), (1 - prior) * pdf(-mu)
    marginal = joint1 + joint0
    integrand = sum(j * np.log(j / (marginal * w)) for j, w in ((joint1, prior), (joint0, 1 - prior)))
    want = float(np.sum(integrand) * (grid[1] - grid[0]))
    assert 0.1 < want < 0.3
    got = fairness.probe_information(u_train, a_train, u_test, a_test)
    assert got == pytest.approx(want, abs=0.01)


def test_probe_information_limits():
    rng = np.random.default_rng(1)
    a_train, a_test = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    noise = rng.standard_normal((8000, 3))
    # Features independent of a: nothing to learn (up to the probe's overfitting, a few 1e-3 nats).
    assert abs(fairness.probe_information(noise[:4000], a_train, noise[4000:], a_test)) < 5e-3
    # Features that copy a: the probe learns all of H(A) = log 2 nats (balanced a).
    copy = lambda a: np.column_stack([a * 10.0 + 0.1 * rng.standard_normal(len(a)), noise[: len(a)]])  # noqa: E731
    assert fairness.probe_information(copy(a_train), a_train, copy(a_test), a_test) == pytest.approx(np.log(2), abs=0.01)


def test_probe_information_rejects_bad_input():
    u, a = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="both classes"):
        fairness.probe_information(u, np.zeros(4), u, a)
    with pytest.raises(ValueError, match="binary"):
        fairness.probe_information(u, a, u, np.array([0, 1, 2, 1]))
    with pytest.raises(ValueError, match="columns"):
        fairness.probe_information(u, a, np.zeros((4, 3)), a)

"""The sample-quality metric (mibzoo.metrics.sample_quality) on cases with known answers."""
import math

import numpy as np
import pytest
import scipy.linalg

import mibzoo.data
from mibzoo import classifiers, metrics
from mibzoo.metrics import sample_quality as sq

from evaluation_testdata import CLASSES, IMAGE, PROTOTYPES, NearestPrototype


def _scipy_frechet(mu1, sigma1, mu2, sigma2):
    """Heusel et al. 2017, Eq. 6 written directly with scipy's matrix square root."""
    root = scipy.linalg.sqrtm(sigma1 @ sigma2)
    return float(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(root.real))


def _random_covariance(rng, d):
    a = rng.normal(size=(d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_frechet_distance_of_one_dimensional_gaussians_is_closed_form():
    # W2²(N(m1, s1²), N(m2, s2²)) = (m1 − m2)² + (s1 − s2)².
    assert sq.frechet_distance([1.0], [[4.0]], [-2.0], [[0.25]]) == pytest.approx(9.0 + 1.5 ** 2)


def test_frechet_distance_of_commuting_covariances_is_closed_form(rng):
    d1, d2 = rng.uniform(0.1, 3.0, 6), rng.uniform(0.1, 3.0, 6)
    mu1, mu2 = rng.normal(size=6), rng.normal(size=6)
    q, _ = np.linalg.qr(rng.normal(size=(6, 6)))  # same eigenvectors: Σ1, Σ2 commute
    expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(d1) - np.sqrt(d2)) ** 2)
    assert sq.frechet_distance(mu1, q @ np.diag(d1) @ q.T, mu2, q @ np.diag(d2) @ q.T) == pytest.approx(expected)


def test_frechet_distance_matches_scipy_sqrtm(rng):
    for d in (2, 5, 16):
        mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
        s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
        assert sq.frechet_distance(mu1, s1, mu2, s2) == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=1e-6)
        assert sq.frechet_distance(mu1, s1, mu1, s1) == pytest.approx(0.0, abs=1e-9)


def test_frechet_distance_of_sample_statistics_converges_to_the_true_distance(rng):
    d = 4
    mu1, mu2 = rng.normal(size=d), rng.normal(size=d)
    s1, s2 = _random_covariance(rng, d), _random_covariance(rng, d)
    x1 = rng.multivariate_normal(mu1, s1, size=40000)
    x2 = rng.multivariate_normal(mu2, s2, size=40000)
    estimate = sq.frechet_distance(*sq.gaussian_statistics(x1), *sq.gaussian_statistics(x2))
    assert estimate == pytest.approx(_scipy_frechet(mu1, s1, mu2, s2), rel=0.05)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="must be"):
        sq.frechet_distance(np.zeros(3), np.eye(3), np.zeros(2), np.eye(2))


def test_class_histogram_entropy_limits():
    assert sq.class_histogram_entropy(np.arange(100) % 10, 10) == pytest.approx(math.log(10))
    assert sq.class_histogram_entropy(np.full(50, 3), 10) == 0.0
    assert sq.class_histogram_entropy([0, 0, 1, 1], 10) == pytest.approx(math.log(2))
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        sq.class_histogram_entropy([0, 10], 10)


def test_class_probabilities_rejects_class_ids():
    with pytest.raises(ValueError, match="probabilities"):
        sq.class_probabilities(lambda x: np.zeros((len(x), 10)), np.zeros((4, 8, 8, 1)))
    with pytest.raises(ValueError, match=r"\[B, K\]"):
        sq.class_probabilities(lambda x: np.zeros(len(x)), np.zeros((4, 8, 8, 1)))


class _PrototypeSampler:
    """Samples prototype digits: all ten classes (``collapse=None``) or only one."""

    modality_specs = {"image": IMAGE}

    def __init__(self, collapse=None):
        self.collapse = collapse

    def sample(self, n, seed=0, mode="mean"):
        rng = np.random.default_rng(seed)
        digits = rng.integers(0, CLASSES, n) if self.collapse is None else np.full(n, self.collapse)
        return {"image": PROTOTYPES[digits]}


def test_sample_quality_tells_collapse_from_coverage():
    real = {"image": PROTOTYPES[np.arange(1000) % CLASSES]}
    readers = {"image": NearestPrototype()}
    good = metrics.prior_sample_quality(_PrototypeSampler(), readers, real, num_samples=1000)
    collapsed = metrics.prior_sample_quality(_PrototypeSampler(collapse=7), readers, real, num_samples=1000)
    assert good["image/confidence"] == 1.0 and collapsed["image/confidence"] == 1.0
    assert good["image/class_entropy"] == pytest.approx(math.log(10), abs=0.01)
    assert collapsed["image/class_entropy"] == 0.0
    assert good["image/frechet"] < 0.05 * collapsed["image/frechet"]


def test_higher_is_better_knows_the_frechet_distance():
    assert not metrics.higher_is_better("sample_quality/image/frechet")
    assert metrics.higher_is_better("sample_quality/image/confidence")
    assert metrics.higher_is_better("sample_quality/image/class_entropy")


@pytest.fixture(scope="module")
def mnist_and_classifier():
    """A small CNN of `mibzoo.classifiers` (the recipe's network, 1 epoch on 4,000 digits) and 1,600
    MNIST test digits it has not seen."""
    train = mibzoo.data.load_arrays("mnist", "train", limit=4000)
    test = mibzoo.data.load_arrays("mnist", "test", limit=1600)
    model = classifiers.fit_classifier(train["image"], train["digit"], 10, epochs=1, batch_size=64)
    return test["image"], model


def test_real_digits_score_well_and_a_constant_image_badly(mnist_and_classifier):
    images, clf = mnist_and_classifier
    real = sq.image_quality(clf, images[:800], images[800:])
    constant = sq.image_quality(clf, np.full_like(images[:800], 0.5), images[800:])
    assert real["class_entropy"] > 2.2 and constant["class_entropy"] == 0.0
    assert real["confidence"] > constant["confidence"] or real["confidence"] > 0.85
    assert real["frechet"] < 0.05 * constant["frechet"]
    features = sq.penultimate_features(clf, images[:5])
    assert features.shape == (5, 128)  # the Dense(128) layer before dropout and the softmax

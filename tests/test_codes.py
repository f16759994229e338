"""Code → class accuracy of categorical latent codes and the code plots (mibzoo.metrics.codes)."""
import itertools

import keras
import numpy as np
import pytest

import mibzoo
from mibzoo import metrics, samples
from mibzoo.metrics import codes

from evaluation_testdata import CLASSES, IMAGE, PROTOTYPES, NearestPrototype


def _brute_force(counts):
    """Best one-to-one assignment by trying every permutation (small K only)."""
    counts = np.asarray(counts)
    best = max(itertools.permutations(range(counts.shape[1]), counts.shape[0]),
               key=lambda perm: sum(counts[k, c] for k, c in enumerate(perm)))
    return sum(counts[k, c] for k, c in enumerate(best)) / counts.sum()


def test_best_assignment_matches_brute_force(rng):
    for k in (2, 4, 6):
        counts = rng.integers(0, 30, size=(k, k))
        accuracy, assignment = codes.best_assignment_accuracy(counts)
        assert accuracy == pytest.approx(_brute_force(counts))
        assert sorted(assignment) == list(range(k))  # one-to-one


def test_best_assignment_of_a_permuted_diagonal_is_perfect():
    permutation = np.array([3, 0, 2, 1])
    counts = np.eye(4)[permutation] * 25
    accuracy, assignment = codes.best_assignment_accuracy(counts)
    assert accuracy == 1.0 and list(assignment) == list(permutation)
    # Every code generating the same class: only one code can be matched to it.
    accuracy, _ = codes.best_assignment_accuracy(np.tile([0, 0, 25, 0], (4, 1)))
    assert accuracy == 0.25
    with pytest.raises(ValueError, match="non-negative"):
        codes.best_assignment_accuracy([[1, -1]])


class _CodeModel:
    """Draws prototype digits: the class is (code + shift) mod 10, or random when the code is ignored."""

    modality_specs = {"image": IMAGE}
    block_names, block_sizes, block_priors = ["noise", "digit_code"], [2, CLASSES], ["normal", "categorical"]

    def __init__(self, shift=3, ignore_code=False):
        self.shift, self.ignore_code = shift, ignore_code

    def sample(self, n, seed=0, mode="mean", latents=None):
        rng = np.random.default_rng(seed)
        code = np.asarray(latents["digit_code"]) if latents and "digit_code" in latents else rng.integers(0, 10, n)
        digits = rng.integers(0, CLASSES, n) if self.ignore_code else (code + self.shift) % CLASSES
        return {"image": PROTOTYPES[digits]}


def test_code_class_accuracy_finds_a_shifted_code():
    result = metrics.code_class_accuracy(_CodeModel(shift=3), "digit_code", "image", NearestPrototype(),
                                         samples_per_code=20)
    assert result["accuracy"] == 1.0
    assert result["assignment"] == [(k + 3) % 10 for k in range(10)]
    assert np.sum(result["counts"]) == 200


def test_code_class_accuracy_of_an_ignored_code_is_near_chance():
    result = metrics.code_class_accuracy(_CodeModel(ignore_code=True), "digit_code", "image", NearestPrototype(),
                                         samples_per_code=200)
    assert result["accuracy"] < 0.2  # chance 0.1, plus what the best matching finds in noise


def test_code_samples_rejects_a_continuous_block():
    with pytest.raises(ValueError, match="categorical blocks are \\['digit_code'\\]"):
        codes.code_samples(_CodeModel(), "noise", "image")


@pytest.fixture(scope="module")
def tiny_infogan():
    """An untrained infogan at its zoo defaults (DCGAN networks) on 8×8 images."""
    keras.utils.set_random_seed(0)
    return mibzoo.load("infogan", modalities={"image": IMAGE})


def test_evaluate_reports_code_accuracy_and_sample_quality_for_infogan(tiny_infogan):
    test = {"image": PROTOTYPES[np.arange(200) % CLASSES], "digit": np.arange(200) % CLASSES}
    values = metrics.evaluate(tiny_infogan, test, spec="mnist", classifiers={"image": NearestPrototype()},
                              metrics=["sample_quality", "code_accuracy"], prior_samples=100)
    assert set(values) == {"code_accuracy/digit_code/image", "sample_quality/image/confidence",
                           "sample_quality/image/class_entropy", "sample_quality/image/frechet"}
    assert 0.1 <= values["code_accuracy/digit_code/image"] <= 1.0


def test_code_plots_are_written(tiny_infogan, tmp_path):
    paths = samples.write_code_plots(tiny_infogan, tmp_path, columns=4)
    assert [p.name for p in paths] == ["codes_digit_code_image.png", "traversal_style_code_0_image.png",
                                       "traversal_style_code_1_image.png"]
    assert all(p.stat().st_size > 1000 for p in paths)


def test_traversal_changes_only_the_traversed_dimension(tiny_infogan):
    values = codes.code_traversal(tiny_infogan, "style_code", 1, "image", values=(-2.0, 2.0), rows=3)
    assert values.shape == (3, 2, 8, 8, 1)
    # Same other latents along a row: a code the generator reads changes the picture, a repeated value does not.
    again = codes.code_traversal(tiny_infogan, "style_code", 1, "image", values=(-2.0, -2.0), rows=3)
    np.testing.assert_allclose(again[:, 0], again[:, 1], atol=1e-6)
    np.testing.assert_allclose(again[:, 0], values[:, 0], atol=1e-6)
    assert np.abs(values[:, 0] - values[:, 1]).max() > 1e-4


def test_evaluate_leaves_out_metrics_that_need_an_inference_network(tiny_infogan):
    test = {"image": PROTOTYPES[np.arange(100) % CLASSES], "digit": np.arange(100) % CLASSES}
    values = metrics.evaluate(tiny_infogan, test, test, spec="mnist", classifiers={"image": NearestPrototype()},
                              prior_samples=50, iwae_k=2)
    assert sorted({key.split("/")[0] for key in values}) == ["code_accuracy", "sample_quality"]

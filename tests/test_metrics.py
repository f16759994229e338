"""Each metric on a case with a known answer (mibzoo.metrics, mibzoo.classifiers)."""
import dataclasses
import json

import keras
import numpy as np
import pytest

import mibzoo
from mibzoo import classifiers, metrics
from mibzoo.inference import gaussian_log_density
from mibzoo.metrics import EvaluationSpec, ModalityLabel
from mibzoo.objectives.elbo import negative_elbo

from evaluation_testdata import (CLASSES, IMAGE, LABEL, TINY_OPTIONS, TINY_SHARED, NearestPrototype, PerfectModel,
                                 RandomModel, label_arrays, plus1_arrays)

PLUS1_SPECS = {"image_a": IMAGE, "image_b": IMAGE}
LABEL_SPECS = {"image": IMAGE, "label": LABEL}
CLF = NearestPrototype()


# ----- coherence ----------------------------------------------------------------------------------
def test_perfect_model_has_cross_modal_coherence_one():
    data = plus1_arrays(300)
    model = PerfectModel(PLUS1_SPECS, offsets={"image_b": 1})
    assert metrics.cross_modal_coherence(model, data, "image_a", "image_b", "digit_b", CLF) == 1.0
    assert metrics.cross_modal_coherence(model, data, "image_b", "image_a", "digit_a", CLF) == 1.0


def test_label_target_is_read_by_argmax_of_generated_probabilities():
    data = label_arrays(200)
    model = PerfectModel(LABEL_SPECS)
    assert metrics.cross_modal_coherence(model, data, "image", "label", "digit") == 1.0  # no classifier needed
    assert metrics.cross_modal_coherence(model, data, "label", "image", "digit", CLF) == 1.0


def test_random_model_has_cross_modal_coherence_near_chance():
    data = plus1_arrays(3000)
    model = RandomModel(PLUS1_SPECS)
    score = metrics.cross_modal_coherence(model, data, "image_a", "image_b", "digit_b", CLF, batch_size=500)
    assert abs(score - 1.0 / CLASSES) < 0.03


def test_joint_coherence_known_answers_with_plus1_shift():
    readers = {"image_a": CLF, "image_b": CLF}
    perfect = PerfectModel(PLUS1_SPECS, offsets={"image_b": 1})
    assert metrics.joint_coherence(perfect, readers, offsets={"image_b": 1}, num_samples=500) == 1.0
    # Without the shift the same samples never agree: image_b always shows the next digit.
    assert metrics.joint_coherence(perfect, readers, num_samples=500) == 0.0
    random = metrics.joint_coherence(RandomModel(PLUS1_SPECS), readers, offsets={"image_b": 1}, num_samples=3000)
    assert abs(random - 1.0 / CLASSES) < 0.03  # chance: K^(1 - N) with N = 2


def test_evaluate_on_perfect_model_uses_dataset_spec_offsets():
    data = plus1_arrays(200)
    values = metrics.evaluate(PerfectModel(PLUS1_SPECS, {"image_b": 1}), data, spec="mnist_plus1",
                              classifiers={"image_a": CLF, "image_b": CLF},
                              metrics=["cross_coherence", "joint_coherence"], prior_samples=200)
    assert values == {"cross_coherence/image_a->image_b": 1.0, "cross_coherence/image_b->image_a": 1.0,
                      "joint_coherence": 1.0}


def test_coherence_errors_name_what_is_allowed():
    data = plus1_arrays(10)
    model = PerfectModel(PLUS1_SPECS)
    with pytest.raises(ValueError, match="not a modality of the model; its modalities are"):
        metrics.cross_modal_coherence(model, data, "image_c", "image_b", "digit_b", CLF)
    with pytest.raises(ValueError, match="no key 'digit_c'; available keys"):
        metrics.cross_modal_coherence(model, data, "image_a", "image_b", "digit_c", CLF)
    with pytest.raises(ValueError, match="needs a classifier"):
        metrics.cross_modal_coherence(model, data, "image_a", "image_b", "digit_b", None)
    with pytest.raises(ValueError, match="at least two modalities"):
        metrics.joint_coherence(model, {"image_a": CLF})
    with pytest.raises(ValueError, match="unknown metric 'coherense'. Did you mean"):
        metrics.evaluate(model, data, metrics=["coherense"])
    with pytest.raises(ValueError, match="Known datasets: mnist, mnist_label"):
        metrics.evaluate(model, data, spec="mnist_plus2")


# ----- IWAE bound ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_model():
    """A briefly trained tiny Wyner VAE (shared z and private u: every term of the weight is used).
    β = 0 leaves the private latents' rate unpenalized beyond the ELBO, so every KL in the importance
    weights is large enough for the tests below to notice it missing."""
    keras.utils.set_random_seed(0)
    model = mibzoo.load("wyner_vae", modalities={"image": {**IMAGE, **TINY_OPTIONS}, "label": {**LABEL, "hidden": 32}},
                       shared=TINY_SHARED, private=2, beta=0.0, likelihood_weights={})  # the ELBO IWAE bounds: weights 1
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    model.fit(label_arrays(256, seed=1), batch_size=64, epochs=2, verbose=0)
    return model


def _noise_queue(draws):
    """A ForwardPass noise source that hands out the given draws in order."""
    queue = list(draws)
    return lambda shape: queue.pop(0)


def test_iwae_with_one_sample_equals_the_elbo_with_the_same_noise(tiny_model):
    model = tiny_model
    batch = label_arrays(16, seed=2)
    inputs = {"image": batch["image"], "label": batch["label"]}
    noise = metrics.likelihood.draw_noise(model, ["image", "label"], 1, 16, seed=5)
    log_w = metrics.log_importance_weights(model, inputs, noise=noise)  # [1, B]

    # The ELBO from the model's own ForwardPass pieces with the same ε: the training path.
    fp = model.forward_pass(inputs, seed=_noise_queue([noise["z"][0], noise["u"]["image"][0], noise["u"]["label"][0]]))
    z = fp.z(None)  # the call (and cache key) negative_log_likelihood uses
    u = {name: fp.u(name) for name in ("image", "label")}
    loc, logvar = fp.posterior()
    elbo = (np.sum(gaussian_log_density(z, 0.0, 0.0), -1) - np.sum(gaussian_log_density(z, loc, logvar), -1))
    for name in ("image", "label"):
        _, _, u_loc, u_logvar = fp.encoder_outputs()[name]
        elbo = elbo - fp.negative_log_likelihood(name) + np.sum(
            gaussian_log_density(u[name], 0.0, 0.0) - gaussian_log_density(u[name], u_loc, u_logvar), -1)
    np.testing.assert_allclose(log_w[0], np.asarray(elbo), rtol=1e-4, atol=1e-3)
    assert metrics.iwae_bound(model, inputs, k=1, seed=3) == metrics.elbo(model, inputs, seed=3)


def test_iwae_k1_matches_the_analytic_elbo_of_the_training_objective_on_average():
    """With K = 1 the IWAE bound is an unbiased estimate of the ELBO the model trains on (closed-form
    KLs): over many draws the two means agree within a few standard errors. Dropping a term of the
    importance weights (the KL of z or of one u_i) moves the mean by that KL, many standard errors.

    The identity holds for any weights; the encoders' output biases are set so that every KL is about
    a nat (a trained tiny model leaves its private latents almost unused, below the test's resolution).
    """
    keras.utils.set_random_seed(0)
    model = mibzoo.load("wyner_vae", modalities={"image": {**IMAGE, **TINY_OPTIONS}, "label": {**LABEL, "hidden": 32}},
                        shared=TINY_SHARED, private=2, likelihood_weights={})  # the ELBO IWAE bounds: weights 1
    dz, du = model.shared_size, model.private_sizes["image"]  # the same for both modalities here
    for encoder in model.encoders.values():
        kernel, bias = encoder.net.layers[-1].get_weights()
        bias[:dz], bias[dz:2 * dz] = 0.7, -1.0            # η and log σ² of the z expert
        bias[2 * dz:2 * dz + du], bias[2 * dz + du:] = 1.0, -1.0  # loc and log σ² of q(u_i | x_i)
        encoder.net.layers[-1].set_weights([0.1 * kernel, bias])
    data = label_arrays(128, seed=3)
    estimates = np.array([metrics.iwae_bound(model, data, k=1, seed=s) for s in range(40)])
    x, present = model._prepare({"image": data["image"], "label": data["label"]}, strict=True)
    analytic = np.array([-float(np.mean(negative_elbo(model.forward(x, present, training=False, seed=s))))
                         for s in range(40)])
    standard_error = np.sqrt(estimates.var(ddof=1) / len(estimates) + analytic.var(ddof=1) / len(analytic))
    gap = abs(estimates.mean() - analytic.mean())
    assert gap < 4 * standard_error + 1e-3, f"gap {gap:.4f} nats, standard error {standard_error:.4f}"
    # The test's power: every KL in the weights is many standard errors large, so a dropped one shows.
    fp = model.forward(x, present, training=False, seed=0)
    kls = [float(np.mean(fp.kl_to_prior()))] + [float(np.mean(fp.private_kl(n))) for n in ("image", "label")]
    assert min(kls) > 10 * standard_error, (kls, standard_error)


def test_iwae_bound_does_not_decrease_with_k(tiny_model):
    data = label_arrays(64, seed=4)
    bounds = [metrics.iwae_bound(tiny_model, data, k=k, seed=11, batch_size=32) for k in (1, 4, 16, 64)]
    assert all(later >= earlier - 1e-3 for earlier, later in zip(bounds, bounds[1:])), bounds
    assert bounds[-1] > bounds[0]
    single = metrics.iwae_bound(tiny_model, data, modalities=["label"], k=16, seed=11)
    assert -np.log(CLASSES) - 5 < single < 0  # a categorical log-probability


def test_log_likelihoods_report_joint_and_each_modality(tiny_model):
    values = metrics.log_likelihoods(tiny_model, label_arrays(32), k=4)
    assert set(values) == {"joint", "image", "label"}
    assert all(np.isfinite(v) and v < 0 for v in values.values())
    with pytest.raises(ValueError, match="k must be a positive integer"):
        metrics.iwae_bound(tiny_model, label_arrays(8), k=0)


# ----- linear probe, reconstruction ---------------------------------------------------------------
def test_logistic_regression_separable_and_random_features():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 800)
    separable = np.eye(4)[y] * 3 + rng.normal(scale=0.3, size=(800, 4))
    predict = metrics.fit_logistic_regression(separable[:600], y[:600], 4)
    assert np.mean(predict(separable[600:]) == y[600:]) > 0.98
    noise = rng.normal(size=(800, 4))
    predict = metrics.fit_logistic_regression(noise[:600], y[:600], 4)
    assert abs(np.mean(predict(noise[600:]) == y[600:]) - 0.25) < 0.1


def test_linear_probe_known_answers():
    train, test = label_arrays(400, seed=1), label_arrays(200, seed=2)
    assert metrics.linear_probe_accuracy(PerfectModel(LABEL_SPECS), train, test, "digit", ["image"]) == 1.0
    random = metrics.linear_probe_accuracy(RandomModel(LABEL_SPECS), train, test, "digit", ["image"])
    assert random < 0.25


def test_reconstruction_error_perfect_and_wrong():
    data = label_arrays(50)
    assert metrics.reconstruction_error(PerfectModel(LABEL_SPECS), data) == {"image": 0.0, "label": 0.0}

    class Inverted(PerfectModel):
        def reconstruct(self, inputs):
            return {"image": 1.0 - inputs["image"], "label": np.eye(CLASSES)[(inputs["label"] + 1) % CLASSES]}

    assert metrics.reconstruction_error(Inverted(LABEL_SPECS), data) == {"image": 1.0, "label": 1.0}


def test_evaluate_real_model_has_every_metric(tiny_model):
    train, test = label_arrays(128, seed=5), label_arrays(64, seed=6)
    values = metrics.evaluate(tiny_model, test, train, spec="mnist_label", classifiers={"image": CLF}, iwae_k=3,
                              prior_samples=100)
    assert set(values) == {"cross_coherence/image->label", "cross_coherence/label->image", "joint_coherence",
                           "log_likelihood/joint", "log_likelihood/image", "log_likelihood/label",
                           "probe/joint", "probe/image", "probe/label", "reconstruction/image",
                           "reconstruction/label", "sample_quality/image/confidence",
                           "sample_quality/image/class_entropy", "sample_quality/image/frechet"}
    assert all(np.isfinite(v) for v in values.values())


def test_evaluation_spec_round_trips_through_json():
    spec = EvaluationSpec({"image_b": ModalityLabel("digit_b", "mnist_digit", offset=1)}, probe_label="digit_a")
    assert EvaluationSpec.from_json(json.loads(json.dumps(spec.to_json()))) == spec


# ----- classifier cache ---------------------------------------------------------------------------
def test_classifier_cache_verifies_its_checksum(tmp_path):
    data = label_arrays(200)
    model = classifiers.fit_classifier(data["image"], data["digit"], CLASSES, epochs=1, batch_size=50)
    info = classifiers.store("mnist_digit", model, 0.5, directory=tmp_path)
    assert info["sha256"] == classifiers.sha256_file(tmp_path / "mnist_digit.keras")
    loaded = classifiers.get("mnist_digit", directory=tmp_path, train_missing=False)
    np.testing.assert_array_equal(classifiers.predict_classes(loaded, data["image"]),
                                  classifiers.predict_classes(model, data["image"]))
    with open(tmp_path / "mnist_digit.keras", "ab") as handle:  # corrupt the cached file
        handle.write(b"x")
    assert classifiers.load_cached("mnist_digit", tmp_path) is None
    with pytest.raises(FileNotFoundError, match="fails its checksum"):
        classifiers.get("mnist_digit", directory=tmp_path, train_missing=False)
    with pytest.raises(ValueError, match="Known classifiers: mnist_digit"):
        classifiers.get("mnist_digits", directory=tmp_path)


def test_classifier_cache_dir_honours_environment(monkeypatch, tmp_path):
    monkeypatch.delenv(classifiers.ENV_CLASSIFIER_DIR, raising=False)
    monkeypatch.setenv("MIBZOO_DATA_DIR", str(tmp_path))
    assert classifiers.cache_dir() == (tmp_path / "classifiers").resolve()
    assert classifiers.cache_dir(tmp_path / "x") == (tmp_path / "x").resolve()


def test_weights_digest_names_the_weights_not_the_file(tmp_path):
    data = label_arrays(200)
    model = classifiers.fit_classifier(data["image"], data["digit"], CLASSES, epochs=1, batch_size=50)
    info = classifiers.store("mnist_digit", model, 0.5, directory=tmp_path)
    loaded = classifiers.load_cached("mnist_digit", tmp_path)
    assert info["weights_sha256"] == classifiers.weights_sha256(loaded) == classifiers.weights_sha256(model)
    weights = model.get_weights()
    weights[0] = weights[0] * np.float32(1.0001)
    model.set_weights(weights)
    assert classifiers.weights_sha256(model) != info["weights_sha256"]
    # same_classifier: weights where both records have them (files differ in their save time), else files.
    assert classifiers.same_classifier({"sha256": "a", "weights_sha256": "w"}, {"sha256": "b", "weights_sha256": "w"})
    assert not classifiers.same_classifier({"sha256": "a", "weights_sha256": "w"}, {"sha256": "a", "weights_sha256": "v"})
    assert classifiers.same_classifier({"sha256": "a", "test_accuracy": 0.99}, {"sha256": "a", "weights_sha256": "w"})
    assert not classifiers.same_classifier({"sha256": "a", "test_accuracy": 0.99}, {"sha256": "b", "test_accuracy": 0.99})
    assert not classifiers.same_classifier({}, {})


TINY_RECIPE = classifiers.Recipe(dataset="mnist", input_key="image", label_key="digit", min_accuracy=0.0,
                                 epochs=1, batch_size=100, train_limit=500)


def test_training_runs_in_a_child_with_pinned_threads(tmp_path):
    # The caller's threads and devices must not choose the classifier (one-thread and two-thread training
    # of the full recipe gave two classifiers, 0.9910 and 0.9914 test accuracy): the child pins them.
    model, info = classifiers.train("mnist_digit", directory=tmp_path, recipe=TINY_RECIPE)
    assert info["training"] == {"intra_op_threads": classifiers.TRAINING_THREADS,
                                "inter_op_threads": classifiers.TRAINING_THREADS, "devices": ["CPU"]}
    assert info["recipe"]["train_limit"] == 500 and info["train_examples"] == 500
    assert info["weights_sha256"] == classifiers.weights_sha256(model)
    assert classifiers.record("mnist_digit", tmp_path) == info


def test_a_classifier_under_its_required_accuracy_is_not_cached(tmp_path, monkeypatch):
    failing = dataclasses.replace(TINY_RECIPE, min_accuracy=1.01)
    with pytest.raises(RuntimeError, match="is below the required 1.01"):  # the child's work, here
        classifiers.train_here("mnist_digit", directory=tmp_path, recipe=failing)
    assert classifiers.record("mnist_digit", tmp_path) is None
    # In `train` that error ends the child with a non-zero exit, which the parent reports.
    monkeypatch.setattr(classifiers.subprocess, "run",
                        lambda command, **kwargs: classifiers.subprocess.CompletedProcess(command, 1, ""))
    with pytest.raises(RuntimeError, match="training failed in its child process \\(exit 1"):
        classifiers.train("mnist_digit", directory=tmp_path, recipe=failing)


@pytest.mark.slow
def test_training_twice_gives_the_same_classifier(tmp_path):
    _, first = classifiers.train("mnist_digit", directory=tmp_path / "a", recipe=TINY_RECIPE)
    _, again = classifiers.train("mnist_digit", directory=tmp_path / "b", recipe=TINY_RECIPE)
    assert again["weights_sha256"] == first["weights_sha256"]


def test_classifier_records_name_the_classifier_that_scored(tmp_path):
    from mibzoo.experiment import classifier_records

    data = label_arrays(200)
    cached = classifiers.fit_classifier(data["image"], data["digit"], CLASSES, epochs=1, batch_size=50)
    info = classifiers.store("mnist_digit", cached, 0.5, directory=tmp_path)
    spec = EvaluationSpec({"image": ModalityLabel("digit", "mnist_digit")})
    expected = {"sha256": info["sha256"], "test_accuracy": 0.5, "weights_sha256": info["weights_sha256"]}
    loaded = classifiers.load_cached("mnist_digit", tmp_path)
    assert classifier_records(spec, tmp_path) == classifier_records(spec, tmp_path, {"image": loaded}) == {
        "mnist_digit": expected}
    # A reader loaded before the cache changed (or passed in) is named by its own weights.
    other = classifiers.fit_classifier(data["image"], data["digit"], CLASSES, epochs=1, batch_size=50, seed=1)
    assert classifier_records(spec, tmp_path, {"image": other}) == {"mnist_digit": {
        "sha256": None, "test_accuracy": None, "weights_sha256": classifiers.weights_sha256(other)}}
    callable_reader = classifier_records(spec, tmp_path, {"image": NearestPrototype()})["mnist_digit"]
    assert callable_reader["reader"] == "NearestPrototype" and not classifiers.same_classifier(callable_reader,
                                                                                              callable_reader)
    # A cache written before weights digests: they are read off its file.
    legacy = {k: v for k, v in info.items() if k != "weights_sha256"}
    (tmp_path / "mnist_digit.json").write_text(json.dumps(legacy))
    assert classifier_records(spec, tmp_path) == {"mnist_digit": expected}

"""Options every zoo entry can use (issue 10): KL warm-up schedules, per-modality likelihood
weights and per-kind network choices, each against an independent computation."""
import json

import numpy as np
import pytest

import keras
import mibzoo
from mibzoo.config import read_zoo_file
from mibzoo.errors import ConfigError
from mibzoo.schedules import LinearWarmup
from tests.model_test_case import TINY_LABEL, TINY_SHARED, TINY_VECTOR, dataset, run_saving_test, synthetic_batches

PAIR = {"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)}
WARMUP = {"class_name": "LinearWarmup", "config": {"warmup_steps": 100, "start": 0.0}}


def forward_pass(model, arrays, training=False, seed=7):
    x, present = model._prepare({k: v for k, v in arrays.items() if k in model.modality_specs}, strict=True)
    return model.forward(x, present, training=training, seed=seed)


def numpy_kl_to_standard_normal(loc, logvar):
    return 0.5 * np.sum(np.exp(logvar) + loc ** 2 - 1 - logvar, axis=-1)


def numpy_negative_log_likelihoods(model, fp, arrays):
    """−log p(x | z) and −log p(y | z) in NumPy from the decoders' outputs at fp's z (Bernoulli
    cross-entropy of the vector, log-softmax of the label)."""
    z = np.asarray(fp.z(None))  # the sample the likelihood terms use (cached under only=None)
    out = {}
    for name in ("x", "y"):
        params = np.asarray(model.decode_modality(name, fp.decoder_input(name, z)), "float64")
        if name == "x":
            target = arrays["x"]
            out[name] = np.sum(np.logaddexp(0, params) - target * params, axis=-1)
        else:
            log_softmax = params - np.log(np.sum(np.exp(params), axis=-1, keepdims=True))
            out[name] = -log_softmax[np.arange(len(params)), arrays["y"]]
    return out


@pytest.mark.parametrize("step, start, want", [(0, 0.0, 0.0), (25, 0.0, 0.25), (50, 0.2, 0.6), (100, 0.0, 1.0),
                                               (1000, 0.3, 1.0)])
def test_linear_warmup_weight_at_step(step, start, want):
    schedule = LinearWarmup(warmup_steps=100, start=start)
    np.testing.assert_allclose(float(schedule(step)), start + (1 - start) * min(1.0, step / 100), rtol=1e-6)
    np.testing.assert_allclose(float(schedule(step)), want, rtol=1e-6)


def test_warmup_serializes_into_the_model_config_and_back(tmp_path):
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, kl_schedule=LinearWarmup(40, start=0.1))
    assert model.get_config()["kl_schedule"] == {"class_name": "LinearWarmup",
                                                  "config": {"warmup_steps": 40, "start": 0.1}}
    json.dumps(model.get_config())  # a zoo config is JSON
    model.compile(optimizer="adam")
    path = tmp_path / "m.keras"
    model.save(path)
    restored = keras.saving.load_model(path)
    assert restored.get_config()["kl_schedule"] == model.get_config()["kl_schedule"]
    assert isinstance(restored.kl_schedule, LinearWarmup) and restored.kl_schedule.warmup_steps == 40


def test_training_pass_weights_every_kl_by_the_schedule_at_the_current_step():
    """C1 + β·cross during training at step t = NLL + γ_t KL(q(z|x) ‖ p(z)) + β Σ_i KL(q(z|x) ‖ q(z|x_i))
    (the cross terms are not warmed up), and the evaluation pass keeps γ = 1. (jmvae's KL part of
    G_cross alone: its cross_generation term is checked in tests/test_objectives.py.)"""
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, beta=2.0, kl_schedule=WARMUP,
                        str_reg=[["beta", "cross"]])
    model.compile(optimizer="adam")
    model.optimizer.iterations.assign(30)
    arrays = synthetic_batches(PAIR, n=16)
    for training, gamma in ((True, 0.3), (False, 1.0)):
        fp = forward_pass(model, arrays, training=training)
        terms, totals = model.compute_terms(fp)
        loc, logvar = (np.asarray(t) for t in fp.posterior())
        nll = numpy_negative_log_likelihoods(model, fp, arrays)
        kl = numpy_kl_to_standard_normal(loc, logvar)
        cross = 0.0
        for i in range(2):
            li, lvi = (np.asarray(t) for t in fp.posterior(i))
            cross += np.mean(0.5 * np.sum(np.exp(logvar - lvi) + (loc - li) ** 2 / np.exp(lvi) - 1 - logvar + lvi, -1))
        want = np.mean(nll["x"] + nll["y"] + gamma * kl) + 2.0 * cross
        np.testing.assert_allclose(float(totals["loss"]), want, rtol=1e-4)


def test_likelihood_weight_one_reproduces_the_unweighted_elbo_and_w_scales_the_nll():
    arrays = synthetic_batches(PAIR, n=16)
    eq16 = dict(modalities=PAIR, shared=TINY_SHARED, private=2, str_reg=[["beta", "cross"]])  # Eq. 16 alone
    plain = mibzoo.load("mib_mm", likelihood_weights={}, **eq16)
    ones = mibzoo.load("mib_mm", likelihood_weights={"x": 1.0, "y": 1.0}, **eq16)
    heavy = mibzoo.load("mib_mm", likelihood_weights={"y": 50.0}, **eq16)
    ones.set_weights(plain.get_weights())
    heavy.set_weights(plain.get_weights())
    fps = {name: forward_pass(m, arrays) for name, m in (("plain", plain), ("ones", ones), ("heavy", heavy))}
    losses = {name: float(m.compute_terms(fps[name])[1]["loss"])
              for name, m in (("plain", plain), ("ones", ones), ("heavy", heavy))}
    assert losses["ones"] == pytest.approx(losses["plain"], rel=1e-6)
    # Eq. 16 with the label's −log p(y | z, u_y) counted 50 times, the label NLL computed in NumPy.
    fp = fps["heavy"]
    loc, logvar = (np.asarray(t) for t in fp.posterior())
    u = {n: np.asarray(fp.u(n)) for n in ("x", "y")}
    nll = {}
    for name in ("x", "y"):
        params = np.asarray(heavy.decode_modality(name, fp.decoder_input(name, np.asarray(fp.z(None)), u[name])), "float64")
        if name == "x":
            nll[name] = np.sum(np.logaddexp(0, params) - arrays["x"] * params, axis=-1)
        else:
            nll[name] = -(params - np.log(np.exp(params).sum(-1, keepdims=True)))[np.arange(16), arrays["y"]]
    l_u = sum(np.mean(np.asarray(fp.private_kl(n))) for n in ("x", "y"))
    l_z = np.mean(numpy_kl_to_standard_normal(loc, logvar))
    for i in range(2):
        li, lvi = (np.asarray(t) for t in fp.posterior(i))
        l_z += np.mean(0.5 * np.sum(np.exp(logvar - lvi) + (loc - li) ** 2 / np.exp(lvi) - 1 - logvar + lvi, -1))
    np.testing.assert_allclose(losses["heavy"], np.mean(nll["x"] + 50.0 * nll["y"]) + l_u + l_z, rtol=1e-4)


def test_likelihood_weights_do_not_change_the_reported_log_likelihood():
    arrays = synthetic_batches(PAIR, n=8)
    plain = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED)
    heavy = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, likelihood_weights={"y": 50.0})
    heavy.set_weights(plain.get_weights())
    from mibzoo.metrics import iwae_bound
    inputs = {k: v for k, v in arrays.items() if k in PAIR}
    np.testing.assert_allclose(np.asarray(iwae_bound(heavy, inputs, k=4, seed=1)),
                               np.asarray(iwae_bound(plain, inputs, k=4, seed=1)), rtol=1e-6)


def test_weights_follow_the_modalities_when_a_dataset_replaces_them():
    from mibzoo.config import apply_overrides

    section = {**mibzoo.describe("jmvae")["model"], "likelihood_weights": {"label": 50.0}}
    kept = apply_overrides(section, {"modalities": {"image": dict(TINY_VECTOR), "label": dict(TINY_LABEL)}}, "test")
    assert kept["likelihood_weights"] == {"label": 50.0}
    dropped = apply_overrides(section, {"modalities": {"a": dict(TINY_VECTOR), "b": dict(TINY_VECTOR)}}, "test")
    assert dropped["likelihood_weights"] == {}
    with pytest.raises(ConfigError, match="likelihood_weights.label"):  # named explicitly: an error
        mibzoo.load("jmvae", likelihood_weights={"label": 50.0}, modalities={"a": dict(TINY_VECTOR)})


def test_image_mlp_networks_from_per_kind_defaults_and_spec_keys_take_precedence():
    image = {"kind": "image", "shape": [6, 5, 1]}
    model = mibzoo.load("jmvae", modalities={"img": image, "y": dict(TINY_LABEL)}, shared=TINY_SHARED,
                        networks={"image": {"network": "mlp", "hidden": 24, "layers": 3},
                                  "categorical": {"hidden": 16}})
    dense = [l for l in model.encoders["img"].net.layers if isinstance(l, keras.layers.Dense)]
    assert [d.units for d in dense] == [24, 24, 24, 2 * 4]
    assert not any(isinstance(l, keras.layers.Conv2D) for l in model.decoders["img"].net.layers)
    assert [d.units for d in model.encoders["y"].net.layers if isinstance(d, keras.layers.Dense)] == [32, 8]
    out = model.decode_modality("img", np.zeros((3, 4), "float32"))
    assert tuple(out.shape) == (3, 6, 5, 1)
    x = np.random.default_rng(0).random((2, 6, 5, 1)).astype("float32")
    assert tuple(model.generate({"img": x}, target="img", num_samples=2, seed=0).shape) == (2, 2, 6, 5, 1)


def test_decoder_layers_gives_mlp_decoders_their_own_depth_with_the_parameter_count_of_the_layers():
    """MultiVae's default networks: encoders of two hidden layers, decoders of one. The trainable
    parameters are those of the dense layers written out by hand (weights + biases per layer)."""
    image = {"kind": "image", "shape": [6, 5, 1]}
    label = {"kind": "categorical", "classes": 4}  # the per-kind defaults below, not TINY_LABEL's own sizes
    model = mibzoo.load("jmvae", modalities={"img": image, "y": label}, shared=TINY_SHARED,
                        networks={"image": {"network": "mlp", "hidden": 24, "layers": 2, "decoder_layers": 1},
                                  "categorical": {"hidden": 16, "decoder_layers": 3}})
    units = lambda net: [l.units for l in net.net.layers if isinstance(l, keras.layers.Dense)]  # noqa: E731
    assert units(model.encoders["img"]) == [24, 24, 8] and units(model.decoders["img"]) == [24, 30]
    assert units(model.encoders["y"]) == [16, 16, 8] and units(model.decoders["y"]) == [16, 16, 16, 4]

    def mlp(*widths):
        return sum(a * b + b for a, b in zip(widths[:-1], widths[1:]))

    classes, latent = label["classes"], sum(b["size"] for b in TINY_SHARED)
    want = (mlp(30, 24, 24, 2 * latent) + mlp(latent, 24, 30)
            + mlp(classes, 16, 16, 2 * latent) + mlp(latent, 16, 16, 16, classes))
    assert sum(int(np.prod(v.shape)) for v in model.trainable_variables) == want


def test_decoder_layers_zero_makes_the_decoder_one_linear_map_and_negative_depths_are_refused():
    """``decoder_layers`` 0: p(y | z) is a generalized linear model of z, one dense layer of
    z's size × classes weights plus biases; the encoder keeps its hidden layers."""
    label = {"kind": "categorical", "classes": 4}
    model = mibzoo.load("jmvae", modalities={"img": SMALL_IMAGE, "y": label}, shared=TINY_SHARED,
                        networks={"categorical": {"hidden": 16, "layers": 1, "decoder_layers": 0}})
    dense = [l for l in model.decoders["y"].net.layers if isinstance(l, keras.layers.Dense)]
    latent = sum(b["size"] for b in TINY_SHARED)
    assert [l.units for l in dense] == [4] and dense[0].kernel.shape == (latent, 4)
    z = np.random.default_rng(0).normal(size=(3, latent)).astype("float32")
    np.testing.assert_allclose(model.decode_modality("y", z), z @ np.asarray(dense[0].kernel) + np.asarray(dense[0].bias),
                               rtol=1e-5, atol=1e-5)
    with pytest.raises(ConfigError, match="decoder_layers"):
        mibzoo.load("jmvae", modalities={"img": SMALL_IMAGE, "y": label}, shared=TINY_SHARED,
                    networks={"categorical": {"decoder_layers": -1}})


CONV_MLP = {"network": "conv", "decoder_network": "mlp", "hidden": 24, "layers": 2, "filters": [4, 8]}
SMALL_IMAGE = {"kind": "image", "shape": [6, 5, 1]}


def image_label_model(image_networks):
    return mibzoo.load("jmvae", modalities={"img": SMALL_IMAGE, "y": dict(TINY_LABEL)}, shared=TINY_SHARED,
                       networks={"image": image_networks})


def test_decoder_network_gives_a_conv_encoder_an_mlp_decoder_computing_what_each_network_computes():
    """``"decoder_network": "mlp"`` with ``"network": "conv"``: the image encoder is the conv net
    (Conv2D layers; with the same weights it gives what an all-conv model's encoder gives), the decoder
    has no convolution and is the MLP: with the same weights an all-MLP model's decoder, and its
    Bernoulli logits are relu(relu(z W1 + b1) W2 + b2) W3 + b3 reshaped to the image, in NumPy."""
    both = image_label_model(CONV_MLP)
    conv = image_label_model({k: v for k, v in CONV_MLP.items() if k != "decoder_network"})
    mlp = image_label_model({**CONV_MLP, "network": "mlp"})
    encoder, decoder = both.encoders["img"].net.layers, both.decoders["img"].net.layers
    assert sum(isinstance(l, keras.layers.Conv2D) for l in encoder) == 2
    assert not any(isinstance(l, (keras.layers.Conv2D, keras.layers.Conv2DTranspose)) for l in decoder)
    assert [l.units for l in decoder if isinstance(l, keras.layers.Dense)] == [24, 24, 30]
    assert any(isinstance(l, keras.layers.Conv2DTranspose) for l in conv.decoders["img"].net.layers)

    rng = np.random.default_rng(0)
    x = (rng.random((3, 6, 5, 1)) > 0.5).astype("float32")
    conv.encoders["img"].set_weights(both.encoders["img"].get_weights())
    np.testing.assert_allclose(np.asarray(both.encoders["img"](x)), np.asarray(conv.encoders["img"](x)), rtol=1e-6)

    z = rng.normal(size=(3, 4)).astype("float32")
    mlp.decoders["img"].set_weights(both.decoders["img"].get_weights())
    logits = np.asarray(both.decode_modality("img", z))
    assert logits.shape == (3, 6, 5, 1)
    np.testing.assert_allclose(logits, np.asarray(mlp.decode_modality("img", z)), rtol=1e-6)
    w1, b1, w2, b2, w3, b3 = [np.asarray(w, "float64") for w in both.decoders["img"].get_weights()]
    h = np.maximum(np.maximum(z @ w1 + b1, 0) @ w2 + b2, 0)
    np.testing.assert_allclose(logits, (h @ w3 + b3).reshape(3, 6, 5, 1), rtol=1e-4, atol=1e-5)
    generated = both.generate({"y": np.array([0, 1, 2])}, target="img", num_samples=2, seed=0)
    assert tuple(generated.shape) == (2, 3, 6, 5, 1)

    # The spec says which network each side has; a spec without the key does not gain one.
    assert both.network_specs["img"]["decoder_network"] == "mlp"
    assert "decoder_network" not in json.dumps(mibzoo.load("dmvae").get_config())
    assert mibzoo.load("jmvae").network_specs["image"]["decoder_network"] == "mlp"  # the zoo default (issue 10)


def test_conv_encoder_with_mlp_decoder_round_trips_through_keras_files(tmp_path):
    """Per-modality ``decoder_network`` (over the kind's defaults, with ``decoder_layers`` for the MLP
    side): the `.keras` round trip (safe mode) gives the same config, posterior and logits. (Training
    with it: docs/results.md, MNIST-Label section 5.)"""
    image = {**SMALL_IMAGE, "decoder_network": "mlp", "decoder_layers": 1}
    model = mibzoo.load("jmvae", modalities={"img": image, "y": dict(TINY_LABEL)}, shared=TINY_SHARED,
                        networks={"image": {"network": "conv", "hidden": 16, "filters": [4]}})
    assert [type(l).__name__ for l in model.encoders["img"].net.layers][0] == "Conv2D"
    assert [l.units for l in model.decoders["img"].net.layers if isinstance(l, keras.layers.Dense)] == [16, 30]
    rng = np.random.default_rng(1)
    c = rng.integers(0, 4, 16).astype("int32")
    prototypes = rng.random((4, 6, 5, 1)) > 0.5
    arrays = {"img": prototypes[c].astype("float32"), "y": c}
    restored = run_saving_test(model, arrays, tmp_path)
    z = rng.normal(size=(5, 4)).astype("float32")
    np.testing.assert_array_equal(np.asarray(model.decode_modality("img", z)),
                                  np.asarray(restored.decode_modality("img", z)))
    assert restored.network_specs["img"]["decoder_network"] == "mlp"


def test_steps_per_execution_from_the_config_runs_the_same_steps_as_one_per_call():
    """The config's steps_per_execution is compile's default; 4 steps in 2 calls of 2 update the
    weights exactly as 4 calls of one step (same data, same seeded noise, same Adam steps)."""
    weights = {}
    for per_call in (1, 2):
        keras.utils.set_random_seed(0)
        model = mibzoo.load("mvtcae", modalities=PAIR, shared=TINY_SHARED, steps_per_execution=per_call)
        model.compile(optimizer=keras.optimizers.Adam(1e-2))
        assert model.steps_per_execution == per_call
        model.fit(dataset(synthetic_batches(model.modality_specs, n=4 * 16), 16), epochs=1, verbose=0)
        assert int(model.optimizer.iterations) == 4
        weights[per_call] = [np.asarray(w) for w in model.trainable_weights]
    for one, two in zip(weights[1], weights[2]):
        np.testing.assert_allclose(two, one, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("change, field, allowed", [
    ({"likelihood_weights": {"lable": 50}}, "likelihood_weights.lable", "Did you mean 'label'"),
    ({"likelihood_weights": {"label": -1}}, "likelihood_weights.label", "finite non-negative"),
    ({"likelihood_weights": {"label": float("nan")}}, "likelihood_weights.label", "finite non-negative"),
    ({"likelihood_weights": [50]}, "likelihood_weights", "a dict"),
    ({"kl_schedule": {"class_name": "LinearWarmpu", "config": {"warmup_steps": 5}}}, "kl_schedule.class_name",
     "Did you mean 'LinearWarmup'"),
    ({"kl_schedule": {"class_name": "LinearWarmup", "config": {"warmup_steps": 0}}},
     "kl_schedule.config.warmup_steps", "positive integer"),
    ({"kl_schedule": {"class_name": "LinearWarmup", "config": {"warmup_steps": 5, "start": 1.5}}},
     "kl_schedule.config.start", "in [0, 1]"),
    ({"kl_schedule": {"class_name": "LinearWarmup", "config": {"steps": 5}}}, "kl_schedule.config.steps",
     "only the keys"),
    ({"kl_schedule": 3}, "kl_schedule", "LinearWarmup"),
    ({"networks": {"images": {"network": "mlp"}}}, "networks.images", "Did you mean 'image'"),
    ({"networks": {"categorical": {"network": "conv"}}}, "networks.categorical.network", "['mlp']"),
    ({"networks": {"image": {"hidden": 0}}}, "networks.image.hidden", "positive integer"),
    ({"networks": {"image": {"width": 3}}}, "networks.image", "keys from"),
    ({"networks": {"image": {"network": "mlp", "decoder_layers": -1}}}, "networks.image.decoder_layers",
     "non-negative integer"),
    ({"networks": {"image": {"network": "conv", "decoder_layers": 1}}}, "networks.image.decoder_layers",
     "MLP networks only"),
    ({"networks": {"image": {"decoder_layers": 1}}}, "modalities.image.decoder_layers", "MLP networks only"),
    ({"networks": {"image": {"decoder_network": "dcgan"}}}, "networks.image.decoder_network", "['conv', 'mlp']"),
    ({"networks": {"image": {"decoder_network": "mpl"}}}, "networks.image.decoder_network", "Did you mean 'mlp'"),
    ({"networks": {"categorical": {"decoder_network": "conv"}}}, "networks.categorical.decoder_network", "['mlp']"),
    ({"networks": {"image": {"network": "dcgan", "decoder_network": "mlp"}}}, "networks.image.decoder_network",
     "no 'decoder_network' with a 'dcgan' network"),
    ({"networks": {"image": {"network": "mlp", "decoder_network": "conv", "decoder_layers": 1}}},
     "networks.image.decoder_layers", "MLP networks only"),
    ({"networks": {"image": {"decoder_network": "conv"}},
      "modalities": {"image": {"kind": "image", "shape": [4, 4, 1], "network": "dcgan"},
                     "label": {"kind": "categorical", "classes": 3}}}, "modalities.image.decoder_network", "'dcgan'"),
    ({"modalities": {"image": {"kind": "image", "shape": [4, 4, 1], "decoder_network": 1},
                     "label": {"kind": "categorical", "classes": 3}}}, "modalities.image.decoder_network",
     "['conv', 'mlp']"),
    ({"steps_per_execution": 0}, "steps_per_execution", "positive integer"),
    ({"steps_per_execution": 2.5}, "steps_per_execution", "positive integer"),
    ({"steps_per_execution": 4, "dist": [[1.0, "C2"]], "str_reg": []}, "steps_per_execution",
     "several phases"),
])
def test_bad_options_are_config_errors_naming_field_and_allowed(tmp_path, change, field, allowed):
    model = {"modalities": {"image": {"kind": "image", "shape": [4, 4, 1]}, "label": {"kind": "categorical", "classes": 3}},
             **change}
    path = tmp_path / "entry.json"
    path.write_text(json.dumps({"entry": "entry", "model": model}))
    with pytest.raises(ConfigError) as info:
        read_zoo_file(path)
    message = str(info.value)
    assert f"'{field}'" in message and allowed in message, message


def test_warmup_trains_from_the_cli_config_path():
    """A schedule in a model's config is read per step inside the compiled train function."""
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, kl_schedule=WARMUP)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(dataset(synthetic_batches(PAIR, n=64), 16), epochs=2, verbose=0)
    assert int(model.optimizer.iterations.numpy()) == 8
    assert np.all(np.isfinite(history.history["loss"]))

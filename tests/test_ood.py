"""Colored-MNIST out-of-distribution generalization (Sec. 6, Table 4): baselines, the terms of
Eq. 18 and the IRM penalty, against independent NumPy computations."""
import dataclasses

import numpy as np
import pytest
import tensorflow as tf

from mibzoo.reproduce import ood_baselines


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def numpy_bce(logits, labels):
    p = _sigmoid(logits)
    return float(np.mean(-(labels * np.log(p) + (1 - labels) * np.log(1 - p))))


def numpy_irm_penalty(logits, labels, h=1e-4):
    """(dR(s f)/ds at s = 1)², by a central finite difference of the NumPy risk and in closed form."""
    fd = (numpy_bce((1 + h) * logits, labels) - numpy_bce((1 - h) * logits, labels)) / (2 * h)
    closed = float(np.mean((_sigmoid(logits) - labels) * logits))  # d/ds BCE(s f) = (σ(s f) − y) f
    assert abs(fd - closed) < 1e-6
    return closed ** 2


def test_irm_penalty_matches_numpy(rng):
    logits = rng.normal(size=7).astype("float64") * 2.0
    labels = rng.integers(0, 2, size=7).astype("float64")
    got = float(ood_baselines.irm_penalty(tf.constant(logits), tf.constant(labels)))
    np.testing.assert_allclose(got, numpy_irm_penalty(logits, labels), rtol=1e-9)


def test_irm_penalty_is_differentiable_and_zero_at_a_stationary_scale(rng):
    labels = tf.constant([1.0, 0.0, 1.0, 0.0])
    # Logits whose scale is already optimal for the risk: the penalty and its gradient vanish
    # only in that case; here the logits are too small, so the gradient is not zero.
    logits = tf.Variable([0.3, -0.2, 0.1, -0.4])
    with tf.GradientTape() as tape:
        penalty = ood_baselines.irm_penalty(logits, labels)
    grad = tape.gradient(penalty, logits)
    assert grad is not None and float(tf.reduce_sum(tf.abs(grad))) > 0
    # Finite-difference check of the gradient of the penalty itself (second-order autodiff).
    base = logits.numpy().astype("float64")
    y = labels.numpy().astype("float64")
    for k in range(4):
        step = np.zeros(4)
        step[k] = 1e-4
        fd = (numpy_irm_penalty(base + step, y) - numpy_irm_penalty(base - step, y)) / 2e-4
        np.testing.assert_allclose(float(grad[k]), fd, rtol=2e-3, atol=1e-7)


def test_features_grayscale_sums_channels(rng):
    images = rng.random((3, 14, 14, 2)).astype("float32")
    np.testing.assert_allclose(ood_baselines.features(images, grayscale=True), images.sum(-1).reshape(3, -1))
    assert ood_baselines.features(images).shape == (3, 392)
    with pytest.raises(ValueError, match="14, 14, 2"):
        ood_baselines.features(images[..., :1])


def _toy_colored(rng, n, flips):
    """A Colored-MNIST-like problem: a weak 'shape' feature that predicts y 75% of the time, and
    a strong colour that agrees with y with probability 1 − flip in each environment."""
    rows = []
    for env, flip in enumerate(flips):
        y = rng.integers(0, 2, n)
        shape = y ^ (rng.random(n) < 0.25)
        colour = y ^ (rng.random(n) < flip)
        image = np.zeros((n, 14, 14, 2), "float32")
        image[np.arange(n), :, :, colour] = 0.0
        image[np.arange(n), :7, :, colour] = shape[:, None, None]
        image[np.arange(n), 7:, :, colour] = 1 - shape[:, None, None]
        rows.append({"image": image, "label": y.astype("int32"), "env": np.full(n, env, "int32")})
    return {k: np.concatenate([r[k] for r in rows]) for k in rows[0]}


def test_erm_follows_colour_and_oracle_does_not(rng):
    train = _toy_colored(rng, 200, (0.1, 0.2))
    test = _toy_colored(rng, 200, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=16, steps=40, learning_rate=0.02)
    erm = ood_baselines.train_baseline(dataclasses.replace(ood_baselines.ERM_SETTINGS, **quick), train, test, 0,
                                       jit_compile=False)
    oracle = ood_baselines.train_baseline(dataclasses.replace(ood_baselines.ORACLE_SETTINGS, **quick), train, test, 0,
                                          jit_compile=False)
    assert erm["train_acc"] > 0.8 and erm["test_acc"] < 0.3  # colour: 85% in train, 10% in test
    assert 0.65 < oracle["test_acc"] < 0.85  # shape only: 75% everywhere
    # Colours swapped, the test environment's colour agrees with the label 90% of the time: ERM
    # follows it there; the grayscale oracle sees the same images.
    assert erm["swapped_acc"] > 0.8
    assert oracle["swapped_acc"] == oracle["test_acc"]


def _one_channel_images(rng, n):
    """``[n, 14, 14, 2]`` images with random ink in one random channel each, and that channel."""
    channels = rng.integers(0, 2, n)
    images = np.zeros((n, 14, 14, 2), "float32")
    images[np.arange(n), ..., channels] = rng.random((n, 14, 14)).astype("float32")
    return images, channels


def test_single_channel_split_gives_the_first_layers_product_from_the_digits_pixels(rng):
    images, channels = _one_channel_images(rng, 9)
    digits, found = ood_baselines.single_channel_split(images)
    np.testing.assert_array_equal(found, channels)
    kernel = rng.normal(size=(392, 5))
    want = ood_baselines.features(images) @ kernel  # all 392 inputs, half of them 0
    got = np.stack([digits[i] @ kernel[c::2] for i, c in enumerate(channels)])
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    both = images.copy()
    both[0, 3, 3, 1 - channels[0]] = 0.5  # ink in both channels: not a product of this form
    assert ood_baselines.single_channel_split(both) is None
    assert ood_baselines.single_channel_split(np.zeros((2, 14, 14, 2))) is None  # no ink at all
    with pytest.raises(ValueError, match="14, 14, 2"):
        ood_baselines.single_channel_split(images[..., :1])


def test_bias_folded_kernels_give_the_mlps_outputs_from_inputs_with_a_ones_column(rng):
    import keras
    import tensorflow as tf

    mlp = ood_baselines.build_mlp(392, 7, seed=1)
    for layer in mlp.layers:  # non-zero biases, so that folding them in is tested
        layer.bias.assign(rng.normal(size=layer.bias.shape).astype("float32"))
    images, channels = _one_channel_images(rng, 12)
    x = ood_baselines.features(images)
    # The MLP in NumPy: ReLU(x W1 + b1) → ReLU(· W2 + b2) → · W3 + b3.
    (w1, b1), (w2, b2), (w3, b3) = [(layer.kernel.numpy(), layer.bias.numpy()) for layer in mlp.layers]
    h2 = np.maximum(np.maximum(x @ w1 + b1, 0) @ w2 + b2, 0)
    want = h2 @ w3 + b3
    np.testing.assert_allclose(np.asarray(mlp(x)), want, rtol=1e-5, atol=1e-5)
    h, logits = ood_baselines.folded_forward(ood_baselines.with_ones_column(tf.constant(x)),
                                             ood_baselines.bias_folded_kernels(mlp, "float32"))
    np.testing.assert_allclose(logits.numpy(), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(h.numpy(), np.concatenate([h2, np.ones((12, 1))], 1), rtol=1e-5, atol=1e-5)
    # From the digit's 196 pixels with the first kernel's rows of its channel (single_channel_split).
    digits, _ = ood_baselines.single_channel_split(images)
    for channel in (0, 1):
        rows = channels == channel
        _, logits = ood_baselines.folded_forward(ood_baselines.with_ones_column(tf.constant(digits[rows])),
                                                 ood_baselines.bias_folded_kernels(mlp, "float32", channel))
        np.testing.assert_allclose(logits.numpy(), want[rows], rtol=1e-5, atol=1e-5)
    # Differentiable with respect to every weight and bias, as the step needs.
    with tf.GradientTape() as tape:
        _, logits = ood_baselines.folded_forward(ood_baselines.with_ones_column(tf.constant(x)),
                                                 ood_baselines.bias_folded_kernels(mlp, "float32"))
        total = tf.reduce_sum(logits)
    grads = tape.gradient(total, mlp.trainable_variables)
    assert all(g is not None for g in grads)
    np.testing.assert_allclose(grads[-1].numpy(), [12.0], rtol=1e-6)  # d Σ logits / d b3
    mixed = keras.ops.cast(ood_baselines.bias_folded_kernels(mlp, "bfloat16")[0], "float32")
    np.testing.assert_allclose(mixed.numpy()[-1, -1], 1.0)  # the unit that carries the ones: exact in bfloat16


@pytest.mark.parametrize("settings", ["IRM", "Fishr"])
def test_baselines_train_the_same_from_the_digits_pixels_as_from_all_inputs(rng, monkeypatch, settings):
    # train_baseline multiplies the first layer by the digit's channel alone (single_channel_split);
    # with the split refused it multiplies all 392 inputs. The two must train the same network.
    train = _toy_colored(rng, 150, (0.1, 0.2))
    train["image"] = train["image"] * rng.random(train["image"].shape).astype("float32")  # grey levels
    test = _toy_colored(rng, 100, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=16, steps=12, anneal_steps=6, learning_rate=0.02)
    chosen = dataclasses.replace(ood_baselines.BASELINES[settings], **quick)
    split = ood_baselines.train_baseline(chosen, train, test, 0, jit_compile=False)
    calls = []
    monkeypatch.setattr(ood_baselines, "single_channel_split", lambda images: calls.append(1))
    whole = ood_baselines.train_baseline(chosen, train, test, 0, jit_compile=False)
    assert len(calls) == 2  # one per training environment: the split was asked for and refused
    for key in ("train_nll", "penalty"):
        np.testing.assert_allclose(split[key], whole[key], rtol=1e-3, err_msg=key)
    assert split["env_acc"] == whole["env_acc"] and split["test_acc"] == whole["test_acc"]


def test_swap_colours_exchanges_the_two_channels(rng):
    test = _toy_colored(rng, 50, (0.9,))
    swapped = ood_baselines.swap_colours(test)
    np.testing.assert_array_equal(swapped["image"][..., 0], test["image"][..., 1])
    np.testing.assert_array_equal(swapped["image"][..., 1], test["image"][..., 0])
    assert swapped["label"] is test["label"] and test["image"][..., 0].any()  # labels kept, input untouched
    with pytest.raises(ValueError, match="images of 1 channel"):
        ood_baselines.swap_colours({"image": np.zeros((3, 14, 14, 1))})


def test_mixed_bfloat16_mlp_is_the_float32_function_to_bfloat16_rounding(rng):
    import keras

    x = rng.random((64, 392)).astype("float32")
    exact = ood_baselines.build_mlp(392, 32, seed=3)
    mixed = ood_baselines.build_mlp(392, 32, seed=3, precision="mixed_bfloat16")
    assert all(w.dtype == "float32" for w in mixed.trainable_variables)  # the weights Adam updates
    assert mixed.layers[0].compute_dtype == "bfloat16"
    for a, b in zip(exact.trainable_variables, mixed.trainable_variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())  # the same seeded initialization
    want = np.asarray(exact(x))
    got = np.asarray(keras.ops.cast(mixed(x), "float32"))
    # bfloat16 keeps 8 bits of mantissa: each product and activation is off by at most 2^-8 relative
    scale = np.abs(want).max()
    assert np.abs(got - want).max() < 0.05 * scale and np.abs(got - want).max() > 0  # rounded, not float32


def test_mixed_bfloat16_baseline_learns_what_float32_learns(rng):
    train = _toy_colored(rng, 200, (0.1, 0.2))
    test = _toy_colored(rng, 200, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=16, steps=40, learning_rate=0.02)
    runs = {p: ood_baselines.train_baseline(dataclasses.replace(ood_baselines.ERM_SETTINGS, **quick), train, test, 0,
                                            jit_compile=False, precision=p) for p in ood_baselines.PRECISIONS}
    for key in ("train_acc", "test_acc"):
        assert abs(runs["mixed_bfloat16"][key] - runs["float32"][key]) < 0.05, (key, runs)
    assert runs["mixed_bfloat16"]["train_acc"] > 0.8


def test_bfloat16_is_the_default_only_where_the_cpu_multiplies_it():
    from mibzoo.errors import ConfigError

    assert ood_baselines.default_precision({"avx2", "amx_bf16", "amx_tile"}, gpu=False) == "mixed_bfloat16"
    assert ood_baselines.default_precision({"avx512f", "avx512_bf16"}, gpu=False) == "mixed_bfloat16"
    assert ood_baselines.default_precision({"avx2", "avx512f", "fma"}, gpu=False) == "float32"  # emulated there: slower
    assert ood_baselines.default_precision({"amx_bf16"}, gpu=True) == "float32"  # the step runs on the GPU
    with pytest.raises(ConfigError, match=r"precision.*'bf16'.*one of \['float32', 'mixed_bfloat16'\]"):
        ood_baselines.build_mlp(4, 2, 0, precision="bf16")


def test_xla_only_with_an_accelerator_as_keras_auto():
    from mibzoo.errors import ConfigError

    assert ood_baselines.resolve_jit_compile("auto", accelerator=False) is False  # CPU: oneDNN's step was faster
    assert ood_baselines.resolve_jit_compile("auto", accelerator=True) is True
    assert ood_baselines.resolve_jit_compile("auto", "mixed_bfloat16", accelerator=True) is False
    assert ood_baselines.resolve_jit_compile(True, "mixed_bfloat16") is False  # XLA's CPU backend: no bfloat16 units
    assert ood_baselines.resolve_jit_compile(True, accelerator=False) is True
    assert ood_baselines.resolve_jit_compile(False, accelerator=True) is False
    expected_here = any(d.device_type != "CPU" for d in tf.config.list_physical_devices())
    assert ood_baselines.resolve_jit_compile("auto") is expected_here
    with pytest.raises(ConfigError, match=r"jit_compile.*'xla'.*True, False or 'auto'"):
        ood_baselines.resolve_jit_compile("xla")


def test_baseline_step_is_the_same_with_and_without_xla(rng):
    train = _toy_colored(rng, 200, (0.1, 0.2))
    test = _toy_colored(rng, 200, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=16, steps=30, learning_rate=0.02, penalty_weight=100.0, anneal_steps=10)
    runs = [ood_baselines.train_baseline(dataclasses.replace(ood_baselines.IRM_SETTINGS, **quick), train, test, 0,
                                         jit_compile=jit) for jit in (True, False)]
    np.testing.assert_allclose(runs[0]["train_nll"], runs[1]["train_nll"], rtol=1e-4)
    np.testing.assert_allclose(runs[0]["penalty"], runs[1]["penalty"], rtol=1e-2, atol=1e-7)
    assert runs[0]["train_acc"] == pytest.approx(runs[1]["train_acc"], abs=0.01)


# ----- the terms of Eq. 18 and IRM's penalty on p(y | z) ------------------------------------------

def _small_model(entry="ood_cmnist_irm", **overrides):
    import mibzoo
    return mibzoo.load(entry, shared=[{"name": "z", "size": 3}], private={"image": 2},
                       networks={"image": {"network": "mlp", "hidden": 8, "layers": 1},
                                 "categorical": {"hidden": 8, "layers": 1}}, **overrides)


# The critic-based estimator of Eq. 18's I(E; Y | Z) (`conditional_independence`) is in no entry
# since the twenty-eighth session; its tests declare it beside IRM's penalty, as `ood_cmnist_irm` did.
CRITIC_TERMS = {"hyperparameters": {"beta1": 1.0, "beta2": 100.0, "alpha_y": 20.0, "gamma": 1e6, "irm_anneal_steps": 100,
                                    "irm_anneal_scale": 1e-6},
                "str_reg": [[{"image": "beta1"}, "cross"], ["alpha_y", "sufficiency"], ["beta2", "conditional_independence"],
                            ["gamma", "irm"]],
                "phases": [{"name": "dist", "steps": 1}, {"name": "critic:conditional_independence", "steps": 1}]}


def _critic_model(term_options=None):
    return _small_model("ood_cmnist", **CRITIC_TERMS, term_options=term_options or {})


def _batch(rng, n=12):
    return {"image": rng.random((n, 14, 14, 2)).astype("float32"),
            "label": rng.integers(0, 2, n).astype("int32"),
            "env": np.array([0, 1, 2] * (n // 3), "int32")}


def _numpy_ce(logits, labels):
    logits = logits - logits.max(-1, keepdims=True)
    log_softmax = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return -log_softmax[np.arange(len(labels)), labels]


def _forward(model, batch, labelled):
    x, present = model._prepare({**batch, "present": {"label": labelled}}, strict=False)
    return model.forward(x, present, training=False, seed=3)


@pytest.mark.parametrize("form", ["residual", "mlp", None])
def test_conditional_independence_matches_numpy(rng, form):
    from mibzoo import objectives
    from mibzoo.objectives import ood

    # None: the option left out, which is the residual critic
    options = {} if form is None else {"conditional_independence": {"critic": form}}
    model = _critic_model(options)
    batch = _batch(rng)
    labelled = np.array([1, 1, 0] * 4, "float32")
    fp = _forward(model, batch, labelled)
    value = float(ood.conditional_independence(fp))
    z = fp.z(0)  # z ~ q(z | x): the same draw the term used (cached)
    decoder_logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", z)), "float64")
    critic_in = np.concatenate([np.asarray(z), np.eye(3)[batch["env"]]], axis=1).astype("float32")
    g = np.asarray(model.critics["conditional_independence"](critic_in), "float64")
    # residual: r(y | z, e) ∝ p(y | z) exp g(z, e), the critic network's output shifts the
    # decoder's logits; mlp: r(y | z, e) = softmax g(z, e)
    critic_logits = g if form == "mlp" else decoder_logits + g
    diff = _numpy_ce(decoder_logits, batch["label"]) - _numpy_ce(critic_logits, batch["label"])
    expected = max(float((diff * labelled).sum() / labelled.sum()), 0.0)
    np.testing.assert_allclose(value, expected, rtol=1e-4, atol=1e-6)
    critic_loss = float(objectives.TERMS["conditional_independence"].critic_loss(fp))
    np.testing.assert_allclose(critic_loss, (_numpy_ce(critic_logits, batch["label"]) * labelled).sum() / labelled.sum(),
                               rtol=1e-4)


def test_zoo_estimators_of_the_conditional_independence():
    """``ood_cmnist`` estimates I(E; Y | Z) in closed form (no critic, no critic phase); the IRMv1 and
    Fishr entries put their penalty in its place."""
    ours, irm, fishr = (_small_model(e) for e in ("ood_cmnist", "ood_cmnist_irm", "ood_cmnist_fishr"))
    terms = [name for _, name in ours.model_config["str_reg"]]
    assert terms == ["cross", "sufficiency", "environment_recalibration"]
    assert [name for _, name in irm.model_config["str_reg"]] == terms[:2] + ["irm"]
    assert [name for _, name in fishr.model_config["str_reg"]] == terms[:2] + ["gradient_variance"]
    for model in (ours, irm, fishr):
        assert model.critics == {} and [p["name"] for p in model.phases] == ["dist"]


def _penalty_onset(config, entry):
    """(update, scale) of an OOD entry's penalty onset: before update ``update`` its weight is
    multiplied by ``scale``."""
    if entry == "ood_cmnist_irm":
        return config["hyperparameters"]["irm_anneal_steps"], config["hyperparameters"]["irm_anneal_scale"]
    term = {"ood_cmnist": "environment_recalibration", "ood_cmnist_fishr": "gradient_variance"}[entry]
    schedule = config["term_options"][term]["weight_schedule"]["config"]
    return schedule["delay_steps"], schedule["start"]


@pytest.mark.parametrize("entry, penalty", [("ood_cmnist", "beta2"), ("ood_cmnist_irm", "gamma"),
                                            ("ood_cmnist_fishr", "gamma_f")])
def test_ood_entries_differ_in_their_penalty_alone_on_irms_schedule(entry, penalty):
    """``ood_cmnist_irm`` and ``ood_cmnist_fishr`` keep everything of ``ood_cmnist`` their notes say
    they keep and replace Eq. 18's I(E; Y | Z) estimate by their penalty. All three run on IRM's
    schedule: weight γ · scale = α_y before update 200, then the whole network objective × scale
    (IRM's loss division), μ outputs, Adam 5e-4."""
    import mibzoo

    ours, theirs = (mibzoo.load(e).model_config for e in ("ood_cmnist", entry))
    changed = {key for key in set(ours) | set(theirs) if ours.get(key) != theirs.get(key)}
    assert changed == (set() if entry == "ood_cmnist" else {"hyperparameters", "str_reg", "term_options"})
    assert theirs["str_reg"][:2] == ours["str_reg"][:2] and len(theirs["str_reg"]) == 3
    weights = theirs["hyperparameters"]
    assert [weights[k] for k in ("beta1", "alpha_y")] == [ours["hyperparameters"][k] for k in ("beta1", "alpha_y")]
    update, scale = _penalty_onset(theirs, entry)
    assert update == theirs["loss_schedule"]["config"]["boundaries"][0] == 200
    np.testing.assert_allclose(weights[penalty] * scale, weights["alpha_y"])
    assert theirs["loss_schedule"]["config"]["values"] == [1.0, scale]
    assert theirs["expert_output"] == "mean" and theirs["optimizers"]["dist"]["learning_rate"] == 5e-4


@pytest.mark.parametrize("options, message", [
    ({"critic": "linear"}, r"term_options.conditional_independence.critic.*one of \['residual', 'mlp'\]"),
    ({"critic": "residul"}, "Did you mean 'residual'"),
    ({"critc": "mlp"}, "Did you mean 'critic'"),
])
def test_critic_option_is_validated(options, message):
    from mibzoo.errors import ConfigError

    with pytest.raises(ConfigError, match=message):
        _critic_model({"conditional_independence": options})


def test_irm_term_matches_numpy_finite_differences(rng):
    from mibzoo.objectives import ood

    model = _small_model()
    batch = _batch(rng, 18)
    labelled = np.array([1, 0, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1], "float32")
    fp = _forward(model, batch, labelled)
    value = float(ood.invariant_risk(fp))
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", fp.z(0))), "float64")
    penalties = []
    for env in (0, 1, 2):
        halves = []
        for parity in (0, 1):  # the unbiased estimate: the product of two half-batch derivatives
            rows = (batch["env"] == env) & (labelled > 0) & (np.arange(18) % 2 == parity)

            def risk(s):
                return _numpy_ce(s * logits[rows], batch["label"][rows]).mean()
            halves.append((risk(1 + 1e-5) - risk(1 - 1e-5)) / 2e-5)
        penalties.append(halves[0] * halves[1])
    np.testing.assert_allclose(value, np.mean(penalties), rtol=1e-3, atol=1e-9)


@pytest.mark.parametrize("scale", [1e-9, 1e-3, 0.0])
def test_irm_annealing_scales_the_penalty_until_its_step(rng, scale):
    """Before ``irm_anneal_steps`` the training value is the penalty times ``irm_anneal_scale``, also
    for a scale below float32's resolution around 1 (1 / γ at IRM-sized γ); from that update on, and
    at evaluation, the penalty itself."""
    import keras

    from mibzoo.objectives import ood

    hyperparameters = {**_small_model().model_config["hyperparameters"], "irm_anneal_steps": 3,
                       "irm_anneal_scale": scale}
    model = _small_model(hyperparameters=hyperparameters)
    model.compile(optimizer=keras.optimizers.Adam())
    batch = _batch(rng, 18)
    x, present = model._prepare({**batch, "present": {"label": np.ones(18, "float32")}}, strict=False)
    fp = model.forward(x, present, training=True, seed=3)  # lazy: the draws of z are made once and kept
    annealed = float(ood.invariant_risk(fp))
    model.optimizer.iterations.assign(3)
    full = float(ood.invariant_risk(fp))
    assert abs(full) > 1e-6
    np.testing.assert_allclose(annealed, scale * full, rtol=1e-5, atol=0)
    evaluation = model.forward(x, present, training=False, seed=3)
    after = float(ood.invariant_risk(evaluation))
    model.optimizer.iterations.assign(0)
    before = float(ood.invariant_risk(evaluation))
    assert before == after and abs(before) > 1e-6  # evaluation is never annealed, before the step or after


def test_irm_scale_gradient_agrees_with_the_baseline_autodiff_penalty(rng):
    """For two classes, softmax over logits [0, f] is the sigmoid of f: the zoo term's closed form
    and the baseline's autodiff penalty must agree."""
    from mibzoo.objectives import ood

    f = rng.normal(size=9).astype("float32")
    y = rng.integers(0, 2, 9)
    two_class = np.stack([np.zeros_like(f), f], axis=1)
    closed = float(np.mean(np.asarray(ood.scale_gradient(two_class, np.eye(2, dtype="float32")[y]))) ** 2)
    autodiff = float(ood_baselines.irm_penalty(tf.constant(f), tf.constant(y.astype("float32"))))
    np.testing.assert_allclose(closed, autodiff, rtol=1e-4)


def test_risk_variance_term_is_the_variance_of_the_environments_risks_in_numpy(rng):
    """V-REx's term on a model that declares it: per environment with labelled rows in both halves,
    the mean cross-entropy of p(y | z) (z ~ q(z | x)) over the even and over the odd labelled rows;
    the product of their deviations from the mean over those environments, averaged. A model
    trains with it through `fit`."""
    import keras

    from mibzoo.objectives import ood

    model = _small_model("ood_cmnist", hyperparameters={"beta1": 1.0, "beta2": 0.0, "alpha_y": 1.0, "beta3": 10.0},
                         str_reg=[[{"image": "beta1"}, "cross"], ["alpha_y", "sufficiency"],
                                  ["beta3", "risk_variance"]], term_options={})
    batch = _batch(rng, 24)
    labelled = np.ones(24, "float32")
    labelled[[6, 9]] = 0.0
    fp = _forward(model, batch, labelled)
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", fp.z(0))), "float64")
    ce = _numpy_ce(logits, batch["label"])
    risks = {env: [ce[(batch["env"] == env) & (labelled > 0) & (np.arange(24) % 2 == p)].mean() for p in (0, 1)]
             for env in (0, 1, 2)}
    centre = [np.mean([r[p] for r in risks.values()]) for p in (0, 1)]
    expected = np.mean([(r[0] - centre[0]) * (r[1] - centre[1]) for r in risks.values()])
    np.testing.assert_allclose(float(ood.environment_risk_variance(fp)), expected, rtol=1e-4, atol=1e-9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(batch, epochs=2, batch_size=12, verbose=0)
    assert np.isfinite(history.history["risk_variance"]).all()


def _check_running_state_trains_and_saves(model, term, batch, tmp_path):
    """After two training forward passes, `fit` on the 24-row ``batch`` (2 epochs of 2 batches)
    gives finite values of ``term`` and updates its running state once per network step (2 + 4 in
    every group); `.keras` saving keeps the state."""
    import keras

    running = model.term_states[term]
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(batch, batch_size=12, epochs=2, verbose=0, shuffle=False)
    assert np.isfinite(history.history[term]).all()
    np.testing.assert_array_equal(np.asarray(running.updates), [2.0 + 4.0] * running.groups)
    path = str(tmp_path / f"{term}.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    for want, got in zip(running.weights, loaded.term_states[term].weights):
        np.testing.assert_array_equal(np.asarray(want), np.asarray(got))


def test_risk_variance_running_reference_is_a_running_mean_of_earlier_batches_risks(rng, tmp_path):
    """``reference`` "running": in a training step of the network phase the term is
    `lagged_risk_variance` (tested against NumPy in tests/estimators) of the batch's cross-entropies
    against the running mean (momentum ρ = 0.95) of earlier batches' per-environment risks, which the
    step then updates: 0 on the first batch (no reference yet), on the second the first batch's
    risks as reference; the mean after two is (ρ(1 − ρ) r_1 + (1 − ρ) r_2) / (1 − ρ²). Evaluation
    uses the halves and leaves the mean alone; `fit` updates it once per network step and `.keras`
    saving keeps it."""
    from mibzoo.estimators.risk_variance import group_risks, lagged_risk_variance, risk_variance
    from mibzoo.objectives import ood

    model = _small_model("ood_cmnist", hyperparameters={"beta1": 1.0, "beta2": 0.0, "alpha_y": 1.0, "beta3": 10.0},
                         str_reg=[[{"image": "beta1"}, "cross"], ["alpha_y", "sufficiency"],
                                  ["beta3", "risk_variance"]], term_options={"risk_variance": {"reference": "running"}})
    running = model.term_states["risk_variance"]
    assert running.momentum == 0.95 and running.total.shape == (3, 1)
    labelled = np.ones(24, "float32")
    labelled[[4, 9]] = 0.0
    envs = np.eye(3, dtype="float32")

    def losses(fp, batch):
        logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", fp.z(0))), "float64")
        return _numpy_ce(logits, batch["label"]).astype("float32")

    def training_forward(batch):
        x, present = model._prepare({**batch, "present": {"label": labelled}}, strict=False)
        return model.forward(x, present, training=True, phase="dist")

    first, second = _batch(rng, 24), _batch(rng, 24)
    fp = training_forward(first)
    assert float(ood.environment_risk_variance(fp)) == 0.0
    first_risks = np.asarray(group_risks(losses(fp, first), envs[first["env"]], labelled)[0])
    np.testing.assert_allclose(running.value()[0][:, 0], first_risks, rtol=1e-5)

    fp = training_forward(second)
    got = float(ood.environment_risk_variance(fp))
    second_losses = losses(fp, second)
    want = float(lagged_risk_variance(second_losses, envs[second["env"]], first_risks, np.ones(3, "float32"), labelled))
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-9)
    second_risks = np.asarray(group_risks(second_losses, envs[second["env"]], labelled)[0])
    np.testing.assert_allclose(running.value()[0][:, 0],
                               (0.95 * 0.05 * first_risks + 0.05 * second_risks) / (1 - 0.95 ** 2), rtol=1e-5)

    state = [np.asarray(v) for v in running.weights]
    fp = _forward(model, first, labelled)
    np.testing.assert_allclose(float(ood.environment_risk_variance(fp)),
                               float(risk_variance(losses(fp, first), envs[first["env"]], labelled)), rtol=1e-4, atol=1e-9)
    for before, after in zip(state, running.weights):
        np.testing.assert_array_equal(before, np.asarray(after))

    _check_running_state_trains_and_saves(model, "risk_variance", {**first, "present": {"label": labelled}}, tmp_path)


@pytest.mark.parametrize("recalibrate, pairs, relative_to, step", [("logits", "halves", "identity", "newton"),
                                                                   ("logits_and_z", "halves", "identity", "newton"),
                                                                   ("logits", "all", "identity", "newton"),
                                                                   ("logits", "halves", "pooled", "newton"),
                                                                   ("logits", "halves", "pooled", "gradient"),
                                                                   ("logits_and_z", "all", "identity", "gradient"),
                                                                   ("logits_and_features", "halves", "pooled", "gradient"),
                                                                   ("logits_and_features", "all", "identity", "newton")])
def test_environment_recalibration_reads_p_y_given_z_from_x_per_environment(rng, recalibrate, pairs, relative_to,
                                                                            step):
    """The term is `recalibration_gain` (tested against NumPy in tests/estimators) of the label
    decoder's logits at z ~ q(z | x), the one-hot labels, the one-hot environments and the label
    presence (and z itself with ``recalibrate`` "logits_and_z", the decoder's last hidden features
    with "logits_and_features"), with the option ``pairs`` as the estimator's pairing and
    ``relative_to`` its reference; a zero weight removes the rows of unlabelled examples."""
    from mibzoo.estimators.recalibration import recalibration_gain
    from mibzoo.objectives import ood

    model = _small_model("ood_cmnist", term_options={"environment_recalibration": {
        "recalibrate": recalibrate, "pairs": pairs, "relative_to": relative_to, "step": step}})
    batch = _batch(rng, 24)
    labelled = np.ones(24, "float32")
    labelled[[5, 10]] = 0.0
    fp = _forward(model, batch, labelled)
    z = np.asarray(fp.z(0), "float32")
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", z)), "float32")
    # the decoder's layers one by one, by hand: h is the last hidden layer's output, its final layer's input
    h = np.asarray(fp.decoder_input("label", z), "float32")
    layers = model.decoders["label"].net.layers
    for layer in layers[:-1]:
        h = np.asarray(layer(h), "float32")
    kernel, bias = (np.asarray(w) for w in layers[-1].weights)
    np.testing.assert_allclose(h @ kernel + bias, logits, rtol=1e-5, atol=1e-5)
    inputs = {"logits": None, "logits_and_z": z, "logits_and_features": h}[recalibrate]
    expected = float(recalibration_gain(logits, np.eye(2, dtype="float32")[batch["label"]],
                                        np.eye(3, dtype="float32")[batch["env"]], labelled,
                                        inputs, pairs=pairs, relative_to=relative_to, step=step))
    np.testing.assert_allclose(float(ood.environment_recalibration(fp)), expected, rtol=1e-5, atol=1e-9)
    relabelled = {**batch, "label": np.where(labelled > 0, batch["label"], 1 - batch["label"]).astype("int32")}
    np.testing.assert_allclose(float(ood.environment_recalibration(_forward(model, relabelled, labelled))), expected,
                               rtol=1e-5, atol=1e-9)


@pytest.mark.parametrize("graph", [False, True])
def test_environment_recalibration_positive_part_is_the_unbiased_estimate_floored_at_zero(rng, graph):
    """``estimate`` "positive_part": on a batch whose paired (unbiased) estimate is below 0 the term
    is 0 and trains nothing; on one where it is above 0 it is that estimate with its gradient; the
    default, "unbiased", is the paired estimate as it is. Eagerly and under `tf.function`."""
    from mibzoo.objectives import ood
    from mibzoo.registry import entry_spec

    options = entry_spec("ood_cmnist").config["term_options"]["environment_recalibration"]
    unbiased = _small_model("ood_cmnist", term_options={"environment_recalibration": {**options,
                                                                                      "estimate": "unbiased"}})
    floored = _small_model("ood_cmnist", term_options={"environment_recalibration": {**options,
                                                                                     "estimate": "positive_part"}})
    labelled = np.ones(24, "float32")
    first = _batch(rng, 24)
    for model in (unbiased, floored):
        _forward(model, first, labelled)  # builds the networks
    floored.set_weights(unbiased.get_weights())

    def value_and_gradients(model, batch):
        with tf.GradientTape() as tape:
            value = ood.environment_recalibration(_forward(model, batch, labelled))
        grads = tape.gradient(value, model.trainable_variables)
        return value, [tf.zeros(v.shape) if g is None else g for v, g in zip(model.trainable_variables, grads)]

    run = tf.function(value_and_gradients) if graph else value_and_gradients
    signs = set()
    for batch in [first] + [_batch(rng, 24) for _ in range(11)]:
        (estimate, estimate_grads), (value, grads) = run(unbiased, batch), run(floored, batch)
        estimate, value = float(estimate), float(value)
        assert abs(estimate) > 1e-9
        signs.add(estimate > 0)
        np.testing.assert_allclose(value, max(estimate, 0.0), rtol=1e-6, atol=0)
        for e, g in zip(estimate_grads, grads):
            np.testing.assert_allclose(np.asarray(g), np.asarray(e) * (estimate > 0), rtol=1e-5, atol=1e-9)
    assert signs == {True, False}  # both cases were checked


def test_environment_recalibration_on_the_decoders_features_is_refused_with_running_statistics():
    """``recalibrate`` "logits_and_features" with ``pairs`` "running", whose running statistics are
    sized for z: refused with the allowed values."""
    with pytest.raises(NotImplementedError, match="logits_and_features.*pairs 'running'.*allowed there"):
        _small_model("ood_cmnist", term_options={"environment_recalibration": {
            "recalibrate": "logits_and_features", "pairs": "running"}})


def test_environment_recalibration_running_pairs_running_means_of_the_halves(rng, tmp_path):
    """``pairs`` "running": in a training step of the network phase the term is `paired_gain` of the
    running means (momentum ρ) of the even and the odd rows' gradients and of the Hessian
    (`recalibration_half_means`, both tested against NumPy in tests/estimators), which the step
    updates: on the first batch it is the halves estimate, on the second the pairing of
    (ρ(1 − ρ) m_1 + (1 − ρ) m_2) / (1 − ρ²) for every statistic m;
    evaluation uses the halves and leaves the means alone; `fit` updates them once per network
    step and `.keras` saving keeps them."""
    from mibzoo.estimators.recalibration import paired_gain, recalibration_gain, recalibration_half_means
    from mibzoo.objectives import ood

    # with Newton's step against no recalibration, the only reference and step "running" has been measured with
    model = _small_model("ood_cmnist", term_options={"environment_recalibration": {"pairs": "running"}})
    running = model.term_states["environment_recalibration"]
    assert running.momentum == 0.9 and running.total.shape == (3, 2 + 2 + 4)
    labelled = np.ones(24, "float32")
    labelled[[5, 10]] = 0.0

    def training_forward(batch):
        x, present = model._prepare({**batch, "present": {"label": labelled}}, strict=False)
        return model.forward(x, present, training=True, phase="dist")

    def arguments(fp, batch):
        z = np.asarray(fp.z(0), "float32")
        logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", z)), "float32")
        return logits, np.eye(2, dtype="float32")[batch["label"]], np.eye(3, dtype="float32")[batch["env"]], labelled

    first, second = _batch(rng, 24), _batch(rng, 24)
    fp = training_forward(first)
    got = float(ood.environment_recalibration(fp))
    np.testing.assert_allclose(got, float(recalibration_gain(*arguments(fp, first))), rtol=1e-5, atol=1e-9)
    first_stats = recalibration_half_means(*arguments(fp, first))

    fp = training_forward(second)
    got = float(ood.environment_recalibration(fp))
    second_stats = recalibration_half_means(*arguments(fp, second))
    means, hessian = [(0.9 * 0.1 * np.asarray(a) + 0.1 * np.asarray(b)) / (1 - 0.9 ** 2)
                      for a, b in zip(first_stats[::2], second_stats[::2])]
    np.testing.assert_allclose(got, float(paired_gain(means[0], means[1], hessian, second_stats[3])), rtol=1e-4, atol=1e-9)
    np.testing.assert_allclose(running.value()[0], np.concatenate([means[0], means[1], hessian.reshape(3, 4)], -1),
                               rtol=1e-5, atol=1e-7)

    state = [np.asarray(v) for v in running.weights]
    fp = _forward(model, first, labelled)
    np.testing.assert_allclose(float(ood.environment_recalibration(fp)),
                               float(recalibration_gain(*arguments(fp, first))), rtol=1e-5, atol=1e-9)
    for before, after in zip(state, running.weights):
        np.testing.assert_array_equal(before, np.asarray(after))

    _check_running_state_trains_and_saves(model, "environment_recalibration", {**first, "present": {"label": labelled}},
                                          tmp_path)


def test_running_pairs_refuse_a_pooled_reference(rng):
    from mibzoo.objectives import ood

    model = _small_model("ood_cmnist", term_options={"environment_recalibration": {"pairs": "running",
                                                                                   "relative_to": "pooled"}})
    x, present = model._prepare(_batch(rng), strict=False)
    with pytest.raises(ValueError, match="relative_to='pooled' is not implemented with pairs 'running'"):
        ood.environment_recalibration(model.forward(x, present, training=True, phase="dist"))


def test_ood_cmnist_enters_its_penalty_annealed():
    """IRM's annealing as the entry's weight schedule: beta2 at 1e-5 of its value for the first 200
    network updates, then in full; the penalty is the pooled-relative gradient-step estimate, floored
    at 0 (forty-fifth session: without the floor some runs lose the digit shape)."""
    model = _small_model("ood_cmnist")
    schedule = model.term_schedules["environment_recalibration"]
    assert float(schedule(0)) == pytest.approx(1e-5) and float(schedule(199)) == pytest.approx(1e-5)
    assert float(schedule(201)) == pytest.approx(1.0)
    options = model.model_config["term_options"]["environment_recalibration"]
    assert (options["relative_to"], options["step"], options["estimate"]) == ("pooled", "gradient", "positive_part")


def test_ood_terms_refuse_models_without_label_and_environment(rng):
    """A critic's term refuses the model when it is built; the closed-form terms when the loss is
    first computed."""
    import mibzoo

    modalities = {"image": {"kind": "image", "shape": [14, 14, 2]}, "label": {"kind": "categorical", "classes": 2}}
    with pytest.raises(ValueError, match="'env'"):
        mibzoo.load("ood_cmnist", modalities=modalities, **CRITIC_TERMS, term_options={})
    model = mibzoo.load("ood_cmnist", modalities=modalities)
    batch = {k: v for k, v in _batch(rng).items() if k != "env"}
    with pytest.raises(ValueError, match="term needs categorical modalities 'label' \(Y\) and 'env'"):
        model.compute_terms(_forward(model, batch, np.ones(12, "float32")))


def test_predict_target_is_the_mean_of_generated_class_probabilities(rng):
    model = _small_model("ood_cmnist")
    images = _batch(rng)["image"]
    probs = np.asarray(model.predict_target({"image": images}, "label", num_samples=5, seed=1))
    assert probs.shape == (12, 2)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    draws = np.asarray(model.generate({"image": images}, "label", num_samples=5, seed=1, mode="mean"))
    np.testing.assert_allclose(probs, draws.mean(0), rtol=1e-6)


def test_predict_signature_gives_per_row_seeded_class_probabilities(rng):
    from mibzoo import export

    model = _small_model("ood_cmnist")
    signatures = export.build_signatures(model)
    assert "predict_image_to_label" in signatures and "predict_image_to_env" in signatures
    assert "predict_label_to_image" not in signatures  # images are not categorical
    fn, spec = signatures["predict_image_to_label"]
    assert set(spec) == {"image", "seed"}
    images = _batch(rng, 3)["image"]
    seeds = np.array([[1, 2], [3, 4], [5, 6]], "int32")
    probs = np.asarray(fn({"image": images, "seed": seeds})["label"])
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    # A row's output depends on its own image and seed only (not on the batch it is served in).
    alone = np.asarray(fn({"image": images[1:2], "seed": seeds[1:2]})["label"])
    np.testing.assert_allclose(alone[0], probs[1], rtol=1e-5)


def test_sufficiency_is_the_labelled_cross_entropy_of_p_y_given_z_from_x(rng):
    from mibzoo.objectives import ood

    model = _small_model()
    batch = _batch(rng)
    labelled = np.array([1, 0, 1] * 4, "float32")
    fp = _forward(model, batch, labelled)
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", fp.z(0))), "float64")
    expected = (_numpy_ce(logits, batch["label"]) * labelled).sum() / labelled.sum()
    np.testing.assert_allclose(float(ood.sufficiency(fp)), expected, rtol=1e-4)


def _numpy_image_posterior_mean(model, fp):
    """The mean of q(z | x) = p(z) · q(z | image) (Eq. 13's product of Gaussian experts with the
    prior, all mask weights 1), in NumPy from the image expert: Σ_i μ_i / σ_i² over Σ_i 1 / σ_i²."""
    loc, logvar = (np.asarray(v, "float64") for v in fp.encoder_outputs()["image"][:2])
    prior_loc, prior_logvar = (np.asarray(v, "float64") for v in (model.prior_loc, model.prior_logvar))
    precision = np.exp(-logvar) + np.exp(-prior_logvar)
    return (loc * np.exp(-logvar) + prior_loc * np.exp(-prior_logvar)) / precision


@pytest.mark.parametrize("term", ["sufficiency", "irm", "conditional_independence"])
def test_latent_mean_option_predicts_from_the_posterior_mean(rng, term):
    """``term_options: {term: {"latent": "mean"}}``: the term reads p(y | z) at the mean of
    q(z | x) (computed here in NumPy from the image expert and the prior), not at a draw."""
    from mibzoo import objectives
    from mibzoo.objectives import ood

    options = {term: {"latent": "mean"}}
    model = _critic_model({**options, "conditional_independence": {
        "critic": "mlp", **options.get("conditional_independence", {})}})
    batch = _batch(rng, 18)
    labelled = np.ones(18, "float32")
    labelled[[4, 13]] = 0.0  # every environment keeps labelled rows in both half-batches
    fp = _forward(model, batch, labelled)
    mean = _numpy_image_posterior_mean(model, fp)
    assert np.abs(mean - np.asarray(fp.z(0), "float64")).max() > 1e-3  # a draw is not the mean
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", mean.astype("float32"))), "float64")
    ce = _numpy_ce(logits, batch["label"])
    if term == "sufficiency":
        expected = (ce * labelled).sum() / labelled.sum()
        got = float(ood.sufficiency(fp))
    elif term == "irm":
        # IRM's penalty at the mean: the product of the two half-batch derivatives, in closed
        # form d/ds CE(s · l) at s = 1 = Σ_k (softmax(l)_k − y_k) l_k
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        grads = ((probs - np.eye(2)[batch["label"]]) * logits).sum(-1)
        products = []
        for env in (0, 1, 2):
            halves = [grads[(batch["env"] == env) & (labelled > 0) & (np.arange(18) % 2 == p)].mean() for p in (0, 1)]
            products.append(halves[0] * halves[1])
        expected, got = np.mean(products), float(ood.invariant_risk(fp))
    else:
        critic_in = np.concatenate([mean, np.eye(3)[batch["env"]]], axis=1).astype("float32")
        g = np.asarray(model.critics["conditional_independence"](critic_in), "float64")
        diff = ce - _numpy_ce(g, batch["label"])
        expected = max(float((diff * labelled).sum() / labelled.sum()), 0.0)
        got = float(ood.conditional_independence(fp))
        critic_loss = float(objectives.TERMS[term].critic_loss(fp))
        np.testing.assert_allclose(critic_loss, (_numpy_ce(g, batch["label"]) * labelled).sum() / labelled.sum(),
                                   rtol=1e-4)
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-8)


def test_latent_option_is_validated():
    from mibzoo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"term_options.sufficiency.latent.*one of \['sample', 'mean'\]"):
        _small_model("ood_cmnist", term_options={"sufficiency": {"latent": "median"}})


@pytest.mark.slow
def test_irm_ignores_the_spurious_colour_on_the_toy_problem(rng):
    """IRMv1 at the published weights (annealed after a third of the steps) must beat ERM in the
    test environment where colour is reversed (opt in: about a minute)."""
    train = _toy_colored(rng, 2000, (0.1, 0.2))
    test = _toy_colored(rng, 1000, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=32, steps=300, learning_rate=0.005)
    irm = ood_baselines.train_baseline(dataclasses.replace(ood_baselines.IRM_SETTINGS, anneal_steps=100, **quick),
                                       train, test, 0, jit_compile=False)
    erm = ood_baselines.train_baseline(dataclasses.replace(ood_baselines.ERM_SETTINGS, **quick), train, test, 0,
                                       jit_compile=False)
    assert irm["test_acc"] > 0.6 > erm["test_acc"]


def _recalibration_gradients_through(rng, graph, through, **options):
    """The penalty's value and its gradients on the image encoder and on the label decoder, for
    `ood_cmnist`'s options (updated by ``options``) and the same with ``through``, on one batch with
    the same weights: ``((value, encoder_grads, decoder_grads), (the same with through))``."""
    from mibzoo.objectives import ood
    from mibzoo.registry import entry_spec

    options = {**entry_spec("ood_cmnist").config["term_options"]["environment_recalibration"],
               "estimate": "unbiased", **options}  # a floored batch would have no gradient to compare
    plain = _small_model("ood_cmnist", term_options={"environment_recalibration": options})
    other = _small_model("ood_cmnist", term_options={"environment_recalibration": {**options, "through": through}})
    batch = _batch(rng, 24)
    labelled = np.ones(24, "float32")
    for model in (plain, other):
        _forward(model, batch, labelled)  # builds the networks
    other.set_weights(plain.get_weights())

    def value_and_gradients(model):
        with tf.GradientTape() as tape:
            value = ood.environment_recalibration(_forward(model, batch, labelled))
        variables = model.encoders["image"].trainable_variables + model.decoders["label"].trainable_variables
        return value, tape.gradient(value, variables)

    count = len(plain.encoders["image"].trainable_variables)
    results = [(tf.function(value_and_gradients) if graph else value_and_gradients)(m) for m in (plain, other)]
    return [(float(value), grads[:count], grads[count:]) for value, grads in results]


def _assert_same_gradients(expected, actual):
    assert expected
    for p, f in zip(expected, actual):
        np.testing.assert_allclose(np.asarray(f), np.asarray(p), rtol=1e-4, atol=1e-7)


def _assert_trained_by_one_only(trained, untrained):
    """``trained`` (the default's gradients) is not 0 somewhere; ``untrained`` is None or 0 everywhere."""
    assert max(float(tf.reduce_max(tf.abs(g))) for g in trained) > 1e-6
    for g in untrained:
        assert g is None or float(tf.reduce_max(tf.abs(g))) == 0.0


@pytest.mark.parametrize("graph", [False, True])
@pytest.mark.parametrize("recalibrate", ["logits", "logits_and_features"])
def test_penalty_through_the_encoder_trains_q_z_given_x_and_not_the_label_decoder(rng, graph, recalibrate):
    """``term_options: {"environment_recalibration": {"through": "encoder"}}``: the same value, the
    same gradient on the image encoder, and no gradient on the label decoder, which the default
    ("encoder_and_decoder") does train; eagerly and under `tf.function`, with the refit reading the
    logits alone and the decoder's features too."""
    (value, encoder, decoder), (frozen_value, frozen_encoder, frozen_decoder) = _recalibration_gradients_through(
        rng, graph, "encoder", recalibrate=recalibrate)
    assert abs(value) > 1e-6  # the halves estimate is unbiased, so it may be negative
    np.testing.assert_allclose(frozen_value, value, rtol=1e-6)
    _assert_same_gradients(encoder, frozen_encoder)
    _assert_trained_by_one_only(decoder, frozen_decoder)


@pytest.mark.parametrize("graph", [False, True])
def test_penalty_through_the_decoder_trains_the_label_decoder_and_not_q_z_given_x(rng, graph):
    """``"through": "decoder"``, the converse of "encoder": z enters the penalty as a constant, so the
    value and the label decoder's gradient are the default's and the image encoder gets none, where
    the default trains it; eagerly and under `tf.function`."""
    (value, encoder, decoder), (frozen_value, frozen_encoder, frozen_decoder) = _recalibration_gradients_through(
        rng, graph, "decoder")
    assert abs(value) > 1e-6
    np.testing.assert_allclose(frozen_value, value, rtol=1e-6)
    _assert_same_gradients(decoder, frozen_decoder)
    _assert_trained_by_one_only(encoder, frozen_encoder)


def test_environment_calibration_is_the_kernel_calibration_error_of_p_y_given_z_per_environment(rng):
    """The term is `kernel_calibration_error` (tested against NumPy in tests/estimators) of p(y | z)'s
    class probabilities at z ~ q(z | x), the one-hot labels and environments and the label presence,
    with the declared bandwidth; rows without a label do not count."""
    from mibzoo.estimators.calibration import kernel_calibration_error
    from mibzoo.objectives import ood

    model = _small_model("ood_cmnist", hyperparameters={"beta1": 1.0, "beta2": 1.0, "alpha_y": 1.0, "beta3": 1.0,
                                                        "calibration_bandwidth": 0.7},
                         str_reg=[["beta3", "environment_calibration"]], term_options={})
    batch = _batch(rng, 24)
    labelled = np.ones(24, "float32")
    labelled[[4, 11]] = 0.0
    fp = _forward(model, batch, labelled)
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", fp.z(0))), "float64")
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    expected = float(kernel_calibration_error(probabilities.astype("float32"), np.eye(2, dtype="float32")[batch["label"]],
                                              np.eye(3, dtype="float32")[batch["env"]], labelled, 0.7))
    np.testing.assert_allclose(float(ood.environment_calibration(fp)), expected, rtol=1e-4, atol=1e-8)
    relabelled = {**batch, "label": np.where(labelled > 0, batch["label"], 1 - batch["label"]).astype("int32")}
    np.testing.assert_allclose(float(ood.environment_calibration(_forward(model, relabelled, labelled))), expected,
                               rtol=1e-4, atol=1e-8)


def _penalty_model(term, weight, hyperparameters, options=None):
    """A small `ood_cmnist` with ``term`` at the hyperparameter ``weight`` beside `cross` and
    `sufficiency` (β1 = α_y = 1 unless ``hyperparameters`` say otherwise), ``options`` its term options."""
    return _small_model("ood_cmnist", hyperparameters={"beta1": 1.0, "alpha_y": 1.0, **hyperparameters},
                        str_reg=[[{"image": "beta1"}, "cross"], ["alpha_y", "sufficiency"], [weight, term]],
                        term_options={} if options is None else {term: options})


def _partly_labelled(model, rng, hidden):
    """A batch of 24 rows whose rows ``hidden`` have no label: ``(batch, labelled [24], forward pass)``."""
    batch = _batch(rng, 24)
    labelled = np.ones(24, "float32")
    labelled[hidden] = 0.0
    return batch, labelled, _forward(model, batch, labelled)


def _np_imq_on_unit_scale(inputs, scale):
    """float64: the inverse multiquadric kernel C / (C + ‖u_i − u_j‖²), C = 2 d s², on the inputs divided by
    the root of their mean per-dimension variance."""
    u = inputs / np.sqrt(np.mean(np.var(inputs, axis=0)) + 1e-8)
    distances = np.sum(np.square(u[:, None, :] - u[None, :, :]), axis=-1)
    c = 2.0 * u.shape[1] * scale * scale
    return c / (c + distances)


@pytest.mark.parametrize("inputs", [None, "latent", "decoder_features"])
def test_conditional_moment_term_is_the_residual_kernel_discrepancy_per_environment(rng, inputs):
    """The term is `kernel_conditional_moment` (tested against NumPy in tests/estimators) of p(y | z)'s
    class probabilities at z ~ q(z | x), with an inverse multiquadric kernel of the declared scale on z
    (default) or on the input of the label decoder's final layer, each divided by its batch standard
    deviation (the kernel computed here in NumPy); rows without a label do not count. A model trains
    with it through `fit`."""
    import keras

    from mibzoo.estimators.conditional_moment import kernel_conditional_moment
    from mibzoo.objectives import ood

    model = _penalty_model("conditional_moment", "beta2", {"beta2": 10.0, "moment_bandwidth": 0.8},
                           None if inputs is None else {"inputs": inputs})
    batch, labelled, fp = _partly_labelled(model, rng, hidden=[3, 17])
    z = fp.z(0)
    features = fp.decoder_input("label", z)
    for layer in model.decoders["label"].net.layers[:-1]:
        features = layer(features)
    logits = np.asarray(model.decode_modality("label", fp.decoder_input("label", z)), "float64")
    probabilities = np.exp(logits - logits.max(-1, keepdims=True))
    probabilities /= probabilities.sum(-1, keepdims=True)
    kernel_inputs = np.asarray(features if inputs == "decoder_features" else z, "float64")
    kernel = _np_imq_on_unit_scale(kernel_inputs, 0.8).astype("float32")
    expected = float(kernel_conditional_moment(probabilities.astype("float32"), np.eye(2, dtype="float32")[batch["label"]],
                                               kernel, np.eye(3, dtype="float32")[batch["env"]], labelled))
    np.testing.assert_allclose(float(ood.environment_conditional_moment(fp)), expected, rtol=1e-3, atol=1e-8)
    relabelled = {**batch, "label": np.where(labelled > 0, batch["label"], 1 - batch["label"]).astype("int32")}
    np.testing.assert_allclose(float(ood.environment_conditional_moment(_forward(model, relabelled, labelled))),
                               expected, rtol=1e-3, atol=1e-8)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(batch, epochs=2, batch_size=12, verbose=0)
    assert np.isfinite(history.history["conditional_moment"]).all()


@pytest.mark.parametrize("pairs", [None, "halves", "none"])
def test_gradient_variance_term_is_fishr_on_the_label_decoder_in_numpy(rng, pairs):
    """Fishr's term on a model that declares it: `gradient_variance_gap` (tested against NumPy in
    tests/estimators) of the per-row gradients of −log p(y | z) (z ~ q(z | x)) with respect to the
    label decoder's final dense layer, taken by automatic differentiation one row at a time, between
    the environments, labelled rows only, with the declared pairing. A model trains with it through
    `fit`."""
    import keras

    from mibzoo.estimators.gradient_variance import gradient_variance_gap
    from mibzoo.objectives import ood

    model = _penalty_model("gradient_variance", "gamma_f", {"beta2": 0.0, "gamma_f": 10.0},
                           None if pairs is None else {"pairs": pairs})
    batch, labelled, fp = _partly_labelled(model, rng, hidden=[6, 9])
    final = model.decoders["label"].net.layers[-1]
    decoder_input = fp.decoder_input("label", fp.z(0))
    rows = []
    for i in range(24):
        with tf.GradientTape() as tape:
            logits = model.decode_modality("label", decoder_input[i:i + 1])
            loss = tf.nn.sparse_softmax_cross_entropy_with_logits(batch["label"][i:i + 1], logits)
        kernel, bias = tape.gradient(loss, [final.kernel, final.bias])
        rows.append(np.concatenate([kernel.numpy().ravel(), bias.numpy()]))
    expected = float(gradient_variance_gap(np.stack(rows), np.eye(3, dtype="float32")[batch["env"]], labelled,
                                           pairs=pairs or "halves"))
    np.testing.assert_allclose(float(ood.environment_gradient_variance(fp)), expected, rtol=1e-3, atol=1e-9)
    model.compile(optimizer=keras.optimizers.Adam(1e-3))
    history = model.fit(batch, epochs=2, batch_size=12, verbose=0)
    assert np.isfinite(history.history["gradient_variance"]).all()


def test_fishr_baseline_penalty_is_the_full_batch_gradient_variance_gap_in_numpy(rng):
    """The baseline's penalty: per-row gradients of the binary cross-entropy with respect to the final
    layer, (σ(f) − y) · [h, 1] in NumPy, and the squared deviations of the environments' variances
    (`gradient_variance_gap` on all rows, tested against NumPy in tests/estimators)."""
    from mibzoo.estimators.gradient_variance import gradient_variance_gap

    features = rng.normal(size=(40, 5))
    logits, labels = rng.normal(size=40), rng.integers(0, 2, 40).astype("float64")
    envs = np.repeat([0, 1], [15, 25])
    residuals = _sigmoid(logits) - labels
    gradients = np.concatenate([features * residuals[:, None], residuals[:, None]], axis=1)
    expected = float(gradient_variance_gap(gradients.astype("float32"), np.eye(2, dtype="float32")[envs], pairs="none"))
    got = ood_baselines.fishr_penalty(tf.constant(features, tf.float32), tf.constant(logits, tf.float32),
                                      tf.constant(labels, tf.float32), tf.constant(np.eye(2)[envs], tf.float32))
    np.testing.assert_allclose(float(got), expected, rtol=1e-4)


def test_fishr_baseline_lowers_its_penalty_and_refuses_an_unknown_one(rng):
    """On the toy Colored-MNIST, the same MLP trained without the penalty (weight 0, which still reports
    Fishr's gap) ends with environments whose gradient variances differ far more than with it."""
    train, test = _toy_colored(rng, 200, (0.1, 0.2)), _toy_colored(rng, 200, (0.9,))
    test["env"][:] = 2
    quick = dict(hidden=16, steps=60, anneal_steps=20, learning_rate=0.02)
    fishr = dataclasses.replace(ood_baselines.FISHR_SETTINGS, **quick)
    penalized = ood_baselines.train_baseline(fishr, train, test, 0, jit_compile=False)
    unpenalized = ood_baselines.train_baseline(dataclasses.replace(fishr, penalty_weight=0.0), train, test, 0,
                                               jit_compile=False)
    assert penalized["penalty"] < 0.1 * unpenalized["penalty"]
    with pytest.raises(ValueError, match="penalty='vrex'.*'irm', 'fishr'"):
        ood_baselines.Settings(penalty="vrex")


@pytest.mark.parametrize("statistic", [None, "mmd", "whitened_means"])
def test_label_conditional_invariance_compares_z_given_y_between_environments(rng, statistic):
    """The term is `group_conditional_mmd` (the default, inverse multiquadric kernel of scale 1) or
    `group_conditional_mean_gap` (``statistic: "whitened_means"``), both tested against NumPy in
    tests/estimators, of z ~ q(z | x) divided by its batch standard deviation, with the one-hot
    labels and environments and the label presence; rows without a label do not count; its
    gradient reaches the networks."""
    from mibzoo.estimators.conditional_means import group_conditional_mean_gap
    from mibzoo.estimators.mmd import group_conditional_mmd
    from mibzoo.objectives import ood

    options = {} if statistic is None else {"label_conditional_invariance": {"statistic": statistic}}
    model = _small_model("ood_cmnist", hyperparameters={"beta1": 1.0, "beta2": 1.0, "alpha_y": 1.0, "gamma_z": 1.0},
                         str_reg=[["gamma_z", "label_conditional_invariance"]], term_options=options)
    batch = _batch(rng, 24)
    labelled = np.ones(24, "float32")
    labelled[[4, 11]] = 0.0
    fp = _forward(model, batch, labelled)
    z = np.asarray(fp.z(0), "float64")
    scaled = z / np.sqrt(z.var(0).mean() + 1e-8)
    args = (scaled.astype("float32"), np.eye(2, dtype="float32")[batch["label"]], np.eye(3, dtype="float32")[batch["env"]],
            labelled)
    expected = float(group_conditional_mean_gap(*args) if statistic == "whitened_means" else
                     group_conditional_mmd(*args, kernel="imq"))
    np.testing.assert_allclose(float(ood.label_conditional_invariance(fp)), expected, rtol=1e-4, atol=1e-7)
    relabelled = {**batch, "label": np.where(labelled > 0, batch["label"], 1 - batch["label"]).astype("int32")}
    np.testing.assert_allclose(float(ood.label_conditional_invariance(_forward(model, relabelled, labelled))), expected,
                               rtol=1e-4, atol=1e-7)
    with tf.GradientTape() as tape:
        value = ood.label_conditional_invariance(_forward(model, batch, labelled))
    grads = tape.gradient(value, model.trainable_variables)
    assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)

"""gan, infogan, beta_tcvae, factor_vae: critics in their own phase, and what each must learn."""
import numpy as np
import pytest
import tensorflow as tf

import keras
import mibzoo
from mibzoo.errors import ConfigError, NoInferenceNetworkError
from tests.model_test_case import (TINY_SHARED, TINY_VECTOR, dataset, run_saving_test, synthetic_batches,
                                   tiny_overrides)

CENTERS = np.stack([2 * np.cos(2 * np.pi * np.arange(8) / 8), 2 * np.sin(2 * np.pi * np.arange(8) / 8)], 1)
RING = {"x": {"kind": "vector", "size": 2, "likelihood": "normal", "hidden": 128, "layers": 2}}


def ring_dataset(n=8192, seed=0):
    rng = np.random.default_rng(seed)
    k = rng.integers(0, 8, n)
    x = CENTERS[k] + 0.05 * rng.normal(size=(n, 2))
    return tf.data.Dataset.from_tensor_slices({"x": x.astype("float32")}).shuffle(n, seed=seed).batch(128).repeat()


def nearest_mode(points):
    distance = np.linalg.norm(points[:, None] - CENTERS[None], axis=-1)
    return distance.argmin(1), distance.min(1)


def train_on_ring(entry, shared, steps=3000):
    keras.utils.set_random_seed(0)
    model = mibzoo.load(entry, modalities=RING, shared=shared)
    model.compile(optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5),
                  critic_optimizer=keras.optimizers.Adam(1e-3, beta_1=0.5))
    model.fit(ring_dataset(), steps_per_epoch=steps, epochs=1, verbose=0)
    return model


def test_gan_covers_at_least_seven_of_eight_ring_modes():
    model = train_on_ring("gan", [{"name": "z", "size": 4}])
    samples = np.asarray(model.sample(2000, seed=1)["x"])
    mode, distance = nearest_mode(samples)
    near = distance < 0.3
    covered = np.bincount(mode[near], minlength=8) > 0.01 * len(samples)
    assert near.mean() > 0.5, f"only {near.mean():.2f} of the samples lie near a mode"
    assert covered.sum() >= 7, f"modes covered: {covered.sum()} of 8"


def test_infogan_categorical_code_controls_the_mixture_component():
    model = train_on_ring("infogan", [{"name": "noise", "size": 4},
                                      {"name": "c", "size": 8, "prior": "categorical", "code": True}])
    table = np.zeros((8, 8))
    for code in range(8):
        samples = np.asarray(model.sample(500, seed=10 + code, latents={"c": np.full(500, code)})["x"])
        table[code] = np.bincount(nearest_mode(samples)[0], minlength=8)
    # Purity: share of samples in the mode their code most often produces (chance: 1/8).
    purity = table.max(1).sum() / table.sum()
    assert purity > 0.6, f"code -> mode purity {purity:.2f} is not clearly above chance 0.125"


def test_critic_phase_moves_only_the_critic():
    model = mibzoo.load("gan", **tiny_overrides("gan"))
    model.compile(optimizer="adam")
    critic_vars = model.phase_variables("critic:C2")
    generator_vars = model.phase_variables("dist")
    assert critic_vars and generator_vars and not {id(v) for v in critic_vars} & {id(v) for v in generator_vars}
    arrays = synthetic_batches(model.modality_specs, n=32)
    moved = []
    for step in range(4):
        c0, g0 = [np.array(v) for v in critic_vars], [np.array(v) for v in generator_vars]
        model.fit(dataset({k: v[8 * step:8 * step + 8] for k, v in arrays.items()}, 8), epochs=1, verbose=0)
        c = any(not np.array_equal(a, np.array(v)) for a, v in zip(c0, critic_vars))
        g = any(not np.array_equal(a, np.array(v)) for a, v in zip(g0, generator_vars))
        assert c != g
        moved.append("critic" if c else "generator")
    assert moved == ["critic", "generator", "critic", "generator"]  # the gan entry's phase order


def test_gan_has_no_inference_network_and_says_so():
    model = mibzoo.load("gan", **tiny_overrides("gan"))
    assert model.encoders == {}
    with pytest.raises(NoInferenceNetworkError, match=r"encode\(\) needs an inference network.*G\^q is empty"):
        model.encode({"x": np.zeros((2, 12), "float32")})
    with pytest.raises(NoInferenceNetworkError, match=r"generate\(\)"):
        model.generate({"x": np.zeros((2, 12), "float32")}, target="x")
    assert model.sample(3, seed=0)["x"].shape == (3, 12)


def test_infogan_code_conditioned_generation_uses_the_given_code():
    model = mibzoo.load("infogan", **tiny_overrides("infogan"))
    a = model.sample(6, seed=0, latents={"c": np.array([0, 1, 2, 0, 1, 2])})
    b = model.sample(6, seed=0, latents={"c": np.eye(3, dtype="float32")[[0, 1, 2, 0, 1, 2]]})
    np.testing.assert_array_equal(np.asarray(a["x"]), np.asarray(b["x"]))
    c = model.sample(6, seed=0, latents={"c": np.array([2, 2, 2, 2, 2, 2])})
    assert not np.allclose(np.asarray(a["x"]), np.asarray(c["x"]))


def test_terms_needing_inference_are_refused_without_it():
    with pytest.raises(ValueError, match=r"'dist\[1\]\[1\]'.*'C1'.*needs no inference network"):
        mibzoo.load("gan", dist=[[1.0, "C2"], [1.0, "C1"]])


def test_critic_term_without_its_phase_is_refused():
    with pytest.raises(ValueError, match=r"a 'critic:C2' phase"):
        mibzoo.load("gan", phases=[{"name": "dist", "steps": 1}])


def numpy_total_correlation(z, loc, logvar):
    """Minibatch estimate of KL(q(z) ‖ Π_d q(z_d)) (Chen et al. 2018, weight 1/B), in NumPy."""
    log_pdf = -0.5 * (np.log(2 * np.pi) + logvar[None] + (z[:, None] - loc[None]) ** 2 / np.exp(logvar[None]))

    def logmeanexp(a, axis):
        m = a.max(axis=axis, keepdims=True)
        return (m + np.log(np.mean(np.exp(a - m), axis=axis, keepdims=True))).squeeze(axis)

    log_qz = logmeanexp(log_pdf.sum(-1), 1)
    log_marginals = logmeanexp(log_pdf, 1).sum(-1)
    return float(np.mean(log_qz - log_marginals))


@pytest.mark.parametrize("beta", [1.0, 3.0])
def test_beta_tcvae_is_elbo_plus_beta_minus_one_total_correlation(beta):
    single = {"x": dict(TINY_VECTOR)}
    model = mibzoo.load("beta_tcvae", modalities=single, shared=TINY_SHARED, beta=beta)
    vae = mibzoo.load("vae", modalities=single, shared=TINY_SHARED)
    vae.set_weights(model.get_weights())
    arrays = synthetic_batches(single, n=64)
    fps = []
    for m in (model, vae):
        x, present = m._prepare({"x": arrays["x"]}, strict=True)
        fps.append(m.forward(x, present, training=False, seed=11))
    _, totals = model.compute_terms(fps[0])
    _, elbo = vae.compute_terms(fps[1])
    loc, logvar = (np.asarray(t) for t in fps[0].posterior())
    tc = numpy_total_correlation(np.asarray(fps[0].z()), loc, logvar)
    np.testing.assert_allclose(float(totals["loss"]), float(elbo["loss"]) + (beta - 1.0) * tc, rtol=1e-4, atol=1e-4)


def test_factor_vae_trains_with_finite_reported_terms():
    keras.utils.set_random_seed(0)
    model = mibzoo.load("factor_vae", **tiny_overrides("factor_vae"))
    model.compile(optimizer="adam", critic_optimizer=keras.optimizers.Adam(1e-3))
    arrays = synthetic_batches(model.modality_specs, n=512)
    history = model.fit(dataset(arrays, 64).repeat(), steps_per_epoch=40, epochs=2, verbose=0).history
    assert {"C1", "tc_discriminator", "tc_discriminator_critic"} <= set(history)
    assert all(np.all(np.isfinite(v)) for v in history.values())


@pytest.mark.parametrize("cost, phases", [
    ("C3_mmd", [{"name": "dist", "steps": 1}]),
    ("C3_density_ratio", [{"name": "dist", "steps": 1}, {"name": "critic:C3_density_ratio", "steps": 1}]),
])
def test_aggregate_posterior_alternatives_to_c3_train(cost, phases):
    single = {"x": dict(TINY_VECTOR)}
    model = mibzoo.load("vae", modalities=single, shared=TINY_SHARED, dist=[[1.0, "C1"], [2.0, cost]], phases=phases)
    model.compile(optimizer="adam")
    history = model.fit(dataset(synthetic_batches(single, n=128), 32), epochs=2, verbose=0).history
    assert cost in history and all(np.all(np.isfinite(v)) for v in history.values())


@pytest.mark.parametrize("term, phases", [
    ("mi_zu_mmd", [{"name": "dist", "steps": 1}]),
    ("mi_zu_mine", [{"name": "critic:mi_zu_mine", "steps": 1}, {"name": "dist", "steps": 1}]),
])
def test_shared_private_information_terms_of_the_fairness_objective_train(term, phases):
    """I_q(z; u) (Eq. 17) as a regularizer, estimated with MMD or MINE; MINE's moving average
    moves in its critic phase and not during evaluation."""
    model = mibzoo.load("wyner_vae", **tiny_overrides("wyner_vae"),
                        str_reg=[[1.0, "cross"], [1.0, term]], phases=phases)
    model.compile(optimizer="adam")
    arrays = synthetic_batches(model.modality_specs, n=128)
    history = model.fit(dataset(arrays, 32), epochs=2, verbose=0).history
    assert term in history and all(np.all(np.isfinite(v)) for v in history.values())
    if term == "mi_zu_mine":
        average = float(model.critics[term].moving_average)
        assert average > 0 and f"{term}_critic" in history
        model.evaluate(dataset(arrays, 32), verbose=0)
        assert float(model.critics[term].moving_average) == average


def test_information_terms_need_private_latents():
    with pytest.raises(ValueError, match=r"'mi_zu_mine' term needs private latents"):
        mibzoo.load("jmvae", **tiny_overrides("jmvae"), str_reg=[[1.0, "mi_zu_mine"]],
                    phases=[{"name": "critic:mi_zu_mine", "steps": 1}, {"name": "dist", "steps": 1}])


# ----- InfoGAN's Q on the discriminator's trunk (term_options.infogan.shares_critic) --------------
SHARED_Q = {"infogan": {"shares_critic": "C2"}}


def _leaky_relu(a):
    return np.where(a > 0, a, 0.2 * a)


def _dense(layer, h):
    return h @ np.asarray(layer.kernel) + np.asarray(layer.bias)


def numpy_shared_q_bound(model, x, code, style, fixed_std, continuous_weight):
    """InfoGAN's L_I (Chen et al. 2016, Lemma 5.1) in NumPy, with Q one leaky-ReLU layer and the code
    heads on the MLP discriminator's last hidden layer: log K + E log softmax(Q)[c] for the
    categorical code, continuous_weight · (½ log 2πe + E log N(s; Q mean, fixed_std²)) for the Gaussian one."""
    critic, q = model.critics["C2"], model.auxiliaries["infogan"]
    h = x
    for layer in critic.head.hidden_layers:  # the trunk: D's hidden layers
        h = _leaky_relu(_dense(layer, h))
    hidden, out = q.net.layers
    params = _dense(out, _leaky_relu(_dense(hidden, h)))
    k = code.shape[1]
    logits = params[:, :k]
    log_softmax = logits - logits.max(1, keepdims=True)
    log_softmax -= np.log(np.exp(log_softmax).sum(1, keepdims=True))
    categorical = np.log(k) + np.mean(np.sum(code * log_softmax, 1))
    mean = params[:, k:k + style.shape[1]]
    log_density = -0.5 * np.log(2 * np.pi * fixed_std ** 2) - 0.5 * (style - mean) ** 2 / fixed_std ** 2
    gaussian = style.shape[1] * 0.5 * (np.log(2 * np.pi) + 1) + np.mean(np.sum(log_density, 1))
    return categorical + continuous_weight * gaussian


def _shared_q_model(**overrides):
    keras.utils.set_random_seed(0)
    return mibzoo.load("infogan", **tiny_overrides("infogan"), term_options=SHARED_Q, **overrides)


@pytest.mark.parametrize("continuous_weight", [1.0, 0.1])
def test_shared_q_bound_matches_numpy_on_the_discriminator_features(continuous_weight):
    from mibzoo.objectives.critics import infogan_information
    model = _shared_q_model(hyperparameters={"lambda_info": 1.0, "q_fixed_std": 0.7,
                                             "lambda_continuous": continuous_weight})
    assert model.auxiliaries["infogan"].input_size == model.critics["C2"].hidden  # reads D's last hidden layer
    x, present = model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)
    fp = model.forward(x, present, training=False, seed=3)
    z = np.asarray(fp.prior_latents()[0])  # blocks noise (4), c (3, one-hot), s (1)
    generated = np.asarray(fp.data_vector(fp.generated()))
    expected = numpy_shared_q_bound(model, generated, z[:, 4:7], z[:, 7:8], 0.7, continuous_weight)
    np.testing.assert_allclose(float(infogan_information(fp)), -expected, rtol=1e-5, atol=1e-5)


def test_q_batch_norm_normalizes_q_hidden_layer_with_the_batch_statistics_in_training():
    """term_options.infogan.q_batch_norm: InfoGAN's Q is FC, batch normalization, leaky ReLU, FC
    (Chen et al. 2016, App. C.1). In a training pass the bound equals NumPy's with Q's hidden layer
    normalized by the batch's own mean and variance; in inference, by the moving statistics."""
    from mibzoo.objectives.critics import infogan_information
    keras.utils.set_random_seed(0)
    model = mibzoo.load("infogan", **tiny_overrides("infogan"),
                        term_options={"infogan": {"shares_critic": "C2", "q_batch_norm": True}},
                        hyperparameters={"lambda_info": 1.0, "q_fixed_std": 1.0, "lambda_continuous": 0.1})
    q = model.auxiliaries["infogan"]
    assert [type(layer).__name__ for layer in q.net.layers] == ["Dense", "BatchNormalization", "Activation", "Dense"]
    hidden, norm, _, out = q.net.layers
    x, present = model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)
    for training in (True, False):
        fp = model.forward(x, present, training=training, seed=3)
        z = np.asarray(fp.prior_latents()[0])  # blocks noise (4), c (3, one-hot), s (1)
        h = np.asarray(fp.data_vector(fp.generated()))
        for layer in model.critics["C2"].head.hidden_layers:
            h = _leaky_relu(_dense(layer, h))
        a = _dense(hidden, h)
        mean, var = (a.mean(0), a.var(0)) if training else (np.asarray(norm.moving_mean), np.asarray(norm.moving_variance))
        a = (a - mean) / np.sqrt(var + norm.epsilon) * np.asarray(norm.gamma) + np.asarray(norm.beta)
        params = _dense(out, _leaky_relu(a))
        logits = params[:, :3] - params[:, :3].max(1, keepdims=True)
        log_softmax = logits - np.log(np.exp(logits).sum(1, keepdims=True))
        categorical = np.log(3) + np.mean(np.sum(z[:, 4:7] * log_softmax, 1))
        log_density = -0.5 * np.log(2 * np.pi) - 0.5 * (z[:, 7:8] - params[:, 3:4]) ** 2
        gaussian = 0.5 * (np.log(2 * np.pi) + 1) + np.mean(np.sum(log_density, 1))
        np.testing.assert_allclose(float(infogan_information(fp)), -(categorical + 0.1 * gaussian), rtol=1e-4, atol=1e-5)
    with pytest.raises(ConfigError, match="q_batch_norm"):
        mibzoo.load("infogan", **tiny_overrides("infogan"),
                    term_options={"infogan": {"shares_critic": "C2", "q_batch_norm": "yes"}})


def test_shared_q_trains_the_discriminator_trunk_from_both_losses():
    """InfoGAN adds −λ L_I to D's loss and to G's: in phase critic:C2 the trunk's gradient is that of
    D's loss plus λ times that of the term; in the dist phase the term reaches the generator."""
    from mibzoo.objectives import TERMS
    model = _shared_q_model(lambda_info=2.0)
    model.compile(optimizer="adam")
    critic, q = model.critics["C2"], model.auxiliaries["infogan"]
    trunk = critic.head.hidden_layers[0].kernel
    critic_ids = {id(v) for v in model.phase_variables("critic:C2")}
    assert {id(v) for v in critic.trainable_variables + q.trainable_variables} == critic_ids
    assert not critic_ids & {id(v) for v in model.phase_variables("dist")}
    x, present = model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)
    fp = model.forward(x, present, training=True, seed=5)
    with tf.GradientTape(persistent=True) as tape:
        losses = {"objective": model.critic_objective(fp, "C2"), "critic": TERMS["C2"].critic_loss(fp),
                  "info": TERMS["infogan"].fn(fp)}
    grads = {name: tape.gradient(value, trunk) for name, value in losses.items()}
    assert np.abs(np.asarray(grads["critic"])).max() > 0 and np.abs(np.asarray(grads["info"])).max() > 0
    np.testing.assert_allclose(np.asarray(grads["objective"]),
                               np.asarray(grads["critic"]) + 2.0 * np.asarray(grads["info"]), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(losses["objective"]), float(losses["critic"]) + 2.0 * float(losses["info"]),
                               rtol=1e-6)
    generator = model.decoders["x"].trainable_variables[0]
    assert np.abs(np.asarray(tape.gradient(losses["info"], generator))).max() > 0
    assert all(g is not None for g in tape.gradient(losses["info"], q.trainable_variables))


def test_shared_q_moves_with_the_critic_not_with_the_generator(tmp_path):
    model = _shared_q_model()
    model.compile(optimizer="adam")
    q = model.auxiliaries["infogan"].trainable_variables
    arrays = synthetic_batches(model.modality_specs, n=16)
    for step, moves in enumerate([True, False]):  # the entry's phases: critic:C2, then dist
        before = [np.array(v) for v in q]
        model.fit(dataset({k: v[8 * step:8 * step + 8] for k, v in arrays.items()}, 8), epochs=1, verbose=0)
        assert any(not np.array_equal(a, np.array(v)) for a, v in zip(before, q)) == moves
    restored = run_saving_test(model, arrays, tmp_path)
    assert restored.shared_critics == {"infogan": "C2"}
    for a, b in zip(q, restored.auxiliaries["infogan"].trainable_variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


@pytest.mark.parametrize("options, message", [
    ({"infogn": {"shares_critic": "C2"}}, "Did you mean 'infogan'"),
    ({"infogan": {"share_critic": "C2"}}, "Did you mean 'shares_critic'"),
    ({"infogan": {"shares_critic": "C3"}}, r"trains a critic, one of \['C2'\]"),
    ({"C2": {"shares_critic": "C2"}}, "term with an auxiliary network"),
])
def test_term_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        mibzoo.load("infogan", **tiny_overrides("infogan"), term_options=options)


SCALED_SHARED = [{"name": "noise", "size": 4, "scale": 0.1},
                 {"name": "c", "size": 3, "prior": "categorical", "code": True},
                 {"name": "s", "size": 1, "code": True, "scale": 0.5}]


def test_a_block_scale_sets_the_prior_standard_deviation_and_the_code_entropy():
    """``"scale": σ`` makes a normal block's prior N(0, σ² I): the draws have standard deviation σ, and
    the Gaussian code's InfoGAN bound uses H(c) = ½ log 2πe σ² (Chen et al. 2016, Lemma 5.1)."""
    from mibzoo.objectives.critics import infogan_information
    keras.utils.set_random_seed(0)
    model = mibzoo.load("infogan", **{**tiny_overrides("infogan"), "shared": SCALED_SHARED}, term_options=SHARED_Q,
                        hyperparameters={"lambda_info": 1.0, "q_fixed_std": 1.0, "lambda_continuous": 1.0})
    z = np.asarray(model.prior_sample(20000, model.forward_pass(None, seed=0).noise))
    np.testing.assert_allclose(z[:, :4].std(0), 0.1, rtol=0.03)
    np.testing.assert_allclose(z[:, 7].std(), 0.5, rtol=0.03)
    np.testing.assert_array_equal(z[:, 4:7].sum(1), 1.0)  # the one-hot code is not scaled
    x, present = model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)
    fp = model.forward(x, present, training=False, seed=3)
    z = np.asarray(fp.prior_latents()[0])
    generated = np.asarray(fp.data_vector(fp.generated()))
    unit_entropy = numpy_shared_q_bound(model, generated, z[:, 4:7], z[:, 7:8], 1.0, 1.0)
    np.testing.assert_allclose(float(infogan_information(fp)), -(unit_entropy + np.log(0.5)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block, message", [
    ({"name": "noise", "size": 4, "scale": 0.0}, "finite number > 0"),
    ({"name": "noise", "size": 4, "scale": True}, "finite number > 0"),
    ({"name": "noise", "size": 4, "scale": "0.1"}, "finite number > 0"),
    ({"name": "c", "size": 3, "prior": "categorical", "code": True, "scale": 2.0}, "only normal and uniform blocks"),
])
def test_a_block_scale_is_validated(block, message):
    with pytest.raises(ConfigError, match=message):
        mibzoo.load("infogan", **{**tiny_overrides("infogan"), "shared": [block, *SCALED_SHARED[1:]]})
    with pytest.raises(ConfigError, match="inference terms assume"):
        mibzoo.load("vae", **{**tiny_overrides("vae"), "shared": [{"name": "z", "size": 4, "scale": 0.5}]})


UNIFORM_SHARED = [{"name": "noise", "size": 4, "prior": "uniform"},
                  {"name": "c", "size": 3, "prior": "categorical", "code": True},
                  {"name": "s", "size": 1, "prior": "uniform", "code": True, "scale": 0.5}]


def test_a_uniform_block_draws_uniformly_and_its_code_bound_uses_log_2a():
    """``"prior": "uniform"`` (InfoGAN's noise and continuous codes): draws fill U(−a, a) (a
    Kolmogorov–Smirnov test against the uniform CDF), and the code's bound is InfoGAN's L_I with
    H(c) = log 2a and a Gaussian Q (NumPy, Chen et al. 2016, Lemma 5.1)."""
    from scipy import stats

    from mibzoo.objectives.critics import infogan_information
    keras.utils.set_random_seed(0)
    model = mibzoo.load("infogan", **{**tiny_overrides("infogan"), "shared": UNIFORM_SHARED}, term_options=SHARED_Q,
                        hyperparameters={"lambda_info": 1.0, "q_fixed_std": 1.0, "lambda_continuous": 1.0})
    z = np.asarray(model.prior_sample(20000, model.forward_pass(None, seed=0).noise))
    assert np.abs(z[:, :4]).max() < 1.0 and np.abs(z[:, 7]).max() < 0.5
    for column, half_width in [(0, 1.0), (3, 1.0), (7, 0.5)]:
        assert stats.kstest(z[:, column], stats.uniform(-half_width, 2 * half_width).cdf).pvalue > 1e-3
    np.testing.assert_array_equal(z[:, 4:7].sum(1), 1.0)
    x, present = model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)
    fp = model.forward(x, present, training=False, seed=3)
    z = np.asarray(fp.prior_latents()[0])
    generated = np.asarray(fp.data_vector(fp.generated()))
    # numpy_shared_q_bound's continuous part uses the N(0, 1) entropy ½ log 2πe; U(−½, ½)'s is log 1 = 0.
    gaussian_entropy = 0.5 * (np.log(2 * np.pi) + 1)
    expected = numpy_shared_q_bound(model, generated, z[:, 4:7], z[:, 7:8], 1.0, 1.0) - gaussian_entropy
    np.testing.assert_allclose(float(infogan_information(fp)), -expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("block, message", [
    ({"name": "noise", "size": 4, "prior": "uniform", "scale": -1.0}, "half-width"),
    ({"name": "noise", "size": 4, "prior": "uniform", "scale": float("inf")}, "half-width"),
])
def test_a_uniform_block_is_validated(block, message):
    with pytest.raises(ConfigError, match=message):
        mibzoo.load("infogan", **{**tiny_overrides("infogan"), "shared": [block, *UNIFORM_SHARED[1:]]})
    with pytest.raises(ConfigError, match="PoE posterior is Gaussian"):
        mibzoo.load("vae", **{**tiny_overrides("vae"), "shared": [{"name": "z", "size": 4, "prior": "uniform"}]})


def test_q_input_noise_makes_q_read_the_samples_plus_gaussian_noise():
    """q_input_noise σ: the bound is InfoGAN's L_I with Q reading G(z, c) + σ ε (NumPy, same ε)."""
    from mibzoo.objectives.critics import infogan_information
    model = _shared_q_model(hyperparameters={"lambda_info": 1.0, "q_fixed_std": 1.0, "lambda_continuous": 0.1,
                                             "q_input_noise": 0.5})
    x, present = model._prepare(synthetic_batches(model.modality_specs, n=16), strict=False)
    noise = lambda shape: keras.random.normal(shape, seed=7)  # the same draw for the same shape
    fp = model.forward(x, present, training=False, seed=noise)
    z = np.asarray(fp.prior_latents()[0])
    generated = np.asarray(fp.data_vector(fp.generated()))
    epsilon = np.asarray(keras.random.normal(generated.shape, seed=7))
    expected = numpy_shared_q_bound(model, generated + 0.5 * epsilon, z[:, 4:7], z[:, 7:8], 1.0, 0.1)
    np.testing.assert_allclose(float(infogan_information(fp)), -expected, rtol=1e-5, atol=1e-5)
    clean = numpy_shared_q_bound(model, generated, z[:, 4:7], z[:, 7:8], 1.0, 0.1)
    assert abs(expected - clean) > 1e-3  # the noise changes what Q reads


def _image_infogan(size, **hyperparameters):
    """A tiny InfoGAN over one ``size`` × ``size`` image with an MLP discriminator and Q on its trunk,
    and a batch of binary images for it."""
    keras.utils.set_random_seed(0)
    overrides = {**tiny_overrides("infogan"),
                 "modalities": {"x": {"kind": "image", "shape": [size, size, 1], "likelihood": "bernoulli"}},
                 "networks": {"image": {"network": "mlp", "hidden": 16, "layers": 1}},
                 "hyperparameters": {"lambda_info": 1.0, "q_fixed_std": 1.0, **hyperparameters}}
    model = mibzoo.load("infogan", term_options=SHARED_Q, **overrides)
    images = (np.random.default_rng(0).random((64, size, size, 1)) > 0.5).astype("float32")
    return model, {"x": images}


def test_q_reads_the_categorical_code_from_jittered_images_and_the_continuous_from_clean(monkeypatch):
    """q_categorical_rotation / q_categorical_stroke_jitter: the categorical bound is L_I with Q on the
    jittered image modalities, the continuous bound on the unjittered samples (NumPy; the jitter
    replaced by a fixed quarter turn so that NumPy can apply the same one)."""
    from mibzoo.objectives import critics
    calls = []

    def quarter_turn(images, max_rotation, stroke_jitter, seed):
        calls.append((tuple(images.shape[1:]), max_rotation, stroke_jitter))
        return tf.image.rot90(images)

    monkeypatch.setattr(critics.image_jitter, "jitter_images", quarter_turn)
    model, batch = _image_infogan(4, lambda_continuous=0.5, q_categorical_rotation=0.25,
                                  q_categorical_stroke_jitter=0.5)
    x, present = model._prepare({"x": batch["x"][:16]}, strict=False)
    fp = model.forward(x, present, training=False, seed=3)
    z = np.asarray(fp.prior_latents()[0])
    images = np.asarray(fp.generated()["x"])
    clean, turned = images.reshape(16, -1), np.rot90(images, 1, axes=(1, 2)).reshape(16, -1)
    code, style = z[:, 4:7], z[:, 7:8]
    categorical = numpy_shared_q_bound(model, turned, code, style, 1.0, 0.0)
    continuous = (numpy_shared_q_bound(model, clean, code, style, 1.0, 0.5)
                  - numpy_shared_q_bound(model, clean, code, style, 1.0, 0.0))
    np.testing.assert_allclose(float(critics.infogan_information(fp)), -(categorical + continuous),
                               rtol=1e-5, atol=1e-5)
    assert calls == [((4, 4, 1), 0.25, 0.5)]
    # the jitter matters: Q on the clean images gives another categorical bound
    assert abs(numpy_shared_q_bound(model, clean, code, style, 1.0, 0.0) - categorical) > 1e-4


def test_q_categorical_jitter_trains_end_to_end_on_images():
    """With the real jitter (random rotations and stroke widths), a few fit steps of an image InfoGAN
    give finite losses, and the generator's gradient of the term is nonzero through the jitter (the
    continuous codes weighted 0, so the clean pass contributes nothing)."""
    from mibzoo.objectives.critics import infogan_information
    model, batch = _image_infogan(6, lambda_continuous=0.0, q_categorical_rotation=0.3,
                                  q_categorical_stroke_jitter=1.0)
    model.compile(optimizer="adam")
    history = model.fit(dataset(batch, batch_size=16), epochs=1, verbose=0)
    assert all(np.isfinite(v[-1]) for v in history.history.values())
    x, present = model._prepare({"x": batch["x"][:16]}, strict=False)
    with tf.GradientTape() as tape:
        term = infogan_information(model.forward(x, present, training=True, seed=1))
    grads = tape.gradient(term, model.decoders["x"].trainable_variables)
    assert any(g is not None and float(tf.reduce_sum(tf.abs(g))) > 0 for g in grads)

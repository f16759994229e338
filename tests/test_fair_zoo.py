"""The fairness entries (Sec. 5, Eq. 17): per-modality private latents, the objective against
NumPy, training, the fairness metrics through `evaluate` and the CLI, on tiny tabular data."""
import json

import numpy as np
import pytest
from scipy import special, stats

import mibzoo
import mibzoo.data
from mibzoo import metrics
from mibzoo.cli import main
from mibzoo.errors import ConfigError
from mibzoo.metrics import fairness

X = {"kind": "tabular", "numeric": 3, "categorical": [3, 2], "hidden": 16, "layers": 1}
A = {"kind": "categorical", "classes": 2, "hidden": 16, "layers": 1}
TINY = {"modalities": {"x": X, "a": A}, "shared": [{"name": "z", "size": 2}], "private": {"x": 3}}


def tabular_arrays(n=96, seed=0):
    """x: 3 numericals and two one-hot groups, a binary and correlated with x; target from x."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, 2, n)
    numeric = rng.normal(size=(n, 3)) + a[:, None]
    groups = [np.eye(3)[rng.integers(0, 3, n)], np.eye(2)[a]]
    x = np.concatenate([numeric] + groups, axis=1).astype("float32")
    target = (numeric[:, 1] > 0.5).astype("int32")
    return {"x": x, "a": a.astype("int32"), "target": target}


def forward_pass(model, arrays, seed=3):
    x, present = model._prepare({k: v for k, v in arrays.items() if k in model.modality_specs}, strict=True)
    return model.forward(x, present, training=False, seed=seed)


# ----- per-modality private latents (Figure 4: U_x, no U_a) ----------------------------------------
def test_private_latent_only_for_the_modalities_that_have_one():
    model = mibzoo.load("fair_mmd", **TINY)
    assert model.private_sizes == {"x": 3, "a": 0} and model.private_size == 3
    arrays = tabular_arrays(8)
    encoded = model.encode({"x": arrays["x"], "a": arrays["a"]})
    assert list(encoded["private"]) == ["x"] and encoded["private"]["x"]["loc"].shape == (8, 3)
    assert model.decoders["a"].latent_size == 2 and model.decoders["x"].latent_size == 5
    assert model.generate({"x": arrays["x"]}, "a", num_samples=2, seed=0).shape == (2, 8, 2)
    assert model.generate({"a": arrays["a"]}, "x", seed=0).shape == (1, 8, 8)
    assert {k: tuple(v.shape) for k, v in model.sample(4, seed=1).items()} == {"x": (4, 8), "a": (4, 2)}
    assert model.reconstruct({"x": arrays["x"]})["a"].shape == (8, 2)
    # U_x depends on x alone: the sensitive attribute does not change it.
    flipped = model.encode({"x": arrays["x"], "a": 1 - arrays["a"]})["private"]["x"]["loc"]
    np.testing.assert_array_equal(np.asarray(flipped), np.asarray(encoded["private"]["x"]["loc"]))
    alone = model.encode({"x": arrays["x"]})["private"]["x"]["loc"]
    np.testing.assert_array_equal(np.asarray(alone), np.asarray(encoded["private"]["x"]["loc"]))


@pytest.mark.parametrize("private, field", [({"b": 2}, "private.b"), ({"x": -1}, "private.x"), ("4", "private")])
def test_bad_private_sizes_are_refused_with_the_field(private, field):
    with pytest.raises(ConfigError, match=rf"field '{field}'"):
        mibzoo.load("fair_mmd", **{**TINY, "private": private})


# ----- Eq. 17 as computed by the model vs NumPy ---------------------------------------------------
def _np_kl(loc, logvar):
    return 0.5 * np.sum(np.exp(logvar) + loc ** 2 - 1 - logvar, axis=-1)


def _np_hsic(x, y):
    """Unbiased HSIC (Song et al. 2012, Eq. 5) with IMQ kernels C / (C + d²), C = 2 · dim."""
    def gram(v):
        d2 = ((v[:, None, :] - v[None, :, :]) ** 2).sum(-1)
        k = 2 * v.shape[1] / (2 * v.shape[1] + d2)
        np.fill_diagonal(k, 0.0)
        return k

    k, l = gram(x), gram(y)
    n = len(x)
    one = np.ones(n)
    return (np.trace(k @ l) + one @ k @ one * (one @ l @ one) / ((n - 1) * (n - 2))
            - 2 / (n - 2) * one @ k @ l @ one) / (n * (n - 3))


def _unit(v):
    return v / np.sqrt(np.mean(np.var(v, axis=0)) + 1e-8)


def test_fair_mmd_loss_is_eq17_with_hsic_computed_in_numpy():
    """L = −log p(x|z,u) − α_a log p(a|z) + (1 + β1) KL(q(z|x,a) ‖ p(z)) + β2 HSIC(z, u) + γ KL(q(u|x) ‖ p(u))."""
    hyper = {"beta1": 0.5, "beta2": 30.0, "alpha_a": 4.0, "gamma": 0.25}
    model = mibzoo.load("fair_mmd", **TINY, hyperparameters=hyper)
    fp = forward_pass(model, tabular_arrays(32))
    _, totals = model.compute_terms(fp)
    nll = {m: float(np.mean(np.asarray(fp.negative_log_likelihood(m), "float64"))) for m in ("x", "a")}
    loc, logvar = (np.asarray(t, "float64") for t in fp.posterior())
    _, _, u_loc, u_logvar = (np.asarray(t, "float64") for t in fp.encoder_outputs()["x"])
    z, u = np.asarray(fp.z(), "float64"), np.asarray(fp.u("x"), "float64")
    want = (nll["x"] + hyper["alpha_a"] * nll["a"] + (1 + hyper["beta1"]) * np.mean(_np_kl(loc, logvar))
            + hyper["beta2"] * _np_hsic(_unit(z), _unit(u)) + hyper["gamma"] * np.mean(_np_kl(u_loc, u_logvar)))
    np.testing.assert_allclose(float(totals["loss"]), want, rtol=2e-5)


def test_mi_zu_tc_is_the_group_total_correlation_of_z_and_u():
    model = mibzoo.load("fair_tc", **TINY)
    fp = forward_pass(model, tabular_arrays(16))
    terms, _ = model.compute_terms(fp)
    loc, logvar = (np.asarray(t, "float64") for t in fp.posterior())
    _, _, u_loc, u_logvar = (np.asarray(t, "float64") for t in fp.encoder_outputs()["x"])
    z, u = np.asarray(fp.z(), "float64"), np.asarray(fp.u("x"), "float64")

    def log_q(sample, mean, log_variance):  # [B, B]: log q(sample_b | x_j)
        return stats.norm.logpdf(sample[:, None], mean[None], np.exp(0.5 * log_variance[None])).sum(-1)

    lz, lu = log_q(z, loc, logvar), log_q(u, u_loc, u_logvar)
    b = len(z)
    mi = np.mean(special.logsumexp(lz + lu, 1) - special.logsumexp(lz, 1) - special.logsumexp(lu, 1) + np.log(b))
    beta2 = model.model_config["hyperparameters"]["beta2"]
    np.testing.assert_allclose(float(terms["mi_zu_tc"]), beta2 * mi, rtol=1e-4)


# ----- data, evaluation and the commands (every entry's training: tests/test_zoo.py) ----------------
def test_entries_default_to_adult_and_take_german_modalities():
    adult, german = mibzoo.data.info("adult").modalities, mibzoo.data.info("german").modalities
    model = mibzoo.describe("fair_mmd")["model"]
    assert model["modalities"]["x"]["categorical"] == adult["x"]["categorical"]
    loaded = mibzoo.load("fair_tc", modalities=german)
    assert loaded.modality_specs["x"]["categorical"] == german["x"]["categorical"]
    assert loaded.private_sizes["a"] == 0 and loaded.private_sizes["x"] > 0


def test_evaluate_reports_fairness_of_the_representation_of_x(fairness_data_dir):
    train = mibzoo.data.load_arrays("adult", "train", data_dir=fairness_data_dir, sources=["local"])
    test = mibzoo.data.load_arrays("adult", "test", data_dir=fairness_data_dir, sources=["local"])
    model = mibzoo.load("fair_mmd", modalities=mibzoo.data.info("adult").modalities, private={"x": 4})
    values = metrics.evaluate(model, test, train, spec="adult", metrics=["fairness"])
    assert values == {f"fairness/{k}": v for k, v in fairness.representation_fairness(model, train, test).items()}
    assert metrics.higher_is_better("fairness/acc") and not metrics.higher_is_better("fairness/deo")


def test_train_then_evaluate_commands_report_acc_and_deo(fairness_data_dir, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("MIBZOO_DATA_SOURCES", "local")
    run = tmp_path / "run"
    assert main(["train", "fair_mmd", "--dataset", "adult", "--data-dir", str(fairness_data_dir), "--epochs", "1",
                 "--out", str(run), "--image-examples", "0", "--verbose", "0",
                 "--modality-options", '{"hidden": 16, "layers": 1}']) == 0
    capsys.readouterr()
    assert main(["evaluate", str(run), "--data-dir", str(fairness_data_dir), "--metrics", "fairness", "probe",
                 "--plot-examples", "0"]) == 0
    printed = capsys.readouterr().out
    assert "fairness/acc" in printed and "fairness/deo" in printed and "fairness/dp" in printed
    saved = json.loads((run / "metrics.json").read_text())["metrics"]
    assert 0.0 <= saved["fairness/deo"] <= 1.0


# ----- what MINE's statistics network reads (term_options.mi_zu_mine.inputs) ----------------------
def _np_mine_statistic(critic, z, u):
    """T(z, u) of `MINEStatistics` in NumPy: ELU hidden layers on [z, u], then a linear output."""
    h = np.concatenate([z, u], axis=1)
    for layer in critic.head.hidden_layers:
        a = h @ np.asarray(layer.kernel, "float64") + np.asarray(layer.bias, "float64")
        h = np.where(a > 0, a, np.expm1(np.minimum(a, 0)))
    return (h @ np.asarray(critic.head.out.kernel, "float64") + np.asarray(critic.head.out.bias, "float64"))[:, 0]


@pytest.mark.parametrize("inputs", ["samples", "unit_scaled", "means"])
def test_mi_zu_mine_reads_the_inputs_its_option_names(inputs, monkeypatch):
    """The term is β2 times the Donsker-Varadhan bound E[T(z, u)] − log E[exp T(z, u')] on the pairs
    the option names (u' = u paired with other rows), and the critic's loss is its negative."""
    from mibzoo.objectives import fairness as fairness_terms

    monkeypatch.setattr(fairness_terms, "_shuffled", lambda fp, u: u[::-1])  # a known pairing
    model = mibzoo.load("fair_mine", **TINY, term_options={"mi_zu_mine": {"inputs": inputs}})
    fp = forward_pass(model, tabular_arrays(16))
    terms, _ = model.compute_terms(fp)
    z, u = np.asarray(fp.z(), "float64"), np.asarray(fp.u("x"), "float64")
    u_mean = np.asarray(fp.encoder_outputs()["x"][2], "float64")
    z, u = {"samples": (z, u), "unit_scaled": (_unit(z), _unit(u)), "means": (_unit(z), _unit(u_mean))}[inputs]
    critic = model.critics["mi_zu_mine"]
    joint, marginal = _np_mine_statistic(critic, z, u), _np_mine_statistic(critic, z, u[::-1])
    bound = joint.mean() - (special.logsumexp(marginal) - np.log(len(marginal)))
    beta2 = model.model_config["hyperparameters"]["beta2"]
    np.testing.assert_allclose(float(terms["mi_zu_mine"]), beta2 * bound, rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(float(model.critic_objective(fp, "mi_zu_mine")), -bound, rtol=1e-4, atol=1e-6)


def test_mi_zu_mine_reads_samples_unless_told_and_fair_mine_reads_the_means():
    from mibzoo.objectives import TERMS

    assert TERMS["mi_zu_mine"].option({}, "inputs") == "samples"
    assert mibzoo.load("fair_mine", **TINY).model_config["term_options"] == {"mi_zu_mine": {"inputs": "means"}}


def test_mi_zu_mine_refuses_an_unknown_inputs_option():
    with pytest.raises(ConfigError, match=r"term_options.mi_zu_mine.inputs"):
        mibzoo.load("fair_mine", **TINY, term_options={"mi_zu_mine": {"inputs": "mean"}})


def test_fair_mine_trains_its_critic_three_steps_per_encoder_step_at_adams_1e3():
    """fair_mine's default schedule (docs/results_fairness.md finding 10): each call of the train
    function takes one batch, and of every four, three go to the statistics network."""
    import keras

    model = mibzoo.load("fair_mine", **TINY, seed=0)
    assert model.phases == [{"name": "critic:mi_zu_mine", "steps": 3}, {"name": "dist", "steps": 1}]
    model.compile(optimizer=keras.optimizers.Adam(1e-3), run_eagerly=True)
    arrays = tabular_arrays(8)
    model.fit({"x": arrays["x"], "a": arrays["a"]}, batch_size=2, epochs=1, verbose=0, shuffle=False)
    critic = model.critic_optimizers["critic:mi_zu_mine"]
    assert int(critic.iterations) == 3 and int(model.optimizer.iterations) == 1
    assert float(critic.learning_rate) == pytest.approx(1e-3) and float(critic.beta_1) == pytest.approx(0.5)

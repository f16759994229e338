"""Structure masks (Sec. 3.5) and structure learning on a planted structure."""
import numpy as np
import pytest

import keras
import mibzoo
from mibzoo.structure import StructureMasks
from tests.model_test_case import dataset


def test_relaxed_samples_are_in_unit_interval_and_sharpen_as_temperature_falls():
    layer = StructureMasks([[0.5, 0.5]] * 3, [[1.0, 1.0]] * 3, learn_inference=True,
                           temperature=5.0, min_temperature=0.05, anneal_rate=1.0)
    seed = keras.random.SeedGenerator(0)
    hot = np.stack([np.asarray(layer.masks(training=True, seed=seed)[0]) for _ in range(200)])
    for _ in range(10):
        layer.advance()
    np.testing.assert_allclose(float(layer.current_temperature()), max(5.0 * np.exp(-10.0), 0.05), rtol=1e-5)
    cold = np.stack([np.asarray(layer.masks(training=True, seed=seed)[0]) for _ in range(200)])
    assert np.all((hot > 0) & (hot < 1))
    # At τ = 0.05 samples are nearly binary; at τ = 5 they stay near 0.5.
    assert np.mean(np.minimum(cold, 1 - cold)) < 0.05 < np.mean(np.minimum(hot, 1 - hot))
    # A relaxed Bernoulli with logit 0 is 1/2 in distribution: mean of hard-rounded draws.
    assert abs(np.mean(cold > 0.5) - 0.5) < 0.06
    np.testing.assert_array_equal(np.asarray(layer.masks(training=True)[1]), np.ones((3, 2)))  # fixed M^p


def test_expected_hard_masks_and_sparsity():
    layer = StructureMasks([[0.2, 0.9]], [[0.7, 0.1]], learn_inference=True, learn_generation=True,
                           sparsity=0.5, at_inference="hard")
    np.testing.assert_allclose(np.asarray(layer.probabilities("inference")), [[0.2, 0.9]], rtol=1e-5)
    np.testing.assert_array_equal(np.asarray(layer.masks(training=False)[0]), [[0.0, 1.0]])
    np.testing.assert_array_equal(np.asarray(layer.masks(training=False)[1]), [[1.0, 0.0]])
    # λ times the mean edge probability of both masks (means 0.55 and 0.4: a penalty over one mask
    # alone would give 0.275 or 0.2).
    np.testing.assert_allclose(float(layer.sparsity_loss()), 0.5 * np.mean([0.55, 0.4]), rtol=1e-5)
    only_q = StructureMasks([[0.2, 0.9]], [[0.7, 0.1]], learn_inference=True, sparsity=0.5)
    np.testing.assert_allclose(float(only_q.sparsity_loss()), 0.5 * 0.55, rtol=1e-5)  # fixed M^p: no penalty


def test_sparsity_on_logits_is_the_mean_logit_and_its_gradient_does_not_vanish():
    """``sparsity_on="logit"``: λ times the mean of each mask's mean ρ (NumPy), whose gradient per edge is
    λ / (masks · edges) at any ρ, where the probability's is λ σ'(ρ) / (masks · edges) (0.0066 · λ / 2 at
    σ(ρ) = 0.993)."""
    import tensorflow as tf

    q, p = [[0.2, 0.993]], [[0.7, 0.1]]
    by_logit = StructureMasks(q, p, learn_inference=True, learn_generation=True, sparsity=0.5, sparsity_on="logit")
    logit = lambda v: np.log(np.asarray(v)) - np.log1p(-np.asarray(v))  # noqa: E731
    np.testing.assert_allclose(float(by_logit.sparsity_loss()), 0.5 * np.mean([logit(q).mean(), logit(p).mean()]),
                               rtol=1e-5)
    by_probability = StructureMasks(q, p, learn_inference=True, learn_generation=True, sparsity=0.5)
    for layer, want in ((by_logit, 0.5 / 4), (by_probability, 0.5 / 4 * 0.993 * 0.007)):
        with tf.GradientTape() as tape:
            loss = layer.sparsity_loss()
        grad = tape.gradient(loss, layer.logits["inference"])
        np.testing.assert_allclose(float(grad[0, 1]), want, rtol=1e-3)
    assert by_logit.get_config()["sparsity_on"] == "logit"
    assert StructureMasks.from_config(by_logit.get_config()).sparsity_on == "logit"


def test_sparsity_on_is_validated_and_written_into_the_config_only_when_given():
    from mibzoo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"structure_learning.sparsity_on.*'probability', 'logit'"):
        mibzoo.load("mib_mm", structure_learning={"sparsity_on": "logits"})
    model = mibzoo.load("mib_mm", structure_learning={"sparsity": 10.0, "sparsity_on": "logit"})
    assert model.structure_masks.sparsity_on == "logit"
    assert model.get_config()["structure_learning"]["sparsity_on"] == "logit"
    assert "sparsity_on" not in mibzoo.load("jmvae").get_config()["structure_learning"]


def test_sparsity_scaled_by_sqrt_likelihood_terms_weighs_each_modalitys_edges():
    """``sparsity_scale="sqrt_likelihood_terms"``: edge (i, j) enters L_sparsity times s_i = √(w_i · d_i)
    (NumPy), d_i the modality's likelihood terms: 784 pixels, 1 per categorical, 8 coordinates."""
    import tensorflow as tf
    from mibzoo.modalities import likelihood_terms

    assert likelihood_terms({"kind": "image", "shape": [28, 28, 1]}) == 784
    assert likelihood_terms({"kind": "categorical", "classes": 10}) == 1
    assert likelihood_terms({"kind": "vector", "size": 8}) == 8
    assert likelihood_terms({"kind": "tabular", "numeric": 6, "categorical": [8, 16, 7]}) == 9

    q, p = [[0.2], [0.993], [0.5]], [[0.7], [0.1], [0.9]]
    scales = [784.0, 50.0, 8.0]
    layer = StructureMasks(q, p, learn_inference=True, learn_generation=True, sparsity=0.01, sparsity_on="logit",
                           modality_scales=scales)
    logit = lambda v: np.log(np.asarray(v)) - np.log1p(-np.asarray(v))  # noqa: E731
    s = np.asarray(scales)[:, None]
    want = 0.01 * np.mean([(s * logit(q)).mean(), (s * logit(p)).mean()])
    np.testing.assert_allclose(float(layer.sparsity_loss()), want, rtol=1e-5)
    with tf.GradientTape() as tape:
        loss = layer.sparsity_loss()
    np.testing.assert_allclose(tape.gradient(loss, layer.logits["generation"]).numpy()[:, 0],
                               0.01 * np.asarray(scales) / 6, rtol=1e-5)
    assert StructureMasks.from_config(layer.get_config()).modality_scales == scales
    # All scales 1 is the unscaled penalty.
    ones = StructureMasks(q, p, True, True, sparsity=0.01, sparsity_on="logit", modality_scales=[1.0] * 3)
    plain = StructureMasks(q, p, True, True, sparsity=0.01, sparsity_on="logit")
    np.testing.assert_allclose(float(ones.sparsity_loss()), float(plain.sparsity_loss()), rtol=1e-6)
    with pytest.raises(ValueError, match="modality_scales has 2 entries for 3 modalities"):
        StructureMasks(q, p, True, True, modality_scales=[1.0, 2.0])

    # From a zoo config: the scales are √(w_i d_i) of the entry's modalities (label likelihood x50).
    model = mibzoo.load("mib_mm", structure_learning={"sparsity_scale": "sqrt_likelihood_terms"})
    np.testing.assert_allclose(model.structure_masks.modality_scales, [28.0, np.sqrt(50.0)], rtol=1e-6)
    assert model.get_config()["structure_learning"]["sparsity_scale"] == "sqrt_likelihood_terms"
    assert "sparsity_scale" not in mibzoo.load("jmvae").get_config()["structure_learning"]
    from mibzoo.errors import ConfigError
    with pytest.raises(ConfigError, match=r"structure_learning.sparsity_scale.*'edge', 'sqrt_likelihood_terms'"):
        mibzoo.load("mib_mm", structure_learning={"sparsity_scale": "pixels"})


def planted_problem(n=2048, seed=0):
    """Modalities a and b share a 2-d factor s; c is independent noise."""
    rng = np.random.default_rng(seed)
    s = rng.normal(size=(n, 2))
    mix_a, mix_b = rng.normal(size=(2, 2, 8))
    return {"a": (s @ mix_a + 0.1 * rng.normal(size=(n, 8))).astype("float32"),
            "b": (s @ mix_b + 0.1 * rng.normal(size=(n, 8))).astype("float32"),
            "c": rng.normal(size=(n, 8)).astype("float32")}


def test_mib_mm_learns_that_the_noise_modality_does_not_inform_the_shared_block():
    keras.utils.set_random_seed(0)
    spec = {"kind": "vector", "size": 8, "likelihood": "normal", "hidden": 32, "layers": 1}
    # No private latents: private U_i as large as the shared factor could carry it for each
    # modality on its own, and then no structure is identifiable from the data.
    # The default structure start (469 steps, one MNIST epoch) is sized for MNIST: here the 600 steps
    # alternate from the first, as before it existed.
    model = mibzoo.load("mib_mm", modalities={"a": spec, "b": dict(spec), "c": dict(spec)},
                        shared=[{"name": "z", "size": 2}], private=0,
                        phases=[{"name": "dist", "steps": 1}, {"name": "structure", "steps": 1}])
    model.compile(optimizer=keras.optimizers.Adam(3e-3), structure_optimizer=keras.optimizers.Adam(3e-2))
    arrays = planted_problem()
    model.fit(dataset(arrays, 64).repeat(), steps_per_epoch=600, epochs=1, verbose=0)
    m_q = model.structure()["inference"][:, 0]
    print("learned M^q (a, b, c):", np.round(m_q, 3), "M^p:", np.round(model.structure()["generation"][:, 0], 3))
    assert m_q[2] < 0.5 * min(m_q[0], m_q[1]), f"noise modality weight {m_q[2]:.3f} not clearly below {m_q[:2]}"
    m_p = model.structure()["generation"][:, 0]
    assert m_p[2] < 0.5 * min(m_p[0], m_p[1]), f"noise modality M^p {m_p[2]:.3f} not clearly below {m_p[:2]}"

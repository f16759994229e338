"""Structure masks (Sec. 3.5) and structure learning on a planted structure."""
import numpy as np

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
    model = mibzoo.load("mib_mm", modalities={"a": spec, "b": dict(spec), "c": dict(spec)},
                        shared=[{"name": "z", "size": 2}], private=0)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), structure_optimizer=keras.optimizers.Adam(3e-2))
    arrays = planted_problem()
    model.fit(dataset(arrays, 64).repeat(), steps_per_epoch=600, epochs=1, verbose=0)
    m_q = model.structure()["inference"][:, 0]
    print("learned M^q (a, b, c):", np.round(m_q, 3), "M^p:", np.round(model.structure()["generation"][:, 0], 3))
    assert m_q[2] < 0.5 * min(m_q[0], m_q[1]), f"noise modality weight {m_q[2]:.3f} not clearly below {m_q[:2]}"
    m_p = model.structure()["generation"][:, 0]
    assert m_p[2] < 0.5 * min(m_p[0], m_p[1]), f"noise modality M^p {m_p[2]:.3f} not clearly below {m_p[:2]}"

"""Registry-wide checks: every zoo entry loads, trains, learns and round-trips through `.keras`."""
import numpy as np
import pytest

import keras
import mibzoo
from tests.model_test_case import (collapse_floor, dataset, is_adversarial, run_model_test, run_saving_test,
                                   synthetic_batches, tiny_overrides)

ENTRIES = mibzoo.list_models()


def test_zoo_covers_every_row_of_table2():
    assert {"vae", "gan", "infogan", "beta_vae", "beta_tcvae", "jmvae", "mvae", "wyner_vae", "mib_mm"} <= set(ENTRIES)


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_fits_with_finite_terms_and_round_trips(entry, tmp_path):
    model, arrays = run_model_test(entry)
    run_saving_test(model, arrays, tmp_path)


@pytest.mark.parametrize("entry", ENTRIES)
def test_entry_loss_falls_on_a_learnable_problem(entry):
    """The loss falls; for entries whose loss is an ELBO plus divergences that vanish when the
    modalities agree (vae, jmvae, mvae, wyner_vae, mib_mm, ...) it falls below the loss of the best
    model that ignores its latents (`collapse_floor`), which a collapsed model cannot reach."""
    keras.utils.set_random_seed(0)
    model = mibzoo.load(entry, **tiny_overrides(entry))
    if any(t.name.startswith("mi_zu_") for _, t, _ in model.loss_terms):
        # The fairness entries' I(z; u_x) penalty (Eq. 17) cannot vanish here, where x determines the
        # class and the class is the second modality: u_x must depend on z. Their other terms must
        # still learn; the penalty itself is checked in tests/test_fair_zoo.py.
        model = mibzoo.load(entry, **tiny_overrides(entry), beta2=0.0)
    if any(t.name == "irm" for _, t, _ in model.loss_terms):
        # IRM's penalty (weight gamma, 30,000 after its annealing steps) measures how p(y | z) differs
        # between environments; here every label, the environment included, is the class, so it
        # cannot vanish. The rest must learn; the penalty is checked in tests/test_ood.py.
        model = mibzoo.load(entry, **tiny_overrides(entry), gamma=0.0)
    if is_adversarial(model) and not model.has_inference:
        pytest.skip(f"{entry} is trained adversarially: its loss is a minimax value that need not fall; "
                    "tests/test_adversarial_zoo.py checks that it learns")
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    arrays = synthetic_batches(model.modality_specs, n=512, seed=1, flip=0.02)
    before = model.evaluate(dataset(arrays, 128), verbose=0, return_dict=True)["loss"]
    # The same number of network updates for every entry: Algorithm 1 spends the other steps
    # of its cycle on structure (or critic) updates.
    cycle = sum(p["steps"] for p in model.phases)
    dist = sum(p["steps"] for p in model.phases if p["name"] == "dist")
    model.fit(dataset(arrays, 32).repeat(), steps_per_epoch=60 * cycle // dist, epochs=1, verbose=0)
    after = model.evaluate(dataset(arrays, 128), verbose=0, return_dict=True)["loss"]
    # Entries with the cross_generation term (wyner_vae, mib_mm) also pay for generating each
    # modality from the others, which falls more slowly: measured 21.3 -> 16.2 for mib_mm on 10%
    # flips, so their bar is a 20% fall instead of 25% (the collapse floor below is the real bar).
    bar = 0.8 if any(t.name == "cross_generation" for _, t, _ in model.loss_terms) else 0.75
    assert after < bar * before, f"{entry}: loss {before:.2f} -> {after:.2f} did not fall clearly"
    # Terms whose value is a likelihood (bounded below by the marginal entropies when the latents
    # are ignored) or a divergence that a model using its latents drives towards 0. Entries with
    # terms that pull q(z) to the prior on purpose (β-VAE, TC, ...) may legitimately stay above.
    elbo_like = {"C0", "C1", "C4", "marginal", "cross", "private", "cross_generation"}
    # (Learned structures are left out: relaxed masks slow learning beyond this test's budget.)
    if model.has_inference and {t.name for _, t, _ in model.loss_terms} <= elbo_like \
            and not model.structure_masks.learned:
        model.fit(dataset(arrays, 32).repeat(), steps_per_epoch=240 * cycle // dist, epochs=1, verbose=0)
        after = model.evaluate(dataset(arrays, 128), verbose=0, return_dict=True)["loss"]
        floor = collapse_floor(model, arrays)
        assert after < floor - 1.0, (f"{entry}: loss {after:.2f} is not below {floor:.2f} - 1 nat, the loss of "
                                     "a model that ignores its latents")


@pytest.mark.parametrize("entry", ENTRIES)
def test_every_entry_builds_with_its_default_modalities(entry):
    import mibzoo.data

    model = mibzoo.load(entry)
    default = mibzoo.describe(entry)["model"]["modalities"]
    assert model.modality_names == list(default)
    # A dataset's modalities: MNIST or MNIST-Label (issue 2), Adult for the fairness entries (issue 11),
    # Colored-MNIST for the out-of-distribution entries (issue 12).
    def plain(modalities):
        return {n: {k: v for k, v in spec.items() if k != "description"} for n, spec in modalities.items()}

    assert any(plain(default) == plain(mibzoo.data.info(name).modalities)
               for name in ("mnist", "mnist_label", "adult", "colored_mnist")), entry


def test_default_wyner_vae_runs_on_mnist_label_shaped_images(rng):
    model = mibzoo.load("wyner_vae")
    x = (rng.random((4, 28, 28, 1)) > 0.5).astype("float32")
    labels = model.generate({"image": x}, target="label", num_samples=3, seed=0)
    assert labels.shape == (3, 4, 10)
    np.testing.assert_allclose(np.asarray(labels).sum(-1), 1.0, rtol=1e-5)
    joint = model.sample(5, seed=0)
    assert joint["image"].shape == (5, 28, 28, 1) and joint["label"].shape == (5, 10)


def test_seeded_generation_is_reproducible_and_unseeded_is_fresh(rng):
    model = mibzoo.load("wyner_vae", **tiny_overrides("wyner_vae"))
    x = synthetic_batches(model.modality_specs, n=4)["x"]
    a = model.generate({"x": x}, target="y", num_samples=2, seed=3, mode="sample")
    b = model.generate({"x": x}, target="y", num_samples=2, seed=3, mode="sample")
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    c = model.sample(64, seed=None)["x"]
    d = model.sample(64, seed=None)["x"]
    assert not np.allclose(np.asarray(c), np.asarray(d))


def test_unknown_entry_suggests_the_closest_name():
    with pytest.raises(ValueError, match=r"unknown zoo entry 'wynervae'.*Did you mean 'wyner_vae'.*mib_mm"):
        mibzoo.load("wynervae")


@pytest.mark.parametrize("entry", ["vae", "jmvae", "mvae"])
def test_posterior_carries_the_class_after_training(entry):
    """No posterior collapse: on a problem whose only content is a class, q(z|x) must be far from
    the prior and its mean must separate the classes (nearest class-mean accuracy)."""
    keras.utils.set_random_seed(0)
    model = mibzoo.load(entry, **tiny_overrides(entry))
    model.compile(optimizer=keras.optimizers.Adam(3e-3))
    arrays = synthetic_batches(model.modality_specs, n=1024, seed=2)
    model.fit(dataset(arrays, 64).repeat(), steps_per_epoch=150, epochs=1, verbose=0)
    post = model.encode({k: v for k, v in arrays.items() if k in model.modality_specs})
    loc, logvar = np.asarray(post["loc"]), np.asarray(post["logvar"])
    rate = np.mean(0.5 * np.sum(np.exp(logvar) + loc ** 2 - 1 - logvar, axis=-1))  # KL(q(z|x) ‖ p(z))
    means = np.stack([loc[arrays["class"] == c].mean(0) for c in range(4)])
    predicted = np.argmin(((loc[:, None] - means[None]) ** 2).sum(-1), axis=1)
    accuracy = np.mean(predicted == arrays["class"])
    assert rate > 0.5 * np.log(4), f"{entry}: KL(q(z|x) ‖ p(z)) = {rate:.2f} nats, less than half the class's log 4"
    assert accuracy > 0.9, f"{entry}: posterior means separate the classes with accuracy {accuracy:.2f} only"

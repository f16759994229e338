"""Loss terms against independent computations and the Table 2 identities."""
import numpy as np
import pytest

import mibzoo
from mibzoo import objectives
from mibzoo.estimators.aggregate import aggregate_kl_to_prior
from tests.model_test_case import TINY_LABEL, TINY_SHARED, TINY_VECTOR, synthetic_batches

SINGLE = {"x": dict(TINY_VECTOR)}
PAIR = {"x": dict(TINY_VECTOR), "y": dict(TINY_LABEL)}


def forward_pass(model, arrays, seed=7):
    x, present = model._prepare({k: v for k, v in arrays.items() if k in model.modality_specs}, strict=True)
    return model.forward(x, present, training=False, seed=seed)


def numpy_kl_to_standard_normal(loc, logvar):
    return 0.5 * np.sum(np.exp(logvar) + loc ** 2 - 1 - logvar, axis=-1)


def test_beta_vae_with_beta_one_equals_vae():
    vae = mibzoo.load("vae", modalities=SINGLE, shared=TINY_SHARED)
    beta = mibzoo.load("beta_vae", modalities=SINGLE, shared=TINY_SHARED, beta=1.0)
    beta.set_weights(vae.get_weights())
    arrays = synthetic_batches(SINGLE, n=32)
    _, vae_totals = vae.compute_terms(forward_pass(vae, arrays))
    _, beta_totals = beta.compute_terms(forward_pass(beta, arrays))
    np.testing.assert_allclose(float(beta_totals["loss"]), float(vae_totals["loss"]), rtol=1e-6)


def numpy_aggregate_kl(z, loc, logvar):
    """Minibatch estimate of KL(q(z) ‖ p(z)): mean over the batch of log (1/B Σ_j q(z_i|x_j)) − log p(z_i)."""
    def log_normal(v, m, lv):
        return -0.5 * (np.log(2 * np.pi) + lv + (v - m) ** 2 / np.exp(lv))

    pairwise = log_normal(z[:, None], loc[None], logvar[None]).sum(-1)
    top = pairwise.max(axis=1, keepdims=True)
    log_q = top[:, 0] + np.log(np.mean(np.exp(pairwise - top), axis=1))
    return float(np.mean(log_q - log_normal(z, 0.0, 0.0).sum(-1)))


@pytest.mark.parametrize("beta", [1.0, 4.0, 2.5])
def test_beta_vae_table2_row_is_reconstruction_plus_beta_kl(beta):
    """C1 + (β−1)C3 + (β−1)D(q‖G∅) = reconstruction + β·KL(q(z|x) ‖ p(z)), KL computed in NumPy;
    and each term on its own: C3 the minibatch aggregate KL, D(q‖G∅) the mean KL minus C3."""
    model = mibzoo.load("beta_vae", modalities=SINGLE, shared=TINY_SHARED, beta=beta)
    arrays = synthetic_batches(SINGLE, n=32)
    fp = forward_pass(model, arrays)
    terms, totals = model.compute_terms(fp)
    loc, logvar = (np.asarray(t) for t in fp.posterior())
    reconstruction = float(np.mean(np.asarray(fp.negative_log_likelihood("x"))))
    kl = float(np.mean(numpy_kl_to_standard_normal(loc, logvar)))
    np.testing.assert_allclose(float(totals["loss"]), reconstruction + beta * kl, rtol=1e-5)
    c3 = numpy_aggregate_kl(np.asarray(fp.z()), loc, logvar)
    np.testing.assert_allclose(float(objectives.TERMS["C3"].fn(fp)), c3, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(float(terms["C1"]), reconstruction + kl, rtol=1e-5)
    if beta != 1.0:
        np.testing.assert_allclose(float(terms["C3"]), (beta - 1) * c3, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(float(terms["independence"]), (beta - 1) * (kl - c3), rtol=1e-4, atol=1e-5)


def test_beta_below_one_is_rejected_because_eq8_needs_non_negative_weights():
    with pytest.raises(ValueError, match=r"dist\[1\]\[0\].*-0.5.*non-negative"):
        mibzoo.load("beta_vae", modalities=SINGLE, shared=TINY_SHARED, beta=0.5)


def test_aggregate_kl_matches_numpy(rng):
    z, loc = rng.normal(size=(2, 16, 3)).astype("float32")
    logvar = rng.uniform(-1, 0.5, size=(16, 3)).astype("float32")
    got = float(aggregate_kl_to_prior(z, loc, logvar, np.zeros(3, "float32"), np.zeros(3, "float32")))

    def log_normal(v, m, lv):
        return -0.5 * (np.log(2 * np.pi) + lv + (v - m) ** 2 / np.exp(lv))

    pairwise = log_normal(z[:, None], loc[None], logvar[None]).sum(-1)
    log_q = np.log(np.mean(np.exp(pairwise), axis=1))
    log_p = log_normal(z, 0.0, 0.0).sum(-1)
    np.testing.assert_allclose(got, np.mean(log_q - log_p), rtol=1e-4)


def test_cross_term_is_kl_between_joint_and_single_modality_posteriors():
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, beta=2.5)
    arrays = synthetic_batches(PAIR, n=16)
    fp = forward_pass(model, arrays)
    terms, _ = model.compute_terms(fp)
    joint = [np.asarray(t) for t in fp.posterior()]
    want = 0.0
    for i in range(2):
        single = [np.asarray(t) for t in fp.posterior(i)]
        vq, vi = np.exp(joint[1]), np.exp(single[1])
        kl = 0.5 * np.sum(vq / vi + (joint[0] - single[0]) ** 2 / vi - 1 + np.log(vi / vq), axis=-1)
        want += 2.5 * np.mean(kl)
    np.testing.assert_allclose(float(terms["cross"]), want, rtol=1e-5)


def test_mib_mm_loss_is_lx_plus_lu_plus_lz_of_eq16():
    """L_x + L_u + Σ_{i=0..N} KL(q(z|x) ‖ q(z|x_i)) with q(z|x_0) = p(z) (Sec. 4.2, Eq. 16): the
    entry with its structural term reduced to the KL bound of the paper."""
    model = mibzoo.load("mib_mm", modalities=PAIR, shared=TINY_SHARED, private=2, str_reg=[["beta", "cross"]])
    arrays = synthetic_batches(PAIR, n=16)
    fp = forward_pass(model, arrays)
    _, totals = model.compute_terms(fp)
    l_x = sum(np.mean(np.asarray(fp.negative_log_likelihood(n))) for n in ("x", "y"))
    # L_u from the encoders' raw outputs, in NumPy: KL(q(u_i | x_i) ‖ N(0, I)) with the clipped log-variance.
    l_u = 0.0
    for n in ("x", "y"):
        _, _, u_loc, u_logvar = (np.asarray(t) for t in fp.encoder_outputs()[n])
        l_u += np.mean(numpy_kl_to_standard_normal(u_loc, np.clip(u_logvar, -12.0, 8.0)))
    loc, logvar = (np.asarray(t) for t in fp.posterior())
    l_z = np.mean(numpy_kl_to_standard_normal(loc, logvar))
    for i in range(2):
        li, lvi = (np.asarray(t) for t in fp.posterior(i))
        l_z += np.mean(0.5 * np.sum(np.exp(logvar - lvi) + (loc - li) ** 2 / np.exp(lvi) - 1 - logvar + lvi, -1))
    np.testing.assert_allclose(float(totals["loss"]), l_x + l_u + l_z, rtol=1e-5)


def test_marginal_term_is_single_modality_negative_elbo():
    model = mibzoo.load("mvae", modalities=PAIR, shared=TINY_SHARED)
    arrays = synthetic_batches(PAIR, n=16)
    fp = forward_pass(model, arrays)
    values = np.asarray(objectives.TERMS["marginal"].fn(fp))
    for i, name in enumerate(("x", "y")):
        loc, logvar = (np.asarray(t) for t in fp.posterior(i))
        nll = np.asarray(fp.negative_log_likelihood(name, i))
        np.testing.assert_allclose(values[i], np.mean(nll + numpy_kl_to_standard_normal(loc, logvar)), rtol=1e-5)


def test_mvae_default_is_c1_plus_marginal_elbos_plus_cross_generation():
    """The `mvae` entry since issue 10's thirteenth session: MVAE's C1 + β Σ_i marginal ELBOs, plus
    `cross_generation` (the label's 4β as in jmvae; the images' 2β, as mib_mm's, since the fourteenth
    session); each term against NumPy at zero noise, the cross term's z at the mean of the other
    modality's q(z | x_j)."""
    model = mibzoo.load("mvae", modalities=PAIR, shared=TINY_SHARED, beta=1.5)
    arrays = synthetic_batches(PAIR, n=16)
    fp = zero_noise_pass(model, arrays)
    cross = []
    for name, other in (("x", 1), ("y", 0)):
        loc = np.asarray(fp.posterior(other)[0])
        cross.append(np.mean(numpy_nll(name, model.decode_modality(name, loc), arrays)))
    numpy_cross = 2 * 1.5 * cross[0] + 4 * 1.5 * cross[1]  # the images' 2β, the label's 4β
    terms, totals = model.compute_terms(fp)
    np.testing.assert_allclose(float(terms["cross_generation"]), numpy_cross, rtol=1e-4)
    marginal = np.asarray(objectives.TERMS["marginal"].fn(fp)).sum()
    want = float(terms["C1"]) + 1.5 * marginal + numpy_cross
    np.testing.assert_allclose(float(totals["loss"]), want, rtol=1e-4)


def test_per_modality_weights_select_modalities():
    model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED, str_reg=[[{"x": 1.0}, "cross"]])
    fp = forward_pass(model, synthetic_batches(PAIR, n=16))
    terms, _ = model.compute_terms(fp)
    values = np.asarray(objectives.TERMS["cross"].fn(fp))
    np.testing.assert_allclose(float(terms["cross"]), values[0], rtol=1e-6)


def test_cross_generation_is_the_likelihood_of_each_modality_generated_from_the_others():
    """β Σ_i −log p(x_i | z, u_i), z ~ q(z | x_{\\i}), u_i ~ p(u_i), in NumPy with zero noise (z at the
    mean of q(z | x_j), u_i = 0); the default mib_mm loss is Eq. 16 plus this term (the label's ×4, the
    image's ×1.5)."""
    model = mibzoo.load("mib_mm", modalities=PAIR, shared=TINY_SHARED, private=2, beta=1.5)
    arrays = synthetic_batches(PAIR, n=16)
    fp = zero_noise_pass(model, arrays)
    mask_p = fp.mask_p
    values = np.asarray(objectives.TERMS["cross_generation"].fn(fp))
    gate = np.asarray(mask_p)[:, 0]
    for i, (name, other) in enumerate((("x", 1), ("y", 0))):
        loc = np.asarray(fp.posterior(other)[0])  # two modalities: x_{\\i} is the other one
        latent = np.concatenate([loc * gate[i], np.zeros((16, 2), "float32")], axis=-1)
        params = np.asarray(model.decode_modality(name, latent), "float64")
        if name == "x":
            nll = np.sum(np.logaddexp(0, params) - arrays["x"] * params, axis=-1)
        else:
            nll = -(params - np.log(np.exp(params).sum(-1, keepdims=True)))[np.arange(16), arrays["y"]]
        np.testing.assert_allclose(values[i], np.mean(nll), rtol=1e-4)
    terms, totals = model.compute_terms(fp)
    # mib_mm weighs the label's cross-generation 4 β and every other modality's 1.5 β (keyed by kind and "*")
    weighted = 1.5 * 1.5 * values[0] + 4 * 1.5 * values[1]
    np.testing.assert_allclose(float(terms["cross_generation"]), weighted, rtol=1e-5)
    np.testing.assert_allclose(float(totals["loss"]), float(terms["C0"]) + float(terms["cross"]) + weighted, rtol=1e-5)


def test_cross_generation_shuffled_private_latents_come_from_the_previous_rows_posterior():
    """Option ``private: "shuffled"``: u_i is q(u_i | x_i) of the previous row (cyclically), in NumPy
    with zero noise (u at that row's posterior mean), and a prior draw (0 here) where that row lacks
    x_i; z ~ q(z | x_{\\i}) as with prior draws. With every u_i at 0 (``private: "prior"``) the two
    differ."""
    options = {"cross_generation": {"private": "shuffled"}}
    model = mibzoo.load("mib_mm", modalities=PAIR, shared=TINY_SHARED, private=2, term_options=options)
    arrays = synthetic_batches(PAIR, n=16)
    present = {"x": np.ones(16, "float32"), "y": np.ones(16, "float32")}
    present["x"][[3, 15]] = 0.0  # rows 4 and 0 then draw u_x from the prior
    noise = lambda shape: np.zeros(shape, "float32")  # noqa: E731
    fp = model.forward_pass({k: v for k, v in arrays.items() if k in PAIR}, present, seed=noise)
    values = np.asarray(objectives.TERMS["cross_generation"].fn(fp))
    gate = np.asarray(fp.mask_p)[:, 0]
    for i, (name, other) in enumerate((("x", 1), ("y", 0))):
        loc = np.asarray(fp.posterior(other)[0])
        private_loc = np.asarray(fp.encoder_outputs()[name][2])
        previous = np.roll(np.arange(16), 1)
        u = np.where(present[name][previous][:, None] > 0, private_loc[previous], 0.0)
        latent = np.concatenate([loc * gate[i], u], axis=-1).astype("float32")
        nll = numpy_nll(name, model.decode_modality(name, latent), arrays) * present[name]
        np.testing.assert_allclose(values[i], np.mean(nll), rtol=1e-4)
    prior = mibzoo.load("mib_mm", modalities=PAIR, shared=TINY_SHARED, private=2)
    prior.set_weights(model.get_weights())
    prior_fp = prior.forward_pass({k: v for k, v in arrays.items() if k in PAIR}, present, seed=noise)
    assert np.abs(np.asarray(objectives.TERMS["cross_generation"].fn(prior_fp)) - values).max() > 1e-3


def test_cross_generation_shuffled_is_prior_draws_without_private_latents():
    """A model without private latents (jmvae) has nothing to shuffle: both options give one value."""
    arrays = synthetic_batches(PAIR, n=16)
    values = []
    for private in ("prior", "shuffled"):
        model = mibzoo.load("jmvae", modalities=PAIR, shared=TINY_SHARED,
                            term_options={"cross_generation": {"private": private}})
        if values:
            model.set_weights(weights)
        weights = model.get_weights()
        values.append(np.asarray(objectives.TERMS["cross_generation"].fn(zero_noise_pass(model, arrays))))
    np.testing.assert_allclose(values[0], values[1], rtol=1e-6)


def test_cross_generation_private_option_is_validated():
    from mibzoo.errors import ConfigError

    with pytest.raises(ConfigError, match=r"term_options.cross_generation.private.*one of \['prior', 'shuffled'\]"):
        mibzoo.load("mib_mm", modalities=PAIR, shared=TINY_SHARED, term_options={"cross_generation": {"private": "own"}})


def numpy_nll(name, params, arrays):
    """−log p(x | params) in NumPy for the tiny pair: Bernoulli logits for x, a categorical for y."""
    params = np.asarray(params, "float64")
    if name == "x":
        return np.sum(np.logaddexp(0, params) - arrays["x"] * params, axis=-1)
    log_softmax = params - np.log(np.exp(params).sum(-1, keepdims=True))
    return -log_softmax[np.arange(len(params)), arrays["y"]]


def numpy_gaussian_kl(loc, logvar, loc2, logvar2):
    return 0.5 * np.sum(np.exp(logvar - logvar2) + (loc - loc2) ** 2 / np.exp(logvar2) - 1 - logvar + logvar2, -1)


def zero_noise_pass(model, arrays):
    return model.forward_pass({k: v for k, v in arrays.items() if k in PAIR}, seed=lambda shape: np.zeros(shape, "float32"))


@pytest.mark.parametrize("alpha,beta", [(0.9, 1.0), (0.3, 2.5)])
def test_mvtcae_loss_is_reconstruction_plus_its_weighted_kls_plus_cross_generation(alpha, beta):
    """Hwang et al. 2021, Eq. 9: Σ_i −log p(x_i | z) + β((N − α)/N KL(q(z|X) ‖ p(z))
    + α/N Σ_i KL(q(z|X) ‖ q(z|x_i))), N = 2, with the label likelihood weighted ×3; plus the zoo's
    addition, the X_i-part of the same cross divergence: β_i · −log p(x_i | z), z ~ q(z | x_{\\i}),
    β_i = 4β for the label and β otherwise (times its likelihood weight)."""
    model = mibzoo.load("mvtcae", modalities=PAIR, shared=TINY_SHARED, alpha=alpha, beta=beta,
                        likelihood_weights={"y": 3.0})
    arrays = synthetic_batches(PAIR, n=16)
    fp = zero_noise_pass(model, arrays)
    _, totals = model.compute_terms(fp)
    loc, logvar = (np.asarray(t) for t in fp.posterior())
    recon = 0.0
    for name, weight in (("x", 1.0), ("y", 3.0)):
        recon += weight * np.mean(numpy_nll(name, model.decode_modality(name, loc), arrays))
    joint_kl = np.mean(numpy_kl_to_standard_normal(loc, logvar))
    cross_kls = sum(np.mean(numpy_gaussian_kl(loc, logvar, *(np.asarray(t) for t in fp.posterior(i)))) for i in range(2))
    want = recon + beta * ((2 - alpha) / 2 * joint_kl + alpha / 2 * cross_kls)
    # at zero noise z ~ q(z | x_{\i}) is the mean of the other modality's q(z | x_j) (N = 2)
    cross_generation = sum(weight * np.mean(numpy_nll(name, model.decode_modality(name, np.asarray(fp.posterior(j)[0])),
                                                      arrays))
                           for name, j, weight in (("x", 1, beta), ("y", 0, 4 * beta * 3.0)))
    np.testing.assert_allclose(float(totals["loss"]), want + cross_generation, rtol=1e-5)


def test_dmvae_loss_is_the_joint_elbo_plus_every_unimodal_elbo_over_all_modalities():
    """Lee & Pavlovic 2021: −ELBO(x, y; q(z | x, y)) + Σ_j −ELBO(x, y; q(z | x_j)), every
    reconstruction with the modality's own private latent, in NumPy at zero noise (z and u at
    their posterior means), the label likelihood weighted ×3; the zoo weighs the cross
    reconstructions of the unimodal ELBOs (x_i decoded from z ~ q(z | x_j), i ≠ j) ×2
    (docs/results.md section 12), so they count twice here."""
    model = mibzoo.load("dmvae", modalities=PAIR, shared=TINY_SHARED, private=2, likelihood_weights={"y": 3.0})
    arrays = synthetic_batches(PAIR, n=16)
    fp = zero_noise_pass(model, arrays)
    _, totals = model.compute_terms(fp)
    outputs = {n: [np.asarray(t) for t in fp.encoder_outputs()[n]] for n in ("x", "y")}
    u = {n: outputs[n][2] for n in ("x", "y")}
    u_kl = sum(np.mean(numpy_kl_to_standard_normal(outputs[n][2], np.clip(outputs[n][3], -12.0, 8.0))) for n in u)

    def negative_elbo(loc, logvar, source=None):
        recon = sum(weight * (1.0 if source in (None, k) else 2.0)
                    * np.mean(numpy_nll(n, model.decode_modality(n, np.concatenate([loc, u[n]], -1)), arrays))
                    for k, (n, weight) in enumerate((("x", 1.0), ("y", 3.0))))
        return recon + np.mean(numpy_kl_to_standard_normal(loc, logvar)) + u_kl

    want = negative_elbo(*(np.asarray(t) for t in fp.posterior()))
    want += sum(negative_elbo(*(np.asarray(t) for t in fp.posterior(j)), source=j) for j in range(2))
    np.testing.assert_allclose(float(totals["loss"]), want, rtol=1e-5)

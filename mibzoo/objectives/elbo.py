"""Terms computed from the forward pass in closed form or by sampling: Table 1's C0, C1, C3, the
single-modality and stratified ELBOs, and the structural regularizers over G_informative, G_cross,
G_independent and the private latents (Eq. 8, 16)."""
from keras import ops

from mibzoo import inference
from mibzoo.estimators.aggregate import aggregate_kl_to_prior
from mibzoo.objectives.registry import TERMS, register_term


def _per_modality(fp, values_by_name):
    """Stacks per-modality ``[B]`` values into ``[N]`` batch means (absent modalities give 0)."""
    zeros = ops.zeros_like(fp.present[:, 0])
    return ops.stack([ops.mean(values_by_name(n) if n in fp.x else zeros) for n in fp.names])


def negative_elbo(fp):
    """``[B]``: −ELBO of the joint (Eq. 2), over every latent: Σ_i −log p(x_i|z,u_i) + KL_z + Σ_i KL_u_i.

    With ``likelihood_weights`` each −log p(x_i | ·) is weighted by w_i, and with a KL schedule the
    KLs by γ_t while training (`ForwardPass.distortion`, `ForwardPass.rate`)."""
    rate = fp.kl_to_prior()
    distortion = 0.0
    for name in fp.x:
        rate = rate + fp.private_kl(name)
        distortion = distortion + fp.distortion(name)
    return distortion + fp.rate(rate)


@register_term("C0", "cost")
def c0_joint_kl(fp):
    """C0 = D_KL(q(x,z,u) ‖ p(x,z,u)). Equals −ELBO minus the data entropy H(q(x)), a constant
    in the parameters, so it is estimated (and optimized) by the negative ELBO."""
    return ops.mean(negative_elbo(fp))


@register_term("C1", "cost")
def c1_negative_elbo(fp):
    """C1 = −L_ELBO(q(x,u), p(x,u)) (Table 1, Eq. 2), with the closed-form Gaussian KL."""
    return ops.mean(negative_elbo(fp))


@register_term("C3", "cost", needs_gaussian_posterior=True)
def c3_aggregate_kl(fp):
    """C3 = D_KL(q(z) ‖ p(z)) on the aggregate posterior, minibatch estimate
    (`mibzoo.estimators.aggregate`)."""
    loc, logvar = fp.posterior()
    return aggregate_kl_to_prior(fp.z(), loc, logvar, fp.model.prior_loc, fp.model.prior_logvar)


@register_term("mmvae", "cost")
def mmvae_stratified_elbo(fp):
    """MMVAE's objective (Shi et al. 2019, Eq. 4 with one sample per component): the negative
    stratified ELBO −Σ_k π_k [log p(x, z_k) − log q(z_k | X)], z_k a reparametrized sample of
    component k of q(z | X) = Σ_k π_k q_k(z | X). With ``"posterior": "moe"`` the components are
    the unimodal posteriors q(z | x_m) of the present modalities with π_m = 1/|S|, so this is
    (1/|S|) Σ_m E_{z ~ q(z|x_m)}[Σ_i log p(x_i | z) + log p(z) − log q(z | X)]: every modality is
    reconstructed from every modality's sample (cross-generation), and log q is the mixture's
    density. The likelihood weights apply to each log p(x_i | z), the KL schedule γ to the rate
    log q(z | X) − log p(z) (and to KL(q(u_i | x_i) ‖ p(u_i)) with private latents). The prior
    component of an example with no modality present (`mibzoo.aggregation`) contributes 0
    exactly (no likelihood, q = p), so it is not evaluated."""
    post = fp.aggregate()
    samples = ops.transpose(fp.component_z(), (1, 0, 2))  # [K, B, Dz]
    log_q = post.log_prob(samples)  # [K, B]
    log_p = ops.sum(inference.gaussian_log_density(samples, fp.model.prior_loc, fp.model.prior_logvar), axis=-1)
    private_rate = sum((fp.private_kl(name) for name in fp.x), ops.zeros_like(fp.present[:, 0]))
    total = ops.zeros_like(fp.present[:, 0])
    for k, subset in enumerate(post.subsets):
        if subset == ():
            continue
        distortion = sum((fp.model.likelihood_weights[fp.names.index(name)] * fp.component_negative_log_likelihood(name, k)
                          for name in fp.x), ops.zeros_like(total))
        total = total + post.weights[:, k] * (distortion + fp.rate(log_q[k] - log_p[k] + private_rate))
    return ops.mean(total)


def marginal_negative_elbo(fp):
    """``[N]``: per modality, −ELBO of x_i alone: −log p(x_i | z, u_i) with z ~ q(z|x_i),
    + KL(q(z|x_i) ‖ p(z)) + KL(q(u_i|x_i) ‖ p(u_i)) (likelihood weight and KL schedule as in
    `negative_elbo`)."""
    def one(name):
        i = fp.names.index(name)
        kl = fp.kl_to_prior(i) * fp.presence(name)
        return fp.distortion(name, i) + fp.rate(kl + fp.private_kl(name))
    return _per_modality(fp, one)


register_term(
    "C4", "cost", per_modality=True,
    description="C4(x_i, z) = D_KL(q(x_i, z) ‖ p(x_i, z)), estimated up to the constant H(q(x_i)) by "
                "the negative ELBO of x_i alone with q(z|x_i).")(marginal_negative_elbo)

register_term(
    "marginal", "regularizer", per_modality=True,
    description="D(q ‖ G^str_marginal(x_i)) (MVAE, Table 2): each single modality must be explained "
                "through Z alone, bounded by the single-modality negative ELBO with q(z|x_i) "
                "(Wu & Goodman 2018's sub-sampled ELBO terms).")(marginal_negative_elbo)


@register_term("likelihood", "cost", per_modality=True)
def likelihood(fp):
    """−E_q log p(x_i | z ⊙ m_i^p, u_i) for each modality alone: the reconstruction part of C1, so
    that a per-modality weight α_i (Eq. 8: a cost over corresponding samples) can make one
    modality's likelihood count more, as label likelihoods are up-weighted in multimodal VAEs
    (a binary attribute carries under log 2 nats and is otherwise cheaper to ignore). The model's
    ``likelihood_weights`` apply as in the ELBO (`ForwardPass.distortion`), so an entry keyed by
    modality kind keeps them when a data set renames its modalities."""
    return _per_modality(fp, fp.distortion)


@register_term("informative", "regularizer")
def informative(fp):
    """D(q ‖ G^str_informative), Eq. 17's β1 term: E KL(q(z | x^S) ‖ p(z)) of the shared latent
    (Sec. 5). With C1, which holds one KL(q(z | x, a) ‖ p(z)), the weight of the shared rate is
    (1 + β1) as Eq. 17 writes it."""
    return ops.mean(fp.kl_to_prior())


@register_term("independence", "regularizer", needs_gaussian_posterior=True)
def independence(fp):
    """D(q ‖ G^∅) for q(x, z): the multi-information I_q(X; Z), estimated through the identity
    E_x KL(q(z|x) ‖ p(z)) = I_q(X; Z) + KL(q(z) ‖ p(z)) (Hoffman & Johnson 2016) as
    mean KL(q(z|x) ‖ p(z)) − Ĉ3. With it, C1 + (β−1)C3 + (β−1)D(q‖G^∅) is exactly
    reconstruction + β·KL (the β-VAE row of Table 2)."""
    return ops.mean(fp.kl_to_prior()) - c3_aggregate_kl(fp)


@register_term("cross", "regularizer", per_modality=True)
def cross(fp):
    """D(q ‖ G^str_cross(x_i)) ≤ E KL(q(z | x) ‖ q(z | x_i)) (Sec. 4.2; the i ≥ 1 terms of L_z in
    Eq. 16): z inferred from x_i alone must match z inferred from all present modalities. Not
    warmed up: it is what trains q(z | x_i), which must keep pace with the joint posterior."""
    return _per_modality(fp, fp.kl_joint_to_single)


@register_term("cross_generation", "regularizer", per_modality=True, options={"private": ("prior", "shuffled")})
def cross_generation(fp):
    """The x-part of D(q ‖ G^str_cross(x_i)) (Sec. 3.5, 4.2): G_cross makes Z the only shared parent
    of X_i given the other modalities X_{\\i}, so D contains −I_q(X_i; Z) with z ~ q(z | x_{\\i}).
    Derived (appendix not available) with the Barber–Agakov bound −I_q(X_i; Z) ≤
    E[−log p(x_i | z ⊙ m_i^p, u_i)] − H(X_i), z ~ q(z | x_{\\i}), u_i ~ p(u_i) (U_i is independent
    of X_{\\i} in G_cross), dropping the constant H(X_i). Eq. 16's KL terms bound the Z-part; this
    one makes the content X_i shares with the others flow through Z rather than through U_i.
    Likelihood weights apply as in the ELBO.

    Option ``private`` (``term_options: {"cross_generation": {"private": ...}}``): where u_i comes
    from. ``"prior"`` (default): p(u_i). ``"shuffled"``: q(u_i | x_i') of another example of the batch,
    a draw from the aggregate posterior q(u_i), which is U_i's marginal under q (the distribution
    the M-projection onto G_cross keeps; `ForwardPass.cross_negative_log_likelihood`). A private latent
    that carries the shared content (the digit) then misleads the decoder here, so the decoder learns
    to read that content from z alone, also for the u_i it meets in reconstruction; with prior draws
    it only learns to do so near p(u_i), which the aggregate posterior can exceed."""
    private = TERMS["cross_generation"].option(fp.model.model_config, "private")
    return _per_modality(fp, lambda name: fp.distortion(name, cross=True, private=private))


@register_term("cross_reconstruction", "regularizer", per_modality=True)
def cross_reconstruction(fp):
    """Σ_{j≠i} −log p(x_i | z ⊙ m_i^p, u_i), z ~ q(z | x_j), u_i ~ q(u_i | x_i): each modality
    reconstructed from the shared latent inferred from every other single modality, with its own
    private latent. These are the cross parts of DMVAE's unimodal ELBOs (Lee & Pavlovic 2021,
    Eq. 5): with q(z | x_j) = G_marginal^q(x_j), each of them is the C1 cost of x_i under the
    inference network that sees x_j alone. (The self parts and KL(q(z | x_j) ‖ p(z)) are the
    `marginal` term.) Only pairs where both x_i and x_j are present count; likelihood weights apply."""
    def one(name):
        i = fp.names.index(name)
        terms = [fp.distortion(name, j) * fp.presence(source)
                 for j, source in enumerate(fp.names) if j != i and source in fp.x]
        return sum(terms[1:], terms[0]) if terms else ops.zeros_like(fp.present[:, 0])
    return _per_modality(fp, one)


@register_term("private", "regularizer", per_modality=True)
def private(fp):
    """D(q ‖ G^str_private(x_i)) ≤ I_q(X_i; U_i) ≤ E KL(q(u_i | x_i) ‖ p(u_i)). Derived (the appendix
    is not available): the M-projection onto a network in which U_i carries nothing beyond what
    is private to X_i is bounded by the rate of U_i, which pushes shared content into Z
    (Wyner VAE's succinct common representation). A rate: weighted by γ_t while training."""
    return fp.rate(_per_modality(fp, fp.private_kl))

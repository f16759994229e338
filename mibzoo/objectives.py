"""The loss terms of Eq. 8, registered by name: Table 1 costs (L_dist) and structural
regularizers D(q ‖ G^k) over named Bayesian networks (L_str_reg).

A zoo config lists ``[weight, name]`` pairs; the model evaluates each named term on a
`ForwardPass` and sums the weighted values. A term is *per-modality* when the Bayesian network
is indexed by a modality (G^str_cross(x_i), ...): it then returns one value per modality and
its weight may be a number (the same β_i for all i) or a ``{modality: β_i}`` dict.

Adding a model from the literature means adding a config file and, at most, registering a
new term here (or in a module that calls `register_term`), never copying the model.

Derivations the paper defers to its appendix (not available) are stated at each term.
"""
import dataclasses
from typing import Callable, Optional

import keras
import numpy as np
from keras import ops

from mibzoo import inference
from mibzoo.estimators import adversarial, infogan, mine
from mibzoo.estimators.mmd import hsic, mmd as mmd_estimate
from mibzoo.estimators import total_correlation as total_correlation_lib
from mibzoo.estimators.aggregate import aggregate_kl_to_prior
from mibzoo.estimators.critics import Discriminator, MovingAverageMINE
from mibzoo.modalities import event_shape
from mibzoo.networks import CodePredictor, DataCritic, ModalityDecoder, uses_dcgan


@dataclasses.dataclass(frozen=True)
class Term:
    """A named loss term.

    Attributes:
        name: the name used in zoo configs.
        kind: ``"cost"`` (an L_dist term, Table 1) or ``"regularizer"`` (an L_str_reg term).
        per_modality: whether `fn` returns one value per modality (``[N]``) instead of a scalar.
        fn: ``fn(forward_pass) -> tensor``.
        description: what the term is, with the paper's notation.
    """

    name: str
    kind: str
    per_modality: bool
    fn: Callable
    description: str
    needs_inference: bool = True
    critic: Optional[Callable] = None
    critic_loss: Optional[Callable] = None
    auxiliary: Optional[Callable] = None


TERMS = {}


def register_term(name, kind, per_modality=False, description="", needs_inference=True,
                  critic=None, critic_loss=None, auxiliary=None):
    """Decorator registering ``fn(forward_pass)`` as the term ``name``.

    Args:
        name: the name zoo configs use.
        kind: ``"cost"`` (L_dist) or ``"regularizer"`` (L_str_reg).
        per_modality: ``fn`` returns ``[N]`` values, one per modality.
        description: defaults to ``fn``'s docstring.
        needs_inference: whether the term uses q(z | x) (not allowed without an inference network).
        critic: ``critic(model) -> keras layer``: a network trained adversarially in the phase
            ``critic:<name>`` to minimize ``critic_loss(forward_pass)`` (Algorithm 1, generalized).
        critic_loss: the critic's loss, required with ``critic``.
        auxiliary: ``auxiliary(model) -> keras layer``: a network trained with the model's
            networks on the same loss (InfoGAN's Q); with ``term_options: {name: {"shares_critic": c}}``
            it reads critic ``c``'s features and is trained in phase ``critic:c`` instead, on the
            critic's loss plus this term (`MIBModel.critic_objective`).
    """
    if kind not in ("cost", "regularizer"):
        raise ValueError(f"register_term({name!r}): kind must be 'cost' or 'regularizer', got {kind!r}")
    if (critic is None) != (critic_loss is None):
        raise ValueError(f"register_term({name!r}): critic and critic_loss go together")

    def decorate(fn):
        if name in TERMS:
            raise ValueError(f"register_term: a term named {name!r} is already registered")
        TERMS[name] = Term(name, kind, per_modality, fn, description or (fn.__doc__ or "").strip(),
                           needs_inference, critic, critic_loss, auxiliary)
        return fn

    return decorate


def get_term(name):
    if name not in TERMS:
        raise KeyError(name)
    return TERMS[name]


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


@register_term("C3", "cost")
def c3_aggregate_kl(fp):
    """C3 = D_KL(q(z) ‖ p(z)) on the aggregate posterior, minibatch estimate
    (`mibzoo.estimators.aggregate`)."""
    loc, logvar = fp.posterior()
    return aggregate_kl_to_prior(fp.z(), loc, logvar, fp.model.prior_loc, fp.model.prior_logvar)


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


@register_term("independence", "regularizer")
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


@register_term("cross_generation", "regularizer", per_modality=True)
def cross_generation(fp):
    """The x-part of D(q ‖ G^str_cross(x_i)) (Sec. 3.5, 4.2): G_cross makes Z the only shared parent
    of X_i given the other modalities X_{\\i}, so D contains −I_q(X_i; Z) with z ~ q(z | x_{\\i}).
    Derived (appendix not available) with the Barber–Agakov bound −I_q(X_i; Z) ≤
    E[−log p(x_i | z ⊙ m_i^p, u_i)] − H(X_i), z ~ q(z | x_{\\i}), u_i ~ p(u_i) (U_i is independent
    of X_{\\i} in G_cross), dropping the constant H(X_i). Eq. 16's KL terms bound the Z-part; this
    one makes the content X_i shares with the others flow through Z rather than through U_i.
    Likelihood weights apply as in the ELBO."""
    return _per_modality(fp, lambda name: fp.distortion(name, cross=True))


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


# ----- terms estimated with critics, auxiliary networks or minibatch estimators (issue 4) -------

def _data_size(model):
    return sum(int(np.prod(event_shape(spec))) for spec in model.modality_specs.values())


def _built(layer, input_shape):
    layer.build(input_shape)
    return layer


# InfoGAN's MNIST networks (Chen et al. 2016, Appendix C.1): D's last hidden layer has 1024 units,
# Q adds a 128-unit layer to D's features.
DCGAN_DISCRIMINATOR_HIDDEN = 256
DCGAN_CODE_PREDICTOR_HIDDEN = 128


def _data_discriminator(model):
    """C2's discriminator on the joint x: convolutional (`DataCritic`) when a modality selects the
    DCGAN networks, else an MLP on the flattened x."""
    if uses_dcgan(model.network_specs):
        critic = DataCritic(model.network_specs, 1, hidden=DCGAN_DISCRIMINATOR_HIDDEN, name="critic_C2")
    else:
        critic = Discriminator(name="critic_C2")
    return _built(critic, (None, _data_size(model)))


def _c2_critic_loss(fp):
    real = fp.critic("C2")(fp.data_vector(fp.x), training=fp.training)
    fake = fp.critic("C2")(ops.stop_gradient(fp.data_vector(fp.generated())), training=fp.training)
    return adversarial.discriminator_loss(real, fake)


@register_term("C2", "cost", needs_inference=False, critic=_data_discriminator, critic_loss=_c2_critic_loss)
def c2_jensen_shannon(fp):
    """C2 = D_JS(q(x) ‖ p(x)) through a discriminator (Goodfellow et al. 2014): the generator
    minimizes the non-saturating loss −log D(G(z)) on the joint x of every modality, the
    discriminator (phase ``critic:C2``) the usual cross-entropy."""
    return adversarial.generator_loss(fp.critic("C2")(fp.data_vector(fp.generated()), training=fp.training))


def _prior_draw(fp):
    z, _ = fp.prior_latents()
    return z


@register_term("C3_mmd", "cost")
def c3_mmd(fp):
    """C3 through MMD(q(z), p(z)) with an inverse-multiquadric kernel (Tolstikhin et al. 2018;
    Zhao et al. 2019): a sample-based alternative to the KL of C3, zero iff q(z) = p(z)."""
    return mmd_estimate(fp.z(), _prior_draw(fp), kernel="imq", scales=(1.0,))


def _latent_discriminator(name):
    def factory(model):
        return _built(Discriminator(name=f"critic_{name}"), (None, model.shared_size))
    return factory


def _c3_density_ratio_critic_loss(fp):
    critic = fp.critic("C3_density_ratio")
    return adversarial.discriminator_loss(critic(ops.stop_gradient(fp.z())), critic(_prior_draw(fp)))


@register_term("C3_density_ratio", "cost", critic=_latent_discriminator("C3_density_ratio"),
               critic_loss=_c3_density_ratio_critic_loss)
def c3_density_ratio(fp):
    """C3 = KL(q(z) ‖ p(z)) ≈ E_q(z)[D(z)], with D the logit of a classifier of q(z) samples
    against p(z) samples (the density-ratio trick, Sugiyama et al. 2012; as in AAE/FactorVAE)."""
    return ops.mean(fp.critic("C3_density_ratio")(fp.z()))


@register_term("tc", "regularizer")
def total_correlation(fp):
    """D(q ‖ G^p) for q(z): the total correlation KL(q(z) ‖ Π_d q(z_d)) of the aggregate
    posterior (β-TCVAE, Chen et al. 2018), minibatch-weighted-sampling estimate. A
    ``dataset_size`` hyperparameter switches to Chen et al.'s exact MWS weights (which add the
    constant (D−1)·log N to the value, not to the gradient)."""
    loc, logvar = fp.posterior()
    size = fp.model.model_config["hyperparameters"].get("dataset_size")
    return total_correlation_lib.total_correlation_mws(fp.z(), loc, logvar, dataset_size=size)


def _tc_critic_loss(fp):
    critic = fp.critic("tc_discriminator")
    z = ops.stop_gradient(fp.z())
    permuted = total_correlation_lib.permute_dims(z, seed=fp.model.seed_generator)
    return total_correlation_lib.density_ratio_discriminator_loss(critic(z), critic(permuted))


@register_term("tc_discriminator", "regularizer", critic=_latent_discriminator("tc_discriminator"),
               critic_loss=_tc_critic_loss)
def total_correlation_discriminator(fp):
    """D(q ‖ G^p) as FactorVAE estimates it (Kim & Mnih 2018): TC ≈ E_q(z)[D(z)], D the logit of a
    classifier of q(z) samples against samples with each dimension permuted across the batch."""
    return total_correlation_lib.tc_discriminator_estimate(fp.critic("tc_discriminator")(fp.z()))


def _code_layout(model):
    """``[(block, start, end, kind)]`` for every code block of the shared latent vector."""
    layout, start = [], 0
    for block in model.model_config["shared"]:
        if block["code"]:
            layout.append((block["name"], start, start + block["size"], block["prior"]))
        start += block["size"]
    return layout


def shared_critic_features(fp, term, values):
    """What the auxiliary of ``term`` reads on the samples ``values`` (a dict of modalities): the
    last hidden layer of the critic named by ``term_options[term]["shares_critic"]``, else the
    flattened joint x (`ForwardPass.data_vector`)."""
    x = fp.data_vector(values)
    shared = fp.model.shared_critics.get(term)
    return x if shared is None else fp.critic(shared).features(x, training=fp.training)


def _code_predictor(model):
    layout = _code_layout(model)
    if not layout:
        raise ValueError(f"{model.name}: the 'infogan' term needs at least one shared block with "
                         "\"code\": true (the latent code c of G^InfoGAN)")
    size = sum((e - s) if kind == "categorical" else 2 * (e - s) for _, s, e, kind in layout)
    shared = model.shared_critics.get("infogan")
    if shared is not None:
        # InfoGAN's Q (Chen et al. 2016, App. C.1): one dense layer and the code heads on the
        # discriminator's last hidden layer.
        critic = model.critics[shared]
        if not hasattr(critic, "features"):
            raise ValueError(f"{model.name}: term_options.infogan.shares_critic names {shared!r}, whose critic "
                             f"{type(critic).__name__} has no features() to share")
        return _built(CodePredictor(critic.features_size, size, hidden=DCGAN_CODE_PREDICTOR_HIDDEN, layers=1,
                                    activation="leaky_relu", name="auxiliary_infogan"),
                      (None, critic.features_size))
    if uses_dcgan(model.network_specs):
        predictor = DataCritic(model.network_specs, size, hidden=DCGAN_CODE_PREDICTOR_HIDDEN, name="auxiliary_infogan")
    else:
        predictor = CodePredictor(_data_size(model), size, name="auxiliary_infogan")
    return _built(predictor, (None, _data_size(model)))


@register_term("infogan", "regularizer", needs_inference=False, auxiliary=_code_predictor)
def infogan_information(fp):
    """D(q ‖ G^InfoGAN): the negative variational lower bound on I(c; x) of InfoGAN (Chen et al.
    2016), summed over code blocks, with Q(c | x) the term's auxiliary network on generated x:
    categorical codes H(c) + E log Q(c|x), Gaussian codes the same with a Gaussian Q.

    A ``q_fixed_std`` hyperparameter fixes the standard deviation of the Gaussian Q (the official
    InfoGAN code's ``fix_std=True``): with a learned variance, log Q of the continuous codes grows
    without bound as Q sharpens and outweighs the categorical code's bound (at most log K).
    A ``lambda_continuous`` hyperparameter (default 1) weights the Gaussian codes' bounds against
    the categorical ones' (InfoGAN: λ = 1 for discrete codes, smaller for continuous ones).

    With ``term_options: {"infogan": {"shares_critic": "C2"}}`` Q is a head on C2's discriminator's
    last hidden layer, as in InfoGAN, trained with the discriminator in its phase on the
    discriminator's loss plus this term (`MIBModel.critic_objective`)."""
    z, _ = fp.prior_latents()
    params = fp.auxiliary("infogan")(shared_critic_features(fp, "infogan", fp.generated()))
    hyper = fp.model.model_config["hyperparameters"]
    fixed_std = hyper.get("q_fixed_std")
    if fixed_std is not None and not fixed_std > 0:
        raise ValueError(f"{fp.model.name}: hyperparameter q_fixed_std got {fixed_std!r}, expected a number > 0 "
                         "(the fixed standard deviation of Q's Gaussian codes)")
    continuous_weight = hyper.get("lambda_continuous", 1.0)
    if not continuous_weight >= 0:
        raise ValueError(f"{fp.model.name}: hyperparameter lambda_continuous got {continuous_weight!r}, expected "
                         "a number >= 0 (the weight of the continuous codes' bounds)")
    bound, offset = 0.0, 0
    for _, start, end, kind in _code_layout(fp.model):
        code, size = z[:, start:end], end - start
        if kind == "categorical":
            bound = bound + infogan.categorical_code_mi_lower_bound(code, params[:, offset:offset + size])
            offset += size
        else:
            mean, logvar = params[:, offset:offset + size], params[:, offset + size:offset + 2 * size]
            if fixed_std is not None:
                logvar = ops.full_like(mean, 2.0 * float(np.log(fixed_std)))
            bound = bound + continuous_weight * infogan.gaussian_code_mi_lower_bound(code, mean, logvar)
            offset += 2 * size
    return -bound


def _private_names(fp):
    """The batch's modalities that have a private latent, in model order."""
    return [name for name in fp.names if name in fp.x and fp.model.private_sizes[name]]


def _shared_private(fp):
    """``(z, u)`` with u the private latents of the batch's modalities, side by side."""
    if not fp.model.private_size:
        raise ValueError(f"{fp.model.name}: I(z; u) terms need private latents (private > 0)")
    return fp.z(), ops.concatenate([fp.u(name) for name in _private_names(fp)], axis=-1)


def _unit_scale(values):
    """``values`` divided by their batch standard deviation (root mean variance over dimensions),
    as a constant: the scale of a kernel's input, not a path for gradients."""
    std = ops.sqrt(ops.mean(ops.var(values, axis=0)) + 1e-8)
    return values / ops.stop_gradient(std)


def _shuffled(fp, u):
    # Pairs each z with the u of another example: samples of q(z) q(u) instead of q(z, u).
    return keras.random.shuffle(u, axis=0, seed=fp.model.seed_generator)


@register_term("mi_zu_mmd", "regularizer")
def shared_private_mmd(fp):
    """I_q(z; u) penalized through MMD(q(z, u), q(z) q(u)) (the fairness objective of Eq. 17,
    OURS-MMD in Table 3; Gretton et al. 2006). With the product kernel k_z · k_u (inverse
    multiquadric) this MMD is HSIC (Gretton et al. 2005), estimated without bias over every pair
    of the batch (`mibzoo.estimators.mmd.hsic`). Derived: pairing each z with one shuffled u
    instead gives joint and product samples that share their z, a biased estimate that training
    drives below zero rather than towards independence. Each block is divided by its batch
    standard deviation (no gradient) before the kernel, so the penalty cannot be escaped by
    growing u (Eq. 17 puts no rate on U_x) while the decoder undoes the scale."""
    z, u = _shared_private(fp)
    return hsic(_unit_scale(z), _unit_scale(u), kernel="imq", scales=(1.0,))


@register_term("mi_zu_tc", "regularizer")
def shared_private_total_correlation(fp):
    """I_q(z; u) = KL(q(z, u) ‖ q(z) q(u)), the total correlation between the groups z and u of the
    aggregate posterior (Esmaeili et al. 2019; OURS-TC in Table 3), minibatch weighted sampling
    with the Gaussian posteriors q(z | x) and q(u_i | x_i) (`group_total_correlation_mws`)."""
    z, u = _shared_private(fp)
    loc, logvar = fp.posterior()
    names = _private_names(fp)
    outputs = fp.encoder_outputs()
    locs = [loc] + [outputs[name][2] for name in names]
    logvars = [logvar] + [inference.clip_logvar(outputs[name][3]) for name in names]
    return total_correlation_lib.group_total_correlation_mws(
        ops.concatenate([z, u], axis=-1), ops.concatenate(locs, axis=-1), ops.concatenate(logvars, axis=-1),
        [fp.model.shared_size, sum(fp.model.private_sizes[name] for name in names)])


def _mine_critic(model):
    if not model.private_size:
        raise ValueError(f"{model.name}: the 'mi_zu_mine' term needs private latents (private > 0)")
    return _built(MovingAverageMINE(name="critic_mi_zu_mine"), [(None, model.shared_size), (None, model.private_size)])


def _mine_critic_loss(fp):
    critic = fp.critic("mi_zu_mine")
    z, u = (ops.stop_gradient(t) for t in _shared_private(fp))
    loss, average = mine.mine_loss(critic([z, u]), critic([z, _shuffled(fp, u)]), critic.moving_average,
                                   decay=critic.decay)
    if fp.training:  # evaluation must not move the statistic
        critic.moving_average.assign(average)
    return loss


@register_term("mi_zu_mine", "regularizer", critic=_mine_critic, critic_loss=_mine_critic_loss)
def shared_private_mine(fp):
    """I_q(z; u) estimated by MINE's lower bound E_q(z,u)[T] − log E_q(z)q(u)[e^T] (Belghazi et al.
    2018; OURS-MINE in Table 3): the statistics network T maximizes it in phase
    ``critic:mi_zu_mine``, the encoders minimize it."""
    z, u = _shared_private(fp)
    critic = fp.critic("mi_zu_mine")
    return mine.mine_lower_bound(critic([z, u]), critic([z, _shuffled(fp, u)]))


# ----- out-of-distribution generalization (Sec. 6, Eq. 18, issue 12) ------------------------------
# The OOD terms read two modalities by name: the label Y (categorical) and the environment index E
# (categorical), as the `colored_mnist` dataset provides them.
LABEL, ENVIRONMENT = "label", "env"


def _ood_modalities(model, term):
    """The specs of the label and environment modalities; a clear error when a model lacks them."""
    for name in (LABEL, ENVIRONMENT):
        spec = model.modality_specs.get(name)
        if spec is None or spec["kind"] != "categorical":
            raise ValueError(f"{model.name}: the '{term}' term needs categorical modalities {LABEL!r} (Y) and "
                             f"{ENVIRONMENT!r} (E); this model has {model.modality_names}")
    return model.modality_specs[LABEL], model.modality_specs[ENVIRONMENT]


def _input_index(fp):
    """Index of X, the modality Y is predicted from: the first that is neither Y nor E."""
    return fp.names.index(next(n for n in fp.names if n not in (LABEL, ENVIRONMENT)))


def predictive_label_logits(fp):
    """``[B, K]``: logits of p(y | z ⊙ m_y^p) with z ~ q(z | x), the predictor of Sec. 6 (Y from X alone)."""
    return fp.model.decode_modality(LABEL, fp.decoder_input(LABEL, fp.z(_input_index(fp))))


def _labelled(fp):
    """``[B]``: 1 where the example's label is present (semi-supervised batches hide some)."""
    return fp.presence(LABEL)


def _masked_mean(values, weights):
    return ops.sum(values * weights) / ops.maximum(ops.sum(weights), 1.0)


def label_cross_entropy(logits, labels):
    """``[B]``: −log softmax(logits)[y] for one-hot ``labels``."""
    return -ops.sum(labels * ops.log_softmax(logits, axis=-1), axis=-1)


def _environment_critic(model):
    label, env = _ood_modalities(model, "conditional_independence")
    critic = ModalityDecoder(dict(label, hidden=64, layers=2), model.shared_size + env["classes"],
                             name="critic_conditional_independence")
    critic.build()
    return critic


def _environment_critic_input(fp, z):
    return ops.concatenate([z, fp.x[ENVIRONMENT]], axis=-1)


def _conditional_independence_critic_loss(fp):
    z = ops.stop_gradient(fp.z(_input_index(fp)))
    logits = fp.critic("conditional_independence")(_environment_critic_input(fp, z))
    return _masked_mean(label_cross_entropy(logits, fp.x[LABEL]), _labelled(fp))


@register_term("conditional_independence", "regularizer", critic=_environment_critic,
               critic_loss=_conditional_independence_critic_loss)
def conditional_independence(fp):
    """D(q ‖ G^str_ood), Eq. 18's β2 I_q(x, e, y | z), through its part I_q(E; Y | Z): G_ood asks
    E ⊥ Y | Z (Sec. 6). Derived (appendix not available): by the chain rule the multi-information
    I(x, e, y | z) = I(e; y | z) + I(x; e, y | z); the first part is the invariance G_ood names,
    I(E; Y | Z) = H(Y | Z) − H(Y | Z, E), estimated as E[−log p(y | z)] − E[−log r(y | z, e)] with
    p(y | z) the model's label decoder and r a critic trained on z (no gradient) and the one-hot e
    in phase ``critic:conditional_independence``. z ~ q(z | x), the representation Y is predicted
    from. The x-part is left to the ELBO (its reconstruction term). Labelled examples only."""
    logits = predictive_label_logits(fp)
    conditional = fp.critic("conditional_independence")(_environment_critic_input(fp, fp.z(_input_index(fp))))
    labels, weights = fp.x[LABEL], _labelled(fp)
    estimate = _masked_mean(label_cross_entropy(logits, labels) - label_cross_entropy(conditional, labels), weights)
    # I ≥ 0: a negative estimate means the critic lags behind; the encoder gets no gradient from it
    # then (otherwise it learns to fool the critic instead of removing E's information about Y).
    return ops.maximum(estimate, 0.0)


@register_term("sufficiency", "regularizer")
def sufficiency(fp):
    """The other half of G_ood (Sec. 6): Z is a sufficient statistic for predicting Y. Derived
    (appendix not available): I_q(Y; Z) = H(Y) − H(Y | Z) ≥ H(Y) − E[−log p(y | z)], so the
    cross-entropy of the label decoder with z ~ q(z | x) — the risk of the predictor used at test
    time — bounds the missing information up to the constant H(Y). Labelled examples only. It is
    also the risk IRM's penalty (the ``irm`` term) is a penalty on."""
    _ood_modalities(fp.model, "sufficiency")
    return _masked_mean(label_cross_entropy(predictive_label_logits(fp), fp.x[LABEL]), _labelled(fp))


def scale_gradient(logits, labels):
    """``[B]``: d/ds −log softmax(s · logits)[y] at s = 1, which is Σ_k (softmax(logits)_k − y_k) logits_k
    (the derivative of the cross-entropy along the logits, projected on the logits)."""
    return ops.sum((ops.softmax(logits, axis=-1) - labels) * logits, axis=-1)


@register_term("irm", "regularizer")
def invariant_risk(fp):
    """IRMv1's penalty on p(y | z) (Arjovsky et al. 2019; the paper's Appendix A.5: a stable M^p
    across environments, measured by a gradient penalty): the mean over the environments e of the
    batch of (∂/∂s R^e(s))² at s = 1 (estimated without bias by two half-batches), R^e(s) = E_e[−log softmax(s · logits(z))[y]] with z ~ q(z | x),
    in closed form (`scale_gradient`), labelled examples only.

    IRM's annealing (its code: penalty weight 1 for the first 190 steps, then 91,257) through two
    hyperparameters: while training, before network update ``irm_anneal_steps`` the value is
    multiplied by ``irm_anneal_scale`` (e.g. 1 / γ, so that the penalty enters with weight 1 while
    the features are learned); after it, and at evaluation, by 1."""
    _ood_modalities(fp.model, "irm")
    grads = scale_gradient(predictive_label_logits(fp), fp.x[LABEL])
    weights = _labelled(fp)[:, None] * fp.x[ENVIRONMENT]  # [B, E]
    # On a minibatch the square of one estimate of ∂R^e/∂s is biased by its variance, which
    # shrinking the logits removes (the predictor collapses to a constant). As IRM (Arjovsky et
    # al. 2019, Sec. 3.2) suggests: the product of the estimates from two halves of the batch
    # (even and odd rows), unbiased for (∂R^e/∂s)².
    parity = ops.cast(ops.arange(ops.shape(grads)[0]) % 2, "float32")[:, None]
    halves = [weights * (1.0 - parity), weights * parity]
    counts = [ops.sum(h, axis=0) for h in halves]
    risk_grads = [ops.sum(grads[:, None] * h, axis=0) / ops.maximum(c, 1.0) for h, c in zip(halves, counts)]
    seen = ops.cast(ops.logical_and(counts[0] > 0, counts[1] > 0), "float32")
    penalty = ops.sum(risk_grads[0] * risk_grads[1] * seen) / ops.maximum(ops.sum(seen), 1.0)
    hyper = fp.model.model_config["hyperparameters"]
    anneal_steps = hyper.get("irm_anneal_steps", 0)
    if fp.training and anneal_steps:
        annealing = ops.cast(fp.model.optimizer.iterations < anneal_steps, "float32")
        penalty = penalty * (1.0 + annealing * (float(hyper.get("irm_anneal_scale", 1.0)) - 1.0))
    return penalty

"""Terms estimated with critics, auxiliary networks or minibatch estimators: C2 (a discriminator,
GAN), C3 by MMD or a density-ratio critic, total correlation (β-TCVAE's minibatch estimate, FactorVAE's
discriminator) and InfoGAN's bound with its code predictor Q. Each declares its network and the
critic phase that trains it (Algorithm 1, generalized)."""
import numpy as np
from keras import ops

from mibzoo import image_jitter
from mibzoo.estimators import adversarial, infogan
from mibzoo.estimators.mmd import mmd as mmd_estimate
from mibzoo.estimators import total_correlation as total_correlation_lib
from mibzoo.estimators.critics import Discriminator
from mibzoo.modalities import event_shape
from mibzoo.networks import CodePredictor, DataCritic, uses_dcgan
from mibzoo.objectives.registry import TERMS, HyperParameter, built, register_term


def _data_size(model):
    return sum(int(np.prod(event_shape(spec))) for spec in model.modality_specs.values())


# InfoGAN's MNIST networks (Chen et al. 2016, Appendix C.1): D's last hidden layer has 1024 units,
# Q adds a 128-unit layer to D's features. Without ``"critic_hidden"`` (a DCGAN modality's network
# option) D is narrower, as `gan`'s default (a size this CPU trains in 10 epochs); `infogan` sets 1024.
DCGAN_DISCRIMINATOR_HIDDEN = 256
DCGAN_CODE_PREDICTOR_HIDDEN = 128


def _discriminator_hidden(specs):
    """The width of C2's DCGAN discriminator's dense layer: the widest ``critic_hidden`` of the
    modalities that set one, else `DCGAN_DISCRIMINATOR_HIDDEN`."""
    return max((spec["critic_hidden"] for spec in specs.values() if "critic_hidden" in spec),
               default=DCGAN_DISCRIMINATOR_HIDDEN)


def _data_discriminator(model):
    """C2's discriminator on the joint x: convolutional (`DataCritic`) when a modality selects the
    DCGAN networks, else an MLP on the flattened x."""
    if uses_dcgan(model.network_specs):
        critic = DataCritic(model.network_specs, 1, hidden=_discriminator_hidden(model.network_specs),
                            name="critic_C2")
    else:
        critic = Discriminator(name="critic_C2")
    return built(critic, (None, _data_size(model)))


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
        return built(Discriminator(name=f"critic_{name}"), (None, model.shared_size))
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


@register_term("tc", "regularizer", needs_gaussian_posterior=True,
               hyperparameters={"dataset_size": HyperParameter(None, "the number of training examples of "
                                                               "Chen et al.'s exact minibatch-weighted-sampling "
                                                               "weights", minimum=1, integer=True)})
def total_correlation(fp):
    """D(q ‖ G^p) for q(z): the total correlation KL(q(z) ‖ Π_d q(z_d)) of the aggregate
    posterior (β-TCVAE, Chen et al. 2018), minibatch-weighted-sampling estimate. A
    ``dataset_size`` hyperparameter switches to Chen et al.'s exact MWS weights (which add the
    constant (D−1)·log N to the value, not to the gradient)."""
    loc, logvar = fp.posterior()
    size = TERMS["tc"].hyperparameter(fp.model.model_config, "dataset_size")
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
    if shared is None:
        return x
    features = fp.critic(shared).features(x, training=fp.training)
    options = fp.model.model_config["term_options"].get(term, {})
    if fp.phase == f"critic:{shared}" and not options.get("trains_critic_trunk", True):
        # The trunk learns from the critic's loss only: in the critic's phase the term trains the
        # auxiliary's own layers on fixed features (its gradient still reaches the generator in dist).
        features = ops.stop_gradient(features)
    return features


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
        batch_norm = bool(TERMS["infogan"].option(model.model_config, "q_batch_norm"))
        return built(CodePredictor(critic.features_size, size, hidden=DCGAN_CODE_PREDICTOR_HIDDEN, layers=1,
                                    activation="leaky_relu", batch_norm=batch_norm, name="auxiliary_infogan"),
                      (None, critic.features_size))
    if uses_dcgan(model.network_specs):
        predictor = DataCritic(model.network_specs, size, hidden=DCGAN_CODE_PREDICTOR_HIDDEN, name="auxiliary_infogan")
    else:
        predictor = CodePredictor(_data_size(model), size, name="auxiliary_infogan")
    return built(predictor, (None, _data_size(model)))


@register_term("infogan", "regularizer", needs_inference=False, auxiliary=_code_predictor,
               options={"q_batch_norm": (False, True)},
               hyperparameters={
                   "q_fixed_std": HyperParameter(None, "the fixed standard deviation of Q's Gaussian codes; "
                                                 "without it Q learns its variance", exclusive_minimum=True),
                   "lambda_continuous": HyperParameter(1.0, "the weight of the continuous codes' bounds"),
                   "q_input_noise": HyperParameter(0.0, "the standard deviation of the Gaussian noise added to "
                                                   "the samples Q reads"),
                   "q_categorical_rotation": HyperParameter(
                       0.0, "the largest rotation in radians of the images Q reads the categorical codes from",
                       maximum=float(np.pi)),
                   "q_categorical_stroke_jitter": HyperParameter(
                       0.0, "the largest stroke-width jitter (1: a one-pixel dilation or erosion) of the images "
                            "Q reads the categorical codes from", maximum=1.0)})
def infogan_information(fp):
    """D(q ‖ G^InfoGAN): the negative variational lower bound on I(c; x) of InfoGAN (Chen et al.
    2016), summed over code blocks, with Q(c | x) the term's auxiliary network on generated x:
    categorical codes H(c) + E log Q(c|x), Gaussian and uniform codes the same with a Gaussian Q.

    A ``q_fixed_std`` hyperparameter fixes the standard deviation of the Gaussian Q (the official
    InfoGAN code's ``fix_std=True``): with a learned variance, log Q of the continuous codes grows
    without bound as Q sharpens and outweighs the categorical code's bound (at most log K).
    A ``lambda_continuous`` hyperparameter (default 1) weights the Gaussian codes' bounds against
    the categorical ones' (InfoGAN: λ = 1 for discrete codes, smaller for continuous ones).
    A ``q_input_noise`` hyperparameter σ (default 0) makes Q read ``G(z, c) + σ ε``, ε ~ N(0, I): a
    bound on I(c; G(z, c) + σ ε) ≤ I(c; G(z, c)), which the generator can only raise with differences
    between codes larger than the noise (docs/results.md, finding 8: without it Q tells the codes apart
    on generated images before they show digits).
    ``q_categorical_rotation`` θ and ``q_categorical_stroke_jitter`` s (default 0) make Q read the
    categorical codes from the image modalities jittered by `mibzoo.image_jitter.jitter_images`
    (a rotation ~ U(−θ, θ) and a stroke-width change ~ U(−s, s) per sample, differentiable, so the
    generator is trained through them), while the continuous codes are read from the unjittered
    samples: a bound on I(c; jitter(G(z, c))), which two codes drawing the same digits in different
    stroke widths or slants cannot raise (docs/results.md, finding 13). It costs Q a second pass.

    With ``term_options: {"infogan": {"shares_critic": "C2"}}`` Q is a head on C2's discriminator's
    last hidden layer, as in InfoGAN, trained with the discriminator in its phase on the
    discriminator's loss plus this term (`MIBModel.critic_objective`); its option ``"q_batch_norm":
    true`` adds batch normalization to Q's dense layer (InfoGAN's Q, Chen et al. 2016, App. C.1)."""
    z, _ = fp.prior_latents()
    config, term = fp.model.model_config, TERMS["infogan"]
    generated = fp.generated()
    input_noise = term.hyperparameter(config, "q_input_noise")
    if input_noise > 0:
        generated = {name: value + input_noise * fp.noise(ops.shape(value)) for name, value in generated.items()}
    q = fp.auxiliary("infogan")
    params = q(shared_critic_features(fp, "infogan", generated), training=fp.training)
    categorical_params = params
    rotation = term.hyperparameter(config, "q_categorical_rotation")
    stroke_jitter = term.hyperparameter(config, "q_categorical_stroke_jitter")
    if rotation > 0 or stroke_jitter > 0:
        jittered = {name: image_jitter.jitter_images(value, rotation, stroke_jitter, seed=fp.model.seed_generator)
                    if config["modalities"][name]["kind"] == "image" else value
                    for name, value in generated.items()}
        categorical_params = q(shared_critic_features(fp, "infogan", jittered), training=fp.training)
    fixed_std = term.hyperparameter(config, "q_fixed_std")
    continuous_weight = term.hyperparameter(config, "lambda_continuous")
    bound, offset = 0.0, 0
    for _, start, end, kind in _code_layout(fp.model):
        code, size = z[:, start:end], end - start
        if kind == "categorical":
            bound = bound + infogan.categorical_code_mi_lower_bound(code, categorical_params[:, offset:offset + size])
            offset += size
        else:
            mean, logvar = params[:, offset:offset + size], params[:, offset + size:offset + 2 * size]
            if fixed_std is not None:
                logvar = ops.full_like(mean, 2.0 * float(np.log(fixed_std)))
            if kind == "uniform":
                code_bound = infogan.uniform_code_mi_lower_bound(code, mean, logvar,
                                                                 half_width=fp.model.prior_scale[start:end])
            else:
                code_bound = infogan.gaussian_code_mi_lower_bound(code, mean, logvar,
                                                                  prior_logvar=fp.model.prior_logvar[start:end])
            bound = bound + continuous_weight * code_bound
            offset += 2 * size
    return -bound

"""Out-of-distribution generalization terms (Sec. 6, Eq. 18): G_ood's E ⊥ Y | Z and the sufficiency
of Z for Y, IRMv1's, V-REx's and Fishr's penalties on p(y | z) across environments (Appendix A.5),
and Z ⊥ E | Y on z itself."""
import keras
from keras import ops

from mibzoo.estimators.calibration import kernel_calibration_error
from mibzoo.estimators.conditional_means import group_conditional_mean_gap
from mibzoo.estimators.conditional_moment import kernel_conditional_moment
from mibzoo.estimators.gradient_variance import GAP_PAIRINGS, gradient_variance_gap, last_layer_gradients
from mibzoo.estimators.halves import group_half_means
from mibzoo.estimators.mmd import group_conditional_mmd, kernel_matrix, unit_scale
from mibzoo.estimators.recalibration import (PAIRINGS, REFERENCES, STEPS, paired_gain, recalibration_gain,
                                              recalibration_half_means)
from mibzoo.estimators.risk_variance import group_risks, risk_deviation_product, risk_variance
from mibzoo.networks import ModalityDecoder
from mibzoo.objectives.registry import TERMS, HyperParameter, register_term
from mibzoo.running_mean import RunningMean

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


# Where the OOD terms read z from (``term_options: {term: {"latent": ...}}``, each term its own; the
# first the default): "sample", z ~ q(z | x), the predictor `MIBModel.predict_target` averages; or
# "mean", the mean of q(z | x), a deterministic input to p(y | z) as IRM's MLP has (the
# sampling noise of z hides small mean shifts, such as the digit shape's, from p(y | z)).
LATENTS = ("sample", "mean")


def predictive_latent(fp, term=None):
    """``[B, Dz]``: the z of q(z | x) that ``term`` predicts Y from, a sample or the mean per its
    ``latent`` option (``term`` None: a sample)."""
    i = _input_index(fp)
    if term is not None and TERMS[term].option(fp.model.model_config, "latent") == "mean":
        return fp.aggregate(i).mean()
    return fp.z(i)


# Which networks a penalty's gradient trains (``term_options: {term: {"through": ...}}``; the first
# the default): "encoder_and_decoder", every network p(y | z) depends on, as IRMv1 trains its whole
# MLP; or "encoder", q(z | x) alone, the label decoder receiving no gradient from the penalty and so
# fitted only by the risk terms (C1's label likelihood, `sufficiency`). That is IRM's bi-level
# reading (Arjovsky et al. 2019, Eq. IRM): the classifier is the best one on the pooled risk, and the
# features are what the penalty moves. It closes the penalty's cheapest way down, shrinking the
# classifier's logits towards a constant predictor, whose penalty is 0. Measured on `ood_cmnist`
# (docs/results_ood.md, twenty-sixth session) it removes less of the colour (test environment 57.4
# and 49.9 on seeds 0 and 3, against the defaults' 66.6 and 60.2): the decoder's part of the penalty
# is also how the colour leaves. "decoder" is the converse: z enters the penalty as a constant, so
# q(z | x) is trained only by the risk and rate terms and the penalty moves the label decoder alone.
# Measured on `ood_cmnist` (forty-fifth session, seeds 5 and 6) the colour stays (test environment
# 13.7 and 14.9): a decoder reading a z that holds the colour cannot make its residuals alike across
# environments, so the encoder's part is needed too. Neither is the default.
THROUGH = ("encoder_and_decoder", "encoder", "decoder")


def decoder_frozen(decode, z):
    """``decode(z)`` in value, with the gradient of ``decode``'s own variables removed and the gradient
    with respect to ``z`` kept: ``decode(z) − decode(sg(z)) + sg(decode(sg(z)))`` (sg: stop-gradient).
    The first two share every variable and differ only in whether z carries a gradient, so their
    difference's gradient along the variables is 0 and along z is decode's; the last restores the
    value. Costs a second pass of ``decode``."""
    still = decode(ops.stop_gradient(z))
    return decode(z) - still + ops.stop_gradient(still)


def _through(fp, term):
    """``term``'s option ``through`` (`THROUGH`'s first, the decoder trained too, for a term without it
    or no term)."""
    if term is None or "through" not in TERMS[term].options:
        return THROUGH[0]
    return TERMS[term].option(fp.model.model_config, "through")


def _decode_through(fp, term, decode, z):
    """``decode(z)`` with the gradients ``term``'s option ``through`` lets through: to both z and
    ``decode``'s variables, to z alone (`decoder_frozen`), or to the variables alone (z a constant)."""
    through = _through(fp, term)
    if through == "encoder":
        return decoder_frozen(decode, z)
    if through == "decoder":
        return decode(ops.stop_gradient(z))
    return decode(z)


def predictive_label_logits(fp, term=None):
    """``[B, K]``: logits of p(y | z ⊙ m_y^p) with z from q(z | x) (`predictive_latent`: a sample
    unless ``term``'s ``latent`` option says "mean"), the predictor of Sec. 6 (Y from X alone). When
    ``term`` declares the option ``through`` and it says "encoder", the logits carry no gradient to
    the label decoder (or its mask), only to z (`decoder_frozen`); "decoder": none to z."""
    z = predictive_latent(fp, term)

    def decode(latent):
        return fp.model.decode_modality(LABEL, fp.decoder_input(LABEL, latent))

    return _decode_through(fp, term, decode, z)


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


# The forms of the critic r(y | z, e) (``term_options: {"conditional_independence": {"critic": ...}}``),
# the first the default, each ``(logits of p(y | z), g(z, e)) -> logits of r``: "residual" shifts
# the model's own p(y | z), "mlp" is g alone (see `environment_conditional_logits`).
CRITIC_FORMS = {"residual": lambda label_logits, g: label_logits + g, "mlp": lambda label_logits, g: g}


def environment_conditional_logits(fp, z, label_logits):
    """``[B, K]``: logits of the critic r(y | z, e), g(z, e) the critic network on [z, one-hot e],
    in the form the term's ``critic`` option names:

    - ``"residual"`` (default): softmax(logits of p(y | z) + g(z, e)): g learns only how the
      environment shifts the model's own label decoder. A critic that has to learn p(y | z) from
      scratch can lag behind the moving z by more than the ~0.01 nats it must detect on
      Colored-MNIST (docs/results_ood.md); this one starts from p(y | z) and is exact for any z
      where p(y | z) is, with g = 0 when E ⊥ Y | Z.
    - ``"mlp"``: softmax(g(z, e)), an MLP classifier of y from z and e (``label_logits`` unused).
      With IRM's penalty (``ood_cmnist_irm``) it gave the better test accuracy (docs/results_ood.md).
    """
    g = fp.critic("conditional_independence")(ops.concatenate([z, fp.x[ENVIRONMENT]], axis=-1))
    form = TERMS["conditional_independence"].option(fp.model.model_config, "critic")
    return CRITIC_FORMS[form](label_logits, g)


def _conditional_independence_critic_loss(fp):
    z = ops.stop_gradient(predictive_latent(fp, "conditional_independence"))
    label_logits = ops.stop_gradient(predictive_label_logits(fp, "conditional_independence"))
    logits = environment_conditional_logits(fp, z, label_logits)
    return _masked_mean(label_cross_entropy(logits, fp.x[LABEL]), _labelled(fp))


@register_term("conditional_independence", "regularizer", critic=_environment_critic,
               critic_loss=_conditional_independence_critic_loss,
               options={"critic": tuple(CRITIC_FORMS), "latent": LATENTS})
def conditional_independence(fp):
    """D(q ‖ G^str_ood), Eq. 18's β2 I_q(x, e, y | z), through its part I_q(E; Y | Z): G_ood asks
    E ⊥ Y | Z (Sec. 6). Derived (appendix not available): by the chain rule the multi-information
    I(x, e, y | z) = I(e; y | z) + I(x; e, y | z); the first part is the invariance G_ood names,
    I(E; Y | Z) = H(Y | Z) − H(Y | Z, E), estimated as E[−log p(y | z)] − E[−log r(y | z, e)] with
    p(y | z) the model's label decoder and r(y | z, e) a critic (`environment_conditional_logits`:
    by default ∝ p(y | z) exp g(z, e); with ``term_options`` ``{"critic": "mlp"}`` an MLP on
    [z, e]) whose network g is trained on z and p's logits (no gradient) and the one-hot e in
    phase ``critic:conditional_independence``. z ~ q(z | x), the
    representation Y is predicted from. The x-part is left to the ELBO (its reconstruction term).
    Labelled examples only."""
    z = predictive_latent(fp, "conditional_independence")
    logits = predictive_label_logits(fp, "conditional_independence")
    conditional = environment_conditional_logits(fp, z, logits)
    labels, weights = fp.x[LABEL], _labelled(fp)
    estimate = _masked_mean(label_cross_entropy(logits, labels) - label_cross_entropy(conditional, labels), weights)
    # I ≥ 0: a negative estimate means the critic lags behind; the encoder gets no gradient from it
    # then (otherwise it learns to fool the critic instead of removing E's information about Y).
    return ops.maximum(estimate, 0.0)


# What the per-environment recalibration of `environment_recalibration` may read (``term_options:
# {"environment_recalibration": {"recalibrate": ...}}``, the first the default): "logits", a scale
# and a shift of p(y | z)'s logits; "logits_and_z", also a linear function of z itself;
# "logits_and_features", also a linear function of the label decoder's last hidden features h (the
# input of its final layer): a refit of that layer per environment.
RECALIBRATIONS = ("logits", "logits_and_z", "logits_and_features")

# What `environment_recalibration` returns of its paired estimate (``term_options:
# {"environment_recalibration": {"estimate": ...}}``, the first the default): "unbiased", the
# even-odd product itself, which a batch can put below 0; or "positive_part", max(estimate, 0). The
# estimand is a sum of squared norms, so the positive part is never further from it than the
# unbiased estimate, and a batch whose estimate is below 0 gives no gradient: the networks are not
# trained to make the two halves' gradients disagree. Measured on `ood_cmnist` (docs/results_ood.md,
# forty-fourth and forty-fifth sessions; held-out seeds 5–44): with the unbiased estimate 6 runs of 40
# lose the digit shape (test environment 50–63), with the positive part none does (67.9 ± 1.2 against
# 66.5 ± 4.5), at the cost of 1.5 points of colour kept on average. `ood_cmnist` uses the positive
# part; the term's default stays the unbiased estimate of its estimand.
ESTIMATES = ("unbiased", "positive_part")


def _environment_running_mean(model, name, size, momentum, state_name):
    """A built `RunningMean` of ``size`` numbers per class of the model's environment modality, with
    the term ``name``'s hyperparameter ``momentum`` (the state of a term's running option)."""
    _, env = _ood_modalities(model, name)
    state = RunningMean(env["classes"], size, TERMS[name].hyperparameter(model.model_config, momentum), name=state_name)
    state.build()
    return state


def _recalibration_running_mean(model):
    """With ``pairs`` ``"running"``: per environment, the running mean (`RunningMean`, momentum
    ``recalibration_momentum``) of the even rows' and the odd rows' mean gradients along the P
    recalibration parameters and of the Hessian, concatenated (2P + P² numbers); else None."""
    name = "environment_recalibration"
    term, config = TERMS[name], model.model_config
    if term.option(config, "pairs") != "running":
        return None
    classes = _ood_modalities(model, name)[0]["classes"]
    if term.option(config, "recalibrate") == "logits_and_features":
        raise NotImplementedError(f"{model.name}: environment_recalibration: recalibrate 'logits_and_features' with "
                                  "pairs 'running' (the running statistics are sized for z; allowed there: 'logits', "
                                  "'logits_and_z')")
    size = classes + ((classes - 1) * model.shared_size if term.option(config, "recalibrate") == "logits_and_z" else 0)
    return _environment_running_mean(model, name, 2 * size + size * size, "recalibration_momentum",
                                     "running_recalibration_statistics")


@register_term("environment_recalibration", "regularizer",
               options={"latent": LATENTS, "recalibrate": RECALIBRATIONS, "pairs": PAIRINGS, "relative_to": REFERENCES,
                        "step": STEPS, "through": THROUGH, "estimate": ESTIMATES},
               hyperparameters={"recalibration_momentum": HyperParameter(
                   0.9, "with pairs 'running': the weight of the past in the running mean of each environment's "
                   "gradient", maximum=0.999)},
               state=_recalibration_running_mean)
def environment_recalibration(fp):
    """D(q ‖ G^str_ood) through I_q(E; Y | Z), as `conditional_independence`, without a critic: the
    cross-entropy that recalibrating p(y | z) per environment (softmax(a_e · logits + b_e)) would
    save, in one Newton step from (a_e, b_e) = (1, 0) (`mibzoo.estimators.recalibration_gain`; or
    in one gradient step, option ``step``).
    If E ⊥ Y | Z, p(y | z) is already the best predictor in every environment and the gain is 0;
    the colour of Colored-MNIST, whose agreement with the label differs between the environments,
    is what a per-environment rescaling of the logits corrects. A closed form of the logits, it
    neither lags behind z nor can be fooled as a trained critic r(y | z, e) can (the second and
    fifteenth sessions' finding, docs/results_ood.md); within its family of corrections it is
    I(E; Y | Z) = E_z KL(p(y | z, e) ‖ p(y | z)) when p(y | z) is calibrated. z ~ q(z | x) (or its mean,
    option ``latent``), labelled examples only. With option ``recalibrate`` ``"logits_and_z"`` the
    recalibration also adds a linear function of z per environment: a rescaling of the whole logit
    misses a colour whose part of the logit moves together with the shape's. With
    ``"logits_and_features"`` it adds a linear function of the label decoder's last hidden features
    h (`predictive_label_features`), i.e. it refits the decoder's final layer per environment. Unlike
    z, which the encoder fills and which holds the colour whatever p(y | z) does (docs/results_ood.md,
    twenty-ninth session), h is the decoder's own: a predictor that ignores the colour but whose h
    still carries it leaves residuals that follow the colour differently in the two environments, so
    the invariant zero of this penalty is a decoder whose h drops the colour.

    Option ``pairs``: how the squared mean gradient is estimated without bias. ``"halves"`` and
    ``"all"`` pair rows within the batch (`recalibration_gain`). ``"running"`` computes the halves
    estimate from running means over batches (momentum ρ = ``recalibration_momentum``, kept in the
    model's `term_states`) of the even rows' and the odd rows' mean gradients and of the Hessian,
    the current batch entering each with weight 1 − ρ (`recalibration_half_means`,
    `paired_gain`): the penalty's gradient is then the batch's derivative times the other half's
    running mean instead of times the other half's batch mean, whose noise is what that gradient
    carries near invariance. Every path of the gradient is (1 − ρ) times that of ``"halves"`` (the
    past is a constant), so β2 must grow by 1 / (1 − ρ) for the same pull. The means are updated
    in the network phase of training only (where an environment has rows in both halves);
    evaluation uses ``"halves"``. Measured on ``ood_cmnist`` (docs/results_ood.md, twentieth
    session): ρ = 0 reproduces ``"halves"`` exactly; ρ = 0.5 and 0.9 collapse the predictor to a
    constant after the penalty's onset, so it is not the default.

    Option ``relative_to``: ``"identity"`` (default) measures each environment's recalibration
    against none, so a p(y | z) miscalibrated the same way in every environment also pays;
    ``"pooled"`` against the one recalibration best for all environments together, which leaves
    only what E says about Y beyond p(y | z): I_q(E; Y | Z) within the family even where p(y | z)
    is not calibrated (`recalibration_gain`'s ``relative_to``; not with ``pairs`` "running").
    Measured on ``ood_cmnist`` (same section): with Newton's step ``"pooled"`` ends at or near a
    constant predictor on 3 runs of 3 under the entry's schedule of then, and keeps the colour on
    IRM's (thirty-fifth session).

    Option ``step``: ``"newton"`` (default) is the gain in nats, ½ gᵀ H⁻¹ g. ``"gradient"`` puts the
    identity in H's place (`recalibration_gain`'s ``step``): what one gradient step per environment
    saves, to first order. With ``relative_to`` ``"pooled"`` that is the spread of the environments'
    gradients around the pooled one, Σ_e P(e) ½ ‖g_e − ḡ‖², which `ood_cmnist` uses: divided by
    the curvature, the gain hardly grows with the scale of the logits, and the colour's confident
    part of them went unpenalized (docs/results_ood.md, thirty-third and thirty-fifth sessions).

    Option ``estimate``: ``"unbiased"`` (default) returns the paired estimate, which a batch can put
    below 0; ``"positive_part"`` returns max(estimate, 0) (`ESTIMATES`)."""
    _ood_modalities(fp.model, "environment_recalibration")
    name = "environment_recalibration"
    term, config = TERMS[name], fp.model.model_config
    recalibrate = term.option(config, "recalibrate")
    pairs, relative_to = term.option(config, "pairs"), term.option(config, "relative_to")
    if pairs == "running" and relative_to != "identity":
        raise ValueError(f"{fp.model.name}: environment_recalibration: relative_to={relative_to!r} is not implemented "
                         "with pairs 'running' (allowed there: 'identity')")
    if recalibrate == "logits_and_features":
        inputs, logits = predictive_label_features(fp, name)
    else:
        logits = predictive_label_logits(fp, name)
        inputs = predictive_latent(fp, name) if recalibrate == "logits_and_z" else None
    args = (logits, fp.x[LABEL], fp.x[ENVIRONMENT])
    kwargs = dict(weights=_labelled(fp), inputs=inputs, step=term.option(config, "step"))
    estimate = _paired_recalibration_gain(fp, name, args, kwargs, pairs, relative_to)
    return ops.maximum(estimate, 0.0) if term.option(config, "estimate") == "positive_part" else estimate


def _paired_recalibration_gain(fp, name, args, kwargs, pairs, relative_to):
    """`environment_recalibration`'s paired estimate before its ``estimate`` option: within the batch
    (``pairs`` "halves" or "all"), or from the running means (``pairs`` "running", updated here in
    the network phase of training)."""
    if pairs != "running":
        return recalibration_gain(*args, pairs=pairs, relative_to=relative_to, **kwargs)
    if not (fp.training and fp.phase == "dist"):
        return recalibration_gain(*args, pairs="halves", **kwargs)
    half_means, half_counts, hessian, counts = recalibration_half_means(*args, **kwargs)
    groups, size = ops.shape(hessian)[0], ops.shape(hessian)[-1]
    statistics = ops.concatenate([half_means[0], half_means[1], ops.reshape(hessian, (groups, size * size))], axis=-1)
    seen = ops.cast(ops.logical_and(half_counts[0] > 0, half_counts[1] > 0), "float32")
    means, known = fp.term_state(name).update(statistics, seen)
    # An environment not seen yet has zero means and a zero Hessian: an identity keeps its solve finite.
    hessian = ops.reshape(means[:, 2 * size:], (groups, size, size)) + (1.0 - known)[:, None, None] * ops.eye(size)
    return paired_gain(means[:, :size], means[:, size:2 * size], hessian, counts * known)


@register_term("sufficiency", "regularizer", options={"latent": LATENTS})
def sufficiency(fp):
    """The other half of G_ood (Sec. 6): Z is a sufficient statistic for predicting Y. Derived
    (appendix not available): I_q(Y; Z) = H(Y) − H(Y | Z) ≥ H(Y) − E[−log p(y | z)], so the
    cross-entropy of the label decoder with z ~ q(z | x) — the risk of the predictor used at test
    time — bounds the missing information up to the constant H(Y). Labelled examples only. It is
    also the risk IRM's penalty (the ``irm`` term) is a penalty on."""
    _ood_modalities(fp.model, "sufficiency")
    return _masked_mean(label_cross_entropy(predictive_label_logits(fp, "sufficiency"), fp.x[LABEL]), _labelled(fp))


# How `label_conditional_invariance` measures Z ⊥ E | Y (``term_options: {...: {"statistic": ...}}``, the
# first the default): "mmd", the kernel MMD between the environments' label-conditional laws of z;
# "whitened_means", the squared Mahalanobis distance between their label-conditional means
# (`group_conditional_mean_gap`), which does not shrink with the amplitude a feature is encoded at
# (down to its ridge), where the kernel MMD does.
INVARIANCE_STATISTICS = ("mmd", "whitened_means")


@register_term("label_conditional_invariance", "regularizer",
               options={"latent": LATENTS, "statistic": INVARIANCE_STATISTICS})
def label_conditional_invariance(fp):
    """Z ⊥ E | Y on the representation itself: how far the law of z ~ q(z | x) given the label differs
    between the environments, on z divided by its batch standard deviation (no gradient through the
    scale, as the fairness MMD does). Option ``statistic``: ``"mmd"`` (default), Σ_y P(y)
    MMD²(q(z | y, e₁) ‖ q(z | y, e₂)), unbiased, inverse multiquadric kernel
    (`mibzoo.estimators.mmd.group_conditional_mmd`); ``"whitened_means"``, the squared Mahalanobis
    distance between the environments' label-conditional means
    (`mibzoo.estimators.conditional_means.group_conditional_mean_gap`). Labelled examples only; z a
    draw from q(z | x), or its mean (option ``latent``).

    Derived, not in the paper (its G_ood asks E ⊥ Y | Z of p(y | z), `environment_recalibration`):
    on Colored-MNIST the digit's shape has one law given Y in every environment, while the colour
    agrees with Y 90 % of the time in one training environment and 80 % in the other, so every
    function of the colour has environment-dependent laws given Y and only a colour-free z makes
    this 0 (the conditional domain invariance of Li et al. 2018, CIDDG). E ⊥ Y | Z asks that of
    the predictor only, and z can keep the colour for a predictor to ignore: docs/results_ood.md
    (twenty-ninth session) found the colour linearly decodable from `ood_cmnist`'s z at the end of
    runs whose predictor ignores it. Measured there, in no entry: alone, neither statistic keeps the
    colour out of z (the runs end as ERM while the statistic reads near 0: the encoder moves the
    colour where the statistic does not look and the MLP decoder p(y | z) still reads it); at a
    weight ten times as large (MMD at 10⁶) the estimate's noise erases the shape too; beside the
    recalibration both only move where runs land."""
    name = "label_conditional_invariance"
    _ood_modalities(fp.model, name)
    z = unit_scale(predictive_latent(fp, name))
    args = (z, fp.x[LABEL], fp.x[ENVIRONMENT], _labelled(fp))
    if TERMS[name].option(fp.model.model_config, "statistic") == "whitened_means":
        return group_conditional_mean_gap(*args)
    return group_conditional_mmd(*args, kernel="imq", scales=(1.0,))


# What `risk_variance` multiplies the batch's risk deviations by (``term_options: {"risk_variance":
# {"reference": ...}}``, the first the default): "halves", the other half of the batch's; "running",
# a running mean of earlier batches' risks (`lagged_risk_variance`).
RISK_REFERENCES = ("halves", "running")


def _risk_running_mean(model):
    """With ``reference`` ``"running"``: per environment, the running mean (`RunningMean`, momentum
    ``risk_momentum``) of the risk; else None."""
    name = "risk_variance"
    if TERMS[name].option(model.model_config, "reference") != "running":
        return None
    return _environment_running_mean(model, name, 1, "risk_momentum", "running_environment_risks")


@register_term("risk_variance", "regularizer", options={"latent": LATENTS, "reference": RISK_REFERENCES},
               hyperparameters={"risk_momentum": HyperParameter(
                   0.95, "with reference 'running': the weight of the past in the running mean of each "
                   "environment's risk", maximum=0.999)},
               state=_risk_running_mean)
def environment_risk_variance(fp):
    """V-REx's penalty on p(y | z) (Krueger et al. 2021): the variance over the training
    environments of each environment's risk R^e = E_e[−log p(y | z)], z ~ q(z | x) (option
    ``latent``), estimated without bias from the even and the odd rows (`mibzoo.estimators.risk_variance`),
    labelled examples only. Like ``irm``, a way of asking M^p to be stable across environments (the
    paper's Appendix A.5). A predictor that reads Colored-MNIST's colour has a lower risk in the
    environment where colour agrees with the label more often; one that reads the shape alone has
    the same risk (the label noise) in both. A per-environment recalibration
    (``environment_recalibration``) cannot tell that apart from a colour use that each environment
    finds calibrated; the risks can. Measured on ``ood_cmnist`` (docs/results_ood.md, twenty-first
    session), in place of the recalibration or beside it, it did no better than the defaults: at batch
    2,500 the noise of its estimate is about five times the risk difference that a colour use worth 5
    points of test accuracy makes. No entry uses it.

    Option ``reference``: ``"halves"`` (default) multiplies the even rows' deviations by the odd rows';
    ``"running"`` multiplies the whole batch's deviations by those of a running mean of earlier
    batches' risks (momentum ρ = ``risk_momentum``, kept in the model's `term_states`, updated after
    the product in the network phase of training only; evaluation uses ``"halves"``), so that the
    gradient carries the running mean's smaller noise (`lagged_risk_variance`). The first batch of
    a run has no reference and gives 0."""
    name = "risk_variance"
    _ood_modalities(fp.model, name)
    losses = label_cross_entropy(predictive_label_logits(fp, name), fp.x[LABEL])
    weights = _labelled(fp)
    if TERMS[name].option(fp.model.model_config, "reference") != "running" or not (fp.training and fp.phase == "dist"):
        return risk_variance(losses, fp.x[ENVIRONMENT], weights)
    state = fp.term_state(name)
    reference, known = state.value()
    risks, seen = group_risks(losses, fp.x[ENVIRONMENT], weights)
    penalty = risk_deviation_product(risks, seen, reference[:, 0], known)  # = `lagged_risk_variance`
    state.update(ops.stop_gradient(risks)[:, None], seen)
    return penalty


@register_term("environment_calibration", "regularizer", options={"latent": LATENTS},
               hyperparameters={"calibration_bandwidth": HyperParameter(
                   0.4, "the width ν of the Laplacian kernel exp(−TV(p, p') / ν) between two predicted class "
                   "distributions", minimum=1e-3, maximum=10.0)})
def environment_calibration(fp):
    """E ⊥ Y | p(y | z) as calibration in every environment (Wald et al. 2021's CLOvE, which shows
    multi-environment calibration to be a form of invariance): the mean over the training
    environments of the squared kernel calibration error of p(y | z), z ~ q(z | x) (option
    ``latent``), each the unbiased U-statistic over the environment's pairs of labelled rows
    (`mibzoo.estimators.kernel_calibration_error`, Widmann et al. 2019). 0 when p(y | z) is calibrated
    in every environment. Where ``environment_recalibration`` tests a per-environment rescaling and
    shift of the logits, this tests the whole calibration curve of each environment, which still
    differs for a colour use that both environments find calibrated to first order. Measured on
    ``ood_cmnist`` (docs/results_ood.md, twenty-sixth session): beside the recalibration it keeps more
    of the colour (test environment −0.9 and −2.2 points at weights 10⁶ and 5 × 10⁶, seeds 10–13);
    in its place it removes only part of the colour (48.0 at 5 × 10⁶), as a predictor that reads the
    colour partly is still nearly calibrated in both training environments (90 % and 80 % colour
    agreement are little diversity). It costs O(B²) per batch. No entry uses it."""
    _ood_modalities(fp.model, "environment_calibration")
    probabilities = ops.softmax(predictive_label_logits(fp, "environment_calibration"), axis=-1)
    bandwidth = TERMS["environment_calibration"].hyperparameter(fp.model.model_config, "calibration_bandwidth")
    return kernel_calibration_error(probabilities, fp.x[LABEL], fp.x[ENVIRONMENT], _labelled(fp), bandwidth)


def scale_gradient(logits, labels):
    """``[B]``: d/ds −log softmax(s · logits)[y] at s = 1, which is Σ_k (softmax(logits)_k − y_k) logits_k
    (the derivative of the cross-entropy along the logits, projected on the logits)."""
    return ops.sum((ops.softmax(logits, axis=-1) - labels) * logits, axis=-1)


@register_term("irm", "regularizer", options={"latent": LATENTS},
               hyperparameters={
                   "irm_anneal_steps": HyperParameter(0, "the network update from which the penalty enters "
                                                      "unscaled; 0: from the first", integer=True),
                   "irm_anneal_scale": HyperParameter(1.0, "the factor of the penalty before "
                                                      "irm_anneal_steps")})
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
    grads = scale_gradient(predictive_label_logits(fp, "irm"), fp.x[LABEL])
    weights = _labelled(fp)[:, None] * fp.x[ENVIRONMENT]  # [B, E]
    # On a minibatch the square of one estimate of ∂R^e/∂s is biased by its variance, which
    # shrinking the logits removes (the predictor collapses to a constant). As IRM (Arjovsky et
    # al. 2019, Sec. 3.2) suggests: the product of the estimates from two halves of the batch
    # (even and odd rows), unbiased for (∂R^e/∂s)².
    risk_grads, _, seen = group_half_means(grads[:, None], weights)  # [2, E, 1]
    penalty = ops.sum(risk_grads[0, :, 0] * risk_grads[1, :, 0] * seen) / ops.maximum(ops.sum(seen), 1.0)
    config, term = fp.model.model_config, TERMS["irm"]
    anneal_steps = term.hyperparameter(config, "irm_anneal_steps")
    if fp.training and anneal_steps:
        # A selection, not 1 + annealing · (scale − 1): in float32 that sum is 0 for a scale under
        # ~6e-8 (1 / γ for γ above ~2e7), which silently dropped the penalty during the annealing.
        scale = float(term.hyperparameter(config, "irm_anneal_scale"))
        penalty = penalty * ops.where(fp.model.optimizer.iterations < anneal_steps, scale, 1.0)
    return penalty


def predictive_label_features(fp, term=None):
    """``(h, logits)``: the input h of the label decoder's final dense layer and the logits of
    p(y | z) it gives, z from q(z | x) as `predictive_label_logits` reads it (option ``latent``, and
    option ``through``: with "encoder" neither carries a gradient to the decoder, only to z; with
    "decoder" none to z).
    Needs an MLP label decoder (every categorical modality has one)."""
    layers = fp.model.decoders[LABEL].net.layers
    final = layers[-1]
    if not isinstance(final, keras.layers.Dense) or final.activation is not keras.activations.linear:
        raise NotImplementedError(f"{fp.model.name}: {term}: the label decoder's last layer is {type(final).__name__}; "
                                  "only a final dense layer without activation has closed-form per-example gradients")

    def features_and_logits(latent):
        features = fp.decoder_input(LABEL, latent)
        for layer in layers[:-1]:
            features = layer(features)
        return ops.concatenate([features, final(features)], axis=-1)

    z = predictive_latent(fp, term)
    both = _decode_through(fp, term, features_and_logits, z)
    width = ops.shape(both)[-1] - final.units
    return both[:, :width], both[:, width:]


@register_term("gradient_variance", "regularizer", options={"latent": LATENTS, "pairs": GAP_PAIRINGS})
def environment_gradient_variance(fp):
    """Fishr's penalty on p(y | z) (Rame et al. 2022): the squared distance between the training
    environments' variances of the per-example gradients of −log p(y | z) with respect to the label
    decoder's final layer, z ~ q(z | x) (option ``latent``), labelled examples only
    (`mibzoo.estimators.gradient_variance`). Like ``irm`` and ``risk_variance``, a way of asking M^p
    to be stable across environments (the paper's Appendix A.5), here through the whole final
    layer's gradient statistics rather than one scale's mean gradient: on Colored-MNIST a predictor
    that reads the colour has residuals whose spread differs between the environments (the colour
    is wrong 10 % of the time in one, 20 % in the other), along every feature that carries it.

    Option ``pairs``: ``"halves"`` (default), the even rows' deviations times the odd rows', unbiased
    but negative where the halves disagree; ``"none"``, the whole batch's deviations squared, Fishr's
    own form, never negative but biased upwards by the variances' minibatch noise
    (`gradient_variance_gap`)."""
    name = "gradient_variance"
    _ood_modalities(fp.model, name)
    features, logits = predictive_label_features(fp, name)
    residuals = ops.softmax(ops.cast(logits, "float32"), axis=-1) - fp.x[LABEL]
    return gradient_variance_gap(last_layer_gradients(residuals, features), fp.x[ENVIRONMENT], _labelled(fp),
                                 pairs=TERMS[name].option(fp.model.model_config, "pairs"))


# What `environment_conditional_moment`'s kernel compares (``term_options: {...: {"inputs": ...}}``,
# the first the default): "latent", z itself (what E ⊥ Y | Z conditions on); "decoder_features", the
# input of the label decoder's final layer (what Fishr's statistic reads), where a use of z that the
# decoder amplifies cannot hide in a direction of small amplitude.
MOMENT_INPUTS = ("latent", "decoder_features")


@register_term("conditional_moment", "regularizer", options={"latent": LATENTS, "inputs": MOMENT_INPUTS},
               hyperparameters={"moment_bandwidth": HyperParameter(
                   1.0, "the scale s of the inverse multiquadric kernel C / (C + ‖u − u'‖²), C = 2 d s², on "
                   "inputs divided by their batch standard deviation", minimum=1e-3,
                   maximum=100.0)})
def environment_conditional_moment(fp):
    """D(q ‖ G^str_ood) through I_q(E; Y | Z), estimated as the kernel conditional moment discrepancy of
    the label decoder's residuals within each environment (`mibzoo.estimators.kernel_conditional_moment`):
    Σ_e P(e) E_e[(y − π(z))ᵀ (y' − π(z')) k(z, z')], π = p(y | z), z ~ q(z | x) (option ``latent``),
    labelled examples only. Derived (appendix not available): E ⊥ Y | Z with π the common conditional
    means E_e[y − π(z) | z] = p(y | z, e) − π(z) = 0 in every environment, and this is the squared
    RKHS norm of that conditional mean: a kernel-smoothed χ²(p(y | z, e) ‖ π(z)) without its weights
    1 / π_k, where the χ² itself is, to second order, 2 · I(E; Y | Z) when π is the pooled conditional.
    The kernel (inverse multiquadric, scale ``moment_bandwidth``) reads z or, with option ``inputs``
    ``"decoder_features"``, the input of the label decoder's final layer, each divided by its batch
    standard deviation as a constant (`unit_scale`).

    Where ``environment_recalibration`` projects p(y | z, e) − π(z) on what a per-environment scale and
    shift of π's logits can correct and weights it by the inverse curvature, this looks at the
    residuals along every direction of the kernel's input and divides by nothing: on Colored-MNIST a
    predictor that reads the colour leaves residuals that follow the colour one way in the
    environment where it agrees with the label 90 % of the time and the other way where it agrees
    80 %, whatever its logits' calibration.

    Measured in place of the recalibration in `ood_cmnist` (docs/results_ood.md, thirty-fourth
    session): it keeps the colour on every run, on IRM's schedule (``loss_schedule``, μ outputs,
    Adam 5 × 10⁻⁴; weights 10⁸ to 10¹⁰, test environment 31–47 with training environments at 79–83)
    and on the entry's own (45.8). After the onset the colour leaves, but slowly and at about the
    same pace at every weight (Adam's steps do not grow with it). It is not minibatch noise alone: at
    the end of a run that still uses the colour, one batch's estimate is 2.1 standard deviations above
    0, as the recalibration's (2.4) and Fishr's (1.7) are on the same model. A likely reason, not
    measured: the encoder moves the colour into a direction of small amplitude that the kernel
    barely sees while the decoder still reads it. No entry uses it."""
    name = "conditional_moment"
    _ood_modalities(fp.model, name)
    config = fp.model.model_config
    features, logits = predictive_label_features(fp, name)
    inputs = features if TERMS[name].option(config, "inputs") == "decoder_features" else predictive_latent(fp, name)
    inputs = unit_scale(ops.cast(inputs, "float32"))
    kernel = kernel_matrix(inputs, inputs, "imq", (TERMS[name].hyperparameter(config, "moment_bandwidth"),))
    return kernel_conditional_moment(ops.softmax(ops.cast(logits, "float32"), axis=-1), fp.x[LABEL], kernel,
                                     fp.x[ENVIRONMENT], _labelled(fp))

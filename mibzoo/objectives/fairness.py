"""I_q(z; u) between the shared and private latents for fair representations (Sec. 5, Eq. 17), by
MMD (HSIC), the total-correlation estimator and MINE (Table 3's OURS-MMD, OURS-TC, OURS-MINE)."""
import keras
from keras import ops

from mibzoo import inference
from mibzoo.estimators import mine
from mibzoo.estimators.mmd import hsic, unit_scale
from mibzoo.estimators import total_correlation as total_correlation_lib
from mibzoo.estimators.critics import MovingAverageMINE
from mibzoo.objectives.registry import TERMS, built, register_term


def _private_names(fp):
    """The batch's modalities that have a private latent, in model order."""
    return [name for name in fp.names if name in fp.x and fp.model.private_sizes[name]]


def _shared_private(fp):
    """``(z, u)`` with u the private latents of the batch's modalities, side by side."""
    if not fp.model.private_size:
        raise ValueError(f"{fp.model.name}: I(z; u) terms need private latents (private > 0)")
    return fp.z(), ops.concatenate([fp.u(name) for name in _private_names(fp)], axis=-1)


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
    return hsic(unit_scale(z), unit_scale(u), kernel="imq", scales=(1.0,))


@register_term("mi_zu_tc", "regularizer", needs_gaussian_posterior=True)
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
    return built(MovingAverageMINE(name="critic_mi_zu_mine"), [(None, model.shared_size), (None, model.private_size)])


def _private_means(fp):
    """The means of q(u_i | x_i) of the batch's modalities with a private latent, side by side: the
    representation the fairness protocol scores (`mibzoo.metrics.fairness.representation`)."""
    outputs = fp.encoder_outputs()
    return ops.concatenate([outputs[name][2] for name in _private_names(fp)], axis=-1)


def _mine_unit_scaled(fp):
    z, u = _shared_private(fp)
    return unit_scale(z), unit_scale(u)


def _mine_means(fp):
    z, _ = _shared_private(fp)
    return unit_scale(z), unit_scale(_private_means(fp))


# What the statistics network of ``mi_zu_mine`` reads (``term_options: {"mi_zu_mine": {"inputs": ...}}``):
# - "samples": (z, u) as drawn (Eq. 17's I_q(z; u) itself);
# - "unit_scaled": each block divided by its batch standard deviation (no gradient; MI does not
#   change), as `shared_private_mmd` does, so that the encoders cannot move the bound by growing u;
# - "means": z and the mean μ_u(x) of q(u | x), each unit-scaled. u is drawn from q(u | x) with
#   noise independent of z given x, so I(z; u) ≤ I(z; μ_u(x), σ_u(x)) (data processing): the
#   penalty bounds Eq. 17's term through the representation itself, and adding noise to u, which
#   lowers the samples' MI without touching μ_u, is no escape (docs/results_fairness.md, finding 6).
MINE_INPUTS = {"samples": _shared_private, "unit_scaled": _mine_unit_scaled, "means": _mine_means}


def _mine_inputs(fp):
    """``(z, u)`` as the statistics network of ``mi_zu_mine`` reads them (its ``inputs`` option)."""
    return MINE_INPUTS[TERMS["mi_zu_mine"].option(fp.model.model_config, "inputs")](fp)


def _mine_critic_loss(fp):
    critic = fp.critic("mi_zu_mine")
    z, u = (ops.stop_gradient(t) for t in _mine_inputs(fp))
    loss, average = mine.mine_loss(critic([z, u]), critic([z, _shuffled(fp, u)]), critic.moving_average,
                                   decay=critic.decay)
    if fp.training:  # evaluation must not move the statistic
        critic.moving_average.assign(average)
    return loss


@register_term("mi_zu_mine", "regularizer", critic=_mine_critic, critic_loss=_mine_critic_loss,
               options={"inputs": tuple(MINE_INPUTS)})
def shared_private_mine(fp):
    """I_q(z; u) estimated by MINE's lower bound E_q(z,u)[T] − log E_q(z)q(u)[e^T] (Belghazi et al.
    2018; OURS-MINE in Table 3): the statistics network T maximizes it in phase
    ``critic:mi_zu_mine``, the encoders minimize it. ``term_options`` ``{"inputs": ...}`` choose
    what T reads (`MINE_INPUTS`): the samples (default), the unit-scaled samples or the unit-scaled
    z and mean of q(u | x), the representation itself (with σ_u(x) it bounds I(z; u) from above,
    by data processing)."""
    z, u = _mine_inputs(fp)
    critic = fp.critic("mi_zu_mine")
    return mine.mine_lower_bound(critic([z, u]), critic([z, _shuffled(fp, u)]))

"""Posterior aggregation strategies: how the experts q̃(z | x_i) of the present modalities S are
combined into q(z | x^S), chosen by a config's ``"posterior"`` field and registered by name.

- ``poe`` (default, the paper's Eq. 12-13): the weighted product of the experts with the prior
  expert, one diagonal Gaussian (`inference.product_of_experts`).
- ``moe`` (MMVAE, Shi et al. 2019): a uniform mixture of the unimodal posteriors of the present
  modalities, q(z | x^S) = (1/|S|) Σ_{i∈S} q(z | x_i). As in MMVAE, component i is expert i
  alone (no prior factor): MMVAE's unimodal encoders are the posteriors themselves.
- ``mopoe`` (MoPoE, Sutter et al. 2021): a uniform mixture over the products of experts of
  every non-empty subset s ⊆ S, q(z | x^S) = 1/(2^|S| − 1) Σ_s PoE(p(z), {q̃(z | x_i)}_{i∈s}),
  each product with the prior expert as in Eq. 13 (and as MoPoE's code adds the prior to its
  products).

Structure masks M^q keep their meaning where they have one:

- ``poe``, ``mopoe``: m_ij^q is the exponent of expert i on block Z_j inside every product
  (Eq. 12), so a continuous m scales the expert's precision;
- ``moe``: component i on block Z_j is p(z_j)^{1 − m_ij} q̃(z_j | x_i)^{m_ij}: with m_ij = 1 the
  expert alone (MMVAE), with m_ij = 0 the prior (x_i does not inform Z_j), in between the
  weighted product. M^q does not change the mixture weights.

In both mixtures the weights are uniform over the components whose modalities are all present,
and an example with no modality present gets the prior (one more component, ``subsets`` ``()``,
whose weight is 1 exactly then), as the product of experts does.

Each strategy returns a posterior object with ``sample``, ``log_prob``, its parameters
(``loc``, ``logvar`` per component ``[B, K, D]``, ``weights`` ``[B, K]``) and KL estimates:
closed form between Gaussians, Monte Carlo at a sample of the posterior otherwise.
"""
import itertools
import math

import numpy as np
from keras import ops

from mibzoo import inference
from mibzoo.errors import ConfigError, did_you_mean
from mibzoo.tfp import tfd

# Weight floor under the logarithm: a component of weight 0 gets log weight −69, which removes it
# from a float32 logsumexp (e^−69 ≈ 1e−30) without −inf in any gradient.
_WEIGHT_FLOOR = 1e-30


def _log_density(z, loc, logvar):
    return ops.sum(inference.gaussian_log_density(z, loc, logvar), axis=-1)


class GaussianPosterior:
    """q(z | x^S) = N(loc, diag e^logvar), one component (``poe``).

    Args:
        loc: ``[B, D]`` means.
        logvar: ``[B, D]`` log-variances.
    """

    gaussian = True
    # The one component aggregates every present modality (``None``: not a fixed subset).
    subsets = [None]

    def __init__(self, loc, logvar):
        self.loc = loc
        self.logvar = logvar

    @property
    def component_loc(self):
        return self.loc[:, None, :]

    @property
    def component_logvar(self):
        return self.logvar[:, None, :]

    @property
    def weights(self):
        return ops.ones_like(self.loc[:, :1])

    def gaussian_parameters(self):
        """``(loc, logvar)`` ``[B, D]``."""
        return self.loc, self.logvar

    def mean(self):
        return self.loc

    def log_variance(self):
        return self.logvar

    def sample(self, noise, num_samples=None):
        """z = μ + σ ε with ε = ``noise(shape)``: ``[B, D]``, or ``[S, B, D]`` with ``num_samples``."""
        if num_samples is None:
            return self.loc + ops.exp(0.5 * self.logvar) * noise(ops.shape(self.loc))
        batch, size = ops.shape(self.loc)[0], ops.shape(self.loc)[1]
        return self.loc[None] + ops.exp(0.5 * self.logvar)[None] * noise((num_samples, batch, size))

    def sample_from(self, eps, select=None):
        """z = μ + σ ε for given standard normal ``eps`` ``[..., B, D]`` (``select`` is unused)."""
        return self.loc + ops.exp(0.5 * self.logvar) * eps

    def component_samples(self, noise):
        """``[B, 1, D]``: one reparametrized sample of the (single) component."""
        return self.component_loc + ops.exp(0.5 * self.component_logvar) * noise(ops.shape(self.component_loc))

    def log_prob(self, z):
        """``[..., B]``: log q(z | x^S) for ``z`` ``[..., B, D]``."""
        return _log_density(z, self.loc, self.logvar)

    def kl_to_prior(self, prior_loc, prior_logvar, sample=None):
        """``[B]``: KL(q ‖ p(z)) in closed form (``sample`` is not called: no noise is drawn)."""
        return inference.kl_diagonal_gaussians(self.loc, self.logvar, prior_loc, prior_logvar)

    def kl_divergence(self, other, sample):
        """``[B]``: KL(q ‖ other), closed form when ``other`` is Gaussian too, else Monte Carlo
        log q(z) − log other(z) at ``z = sample()`` ~ q."""
        if other.gaussian:
            loc, logvar = other.gaussian_parameters()
            return inference.kl_diagonal_gaussians(self.loc, self.logvar, loc, logvar)
        z = sample()
        return self.log_prob(z) - other.log_prob(z)

    def distribution(self):
        return tfd.MultivariateNormalDiag(loc=self.loc, scale_diag=ops.exp(0.5 * self.logvar))


class MixturePosterior:
    """q(z | x^S) = Σ_k π_k N(loc_k, diag e^logvar_k) (``moe``, ``mopoe``).

    Args:
        loc: ``[B, K, D]`` component means.
        logvar: ``[B, K, D]`` component log-variances.
        weights: ``[B, K]`` non-negative component weights (normalized here).
        subsets: per component, the tuple of modality indices it aggregates (``()``: the prior).
    """

    gaussian = False

    def __init__(self, loc, logvar, weights, subsets):
        self.component_loc = loc
        self.component_logvar = logvar
        self.weights = weights / ops.sum(weights, axis=-1, keepdims=True)
        self.log_weights = ops.log(ops.maximum(self.weights, _WEIGHT_FLOOR))
        self.subsets = list(subsets)

    def gaussian_parameters(self):
        raise ValueError("this posterior is a mixture (posterior 'moe' or 'mopoe'), not one Gaussian: a closed-form "
                         "Gaussian quantity was asked of it (config validation refuses the terms that need one)")

    def mean(self):
        """``[B, D]``: Σ_k π_k μ_k."""
        return ops.sum(self.weights[..., None] * self.component_loc, axis=-2)

    def log_variance(self):
        """``[B, D]``: log of the mixture's variance Σ_k π_k (σ_k² + μ_k²) − mean²."""
        second = ops.sum(self.weights[..., None] * (ops.exp(self.component_logvar) + ops.square(self.component_loc)),
                         axis=-2)
        return ops.log(ops.maximum(second - ops.square(self.mean()), 1e-12))

    def _select(self, select):
        """One-hot component choice ``[..., B, K]`` from standard normal ``select`` ``[..., B, K]``
        (Gumbel-max: argmax_k log π_k + g_k, g_k = −log(−log Φ(ε_k)))."""
        uniform = ops.clip(0.5 * (1.0 + ops.erf(select / math.sqrt(2.0))), 1e-7, 1.0 - 1e-7)
        gumbel = -ops.log(-ops.log(uniform))
        k = ops.shape(self.component_loc)[1]
        return ops.one_hot(ops.argmax(self.log_weights + gumbel, axis=-1), k)

    def sample_from(self, eps, select):
        """z from the component chosen by ``select`` (``[..., B, K]`` standard normal), reparametrized
        within it by ``eps`` (``[..., B, D]``): gradients reach the chosen component's parameters."""
        if select is None:
            raise ValueError("a mixture posterior ('moe', 'mopoe') samples with component-selection noise "
                             "`select` [..., B, K] besides `eps`")
        onehot = self._select(select)[..., None]
        loc = ops.sum(onehot * self.component_loc, axis=-2)
        scale = ops.sum(onehot * ops.exp(0.5 * self.component_logvar), axis=-2)
        return loc + scale * eps

    def sample(self, noise, num_samples=None):
        """``[B, D]`` (or ``[S, B, D]``): a component drawn by its weight, then z within it."""
        batch, k, size = (ops.shape(self.component_loc)[i] for i in range(3))
        lead = () if num_samples is None else (num_samples,)
        select = noise(lead + (batch, k))
        return self.sample_from(noise(lead + (batch, size)), select)

    def component_samples(self, noise):
        """``[B, K, D]``: one reparametrized sample of every component (stratified sampling)."""
        return self.component_loc + ops.exp(0.5 * self.component_logvar) * noise(ops.shape(self.component_loc))

    def component_log_prob(self, z):
        """``[..., B, K]``: log N(z; μ_k, σ_k²) for ``z`` ``[..., B, D]``."""
        return _log_density(ops.expand_dims(z, -2), self.component_loc, self.component_logvar)

    def log_prob(self, z):
        """``[..., B]``: log Σ_k π_k N(z; μ_k, σ_k²) for ``z`` ``[..., B, D]``."""
        return ops.logsumexp(self.component_log_prob(z) + self.log_weights, axis=-1)

    def kl_to_prior(self, prior_loc, prior_logvar, sample):
        """``[B]``: KL(q ‖ p(z)) estimated by log q(z) − log p(z) at ``z = sample()`` ~ q (unbiased; a
        mixture's KL has no closed form)."""
        z = sample()
        return self.log_prob(z) - _log_density(z, prior_loc, prior_logvar)

    def kl_divergence(self, other, sample):
        """``[B]``: KL(q ‖ other) estimated by log q(z) − log other(z) at ``z = sample()`` ~ q."""
        z = sample()
        return self.log_prob(z) - other.log_prob(z)

    def distribution(self):
        return tfd.MixtureSameFamily(
            tfd.Categorical(logits=self.log_weights),
            tfd.MultivariateNormalDiag(loc=self.component_loc, scale_diag=ops.exp(0.5 * self.component_logvar)))


class Strategy:
    """An aggregation strategy: ``aggregate(...)`` returns the posterior object of a batch.

    ``gaussian`` says whether the posterior is one diagonal Gaussian (terms with a closed-form
    Gaussian posterior need it, `mibzoo.objectives.Term.needs_gaussian_posterior`).
    """

    name = None
    gaussian = False
    description = ""

    def aggregate(self, prior_loc, prior_logvar, expert_loc, expert_logvar, present, mask):
        """The posterior q(z | x^S).

        Args:
            prior_loc, prior_logvar: ``[D]`` prior parameters.
            expert_loc, expert_logvar: ``[B, N, D]`` the experts of every modality (absent: anything finite).
            present: ``[B, N]`` 0/1 presence of each modality.
            mask: ``[N, D]`` m_ij^q of each expert's block, per latent dimension.
        """
        raise NotImplementedError

    def __repr__(self):
        return f"<aggregation {self.name!r}>"


STRATEGIES = {}


def register_strategy(cls):
    """Class decorator registering one instance of ``cls`` under ``cls.name``."""
    if cls.name in STRATEGIES:
        raise ValueError(f"register_strategy: a strategy named {cls.name!r} is already registered")
    STRATEGIES[cls.name] = cls()
    return cls


def get(name, source="posterior"):
    """The registered strategy ``name``; a `ConfigError` naming the allowed ones otherwise."""
    if not isinstance(name, str) or name not in STRATEGIES:
        shown = name if isinstance(name, str) else ""
        raise ConfigError(source, "posterior", name, f"one of the aggregation strategies {sorted(STRATEGIES)}."
                          + did_you_mean(shown, STRATEGIES))
    return STRATEGIES[name]


def _with_prior_component(loc, logvar, weight, members, prior_loc, prior_logvar, present):
    """A `MixturePosterior` of the components ``loc``, ``logvar`` ``[B, K, D]`` with weights ``[B, K]``
    (``members``: the modalities of each), and the prior as a last component, of weight Π_i (1 − p_i)
    (1 exactly when no modality is present; the mixture is then the prior)."""
    zeros = ops.zeros_like(loc[:, 0])
    prior = (zeros + ops.cast(prior_loc, "float32"), zeros + ops.cast(prior_logvar, "float32"),
             ops.prod(1.0 - present, axis=-1))
    return MixturePosterior(ops.concatenate([loc, prior[0][:, None]], axis=1),
                            ops.concatenate([logvar, prior[1][:, None]], axis=1),
                            ops.concatenate([weight, prior[2][:, None]], axis=1), list(members) + [()])


@register_strategy
class ProductOfExperts(Strategy):
    name = "poe"
    gaussian = True
    description = "weighted product of the experts with the prior expert (Eq. 12-13): one Gaussian"

    def aggregate(self, prior_loc, prior_logvar, expert_loc, expert_logvar, present, mask):
        weights = present[:, :, None] * mask[None, :, :]
        return GaussianPosterior(*inference.product_of_experts(prior_loc, prior_logvar, expert_loc, expert_logvar,
                                                               weights))


@register_strategy
class MixtureOfExperts(Strategy):
    name = "moe"
    gaussian = False
    description = ("uniform mixture of the present modalities' unimodal posteriors, each expert alone "
                   "(MMVAE, Shi et al. 2019); block j of component i is p(z_j)^(1-m_ij) q(z_j|x_i)^m_ij")

    def aggregate(self, prior_loc, prior_logvar, expert_loc, expert_logvar, present, mask):
        expert_logvar = inference.clip_logvar(ops.cast(expert_logvar, "float32"))
        prior_precision = ops.exp(-inference.clip_logvar(ops.cast(prior_logvar, "float32")))
        prior_loc = ops.cast(prior_loc, "float32")
        mask = ops.cast(mask, "float32")
        precision_i = mask[None] * ops.exp(-expert_logvar)  # [B, N, D]
        precision = (1.0 - mask[None]) * prior_precision + precision_i
        loc = ((1.0 - mask[None]) * prior_precision * prior_loc + precision_i * expert_loc) / precision
        n = expert_loc.shape[1]
        return _with_prior_component(loc, -ops.log(precision), present, [(i,) for i in range(n)],
                                     prior_loc, prior_logvar, present)


def nonempty_subsets(n):
    """Every non-empty subset of ``range(n)``, by size then lexicographically."""
    return [s for size in range(1, n + 1) for s in itertools.combinations(range(n), size)]


@register_strategy
class MixtureOfProductsOfExperts(Strategy):
    name = "mopoe"
    gaussian = False
    description = ("uniform mixture over the products of experts (with the prior expert) of every non-empty "
                   "subset of the present modalities (MoPoE, Sutter et al. 2021)")

    def aggregate(self, prior_loc, prior_logvar, expert_loc, expert_logvar, present, mask):
        n = expert_loc.shape[1]
        weights = present[:, :, None] * mask[None, :, :]
        locs, logvars, component_weights = [], [], []
        subsets = nonempty_subsets(n)
        for subset in subsets:
            member = ops.convert_to_tensor(np.isin(np.arange(n), subset).astype("float32"))
            loc, logvar = inference.product_of_experts(prior_loc, prior_logvar, expert_loc, expert_logvar,
                                                       weights * member[None, :, None])
            locs.append(loc)
            logvars.append(logvar)
            component_weights.append(ops.prod(ops.take(present, list(subset), axis=1), axis=-1))
        return _with_prior_component(ops.stack(locs, axis=1), ops.stack(logvars, axis=1),
                                     ops.stack(component_weights, axis=1), subsets, prior_loc, prior_logvar, present)

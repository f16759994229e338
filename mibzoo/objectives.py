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
from typing import Callable

from keras import ops

from mibzoo.estimators.aggregate import aggregate_kl_to_prior


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


TERMS = {}


def register_term(name, kind, per_modality=False, description=""):
    """Decorator registering ``fn(forward_pass)`` as the term ``name``."""
    if kind not in ("cost", "regularizer"):
        raise ValueError(f"register_term({name!r}): kind must be 'cost' or 'regularizer', got {kind!r}")

    def decorate(fn):
        if name in TERMS:
            raise ValueError(f"register_term: a term named {name!r} is already registered")
        TERMS[name] = Term(name, kind, per_modality, fn, description or (fn.__doc__ or "").strip())
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
    """``[B]``: −ELBO of the joint (Eq. 2), over every latent: Σ_i −log p(x_i|z,u_i) + KL_z + Σ_i KL_u_i."""
    total = fp.kl_to_prior()
    for name in fp.x:
        total = total + fp.negative_log_likelihood(name) + fp.private_kl(name)
    return total


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
    + KL(q(z|x_i) ‖ p(z)) + KL(q(u_i|x_i) ‖ p(u_i))."""
    def one(name):
        i = fp.names.index(name)
        kl = fp.kl_to_prior(i) * fp.presence(name)
        return fp.negative_log_likelihood(name, i) + kl + fp.private_kl(name)
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
    Eq. 16): z inferred from x_i alone must match z inferred from all present modalities."""
    return _per_modality(fp, fp.kl_joint_to_single)


@register_term("private", "regularizer", per_modality=True)
def private(fp):
    """D(q ‖ G^str_private(x_i)) ≤ I_q(X_i; U_i) ≤ E KL(q(u_i | x_i) ‖ p(u_i)). Derived (the appendix
    is not available): the M-projection onto a network in which U_i carries nothing beyond what
    is private to X_i is bounded by the rate of U_i, which pushes shared content into Z
    (Wyner VAE's succinct common representation)."""
    return _per_modality(fp, fp.private_kl)

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
# The term modules register their terms on import (in this order, which is the order of TERMS).
from mibzoo.objectives import elbo  # noqa: I001
from mibzoo.objectives import critics, fairness, ood
from mibzoo.objectives.registry import TERMS, HyperParameter, Term, get_term, register_term

__all__ = ["TERMS", "HyperParameter", "Term", "critics", "elbo", "fairness", "get_term", "ood", "register_term"]

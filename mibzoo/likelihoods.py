"""Likelihoods p(x_i | z ⊙ m_i^p, u_i) as TFP distributions, one family per modality kind.

Decoders are Keras layers and return tensors (Keras 3 layers cannot return distributions);
this module turns a decoder's raw output into the distribution of its modality:

- image / vector: ``bernoulli`` (logits), ``normal`` or ``laplace`` (location and a softplus
  scale, stacked on the last axis), independent over pixels / features;
- categorical: ``OneHotCategorical`` over the class logits (batches are one-hot inside the model);
- tabular: a product (``Blockwise``) of a Normal over the numeric columns and one
  ``OneHotCategorical`` per categorical group.
"""
from keras import ops

from mibzoo.tfp import tfd

MIN_SCALE = 1e-3


def param_shape(spec):
    """Shape of the decoder output (without batch) that parametrizes this modality's likelihood."""
    kind = spec["kind"]
    if kind == "image":
        h, w, c = spec["shape"]
        return (h, w, c if spec["likelihood"] == "bernoulli" else 2 * c)
    if kind == "vector":
        d = spec["size"]
        return (d if spec["likelihood"] == "bernoulli" else 2 * d,)
    if kind == "categorical":
        return (spec["classes"],)
    return (2 * spec["numeric"] + sum(spec["categorical"]),)


def _scale(raw):
    return ops.softplus(raw) + MIN_SCALE


def _real_valued(likelihood, params, event_ndims):
    if likelihood == "bernoulli":
        return tfd.Independent(tfd.Bernoulli(logits=params, dtype="float32"), event_ndims)
    loc, raw_scale = ops.split(params, 2, axis=-1)
    family = tfd.Normal if likelihood == "normal" else tfd.Laplace
    return tfd.Independent(family(loc=loc, scale=_scale(raw_scale)), event_ndims)


def distribution(spec, params):
    """The likelihood of one modality given its decoder output.

    Args:
        spec: a normalized modality spec (see `mibzoo.modalities`).
        params: decoder output of shape ``[..., *param_shape(spec)]`` (cast to float32 here, so
            decoders may compute in bfloat16 under mixed precision).

    Returns:
        A ``tfd.Distribution`` whose event shape is the modality's event shape
        (`mibzoo.modalities.event_shape`).
    """
    params = ops.cast(params, "float32")
    kind = spec["kind"]
    if kind == "image":
        return _real_valued(spec["likelihood"], params, 3)
    if kind == "vector":
        return _real_valued(spec["likelihood"], params, 1)
    if kind == "categorical":
        return tfd.OneHotCategorical(logits=params, dtype="float32")
    numeric = spec["numeric"]
    parts = []
    if numeric:
        loc, raw_scale = params[..., :numeric], params[..., numeric:2 * numeric]
        parts.append(tfd.Independent(tfd.Normal(loc=loc, scale=_scale(raw_scale)), 1))
    start = 2 * numeric
    for size in spec["categorical"]:
        parts.append(tfd.OneHotCategorical(logits=params[..., start:start + size], dtype="float32"))
        start += size
    return parts[0] if len(parts) == 1 else tfd.Blockwise(parts)


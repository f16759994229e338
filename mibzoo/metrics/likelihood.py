"""Test log-likelihood by importance sampling: the IWAE bound (Burda et al. 2016).

For the modalities S given (all of them: the joint; one: a marginal), with the model's own
inference network as proposal q(z, u_S | x_S) = q(z | x_S) Π_{i∈S} q(u_i | x_i) (Eq. 4, 12-13;
q(z | x_S) is the model's aggregated posterior, `mibzoo.aggregation`: for ``moe`` and ``mopoe`` z_k
is drawn from the mixture and log q(z_k | x_S) is the mixture's log-density):

    log w_k = log p(z_k) + Σ_{i∈S} [log p(u_ik) + log p(x_i | z_k ⊙ m_i^p, u_ik)]
              − log q(z_k | x_S) − Σ_{i∈S} log q(u_ik | x_i),

    L_K(x_S) = log (1/K) Σ_k w_k  ≤  log p(x_S).

L_1 is the single-sample ELBO; E L_K never decreases in K and tends to log p(x_S) (Burda et al.
2016, Thm. 1). Values are in nats per example. Bernoulli pixels with grey values in [0, 1] are
scored with the cross-entropy the model trains on (as TFP's Bernoulli does), so image
likelihoods compare models with each other, not with binarized-MNIST numbers in the literature.

Reference: Y. Burda, R. Grosse, R. Salakhutdinov. Importance Weighted Autoencoders. ICLR 2016.
"""
import numpy as np

from mibzoo.metrics import _common


def draw_noise(model, modalities, k, batch, seed, components=1):
    """Standard normal noise of one batch: ``{"z": [K, B, Dz], "u": {name: [K, B, Du]}, "select": [K, B, C]}``
    (stateless); ``select`` chooses the component of a mixture posterior (C components; unused by
    a Gaussian one).

    Args:
        model: the `MIBModel`.
        modalities: names of the given modalities, in the model's order.
        k: importance samples per example.
        batch: batch size.
        seed: int; the same seed gives the same noise.
        components: number of components of the posterior (the width of ``select``).
    """
    import tensorflow as tf

    out = {"z": tf.random.stateless_normal((k, batch, model.shared_size), seed=[seed, 0]), "u": {},
           "select": tf.random.stateless_normal((k, batch, components), seed=[seed, 1 + len(modalities)])}
    for index, name in enumerate(modalities):
        if model.private_sizes[name]:
            out["u"][name] = tf.random.stateless_normal((k, batch, model.private_sizes[name]), seed=[seed, 1 + index])
    return out


def log_importance_weights(model, inputs, k=1, seed=0, noise=None, chunk=None):
    """``[K, B]`` log importance weights log p(x_S, z_k, u_k) − log q(z_k, u_k | x_S).

    Args:
        model: an `MIBModel`.
        inputs: ``{modality: batch}``: the modalities S to score (other keys are ignored).
        k: importance samples per example.
        seed: seed of the noise (see `draw_noise`).
        noise: optional explicit noise in the form `draw_noise` returns (overrides ``seed``).
        chunk: samples decoded per call (default: as many as keep K·B ≤ 4096 per call).

    Returns:
        A numpy array ``[K, B]`` (float64).
    """
    from keras import ops

    from mibzoo.inference import gaussian_log_density

    given = {name: value for name, value in inputs.items() if name in model.modality_specs}
    if not given:
        raise ValueError(f"log_importance_weights: inputs have none of the model's modalities "
                         f"{model.modality_names}; got keys {sorted(inputs)}")
    fp = model.forward_pass(given)  # the posterior is deterministic; noise is supplied explicitly below
    x = fp.x
    names = [n for n in model.modality_names if n in x]
    post = fp.aggregate()
    batch = int(post.component_loc.shape[0])
    if noise is None:
        noise = draw_noise(model, names, k, batch, seed, components=int(post.component_loc.shape[1]))
    k = int(noise["z"].shape[0])
    chunk = chunk or max(1, 4096 // max(batch, 1))
    pieces = []
    for start in range(0, k, chunk):
        stop = min(k, start + chunk)
        kc = stop - start
        eps = ops.convert_to_tensor(noise["z"][start:stop])
        select = noise.get("select")
        z = post.sample_from(eps, None if select is None else ops.convert_to_tensor(select[start:stop]))  # [kc, B, Dz]
        log_w = ops.sum(gaussian_log_density(z, model.prior_loc, model.prior_logvar), -1) - post.log_prob(z)
        z_flat = ops.reshape(z, (kc * batch, model.shared_size))
        for name in names:
            u_flat = None
            if model.private_sizes[name]:
                _, _, u_loc, u_logvar = fp.encoder_outputs()[name]
                u = u_loc[None] + ops.exp(0.5 * u_logvar)[None] * ops.convert_to_tensor(noise["u"][name][start:stop])
                zeros = ops.zeros_like(u)
                log_w = log_w + (ops.sum(gaussian_log_density(u, zeros, zeros), -1)
                                 - ops.sum(gaussian_log_density(u, u_loc[None], u_logvar[None]), -1))
                u_flat = ops.reshape(u, (kc * batch, model.private_sizes[name]))
            target = ops.reshape(ops.tile(x[name][None], (kc,) + (1,) * len(x[name].shape)),
                                 (kc * batch,) + tuple(x[name].shape[1:]))
            log_px = fp.decode(name, z_flat, u_flat).log_prob(target)
            log_w = log_w + ops.reshape(log_px, (kc, batch))
        pieces.append(_common.to_numpy(log_w).astype("float64"))
    return np.concatenate(pieces, axis=0)


def _log_mean_exp(log_w):
    top = np.max(log_w, axis=0)
    return top + np.log(np.mean(np.exp(log_w - top[None]), axis=0))


def iwae_bound(model, arrays, modalities=None, k=50, batch_size=128, seed=0, limit=None):
    """Mean IWAE bound L_K of log p(x_S) over a data set, in nats per example.

    Args:
        model: an `MIBModel`.
        arrays: ``{key: np.ndarray}`` holding the modalities.
        modalities: the subset S to score (default: all of the model's modalities, the joint).
        k: importance samples K (K = 1: the ELBO).
        batch_size: examples per batch (K·batch samples are decoded per batch, in chunks).
        seed: base seed; batch ``b`` uses ``seed + b`` (reproducible).
        limit: use only the first ``limit`` examples.

    Returns:
        The mean of L_K over the examples (float; higher is better).

    Example:

    ```python
    ll_joint = iwae_bound(model, test, k=100)
    ll_image = iwae_bound(model, test, modalities=["image"], k=100)
    ```
    """
    if isinstance(k, bool) or not isinstance(k, int) or k <= 0:
        raise ValueError(f"iwae_bound: k must be a positive integer, got {k!r}")
    names = list(modalities or _common.modality_specs(model))
    _common.check_modalities(model, names, "iwae_bound")
    _common.check_keys(arrays, names, "iwae_bound")
    values = []
    for b, (_, batch) in enumerate(_common.batches(arrays, names, batch_size, limit)):
        values.append(_log_mean_exp(log_importance_weights(model, batch, k, seed=seed + b)))
    return float(np.mean(np.concatenate(values)))


def elbo(model, arrays, modalities=None, batch_size=128, seed=0, limit=None):
    """Single-sample Monte Carlo ELBO with the same noise as ``iwae_bound(..., k=1, seed=seed)``."""
    return iwae_bound(model, arrays, modalities, 1, batch_size, seed, limit)


def log_likelihoods(model, arrays, k=50, batch_size=128, seed=0, limit=None):
    """IWAE bounds of the joint and of each modality alone: ``{"joint": L, name: L, ...}``."""
    names = list(_common.modality_specs(model))
    out = {"joint": iwae_bound(model, arrays, names, k, batch_size, seed, limit)}
    if len(names) > 1:
        for name in names:
            out[name] = iwae_bound(model, arrays, [name], k, batch_size, seed, limit)
    return out

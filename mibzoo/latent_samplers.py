"""Where unconditional generation draws the shared latent z: the prior p(z), or a density fitted to
the aggregate posterior after training (ex-post density estimation).

A model trained with a standard normal prior rarely fills it: its aggregate posterior
q(z) = (1/N) Σ_n q(z | x_n) forms clusters (one per class on MNIST-Label), and N(0, I) puts much of
its mass between them, where the decoders were never trained and disagree (the prior hole,
Hoffman & Johnson 2016; Rosca et al. 2018; measured in docs/results.md, Issue 10). Ghosh et al.
(2020) fit a Gaussian mixture to the latent codes of the training set after training and sample
from it instead of the prior; MultiVae's ``GaussianMixtureSampler`` does the same for the joint
coherence of multimodal VAEs. Nothing about the trained networks changes: the objective, the
likelihood bounds (`mibzoo.metrics`, IWAE against p(z)) and conditional generation still use p(z);
only ``sample`` (joint generation, `mibzoo.generation.GenerativeAPI.latent_sample`) reads the sampler.

A model's sampler is its config field ``latent_sampler`` (`mibzoo.config`):

- ``"prior"`` (default): z ~ p(z), as in Eq. 3;
- ``{"kind": "gmm", "components": 10, "covariance": "full", "fit_on": "sample", "n_init": 1}``: a
  mixture of ``components`` Gaussians (``"full"`` or ``"diag"`` covariances) fitted by EM
  (scikit-learn's ``GaussianMixture``, the most likely of ``n_init`` runs) to one z ~ q(z | all
  modalities) per training example (``"fit_on": "sample"``, as MultiVae) or to the posterior means
  (``"mean"``, Ghosh et al.'s deterministic codes).
  `mibzoo train` fits it after the last epoch (`fit_latent_sampler`) and records the fit in
  ``run.json``. Its parameters are non-trainable weights of the model, so a saved ``.keras`` file,
  ``model.sample``, the exported ``sample`` signatures and ``mibzoo evaluate`` all use the fitted
  mixture; until it is fitted the model samples from p(z), exactly as with ``"prior"``.

Samplers are registered by kind (`register_sampler`), like the aggregation strategies.

Example:

```python
model = mibzoo.load("jmvae", latent_sampler={"kind": "gmm", "components": 10})
model.compile(optimizer="adam"); model.fit(dataset, epochs=5)
mibzoo.latent_samplers.fit_latent_sampler(model, train_arrays)   # what `mibzoo train` does
model.sample(16, seed=0)                                         # z from the fitted mixture
```

References: P. Ghosh, M. S. M. Sajjadi, A. Vergari, M. Black, B. Schölkopf. From Variational to
Deterministic Autoencoders. ICLR 2020, Sec. 4 (ex-post density estimation).
"""
import math
import time

import keras
import numpy as np
import tensorflow as tf
import tensorflow_probability as tfp
from keras import ops

from mibzoo.errors import ConfigError, did_you_mean

tfd = tfp.distributions

SAMPLERS = {}


def register_sampler(cls):
    """Class decorator registering a `LatentSampler` subclass under ``cls.kind``."""
    if cls.kind in SAMPLERS:
        raise ValueError(f"register_sampler: a latent sampler of kind {cls.kind!r} is already registered")
    SAMPLERS[cls.kind] = cls
    return cls


def validate(value, source, has_inference=True):
    """The normalized ``latent_sampler`` field: ``{"kind": ..., option: value, ...}`` with every option
    of the kind at its default unless given.

    Args:
        value: ``None`` or a kind name (``"prior"``), or ``{"kind": name, option: value}``.
        source: where the config came from (named in errors).
        has_inference: whether the model has an inference network (a fitted sampler needs one).

    Raises:
        ConfigError: an unknown kind or option, a bad option value, or a sampler that needs an
            inference network on a model without one.
    """
    if value is None:
        value = "prior"
    if isinstance(value, str):
        value = {"kind": value}
    kinds = sorted(SAMPLERS)
    if not isinstance(value, dict) or not isinstance(value.get("kind"), str):
        raise ConfigError(source, "latent_sampler", value, f"a sampler kind, one of {kinds}, or {{\"kind\": ..., "
                          f"option: value}}")
    kind = value["kind"]
    if kind not in SAMPLERS:
        raise ConfigError(source, "latent_sampler.kind", kind, f"one of {kinds}." + did_you_mean(kind, kinds))
    cls = SAMPLERS[kind]
    known = {**cls.defaults, **cls.optional}
    out = {"kind": kind, **cls.defaults}
    for key, option in value.items():
        if key == "kind":
            continue
        if key not in known:
            raise ConfigError(source, f"latent_sampler.{key}", option,
                              f"an option of sampler {kind!r}, one of {sorted(known)}" + did_you_mean(key, known))
        out[key] = option
    cls.check_options({**cls.optional, **out}, source)
    if cls.needs_inference and not has_inference:
        raise ConfigError(source, "latent_sampler.kind", kind,
                          "'prior' for a model without an inference network (inference_structure 'none'): "
                          f"sampler {kind!r} is fitted to the posterior q(z | x)")
    return out


def make(config, latent_size, name="latent_sampler"):
    """The sampler layer of a validated ``latent_sampler`` config for a shared latent of ``latent_size``."""
    options = {k: v for k, v in config.items() if k != "kind"}
    return SAMPLERS[config["kind"]](latent_size, name=name, **options)


class LatentSampler(keras.layers.Layer):
    """A source of the shared z for unconditional generation.

    Subclasses set ``kind``, ``defaults`` (``{option: default}``, the config's keys) and
    ``needs_inference``, and implement `check_options`, `is_fitted`, `sample`, `distribution` and
    `fit`. ``get_config`` mirrors ``__init__``.
    """

    kind = None
    defaults = {}
    # Options added after configs were measured: left out of the normalized config unless given, so
    # that the configs which do not set them keep their form (and `compare.config_digest`).
    optional = {}
    needs_inference = False

    def __init__(self, latent_size, **kwargs):
        super().__init__(**kwargs)
        self.latent_size = int(latent_size)

    @classmethod
    def check_options(cls, options, source):
        """Raises `ConfigError` for a bad option value."""

    def is_fitted(self):
        """Whether `sample` replaces the prior (read at trace time inside a ``tf.function``)."""
        return False

    def sample(self, num_samples, noise):
        """``[num_samples, latent_size]`` draws, all standard normal noise from ``noise(shape)``."""
        raise NotImplementedError

    def distribution(self):
        """The sampled density as a TFP distribution over ``[latent_size]``."""
        raise NotImplementedError

    def log_prob(self, z):
        """``[B]``: the log-density of the sampler at ``z`` ``[B, latent_size]``."""
        return self.distribution().log_prob(ops.cast(z, "float32"))

    def fit(self, z, seed=0):
        """Fits the sampler to latent codes ``z`` ``[N, latent_size]``; returns a JSON-able record."""
        raise NotImplementedError

    def get_config(self):
        config = super().get_config()
        config.update(latent_size=self.latent_size, **{k: getattr(self, k) for k in {**self.defaults, **self.optional}})
        return config


@keras.saving.register_keras_serializable(package="mibzoo")
@register_sampler
class PriorSampler(LatentSampler):
    """z ~ p(z) = N(0, I): the model's own prior (nothing to fit; `GenerativeAPI.prior_sample`)."""

    kind = "prior"

    def sample(self, num_samples, noise):
        return noise((num_samples, self.latent_size))

    def distribution(self):
        return tfd.MultivariateNormalDiag(loc=ops.zeros((self.latent_size,)))


COVARIANCES = ("full", "diag")
FIT_ON = ("sample", "mean")


@keras.saving.register_keras_serializable(package="mibzoo")
@register_sampler
class GaussianMixtureSampler(LatentSampler):
    """z ~ Σ_k π_k N(μ_k, L_k L_kᵀ), fitted by EM to the training set's aggregate posterior.

    Weights (non-trainable, saved with the model): ``logits`` ``[K]`` (log π_k), ``loc`` ``[K, D]``,
    ``scale_tril`` ``[K, D, D]`` (the Cholesky factor L_k of each covariance; diagonal for
    ``covariance="diag"``) and ``fitted`` (0 or 1). Unfitted, the mixture is K copies of N(0, I) and
    the model samples from its prior.

    Args:
        latent_size: D, the size of the shared latent.
        components: K.
        covariance: ``"full"`` or ``"diag"`` component covariances.
        fit_on: ``"sample"`` (one z ~ q(z | X) per training example) or ``"mean"`` (its mean).
        max_iter: EM iterations at most.
        n_init: EM runs from as many k-means initializations; the fit with the highest likelihood is
            kept (scikit-learn's ``n_init``). EM from one initialization can end at a local optimum
            whose components straddle two classes, which costs joint coherence (docs/results.md,
            section 22).
    """

    kind = "gmm"
    defaults = {"components": 10, "covariance": "full", "fit_on": "sample", "max_iter": 500}
    optional = {"n_init": 1}
    needs_inference = True

    def __init__(self, latent_size, components=10, covariance="full", fit_on="sample", max_iter=500, n_init=1,
                 **kwargs):
        super().__init__(latent_size, **kwargs)
        self.check_options({"components": components, "covariance": covariance, "fit_on": fit_on,
                            "max_iter": max_iter, "n_init": n_init}, f"{type(self).__name__}({self.name})")
        self.components, self.covariance, self.fit_on, self.max_iter = int(components), covariance, fit_on, int(max_iter)
        self.n_init = int(n_init)
        k, d = self.components, self.latent_size
        self.logits = self.add_weight(shape=(k,), initializer="zeros", trainable=False, name="logits")
        self.loc = self.add_weight(shape=(k, d), initializer="zeros", trainable=False, name="loc")
        eye = np.broadcast_to(np.eye(d, dtype="float32"), (k, d, d)).copy()
        self.scale_tril = self.add_weight(shape=(k, d, d), initializer=keras.initializers.Constant(eye),
                                          trainable=False, name="scale_tril")
        self.fitted = self.add_weight(shape=(), initializer="zeros", trainable=False, name="fitted")
        self.built = True

    @classmethod
    def check_options(cls, options, source):
        for key in ("components", "max_iter", "n_init"):
            value = options[key]
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(source, f"latent_sampler.{key}", value, "a positive integer")
        if options["covariance"] not in COVARIANCES:
            raise ConfigError(source, "latent_sampler.covariance", options["covariance"], f"one of {list(COVARIANCES)}"
                              + did_you_mean(str(options["covariance"]), COVARIANCES))
        if options["fit_on"] not in FIT_ON:
            raise ConfigError(source, "latent_sampler.fit_on", options["fit_on"], f"one of {list(FIT_ON)}"
                              + did_you_mean(str(options["fit_on"]), FIT_ON))

    def is_fitted(self):
        # Read eagerly even while a tf.function (an exported signature) is traced: the branch in
        # `GenerativeAPI.latent_sample` is chosen from the weights the model has when it is traced.
        with tf.init_scope():
            return bool(ops.convert_to_numpy(self.fitted) > 0.5)

    def sample(self, num_samples, noise):
        """ε ~ N(0, I) first (``noise((n, D))``), then the component k from a uniform Φ(η),
        η = ``noise((n,))``, by the inverse of the cumulative weights; z = μ_k + L_k ε."""
        eps = noise((num_samples, self.latent_size))
        uniform = 0.5 * (1.0 + ops.erf(noise((num_samples,)) / math.sqrt(2.0)))
        cdf = ops.cumsum(ops.softmax(self.logits))
        component = ops.sum(ops.cast(uniform[:, None] >= cdf[None, :-1], "int32"), axis=1)
        loc = ops.take(self.loc, component, axis=0)
        scale = ops.take(self.scale_tril, component, axis=0)
        return loc + ops.einsum("nij,nj->ni", scale, eps)

    def distribution(self):
        return tfd.MixtureSameFamily(
            mixture_distribution=tfd.Categorical(logits=ops.convert_to_tensor(self.logits)),
            components_distribution=tfd.MultivariateNormalTriL(loc=ops.convert_to_tensor(self.loc),
                                                               scale_tril=ops.convert_to_tensor(self.scale_tril)))

    def fit(self, z, seed=0):
        """EM on ``z`` ``[N, D]`` (scikit-learn ``GaussianMixture``, ``n_init`` k-means initializations
        seeded with ``seed``, the most likely fit kept); the fitted weights, means and Cholesky factors
        become the layer's weights."""
        from sklearn.mixture import GaussianMixture

        z = np.asarray(z, "float64")
        if z.ndim != 2 or z.shape[1] != self.latent_size:
            raise ValueError(f"{self.name}.fit: latent codes must be [N, {self.latent_size}]; got {list(z.shape)}")
        if len(z) < self.components:
            raise ValueError(f"{self.name}.fit: {len(z)} codes for {self.components} components")
        if not np.all(np.isfinite(z)):
            raise ValueError(f"{self.name}.fit: latent codes contain NaN or infinity")
        started = time.perf_counter()
        gmm = GaussianMixture(n_components=self.components, covariance_type=self.covariance, max_iter=self.max_iter,
                              n_init=self.n_init, random_state=seed).fit(z)
        if self.covariance == "full":
            tril = np.linalg.cholesky(gmm.covariances_)
        else:
            tril = np.stack([np.diag(np.sqrt(c)) for c in gmm.covariances_])
        self.logits.assign(np.log(gmm.weights_).astype("float32"))
        self.loc.assign(gmm.means_.astype("float32"))
        self.scale_tril.assign(tril.astype("float32"))
        self.fitted.assign(1.0)
        prior = -0.5 * np.sum(z ** 2, axis=1) - 0.5 * self.latent_size * math.log(2 * math.pi)
        return {"kind": self.kind, "components": self.components, "covariance": self.covariance,
                "fit_on": self.fit_on, "n_init": self.n_init, "examples": int(len(z)), "converged": bool(gmm.converged_),
                "iterations": int(gmm.n_iter_), "mean_log_density": float(gmm.score(z)),
                "prior_mean_log_density": float(np.mean(prior)), "weights": [round(float(w), 4) for w in gmm.weights_],
                "seconds": round(time.perf_counter() - started, 2)}


def posterior_codes(model, arrays, fit_on="sample", batch_size=1000, seed=0, present=None):
    """``[N, D]`` latent codes of q(z | all given modalities) (Eq. 13, or the model's aggregation
    strategy), one per example: a draw (``fit_on="sample"``, stateless, seeded per batch) or the
    posterior mean (``"mean"``). ``present`` (``{modality: [N] 0/1}``) drops hidden values."""
    inputs = {m: arrays[m] for m in model.modality_names if m in arrays}
    if not inputs:
        raise ValueError(f"posterior_codes: the arrays {sorted(arrays)} hold none of the modalities "
                         f"{model.modality_names}")
    n = len(next(iter(inputs.values())))
    codes = []
    for b, start in enumerate(range(0, n, batch_size)):
        batch = {m: v[start:start + batch_size] for m, v in inputs.items()}
        given = {m: v[start:start + batch_size] for m, v in present.items()} if present else None
        if fit_on == "mean":
            codes.append(ops.convert_to_numpy(model.encode(batch, present=given)["loc"]))
        else:
            stateless = tf.constant([seed, b], tf.int32)
            codes.append(ops.convert_to_numpy(model.posterior(batch, present=given).sample(seed=stateless)))
    return np.concatenate(codes, axis=0)


def fit_latent_sampler(model, arrays, batch_size=1000, seed=0, present=None):
    """Fits ``model.latent_sampler`` to the aggregate posterior of ``arrays`` (the training split:
    ``{modality: array}``, other keys ignored; ``present``: optional ``{modality: [N] 0/1}``); what
    `mibzoo train` does after the last epoch.

    Returns:
        The fit's record (JSON-able), or ``None`` for a sampler with nothing to fit (``"prior"``).
    """
    sampler = model.latent_sampler
    if not sampler.needs_inference:
        return None
    started = time.perf_counter()
    codes = posterior_codes(model, arrays, sampler.fit_on, batch_size, seed, present)
    record = sampler.fit(codes, seed)
    record["seconds_with_encoding"] = round(time.perf_counter() - started, 2)
    return record


def with_sampler(model, latent_sampler):
    """A copy of a trained ``model`` (same weights) whose config's ``latent_sampler`` is replaced,
    unfitted: how a run trained without a sampler gets one (fit it with `fit_latent_sampler`)."""
    config = {**model.get_config(), "latent_sampler": latent_sampler}
    copy = type(model).from_config(config)
    own = {id(v) for v in model.latent_sampler.weights}
    new_own = {id(v) for v in copy.latent_sampler.weights}
    source = [v for v in model.weights if id(v) not in own]
    target = [v for v in copy.weights if id(v) not in new_own]
    if len(source) != len(target):
        raise ValueError(f"with_sampler: {len(source)} weights in the model, {len(target)} in its copy")
    for src, dst in zip(source, target):
        if tuple(src.shape) != tuple(dst.shape):
            raise ValueError(f"with_sampler: weight {src.path} has shape {src.shape}, its copy {dst.shape}")
        dst.assign(src)
    return copy

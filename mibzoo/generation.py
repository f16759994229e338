"""The user API of a trained model: encode, the posterior, conditional and cross-modal generation,
p(target | source), reconstructions and joint samples, with their seeds.

`GenerativeAPI` is the half of `mibzoo.model.MIBModel` that users call after training; every
quantity it needs of q and p it takes from the model's `forward_pass`, its networks and its
aggregation strategy (`mibzoo.aggregation`).
"""
import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mibzoo.errors import InputError, NoInferenceNetworkError, did_you_mean
from mibzoo.modalities import event_shape


def _seed_pair(seed, index):
    """An int32 ``[2]`` stateless seed for draw ``index`` of a request seeded with ``seed``."""
    base = ops.cast(ops.reshape(ops.convert_to_tensor(seed), (-1,)), "int32")
    if base.shape[0] == 1:
        base = ops.concatenate([base, ops.zeros((1,), "int32")])
    return base + ops.convert_to_tensor([0, index], "int32")


class GenerativeAPI:
    """Encoding, generation and sampling of an `MIBModel` (Eq. 3 for generation, Eq. 4 and 13 for
    the posterior)."""

    # ----- noise ---------------------------------------------------------------------------
    def _noise_source(self, seed):
        """Returns ``noise(shape)``: training noise (a SeedGenerator), fresh samples (``seed=None``),
        stateless draws from an int or an int32 ``[2]`` seed (reproducible across processes), or
        ``seed`` itself when it is already a noise callable."""
        if isinstance(seed, keras.random.SeedGenerator):
            return lambda shape: keras.random.normal(shape, seed=seed)
        if callable(seed):  # a noise source of its own (export: one stateless seed per example)
            return seed
        if seed is None:
            return lambda shape: keras.random.normal(shape, seed=self.sampling_seed_generator)
        self._check_seed(seed)
        counter = [0]

        def draw(shape):
            counter[0] += 1
            return tf.random.stateless_normal(shape, seed=_seed_pair(seed, counter[0]))

        return draw

    def _check_seed(self, seed):
        """Refuses seeds that are not a non-negative int or an int32 ``[2]`` (or ``[1]``) array."""
        if isinstance(seed, bool) or isinstance(seed, (str, bytes, float)):
            raise InputError(f"{self.name}: seed must be None, a non-negative integer or an int32 [2] array; "
                             f"got {seed!r}")
        if isinstance(seed, (int, np.integer)):
            if seed < 0:
                raise InputError(f"{self.name}: seed must be non-negative; got {seed}")
            return
        shape = tuple(getattr(seed, "shape", np.shape(seed)))
        dtype = keras.backend.standardize_dtype(getattr(seed, "dtype", np.asarray(seed).dtype))
        if "int" not in dtype or shape not in ((), (1,), (2,)):
            raise InputError(f"{self.name}: seed must be None, a non-negative integer or an int32 [2] array; "
                             f"got {dtype} of shape {list(shape)}")

    def _check_count(self, value, what):
        """``value`` is a positive Python int, or a symbolic count (an export's batch size)."""
        if isinstance(value, bool) or (isinstance(value, (int, np.integer)) and value < 1) \
                or isinstance(value, (float, str)):
            raise InputError(f"{self.name}: {what} must be a positive integer; got {value!r}")

    @staticmethod
    def _check_mode(mode):
        if mode not in ("mean", "sample"):
            raise InputError(f"mode must be 'mean' (likelihood means) or 'sample' (draws); got {mode!r}")

    # ----- user API ------------------------------------------------------------------------
    def _require_inference(self, what):
        if not self.has_inference:
            raise NoInferenceNetworkError(
                f"{self.name}: {what}() needs an inference network, and this model has none (G^q is empty "
                f"in Table 2, inference_structure 'none'); use sample(), with latents= to fix code blocks")

    def prior_sample(self, num_samples, noise, latents=None):
        """z ~ p(z) block by block: normal blocks N(0, σ² I), uniform one-hot categorical blocks,
        uniform blocks U(−a, a)^size.

        Args:
            num_samples: number of draws.
            noise: ``noise(shape)`` standard normal source (`_noise_source`).
            latents: optional ``{block: values}`` fixing blocks (categorical blocks take class ids
                ``[n]`` or one-hot rows; normal and uniform blocks ``[n, size]``).
        """
        latents = latents or {}
        unknown = sorted(set(latents) - set(self.block_names))
        if unknown:
            raise InputError(f"{self.name}: unknown latent block {unknown[0]!r}; blocks are {self.block_names}")
        parts, start = [], 0
        for name, size, prior in zip(self.block_names, self.block_sizes, self.block_priors):
            if name in latents:
                value = ops.convert_to_tensor(latents[name])
                if prior == "categorical" and len(value.shape) == 1:
                    value = ops.one_hot(ops.cast(value, "int32"), size)
                value = ops.cast(ops.broadcast_to(value, (num_samples, size)), "float32")
            elif prior == "categorical":
                # A uniform class from a standard normal draw: Φ(ε) is uniform on (0, 1).
                uniform = 0.5 * (1.0 + ops.erf(noise((num_samples,)) / np.sqrt(2.0)))
                value = ops.one_hot(ops.minimum(ops.cast(ops.floor(uniform * size), "int32"), size - 1), size)
            elif prior == "uniform":
                # U(−a, a) from a standard normal draw: 2Φ(ε) − 1 = erf(ε / √2) is uniform on (−1, 1).
                value = self.prior_scale[start:start + size] * ops.erf(noise((num_samples, size)) / np.sqrt(2.0))
            else:
                loc = self.prior_loc[start:start + size]
                value = loc + ops.exp(0.5 * self.prior_logvar[start:start + size]) * noise((num_samples, size))
            parts.append(value)
            start += size
        return ops.concatenate(parts, axis=-1)

    def latent_sample(self, num_samples, noise, latents=None):
        """The z of unconditional generation (`sample`): drawn from the model's fitted latent sampler
        (``latent_sampler``, `mibzoo.latent_samplers`: a density fitted to the aggregate posterior
        after training) when it has one, else from the prior (`prior_sample`). `prior_sample` stays
        p(z) because the objective's terms draw from it too."""
        if not self.latent_sampler.is_fitted():
            return self.prior_sample(num_samples, noise, latents)
        if latents:
            raise NotImplementedError(
                f"{self.name}: fixing latent blocks ({sorted(latents)}) with a fitted latent sampler "
                f"({self.latent_sampler.kind!r}) would need the sampler's conditional density, which is not "
                f"implemented; use a model with latent_sampler 'prior'")
        return self.latent_sampler.sample(num_samples, noise)

    def encode(self, inputs, present=None):
        """Posterior q(z | x^S) from any subset S of the modalities (Eq. 12-13, or the model's
        ``posterior`` aggregation strategy, `mibzoo.aggregation`).

        Args:
            inputs: ``{modality: batch}`` with any subset of the model's modalities.
            present: optional ``{modality: [B] bool}``; per-example presence of given modalities.

        Returns:
            A dict of tensors: ``loc``, ``logvar``, ``scale`` of the combined posterior ``[B, Dz]``
            (for a mixture its mean and the log of its variance, moment-matched); ``components``:
            ``loc``, ``logvar`` ``[B, K, Dz]`` and ``weight`` ``[B, K]`` of its mixture components
            (K = 1 for ``poe``); ``experts``: per modality ``loc``, ``logvar`` (``[B, Dz]``, the quotient experts
            q̃(z | x_i)) and ``weight`` (``[B, M]``: m_ij^q times presence); ``prior``: ``loc``,
            ``logvar``; ``private``: per given modality ``loc``, ``logvar`` of q(u_i | x_i);
            ``blocks``: name → (start, end) of each block's dimensions.
        """
        self._require_inference("encode")
        fp = self.forward_pass(inputs, present)
        x, present, mask_q = fp.x, fp.present, fp.mask_q
        post = fp.aggregate()
        loc, logvar = post.mean(), post.log_variance()
        experts = {}
        for i, name in enumerate(self.modality_names):
            if name in x:
                e_loc, e_logvar, _, _ = fp.encoder_outputs()[name]
                experts[name] = {"loc": e_loc, "logvar": e_logvar,
                                 "weight": present[:, i:i + 1] * mask_q[i][None, :]}
        private = {n: {"loc": out[2], "logvar": out[3]} for n, out in fp.encoder_outputs().items()
                   if self.private_sizes[n]}
        starts = np.cumsum([0] + self.block_sizes)
        return {"loc": loc, "logvar": logvar, "scale": ops.exp(0.5 * logvar), "experts": experts,
                "components": {"loc": post.component_loc, "logvar": post.component_logvar, "weight": post.weights},
                "prior": {"loc": self.prior_loc, "logvar": self.prior_logvar}, "private": private,
                "blocks": {b: (int(starts[j]), int(starts[j + 1])) for j, b in enumerate(self.block_names)}}

    def posterior(self, inputs, present=None):
        """q(z | x^S) as a TFP distribution: a diagonal Gaussian over all shared blocks (``poe``) or
        a mixture of them (``moe``, ``mopoe``)."""
        self._require_inference("posterior")
        return self.forward_pass(inputs, present).aggregate().distribution()

    def _decode_from(self, fp, name, z, u, mode, seed, draw_index):
        """Modality ``name`` decoded by ``fp`` (`ForwardPass.decode`) from shared ``z`` and private ``u``
        with any leading dimensions: the likelihood's mean, or a draw seeded by ``seed`` and ``draw_index``."""
        lead = ops.shape(z)[:-1]
        dist = fp.decode(name, z, u)
        if mode == "mean":
            out = dist.mean()
        elif mode == "sample":
            if callable(seed):
                raise ValueError(f"{self.name}: mode='sample' takes an int or int32 [2] seed, not a noise source")
            out = dist.sample(seed=_seed_pair(seed, 1000 + draw_index)) if seed is not None \
                else dist.sample(seed=self._fresh_seed())
        else:
            raise ValueError(f"{self.name}: mode must be 'mean' or 'sample', got {mode!r}")
        return ops.reshape(out, tuple(lead) + tuple(event_shape(self.modality_specs[name])))

    def _fresh_seed(self):
        return ops.cast(keras.random.randint((2,), 0, 2 ** 30, seed=self.sampling_seed_generator), "int32")

    def _check_target(self, target):
        if target not in self.modality_specs:
            raise InputError(f"{self.name}: unknown target modality {target!r}; this model's modalities are "
                             f"{self.modality_names}." + did_you_mean(target, self.modality_names))

    def generate(self, inputs, target, num_samples=1, seed=None, mode="mean", present=None):
        """Conditional (cross-modal) generation of ``target`` from the given modalities.

        z ~ q(z | x^S) (Eq. 13, or the model's aggregation strategy), u_target ~ p(u) (the target is unobserved), then
        p(x_target | z ⊙ m_target^p, u_target).

        Args:
            inputs: ``{modality: batch}``, any subset of the modalities.
            target: the modality to generate.
            num_samples: draws of z per example.
            seed: None (fresh samples), an int, or an int32 ``[2]`` tensor (reproducible), or a
                noise callable ``noise(shape)`` (`mibzoo.export.per_example_noise`).
            mode: ``"mean"`` (pixel / class probabilities) or ``"sample"`` (draws from the likelihood).
            present: optional per-example presence, as in `encode`.

        Returns:
            ``[num_samples, B, *event_shape(target)]``.
        """
        self._require_inference("generate")
        self._check_target(target)
        self._check_count(num_samples, "num_samples")
        self._check_mode(mode)
        fp = self.forward_pass(inputs, present, seed)
        z = fp.aggregate().sample(fp.noise, num_samples)
        batch = ops.shape(z)[1]
        du = self.private_sizes[target]
        u = fp.noise((num_samples, batch, du)) if du else None
        return self._decode_from(fp, target, z, u, mode, seed, 0)

    def predict_target(self, inputs, target, num_samples=16, seed=0, present=None):
        """p(target | x^S) = E_{q(z | x^S)} p(target | z ⊙ m^p, u) by Monte Carlo over ``num_samples``
        draws of z (and of the target's private latent from its prior): for a categorical target the
        class probabilities, ``[B, classes]`` (Sec. 6: Y predicted from X alone through q(z | x) and
        p(y | z)); for other kinds the mean of the likelihood's means.

        Args:
            inputs: ``{modality: batch}``, any subset of the modalities (the target usually absent).
            target: the modality to predict.
            num_samples: draws of z per example.
            seed: an int or int32 ``[2]`` seed (reproducible), or None for fresh draws.
            present: optional per-example presence, as in `encode`.
        """
        return ops.mean(self.generate(inputs, target, num_samples=num_samples, seed=seed, mode="mean",
                                      present=present), axis=0)

    def reconstruct(self, inputs, present=None):
        """Every modality decoded from the posterior means of z and u (deterministic; for a mixture
        posterior, the mixture's mean)."""
        self._require_inference("reconstruct")
        fp = self.forward_pass(inputs, present)
        loc = fp.aggregate().mean()
        out = {}
        for name in self.modality_names:
            u = None
            if self.private_sizes[name]:
                u = fp.encoder_outputs()[name][2] if name in fp.x else ops.zeros((ops.shape(loc)[0], self.private_sizes[name]))
            out[name] = self._decode_from(fp, name, loc, u, "mean", None, 0)
        return out

    def sample(self, num_samples, seed=None, mode="mean", latents=None):
        """Joint generation from the prior: z ~ p(z), u_i ~ p(u_i), x_i ~ p(x_i | z ⊙ m_i^p, u_i); z from
        the model's fitted latent sampler instead of p(z) when it has one (`latent_sample`).

        Args:
            num_samples: number of joint samples.
            seed: None (fresh), an int or an int32 ``[2]`` tensor (reproducible).
            mode: ``"mean"`` or ``"sample"`` (see `generate`).
            latents: optional ``{block: values}`` fixing latent blocks, e.g. an InfoGAN code
                ``{"digit_code": class_ids}`` (code-conditioned generation).

        Returns:
            ``{modality: [num_samples, *event_shape]}``.
        """
        self._check_count(num_samples, "num_samples")
        self._check_mode(mode)
        fp = self.forward_pass(None, seed=seed)  # no observation: decodes the prior's draws
        z = self.latent_sample(num_samples, fp.noise, latents)
        out = {}
        for k, name in enumerate(self.modality_names):
            du = self.private_sizes[name]
            u = fp.noise((num_samples, du)) if du else None
            out[name] = self._decode_from(fp, name, z, u, mode, seed, k)
        return out

"""One pass of the inference and generation models over a batch, with every quantity that the
loss terms of `mibzoo.objectives` need, each computed once (cached) when first asked for.

Notation follows Sec. 3.2-3.4: N modalities x_i, shared latents z (blocks Z_1..Z_M laid out
side by side in one vector), private latents u_i, masks M^q, M^p (N×M), presence mask
``present`` (B×N: which x_i each example has). Priors p(z) and p(u_i) are standard normal.
"""
import functools

from keras import ops

from mibzoo import inference


def _cached(method):
    name = "_cache_" + method.__name__

    @functools.wraps(method)
    def wrapper(self, *args):
        key = (name,) + args
        if key not in self._cache:
            self._cache[key] = method(self, *args)
        return self._cache[key]

    return wrapper


class ForwardPass:
    """Lazily evaluated quantities of one batch.

    Args:
        model: the `MIBModel` whose networks are used.
        x: dict ``{modality: float32 tensor}`` of the modalities in the batch (categoricals one-hot).
        present: ``[B, N]`` float32 presence of each modality per example.
        mask_q: ``[N, M]`` inference structure M^q (sampled, expected or fixed).
        mask_p: ``[N, M]`` generation structure M^p.
        noise: callable ``noise(shape) -> standard normal tensor`` (the model's seeded source).
        training: whether this pass is a training step (critics update their statistics then).
        kl_weight: γ, the weight of the rate terms (the model's KL schedule while training, else 1).
    """

    def __init__(self, model, x, present, mask_q, mask_p, noise, training=False, kl_weight=1.0):
        self.model = model
        self.x = x
        self.present = present
        self.mask_q = mask_q
        self.mask_p = mask_p
        self.noise = noise
        self.training = training
        self.kl_weight = kl_weight
        self.names = model.modality_names
        self._cache = {}

    # ----- inference -------------------------------------------------------------------------
    @_cached
    def encoder_outputs(self):
        """Per modality: ``(expert_loc [B, Dz], expert_logvar [B, Dz], u_loc [B, Du], u_logvar [B, Du])``."""
        return {name: self.model.encode_modality(name, self.x[name], training=self.training) for name in self.x}

    @_cached
    def experts(self):
        """Stacked experts ``(loc [B, N, Dz], logvar [B, N, Dz])``; absent modalities are zeros."""
        batch = ops.shape(self.present)[0]
        zeros = ops.zeros((batch, self.model.shared_size), "float32")
        outs = self.encoder_outputs()
        locs = [outs[n][0] if n in outs else zeros for n in self.names]
        logvars = [outs[n][1] if n in outs else zeros for n in self.names]
        return ops.stack(locs, axis=1), ops.stack(logvars, axis=1)

    @_cached
    def expert_weights(self):
        """``[B, N, Dz]``: m_ij^q of each expert's block times the example's presence of x_i."""
        per_dim = ops.matmul(self.mask_q, self.model.block_matrix)  # [N, Dz]
        return self.present[:, :, None] * per_dim[None, :, :]

    @_cached
    def posterior(self, only=None):
        """q(z | x^S) (Eq. 13) as ``(loc, logvar)``; ``only=i`` keeps modality i alone (q(z | x_i))."""
        loc, logvar = self.experts()
        weights = self.expert_weights()
        if only is not None:
            keep = ops.one_hot(ops.convert_to_tensor([only]), len(self.names))[0]  # [N]
            weights = weights * keep[None, :, None]
        return inference.product_of_experts(self.model.prior_loc, self.model.prior_logvar, loc, logvar, weights)

    @_cached
    def posterior_without(self, i):
        """q(z | x_{\\i}) as ``(loc, logvar)``: the posterior of every present modality but x_i (Eq. 13)."""
        loc, logvar = self.experts()
        drop = 1.0 - ops.one_hot(ops.convert_to_tensor([i]), len(self.names))[0]  # [N]
        weights = self.expert_weights() * drop[None, :, None]
        return inference.product_of_experts(self.model.prior_loc, self.model.prior_logvar, loc, logvar, weights)

    @_cached
    def z(self, only=None):
        """A reparametrized sample z ~ q(z | x) (or q(z | x_i) with ``only=i``)."""
        loc, logvar = self.posterior(only)
        return loc + ops.exp(0.5 * logvar) * self.noise(ops.shape(loc))

    @_cached
    def u(self, name):
        """A reparametrized sample u_i ~ q(u_i | x_i)."""
        _, _, loc, logvar = self.encoder_outputs()[name]
        return loc + ops.exp(0.5 * logvar) * self.noise(ops.shape(loc))

    # ----- generation ------------------------------------------------------------------------
    def decoder_input(self, name, z, u=None):
        """``z ⊙ m_i^p`` (block gating, Sec. 3.4), followed by u_i when the model has private latents."""
        i = self.names.index(name)
        gate = ops.matmul(self.mask_p[i:i + 1], self.model.block_matrix)  # [1, Dz]
        gated = z * gate
        if self.model.private_sizes[name]:
            gated = ops.concatenate([gated, u], axis=-1)
        return gated

    @_cached
    def negative_log_likelihood(self, name, only=None):
        """``[B]``: −log p(x_i | z ⊙ m_i^p, u_i) with z from q(z|x) (or q(z|x_j), ``only=j``), 0 where x_i is absent."""
        u = self.u(name) if self.model.private_sizes[name] else None
        params = self.model.decode_modality(name, self.decoder_input(name, self.z(only), u), training=self.training)
        log_prob = self.model.likelihood(name, params).log_prob(self.x[name])
        return -log_prob * self.presence(name)

    def distortion(self, name, only=None, cross=False):
        """``[B]``: w_i · −log p(x_i | ·), the likelihood term of x_i in the objective, weighted by the
        model's ``likelihood_weights`` (w_i = 1 unless configured); ``cross=True`` for x_i generated
        from the other modalities (`cross_negative_log_likelihood`)."""
        weight = self.model.likelihood_weights[self.names.index(name)]
        nll = self.cross_negative_log_likelihood(name) if cross else self.negative_log_likelihood(name, only)
        return nll if weight == 1.0 else weight * nll

    def rate(self, kl):
        """``kl`` weighted by γ, the KL warm-up weight of this pass (1 outside training)."""
        return kl if isinstance(self.kl_weight, float) and self.kl_weight == 1.0 else self.kl_weight * kl

    @_cached
    def cross_negative_log_likelihood(self, name):
        """``[B]``: −log p(x_i | z ⊙ m_i^p, u_i) with z ~ q(z | x_{\\i}) (the other modalities) and
        u_i ~ p(u_i) (x_i unobserved): x_i generated across modalities; 0 where x_i is absent."""
        i = self.names.index(name)
        loc, logvar = self.posterior_without(i)
        z = loc + ops.exp(0.5 * logvar) * self.noise(ops.shape(loc))
        du = self.model.private_sizes[name]
        u = self.noise((ops.shape(loc)[0], du)) if du else None
        params = self.model.decode_modality(name, self.decoder_input(name, z, u), training=self.training)
        log_prob = self.model.likelihood(name, params).log_prob(self.x[name])
        return -log_prob * self.presence(name)

    @_cached
    def prior_latents(self):
        """``(z, u)`` drawn from the priors p(z), p(u_i) for this batch's size (u: {name: [B, Du]})."""
        batch = ops.shape(self.present)[0]
        z = self.model.prior_sample(batch, self.noise)
        u = {n: self.noise((batch, size)) for n, size in self.model.private_sizes.items() if size}
        return z, u

    @_cached
    def generated(self):
        """``{modality: [B, *event]}``: the generator's output for z, u from the priors (the mean of
        each likelihood, a deterministic generator G(z) as in GANs)."""
        z, u = self.prior_latents()
        out = {}
        for name in self.names:
            params = self.model.decode_modality(name, self.decoder_input(name, z, u.get(name)),
                                                training=self.training)
            out[name] = self.model.likelihood(name, params).mean()
        return out

    def data_vector(self, values):
        """Flattens and concatenates every modality of ``values`` (a dict) into ``[B, D]``: the
        input of critics that look at the joint x (in modality order)."""
        batch = ops.shape(self.present)[0]
        return ops.concatenate([ops.reshape(ops.cast(values[n], "float32"), (batch, -1)) for n in self.names], axis=-1)

    def critic(self, term):
        return self.model.critics[term]

    def auxiliary(self, term):
        return self.model.auxiliaries[term]

    # ----- divergences -----------------------------------------------------------------------
    def presence(self, name):
        return self.present[:, self.names.index(name)]

    @_cached
    def kl_to_prior(self, only=None):
        """``[B]``: KL(q(z | x) ‖ p(z)) in closed form (or of q(z | x_i) with ``only=i``)."""
        loc, logvar = self.posterior(only)
        return inference.kl_diagonal_gaussians(loc, logvar, self.model.prior_loc, self.model.prior_logvar)

    @_cached
    def private_kl(self, name):
        """``[B]``: KL(q(u_i | x_i) ‖ p(u_i)), 0 where x_i is absent or there are no private latents."""
        if not self.model.private_sizes[name] or name not in self.x:
            return ops.zeros_like(self.present[:, 0])
        _, _, loc, logvar = self.encoder_outputs()[name]
        kl = inference.kl_diagonal_gaussians(loc, inference.clip_logvar(logvar), 0.0, 0.0)
        return kl * self.presence(name)

    @_cached
    def kl_joint_to_single(self, name):
        """``[B]``: KL(q(z | x) ‖ q(z | x_i)), the cross-structure divergence (Sec. 4.2)."""
        i = self.names.index(name)
        loc, logvar = self.posterior()
        loc_i, logvar_i = self.posterior(i)
        return inference.kl_diagonal_gaussians(loc, logvar, loc_i, logvar_i) * self.presence(name)

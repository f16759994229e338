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
        phase: the training phase this pass serves (``"dist"``, ``"critic:<term>"``, ...), None
            outside training steps.
        term_weights: ``{term: γ_t}``, the factors of the weights of terms with a ``weight_schedule``
            (empty outside training: every weight as the config gives it).
    """

    def __init__(self, model, x, present, mask_q, mask_p, noise, training=False, kl_weight=1.0, phase=None,
                 term_weights=None):
        self.model = model
        self.x = x
        self.present = present
        self.mask_q = mask_q
        self.mask_p = mask_p
        self.noise = noise
        self.training = training
        self.kl_weight = kl_weight
        self.phase = phase
        self.term_weights = dict(term_weights or {})
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
        return self.present[:, :, None] * self.expert_mask()[None, :, :]

    @_cached
    def expert_mask(self):
        """``[N, Dz]``: m_ij^q of each expert's block, per latent dimension."""
        return ops.matmul(self.mask_q, self.model.block_matrix)

    @_cached
    def aggregate(self, only=None, without=None):
        """q(z | x^S) as the model's aggregation strategy builds it (`mibzoo.aggregation`: ``poe``,
        Eq. 13, by default): a posterior object with ``sample``, ``log_prob`` and its parameters.
        ``only=i`` keeps modality i alone (q(z | x_i)); ``without=i`` drops it (q(z | x_{\\i}))."""
        loc, logvar = self.experts()
        present = self.present
        if only is not None:
            present = present * ops.one_hot(ops.convert_to_tensor([only]), len(self.names))  # [B, N] * [1, N]
        if without is not None:
            present = present * (1.0 - ops.one_hot(ops.convert_to_tensor([without]), len(self.names)))
        return self.model.aggregation.aggregate(self.model.prior_loc, self.model.prior_logvar, loc, logvar,
                                                present, self.expert_mask())

    def posterior(self, only=None):
        """q(z | x^S) (Eq. 13) as ``(loc, logvar)``; ``only=i`` keeps modality i alone (q(z | x_i)).
        Gaussian strategies only (``poe``); mixtures are read through `aggregate`."""
        return self.aggregate(only).gaussian_parameters()

    def posterior_without(self, i):
        """q(z | x_{\\i}) as ``(loc, logvar)``: the posterior of every present modality but x_i (Eq. 13)."""
        return self.aggregate(None, i).gaussian_parameters()

    @_cached
    def z(self, only=None):
        """A reparametrized sample z ~ q(z | x) (or q(z | x_i) with ``only=i``)."""
        return self.aggregate(only).sample(self.noise)

    @_cached
    def component_z(self):
        """``[B, K, Dz]``: one reparametrized sample of every component of q(z | x) (MMVAE's
        stratified sampling; K = 1 for a product of experts)."""
        return self.aggregate().component_samples(self.noise)

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

    def decode(self, name, z, u=None):
        """p(x_i | z ⊙ m_i^p, u_i) (Sec. 3.4) as a TFP distribution at given latents: ``z`` ``[..., Dz]``
        and, when x_i has a private latent, ``u`` ``[..., Du]``, their leading dimensions flattened
        into the distribution's one batch dimension. Every decoding of this pass goes through it:
        the likelihood terms, the generator's output, and the user API's generation."""
        z = ops.reshape(z, (-1, self.model.shared_size))
        du = self.model.private_sizes[name]
        if du:
            u = ops.reshape(u, (-1, du))
        params = self.model.decode_modality(name, self.decoder_input(name, z, u), training=self.training)
        return self.model.likelihood(name, params)

    @_cached
    def negative_log_likelihood(self, name, only=None):
        """``[B]``: −log p(x_i | z ⊙ m_i^p, u_i) with z from q(z|x) (or q(z|x_j), ``only=j``), 0 where x_i is absent."""
        u = self.u(name) if self.model.private_sizes[name] else None
        log_prob = self.decode(name, self.z(only), u).log_prob(self.x[name])
        return -log_prob * self.presence(name)

    def distortion(self, name, only=None, cross=False, private="prior"):
        """``[B]``: w_i · −log p(x_i | ·), the likelihood term of x_i in the objective, weighted by the
        model's ``likelihood_weights`` (w_i = 1 unless configured); ``cross=True`` for x_i generated
        from the other modalities (`cross_negative_log_likelihood`, with ``private`` the draw of u_i)."""
        weight = self.model.likelihood_weights[self.names.index(name)]
        nll = self.cross_negative_log_likelihood(name, private) if cross else self.negative_log_likelihood(name, only)
        return nll if weight == 1.0 else weight * nll

    def rate(self, kl):
        """``kl`` weighted by γ, the KL warm-up weight of this pass (1 outside training)."""
        return kl if isinstance(self.kl_weight, float) and self.kl_weight == 1.0 else self.kl_weight * kl

    @_cached
    def cross_negative_log_likelihood(self, name, private="prior"):
        """``[B]``: −log p(x_i | z ⊙ m_i^p, u_i) with z ~ q(z | x_{\\i}) (the other modalities): x_i
        generated across modalities; 0 where x_i is absent. u_i, drawn independently of x_{\\i}:

        - ``private="prior"``: u_i ~ p(u_i), x_i unobserved;
        - ``private="shuffled"``: u_i ~ q(u_i | x_i') of another row i' of the batch (the previous
          one, cyclically; a prior draw where that row lacks x_i), i.e. a draw from the aggregate
          posterior q(u_i), the marginal that U_i has under q, independent of this row's x_{\\i}.
        """
        if private not in ("prior", "shuffled"):
            raise ValueError(f"cross_negative_log_likelihood: private={private!r}; allowed: ['prior', 'shuffled']")
        z = self.aggregate(None, self.names.index(name)).sample(self.noise)
        du = self.model.private_sizes[name]
        u = self.noise((ops.shape(z)[0], du)) if du else None
        if du and private == "shuffled":
            other_present = ops.roll(self.presence(name), 1, axis=0)[:, None]
            u = other_present * ops.roll(self.u(name), 1, axis=0) + (1.0 - other_present) * u
        log_prob = self.decode(name, z, u).log_prob(self.x[name])
        return -log_prob * self.presence(name)

    @_cached
    def component_negative_log_likelihood(self, name, k):
        """``[B]``: −log p(x_i | z_k ⊙ m_i^p, u_i) with z_k the sample of component k of q(z | x)
        (`component_z`), u_i ~ q(u_i | x_i); 0 where x_i is absent. Every modality is decoded from
        every component's sample: cross-generation when component k does not hold x_i (MMVAE)."""
        u = self.u(name) if self.model.private_sizes[name] else None
        z = self.component_z()[:, k]
        return -self.decode(name, z, u).log_prob(self.x[name]) * self.presence(name)

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
            out[name] = self.decode(name, z, u.get(name)).mean()
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

    def term_state(self, term):
        """The variables ``term`` keeps across training steps (`Term.state`)."""
        return self.model.term_states[term]

    # ----- divergences -----------------------------------------------------------------------
    def presence(self, name):
        return self.present[:, self.names.index(name)]

    @_cached
    def kl_to_prior(self, only=None):
        """``[B]``: KL(q(z | x) ‖ p(z)) (or of q(z | x_i) with ``only=i``): in closed form for a Gaussian
        posterior, else log q(z) − log p(z) at the sample ``z(only)`` (Monte Carlo, unbiased)."""
        return self.aggregate(only).kl_to_prior(self.model.prior_loc, self.model.prior_logvar, lambda: self.z(only))

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
        """``[B]``: KL(q(z | x) ‖ q(z | x_i)), the cross-structure divergence (Sec. 4.2): closed form
        between Gaussians, else log q(z | x) − log q(z | x_i) at the sample ``z(None)`` (Monte Carlo)."""
        joint, single = self.aggregate(), self.aggregate(self.names.index(name))
        return joint.kl_divergence(single, lambda: self.z(None)) * self.presence(name)

"""`MIBModel`: the one model class that interprets every zoo entry (a Table 2 row as data).

Generation (Eq. 3):  p(x, z, u) = p(z) Π_i p(u_i) Π_i p(x_i | z ⊙ m_i^p, u_i)
Inference (Eq. 4):   q(z, u | x) = Π_i q(u_i | x_i) Π_j q(z_j | x^{m_j^q}), each q(z_j | ·) a
                     weighted product of Gaussian experts with the prior (Eq. 12-13).
Objective (Eq. 8):   L = Σ_t α_t C_t + Σ_k β_k D(q ‖ G^k), terms named in `mibzoo.objectives`.
Training (Alg. 1):   a list of phases, each with its variables, loss and optimizer, run in
                     turn for its number of steps (`steps_dist` network updates on L, then
                     `steps_str` structure updates on L_score, Eq. 15).

This module builds the model from its config (networks, masks, terms) and computes its terms on a
`ForwardPass`; the Keras training loop of Algorithm 1 is `mibzoo.phases.PhasedTraining`, the user
API (encode, generate, sample) `mibzoo.generation.GenerativeAPI`, batch checks `mibzoo.batch_inputs`.
"""

import copy
import json

import keras
import numpy as np
from keras import ops

from mibzoo import batch_inputs, inference, latent_samplers, likelihoods, objectives, schedules
from mibzoo.forward import ForwardPass
from mibzoo.generation import GenerativeAPI
from mibzoo.phases import PhasedTraining, phase_calls
from mibzoo.networks import ModalityDecoder, ModalityEncoder
from mibzoo.spec import EXPERT_OUTPUTS, parse_model
from mibzoo.structure import StructureMasks


def _weighted(term, weight, fp):
    """α_t · C_t(fp) (or Σ_i β_i D_i(fp) for a per-modality term) as a float32 scalar; a term with a
    ``weight_schedule`` (``term_options``) has its weight multiplied by the schedule's γ_t while training."""
    value = ops.cast(term.fn(fp), "float32")
    if term.name in fp.term_weights:
        value = value * ops.cast(fp.term_weights[term.name], "float32")
    if term.per_modality:
        return ops.sum(value * ops.convert_to_tensor(weight, "float32"))
    return weight * value


def _prior_variance(block):
    """The variance of one dimension of a shared block's prior (`mibzoo.spec` block fields)."""
    scale = block.get("scale", 1.0)
    return {"normal": scale ** 2, "uniform": scale ** 2 / 3.0}.get(block["prior"], 1.0)


@keras.saving.register_keras_serializable(package="mibzoo")
class MIBModel(GenerativeAPI, PhasedTraining):
    """Generative model with explicit dependency structure (Zhang, Koyama & Ishiguro, ICML 2020).

    Every argument is a field of a zoo config's ``model`` section (`mibzoo.config`), so
    ``get_config`` mirrors ``__init__`` and a zoo file is exactly a constructor call.

    Args:
        modalities: ``{name: spec}`` observed variables X_1..X_N (`mibzoo.modalities`).
        shared: shared latent blocks Z_1..Z_M, ``[{"name": "z", "size": 16}]``.
        private: size of each private latent U_i (0: none), or ``{modality: size}``.
        inference_structure: M^q (``"full"``, N×M matrix, or ``{"learned": true, "init": p}``).
        generation_structure: M^p, same forms.
        structure_learning: temperature schedule, sparsity λ, mask at inference.
        hyperparameters: named numbers the weights refer to (``{"beta": 4}``).
        dist: L_dist, ``[[weight, cost], ...]`` (Table 1 costs).
        str_reg: L_str_reg, ``[[weight, bayesian_network], ...]``.
        phases: training phases (Algorithm 1), ``[{"name": "dist", "steps": 1}, ...]``.
        seed: seed of the training noise.
        likelihood_weights: ``{modality: w_i}`` weights of the likelihood terms (default 1).
        kl_schedule: KL warm-up γ_t (`mibzoo.schedules`, serialized or an instance): the rate
            terms are multiplied by γ at training step t (1 at evaluation).
        loss_schedule: a factor c_t (`mibzoo.schedules`, serialized or an instance) on the objective
            of every network update at update t (not on the critics' nor the structure phase's; the
            logged losses stay unscaled), e.g. ``PiecewiseConstant([200], [1.0, 1e-3])``: IRM's
            division of its loss by the penalty's weight from the penalty's onset, which leaves the
            minimizers alone and keeps Adam's steps after the onset at the scale of the gradients
            before it. None: c = 1.
        expert_output: what each encoder's first D_z outputs are: ``"natural"`` (default), the
            expert's natural parameter η = μ / σ²; ``"mean"``, its mean μ (`encode_modality`).
        networks: default network options per modality kind (``{"image": {"network": "mlp"}}``),
            under each modality spec's own keys.
        optimizers: default Adam settings of the ``dist`` and ``critic`` phases
            (``{"dist": {"learning_rate": 2e-4, "beta_1": 0.5}}``), used by `compile` where no
            optimizer is given.
        posterior: the aggregation strategy of q(z | x^S) (`mibzoo.aggregation`): ``"poe"`` (the
            weighted product of experts, Eq. 13), ``"moe"`` (MMVAE's mixture of unimodal experts) or
            ``"mopoe"`` (MoPoE's mixture over the products of every subset).
        term_options: ``{term: {option: value}}``, e.g. ``{"infogan": {"shares_critic": "C2"}}``:
            the term's auxiliary reads that critic's features and trains in its phase.
        latent_sampler: where ``sample`` draws z (`mibzoo.latent_samplers`): ``"prior"`` (p(z)) or
            ``{"kind": "gmm", "components": 10}``, a mixture fitted to the aggregate posterior
            after training (its parameters are non-trainable weights of the model).
        batch_size: the entry's training batch size, used by runs that set none
            (`mibzoo.experiment.train_run`); None: the runs' default.
        steps_per_execution: training steps per call of the compiled train function, `compile`'s
            default when it is not given (None: 1; several phases: 1 only). Fewer calls mean less
            Python and host round trips per step (docs/performance.md), on any device.
        entry: name of the zoo entry this model was built from (informational).

    The arguments are parsed once into a `mibzoo.spec.ModelSpec` (`mibzoo.spec.parse_model`) and the
    model is built from that spec only; `from_spec` builds from an already parsed spec.

    Example:

    ```python
    import mibzoo
    model = mibzoo.load("wyner_vae")            # MNIST-Label by default
    model.compile(optimizer="adam")
    model.fit(mibzoo.data.load("mnist_label", batch_size=128), epochs=5)
    labels = model.generate({"image": images}, target="label", num_samples=4, seed=0)
    ```

    Reference: R. Zhang, M. Koyama, K. Ishiguro. Learning Structured Latent Factors from
    Dependent Data: A Generative Model Framework from Information-Theoretic Perspective.
    ICML 2020.
    """

    def __init__(self, modalities, shared=None, private=0, inference_structure="full",
                 generation_structure="full", structure_learning=None, hyperparameters=None,
                 dist=None, str_reg=None, phases=None, seed=0, likelihood_weights=None, kl_schedule=None,
                 networks=None, optimizers=None, posterior="poe", term_options=None, latent_sampler=None,
                 batch_size=None, steps_per_execution=None, loss_schedule=None, expert_output=None, entry="custom",
                 **kwargs):
        spec = kwargs.pop("spec", None)
        super().__init__(name=kwargs.pop("name", entry), **kwargs)
        if spec is None:
            fields = {"modalities": modalities, "private": private, "inference_structure": inference_structure,
                      "generation_structure": generation_structure, "seed": seed, "kl_schedule": kl_schedule,
                      "posterior": posterior, "latent_sampler": latent_sampler}
            for key, value in (("shared", shared), ("structure_learning", structure_learning),
                               ("hyperparameters", hyperparameters), ("dist", dist), ("str_reg", str_reg),
                               ("phases", phases), ("likelihood_weights", likelihood_weights),
                               ("networks", networks), ("optimizers", optimizers), ("term_options", term_options),
                               ("batch_size", batch_size), ("steps_per_execution", steps_per_execution),
                               ("loss_schedule", loss_schedule), ("expert_output", expert_output)):
                if value is not None:
                    fields[key] = value
            spec = parse_model(fields, f"MIBModel({entry})")
        # Everything below is read from the spec: the config's meaning is worked out in `parse_model` only.
        cfg = copy.deepcopy(spec.config)  # the model's own copy: a spec may build several models
        self.entry = entry
        self.model_config = cfg
        self.modality_specs = cfg["modalities"]
        self.modality_names = list(spec.modality_names)
        self.block_names = list(spec.block_names)
        self.block_sizes = list(spec.block_sizes)
        self.block_priors = list(spec.block_priors)
        self.shared_size = sum(self.block_sizes)
        # U_i sizes per modality; private_size is the width of u = [u_1, ..., u_N] (0: none).
        self.private_sizes = dict(spec.private_sizes)
        self.private_size = sum(self.private_sizes.values())
        self.likelihood_weights = list(spec.likelihood_weights)
        self.kl_schedule = schedules.get(cfg["kl_schedule"])
        self.loss_schedule = schedules.get(cfg.get("loss_schedule"))
        self.expert_output = cfg.get("expert_output", EXPERT_OUTPUTS[0])  # written only when not the default
        # term -> schedule γ_t multiplying its weight while training (``term_options.<term>.weight_schedule``).
        self.term_schedules = {term: schedules.get(options["weight_schedule"])
                               for term, options in cfg["term_options"].items() if "weight_schedule" in options}
        # How the experts combine into q(z | x^S): "poe" (Eq. 13), "moe", "mopoe" (`mibzoo.aggregation`).
        self.aggregation = spec.aggregation
        # Where `sample` draws z: p(z), or a density fitted to q(z) after training.
        self.latent_sampler = latent_samplers.make(cfg["latent_sampler"], self.shared_size)

        # block_matrix[j, d] = 1 when latent dimension d belongs to block Z_j.
        block_matrix = np.zeros((len(self.block_sizes), self.shared_size), "float32")
        start = 0
        for j, size in enumerate(self.block_sizes):
            block_matrix[j, start:start + size] = 1.0
            start += size
        self.block_matrix = ops.convert_to_tensor(block_matrix)
        self.prior_loc = ops.zeros((self.shared_size,), "float32")
        # p(z) = N(0, diag(scale²)) for normal blocks (``"scale"``, default 1). Categorical and uniform
        # blocks exist only without an inference network, where no Gaussian term reads their entries:
        # 1 for categorical ones, a uniform U(−a, a)'s variance a²/3.
        self.prior_logvar = ops.convert_to_tensor(np.concatenate(
            [np.full(b["size"], np.log(_prior_variance(b)), "float32") for b in cfg["shared"]]))
        # Each dimension's block ``"scale"``: σ of a normal block, the half-width a of a uniform one.
        self.prior_scale = ops.convert_to_tensor(np.concatenate(
            [np.full(b["size"], b.get("scale", 1.0), "float32") for b in cfg["shared"]]))

        (learn_q, mask_q), (learn_p, mask_p) = spec.inference_mask, spec.generation_mask
        self.structure_masks = StructureMasks(mask_q, mask_p, learn_q, learn_p, name="structure", **spec.mask_options)

        # G^q = [] (GAN, InfoGAN): no inference network at all.
        self.has_inference = spec.has_inference
        self.encoders = {}
        self.decoders = {}
        # Each modality's spec with the per-kind network defaults under its own keys: what its
        # networks, and the critics that read it, are built from.
        self.network_specs = {name: dict(value) for name, value in spec.network_specs.items()}
        for name, net in self.network_specs.items():
            latent = self.shared_size + self.private_sizes[name]
            if self.has_inference:
                self.encoders[name] = ModalityEncoder(net, 2 * latent, name=f"encoder_{name}")
            self.decoders[name] = ModalityDecoder(net, latent, name=f"decoder_{name}")
        # Keras tracks layers held in dict attributes; keep explicit lists for a stable order.
        self._encoder_list = [self.encoders[k] for k in self.modality_names if k in self.encoders]
        self._decoder_list = [self.decoders[k] for k in self.modality_names]

        self.loss_terms = list(spec.loss_terms)  # (group, term, weight) with weight a float or an [N] list
        # Networks owned by loss terms: critics (their own phase) and auxiliaries (trained with
        # the model's networks), built by the term from the model's shapes.
        # term -> critic term whose trunk its auxiliary shares (``term_options``): that auxiliary
        # trains in the critic's phase, on the critic's loss plus the term (InfoGAN's Q and D).
        self.shared_critics = dict(spec.shared_critics)
        self.critics = {t.name: t.critic(self) for _, t, _ in self.loss_terms if t.critic}
        self.auxiliaries = {t.name: t.auxiliary(self) for _, t, _ in self.loss_terms if t.auxiliary}
        # Running statistics a term keeps across steps (`Term.state`), for the configs that need them.
        states = {t.name: t.state(self) for _, t, _ in self.loss_terms if t.state}
        self.term_states = {name: layer for name, layer in states.items() if layer is not None}
        self.phases = cfg["phases"]
        self._call_schedule = phase_calls(self.phases)
        self._schedule_position = 0
        self._active_phases = (0,)
        self.seed_generator = keras.random.SeedGenerator(cfg["seed"], name="training_noise")
        self.sampling_seed_generator = keras.random.SeedGenerator(cfg["seed"] + 1, name="sampling_noise")

        tracked = [t.name for _, t, _ in self.loss_terms] + (["sparsity"] if self.structure_masks.learned else [])
        tracked += [f"{name}_critic" for name in self.critics]
        self.term_trackers = {name: keras.metrics.Mean(name=name) for name in dict.fromkeys(tracked)}
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.structure_optimizer = None
        self.critic_optimizers = {}
        self.build()

    # ----- construction -------------------------------------------------------------------
    def build(self, input_shape=None):
        for layer in self._encoder_list + self._decoder_list:
            layer.build()
        super().build(input_shape)

    def get_config(self):
        # Plain JSON values: Keras wraps the dicts and lists assigned to a layer in tracking
        # containers that refer back to the layer (a deep copy of them copies the model).
        config = json.loads(json.dumps(self.model_config))
        config.update(entry=self.entry, name=self.name)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    @classmethod
    def from_spec(cls, spec, entry="custom", **kwargs):
        """The model of a parsed `mibzoo.spec.ModelSpec` (`mibzoo.registry.load`), without parsing it
        again: the constructor's arguments are the spec's normalized section."""
        return cls(entry=entry, spec=spec, **spec.config, **kwargs)

    # ----- networks ----------------------------------------------------------------------
    def encode_modality(self, name, x, training=None):
        """Encoder outputs of one modality: ``(z_loc, z_logvar, u_loc, u_logvar)`` (float32).

        The network emits the expert's precision-weighted mean η = μ / σ² (its first natural
        parameter) and log σ²; μ = η σ² is derived here. Eq. 13 is the same in either form, but
        with μ as the output the posterior mean, m μ / σ² / (1 + m / σ²), shrinks with the
        expert's precision: early training then silences z by sending precisions to 0, where
        every gradient through the expert vanishes (an absorbing posterior collapse). With η as
        the output the posterior mean m η / (1 + m / σ²) keeps its gradient at any precision.

        With ``expert_output="mean"`` the outputs are μ itself. The price of η is that a precise
        expert's posterior mean, m η / (1 + m / σ²) ≈ η σ², is the product of two outputs, so the
        variance head alone can shrink z towards 0; with μ outputs it is ≈ μ. Under a penalty that a
        constant predictor meets (IRMv1 on p(y | z)) that product is a short way to the constant: in
        IRM's own training loop the zoo's Colored-MNIST networks keep the digit shape with μ outputs
        (colour-neutral 68.3–69.0, seeds 0–2) and lose it on two seeds of three with η outputs (52.1,
        51.7; docs/results_ood.md, thirty-second session).
        """
        out = ops.cast(self.encoders[name](x, training=training), "float32")
        dz, du = self.shared_size, self.private_sizes[name]
        first, logvar = out[:, :dz], inference.clip_logvar(out[:, dz:2 * dz])
        loc = first if self.expert_output == "mean" else first * ops.exp(logvar)
        return loc, logvar, out[:, 2 * dz:2 * dz + du], out[:, 2 * dz + du:]

    def decode_modality(self, name, latent, training=None):
        """Likelihood parameters of modality ``name`` from its decoder input; ``training`` switches
        batch normalization (DCGAN networks) to batch statistics."""
        return self.decoders[name](latent, training=training)

    def likelihood(self, name, params):
        """p(x_i | ·) as a TFP distribution from decoder parameters (`mibzoo.likelihoods`)."""
        return likelihoods.distribution(self.modality_specs[name], params)

    # ----- inputs --------------------------------------------------------------------------
    def _prepare(self, inputs, strict, present=None):
        """The batch validated by `mibzoo.batch_inputs.prepare`: ``(x, present)``."""
        return batch_inputs.prepare(self, inputs, strict, present)

    # ----- forward pass and losses ---------------------------------------------------------
    def forward(self, x, present, training=False, seed=None, phase="structure"):
        """A `ForwardPass` with the training masks of ``phase`` while training (relaxed samples, or
        the expected masks in the network phase with ``dist_masks="expected"``) and the inference
        masks otherwise."""
        mask_q, mask_p = self.structure_masks.masks(training=training, seed=self.seed_generator, phase=phase)
        noise = self._noise_source(self.seed_generator if training else seed)
        kl_weight, term_weights = 1.0, {}
        if training and self.kl_schedule is not None:
            kl_weight = self.kl_schedule(self.optimizer.iterations)  # γ_t at network update t
        if training:  # the same count t (network updates) for every phase
            term_weights = {term: schedule(self.optimizer.iterations) for term, schedule in self.term_schedules.items()}
        return ForwardPass(self, x, present, mask_q, mask_p, noise, training=training, kl_weight=kl_weight,
                           phase=phase if training else None, term_weights=term_weights)

    def forward_pass(self, inputs, present=None, seed=None):
        """The `ForwardPass` of a batch as the user API sees it: validated inputs, the inference
        masks (no relaxation), and noise from ``seed`` (None: fresh; an int or int32 ``[2]``:
        stateless and reproducible; or a callable ``noise(shape)``, read back as ``.noise``).
        Metrics, tools and the user API read the model's quantities through it (posteriors, KLs,
        likelihoods, `ForwardPass.decode`) instead of its internals.

        Args:
            inputs: ``{modality: batch}``, any subset of the modalities; None for a pass with no
                observation, which only decodes given latents (`ForwardPass.decode`: prior samples).
            present: optional ``{modality: [B] 0/1}`` presence per example.
            seed: the noise source (see above).
        """
        x, present = ({}, None) if inputs is None else self._prepare(inputs, strict=True, present=present)
        mask_q, mask_p = self.structure_masks.masks(training=False)
        return ForwardPass(self, x, present, mask_q, mask_p, self._noise_source(seed))

    def compute_terms(self, fp):
        """Weighted values of every loss term, and the totals L (Eq. 8) and L_score (Eq. 15).

        Returns:
            ``(terms, totals)``: ``terms[name]`` is α_t C_t or Σ_i β_i D_i (a scalar);
            ``totals["loss"]`` is L_dist + L_str_reg, ``totals["score"]`` adds L_sparsity.
        """
        terms = {}
        for _, term, weight in self.loss_terms:
            terms[term.name] = terms.get(term.name, 0.0) + _weighted(term, weight, fp)
        loss = ops.sum(ops.stack(list(terms.values())))
        totals = {"loss": loss, "score": loss}
        if self.structure_masks.learned:
            terms["sparsity"] = self.structure_masks.sparsity_loss()
            totals["score"] = loss + terms["sparsity"]
        return terms, totals

    def critic_objective(self, fp, critic):
        """The loss of phase ``critic:<critic>``: the critic's loss, plus the weighted value of every
        term whose auxiliary shares this critic's trunk (``term_options``; InfoGAN's D loss − λ L_I)."""
        objective = ops.cast(objectives.TERMS[critic].critic_loss(fp), "float32")
        for _, term, weight in self.loss_terms:
            if self.shared_critics.get(term.name) == critic:
                objective = objective + _weighted(term, weight, fp)
        return objective

    def call(self, inputs, training=False):
        """Reconstructions of every modality (posterior means), ignoring non-modality keys; models
        without an inference network return their generator's output for a batch of prior draws."""
        x = {k: v for k, v in inputs.items() if k in self.modality_specs} if isinstance(inputs, dict) else inputs
        if not self.has_inference:
            batch = ops.shape(next(iter(x.values())))[0]
            return self.sample(batch, seed=None)
        return self.reconstruct(x)

    def structure(self):
        """Current M^q and M^p (edge probabilities if learned) as NumPy arrays, with axis names."""
        return {"inference": ops.convert_to_numpy(self.structure_masks.probabilities("inference")),
                "generation": ops.convert_to_numpy(self.structure_masks.probabilities("generation")),
                "modalities": list(self.modality_names), "blocks": list(self.block_names)}

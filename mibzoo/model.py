"""`MIBModel`: the one model class that interprets every zoo entry (a Table 2 row as data).

Generation (Eq. 3):  p(x, z, u) = p(z) Π_i p(u_i) Π_i p(x_i | z ⊙ m_i^p, u_i)
Inference (Eq. 4):   q(z, u | x) = Π_i q(u_i | x_i) Π_j q(z_j | x^{m_j^q}), each q(z_j | ·) a
                     weighted product of Gaussian experts with the prior (Eq. 12-13).
Objective (Eq. 8):   L = Σ_t α_t C_t + Σ_k β_k D(q ‖ G^k), terms named in `mibzoo.objectives`.
Training (Alg. 1):   a list of phases, each with its variables, loss and optimizer, run in
                     turn for its number of steps (`steps_dist` network updates on L, then
                     `steps_str` structure updates on L_score, Eq. 15).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

from mibzoo import aggregation, batch_inputs, inference, likelihoods, objectives, schedules
from mibzoo.config import private_sizes, validate_model_config, resolve_weight
from mibzoo.errors import InputError, NoInferenceNetworkError, did_you_mean
from mibzoo.forward import ForwardPass
from mibzoo.modalities import event_shape
from mibzoo.networks import ModalityDecoder, ModalityEncoder
from mibzoo.structure import StructureMasks, parse_mask


def _seed_pair(seed, index):
    """An int32 ``[2]`` stateless seed for draw ``index`` of a request seeded with ``seed``."""
    base = ops.cast(ops.reshape(ops.convert_to_tensor(seed), (-1,)), "int32")
    if base.shape[0] == 1:
        base = ops.concatenate([base, ops.zeros((1,), "int32")])
    return base + ops.convert_to_tensor([0, index], "int32")


def _weighted(term, weight, fp):
    """α_t · C_t(fp) (or Σ_i β_i D_i(fp) for a per-modality term) as a float32 scalar."""
    value = ops.cast(term.fn(fp), "float32")
    if term.per_modality:
        return ops.sum(value * ops.convert_to_tensor(weight, "float32"))
    return weight * value


@keras.saving.register_keras_serializable(package="mibzoo")
class MIBModel(keras.Model):
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
        entry: name of the zoo entry this model was built from (informational).

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
                 networks=None, optimizers=None, posterior="poe", term_options=None, entry="custom", **kwargs):
        super().__init__(name=kwargs.pop("name", entry), **kwargs)
        raw = {"modalities": modalities, "private": private, "inference_structure": inference_structure,
               "generation_structure": generation_structure, "seed": seed, "kl_schedule": kl_schedule,
               "posterior": posterior}
        for key, value in (("shared", shared), ("structure_learning", structure_learning),
                           ("hyperparameters", hyperparameters), ("dist", dist), ("str_reg", str_reg),
                           ("phases", phases), ("likelihood_weights", likelihood_weights), ("networks", networks),
                           ("optimizers", optimizers), ("term_options", term_options)):
            if value is not None:
                raw[key] = value
        cfg = validate_model_config(raw, f"MIBModel({entry})")
        self.entry = entry
        self.model_config = cfg
        self.modality_specs = cfg["modalities"]
        self.modality_names = list(self.modality_specs)
        self.block_names = [b["name"] for b in cfg["shared"]]
        self.block_sizes = [b["size"] for b in cfg["shared"]]
        self.shared_size = sum(self.block_sizes)
        # U_i sizes per modality; private_size is the width of u = [u_1, ..., u_N] (0: none).
        self.private_sizes = private_sizes(cfg["private"], self.modality_specs)
        self.private_size = sum(self.private_sizes.values())
        self.likelihood_weights = [cfg["likelihood_weights"].get(name, 1.0) for name in self.modality_names]
        self.kl_schedule = schedules.get(cfg["kl_schedule"])
        # How the experts combine into q(z | x^S): "poe" (Eq. 13), "moe", "mopoe" (`mibzoo.aggregation`).
        self.aggregation = aggregation.get(cfg["posterior"], f"MIBModel({entry})")
        n, m = len(self.modality_names), len(self.block_names)

        # block_matrix[j, d] = 1 when latent dimension d belongs to block Z_j.
        block_matrix = np.zeros((m, self.shared_size), "float32")
        start = 0
        for j, size in enumerate(self.block_sizes):
            block_matrix[j, start:start + size] = 1.0
            start += size
        self.block_matrix = ops.convert_to_tensor(block_matrix)
        self.prior_loc = ops.zeros((self.shared_size,), "float32")
        self.prior_logvar = ops.zeros((self.shared_size,), "float32")

        source = f"MIBModel({entry})"
        learn_q, mask_q = parse_mask(cfg["inference_structure"], n, m, source, "inference_structure")
        learn_p, mask_p = parse_mask(cfg["generation_structure"], n, m, source, "generation_structure")
        mask_options = {k: v for k, v in cfg["structure_learning"].items() if k != "learning_rate"}
        self.structure_masks = StructureMasks(mask_q, mask_p, learn_q, learn_p, name="structure", **mask_options)

        # G^q = [] (GAN, InfoGAN): no inference network at all.
        self.has_inference = cfg["inference_structure"] != "none"
        self.block_priors = [b["prior"] for b in cfg["shared"]]
        self.encoders = {}
        self.decoders = {}
        # Each modality's spec with the per-kind network defaults under its own keys: what its
        # networks, and the critics that read it, are built from.
        self.network_specs = {name: {**cfg["networks"].get(spec["kind"], {}), **spec}
                              for name, spec in self.modality_specs.items()}
        for name, spec in self.network_specs.items():
            latent = self.shared_size + self.private_sizes[name]
            if self.has_inference:
                self.encoders[name] = ModalityEncoder(spec, 2 * latent, name=f"encoder_{name}")
            self.decoders[name] = ModalityDecoder(spec, latent, name=f"decoder_{name}")
        # Keras tracks layers held in dict attributes; keep explicit lists for a stable order.
        self._encoder_list = [self.encoders[k] for k in self.modality_names if k in self.encoders]
        self._decoder_list = [self.decoders[k] for k in self.modality_names]

        hyper = cfg["hyperparameters"]
        self.loss_terms = []  # (group, term, weight) with weight a float or an [N] list
        for group in ("dist", "str_reg"):
            for k, (weight, name) in enumerate(cfg[group]):
                term = objectives.TERMS[name]
                self.loss_terms.append((group, term, resolve_weight(weight, term, self.modality_names, hyper,
                                                                    source, f"{group}[{k}][0]")))
        # Networks owned by loss terms: critics (their own phase) and auxiliaries (trained with
        # the model's networks), built by the term from the model's shapes.
        # term -> critic term whose trunk its auxiliary shares (``term_options``): that auxiliary
        # trains in the critic's phase, on the critic's loss plus the term (InfoGAN's Q and D).
        self.shared_critics = {term: options["shares_critic"] for term, options in cfg["term_options"].items()
                               if "shares_critic" in options}
        self.critics = {t.name: t.critic(self) for _, t, _ in self.loss_terms if t.critic}
        self.auxiliaries = {t.name: t.auxiliary(self) for _, t, _ in self.loss_terms if t.auxiliary}
        self.phases = cfg["phases"]
        self._phase_schedule = [k for k, p in enumerate(self.phases) for _ in range(p["steps"])]
        self._schedule_position = 0
        self._active_phase = 0
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
        config = {key: self.model_config[key] for key in self.model_config}
        config.update(entry=self.entry, name=self.name)
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    # ----- networks ----------------------------------------------------------------------
    def encode_modality(self, name, x, training=None):
        """Encoder outputs of one modality: ``(z_loc, z_logvar, u_loc, u_logvar)`` (float32).

        The network emits the expert's precision-weighted mean η = μ / σ² (its first natural
        parameter) and log σ²; μ = η σ² is derived here. Eq. 13 is the same in either form, but
        with μ as the output the posterior mean, m μ / σ² / (1 + m / σ²), shrinks with the
        expert's precision: early training then silences z by sending precisions to 0, where
        every gradient through the expert vanishes (an absorbing posterior collapse). With η as
        the output the posterior mean m η / (1 + m / σ²) keeps its gradient at any precision.
        """
        out = ops.cast(self.encoders[name](x, training=training), "float32")
        dz, du = self.shared_size, self.private_sizes[name]
        eta, logvar = out[:, :dz], inference.clip_logvar(out[:, dz:2 * dz])
        return eta * ops.exp(logvar), logvar, out[:, 2 * dz:2 * dz + du], out[:, 2 * dz + du:]

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

    def fit(self, *args, **kwargs):
        with batch_inputs.input_errors_surfaced():
            return super().fit(*args, **kwargs)

    def evaluate(self, *args, **kwargs):
        with batch_inputs.input_errors_surfaced():
            return super().evaluate(*args, **kwargs)

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

    # ----- forward pass and losses ---------------------------------------------------------
    def forward(self, x, present, training=False, seed=None, phase="structure"):
        """A `ForwardPass` with the training masks of ``phase`` while training (relaxed samples, or
        the expected masks in the network phase with ``dist_masks="expected"``) and the inference
        masks otherwise."""
        mask_q, mask_p = self.structure_masks.masks(training=training, seed=self.seed_generator, phase=phase)
        noise = self._noise_source(self.seed_generator if training else seed)
        kl_weight = 1.0
        if training and self.kl_schedule is not None:
            kl_weight = self.kl_schedule(self.optimizer.iterations)  # γ_t at network update t
        return ForwardPass(self, x, present, mask_q, mask_p, noise, training=training, kl_weight=kl_weight)

    def forward_pass(self, inputs, present=None, seed=None):
        """The `ForwardPass` of a batch as the user API sees it: validated inputs, the inference
        masks (no relaxation), and noise from ``seed`` (None: fresh; an int or int32 ``[2]``:
        stateless and reproducible; or a callable ``noise(shape)``). Metrics and tools read the
        model's quantities through it (posteriors, KLs, likelihoods) instead of its internals.

        Args:
            inputs: ``{modality: batch}``, any subset of the modalities.
            present: optional ``{modality: [B] 0/1}`` presence per example.
            seed: the noise source (see above).
        """
        x, present = self._prepare(inputs, strict=True, present=present)
        mask_q, mask_p = self._inference_masks()
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

    def _update_trackers(self, terms, totals):
        for name, value in terms.items():
            self.term_trackers[name].update_state(value)
        if totals is not None:
            self.loss_tracker.update_state(totals["loss"])
        return {m.name: m.result() for m in self.metrics}

    @property
    def metrics(self):
        return [self.loss_tracker] + list(self.term_trackers.values())

    # ----- Algorithm 1 ---------------------------------------------------------------------
    def compile(self, optimizer=None, structure_optimizer=None, critic_optimizer=None, **kwargs):
        """Configures training.

        Args:
            optimizer: optimizer of the network parameters φ, θ (the ``dist`` phase); defaults to
                Adam with the config's ``optimizers.dist`` settings (Adam(1e-3) unless set).
            structure_optimizer: optimizer of the structure logits ρ^q, ρ^p (the ``structure``
                phase); defaults to Adam with the config's ``structure_learning.learning_rate``
                (1e-2 unless set).
            critic_optimizer: optimizer of each critic (one copy per ``critic:<term>`` phase);
                defaults to Adam with the config's ``optimizers.critic`` settings (Adam(2e-4,
                beta_1=0.5) unless set), the usual GAN discriminator setting.
            **kwargs: passed to `keras.Model.compile` (``run_eagerly``, ``jit_compile``, ...).
        """
        if optimizer is None:
            optimizer = keras.optimizers.Adam(**self.model_config["optimizers"]["dist"])
        super().compile(optimizer=optimizer, **kwargs)
        if structure_optimizer is None:
            structure_optimizer = keras.optimizers.Adam(
                learning_rate=self.model_config["structure_learning"]["learning_rate"])
        self.structure_optimizer = keras.optimizers.get(structure_optimizer)
        self._structure_optimizer_config = keras.optimizers.serialize(self.structure_optimizer)
        if critic_optimizer is None:
            critic_optimizer = keras.optimizers.Adam(**self.model_config["optimizers"]["critic"])
        self._critic_optimizer_config = keras.optimizers.serialize(keras.optimizers.get(critic_optimizer))
        # Keras optimizers are bound to the variables they were built with: one per critic phase.
        self.critic_optimizers = {f"critic:{name}": keras.optimizers.deserialize(self._critic_optimizer_config)
                                  for name in self.critics}

    def get_compile_config(self):
        config = super().get_compile_config() or {}
        if self.structure_optimizer is not None:
            config["structure_optimizer"] = self._structure_optimizer_config
            config["critic_optimizer"] = self._critic_optimizer_config
        return config

    def compile_from_config(self, config):
        config = dict(config)
        structure = config.pop("structure_optimizer", None)
        critic = config.pop("critic_optimizer", None)
        optimizer = keras.optimizers.deserialize(config.pop("optimizer")) if config.get("optimizer") else "adam"
        config = {k: v for k, v in config.items() if k in ("run_eagerly", "jit_compile", "steps_per_execution")}
        self.compile(optimizer=optimizer,
                     structure_optimizer=keras.optimizers.deserialize(structure) if structure else None,
                     critic_optimizer=keras.optimizers.deserialize(critic) if critic else None, **config)
        # Build the optimizers now so that `.keras` loading restores their state (resumable runs).
        self._build_optimizers()

    def _build_optimizers(self):
        with self.distribute_strategy.scope():
            for phase in self.phases:
                optimizer = self._phase_optimizer(phase["name"])
                if optimizer is None:
                    raise RuntimeError(f"{self.name}: call compile() before fit()")
                if not optimizer.built:
                    optimizer.build(self.phase_variables(phase["name"]))

    def phase_variables(self, phase_name):
        """The variables that phase ``phase_name`` updates."""
        structure = list(self.structure_masks.trainable_variables)
        if phase_name == "structure":
            return structure
        if phase_name.startswith("critic:") and phase_name[len("critic:"):] in self.critics:
            return self._critic_variables(phase_name[len("critic:"):])
        if phase_name == "dist":
            ids = {id(v) for v in structure}
            for critic in self.critics:
                ids |= {id(v) for v in self._critic_variables(critic)}
            return [v for v in self.trainable_variables if id(v) not in ids]
        raise ValueError(f"{self.name}: phase {phase_name!r} has no variables in this model; phases are "
                         f"{[p['name'] for p in self.phases]}")

    def _critic_variables(self, critic):
        """The critic's variables and those of the auxiliaries that share its trunk."""
        variables = list(self.critics[critic].trainable_variables)
        for term, shared in self.shared_critics.items():
            if shared == critic:
                variables += [v for v in self.auxiliaries[term].trainable_variables
                              if all(v is not w for w in variables)]
        return variables

    def _steps_taken(self):
        """Training steps taken so far: the sum of the phase optimizers' iteration counts."""
        total = 0
        for phase in self.phases:
            optimizer = self._phase_optimizer(phase["name"])
            if optimizer is not None and optimizer.built:
                total += int(ops.convert_to_numpy(optimizer.iterations))
        return total

    def _phase_optimizer(self, phase_name):
        if phase_name == "structure":
            return self.structure_optimizer
        if phase_name.startswith("critic:"):
            return self.critic_optimizers.get(phase_name)
        return self.optimizer

    def train_step(self, data):
        phase = self.phases[self._active_phase]["name"]
        x, present = self._prepare(data, strict=False)
        variables = self.phase_variables(phase)
        with tf.GradientTape() as tape:
            fp = self.forward(x, present, training=True, phase=phase)
            if phase.startswith("critic:"):
                term = phase[len("critic:"):]
                objective = self.critic_objective(fp, term)
                terms, totals = {f"{term}_critic": objective}, None
            else:
                terms, totals = self.compute_terms(fp)
                objective = totals["score"] if phase == "structure" else totals["loss"]
            # Gradients are summed over replicas: scale so that they average instead.
            scaled = objective / tf.distribute.get_strategy().num_replicas_in_sync
        grads = tape.gradient(scaled, variables)
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        self._phase_optimizer(phase).apply_gradients(pairs)
        if phase == "structure":
            self.structure_masks.advance()
        return self._update_trackers(terms, totals)

    def test_step(self, data):
        x, present = self._prepare(data, strict=False)
        fp = self.forward(x, present, training=False, seed=self.seed_generator)
        terms, totals = self.compute_terms(fp)
        for name in self.critics:
            terms[f"{name}_critic"] = self.critic_objective(fp, name)
        return self._update_trackers(terms, totals)

    def make_train_function(self, force=False):
        """One compiled step function per phase, run in turn as Algorithm 1 prescribes.

        Each phase's function is traced while ``_active_phase`` names it, so the phase is a
        Python-level choice: no ``tf.cond`` around ``apply_gradients`` (which would break
        cross-replica updates under ``tf.distribute``). With ``steps_per_execution > 1`` a
        phase runs that many steps per call.
        """
        if self.train_function is not None and not force:
            return self.train_function
        self._build_optimizers()
        if len(self.phases) == 1:
            self._active_phase = 0
            super().make_train_function(force=True)
            return self.train_function
        # A model loaded from a checkpoint continues Algorithm 1's alternation where it stopped: its
        # position in the schedule is the number of calls taken, read off the phase optimizers.
        self._schedule_position = self._steps_taken() // max(1, int(self.steps_per_execution))
        functions = []
        for k in range(len(self.phases)):
            self._active_phase = k
            super().make_train_function(force=True)
            functions.append(self.train_function)

        def train_function(iterator):
            k = self._phase_schedule[self._schedule_position % len(self._phase_schedule)]
            self._schedule_position += 1
            self._active_phase = k
            return functions[k](iterator)

        self.train_function = train_function
        return train_function

    # ----- user API ------------------------------------------------------------------------
    def _inference_masks(self):
        return self.structure_masks.masks(training=False)

    def _require_inference(self, what):
        if not self.has_inference:
            raise NoInferenceNetworkError(
                f"{self.name}: {what}() needs an inference network, and this model has none (G^q is empty "
                f"in Table 2, inference_structure 'none'); use sample(), with latents= to fix code blocks")

    def prior_sample(self, num_samples, noise, latents=None):
        """z ~ p(z) block by block: standard normal blocks, uniform one-hot categorical blocks.

        Args:
            num_samples: number of draws.
            noise: ``noise(shape)`` standard normal source (`_noise_source`).
            latents: optional ``{block: values}`` fixing blocks (categorical blocks take class ids
                ``[n]`` or one-hot rows; normal blocks ``[n, size]``).
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
            else:
                loc = self.prior_loc[start:start + size]
                value = loc + ops.exp(0.5 * self.prior_logvar[start:start + size]) * noise((num_samples, size))
            parts.append(value)
            start += size
        return ops.concatenate(parts, axis=-1)

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
        x, present = self._prepare(inputs, strict=True, present=present)
        mask_q, mask_p = self._inference_masks()
        fp = ForwardPass(self, x, present, mask_q, mask_p, self._noise_source(None))
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

    def _decode_from(self, name, z, u, mask_p, mode, seed, draw_index):
        """Decodes modality ``name`` from shared ``z`` and private ``u`` (leading dims flattened)."""
        lead = ops.shape(z)[:-1]
        z2 = ops.reshape(z, (-1, self.shared_size))
        i = self.modality_names.index(name)
        latent = z2 * ops.matmul(mask_p[i:i + 1], self.block_matrix)
        if self.private_sizes[name]:
            latent = ops.concatenate([latent, ops.reshape(u, (-1, self.private_sizes[name]))], axis=-1)
        dist = self.likelihood(name, self.decode_modality(name, latent))
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
        x, present = self._prepare(inputs, strict=True, present=present)
        mask_q, mask_p = self._inference_masks()
        noise = self._noise_source(seed)
        fp = ForwardPass(self, x, present, mask_q, mask_p, noise)
        z = fp.aggregate().sample(noise, num_samples)
        batch = ops.shape(z)[1]
        du = self.private_sizes[target]
        u = noise((num_samples, batch, du)) if du else None
        return self._decode_from(target, z, u, mask_p, mode, seed, 0)

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
        x, present = self._prepare(inputs, strict=True, present=present)
        mask_q, mask_p = self._inference_masks()
        fp = ForwardPass(self, x, present, mask_q, mask_p, self._noise_source(None))
        loc = fp.aggregate().mean()
        out = {}
        for name in self.modality_names:
            u = None
            if self.private_sizes[name]:
                u = fp.encoder_outputs()[name][2] if name in x else ops.zeros((ops.shape(loc)[0], self.private_sizes[name]))
            out[name] = self._decode_from(name, loc, u, mask_p, "mean", None, 0)
        return out

    def sample(self, num_samples, seed=None, mode="mean", latents=None):
        """Joint generation from the prior: z ~ p(z), u_i ~ p(u_i), x_i ~ p(x_i | z ⊙ m_i^p, u_i).

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
        _, mask_p = self._inference_masks()
        noise = self._noise_source(seed)
        z = self.prior_sample(num_samples, noise, latents)
        out = {}
        for k, name in enumerate(self.modality_names):
            du = self.private_sizes[name]
            u = noise((num_samples, du)) if du else None
            out[name] = self._decode_from(name, z, u, mask_p, mode, seed, k)
        return out

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

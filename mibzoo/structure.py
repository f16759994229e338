"""Dependency structure: the masks M^q (which X_i informs which Z_j) and M^p (which Z_j feeds X_i).

A mask is fixed (a 0/1 or continuous matrix written in the zoo config) or learned. A learned
mask has Bernoulli logits ρ (Sec. 3.5): during training its entries are relaxed Bernoulli
(binary concrete / Gumbel-sigmoid, Maddison et al. 2017; Jang et al. 2017) samples

    m = sigmoid((ρ + log u − log(1 − u)) / τ),   u ~ Uniform(0, 1),

with a temperature τ annealed as τ_t = max(τ_min, τ_0 · exp(−rate · t)) over structure
updates t; at inference the mask is its expectation sigmoid(ρ) or its hard value
1[sigmoid(ρ) > 0.5]. L_sparsity (Eq. 15) is λ times the mean edge probability (``sparsity_on:
"probability"``) or λ times the mean logit ρ (``"logit"``). The paper leaves its form open; the
probability's gradient λ·σ'(ρ)/n vanishes as an edge saturates, so an edge that the likelihood's noisy
gradient has pushed to σ(ρ) ≈ 0.99 no longer feels it (the generation edge of an independent
modality stayed at 0.985 on MNIST-Label-Unrelated), while the logit's gradient λ/n is constant and
closes it (0.000 there, dependent edges 0.94–0.99; docs/mib_mm.md). Closed logits are unbounded below,
which is harmless: σ(ρ) only approaches 0.

How much an edge of modality i is worth is measured by the likelihood, a sum of one log-density per
observed dimension of x_i (784 for an MNIST image, 1 for a label), so a penalty of the same size on
every edge (``sparsity_scale: "edge"``) is negligible against an image's evidence and dominant
against a small vector's: the logit penalty at λ = 10 closes an independent image's edges on
MNIST-Label-Unrelated but also the dependent edges of three 8-dimensional vectors, and at λ = 1 it
keeps the vectors right but leaves the image's generation edge open (0.963; docs/mib_mm.md).
``sparsity_scale: "sqrt_likelihood_terms"`` weighs each edge of modality i by s_i = √(w_i · d_i),
w_i its likelihood weight and d_i its number of likelihood terms (`mibzoo.modalities.
likelihood_terms`). For an edge that explains nothing, the likelihood's gradient on ρ is noise, and
the noise of a sum of d_i independent terms grows as √d_i, so the penalty has to grow with it to
close such an edge; the informative edges' gradient grows as d_i and still wins on large
modalities. Proportional scaling (s_i = w_i d_i) was tried first: with one λ it is 98× weaker on an
8-d vector than on a 784-pixel image, too weak to close a noise vector's generation edge on one
planted seed of three (0.644); the square root puts both working points measured (λ ≈ 10 per image
edge, λ ≈ 1 per 8-d vector edge) under one λ = 0.357.

The structure phase of Algorithm 1 always scores relaxed samples (they carry the gradient to ρ).
The network phase (``dist``) trains either under relaxed samples too (``dist_masks="relaxed"``)
or under the expected masks sigmoid(ρ) (``"expected"``): the structural-EM reading, in which the
networks fit the current structure and are evaluated with the masks they were trained with.
Relaxed samples in the network phase act as dropout on the shared latent's edges, which the
private latents are never subject to (docs/mib_mm.md).
"""
import keras
from keras import ops

from mibzoo.errors import ConfigError

MASK_AT_INFERENCE = ("expected", "hard")
DIST_MASKS = ("relaxed", "expected")
SPARSITY_ON = ("probability", "logit")
SPARSITY_SCALE = ("edge", "sqrt_likelihood_terms")


def parse_mask(spec, num_modalities, num_blocks, source, field):
    """Reads a mask spec from a zoo config.

    Args:
        spec: ``"full"`` (all ones), ``"none"`` (all zeros: no edges), an N×M nested list of numbers in [0, 1] (fixed), or
            ``{"learned": true, "init": p}`` with ``p`` an initial edge probability in (0, 1)
            (a number or an N×M list).
        num_modalities: N.
        num_blocks: M.
        source: config source for errors.
        field: field name for errors.

    Returns:
        ``(learned, matrix)``: whether the mask is learned, and the fixed values or the
        initial probabilities as an N×M list of floats.
    """
    shape_msg = (f"'full', 'none', a {num_modalities}x{num_blocks} matrix of numbers in [0, 1], "
                 f"or {{\"learned\": true, \"init\": p}}")
    if spec == "full":
        return False, [[1.0] * num_blocks for _ in range(num_modalities)]
    if spec == "none":  # an empty Bayesian network (G^q = [] for GAN and InfoGAN in Table 2)
        return False, [[0.0] * num_blocks for _ in range(num_modalities)]
    learned = isinstance(spec, dict)
    if learned:
        unknown = set(spec) - {"learned", "init"}
        if unknown or spec.get("learned") is not True:
            raise ConfigError(source, field, spec, shape_msg)
        values = spec.get("init", 0.5)
    else:
        values = spec
    if isinstance(values, (int, float)) and not isinstance(values, bool):
        values = [[float(values)] * num_blocks for _ in range(num_modalities)]
    if not (isinstance(values, list) and len(values) == num_modalities
            and all(isinstance(r, list) and len(r) == num_blocks for r in values)):
        raise ConfigError(source, field, spec, shape_msg)
    low, high = (1e-4, 1 - 1e-4) if learned else (0.0, 1.0)
    for i, row in enumerate(values):
        for j, v in enumerate(row):
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
                what = "an initial probability strictly inside (0, 1)" if learned else "a number in [0, 1]"
                raise ConfigError(source, f"{field}[{i}][{j}]", v, what)
    return learned, [[float(v) for v in row] for row in values]


class StructureMasks(keras.layers.Layer):
    """Holds M^q and M^p: fixed constants or learnable Bernoulli logits ρ^q, ρ^p.

    Args:
        inference: N×M list, the fixed M^q or the initial edge probabilities if learned.
        generation: N×M list, the fixed M^p or the initial edge probabilities if learned.
        learn_inference: whether ρ^q is learned.
        learn_generation: whether ρ^p is learned.
        temperature: initial relaxation temperature τ_0.
        min_temperature: floor τ_min of the annealing schedule.
        anneal_rate: decay rate of τ per structure update.
        sparsity: weight λ of L_sparsity.
        sparsity_on: what L_sparsity averages: ``"probability"`` (σ(ρ)) or ``"logit"`` (ρ; see the
            module docstring).
        modality_scales: s_i, one non-negative number per modality (row of the masks) multiplying
            its edges in L_sparsity; None: 1 for every modality (see ``sparsity_scale`` in the
            module docstring).
        at_inference: ``"expected"`` (sigmoid ρ) or ``"hard"`` (thresholded) masks outside training.
        dist_masks: masks of the network (``dist``) phase: ``"relaxed"`` samples or the
            ``"expected"`` masks sigmoid(ρ); the structure phase always uses relaxed samples.
    """

    def __init__(self, inference, generation, learn_inference=False, learn_generation=False,
                 temperature=1.0, min_temperature=0.2, anneal_rate=1e-3, sparsity=0.0,
                 at_inference="expected", dist_masks="relaxed", sparsity_on="probability",
                 modality_scales=None, **kwargs):
        super().__init__(**kwargs)
        self.inference_init = inference
        self.generation_init = generation
        self.learn_inference = learn_inference
        self.learn_generation = learn_generation
        self.temperature = float(temperature)
        self.min_temperature = float(min_temperature)
        self.anneal_rate = float(anneal_rate)
        self.sparsity = float(sparsity)
        self.at_inference = at_inference
        self.dist_masks = dist_masks
        self.sparsity_on = sparsity_on
        self.modality_scales = None if modality_scales is None else [float(s) for s in modality_scales]
        if self.modality_scales is not None and len(self.modality_scales) != len(inference):
            raise ValueError(f"modality_scales has {len(self.modality_scales)} entries for {len(inference)} "
                             f"modalities (rows of the masks)")
        self.logits = {}
        for key, values, learned in (("inference", inference, learn_inference),
                                     ("generation", generation, learn_generation)):
            if learned:
                probs = ops.convert_to_tensor(values, "float32")
                self.logits[key] = self.add_weight(
                    shape=ops.shape(probs), name=f"rho_{key}", dtype="float32", trainable=True,
                    initializer=keras.initializers.Constant(ops.convert_to_numpy(ops.log(probs) - ops.log1p(-probs))),
                    autocast=False)
        # Counts structure updates for the temperature schedule; only the first replica's
        # increment is kept under tf.distribute.
        self.structure_steps = self.add_weight(shape=(), name="structure_steps", dtype="float32",
                                               initializer="zeros", trainable=False,
                                               aggregation="only_first_replica", autocast=False)

    @property
    def learned(self):
        return bool(self.logits)

    def current_temperature(self):
        tau = self.temperature * ops.exp(-self.anneal_rate * self.structure_steps)
        return ops.maximum(tau, self.min_temperature)

    def probabilities(self, key):
        """Edge probabilities (learned) or fixed values of mask ``key`` as an N×M tensor."""
        if key in self.logits:
            return ops.sigmoid(self.logits[key])
        return ops.convert_to_tensor(self.inference_init if key == "inference" else self.generation_init, "float32")

    def masks(self, training=False, seed=None, phase="structure"):
        """Returns ``(M^q, M^p)``: relaxed samples while training, expected or hard masks otherwise.

        Args:
            training: sample relaxed Bernoulli masks for learned structures.
            seed: a Keras seed (int, SeedGenerator) for the relaxation noise.
            phase: the training phase; phases other than ``"structure"`` use the expected masks
                when ``dist_masks`` is ``"expected"``.
        """
        out = []
        for key in ("inference", "generation"):
            if key not in self.logits:
                out.append(self.probabilities(key))
                continue
            rho = self.logits[key]
            if training and phase != "structure" and self.dist_masks == "expected":
                out.append(ops.sigmoid(rho))
            elif training:
                u = keras.random.uniform(ops.shape(rho), minval=1e-6, maxval=1.0 - 1e-6, seed=seed)
                noise = ops.log(u) - ops.log1p(-u)
                out.append(ops.sigmoid((rho + noise) / self.current_temperature()))
            elif self.at_inference == "hard":
                out.append(ops.cast(rho > 0.0, "float32"))
            else:
                out.append(ops.sigmoid(rho))
        return tuple(out)

    def sparsity_loss(self):
        """L_sparsity (Eq. 15): λ times the mean edge probability (or mean logit, ``sparsity_on``) of
        the learned masks, each mask's mean weighted equally; with ``modality_scales`` each edge of
        modality i (row i) is first multiplied by s_i."""
        if not self.logits or self.sparsity == 0.0:
            return ops.convert_to_tensor(0.0, "float32")
        read = ops.sigmoid if self.sparsity_on == "probability" else (lambda rho: rho)
        scales = 1.0 if self.modality_scales is None else ops.convert_to_tensor(self.modality_scales, "float32")[:, None]
        means = [ops.mean(scales * read(rho)) for rho in self.logits.values()]
        return self.sparsity * ops.mean(ops.stack(means))

    def advance(self):
        """Advances the temperature schedule by one structure update."""
        self.structure_steps.assign_add(1.0)

    def get_config(self):
        config = super().get_config()
        config.update(inference=self.inference_init, generation=self.generation_init,
                      learn_inference=self.learn_inference, learn_generation=self.learn_generation,
                      temperature=self.temperature, min_temperature=self.min_temperature,
                      anneal_rate=self.anneal_rate, sparsity=self.sparsity, at_inference=self.at_inference,
                      dist_masks=self.dist_masks, sparsity_on=self.sparsity_on,
                      modality_scales=self.modality_scales)
        return config

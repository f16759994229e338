"""Zoo entries as data: reading and validating a Table 2 row written as a config.

A zoo file (``zoo_configs/NAME.json``) has metadata (``entry``, ``title``, ``reference``,
``table2``: the row as printed in the paper, ``notes``) and a ``model`` section whose fields
are exactly the arguments of `mibzoo.model.MIBModel`:

- ``modalities``: ``{name: spec}`` (see `mibzoo.modalities`);
- ``shared``: the shared latent blocks Z_1..Z_M, ``[{"name": "z", "size": 16}, ...]``; a block may
  set ``"prior": "categorical"`` (a uniform one-hot code) or ``"prior": "uniform"`` (U(−1, 1) per
  dimension, InfoGAN's noise and continuous codes), both only without an inference network, and
  ``"code": true`` (an InfoGAN code, predicted by the ``infogan`` term's auxiliary network);
  a normal or uniform block of a model without an inference network may set ``"scale"``: a normal
  prior is then N(0, σ² I) (default σ = 1; the noise of ``infogan``, docs/results.md finding 8), a
  uniform one U(−a, a) (default a = 1);
- ``private``: size of each private latent U_i (0: no private latents), or ``{modality: size}``
  (keyed as per-modality weights are, below) when the U_i differ (Sec. 3.1: "the dimension of each
  U_i and Z_j is arbitrary"; modalities not listed have none, e.g. the fairness entries'
  ``{"x": 16}``: U_x but no U_a, Figure 4);
- ``inference_structure`` / ``generation_structure``: M^q / M^p, ``"full"``, an N×M matrix,
  or ``{"learned": true, "init": p}``; ``inference_structure: "none"`` means no inference
  network at all (G^q = [], GAN and InfoGAN);
- ``structure_learning``: options of the learned masks (temperature schedule, sparsity λ, mask
  at inference), see `mibzoo.structure.StructureMasks`, and ``learning_rate``, the rate of the
  structure phase's default Adam optimizer (1e-2); ``sparsity_on`` (``"probability"`` or
  ``"logit"``) and ``sparsity_scale`` (``"edge"``, or ``"sqrt_likelihood_terms"``: each edge's
  penalty times √(w_i d_i) of its modality) are written only when given;
- ``hyperparameters``: named numbers that weights may refer to (``{"beta": 4.0}``), and numbers a
  term reads itself, declared with the term and checked when the config is parsed
  (`mibzoo.objectives.registry.HyperParameter`): ``infogan``'s ``q_fixed_std`` (> 0),
  ``lambda_continuous`` and ``q_input_noise`` (>= 0), ``q_categorical_rotation`` (radians, in
  [0, π]) and ``q_categorical_stroke_jitter`` (in [0, 1]), ``irm``'s ``irm_anneal_steps`` (an integer
  >= 0) and ``irm_anneal_scale`` (>= 0), ``tc``'s ``dataset_size`` (an integer >= 1);
- ``dist``: L_dist as ``[[weight, cost], ...]`` with costs from Table 1 (C0, C1, C3, C4, ...);
- ``str_reg``: L_str_reg as ``[[weight, bayesian_network], ...]``;
- ``phases``: the training phases of Algorithm 1, ``[{"name": "dist", "steps": 1},
  {"name": "structure", "steps": 1}]``, plus ``{"name": "critic:<term>"}`` for each term that
  trains a critic (a GAN discriminator, a density-ratio estimator); a phase other than ``dist`` may
  set ``"start": S``, the training steps (batches) before its first turn, all taken by the other
  phases (``mib_mm``'s structure phase starts after one MNIST epoch, 469 steps);
- ``seed``: seed of the training noise;
- ``likelihood_weights``: ``{modality: w_i}``, each −log p(x_i | ·) of the objective is weighted by
  w_i (default 1; MultiVae weights a label ×50 against a 784-pixel image);
- ``kl_schedule``: a KL warm-up schedule γ_t (`mibzoo.schedules`) in serialized form, or null;
- ``expert_output``: what an encoder's first D_z outputs are: ``"natural"`` (default; the expert's
  natural parameter η = μ / σ², against an early posterior collapse) or ``"mean"`` (μ, so that a precise
  expert's posterior mean is μ rather than the product η σ² of two outputs; see
  `MIBModel.encode_modality`); written only when not the default;
- ``loss_schedule``: a factor c_t (`mibzoo.schedules`, serialized) on the objective of every network
  update (not the critics' nor the structure phase's; logged losses stay unscaled), or absent
  (c = 1). IRM divides its loss by its penalty's weight once the penalty is on: ``{"class_name":
  "PiecewiseConstant", "config": {"boundaries": [200], "values": [1.0, 0.002]}}``. Adam's second moment then still holds the
  gradients from before the onset, so its steps stay at that scale (docs/results_ood.md);
- ``networks``: default network options per modality kind, ``{"image": {"network": "mlp",
  "hidden": 512, "layers": 2}}``; a modality spec's own keys take precedence. Keyed by kind, they
  survive a change of data set (whose modalities replace the entry's). Keys: ``network``
  (images: ``"conv"``, ``"mlp"``, ``"dcgan"``), ``decoder_network`` (images: ``"conv"`` or ``"mlp"``,
  the decoder's network when it differs from the encoder's: ``{"network": "conv",
  "decoder_network": "mlp"}`` is a conv encoder with an MLP decoder; absent, ``network``),
  ``hidden``, ``layers``, ``decoder_layers`` (MLP decoders only), ``filters``, ``critic_batch_norm``,
  ``critic_hidden`` (the width of C2's DCGAN discriminator's dense layer, default 256; InfoGAN's is
  1024) (`mibzoo.modalities`, `mibzoo.networks`).
- ``optimizers``: the entry's default Adam settings per phase group, ``{"dist": {"learning_rate":
  2e-4, "beta_1": 0.5}, "critic": {...}}`` (keys ``learning_rate``, ``beta_1``, ``beta_2``,
  ``epsilon``). ``dist`` is the optimizer of the networks (Adam(1e-3) unless set), ``critic`` that of
  every ``critic:<term>`` phase (Adam(2e-4, β1 = 0.5) unless set); `MIBModel.compile` uses them
  where no optimizer is given. GANs train with β1 = 0.5 and equal small rates (Radford et al. 2016).
- ``posterior``: how the experts combine into q(z | x^S) (`mibzoo.aggregation`): ``"poe"`` (default,
  the weighted product of experts with the prior, Eq. 13), ``"moe"`` (MMVAE's uniform mixture of the
  unimodal posteriors) or ``"mopoe"`` (MoPoE's mixture over the products of every subset). A
  mixture is not one Gaussian: terms that need a Gaussian posterior (minibatch estimates of the
  aggregate posterior from its loc/logvar: C3, ``independence``, ``tc``, ``mi_zu_tc``) are refused
  with it; KLs of the posterior (C1's rate, ``informative``, ``cross``) become Monte-Carlo estimates.
- ``term_options``: ``{term: {option: value}}`` for terms of ``dist`` / ``str_reg``. One option for
  every term with an auxiliary network: ``"shares_critic": "<critic term>"``, the auxiliary
  reads that critic's last hidden layer instead of x (its own head on the critic's trunk) and is
  trained in the critic's phase, the term's weighted value added to the critic's loss, while the
  model's networks still minimize it in ``dist``. InfoGAN's Q on the discriminator
  (``{"infogan": {"shares_critic": "C2"}}``; Chen et al. 2016, Sec. 6: L_I enters both D's and
  G's losses). With it, ``"trains_critic_trunk": false`` keeps the term out of the trunk's updates: in
  the critic's phase the term's gradient stops at the critic's features, so the trunk learns from the
  critic's loss only and the term trains the auxiliary's own layers (as InfoGAN reimplementations that
  step D's optimizer on D's loss alone train it); default true (the official InfoGAN code).
  One option for every term: ``"weight_schedule"``, a schedule γ_t (`mibzoo.schedules`, serialized,
  e.g. ``{"class_name": "LinearWarmup", "config": {"warmup_steps": 235, "delay_steps": 938}}``, or
  ``"GeometricWarmup"`` for a weight that ramps over orders of magnitude) that
  multiplies the term's weight at network update t while training (in every phase the term enters;
  γ = 1 at evaluation). Both options are written into the config only when given.
  A term may declare options of its own (`mibzoo.objectives.registry.Term.options`, checked
  against its allowed values): ``conditional_independence`` has ``"critic": "residual"`` (the
  default; r(y | z, e) ∝ p(y | z) exp g(z, e)) or ``"mlp"`` (an MLP on [z, e]);
  ``conditional_independence``, ``sufficiency`` and ``irm`` have ``"latent": "sample"`` (the
  default; p(y | z) at a draw z ~ q(z | x)) or ``"mean"`` (at the mean of q(z | x)).
  ``infogan`` has ``"q_batch_norm"``: ``false`` (default) or ``true``, batch normalization in Q's
  dense layer as InfoGAN's Q has it (Chen et al. 2016, App. C.1).
- ``batch_size``: the entry's training batch size, used by runs that do not set one
  (`mibzoo.experiment.train_run`; absent: the runs' default, 128). ``infogan`` sets 64: with its
  phases alternating batch by batch, 10 MNIST epochs then give the official InfoGAN code's number of updates.
- ``steps_per_execution``: training steps per call of the compiled train function, the default of
  `MIBModel.compile` (Keras's ``steps_per_execution``; absent: 1). Fewer calls cost less Python and
  fewer host round trips per step, on any device (measured in docs/performance.md). Only for
  models of one phase: Algorithm 1 alternates phases call by call. Keras runs whole calls, so
  `mibzoo.experiment.train_run` cuts it to the largest divisor of a pass's steps (epochs stay passes).
- ``latent_sampler``: where unconditional generation (``sample``) draws z (`mibzoo.latent_samplers`):
  ``"prior"`` (default, p(z)) or ``{"kind": "gmm", "components": 10}``, a Gaussian mixture fitted to
  the aggregate posterior after training (ex-post density estimation, Ghosh et al. 2020).

A weight is a number, an arithmetic expression over the hyperparameters (``"beta - 1"``, as
Table 2 writes it) and ``N``, the number of modalities (``"beta * alpha / N"``), or, for
per-modality terms, ``{modality: weight}`` keyed by modality names, kinds or ``"*"`` (a modality's own
name wins over its kind, its kind over ``"*"``, which keys every other modality; modalities keyed by
none of them get 0; kind keys and ``"*"`` survive a data set's renamed modalities, e.g. ``jmvae``'s
``{"categorical": "4 * beta", "*": "beta"}`` on MNIST-Plus-1's two images).

A model section is checked and its meaning worked out in one place, `mibzoo.spec.parse_model`,
which returns a `mibzoo.spec.ModelSpec` (the normalized section, parsed masks, sizes, resolved
weights); `MIBModel` is built from that spec. This module reads zoo files and applies overrides.
"""
import copy
import json
from collections.abc import Mapping

from mibzoo.errors import ConfigError
from mibzoo.modalities import NAME_FREE_KEYS
# The parse of a model section into a `ModelSpec` lives in `mibzoo.spec`; re-exported here.
from mibzoo.spec import MODEL_FIELDS, ModelSpec, parse_model, private_sizes

__all__ = ["METADATA_FIELDS", "MODEL_FIELDS", "ModelSpec", "apply_overrides", "override_spec", "parse_model",
           "private_sizes", "read_zoo_file", "read_zoo_spec", "validate_model_config"]
METADATA_FIELDS = ("entry", "title", "reference", "table2", "notes", "model")


def validate_model_config(model, source):
    """Validates the ``model`` section of a zoo config; returns its normalized deep copy
    (``parse_model(model, source).config``, `mibzoo.spec.parse_model`).

    Raises:
        ConfigError: naming the source, the field, the bad value and what is allowed.
    """
    return parse_model(model, source).config


def read_zoo_file(path):
    """Reads and validates a zoo config file; returns ``(metadata, model_section)``."""
    metadata, spec = read_zoo_spec(path)
    return metadata, spec.config


def read_zoo_spec(path):
    """Reads a zoo config file and parses its model section; returns ``(metadata, ModelSpec)``."""
    source = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = json.load(handle)
    except json.JSONDecodeError as err:
        raise ConfigError(source, f"line {err.lineno} column {err.colno}", err.msg, "valid JSON") from None
    if not isinstance(raw, dict):
        raise ConfigError(source, "(top level)", type(raw).__name__, "a JSON object")
    unknown = sorted(set(raw) - set(METADATA_FIELDS))
    if unknown:
        raise ConfigError(source, unknown[0], raw[unknown[0]], f"only the fields {list(METADATA_FIELDS)}")
    if "model" not in raw:
        raise ConfigError(source, "model", None, "a 'model' section with the MIBModel arguments")
    metadata = {k: v for k, v in raw.items() if k != "model"}
    return metadata, parse_model(raw["model"], source)


def apply_overrides(model, overrides, source):
    """Returns the model section with ``overrides`` (MIBModel arguments, or hyperparameter names
    such as ``beta=4``) applied and re-validated; errors name the override."""
    return override_spec(model, overrides, source).config


def _plain(value):
    """A copy of ``value`` made of plain dicts, lists and tuples. A built model's ``model_config``
    holds Keras' tracked containers, which point back at the model: a deep copy of one copies the
    model (and fails on its layers), so an override taken from a model's config is rebuilt instead."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, tuple):
        return tuple(_plain(item) for item in value)
    if isinstance(value, list):
        return [_plain(item) for item in value]
    return copy.deepcopy(value)


def override_spec(model, overrides, source):
    """The `ModelSpec` of the model section with ``overrides`` applied (see `apply_overrides`)."""
    merged = _plain(model)
    for key, value in overrides.items():
        if key in MODEL_FIELDS:
            merged[key] = _plain(value)
        elif key in merged.get("hyperparameters", {}):
            merged["hyperparameters"] = {**merged["hyperparameters"], key: value}
        else:
            allowed = list(MODEL_FIELDS) + sorted(merged.get("hyperparameters", {}))
            raise ConfigError(source, key, value, f"an override among {allowed}")
    if "modalities" in overrides:
        # A new set of modalities invalidates masks and per-modality weights written for the old
        # one unless they are overridden too.
        for key in ("inference_structure", "generation_structure"):
            if key not in overrides and isinstance(merged[key], list):
                merged[key] = "full"
        # Private sizes keyed by the old set's modality names are dropped (kind keys and "*" still apply).
        if "private" not in overrides and isinstance(merged.get("private"), dict):
            merged["private"] = {k: v for k, v in merged["private"].items()
                                 if k in NAME_FREE_KEYS or k in (overrides["modalities"] or {})}
        # Likelihood weights apply to the modalities of the new set that they name.
        if "likelihood_weights" not in overrides and isinstance(merged.get("likelihood_weights"), dict):
            merged["likelihood_weights"] = {k: v for k, v in merged["likelihood_weights"].items()
                                            if k in (overrides["modalities"] or {})}
    return parse_model(merged, source)

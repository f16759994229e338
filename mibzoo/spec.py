"""One parse of a zoo config's ``model`` section into a validated `ModelSpec`.

`parse_model` is the single place where a model section is checked and its meaning worked out:
the normalized section (what `MIBModel.get_config` returns), the parsed masks M^q and M^p, the
sizes of the shared blocks and of the private latents U_i, every term with its resolved weight
(Eq. 8), the per-modality network specs and the aggregation strategy. `mibzoo.config` reads zoo
files and applies overrides through it; `mibzoo.model.MIBModel` is built from a `ModelSpec` only.
The fields themselves are documented in `mibzoo.config`.
"""
import copy
import dataclasses
import keyword
import math

from mibzoo import aggregation, latent_samplers, objectives
from mibzoo.errors import ConfigError, did_you_mean
from mibzoo.modalities import (KINDS, NAME_FREE_KEYS, NETWORK_KEYS, check_mlp_only_options, check_network_options,
                               likelihood_terms, modality_key, modality_keys_allowed, normalize_modalities)
from mibzoo.schedules import validate_schedule
from mibzoo.structure import DIST_MASKS, MASK_AT_INFERENCE, SPARSITY_ON, SPARSITY_SCALE, parse_mask
from mibzoo.weights import RESERVED_WEIGHT_NAMES, resolve_weight

MODEL_FIELDS = ("modalities", "shared", "private", "inference_structure", "generation_structure",
                "structure_learning", "hyperparameters", "dist", "str_reg", "phases", "seed",
                "likelihood_weights", "kl_schedule", "networks", "optimizers", "posterior", "term_options",
                "latent_sampler", "batch_size", "steps_per_execution", "loss_schedule", "expert_output")
STRUCTURE_LEARNING_DEFAULTS = {"temperature": 1.0, "min_temperature": 0.2, "anneal_rate": 1e-3,
                               "sparsity": 0.0, "at_inference": "expected", "learning_rate": 1e-2,
                               "dist_masks": "relaxed"}
# Options written into the normalized config only when given, so that adding one leaves the configs
# (and the config digests of `mibzoo.compare`) of every model that does not use it unchanged.
STRUCTURE_LEARNING_OPTIONAL = {"sparsity_on": SPARSITY_ON, "sparsity_scale": SPARSITY_SCALE}
# What an encoder's first D_z outputs are (`MIBModel.encode_modality`), the default first: the
# expert's natural parameter η = μ / σ², or its mean μ.
EXPERT_OUTPUTS = ("natural", "mean")
OPTIMIZER_DEFAULTS = {"dist": {"learning_rate": 1e-3}, "critic": {"learning_rate": 2e-4, "beta_1": 0.5}}
ADAM_KEYS = ("learning_rate", "beta_1", "beta_2", "epsilon")
BLOCK_FIELDS = ("name", "size", "prior", "code", "scale")
BLOCK_PRIORS = ("normal", "categorical", "uniform")
# Priors a block may only have without an inference network: the PoE posterior and every inference
# term are Gaussian.
GENERATOR_ONLY_PRIORS = ("categorical", "uniform")
# Priors of continuous blocks (InfoGAN's continuous codes, traversals: `mibzoo.metrics.codes`).
CONTINUOUS_PRIORS = ("normal", "uniform")
# Options any term of the model may be given in ``term_options`` (see the module docstring); a
# term adds its own (`mibzoo.objectives.registry.Term.options`).
TERM_OPTIONS = ("shares_critic", "trains_critic_trunk", "weight_schedule")
# Phases with a fixed meaning (Algorithm 1); estimator critics add "critic:<term>" phases.
BUILTIN_PHASES = ("dist", "structure")
# Where a phase's steps get their minibatch: "own" (Algorithm 1: each step samples one and takes a
# training call), "previous" (the minibatch of the step before it, in the same call; `mibzoo.phases`).
PHASE_BATCHES = ("own", "previous")

def _terms(entries, kind, source, field):
    if not isinstance(entries, (list, tuple)):
        raise ConfigError(source, field, entries, "a list of [weight, term] pairs")
    names = sorted(n for n, t in objectives.TERMS.items() if t.kind == kind)
    out = []
    for k, pair in enumerate(entries):
        where = f"{field}[{k}]"
        if not (isinstance(pair, (list, tuple)) and len(pair) == 2 and isinstance(pair[1], str)):
            raise ConfigError(source, where, pair, "a [weight, term name] pair")
        if pair[1] not in objectives.TERMS or objectives.TERMS[pair[1]].kind != kind:
            raise ConfigError(source, f"{where}[1]", pair[1], f"one of the registered {kind} terms {names}")
        out.append([copy.deepcopy(pair[0]), pair[1]])
    return out


@dataclasses.dataclass(frozen=True)
class ModelSpec:
    """A validated model section and what it means, as `parse_model` worked it out.

    Attributes:
        source: where the section came from (named in errors).
        config: the normalized section, every field filled in (the `MIBModel` arguments).
        modality_names: X_1..X_N in config order.
        block_names, block_sizes, block_priors: the shared blocks Z_1..Z_M.
        private_sizes: ``{modality: size of U_i}`` (0: none).
        inference_mask, generation_mask: ``(learned, N×M values)`` of M^q and M^p (`parse_mask`).
        mask_options: the options of `mibzoo.structure.StructureMasks` (``structure_learning``
            without the structure phase's learning rate).
        has_inference: False when G^q = [] (``inference_structure: "none"``, GAN and InfoGAN).
        loss_terms: ``(group, term, weight)`` of every term of L_dist and L_str_reg, the weight a
            float or, for a per-modality term, a list of N floats.
        likelihood_weights: w_i of each modality's likelihood term, in modality order.
        network_specs: each modality's spec with the per-kind network defaults under its own keys.
        aggregation: the strategy combining the experts into q(z | x^S) (`mibzoo.aggregation`).
        shared_critics: ``{term: critic term}`` whose trunk the term's auxiliary shares.
    """

    source: str
    config: dict
    modality_names: tuple
    block_names: tuple
    block_sizes: tuple
    block_priors: tuple
    private_sizes: dict
    inference_mask: tuple
    generation_mask: tuple
    mask_options: dict
    has_inference: bool
    loss_terms: tuple
    likelihood_weights: tuple
    network_specs: dict
    aggregation: object
    shared_critics: dict


def private_sizes(private, modalities, source="private"):
    """``{modality: size of U_i}`` from a config's ``private`` field: an int for every modality, or a
    dict keyed by modality names or modality kinds (``{"image": 4}``; a modality's own name wins
    over its kind; unlisted modalities get 0). Kind keys let an entry keep its private latents when
    a data set renames its modalities (MNIST-Plus-1's ``image_a``, ``image_b``).

    Args:
        private: the ``private`` field.
        modalities: ``{name: spec}`` of the model's modalities (specs carry ``kind``).
    """
    allowed = ("a non-negative integer (0: no private latents) or {modality name, kind or '*': "
               "non-negative integer}")

    def size(value, field):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(source, field, value, allowed)
        return value

    if isinstance(private, dict):
        unknown = sorted(set(private) - set(modalities) - NAME_FREE_KEYS)
        if unknown:
            raise ConfigError(source, f"private.{unknown[0]}", private[unknown[0]],
                              f"sizes keyed by {modality_keys_allowed(modalities)}")
        keys = {name: modality_key(private, name, spec["kind"]) for name, spec in modalities.items()}
        return {name: size(private[key], f"private.{key}") if key is not None else 0 for name, key in keys.items()}
    return {name: size(private, "private") for name in modalities}


def parse_model(model, source):
    """Validates the ``model`` section of a zoo config and works out its meaning once.

    Args:
        model: dict with the `MIBModel` arguments (see the module docstring).
        source: where it came from (a file path, or ``"override"``), named in errors.

    Returns:
        A `ModelSpec`; its ``config`` is a normalized deep copy of ``model``.

    Raises:
        ConfigError: naming the source, the field, the bad value and what is allowed.
    """
    if not isinstance(model, dict):
        raise ConfigError(source, "model", model, "a dict of MIBModel arguments")
    unknown = sorted(set(model) - set(MODEL_FIELDS))
    if unknown:
        raise ConfigError(source, f"model.{unknown[0]}", model[unknown[0]], f"only the fields {list(MODEL_FIELDS)}")
    cfg = copy.deepcopy(model)
    cfg["modalities"] = normalize_modalities(cfg.get("modalities"), source)
    names = list(cfg["modalities"])
    if "present" in names:
        raise ConfigError(source, "modalities.present", cfg["modalities"]["present"],
                          "another name: 'present' is reserved for per-example presence masks")

    shared = cfg.get("shared", [{"name": "z", "size": 16}])
    if isinstance(shared, int) and not isinstance(shared, bool):
        shared = [{"name": "z", "size": shared}]
    if not isinstance(shared, list) or not shared:
        raise ConfigError(source, "shared", shared, "a non-empty list of {\"name\": str, \"size\": int} blocks")
    no_inference = cfg.get("inference_structure", "full") == "none"
    for j, block in enumerate(shared):
        if not (isinstance(block, dict) and {"name", "size"} <= set(block) <= set(BLOCK_FIELDS)
                and isinstance(block["name"], str)):
            raise ConfigError(source, f"shared[{j}]", block,
                              "{\"name\": str, \"size\": positive int} with optional \"prior\", \"code\" and \"scale\"")
        if isinstance(block["size"], bool) or not isinstance(block["size"], int) or block["size"] <= 0:
            raise ConfigError(source, f"shared[{j}].size", block["size"], "a positive integer")
        prior = block.setdefault("prior", "normal")
        if prior not in BLOCK_PRIORS:
            raise ConfigError(source, f"shared[{j}].prior", prior, f"one of {list(BLOCK_PRIORS)}")
        if prior in GENERATOR_ONLY_PRIORS and not no_inference:
            raise ConfigError(source, f"shared[{j}].prior", prior,
                              "'normal' unless inference_structure is 'none' (the PoE posterior is Gaussian)")
        if not isinstance(block.setdefault("code", False), bool):
            raise ConfigError(source, f"shared[{j}].code", block["code"], "true or false")
        # "scale": the standard deviation σ of a normal block's prior N(0, σ² I), or the half-width a of a
        # uniform block's U(−a, a)^size; absent means 1.
        scale = block.get("scale", 1.0)
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale < float("inf"):
            raise ConfigError(source, f"shared[{j}].scale", scale,
                              "a finite number > 0 (a normal prior's standard deviation, a uniform prior's half-width)")
        if "scale" in block:
            block["scale"] = float(scale)
        if scale != 1.0 and prior == "categorical":
            raise ConfigError(source, f"shared[{j}].scale", scale,
                              "1 for a categorical block (only normal and uniform blocks are scaled)")
        if scale != 1.0 and not no_inference:
            raise ConfigError(source, f"shared[{j}].scale", scale,
                              "1 unless inference_structure is 'none' (the inference terms assume p(z) = N(0, I))")
    if len({b["name"] for b in shared}) != len(shared):
        raise ConfigError(source, "shared", shared, "distinct block names")
    cfg["shared"] = shared

    cfg["private"] = cfg.get("private", 0)
    sizes = private_sizes(cfg["private"], cfg["modalities"], source)

    masks = {}
    for key in ("inference_structure", "generation_structure"):
        cfg[key] = cfg.get(key, "full")
        masks[key] = parse_mask(cfg[key], len(names), len(shared), source, key)

    learning = cfg.get("structure_learning") or {}
    allowed = sorted(set(STRUCTURE_LEARNING_DEFAULTS) | set(STRUCTURE_LEARNING_OPTIONAL))
    if not isinstance(learning, dict) or set(learning) - set(allowed):
        raise ConfigError(source, "structure_learning", learning, f"a dict with keys from {allowed}")
    learning = {**STRUCTURE_LEARNING_DEFAULTS, **learning}
    for key, choices in STRUCTURE_LEARNING_OPTIONAL.items():
        if key in learning and learning[key] not in choices:
            raise ConfigError(source, f"structure_learning.{key}", learning[key], f"one of {list(choices)}")
    for key in ("temperature", "min_temperature", "anneal_rate", "sparsity", "learning_rate"):
        value = learning[key]
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(source, f"structure_learning.{key}", value, "a finite non-negative number")
    if learning["learning_rate"] <= 0:
        raise ConfigError(source, "structure_learning.learning_rate", learning["learning_rate"],
                          "a positive learning rate (of the structure phase's Adam)")
    if learning["min_temperature"] <= 0 or learning["temperature"] <= 0:
        raise ConfigError(source, "structure_learning.min_temperature", learning["min_temperature"],
                          "positive temperatures")
    if learning["at_inference"] not in MASK_AT_INFERENCE:
        raise ConfigError(source, "structure_learning.at_inference", learning["at_inference"],
                          f"one of {list(MASK_AT_INFERENCE)}")
    if learning["dist_masks"] not in DIST_MASKS:
        raise ConfigError(source, "structure_learning.dist_masks", learning["dist_masks"], f"one of {list(DIST_MASKS)}")
    cfg["structure_learning"] = learning

    hyper = cfg.get("hyperparameters", {})
    if not isinstance(hyper, dict):
        raise ConfigError(source, "hyperparameters", hyper, "a dict {name: number}")
    for key, value in hyper.items():
        if not key.isidentifier() or keyword.iskeyword(key) or isinstance(value, bool) \
                or not isinstance(value, (int, float)):
            raise ConfigError(source, f"hyperparameters.{key}", value,
                              "numeric values under identifier names that are not Python keywords")
        if not math.isfinite(value):
            raise ConfigError(source, f"hyperparameters.{key}", value, "a finite number (not NaN or infinity)")
        if key in RESERVED_WEIGHT_NAMES:
            raise ConfigError(source, f"hyperparameters.{key}", value,
                              f"a name other than {list(RESERVED_WEIGHT_NAMES)} (N is the number of modalities)")
    cfg["hyperparameters"] = hyper

    cfg["dist"] = _terms(cfg.get("dist", [[1.0, "C1"]]), "cost", source, "dist")
    cfg["str_reg"] = _terms(cfg.get("str_reg", []), "regularizer", source, "str_reg")
    if not cfg["dist"]:
        raise ConfigError(source, "dist", cfg["dist"], "at least one cost term (L_dist)")
    loss_terms = tuple((field, objectives.TERMS[name],
                        resolve_weight(weight, objectives.TERMS[name], names, hyper, source, f"{field}[{k}][0]",
                                       [cfg["modalities"][n]["kind"] for n in names]))
                       for field in ("dist", "str_reg") for k, (weight, name) in enumerate(cfg[field]))

    for _, term, _ in loss_terms:
        for key, declared in term.hyperparameters.items():
            if key in hyper and not declared.accepts(hyper[key]):
                raise ConfigError(source, f"hyperparameters.{key}", hyper[key],
                                  f"{declared.allowed()}, read by term '{term.name}'")

    if no_inference:
        for field in ("dist", "str_reg"):
            for k, (_, name) in enumerate(cfg[field]):
                if objectives.TERMS[name].needs_inference:
                    raise ConfigError(source, f"{field}[{k}][1]", name,
                                      "a term that needs no inference network: inference_structure is 'none' "
                                      f"(allowed: {sorted(n for n, t in objectives.TERMS.items() if not t.needs_inference)})")
    cfg["posterior"] = cfg.get("posterior", "poe")
    strategy = aggregation.get(cfg["posterior"], source)
    if not strategy.gaussian:
        for field in ("dist", "str_reg"):
            for k, (_, name) in enumerate(cfg[field]):
                if objectives.TERMS[name].needs_gaussian_posterior:
                    gaussian = sorted(n for n, s in aggregation.STRATEGIES.items() if s.gaussian)
                    raise ConfigError(source, f"{field}[{k}][1]", name,
                                      f"a term that works with posterior {cfg['posterior']!r} (a mixture, not one "
                                      f"Gaussian): term '{name}' estimates the aggregate posterior from the Gaussian "
                                      f"posterior's loc/logvar, so it needs posterior {gaussian}")
    critic_terms = [name for field in ("dist", "str_reg") for _, name in cfg[field] if objectives.TERMS[name].critic]
    learned = any(isinstance(cfg[k], dict) for k in ("inference_structure", "generation_structure"))
    default_phases = ([{"name": f"critic:{t}", "steps": 1} for t in critic_terms] + [{"name": "dist", "steps": 1}]
                      + ([{"name": "structure", "steps": 1}] if learned else []))
    phases = cfg.get("phases", default_phases)
    if not isinstance(phases, list) or not phases:
        raise ConfigError(source, "phases", phases, "a non-empty list of {\"name\": ..., \"steps\": int}")
    for k, phase in enumerate(phases):
        if not (isinstance(phase, dict) and {"name", "steps"} <= set(phase) <= {"name", "steps", "start", "batch"}):
            raise ConfigError(source, f"phases[{k}]", phase,
                              "{\"name\": str, \"steps\": positive int} and optionally \"start\": int >= 0 and "
                              f"\"batch\": one of {list(PHASE_BATCHES)}")
        batch = phase.get("batch", "own")
        if batch not in PHASE_BATCHES:
            raise ConfigError(source, f"phases[{k}].batch", batch,
                              f"one of {list(PHASE_BATCHES)}" + did_you_mean(str(batch), PHASE_BATCHES))
        if batch == "previous" and k == 0:
            raise ConfigError(source, f"phases[{k}].batch", batch,
                              "'own' for the first phase: 'previous' reuses the minibatch of the phase before it")
        if phase["name"] not in BUILTIN_PHASES and not phase["name"].startswith("critic:"):
            raise ConfigError(source, f"phases[{k}].name", phase["name"],
                              f"one of {list(BUILTIN_PHASES)} or 'critic:<term>'")
        if isinstance(phase["steps"], bool) or not isinstance(phase["steps"], int) or phase["steps"] <= 0:
            raise ConfigError(source, f"phases[{k}].steps", phase["steps"], "a positive integer")
        start = phase.get("start", 0)
        if isinstance(start, bool) or not isinstance(start, int) or start < 0:
            raise ConfigError(source, f"phases[{k}].start", start, "a non-negative integer (training steps before "
                                                                   "the phase's first turn)")
        if start and phase["name"] == "dist":
            raise ConfigError(source, f"phases[{k}].start", start,
                              "0 for the 'dist' phase: the networks train from the first step (a later phase "
                              "may start later)")
    phase_names = [p["name"] for p in phases]
    for k, name in enumerate(phase_names):
        if name.startswith("critic:") and name[len("critic:"):] not in critic_terms:
            raise ConfigError(source, f"phases[{k}].name", name,
                              f"a critic phase of a term of this model that has a critic: "
                              f"{['critic:' + t for t in critic_terms]}")
    for term in critic_terms:
        if f"critic:{term}" not in phase_names:
            raise ConfigError(source, "phases", phases,
                              f"a 'critic:{term}' phase: term '{term}' trains a critic (Algorithm 1, generalized)")
    if "dist" not in phase_names:
        raise ConfigError(source, "phases", phases, "a 'dist' phase (steps_dist > 0 in Algorithm 1)")
    if "structure" in [p["name"] for p in phases] and not learned:
        raise ConfigError(source, "phases", phases,
                          "no 'structure' phase unless M^q or M^p is learned ({\"learned\": true})")
    cfg["phases"] = phases
    cfg["term_options"] = _term_options(cfg.get("term_options", {}), cfg, critic_terms, source)

    cfg["likelihood_weights"] = _likelihood_weights(cfg.get("likelihood_weights", {}), list(cfg["modalities"]), source)
    cfg["kl_schedule"] = validate_schedule(cfg.get("kl_schedule"), source)
    # Written only when given (see STRUCTURE_LEARNING_OPTIONAL): every other config stays as it was.
    loss_schedule = validate_schedule(cfg.pop("loss_schedule", None), source, "loss_schedule")
    if loss_schedule is not None:
        cfg["loss_schedule"] = loss_schedule
    expert_output = cfg.pop("expert_output", EXPERT_OUTPUTS[0])
    if expert_output not in EXPERT_OUTPUTS:
        raise ConfigError(source, "expert_output", expert_output,
                          f"one of {list(EXPERT_OUTPUTS)}" + did_you_mean(str(expert_output), EXPERT_OUTPUTS))
    if expert_output != EXPERT_OUTPUTS[0]:
        cfg["expert_output"] = expert_output
    cfg["networks"] = _networks(cfg.get("networks", {}), source)
    cfg["optimizers"] = _optimizers(cfg.get("optimizers", {}), source)
    cfg["latent_sampler"] = latent_samplers.validate(cfg.get("latent_sampler"), source, not no_inference)

    if "batch_size" in cfg:
        size = cfg["batch_size"]
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(source, "batch_size", size, "a positive integer (the entry's training batch size)")

    if "steps_per_execution" in cfg:
        cfg["steps_per_execution"] = _steps_per_execution(cfg["steps_per_execution"], phases, source)

    seed = cfg.get("seed", 0)
    if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
        raise ConfigError(source, "seed", seed, "a non-negative integer")
    cfg["seed"] = seed

    modalities = cfg["modalities"]
    mask_options = {k: v for k, v in learning.items() if k not in ("learning_rate", "sparsity_scale")}
    if learning.get("sparsity_scale") == "sqrt_likelihood_terms":
        # s_i = √(w_i d_i): the scale of the likelihood's gradient noise on an edge (mibzoo.structure).
        mask_options["modality_scales"] = [math.sqrt(cfg["likelihood_weights"].get(name, 1.0) * likelihood_terms(modalities[name]))
                                           for name in names]
    return ModelSpec(
        source=source, config=cfg, modality_names=tuple(names),
        block_names=tuple(b["name"] for b in shared), block_sizes=tuple(b["size"] for b in shared),
        block_priors=tuple(b["prior"] for b in shared), private_sizes=sizes,
        inference_mask=masks["inference_structure"], generation_mask=masks["generation_structure"],
        mask_options=mask_options, has_inference=not no_inference, loss_terms=loss_terms,
        likelihood_weights=tuple(cfg["likelihood_weights"].get(name, 1.0) for name in names),
        network_specs={name: check_mlp_only_options(spec["kind"], {**cfg["networks"].get(spec["kind"], {}), **spec},
                                                    source, f"modalities.{name}")
                       for name, spec in modalities.items()},
        aggregation=strategy,
        shared_critics={term: options["shares_critic"] for term, options in cfg["term_options"].items()
                        if "shares_critic" in options})


def _likelihood_weights(weights, names, source):
    """``{modality: w_i}``: non-negative finite weights of the likelihood terms, keyed by modalities."""
    if not isinstance(weights, dict):
        raise ConfigError(source, "likelihood_weights", weights, "a dict {modality: non-negative number}")
    out = {}
    for name, value in weights.items():
        if name not in names:
            raise ConfigError(source, f"likelihood_weights.{name}", value,
                              f"weights keyed by the modalities {names}." + did_you_mean(name, names))
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
            raise ConfigError(source, f"likelihood_weights.{name}", value, "a finite non-negative number")
        out[name] = float(value)
    return out


def _term_options(options, cfg, critic_terms, source):
    """Checks ``term_options`` against the model's terms (see the module docstring)."""
    used = [name for field in ("dist", "str_reg") for _, name in cfg[field]]
    if not isinstance(options, dict):
        raise ConfigError(source, "term_options", options, f"a dict {{term: {{option: value}}}} over the terms {used}")
    out = {}
    for term, values in options.items():
        if term not in used:
            raise ConfigError(source, f"term_options.{term}", values,
                              f"options of a term of this model, one of {used}" + did_you_mean(term, used))
        own = objectives.TERMS[term].options
        keys = list(TERM_OPTIONS) + list(own)
        if not isinstance(values, dict):
            raise ConfigError(source, f"term_options.{term}", values, f"a dict with keys from {keys}")
        values = dict(values)
        for key, value in values.items():
            field = f"term_options.{term}.{key}"
            if key not in keys:
                raise ConfigError(source, field, value, f"one of {keys}" + did_you_mean(key, keys))
            if key == "weight_schedule":
                if value is None:
                    raise ConfigError(source, field, value, "a schedule {\"class_name\": ..., \"config\": {...}} "
                                      "(leave the option out for a constant weight)")
                values[key] = validate_schedule(value, source, field)
                continue
            if key in own:
                if value not in own[key]:
                    raise ConfigError(source, field, value, f"one of {list(own[key])}"
                                      + did_you_mean(str(value), [str(v) for v in own[key]]))
                continue
            if not objectives.TERMS[term].auxiliary:
                raise ConfigError(source, field, value, "an option of a term with an auxiliary network "
                                  f"(terms of this model that have one: "
                                  f"{[t for t in used if objectives.TERMS[t].auxiliary]})")
            if key == "trains_critic_trunk":
                if not isinstance(value, bool):
                    raise ConfigError(source, field, value, "true (default) or false")
                if "shares_critic" not in values:
                    raise ConfigError(source, field, value, "an option of an auxiliary that shares a critic's trunk "
                                      f"(give term_options.{term}.shares_critic too)")
                continue
            if value not in critic_terms:
                raise ConfigError(source, field, value, f"a term of this model that trains a critic, one of "
                                  f"{critic_terms}" + did_you_mean(str(value), critic_terms))
        out[term] = dict(values)
    return out


def _steps_per_execution(value, phases, source):
    """``steps_per_execution``: training steps per call of the compiled train function (Keras's
    compile argument); a positive integer, and 1 for a model of several phases, whose alternation
    (Algorithm 1) is counted in calls: there each phase would run that many steps in a row."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigError(source, "steps_per_execution", value,
                          "a positive integer (training steps per call of the compiled train function)")
    if value > 1 and len(phases) > 1:
        raise ConfigError(source, "steps_per_execution", value,
                          f"1 for a model of several phases ({[p['name'] for p in phases]}): Algorithm 1 "
                          f"alternates them call by call, so each would run {value} steps in a row")
    return value


def _networks(networks, source):
    """``{kind: {network, decoder_network, hidden, layers, decoder_layers, filters, critic_batch_norm,
    critic_hidden}}``:
    default network options per modality kind (`mibzoo.modalities.NETWORK_KEYS`)."""
    if not isinstance(networks, dict):
        raise ConfigError(source, "networks", networks, f"a dict {{kind: options}} with kinds from {list(KINDS)}")
    out = {}
    for kind, options in networks.items():
        if kind not in KINDS:
            raise ConfigError(source, f"networks.{kind}", options, f"a modality kind, one of {list(KINDS)}."
                              + did_you_mean(kind, KINDS))
        if not isinstance(options, dict) or set(options) - set(NETWORK_KEYS):
            raise ConfigError(source, f"networks.{kind}", options, f"a dict with keys from {list(NETWORK_KEYS)}")
        out[kind] = check_network_options(kind, copy.deepcopy(options), source, f"networks.{kind}")
    return out


def _optimizers(optimizers, source):
    """``{"dist": {...}, "critic": {...}}``: Adam settings per phase group over `OPTIMIZER_DEFAULTS`."""
    if not isinstance(optimizers, dict):
        raise ConfigError(source, "optimizers", optimizers, f"a dict with keys from {list(OPTIMIZER_DEFAULTS)}")
    out = copy.deepcopy(OPTIMIZER_DEFAULTS)
    for group, options in optimizers.items():
        if group not in OPTIMIZER_DEFAULTS:
            raise ConfigError(source, f"optimizers.{group}", options, f"one of {list(OPTIMIZER_DEFAULTS)}."
                              + did_you_mean(group, OPTIMIZER_DEFAULTS))
        if not isinstance(options, dict):
            raise ConfigError(source, f"optimizers.{group}", options, f"a dict with keys from {list(ADAM_KEYS)}")
        for key, value in options.items():
            field = f"optimizers.{group}.{key}"
            if key not in ADAM_KEYS:
                raise ConfigError(source, field, value, f"an Adam setting, one of {list(ADAM_KEYS)}."
                                  + did_you_mean(key, ADAM_KEYS))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ConfigError(source, field, value, "a finite number")
            if key.startswith("beta") and not 0 <= value < 1:
                raise ConfigError(source, field, value, "a number in [0, 1)")
            if not key.startswith("beta") and value <= 0:
                raise ConfigError(source, field, value, "a number > 0")
            out[group][key] = float(value)
    return out

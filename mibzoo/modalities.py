"""Modality specs: the one form in which datasets declare, and models take, observed variables.

A spec is a plain dict (JSON-serializable, so it lives in zoo configs and in
`get_config`). Kinds:

- ``image``: ``{"kind": "image", "shape": [H, W, C], "likelihood": "bernoulli"|"normal"|"laplace"}``;
  values are floats in [0, 1] for Bernoulli.
- ``vector``: ``{"kind": "vector", "size": D, "likelihood": "bernoulli"|"normal"|"laplace"}``.
- ``categorical``: ``{"kind": "categorical", "classes": K}``; batches hold integer class ids
  (shape ``[B]`` or ``[B, 1]``) or one-hot rows ``[B, K]``.
- ``tabular``: ``{"kind": "tabular", "numeric": n, "categorical": [k_1, ..., k_m]}``; a flat
  float row of ``n`` standardized numeric columns followed by ``m`` one-hot groups; its
  likelihood is a product of a Normal over the numeric columns and one Categorical per group.

Optional for every kind: ``"hidden"`` (int, width of the MLP layers), ``"layers"`` (int, number
of hidden layers), ``"decoder_layers"`` (int, number of hidden layers of an MLP decoder when it
differs from the encoder's ``layers``, as in MultiVae's default networks: encoders of two 512-unit
layers, decoders of one; 0 makes the decoder one linear map, a generalized linear model of the
latents; MLP networks only), ``"filters"`` (list of ints, conv channels for images), ``"network"``
(``"conv"``, the default for images, ``"mlp"``, or ``"dcgan"``, the DCGAN generator and
discriminators of `mibzoo.networks`; other kinds are always MLPs), ``"decoder_network"``
(``"conv"`` or ``"mlp"``, images only: the decoder's network when it differs from the encoder's,
e.g. a convolutional encoder with an MLP decoder; absent, the decoder has ``network``; not with
``"dcgan"``). Unknown keys are rejected so that typos do not pass silently.
"""
import copy
import math

from mibzoo.errors import ConfigError, did_you_mean

KINDS = ("image", "vector", "categorical", "tabular")
REAL_LIKELIHOODS = ("bernoulli", "normal", "laplace")
NETWORK_KEYS = ("network", "decoder_network", "hidden", "layers", "decoder_layers", "filters", "critic_batch_norm",
                "critic_hidden")
NETWORKS = {"image": ("conv", "mlp", "dcgan"), "vector": ("mlp",), "categorical": ("mlp",), "tabular": ("mlp",)}
# The networks a decoder may have apart from its encoder's (``"decoder_network"``): DCGAN's generator
# comes only with DCGAN's encoder and critics (``"network": "dcgan"``).
DECODER_NETWORKS = {"image": ("conv", "mlp"), "vector": ("mlp",), "categorical": ("mlp",), "tabular": ("mlp",)}
_COMMON = {"kind", "description"} | set(NETWORK_KEYS)
_ALLOWED_KEYS = {
    "image": _COMMON | {"shape", "likelihood"},
    "vector": _COMMON | {"size", "likelihood"},
    "categorical": _COMMON | {"classes"},
    "tabular": _COMMON | {"numeric", "categorical", "columns"},
}


def _positive_int(value, source, field):
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(source, field, value, "a positive integer")
    return value


def normalize_modality(name, spec, source="modalities"):
    """Validates one modality spec and returns a normalized copy.

    Args:
        name: the modality's name (a key of the modalities dict).
        spec: the spec dict, see the module docstring.
        source: where the spec came from, for error messages (a file name or "override").

    Returns:
        A new dict with defaults filled in (``likelihood`` defaults to ``bernoulli`` for
        images and ``normal`` for vectors; ``vector`` specs get ``size``).
    """
    field = f"modalities.{name}"
    if not isinstance(name, str) or not name or not name.replace("_", "").isalnum():
        raise ConfigError(source, "modalities", name, "modality names made of letters, digits and '_'")
    if not isinstance(spec, dict):
        raise ConfigError(source, field, spec, "a dict with a 'kind' key")
    kind = spec.get("kind")
    if kind not in KINDS:
        raise ConfigError(source, f"{field}.kind", kind, f"one of {list(KINDS)}")
    unknown = sorted(set(spec) - _ALLOWED_KEYS[kind])
    if unknown:
        raise ConfigError(source, f"{field}.{unknown[0]}", spec[unknown[0]],
                          f"only the keys {sorted(_ALLOWED_KEYS[kind])} for kind '{kind}'")
    out = copy.deepcopy(spec)
    if kind == "image":
        shape = spec.get("shape")
        if not (isinstance(shape, (list, tuple)) and len(shape) == 3):
            raise ConfigError(source, f"{field}.shape", shape, "[height, width, channels]")
        out["shape"] = [_positive_int(s, source, f"{field}.shape[{k}]") for k, s in enumerate(shape)]
        out.setdefault("likelihood", "bernoulli")
    elif kind == "vector":
        size = spec.get("size")
        out["size"] = _positive_int(size, source, f"{field}.size")
        out.setdefault("likelihood", "normal")
    elif kind == "categorical":
        classes = spec.get("classes")
        _positive_int(classes, source, f"{field}.classes")
        if classes < 2:
            raise ConfigError(source, f"{field}.classes", classes, "at least 2 classes")
    elif kind == "tabular":
        numeric = spec.get("numeric", 0)
        if isinstance(numeric, bool) or not isinstance(numeric, int) or numeric < 0:
            raise ConfigError(source, f"{field}.numeric", numeric, "a non-negative integer")
        groups = spec.get("categorical", [])
        if not isinstance(groups, (list, tuple)):
            raise ConfigError(source, f"{field}.categorical", groups, "a list of group sizes (ints >= 2)")
        for k, g in enumerate(groups):
            if isinstance(g, bool) or not isinstance(g, int) or g < 2:
                raise ConfigError(source, f"{field}.categorical[{k}]", g, "an integer >= 2 (one-hot group size)")
        if numeric + len(groups) == 0:
            raise ConfigError(source, field, spec, "at least one numeric column or categorical group")
        out["numeric"], out["categorical"] = numeric, list(groups)
    if kind in ("image", "vector") and out["likelihood"] not in REAL_LIKELIHOODS:
        raise ConfigError(source, f"{field}.likelihood", out["likelihood"], f"one of {list(REAL_LIKELIHOODS)}")
    return check_network_options(kind, out, source, field)


def check_network_options(kind, options, source, field):
    """Validates the network keys (`NETWORK_KEYS`) of a modality spec or of a model's per-kind
    ``networks`` defaults; returns ``options``."""
    for key in ("hidden", "layers", "critic_hidden"):
        if key in options:
            _positive_int(options[key], source, f"{field}.{key}")
    if "decoder_layers" in options:  # 0: the MLP decoder is one linear map to the likelihood's parameters
        value = options["decoder_layers"]
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(source, f"{field}.decoder_layers", value,
                              "a non-negative integer (0: a linear decoder, no hidden layer)")
    if "network" in options:
        check_mlp_only_options(kind, options, source, field)
    if "filters" in options:
        if not isinstance(options["filters"], (list, tuple)) or not options["filters"]:
            raise ConfigError(source, f"{field}.filters", options["filters"], "a non-empty list of positive ints")
        for k, f in enumerate(options["filters"]):
            _positive_int(f, source, f"{field}.filters[{k}]")
    if "critic_batch_norm" in options and not isinstance(options["critic_batch_norm"], bool):
        raise ConfigError(source, f"{field}.critic_batch_norm", options["critic_batch_norm"],
                          "true or false (batch normalization in the DCGAN discriminators that read this modality)")
    if "network" in options and options["network"] not in NETWORKS[kind]:
        raise ConfigError(source, f"{field}.network", options["network"],
                          f"one of {list(NETWORKS[kind])} for kind '{kind}'" + did_you_mean(options["network"], NETWORKS[kind]))
    if "decoder_network" in options and options["decoder_network"] not in DECODER_NETWORKS[kind]:
        raise ConfigError(source, f"{field}.decoder_network", options["decoder_network"],
                          f"one of {list(DECODER_NETWORKS[kind])} for kind '{kind}' (the decoder's network)"
                          + did_you_mean(options["decoder_network"], DECODER_NETWORKS[kind]))
    return options


# The key of a per-modality dict (``private`` sizes, per-modality weights) that applies to every
# modality that neither its name nor its kind keys.
OTHER_MODALITIES = "*"
# Keys of a per-modality dict that apply whatever the data set calls its modalities.
NAME_FREE_KEYS = frozenset(KINDS) | {OTHER_MODALITIES}


def modality_keys_allowed(names):
    """What keys a per-modality dict may have, for error messages: ``names``, a kind or ``"*"``."""
    return (f"the modalities {list(names)}, the kinds {list(KINDS)} or '{OTHER_MODALITIES}' "
            f"(every modality keyed by neither)")


def modality_key(mapping, name, kind):
    """The key of a per-modality dict (a config's ``private`` sizes, a per-modality weight) that
    applies to modality ``name`` of kind ``kind``: the modality's own name wins over its kind, and its
    kind over ``"*"`` (every other modality); None when the dict lists none of them (the modality gets
    0). Kind keys and ``"*"`` let an entry keep its values when a data set renames its modalities
    (MNIST-Plus-1's ``image_a``, ``image_b``) or brings other kinds (``{"categorical": 4.0, "*": 1.0}``
    weighs a label ×4 and any image, vector or table ×1)."""
    if name in mapping:
        return name
    if kind is not None and kind in mapping:
        return kind
    return OTHER_MODALITIES if OTHER_MODALITIES in mapping else None


def decoder_network(options, kind=None):
    """The network of a modality's decoder: its ``decoder_network``, else its ``network``, else the
    kind's default (``conv`` for images)."""
    kind = kind or options["kind"]
    return options.get("decoder_network", options.get("network", NETWORKS[kind][0]))


def check_mlp_only_options(kind, options, source, field):
    """Rejects options that the networks would otherwise ignore: ``decoder_layers`` where the
    decoder is not an MLP (a convolutional or DCGAN image, the default network of images being
    ``conv``, unless ``decoder_network`` is ``mlp``), and ``decoder_network`` with a DCGAN image.
    ``options`` is a modality spec merged with its kind's ``networks`` defaults, or one of them
    that names its ``network``."""
    network = options.get("network", NETWORKS[kind][0])
    if "decoder_network" in options and network == "dcgan":
        raise ConfigError(source, f"{field}.decoder_network", options["decoder_network"],
                          "no 'decoder_network' with a 'dcgan' network (DCGAN's generator comes with its "
                          "encoder and critics; set \"network\" to \"conv\" or \"mlp\", or remove it)")
    decoder = decoder_network(options, kind)
    if "decoder_layers" in options and decoder != "mlp":
        raise ConfigError(source, f"{field}.decoder_layers", options["decoder_layers"],
                          f"no 'decoder_layers' for a '{decoder}' decoder (MLP networks only; "
                          f"set \"network\" or \"decoder_network\" to \"mlp\", or remove it)")
    return options


def normalize_modalities(modalities, source="modalities"):
    """Validates a ``{name: spec}`` dict; returns normalized specs in the given order."""
    if not isinstance(modalities, dict) or not modalities:
        raise ConfigError(source, "modalities", modalities, "a non-empty dict {name: spec}")
    return {name: normalize_modality(name, spec, source) for name, spec in modalities.items()}


def event_shape(spec):
    """Shape of one example of this modality as the model sees it (categoricals: one-hot)."""
    kind = spec["kind"]
    if kind == "image":
        return tuple(spec["shape"])
    if kind == "vector":
        return (spec["size"],)
    if kind == "categorical":
        return (spec["classes"],)
    return (spec["numeric"] + sum(spec["categorical"]),)


def likelihood_terms(spec):
    """Number of log-density terms the modality's likelihood sums per example: one per pixel of an
    image, per coordinate of a vector, per column of a tabular record (each numerical value and each
    one-hot group), and one for a categorical."""
    kind = spec["kind"]
    if kind == "categorical":
        return 1
    if kind == "tabular":
        return spec["numeric"] + len(spec["categorical"])
    return math.prod(event_shape(spec))

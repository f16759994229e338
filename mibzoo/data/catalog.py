"""The named datasets: what each declares (modalities, extras, splits) and how it is built.

A builder turns prepared raw arrays into :class:`Examples`: per-example columns (indices,
labels, rows) plus shared tables that the columns index into. Keeping images in shared tables
lets pairings reuse an image many times without copying it; :mod:`mibzoo.data.pipeline` gathers
them per batch.
"""
from dataclasses import dataclass, field

import numpy as np

from mibzoo.data import constructions, tabular
from mibzoo.data.evaluation import EvaluationSpec, ModalityLabel
from mibzoo.data.sources import ensure_group
from mibzoo.modalities import normalize_modalities
from mibzoo.errors import did_you_mean

# Image modalities are read by classifiers that mibzoo trains itself (`mibzoo.classifiers`), so
# every coherence number is reproducible from the repository.
_DIGIT = "mnist_digit"
_MNIST_IMAGE = {"kind": "image", "shape": [28, 28, 1], "likelihood": "bernoulli",
                "description": "MNIST digit, grey values scaled to [0, 1]"}


@dataclass(frozen=True)
class DatasetInfo:
    """What a named dataset provides.

    Attributes:
        name: the dataset name for :func:`mibzoo.data.load`.
        description: one paragraph on what an example is.
        modalities: ``{name: spec}`` in the form :func:`mibzoo.load` takes (normalized).
        extras: ``{key: description}`` of evaluation-only batch keys (not modalities).
        splits: ``{split: number of examples in the real data, or None if it depends on data
            not known in advance}``.
        groups: the raw data groups it is built from ("mnist", "svhn", "adult", "german").
        citation: where the data and the construction come from.
        notes: preprocessing and construction choices.
        evaluation: the `EvaluationSpec` of the metrics: which batch key labels which modality,
            which classifier reads it, the probe target and, for fairness data, the sensitive
            attribute (`mibzoo.metrics`).
    """
    name: str
    description: str
    modalities: dict
    extras: dict
    splits: dict
    groups: tuple
    citation: str = ""
    notes: str = ""
    evaluation: EvaluationSpec = EvaluationSpec({})

    @property
    def keys(self):
        """All batch keys: modalities then extras."""
        return list(self.modalities) + list(self.extras)


@dataclass
class Examples:
    """The examples of one split before batching.

    Attributes:
        columns: ``{name: array [n, ...]}``, one row per example.
        tables: ``{name: array}`` indexed by columns (shared images).
        outputs: ``{batch key: (column,) or (table, index column)}``.
    """
    columns: dict
    tables: dict = field(default_factory=dict)
    outputs: dict = field(default_factory=dict)

    def __len__(self):
        return len(next(iter(self.columns.values())))

    def take(self, limit):
        """The first ``limit`` examples (all if None)."""
        if limit is None:
            return self
        if isinstance(limit, bool) or not isinstance(limit, (int, np.integer)) or limit < 0:
            raise ValueError(f"limit: got {limit!r}, expected None or a non-negative integer")
        if limit >= len(self):
            return self
        return Examples({k: v[:limit] for k, v in self.columns.items()}, self.tables, self.outputs)


def _mnist(split, data_dir, sources):
    prepared = ensure_group("mnist", data_dir, sources)
    return prepared.arrays[f"{split}_images"][..., None], prepared.arrays[f"{split}_labels"].astype(np.int32)


def _build_mnist(split, data_dir, sources, with_label=False):
    images, digits = _mnist(split, data_dir, sources)
    outputs = {"image": ("mnist", "index")}
    if with_label:
        outputs["label"] = ("digit",)
    outputs["digit"] = ("digit",)
    return Examples({"index": np.arange(len(digits)), "digit": digits}, {"mnist": images}, outputs)


def _build_mnist_label(split, data_dir, sources):
    return _build_mnist(split, data_dir, sources, with_label=True)


def _build_plus1(split, data_dir, sources):
    images, digits = _mnist(split, data_dir, sources)
    index_a, index_b = constructions.plus1_pairs(digits)
    columns = {"index_a": index_a, "index_b": index_b, "digit_a": digits[index_a], "digit_b": digits[index_b]}
    outputs = {"image_a": ("mnist", "index_a"), "image_b": ("mnist", "index_b"),
               "digit_a": ("digit_a",), "digit_b": ("digit_b",)}
    return Examples(columns, {"mnist": images}, outputs)


def _build_unrelated(split, data_dir, sources):
    images, digits = _mnist(split, data_dir, sources)
    partner = constructions.unrelated_partners(len(digits))
    columns = {"index": np.arange(len(digits)), "index_unrelated": partner, "digit": digits,
               "digit_unrelated": digits[partner]}
    outputs = {"image": ("mnist", "index"), "label": ("digit",), "unrelated": ("mnist", "index_unrelated"),
               "digit": ("digit",), "digit_unrelated": ("digit_unrelated",)}
    return Examples(columns, {"mnist": images}, outputs)


def _build_mnist_svhn(split, data_dir, sources):
    mnist_images, mnist_digits = _mnist(split, data_dir, sources)
    svhn = ensure_group("svhn", data_dir, sources)
    svhn_images, svhn_digits = svhn.arrays[f"{split}_images"], svhn.arrays[f"{split}_labels"].astype(np.int32)
    index_m, index_s = constructions.mmvae_pairs(mnist_digits, svhn_digits)
    columns = {"index_mnist": index_m, "index_svhn": index_s, "digit": mnist_digits[index_m]}
    outputs = {"mnist": ("mnist", "index_mnist"), "svhn": ("svhn", "index_svhn"), "digit": ("digit",)}
    return Examples(columns, {"mnist": mnist_images, "svhn": svhn_images}, outputs)


def _build_colored(split, data_dir, sources):
    images, digits = _mnist("train", data_dir, sources)  # IRM builds all environments from MNIST train
    env = constructions.colored_mnist(images[..., 0], digits, split)
    columns = {"index": np.arange(len(env["label"])), "label": env["label"], "env": env["env"],
               "colour": env["colour"], "digit": env["digit"]}
    outputs = {"image": ("image", "index"), "label": ("label",), "env": ("env",),
               "colour": ("colour",), "digit": ("digit",)}
    return Examples(columns, {"image": env["image"]}, outputs)


def _tabular_builder(group):
    def build(split, data_dir, sources):
        arrays = ensure_group(group, data_dir, sources).arrays
        columns = {key: arrays[f"{split}_{key}"] for key in ("x", "a", "target")}
        return Examples(columns, {}, {"x": ("x",), "a": ("a",), "target": ("target",)})
    return build


_MNIST_SPLITS = {"train": 60000, "test": 10000}

_DATASETS = [
    (DatasetInfo(
        name="mnist",
        description="MNIST digits alone (single-modality generative modelling).",
        modalities={"image": _MNIST_IMAGE},
        extras={"digit": "int32 digit 0..9 (evaluation only)"},
        splits=dict(_MNIST_SPLITS), groups=("mnist",),
        citation="LeCun et al. 1998.",
        notes="Grey values x/255 in [0, 1] (not binarized; a Bernoulli likelihood treats them as probabilities).",
        evaluation=EvaluationSpec({"image": ModalityLabel("digit", _DIGIT)}, probe_label="digit")),
     _build_mnist),
    (DatasetInfo(
        name="mnist_label",
        description="MNIST-Label: an MNIST image and its digit as a second modality (bimodal, paper Sec. 4).",
        modalities={"image": _MNIST_IMAGE,
                    "label": {"kind": "categorical", "classes": 10, "description": "the digit as a class"}},
        extras={"digit": "int32 digit 0..9, equal to label (kept for uniform evaluation code)"},
        splits=dict(_MNIST_SPLITS), groups=("mnist",),
        citation="Paper Sec. 4; Wu & Goodman 2018 (MVAE).",
        notes="The label modality holds int32 class ids of shape [B].",
        evaluation=EvaluationSpec({"image": ModalityLabel("digit", _DIGIT), "label": ModalityLabel("digit")},
                                  probe_label="digit")),
     _build_mnist_label),
    (DatasetInfo(
        name="mnist_plus1",
        description=("MNIST-MNIST-Plus-1: two views, image_a of digit m and image_b of digit (m+1) % 10 "
                     "(paper Sec. 4, Fig. 3 right)."),
        modalities={"image_a": dict(_MNIST_IMAGE, description="an MNIST image of digit m"),
                    "image_b": dict(_MNIST_IMAGE, description="an MNIST image of digit (m + 1) % 10")},
        extras={"digit_a": "int32 digit of image_a", "digit_b": "int32 digit of image_b, (digit_a + 1) % 10"},
        splits=dict(_MNIST_SPLITS), groups=("mnist",),
        citation="Paper Sec. 4.",
        notes=(f"Every image of the split is image_a once; partners are drawn from the same split by a "
               f"seeded permutation of the next digit's images (seed {constructions.PLUS1_SEED})."),
        # Figure 3 (right): image_b shows digit m + 1, so its class c stands for common class c − 1.
        evaluation=EvaluationSpec({"image_a": ModalityLabel("digit_a", _DIGIT),
                                   "image_b": ModalityLabel("digit_b", _DIGIT, offset=1)},
                                  probe_label="digit_a")),
     _build_plus1),
    (DatasetInfo(
        name="mnist_label_unrelated",
        description=("MNIST-Label plus an unrelated MNIST image: image and label show the same digit, "
                     "the third modality is another MNIST image drawn independently of both, so a "
                     "learned structure should cut its edges (issue 10; structure learning, Sec. 3.5)."),
        modalities={"image": _MNIST_IMAGE,
                    "label": {"kind": "categorical", "classes": 10, "description": "the digit of image as a class"},
                    "unrelated": dict(_MNIST_IMAGE, description="an MNIST image independent of image and label")},
        extras={"digit": "int32 digit of image (= label)", "digit_unrelated": "int32 digit of the unrelated image"},
        splits=dict(_MNIST_SPLITS), groups=("mnist",),
        citation="Built for mibzoo from MNIST (LeCun et al. 1998) to test structure learning on real data.",
        notes=(f"Example k of a split pairs image k and its label with image partner[k] of the same split, "
               f"partner a seeded permutation (seed {constructions.UNRELATED_SEED}) drawn without looking "
               f"at the digits."),
        # The unrelated image has no label in common with the pair: it is left unread, so coherences
        # are those of MNIST-Label; the learned structure (`structure/...`) shows whether its edges are cut.
        evaluation=EvaluationSpec({"image": ModalityLabel("digit", _DIGIT), "label": ModalityLabel("digit")},
                                  probe_label="digit")),
     _build_unrelated),
    (DatasetInfo(
        name="mnist_svhn",
        description="MNIST-SVHN: an MNIST image and an SVHN image of the same digit (paper Sec. 4, Fig. 3 left).",
        modalities={"mnist": _MNIST_IMAGE,
                    "svhn": {"kind": "image", "shape": [32, 32, 3], "likelihood": "laplace",
                             "description": "SVHN cropped digit, RGB scaled to [0, 1]"}},
        extras={"digit": "int32 digit shown by both images"},
        splits={"train": None, "test": None}, groups=("mnist", "svhn"),
        citation="Shi, Siddharth, Paige, Torr. Variational mixture-of-experts autoencoders for "
                 "multi-modal deep generative models (MMVAE). NeurIPS 2019.",
        notes=(f"Pairing as MMVAE's make_mnist_svhn_idx.py: per digit, the first "
               f"n = min(#MNIST, #SVHN, {constructions.MMVAE_MAX_PER_DIGIT}) images of each are matched "
               f"by {constructions.MMVAE_MULTIPLIER} random permutations (seed {constructions.SVHN_PAIR_SEED}), "
               f"then all pairs are shuffled once; the train split has about 1.1 million pairs. SVHN uses "
               f"a Laplace likelihood on [0, 1] values, as in MMVAE. SVHN has no offline copy: it comes "
               f"from TFDS (svhn_cropped) or from files placed in the data directory."),
        evaluation=EvaluationSpec({"mnist": ModalityLabel("digit", _DIGIT),
                                   "svhn": ModalityLabel("digit", "svhn_digit")}, probe_label="digit")),
     _build_mnist_svhn),
    (DatasetInfo(
        name="colored_mnist",
        description=("Colored-MNIST (IRM): a 14x14 two-channel digit, a noisy binary label and the "
                     "environment index; colour is spuriously correlated with the label (paper Sec. 6)."),
        modalities={"image": {"kind": "image", "shape": [14, 14, 2], "likelihood": "bernoulli",
                              "description": "digit downsampled 2x, in the red (0) or green (1) channel"},
                    "label": {"kind": "categorical", "classes": 2,
                              "description": "y = (digit < 5) flipped with probability 0.25"},
                    "env": {"kind": "categorical", "classes": 3,
                            "description": "environment: 0, 1 (train), 2 (test)"}},
        extras={"colour": "int32 channel holding the digit (0 red, 1 green)", "digit": "int32 original digit"},
        splits={"train": 50000, "test": 10000}, groups=("mnist",),
        citation="Arjovsky, Bottou, Gulrajani, Lopez-Paz. Invariant risk minimization. 2019.",
        notes=("As IRM's code: MNIST train images 0..49,999 (seeded shuffle, alternating) form "
               "environments 0 and 1 with colour flip probabilities 0.1 and 0.2; images "
               "50,000..59,999 form environment 2 (flip 0.9), the test split. MNIST's own test split "
               f"is not used. Construction seed {constructions.COLORED_SEED}."),
        # Only the label is a class of the pair; the environment index is not a label of the image.
        evaluation=EvaluationSpec({"label": ModalityLabel("label", classes=2)}, probe_label="label")),
     _build_colored),
    (DatasetInfo(
        name="adult",
        description="UCI Adult for fair representation learning: x = census attributes, a = sex, target = income > 50K.",
        modalities={"x": dict(tabular.tabular_spec(tabular.ADULT_NUMERIC, tabular.ADULT_VOCAB),
                              description="6 standardized numericals, then 7 one-hot groups (sex removed)"),
                    "a": {"kind": "categorical", "classes": 2, "description": "sensitive attribute: sex (1 = Male)"}},
        extras={"target": "int32 1 if income > 50K (held out from the model)"},
        splits={"train": 30162, "test": 15060}, groups=("adult",),
        citation="Kohavi 1996; setting of Song et al. 2019 and Creager et al. 2019 (paper Sec. 5).",
        notes=("Official split adult.data / adult.test; rows with missing values dropped; "
               "log1p on capital-gain and capital-loss; numericals standardized with train statistics; "
               "one-hot over the UCI codebook vocabularies."),
        # Sec. 5: a linear classifier of the held-out target on the representation of x, fair w.r.t. a.
        evaluation=EvaluationSpec({"a": ModalityLabel("a", classes=2)}, probe_label="target", sensitive="a",
                                  representation="x")),
     _tabular_builder("adult")),
    (DatasetInfo(
        name="german",
        description="UCI German credit for fair representation learning: x = applicant attributes, "
                    "a = age > 25, target = good credit.",
        modalities={"x": dict(tabular.tabular_spec(tabular.GERMAN_NUMERIC, tabular.GERMAN_VOCAB),
                              description="6 standardized numericals, then 13 one-hot groups (age removed)"),
                    "a": {"kind": "categorical", "classes": 2,
                          "description": "sensitive attribute: 1 if age > 25"}},
        extras={"target": "int32 1 for good credit, 0 for bad (held out from the model)"},
        splits={"train": 800, "test": 200}, groups=("german",),
        citation="Hofmann 1994; sensitive attribute as Kamiran & Calders 2009, Zemel et al. 2013, "
                 "Louizos et al. 2016.",
        notes=("Fixed 800/200 split by sha256 rank of the row number (no RNG); age leaves x since a is "
               "derived from it; numericals standardized with train statistics; one-hot over the "
               "german.doc codebook (A47 and A95 never occur but keep their columns)."),
        evaluation=EvaluationSpec({"a": ModalityLabel("a", classes=2)}, probe_label="target", sensitive="a",
                                  representation="x")),
     _tabular_builder("german")),
]

DATASETS = {info.name: info for info, _ in _DATASETS}
BUILDERS = {info.name: build for info, build in _DATASETS}

# Validate the declarations once at import: a typo in a spec fails here, not in a model.
for _info in DATASETS.values():
    object.__setattr__(_info, "modalities", normalize_modalities(_info.modalities, source=f"dataset '{_info.name}'"))
    _clash = set(_info.modalities) & set(_info.extras)
    assert not _clash, f"dataset '{_info.name}': keys {_clash} are both modalities and extras"
    # The evaluation facts must name this dataset's own keys: a renamed modality or extra fails here.
    _evaluation = _info.evaluation
    _unknown = set(_evaluation.labels) - set(_info.modalities)
    assert not _unknown, f"dataset '{_info.name}': evaluation labels unknown modalities {_unknown}"
    _unknown = ({label.label_key for label in _evaluation.labels.values()}
                | {_evaluation.probe_label, _evaluation.sensitive}) - {None} - set(_info.keys)
    assert not _unknown, f"dataset '{_info.name}': evaluation names unknown batch keys {_unknown}"


def get_info(name):
    """The :class:`DatasetInfo` of ``name``; ``ValueError`` naming the closest name if unknown."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; available: {', '.join(DATASETS)}.{did_you_mean(name, DATASETS)}")
    return DATASETS[name]


def check_split(info, split):
    if split not in info.splits:
        raise ValueError(f"dataset '{info.name}': unknown split {split!r}, expected one of {list(info.splits)}")

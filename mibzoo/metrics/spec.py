"""What the metrics need to know about a dataset: which label goes with which modality, which
classifier reads each modality, and how the labels of paired modalities relate.

A modality's *label* is an extra key of the batch (``digit``, ``digit_b``, ...). Its *reader*
turns a value of the modality into a class: a categorical modality reads itself (argmax), an
image needs a classifier (`mibzoo.classifiers`). Paired modalities may carry different but
related labels: in MNIST-Plus-1 ``digit_b = (digit_a + 1) % 10``. Each modality therefore
states an ``offset``: its class ``c`` stands for the *common* class ``(c − offset) mod K``, and
two modalities agree (joint coherence) when their common classes are equal.
"""
import dataclasses

from mibzoo.modalities import normalize_modalities
from mibzoo.errors import did_you_mean


@dataclasses.dataclass(frozen=True)
class ModalityLabel:
    """How to read a class out of one modality.

    Attributes:
        label_key: the batch key holding the true class of this modality (an extra or the
            modality itself for categorical modalities).
        classifier: ``None`` for a categorical modality (argmax of its value), else a
            classifier reference: a name from `mibzoo.classifiers.CLASSIFIERS`, a path to a
            ``.keras`` file, or an object with ``predict(x)`` (probabilities ``[B, K]`` or ids ``[B]``).
        offset: class ``c`` of this modality means common class ``(c − offset) mod classes``.
        classes: number of classes K.
    """

    label_key: str
    classifier: object = None
    offset: int = 0
    classes: int = 10


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """Labels per modality and the probe target of one dataset.

    Attributes:
        labels: ``{modality: ModalityLabel}`` for the modalities that can be classified.
        probe_label: batch key that the latent linear probe predicts (None: no probe).
        sensitive: the binary sensitive attribute of fairness data (``"a"``); with it, the
            ``fairness`` metrics score a linear classifier of ``probe_label`` on the model's
            representation of ``representation`` (`mibzoo.metrics.fairness`, Table 3).
        representation: the modality the fair representation is inferred from (``"x"``).
    """

    labels: dict
    probe_label: str = None
    sensitive: str = None
    representation: str = None

    def readable(self, modalities):
        """The given modalities that have a label (and so a coherence score)."""
        return [m for m in modalities if m in self.labels]

    def to_json(self):
        """A JSON-serializable form (classifier objects are written as their type name)."""
        def ref(c):
            return c if c is None or isinstance(c, str) else type(c).__name__
        return {"labels": {m: {"label_key": l.label_key, "classifier": ref(l.classifier), "offset": l.offset,
                               "classes": l.classes} for m, l in self.labels.items()},
                "probe_label": self.probe_label, "sensitive": self.sensitive, "representation": self.representation}

    @classmethod
    def from_json(cls, data):
        """Inverse of `to_json` (classifier references stay names or paths)."""
        if not isinstance(data, dict) or not isinstance(data.get("labels", {}), dict):
            raise ValueError(f"evaluation spec: got {data!r}, expected {{'labels': {{modality: {{'label_key': ..., "
                             f"'classifier': ..., 'offset': ..., 'classes': ...}}}}, 'probe_label': ...}}")
        labels = {}
        for modality, entry in data.get("labels", {}).items():
            unknown = set(entry) - {"label_key", "classifier", "offset", "classes"}
            if unknown or "label_key" not in entry:
                raise ValueError(f"evaluation spec, modality {modality!r}: got {entry!r}, expected keys "
                                 f"'label_key' (required), 'classifier', 'offset', 'classes'")
            labels[modality] = ModalityLabel(**entry)
        return cls(labels=labels, probe_label=data.get("probe_label"), sensitive=data.get("sensitive"),
                   representation=data.get("representation"))


# The paper's digit datasets. Image modalities are read by classifiers that mibzoo trains itself
# (`mibzoo.classifiers`), so every coherence number is reproducible from the repository.
_DIGIT = "mnist_digit"
DATASET_SPECS = {
    "mnist": EvaluationSpec({"image": ModalityLabel("digit", _DIGIT)}, probe_label="digit"),
    "mnist_label": EvaluationSpec({"image": ModalityLabel("digit", _DIGIT), "label": ModalityLabel("digit")},
                                  probe_label="digit"),
    # Figure 3 (right): image_b shows digit m + 1, so its class c stands for common class c − 1.
    "mnist_plus1": EvaluationSpec({"image_a": ModalityLabel("digit_a", _DIGIT),
                                   "image_b": ModalityLabel("digit_b", _DIGIT, offset=1)},
                                  probe_label="digit_a"),
    # The unrelated image has no label in common with the pair: it is left unread, so coherences
    # are those of MNIST-Label; the learned structure (`structure/...`) shows whether its edges are cut.
    "mnist_label_unrelated": EvaluationSpec({"image": ModalityLabel("digit", _DIGIT), "label": ModalityLabel("digit")},
                                            probe_label="digit"),
    "mnist_svhn": EvaluationSpec({"mnist": ModalityLabel("digit", _DIGIT),
                                  "svhn": ModalityLabel("digit", "svhn_digit")}, probe_label="digit"),
    # Only the label is a class of the pair; the environment index is not a label of the image.
    "colored_mnist": EvaluationSpec({"label": ModalityLabel("label", classes=2)}, probe_label="label"),
    # Sec. 5: a linear classifier of the held-out target on the representation of x, fair w.r.t. a.
    "adult": EvaluationSpec({"a": ModalityLabel("a", classes=2)}, probe_label="target", sensitive="a",
                            representation="x"),
    "german": EvaluationSpec({"a": ModalityLabel("a", classes=2)}, probe_label="target", sensitive="a",
                             representation="x"),
}


def spec_for(dataset, modalities=None):
    """The `EvaluationSpec` of a named dataset, or a default one for custom data.

    Args:
        dataset: a dataset name (see `mibzoo.data.list_datasets`), an `EvaluationSpec`, a dict in
            its JSON form, or None.
        modalities: ``{name: spec}`` of custom data; with ``dataset=None`` every categorical
            modality reads itself (label key = the modality) and there is no probe target.

    Raises:
        ValueError: unknown dataset name (the message lists the known names).
    """
    if isinstance(dataset, EvaluationSpec):
        return dataset
    if isinstance(dataset, dict):
        return EvaluationSpec.from_json(dataset)
    if dataset is None:
        specs = normalize_modalities(modalities or {}, "evaluation") if modalities else {}
        return EvaluationSpec({m: ModalityLabel(m, classes=s["classes"])
                               for m, s in specs.items() if s["kind"] == "categorical"})
    if dataset not in DATASET_SPECS:
        raise ValueError(f"no evaluation spec for dataset {dataset!r}.{did_you_mean(dataset, DATASET_SPECS)} "
                         "Known datasets: "
                         f"{', '.join(DATASET_SPECS)}; for custom data pass an EvaluationSpec")
    return DATASET_SPECS[dataset]

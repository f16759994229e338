"""What evaluation needs to know about a dataset: which label goes with which modality, which
classifier reads each modality, and how the labels of paired modalities relate.

A modality's *label* is an extra key of the batch (``digit``, ``digit_b``, ...). Its *reader*
turns a value of the modality into a class: a categorical modality reads itself (argmax), an
image needs a classifier (`mibzoo.classifiers`). Paired modalities may carry different but
related labels: in MNIST-Plus-1 ``digit_b = (digit_a + 1) % 10``. Each modality therefore
states an ``offset``: its class ``c`` stands for the *common* class ``(c − offset) mod K``, and
two modalities agree (joint coherence) when their common classes are equal.
"""
import dataclasses


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

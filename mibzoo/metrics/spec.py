"""The evaluation spec of a dataset for the metrics (`spec_for`).

Each named dataset declares its own (`mibzoo.data.DatasetInfo.evaluation`, a
`mibzoo.data.evaluation.EvaluationSpec`); custom data gets a default one, or the caller's.
"""
from mibzoo.data.catalog import DATASETS
from mibzoo.data.evaluation import EvaluationSpec, ModalityLabel
from mibzoo.errors import did_you_mean
from mibzoo.modalities import normalize_modalities

__all__ = ["EvaluationSpec", "ModalityLabel", "spec_for"]


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
    if dataset not in DATASETS:
        raise ValueError(f"no evaluation spec for dataset {dataset!r}.{did_you_mean(dataset, DATASETS)} "
                         "Known datasets: "
                         f"{', '.join(DATASETS)}; for custom data pass an EvaluationSpec")
    return DATASETS[dataset].evaluation

"""Coherence of generated samples (Shi et al. 2019): do generated modalities show the right class?

- Cross-modal coherence of A → B: generate B from A (z ~ q(z | x_A), then p(x_B | z)), read
  the class of the generated B (a classifier for images, the argmax for a label modality) and
  compare it with the label of the pair. A model that ignores its input scores about 1/K.
- Joint coherence: draw z from the prior, decode every modality, read each one's class and
  count the samples on which all modalities name the same (common) class. Modalities whose
  labels are related by a shift (MNIST-Plus-1: image_b shows m + 1) agree up to that shift
  (`mibzoo.metrics.spec.ModalityLabel.offset`). Chance level is K^(1 − N) for N modalities.

Reference: Y. Shi, N. Siddharth, B. Paige, P. Torr. Variational Mixture-of-Experts
Autoencoders for Multi-Modal Deep Generative Models. NeurIPS 2019, Sec. 4.
"""
import numpy as np

from mibzoo.metrics import _common
from mibzoo.metrics.spec import spec_for


def cross_modal_coherence(model, arrays, source, target, label_key, classifier=None, num_samples=1,
                          batch_size=256, seed=0, limit=None):
    """Share of examples whose generated ``target`` is read as the pair's class.

    Args:
        model: an `MIBModel` or any object with ``modality_specs`` and
            ``generate(inputs, target, num_samples, seed, mode)`` returning ``[S, B, *event]``.
        arrays: ``{key: np.ndarray}`` with the source modalities and ``label_key``.
        source: the conditioning modality (str) or modalities (list of str).
        target: the generated modality.
        label_key: key of the true class of the target in ``arrays`` (e.g. ``"digit_b"``).
        classifier: reads generated targets (Keras model / ``predict`` / callable); None for a
            categorical target, whose generated class probabilities are read by argmax.
        num_samples: draws of z per example (the score averages over them).
        batch_size: examples per call of ``generate``.
        seed: base seed; batch ``b`` uses ``seed + b`` so results are reproducible.
        limit: use only the first ``limit`` examples.

    Returns:
        Accuracy in [0, 1] (float).

    Example:

    ```python
    acc = cross_modal_coherence(model, test, "image_a", "image_b", "digit_b",
                                classifier=mibzoo.classifiers.get("mnist_digit"))
    ```
    """
    sources = [source] if isinstance(source, str) else list(source)
    _common.check_modalities(model, sources + [target], "cross_modal_coherence")
    if target in sources:
        raise ValueError(f"cross_modal_coherence: target {target!r} is also a source; cross-modal generation "
                         f"needs a target outside the sources {sources}")
    _common.check_keys(arrays, sources + [label_key], "cross_modal_coherence")
    spec = _common.modality_specs(model)[target]
    correct, total = 0, 0
    for b, (_, batch) in enumerate(_common.batches(arrays, sources + [label_key], batch_size, limit)):
        generated = _common.to_numpy(model.generate({s: batch[s] for s in sources}, target=target,
                                                    num_samples=num_samples, seed=seed + b, mode="mean"))
        labels = batch[label_key].reshape(-1)
        for draw in generated:
            correct += int(np.sum(_common.read_classes(draw, spec, classifier) == labels))
            total += len(labels)
    if total == 0:
        raise ValueError("cross_modal_coherence: no examples to score")
    return correct / total


def joint_coherence(model, readers, offsets=None, classes=10, num_samples=1000, batch_size=250, seed=0):
    """Share of prior samples on which every read modality names the same common class.

    Args:
        model: an `MIBModel` or an object with ``modality_specs`` and
            ``sample(n, seed, mode)`` returning ``{modality: [n, *event]}``.
        readers: ``{modality: classifier or None}`` (None: categorical, read by argmax); at
            least two modalities.
        offsets: ``{modality: shift}``; class ``c`` of a modality counts as common class
            ``(c − shift) mod classes`` (MNIST-Plus-1: ``{"image_b": 1}``). Default 0.
        classes: number of classes K (for the modular shift).
        num_samples: prior samples.
        batch_size: samples per call of ``sample``.
        seed: base seed (batch ``b`` uses ``seed + b``).

    Returns:
        Agreement rate in [0, 1] (chance is K^(1 − N)).

    Example:

    ```python
    clf = mibzoo.classifiers.get("mnist_digit")
    joint_coherence(model, {"image_a": clf, "image_b": clf}, offsets={"image_b": 1})
    ```
    """
    if len(readers) < 2:
        raise ValueError(f"joint_coherence: needs at least two modalities that can be read as classes, got "
                         f"{sorted(readers)}")
    _common.check_modalities(model, list(readers), "joint_coherence")
    specs = _common.modality_specs(model)
    offsets = offsets or {}
    agree, total = 0, 0
    for b, start in enumerate(range(0, num_samples, batch_size)):
        n = min(batch_size, num_samples - start)
        samples = model.sample(n, seed=seed + b, mode="mean")
        common = [(_common.read_classes(samples[m], specs[m], clf) - offsets.get(m, 0)) % classes
                  for m, clf in readers.items()]
        agree += int(np.sum(np.all(np.stack(common) == common[0][None], axis=0)))
        total += n
    return agree / total


def coherences(model, arrays, spec=None, classifiers=None, num_samples=1, batch_size=256, seed=0, limit=None,
               classifier_dir=None, data_dir=None):
    """Cross-modal coherence of every ordered pair (A → B) whose target can be read.

    Args:
        model, arrays, num_samples, batch_size, seed, limit: as `cross_modal_coherence`.
        spec: an `EvaluationSpec` or a dataset name (labels, classifiers, offsets).
        classifiers: ``{modality: classifier}`` overriding the spec's classifier references.
        classifier_dir, data_dir: where cached classifiers and their training data live.

    Returns:
        ``{"A->B": accuracy}``.
    """
    specs = _common.modality_specs(model)
    spec = spec_for(spec, specs)
    readers = _common.resolve_readers(specs, spec, classifiers, list(specs), classifier_dir, data_dir)
    out = {}
    for source in specs:
        if source not in arrays:
            continue
        for target, clf in readers.items():
            if target == source:
                continue
            out[f"{source}->{target}"] = cross_modal_coherence(
                model, arrays, source, target, spec.labels[target].label_key, clf, num_samples, batch_size, seed, limit)
    return out

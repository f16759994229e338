"""Evaluation metrics for the zoo, each a function usable on its own, and `evaluate` for all.

- `cross_modal_coherence` / `coherences`: generate B from A, classify, compare with the label
  (Shi et al. 2019);
- `joint_coherence`: prior samples decoded into every modality; share on which classifiers agree;
- `iwae_bound` / `log_likelihoods`: test log-likelihood by importance sampling (Burda et al. 2016),
  for the joint and each modality;
- `linear_probe_accuracy`: logistic regression on posterior means from any subset of modalities;
- `reconstruction_error`;
- `fairness`: ACC, DEO and demographic parity of a linear classifier on a representation
  (Table 3), on fairness data (a spec with a ``sensitive`` attribute).
- `learned_structure`: the edge probabilities of learned M^q and M^p.
- `recalibration_gain` (`invariance`): what recalibrating a predictor per environment saves over
  one recalibration for all, a reading of I(E; Y | Z) on data (Sec. 6, G_ood).
- `prior_sample_quality` (group ``sample_quality``): prior samples of image modalities read by the
  digit classifier: mean confidence, class-histogram entropy and the Fréchet distance to real images in the classifier's
  penultimate features (the MNIST counterpart of FID).
- `code_class_accuracy` (group ``code_accuracy``): for categorical latent codes (InfoGAN), the
  accuracy of the best one-to-one assignment of code values to the classes of what they generate.

Metrics take a model (an `MIBModel`, or any object with the methods a metric uses) and a dict
of numpy arrays with modality keys and extra label keys (``mibzoo.data.load_arrays``).

Example:

```python
import mibzoo, mibzoo.data, mibzoo.metrics
test = mibzoo.data.load_arrays("mnist_plus1", "test", limit=2000)
train = mibzoo.data.load_arrays("mnist_plus1", "train", limit=5000)
mibzoo.metrics.evaluate(model, test, train, spec="mnist_plus1")
# {'cross_coherence/image_a->image_b': 0.83, 'joint_coherence': 0.41, 'log_likelihood/joint': ...}
```
"""

from mibzoo.metrics.coherence import coherences, cross_modal_coherence, joint_coherence
from mibzoo.metrics.likelihood import elbo, iwae_bound, log_importance_weights, log_likelihoods
from mibzoo.metrics.probe import fit_logistic_regression, linear_probe_accuracy, posterior_means
from mibzoo.metrics.fairness import representation_fairness
from mibzoo.metrics.reconstruction import reconstruction_error
from mibzoo.metrics.structure import learned_structure
from mibzoo.metrics.invariance import recalibration_gain
from mibzoo.metrics.codes import categorical_code_blocks, code_class_accuracy
from mibzoo.metrics.sample_quality import frechet_distance, image_quality, prior_sample_quality
from mibzoo.metrics.spec import EvaluationSpec, ModalityLabel, spec_for
from mibzoo.errors import did_you_mean

# Metric groups `evaluate` computes, and whether higher values are better.
METRICS = {
    "cross_coherence": True,
    "joint_coherence": True,
    "log_likelihood": True,
    "probe": True,
    "reconstruction": False,
    "fairness": True,
    "structure": True,  # edge probabilities of learned masks: reported, not ranked
    "sample_quality": True,
    "code_accuracy": True,
}
# Groups that encode data (q(z | x)): left out for models without an inference network.
_NEED_INFERENCE = ("cross_coherence", "log_likelihood", "probe", "reconstruction", "fairness")
# Keys whose direction differs from their group's (exact keys, and key endings).
_LOWER_IS_BETTER = ("fairness/deo", "fairness/dp")
_LOWER_IS_BETTER_SUFFIXES = ("/frechet",)

__all__ = ["METRICS", "EvaluationSpec", "ModalityLabel", "categorical_code_blocks",
           "code_class_accuracy", "coherences", "cross_modal_coherence", "elbo", "evaluate",
           "fit_logistic_regression", "frechet_distance", "higher_is_better", "image_quality", "iwae_bound",
           "joint_coherence", "learned_structure", "linear_probe_accuracy", "log_importance_weights",
           "log_likelihoods", "posterior_means", "prior_sample_quality", "recalibration_gain", "reconstruction_error",
           "representation_fairness", "spec_for"]


def higher_is_better(metric_name):
    """Whether larger values of a metric key (``"probe/image"``) are better."""
    if metric_name in _LOWER_IS_BETTER or metric_name.endswith(_LOWER_IS_BETTER_SUFFIXES):
        return False
    return METRICS.get(metric_name.split("/")[0], True)


def check_metrics(metrics):
    """Validates a list of metric group names; returns it (all groups for None)."""
    if metrics is None:
        return list(METRICS)
    if isinstance(metrics, str):
        metrics = [metrics]
    for name in metrics:
        if name not in METRICS:
            raise ValueError(f"unknown metric {name!r}.{did_you_mean(name, METRICS)} "
                             f"Available metrics: {', '.join(METRICS)}")
    return list(metrics)


def evaluate(model, test_arrays, train_arrays=None, spec=None, classifiers=None, metrics=None, iwae_k=50,
             limit=None, likelihood_limit=None, prior_samples=1000, batch_size=256, seed=0,
             classifier_dir=None, data_dir=None):
    """Every metric of a model on one test set, as a flat ``{name: value}`` dict.

    Keys: ``cross_coherence/A->B``, ``joint_coherence``, ``log_likelihood/joint`` and
    ``log_likelihood/<modality>``, ``probe/joint`` and ``probe/<modality>``,
    ``reconstruction/<modality>``, on fairness data ``fairness/acc``, ``fairness/deo``, ``fairness/dp``,
    and for learned structures ``structure/inference/<modality>/<block>`` and
    ``structure/generation/<modality>/<block>`` (edge probabilities), for image modalities with a
    classifier ``sample_quality/<modality>/confidence``, ``.../class_entropy`` and ``.../frechet``
    (``prior_samples`` samples against as many real test images), and for categorical latent codes
    ``code_accuracy/<block>/<modality>`` (``prior_samples`` samples spread over the code's values).
    A metric that does not apply (no
    second readable modality, no probe label, no training arrays for the probe, no sensitive attribute)
    is left out; so are the groups that need an inference network (cross-modal coherence, log-likelihood,
    probe, reconstruction, fairness) for models without one (GAN, InfoGAN).

    Args:
        model: an `MIBModel`.
        test_arrays: ``{key: np.ndarray}`` of the test split.
        train_arrays: arrays the linear probe is fit on (None: no probe).
        spec: an `EvaluationSpec` or a dataset name (labels, classifiers, probe target).
        classifiers: ``{modality: classifier}`` overriding the spec's classifiers.
        metrics: metric groups to compute (default: all of `METRICS`).
        iwae_k: importance samples of the log-likelihood.
        limit: test examples for coherence, probe and reconstruction (None: all).
        likelihood_limit: test examples for the log-likelihood (default: ``limit``); it costs
            K decoder passes per example and modality subset.
        prior_samples: samples for joint coherence and sample quality.
        batch_size: examples per batch.
        seed: base seed of every sampled quantity.
        classifier_dir, data_dir: cache of the classifiers and data they are trained on.
    """
    from mibzoo.metrics import _common

    metrics = check_metrics(metrics)
    if not getattr(model, "has_inference", True):
        # G^q = [] (GAN, InfoGAN): nothing to encode with, so only the prior-sample metrics apply.
        metrics = [m for m in metrics if m not in _NEED_INFERENCE]
    specs = _common.modality_specs(model)
    spec = spec_for(spec, specs)
    out = {}
    readers = None
    if {"cross_coherence", "joint_coherence", "sample_quality", "code_accuracy"} & set(metrics):
        readers = _common.resolve_readers(specs, spec, classifiers, list(specs), classifier_dir, data_dir)
    if "cross_coherence" in metrics:
        for source in specs:
            for target, clf in readers.items():
                if target != source:
                    out[f"cross_coherence/{source}->{target}"] = cross_modal_coherence(
                        model, test_arrays, source, target, spec.labels[target].label_key, clf,
                        batch_size=batch_size, seed=seed, limit=limit)
    labels = [spec.labels[m] for m in readers or {}]
    # Joint coherence compares classes across modalities: only meaningful over one label set.
    if "joint_coherence" in metrics and len(readers) >= 2 and len({l.classes for l in labels}) == 1:
        out["joint_coherence"] = joint_coherence(model, readers, {m: spec.labels[m].offset for m in readers},
                                                 labels[0].classes, prior_samples, seed=seed)
    if "sample_quality" in metrics:
        images = [m for m in readers if readers[m] is not None and m in test_arrays]
        scores = prior_sample_quality(model, {m: readers[m] for m in images},
                                {m: test_arrays[m][:prior_samples] for m in images}, prior_samples, seed=seed)
        out.update({f"sample_quality/{k}": v for k, v in scores.items()})
    if "code_accuracy" in metrics:
        for block in categorical_code_blocks(model):
            per_code = max(1, prior_samples // dict(zip(model.block_names, model.block_sizes))[block])
            for m, clf in readers.items():
                if clf is not None and specs[m]["kind"] == "image":
                    out[f"code_accuracy/{block}/{m}"] = code_class_accuracy(
                        model, block, m, clf, spec.labels[m].classes, per_code, seed)["accuracy"]
    if "log_likelihood" in metrics:
        ll = log_likelihoods(model, test_arrays, iwae_k, min(batch_size, 128), seed,
                             likelihood_limit if likelihood_limit is not None else limit)
        out.update({f"log_likelihood/{k}": v for k, v in ll.items()})
    if "probe" in metrics and train_arrays is not None and spec.probe_label in test_arrays:
        subsets = [("joint", None)] + ([(m, [m]) for m in specs] if len(specs) > 1 else [])
        for key, subset in subsets:
            out[f"probe/{key}"] = linear_probe_accuracy(model, train_arrays, test_arrays, spec.probe_label, subset,
                                                        batch_size=max(batch_size, 512), test_limit=limit)
    if ("fairness" in metrics and train_arrays is not None and spec.sensitive
            and spec.representation in specs and spec.probe_label in test_arrays):
        scores = representation_fairness(model, train_arrays, test_arrays, spec.probe_label, spec.sensitive,
                                          spec.representation, test_limit=limit)
        out.update({f"fairness/{k}": v for k, v in scores.items()})
    if "reconstruction" in metrics:
        out.update({f"reconstruction/{k}": v for k, v in
                    reconstruction_error(model, test_arrays, batch_size=batch_size, limit=limit).items()})
    if "structure" in metrics:
        out.update(learned_structure(model))
    return out

"""`mibzoo.compare` on two tiny models and a tiny data set: every metric for every model and seed."""
import csv
import json

import numpy as np
import pytest

from mibzoo.compare import Report, compare
from mibzoo.metrics import EvaluationSpec, ModalityLabel

from evaluation_testdata import IMAGE, LABEL, TINY_OPTIONS, TINY_SHARED, NearestPrototype, label_arrays

MODALITIES = {"image": IMAGE, "label": LABEL}
SPEC = EvaluationSpec({"image": ModalityLabel("digit"), "label": ModalityLabel("digit")}, probe_label="digit")
METRICS = {"cross_coherence/image->label", "cross_coherence/label->image", "joint_coherence",
           "log_likelihood/joint", "log_likelihood/image", "log_likelihood/label", "probe/joint", "probe/image",
           "probe/label", "reconstruction/image", "reconstruction/label", "sample_quality/image/confidence",
           "sample_quality/image/class_entropy", "sample_quality/image/frechet"}


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("compare_out")
    result = compare(["jmvae", "mvae"], {"train": label_arrays(192, seed=1), "test": label_arrays(64, seed=2)},
                     modalities=MODALITIES, evaluation=SPEC, classifiers={"image": NearestPrototype()},
                     epochs=1, seeds=[0, 1], batch_size=64, iwae_k=3, prior_samples=100,
                     overrides={"shared": TINY_SHARED}, modality_options=TINY_OPTIONS, out=out, progress=False)
    return result, out


def test_every_metric_for_every_model_and_seed(report):
    result, _ = report
    assert [(r["model"], r["seed"]) for r in result.rows] == [("jmvae", 0), ("jmvae", 1), ("mvae", 0), ("mvae", 1)]
    for row in result.rows:
        assert set(row["metrics"]) == METRICS
        assert all(np.isfinite(v) for v in row["metrics"].values())
    summary = result.summary()
    assert summary["jmvae"]["probe/joint"]["n"] == 2


def test_table_states_budget_versions_and_mean_std(report):
    result, _ = report
    table = result.table()
    for text in ("1 epochs", "batch size 64", "seeds [0, 1]", "192 training examples", "IWAE K=3", "tensorflow",
                 "keras", "| metric | jmvae | mvae | chance |", " ± "):
        assert text in table, text
    for metric in METRICS:
        assert f"| {metric} " in table, metric
    assert "| cross_coherence/image->label ↑ |" in table and "| reconstruction/image ↓ |" in table


def test_files_and_pngs_are_written(report):
    result, out = report
    for name in ("results.md", "results.csv", "results.json", "metrics.png",
                 "samples_jmvae_image-to-label.png", "samples_mvae_label-to-image.png", "prior_mvae.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "metrics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with open(out / "results.csv", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 4 and METRICS <= set(rows[0])
    loaded = Report.from_json(out / "results.json")
    assert loaded.summary().keys() == result.summary().keys()
    assert json.loads((out / "results.json").read_text())["budget"]["epochs"] == 1


def test_rows_carry_the_digest_of_the_config_the_zoo_builds(report):
    """Every row names its model config (without the seed): one digest per model over its seeds, the one
    `entry_digest` computes without training, so a resumed benchmark can tell a changed default."""
    from mibzoo.compare import entry_digest

    result, _ = report
    data = {"train": label_arrays(192, seed=1), "test": label_arrays(64, seed=2)}
    for model in ("jmvae", "mvae"):
        digests = {r["config_sha256"] for r in result.rows if r["model"] == model}
        assert digests == {entry_digest(model, data, overrides={"shared": TINY_SHARED}, modality_options=TINY_OPTIONS,
                                        modalities=MODALITIES)}
    assert len({r["config_sha256"] for r in result.rows}) == 2
    assert entry_digest("jmvae", data, overrides={"shared": TINY_SHARED}, modalities=MODALITIES) not in \
        {r["config_sha256"] for r in result.rows}  # other networks: another config


def test_compare_rejects_unknown_names():
    data = {"train": label_arrays(8), "test": label_arrays(8)}
    with pytest.raises(ValueError, match="unknown zoo entry 'jmvea'. Did you mean 'jmvae'"):
        compare(["jmvea"], data, modalities=MODALITIES, epochs=1)
    with pytest.raises(ValueError, match="unknown metric 'probes'"):
        compare(["jmvae"], data, modalities=MODALITIES, epochs=1, metrics=["probes"])
    with pytest.raises(ValueError, match="unknown dataset 'mnist_lable'"):
        compare(["jmvae"], "mnist_lable", epochs=1)
    with pytest.raises(ValueError, match="need modalities="):
        compare(["jmvae"], data, epochs=1)


def test_summary_and_table_are_the_statistics_of_the_seeds():
    """Mean and sample standard deviation over seeds, checked against NumPy, as printed."""
    values = {"jmvae": [0.61, 0.72, 0.95], "mvae": [0.40, 0.42, 0.47]}
    rows = [{"model": model, "entry": model, "seed": seed, "metrics": {"joint_coherence": v},
             "train_seconds": 10.0 + seed, "eval_seconds": 1.0, "final_loss": 1.0}
            for model, vs in values.items() for seed, v in enumerate(vs)]
    report = Report(rows, {"seeds": [0, 1, 2]}, {})
    summary = report.summary()
    table = report.table()
    for model, vs in values.items():
        stat = summary[model]["joint_coherence"]
        np.testing.assert_allclose([stat["mean"], stat["std"]], [np.mean(vs), np.std(vs, ddof=1)], rtol=1e-12)
        assert stat["n"] == 3
        assert f"{np.mean(vs):.3f} ± {np.std(vs, ddof=1):.3f}" in table
    assert f"**{np.mean(values['jmvae']):.3f} ± " in table  # the best mean in bold
    np.testing.assert_allclose(summary["mvae"]["train_seconds"]["mean"], 11.0)


def test_stored_metrics_are_reused_only_with_the_classifier_that_scored_them(tmp_path):
    from mibzoo import compare, run_records

    settings = {"iwae_k": 50, "seed": 0}
    scored_by = {"mnist_digit": {"sha256": "f1", "test_accuracy": 0.9914, "weights_sha256": "w1"}}
    run_records.write_json(tmp_path / "metrics.json", {"metrics": {"joint_coherence": 0.9}, "settings": settings,
                                                        "classifiers": scored_by})
    resaved = {"mnist_digit": dict(scored_by["mnist_digit"], sha256="f2")}  # same weights, saved again
    assert compare._reusable_metrics(tmp_path, settings, resaved) == {"joint_coherence": 0.9}
    retrained = {"mnist_digit": {"sha256": "f3", "test_accuracy": 0.9910, "weights_sha256": "w2"}}
    assert compare._reusable_metrics(tmp_path, settings, retrained) is None
    assert compare._reusable_metrics(tmp_path, dict(settings, iwae_k=10), scored_by) is None
    assert compare._reusable_metrics(tmp_path, settings, {}) is None  # scored with a classifier, now without

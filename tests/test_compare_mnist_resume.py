"""`benchmarks/compare_mnist.py --resume`: seeds of two invocations share a table only when they measured the
same models under the same budget."""
import importlib.util
import pathlib

import pytest

from mibzoo.compare_report import Report

_SCRIPT = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "compare_mnist.py"


def _script():
    spec = importlib.util.spec_from_file_location("compare_mnist", _SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _report(seed, digest="a" * 64, epochs=5, value=0.5):
    row = {"model": "jmvae", "entry": "jmvae", "seed": seed, "metrics": {"joint_coherence": value},
           "config_sha256": digest, "train_seconds": 1.0, "eval_seconds": 1.0, "final_loss": 1.0}
    budget = {"dataset": "mnist_label", "epochs": epochs, "batch_size": 128, "seeds": [seed]}
    return Report([row], budget, {"mibzoo": "0"}, wall_seconds=60.0 * (seed + 1))


def test_resumed_seeds_of_one_config_are_averaged_together(tmp_path):
    script = _script()
    _report(0, value=0.4).save(tmp_path / "mnist_label")
    earlier = script.resumed(tmp_path, ["mnist_label", "mnist_plus1"])
    assert list(earlier) == ["mnist_label"]  # nothing on disk for mnist_plus1
    merged = script.merge(earlier["mnist_label"], _report(1, value=0.6), [0, 1], 180.0)
    assert merged.budget["seeds"] == [0, 1]
    stat = merged.summary()["jmvae"]["joint_coherence"]
    assert stat["n"] == 2 and stat["mean"] == pytest.approx(0.5)


@pytest.mark.parametrize("later, message", [
    (_report(1, digest="b" * 64), "zoo config of ['jmvae'] differs"),
    (_report(1, digest=None), "zoo config of ['jmvae'] differs"),
    (_report(1, epochs=2), "budget differs in ['epochs']"),
])
def test_resume_refuses_seeds_of_another_model_or_budget(later, message):
    with pytest.raises(SystemExit, match=message.replace("[", r"\[").replace("]", r"\]")):
        _script().merge(_report(0), later, [0, 1], 120.0)

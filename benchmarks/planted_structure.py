"""The structure `mib_mm` learns on the suite's planted problem, over seeds and L_sparsity settings.

    PYTHONPATH=$PWD python benchmarks/planted_structure.py [--set '{"sparsity_on": "logit", "sparsity": 1.0}']
        [--seeds 0 1 2] [--steps 600]

The problem and the training are those of `tests/test_structure.py::test_mib_mm_learns_that_the_noise_modality_does_not_inform_the_shared_block`
(three 8-d vector modalities; a and b share a 2-d factor, c is independent noise; z of size 2, no
private latents; 600 steps at batch 64, Adam 3e-3 for the networks and 3e-2 for the structure).
``--set`` overrides fields of the entry's own ``structure_learning`` (the others keep the zoo's
values), so one setting can be checked on more seeds than the test runs. Prints the learned M^q and
M^p of (a, b, c) per seed and whether the test's criterion (c below half of a's and b's) holds.
"""
import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import keras  # noqa: E402
import numpy as np  # noqa: E402

import mibzoo  # noqa: E402
from tests.model_test_case import dataset  # noqa: E402
from tests.test_structure import planted_problem  # noqa: E402


def learned_structure(overrides, seed, steps):
    keras.utils.set_random_seed(seed)
    spec = {"kind": "vector", "size": 8, "likelihood": "normal", "hidden": 32, "layers": 1}
    kwargs = dict(modalities={"a": spec, "b": dict(spec), "c": dict(spec)}, shared=[{"name": "z", "size": 2}],
                  private=0)
    if overrides:
        learning = dict(mibzoo.load("mib_mm", **kwargs).get_config()["structure_learning"])
        kwargs["structure_learning"] = {**learning, **overrides}
    model = mibzoo.load("mib_mm", **kwargs)
    model.compile(optimizer=keras.optimizers.Adam(3e-3), structure_optimizer=keras.optimizers.Adam(3e-2))
    model.fit(dataset(planted_problem(seed=seed), 64).repeat(), steps_per_epoch=steps, epochs=1, verbose=0)
    structure = model.structure()
    return structure["inference"][:, 0], structure["generation"][:, 0]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--set", default="{}", help="JSON object of structure_learning fields to override")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=600)
    args = parser.parse_args(argv)
    overrides = json.loads(args.set)
    if not isinstance(overrides, dict):
        parser.error(f"--set must be a JSON object of structure_learning fields, got {args.set!r}")
    print(f"structure_learning overrides: {overrides or 'none (zoo defaults)'}")
    for seed in args.seeds:
        start = time.perf_counter()
        m_q, m_p = learned_structure(overrides, seed, args.steps)
        ok = all(m[2] < 0.5 * min(m[0], m[1]) for m in (m_q, m_p))
        print(f"seed {seed}: M^q (a, b, c) {np.round(m_q, 3)}  M^p {np.round(m_p, 3)}  "
              f"criterion {'met' if ok else 'MISSED'}  ({time.perf_counter() - start:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

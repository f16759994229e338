"""Reference values of the sample-quality metric (mibzoo.metrics.sample_quality) on real MNIST digits
and on degenerate "generators", read by the project's `mnist_digit` classifier: what a perfect model
and a collapsed one score. Prints one line per case.

    PYTHONPATH=$PWD python benchmarks/sample_quality_reference.py [--n 1000]
"""
import argparse

import numpy as np

import mibzoo.data
from mibzoo import classifiers
from mibzoo.metrics import sample_quality


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000, help="images per set (default 1000)")
    args = parser.parse_args()
    clf = classifiers.get("mnist_digit")
    test = mibzoo.data.load_arrays("mnist", "test", limit=2 * args.n)
    train = mibzoo.data.load_arrays("mnist", "train", limit=args.n)
    real = test["image"][:args.n]
    ones = train["image"][train["digit"] == 1]
    cases = {
        "real test digits (other half of the test set)": test["image"][args.n:2 * args.n],
        "real training digits": train["image"],
        "only the training digits '1' (mode collapse)": ones,
        "a constant gray image": np.full_like(real, 0.5),
        "the mean test image": np.broadcast_to(real.mean(0), real.shape).copy(),
    }
    print(f"reference: the first {args.n} MNIST test digits; classifier mnist_digit "
          f"(test accuracy {classifiers.record('mnist_digit')['test_accuracy']:.4f})")
    for name, images in cases.items():
        scores = sample_quality.image_quality(clf, images, real)
        print(f"{name:48s} confidence {scores['confidence']:.3f}  class entropy {scores['class_entropy']:.3f} nats  "
              f"Fréchet {scores['frechet']:.1f}")


if __name__ == "__main__":
    main()

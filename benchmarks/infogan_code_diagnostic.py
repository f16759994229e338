"""Where an InfoGAN run's categorical code and the digit classes disagree: prints, for a finished run
(or a ``.keras`` model), the code × classifier-class table behind `mibzoo evaluate`'s code → class
accuracy (`mibzoo.metrics.codes.code_class_accuracy`: 100 samples per code, seed 0, the dataset's
``mnist_digit`` classifier), each code's main classes, and Q's categorical head on the real test
digits matched one-to-one to their labels (`best_assignment_accuracy`): how well the features Q reads
cluster real digits. It also reads Q on the generated samples of the table: how often Q's categorical
head names the code the samples were drawn with, and the categorical code's lower bound on
I(c; x), log K + mean log Q(c | x) (`mibzoo.estimators.infogan.categorical_code_mi_lower_bound`),
against its maximum log K: when it is near log K, Q tells the codes apart and the information term
no longer favours one partition of the images over another.

    PYTHONPATH=$PWD python benchmarks/infogan_code_diagnostic.py RUN_DIR_OR_MODEL [--block digit_code] [--dataset mnist] [--label digit]

Needs a model whose ``infogan`` term has a categorical block first among its code blocks and Q on
C2's discriminator (``term_options.infogan.shares_critic = "C2"``, the zoo default).
"""
import argparse
import pathlib

import numpy as np

from mibzoo import classifiers, experiment
from mibzoo.experiment_data import resolve
from mibzoo.estimators.infogan import categorical_code_mi_lower_bound
from mibzoo.metrics import codes


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a run directory (its model.keras) or a .keras file")
    parser.add_argument("--block", default="digit_code", help="the categorical code block")
    parser.add_argument("--dataset", default="mnist")
    parser.add_argument("--label", default="digit", help="the dataset's label array of the real digits")
    args = parser.parse_args()
    path = pathlib.Path(args.model)
    model = experiment.load_run_model(path) if path.is_dir() else experiment.load_model(path)
    result = codes.code_class_accuracy(model, args.block, "image", classifiers.get("mnist_digit"))
    print(f"code -> class accuracy {result['accuracy']:.3f}; assignment (class per code) {result['assignment']}")
    for k, row in enumerate(result["counts"]):
        top = sorted(((count, c) for c, count in enumerate(row) if count >= 5), reverse=True)
        print(f"  code {k}: " + ", ".join(f"class {c} {count}/{sum(row)}" for count, c in top))
    if model.shared_critics.get("infogan") != "C2":
        print("Q does not share C2's discriminator: no real-digit check")
        return
    size = dict(zip(model.block_names, model.block_sizes))[args.block]
    images = codes.code_samples(model, args.block, "image")  # the table's samples: [K, 100, 28, 28, 1]
    flat = images.reshape(-1, int(np.prod(images.shape[2:]))).astype("float32")
    own = np.asarray(model.auxiliaries["infogan"](model.critics["C2"].features(flat, training=False)))[:, :size]
    given = np.repeat(np.arange(size), images.shape[1])
    bound = float(categorical_code_mi_lower_bound(np.eye(size)[given], own))
    print(f"Q on its own codes ({len(given)} generated samples): accuracy {(own.argmax(-1) == given).mean():.3f}, "
          f"lower bound on I(c; x) {bound:.3f} nats of log {size} = {np.log(size):.3f}")
    test = resolve(args.dataset).arrays("test")
    x = np.asarray(test["image"], "float32").reshape(len(test["image"]), -1)
    labels = np.asarray(test[args.label]).reshape(-1).astype(int)
    logits = np.asarray(model.auxiliaries["infogan"](model.critics["C2"].features(x, training=False)))
    predicted = logits[:, :size].argmax(-1)  # the first code block's logits (`_code_layout` order)
    table = np.zeros((size, 10))
    np.add.at(table, (predicted, labels), 1)
    accuracy, _ = codes.best_assignment_accuracy(table)
    print(f"Q on {len(labels)} real test digits: one-to-one accuracy {accuracy:.3f}, "
          f"codes used {int((table.sum(1) > 0).sum())}")


if __name__ == "__main__":
    main()

"""After every epoch of one `ood_cmnist`-style run: what the training environments say about the
predictor, beside what the test environment says (issue 12, thirty-ninth session).

    PYTHONPATH=$PWD python benchmarks/ood_checkpoint_trajectory.py ENTRY SEED [--hide 0.5] [--from-epoch 11]
        [--out FILE.jsonl]

Trains ENTRY on `colored_mnist`'s training environments exactly as `mibzoo reproduce table4` does
(`mibzoo.reproduce.table4.FULL`'s epochs, batch and learning rates; `train_zoo_model`), and from
``--from-epoch`` on writes one JSON line per epoch with

- per training environment: accuracy and mean cross-entropy of p(y | x) (8 draws of z, all 50,000
  images), the quantities a selection rule may read;
- ``recalibration_gain``: what refitting a scale and a shift of p(y | z)'s logit (one draw of z per
  image) per environment saves over one refit for both, in nats per image
  (`mibzoo.metrics.invariance.recalibration_gain`, as `mibzoo.callbacks.RestoreMostInvariantEpoch`
  reads it): a full-data reading of I(E; Y | Z) along the logit, on all images, and
  (``recalibration_gain_labelled``) on those whose label is not hidden, the callback's own reading;
- the test environment's accuracy and that with the colour channels swapped (the answer, which a
  rule may not read).

The question it answers: does anything the training environments show rank the epochs of one run
the way the test environment does? The trajectories move 3-6 points between readings after the
penalty starts (thirty-eighth session), so a rule that picks the epoch could remove part of the spread.
"""
import argparse
import json

import numpy as np

from ood_probe import colored_mnist_splits


def per_environment(probs, labels, envs):
    """``{env: (accuracy, cross-entropy)}`` of class probabilities ``[N, 2]``."""
    picked = np.clip(probs[np.arange(len(labels)), labels], 1e-7, 1.0)
    right = np.argmax(probs, -1) == labels
    return {int(e): (float(right[envs == e].mean()), float(-np.log(picked[envs == e]).mean())) for e in np.unique(envs)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("entry")
    parser.add_argument("seed", type=int)
    parser.add_argument("--hide", type=float, default=0.0, help="share of training labels hidden")
    parser.add_argument("--from-epoch", type=int, default=11, help="first epoch read (the penalty starts at update 200)")
    parser.add_argument("--out", help="JSON lines file (default: standard output only)")
    args = parser.parse_args()

    import keras

    import mibzoo.data
    from mibzoo.callbacks import RestoreMostInvariantEpoch
    from mibzoo.reproduce.table3 import train_zoo_model
    from mibzoo.reproduce.table4 import FULL

    original, train, present, test, swapped = colored_mnist_splits(args.hide, args.seed)
    labels = np.asarray(original["label"]).astype(int)
    envs = np.asarray(original["env"]).astype(int)
    out = open(args.out, "w") if args.out else None

    def probabilities(model, images, samples):
        return np.concatenate([np.asarray(model.predict_target({"image": images[i:i + 5000]}, "label",
                                                              num_samples=samples, seed=args.seed))
                               for i in range(0, len(images), 5000)])

    # what RestoreMostInvariantEpoch reads (one seeded draw of p(y | z)), on every training image and
    # on the labelled ones (the same images when no label is hidden)
    every_image = RestoreMostInvariantEpoch(original, seed=args.seed)
    labelled_images = every_image if present is None else RestoreMostInvariantEpoch(original, present=present,
                                                                                      seed=args.seed)

    class Reading(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 < args.from_epoch:
                return
            images = np.asarray(original["image"])
            envs_read = per_environment(probabilities(self.model, images, 8), labels, envs)
            test_probs = probabilities(self.model, np.asarray(test["image"]), 8)
            swapped_probs = probabilities(self.model, np.asarray(swapped["image"]), 8)
            test_labels = np.asarray(test["label"]).astype(int)
            for reader in (every_image, labelled_images):
                reader.set_model(self.model)
            gain = every_image.reading()
            record = {
                "entry": args.entry, "seed": args.seed, "hide": args.hide, "epoch": epoch + 1,
                "updates": int(self.model.optimizer.iterations),
                "train": {str(e): {"acc": a, "nll": n} for e, (a, n) in envs_read.items()},
                "recalibration_gain": gain,
                "recalibration_gain_labelled": gain if present is None else labelled_images.reading(),
                "logs": {k: float(v) for k, v in (logs or {}).items()},
                "test_acc": float((np.argmax(test_probs, -1) == test_labels).mean()),
                "swapped_acc": float((np.argmax(swapped_probs, -1) == test_labels).mean()),
            }
            line = json.dumps(record)
            print(line, flush=True)
            if out:
                out.write(line + "\n")
                out.flush()

    entry = args.entry
    train_zoo_model(entry, mibzoo.data.info("colored_mnist").modalities, train, FULL.epochs[entry],
                    FULL.batch_size[entry], args.seed, FULL.learning_rate[entry], present=present,
                    compile_options={"critic_optimizer": keras.optimizers.Adam(FULL.critic_learning_rate)},
                    callbacks=[Reading()])


if __name__ == "__main__":
    main()

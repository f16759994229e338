"""Keras callbacks of a training run: checkpoints, a stop on non-finite losses, TensorBoard images."""
import math

import keras

from mibzoo.checkpoints import RunCheckpoints


class NonFiniteLossError(RuntimeError):
    """Training produced a NaN or infinite loss; the run keeps its last finite checkpoint."""


class StopOnNonFiniteLoss(keras.callbacks.Callback):
    """Raises `NonFiniteLossError` at the end of an epoch whose loss terms are not finite.

    Keras' ``TerminateOnNaN`` stops quietly, and the run would then look finished. Placed before
    `EpochCheckpoint`, this callback keeps a diverged epoch out of the checkpoints: the run can be
    resumed from the last finite one (with, say, a smaller learning rate).
    """

    def on_epoch_end(self, epoch, logs=None):
        bad = {k: v for k, v in (logs or {}).items() if isinstance(v, (int, float)) and not math.isfinite(v)}
        if bad:
            raise NonFiniteLossError(
                f"training diverged in epoch {epoch + 1}: " + ", ".join(f"{k} = {v}" for k, v in sorted(bad.items()))
                + "; the run keeps its last finite checkpoint (lower the learning rate or check the data and weights)")


class EpochCheckpoint(keras.callbacks.Callback):
    """Checkpoints the model and records the epoch's logs after every epoch (`RunCheckpoints`)."""

    def __init__(self, checkpoints):
        super().__init__()
        if not isinstance(checkpoints, RunCheckpoints):
            raise TypeError(f"checkpoints: expected a RunCheckpoints, got {type(checkpoints).__name__}")
        self.checkpoints = checkpoints

    def on_epoch_end(self, epoch, logs=None):
        self.checkpoints.save(self.model, epoch + 1, logs)


class CrossModalImages(keras.callbacks.Callback):
    """Writes TensorBoard image summaries each epoch: for every ordered pair of modalities the
    conditioning inputs beside samples generated from them, and joint samples from the prior.

    Args:
        log_dir: summary directory (``RUN_DIR/logs/images``).
        examples: ``{modality: [n, ...]}`` a few fixed test examples.
        num_samples: generated samples per input.
        seed: sampling seed (fixed, so epochs are comparable).
    """

    def __init__(self, log_dir, examples, num_samples=3, seed=0):
        super().__init__()
        self.log_dir = str(log_dir)
        self.examples = examples
        self.num_samples = num_samples
        self.seed = seed
        self._writer = None

    def on_epoch_end(self, epoch, logs=None):
        import tensorflow as tf

        from mibzoo import plots
        from mibzoo.samples import cross_modal_samples

        if self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        specs = self.model.modality_specs
        samples = cross_modal_samples(self.model, self.examples, self.seed, self.num_samples)
        with self._writer.as_default(step=epoch):
            for (source, target), (conditioning, generated) in samples["cross"].items():
                fig = plots.sample_grid(conditioning, generated, specs[source], specs[target],
                                        title=f"{source} -> {target}")
                tf.summary.image(f"cross/{source}->{target}", plots.figure_to_array(fig)[None], step=epoch)
            prior = plots.prior_grid(samples["prior"], specs)
            tf.summary.image("prior", plots.figure_to_array(prior)[None], step=epoch)
        self._writer.flush()

    def on_train_end(self, logs=None):
        if self._writer is not None:
            self._writer.close()
            self._writer = None

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


class InvarianceReading(keras.callbacks.Callback):
    """Writes, after each epoch from ``start_from_epoch``, how far the model's predictor of ``target``
    is from invariant across the training environments into the epoch's logs (Sec. 6, G_ood: E ⊥ Y | Z).

    The reading, under the key ``monitor``, is `mibzoo.metrics.invariance.recalibration_gain` of p(target
    | z) at one seeded draw of z ~ q(z | inputs) per example of ``data``, across the ``environment``
    column: the nats per example a per-environment recalibration would save over the pooled one, 0
    where E ⊥ Y given the predictor. Only examples whose target (and environment) are present count:
    with hidden labels the reading uses the labelled ones alone. History, CSV and TensorBoard logs
    then carry it; `RestoreMostInvariantEpoch` and `mibzoo train --restore-most-invariant` keep the
    epoch with the smallest.

    Args:
        data: ``{column: [N, ...]}`` arrays holding ``inputs``, ``target`` and ``environment``
            (usually the training split).
        target: the categorical modality predicted (``"label"``).
        environment: the column of environment indices (``"env"``).
        inputs: the modalities p(target | x) is computed from (``("image",)``).
        present: optional ``{modality: [N] 0/1}``; rows whose ``target`` or ``environment`` is 0 are
            left out of the reading.
        start_from_epoch: the first epoch (0-based, as Keras' ``EarlyStopping``) that is read.
        seed: the seed of the draws of z (fixed, so epochs are comparable).
        batch_size: examples per call of the model while reading.
        monitor: the logs key the reading is written to.

    Example:

    ```python
    model.fit(ds, epochs=30, callbacks=[InvarianceReading(train, start_from_epoch=19)])
    ```
    """

    def __init__(self, data, target="label", environment="env", inputs=("image",), present=None, start_from_epoch=0,
                 seed=0, batch_size=5000, monitor="invariance_gain"):
        import numpy as np

        super().__init__()
        name = type(self).__name__
        inputs = tuple(inputs)
        if not inputs:
            raise ValueError(f"{name}: inputs is empty; name the modalities p({target} | x) is computed from")
        missing = [c for c in (*inputs, target, environment) if c not in data]
        if missing:
            raise ValueError(f"{name}: data has no column {missing}; it has {sorted(data)}")
        keep = np.ones(len(data[target]), bool)
        for column in (target, environment):
            if present is not None and column in present:
                keep &= np.asarray(present[column]).reshape(-1) > 0
        if not keep.any():
            raise ValueError(f"{name}: no example has both {target!r} and {environment!r} present")
        self.inputs = {column: np.asarray(data[column])[keep] for column in inputs}
        self.labels = np.asarray(data[target]).reshape(-1)[keep].astype(int)
        self.environments = np.asarray(data[environment]).reshape(-1)[keep]
        self.target, self.seed, self.batch_size = target, seed, batch_size
        self.start_from_epoch, self.monitor = start_from_epoch, monitor

    def reading(self):
        """The recalibration gain of the model's current p(target | z) on the data (nats per example)."""
        import numpy as np

        from mibzoo.metrics.invariance import recalibration_gain

        n = len(self.labels)
        probs = np.concatenate([
            np.asarray(self.model.generate({k: v[i:i + self.batch_size] for k, v in self.inputs.items()}, self.target,
                                           num_samples=1, seed=self.seed, mode="mean"))[0]
            for i in range(0, n, self.batch_size)])
        return recalibration_gain(np.log(np.clip(probs, 1e-7, 1.0)), self.labels, self.environments)

    def on_epoch_end(self, epoch, logs=None):
        if epoch >= self.start_from_epoch and logs is not None:
            logs[self.monitor] = self.reading()


class RestoreMostInvariantEpoch(keras.callbacks.EarlyStopping):
    """Trains every epoch, then restores the weights of the epoch whose predictor of ``target`` was
    most invariant across the training environments (Sec. 6, G_ood: E ⊥ Y | Z).

    After each epoch from ``start_from_epoch`` it writes `InvarianceReading`'s reading to the epoch's
    logs as ``monitor``; at the end of training the weights of the epoch with the smallest reading
    are restored (Keras' ``EarlyStopping(restore_best_weights=True)``, which this class is, with a
    patience that never stops training). The weights are kept in memory, so this is for one
    ``model.fit``; a resumable run selects through its checkpoints (`mibzoo train
    --restore-most-invariant`, `mibzoo.checkpoints.RunCheckpoints`'s ``select``).

    Why: a penalized run does not stay at its most invariant point. With half of Colored-MNIST's
    labels hidden, `ood_cmnist`'s penalty reads half as many labelled rows per batch, and runs drift
    back towards the colour in their last epochs (docs/results_ood.md, thirty-ninth session).
    Caveat: read on the rows a penalty on the same refit trained on, the reading is deflated. On
    `ood_cmnist` its median is below the 1/n a refit reaches on labels it did not shape, and it ranks
    epochs weakly: +0.9 ± 0.9 test-environment points over 19 fresh runs (fortieth session).

    Args:
        data, target, environment, inputs, present, seed, batch_size, monitor: as `InvarianceReading`.
        start_from_epoch: the first epoch (0-based) that is read and may be restored.
        verbose: 1 prints which epoch's weights are restored.

    Example:

    ```python
    model.fit(ds, epochs=30, callbacks=[RestoreMostInvariantEpoch(train, start_from_epoch=19)])
    ```
    """

    def __init__(self, data, target="label", environment="env", inputs=("image",), present=None, start_from_epoch=0,
                 seed=0, batch_size=5000, monitor="invariance_gain", verbose=0):
        import sys

        super().__init__(monitor=monitor, mode="min", patience=sys.maxsize, start_from_epoch=start_from_epoch,
                         restore_best_weights=True, verbose=verbose)
        self.invariance = InvarianceReading(data, target, environment, inputs, present, start_from_epoch, seed,
                                            batch_size, monitor)

    def set_model(self, model):
        super().set_model(model)
        self.invariance.set_model(model)

    def reading(self):
        """`InvarianceReading.reading` of the model's current weights."""
        return self.invariance.reading()

    @property
    def selected_epoch(self):
        """The restored epoch, 1-based (None before any epoch was read)."""
        return None if self.best_weights is None else self.best_epoch + 1

    def on_epoch_end(self, epoch, logs=None):
        if epoch < self.start_from_epoch:
            return
        logs = {} if logs is None else logs
        logs[self.monitor] = self.reading()
        super().on_epoch_end(epoch, logs)

"""`mibzoo.callbacks.RestoreMostInvariantEpoch`: the reading it logs is the recalibration gain of the
model's p(y | z) on the labelled examples, and the weights it leaves are those of the epoch whose
reading was smallest."""
import keras
import numpy as np
import pytest
import tensorflow as tf

import mibzoo
from mibzoo.callbacks import RestoreMostInvariantEpoch
from mibzoo.metrics.invariance import recalibration_gain


def _small_ood_model():
    # Eq. 18 without its penalty: what the callback reads does not depend on how the model trains,
    # and a closed-form penalty on a few random images only adds numerical edge cases
    keras.utils.set_random_seed(0)
    model = mibzoo.load("ood_cmnist", shared=[{"name": "z", "size": 3}], private={"image": 2},
                        networks={"image": {"network": "mlp", "hidden": 8, "layers": 1},
                                  "categorical": {"hidden": 8, "layers": 1}},
                        str_reg=[[{"image": "beta1"}, "cross"], ["alpha_y", "sufficiency"]], term_options={})
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    return model


def _arrays(n=240, seed=0):
    rng = np.random.default_rng(seed)
    label = rng.integers(0, 2, n).astype("int32")
    env = np.arange(n).astype("int32") % 2
    colour = np.where(rng.random(n) < np.where(env == 0, 0.9, 0.8), label, 1 - label)
    image = (rng.random((n, 14, 14, 2)) < 0.2).astype("float32")
    image[np.arange(n), :, :, colour] += 0.5
    return {"image": np.clip(image, 0, 1), "label": label, "env": env}


class _Recorder(keras.callbacks.Callback):
    def __init__(self, monitor):
        super().__init__()
        self.monitor, self.weights, self.readings = monitor, {}, {}

    def on_epoch_end(self, epoch, logs=None):
        self.weights[epoch] = [np.array(w) for w in self.model.get_weights()]
        if self.monitor in logs:
            self.readings[epoch] = logs[self.monitor]


class _Scripted(RestoreMostInvariantEpoch):
    """Readings given in advance, so that the smallest is neither the first read nor the last."""

    def __init__(self, data, readings, **kwargs):
        super().__init__(data, **kwargs)
        self.scripted = list(readings)

    def reading(self):
        return self.scripted.pop(0)


def test_the_weights_of_the_epoch_with_the_smallest_reading_are_restored():
    model, arrays = _small_ood_model(), _arrays()
    selector = _Scripted(arrays, [0.3, 0.1, 0.2, 0.4], start_from_epoch=1, seed=3)
    recorder = _Recorder(selector.monitor)
    history = model.fit(tf.data.Dataset.from_tensor_slices(arrays).batch(120), epochs=5, verbose=0,
                        callbacks=[selector, recorder])
    assert recorder.readings == {1: 0.3, 2: 0.1, 3: 0.2, 4: 0.4}  # read from start_from_epoch on, into the logs
    assert history.history[selector.monitor] == [0.3, 0.1, 0.2, 0.4]
    assert selector.selected_epoch == 3
    assert not all(np.array_equal(a, b) for a, b in zip(recorder.weights[2], recorder.weights[4]))
    for restored, kept in zip(model.get_weights(), recorder.weights[2]):
        np.testing.assert_array_equal(restored, kept)


def test_the_reading_is_the_recalibration_gain_of_one_seeded_draw_of_p_y_given_z():
    model, arrays = _small_ood_model(), _arrays()
    selector = RestoreMostInvariantEpoch(arrays, start_from_epoch=1, seed=3)
    recorder = _Recorder(selector.monitor)
    model.fit(tf.data.Dataset.from_tensor_slices(arrays).batch(120), epochs=3, verbose=0, callbacks=[selector, recorder])
    best = min(recorder.readings, key=recorder.readings.get)
    assert sorted(recorder.readings) == [1, 2] and selector.selected_epoch == best + 1
    probs = np.asarray(model.generate({"image": arrays["image"]}, "label", num_samples=1, seed=3, mode="mean"))[0]
    expected = recalibration_gain(np.log(np.clip(probs, 1e-7, 1.0)), arrays["label"], arrays["env"])
    assert expected > 0
    assert selector.reading() == pytest.approx(expected, rel=1e-6)
    assert recorder.readings[best] == pytest.approx(expected, rel=1e-6)  # the restored epoch's own reading


def test_hidden_labels_are_left_out_of_the_reading():
    model, arrays = _small_ood_model(), _arrays()
    model.fit(tf.data.Dataset.from_tensor_slices(arrays).batch(120), epochs=1, verbose=0)
    labelled = np.arange(240) % 3 != 0
    present = {"label": labelled.astype("float32")}
    scrambled = {**arrays, "label": np.where(labelled, arrays["label"], 1 - arrays["label"]).astype("int32")}
    readings = []
    for data in (arrays, scrambled):
        selector = RestoreMostInvariantEpoch(data, present=present, seed=1)
        selector.set_model(model)
        readings.append(selector.reading())
    assert readings[0] == readings[1]
    everything = RestoreMostInvariantEpoch(scrambled, seed=1)
    everything.set_model(model)
    assert everything.reading() != readings[0]  # the hidden rows' labels would have counted


def test_bad_data_is_refused_naming_the_column():
    arrays = _arrays()
    with pytest.raises(ValueError, match=r"no column \['env'\]"):
        RestoreMostInvariantEpoch({k: v for k, v in arrays.items() if k != "env"})
    with pytest.raises(ValueError, match="no example has both 'label' and 'env' present"):
        RestoreMostInvariantEpoch(arrays, present={"label": np.zeros(240)})

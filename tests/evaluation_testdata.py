"""Tiny synthetic paired data, a stub classifier and model doubles with known metric values.

Digits are 8×8 binary prototypes (one per class 0..9, far apart); an "image" of digit d is its
prototype with a few flipped pixels, so the nearest-prototype classifier reads it exactly.
"""
import numpy as np

CLASSES = 10
SHAPE = (8, 8, 1)
PROTOTYPES = (np.random.default_rng(7).random((CLASSES,) + SHAPE) > 0.5).astype("float32")
IMAGE = {"kind": "image", "shape": list(SHAPE), "likelihood": "bernoulli"}
LABEL = {"kind": "categorical", "classes": CLASSES}
TINY_OPTIONS = {"hidden": 32, "layers": 1, "filters": [8, 16]}
TINY_SHARED = [{"name": "z", "size": 4}]


def images_of(digits, rng, flip=0.03):
    flips = rng.random((len(digits),) + SHAPE) < flip
    return np.abs(PROTOTYPES[digits] - flips).astype("float32")


def plus1_arrays(n, seed=0):
    """MNIST-Plus-1 in miniature: image_a shows m, image_b shows (m + 1) % 10."""
    rng = np.random.default_rng(seed)
    a = rng.integers(0, CLASSES, n).astype("int32")
    b = ((a + 1) % CLASSES).astype("int32")
    return {"image_a": images_of(a, rng), "image_b": images_of(b, rng), "digit_a": a, "digit_b": b}


def label_arrays(n, seed=0):
    """MNIST-Label in miniature: an image and its digit as a categorical modality."""
    rng = np.random.default_rng(seed)
    d = rng.integers(0, CLASSES, n).astype("int32")
    return {"image": images_of(d, rng), "label": d, "digit": d}


class NearestPrototype:
    """Stub digit classifier: the class of the nearest prototype (exact on this data)."""

    def predict(self, x):
        x = np.asarray(x).reshape(len(x), -1)
        distances = ((x[:, None, :] - PROTOTYPES.reshape(CLASSES, -1)[None]) ** 2).sum(-1)
        return np.eye(CLASSES)[distances.argmin(1)]  # one-hot "probabilities"

    def features(self, x):
        """Distances to the ten prototypes: the 'penultimate features' of the sample-quality metric."""
        x = np.asarray(x).reshape(len(x), -1)
        return np.sqrt(((x[:, None, :] - PROTOTYPES.reshape(CLASSES, -1)[None]) ** 2).sum(-1))


def read_digit(value, spec):
    value = np.asarray(value)
    if spec["kind"] == "categorical":
        return value.reshape(-1).astype(int) if value.ndim == 1 else value.argmax(-1)
    return NearestPrototype().predict(value).argmax(-1)


def render(digits, spec):
    if spec["kind"] == "categorical":
        return np.eye(CLASSES, dtype="float32")[digits]
    return PROTOTYPES[digits]


class PerfectModel:
    """Returns the true paired data: generating ``target`` from ``source`` shows the source's class
    shifted by the pair's offset (``offsets``: class of a modality minus the common class)."""

    def __init__(self, modality_specs, offsets=None):
        self.modality_specs = modality_specs
        self.offsets = offsets or {}

    def _common(self, inputs):
        name = next(iter(inputs))
        return (read_digit(inputs[name], self.modality_specs[name]) - self.offsets.get(name, 0)) % CLASSES

    def generate(self, inputs, target, num_samples=1, seed=None, mode="mean"):
        digits = (self._common(inputs) + self.offsets.get(target, 0)) % CLASSES
        return np.stack([render(digits, self.modality_specs[target])] * num_samples)

    def sample(self, n, seed=None, mode="mean"):
        common = np.random.default_rng(seed).integers(0, CLASSES, n)
        return {m: render((common + self.offsets.get(m, 0)) % CLASSES, s) for m, s in self.modality_specs.items()}

    def reconstruct(self, inputs):
        return {m: (np.eye(CLASSES)[inputs[m]] if s["kind"] == "categorical" and np.asarray(inputs[m]).ndim == 1
                    else np.asarray(inputs[m])) for m, s in self.modality_specs.items()}

    def encode(self, inputs):
        return {"loc": np.eye(CLASSES)[self._common(inputs)]}


class RandomModel(PerfectModel):
    """Ignores its inputs: every generated or sampled modality shows a uniformly random class."""

    def generate(self, inputs, target, num_samples=1, seed=None, mode="mean"):
        n = len(next(iter(inputs.values())))
        rng = np.random.default_rng(seed)
        return np.stack([render(rng.integers(0, CLASSES, n), self.modality_specs[target]) for _ in range(num_samples)])

    def sample(self, n, seed=None, mode="mean"):
        rng = np.random.default_rng(seed)
        return {m: render(rng.integers(0, CLASSES, n), s) for m, s in self.modality_specs.items()}

    def encode(self, inputs):
        n = len(next(iter(inputs.values())))
        return {"loc": np.random.default_rng(n).normal(size=(n, 4))}


def tiny_label_npz(folder, n_train, n_test, classifier_examples=256):
    """MNIST-Label in miniature as an ``.npz`` data file (`mibzoo.experiment_data.save_npz`), with a
    small Keras classifier of its images saved beside it for the coherence metrics."""
    import keras

    from mibzoo.experiment_data import save_npz
    from mibzoo.metrics import EvaluationSpec, ModalityLabel

    train, test = label_arrays(n_train, seed=1), label_arrays(n_test, seed=2)
    keras.utils.set_random_seed(0)
    classifier = keras.Sequential([keras.Input(SHAPE), keras.layers.Flatten(),
                                   keras.layers.Dense(CLASSES, activation="softmax")])
    classifier.compile(optimizer=keras.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy")
    classifier.fit(train["image"][:classifier_examples], train["digit"][:classifier_examples], epochs=20, verbose=0)
    classifier.save(folder / "digit.keras")
    spec = EvaluationSpec({"image": ModalityLabel("digit", str(folder / "digit.keras")),
                           "label": ModalityLabel("digit")}, probe_label="digit")
    path = folder / "tiny.npz"
    save_npz(path, train, test, {"image": IMAGE, "label": LABEL}, spec)
    return path

"""A tiny two-modality Keras 3 model exported with cross-modal generation signatures.

``image`` (4 values) -> ``z`` (3 latents) -> ``image`` / ``label`` (3 logits). Its
signatures exercise what the zoo's will need: multi- and single-output endpoints, fresh
sampling (``tf.random.normal``) and seeded stateless sampling (one int32 seed per row).
"""
import numpy as np
import tensorflow as tf

import keras
from mibzoo import export_archive

IMAGE = tf.TensorSpec([None, 4], tf.float32)
SEED = tf.TensorSpec([None, 2], tf.int32)


class TinyModel(keras.Model):
    def __init__(self):
        super().__init__()
        self.encoder = keras.layers.Dense(3, name="encoder")
        self.image_decoder = keras.layers.Dense(4, name="image_decoder")
        self.label_decoder = keras.layers.Dense(3, name="label_decoder")

    def call(self, image):
        z = self.encoder(image)
        return self.image_decoder(z), self.label_decoder(z)


def build_tiny_model(seed=0):
    keras.utils.set_random_seed(seed)
    model = TinyModel()
    model(np.zeros((1, 4), np.float32))
    return model


def tiny_signatures(model):
    def reconstruct(inputs):
        image, _ = model(inputs["image"])
        return {"image": image, "z": model.encoder(inputs["image"])}

    def encode(inputs):
        return {"z": model.encoder(inputs["image"])}

    def image_to_label(inputs):
        z = model.encoder(inputs["image"])
        return {"label": tf.nn.softmax(model.label_decoder(z + tf.random.normal(tf.shape(z))))}

    def image_to_label_seeded(inputs):
        z = model.encoder(inputs["image"])
        noise = export_archive.per_example_stateless_normal(inputs["seed"], [3])
        return {"label": tf.nn.softmax(model.label_decoder(z + noise))}

    return {
        "reconstruct": (reconstruct, {"image": IMAGE}),
        "encode": (encode, {"image": IMAGE}),
        "generate_image_to_label": (image_to_label, {"image": IMAGE}),
        "generate_image_to_label_seeded": (image_to_label_seeded, {"image": IMAGE, "seed": SEED}),
    }


WARMUP = [
    ("reconstruct", {"image": np.ones((2, 4), np.float32)}),
    ("generate_image_to_label_seeded",
     {"image": np.ones((1, 4), np.float32), "seed": np.array([[1, 2]], np.int32)}),
]


def export_tiny(base, name="tiny", version=None, seed=0, **kwargs):
    model = build_tiny_model(seed)
    kwargs.setdefault("assets", {"model_card.md": "# tiny\n", "config.json": '{"seed": %d}' % seed})
    kwargs.setdefault("warmup_requests", WARMUP)
    return export_archive.export_signatures(base, name, version, model, tiny_signatures(model),
                                            **kwargs)

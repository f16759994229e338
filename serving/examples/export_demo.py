"""Export a small demo model into a TF Serving base directory, to try the serving stack.

The demo has two "modalities", ``image`` (4 values) and ``label`` (3 classes), an encoder
and two decoders (untrained: the weights are random but fixed by --seed). It exports the
same kinds of signatures as the zoo models: reconstruction, encoding and cross-modal
generation, fresh (``generate_image_to_label``) and seeded
(``generate_image_to_label_seeded``, one int32 seed pair per example).

    python serving/examples/export_demo.py exports            # -> exports/demo/1/
    python serving/examples/export_demo.py exports --seed 1   # -> exports/demo/2/
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout


def main(argv=None):
    parser = argparse.ArgumentParser(description="Export the serving demo model.")
    parser.add_argument("base", help="the TF Serving base directory (mounted at /models)")
    parser.add_argument("--name", default="demo", help="model name (default: demo)")
    parser.add_argument("--version", type=int, default=None,
                        help="version number (default: one more than the highest)")
    parser.add_argument("--seed", type=int, default=0, help="weight initialization seed")
    args = parser.parse_args(argv)

    import json

    import keras
    import numpy as np
    import tensorflow as tf

    from mibzoo import export_archive

    keras.utils.set_random_seed(args.seed)
    encoder = keras.layers.Dense(3, name="encoder")
    image_decoder = keras.layers.Dense(4, name="image_decoder")
    label_decoder = keras.layers.Dense(3, name="label_decoder")
    image_in = keras.Input((4,), name="image")
    z = encoder(image_in)
    model = keras.Model(image_in, [image_decoder(z), label_decoder(z)], name="demo")

    def reconstruct(inputs):
        z = encoder(inputs["image"])
        return {"image": image_decoder(z), "z": z}

    def encode(inputs):
        return {"z": encoder(inputs["image"])}

    def generate_image_to_label(inputs):
        z = encoder(inputs["image"])
        return {"label": tf.nn.softmax(label_decoder(z + tf.random.normal(tf.shape(z))))}

    def generate_image_to_label_seeded(inputs):
        z = encoder(inputs["image"])
        z = z + export_archive.per_example_stateless_normal(inputs["seed"], [3])
        return {"label": tf.nn.softmax(label_decoder(z))}

    image = tf.TensorSpec([None, 4], tf.float32)
    seed = tf.TensorSpec([None, 2], tf.int32)
    path = export_archive.export_signatures(
        args.base, args.name, args.version, model,
        {
            "reconstruct": (reconstruct, {"image": image}),  # also serving_default
            "encode": (encode, {"image": image}),
            "generate_image_to_label": (generate_image_to_label, {"image": image}),
            "generate_image_to_label_seeded": (
                generate_image_to_label_seeded, {"image": image, "seed": seed}),
        },
        assets={
            "model_card.md": "# demo\n\nAn untrained two-modality model for trying the serving "
                             "stack (serving/README.md).\n",
            "config.json": json.dumps({"name": args.name, "seed": args.seed}, indent=2),
        },
        warmup_requests=[
            ("reconstruct", {"image": np.zeros((1, 4), np.float32)}),
            ("generate_image_to_label_seeded",
             {"image": np.zeros((1, 4), np.float32), "seed": np.zeros((1, 2), np.int32)}),
        ],
    )
    print(f"exported {path} (verified with the session loader); config: "
          f"{Path(args.base) / 'models.config'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""REST (and, for a zoo entry, gRPC) latency of the local server at batch 1 and 64.

Exports a tiny Keras 3 model (4 -> 3 -> 4 dense layers, one seeded signature) -- or, with
``--zoo ENTRY``, the zoo entry with its default MNIST-Label modalities (weights untrained:
latency does not depend on them) -- into a temporary base directory, serves it with
`mibzoo.serving.LocalServer` on 127.0.0.1, and times sequential predict requests over one
keep-alive HTTP connection (what a client library with connection reuse sees) and, for a zoo
entry, the same requests over one gRPC channel to the local gRPC API. Prints
p50/p99 per batch size and format, and the bare Session.run time of the same signature.

    python benchmarks/serving_latency.py [--requests 500] [--batches 1 64] [--zoo wyner_vae]

These figures measure the development server (Python HTTP + JSON), not TF Serving.
"""
import argparse
import http.client
import json
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402


def build_and_export(base):
    import keras
    import tensorflow as tf

    from mibzoo import export_archive

    keras.utils.set_random_seed(0)
    encoder, decoder = keras.layers.Dense(3), keras.layers.Dense(4)
    model = keras.Sequential([keras.Input((4,)), encoder, decoder])

    def reconstruct(inputs):
        return {"image": model(inputs["image"])}

    def generate_seeded(inputs):
        z = encoder(inputs["image"]) + export_archive.per_example_stateless_normal(inputs["seed"], [3])
        return {"image": decoder(z)}

    image = tf.TensorSpec([None, 4], tf.float32)
    seed = tf.TensorSpec([None, 2], tf.int32)
    return export_archive.export_signatures(
        base, "tiny", 1, model,
        {"reconstruct": (reconstruct, {"image": image}),
         "generate_image_to_image_seeded": (generate_seeded, {"image": image, "seed": seed})},
    )


def percentiles(samples_ms):
    samples = np.asarray(samples_ms)
    return np.percentile(samples, 50), np.percentile(samples, 99), samples.mean()


def time_rest(url, body, requests, model="tiny"):
    host, port = url.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=60)
    payload = json.dumps(body).encode()
    headers = {"Content-Type": "application/json"}
    samples = []
    try:
        for i in range(requests + 20):
            started = time.perf_counter()
            connection.request("POST", f"/v1/models/{model}:predict", body=payload, headers=headers)
            response = connection.getresponse()
            data = response.read()
            elapsed = (time.perf_counter() - started) * 1000
            if response.status != 200:
                raise RuntimeError(f"HTTP {response.status}: {data[:200]!r}")
            if i >= 20:  # the first requests warm up caches and the connection
                samples.append(elapsed)
    finally:
        connection.close()
    return samples


def time_grpc(target, model, signature, inputs, requests):
    """Sequential Predict calls over one gRPC channel (protobuf tensors, no JSON)."""
    from mibzoo.serving.grpc_client import GRPCClient

    samples = []
    with GRPCClient(target) as client:
        for i in range(requests + 20):
            started = time.perf_counter()
            client.predict(model, inputs, signature_name=signature)
            if i >= 20:
                samples.append((time.perf_counter() - started) * 1000)
    return samples


def time_session(version_dir, signature, inputs, requests):
    from mibzoo import session_loader

    session, meta_graph = session_loader.load_session(version_dir)
    try:
        sig = meta_graph.signature_def[signature]
        run = session.make_callable([sig.outputs[k].name for k in sorted(sig.outputs)],
                                    feed_list=[sig.inputs[k].name for k in sorted(inputs)])
        args = [inputs[k] for k in sorted(inputs)]
        samples = []
        for i in range(requests + 20):
            started = time.perf_counter()
            run(*args)
            if i >= 20:
                samples.append((time.perf_counter() - started) * 1000)
    finally:
        session.close()
    return samples


def zoo_cases(entry, batch, rng):
    """Requests for a zoo export with MNIST-Label modalities: image -> label, label -> image (seeded)."""
    images = (rng.random((batch, 28, 28, 1)) > 0.7).astype(np.float32)
    labels = rng.integers(0, 10, batch).astype(np.int32)
    seeds = np.stack([np.full(batch, 7), np.arange(batch)], 1).astype(np.int32)
    return [
        (f"REST generate_image_to_label batch {batch}", "generate_image_to_label", {"image": images}),
        (f"REST generate_label_to_image_seeded batch {batch}", "generate_label_to_image_seeded",
         {"label": labels, "seed": seeds}),
    ]


def main_zoo(entry, batches, requests):
    import mibzoo
    from mibzoo.export import export_model
    from mibzoo.serving import LocalServer

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as base:
        version_dir = export_model(mibzoo.load(entry), base, entry, version=1)
        with LocalServer(base, port=0, max_batch=max(batches), grpc_port=0) as server:
            print(f"local server {server.url} (gRPC {server.grpc_target}), zoo entry {entry} (MNIST-Label), "
                  f"{requests} sequential requests per case, one keep-alive connection; cpu count {os.cpu_count()}")
            print(f"{'case':52s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s}")
            for batch in batches:
                for name, signature, inputs in zoo_cases(entry, batch, rng):
                    body = {"signature_name": signature, "inputs": {k: v.tolist() for k, v in inputs.items()}}
                    p50, p99, mean = percentiles(time_rest(server.url, body, requests, model=entry))
                    print(f"{name:52s} {p50:8.2f} {p99:8.2f} {mean:8.2f}  (p99/p50 {p99 / p50:.1f})")
                    p50, p99, mean = percentiles(time_grpc(server.grpc_target, entry, signature, inputs, requests))
                    grpc_name = name.replace("REST", "gRPC", 1)
                    print(f"{grpc_name:52s} {p50:8.2f} {p99:8.2f} {mean:8.2f}  (p99/p50 {p99 / p50:.1f})")
                    p50, p99, mean = percentiles(time_session(version_dir, signature, inputs, requests))
                    print(f"{f'  Session.run {signature} batch {batch} (no HTTP)':52s} {p50:8.2f} {p99:8.2f} {mean:8.2f}")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=500, help="timed requests per case")
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--zoo", default=None, help="measure this zoo entry instead of the tiny model")
    args = parser.parse_args(argv)
    if args.zoo:
        return main_zoo(args.zoo, args.batches, args.requests)

    from mibzoo.serving import LocalServer

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as base:
        version_dir = build_and_export(base)
        with LocalServer(base, port=0, max_batch=max(args.batches)) as server:
            print(f"local server {server.url}, {args.requests} sequential requests per case, "
                  f"one keep-alive connection; cpu count {os.cpu_count()}")
            print(f"{'case':44s} {'p50 ms':>8s} {'p99 ms':>8s} {'mean ms':>8s}")
            for batch in args.batches:
                images = rng.standard_normal((batch, 4)).astype(np.float32)
                seeds = np.stack([np.full(batch, 7), np.arange(batch)], 1).astype(np.int32)
                cases = [
                    (f"REST reconstruct batch {batch} (inputs)",
                     {"signature_name": "reconstruct", "inputs": {"image": images.tolist()}}),
                    (f"REST reconstruct batch {batch} (instances)",
                     {"signature_name": "reconstruct", "instances": images.tolist()}),
                    (f"REST generate seeded batch {batch} (inputs)",
                     {"signature_name": "generate_image_to_image_seeded",
                      "inputs": {"image": images.tolist(), "seed": seeds.tolist()}}),
                ]
                for name, body in cases:
                    p50, p99, mean = percentiles(time_rest(server.url, body, args.requests))
                    print(f"{name:44s} {p50:8.2f} {p99:8.2f} {mean:8.2f}")
                p50, p99, mean = percentiles(
                    time_session(version_dir, "reconstruct", {"image": images}, args.requests))
                print(f"{f'Session.run reconstruct batch {batch} (no HTTP)':44s} "
                      f"{p50:8.2f} {p99:8.2f} {mean:8.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

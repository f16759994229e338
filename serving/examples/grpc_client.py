"""Call a served model over TF Serving's gRPC API (port 8500): status, predict, generate.

    python serving/examples/grpc_client.py --target localhost:8500 --model demo
    python serving/examples/grpc_client.py --model wyner_vae --source label --target-modality image

Inputs are built from the signature metadata (random values), so any served model works.

Uses grpcio and tensorflow-serving-api (dependencies of mibzoo). The same calls
without mibzoo are the stubs in ``tensorflow_serving.apis.prediction_service_pb2_grpc``
(shown at the end of `main` for reference).
"""
import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout

import numpy as np  # noqa: E402

from mibzoo.serving import GRPCClient, ServingError  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rest_client import example_inputs  # noqa: E402  (random inputs from signature metadata)


def signature_spec(metadata, name):
    """``{"inputs": {key: {"dtype", "shape"}}}`` of one signature, from the metadata JSON."""
    sig = metadata["metadata"]["signature_def"]["signature_def"][name]
    return {"inputs": {
        key: {"dtype": info["dtype"],
              "shape": [int(d["size"]) for d in info["tensor_shape"]["dim"]]}
        for key, info in sig["inputs"].items()}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="localhost:8500")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--source", default="image", help="source modality for generate")
    parser.add_argument("--target-modality", default="label", help="target modality for generate")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(0)
    seeded = f"generate_{args.source}_to_{args.target_modality}_seeded"
    try:
        with GRPCClient(args.target) as client:
            versions = client.status(args.model)["model_version_status"]
            print("versions:", [(v["version"], v["state"]) for v in versions])
            metadata = client.metadata(args.model)
            inputs = example_inputs(signature_spec(metadata, "serving_default"), args.batch, rng)
            outputs = client.predict(args.model, inputs)
            print("serving_default:", {k: list(v.shape) for k, v in outputs.items()})
            source = example_inputs(signature_spec(metadata, seeded), args.batch, rng)[args.source]
            samples = client.generate(args.model, {args.source: source}, args.target_modality,
                                      seed=args.seed)
            print(f"generate {args.source}->{args.target_modality} seed={args.seed}: "
                  f"shape {list(samples.shape)}")
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1

    # The same seeded Predict call with the raw TF Serving stubs:
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    with grpc.insecure_channel(args.target) as channel:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(channel)
        request = predict_pb2.PredictRequest()
        request.model_spec.name = args.model
        request.model_spec.signature_name = seeded
        request.inputs[args.source].CopyFrom(tf.make_tensor_proto(source))
        seeds = np.stack([np.full(len(source), args.seed), np.arange(len(source))], 1)
        request.inputs["seed"].CopyFrom(tf.make_tensor_proto(seeds.astype(np.int32)))
        response = stub.Predict(request, timeout=30.0)
        raw = tf.make_ndarray(response.outputs[args.target_modality])
        print("raw stub, same seeds, same samples:", bool(np.array_equal(raw, samples)))
    return 0


if __name__ == "__main__":
    sys.exit(main())

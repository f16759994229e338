"""Call a served model over TF Serving's REST API: status, signatures, predict, generate.

Works for any model: inputs are built from the signature metadata (random values, batch
of --batch), so it doubles as a smoke test of a deployment.

    python serving/examples/rest_client.py --model demo
    python serving/examples/rest_client.py --url http://localhost:8501 --model demo \
        --source image --target label --seed 7

Uses `mibzoo.serving.Client` (urllib + numpy; no gRPC or serving protos needed).
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run from a source checkout

import numpy as np  # noqa: E402

from mibzoo.serving import Client, ServingError  # noqa: E402

_DTYPES = {"DT_FLOAT": np.float32, "DT_DOUBLE": np.float64, "DT_INT32": np.int32,
           "DT_INT64": np.int64, "DT_BOOL": np.bool_}


def example_inputs(spec, batch, rng):
    """Random inputs for a signature described by `Client.signature`."""
    inputs = {}
    for name, info in spec["inputs"].items():
        shape = [batch] + [d if d > 0 else 1 for d in (info["shape"] or [-1])[1:]]
        dtype = _DTYPES.get(info["dtype"], np.float32)
        if name == "seed":  # one stateless seed pair per example
            inputs[name] = np.stack([np.full(batch, 7), np.arange(batch)], 1).astype(np.int32)
        elif name == "present":  # zoo signatures: which modalities are given (all here)
            inputs[name] = np.ones(shape, dtype)
        elif name == "sample_index":  # zoo `sample` signatures: one row per sample
            inputs[name] = np.arange(batch, dtype=dtype)
        elif np.issubdtype(dtype, np.floating):
            inputs[name] = rng.random(shape).astype(dtype)
        else:
            inputs[name] = np.zeros(shape, dtype)
    return inputs


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://localhost:8501")
    parser.add_argument("--model", default="demo")
    parser.add_argument("--signature", default=None, help="default: serving_default")
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--source", default="image", help="source modality for generate")
    parser.add_argument("--target", default="label", help="target modality for generate")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    client = Client(args.url)
    rng = np.random.default_rng(0)
    try:
        print("status:", json.dumps(client.status(args.model)))
        signatures = client.metadata(args.model)["metadata"]["signature_def"]["signature_def"]
        print("signatures:", ", ".join(sorted(s for s in signatures if not s.startswith("__"))))

        spec = client.signature(args.model, args.signature)
        inputs = example_inputs(spec, args.batch, rng)
        for fmt in ("inputs", "instances"):
            outputs = client.predict(args.model, inputs, signature_name=args.signature, format=fmt)
            shapes = {k: list(v.shape) for k, v in outputs.items()}
            print(f"predict {args.signature or 'serving_default'} ({fmt}): {shapes}")

        seeded = f"generate_{args.source}_to_{args.target}_seeded"
        if seeded in signatures:
            source = example_inputs(client.signature(args.model, seeded), args.batch, rng)[args.source]
            first = client.generate(args.model, {args.source: source}, args.target, seed=args.seed)
            again = client.generate(args.model, {args.source: source}, args.target, seed=args.seed)
            fresh = client.generate(args.model, {args.source: source}, args.target)
            print(f"generate {args.source}->{args.target} seed={args.seed}:\n{np.round(first, 4)}")
            print("same seed, same samples:", bool(np.array_equal(first, again)),
                  "| unseeded sample shape:", list(fresh.shape))
    except ServingError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())

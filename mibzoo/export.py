"""Export a trained zoo model as a TF Serving version: the signature contract of `export/README.md`.

Signatures (every input and output has a leading ``None`` batch dimension; categorical inputs
are int32 class ids ``[None]``, categorical outputs class probabilities ``[None, K]``; image and
vector outputs are the likelihood's mean):

- ``serving_default`` / ``generate``: cross-modal generation from whichever modalities are
  given (input ``present``: float32 ``[None, N]``, 1 where a modality is given; absent ones may
  be zeros) to every modality;
- ``generate_<source>_to_<target>`` for each ordered pair of modalities;
- ``encode``: posterior parameters ``loc``, ``logvar`` of q(z | x^S) from the present modalities
  (for a mixture posterior, ``"posterior": "moe"`` or ``"mopoe"``, its mean and the log of its
  variance, plus its components: ``component_loc``, ``component_logvar`` ``[None, K, Dz]`` and
  ``component_weight`` ``[None, K]``), and ``private_<name>_loc``, ``private_<name>_logvar`` of q(u_i | x_i) for each modality with a
  private latent (it depends on x_i alone; meaningful where x_i is present). For the fairness
  entries ``private_x_loc`` is the fair representation U_x (Eq. 17);
- ``reconstruct``: every modality decoded from the posterior means;
- ``sample``: one joint sample from the prior per input row (input ``sample_index`` int32
  ``[None]``: TF Serving needs every output to share the inputs' batch dimension, so the number
  of rows is the number of samples);
- ``predict_<source>_to_<target>`` for each categorical target: p(target | source) =
  E_{q(z | source)} p(target | z), the class probabilities averaged over `PREDICT_SAMPLES` draws
  of z (`MIBModel.predict_target`; Sec. 6 predicts Y from X this way), seeded per row (``seed``);
- ``*_seeded`` twins of the sampling signatures take ``seed``: int32 ``[None, 2]``, one stateless
  seed per row, so a row's output depends only on its inputs and its seed — identical across
  processes and unaffected by server-side batching.

Models without an inference network (gan, infogan) export ``sample``, ``sample_seeded`` and
``serving_default`` (= ``sample``).
"""
import datetime
import json
import pathlib

import keras
import numpy as np
import tensorflow as tf

from mibzoo import export_archive
from mibzoo.modalities import event_shape
# One naming contract for the generation signatures, shared with the clients that call them.
from mibzoo.serving.signature_names import generate_signature_name

# Draws of z averaged by the predict_* signatures.
PREDICT_SAMPLES = 16


def _input_spec(spec):
    if spec["kind"] == "categorical":
        return tf.TensorSpec([None], tf.int32)
    return tf.TensorSpec([None, *event_shape(spec)], tf.float32)


def per_example_noise(seeds):
    """A noise source for the model whose draws are stateless per example: row b of every draw
    comes from ``seeds[b]`` (offset by the draw's index), whatever the batch it is served in.

    Draw shapes are ``[B, D]``, ``[B]`` (rows first) or ``[S, B, D]`` (samples, then rows).
    """
    seeds = tf.cast(seeds, tf.int32)
    counter = [0]

    def draw(shape):
        counter[0] += 1
        # Each draw of a request gets its own stream: the row's seed, offset by the draw index.
        offset_seeds = seeds + tf.constant([0, 7919 * counter[0]], tf.int32)
        if len(shape) == 3:  # [samples, rows, D]: draw [samples, D] per row, then put rows second
            per_row = export_archive.per_example_stateless_normal(offset_seeds, [shape[0], shape[2]])
            return tf.transpose(per_row, [1, 0, 2])
        return export_archive.per_example_stateless_normal(offset_seeds, list(shape[1:]))

    return draw


def build_signatures(model):
    """``{signature_name: (fn, input_specs)}`` for `export_archive.export_signatures`."""
    names = model.modality_names
    specs = model.modality_specs
    signatures = {}

    def sample_fn(seeded):
        def fn(inputs):
            if seeded:
                seeds = inputs["seed"]
                n, noise = tf.shape(seeds)[0], per_example_noise(seeds)
            else:
                n, noise = tf.shape(inputs["sample_index"])[0], None
            return dict(model.sample(n, seed=noise))
        return fn

    signatures["sample"] = (sample_fn(False), {"sample_index": tf.TensorSpec([None], tf.int32)})
    signatures["sample_seeded"] = (sample_fn(True), {"seed": tf.TensorSpec([None, 2], tf.int32)})
    if not model.has_inference:
        signatures["serving_default"] = signatures["sample"]
        return signatures

    all_inputs = {name: _input_spec(specs[name]) for name in names}
    present_spec = {"present": tf.TensorSpec([None, len(names)], tf.float32)}

    def presence(inputs):
        return {name: inputs["present"][:, i] for i, name in enumerate(names)}

    def generate_all(seeded):
        def fn(inputs):
            x = {n: inputs[n] for n in names}
            noise = per_example_noise(inputs["seed"]) if seeded else None
            return {target: model.generate(x, target, num_samples=1, seed=noise, present=presence(inputs))[0]
                    for target in names}
        return fn

    seed_spec = {"seed": tf.TensorSpec([None, 2], tf.int32)}
    signatures["serving_default"] = (generate_all(False), {**all_inputs, **present_spec})
    signatures["generate_seeded"] = (generate_all(True), {**all_inputs, **present_spec, **seed_spec})

    def encode(inputs):
        post = model.encode({n: inputs[n] for n in names}, present=presence(inputs))
        out = {"loc": post["loc"], "logvar": post["logvar"]}
        if not model.aggregation.gaussian:  # a mixture (moe, mopoe): its components too
            components = post["components"]
            out.update(component_loc=components["loc"], component_logvar=components["logvar"],
                       component_weight=components["weight"])
        for name, private in post["private"].items():
            out[f"private_{name}_loc"], out[f"private_{name}_logvar"] = private["loc"], private["logvar"]
        return out

    def reconstruct(inputs):
        return dict(model.reconstruct({n: inputs[n] for n in names}, present=presence(inputs)))

    signatures["encode"] = (encode, {**all_inputs, **present_spec})
    signatures["reconstruct"] = (reconstruct, {**all_inputs, **present_spec})

    def pair_fn(source, target, seeded):
        def fn(inputs):
            noise = per_example_noise(inputs["seed"]) if seeded else None
            return {target: model.generate({source: inputs[source]}, target, num_samples=1, seed=noise)[0]}
        return fn

    for source in names:
        for target in names:
            if source == target:
                continue
            signatures[generate_signature_name(source, target)] = (pair_fn(source, target, False),
                                                                   {source: all_inputs[source]})
            signatures[generate_signature_name(source, target, seeded=True)] = (
                pair_fn(source, target, True), {source: all_inputs[source], **seed_spec})

    def predict_fn(source, target):
        def fn(inputs):
            noise = per_example_noise(inputs["seed"])
            return {target: model.predict_target({source: inputs[source]}, target, num_samples=PREDICT_SAMPLES,
                                                 seed=noise)}
        return fn

    for source in names:
        for target in names:
            if source != target and specs[target]["kind"] == "categorical":
                signatures[f"predict_{source}_to_{target}"] = (predict_fn(source, target),
                                                               {source: all_inputs[source], **seed_spec})
    return signatures


def example_inputs(model, spec_by_input, batch=1, seed=0):
    """Valid request inputs for a signature: what warm-up records and the pre-publish check feed.

    Values respect the model's input checks (a signature refuses NaN, pixels outside [0, 1] for
    Bernoulli modalities, class ids out of range, one-hot groups that do not sum to 1, presence
    values other than 0/1): uniform pixels, class ids ``0, 1, ...``, one-hot groups, every
    modality present, seed rows ``[seed, row]``, sample indices ``0, 1, ...``.
    """
    rng = np.random.default_rng(seed)
    out = {}
    for key, spec in spec_by_input.items():
        shape = [batch, *spec.shape[1:]]
        modality = model.modality_specs.get(key)
        if key == "present":
            out[key] = np.ones(shape, "float32")
        elif key == "seed":
            out[key] = np.stack([np.full(batch, seed), np.arange(batch)], axis=1).astype("int32")
        elif key == "sample_index" or (modality is not None and modality["kind"] == "categorical"):
            classes = modality["classes"] if modality is not None else batch
            out[key] = (np.arange(batch) % classes).astype(spec.dtype.as_numpy_dtype)
        elif modality is not None and modality["kind"] == "tabular":
            numeric = rng.standard_normal((batch, modality["numeric"]))
            groups = [np.eye(size)[rng.integers(0, size, batch)] for size in modality["categorical"]]
            out[key] = np.concatenate([numeric] + groups, axis=1).astype("float32")
        else:
            out[key] = rng.random(shape).astype(spec.dtype.as_numpy_dtype)
    return out


def signature_examples(model, signatures=None, batch=2):
    """``{signature_name: valid inputs}`` (`example_inputs`) for every signature of the model's export."""
    signatures = signatures if signatures is not None else build_signatures(model)
    return {sig_name: example_inputs(model, spec, batch=batch) for sig_name, (_, spec) in signatures.items()}


def model_card(model, name, signatures, dataset=None, metrics=None):
    lines = [f"# {name}", "", f"- zoo entry: `{model.entry}`", f"- dataset: {dataset or 'not recorded'}",
             "- modalities: " + ", ".join(f"`{n}` ({s['kind']})" for n, s in model.modality_specs.items()),
             f"- exported: {datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds')} "
             f"with TensorFlow {tf.__version__}, Keras {keras.__version__}", "", "## Metrics", ""]
    lines += [f"- {k}: {v}" for k, v in sorted((metrics or {}).items())] or ["- not evaluated"]
    lines += ["", "## Signatures", ""]
    for sig_name, (_, spec) in signatures.items():
        inputs = ", ".join(f"`{k}` {s.dtype.name}{list(s.shape)}" for k, s in spec.items())
        lines.append(f"- `{sig_name}`: {inputs}")
    return "\n".join(lines) + "\n"


def export_model(model, base, name=None, version=None, dataset=None, metrics=None, overwrite=False):
    """Writes ``BASE/NAME/VERSION/`` for TF Serving, verified with the session loader, atomically.

    Args:
        model: a `MIBModel`.
        base: the TF Serving base directory; ``BASE/models.config`` is written or updated.
        name: the served model name (default: the zoo entry).
        version: an integer, or None for the next version.
        dataset: dataset name recorded in the model card.
        metrics: ``{name: value}`` recorded in the model card.
        overwrite: replace an existing version.

    Returns:
        The path of the published version directory.

    Example:

    ```python
    path = mibzoo.export.export_model(model, "exports", "wyner_vae")
    ```
    """
    name = name or model.entry
    signatures = build_signatures(model)
    assets = {
        "zoo_config.json": json.dumps({"entry": model.entry, "model": model.get_config()}, indent=2),
        "model_card.md": model_card(model, name, signatures, dataset, metrics),
    }
    warmup = list(signature_examples(model, signatures, batch=1).items())
    checks = signature_examples(model, signatures, batch=2)
    return export_archive.export_signatures(base, name, version, model, signatures, assets=assets,
                                            warmup_requests=warmup, overwrite=overwrite, verify_feeds=checks)


def export_run(run_dir, base, name=None, version=None, overwrite=False):
    """Exports the final model of a training run directory (`mibzoo train`), in any process.

    The model is loaded through `mibzoo.experiment.load_run_model` (checked against the checksum
    its run recorded); the model card lists the run's dataset and the metrics of ``mibzoo evaluate``.
    """
    from mibzoo.experiment import load_run_model
    from mibzoo.run_records import read_json

    run_dir = pathlib.Path(run_dir)
    model = load_run_model(run_dir)
    run = read_json(run_dir / "run.json")
    metrics_path = run_dir / "metrics.json"
    metrics = read_json(metrics_path).get("metrics", {}) if metrics_path.is_file() else None
    flat = {k: v for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
    return export_model(model, base, name=name, version=version, dataset=run.get("dataset"), metrics=flat or None,
                        overwrite=overwrite)


def register(subparsers):
    """`mibzoo export RUN_DIR --base BASE [--name NAME] [--version N]`."""
    parser = subparsers.add_parser("export", help="export a trained run as a TF Serving SavedModel version")
    parser.add_argument("run_dir", help="a `mibzoo train` run directory (holds model.keras)")
    parser.add_argument("--base", required=True, help="TF Serving base directory (BASE/NAME/VERSION)")
    parser.add_argument("--name", default=None, help="served model name (default: the zoo entry)")
    parser.add_argument("--version", type=int, default=None, help="version number (default: next)")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing version")
    parser.set_defaults(func=_export_command)


def _export_command(args):
    if args.version is not None and args.version < 0:
        raise ValueError(f"--version {args.version}: expected a non-negative integer")
    try:
        path = export_run(args.run_dir, args.base, args.name, args.version, args.overwrite)
    except FileExistsError as err:
        raise FileExistsError(f"{err} (on the command line: --overwrite replaces it; without --version the "
                              "next version is written)") from None
    print(f"exported {path}")
    return 0

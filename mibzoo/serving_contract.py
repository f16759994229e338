"""What TF Serving expects of a base directory, shared by the exporter and the local server.

TF Serving's file-system source reads ``BASE/NAME/VERSION/``: a model name that can appear in a
URL (``/v1/models/NAME``), numeric version directories holding ``saved_model.pb`` (anything else,
such as a hidden temporary export, is ignored), the MetaGraph tagged ``serve``, predict-method
signatures with ``serving_default`` for requests that name none, warm-up records in
``VERSION/assets.extra/tf_serving_warmup_requests``, and ``BASE/models.config`` (a
``ModelServerConfig`` text proto) listing the models. `mibzoo.export_archive` writes that layout
and `mibzoo.serving.servables` reads it; both take the names and rules from here.
"""
import re
from pathlib import Path

import numpy as np

from mibzoo.files import atomic_path

SERVE_TAG = "serve"
DEFAULT_SIGNATURE = "serving_default"
PREDICT_METHOD = "tensorflow/serving/predict"
ASSETS_EXTRA = "assets.extra"
WARMUP_FILE = "tf_serving_warmup_requests"
MODELS_CONFIG = "models.config"
# Model and signature names end up in URLs (/v1/models/NAME) and tensor names.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")
# Signature input and output keys become JSON keys and tensor names.
KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
VERSION_RE = re.compile(r"^[0-9]+$")


class ServingContractError(RuntimeError):
    """An export breaks what TF Serving needs (see export/README.md); the message says what."""


def serving_protos():
    """``(predict_pb2, prediction_log_pb2, model_server_config_pb2)`` of tensorflow-serving-api."""
    from mibzoo.serving.protos import serving_apis

    apis = serving_apis()
    return apis.predict_pb2, apis.prediction_log_pb2, apis.model_server_config_pb2


def check_name(name, what):
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise ValueError(
            f"{what} {name!r}: expected letters, digits, '_', '.', '-' "
            "(starting with a letter or digit)"
        )


def check_version(version):
    if isinstance(version, bool) or not isinstance(version, (int, np.integer)) or version < 0:
        raise ValueError(f"version {version!r}: expected a non-negative integer or None")
    return int(version)


def list_versions(model_dir):
    """Returns the sorted integer versions under `model_dir` (TF Serving's view of it).

    Args:
        model_dir: ``BASE/NAME``.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return []
    return sorted(
        int(child.name)
        for child in model_dir.iterdir()
        if VERSION_RE.match(child.name) and child.is_dir()
    )


def next_version(model_dir):
    versions = list_versions(model_dir)
    return versions[-1] + 1 if versions else 1


def servable_versions(model_dir):
    """``{version: Path}`` of the versions under ``BASE/NAME`` that TF Serving would load:
    numeric directories with a ``saved_model.pb`` (temporary exports have other names)."""
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        return {}
    return {int(child.name): child for child in model_dir.iterdir()
            if VERSION_RE.match(child.name) and (child / "saved_model.pb").exists()}


def servable_models(base):
    """``{name: {version: Path}}`` of every model under `base` with at least one servable version
    (hidden directories and names TF Serving cannot serve are skipped)."""
    base = Path(base)
    if not base.is_dir():
        return {}
    found = {}
    for model_dir in base.iterdir():
        if model_dir.name.startswith(".") or not NAME_RE.match(model_dir.name) or not model_dir.is_dir():
            continue
        versions = servable_versions(model_dir)
        if versions:
            found[model_dir.name] = versions
    return found


def update_models_config(base, base_path_prefix="/models"):
    """Writes ``BASE/models.config`` listing every model directory under `base`.

    A model directory is a subdirectory (not hidden) holding at least one numeric version
    directory with a ``saved_model.pb``. Entries of an existing config are kept with their
    extra settings (version policy, labels) when the tensorflow-serving-api protos are
    installed; entries whose directory is gone are dropped.

    Args:
        base: the TF Serving base directory.
        base_path_prefix: where `base` is mounted inside the TF Serving container; each
            model's ``base_path`` is ``PREFIX/NAME``.

    Returns:
        The Path of the config file.
    """
    base = Path(base)
    base.mkdir(parents=True, exist_ok=True)
    prefix = base_path_prefix.rstrip("/") or "/"
    names = sorted(servable_models(base))
    path = base / MODELS_CONFIG
    header = (
        "# TF Serving model config (ModelServerConfig text proto), written by\n"
        "# mibzoo.serving_contract.update_models_config: one entry per model under the base\n"
        f"# directory. Load it with --model_config_file={_join(prefix, MODELS_CONFIG)}\n"
    )
    try:
        _, _, model_server_config_pb2 = serving_protos()
    except ImportError:
        model_server_config_pb2 = None
    if model_server_config_pb2 is None:
        body = "model_config_list {\n" + "".join(
            "  config {\n"
            f'    name: "{n}"\n'
            f'    base_path: "{_join(prefix, n)}"\n'
            '    model_platform: "tensorflow"\n'
            "  }\n"
            for n in names
        ) + "}\n"
    else:
        from google.protobuf import text_format

        config = model_server_config_pb2.ModelServerConfig()
        if path.exists():
            text_format.Parse(path.read_text(encoding="utf-8"), config)
            if config.WhichOneof("config") == "custom_model_config":
                raise ValueError(f"{path}: holds a custom_model_config; not rewriting it")
        kept = {c.name: c for c in config.model_config_list.config if c.name in names}
        fresh = model_server_config_pb2.ModelServerConfig()
        for n in names:
            entry = fresh.model_config_list.config.add()
            if n in kept:
                entry.CopyFrom(kept[n])
            entry.name = n
            entry.base_path = _join(prefix, n)
            entry.model_platform = "tensorflow"
        # `model_config_list {}` must be present even when empty, or TF Serving reads
        # an empty config as "no config list".
        fresh.model_config_list.SetInParent()
        body = text_format.MessageToString(fresh)
    _atomic_write(path, header + body)
    return path


def _join(prefix, name):
    return f"{prefix.rstrip('/')}/{name}"


def _atomic_write(path, text):
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


# --------------------------------------------------------------------------------------
# Verification

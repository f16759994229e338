"""The zoo registry: entries by name (`list_models`, `load`), built by `MIBModel`.

Entries are the JSON files in `zoo_configs/` (installed as the package data of
``mibzoo.zoo_configs``). Keras deserialization goes through the same class: `MIBModel` is
registered as ``mibzoo>MIBModel`` and its config is the entry's ``model`` section, so
``keras.saving.load_model`` rebuilds exactly what `load` built.
"""
import importlib.resources
import pathlib

from mibzoo.config import override_spec, read_zoo_file, read_zoo_spec
from mibzoo.errors import did_you_mean
# The registry serves both lookups by name and Keras deserialization: importing it registers
# mibzoo>MIBModel and its layers.
from mibzoo.model import MIBModel


def _config_dir():
    # Editable installs and source checkouts: the top-level folder; wheels: package data.
    local = pathlib.Path(__file__).resolve().parent.parent / "zoo_configs"
    if local.is_dir():
        return local
    return pathlib.Path(str(importlib.resources.files("mibzoo.zoo_configs")))


def config_path(name):
    """Path of the zoo file of entry ``name``; unknown names get a `ValueError` with suggestions."""
    names = list_models()
    if name not in names:
        raise ValueError(f"unknown zoo entry {name!r}.{did_you_mean(name, names)} Available entries: {', '.join(names)}")
    return _config_dir() / f"{name}.json"


def list_models():
    """Names of the zoo entries (one per config file in `zoo_configs/`), sorted."""
    return sorted(p.stem for p in _config_dir().glob("*.json"))


def describe(name):
    """The entry's metadata (title, reference, its Table 2 row, notes) and validated model section."""
    metadata, model = read_zoo_file(config_path(name))
    return {**metadata, "model": model}


def entry_config(name, **overrides):
    """The validated ``model`` section of entry ``name`` with ``overrides`` applied (no model built).

    Raises:
        ValueError: unknown entry (with suggestions).
        ConfigError: an override is malformed (naming it, the value and what is allowed).
    """
    return entry_spec(name, **overrides).config


def entry_spec(name, **overrides):
    """The `mibzoo.spec.ModelSpec` of entry ``name`` with ``overrides`` applied: the file is parsed
    (its errors name the file), then, with overrides, the merged section (errors name the override)."""
    _, spec = read_zoo_spec(config_path(name))
    if overrides:
        spec = override_spec(spec.config, overrides, f"mibzoo.load({name!r}) override")
    return spec


def load(name, **overrides):
    """Builds the zoo entry ``name`` as an `MIBModel`.

    Args:
        name: a zoo entry (`list_models()`), e.g. ``"wyner_vae"``.
        **overrides: `MIBModel` arguments that replace the entry's (``modalities=...``,
            ``shared=...``, ``private=...``, ...) or hyperparameters of the entry (``beta=4``).

    Returns:
        An uncompiled `MIBModel`.

    Example:

    ```python
    model = mibzoo.load("beta_vae", beta=4.0)
    ```
    """
    return MIBModel.from_spec(entry_spec(name, **overrides), entry=name)


def register(subparsers):
    """`mibzoo list`: the zoo entries with their Table 2 rows."""
    parser = subparsers.add_parser("list", help="list the zoo entries (Table 2 rows)")
    parser.set_defaults(func=_list_command)


def _list_command(args):
    for name in list_models():
        info = describe(name)
        row, model = info.get("table2", {}), info["model"]
        configured = "  ".join(f"{field}=" + ", ".join(f"[{w}, {t}]" for w, t in model[field])
                               for field in ("dist", "str_reg"))
        print(f"{name:11s} {info.get('title', '')}\n"
              f"{'':11s} Table 2: L_dist={row.get('L_dist', '')}  L_str_reg={row.get('L_str_reg', '') or '[]'}\n"
              f"{'':11s} config:  {configured}  modalities={list(model['modalities'])}")
    return 0

"""mibzoo: structured latent-variable generative models as a Keras 3 zoo.

Implements R. Zhang, M. Koyama, K. Ishiguro, "Learning Structured Latent Factors from Dependent
Data: A Generative Model Framework from Information-Theoretic Perspective", ICML 2020.

```python
import mibzoo
mibzoo.list_models()
model = mibzoo.load("wyner_vae")
```

Attributes are imported on first use (PEP 562), so ``import mibzoo`` (and the REST client in
`mibzoo.serving`) does not start TensorFlow until a model is needed.

``import mibzoo`` is enough for Keras to load a saved zoo model in any process: once ``keras`` is
imported (before or after mibzoo), mibzoo's serializable classes are registered, so
``keras.saving.load_model("model.keras")`` finds ``mibzoo>MIBModel`` without importing
`mibzoo.model` by hand.
"""
import importlib
import warnings

import wrapt

__version__ = "0.1.0"

_LAZY = {
    "load": ("mibzoo.registry", "load"),
    "list_models": ("mibzoo.registry", "list_models"),
    "describe": ("mibzoo.registry", "describe"),
    "MIBModel": ("mibzoo.model", "MIBModel"),
    "compare": ("mibzoo.compare", "compare"),
}
_SUBMODULES = ("data", "export", "serving", "estimators", "metrics")

__all__ = sorted(_LAZY) + list(_SUBMODULES) + ["__version__"]


def __getattr__(name):
    if name in _LAZY:
        module, attribute = _LAZY[name]
        value = getattr(importlib.import_module(module), attribute)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"mibzoo.{name}")
    else:
        raise AttributeError(f"module 'mibzoo' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))


def _register_keras_objects(_keras):
    # Importing the model module registers MIBModel and the layers it is built from with Keras.
    try:
        importlib.import_module("mibzoo.model")
    except Exception as err:  # keep `import keras` working; loading a zoo model will then say why
        warnings.warn(f"mibzoo could not register its Keras classes ({type(err).__name__}: {err}); "
                      "keras.saving.load_model cannot load zoo models in this process", RuntimeWarning)


wrapt.register_post_import_hook(_register_keras_objects, "keras")

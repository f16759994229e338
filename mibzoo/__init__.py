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
import importlib.abc
import sys
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


def _mibzoo_module_initializing():
    # True while a mibzoo submodule is still executing its body (``__spec__._initializing`` is set
    # by importlib for exactly that span). The package itself is left out: the hook is registered
    # on its last line, when everything the import of mibzoo.model needs from it exists.
    return any(name.startswith("mibzoo.") and getattr(getattr(module, "__spec__", None), "_initializing", False)
               for name, module in list(sys.modules.items()))


def _import_model_module(quiet_if_circular=False):
    # Importing the model module registers MIBModel and the layers it is built from with Keras.
    # Returns whether it worked.
    try:
        importlib.import_module("mibzoo.model")
        return True
    except ImportError as err:
        if quiet_if_circular and "partially initialized" in str(err):
            return False
        error = err
    except Exception as err:  # keep `import keras` working; loading a zoo model will then say why
        error = err
    warnings.warn(f"mibzoo could not register its Keras classes ({type(error).__name__}: {error}); "
                  "keras.saving.load_model cannot load zoo models in this process", RuntimeWarning)
    return False


class _RegisterWhenImportsSettle(importlib.abc.MetaPathFinder):
    """Runs the registration at the first import after every mibzoo submodule has finished loading.

    This finder never finds anything: it only waits for the in-flight imports to settle, then
    registers once and removes itself.
    """

    def find_spec(self, fullname, path=None, target=None):
        if not _mibzoo_module_initializing():
            try:
                sys.meta_path.remove(self)
            except ValueError:  # another thread got here first
                return None
            _import_model_module()
        return None


def _register_keras_objects(_keras):
    # Keras is usually first imported by a mibzoo module part-way through its body. Registering
    # then works unless mibzoo.model needs a name that an in-flight module has not defined yet; in
    # that case wait for the in-flight imports to settle (mibzoo's own loading paths import
    # mibzoo.model themselves, so only a bare keras.saving.load_model right after such an import
    # relies on the wait).
    if not _mibzoo_module_initializing():
        _import_model_module()
    elif not _import_model_module(quiet_if_circular=True):
        sys.meta_path.insert(0, _RegisterWhenImportsSettle())


wrapt.register_post_import_hook(_register_keras_objects, "keras")

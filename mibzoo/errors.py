"""Error types that say what was wrong, where, and what is allowed."""
import difflib
import re

# A failed input check inside a TensorFlow graph (a compiled training step, an exported
# signature run by TF Serving) can only raise TensorFlow's own error, whose text is a trace
# of the graph. The check's message travels between these markers so that `fit`, the local
# server and clients can give back the message alone.
INPUT_ERROR_OPEN, INPUT_ERROR_CLOSE = "<<mibzoo-input-error:", ":mibzoo-input-error>>"
_INPUT_ERROR_RE = re.compile(re.escape(INPUT_ERROR_OPEN) + r"(.*?)" + re.escape(INPUT_ERROR_CLOSE), re.S)


class ConfigError(ValueError):
    """A zoo config, an override or a modality spec is malformed.

    The message names the source (file or "override"), the field path, the
    bad value and what is allowed, e.g.::

        zoo_configs/wyner_vae.json: field 'latent.shared[0].size': got -3,
        expected a positive integer
    """

    def __init__(self, source, field, value, allowed):
        self.source = source
        self.field = field
        self.value = value
        self.allowed = allowed
        super().__init__(f"{source}: field '{field}': got {value!r}, expected {allowed}")


class InputError(ValueError):
    """A batch handed to a model does not match the model's modalities."""


class NoInferenceNetworkError(ValueError):
    """The model has no inference network (G^q is empty: GAN, InfoGAN), so it cannot encode."""


def did_you_mean(name, choices, cutoff=0.5):
    """``" Did you mean 'x'?"`` for the closest of ``choices`` to an unknown ``name``, else ``""``."""
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=cutoff)
    return f" Did you mean {close[0]!r}?" if close else ""


def tagged_input_error(message):
    """``message`` between the input-error markers (the text of a graph assertion)."""
    return INPUT_ERROR_OPEN + message + INPUT_ERROR_CLOSE


def find_input_error(text):
    """The message of a tagged input error inside a TensorFlow error's text, or None."""
    found = _INPUT_ERROR_RE.search(str(text))
    if not found:
        return None
    return found.group(1).replace("\\'", "'").replace("\\", "")

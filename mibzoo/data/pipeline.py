"""``tf.data`` pipelines over :class:`~mibzoo.data.catalog.Examples` (the only TensorFlow code here).

Batches are dicts ``{key: tensor}``: images float32 in [0, 1] (uint8 tables divided by 255),
integer columns int32, float columns float32. :func:`to_numpy` applies the same conversions in
numpy, so ``load`` and ``load_arrays`` give identical values.
"""
import numpy as np


def _convert_np(array):
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255.0)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.int32)
    return array.astype(np.float32)


def _example_nbytes(examples):
    """Bytes of one decoded example (4 bytes per value: float32 or int32)."""
    total = 0
    for spec in examples.outputs.values():
        source = examples.tables[spec[0]] if len(spec) == 2 else examples.columns[spec[0]]
        total += 4 * int(np.prod(source.shape[1:], dtype=np.int64))
    return total


def decoded_nbytes(examples):
    """Bytes that all decoded examples of ``examples`` take."""
    return len(examples) * _example_nbytes(examples)


def to_numpy(examples):
    """Materializes every output of ``examples`` as numpy arrays (one row per example)."""
    out = {}
    for key, spec in examples.outputs.items():
        if len(spec) == 1:
            value = examples.columns[spec[0]]
        else:
            value = np.take(examples.tables[spec[0]], examples.columns[spec[1]], axis=0)
        out[key] = _convert_np(value)
    return out


def make_dataset(examples, batch_size, shuffle, seed, cache, drop_remainder):
    """Builds the batched ``tf.data.Dataset`` of dict batches.

    Args:
        examples: the split's :class:`Examples` (already limited).
        batch_size: positive int.
        shuffle: reshuffle every epoch with ``seed`` (a full-size buffer: exact uniform order).
        seed: int; the same seed gives the same batches in the same order, epoch after epoch.
        cache: True caches the per-example stage in memory and decodes per batch (decoding is
            a gather from in-memory uint8 tables, faster than reading decoded floats back: 0.3 s
            per MNIST epoch either way, and the first batch comes at once instead of after the
            whole split is decoded); a str caches decoded examples in that file (a
            ``tf.data`` file cache, for pipelines extended with costly per-example maps);
            False never caches.
        drop_remainder: drop the last partial batch (static batch dimension).
    """
    import tensorflow as tf

    n = len(examples)
    needed = sorted({spec[-1] for spec in examples.outputs.values()})
    columns = {name: examples.columns[name] for name in needed}
    tables = {name: tf.constant(table) for name, table in examples.tables.items()}

    def convert(value):
        if value.dtype == tf.uint8:
            return tf.cast(value, tf.float32) / 255.0
        if value.dtype.is_integer:
            return tf.cast(value, tf.int32)
        return tf.cast(value, tf.float32)

    def decode(cols):
        # Works on one example or a batch: gathers along the first axis either way.
        out = {}
        for key, spec in examples.outputs.items():
            value = cols[spec[0]] if len(spec) == 1 else tf.gather(tables[spec[0]], cols[spec[1]])
            out[key] = convert(value)
        return out

    ds = tf.data.Dataset.from_tensor_slices(columns)
    decoded_first = isinstance(cache, str)
    if decoded_first:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).cache(cache)
    elif cache:
        ds = ds.cache()
    if shuffle and n > 1:
        ds = ds.shuffle(n, seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=drop_remainder)
    if not decoded_first:
        ds = ds.map(decode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    options = tf.data.Options()
    options.deterministic = True
    return fixed_prefetch(ds).with_options(options)


PREFETCH_BATCHES = 2


def fixed_prefetch(ds, batches=PREFETCH_BATCHES):
    """``ds`` prefetching ``batches`` batches, with tf.data's autotuning off.

    Why: Keras' ``fit`` makes a new iterator every epoch over a finite dataset and releases the
    previous one. With autotuning on (tf.data's default), releasing it made 25 of 58 epoch starts
    wait 1.0–1.5 s on a 2-core CPU (py-spy: the main thread idle in native code at ``fit``'s loop
    over batches; with every iterator kept alive, or with autotuning off, none waited). Training is
    the same to the bit, since autotuning sets buffer sizes and parallelism, not values or order: a
    30-epoch `ood_cmnist` fit on Colored-MNIST took 50–53 s against 62–63 s, with identical weights
    (benchmarks/epoch_start_stall.py). A map's ``num_parallel_calls=tf.data.AUTOTUNE`` then runs
    with tf.data's default parallelism.

    Args:
        ds: a batched ``tf.data.Dataset``.
        batches: how many batches to prepare ahead of the training step (a positive int).
    """
    if isinstance(batches, bool) or not isinstance(batches, (int, np.integer)) or batches < 1:
        raise ValueError(f"fixed_prefetch: batches={batches!r}; expected a positive number of batches")
    import tensorflow as tf

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.prefetch(batches).with_options(options)


def shuffled_batches(arrays, batch_size, seed):
    """In-memory ``arrays`` (``{key: array}`` or nested dicts of equal-length arrays) as training
    batches: reshuffled every epoch with ``seed`` (a buffer of the whole set: an exact uniform order),
    batched, and ended in `fixed_prefetch`."""
    import tensorflow as tf

    ds = tf.data.Dataset.from_tensor_slices(arrays)
    ds = ds.shuffle(int(ds.cardinality()), seed=seed, reshuffle_each_iteration=True)
    return fixed_prefetch(ds.batch(batch_size))

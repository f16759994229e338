"""Small generated raw files in the original formats, for tests and offline demos.

:func:`write_raw_fixtures` writes MNIST CSVs, SVHN ``.mat`` (or ``.npz`` without scipy), Adult
and German text files into ``DATA_DIR/<group>/raw/`` exactly where hand-provided files go, so
the real readers, preparation, checksums and pipelines run on them without network::

    from mibzoo.data.fixtures import write_raw_fixtures
    write_raw_fixtures(tmp_path)
    ds = mibzoo.data.load("mnist_plus1", data_dir=tmp_path, sources=["local"])

The images are learnable: each digit is a fixed pattern of bright blocks plus noise.
"""
import gzip
from pathlib import Path

import numpy as np

from mibzoo.data import cache, tabular

DEFAULT_SIZES = {"mnist": (1200, 200), "svhn": (300, 100), "adult": (300, 100), "german": 100}


def digit_images(digits, size, channels, rng):
    """uint8 images ``[N, size, size, channels]``: a digit-specific block pattern plus noise."""
    n = len(digits)
    images = rng.integers(0, 40, size=(n, size, size, channels)).astype(np.int32)
    block = size // 4
    for k, digit in enumerate(digits):
        for bit in range(4):  # the digit's 4-bit code picks which quadrant blocks are bright
            if (int(digit) + 1) >> bit & 1:
                r, c = divmod(bit, 2)
                images[k, r * 2 * block + block // 2: r * 2 * block + block // 2 + block,
                       c * 2 * block + block // 2: c * 2 * block + block // 2 + block] += 200
    return np.clip(images, 0, 255).astype(np.uint8)


def _balanced_digits(n, rng):
    return rng.permutation(np.arange(n) % 10)


def write_mnist(raw_dir, n_train, n_test, rng, idx=False):
    """MNIST CSVs (``mnist_train.csv``, ``mnist_test.csv``, with header) or gzipped IDX files."""
    for split, n in (("train", n_train), ("test", n_test)):
        digits = _balanced_digits(n, rng)
        images = digit_images(digits, 28, 1, rng)[..., 0]
        if idx:
            prefix = "train" if split == "train" else "t10k"
            header = bytes([0, 0, 8, 3]) + b"".join(d.to_bytes(4, "big") for d in images.shape)
            cache.write_bytes_atomic(raw_dir / f"{prefix}-images-idx3-ubyte.gz",
                                     gzip.compress(header + images.tobytes()))
            header = bytes([0, 0, 8, 1]) + n.to_bytes(4, "big")
            cache.write_bytes_atomic(raw_dir / f"{prefix}-labels-idx1-ubyte.gz",
                                     gzip.compress(header + digits.astype(np.uint8).tobytes()))
            continue
        lines = ["label," + ",".join(f"{r}x{c}" for r in range(1, 29) for c in range(1, 29))]
        table = np.concatenate([digits[:, None], images.reshape(n, -1)], axis=1)
        lines += [",".join(map(str, row)) for row in table.tolist()]
        cache.write_bytes_atomic(raw_dir / f"mnist_{split}.csv", ("\n".join(lines) + "\n").encode())


def write_svhn(raw_dir, n_train, n_test, rng, npz=None):
    """SVHN as the official ``.mat`` files (needs scipy) or as ``.npz`` (``npz=True``)."""
    if npz is None:
        import importlib.util
        npz = importlib.util.find_spec("scipy") is None  # .mat needs scipy
    for split, n in (("train", n_train), ("test", n_test)):
        digits = _balanced_digits(n, rng)
        images = digit_images(digits, 32, 3, rng)
        if npz:
            with cache.atomic_path(raw_dir / f"svhn_{split}.npz") as tmp:
                with open(tmp, "wb") as f:
                    np.savez(f, x=images, y=digits.astype(np.uint8))
        else:
            import scipy.io
            labels = np.where(digits == 0, 10, digits).astype(np.uint8)[:, None]  # SVHN: 0 -> 10
            with cache.atomic_path(raw_dir / f"{split}_32x32.mat") as tmp:
                scipy.io.savemat(tmp, {"X": np.transpose(images, (1, 2, 3, 0)), "y": labels}, format="5")


def _adult_rows(n, rng):
    rows = []
    for _ in range(n):
        sex = rng.choice(tabular.ADULT_SEX)
        age = int(rng.integers(17, 90))
        hours = int(rng.integers(10, 80))
        rich = (age > 35) + (hours > 45) + (sex == "Male") + rng.random() > 1.5
        row = {"age": age, "fnlwgt": int(rng.integers(20000, 900000)),
               "education-num": int(rng.integers(1, 17)),
               "capital-gain": int(rng.choice([0, 0, 0, 2174, 15024])),
               "capital-loss": int(rng.choice([0, 0, 0, 1902])), "hours-per-week": hours,
               "sex": sex, "income": ">50K" if rich else "<=50K"}
        for name, values in tabular.ADULT_VOCAB.items():
            row[name] = values[int(rng.integers(len(values)))]
        if rng.random() < 0.05:  # missing values, as in the real file ('?'), dropped on reading
            row["occupation"] = "?"
        rows.append(", ".join(str(row[c]) for c in tabular.ADULT_COLUMNS))
    return rows


def write_adult(raw_dir, n_train, n_test, rng):
    """``adult.data`` and ``adult.test`` (with the real test file's first line and trailing dots)."""
    train = _adult_rows(n_train, rng)
    test = [row + "." for row in _adult_rows(n_test, rng)]
    cache.write_bytes_atomic(raw_dir / "adult.data", ("\n".join(train) + "\n\n").encode())
    cache.write_bytes_atomic(raw_dir / "adult.test", ("|1x3 Cross validator\n" + "\n".join(test) + "\n").encode())


def write_german(raw_dir, n, rng):
    """``german.data``: 20 space-separated attribute codes and the credit class (1 good, 2 bad)."""
    numeric_ranges = {"duration": (4, 72), "credit_amount": (250, 18424), "installment_rate": (1, 5),
                      "residence_since": (1, 5), "age": (19, 75), "existing_credits": (1, 5),
                      "num_dependents": (1, 3)}
    lines = []
    for _ in range(n):
        row = {name: int(rng.integers(*span)) for name, span in numeric_ranges.items()}
        for name, values in tabular.GERMAN_VOCAB.items():
            row[name] = values[int(rng.integers(len(values)))]
        row["credit"] = "1" if rng.random() < 0.7 else "2"
        lines.append(" ".join(str(row[c]) for c in tabular.GERMAN_COLUMNS))
    cache.write_bytes_atomic(raw_dir / "german.data", ("\n".join(lines) + "\n").encode())


def write_raw_fixtures(data_dir, groups=None, sizes=None, seed=0):
    """Writes small raw files for the given groups into ``data_dir/<group>/raw/``.

    Args:
        data_dir: the data directory to fill (e.g. a pytest ``tmp_path``).
        groups: raw groups to write (default: all of "mnist", "svhn", "adult", "german").
        sizes: ``{group: (n_train, n_test)}`` overrides (German: total rows); see DEFAULT_SIZES.
        seed: generator seed.

    Returns:
        The data directory as a Path.
    """
    data_dir = Path(data_dir)
    sizes = {**DEFAULT_SIZES, **(sizes or {})}
    writers = {"mnist": lambda d, s, r: write_mnist(d, *s, r), "svhn": lambda d, s, r: write_svhn(d, *s, r),
               "adult": lambda d, s, r: write_adult(d, *s, r), "german": lambda d, s, r: write_german(d, s, r)}
    for k, group in enumerate(groups or list(writers)):
        if group not in writers:
            raise ValueError(f"write_raw_fixtures: unknown group {group!r}, expected one of {list(writers)}")
        raw_dir = data_dir / group / "raw"
        raw_dir.mkdir(parents=True, exist_ok=True)
        writers[group](raw_dir, sizes[group], np.random.default_rng([seed, k]))
    return data_dir

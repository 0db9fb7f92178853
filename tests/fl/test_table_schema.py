"""A consortium's own tables: drafting a schema from a CSV, importing a site's CSV under it."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fedchain.errors import DataSchemaError
from fedchain.fl.datasets import Dataset, load_dataset
from fedchain.fl.schema import (
    ColumnSpec,
    DataSchema,
    TableSpec,
    load_client_data,
    read_client_data_digest,
)
from fedchain.fl.table import TableImport, import_table, infer_table_schema, parse_header, write_client_file

SMALL = """age [years],sex,smoker,weight [kg],diagnosis
54,F,yes,70.5,benign
61,M,no,,malignant
47,F,no,82,benign
70,M,yes,90.2,malignant
"""


def write(tmp_path: Path, text: str, name: str = "site.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def small(tmp_path: Path) -> DataSchema:
    return infer_table_schema(write(tmp_path, SMALL, "draft.csv"))


# --- drafting -----------------------------------------------------------------------------
def test_infer_drafts_types_units_ranges_categories_and_missing_policy(small: DataSchema) -> None:
    table = small.table
    assert table is not None
    age, sex, smoker, weight = table.columns
    assert (age.type, age.name, age.header, age.unit, age.range) == ("numeric", "age", "age [years]", "years", (47.0, 70.0))
    assert (age.shift, age.scale) == (58.0, 8.51469)  # mean and population std, 6 significant digits
    assert (sex.type, sex.categories, sex.unit) == ("categorical", ("F", "M"), None)
    assert smoker.type == "boolean"
    assert (weight.type, weight.unit, weight.range) == ("numeric", "kg", (70.5, 90.2))
    assert (weight.missing, weight.impute) == ("impute", 82.0)  # the only column with a missing cell: its median
    assert [c.missing for c in (age, sex, smoker)] == ["refuse"] * 3
    assert (table.label, table.classes) == ("diagnosis", ("benign", "malignant"))
    assert small.feature_names == ("age", "sex=F", "sex=M", "smoker", "weight")
    assert small.labels == (0, 1) and small.label_names == ("benign", "malignant")
    assert small.normalisation == "table" and small.feature_shape == (5,)
    assert small.normalisation_stats == ((58.0, 8.51469), (0.0, 1.0), (0.0, 1.0), (0.0, 1.0), (80.9, 8.08002))
    assert small.value_ranges[0] == ((47.0 - 58.0) / 8.51469, (70.0 - 58.0) / 8.51469)


def test_table_schema_round_trips_with_its_digest_and_the_table_is_digested(small: DataSchema) -> None:
    again = DataSchema.from_json(small.to_json())
    assert again == small and again.digest() == small.digest()
    assert "table" in json.loads(small.to_json())
    assert dataclasses.replace(small, table=None).digest() != small.digest()


def test_derived_fields_may_be_left_out_but_must_not_disagree(small: DataSchema) -> None:
    doc = small.to_dict()
    short = {k: doc[k] for k in ("dataset", "table", "range_tolerance", "version")}
    assert DataSchema.from_dict(short).digest() == small.digest()
    doc["normalisation_stats"][0] = [50.0, 8.51469]
    with pytest.raises(DataSchemaError, match="normalisation_stats disagrees with the table"):
        DataSchema.from_dict(doc)
    short["table"]["columns"][0]["shift"] = 50.0  # the consortium edits a constant: the digest follows
    edited = DataSchema.from_dict(short)
    assert edited.normalisation_stats[0] == (50.0, 8.51469) and edited.digest() != small.digest()


def test_infer_options_label_drop_categorical_and_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "id,zip,score,label\na1,1010,1.5,x\na2,2020,2.5,y\na3,1010,,x\n")
    s = infer_table_schema(path, drop=["id"], categorical=["zip"], missing="refuse", name="clinic")
    assert s.table is not None and s.dataset == "clinic"
    assert s.table.label == "label" and s.table.ignored_columns == ("id",)
    assert [(c.header, c.type, c.missing) for c in s.table.columns] == [
        ("zip", "categorical", "refuse"), ("score", "numeric", "refuse")
    ]  # fmt: skip
    assert s.table.columns[0].categories == ("1010", "2020")
    everywhere = infer_table_schema(path, drop=["id"], missing="impute")
    assert everywhere.table is not None and all(c.missing == "impute" for c in everywhere.table.columns)


def test_infer_refuses_an_identifier_column_and_unknown_names(tmp_path: Path) -> None:
    path = write(tmp_path, "".join(["id,v,y\n"] + [f"p{i},{i},{i % 2}\n" for i in range(60)]))
    with pytest.raises(DataSchemaError, match=r"'id' has 60 distinct non-numeric values.*--drop"):
        infer_table_schema(path)
    with pytest.raises(DataSchemaError, match="label column 'nope' is not in the table"):
        infer_table_schema(path, label="nope")
    assert infer_table_schema(path, drop=["id"]).num_features == 1


def test_infer_names_the_typos_of_a_mostly_numeric_column(tmp_path: Path) -> None:
    typo = write(tmp_path, "dose [mg],y\n1.5,0\n2.5,1\n12.5x,0\n4.5,1\n")
    with pytest.raises(DataSchemaError, match=r"line 4, column 'dose \[mg\]': '12\.5x', expected a number") as info:
        infer_table_schema(typo)
    assert "mostly numeric" in str(info.value) and "--categorical" in str(info.value)
    forced = infer_table_schema(typo, categorical=["dose [mg]"])
    assert forced.table is not None and forced.table.columns[0].type == "categorical"
    with pytest.raises(DataSchemaError, match=r"line 3, column '\*': '3 fields', expected 2 fields"):
        infer_table_schema(write(tmp_path, "dose [mg],y\n1.5,0\n2,5,1\n3.0,0\n4.5,1\n"))  # a decimal comma


def test_infer_needs_labels_on_every_row_and_two_classes(tmp_path: Path) -> None:
    with pytest.raises(DataSchemaError, match=r"line 3, column 'y': 'NA', expected a label"):
        infer_table_schema(write(tmp_path, "a,y\n1,0\n2,NA\n3,1\n"))
    with pytest.raises(DataSchemaError, match="one class only"):
        infer_table_schema(write(tmp_path, "a,y\n1,0\n2,0\n"))


def test_numeric_classes_sort_numerically_and_semicolons_and_bom_are_read(tmp_path: Path) -> None:
    path = tmp_path / "eu.csv"
    path.write_bytes("\ufeffa;grade\n1.5;10\n2.5;9\n3.5;10\n".encode())
    s = infer_table_schema(path)
    assert s.table is not None and s.table.classes == ("9", "10") and s.feature_names == ("a",)


def test_parse_header_reads_a_bracketed_unit() -> None:
    assert parse_header("weight [kg]") == ("weight", "kg")
    assert parse_header(" glucose  [mmol/L] ") == ("glucose", "mmol/L")
    assert parse_header("plain") == ("plain", None)


def test_parquet_is_refused_with_a_clear_message(tmp_path: Path) -> None:
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1\x00\x00")
    with pytest.raises(DataSchemaError, match="Parquet.*export the table as CSV"):
        infer_table_schema(path)


@pytest.mark.parametrize(
    "change, message",
    [
        ({"type": "numeric", "range": None}, "a numeric column needs a finite range"),
        ({"type": "numeric", "range": (0.0, 1.0), "scale": 0.0}, "scale > 0"),
        ({"type": "categorical", "categories": ("a",), "missing": "impute", "impute": "b"}, "one of the categories"),
        ({"type": "boolean", "missing": "impute", "impute": 1}, "true or false"),
        ({"type": "numeric", "range": (0.0, 1.0), "missing": "impute", "impute": 5.0}, r"5\.0 lies outside .*\[0, 1\]"),
        ({"type": "boolean", "categories": ("a",)}, "only a categorical column has categories"),
        ({"type": "text"}, "type must be one of"),
    ],
)
def test_column_spec_refuses_inconsistent_fields(change: dict[str, object], message: str) -> None:
    with pytest.raises(DataSchemaError, match=message):
        ColumnSpec(**{"name": "c", "header": "c", "type": "boolean", **change})  # type: ignore[arg-type]


def test_table_spec_refuses_a_category_that_is_a_missing_token() -> None:
    col = ColumnSpec(name="region", header="region", type="categorical", categories=("EU", "NA"))
    with pytest.raises(DataSchemaError, match=r"categories \['NA'\] are missing-value tokens"):
        TableSpec(columns=(col,), label="y", classes=("0", "1"))
    TableSpec(columns=(col,), label="y", classes=("0", "1"), missing_tokens=("",))  # stated otherwise: fine


# --- importing ------------------------------------------------------------------------------
def test_import_applies_exactly_the_schemas_preprocessing(tmp_path: Path, small: DataSchema) -> None:
    site = write(tmp_path, "diagnosis,weight [kg],sex,age [years],smoker\nmalignant,,M,61,TRUE\nbenign,75,F,40,n\n")
    imported = import_table(site, small)
    expected = np.array(
        [
            [(61 - 58.0) / 8.51469, 0.0, 1.0, 1.0, (82.0 - 80.9) / 8.08002],  # weight imputed with the schema's 82.0
            [(40 - 58.0) / 8.51469, 1.0, 0.0, 0.0, (75 - 80.9) / 8.08002],
        ],
        dtype=np.float32,
    )
    np.testing.assert_array_equal(imported.x, expected)
    assert imported.x.dtype == np.float32 and imported.y.tolist() == [1, 0]
    assert imported.imputed == {"weight [kg]": 1}
    assert imported.label_counts == {"benign": 1, "malignant": 1}


BAD_ROWS = [
    ("54,X,yes,70,benign", "sex", "'X', expected one of the categories 'F', 'M'"),
    ("5a4,F,yes,70,benign", "age [years]", "'5a4', expected a finite number in years"),
    ("inf,F,yes,70,benign", "age [years]", "'inf', expected a finite number in years"),
    ("200,F,yes,70,benign", "age [years]", r"'200', expected a value in \[35\.5, 81\.5\] years"),
    (",F,yes,70,benign", "age [years]", "'', expected a value \\(the schema refuses missing values"),
    ("54,F,maybe,70,benign", "smoker", "'maybe', expected true"),
    ("54,F,yes,70,unknown", "diagnosis", "'unknown', expected one of the classes 'benign', 'malignant'"),
    ("54,F,yes,70,NA", "diagnosis", "'NA', expected a label \\(labels are never imputed\\)"),
    ("54,F,yes,70", "*", "'4 fields', expected 5 fields"),
]


@pytest.mark.parametrize("row, column, message", BAD_ROWS)
def test_a_bad_row_is_reported_by_line_column_value_and_expectation(
    tmp_path: Path, small: DataSchema, row: str, column: str, message: str
) -> None:
    site = write(tmp_path, SMALL.splitlines()[0] + "\n47,M,no,80,benign\n" + row + "\n")
    with pytest.raises(DataSchemaError) as info:
        import_table(site, small)
    text = str(info.value)
    assert "1 problem(s) in 1 row(s); nothing was written" in text
    assert f"line 3, column {column!r}: " in text
    assert len(re.findall(message, text)) == 1, text


def test_a_value_within_the_tolerance_is_accepted(tmp_path: Path, small: DataSchema) -> None:
    # the agreed age range is [47, 70], widened by 0.5 x its width (23) on each side -> [35.5, 81.5]
    site = write(tmp_path, SMALL.splitlines()[0] + "\n81,M,no,80,benign\n36,F,no,80,malignant\n")
    assert import_table(site, small).x.shape == (2, 5)


def test_the_report_lists_at_most_n_problems_and_counts_the_rest(tmp_path: Path, small: DataSchema) -> None:
    rows = "".join(f"{40 + i},Z,yes,70,benign\n" for i in range(30))
    with pytest.raises(DataSchemaError) as info:
        import_table(write(tmp_path, SMALL.splitlines()[0] + "\n" + rows), small, max_listed=5)
    lines = str(info.value).splitlines()
    assert lines[0].endswith("30 problem(s) in 30 row(s); nothing was written")
    assert len([x for x in lines if x.startswith("  line ")]) == 5
    assert lines[-1] == "  ... and 25 more problem(s)"
    assert lines[1].startswith("  line 2, column 'sex'")


def test_missing_and_unknown_columns_are_named(tmp_path: Path, small: DataSchema) -> None:
    with pytest.raises(DataSchemaError, match=r"lacks the schema's column\(s\) \['smoker'\]"):
        import_table(write(tmp_path, "age [years],sex,weight [kg],diagnosis\n50,F,70,benign\n"), small)
    extra = write(tmp_path, SMALL.splitlines()[0] + ",mrn\n50,F,no,70,benign,123\n")
    with pytest.raises(DataSchemaError, match=r"column\(s\) \['mrn'\] that the schema does not describe"):
        import_table(extra, small)
    assert import_table(extra, small, drop=["mrn"]).x.shape == (1, 5)


def test_a_schema_without_a_table_cannot_import(tmp_path: Path) -> None:
    with pytest.raises(DataSchemaError, match="describes no table"):
        import_table(write(tmp_path, SMALL), load_dataset("breast_cancer").schema)


# --- two sites, one schema ---------------------------------------------------------------------
def test_two_sites_get_identical_encodings_and_loadable_files(tmp_path: Path, small: DataSchema) -> None:
    # site B orders its columns differently and its own statistics differ; shared row: 55,F,yes,75,benign
    site_a = write(tmp_path, SMALL.splitlines()[0] + "\n55,F,yes,75,benign\n48,M,no,71,malignant\n", "a.csv")
    site_b = write(tmp_path, "smoker,diagnosis,age [years],weight [kg],sex\n"
                             "1,malignant,69,95,M\nyes,benign,55,75,F\n0,malignant,68,93,M\n", "b.csv")  # fmt: skip
    a, b = import_table(site_a, small), import_table(site_b, small)
    np.testing.assert_array_equal(a.x[0], b.x[1])
    assert a.x[0].tolist() == pytest.approx([(55 - 58.0) / 8.51469, 1.0, 0.0, 1.0, (75 - 80.9) / 8.08002])
    paths = [write_client_file(tmp_path / f"client_{i}.npz", imp) for i, imp in enumerate((a, b))]
    for path, imp in zip(paths, (a, b), strict=True):
        x, y = load_client_data(path, small)
        np.testing.assert_array_equal(x, imp.x)
        assert y.tolist() == imp.y.tolist() and read_client_data_digest(path) == small.digest()
    other = DataSchema.from_dict({**small.to_dict(), "range_tolerance": 1.0})
    with pytest.raises(DataSchemaError, match="was prepared for schema"):
        load_client_data(paths[0], other)


@pytest.mark.parametrize(
    "row, message",
    [
        ([0.0, 0.5, 0.5, 1.0, 0.0], r"column 'sex' is not a one-hot encoding of its categories; first: sample 0"),
        ([0.0, 1.0, 1.0, 1.0, 0.0], r"column 'sex' is not a one-hot encoding"),
        ([0.0, 0.0, 1.0, 0.5, 0.0], r"column 'smoker' is not 0 or 1; first: sample 0, features \['smoker'\] = \[0\.5\]"),
    ],
)
def test_a_file_that_breaks_the_tables_encoding_is_refused_on_load(
    tmp_path: Path, small: DataSchema, row: list[float], message: str
) -> None:
    path = tmp_path / "forged.npz"
    np.savez(path, x=np.array([row], np.float32), y=np.zeros(1, np.int64),
             schema_digest=np.frombuffer(small.digest(), np.uint8))  # fmt: skip
    with pytest.raises(DataSchemaError, match=message):
        load_client_data(path, small)
    good = tmp_path / "good.npz"
    np.savez(good, x=np.array([[0.0, 0.0, 1.0, 1.0, 0.0]], np.float32), y=np.zeros(1, np.int64),
             schema_digest=np.frombuffer(small.digest(), np.uint8))  # fmt: skip
    assert load_client_data(good, small)[0].shape == (1, 5)


def test_nothing_is_written_when_the_data_file_cannot_be_saved(tmp_path: Path, small: DataSchema) -> None:
    target = tmp_path / "client.npz"
    target.write_bytes(b"the previous file")
    bad = TableImport(x=np.full((1, 5), np.nan, np.float32), y=np.zeros(1, np.int64), schema=small, imputed={})
    with pytest.raises(DataSchemaError, match="NaN"):
        write_client_file(target, bad)
    assert target.read_bytes() == b"the previous file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["client.npz", "draft.csv"]


# --- a task on the table -----------------------------------------------------------------------
def test_a_task_on_a_table_schema_trains_the_default_tabular_model(tmp_path: Path) -> None:
    from fedchain.fl import client
    from fedchain.fl.models import build_model, default_model_spec, evaluate, get_weights, set_weights
    from fedchain.fl.records import ClientConfig, StrategyConfig
    from fedchain.protocol.task import TaskDocument
    from fedchain.types import Address, Digest, RoundId

    rng = np.random.default_rng(3)
    lines = ["age [years],sex,smoker,diagnosis"]
    for _ in range(200):
        age, smoker = rng.uniform(30, 80), rng.random() < 0.5
        sick = age + 15 * smoker + rng.normal(0, 5) > 62
        lines.append(f"{age:.1f},{'FM'[rng.integers(2)]},{'yes' if smoker else 'no'},{'malignant' if sick else 'benign'}")
    path = write(tmp_path, "\n".join(lines) + "\n")
    schema = infer_table_schema(path)
    imported = import_table(path, schema)
    ds = Dataset(name=schema.dataset, x_train=imported.x, y_train=imported.y, x_test=imported.x, y_test=imported.y,
                 schema=schema, source="test", licence="test", citation="")  # fmt: skip
    spec = default_model_spec(ds)
    assert (spec.arch, spec.input_shape, spec.num_classes) == ("mlp", (4,), 2)
    task = TaskDocument.build(dataset=schema.dataset, schema=schema, spec=spec, strategy=StrategyConfig("fedavg", {}, ()),
                              seed=0, min_updates=1, commit_duration=60)  # fmt: skip
    again = TaskDocument.from_bytes(task.to_bytes())
    assert again.data_schema == schema and again.data_schema_digest() == schema.digest()
    start = get_weights(build_model(spec, 0))
    update, _, _ = client.train_local(
        spec, start, imported.x, imported.y, ClientConfig("fedavg", local_epochs=20, batch_size=32, lr=0.1), seed=1,
        participant=Address("0x" + "ab" * 20), round_id=RoundId(1), base_model_digest=Digest(b"\x44" * 32),
    )  # fmt: skip
    model = build_model(spec, 0)
    set_weights(model, {k: start[k] + update.tensors[k] for k in start})
    assert evaluate(model, imported.x, imported.y)["accuracy"] > 0.85


# --- the bundled datasets are untouched ---------------------------------------------------------
BUNDLED = {
    "breast_cancer": "432e05916eb3749ba89488858b0cd40c56b0e6ce110603d8baf30d82da0dcba3",
    "diabetes": "a862702a232541b3cb3fb5e49593c7712b8cfe094e9f4bf1741564df69e534c7",
    "digits": "d252ac67e2ff419d03bbd86121214f2bda857ad829f4711966367ad5280c2ec1",
    "german_credit": "15f18f8b08d8e6d02c516197726c9216db2c4e6e545baf6e6a3b7b4293614d30",
}


@pytest.mark.parametrize("name", sorted(BUNDLED))
def test_bundled_schema_digests_are_unchanged(name: str) -> None:
    schema = load_dataset(name).schema
    assert schema.table is None and "table" not in schema.to_dict()
    assert schema.digest().hex() == BUNDLED[name]


# --- decoding garbage ------------------------------------------------------------------------------
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 5) | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=4), children, max_size=3),
    max_leaves=6,
)


def _paths(node: object, prefix: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else []
    out: list[tuple[object, ...]] = []
    for key, value in items:
        out += [(*prefix, key), *_paths(value, (*prefix, key))]
    return out


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_a_mangled_table_schema_decodes_or_is_refused_with_a_data_schema_error(small: DataSchema, data: st.DataObject) -> None:
    doc = json.loads(small.to_json())
    if data.draw(st.booleans()):  # the short form: the derived fields follow from the table
        doc = {k: doc[k] for k in ("dataset", "table", "range_tolerance", "version")}
    path = data.draw(st.sampled_from([p for p in _paths(doc) if p[0] == "table"]))
    parent: object = doc
    for key in path[:-1]:
        parent = parent[key]  # type: ignore[index]
    if data.draw(st.booleans()) and isinstance(parent, dict):
        del parent[path[-1]]
    else:
        parent[path[-1]] = data.draw(_JSON)  # type: ignore[index]
    try:
        decoded = DataSchema.from_dict(doc)
    except DataSchemaError:
        return
    assert DataSchema.from_json(decoded.to_json()) == decoded

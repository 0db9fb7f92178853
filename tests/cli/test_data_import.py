"""``fedchain data schema infer`` and ``fedchain data import``: a consortium's own CSV, in-process."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.fl.datasets import load_dataset
from fedchain.fl.schema import DataSchema, load_client_data

DRAFT = """age [years],sex,smoker,weight [kg],diagnosis
54,F,yes,70.5,benign
61,M,no,,malignant
47,F,no,82,benign
70,M,yes,90.2,malignant
"""


def run(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def agreed(tmp_path: Path) -> Path:
    (tmp_path / "draft.csv").write_text(DRAFT, encoding="utf-8")
    out = tmp_path / "schema.json"
    result = run("data", "schema", "infer", str(tmp_path / "draft.csv"), "--out", str(out))
    assert result.exit_code == 0, result.output
    return out


def test_infer_writes_the_schema_and_summarises_it(agreed: Path) -> None:
    schema = DataSchema.from_json(agreed.read_text(encoding="utf-8"))
    assert schema.feature_names == ("age", "sex=F", "sex=M", "smoker", "weight")
    again = run("data", "schema", "infer", str(agreed.parent / "draft.csv"), "--out", str(agreed), "--force")
    assert again.exit_code == 0
    for text in ("age [years]  numeric", "years", "(to agree)", "impute 82.0", "label          diagnosis: 0=benign",
                 f"schema digest  0x{schema.digest().hex()}", f"wrote          {agreed}"):  # fmt: skip
        assert text in again.stdout


def test_infer_json_and_stdout(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(DRAFT, encoding="utf-8")
    doc = json.loads(run("data", "schema", "infer", str(tmp_path / "t.csv"), "--json").stdout)
    schema = DataSchema.from_dict(doc["schema"])
    assert doc["digest"] == "0x" + schema.digest().hex() and doc["out"] is None
    assert doc["label"] == "diagnosis" and doc["classes"] == ["benign", "malignant"]
    assert [c["type"] for c in doc["columns"]] == ["numeric", "categorical", "boolean", "numeric"]
    plain = run("data", "schema", "infer", str(tmp_path / "t.csv"))
    assert plain.exit_code == 0 and DataSchema.from_json(plain.stdout).digest() == schema.digest()
    assert "schema digest" in plain.stderr and "schema digest" not in plain.stdout


def test_infer_refuses_to_overwrite_and_names_bad_columns(agreed: Path) -> None:
    before = agreed.read_bytes()
    again = run("data", "schema", "infer", str(agreed.parent / "draft.csv"), "--out", str(agreed))
    assert again.exit_code == ExitCode.USAGE and "--force" in again.stderr
    assert agreed.read_bytes() == before
    bad = run("data", "schema", "infer", str(agreed.parent / "draft.csv"), "--label", "outcome")
    assert bad.exit_code == ExitCode.DATA_SCHEMA and "label column 'outcome' is not in the table" in bad.stderr
    assert run("data", "schema", "infer", str(agreed.parent / "absent.csv")).exit_code == ExitCode.USAGE


def test_import_validates_and_writes_the_participant_file(tmp_path: Path, agreed: Path) -> None:
    site = tmp_path / "site.csv"
    site.write_text("sex,diagnosis,age [years],weight [kg],smoker\nF,benign,50,,no\nM,malignant,66,88,yes\n", "utf-8")
    out = tmp_path / "data" / "client.npz"
    result = run("data", "import", str(site), "--schema", str(agreed), "--out", str(out), "--json")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    schema = DataSchema.from_json(agreed.read_bytes())
    assert doc["schema_digest"] == "0x" + schema.digest().hex()
    assert (doc["samples"], doc["features"]) == (2, 5)
    assert doc["label_counts"] == {"benign": 1, "malignant": 1} and doc["imputed"] == {"weight [kg]": 1}
    x, y = load_client_data(out, schema)
    assert x.shape == (2, 5) and y.tolist() == [0, 1]
    human = run("data", "import", str(site), "--schema", str(agreed), "--out", str(out))
    assert human.exit_code == 0 and "imported       2 rows" in human.stdout and "weight [kg]: 1" in human.stdout


def test_a_failing_import_reports_the_rows_and_writes_nothing(tmp_path: Path, agreed: Path) -> None:
    site = tmp_path / "site.csv"
    site.write_text(DRAFT.splitlines()[0] + "\n50,F,no,70,benign\n50,Q,no,70,benign\nabc,F,no,70,benign\n"
                    "50,F,no,70,benign\n,F,no,70,benign\n", "utf-8")  # fmt: skip
    out = tmp_path / "client.npz"
    result = run("data", "import", str(site), "--schema", str(agreed), "--out", str(out), "--max-problems", "2")
    assert result.exit_code == ExitCode.DATA_SCHEMA
    assert "3 problem(s) in 3 row(s); nothing was written" in result.stderr
    assert "line 3, column 'sex': 'Q', expected one of the categories 'F', 'M'" in result.stderr
    assert "line 4, column 'age [years]': 'abc', expected a finite number in years" in result.stderr
    assert "... and 1 more problem(s)" in result.stderr and "line 6" not in result.stderr
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["draft.csv", "schema.json", "site.csv"]
    out.write_bytes(b"an earlier import")
    assert run("data", "import", str(site), "--schema", str(agreed), "--out", str(out)).exit_code == ExitCode.DATA_SCHEMA
    assert out.read_bytes() == b"an earlier import"


def test_import_usage_errors_exit_2_and_a_schema_without_table_43(tmp_path: Path, agreed: Path) -> None:
    site = agreed.parent / "draft.csv"
    assert run("data", "import", str(site), "--out", str(tmp_path / "c.npz")).exit_code == ExitCode.USAGE
    missing = run("data", "import", str(tmp_path / "nope.csv"), "--schema", str(agreed), "--out", str(tmp_path / "c.npz"))
    assert missing.exit_code == ExitCode.USAGE
    bundled = tmp_path / "bc.json"
    bundled.write_text(load_dataset("breast_cancer").schema.to_json(), "utf-8")
    no_table = run("data", "import", str(site), "--schema", str(bundled), "--out", str(tmp_path / "c.npz"))
    assert no_table.exit_code == ExitCode.DATA_SCHEMA and "describes no table" in no_table.stderr
    broken = tmp_path / "broken.json"
    broken.write_text("{", "utf-8")
    bad = run("data", "import", str(site), "--schema", str(broken), "--out", str(tmp_path / "c.npz"))
    assert bad.exit_code == ExitCode.DATA_SCHEMA and "not valid JSON" in bad.stderr
    assert not (tmp_path / "c.npz").exists()


def test_two_sites_share_the_encoding_through_the_cli(tmp_path: Path, agreed: Path) -> None:
    header = DRAFT.splitlines()[0]
    (tmp_path / "a.csv").write_text(header + "\n55,F,yes,75,benign\n70,M,no,90,malignant\n", "utf-8")
    (tmp_path / "b.csv").write_text("diagnosis,smoker,sex,weight [kg],age [years],mrn\nbenign,yes,F,75,55,9\n"
                                    "malignant,no,M,72,49,10\n", "utf-8")  # fmt: skip
    a = run("data", "import", str(tmp_path / "a.csv"), "--schema", str(agreed), "--out", str(tmp_path / "a.npz"))
    assert a.exit_code == 0, a.output
    b = run("data", "import", str(tmp_path / "b.csv"), "--schema", str(agreed), "--out", str(tmp_path / "b.npz"),
            "--drop", "mrn")  # fmt: skip
    assert b.exit_code == 0, b.output
    schema = DataSchema.from_json(agreed.read_bytes())
    (xa, _), (xb, _) = load_client_data(tmp_path / "a.npz", schema), load_client_data(tmp_path / "b.npz", schema)
    np.testing.assert_array_equal(xa[0], xb[0])


def test_data_schema_dataset_stays_an_alias_of_show() -> None:
    short, full = run("data", "schema", "breast_cancer", "--json"), run("data", "schema", "show", "breast_cancer", "--json")
    assert short.exit_code == full.exit_code == 0 and short.stdout == full.stdout
    assert json.loads(short.stdout)["digest"] == "0x432e05916eb3749ba89488858b0cd40c56b0e6ce110603d8baf30d82da0dcba3"
    listing = run("data", "schema", "--help")
    assert listing.exit_code == 0 and "infer" in listing.stdout and "show" in listing.stdout


def test_show_prints_an_agreed_schema_files_digest_and_columns(agreed: Path, tmp_path: Path) -> None:
    schema = DataSchema.from_json(agreed.read_bytes())
    human = run("data", "schema", "show", str(agreed))
    assert human.exit_code == 0, human.output
    assert f"schema digest  0x{schema.digest().hex()}" in human.stdout and "sex          categorical" in human.stdout
    doc = json.loads(run("data", "schema", str(agreed), "--json").stdout)
    assert doc["digest"] == "0x" + schema.digest().hex() and [c["header"] for c in doc["columns"]][0] == "age [years]"
    assert run("data", "schema", "show", str(tmp_path / "absent.json")).exit_code == ExitCode.USAGE
    edited = tmp_path / "edited.json"
    doc["schema"]["feature_names"][0] = "years"
    edited.write_text(json.dumps(doc["schema"]), "utf-8")
    bad = run("data", "schema", "show", str(edited))
    assert bad.exit_code == ExitCode.DATA_SCHEMA and "feature_names disagrees with the table" in bad.stderr

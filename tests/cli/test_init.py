"""`fedchain init DIR`: the scaffolded consortium project, and its task file configured on the real devnet."""

from __future__ import annotations

import json
import runpy
import tomllib
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

from fedchain.cli.admin import task_document
from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.fl.datasets import load_dataset
from fedchain.fl.schema import DataSchema
from fedchain.types import digest_hex


def _init(*args: str) -> Any:
    return CliRunner().invoke(cli, ["init", *args])


def test_init_scaffolds_the_task_file_schema_model_and_readme(tmp_path: Path) -> None:
    project = tmp_path / "consortium"
    result = _init(str(project), "--dataset", "digits", "--json")
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert sorted(Path(f).name for f in out["files"]) == ["README.md", "model.py", "schema.json", "task.toml"]

    task = tomllib.loads((project / "task.toml").read_text())
    assert task["task"] == {"dataset": "digits", "seed": 0}
    assert task["model"] == {"arch": "cnn", "hidden": [32], "channels": [8, 16], "kernel_size": 3}
    assert task["rounds"]["min_updates"] == 1 and task["strategy"]["name"] == "fedavg"
    schema = DataSchema.from_json((project / "schema.json").read_bytes())
    assert schema.digest() == load_dataset("digits").schema.digest()
    assert out["schema"]["digest"] == digest_hex(schema.digest())
    assert "fedchain admin configure-task --file task.toml" in (project / "README.md").read_text()


def test_the_scaffolded_model_file_fits_the_schema(tmp_path: Path) -> None:
    assert _init(str(tmp_path / "p"), "--dataset", "digits").exit_code == 0
    build = runpy.run_path(str(tmp_path / "p" / "model.py"))["build"]
    logits = build()(torch.zeros((5, 1, 8, 8)))
    assert tuple(logits.shape) == (5, 10)


def test_the_scaffolded_task_file_is_the_default_task(tmp_path: Path) -> None:
    from fedchain.cli.task_file import build_task_file

    assert _init(str(tmp_path / "p")).exit_code == 0
    from_file = build_task_file(tmp_path / "p" / "task.toml").doc
    from_options = task_document("breast_cancer", None, "fedavg", (), None, 1, 32, 0.05, 0, 1, 300, 86_400, 0)
    assert from_file.to_bytes() == from_options.to_bytes()


def test_init_refuses_a_non_empty_directory_unless_forced(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("keep me")
    refused = _init(str(tmp_path))
    assert refused.exit_code == ExitCode.USAGE
    assert "not empty" in refused.output and "--force" in refused.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]

    forced = _init(str(tmp_path), "--force")
    assert forced.exit_code == 0, forced.output
    assert (tmp_path / "task.toml").is_file() and (tmp_path / "notes.txt").read_text() == "keep me"


def test_init_on_a_schema_file_names_it_in_the_task(tmp_path: Path) -> None:
    table = load_dataset("breast_cancer").schema.to_dict() | {"dataset": "clinic_table"}
    source = tmp_path / "agreed.json"
    source.write_text(json.dumps(table))
    result = _init(str(tmp_path / "p"), "--schema", str(source))
    assert result.exit_code == 0, result.output
    task = tomllib.loads((tmp_path / "p" / "task.toml").read_text())
    assert task["task"] == {"schema": "schema.json", "seed": 0}
    assert task["model"] == {"arch": "mlp", "hidden": [64]}
    assert DataSchema.from_json((tmp_path / "p" / "schema.json").read_bytes()).dataset == "clinic_table"


def test_init_with_a_dataset_and_a_schema_is_a_usage_error(tmp_path: Path) -> None:
    schema = tmp_path / "s.json"
    schema.write_text(load_dataset("breast_cancer").schema.to_json())
    result = _init(str(tmp_path / "p"), "--dataset", "digits", "--schema", str(schema))
    assert result.exit_code == ExitCode.USAGE
    assert "--dataset and --schema" in result.output
    assert not (tmp_path / "p").exists()


@pytest.mark.devnet
def test_the_scaffolded_task_configures_on_the_devnet_and_admin_task_decodes_it(chain_env: Any, tmp_path: Path) -> None:
    project = tmp_path / "p"
    assert _init(str(project), "--dataset", "breast_cancer").exit_code == 0
    base = ["--state-dir", str(tmp_path / "state"), "--rpc-url", chain_env.url, "--address",
            chain_env.deployment.address, "--store", "local", "--json"]
    configured = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": chain_env.accounts.admin.key.hex()}).invoke(
        cli, ["admin", "configure-task", "--file", str(project / "task.toml"), *base])
    assert configured.exit_code == 0, configured.output
    assert json.loads(configured.output)["task"]["version"] == 1

    shown = CliRunner().invoke(cli, ["admin", "task", *base])
    assert shown.exit_code == 0, shown.output
    doc = json.loads(shown.output)["document"]
    assert doc["dataset"] == "breast_cancer"
    assert doc["schema"]["digest"] == digest_hex(load_dataset("breast_cancer").schema.digest())
    assert doc["model"]["arch"] == "logreg" and doc["model"]["input_shape"] == [30]
    assert doc["strategy"]["name"] == "fedavg" and doc["strategy"]["params"]["lr"] == 0.05
    assert doc["strategy"]["robust"] == [{"name": "norm_clip", "params": {"max_norm": 100.0, "reject": True}}]
    assert (doc["min_updates"], doc["commit_duration"], doc["max_commit_duration"]) == (1, 300, 86_400)
    assert doc["privacy"] is None and doc["secagg"] is None and doc["rewards"] is None
    assert doc["model"]["digest"] == json.loads(shown.output)["task"]["model_spec_digest"]


def _configure_and_show(env: Any, project: Path, state: Path) -> tuple[Any, Any]:
    base = ["--state-dir", str(state), "--rpc-url", env.url, "--address", env.deployment.address, "--store", "local"]
    configured = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": env.accounts.admin.key.hex()}).invoke(
        cli, ["admin", "configure-task", "--file", str(project / "task.toml"), *base, "--json"])
    shown = CliRunner().invoke(cli, ["admin", "task", *base])
    return configured, shown


@pytest.mark.devnet
def test_the_scaffolded_model_file_configures_as_the_task_s_model(chain_env: Any, tmp_path: Path) -> None:
    project = tmp_path / "p"
    created = _init(str(project), "--dataset", "breast_cancer", "--json")
    digest = json.loads(created.output)["model_file"]["digest"]
    task = project / "task.toml"
    text = task.read_text().replace('arch = "logreg"', '# arch = "logreg"')
    for line in ('file = "model.py"', 'factory = "build"', "[model.params]", "hidden = 64"):
        text = text.replace("# " + line, line, 1)
    task.write_text(text)

    configured, shown = _configure_and_show(chain_env, project, tmp_path / "state")
    assert configured.exit_code == 0, configured.output
    assert shown.exit_code == 0, shown.output
    assert f"model source     {digest}" in shown.output
    assert f"--trust-model {digest}" in shown.output
    assert "model            custom factory=build, params={'hidden': 64}, input (30,), 2 classes" in shown.output


@pytest.mark.devnet
def test_a_consortium_s_own_table_from_infer_to_a_configured_task(chain_env: Any, tmp_path: Path) -> None:
    rows = ["age [years],sex,systolic [mmHg],outcome"]
    rows += [f"{30 + i % 40},{'MF'[i % 2]},{110 + (i * 7) % 50},{'yes' if i % 3 else 'no'}" for i in range(60)]
    table = tmp_path / "site.csv"
    table.write_text("\n".join(rows) + "\n")
    agreed = tmp_path / "agreed.json"
    inferred = CliRunner().invoke(cli, ["data", "schema", "infer", str(table), "--name", "cardio", "--out", str(agreed)])
    assert inferred.exit_code == 0, inferred.output

    project = tmp_path / "p"
    assert _init(str(project), "--schema", str(agreed)).exit_code == 0
    configured, shown = _configure_and_show(chain_env, project, tmp_path / "state")
    assert configured.exit_code == 0, configured.output
    assert shown.exit_code == 0, shown.output
    schema = DataSchema.from_json(agreed.read_bytes())
    assert f"schema           cardio {digest_hex(schema.digest())}" in shown.output
    assert json.loads(configured.output)["task"]["data_schema_digest"] == digest_hex(schema.digest())

    imported = CliRunner().invoke(cli, ["data", "import", str(table), "--schema", str(project / "schema.json"),
                                        "--out", str(tmp_path / "site.npz")])
    assert imported.exit_code == 0, imported.output
    from fedchain.fl.schema import read_client_data_digest

    assert read_client_data_digest(tmp_path / "site.npz") == schema.digest()


@pytest.mark.devnet
def test_two_sites_train_a_round_on_their_own_table_from_init_and_it_audits_clean(chain_env: Any, tmp_path: Path) -> None:
    header = "age [years],sex,systolic [mmHg],outcome"

    def site(offset: int) -> list[str]:
        return [f"{30 + (i + offset) % 40},{'MF'[i % 2]},{110 + (i * 7 + offset) % 50},{'yes' if i % 3 else 'no'}"
                for i in range(40)]

    first, second = tmp_path / "north.csv", tmp_path / "south.csv"
    first.write_text("\n".join([header, *site(0)]) + "\n")
    second.write_text("\n".join([header, *site(5)]) + "\n")
    runner = CliRunner()
    assert runner.invoke(cli, ["data", "schema", "infer", str(first), "--name", "cardio", "--out",
                               str(tmp_path / "agreed.json")]).exit_code == 0
    project = tmp_path / "p"
    assert _init(str(project), "--schema", str(tmp_path / "agreed.json")).exit_code == 0
    configured, _ = _configure_and_show(chain_env, project, tmp_path / "state")
    assert configured.exit_code == 0, configured.output

    base = ["--state-dir", str(tmp_path / "state"), "--rpc-url", chain_env.url, "--address",
            chain_env.deployment.address, "--store", "local", "--json"]

    def as_(account: Any, *args: str) -> Any:
        result = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": "0x" + bytes(account.key).hex()}).invoke(cli, [*args, *base])
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    sites = list(zip(chain_env.accounts.participants[:2], (first, second), strict=True))
    for account, table in sites:
        data = tmp_path / f"{table.stem}.npz"
        imported = runner.invoke(cli, ["data", "import", str(table), "--schema", str(project / "schema.json"),
                                       "--out", str(data)])
        assert imported.exit_code == 0, imported.output
        as_(account, "participant", "register", "--org", table.stem, "--samples", "40", "--data", str(data))
        as_(chain_env.accounts.admin, "admin", "admit", account.address)
    rid = as_(chain_env.accounts.aggregator, "round", "open")["round"]
    for account, table in sites:
        as_(account, "participant", "submit", "--data", str(tmp_path / f"{table.stem}.npz"),
            "--work-dir", str(tmp_path / f"work-{table.stem}"))
    assert as_(chain_env.accounts.aggregator, "round", "finalize")["finalized"] is True
    assert chain_env.ledger().round(rid).included_count == 2
    audit = runner.invoke(cli, ["audit", *base])
    assert audit.exit_code == 0, audit.output

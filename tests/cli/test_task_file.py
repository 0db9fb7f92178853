"""`fedchain admin configure-task --file task.toml`: every key checked, the document built by the options' code, a
task on a schema file or a model file; bad files are clear errors and store nothing (against the real devnet)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.cli.admin import task_document
from fedchain.cli.main import cli
from fedchain.cli.task_file import build_task_file
from fedchain.errors import ConfigError, ExitCode
from fedchain.fl.datasets import load_dataset
from fedchain.fl.models import build_model, model_source_digest
from fedchain.protocol.task import TaskDocument, verify_task
from fedchain.storage.local import LocalStore
from fedchain.types import digest_hex

MINIMAL = '[task]\ndataset = "breast_cancer"\n'

MODEL_PY = '''\
from torch import nn


def build(width: int = 8, in_features: int = 30, num_classes: int = 2) -> nn.Module:
    """A small MLP for the breast_cancer table."""
    return nn.Sequential(nn.Flatten(), nn.Linear(in_features, width), nn.Tanh(), nn.Linear(width, num_classes))
'''


def _write(tmp_path: Path, text: str, name: str = "task.toml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def _options_doc(**overrides: Any) -> TaskDocument:
    args: dict[str, Any] = dict(dataset="breast_cancer", arch=None, strategy="fedavg", strategy_params=(), robust=None,
                                local_epochs=1, batch_size=32, lr=0.05, seed=0, min_updates=1, commit_duration=300,
                                max_commit_duration=86_400, reveal_duration=0)
    args.update(overrides)
    return task_document(**args)


def _table_schema(tmp_path: Path) -> Path:
    """breast_cancer's schema under a name no bundled dataset has (a consortium's own table)."""
    data = load_dataset("breast_cancer").schema.to_dict() | {"dataset": "clinic_table"}
    return _write(tmp_path, json.dumps(data), "schema.json")


# --- the file is read and checked (no chain) ---------------------------------------------------------------------


def test_a_full_task_file_builds_the_same_document_as_the_options(tmp_path: Path) -> None:
    path = _write(tmp_path, '''
[task]
dataset = "breast_cancer"
seed = 3
[model]
arch = "mlp"
[strategy]
name = "fedprox"
local_epochs = 2
batch_size = 16
lr = 0.1
robust = ["trimmed_mean:0.2", "norm_clip:max_norm=50"]
[strategy.params]
mu = 0.01
[rounds]
min_updates = 2
commit_duration = 120
max_commit_duration = 3600
reveal_duration = 60
''')
    doc = build_task_file(path).doc
    expected = _options_doc(arch="mlp", strategy="fedprox", strategy_params=("mu=0.01",),
                            robust="trimmed_mean:0.2+norm_clip:max_norm=50", local_epochs=2, batch_size=16, lr=0.1,
                            seed=3, min_updates=2, commit_duration=120, max_commit_duration=3600, reveal_duration=60)
    assert doc.to_bytes() == expected.to_bytes()


def test_model_layers_in_the_file_shape_the_model(tmp_path: Path) -> None:
    doc = build_task_file(_write(tmp_path, MINIMAL + '[model]\narch = "mlp"\nhidden = [16, 8]\n')).doc
    assert (doc.spec().arch, doc.spec().hidden, doc.spec().input_shape) == ("mlp", (16, 8), (30,))


def test_an_empty_robust_list_is_no_rule(tmp_path: Path) -> None:
    doc = build_task_file(_write(tmp_path, MINIMAL + "[strategy]\nrobust = []\n")).doc
    assert doc.strategy_config().robust == ()


def test_privacy_and_secagg_sections_map_onto_the_options(tmp_path: Path) -> None:
    from fedchain.protocol.secure import SecAggConfig
    from fedchain.sim.config import PrivacyRequest

    private = build_task_file(_write(tmp_path, MINIMAL + '''[rounds]\nmin_updates = 2
[privacy]\nmechanism = "client"\nepsilon_budget = 8.0\nclip = 2.0\nrounds = 10\n''')).doc
    assert private.to_bytes() == _options_doc(min_updates=2, privacy=PrivacyRequest("client", 8.0, clip=2.0),
                                              dp_rounds=10).to_bytes()
    secure = build_task_file(_write(tmp_path, MINIMAL + "[secagg]\nclip = 3.0\nmax_summands = 64\nphase = 30\n")).doc
    assert secure.secagg == SecAggConfig(clip=3.0, max_summands=64, advertise_duration=30, unmask_duration=30)
    assert secure.to_bytes() == _options_doc(secagg=SecAggConfig(clip=3.0, max_summands=64, advertise_duration=30,
                                                                 unmask_duration=30)).to_bytes()


def test_a_task_on_a_schema_file_needs_no_bundled_dataset(tmp_path: Path) -> None:
    _table_schema(tmp_path)
    doc = build_task_file(_write(tmp_path, '[task]\nschema = "schema.json"\n')).doc
    assert doc.dataset == "clinic_table" and doc.schema().dataset == "clinic_table"
    assert (doc.spec().arch, doc.spec().input_shape, doc.spec().num_classes, doc.spec().hidden) == ("mlp", (30,), 2, (64,))


@pytest.mark.parametrize(("text", "needle"), [
    (MINIMAL + "[rounds]\nmin_update = 2\n", "unknown key 'min_update' in [rounds]"),
    (MINIMAL + "[round]\nmin_updates = 2\n", "unknown section [round]"),
    (MINIMAL + '[rounds]\nmin_updates = "2"\n', "[rounds] min_updates must be an integer, got '2'"),
    (MINIMAL + "[rounds]\ncommit_duration = true\n", "[rounds] commit_duration must be an integer, got True"),
    (MINIMAL + '[strategy]\nrobust = "median"\n', "[strategy] robust must be a list of strings"),
    (MINIMAL + '[strategy.params]\nmu = "small"\n', "[strategy] params must be a table of numbers"),
    ("[model]\narch = \"mlp\"\n", "[task] needs exactly one of dataset"),
    ('[task]\ndataset = "digits"\nschema = "s.json"\n', "got both"),
    (MINIMAL + '[privacy]\nmechanism = "client"\nrounds = 3\n', "[privacy] needs epsilon_budget"),
    (MINIMAL + '[privacy]\nmechanism = "dpsgd"\nepsilon_budget = 3.0\nrounds = 3\n', "dpsgd needs sample_rate"),
    (MINIMAL + '[model]\nhidden = [8]\n', "hidden, channels and kernel_size need arch"),
    (MINIMAL + '[model]\nfile = "model.py"\narch = "mlp"\n', "takes no arch"),
    (MINIMAL + '[strategy]\nname = "fedsomething"\n', "fedsomething"),
    (MINIMAL + '[rounds]\ncommit_duration = 600\nmax_commit_duration = 60\n', "max_commit_duration"),
    ('[task]\ndataset = "breast_cancer"\n[task]\nseed = 1\n', "not valid TOML"),
])
def test_a_bad_task_file_is_a_config_error_naming_the_file_and_the_key(tmp_path: Path, text: str, needle: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as err:
        build_task_file(path)
    assert needle in str(err.value)
    assert str(path) in str(err.value)


def test_a_missing_schema_file_is_named(tmp_path: Path) -> None:
    path = _write(tmp_path, '[task]\nschema = "nowhere.json"\n')
    with pytest.raises(ConfigError, match="nowhere.json cannot be read"):
        build_task_file(path)


# --- against the devnet --------------------------------------------------------------------------------------------


def _base(env: Any, state: Path) -> list[str]:
    return ["--state-dir", str(state), "--rpc-url", env.url, "--address", env.deployment.address, "--store", "local",
            "--json"]


def _configure(env: Any, state: Path, *args: str) -> Any:
    return CliRunner(env={"FEDCHAIN_PRIVATE_KEY": env.accounts.admin.key.hex()}).invoke(
        cli, ["admin", "configure-task", *args, *_base(env, state)])


def _stored(state: Path) -> list[Path]:
    return sorted(p for p in (state / "blobs").rglob("*") if p.is_file()) if (state / "blobs").exists() else []


@pytest.mark.devnet
@pytest.mark.parametrize(("text", "extra", "code", "needle"), [
    (MINIMAL + "[rounds]\nmin_update = 2\n", (), ExitCode.CONFIG, "unknown key 'min_update' in [rounds]"),
    (MINIMAL + '[rounds]\nmin_updates = "2"\n', (), ExitCode.CONFIG, "min_updates must be an integer"),
    ("[rounds]\nmin_updates = 2\n", (), ExitCode.CONFIG, "[task] needs exactly one of dataset"),
    (MINIMAL, ("--dataset", "digits", "--min-updates", "2"), ExitCode.USAGE, "drop --dataset, --min-updates"),
])
def test_a_bad_task_file_stores_nothing_and_configures_nothing(chain_env: Any, tmp_path: Path, text: str,
                                                               extra: tuple[str, ...], code: int, needle: str) -> None:
    state = tmp_path / "state"
    result = _configure(chain_env, state, "--file", str(_write(tmp_path, text)), *extra)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert json.loads(result.stdout)["error"]["code"] == code
    assert _stored(state) == []
    assert chain_env.ledger().task() is None


@pytest.mark.devnet
def test_a_task_on_a_schema_file_configures_and_shows_its_schema(chain_env: Any, tmp_path: Path) -> None:
    schema_path = _table_schema(tmp_path)
    state = tmp_path / "state"
    path = _write(tmp_path, '[task]\nschema = "schema.json"\n[rounds]\nmin_updates = 2\n'
                            '[privacy]\nmechanism = "client"\nepsilon_budget = 4.0\nnoise_multiplier = 1.5\n')
    result = _configure(chain_env, state, "--file", str(path))
    assert result.exit_code == 0, result.output

    task = chain_env.ledger().task()
    doc = TaskDocument.from_bytes(LocalStore(state / "blobs").get(task.config_cid))
    verify_task(doc, task)
    assert doc.dataset == "clinic_table"

    shown = CliRunner().invoke(cli, ["admin", "task", *_base(chain_env, state)[:-1]])
    assert shown.exit_code == 0, shown.output
    assert "schema           clinic_table " + digest_hex(doc.data_schema_digest()) in shown.output
    assert "privacy          client: epsilon budget 4" in shown.output
    assert "model            mlp hidden=[64], input (30,), 2 classes" in shown.output
    assert schema_path.read_bytes()  # the schema file is the consortium's, untouched


@pytest.mark.devnet
def test_a_custom_model_file_is_stored_and_named_by_the_task(chain_env: Any, tmp_path: Path) -> None:
    model_py = _write(tmp_path, MODEL_PY, "model.py")
    state = tmp_path / "state"
    path = _write(tmp_path, MINIMAL + '[model]\nfile = "model.py"\nfactory = "build"\n[model.params]\nwidth = 4\n')
    result = _configure(chain_env, state, "--file", str(path))
    assert result.exit_code == 0, result.output

    store = LocalStore(state / "blobs")
    task = chain_env.ledger().task()
    doc = TaskDocument.from_bytes(store.get(task.config_cid))
    verify_task(doc, task)
    spec = doc.spec()
    assert (spec.arch, spec.factory, dict(spec.params)) == ("custom", "build", {"width": 4})
    assert spec.source_digest == model_source_digest(model_py.read_bytes())
    assert store.get(spec.source_cid) == model_py.read_bytes()
    assert sum(p.numel() for p in build_model(spec, 0).parameters()) == 30 * 4 + 4 + 4 * 2 + 2

    shown = CliRunner().invoke(cli, ["admin", "task", *_base(chain_env, state)])
    assert shown.exit_code == 0, shown.output
    model = json.loads(shown.output)["document"]["model"]
    assert (model["arch"], model["source_cid"], model["source_digest"]) == ("custom", spec.source_cid,
                                                                          spec.source_digest)


@pytest.mark.devnet
def test_a_model_file_without_its_factory_stores_nothing(chain_env: Any, tmp_path: Path) -> None:
    _write(tmp_path, MODEL_PY, "model.py")
    state = tmp_path / "state"
    path = _write(tmp_path, MINIMAL + '[model]\nfile = "model.py"\nfactory = "make"\n')
    result = _configure(chain_env, state, "--file", str(path))
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "make" in result.output and str(path) in result.output
    assert _stored(state) == [] and chain_env.ledger().task() is None


@pytest.mark.devnet
def test_a_rewards_section_is_recorded_and_shown(chain_env: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    result = _configure(chain_env, state, "--file", str(_write(tmp_path, MINIMAL + '[rewards]\nrule = "samples"\n')))
    assert result.exit_code == 0, result.output
    shown = CliRunner().invoke(cli, ["admin", "task", *_base(chain_env, state)])
    assert shown.exit_code == 0, shown.output
    assert json.loads(shown.output)["document"]["rewards"]["rule"] == "samples"


@pytest.mark.devnet
def test_admin_task_refuses_a_document_that_is_not_the_chain_s(chain_env: Any, tmp_path: Path) -> None:
    state = tmp_path / "state"
    doc = build_task_file(_write(tmp_path, MINIMAL)).doc
    cid = LocalStore(state / "blobs").put(doc.to_bytes())
    other = build_task_file(_write(tmp_path, MINIMAL + '[model]\narch = "mlp"\n')).doc
    chain_env.federation().configure_task(bytes(other.model_spec_digest()), bytes(doc.strategy_digest()),
                                          bytes(doc.data_schema_digest()), cid, doc.max_commit_duration)
    shown = CliRunner().invoke(cli, ["admin", "task", *_base(chain_env, state)])
    assert shown.exit_code == ExitCode.INTEGRITY, shown.output
    assert "model spec digest" in shown.output
    chain_only = CliRunner().invoke(cli, ["admin", "task", "--chain-only", *_base(chain_env, state)])
    assert chain_only.exit_code == 0 and json.loads(chain_only.output)["task"]["config_cid"] == cid

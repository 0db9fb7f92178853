"""A task with its own model: the source stored before the task, fetched and checked against its
digest, run only when trusted; a round and its audit on the devnet with a custom model."""

from __future__ import annotations

import dataclasses
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.codec.canonical import sha256_digest
from fedchain.config import load_settings
from fedchain.errors import BlobNotFoundError, ConfigError, IntegrityError, ModelTrustError
from fedchain.fl import models
from fedchain.fl.models import ModelSpec, build_model, is_model_source_registered, model_source_digest
from fedchain.protocol.export import build_module, evaluate_model, load_verified_model
from fedchain.protocol.rewards import compute_round_rewards
from fedchain.protocol.task import RewardsConfig, TaskDocument, load_model_source, publish_task, store_model_source
from fedchain.storage.cid import compute_cid
from fedchain.types import RoundId
from tests.protocol.harness import make_fed, make_task_files

MODEL = '''
import torch
from torch import nn

# {tag}


def build(hidden=16):
    return nn.Sequential(nn.Flatten(), nn.Linear(30, hidden), nn.ReLU(), nn.Linear(hidden, 2))
'''


def write_model(tmp_path: Path, prelude: str = "") -> Path:
    path = tmp_path / "model.py"
    path.write_text(prelude + MODEL.format(tag=tmp_path), encoding="utf-8")
    return path


def task_with(spec: ModelSpec, task_doc: TaskDocument) -> TaskDocument:
    return TaskDocument.build(dataset=task_doc.dataset, schema=task_doc.schema(), spec=spec,
                              strategy=task_doc.strategy_config(), seed=task_doc.seed, min_updates=1, commit_duration=60)


@pytest.fixture(scope="module")
def base_doc(tmp_path_factory: pytest.TempPathFactory) -> TaskDocument:
    return make_task_files(tmp_path_factory.mktemp("task"), clients=1, min_updates=1).doc


def unexecuted_task(tmp_path: Path, store: Any, base_doc: TaskDocument) -> tuple[TaskDocument, Path]:
    """A task whose model file writes a marker when it runs, stored without running it (as a
    participant's process sees it: nobody there ever executed or registered it)."""
    marker = tmp_path / "model-ran"
    source = write_model(tmp_path, f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n").read_bytes()
    spec = ModelSpec("custom", (30,), 2, source_digest=model_source_digest(source), source_cid=store.put(source),
                     factory="build", params={"hidden": 8})
    return task_with(spec, base_doc), marker


def test_store_model_source_stores_the_source_the_spec_names(tmp_path: Path, local_store: Any,
                                                             base_doc: TaskDocument) -> None:
    path = write_model(tmp_path)
    spec = store_model_source(local_store, path, factory="build", params={"hidden": 4}, input_shape=(30,), num_classes=2)
    assert spec.source_cid == compute_cid(path.read_bytes()) and local_store.get(spec.source_cid) == path.read_bytes()
    doc = TaskDocument.from_bytes(task_with(spec, base_doc).to_bytes())
    assert doc.spec() == spec
    assert load_model_source(doc, local_store, None) == spec.source_digest
    assert load_model_source(base_doc, local_store, frozenset()) is None  # a builtin model: nothing to trust


def test_an_untrusted_model_is_refused_and_its_file_never_runs(tmp_path: Path, local_store: Any,
                                                               base_doc: TaskDocument) -> None:
    doc, marker = unexecuted_task(tmp_path, local_store, base_doc)
    digest, cid = doc.spec().source_digest, doc.spec().source_cid
    for trusted in (frozenset(), frozenset({"0x" + "ab" * 32})):
        with pytest.raises(ModelTrustError) as caught:
            load_model_source(doc, local_store, trusted)
        assert str(caught.value) == (
            f"the task's model {digest} is defined in a Python file that is not one you trust, so it was not run; "
            f"review its source (fedchain store get {cid} -o model.py) and pass --trust-model {digest} (or list it "
            "in trusted_models in fedchain.toml)")
        assert caught.value.exit_code == 10
    with pytest.raises(ModelTrustError):
        build_model(doc.spec(), doc.seed)
    assert not marker.exists() and not is_model_source_registered(digest)

    assert load_model_source(doc, local_store, {digest[2:].upper()}) == digest  # bare, upper-case hex is the same digest
    build_model(doc.spec(), doc.seed)
    assert marker.read_text() == "ran"  # the marker proves the refusal above ran nothing


def test_a_source_that_does_not_match_its_digest_is_refused(tmp_path: Path, local_store: Any,
                                                            base_doc: TaskDocument) -> None:
    marker = tmp_path / "model-ran"
    source = write_model(tmp_path, f"import pathlib\npathlib.Path({str(marker)!r}).write_text('ran')\n").read_bytes()
    other = source.replace(b"hidden=16", b"hidden=17")
    spec = ModelSpec("custom", (30,), 2, source_digest=model_source_digest(source), source_cid=local_store.put(other),
                     factory="build")
    doc = task_with(spec, base_doc)
    with pytest.raises(IntegrityError, match=f"has sha256 {model_source_digest(other)}, but the model spec names "
                                             f"{spec.source_digest}"):
        load_model_source(doc, local_store, {spec.source_digest})
    assert not is_model_source_registered(spec.source_digest) and not is_model_source_registered(model_source_digest(other))
    assert not marker.exists()


def test_a_malformed_trusted_digest_and_an_unstored_source_are_config_errors(tmp_path: Path, local_store: Any,
                                                                             base_doc: TaskDocument) -> None:
    doc, _ = unexecuted_task(tmp_path, local_store, base_doc)
    with pytest.raises(ConfigError, match="trusted model digest '0x12'"):
        load_model_source(doc, local_store, ["0x12"])
    unstored = task_with(ModelSpec("custom", (30,), 2, source_digest=doc.spec().source_digest, factory="build"), base_doc)
    with pytest.raises(ConfigError, match="names no source CID"):
        load_model_source(unstored, local_store, None)


def test_trusted_models_in_fedchain_toml_and_the_environment(tmp_path: Path) -> None:
    digest = "0x" + "Ab" * 32
    toml = tmp_path / "fedchain.toml"
    toml.write_text(f'trusted_models = ["{digest}", "{"cd" * 32}"]\n', encoding="utf-8")
    settings = load_settings(toml, env={})
    assert settings.trusted_models == ("0x" + "ab" * 32, "0x" + "cd" * 32)
    env = load_settings(tmp_path / "fedchain.toml", env={"FEDCHAIN_TRUSTED_MODELS": f"{digest}, 0x{'ef' * 32}"})
    assert env.trusted_models == ("0x" + "ab" * 32, "0x" + "ef" * 32)
    toml.write_text('trusted_models = ["not-a-digest"]\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="trusted_models: 'not-a-digest' is not a model digest"):
        load_settings(toml, env={})


@pytest.mark.parametrize("command", ["run", "submit"])
def test_trust_model_is_a_repeatable_option_refusing_what_is_not_a_digest(tmp_path: Path, command: str) -> None:
    result = CliRunner().invoke(cli, ["participant", command, "--data", str(tmp_path / "d.npz"),
                                      "--trust-model", "0x" + "ab" * 32, "--trust-model", "0x1234",
                                      "--state-dir", str(tmp_path)])
    assert result.exit_code == 2, result.output
    assert "--trust-model" in result.output and "'0x1234' is not a model digest" in result.output


def test_publish_stores_nothing_when_the_model_source_is_not_in_the_store(chain_env: Any, local_store: Any,
                                                                          tmp_path: Path, base_doc: TaskDocument) -> None:
    source = write_model(tmp_path).read_bytes()
    spec = ModelSpec("custom", (30,), 2, source_digest=model_source_digest(source), source_cid=compute_cid(source),
                     factory="build")
    doc = task_with(spec, base_doc)
    admin = chain_env.ledger(chain_env.accounts.admin)
    before = admin.task()
    with pytest.raises(BlobNotFoundError):
        publish_task(admin, local_store, doc)
    assert not local_store.has(compute_cid(doc.to_bytes()))
    assert admin.task() == before


def test_a_round_with_a_custom_model_finalises_audits_clean_and_exports(chain_env: Any, local_store: Any,
                                                                         tmp_path: Path,
                                                                         monkeypatch: pytest.MonkeyPatch) -> None:
    spec = store_model_source(local_store, write_model(tmp_path), factory="build", params={"hidden": 8},
                              input_shape=(30,), num_classes=2)
    files = make_task_files(tmp_path / "task", clients=2, min_updates=2, model=spec)
    assert files.doc.spec() == spec
    fed = make_fed(chain_env, local_store, files, tmp_path / "work")
    assert fed.reader.task().model_spec_digest == spec.digest()
    outcome = fed.run_round()
    assert outcome.finalized and len(outcome.included) == 2 and not outcome.rejected
    report = fed.auditor().audit()
    assert report.ok, report.findings
    monkeypatch.setattr(models, "_SOURCES", {})  # `fedchain model evaluate` in a process of its own
    module = build_module(load_verified_model(fed.reader, local_store, 1))
    x, y = files.dataset.x_test, files.dataset.y_test
    assert evaluate_model(load_verified_model(fed.reader, local_store, 1), x, y)["accuracy"] > 0.5
    assert type(module).__name__ == "Sequential" and module(torch.zeros((1, 30))).shape == (1, 2)


def fed_with_unexecuted_model(chain_env: Any, store: Any, tmp_path: Path, base_doc: TaskDocument) -> tuple[Any, Path]:
    """A federation whose task's model file writes a marker when run; published (its source checked
    and registered by the admin's process) but never run so far."""
    doc, marker = unexecuted_task(tmp_path, store, base_doc)
    files = make_task_files(tmp_path / "task", clients=2, min_updates=2, model=doc.spec())
    return make_fed(chain_env, store, files, tmp_path / "work"), marker


def test_a_participant_refuses_an_untrusted_model_and_runs_nothing(chain_env: Any, local_store: Any, tmp_path: Path,
                                                                   base_doc: TaskDocument,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    fed, marker = fed_with_unexecuted_model(chain_env, local_store, tmp_path, base_doc)
    rid = fed.open_round()  # the aggregator's process builds the initial model (and writes the marker)
    marker.unlink()
    monkeypatch.setattr(models, "_SOURCES", {})  # a participant's own process: it registered nothing
    agent = fed.participants[0]
    agent.trusted_models = frozenset({"0x" + "ab" * 32})
    with pytest.raises(ModelTrustError, match=f"--trust-model {fed.doc.spec().source_digest}"):
        agent.submit(rid)
    assert not marker.exists()
    assert not fed.reader.commitments(rid)


def test_a_participant_that_trusts_the_model_and_a_fresh_auditor_load_its_source(
        chain_env: Any, local_store: Any, tmp_path: Path, base_doc: TaskDocument,
        monkeypatch: pytest.MonkeyPatch) -> None:
    fed, _ = fed_with_unexecuted_model(chain_env, local_store, tmp_path, base_doc)
    rid = fed.open_round()
    monkeypatch.setattr(models, "_SOURCES", {})  # the participants' processes
    for agent in fed.participants:
        agent.trusted_models = frozenset({fed.doc.spec().source_digest})
        agent.submit(rid)
    assert len(fed.reader.commitments(rid)) == 2
    monkeypatch.setattr(models, "_SOURCES", {})  # an auditor's process, replaying the task from the chain
    report = fed.auditor().audit()
    assert report.ok, report.findings


def test_participant_verify_replays_a_custom_model_only_when_trusted(chain_env: Any, local_store: Any, tmp_path: Path,
                                                                     base_doc: TaskDocument,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fed, marker = fed_with_unexecuted_model(chain_env, local_store, tmp_path, base_doc)
    assert fed.run_round().finalized
    digest = fed.doc.spec().source_digest
    marker.unlink()
    monkeypatch.setattr(models, "_SOURCES", {})  # the member's own process

    def verify(*trust: str) -> Any:
        return CliRunner().invoke(cli, [
            "participant", "verify", "1", "--no-attest", *trust, "--state-dir", str(tmp_path), "--store", "local",
            "--rpc-url", chain_env.url, "--address", chain_env.deployment.address, "--json"])

    refused = verify()
    assert refused.exit_code == 10, refused.output
    assert f"pass --trust-model {digest}" in refused.stderr and not marker.exists()
    assert json.loads(refused.stdout)["error"]["type"] == "ModelTrustError"
    trusted = verify("--trust-model", digest)
    assert trusted.exit_code == 0, trusted.output
    assert json.loads(trusted.stdout)["ok"] is True and marker.exists()


def test_loo_rewards_of_a_custom_model_are_computed_in_a_process_that_never_ran_it(
        chain_env: Any, local_store: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = store_model_source(local_store, write_model(tmp_path), factory="build", params={"hidden": 8},
                              input_shape=(30,), num_classes=2)
    files = make_task_files(tmp_path / "task", clients=2, min_updates=2, model=spec)
    buf = io.BytesIO()
    np.savez(buf, x=files.dataset.x_test, y=files.dataset.y_test)
    rewards = RewardsConfig("loo", {}, sha256_digest(buf.getvalue()), local_store.put(buf.getvalue()), 100)
    fed = make_fed(chain_env, local_store, dataclasses.replace(files, doc=dataclasses.replace(files.doc, rewards=rewards)),
                   tmp_path / "work")
    rid = RoundId(fed.run_round().round_id)
    monkeypatch.setattr(models, "_SOURCES", {})
    scored = compute_round_rewards(fed.reader, local_store, rid, 100)
    assert scored.rule == "loo" and len(scored.entries) == 2

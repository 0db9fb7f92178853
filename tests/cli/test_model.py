"""`fedchain model export | show | evaluate` on a federation that finished two rounds on the real devnet:
the files are the on-chain model bit for bit, a blob that is not the one on chain is refused with
nothing written, rounds without a usable model are refused by name."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner, Result
from safetensors import safe_open
from safetensors.numpy import load_file

from fedchain import __version__
from fedchain.cli.main import cli
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ExitCode
from fedchain.fl.models import build_model
from fedchain.fl.schema import load_client_data
from fedchain.protocol.blobs import decode_global
from fedchain.types import RoundId, digest_hex
from tests.trained_federation import Trained, chain_snapshot, trained_fixture  # noqa: F401 - fixture


def _model(trained: Trained, *args: str) -> Result:
    return CliRunner().invoke(cli, ["model", *args, *trained.role_args()])


def _on_chain_weights(trained: Trained, round_id: int) -> tuple[Any, dict[str, np.ndarray]]:
    """The round's record and the weights of the blob whose sha256 is the model digest on chain."""
    rnd = trained.fed.reader.round(RoundId(round_id))
    blob = trained.store.get(rnd.model_cid)
    assert sha256_digest(blob) == rnd.model_digest
    return rnd, dict(decode_global(blob).weights)


def _same_bits(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()


def test_export_safetensors_is_the_current_model_bit_for_bit_with_its_provenance(trained: Trained,
                                                                                  tmp_path: Path) -> None:
    out = tmp_path / "global.safetensors"
    result = _model(trained, "export", "-o", str(out), "--json")

    assert result.exit_code == 0, result.output
    rnd, expected = _on_chain_weights(trained, 2)
    tensors = load_file(str(out))
    assert sorted(tensors) == sorted(expected)
    assert all(_same_bits(tensors[k], expected[k]) for k in expected)
    with safe_open(str(out), "np") as f:
        meta = f.metadata()
    assert meta["round"] == "2" and meta["model_digest"] == digest_hex(rnd.model_digest)
    assert meta["model_cid"] == rnd.model_cid and meta["task_version"] == str(rnd.task_version)
    assert meta["chain_id"] == str(trained.env.conn.chain_id)
    assert meta["contract"].lower() == trained.env.deployment.address.lower()
    assert meta["model_spec_digest"] == digest_hex(trained.fed.doc.model_spec_digest())
    assert meta["fedchain_version"] == __version__
    doc = json.loads(result.output)
    assert doc["round"] == 2 and doc["file_format"] == "safetensors"
    assert doc["file_sha256"] == digest_hex(sha256_digest(out.read_bytes()))


def test_export_pt_of_round_one_loads_into_the_task_model(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "round1.pt"
    result = _model(trained, "export", "--round", "1", "-o", str(out))

    assert result.exit_code == 0, result.output
    _, expected = _on_chain_weights(trained, 1)
    _, latest = _on_chain_weights(trained, 2)
    module = build_model(trained.fed.doc.spec(), 0)
    module.load_state_dict(torch.load(out))
    state = {k: v.detach().numpy() for k, v in module.state_dict().items()}
    assert all(_same_bits(state[k], expected[k]) for k in expected)
    assert not all(_same_bits(expected[k], latest[k]) for k in expected)  # round 1's model, not the current one


def test_a_store_blob_that_is_not_the_one_on_chain_is_refused_and_nothing_is_written(trained: Trained,
                                                                                     tmp_path: Path) -> None:
    rnd = trained.fed.reader.round(RoundId(2))
    path = trained.store.path_of(rnd.model_cid)
    original = path.read_bytes()
    other = trained.store.get(trained.fed.reader.round(RoundId(1)).model_cid)
    out = tmp_path / "global.safetensors"
    path.chmod(0o600)
    path.write_bytes(other)  # a valid global-model blob, but not round 2's
    try:
        result = _model(trained, "export", "-o", str(out))
    finally:
        path.write_bytes(original)

    assert result.exit_code == ExitCode.INTEGRITY, result.output
    assert rnd.model_cid in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("name", ["model.bin", "model", "model.pth"])
def test_an_unknown_suffix_is_a_usage_error_and_nothing_is_written(trained: Trained, tmp_path: Path, name: str) -> None:
    result = _model(trained, "export", "-o", str(tmp_path / name))

    assert result.exit_code == ExitCode.USAGE, result.output
    assert ".safetensors or .pt" in result.output
    assert list(tmp_path.iterdir()) == []


def test_an_open_or_missing_round_has_no_model_to_export(trained: Trained, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    with chain_snapshot(trained.env):
        assert trained.fed.open_round() == 3
        still_open = _model(trained, "export", "--round", "3", "-o", str(out))
    missing = _model(trained, "export", "--round", "9", "-o", str(out))

    assert still_open.exit_code == ExitCode.CHAIN, still_open.output
    assert "round 3 is open, not finalised" in still_open.output
    assert missing.exit_code == ExitCode.CHAIN and "round 9 does not exist" in missing.output
    assert not out.exists()


def test_a_disputed_round_is_refused_and_latest_is_the_fallback_model(trained: Trained, tmp_path: Path) -> None:
    fed = trained.fed
    findings = fed.store.put(b"round 2 findings")
    with chain_snapshot(trained.env):
        fed.admin.dispute_round(RoundId(2), fed.env.accounts.aggregator.address, sha256_digest(b"round 2 findings"),
                                findings, "model does not replay")
        disputed = _model(trained, "export", "--round", "2", "-o", str(tmp_path / "r2.pt"))
        latest = _model(trained, "show", "--json")

    assert disputed.exit_code == ExitCode.CHAIN, disputed.output
    assert "round 2 was disputed" in disputed.output
    assert not (tmp_path / "r2.pt").exists()
    assert latest.exit_code == 0, latest.output
    shown = json.loads(latest.output)
    assert shown["round"] == 1
    assert shown["model_digest"] == digest_hex(fed.reader.round(RoundId(1)).model_digest)


def test_show_reports_the_round_digest_and_parameter_count(trained: Trained) -> None:
    result = _model(trained, "show", "--round", "2", "--json")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    _, expected = _on_chain_weights(trained, 2)
    assert doc["parameters"] == sum(v.size for v in expected.values()) > 0
    assert doc["model_cid"] == trained.fed.reader.round(RoundId(2)).model_cid
    assert doc["dataset"] == "breast_cancer" and doc["task_version"] == 1


def test_evaluate_gives_the_accuracy_of_the_verified_model_on_a_data_file(trained: Trained, tmp_path: Path) -> None:
    data = trained.fed.clients[0].path
    result = _model(trained, "evaluate", "--data", str(data), "--json")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    x, y = load_client_data(data)
    exported = tmp_path / "m.pt"
    assert _model(trained, "export", "-o", str(exported)).exit_code == 0
    module = build_model(trained.fed.doc.spec(), 0)
    module.load_state_dict(torch.load(exported))
    with torch.no_grad():
        predicted = module(torch.from_numpy(np.asarray(x, dtype=np.float32))).argmax(dim=1).numpy()
    assert doc["samples"] == len(y) > 0
    assert doc["accuracy"] == pytest.approx(float((predicted == y).mean()), abs=1e-12)
    assert 0 < doc["loss"] < 10 and doc["round"] == 2


def test_evaluate_refuses_a_data_file_of_another_schema(trained: Trained, tmp_path: Path) -> None:
    from fedchain.fl.schema import save_client_data
    from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset

    other_cfg = ExperimentConfig(dataset="german_credit", clients=1, rounds=1, min_updates=1)
    other = build_task(other_cfg, load_task_dataset(other_cfg))
    x = np.zeros((4, 61), dtype=np.float32)
    path = save_client_data(tmp_path / "other.npz", x, np.zeros(4, dtype=np.int64), other.schema())
    result = _model(trained, "evaluate", "--data", str(path))

    assert result.exit_code == ExitCode.DATA_SCHEMA, result.output
    assert "schema" in result.output


def test_export_reads_the_model_from_the_ipfs_node(trained: Trained, ipfs_store: Any, ipfs_api_url: str,
                                                   tmp_path: Path) -> None:
    rnd, expected = _on_chain_weights(trained, 2)
    for cid in (rnd.model_cid, trained.fed.task_cid):  # the same blobs on the node, under the same CIDs
        assert ipfs_store.put(trained.store.get(cid)) == cid
    out = tmp_path / "global.pt"
    args = ["--state-dir", str(tmp_path / "state"), "--store", "ipfs", "--ipfs-api", ipfs_api_url,
            "--rpc-url", trained.env.url, "--address", trained.env.deployment.address]
    result = CliRunner().invoke(cli, ["model", "export", "-o", str(out), "--json", *args])

    assert result.exit_code == 0, result.output
    loaded = torch.load(out)
    assert sorted(loaded) == sorted(expected)
    assert all(_same_bits(loaded[k].numpy(), expected[k]) for k in expected)
    assert json.loads(result.output)["model_digest"] == digest_hex(rnd.model_digest)

"""`fedchain participant register` against the real devnet: the declared dataset size goes on chain, from
--samples or counted from --data."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner, Result

from fedchain.cli.main import cli
from fedchain.fl.datasets import load_dataset
from fedchain.fl.schema import save_client_data
from fedchain.ports import ParticipantRegistered
from fedchain.types import Address
from tests.fixtures_devnet import DevnetEnv


def _register(env: DevnetEnv, key: str, *args: str) -> Result:
    base = ["--state-dir", str(env.state_dir), "--rpc-url", env.url, "--json"]
    return CliRunner(env={"FEDCHAIN_PRIVATE_KEY": key}).invoke(
        cli, ["participant", "register", "--organisation", "Clinic Nord", *args, *base]
    )


def test_register_records_the_samples_given(chain_env: DevnetEnv) -> None:
    who = chain_env.accounts.participants[4]
    result = _register(chain_env, who.key.hex(), "--samples", "321")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["declared_samples"] == 321
    assert chain_env.ledger().participant(Address(who.address)).declared_samples == 321
    events = [e for e in chain_env.ledger().history() if isinstance(e, ParticipantRegistered)]
    assert [(e.participant, e.declared_samples) for e in events] == [(Address(who.address), 321)]


def test_register_counts_the_rows_of_the_data_file(chain_env: DevnetEnv, tmp_path: Path) -> None:
    bc = load_dataset("breast_cancer")
    data = save_client_data(tmp_path / "client_0.npz", bc.x_train[:37], bc.y_train[:37], bc.schema)
    who = chain_env.accounts.participants[4]
    result = _register(chain_env, who.key.hex(), "--data", str(data))
    assert result.exit_code == 0, result.output
    assert chain_env.ledger().participant(Address(who.address)).declared_samples == 37


def test_register_without_a_dataset_size_is_refused_before_any_transaction(chain_env: DevnetEnv) -> None:
    block = chain_env.conn.block_number()
    result = _register(chain_env, chain_env.accounts.participants[4].key.hex())
    assert result.exit_code == 2
    assert "--samples N" in result.output and "--data FILE" in result.output
    zero = _register(chain_env, chain_env.accounts.participants[4].key.hex(), "--samples", "0")
    assert zero.exit_code == 2 and "--samples" in zero.output
    assert chain_env.conn.block_number() == block

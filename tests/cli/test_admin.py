"""`fedchain admin` against the real devnet (and IPFS node): admission, removal, membership, task."""

import json

from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.ports import ParticipantStatus, TaskConfigured
from fedchain.protocol.task import TaskDocument, verify_task


def _invoke(env, *args: str, key: str | None = None):
    extra = {"FEDCHAIN_PRIVATE_KEY": key} if key else {}
    base = ["--state-dir", str(env.state_dir), "--rpc-url", env.url, "--json"]
    return CliRunner(env=extra).invoke(cli, ["admin", *args, *base])


def test_admit_then_remove_a_registered_participant(chain_env) -> None:
    newcomer = chain_env.accounts.participants[5]
    chain_env.ledger(newcomer).register("Clinic Nord", "healthcare", b"\x02" * 33, 500)
    admin_key = chain_env.accounts.admin.key.hex()

    admitted = _invoke(chain_env, "admit", newcomer.address, key=admin_key)
    assert admitted.exit_code == 0, admitted.output
    assert json.loads(admitted.output)["tx"]["gas_used"] > 0
    assert chain_env.ledger().participant(newcomer.address).status == ParticipantStatus.ACTIVE

    removed = _invoke(chain_env, "remove", newcomer.address, "--reason", "left the consortium", key=admin_key)
    assert removed.exit_code == 0, removed.output
    assert chain_env.ledger().participant(newcomer.address).status == ParticipantStatus.REMOVED


def test_admit_by_a_non_admin_is_a_decoded_revert(chain_env) -> None:
    newcomer = chain_env.accounts.participants[6]
    chain_env.ledger(newcomer).register("Bank Süd", "finance", b"\x03" * 33, 500)
    result = _invoke(chain_env, "admit", newcomer.address, key=chain_env.accounts.outsider.key.hex())
    assert result.exit_code == ExitCode.CONTRACT_REVERT
    assert "AccessControlUnauthorizedAccount" in result.output
    assert chain_env.ledger().participant(newcomer.address).status == ParticipantStatus.PENDING


def test_members_and_task_read_the_ledger(federation_env) -> None:
    members = _invoke(federation_env, "members")
    assert members.exit_code == 0, members.output
    doc = json.loads(members.output)
    assert doc["active"] == 3
    assert {p["address"] for p in doc["participants"]} >= {a.address for a in federation_env.admitted}

    task = _invoke(federation_env, "task", "--chain-only")  # its CID names no stored document
    assert task.exit_code == 0, task.output
    assert json.loads(task.output)["task"]["version"] == 1


def _configure_task(env, ipfs_api_url: str, *args: str):
    return _invoke(env, "configure-task", "--store", "ipfs", "--ipfs-api", ipfs_api_url, *args,
                   key=env.accounts.admin.key.hex())


def test_configure_task_publishes_the_document_and_its_digests(chain_env, ipfs_api_url, ipfs_store) -> None:
    result = _configure_task(chain_env, ipfs_api_url, "--strategy", "fedprox", "--strategy-param", "mu=0.01",
                             "--robust", "median", "--local-epochs", "2", "--min-updates", "2")
    assert result.exit_code == 0, result.output

    out = json.loads(result.output)
    task = chain_env.ledger().task()
    assert task is not None and task.version == 1
    assert out["task"]["config_cid"] == task.config_cid
    assert out["task"]["strategy_digest"] == "0x" + bytes(task.strategy_digest).hex()
    doc = TaskDocument.from_bytes(ipfs_store.get(task.config_cid))
    verify_task(doc, task)
    assert (doc.dataset, doc.min_updates, doc.strategy_config().name) == ("breast_cancer", 2, "fedprox")
    assert doc.strategy_config().params["mu"] == 0.01


def test_configure_task_again_bumps_the_version(federation_env, ipfs_api_url) -> None:
    result = _configure_task(federation_env, ipfs_api_url, "--dataset", "digits", "--model", "mlp")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["task"]["version"] == 2
    assert federation_env.ledger().task().version == 2


def test_configure_task_while_a_round_is_open_is_a_decoded_revert(federation_env, ipfs_api_url) -> None:
    aggregator = federation_env.ledger(federation_env.accounts.aggregator)
    round_id = aggregator.open_round(b"\x11" * 32, "bafkreibasemodel", 60, 1).round_id

    result = _configure_task(federation_env, ipfs_api_url)
    assert result.exit_code == ExitCode.CONTRACT_REVERT, result.output
    assert f"FederationRoundInProgress(roundId={round_id})" in result.output
    assert federation_env.ledger().task().version == 1


def test_configure_task_with_an_unknown_strategy_is_a_config_error(chain_env, ipfs_api_url) -> None:
    result = _configure_task(chain_env, ipfs_api_url, "--strategy", "fedmagic")
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "unknown strategy 'fedmagic'" in result.output
    assert not [e for e in chain_env.ledger().history() if isinstance(e, TaskConfigured)]


def test_configure_task_records_the_commit_window_bound_and_the_default_weight_bounds(chain_env, ipfs_api_url,
                                                                                     ipfs_store) -> None:
    result = _configure_task(chain_env, ipfs_api_url, "--commit-duration", "600", "--max-commit-duration", "1800")
    assert result.exit_code == 0, result.output

    task = chain_env.ledger().task()
    doc = TaskDocument.from_bytes(ipfs_store.get(task.config_cid))
    assert task.max_commit_duration == doc.max_commit_duration == 1800 and doc.commit_duration == 600
    strategy = doc.strategy_config()
    assert [(r.name, dict(r.params)) for r in strategy.robust] == [("norm_clip", {"max_norm": 100.0, "reject": True})]
    assert strategy.params["max_weight_share"] == 0.3


def test_configure_task_with_a_commit_window_bound_below_the_commit_duration_is_a_config_error(chain_env,
                                                                                                ipfs_api_url) -> None:
    result = _configure_task(chain_env, ipfs_api_url, "--commit-duration", "600", "--max-commit-duration", "599")
    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "max_commit_duration must be in [commit_duration = 600" in result.output
    assert not [e for e in chain_env.ledger().history() if isinstance(e, TaskConfigured)]

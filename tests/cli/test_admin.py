"""`fedchain admin` against the real devnet: admission, removal, membership, task."""

import json

from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.ledger import ParticipantStatus


def _invoke(env, *args: str, key: str | None = None):
    extra = {"FEDCHAIN_PRIVATE_KEY": key} if key else {}
    base = ["--state-dir", str(env.state_dir), "--rpc-url", env.url, "--json"]
    return CliRunner(env=extra).invoke(cli, ["admin", *args, *base])


def test_admit_then_remove_a_registered_participant(chain_env) -> None:
    newcomer = chain_env.accounts.participants[5]
    chain_env.ledger(newcomer).register("Clinic Nord", "healthcare", b"\x02" * 33)
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
    chain_env.ledger(newcomer).register("Bank Süd", "finance", b"\x03" * 33)
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

    task = _invoke(federation_env, "task")
    assert task.exit_code == 0, task.output
    assert json.loads(task.output)["task"]["version"] == 1

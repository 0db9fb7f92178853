"""`fedchain admin configure-task --dp ...` and `fedchain participant status` on a private task, against the real
devnet and IPFS node: the policy and budget go on chain; bad policies are clear errors with nothing stored."""

from __future__ import annotations

import json
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.ports import TaskConfigured
from fedchain.protocol.task import TaskDocument, verify_task

pytestmark = [pytest.mark.devnet, pytest.mark.ipfs]


def _invoke(env: Any, *args: str, key: str | None = None) -> Any:
    extra = {"FEDCHAIN_PRIVATE_KEY": key} if key else {}
    base = ["--state-dir", str(env.state_dir), "--rpc-url", env.url, "--json"]
    return CliRunner(env=extra).invoke(cli, [*args, *base])


def _configure(env: Any, ipfs_api_url: str, *args: str) -> Any:
    return _invoke(env, "admin", "configure-task", "--store", "ipfs", "--ipfs-api", ipfs_api_url, *args,
                   key=env.accounts.admin.key.hex())


def _no_task(env: Any) -> bool:
    return not [e for e in env.ledger().history() if isinstance(e, TaskConfigured)]


def test_configure_a_private_task_then_a_participant_sees_its_budget(chain_env: Any, ipfs_api_url: str,
                                                                      ipfs_store: Any) -> None:
    result = _configure(chain_env, ipfs_api_url, "--dp", "dpsgd", "--epsilon-budget", "3", "--dp-sample-rate", "0.05",
                        "--dp-rounds", "5", "--min-updates", "2")
    assert result.exit_code == 0, result.output
    task = chain_env.ledger().task()
    doc = TaskDocument.from_bytes(ipfs_store.get(task.config_cid))
    verify_task(doc, task)
    assert doc.privacy is not None and doc.privacy.sample_rate == 0.05
    assert task.epsilon_budget == 3_000_000 and bytes(task.privacy_policy_digest) == bytes(doc.privacy.digest())

    who = chain_env.accounts.participants[0]
    chain_env.ledger(who).register("St Mary's", "healthcare", b"\x02" * 33, 100)
    status = _invoke(chain_env, "participant", "status", who.address)
    assert status.exit_code == 0, status.output
    privacy = json.loads(status.output)["privacy"]
    assert (privacy["epsilon_spent"], privacy["epsilon_budget"]) == (0.0, 3.0)


@pytest.mark.parametrize(("args", "code", "needle"), [
    (("--dp", "dpsgd", "--epsilon-budget", "3", "--dp-sample-rate", "0.05", "--noise-multiplier", "0"),
     ExitCode.CONFIG, "noise_multiplier must be a positive"),
    (("--dp", "client", "--epsilon-budget", "3", "--dp-clip", "-1", "--noise-multiplier", "1", "--min-updates", "2"),
     ExitCode.CONFIG, "clip must be a positive"),
    (("--dp", "dpsgd", "--dp-sample-rate", "0.05", "--noise-multiplier", "1"), ExitCode.USAGE, "--epsilon-budget"),
    (("--dp", "dpsgd", "--epsilon-budget", "3", "--noise-multiplier", "1"), ExitCode.USAGE, "--dp-sample-rate"),
    (("--epsilon-budget", "3",), ExitCode.USAGE, "only with --dp"),
    (("--dp", "dpsgd", "--epsilon-budget", "3", "--dp-sample-rate", "0.05", "--noise-multiplier", "1",
      "--strategy", "scaffold"), ExitCode.CONFIG, "supports the strategies fedavg"),
])
def test_a_bad_privacy_policy_is_a_clear_error_and_nothing_is_stored(chain_env: Any, ipfs_api_url: str,
                                                                      args: tuple[str, ...], code: int,
                                                                      needle: str) -> None:
    result = _configure(chain_env, ipfs_api_url, *args)
    assert result.exit_code == code, result.output
    assert needle in result.output
    assert _no_task(chain_env)

"""``fedchain participant verify ROUND``: a member replays a finalised round with the audit's code
and attests the verdict by hand; a round that is not finalised, an unknown round, or an account the
round did not include gets one line and the participant exit code, with nothing sent."""

from __future__ import annotations

import json
from typing import Any

from click.testing import CliRunner, Result
from eth_account import Account
from eth_account.signers.local import LocalAccount

from fedchain.cli.main import cli
from fedchain.errors import ExitCode
from fedchain.types import RoundId
from tests.protocol.harness import Fed


def verify(fed: Fed, ipfs_api_url: str, key: LocalAccount, *args: str) -> Result:
    return CliRunner().invoke(cli, [
        "participant", "verify", *args, "--state-dir", str(fed.env.state_dir), "--rpc-url", fed.env.url,
        "--store", "ipfs", "--ipfs-api", ipfs_api_url, "--json",
    ], env={"FEDCHAIN_PRIVATE_KEY": key.key.hex()})


def test_an_included_participant_verifies_and_attests_a_round_once(fed: Fed, ipfs_api_url: str) -> None:
    out = fed.run_round()
    member = fed.env.accounts.participants[0]

    first = verify(fed, ipfs_api_url, member, "1")
    again = verify(fed, ipfs_api_url, member, "1")

    assert first.exit_code == 0, first.output
    doc: dict[str, Any] = json.loads(first.stdout)
    assert doc["ok"] is True and doc["attested"] is True and doc["gas_used"] > 0
    assert doc["published_digest"] == "0x" + bytes(out.model_digest or b"").hex()
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["already_attested"] == "ok" and json.loads(again.stdout)["attested"] is False
    assert fed.reader.attestation_counts(RoundId(1)) == (1, 0)
    assert int(fed.reader.attestation_of(RoundId(1), member.address)) == 1


def test_refusals_name_the_problem_and_send_nothing(fed: Fed, ipfs_api_url: str) -> None:
    fed.run_round()
    member = fed.env.accounts.participants[0]
    stranger = Account.create()
    fed.env.conn.fund_from_dev_account(stranger.address, 10**18)
    fed.open_round()  # round 2 is open
    head = fed.env.conn.block_number()

    cases = [
        (member, "2", "round 2 is open: only a finalised round"),
        (member, "7", "round 7 does not exist"),
        (stranger, "1", "committed nothing in round 1"),
    ]
    for key, rid, message in cases:
        refused = verify(fed, ipfs_api_url, key, rid)
        assert refused.exit_code == ExitCode.PARTICIPANT, refused.output
        assert message in refused.stderr and len(refused.stderr.strip().splitlines()) == 1, refused.output
        assert json.loads(refused.stdout)["error"]["kind"] == "participant", refused.stdout  # --json: the error object

    assert fed.env.conn.block_number() == head  # nothing was sent
    assert fed.reader.attestation_counts(RoundId(1)) == (0, 0)

    anyone = verify(fed, ipfs_api_url, stranger, "1", "--no-attest")
    assert anyone.exit_code == 0, anyone.output
    assert json.loads(anyone.stdout)["ok"] is True and json.loads(anyone.stdout)["attested"] is False

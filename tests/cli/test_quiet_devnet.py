"""The operator's round commands on a devnet that mines only when a transaction arrives (the test
devnet runs anvil without ``--block-time``): a deadline that passes with no transaction does not
stall ``round finalize --wait``, ``round close`` or ``aggregator run``; ``round open`` warns about a
minimum its eligible participants cannot reach."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.ports import RoundStatus
from fedchain.storage.cid import compute_cid
from fedchain.types import RoundId
from tests.protocol.harness import Fed, make_fed


def _args(fed: Fed, ipfs_api: str) -> list[str]:
    return ["--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--ipfs-api", ipfs_api, "--store", "ipfs"]


@pytest.fixture()
def as_aggregator(fed: Fed, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + bytes(fed.env.accounts.aggregator.key).hex())


def _open(fed: Fed, ipfs_api: str, *extra: str) -> dict:
    opened = CliRunner().invoke(cli, ["round", "open", *_args(fed, ipfs_api), "--json", *extra])
    assert opened.exit_code == 0, opened.output
    return json.loads(opened.stdout)


def _let_deadline_pass_quietly(fed: Fed, rid: int) -> None:
    """Sleep (by the chain's clock, read off the latest block) past the round's deadline, sending nothing."""
    deadline = fed.reader.round(RoundId(rid)).deadline
    block = fed.env.conn.block_number()
    time.sleep(max(0, deadline - fed.env.conn.block_timestamp()) + 1.5)
    assert fed.env.conn.block_number() == block  # nothing was mined: the chain still says "before the deadline"
    assert fed.env.conn.block_timestamp() <= deadline


def test_finalize_wait_after_a_quiet_deadline_finalises_in_seconds(fed: Fed, ipfs_api_url: str,
                                                                   as_aggregator: None) -> None:
    rid = _open(fed, ipfs_api_url, "--commit-duration", "4")["round"]
    for agent in fed.participants[:2]:  # two of three commit; the third never does
        agent.submit(RoundId(rid))
    _let_deadline_pass_quietly(fed, rid)
    started = time.monotonic()
    fin = CliRunner().invoke(cli, ["round", "finalize", *_args(fed, ipfs_api_url), "--wait", "--json"])
    elapsed = time.monotonic() - started
    assert fin.exit_code == 0, fin.output
    assert json.loads(fin.stdout)["finalized"] is True
    assert elapsed < 20, f"finalize --wait took {elapsed:.1f} s on a quiet devnet"
    assert "the devnet for a block" in fin.stderr
    assert fed.reader.round(RoundId(rid)).included_count == 2


def test_close_and_finalize_without_wait_after_a_quiet_deadline(fed: Fed, ipfs_api_url: str,
                                                                as_aggregator: None) -> None:
    rid = _open(fed, ipfs_api_url, "--commit-duration", "3")["round"]
    _let_deadline_pass_quietly(fed, rid)
    closed = CliRunner().invoke(cli, ["round", "close", *_args(fed, ipfs_api_url), "--reason", "site outage", "--json"])
    assert closed.exit_code == 0, closed.output
    assert fed.reader.round(RoundId(rid)).status == RoundStatus.CLOSED
    assert fed.reader.round(RoundId(rid)).close_reason == "site outage"

    rid2 = _open(fed, ipfs_api_url, "--commit-duration", "3")["round"]
    _let_deadline_pass_quietly(fed, rid2)  # nobody committed: the round closes below its minimum
    fin = CliRunner().invoke(cli, ["round", "finalize", *_args(fed, ipfs_api_url), "--json"])
    assert fin.exit_code == 0, fin.output
    assert json.loads(fin.stdout)["finalized"] is False
    assert fed.reader.round(RoundId(rid2)).status == RoundStatus.CLOSED


def test_aggregator_run_resumes_an_open_round_past_a_quiet_deadline(fed: Fed, ipfs_api_url: str,
                                                                    as_aggregator: None, tmp_path: Path) -> None:
    rid = _open(fed, ipfs_api_url, "--commit-duration", "6")["round"]  # left open by an aggregator that stopped
    fed.participants[0].submit(RoundId(rid))
    key = "0x" + bytes(fed.env.accounts.participants[1].key).hex()
    sub = CliRunner().invoke(cli, ["participant", "submit", *_args(fed, ipfs_api_url), "--data", str(fed.clients[1].path),
                                   "--work-dir", str(tmp_path / "p1"), "--json"], env={"FEDCHAIN_PRIVATE_KEY": key})
    assert sub.exit_code == 0, sub.output
    # the start-up says what it does, step by step, on stderr (stdout keeps the one JSON document)
    steps = [line for line in sub.stderr.splitlines() if line.startswith("participant [")]
    assert [s.split("] ", 1)[1].split(" ")[0] for s in steps] == ["loading", "unlocking", "training"], sub.stderr
    assert json.loads(sub.stdout)["round"] == rid
    _let_deadline_pass_quietly(fed, rid)
    started = time.monotonic()
    run = CliRunner().invoke(cli, ["aggregator", "run", *_args(fed, ipfs_api_url), "--until-round", str(rid), "--json"])
    assert run.exit_code == 0, run.output
    assert time.monotonic() - started < 20
    rounds = json.loads(run.stdout)["rounds"]
    assert [r["round"] for r in rounds] == [rid] and rounds[0]["finalized"] is True


def test_open_warns_when_min_updates_exceed_the_eligible_participants(fed: Fed, ipfs_api_url: str,
                                                                      as_aggregator: None, tmp_path: Path) -> None:
    ok = _open(fed, ipfs_api_url, "--min-updates", "3", "--commit-duration", "2")
    assert ok["warnings"] == [] and ok["eligible"] == 3
    CliRunner().invoke(cli, ["round", "close", *_args(fed, ipfs_api_url), "--reason", "next", "--wait"])
    result = CliRunner().invoke(cli, ["round", "open", *_args(fed, ipfs_api_url), "--min-updates", "5", "--json",
                                      "--commit-duration", "2"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert len(doc["warnings"]) == 1 and "needs 5 included updates but only 3" in doc["warnings"][0]
    assert "warning: round" in result.stderr and "only 3 participant(s) are eligible" in result.stderr


REVEAL_S = 30


def test_a_commit_reveal_round_moves_to_its_reveal_phase_on_a_quiet_devnet(chain_env, ipfs_store, ipfs_api_url: str,
                                                                           task_files, tmp_path: Path,
                                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The participants reveal only once a block past the commit deadline is mined: the aggregator asks for it when
    the commit deadline passes (not only at the end of the reveal phase, when every reveal would be too late)."""
    fed = make_fed(chain_env, ipfs_store, replace(task_files, doc=replace(task_files.doc, reveal_duration=REVEAL_S)),
                   tmp_path)
    for agent in fed.participants:
        agent.cid_of = compute_cid  # as fedchain participant does
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + bytes(fed.env.accounts.aggregator.key).hex())
    rid = RoundId(_open(fed, ipfs_api_url, "--commit-duration", "4")["round"])
    revealers = fed.participants[:2]  # the third never seals: only the deadline ends the commit phase
    for agent in revealers:
        assert agent.submit(rid).sealed_only
    revealed: list[str] = []
    stop = threading.Event()

    def reveal_when_they_can() -> None:
        pending = list(revealers)
        while pending and not stop.is_set():
            for agent in list(pending):
                if agent.reveal(rid) is not None:
                    revealed.append(agent.address)
                    pending.remove(agent)
            time.sleep(0.3)

    thread = threading.Thread(target=reveal_when_they_can, daemon=True)
    thread.start()
    started = time.monotonic()
    try:
        fin = CliRunner().invoke(cli, ["round", "finalize", *_args(fed, ipfs_api_url), "--wait", "--json"])
    finally:
        stop.set()
        thread.join(timeout=10)
    assert fin.exit_code == 0, fin.output
    assert sorted(revealed) == sorted(a.address for a in revealers)
    assert json.loads(fin.stdout)["finalized"] is True
    assert fed.reader.round(rid).included_count == 2
    assert time.monotonic() - started < REVEAL_S - 5  # over once both revealed, not at the reveal deadline


def test_on_a_chain_that_is_not_a_devnet_the_wait_says_what_it_waits_for(federation_env, tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Where the aggregator may not mine (a real chain), it waits for the chain's blocks: a line when it starts, one
    when the deadline passed; a chain that mines nothing past the deadline is a ChainStalledError, not a hang."""
    from fedchain.cli.quiet_chain import OperatorTransport, devnet_connection
    from fedchain.errors import ChainStalledError
    from fedchain.storage.local import LocalStore

    agg = federation_env.ledger(federation_env.accounts.aggregator)
    assert devnet_connection(agg) is agg.conn  # the test devnet is anvil: a devnet that mines on request
    transport = OperatorTransport(agg, LocalStore(tmp_path / "blobs"), deadline_block_wait_s=2.0)
    transport.devnet = None  # as on a real chain
    rid = agg.open_round(b"\x01" * 32, "bafkreibase", 3, 1).round_id
    with pytest.raises(ChainStalledError, match="no block past its deadline"):
        transport.wait_commit_phase(rid, None)
    err = capsys.readouterr().err
    assert f"round {rid}: commit phase open until" in err and "waiting for the chain to mine a block past it" in err

    agg.close_round(rid, "stalled")  # its deadline passed by the clock: the transaction's block is past it
    rid = agg.open_round(b"\x01" * 32, "bafkreibase", 3, 1).round_id
    miner = threading.Timer(5.0, lambda: federation_env.conn.request("evm_mine"))  # someone sends a transaction
    miner.start()
    try:
        assert transport.wait_commit_phase(rid, None) is True
    finally:
        miner.cancel()

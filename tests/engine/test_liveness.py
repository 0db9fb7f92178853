"""Liveness on a quiet chain: anvil mines only on transactions, so after a deadline nothing
happens on chain until something mines a block. The aggregator waits for a block past the
deadline (the managed devnet mines on an interval; the tests emulate that interval miner by
calling ``evm_mine`` from a thread), gives up with a clear error on a chain that mines nothing,
and can close a round that cannot be finalised; a late participant skips the round and goes on."""

from __future__ import annotations

import json
import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from fedchain.chain.connection import Connection
from fedchain.cli.main import cli
from fedchain.engine.loop import finish_round
from fedchain.errors import ChainStalledError, ExitCode
from fedchain.ports import RoundStatus
from fedchain.types import RoundId
from tests.protocol.harness import Fed

COMMIT_S = 6  # long enough for two participants to commit on a loaded machine


class IntervalMiner:
    """Emulates the managed devnet's interval mining (``anvil --block-time``): from wall-clock
    time ``start_at`` on, mines an empty block every ``interval_s`` seconds."""

    def __init__(self, url: str, start_at: float, interval_s: float = 1.0) -> None:
        self._conn = Connection(url)
        self._start_at = start_at
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="interval-miner", daemon=True)
        self.mined = 0

    def _run(self) -> None:
        if self._stop.wait(max(0.0, self._start_at - time.time())):
            return
        while not self._stop.is_set():
            self._conn.request("evm_mine")
            self.mined += 1
            self._stop.wait(self._interval_s)

    def __enter__(self) -> IntervalMiner:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def _open_short_round(fed: Fed, committers: int) -> tuple[RoundId, int]:
    """Open a round of COMMIT_S seconds; ``committers`` participants commit. Returns the round
    and its deadline as a wall-clock time."""
    transport = fed.aggregator.transport
    transport.commit_duration = COMMIT_S
    rid = transport.open_round().round_id
    # anvil's clock runs ahead after evm_increaseTime and behind after evm_revert: its opening
    # block, mined just now, tells by how much
    skew = fed.env.conn.block_timestamp() - time.time()
    rnd = fed.reader.round(rid)
    for p in fed.participants[:committers]:
        p.submit(rid)
    assert not transport.commit_phase_over(rid)
    return rid, int(rnd.deadline - skew) + 1


def _block_number(fed: Fed) -> int:
    return fed.env.conn.block_number()


def test_engine_waits_for_a_block_past_the_deadline_instead_of_sending_a_doomed_finalize(
    fed: Fed, caplog: pytest.LogCaptureFixture
) -> None:
    rid, deadline = _open_short_round(fed, committers=2)
    before = _block_number(fed)

    caplog.set_level(logging.INFO, logger="fedchain")
    with IntervalMiner(fed.env.url, start_at=deadline + 2.0) as miner:
        out = finish_round(fed.aggregator.transport, fed.aggregator.transport.attach(rid), commit_timeout_s=120)

    assert out.finalized and len(out.included) == 2
    assert miner.mined >= 1 and _block_number(fed) > before
    assert "waiting for a block past it" in caplog.text
    assert "still holds the commit phase open" not in caplog.text  # no transaction was refused on estimation


def test_a_chain_that_mines_nothing_after_the_deadline_is_a_clear_bounded_error(fed: Fed) -> None:
    rid, deadline = _open_short_round(fed, committers=0)
    transport = fed.aggregator.transport
    transport.deadline_block_wait_s = 1.0
    before = _block_number(fed)

    t0 = time.monotonic()
    with pytest.raises(ChainStalledError, match=f"round {rid}: no block past its deadline"):
        finish_round(transport, transport.attach(rid), commit_timeout_s=60)

    assert time.monotonic() - t0 < COMMIT_S + 10
    assert _block_number(fed) == before  # nothing was sent
    assert fed.reader.round(rid).status == RoundStatus.OPEN
    assert ChainStalledError.exit_code == ExitCode.CHAIN_STALLED


def _round_cli(fed: Fed, *args: str) -> Any:
    base = ["--state-dir", str(fed.env.state_dir), "--rpc-url", fed.env.url, "--address", fed.env.deployment.address,
            "--store", "ipfs", "--ipfs-api", fed.store.api_url, "--json"]
    key = fed.env.accounts.aggregator.key.hex()
    return CliRunner(env={"FEDCHAIN_PRIVATE_KEY": key}).invoke(cli, ["round", *args, *base])


def test_round_finalize_wait_finishes_on_a_quiet_chain(fed: Fed) -> None:
    rid, deadline = _open_short_round(fed, committers=2)

    with IntervalMiner(fed.env.url, start_at=deadline + 2.0):
        result = _round_cli(fed, "finalize", str(rid), "--wait")

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["finalized"] is True
    assert fed.reader.round(rid).status == RoundStatus.FINALIZED


def test_round_close_before_the_deadline_is_refused_and_names_the_deadline(fed: Fed) -> None:
    rid = fed.open_round()

    result = _round_cli(fed, "close", str(rid), "--reason", "operator gave up")

    assert result.exit_code == ExitCode.AGGREGATION, result.output
    assert f"round {rid}: commit phase still running" in result.output and "deadline" in result.output
    assert fed.reader.round(rid).status == RoundStatus.OPEN


def test_round_close_after_the_deadline_records_the_reason(fed: Fed, advance_time: Any) -> None:
    rid = fed.open_round()
    fed.participants[0].submit(rid)
    advance_time(fed.doc.commit_duration + 1)

    result = _round_cli(fed, "close", "--reason", "participant blob unusable")

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["round"] == rid and doc["status"] == "closed" and doc["reason"] == "participant blob unusable"
    rnd = fed.reader.round(rid)
    assert rnd.status == RoundStatus.CLOSED and rnd.close_reason == "participant blob unusable"
    assert fed.auditor().audit().ok


def test_round_close_wait_closes_once_a_block_passes_the_deadline(fed: Fed) -> None:
    rid, deadline = _open_short_round(fed, committers=1)

    with IntervalMiner(fed.env.url, start_at=deadline + 1.0):
        result = _round_cli(fed, "close", str(rid), "--reason", "stuck", "--wait")

    assert result.exit_code == 0, result.output
    assert fed.reader.round(rid).status == RoundStatus.CLOSED


def test_round_close_needs_a_reason(fed: Fed) -> None:
    rid = fed.open_round()

    result = _round_cli(fed, "close", str(rid), "--reason", "  ")

    assert result.exit_code == ExitCode.CONFIG, result.output
    assert "reason" in result.output


def test_late_participant_skips_the_round_with_one_line_and_takes_part_in_the_next(
    fed: Fed, advance_time: Any, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    advance_time(fed.doc.commit_duration + 1)  # the interval miner's block past the deadline
    late = fed.participants[2]
    caplog.set_level(logging.WARNING, logger="fedchain")
    done: list[int] = []

    def next_round() -> None:  # once the late participant has given round 1 up, the federation moves on
        while not done:
            if "skipped" in caplog.text:
                fed.aggregator.finalize(rid)
                done.append(int(fed.open_round()))
                for p in fed.participants[:2]:
                    p.submit(RoundId(done[0]))
            time.sleep(0.05)

    helper = threading.Thread(target=next_round, daemon=True)
    helper.start()
    results = late.run(until_round=int(rid) + 1, max_idle_s=120)
    helper.join(timeout=60)

    skipped = [r for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and "FederationCommitTooLate" in skipped[0].getMessage()
    assert [int(r.round_id) for r in results] == [int(rid) + 1]
    assert {c.participant for c in fed.reader.commitments(RoundId(int(rid) + 1))} >= {late.address}


def test_a_commit_after_the_deadline_skips_the_round_and_participant_run_exits_0(
    fed: Fed, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a quiet chain the deadline passes by the clock with no block mined since: the late
    commit is estimated in the pending block (past the deadline) and refused there: the agent
    gets the typed revert (not "out of gas?", exit 27), skips the round and exits 0."""
    rid, deadline = _open_short_round(fed, committers=2)
    while time.time() <= deadline + 1:  # the deadline passes by the clock; no block is mined
        time.sleep(0.1)
    late = fed.participants[2]
    caplog.set_level(logging.INFO, logger="fedchain")
    base = ["--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--store", "ipfs",
            "--ipfs-api", fed.store.api_url, "--state-dir", str(tmp_path / "state")]

    result = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": fed.env.accounts.participants[2].key.hex()}).invoke(cli, [
        "-v", "participant", "run", "--data", str(late.data_path), "--work-dir", str(tmp_path / "late"),
        "--until-round", str(rid), "--json", *base])

    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["results"] == []
    skipped = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert len(skipped) == 1 and f"round {rid}" in skipped[0] and "FederationCommitTooLate" in skipped[0]
    journal = (tmp_path / "late" / "results.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.loads(line)["event"] for line in journal] == ["intent", "skipped"]
    assert len(fed.reader.commitments(rid)) == 2

"""Commit-reveal rounds (a task with ``reveal_duration`` > 0): participants seal a salted
digest of their update in the commit phase, without uploading it, and upload and reveal it
after the commit phase; the aggregator waits for the reveal phase to end. Nobody can copy an
update it cannot see."""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from fedchain.errors import AggregationError
from fedchain.ports import RoundStatus
from fedchain.protocol.participant import ParticipantAgent
from fedchain.storage.cid import compute_cid
from fedchain.types import RoundId
from tests.protocol.harness import Fed, TaskFiles, make_fed

REVEAL_S = 120


@pytest.fixture()
def sealed_fed(chain_env: Any, local_store: Any, task_files: TaskFiles, tmp_path: Path) -> Fed:
    """The test federation, its task asking for commit-reveal rounds, on a store of its own (so
    that what is in it was put there by this test)."""
    files = replace(task_files, doc=replace(task_files.doc, reveal_duration=REVEAL_S))
    fed = make_fed(chain_env, local_store, files, tmp_path)
    for p in fed.participants:
        p.cid_of = compute_cid  # as fedchain participant does
    return fed


def test_participants_seal_without_uploading_then_reveal_and_the_round_finalises(sealed_fed: Fed) -> None:
    fed = sealed_fed
    rid = fed.open_round()
    assert fed.reader.round(rid).commit_reveal

    seals = [p.submit(rid) for p in fed.participants]

    assert [s.function for s in seals] == ["sealUpdate"] * 3 and all(s.sealed_only for s in seals)
    assert fed.reader.commitments(rid) == []
    assert not any(fed.store.has(s.cid) for s in seals)  # nothing anybody could copy
    assert {s.participant for s in fed.reader.seals(rid)} == {p.address for p in fed.participants}
    assert not fed.aggregator.commit_phase_over(rid)  # sealed, not revealed

    reveals = [p.reveal(rid) for p in fed.participants]

    assert [r.function if r else None for r in reveals] == ["revealUpdate"] * 3
    assert [r.cid for r in reveals if r] == [s.cid for s in seals]
    assert all(fed.store.has(s.cid) for s in seals)
    out = fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 3
    assert [e.event for e in fed.participants[0].journal.entries()] == ["seal_intent", "sealed", "intent", "committed"]
    report = fed.auditor().audit()
    assert report.ok, report.findings


def test_a_participant_reveals_only_once_the_commit_phase_is_over(sealed_fed: Fed) -> None:
    fed = sealed_fed
    rid = fed.open_round()
    first = fed.participants[0]
    first.submit(rid)

    assert first.reveal(rid) is None  # two participants have not sealed yet: still the commit phase
    assert fed.reader.commitments(rid) == []


def test_the_aggregator_waits_for_the_reveal_phase_and_leaves_out_what_was_never_revealed(
    sealed_fed: Fed, advance_time: Any, caplog: pytest.LogCaptureFixture
) -> None:
    fed = sealed_fed
    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    for p in fed.participants[:2]:
        p.reveal(rid)

    with pytest.raises(AggregationError, match="commit phase open"):
        fed.aggregator.finalize(rid, commit_timeout_s=0.5)
    assert fed.reader.round(rid).status == RoundStatus.OPEN
    advance_time(fed.doc.commit_duration + REVEAL_S + 1)
    caplog.set_level(logging.WARNING, logger="fedchain")

    out = fed.aggregator.finalize(rid)

    assert out.finalized and set(out.included) == {p.address for p in fed.participants[:2]}
    assert f"1 sealed update(s) never revealed, left out: {fed.participants[2].address}" in caplog.text


def test_a_restarted_participant_reveals_what_it_sealed_before(sealed_fed: Fed) -> None:
    fed = sealed_fed
    rid = fed.open_round()
    p = fed.participants[0]
    sealed = p.submit(rid)
    for other in fed.participants[1:]:
        other.submit(rid)
    restarted = ParticipantAgent(p.ledger, fed.store, p.data_path, p.state_dir, cid_of=compute_cid)

    again = restarted.submit(rid)
    revealed = restarted.reveal(rid)

    assert again.already_committed and again.sealed_only and again.cid == sealed.cid
    assert revealed is not None and revealed.cid == sealed.cid
    assert [c.participant for c in fed.reader.commitments(rid)] == [p.address]


def test_an_agent_that_cannot_compute_cids_says_so_before_sealing(sealed_fed: Fed) -> None:
    from fedchain.errors import ConfigError

    fed = sealed_fed
    rid = fed.open_round()
    p = fed.participants[0]
    p.cid_of = None

    with pytest.raises(ConfigError, match=f"round {rid} is a commit-reveal round.*cid_of"):
        p.submit(rid)
    assert fed.reader.seals(rid) == []


def test_the_participant_agent_seals_then_reveals_in_its_loop(sealed_fed: Fed) -> None:
    fed = sealed_fed
    rid = fed.open_round()
    agent = fed.participants[0]
    agent.block_wait_s = 0.2
    results: list[Any] = []
    loop = threading.Thread(target=lambda: results.extend(agent.run(until_round=int(rid))))
    loop.start()
    try:
        deadline = time.monotonic() + 120
        while len(fed.reader.seals(rid)) < 1 and loop.is_alive() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert loop.is_alive()  # sealed, waiting to reveal
        for p in fed.participants[1:]:
            p.submit(rid)
        for p in fed.participants[1:]:
            p.reveal(rid)
    finally:
        loop.join(timeout=120)

    assert not loop.is_alive()
    assert [r.function for r in results] == ["sealUpdate", "revealUpdate"]
    assert len(fed.reader.commitments(RoundId(rid))) == 3
    assert fed.aggregator.finalize(rid).finalized


def test_participant_submit_seals_in_a_commit_reveal_round(sealed_fed: Fed, tmp_path: Path) -> None:
    import json

    from click.testing import CliRunner

    from fedchain.cli.main import cli

    fed = sealed_fed
    rid = fed.open_round()
    p = fed.participants[0]
    base = ["--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--store", "local",
            "--state-dir", str(Path(fed.store.root).parent), "--json"]

    result = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": fed.env.accounts.participants[0].key.hex()}).invoke(cli, [
        "participant", "submit", "--data", str(p.data_path), "--work-dir", str(tmp_path / "cli"), *base])

    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["function"] == "sealUpdate" and out["round"] == rid
    assert [s.participant for s in fed.reader.seals(rid)] == [p.address]
    assert not fed.store.has(out["cid"])

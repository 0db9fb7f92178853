"""Signed rounds on the real devnet and IPFS node: participants sign their commitments off chain and send them to
the aggregator's inbox, the aggregator posts one root for the round, a participant left out forces its commitment
on chain within the escape window, and the auditor checks every signature of the posted set."""

from __future__ import annotations

import dataclasses
import socket
from pathlib import Path
from typing import Any

import pytest

from fedchain.audit.findings import FindingKind
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ContractRevertError
from fedchain.ports import RoundStatus
from fedchain.protocol.signed import (
    CommitmentSet,
    commitment_set_root,
    encode_commitment_set,
    sign_commitment,
)
from fedchain.protocol.task import SignedCommitsConfig
from fedchain.types import RoundId
from tests.protocol.harness import Fed, TaskFiles, make_fed, make_task_files

ESCAPE_S = 120


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def signed_files(tmp_path_factory: pytest.TempPathFactory) -> TaskFiles:
    signed = SignedCommitsConfig(inbox=f"http://127.0.0.1:{_free_port()}", escape_duration=ESCAPE_S)
    return make_task_files(tmp_path_factory.mktemp("signed-task"), signed_commits=signed)


@pytest.fixture()
def signed_fed(chain_env: Any, ipfs_store: Any, signed_files: TaskFiles, tmp_path: Path):  # type: ignore[no-untyped-def]
    fed = make_fed(chain_env, ipfs_store, signed_files, tmp_path)
    yield fed
    fed.aggregator.transport.close_inbox()


def _past_escape(fed: Fed, rid: RoundId, advance_time: Any) -> None:
    """Mine a block past the round's escape deadline."""
    rnd = fed.reader.round(rid)
    advance_time(max(rnd.escape_deadline - fed.env.conn.block_timestamp() + 1, 1))


def _post_set(fed: Fed, rid: RoundId) -> None:
    """The aggregator's step at the end of the commit phase: seal the inbox and post the round's set."""
    fed.aggregator.transport.post_commitment_set(rid, 60.0)


def test_a_signed_round_posts_one_set_and_no_commitment_on_chain(signed_fed: Fed, advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants:
        p.submit(rid)
    _post_set(signed_fed, rid)  # everyone signed: posted before the deadline; the escape window runs from it
    rnd = signed_fed.reader.round(rid)
    assert rnd.escape_deadline == rnd.deadline + ESCAPE_S
    assert all(p.check_signed_inclusion(rnd) is None for p in signed_fed.participants)  # all in: nobody forces
    assert not signed_fed.aggregator.commit_phase_over(rid)
    _past_escape(signed_fed, rid, advance_time)
    out = signed_fed.aggregator.finalize(rid)

    rnd = signed_fed.reader.round(out.round_id)
    assert out.finalized and len(out.included) == 3
    assert rnd.signed and rnd.set_count == 3 and rnd.commit_count == 3
    assert signed_fed.reader.commitments(out.round_id) == []  # nobody sent commitUpdate
    functions = [r.function for r in signed_fed.aggregator.transport.reports]
    assert "postCommitmentSet" in functions
    report = signed_fed.auditor().audit()
    assert report.ok, report.findings


def test_a_participant_left_out_forces_its_commitment_and_is_included(signed_fed: Fed, advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants[:2]:
        assert p.submit(rid).function == "signCommitment"
    advance_time(signed_fed.doc.commit_duration + 1)
    _post_set(signed_fed, rid)
    late = signed_fed.participants[2]
    late.submit(rid)  # signed after the set was sealed: the inbox refuses it (410), the escape path remains

    forced = late.check_signed_inclusion(signed_fed.reader.round(rid))

    assert forced is not None and forced.tx_hash is not None
    assert [c.participant for c in signed_fed.reader.commitments(rid)] == [late.address]
    _past_escape(signed_fed, rid, advance_time)
    out = signed_fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 3
    assert signed_fed.reader.round(rid).commit_count == 3
    assert signed_fed.auditor().audit().ok


def test_a_participant_in_the_set_that_forces_another_update_is_left_out_of_it_and_named(signed_fed: Fed,
                                                                                           advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants:
        p.submit(rid)
    _post_set(signed_fed, rid)
    cheat = signed_fed.participants[0]
    entry = cheat.journal.signed()[int(rid)]
    # in the escape window, with every other update's CID out in the set: another update forced on chain
    cheat.ledger.commit_update(rid, sha256_digest(b"a different update"), entry.cid, entry.num_samples,
                               entry.metadata_digest)
    _past_escape(signed_fed, rid, advance_time)

    out = signed_fed.aggregator.finalize(rid)

    assert out.finalized and len(out.included) == len(signed_fed.participants)
    assert signed_fed.reader.round(rid).commit_count == len(signed_fed.participants) + 1
    report = signed_fed.auditor().audit()
    named = [f for f in report.findings if f.kind == FindingKind.DUPLICATE_COMMIT]
    assert len(named) == 1 and str(named[0].participant).lower() == cheat.address.lower()
    assert "the signed one stands" in named[0].detail
    assert report.verdict.value == "participant_misconduct"  # handled: the signed update is the one aggregated


def test_a_forced_commitment_after_the_escape_window_is_refused_and_the_round_goes_on(signed_fed: Fed,
                                                                                        advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants[:2]:
        p.submit(rid)
    advance_time(signed_fed.doc.commit_duration + 1)
    _post_set(signed_fed, rid)
    late = signed_fed.participants[2]
    late.submit(rid)
    _past_escape(signed_fed, rid, advance_time)

    with pytest.raises(ContractRevertError) as info:  # what the chain says to a forced commit past the window
        entry = late.journal.signed()[int(rid)]
        late.ledger.commit_update(rid, entry.update_digest, entry.cid, entry.num_samples, entry.metadata_digest)
    assert info.value.error_name == "FederationEscapeWindowClosed"
    assert late.check_signed_inclusion(signed_fed.reader.round(rid)) is None  # the agent: logged, journaled, done
    assert any(e.event == "skipped" and "FederationEscapeWindowClosed" in (e.reason or "")
               for e in late.journal.entries())

    out = signed_fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 2
    assert signed_fed.auditor().audit().ok


def _dishonest_set(fed: Fed, rid: RoundId, *, root: bytes | None = None, swap_in_outsider: bool = False,
                   spoil_signature: bool = False) -> None:
    """The aggregator seals its inbox but posts a set of its own making (a wrong root, or an outsider's signed
    commitment in place of the last participant's)."""
    transport = fed.aggregator.transport
    chain_id, contract = transport.ledger.federation_id()
    entries = list(transport.inbox_for(fed.doc).seal(int(rid)))
    if swap_in_outsider:
        victim = entries.pop()
        outsider = fed.env.accounts.outsider
        entries.append(sign_commitment(bytes(outsider.key), chain_id, contract, int(rid), outsider.address,
                                       victim.update_digest, victim.cid, victim.num_samples, victim.metadata_digest))
    if spoil_signature:  # the last entry's fields as signed, its signature's v flipped: it recovers another key
        victim = entries.pop()
        sig = bytes(victim.signature)
        entries.append(dataclasses.replace(victim, signature=sig[:64] + bytes([55 - sig[64]])))
    cset = CommitmentSet.build(chain_id, contract, int(rid), entries)
    blob = encode_commitment_set(cset)
    cid = fed.store.put(blob)
    transport.ledger.post_commitment_set(rid, root or commitment_set_root(cset), len(entries), sha256_digest(blob), cid)


def test_a_set_whose_root_is_not_its_own_is_named_by_the_audit_and_everyone_forces(signed_fed: Fed,
                                                                                  advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants:
        p.submit(rid)
    _dishonest_set(signed_fed, rid, root=b"\x11" * 32)  # every participant signed: posted before the deadline

    # each participant finds the posted root is not its set's and forces its commitment within the escape window
    rnd = signed_fed.reader.round(rid)
    assert all(p.check_signed_inclusion(rnd) is not None for p in signed_fed.participants)
    _past_escape(signed_fed, rid, advance_time)

    out = signed_fed.aggregator.finalize(rid)
    assert out.finalized and len(out.included) == 3
    findings = signed_fed.auditor().audit().findings
    mismatch = [f for f in findings if f.kind == FindingKind.COMMITMENT_SET_INVALID]
    assert mismatch and "root_mismatch" in mismatch[0].detail
    assert mismatch[0].responsible_address == signed_fed.env.accounts.aggregator.address


def test_a_signature_by_an_unregistered_key_is_left_out_and_named_by_the_audit(signed_fed: Fed,
                                                                                advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants:
        p.submit(rid)
    _dishonest_set(signed_fed, rid, swap_in_outsider=True)
    victim = max(signed_fed.participants, key=lambda p: p.address.lower())
    rnd = signed_fed.reader.round(rid)
    assert victim.check_signed_inclusion(rnd) is not None  # left out: it forces
    _past_escape(signed_fed, rid, advance_time)

    out = signed_fed.aggregator.finalize(rid)

    outsider = signed_fed.env.accounts.outsider.address
    assert out.finalized and outsider not in out.included
    assert len(out.included) == 3
    findings = [f for f in signed_fed.auditor().audit().findings if f.kind == FindingKind.COMMITMENT_SET_INVALID]
    assert [f.participant for f in findings] == [outsider]
    assert "not_eligible" in findings[0].detail


def test_opening_a_signed_round_in_a_private_task_is_refused_by_the_task(tmp_path: Path) -> None:
    from fedchain.errors import ConfigError

    with pytest.raises(ConfigError, match="signed commitments cannot be combined with commit-reveal"):
        make_task_files(tmp_path, reveal_duration=30,
                        signed_commits=SignedCommitsConfig(inbox="http://127.0.0.1:9", escape_duration=10))


def test_the_round_record_of_a_plain_round_is_not_signed(fed: Fed) -> None:
    rid = fed.open_round()

    rnd = fed.reader.round(rid)
    assert not rnd.signed and rnd.escape_deadline == 0 and rnd.status == RoundStatus.OPEN


def test_an_entry_whose_signature_the_aggregator_spoiled_makes_its_participant_force(signed_fed: Fed,
                                                                                    advance_time) -> None:
    rid = signed_fed.open_round()
    for p in signed_fed.participants:
        p.submit(rid)
    _dishonest_set(signed_fed, rid, spoil_signature=True)
    victim = max(signed_fed.participants, key=lambda p: p.address.lower())
    rnd = signed_fed.reader.round(rid)

    assert victim.check_signed_inclusion(rnd) is not None  # its leaf is there, but not as it signed it
    assert all(p.check_signed_inclusion(rnd) is None for p in signed_fed.participants if p is not victim)
    _past_escape(signed_fed, rid, advance_time)
    out = signed_fed.aggregator.finalize(rid)

    assert out.finalized and victim.address in out.included and len(out.included) == 3
    findings = [f for f in signed_fed.auditor().audit().findings if f.kind == FindingKind.COMMITMENT_SET_INVALID]
    assert [f.participant for f in findings] == [victim.address] and "bad_signature" in findings[0].detail

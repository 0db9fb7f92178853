"""Participant agents in secure-aggregation rounds on the real devnet and IPFS node: they advertise, commit
masked inputs and post their unmasking shares, each once, across restarts; the survivors' records unmask to the
base model plus the mean of their clipped deltas; simulated dropouts at each stage leave the round recoverable;
a peer's garbage advertisement is left out of U1 without stopping anyone."""

from __future__ import annotations

import stat
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import fedchain.protocol.participant as participant_module
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import PrivacyError
from fedchain.protocol.blobs import decode_global, initial_global
from fedchain.protocol.participant import (
    DROPOUT_STAGES,
    ParticipantAgent,
    SubmitResult,
    dropout_stage,
)
from fedchain.protocol.secure import (
    SecAggConfig,
    clip_l2,
    fetch_round_records,
    flatten,
    index_of,
    masked_metadata_digest,
    model_dimension,
    round_context,
    round_members,
    secure_aggregate,
)
from fedchain.secagg.messages import RevealKind, UnmaskingShares
from fedchain.secagg.protocol import advertise
from fedchain.sim.config import PrivacyRequest
from fedchain.types import Digest, RoundId
from tests.protocol.harness import Fed, make_fed, make_task_files

pytestmark = [pytest.mark.devnet, pytest.mark.ipfs]

N = 4
CLIP = 5.0
PHASE = 300  # seconds of the advertise and unmask phases


@pytest.fixture(scope="module")
def secure_files(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return make_task_files(tmp_path_factory.mktemp("secure"), clients=N,
                           secagg=SecAggConfig(clip=CLIP, advertise_duration=PHASE, unmask_duration=PHASE))


@pytest.fixture()
def sfed(chain_env: Any, ipfs_store: Any, secure_files: Any, tmp_path: Path) -> Fed:
    fed = make_fed(chain_env, ipfs_store, secure_files, tmp_path)
    for p in fed.participants:
        p.record_window_s = 1.0  # a missing peer blob is not waited for long in tests
    return fed


def open_secure(fed: Fed) -> RoundId:
    """Open round 1 as a secure round from the task's initial model, as the aggregator."""
    blob = initial_global(fed.doc.spec(), fed.doc.seed)
    cid = fed.store.put(blob)
    assert fed.doc.secagg is not None
    aggregator = fed.env.ledger(fed.env.accounts.aggregator)
    report = aggregator.open_secure_round(sha256_digest(blob), cid, PHASE, fed.doc.commit_duration, fed.doc.min_updates,
                                          PHASE)
    assert report.round_id is not None
    return RoundId(int(report.round_id))


def drive(agents: list[ParticipantAgent], rid: RoundId, *, passes: int = 6) -> dict[int, list[SubmitResult]]:
    """Each agent takes the steps due now, in turn, until a whole pass changes nothing."""
    out: dict[int, list[SubmitResult]] = {i: [] for i in range(len(agents))}
    for _ in range(passes):
        progress = False
        for i, agent in enumerate(agents):
            done = agent.secure_step(rid)
            out[i] += done
            progress = progress or bool(done)
        if not progress:
            break
    return out


def pass_deadline(fed: Fed, deadline: int) -> None:
    """Let ``deadline`` pass, in a block (the devnet mines only on transactions)."""
    now = fed.env.conn.block_timestamp()
    assert now <= deadline
    fed.env.conn.request("evm_increaseTime", [int(deadline - now + 1)])
    fed.env.conn.request("evm_mine")


def end_commit_phase(fed: Fed, rid: RoundId) -> None:
    """Let the commit deadline pass, not the unmask deadline."""
    pass_deadline(fed, fed.reader.round(rid).deadline)
    assert fed.reader.commit_phase_over(rid)


def drive_round(fed: Fed, agents: list[ParticipantAgent], rid: RoundId) -> dict[int, list[SubmitResult]]:
    """:func:`drive`, letting a phase's deadline pass when someone who could act there did not."""
    done = drive(agents, rid)
    if not fed.reader.advertise_phase_over(rid):
        pass_deadline(fed, fed.reader.round(rid).advertise_deadline)
        for i, more in drive(agents, rid).items():
            done[i] += more
    if not fed.reader.commit_phase_over(rid):
        end_commit_phase(fed, rid)
        for i, more in drive(agents, rid).items():
            done[i] += more
    return done


def functions(results: list[SubmitResult]) -> list[str]:
    return [r.function for r in results]


def unmask_round(fed: Fed, rid: RoundId) -> Any:
    """What an aggregator computes from the round's public records (fetched and checked)."""
    rnd = fed.reader.round(rid)
    assert fed.doc.secagg is not None
    base = decode_global(fed.store.get(rnd.base_model_cid))
    members = round_members(fed.reader.history(to_block=rnd.opened_block), rnd)
    chain_id, contract = fed.reader.federation_id()
    ctx = round_context(chain_id, contract, rnd, members, fed.doc.secagg, model_dimension(base))
    commitments = fed.reader.commitments(rid)
    records = fetch_round_records(fed.store, ctx, fed.reader.advertisements(rid), commitments,
                                  fed.reader.unmasking_shares(rid), window_s=2.0)
    out = secure_aggregate(fed.doc.strategy, fed.doc.secagg, base, rid, rnd.base_model_digest, ctx, records,
                           commitments, fed.doc.min_updates)
    return ctx, base, records, out


def expected_model(fed: Fed, rid: RoundId, survivors: list[ParticipantAgent], base: Any) -> dict[str, np.ndarray]:
    """base + mean of the survivors' clipped deltas, each recomputed by training again (training is seeded)."""
    rnd = fed.reader.round(rid)
    names = sorted(base.weights)
    deltas = []
    for agent in survivors:
        x, y = agent.load_data(fed.doc.schema())
        update, _, _ = agent._train(fed.doc, rnd, base, x, y)
        clipped, _ = clip_l2(flatten(update.model_tensors, names), CLIP)
        deltas.append(clipped)
    mean = np.mean(deltas, axis=0)
    out, at = {}, 0
    for n in names:
        size = np.asarray(base.weights[n]).size
        out[n] = np.asarray(base.weights[n], dtype=np.float64) + mean[at:at + size].reshape(np.shape(base.weights[n]))
        at += size
    return out


def assert_unmasks_to(fed: Fed, rid: RoundId, survivors: list[ParticipantAgent]) -> Any:
    ctx, base, records, out = unmask_round(fed, rid)
    assert out.failure is None, out.failure
    assert out.findings == () and records.problems == ()
    assert sorted(a.lower() for a in out.aggregate.included) == sorted(s.address.lower() for s in survivors)
    want = expected_model(fed, rid, survivors, base)
    got = out.aggregate.model.weights
    assert fed.doc.secagg is not None
    bound = fed.doc.secagg.quantiser().mean_error_bound() + 1e-5  # the coding's error, float32 weights
    for n in want:
        assert np.max(np.abs(np.asarray(got[n], dtype=np.float64) - want[n])) <= bound, n
    return ctx, out


def journal_events(agent: ParticipantAgent, rid: RoundId) -> list[str]:
    return [e.event for e in agent.journal.entries() if int(e.round_id) == int(rid)]


def seed_for(stage: str, rid: RoundId, address: str) -> int:
    """A dropout seed that makes ``address`` drop out of round ``rid`` at ``stage`` (with rate 0.999)."""
    return next(s for s in range(10_000) if dropout_stage(0.999, s, int(rid), address) == stage)


# --- dropout draws (no chain) ---------------------------------------------------------------------
def test_dropout_draws_are_deterministic_at_the_rate_and_cover_every_stage() -> None:
    addresses = [f"0x{i:040x}" for i in range(4000)]
    assert all(dropout_stage(0.0, 1, 3, a) is None for a in addresses[:100])
    draws = [dropout_stage(0.2, 7, 3, a) for a in addresses]
    assert draws == [dropout_stage(0.2, 7, 3, a.upper().replace("0X", "0x")) for a in addresses]  # case-blind, stable
    rate = sum(d is not None for d in draws) / len(draws)
    assert 0.17 < rate < 0.23, rate
    assert {d for d in draws if d is not None} == set(DROPOUT_STAGES)
    assert draws != [dropout_stage(0.2, 8, 3, a) for a in addresses]  # the seed matters
    assert draws != [dropout_stage(0.2, 7, 4, a) for a in addresses]  # and the round


# --- a whole round ----------------------------------------------------------------------------------
def test_a_secure_round_runs_end_to_end_and_unmasks_to_the_mean_delta(sfed: Fed) -> None:
    rid = open_secure(sfed)
    agents = sfed.participants
    results: dict[int, list[SubmitResult]] = drive(agents[:-1], rid)  # three advertise
    last = agents[-1]

    def others_catch_up(res: SubmitResult) -> None:  # while the last one runs, the others take their steps
        for i, more in drive(agents[:-1], rid).items():
            results[i] += more

    # the last one advertises (the phase ends), commits and, once the others did, posts its unmasking shares:
    # run(until_round) returns only then, not once it committed
    results[N - 1] = last.run(until_round=int(rid), max_idle_s=60, on_result=others_catch_up)
    for i in range(N):
        assert functions(results[i]) == ["postAdvertisement", "commitUpdate", "postUnmaskingShares"], results[i]
        assert journal_events(agents[i], rid) == ["advertised", "intent", "committed", "unmasked"]
    rnd = sfed.reader.round(rid)
    assert rnd.secure and rnd.advertisement_count == rnd.commit_count == rnd.unmasking_count == N
    assert sfed.reader.reveal_phase_over(rid)  # the round may end: every committer posted its shares
    ctx, out = assert_unmasks_to(sfed, rid, agents)
    assert out.unmasked.dropped == () and len(out.unmasked.revealers) == N
    for c in sfed.reader.commitments(rid):  # the committed metadata binds the masked blob, not a ClientUpdate
        assert bytes(c.metadata_digest) == bytes(masked_metadata_digest(rid, rnd.base_model_digest, c.update_digest,
                                                                        c.num_samples))
    for agent in agents:  # every holder revealed the self-seed share of every committer, nothing else
        state = agent.secure_state(rid)
        assert state is not None and state.unmasking is not None
        record = UnmaskingShares.from_bytes(state.unmasking)
        assert {(rv.owner, rv.kind) for rv in record.reveals} == {(m.index, RevealKind.SELF_SEED) for m in ctx.members}
        path = agent.state_dir / "secagg" / f"round-{rid}.json"
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        assert state.erased and state.mask_private == state.self_seed == b""  # nothing left that unmasks our input
        # nothing more to do: a look at the round (or a restarted agent) posts nothing again
        assert agent.secure_step(rid) == []
        fresh = ParticipantAgent(agent.ledger, agent.store, agent.data_path, agent.state_dir,
                                 secagg_key=agent.secagg_key)
        assert fresh.secure_step(rid) == []
    assert len(sfed.reader.unmasking_shares(rid)) == N


# --- dropouts -------------------------------------------------------------------------------------
@pytest.mark.parametrize("stage", DROPOUT_STAGES)
def test_a_participant_dropping_out_at_each_stage_leaves_the_round_recoverable(sfed: Fed, stage: str) -> None:
    rid = open_secure(sfed)
    agents = sfed.participants
    quitter = agents[1]
    quitter.dropout_rate, quitter.dropout_seed = 0.999, seed_for(stage, rid, quitter.address)
    others = [a for a in agents if a is not quitter]  # dropout_rate 0: they never drop out
    done = drive_round(sfed, agents, rid)
    advertised, unmasked = sfed.reader.secure_participation(rid, quitter.address)
    committed = quitter.own_commitment(rid) is not None
    assert (advertised, committed, unmasked) == {
        "before_advertising": (False, False, False),
        "after_advertising": (True, False, False),
        "after_committing": (True, True, False),
    }[stage]
    assert journal_events(quitter, rid)[-1] == "dropped"
    assert stage.replace("_", " ") in (quitter.journal.entries()[-1].reason or "")
    for i, agent in enumerate(agents):
        if agent is not quitter:
            assert functions(done[i]) == ["postAdvertisement", "commitUpdate", "postUnmaskingShares"], done[i]
    survivors = others if stage != "after_committing" else agents
    ctx, out = assert_unmasks_to(sfed, rid, survivors)
    me = index_of(ctx, quitter.address)
    if stage == "after_advertising":  # its pairwise masks were removed with its reconstructed mask key
        assert out.unmasked.dropped == (me,)
        kinds = {rv.kind for rec in fed_records(sfed, rid) for rv in rec.reveals if rv.owner == me}
        assert kinds == {RevealKind.MASK_KEY}
    elif stage == "before_advertising":
        assert me is not None and me not in out.unmasked.survivors and out.unmasked.dropped == ()
    else:  # committed: its input is in the sum (its self mask rebuilt from the others' shares)
        assert me in out.unmasked.survivors and me not in out.unmasked.revealers
        state = quitter.secure_state(rid)
        assert state is not None and state.erased  # its self seed is public now: its mask key is gone


def fed_records(fed: Fed, rid: RoundId) -> list[UnmaskingShares]:
    return [UnmaskingShares.from_bytes(fed.store.get(e.cid)) for e in fed.reader.unmasking_shares(rid)]


# --- restarts -------------------------------------------------------------------------------------
class Crash(BaseException):
    """The agent dies here (nothing in the agent catches a BaseException)."""


class Crasher:
    """``_test_crash_point`` killing the step, once at each of ``names``, of the agent whose step is ``armed``."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, names: set[str]) -> None:
        self.names, self.armed = names, False
        self.hit: list[str] = []
        monkeypatch.setattr(participant_module, "_test_crash_point", self.point)

    def point(self, name: str) -> None:
        if self.armed and name in self.names and name not in self.hit:
            self.hit.append(name)
            raise Crash(name)

    def step(self, agent: ParticipantAgent, rid: RoundId) -> None:
        """``agent``'s step, which must crash."""
        self.armed = True
        try:
            with pytest.raises(Crash):
                agent.secure_step(rid)
        finally:
            self.armed = False


def restarted(agent: ParticipantAgent) -> ParticipantAgent:
    """A new agent over the same account, data and state dir: all it knows is on disk and on chain."""
    fresh = ParticipantAgent(agent.ledger, agent.store, agent.data_path, agent.state_dir, secagg_key=agent.secagg_key)
    fresh.record_window_s = agent.record_window_s
    return fresh


def test_an_agent_killed_at_each_step_posts_the_same_bytes_once_after_a_restart(
    sfed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    rid = open_secure(sfed)
    agents = list(sfed.participants)
    crash = Crasher(monkeypatch, {"secagg_advertisement_saved", "secagg_masked_stored", "secagg_unmasking_saved"})
    calls: list[int] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return advertise(*args, **kwargs)

    monkeypatch.setattr(participant_module, "advertise", counted)

    # killed after the secrets and advertisement are saved, before anything is stored or posted
    crash.step(agents[0], rid)
    saved = agents[0].secure_state(rid)
    assert saved is not None and sfed.reader.secure_participation(rid, agents[0].address) == (False, False)
    agents[0] = restarted(agents[0])
    assert functions(agents[0].secure_step(rid)) == ["postAdvertisement"]
    (posted,) = [a for a in sfed.reader.advertisements(rid) if a.participant == agents[0].address]
    assert bytes(posted.digest) == bytes(sha256_digest(saved.advertisement))  # the saved bytes, not new secrets
    assert calls == [1]

    # the others advertise (the phase ends), agent 0 is killed once its masked input is stored
    for a in agents[1:]:
        a.secure_step(rid)
    crash.step(agents[0], rid)
    masked = agents[0].secure_state(rid)
    assert masked is not None and masked.masked_digest is not None and agents[0].own_commitment(rid) is None
    agents[0] = restarted(agents[0])
    assert functions(agents[0].secure_step(rid)) == ["commitUpdate"]
    mine = agents[0].own_commitment(rid)
    assert mine is not None and bytes(mine.update_digest) == bytes(masked.masked_digest)

    # the others commit (the phase ends); agent 0 is killed once its unmasking shares are saved
    for a in agents[1:]:
        a.secure_step(rid)
    assert sfed.reader.commit_phase_over(rid)
    crash.step(agents[0], rid)
    shares = agents[0].secure_state(rid)
    assert shares is not None and shares.unmasking is not None
    assert sfed.reader.secure_participation(rid, agents[0].address) == (True, False)
    agents[0] = restarted(agents[0])
    assert functions(agents[0].secure_step(rid)) == ["postUnmaskingShares"]
    (ours,) = [e for e in sfed.reader.unmasking_shares(rid) if e.participant == agents[0].address]
    assert bytes(ours.digest) == bytes(sha256_digest(shares.unmasking))
    assert crash.hit == ["secagg_advertisement_saved", "secagg_masked_stored", "secagg_unmasking_saved"]

    # posted: a restarted agent does nothing again, whatever the file says
    again = restarted(agents[0])
    assert again.secure_step(rid) == [] and again.submit(rid).function == "commitUpdate"
    for a in agents[1:]:
        a.secure_step(rid)
    assert len(sfed.reader.unmasking_shares(rid)) == N
    assert journal_events(agents[0], rid).count("unmasked") == 1
    assert_unmasks_to(sfed, rid, agents)


def test_unmasking_shares_saved_before_a_dropout_are_never_replaced_by_another_kind(
    sfed: Fed, monkeypatch: pytest.MonkeyPatch
) -> None:
    # participant 3 advertises and never commits, so everyone holding its shares reveals its mask key; the
    # record saved before a crash is what the restarted agent posts, even if it now thinks participant 3 survived
    rid = open_secure(sfed)
    agents = list(sfed.participants)
    agents[3].dropout_rate, agents[3].dropout_seed = 0.999, seed_for("after_advertising", rid, agents[3].address)
    drive(agents, rid)
    end_commit_phase(sfed, rid)
    crash = Crasher(monkeypatch, {"secagg_unmasking_saved"})
    crash.step(agents[0], rid)
    saved = agents[0].secure_state(rid)
    assert saved is not None and saved.unmasking is not None
    record = UnmaskingShares.from_bytes(saved.unmasking)
    ctx, _, _, _ = unmask_round(sfed, rid)
    gone = index_of(ctx, agents[3].address)
    assert {rv.kind for rv in record.reveals if rv.owner == gone} == {RevealKind.MASK_KEY}
    # a restart must not recompute (which could reveal a different kind for some owner): it posts the saved bytes
    monkeypatch.setattr(participant_module, "unmask_shares", lambda *a, **k: pytest.fail("recomputed the shares"))
    fresh = restarted(agents[0])
    assert functions(fresh.secure_step(rid)) == ["postUnmaskingShares"]
    (ours,) = [e for e in sfed.reader.unmasking_shares(rid) if e.participant == agents[0].address]
    assert bytes(ours.digest) == bytes(sha256_digest(saved.unmasking))
    monkeypatch.undo()
    drive(agents[1:3], rid)
    assert_unmasks_to(sfed, rid, agents[:3])


# --- hostile peers ----------------------------------------------------------------------------------
def test_a_garbage_advertisement_is_left_out_of_u1_and_stops_nobody(
    sfed: Fed, caplog: pytest.LogCaptureFixture
) -> None:
    rid = open_secure(sfed)
    honest, hostile = sfed.participants[:3], sfed.participants[3]
    junk = b"\x01not an advertisement at all" * 4
    hostile.ledger.post_advertisement(rid, sha256_digest(junk), sfed.store.put(junk))  # type: ignore[attr-defined]
    with caplog.at_level("WARNING", logger="fedchain.protocol.participant"):
        done = drive(honest, rid)
        end_commit_phase(sfed, rid)  # the hostile peer advertised and never commits
        for i, more in drive(honest, rid).items():
            done[i] += more
    for i in range(len(honest)):
        assert functions(done[i]) == ["postAdvertisement", "commitUpdate", "postUnmaskingShares"], done[i]
    assert any(hostile.address in r.getMessage() and "leaving out the advertisement" in r.getMessage()
               for r in caplog.records)
    ctx, _, records, out = unmask_round(sfed, rid)
    assert [p.participant for p in records.problems] == [hostile.address]
    assert out.failure is None
    bad = index_of(ctx, hostile.address)
    assert bad is not None and bad not in out.unmasked.dropped  # never in U1: nothing of it to unmask
    for rec in fed_records(sfed, rid):
        assert all(rv.owner != bad for rv in rec.reveals)
    assert_unmasks_to_with_problems(sfed, rid, honest)


def assert_unmasks_to_with_problems(fed: Fed, rid: RoundId, survivors: list[ParticipantAgent]) -> None:
    _, base, _, out = unmask_round(fed, rid)
    want = expected_model(fed, rid, survivors, base)
    assert fed.doc.secagg is not None
    bound = fed.doc.secagg.quantiser().mean_error_bound() + 1e-5
    for n, w in want.items():
        assert np.max(np.abs(np.asarray(out.aggregate.model.weights[n], dtype=np.float64) - w)) <= bound



# --- after the round: the aggregator's verdict --------------------------------------------------------
def test_after_a_finalised_secure_round_a_left_out_survivor_is_journaled_and_never_contests(
    chain_env: Any, ipfs_store: Any, secure_files: Any, tmp_path: Path
) -> None:
    # the aggregator (the engine's ledger transport) unmasks the sum of all four and, cheating, lists only three
    # as included: in a secure round there is no blob of ours to re-pin and contest, so the agent records it
    fed = make_fed(chain_env, ipfs_store, secure_files, tmp_path, dishonest="drop-update")
    rid = fed.aggregator.open_round()
    assert fed.reader.round(rid).secure
    drive_round(fed, fed.participants, rid)
    report = fed.aggregator.finalize(rid)
    assert report.finalized and len(report.included) == N - 1, report
    verified: list[tuple[str, int]] = []
    for agent in fed.participants:
        agent.verifier = lambda rnd, who=agent.address: verified.append((who, int(rnd.round_id)))
        agent.check_finalised_rounds()
    included = {a.lower() for a in report.included}
    (left_out,) = [a for a in fed.participants if a.address.lower() not in included]
    assert sorted(verified) == sorted((a.address, int(rid)) for a in fed.participants if a is not left_out)
    entry = left_out.journal.entries()[-1]
    assert entry.event == "excluded" and "survivors" in (entry.reason or "")
    assert fed.reader.contest_of(rid, left_out.address) == 0
    left_out.check_finalised_rounds()  # settled: once
    assert [e.event for e in left_out.journal.entries()].count("excluded") == 1


def test_a_private_secure_round_commits_privatised_masked_inputs_with_their_claims(
    chain_env: Any, ipfs_store: Any, tmp_path: Path
) -> None:
    files = make_task_files(tmp_path / "task", clients=N, rounds=2,
                            secagg=SecAggConfig(clip=CLIP, advertise_duration=PHASE, unmask_duration=PHASE),
                            privacy=PrivacyRequest("client", 50.0, noise_multiplier=1.0, min_clients=2))
    fed = make_fed(chain_env, ipfs_store, files, tmp_path / "work")
    policy = fed.doc.privacy
    assert policy is not None and policy.mechanism == "client"
    rid = open_secure(fed)
    assert fed.reader.round(rid).private
    done = drive_round(fed, fed.participants, rid)
    for i in range(N):
        assert functions(done[i]) == ["postAdvertisement", "commitPrivateUpdate", "postUnmaskingShares"], done[i]
    inputs = policy.round_inputs(fed.doc.local_epochs())
    for c in fed.reader.commitments(rid):
        assert c.epsilon_spent is not None and c.epsilon_spent > 0
        assert bytes(c.accountant_digest or b"") == bytes(inputs.digest())
    # the agent's privacy history reads its claims back without decoding a masked input as an update
    assert fed.participants[0].privacy_history() == [inputs]
    with pytest.raises(PrivacyError, match="neither the task's policy"):  # not a BlobFormatError from the masked blob
        fed.participants[0]._round_inputs(rid, Digest(b"\x01" * 32))
    _, _, records, out = unmask_round(fed, rid)
    assert out.failure is None and records.problems == () and len(out.unmasked.survivors) == N


def test_an_agent_without_its_key_skips_the_secure_round_once_and_the_others_finish(
    sfed: Fed, caplog: pytest.LogCaptureFixture
) -> None:
    rid = open_secure(sfed)
    keyless = sfed.participants[3]
    keyless.secagg_key = None
    with caplog.at_level("WARNING", logger="fedchain.protocol.participant"):
        done = drive_round(sfed, sfed.participants, rid)
    assert done[3] == [] and journal_events(keyless, rid) == ["skipped"]
    assert "no X25519 private key" in (keyless.journal.entries()[-1].reason or "")
    assert sum("no X25519 private key" in r.getMessage() for r in caplog.records) == 1  # one warning
    assert sfed.reader.secure_participation(rid, keyless.address) == (False, False)
    for i in range(3):
        assert functions(done[i]) == ["postAdvertisement", "commitUpdate", "postUnmaskingShares"], done[i]
    assert_unmasks_to(sfed, rid, sfed.participants[:3])


def test_below_the_threshold_the_survivors_refuse_to_reveal_and_carry_on(sfed: Fed) -> None:
    # four members, t = 3: two advertise and never commit, so two survivors remain; revealing their self seeds
    # and the others' mask keys could not unmask a sum, so nobody reveals anything
    rid = open_secure(sfed)
    agents = sfed.participants
    for quitter in agents[2:]:
        quitter.dropout_rate, quitter.dropout_seed = 0.999, seed_for("after_advertising", rid, quitter.address)
    done = drive_round(sfed, agents, rid)
    for i in (0, 1):
        assert functions(done[i]) == ["postAdvertisement", "commitUpdate"], done[i]
        entry = agents[i].journal.entries()[-1]
        assert entry.event == "skipped" and "threshold" in (entry.reason or ""), entry
        assert agents[i].secure_step(rid) == []
        state = agents[i].secure_state(rid)
        assert state is not None and state.unmasking is None
    assert sfed.reader.unmasking_shares(rid) == []


def test_a_rewound_chain_gets_the_same_advertisement_masked_input_and_shares_again(sfed: Fed) -> None:
    rid = open_secure(sfed)
    agents = sfed.participants
    drive(agents[:3], rid)  # three advertised
    snapshot = sfed.env.conn.request("evm_snapshot")
    drive(agents, rid)

    def posted() -> tuple[dict[str, bytes], ...]:
        return ({a.participant: bytes(a.digest) for a in sfed.reader.advertisements(rid)},
                {c.participant: bytes(c.update_digest) for c in sfed.reader.commitments(rid)},
                {e.participant: bytes(e.digest) for e in sfed.reader.unmasking_shares(rid)})

    first = posted()
    assert [len(kind) for kind in first] == [N, N, N]
    sfed.env.conn.request("evm_revert", [snapshot])  # the chain forgets the fourth advertisement, every commit and share
    assert [len(kind) for kind in posted()] == [N - 1, 0, 0]

    def others(res: SubmitResult) -> None:
        if res.function == "commitUpdate":
            for a in agents[:3]:
                a.submit(rid)  # each notices its lost commit and takes its steps again
            drive(agents[:3], rid)

    results = agents[3].run(until_round=int(rid), max_idle_s=30, on_result=others)
    assert functions(results) == ["postAdvertisement", "commitUpdate", "postUnmaskingShares"]
    assert posted() == first  # the same bytes: no new secrets, no new masked input, no other shares
    assert_unmasks_to(sfed, rid, agents)

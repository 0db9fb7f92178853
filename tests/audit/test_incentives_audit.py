"""The audit's incentives section on the real devnet and IPFS node: published reward roots
recomputed, claims within budget, slashes and the findings they cite.

The incentives events are given to the audit as the chain layer's typed records, so that a root,
a claim or a slash the contract would refuse can be audited too; the rounds, blobs and evidence
are real (tests/protocol/test_rewards_claims.py runs the same checks on events the contract emitted)."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from fedchain.audit.findings import AuditFindings, FindingKind, Party, Severity
from fedchain.audit.html import render_html, rewards_svg
from fedchain.audit.incentives import audit_incentives
from fedchain.audit.replay import Auditor
from fedchain.chain.incentives import Deposited, RewardClaimed, RewardsPublished, Slashed
from fedchain.codec.canonical import sha256_digest
from fedchain.protocol.rewards import RoundRewardsDoc, build_rewards_doc, compute_round_rewards
from fedchain.protocol.task import RewardsConfig
from fedchain.types import Address, Cid, Digest, RoundId
from tests.protocol.harness import Fed, TaskFiles, make_fed

pytestmark = pytest.mark.devnet
BUDGET = 1000
AT = {"block_number": 1, "tx_hash": "0x" + "00" * 32, "log_index": 0}


def claim_event(rid: int, who: str, amount: int) -> RewardClaimed:
    return RewardClaimed(RoundId(rid), Address(who), amount, **AT)


def slashed(who: str, by: str, amount: int, digest: bytes, cid: str) -> Slashed:
    return Slashed(Address(who), Address(by), amount, Digest(digest), Cid(cid), Address(by), **AT)


@dataclass
class Rewarded:
    fed: Fed
    rid: RoundId
    doc: RoundRewardsDoc


def _rewarded(env: Any, store: Any, files: TaskFiles, work: Path) -> Rewarded:
    fed = make_fed(env, store, replace(files, doc=replace(files.doc, rewards=RewardsConfig("samples"))), work)
    rid = RoundId(fed.run_round().round_id)
    return Rewarded(fed, rid, compute_round_rewards(fed.reader, fed.store, rid, BUDGET))


def _published(fed: Fed, doc: RoundRewardsDoc) -> RewardsPublished:
    data = doc.to_bytes()
    return RewardsPublished(doc.round_id, fed.env.accounts.aggregator.address, bytes(doc.root), doc.total, BUDGET,
                            sha256_digest(data), fed.store.put(data), **AT)


def test_published_rewards_claimed_in_full_audit_clean(chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = _rewarded(chain_env, ipfs_store, task_files, tmp_path)
    events = [_published(r.fed, r.doc), *(claim_event(r.rid, e.participant, e.amount) for e in r.doc.entries),
              Deposited(r.doc.entries[0].participant, 10**17, **AT)]

    section = audit_incentives(r.fed.reader, r.fed.store, events)

    assert section.findings == ()
    assert [(x.round, x.recomputed, x.claimed, x.total) for x in section.rounds] == [(r.rid, True, BUDGET, BUDGET)]
    lines = {p.participant: p for p in section.participants}
    assert {a: p.total_claimed for a, p in lines.items()} == {e.participant: e.amount for e in r.doc.entries}
    assert lines[r.doc.entries[0].participant].deposit_history[0]["event"] == "Deposited"
    data = section.to_json()
    assert set(data) == {"rounds", "participants", "slashes", "cumulative"}
    svg = rewards_svg(section.cumulative())
    assert svg.startswith("<svg") and svg.count("<polyline") == len(r.doc.entries)


def test_a_root_paying_one_participant_double_is_flagged_against_the_aggregator(
        chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = _rewarded(chain_env, ipfs_store, task_files, tmp_path)
    greedy = r.doc.entries[0]
    amounts = {e.participant: e.amount for e in r.doc.entries}
    amounts[greedy.participant] *= 2
    others = {e.participant: e.score for e in r.doc.entries}
    # the blob states a budget its amounts fit; on chain the aggregator declares a total within the real one
    tampered = build_rewards_doc(r.rid, "samples", {}, BUDGET + greedy.amount, None, others, amounts)
    events = [replace(_published(r.fed, tampered), total=BUDGET),
              claim_event(r.rid, greedy.participant, 2 * greedy.amount)]

    section = audit_incentives(r.fed.reader, r.fed.store, events)

    kinds = {f.kind for f in section.findings}
    assert FindingKind.REWARDS_MISMATCH in kinds and FindingKind.CLAIM_UNEXPLAINED in kinds
    mismatch = next(f for f in section.findings if f.kind is FindingKind.REWARDS_MISMATCH
                    and "recomputed" in f.detail)
    assert mismatch.responsible is Party.AGGREGATOR and mismatch.severity is Severity.ERROR
    assert mismatch.responsible_address == r.fed.env.accounts.aggregator.address
    assert f"{greedy.participant} is listed with {2 * greedy.amount}" in mismatch.detail
    assert section.rounds[0].recomputed is False


def test_a_slash_citing_a_finding_that_does_not_name_the_participant_is_flagged(
        chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = _rewarded(chain_env, ipfs_store, task_files, tmp_path)
    admin = r.fed.env.accounts.admin.address
    victim, culprit = r.doc.entries[0].participant, r.doc.entries[1].participant
    blob = AuditFindings(int(r.rid), "0x" + "11" * 32, None, Party.PARTICIPANT, culprit, (), "").to_bytes()
    cid = r.fed.store.put(blob)
    events = [slashed(victim, admin, 5, sha256_digest(blob), cid), slashed(culprit, admin, 5, sha256_digest(blob), cid),
              slashed(culprit, admin, 5, b"\x42" * 32, cid)]

    section = audit_incentives(r.fed.reader, r.fed.store, events)

    assert [s.justified for s in section.slashes] == [False, True, False]
    flagged = [f for f in section.findings if f.kind is FindingKind.SLASH_UNJUSTIFIED]
    assert [f.participant for f in flagged] == [victim, culprit]
    assert all(f.responsible is Party.GOVERNANCE and f.responsible_address == admin for f in flagged)
    assert "does not name" in flagged[0].detail and "does not match its digest" in flagged[1].detail


def test_the_report_carries_the_incentives_section(chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = _rewarded(chain_env, ipfs_store, task_files, tmp_path)

    class View:
        def history(self) -> list[object]:
            return [_published(r.fed, r.doc), claim_event(r.rid, r.doc.entries[0].participant, r.doc.entries[0].amount)]

    report = Auditor(r.fed.reader, r.fed.store, incentives=View()).audit()

    assert report.ok and report.incentives is not None
    data = report.to_json()["incentives"]
    claimed = {p["participant"]: [x["claimed"] for x in p["rounds"]] for p in data["participants"]}
    assert claimed[Address(r.doc.entries[0].participant)] == [True]
    assert sum(v == [False] for v in claimed.values()) == len(r.doc.entries) - 1
    page = render_html(report)
    assert "<h2>Incentives</h2>" in page and "cumulative rewards per participant" in page


def test_a_scores_blob_that_is_not_the_published_one_is_flagged(chain_env, ipfs_store, task_files, tmp_path) -> None:
    r = _rewarded(chain_env, ipfs_store, task_files, tmp_path)
    honest = _published(r.fed, r.doc)
    garbage = r.fed.store.put(b'{"format":"fedchain.rewards/1"}')
    events = [replace(honest, scores_digest=sha256_digest(b"other bytes")),
              replace(honest, round_id=RoundId(r.rid), scores_cid=garbage,
                      scores_digest=sha256_digest(b'{"format":"fedchain.rewards/1"}'))]

    section = audit_incentives(r.fed.reader, r.fed.store, events)

    kinds = [f.kind for f in section.findings]
    assert FindingKind.REWARDS_BLOB_MISSING in kinds and FindingKind.REWARDS_BLOB_MALFORMED in kinds
    assert all(f.responsible is Party.AGGREGATOR for f in section.findings)
    assert FindingKind.REWARDS_MISMATCH not in kinds  # the root itself is the recomputed one

"""``fedchain rewards``: each round's reward payouts, and claims by Merkle proof.

After a round is finalised the aggregator publishes the round's scores blob (CID + digest) and
the root of its ``(participant, amount)`` leaves on chain; each participant claims its amount
with a proof built from the blob. The blob is fetched from the store and checked against the
digest on chain before anything is shown or claimed."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fedchain.cli.gov import gov_options
from fedchain.cli.incentives import IncentivesSession, open_incentives
from fedchain.cli.options import emit, ipfs_api_option, json_option, keystore_option, settings_from, store_option
from fedchain.config import Settings
from fedchain.errors import ClaimError, IntegrityError
from fedchain.types import Address, Cid, Digest, digest_hex

if TYPE_CHECKING:
    from fedchain.ports import TxReport
    from fedchain.protocol.rewards import RoundRewardsDoc


def _settings(state_dir: Path | None, rpc_url: str | None, chain_id: int | None, keystore: Path | None,
              store: str | None, ipfs_api: str | None) -> Settings:
    return settings_from(state_dir=state_dir, rpc_url=rpc_url, chain_id=chain_id, keystore=keystore, store=store,
                         ipfs_api=ipfs_api)


@dataclass(frozen=True)
class Publication:
    """What the chain recorded for a round's rewards: its root, total, budget, claimed so far and
    where its scores blob is (CID and digest), with the publishing transaction."""

    round_id: int
    root: Digest
    total: int
    budget: int
    claimed: int
    scores_digest: Digest
    scores_cid: Cid
    published_by: Address
    tx_hash: str


def publications(session: IncentivesSession) -> dict[int, Publication]:
    """Every round with published rewards, by round id."""
    from fedchain.chain.incentives import RewardsPublished

    out: dict[int, Publication] = {}
    for event in session.incentives.history():
        if not isinstance(event, RewardsPublished):
            continue
        rid = int(event.round_id)
        onchain = session.incentives.round_rewards(rid)
        claimed = onchain.claimed if onchain is not None else 0
        out[rid] = Publication(rid, Digest(event.root), int(event.total), int(event.budget), int(claimed), event.scores_digest,
                               Cid(event.scores_cid), Address(event.published_by), event.tx_hash)
    return out


def publication_of(session: IncentivesSession, round_id: int | None) -> Publication:
    """The rewards of ``round_id`` (None: the latest round with rewards); ClaimError when none."""
    published = publications(session)
    if not published:
        raise ClaimError("no round has published rewards yet (the aggregator publishes them after finalising "
                              "a round, once governance set a reward budget)")
    if round_id is None:
        return published[max(published)]
    if round_id not in published:
        raise ClaimError(f"round {round_id} has no published rewards (rounds with rewards: "
                              f"{', '.join(str(r) for r in sorted(published))})")
    return published[round_id]


def fetch_scores(settings: Settings, pub: Publication) -> RoundRewardsDoc:
    """The round's scores blob from the store, checked against the digest and root on chain."""
    from fedchain.codec.canonical import sha256_digest
    from fedchain.protocol.rewards import RoundRewardsDoc
    from fedchain.sim.wiring import open_blob_store

    blobs = open_blob_store(settings)
    try:
        data = blobs.get(pub.scores_cid)
    finally:
        blobs.close()
    digest = sha256_digest(data)
    if bytes(digest) != bytes(pub.scores_digest):
        raise IntegrityError(f"scores blob {pub.scores_cid} of round {pub.round_id} has digest {digest_hex(digest)}, "
                             f"not the {digest_hex(pub.scores_digest)} published on chain")
    doc = RoundRewardsDoc.from_bytes(data)
    if int(doc.round_id) != pub.round_id or bytes(doc.root) != bytes(pub.root):
        raise IntegrityError(f"scores blob {pub.scores_cid} is about round {doc.round_id} with root "
                             f"{digest_hex(doc.root)}, not round {pub.round_id} with the root "
                             f"{digest_hex(pub.root)} published on chain")
    return doc


def round_json(session: IncentivesSession, pub: Publication, doc: RoundRewardsDoc) -> dict[str, Any]:
    """A round's rewards: the publication and every participant's score, amount and claim status."""
    from fedchain.protocol.rewards import score_text

    return {
        "round": pub.round_id, "rule": doc.rule, "budget": pub.budget, "total": pub.total, "claimed": pub.claimed,
        "root": digest_hex(pub.root), "scores_cid": pub.scores_cid, "scores_digest": digest_hex(pub.scores_digest),
        "published_by": pub.published_by, "tx_hash": pub.tx_hash, "error_bound": doc.error_bound,
        "participants": [{"participant": e.participant, "score": score_text(e.score), "amount": e.amount,
                          "claimed": session.incentives.has_claimed(pub.round_id, e.participant)}
                         for e in doc.entries],
    }


@click.group()
def rewards() -> None:
    """Show each round's rewards and claim yours.

    A refusal (no rewards for the round, nothing owed to you, a second claim, a claim above the
    round's remaining budget, no incentives contract) prints one line and exits with the
    incentives code, with nothing sent; a scores blob missing from the store exits 34, one that
    does not match the digest on chain 32."""


def _store_options(f: Any) -> Any:
    return store_option(ipfs_api_option(f))


@rewards.command()
@click.option("--round", "round_id", type=click.IntRange(1), default=None,
              help="Round id [default: the latest round with published rewards].")
@_store_options
@gov_options
@json_option
def show(round_id: int | None, store: str | None, ipfs_api: str | None, state_dir: Path | None,
         rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """A round's rewards: each participant's score, amount and whether it claimed; the round's
    budget, total, claimed so far, root and scores blob."""
    settings = _settings(state_dir, rpc_url, chain_id, None, store, ipfs_api)
    session = open_incentives(settings, signed=False)
    pub = publication_of(session, round_id)
    doc = fetch_scores(settings, pub)
    out = round_json(session, pub, doc)

    def human() -> str:
        lines = [f"round {pub.round_id}: {doc.rule} rule, total {pub.total} of budget {pub.budget}, claimed "
                 f"{pub.claimed}; root {digest_hex(pub.root)}",
                 f"  scores blob {pub.scores_cid} (digest {digest_hex(pub.scores_digest)})"]
        lines += [f"  {p['participant']}  score {p['score']:>12}  amount {p['amount']:>12}  "
                  f"{'claimed' if p['claimed'] else 'unclaimed'}" for p in out["participants"]]
        return "\n".join(lines)

    emit(as_json, out, human)


@dataclass(frozen=True)
class ClaimPlan:
    """A claim checked before sending: the round, the amount owed and its proof."""

    round_id: int
    amount: int
    proof: tuple[bytes, ...]


def plan_claim(session: IncentivesSession, settings: Settings, pub: Publication, who: Address) -> ClaimPlan:
    """The claim of ``who`` for ``pub``'s round, checked: an entry in the scores blob, an amount
    above zero, not claimed yet, within the round's remaining budget, a proof the root accepts."""
    from fedchain.codec.merkle import verify
    from fedchain.protocol.rewards import reward_leaf

    doc = fetch_scores(settings, pub)
    entry = doc.entry(who)
    rid = pub.round_id
    if entry is None or entry.amount == 0:
        raise ClaimError(f"round {rid} owes {who} nothing (" +
                              ("it has no entry in the scores blob" if entry is None else f"its score {entry.score} "
                               "earned 0") + ")")
    if session.incentives.has_claimed(rid, who):
        raise ClaimError(f"{who} claimed its reward for round {rid} already ({entry.amount})")
    onchain = session.incentives.round_rewards(rid)
    claimed = onchain.claimed if onchain is not None else pub.claimed
    budget = onchain.budget if onchain is not None else pub.budget
    remaining = int(budget) - int(claimed)
    if entry.amount > remaining:
        raise ClaimError(f"the claim of {entry.amount} for round {rid} exceeds the round's remaining budget of "
                              f"{remaining} ({claimed} of {budget} claimed)")
    proof = tuple(doc.proof(who))
    leaf = reward_leaf(rid, who, entry.amount)
    if not verify(list(proof), pub.root, leaf):
        raise IntegrityError(f"round {rid}: the proof of {who}'s amount {entry.amount} does not reach the root "
                             f"{digest_hex(pub.root)} on chain")
    return ClaimPlan(rid, entry.amount, proof)


@dataclass(frozen=True)
class ClaimRecord:
    """A claim made: the round, the amount and its transaction."""

    round: int
    amount: int
    tx: TxReport


@rewards.command()
@click.option("--round", "round_id", type=click.IntRange(1), default=None,
              help="Claim this round's reward [default: the latest round with published rewards].")
@click.option("--all", "claim_all", is_flag=True,
              help="Claim every round's unclaimed reward (rounds that owe nothing or were claimed are skipped).")
@_store_options
@keystore_option
@gov_options
@json_option
def claim(round_id: int | None, claim_all: bool, store: str | None, ipfs_api: str | None, keystore: Path | None,
          state_dir: Path | None, rpc_url: str | None, chain_id: int | None, as_json: bool) -> None:
    """Claim the keystore account's reward with the Merkle proof from the round's scores blob."""
    if claim_all and round_id is not None:
        raise click.UsageError("give --round N or --all, not both")
    settings = _settings(state_dir, rpc_url, chain_id, keystore, store, ipfs_api)
    session = open_incentives(settings, signed=True)
    who = session.sender
    if claim_all:
        plans, skipped = [], []
        for pub in sorted(publications(session).values(), key=lambda p: p.round_id):
            try:
                plans.append(plan_claim(session, settings, pub, who))
            except ClaimError as err:
                skipped.append({"round": pub.round_id, "why": str(err)})
    else:
        plans, skipped = [plan_claim(session, settings, publication_of(session, round_id), who)], []
    claims = [ClaimRecord(plan.round_id, plan.amount, session.incentives.claim(plan.round_id, plan.amount,
                                                                              list(plan.proof)))
              for plan in plans]
    balance = session.incentives.token_balance(who)
    total = sum(c.amount for c in claims)
    emit(as_json, {"participant": who, "claims": claims, "skipped": skipped, "claimed": total,
                   "token_balance": balance},
         lambda: "\n".join([f"round {c.round}: claimed {c.amount} (tx {c.tx.tx_hash}, gas {c.tx.gas_used})"
                            for c in claims]
                           + [f"round {s['round']}: skipped: {s['why']}" for s in skipped]
                           + [f"{who} claimed {total} in {len(claims)} round(s); token balance {balance}"]))

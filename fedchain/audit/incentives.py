"""The audit's incentives section: rewards recomputed, claims within budget, slashes justified.

From the incentives contract's events (``history()`` of the chain layer's ``Incentives`` client,
read structurally: ``RewardsPublished``, ``RewardClaimed``, ``Slashed``, ``Deposited``,
``WithdrawalRequested``, ``Withdrawn`` by their field names) and the blob store:

* every published reward root equals the root of the scores blob the audit recomputes from the
  committed blobs, the task's rule and the validation set
  (:func:`~fedchain.protocol.rewards.compute_round_rewards`), the published blob is that blob
  byte for byte, and the total is its total; otherwise ``rewards_mismatch`` (the aggregator);
  a published blob that is missing or does not match its digest is ``rewards_blob_missing``, one
  that does not parse ``rewards_blob_malformed`` (the aggregator); a round whose inputs the audit
  cannot fetch is ``rewards_unverifiable`` (infrastructure);
* the claims of a round add up to at most its budget (``rewards_over_budget``, infrastructure:
  the contract should have refused), and each claim is the amount the recomputed blob owes the
  claimant (``claim_unexplained``, the aggregator, whose root made the claim verify);
* every slash cites a finding blob that exists, matches its digest, parses and names the slashed
  participant as responsible (:func:`check_slash_finding`); otherwise ``slash_unjustified``
  (governance).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from fedchain.audit.findings import FINDINGS_FORMAT, AuditFinding, AuditFindings, FindingKind, Party, Severity
from fedchain.codec.blob import decode_json_doc
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import BlobFormatError, FedchainError, GovernanceError
from fedchain.ports import BlobStore, Ledger
from fedchain.protocol.evidence import EVIDENCE_FORMAT, Evidence
from fedchain.protocol.rewards import RoundRewardsDoc, compute_round_rewards, score_text
from fedchain.types import Address, Cid, Digest, RoundId, digest_hex

DEPOSIT_EVENTS = ("Deposited", "WithdrawalRequested", "Withdrawn", "Slashed")


class IncentivesView(Protocol):
    """What the audit reads from the incentives contract (the chain layer's ``Incentives``)."""

    def history(self) -> Sequence[object]:
        """Every incentives event, oldest first."""
        ...


# --- the finding a slash cites ---------------------------------------------------------------
@dataclass(frozen=True)
class SlashFinding:
    """A finding blob checked to name ``participant`` as responsible: its CID, digest, kind
    (``findings`` or ``evidence``), the round it is about and what it holds against the participant."""

    cid: Cid
    digest: Digest
    kind: str
    round_id: int
    participant: Address
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        """The checked finding as a JSON object (digest as ``0x`` hex)."""
        return {"cid": self.cid, "digest": digest_hex(self.digest), "kind": self.kind, "round": self.round_id,
                "participant": self.participant, "reasons": list(self.reasons)}


def _same(a: str | None, b: str) -> bool:
    return a is not None and a.lower() == b.lower()


def check_slash_finding(cid: Cid, data: bytes, participant: Address) -> SlashFinding:
    """Check that ``data`` (stored under ``cid``) is an audit findings blob or a round's evidence
    document naming ``participant`` as responsible: a findings blob accusing it or holding an
    error or handled finding whose responsible party is it; an evidence document rejecting one
    of its updates. BlobFormatError when it is neither; GovernanceError when it names someone else."""
    obj = decode_json_doc(data, what=f"finding blob {cid}")
    fmt = obj.get("format") if isinstance(obj, dict) else None
    reasons: list[str] = []
    if fmt == EVIDENCE_FORMAT:
        evidence = Evidence.from_json(obj)
        reasons = [f"update rejected by {r.rule}: {r.reason}" for r in evidence.rejected if _same(r.participant, participant)]
        kind, round_id = "evidence", int(evidence.round_id)
        whose = f"its evidence rejects no update of {participant}"
    elif fmt == FINDINGS_FORMAT:
        findings = AuditFindings.from_json(obj)
        if findings.accused is Party.PARTICIPANT and _same(findings.accused_address, participant):
            reasons.append(f"accuses participant {participant}")
        reasons += [f"{f.kind.value} [{f.severity.value}]: {f.detail}" for f in findings.findings
                    if f.responsible is Party.PARTICIPANT and _same(f.responsible_address, participant)
                    and f.severity in (Severity.ERROR, Severity.HANDLED)]
        kind, round_id = "findings", findings.round
        whose = (f"it accuses {findings.accused.value} {findings.accused_address or ''}".rstrip()
                 + f" and holds no error or handled finding against {participant}")
    else:
        raise BlobFormatError(f"finding blob {cid} is neither an audit findings blob nor a round's evidence document "
                              f"(format {str(fmt)[:60]!r})")
    if not reasons:
        raise GovernanceError(f"finding blob {cid} (round {round_id}) does not name {participant} as responsible: {whose}")
    return SlashFinding(cid, sha256_digest(data), kind, round_id, participant, tuple(reasons))


# --- the report's lines ----------------------------------------------------------------------
@dataclass(frozen=True)
class RewardRoundLine:
    """One round's published rewards and what the audit made of them."""

    round: int
    root: str
    total: int
    budget: int
    claimed: int
    scores_cid: str
    rule: str | None
    recomputed: bool | None  # the published blob is the recomputed one (None: could not recompute)
    published_by: str | None

    def to_json(self) -> dict[str, Any]:
        """The line as a JSON object (amounts as decimal text)."""
        return {"round": self.round, "root": self.root, "total": str(self.total), "budget": str(self.budget),
                "claimed": str(self.claimed), "scores_cid": self.scores_cid, "rule": self.rule,
                "recomputed": self.recomputed, "published_by": self.published_by}


@dataclass(frozen=True)
class ParticipantRewards:
    """One participant's scores, amounts, claims and deposit history."""

    participant: str
    rounds: tuple[dict[str, Any], ...]  # {"round", "score", "amount", "claimed"} per rewarded round
    deposit_history: tuple[dict[str, Any], ...]  # {"event", "amount", "block", "tx", ...}

    @property
    def total_amount(self) -> int:
        """What the recomputed (else published) blobs owe the participant over all rounds."""
        return sum(int(r["amount"]) for r in self.rounds)

    @property
    def total_claimed(self) -> int:
        """What it claimed."""
        return sum(int(r["amount"]) for r in self.rounds if r["claimed"])

    def to_json(self) -> dict[str, Any]:
        """The participant's line as a JSON object."""
        return {"participant": self.participant, "rounds": list(self.rounds), "total_amount": str(self.total_amount),
                "total_claimed": str(self.total_claimed), "deposit_history": list(self.deposit_history)}


@dataclass(frozen=True)
class SlashLine:
    """One slash and whether its finding names the slashed participant."""

    participant: str
    amount: int
    slashed_by: str | None
    finding_cid: str
    finding_digest: str
    justified: bool
    detail: str
    block: int | None

    def to_json(self) -> dict[str, Any]:
        """The slash as a JSON object."""
        return {"participant": self.participant, "amount": str(self.amount), "slashed_by": self.slashed_by,
                "finding_cid": self.finding_cid, "finding_digest": self.finding_digest, "justified": self.justified,
                "detail": self.detail, "block": self.block}


@dataclass(frozen=True)
class IncentivesAudit:
    """The report's ``incentives`` section."""

    rounds: tuple[RewardRoundLine, ...]
    participants: tuple[ParticipantRewards, ...]
    slashes: tuple[SlashLine, ...]
    findings: tuple[AuditFinding, ...] = ()

    def cumulative(self) -> dict[str, list[tuple[int, int]]]:
        """Per participant, (round, cumulative amount owed) after each rewarded round."""
        out: dict[str, list[tuple[int, int]]] = {}
        rounds = sorted(r.round for r in self.rounds)
        for p in self.participants:
            by_round = {int(r["round"]): int(r["amount"]) for r in p.rounds}
            total, series = 0, []
            for rid in rounds:
                total += by_round.get(rid, 0)
                series.append((rid, total))
            out[p.participant] = series
        return out

    def to_json(self) -> dict[str, Any]:
        """The section as a JSON object: ``rounds``, ``participants``, ``slashes``, ``cumulative``."""
        return {"rounds": [r.to_json() for r in self.rounds], "participants": [p.to_json() for p in self.participants],
                "slashes": [s.to_json() for s in self.slashes],
                "cumulative": {k: [[r, str(v)] for r, v in series] for k, series in self.cumulative().items()}}


# --- the audit -------------------------------------------------------------------------------
def _name(ev: object) -> str:
    return type(ev).__name__


def _field(ev: object, name: str, default: Any = None) -> Any:
    return getattr(ev, name, default)


def _fetch(store: BlobStore, cid: str, digest: bytes) -> tuple[bytes | None, str]:
    """The blob under ``cid`` when it hashes to ``digest``; else None and why."""
    try:
        data = store.get(Cid(cid))
    except FedchainError as err:
        return None, f"cannot be fetched: {err}"
    if bytes(sha256_digest(data)) != bytes(digest):
        return None, f"does not match its digest on chain {digest_hex(digest)}"
    return data, ""


def audit_incentives(
    ledger: Ledger,
    store: BlobStore,
    events: Iterable[object],
    *,
    round_filter: int | None = None,
    recompute: Callable[[Ledger, BlobStore, RoundId, int], RoundRewardsDoc] = compute_round_rewards,
) -> IncentivesAudit:
    """Check every published reward root, the claims of each round and every slash (see the module
    docstring); with ``round_filter``, that round's rewards only (slashes and deposits still listed)."""
    history = list(events)
    findings: list[AuditFinding] = []
    claims: dict[int, dict[str, int]] = {}  # round -> lower-case claimant -> amount
    names: dict[str, str] = {}  # lower-case address -> as the event wrote it
    for ev in history:
        if _name(ev) == "RewardClaimed":
            per = claims.setdefault(int(_field(ev, "round_id")), {})
            who = str(_field(ev, "participant"))
            names[who.lower()] = who
            per[who.lower()] = per.get(who.lower(), 0) + int(_field(ev, "amount"))
    lines: list[RewardRoundLine] = []
    owed: dict[str, dict[int, tuple[str, int]]] = {}  # participant -> round -> (score, amount)
    for ev in history:
        if _name(ev) != "RewardsPublished":
            continue
        rid = int(_field(ev, "round_id"))
        if round_filter is not None and rid != round_filter:
            continue
        aggregator = _field(ev, "published_by")
        budget, total, root = int(_field(ev, "budget")), int(_field(ev, "total")), bytes(_field(ev, "root"))
        cid, digest = str(_field(ev, "scores_cid")), bytes(_field(ev, "scores_digest"))

        def add(kind: FindingKind, detail: str, participant: str | None = None, *, rid: int = rid,
                address: str | None = aggregator) -> None:
            party = kind.responsible
            findings.append(AuditFinding.of(rid, participant, kind, detail,
                                            address=address if party is Party.AGGREGATOR else None))

        published: RoundRewardsDoc | None = None
        data, why = _fetch(store, cid, digest)
        if data is None:
            add(FindingKind.REWARDS_BLOB_MISSING, f"round {rid}: scores blob {cid} {why}")
        else:
            try:
                published = RoundRewardsDoc.from_bytes(data)
            except BlobFormatError as err:
                add(FindingKind.REWARDS_BLOB_MALFORMED, f"round {rid}: scores blob {cid} is malformed: {err}")
        if published is not None and (bytes(published.root) != root or published.total != total
                                      or int(published.round_id) != rid):
            add(FindingKind.REWARDS_MISMATCH,
                f"round {rid}: the published root {digest_hex(root)} (total {total}) is not the root of scores blob "
                f"{cid} ({digest_hex(published.root)}, total {published.total}, round {published.round_id})")
        expected: RoundRewardsDoc | None = None
        try:
            expected = recompute(ledger, store, RoundId(rid), budget)
        except FedchainError as err:
            add(FindingKind.REWARDS_UNVERIFIABLE, f"round {rid}: the rewards cannot be recomputed: {err}")
        recomputed: bool | None = None
        if expected is not None:
            recomputed = bytes(expected.root) == root and published is not None and \
                published.to_bytes() == expected.to_bytes()
            if bytes(expected.root) != root:
                diffs = _differences(expected, published)
                add(FindingKind.REWARDS_MISMATCH,
                    f"round {rid}: the published root {digest_hex(root)} is not the recomputed "
                    f"{digest_hex(expected.root)} ({expected.rule} rule, total {expected.total} of budget {budget})"
                    + (f": {diffs}" if diffs else ""))
            elif published is not None and published.to_bytes() != expected.to_bytes():
                add(FindingKind.REWARDS_MISMATCH,
                    f"round {rid}: scores blob {cid} has the recomputed root but not the recomputed scores: "
                    f"{_differences(expected, published) or 'its rule, parameters or error bound differ'}")
        reference = expected if expected is not None else published
        claimed = claims.get(rid, {})
        if sum(claimed.values()) > budget:
            add(FindingKind.REWARDS_OVER_BUDGET,
                f"round {rid}: claims add up to {sum(claimed.values())}, over the round's budget {budget}", address=None)
        if reference is not None:
            for entry in reference.entries:
                owed.setdefault(entry.participant, {})[rid] = (score_text(entry.score), entry.amount)
            if expected is not None:
                for who, amount in sorted(claimed.items()):
                    mine = expected.entry(who)
                    if mine is None or mine.amount != amount:
                        add(FindingKind.CLAIM_UNEXPLAINED,
                            f"round {rid}: {names[who]} claimed {amount}; the recomputed rewards owe it "
                            f"{0 if mine is None else mine.amount}", names[who])
        lines.append(RewardRoundLine(rid, digest_hex(root), total, budget, sum(claimed.values()), cid,
                                     None if reference is None else reference.rule, recomputed,
                                     None if aggregator is None else str(aggregator)))
    slashes = [_slash(store, ev, findings) for ev in history if _name(ev) == "Slashed"]
    participants = _participants(history, owed, claims)
    return IncentivesAudit(tuple(sorted(lines, key=lambda r: r.round)), participants, tuple(slashes), tuple(findings))


def _differences(expected: RoundRewardsDoc, published: RoundRewardsDoc | None) -> str:
    if published is None:
        return ""
    parts = []
    for e in expected.entries:
        p = published.entry(e.participant)
        if p is None:
            parts.append(f"{e.participant} is owed {e.amount} but not listed")
        elif p.amount != e.amount or p.score != e.score:
            parts.append(f"{e.participant} is listed with {p.amount} (score {score_text(p.score)}), "
                         f"recomputed {e.amount} (score {score_text(e.score)})")
    for p in published.entries:
        if expected.entry(p.participant) is None:
            parts.append(f"{p.participant} is listed with {p.amount} but owed nothing")
    return "; ".join(parts)


def _slash(store: BlobStore, ev: object, findings: list[AuditFinding]) -> SlashLine:
    participant = Address(str(_field(ev, "participant")))
    cid, digest = str(_field(ev, "finding_cid")), bytes(_field(ev, "finding_digest"))
    slashed_by = _field(ev, "slashed_by")
    data, why = _fetch(store, cid, digest)
    justified, detail = False, f"finding blob {cid} {why}"
    if data is not None:
        try:
            checked = check_slash_finding(Cid(cid), data, participant)
        except (BlobFormatError, GovernanceError) as err:
            detail = str(err)
        else:
            justified, detail = True, "; ".join(checked.reasons)
    if not justified:
        findings.append(AuditFinding.of(
            0, str(participant), FindingKind.SLASH_UNJUSTIFIED,
            f"{participant} was slashed {int(_field(ev, 'amount'))} citing {cid}: {detail}",
            address=None if slashed_by is None else str(slashed_by)))
    block = _field(ev, "block_number")
    return SlashLine(str(participant), int(_field(ev, "amount")), None if slashed_by is None else str(slashed_by),
                     cid, digest_hex(digest), justified, detail, None if block is None else int(block))


def _participants(history: Sequence[object], owed: Mapping[str, Mapping[int, tuple[str, int]]],
                  claims: Mapping[int, Mapping[str, int]]) -> tuple[ParticipantRewards, ...]:
    deposits: dict[str, list[dict[str, Any]]] = {}
    for ev in history:
        if _name(ev) not in DEPOSIT_EVENTS:
            continue
        who = str(_field(ev, "participant"))
        line: dict[str, Any] = {"event": _name(ev), "amount": str(int(_field(ev, "amount", 0))),
                                "block": _field(ev, "block_number"), "tx": _field(ev, "tx_hash")}
        if _name(ev) == "WithdrawalRequested":
            line["available_at"] = int(_field(ev, "available_at", 0))
        if _name(ev) == "Slashed":
            line["finding_cid"] = _field(ev, "finding_cid")
        deposits.setdefault(who, []).append(line)
    keys = {k.lower(): k for k in [*owed, *deposits]}
    out = []
    for low in sorted(keys):
        who = keys[low]
        rounds = next((v for k, v in owed.items() if k.lower() == low), {})
        out.append(ParticipantRewards(
            who,
            tuple({"round": rid, "score": score, "amount": str(amount),
                   "claimed": low in claims.get(rid, {})} for rid, (score, amount) in sorted(rounds.items())),
            tuple(line for k, v in deposits.items() if k.lower() == low for line in v)))
    return tuple(out)

"""The audit's governance section: who governs the federation and whether every admin action
came from an executed proposal that met its quorum, the members' attestations of each round,
the disputes and their outcome, the rounds built on a disputed model, and the exclusion
contests.

The Federation's own events (attestations, disputes, contests, policies, role changes, admin
actions) come from the ledger's history; the governor's proposals and the timelock's executed
calls come from :class:`GovernanceRecords`, which the layer that knows the chain builds (with
:meth:`GovernanceRecords.from_governance` over the chain's governance client, or
:meth:`GovernanceRecords.eoa` for a deployment whose admin is one key).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from fedchain.audit.findings import AuditFinding, AuditFindings, FindingKind, Party, Severity
from fedchain.audit.history import History
from fedchain.codec.abi import keccak
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import FedchainError
from fedchain.ports import (
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRemoved,
    RoleChanged,
    RoundDisputed,
    TaskConfigured,
    VerificationPolicySet,
    event_position,
)
from fedchain.types import digest_hex

ADMIN_ROLE = keccak(b"ADMIN_ROLE")
AGGREGATOR_ROLE = keccak(b"AGGREGATOR_ROLE")
DEFAULT_ADMIN_ROLE = b"\x00" * 32
PROPOSER_ROLE = keccak(b"PROPOSER_ROLE")  # the timelock's (OpenZeppelin TimelockController)
CANCELLER_ROLE = keccak(b"CANCELLER_ROLE")
EXECUTOR_ROLE = keccak(b"EXECUTOR_ROLE")
ROLE_NAMES = {ADMIN_ROLE: "ADMIN_ROLE", AGGREGATOR_ROLE: "AGGREGATOR_ROLE", DEFAULT_ADMIN_ROLE: "DEFAULT_ADMIN_ROLE"}
TIMELOCK_ROLE_NAMES = {DEFAULT_ADMIN_ROLE: "timelock DEFAULT_ADMIN_ROLE", PROPOSER_ROLE: "timelock PROPOSER_ROLE",
                       CANCELLER_ROLE: "timelock CANCELLER_ROLE", EXECUTOR_ROLE: "timelock EXECUTOR_ROLE"}
ZERO_ADDRESS = "0x" + "00" * 20
ADMIN_ROLES = frozenset({ADMIN_ROLE, DEFAULT_ADMIN_ROLE})
"""The roles that govern the Federation: held by the timelock alone on a governed deployment.
The aggregator role is an operator's (a process that opens and finalises rounds), held by an
account by design, and is reported but not a finding."""

EXECUTED = 7  # OpenZeppelin's ProposalState.Executed


# --- what the chain's governance tells the audit ---------------------------------------------
@dataclass(frozen=True)
class ProposalRecord:
    """One governor proposal as the audit reads it: its calls, its votes (as the governor
    counts them, and recounted from its VoteCast events when they are known), its quorum and
    its execution."""

    proposal_id: int
    description: str
    state: int
    calls: tuple[tuple[str, bytes], ...]  # (target, calldata)
    votes_for: int
    votes_against: int
    votes_abstain: int
    quorum: int
    executed_block: int | None = None
    executed_tx: str | None = None
    recount: tuple[int, int, int] | None = None  # (for, against, abstain) summed from the VoteCast events

    @property
    def met_quorum(self) -> bool:
        """For and abstain votes reach the quorum and more members voted for than against
        (OpenZeppelin GovernorCountingSimple)."""
        return self.votes_for + self.votes_abstain >= self.quorum and self.votes_for > self.votes_against


@dataclass(frozen=True)
class TimelockCall:
    """One call the timelock executed (its ``CallExecuted`` event)."""

    operation_id: bytes
    index: int
    target: str
    value: int
    data: bytes
    block_number: int
    tx_hash: str


class _CallLike(Protocol):
    @property
    def target(self) -> str: ...
    @property
    def calldata(self) -> bytes: ...


class _VoteLike(Protocol):
    @property
    def support(self) -> int: ...
    @property
    def weight(self) -> int: ...


class _ProposalLike(Protocol):
    @property
    def proposal_id(self) -> int: ...
    @property
    def description(self) -> str: ...
    @property
    def state(self) -> int: ...
    @property
    def calls(self) -> Sequence[_CallLike]: ...
    @property
    def votes_for(self) -> int: ...
    @property
    def votes_against(self) -> int: ...
    @property
    def votes_abstain(self) -> int: ...
    @property
    def quorum(self) -> int: ...
    @property
    def executed_block(self) -> int | None: ...
    @property
    def executed_tx(self) -> str | None: ...
    @property
    def voters(self) -> Sequence[_VoteLike]: ...


class GovernanceLike(Protocol):
    """What the audit reads from the chain's governance client (``fedchain.chain.governance.Governance``)."""

    def proposals(self) -> Sequence[_ProposalLike]:
        """Every proposal, with its calls, votes, quorum and execution."""
        ...

    def history(self) -> Sequence[object]:
        """The governor's and the timelock's events (the timelock's ``CallExecuted`` among them)."""
        ...


@dataclass(frozen=True)
class GovernanceRecords:
    """Who governs the deployment and what its governor and timelock did.

    ``timelock`` None: a deployment without governance, whose admin is an account ("admin is an
    EOA"). ``deployment_tx`` is the Federation's deployment transaction (its constructor grants
    the first roles). ``is_contract`` tells whether an address holds code."""

    governor: str | None
    timelock: str | None
    membership: str | None
    deployment_tx: str
    proposals: tuple[ProposalRecord, ...]
    timelock_calls: tuple[TimelockCall, ...]
    is_contract: Callable[[str], bool]
    timelock_roles: tuple[tuple[bytes, str, int], ...] = ()  # (role, holder, block granted) on the timelock now

    @property
    def governed(self) -> bool:
        """Whether a timelock behind a governor holds the admin role."""
        return self.timelock is not None

    @classmethod
    def eoa(cls, deployment_tx: str, is_contract: Callable[[str], bool]) -> GovernanceRecords:
        """A deployment without governance."""
        return cls(None, None, None, deployment_tx, (), (), is_contract)

    @classmethod
    def from_governance(cls, gov: GovernanceLike, *, governor: str, timelock: str, membership: str | None,
                        deployment_tx: str, is_contract: Callable[[str], bool]) -> GovernanceRecords:
        """The records of a governed deployment, read from its governance client: every proposal
        (votes recounted from its voters) and every call its timelock executed."""
        proposals = []
        for p in gov.proposals():
            tally = [0, 0, 0]
            for v in p.voters:
                if 0 <= int(v.support) <= 2:
                    tally[(1, 0, 2)[int(v.support)]] += int(v.weight)
            proposals.append(ProposalRecord(
                proposal_id=int(p.proposal_id), description=str(p.description), state=int(p.state),
                calls=tuple((str(c.target), bytes(c.calldata)) for c in p.calls), votes_for=int(p.votes_for),
                votes_against=int(p.votes_against), votes_abstain=int(p.votes_abstain), quorum=int(p.quorum),
                executed_block=p.executed_block, executed_tx=p.executed_tx,
                recount=(tally[0], tally[1], tally[2]),
            ))
        calls: list[TimelockCall] = []
        roles: dict[tuple[bytes, str], tuple[bytes, str, int]] = {}
        for ev in gov.history():
            kind = type(ev).__name__
            if kind == "TimelockCallExecuted":
                c: Any = ev
                calls.append(TimelockCall(bytes(c.operation_id), int(c.index), str(c.target), int(c.value),
                                          bytes(c.data), int(c.block_number), str(c.tx_hash)))
            elif kind == "TimelockRoleChanged":
                r: Any = ev
                key = (bytes(r.role), str(r.account).lower())
                if r.granted:
                    roles.setdefault(key, (bytes(r.role), str(r.account), int(r.block_number)))
                else:
                    roles.pop(key, None)
        return cls(governor, timelock, membership, deployment_tx, tuple(proposals), tuple(calls), is_contract,
                   tuple(roles.values()))


GovernanceView = GovernanceRecords


# --- report lines ---------------------------------------------------------------------------
@dataclass(frozen=True)
class AdminAction:
    """One admin action on the Federation and the executed proposal behind it (None: none)."""

    action: str  # admission, removal, task_configuration, role_grant, role_revoke, verification_policy, dispute
    detail: str
    actor: str
    block_number: int
    tx_hash: str
    proposal_id: int | None = None
    votes_for: int | None = None
    votes_against: int | None = None
    votes_abstain: int | None = None
    quorum: int | None = None
    execution_block: int | None = None
    verdict: str = ""

    def to_json(self) -> dict[str, Any]:
        """The action as a JSON object (proposal ids as decimal strings: they exceed 2**53)."""
        return {"action": self.action, "detail": self.detail, "actor": self.actor, "block": self.block_number,
                "tx_hash": self.tx_hash, "proposal_id": None if self.proposal_id is None else str(self.proposal_id),
                "votes": None if self.votes_for is None else
                {"for": self.votes_for, "against": self.votes_against, "abstain": self.votes_abstain},
                "quorum": self.quorum, "execution_block": self.execution_block, "verdict": self.verdict}


@dataclass(frozen=True)
class RoleHolder:
    """An account holding one of the Federation's roles at the end of the history."""

    role: str
    account: str
    contract: bool | None  # whether it holds code (None: not known)
    granted_block: int

    def to_json(self) -> dict[str, Any]:
        """The holder as a JSON object."""
        return {"role": self.role, "account": self.account, "contract": self.contract, "granted_block": self.granted_block}


@dataclass(frozen=True)
class AttestationLine:
    """The members' attestations of one finalised round against what the policy requires."""

    round: int
    policy: int  # percent of the included participants (0: no policy)
    included: int
    required: int
    ok: int
    negative: int
    attesters: tuple[tuple[str, bool, str], ...]  # (participant, ok, findings CID)

    def to_json(self) -> dict[str, Any]:
        """The line as a JSON object."""
        return {"round": self.round, "policy": self.policy, "included": self.included, "required": self.required,
                "ok": self.ok, "negative": self.negative,
                "attesters": [{"participant": a, "ok": ok, "findings_cid": cid or None} for a, ok, cid in self.attesters]}


@dataclass(frozen=True)
class DisputeLine:
    """A disputed round and the dispute's outcome."""

    round: int
    disputed_by: str
    accused: str
    findings_digest: str
    findings_cid: str
    fallback_model_digest: str | None  # None: the disputed model was not the current one
    reason: str
    block_number: int
    tx_hash: str
    findings_check: str  # "ok", or what is wrong with the cited findings blob
    cited: tuple[str, ...] = ()  # the kinds of the findings the blob cites
    proposal_id: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The line as a JSON object."""
        return {"round": self.round, "disputed_by": self.disputed_by, "accused": self.accused,
                "findings_digest": self.findings_digest, "findings_cid": self.findings_cid,
                "fallback_model_digest": self.fallback_model_digest, "reason": self.reason,
                "block": self.block_number, "tx_hash": self.tx_hash, "findings_check": self.findings_check,
                "cited_kinds": list(self.cited),
                "proposal_id": None if self.proposal_id is None else str(self.proposal_id)}


@dataclass(frozen=True)
class ContestLine:
    """An exclusion contest, the aggregator's answer and the audit's verdict."""

    round: int
    participant: str
    cid: str
    update_digest: str
    block_number: int
    answer: str | None  # "available", "unavailable", None: never answered
    answered_block: int | None
    available_now: bool | None  # the audit fetched the blob with its digest (None: no exclusion as unavailable)
    verdict: str

    def to_json(self) -> dict[str, Any]:
        """The line as a JSON object."""
        return {"round": self.round, "participant": self.participant, "cid": self.cid,
                "update_digest": self.update_digest, "block": self.block_number, "answer": self.answer,
                "answered_block": self.answered_block, "available_now": self.available_now, "verdict": self.verdict}


@dataclass(frozen=True)
class GovernanceAudit:
    """The report's governance section.

    ``mode``: ``governed`` (a timelock behind a governor holds the admin role), ``eoa`` (the
    admin is an account: no governance), or ``unchecked`` (the audit was not given the
    deployment's governance records, so admin actions are listed but not checked)."""

    mode: str
    governor: str | None
    timelock: str | None
    membership: str | None
    admin_actions: tuple[AdminAction, ...]
    role_holders: tuple[RoleHolder, ...]
    attestations: tuple[AttestationLine, ...]
    disputes: tuple[DisputeLine, ...]
    contests: tuple[ContestLine, ...]
    built_on_disputed: tuple[int, ...]
    findings: tuple[AuditFinding, ...] = field(default=(), compare=False)

    def to_json(self) -> dict[str, Any]:
        """The section as a JSON object (``governance`` in ``fedchain audit --json``); its
        findings are in the report's ``findings`` with the others."""
        return {"mode": self.mode, "governor": self.governor, "timelock": self.timelock, "membership": self.membership,
                "admin_actions": [a.to_json() for a in self.admin_actions],
                "role_holders": [r.to_json() for r in self.role_holders],
                "attestations": [a.to_json() for a in self.attestations],
                "disputes": [d.to_json() for d in self.disputes],
                "contests": [c.to_json() for c in self.contests],
                "built_on_disputed": list(self.built_on_disputed)}


@dataclass(frozen=True)
class RoundsGovernance:
    """What the Federation's own events say about attestations, disputes and contests, with the
    findings about them (the part of the governance audit that needs no governance records)."""

    attestations: tuple[AttestationLine, ...]
    disputes: tuple[DisputeLine, ...]
    contests: tuple[ContestLine, ...]
    built_on_disputed: tuple[int, ...]
    findings: tuple[AuditFinding, ...]

    def as_unchecked(self, actions: tuple[AdminAction, ...] = (), holders: tuple[RoleHolder, ...] = ()) -> GovernanceAudit:
        """The section of an audit without governance records."""
        return GovernanceAudit("unchecked", None, None, None, actions, holders, self.attestations, self.disputes,
                               self.contests, self.built_on_disputed, ())


# --- the rounds: attestations, disputes, contests ----------------------------------------------
def audit_rounds_governance(history: History, findings: Sequence[AuditFinding], round_filter: int | None,
                            fetch: Callable[[Sequence[str]], Sequence[tuple[bytes | None, str]]], *,
                            exclusions: Mapping[tuple[int, str], bool] | None = None) -> RoundsGovernance:
    """Attestations against the policy, disputes (their findings blob checked), rounds built on
    a disputed model and exclusion contests, for every round (or ``round_filter`` only).
    ``findings`` are the rounds' own findings (an attestation the replay contradicts is one);
    ``fetch`` fetches blobs by CID (bytes, or None and why not); ``exclusions`` maps (round,
    lower-case participant) of each exclusion as unavailable to whether the audit fetched that
    blob with its committed digest."""
    out: list[AuditFinding] = []
    wanted = [rid for rid in sorted(history.rounds) if round_filter in (None, rid)]
    by_round: dict[int, list[AuditFinding]] = {}
    for f in findings:
        by_round.setdefault(f.round, []).append(f)
    attestations = tuple(_attestations(history, rid, by_round.get(rid, []), out) for rid in wanted
                         if history.rounds[rid].finalized is not None)
    disputed = [rid for rid in wanted if history.rounds[rid].disputed is not None]
    blobs = fetch([str(ev.findings_cid) for r in disputed if (ev := history.rounds[r].disputed) is not None])
    disputes = tuple(_dispute(history, rid, blob, out) for rid, blob in zip(disputed, blobs, strict=True))
    built = built_on_disputed(history, round_filter, out)
    contests = tuple(_contest(history, key, ev, (exclusions or {}).get(key))
                     for key, ev in sorted(history.contests.items()) if round_filter in (None, key[0]))
    return RoundsGovernance(attestations, disputes, contests, built, tuple(out))


def _required(policy: int, included: int) -> int:
    return math.ceil(policy * included / 100) if policy > 0 else 0


def _attestations(history: History, rid: int, round_findings: Sequence[AuditFinding],
                  out: list[AuditFinding]) -> AttestationLine:
    rev = history.rounds[rid]
    fin = rev.finalized
    assert fin is not None
    model = bytes(fin.model_digest)
    # the policy is enforced when the next round opens on this round's model (the policy now,
    # while none has): the first round opened after the finalisation on this model
    built = sorted((event_position(r.opened), r_id) for r_id, r in history.rounds.items()
                   if event_position(r.opened) > event_position(fin) and bytes(r.opened.base_model_digest) == model)
    at = built[0][0] if built else (1 << 62, 0)
    policy = history.policy_at(at)
    included = int(fin.included_count)
    required = _required(policy, included)
    first: dict[str, Any] = {}
    for a in rev.attestations:
        first.setdefault(a.participant.lower(), a)
    ok = sum(1 for a in first.values() if a.ok)
    negative = len(first) - ok
    line = AttestationLine(rid, policy, included, required, ok, negative,
                           tuple((a.participant, bool(a.ok), str(a.findings_cid)) for a in first.values()))
    if required and ok < required and rev.disputed is None:
        if built:
            out.append(AuditFinding.of(
                rid, None, FindingKind.ATTESTATION_QUORUM_MISSING,
                f"round {built[0][1]} opened on this round's model with {ok} of the {required} ok attestations the "
                f"{policy}% policy requires ({negative} negative); the contract refuses such an opening",
                responsible=Party.INFRASTRUCTURE))
        else:
            out.append(AuditFinding.of(
                rid, None, FindingKind.ATTESTATION_QUORUM_MISSING,
                f"{ok} of the {required} ok attestations the {policy}% policy requires ({negative} negative); the "
                "next round cannot open on this model until the members attest it", severity=Severity.WARNING))
    aggregator_errors = [f for f in round_findings if f.severity is Severity.ERROR and f.responsible is Party.AGGREGATOR]
    errors = [f for f in round_findings if f.severity is Severity.ERROR]
    for a in first.values():
        if a.ok and aggregator_errors:
            out.append(AuditFinding.of(
                rid, a.participant, FindingKind.ATTESTATION_CONTRADICTED,
                f"attested the round ok (tx {a.tx_hash}), but its replay finds {len(aggregator_errors)} error(s) of the "
                f"aggregator's ({', '.join(sorted({f.kind.value for f in aggregator_errors}))})"))
        elif not a.ok and not errors:
            out.append(AuditFinding.of(
                rid, a.participant, FindingKind.ATTESTATION_CONTRADICTED,
                f"attested the round negative (tx {a.tx_hash}, findings {a.findings_cid}), but it replays without "
                "error", severity=Severity.WARNING))
    return line


def _dispute(history: History, rid: int, blob: tuple[bytes | None, str], out: list[AuditFinding]) -> DisputeLine:
    rev = history.rounds[rid]
    ev = rev.disputed
    assert ev is not None
    data, why = blob
    cited: tuple[str, ...] = ()
    problem = ""
    if data is None:
        problem = f"the store cannot deliver findings blob {ev.findings_cid}: {why}"
    elif sha256_digest(data) != bytes(ev.findings_digest):
        problem = f"findings blob {ev.findings_cid} does not hash to the digest the dispute records"
    else:
        try:
            parsed = AuditFindings.from_bytes(data)
        except (FedchainError, ValueError, TypeError, KeyError, RecursionError) as err:
            problem = f"findings blob {ev.findings_cid} is not a findings blob: {str(err).splitlines()[0][:200]}"
        else:
            cited = tuple(sorted({f.kind.value for f in parsed.findings}))
            if parsed.round != rid:
                problem = f"findings blob {ev.findings_cid} is about round {parsed.round}, not round {rid}"
            elif parsed.accused_address is not None and parsed.accused_address.lower() != ev.accused.lower():
                problem = (f"findings blob {ev.findings_cid} accuses {parsed.accused_address}, the dispute "
                           f"accuses {ev.accused}")
            elif not parsed.findings:
                problem = f"findings blob {ev.findings_cid} cites no finding"
    fallback = bytes(ev.fallback_model_digest)
    fallback_hex = digest_hex(fallback) if any(fallback) else None
    outcome = (f"the federation fell back to model {fallback_hex}" if fallback_hex else
               "the disputed model was no longer the current one; the current model stands")
    if problem:
        out.append(AuditFinding.of(
            rid, None, FindingKind.ROUND_DISPUTED,
            f"disputed by {ev.disputed_by} (tx {ev.tx_hash}) accusing {ev.accused}: {problem}; {outcome}",
            severity=Severity.ERROR, address=ev.disputed_by))
    else:
        out.append(AuditFinding.of(
            rid, None, FindingKind.ROUND_DISPUTED,
            f"disputed by {ev.disputed_by} (tx {ev.tx_hash}) accusing {ev.accused} ({ev.reason}), citing "
            f"{', '.join(cited)}; {outcome}", address=ev.disputed_by))
    return DisputeLine(rid, ev.disputed_by, ev.accused, digest_hex(ev.findings_digest), ev.findings_cid, fallback_hex,
                       ev.reason, ev.block_number, ev.tx_hash, problem or "ok", cited)


def built_on_disputed(history: History, round_filter: int | None, out: list[AuditFinding]) -> tuple[int, ...]:
    """Rounds whose base model is a disputed round's model or descends from one (a finding each,
    appended to ``out``): an error of the aggregator's when it opened the round after the
    dispute, a warning when before."""
    # tainted model digest -> (the disputed round at its root, the position of that dispute)
    tainted: dict[bytes, tuple[int, tuple[int, int]]] = {}
    for rid, rev in history.rounds.items():
        if rev.disputed is not None and rev.finalized is not None:
            tainted[bytes(rev.finalized.model_digest)] = (rid, event_position(rev.disputed))
    flagged: list[int] = []
    for rid in sorted(history.rounds):
        rev = history.rounds[rid]
        root = tainted.get(bytes(rev.opened.base_model_digest))
        if root is None:
            continue
        flagged.append(rid)
        if rev.finalized is not None and rev.disputed is None:
            tainted.setdefault(bytes(rev.finalized.model_digest), root)
        if round_filter not in (None, rid):
            continue
        after = event_position(rev.opened) > root[1]
        out.append(AuditFinding.of(
            rid, None, FindingKind.BUILT_ON_DISPUTED_MODEL,
            f"opened on model {digest_hex(rev.opened.base_model_digest)}, which descends from round {root[0]}'s disputed "
            + ("model, after the dispute" if after else "model (opened before the dispute)"),
            severity=None if after else Severity.WARNING, address=rev.opened.opened_by))
    return tuple(r for r in flagged if round_filter in (None, r))


def _contest(history: History, key: tuple[int, str], ev: Any, available_now: bool | None) -> ContestLine:
    answer = history.answers.get(key)
    said = None if answer is None else ("available" if answer.available else "unavailable")
    if available_now is None:
        verdict = "no exclusion as unavailable of this participant in the round's evidence"
    elif not available_now:
        verdict = "the audit cannot fetch the blob with its committed digest: the exclusion stands"
    elif said == "available":
        verdict = "blob available; the aggregator answered it available (warning)"
    elif said == "unavailable":
        verdict = "blob available, yet the aggregator answered it unavailable (error: aggregator)"
    elif any(event_position(r.opened) > event_position(ev) for r in history.rounds.values()):
        verdict = "blob available and the contest never answered (error: aggregator)"
    else:
        verdict = "blob available; the contest is not answered yet"
    return ContestLine(key[0], ev.participant, ev.cid, digest_hex(ev.update_digest), ev.block_number, said,
                       answer.block_number if answer is not None else None, available_now, verdict)


# --- admin actions and roles ---------------------------------------------------------------
def _admin_events(history: History) -> Iterable[tuple[LedgerEvent, str, str, str]]:
    """(event, action, detail, actor) of every admin action in the Federation's event log."""
    for ev in history.events:
        if isinstance(ev, ParticipantAdmitted):
            yield ev, "admission", f"admit {ev.participant} ({ev.approved_samples} samples approved)", ev.admitted_by
        elif isinstance(ev, ParticipantRemoved):
            if ev.removed_by.lower() == ev.participant.lower():
                continue  # the participant left by itself (Federation.leave): no admin acted
            yield ev, "removal", f"remove {ev.participant} ({ev.reason})", ev.removed_by
        elif isinstance(ev, TaskConfigured):
            private = history.privacy.get(int(ev.version))
            policy = (f" with privacy policy {digest_hex(private.policy_digest)} (budget {private.epsilon_budget} "
                      "micro-epsilon)") if private is not None and private.tx_hash == ev.tx_hash else ""
            yield ev, "task_configuration", f"configure task v{ev.version} ({ev.config_cid}){policy}", ev.configured_by
        elif isinstance(ev, RoleChanged):
            role = ROLE_NAMES.get(bytes(ev.role), "0x" + bytes(ev.role).hex())
            verb, action = ("grant", "role_grant") if ev.granted else ("revoke", "role_revoke")
            yield ev, action, f"{verb} {role} {'to' if ev.granted else 'from'} {ev.account}", ev.sender
        elif isinstance(ev, VerificationPolicySet):
            policy = f"{ev.quorum_percent}% of the included participants" if ev.quorum_percent else "none"
            yield ev, "verification_policy", f"set the verification policy to {policy}", ev.set_by
        elif isinstance(ev, RoundDisputed):
            yield ev, "dispute", f"dispute round {ev.round_id} (accused {ev.accused}: {ev.reason})", ev.disputed_by


def _role_holders(history: History, records: GovernanceRecords | None) -> tuple[RoleHolder, ...]:
    held: dict[tuple[bytes, str], RoleChanged] = {}
    for ev in history.events:
        if isinstance(ev, RoleChanged):
            key = (bytes(ev.role), ev.account.lower())
            if ev.granted:
                held.setdefault(key, ev)
            else:
                held.pop(key, None)
    out = []
    for (role, _), ev in sorted(held.items(), key=lambda kv: (ROLE_NAMES.get(kv[0][0], ""), kv[0][1])):
        contract = records.is_contract(ev.account) if records is not None else None
        out.append(RoleHolder(ROLE_NAMES.get(role, "0x" + role.hex()), ev.account, contract, ev.block_number))
    if records is None:
        return tuple(out)
    for role, account, block in records.timelock_roles:
        contract = None if account.lower() == ZERO_ADDRESS else records.is_contract(account)
        out.append(RoleHolder(TIMELOCK_ROLE_NAMES.get(role, "timelock 0x" + role.hex()), account, contract, block))
    return tuple(out)


def audit_admin(history: History, records: GovernanceRecords | None, rounds: RoundsGovernance,
                federation: str = "") -> GovernanceAudit:
    """The whole governance section: with ``records``, every admin action on the Federation
    (``federation``, its address) matched to the executed, quorate proposal whose timelock call
    performed it, and the admin roles' holders checked; without, the actions listed unchecked."""
    holders = _role_holders(history, records)
    if records is None:
        actions = tuple(AdminAction(a, d, actor, ev.block_number, ev.tx_hash, verdict="not checked")
                        for ev, a, d, actor in _admin_events(history))
        return rounds.as_unchecked(actions, holders)
    findings: list[AuditFinding] = []
    actions_out: list[AdminAction] = []
    for ev, action, detail, actor in _admin_events(history):
        if ev.tx_hash.lower() == records.deployment_tx.lower():
            actions_out.append(AdminAction(action, detail, actor, ev.block_number, ev.tx_hash,
                                           verdict="set up by the Federation's constructor"))
            continue
        rid = int(getattr(ev, "round_id", 0))
        if not records.governed:
            actions_out.append(AdminAction(action, detail, actor, ev.block_number, ev.tx_hash,
                                           verdict="by the admin account (no governance)"))
            continue
        line, problem = _match(ev, action, detail, actor, records, federation)
        actions_out.append(line)
        if problem:
            findings.append(AuditFinding.of(rid, None, FindingKind.ADMIN_ACTION_WITHOUT_PROPOSAL,
                                            f"{detail} (tx {ev.tx_hash}, block {ev.block_number}): {problem}",
                                            address=actor))
    by_account: dict[str, list[RoleHolder]] = {}
    for h in holders:
        # the aggregator is an operator's account by design; anyone (or an account) may execute a
        # queued, delayed proposal the members passed
        if h.role not in ("AGGREGATOR_ROLE", TIMELOCK_ROLE_NAMES[EXECUTOR_ROLE]) and h.contract is False:
            by_account.setdefault(h.account, []).append(h)
    for account, held in by_account.items():
        roles = ", ".join(f"{h.role} (granted at block {h.granted_block})" for h in held)
        if not records.governed:
            findings.append(AuditFinding.of(
                0, None, FindingKind.ROLE_HELD_BY_EOA,
                f"admin is an EOA: {account} holds {roles}; the federation has no governance, so every admin action "
                "is this one key's", address=account))
        else:
            findings.append(AuditFinding.of(
                0, None, FindingKind.ROLE_HELD_BY_EOA,
                f"{account} holds {roles}: an account that can act on the federation without the members' vote",
                severity=Severity.ERROR, address=account))
    by_tx = {a.tx_hash.lower(): a for a in actions_out if a.action == "dispute"}
    disputes = tuple(replace(d, proposal_id=by_tx[d.tx_hash.lower()].proposal_id) if d.tx_hash.lower() in by_tx else d
                     for d in rounds.disputes)
    return GovernanceAudit("governed" if records.governed else "eoa", records.governor, records.timelock,
                           records.membership, tuple(actions_out), holders, rounds.attestations, disputes,
                           rounds.contests, rounds.built_on_disputed, tuple(findings))


def _match(ev: LedgerEvent, action: str, detail: str, actor: str, records: GovernanceRecords,
           federation: str) -> tuple[AdminAction, str]:
    """The action matched to its proposal, and what is wrong ("" when nothing is)."""
    bare = AdminAction(action, detail, actor, ev.block_number, ev.tx_hash)
    assert records.timelock is not None
    if actor.lower() != records.timelock.lower():
        return replace(bare, verdict="not by the timelock"), (
            f"performed by {actor}, not by the timelock {records.timelock}: no proposal voted it")
    calls = [c for c in records.timelock_calls if c.tx_hash.lower() == ev.tx_hash.lower()
             and (not federation or c.target.lower() == federation.lower())]
    executed = [p for p in records.proposals if p.state == EXECUTED]
    proposal = next((p for p in executed if p.executed_tx is not None and p.executed_tx.lower() == ev.tx_hash.lower()),
                    None)
    if proposal is None and calls:
        wanted = {(c.target.lower(), c.data) for c in calls}
        proposal = next((p for p in executed if wanted <= {(t.lower(), d) for t, d in p.calls}), None)
    if proposal is None:
        why = (f"the timelock executed it in tx {ev.tx_hash}, but no executed proposal holds that call" if calls else
               f"the timelock acted in tx {ev.tx_hash} without executing a call of an executed proposal")
        return replace(bare, verdict="no executed proposal"), why
    line = replace(bare, proposal_id=proposal.proposal_id, votes_for=proposal.votes_for,
                   votes_against=proposal.votes_against, votes_abstain=proposal.votes_abstain, quorum=proposal.quorum,
                   execution_block=proposal.executed_block if proposal.executed_block is not None else ev.block_number)
    if not proposal.met_quorum:
        return replace(line, verdict="proposal did not meet quorum"), (
            f"proposal {proposal.proposal_id} was executed with {proposal.votes_for} for, {proposal.votes_against} "
            f"against, {proposal.votes_abstain} abstain: below its quorum of {proposal.quorum} or not carried")
    counted = (proposal.votes_for, proposal.votes_against, proposal.votes_abstain)
    if proposal.recount is not None and proposal.recount != counted:
        return replace(line, verdict="votes do not add up"), (
            f"proposal {proposal.proposal_id}: the governor counts {counted} (for, against, abstain), its VoteCast "
            f"events add up to {proposal.recount}")
    return replace(line, verdict="executed proposal, quorum met"), ""


__all__ = [
    "ADMIN_ROLES", "AdminAction", "AttestationLine", "ContestLine", "DisputeLine", "GovernanceAudit",
    "GovernanceLike", "GovernanceRecords", "GovernanceView", "ProposalRecord", "RoleHolder", "RoundsGovernance",
    "TimelockCall", "audit_admin", "audit_rounds_governance", "built_on_disputed",
]

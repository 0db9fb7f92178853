"""The audit's privacy section: every participant's epsilon recomputed from what it committed.

For a task whose document carries a privacy policy (:class:`~fedchain.fl.privacy.PrivacyPolicy`),
every commitment of a round under it is checked, per participant in commit order:

* its update's extras carry the round's accountant inputs (``privacy_inputs_missing`` when they
  are absent, partial or malformed);
* their digest is the ``accountantDigest`` committed on chain (``accountant_digest_mismatch``);
* they are the policy's inputs for one round (``policy.round_inputs(local_epochs)``), field by
  field (``privacy_parameters_mismatch``, naming each differing field with both values: a noise
  multiplier below the policy's, a clip, sampling rate, step count or delta above it, another
  accountant or mechanism; a difference in the direction that spends less privacy is a warning);
* the cumulative epsilon recomputed with the accountant over the participant's rounds so far is
  at most its claim (``epsilon_under_reported``: ``epsilonSpent < epsilon_fixed(recomputed)``;
  ``epsilon_unverifiable`` when the accountant cannot compose its inputs);
* neither the claim nor the recomputed figure is over the policy's budget (``privacy_budget_exceeded``);
* the commitment carries a privacy claim at all (``privacy_claim_missing``: epsilon 0 and a zero
  accountant digest);
* for client-level DP, the update's model tensors carry their share of the noise
  (``dp_noise_missing``: :func:`~fedchain.fl.privacy.noise_check`, whose statistic, threshold and
  false-alarm rate the finding states).

Each finding blames the committing participant. Its severity follows the replay's rule for
participant misconduct (:meth:`fedchain.audit.replay.Auditor._attribute`): ``error`` when the
aggregator included the update in a finalised round (the published model carries it: exit 51),
``handled`` when the round ended without it (exit 52 if nothing else is wrong), ``warning`` while
its round is still open.

A commitment whose blob the audit cannot fetch or decode (reported by the replay) is accounted
with the policy's inputs, known exactly when its accountant digest is theirs ("digest") and
assumed otherwise ("assumed"). Composition only adds privacy loss, so with an audit of one
round (``complete`` false) a claim below the epsilon of the rounds seen is still under-reported.

:func:`audit_privacy` is pure over :class:`PrivateCommit` records; :func:`private_commit` builds
one from a commitment and its decoded update.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fedchain.audit.findings import AuditFinding, FindingKind, Party, Severity
from fedchain.errors import ConfigError, PrivacyError
from fedchain.fl import privacy as dp
from fedchain.fl.privacy import EPSILON_SCALE, AccountantInputs, PrivacyPolicy
from fedchain.fl.records import ClientUpdate
from fedchain.types import ZERO_DIGEST, Digest, digest_hex

INCLUDED = "included"
LEFT_OUT = "left_out"
UNDECIDED = "undecided"
OUTCOMES = (INCLUDED, LEFT_OUT, UNDECIDED)
"""What the aggregator did with an update: included it in a finalised round, ended the round
without it (rejected it, or closed the round), or nothing yet (the round is open)."""

_SEVERITY = {INCLUDED: Severity.ERROR, LEFT_OUT: Severity.HANDLED, UNDECIDED: Severity.WARNING}

# The fields of the accountant inputs, and the direction in which a difference from the policy
# spends more privacy than the policy allows: "below" (noise), "above" (clip, sampling, steps,
# delta), "differs" (mechanism, accountant: any other value).
_FIELDS: tuple[tuple[str, str], ...] = (
    ("mechanism", "differs"), ("accountant", "differs"), ("noise_multiplier", "below"), ("clip", "above"),
    ("sample_rate", "above"), ("steps", "above"), ("delta", "above"),
)

# What the accountant or a decoder of hostile extras may raise.
_INPUT_ERRORS: tuple[type[BaseException], ...] = (PrivacyError, ConfigError, TypeError, ValueError, OverflowError)


def micro(fixed: int) -> float:
    """Micro-epsilon as epsilon."""
    return fixed / EPSILON_SCALE


@dataclass(frozen=True)
class NoiseResult:
    """The noise-presence check of one client-DP update: ``||u||^2 / sigma^2`` (``statistic``)
    against the chi-square quantile at the false-alarm rate ``alpha`` over ``dimension`` coordinates."""

    statistic: float
    threshold: float
    dimension: int
    alpha: float
    passed: bool

    def to_json(self) -> dict[str, Any]:
        """The check as a JSON object."""
        return {"statistic": self.statistic, "threshold": self.threshold, "dimension": self.dimension,
                "alpha": self.alpha, "passed": self.passed}


@dataclass(frozen=True)
class PrivateCommit:
    """One commitment of a round under a task with a privacy policy, with what the audit read
    from its update: the accountant inputs its extras carry (``inputs``; None with ``inputs_error``
    saying why, or with neither when the blob could not be read) and, for client-level DP, the
    noise check of its model tensors."""

    round_id: int
    participant: str
    task_version: int
    policy: PrivacyPolicy
    local_epochs: int
    epsilon_spent: int  # micro-epsilon, as committed
    accountant_digest: Digest
    outcome: str  # one of OUTCOMES
    decoded: bool  # the audit read the update (False: the replay reports its blob)
    inputs: AccountantInputs | None = None
    inputs_error: str = ""
    noise: NoiseResult | None = None
    tx_hash: str = ""

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"outcome {self.outcome!r} is not one of {', '.join(OUTCOMES)}")


def check_noise(tensors: Mapping[str, Any], policy: PrivacyPolicy) -> NoiseResult:
    """The client-DP noise check of an update's model tensors (:func:`fedchain.fl.privacy.noise_check`)."""
    check = dp.noise_check(tensors, policy)
    return NoiseResult(float(check.statistic), float(check.threshold), int(check.dimension),
                       float(policy.noise_check_alpha), bool(check.passed))


def private_commit(*, round_id: int, participant: str, task_version: int, policy: PrivacyPolicy, local_epochs: int,
                   epsilon_spent: int, accountant_digest: Digest, outcome: str, update: ClientUpdate | None,
                   tx_hash: str = "") -> PrivateCommit:
    """The record of one commitment and its decoded update (None: the blob could not be read)."""
    inputs: AccountantInputs | None = None
    error = ""
    noise: NoiseResult | None = None
    if update is not None:
        try:
            inputs = AccountantInputs.from_extras(update.extras)
        except _INPUT_ERRORS as err:
            error = f"its accountant inputs are malformed: {err}"
        else:
            if inputs is None:
                error = "its update's extras carry no accountant inputs (dp_* keys)"
        if policy.mechanism == "client":
            try:
                noise = check_noise(update.model_tensors, policy)
            except _INPUT_ERRORS as err:
                error = error or f"its update cannot be checked for noise: {err}"
    return PrivateCommit(round_id, participant, task_version, policy, local_epochs, int(epsilon_spent),
                         Digest(bytes(accountant_digest)), outcome, update is not None, inputs, error, noise, tx_hash)


# --- the report's lines ----------------------------------------------------------------------
@dataclass(frozen=True)
class PolicyLine:
    """The privacy policy of one task version, with the local epochs that fix its steps per round."""

    task_version: int
    policy: PrivacyPolicy
    local_epochs: int

    def to_json(self) -> dict[str, Any]:
        """The policy as a JSON object: its fields, digest, budget in micro-epsilon and steps per round."""
        p = self.policy
        return {"task_version": self.task_version, "policy_digest": digest_hex(p.digest()),
                "mechanism": p.mechanism, "clip": p.clip, "noise_multiplier": p.noise_multiplier,
                "sample_rate": p.sample_rate, "delta": p.delta, "accountant": p.accountant,
                "epsilon_budget": p.epsilon_budget, "budget": p.budget_fixed(), "min_clients": p.min_clients,
                "noise_check_alpha": p.noise_check_alpha, "local_epochs": self.local_epochs,
                "steps_per_round": p.steps_per_round(self.local_epochs)}


@dataclass(frozen=True)
class EpsilonPoint:
    """One commitment on a participant's epsilon curve: its claim (micro-epsilon), the cumulative
    epsilon the audit recomputed (None: the accountant could not), where the round's inputs came
    from (``update``: its extras; ``digest``: the policy's, matching the committed digest;
    ``assumed``: the policy's), what the aggregator did with it, and its noise check."""

    round: int
    claimed: int
    recomputed: float | None
    inputs: str
    outcome: str
    noise: NoiseResult | None = None

    def to_json(self) -> dict[str, Any]:
        """The point as a JSON object (``claimed`` and ``recomputed`` in micro-epsilon, ``*_epsilon`` as epsilon)."""
        fixed = _fixed_or_none(self.recomputed)
        return {"round": self.round, "claimed": self.claimed, "claimed_epsilon": micro(self.claimed),
                "recomputed": fixed, "recomputed_epsilon": self.recomputed, "inputs": self.inputs,
                "outcome": self.outcome, "noise_check": self.noise.to_json() if self.noise is not None else None}


def _fixed_or_none(eps: float | None) -> int | None:
    if eps is None:
        return None
    try:
        return dp.epsilon_fixed(eps)
    except PrivacyError:
        return None


@dataclass(frozen=True)
class ParticipantPrivacy:
    """One participant's epsilon curve and its spend against the budget."""

    participant: str
    budget: int  # micro-epsilon, of the policy in force at its latest commitment
    curve: tuple[EpsilonPoint, ...]

    @property
    def spent(self) -> int:
        """Its latest claim (micro-epsilon), as the chain records it."""
        return self.curve[-1].claimed if self.curve else 0

    @property
    def recomputed(self) -> float | None:
        """The cumulative epsilon the audit recomputed after its latest commitment."""
        return self.curve[-1].recomputed if self.curve else None

    def to_json(self) -> dict[str, Any]:
        """The participant's line as a JSON object."""
        return {"participant": self.participant, "spent": self.spent, "spent_epsilon": micro(self.spent),
                "recomputed": _fixed_or_none(self.recomputed), "recomputed_epsilon": self.recomputed,
                "budget": self.budget, "budget_epsilon": micro(self.budget),
                "curve": [p.to_json() for p in self.curve]}


@dataclass(frozen=True)
class PrivacyAudit:
    """The report's ``privacy`` section: the policies, per participant the epsilon curve, the findings.

    ``complete`` is false for an audit of one round: the earlier rounds' inputs are not composed in."""

    policies: tuple[PolicyLine, ...]
    participants: tuple[ParticipantPrivacy, ...]
    findings: tuple[AuditFinding, ...] = ()
    complete: bool = True

    @property
    def policy(self) -> PolicyLine | None:
        """The policy of the latest task version that has one."""
        return self.policies[-1] if self.policies else None

    def curves(self) -> dict[str, list[tuple[int, float]]]:
        """Per participant, (round, claimed epsilon) along its commitments."""
        return {p.participant: [(pt.round, micro(pt.claimed)) for pt in p.curve] for p in self.participants}

    def lines(self) -> list[str]:
        """The section for people (``fedchain audit`` without ``--json``)."""
        out: list[str] = []
        for line in self.policies:
            p = line.policy
            out.append(f"privacy (task v{line.task_version}): {p.mechanism}, clip {p.clip:g}, noise multiplier "
                       f"{p.noise_multiplier:g}, sample rate {p.sample_rate:g}, delta {p.delta:g}, {p.accountant} "
                       f"accountant, budget epsilon {p.epsilon_budget:g} per participant"
                       + (f", min clients {p.min_clients}" if p.mechanism == "client" else ""))
        if not self.complete:
            out.append("  (one round audited: the recomputed epsilon composes only that round)")
        for part in self.participants:
            rec = "-" if part.recomputed is None else f"{part.recomputed:.4f}"
            out.append(f"  {part.participant}: epsilon {micro(part.spent):.4f} of {micro(part.budget):g} claimed, "
                       f"{rec} recomputed, over rounds {', '.join(str(pt.round) for pt in part.curve)}")
        return out

    def to_json(self) -> dict[str, Any]:
        """The section as a JSON object: ``policy`` (the latest), ``policies``, ``participants``, ``complete``."""
        return {"policy": self.policy.to_json() if self.policy is not None else None,
                "policies": [p.to_json() for p in self.policies],
                "participants": [p.to_json() for p in self.participants], "complete": self.complete}


# --- the audit -------------------------------------------------------------------------------
def _show(value: Any) -> str:
    return repr(value) if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def parameter_differences(inputs: AccountantInputs, expected: AccountantInputs) -> tuple[list[str], list[str]]:
    """The fields in which ``inputs`` differ from the policy's ``expected``, as text naming both
    values: (those that spend more privacy than the policy allows, those that spend less)."""
    unsafe: list[str] = []
    safe: list[str] = []
    for name, direction in _FIELDS:
        mine, theirs = getattr(inputs, name), getattr(expected, name)
        if mine == theirs:
            continue
        if direction == "differs":
            unsafe.append(f"{name} {_show(mine)}, the policy's is {_show(theirs)}")
        elif (direction == "below") == (mine < theirs):
            unsafe.append(f"{name} {_show(mine)} {direction} the policy's {_show(theirs)}")
        else:
            safe.append(f"{name} {_show(mine)} {'above' if direction == 'below' else 'below'} the policy's "
                        f"{_show(theirs)}")
    return unsafe, safe


def audit_privacy(commits: Iterable[PrivateCommit], policies: Sequence[PolicyLine] = (), *,
                  complete: bool = True) -> PrivacyAudit:
    """Check every commitment of ``commits`` (in chain order; see the module docstring) and build
    the privacy section; ``policies`` lists the task versions' policies (those of the commits are
    added when missing)."""
    findings: list[AuditFinding] = []
    history: dict[str, list[AccountantInputs]] = {}
    curves: dict[str, list[EpsilonPoint]] = {}
    budgets: dict[str, int] = {}
    names: dict[str, str] = {}
    lines = {p.task_version: p for p in policies}
    unverifiable: set[str] = set()
    for c in commits:
        lines.setdefault(c.task_version, PolicyLine(c.task_version, c.policy, c.local_epochs))
        who = c.participant.lower()
        names.setdefault(who, c.participant)
        severity = _SEVERITY[c.outcome]
        note = " (the aggregator included this update)" if c.outcome == INCLUDED else ""

        def add(kind: FindingKind, detail: str, *, severity: Severity = severity, c: PrivateCommit = c,
                note: str = note) -> None:
            findings.append(AuditFinding.of(c.round_id, c.participant, kind, f"{detail}{note}",
                                            responsible=Party.PARTICIPANT, severity=severity))

        expected = c.policy.round_inputs(c.local_epochs)
        claimless = c.epsilon_spent == 0 and bytes(c.accountant_digest) == bytes(ZERO_DIGEST)
        if claimless:
            add(FindingKind.PRIVACY_CLAIM_MISSING,
                f"committed (tx {c.tx_hash or '?'}) in a private round of task v{c.task_version} without a privacy "
                "claim (epsilon 0, zero accountant digest)")
        inputs, source = c.inputs, "update"
        if c.decoded and inputs is None:
            why = c.inputs_error or "its update carries no accountant inputs"
            add(FindingKind.PRIVACY_INPUTS_MISSING, f"round {c.round_id} is private (task v{c.task_version}) but {why}")
        if inputs is not None:
            if not claimless and bytes(inputs.digest()) != bytes(c.accountant_digest):
                add(FindingKind.ACCOUNTANT_DIGEST_MISMATCH,
                    f"the accountant inputs in its update digest to {digest_hex(inputs.digest())}, the commitment's "
                    f"accountant digest is {digest_hex(c.accountant_digest)}")
            unsafe, safe = parameter_differences(inputs, expected)
            if unsafe:
                add(FindingKind.PRIVACY_PARAMETERS_MISMATCH,
                    f"its accountant inputs differ from the policy of task v{c.task_version}: {'; '.join(unsafe + safe)}")
            elif safe:
                add(FindingKind.PRIVACY_PARAMETERS_MISMATCH,
                    f"its accountant inputs differ from the policy of task v{c.task_version}, spending less privacy "
                    f"than it allows: {'; '.join(safe)}", severity=Severity.WARNING)
        else:
            inputs = expected
            source = "digest" if bytes(expected.digest()) == bytes(c.accountant_digest) else "assumed"
        if c.noise is not None and not c.noise.passed:
            n = c.noise
            add(FindingKind.DP_NOISE_MISSING,
                f"update lacks its noise share: ||u||^2 / sigma^2 = {n.statistic:.6g} over {n.dimension} coordinates "
                f"is below the threshold {n.threshold:.6g} (chi-square quantile at the false-alarm rate {n.alpha:g}; "
                f"sigma = z C / sqrt(m) = {c.policy.noise_std():.6g})")
        mine = history.setdefault(who, [])
        mine.append(inputs)
        recomputed: float | None = None
        if who not in unverifiable:
            try:
                recomputed = float(dp.epsilon(mine))
                fixed = dp.epsilon_fixed(recomputed)
            except _INPUT_ERRORS as err:
                unverifiable.add(who)
                recomputed = None
                add(FindingKind.EPSILON_UNVERIFIABLE,
                    f"the accountant cannot compose its {len(mine)} round(s) of inputs: {err}")
            else:
                if not claimless and c.epsilon_spent < fixed:
                    add(FindingKind.EPSILON_UNDER_REPORTED,
                        f"under-reported epsilon: claimed {micro(c.epsilon_spent):.6f} ({c.epsilon_spent} micro-epsilon),"
                        f" the {inputs.accountant} accountant recomputes {recomputed:.6f} ({fixed}) over its "
                        f"{len(mine)} round(s){'' if complete else ' seen by this audit'}")
        budget = c.policy.budget_fixed()
        budgets[who] = budget
        recomputed_fixed = _fixed_or_none(recomputed)
        over = [f"claimed {micro(c.epsilon_spent):.6f}"] if c.epsilon_spent > budget else []
        if recomputed_fixed is not None and recomputed_fixed > budget and recomputed is not None:
            over.append(f"recomputed {recomputed:.6f}")
        if over:
            add(FindingKind.PRIVACY_BUDGET_EXCEEDED,
                f"{' and '.join(over)} epsilon, over the budget {micro(budget):.6f} of task v{c.task_version}")
        curves.setdefault(who, []).append(EpsilonPoint(c.round_id, c.epsilon_spent, recomputed, source, c.outcome,
                                                       c.noise))
    participants = tuple(ParticipantPrivacy(names[w], budgets[w], tuple(curves[w])) for w in sorted(curves))
    return PrivacyAudit(tuple(lines[v] for v in sorted(lines)), participants, tuple(findings), complete)


__all__ = ["INCLUDED", "LEFT_OUT", "OUTCOMES", "UNDECIDED", "EpsilonPoint", "NoiseResult", "ParticipantPrivacy",
           "PolicyLine", "PrivacyAudit", "PrivateCommit", "audit_privacy", "check_noise", "micro",
           "parameter_differences", "private_commit"]

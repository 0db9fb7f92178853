"""The round loop: the only one in fedchain.

A round is: the transport opens it (:meth:`Transport.open_round`), collects the screened
updates once the commit phase is over (:meth:`Transport.collect`), the engine aggregates them
with the task's strategy (:func:`fedchain.protocol.rounds.aggregate_screened`, the very code the
auditor replays; for a secure-aggregation round the transport hands over the unmasked
aggregate instead, :func:`fedchain.protocol.secure.secure_aggregate`), the transport publishes
the result (:meth:`Transport.publish`: finalise with a model or close with a reason), and an
optional evaluator scores the new global model.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol, TypeVar

from fedchain.engine.reports import PhaseTimes, RoundReport, RunReport, Traffic
from fedchain.errors import (
    AggregationError,
    CommitPhaseStillOpen,
    FedchainError,
    RpcUnavailableError,
    StorageUnavailableError,
)
from fedchain.fl.privacy import PrivacyPolicy
from fedchain.fl.records import ClientUpdate, Rejection, StrategyConfig
from fedchain.protocol.blobs import GlobalModel
from fedchain.protocol.outage import OutageClock
from fedchain.protocol.rounds import RoundAggregate, aggregate_screened
from fedchain.protocol.secure import SecureAggregate
from fedchain.types import Cid, Digest, RoundId

log = logging.getLogger(__name__)

Evaluator = Callable[[GlobalModel], Mapping[str, float]]
T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class OpenedRound:
    """A round that is open for updates, and what it starts from."""

    round_id: RoundId
    base: GlobalModel
    base_digest: Digest
    strategy: StrategyConfig
    min_updates: int
    privacy: PrivacyPolicy | None = None  # the task's privacy policy (aggregate_screened enforces it)


@dataclass(frozen=True, eq=False)
class Collected:
    """The updates of a round whose commit phase is over: those that passed the transport's
    screening (sorted by participant address) and those screened out, with the reason.

    A secure-aggregation round has no update in the clear: its ``secure`` aggregate (the unmasked
    sum applied to the base model, or why it could not be unmasked) is what the round publishes."""

    updates: tuple[ClientUpdate, ...]
    rejections: tuple[Rejection, ...]
    commit_count: int
    sat_out: int = 0
    traffic: Traffic = Traffic()
    secure: SecureAggregate | None = None


@dataclass(frozen=True, eq=False)
class Published:
    """What the transport published for a round: ``aggregate`` is what went out (a
    demonstration of a dishonest aggregator may publish something else than it was handed)."""

    aggregate: RoundAggregate
    model_cid: Cid | None
    gas_used: int = 0
    tx_hash: str | None = None
    traffic: Traffic = Traffic()


class Transport(Protocol):
    """Carries the rounds of :func:`run_rounds` (in memory, or over the ledger)."""

    def open_round(self) -> OpenedRound:
        """Open the next round on the current global model."""
        ...

    def collect(self, opened: OpenedRound, timeout_s: float | None) -> Collected:
        """Wait (up to ``timeout_s`` seconds; None: no limit) for the round's commit phase to
        end, then fetch and screen its updates. Raises :class:`CommitPhaseStillOpen` when the
        phase is still open at the timeout."""
        ...

    def publish(self, opened: OpenedRound, collected: Collected, aggregate: RoundAggregate) -> Published:
        """Publish the round's model (or close the round when ``aggregate`` has none).

        Raises :class:`CommitPhaseStillOpen` when the round cannot end yet."""
        ...

    def resume(self, opened: OpenedRound) -> OpenedRound | None:
        """The round again after an outage, as it stands now; None when it has ended meanwhile."""
        ...


def finish_round(
    transport: Transport,
    opened: OpenedRound,
    *,
    evaluate: Evaluator | None = None,
    commit_timeout_s: float | None = None,
) -> RoundReport:
    """Collect, aggregate, publish and evaluate an open round.

    Waits for the commit phase to end for up to ``commit_timeout_s`` seconds (None: as long as
    it takes); when the ledger refuses to end the round because its commit phase is still open,
    collects again (more updates may have arrived) within the same limit."""
    return _finish(transport, opened, evaluate, commit_timeout_s, time.perf_counter(), 0.0)[0]


def _finish(
    transport: Transport, opened: OpenedRound, evaluate: Evaluator | None, commit_timeout_s: float | None,
    started: float, open_s: float,
) -> tuple[RoundReport, GlobalModel | None]:
    t0 = started
    first_try = time.monotonic()
    deadline = None if commit_timeout_s is None else first_try + commit_timeout_s
    while True:
        remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
        t_collect = time.perf_counter()
        try:
            collected = transport.collect(opened, remaining)
            t_aggregate = time.perf_counter()
            if collected.secure is not None:
                agg = collected.secure.aggregate
            else:
                agg = aggregate_screened(
                    opened.strategy, opened.base, opened.round_id, opened.base_digest,
                    collected.updates, collected.rejections, opened.min_updates, privacy=opened.privacy,
                )
            published = transport.publish(opened, collected, agg)
        except CommitPhaseStillOpen as err:
            waited = time.monotonic() - first_try
            if deadline is not None and time.monotonic() >= deadline:
                raise AggregationError(
                    f"round {opened.round_id}: the contract still holds the commit phase open after {waited:.1f} s"
                ) from err
            log.info("round %d: commit phase still open; collecting again", opened.round_id)
            continue
        break
    t_done = time.perf_counter()
    out = published.aggregate
    evaluation: Mapping[str, float] = {}
    if evaluate is not None and out.model is not None:
        evaluation = dict(evaluate(out.model))
    report = RoundReport(
        round_id=opened.round_id,
        finalized=out.model_digest is not None,
        model_digest=out.model_digest,
        model_cid=published.model_cid,
        included=out.included,
        rejected=out.rejections,
        commit_count=collected.commit_count,
        close_reason=out.too_few_reason,
        num_samples=out.num_samples,
        sat_out=collected.sat_out,
        gas_used=published.gas_used,
        tx_hash=published.tx_hash,
        traffic=collected.traffic + published.traffic,
        phases=PhaseTimes(open_s, t_aggregate - t_collect, t_done - t_aggregate),
        wall_s=time.perf_counter() - t0,
        metrics=dict(out.metrics),
        evaluation=evaluation,
    )
    return report, out.model


def run_round(transport: Transport, *, evaluate: Evaluator | None = None, commit_timeout_s: float | None = None) -> RoundReport:
    """Open one round and finish it (:func:`finish_round`)."""
    t0 = time.perf_counter()
    opened = transport.open_round()
    return _finish(transport, opened, evaluate, commit_timeout_s, t0, time.perf_counter() - t0)[0]


@dataclass(frozen=True)
class OutagePolicy:
    """How :func:`run_rounds` rides out an unreachable ledger or store (``errors``): it pauses
    (``first_pause_s``, doubling up to ``max_pause_s``), calls ``on_outage`` (where an agent
    looks its services up again), and resumes the round it was in (:meth:`Transport.resume`);
    an outage longer than ``max_outage_s`` seconds is raised."""

    max_outage_s: float = 300.0
    first_pause_s: float = 0.5
    max_pause_s: float = 10.0
    on_outage: Callable[[], None] | None = None
    errors: tuple[type[Exception], ...] = (RpcUnavailableError, StorageUnavailableError)


class _Outage:
    """The state of one outage (:class:`fedchain.protocol.outage.OutageClock`) and the policy's hook."""

    def __init__(self, policy: OutagePolicy) -> None:
        self.policy = policy
        self.clock = OutageClock(policy.first_pause_s, policy.max_outage_s, policy.max_pause_s)

    def failed(self, err: Exception) -> None:
        """Pause before the next try, or raise ``err`` once the outage lasted too long."""
        self.clock.failed(err)
        if self.policy.on_outage is not None:
            try:
                self.policy.on_outage()
            except FedchainError as hook_err:
                log.warning("could not look the services up again: %s", hook_err)

    def recovered(self) -> None:
        self.clock.recovered()

    def call(self, fn: Callable[[], T]) -> T:
        """``fn()``, tried again through the outage."""
        while True:
            try:
                out = fn()
            except self.policy.errors as err:
                self.failed(err)
                continue
            self.recovered()
            return out


def run_rounds(
    transport: Transport,
    rounds: int | None,
    *,
    evaluate: Evaluator | None = None,
    on_round: Callable[[RoundReport], None] | None = None,
    commit_timeout_s: float | None = None,
    ride_out: OutagePolicy | None = None,
) -> RunReport:
    """Run ``rounds`` rounds (None: until interrupted) over ``transport``; the one round loop.

    With ``ride_out``, an unreachable ledger or store does not end the run: the loop waits
    (bounded) and resumes the round it was in; a round that ended meanwhile (its finalisation
    went through before the connection dropped) counts as run, without a report."""
    if rounds is not None and rounds < 0:
        raise AggregationError(f"rounds must be >= 0, got {rounds}")
    started = time.perf_counter()
    reports: list[RoundReport] = []
    final: GlobalModel | None = None
    outage = _Outage(ride_out) if ride_out is not None else None
    ended = 0
    while rounds is None or ended < rounds:
        t0 = time.perf_counter()
        opened = outage.call(transport.open_round) if outage is not None else transport.open_round()
        report: RoundReport | None = None
        while True:
            try:
                report, model = _finish(transport, opened, evaluate, commit_timeout_s, t0, time.perf_counter() - t0)
                break
            except Exception as err:
                if outage is None or not isinstance(err, outage.policy.errors):
                    raise
                outage.failed(err)
                again = outage.call(functools.partial(transport.resume, opened))
            if again is None:
                log.warning("round %d ended while the ledger or store was unreachable; it has no report",
                            opened.round_id)
                break
            opened = again
        ended += 1
        if report is None:
            continue
        final = model if model is not None else (final if final is not None else opened.base)
        reports.append(report)
        if on_round is not None:
            on_round(report)
    return RunReport(tuple(reports), time.perf_counter() - started, final)

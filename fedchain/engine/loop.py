"""The round loop: the only one in fedchain.

A round is: the transport opens it (:meth:`Transport.open_round`), collects the screened
updates once the commit phase is over (:meth:`Transport.collect`), the engine aggregates them
with the task's strategy (:func:`fedchain.protocol.rounds.aggregate_screened`, the very code the
auditor replays), the transport publishes the result (:meth:`Transport.publish`: finalise with a
model or close with a reason), and an optional evaluator scores the new global model.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Protocol

from fedchain.engine.reports import PhaseTimes, RoundReport, RunReport, Traffic
from fedchain.errors import AggregationError, CommitPhaseStillOpen
from fedchain.fl.records import ClientUpdate, Rejection, StrategyConfig
from fedchain.protocol.blobs import GlobalModel
from fedchain.protocol.rounds import RoundAggregate, aggregate_screened
from fedchain.types import Cid, Digest, RoundId

log = logging.getLogger(__name__)

Evaluator = Callable[[GlobalModel], Mapping[str, float]]


@dataclass(frozen=True, eq=False)
class OpenedRound:
    """A round that is open for updates, and what it starts from."""

    round_id: RoundId
    base: GlobalModel
    base_digest: Digest
    strategy: StrategyConfig
    min_updates: int


@dataclass(frozen=True, eq=False)
class Collected:
    """The updates of a round whose commit phase is over: those that passed the transport's
    screening (sorted by participant address) and those screened out, with the reason."""

    updates: tuple[ClientUpdate, ...]
    rejections: tuple[Rejection, ...]
    commit_count: int
    sat_out: int = 0
    traffic: Traffic = Traffic()


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
            agg = aggregate_screened(
                opened.strategy, opened.base, opened.round_id, opened.base_digest,
                collected.updates, collected.rejections, opened.min_updates,
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


def run_rounds(
    transport: Transport,
    rounds: int | None,
    *,
    evaluate: Evaluator | None = None,
    on_round: Callable[[RoundReport], None] | None = None,
    commit_timeout_s: float | None = None,
) -> RunReport:
    """Run ``rounds`` rounds (None: until interrupted) over ``transport``; the one round loop."""
    if rounds is not None and rounds < 0:
        raise AggregationError(f"rounds must be >= 0, got {rounds}")
    started = time.perf_counter()
    reports: list[RoundReport] = []
    final: GlobalModel | None = None
    while rounds is None or len(reports) < rounds:
        t0 = time.perf_counter()
        opened = transport.open_round()
        report, model = _finish(transport, opened, evaluate, commit_timeout_s, t0, time.perf_counter() - t0)
        final = model if model is not None else (final if final is not None else opened.base)
        reports.append(report)
        if on_round is not None:
            on_round(report)
    return RunReport(tuple(reports), time.perf_counter() - started, final)

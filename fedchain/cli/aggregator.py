"""``fedchain aggregator run``: the aggregator agent, the round engine over the ledger."""

from __future__ import annotations

from pathlib import Path

import click

from fedchain.cli.options import emit, json_option, keystore_option, role_options, role_settings, role_signer
from fedchain.cli.round import aggregator_transport, describe_round
from fedchain.types import RoundId


@click.group()
def aggregator() -> None:
    """Run the aggregator agent."""


@aggregator.command()
@click.option("--rounds", type=int, default=None, help="How many rounds to run [default: until interrupted].")
@click.option("--until-round", type=int, default=None,
              help="Run until this round has ended (a round left open is resumed) [default: see --rounds].")
@click.option("--resume/--no-resume", default=True, show_default=True,
              help="Finish a round left open (by an aggregator that stopped) instead of refusing to start.")
@click.option("--max-outage", type=float, default=300.0, show_default=True,
              help="Seconds an unreachable chain or store is ridden out before giving up.")
@click.option("--commit-duration", type=int, default=None, help="Seconds participants have to commit [default: the task's].")
@click.option("--min-updates", type=int, default=None, help="Minimum included updates [default: the task's].")
@click.option("--attestation-timeout", type=click.FloatRange(min=0), default=600.0, show_default=True,
              help="Seconds to wait, under a verification policy, for the members to attest the current model's "
                   "round before a round can open (0: no limit).")
@click.option("--dishonest", type=click.Choice(["drop-update", "shift-model", "ignore-contests"]), default=None,
              help="Demonstration only: cheat, so that the audit and the members have something to catch.")
@keystore_option
@role_options
@json_option
def run(rounds: int | None, until_round: int | None, resume: bool, max_outage: float, commit_duration: int | None,
        min_updates: int | None, attestation_timeout: float, dishonest: str | None, keystore: Path | None,
        state_dir: Path | None,
        rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None,
        as_json: bool) -> None:
    """Open a round, wait until every eligible participant committed or the deadline passed, aggregate,
    publish the model and evidence, finalise; repeat.

    A round left open by an aggregator that stopped is resumed (logged) unless --no-resume; an
    unreachable chain or store is ridden out for --max-outage seconds, following a managed devnet
    or IPFS node that came back on another URL (when the URLs come from the state dir). Under a
    verification policy a round opens once the members attested the previous one (waiting up to
    --attestation-timeout seconds); open exclusion contests are answered before each round."""
    from fedchain.engine.loop import OutagePolicy, run_rounds
    from fedchain.engine.reports import RoundReport
    from fedchain.ports import RoundStatus
    from fedchain.sim.wiring import follow_services

    if rounds is not None and until_round is not None:
        raise click.UsageError("give --rounds or --until-round, not both")
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    account = role_signer(settings)
    transport = aggregator_transport(settings, address, dishonest=dishonest, commit_duration=commit_duration,
                                     min_updates=min_updates, resume=resume, account=account)
    transport.attestation_timeout_s = attestation_timeout or None
    if until_round is not None:
        latest = int(transport.ledger.latest_round_id())
        still_open = latest >= 1 and transport.ledger.round(RoundId(latest)).status == RoundStatus.OPEN
        rounds = max(0, until_round - latest + (1 if still_open else 0))

    def show(report: RoundReport) -> None:
        if not as_json:
            click.echo(describe_round(report))

    follow = follow_services(settings, transport, account=account, address=address)
    policy = OutagePolicy(max_outage_s=max_outage, on_outage=follow)
    try:
        result = run_rounds(transport, rounds, on_round=show, ride_out=policy)
    finally:
        transport.close_inbox()  # signed rounds: the commitment inbox
    if as_json:
        emit(True, {"rounds": [r.to_json() for r in result.rounds]}, "")

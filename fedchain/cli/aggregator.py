"""``fedchain aggregator run``: the aggregator agent, the round engine over the ledger."""

from __future__ import annotations

from pathlib import Path

import click

from fedchain.cli.options import emit, json_option, keystore_option, role_options, role_settings
from fedchain.cli.round import aggregator_transport, describe_round


@click.group()
def aggregator() -> None:
    """Run the aggregator agent."""


@aggregator.command()
@click.option("--rounds", type=int, default=None, help="How many rounds to run [default: until interrupted].")
@click.option("--commit-duration", type=int, default=None, help="Seconds participants have to commit [default: the task's].")
@click.option("--min-updates", type=int, default=None, help="Minimum included updates [default: the task's].")
@click.option("--dishonest", type=click.Choice(["drop-update", "shift-model"]), default=None,
              help="Demonstration only: cheat, so that the audit has something to catch.")
@keystore_option
@role_options
@json_option
def run(rounds: int | None, commit_duration: int | None, min_updates: int | None, dishonest: str | None, keystore: Path | None,
        state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None,
        chain_id: int | None, as_json: bool) -> None:
    """Open a round, wait until every eligible participant committed or the deadline passed, aggregate,
    publish the model and evidence, finalise; repeat."""
    from fedchain.engine.loop import run_rounds
    from fedchain.engine.reports import RoundReport

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    transport = aggregator_transport(settings, address, dishonest=dishonest, commit_duration=commit_duration,
                                     min_updates=min_updates)

    def show(report: RoundReport) -> None:
        if not as_json:
            click.echo(describe_round(report))

    result = run_rounds(transport, rounds, on_round=show)
    if as_json:
        emit(True, {"rounds": [r.to_json() for r in result.rounds]}, "")

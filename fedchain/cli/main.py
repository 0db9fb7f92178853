"""The ``fedchain`` click group. Subcommands are imported lazily so that a chain
command never pays for importing torch, and vice versa."""

from __future__ import annotations

import importlib
import logging
import sys
from typing import Any

import click

from fedchain import __version__
from fedchain.errors import FedchainError

# name -> "module:attribute"; each module owns its subgroup.
SUBCOMMANDS: dict[str, str] = {
    "contracts": "fedchain.cli.contracts:contracts",
    "devnet": "fedchain.cli.devnet:devnet",
    "account": "fedchain.cli.account:account",
    "ipfs": "fedchain.cli.ipfs:ipfs",
    "store": "fedchain.cli.store:store",
    "data": "fedchain.cli.data:data",
    "participant": "fedchain.cli.participant:participant",
    "round": "fedchain.cli.round:round_",
    "aggregator": "fedchain.cli.aggregator:aggregator",
    "audit": "fedchain.cli.audit:audit",
    "simulate": "fedchain.cli.simulate:simulate",
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in SUBCOMMANDS:
            module_name, attr = SUBCOMMANDS[cmd_name].split(":")
            module = importlib.import_module(module_name)
            command: click.Command = getattr(module, attr)
            return command
        return super().get_command(ctx, cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except FedchainError as err:
            click.echo(f"error: {err}", err=True)
            ctx.exit(int(err.exit_code))


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fedchain")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Auditable federated learning: train locally, commit to the chain, audit everything."""
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("fedchain")
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level)


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

# name -> ("module:attribute", one-line help); each module owns its subgroup.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "contracts": ("fedchain.cli.contracts:contracts", "Compile the Solidity contracts; check committed artifacts."),
    "devnet": ("fedchain.cli.devnet:devnet", "Start, stop and inspect the local Ethereum devnet."),
    "admin": ("fedchain.cli.admin:admin", "Admit and remove participants; inspect task and members."),
    "gov": ("fedchain.cli.gov:gov", "Governance: propose, vote, queue and execute the consortium's decisions."),
    "account": ("fedchain.cli.account:account", "Encrypted keystores: create, list, fund."),
    "ipfs": ("fedchain.cli.ipfs:ipfs", "Start, stop and inspect the local IPFS node."),
    "store": ("fedchain.cli.store:store", "Put, get and compute CIDs of blobs."),
    "data": ("fedchain.cli.data:data", "Datasets, schemas and per-participant partitions."),
    "participant": ("fedchain.cli.participant:participant", "Register, train and commit as a participant."),
    "round": ("fedchain.cli.round:round_", "Open, inspect and finalise rounds (aggregator)."),
    "aggregator": ("fedchain.cli.aggregator:aggregator", "Run the aggregator agent."),
    "audit": ("fedchain.cli.audit:audit", "Replay the ledger and IPFS and verify every round."),
    "simulate": ("fedchain.cli.simulate:simulate", "Run a whole federation end to end, then audit it."),
    "deposit": ("fedchain.cli.deposit:deposit", "Show, release and withdraw a participant's deposit."),
    "rewards": ("fedchain.cli.rewards:rewards", "Show each round's rewards; claim yours by Merkle proof."),
    "model": ("fedchain.cli.model:model", "Export and evaluate the federation's verified global models."),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        """The loaded subcommands and the lazy ones, sorted."""
        return sorted(set(super().list_commands(ctx)) | set(SUBCOMMANDS))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        """The subcommand ``cmd_name``, importing its module on first use."""
        if cmd_name in SUBCOMMANDS:
            module_name, attr = SUBCOMMANDS[cmd_name][0].split(":")
            module = importlib.import_module(module_name)
            command: click.Command = getattr(module, attr)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the subcommands from their static help lines, without importing them."""
        # Listing must not import every subcommand (torch, web3): use the static help lines.
        rows = [(name, SUBCOMMANDS[name][1]) for name in sorted(SUBCOMMANDS)]
        with formatter.section("Commands"):
            formatter.write_dl(rows)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a :class:`FedchainError` becomes one ``error:`` line on stderr and its exit code."""
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


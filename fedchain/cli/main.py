"""The ``fedchain`` click group. Subcommands are imported lazily so that a chain
command never pays for importing torch, and vice versa."""

from __future__ import annotations

import importlib
import itertools
import json
import logging
import sys
from typing import Any

import click

from fedchain import __version__
from fedchain.cli.exit_codes import error_document, exit_code_rows, render_json, render_text
from fedchain.cli.options import JSON_EMITTED, JSON_REQUESTED
from fedchain.errors import ExitCode, FedchainError

RAW_ARGS = "fedchain.raw_args"
"""``ctx.meta`` key: the command line's arguments as given (for ``--json`` on an error found while parsing)."""

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
    "init": ("fedchain.cli.init:init", "Scaffold a consortium project: task.toml, schema, model file, README."),
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

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse the top-level options, keeping the arguments as given for the error path."""
        ctx.meta[RAW_ARGS] = list(args)
        return super().parse_args(ctx, args)

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; a :class:`FedchainError` becomes one ``error:`` line on stderr and its exit code, a
        Ctrl-C ``error: interrupted`` and 130. With ``--json``, every failure (usage errors too) also prints one
        JSON error object on stdout (unless the command already printed its document)."""
        try:
            return super().invoke(ctx)
        except FedchainError as err:
            click.echo(f"error: {err}", err=True)
            _json_error(ctx, int(err.exit_code), str(err), type(err).__name__)
            ctx.exit(int(err.exit_code))
        except click.ClickException as err:  # usage errors and click's own failures; click prints them on stderr
            _json_error(ctx, err.exit_code, err.format_message(), type(err).__name__)
            raise
        except click.Abort as err:  # a prompt's Ctrl-C (click turns it into Abort) or end of input
            if not isinstance(err.__context__, KeyboardInterrupt):
                _json_error(ctx, int(ExitCode.GENERIC), "aborted", "Abort")
                raise
            _interrupted(ctx)
        except KeyboardInterrupt:
            _interrupted(ctx)


def _wants_json(ctx: click.Context) -> bool:
    """Whether the command being run was given ``--json``: as parsed, else (an error while parsing) as typed."""
    requested = ctx.meta.get(JSON_REQUESTED)
    if requested is not None:
        return bool(requested)
    raw: list[str] = ctx.meta.get(RAW_ARGS, [])
    return "--json" in (raw[: raw.index("--")] if "--" in raw else raw)


def _json_error(ctx: click.Context, code: int, message: str, error_type: str) -> None:
    """The JSON error object on stdout, when the command was given ``--json`` and printed no document yet."""
    if _wants_json(ctx) and not ctx.meta.get(JSON_EMITTED):
        click.echo(json.dumps(error_document(code, message, error_type), indent=2, sort_keys=True))
        ctx.meta[JSON_EMITTED] = True


def _interrupted(ctx: click.Context) -> None:
    click.echo("", err=True)  # end the line the ^C was echoed on
    click.echo("error: interrupted", err=True)
    _json_error(ctx, int(ExitCode.INTERRUPTED), "interrupted", "KeyboardInterrupt")
    ctx.exit(int(ExitCode.INTERRUPTED))


def _print_exit_codes(ctx: click.Context, param: click.Parameter, value: bool) -> None:
    """``--help-exit-codes``: print every exit code (``--json``: as one JSON document) and exit 0."""
    if not value or ctx.resilient_parsing:
        return
    top_level = itertools.takewhile(lambda arg: arg.startswith("-"), ctx.meta.get(RAW_ARGS, []))
    rows = exit_code_rows()
    if "--json" in top_level:
        click.echo(json.dumps({"exit_codes": render_json(rows)}, indent=2, sort_keys=True))
    else:
        click.echo(render_text(rows))
    ctx.exit(0)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="fedchain")
@click.option("--help-exit-codes", is_flag=True, is_eager=True, expose_value=False, callback=_print_exit_codes,
              help="Show every exit code (number, name, family, meaning) and exit.")
@click.option("--json", "as_json", is_flag=True,
              help="With --help-exit-codes: the table as one JSON document (commands take their own --json).")
@click.option("-v", "--verbose", count=True, help="More log output on stderr (-v info, -vv debug).")
def cli(verbose: int, as_json: bool) -> None:
    """Auditable federated learning: train locally, commit to the chain, audit everything."""
    if as_json:
        raise click.UsageError("--json goes after the command (e.g. `fedchain admin task --json`); at the top level "
                               "only with --help-exit-codes")
    level = logging.WARNING - 10 * min(verbose, 2)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("fedchain")
    if not root.handlers:
        root.addHandler(handler)
    root.setLevel(level)


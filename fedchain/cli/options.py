"""Options shared by every subcommand, and the one way commands print results."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fedchain.config import Settings, load_settings
from fedchain.types import Address

if TYPE_CHECKING:  # web3 is imported only by the commands that use it
    from fedchain.chain.ledger import ChainLedger
    from fedchain.chain.signer import Signer

F = TypeVar("F", bound=Callable[..., Any])

if TYPE_CHECKING:
    from fedchain.protocol.secure import SecAggConfig
    from fedchain.protocol.task import SignedCommitsConfig
    from fedchain.sim.config import PrivacyRequest


JSON_REQUESTED = "fedchain.json"
"""``ctx.meta`` key: whether the command being run was given ``--json`` (set while its options are parsed)."""
JSON_EMITTED = "fedchain.json_emitted"
"""``ctx.meta`` key: True once :func:`emit` printed the command's JSON document."""


def _remember_json(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    ctx.meta[JSON_REQUESTED] = bool(value)  # meta is shared by every context of the invocation
    return value


def json_option(f: F) -> F:
    """``--json``: print exactly one JSON document on stdout (on a failure, the error object)."""
    return click.option("--json", "as_json", is_flag=True, callback=_remember_json,
                        help="Print one JSON document on stdout; on a failure, the error: {'error': {code, kind, message}}.")(f)


class AddressParam(click.ParamType[str | None, Any]):
    """A 20-byte hex address (``0x`` and 40 hex digits; mixed case must be a valid EIP-55 checksum), checksummed;
    anything else is a usage error (exit 2) naming the option or argument. With ``empty_is_default``, an empty
    value (``--address "$UNSET"``) is None: the option's default."""

    name = "address"

    def __init__(self, *, empty_is_default: bool = False) -> None:
        self.empty_is_default = empty_is_default

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> str | None:
        """``value`` as a checksummed address, or a usage error."""
        from fedchain.codec.abi import is_checksum_address, is_hex_address, to_checksum_address  # not for every start-up

        if self.empty_is_default and value == "":
            return None
        if not isinstance(value, str) or not value.startswith(("0x", "0X")) or not is_hex_address(value):
            self.fail(f"not an address: {value!r} (an address is 0x and 40 hex digits)", param, ctx)
        digits = value[2:]
        if digits not in (digits.lower(), digits.upper()) and not is_checksum_address(value):
            self.fail(f"not an address: {value!r} has mixed case but a wrong EIP-55 checksum (mistyped?)", param, ctx)
        return str(to_checksum_address(value))


ADDRESS = AddressParam()
"""The click type of every address a command takes on its command line."""
ADDRESS_OR_DEFAULT = AddressParam(empty_is_default=True)
""":data:`ADDRESS` for an option whose empty value means its default (``--address ""``: the recorded deployment)."""


def address_or_keystore(value: str, what: str, state_dir: Path | None) -> Address:
    """``value`` as a checksummed address: an address, or the name of a keystore in the state directory
    (``fedchain account new --name NAME``); a usage error (exit 2) naming ``what`` otherwise."""
    from fedchain.chain.accounts import find_keystore, keystore_dir
    from fedchain.codec.abi import is_address, to_checksum_address
    from fedchain.errors import KeystoreError

    if is_address(value):
        return Address(to_checksum_address(value))
    if not value.lower().startswith("0x"):
        directory = settings_from(state_dir=state_dir).state_dir
        try:
            return Address(to_checksum_address(find_keystore(directory, value).address))
        except KeystoreError:
            raise click.BadParameter(f"{value!r} is neither an address nor the name of a keystore in "
                                     f"{keystore_dir(directory)}", param_hint=what) from None
    raise click.BadParameter(f"not an address: {value!r}", param_hint=what)


def state_dir_option(f: F) -> F:
    """``--state-dir``: where fedchain keeps its state (pids, URLs, deployments, the local store)."""
    return click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="Where fedchain keeps pids, URLs, deployments and the local store [env FEDCHAIN_STATE_DIR; default .fedchain].",
    )(f)


def rpc_url_option(f: F) -> F:
    """``--rpc-url``: the Ethereum JSON-RPC URL."""
    return click.option(
        "--rpc-url", default=None, help="Ethereum JSON-RPC URL [env FEDCHAIN_RPC_URL; default: the managed devnet]."
    )(f)


def ipfs_api_option(f: F) -> F:
    """``--ipfs-api``: the IPFS RPC API URL."""
    return click.option(
        "--ipfs-api", default=None, help="IPFS (Kubo-compatible) RPC API URL [env FEDCHAIN_IPFS_API; default: the managed node]."
    )(f)


def store_option(f: F) -> F:
    """``--store``: the blob store, the IPFS node or the local content-addressed store."""
    return click.option(
        "--store",
        type=click.Choice(["ipfs", "local"]),
        default=None,
        help="Blob store: the IPFS node, or the daemon-less local content-addressed store [env FEDCHAIN_STORE].",
    )(f)


def keystore_option(f: F) -> F:
    """``--keystore``: the signing account's encrypted keystore file."""
    return click.option(
        "--keystore",
        type=click.Path(path_type=Path),
        metavar="FILE|NAME",
        default=None,
        help="The signing account: a keystore file, or the name (or address) of a keystore in the state dir "
             "(fedchain account new --name NAME) [env FEDCHAIN_KEYSTORE]; password from FEDCHAIN_PASSWORD or a prompt.",
    )(f)


def toolchain_option(f: F) -> F:
    """``--toolchain``: the Node toolchain directory (solc-js, anvil, Hardhat, js-ipfs)."""
    return click.option(
        "--toolchain",
        type=click.Path(file_okay=False, path_type=Path),
        default=None,
        help="The Node toolchain directory, set up like hardhat-local/ [env FEDCHAIN_TOOLCHAIN; "
        "default: hardhat-local/ of the checkout].",
    )(f)


def settings_from(**overrides: Any) -> Settings:
    """Settings with CLI flags applied over env, fedchain.toml and defaults."""
    return load_settings(**overrides)


def to_jsonable(value: Any) -> Any:
    """Convert dataclasses, enums, bytes, paths and containers into JSON-ready values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, Enum):
        return value.name.lower()
    if isinstance(value, (bytes, bytearray)):
        return "0x" + bytes(value).hex()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def emit(as_json: bool, payload: Any, human: str | Callable[[], str]) -> None:
    """Print ``payload`` as one JSON document, or ``human`` text, on stdout."""
    if as_json:
        click.echo(json.dumps(to_jsonable(payload), indent=2, sort_keys=True))
        ctx = click.get_current_context(silent=True)
        if ctx is not None:
            ctx.meta[JSON_EMITTED] = True
    else:
        click.echo(human() if callable(human) else human)


def task_options(f: F) -> F:
    """The options that shape a federation's task (dataset, model, strategy, local training, timing).

    ``--min-updates`` is left to each command: its sensible default depends on the command."""
    options = [
        click.option("--dataset", default="breast_cancer", show_default=True,
                     help="breast_cancer, german_credit, digits or mnist."),
        click.option("--model", "arch", type=click.Choice(["logreg", "mlp", "cnn"]), default=None,
                     help="Model architecture [default: the dataset's (logreg for tables, cnn for mnist)]."),
        click.option("--strategy", default="fedavg", show_default=True,
                     help="fedavg, fedprox, scaffold, fednova, qfedavg or fedadam."),
        click.option("--strategy-param", "strategy_params", multiple=True, metavar="KEY=VALUE",
                     help="Extra strategy parameter, e.g. mu=0.01 (fedprox), q=1 (qfedavg), or max_weight_share=1 "
                          "(the cap on any participant's share of the weight; default 0.3). Repeatable."),
        click.option("--robust", default=None,
                     help="Robust rules, joined by '+': median, trimmed_mean[:beta], krum:f, multi_krum:f=1,m=2[,weighted=true], "
                          "norm_clip:max_norm=5[,reject=true]; 'none' for no rule "
                          "[default: norm_clip:max_norm=100,reject=true, the update-norm bound]."),
        click.option("--local-epochs", type=int, default=1, show_default=True),
        click.option("--batch-size", type=int, default=32, show_default=True),
        click.option("--lr", type=float, default=0.05, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--commit-duration", type=int, default=300, show_default=True,
                     help="Seconds participants have to commit."),
        click.option("--max-commit-duration", type=int, default=86_400, show_default=True,
                     help="The longest commit phase (seconds) the contract lets a round of the task be opened with "
                          "(recorded in the task document and on chain; at least --commit-duration)."),
        click.option("--reveal-duration", type=int, default=0, show_default=True,
                     help="Commit-reveal: seconds of the reveal phase after the commit phase. Participants first commit "
                          "a salted seal of their update and upload and reveal it only afterwards, so nobody can copy "
                          "an update it cannot see; 0 commits updates in the open."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def privacy_options(f: F) -> F:
    """The options of a task's differential-privacy policy (``--dp`` and its tuning)."""
    options = [
        click.option("--dp", "dp", type=click.Choice(["dpsgd", "client"]), default=None,
                     help="Differential privacy: dpsgd (record level: DP-SGD with Opacus, each participant's records) or "
                          "client (client level: each participant clips its update and adds its share of the noise). "
                          "The policy and each participant's epsilon budget are recorded on chain, which refuses any "
                          "commitment past the budget [default: none]."),
        click.option("--epsilon-budget", type=float, default=None,
                     help="With --dp: the total epsilon each participant may spend (required with --dp)."),
        click.option("--delta", "dp_delta", type=float, default=1e-5, show_default=True, help="With --dp: delta."),
        click.option("--dp-clip", type=float, default=1.0, show_default=True,
                     help="With --dp: the clipping norm (per-sample gradient for dpsgd, per update for client)."),
        click.option("--noise-multiplier", type=float, default=None,
                     help="With --dp: the noise multiplier z [default: the smallest with which the run's rounds fit "
                          "the budget, by the accountant]."),
        click.option("--dp-sample-rate", type=float, default=None,
                     help="With --dp dpsgd: the Poisson sampling rate of records [default: batch size / records per "
                          "participant]."),
        click.option("--dp-accountant", type=click.Choice(["rdp", "prv", "pld"]), default="rdp", show_default=True,
                     help="With --dp: the accountant (rdp for both; prv for dpsgd, Opacus; pld for client, dp-accounting)."),
        click.option("--dp-min-clients", type=int, default=None,
                     help="With --dp client: the number m of included updates each client's noise share (z C / sqrt(m)) "
                          "assumes; rounds need at least m [default: the minimum updates]."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def privacy_request(dp: str | None, epsilon_budget: float | None, dp_delta: float, dp_clip: float,
                    noise_multiplier: float | None, dp_sample_rate: float | None, dp_accountant: str,
                    dp_min_clients: int | None) -> PrivacyRequest | None:
    """What :func:`privacy_options` ask for (None without ``--dp``); a usage error for a tuning option without
    ``--dp`` or ``--dp`` without ``--epsilon-budget``."""
    from fedchain.sim.config import PrivacyRequest

    if dp is None:
        given = [name for name, value in (("--epsilon-budget", epsilon_budget), ("--noise-multiplier", noise_multiplier),
                                          ("--dp-sample-rate", dp_sample_rate), ("--dp-min-clients", dp_min_clients))
                 if value is not None]
        if given:
            raise click.UsageError(f"{', '.join(given)} only with --dp")
        return None
    if epsilon_budget is None:
        raise click.UsageError("--dp needs --epsilon-budget (the total epsilon each participant may spend)")
    return PrivacyRequest(dp, float(epsilon_budget), float(dp_delta), float(dp_clip), noise_multiplier, dp_sample_rate,
                          dp_accountant, dp_min_clients)


def secagg_options(f: F) -> F:
    """The options of a task's secure aggregation (``--secagg`` and its parameters)."""
    options = [
        click.option("--secagg", is_flag=True,
                     help="Secure aggregation: participants mask their updates (pairwise and self masks, Shamir-shared "
                          "seeds) so that the aggregator learns only their sum; dropouts are recovered from the shares, "
                          "and the auditor re-derives the sum from the public records. Needs FedAvg or FedProx without "
                          "robust rules (weights become uniform)."),
        click.option("--secagg-clip", type=float, default=5.0, show_default=True,
                     help="With --secagg: the L2 bound each participant clips its model delta to (also the range of the "
                          "fixed-point coding)."),
        click.option("--secagg-degree", type=int, default=None,
                     help="With --secagg: the even degree of the neighbour graph (SecAgg+) [default: complete up to 33 "
                          "participants, about 3 log2 n above]."),
        click.option("--secagg-max-summands", type=click.IntRange(1, 2**20), default=1024, show_default=True,
                     help="With --secagg: the most inputs the 2^32 ring sums without wrapping (sets the coding's step)."),
        click.option("--secagg-phase", "secagg_phase", type=click.IntRange(1), default=120, show_default=True,
                     help="With --secagg: seconds of the advertise phase and of the unmask phase."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def secagg_config(secagg: bool, clip: float, degree: int | None, max_summands: int, phase: int) -> SecAggConfig | None:
    """What :func:`secagg_options` ask for (None without ``--secagg``); ConfigError for a bad parameter."""
    from fedchain.protocol.secure import SecAggConfig

    if not secagg:
        return None
    return SecAggConfig(clip=float(clip), max_summands=max_summands, degree=degree, advertise_duration=phase,
                        unmask_duration=phase)


def signed_commit_options(f: F) -> F:
    """The options of a task's signed rounds (``--signed-commits``, ``--inbox``, ``--escape-duration``)."""
    options = [
        click.option("--signed-commits", is_flag=True,
                     help="Signed rounds: participants sign their commitments off chain (EIP-712) and send them to the "
                          "aggregator's inbox, which posts one Merkle root for the round; a participant left out commits "
                          "on chain within the escape window. Constant gas per round, whatever the number of "
                          "participants."),
        click.option("--inbox", "inbox", default=None, metavar="URL",
                     help="With --signed-commits: the aggregator's commitment inbox, http://host:port [simulate: a free "
                          "loopback port]."),
        click.option("--escape-duration", type=click.IntRange(1), default=60, show_default=True,
                     help="With --signed-commits: seconds after the set is posted in which a participant left out may "
                          "commit on chain."),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def signed_commits_config(signed: bool, inbox: str | None, escape_duration: int, *,
                          loopback_default: bool = False) -> SignedCommitsConfig | None:
    """What :func:`signed_commit_options` ask for (None without ``--signed-commits``); ConfigError for a bad value or
    a missing inbox (with ``loopback_default``: an inbox on a free loopback port)."""
    from fedchain.errors import ConfigError
    from fedchain.protocol.task import SignedCommitsConfig

    if not signed:
        if inbox is not None:
            raise ConfigError("--inbox is the inbox of signed rounds: it needs --signed-commits")
        return None
    if inbox is None:
        if not loopback_default:
            raise ConfigError("--signed-commits needs --inbox http://host:port (where the aggregator takes the signed "
                              "commitments)")
        import socket

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            inbox = f"http://127.0.0.1:{probe.getsockname()[1]}"
    return SignedCommitsConfig(inbox=inbox, escape_duration=int(escape_duration))


def role_options(f: F) -> F:
    """Connection options shared by the role commands (participant, round, aggregator, audit, admin)."""
    f = click.option("--chain-id", type=int, default=None, help="Expected chain id; refuse another chain.")(f)
    f = click.option("--address", type=ADDRESS_OR_DEFAULT, default=None,
                     help="Federation contract address [default: the recorded deployment].")(f)
    for opt in (store_option, ipfs_api_option, rpc_url_option, state_dir_option):
        f = opt(f)
    return f


def role_settings(state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
                  chain_id: int | None, keystore: Path | None = None) -> Settings:
    """The settings of a role command, from its :func:`role_options` (and ``--keystore``)."""
    return settings_from(state_dir=state_dir, rpc_url=rpc_url, ipfs_api=ipfs_api, store=store,
                         chain_id=chain_id, keystore=keystore)


def role_signer(settings: Settings) -> Signer:
    """The account a role command signs with (keystore + password, or FEDCHAIN_PRIVATE_KEY)."""
    from fedchain.chain.accounts import load_local_signer as load_signer

    return load_signer(settings.state_dir, settings.keystore, prompt=lambda what: click.prompt(what, hide_input=True, err=True))


def role_ledger(settings: Settings, address: str | None, signed: bool = True) -> ChainLedger:
    """The ledger a role command talks to, signing as :func:`role_signer` when ``signed``."""
    from fedchain.sim.wiring import connect_ledger

    return connect_ledger(settings, account=role_signer(settings) if signed else None, address=address)

"""``fedchain devnet``: start, stop and inspect the local devnet; deploy the Federation."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import click

from fedchain.cli.options import (
    ADDRESS,
    emit,
    json_option,
    keystore_option,
    rpc_url_option,
    settings_from,
    state_dir_option,
    toolchain_option,
)

if TYPE_CHECKING:
    from fedchain.chain.federation import Deployment
    from fedchain.ports import TxReport

@click.group()
def devnet() -> None:
    """Start, stop and inspect the local Ethereum devnet."""


@devnet.command()
@click.option("--engine", type=click.Choice(["anvil", "hardhat"]), default="anvil", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Port on 127.0.0.1 [default: a free one].")
@click.option("--timeout", "timeout_s", type=float, default=60.0, show_default=True, help="Seconds to wait for readiness.")
@click.option("--block-time", "block_time_s", type=click.FloatRange(0, 3600), default=None,
              help="Interval mining: no answer shows a head older than S seconds, so deadlines pass on a "
                   "quiet chain (anvil; blocks are mined only while clients ask; 0: off) "
                   "[default: the devnet_block_time_s setting, 1].")
@state_dir_option
@toolchain_option
@json_option
def start(
    engine: str, port: int | None, timeout_s: float, block_time_s: float | None, state_dir: Path | None,
    toolchain: Path | None, as_json: bool,
) -> None:
    """Start the devnet (idempotent: a running one is reused) on the port it used last when free.
    Anvil runs under a supervisor that writes the chain to <state-dir>/devnet/state.json.gz before
    any answer shows a mined transaction, and restarts anvil if it dies: a SIGKILL loses no mined
    transaction. This is a development chain: any local process can sign as any account on it."""
    from fedchain.services.devnet import start_devnet

    settings = settings_from(state_dir=state_dir, toolchain=toolchain, devnet_block_time_s=block_time_s)
    info, reused = start_devnet(
        settings.state_dir, engine=engine, port=port, timeout_s=timeout_s, toolchain=settings.toolchain,
        block_time_s=settings.devnet_block_time_s,
    )
    payload = {**info.to_json(), "reused": reused}
    verb = "already running" if reused else "started"
    mining = f", interval mining {info.block_time_s:g} s" if info.block_time_s > 0 else ""
    emit(as_json, payload,
         f"{info.engine} devnet {verb} at {info.url} (chain id {info.chain_id}, pid {info.pid}{mining})")


@devnet.command()
@click.option("--timeout", "timeout_s", type=float, default=30.0, show_default=True, help="Seconds to wait for exit.")
@state_dir_option
@json_option
def stop(timeout_s: float, state_dir: Path | None, as_json: bool) -> None:
    """Stop the devnet cleanly (SIGTERM; anvil dumps its state first)."""
    from fedchain.services.devnet import stop_devnet

    settings = settings_from(state_dir=state_dir)
    info = stop_devnet(settings.state_dir, timeout_s=timeout_s)
    payload = {"stopped": info is not None, "pid": info.pid if info else None, "url": info.url if info else None}
    emit(as_json, payload, f"stopped the {info.engine} devnet (pid {info.pid})" if info else "no devnet was running")


@devnet.command()
@state_dir_option
@json_option
def status(state_dir: Path | None, as_json: bool) -> None:
    """Is the devnet running, where, and at which block?"""
    from fedchain.services.devnet import devnet_status

    settings = settings_from(state_dir=state_dir)
    st = devnet_status(settings.state_dir)
    human = (
        f"{st.engine} devnet running at {st.url} (chain id {st.chain_id}, block {st.block_number}, pid {st.pid})"
        if st.running
        else "devnet not running"
    )
    if st.persistence is not None:
        p = st.persistence
        human += (f"\n  state {p.state_file}: {p.state_bytes} bytes, written through block {p.persisted_block} "
                  f"({p.dumps} writes, last {p.dump_ms_last:.1f} ms, max {p.dump_ms_max:.1f} ms); "
                  f"anvil pid {p.anvil_pid}, restarted {p.anvil_restarts} time(s)")
    emit(as_json, st, human)


def role_address(value: str, what: str, state_dir: Path) -> str:
    """A role's address from the command line: an address (checksummed), or the name of a keystore in
    ``state_dir`` (``fedchain account new --name NAME``); a usage error (exit 2) naming ``what`` otherwise."""
    from fedchain.chain.accounts import find_keystore, keystore_dir
    from fedchain.errors import KeystoreError

    if value.lower().startswith("0x"):
        return str(ADDRESS.convert(value, None, None))
    try:
        return str(find_keystore(state_dir, value).address)
    except KeystoreError:
        raise click.BadParameter(f"not an address nor a keystore name: {value!r} (no keystore of that name in "
                                 f"{keystore_dir(state_dir)})", param_hint=what) from None


@devnet.command()
@click.option("--admin", default=None, metavar="ADDRESS|NAME",
              help="Admin: an address or a keystore name [default: the deployer]; not with --governance.")
@click.option("--aggregator", default=None, metavar="ADDRESS|NAME",
              help="Aggregator: an address or a keystore name in <state-dir>/keystores [default: the deployer].")
@click.option("--governance", is_flag=True,
              help="Deploy the Governor, its timelock and the membership token with the Federation: the timelock "
                   "holds the admin role and the members vote (`fedchain gov`); the deployer keeps no admin power.")
@click.option("--founder", "founders", multiple=True, metavar="ADDRESS",
              help="A founding member (one membership token, one vote). Repeatable; with --governance.")
@click.option("--founders-from-keystores", "founder_keystores", multiple=True, metavar="NAMES",
              help="Founding members by keystore name or address in <state-dir>/keystores, comma-separated. "
                   "Repeatable; with --governance.")
@click.option("--voting-delay", type=click.IntRange(0), default=None, metavar="BLOCKS",
              help="Blocks between a proposal and the start of its vote [default: 1].")
@click.option("--voting-period", type=click.IntRange(1), default=None, metavar="BLOCKS",
              help="Blocks a vote stays open [default: 20].")
@click.option("--quorum", "quorum_percent", type=click.IntRange(1, 100), default=None, metavar="PCT",
              help="Percentage of the members' votes (for + abstain) a proposal needs [default: 50].")
@click.option("--timelock-delay", "timelock_delay_s", type=click.IntRange(0), default=None, metavar="SECONDS",
              help="Seconds between queueing and executing a proposal [default: 60].")
@click.option("--incentives", is_flag=True,
              help="Also deploy the reward token and the incentives contract (deposits, slashes by vote, reward "
                   "payouts by Merkle claim); with --governance the timelock holds the reward supply and is the "
                   "treasury.")
@click.option("--reward-supply", type=click.IntRange(1, 2**256 - 1), default=None, metavar="N",
              help="Reward tokens minted to the timelock (the admin without --governance) [default: 10**24]; "
                   "with --incentives.")
@rpc_url_option
@keystore_option
@state_dir_option
@json_option
def deploy(
    admin: str | None,
    aggregator: str | None,
    governance: bool,
    founders: tuple[str, ...],
    founder_keystores: tuple[str, ...],
    voting_delay: int | None,
    voting_period: int | None,
    quorum_percent: int | None,
    timelock_delay_s: int | None,
    incentives: bool,
    reward_supply: int | None,
    rpc_url: str | None,
    keystore: Path | None,
    state_dir: Path | None,
    as_json: bool,
) -> None:
    """Deploy the Federation contract, signed by the keystore (or FEDCHAIN_PRIVATE_KEY), and
    record it in <state-dir>/deployments/<chain-id>.json; with --governance, the governed stack."""
    from fedchain.chain.accounts import load_signer
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import deploy as deploy_federation
    from fedchain.services.devnet import devnet_url

    settings = settings_from(state_dir=state_dir, rpc_url=rpc_url, keystore=keystore)
    admin = None if admin is None else role_address(admin, "--admin", settings.state_dir)
    aggregator = None if aggregator is None else role_address(aggregator, "--aggregator", settings.state_dir)
    governance_given = {"--founder": bool(founders), "--founders-from-keystores": bool(founder_keystores),
                        "--voting-delay": voting_delay is not None, "--voting-period": voting_period is not None,
                        "--quorum": quorum_percent is not None, "--timelock-delay": timelock_delay_s is not None}
    if reward_supply is not None and not incentives:
        raise click.UsageError("--reward-supply only with --incentives")
    supply = REWARD_SUPPLY if reward_supply is None else reward_supply
    if not governance:
        stray = [name for name, given in governance_given.items() if given]
        if stray:
            raise click.UsageError(f"{', '.join(stray)} only with --governance")
    elif admin is not None:
        raise click.UsageError("--admin and --governance exclude each other: under governance the timelock is the admin")
    founder_addresses = _founders(settings.state_dir, founders, founder_keystores) if governance else []
    if governance and not founder_addresses:
        raise click.UsageError("--governance needs founding members: --founder ADDRESS or --founders-from-keystores NAMES")
    url = settings.rpc_url or devnet_url(settings.state_dir)
    conn = Connection(url, expected_chain_id=settings.chain_id, tx_timeout_s=settings.tx_timeout_s)
    signer = load_signer(settings.state_dir, settings.keystore, prompt=_prompt)
    if not governance:
        _, deployment, report = deploy_federation(
            conn, signer, admin or signer.address, aggregator or signer.address, state_dir=settings.state_dir
        )
        extra: list[TxReport] = []
        if incentives:
            from fedchain.chain.incentives import deploy_incentives

            _, deployment, extra = deploy_incentives(conn, signer, deployment, supply=supply,
                                                     state_dir=settings.state_dir)
        emit(
            as_json,
            {"deployment": deployment, "tx": report, "incentive_txs": extra},
            lambda: f"Federation deployed at {deployment.address} on chain {deployment.chain_id} "
            f"(block {deployment.block_number}, gas {report.gas_used})" + _incentives_line(deployment, supply),
        )
        return
    from fedchain.chain.governance import GovernanceParams, deploy_governed

    defaults = GovernanceParams()
    params = GovernanceParams(
        voting_delay=defaults.voting_delay if voting_delay is None else voting_delay,
        voting_period=defaults.voting_period if voting_period is None else voting_period,
        quorum_percent=defaults.quorum_percent if quorum_percent is None else quorum_percent,
        timelock_delay_s=defaults.timelock_delay_s if timelock_delay_s is None else timelock_delay_s,
    )
    click.echo(f"deploying the timelock, the Federation and the Governor ({len(founder_addresses)} founders) ...",
               err=True)
    if incentives:
        _, deployment, reports = deploy_governed(
            conn, signer, aggregator or signer.address, founder_addresses, params, state_dir=settings.state_dir,
            incentives=True, reward_supply=supply,
        )
    else:
        _, deployment, reports = deploy_governed(
            conn, signer, aggregator or signer.address, founder_addresses, params, state_dir=settings.state_dir
        )
    gas = sum(r.gas_used for r in reports)
    emit(
        as_json,
        {"deployment": deployment, "txs": reports, "founders": founder_addresses},
        lambda: "\n".join([
            f"governed Federation deployed at {deployment.address} on chain {deployment.chain_id} "
            f"(block {deployment.block_number}, {len(reports)} transactions, gas {gas})",
            f"  governor {deployment.governor}, timelock {deployment.timelock} (holds the admin role), "
            f"membership token {deployment.membership}",
            f"  {len(founder_addresses)} founding member(s): {', '.join(founder_addresses)}",
            f"  voting delay {params.voting_delay} block(s), voting period {params.voting_period} blocks, "
            f"quorum {params.quorum_percent}%, timelock delay {params.timelock_delay_s} s"
            + _incentives_line(deployment, supply),
        ]),
    )


REWARD_SUPPLY = 10**24  # reward tokens minted at deployment by default (10**6 tokens of 18 decimals)


def _incentives_line(deployment: Deployment, supply: int) -> str:
    """The line about the incentives contracts, empty when the deployment has none."""
    if deployment.incentives is None:
        return ""
    holder = deployment.timelock or deployment.admin
    return (f"\n  incentives {deployment.incentives}, reward token {deployment.reward_token} "
            f"({supply} minted to {holder}); deposits in native ETH, policy and budget unset")


def _founders(state_dir: Path, founders: tuple[str, ...], keystores: tuple[str, ...]) -> list[str]:
    """The founding members' checksummed addresses, in the order given, each once."""
    from fedchain.chain.accounts import find_keystore
    from fedchain.codec.abi import is_address, to_checksum_address

    found: list[str] = []
    for value in founders:
        if not is_address(value):
            raise click.BadParameter(f"not an address: {value!r}", param_hint="'--founder'")
        found.append(to_checksum_address(value))
    for names in keystores:
        for name in (n.strip() for n in names.split(",")):
            if name:
                found.append(to_checksum_address(find_keystore(state_dir, name).address))
    return list(dict.fromkeys(found))


def _prompt(what: str) -> str:
    value: str = click.prompt(what, hide_input=True, err=True)
    return value

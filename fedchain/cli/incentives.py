"""What the incentives commands share: the incentives contract as a command sees it, amounts in
words, and the check of the finding a slash cites.

A slash proposal (``fedchain gov propose slash``) must cite a finding blob that exists in the
store and names the slashed participant as responsible (the audit's own check,
:func:`fedchain.audit.incentives.check_slash_finding`): either an audit findings blob accusing it
or the evidence document of a round whose rejected updates include one of its."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from fedchain.audit.incentives import SlashFinding, check_slash_finding
from fedchain.config import Settings
from fedchain.errors import DeploymentNotFoundError, NoIncentivesError
from fedchain.types import Address

if TYPE_CHECKING:  # web3 is imported only when a command runs
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import Deployment
    from fedchain.chain.incentives import Incentives
    from fedchain.chain.ledger import ChainLedger
    from fedchain.chain.signer import Signer

__all__ = ["IncentivesSession", "SlashFinding", "check_slash_finding", "eth", "incentives_for", "open_incentives", "when"]


# --- the incentives contract as a command sees it -------------------------------------------


@dataclass(frozen=True)
class IncentivesSession:
    """The deployment's incentives contract as a command sees it: the connection, the record, the
    client (signing as ``account``) and a read-only ledger of its Federation."""

    conn: Connection
    deployment: Deployment
    incentives: Incentives
    ledger: ChainLedger
    account: Signer | None

    @property
    def sender(self) -> Address:
        """The signing account's address (UsageError-free: only for signed sessions)."""
        assert self.account is not None
        return Address(self.account.address)


def open_incentives(settings: Settings, *, signed: bool) -> IncentivesSession:
    """Connect to the incentives contract of the deployment recorded under the state directory;
    NoIncentivesError when the deployment has none (it was deployed without ``--incentives``)."""
    from fedchain.chain.connection import Connection
    from fedchain.chain.federation import FederationContract, load_deployment
    from fedchain.chain.incentives import Incentives
    from fedchain.chain.ledger import ChainLedger
    from fedchain.cli.options import role_signer
    from fedchain.sim.wiring import rpc_url_of

    conn = Connection(rpc_url_of(settings), expected_chain_id=settings.chain_id, timeout_s=settings.http_timeout_s,
                      tx_timeout_s=settings.tx_timeout_s)
    deployment = load_deployment(settings.state_dir, conn)
    if deployment.incentives is None:
        raise NoIncentivesError(f"the Federation at {deployment.address} on chain {deployment.chain_id} has no "
                              "incentives contract (deploy with `fedchain devnet deploy --governance --incentives`)")
    account = role_signer(settings) if signed else None
    client = Incentives(conn, deployment, account)
    ledger = ChainLedger(FederationContract.from_deployment(conn, deployment, None))
    return IncentivesSession(conn, deployment, client, ledger, account)


def eth(wei: int) -> str:
    """An amount of wei as ``0.5 ETH`` (exact: no float)."""
    whole, frac = divmod(int(wei), 10**18)
    text = f"{whole}.{frac:018d}".rstrip("0").rstrip(".")
    return f"{text} ETH"


def when(available_at: int, now: int) -> str:
    """``chain time T (in N s)`` or ``chain time T (now)``."""
    return f"chain time {available_at}" + (f" (in {available_at - now} s; now {now})" if available_at > now else "")


def incentives_for(ledger: ChainLedger, settings: Settings, address: str | None,
                   account: Signer | None) -> Incentives | None:
    """The recorded deployment's incentives client on ``ledger``'s connection, signing as
    ``account``; None when the deployment has none, or the command names another Federation
    (``--address``)."""
    from fedchain.chain.federation import read_deployment
    from fedchain.chain.incentives import Incentives

    conn = ledger.contract.conn
    try:
        deployment = read_deployment(settings.state_dir, conn.chain_id)
    except DeploymentNotFoundError:
        if address:  # a Federation named by its address, without a record here: no incentives known
            return None
        raise
    if deployment.incentives is None or (address and address.lower() != deployment.address.lower()):
        return None
    return Incentives(conn, deployment, account)

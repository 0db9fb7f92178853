"""A small Python API for notebooks: open a federation by RPC URL and contract address, list its
rounds, load a global model verified against the chain, and audit it.

Example::

    from fedchain.api import Federation

    with Federation.connect("http://127.0.0.1:8545", address="0x...", store="ipfs",
                            ipfs_api="http://127.0.0.1:5001") as fed:
        for r in fed.rounds():
            print(r.round_id, r.status.name, r.included_count)
        net = fed.torch_model()          # the current model, built from the task's model spec
        print(fed.evaluate("site-a.npz"))  # accuracy, loss, n
        print(fed.audit().verdict)

Every model is read the way ``fedchain model`` reads it (:func:`fedchain.protocol.export.load_verified_model`):
digest and CID from the chain, the blob from the store, refused (IntegrityError) unless its sha256
is the digest on chain. Settings not given fall back to ``FEDCHAIN_*`` variables, ``fedchain.toml``
and the defaults, as for the CLI.
"""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING

from fedchain.config import Settings, load_settings
from fedchain.ports import BlobStore, RoundRecord
from fedchain.protocol.export import (
    ExportedModel,
    VerifiedModel,
    build_module,
    evaluate_model,
    export_model,
    load_verified_model,
)
from fedchain.protocol.task import TaskDocument, load_task_document
from fedchain.types import RoundId

if TYPE_CHECKING:
    from torch import nn

    from fedchain.audit.findings import AuditReport
    from fedchain.chain.ledger import ChainLedger

__all__ = ["Federation"]


class Federation:
    """A federation contract and its blob store, opened for reading (nothing here signs a transaction)."""

    def __init__(self, ledger: ChainLedger, store: BlobStore, settings: Settings) -> None:
        self.ledger = ledger
        self.store = store
        self.settings = settings

    @classmethod
    def connect(cls, rpc_url: str | None = None, address: str | None = None, *, state_dir: str | Path | None = None,
                store: str | None = None, ipfs_api: str | None = None, chain_id: int | None = None) -> Federation:
        """Open the Federation contract at ``address`` (default: the deployment recorded under the state
        dir) on ``rpc_url`` (default: the managed devnet), with the blob store ``store`` ("ipfs": the node
        at ``ipfs_api`` or the managed one; "local": ``<state_dir>/blobs``).

        Raises RpcUnavailableError, ChainIdMismatchError, DeploymentNotFoundError (no Federation at
        ``address``) or StorageUnavailableError (no IPFS node)."""
        from fedchain.sim.wiring import connect_ledger, open_blob_store

        settings = load_settings(state_dir=Path(state_dir) if state_dir is not None else None, rpc_url=rpc_url,
                                 store=store, ipfs_api=ipfs_api, chain_id=chain_id)
        ledger = connect_ledger(settings, address=address)
        return cls(ledger, open_blob_store(settings), settings)

    # --- the chain's records ----------------------------------------------------------------
    @property
    def address(self) -> str:
        """The Federation contract's address."""
        return str(self.ledger.contract.address)

    @property
    def chain_id(self) -> int:
        """The chain id of the node."""
        return int(self.ledger.conn.chain_id)

    def rounds(self) -> list[RoundRecord]:
        """Every round opened so far, oldest first."""
        return [self.ledger.round(RoundId(rid)) for rid in range(1, int(self.ledger.latest_round_id()) + 1)]

    def round(self, round_id: int) -> RoundRecord:
        """One round; ChainError for a round that does not exist."""
        return self.ledger.round(RoundId(int(round_id)))

    def task(self, version: int | None = None) -> TaskDocument:
        """The task document of ``version`` (default: the current task), verified against the chain."""
        return load_task_document(self.ledger, self.store, version)[1]

    # --- models -----------------------------------------------------------------------------
    def model(self, round_id: int | None = None) -> VerifiedModel:
        """The global model of a finalised round (None: the current model; 0: the initial model), its
        blob checked against the digest on chain; ``.model`` is the decoded GlobalModel, ``.weights``
        its tensors by state-dict name. ModelNotAvailableError for a round not finalised or disputed."""
        return load_verified_model(self.ledger, self.store, round_id)

    def torch_model(self, round_id: int | None = None) -> nn.Module:
        """The verified model of ``round_id`` as a torch module built from the task's model spec (in eval mode)."""
        return build_module(self.model(round_id))

    def export(self, path: str | Path, round_id: int | None = None) -> ExportedModel:
        """Write the verified model to ``path`` (``.safetensors`` or ``.pt``), as ``fedchain model export``."""
        return export_model(self.model(round_id), Path(path), chain_id=self.chain_id, contract=self.address)

    def evaluate(self, data: str | Path, round_id: int | None = None) -> dict[str, float]:
        """Accuracy, loss and sample count ``n`` (AUC for two classes) of the verified model on a participant
        data file prepared for the task's schema (DataSchemaError otherwise)."""
        from fedchain.fl.schema import load_client_data

        verified = self.model(round_id)
        x, y = load_client_data(Path(data), verified.task.schema())
        return evaluate_model(verified, x, y)

    # --- audit ------------------------------------------------------------------------------
    def audit(self, round_id: int | None = None, *, fetch_deadline_s: float = 120.0) -> AuditReport:
        """Replay every round (or only ``round_id``) from the chain and the store, as ``fedchain audit``:
        the report's ``verdict``, ``findings`` and ``to_json()``. Admin actions are checked against
        governance when the state dir records this contract's deployment."""
        from fedchain.audit.replay import Auditor
        from fedchain.chain.federation import read_deployment
        from fedchain.errors import DeploymentNotFoundError
        from fedchain.sim.wiring import gas_lookup, governance_records

        try:
            deployment = read_deployment(self.settings.state_dir, self.chain_id)
        except DeploymentNotFoundError:
            deployment = None
        records = None
        if deployment is not None and deployment.address.lower() == self.address.lower():
            records = governance_records(self.ledger.conn, deployment)
        auditor = Auditor(self.ledger, self.store, gas_of=gas_lookup(self.ledger), contract=self.address,
                          chain_id=self.chain_id, fetch_deadline_s=fetch_deadline_s, governance=records)
        return auditor.audit(round_id)

    # --- lifetime ---------------------------------------------------------------------------
    def close(self) -> None:
        """Release the store's connections."""
        self.store.close()

    def __enter__(self) -> Federation:
        """The federation itself; closed on exit."""
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Close the federation."""
        self.close()

"""A small federation on the session devnet and IPFS node, shared by the federation and
audit tests: a breast_cancer task, three admitted participants with their data files, and
in-process participant and aggregator agents (real chain, real IPFS, real training)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

from fedchain.chain.ledger import ChainLedger
from fedchain.engine.ledger import LedgerTransport
from fedchain.engine.loop import finish_round, run_round
from fedchain.engine.reports import RoundReport
from fedchain.fl.attacks import AttackSpec
from fedchain.protocol.participant import ParticipantAgent
from fedchain.protocol.task import TaskDocument, publish_task
from fedchain.sim.config import (
    ClientData,
    ExperimentConfig,
    build_task,
    load_task_dataset,
    parse_robust,
    write_partitions,
)
from fedchain.sim.federation import public_key, secagg_key
from fedchain.types import RoundId

N_CLIENTS = 3
torch.set_num_threads(1)


class Aggregator:
    """The aggregator role in tests: the ledger transport driven by the round engine, one step
    at a time (open, then finish) or a whole round with in-process participants submitting."""

    def __init__(self, transport: LedgerTransport) -> None:
        self.transport = transport
        self.ledger = transport.ledger

    @property
    def dishonest(self) -> str | None:
        return self.transport.dishonest

    @dishonest.setter
    def dishonest(self, mode: str | None) -> None:
        self.transport.dishonest = mode

    def open_round(self) -> RoundId:
        return self.transport.open_round().round_id

    def commit_phase_over(self, round_id: RoundId) -> bool:
        return self.transport.commit_phase_over(round_id)

    def finalize(self, round_id: RoundId, *, commit_timeout_s: float | None = 600.0) -> RoundReport:
        return finish_round(self.transport, self.transport.attach(round_id), commit_timeout_s=commit_timeout_s)


@dataclass
class TaskFiles:
    cfg: ExperimentConfig
    doc: TaskDocument
    clients: list[ClientData]
    dataset: Any


@dataclass
class Fed:
    env: Any  # tests.fixtures_devnet.DevnetEnv
    store: Any
    doc: TaskDocument
    task_cid: str
    clients: list[ClientData]
    participants: list[ParticipantAgent]
    aggregator: Aggregator
    admin: ChainLedger
    reader: ChainLedger
    work: Path
    outcomes: list[RoundReport] = field(default_factory=list)

    def run_round(self, *, skip: tuple[int, ...] = ()) -> RoundReport:
        """One round through the engine; the participants not in ``skip`` submit once it is open."""
        transport = self.aggregator.transport

        def submit_all(rid: RoundId) -> None:
            for i, p in enumerate(self.participants):
                if i not in skip:
                    p.submit(rid)

        transport.on_open = submit_all
        try:
            out = run_round(transport, commit_timeout_s=600.0)
        finally:
            transport.on_open = None
        self.outcomes.append(out)
        return out

    def open_round(self) -> RoundId:
        return self.aggregator.open_round()

    def auditor(self) -> Any:
        from fedchain.audit.replay import Auditor

        return Auditor(self.reader, self.store, contract=self.env.deployment.address, chain_id=self.env.conn.chain_id)


def make_task_files(tmp: Path, **overrides: Any) -> TaskFiles:
    params: dict[str, Any] = dict(dataset="breast_cancer", clients=N_CLIENTS, rounds=3, min_updates=2, commit_duration=600)
    params.update(overrides)
    if isinstance(params.get("robust"), str):
        params["robust"] = parse_robust(params["robust"])
    cfg = ExperimentConfig(**params)
    ds = load_task_dataset(cfg)
    return TaskFiles(cfg, build_task(cfg, ds), write_partitions(cfg, ds, tmp / "data"), ds)


def make_fed(env: Any, store: Any, files: TaskFiles, work: Path, *, dishonest: str | None = None,
             attacks: dict[int, AttackSpec] | None = None) -> Fed:
    admin = env.ledger(env.accounts.admin)
    cid, _ = publish_task(admin, store, files.doc)
    participants = []
    for i, client in enumerate(files.clients):
        acct = env.accounts.participants[i]
        ledger = env.ledger(acct)
        ledger.register(client.name, "healthcare", public_key(acct), client.num_samples)
        admin.admit(acct.address)
        agent = ParticipantAgent(ledger, store, client.path, work / f"p{i}", attack=(attacks or {}).get(i),
                                 secagg_key=secagg_key(acct))
        if files.doc.spec().arch == "custom":  # the consortium's participants reviewed the model file and trust it
            agent.trusted_models = frozenset({files.doc.spec().source_digest})
        participants.append(agent)
    aggregator = Aggregator(LedgerTransport(env.ledger(env.accounts.aggregator), store, dishonest=dishonest))
    return Fed(env, store, files.doc, cid, files.clients, participants, aggregator, admin,
               env.ledger(env.accounts.outsider), work)


@pytest.fixture(scope="session")
def task_files(tmp_path_factory: pytest.TempPathFactory) -> TaskFiles:
    return make_task_files(tmp_path_factory.mktemp("task"))


@pytest.fixture()
def fed(chain_env: Any, ipfs_store: Any, task_files: TaskFiles, tmp_path: Path) -> Fed:
    return make_fed(chain_env, ipfs_store, task_files, tmp_path)

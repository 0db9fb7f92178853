"""A whole federation end to end: services, accounts, deployment, task, participants as
separate OS processes, the round engine over the ledger transport, then the audit.

The orchestrator only sets things up and watches: participants run ``fedchain participant run``
in their own processes and speak to the aggregator solely through the chain and the blob store.
Each step is its own function; :func:`run_federation` strings them together and returns one
typed :class:`FederationReport`.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fedchain.audit.findings import AuditReport
from fedchain.audit.html import plot_evaluation, write_html
from fedchain.audit.replay import Auditor
from fedchain.chain.accounts import PASSWORD_ENV, create_keystore, decrypt_keystore
from fedchain.chain.connection import Connection
from fedchain.chain.federation import Deployment, FederationContract, GovernanceParams, deploy
from fedchain.chain.governance import (
    ProposalCall,
    admit_call,
    configure_private_task_call,
    configure_task_call,
    deploy_governed,
    dispute_call,
    grant_aggregator_call,
    revoke_aggregator_call,
    set_verification_call,
)
from fedchain.chain.incentives import Incentives, fund_pool_call, set_budget_call, set_deposit_policy_call, slash_call
from fedchain.chain.ledger import ChainLedger
from fedchain.chain.signer import Signer
from fedchain.codec.canonical import sha256_digest
from fedchain.config import Settings, private_dir
from fedchain.engine.ledger import LedgerTransport
from fedchain.engine.loop import OutagePolicy, run_rounds
from fedchain.engine.reports import RoundReport, RunReport, Traffic
from fedchain.errors import ConfigError, ExitCode, ServiceError
from fedchain.fl.records import StrategyConfig
from fedchain.ports import BlobStore, TxReport
from fedchain.protocol.participant import READY_FILE
from fedchain.protocol.task import RewardsConfig, TaskDocument, check_private_model, publish_task
from fedchain.secagg.keys import account_public_key, account_secagg_key
from fedchain.services.devnet import DevnetProcess, start_devnet, stop_devnet
from fedchain.services.ipfs import start_node, stop_node
from fedchain.sim.config import ClientData, ExperimentConfig, build_task, load_task_dataset, write_partitions
from fedchain.sim.governance import Consortium, DisputedRound, GovernanceSummary
from fedchain.sim.memory import backdoor_target, test_set_evaluator
from fedchain.sim.plots import Progress
from fedchain.sim.wiring import follow_services, gas_lookup, governance_records, open_blob_store
from fedchain.types import Address, Cid, RoundId, Wei

log = logging.getLogger(__name__)

FUND_WEI = Wei(10**18)  # 1 ETH: gas for thousands of transactions; a devnet dev account funds 10,000 participants
KEYSTORE_ITERATIONS = 2**12  # simulation accounts only: fast to decrypt in every process


# --- the report ------------------------------------------------------------------------------


@dataclass(frozen=True)
class GasSummary:
    """Gas used per contract function over the run."""

    by_function: Mapping[str, tuple[int, ...]]

    def to_json(self) -> dict[str, dict[str, int]]:
        """Count, total, mean and max per function."""
        return {k: {"count": len(v), "total": sum(v), "mean": round(sum(v) / len(v)), "max": max(v)}
                for k, v in sorted(self.by_function.items()) if v}


@dataclass(frozen=True)
class ParticipantSummary:
    """One participant of the run."""

    name: str
    address: Address
    samples: int
    attack: str | None
    exit_code: int | None

    def to_json(self) -> dict[str, Any]:
        """One JSON object."""
        return {"name": self.name, "address": self.address, "samples": self.samples, "attack": self.attack,
                "exit_code": self.exit_code}


@dataclass(frozen=True)
class PrivacyParticipant:
    """One participant's privacy spending, as the chain records it."""

    name: str
    participant: Address
    epsilon: float  # the cumulative epsilon its last commitment claimed (the chain's fixed point, in epsilon)
    stopped: str | None  # why it stopped early (the next round would have exceeded the budget), if it did

    def to_json(self) -> dict[str, Any]:
        """One JSON object."""
        return {"name": self.name, "address": self.participant, "epsilon_spent": self.epsilon, "stopped": self.stopped}


@dataclass(frozen=True)
class PrivacySummary:
    """The run's privacy policy and what each participant spent of its budget."""

    mechanism: str
    epsilon_budget: float
    delta: float
    noise_multiplier: float
    clip: float
    sample_rate: float
    accountant: str
    min_clients: int
    participants: tuple[PrivacyParticipant, ...]

    def to_json(self) -> dict[str, Any]:
        """The ``privacy`` object of ``simulate --json``."""
        return {
            "mechanism": self.mechanism, "epsilon_budget": self.epsilon_budget, "delta": self.delta,
            "noise_multiplier": self.noise_multiplier, "clip": self.clip, "sample_rate": self.sample_rate,
            "accountant": self.accountant, "min_clients": self.min_clients,
            "participants": [p.to_json() for p in self.participants],
        }


def privacy_summary(doc: TaskDocument, ledger: ChainLedger, accounts: Sequence[tuple[str, Address]],
                    exit_codes: Sequence[int | None]) -> PrivacySummary | None:
    """Each participant's epsilon spent, from the chain (None without a privacy policy)."""
    from fedchain.fl.privacy import EPSILON_SCALE

    policy = doc.privacy
    if policy is None:
        return None
    people = tuple(
        PrivacyParticipant(name, address, ledger.epsilon_spent(address) / EPSILON_SCALE,
                           "the next round would exceed its privacy budget" if code == ExitCode.PRIVACY_BUDGET else None)
        for (name, address), code in zip(accounts, exit_codes, strict=True)
    )
    return PrivacySummary(policy.mechanism, policy.epsilon_budget, policy.delta, policy.noise_multiplier, policy.clip,
                          policy.sample_rate, policy.accountant, policy.min_clients, people)


@dataclass(frozen=True)
class FederationReport:
    """A whole federation run: the round engine's report, the deployment, costs, and the audit."""

    config: ExperimentConfig
    run: RunReport
    contract: Address
    chain_id: int
    rpc_url: str
    store: str
    task_cid: Cid
    task_bytes: int
    gas: GasSummary
    participants: tuple[ParticipantSummary, ...]
    timing: Mapping[str, float]
    wall_time_s: float
    audit: AuditReport
    out_dir: Path
    governance: GovernanceSummary | None = None
    privacy: PrivacySummary | None = None
    devnet: str = "given"  # the chain: given, managed or ephemeral (Services.devnet)

    @property
    def rounds(self) -> tuple[RoundReport, ...]:
        """The round reports."""
        return self.run.rounds

    @property
    def final_accuracy(self) -> float | None:
        """Accuracy of the last evaluated global model."""
        return self.run.final_accuracy

    def to_json(self) -> dict[str, Any]:
        """One JSON document (``report.json``)."""
        gas_by_round = {r.round: dict(r.gas) for r in self.audit.rounds}
        return {
            "config": self.config.to_json(),
            "contract": self.contract,
            "chain_id": self.chain_id,
            "rpc_url": self.rpc_url,
            "devnet": self.devnet,
            "store": self.store,
            "task_cid": self.task_cid,
            "rounds": [{**r.to_json(), "gas": gas_by_round.get(int(r.round_id), {})} for r in self.run.rounds],
            "final_accuracy": self.final_accuracy,
            "gas": self.gas.to_json(),
            "bytes": {**self.run.traffic.to_json(), "task_document": self.task_bytes},
            "participants": [p.to_json() for p in self.participants],
            "wall_time_s": round(self.wall_time_s, 3),
            "timing": {k: round(v, 3) for k, v in self.timing.items()},
            "audit": {"ok": self.audit.ok, "findings": [f.to_json() for f in self.audit.findings],
                      "rounds_checked": list(self.audit.rounds_checked), "wall_time_s": round(self.audit.wall_time_s, 3)},
            "out_dir": str(self.out_dir),
            "governance": self.governance.to_json() if self.governance is not None else None,
            "rewards": self.rewards_json(),
            "privacy": self.privacy.to_json() if self.privacy is not None else None,
            "secagg": self.secagg_json(),
        }

    def secagg_json(self) -> dict[str, Any] | None:
        """The ``secagg`` object: the task's secure-aggregation parameters and, per round, how many participants'
        inputs were unmasked (survivors), how many advertised but dropped out, and the unmasking's findings."""
        if self.config.secagg is None:
            return None
        rounds = [{"round": int(r.round_id), "finalized": r.finalized,
                   **{k.removeprefix("secagg_"): r.metrics.get(k) for k in
                      ("secagg_survivors", "secagg_dropped", "secagg_revealers", "secagg_findings")},
                   "close_reason": r.close_reason} for r in self.run.rounds]
        return {**self.config.secagg.to_json(), "dropout": self.config.dropout, "rounds": rounds}

    def rewards_json(self) -> dict[str, Any] | None:
        """The ``rewards`` object: per participant its scores, the amounts owed and claimed, its deposit history."""
        inc = self.audit.incentives
        if inc is None or self.config.rewards is None:
            return None
        by_address = {p.participant.lower(): p for p in inc.participants}
        lines = []
        for s in self.participants:
            p = by_address.get(s.address.lower())
            rounds = list(p.rounds) if p is not None else []
            lines.append({
                "name": s.name, "address": s.address, "attack": s.attack,
                "scores": {str(r["round"]): r["score"] for r in rounds},
                "amount": str(p.total_amount) if p is not None else "0",
                "claimed": str(p.total_claimed) if p is not None else "0",
                "claimed_every_round": all(bool(r["claimed"]) for r in rounds if int(r["amount"]) > 0),
                "deposit_history": list(p.deposit_history) if p is not None else [],
            })
        return {"rule": self.config.rewards, "budget_per_round": str(self.config.reward_budget),
                "rounds": [r.to_json() for r in inc.rounds], "slashes": [x.to_json() for x in inc.slashes],
                "participants": lines}


# --- services --------------------------------------------------------------------------------


@dataclass
class Services:
    """The RPC and IPFS endpoints of a run, and which of them the run started itself
    (``ephemeral``: a devnet that lives only as long as the run)."""

    rpc_url: str
    ipfs_api: str | None
    started_devnet: bool = False
    started_ipfs: bool = False
    ephemeral: DevnetProcess | None = None
    devnet: str = "given"
    """Which chain the run uses: ``given`` (the settings' RPC URL), ``managed`` (the state
    directory's devnet, which persists its chain) or ``ephemeral`` (a fresh chain of the run's own)."""


def start_services(settings: Settings, *, ephemeral_devnet: bool = False) -> Services:
    """Use the configured endpoints, or start a devnet (and an IPFS node for the IPFS store).

    Without an RPC URL: the state directory's managed devnet (started, or reused when it runs),
    which persists its chain and can be resumed after the run; with ``ephemeral_devnet``, a fresh
    chain of the run's own instead, on a free port with interval mining, never written to disk
    and gone when :func:`stop_services` runs (a throwaway simulation pays nothing for
    persistence)."""
    ephemeral: DevnetProcess | None = None
    kind = "given"
    if settings.rpc_url:
        rpc, started_devnet = settings.rpc_url, False
    elif not ephemeral_devnet:
        info, reused = start_devnet(settings.state_dir, block_time_s=settings.devnet_block_time_s)
        rpc, started_devnet, kind = info.url, not reused, "managed"
    else:
        ephemeral = DevnetProcess("anvil", block_time_s=settings.devnet_block_time_s,
                                  log_file=private_dir(Path(settings.state_dir)) / "ephemeral-devnet.log").start()
        rpc, started_devnet, kind = ephemeral.url, False, "ephemeral"
    base = Services(rpc, None, started_devnet, False, ephemeral, kind)
    if settings.store != "ipfs":
        return base
    if settings.ipfs_api:
        return replace(base, ipfs_api=settings.ipfs_api)
    try:
        node, started_ipfs = start_node(settings.state_dir)
    except BaseException:
        stop_services(settings, base)
        raise
    return replace(base, ipfs_api=node.api_url, started_ipfs=started_ipfs)


def stop_services(settings: Settings, services: Services) -> None:
    """Stop what :func:`start_services` started."""
    if services.started_ipfs:
        stop_node(settings.state_dir)
    if services.started_devnet:
        stop_devnet(settings.state_dir)
    if services.ephemeral is not None:
        services.ephemeral.stop()


# --- accounts, deployment, task, registration --------------------------------------------------


@dataclass
class GasLog:
    """Gas of every transaction, by contract function."""

    by_function: dict[str, list[int]] = field(default_factory=dict)

    def record(self, report: TxReport) -> None:
        """Count one transaction."""
        self.add(report.function, int(report.gas_used))

    def add(self, function: str, gas: int) -> None:
        """Count ``gas`` for ``function``."""
        self.by_function.setdefault(function, []).append(gas)

    def summary(self) -> GasSummary:
        """The frozen summary."""
        return GasSummary({k: tuple(v) for k, v in self.by_function.items()})


@dataclass
class Federation:
    """A deployed federation with its task published and its participants admitted."""

    conn: Connection
    contract: FederationContract
    deployment: Deployment
    store: BlobStore
    password: str
    keystores: dict[str, Path]
    accounts: dict[str, Signer]
    task_cid: Cid

    def ledger(self, name: str) -> ChainLedger:
        """A ledger signing as account ``name`` (admin, aggregator, participant-<i>)."""
        return ChainLedger(self.contract.with_account(self.accounts[name]))

    def incentives(self, name: str) -> Incentives | None:
        """The incentives contract signing as account ``name`` (None: deployed without incentives)."""
        if self.deployment.incentives is None:
            return None
        return Incentives(self.conn, self.deployment, self.accounts[name])


def participant_names(clients: int) -> list[str]:
    """The account names of a run's participants."""
    return [f"participant-{i}" for i in range(clients)]


public_key = account_public_key
"""The public half of an account's long-term X25519 key (:func:`fedchain.secagg.keys.account_public_key`)."""
secagg_key = account_secagg_key
"""An account's long-term X25519 private key (:func:`fedchain.secagg.keys.account_secagg_key`)."""


def provision(settings: Settings, services: Services, doc: TaskDocument, clients: Sequence[ClientData], industry: str,
              run_dir: Path, gas: GasLog, store: BlobStore, on_step: Callable[[], None]) -> Federation:
    """Create and fund the accounts, deploy, publish the task, register and admit every participant."""
    conn = Connection(services.rpc_url, timeout_s=settings.http_timeout_s, tx_timeout_s=settings.tx_timeout_s)
    password = os.environ.get(PASSWORD_ENV) or secrets.token_hex(16)  # given: the run's keystores open later
    keystores: dict[str, Path] = {}
    accounts: dict[str, Signer] = {}
    for name in ["admin", "aggregator", *participant_names(len(clients))]:
        entry = create_keystore(run_dir, password, name=name, iterations=KEYSTORE_ITERATIONS)
        keystores[name], accounts[name] = entry.path, decrypt_keystore(entry.path, password)
        conn.fund_from_dev_account(entry.address, FUND_WEI)
    on_step()
    admin_acct = accounts["admin"]
    contract, deployment, deploy_report = deploy(
        conn, admin_acct, admin_acct.address, accounts["aggregator"].address, state_dir=settings.state_dir
    )
    gas.add("deploy", deploy_report.gas_used)
    on_step()
    fed = Federation(conn, contract, deployment, store, password, keystores, accounts, Cid(""))
    admin = fed.ledger("admin")
    fed.task_cid, task_report = publish_task(admin, store, doc)
    gas.record(task_report)
    on_step()
    for name, client in zip(participant_names(len(clients)), clients, strict=True):
        gas.record(fed.ledger(name).register(client.name, industry, public_key(accounts[name]), client.num_samples))
        gas.record(admin.admit(Address(accounts[name].address)))
        on_step()
    return fed


def sim_governance(clients: int) -> GovernanceParams:
    """The Governor's settings in a governed simulation of ``clients`` participants (the devnet is
    moved on past them): each vote is mined in a block of its own, so the voting period outlasts
    one vote per member."""
    return GovernanceParams(voting_delay=1, voting_period=2 * clients + 5, quorum_percent=50, timelock_delay_s=60)


BACKUP_AGGREGATOR = "aggregator-backup"
"""The account the consortium hands the aggregator role to when it disputes a round."""


def newcomer_index(cfg: ExperimentConfig) -> int:
    """The participant a governed simulation votes in during the run: the last honest one."""
    attackers = cfg.attack_of()
    return max(i for i in range(cfg.clients) if i not in attackers) if len(attackers) < cfg.clients else cfg.clients - 1


DEPOSIT_WEI = 10**17
"""A governed simulation's deposit (0.1 ETH of the devnet's)."""


def with_rewards(cfg: ExperimentConfig, doc: TaskDocument, ds: Any, store: BlobStore) -> TaskDocument:
    """The task document with the run's rewards rule, scoring on the dataset's held-out split (stored
    as the consortium's validation set, its digest and CID in the document)."""
    if cfg.rewards is None:
        return doc
    buf = io.BytesIO()
    np.savez(buf, x=np.asarray(ds.x_test), y=np.asarray(ds.y_test))
    data = buf.getvalue()
    cid = store.put(data)
    return replace(doc, rewards=RewardsConfig(cfg.rewards, {}, sha256_digest(data), cid, cfg.reward_budget))


def provision_governed(settings: Settings, services: Services, doc: TaskDocument, clients: Sequence[ClientData],
                       industry: str, run_dir: Path, gas: GasLog, store: BlobStore, on_step: Callable[[], None],
                       cfg: ExperimentConfig) -> tuple[Federation, Consortium]:
    """Create and fund the accounts, deploy a governed federation whose founding members are the
    participants but the last (the deployer keeps no role), register every participant, and pass
    the genesis proposal: the task, the founders' admission and the verification policy."""
    conn = Connection(services.rpc_url, timeout_s=settings.http_timeout_s, tx_timeout_s=settings.tx_timeout_s)
    password = os.environ.get(PASSWORD_ENV) or secrets.token_hex(16)  # given: the run's keystores open later
    keystores: dict[str, Path] = {}
    accounts: dict[str, Signer] = {}
    names = participant_names(len(clients))
    for name in ["admin", "aggregator", BACKUP_AGGREGATOR, *names]:
        entry = create_keystore(run_dir, password, name=name, iterations=KEYSTORE_ITERATIONS)
        keystores[name], accounts[name] = entry.path, decrypt_keystore(entry.path, password)
        conn.fund_from_dev_account(entry.address, FUND_WEI)
    on_step()
    newcomer = newcomer_index(cfg)
    founders = [n for i, n in enumerate(names) if i != newcomer]
    rewarded = doc.rewards is not None
    contract, deployment, reports = deploy_governed(
        conn, accounts["admin"], accounts["aggregator"].address, [accounts[n].address for n in founders],
        sim_governance(len(clients)), state_dir=settings.state_dir, incentives=rewarded,
        reward_supply=cfg.reward_budget * (cfg.rounds + 1) if rewarded else 0,
    )
    for name, report in zip(("deploy timelock", "deploy", "deploy governor", "deploy reward token", "deploy incentives"),
                            reports, strict=False):
        gas.add(name, report.gas_used)
    on_step()
    task_cid = store.put(doc.to_bytes())
    fed = Federation(conn, contract, deployment, store, password, keystores, accounts, task_cid)
    for name, client in zip(names, clients, strict=True):
        gas.record(fed.ledger(name).register(client.name, industry, public_key(accounts[name]), client.num_samples))
    consortium = Consortium(conn, deployment, {n: accounts[n] for n in founders})
    money: list[ProposalCall] = []
    if rewarded:
        assert deployment.incentives is not None and deployment.reward_token is not None
        money = [set_deposit_policy_call(deployment.incentives, DEPOSIT_WEI, 60, deployment.timelock or ""),
                 set_budget_call(deployment.incentives, cfg.reward_budget),
                 fund_pool_call(deployment.reward_token, deployment.incentives, cfg.reward_budget * cfg.rounds)]
    consortium.pass_proposal(
        [
            task_call(contract, doc, task_cid),
            *(admit_call(contract, accounts[n].address) for n in founders),
            set_verification_call(contract, cfg.verification_quorum),
            *money,
        ],
        f"genesis: task {doc.strategy_config().name} on {doc.dataset}, admit the {len(founders)} founding participants, "
        f"attestation quorum {cfg.verification_quorum}%"
        + (f", deposits of {DEPOSIT_WEI} wei, {cfg.reward_budget} reward units per round "
           f"({doc.rewards.rule if doc.rewards else ''})" if rewarded else ""),
        after_round=0,
    )
    if rewarded:
        for name in names:  # every registered participant locks its deposit (the newcomer too, before its vote)
            gas.record(Incentives(conn, deployment, accounts[name]).deposit())
    on_step()
    return fed, consortium


# --- participant processes ---------------------------------------------------------------------


def participant_command(
    *, keystore: Path, data: Path, rpc_url: str | None, address: str, settings: Settings, ipfs_api: str | None,
    until_round: int, work_dir: Path, attack: str | None = None, wait_round_end: bool = False,
    dropout: float = 0.0, dropout_seed: int = 0, trust_models: Sequence[str] = (),
) -> list[str]:
    """The command line of one participant process. A URL left None is read from the state
    dir's service records, and read again after an outage (the process follows a managed node
    that comes back elsewhere)."""
    cmd = [
        sys.executable, "-m", "fedchain", "participant", "run",
        "--keystore", str(keystore), "--data", str(data), "--address", address,
        "--store", settings.store, "--state-dir", str(settings.state_dir), "--work-dir", str(work_dir),
        "--until-round", str(until_round), "--json",
    ]
    if rpc_url:
        cmd += ["--rpc-url", rpc_url]
    if ipfs_api:
        cmd += ["--ipfs-api", ipfs_api]
    if wait_round_end:
        cmd += ["--wait-round-end"]
    if attack:
        cmd += ["--attack", attack]
    if dropout:
        cmd += ["--dropout", repr(float(dropout)), "--dropout-seed", str(dropout_seed)]
    for digest in trust_models:
        cmd += ["--trust-model", digest]
    return cmd


AGENT_FAILED_FILE = "agent.failed"
"""Written in an agent's work dir by ``participant host`` when that agent failed (its exit code and error): the
host process goes on with its other agents, so the failure is not an exit to watch for."""


def host_command(*, manifest: Path, rpc_url: str | None, address: str, settings: Settings,
                 ipfs_api: str | None) -> list[str]:
    """The command line of one ``fedchain participant host`` process running the agents of ``manifest``."""
    cmd = [sys.executable, "-m", "fedchain", "participant", "host", "--manifest", str(manifest), "--address", address,
           "--store", settings.store, "--state-dir", str(settings.state_dir), "--json"]
    if rpc_url:
        cmd += ["--rpc-url", rpc_url]
    if ipfs_api:
        cmd += ["--ipfs-api", ipfs_api]
    return cmd


@dataclass
class ParticipantProcesses:
    """The participant processes of a run (one agent each, or ``participant host`` processes of several), the
    agents' work directories and participant indices, and the processes' logs."""

    procs: list[subprocess.Popen[str]]
    work_dirs: list[Path]  # per agent
    logs_dir: Path
    agent_ids: list[int] = field(default_factory=list)  # per agent: its participant index
    proc_of: list[int] = field(default_factory=list)  # per agent: the index of its process in ``procs``
    log_paths: list[Path] = field(default_factory=list)  # per process
    hosts: list[bool] = field(default_factory=list)  # per process: a ``participant host`` process
    exit_codes: list[int | None] = field(default_factory=list)  # per agent, once collected
    cpu_s: float = 0.0  # the processes' CPU time, once collected

    def exit_code_of(self, participant: int) -> int | None:
        """The exit code of participant ``participant``'s agent (its process's, or its own in a host)."""
        return self.exit_codes[self.agent_ids.index(participant)] if participant in self.agent_ids else None

    def collect(self, timeout_s: float) -> list[ParticipantOutput]:
        """Wait for every process to exit; each agent's output, in agent order (sets ``exit_codes``, ``cpu_s``)."""
        raw = _communicate(self.procs, timeout_s)
        per_agent: list[ParticipantOutput] = []
        codes: list[int | None] = []
        self.cpu_s = 0.0
        docs: dict[int, list[dict[str, Any]]] = {}
        for j, stdout in enumerate(raw):
            if self.hosts[j]:
                data = _json_document(stdout)
                agents = data.get("agents")
                docs[j] = [a for a in agents if isinstance(a, dict)] if isinstance(agents, list) else []
                self.cpu_s += float(data.get("cpu_s", 0.0))
        seen: dict[int, int] = {}
        for j in self.proc_of:
            p = self.procs[j]
            if not self.hosts[j]:
                out = ParticipantOutput.parse(raw[j])
                self.cpu_s += out.cpu_s
                per_agent.append(out)
                codes.append(p.returncode)
                continue
            k = seen.get(j, 0)
            seen[j] = k + 1
            doc = docs[j][k] if k < len(docs[j]) else None
            per_agent.append(ParticipantOutput.from_doc(doc) if doc is not None else ParticipantOutput())
            code = doc.get("exit_code") if doc is not None else None
            codes.append(int(code) if isinstance(code, int) else p.returncode)
        self.exit_codes = codes
        return per_agent

    def require_clean_exits(self) -> None:
        """A failed agent makes the run fail (see :func:`require_clean_exits`)."""
        failed = [(a, code) for a, code in enumerate(self.exit_codes) if code not in (0, ExitCode.PRIVACY_BUDGET)]
        if failed:
            raise ServiceError("; ".join(f"participant {self.agent_ids[a]} exited with code {code}: "
                                         f"{self.failure_of(a)}" for a, code in failed))

    def failure_of(self, agent: int) -> str:
        """What agent ``agent`` said when it failed: its host's failure record, else its process's last log line."""
        failed = self.work_dirs[agent] / AGENT_FAILED_FILE
        if failed.is_file():
            return failed.read_text(encoding="utf-8", errors="replace").strip()
        return _tail(self.log_paths[self.proc_of[agent]])

    def terminate(self) -> None:
        """Stop every process still running."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def launch_participants(cfg: ExperimentConfig, fed: Federation, clients: Sequence[ClientData], settings: Settings,
                        services: Services, run_dir: Path, cleanup: ExitStack,
                        given: Settings | None = None, *, only: Sequence[int] | None = None,
                        into: ParticipantProcesses | None = None) -> ParticipantProcesses:
    """Start one ``fedchain participant run`` process per participant (``only``: those of these
    indices, appended to ``into`` when given). ``given`` holds the
    URLs the user gave: the others are left to the processes to read from the state dir, so
    that they follow a managed service that comes back elsewhere. Each process stays until the
    last round has ended (``--wait-round-end``), to commit again what a rewound chain lost."""
    given = given if given is not None else settings
    env = dict(os.environ, FEDCHAIN_PASSWORD=fed.password)
    env.pop("FEDCHAIN_PRIVATE_KEY", None)
    logs_dir = run_dir / "logs"
    logs_dir.mkdir(exist_ok=True)
    attack_of = cfg.attack_of()
    out = into if into is not None else ParticipantProcesses([], [], logs_dir)
    per_process = cfg.participants_per_process
    batch: list[tuple[int, list[str], Path]] = []
    for idx, (name, client) in enumerate(zip(participant_names(len(clients)), clients, strict=True)):
        if only is not None and idx not in only:
            continue
        work_dir = run_dir / "participants" / fed.accounts[name].address
        attack = attack_of.get(idx)
        cmd = participant_command(
            keystore=fed.keystores[name], data=client.path, rpc_url=given.rpc_url, address=fed.deployment.address,
            settings=settings, ipfs_api=given.ipfs_api, until_round=cfg.rounds, work_dir=work_dir,
            attack=attack.to_text() if attack is not None else None, wait_round_end=True,
            dropout=cfg.dropout, dropout_seed=cfg.seed,
            # a custom model of the run's own configuration: its participants trust the file they were given
            trust_models=[cfg.model.source_digest] if cfg.model is not None and cfg.model.arch == "custom" else [],
        )
        if per_process == 1:
            log_path = logs_dir / f"participant-{idx}.log"
            stderr = cleanup.enter_context(log_path.open("w"))
            out.procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=env))
            out.work_dirs.append(work_dir)
            out.agent_ids.append(idx)
            out.proc_of.append(len(out.procs) - 1)
            out.log_paths.append(log_path)
            out.hosts.append(False)
            continue
        batch.append((idx, cmd, work_dir))
    for start in range(0, len(batch), per_process):
        _launch_host(out, batch[start:start + per_process], given, settings, fed, run_dir, cleanup, env)
    return out


def _launch_host(out: ParticipantProcesses, agents: Sequence[tuple[int, list[str], Path]], given: Settings,
                 settings: Settings, fed: Federation, run_dir: Path, cleanup: ExitStack, env: Mapping[str, str]) -> None:
    """Start one ``participant host`` process for ``agents`` (participant index, its ``participant run`` command
    line, work dir): the manifest holds exactly the per-agent options of those command lines."""
    number = sum(out.hosts)
    hosts_dir = run_dir / "hosts"
    hosts_dir.mkdir(exist_ok=True)
    manifest = [_manifest_entry(cmd) for _, cmd, _ in agents]
    path = hosts_dir / f"host-{number}-{agents[0][0]}.json"
    path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    log_path = out.logs_dir / f"host-{number}-{agents[0][0]}.log"
    stderr = cleanup.enter_context(log_path.open("w"))
    cmd = host_command(manifest=path, rpc_url=given.rpc_url, address=fed.deployment.address, settings=settings,
                       ipfs_api=given.ipfs_api)
    out.procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=stderr, text=True, env=dict(env)))
    out.log_paths.append(log_path)
    out.hosts.append(True)
    for idx, _, work_dir in agents:
        out.work_dirs.append(work_dir)
        out.agent_ids.append(idx)
        out.proc_of.append(len(out.procs) - 1)


def _manifest_entry(cmd: Sequence[str]) -> dict[str, Any]:
    """The ``participant host`` manifest entry of a ``participant run`` command line from
    :func:`participant_command` (its per-agent options; the role options are the host's)."""
    args = list(cmd[cmd.index("run") + 1:])
    entry: dict[str, Any] = {"trust_models": []}
    valued = {"--keystore": "keystore", "--data": "data", "--work-dir": "work_dir", "--until-round": "until_round",
              "--attack": "attack", "--dropout": "dropout", "--dropout-seed": "dropout_seed"}
    i = 0
    while i < len(args):
        flag = args[i]
        if flag in valued:
            key = valued[flag]
            value: Any = args[i + 1]
            entry[key] = (int(value) if key in ("until_round", "dropout_seed") else
                          float(value) if key == "dropout" else value)
            i += 2
        elif flag == "--trust-model":
            entry["trust_models"].append(args[i + 1])
            i += 2
        elif flag == "--wait-round-end":
            entry["wait_round_end"] = True
            i += 1
        elif flag in ("--address", "--store", "--state-dir", "--rpc-url", "--ipfs-api"):
            i += 2  # role options: the host's own
        else:
            i += 1  # --json
    return entry


def wait_ready(parts: ParticipantProcesses, timeout_s: float) -> None:
    """Wait until every participant process reports it is admitted, loaded and watching."""
    deadline = time.monotonic() + timeout_s
    pending = set(range(len(parts.work_dirs)))
    while pending:
        for a in list(pending):
            proc = parts.procs[parts.proc_of[a]]
            if (parts.work_dirs[a] / READY_FILE).exists():
                pending.discard(a)
            elif (parts.work_dirs[a] / AGENT_FAILED_FILE).exists() or proc.poll() is not None:
                raise ServiceError(f"participant {parts.agent_ids[a]} failed (exit code "
                                   f"{proc.returncode if proc.returncode is not None else 'of its agent'}): "
                                   f"{parts.failure_of(a)}")
        if pending and time.monotonic() > deadline:
            raise ServiceError(f"participant(s) {sorted(parts.agent_ids[a] for a in pending)} not ready within "
                               f"{timeout_s:.0f} s")
        if pending:
            time.sleep(0.1)


def _log_tail(logs_dir: Path, index: int) -> str:
    return _tail(logs_dir / f"participant-{index}.log")


def _tail(path: Path) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").strip().splitlines() if path.is_file() else []
    return " ".join(lines[-1:])


def require_clean_exits(procs: Sequence[subprocess.Popen[str]], logs_dir: Path) -> None:
    """A participant process that failed makes the run fail: its rounds are not what was asked for. One that
    stopped at its privacy budget (exit PRIVACY_BUDGET) did what the task asks of it."""
    failed = [(i, p.returncode) for i, p in enumerate(procs) if p.returncode not in (0, ExitCode.PRIVACY_BUDGET)]
    if failed:
        raise ServiceError("; ".join(f"participant process {i} exited with code {code}: {_log_tail(logs_dir, i)}"
                                     for i, code in failed))


@dataclass(frozen=True)
class ParticipantRoundResult:
    """What a participant process reported for one round."""

    round_id: int
    gas_used: int
    bytes_uploaded: int
    bytes_downloaded: int
    train_seconds: float
    function: str = "commitUpdate"  # sealUpdate / revealUpdate in a commit-reveal round


@dataclass(frozen=True)
class ParticipantVerification:
    """One live verification a participant process reported: its verdict, seconds and attestation gas."""

    round_id: int
    ok: bool | None
    seconds: float
    gas_used: int


@dataclass(frozen=True)
class ParticipantOutput:
    """What a participant process printed (its ``--json`` document), parsed."""

    results: tuple[ParticipantRoundResult, ...] = ()
    cpu_s: float = 0.0
    verifications: tuple[ParticipantVerification, ...] = ()

    @classmethod
    def parse(cls, stdout: str) -> ParticipantOutput:
        """The document, or an empty output when the process printed none."""
        return cls.from_doc(_json_document(stdout))

    @classmethod
    def from_doc(cls, data: Mapping[str, Any]) -> ParticipantOutput:
        """One agent's parsed ``--json`` document (``participant run``'s, or an agent's of ``participant host``)."""
        results = tuple(
            ParticipantRoundResult(int(r.get("round", 0)), int(r.get("gas_used") or 0), int(r.get("bytes_uploaded", 0)),
                                   int(r.get("bytes_downloaded", 0)), float(r.get("train_seconds", 0.0)),
                                   str(r.get("function") or "commitUpdate"))
            for r in data.get("results", []) if isinstance(r, dict)
        )
        verifications = tuple(
            ParticipantVerification(int(v.get("round", 0)), v.get("ok"), float(v.get("seconds") or 0.0),
                                    int(v.get("gas_used") or 0))
            for v in data.get("verifications", []) if isinstance(v, dict)
        )
        return cls(results, float(data.get("cpu_s", 0.0)), verifications)


def _json_document(stdout: str) -> dict[str, Any]:
    """The JSON object a process printed ({} when it printed none, or something else)."""
    try:
        data = json.loads(stdout) if stdout.strip() else {}
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _communicate(procs: Sequence[subprocess.Popen[str]], timeout_s: float) -> list[str]:
    """Wait for every process to exit (terminating those still running at the deadline); what each printed."""
    outs: list[str] = []
    deadline = time.monotonic() + timeout_s
    for i, p in enumerate(procs):
        try:
            stdout, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.terminate()
            stdout, _ = p.communicate()
        if p.returncode != 0:
            log.warning("participant process %d exited with code %s", i, p.returncode)
        outs.append(stdout or "")
    return outs


def with_participant_traffic(run: RunReport, outputs: Sequence[ParticipantOutput]) -> RunReport:
    """The run report with the bytes the participants moved added to each round."""
    per_round: dict[int, Traffic] = {}
    for out in outputs:
        for res in out.results:
            per_round[res.round_id] = per_round.get(res.round_id, Traffic()) + Traffic(
                uploaded_by_participants=res.bytes_uploaded, downloaded_by_participants=res.bytes_downloaded)
    rounds = tuple(replace(r, traffic=r.traffic + per_round.get(int(r.round_id), Traffic())) for r in run.rounds)
    return replace(run, rounds=rounds)


# --- the run ---------------------------------------------------------------------------------


def run_federation(
    cfg: ExperimentConfig,
    settings: Settings,
    out_dir: Path,
    *,
    progress: bool = True,
    keep_services: bool = False,
    ephemeral_devnet: bool = False,
    on_round: Callable[[RoundReport], None] | None = None,
) -> FederationReport:
    """Run the whole federation, then audit it; write report.json, audit.json, audit.html and a
    plot to ``out_dir``. ``ephemeral_devnet``: on a chain of the run's own that is never written
    to disk (:func:`start_services`; not with ``keep_services`` or a given RPC URL)."""
    if ephemeral_devnet and (keep_services or settings.rpc_url):
        raise ConfigError("an ephemeral devnet is the run's own fresh chain: it cannot outlive the run "
                          "(keep services) or be a given RPC URL")
    t_start = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    run_dir = out_dir / "run"
    if run_dir.exists():
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    ds = load_task_dataset(cfg)
    doc = build_task(cfg, ds)
    check_private_model(doc)  # a model DP-SGD cannot train is refused before anything starts
    clients = write_partitions(cfg, ds, run_dir / "data")

    # absolute paths: participant processes and the service managers may run elsewhere
    settings = settings.with_overrides(state_dir=Path(settings.state_dir).resolve())
    given = settings  # the URLs the user gave; the others come from the state dir's records
    t_services = time.perf_counter()
    services = start_services(settings, ephemeral_devnet=ephemeral_devnet)
    if services.ephemeral is not None:  # no record in the state directory: everyone is told its URL
        given = given.with_overrides(rpc_url=services.rpc_url)
    timing: dict[str, float] = {"prepare_s": t_services - t_start, "services_s": time.perf_counter() - t_services}
    settings = settings.with_overrides(rpc_url=services.rpc_url, ipfs_api=services.ipfs_api)
    cleanup = ExitStack()  # participant log handles, processes and the blob store, closed whatever happens
    try:
        with Progress(progress) as bars:
            t_setup = time.perf_counter()
            store = open_blob_store(settings)
            cleanup.callback(store.close)
            gas = GasLog()
            consortium: Consortium | None = None
            if cfg.governance:
                doc = with_rewards(cfg, doc, ds, store)
                fed, consortium = provision_governed(settings, services, doc, clients, ds.domain or "research", run_dir,
                                                     gas, store, bars.task("set-up", 3), cfg)
                founders = [i for i in range(cfg.clients) if i != newcomer_index(cfg)]
            else:
                fed = provision(settings, services, doc, clients, ds.domain or "research", run_dir, gas, store,
                                bars.task("set-up", 3 + cfg.clients))
                founders = None
            parts = launch_participants(cfg, fed, clients, settings, services, run_dir, cleanup, given, only=founders)
            cleanup.callback(parts.terminate)
            timing["setup_s"] = time.perf_counter() - t_setup
            t_ready = time.perf_counter()
            wait_ready(parts, timeout_s=cfg.round_timeout_s)
            timing["participants_start_s"] = time.perf_counter() - t_ready

            t_rounds = time.perf_counter()
            transport = LedgerTransport(fed.ledger("aggregator"), store, dishonest=cfg.dishonest, resume=True,
                                        incentives=fed.incentives("aggregator"))
            cleanup.callback(transport.close_inbox)  # signed rounds: the commitment inbox
            # after an outage: a managed node that came back on another URL (the stores close at cleanup)
            follow = follow_services(given, transport, account=fed.accounts["aggregator"], address=fed.deployment.address,
                                     close_replaced=False, on_new_store=_closed_with(cleanup))
            round_bar = bars.task("rounds", cfg.rounds)

            def advance(report: RoundReport) -> None:
                acc = report.accuracy
                round_bar(description=f"rounds (last accuracy {acc:.3f})" if acc is not None else "rounds")
                if on_round is not None:
                    on_round(report)

            evaluate = test_set_evaluator(doc, ds, backdoor_target=backdoor_target(cfg))
            if consortium is None:
                run = run_rounds(transport, cfg.rounds, on_round=advance, commit_timeout_s=cfg.round_timeout_s,
                                 evaluate=evaluate, ride_out=OutagePolicy(on_outage=follow))
                transports = [transport]
            else:
                governed = GovernedRun(cfg, fed, consortium, store, doc, given, cleanup)
                governed.newcomer = lambda: launch_participants(cfg, fed, clients, settings, services, run_dir, cleanup,
                                                                given, only=[newcomer_index(cfg)], into=parts)
                run = governed.run(transport, evaluate, advance)
                transports = governed.transports
                transport = transports[-1]
            timing["rounds_s"] = time.perf_counter() - t_rounds
            for t in transports:
                t.close_inbox()
                for tx in t.reports:
                    gas.record(tx)
            outputs = parts.collect(timeout_s=120.0)
            parts.require_clean_exits()
            timing["participants_cpu_s"] = parts.cpu_s
            timing["participants_train_s"] = sum(r.train_seconds for o in outputs for r in o.results)
            for out in outputs:
                for res in out.results:
                    if res.gas_used:
                        gas.add(res.function, res.gas_used)
                for v in out.verifications:
                    if v.gas_used:
                        gas.add("attestRound", v.gas_used)
            verify_s: dict[int, float] = {}  # per round, the slowest participant's verification (they run in parallel)
            for out in outputs:
                for v in out.verifications:
                    verify_s[v.round_id] = max(verify_s.get(v.round_id, 0.0), v.seconds)
            if verify_s:
                timing["verify_s_per_round"] = sum(verify_s.values()) / len(verify_s)
            if consortium is not None:
                for what, used in consortium.gas:
                    gas.add(what, used)
            run = with_participant_traffic(run, outputs)
            attack_of = cfg.attack_of()
            names = participant_names(cfg.clients)
            run = replace(run, attackers=tuple(sorted((Address(fed.accounts[names[i]].address) for i in attack_of),
                                                      key=str.lower)))
            wall = time.perf_counter() - t_start

            t_audit = time.perf_counter()
            audit_bar = bars.task("audit", 1)
            reader = transport.ledger if isinstance(transport.ledger, ChainLedger) else fed.ledger("aggregator")
            audit = Auditor(reader, transport.store, gas_of=gas_lookup(reader), contract=fed.deployment.address,
                            chain_id=fed.conn.chain_id, governance=governance_records(fed.conn, fed.deployment),
                            incentives=Incentives(fed.conn, fed.deployment) if fed.deployment.incentives else None).audit()
            timing["audit_s"] = time.perf_counter() - t_audit
            audit_bar()
        report = FederationReport(
            config=cfg, run=run, contract=Address(fed.deployment.address), chain_id=fed.conn.chain_id,
            rpc_url=services.rpc_url, devnet=services.devnet, store=store.describe(), task_cid=fed.task_cid,
            task_bytes=len(doc.to_bytes()),
            gas=gas.summary(),
            participants=tuple(
                ParticipantSummary(c.name, Address(fed.accounts[names[i]].address), c.num_samples,
                                   attack_of[i].to_text() if i in attack_of else None, parts.exit_code_of(i))
                for i, c in enumerate(clients)
            ),
            timing=timing, wall_time_s=wall, audit=audit, out_dir=out_dir,
            governance=consortium.summary(cfg.verification_quorum) if consortium is not None else None,
            privacy=privacy_summary(doc, reader, [(names[i], Address(fed.accounts[names[i]].address))
                                                  for i in range(len(clients))],
                                    [parts.exit_code_of(i) for i in range(len(clients))]),
        )
        write_outputs(report)
        return report
    finally:
        cleanup.close()
        if not keep_services:
            stop_services(settings, services)


class GovernedRun:
    """The rounds of a governed simulation, one at a time through the round engine, with the
    consortium acting between them: after a finalised round it waits for the members'
    attestations and, when any is negative, passes a dispute that also hands the aggregator role
    to the backup aggregator (the rounds after it are aggregated by that one, from the fallback
    model); after round 1 it votes the last participant in (whose process starts then); after
    round 2 it halves the strategy's learning rate by a task reconfiguration."""

    def __init__(self, cfg: ExperimentConfig, fed: Federation, consortium: Consortium, store: BlobStore,
                 doc: TaskDocument, given: Settings, cleanup: ExitStack) -> None:
        self.cfg = cfg
        self.fed = fed
        self.consortium = consortium
        self.store = store
        self.doc = doc
        self.given = given
        self.cleanup = cleanup
        self.transports: list[LedgerTransport] = []
        self.newcomer: Callable[[], ParticipantProcesses] | None = None
        self.admitted = False
        self.reconfigured = False
        self.slashed: set[str] = set()

    def _outage(self, transport: LedgerTransport, aggregator: str) -> OutagePolicy:
        follow = follow_services(self.given, transport, account=self.fed.accounts[aggregator],
                                 address=self.fed.deployment.address, close_replaced=False,
                                 on_new_store=_closed_with(self.cleanup))
        return OutagePolicy(on_outage=follow)

    def run(self, transport: LedgerTransport, evaluate: Callable[[Any], Mapping[str, float]],
            on_round: Callable[[RoundReport], None]) -> RunReport:
        """Run ``cfg.rounds`` rounds; the run report over all of them."""
        started = time.perf_counter()
        aggregator = "aggregator"
        self.transports.append(transport)
        policy = self._outage(transport, aggregator)
        reports: list[RoundReport] = []
        final = None
        for _ in range(self.cfg.rounds):
            part = run_rounds(transport, 1, on_round=on_round, commit_timeout_s=self.cfg.round_timeout_s,
                              evaluate=evaluate, ride_out=policy)
            reports += part.rounds
            final = part.final_model if part.final_model is not None else final
            if len(reports) >= self.cfg.rounds or not part.rounds:
                continue
            done = part.rounds[-1]
            if self.between(done) and aggregator != BACKUP_AGGREGATOR:
                aggregator = BACKUP_AGGREGATOR
                transport = LedgerTransport(self.fed.ledger(aggregator), self.store, resume=True,
                                            incentives=self.fed.incentives(aggregator))
                self.transports.append(transport)
                policy = self._outage(transport, aggregator)
        return RunReport(tuple(reports), time.perf_counter() - started, final)

    def between(self, done: RoundReport) -> bool:
        """The consortium's business after round ``done``; True when it disputed the round."""
        rid = RoundId(int(done.round_id))
        ledger = self.fed.ledger("aggregator")
        disputed = False
        if done.finalized and self.cfg.verification_quorum > 0:
            attestations = self.consortium.wait_attestations(ledger, rid)
            negative = [a for a in attestations if not a.ok]
            if negative and not self.consortium.disputed:
                disputed = True
                accused = Address(self.fed.accounts["aggregator"].address)
                backup = Address(self.fed.accounts[BACKUP_AGGREGATOR].address)
                contract = self.fed.contract
                first = negative[0]
                proposal = self.consortium.pass_proposal(
                    [dispute_call(contract, rid, accused, first.findings_digest, first.findings_cid,
                                  f"{len(negative)} member(s) replayed round {rid} and got another model"),
                     revoke_aggregator_call(contract, accused), grant_aggregator_call(contract, backup)],
                    f"dispute round {rid}: the published model is not the aggregate of its updates "
                    f"(findings {first.findings_cid}); hand the aggregator role to {backup}",
                    after_round=int(rid),
                )
                self.consortium.disputed.append(DisputedRound(
                    int(rid), accused, str(first.findings_cid), len(negative), len(attestations) - len(negative),
                    proposal.proposal_id, backup,
                ))
        if self.fed.deployment.incentives is not None and done.finalized:
            rnd = ledger.round(rid)
            for rejection in done.rejected:
                who = Address(rejection.participant)
                if who.lower() in self.slashed or rnd.evidence_cid is None:
                    continue
                held = Incentives(self.fed.conn, self.fed.deployment).deposit_of(who).held
                if held <= 0:
                    continue
                # the round's evidence document is the attributed finding: it rejects the participant's update
                self.consortium.pass_proposal(
                    [slash_call(self.fed.deployment.incentives, who, held, bytes(rnd.evidence_digest), rnd.evidence_cid)],
                    f"slash {who}'s deposit ({held} wei): round {rid} rejected its update ({rejection.rule}: "
                    f"{rejection.reason}; evidence {rnd.evidence_cid})", after_round=int(rid),
                )
                self.slashed.add(who.lower())
        if not self.admitted and self.newcomer is not None:
            name = participant_names(self.cfg.clients)[newcomer_index(self.cfg)]
            account = self.fed.accounts[name]
            self.consortium.pass_proposal([admit_call(self.fed.contract, account.address)],
                                          f"admit {name} ({account.address}) as a member", after_round=int(rid))
            self.consortium.add_member(name, account)
            self.admitted = True
            wait_ready(self.newcomer(), timeout_s=self.cfg.round_timeout_s)
        elif self.admitted and not self.reconfigured:
            strategy = self.doc.strategy_config()
            params = dict(strategy.params)
            params["lr"] = float(params.get("lr", self.cfg.lr)) / 2
            doc = replace(self.doc, strategy=StrategyConfig(strategy.name, params, strategy.robust))
            cid = self.store.put(doc.to_bytes())
            self.consortium.pass_proposal(
                [task_call(self.fed.contract, doc, cid)],
                f"halve the learning rate to {params['lr']:g} (task version 2, {cid})", after_round=int(rid),
            )
            self.reconfigured = True
        return disputed


def task_call(contract: FederationContract, doc: TaskDocument, cid: Cid) -> ProposalCall:
    """The proposal call that configures ``doc`` (stored under ``cid``): with its privacy policy, if it has one."""
    if doc.privacy is not None:
        return configure_private_task_call(contract, doc.model_spec_digest(), doc.strategy_digest(),
                                           doc.data_schema_digest(), cid, doc.max_commit_duration,
                                           doc.privacy.digest(), doc.privacy.budget_fixed())
    return configure_task_call(contract, doc.model_spec_digest(), doc.strategy_digest(), doc.data_schema_digest(), cid,
                               doc.max_commit_duration)


def _closed_with(cleanup: ExitStack) -> Callable[[BlobStore], None]:
    """Registers a store with ``cleanup`` so that it is closed with the run."""

    def register(store: BlobStore) -> None:
        cleanup.callback(store.close)

    return register


def write_outputs(report: FederationReport) -> None:
    """``report.json``, ``audit.json``, ``audit.html`` and ``accuracy.png`` in the report's directory."""
    out_dir = report.out_dir
    # the audit report with the run's endpoints and each round's test accuracy and loss (the run evaluated them)
    audit = report.audit.with_context(rpc_url=report.rpc_url, store=report.store).with_evaluation(
        {int(r.round_id): (r.accuracy, r.loss) for r in report.run.rounds if r.accuracy is not None})
    write_html(audit, out_dir / "audit.html")
    (out_dir / "audit.json").write_text(json.dumps(audit.to_json(), indent=2, sort_keys=True), encoding="utf-8")
    plot_evaluation(audit.evaluation, out_dir / "accuracy.png")  # accuracy and loss on two labelled axes
    (out_dir / "report.json").write_text(json.dumps(report.to_json(), indent=2, sort_keys=True), encoding="utf-8")


__all__ = [
    "FederationReport",
    "GasSummary",
    "ParticipantSummary",
    "participant_command",
    "require_clean_exits",
    "run_federation",
]

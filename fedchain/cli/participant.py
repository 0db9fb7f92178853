"""``fedchain participant``: register, inspect, submit once, or run the participant agent."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from fedchain.cli.options import (
    ADDRESS,
    emit,
    json_option,
    keystore_option,
    role_options,
    role_settings,
    role_signer,
    to_jsonable,
)
from fedchain.config import private_dir
from fedchain.errors import DepositError
from fedchain.types import Address

F = TypeVar("F", bound=Callable[..., Any])


def _work_dir(settings: Any, work_dir: Path | None, address: str) -> Path:
    return Path(work_dir) if work_dir is not None else Path(settings.state_dir) / "participants" / address


@click.group()
def participant() -> None:
    """Register, train and commit as a participant."""


@participant.command()
@click.option("--organisation", "--org", required=True, help="Organisation name recorded on chain.")
@click.option("--industry", default="", help="Industry (healthcare, finance, ...).")
@click.option("--samples", type=click.IntRange(1, 2**64 - 1), default=None,
              help="Size of the training dataset (number of samples), recorded on chain and approved with admission: "
                   "no commitment may claim more [default: the number of rows of --data].")
@click.option("--data", "data_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="This participant's data file (.npz from `fedchain data partition`), to count its samples.")
@keystore_option
@role_options
@json_option
def register(organisation: str, industry: str, samples: int | None, data_path: Path | None, keystore: Path | None,
             state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
             address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Register the keystore's account as a participant (pending until an admin admits it)."""
    from fedchain.cli.incentives import eth, incentives_for
    from fedchain.secagg.keys import account_public_key

    if samples is None:
        if data_path is None:
            raise click.UsageError("give the dataset size with --samples N, or the data file to count with --data FILE")
        from fedchain.fl.schema import load_client_data

        samples = int(load_client_data(data_path)[1].shape[0])
        if samples == 0:
            raise click.UsageError(f"--data {data_path} holds no samples; there is nothing to train on")
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    account = role_signer(settings)
    from fedchain.sim.wiring import connect_ledger

    ledger = connect_ledger(settings, account=account, address=address)
    public_key = account_public_key(account)  # the X25519 key secure-aggregation shares are encrypted to
    incentives = incentives_for(ledger, settings, address, account)
    policy = incentives.deposit_policy() if incentives is not None else None
    if policy is not None and policy.amount > 0:
        balance = ledger.contract.conn.balance(account.address)
        if balance < policy.amount:  # refuse before registering: a registration without its deposit is half done
            raise DepositError(f"{account.address} holds {balance} wei, less than the deposit of {policy.amount} "
                                  "wei the federation's policy asks for at registration")
    report = ledger.register(organisation, industry, public_key, samples)
    deposit = None
    amount = policy.amount if policy is not None else 0
    if incentives is not None and amount > 0:
        deposit = incentives.deposit()
    emit(as_json, {"participant": account.address, "organisation": organisation, "industry": industry,
                   "declared_samples": samples, "tx": report, "deposit": amount if deposit else 0,
                   "deposit_tx": deposit},
         f"registered {account.address} as {organisation!r} with {samples} samples "
         f"(pending admission; tx {report.tx_hash}, gas {report.gas_used})"
         + (f"; deposited {eth(amount)} as the deposit policy asks (tx {deposit.tx_hash}, gas "
            f"{deposit.gas_used})" if deposit is not None else ""))


@participant.command()
@click.option("--reason", required=True, help="Why the participant leaves; recorded on chain.")
@keystore_option
@role_options
@json_option
def leave(reason: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
          store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Leave the federation (a pending or active participant removes itself; a member's membership
    token is burned). A deposit may then be asked back: `fedchain deposit request-withdrawal`."""
    from fedchain.cli.incentives import eth, incentives_for
    from fedchain.errors import ParticipantError
    from fedchain.sim.wiring import connect_ledger

    if not reason.strip():
        raise click.BadParameter("must not be empty", param_hint="'--reason'")
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    account = role_signer(settings)
    ledger = connect_ledger(settings, account=account, address=address)
    status = ledger.participant(Address(account.address)).status.name.lower()
    if status not in ("pending", "active"):
        raise ParticipantError(f"{account.address} cannot leave: its status is {status}, not pending or active")
    report = ledger.contract.leave(reason)
    incentives = incentives_for(ledger, settings, address, None)
    held = incentives.deposit_of(Address(account.address)).held if incentives is not None else 0
    emit(as_json, {"participant": account.address, "reason": reason, "status": "removed", "tx": report,
                   "deposit_held": held},
         f"{account.address} left the federation ({reason!r}; tx {report.tx_hash}, gas {report.gas_used})"
         + (f"; its deposit of {eth(held)}: `fedchain deposit request-withdrawal`, then `deposit withdraw` "
            "after the delay" if held else ""))


def keystore_account(settings: Any) -> str:
    """The address of the account a role command would sign with, read off its keystore without unlocking it
    (no password, no key derivation); FEDCHAIN_PRIVATE_KEY or no --keystore: as the signer is found."""
    from fedchain.chain.accounts import account_from_env, find_keystore, keystore_address

    if settings.keystore is None or account_from_env() is not None:
        return str(role_signer(settings).address)
    candidate = Path(settings.keystore)
    # a path names a file (as for the signer: a folder of the keystore's name in the working directory is not one)
    path = candidate if candidate.suffix == ".json" or candidate.is_file() else find_keystore(
        settings.state_dir, str(candidate)).path
    return str(keystore_address(path))


@participant.command()
@click.argument("participant_address", type=ADDRESS, required=False)
@keystore_option
@role_options
@json_option
def status(participant_address: str | None, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
           ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Show a participant's status (default: the keystore's account)."""
    from fedchain.sim.wiring import connect_ledger

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    who = Address(participant_address or keystore_account(settings))
    ledger = connect_ledger(settings, address=address)
    rec = ledger.participant(who)
    task = ledger.task()
    privacy: dict[str, Any] | None = None
    if task is not None and task.epsilon_budget:
        from fedchain.fl.privacy import EPSILON_SCALE

        spent = ledger.epsilon_spent(who)
        privacy = {"epsilon_spent": spent / EPSILON_SCALE, "epsilon_budget": task.epsilon_budget / EPSILON_SCALE,
                   "epsilon_spent_fixed": spent, "epsilon_budget_fixed": task.epsilon_budget,
                   "policy_digest": task.privacy_policy_digest}

    def human() -> str:
        line = (f"{rec.address}: {rec.status.name.lower()}, last committed round {rec.last_committed_round}, "
                f"{rec.declared_samples} samples declared, registered at block {rec.registered_block}"
                + (f" ({rec.organisation}, {rec.industry})" if rec.organisation else ""))
        if privacy is not None:
            line += (f"\n  privacy: epsilon {privacy['epsilon_spent']:.6f} spent of a budget of "
                     f"{privacy['epsilon_budget']:.6f} ({privacy['epsilon_budget'] - privacy['epsilon_spent']:.6f} left)")
        return line

    emit(as_json, {**to_jsonable(rec), "privacy": to_jsonable(privacy)}, human)


def _trusted_digest(ctx: click.Context, param: click.Parameter, values: tuple[str, ...]) -> tuple[str, ...]:
    """``--trust-model`` values as 0x-prefixed lowercase digests; a usage error for one that is not a digest."""
    from fedchain.types import digest_hex, parse_digest

    out = []
    for value in values:
        try:
            out.append(digest_hex(parse_digest(value.strip())))
        except ValueError as err:
            raise click.BadParameter(f"{value!r} is not a model digest (0x and 64 hex digits): {err}") from err
    return tuple(out)


def trusted_models(settings: Any, trust_model: tuple[str, ...]) -> frozenset[str]:
    """The custom-model digests this participant runs: ``--trust-model`` and fedchain.toml's ``trusted_models``."""
    return frozenset((*settings.trusted_models, *trust_model))


def trust_model_option(f: F) -> F:
    """``--trust-model DIGEST`` (repeatable): the custom-model sources this participant runs."""
    return click.option("--trust-model", "trust_model", multiple=True, callback=_trusted_digest, metavar="DIGEST",
                        help="Run the task's custom model (a Python file) only if its source digest is one of these; "
                             "repeatable, added to trusted_models in fedchain.toml. Review the file first (`fedchain "
                             "admin task` names its digest and CID; `fedchain store get CID -o model.py`).")(f)


@participant.command()
@click.argument("round_id", type=click.IntRange(1))
@click.option("--attest/--no-attest", default=True, show_default=True,
              help="Record the verdict on chain (attestRound) as the keystore's account, which must be included in "
                   "the round; --no-attest only replays and prints the verdict (anyone may).")
@trust_model_option
@keystore_option
@role_options
@json_option
def verify(round_id: int, attest: bool, trust_model: tuple[str, ...], keystore: Path | None, state_dir: Path | None,
           rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None,
           as_json: bool) -> None:
    """Replay finalised round ROUND with the audit's code and attest the verdict on chain: the
    published model, or a findings blob (stored) naming whom it accuses. What the agent does
    by itself under a verification policy, by hand."""
    from fedchain.audit.live import attest_verdict, inclusion_of, verify_round
    from fedchain.errors import ParticipantError
    from fedchain.ports import RoundStatus
    from fedchain.protocol.task import load_model_source, load_task_document
    from fedchain.sim.wiring import connect_ledger, open_blob_store
    from fedchain.types import RoundId, digest_hex

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    account = role_signer(settings) if attest else None
    ledger = connect_ledger(settings, account=account, address=address)
    rid = RoundId(round_id)
    if rid > int(ledger.latest_round_id()):
        raise ParticipantError(f"round {rid} does not exist (the latest round is {int(ledger.latest_round_id())})")
    rnd = ledger.round(rid)
    if rnd.status != RoundStatus.FINALIZED:
        raise ParticipantError(f"round {rid} is {RoundStatus(rnd.status).name.lower()}: only a finalised round has a "
                               "model to verify and attest")
    mine = None
    if attest:
        mine = next((c for c in ledger.commitments(rid) if c.participant.lower() == ledger.sender.lower()), None)
        if mine is None:
            raise ParticipantError(f"{ledger.sender} committed nothing in round {rid}: only the round's included "
                                   "participants attest it (use --no-attest to replay it anyway)")
    with open_blob_store(settings) as blobs:
        # the replay builds the task's model: a custom one only when trusted (checked before anything of it runs)
        load_model_source(load_task_document(ledger, blobs, rnd.task_version)[1], blobs,
                          trusted_models(settings, trust_model))
        verdict = verify_round(ledger, blobs, rid, verified_by=ledger.sender if attest else "")
        tx = None
        already = None
        if mine is not None:
            prior = int(ledger.attestation_of(rid, ledger.sender))
            if prior:
                already = "ok" if prior == 1 else "negative"
            else:
                inclusion = inclusion_of(blobs, rnd, mine, ledger.commitments(rid))
                if inclusion is None:
                    raise ParticipantError(f"round {rid} did not include {ledger.sender}'s update (its leaf is not "
                                           "under the recorded Merkle root): only included participants attest it")
                tx = attest_verdict(ledger, blobs, verdict, inclusion)
    out = {**verdict.to_json(), "attested": tx is not None, "tx_hash": tx.tx_hash if tx is not None else None,
           "gas_used": tx.gas_used if tx is not None else 0, "already_attested": already}

    def human() -> str:
        head = (f"round {rid}: the replay reproduces model {digest_hex(verdict.published_digest)}" if verdict.ok else
                f"round {rid}: the replay disagrees ({len(verdict.findings)} finding(s), accusing "
                f"{verdict.accused.value if verdict.accused else 'nobody'} {verdict.accused_address or ''})".rstrip())
        if tx is not None:
            head += f"; attested {'ok' if verdict.ok else 'negative'} in tx {tx.tx_hash} (gas {tx.gas_used})"
        elif already is not None:
            head += f"; already attested ({already})"
        lines = [head, *(f"  {f.kind.value} [{f.severity.value}, {f.responsible.value}]: {f.detail}"
                         for f in verdict.findings if f.severity.value == "error")]
        return "\n".join(lines)

    emit(as_json, out, human)


class StartupProgress:
    """One stderr line per start-up step of a participant command, each with the seconds since the start
    (importing PyTorch, connecting, checking the data take seconds to tens of seconds before the first round)."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def step(self, what: str, *, last: bool = False) -> None:
        """Say what the command does now (``last``: the start-up is over)."""
        elapsed = time.monotonic() - self.started
        click.echo(f"participant [{elapsed:5.1f} s] {what}{'' if last else ' ...'}", err=True)


def agent_options(f: F) -> F:
    """``--data``, ``--work-dir``, ``--attack``, ``--verify`` and ``--trust-model``: the options of the commands that run
    a participant agent."""
    f = trust_model_option(f)
    f = click.option("--verify/--no-verify", "verify", default=None,
                     help="Replay each finalised round this participant was included in with the audit's code and "
                          "attest it on chain before training on its model [default: when the federation's "
                          "verification policy is set].")(f)
    f = click.option("--attack", default=None, help="Evaluation only: poison updates (sign_flip, scaling[:x], noise[:sigma]) "
                     "or the local data (label_flip, backdoor[:target_class]).")(f)
    f = click.option("--work-dir", type=click.Path(file_okay=False, path_type=Path), default=None,
                     help="Where this participant keeps its client state [default: <state-dir>/participants/<address>].")(f)
    f = click.option("--data", "data_path", required=True, type=click.Path(dir_okay=False, path_type=Path),
                     help="This participant's data file (.npz from `fedchain data partition`).")(f)
    return f


def _agent(settings: Any, address: str | None, data_path: Path, work_dir: Path | None, attack: str | None,
           verify: bool | None = None, trust_model: tuple[str, ...] = (), shared: Any = None,
           blobs: Any = None) -> tuple[Any, Any]:
    """The participant agent and its live verifier (None with --no-verify); its ledger waits for blocks with
    ``shared`` (a read-only :class:`fedchain.chain.ledger.ChainLedger` whose connection, event index and block
    watcher the agents of one host share) signing as this agent, or on a connection of its own."""
    from fedchain.audit.live import LiveVerifier
    from fedchain.cli.incentives import incentives_for
    from fedchain.fl.attacks import AttackSpec
    from fedchain.protocol.participant import ParticipantAgent
    from fedchain.secagg.keys import account_secagg_key
    from fedchain.sim.wiring import connect_ledger, follow_services, open_blob_store
    from fedchain.storage.cid import compute_cid

    spec = AttackSpec.parse(attack) if attack is not None else None
    account = role_signer(settings)
    ledger = (shared.with_account(account) if shared is not None
              else connect_ledger(settings, account=account, address=address))
    store = open_blob_store(settings)
    if blobs is not None:  # a host's agents: each blob read once for them all (fedchain.storage.shared)
        from fedchain.storage.shared import CachedReads

        store = CachedReads(store, blobs)
    agent = ParticipantAgent(ledger, store, data_path, _work_dir(settings, work_dir, ledger.sender), attack=spec,
                             cid_of=compute_cid, incentives=incentives_for(ledger, settings, address, account),
                             secagg_key=account_secagg_key(account))
    # the agent runs the task's custom model only if its digest is listed (ParticipantAgent.trusted_models)
    cast(Any, agent).trusted_models = trusted_models(settings, trust_model)
    agent.on_outage = follow_services(settings, agent, account=account, address=address)
    if verify is False:
        return agent, None
    live = LiveVerifier(agent)
    agent.verifier = live
    if verify is None:  # by default, while the federation's verification policy is set
        agent.verify_now = lambda: int(agent.ledger.verification_policy()) > 0
    return agent, live


@participant.command()
@click.option("--round", "round_id", type=int, default=None, help="Round id [default: the latest round].")
@agent_options
@keystore_option
@role_options
@json_option
def submit(round_id: int | None, data_path: Path, work_dir: Path | None, attack: str | None, verify: bool | None,
           trust_model: tuple[str, ...], keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
           ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Train on the round's global model and commit the update once (idempotent); a finalised
    round this participant was included in is verified and attested first (see --verify)."""
    steps = StartupProgress()
    steps.step("loading PyTorch and the training code")
    import torch

    torch.set_num_threads(1)
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    steps.step(f"unlocking the keystore and connecting to the chain ({settings.rpc_url or 'the devnet'}) and the store")
    agent, _ = _agent(settings, address, data_path, work_dir, attack, verify, trust_model)
    steps.step(f"training on {data_path} and committing the update", last=True)
    res = agent.submit(round_id)
    emit(as_json, res.to_json(), lambda: describe_result(res))


def describe_result(res: Any) -> str:
    """One line about what the participant did for a round."""
    if res.function in ("postAdvertisement", "postUnmaskingShares"):  # the two extra steps of a secure round
        what = "advertised its keys" if res.function == "postAdvertisement" else "posted its unmasking shares"
        again = "already " if res.already_committed else ""
        return f"round {res.round_id}: {again}{what} {res.cid} (gas {res.gas_used}, tx {res.tx_hash})"
    verb = {"sealUpdate": "sealed", "revealUpdate": "revealed"}.get(res.function, "committed")
    if res.already_committed:
        return f"round {res.round_id}: already {verb} {res.cid}"
    later = " (revealed after the commit phase)" if res.sealed_only else ""
    return (f"round {res.round_id}: {verb} {res.cid}{later} ({res.num_samples} samples, gas {res.gas_used}, "
            f"tx {res.tx_hash})")


@participant.command()
@click.option("--until-round", type=int, default=None, help="Exit after taking part in (or seeing the end of) this round.")
@click.option("--max-idle", type=float, default=None, help="Exit after this many seconds with nothing to do.")
@click.option("--wait-round-end/--no-wait-round-end", default=False,
              help="With --until-round: exit only once that round has ended, so that a commit the chain loses "
                   "meanwhile (a rewound devnet) is made again.")
@click.option("--dropout", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="Simulate an unreliable participant: in each secure-aggregation round drop out with this "
                   "probability, before advertising, after advertising or after committing (for testing recovery).")
@click.option("--dropout-seed", type=int, default=0, show_default=True, help="Seed of the --dropout draws.")
@click.option("--max-outage", type=click.FloatRange(min=0.0), default=300.0, show_default=True,
              help="Seconds an unreachable chain or store is ridden out, at start-up and between rounds, before "
                   "the agent gives up (exit 21 or 31).")
@agent_options
@keystore_option
@role_options
@json_option
def run(until_round: int | None, max_idle: float | None, wait_round_end: bool, dropout: float, dropout_seed: int,
        max_outage: float, data_path: Path, work_dir: Path | None,
        attack: str | None, verify: bool | None, trust_model: tuple[str, ...], keystore: Path | None,
        state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None,
        chain_id: int | None, as_json: bool) -> None:
    """Run the participant agent: watch for open rounds, train, store the update, commit.

    Every commit is journaled in <work-dir>/results.jsonl (fsynced before and after it is sent);
    a journaled commit that the chain lost while its round is open is committed again. Each
    finalised round it was included in is replayed with the audit's code and attested on chain
    before it trains on the round's model (--verify; by default under a verification policy);
    an exclusion as "blob unavailable" is contested on chain with the re-pinned blob. An
    unreachable chain or store is ridden out; a managed service that came back on another URL
    is followed."""
    steps = StartupProgress()
    steps.step("loading PyTorch and the training code")
    import torch

    torch.set_num_threads(1)
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    spec = AgentSpec(data_path, work_dir, attack, verify, trust_model, until_round, max_idle, wait_round_end, dropout,
                     dropout_seed, max_outage)
    doc = run_agent(settings, address, spec, steps, None if as_json else lambda res: click.echo(describe_result(res)))
    if as_json:
        import resource

        usage = resource.getrusage(resource.RUSAGE_SELF)
        emit(True, {**doc, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)}, "")


@dataclass(frozen=True)
class AgentSpec:
    """What one participant agent runs with: the options of ``participant run`` but the role options."""

    data: Path
    work_dir: Path | None = None
    attack: str | None = None
    verify: bool | None = None
    trust_model: tuple[str, ...] = ()
    until_round: int | None = None
    max_idle: float | None = None
    wait_round_end: bool = False
    dropout: float = 0.0
    dropout_seed: int = 0
    max_outage: float = 300.0  # seconds an unreachable chain or store is ridden out (at start-up too)


def run_agent(settings: Any, address: str | None, spec: AgentSpec, steps: StartupProgress,
              on_result: Callable[[Any], None] | None = None, shared: Any = None,
              blobs: Any = None) -> dict[str, Any]:
    """Run one participant agent to its end (``participant run``; each agent of ``participant host``, which
    share one ledger: ``shared``); its ``--json`` document but the CPU time. Writes READY_FILE in its work dir once
    it is watching."""
    from fedchain.errors import RpcUnavailableError, StorageUnavailableError
    from fedchain.protocol.outage import OutageClock
    from fedchain.protocol.participant import READY_FILE

    steps.step(f"unlocking the keystore and connecting to the chain ({settings.rpc_url or 'the devnet'}) and the store")
    outage = OutageClock(0.25, spec.max_outage)
    while True:  # a node that is down or overloaded at start-up is ridden out as it is later on
        try:
            agent, live = _agent(settings, address, spec.data, spec.work_dir, spec.attack, spec.verify,
                                 spec.trust_model, shared, blobs)
            break
        except (RpcUnavailableError, StorageUnavailableError) as err:
            outage.failed(err)
    outage.recovered()
    agent.dropout_rate, agent.dropout_seed = spec.dropout, spec.dropout_seed
    agent.max_outage_s = spec.max_outage
    steps.step(f"checking admission, fetching the task and checking {spec.data} against its schema "
               "(one dry training step)")
    ready = agent.state_dir / READY_FILE
    ready.unlink(missing_ok=True)  # left by an earlier run: not a signal from this one

    def on_ready() -> None:
        steps.step(f"ready as {agent.address}: waiting for a round to open", last=True)
        private_dir(agent.state_dir)  # participant data: the owner's only (0700)
        tmp = ready.with_name(f"{READY_FILE}.{os.getpid()}.{threading.get_ident()}.tmp")
        tmp.write_text(str(os.getpid()), encoding="utf-8")
        tmp.replace(ready)

    results = agent.run(until_round=spec.until_round, max_idle_s=spec.max_idle, on_result=on_result,
                        on_ready=on_ready, wait_for_end=spec.wait_round_end)
    if spec.wait_round_end:
        agent.claim_outstanding_rewards()  # the last round's rewards are published just after it ends
    return {"participant": agent.address, "results": [r.to_json() for r in results],
            "verifications": [v.to_json() for v in live.verifications] if live is not None else []}


def _manifest_specs(path: Path) -> list[tuple[Path, AgentSpec]]:
    """The agents of a ``participant host`` manifest: a JSON list of objects (``keystore`` and ``data``
    required; ``work_dir``, ``attack``, ``verify``, ``trust_models``, ``until_round``, ``max_idle``,
    ``wait_round_end``, ``dropout``, ``dropout_seed``, ``max_outage`` as the options of ``participant run``)."""
    import json

    from fedchain.errors import ConfigError

    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ConfigError(f"--manifest {path}: not a readable JSON file: {err}") from err
    if not isinstance(entries, list) or not entries or not all(isinstance(e, dict) for e in entries):
        raise ConfigError(f"--manifest {path}: expected a non-empty JSON list of agent objects")
    known = {"keystore", "data", "work_dir", "attack", "verify", "trust_models", "until_round", "max_idle",
             "wait_round_end", "dropout", "dropout_seed", "max_outage"}
    out = []
    for i, e in enumerate(entries):
        unknown = sorted(set(e) - known)
        if unknown or "keystore" not in e or "data" not in e:
            raise ConfigError(f"--manifest {path}: agent {i} needs keystore and data"
                              + (f" and has unknown keys {unknown}" if unknown else ""))
        try:
            spec = AgentSpec(
                Path(e["data"]), Path(e["work_dir"]) if e.get("work_dir") else None, e.get("attack"), e.get("verify"),
                tuple(_trusted_digest(cast(Any, None), cast(Any, None), tuple(e.get("trust_models") or ()))),
                int(e["until_round"]) if e.get("until_round") is not None else None,
                float(e["max_idle"]) if e.get("max_idle") is not None else None, bool(e.get("wait_round_end", False)),
                float(e.get("dropout", 0.0)), int(e.get("dropout_seed", 0)), float(e.get("max_outage", 300.0)))
        except (TypeError, ValueError, click.BadParameter) as err:
            raise ConfigError(f"--manifest {path}: agent {i}: {err}") from err
        if not 0.0 <= spec.dropout < 1.0:
            raise ConfigError(f"--manifest {path}: agent {i}: dropout must be in [0, 1), got {spec.dropout}")
        if not spec.max_outage >= 0.0:
            raise ConfigError(f"--manifest {path}: agent {i}: max_outage must be >= 0, got {spec.max_outage}")
        out.append((Path(e["keystore"]), spec))
    return out


def _shared_ledger(settings: Any, address: str | None, ledgers: dict[str, Any]) -> Any:
    """The read-only ledger the agents of this host on the node of ``settings`` share, each signing as itself: one
    connection, one event index (the federation's history is read once, not once per agent), one block watcher
    (one filter poll per interval for them all) and reads pinned to one block (each identical contract read once
    per block for them all, :mod:`fedchain.chain.reads`). None when the node cannot be reached yet: each agent then
    rides the outage out on a connection of its own."""
    from fedchain.errors import RpcUnavailableError
    from fedchain.sim.wiring import connect_ledger, rpc_url_of

    try:
        url = rpc_url_of(settings)
        if url not in ledgers:
            ledgers[url] = connect_ledger(settings, address=address)
            ledgers[url].conn.pin_reads()
    except RpcUnavailableError:
        return None
    return ledgers[url]


class _HostedAgent(threading.Thread):
    """One agent of ``participant host`` in its own thread: its document, or its error and exit code."""

    def __init__(self, index: int, settings: Any, address: str | None, spec: AgentSpec, shared: Any,
                 blobs: Any = None) -> None:
        super().__init__(name=f"participant-agent-{index}", daemon=True)
        self.index, self.settings, self.address, self.spec, self.shared = index, settings, address, spec, shared
        self.blobs = blobs
        self.doc: dict[str, Any] = {}

    def run(self) -> None:
        """Run the agent; never raises (the host reports each agent's failure)."""
        from fedchain.errors import ExitCode, FedchainError

        started = time.thread_time()
        try:
            doc: dict[str, Any] = {**run_agent(self.settings, self.address, self.spec, StartupProgress(),
                                               shared=self.shared, blobs=self.blobs),
                                   "exit_code": 0, "error": None}
        except FedchainError as err:
            click.echo(f"error: agent {self.index} ({self.spec.data}): {err}", err=True)
            doc = {"participant": None, "results": [], "verifications": [], "exit_code": int(err.exit_code),
                   "error": str(err), "error_type": type(err).__name__}
        except Exception as err:  # noqa: BLE001 - the host's edge: one agent's bug must not stop the others
            click.echo(f"error: agent {self.index} ({self.spec.data}): {type(err).__name__}: {err}", err=True)
            doc = {"participant": None, "results": [], "verifications": [], "exit_code": int(ExitCode.GENERIC),
                   "error": f"{type(err).__name__}: {err}", "error_type": type(err).__name__}
        if doc["error"] is not None and self.spec.work_dir is not None:
            from fedchain.sim.federation import AGENT_FAILED_FILE

            self.spec.work_dir.mkdir(parents=True, exist_ok=True)
            (self.spec.work_dir / AGENT_FAILED_FILE).write_text(f"exit code {doc['exit_code']}: {doc['error']}\n",
                                                                encoding="utf-8")
        self.doc = {**doc, "index": self.index, "keystore": str(self.settings.keystore),
                    "cpu_s": round(time.thread_time() - started, 3)}


@participant.command()
@click.option("--manifest", "manifest", required=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              help="A JSON list of agents: each with its keystore and data file and, as `participant run` takes them, "
                   "work_dir, attack, verify, trust_models, until_round, max_idle, wait_round_end, dropout, "
                   "dropout_seed.")
@click.option("--stagger", type=click.FloatRange(min=0.0), default=0.05, show_default=True,
              help="Seconds between two agents' starts, so that a hundred agents do not open their connections to "
                   "the node in one burst.")
@role_options
@json_option
def host(manifest: Path, stagger: float, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
         store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Run many participant agents in one process (for simulations), each in its own thread with its own
    keystore, data, work dir, chain connection and store client, each doing exactly what `participant run`
    does. Prints one document: each agent's (its error and exit code if it failed) and the process's CPU
    time; exits non-zero when an agent failed (stopping at its privacy budget is not a failure)."""
    import resource

    import torch

    from fedchain.errors import ExitCode

    torch.set_num_threads(1)
    specs = _manifest_specs(manifest)
    settings = [role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore) for keystore, _ in specs]
    ledgers: dict[str, Any] = {}  # by node URL
    from fedchain.storage.shared import BlobCache

    blobs = BlobCache()  # the blobs every agent reads (base models, task documents), fetched once for all
    agents = [_HostedAgent(i, s, address, spec, _shared_ledger(s, address, ledgers), blobs) for i, (s, (_, spec)) in
              enumerate(zip(settings, specs, strict=True))]
    for i, a in enumerate(agents):
        if i and stagger:
            time.sleep(stagger)
        a.start()
    for a in agents:
        a.join()
    docs = [a.doc for a in agents]
    usage = resource.getrusage(resource.RUSAGE_SELF)
    failed = [d for d in docs if d["exit_code"] not in (0, ExitCode.PRIVACY_BUDGET)]
    emit(as_json, {"agents": docs, "cpu_s": round(usage.ru_utime + usage.ru_stime, 3)},
         lambda: "\n".join(f"agent {d['index']} ({d['participant'] or d['keystore']}): "
                           + (f"{len(d['results'])} result(s)" if d["error"] is None
                              else f"failed (exit {d['exit_code']}): {d['error']}") for d in docs))
    if failed:
        click.get_current_context().exit(int(failed[0]["exit_code"]))

"""``fedchain admin``: the consortium administrator's actions (admission, removal, task, members).

These are the calls the ADMIN_ROLE makes on the Federation contract; a governance contract can
hold that role later and make the same calls through proposals."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from fedchain.cli.options import (
    address_or_keystore,
    emit,
    json_option,
    keystore_option,
    privacy_options,
    privacy_request,
    role_ledger,
    role_options,
    role_settings,
    secagg_config,
    secagg_options,
    signed_commit_options,
    signed_commits_config,
    task_options,
)
from fedchain.config import Settings
from fedchain.errors import ChainError, DeploymentNotFoundError, GovernanceError, IntegrityError
from fedchain.ports import ParticipantAdmitted, ParticipantRegistered, ParticipantRemoved, ParticipantStatus
from fedchain.types import Address, Cid, Digest

if TYPE_CHECKING:
    from fedchain.chain.ledger import ChainLedger
    from fedchain.fl.datasets import Dataset
    from fedchain.fl.models import ModelSpec
    from fedchain.fl.schema import DataSchema
    from fedchain.protocol.secure import SecAggConfig
    from fedchain.protocol.task import RewardsConfig, TaskDocument
    from fedchain.sim.config import PrivacyRequest

F = TypeVar("F", bound=Callable[..., Any])


def refuse_if_governed(settings: Settings, ledger: ChainLedger, proposal: str) -> None:
    """GovernanceError when the timelock of the recorded governed deployment holds this federation's
    admin role: the action is a ``fedchain gov propose`` the members vote on, not an admin call."""
    from fedchain.chain.federation import ADMIN_ROLE, read_deployment

    try:
        deployment = read_deployment(settings.state_dir, ledger.conn.chain_id)
    except DeploymentNotFoundError:
        return
    if deployment.timelock is None or deployment.address.lower() != ledger.contract.address.lower():
        return
    if ledger.contract.has_role(ADMIN_ROLE, deployment.timelock):
        raise GovernanceError(
            f"the federation at {deployment.address} is governed: its timelock {deployment.timelock} holds the admin "
            f"role, so this is a proposal the members vote on: fedchain gov propose {proposal} --description TEXT"
        )


@click.group()
def admin() -> None:
    """Admit and remove participants; inspect the task and the membership."""


@admin.command()
@click.argument("participant", metavar="PARTICIPANT")
@keystore_option
@role_options
@json_option
def admit(participant: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
          store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Admit a registered (pending) PARTICIPANT: its address, or the name of its keystore in the state dir."""
    participant = address_or_keystore(participant, "'PARTICIPANT'", state_dir)
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    ledger = role_ledger(settings, address)
    refuse_if_governed(settings, ledger, f"admit {participant}")
    report = ledger.admit(Address(participant))
    emit(as_json, {"participant": participant, "status": "active", "tx": report},
         f"admitted {participant} (tx {report.tx_hash}, gas {report.gas_used})")


@admin.command()
@click.argument("participant", metavar="PARTICIPANT")
@click.option("--reason", required=True, help="Why the participant is removed; recorded on chain.")
@keystore_option
@role_options
@json_option
def remove(participant: str, reason: str, keystore: Path | None, state_dir: Path | None, rpc_url: str | None,
           ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Remove PARTICIPANT (an address or a keystore name); its later commits are refused by the contract."""
    participant = address_or_keystore(participant, "'PARTICIPANT'", state_dir)
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    ledger = role_ledger(settings, address)
    refuse_if_governed(settings, ledger, f"remove {participant} --reason {shlex.quote(reason)}")
    report = ledger.remove(Address(participant), reason)
    emit(as_json, {"participant": participant, "status": "removed", "reason": reason, "tx": report},
         f"removed {participant}: {reason} (tx {report.tx_hash}, gas {report.gas_used})")


@admin.command()
@role_options
@json_option
def members(state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
            address: str | None, chain_id: int | None, as_json: bool) -> None:
    """List every registered participant with its current status, from the event log."""
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    ledger = role_ledger(settings, address, signed=False)
    seen: dict[str, None] = {}
    for event in ledger.history():
        if isinstance(event, (ParticipantRegistered, ParticipantAdmitted, ParticipantRemoved)):
            seen.setdefault(event.participant, None)
    records = [ledger.participant(Address(p)) for p in seen]
    active = sum(1 for r in records if r.status == ParticipantStatus.ACTIVE)

    def human() -> str:
        lines = [f"{len(records)} participant(s), {active} active"]
        lines += [f"  {r.address}  {r.status.name.lower():8}  {r.organisation} ({r.industry or '-'})" for r in records]
        return "\n".join(lines)

    emit(as_json, {"participants": records, "active": active}, human)


@admin.command()
@click.option("--chain-only", is_flag=True,
              help="Only the digests and CID the chain records; do not fetch and decode the task document.")
@role_options
@json_option
def task(chain_only: bool, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
         address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Show the task: the configuration recorded on chain and its document, fetched from the store, checked against
    the chain's digests and decoded (data, model, strategy, robust rules, rounds, privacy, secure aggregation,
    rewards)."""
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    ledger = role_ledger(settings, address, signed=False)
    config = ledger.task()
    if config is None:
        emit(as_json, {"task": None}, "no task configured yet")
        return
    chain_lines = [f"{k}: {('0x' + v.hex()) if isinstance(v, bytes) else v}" for k, v in vars(config).items()]
    if chain_only:
        emit(as_json, {"task": config}, lambda: "\n".join(chain_lines))
        return
    from fedchain.protocol.task import load_task_document
    from fedchain.sim.wiring import open_blob_store

    blobs = open_blob_store(settings)
    try:
        _, doc = load_task_document(ledger, blobs, int(config.version))
    finally:
        getattr(blobs, "close", lambda: None)()
    summary = task_summary(doc)
    emit(as_json, {"task": config, "document": summary}, lambda: "\n".join(
        [f"task v{config.version} (document {config.config_cid}, checked against the chain's digests)",
         *describe_task(summary), "on chain:", *(f"  {line}" for line in chain_lines)]))


def task_summary(doc: TaskDocument) -> dict[str, Any]:
    """The task document decoded for people: data (schema name and digest), model, strategy, robust rules, round
    parameters, privacy, secure aggregation and rewards (None where the task has none)."""
    from fedchain.types import digest_hex

    schema, spec, strategy = doc.schema(), doc.spec(), doc.strategy_config()
    return {
        "dataset": doc.dataset,
        "schema": {"dataset": schema.dataset, "digest": digest_hex(doc.data_schema_digest()),
                   "feature_shape": list(schema.feature_shape), "features": schema.num_features,
                   "classes": list(schema.label_names), "table": schema.table is not None},
        "model": {**spec.to_dict(), "digest": digest_hex(doc.model_spec_digest())},
        "strategy": {"name": strategy.name, "params": dict(strategy.params),
                     "robust": [rule.to_json() for rule in strategy.robust],
                     "digest": digest_hex(doc.strategy_digest())},
        "seed": doc.seed,
        "min_updates": doc.min_updates,
        "commit_duration": doc.commit_duration,
        "max_commit_duration": doc.max_commit_duration,
        "reveal_duration": doc.reveal_duration,
        "privacy": None if doc.privacy is None else {**doc.privacy.to_json(),
                                                     "digest": digest_hex(doc.privacy.digest())},
        "secagg": None if doc.secagg is None else doc.secagg.to_json(),
        "rewards": None if doc.rewards is None else doc.rewards.to_json(),
        **({} if doc.signed_commits is None else {"signed_commits": doc.signed_commits.to_json()}),
    }


def describe_task(summary: dict[str, Any]) -> list[str]:
    """:func:`task_summary` as lines of text."""
    schema, model, strategy = summary["schema"], summary["model"], summary["strategy"]

    def params(values: dict[str, Any]) -> str:
        return ", ".join(f"{k}={v}" for k, v in sorted(values.items())) or "-"

    layers = {k: model[k] for k in ("hidden", "channels", "factory", "params") if model.get(k)}
    lines = [
        f"dataset          {summary['dataset']}",
        f"schema           {schema['dataset']} {schema['digest']}",
        f"                 {schema['features']} features, shape {tuple(schema['feature_shape'])}; classes "
        + ", ".join(schema["classes"]),
        f"model            {model['arch']}{' ' + params(layers) if layers else ''}, input {tuple(model['input_shape'])}, "
        f"{model['num_classes']} classes",
        f"                 digest {model['digest']}",
        *([] if model["arch"] != "custom" else [
            f"model source     {model['source_digest']} (CID {model['source_cid']}); review it with `fedchain store "
            f"get {model['source_cid']} -o model.py`, then train with --trust-model {model['source_digest']}",
        ]),
        f"strategy         {strategy['name']}: {params(strategy['params'])}",
        "robust rules     " + (" + ".join(f"{r['name']}({params(r['params'])})" for r in strategy["robust"]) or "none"),
        f"                 strategy digest {strategy['digest']}",
        f"rounds           min updates {summary['min_updates']}, commit {summary['commit_duration']} s "
        f"(at most {summary['max_commit_duration']} s), reveal {summary['reveal_duration']} s, seed {summary['seed']}",
    ]
    privacy, secagg, rewards = summary["privacy"], summary["secagg"], summary["rewards"]
    lines.append("privacy          none" if privacy is None else
                 f"privacy          {privacy['mechanism']}: epsilon budget {privacy['epsilon_budget']:g} (delta "
                 f"{privacy['delta']:g}), noise multiplier {privacy['noise_multiplier']:.4f}, clip {privacy['clip']:g}, "
                 f"sampling rate {privacy['sample_rate']:g}, accountant {privacy['accountant']}, min clients "
                 f"{privacy['min_clients']}")
    lines.append("secure agg.      none" if secagg is None else "secure agg.      " + params(secagg))
    if summary.get("signed_commits") is not None:
        signed = summary["signed_commits"]
        lines.append(f"signed rounds    inbox {signed['inbox']}, escape window {signed['escape_duration']} s")
    lines.append("rewards          none" if rewards is None else
                 f"rewards          {rewards['rule']} ({params(rewards['params'])}), validation "
                 f"{rewards['validation_cid'] or '-'}")
    return lines


def task_document(dataset: str, arch: str | None, strategy: str, strategy_params: tuple[str, ...], robust: str | None,
                  local_epochs: int, batch_size: int, lr: float, seed: int, min_updates: int, commit_duration: int,
                  max_commit_duration: int, reveal_duration: int = 0, rewards: RewardsConfig | None = None,
                  privacy: PrivacyRequest | None = None, dp_rounds: int | None = None,
                  secagg: SecAggConfig | None = None, schema: DataSchema | None = None,
                  model: Callable[[DataSchema], ModelSpec] | None = None) -> TaskDocument:
    """The task document exactly as ``fedchain simulate`` builds it; ConfigError for unknown names or parameters.

    ``admin configure-task`` and ``gov propose configure-task`` both build it from :func:`task_document_options`,
    ``admin configure-task --file`` from a task file (:mod:`fedchain.cli.task_file`). With ``privacy``, DP-SGD
    needs its sampling rate, and the noise multiplier is calibrated so that ``dp_rounds`` rounds fit the budget
    unless it is given. With ``schema`` (a consortium's own data) the task is on that schema and ``dataset`` is
    ignored: no bundled dataset is loaded. ``model`` makes the task's model for its data schema (overriding
    ``arch``)."""
    from dataclasses import replace

    from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset, parse_robust, parse_strategy_params

    if privacy is not None:
        if privacy.mechanism == "dpsgd" and privacy.sample_rate is None:
            raise click.UsageError("--dp dpsgd needs --dp-sample-rate (the Poisson sampling rate of each participant's records)")
        if privacy.noise_multiplier is None and dp_rounds is None:
            raise click.UsageError("--dp needs --noise-multiplier, or --dp-rounds R to calibrate it so that R rounds fit "
                                   "the budget")
    elif dp_rounds is not None:
        raise click.UsageError("--dp-rounds only with --dp")
    cfg = ExperimentConfig(dataset=dataset, strategy=strategy, strategy_params=parse_strategy_params(strategy_params),
                           robust=parse_robust(robust), arch=arch, local_epochs=local_epochs, batch_size=batch_size, lr=lr,
                           seed=seed, min_updates=min_updates, commit_duration=commit_duration,
                           max_commit_duration=max_commit_duration, reveal_duration=reveal_duration, privacy=privacy,
                           rounds=dp_rounds or 1, secagg=secagg)
    ds = load_task_dataset(cfg) if schema is None else schema_dataset(schema)
    if model is not None:
        cfg = replace(cfg, model=model(ds.schema))
    doc = build_task(cfg, ds)
    return doc if rewards is None else replace(doc, rewards=rewards)


def schema_dataset(schema: DataSchema) -> Dataset:
    """A dataset with no samples that carries only ``schema``: what a task on a consortium's own table needs of its
    data (the records stay at the sites)."""
    import numpy as np

    from fedchain.fl.datasets import Dataset

    empty = np.zeros((0, *schema.feature_shape), dtype=schema.dtype)
    labels = np.zeros((0,), dtype=np.int64)
    return Dataset(name=schema.dataset, x_train=empty, y_train=labels, x_test=empty, y_test=labels, schema=schema,
                   source="the consortium's schema", licence="", citation="", domain="table")


def rewards_config(rule: str | None, params: tuple[str, ...], validation: tuple[Digest, Cid] | None) -> RewardsConfig | None:
    """The task's rewards config from ``--rewards``, ``--reward-param`` and the stored validation set."""
    from fedchain.protocol.task import RewardsConfig

    if rule is None:
        if params or validation is not None:
            raise click.UsageError("--reward-param and --validation only with --rewards RULE")
        return None
    parsed: dict[str, int | bool | str] = {}
    for item in params:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="'--reward-param'")
        parsed[key] = int(value) if value.lstrip("-").isdigit() else {"true": True, "false": False}.get(value, value)
    digest, cid = validation if validation is not None else (None, None)
    return RewardsConfig(rule, parsed, digest, cid)


def store_validation(blobs: Any, path: Path | None) -> tuple[Digest, Cid] | None:
    """Store the validation set file (when given); (its SHA-256, its CID)."""
    if path is None:
        return None
    from fedchain.codec.canonical import sha256_digest

    data = path.read_bytes()
    return sha256_digest(data), blobs.put(data)


def task_document_options(f: F) -> F:
    """The options of a task document (:func:`fedchain.cli.options.task_options`, ``--min-updates``
    and the rewards: ``--rewards``, ``--reward-param``, ``--validation``)."""
    f = click.option("--validation", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
                     help="The consortium's validation set (.npz) the loo and shapley rules score with; stored in the "
                          "blob store, its digest and CID recorded in the task document.")(f)
    f = click.option("--reward-param", "reward_params", multiple=True, metavar="KEY=VALUE",
                     help="A parameter of the rewards rule (e.g. permutations=200 for shapley). Repeatable.")(f)
    f = click.option("--rewards", "rewards_rule", type=click.Choice(["samples", "loo", "shapley"]), default=None,
                     help="How each round's rewards are scored (recorded in the task document): by samples, "
                          "leave-one-out or Shapley value on --validation [default: no rewards rule].")(f)
    f = click.option("--min-updates", type=int, default=1, show_default=True, help="Minimum included updates per round.")(f)
    return task_options(f)


TASK_FILE_EXEMPT = frozenset({"task_file", "keystore", "state_dir", "rpc_url", "ipfs_api", "store", "address", "chain_id",
                              "as_json"})
"""The options of ``configure-task`` that may go with ``--file`` (where and how to publish, not what)."""


@admin.command("configure-task")
@click.option("--file", "task_file", type=click.Path(dir_okay=False, exists=True, path_type=Path), default=None,
              help="A task file (task.toml, from `fedchain init`): its values are the task, so no task option may be "
                   "given with it.")
@task_document_options
@privacy_options
@secagg_options
@signed_commit_options
@click.option("--dp-rounds", type=click.IntRange(1), default=None,
              help="With --dp and no --noise-multiplier: calibrate the noise so that this many rounds fit the budget.")
@keystore_option
@role_options
@json_option
def configure_task(task_file: Path | None, dataset: str, arch: str | None, strategy: str,
                   strategy_params: tuple[str, ...], robust: str | None,
                   local_epochs: int, batch_size: int, lr: float, seed: int, min_updates: int, commit_duration: int,
                   max_commit_duration: int, reveal_duration: int, rewards_rule: str | None,
                   reward_params: tuple[str, ...], validation: Path | None,
                   dp: str | None, epsilon_budget: float | None, dp_delta: float, dp_clip: float,
                   noise_multiplier: float | None, dp_sample_rate: float | None, dp_accountant: str,
                   dp_min_clients: int | None, dp_rounds: int | None, secagg: bool, secagg_clip: float,
                   secagg_degree: int | None, secagg_max_summands: int, secagg_phase: int, signed_commits: bool,
                   inbox: str | None, escape_duration: int, keystore: Path | None,
                   state_dir: Path | None, rpc_url: str | None,
                   ipfs_api: str | None, store: str | None, address: str | None, chain_id: int | None,
                   as_json: bool) -> None:
    """Publish the federation's task: store the task document, then record its digests on chain.

    The task comes from the options, or from a task file (``--file task.toml``, see ``fedchain init``).
    Refused by the contract while a round is open (FederationRoundInProgress); each call
    configures the next task version."""
    from dataclasses import replace

    from fedchain.protocol.task import publish_task
    from fedchain.sim.wiring import open_blob_store

    ctx = click.get_current_context()
    # Everything that can be wrong with the task is found before anything is stored or sent.
    model_source: bytes | None = None
    if task_file is not None:
        from fedchain.cli.task_file import build_task_file

        given = _task_args(ctx, exempt=TASK_FILE_EXEMPT)
        if given:
            flags = sorted({arg for arg in given if arg.startswith("--")})
            raise click.UsageError(f"--file {task_file} is the task: drop {', '.join(flags)} (or set them in the file)")
        built = build_task_file(task_file)
        doc, model_source = built.doc, built.model_source
        rewards_rule, reward_params, validation = built.rewards_rule, built.reward_params, built.validation
        proposal = f"configure-task OPTIONS (the task of {task_file}, as options)"
    else:
        rewards_config(rewards_rule, reward_params, None if validation is None else (Digest(bytes(32)), Cid("x")))
        privacy = privacy_request(dp, epsilon_budget, dp_delta, dp_clip, noise_multiplier, dp_sample_rate,
                                  dp_accountant, dp_min_clients)
        doc = task_document(dataset, arch, strategy, strategy_params, robust, local_epochs, batch_size, lr, seed,
                            min_updates, commit_duration, max_commit_duration, reveal_duration, privacy=privacy,
                            dp_rounds=dp_rounds,
                            secagg=secagg_config(secagg, secagg_clip, secagg_degree, secagg_max_summands, secagg_phase))
        signed = signed_commits_config(signed_commits, inbox, escape_duration)
        if signed is not None:
            doc = replace(doc, signed_commits=signed)
        proposal = "configure-task " + shlex.join(_task_args(ctx))
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id, keystore)
    ledger = role_ledger(settings, address)
    refuse_if_governed(settings, ledger, proposal)
    blobs = open_blob_store(settings)
    try:
        if model_source is not None:  # the custom model's source, under the CID its spec names
            source_cid = blobs.put(model_source)
            if source_cid != doc.spec().source_cid:
                raise IntegrityError(f"the model source was stored as {source_cid}, but the task's model spec names "
                                     f"{doc.spec().source_cid}")
        rewards = rewards_config(rewards_rule, reward_params, store_validation(blobs, validation))
        if rewards is not None:
            doc = replace(doc, rewards=rewards)
        cid, report = publish_task(ledger, blobs, doc)
    finally:
        getattr(blobs, "close", lambda: None)()
    config = ledger.task()
    if config is None or config.config_cid != cid:
        raise ChainError(f"configureTask (tx {report.tx_hash}) succeeded but the chain does not record task document {cid}")
    emit(as_json, {"task": config, "tx": report}, lambda: "\n".join([
        f"task v{config.version}: {doc.dataset}, {doc.strategy_config().name} (tx {report.tx_hash}, gas {report.gas_used})",
        f"  config_cid: {cid}",
        f"  model_spec_digest: 0x{bytes(config.model_spec_digest).hex()}",
        f"  strategy_digest: 0x{bytes(config.strategy_digest).hex()}",
        f"  data_schema_digest: 0x{bytes(config.data_schema_digest).hex()}",
        *([] if doc.privacy is None else [
            f"  privacy: {doc.privacy.mechanism}, epsilon budget {doc.privacy.epsilon_budget:g} per participant "
            f"(delta {doc.privacy.delta:g}), noise multiplier {doc.privacy.noise_multiplier:.4f}, clip "
            f"{doc.privacy.clip:g}, sampling rate {doc.privacy.sample_rate:g}, accountant {doc.privacy.accountant}",
            f"  privacy_policy_digest: 0x{bytes(config.privacy_policy_digest).hex()}",
        ]),
        *([] if doc.secagg is None else [
            f"  secure aggregation: clip {doc.secagg.clip:g}, up to {doc.secagg.max_summands} summands, "
            f"advertise {doc.secagg.advertise_duration} s, unmask {doc.secagg.unmask_duration} s",
        ]),
    ]))


def _task_args(ctx: click.Context, exempt: frozenset[str] = TASK_FILE_EXEMPT) -> list[str]:
    """The task options given on this command line, as they would be passed again (not those in ``exempt``)."""
    names = {p.name: p for p in ctx.command.params}
    args: list[str] = []
    for name, value in ctx.params.items():
        param = names.get(name)
        if not isinstance(param, click.Option) or name in exempt:
            continue
        if ctx.get_parameter_source(name) != click.core.ParameterSource.COMMANDLINE:
            continue
        flag = max(param.opts, key=len)
        for item in value if param.multiple else (value,):
            args += [flag, str(item)]
    return args

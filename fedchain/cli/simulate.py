"""``fedchain simulate``: a whole federation end to end, then the audit."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from fedchain.cli.options import (
    emit,
    ipfs_api_option,
    json_option,
    privacy_options,
    privacy_request,
    rpc_url_option,
    secagg_config,
    secagg_options,
    settings_from,
    signed_commit_options,
    signed_commits_config,
    state_dir_option,
    store_option,
    task_options,
)
from fedchain.errors import ExitCode


@click.command()
@task_options
@privacy_options
@secagg_options
@click.option("--dropout", type=click.FloatRange(0.0, 1.0, max_open=True), default=0.0, show_default=True,
              help="With --secagg: each participant drops out of each round with this probability, at a random stage "
                   "(before advertising, after advertising, after committing); the round recovers from the shares.")
@click.option("--partition", default="iid", show_default=True, help="iid, dirichlet, quantity or industry.")
@click.option("--alpha", type=float, default=0.5, show_default=True, help="Dirichlet concentration (dirichlet, quantity).")
@click.option("--clients", type=int, default=4, show_default=True)
@click.option("--rounds", type=int, default=3, show_default=True)
@click.option("--min-updates", type=int, default=None, help="Minimum updates per round [default: half the clients].")
@click.option("--max-train-samples", type=int, default=None, help="Use a seeded subset of the training set (e.g. for MNIST).")
@click.option("--max-test-samples", type=int, default=None, help="Evaluate on a seeded subset of the test set.")
@click.option("--attack", "attacks", multiple=True, metavar="KIND:COUNT[:STRENGTH]",
              help="COUNT malicious participants (sign_flip, scaling, noise, label_flip or backdoor), optionally with a "
                   "strength: KIND:COUNT:STRENGTH (a factor, a sigma or a target class). Repeatable.")
@click.option("--dishonest-aggregator", type=click.Choice(["drop-update", "shift-model"]), default=None,
              help="Make the aggregator cheat; the audit must catch it.")
@click.option("--governance", is_flag=True,
              help="A consortium governs the run: the participants but the last are founding members of a Governor + "
                   "timelock deployment; the last is voted in after round 1, the learning rate is changed by vote after "
                   "round 2, and members attest every round (a negative attestation leads to a dispute).")
@click.option("--verification-quorum", type=click.IntRange(0, 100), default=50, show_default=True,
              help="With --governance: the percentage of a round's included participants that must attest it before "
                   "the next round opens (0: no live verification).")
@click.option("--rewards", "rewards_rule", type=click.Choice(["samples", "loo", "shapley"]), default=None,
              help="Pay each round's reward budget by this contribution rule, scored on the held-out split as the "
                   "consortium's validation set (implies --governance: deposits at registration, the budget and the pool "
                   "voted in the genesis proposal, a participant whose update a round rejects slashed by vote, every "
                   "participant claiming what it is owed).")
@click.option("--reward-budget", type=click.IntRange(1), default=1_000_000, show_default=True,
              help="With --rewards: reward token base units per round.")
@click.option("--participants-per-process", type=int, default=1, show_default=True,
              help="Run this many participant agents per OS process (`fedchain participant host`, each agent in its "
                   "own thread with its own key, data, chain connection and store client); 1: a `participant run` "
                   "process each.")
@signed_commit_options
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Where to write report.json, audit.json, audit.html and plots [default: a new temporary directory].")
@click.option("--keep-services", is_flag=True, help="Leave a devnet / IPFS node started here running afterwards.")
@click.option("--devnet", "devnet_kind", type=click.Choice(["managed", "ephemeral"]), default="managed",
              show_default=True,
              help="Without --rpc-url: managed (the state directory's devnet, which writes its chain to disk before "
                   "every answer and can be resumed afterwards) or ephemeral (a fresh chain of this run's own, never "
                   "written to disk, gone when the command ends: a throwaway simulation without the cost of "
                   "persistence).")
@state_dir_option
@rpc_url_option
@ipfs_api_option
@store_option
@json_option
def simulate(dataset: str, partition: str, alpha: float, strategy: str, strategy_params: tuple[str, ...], robust: str | None,
             arch: str | None, clients: int, rounds: int, local_epochs: int, batch_size: int, lr: float, seed: int,
             min_updates: int | None, commit_duration: int, max_commit_duration: int, reveal_duration: int,
             max_train_samples: int | None,
             max_test_samples: int | None,
             attacks: tuple[str, ...], dishonest_aggregator: str | None, governance: bool, verification_quorum: int,
             rewards_rule: str | None, reward_budget: int,
             dp: str | None, epsilon_budget: float | None, dp_delta: float, dp_clip: float,
             noise_multiplier: float | None, dp_sample_rate: float | None, dp_accountant: str, dp_min_clients: int | None,
             secagg: bool, secagg_clip: float, secagg_degree: int | None, secagg_max_summands: int, secagg_phase: int,
             dropout: float, participants_per_process: int, signed_commits: bool, inbox: str | None,
             escape_duration: int, out_dir: Path | None, keep_services: bool, devnet_kind: str,
             state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None, as_json: bool) -> None:
    """Run a whole federation end to end - devnet, IPFS, deployment, keystores, participants as separate
    processes, aggregator, R rounds - then audit it. Exit 0 when the audit is clean, 52 when its
    only findings are participant misconduct the aggregator handled, 51 otherwise."""
    import torch

    from fedchain.sim.config import ExperimentConfig, parse_attack, parse_robust, parse_strategy_params
    from fedchain.sim.federation import run_federation

    torch.set_num_threads(1)
    if devnet_kind == "ephemeral" and (keep_services or rpc_url):
        raise click.UsageError("--devnet ephemeral is a fresh chain of this run's own: not with --keep-services "
                               "or --rpc-url")
    if dropout and not secagg:
        raise click.UsageError("--dropout needs --secagg (participants drop out of secure-aggregation rounds)")
    privacy = privacy_request(dp, epsilon_budget, dp_delta, dp_clip, noise_multiplier, dp_sample_rate, dp_accountant,
                              dp_min_clients)
    cfg = ExperimentConfig(
        dataset=dataset, partition=partition, alpha=alpha, strategy=strategy,
        strategy_params=parse_strategy_params(strategy_params), robust=parse_robust(robust), arch=arch, clients=clients,
        rounds=rounds, local_epochs=local_epochs, batch_size=batch_size, lr=lr, seed=seed, min_updates=min_updates,
        commit_duration=commit_duration, max_commit_duration=max_commit_duration, reveal_duration=reveal_duration,
        attacks=tuple(parse_attack(a) for a in attacks), dishonest=dishonest_aggregator,
        max_train_samples=max_train_samples, max_test_samples=max_test_samples,
        governance=governance or rewards_rule is not None, verification_quorum=verification_quorum,
        rewards=rewards_rule, reward_budget=reward_budget, privacy=privacy,
        secagg=secagg_config(secagg, secagg_clip, secagg_degree, secagg_max_summands, secagg_phase), dropout=dropout,
        participants_per_process=participants_per_process,
        signed_commits=signed_commits_config(signed_commits, inbox, escape_duration, loopback_default=True),
    )
    settings = settings_from(state_dir=state_dir, rpc_url=rpc_url, ipfs_api=ipfs_api, store=store)
    out = out_dir if out_dir is not None else Path(tempfile.mkdtemp(prefix="fedchain-sim-"))
    result = run_federation(cfg, settings, out, progress=True, keep_services=keep_services,
                            ephemeral_devnet=devnet_kind == "ephemeral")

    def human() -> str:
        lines = [f"{cfg.clients} participants, {cfg.rounds} rounds of {cfg.strategy} on {cfg.dataset} "
                 f"(contract {result.contract}, {result.store})"]
        for r in result.rounds:
            acc = (f"accuracy {r.accuracy:.4f}, loss {r.loss:.4f}" if r.accuracy is not None and r.loss is not None
                   else f"closed: {r.close_reason}")
            lines.append(f"  round {r.round_id}: {len(r.included)}/{r.commit_count} included, {len(r.rejected)} rejected, {acc}")
        sa = result.secagg_json()
        if sa is not None:
            lines.append(f"  secure aggregation: clip {sa['clip']:g}, dropout {sa['dropout']:g}; unmasked per round: "
                         + ", ".join(f"r{x['round']} {x['survivors']} in, {x['dropped']} dropped" for x in sa["rounds"]
                                     if x["survivors"] is not None))
        if result.privacy is not None:
            dp = result.privacy
            lines.append(f"  privacy: {dp.mechanism}, budget epsilon {dp.epsilon_budget:g} (delta {dp.delta:g}), noise "
                         f"multiplier {dp.noise_multiplier:.4f}, clip {dp.clip:g}")
            lines += [f"    {s.participant}: epsilon {s.epsilon:.4f} spent of {dp.epsilon_budget:g}"
                      + ("" if s.stopped is None else f" (stopped: {s.stopped})") for s in dp.participants]
        lines.append("  gas: " + ", ".join(f"{k} {v['mean']}" for k, v in result.gas.to_json().items()))
        audit = result.audit
        lines.append(f"  wall time {result.wall_time_s:.1f} s; audit {audit.wall_time_s:.2f} s: "
                     + ("clean" if not audit.findings else f"{len(audit.findings)} finding(s), verdict {audit.verdict.value}"))
        lines += [f"    round {f.round} {f.participant or '-'} {f.kind.value}: {f.detail}" for f in audit.findings]
        if result.governance is not None:
            for p in result.governance.executed:
                lines.append(f"  proposal after round {p.after_round} executed ({p.votes_for} for): {p.description}")
            for d in result.governance.disputed:
                lines.append(f"  round {d.round_id} disputed ({d.negative_attestations} negative attestation(s)); "
                             f"aggregator role handed to {d.new_aggregator}")
        lines.append(f"  report: {out / 'report.json'}, {out / 'audit.html'}")
        return "\n".join(lines)

    emit(as_json, result.to_json(), human)
    code = result.audit.exit_code
    if code != ExitCode.OK:
        click.get_current_context().exit(int(code))

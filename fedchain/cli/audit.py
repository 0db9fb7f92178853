"""``fedchain audit``: replay the ledger and the blob store and verify every round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fedchain.audit.report import DEFAULT_GAS_PRICE_GWEI
from fedchain.cli.options import emit, json_option, role_options, role_settings
from fedchain.errors import ExitCode
from fedchain.sim.wiring import governance_records


def governance_lines(g: Any) -> list[str]:
    """The governance section of an audit report, for people."""
    who = {"governed": f"governed: governor {g.governor}, timelock {g.timelock}",
           "eoa": "no governance: the admin is an EOA",
           "unchecked": "governance not checked (no deployment record for this contract)"}.get(g.mode, g.mode)
    lines = [f"governance: {who}"]
    for a in g.admin_actions:
        if a.proposal_id is not None:
            lines.append(f"  block {a.block_number}: {a.detail} by proposal {a.proposal_id} ({a.votes_for} for, "
                         f"{a.votes_against} against, {a.votes_abstain} abstain; quorum {a.quorum}; executed at block "
                         f"{a.execution_block})")
        else:
            lines.append(f"  block {a.block_number}: {a.detail} by {a.actor} ({a.verdict})")
    for d in g.disputes:
        fallback = f"fell back to {d.fallback_model_digest}" if d.fallback_model_digest else "current model unchanged"
        lines.append(f"  round {d.round} disputed at block {d.block_number}, accusing {d.accused}: {fallback}; "
                     f"findings {d.findings_cid} {d.findings_check}")
    for t in g.attestations:
        if t.policy:
            lines.append(f"  round {t.round}: {t.ok} of {t.required} attestations ({t.negative} negative; policy "
                         f"{t.policy}%)")
    for c in g.contests:
        lines.append(f"  round {c.round}: {c.participant} contested its exclusion: {c.verdict}")
    if g.built_on_disputed:
        lines.append(f"  rounds built on a disputed model: {', '.join(map(str, g.built_on_disputed))}")
    return lines


def _auditor(settings: Any, address: str | None, fetch_deadline_s: float) -> Any:
    from fedchain.audit.replay import Auditor
    from fedchain.chain.federation import read_deployment
    from fedchain.errors import DeploymentNotFoundError
    from fedchain.sim.wiring import connect_ledger, gas_lookup, open_blob_store

    ledger = connect_ledger(settings, address=address)
    try:
        deployment = read_deployment(settings.state_dir, ledger.conn.chain_id)
    except DeploymentNotFoundError:
        deployment = None
    records = None  # a contract given by --address that the state dir does not record: admin actions unchecked
    if deployment is not None and deployment.address.lower() == ledger.contract.address.lower():
        records = governance_records(ledger.conn, deployment)
    return Auditor(ledger, open_blob_store(settings), gas_of=gas_lookup(ledger),
                   contract=ledger.contract.address, chain_id=ledger.conn.chain_id, fetch_deadline_s=fetch_deadline_s,
                   governance=records)


@click.group(invoke_without_command=True)
@click.option("--round", "round_id", type=int, default=None, help="Audit only this round.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a human-readable HTML report here.")
@click.option("--fetch-deadline", "fetch_deadline_s", type=click.FloatRange(min=0, min_open=True), default=120.0,
              show_default=True, help="Seconds to wait for one round's blobs, all fetched at once; a blob not "
              "fetched by then counts as unavailable.")
@click.option("--gas-price-gwei", "gas_price_gwei", type=click.FloatRange(min=0), default=None,
              help="State the report's gas costs at this gas price in gwei (default: "
              f"{DEFAULT_GAS_PRICE_GWEI} gwei, said so in the report).")
@role_options
@json_option
@click.pass_context
def audit(ctx: click.Context, round_id: int | None, html_path: Path | None, fetch_deadline_s: float,
          gas_price_gwei: float | None, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
          store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Replay every round from chain events and the blob store.

    Each finding names the party responsible (aggregator, participant ADDRESS, infrastructure,
    governance) and a severity (error, handled, warning). The governance section checks every
    admin action against the executed proposal (votes, quorum, execution block) behind it, the
    roles held by accounts ("admin is an EOA" on a deployment without governance), the members'
    attestations under a verification policy, disputes and their outcome, rounds built on a
    disputed model and exclusion contests. Exit 0 when clean (warnings only),
    51 (AUDIT_FINDINGS) when any finding is an error, 52 (AUDIT_PARTICIPANT_MISCONDUCT) when the
    only findings are participant misconduct the aggregator handled (an update it correctly left
    out).
    """
    ctx.obj = {"settings": (state_dir, rpc_url, ipfs_api, store, chain_id), "address": address}
    if ctx.invoked_subcommand is not None:
        return
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    report = _auditor(settings, address, fetch_deadline_s).audit(round_id).with_context(
        gas_price_gwei=None if gas_price_gwei is None else str(gas_price_gwei))
    if html_path is not None:
        from fedchain.audit.html import write_html

        write_html(report, html_path)

    def human() -> str:
        verdict = {"clean": "clean", "participant_misconduct": "participant misconduct, handled by the aggregator",
                   "findings": "findings"}[report.verdict.value]
        lines = [f"audited rounds {', '.join(map(str, report.rounds_checked)) or '(none)'} of {report.contract}: "
                 + (verdict if not report.findings else f"{verdict}, {len(report.findings)} finding(s)")]
        for f in report.findings:
            who = f.responsible.value + (f" {f.responsible_address}" if f.responsible_address else "")
            lines.append(f"  round {f.round or '-'} [{f.severity.value}; {who}] {f.kind.value}"
                         f"{' (' + f.participant + ')' if f.participant and f.participant != f.responsible_address else ''}"
                         f": {f.detail}")
        if report.governance is not None:
            lines += governance_lines(report.governance)
        if report.privacy is not None:
            lines += report.privacy.lines()
        return "\n".join(lines)

    emit(as_json, report.to_json(), human)
    if report.exit_code != ExitCode.OK:
        ctx.exit(int(report.exit_code))


@audit.command()
@click.argument("model")
@role_options
@json_option
def provenance(model: str, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
               address: str | None, chain_id: int | None, as_json: bool) -> None:
    """List the rounds, participants and updates behind MODEL (a model digest or CID)."""
    from fedchain.audit.provenance import provenance as trace
    from fedchain.sim.wiring import connect_ledger, open_blob_store

    parent = click.get_current_context().parent
    inherited = parent.obj if parent is not None and parent.obj else {}
    base = inherited.get("settings", (None,) * 5)
    settings = role_settings(state_dir or base[0], rpc_url or base[1], ipfs_api or base[2], store or base[3], chain_id or base[4])
    ledger = connect_ledger(settings, address=address or inherited.get("address"))
    steps = trace(ledger, open_blob_store(settings), model)

    def human() -> str:
        lines = []
        for s in steps:
            lines.append(f"round {s.round}: model {s.model_digest} ({s.model_cid}) from base {s.base_model_digest}")
            lines += [f"  {u['participant']} {u['organisation']} {u['cid']} ({u['num_samples']} samples)" for u in s.updates]
            lines += [f"  rejected {r['participant']} by {r['rule']}: {r['reason']}" for r in s.rejected]
        return "\n".join(lines)

    emit(as_json, {"model": model, "rounds": [s.to_json() for s in steps]}, human)

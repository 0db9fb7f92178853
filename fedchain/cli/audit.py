"""``fedchain audit``: replay the ledger and the blob store and verify every round."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from fedchain.cli.options import emit, json_option, role_options, role_settings
from fedchain.errors import ExitCode


def _auditor(settings: Any, address: str | None, fetch_deadline_s: float) -> Any:
    from fedchain.audit.replay import Auditor
    from fedchain.sim.wiring import connect_ledger, gas_lookup, open_blob_store

    ledger = connect_ledger(settings, address=address)
    return Auditor(ledger, open_blob_store(settings), gas_of=gas_lookup(ledger),
                   contract=ledger.contract.address, chain_id=ledger.conn.chain_id, fetch_deadline_s=fetch_deadline_s)


@click.group(invoke_without_command=True)
@click.option("--round", "round_id", type=int, default=None, help="Audit only this round.")
@click.option("--html", "html_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write a human-readable HTML report here.")
@click.option("--fetch-deadline", "fetch_deadline_s", type=click.FloatRange(min=0, min_open=True), default=120.0,
              show_default=True, help="Seconds to wait for one round's blobs, all fetched at once; a blob not "
              "fetched by then counts as unavailable.")
@role_options
@json_option
@click.pass_context
def audit(ctx: click.Context, round_id: int | None, html_path: Path | None, fetch_deadline_s: float,
          state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None,
          chain_id: int | None, as_json: bool) -> None:
    """Replay every round from chain events and the blob store.

    Each finding names the party responsible (aggregator, participant ADDRESS, infrastructure,
    governance) and a severity (error, handled, warning). Exit 0 when clean (warnings only),
    51 (AUDIT_FINDINGS) when any finding is an error, 52 (AUDIT_PARTICIPANT_MISCONDUCT) when the
    only findings are participant misconduct the aggregator handled (an update it correctly left
    out).
    """
    ctx.obj = {"settings": (state_dir, rpc_url, ipfs_api, store, chain_id), "address": address}
    if ctx.invoked_subcommand is not None:
        return
    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    report = _auditor(settings, address, fetch_deadline_s).audit(round_id)
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

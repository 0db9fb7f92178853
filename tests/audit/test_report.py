"""The audit report an auditor signs, in its JSON and HTML: metadata, the task, the timeline, each round's
contributions with rejection reasons, full digests, CIDs and transactions, gas at a stated price, and the
global model's evaluation; on a two-round federation on the devnet whose second round rejected a junk blob."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from markupsafe import escape

from fedchain import __version__
from fedchain.audit.report import gas_price_wei
from fedchain.cli.main import cli
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ConfigError, ExitCode
from fedchain.storage.local import LocalStore
from tests.protocol.harness import Fed, make_fed, make_task_files
from tests.trained_federation import chain_snapshot

JUNK = b"not a fedchain blob at all"
HEX = re.compile(r"^0x[0-9a-f]{64}$")
TX = re.compile(r"^0x[0-9a-f]{64}$")


@dataclass
class Reported:
    fed: Fed
    store: LocalStore
    state_dir: Path
    junk: str  # the participant whose round-2 commitment is a junk blob (rejected: blob_format)

    def role_args(self) -> list[str]:
        """The connection options of a CLI command reading this federation."""
        return ["--state-dir", str(self.state_dir), "--store", "local", "--rpc-url", self.fed.env.url,
                "--address", self.fed.env.deployment.address]

    def auditor(self) -> Any:
        """An auditor of this federation that looks up gas, as ``fedchain audit`` does."""
        from fedchain.audit.replay import Auditor
        from fedchain.sim.wiring import gas_lookup

        env = self.fed.env
        return Auditor(self.fed.reader, self.store, gas_of=gas_lookup(self.fed.reader),
                       contract=env.deployment.address, chain_id=env.conn.chain_id)


def build_reported(devnet_env: Any, work: Path) -> Iterator[Reported]:
    """Round 1 honest; in round 2 the third participant commits a blob that is no update (handled misconduct)."""
    state_dir = work / "state"
    store = LocalStore(state_dir / "blobs")
    with chain_snapshot(devnet_env):
        fed = make_fed(devnet_env, store, make_task_files(work, rounds=2), work / "agents")
        assert fed.run_round().finalized
        rid = fed.open_round()
        for p in fed.participants[:2]:
            p.submit(rid)
        bad = fed.participants[2]
        bad.ledger.commit_update(rid, sha256_digest(JUNK), store.put(JUNK), fed.clients[2].num_samples, b"\x07" * 32)
        assert fed.aggregator.finalize(rid).finalized
        yield Reported(fed, store, state_dir, bad.address)


@pytest.fixture(scope="module", name="reported")
def reported_fixture(devnet_env: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Reported]:
    yield from build_reported(devnet_env, tmp_path_factory.mktemp("reported"))


@pytest.fixture(scope="module", name="audited")
def audited_fixture(reported: Reported, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    """``fedchain audit --json --html --gas-price-gwei 2.5``: its JSON document and its HTML."""
    html = tmp_path_factory.mktemp("audited") / "audit.html"
    result = CliRunner().invoke(cli, ["audit", *reported.role_args(), "--json", "--html", str(html),
                                      "--gas-price-gwei", "2.5"])
    assert result.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT, result.output
    return json.loads(result.stdout), html.read_text(encoding="utf-8")


def test_metadata_names_version_chain_contract_blocks_endpoints_and_time(reported: Reported, audited) -> None:
    doc, html = audited
    meta = doc["meta"]
    assert meta["fedchain_version"] == __version__
    assert meta["chain_id"] == reported.fed.env.conn.chain_id
    assert meta["contract"] == reported.fed.env.deployment.address
    assert meta["from_block"] == 0 and meta["to_block"] >= max(e["block"] for e in doc["timeline"])
    assert meta["rpc_url"] == reported.fed.env.url
    assert meta["store"] == f"local {reported.state_dir / 'blobs'}"
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00$", meta["generated_at"])
    assert meta["gas_price_gwei"] == "2.5" and meta["gas_price_stated"] is True and meta["gas_price_wei"] == 2_500_000_000
    assert reported.fed.env.url in html and meta["generated_at"] in html and __version__ in html


def test_task_section_decodes_dataset_strategy_rules_min_updates_and_model(reported: Reported, audited) -> None:
    doc, html = audited
    (task,) = doc["tasks"]
    assert task["config_cid"] == reported.fed.task_cid and task["configured_by"] == reported.fed.env.accounts.admin.address
    assert all(HEX.match(task[k]) for k in ("model_spec_digest", "strategy_digest", "data_schema_digest"))
    assert TX.match(task["tx_hash"])
    d = task["document"]
    spec = reported.fed.doc
    assert d["dataset"] == "breast_cancer" and d["min_updates"] == spec.min_updates == 2
    assert d["strategy"] == spec.strategy_config().name == "fedavg"
    assert d["robust"] == spec.to_json()["strategy"]["robust"] and d["robust"][0]["name"] == "norm_clip"
    assert d["strategy_params"]["lr"] == spec.strategy_config().params["lr"]
    assert d["schema_features"] == 30
    assert d["model"]["arch"] == spec.spec().arch
    assert d["privacy"] is None and d["secagg"] is None
    assert f"<code>{task['config_cid']}</code>" in html and "Min updates" in html and "norm_clip max_norm=100.0" in html


def test_timeline_lists_registrations_admissions_and_round_events_with_blocks(reported: Reported, audited) -> None:
    doc, _ = audited
    events = [(e["event"], e["participant"], e["round"]) for e in doc["timeline"]]
    addresses = {p.address for p in reported.fed.participants}
    assert {p for e, p, _ in events if e == "registered"} == addresses
    assert {p for e, p, _ in events if e == "admitted"} == addresses
    assert [r for e, _, r in events if e == "round_opened"] == [1, 2]
    assert [r for e, _, r in events if e == "round_finalized"] == [1, 2]
    assert "task_configured" in [e for e, _, _ in events]
    blocks = [(e["block"], e["log_index"]) for e in doc["timeline"]]
    assert blocks == sorted(blocks)
    assert all(TX.match(e["tx_hash"]) and e["gas"] > 0 for e in doc["timeline"])
    admitted = next(e for e in doc["timeline"] if e["event"] == "admitted")
    assert admitted["actor"] == reported.fed.env.accounts.admin.address and "approved" in admitted["detail"]


def test_contributions_give_samples_weights_norms_and_the_rejection_reason(reported: Reported, audited) -> None:
    doc, html = audited
    second = doc["rounds"][1]
    by = {c["participant"]: c for c in second["contributions"]}
    junk = by[reported.junk]
    assert junk["status"] == "rejected" and junk["rule"] == "blob_format" and junk["reason"]
    assert junk["update_norm"] is None and junk["weight"] is None
    assert junk["cid"] == reported.store.put(JUNK) and TX.match(junk["tx_hash"])
    honest = [c for c in second["contributions"] if c["status"] == "included"]
    assert len(honest) == 2 and all(c["update_norm"] > 0 for c in honest)
    assert sum(c["weight"] for c in honest) == pytest.approx(1.0)
    assert {c["samples"] for c in honest} == {cl.num_samples for cl in reported.fed.clients[:2]}
    rejected = second["rejected"][0]
    assert rejected["reason"] == junk["reason"] and f"{rejected['rule']}</b>: {escape(rejected['reason'])}" in html
    totals = {c["participant"]: c for c in doc["contributions"]}
    assert (totals[reported.junk]["committed"], totals[reported.junk]["included"], totals[reported.junk]["rejected"]) \
        == (2, 1, 1)
    assert totals[reported.junk]["rejections"] == [{"round": 2, "rule": "blob_format", "reason": junk["reason"]}]
    assert all(totals[p.address]["included"] == 2 for p in reported.fed.participants[:2])


def test_rounds_carry_full_digests_cids_merkle_roots_evidence_and_transactions(reported: Reported, audited) -> None:
    doc, html = audited
    for r in doc["rounds"]:
        fin = reported.fed.reader.round(r["round"])
        chain = r["chain"]
        assert HEX.match(r["model_digest"]) and HEX.match(chain["merkle_root"]) and HEX.match(chain["evidence_digest"])
        assert chain["merkle_root"] == "0x" + bytes(fin.merkle_root).hex()
        assert TX.match(chain["open_tx"]) and TX.match(chain["end_tx"]) and chain["end_block"] >= chain["open_block"]
        assert chain["ended_by"] == reported.fed.env.accounts.aggregator.address
        for value in (r["model_digest"], r["model_cid"], chain["merkle_root"], chain["evidence_digest"],
                      chain["evidence_cid"], chain["open_tx"], chain["end_tx"]):
            assert f"<code>{value}</code>" in html


@pytest.mark.parametrize("field", ["model_digest", "model_cid"])
def test_provenance_accepts_the_model_digest_and_cid_the_report_shows(reported: Reported, audited, field: str) -> None:
    doc, html = audited
    for r in doc["rounds"]:
        shown = r[field]
        assert f"<code>{shown}</code>" in html
        result = CliRunner().invoke(cli, ["audit", "provenance", shown, *reported.role_args(), "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["rounds"][0]["round"] == r["round"]


def test_gas_totals_and_their_cost_at_the_stated_price(audited) -> None:
    doc, html = audited
    gas = doc["gas"]
    assert gas["total"] == sum(gas["by_kind"].values()) > 0
    assert gas["by_kind"]["commits"] == sum(r["gas"]["commit_total"] for r in doc["rounds"])
    assert gas["by_kind"]["registered"] == sum(e["gas"] for e in doc["timeline"] if e["event"] == "registered")
    assert gas["cost_wei"] == gas["total"] * 2_500_000_000 and gas["price_gwei"] == "2.5"
    assert gas["cost_eth"] == format(gas["cost_wei"] / 10**18, ".18f").rstrip("0").rstrip(".")
    assert "Costs at 2.5 gwei per gas" in html and gas["cost_eth"] in html


def test_default_gas_price_is_stated_as_the_default(reported: Reported) -> None:
    result = CliRunner().invoke(cli, ["audit", *reported.role_args(), "--json"])
    meta = json.loads(result.stdout)["meta"]
    assert (meta["gas_price_gwei"], meta["gas_price_stated"]) == ("20", False)
    bad = CliRunner().invoke(cli, ["audit", *reported.role_args(), "--gas-price-gwei", "-1"])
    assert bad.exit_code == 2 and "gas-price-gwei" in bad.output
    with pytest.raises(ConfigError, match="gwei"):
        gas_price_wei("cheap")


def test_finding_rows_are_highlighted_and_attributed(reported: Reported, audited) -> None:
    _, html = audited
    rows = re.findall(r'<tr class="finding-handled">(.*?)</tr>', html, re.S)
    concerning = [row for row in rows if reported.junk in row and "blob_format" in row]
    assert len(concerning) >= 3  # the findings table, the participant's totals and its round-2 contribution
    assert sum("blob_format (handled; responsible: participant)" in row for row in concerning) >= 2
    honest = reported.fed.participants[0].address
    assert not any(honest in row and "finding" in row for row in rows if reported.junk not in row)


def test_evaluation_the_caller_passes_is_in_the_json_and_plotted(reported: Reported, tmp_path: Path) -> None:
    from fedchain.audit.html import evaluation_figure, plot_evaluation, render_html

    report = reported.auditor().audit().with_evaluation({1: (0.81, 0.52), 2: (0.86, 0.41)})
    assert report.to_json()["evaluation"] == [{"round": 1, "accuracy": 0.81, "loss": 0.52},
                                              {"round": 2, "accuracy": 0.86, "loss": 0.41}]
    page = render_html(report)
    assert 'alt="global model accuracy and loss"' in page and "0.8600" in page
    fig = evaluation_figure(report.evaluation)
    assert [(ax.get_xlabel(), ax.get_ylabel()) for ax in fig.axes] == [("round", "test accuracy"), ("", "test loss")]
    assert fig.axes[0].get_title() == "Global model on the test set"
    png = plot_evaluation(report.evaluation, tmp_path / "accuracy.png")
    assert png is not None and png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert plot_evaluation((), tmp_path / "none.png") is None and not (tmp_path / "none.png").exists()
    unevaluated = render_html(reported.auditor().audit())
    assert "Not evaluated" in unevaluated and "global model accuracy and loss" not in unevaluated


"""``fedchain audit`` and the role commands, in-process with CliRunner against the devnet and IPFS."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from fedchain.cli.main import cli
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import ExitCode
from fedchain.types import RoundId, digest_hex
from tests.protocol.harness import Fed, make_fed


def _conn_args(fed: Fed, ipfs_api: str) -> list[str]:
    return ["--rpc-url", fed.env.url, "--address", fed.env.deployment.address, "--ipfs-api", ipfs_api, "--store", "ipfs"]


def test_clean_audit_json_html_and_provenance(fed: Fed, ipfs_api_url: str, tmp_path: Path) -> None:
    fed.run_round()
    fed.run_round()
    runner = CliRunner()
    html = tmp_path / "audit.html"

    result = runner.invoke(cli, ["audit", *_conn_args(fed, ipfs_api_url), "--json", "--html", str(html)])

    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["findings"] == [] and doc["rounds_checked"] == [1, 2]
    assert "Clean" in html.read_text() and "<table>" in html.read_text()

    model = digest_hex(fed.outcomes[-1].model_digest or b"")
    prov = runner.invoke(cli, ["audit", "provenance", model, *_conn_args(fed, ipfs_api_url), "--json"])
    assert prov.exit_code == 0, prov.output
    steps = json.loads(prov.stdout)["rounds"]
    assert [s["round"] for s in steps] == [2, 1]
    assert {u["participant"] for u in steps[0]["updates"]} == {p.address for p in fed.participants}


def test_audit_with_findings_exits_with_the_audit_findings_code(chain_env, ipfs_store, ipfs_api_url: str, task_files,
                                                                tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    fed.run_round()
    fed.aggregator.dishonest = None
    fed.run_round()

    result = CliRunner().invoke(cli, ["audit", *_conn_args(fed, ipfs_api_url), "--json", "--round", "1"])

    assert result.exit_code == ExitCode.AUDIT_FINDINGS
    doc = json.loads(result.stdout)
    assert doc["ok"] is False and doc["rounds_checked"] == [1]
    assert {f["kind"] for f in doc["findings"]} == {"model_mismatch"}
    assert {(f["responsible"], f["responsible_address"]) for f in doc["findings"]} == {
        ("aggregator", fed.env.accounts.aggregator.address)
    }
    assert doc["verdict"] == "findings" and doc["responsible"] == {f"aggregator {fed.env.accounts.aggregator.address}": 1}
    # round 2 started from the model the chain recorded and aggregated honestly
    second = CliRunner().invoke(cli, ["audit", *_conn_args(fed, ipfs_api_url), "--json", "--round", "2"])
    assert second.exit_code == 0 and json.loads(second.stdout)["rounds_checked"] == [2]
    full = CliRunner().invoke(cli, ["audit", *_conn_args(fed, ipfs_api_url), "--json"])
    assert {(f["round"], f["kind"]) for f in json.loads(full.stdout)["findings"]} == {(1, "model_mismatch")}


def test_round_commands_and_participant_submit(fed: Fed, ipfs_api_url: str, tmp_path: Path, monkeypatch) -> None:
    runner = CliRunner()
    args = _conn_args(fed, ipfs_api_url)
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + bytes(fed.env.accounts.aggregator.key).hex())
    opened = runner.invoke(cli, ["round", "open", *args, "--json"])
    assert opened.exit_code == 0, opened.output
    rid = json.loads(opened.stdout)["round"]

    for i in range(len(fed.participants)):
        monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + bytes(fed.env.accounts.participants[i].key).hex())
        sub = runner.invoke(cli, ["participant", "submit", *args, "--data", str(fed.clients[i].path),
                                  "--work-dir", str(tmp_path / f"w{i}"), "--json"])
        assert sub.exit_code == 0, sub.output
        assert json.loads(sub.stdout)["already_committed"] is False

    status = runner.invoke(cli, ["round", "status", str(rid), *args, "--json"])
    assert json.loads(status.stdout)["round"]["commit_count"] == 3
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + bytes(fed.env.accounts.aggregator.key).hex())
    fin = runner.invoke(cli, ["round", "finalize", *args, "--json"])
    assert fin.exit_code == 0, fin.output
    assert json.loads(fin.stdout)["finalized"] is True
    assert fed.reader.round(RoundId(rid)).included_count == 3


def test_bad_connection_inputs_give_one_line_and_distinct_exit_codes(fed: Fed, ipfs_api_url: str, tmp_path: Path,
                                                                     monkeypatch) -> None:
    runner = CliRunner()
    rid = fed.open_round()
    monkeypatch.setenv("FEDCHAIN_PRIVATE_KEY", "0x" + bytes(fed.env.accounts.participants[0].key).hex())
    base = ["participant", "submit", "--data", str(fed.clients[0].path), "--work-dir", str(tmp_path / "w")]
    good = _conn_args(fed, ipfs_api_url)

    def run(*override: str) -> tuple[int, str]:
        args = list(good)
        for i in range(0, len(override), 2):
            if override[i] in args:
                args[args.index(override[i]) + 1] = override[i + 1]
            else:
                args += [override[i], override[i + 1]]
        r = runner.invoke(cli, base + args)
        # the agent's start-up progress lines ("participant [ 0.0 s] ...") come before the one error line
        return r.exit_code, "".join(line for line in r.stderr.splitlines(keepends=True)
                                    if not line.startswith("participant ["))

    code, err = run("--rpc-url", "http://127.0.0.1:9")
    assert code == ExitCode.RPC_UNAVAILABLE and "127.0.0.1:9" in err and err.count("\n") == 1
    code, err = run("--ipfs-api", "http://127.0.0.1:9")
    assert code == ExitCode.STORAGE_UNAVAILABLE and err.startswith("error: ")
    code, _ = run("--chain-id", "1")
    assert code == ExitCode.CHAIN_ID_MISMATCH
    code, _ = run("--address", fed.env.accounts.outsider.address)
    assert code == ExitCode.DEPLOYMENT_NOT_FOUND
    code, err = run("--state-dir", str(tmp_path / "empty"), "--address", "")
    assert code == ExitCode.DEPLOYMENT_NOT_FOUND, err
    other = tmp_path / "bad.npz"
    other.write_bytes(b"not a data file")
    r = runner.invoke(cli, ["participant", "submit", "--data", str(other), *good])
    assert r.exit_code == ExitCode.DATA_SCHEMA
    assert fed.reader.commitments(rid) == []


def test_handled_participant_misconduct_exits_52_and_the_reports_name_the_participant(fed: Fed, ipfs_api_url: str,
                                                                                     tmp_path: Path) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    junk = b"junk instead of an update"
    culprit = fed.participants[2]
    culprit.ledger.commit_update(rid, sha256_digest(junk + b"!"), fed.store.put(junk), fed.clients[2].num_samples,
                                 b"\x07" * 32)
    assert fed.aggregator.finalize(rid).finalized
    html = tmp_path / "audit.html"

    result = CliRunner().invoke(cli, ["audit", *_conn_args(fed, ipfs_api_url), "--json", "--html", str(html)])

    assert result.exit_code == ExitCode.AUDIT_PARTICIPANT_MISCONDUCT == 52, result.output
    doc = json.loads(result.stdout)
    assert doc["ok"] is True and doc["verdict"] == "participant_misconduct" and doc["exit_code"] == 52
    assert [(f["kind"], f["severity"], f["responsible"], f["responsible_address"]) for f in doc["findings"]] == [
        ("blob_digest_mismatch", "handled", "participant", culprit.address)
    ]
    page = html.read_text()
    assert "handled by the aggregator" in page and culprit.address in page and "<th>Responsible</th>" in page
    human = CliRunner().invoke(cli, ["audit", *_conn_args(fed, ipfs_api_url), "--fetch-deadline", "30"])
    assert human.exit_code == 52 and f"[handled; participant {culprit.address}] blob_digest_mismatch" in human.stdout


def test_audit_help_documents_the_exit_codes() -> None:
    result = CliRunner().invoke(cli, ["audit", "--help"])

    assert result.exit_code == 0
    text = " ".join(result.stdout.split())
    assert "Exit 0 when clean" in text and "51 (AUDIT_FINDINGS)" in text and "52 (AUDIT_PARTICIPANT_MISCONDUCT)" in text
    assert "--fetch-deadline" in text
    bad = CliRunner().invoke(cli, ["audit", "--fetch-deadline", "0"])
    assert bad.exit_code == ExitCode.USAGE and "--fetch-deadline" in bad.output

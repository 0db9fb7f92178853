"""The exit-code table (``fedchain --help-exit-codes``, the README's block), the codes' families, and the one JSON
error object a failing ``--json`` command prints on stdout."""

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from fedchain.cli import exit_codes
from fedchain.cli import main as cli_main
from fedchain.cli.options import ADDRESS, ADDRESS_OR_DEFAULT, emit, json_option
from fedchain.errors import (
    ConfigError,
    DevnetNotRunningError,
    ExitCode,
    IntegrityError,
    RpcUnavailableError,
    TaskNotConfiguredError,
)

README = Path(__file__).resolve().parents[2] / "README.md"


def _run(*args: str, **kwargs):
    return CliRunner().invoke(cli_main.cli, list(args), **kwargs)


def _only_json(text: str) -> dict:
    """The one JSON document ``text`` holds (json.loads refuses anything before or after it)."""
    return json.loads(text)


# --- the table -----------------------------------------------------------------------------------------
def test_every_exit_code_has_a_family_and_a_meaning() -> None:
    assert set(exit_codes.MEANINGS) == set(ExitCode)
    assert all(meaning.strip() for meaning in exit_codes.MEANINGS.values())
    assert [r.code for r in exit_codes.exit_code_rows()] == sorted(int(c) for c in ExitCode)


def test_help_exit_codes_prints_every_code_and_exits_0() -> None:
    result = _run("--help-exit-codes")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    for code in ExitCode:
        row = next((line for line in lines if line.split()[:2] == [str(int(code)), code.name]), None)
        assert row is not None, f"{code.name} is missing from --help-exit-codes"
        assert exit_codes.family_of(int(code)) in row.split()[2]
        assert exit_codes.MEANINGS[code] in row


@pytest.mark.parametrize("order", [("--help-exit-codes", "--json"), ("--json", "--help-exit-codes")])
def test_help_exit_codes_json_is_one_document(order: tuple[str, str]) -> None:
    result = _run(*order)
    assert result.exit_code == 0, result.output
    rows = _only_json(result.stdout)["exit_codes"]
    assert [r["code"] for r in rows] == sorted(int(c) for c in ExitCode)
    by_name = {r["name"]: r for r in rows}
    assert by_name["CONTRACT_REVERT"]["family"] == "chain"
    assert "ContractRevertError" in by_name["CONTRACT_REVERT"]["errors"]
    assert by_name["TASK_NOT_CONFIGURED"]["errors"] == ["TaskNotConfiguredError"]


def test_json_at_the_top_level_without_help_exit_codes_is_a_usage_error() -> None:
    result = _run("--json", "admin", "task")
    assert result.exit_code == ExitCode.USAGE
    assert "--json goes after the command" in result.stderr


def test_readme_table_is_the_enum_s() -> None:
    text = README.read_text(encoding="utf-8")
    assert text.count(exit_codes.START_MARKER) == 1 and text.count(exit_codes.END_MARKER) == 1
    assert exit_codes.sync_readme(text) == text, (
        "README.md's exit-code table drifted from fedchain.errors.ExitCode: run python -m fedchain.cli.exit_codes README.md")
    for code in ExitCode:
        assert f"| {int(code)} | `{code.name}` | {exit_codes.family_of(int(code))} |" in text


def test_regenerating_a_drifted_readme_restores_the_table(tmp_path: Path) -> None:
    text = README.read_text(encoding="utf-8")
    drifted = tmp_path / "README.md"
    drifted.write_text(text.replace("| 24 | `CONTRACT_REVERT` |", "| 24 | `SOMETHING_ELSE` |"), encoding="utf-8")
    assert exit_codes.main(["--check", str(drifted)]) == 1
    assert exit_codes.main([str(drifted)]) == 0
    assert drifted.read_text(encoding="utf-8") == text
    assert exit_codes.main(["--check", str(drifted)]) == 0


def test_a_readme_without_the_markers_is_refused() -> None:
    with pytest.raises(ConfigError, match="exit-codes:start"):
        exit_codes.sync_readme("# a README\n")


# --- codes in their families -------------------------------------------------------------------------
def test_moved_codes_sit_in_their_families() -> None:
    assert issubclass(TaskNotConfiguredError, ConfigError)
    assert TaskNotConfiguredError.exit_code == ExitCode.TASK_NOT_CONFIGURED
    assert exit_codes.family_of(int(ExitCode.TASK_NOT_CONFIGURED)) == "config"
    assert issubclass(DevnetNotRunningError, RpcUnavailableError)
    assert DevnetNotRunningError.exit_code == ExitCode.RPC_UNAVAILABLE
    assert exit_codes.family_of(int(ExitCode.RPC_UNAVAILABLE)) == "chain"
    assert exit_codes.family_of(int(ExitCode.SECAGG)) == "secagg"
    assert exit_codes.family_of(int(ExitCode.INTERRUPTED)) == "interrupted"


def test_no_devnet_running_is_a_connection_error_with_one_json_object(tmp_path: Path) -> None:
    result = _run("admin", "task", "--state-dir", str(tmp_path), "--json")
    assert result.exit_code == ExitCode.RPC_UNAVAILABLE, result.output
    error = _only_json(result.stdout)["error"]
    assert error == {"code": 21, "kind": "rpc_unavailable", "type": "DevnetNotRunningError",
                     "message": f"no devnet is running for {tmp_path}: run `fedchain devnet start` or pass --rpc-url"}
    assert result.stderr.strip() == f"error: {error['message']}"


@pytest.mark.parametrize("args", [
    ("admin", "admit", "0xnothex"),
    ("admin", "remove", "0x12", "--reason", "x"),
    ("participant", "status", "0x" + "g" * 40),
    ("admin", "members", "--address", "0xnothex"),
    ("devnet", "deploy", "--aggregator", "nordbank"),
])
def test_a_malformed_address_on_the_command_line_is_a_usage_error(args: tuple[str, ...], tmp_path: Path) -> None:
    result = _run(*args, "--state-dir", str(tmp_path))
    assert result.exit_code == ExitCode.USAGE, result.output
    assert "not an address" in result.stderr
    assert result.stdout == ""


def test_an_address_is_checksummed_and_a_bad_checksum_refused() -> None:
    lower = "0x5aaeb6053f3e94c9b9a09f33669435e7ef1beaed"
    assert ADDRESS.convert(lower, None, None) == "0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed"
    with pytest.raises(click.BadParameter, match="not an address"):
        ADDRESS.convert("0x5AAeb6053F3E94C9b9A09f33669435E7Ef1BeAed", None, None)  # mixed case, wrong checksum
    with pytest.raises(click.BadParameter, match="not an address"):
        ADDRESS.convert("", None, None)
    assert ADDRESS_OR_DEFAULT.convert("", None, None) is None  # --address "": the recorded deployment


@pytest.mark.parametrize("order", ["json-last", "json-first"])
def test_a_usage_error_with_json_prints_the_usage_object(order: str, tmp_path: Path) -> None:
    args = ["admin", "admit", "0xnothex", "--state-dir", str(tmp_path)]
    args = [*args, "--json"] if order == "json-last" else ["admin", "admit", "--json", *args[2:]]
    result = _run(*args)
    assert result.exit_code == ExitCode.USAGE, result.output
    error = _only_json(result.stdout)["error"]
    assert (error["code"], error["kind"], error["type"]) == (2, "usage", "BadParameter")
    assert "Invalid value for 'PARTICIPANT': not an address: '0xnothex'" in error["message"]
    assert "Error: Invalid value for 'PARTICIPANT'" in result.stderr


def test_an_unknown_option_with_json_prints_the_usage_object(tmp_path: Path) -> None:
    result = _run("admin", "task", "--no-such-option", "--json")
    assert result.exit_code == ExitCode.USAGE
    assert _only_json(result.stdout)["error"]["kind"] == "usage"


def test_no_task_configured_is_a_configuration_error(chain_env) -> None:
    result = CliRunner(env={"FEDCHAIN_PRIVATE_KEY": chain_env.accounts.aggregator.key.hex()}).invoke(
        cli_main.cli, ["round", "open", "--store", "local", "--state-dir", str(chain_env.state_dir),
                       "--rpc-url", chain_env.url, "--json"])
    assert result.exit_code == ExitCode.TASK_NOT_CONFIGURED, result.output
    error = _only_json(result.stdout)["error"]
    assert (error["kind"], error["type"]) == ("task_not_configured", "TaskNotConfiguredError")
    assert "fedchain admin configure-task" in error["message"]


# --- the JSON error object, with synthetic commands --------------------------------------------------
def _install(monkeypatch, command: click.Command) -> None:
    monkeypatch.setitem(cli_main.SUBCOMMANDS, "probe", ("tests.cli.test_exit_codes:_unused", "x"))
    monkeypatch.setattr(cli_main.LazyGroup, "get_command", lambda self, ctx, name: command)


def test_a_fedchain_error_with_json_prints_one_error_object(monkeypatch) -> None:
    @click.command()
    @json_option
    def probe(as_json: bool) -> None:
        raise IntegrityError("blob bafy... does not match its CID")

    _install(monkeypatch, probe)
    result = _run("probe", "--json")
    assert result.exit_code == ExitCode.INTEGRITY
    assert _only_json(result.stdout) == {"error": {"code": 32, "kind": "integrity", "type": "IntegrityError",
                                                   "message": "blob bafy... does not match its CID"}}
    assert result.stderr == "error: blob bafy... does not match its CID\n"

    plain = _run("probe")
    assert plain.exit_code == ExitCode.INTEGRITY and plain.stdout == ""


def test_a_failure_after_the_document_prints_no_second_one(monkeypatch) -> None:
    @click.command()
    @json_option
    def probe(as_json: bool) -> None:
        emit(as_json, {"round": 1}, "round 1")
        raise IntegrityError("late")

    _install(monkeypatch, probe)
    result = _run("probe", "--json")
    assert result.exit_code == ExitCode.INTEGRITY
    assert _only_json(result.stdout) == {"round": 1}
    assert result.stderr == "error: late\n"


def test_an_interruption_exits_130_with_the_interrupted_object(monkeypatch) -> None:
    @click.command()
    @json_option
    def probe(as_json: bool) -> None:
        raise KeyboardInterrupt

    _install(monkeypatch, probe)
    result = _run("probe", "--json")
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert _only_json(result.stdout)["error"] == {"code": 130, "kind": "interrupted", "message": "interrupted",
                                                  "type": "KeyboardInterrupt"}
    assert "error: interrupted" in result.stderr

    plain = _run("probe")
    assert plain.exit_code == 130 and plain.stdout == "" and "error: interrupted" in plain.stderr


def test_an_aborted_prompt_with_json_prints_the_generic_object(monkeypatch) -> None:
    @click.command()
    @json_option
    def probe(as_json: bool) -> None:
        click.prompt("password", hide_input=True, err=True)

    _install(monkeypatch, probe)
    result = _run("probe", "--json", input="")  # end of input at the prompt: click aborts
    assert result.exit_code == ExitCode.GENERIC
    assert _only_json(result.stdout)["error"]["kind"] == "generic"


SLEEPY = '''
import sys, time
import click
from fedchain.cli import main
from fedchain.cli.options import json_option

@click.command()
@json_option
def sleepy(as_json):
    sys.stderr.write("ready\\n"); sys.stderr.flush()
    time.sleep(60)

main.cli.add_command(sleepy)
main.cli(["sleepy", *sys.argv[1:]], prog_name="fedchain")
'''


@pytest.mark.parametrize("as_json", [True, False])
def test_sigint_to_a_running_command_exits_130(tmp_path: Path, as_json: bool) -> None:
    (tmp_path / "sleepy_cli.py").write_text(textwrap.dedent(SLEEPY), encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), *sys.path])}
    # SIGINT as in a terminal: a run started in the background (nohup, `&` in a script) inherits SIGINT ignored
    proc = subprocess.Popen([sys.executable, str(tmp_path / "sleepy_cli.py"), *(["--json"] if as_json else [])],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        assert proc.stderr is not None
        assert proc.stderr.readline().strip() == "ready"
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "error: interrupted" in err
    if as_json:
        assert _only_json(out)["error"]["kind"] == "interrupted"
    else:
        assert out == ""

import json

import click
from click.testing import CliRunner

from fedchain.cli import main as cli_main
from fedchain.cli.options import emit, json_option
from fedchain.errors import ExitCode, StorageUnavailableError


def test_help_lists_every_subcommand_without_importing_them() -> None:
    result = CliRunner().invoke(cli_main.cli, ["--help"])
    assert result.exit_code == 0
    for name in cli_main.SUBCOMMANDS:
        assert name in result.output


def test_fedchain_error_becomes_one_line_and_its_exit_code(monkeypatch) -> None:
    @click.command()
    @json_option
    def broken(as_json: bool) -> None:
        raise StorageUnavailableError("IPFS node at http://127.0.0.1:1 is not answering")

    monkeypatch.setitem(cli_main.SUBCOMMANDS, "broken", ("tests.cli.test_main:_unused", "x"))
    monkeypatch.setattr(cli_main.LazyGroup, "get_command", lambda self, ctx, name: broken)
    result = CliRunner().invoke(cli_main.cli, ["broken"])
    assert result.exit_code == ExitCode.STORAGE_UNAVAILABLE
    assert result.output.strip() == "error: IPFS node at http://127.0.0.1:1 is not answering"


def test_emit_json_is_one_document(capsys) -> None:
    emit(True, {"b": b"\x01", "n": 1}, "ignored")
    assert json.loads(capsys.readouterr().out) == {"b": "0x01", "n": 1}

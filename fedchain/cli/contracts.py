"""``fedchain contracts``: compile the Solidity contracts offline; check the committed artifacts."""

from __future__ import annotations

from pathlib import Path

import click

from fedchain.chain.compiler import BuildResult, Toolchain, build, checkout_root
from fedchain.cli.options import emit, json_option, settings_from, toolchain_option
from fedchain.services.base import toolchain_dir


@click.group("contracts")
def contracts() -> None:
    """Compile the Solidity contracts; check committed artifacts."""


@contracts.command("build")
@click.option(
    "--check",
    is_flag=True,
    help="Only verify that the committed artifacts match the sources in contracts/, the compiler and the settings; "
    "exit non-zero if not (or if there are no sources: an installed fedchain has only the artifacts).",
)
@click.option("--force", is_flag=True, help="Recompile even when the artifacts are fresh.")
@toolchain_option
@json_option
def build_command(check: bool, force: bool, toolchain: Path | None, as_json: bool) -> None:
    """Compile contracts/ (with every imported OpenZeppelin file) into fedchain/chain/artifacts/."""
    if check and force:
        raise click.UsageError("--check and --force exclude each other")
    # Without sources (an installed fedchain) there is no toolchain to look for: build says so.
    tools = Toolchain.default(toolchain_dir(settings_from(toolchain=toolchain))) if checkout_root() else None
    result = build(check=check, force=force, toolchain=tools)
    emit(as_json, _payload(result), lambda: _human(result))


def _payload(result: BuildResult) -> dict[str, object]:
    return {
        "sourceHash": result.source_hash,
        "compiler": result.compiler,
        "compiled": result.compiled,
        "checked": result.checked,
        "artifacts": [
            {"name": a.name, "path": _relative(a.path), "state": a.state, "reason": a.reason} for a in result.artifacts
        ],
        "sources": list(result.sources),
        "elapsedSeconds": result.elapsed_s,
    }


def _human(result: BuildResult) -> str:
    lines = [f"{a.state:8} {a.name} ({_relative(a.path)})" + (f": {a.reason}" if a.reason else "") for a in result.artifacts]
    verb = "compiled" if result.compiled else "fresh, not recompiled"
    lines.append(
        f"{len(result.sources)} sources {verb}; sourceHash {result.source_hash}; solc {result.compiler}; "
        f"{result.elapsed_s:.2f}s"
    )
    return "\n".join(lines)


def _relative(path: Path) -> str:
    root = checkout_root()
    try:
        return path.relative_to(root).as_posix() if root is not None else str(path)
    except ValueError:
        return str(path)

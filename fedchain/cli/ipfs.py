"""``fedchain ipfs start|stop|status``: the local js-ipfs node of a state directory."""

from __future__ import annotations

import click

from fedchain.cli.options import (
    emit,
    json_option,
    settings_from,
    state_dir_option,
    toolchain_option,
)
from fedchain.services.ipfs import node_status, start_node, stop_node


@click.group()
def ipfs() -> None:
    """Start, stop and inspect the local IPFS node (js-ipfs, loopback only, never dials out)."""


@ipfs.command()
@state_dir_option
@click.option("--timeout", "timeout_s", type=click.FloatRange(min=1), default=90.0, show_default=True,
              help="Seconds to wait for the API to answer.")
@toolchain_option
@json_option
def start(state_dir: object, timeout_s: float, toolchain: object, as_json: bool) -> None:
    """Start the node (repo under STATE_DIR/ipfs) unless it already runs."""
    settings = settings_from(state_dir=state_dir, toolchain=toolchain)
    info, started = start_node(settings.state_dir, timeout_s=timeout_s, toolchain=settings.toolchain)
    verb = "started" if started else "already running"
    emit(
        as_json,
        {"started": started, "running": True, "node": info},
        f"IPFS node {verb}: {info.api_url} (pid {info.pid}, IPFS version {info.version})",
    )


@ipfs.command()
@state_dir_option
@json_option
def stop(state_dir: object, as_json: bool) -> None:
    """Stop the node recorded under the state directory."""
    settings = settings_from(state_dir=state_dir)
    info = stop_node(settings.state_dir)
    emit(
        as_json,
        {"stopped": info is not None, "node": info},
        f"IPFS node stopped (pid {info.pid})" if info is not None else "no IPFS node was running",
    )


@ipfs.command()
@state_dir_option
@json_option
def status(state_dir: object, as_json: bool) -> None:
    """Whether the recorded node runs and its API answers."""
    settings = settings_from(state_dir=state_dir)
    st = node_status(settings.state_dir)

    def human() -> str:
        if st.running and st.node is not None:
            return f"running: {st.node.api_url} (pid {st.node.pid}, IPFS version {st.api_version}, repo {st.node.repo})"
        if st.node is not None:
            return f"not answering: pid {st.node.pid} runs but {st.node.api_url} does not answer"
        return f"not running (state dir {st.state_dir})"

    emit(as_json, st, human)

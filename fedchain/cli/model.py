"""``fedchain model``: export, show and evaluate the federation's global models, each verified
against the digest on chain before it is used."""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from fedchain.cli.options import emit, json_option, role_options, role_settings
from fedchain.protocol.export import EXPORT_FORMATS
from fedchain.types import digest_hex

if TYPE_CHECKING:
    from fedchain.protocol.export import VerifiedModel


class RoundChoice(click.ParamType[int | None, Any]):
    """A round id (0: the initial model) or ``latest`` (the current model)."""

    name = "N|latest"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        """None for ``latest``, else a round id >= 0."""
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text == "latest":
            return None
        try:
            number = int(text)
        except ValueError:
            self.fail(f"{value!r} is neither a round number nor 'latest'", param, ctx)
        if number < 0:
            self.fail(f"round must be 0 or more, got {number}", param, ctx)
        return number


def round_option(f: Any) -> Any:
    """``--round N|latest``."""
    return click.option("--round", "round_id", type=RoundChoice(), default="latest", show_default=True,
                        help="The finalised round whose model to use (0: the initial model), or latest: the current "
                             "model.")(f)


def _load(state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None, address: str | None,
          chain_id: int | None, round_id: int | None) -> tuple[VerifiedModel, int, str]:
    from fedchain.protocol.export import load_verified_model
    from fedchain.sim.wiring import connect_ledger, open_blob_store

    settings = role_settings(state_dir, rpc_url, ipfs_api, store, chain_id)
    ledger = connect_ledger(settings, address=address)
    blobs = open_blob_store(settings)
    try:
        return load_verified_model(ledger, blobs, round_id), int(ledger.conn.chain_id), str(ledger.contract.address)
    finally:
        blobs.close()


def _describe(m: VerifiedModel) -> str:
    spec = m.task.spec()
    return (f"round {m.round_id} model {digest_hex(m.model_digest)} ({m.model_cid}), task version {m.task_version}: "
            f"{m.task.dataset} {spec.arch}, {m.num_parameters():,} parameters")


@click.group()
def model() -> None:
    """Export and evaluate the federation's verified global models.

    Every command reads the model's digest and CID from the chain, fetches the blob from the store
    and refuses it (exit 32, IntegrityError) unless its sha256 is that digest. A round that is not
    finalised, or that the members disputed, has no model to serve (exit 20).
    """


@model.command()
@round_option
@click.option("-o", "--output", "output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="The file to write: NAME.safetensors (tensors by state-dict name, provenance in the header) or "
                   "NAME.pt (a torch state dict for load_state_dict). Written atomically; an existing file is replaced.")
@role_options
@json_option
def export(round_id: int | None, output: Path, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
           store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Write a verified global model to a file, nothing unless its blob matches the digest on chain.

    The safetensors header records the fedchain version, chain id, contract, round, model digest,
    CID, task version and model-spec digest; load the .pt file with
    ``build_model(spec).load_state_dict(torch.load(PATH))``.
    """
    from fedchain.protocol.export import export_model

    if output.suffix.lower() not in EXPORT_FORMATS:
        raise click.UsageError(f"-o {output}: the file name must end in {' or '.join(EXPORT_FORMATS)} "
                               f"(got {output.suffix or 'no suffix'!r})")
    verified, chain, contract = _load(state_dir, rpc_url, ipfs_api, store, address, chain_id, round_id)
    written = export_model(verified, output, chain_id=chain, contract=contract)
    payload = {**verified.to_json(), "path": str(written.path), "file_format": written.format,
               "file_bytes": written.bytes, "file_sha256": written.sha256, "metadata": dict(written.metadata)}
    emit(as_json, payload, lambda: f"wrote {written.path} ({written.format}, {written.bytes:,} bytes): "
                                   + _describe(verified))


@model.command()
@round_option
@role_options
@json_option
def show(round_id: int | None, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None, store: str | None,
         address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Show a verified global model: round, digest, CID, task, parameter count and tensors."""
    verified, chain, contract = _load(state_dir, rpc_url, ipfs_api, store, address, chain_id, round_id)

    def human() -> str:
        lines = [_describe(verified)]
        lines += [f"  {name} {tuple(shape)}" for name, shape in verified.to_json()["tensors"].items()]
        return "\n".join(lines)

    emit(as_json, {**verified.to_json(), "chain_id": chain, "contract": contract}, human)


@model.command()
@round_option
@click.option("--data", "data", type=click.Path(dir_okay=False, exists=True, path_type=Path), required=True,
              help="A participant data file (from `fedchain data import` or `data partition`) under the task's schema.")
@role_options
@json_option
def evaluate(round_id: int | None, data: Path, state_dir: Path | None, rpc_url: str | None, ipfs_api: str | None,
             store: str | None, address: str | None, chain_id: int | None, as_json: bool) -> None:
    """Evaluate a verified global model on a data file: accuracy, loss and samples (AUC for two classes).

    The file must be prepared for the task's data schema (exit 43 otherwise)."""
    from fedchain.fl.schema import load_client_data
    from fedchain.protocol.export import evaluate_model

    verified, _, _ = _load(state_dir, rpc_url, ipfs_api, store, address, chain_id, round_id)
    x, y = load_client_data(data, verified.task.schema())
    metrics = evaluate_model(verified, x, y)
    scores = {k: (None if math.isnan(v) else v) for k, v in metrics.items() if k in ("accuracy", "loss", "auc")}
    payload = {"round": int(verified.round_id), "model_digest": digest_hex(verified.model_digest),
               "model_cid": str(verified.model_cid), "data": str(data), "samples": int(len(y)), **scores}
    emit(as_json, payload, lambda: f"round {verified.round_id} model on {data} ({len(y)} samples): accuracy "
                                   f"{metrics['accuracy']:.4f}, loss {metrics['loss']:.4f}"
                                   + (f", AUC {metrics['auc']:.4f}" if "auc" in metrics else ""))

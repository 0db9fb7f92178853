"""``fedchain store put|get|cid``: blobs in the IPFS node or the local content-addressed store."""

from __future__ import annotations

from pathlib import Path

import click

from fedchain.cli.options import emit, ipfs_api_option, json_option, settings_from, state_dir_option, store_option
from fedchain.errors import StorageError
from fedchain.storage.cid import compute_file_cid, parse_cid
from fedchain.storage.factory import open_store
from fedchain.types import Cid


@click.group()
def store() -> None:
    """Put, get and compute CIDs of blobs (CIDv1, raw leaves, 256 KiB chunks: Kubo's CIDs)."""


def _cid_argument(value: str) -> Cid:
    try:
        parse_cid(value)
    except StorageError as err:
        raise click.BadParameter(str(err), param_hint="CID") from err
    return Cid(value)


@store.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@store_option
@ipfs_api_option
@state_dir_option
@json_option
def put(file: Path, store: str | None, ipfs_api: str | None, state_dir: Path | None, as_json: bool) -> None:
    """Store FILE (pinned) and print its CID."""
    settings = settings_from(store=store, ipfs_api=ipfs_api, state_dir=state_dir)
    blob_store = open_store(settings)
    try:
        cid = blob_store.put_file(file)
    finally:
        blob_store.close()
    emit(as_json, {"cid": cid, "size": file.stat().st_size, "store": blob_store.describe()}, cid)


@store.command()
@click.argument("cid")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="Where to write the blob (written only once verified against the CID).")
@store_option
@ipfs_api_option
@state_dir_option
@json_option
def get(cid: str, output: Path, store: str | None, ipfs_api: str | None, state_dir: Path | None, as_json: bool) -> None:
    """Fetch CID, verify it, write it to OUTPUT."""
    checked = _cid_argument(cid)
    settings = settings_from(store=store, ipfs_api=ipfs_api, state_dir=state_dir)
    blob_store = open_store(settings)
    try:
        size = blob_store.get_file(checked, output)
    finally:
        blob_store.close()
    emit(as_json, {"cid": checked, "size": size, "output": output, "verified": True},
         f"{checked}: {size} bytes verified, written to {output}")


@store.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@json_option
def cid(file: Path, as_json: bool) -> None:
    """Compute FILE's CID offline, storing nothing."""
    result, size = compute_file_cid(file)
    emit(as_json, {"cid": result, "size": size}, result)

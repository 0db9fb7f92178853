"""The local store's directories and blobs are the owner's only (0700 / 0600), also when the
store's directory existed with a wider mode."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from fedchain.storage.local import LocalStore


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_blobs_and_their_directories_are_private(tmp_path: Path) -> None:
    store = LocalStore(tmp_path / "state" / "blobs")
    source = tmp_path / "update.bin"
    source.write_bytes(b"a file copied in")

    cids = [store.put(b"private bytes"), store.put_file(source)]

    assert _mode(tmp_path / "state") == 0o700 and _mode(store.root) == 0o700
    for cid in cids:
        path = store.path_of(cid)
        assert _mode(path) == 0o600 and _mode(path.parent) == 0o700


def test_an_open_store_directory_is_narrowed(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    root.mkdir()
    os.chmod(root, 0o755)

    LocalStore(root).put(b"x")

    assert _mode(root) == 0o700

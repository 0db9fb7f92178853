"""Participant data files: what is wrong with a file that is not an ``.npz`` of ``x``, ``y`` and
``schema_digest`` is said precisely (random bytes are not "pickled data"); written files are the
owner's only."""

from __future__ import annotations

import os
import pickle
import stat
from pathlib import Path

import numpy as np
import pytest

from fedchain.errors import DataSchemaError
from fedchain.fl.datasets import load_dataset
from fedchain.fl.schema import load_client_data, save_client_data


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (os.urandom(64).replace(b"\x80", b"\x00").replace(b"PK", b"pk"), r"not a valid \.npz archive .*it starts with 0x"),
        (b"", r"not a valid \.npz: the file is empty"),
        (pickle.dumps({"x": [1, 2]}), r"looks like a Python pickle, which is never loaded"),
    ],
)
def test_a_file_that_is_no_npz_is_named_precisely(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "data.npz"
    path.write_bytes(content)

    with pytest.raises(DataSchemaError, match=message) as info:
        load_client_data(path)

    assert "pickled" not in str(info.value) and str(path) in str(info.value)


def test_a_single_npy_array_is_named_as_such(tmp_path: Path) -> None:
    np.save(tmp_path / "one.npy", np.zeros((2, 3)))
    path = tmp_path / "one.npz"
    (tmp_path / "one.npy").rename(path)

    with pytest.raises(DataSchemaError, match=r"single \.npy array"):
        load_client_data(path)


def test_an_object_array_member_names_the_member(tmp_path: Path) -> None:
    path = tmp_path / "objects.npz"
    np.savez(path, x=np.array([{"a": 1}], dtype=object), y=np.zeros(1, np.int64), schema_digest=np.zeros(32, np.uint8))

    with pytest.raises(DataSchemaError, match=r"member x\.npy is not a plain numpy array"):
        load_client_data(path)


def test_saved_participant_data_is_the_owners_only(tmp_path: Path) -> None:
    ds = load_dataset("breast_cancer", seed=0)

    path = save_client_data(tmp_path / "out" / "client-0.npz", ds.x_train[:10], ds.y_train[:10], ds.schema)

    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    x, y = load_client_data(path, ds.schema)
    assert x.shape[0] == y.shape[0] == 10

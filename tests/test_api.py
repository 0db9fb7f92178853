"""The notebook API (:mod:`fedchain.api`) on a federation that finished two rounds on the real devnet."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from fedchain.api import Federation
from fedchain.audit.findings import Verdict
from fedchain.codec.canonical import sha256_digest
from fedchain.errors import IntegrityError, ModelNotAvailableError
from fedchain.ports import RoundStatus
from fedchain.protocol.blobs import decode_global
from fedchain.protocol.export import load_verified_model
from fedchain.storage.local import LocalStore
from fedchain.types import Cid, RoundId
from tests.trained_federation import Trained, trained_fixture  # noqa: F401 - fixture


@pytest.fixture()
def federation(trained: Trained) -> Iterator[Federation]:
    fed = Federation.connect(trained.env.url, trained.env.deployment.address, state_dir=trained.state_dir,
                             store="local")
    try:
        yield fed
    finally:
        fed.close()


class _SwappingStore(LocalStore):
    """A store that hands out another blob's bytes for one CID, as a broken or hostile store would."""

    def __init__(self, root: Path, swap: Cid, other: Cid) -> None:
        super().__init__(root)
        self.swap, self.other = swap, other

    def get(self, cid: Cid) -> bytes:
        return super().get(self.other if cid == self.swap else cid)


def test_rounds_lists_the_finalised_rounds_in_order(federation: Federation) -> None:
    rounds = federation.rounds()

    assert [r.round_id for r in rounds] == [1, 2]
    assert all(r.status == RoundStatus.FINALIZED and r.included_count == 3 for r in rounds)
    assert rounds[1].base_model_digest == rounds[0].model_digest


def test_model_is_the_on_chain_model_and_torch_model_holds_it(federation: Federation, trained: Trained) -> None:
    record = trained.fed.reader.round(RoundId(2))
    expected = decode_global(trained.store.get(record.model_cid)).weights

    model = federation.model()
    module = federation.torch_model()

    assert model.round_id == 2 and model.model_digest == record.model_digest and model.model_cid == record.model_cid
    assert {k: v.tobytes() for k, v in model.weights.items()} == {k: v.tobytes() for k, v in expected.items()}
    assert {k: v.detach().numpy().tobytes() for k, v in module.state_dict().items()} == \
        {k: v.tobytes() for k, v in expected.items()}
    assert model.num_parameters() == sum(v.size for v in expected.values())


def test_model_of_round_zero_is_the_initial_model(federation: Federation, trained: Trained) -> None:
    first = trained.fed.reader.round(RoundId(1))

    initial = federation.model(0)

    assert initial.round_id == 0 and initial.model_digest == first.base_model_digest


def test_a_store_returning_other_bytes_is_refused_against_the_chain_digest(trained: Trained) -> None:
    reader = trained.fed.reader
    r1, r2 = reader.round(RoundId(1)), reader.round(RoundId(2))
    lying = _SwappingStore(trained.state_dir / "blobs", r2.model_cid, r1.model_cid)

    with pytest.raises(IntegrityError, match="the chain records"):
        load_verified_model(reader, lying, 2)
    assert load_verified_model(reader, lying, 1).model_digest == r1.model_digest


def test_a_round_that_does_not_exist_has_no_model(federation: Federation) -> None:
    with pytest.raises(ModelNotAvailableError, match="round 7 does not exist"):
        federation.model(7)


def test_task_is_the_verified_task_document(federation: Federation, trained: Trained) -> None:
    task = federation.task()

    assert task.model_spec_digest() == trained.fed.reader.task().model_spec_digest
    assert task.to_bytes() == trained.fed.doc.to_bytes()


def test_export_and_evaluate_match_the_loaded_model(federation: Federation, trained: Trained, tmp_path: Path) -> None:
    written = federation.export(tmp_path / "m.safetensors", round_id=1)
    model = federation.model(1)
    metrics = federation.evaluate(trained.fed.clients[1].path, round_id=1)

    tensors = load_file(str(written.path))
    assert {k: v.tobytes() for k, v in tensors.items()} == {k: np.asarray(v).tobytes() for k, v in model.weights.items()}
    assert written.sha256 == "0x" + sha256_digest(written.path.read_bytes()).hex()
    assert 0.0 <= metrics["accuracy"] <= 1.0 and metrics["n"] == trained.fed.clients[1].num_samples


def test_audit_replays_the_federation_clean(federation: Federation) -> None:
    report = federation.audit()

    assert report.verdict == Verdict.CLEAN, report.findings
    assert report.rounds_checked == (1, 2)


def test_connect_through_the_ipfs_node_loads_the_current_model(trained: Trained, ipfs_store: Any, ipfs_api_url: str,
                                                               tmp_path: Path) -> None:
    record = trained.fed.reader.round(RoundId(2))
    for cid in (record.model_cid, trained.fed.task_cid):  # the same blobs on the node, under the same CIDs
        assert ipfs_store.put(trained.store.get(cid)) == cid

    with Federation.connect(trained.env.url, trained.env.deployment.address, state_dir=tmp_path, store="ipfs",
                            ipfs_api=ipfs_api_url) as federation:
        model = federation.model()

    assert model.round_id == 2 and model.model_digest == record.model_digest
    expected = decode_global(trained.store.get(record.model_cid)).weights
    assert {k: v.tobytes() for k, v in model.weights.items()} == {k: v.tobytes() for k, v in expected.items()}

"""Each kind of tampering is caught by the audit with the right finding kind."""

from __future__ import annotations

from pathlib import Path

from fedchain.federation.blobs import encode_update
from fedchain.federation.evidence import Evidence, RejectedUpdate
from fedchain.federation.participant import metadata_digest
from fedchain.federation.rounds import inclusion_root
from fedchain.fl.canonical import sha256_digest
from fedchain.storage.cid import compute_cid
from fedchain.types import RoundId
from tests.federation.harness import Fed, make_fed


def _kinds(fed: Fed) -> set[str]:
    return fed.auditor().audit().kinds()


def test_aggregator_dropping_an_update_is_caught(chain_env, ipfs_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="drop-update")
    out = fed.run_round()
    assert out.finalized and len(out.included) == 2

    report = fed.auditor().audit()

    assert {"update_dropped", "merkle_root_mismatch", "model_mismatch"} <= report.kinds()
    dropped = [f for f in report.findings if f.kind.value == "update_dropped"]
    assert [f.participant for f in dropped] == [c for c in (p.address for p in fed.participants) if c not in out.included]


def test_aggregator_publishing_a_shifted_model_is_caught(chain_env, ipfs_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, ipfs_store, task_files, tmp_path, dishonest="shift-model")
    fed.run_round()

    kinds = _kinds(fed)

    assert "model_mismatch" in kinds
    assert "merkle_root_mismatch" not in kinds and "update_dropped" not in kinds


def test_next_round_on_a_model_other_than_the_finalised_one_is_refused_by_the_contract(fed: Fed) -> None:
    import pytest

    from fedchain.errors import ContractRevertError

    fed.run_round()
    with pytest.raises(ContractRevertError) as info:
        fed.aggregator.ledger.open_round(sha256_digest(b"another model"), fed.outcomes[0].model_cid, 600, 2)
    assert info.value.error_name == "FederationBaseModelMismatch"


def _commit_raw(fed: Fed, index: int, rid: RoundId, *, digest: bytes, cid: str) -> None:
    p = fed.participants[index]
    p.ledger.commit_update(rid, digest, cid, fed.clients[index].num_samples, b"\x07" * 32)


def _honest_blob(fed: Fed, index: int, rid: RoundId) -> bytes:
    """Train as participant ``index`` would, but return the blob instead of committing it."""
    from fedchain.federation.blobs import decode_global
    from fedchain.federation.training import train_participant
    from fedchain.fl.schema import load_client_data

    rnd = fed.reader.round(rid)
    base = decode_global(fed.store.get(rnd.base_model_cid))
    x, y = load_client_data(fed.clients[index].path)
    update, _, _ = train_participant(fed.doc, round_id=rid, participant=fed.participants[index].address, base=base,
                                     base_model_digest=rnd.base_model_digest, x=x, y=y, seed=1, client_state=None)
    return encode_update(update)


def test_committed_digest_that_does_not_match_the_blob_is_caught(fed: Fed) -> None:
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)
    _commit_raw(fed, 2, rid, digest=sha256_digest(blob + b"changed"), cid=fed.store.put(blob))
    out = fed.aggregator.finalize(rid)
    assert [(r[0], r[1]) for r in out.rejected] == [(fed.participants[2].address, "blob_integrity")]

    report = fed.auditor().audit()

    assert report.kinds() == {"blob_digest_mismatch"}
    assert report.findings[0].participant == fed.participants[2].address


def test_missing_blob_is_caught(chain_env, local_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    rid = fed.open_round()
    for p in fed.participants[:2]:
        p.submit(rid)
    blob = _honest_blob(fed, 2, rid)  # never stored
    _commit_raw(fed, 2, rid, digest=sha256_digest(blob), cid=compute_cid(blob))
    out = fed.aggregator.finalize(rid)
    assert [(r[0], r[1]) for r in out.rejected] == [(fed.participants[2].address, "blob_unavailable")]

    report = fed.auditor().audit()

    assert report.kinds() == {"blob_missing"}


def test_blob_whose_bytes_were_changed_in_the_store_is_caught(chain_env, local_store, task_files, tmp_path: Path) -> None:
    fed = make_fed(chain_env, local_store, task_files, tmp_path)
    fed.run_round()
    victim = fed.reader.commitments(RoundId(1))[0]
    path = local_store.path_of(victim.cid)
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.chmod(0o644)
    path.write_bytes(bytes(data))

    report = fed.auditor().audit()

    assert "blob_cid_mismatch" in report.kinds()
    assert {f.participant for f in report.findings if f.kind.value == "blob_cid_mismatch"} == {victim.participant}
    assert "model_unverifiable" in report.kinds()


def test_rejection_the_recorded_rule_does_not_reproduce_is_caught(fed: Fed) -> None:
    """An aggregator that leaves out a valid update and claims a rule rejected it."""
    rid = fed.open_round()
    for p in fed.participants:
        p.submit(rid)
    commitments = fed.reader.commitments(rid)
    victim = fed.participants[0].address
    outcomes = [o for o in commitments if o.participant != victim]
    from fedchain.federation.blobs import decode_global
    from fedchain.federation.rounds import aggregate, fetch_committed

    rnd = fed.reader.round(rid)
    base = decode_global(fed.store.get(rnd.base_model_cid))
    agg = aggregate(fed.doc.strategy_config(), base, rid, rnd.base_model_digest,
                    [fetch_committed(fed.store, c) for c in outcomes], 2)
    assert agg.model_blob is not None and agg.model_digest is not None
    root = inclusion_root(commitments, agg.included)
    from fedchain.federation.evidence import IncludedUpdate
    from fedchain.federation.rounds import leaf_of

    evidence = Evidence(rid, rnd.base_model_digest, agg.model_digest, fed.doc.strategy_digest(), root,
                        tuple(IncludedUpdate(c.participant, c.update_digest, c.cid, c.num_samples, leaf_of(c)) for c in outcomes),
                        (RejectedUpdate(victim, "norm_clip", "update norm 9.1 exceeds 1"),))
    ev = evidence.to_bytes()
    fed.aggregator.ledger.finalize_round(rid, agg.model_digest, fed.store.put(agg.model_blob), root,
                                         fed.doc.strategy_digest(), sha256_digest(ev), fed.store.put(ev), 2)

    report = fed.auditor().audit()

    assert "rejection_not_reproduced" in report.kinds()
    assert [f.participant for f in report.findings if f.kind.value == "rejection_not_reproduced"] == [victim]


def test_update_metadata_digest_is_stable(fed: Fed) -> None:
    rid = fed.open_round()
    res = fed.participants[0].submit(rid)
    c = fed.reader.commitments(rid)[0]
    from fedchain.federation.blobs import decode_update

    assert metadata_digest(decode_update(fed.store.get(res.cid))) == c.metadata_digest

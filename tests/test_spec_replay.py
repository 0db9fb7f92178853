"""docs/SPEC.md, proven by an independent implementation: tests/spec/replay_fedavg.py imports nothing
from fedchain, and from what the chain and the store hold it must reproduce real ledger rounds bit
for bit (model digest, Merkle root, aggregation digest, rejections, close reasons)."""

from __future__ import annotations

import ast
import dataclasses
import functools
import hashlib
import importlib.util
import json
import os
import struct
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.blob import BlobHeader, BlobKind, decode_blob, encode_blob
from fedchain.codec.canonical import sha256_digest
from fedchain.codec.cid import cid_problem
from fedchain.errors import BlobFormatError
from fedchain.fl.records import RobustConfig, StrategyConfig
from fedchain.ports import RoundStatus, UpdateCommitment
from fedchain.protocol.blobs import decode_update, encode_update, initial_global
from fedchain.protocol.participant import ParticipantAgent
from fedchain.protocol.rounds import FetchOutcome, screen
from fedchain.protocol.task import task_version
from fedchain.storage.cid import compute_cid
from fedchain.types import RoundId, digest_hex
from tests.protocol.harness import Fed, TaskFiles, make_fed, make_task_files

REPLAYER = Path(__file__).parent / "spec" / "replay_fedavg.py"

# Runs a script with every import of fedchain refused, whatever the interpreter has installed
# (the venv holds fedchain as an editable install, which -I alone does not hide).
_SANDBOX = """\
import importlib.abc, runpy, sys
class _NoFedchain(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name == "fedchain" or name.startswith("fedchain."):
            raise ImportError("fedchain is not importable here")
        return None
sys.meta_path.insert(0, _NoFedchain())
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def _run_sandboxed(script: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {"PATH": os.environ.get("PATH", ""), "LC_ALL": "C.UTF-8"}
    return subprocess.run([sys.executable, "-I", "-c", _SANDBOX, str(script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300, check=False)


def _replay(directory: Path) -> tuple[dict[str, Any], bytes | None]:
    out = directory / "model.blob"
    proc = _run_sandboxed(REPLAYER, str(directory), "--out", str(out), cwd=directory)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    return report, out.read_bytes() if out.exists() else None


@functools.cache
def _load_replayer() -> ModuleType:
    """The replayer as a module, for the tests of its parts (it imports no fedchain either way)."""
    spec = importlib.util.spec_from_file_location("replay_fedavg", REPLAYER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


# --- a plain FedAvg federation ------------------------------------------------------------

# What the replayer implements: FedAvg without robust rules, every other parameter at its default.
PLAIN_FEDAVG = StrategyConfig("fedavg", {"local_epochs": 1, "batch_size": 32, "lr": 0.05, "min_updates": 2})


@pytest.fixture(scope="module")
def fedavg_task(tmp_path_factory: pytest.TempPathFactory) -> TaskFiles:
    files = make_task_files(tmp_path_factory.mktemp("fedavg-task"))
    return dataclasses.replace(files, doc=dataclasses.replace(files.doc, strategy=PLAIN_FEDAVG))


@pytest.fixture()
def fed(chain_env: Any, ipfs_store: Any, fedavg_task: TaskFiles, tmp_path: Path) -> Fed:
    """Three admitted participants on the session devnet and IPFS node, under the FedAvg task."""
    return make_fed(chain_env, ipfs_store, fedavg_task, tmp_path)


# --- the inputs, from the chain and the store ---------------------------------------------


def _write_inputs(fed: Fed, rid: RoundId, directory: Path, base: bytes | None = None) -> Path:
    """The replay directory of round ``rid`` (SPEC.md, 14.2): RoundOpened, the
    UpdateCommitted events and the task document from the chain's CIDs; the base model blob (from
    the store, unless ``base`` is given) and every committed blob from the store."""
    rnd = fed.reader.round(rid)
    task = task_version(fed.reader, int(rnd.task_version))
    doc = json.loads(fed.store.get(task.config_cid))
    commitments = fed.reader.commitments(rid)
    directory.mkdir(parents=True)
    (directory / "blobs").mkdir()
    for c in commitments:
        if cid_problem(c.cid) is None:  # a committed string that is no CID names no blob
            (directory / "blobs" / c.cid).write_bytes(fed.store.get(c.cid))
    (directory / "base.blob").write_bytes(base if base is not None else fed.store.get(rnd.base_model_cid))
    (directory / "round.json").write_text(json.dumps({
        "round": int(rid),
        "base_model_digest": digest_hex(rnd.base_model_digest),
        "min_updates": int(rnd.min_updates),
        "strategy": doc["strategy"],
        "commitments": [
            {"participant": c.participant, "update_digest": digest_hex(c.update_digest), "cid": c.cid,
             "num_samples": c.num_samples, "metadata_digest": digest_hex(c.metadata_digest)}
            for c in commitments
        ],
    }), encoding="utf-8")
    return directory


def _evidence(fed: Fed, rid: RoundId) -> dict[str, Any]:
    rnd = fed.reader.round(rid)
    data = fed.store.get(rnd.evidence_cid or "")
    assert sha256_digest(data) == rnd.evidence_digest
    evidence: dict[str, Any] = json.loads(data)
    return evidence


def _rules(rejections: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return sorted((r["participant"].lower(), r["rule"]) for r in rejections)


def _assert_reproduces(fed: Fed, rid: RoundId, report: dict[str, Any], blob: bytes | None) -> None:
    """The replay of a finalised round matches the chain, the store and the evidence document."""
    rnd = fed.reader.round(rid)
    evidence = _evidence(fed, rid)
    assert rnd.status == RoundStatus.FINALIZED and report["finalized"]
    assert report["model_digest"] == digest_hex(rnd.model_digest)
    assert blob is not None and blob == fed.store.get(rnd.model_cid or "")
    assert report["merkle_root"] == digest_hex(rnd.merkle_root)
    assert report["aggregation_digest"] == digest_hex(rnd.aggregation_digest)
    assert len(report["included"]) == rnd.included_count
    assert [a.lower() for a in report["included"]] == [u["participant"].lower() for u in evidence["included"]]
    assert _rules(report["rejected"]) == _rules(evidence["rejected"])


# --- the replayer stands alone --------------------------------------------------------------


def test_replayer_imports_only_the_standard_library_and_numpy() -> None:
    tree = ast.parse(REPLAYER.read_text(encoding="utf-8"))
    imported = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                for alias in node.names}
    imported |= {(node.module or "").split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}

    assert imported - set(sys.stdlib_module_names) == {"numpy"}


def test_sandbox_refuses_fedchain(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("import numpy\nimport fedchain\n", encoding="utf-8")

    proc = _run_sandboxed(probe, cwd=tmp_path)

    assert proc.returncode != 0 and "fedchain is not importable here" in proc.stderr


_NAMES = st.sampled_from(["0.weight", "0.bias", "2.weight", "B", "a", "server/c/0.weight", "w\u00e9", 'q"'])
_ARRAYS = st.tuples(st.sampled_from([np.float32, np.float64, np.int64]),
                    st.lists(st.integers(0, 3), max_size=3), st.integers(0, 2**32 - 1))


@settings(max_examples=60, deadline=None)
@given(tensors=st.dictionaries(_NAMES, _ARRAYS, max_size=5), round_id=st.integers(0, 2**63 - 1),
       samples=st.integers(0, 10**6), loss=st.floats(allow_nan=False, allow_infinity=False))
def test_replayer_codec_writes_and_reads_the_bytes_fedchain_writes(
        tensors: dict[str, tuple[Any, list[int], int]], round_id: int, samples: int, loss: float) -> None:
    replayer = _load_replayer()
    arrays = {name: np.asarray(np.random.default_rng(seed).standard_normal(shape) * 100).astype(dtype)
              for name, (dtype, shape, seed) in tensors.items()}
    header = BlobHeader(kind=BlobKind.UPDATE, round=round_id, participant="0xAbC", base_model_digest=b"\x07" * 32,
                        num_samples=samples, extras={"update_kind": "delta", "x.loss": json.dumps(loss)})
    blob = encode_blob(header, arrays)

    mine = replayer.encode_blob(header.to_json(), arrays)
    decoded_header, decoded = replayer.decode_blob(blob)
    kind, extras = replayer.update_metadata(decoded_header)

    assert mine == blob
    assert decoded.keys() == arrays.keys()
    assert all(decoded[n].dtype == arrays[n].dtype and np.array_equal(decoded[n], arrays[n]) for n in arrays)
    assert replayer.metadata_digest(decoded_header, kind, extras) == _fedchain_metadata_digest(blob)
    assert replayer.compute_cid(blob) == compute_cid(blob)


def _fedchain_metadata_digest(blob: bytes) -> bytes:
    from fedchain.protocol.blobs import metadata_digest

    return bytes(metadata_digest(decode_update(blob)))


@settings(max_examples=300, deadline=None)
@given(position=st.integers(0, 10**6), value=st.integers(0, 255), mode=st.sampled_from(["set", "insert", "delete"]))
def test_replayer_refuses_exactly_the_blobs_fedchain_refuses(position: int, value: int, mode: str) -> None:
    replayer = _load_replayer()
    header = BlobHeader(kind=BlobKind.UPDATE, round=3, participant="0xAbC", base_model_digest=b"\x11" * 32,
                        num_samples=5, extras={"update_kind": "delta", "x.loss": "0.25", "x.local_steps": "4"})
    data = bytearray(encode_blob(header, {"0.weight": np.arange(6, dtype=np.float32).reshape(2, 3),
                                          "0.bias": np.ones(2, np.float32)}))
    i = position % len(data)
    if mode == "set":
        data[i] = value
    elif mode == "insert":
        data[i:i] = bytes([value])
    else:
        del data[i]

    try:
        decode_update(bytes(data))
        fedchain_accepts = True
    except BlobFormatError:
        fedchain_accepts = False
    try:
        decoded_header, _ = replayer.decode_blob(bytes(data))
        replayer.update_metadata(decoded_header)
        replayer_accepts = decoded_header["kind"] == "update"
    except replayer.BlobError:
        replayer_accepts = False

    assert replayer_accepts == fedchain_accepts


@settings(max_examples=200, deadline=None)
@given(weights=st.lists(st.floats(1e-3, 1e12), min_size=1, max_size=12), max_share=st.floats(0.01, 1.0))
def test_replayer_caps_weight_shares_like_fedchain(weights: list[float], max_share: float) -> None:
    from fedchain.fl.aggregate import Contribution, cap_weight_shares

    contributions = [Contribution(f"0x{i:040x}", w, {}) for i, w in enumerate(weights)]
    expected = [c.weight for c in cap_weight_shares(contributions, max_share)[0]]

    assert _load_replayer().cap_weight_shares(weights, max_share) == expected


@pytest.mark.parametrize("text", ["NaN", "-Infinity", "1e400"])
def test_update_with_a_non_finite_extra_is_screened_out_as_blob_format(text: str) -> None:
    who = "0x" + "ab" * 20
    blob = encode_blob(BlobHeader(kind=BlobKind.UPDATE, round=1, participant=who, base_model_digest=b"\x01" * 32,
                                  num_samples=3, extras={"update_kind": "delta", "x.loss": text}),
                       {"w": np.zeros(2, np.float32)})
    commitment = UpdateCommitment(RoundId(1), who, sha256_digest(blob), compute_cid(blob), 3, b"\x02" * 32, 0, "", 0)
    replayer = _load_replayer()

    screened = screen([FetchOutcome(commitment, blob, None, None)], RoundId(1), b"\x01" * 32)

    assert [(r.participant, r.rule) for r in screened.rejections] == [(who, "blob_format")]
    with pytest.raises(replayer.BlobError):
        replayer.update_metadata(replayer.decode_blob(blob)[0])


# --- real ledger rounds -------------------------------------------------------------------


def test_replay_of_a_ledger_round_reproduces_the_chain(fed: Fed, tmp_path: Path) -> None:
    out = fed.run_round()
    rid = out.round_id
    directory = _write_inputs(fed, rid, tmp_path / "replay")

    report, blob = _replay(directory)

    _assert_reproduces(fed, rid, report, blob)
    assert len(report["included"]) == 3 and report["rejected"] == []


def test_replay_chains_base_models_across_finalised_and_closed_rounds(fed: Fed, tmp_path: Path, advance_time) -> None:
    fed.run_round()  # 1: everybody
    closed = fed.open_round()  # 2: one update, below the minimum of two: closed
    fed.participants[0].submit(closed)
    advance_time(fed.doc.commit_duration + 1)
    fed.aggregator.finalize(closed)
    fed.run_round()  # 3: everybody, from round 1's model
    late = fed.open_round()  # 4: two of three before the deadline
    for p in fed.participants[:2]:
        p.submit(late)
    advance_time(fed.doc.commit_duration + 1)
    fed.aggregator.finalize(late)
    first = fed.reader.round(RoundId(1))
    assert first.base_model_digest == sha256_digest(initial_global(fed.doc.spec(), fed.doc.seed))

    base: bytes | None = None  # round 1 starts from the store's initial model; later ones from our replays
    reports = []
    for rid in map(RoundId, range(1, 5)):
        report, blob = _replay(_write_inputs(fed, rid, tmp_path / f"round-{rid}", base))
        reports.append(report)
        rnd = fed.reader.round(rid)
        if rnd.status == RoundStatus.CLOSED:
            assert not report["finalized"] and report["close_reason"] == rnd.close_reason
        else:
            _assert_reproduces(fed, rid, report, blob)
            base = blob

    assert [r["finalized"] for r in reports] == [True, False, True, True]
    assert [len(r["included"]) for r in reports] == [3, 0, 3, 2]
    assert fed.reader.round(RoundId(3)).base_model_digest == fed.reader.round(RoundId(1)).model_digest


def test_replay_of_a_round_with_capped_weights_and_clipped_updates(chain_env: Any, ipfs_store: Any,
                                                                    tmp_path: Path) -> None:
    files = make_task_files(tmp_path / "task", partition="quantity")  # 140, 11 and 305 samples
    strategy = StrategyConfig("fedavg", {**PLAIN_FEDAVG.params, "max_weight_share": 0.4},
                              (RobustConfig("norm_clip", {"max_norm": 0.05, "reject": False}),))
    fed = make_fed(chain_env, ipfs_store, dataclasses.replace(files, doc=dataclasses.replace(files.doc, strategy=strategy)),
                   tmp_path)
    out = fed.run_round()

    report, blob = _replay(_write_inputs(fed, out.round_id, tmp_path / "replay"))

    _assert_reproduces(fed, out.round_id, report, blob)
    assert max(report["weights"]) == 0.4 and report["clipped"]


class _TamperingLedger:
    """A participant's ledger that commits something else than the honest update it is handed."""

    def __init__(self, ledger: Any, store: Any, how: str) -> None:
        self._ledger, self._store, self._how = ledger, store, how

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ledger, name)

    def commit_update(self, round_id: RoundId, digest: bytes, cid: str, num_samples: int, metadata: bytes) -> Any:
        honest = self._store.get(cid)
        if self._how == "swapped_bytes":  # the committed digest is the honest blob's, the CID another blob's
            cid = self._store.put(honest[:-1] + bytes([honest[-1] ^ 0x01]))
        elif self._how == "non_canonical":  # safetensors metadata in the tensor section
            from safetensors.numpy import save

            (head_len,) = struct.unpack(">I", honest[8:12])
            _, tensors = decode_blob(honest)
            tampered = honest[: 12 + head_len] + save(tensors, metadata={"note": "not canonical"})
            cid, digest = self._store.put(tampered), sha256_digest(tampered)
        elif self._how == "sample_count":  # fewer than the blob says (more than it declared, the contract refuses)
            num_samples -= 1
        elif self._how == "metadata":
            metadata = hashlib.sha256(b"other metadata").digest()
        elif self._how == "invalid_cid":
            cid = "not-a-cid"
        elif self._how == "copied_payload":  # another participant's tensors under this participant's header
            other = next(c for c in self._ledger.commitments(round_id) if c.participant != self._ledger.sender)
            theirs = self._store.get(other.cid)
            (mine_len,) = struct.unpack(">I", honest[8:12])
            (their_len,) = struct.unpack(">I", theirs[8:12])
            tampered = honest[: 12 + mine_len] + theirs[12 + their_len :]
            cid, digest = self._store.put(tampered), sha256_digest(tampered)
        elif self._how == "float64_tensor":  # a well-formed blob the strategy's validation refuses
            update = decode_update(honest)
            name = sorted(update.tensors)[0]
            tensors = {**update.tensors, name: np.asarray(update.tensors[name], dtype=np.float64)}
            tampered = encode_update(dataclasses.replace(update, tensors=tensors))
            cid, digest = self._store.put(tampered), sha256_digest(tampered)
        return self._ledger.commit_update(round_id, digest, cid, num_samples, metadata)


@pytest.mark.parametrize(("how", "rule"), [
    ("swapped_bytes", "blob_integrity"),
    ("non_canonical", "blob_format"),
    ("sample_count", "header_mismatch"),
    ("metadata", "metadata_mismatch"),
    ("invalid_cid", "invalid_cid"),
    ("copied_payload", "duplicate_update"),
    ("float64_tensor", "validation"),
])
def test_replay_screens_out_a_tampered_update_by_the_rule_fedchain_records(fed: Fed, tmp_path: Path, how: str,
                                                                           rule: str) -> None:
    honest = fed.participants[2]
    fed.participants[2] = ParticipantAgent(_TamperingLedger(honest.ledger, fed.store, how), fed.store,
                                           honest.data_path, tmp_path / "tamperer")
    out = fed.run_round()
    rid = out.round_id
    directory = _write_inputs(fed, rid, tmp_path / "replay")

    report, blob = _replay(directory)

    assert [(r.participant, r.rule) for r in out.rejected] == [(honest.address, rule)]
    assert _rules(report["rejected"]) == [(honest.address.lower(), rule)]
    _assert_reproduces(fed, rid, report, blob)

"""Task and evidence documents, blobs and option parsing (no chain, no IPFS but in the last test, which publishes a task)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from fedchain.errors import BlobFormatError, ConfigError, IntegrityError
from fedchain.fl.attacks import AttackSpec
from fedchain.fl.records import ClientUpdate, Rejection, RobustConfig
from fedchain.ports import TaskConfig
from fedchain.protocol.blobs import decode_global, decode_update, encode_global, encode_update
from fedchain.protocol.evidence import Evidence, IncludedUpdate
from fedchain.protocol.task import DEFAULT_MAX_COMMIT_DURATION, TaskDocument, verify_task
from fedchain.sim.config import DEFAULT_ROBUST, AttackerGroup, parse_attack, parse_robust
from fedchain.types import Address, Cid, Digest, RoundId
from tests.protocol.harness import TaskFiles


def _task_config(doc: TaskDocument, **override: bytes) -> TaskConfig:
    digests = {"model_spec_digest": doc.model_spec_digest(), "strategy_digest": doc.strategy_digest(),
               "data_schema_digest": doc.data_schema_digest()}
    digests.update(override)
    window = 86_400
    return TaskConfig(version=1, config_cid=Cid("bafkreiexample"), max_commit_duration=window, **digests)  # type: ignore[arg-type]


def test_task_document_round_trips_and_matches_the_chain(task_files: TaskFiles) -> None:
    doc = task_files.doc
    again = TaskDocument.from_bytes(doc.to_bytes())

    assert again.to_bytes() == doc.to_bytes()
    verify_task(again, _task_config(doc))


@pytest.mark.parametrize("field", ["model_spec_digest", "strategy_digest", "data_schema_digest"])
def test_task_document_with_another_digest_than_the_chain_is_refused(task_files: TaskFiles, field: str) -> None:
    with pytest.raises(IntegrityError, match=field.replace("_digest", "").replace("_", " ")):
        verify_task(task_files.doc, _task_config(task_files.doc, **{field: b"\x01" * 32}))


def test_task_document_carries_its_commit_window_bound_and_reveal_phase(task_files: TaskFiles) -> None:
    doc = replace(task_files.doc, max_commit_duration=3_600, reveal_duration=120)
    data = doc.to_json()

    again = TaskDocument.from_bytes(doc.to_bytes())

    assert (data["max_commit_duration"], data["reveal_duration"]) == (3_600, 120)
    assert (again.max_commit_duration, again.reveal_duration) == (3_600, 120) and again.to_bytes() == doc.to_bytes()
    assert (task_files.doc.max_commit_duration, task_files.doc.reveal_duration) == (86_400, 0)


def test_a_task_document_written_before_the_commit_window_bound_reads_with_the_defaults(task_files: TaskFiles) -> None:
    old = task_files.doc.to_json()
    del old["max_commit_duration"], old["reveal_duration"]

    doc = TaskDocument.from_json(old)

    assert (doc.max_commit_duration, doc.reveal_duration) == (DEFAULT_MAX_COMMIT_DURATION, 0)
    assert doc.strategy_digest() == task_files.doc.strategy_digest()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_commit_duration", 599, "max_commit_duration must be in \\[commit_duration = 600"),
        ("max_commit_duration", 2**64, "max_commit_duration must be in"),
        ("max_commit_duration", 3600.5, "max_commit_duration must be an integer"),
        ("max_commit_duration", "3600", "max_commit_duration must be an integer"),
        ("reveal_duration", -1, "reveal_duration must be in \\[0"),
        ("reveal_duration", True, "reveal_duration must be an integer"),
        ("commit_duration", None, "commit_duration must be an integer"),
    ],
)
def test_task_document_durations_are_checked(task_files: TaskFiles, field: str, value: object, message: str) -> None:
    data = {**task_files.doc.to_json(), "commit_duration": 600, field: value}

    with pytest.raises(ConfigError, match=message):
        TaskDocument.from_json(data)


def test_task_document_whose_commit_window_bound_is_not_the_chains_is_refused(task_files: TaskFiles) -> None:
    with pytest.raises(IntegrityError, match="commit phases of up to 86400 s, the chain records 600 s"):
        verify_task(task_files.doc, replace(_task_config(task_files.doc), max_commit_duration=600))


def test_not_a_task_document_is_refused() -> None:
    with pytest.raises(ConfigError, match="not a task document"):
        TaskDocument.from_bytes(b'{"format":"something else"}')


def test_evidence_round_trips_in_canonical_order() -> None:
    a, b = Address("0x" + "bb" * 20), Address("0x" + "aa" * 20)
    ev = Evidence(RoundId(3), Digest(b"\x01" * 32), Digest(b"\x02" * 32), Digest(b"\x03" * 32), Digest(b"\x04" * 32),
                  (IncludedUpdate(a, Digest(b"\x05" * 32), Cid("bafkreia"), 10, Digest(b"\x06" * 32)),
                   IncludedUpdate(b, Digest(b"\x07" * 32), Cid("bafkreib"), 20, Digest(b"\x08" * 32))),
                  (Rejection(a, "norm_clip", "too big"),))
    swapped = Evidence(ev.round_id, ev.base_model_digest, ev.model_digest, ev.aggregation_digest, ev.merkle_root,
                       tuple(reversed(ev.included)), ev.rejected)

    assert Evidence.from_bytes(ev.to_bytes()).to_bytes() == ev.to_bytes() == swapped.to_bytes()
    with pytest.raises(BlobFormatError):
        Evidence.from_bytes(b'{"format":"fedchain.evidence/1"}')


def test_update_blob_round_trips_kind_extras_and_control_tensors() -> None:
    tensors = {"w": np.ones((2, 2), np.float32), "cv/w": np.zeros((2, 2), np.float32)}
    update = ClientUpdate(Address("0x" + "12" * 20), RoundId(2), 7, tensors, Digest(b"\x09" * 32),
                          extras={"loss": 0.25, "steps": 3, "tag": "x"})
    back = decode_update(encode_update(update))

    assert back.participant == update.participant and back.round_id == 2 and back.num_samples == 7
    assert dict(back.extras) == {"loss": 0.25, "steps": 3, "tag": "x"}
    assert sorted(back.tensors) == ["cv/w", "w"] and np.array_equal(back.tensors["w"], update.tensors["w"])
    assert encode_update(back) == encode_update(update)


def test_global_blob_keeps_server_state_apart_and_an_update_is_not_a_global_model() -> None:
    blob = encode_global(round_id=1, base_model_digest=b"\x00" * 32, weights={"w": np.ones(3, np.float32)},
                         server_state={"c/w": np.full(3, 2, np.float32)}, num_samples=5)
    model = decode_global(blob)

    assert list(model.weights) == ["w"] and list(model.server_state) == ["c/w"]
    with pytest.raises(BlobFormatError, match="update blob"):
        decode_update(blob)


def test_option_parsers() -> None:
    assert parse_attack("sign_flip:2") == AttackerGroup(AttackSpec("sign_flip"), 2)
    assert parse_attack("scaling:1:10") == AttackerGroup(AttackSpec("scaling", 10.0), 1)
    assert parse_attack("scaling:1:10").to_text() == "scaling:1:10"
    assert parse_robust("trimmed_mean:0.2") == (RobustConfig("trimmed_mean", {"beta": 0.2}),)
    assert parse_robust("norm_clip:max_norm=1,reject=true") == (RobustConfig("norm_clip", {"max_norm": 1, "reject": True}),)
    assert parse_robust("norm_clip:max_norm=1,reject=true+multi_krum:f=1") == (
        RobustConfig("norm_clip", {"max_norm": 1, "reject": True}), RobustConfig("multi_krum", {"f": 1}))
    assert parse_robust(None) == DEFAULT_ROBUST and parse_robust("none") == () and parse_robust("None") == ()
    with pytest.raises(ConfigError, match="expected a rule name"):
        parse_robust("median+")
    with pytest.raises(ConfigError, match="unknown kind"):
        parse_attack("teleport:1")


@pytest.mark.parametrize(("robust", "clients"), [("multi_krum:f=1", 4), ("krum:f=2", 6), ("multi_krum:f=0,m=4", 3)])
def test_krum_rule_that_cannot_work_with_the_clients_is_refused(tmp_path, robust: str, clients: int) -> None:
    from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset, parse_robust

    cfg = ExperimentConfig(dataset="breast_cancer", clients=clients, robust=parse_robust(robust))

    with pytest.raises(ConfigError, match="multi_krum|krum"):
        build_task(cfg, load_task_dataset(cfg))


def test_krum_rule_with_enough_clients_is_accepted() -> None:
    from fedchain.sim.config import ExperimentConfig, build_task, load_task_dataset, parse_robust

    cfg = ExperimentConfig(dataset="breast_cancer", clients=5, robust=parse_robust("multi_krum:f=1"))

    doc = build_task(cfg, load_task_dataset(cfg))

    assert doc.strategy_config().robust == (RobustConfig("multi_krum", {"f": 1}),)


@pytest.mark.parametrize(("robust", "rules"), [(None, DEFAULT_ROBUST), ("none", ()), ("median", (RobustConfig("median"),))])
def test_configure_task_gets_the_default_update_norm_bound_unless_told_otherwise(
    robust: str | None, rules: tuple[RobustConfig, ...]
) -> None:
    from fedchain.cli.admin import task_document
    from fedchain.fl.strategies import strategy_from_config
    from fedchain.sim.config import DEFAULT_MAX_WEIGHT_SHARE

    doc = task_document(dataset="breast_cancer", arch=None, strategy="fedavg", strategy_params=(), robust=robust,
                        local_epochs=1, batch_size=32, lr=0.05, seed=0, min_updates=1, commit_duration=300,
                        max_commit_duration=3_600)

    assert doc.strategy_config().robust == rules
    assert strategy_from_config(doc.strategy_config()).max_weight_share == DEFAULT_MAX_WEIGHT_SHARE
    assert TaskDocument.from_bytes(doc.to_bytes()).strategy_config() == doc.strategy_config()


def test_data_attacks_poison_the_local_data() -> None:
    x = np.zeros((4, 1, 5, 5), np.float32)
    x[:, :, 0, 0] = 1.0
    y = np.array([0, 1, 2, 1])

    _, flipped = AttackSpec.parse("label_flip").poison_data(x, y, num_classes=3, seed=0)
    stamped, relabelled = AttackSpec.parse("backdoor:2").poison_data(x, y, num_classes=3, seed=0)

    assert flipped.tolist() == [2, 1, 0, 1]
    poisoned = np.flatnonzero(stamped[:, 0, -1, -1] == 1.0)
    assert len(poisoned) == 2 and (relabelled[poisoned] == 2).all()
    assert parse_attack("label_flip:1") == AttackerGroup(AttackSpec("label_flip"), 1)
    assert parse_attack("backdoor:2") == AttackerGroup(AttackSpec("backdoor"), 2)
    with pytest.raises(ConfigError, match="target class"):
        AttackSpec.parse("backdoor:3").poison_data(x, y, num_classes=3, seed=0)
    with pytest.raises(ConfigError, match="no argument"):
        AttackSpec.parse("label_flip:2")


def test_publish_task_records_the_documents_commit_window_bound_on_chain(chain_env, ipfs_store, tmp_path) -> None:
    from fedchain import reverts
    from fedchain.codec.canonical import sha256_digest
    from fedchain.errors import ContractRevertError
    from fedchain.protocol.blobs import initial_global
    from fedchain.protocol.task import load_task_document
    from tests.protocol.harness import make_fed, make_task_files

    files = make_task_files(tmp_path, commit_duration=600, max_commit_duration=900)
    fed = make_fed(chain_env, ipfs_store, files, tmp_path)
    blob = initial_global(fed.doc.spec(), fed.doc.seed)
    base_cid, base_digest = ipfs_store.put(blob), sha256_digest(blob)
    ledger = fed.aggregator.ledger

    task, doc = load_task_document(fed.reader, ipfs_store)
    with pytest.raises(ContractRevertError) as info:
        ledger.open_round(base_digest, base_cid, 901, 1)

    assert task.max_commit_duration == doc.max_commit_duration == 900
    assert isinstance(info.value, reverts.FederationCommitWindowTooLong)
    assert (info.value.commit_duration, info.value.max_commit_duration) == (901, 900)
    assert ledger.open_round(base_digest, base_cid, 900, 1).round_id == 1

"""The round engine over the in-memory transport, through the one experiment config."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from fedchain.codec.canonical import sha256_digest
from fedchain.engine.loop import run_rounds
from fedchain.engine.memory import InMemoryTransport, MemoryParticipant
from fedchain.errors import ConfigError
from fedchain.fl.attacks import AttackSpec
from fedchain.fl.datasets import load_dataset
from fedchain.fl.models import ModelSpec
from fedchain.fl.records import RobustConfig
from fedchain.protocol.blobs import encode_global
from fedchain.sim.config import AttackerGroup, ExperimentConfig, build_task, partition_clients
from fedchain.sim.memory import participant_address, run_in_memory


def _digest(model) -> bytes:  # type: ignore[no-untyped-def]
    return sha256_digest(encode_global(round_id=model.round_id, base_model_digest=model.base_model_digest,
                                       weights=model.weights, server_state=model.server_state,
                                       num_samples=model.num_samples))


def test_a_whole_in_memory_run_replays_bit_for_bit() -> None:
    data = load_dataset("breast_cancer", seed=3)
    config = ExperimentConfig(
        dataset="breast_cancer", strategy="scaffold", lr=0.1, batch_size=16, clients=4, partition="dirichlet",
        alpha=0.5, rounds=3, seed=3, min_updates=1,
        model=ModelSpec(arch="mlp", input_shape=data.input_shape, num_classes=2, hidden=(8,)),
    )
    first = run_in_memory(config, dataset=data)
    second = run_in_memory(config, dataset=data)
    assert first.final_model is not None and second.final_model is not None
    assert _digest(first.final_model) == _digest(second.final_model)
    assert [r.model_digest for r in first.rounds] == [r.model_digest for r in second.rounds]
    assert [r.accuracy for r in first.rounds] == [r.accuracy for r in second.rounds]
    assert first.final.auc is not None and first.final.auc > 0.9
    # the digest a round reports is the digest of the global model it published
    assert first.final.model_digest == _digest(first.final_model)
    other = run_in_memory(ExperimentConfig(**{**config.__dict__, "seed": 4}), dataset=data)
    assert other.final_model is not None and _digest(other.final_model) != _digest(first.final_model)


def test_multi_krum_rejects_every_scaled_attacker_in_memory() -> None:
    result = run_in_memory(ExperimentConfig(
        dataset="breast_cancer", strategy="fedavg", lr=0.1, batch_size=16, clients=7, rounds=2, min_updates=1,
        robust=(RobustConfig("multi_krum", {"f": 2}),), attacks=(AttackerGroup(AttackSpec("scaling", 10.0), 2),),
    ))
    assert len(result.attackers) == 2
    attackers = set(result.attackers)
    assert all(r.rejected_among(attackers) == 2 and len(r.rejected) == 2 and len(r.included) == 5 for r in result.rounds)
    assert result.to_json()["rounds"][0]["rejected"][0]["rule"] == "multi_krum"


def test_scaffold_client_rejected_by_a_robust_rule_keeps_its_control_variate() -> None:
    """c = mean(c_i) holds only when a rejected client's new c_i is thrown away."""
    cfg = ExperimentConfig(dataset="breast_cancer", strategy="scaffold", clients=5, rounds=1, min_updates=1, lr=0.1,
                           robust=(RobustConfig("multi_krum", {"f": 1}),),
                           attacks=(AttackerGroup(AttackSpec("scaling", 50.0), 1),))
    ds = load_dataset("breast_cancer")
    doc = build_task(cfg, ds)
    attack_of = cfg.attack_of()
    participants = [MemoryParticipant(participant_address(i, 0), p.x, p.y, attack_of.get(i))
                    for i, p in enumerate(partition_clients(cfg, ds))]
    transport = InMemoryTransport(doc, participants)

    report = run_rounds(transport, 1)

    attacker = participants[4].address
    assert [r.participant for r in report.final.rejected] == [attacker]
    assert transport.client_state(attacker) is None
    included = [p.address for p in participants[:4]]
    states = [transport.client_state(a) for a in included]
    assert all(s is not None and s.control for s in states)
    # the server's control variate is the mean of the included clients' c_i (all started at zero)
    model = transport.model
    server = {k.removeprefix("c/"): v for k, v in model.server_state.items()}
    assert server
    for name, value in server.items():
        mean = np.mean([np.asarray(s.control[name], np.float64) for s in states if s is not None], axis=0)  # type: ignore[union-attr]
        np.testing.assert_allclose(value, mean, rtol=1e-4, atol=1e-6)


def test_in_memory_transport_refuses_duplicate_addresses() -> None:
    cfg = ExperimentConfig(clients=2)
    ds = load_dataset("breast_cancer")
    doc = build_task(cfg, ds)
    x, y = ds.x_train[:10], ds.y_train[:10]
    with pytest.raises(ConfigError, match="distinct"):
        InMemoryTransport(doc, [MemoryParticipant(participant_address(0, 0), x, y)] * 2)


def test_participant_addresses_are_seeded() -> None:
    assert participant_address(0, 0) != participant_address(0, 1)
    assert participant_address(1, 0) == "0x" + hashlib.sha256(b"fedchain-sim/0/1").hexdigest()[:40]

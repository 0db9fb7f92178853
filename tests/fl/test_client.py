"""Local training: what each algorithm's update means, reproducibility, bad input."""

from __future__ import annotations

import numpy as np
import pytest

from fedchain.errors import DataSchemaError, TrainingError
from fedchain.fl import client
from fedchain.fl import strategies as S
from fedchain.fl.models import ModelSpec, build_model, evaluate, get_weights, set_weights
from fedchain.fl.records import CONTROL_PREFIX, ClientConfig, ClientState, UpdateKind
from fedchain.types import Address, Digest, RoundId

SPEC = ModelSpec(arch="mlp", input_shape=(4,), num_classes=3, hidden=(8,))
BASE = Digest(b"\x44" * 32)
ME = Address("0x" + "ab" * 20)


def data(n: int = 96, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n)
    x = rng.normal(0.0, 0.3, size=(n, 4)).astype(np.float32)
    x[np.arange(n), y] += 2.0  # class k is bright in feature k
    return x, y.astype(np.int64)


def train(config: ClientConfig, seed: int = 1, state: ClientState | None = None, weights=None, xy=None):  # type: ignore[no-untyped-def]
    x, y = xy if xy is not None else data()
    g = weights if weights is not None else get_weights(build_model(SPEC, 0))
    return client.train_local(
        SPEC, g, x, y, config, seed=seed, client_state=state, participant=ME, round_id=RoundId(1), base_model_digest=BASE
    )


def global_weights() -> dict[str, np.ndarray]:
    return get_weights(build_model(SPEC, 0))


def test_fedavg_update_is_local_minus_global() -> None:
    update, state, metrics = train(ClientConfig("fedavg", local_epochs=2, batch_size=32, lr=0.1))
    assert update.kind is UpdateKind.DELTA and update.num_samples == 96
    assert update.extras["local_steps"] == 6 and metrics["steps"] == 6.0
    assert sorted(update.tensors) == sorted(global_weights())
    assert all(v.dtype == np.float32 for v in update.tensors.values())
    assert state.control is None
    # replaying the same training by hand gives the same local model
    model = build_model(SPEC, 0)
    local = {k: global_weights()[k] + update.tensors[k] for k in update.tensors}
    set_weights(model, local)
    x, y = data()
    assert evaluate(model, x, y)["loss"] < evaluate(build_model(SPEC, 0), x, y)["loss"]


def test_same_seed_same_bits_other_seed_other_bits() -> None:
    config = ClientConfig("fedprox", local_epochs=1, batch_size=16, lr=0.1, mu=0.1)
    a, _, _ = train(config, seed=7)
    b, _, _ = train(config, seed=7)
    c, _, _ = train(config, seed=8)
    assert all(a.tensors[k].tobytes() == b.tensors[k].tobytes() for k in a.tensors)
    assert any(a.tensors[k].tobytes() != c.tensors[k].tobytes() for k in a.tensors)
    assert a.extras == b.extras


def norm(tensors) -> float:  # type: ignore[no-untyped-def]
    return float(np.sqrt(sum(float((v.astype(np.float64) ** 2).sum()) for v in tensors.values())))


def test_fedprox_proximal_term_keeps_the_model_near_the_global() -> None:
    free, _, _ = train(ClientConfig("fedprox", local_epochs=3, lr=0.1, mu=0.0))
    held, _, _ = train(ClientConfig("fedprox", local_epochs=3, lr=0.1, mu=5.0))
    assert norm(held.tensors) < 0.7 * norm(free.tensors)


def test_scaffold_returns_control_delta_and_new_state() -> None:
    config = ClientConfig("scaffold", local_epochs=1, batch_size=32, lr=0.1)
    update, state, _ = train(config)
    steps = update.extras["local_steps"]
    assert steps == 3
    names = sorted(global_weights())
    assert sorted(update.tensors) == sorted(names + [CONTROL_PREFIX + n for n in names])
    assert state.control is not None
    for n in names:
        # c_i+ = c_i - c + (x - y_i) / (K lr) with c_i = c = 0
        expected = (-update.tensors[n].astype(np.float64) / (steps * 0.1)).astype(np.float32)
        np.testing.assert_allclose(state.control[n], expected, rtol=1e-5, atol=1e-7)
        np.testing.assert_array_equal(update.tensors[CONTROL_PREFIX + n], state.control[n])
    # the next round starts from the persisted c_i and the server's c
    server_c = {n: np.full_like(v, 0.01) for n, v in state.control.items()}
    config2 = ClientConfig("scaffold", local_epochs=1, batch_size=32, lr=0.1, server_control=server_c)
    update2, state2, _ = train(config2, state=state)
    for n in names:
        np.testing.assert_allclose(
            update2.tensors[CONTROL_PREFIX + n], state2.control[n].astype(np.float64) - state.control[n], rtol=1e-5, atol=1e-6
        )


def test_scaffold_correction_changes_training() -> None:
    plain, _, _ = train(ClientConfig("scaffold", lr=0.1))
    shifted = {n: np.full_like(v, 0.5) for n, v in global_weights().items()}
    corrected, _, _ = train(ClientConfig("scaffold", lr=0.1, server_control=shifted))
    assert any(plain.tensors[k].tobytes() != corrected.tensors[k].tobytes() for k in global_weights())


def test_scaffold_rejects_a_control_variate_of_another_model() -> None:
    with pytest.raises(TrainingError, match="server control variate"):
        train(ClientConfig("scaffold", server_control={"nope": np.zeros(1, np.float32)}))


def test_fednova_normalises_by_the_step_count() -> None:
    nova, _, _ = train(ClientConfig("fednova", local_epochs=2, batch_size=32, lr=0.1))
    avg, _, _ = train(ClientConfig("fedavg", local_epochs=2, batch_size=32, lr=0.1))
    assert nova.kind is UpdateKind.NORMALIZED_DELTA and nova.extras["tau"] == 6.0
    for k in avg.tensors:
        np.testing.assert_allclose(nova.tensors[k] * 6.0, avg.tensors[k], rtol=1e-5, atol=1e-7)


def test_fednova_a_norm_with_momentum_matches_the_sum_of_coefficients() -> None:
    rho, tau = 0.9, 7
    # a_j = sum_{k<=tau-1-j} rho^k: the weight of gradient j in the final model
    coefficients = [sum(rho**k for k in range(tau - j)) for j in range(tau)]
    assert client.fednova_a_norm(tau, rho) == pytest.approx(sum(coefficients))
    assert client.fednova_a_norm(tau, 0.0) == 7.0


def test_qfedavg_with_q_zero_is_the_delta_over_lr() -> None:
    avg, _, _ = train(ClientConfig("fedavg", lr=0.1))
    q0, _, metrics = train(ClientConfig("qfedavg", lr=0.1, q=0.0))
    assert q0.kind is UpdateKind.QFFL
    assert q0.extras["h"] == pytest.approx(10.0)
    assert metrics["loss_at_global"] > 0
    for k in avg.tensors:
        np.testing.assert_allclose(q0.tensors[k], avg.tensors[k] * 10.0, rtol=1e-5, atol=1e-6)


def test_qfedavg_h_term() -> None:
    q = 2.0
    avg, _, _ = train(ClientConfig("fedavg", lr=0.1))
    upd, _, _ = train(ClientConfig("qfedavg", lr=0.1, q=q))
    f = float(upd.extras["loss_at_global"])
    sq = sum(float((v.astype(np.float64) ** 2).sum()) for v in avg.tensors.values())
    assert upd.extras["h"] == pytest.approx(q * f ** (q - 1) * 100.0 * sq + 10.0 * f**q, rel=1e-4)


def test_strategy_configs_drive_local_training_end_to_end() -> None:
    g = global_weights()
    x, y = data(120)

    local = {"lr": 0.1, "local_epochs": 3, "batch_size": 8}
    strategies = (S.FedAvg(**local), S.FedProx(mu=0.01, **local), S.Scaffold(**local), S.FedNova(**local),
                  S.QFedAvg(q=0.2, **local))
    for strategy in strategies:
        state = strategy.initial_state(g)
        weights = g
        for r in range(1, 4):
            config = strategy.configure_round(RoundId(r), weights, state)
            ups = []
            for i in range(3):
                u, _, _ = client.train_local(
                    SPEC, weights, x[i::3], y[i::3], config, seed=r * 10 + i, participant=Address(f"0x{i:040x}"),
                    round_id=RoundId(r), base_model_digest=BASE,
                )
                ups.append(u)
            result = strategy.aggregate_round(weights, ups, state, round_id=RoundId(r), base_model_digest=BASE)
            assert result.rejected == ()
            weights, state = dict(result.weights), dict(result.server_state)
        model = build_model(SPEC, 0)
        set_weights(model, weights)
        assert evaluate(model, x, y)["accuracy"] > 0.8, strategy.name


@pytest.mark.parametrize(
    ("xy", "message"),
    [
        ((np.zeros((0, 4), np.float32), np.zeros(0, np.int64)), "no training samples"),
        ((np.zeros((5, 4), np.float32), np.zeros(4, np.int64)), "5 feature rows but 4 labels"),
        ((np.zeros((4, 4), np.float32), np.zeros(4, np.float32)), "labels must be integers"),
        ((np.full((4, 4), np.nan, np.float32), np.zeros(4, np.int64)), "NaN or Inf"),
    ],
)
def test_bad_data_is_a_schema_error(xy, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataSchemaError, match=message):
        train(ClientConfig("fedavg"), xy=xy)


def test_divergence_is_a_training_error() -> None:
    huge = {k: np.full_like(v, 1e30) for k, v in global_weights().items()}
    with pytest.raises(TrainingError, match="diverged|non-finite"):
        train(ClientConfig("fedavg", lr=10.0), weights=huge)

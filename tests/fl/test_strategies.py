"""Server strategies: each one's combination rule, robust composition, configs and digests."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fedchain.errors import AggregationError, ConfigError, TooFewUpdatesError
from fedchain.fl import records, robust
from fedchain.fl import strategies as S
from fedchain.fl.records import ClientUpdate, RobustConfig, StrategyConfig, UpdateKind
from fedchain.types import Address, Digest, RoundId

BASE = Digest(b"\x33" * 32)
ROUND = RoundId(5)
GLOBAL = {"b": np.array([1.0, -1.0], np.float32), "w": np.array([[0.5]], np.float32)}


def addr(i: int) -> Address:
    return Address(f"0x{i:040x}")


def upd(i: int, b: list[float], w: float, n: int = 10, kind: UpdateKind = UpdateKind.DELTA, **extra: object) -> ClientUpdate:
    tensors = {"b": np.array(b, np.float32), "w": np.array([[w]], np.float32)}
    control = extra.pop("control", None)
    if control is not None:
        tensors.update({"cv/b": np.array(control[0], np.float32), "cv/w": np.array([[control[1]]], np.float32)})  # type: ignore[index]
    return ClientUpdate(addr(i), ROUND, n, tensors, BASE, kind=kind, extras=extra)  # type: ignore[arg-type]


def run(strategy: S._Strategy, updates: list[ClientUpdate], state: dict | None = None):  # type: ignore[type-arg]
    return strategy.aggregate_round(GLOBAL, updates, state or {}, round_id=ROUND, base_model_digest=BASE)


def test_fedavg_applies_the_sample_weighted_mean_delta() -> None:
    result = run(S.FedAvg(), [upd(1, [1.0, 0.0], 0.0, n=1), upd(2, [0.0, 4.0], 4.0, n=3)])
    np.testing.assert_array_equal(result.weights["b"], np.array([1.25, 2.0], np.float32))
    np.testing.assert_array_equal(result.weights["w"], np.array([[3.5]], np.float32))
    assert result.included == (addr(1), addr(2)) and result.rejected == ()
    assert dict(result.server_state) == {}


def test_server_lr_scales_the_step() -> None:
    result = run(S.FedAvg(server_lr=0.5), [upd(1, [2.0, 2.0], 2.0)])
    np.testing.assert_array_equal(result.weights["b"], np.array([2.0, 0.0], np.float32))


def test_invalid_updates_are_rejected_not_fatal() -> None:
    bad = ClientUpdate(addr(9), ROUND, 10, {"b": np.array([np.nan, 0.0], np.float32), "w": np.zeros((1, 1), np.float32)}, BASE)
    result = run(S.FedAvg(), [upd(1, [1.0, 1.0], 1.0), bad])
    assert result.included == (addr(1),)
    (rej,) = result.rejected
    assert rej.participant == addr(9) and rej.rule == "validation" and "NaN" in rej.reason
    assert result.metrics["num_rejected"] == 1


def test_too_few_valid_updates() -> None:
    with pytest.raises(TooFewUpdatesError) as err:
        run(S.FedAvg(min_updates=2), [upd(1, [1.0, 1.0], 1.0), upd(2, [1.0, 1.0], 1.0, n=0)])
    assert (err.value.valid, err.value.minimum) == (1, 2)


def test_fedavg_with_multi_krum_drops_the_attacker() -> None:
    honest = [upd(i, [0.1 * i, 0.0], 0.0) for i in range(1, 5)]
    attacker = upd(7, [-50.0, 50.0], 50.0)
    result = run(S.FedAvg(robust=(robust.MultiKrum(f=1),)), honest + [attacker])
    assert attacker.participant not in result.included
    assert [r.participant for r in result.rejected] == [attacker.participant]
    np.testing.assert_allclose(result.weights["b"], [1.25, -1.0], rtol=1e-6)


def test_fedavg_with_median() -> None:
    ups = [upd(1, [1.0, 1.0], 1.0), upd(2, [2.0, 2.0], 2.0), upd(3, [90.0, 90.0], 90.0)]
    result = run(S.FedAvg(robust=(robust.CoordinateMedian(),)), ups)
    np.testing.assert_array_equal(result.weights["b"], np.array([3.0, 1.0], np.float32))


def test_fedprox_sends_mu_to_clients() -> None:
    config = S.FedProx(mu=0.3).configure_round(ROUND, GLOBAL, {})
    assert (config.algorithm, config.mu) == ("fedprox", 0.3)


def test_fednova_rescales_by_tau_eff() -> None:
    # normalised updates d_i = delta_i / tau_i; p = (0.25, 0.75); tau_eff = 0.25*2 + 0.75*4 = 3.5
    ups = [
        upd(1, [1.0, 0.0], 0.0, n=1, kind=UpdateKind.NORMALIZED_DELTA, tau=2.0),
        upd(2, [0.0, 1.0], 1.0, n=3, kind=UpdateKind.NORMALIZED_DELTA, tau=4.0),
    ]
    result = run(S.FedNova(), ups)
    assert result.metrics["tau_eff"] == 3.5
    np.testing.assert_allclose(result.weights["b"], [1.0 + 3.5 * 0.25, -1.0 + 3.5 * 0.75], rtol=1e-6)


def test_fednova_rejects_updates_without_tau_or_of_the_wrong_kind() -> None:
    ups = [upd(1, [1.0, 0.0], 0.0, kind=UpdateKind.NORMALIZED_DELTA), upd(2, [1.0, 0.0], 0.0, tau=2.0),
           upd(3, [1.0, 0.0], 0.0, kind=UpdateKind.NORMALIZED_DELTA, tau=1.0)]
    result = run(S.FedNova(), ups)
    assert result.included == (addr(3),)
    reasons = {r.participant: r.reason for r in result.rejected}
    assert "tau" in reasons[addr(1)] and "update kind" in reasons[addr(2)]


def test_scaffold_updates_the_server_control_variate() -> None:
    strategy = S.Scaffold(num_clients=4)
    state = strategy.initial_state(GLOBAL)
    assert sorted(state) == ["c/b", "c/w"]
    ups = [upd(1, [1.0, 1.0], 1.0, control=([2.0, 0.0], 4.0)), upd(2, [1.0, 1.0], 1.0, n=30, control=([0.0, 2.0], 0.0))]
    result = run(strategy, ups, state)
    # c += |S|/N * unweighted mean(dc) = 0.5 * ([1, 1], 2)
    np.testing.assert_array_equal(result.server_state["c/b"], np.array([0.5, 0.5], np.float32))
    np.testing.assert_array_equal(result.server_state["c/w"], np.array([[1.0]], np.float32))
    config = strategy.configure_round(ROUND, result.weights, result.server_state)
    assert config.server_control is not None
    np.testing.assert_array_equal(config.server_control["b"], result.server_state["c/b"])


def test_scaffold_requires_control_deltas() -> None:
    result = run(S.Scaffold(), [upd(1, [1.0, 1.0], 1.0), upd(2, [1.0, 1.0], 1.0, control=([0.0, 0.0], 0.0))])
    assert result.included == (addr(2),)
    assert "cv/b" in result.rejected[0].reason


def test_qfedavg_divides_by_the_mean_h() -> None:
    ups = [
        upd(1, [2.0, 0.0], 0.0, n=1, kind=UpdateKind.QFFL, h=1.0),
        upd(2, [0.0, 2.0], 4.0, n=99, kind=UpdateKind.QFFL, h=3.0),
    ]
    result = run(S.QFedAvg(q=1.0), ups)  # Σ Δ / Σ h = ([2, 2], 4) / 4; sample counts do not matter
    np.testing.assert_allclose(result.weights["b"], [1.5, -0.5], rtol=1e-6)
    np.testing.assert_allclose(result.weights["w"], [[1.5]], rtol=1e-6)


def test_fedadam_keeps_moments_in_server_state() -> None:
    strategy = S.FedAdam(server_lr=0.1)
    first = run(strategy, [upd(1, [1.0, -1.0], 0.0)], strategy.initial_state(GLOBAL))
    np.testing.assert_allclose(first.server_state["m/b"], [0.1, -0.1], rtol=1e-6)
    np.testing.assert_allclose(first.weights["b"], [1.0 + 0.1 * 0.1 / (0.1 + 1e-3), -1.0 - 0.1 * 0.1 / (0.1 + 1e-3)], rtol=1e-6)
    second = run(strategy, [upd(1, [1.0, -1.0], 0.0)], dict(first.server_state))
    np.testing.assert_allclose(second.server_state["m/b"], [0.19, -0.19], rtol=1e-6)


def test_wrong_server_state_is_an_aggregation_error() -> None:
    with pytest.raises(AggregationError, match="server state"):
        run(S.Scaffold(), [upd(1, [1.0, 1.0], 1.0, control=([0.0, 0.0], 0.0))], {"c/b": np.zeros(2, np.float32)})


@pytest.mark.parametrize("name", sorted(S.STRATEGIES))
def test_config_round_trip_and_digest(name: str) -> None:
    strategy = S.STRATEGIES[name](robust=(robust.NormClip(5.0), robust.TrimmedMean(0.1)))
    config = strategy.config()
    rebuilt = S.strategy_from_config(config)
    assert rebuilt.config() == config
    assert rebuilt.digest() == strategy.digest() and len(strategy.digest()) == 32


def test_digest_covers_params_and_robust_rules() -> None:
    base = S.FedAvg().digest()
    assert S.FedAvg(lr=0.1).digest() != base
    assert S.FedAvg(robust=(robust.CoordinateMedian(),)).digest() != base
    assert S.FedProx(mu=0.0).digest() != base
    assert S.FedAvg().digest() == base


def test_code_digest_is_the_digest_of_the_aggregation_source() -> None:
    here = Path(records.__file__).parent
    sources = {name: (here / name).read_bytes() for name in records.AGGREGATION_SOURCES}
    assert set(records.AGGREGATION_SOURCES) == {"aggregate.py", "privacy.py", "records.py", "robust.py", "strategies.py"}
    assert records.AGGREGATION_CODE_DIGEST == records.source_digest(sources)
    assert records.CODE_VERSION.endswith(records.AGGREGATION_CODE_DIGEST.hex())
    assert StrategyConfig("fedavg").to_json()["code_version"] == records.CODE_VERSION


def test_source_digest_ignores_line_endings_and_nothing_else() -> None:
    lf = {"aggregate.py": b"x = 1\ny = 2\n", "robust.py": b"z = 3\n"}
    crlf = {"aggregate.py": b"x = 1\r\ny = 2\r\n", "robust.py": b"z = 3\r"}
    assert records.source_digest(crlf) == records.source_digest(lf)
    assert records.source_digest({**lf, "aggregate.py": b"x = 1\ny = 3\n"}) != records.source_digest(lf)
    assert records.source_digest({**lf, "strategies.py": b"z = 3\n"}) != records.source_digest(lf)


def _append_comment(path: Path) -> None:
    path.write_bytes(path.read_bytes() + b"\n# a change\n")


def _to_crlf(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"\n", b"\r\n"))


_DIGEST_PROBE = (
    "import fedchain\n"
    "from fedchain.fl.records import StrategyConfig\n"
    "print(fedchain.__file__)\n"
    "print(StrategyConfig('fedavg', {'lr': 0.1}).digest().hex())\n"
)


@pytest.mark.parametrize(
    ("module", "edit", "changes"),
    [
        ("aggregate.py", _append_comment, True),
        ("robust.py", _append_comment, True),
        ("strategies.py", _to_crlf, False),
        ("client.py", _append_comment, False),
    ],
)
def test_editing_the_aggregation_code_changes_the_strategy_digest(
    tmp_path: Path, module: str, edit: Callable[[Path], None], changes: bool
) -> None:
    package = Path(records.__file__).parents[1]
    shutil.copytree(package, tmp_path / "fedchain", ignore=shutil.ignore_patterns("__pycache__"))
    edit(tmp_path / "fedchain" / "fl" / module)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(
        [sys.executable, "-c", _DIGEST_PROBE], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    location, digest = done.stdout.split()
    assert Path(location).is_relative_to(tmp_path)
    assert (digest != StrategyConfig("fedavg", {"lr": 0.1}).digest().hex()) is changes


def test_strategy_from_config_accepts_integer_floats() -> None:
    strategy = S.strategy_from_config(StrategyConfig("fedprox", {"mu": 1, "lr": 0.1}, (RobustConfig("median"),)))
    assert isinstance(strategy, S.FedProx) and strategy.mu == 1.0
    assert strategy.robust == (robust.CoordinateMedian(),)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (StrategyConfig("fedsgd"), "unknown strategy 'fedsgd'"),
        (StrategyConfig("fedavg", {"eta": 1.0}), "unknown parameter\\(s\\) eta"),
        (StrategyConfig("fedavg", {"local_epochs": 1.5}), "must be an integer"),
        (StrategyConfig("fedavg", {"lr": "fast"}), "must be a number"),
        (StrategyConfig("fedavg", {"lr": -1.0}), "lr must be a positive"),
        (StrategyConfig("fedavg", {}, (RobustConfig("bulyan"),)), "unknown robust rule"),
    ],
)
def test_bad_strategy_configs(config: StrategyConfig, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        S.strategy_from_config(config)

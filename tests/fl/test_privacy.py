"""Differential privacy: accountants against the libraries' own, calibration, the DP-SGD model check,
per-sample clipping in training, client-level clipping and noise, and the noise-presence test."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import dp_accounting
import numpy as np
import pytest
from dp_accounting import pld, rdp
from hypothesis import given, settings
from hypothesis import strategies as st
from opacus.accountants import PRVAccountant, RDPAccountant
from opacus.accountants.utils import get_noise_multiplier
from scipy.stats import chi2
from torch import nn

from fedchain.errors import ConfigError, PrivacyError
from fedchain.fl import client
from fedchain.fl.models import ModelSpec, build_model, evaluate, get_weights, set_weights
from fedchain.fl.privacy import (
    AccountantInputs,
    PrivacyPolicy,
    calibrate_noise_multiplier,
    check_private_model,
    epsilon,
    epsilon_fixed,
    noise_check,
    private_variant,
    privatize_update,
)
from fedchain.fl.records import CONTROL_PREFIX, ClientConfig, ClientUpdate, UpdateKind
from fedchain.types import Address, Digest, RoundId

ME = Address("0x" + "ab" * 20)
BASE = Digest(b"\x44" * 32)
SPEC = ModelSpec(arch="cnn", input_shape=(1, 8, 8), num_classes=3, hidden=(8,), channels=(4,))


def dpsgd(accountant: str = "rdp", z: float = 1.1, q: float = 0.01, steps: int = 1000, delta: float = 1e-5) -> AccountantInputs:
    return AccountantInputs("dpsgd", accountant, z, q, steps, delta, 1.0)


def client_inputs(accountant: str = "rdp", z: float = 1.0, q: float = 1.0, steps: int = 1) -> AccountantInputs:
    return AccountantInputs("client", accountant, z, q, steps, 1e-5, 1.0)


def dp_accounting_epsilon(accountant: Any, z: float, q: float, steps: int, delta: float) -> float:
    event: Any = dp_accounting.GaussianDpEvent(z)
    if q < 1.0:
        event = dp_accounting.PoissonSampledDpEvent(q, event)
    accountant.compose(dp_accounting.SelfComposedDpEvent(event, steps))
    return float(accountant.get_epsilon(delta))


# --- accountants ----------------------------------------------------------------------------------
def test_dpsgd_rdp_epsilon_is_opacus_own_for_the_reference_setting() -> None:
    ours = epsilon([dpsgd(steps=10_000)])
    acc = RDPAccountant()
    acc.history = [(1.1, 0.01, 10_000)]
    assert ours == acc.get_epsilon(delta=1e-5)
    assert ours == pytest.approx(5.632, abs=1e-3)
    # dp-accounting's RDP accountant agrees on the same mechanism (different orders: to 1e-4)
    assert ours == pytest.approx(dp_accounting_epsilon(rdp.RdpAccountant(), 1.1, 0.01, 10_000, 1e-5), abs=1e-4)


def test_ten_rounds_of_a_thousand_steps_are_one_history_of_ten_thousand() -> None:
    assert epsilon([dpsgd(steps=1000)] * 10) == epsilon([dpsgd(steps=10_000)])
    assert epsilon([dpsgd("prv", steps=1000)] * 10) == epsilon([dpsgd("prv", steps=10_000)])


def test_dpsgd_prv_epsilon_is_opacus_own_and_tighter_than_rdp() -> None:
    ours = epsilon([dpsgd("prv", steps=10_000)])
    acc = PRVAccountant()
    acc.history = [(1.1, 0.01, 10_000)]
    assert ours == acc.get_epsilon(delta=1e-5)
    assert 5.0 < ours < epsilon([dpsgd(steps=10_000)])


def test_history_with_different_noise_composes_like_opacus() -> None:
    history = [dpsgd(z=1.1, steps=500), dpsgd(z=2.0, steps=300), dpsgd(z=1.1, steps=500)]
    acc = RDPAccountant()
    acc.history = [(1.1, 0.01, 500), (2.0, 0.01, 300), (1.1, 0.01, 500)]
    assert epsilon(history) == pytest.approx(acc.get_epsilon(delta=1e-5), rel=1e-12)


@pytest.mark.parametrize(("name", "make"), [("rdp", rdp.RdpAccountant), ("pld", pld.PLDAccountant)])
@pytest.mark.parametrize(("q", "z", "rounds"), [(1.0, 2.0, 20), (0.1, 1.0, 50)])
def test_client_epsilon_is_dp_accountings_own(name: str, make: Any, q: float, z: float, rounds: int) -> None:
    ours = epsilon([client_inputs(name, z=z, q=q)] * rounds)
    assert ours == pytest.approx(dp_accounting_epsilon(make(), z, q, rounds, 1e-5), rel=1e-9)


def test_client_gaussian_without_sampling_matches_the_analytic_gaussian() -> None:
    # one Gaussian release at z = 1: the exact (PLD) figure is the analytic Gaussian mechanism's, 4.377...
    assert epsilon([client_inputs("pld", z=1.0)]) == pytest.approx(4.377, abs=2e-3)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([0.8, 1.1, 2.0]), st.sampled_from([0.01, 0.1]), st.integers(1, 500)),
                min_size=1, max_size=6), st.randoms())
def test_epsilon_does_not_depend_on_the_order_of_the_rounds(rounds: list[tuple[float, float, int]], rnd: Any) -> None:
    history = [dpsgd(z=z, q=q, steps=n) for z, q, n in rounds]
    shuffled = list(history)
    rnd.shuffle(shuffled)
    assert epsilon(shuffled) == epsilon(history)


def test_empty_history_costs_nothing_and_rounds_only_add() -> None:
    assert epsilon([]) == 0.0
    curve = [epsilon([client_inputs()] * k) for k in range(1, 6)]
    assert all(a < b for a, b in zip(curve, curve[1:], strict=False))


@pytest.mark.parametrize(
    ("other", "field"),
    [
        (client_inputs(), "mechanism"),
        (dpsgd("prv"), "accountant"),
        (dpsgd(delta=1e-6), "delta"),
    ],
)
def test_a_history_mixing_mechanism_accountant_or_delta_is_refused(other: AccountantInputs, field: str) -> None:
    with pytest.raises(PrivacyError, match=f"round 1 has {field}"):
        epsilon([dpsgd(), other])


def test_epsilon_fixed_rounds_up() -> None:
    assert epsilon_fixed(5.6319923) == 5_631_993
    assert epsilon_fixed(1.0) == 1_000_000
    with pytest.raises(PrivacyError):
        epsilon_fixed(math.inf)


# --- calibration ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("mechanism", "accountant", "q", "steps"),
    [("dpsgd", "rdp", 0.01, 1000), ("client", "rdp", 1.0, 50), ("client", "pld", 1.0, 50)],
)
def test_calibrated_noise_is_the_smallest_that_meets_the_target(mechanism: str, accountant: str, q: float, steps: int) -> None:
    z = calibrate_noise_multiplier(mechanism, accountant, q, 1e-5, 3.0, steps)

    def eps(mult: float) -> float:
        return epsilon([AccountantInputs(mechanism, accountant, mult, q, steps, 1e-5, 1.0)])

    assert eps(z) <= 3.0 < eps(z * 0.99)
    assert eps(z) > 3.0 * 0.99  # close to the target, not just below it


def test_dpsgd_calibration_agrees_with_opacus_get_noise_multiplier() -> None:
    ours = calibrate_noise_multiplier("dpsgd", "rdp", 0.01, 1e-5, 3.0, 1000)
    theirs = get_noise_multiplier(target_epsilon=3.0, target_delta=1e-5, sample_rate=0.01, steps=1000, accountant="rdp")
    assert ours <= theirs * (1 + 1e-4)  # Opacus stops within 0.01 epsilon of the target: never below ours
    assert ours >= theirs * 0.98


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"target_epsilon": 0.0}, "target_epsilon"),
        ({"delta": 1.0}, "delta"),
        ({"sample_rate": 1.5}, "sample_rate"),
        ({"total_steps": 0}, "total_steps"),
        ({"accountant": "moments"}, "accountant"),
    ],
)
def test_calibration_refuses_bad_input_naming_it(kwargs: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"mechanism": "dpsgd", "accountant": "rdp", "sample_rate": 0.01, "delta": 1e-5,
                            "target_epsilon": 3.0, "total_steps": 100, **kwargs}
    with pytest.raises(ConfigError, match=field):
        calibrate_noise_multiplier(**args)


# --- the policy -----------------------------------------------------------------------------------
def policy(**changes: Any) -> PrivacyPolicy:
    fields: dict[str, Any] = {"mechanism": "dpsgd", "clip": 1.0, "noise_multiplier": 1.1, "sample_rate": 0.1,
                              "delta": 1e-5, "accountant": "rdp", "epsilon_budget": 8.0, **changes}
    return PrivacyPolicy(**fields)


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"noise_multiplier": 0.0}, "noise_multiplier"),
        ({"clip": -1.0}, "clip"),
        ({"delta": 1.0}, "delta"),
        ({"accountant": "moments"}, "accountant"),
        ({"accountant": "pld"}, "accountant"),  # pld accounts client DP, not DP-SGD
        ({"sample_rate": 0.0}, "sample_rate"),
        ({"epsilon_budget": math.nan}, "epsilon_budget"),
        ({"min_clients": 3}, "min_clients"),
        ({"mechanism": "central"}, "mechanism"),
    ],
)
def test_bad_policy_is_refused_naming_the_field(changes: dict[str, Any], field: str) -> None:
    with pytest.raises(ConfigError, match=field):
        policy(**changes)


def test_policy_round_inputs_travel_in_the_extras() -> None:
    p = policy(sample_rate=0.03)
    inputs = p.round_inputs(2)
    assert inputs.steps == 2 * 34 == p.steps_per_round(2)
    assert AccountantInputs.from_extras({"loss": 1.0, **inputs.to_extras()}) == inputs
    assert AccountantInputs.from_extras({"loss": 1.0}) is None
    assert PrivacyPolicy.from_json(p.to_json()) == p and PrivacyPolicy.from_json(p.to_json()).digest() == p.digest()


# --- models DP-SGD can train ----------------------------------------------------------------------
def batchnorm_model() -> nn.Module:
    return nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(256, 3))


def test_a_batchnorm_model_is_refused_naming_the_layer_and_groupnorm() -> None:
    with pytest.raises(ConfigError, match=r"layer '1' \(BatchNorm2d\).*GroupNorm"):
        check_private_model(batchnorm_model())


def test_the_model_zoo_cnn_passes_and_the_private_variant_swaps_in_groupnorm() -> None:
    check_private_model(build_model(SPEC, 0))
    fixed = private_variant(batchnorm_model())
    assert any(isinstance(m, nn.GroupNorm) for m in fixed.modules())
    assert not any(isinstance(m, nn.BatchNorm2d) for m in fixed.modules())


# --- DP-SGD training ------------------------------------------------------------------------------
def images(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, size=n).astype(np.int64)
    x = rng.normal(0.0, 0.3, size=(n, 1, 8, 8)).astype(np.float32)
    x[np.arange(n), 0, y, :] += 2.0  # class k lights up row k
    return x, y


def dp_train(p: PrivacyPolicy | None, noise_seed: int | None = 5, config: ClientConfig | None = None,
             module: nn.Module | None = None) -> tuple[ClientUpdate, dict[str, float]]:
    x, y = images()
    g = get_weights(build_model(SPEC, 0))
    cfg = config if config is not None else ClientConfig("fedavg", local_epochs=1, lr=0.1)
    update, _, metrics = client.train_module(
        module if module is not None else build_model(SPEC, 1), g, x, y, cfg, seed=1, participant=ME,
        round_id=RoundId(1), base_model_digest=BASE, privacy=p, noise_seed=noise_seed,
    )
    return update, metrics


def same_bits(a: ClientUpdate, b: ClientUpdate) -> bool:
    return sorted(a.tensors) == sorted(b.tensors) and all(a.tensors[k].tobytes() == b.tensors[k].tobytes() for k in a.tensors)


def test_dpsgd_training_is_reproducible_from_its_noise_seed_and_carries_its_accountant_inputs() -> None:
    p = policy(sample_rate=0.25)
    a, metrics = dp_train(p, noise_seed=5)
    b, _ = dp_train(p, noise_seed=5)
    c, _ = dp_train(p, noise_seed=6)
    assert same_bits(a, b) and not same_bits(a, c)
    assert a.kind is UpdateKind.DELTA and sorted(a.tensors) == sorted(get_weights(build_model(SPEC, 0)))
    assert AccountantInputs.from_extras(a.extras) == p.round_inputs(1)
    assert a.extras["local_steps"] == 4 == metrics["steps"] == p.steps_per_round(1)
    assert "loss" not in a.extras and math.isfinite(metrics["loss"])  # the loss is not released


def test_dpsgd_training_learns() -> None:
    x, y = images(256, seed=3)
    g = get_weights(build_model(SPEC, 0))
    p = policy(clip=1.0, noise_multiplier=0.8, sample_rate=0.125)
    update, _, _ = client.train_module(
        build_model(SPEC, 0), g, x, y, ClientConfig("fedavg", local_epochs=4, lr=0.5), seed=1, participant=ME,
        round_id=RoundId(1), base_model_digest=BASE, privacy=p, noise_seed=9,
    )
    model = build_model(SPEC, 0)
    set_weights(model, {k: g[k] + update.tensors[k] for k in g})
    before, after = evaluate(build_model(SPEC, 0), x, y), evaluate(model, x, y)
    assert after["loss"] < before["loss"] and after["accuracy"] > max(0.8, before["accuracy"])


def test_dpsgd_training_without_a_noise_seed_draws_a_fresh_one() -> None:
    p = policy(sample_rate=0.25)
    assert not same_bits(dp_train(p, noise_seed=None)[0], dp_train(p, noise_seed=None)[0])


def test_dpsgd_leaves_the_callers_module_without_opacus_hooks() -> None:
    module = build_model(SPEC, 1)
    dp_train(policy(sample_rate=0.25), module=module)
    assert not any(hasattr(p, "grad_sample") for p in module.parameters())
    assert all(not m._forward_hooks and not m._backward_hooks for m in module.modules())


def test_dpsgd_takes_its_noisy_step_on_an_empty_poisson_sample() -> None:
    # 64 records at q = 0.005: most of the 200 steps sample no record, and each still takes its step
    update, metrics = dp_train(policy(sample_rate=0.005), config=ClientConfig("fedavg", local_epochs=1, lr=0.01))
    assert metrics["steps"] == 200 and update.extras["dp_steps"] == 200
    assert metrics["num_samples"] == 64 and all(np.isfinite(v).all() for v in update.tensors.values())


def test_dpsgd_clips_per_sample_gradients() -> None:
    # every record in every step (q = 1), noise negligible: one step moves the weights by at most lr * clip
    clip, lr, epochs = 0.01, 0.5, 3
    p = policy(clip=clip, noise_multiplier=1e-6, sample_rate=1.0)
    config = ClientConfig("fedavg", local_epochs=epochs, batch_size=64, lr=lr)
    private, _ = dp_train(p, config=config)
    plain, _ = dp_train(None, config=config)

    def norm(u: ClientUpdate) -> float:
        return math.sqrt(sum(float(np.sum(v.astype(np.float64) ** 2)) for v in u.tensors.values()))

    bound = lr * epochs * clip
    assert norm(plain) > 10 * bound  # without clipping the same training moves much further
    assert norm(private) <= bound * (1 + 1e-3)


def test_dpsgd_adds_noise_of_z_times_clip_to_the_summed_gradients() -> None:
    # q = 1, one step, noise far above the clipped gradients (norm <= 1): delta = -lr (sum + noise) / 64
    z, lr = 1000.0, 1.0
    update, _ = dp_train(policy(clip=1.0, noise_multiplier=z, sample_rate=1.0), config=ClientConfig("fedavg", lr=lr))
    values = flat(update.tensors)
    assert values.size > 500
    assert float(np.std(values)) == pytest.approx(lr * z * 1.0 / 64, rel=0.1)
    assert abs(float(np.mean(values))) < 4 * lr * z / 64 / math.sqrt(values.size)


def test_dpsgd_refuses_a_batchnorm_model() -> None:
    module = batchnorm_model()
    x, y = images()
    with pytest.raises(ConfigError, match="BatchNorm2d"):
        client.train_module(module, get_weights(module), x, y, ClientConfig("fedavg"), seed=1, participant=ME,
                            round_id=RoundId(1), base_model_digest=BASE, privacy=policy(), noise_seed=1)


@pytest.mark.parametrize(
    ("config", "match"),
    [
        (ClientConfig("scaffold"), "'scaffold'"),
        (ClientConfig("fednova"), "'fednova'"),
        (ClientConfig("fedavg", mu=0.1), "mu = 0.1"),
    ],
)
def test_dpsgd_refuses_what_it_cannot_train_privately(config: ClientConfig, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        dp_train(policy(), config=config)


def test_training_refuses_a_client_level_policy() -> None:
    with pytest.raises(ConfigError, match="privatize_update"):
        dp_train(client_policy())


def test_dpsgd_accepts_momentum_on_the_noised_gradient() -> None:
    update, _ = dp_train(policy(sample_rate=0.25), config=ClientConfig("fedavg", lr=0.05, momentum=0.9))
    assert all(np.isfinite(v).all() for v in update.tensors.values())


# --- client-level DP ------------------------------------------------------------------------------
def client_policy(**changes: Any) -> PrivacyPolicy:
    fields: dict[str, Any] = {"mechanism": "client", "clip": 1.0, "noise_multiplier": 1.0, "sample_rate": 1.0,
                              "delta": 1e-5, "accountant": "rdp", "epsilon_budget": 8.0, "min_clients": 4,
                              "noise_check_alpha": 0.01, **changes}
    return PrivacyPolicy(**fields)


def raw_update(scale: float = 3.0, d: int = 20, seed: int = 0, **kw: Any) -> ClientUpdate:
    rng = np.random.default_rng(seed)
    tensors = {"b": (scale * rng.normal(size=(d // 4,)) / math.sqrt(d)).astype(np.float32),
               "w": (scale * rng.normal(size=(d - d // 4,)) / math.sqrt(d)).astype(np.float32)}
    return ClientUpdate(ME, RoundId(1), 10, tensors, BASE, extras={"local_steps": 3, "loss": 0.7}, **kw)


def flat(tensors: Any) -> np.ndarray:
    return np.concatenate([np.asarray(tensors[k], np.float64).ravel() for k in sorted(tensors)])


def test_privatize_clips_jointly_then_adds_the_noise_share() -> None:
    p = client_policy()
    update = raw_update(scale=3.0)
    out = privatize_update(update, p, np.random.default_rng(11))
    # the same generator's draws, in the same (sorted) order, are the noise
    rng = np.random.default_rng(11)
    noise = np.concatenate([rng.normal(0.0, p.noise_std(), size=update.tensors[k].shape) for k in sorted(update.tensors)])
    clipped = flat(out.tensors) - noise
    raw = flat(update.tensors)
    assert np.linalg.norm(raw) > 1.0
    assert np.linalg.norm(clipped) == pytest.approx(1.0, rel=1e-5)
    np.testing.assert_allclose(clipped, raw / np.linalg.norm(raw), atol=1e-6)
    assert p.noise_std() == 0.5 and all(v.dtype == np.float32 for v in out.tensors.values())


def test_privatize_leaves_a_small_update_unscaled_and_is_a_function_of_the_generator() -> None:
    p = client_policy()
    small = raw_update(scale=0.1)
    a = privatize_update(small, p, np.random.default_rng(3))
    b = privatize_update(small, p, np.random.default_rng(3))
    c = privatize_update(small, p, np.random.default_rng(4))
    assert same_bits(a, b) and not same_bits(a, c)
    rng = np.random.default_rng(3)
    noise = np.concatenate([rng.normal(0.0, 0.5, size=small.tensors[k].shape) for k in sorted(small.tensors)])
    np.testing.assert_allclose(flat(a.tensors) - noise, flat(small.tensors), atol=1e-6)


def test_privatize_records_the_accountant_inputs_and_releases_no_data_statistics() -> None:
    p = client_policy()
    out = privatize_update(raw_update(), p, np.random.default_rng(0))
    assert AccountantInputs.from_extras(out.extras) == p.round_inputs(1)
    assert out.extras["local_steps"] == 3
    assert "loss" not in out.extras and not any("norm" in k for k in out.extras)


@pytest.mark.parametrize(
    ("update", "p", "match"),
    [
        (raw_update(kind=UpdateKind.NORMALIZED_DELTA), client_policy(), "kind"),
        (dataclasses.replace(raw_update(), tensors={**raw_update().tensors, CONTROL_PREFIX + "w": np.zeros(15, np.float32)}),
         client_policy(), "control tensors"),
        (raw_update(), policy(), "mechanism"),
        (dataclasses.replace(raw_update(), tensors={"w": np.array([np.nan], np.float32)}), client_policy(), "non-finite"),
    ],
)
def test_privatize_refuses_what_it_cannot_clip(update: ClientUpdate, p: PrivacyPolicy, match: str) -> None:
    with pytest.raises(PrivacyError, match=match):
        privatize_update(update, p, np.random.default_rng(0))


# --- the noise-presence test ----------------------------------------------------------------------
def test_noise_check_false_alarm_rate_is_at_most_alpha() -> None:
    p = client_policy(noise_check_alpha=0.01)
    trials = 2000
    rng = np.random.default_rng(2026)
    zero = ClientUpdate(ME, RoundId(1), 10, {"w": np.zeros(12, np.float32), "b": np.zeros(4, np.float32)}, BASE)
    # the worst case is the zero delta (central chi-square: the rate is alpha itself); any delta only helps
    alarms_zero = sum(not noise_check(privatize_update(zero, p, rng).tensors, p).passed for _ in range(trials))
    alarms_big = sum(not noise_check(privatize_update(raw_update(d=16, seed=i), p, rng).tensors, p).passed
                     for i in range(trials))
    tolerance = 3 * math.sqrt(0.01 * 0.99 / trials)
    assert alarms_zero / trials <= 0.01 + tolerance
    assert alarms_zero / trials >= 0.01 - tolerance  # the threshold is the alpha quantile, not a looser one
    assert alarms_big <= alarms_zero + 3 * math.sqrt(trials * 0.01)


def test_noise_check_flags_an_update_without_its_noise_or_with_a_quarter_of_it() -> None:
    p = client_policy(noise_check_alpha=1e-6, min_clients=1)
    d = 1000
    for seed in range(20):
        update = raw_update(scale=5.0, d=d, seed=seed)
        raw = flat(update.tensors)
        clipped = {k: np.asarray(v, np.float64) * min(1.0, 1.0 / float(np.linalg.norm(raw)))
                   for k, v in update.tensors.items()}
        skipped = noise_check({k: v.astype(np.float32) for k, v in clipped.items()}, p)
        rng = np.random.default_rng(seed)
        quarter = {k: (v + rng.normal(0.0, p.noise_std() / 4, size=v.shape)).astype(np.float32) for k, v in clipped.items()}
        weak = noise_check(quarter, p)
        honest = noise_check(privatize_update(update, p, rng).tensors, p)
        assert not skipped.passed and not weak.passed and honest.passed
    assert skipped.dimension == d and skipped.threshold == pytest.approx(chi2.ppf(1e-6, d))


def test_noise_check_reason_states_the_figures_and_non_finite_updates_fail() -> None:
    p = client_policy()
    check = noise_check({"w": np.zeros(16, np.float32)}, p)
    assert not check.passed and check.statistic == 0.0
    text = check.reason()
    assert "chi-square(16)" in text and f"{check.threshold:.6g}" in text and "lacks" in text
    bad = noise_check({"w": np.array([np.inf, 0.0], np.float32)}, p)
    assert not bad.passed and "non-finite" in bad.reason()
    with pytest.raises(PrivacyError, match="client-level"):
        noise_check({"w": np.zeros(4, np.float32)}, policy())


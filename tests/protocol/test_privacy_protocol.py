"""The privacy policy in the task and in the round: documents, task checks, the screening that the
aggregator and the auditor both apply (accountant inputs, noise presence), uniform weights under
client-level DP, and the in-memory engine stopping a participant at its budget."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from fedchain.errors import ConfigError
from fedchain.fl.privacy import PrivacyPolicy, epsilon, epsilon_fixed, privatize_update
from fedchain.fl.records import ClientUpdate, StrategyConfig
from fedchain.protocol.blobs import GlobalModel
from fedchain.protocol.rounds import RULE_DP_NOISE, RULE_PRIVACY_POLICY, aggregate_screened, privacy_problem
from fedchain.protocol.task import TaskDocument
from fedchain.sim.config import ExperimentConfig, PrivacyRequest, build_task, load_task_dataset, resolve_privacy
from fedchain.types import ZERO_DIGEST, Address, Digest, RoundId

ROUND = RoundId(1)
BASE_DIGEST = Digest(b"\x42" * 32)
D = 400
BASE = GlobalModel(RoundId(0), ZERO_DIGEST, {"w": np.zeros(D, np.float32)}, {}, 0)
CLIENT = PrivacyPolicy("client", clip=1.0, noise_multiplier=1.0, sample_rate=1.0, delta=1e-5, accountant="rdp",
                       epsilon_budget=10.0, min_clients=4)
DPSGD = PrivacyPolicy("dpsgd", clip=1.0, noise_multiplier=1.1, sample_rate=0.1, delta=1e-5, accountant="rdp",
                      epsilon_budget=3.0)


def addr(i: int) -> Address:
    return Address(f"0x{i:040x}")


def raw(i: int, values: np.ndarray, n: int = 10) -> ClientUpdate:
    return ClientUpdate(addr(i), ROUND, n, {"w": values.astype(np.float32)}, BASE_DIGEST)


def noised(i: int, values: np.ndarray, n: int = 10, policy: PrivacyPolicy = CLIENT) -> ClientUpdate:
    return privatize_update(raw(i, values, n), policy, np.random.default_rng(1000 + i))


def _doc(**changes: object) -> TaskDocument:
    cfg = ExperimentConfig(dataset="breast_cancer", clients=4, rounds=2, min_updates=4,
                           privacy=PrivacyRequest("client", 5.0, min_clients=4))
    cfg = dataclasses.replace(cfg, **changes)  # type: ignore[arg-type]
    return build_task(cfg, load_task_dataset(cfg))


def test_a_task_document_carries_its_privacy_policy_and_a_plain_one_keeps_its_bytes() -> None:
    doc = _doc()
    assert doc.privacy is not None and doc.privacy.mechanism == "client"
    again = TaskDocument.from_bytes(doc.to_bytes())
    assert again.privacy == doc.privacy and again.privacy_digest() == doc.privacy_digest()
    assert int(doc.strategy_config().params["uniform_weights"]) == 1
    plain = _doc(privacy=None)
    assert "privacy" not in plain.to_json() and plain.privacy_digest() is None
    assert "uniform_weights" not in plain.strategy_config().params  # older strategy digests are unchanged


def test_the_calibrated_noise_makes_the_runs_rounds_spend_the_budget() -> None:
    cfg = ExperimentConfig(dataset="breast_cancer", clients=4, rounds=3, min_updates=2,
                           privacy=PrivacyRequest("dpsgd", 3.0))
    policy = resolve_privacy(cfg, load_task_dataset(cfg))
    rounds = [policy.round_inputs(1)] * 3
    assert epsilon(rounds) <= 3.0 < epsilon([*rounds, policy.round_inputs(1)])
    assert math.isclose(policy.sample_rate, 32 / (455 // 4), rel_tol=0.05)


def test_task_checks_refuse_a_policy_that_does_not_fit_the_strategy() -> None:
    with pytest.raises(ConfigError, match="uniform aggregation weights"):
        doc = _doc()
        params = {k: v for k, v in doc.strategy_config().params.items() if k != "uniform_weights"}
        dataclasses.replace(doc, strategy=StrategyConfig("fedavg", params, ()))
    with pytest.raises(ConfigError, match="min_updates must be >= 4"):
        _doc(min_updates=2)
    with pytest.raises(ConfigError, match="supports the strategies fedavg"):
        _doc(strategy="scaffold", privacy=PrivacyRequest("dpsgd", 3.0))


@pytest.mark.parametrize(("field", "value", "needle"), [
    ("noise_multiplier", 0.0, "noise_multiplier must be a positive"),
    ("clip", -1.0, "clip must be a positive"),
    ("delta", 1.0, "delta must be in"),
    ("accountant", "pld", "does not account dpsgd"),
])
def test_a_bad_policy_is_a_clear_error_naming_the_field(field: str, value: object, needle: str) -> None:
    with pytest.raises(ConfigError, match=needle):
        dataclasses.replace(DPSGD, **{field: value})  # type: ignore[arg-type]


def test_screening_rejects_an_update_without_or_with_other_accountant_inputs() -> None:
    assert privacy_problem(noised(1, np.ones(D)), CLIENT, 1) is None
    missing = privacy_problem(raw(2, np.ones(D)), CLIENT, 1)
    assert missing is not None and missing.rule == RULE_PRIVACY_POLICY and "no accountant inputs" in missing.reason
    weaker = noised(3, np.ones(D), policy=dataclasses.replace(CLIENT, noise_multiplier=0.5))
    problem = privacy_problem(weaker, CLIENT, 1)
    assert problem is not None and problem.rule == RULE_PRIVACY_POLICY
    assert "noise_multiplier 0.5 (policy: 1.0)" in problem.reason


def test_screening_rejects_a_client_update_that_skipped_its_noise_share() -> None:
    silent = dataclasses.replace(CLIENT, noise_multiplier=1e-12)
    skipped = privatize_update(raw(4, np.ones(D)), silent, np.random.default_rng(0))
    skipped = dataclasses.replace(skipped, extras={**skipped.extras, **CLIENT.round_inputs(1).to_extras()})
    problem = privacy_problem(skipped, CLIENT, 1)
    assert problem is not None and problem.rule == RULE_DP_NOISE


def test_client_dp_weighs_every_update_once_and_needs_min_clients() -> None:
    strategy = StrategyConfig("fedavg", {"min_updates": 1, "uniform_weights": 1}, ())
    rng = np.random.default_rng(7)
    updates = [noised(i, rng.normal(0, 0.01, D), n=10 ** i) for i in range(1, 5)]
    agg = aggregate_screened(strategy, BASE, ROUND, BASE_DIGEST, updates, (), 1, privacy=CLIENT)
    assert agg.model is not None and len(agg.included) == 4
    mean = np.mean([np.asarray(u.tensors["w"], np.float64) for u in updates], axis=0)
    np.testing.assert_allclose(agg.model.weights["w"], mean.astype(np.float32), rtol=1e-5, atol=1e-6)
    too_few = aggregate_screened(strategy, BASE, ROUND, BASE_DIGEST, updates[:3], (), 1, privacy=CLIENT)
    assert too_few.model is None and "minimum 4" in str(too_few.too_few_reason)


@pytest.mark.slow
def test_in_memory_participants_stop_at_their_budget() -> None:
    from fedchain.sim.memory import run_in_memory

    cfg = ExperimentConfig(dataset="breast_cancer", clients=3, rounds=3, min_updates=1, robust=(),
                           privacy=PrivacyRequest("dpsgd", 2.0, noise_multiplier=None))
    ds = load_task_dataset(cfg)
    policy = resolve_privacy(dataclasses.replace(cfg, rounds=2), ds)  # a budget that fits two rounds
    fixed = dataclasses.replace(cfg, privacy=PrivacyRequest("dpsgd", 2.0, noise_multiplier=policy.noise_multiplier,
                                                            sample_rate=policy.sample_rate))
    report = run_in_memory(fixed, dataset=ds)
    assert [r.finalized for r in report.rounds] == [True, True, False]
    assert report.rounds[2].sat_out == 3
    two = epsilon([policy.round_inputs(1)] * 2)
    assert epsilon_fixed(two) <= policy.budget_fixed()

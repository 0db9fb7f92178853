"""Contribution scores: exact Shapley properties, the Monte-Carlo estimate, determinism, allocation."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from dataclasses import replace
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from fedchain.errors import ConfigError
from fedchain.fl import attacks
from fedchain.fl import contribution as C
from fedchain.fl.records import ClientUpdate
from fedchain.types import Address

A = [Address(f"0x{i:040x}") for i in range(1, 11)]


# --- exact Shapley on synthetic utilities ----------------------------------------------------


def _game(n: int, fn):  # type: ignore[no-untyped-def]
    def of_mask(mask: int) -> int:
        return int(fn({i for i in range(n) if mask >> i & 1}))

    return of_mask


def test_exact_shapley_of_an_additive_game_is_each_players_worth() -> None:
    worth = [3, 0, 7, 1, 5]
    values = C.exact_shapley(_game(5, lambda s: sum(worth[i] for i in s)), 5)
    assert values == {i: Fraction(w) for i, w in enumerate(worth)}


def test_exact_shapley_dummy_symmetry_efficiency_on_a_non_additive_game() -> None:
    # players 0 and 1 are symmetric; 4 is a dummy; u is superadditive in {0, 1, 2}
    def u(s: set[int]) -> int:
        return 10 * (0 in s) + 10 * (1 in s) + 4 * (2 in s) + 9 * (0 in s and 2 in s) + 9 * (1 in s and 2 in s) + 2 * (3 in s)

    values = C.exact_shapley(_game(5, u), 5)
    assert values[4] == 0
    assert values[0] == values[1] == Fraction(10) + Fraction(9, 2)
    assert values[2] == 4 + 9
    assert sum(values.values()) == u({0, 1, 2, 3, 4}) - u(set())


def test_monte_carlo_on_a_synthetic_game_matches_exact_within_its_bound() -> None:
    worth = [3, 0, 7, 1, 5, 2, 9, 4, 6, 8, 1, 2]
    game = _game(len(worth), lambda s: sum(worth[i] for i in s) + 5 * (0 in s and 6 in s))
    rule = C.ContributionRule("shapley", {"truncation": 0.0, "max_permutations": 200})
    est = C.monte_carlo_shapley(game, len(worth), seed=b"\x01" * 32, value_range=sum(worth) + 5, rule=rule)
    exact = C.exact_shapley(game, len(worth))
    assert est.permutations <= 200
    assert max(abs(float(est.values[i] - exact[i])) for i in exact) <= est.error_bound
    assert sum(est.values.values()) == game((1 << len(worth)) - 1) - game(0)  # untruncated permutations are efficient


def test_monte_carlo_is_a_function_of_its_seed() -> None:
    game = _game(6, lambda s: len(s) ** 2 + 3 * (2 in s))
    rule = C.ContributionRule("shapley", {"truncation": 0.0, "max_permutations": 30})
    one = C.monte_carlo_shapley(game, 6, seed=b"root-a", value_range=40, rule=rule)
    again = C.monte_carlo_shapley(game, 6, seed=b"root-a", value_range=40, rule=rule)
    other = C.monte_carlo_shapley(game, 6, seed=b"root-b", value_range=40, rule=rule)
    assert one == again and one.values != other.values


def test_monte_carlo_stops_when_the_running_means_converge() -> None:
    game = _game(12, lambda s: 2 * len(s))  # every marginal is 2: zero variance
    est = C.monte_carlo_shapley(game, 12, seed=b"x", value_range=24, rule=C.ContributionRule("shapley", {"truncation": 0.0}))
    assert est.permutations == C.ContributionRule("shapley").param("min_permutations")
    assert est.values == {i: Fraction(2) for i in range(12)} and est.standard_error == 0.0


def test_rule_parameters_are_checked() -> None:
    with pytest.raises(ConfigError, match="unknown contribution rule"):
        C.ContributionRule("median")
    with pytest.raises(ConfigError, match="takes no parameters"):
        C.ContributionRule("loo", {"exact_max": 3})
    with pytest.raises(ConfigError, match="unknown parameter"):
        C.ContributionRule("shapley", {"iterations": 3})
    with pytest.raises(ConfigError, match="truncation"):
        C.ContributionRule("shapley", {"truncation": 1.5})
    with pytest.raises(ConfigError, match="min_permutations exceeds"):
        C.ContributionRule("shapley", {"min_permutations": 50, "max_permutations": 10})


# --- real models -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bench() -> C.BenchmarkRound:
    return C.benchmark_round(4, seed=0)


def test_utility_of_the_empty_coalition_is_the_base_model(bench: C.BenchmarkRound) -> None:
    util = bench.utility()
    assert util.of_mask(0) == util.accuracy_of(bench.base)
    full = util.of_mask(15)
    assert util.evaluations == 2 and 0 <= full <= util.size and full != util.of_mask(0)


def test_deterministic_forward_agrees_with_torch(bench: C.BenchmarkRound) -> None:
    from fedchain.fl.models import build_model, evaluate, set_weights

    util = bench.utility()
    model = build_model(bench.spec, 0)
    weights = util.model_of(15)
    set_weights(model, weights)
    assert util.accuracy_of(weights) == round(evaluate(model, bench.x, bench.y)["accuracy"] * util.size)


def test_exact_shapley_on_real_models_is_efficient_and_symmetric(bench: C.BenchmarkRound) -> None:
    twin = replace(bench.updates[1], participant=A[8])  # identical update, its own address
    util = bench.utility([*bench.updates, twin])
    scores = C.compute_scores(C.ContributionRule("shapley"), [*bench.updates, twin], utility=util, rejected=[A[9]])
    assert scores.method == "exact" and scores.scores[A[9]] == 0
    assert scores.scores[bench.updates[1].participant] == scores.scores[A[8]]
    assert sum(scores.scores.values()) == scores.utility_full - scores.utility_empty  # type: ignore[operator]


def test_a_free_rider_scores_zero_as_a_dummy(bench: C.BenchmarkRound) -> None:
    rider = attacks.AttackSpec("free_ride").poison_update(replace(bench.updates[0], participant=A[7]), 0)
    ups = [*bench.updates, rider]
    util = bench.utility(ups)
    shapley = C.compute_scores(C.ContributionRule("shapley"), ups, utility=util)
    loo = C.compute_scores(C.ContributionRule("loo"), ups, utility=util)
    spread = abs(shapley.utility_full - shapley.utility_empty)  # type: ignore[operator]
    honest = min(shapley.scores[u.participant] for u in bench.updates)
    assert abs(shapley.scores[A[7]]) <= Fraction(spread, 20) < honest
    assert abs(loo.scores[A[7]]) <= Fraction(spread, 20)


def test_a_copier_left_out_as_an_exact_copy_scores_zero_and_the_original_keeps_its_due(bench: C.BenchmarkRound) -> None:
    copier = replace(bench.updates[2], participant=A[6])
    ups = [*bench.updates, copier]
    order = [u.participant for u in ups]
    copies = C.exact_copies(ups, order)
    assert copies == (A[6],)
    players = [u for u in ups if u.participant not in copies]
    util = bench.utility(players)
    shapley = C.compute_scores(C.ContributionRule("shapley"), players, utility=util, rejected=copies)
    plain = C.compute_scores(C.ContributionRule("shapley"), bench.updates, utility=bench.utility())
    assert shapley.scores[A[6]] == 0 and shapley.scores == {**plain.scores, A[6]: Fraction(0)}
    # without the copy rule, loo already gives both the original and its copy ~0
    loo = C.compute_scores(C.ContributionRule("loo"), ups, utility=bench.utility(ups))
    spread = abs(loo.utility_full - loo.utility_empty)  # type: ignore[operator]
    assert abs(loo.scores[A[6]]) <= Fraction(spread, 20)


@pytest.mark.parametrize("n", [4, 6, 8, 10])
def test_the_monte_carlo_estimate_is_within_its_stated_bounds_of_exact(n: int) -> None:
    result = C.shapley_benchmark(n, seed=0)
    assert result["permutations"] >= 20 and result["standard_error"] > 0, result
    assert result["max_error"] <= 4 * result["standard_error"], result  # every player within 4 standard errors
    assert result["max_error"] <= result["error_bound"], result  # and within the Hoeffding bound
    assert result["mae_fraction"] <= 0.05, result  # the goal: MAE <= 5 % of u(N) - u(empty)


def test_samples_and_loo_rules(bench: C.BenchmarkRound) -> None:
    samples = C.compute_scores(C.ContributionRule("samples"), bench.updates, rejected=[A[9]])
    assert samples.scores == {**{u.participant: Fraction(u.num_samples) for u in bench.updates}, A[9]: Fraction(0)}
    util = bench.utility()
    loo = C.compute_scores(C.ContributionRule("loo"), bench.updates, utility=util)
    for i, u in enumerate(bench.updates):
        assert loo.scores[u.participant] == util.of_mask(15) - util.of_mask(15 & ~(1 << i))
    with pytest.raises(ConfigError, match="needs a validation utility"):
        C.compute_scores(C.ContributionRule("loo"), bench.updates)
    with pytest.raises(ConfigError, match="both included and rejected"):
        C.compute_scores(C.ContributionRule("samples"), bench.updates, rejected=[bench.updates[0].participant])


def test_free_ride_attack_sends_a_zero_delta_and_takes_no_strength(bench: C.BenchmarkRound) -> None:
    rider = attacks.AttackSpec.parse("free_ride").poison_update(bench.updates[0], 3)
    assert all(not np.any(v) for v in rider.model_tensors.values())
    assert rider.num_samples == bench.updates[0].num_samples and isinstance(rider, ClientUpdate)
    with pytest.raises(ConfigError, match="free_ride takes no argument"):
        attacks.AttackSpec.parse("free_ride:2")


# --- allocation ----------------------------------------------------------------------------------


def test_allocate_sums_exactly_by_largest_remainder() -> None:
    amounts = C.allocate({A[0]: 1, A[1]: 1, A[2]: 1}, 100)
    assert amounts == {A[0]: 34, A[1]: 33, A[2]: 33}  # remainders tie: lowest address first
    amounts = C.allocate({A[2]: Fraction(1, 3), A[0]: Fraction(1, 6), A[1]: Fraction(1, 2)}, 10)
    assert amounts == {A[2]: 3, A[0]: 2, A[1]: 5} and sum(amounts.values()) == 10  # 3.33, 1.67 (largest), 5


def test_allocate_ties_by_lower_case_address_and_pays_negatives_nothing() -> None:
    upper, lower = Address("0xAb" + "0" * 38), Address("0x0c" + "0" * 38)
    assert C.allocate({upper: 1, lower: 1}, 1) == {upper: 0, lower: 1}
    assert C.allocate({A[0]: -5, A[1]: 2, A[2]: 2}, 7) == {A[0]: 0, A[1]: 4, A[2]: 3}
    assert C.allocate({A[0]: -1, A[1]: 0}, 10) == {A[0]: 0, A[1]: 0}


def test_allocate_refuses_bad_input() -> None:
    with pytest.raises(ConfigError, match="budget"):
        C.allocate({A[0]: 1}, -1)
    with pytest.raises(ConfigError, match="more than once"):
        C.allocate({Address("0x" + "AB" * 20): 1, Address("0x" + "ab" * 20): 1}, 5)
    with pytest.raises(ConfigError, match="integer or a Fraction"):
        C.allocate({A[0]: 0.5}, 5)  # type: ignore[dict-item]


# --- determinism under OpenBLAS kernels -----------------------------------------------------------

_SCORE_PROBE = """
import hashlib, json
import numpy as np
from fedchain.fl import contribution as C
from fedchain.fl.models import ModelSpec, build_model, get_weights
from fedchain.fl.records import ClientUpdate
from fedchain.fl.strategies import FedAvg
from fedchain.types import Address, Digest, RoundId

rng = np.random.default_rng(7)
spec = ModelSpec("mlp", (12,), 3, hidden=(16,))
base = get_weights(build_model(spec, 1))
digest = Digest(b"\\x11" * 32)
ups = [ClientUpdate(Address(f"0x{i + 1:040x}"), RoundId(2), 5 + i,
                    {k: (0.4 * rng.standard_normal(v.shape)).astype(np.float32) for k, v in base.items()}, digest)
       for i in range(11)]
x = rng.standard_normal((300, 12)).astype(np.float32)
y = (np.argmax(x[:, :3] + 0.3 * x[:, 3:6], axis=1)).astype(np.int64)
out = {}
for n, rule in ((6, C.ContributionRule("shapley")), (11, C.ContributionRule("shapley", {"max_permutations": 40}))):
    util = C.Utility(FedAvg(), spec, base, ups[:n], x, y, round_id=RoundId(2), base_model_digest=digest)
    out[str(n)] = C.compute_scores(rule, ups[:n], utility=util, seed=b"merkle-root").to_json()
    out["logits" + str(n)] = hashlib.sha256(C.logits(spec, util.layers, util.model_of((1 << n) - 1), x).tobytes()).hexdigest()
print(json.dumps({"digest": hashlib.sha256(json.dumps(out, sort_keys=True).encode()).hexdigest(), "scores": out}))
"""


def _kernels() -> list[str]:
    kinds = ["Prescott"]
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    if "avx2" in flags:
        kinds.append("Haswell")
    if "avx512f" in flags:
        kinds.append("SkylakeX")
    return kinds


def _scores_with_kernel(core_type: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if core_type is not None:
        env["OPENBLAS_CORETYPE"] = core_type
    done = subprocess.run([sys.executable, "-c", _SCORE_PROBE], env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


@pytest.mark.skipif(platform.machine().lower() not in ("x86_64", "amd64"), reason="OPENBLAS_CORETYPE names x86-64 kernels")
def test_scores_are_bit_identical_under_every_openblas_kernel() -> None:
    default = _scores_with_kernel(None)
    scores = default["scores"]
    assert scores["6"]["method"] == "exact" and scores["11"]["method"] == "monte_carlo"  # type: ignore[index]
    assert len(set(scores["6"]["scores"].values())) > 2  # type: ignore[index]  # the players differ
    kernels = _kernels()
    assert len(kernels) >= 2, kernels
    for core_type in kernels:
        assert _scores_with_kernel(core_type) == default, core_type

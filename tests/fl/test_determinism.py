"""Determinism the auditor relies on: same inputs, same bits, whatever the order."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.fl import robust
from fedchain.fl import strategies as S
from fedchain.fl.records import ClientUpdate, UpdateKind
from fedchain.types import Address, Digest, RoundId

BASE = Digest(b"\x55" * 32)


def _fingerprint(tensors: Mapping[str, np.ndarray]) -> bytes:
    """SHA-256 over the names, shapes and bytes of ``tensors``."""
    h = hashlib.sha256()
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        h.update(name.encode() + b"\0" + repr((arr.dtype.str, arr.shape)).encode() + b"\0" + arr.tobytes())
    return h.digest()
GLOBAL = {"a": np.array([0.25, -0.5, 1.0], np.float32), "b": np.array([[2.0]], np.float32)}
finite = st.floats(-100.0, 100.0, allow_nan=False, width=32)


@st.composite
def round_updates(draw: st.DrawFn) -> list[ClientUpdate]:
    n = draw(st.integers(5, 8))
    ids = draw(st.lists(st.integers(0, 2**20), min_size=n, max_size=n, unique=True))
    out = []
    for i in ids:
        a = np.array(draw(st.lists(finite, min_size=3, max_size=3)), np.float32)
        b = np.array([[draw(finite)]], np.float32)
        cv = {"cv/a": np.array(draw(st.lists(finite, min_size=3, max_size=3)), np.float32), "cv/b": -b}
        out.append((Address(f"0x{i:040X}"), draw(st.integers(1, 1000)), {"a": a, "b": b}, cv, draw(st.floats(0.5, 50.0))))
    return out  # type: ignore[return-value]


def build(strategy: S._Strategy, raw) -> list[ClientUpdate]:  # type: ignore[no-untyped-def]
    kind = strategy.kind
    ups = []
    for who, n, tensors, cv, scalar in raw:
        extras = {"tau": scalar, "h": scalar}
        all_tensors = {**tensors, **cv} if strategy.uses_control else tensors
        ups.append(ClientUpdate(who, RoundId(2), n, all_tensors, BASE, kind=kind, extras=extras))
    return ups


STRATEGY_CASES = [
    S.FedAvg(),
    S.FedAvg(robust=(robust.MultiKrum(f=1),)),
    S.FedAvg(max_weight_share=0.3, robust=(robust.MultiKrum(f=1, weighted=True), robust.NormClip(200.0, reject=True))),
    S.FedNova(max_weight_share=0.15),
    S.FedProx(robust=(robust.TrimmedMean(0.2),)),
    S.FedNova(robust=(robust.NormClip(50.0),)),
    S.Scaffold(num_clients=10, robust=(robust.CoordinateMedian(),)),
    S.QFedAvg(q=0.5),
    S.FedAdam(),
]


@settings(max_examples=25, deadline=None)
@given(round_updates(), st.randoms(use_true_random=False))
def test_every_strategy_is_order_independent_bit_for_bit(raw, rnd) -> None:  # type: ignore[no-untyped-def]
    for strategy in STRATEGY_CASES:
        ups = build(strategy, raw)
        shuffled = list(ups)
        rnd.shuffle(shuffled)
        state = strategy.initial_state(GLOBAL)
        a = strategy.aggregate_round(GLOBAL, ups, state, round_id=RoundId(2), base_model_digest=BASE)
        b = strategy.aggregate_round(GLOBAL, shuffled, state, round_id=RoundId(2), base_model_digest=BASE)
        assert _fingerprint(a.weights) == _fingerprint(b.weights), strategy.name
        assert _fingerprint(a.server_state) == _fingerprint(b.server_state)
        assert a.included == b.included and a.rejected == b.rejected
        assert dict(a.metrics) == dict(b.metrics)


def test_fedavg_of_identical_deltas_moves_by_that_delta() -> None:
    delta = {"a": np.array([0.5, 0.25, -1.0], np.float32), "b": np.array([[0.125]], np.float32)}
    ups = [ClientUpdate(Address(f"0x{i:040x}"), RoundId(2), 10 * i + 1, delta, BASE) for i in range(4)]
    result = S.FedAvg().aggregate_round(GLOBAL, ups, {}, round_id=RoundId(2), base_model_digest=BASE)
    for k in GLOBAL:
        np.testing.assert_array_equal(result.weights[k], GLOBAL[k] + delta[k])
    assert all(u.kind is UpdateKind.DELTA for u in ups)


# One Multi-Krum + NormClip + FedAvg round; prints the digest of everything the auditor
# compares or that feeds a decision: weights, inclusions, rejections, metrics, and the
# float64 Krum scores and update norms (repr, every bit).
_KERNEL_PROBE = """
import hashlib, json
import numpy as np
from fedchain.fl import aggregate as agg
from fedchain.fl import robust
from fedchain.fl import strategies as S
from fedchain.fl.records import ClientUpdate
from fedchain.types import Address, Digest, RoundId

base = Digest(b"\\x55" * 32)
rng = np.random.default_rng(20240611)
shapes = {"conv": (16, 3, 5, 5), "fc": (300, 97), "bias": (97,)}
glob = {n: rng.standard_normal(s).astype(np.float32) for n, s in shapes.items()}
ups = []
for i in range(8):
    scale = 0.01 * (1.0 + i / 3.0) if i != 5 else 0.2
    tensors = {n: (scale * rng.standard_normal(s)).astype(np.float32) for n, s in shapes.items()}
    ups.append(ClientUpdate(Address(f"0x{(i + 1) * 0x1111:040x}"), RoundId(3), 10 + 7 * i, tensors, base))
strategy = S.FedAvg(max_weight_share=0.2,
                    robust=(robust.MultiKrum(f=2, weighted=True), robust.NormClip(max_norm=2.5)))
result = strategy.aggregate_round(glob, ups, {}, round_id=RoundId(3), base_model_digest=base)
contribs = [agg.Contribution(u.participant, float(u.num_samples), u.model_tensors) for u in ups]
h = hashlib.sha256()
for name in sorted(result.weights):
    h.update(name.encode() + np.ascontiguousarray(result.weights[name], np.float32).tobytes())
h.update(repr((result.included, result.rejected, sorted(result.metrics.items()))).encode())
h.update(repr(sorted(agg.krum_scores(contribs, 2).items())).encode())
h.update(repr([agg.l2_norm(c.tensors) for c in contribs]).encode())
print(json.dumps({"digest": h.hexdigest(), "rejected": len(result.rejected),
                  "clipped": result.metrics["norm_clip/clipped"], "capped": result.metrics["num_weight_capped"]}))
"""


def _openblas_core_types() -> list[str]:
    """OpenBLAS kernels this CPU can run: Prescott (SSE3) always, Haswell and SkylakeX by CPU flag."""
    kinds = ["Prescott"]
    cpuinfo = Path("/proc/cpuinfo")
    flags = set(cpuinfo.read_text().split()) if cpuinfo.exists() else set()
    if "avx2" in flags:
        kinds.append("Haswell")
    if "avx512f" in flags:
        kinds.append("SkylakeX")
    return kinds


def _aggregate_with_kernel(core_type: str | None) -> dict[str, object]:
    env = {k: v for k, v in os.environ.items() if k != "OPENBLAS_CORETYPE"}
    if core_type is not None:
        env["OPENBLAS_CORETYPE"] = core_type
    done = subprocess.run(
        [sys.executable, "-c", _KERNEL_PROBE], env=env, capture_output=True, text=True, timeout=300, check=False
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.mark.skipif(
    platform.machine().lower() not in ("x86_64", "amd64"), reason="OPENBLAS_CORETYPE names x86-64 kernels"
)
def test_aggregation_is_bit_identical_under_every_openblas_kernel() -> None:
    default = _aggregate_with_kernel(None)
    assert default["rejected"] == 2 and default["clipped"] > 0 and default["capped"] > 0  # every rule decided something
    for core_type in _openblas_core_types():
        assert _aggregate_with_kernel(core_type) == default, core_type

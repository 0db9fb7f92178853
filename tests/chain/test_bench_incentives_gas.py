"""scripts/bench_gas.py's incentives_gas on the real devnet: the deposit, slash and claim gas it reports are those of
real transactions, and a claim stays O(1) in the number of participants (only its proof grows, by log2)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from tests.fixtures_devnet import DevnetEnv

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "bench_gas.py"


def _bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_gas", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_incentives_gas_reports_deposit_slash_and_claim(chain_env: DevnetEnv) -> None:
    small = _bench().incentives_gas(chain_env.conn, participants=2)
    assert set(small) >= {"deposit_gas", "claim_gas", "slash_gas", "publish_rewards_gas", "withdraw_gas"}
    assert 30_000 < small["deposit_gas"] < 80_000
    assert 30_000 < small["slash_gas"] < 90_000
    assert 60_000 < small["claim_gas"] < 130_000
    large = _bench().incentives_gas(chain_env.conn, participants=16)
    # 2 -> 16 leaves: three more proof hashes, each a few hundred gas; nothing loops over participants
    assert 0 < large["claim_gas"] - small["claim_gas"] < 3 * 1_000
    assert large["deposit_gas"] == small["deposit_gas"]
    # the root is calldata: its zero bytes cost 4 gas, the others 16
    assert abs(large["publish_rewards_gas"] - small["publish_rewards_gas"]) <= 32 * 12

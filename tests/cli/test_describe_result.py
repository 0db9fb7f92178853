"""The one line ``participant run`` and ``participant submit`` print for each step."""

from __future__ import annotations

from fedchain.cli.participant import describe_result
from fedchain.protocol.participant import SubmitResult
from fedchain.types import Address, Cid, Digest, RoundId


def _result(function: str, already: bool = False) -> SubmitResult:
    return SubmitResult(RoundId(3), Address("0x" + "11" * 20), Digest(b"\x01" * 32), Cid("bafkreiexample"), 228, already,
                        59_544, "0xabc", None, 100, 0.0, function=function)


def test_each_step_of_a_secure_round_is_named() -> None:
    assert describe_result(_result("postAdvertisement")) == (
        "round 3: advertised its keys bafkreiexample (gas 59544, tx 0xabc)")
    assert describe_result(_result("postUnmaskingShares")).startswith("round 3: posted its unmasking shares")
    assert describe_result(_result("commitUpdate")).startswith("round 3: committed bafkreiexample (228 samples")
    assert describe_result(_result("sealUpdate", already=True)) == "round 3: already sealed bafkreiexample"

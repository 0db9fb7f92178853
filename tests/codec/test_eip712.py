"""EIP-712 commitment digests, checked against eth-account's encode_typed_data and the EIP-712 spec's vector."""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import _hash_eip191_message, encode_typed_data, hash_domain
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.abi import keccak, to_checksum_address
from fedchain.codec.eip712 import (
    COMMITMENT_TYPE,
    COMMITMENT_TYPEHASH,
    commitment_digest,
    commitment_struct_hash,
    domain_separator,
    typed_data,
)
from fedchain.codec.secp256k1 import SECP256K1_N, address_of_key, recover_address, sign_digest
from fedchain.errors import AbiEncodingError

addresses = st.binary(min_size=20, max_size=20).map(to_checksum_address)
digests = st.binary(min_size=32, max_size=32)
keys = st.integers(min_value=1, max_value=SECP256K1_N - 1).map(lambda k: k.to_bytes(32, "big"))


@dataclass(frozen=True)
class Fields:
    chain_id: int
    contract: str
    round_id: int
    participant: str
    update_digest: bytes
    cid: str
    num_samples: int
    metadata_digest: bytes

    def args(self) -> tuple[Any, ...]:
        return (self.chain_id, self.contract, self.round_id, self.participant, self.update_digest, self.cid,
                self.num_samples, self.metadata_digest)


fields = st.builds(
    Fields,
    chain_id=st.integers(min_value=0, max_value=2**256 - 1),
    contract=addresses,
    round_id=st.integers(min_value=0, max_value=2**256 - 1),
    participant=addresses,
    update_digest=digests,
    cid=st.text(max_size=80),
    num_samples=st.integers(min_value=0, max_value=2**64 - 1),
    metadata_digest=digests,
)
EXAMPLE = Fields(
    chain_id=31337,
    contract="0x5FbDB2315678afecb367f032d93F642f64180aa3",
    round_id=3,
    participant="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    update_digest=keccak(b"update"),
    cid="bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy",
    num_samples=1200,
    metadata_digest=keccak(b"metadata"),
)


def _eth_account_digest(f: Fields) -> bytes:
    return bytes(_hash_eip191_message(encode_typed_data(full_message=typed_data(*f.args()))))


def test_the_type_strings() -> None:
    assert COMMITMENT_TYPE == (
        "Commitment(uint256 roundId,address participant,bytes32 updateDigest,string cid,uint64 numSamples,"
        "bytes32 metadataDigest)"
    )
    assert COMMITMENT_TYPEHASH == keccak(COMMITMENT_TYPE.encode())


def test_the_eip712_mail_example_domain_separator() -> None:
    separator = domain_separator(1, "0xCcCCccccCCCCcCCCCCCcCcCccCcCCCcCcccccccC", name="Ether Mail", version="1")
    assert separator.hex() == "f2cee375fa42b42143804025fc449deafd50cc031ca257e0b194a650a912090f"


@settings(max_examples=80, deadline=None)
@given(f=fields)
def test_digest_is_eth_accounts(f: Fields) -> None:
    assert commitment_digest(*f.args()) == _eth_account_digest(f)


@settings(max_examples=30, deadline=None)
@given(f=fields)
def test_domain_separator_is_eth_accounts(f: Fields) -> None:
    domain = typed_data(*f.args())["domain"]
    assert domain_separator(f.chain_id, f.contract) == bytes(hash_domain(domain))


@settings(max_examples=30, deadline=None)
@given(f=fields)
def test_digest_is_0x1901_separator_struct_hash(f: Fields) -> None:
    struct_hash = commitment_struct_hash(*f.args()[2:])
    assert commitment_digest(*f.args()) == keccak(b"\x19\x01" + domain_separator(f.chain_id, f.contract) + struct_hash)


@settings(max_examples=20, deadline=None)
@given(f=fields)
def test_typed_data_is_json_and_survives_a_round_trip(f: Fields) -> None:
    message = json.loads(json.dumps(typed_data(*f.args())))
    assert bytes(_hash_eip191_message(encode_typed_data(full_message=message))) == commitment_digest(*f.args())


@settings(max_examples=40, deadline=None)
@given(f=fields, key=keys)
def test_signature_is_eth_accounts_and_recovers_the_signer(f: Fields, key: bytes) -> None:
    f = replace(f, participant=address_of_key(key))
    digest = commitment_digest(*f.args())
    ours = sign_digest(key, digest)
    theirs = Account.sign_typed_data(key, full_message=typed_data(*f.args()))
    assert ours == bytes(theirs.signature)
    assert recover_address(digest, ours) == f.participant == Account._recover_hash(digest, signature=ours)


_OTHER = {
    "round_id": lambda f: replace(f, round_id=f.round_id ^ 1),
    "chain_id": lambda f: replace(f, chain_id=f.chain_id ^ 1),
    "contract": lambda f: replace(f, contract=to_checksum_address(keccak(f.contract.encode())[:20])),
    "participant": lambda f: replace(f, participant=to_checksum_address(keccak(f.participant.encode())[:20])),
    "update_digest": lambda f: replace(f, update_digest=keccak(f.update_digest)),
    "cid": lambda f: replace(f, cid=f.cid + "x"),
    "num_samples": lambda f: replace(f, num_samples=f.num_samples ^ 1),
    "metadata_digest": lambda f: replace(f, metadata_digest=keccak(f.metadata_digest)),
}


@pytest.mark.parametrize("changed", sorted(_OTHER))
@settings(max_examples=10, deadline=None)
@given(f=fields, key=keys)
def test_a_signature_for_other_fields_recovers_another_address(changed: str, f: Fields, key: bytes) -> None:
    f = replace(f, participant=address_of_key(key))
    signature = sign_digest(key, commitment_digest(*f.args()))
    other = _OTHER[changed](f)
    assert recover_address(commitment_digest(*other.args()), signature) != f.participant


def test_lower_case_and_bytes_addresses_are_the_checksummed_ones() -> None:
    lower = replace(EXAMPLE, contract=EXAMPLE.contract.lower(), participant=EXAMPLE.participant.lower())
    raw = replace(EXAMPLE, contract=bytes.fromhex(EXAMPLE.contract[2:]), participant=bytes.fromhex(EXAMPLE.participant[2:]))
    assert commitment_digest(*lower.args()) == commitment_digest(*raw.args()) == commitment_digest(*EXAMPLE.args())
    assert typed_data(*lower.args())["message"]["participant"] == EXAMPLE.participant


@pytest.mark.parametrize(
    ("field", "value", "named"),
    [
        ("chain_id", -1, "chainId"),
        ("chain_id", 2**256, "chainId"),
        ("chain_id", True, "chainId"),
        ("round_id", -1, "roundId"),
        ("round_id", 2**256, "roundId"),
        ("round_id", 1.0, "roundId"),
        ("num_samples", 2**64, "numSamples"),
        ("num_samples", -1, "numSamples"),
        ("num_samples", "12", "numSamples"),
        ("update_digest", b"\x00" * 31, "updateDigest"),
        ("update_digest", b"\x00" * 33, "updateDigest"),
        ("update_digest", "0x" + "00" * 32, "updateDigest"),
        ("metadata_digest", b"", "metadataDigest"),
        ("participant", "0x" + "00" * 19, "participant"),
        ("participant", "70997970C51812dc3A010C7d01b50e0d17dc79C8", "participant"),
        ("participant", "0x70997970c51812dc3A010C7d01b50e0d17dc79C8", "participant"),  # wrong checksum
        ("participant", b"\x00" * 19, "participant"),
        ("participant", 5, "participant"),
        ("contract", "0xzz997970C51812dc3A010C7d01b50e0d17dc79C8", "verifyingContract"),
        ("cid", b"bafk", "cid"),
        ("cid", "\ud800", "cid"),
    ],
)
def test_invalid_fields_are_refused_naming_the_field(field: str, value: Any, named: str) -> None:
    bad = replace(EXAMPLE, **{field: value})
    for build in (commitment_digest, typed_data):
        with pytest.raises(AbiEncodingError, match=named):
            build(*bad.args())
    assert issubclass(AbiEncodingError, ValueError)

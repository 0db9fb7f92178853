"""EIP-712 typed data for a participant's round commitment: the domain, the struct hash and the digest signed.

A participant signs its commitment off chain; the aggregator and the auditor recover the signer from the
signature (:func:`fedchain.codec.secp256k1.recover_address`) and compare it with the participant's
registered address. What is signed is the EIP-712 digest

    keccak256(0x19 0x01 || domainSeparator || hashStruct(commitment))

over the domain ``EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)``
with name ``"fedchain"`` and version ``"1"`` (the chain id and the federation contract bind a signature to
one deployment), and the struct :data:`COMMITMENT_TYPE`. ``string`` members are hashed (keccak256 of their
UTF-8 bytes), every other member is its 32-byte ABI word, as EIP-712's ``encodeData`` says.

:func:`typed_data` gives the same message as EIP-712 JSON (types, primaryType, domain, message), which a
wallet's ``eth_signTypedData_v4`` or eth-account's ``encode_typed_data(full_message=...)`` signs to the same
digest. Every input is checked first; a value out of range or of the wrong form is refused with an
:class:`~fedchain.errors.AbiEncodingError` (a ValueError) naming the field.
"""

from __future__ import annotations

from typing import Any

from fedchain.codec.abi import encode, is_checksum_address, is_hex_address, keccak, to_canonical_address, to_checksum_address
from fedchain.errors import AbiEncodingError
from fedchain.types import Address

__all__ = [
    "COMMITMENT_TYPE",
    "COMMITMENT_TYPEHASH",
    "DOMAIN_NAME",
    "DOMAIN_TYPE",
    "DOMAIN_TYPEHASH",
    "DOMAIN_VERSION",
    "commitment_digest",
    "commitment_struct_hash",
    "domain_separator",
    "typed_data",
]

DOMAIN_NAME = "fedchain"
DOMAIN_VERSION = "1"
DOMAIN_TYPE = "EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"
DOMAIN_TYPEHASH = keccak(DOMAIN_TYPE.encode("ascii"))
COMMITMENT_TYPE = (
    "Commitment(uint256 roundId,address participant,bytes32 updateDigest,string cid,uint64 numSamples,bytes32 metadataDigest)"
)
COMMITMENT_TYPEHASH = keccak(COMMITMENT_TYPE.encode("ascii"))

_UINT256_MAX = 2**256 - 1
_UINT64_MAX = 2**64 - 1


def _uint(field: str, value: object, maximum: int, bits: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise AbiEncodingError(f"{field} must be an integer (uint{bits}), got {type(value).__name__}")
    if not 0 <= value <= maximum:
        raise AbiEncodingError(f"{field} = {value} is out of range for uint{bits} (0 .. 2**{bits} - 1)")
    return value


def _bytes32(field: str, value: object) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise AbiEncodingError(f"{field} must be 32 bytes (bytes32), got {type(value).__name__}")
    if len(value) != 32:
        raise AbiEncodingError(f"{field} must be 32 bytes (bytes32), got {len(value)}")
    return bytes(value)


def _address(field: str, value: object) -> Address:
    """The checksummed form of ``value``: a 0x-prefixed 40-hex-digit address, all lower case, all upper case or in
    exactly its EIP-55 letter case (a mixed case with a wrong checksum is a typo, refused), or 20 bytes."""
    if isinstance(value, (bytes, bytearray)):
        if len(value) != 20:
            raise AbiEncodingError(f"{field} must be an address (20 bytes), got {len(value)} bytes")
        return Address(to_checksum_address(bytes(value)))
    if not isinstance(value, str) or not value.startswith("0x") or not is_hex_address(value):
        raise AbiEncodingError(f"{field} must be a 0x-prefixed 40-hex-digit address, got {value!r}")
    body = value[2:]
    if body != body.lower() and body != body.upper() and not is_checksum_address(value):
        raise AbiEncodingError(f"{field} = {value!r} has a wrong EIP-55 checksum (its letter case)")
    return Address(to_checksum_address(value))


def _string(field: str, value: object) -> str:
    if not isinstance(value, str):
        raise AbiEncodingError(f"{field} must be a string, got {type(value).__name__}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError as err:  # lone surrogates
        raise AbiEncodingError(f"{field} is not encodable as UTF-8: {err}") from err
    return value


def domain_separator(
    chain_id: int, verifying_contract: Address | str, *, name: str = DOMAIN_NAME, version: str = DOMAIN_VERSION
) -> bytes:
    """The 32-byte EIP-712 domain separator of fedchain's domain on ``chain_id`` for the federation contract
    ``verifying_contract`` (``name`` and ``version`` are fedchain's unless given: the same domain type with
    another name serves to check the computation against published vectors)."""
    chain = _uint("chainId", chain_id, _UINT256_MAX, 256)
    contract = _address("verifyingContract", verifying_contract)
    hashed_name = keccak(_string("name", name).encode("utf-8"))
    hashed_version = keccak(_string("version", version).encode("utf-8"))
    words = [DOMAIN_TYPEHASH, hashed_name, hashed_version, chain, contract]
    return keccak(encode(["bytes32", "bytes32", "bytes32", "uint256", "address"], words))


def commitment_struct_hash(
    round_id: int,
    participant: Address | str,
    update_digest: bytes,
    cid: str,
    num_samples: int,
    metadata_digest: bytes,
) -> bytes:
    """``hashStruct`` of a :data:`COMMITMENT_TYPE` commitment: 32 bytes."""
    values = [
        COMMITMENT_TYPEHASH,
        _uint("roundId", round_id, _UINT256_MAX, 256),
        to_canonical_address(_address("participant", participant)),
        _bytes32("updateDigest", update_digest),
        keccak(_string("cid", cid).encode("utf-8")),
        _uint("numSamples", num_samples, _UINT64_MAX, 64),
        _bytes32("metadataDigest", metadata_digest),
    ]
    return keccak(encode(["bytes32", "uint256", "address", "bytes32", "bytes32", "uint64", "bytes32"], values))


def commitment_digest(
    chain_id: int,
    verifying_contract: Address | str,
    round_id: int,
    participant: Address | str,
    update_digest: bytes,
    cid: str,
    num_samples: int,
    metadata_digest: bytes,
) -> bytes:
    """The 32-byte EIP-712 digest a participant signs for its commitment:
    ``keccak256(0x1901 || domainSeparator || structHash)``."""
    struct_hash = commitment_struct_hash(round_id, participant, update_digest, cid, num_samples, metadata_digest)
    return keccak(b"\x19\x01" + domain_separator(chain_id, verifying_contract) + struct_hash)


def typed_data(
    chain_id: int,
    verifying_contract: Address | str,
    round_id: int,
    participant: Address | str,
    update_digest: bytes,
    cid: str,
    num_samples: int,
    metadata_digest: bytes,
) -> dict[str, Any]:
    """The commitment as EIP-712 JSON (``types``, ``primaryType``, ``domain``, ``message``; addresses checksummed,
    bytes32 as 0x hex), JSON-serialisable, which ``eth_signTypedData_v4`` signs to :func:`commitment_digest`."""
    return {
        "types": {
            "EIP712Domain": [
                {"name": "name", "type": "string"},
                {"name": "version", "type": "string"},
                {"name": "chainId", "type": "uint256"},
                {"name": "verifyingContract", "type": "address"},
            ],
            "Commitment": [
                {"name": "roundId", "type": "uint256"},
                {"name": "participant", "type": "address"},
                {"name": "updateDigest", "type": "bytes32"},
                {"name": "cid", "type": "string"},
                {"name": "numSamples", "type": "uint64"},
                {"name": "metadataDigest", "type": "bytes32"},
            ],
        },
        "primaryType": "Commitment",
        "domain": {
            "name": DOMAIN_NAME,
            "version": DOMAIN_VERSION,
            "chainId": _uint("chainId", chain_id, _UINT256_MAX, 256),
            "verifyingContract": _address("verifyingContract", verifying_contract),
        },
        "message": {
            "roundId": _uint("roundId", round_id, _UINT256_MAX, 256),
            "participant": _address("participant", participant),
            "updateDigest": "0x" + _bytes32("updateDigest", update_digest).hex(),
            "cid": _string("cid", cid),
            "numSamples": _uint("numSamples", num_samples, _UINT64_MAX, 64),
            "metadataDigest": "0x" + _bytes32("metadataDigest", metadata_digest).hex(),
        },
    }

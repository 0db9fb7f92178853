"""A local signer without eth-account: EIP-1559 transactions, digests, and Web3 Secret Storage (v3) keystores.

:class:`LocalSigner` holds a private key and signs with :mod:`fedchain.codec.secp256k1` (libsecp256k1):
EIP-1559 (type 2) transactions, encoded with :mod:`fedchain.codec.rlp` byte for byte as eth-account's
``sign_transaction`` encodes them, and bare 32-byte digests (an EIP-712 commitment, say). Importing this
module costs some milliseconds where eth-account's import costs about a second of CPU, which every
participant process paid before it could sign anything.

:func:`decrypt_keyfile` unlocks a version-3 keystore as eth-account's ``Account.decrypt`` does (scrypt or
pbkdf2-sha256 from :mod:`hashlib`, AES-128-CTR from pycryptodome), after refusing KDF parameters above the
ceilings (:func:`check_kdf`: a hostile keystore could otherwise ask for minutes of work or gigabytes of
memory) and comparing the MAC, ``keccak256(derivedKey[16:32] || ciphertext)``, in constant time: a wrong
password is a :class:`~fedchain.errors.KeystoreError` saying so. The key is never logged, printed or shown in
an error, and the signer's ``repr`` leaves it out.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeAlias

from Crypto.Cipher import AES

from fedchain.codec import rlp
from fedchain.codec.abi import is_checksum_address, is_hex_address, keccak, to_canonical_address
from fedchain.codec.secp256k1 import address_of_key, sign_digest
from fedchain.errors import AbiEncodingError, KeystoreError
from fedchain.types import Address

if TYPE_CHECKING:  # only to name the type: eth-account is not imported to sign
    from eth_account.signers.local import LocalAccount

__all__ = [
    "DKLEN_RANGE",
    "MAX_PBKDF2_C",
    "MAX_SCRYPT_MEMORY",
    "MAX_SCRYPT_N",
    "MAX_SCRYPT_P",
    "MAX_SCRYPT_R",
    "MAX_SCRYPT_WORK",
    "LocalSigner",
    "Signer",
    "check_kdf",
    "decrypt_keyfile",
    "encode_transaction",
]

MAX_PBKDF2_C = 10_000_000
"""pbkdf2 iterations: 10 times eth-account's default (1,000,000), some seconds to decrypt."""
MAX_SCRYPT_N = 2**20
"""scrypt cost ``n``: 4 times eth-account's default (2**18)."""
MAX_SCRYPT_R = 32
"""scrypt block size ``r`` (eth-account and geth use 8)."""
MAX_SCRYPT_P = 16
"""scrypt parallelism ``p`` (eth-account and geth use 1)."""
MAX_SCRYPT_MEMORY = 1 << 30
"""scrypt memory, 128 * n * r bytes: 1 GiB (the default needs 256 MiB)."""
MAX_SCRYPT_WORK = 2**24
"""scrypt work, n * r * p: 8 times the default (2**21)."""
DKLEN_RANGE = (32, 64)
"""Derived key length: 32 bytes are used (AES key and MAC key), more is allowed up to 64."""

_TX_TYPE = 2
_TX_FIELDS = frozenset(
    {"type", "chainId", "nonce", "maxPriorityFeePerGas", "maxFeePerGas", "gas", "to", "value", "data", "accessList", "from"}
)
_UINT256_MAX = 2**256 - 1
_UINT64_MAX = 2**64 - 1


# ------------------------------------------------------------------------------------------- transactions


def _quantity(tx: Mapping[str, Any], name: str, *, maximum: int = _UINT256_MAX, default: int | None = None) -> int:
    value = tx.get(name, default)
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            value = int(value, 16)
        except ValueError as err:
            raise AbiEncodingError(f"transaction field {name!r} is not a hex quantity: {value!r}") from err
    if not isinstance(value, int) or isinstance(value, bool):
        raise AbiEncodingError(f"transaction field {name!r} must be an integer, got {value!r}")
    if not 0 <= value <= maximum:
        raise AbiEncodingError(f"transaction field {name!r} = {value} is out of range (0 .. {maximum})")
    return value


def _hex_bytes(name: str, value: object) -> bytes:
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        body = value[2:] if value.startswith(("0x", "0X")) else value
        try:
            return bytes.fromhex(body)
        except ValueError as err:
            raise AbiEncodingError(f"transaction field {name!r} is not hex: {value!r}") from err
    raise AbiEncodingError(f"transaction field {name!r} must be bytes or a hex string, got {type(value).__name__}")


def _address(name: str, value: object) -> bytes:
    """20 bytes of an address given as 20 bytes, or as a 0x hex string in lower case or its EIP-55 letter case."""
    if isinstance(value, (bytes, bytearray)) and len(value) == 20:
        return bytes(value)
    if isinstance(value, str) and is_hex_address(value) and value.startswith("0x"):
        if value[2:] != value[2:].lower() and not is_checksum_address(value):
            raise AbiEncodingError(f"transaction field {name!r} = {value!r} has a wrong EIP-55 checksum")
        return to_canonical_address(value)
    raise AbiEncodingError(f"transaction field {name!r} must be an address, got {value!r}")


def _access_list(value: object) -> list[list[Any]]:
    if value is None:
        return []
    if not isinstance(value, Sequence) or isinstance(value, (str, bytes, bytearray)):
        raise AbiEncodingError(f"transaction field 'accessList' must be a list, got {type(value).__name__}")
    out: list[list[Any]] = []
    for i, entry in enumerate(value):
        if not isinstance(entry, Mapping) or set(entry) != {"address", "storageKeys"}:
            raise AbiEncodingError(f"accessList[{i}] must be a mapping of 'address' and 'storageKeys'")
        keys = entry["storageKeys"]
        if not isinstance(keys, Sequence) or isinstance(keys, (str, bytes, bytearray)):
            raise AbiEncodingError(f"accessList[{i}]['storageKeys'] must be a list")
        slots = [_hex_bytes(f"accessList[{i}].storageKeys[{j}]", key) for j, key in enumerate(keys)]
        if any(len(slot) != 32 for slot in slots):
            raise AbiEncodingError(f"accessList[{i}]: every storage key is 32 bytes")
        out.append([_address(f"accessList[{i}].address", entry["address"]), slots])
    return out


def _fields(tx: Mapping[str, Any], signer: Address) -> list[Any]:
    """The nine RLP fields of an EIP-1559 transaction, in order; AbiEncodingError naming a bad field."""
    unknown = sorted(set(tx) - _TX_FIELDS)
    if unknown:
        raise AbiEncodingError(f"transaction fields {unknown} are not those of an EIP-1559 transaction (gasPrice: legacy)")
    if _quantity(tx, "type", default=_TX_TYPE) != _TX_TYPE:
        raise AbiEncodingError(f"only EIP-1559 (type 2) transactions are signed, got type {tx.get('type')!r}")
    sender = tx.get("from")
    if sender is not None and _address("from", sender) != to_canonical_address(signer):
        raise AbiEncodingError(f"transaction field 'from' = {sender!r} is not the signer {signer}")
    to = tx.get("to")
    return [
        _quantity(tx, "chainId"),
        _quantity(tx, "nonce", maximum=_UINT64_MAX),
        _quantity(tx, "maxPriorityFeePerGas"),
        _quantity(tx, "maxFeePerGas"),
        _quantity(tx, "gas", maximum=_UINT64_MAX),
        b"" if to is None or to == b"" or to == "" else _address("to", to),
        _quantity(tx, "value", default=0),
        _hex_bytes("data", tx.get("data", b"")),
        _access_list(tx.get("accessList")),
    ]


def encode_transaction(fields: Sequence[Any], signature: bytes | None = None) -> bytes:
    """``0x02 || rlp(fields [+ yParity, r, s])``: the bytes whose keccak256 is signed (no signature) or the raw
    signed transaction (with the 65-byte signature ``r || s || v``)."""
    items = list(fields)
    if signature is not None:
        items += [signature[64] - 27, int.from_bytes(signature[:32], "big"), int.from_bytes(signature[32:64], "big")]
    return bytes([_TX_TYPE]) + rlp.encode(items)


# ------------------------------------------------------------------------------------------------- signer


@dataclass(frozen=True)
class LocalSigner:
    """A private key and its address. ``sign_transaction`` returns the raw signed EIP-1559 transaction
    (``eth_sendRawTransaction`` takes it as 0x hex); ``sign_digest`` the 65-byte signature of a digest.
    Its ``repr`` shows the address only."""

    address: Address
    _key: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if address_of_key(self._key) != self.address:
            raise KeystoreError(f"the private key is not the key of {self.address}")

    @classmethod
    def from_key(cls, private_key: bytes | str) -> LocalSigner:
        """The signer of a private key: 32 bytes, or 64 hex digits with an optional ``0x`` (KeystoreError
        otherwise; the value is not shown)."""
        if isinstance(private_key, str):
            body = private_key.strip()
            body = body[2:] if body.startswith(("0x", "0X")) else body
            if len(body) != 64:
                raise KeystoreError("a hex private key is 64 hex digits (32 bytes)")
            try:
                private_key = bytes.fromhex(body)
            except ValueError as err:
                raise KeystoreError("the private key is not hex") from err
        if not isinstance(private_key, (bytes, bytearray)):
            raise KeystoreError(f"a private key is 32 bytes or 64 hex digits, got {type(private_key).__name__}")
        key = bytes(private_key)
        return cls(address_of_key(key), key)

    @property
    def key(self) -> bytes:
        """The 32-byte private key (derive from it, never log it)."""
        return self._key

    def sign_digest(self, digest: bytes) -> bytes:
        """The 65-byte signature ``r || s || v`` (v 27 or 28, low s, deterministic) of a 32-byte digest."""
        return sign_digest(self._key, digest)

    def sign_transaction(self, tx: Mapping[str, Any]) -> bytes:
        """The raw signed EIP-1559 transaction of ``tx`` (``chainId``, ``nonce``, ``maxPriorityFeePerGas``,
        ``maxFeePerGas``, ``gas``, ``to`` (absent or None: a contract creation), ``value``, ``data``, optional
        ``accessList``, ``type`` 2 if given, ``from`` the signer if given); AbiEncodingError naming a bad field."""
        fields = _fields(tx, self.address)
        signature = sign_digest(self._key, keccak(encode_transaction(fields)))
        return encode_transaction(fields, signature)


Signer: TypeAlias = "LocalSigner | LocalAccount"
"""What a connection signs with: a :class:`LocalSigner`, or an eth-account ``LocalAccount`` (tests, one-off
commands that made one anyway)."""


def raw_signed_transaction(signer: Signer, tx: Mapping[str, Any]) -> bytes:
    """The raw signed transaction of ``tx`` by either kind of :data:`Signer`."""
    if isinstance(signer, LocalSigner):
        return signer.sign_transaction(tx)
    return bytes(signer.sign_transaction(dict(tx)).raw_transaction)


# ---------------------------------------------------------------------------------------------- keystores


def _int_param(path: Path, kdf: str, params: Mapping[str, Any], name: str, low: int, high: int) -> int:
    """KDF parameter ``name``, an integer within ``[low, high]``; KeystoreError naming it otherwise."""
    value = params.get(name)
    if not isinstance(value, int) or isinstance(value, bool):
        raise KeystoreError(f"keystore {path}: {kdf} parameter {name!r} is missing or not an integer: {value!r}")
    if value > high:
        raise KeystoreError(
            f"keystore {path}: {kdf} parameter {name!r} = {value} is above the ceiling {high}; "
            "refusing to derive its key (it would take too long or too much memory)"
        )
    if value < low:
        raise KeystoreError(f"keystore {path}: {kdf} parameter {name!r} = {value} is below {low}")
    return value


def check_kdf(path: Path, data: Mapping[str, Any]) -> None:
    """Refuse a keystore whose KDF is unknown or whose parameters exceed the ceilings, before
    any key derivation runs (Web3 Secret Storage v3 and v4 layouts)."""
    crypto = data.get("crypto", data.get("Crypto"))
    if not isinstance(crypto, dict):
        raise KeystoreError(f"{path} is not an encrypted keystore (no 'crypto' section)")
    kdf_field = crypto.get("kdf")
    if isinstance(kdf_field, dict):  # version 4
        kdf, params = kdf_field.get("function"), kdf_field.get("params")
    else:
        kdf, params = kdf_field, crypto.get("kdfparams")
    if kdf not in ("pbkdf2", "scrypt"):
        raise KeystoreError(f"keystore {path}: unsupported key derivation function {kdf!r} (pbkdf2 or scrypt)")
    if not isinstance(params, dict):
        raise KeystoreError(f"keystore {path}: {kdf} parameters are missing")
    _int_param(path, kdf, params, "dklen", *DKLEN_RANGE)
    if kdf == "pbkdf2":
        _int_param(path, kdf, params, "c", 1, MAX_PBKDF2_C)
        if params.get("prf") != "hmac-sha256":
            raise KeystoreError(f"keystore {path}: pbkdf2 parameter 'prf' must be 'hmac-sha256', got {params.get('prf')!r}")
        return
    n = _int_param(path, kdf, params, "n", 2, MAX_SCRYPT_N)
    if n & (n - 1):
        raise KeystoreError(f"keystore {path}: scrypt parameter 'n' = {n} is not a power of two")
    r = _int_param(path, kdf, params, "r", 1, MAX_SCRYPT_R)
    p = _int_param(path, kdf, params, "p", 1, MAX_SCRYPT_P)
    if 128 * n * r > MAX_SCRYPT_MEMORY:
        raise KeystoreError(
            f"keystore {path}: scrypt parameters 'n' = {n} and 'r' = {r} need {128 * n * r} bytes of memory, "
            f"above the ceiling {MAX_SCRYPT_MEMORY}"
        )
    if n * r * p > MAX_SCRYPT_WORK:
        raise KeystoreError(
            f"keystore {path}: scrypt parameters 'n' * 'r' * 'p' = {n * r * p} are above the ceiling {MAX_SCRYPT_WORK}"
        )


def _hex_field(path: Path, section: Mapping[str, Any], name: str, *, length: int | None = None) -> bytes:
    value = section.get(name)
    if not isinstance(value, str):
        raise KeystoreError(f"keystore {path} is malformed: {name!r} is missing or not a hex string")
    try:
        raw = bytes.fromhex(value[2:] if value.startswith("0x") else value)
    except ValueError as err:
        raise KeystoreError(f"keystore {path} is malformed: {name!r} is not hex") from err
    if length is not None and len(raw) != length:
        raise KeystoreError(f"keystore {path} is malformed: {name!r} is {len(raw)} bytes, not {length}")
    return raw


def _derive(path: Path, crypto: Mapping[str, Any], password: bytes) -> bytes:
    kdf, params = crypto["kdf"], crypto["kdfparams"]
    salt = _hex_field(path, params, "salt")
    dklen = int(params["dklen"])
    if kdf == "pbkdf2":
        return hashlib.pbkdf2_hmac("sha256", password, salt, int(params["c"]), dklen)
    n, r, p = int(params["n"]), int(params["r"]), int(params["p"])
    # OpenSSL's scrypt needs 128 * r * (n + p) bytes and some more; check_kdf has bounded n, r and p
    maxmem = 128 * r * (n + p + 2) + (1 << 20)
    try:
        return hashlib.scrypt(password, salt=salt, n=n, r=r, p=p, maxmem=maxmem, dklen=dklen)
    except (ValueError, MemoryError) as err:
        raise KeystoreError(f"keystore {path}: scrypt refused its parameters: {err}") from err


def decrypt_keyfile(data: Mapping[str, Any], password: str | bytes, *, path: Path | str = "keystore") -> LocalSigner:
    """The signer of a version-3 keystore (the parsed JSON ``data``; ``path`` names it in errors), unlocked with
    ``password``. KeystoreError when the KDF parameters are above the ceilings (checked before any work),
    the layout is not version 3 with aes-128-ctr, the MAC does not match (a wrong password, or a tampered
    ciphertext or MAC), or the key is not that of the address the keystore records."""
    where = Path(path)
    check_kdf(where, data)
    if data.get("version") != 3:
        raise KeystoreError(f"keystore {where}: version {data.get('version')!r} is not supported (version 3)")
    crypto = data.get("crypto", data.get("Crypto"))
    if not isinstance(crypto, dict) or not isinstance(crypto.get("kdfparams"), dict):  # a version-4 layout
        raise KeystoreError(f"keystore {where} is malformed: no version-3 'crypto' section with 'kdfparams'")
    if crypto.get("cipher") != "aes-128-ctr":
        raise KeystoreError(f"keystore {where}: cipher {crypto.get('cipher')!r} is not supported (aes-128-ctr)")
    cipherparams = crypto.get("cipherparams")
    if not isinstance(cipherparams, dict):
        raise KeystoreError(f"keystore {where} is malformed: 'cipherparams' is missing")
    iv = _hex_field(where, cipherparams, "iv", length=16)
    ciphertext = _hex_field(where, crypto, "ciphertext", length=32)
    mac = _hex_field(where, crypto, "mac", length=32)
    secret = password.encode("utf-8") if isinstance(password, str) else bytes(password)
    derived = _derive(where, crypto, secret)
    if not hmac.compare_digest(keccak(derived[16:32] + ciphertext), mac):
        raise KeystoreError(f"wrong password for keystore {where} (the MAC does not match)")
    cipher = AES.new(derived[:16], AES.MODE_CTR, nonce=b"", initial_value=iv)
    key = cipher.decrypt(ciphertext)
    signer = LocalSigner.from_key(key)
    recorded = data.get("address")
    if isinstance(recorded, str) and recorded:
        body = recorded[2:] if recorded.startswith(("0x", "0X")) else recorded
        if body.lower() != signer.address[2:].lower():
            raise KeystoreError(f"keystore {where} records address {recorded}, but its key is that of {signer.address}")
    return signer

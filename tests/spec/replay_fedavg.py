#!/usr/bin/env python3
"""Replay one FedAvg round of a fedchain federation from docs/SPEC.md alone.

This program is an independent implementation of the protocol: it imports nothing from
fedchain (only the standard library and numpy) and parses the blob container and its
safetensors section by hand. Given a replay directory (SPEC.md, 14.2)::

    round.json      {"round", "base_model_digest", "min_updates", "strategy", "commitments": [...]}
    base.blob       the round's base global-model blob (RoundOpened.baseModelCid)
    blobs/<CID>     the committed update blobs, named by their CID (a missing file: unavailable)

it screens the committed updates, validates them, aggregates them with FedAvg - with the
weight-share cap (``max_weight_share``) and ``norm_clip`` rules if the task has them, no other
robust rule - encodes the new global-model blob canonically and prints one JSON document: the
model digest (SHA-256 of the blob bytes), the Merkle root of the included commitments, the
aggregation digest, the included participants, their aggregation weights, the clipped ones and
the rejections (rule per participant), or the close reason when too few updates are valid.
``--out FILE`` writes the model blob.

Exit status: 0 when the round was replayed (finalised or closed), 2 when the input is not a
round this program can replay.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import math
import struct
import sys
from collections import Counter
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

# --- constants (SPEC.md, 1) ---------------------------------------------------------------
MAGIC = b"FEDCBLOB"
BLOB_FORMAT = 1
MAX_BLOB_BYTES = 256 * 1024 * 1024
MAX_HEADER_BYTES = 64 * 1024
MAX_EXTRAS = 64
MAX_EXTRA_KEY = 64
MAX_EXTRA_VALUE = 4096
MAX_PARTICIPANT = 128
HEADER_KEYS = {"base_model_digest", "extras", "format", "kind", "num_samples", "participant", "round"}
KINDS = ("update", "global", "schema", "evidence")
UPDATE_KINDS = ("delta", "normalized_delta", "qffl")
METADATA_FORMAT = "fedchain.update-meta/1"
SERVER_PREFIX = "server/"
EXTRA_PREFIX = "x."
# safetensors dtype tag -> (numpy dtype, rank in the canonical data order: higher first)
DTYPES = {"I64": (np.dtype("<i8"), 2), "F64": (np.dtype("<f8"), 1), "F32": (np.dtype("<f4"), 0)}
TAG_OF = {np.dtype("<i8"): "I64", np.dtype("<f8"): "F64", np.dtype("<f4"): "F32"}
CHUNK_SIZE = 256 * 1024
MAX_LINKS = 174

RULE_UNAVAILABLE = "blob_unavailable"
RULE_INTEGRITY = "blob_integrity"
RULE_FORMAT = "blob_format"
RULE_HEADER = "header_mismatch"
RULE_METADATA = "metadata_mismatch"
RULE_VALIDATION = "validation"
RULE_INVALID_CID = "invalid_cid"
RULE_DUPLICATE = "duplicate_update"
MAX_CID_CHARS = 59

FEDAVG_PARAMS = {"local_epochs": int, "batch_size": int, "lr": float, "momentum": float, "weight_decay": float,
                 "server_lr": float, "min_updates": int, "max_weight_share": float}


class BlobError(Exception):
    """A blob that is not canonical (rule blob_format)."""


class InputError(Exception):
    """A replay directory that does not describe a replayable FedAvg round."""


# --- Keccak-256, the Ethereum variant: pad 0x01 ... 0x80 (SPEC.md, 2) ----------------------
_MASK = (1 << 64) - 1


def _rol(value: int, shift: int) -> int:
    shift %= 64
    return ((value << shift) | (value >> (64 - shift))) & _MASK


def _keccak_f(lanes: list[list[int]]) -> None:
    r = 1
    for _ in range(24):
        c = [lanes[x][0] ^ lanes[x][1] ^ lanes[x][2] ^ lanes[x][3] ^ lanes[x][4] for x in range(5)]
        d = [c[(x + 4) % 5] ^ _rol(c[(x + 1) % 5], 1) for x in range(5)]
        for x in range(5):
            for y in range(5):
                lanes[x][y] ^= d[x]
        x, y = 1, 0
        current = lanes[x][y]
        for t in range(24):
            x, y = y, (2 * x + 3 * y) % 5
            current, lanes[x][y] = lanes[x][y], _rol(current, (t + 1) * (t + 2) // 2)
        for y in range(5):
            row = [lanes[x][y] for x in range(5)]
            for x in range(5):
                lanes[x][y] = row[x] ^ ((~row[(x + 1) % 5]) & row[(x + 2) % 5] & _MASK)
        for j in range(7):
            r = ((r << 1) ^ ((r >> 7) * 0x71)) % 256
            if r & 2:
                lanes[0][0] ^= 1 << ((1 << j) - 1)


def keccak256(data: bytes) -> bytes:
    """Keccak-256 as Ethereum uses it (not FIPS-202 SHA3-256)."""
    rate = 136
    padded = bytearray(data) + b"\x01" + b"\x00" * ((-len(data) - 1) % rate)
    padded[-1] |= 0x80
    lanes = [[0] * 5 for _ in range(5)]
    for start in range(0, len(padded), rate):
        block = padded[start : start + rate]
        for i in range(rate // 8):
            lanes[i % 5][i // 5] ^= int.from_bytes(block[8 * i : 8 * i + 8], "little")
        _keccak_f(lanes)
    out = b"".join(lanes[i % 5][i // 5].to_bytes(8, "little") for i in range(25))
    return out[:32]


assert keccak256(b"").hex() == "c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470"


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


def hex0x(data: bytes) -> str:
    return "0x" + data.hex()


def parse_hex32(text: str, what: str) -> bytes:
    if not isinstance(text, str) or not text.startswith("0x") or len(text) != 66:
        raise InputError(f"{what} must be 0x and 64 hex digits, got {text!r}")
    return bytes.fromhex(text[2:])


# --- canonical JSON (SPEC.md, 3) ----------------------------------------------------------
def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8, shortest round-trip floats; NaN and infinities refused."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def _strict_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise ValueError(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def strict_json(text: str) -> Any:
    return json.loads(text, object_pairs_hook=_strict_pairs, parse_constant=_no_constant)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# --- CIDv1 (SPEC.md, 5) ------------------------------------------------------------------
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def _cid(codec: int, digest: bytes) -> bytes:
    return bytes((0x01, codec, 0x12, 0x20)) + digest


def compute_cid(data: bytes) -> str:
    """CIDv1 of ``ipfs add --cid-version=1 --raw-leaves`` (256 KiB chunks, balanced dag-pb tree)."""
    chunks = [data[i : i + CHUNK_SIZE] for i in range(0, len(data), CHUNK_SIZE)] or [b""]
    level = [(_cid(0x55, sha256(c)), len(c), len(c)) for c in chunks]  # (cid, file size, tsize)
    while len(level) > 1:
        parents = []
        for i in range(0, len(level), MAX_LINKS):
            group = level[i : i + MAX_LINKS]
            unixfs = b"\x08\x02" + b"\x18" + _varint(sum(g[1] for g in group))
            unixfs += b"".join(b"\x20" + _varint(g[1]) for g in group)
            node = b""
            for cid, _, tsize in group:
                link = b"\x0a" + _varint(len(cid)) + cid + b"\x12\x00" + b"\x18" + _varint(tsize)
                node += b"\x12" + _varint(len(link)) + link
            node += b"\x0a" + _varint(len(unixfs)) + unixfs
            parents.append((_cid(0x70, sha256(node)), sum(g[1] for g in group), len(node) + sum(g[2] for g in group)))
        level = parents
    return "b" + base64.b32encode(level[0][0]).decode("ascii").rstrip("=").lower()


# --- the blob container (SPEC.md, 4) -------------------------------------------------------
def encode_tensors(tensors: dict[str, np.ndarray]) -> bytes:
    """The canonical safetensors section: I64, then F64, then F32 tensors, each group by name;
    header JSON padded with spaces to a multiple of 8 bytes; no metadata."""
    order = sorted(tensors, key=lambda n: (-DTYPES[TAG_OF[tensors[n].dtype]][1], n.encode("utf-8")))
    entries, data, offset = [], [], 0
    for name in order:
        arr = tensors[name]
        raw = arr.tobytes(order="C")
        shape = ",".join(str(d) for d in arr.shape)
        entries.append(f'{json.dumps(name, ensure_ascii=False)}:{{"dtype":"{TAG_OF[arr.dtype]}",'
                       f'"shape":[{shape}],"data_offsets":[{offset},{offset + len(raw)}]}}')
        data.append(raw)
        offset += len(raw)
    head = ("{" + ",".join(entries) + "}").encode("utf-8")
    head += b" " * (-len(head) % 8)
    return struct.pack("<Q", len(head)) + head + b"".join(data)


def header_json(header: dict[str, Any]) -> bytes:
    return json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def encode_blob(header: dict[str, Any], tensors: dict[str, np.ndarray]) -> bytes:
    head = header_json(header)
    return MAGIC + struct.pack(">I", len(head)) + head + encode_tensors(tensors)


def _check_u63(header: dict[str, Any], key: str) -> None:
    value = header[key]
    if not _is_int(value) or not 0 <= value < 2**63:
        raise BlobError(f"header {key} must be an integer in [0, 2^63), got {value!r}")


def decode_header(data: bytes) -> tuple[dict[str, Any], int]:
    """The validated header of a blob and the offset of its tensor section."""
    if len(data) > MAX_BLOB_BYTES:
        raise BlobError(f"blob of {len(data)} bytes is over {MAX_BLOB_BYTES}")
    if len(data) < 12:
        raise BlobError("blob shorter than its 12-byte prefix")
    if data[:8] != MAGIC:
        raise BlobError(f"bad magic {data[:8]!r}")
    (head_len,) = struct.unpack(">I", data[8:12])
    if head_len > MAX_HEADER_BYTES:
        raise BlobError(f"header length {head_len} over {MAX_HEADER_BYTES}")
    end = 12 + head_len
    if end > len(data):
        raise BlobError("blob truncated inside its header")
    try:
        header = strict_json(data[12:end].decode("ascii"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise BlobError(f"header is not JSON: {err}") from err
    if not isinstance(header, dict) or set(header) != HEADER_KEYS:
        raise BlobError("header is not an object with exactly the seven header fields")
    if not _is_int(header["format"]) or header["format"] != BLOB_FORMAT:
        raise BlobError(f"format {header['format']!r} is not {BLOB_FORMAT}")
    digest = header["base_model_digest"]
    if not isinstance(digest, str) or len(digest) != 66 or not digest.startswith("0x"):
        raise BlobError(f"bad base_model_digest {digest!r}")
    try:
        digest_bytes = bytes.fromhex(digest[2:])
    except ValueError as err:
        raise BlobError(f"base_model_digest is not hex: {digest!r}") from err
    if len(digest_bytes) != 32:
        raise BlobError("base_model_digest is not 32 bytes")
    if header["kind"] not in KINDS:
        raise BlobError(f"unknown kind {header['kind']!r}")
    _check_u63(header, "round")
    _check_u63(header, "num_samples")
    participant = header["participant"]
    if not isinstance(participant, str) or len(participant) > MAX_PARTICIPANT or not participant.isascii():
        raise BlobError("participant must be an ASCII string of at most 128 characters")
    extras = header["extras"]
    if not isinstance(extras, dict) or len(extras) > MAX_EXTRAS:
        raise BlobError("extras must be an object of at most 64 entries")
    for key, value in extras.items():
        if not key or len(key) > MAX_EXTRA_KEY:
            raise BlobError(f"extras key {key!r} must have 1 to 64 characters")
        if not isinstance(value, str) or len(value) > MAX_EXTRA_VALUE:
            raise BlobError(f"extras[{key!r}] must be a string of at most 4096 characters")
    canonical = dict(header, base_model_digest=hex0x(digest_bytes))
    if header_json(canonical) != data[12:end]:
        raise BlobError("header is not in canonical form")
    return header, end


def decode_blob(data: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Header and tensors of a canonical blob; BlobError for anything else."""
    header, start = decode_header(data)
    body = data[start:]
    if len(body) < 8:
        raise BlobError("no tensor section")
    (n,) = struct.unpack("<Q", body[:8])
    if n > len(body) - 8:
        raise BlobError("tensor header runs past the end")
    try:
        meta = strict_json(body[8 : 8 + n].decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise BlobError(f"tensor header is not JSON: {err}") from err
    if not isinstance(meta, dict) or "__metadata__" in meta:
        raise BlobError("tensor header is not an object without __metadata__")
    tensors: dict[str, np.ndarray] = {}
    payload = body[8 + n :]
    for name, entry in meta.items():
        if not isinstance(entry, dict) or set(entry) != {"dtype", "shape", "data_offsets"}:
            raise BlobError(f"tensor {name!r}: malformed entry")
        tag, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
        if tag not in DTYPES:
            raise BlobError(f"tensor {name!r}: dtype {tag!r} not allowed")
        if not isinstance(shape, list) or not all(_is_int(d) and d >= 0 for d in shape):
            raise BlobError(f"tensor {name!r}: bad shape")
        if not isinstance(offsets, list) or len(offsets) != 2 or not all(_is_int(o) and o >= 0 for o in offsets):
            raise BlobError(f"tensor {name!r}: bad offsets")
        dtype = DTYPES[tag][0]
        begin, stop = offsets
        if stop - begin != math.prod(shape) * dtype.itemsize or stop > len(payload):
            raise BlobError(f"tensor {name!r}: offsets do not fit the shape or the data")
        try:
            array = np.frombuffer(payload, dtype=dtype, count=math.prod(shape), offset=begin).reshape(shape)
        except ValueError as err:
            raise BlobError(f"tensor {name!r}: {err}") from err
        if dtype.kind == "f" and array.size and not np.isfinite(array).all():
            raise BlobError(f"tensor {name!r} holds NaN or infinity")
        tensors[name] = array
    if encode_tensors(tensors) != body:
        raise BlobError("tensor section is not in canonical form")
    return header, tensors


# --- update and global-model blobs (SPEC.md, 6 and 7) ------------------------------------
def update_metadata(header: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """(update kind, scalar extras) of an update blob header; BlobError if malformed."""
    kind = header["extras"].get("update_kind", "delta")
    if kind not in UPDATE_KINDS:
        raise BlobError(f"unknown update kind {kind!r}")
    extras: dict[str, Any] = {}
    for key, raw in header["extras"].items():
        if not key.startswith(EXTRA_PREFIX):
            continue
        try:
            value = json.loads(raw)
        except ValueError as err:
            raise BlobError(f"extra {key} is not JSON: {err}") from err
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise BlobError(f"extra {key} is not a number or a string")
        if isinstance(value, float) and not math.isfinite(value):
            raise BlobError(f"extra {key} is not finite")
        extras[key[len(EXTRA_PREFIX) :]] = value
    return kind, extras


def metadata_digest(header: dict[str, Any], kind: str, extras: dict[str, Any]) -> bytes:
    return sha256(canonical_json({
        "format": METADATA_FORMAT,
        "round": header["round"],
        "participant": header["participant"],
        "base_model_digest": header["base_model_digest"],
        "kind": kind,
        "extras": extras,
    }))


# --- the Merkle tree (SPEC.md, 12) ---------------------------------------------------------
def commitment_leaf(round_id: int, c: dict[str, Any]) -> bytes:
    address = bytes.fromhex(c["participant"][2:])
    if len(address) != 20:
        raise InputError(f"participant {c['participant']!r} is not a 20-byte address")
    encoded = (round_id.to_bytes(32, "big") + address.rjust(32, b"\x00") + parse_hex32(c["update_digest"], "digest")
               + keccak256(c["cid"].encode("utf-8")) + int(c["num_samples"]).to_bytes(32, "big")
               + parse_hex32(c["metadata_digest"], "metadata digest"))
    return keccak256(keccak256(encoded))


def merkle_root(leaves: list[bytes]) -> bytes:
    nodes = sorted(leaves)
    size = 2 * len(nodes) - 1
    tree = [b""] * size
    for i, leaf in enumerate(nodes):
        tree[size - 1 - i] = leaf
    for i in range(size - 1 - len(nodes), -1, -1):
        a, b = tree[2 * i + 1], tree[2 * i + 2]
        tree[i] = keccak256(a + b if a < b else b + a)
    return tree[0]


# --- FedAvg, the weight cap and norm_clip (SPEC.md, 8.4, 11.2, 11.4) ------------------------
@dataclass(frozen=True)
class Strategy:
    """The parts of a FedAvg configuration the aggregation uses."""

    server_lr: float
    min_updates: int
    max_weight_share: float
    norm_clips: tuple[tuple[float, bool], ...]  # (max_norm, reject) of each norm_clip rule, in order


def _number(value: Any, kind: type, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number")
    if kind is int and not isinstance(value, int):
        raise InputError(f"{what} must be an integer")
    return value


def parse_strategy(strategy: dict[str, Any]) -> Strategy:
    """A FedAvg configuration whose robust rules are norm_clip rules only; InputError otherwise."""
    if strategy.get("strategy") != "fedavg":
        raise InputError(f"not a FedAvg strategy: {strategy.get('strategy')!r}")
    if not str(strategy.get("code_version", "")).startswith("fedchain-fl/1+"):
        raise InputError(f"unknown code version {strategy.get('code_version')!r}")
    params = strategy.get("params", {})
    unknown = sorted(set(params) - set(FEDAVG_PARAMS))
    if unknown:
        raise InputError(f"unknown FedAvg parameters {unknown}")
    for key, value in params.items():
        _number(value, FEDAVG_PARAMS[key], f"parameter {key}")
    server_lr = float(params.get("server_lr", 1.0))
    min_updates = int(params.get("min_updates", 1))
    max_share = float(params.get("max_weight_share", 1.0))
    if not (server_lr > 0 and math.isfinite(server_lr)) or min_updates < 1 or not 0.0 < max_share <= 1.0:
        raise InputError("server_lr must be positive and finite, min_updates >= 1, max_weight_share in (0, 1]")
    clips = []
    for rule in strategy.get("robust", []):
        rule_params = rule.get("params", {})
        if rule.get("name") != "norm_clip" or not set(rule_params) <= {"max_norm", "reject"}:
            raise InputError(f"robust rule {rule!r} is not supported (norm_clip only)")
        max_norm = float(_number(rule_params.get("max_norm"), float, "norm_clip max_norm"))
        if not (max_norm > 0 and math.isfinite(max_norm)):
            raise InputError("norm_clip max_norm must be positive and finite")
        clips.append((max_norm, bool(rule_params.get("reject", False))))
    return Strategy(server_lr, min_updates, max_share, tuple(clips))


def flat_norm(tensors: dict[str, np.ndarray]) -> float:
    """Euclidean norm of the tensors (name order, C order): sqrt of the exactly rounded sum of squares."""
    if not tensors:
        return 0.0
    v = np.concatenate([tensors[n].astype(np.float64).ravel() for n in sorted(tensors)])
    return math.sqrt(math.fsum((v * v).tolist()))


def norm_clip(contributions: list[dict[str, Any]], max_norm: float, reject: bool,
              rejected: list[dict[str, str]]) -> list[dict[str, Any]]:
    kept = []
    for c in contributions:
        norm = flat_norm(c["tensors"])
        if norm <= max_norm:
            kept.append(c)
        elif reject:
            rejected.append({"participant": c["participant"], "rule": "norm_clip",
                             "reason": f"update norm {norm:.6g} exceeds {max_norm:.6g}"})
        else:
            scale = max_norm / norm
            tensors = {n: (t.astype(np.float64) * scale).astype(np.float32) for n, t in c["tensors"].items()}
            kept.append({**c, "tensors": tensors, "clipped": True})
    return kept


def cap_weight_shares(weights: list[float], max_share: float) -> list[float]:
    """Water-filling in exact rational arithmetic: no share above ``max_share``; each share rounded once."""
    if max_share >= 1.0:
        return weights
    cap, n = Fraction(max_share), len(weights)
    exact = [Fraction(w) for w in weights]
    if cap * n <= 1:
        shares = [Fraction(1, n)] * n
    else:
        capped = [False] * n
        while True:
            remaining = 1 - cap * sum(capped)
            free_total = sum((w for w, done in zip(exact, capped, strict=True) if not done), Fraction(0))
            shares = [cap if done else remaining * w / free_total for w, done in zip(exact, capped, strict=True)]
            over = [i for i in range(n) if not capped[i] and shares[i] > cap]
            if not over:
                break
            for i in over:
                capped[i] = True
    return [float(share) for share in shares]


def weighted_mean(tensors: list[dict[str, np.ndarray]], weights: list[float], names: list[str]) -> dict[str, np.ndarray]:
    total = 0.0
    for w in weights:
        total += w
    out = {}
    for name in names:
        acc = np.zeros(tensors[0][name].shape, dtype=np.float64)
        for t, w in zip(tensors, weights, strict=True):
            acc += w * t[name].astype(np.float64)
        out[name] = (acc / total).astype(np.float32)
    return out


def apply_delta(weights: dict[str, np.ndarray], delta: dict[str, np.ndarray], scale: float) -> dict[str, np.ndarray]:
    return {n: (weights[n].astype(np.float64) + scale * delta[n].astype(np.float64)).astype(np.float32)
            for n in sorted(weights)}


def too_few(valid: int, minimum: int) -> str:
    return f"too few valid updates: {valid} < minimum {minimum}"


# --- the round (SPEC.md, 10) ---------------------------------------------------------------
def cid_problem(text: Any) -> str | None:
    """Why ``text`` is not a canonical base32 CIDv1 with a sha2-256 multihash, or None."""
    if not isinstance(text, str) or not text or len(text) > MAX_CID_CHARS:
        return "not a string of 1 to 59 characters"
    body = text[1:]
    if not text.startswith("b") or not body or body != body.lower():
        return "not b + lower-case base32"
    try:
        raw = base64.b32decode(body.upper() + "=" * (-len(body) % 8))
    except (ValueError, binascii.Error):
        return "not base32"
    if len(raw) != 36 or raw[:4] not in (bytes((0x01, 0x55, 0x12, 0x20)), bytes((0x01, 0x70, 0x12, 0x20))):
        return "not a CIDv1 (raw or dag-pb) of a sha2-256 digest"
    if "b" + base64.b32encode(raw).decode("ascii").rstrip("=").lower() != text:
        return "not in canonical form"
    return None


def screen(round_id: int, base_digest: bytes, commitments: list[dict[str, Any]], blobs: Path,
           rejected: list[dict[str, str]]) -> list[dict[str, Any]]:
    """Screening rules in order, then duplicate_update; the updates that pass, in address order."""
    passed = []
    payloads = []  # (chain position, payload digest) of every blob that decoded as an update
    for position, c in sorted(enumerate(commitments), key=lambda pc: pc[1]["participant"].lower()):
        who = c["participant"]

        def reject(rule: str, reason: str, who: str = who) -> None:
            rejected.append({"participant": who, "rule": rule, "reason": reason})

        problem = cid_problem(c["cid"])
        if problem is not None:
            reject(RULE_INVALID_CID, f"committed CID is not a CID: {problem}")
            continue
        path = blobs / c["cid"]
        if not path.is_file():
            reject(RULE_UNAVAILABLE, f"blob {c['cid']} not found")
            continue
        data = path.read_bytes()
        if len(data) > MAX_BLOB_BYTES:
            reject(RULE_FORMAT, f"blob of {len(data)} bytes is over {MAX_BLOB_BYTES}")
            continue
        if compute_cid(data) != c["cid"]:
            reject(RULE_INTEGRITY, f"bytes do not match CID {c['cid']}")
            continue
        if hex0x(sha256(data)) != c["update_digest"].lower():
            reject(RULE_INTEGRITY, f"blob digest {hex0x(sha256(data))} != committed {c['update_digest']}")
            continue
        try:
            header, tensors = decode_blob(data)
            if header["kind"] != "update":
                raise BlobError(f"expected an update blob, got kind {header['kind']!r}")
            kind, extras = update_metadata(header)
        except BlobError as err:
            reject(RULE_FORMAT, str(err))
            continue
        (head_len,) = struct.unpack(">I", data[8:12])
        payload = sha256(data[12 + head_len :])
        payloads.append((position, payload))
        problems = []
        if header["participant"].lower() != who.lower():
            problems.append("participant")
        if header["round"] != round_id:
            problems.append("round")
        if header["base_model_digest"] != hex0x(base_digest):
            problems.append("base model")
        if header["num_samples"] != int(c["num_samples"]):
            problems.append("sample count")
        if problems:
            reject(RULE_HEADER, "blob " + ", ".join(problems) + " differ from the commitment and the round")
            continue
        if hex0x(metadata_digest(header, kind, extras)) != c["metadata_digest"].lower():
            reject(RULE_METADATA, "blob metadata digest differs from the committed one")
            continue
        passed.append({"participant": who, "num_samples": header["num_samples"], "kind": kind, "extras": extras,
                       "tensors": tensors, "position": position, "payload": payload})
    first: dict[bytes, int] = {}
    for position, payload in sorted(payloads):
        first.setdefault(payload, position)
    kept = []
    for u in passed:
        owner = first[u["payload"]]
        if owner == u["position"]:
            kept.append(u)
        else:
            rejected.append({"participant": u["participant"], "rule": RULE_DUPLICATE,
                             "reason": f"tensor payload identical to that of {commitments[owner]['participant']}"})
    return kept


def validate(updates: list[dict[str, Any]], base: dict[str, np.ndarray],
             rejected: list[dict[str, str]]) -> list[dict[str, Any]]:
    """FedAvg's validation rule (kind delta, positive samples, exactly the model's float32 tensors)."""
    counts = Counter(u["participant"].lower() for u in updates)
    valid, seen = [], set()
    for u in updates:
        key = u["participant"].lower()
        if counts[key] > 1:
            if key not in seen:
                seen.add(key)
                rejected.append({"participant": u["participant"], "rule": RULE_VALIDATION,
                                 "reason": f"sent {counts[key]} updates in one round"})
            continue
        reason = None
        if u["kind"] != "delta":
            reason = f"update kind {u['kind']!r}, the strategy expects 'delta'"
        elif u["num_samples"] <= 0:
            reason = "num_samples must be positive"
        elif sorted(u["tensors"]) != sorted(base):
            reason = "tensor names differ from the model's"
        else:
            for name in sorted(u["tensors"]):
                arr = u["tensors"][name]
                if arr.dtype != np.float32:
                    reason = f"tensor {name!r} has dtype {arr.dtype}, expected float32"
                elif arr.shape != base[name].shape:
                    reason = f"tensor {name!r} has shape {arr.shape}, expected {base[name].shape}"
                if reason:
                    break
        if reason:
            rejected.append({"participant": u["participant"], "rule": RULE_VALIDATION, "reason": reason})
            continue
        valid.append(u)
    return valid


def replay(directory: Path) -> tuple[dict[str, Any], bytes | None]:
    spec = json.loads((directory / "round.json").read_text(encoding="utf-8"))
    round_id = int(spec["round"])
    base_digest = parse_hex32(spec["base_model_digest"], "base_model_digest")
    round_min = int(spec["min_updates"])
    strategy = spec["strategy"]
    config = parse_strategy(strategy)
    commitments = spec["commitments"]

    base_bytes = (directory / "base.blob").read_bytes()
    if sha256(base_bytes) != base_digest:
        raise InputError("base.blob does not hash to the round's base model digest")
    try:
        base_header, base_tensors = decode_blob(base_bytes)
    except BlobError as err:
        raise InputError(f"base.blob is not a canonical blob: {err}") from err
    if base_header["kind"] != "global":
        raise InputError("base.blob is not a global-model blob")
    weights = {n: t for n, t in base_tensors.items() if not n.startswith(SERVER_PREFIX)}
    if len(weights) != len(base_tensors):
        raise InputError("FedAvg keeps no server state, but the base model carries some")

    rejected: list[dict[str, str]] = []
    report: dict[str, Any] = {
        "round": round_id,
        "base_model_digest": hex0x(base_digest),
        "aggregation_digest": hex0x(sha256(canonical_json(strategy))),
        "clipped": [],
    }
    screened = screen(round_id, base_digest, commitments, directory / "blobs", rejected)
    screening = list(rejected)
    reason = None
    kept: list[dict[str, Any]] = []
    if len(screened) < round_min:
        reason = too_few(len(screened), round_min)
    else:
        valid = validate(screened, weights, rejected)
        if len(valid) < config.min_updates:
            reason, rejected = too_few(len(valid), config.min_updates), screening
        else:
            kept = valid
            for max_norm, reject in config.norm_clips:
                if kept:
                    kept = norm_clip(kept, max_norm, reject, rejected)
            if len(kept) < config.min_updates:
                reason, rejected = too_few(len(kept), config.min_updates), screening
            elif len(kept) < round_min:
                reason = too_few(len(kept), round_min)
    rejected.sort(key=lambda r: (r["participant"].lower(), r["rule"]))
    report["rejected"] = rejected
    if reason is not None:
        report.update(finalized=False, close_reason=reason, included=[], model_digest=None, merkle_root=None)
        return report, None

    shares = cap_weight_shares([float(u["num_samples"]) for u in kept], config.max_weight_share)
    mean = weighted_mean([u["tensors"] for u in kept], shares, sorted(weights))
    new_weights = apply_delta(weights, mean, config.server_lr)
    included = [u["participant"] for u in kept]
    samples = sum(u["num_samples"] for u in kept)
    blob = encode_blob(
        {"base_model_digest": hex0x(base_digest), "extras": {}, "format": BLOB_FORMAT, "kind": "global",
         "num_samples": samples, "participant": "", "round": round_id},
        new_weights,
    )
    wanted = {a.lower() for a in included}
    leaves = [commitment_leaf(round_id, c) for c in commitments if c["participant"].lower() in wanted]
    report.update(
        finalized=True,
        close_reason=None,
        included=included,
        clipped=[u["participant"] for u in kept if u.get("clipped")],
        weights=shares,
        num_samples=samples,
        model_digest=hex0x(sha256(blob)),
        merkle_root=hex0x(merkle_root(leaves)),
    )
    return report, blob


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("directory", type=Path, help="the replay directory (round.json, base.blob, blobs/)")
    parser.add_argument("--out", type=Path, help="write the new global-model blob here")
    args = parser.parse_args(argv)
    try:
        report, blob = replay(args.directory)
    except (InputError, KeyError, TypeError, ValueError, OSError) as err:
        print(f"replay_fedavg: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    if blob is not None and args.out is not None:
        args.out.write_bytes(blob)
    print(json.dumps(report, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())

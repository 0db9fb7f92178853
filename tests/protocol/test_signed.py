"""Signed rounds: signed commitments, the commitment-set blob and its checks, the aggregator's inbox over real
loopback HTTP."""

from __future__ import annotations

import dataclasses
import hashlib
import http.client
import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_typed_data
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.codec.abi import to_checksum_address
from fedchain.codec.blob import encode_json_doc
from fedchain.codec.eip712 import typed_data
from fedchain.codec.merkle import commitment_leaf, verify
from fedchain.codec.secp256k1 import address_of_key
from fedchain.errors import (
    AggregationError,
    BlobFormatError,
    ExitCode,
    InboxRefusedError,
    InboxUnavailableError,
    SignatureError,
    StorageUnavailableError,
    UpdateRejectedError,
)
from fedchain.protocol.signed import (
    AGGREGATOR,
    CommitmentInbox,
    CommitmentSet,
    SetProblemKind,
    SignedCommitment,
    check_commitment_set,
    commitment_set_digest,
    commitment_set_root,
    decode_commitment_set,
    encode_commitment_set,
    inclusion_proof,
    send_commitment,
    sign_commitment,
    verify_commitment,
)
from fedchain.types import ZERO_DIGEST, Address, RoundId

CHAIN = 31337
CONTRACT = Address(to_checksum_address("0x" + "5f" * 20))
OTHER_CONTRACT = Address(to_checksum_address("0x" + "a7" * 20))
ROUND = 7
CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy"


@dataclasses.dataclass(frozen=True)
class Key:
    private: bytes
    address: Address


def _key(seed: int) -> Key:
    private = hashlib.sha256(b"signed-round key %d" % seed).digest()
    return Key(private, address_of_key(private))


KEYS = [_key(i) for i in range(6)]


def _signed(key: Key, *, round_id: int = ROUND, samples: int = 100, tag: bytes = b"", chain_id: int = CHAIN,
            contract: Address = CONTRACT) -> SignedCommitment:
    return sign_commitment(
        key.private, chain_id, contract, round_id, key.address,
        hashlib.sha256(b"update" + key.address.encode() + tag).digest(), CID, samples,
        hashlib.sha256(b"meta" + key.address.encode()).digest(),
    )


def _set(keys: list[Key], *, round_id: int = ROUND) -> CommitmentSet:
    return CommitmentSet.build(CHAIN, CONTRACT, round_id, [_signed(k, round_id=round_id) for k in keys])


def _check(s: CommitmentSet, **overrides: Any) -> list[Any]:
    kwargs: dict[str, Any] = {
        "chain_id": CHAIN, "contract": CONTRACT, "round_id": ROUND, "eligible": {k.address for k in KEYS[:4]},
        "posted_root": commitment_set_root(s), "posted_count": len(s.commitments),
        "set_digest": commitment_set_digest(s),
    }
    kwargs.update(overrides)
    return check_commitment_set(s, **kwargs)


# --- signing -------------------------------------------------------------------------------------------------
def test_sign_then_verify() -> None:
    sc = _signed(KEYS[0])
    verify_commitment(sc, CHAIN, CONTRACT)
    assert sc.participant == KEYS[0].address
    assert len(sc.signature) == 65 and sc.signature[64] in (27, 28)


def test_the_signature_is_eth_accounts_eip712_signature() -> None:
    sc = _signed(KEYS[1])
    message = typed_data(CHAIN, CONTRACT, ROUND, sc.participant, sc.update_digest, sc.cid, sc.num_samples,
                         sc.metadata_digest)
    signed = Account.sign_message(encode_typed_data(full_message=message), KEYS[1].private)
    assert bytes(signed.signature) == sc.signature


@pytest.mark.parametrize(
    "where",
    [
        {"round_id": ROUND + 1},
        {"chain_id": CHAIN + 1},
        {"contract": OTHER_CONTRACT},
    ],
    ids=["other round", "other chain", "other contract"],
)
def test_a_signature_for_another_round_chain_or_contract_is_refused(where: dict[str, Any]) -> None:
    sc = _signed(KEYS[0], **where)
    claimed = dataclasses.replace(sc, round_id=RoundId(ROUND))
    with pytest.raises(SignatureError, match=f"recovers 0x[0-9a-fA-F]{{40}}: it was not made by {KEYS[0].address}"):
        verify_commitment(claimed, CHAIN, CONTRACT)


def test_a_signature_passed_off_as_another_participants_is_refused() -> None:
    sc = dataclasses.replace(_signed(KEYS[0]), participant=KEYS[1].address)
    # the participant is signed too: the signature recovers neither key
    with pytest.raises(SignatureError, match=f"of {KEYS[1].address} recovers 0x[0-9a-fA-F]{{40}}: it was not made by"):
        verify_commitment(sc, CHAIN, CONTRACT)


def test_a_changed_field_breaks_the_signature() -> None:
    sc = dataclasses.replace(_signed(KEYS[0]), num_samples=101)
    with pytest.raises(SignatureError):
        verify_commitment(sc, CHAIN, CONTRACT)


def test_signing_with_another_participants_key_is_refused() -> None:
    with pytest.raises(SignatureError, match=f"the key given is that of {KEYS[0].address}"):
        sign_commitment(KEYS[0].private, CHAIN, CONTRACT, ROUND, KEYS[1].address, b"\x01" * 32, CID, 1, b"\x02" * 32)


def test_the_leaf_is_the_rounds_commitment_leaf() -> None:
    sc = _signed(KEYS[2])
    assert sc.leaf() == commitment_leaf(ROUND, sc.participant, sc.update_digest, CID, 100, sc.metadata_digest)


def test_as_commitment_carries_the_fields_and_the_posting_transaction() -> None:
    sc = _signed(KEYS[2])
    c = sc.as_commitment(index=3, block_number=90, tx_hash="0xabc")
    assert (c.round_id, c.participant, c.update_digest, c.cid, c.num_samples, c.metadata_digest) == (
        ROUND, sc.participant, sc.update_digest, CID, 100, sc.metadata_digest)
    assert (c.block_number, c.tx_hash, c.log_index, c.epsilon_spent) == (90, "0xabc", 3, 0)
    assert [x.log_index for x in _set(KEYS[:3]).as_commitments()] == [0, 1, 2]


# --- the commitment's JSON -----------------------------------------------------------------------------------
def test_json_round_trip() -> None:
    sc = _signed(KEYS[3])
    assert SignedCommitment.from_json(json.loads(json.dumps(sc.to_json()))) == sc
    assert SignedCommitment.from_bytes(sc.to_bytes()) == sc


def _mutated(**changes: Any) -> dict[str, Any]:
    data = _signed(KEYS[0]).to_json()
    for key, value in changes.items():
        if value is None:
            del data[key]
        else:
            data[key] = value
    return data


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"signature": None}, "lacks signature"),
        ({"extra": 1}, "unknown field\\(s\\) extra"),
        ({"participant": KEYS[0].address.lower()}, "participant .* is not a checksummed"),
        ({"participant": KEYS[0].address[2:]}, "participant .* is not a checksummed"),
        ({"num_samples": "100"}, "num_samples is a string, not an integer"),
        ({"num_samples": 1.5}, "num_samples is a number, not an integer"),
        ({"num_samples": True}, "num_samples is a boolean"),
        ({"num_samples": 0}, "num_samples 0 is not an integer in"),
        ({"num_samples": 2**64}, "num_samples .* is not an integer in"),
        ({"round": -1}, "round -1 is not an integer in"),
        ({"signature": "0x" + "11" * 64}, "signature is 64 bytes, expected 65"),
        ({"update_digest": "0x" + "AB" * 32}, "update_digest .* is not 0x-prefixed lower-case hex"),
        ({"update_digest": "ab" * 32}, "update_digest .* is not 0x-prefixed lower-case hex"),
        ({"update_digest": "0x" + "00" * 32}, "update_digest is zero"),
        ({"metadata_digest": "0x" + "zz" * 32}, "metadata_digest .* is not 0x-prefixed"),
        ({"cid": ""}, "cid '' is not a non-empty string"),
        ({"cid": "b" * 129}, "cid is 129 characters"),
    ],
)
def test_from_json_names_the_bad_field(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(BlobFormatError, match=message):
        SignedCommitment.from_json(_mutated(**changes))


def test_from_bytes_refuses_what_is_not_a_json_object() -> None:
    for raw in (b"[1]", b"not json", b"{" * 2000, b'{"a":' + b"1" * 5000 + b"}"):
        with pytest.raises(BlobFormatError):
            SignedCommitment.from_bytes(raw)


# --- the set blob --------------------------------------------------------------------------------------------
def test_set_round_trip_sorted_by_participant() -> None:
    s = _set(KEYS[:4])
    assert [sc.participant.lower() for sc in s.commitments] == sorted(k.address.lower() for k in KEYS[:4])
    data = encode_commitment_set(s)
    assert decode_commitment_set(data) == s
    assert encode_commitment_set(decode_commitment_set(data)) == data
    assert json.loads(data)["format"] == "fedchain.commitment-set/1"


def test_an_empty_set_round_trips_and_has_the_zero_root() -> None:
    s = CommitmentSet.build(CHAIN, CONTRACT, ROUND, [])
    assert decode_commitment_set(encode_commitment_set(s)) == s
    assert commitment_set_root(s) == ZERO_DIGEST
    assert inclusion_proof(s, KEYS[0].address) is None


def test_building_a_set_with_two_commitments_of_one_participant_is_refused() -> None:
    with pytest.raises(BlobFormatError, match=f"commitments\\[1\\]: a second commitment of {KEYS[0].address}"):
        CommitmentSet.build(CHAIN, CONTRACT, ROUND, [_signed(KEYS[0]), _signed(KEYS[0], tag=b"x")])


def _doc(s: CommitmentSet) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(encode_commitment_set(s))
    return doc


def test_decode_refuses_duplicates_naming_the_entry() -> None:
    doc = _doc(_set(KEYS[:2]))
    doc["commitments"].insert(1, dict(doc["commitments"][0]))
    with pytest.raises(BlobFormatError, match="commitments\\[1\\]: a second commitment of"):
        decode_commitment_set(encode_json_doc(doc))


def test_decode_refuses_unsorted_entries_naming_the_entry() -> None:
    doc = _doc(_set(KEYS[:3]))
    doc["commitments"].reverse()
    with pytest.raises(BlobFormatError, match="commitments\\[1\\]: 0x[0-9a-fA-F]{40} is not sorted"):
        decode_commitment_set(encode_json_doc(doc))


def test_decode_refuses_a_bad_field_naming_the_entry() -> None:
    doc = _doc(_set(KEYS[:3]))
    doc["commitments"][2]["signature"] = "0x12"
    with pytest.raises(BlobFormatError, match="commitment set commitments\\[2\\]: signature is 1 bytes, expected 65"):
        decode_commitment_set(encode_json_doc(doc))


@pytest.mark.parametrize(
    ("fmt", "message"),
    [
        ("fedchain.evidence/1", "not a commitment set: its format is 'fedchain.evidence/1'"),
        ("fedchain.commitment-set/2", "commitment set version '2' is not supported"),
        (None, "not a commitment set: its format is None"),
    ],
)
def test_decode_refuses_another_kind_or_version(fmt: str | None, message: str) -> None:
    doc = _doc(_set(KEYS[:1]))
    if fmt is None:
        del doc["format"]
    else:
        doc["format"] = fmt
    with pytest.raises(BlobFormatError, match=message):
        decode_commitment_set(encode_json_doc(doc))


def test_decode_refuses_hostile_bytes() -> None:
    good = encode_commitment_set(_set(KEYS[:2]))
    for raw, message in [
        (b"\xff\xfe not json", "not valid"),
        (b"[]", "is a array, not an object|is a array"),
        (b"[" * 100 + b"]" * 100, "nested more than"),
        (good.replace(b",", b", ", 1), "canonical"),
        (b'{"x":"' + b"a" * (1024 + 2 * 1024) + b'"}', "bytes, over the limit"),
    ]:
        with pytest.raises(BlobFormatError, match=message):
            decode_commitment_set(raw, max_entries=2)


def test_decode_refuses_more_entries_than_the_limit() -> None:
    data = encode_commitment_set(_set(KEYS[:3]))
    assert len(decode_commitment_set(data, max_entries=3).commitments) == 3
    with pytest.raises(BlobFormatError, match="more than"):
        decode_commitment_set(data, max_entries=2)


def test_decode_refuses_a_contract_not_checksummed() -> None:
    doc = _doc(_set(KEYS[:1]))
    doc["contract"] = CONTRACT.lower()
    with pytest.raises(BlobFormatError, match="contract .* is not a checksummed 0x address"):
        decode_commitment_set(encode_json_doc(doc))


# --- checking a posted set -----------------------------------------------------------------------------------
def test_a_sound_set_has_no_problems() -> None:
    assert _check(_set(KEYS[:4])) == []


def test_an_unregistered_signer_is_named() -> None:
    s = _set(KEYS[:3] + [KEYS[5]])
    (problem,) = _check(s)
    assert (problem.kind, problem.culprit, problem.participant) == (SetProblemKind.NOT_ELIGIBLE, KEYS[5].address,
                                                                   KEYS[5].address)


def test_a_forged_entry_is_the_aggregators() -> None:
    forged = dataclasses.replace(_signed(KEYS[4]), participant=KEYS[1].address)
    s = CommitmentSet.build(CHAIN, CONTRACT, ROUND, [_signed(KEYS[0]), forged])
    (problem,) = _check(s)
    assert (problem.kind, problem.culprit, problem.participant) == (SetProblemKind.BAD_SIGNATURE, AGGREGATOR,
                                                                   KEYS[1].address)


def test_root_and_count_mismatches_are_the_aggregators() -> None:
    s = _set(KEYS[:3])
    problems = _check(s, posted_root=commitment_set_root(_set(KEYS[:2])), posted_count=2)
    assert [(p.kind, p.culprit) for p in problems] == [(SetProblemKind.COUNT_MISMATCH, AGGREGATOR),
                                                        (SetProblemKind.ROOT_MISMATCH, AGGREGATOR)]


def test_a_digest_mismatch_is_the_aggregators() -> None:
    s = _set(KEYS[:3])
    (problem,) = _check(s, set_digest=commitment_set_digest(_set(KEYS[:2])))
    assert (problem.kind, problem.culprit) == (SetProblemKind.DIGEST_MISMATCH, AGGREGATOR)


def test_a_set_of_another_round_and_its_entries_are_the_aggregators() -> None:
    s = _set(KEYS[:2], round_id=ROUND - 1)
    problems = _check(s)
    assert [(p.kind, p.culprit, p.participant) for p in problems] == [
        (SetProblemKind.OTHER_ROUND, AGGREGATOR, None),
        (SetProblemKind.OTHER_ROUND, AGGREGATOR, s.commitments[0].participant),
        (SetProblemKind.OTHER_ROUND, AGGREGATOR, s.commitments[1].participant),
    ]


def test_an_entry_of_another_round_in_the_rounds_set_is_named() -> None:
    stale = _signed(KEYS[1], round_id=ROUND - 1)
    s = CommitmentSet.build(CHAIN, CONTRACT, ROUND, [_signed(KEYS[0]), stale])
    (problem,) = _check(s)
    assert (problem.kind, problem.culprit, problem.participant) == (SetProblemKind.OTHER_ROUND, AGGREGATOR,
                                                                   KEYS[1].address)


def test_a_set_of_another_deployment_is_the_aggregators_and_its_signatures_fail() -> None:
    s = CommitmentSet.build(CHAIN, OTHER_CONTRACT, ROUND, [_signed(KEYS[0], contract=OTHER_CONTRACT)])
    problems = _check(s)
    assert [(p.kind, p.culprit) for p in problems] == [(SetProblemKind.OTHER_DEPLOYMENT, AGGREGATOR),
                                                        (SetProblemKind.BAD_SIGNATURE, AGGREGATOR)]


# --- inclusion proofs ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("n", [1, 2, 3, 5])
def test_every_participants_inclusion_proof_verifies_against_the_root(n: int) -> None:
    s = _set(KEYS[:n])
    root = commitment_set_root(s)
    for sc in s.commitments:
        proof = inclusion_proof(s, sc.participant)
        assert proof is not None
        assert verify(proof, root, sc.leaf())
    assert inclusion_proof(s, KEYS[5].address) is None


def test_an_inclusion_proof_does_not_verify_another_leaf() -> None:
    s = _set(KEYS[:4])
    proof = inclusion_proof(s, KEYS[0].address)
    assert proof is not None
    assert not verify(proof, commitment_set_root(s), _signed(KEYS[0], tag=b"other").leaf())


# --- the inbox -----------------------------------------------------------------------------------------------
@pytest.fixture
def inbox() -> Iterator[CommitmentInbox]:
    with CommitmentInbox(socket_timeout_s=3.0) as box:
        box.open_round(ROUND, CHAIN, CONTRACT, frozenset(k.address for k in KEYS[:4]))
        yield box


def _host_port(inbox: CommitmentInbox) -> tuple[str, int]:
    host, port = inbox.url.removeprefix("http://").rsplit(":", 1)
    return host, int(port)


def _refusal(url: str, sc: SignedCommitment) -> InboxRefusedError:
    with pytest.raises(InboxRefusedError) as info:
        send_commitment(url, sc, timeout_s=5)
    return info.value


def _post(inbox: CommitmentInbox, body: bytes, *, round_id: int = ROUND, length: int | None = None) -> tuple[int, Any]:
    conn = http.client.HTTPConnection(*_host_port(inbox), timeout=5)
    try:
        conn.putrequest("POST", f"/v1/rounds/{round_id}/commitments")
        conn.putheader("Content-Length", str(len(body) if length is None else length))
        conn.endheaders()
        conn.send(body)
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_the_inbox_accepts_and_serves_a_commitment(inbox: CommitmentInbox) -> None:
    sc = _signed(KEYS[0])
    assert send_commitment(inbox.url, sc, timeout_s=5) == sc.leaf()
    assert inbox.stored(ROUND, sc.participant) == sc
    conn = http.client.HTTPConnection(*_host_port(inbox), timeout=5)
    conn.request("GET", f"/v1/rounds/{ROUND}/commitments/{sc.participant.lower()}")
    response = conn.getresponse()
    assert response.status == 200
    assert SignedCommitment.from_bytes(response.read()) == sc
    conn.request("GET", f"/v1/rounds/{ROUND}/commitments/{KEYS[1].address}")
    assert conn.getresponse().status == 404
    conn.close()


def test_sending_the_same_commitment_again_is_idempotent(inbox: CommitmentInbox) -> None:
    sc = _signed(KEYS[0])
    assert send_commitment(inbox.url, sc, timeout_s=5) == sc.leaf()
    assert send_commitment(inbox.url, sc, timeout_s=5) == sc.leaf()
    assert inbox.received() == 1


def test_a_second_different_commitment_is_equivocation_and_the_first_stays(inbox: CommitmentInbox) -> None:
    first = _signed(KEYS[0])
    send_commitment(inbox.url, first, timeout_s=5)
    refused = _refusal(inbox.url, _signed(KEYS[0], tag=b"second"))
    assert refused.status == 409 and "already committed a different update" in refused.reason
    assert inbox.stored(ROUND, KEYS[0].address) == first


def test_a_commitment_to_another_round_is_refused(inbox: CommitmentInbox) -> None:
    refused = _refusal(inbox.url, _signed(KEYS[0], round_id=ROUND + 1))
    assert refused.status == 409 and f"round {ROUND + 1} is not open" in refused.reason


def test_a_body_whose_round_is_not_the_paths_is_refused(inbox: CommitmentInbox) -> None:
    status, answer = _post(inbox, _signed(KEYS[0], round_id=ROUND + 1).to_bytes())
    assert status == 400 and "posted to round" in answer["error"]


def test_a_bad_signature_is_refused(inbox: CommitmentInbox) -> None:
    refused = _refusal(inbox.url, _signed(KEYS[0], contract=OTHER_CONTRACT))
    assert refused.status == 403 and refused.reason.startswith("bad signature")
    assert inbox.received() == 0


def test_an_unregistered_signer_is_refused(inbox: CommitmentInbox) -> None:
    refused = _refusal(inbox.url, _signed(KEYS[5]))
    assert refused.status == 403 and "not an eligible participant" in refused.reason
    assert isinstance(refused, UpdateRejectedError) and refused.exit_code is ExitCode.UPDATE_REJECTED


def test_malformed_json_is_refused(inbox: CommitmentInbox) -> None:
    status, answer = _post(inbox, b'{"round": 7}')
    assert status == 400 and "lacks" in answer["error"]
    status, answer = _post(inbox, b"not json")
    assert status == 400 and "not valid JSON" in answer["error"]


def test_an_oversized_body_is_refused_with_413(inbox: CommitmentInbox) -> None:
    status, answer = _post(inbox, b" " * 5000)
    assert status == 413 and "5000 bytes" in answer["error"]


def test_after_the_seal_a_commitment_is_refused_with_410(inbox: CommitmentInbox) -> None:
    sc = _signed(KEYS[0])
    send_commitment(inbox.url, sc, timeout_s=5)
    assert inbox.seal(ROUND) == (sc,)
    refused = _refusal(inbox.url, _signed(KEYS[1]))
    assert refused.status == 410 and "escape window" in refused.reason
    assert inbox.seal(ROUND) == (sc,)


def test_seal_returns_the_commitments_sorted_by_participant(inbox: CommitmentInbox) -> None:
    for key in KEYS[:4]:
        send_commitment(inbox.url, _signed(key), timeout_s=5)
    sealed = inbox.seal(ROUND)
    assert [sc.participant.lower() for sc in sealed] == sorted(k.address.lower() for k in KEYS[:4])
    s = CommitmentSet(CHAIN, CONTRACT, RoundId(ROUND), sealed)
    assert _check(s) == []


def test_a_silent_client_does_not_block_another(inbox: CommitmentInbox) -> None:
    # the inbox's socket timeout is 3 s and the sender's 1 s: served one after the other, the send would time out
    with socket.create_connection(_host_port(inbox), timeout=10) as silent:
        silent.sendall(b"POST /v1/rounds/7/commitments HTTP/1.0\r\nContent-Length: 500\r\n\r\n{")
        sc = _signed(KEYS[0])
        assert send_commitment(inbox.url, sc, timeout_s=1.0) == sc.leaf()
        answer = silent.recv(4096)  # the inbox gives up on the silent one after its socket timeout: 408
    assert answer.startswith(b"HTTP/1.0 408")


def test_wait_for_wakes_when_the_commitments_are_in(inbox: CommitmentInbox) -> None:
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.wait_for(2, timeout_s=60)))
    waiter.start()
    started = time.monotonic()
    send_commitment(inbox.url, _signed(KEYS[0]), timeout_s=5)
    send_commitment(inbox.url, _signed(KEYS[1]), timeout_s=5)
    waiter.join(timeout=30)
    assert got == [2] and time.monotonic() - started < 30


def test_wait_for_returns_what_is_in_at_the_timeout(inbox: CommitmentInbox) -> None:
    send_commitment(inbox.url, _signed(KEYS[0]), timeout_s=5)
    assert inbox.wait_for(3, timeout_s=0.05) == 1


# --- the client ----------------------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def test_an_unreachable_inbox_is_unavailable() -> None:
    with pytest.raises(InboxUnavailableError, match="cannot be reached") as info:
        send_commitment(f"http://127.0.0.1:{_free_port()}", _signed(KEYS[0]), timeout_s=2)
    assert isinstance(info.value, StorageUnavailableError) and info.value.exit_code is ExitCode.STORAGE_UNAVAILABLE


def _one_answer(answer: bytes) -> tuple[str, threading.Thread]:
    """A one-shot loopback server that reads a request and answers ``answer`` verbatim."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        conn, _ = server.accept()
        with conn:
            conn.settimeout(5)
            data = b""
            while b"\r\n\r\n" not in data:
                data += conn.recv(65536)
            conn.sendall(answer)
        server.close()

    thread = threading.Thread(target=serve)
    thread.start()
    return f"http://127.0.0.1:{server.getsockname()[1]}", thread


def test_an_oversized_answer_is_refused() -> None:
    body = b'{"leaf":"' + b"a" * 10_000 + b'"}'
    url, thread = _one_answer(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    with pytest.raises(InboxUnavailableError, match="more than 4096"):
        send_commitment(url, _signed(KEYS[0]), timeout_s=5)
    thread.join()


def test_an_oversized_answer_without_a_length_is_refused() -> None:
    url, thread = _one_answer(b"HTTP/1.0 200 OK\r\n\r\n" + b"x" * 10_000)
    with pytest.raises(InboxUnavailableError, match="more than 4096"):
        send_commitment(url, _signed(KEYS[0]), timeout_s=5)
    thread.join()


def test_an_acknowledgement_of_another_leaf_is_an_integrity_error() -> None:
    from fedchain.errors import IntegrityError

    body = json.dumps({"leaf": "0x" + "00" * 32}).encode()
    url, thread = _one_answer(b"HTTP/1.0 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body) + body)
    with pytest.raises(IntegrityError, match="acknowledged leaf"):
        send_commitment(url, _signed(KEYS[0]), timeout_s=5)
    thread.join()


# --- more of the inbox ---------------------------------------------------------------------------------------
def _raw(inbox: CommitmentInbox, request: bytes) -> bytes:
    """Send ``request`` verbatim and read the answer until the inbox closes the connection."""
    with socket.create_connection(_host_port(inbox), timeout=10) as conn:
        conn.sendall(request)
        answer = b""
        while chunk := conn.recv(4096):
            answer += chunk
    return answer


def test_a_body_without_a_length_is_refused_with_411(inbox: CommitmentInbox) -> None:
    answer = _raw(inbox, b"POST /v1/rounds/7/commitments HTTP/1.0\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 411")


def test_a_huge_declared_body_is_refused_with_413_unread(inbox: CommitmentInbox) -> None:
    answer = _raw(inbox, b"POST /v1/rounds/7/commitments HTTP/1.0\r\nContent-Length: 1000000000\r\n\r\n")
    assert answer.startswith(b"HTTP/1.0 413") and b"1000000000 bytes" in answer


def test_an_unknown_path_is_404(inbox: CommitmentInbox) -> None:
    status, answer = _post(inbox, _signed(KEYS[0]).to_bytes(), round_id=-1)
    assert status == 404 and "no such resource" in answer["error"]


def test_connections_beyond_the_limit_are_answered_503() -> None:
    with CommitmentInbox(socket_timeout_s=5.0, max_connections=1) as box:
        box.open_round(ROUND, CHAIN, CONTRACT, frozenset(k.address for k in KEYS[:4]))
        with socket.create_connection(_host_port(box), timeout=10) as silent:
            silent.sendall(b"POST /v1/rounds/7/commitments HTTP/1.0\r\n")  # holds the only slot
            with pytest.raises(InboxUnavailableError, match="HTTP 503"):
                send_commitment(box.url, _signed(KEYS[0]), timeout_s=2)
        assert box.received() == 0


def test_wait_for_wakes_when_the_round_is_sealed(inbox: CommitmentInbox) -> None:
    send_commitment(inbox.url, _signed(KEYS[0]), timeout_s=5)
    got: list[int] = []
    waiter = threading.Thread(target=lambda: got.append(inbox.wait_for(4, timeout_s=60)))
    waiter.start()
    started = time.monotonic()
    inbox.seal(ROUND)
    waiter.join(timeout=30)
    assert got == [1] and time.monotonic() - started < 30


def test_a_sealed_round_cannot_be_reopened_and_an_unopened_one_cannot_be_sealed(inbox: CommitmentInbox) -> None:
    inbox.seal(ROUND)
    with pytest.raises(AggregationError, match="sealed already"):
        inbox.open_round(ROUND, CHAIN, CONTRACT, frozenset())
    with pytest.raises(AggregationError, match="is not open"):
        inbox.seal(ROUND + 1)


def test_the_next_round_takes_over(inbox: CommitmentInbox) -> None:
    send_commitment(inbox.url, _signed(KEYS[0]), timeout_s=5)
    inbox.seal(ROUND)
    inbox.open_round(ROUND + 1, CHAIN, CONTRACT, frozenset(k.address for k in KEYS[:4]))
    later = _signed(KEYS[0], round_id=ROUND + 1)
    assert send_commitment(inbox.url, later, timeout_s=5) == later.leaf()
    assert inbox.stored(ROUND, KEYS[0].address) == _signed(KEYS[0])  # the sealed round is still served
    assert _refusal(inbox.url, _signed(KEYS[1])).status == 410


# --- decoders refuse garbage cleanly -------------------------------------------------------------------------
_GOOD_SET = encode_commitment_set(_set(KEYS[:3]))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_decoding_random_bytes_refuses_cleanly(data: bytes) -> None:
    with pytest.raises(BlobFormatError):
        decode_commitment_set(data)
    try:
        SignedCommitment.from_bytes(data)
    except BlobFormatError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=0, max_value=len(_GOOD_SET) - 1), st.integers(min_value=0, max_value=255))
def test_decoding_a_set_with_one_byte_changed_refuses_or_decodes_another_valid_set(at: int, value: int) -> None:
    data = _GOOD_SET[:at] + bytes([value]) + _GOOD_SET[at + 1:]
    try:
        decoded = decode_commitment_set(data)
    except BlobFormatError:
        return
    assert encode_commitment_set(decoded) == data  # only a canonical blob decodes


def test_equivocation_is_logged_and_no_key_ever_is(inbox: CommitmentInbox, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="fedchain")
    send_commitment(inbox.url, _signed(KEYS[0]), timeout_s=5)
    _refusal(inbox.url, _signed(KEYS[0], tag=b"second"))
    _refusal(inbox.url, _signed(KEYS[5]))
    inbox.seal(ROUND)
    assert any(r.levelno == logging.WARNING and "equivocated" in r.getMessage() for r in caplog.records)
    text = caplog.text.lower()
    assert all(key.private.hex() not in text for key in KEYS)


def test_a_posted_set_holding_more_entries_than_the_round_has_eligible_participants_is_not_used(tmp_path) -> None:
    from fedchain.ports import CommitmentSetPosted
    from fedchain.protocol.signed import set_bytes_bound
    from fedchain.protocol.signed_rounds import fetch_commitment_set, resolve_signed_round
    from fedchain.storage.local import LocalStore

    store = LocalStore(tmp_path / "blobs")
    s = _set(KEYS[:3])
    data = encode_commitment_set(s)
    cid = store.put(data)
    posted = CommitmentSetPosted(RoundId(ROUND), Address(CONTRACT), commitment_set_root(s), 3,
                                 commitment_set_digest(s), cid, 0, 10, "0x" + "11" * 32, 0)
    assert fetch_commitment_set(store, posted, max_entries=3)[0] == s
    cset, why = fetch_commitment_set(store, posted, max_entries=2)
    assert cset is None and why is not None and "more than 2" in why
    assert len(data) > set_bytes_bound(0)
    cset, why = fetch_commitment_set(store, posted, max_entries=0)  # over the byte bound: refused before parsing
    assert cset is None and why is not None and "a set of 0 entries can take" in why
    # resolved against two eligible participants: the set is unavailable (the auditor reports it), nothing counted
    resolved = resolve_signed_round(store, posted, [], chain_id=CHAIN, contract=CONTRACT,
                                    eligible={k.address.lower() for k in KEYS[:2]})
    assert resolved.commitment_set is None and resolved.commitments == () and "more than 2" in str(resolved.unavailable)


def test_a_forced_update_unlike_the_participant_s_sound_signed_entry_is_left_out_and_the_signed_one_stands(
        tmp_path) -> None:
    from fedchain.ports import CommitmentSetPosted, UpdateCommitment
    from fedchain.protocol.signed_rounds import resolve_signed_round
    from fedchain.storage.local import LocalStore

    store = LocalStore(tmp_path / "blobs")
    s = _set(KEYS[:3])
    cid = store.put(encode_commitment_set(s))
    posted = CommitmentSetPosted(RoundId(ROUND), Address(CONTRACT), commitment_set_root(s), 3,
                                 commitment_set_digest(s), cid, 0, 10, "0x" + "11" * 32, 0)
    signed = {c.participant: c for c in s.as_commitments(block_number=10, tx_hash="0x" + "11" * 32)}
    same = dataclasses.replace(signed[KEYS[0].address], block_number=12, tx_hash="0x" + "22" * 32, log_index=0)
    other = UpdateCommitment(RoundId(ROUND), KEYS[1].address, hashlib.sha256(b"another update").digest(), CID, 100,
                             hashlib.sha256(b"meta").digest(), 13, "0x" + "33" * 32, 0)
    eligible = {k.address.lower() for k in KEYS[:4]}
    resolved = resolve_signed_round(store, posted, [same, other], chain_id=CHAIN, contract=CONTRACT, eligible=eligible)
    # the one forced as signed counts once (its on-chain copy); the one forced unlike its signed entry is left out
    assert resolved.forced == (same,)
    assert resolved.swapped == ((other, signed[KEYS[1].address]),)
    by = {c.participant: c for c in resolved.commitments}
    assert len(resolved.commitments) == 3 and by[KEYS[0].address] == same
    assert by[KEYS[1].address] == signed[KEYS[1].address] and by[KEYS[2].address] == signed[KEYS[2].address]
    # a participant left out of the set (or with a faulty entry) is counted by its forced update, as before
    outsider = UpdateCommitment(RoundId(ROUND), KEYS[3].address, hashlib.sha256(b"late").digest(), CID, 100,
                                hashlib.sha256(b"meta").digest(), 14, "0x" + "44" * 32, 0)
    again = resolve_signed_round(store, posted, [outsider], chain_id=CHAIN, contract=CONTRACT, eligible=eligible)
    assert again.swapped == () and outsider in again.commitments and len(again.commitments) == 4


def test_a_client_trickling_its_headers_is_dropped_after_twice_the_socket_timeout() -> None:
    with CommitmentInbox(socket_timeout_s=0.4, max_connections=1) as box:
        box.open_round(ROUND, CHAIN, CONTRACT, frozenset(k.address for k in KEYS[:4]))
        started = time.monotonic()
        with socket.create_connection(_host_port(box), timeout=10) as slow:
            slow.sendall(b"POST /v1/rounds/7/commitments HTTP/1.1\r\n")
            closed = False
            for _ in range(40):  # one header byte every 0.2 s: each read within the socket timeout
                time.sleep(0.2)
                try:
                    slow.sendall(b"X")
                except OSError:
                    closed = True
                    break
                if time.monotonic() - started > 4:
                    break
            if not closed:
                slow.settimeout(2)
                try:
                    closed = slow.recv(4096) == b""
                except OSError:
                    closed = True
        assert closed and time.monotonic() - started < 3.0  # cut at 0.8 s, not held for ever
        # the slot is free again: a commitment goes in
        sc = _signed(KEYS[0])
        assert send_commitment(box.url, sc, timeout_s=2) == sc.leaf()

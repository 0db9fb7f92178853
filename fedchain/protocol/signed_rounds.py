"""The commitments of a signed round, as the aggregator, every participant and the auditor read them.

A signed round's commitments are the entries of the set the aggregator posted (:class:`CommitmentSetPosted`: its
root, count, digest and CID on chain, the set itself a blob in the store) and the commitments participants forced
on chain during the escape window (ordinary ``UpdateCommitted`` events). :func:`resolve_signed_round` fetches and
checks the set (:func:`fedchain.protocol.signed.check_commitment_set`) and merges the two into one list of
:class:`UpdateCommitment`\\ s, the same records an ordinary round's events give, so that screening, aggregation,
evidence and replay are unchanged. The rules, which the auditor replays:

- an entry whose signature does not recover to the participant it names, of another round, or signed by a key
  that was not eligible (active when the round opened) is left out, with its :class:`SetProblem`;
- a forced commitment replaces the set entry of the same participant (the chain's record wins);
- a set that cannot be fetched, does not match its digest or does not decode contributes nothing (a problem
  naming the aggregator); the forced commitments still count.

Set entries become commitments of the block and transaction of the ``CommitmentSetPosted`` event, their log index
their position in the set (:meth:`fedchain.protocol.signed.CommitmentSet.as_commitments`).
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass

from fedchain.codec.canonical import sha256_digest
from fedchain.errors import BlobFormatError, StorageError
from fedchain.ports import (
    BlobStore,
    CommitmentSetPosted,
    LedgerEvent,
    ParticipantAdmitted,
    ParticipantRemoved,
    RoundOpened,
    UpdateCommitment,
)
from fedchain.protocol.signed import (
    DEFAULT_MAX_SET_ENTRIES,
    CommitmentSet,
    SetProblem,
    SetProblemKind,
    check_commitment_set,
    decode_commitment_set,
    set_bytes_bound,
)
from fedchain.types import Address, RoundId, digest_hex

log = logging.getLogger(__name__)

# the set problems that leave an entry out (the others concern the set as a whole)
_ENTRY_FAULTS = frozenset({SetProblemKind.BAD_SIGNATURE, SetProblemKind.NOT_ELIGIBLE, SetProblemKind.OTHER_ROUND})


@dataclass(frozen=True)
class SignedRoundCommitments:
    """A signed round's commitments: the set's sound entries (forced ones replacing theirs) and the forced ones,
    in that order; the set as fetched (None: none posted, or unusable: ``unavailable`` says why) and what is wrong
    with it."""

    commitments: tuple[UpdateCommitment, ...]
    commitment_set: CommitmentSet | None
    problems: tuple[SetProblem, ...]
    forced: tuple[UpdateCommitment, ...]
    unavailable: str | None = None  # why the posted set could not be used (fetch, digest, decoding); None: it could
    swapped: tuple[tuple[UpdateCommitment, UpdateCommitment], ...] = ()
    """(forced, signed) pairs: a participant whose sound entry is in the set forced another update on chain (after
    the set, and so every other update's CID, was out); its signed entry stands and the forced one is left out."""


def active_at_open(events: Iterable[LedgerEvent], round_id: RoundId) -> frozenset[str]:
    """The lower-case addresses of the participants active just before round ``round_id``'s ``RoundOpened`` event:
    those eligible to commit in it."""
    active: set[str] = set()
    for e in sorted(events, key=lambda ev: (ev.block_number, ev.log_index)):
        if isinstance(e, RoundOpened) and int(e.round_id) == int(round_id):
            return frozenset(active)
        if isinstance(e, ParticipantAdmitted):
            active.add(e.participant.lower())
        elif isinstance(e, ParticipantRemoved):
            active.discard(e.participant.lower())
    return frozenset(active)


def fetch_commitment_set(store: BlobStore, posted: CommitmentSetPosted, *,
                         max_entries: int = DEFAULT_MAX_SET_ENTRIES) -> tuple[CommitmentSet | None, str | None]:
    """The set ``posted`` names, fetched from the store and checked against its digest; (None, why) when it cannot
    be had. ``max_entries``: the most entries it may hold (the round's eligible participants: a set cannot hold
    more valid ones), which also bounds its size."""
    try:
        data = store.get(posted.set_cid)
    except StorageError as err:
        return None, f"commitment set {posted.set_cid} of round {posted.round_id} cannot be fetched: {err}"
    max_bytes = set_bytes_bound(max_entries)
    if len(data) > max_bytes:
        return None, (f"commitment set {posted.set_cid} is {len(data)} bytes, more than the {max_bytes} a set of "
                      f"{max_entries} entries can take")
    if bytes(sha256_digest(data)) != bytes(posted.set_digest):
        return None, (f"commitment set {posted.set_cid} hashes to {digest_hex(sha256_digest(data))}, the chain records "
                      f"{digest_hex(posted.set_digest)}")
    try:
        return decode_commitment_set(data, max_entries=max_entries), None
    except BlobFormatError as err:
        return None, f"commitment set {posted.set_cid} does not decode: {err}"


def resolve_signed_round(
    store: BlobStore,
    posted: CommitmentSetPosted | None,
    forced: Sequence[UpdateCommitment],
    *,
    chain_id: int,
    contract: Address | str,
    eligible: Collection[str],
) -> SignedRoundCommitments:
    """The commitments of a signed round (the module's rules): the set ``posted`` names (None: none posted yet)
    checked on ``(chain_id, contract)`` against ``eligible`` (see :func:`active_at_open`), merged with the
    ``forced`` on-chain commitments of the round."""
    problems: list[SetProblem] = []
    entries: list[UpdateCommitment] = []
    swapped: list[tuple[UpdateCommitment, UpdateCommitment]] = []
    cset: CommitmentSet | None = None
    unavailable: str | None = None
    if posted is not None:
        cset, unavailable = fetch_commitment_set(store, posted, max_entries=len(eligible))
        if cset is not None:
            found = check_commitment_set(cset, chain_id=chain_id, contract=contract, round_id=int(posted.round_id),
                                         eligible=eligible, posted_root=bytes(posted.set_root),
                                         posted_count=int(posted.count))
            problems.extend(found)
            # every entry's signature was checked on this chain and contract: a set that names another deployment
            # (the aggregator's fault, reported) still counts the entries signed for this one
            faulty = {str(p.participant).lower() for p in found if p.kind in _ENTRY_FAULTS and p.participant}
            sound = {c.participant.lower(): c for c in cset.as_commitments(block_number=posted.block_number,
                                                                             tx_hash=posted.tx_hash)
                     if c.participant.lower() not in faulty}
            kept: list[UpdateCommitment] = []
            for c in forced:
                signed = sound.get(c.participant.lower())
                if signed is not None and not _same_update(signed, c):
                    swapped.append((c, signed))
                    log.warning("round %d: %s forced update %s though its signed update %s is in the set; the signed "
                                "one stands", posted.round_id, c.participant, c.cid, signed.cid)
                else:
                    kept.append(c)
            forced = kept
            forced_by = {c.participant.lower() for c in forced}
            entries = [c for p, c in sound.items() if p not in forced_by]
        else:
            log.warning("round %d: %s", posted.round_id, unavailable)
    for p in problems:
        log.warning("round %d: commitment set: %s (%s): %s", posted.round_id if posted else 0, p.kind.value,
                    p.culprit, p.detail)
    return SignedRoundCommitments(tuple(entries) + tuple(forced), cset, tuple(problems), tuple(forced), unavailable,
                                  tuple(swapped))


def _same_update(a: UpdateCommitment, b: UpdateCommitment) -> bool:
    """Whether two commitments commit to the same update (blob, CID, samples, metadata)."""
    return (bytes(a.update_digest) == bytes(b.update_digest) and str(a.cid) == str(b.cid)
            and int(a.num_samples) == int(b.num_samples) and bytes(a.metadata_digest) == bytes(b.metadata_digest))

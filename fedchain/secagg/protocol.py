"""One secure-aggregation round as pure functions over the public records.

1. :func:`advertise` — each participant draws a fresh X25519 mask key pair and a self-mask seed b_i,
   Shamir-shares both (threshold t) to its share holders (its neighbours and itself), and encrypts each
   holder's pair of shares with ChaCha20-Poly1305 under HKDF(X25519(its long-term key, the holder's
   registered long-term key)); the associated data binds the round context, sender, recipient, the mask
   public key and the seed commitment.
2. :func:`accept_advertisements` — U1, the advertisements every party accepts (a pure function).
3. :func:`mask_input` — y_i = x_i + PRG(b_i) + sum over neighbours j in U1 of ±PRG(s_ij) (mod 2^32).
4. :func:`unmask_shares` — after the commit deadline, a survivor reveals, for each owner it holds shares
   of, the share of b_j when j committed a masked input (U2), else the share of j's mask key; never both.
5. :func:`unmask` — from the public records only: the exact ring sum of the survivors' quantised inputs,
   with findings naming participants whose records or revealed shares were wrong. An auditor runs it too.
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import os
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from fedchain.errors import (
    BelowThresholdError,
    DoubleRevealError,
    SecAggContextError,
    SecAggError,
    SecAggFormatError,
    SecAggKeyError,
    ShamirError,
    UnrecoverableSecretError,
)
from fedchain.secagg import keys
from fedchain.secagg.context import RoundContext, seed_commitment
from fedchain.secagg.masking import RingVector, apply, pair_mask, pair_sign, self_mask
from fedchain.secagg.messages import (
    SHARE_PLAINTEXT_SIZE,
    Advertisement,
    EncryptedShare,
    MaskedInput,
    RevealedShare,
    RevealKind,
    UnmaskingShares,
)
from fedchain.secagg.shamir import SECRET_SIZE, Y_SIZE, RandomBytes, Share, combine, interpolate, split

MAX_SUBSET_TRIES = 10_000

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RoundSecrets:
    """What a participant keeps to itself between stages: its mask private key and self-mask seed."""

    index: int
    mask_private: bytes = field(repr=False)
    self_seed: bytes = field(repr=False)


class FindingKind(str, Enum):
    """What a participant did wrong in a round (each finding names the offender)."""

    WRONG_CONTEXT = "wrong_context"  # a record of another round or federation
    NOT_A_MEMBER = "not_a_member"  # a record from an index that is not a member of the round
    DUPLICATE = "duplicate"  # two different records of the same stage from the same sender
    BAD_KEY = "bad_key"  # a malformed or low-order mask public key
    MALFORMED = "malformed"  # shares for the wrong holders, a wrong dimension, a reveal it may not make
    NOT_ADVERTISED = "not_advertised"  # a masked input (or unmasking shares) from outside U1 (or U2)
    DOUBLE_REVEAL = "double_reveal"  # revealed both the seed share and the key share of one owner
    SURVIVOR_KEY_REVEALED = "survivor_key_revealed"  # revealed the mask-key share of a survivor
    INCONSISTENT_SHARE = "inconsistent_share"  # a revealed share off the polynomial that the commitment verifies
    SHARE_REJECTED = "share_rejected"  # a holder reports that the offender's encrypted share failed authentication


@dataclass(frozen=True)
class SecAggFinding:
    """One offence: who (``offender``), what, about whose secret (``owner``), and the evidence in words."""

    kind: FindingKind
    offender: int
    detail: str
    owner: int | None = None


@dataclass(frozen=True)
class Roster:
    """U1: the accepted advertisements by sender, and the findings of the ones refused."""

    advertisements: dict[int, Advertisement]
    findings: tuple[SecAggFinding, ...]

    @property
    def indices(self) -> frozenset[int]:
        """The senders in U1."""
        return frozenset(self.advertisements)


@dataclass(frozen=True, eq=False)
class UnmaskResult:
    """The unmasked ring sum of the survivors' quantised inputs and how it was obtained."""

    total: RingVector
    survivors: tuple[int, ...]  # U2: whose inputs are in the sum
    dropped: tuple[int, ...]  # U1 minus U2: whose pairwise masks were removed with its reconstructed key
    revealers: tuple[int, ...]  # U3: whose revealed shares were used
    findings: tuple[SecAggFinding, ...]

    def digest(self) -> bytes:
        """SHA-256 of the sum as little-endian uint32."""
        return hashlib.sha256(np.ascontiguousarray(self.total, dtype="<u4").tobytes()).digest()


def expect_context(ctx: RoundContext, record: Advertisement | MaskedInput | UnmaskingShares) -> None:
    """SecAggContextError unless ``record`` belongs to this round of this federation."""
    if record.context != ctx.digest:
        raise SecAggContextError(
            f"{type(record).__name__} from participant {record.sender} belongs to another round or federation "
            f"(context {record.context.hex()[:16]}..., round {ctx.round_id} is {ctx.digest.hex()[:16]}...)"
        )


# --- stage 1: advertise ------------------------------------------------------------------------
def advertise(
    ctx: RoundContext, index: int, long_term_private: bytes, rng: RandomBytes = os.urandom
) -> tuple[Advertisement, RoundSecrets]:
    """Participant ``index``'s advertisement for the round and the secrets it keeps."""
    me = ctx.member(index)
    if keys.public_key_of(long_term_private) != me.public_key:
        raise SecAggKeyError(f"participant {index}", "the long-term private key does not match the registered key")
    mask_private = keys.private_key(rng(keys.KEY_SIZE)).private_bytes_raw()
    mask_public = keys.public_key_of(mask_private)
    self_seed = rng(SECRET_SIZE)
    commitment = seed_commitment(ctx.digest, index, self_seed)
    holders = ctx.graph.holders(index)
    t = ctx.params.threshold
    key_shares = split(mask_private, t, holders, rng)
    seed_shares = split(self_seed, t, holders, rng)
    shares = []
    for holder, ks, ss in zip(holders, key_shares, seed_shares, strict=True):
        key = keys.share_key(long_term_private, ctx.member(holder).public_key, ctx.digest, index, holder, holder)
        nonce = rng(keys.NONCE_SIZE)
        plaintext = ks.y_bytes() + ss.y_bytes()
        aad = _share_aad(ctx.digest, index, holder, mask_public, commitment)
        shares.append(EncryptedShare(holder, nonce, keys.seal(key, nonce, plaintext, aad)))
    return Advertisement(ctx.digest, index, mask_public, commitment, tuple(shares)), RoundSecrets(index, mask_private, self_seed)


def accept_advertisements(ctx: RoundContext, advertisements: Iterable[Advertisement]) -> Roster:
    """U1: the advertisements of the round that are well formed, one per member (pure, deterministic)."""
    findings: list[SecAggFinding] = []
    by_sender: dict[int, list[Advertisement]] = {}
    for ad in advertisements:
        if ad.context != ctx.digest:
            findings.append(SecAggFinding(FindingKind.WRONG_CONTEXT, ad.sender, "advertisement of another round or federation"))
        elif not ctx.is_member(ad.sender):
            findings.append(SecAggFinding(FindingKind.NOT_A_MEMBER, ad.sender, "advertisement from a non-member"))
        elif ad not in by_sender.setdefault(ad.sender, []):
            by_sender[ad.sender].append(ad)
    accepted: dict[int, Advertisement] = {}
    for sender in sorted(by_sender):
        ads = by_sender[sender]
        if len(ads) > 1:
            findings.append(SecAggFinding(FindingKind.DUPLICATE, sender, f"{len(ads)} different advertisements"))
            continue
        ad = ads[0]
        try:
            keys.check_public_key(ad.mask_public_key, f"participant {sender} (mask key)")
        except SecAggKeyError as err:
            findings.append(SecAggFinding(FindingKind.BAD_KEY, sender, str(err)))
            continue
        recipients = tuple(s.recipient for s in ad.shares)
        if recipients != ctx.graph.holders(sender):
            findings.append(SecAggFinding(FindingKind.MALFORMED, sender, f"shares for {recipients}, not its share holders"))
            continue
        accepted[sender] = ad
    return Roster(accepted, tuple(findings))


# --- stage 2: mask ------------------------------------------------------------------------------
def mask_input(ctx: RoundContext, secrets: RoundSecrets, roster: Roster, update: RingVector) -> MaskedInput:
    """The masked input y_i of participant ``secrets.index`` for its quantised ``update``."""
    i = secrets.index
    values = np.asarray(update)
    if values.dtype != np.uint32 or values.shape != (ctx.params.dimension,):
        raise SecAggFormatError(
            f"a quantised update is uint32 of shape ({ctx.params.dimension},), got {values.dtype} {values.shape}"
        )
    if i not in roster.advertisements:
        raise SecAggFormatError(f"participant {i} is not in the round's accepted advertisements (U1)")
    _need_holders(ctx, roster.indices, i, "participant {i}'s share holders that advertised")
    acc = values.copy()
    apply(acc, self_mask(secrets.self_seed, len(acc)), +1)
    for j in ctx.graph.of(i):
        if j in roster.advertisements:
            seed = keys.pairwise_seed(
                secrets.mask_private, roster.advertisements[j].mask_public_key, ctx.digest, i, j, f"participant {j}"
            )
            apply(acc, pair_mask(seed, len(acc)), pair_sign(i, j))
    return MaskedInput(ctx.digest, i, acc)


# --- stage 3: reveal ----------------------------------------------------------------------------
def open_share(ctx: RoundContext, roster: Roster, owner: int, recipient: int, long_term_private: bytes) -> tuple[Share, Share]:
    """Decrypt ``owner``'s shares for ``recipient``: (mask-key share, self-seed share). ShareAuthenticationError
    when the ciphertext does not authenticate (tampered, another round, federation, sender or recipient)."""
    ad = roster.advertisements.get(owner)
    if ad is None:
        raise SecAggFormatError(f"participant {owner} has no accepted advertisement")
    enc = ad.share_for(recipient)
    if enc is None:
        raise SecAggFormatError(f"participant {owner}'s advertisement holds no share for participant {recipient}")
    key = keys.share_key(long_term_private, ctx.member(owner).public_key, ctx.digest, owner, recipient, owner)
    aad = _share_aad(ctx.digest, owner, recipient, ad.mask_public_key, ad.seed_commitment)
    plaintext = keys.open_sealed(key, enc.nonce, enc.ciphertext, aad, owner, recipient)
    if len(plaintext) != SHARE_PLAINTEXT_SIZE:
        raise SecAggFormatError(f"participant {owner}'s share for {recipient} has {len(plaintext)} bytes")
    try:
        return (
            Share(recipient, int.from_bytes(plaintext[:Y_SIZE], "big")),
            Share(recipient, int.from_bytes(plaintext[Y_SIZE:], "big")),
        )
    except ShamirError as err:
        raise SecAggFormatError(f"participant {owner}'s share for {recipient} is not a field element") from err


def unmask_shares(
    ctx: RoundContext,
    secrets: RoundSecrets,
    long_term_private: bytes,
    roster: Roster,
    survivors: Collection[int],
    published: Sequence[UnmaskingShares] = (),
) -> UnmaskingShares:
    """What survivor ``secrets.index`` reveals once the committed set ``survivors`` (U2) is known: for each owner
    it holds shares of in U1, the self-seed share if the owner survived, else the mask-key share.

    Refuses (DoubleRevealError) to reveal both kinds for one owner, counting what it ``published`` before in
    this round, and to act when it is not itself among the survivors; BelowThresholdError below t survivors."""
    me = secrets.index
    # a committer whose advertisement no party accepted is not a survivor: its masked input is refused by every
    # unmasking (NOT_ADVERTISED), so its neighbours reveal nothing of it
    u2 = frozenset(survivors) & roster.indices
    if me not in u2:
        raise DoubleRevealError(me, (me,))
    if len(u2) < ctx.params.threshold:
        raise BelowThresholdError(f"survivors of round {ctx.round_id}", len(u2), ctx.params.threshold)
    before: dict[int, set[RevealKind]] = {}
    for record in published:
        if record.context == ctx.digest and record.sender == me:
            for rv in record.reveals:
                before.setdefault(rv.owner, set()).add(rv.kind)
    reveals: list[RevealedShare] = []
    rejected: list[int] = []
    conflicts: list[int] = []
    for owner in ctx.graph.holders(me):
        if owner not in roster.advertisements:
            continue
        kind = RevealKind.SELF_SEED if owner in u2 else RevealKind.MASK_KEY
        if before.get(owner, {kind}) != {kind}:
            conflicts.append(owner)
            continue
        try:
            key_share, seed_share = open_share(ctx, roster, owner, me, long_term_private)
        except SecAggError:
            rejected.append(owner)
            continue
        reveals.append(RevealedShare(owner, kind, (seed_share if kind is RevealKind.SELF_SEED else key_share).y))
    if conflicts:
        raise DoubleRevealError(me, tuple(conflicts))
    return UnmaskingShares(ctx.digest, me, tuple(reveals), tuple(rejected))


# --- stage 4: unmask (the aggregator's and the auditor's) ------------------------------------------
def unmask(
    ctx: RoundContext,
    advertisements: Iterable[Advertisement],
    masked_inputs: Iterable[MaskedInput],
    unmasking: Iterable[UnmaskingShares],
    committed: Collection[int] | None = None,
) -> UnmaskResult:
    """The exact ring sum of the survivors' quantised inputs, from the public records of the round only.

    ``committed`` (on a ledger: the participants whose masked-input commitments it records) fixes U2 with those of
    them in U1 (a committer without an accepted advertisement is a finding, as every party leaves it out); each of
    them must have a well-formed masked input (SecAggFormatError names those that do not: survivors revealed their
    self-seed shares, so their pairwise masks cannot be removed). None: U2 is the senders of the accepted inputs.

    BelowThresholdError with fewer than t masked inputs or fewer than t revealed shares of a secret,
    UnrecoverableSecretError when no t of them reconstruct the committed secret; every refused record and every
    inconsistent share is a finding naming its sender, and the round goes on without it."""
    roster = accept_advertisements(ctx, advertisements)
    findings = list(roster.findings)
    u1 = roster.indices
    inputs = _accept_inputs(ctx, u1, masked_inputs, findings)
    if committed is not None:
        missing = sorted((frozenset(committed) & u1) - frozenset(inputs))
        if missing:
            raise SecAggFormatError(
                f"committed participant(s) {missing} have no usable masked input: the survivors revealed their "
                "self-seed shares, so their pairwise masks cannot be removed"
            )
    u2 = frozenset(inputs)
    if len(u2) < ctx.params.threshold:
        raise BelowThresholdError(f"masked inputs of round {ctx.round_id}", len(u2), ctx.params.threshold)
    dropped = u1 - u2
    records = _accept_unmasking(ctx, roster, u2, unmasking, findings)
    suspects: set[int] = set()
    total = np.zeros(ctx.params.dimension, dtype=np.uint32)
    for i in sorted(u2):
        apply(total, inputs[i].values, +1)
    for i in sorted(u2):
        shares = _revealed(records, i, RevealKind.SELF_SEED)
        seed = _reconstruct(ctx, i, RevealKind.SELF_SEED, shares, roster.advertisements[i].seed_commitment, findings, suspects)
        apply(total, self_mask(seed, ctx.params.dimension), -1)
    for j in sorted(dropped):
        shares = _revealed(records, j, RevealKind.MASK_KEY)
        mask_private = _reconstruct(
            ctx, j, RevealKind.MASK_KEY, shares, roster.advertisements[j].mask_public_key, findings, suspects
        )
        for i in ctx.graph.of(j):
            if i in u2:
                seed = keys.pairwise_seed(
                    mask_private, roster.advertisements[i].mask_public_key, ctx.digest, i, j, f"participant {i}"
                )
                apply(total, pair_mask(seed, ctx.params.dimension), -pair_sign(i, j))
    for sender in sorted(records):
        for owner in records[sender].rejected:
            findings.append(
                SecAggFinding(
                    FindingKind.SHARE_REJECTED, owner, f"participant {sender} reports its share failed authentication", owner
                )
            )
    log.info(
        "secagg round %s unmasked: %d survivors, %d dropped, %d revealers, %d finding(s)",
        ctx.round_id,
        len(u2),
        len(dropped),
        len(records),
        len(findings),
    )
    return UnmaskResult(total, tuple(sorted(u2)), tuple(sorted(dropped)), tuple(sorted(records)), tuple(findings))


def _accept_inputs(
    ctx: RoundContext, u1: frozenset[int], masked_inputs: Iterable[MaskedInput], findings: list[SecAggFinding]
) -> dict[int, MaskedInput]:
    by_sender: dict[int, list[MaskedInput]] = {}
    for mi in masked_inputs:
        if mi.context != ctx.digest:
            findings.append(SecAggFinding(FindingKind.WRONG_CONTEXT, mi.sender, "masked input of another round or federation"))
        elif mi.sender not in u1:
            findings.append(
                SecAggFinding(FindingKind.NOT_ADVERTISED, mi.sender, "masked input without an accepted advertisement")
            )
        elif mi.values.dtype != np.uint32 or mi.values.shape != (ctx.params.dimension,):
            findings.append(SecAggFinding(FindingKind.MALFORMED, mi.sender, f"masked input of shape {mi.values.shape}"))
        else:
            group = by_sender.setdefault(mi.sender, [])
            if not any(np.array_equal(m.values, mi.values) for m in group):
                group.append(mi)
    accepted: dict[int, MaskedInput] = {}
    for sender in sorted(by_sender):
        if len(by_sender[sender]) > 1:
            findings.append(SecAggFinding(FindingKind.DUPLICATE, sender, f"{len(by_sender[sender])} different masked inputs"))
        else:
            accepted[sender] = by_sender[sender][0]
    return accepted


def _accept_unmasking(
    ctx: RoundContext, roster: Roster, u2: frozenset[int], unmasking: Iterable[UnmaskingShares], findings: list[SecAggFinding]
) -> dict[int, UnmaskingShares]:
    by_sender: dict[int, list[UnmaskingShares]] = {}
    for rec in unmasking:
        if rec.context != ctx.digest:
            findings.append(
                SecAggFinding(FindingKind.WRONG_CONTEXT, rec.sender, "unmasking shares of another round or federation")
            )
        elif rec.sender not in u2:
            findings.append(
                SecAggFinding(
                    FindingKind.NOT_ADVERTISED, rec.sender, "unmasking shares from a participant that committed no masked input"
                )
            )
        elif rec not in by_sender.setdefault(rec.sender, []):
            by_sender[rec.sender].append(rec)
    accepted: dict[int, UnmaskingShares] = {}
    for sender in sorted(by_sender):
        recs = by_sender[sender]
        kinds: dict[int, set[RevealKind]] = {}
        for rec in recs:
            for rv in rec.reveals:
                kinds.setdefault(rv.owner, set()).add(rv.kind)
        both = sorted(o for o, k in kinds.items() if len(k) > 1)
        if both:
            findings.append(
                SecAggFinding(FindingKind.DOUBLE_REVEAL, sender, f"revealed both the seed and the key share of {both}", both[0])
            )
            continue
        if len(recs) > 1:
            findings.append(SecAggFinding(FindingKind.DUPLICATE, sender, f"{len(recs)} different unmasking records"))
            continue
        rec = recs[0]
        finding = _check_reveals(ctx, roster, u2, rec)
        if finding is not None:
            findings.append(finding)
            continue
        accepted[sender] = rec
    return accepted


def _check_reveals(ctx: RoundContext, roster: Roster, u2: frozenset[int], rec: UnmaskingShares) -> SecAggFinding | None:
    holds = frozenset(ctx.graph.holders(rec.sender))
    for rv in rec.reveals:
        if rv.owner not in holds or rv.owner not in roster.advertisements:
            return SecAggFinding(
                FindingKind.MALFORMED, rec.sender, f"revealed a share of {rv.owner}, whose shares it does not hold"
            )
        if rv.kind is RevealKind.MASK_KEY and rv.owner in u2:
            return SecAggFinding(
                FindingKind.SURVIVOR_KEY_REVEALED, rec.sender, f"revealed the mask-key share of survivor {rv.owner}", rv.owner
            )
        if rv.kind is RevealKind.SELF_SEED and rv.owner not in u2:
            return SecAggFinding(FindingKind.MALFORMED, rec.sender, f"revealed a self-seed share of {rv.owner}, which dropped")
    return None


def _revealed(records: dict[int, UnmaskingShares], owner: int, kind: RevealKind) -> list[Share]:
    out = []
    for sender in sorted(records):
        for rv in records[sender].reveals:
            if rv.owner == owner and rv.kind is kind:
                out.append(Share(sender, rv.y))
    return out


def _reconstruct(
    ctx: RoundContext,
    owner: int,
    kind: RevealKind,
    shares: list[Share],
    expected: bytes,
    findings: list[SecAggFinding],
    suspects: set[int],
) -> bytes:
    """The secret that the shares reconstruct and that matches ``expected`` (the seed commitment, or the advertised
    mask public key); shares off its polynomial are findings naming their revealer, who joins ``suspects``.

    Tries t-subsets in order: the first t shares (``suspects`` last), then every subset of the first t + 1 that
    leaves out one, of the first t + 2 that leaves out two, ... (each t-subset once, at most MAX_SUBSET_TRIES)."""
    what = "self-mask seed" if kind is RevealKind.SELF_SEED else "mask key"

    def verify(secret: bytes) -> bool:
        if kind is RevealKind.SELF_SEED:
            return seed_commitment(ctx.digest, owner, secret) == expected
        return keys.public_key_of(secret) == expected

    t = ctx.params.threshold
    if len(shares) < t:
        raise BelowThresholdError(f"revealed shares of participant {owner}'s {what}", len(shares), t)
    ordered = sorted(shares, key=lambda s: (s.x in suspects, s.x))
    subsets = (
        [s for k, s in enumerate(ordered[: t + e]) if k not in omitted]
        for e in range(len(ordered) - t + 1)
        for omitted in itertools.combinations(range(t + e), e)
    )
    for base in itertools.islice(subsets, MAX_SUBSET_TRIES):
        try:
            secret = combine(base, t)
        except ShamirError:
            continue
        if not verify(secret):
            continue
        in_base = {s.x for s in base}
        for s in ordered:
            if s.x not in in_base and interpolate(base, s.x) != s.y:
                suspects.add(s.x)
                findings.append(
                    SecAggFinding(
                        FindingKind.INCONSISTENT_SHARE,
                        s.x,
                        f"its share of participant {owner}'s {what} is off the polynomial the commitment verifies",
                        owner,
                    )
                )
        return secret
    raise UnrecoverableSecretError(owner, what, len(shares), t)


def _need_holders(ctx: RoundContext, present: frozenset[int], owner: int, what: str) -> None:
    have = len(present & frozenset(ctx.graph.holders(owner)))
    if have < ctx.params.threshold:
        raise BelowThresholdError(what.format(i=owner), have, ctx.params.threshold)


def _share_aad(context: bytes, sender: int, recipient: int, mask_public: bytes, commitment: bytes) -> bytes:
    return (
        b"fedchain/secagg/v1/share"
        + context
        + sender.to_bytes(4, "big")
        + recipient.to_bytes(4, "big")
        + mask_public
        + commitment
    )

from __future__ import annotations

import dataclasses
import hashlib
import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fedchain.errors import (
    BelowThresholdError,
    DoubleRevealError,
    SecAggContextError,
    SecAggFormatError,
    SecAggKeyError,
    ShareAuthenticationError,
    UnrecoverableSecretError,
)
from fedchain.secagg import keys
from fedchain.secagg.context import Member, RoundContext
from fedchain.secagg.inprocess import run_round
from fedchain.secagg.messages import Advertisement, EncryptedShare, MaskedInput, RevealedShare, RevealKind, UnmaskingShares
from fedchain.secagg.protocol import (
    FindingKind,
    _share_aad,
    accept_advertisements,
    advertise,
    expect_context,
    mask_input,
    open_share,
    unmask,
    unmask_shares,
)
from fedchain.secagg.shamir import PRIME, split
from fedchain.types import Address
from tests.secagg.harness import CONTRACT, Federation, federation, other_context

LOW_ORDER = bytes.fromhex("e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800")


def _stages(fed: Federation, drop_after_advertising=(), drop_after_masking=()):
    ads, secrets = {}, {}
    for i in sorted(fed.updates):
        ads[i], secrets[i] = advertise(fed.ctx, i, fed.long_term[i], fed.rng.randbytes)
    roster = accept_advertisements(fed.ctx, ads.values())
    masked = {i: mask_input(fed.ctx, secrets[i], roster, fed.updates[i]) for i in sorted(ads) if i not in drop_after_advertising}
    records = {
        i: unmask_shares(fed.ctx, secrets[i], fed.long_term[i], roster, masked)
        for i in sorted(masked)
        if i not in drop_after_masking
    }
    return ads, secrets, roster, masked, records


# --- the masks cancel and the sum is exact -----------------------------------------------------------------
@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 9), data=st.data())
def test_masks_cancel_exactly(n: int, data: st.DataObject) -> None:
    fed = federation(n, 12, seed=data.draw(st.integers(0, 2**16)))
    t = fed.ctx.params.threshold
    order = data.draw(st.permutations(list(range(1, n + 1))))
    spare = n - t
    dropped = order[: data.draw(st.integers(0, spare))]
    split = data.draw(st.integers(0, len(dropped)))
    r = run_round(
        fed.ctx,
        fed.long_term,
        fed.updates,
        drop_after_advertising=dropped[:split],
        drop_after_masking=dropped[split:],
        rng=fed.rng.randbytes,
    )
    survivors = tuple(sorted(set(range(1, n + 1)) - set(dropped[:split])))
    assert r.result.survivors == survivors
    assert np.array_equal(r.result.total, fed.plain_sum(survivors))
    assert r.result.findings == ()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**16), data=st.data())
def test_masks_cancel_on_the_k_regular_graph(seed: int, data: st.DataObject) -> None:
    fed = federation(40, 10, degree=8, seed=seed)
    dropped = data.draw(st.lists(st.integers(1, 40), max_size=4, unique=True))
    r = run_round(fed.ctx, fed.long_term, fed.updates, drop_after_advertising=dropped, rng=fed.rng.randbytes)
    survivors = tuple(i for i in range(1, 41) if i not in dropped)
    assert np.array_equal(r.result.total, fed.plain_sum(survivors))


def test_dequantised_mean_equals_the_float_mean_within_the_stated_error() -> None:
    fed = federation(10, 500, seed=3)
    r = run_round(fed.ctx, fed.long_term, fed.updates, drop_after_masking=[2, 9], rng=fed.rng.randbytes)
    q = fed.ctx.params.quantiser
    mean = q.dequantise_mean(r.result.total, len(r.result.survivors))
    clipped = np.clip(np.stack([fed.floats[i].astype(np.float64) for i in r.result.survivors]), -1.0, 1.0)
    assert np.max(np.abs(mean - clipped.mean(axis=0))) <= q.mean_error_bound()
    assert np.max(np.abs(mean - clipped.mean(axis=0))) > 0  # quantisation is lossy, the bound is what is promised


def test_masked_inputs_hide_the_updates() -> None:
    fed = federation(4, 64)
    r = run_round(fed.ctx, fed.long_term, fed.updates, rng=fed.rng.randbytes)
    for mi in r.masked_inputs:
        assert np.count_nonzero(mi.values == fed.updates[mi.sender]) < 4


# --- dropouts at every stage, up to n - t; refusal below t ----------------------------------------------------
@pytest.mark.parametrize("stage", ["before_advertising", "after_advertising", "after_masking"])
def test_recovery_with_n_minus_t_dropouts(stage: str) -> None:
    fed = federation(7, 8)
    dropped = list(range(1, 7 - fed.ctx.params.threshold + 1))
    r = run_round(fed.ctx, fed.long_term, fed.updates, rng=fed.rng.randbytes, **{f"drop_{stage}": dropped})
    survivors = tuple(sorted(set(range(1, 8)) - (set() if stage == "after_masking" else set(dropped))))
    assert np.array_equal(r.result.total, fed.plain_sum(survivors))


@pytest.mark.parametrize(
    ("stage", "what"),
    [
        ("before_advertising", "share holders that advertised"),
        ("after_advertising", "survivors of round 1"),
        ("after_masking", "revealed shares of participant"),
    ],
)
def test_refusal_below_threshold(stage: str, what: str) -> None:
    fed = federation(7, 8)
    dropped = list(range(1, 7 - fed.ctx.params.threshold + 2))
    with pytest.raises(BelowThresholdError, match=what) as info:
        run_round(fed.ctx, fed.long_term, fed.updates, rng=fed.rng.randbytes, **{f"drop_{stage}": dropped})
    assert info.value.have == fed.ctx.params.threshold - 1


# --- shares that fail authentication ------------------------------------------------------------------------
def _replace_share(ad: Advertisement, recipient: int, **changes: bytes) -> Advertisement:
    shares = tuple(dataclasses.replace(s, **changes) if s.recipient == recipient else s for s in ad.shares)
    return dataclasses.replace(ad, shares=shares)


def test_tampered_share_fails_authentication() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, _ = _stages(fed)
    enc = ads[2].share_for(4)
    assert enc is not None
    bad = _replace_share(ads[2], 4, ciphertext=bytes([enc.ciphertext[0] ^ 1]) + enc.ciphertext[1:])
    roster = accept_advertisements(fed.ctx, [bad if i == 2 else a for i, a in ads.items()])
    with pytest.raises(ShareAuthenticationError, match="from participant 2 to participant 4") as info:
        open_share(fed.ctx, roster, 2, 4, fed.long_term[4])
    assert (info.value.sender, info.value.recipient) == (2, 4)


def test_round_continues_when_a_share_fails_authentication() -> None:
    fed = federation(5)
    ads, secrets, _, _, _ = _stages(fed)
    enc = ads[2].share_for(4)
    assert enc is not None
    ads[2] = _replace_share(ads[2], 4, nonce=bytes(12))
    roster = accept_advertisements(fed.ctx, ads.values())
    masked = {i: mask_input(fed.ctx, secrets[i], roster, fed.updates[i]) for i in ads}
    records = [unmask_shares(fed.ctx, secrets[i], fed.long_term[i], roster, masked) for i in ads]
    assert records[3].rejected == (2,)
    result = unmask(fed.ctx, ads.values(), masked.values(), records)
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4, 5)))
    assert [(f.kind, f.offender) for f in result.findings] == [(FindingKind.SHARE_REJECTED, 2)]


@pytest.mark.parametrize(
    ("round_id", "contract", "chain_id"),
    [(2, CONTRACT, 31337), (1, Address("0x" + "cd" * 20), 31337), (1, CONTRACT, 1)],
    ids=["another_round", "another_contract", "another_chain"],
)
def test_share_of_another_round_or_federation_fails_authentication(round_id: int, contract: Address, chain_id: int) -> None:
    fed = federation(5)
    ads, *_ = _stages(fed)
    other = other_context(fed, round_id=round_id, contract=contract, chain_id=chain_id)
    ad2, _ = advertise(other, 2, fed.long_term[2], fed.rng.randbytes)
    spliced = dataclasses.replace(ad2, context=fed.ctx.digest)  # the other round's shares under this round's header
    roster = accept_advertisements(fed.ctx, [spliced if i == 2 else a for i, a in ads.items()])
    with pytest.raises(ShareAuthenticationError, match="from participant 2 to participant 3"):
        open_share(fed.ctx, roster, 2, 3, fed.long_term[3])


def test_share_opened_by_another_recipient_fails_authentication() -> None:
    fed = federation(5)
    ads, *_ = _stages(fed)
    enc = ads[2].share_for(3)
    assert enc is not None
    moved = _replace_share(ads[2], 4, nonce=enc.nonce, ciphertext=enc.ciphertext)  # 3's share filed for 4
    roster = accept_advertisements(fed.ctx, [moved if i == 2 else a for i, a in ads.items()])
    with pytest.raises(ShareAuthenticationError):
        open_share(fed.ctx, roster, 2, 4, fed.long_term[4])


def test_record_of_another_round_is_refused() -> None:
    fed = federation(5)
    ads, *_ = _stages(fed)
    other = other_context(fed, round_id=2)
    ad2, _ = advertise(other, 2, fed.long_term[2], fed.rng.randbytes)
    with pytest.raises(SecAggContextError, match="Advertisement from participant 2 belongs to another round"):
        expect_context(fed.ctx, ad2)
    roster = accept_advertisements(fed.ctx, [ad2 if i == 2 else a for i, a in ads.items()])
    assert 2 not in roster.indices
    assert [(f.kind, f.offender) for f in roster.findings] == [(FindingKind.WRONG_CONTEXT, 2)]


# --- keys not on the curve ----------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [LOW_ORDER, bytes(32)])
def test_low_order_mask_key_excludes_the_participant(bad: bytes) -> None:
    fed = federation(6)
    ads, secrets, *_ = _stages(fed)
    ads[3] = dataclasses.replace(ads[3], mask_public_key=bad)
    roster = accept_advertisements(fed.ctx, ads.values())
    assert [(f.kind, f.offender) for f in roster.findings] == [(FindingKind.BAD_KEY, 3)]
    masked = {i: mask_input(fed.ctx, secrets[i], roster, fed.updates[i]) for i in roster.indices}
    records = [unmask_shares(fed.ctx, secrets[i], fed.long_term[i], roster, masked) for i in masked]
    result = unmask(fed.ctx, ads.values(), masked.values(), records)
    assert result.survivors == (1, 2, 4, 5, 6)
    assert np.array_equal(result.total, fed.plain_sum(result.survivors))


def test_mask_key_of_wrong_length_cannot_be_encoded() -> None:
    fed = federation(3)
    ads, *_ = _stages(fed)
    with pytest.raises(SecAggFormatError, match="mask public key is 32 bytes, got 31"):
        dataclasses.replace(ads[1], mask_public_key=b"\x09" * 31).to_bytes()


@pytest.mark.parametrize(("key", "reason"), [(LOW_ORDER, "low-order"), (b"\x05" * 33, "33 bytes")])
def test_registered_key_not_on_the_curve_refused(key: bytes, reason: str) -> None:
    with pytest.raises(SecAggKeyError, match=reason):
        Member(1, Address("0x" + "01" * 20), key)


def test_advertising_with_a_key_that_is_not_the_registered_one_refused() -> None:
    fed = federation(3)
    with pytest.raises(SecAggKeyError, match="does not match the registered key"):
        advertise(fed.ctx, 1, fed.long_term[2])


# --- a survivor who would reveal both secrets of a peer ---------------------------------------------------------
def test_survivor_refuses_to_reveal_the_key_of_a_peer_whose_seed_it_revealed() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    # a lying aggregator now claims 4 dropped, asking 1 for 4's mask-key share after 1 revealed 4's seed share
    with pytest.raises(DoubleRevealError, match="participant 1 refuses .* participant\\(s\\) 4") as info:
        unmask_shares(fed.ctx, secrets[1], fed.long_term[1], roster, [1, 2, 3, 5], published=[records[1]])
    assert info.value.owners == (4,)


def test_survivor_refuses_to_act_when_counted_as_dropped() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    with pytest.raises(DoubleRevealError):
        unmask_shares(fed.ctx, secrets[1], fed.long_term[1], roster, [2, 3, 4, 5])


def test_record_revealing_both_secrets_of_a_peer_is_a_finding() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    key_share, _ = open_share(fed.ctx, roster, 4, 1, fed.long_term[1])
    reveals = sorted((*records[1].reveals, RevealedShare(4, RevealKind.MASK_KEY, key_share.y)), key=lambda r: (r.owner, r.kind))
    records[1] = dataclasses.replace(records[1], reveals=tuple(reveals))
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert [(f.kind, f.offender, f.owner) for f in result.findings] == [(FindingKind.DOUBLE_REVEAL, 1, 4)]
    assert result.revealers == (2, 3, 4, 5)
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4, 5)))


def test_record_revealing_a_survivors_key_share_is_a_finding() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    key_share, _ = open_share(fed.ctx, roster, 3, 2, fed.long_term[2])
    reveals = [r if r.owner != 3 else RevealedShare(3, RevealKind.MASK_KEY, key_share.y) for r in records[2].reveals]
    records[2] = dataclasses.replace(records[2], reveals=tuple(reveals))
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert [(f.kind, f.offender, f.owner) for f in result.findings] == [(FindingKind.SURVIVOR_KEY_REVEALED, 2, 3)]
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4, 5)))


# --- a lying survivor --------------------------------------------------------------------------------------
def _lie(record: UnmaskingShares, owner: int) -> UnmaskingShares:
    reveals = tuple(dataclasses.replace(r, y=(r.y + 1) % PRIME) if r.owner == owner else r for r in record.reveals)
    return dataclasses.replace(record, reveals=reveals)


@pytest.mark.parametrize("liar", [1, 5])  # 1 is in the first t shares tried, 5 is an extra one
def test_lying_survivor_is_detected_and_named(liar: int) -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    records[liar] = _lie(records[liar], owner=2)
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert [(f.kind, f.offender, f.owner) for f in result.findings] == [(FindingKind.INCONSISTENT_SHARE, liar, 2)]
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4, 5)))


def test_lying_survivor_about_a_dropped_key_is_detected() -> None:
    fed = federation(6)
    ads, secrets, roster, masked, records = _stages(fed, drop_after_advertising=[6])
    records[2] = _lie(records[2], owner=6)
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert [(f.kind, f.offender, f.owner) for f in result.findings] == [(FindingKind.INCONSISTENT_SHARE, 2, 6)]
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4, 5)))


def test_lying_survivor_with_only_t_shares_is_a_refusal() -> None:
    fed = federation(5)  # t = 3
    ads, secrets, roster, masked, records = _stages(fed, drop_after_masking=[4, 5])
    records[1] = _lie(records[1], owner=2)
    with pytest.raises(UnrecoverableSecretError, match="no 3 of the 3 revealed shares of participant 2's self-mask seed") as info:
        unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert info.value.owner == 2


# --- the auditor re-derives the sum from the published bytes ----------------------------------------------------
def test_auditor_rederives_the_sum_from_the_bytes() -> None:
    fed = federation(8, 32, seed=5)
    r = run_round(fed.ctx, fed.long_term, fed.updates, drop_after_advertising=[3], drop_after_masking=[6], rng=fed.rng.randbytes)
    blobs = (
        [a.to_bytes() for a in r.advertisements],
        [m.to_bytes() for m in r.masked_inputs],
        [u.to_bytes() for u in r.unmasking],
    )
    again = unmask(
        fed.ctx,
        [Advertisement.from_bytes(b) for b in blobs[0]],
        [MaskedInput.from_bytes(b) for b in blobs[1]],
        [UnmaskingShares.from_bytes(b) for b in blobs[2]],
    )
    assert again.digest() == r.result.digest()
    assert np.array_equal(again.total, fed.plain_sum(again.survivors))


def test_a_tampered_masked_input_changes_the_sum() -> None:
    fed = federation(4)
    ads, secrets, roster, masked, records = _stages(fed)
    values = masked[2].values.copy()
    values[0] += np.uint32(1)
    masked[2] = MaskedInput(masked[2].context, 2, values)
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert not np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4)))


def test_duplicate_masked_inputs_drop_the_sender() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    other = MaskedInput(masked[3].context, 3, masked[3].values + np.uint32(1))
    survivors = [1, 2, 4, 5]
    records = {i: unmask_shares(fed.ctx, secrets[i], fed.long_term[i], roster, survivors) for i in survivors}
    result = unmask(fed.ctx, ads.values(), [*masked.values(), other], records.values())
    assert [(f.kind, f.offender) for f in result.findings] == [(FindingKind.DUPLICATE, 3)]
    assert result.dropped == (3,)
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 4, 5)))


def test_threshold_must_be_a_strict_majority() -> None:
    fed = federation(6)
    with pytest.raises(SecAggFormatError, match="strict majority"):
        RoundContext(1, fed.ctx.contract, fed.ctx.round_id, fed.ctx.members, dataclasses.replace(fed.ctx.params, threshold=3))


def test_update_of_wrong_dimension_refused() -> None:
    fed = federation(3, 8)
    ad, secret = advertise(fed.ctx, 1, fed.long_term[1], random.Random(0).randbytes)
    roster = accept_advertisements(fed.ctx, [ad])
    with pytest.raises(SecAggFormatError, match="shape \\(8,\\)"):
        mask_input(fed.ctx, secret, roster, np.zeros(7, np.uint32))


def test_unmasking_fewer_than_t_masked_inputs_refused() -> None:
    fed = federation(5)  # t = 3
    ads, secrets, roster, masked, records = _stages(fed)
    with pytest.raises(BelowThresholdError, match="masked inputs of round 1: 2 available, the threshold is 3"):
        unmask(fed.ctx, ads.values(), [masked[1], masked[2]], records.values())


def test_bad_dealing_is_refused_naming_the_dealer() -> None:
    fed = federation(5)
    ads, secrets, roster, masked, records = _stages(fed)
    # participant 3 commits to one self-mask seed and shares another, each share properly encrypted
    dealt = split(b"\x42" * 32, fed.ctx.params.threshold, fed.ctx.graph.holders(3), fed.rng.randbytes)
    key_shares = [open_share(fed.ctx, roster, 3, h, fed.long_term[h])[0] for h in fed.ctx.graph.holders(3)]
    shares = []
    for ks, ss in zip(key_shares, dealt, strict=True):
        key = keys.share_key(fed.long_term[3], fed.ctx.member(ss.x).public_key, fed.ctx.digest, 3, ss.x, ss.x)
        aad = _share_aad(fed.ctx.digest, 3, ss.x, ads[3].mask_public_key, ads[3].seed_commitment)
        shares.append(EncryptedShare(ss.x, b"\x00" * 12, keys.seal(key, b"\x00" * 12, ks.y_bytes() + ss.y_bytes(), aad)))
    ads[3] = dataclasses.replace(ads[3], shares=tuple(shares))
    roster = accept_advertisements(fed.ctx, ads.values())
    records = {i: unmask_shares(fed.ctx, secrets[i], fed.long_term[i], roster, masked) for i in masked}
    with pytest.raises(UnrecoverableSecretError, match="participant 3 dealt bad shares") as info:
        unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert (info.value.owner, info.value.shares) == (3, 5)


@settings(max_examples=15, deadline=None)
@given(n=st.integers(4, 9), data=st.data())
def test_any_single_lying_survivor_is_named(n: int, data: st.DataObject) -> None:
    fed = federation(n, 6, seed=data.draw(st.integers(0, 2**16)))
    t = fed.ctx.params.threshold
    drop = data.draw(st.lists(st.integers(1, n), max_size=n - t - 1, unique=True))  # keep more than t revealers
    ads, secrets, roster, masked, records = _stages(fed, drop_after_masking=drop)
    liar = data.draw(st.sampled_from(sorted(records)))
    owner = data.draw(st.sampled_from([r.owner for r in records[liar].reveals]))
    records[liar] = _lie(records[liar], owner)
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert [(f.kind, f.offender, f.owner) for f in result.findings] == [(FindingKind.INCONSISTENT_SHARE, liar, owner)]
    assert np.array_equal(result.total, fed.plain_sum(tuple(range(1, n + 1))))


def test_a_liar_about_every_owner_is_named_for_each() -> None:
    fed = federation(7, 6)
    ads, secrets, roster, masked, records = _stages(fed)
    for owner in range(1, 8):
        records[1] = _lie(records[1], owner)
    result = unmask(fed.ctx, ads.values(), masked.values(), records.values())
    assert {(f.kind, f.offender) for f in result.findings} == {(FindingKind.INCONSISTENT_SHARE, 1)}
    assert sorted(f.owner for f in result.findings) == list(range(1, 8))
    assert np.array_equal(result.total, fed.plain_sum(tuple(range(1, 8))))


# --- the SecAgg+ graph: the threshold is per share set --------------------------------------------------------
@pytest.mark.parametrize("stage", ["after_advertising", "after_masking"])
def test_k_regular_recovers_while_each_share_set_keeps_t(stage: str) -> None:
    fed = federation(30, 8, degree=6)  # share sets of 7, t = 4
    victim = 10
    dropped = list(fed.ctx.graph.of(victim)[:3])
    r = run_round(fed.ctx, fed.long_term, fed.updates, rng=fed.rng.randbytes, **{f"drop_{stage}": dropped})
    assert np.array_equal(r.result.total, fed.plain_sum(r.result.survivors))
    assert len(r.result.survivors) == (27 if stage == "after_advertising" else 30)


def test_k_regular_refuses_when_one_share_set_falls_below_t() -> None:
    fed = federation(30, 8, degree=6)
    victim = 10
    dropped = list(fed.ctx.graph.of(victim)[:4])
    short = [i for i in range(1, 31) if len(set(fed.ctx.graph.holders(i)) - set(dropped)) < 4]
    assert victim in short  # the first of them (in index order) is the one named
    with pytest.raises(BelowThresholdError, match=f"revealed shares of participant {short[0]}'s self-mask seed: 3 available"):
        run_round(fed.ctx, fed.long_term, fed.updates, rng=fed.rng.randbytes, drop_after_masking=dropped)


# --- the encoding is stable: auditors of later versions must get the same digests ------------------------------------
def test_context_digest_by_hand() -> None:
    fed = federation(4, 8, seed=11)
    by_hand = hashlib.sha256(
        b"fedchain/secagg/v1/context" + (31337).to_bytes(8, "big") + bytes.fromhex("ab" * 20) + (1).to_bytes(8, "big")
    ).digest()
    assert fed.ctx.digest == by_hand


def test_golden_round_digests() -> None:
    fed = federation(4, 8, seed=11)
    r = run_round(fed.ctx, fed.long_term, fed.updates, drop_after_advertising=[2], rng=random.Random(99).randbytes)
    h = hashlib.sha256()
    for group in (r.advertisements, r.masked_inputs, r.unmasking):
        for rec in group:
            h.update(rec.digest())
    assert h.hexdigest() == "ad92a36e24782d351ee58d92f47724e074f6c77bf8ab9605d47edd3105f43a7d"
    assert r.result.digest().hex() == "d3a2595b058ccd3ac9844444fe609f7b1a1fde91e72d82bc378ad108182a1b2b"


def test_a_committer_whose_advertisement_no_one_accepted_cannot_stall_the_round() -> None:
    # participant 5 posts an advertisement every party refuses (its shares go to the wrong holders), then commits a
    # masked input anyway: the chain lists it among the committers, yet the survivors and the unmasking leave it out
    fed = federation(5)
    ads, secrets = {}, {}
    for i in sorted(fed.updates):
        ads[i], secrets[i] = advertise(fed.ctx, i, fed.long_term[i], fed.rng.randbytes)
    ads[5] = dataclasses.replace(ads[5], shares=ads[5].shares[:-1])
    roster = accept_advertisements(fed.ctx, ads.values())
    assert 5 not in roster.indices
    masked = {i: mask_input(fed.ctx, secrets[i], roster, fed.updates[i]) for i in (1, 2, 3, 4)}
    masked[5] = MaskedInput(fed.ctx.digest, 5, fed.updates[5])
    committed = sorted(masked)
    records = [unmask_shares(fed.ctx, secrets[i], fed.long_term[i], roster, committed) for i in (1, 2, 3, 4)]
    assert all(rv.owner != 5 for r in records for rv in r.reveals)
    result = unmask(fed.ctx, ads.values(), masked.values(), records, committed)
    assert result.survivors == (1, 2, 3, 4)
    assert np.array_equal(result.total, fed.plain_sum((1, 2, 3, 4)))
    assert {(f.kind, f.offender) for f in result.findings} >= {(FindingKind.MALFORMED, 5), (FindingKind.NOT_ADVERTISED, 5)}

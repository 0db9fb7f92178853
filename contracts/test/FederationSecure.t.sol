// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Federation} from "../Federation.sol";
import {IFederation} from "../IFederation.sol";
import {FederationFixture} from "./Federation.t.sol";

/// @notice Secure-aggregation rounds: the advertise, commit and unmask phases, their early ends, every refusal, and
/// their combination with private rounds and with the plain and commit-reveal rounds.
contract FederationSecureTest is FederationFixture {
    uint64 internal constant ADVERTISE = 300;
    uint64 internal constant UNMASK = 400;
    bytes32 internal constant AD = keccak256("advertisement");
    bytes32 internal constant SHARES = keccak256("shares");
    bytes32 internal constant POLICY = keccak256("privacy policy");
    bytes32 internal constant ACCOUNTANT = keccak256("accountant inputs");

    function _openSecure() internal returns (uint256 roundId) {
        bytes32 current = fed.currentModelDigest();
        vm.prank(aggregator);
        roundId = fed.openSecureRound(current == bytes32(0) ? BASE : current, "bafybase", ADVERTISE, DURATION, 1, UNMASK);
    }

    function _advertise(address who, uint256 roundId) internal {
        vm.prank(who);
        fed.postAdvertisement(roundId, AD, "bafyad");
    }

    function _unmask(address who, uint256 roundId) internal {
        vm.prank(who);
        fed.postUnmaskingShares(roundId, SHARES, "bafyshares");
    }

    function _secureErr(bytes4 selector, uint256 roundId, address who) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, roundId, who);
    }

    function _deadlineErr(bytes4 selector, uint256 roundId, uint64 deadline) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, roundId, deadline);
    }

    // ------------------------------------------------------------ opening

    function test_openSecureRoundStoresPhasesAndEmits() public {
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundOpened(1, aggregator, BASE, "bafybase", uint64(START + ADVERTISE + DURATION), 2, 1, 0);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.SecureRoundOpened(
            1,
            aggregator,
            uint64(START + ADVERTISE),
            uint64(START + ADVERTISE + DURATION),
            uint64(START + ADVERTISE + DURATION + UNMASK)
        );
        vm.prank(aggregator);
        uint256 roundId = fed.openSecureRound(BASE, "bafybase", ADVERTISE, DURATION, 2, UNMASK);
        Federation.RoundInfo memory r = fed.getRound(roundId);
        _true(r.secureRound, "secureRound");
        _true(!r.commitReveal, "never commit-reveal");
        _true(!r.privateRound, "not private without a budget");
        _eq(r.advertiseDeadline, START + ADVERTISE, "advertiseDeadline");
        _eq(r.deadline, START + ADVERTISE + DURATION, "deadline");
        _eq(r.unmaskDeadline, START + ADVERTISE + DURATION + UNMASK, "unmaskDeadline");
        _eq(r.revealDeadline, 0, "no reveal deadline");
        _eq(r.eligibleCount, 3, "eligibleCount");
        _true(!fed.advertisePhaseOver(roundId), "advertise phase on");
        _true(!fed.commitPhaseOver(roundId), "commit phase not over");
        _true(!fed.revealPhaseOver(roundId), "cannot end");
    }

    function test_openSecureRoundRejectsInvalidDurations() public {
        vm.startPrank(aggregator);
        _expectRevert(_invalidRound("advertiseDuration", 0));
        fed.openSecureRound(BASE, "bafybase", 0, DURATION, 1, UNMASK);
        _expectRevert(_invalidRound("commitDuration", 0));
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, 0, 1, UNMASK);
        _expectRevert(_invalidRound("unmaskDuration", 0));
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, DURATION, 1, 0);
        bytes4 tooLong = IFederation.FederationCommitWindowTooLong.selector;
        _expectRevert(abi.encodeWithSelector(tooLong, MAX_WINDOW + 1, MAX_WINDOW));
        fed.openSecureRound(BASE, "bafybase", MAX_WINDOW + 1, DURATION, 1, UNMASK);
        _expectRevert(abi.encodeWithSelector(tooLong, MAX_WINDOW + 1, MAX_WINDOW));
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, MAX_WINDOW + 1, 1, UNMASK);
        _expectRevert(abi.encodeWithSelector(tooLong, MAX_WINDOW + 1, MAX_WINDOW));
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, DURATION, 1, MAX_WINDOW + 1);
        _expectRevert(_invalidRound("minUpdates", 0));
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, DURATION, 0, UNMASK);
        _expectRevert(_invalidRound("baseModelDigest", 0));
        fed.openSecureRound(bytes32(0), "bafybase", ADVERTISE, DURATION, 1, UNMASK);
        vm.stopPrank();
        _eq(fed.latestRoundId(), 0, "no round opened");
    }

    /// The commit deadline is a uint48 (room for the signed-round flag in the round's first slot), the unmask
    /// deadline a uint64.
    function test_openSecureRoundRejectsDeadlinesPastTheirWidth() public {
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig", type(uint64).max);
        uint64 long = uint64(type(uint48).max - START - 1);
        vm.startPrank(aggregator);
        _expectRevert(_invalidRound("commitDuration", long));
        fed.openSecureRound(BASE, "bafybase", 2, long, 1, UNMASK);
        _expectRevert(_invalidRound("unmaskDuration", type(uint64).max - type(uint48).max + 1));
        fed.openSecureRound(BASE, "bafybase", 1, long, 1, type(uint64).max - type(uint48).max + 1);
        vm.stopPrank();
    }

    function test_openSecureRoundIsAggregatorOnlyAndWaitsForTheOpenRound() public {
        _expectRevert(_unauthorised(outsider, fed.AGGREGATOR_ROLE()));
        vm.prank(outsider);
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, DURATION, 1, UNMASK);
        uint256 roundId = _openSecure();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, roundId));
        vm.prank(aggregator);
        fed.openSecureRound(BASE, "bafybase", ADVERTISE, DURATION, 1, UNMASK);
    }

    // ------------------------------------------------------------ advertise

    function test_advertiseRecordsAndEmits() public {
        uint256 roundId = _openSecure();
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.AdvertisementPosted(roundId, alice, AD, "bafyad");
        _advertise(alice, roundId);
        (bool advertised, bool unmasked) = fed.secureParticipation(roundId, alice);
        _true(advertised && !unmasked, "alice advertised");
        (advertised,) = fed.secureParticipation(roundId, bob);
        _true(!advertised, "bob did not");
        _eq(fed.getRound(roundId).advertisementCount, 1, "advertisementCount");
    }

    function test_advertiseRefusals() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _expectRevert(_secureErr(IFederation.FederationDuplicateAdvertisement.selector, roundId, alice));
        _advertise(alice, roundId);
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "digest"));
        vm.prank(bob);
        fed.postAdvertisement(roundId, bytes32(0), "bafyad");
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "cid"));
        vm.prank(bob);
        fed.postAdvertisement(roundId, AD, "");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, outsider));
        _advertise(outsider, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, roundId + 1));
        _advertise(bob, roundId + 1);
        vm.warp(START + ADVERTISE + 1);
        _expectRevert(_deadlineErr(IFederation.FederationAdvertiseTooLate.selector, roundId, uint64(START + ADVERTISE)));
        _advertise(bob, roundId);
    }

    function test_advertiseAtTheDeadlineIsAccepted() public {
        uint256 roundId = _openSecure();
        vm.warp(START + ADVERTISE);
        _advertise(alice, roundId);
        _eq(fed.getRound(roundId).advertisementCount, 1, "accepted at the deadline");
    }

    function test_advertiseAndSharesRefusedOutsideSecureRounds() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotSecureRound.selector, roundId));
        _advertise(alice, roundId);
        _commit(alice, roundId);
        vm.warp(START + DURATION + 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotSecureRound.selector, roundId));
        _unmask(alice, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotSecureRound.selector, roundId));
        fed.advertisePhaseOver(roundId);
    }

    // ------------------------------------------------------------ masked inputs

    function test_commitRefusedDuringTheAdvertisePhase() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _expectRevert(
            _deadlineErr(IFederation.FederationAdvertisePhaseActive.selector, roundId, uint64(START + ADVERTISE))
        );
        _commit(alice, roundId);
    }

    function test_commitRefusedWithoutAdvertisement() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        vm.warp(START + ADVERTISE + 1);
        _expectRevert(_secureErr(IFederation.FederationNotAdvertised.selector, roundId, bob));
        _commit(bob, roundId);
        _commit(alice, roundId);
        _eq(fed.getRound(roundId).commitCount, 1, "alice's masked input");
    }

    function test_advertisePhaseEndsEarlyWhenEveryoneAdvertised() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        _true(!fed.advertisePhaseOver(roundId), "carol has not advertised");
        _advertise(carol, roundId);
        _true(fed.advertisePhaseOver(roundId), "everyone advertised");
        _commit(alice, roundId); // before the advertise deadline
        _eq(fed.getRound(roundId).commitCount, 1, "committed early");
    }

    function test_commitPhaseEndsEarlyWhenEveryAdvertiserCommitted() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        _true(!fed.commitPhaseOver(roundId), "bob has not committed");
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, fed.getRound(roundId).deadline));
        _unmask(alice, roundId);
        _commit(bob, roundId);
        _true(fed.commitPhaseOver(roundId), "every advertiser committed");
        _unmask(alice, roundId);
        _eq(fed.getRound(roundId).unmaskingCount, 1, "shares before the commit deadline");
    }

    function test_commitAfterTheCommitDeadlineRefused() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        uint64 deadline = uint64(START + ADVERTISE + DURATION);
        vm.warp(deadline + 1);
        _expectRevert(_deadlineErr(IFederation.FederationCommitTooLate.selector, roundId, deadline));
        _commit(alice, roundId);
    }

    function test_nobodyAdvertisedEndsTheCommitPhase() public {
        uint256 roundId = _openSecure();
        vm.warp(START + ADVERTISE + 1);
        _true(fed.commitPhaseOver(roundId), "no advertiser: nothing to wait for");
        _true(fed.revealPhaseOver(roundId), "no committer: nothing to unmask");
        vm.prank(aggregator);
        fed.closeRound(roundId, "nobody advertised");
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Closed), "closed");
    }

    // ------------------------------------------------------------ unmasking shares

    function test_unmaskRecordsAndEmits() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UnmaskingSharesPosted(roundId, alice, SHARES, "bafyshares");
        _unmask(alice, roundId);
        (bool advertised, bool unmasked) = fed.secureParticipation(roundId, alice);
        _true(advertised && unmasked, "alice unmasked");
        _eq(fed.getRound(roundId).unmaskingCount, 1, "unmaskingCount");
    }

    function test_unmaskRefusals() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        uint64 deadline = uint64(START + ADVERTISE + DURATION);
        vm.warp(deadline + 1);
        _expectRevert(_secureErr(IFederation.FederationNotCommitted.selector, roundId, bob));
        _unmask(bob, roundId);
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "digest"));
        vm.prank(alice);
        fed.postUnmaskingShares(roundId, bytes32(0), "bafyshares");
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "cid"));
        vm.prank(alice);
        fed.postUnmaskingShares(roundId, SHARES, "");
        _unmask(alice, roundId);
        _expectRevert(_secureErr(IFederation.FederationDuplicateUnmaskingShares.selector, roundId, alice));
        _unmask(alice, roundId);
    }

    function test_unmaskAfterTheUnmaskDeadlineRefused() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        _commit(bob, roundId);
        uint64 unmaskDeadline = uint64(START + ADVERTISE + DURATION + UNMASK);
        vm.warp(unmaskDeadline);
        _unmask(alice, roundId); // inclusive
        vm.warp(unmaskDeadline + 1);
        _expectRevert(_deadlineErr(IFederation.FederationUnmaskTooLate.selector, roundId, unmaskDeadline));
        _unmask(bob, roundId);
    }

    function test_removedCommitterCannotPostShares() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        _commit(bob, roundId);
        vm.prank(admin);
        fed.remove(bob, "misbehaved");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationNotActive.selector, bob, IFederation.ParticipantStatus.Removed)
        );
        _unmask(bob, roundId);
    }

    // ------------------------------------------------------------ ending the round

    function test_roundEndsOnlyAfterTheUnmaskPhase() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        _commit(bob, roundId);
        uint64 unmaskDeadline = uint64(START + ADVERTISE + DURATION + UNMASK);
        bytes memory active = _deadlineErr(IFederation.FederationUnmaskPhaseActive.selector, roundId, unmaskDeadline);
        _expectRevert(active);
        _finalize(roundId, keccak256("model"), 2);
        _unmask(alice, roundId);
        _expectRevert(active);
        vm.prank(aggregator);
        fed.closeRound(roundId, "too early");
        _true(!fed.revealPhaseOver(roundId), "bob's shares missing");
        _unmask(bob, roundId);
        _true(fed.revealPhaseOver(roundId), "every committer posted its shares");
        _finalize(roundId, keccak256("model"), 2);
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Finalized), "finalised");
    }

    function test_roundEndsAtTheUnmaskDeadlineWithMissingShares() public {
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        _commit(bob, roundId);
        _unmask(alice, roundId);
        uint64 unmaskDeadline = uint64(START + ADVERTISE + DURATION + UNMASK);
        vm.warp(unmaskDeadline);
        _expectRevert(_deadlineErr(IFederation.FederationUnmaskPhaseActive.selector, roundId, unmaskDeadline));
        vm.prank(aggregator);
        fed.closeRound(roundId, "too early");
        vm.warp(unmaskDeadline + 1);
        vm.prank(aggregator);
        fed.closeRound(roundId, "bob dropped out");
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Closed), "closed");
        _true(fed.advertisePhaseOver(roundId), "over once closed");
    }

    // ------------------------------------------------------------ other rounds

    function test_plainAndCommitRevealRoundsUnchanged() public {
        uint256 roundId = _open();
        _commit(alice, roundId); // no advertisement needed
        _true(!fed.getRound(roundId).secureRound, "not secure");
        vm.warp(START + DURATION + 1);
        _finalize(roundId, keccak256("model"), 1);
        vm.prank(aggregator);
        uint256 crRound = fed.openRound(keccak256("model"), "bafymodel", DURATION, 1, DURATION);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationCommitRevealRound.selector, crRound));
        _commit(alice, crRound);
    }

    function test_securePrivateRoundTakesPrivateMaskedInputs() public {
        vm.prank(admin);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "bafyprivate", MAX_WINDOW, POLICY, 3_000_000);
        uint256 roundId = _openSecure();
        _true(fed.getRound(roundId).privateRound, "secure and private");
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        bytes32 digest = keccak256("masked");
        _expectRevert(
            _deadlineErr(IFederation.FederationAdvertisePhaseActive.selector, roundId, uint64(START + ADVERTISE))
        );
        vm.prank(alice);
        fed.commitPrivateUpdate(roundId, digest, CID, 100, META, 1_000_000, ACCOUNTANT);
        vm.warp(START + ADVERTISE + 1);
        _expectRevert(_secureErr(IFederation.FederationNotAdvertised.selector, roundId, carol));
        vm.prank(carol);
        fed.commitPrivateUpdate(roundId, digest, CID, 100, META, 1_000_000, ACCOUNTANT);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationPrivacyClaimRequired.selector, roundId));
        _commit(alice, roundId);
        vm.prank(alice);
        fed.commitPrivateUpdate(roundId, digest, CID, 100, META, 1_000_000, ACCOUNTANT);
        _eq(fed.epsilonSpent(alice), 1_000_000, "epsilon recorded");
        _eq(fed.getRound(roundId).commitCount, 1, "one masked input");
    }

    /// @dev Whatever the order of advertisements and commits, the counts never exceed what precedes them.
    function testFuzz_countsStayOrdered(uint8 advertisers, uint8 committers, uint8 unmaskers) public {
        address[3] memory who = [alice, bob, carol];
        uint256 a = _bound(advertisers, 0, 3);
        uint256 c = _bound(committers, 0, a);
        uint256 u = _bound(unmaskers, 0, c);
        uint256 roundId = _openSecure();
        for (uint256 i = 0; i < a; ++i) _advertise(who[i], roundId);
        vm.warp(START + ADVERTISE + 1);
        for (uint256 i = 0; i < c; ++i) _commit(who[i], roundId);
        vm.warp(START + ADVERTISE + DURATION + 1);
        for (uint256 i = 0; i < u; ++i) _unmask(who[i], roundId);
        Federation.RoundInfo memory r = fed.getRound(roundId);
        _eq(r.advertisementCount, a, "advertisementCount");
        _eq(r.commitCount, c, "commitCount");
        _eq(r.unmaskingCount, u, "unmaskingCount");
        _true(fed.revealPhaseOver(roundId) == (u == c), "ends early exactly when every committer unmasked");
    }

    // ------------------------------------------------------------ each action in its phase only

    uint256 internal constant END = ADVERTISE + DURATION + UNMASK; // seconds from the opening to the unmask deadline

    function testFuzz_advertiseOnlyInTheAdvertisePhase(uint256 t) public {
        t = _bound(t, 0, END + 10);
        uint256 roundId = _openSecure();
        vm.warp(START + t);
        if (t > ADVERTISE) {
            _expectRevert(_deadlineErr(IFederation.FederationAdvertiseTooLate.selector, roundId, uint64(START + ADVERTISE)));
        }
        _advertise(alice, roundId);
        (bool advertised,) = fed.secureParticipation(roundId, alice);
        _true(advertised == (t <= ADVERTISE), "advertised exactly in the advertise phase");
    }

    function testFuzz_commitOnlyInTheCommitPhase(uint256 t) public {
        t = _bound(t, 0, END + 10);
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId);
        vm.warp(START + t);
        if (t <= ADVERTISE) {
            _expectRevert(
                _deadlineErr(IFederation.FederationAdvertisePhaseActive.selector, roundId, uint64(START + ADVERTISE))
            );
        } else if (t > ADVERTISE + DURATION) {
            _expectRevert(
                _deadlineErr(IFederation.FederationCommitTooLate.selector, roundId, uint64(START + ADVERTISE + DURATION))
            );
        }
        _commit(alice, roundId);
        bool inPhase = t > ADVERTISE && t <= ADVERTISE + DURATION;
        _eq(fed.getRound(roundId).commitCount, inPhase ? 1 : 0, "committed exactly in the commit phase");
    }

    function testFuzz_unmaskOnlyInTheUnmaskPhase(uint256 t) public {
        t = _bound(t, ADVERTISE + 1, END + 10);
        uint256 roundId = _openSecure();
        _advertise(alice, roundId);
        _advertise(bob, roundId); // bob never commits: the commit phase runs to its deadline
        vm.warp(START + ADVERTISE + 1);
        _commit(alice, roundId);
        vm.warp(START + t);
        if (t <= ADVERTISE + DURATION) {
            _expectRevert(
                _deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + ADVERTISE + DURATION))
            );
        } else if (t > END) {
            _expectRevert(_deadlineErr(IFederation.FederationUnmaskTooLate.selector, roundId, uint64(START + END)));
        }
        _unmask(alice, roundId);
        bool inPhase = t > ADVERTISE + DURATION && t <= END;
        _eq(fed.getRound(roundId).unmaskingCount, inPhase ? 1 : 0, "shares exactly in the unmask phase");
        _true(fed.revealPhaseOver(roundId) == (t > END || inPhase), "the round may end after the unmask phase");
    }
}

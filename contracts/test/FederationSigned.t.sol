// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Federation} from "../Federation.sol";
import {IFederation} from "../IFederation.sol";
import {FederationFixture} from "./Federation.t.sol";

/// @notice Signed rounds: opening, the posting of the commitment set (its early end, every refusal), the escape
/// window with its inclusive bounds and forced commitments, the end of the round with and without a set, and the
/// plain, commit-reveal and secure rounds unchanged.
contract FederationSignedTest is FederationFixture {
    uint64 internal constant ESCAPE = 300;
    bytes32 internal constant ROOT = keccak256("set root");
    bytes32 internal constant SET = keccak256("set blob");
    string internal constant SET_CID = "bafyset";
    uint256 internal constant DEADLINE = START + DURATION;

    function _openSigned() internal returns (uint256 roundId) {
        bytes32 current = fed.currentModelDigest();
        vm.prank(aggregator);
        roundId = fed.openSignedRound(current == bytes32(0) ? BASE : current, "bafybase", DURATION, 1, ESCAPE);
    }

    function _post(uint256 roundId, uint32 count) internal {
        vm.prank(aggregator);
        fed.postCommitmentSet(roundId, count == 0 ? bytes32(0) : ROOT, count, SET, SET_CID);
    }

    function _post(uint256 roundId, bytes32 root, uint32 count, bytes32 digest, string memory cid) internal {
        vm.prank(aggregator);
        fed.postCommitmentSet(roundId, root, count, digest, cid);
    }

    function _deadlineErr(bytes4 selector, uint256 roundId, uint256 deadline) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, roundId, uint64(deadline));
    }

    function _roundErr(bytes4 selector, uint256 roundId) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, roundId);
    }

    function _finalizeErr(uint256 roundId, uint32 included) internal {
        vm.prank(aggregator);
        fed.finalizeRound(roundId, keccak256("m"), "bafymodel", ROOT, keccak256("agg"), keccak256("ev"), "bafyev", included);
    }

    function _close(uint256 roundId) internal {
        vm.prank(aggregator);
        fed.closeRound(roundId, "no set");
    }

    // ------------------------------------------------------------ opening

    function test_openSignedRoundStoresItsRecordAndEmits() public {
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundOpened(1, aggregator, BASE, "bafybase", uint64(DEADLINE), 2, 1, 0);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.SignedRoundOpened(1, aggregator, uint64(DEADLINE), ESCAPE);
        vm.prank(aggregator);
        uint256 roundId = fed.openSignedRound(BASE, "bafybase", DURATION, 2, ESCAPE);
        Federation.RoundInfo memory r = fed.getRound(roundId);
        _true(r.signedRound, "signedRound");
        _true(!r.commitReveal && !r.secureRound && !r.privateRound, "nothing else");
        _eq(r.deadline, DEADLINE, "deadline");
        _eq(r.eligibleCount, 3, "eligibleCount");
        _eq(r.minUpdates, 2, "minUpdates");
        (bool signed, uint64 escape, uint64 escapeDeadline, uint32 count, bytes32 root, bytes32 digest) =
            fed.signedRound(roundId);
        _true(signed, "signed");
        _eq(escape, ESCAPE, "escapeDuration");
        _eq(escapeDeadline, 0, "no escape deadline before the set");
        _eq(count, 0, "setCount");
        _eq(root, bytes32(0), "setRoot");
        _eq(digest, bytes32(0), "setDigest");
    }

    function test_openSignedRoundChecksItsEscapeDuration() public {
        vm.startPrank(aggregator);
        _expectRevert(_invalidRound("escapeDuration", 0));
        fed.openSignedRound(BASE, "bafybase", DURATION, 1, 0);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitWindowTooLong.selector, uint256(MAX_WINDOW) + 1, MAX_WINDOW)
        );
        fed.openSignedRound(BASE, "bafybase", DURATION, 1, MAX_WINDOW + 1);
        fed.openSignedRound(BASE, "bafybase", DURATION, 1, MAX_WINDOW);
        vm.stopPrank();
        (, uint64 escape,,,,) = fed.signedRound(1);
        _eq(escape, MAX_WINDOW, "the maximum itself is allowed");
    }

    function test_openSignedRoundRefusesAnEscapeDeadlinePastUint64() public {
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", type(uint64).max);
        uint64 long = uint64(type(uint48).max - START);
        uint64 escape = type(uint64).max - type(uint48).max + 1;
        vm.startPrank(aggregator);
        _expectRevert(_invalidRound("commitDuration", long + 1));
        fed.openSignedRound(BASE, "bafybase", long + 1, 1, ESCAPE);
        _expectRevert(_invalidRound("escapeDuration", escape));
        fed.openSignedRound(BASE, "bafybase", long, 1, escape);
        fed.openSignedRound(BASE, "bafybase", long, 1, escape - 1);
        vm.stopPrank();
        _eq(fed.getRound(1).deadline, type(uint48).max, "the widest commit deadline");
    }

    function test_openSignedRoundHasTheChecksOfOpenRound() public {
        _expectRevert(_unauthorised(outsider, fed.AGGREGATOR_ROLE()));
        vm.prank(outsider);
        fed.openSignedRound(BASE, "bafybase", DURATION, 1, ESCAPE);
        vm.startPrank(aggregator);
        _expectRevert(_invalidRound("baseModelDigest", 0));
        fed.openSignedRound(bytes32(0), "bafybase", DURATION, 1, ESCAPE);
        _expectRevert(_invalidRound("baseModelCid", 0));
        fed.openSignedRound(BASE, "", DURATION, 1, ESCAPE);
        _expectRevert(_invalidRound("commitDuration", 0));
        fed.openSignedRound(BASE, "bafybase", 0, 1, ESCAPE);
        _expectRevert(_invalidRound("minUpdates", 0));
        fed.openSignedRound(BASE, "bafybase", DURATION, 0, ESCAPE);
        vm.stopPrank();
        uint256 roundId = _openSigned();
        _expectRevert(_roundErr(IFederation.FederationRoundInProgress.selector, roundId));
        vm.prank(aggregator);
        fed.openSignedRound(BASE, "bafybase", DURATION, 1, ESCAPE);
    }

    function test_openSignedRoundIsRefusedWhileTheTaskHasAPrivacyBudget() public {
        vm.prank(admin);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", MAX_WINDOW, keccak256("policy"), 4_000_000);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationPrivateSignedRound.selector, uint64(4_000_000)));
        vm.prank(aggregator);
        fed.openSignedRound(BASE, "bafybase", DURATION, 1, ESCAPE);
        _eq(fed.latestRoundId(), 0, "no round opened");
    }

    // ------------------------------------------------------------ before the set

    function test_commitUpdateIsRefusedBeforeTheSetIsPosted() public {
        uint256 roundId = _openSigned();
        _expectRevert(_roundErr(IFederation.FederationEscapeWindowNotOpen.selector, roundId));
        _commit(alice, roundId);
        vm.warp(DEADLINE + ESCAPE + 1);
        _expectRevert(_roundErr(IFederation.FederationEscapeWindowNotOpen.selector, roundId));
        _commit(alice, roundId);
    }

    function test_theOtherCommitPathsAreRefusedAsInAnyPlainRound() public {
        uint256 roundId = _openSigned();
        _expectRevert(_roundErr(IFederation.FederationNotPrivateRound.selector, roundId));
        vm.prank(alice);
        fed.commitPrivateUpdate(roundId, keccak256("u"), CID, 100, META, 1, keccak256("acc"));
        _expectRevert(_roundErr(IFederation.FederationNotCommitRevealRound.selector, roundId));
        vm.prank(alice);
        fed.sealUpdate(roundId, keccak256("seal"));
        _expectRevert(_roundErr(IFederation.FederationNotSecureRound.selector, roundId));
        vm.prank(alice);
        fed.postAdvertisement(roundId, keccak256("ad"), "bafyad");
        vm.warp(DEADLINE + 1);
        _post(roundId, 1);
        _expectRevert(_roundErr(IFederation.FederationNotPrivateRound.selector, roundId));
        vm.prank(alice);
        fed.commitPrivateUpdate(roundId, keccak256("u"), CID, 100, META, 1, keccak256("acc"));
    }

    function test_theCommitPhaseRunsUntilTheSetIsPosted() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        _true(!fed.commitPhaseOver(roundId), "deadline passed but no set");
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, DEADLINE + ESCAPE));
        _finalizeErr(roundId, 1);
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, DEADLINE + ESCAPE));
        _close(roundId);
    }

    // ------------------------------------------------------------ the commitment set

    function test_postCommitmentSetRecordsTheSetAndOpensTheEscapeWindow() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.CommitmentSetPosted(roundId, aggregator, ROOT, 2, SET, SET_CID, uint64(DEADLINE + 1 + ESCAPE));
        _post(roundId, 2);
        (bool signed, uint64 escape, uint64 escapeDeadline, uint32 count, bytes32 root, bytes32 digest) =
            fed.signedRound(roundId);
        _true(signed, "signed");
        _eq(escape, ESCAPE, "escapeDuration");
        _eq(escapeDeadline, DEADLINE + 1 + ESCAPE, "escapeDeadline");
        _eq(count, 2, "setCount");
        _eq(root, ROOT, "setRoot");
        _eq(digest, SET, "setDigest");
        _eq(fed.getRound(roundId).commitCount, 2, "commitCount is the set's count");
        _true(!fed.commitPhaseOver(roundId), "the escape window runs");
    }

    function test_anEmptySetHasAZeroRoot() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        _expectRevert(_invalid(IFederation.FederationInvalidResult.selector, "setRoot"));
        _post(roundId, ROOT, 0, SET, SET_CID);
        _post(roundId, bytes32(0), 0, SET, SET_CID);
        _eq(fed.getRound(roundId).commitCount, 0, "no commitment");
    }

    function test_postCommitmentSetRefusals() public {
        uint256 roundId = _openSigned();
        _expectRevert(_unauthorised(outsider, fed.AGGREGATOR_ROLE()));
        vm.prank(outsider);
        fed.postCommitmentSet(roundId, ROOT, 1, SET, SET_CID);
        _expectRevert(_roundErr(IFederation.FederationUnknownRound.selector, roundId + 1));
        _post(roundId + 1, 1);
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, DEADLINE));
        _post(roundId, 2);
        vm.warp(DEADLINE);
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, DEADLINE));
        _post(roundId, 2);
        vm.warp(DEADLINE + 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationInvalidSetCount.selector, roundId, uint32(4), uint32(3))
        );
        _post(roundId, 4);
        _expectRevert(_invalid(IFederation.FederationInvalidResult.selector, "setRoot"));
        _post(roundId, bytes32(0), 1, SET, SET_CID);
        _expectRevert(_invalid(IFederation.FederationInvalidResult.selector, "setDigest"));
        _post(roundId, ROOT, 1, bytes32(0), SET_CID);
        _expectRevert(_invalid(IFederation.FederationInvalidResult.selector, "setCid"));
        _post(roundId, ROOT, 1, SET, "");
        _post(roundId, 1);
        _expectRevert(_roundErr(IFederation.FederationCommitmentSetPosted.selector, roundId));
        _post(roundId, 1);
    }

    function test_postCommitmentSetNeedsAnOpenSignedRound() public {
        uint256 plain = _open();
        vm.warp(START + DURATION + 1);
        _expectRevert(_roundErr(IFederation.FederationNotSignedRound.selector, plain));
        _post(plain, 1);
        _close(plain);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotOpen.selector, plain, IFederation.RoundStatus.Closed)
        );
        _post(plain, 1);
    }

    function test_theSetMayComeUntilTheDeadlinePlusTheEscapeDuration() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + ESCAPE + 1);
        _expectRevert(_deadlineErr(IFederation.FederationCommitmentSetTooLate.selector, roundId, DEADLINE + ESCAPE));
        _post(roundId, 1);
        vm.warp(DEADLINE + ESCAPE);
        _post(roundId, 1);
        (,, uint64 escapeDeadline,,,) = fed.signedRound(roundId);
        _eq(escapeDeadline, DEADLINE + 2 * ESCAPE, "the window runs from the posting");
    }

    function test_aFullSetPostedEarlyStillLeavesTheEscapeWindow() public {
        uint256 roundId = _openSigned();
        vm.warp(START + 1);
        _post(roundId, 3); // as many entries as eligible participants: the set may be posted before the deadline
        _true(!fed.commitPhaseOver(roundId), "the contract cannot check the entries: the escape window runs");
        (,, uint64 escapeDeadline,,,) = fed.signedRound(roundId);
        _eq(escapeDeadline, DEADLINE + ESCAPE, "an early set: the window runs from the deadline");
        vm.warp(escapeDeadline);
        _true(!fed.commitPhaseOver(roundId), "open up to its escape deadline, inclusive");
        _commit(bob, roundId); // a participant the set may leave out forces its commitment up to then
        vm.warp(uint256(escapeDeadline) + 1);
        _true(fed.commitPhaseOver(roundId), "over after it");
        _finalizeErr(roundId, 4);
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Finalized), "finalised");
    }

    // ------------------------------------------------------------ the escape window

    function test_forcedCommitmentsAreTakenUpToTheEscapeDeadlineInclusive() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        _post(roundId, 1);
        uint256 escapeDeadline = DEADLINE + 1 + ESCAPE;
        vm.warp(escapeDeadline);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UpdateCommitted(roundId, bob, keccak256(abi.encode(bob, roundId)), CID, 100, META);
        _commit(bob, roundId);
        _eq(fed.getRound(roundId).commitCount, 2, "set + forced");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, bob));
        _commit(bob, roundId);
        vm.warp(escapeDeadline + 1);
        _expectRevert(_deadlineErr(IFederation.FederationEscapeWindowClosed.selector, roundId, escapeDeadline));
        _commit(carol, roundId);
        _eq(fed.getRound(roundId).commitCount, 2, "nothing after the window");
    }

    function test_forcedCommitmentsHaveTheChecksOfCommitUpdate() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        _post(roundId, 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, outsider));
        _commit(outsider, roundId);
        vm.startPrank(bob);
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "updateDigest"));
        fed.commitUpdate(roundId, bytes32(0), CID, 100, META);
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "cid"));
        fed.commitUpdate(roundId, keccak256("u"), "", 100, META);
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "numSamples"));
        fed.commitUpdate(roundId, keccak256("u"), CID, 0, META);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, bob, SAMPLES + 1, SAMPLES));
        fed.commitUpdate(roundId, keccak256("u"), CID, SAMPLES + 1, META);
        vm.stopPrank();
    }

    function test_theRoundEndsAfterTheEscapeWindow() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        _post(roundId, 2);
        uint256 escapeDeadline = DEADLINE + 1 + ESCAPE;
        vm.warp(escapeDeadline);
        _true(!fed.commitPhaseOver(roundId), "the window runs to its deadline inclusive");
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, escapeDeadline));
        _finalizeErr(roundId, 2);
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, escapeDeadline));
        _close(roundId);
        vm.warp(escapeDeadline + 1);
        _true(fed.commitPhaseOver(roundId), "over after the window");
        _finalizeErr(roundId, 2);
    }

    function test_finalizeIncludesAtMostTheSetAndTheForcedCommitments() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + 1);
        _post(roundId, 1);
        _commit(carol, roundId);
        vm.warp(DEADLINE + 1 + ESCAPE + 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationInvalidIncludedCount.selector, uint32(3), uint32(2))
        );
        _finalizeErr(roundId, 3);
        _finalizeErr(roundId, 2);
        _eq(fed.getRound(roundId).includedCount, 2, "includedCount");
    }

    function test_aRoundWithoutASetCanBeClosedAfterTheDeadlinePlusTheEscapeDuration() public {
        uint256 roundId = _openSigned();
        vm.warp(DEADLINE + ESCAPE);
        _expectRevert(_deadlineErr(IFederation.FederationCommitPhaseActive.selector, roundId, DEADLINE + ESCAPE));
        _close(roundId);
        vm.warp(DEADLINE + ESCAPE + 1);
        _true(fed.commitPhaseOver(roundId), "no set can come any more");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationInvalidIncludedCount.selector, uint32(1), uint32(0))
        );
        _finalizeErr(roundId, 1);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundClosed(roundId, aggregator, 0, "no set");
        _close(roundId);
    }

    // ------------------------------------------------------------ the other rounds

    function test_plainCommitRevealAndSecureRoundsAreUnchanged() public {
        uint256 plain = _open();
        _commit(alice, plain);
        _eq(fed.getRound(plain).commitCount, 1, "a plain commit");
        _true(!fed.getRound(plain).signedRound, "not signed");
        (bool signed, uint64 escape,,,,) = fed.signedRound(plain);
        _true(!signed && escape == 0, "no signed record");
        vm.warp(START + DURATION + 1);
        _close(plain);

        vm.prank(aggregator);
        uint256 revealRound = fed.openRound(BASE, "bafybase", DURATION, 1, DURATION);
        _expectRevert(_roundErr(IFederation.FederationCommitRevealRound.selector, revealRound));
        _commit(alice, revealRound);
        _true(!fed.getRound(revealRound).signedRound, "commit-reveal is not signed");
        vm.warp(block.timestamp + 2 * DURATION + 1);
        _close(revealRound);

        vm.prank(aggregator);
        uint256 secure = fed.openSecureRound(BASE, "bafybase", DURATION, DURATION, 1, DURATION);
        uint64 advertiseDeadline = uint64(block.timestamp + DURATION);
        _expectRevert(_deadlineErr(IFederation.FederationAdvertisePhaseActive.selector, secure, advertiseDeadline));
        _commit(alice, secure);
        _true(!fed.getRound(secure).signedRound, "secure is not signed");
    }

    /// A signed round's flag shares the round's first slot: a plain commit costs the same after signed rounds.
    function test_plainCommitGasIsUnchangedBySignedRounds() public {
        CommitProbeSigned probe = new CommitProbeSigned();
        vm.prank(address(probe));
        fed.register("Probe", "test", "", SAMPLES);
        vm.prank(admin);
        fed.admit(address(probe));
        uint256 first = _probeRound(probe);
        uint256 signed = _openSigned();
        vm.warp(block.timestamp + DURATION + 1);
        _post(signed, 0);
        vm.warp(block.timestamp + ESCAPE + 1);
        _close(signed);
        uint256 second = _probeRound(probe);
        _eq(second, first, "plain commit gas after a signed round");
    }

    function _probeRound(CommitProbeSigned probe) internal returns (uint256 used) {
        uint256 roundId = _open();
        _commit(alice, roundId);
        used = probe.commit(fed, roundId);
        vm.warp(block.timestamp + DURATION + 1);
        _close(roundId);
    }
}

/// @notice A participant contract that reports the gas its commit call used.
contract CommitProbeSigned {
    /// @notice Commits and returns the gas the call consumed.
    /// @param fed The federation.
    /// @param roundId The round.
    /// @return used Gas used by the commitUpdate call.
    function commit(Federation fed, uint256 roundId) external returns (uint256 used) {
        uint256 before = gasleft();
        fed.commitUpdate(roundId, keccak256(abi.encode(roundId)), "bafyprobe", 100, bytes32(uint256(1)));
        used = before - gasleft();
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IFederation} from "../IFederation.sol";
import {FederationFixture} from "./Federation.t.sol";

/// @notice Live verification by the members (attestations and the verification policy), disputes with the fallback
/// model, and exclusion contests.
contract FederationVerificationTest is FederationFixture {
    bytes32 internal constant MODEL = keccak256("model 1");
    bytes32 internal constant FINDINGS = keccak256("findings blob");
    string internal constant FINDINGS_CID = "bafkreifindings";

    // ------------------------------------------------------------ helpers

    function _leaf(address who, uint256 roundId) internal view returns (bytes32) {
        return _commitmentLeaf(roundId, who, keccak256(abi.encode(who, roundId)), CID, 100, META);
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev A round in which alice, bob and carol commit and alice and bob are included (a two-leaf tree).
    function _roundWithTwoIncluded(bytes32 model) internal returns (uint256 roundId) {
        roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        bytes32 root = _hashPair(_leaf(alice, roundId), _leaf(bob, roundId));
        vm.prank(aggregator);
        fed.finalizeRound(
            roundId,
            model,
            "bafymodel",
            root,
            keccak256("agg"),
            keccak256("ev"),
            "bafyev",
            2
        );
    }

    /// @dev `who`'s inclusion proof in a round built by `_roundWithTwoIncluded` (its sibling is `other`'s leaf).
    function _inclusion(address who, address other, uint256 roundId) internal view returns (IFederation.Inclusion memory) {
        bytes32[] memory proof = new bytes32[](1);
        proof[0] = _leaf(other, roundId);
        return IFederation.Inclusion(keccak256(abi.encode(who, roundId)), keccak256(bytes(CID)), 100, META, proof);
    }

    /// @dev `who` attests (the proof is computed first: a view call would take the prank).
    function _attest(address who, address other, uint256 roundId, bool ok) internal {
        IFederation.Inclusion memory inclusion = _inclusion(who, other, roundId);
        vm.prank(who);
        if (ok) fed.attestRound(roundId, MODEL, true, bytes32(0), "", inclusion);
        else fed.attestRound(roundId, keccak256("replayed"), false, FINDINGS, FINDINGS_CID, inclusion);
    }

    function _policy(uint8 percent) internal {
        vm.prank(admin);
        fed.setVerificationPolicy(percent);
    }

    // ------------------------------------------------------------ the policy

    function test_verificationPolicyIsSetByTheAdminOnly() public {
        _eq(fed.verificationPolicy(), 0, "none by default");
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.VerificationPolicySet(admin, 51);
        _policy(51);
        _eq(fed.verificationPolicy(), 51, "set");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationInvalidPolicy.selector, 101));
        _policy(101);
        _expectRevert(_unauthorised(alice, fed.ADMIN_ROLE()));
        vm.prank(alice);
        fed.setVerificationPolicy(10);
    }

    function test_attestationQuorumIsTheCeilingOfThePolicy() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        _eq(fed.attestationQuorum(roundId), 0, "no policy, no quorum");
        _policy(50);
        _eq(fed.attestationQuorum(roundId), 1, "50% of 2");
        _policy(51);
        _eq(fed.attestationQuorum(roundId), 2, "51% of 2, rounded up");
        _policy(100);
        _eq(fed.attestationQuorum(roundId), 2, "all");
        _eq(fed.currentModelRound(), roundId, "the current model comes from the round");
    }

    // ------------------------------------------------------------ attestations

    function test_includedParticipantsAttestOnce() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundAttested(roundId, alice, true, MODEL, bytes32(0), "");
        _attest(alice, bob, roundId, true);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundAttested(roundId, bob, false, keccak256("replayed"), FINDINGS, FINDINGS_CID);
        _attest(bob, alice, roundId, false);
        (uint32 ok, uint32 negative) = fed.attestationCounts(roundId);
        _eq(uint256(ok) * 10 + negative, 11, "one of each");
        _eq(fed.attestationOf(roundId, alice), 1, "alice positive");
        _eq(fed.attestationOf(roundId, bob), 2, "bob negative");
        _eq(fed.attestationOf(roundId, carol), 0, "carol none");
        IFederation.Inclusion memory inclusion = _inclusion(alice, bob, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationAlreadyAttested.selector, roundId, alice));
        vm.prank(alice);
        fed.attestRound(roundId, keccak256("replayed"), false, FINDINGS, FINDINGS_CID, inclusion);
    }

    function test_attestationOfARoundNotFinalizedReverts() public {
        IFederation.Inclusion memory inclusion = _inclusion(alice, bob, 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotFinalized.selector, 1, IFederation.RoundStatus.None)
        );
        vm.prank(alice);
        fed.attestRound(1, MODEL, true, bytes32(0), "", inclusion);
        uint256 roundId = _open();
        _commit(alice, roundId);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotFinalized.selector, roundId, IFederation.RoundStatus.Open)
        );
        vm.prank(alice);
        fed.attestRound(roundId, MODEL, true, bytes32(0), "", inclusion);
    }

    function test_attestationByAParticipantNotIncludedReverts() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        IFederation.Inclusion memory excluded = _inclusion(carol, alice, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotIncluded.selector, roundId, carol));
        vm.prank(carol); // committed, but excluded
        fed.attestRound(roundId, MODEL, true, bytes32(0), "", excluded);
        IFederation.Inclusion memory alices = _inclusion(alice, bob, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotIncluded.selector, roundId, outsider));
        vm.prank(outsider); // with alice's proof
        fed.attestRound(roundId, MODEL, true, bytes32(0), "", alices);
        IFederation.Inclusion memory forged = _inclusion(alice, bob, roundId);
        forged.numSamples = 99;
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotIncluded.selector, roundId, alice));
        vm.prank(alice);
        fed.attestRound(roundId, MODEL, true, bytes32(0), "", forged);
        (uint32 ok,) = fed.attestationCounts(roundId);
        _eq(ok, 0, "nothing counted");
    }

    function test_attestationWithWrongValuesReverts() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        IFederation.Inclusion memory inclusion = _inclusion(alice, bob, roundId);
        vm.startPrank(alice);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationAttestationModelMismatch.selector, roundId, MODEL, BASE)
        );
        fed.attestRound(roundId, BASE, true, bytes32(0), "", inclusion);
        _expectRevert(_invalid(IFederation.FederationInvalidAttestation.selector, "findingsDigest"));
        fed.attestRound(roundId, BASE, false, bytes32(0), FINDINGS_CID, inclusion);
        _expectRevert(_invalid(IFederation.FederationInvalidAttestation.selector, "findingsCid"));
        fed.attestRound(roundId, BASE, false, FINDINGS, "", inclusion);
        vm.stopPrank();
        _eq(fed.attestationOf(roundId, alice), 0, "nothing recorded");
    }

    function test_attestationQuorumBlocksTheNextRound() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        _policy(100);
        _attest(alice, bob, roundId, true);
        _attest(bob, alice, roundId, false);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationAttestationQuorumNotMet.selector, roundId, 1, 2)
        );
        vm.prank(aggregator);
        fed.openRound(MODEL, "bafymodel", DURATION, 1, 0);
        _policy(50);
        vm.prank(aggregator);
        uint256 next = fed.openRound(MODEL, "bafymodel", DURATION, 1, 0);
        _eq(next, roundId + 1, "opens once the quorum is met");
    }

    function test_noPolicyNeedsNoAttestation() public {
        _roundWithTwoIncluded(MODEL);
        vm.prank(aggregator);
        fed.openRound(MODEL, "bafymodel", DURATION, 1, 0);
    }

    // ------------------------------------------------------------ disputes

    function test_disputeFallsBackToTheBaseModel() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        IFederation.Inclusion memory inclusion = _inclusion(alice, bob, roundId);
        _policy(100);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundDisputed(roundId, admin, aggregator, FINDINGS, FINDINGS_CID, BASE, "replay mismatch");
        vm.prank(admin);
        fed.disputeRound(roundId, aggregator, FINDINGS, FINDINGS_CID, "replay mismatch");
        IFederation.RoundStatus status = fed.getRound(roundId).status;
        _eq(uint256(status), uint256(IFederation.RoundStatus.Disputed), "disputed");
        _eq(fed.currentModelDigest(), BASE, "back to the base model");
        _eq(fed.currentModelRound(), 0, "a fallback");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationBaseModelMismatch.selector, BASE, MODEL));
        vm.prank(aggregator);
        fed.openRound(MODEL, "bafymodel", DURATION, 1, 0);
        vm.prank(aggregator);
        uint256 next = fed.openRound(BASE, "bafybase", DURATION, 1, 0); // no attestation needed for the fallback
        _eq(fed.getRound(next).baseModelDigest, BASE, "the next round trains from the fallback");
        _expectRevert(
            abi.encodeWithSelector(
                IFederation.FederationRoundNotFinalized.selector, roundId, IFederation.RoundStatus.Disputed
            )
        );
        vm.prank(alice);
        fed.attestRound(roundId, MODEL, true, bytes32(0), "", inclusion);
    }

    function test_disputesNewestFirstFallBackTwoRounds() public {
        uint256 first = _roundWithTwoIncluded(MODEL);
        uint256 second = _roundWithTwoIncluded(keccak256("model 2"));
        vm.startPrank(admin);
        fed.disputeRound(second, aggregator, FINDINGS, FINDINGS_CID, "second");
        _eq(fed.currentModelDigest(), MODEL, "back to the first round's model");
        fed.disputeRound(first, aggregator, FINDINGS, FINDINGS_CID, "first");
        _eq(fed.currentModelDigest(), BASE, "back to the initial model");
        vm.stopPrank();
    }

    function test_disputeOfAnOlderRoundKeepsTheCurrentModel() public {
        uint256 first = _roundWithTwoIncluded(MODEL);
        _roundWithTwoIncluded(keccak256("model 2"));
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundDisputed(first, admin, alice, FINDINGS, FINDINGS_CID, bytes32(0), "older");
        vm.prank(admin);
        fed.disputeRound(first, alice, FINDINGS, FINDINGS_CID, "older");
        _eq(fed.currentModelDigest(), keccak256("model 2"), "unchanged");
        _eq(fed.currentModelRound(), first + 1, "unchanged");
    }

    function test_disputeRefusals() public {
        uint256 open = _open();
        vm.startPrank(admin);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotFinalized.selector, open, IFederation.RoundStatus.Open)
        );
        fed.disputeRound(open, aggregator, FINDINGS, FINDINGS_CID, "x");
        vm.stopPrank();
        vm.warp(START + DURATION + 1);
        vm.prank(aggregator);
        fed.closeRound(open, "nothing");
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        vm.startPrank(admin);
        _expectRevert(_invalid(IFederation.FederationInvalidDispute.selector, "findingsDigest"));
        fed.disputeRound(roundId, aggregator, bytes32(0), FINDINGS_CID, "x");
        _expectRevert(_invalid(IFederation.FederationInvalidDispute.selector, "findingsCid"));
        fed.disputeRound(roundId, aggregator, FINDINGS, "", "x");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotFinalized.selector, open, IFederation.RoundStatus.Closed)
        );
        fed.disputeRound(open, aggregator, FINDINGS, FINDINGS_CID, "x");
        vm.stopPrank();
        _expectRevert(_unauthorised(alice, fed.ADMIN_ROLE()));
        vm.prank(alice);
        fed.disputeRound(roundId, aggregator, FINDINGS, FINDINGS_CID, "x");
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Finalized), "still finalised");
    }

    // ------------------------------------------------------------ exclusion contests

    function test_excludedParticipantContestsAndTheAggregatorAnswers() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        bytes32 digest = keccak256(abi.encode(carol, roundId));
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ExclusionContested(roundId, carol, digest, CID);
        vm.prank(carol);
        fed.contestExclusion(roundId, digest, CID);
        _eq(fed.contestOf(roundId, carol), 1, "open");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationAlreadyContested.selector, roundId, carol));
        vm.prank(carol);
        fed.contestExclusion(roundId, digest, CID);
        _expectRevert(_unauthorised(carol, fed.AGGREGATOR_ROLE()));
        vm.prank(carol);
        fed.answerContest(roundId, carol, true);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ContestAnswered(roundId, carol, aggregator, true);
        vm.prank(aggregator);
        fed.answerContest(roundId, carol, true);
        _eq(fed.contestOf(roundId, carol), 2, "answered: available");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationContestAnswered.selector, roundId, carol));
        vm.prank(aggregator);
        fed.answerContest(roundId, carol, false);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNoContest.selector, roundId, alice));
        vm.prank(aggregator);
        fed.answerContest(roundId, alice, false);
    }

    function test_contestRefusals() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        bytes32 digest = keccak256("update");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, outsider));
        vm.prank(outsider);
        fed.contestExclusion(roundId, digest, CID);
        vm.prank(admin);
        fed.remove(carol, "left");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationNotActive.selector, carol, IFederation.ParticipantStatus.Removed)
        );
        vm.prank(carol);
        fed.contestExclusion(roundId, digest, CID);
        vm.startPrank(bob);
        _expectRevert(_invalid(IFederation.FederationInvalidContest.selector, "updateDigest"));
        fed.contestExclusion(roundId, bytes32(0), CID);
        _expectRevert(_invalid(IFederation.FederationInvalidContest.selector, "cid"));
        fed.contestExclusion(roundId, digest, "");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotFinalized.selector, 9, IFederation.RoundStatus.None)
        );
        fed.contestExclusion(9, digest, CID);
        vm.stopPrank();
        _eq(fed.contestOf(roundId, bob), 0, "nothing recorded");
    }

    function test_contestWindowClosesWhenTheRoundAfterNextOpens() public {
        uint256 roundId = _roundWithTwoIncluded(MODEL);
        _roundWithTwoIncluded(keccak256("model 2")); // the next round: still open for contests of roundId
        vm.prank(carol);
        fed.contestExclusion(roundId, keccak256("update"), CID);
        _open(); // the round after next
        _expectRevert(abi.encodeWithSelector(IFederation.FederationContestWindowClosed.selector, roundId, roundId + 2));
        vm.prank(bob);
        fed.contestExclusion(roundId, keccak256("update"), CID);
    }

    function testFuzz_attestationQuorumIsCeil(uint8 percent, uint32 included) public {
        percent = uint8(_bound(percent, 0, 100));
        included = uint32(_bound(included, 1, 3));
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        _finalize(roundId, MODEL, included);
        _policy(percent);
        uint256 want = (uint256(percent) * included + 99) / 100;
        _eq(fed.attestationQuorum(roundId), want, "ceil(policy * included / 100)");
        _true(want * 100 >= uint256(percent) * included, "at least the policy's share");
        _true(want == 0 || (want - 1) * 100 < uint256(percent) * included, "the smallest such count");
    }
}

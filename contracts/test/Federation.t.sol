// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Federation} from "../Federation.sol";
import {IFederation} from "../IFederation.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Shared set-up: a federation with a configured task and three admitted participants.
abstract contract FederationFixture is TestBase {
    Federation internal fed;
    address internal admin = address(0xA11CE);
    address internal aggregator = address(0xA66);
    address internal alice = address(0x1001);
    address internal bob = address(0x1002);
    address internal carol = address(0x1003);
    address internal outsider = address(0xBAD);

    bytes32 internal constant SPEC = keccak256("spec");
    bytes32 internal constant STRATEGY = keccak256("strategy");
    bytes32 internal constant SCHEMA = keccak256("schema");
    bytes32 internal constant BASE = keccak256("base model");
    bytes32 internal constant META = keccak256("meta");
    string internal constant CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";
    uint64 internal constant DURATION = 600;
    uint64 internal constant MAX_WINDOW = 1 days;
    uint64 internal constant SAMPLES = 1000;
    uint256 internal constant START = 1_700_000_000;

    function setUp() public virtual {
        vm.warp(START);
        fed = new Federation(admin, aggregator, new address[](0));
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig", MAX_WINDOW);
        _join(alice);
        _join(bob);
        _join(carol);
    }

    function _join(address who) internal {
        vm.prank(who);
        fed.register("Org", "finance", hex"02", SAMPLES);
        vm.prank(admin);
        fed.admit(who);
    }

    function _open() internal returns (uint256 roundId) {
        bytes32 current = fed.currentModelDigest();
        vm.prank(aggregator);
        roundId = fed.openRound(current == bytes32(0) ? BASE : current, "bafybase", DURATION, 1, 0);
    }

    function _commit(address who, uint256 roundId) internal {
        vm.prank(who);
        fed.commitUpdate(roundId, keccak256(abi.encode(who, roundId)), CID, 100, keccak256("meta"));
    }

    function _finalize(uint256 roundId, bytes32 model, uint32 included) internal {
        vm.prank(aggregator);
        fed.finalizeRound(roundId, model, "bafymodel", keccak256("root"), keccak256("agg"), keccak256("ev"), "bafyev", included);
    }

    /// @dev The Merkle leaf of a commitment as `attestRound` checks it (OpenZeppelin StandardMerkleTree: double
    /// keccak256 of the ABI-encoded commitment, the CID as its keccak256), as `fedchain.codec.merkle` computes it.
    function _commitmentLeaf(
        uint256 roundId,
        address who,
        bytes32 digest,
        string memory cid,
        uint64 samples,
        bytes32 meta
    ) internal pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(roundId, who, digest, keccak256(bytes(cid)), samples, meta))));
    }

    function _err(bytes4 selector) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector);
    }

    /// @dev Revert data of an invalid-argument error that names only the offending field.
    function _invalid(bytes4 selector, string memory field) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(selector, field);
    }

    /// @dev Revert data of FederationInvalidRound: the offending field and value.
    function _invalidRound(string memory field, uint256 value) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IFederation.FederationInvalidRound.selector, field, value);
    }

    function _unauthorised(address caller, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, caller, role);
    }
}

/// @notice Unit and fuzz tests of the participant, task and round state machine.
contract FederationTest is FederationFixture {
    // ------------------------------------------------------------ roles

    function test_constructorGrantsRoles() public view {
        _true(fed.hasRole(fed.DEFAULT_ADMIN_ROLE(), admin), "admin has DEFAULT_ADMIN_ROLE");
        _true(fed.hasRole(fed.ADMIN_ROLE(), admin), "admin has ADMIN_ROLE");
        _true(fed.hasRole(fed.AGGREGATOR_ROLE(), aggregator), "aggregator has AGGREGATOR_ROLE");
        _true(!fed.hasRole(fed.AGGREGATOR_ROLE(), admin), "admin is not aggregator");
        _eq(fed.ADMIN_ROLE(), keccak256("ADMIN_ROLE"), "ADMIN_ROLE");
        _eq(fed.AGGREGATOR_ROLE(), keccak256("AGGREGATOR_ROLE"), "AGGREGATOR_ROLE");
    }

    function testFuzz_onlyAdminAdmitsRemovesConfigures(address caller) public {
        vm.assume(caller != admin);
        bytes32 role = fed.ADMIN_ROLE();
        _expectRevert(_unauthorised(caller, role));
        vm.prank(caller);
        fed.admit(alice);
        _expectRevert(_unauthorised(caller, role));
        vm.prank(caller);
        fed.remove(alice, "x");
        _expectRevert(_unauthorised(caller, role));
        vm.prank(caller);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", MAX_WINDOW);
    }

    function testFuzz_onlyAggregatorRunsRounds(address caller) public {
        vm.assume(caller != aggregator);
        bytes32 role = fed.AGGREGATOR_ROLE();
        _expectRevert(_unauthorised(caller, role));
        vm.prank(caller);
        fed.openRound(BASE, "bafybase", DURATION, 1, 0);
        uint256 roundId = _open();
        vm.warp(START + DURATION + 1);
        _expectRevert(_unauthorised(caller, role));
        vm.prank(caller);
        fed.finalizeRound(roundId, BASE, "m", BASE, BASE, BASE, "e", 0);
        _expectRevert(_unauthorised(caller, role));
        vm.prank(caller);
        fed.closeRound(roundId, "x");
    }

    // ------------------------------------------------------------ participants

    function test_registerMakesPendingAndEmits() public {
        address dave = address(0x1004);
        vm.roll(42);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ParticipantRegistered(dave, "Dave Bank", "finance", hex"0203", 5000);
        vm.prank(dave);
        fed.register("Dave Bank", "finance", hex"0203", 5000);
        (IFederation.ParticipantStatus status, uint64 last, uint64 registered, uint64 changed, uint64 declared) =
            fed.participant(dave);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Pending), "status");
        _eq(last, 0, "lastCommittedRound");
        _eq(registered, 42, "registeredBlock");
        _eq(changed, 42, "statusChangedBlock");
        _eq(declared, 5000, "declaredSamples");
    }

    function test_registerWithoutDeclaredSamplesReverts() public {
        _expectRevert(_invalid(IFederation.FederationInvalidRegistration.selector, "declaredSamples"));
        vm.prank(address(0x1004));
        fed.register("Dave", "finance", hex"02", 0);
        _expectRevert(_invalid(IFederation.FederationInvalidRegistration.selector, "organisation"));
        vm.prank(address(0x1004));
        fed.register("", "finance", hex"02", 0);
    }

    /// Block numbers are stored in 48 bits: a block number that needs more is cut, never reverts or spills into
    /// the neighbouring fields of the slot.
    function test_registerKeepsFieldsApartAtHighBlockNumbers() public {
        address dave = address(0x1004);
        vm.roll(type(uint48).max);
        vm.prank(dave);
        fed.register("Dave", "retail", "", type(uint64).max);
        (IFederation.ParticipantStatus status, uint64 last, uint64 registered, uint64 changed, uint64 declared) =
            fed.participant(dave);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Pending), "status");
        _eq(last, 0, "lastCommittedRound");
        _eq(registered, type(uint48).max, "registeredBlock");
        _eq(changed, type(uint48).max, "statusChangedBlock");
        _eq(declared, type(uint64).max, "declaredSamples");
    }

    function test_registerTwiceReverts() public {
        _expectRevert(abi.encodeWithSelector(IFederation.FederationAlreadyRegistered.selector, alice));
        vm.prank(alice);
        fed.register("Org", "finance", hex"02", SAMPLES);
    }

    function test_registerWithoutOrganisationReverts() public {
        _expectRevert(_invalid(IFederation.FederationInvalidRegistration.selector, "organisation"));
        vm.prank(address(0x1004));
        fed.register("", "finance", hex"02", SAMPLES);
    }

    function test_admitActivatesAndCounts() public {
        address dave = address(0x1004);
        vm.prank(dave);
        fed.register("Dave", "retail", "", 77);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ParticipantAdmitted(dave, admin, 77);
        vm.prank(admin);
        fed.admit(dave);
        (IFederation.ParticipantStatus status,,,, uint64 approved) = fed.participant(dave);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Active), "status");
        _eq(approved, 77, "approved dataset size");
        _eq(fed.activeCount(), 4, "activeCount");
    }

    function test_admitUnregisteredReverts() public {
        _expectRevert(
            abi.encodeWithSelector(
                IFederation.FederationInvalidStatus.selector, outsider, IFederation.ParticipantStatus.None
            )
        );
        vm.prank(admin);
        fed.admit(outsider);
    }

    function test_admitActiveReverts() public {
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationInvalidStatus.selector, alice, IFederation.ParticipantStatus.Active)
        );
        vm.prank(admin);
        fed.admit(alice);
    }

    function test_removeActiveDecrementsAndEmits() public {
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ParticipantRemoved(alice, admin, "left");
        vm.prank(admin);
        fed.remove(alice, "left");
        (IFederation.ParticipantStatus status,,,,) = fed.participant(alice);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Removed), "status");
        _eq(fed.activeCount(), 2, "activeCount");
    }

    function test_removePendingKeepsActiveCount() public {
        address dave = address(0x1004);
        vm.prank(dave);
        fed.register("Dave", "retail", "", SAMPLES);
        vm.prank(admin);
        fed.remove(dave, "spam");
        _eq(fed.activeCount(), 3, "activeCount");
    }

    function test_admitRefusedWhileRoundOpen() public {
        address dave = address(0x1004);
        vm.prank(dave);
        fed.register("Dave", "retail", "", SAMPLES);
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, roundId));
        vm.prank(admin);
        fed.admit(dave);
        (IFederation.ParticipantStatus status,,,,) = fed.participant(dave);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Pending), "status while the round is open");
        _eq(fed.activeCount(), 3, "activeCount");
    }

    function test_admitAllowedOnceRoundEnded() public {
        address dave = address(0x1004);
        vm.prank(dave);
        fed.register("Dave", "retail", "", SAMPLES);
        uint256 roundId = _open();
        vm.warp(START + DURATION + 1);
        vm.prank(aggregator);
        fed.closeRound(roundId, "timeout");
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ParticipantAdmitted(dave, admin, SAMPLES);
        vm.prank(admin);
        fed.admit(dave);
        _eq(fed.activeCount(), 4, "activeCount");
        _eq(fed.getRound(_open()).eligibleCount, 4, "eligibleCount of the next round");
    }

    function test_removeAllowedWhileRoundOpen() public {
        uint256 roundId = _open();
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ParticipantRemoved(carol, admin, "left");
        vm.prank(admin);
        fed.remove(carol, "left");
        _eq(fed.activeCount(), 2, "activeCount");
        _eq(fed.getRound(roundId).eligibleCount, 3, "eligibleCount unchanged by the removal");
    }

    function test_removeTwiceReverts() public {
        vm.prank(admin);
        fed.remove(alice, "left");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationInvalidStatus.selector, alice, IFederation.ParticipantStatus.Removed)
        );
        vm.prank(admin);
        fed.remove(alice, "again");
    }

    // ------------------------------------------------------------ task

    function test_configureTaskIncrementsVersionAndEmits() public {
        bytes32 spec2 = keccak256("spec2");
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.TaskConfigured(2, admin, spec2, STRATEGY, SCHEMA, "bafyconfig2", 3600);
        vm.prank(admin);
        fed.configureTask(spec2, STRATEGY, SCHEMA, "bafyconfig2", 3600);
        (uint32 version, bytes32 spec, bytes32 strategy, bytes32 schema, uint64 maxWindow) = fed.task();
        _eq(version, 2, "version");
        _eq(spec, spec2, "modelSpecDigest");
        _eq(strategy, STRATEGY, "strategyDigest");
        _eq(schema, SCHEMA, "dataSchemaDigest");
        _eq(maxWindow, 3600, "maxCommitDuration");
    }

    function test_configureTaskRejectsZeroDigestOrEmptyCid() public {
        bytes4 invalid = IFederation.FederationInvalidTask.selector;
        vm.startPrank(admin);
        _expectRevert(_invalid(invalid, "modelSpecDigest"));
        fed.configureTask(bytes32(0), STRATEGY, SCHEMA, "c", MAX_WINDOW);
        _expectRevert(_invalid(invalid, "strategyDigest"));
        fed.configureTask(SPEC, bytes32(0), SCHEMA, "c", MAX_WINDOW);
        _expectRevert(_invalid(invalid, "dataSchemaDigest"));
        fed.configureTask(SPEC, STRATEGY, bytes32(0), "c", MAX_WINDOW);
        _expectRevert(_invalid(invalid, "configCid"));
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "", MAX_WINDOW);
        _expectRevert(_invalid(invalid, "maxCommitDuration"));
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "c", 0);
        _expectRevert(_invalid(invalid, "modelSpecDigest"));
        fed.configureTask(bytes32(0), bytes32(0), bytes32(0), "", 0);
        vm.stopPrank();
        (uint32 version,,,, uint64 maxWindow) = fed.task();
        _eq(version, 1, "version unchanged");
        _eq(maxWindow, MAX_WINDOW, "maxCommitDuration unchanged");
    }

    function test_configureTaskRefusedWhileRoundOpen() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, roundId));
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", MAX_WINDOW);
    }

    // ------------------------------------------------------------ opening rounds

    function test_openRoundRecordsAndEmits() public {
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundOpened(1, aggregator, BASE, "bafybase", uint64(START + DURATION), 2, 1, 0);
        vm.prank(aggregator);
        uint256 roundId = fed.openRound(BASE, "bafybase", DURATION, 2, 0);
        _eq(roundId, 1, "roundId");
        _eq(fed.latestRoundId(), 1, "latestRoundId");
        Federation.RoundInfo memory r = fed.getRound(1);
        _eq(uint256(r.status), uint256(IFederation.RoundStatus.Open), "status");
        _eq(r.deadline, START + DURATION, "deadline");
        _eq(r.minUpdates, 2, "minUpdates");
        _eq(r.taskVersion, 1, "taskVersion");
        _eq(r.baseModelDigest, BASE, "baseModelDigest");
        _eq(r.commitCount, 0, "commitCount");
        _eq(r.eligibleCount, 3, "eligibleCount");
    }

    function test_openRoundWithoutTaskReverts() public {
        Federation fresh = new Federation(admin, aggregator, new address[](0));
        _expectRevert(_err(IFederation.FederationTaskNotConfigured.selector));
        vm.prank(aggregator);
        fresh.openRound(BASE, "bafybase", DURATION, 1, 0);
    }

    function test_openRoundWhileOpenReverts() public {
        _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, 1));
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", DURATION, 1, 0);
    }

    function test_openRoundRejectsInvalidParameters() public {
        vm.startPrank(aggregator);
        _expectRevert(_invalidRound("baseModelDigest", 0));
        fed.openRound(bytes32(0), "bafybase", DURATION, 1, 0);
        _expectRevert(_invalidRound("baseModelCid", 0));
        fed.openRound(BASE, "", DURATION, 1, 0);
        _expectRevert(_invalidRound("commitDuration", 0));
        fed.openRound(BASE, "bafybase", 0, 1, 0);
        _expectRevert(_invalidRound("minUpdates", 0));
        fed.openRound(BASE, "bafybase", DURATION, 0, 0);
        _expectRevert(_invalidRound("commitDuration", type(uint64).max));
        fed.openRound(BASE, "bafybase", type(uint64).max, 1, 0);
        _expectRevert(_invalidRound("baseModelDigest", 0));
        fed.openRound(bytes32(0), "", 0, 0, 0);
        vm.stopPrank();
    }

    /// A commit window up to the task's maximum is accepted; one second more is refused with both values.
    function testFuzz_openRoundWindowBoundedByTask(uint64 duration) public {
        duration = uint64(_bound(duration, 1, 4 * uint256(MAX_WINDOW)));
        if (duration > MAX_WINDOW) {
            _expectRevert(
                abi.encodeWithSelector(IFederation.FederationCommitWindowTooLong.selector, uint256(duration), MAX_WINDOW)
            );
        }
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", duration, 1, 0);
        _eq(fed.latestRoundId(), duration > MAX_WINDOW ? 0 : 1, "latestRoundId");
    }

    function test_openRoundWindowTooLongReverts() public {
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitWindowTooLong.selector, uint256(MAX_WINDOW) + 1, MAX_WINDOW)
        );
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", MAX_WINDOW + 1, 1, 0);
        // a deadline that does not fit in a uint64 is still an invalid duration, whatever the task allows
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", type(uint64).max);
        _expectRevert(_invalidRound("commitDuration", type(uint64).max));
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", type(uint64).max, 1, 0);
    }

    /// The maximum applies to rounds opened after the task change; a lower one shortens the next round's window.
    function test_reconfiguredMaximumAppliesToTheNextRound() public {
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", 60);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationCommitWindowTooLong.selector, uint256(61), uint64(60)));
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", 61, 1, 0);
        vm.prank(aggregator);
        uint256 roundId = fed.openRound(BASE, "bafybase", 60, 1, 0);
        _eq(fed.getRound(roundId).deadline, START + 60, "deadline");
    }

    /// A round opened with the longest window the task allows, in which nobody commits, is ended by the aggregator
    /// as soon as its deadline has passed: no round can be held open longer than the task's maximum.
    function test_longestRoundIsClosedRightAfterItsDeadline() public {
        vm.prank(aggregator);
        uint256 roundId = fed.openRound(BASE, "bafybase", MAX_WINDOW, 3, 0);
        _commit(alice, roundId);
        vm.warp(START + MAX_WINDOW);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + MAX_WINDOW))
        );
        vm.prank(aggregator);
        fed.closeRound(roundId, "deadline passed");
        vm.warp(START + MAX_WINDOW + 1);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundClosed(roundId, aggregator, 1, "deadline passed");
        vm.prank(aggregator);
        fed.closeRound(roundId, "deadline passed");
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Closed), "status");
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", MAX_WINDOW);
    }

    function test_openRoundMustStartFromFinalizedModel() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        bytes32 model = keccak256("model 1");
        _finalize(roundId, model, 3);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationBaseModelMismatch.selector, model, BASE));
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", DURATION, 1, 0);
    }

    // ------------------------------------------------------------ commits

    function testFuzz_commitEmitsAndRecords(bytes32 digest, string calldata cid, uint64 samples, bytes32 meta) public {
        vm.assume(digest != bytes32(0) && bytes(cid).length > 0);
        samples = uint64(_bound(samples, 1, SAMPLES));
        uint256 roundId = _open();
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UpdateCommitted(roundId, alice, digest, cid, samples, meta);
        vm.prank(alice);
        fed.commitUpdate(roundId, digest, cid, samples, meta);
        (, uint64 last,,,) = fed.participant(alice);
        _eq(last, roundId, "lastCommittedRound");
        _eq(fed.getRound(roundId).commitCount, 1, "commitCount");
    }

    function testFuzz_commitOnlyUpToDeadline(uint64 duration, uint64 elapsed) public {
        duration = uint64(_bound(duration, 1, MAX_WINDOW));
        elapsed = uint64(_bound(elapsed, 0, 2 * uint256(duration) + 1));
        vm.prank(aggregator);
        uint256 roundId = fed.openRound(BASE, "bafybase", duration, 1, 0);
        vm.warp(START + elapsed);
        if (elapsed > duration) {
            _expectRevert(
                abi.encodeWithSelector(IFederation.FederationCommitTooLate.selector, roundId, uint64(START + duration))
            );
        }
        _commit(alice, roundId);
        _eq(fed.getRound(roundId).commitCount, elapsed > duration ? 0 : 1, "commitCount");
    }

    function test_commitTwiceReverts() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, alice));
        _commit(alice, roundId);
    }

    /// A commitment may claim up to the approved dataset size, and not one sample more.
    function testFuzz_commitClaimsAtMostTheApprovedSamples(uint64 samples) public {
        samples = uint64(_bound(samples, 1, type(uint64).max));
        uint256 roundId = _open();
        if (samples > SAMPLES) {
            _expectRevert(abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, alice, samples, SAMPLES));
        }
        vm.prank(alice);
        fed.commitUpdate(roundId, keccak256("u"), CID, samples, META);
        _eq(fed.getRound(roundId).commitCount, samples > SAMPLES ? 0 : 1, "commitCount");
    }

    function test_commitTooManySamplesReverts() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, bob, SAMPLES + 1, SAMPLES));
        vm.prank(bob);
        fed.commitUpdate(roundId, keccak256("u"), CID, SAMPLES + 1, META);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UpdateCommitted(roundId, bob, keccak256("u"), CID, SAMPLES, META);
        vm.prank(bob);
        fed.commitUpdate(roundId, keccak256("u"), CID, SAMPLES, META);
    }

    function test_commitByUnregisteredReverts() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, outsider));
        _commit(outsider, roundId);
    }

    function test_commitByPendingReverts() public {
        address dave = address(0x1004);
        vm.prank(dave);
        fed.register("Dave", "retail", "", SAMPLES);
        uint256 roundId = _open();
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationNotActive.selector, dave, IFederation.ParticipantStatus.Pending)
        );
        _commit(dave, roundId);
    }

    function test_commitByRemovedReverts() public {
        uint256 roundId = _open();
        vm.prank(admin);
        fed.remove(alice, "left");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationNotActive.selector, alice, IFederation.ParticipantStatus.Removed)
        );
        _commit(alice, roundId);
    }

    function test_commitToUnknownRoundReverts() public {
        _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, 2));
        _commit(alice, 2);
    }

    function test_commitToFinalizedRoundReverts() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        _finalize(roundId, keccak256("m"), 3);
        _expectRevert(
            abi.encodeWithSelector(
                IFederation.FederationRoundNotOpen.selector, roundId, IFederation.RoundStatus.Finalized
            )
        );
        _commit(alice, roundId);
    }

    function test_commitRejectsInvalidCommitment() public {
        uint256 roundId = _open();
        bytes4 invalid = IFederation.FederationInvalidCommitment.selector;
        vm.startPrank(alice);
        _expectRevert(_invalid(invalid, "updateDigest"));
        fed.commitUpdate(roundId, bytes32(0), CID, 1, bytes32(0));
        _expectRevert(_invalid(invalid, "cid"));
        fed.commitUpdate(roundId, BASE, "", 1, bytes32(0));
        _expectRevert(_invalid(invalid, "numSamples"));
        fed.commitUpdate(roundId, BASE, CID, 0, bytes32(0));
        _expectRevert(_invalid(invalid, "updateDigest"));
        fed.commitUpdate(roundId, bytes32(0), "", 0, bytes32(0));
        vm.stopPrank();
    }

    /// Execution gas of a commit is the same in round 2 and round 12 (same warm/cold access pattern;
    /// measured in a fresh call frame so the caller's memory growth does not count).
    function test_commitGasIsFlatAcrossRounds() public {
        CommitProbe probe = new CommitProbe();
        vm.prank(address(probe));
        fed.register("Probe", "test", "", SAMPLES);
        vm.prank(admin);
        fed.admit(address(probe));
        uint256 early;
        uint256 late;
        bytes32 model = BASE;
        for (uint256 i = 1; i <= 12; ++i) {
            vm.prank(aggregator);
            uint256 roundId = fed.openRound(model, "bafybase", DURATION, 1, 0);
            _commit(alice, roundId);
            _commit(bob, roundId);
            _commit(carol, roundId);
            uint256 used = probe.commit(fed, roundId, keccak256(abi.encode(i)), CID);
            if (i == 2) early = used;
            if (i == 12) late = used;
            model = keccak256(abi.encode("model", i));
            _finalize(roundId, model, 4);
        }
        _eq(late, early, "commit gas in round 12 vs round 2");
        _true(early < 20_000, "commit execution gas below 20k");
    }

    // ------------------------------------------------------------ ending rounds

    function test_finalizeBeforeDeadlineRevertsUnlessAllCommitted() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + DURATION))
        );
        _finalize(roundId, keccak256("m"), 2);
        _commit(carol, roundId);
        _finalize(roundId, keccak256("m"), 3);
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Finalized), "status");
    }

    /// A removal during the round does not let it end before every participant eligible at opening committed.
    function test_removalDuringRoundDoesNotEndCommitPhaseEarly() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        vm.prank(admin);
        fed.remove(carol, "left");
        _true(!fed.commitPhaseOver(roundId), "commit phase still running");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + DURATION))
        );
        _finalize(roundId, keccak256("m"), 2);
        vm.warp(START + DURATION + 1);
        _true(fed.commitPhaseOver(roundId), "commit phase over after the deadline");
        _finalize(roundId, keccak256("m"), 2);
    }

    /// A removal after everyone committed does not hold the round open until the deadline.
    function test_removalAfterAllCommittedKeepsEarlyEnd() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        vm.prank(admin);
        fed.remove(alice, "left");
        _true(fed.commitPhaseOver(roundId), "commit phase over");
        vm.prank(aggregator);
        fed.closeRound(roundId, "done");
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Closed), "status");
    }

    /// A participant removed after committing still counts towards the eligible snapshot.
    function test_removedCommitterStillCounts() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        vm.prank(admin);
        fed.remove(alice, "left");
        _commit(bob, roundId);
        _true(!fed.commitPhaseOver(roundId), "carol has not committed");
        _commit(carol, roundId);
        _true(fed.commitPhaseOver(roundId), "every eligible participant committed");
        _finalize(roundId, keccak256("m"), 3);
    }

    function test_roundWithNoEligibleParticipantsMayEndAtOnce() public {
        vm.startPrank(admin);
        fed.remove(alice, "x");
        fed.remove(bob, "x");
        fed.remove(carol, "x");
        vm.stopPrank();
        uint256 roundId = _open();
        _eq(fed.getRound(roundId).eligibleCount, 0, "eligibleCount");
        _true(fed.commitPhaseOver(roundId), "nobody can commit");
        vm.prank(aggregator);
        fed.closeRound(roundId, "no participants");
    }

    function testFuzz_commitPhaseOverView(uint64 elapsed, uint8 committers) public {
        elapsed = uint64(_bound(elapsed, 0, 2 * uint256(DURATION)));
        committers = uint8(_bound(committers, 0, 3));
        uint256 roundId = _open();
        address[3] memory who = [alice, bob, carol];
        for (uint256 i = 0; i < committers; ++i) {
            _commit(who[i], roundId);
        }
        vm.warp(START + elapsed);
        bool over = elapsed > DURATION || committers == 3;
        _true(fed.commitPhaseOver(roundId) == over, "commitPhaseOver");
        if (!over) {
            _expectRevert(
                abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + DURATION))
            );
        }
        vm.prank(aggregator);
        fed.closeRound(roundId, "x");
        if (over) _true(fed.commitPhaseOver(roundId), "over once closed");
    }

    function test_commitPhaseOverOfUnknownRoundReverts() public {
        _expectRevert(abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, 1));
        fed.commitPhaseOver(1);
    }

    function test_commitPhaseOverOfEndedRound() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        _finalize(roundId, keccak256("m"), 3);
        _true(fed.commitPhaseOver(roundId), "finalised round");
    }

    function testFuzz_endOnlyAfterDeadline(uint64 elapsed, bool finalize) public {
        elapsed = uint64(_bound(elapsed, 0, 2 * uint256(DURATION)));
        uint256 roundId = _open();
        _commit(alice, roundId);
        vm.warp(START + elapsed);
        if (elapsed <= DURATION) {
            _expectRevert(
                abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + DURATION))
            );
        }
        if (finalize) {
            _finalize(roundId, keccak256("m"), 1);
        } else {
            vm.prank(aggregator);
            fed.closeRound(roundId, "timeout");
        }
    }

    function test_finalizeRecordsResultAndEmits() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        _commit(bob, roundId);
        vm.warp(START + DURATION + 1);
        bytes32 model = keccak256("m");
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundFinalized(
            roundId, aggregator, model, "bafymodel", keccak256("root"), keccak256("agg"), keccak256("ev"), "bafyev", 2
        );
        _finalize(roundId, model, 2);
        Federation.RoundInfo memory r = fed.getRound(roundId);
        _eq(uint256(r.status), uint256(IFederation.RoundStatus.Finalized), "status");
        _eq(r.includedCount, 2, "includedCount");
        _eq(r.commitCount, 2, "commitCount");
        _eq(r.modelDigest, model, "modelDigest");
        _eq(r.merkleRoot, keccak256("root"), "merkleRoot");
        _eq(r.aggregationDigest, keccak256("agg"), "aggregationDigest");
        _eq(r.evidenceDigest, keccak256("ev"), "evidenceDigest");
        _eq(fed.currentModelDigest(), model, "currentModelDigest");
    }

    function test_finalizeRejectsMoreIncludedThanCommitted() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        vm.warp(START + DURATION + 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationInvalidIncludedCount.selector, uint32(2), uint32(1)));
        _finalize(roundId, keccak256("m"), 2);
    }

    function test_finalizeRejectsTooFewUpdates() public {
        vm.prank(aggregator);
        uint256 roundId = fed.openRound(BASE, "bafybase", DURATION, 2, 0);
        _commit(alice, roundId);
        _commit(bob, roundId);
        vm.warp(START + DURATION + 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationTooFewUpdates.selector, roundId, uint32(1), uint32(2))
        );
        _finalize(roundId, keccak256("m"), 1);
    }

    function test_finalizeRejectsInvalidResult() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        vm.warp(START + DURATION + 1);
        bytes4 invalid = IFederation.FederationInvalidResult.selector;
        vm.startPrank(aggregator);
        _expectRevert(_invalid(invalid, "modelDigest"));
        fed.finalizeRound(roundId, bytes32(0), "m", BASE, BASE, BASE, "e", 1);
        _expectRevert(_invalid(invalid, "modelCid"));
        fed.finalizeRound(roundId, BASE, "", BASE, BASE, BASE, "e", 1);
        _expectRevert(_invalid(invalid, "merkleRoot"));
        fed.finalizeRound(roundId, BASE, "m", bytes32(0), BASE, BASE, "e", 1);
        _expectRevert(_invalid(invalid, "aggregationDigest"));
        fed.finalizeRound(roundId, BASE, "m", BASE, bytes32(0), BASE, "e", 1);
        _expectRevert(_invalid(invalid, "evidenceDigest"));
        fed.finalizeRound(roundId, BASE, "m", BASE, BASE, bytes32(0), "e", 1);
        _expectRevert(_invalid(invalid, "evidenceCid"));
        fed.finalizeRound(roundId, BASE, "m", BASE, BASE, BASE, "", 1);
        _expectRevert(_invalid(invalid, "modelDigest"));
        fed.finalizeRound(roundId, bytes32(0), "", bytes32(0), bytes32(0), bytes32(0), "", 1);
        vm.stopPrank();
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Open), "status");
    }

    function test_finalizeUnknownRoundReverts() public {
        _expectRevert(abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, 7));
        _finalize(7, keccak256("m"), 1);
    }

    function test_closeKeepsModelAndEmits() public {
        uint256 roundId = _open();
        _commit(alice, roundId);
        vm.warp(START + DURATION + 1);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundClosed(roundId, aggregator, 1, "below minimum");
        vm.prank(aggregator);
        fed.closeRound(roundId, "below minimum");
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Closed), "status");
        _eq(fed.currentModelDigest(), bytes32(0), "currentModelDigest");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotOpen.selector, roundId, IFederation.RoundStatus.Closed)
        );
        vm.prank(aggregator);
        fed.closeRound(roundId, "again");
        _eq(_open(), 2, "next round id");
    }

    // ------------------------------------------------------------ commit-reveal rounds

    uint64 internal constant REVEAL = 300;
    bytes32 internal constant SALT = keccak256("alice's secret");

    function _openCommitReveal() internal returns (uint256 roundId) {
        vm.prank(aggregator);
        roundId = fed.openRound(BASE, "bafybase", DURATION, 1, REVEAL);
    }

    function _digestOf(address who) internal pure returns (bytes32) {
        return keccak256(abi.encode("update", who));
    }

    function _sealOf(uint256 roundId, address who, bytes32 salt) internal pure returns (bytes32) {
        return keccak256(abi.encode(roundId, who, _digestOf(who), keccak256(bytes(CID)), uint64(100), META, salt));
    }

    function _sealUp(address who, uint256 roundId) internal {
        vm.prank(who);
        fed.sealUpdate(roundId, _sealOf(roundId, who, keccak256(abi.encode(SALT, who))));
    }

    function _reveal(address who, uint256 roundId) internal {
        vm.prank(who);
        fed.revealUpdate(roundId, _digestOf(who), CID, 100, META, keccak256(abi.encode(SALT, who)));
    }

    function test_commitRevealRoundRecordsAndEmits() public {
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.RoundOpened(
            1, aggregator, BASE, "bafybase", uint64(START + DURATION), 1, 1, uint64(START + DURATION + REVEAL)
        );
        uint256 roundId = _openCommitReveal();
        Federation.RoundInfo memory r = fed.getRound(roundId);
        _true(r.commitReveal, "commitReveal");
        _eq(r.revealDeadline, START + DURATION + REVEAL, "revealDeadline");
        _eq(r.sealCount, 0, "sealCount");
        Federation.RoundInfo memory plain = fed.getRound(0);
        _true(!plain.commitReveal && plain.revealDeadline == 0, "a round never opened has no reveal phase");
    }

    function test_commitUpdateRefusedInCommitRevealRound() public {
        uint256 roundId = _openCommitReveal();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationCommitRevealRound.selector, roundId));
        _commit(alice, roundId);
    }

    function test_sealAndRevealRefusedInPlainRound() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotCommitRevealRound.selector, roundId));
        _sealUp(alice, roundId);
        vm.warp(START + DURATION + 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotCommitRevealRound.selector, roundId));
        _reveal(alice, roundId);
    }

    function test_sealStoresAndEmitsWithoutShowingTheUpdate() public {
        uint256 roundId = _openCommitReveal();
        bytes32 seal = _sealOf(roundId, alice, keccak256(abi.encode(SALT, alice)));
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UpdateSealed(roundId, alice, seal);
        _sealUp(alice, roundId);
        _eq(fed.sealOf(roundId, alice), seal, "sealOf");
        _eq(fed.getRound(roundId).sealCount, 1, "sealCount");
        _eq(fed.getRound(roundId).commitCount, 0, "commitCount: nothing revealed");
        (, uint64 last,,,) = fed.participant(alice);
        _eq(last, roundId, "lastCommittedRound");
    }

    function test_sealRefusals() public {
        uint256 roundId = _openCommitReveal();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationInvalidCommitment.selector, "seal"));
        vm.prank(alice);
        fed.sealUpdate(roundId, bytes32(0));
        _sealUp(alice, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, alice));
        _sealUp(alice, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, outsider));
        _sealUp(outsider, roundId);
        vm.warp(START + DURATION + 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitTooLate.selector, roundId, uint64(START + DURATION))
        );
        _sealUp(bob, roundId);
    }

    function test_revealBeforeTheCommitPhaseEndsReverts() public {
        uint256 roundId = _openCommitReveal();
        _sealUp(alice, roundId);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, uint64(START + DURATION))
        );
        _reveal(alice, roundId);
    }

    /// Once every eligible participant sealed, the commit phase is over at once and reveals may start.
    function test_revealRightAfterEveryoneSealed() public {
        uint256 roundId = _openCommitReveal();
        _sealUp(alice, roundId);
        _sealUp(bob, roundId);
        _true(!fed.commitPhaseOver(roundId), "carol has not sealed");
        _sealUp(carol, roundId);
        _true(fed.commitPhaseOver(roundId), "everyone sealed");
        _true(!fed.revealPhaseOver(roundId), "nothing revealed");
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UpdateCommitted(roundId, alice, _digestOf(alice), CID, 100, META);
        _reveal(alice, roundId);
        _eq(fed.sealOf(roundId, alice), bytes32(0), "the seal is spent");
        _eq(fed.getRound(roundId).commitCount, 1, "commitCount counts reveals");
    }

    function test_revealRefusals() public {
        uint256 roundId = _openCommitReveal();
        _sealUp(alice, roundId);
        vm.prank(bob);
        fed.sealUpdate(roundId, _sealOf(roundId, bob, keccak256(abi.encode(SALT, bob))));
        vm.warp(START + DURATION + 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotSealed.selector, roundId, carol));
        _reveal(carol, roundId);
        bytes32 seal = fed.sealOf(roundId, alice);
        bytes32 guessed = _sealOf(roundId, alice, keccak256("a guess"));
        _expectRevert(abi.encodeWithSelector(IFederation.FederationSealMismatch.selector, roundId, alice, seal, guessed));
        vm.prank(alice);
        fed.revealUpdate(roundId, _digestOf(alice), CID, 100, META, keccak256("a guess"));
        _expectRevert(abi.encodeWithSelector(IFederation.FederationInvalidCommitment.selector, "updateDigest"));
        vm.prank(alice);
        fed.revealUpdate(roundId, bytes32(0), CID, 100, META, keccak256(abi.encode(SALT, alice)));
        _expectRevert(abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, alice, SAMPLES + 1, SAMPLES));
        vm.prank(alice);
        fed.revealUpdate(roundId, _digestOf(alice), CID, SAMPLES + 1, META, keccak256(abi.encode(SALT, alice)));
        _reveal(alice, roundId);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, alice));
        _reveal(alice, roundId);
        vm.warp(START + DURATION + REVEAL + 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRevealTooLate.selector, roundId, uint64(START + DURATION + REVEAL))
        );
        _reveal(bob, roundId);
    }

    /// A reveal whose values differ from the sealed ones in any field is refused.
    function testFuzz_revealOnlyWhatWasSealed(bytes32 digest, uint64 samples, bytes32 meta, bytes32 salt) public {
        samples = uint64(_bound(samples, 1, SAMPLES));
        vm.assume(digest != bytes32(0));
        uint256 roundId = _openCommitReveal();
        bytes32 seal = _sealOf(roundId, alice, SALT);
        vm.prank(alice);
        fed.sealUpdate(roundId, seal);
        vm.warp(START + DURATION + 1);
        bool same = digest == _digestOf(alice) && samples == 100 && meta == META && salt == SALT;
        if (!same) {
            bytes32 revealed = keccak256(abi.encode(roundId, alice, digest, keccak256(bytes(CID)), samples, meta, salt));
            _expectRevert(abi.encodeWithSelector(IFederation.FederationSealMismatch.selector, roundId, alice, seal, revealed));
        }
        vm.prank(alice);
        fed.revealUpdate(roundId, digest, CID, samples, meta, salt);
        _eq(fed.getRound(roundId).commitCount, same ? 1 : 0, "commitCount");
    }

    /// The round ends after its reveal phase: once every seal was revealed, or once the reveal deadline passed.
    function test_finalizeWaitsForTheRevealPhase() public {
        uint256 roundId = _openCommitReveal();
        _sealUp(alice, roundId);
        _sealUp(bob, roundId);
        vm.warp(START + DURATION + 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRevealPhaseActive.selector, roundId, uint64(START + DURATION + REVEAL))
        );
        _finalize(roundId, keccak256("m"), 0);
        _reveal(alice, roundId);
        _true(!fed.revealPhaseOver(roundId), "bob has not revealed");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRevealPhaseActive.selector, roundId, uint64(START + DURATION + REVEAL))
        );
        vm.prank(aggregator);
        fed.closeRound(roundId, "too early");
        _reveal(bob, roundId);
        _true(fed.revealPhaseOver(roundId), "every seal revealed");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationInvalidIncludedCount.selector, uint32(3), uint32(2)));
        _finalize(roundId, keccak256("m"), 3);
        _finalize(roundId, keccak256("m"), 2);
        _eq(uint256(fed.getRound(roundId).status), uint256(IFederation.RoundStatus.Finalized), "status");
    }

    function test_unrevealedSealsDoNotHoldTheRoundPastTheRevealDeadline() public {
        uint256 roundId = _openCommitReveal();
        _sealUp(alice, roundId);
        _sealUp(bob, roundId);
        vm.warp(START + DURATION + 1);
        _reveal(alice, roundId);
        vm.warp(START + DURATION + REVEAL);
        _true(!fed.revealPhaseOver(roundId), "the reveal deadline is inclusive");
        vm.warp(START + DURATION + REVEAL + 1);
        _true(fed.revealPhaseOver(roundId), "past the reveal deadline");
        _finalize(roundId, keccak256("m"), 1);
    }

    function test_revealWindowIsBoundedByTheTask() public {
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRevealWindowTooLong.selector, uint256(MAX_WINDOW) + 1, MAX_WINDOW)
        );
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", DURATION, 1, MAX_WINDOW + 1);
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyconfig2", type(uint64).max);
        _expectRevert(_invalidRound("revealDuration", type(uint64).max));
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", DURATION, 1, type(uint64).max);
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", DURATION, 1, MAX_WINDOW);
        _eq(fed.getRound(1).revealDeadline, START + DURATION + MAX_WINDOW, "the maximum itself is allowed");
    }

    /// A revealed commitment is an ordinary commitment: its Merkle leaf and inclusion proof work unchanged.
    function test_revealedCommitmentIsAMerkleLeafAsUsual() public {
        uint256 roundId = _openCommitReveal();
        _sealUp(alice, roundId);
        vm.warp(START + DURATION + 1);
        _reveal(alice, roundId);
        bytes32 leaf = _commitmentLeaf(roundId, alice, _digestOf(alice), CID, 100, META);
        vm.prank(aggregator);
        fed.finalizeRound(roundId, keccak256("m"), "bafymodel", leaf, keccak256("agg"), keccak256("ev"), "bafyev", 1);
        _attestIncluded(alice, roundId, _digestOf(alice), 100, META, new bytes32[](0));
        _eq(fed.attestationOf(roundId, alice), 1, "the revealed update is included");
    }

    /// @dev `who` attests the finalised round (its model: keccak256("m")) positively with its commitment and proof
    /// (reverts unless included).
    function _attestIncluded(
        address who,
        uint256 roundId,
        bytes32 digest,
        uint64 samples,
        bytes32 meta,
        bytes32[] memory proof
    ) internal {
        IFederation.Inclusion memory inclusion = IFederation.Inclusion(digest, keccak256(bytes(CID)), samples, meta, proof);
        vm.prank(who);
        fed.attestRound(roundId, keccak256("m"), true, bytes32(0), "", inclusion);
    }

    // ------------------------------------------------------------ Merkle leaves and proofs

    /// The contract checks inclusion (in `attestRound`) against the leaf formula of `_commitmentLeaf`.
    function test_inclusionIsCheckedAgainstTheFinalizedRoot() public {
        uint256 roundId = _open();
        bytes32 a = _commitmentLeaf(roundId, alice, keccak256("a"), CID, 1, bytes32(0));
        bytes32 b = _commitmentLeaf(roundId, bob, keccak256("b"), CID, 2, bytes32(0));
        bytes32 c = _commitmentLeaf(roundId, carol, keccak256("c"), CID, 3, bytes32(0));
        bytes32 ab = _pair(a, b);
        bytes32 root = _pair(ab, c);
        _commit(alice, roundId);
        _commit(bob, roundId);
        _commit(carol, roundId);
        vm.prank(aggregator);
        fed.finalizeRound(roundId, keccak256("m"), "bafymodel", root, keccak256("agg"), keccak256("ev"), "bafyev", 3);
        bytes32[] memory proofA = new bytes32[](2);
        proofA[0] = b;
        proofA[1] = c;
        bytes32[] memory proofC = new bytes32[](1);
        proofC[0] = ab;
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotIncluded.selector, roundId, bob));
        _attestIncluded(bob, roundId, keccak256("b"), 2, bytes32(0), proofA);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotIncluded.selector, roundId, carol));
        _attestIncluded(carol, roundId, keccak256("c"), 4, bytes32(0), proofC);
        _attestIncluded(alice, roundId, keccak256("a"), 1, bytes32(0), proofA);
        _attestIncluded(carol, roundId, keccak256("c"), 3, bytes32(0), proofC);
        (uint32 ok,) = fed.attestationCounts(roundId);
        _eq(ok, 2, "a and c included");
    }

    function _pair(bytes32 x, bytes32 y) private pure returns (bytes32) {
        return x < y ? keccak256(abi.encodePacked(x, y)) : keccak256(abi.encodePacked(y, x));
    }
}

/// @notice A participant contract that reports the gas its commit call used.
contract CommitProbe {
    /// @notice Commits and returns the gas the call consumed.
    /// @param fed The federation.
    /// @param roundId The round.
    /// @param digest The update digest.
    /// @param cid The update CID.
    /// @return used Gas used by the commitUpdate call.
    function commit(Federation fed, uint256 roundId, bytes32 digest, string calldata cid) external returns (uint256 used) {
        uint256 before = gasleft();
        fed.commitUpdate(roundId, digest, cid, 100, bytes32(uint256(1)));
        used = before - gasleft();
    }
}

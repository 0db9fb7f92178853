// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "forge-std/Vm.sol";
import {Federation} from "../Federation.sol";
import {IFederation} from "../IFederation.sol";
import {FederationFixture} from "./Federation.t.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice The log-recording cheatcodes, which forge-std 1.1.2's `Vm` does not declare.
interface VmLogs {
    /// @notice A recorded log.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    /// @notice Starts recording the logs emitted.
    function recordLogs() external;

    /// @notice The logs recorded since `recordLogs`, which it forgets.
    /// @return The logs.
    function getRecordedLogs() external returns (Log[] memory);
}

/// @notice Private tasks and rounds: the privacy policy, the epsilon ledger and every refusal of a privacy claim.
contract FederationPrivacyTest is FederationFixture {
    bytes32 internal constant POLICY = keccak256("privacy policy");
    bytes32 internal constant ACCOUNTANT = keccak256("accountant inputs");
    uint64 internal constant BUDGET = 3_000_000; // epsilon 3
    VmLogs internal constant logs = VmLogs(address(vm));

    function setUp() public override {
        super.setUp();
        vm.prank(admin);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "bafyprivate", MAX_WINDOW, POLICY, BUDGET);
    }

    function _commitPrivate(address who, uint256 roundId, uint64 claimed) internal {
        vm.prank(who);
        fed.commitPrivateUpdate(roundId, keccak256(abi.encode(who, roundId)), CID, 100, META, claimed, ACCOUNTANT);
    }

    function _budgetExceeded(address who, uint64 spent, uint64 claimed) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IFederation.FederationPrivacyBudgetExceeded.selector, who, spent, claimed, BUDGET);
    }

    /// @dev The next round, finalised right away with `alice`'s private commitment claiming `claimed`.
    function _privateRound(uint64 claimed) internal returns (uint256 roundId) {
        roundId = _open();
        _commitPrivate(alice, roundId, claimed);
        vm.warp(block.timestamp + DURATION + 1);
        _finalize(roundId, keccak256(abi.encode("model", roundId)), 1);
    }

    // ------------------------------------------------------------ the policy

    function test_configurePrivateTaskStoresPolicyAndEmits() public {
        bytes32 policy = keccak256("policy 2");
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.TaskConfigured(3, admin, SPEC, STRATEGY, SCHEMA, "bafyprivate2", 3600);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.PrivacyPolicySet(3, admin, policy, 8_000_000);
        logs.recordLogs(); // after the expected events, which the test contract emits itself
        vm.prank(admin);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "bafyprivate2", 3600, policy, 8_000_000);
        _eq(logs.getRecordedLogs().length, 2, "TaskConfigured and PrivacyPolicySet, nothing else");
        (uint32 version,,,, uint64 maxWindow) = fed.task();
        _eq(version, 3, "version");
        _eq(maxWindow, 3600, "maxCommitDuration");
        (bytes32 digest, uint64 budget) = fed.privacyPolicy();
        _eq(digest, policy, "policyDigest");
        _eq(budget, 8_000_000, "epsilonBudget");
    }

    function test_configurePrivateTaskRejectsInvalidFields() public {
        bytes4 invalid = IFederation.FederationInvalidTask.selector;
        vm.startPrank(admin);
        _expectRevert(_invalid(invalid, "modelSpecDigest"));
        fed.configurePrivateTask(bytes32(0), STRATEGY, SCHEMA, "c", MAX_WINDOW, POLICY, BUDGET);
        _expectRevert(_invalid(invalid, "strategyDigest"));
        fed.configurePrivateTask(SPEC, bytes32(0), SCHEMA, "c", MAX_WINDOW, POLICY, BUDGET);
        _expectRevert(_invalid(invalid, "dataSchemaDigest"));
        fed.configurePrivateTask(SPEC, STRATEGY, bytes32(0), "c", MAX_WINDOW, POLICY, BUDGET);
        _expectRevert(_invalid(invalid, "configCid"));
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "", MAX_WINDOW, POLICY, BUDGET);
        _expectRevert(_invalid(invalid, "maxCommitDuration"));
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "c", 0, POLICY, BUDGET);
        _expectRevert(_invalid(invalid, "privacyPolicyDigest"));
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "c", MAX_WINDOW, bytes32(0), BUDGET);
        _expectRevert(_invalid(invalid, "epsilonBudget"));
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "c", MAX_WINDOW, POLICY, 0);
        _expectRevert(_invalid(invalid, "maxCommitDuration"));
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "c", 0, bytes32(0), 0);
        vm.stopPrank();
        (uint32 version,,,,) = fed.task();
        _eq(version, 2, "version unchanged");
        (bytes32 digest, uint64 budget) = fed.privacyPolicy();
        _eq(digest, POLICY, "policyDigest unchanged");
        _eq(budget, BUDGET, "epsilonBudget unchanged");
    }

    function testFuzz_onlyAdminConfiguresPrivateTask(address caller) public {
        vm.assume(caller != admin);
        _expectRevert(_unauthorised(caller, fed.ADMIN_ROLE()));
        vm.prank(caller);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "c", MAX_WINDOW, POLICY, BUDGET);
    }

    function test_configurePrivateTaskRefusedWhileRoundOpen() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, roundId));
        vm.prank(admin);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "c", MAX_WINDOW, POLICY, BUDGET);
    }

    function test_plainTaskAfterPrivateOneClearsTheBudget() public {
        logs.recordLogs();
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyplain", MAX_WINDOW);
        VmLogs.Log[] memory recorded = logs.getRecordedLogs();
        _eq(recorded.length, 1, "one event");
        _eq(recorded[0].topics[0], IFederation.TaskConfigured.selector, "TaskConfigured, no PrivacyPolicySet");
        (bytes32 digest, uint64 budget) = fed.privacyPolicy();
        _eq(digest, bytes32(0), "policyDigest cleared");
        _eq(budget, 0, "epsilonBudget cleared");
        uint256 roundId = _open();
        _true(!fed.getRound(roundId).privateRound, "the round of a plain task is not private");
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotPrivateRound.selector, roundId));
        _commitPrivate(alice, roundId, 1);
        _commit(alice, roundId);
        _eq(fed.getRound(roundId).commitCount, 1, "a plain commit is recorded");
    }

    // ------------------------------------------------------------ private rounds

    function test_roundOfAPrivateTaskIsPrivate() public {
        uint256 roundId = _open();
        _true(fed.getRound(roundId).privateRound, "privateRound");
        Federation.RoundInfo memory r = fed.getRound(roundId);
        _true(r.privateRound && !r.commitReveal, "privateRound, not commit-reveal");
        _eq(r.taskVersion, 2, "taskVersion");
        _true(!fed.getRound(roundId + 1).privateRound, "a round never opened is not private");
    }

    function test_privateRoundCannotBeCommitReveal() public {
        _expectRevert(_invalidRound("revealDuration", 60));
        vm.prank(aggregator);
        fed.openRound(BASE, "bafybase", DURATION, 1, 60);
        _eq(fed.latestRoundId(), 0, "no round opened");
    }

    function test_plainCommitRefusedInPrivateRound() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationPrivacyClaimRequired.selector, roundId));
        _commit(alice, roundId);
        _eq(fed.getRound(roundId).commitCount, 0, "nothing recorded");
    }

    function test_commitPrivateUpdateRecordsAndEmits() public {
        uint256 roundId = _open();
        bytes32 digest = keccak256(abi.encode(alice, roundId));
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.UpdateCommitted(roundId, alice, digest, CID, 100, META);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.PrivacySpent(roundId, alice, 1_250_000, ACCOUNTANT);
        logs.recordLogs(); // after the expected events, which the test contract emits itself
        _commitPrivate(alice, roundId, 1_250_000);
        VmLogs.Log[] memory recorded = logs.getRecordedLogs();
        _eq(recorded.length, 2, "two events");
        _eq(recorded[0].topics[0], IFederation.UpdateCommitted.selector, "UpdateCommitted first");
        _eq(recorded[1].topics[0], IFederation.PrivacySpent.selector, "PrivacySpent second");
        _eq(fed.epsilonSpent(alice), 1_250_000, "epsilonSpent");
        _eq(fed.epsilonSpent(bob), 0, "others spent nothing");
        _eq(fed.getRound(roundId).commitCount, 1, "commitCount");
        (, uint64 last,,,) = fed.participant(alice);
        _eq(last, roundId, "lastCommittedRound");
    }

    function test_budgetExceededRevertsWithSpentClaimedAndBudget() public {
        _privateRound(2_000_000);
        uint256 roundId = _open();
        _expectRevert(_budgetExceeded(alice, 2_000_000, BUDGET + 1));
        _commitPrivate(alice, roundId, BUDGET + 1);
        _eq(fed.epsilonSpent(alice), 2_000_000, "epsilonSpent unchanged");
        _eq(fed.getRound(roundId).commitCount, 0, "nothing recorded");
        (, uint64 last,,,) = fed.participant(alice);
        _eq(last, roundId - 1, "lastCommittedRound unchanged");
    }

    function test_firstClaimPastTheBudgetReverts() public {
        uint256 roundId = _open();
        _expectRevert(_budgetExceeded(alice, 0, type(uint64).max));
        _commitPrivate(alice, roundId, type(uint64).max);
    }

    function test_claimOfExactlyTheBudgetIsAccepted() public {
        _privateRound(1_000_000);
        uint256 roundId = _open();
        _commitPrivate(alice, roundId, BUDGET);
        _eq(fed.epsilonSpent(alice), BUDGET, "the whole budget spent");
    }

    function test_decreasedClaimReverts() public {
        _privateRound(2_000_000);
        uint256 roundId = _open();
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationPrivacyClaimDecreased.selector, alice, 2_000_000, 1_999_999)
        );
        _commitPrivate(alice, roundId, 1_999_999);
        _eq(fed.epsilonSpent(alice), 2_000_000, "epsilonSpent unchanged");
        _commitPrivate(alice, roundId, 2_000_000); // an unchanged claim is not a decrease
        _eq(fed.getRound(roundId).commitCount, 1, "commitCount");
    }

    function testFuzz_claimAcceptedOnlyWithinTheBudgetAndNotDecreasing(uint64 first, uint64 second) public {
        first = uint64(_bound(first, 0, BUDGET));
        _privateRound(first);
        uint256 roundId = _open();
        bool ok = second >= first && second <= BUDGET;
        if (second < first) {
            _expectRevert(abi.encodeWithSelector(IFederation.FederationPrivacyClaimDecreased.selector, alice, first, second));
        } else if (second > BUDGET) {
            _expectRevert(_budgetExceeded(alice, first, second));
        }
        _commitPrivate(alice, roundId, second);
        _eq(fed.epsilonSpent(alice), ok ? second : first, "epsilonSpent");
        _eq(fed.getRound(roundId).commitCount, ok ? 1 : 0, "commitCount");
    }

    function test_zeroAccountantDigestReverts() public {
        uint256 roundId = _open();
        _expectRevert(_invalid(IFederation.FederationInvalidCommitment.selector, "accountantDigest"));
        vm.prank(alice);
        fed.commitPrivateUpdate(roundId, BASE, CID, 100, META, 1, bytes32(0));
        _eq(fed.getRound(roundId).commitCount, 0, "nothing recorded");
    }

    function test_commitPrivateUpdateRefusedInPlainRoundOfAnEarlierTask() public {
        vm.prank(admin);
        fed.configureTask(SPEC, STRATEGY, SCHEMA, "bafyplain", MAX_WINDOW);
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotPrivateRound.selector, roundId));
        _commitPrivate(alice, roundId, 1);
        _eq(fed.epsilonSpent(alice), 0, "nothing spent");
    }

    function test_spentCarriesOverToTheNextPrivateTask() public {
        _privateRound(2_500_000);
        vm.prank(admin);
        fed.configurePrivateTask(SPEC, STRATEGY, SCHEMA, "bafyprivate3", MAX_WINDOW, POLICY, BUDGET);
        uint256 roundId = _open();
        _expectRevert(_budgetExceeded(alice, 2_500_000, 3_500_000));
        _commitPrivate(alice, roundId, 3_500_000);
        _eq(fed.epsilonSpent(alice), 2_500_000, "a participant's privacy loss is cumulative across task versions");
    }

    function test_commitPrivateUpdateMakesTheChecksOfCommitUpdate() public {
        uint256 roundId = _open();
        _expectRevert(abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, outsider));
        _commitPrivate(outsider, roundId, 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, roundId + 1));
        _commitPrivate(alice, roundId + 1, 1);
        bytes4 invalid = IFederation.FederationInvalidCommitment.selector;
        vm.startPrank(alice);
        _expectRevert(_invalid(invalid, "updateDigest"));
        fed.commitPrivateUpdate(roundId, bytes32(0), CID, 1, META, 1, ACCOUNTANT);
        _expectRevert(_invalid(invalid, "cid"));
        fed.commitPrivateUpdate(roundId, BASE, "", 1, META, 1, ACCOUNTANT);
        _expectRevert(_invalid(invalid, "numSamples"));
        fed.commitPrivateUpdate(roundId, BASE, CID, 0, META, 1, ACCOUNTANT);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, alice, SAMPLES + 1, SAMPLES));
        fed.commitPrivateUpdate(roundId, BASE, CID, SAMPLES + 1, META, 1, ACCOUNTANT);
        vm.stopPrank();
        _commitPrivate(alice, roundId, 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, alice));
        _commitPrivate(alice, roundId, 2);
        vm.warp(START + DURATION + 1);
        _expectRevert(abi.encodeWithSelector(IFederation.FederationCommitTooLate.selector, roundId, START + DURATION));
        _commitPrivate(bob, roundId, 1);
        vm.prank(admin);
        fed.remove(carol, "left");
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationNotActive.selector, carol, IFederation.ParticipantStatus.Removed)
        );
        _commitPrivate(carol, roundId, 1);
        _finalize(roundId, keccak256("model"), 1);
        _expectRevert(
            abi.encodeWithSelector(IFederation.FederationRoundNotOpen.selector, roundId, IFederation.RoundStatus.Finalized)
        );
        _commitPrivate(bob, roundId, 1);
        _eq(fed.epsilonSpent(alice), 1, "only the accepted claim recorded");
        _eq(fed.epsilonSpent(bob), 0, "bob's refused claims recorded nothing");
    }
}

/// @notice Random private commitments, round changes and task reconfigurations, checked against a model of the
/// epsilon ledger: each claim is accepted exactly when it neither decreases the participant's recorded epsilon nor
/// exceeds the budget in force, and is otherwise refused with the error (and arguments) the model predicts.
contract PrivacyHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    uint64 internal constant MAX_WINDOW = 1 days;
    bytes32 internal constant ACCOUNTANT = keccak256("accountant inputs");

    Federation public immutable fed;
    address public immutable admin;
    address public immutable aggregator;
    address[3] internal _members = [address(0x2001), address(0x2002), address(0x2003)];

    // ---- the model
    mapping(address => uint64) public spent;
    uint64 public budget;
    uint256 public roundId;
    bool public roundPrivate;
    mapping(uint256 => mapping(address => bool)) public committed;
    uint256 public commits;

    // ---- must stay zero
    uint256 public mismatches;
    uint256 public overspent;

    constructor(Federation fed_, address admin_, address aggregator_) {
        fed = fed_;
        admin = admin_;
        aggregator = aggregator_;
    }

    /// @dev Registers and admits the members and configures a private task (budget 5).
    function bootstrap() external {
        for (uint256 i = 0; i < _members.length; ++i) {
            vm.prank(_members[i]);
            fed.register("Org", "health", "", 1000);
            vm.prank(admin);
            fed.admit(_members[i]);
        }
        _configure(5_000_000);
    }

    /// @dev One random action: a private (or plain) commit, the next round, or a new task version.
    function step(uint256 seed, uint64 claim) external {
        uint256 action = seed % 8;
        if (roundId == 0 || action == 6) return _nextRound();
        if (action == 7) return _reconfigure(seed / 8);
        address who = _members[(seed / 8) % _members.length];
        uint256 mode = (seed / 64) % 4; // a decrease, a claim past the budget, or (twice as often) a valid one
        uint64 base = spent[who];
        if (mode == 0) {
            claim = base == 0 ? 0 : uint64(claim % base);
        } else if (mode == 1) {
            claim = uint64(uint256(budget) + 1 + claim % 1_000_000);
        } else {
            claim = budget > base ? uint64(base + claim % (uint256(budget - base) + 1)) : base;
        }
        _commit(who, claim);
    }

    function _commit(address who, uint64 claim) internal {
        bytes memory expected;
        if (!roundPrivate) {
            expected = abi.encodeWithSelector(IFederation.FederationNotPrivateRound.selector, roundId);
        } else if (committed[roundId][who]) {
            expected = abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, who);
        } else if (claim < spent[who]) {
            expected = abi.encodeWithSelector(IFederation.FederationPrivacyClaimDecreased.selector, who, spent[who], claim);
        } else if (claim > budget) {
            expected = abi.encodeWithSelector(
                IFederation.FederationPrivacyBudgetExceeded.selector, who, spent[who], claim, budget
            );
        }
        vm.prank(who);
        try fed.commitPrivateUpdate(roundId, keccak256(abi.encode(who, roundId)), "bafyu", 1, bytes32(0), claim, ACCOUNTANT) {
            if (expected.length != 0) ++mismatches;
            if (claim > budget || claim < spent[who]) ++overspent;
            spent[who] = claim;
            committed[roundId][who] = true;
            ++commits;
        } catch (bytes memory reason) {
            if (keccak256(reason) != keccak256(expected) || expected.length == 0) ++mismatches;
        }
        if (fed.epsilonSpent(who) != spent[who]) ++mismatches;
    }

    function _nextRound() internal {
        _endRound();
        _openRound();
    }

    function _reconfigure(uint256 seed) internal {
        _endRound(); // configuration waits for the open round to end
        _configure(seed % 3 == 0 ? 0 : uint64(1_000_000 + seed % 6_000_000));
        _openRound();
    }

    function _endRound() internal {
        if (roundId == 0) return;
        vm.warp(block.timestamp + 61);
        vm.prank(aggregator);
        if (commits > 0) {
            fed.finalizeRound(roundId, keccak256(abi.encode("model", roundId)), "m", bytes32(uint256(1)),
                bytes32(uint256(1)), bytes32(uint256(1)), "e", 1);
        } else {
            fed.closeRound(roundId, "empty");
        }
    }

    function _openRound() internal {
        bytes32 current = fed.currentModelDigest();
        vm.prank(aggregator);
        roundId = fed.openRound(current == bytes32(0) ? keccak256("base") : current, "b", 60, 1, 0);
        roundPrivate = budget != 0;
        commits = 0;
        if (fed.getRound(roundId).privateRound != roundPrivate) ++mismatches;
    }

    function _configure(uint64 newBudget) internal {
        vm.prank(admin);
        if (newBudget == 0) {
            fed.configureTask(keccak256("s"), keccak256("t"), keccak256("d"), "c", MAX_WINDOW);
        } else {
            fed.configurePrivateTask(keccak256("s"), keccak256("t"), keccak256("d"), "c", MAX_WINDOW, keccak256("p"),
                newBudget);
        }
        budget = newBudget;
    }
}

/// @notice The epsilon ledger's invariants under random sequences of private commitments and reconfigurations.
contract PrivacyInvariantTest is TestBase {
    Federation internal fed;
    PrivacyHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        fed = new Federation(address(0xA11CE), address(0xA66), new address[](0));
        handler = new PrivacyHandler(fed, address(0xA11CE), address(0xA66));
        handler.bootstrap();
        _targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](1);
        selectors[0] = PrivacyHandler.step.selector;
        _targetSelector(address(handler), selectors);
    }

    /// Every claim accepted or refused exactly as the model says, and the contract's epsilonSpent equals the model's.
    function invariant_privacyOutcomesMatchModel() public view {
        _eq(handler.mismatches(), 0, "mismatches");
    }

    /// No accepted claim exceeds the budget in force or lowers the participant's recorded epsilon (an epsilon
    /// recorded under an earlier, larger budget may stay above a later one: it then refuses every claim).
    function invariant_neverOverBudget() public view {
        _eq(handler.overspent(), 0, "overspent");
    }
}

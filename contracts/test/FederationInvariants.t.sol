// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {Vm} from "forge-std/Vm.sol";
import {Federation} from "../Federation.sol";
import {IFederation} from "../IFederation.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Drives the federation with random actions from random callers and checks every outcome
/// against an independent model of the state machine: each call must succeed exactly when the model
/// says it is allowed, and otherwise revert with the custom error the model predicts.
contract FederationHandler {
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);
    uint256 internal constant ACTORS = 5;

    Federation public immutable fed;
    address public immutable admin;
    address public immutable aggregator;
    address public constant OUTSIDER = address(0xBAD);

    // ---- the model
    mapping(address => IFederation.ParticipantStatus) public status;
    mapping(address => uint256) public lastCommit;
    mapping(address => uint64) public declared;
    uint32 public active;
    uint32 public taskVersion;
    uint64 public maxCommitDuration;
    uint256 public latest;
    mapping(uint256 => IFederation.RoundStatus) public roundStatus;
    mapping(uint256 => uint64) public deadline;
    mapping(uint256 => uint32) public commits;
    mapping(uint256 => uint32) public minUpdates;
    /// Who was active when each round opened (the only ones who can commit in it), and how many.
    mapping(uint256 => mapping(address => bool)) public eligibleIn;
    mapping(uint256 => uint32) public eligible;
    bytes32 public currentModel;

    // ---- safety counters (each must stay zero)
    uint256 public doubleCommits;
    uint256 public lateCommits;
    uint256 public earlyEnds;
    uint256 public cutOffs;
    uint256 public unauthorisedActions;
    uint256 public oversizedCommits;
    uint256 public overlongRounds;
    uint256 public mismatches;
    string public lastMismatch;

    // ---- coverage counters (to see the fuzzer reached the interesting states)
    uint256 public successfulCommits;
    uint256 public finalizedRounds;

    constructor(Federation fed_, address admin_, address aggregator_) {
        fed = fed_;
        admin = admin_;
        aggregator = aggregator_;
    }

    function actor(uint256 seed) public pure returns (address) {
        return address(uint160(0x1000 + seed % ACTORS));
    }

    /// @dev Three times in four the rightful caller; otherwise admin, aggregator, an outsider or a participant.
    function _caller(uint256 seed, address rightful) internal view returns (address) {
        if (seed % 4 != 0) return rightful;
        uint256 pick = (seed / 4) % 4;
        if (pick == 0) return admin;
        if (pick == 1) return aggregator;
        if (pick == 2) return OUTSIDER;
        return actor(seed / 16);
    }

    /// @dev True one time in eight: how often an action is given invalid input.
    function _rare(uint256 seed) internal pure returns (bool) {
        return seed % 8 == 0;
    }

    /// @notice A useful starting point: a configured task and three admitted participants.
    function bootstrap() external {
        this.configureTask(1, 1 + 8 + 64 * 900); // valid, with a 1,000 s maximum commit window
        for (uint256 i = 0; i < 3; ++i) {
            this.register(i, 1 + 8 + 64 * 99); // valid, declaring 100 samples
            this.admit(i, 1);
        }
    }

    // ------------------------------------------------------------ actions

    function register(uint256 actorSeed, uint256 invalidSeed) external {
        address who = actor(actorSeed);
        bool emptyOrg = _rare(invalidSeed);
        bool noSamples = _rare(invalidSeed / 8);
        uint64 samples = noSamples ? 0 : uint64(1 + (invalidSeed / 64) % 200);
        bytes memory expected;
        if (status[who] != IFederation.ParticipantStatus.None) {
            expected = abi.encodeWithSelector(IFederation.FederationAlreadyRegistered.selector, who);
        } else if (emptyOrg) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidRegistration.selector, "organisation");
        } else if (noSamples) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidRegistration.selector, "declaredSamples");
        }
        vm.prank(who);
        try fed.register(emptyOrg ? "" : "Org", "finance", hex"02", samples) {
            _check("register", "", expected);
            status[who] = IFederation.ParticipantStatus.Pending;
            declared[who] = samples;
        } catch (bytes memory reason) {
            _check("register", reason, expected);
        }
    }

    function admit(uint256 actorSeed, uint256 callerSeed) external {
        address who = actor(actorSeed);
        address caller = _caller(callerSeed, admin);
        bytes memory expected;
        if (caller != admin) {
            expected = _unauthorised(caller, fed.ADMIN_ROLE());
        } else if (roundStatus[latest] == IFederation.RoundStatus.Open) {
            expected = abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, latest);
        } else if (status[who] != IFederation.ParticipantStatus.Pending) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidStatus.selector, who, status[who]);
        }
        vm.prank(caller);
        try fed.admit(who) {
            _check("admit", "", expected);
            if (caller != admin) ++unauthorisedActions;
            status[who] = IFederation.ParticipantStatus.Active;
            ++active;
        } catch (bytes memory reason) {
            _check("admit", reason, expected);
        }
    }

    function remove(uint256 actorSeed, uint256 callerSeed) external {
        if (actorSeed % 4 != 0) return; // removals are rarer, or the federation empties quickly
        address who = actor(actorSeed / 4);
        address caller = _caller(callerSeed, admin);
        IFederation.ParticipantStatus s = status[who];
        bytes memory expected;
        if (caller != admin) {
            expected = _unauthorised(caller, fed.ADMIN_ROLE());
        } else if (s != IFederation.ParticipantStatus.Pending && s != IFederation.ParticipantStatus.Active) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidStatus.selector, who, s);
        }
        vm.prank(caller);
        try fed.remove(who, "fuzz") {
            _check("remove", "", expected);
            if (caller != admin) ++unauthorisedActions;
            if (s == IFederation.ParticipantStatus.Active) --active;
            status[who] = IFederation.ParticipantStatus.Removed;
        } catch (bytes memory reason) {
            _check("remove", reason, expected);
        }
    }

    function configureTask(uint256 callerSeed, uint256 invalidSeed) external {
        address caller = _caller(callerSeed, admin);
        bool zeroDigest = _rare(invalidSeed);
        bool zeroWindow = _rare(invalidSeed / 8);
        uint64 window = zeroWindow ? 0 : uint64(100 + (invalidSeed / 64) % 1000); // sometimes below openRound's durations
        bytes memory expected;
        if (caller != admin) {
            expected = _unauthorised(caller, fed.ADMIN_ROLE());
        } else if (roundStatus[latest] == IFederation.RoundStatus.Open) {
            expected = abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, latest);
        } else if (zeroDigest) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidTask.selector, "modelSpecDigest");
        } else if (zeroWindow) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidTask.selector, "maxCommitDuration");
        }
        vm.prank(caller);
        try fed.configureTask(
            zeroDigest ? bytes32(0) : keccak256("spec"), keccak256("strategy"), keccak256("schema"), "bafyconfig", window
        ) {
            _check("configureTask", "", expected);
            if (caller != admin) ++unauthorisedActions;
            ++taskVersion;
            maxCommitDuration = window;
        } catch (bytes memory reason) {
            _check("configureTask", reason, expected);
        }
    }

    function openRound(uint256 callerSeed, uint256 durationSeed, uint256 minimumSeed, uint256 baseSeed) external {
        address caller = _caller(callerSeed, aggregator);
        uint64 duration = _rare(durationSeed) ? 0 : uint64(1 + (durationSeed / 8) % 1000);
        uint32 minimum = _rare(minimumSeed) ? 0 : uint32(1 + (minimumSeed / 8) % 3);
        bool wrongBase = _rare(baseSeed);
        bytes32 base = wrongBase ? keccak256("some other model") : (currentModel == bytes32(0) ? keccak256("base") : currentModel);
        bytes memory expected;
        if (caller != aggregator) {
            expected = _unauthorised(caller, fed.AGGREGATOR_ROLE());
        } else if (taskVersion == 0) {
            expected = abi.encodeWithSelector(IFederation.FederationTaskNotConfigured.selector);
        } else if (roundStatus[latest] == IFederation.RoundStatus.Open) {
            expected = abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, latest);
        } else if (duration == 0) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidRound.selector, "commitDuration", 0);
        } else if (duration > maxCommitDuration) {
            expected = abi.encodeWithSelector(
                IFederation.FederationCommitWindowTooLong.selector, uint256(duration), maxCommitDuration
            );
        } else if (minimum == 0) {
            expected = abi.encodeWithSelector(IFederation.FederationInvalidRound.selector, "minUpdates", 0);
        } else if (currentModel != bytes32(0) && base != currentModel) {
            expected = abi.encodeWithSelector(IFederation.FederationBaseModelMismatch.selector, currentModel, base);
        }
        vm.prank(caller);
        try fed.openRound(base, "bafybase", duration, minimum) returns (uint256 roundId) {
            _check("openRound", "", expected);
            if (caller != aggregator) ++unauthorisedActions;
            if (duration > maxCommitDuration) ++overlongRounds;
            latest = roundId;
            roundStatus[roundId] = IFederation.RoundStatus.Open;
            deadline[roundId] = uint64(block.timestamp + duration);
            minUpdates[roundId] = minimum;
            for (uint256 i = 0; i < ACTORS; ++i) {
                if (status[actor(i)] == IFederation.ParticipantStatus.Active) {
                    eligibleIn[roundId][actor(i)] = true;
                    ++eligible[roundId];
                }
            }
        } catch (bytes memory reason) {
            _check("openRound", reason, expected);
        }
    }

    function commitUpdate(uint256 actorSeed, uint256 roundSeed, uint256 invalidSeed) external {
        address who = actor(actorSeed);
        bool invalid = _rare(invalidSeed);
        // mostly within the approved size (declared sizes are 1..200), sometimes above it
        uint64 samples = uint64(1 + (invalidSeed / 8) % 240);
        uint256 roundOffset = _rare(roundSeed) ? 1 + roundSeed / 8 : 1; // mostly the latest round
        uint256 back = roundOffset % 3; // the next (unknown) round, the latest, or the one before
        uint256 roundId = latest + 1 >= back ? latest + 1 - back : 0;
        bytes memory expected = _commitExpectation(who, roundId, invalid, samples);
        bool accepted = roundStatus[roundId] == IFederation.RoundStatus.Open && block.timestamp <= deadline[roundId];
        bool duplicate = lastCommit[who] == roundId;
        bool oversized = samples > declared[who];
        vm.prank(who);
        try fed.commitUpdate(
            roundId, invalid ? bytes32(0) : keccak256(abi.encode(who, roundId)), "bafyupdate", samples, bytes32(0)
        ) {
            _check("commitUpdate", "", expected);
            if (duplicate) ++doubleCommits;
            if (oversized) ++oversizedCommits;
            if (!accepted) ++lateCommits;
            lastCommit[who] = roundId;
            ++commits[roundId];
            ++successfulCommits;
        } catch (bytes memory reason) {
            _check("commitUpdate", reason, expected);
        }
    }

    /// @dev The revert data the model predicts for a commit (empty: it must succeed).
    function _commitExpectation(address who, uint256 roundId, bool invalid, uint64 samples)
        internal
        view
        returns (bytes memory)
    {
        IFederation.ParticipantStatus s = status[who];
        IFederation.RoundStatus r = roundStatus[roundId];
        if (s == IFederation.ParticipantStatus.None) {
            return abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, who);
        }
        if (s != IFederation.ParticipantStatus.Active) {
            return abi.encodeWithSelector(IFederation.FederationNotActive.selector, who, s);
        }
        if (r == IFederation.RoundStatus.None) {
            return abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, roundId);
        }
        if (r != IFederation.RoundStatus.Open) {
            return abi.encodeWithSelector(IFederation.FederationRoundNotOpen.selector, roundId, r);
        }
        if (block.timestamp > deadline[roundId]) {
            return abi.encodeWithSelector(IFederation.FederationCommitTooLate.selector, roundId, deadline[roundId]);
        }
        if (lastCommit[who] == roundId) {
            return abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, who);
        }
        if (invalid) {
            return abi.encodeWithSelector(IFederation.FederationInvalidCommitment.selector, "updateDigest");
        }
        if (samples > declared[who]) {
            return abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, who, samples, declared[who]);
        }
        return "";
    }

    function finalizeRound(uint256 callerSeed, uint256 includedSeed, uint256 invalidSeed) external {
        address caller = _caller(callerSeed, aggregator);
        uint256 roundId = latest;
        bool invalidResult = _rare(invalidSeed);
        uint256 invalidField = (invalidSeed / 8) % 6; // which result argument is zero or empty, in argument order
        string[6] memory fields =
            ["modelDigest", "modelCid", "merkleRoot", "aggregationDigest", "evidenceDigest", "evidenceCid"];
        uint32 included = _rare(includedSeed) ? uint32((includedSeed / 8) % (commits[roundId] + 2)) : commits[roundId];
        bytes memory expected = _endExpectation(caller, roundId);
        if (expected.length == 0) {
            if (included > commits[roundId]) {
                expected = abi.encodeWithSelector(
                    IFederation.FederationInvalidIncludedCount.selector, included, commits[roundId]
                );
            } else if (included < minUpdates[roundId]) {
                expected = abi.encodeWithSelector(
                    IFederation.FederationTooFewUpdates.selector, roundId, included, minUpdates[roundId]
                );
            } else if (invalidResult) {
                expected = abi.encodeWithSelector(IFederation.FederationInvalidResult.selector, fields[invalidField]);
            }
        }
        bytes32 model = keccak256(abi.encode("model", roundId));
        bool early = !phaseOver(roundId);
        uint256 cut = _cutOff(roundId);
        vm.prank(caller);
        try fed.finalizeRound(
            roundId,
            invalidResult && invalidField == 0 ? bytes32(0) : model,
            invalidResult && invalidField == 1 ? "" : "bafymodel",
            invalidResult && invalidField == 2 ? bytes32(0) : keccak256("root"),
            invalidResult && invalidField == 3 ? bytes32(0) : keccak256("aggregation"),
            invalidResult && invalidField == 4 ? bytes32(0) : keccak256("evidence"),
            invalidResult && invalidField == 5 ? "" : "bafyevidence",
            included
        ) {
            _check("finalizeRound", "", expected);
            if (caller != aggregator) ++unauthorisedActions;
            if (early) ++earlyEnds;
            cutOffs += cut;
            roundStatus[roundId] = IFederation.RoundStatus.Finalized;
            currentModel = model;
            ++finalizedRounds;
        } catch (bytes memory reason) {
            _check("finalizeRound", reason, expected);
        }
    }

    function closeRound(uint256 callerSeed, uint256 skipSeed) external {
        if (skipSeed % 4 != 0) return; // closing is rarer than finalising
        address caller = _caller(callerSeed, aggregator);
        uint256 roundId = latest;
        bytes memory expected = _endExpectation(caller, roundId);
        bool early = !phaseOver(roundId);
        uint256 cut = _cutOff(roundId);
        vm.prank(caller);
        try fed.closeRound(roundId, "fuzz") {
            _check("closeRound", "", expected);
            if (caller != aggregator) ++unauthorisedActions;
            if (early) ++earlyEnds;
            cutOffs += cut;
            roundStatus[roundId] = IFederation.RoundStatus.Closed;
        } catch (bytes memory reason) {
            _check("closeRound", reason, expected);
        }
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + seconds_ % 700);
    }

    // ------------------------------------------------------------ helpers

    /// @notice The model's answer to "is the commit phase of this open round over": the deadline has
    /// passed, or at least as many commits as participants were active when the round opened.
    function phaseOver(uint256 roundId) public view returns (bool) {
        return block.timestamp > deadline[roundId] || commits[roundId] >= eligible[roundId];
    }

    /// @dev Before the deadline: how many participants eligible in the round and still active have not
    /// committed in it (each would be cut off if the round ended now).
    function _cutOff(uint256 roundId) internal view returns (uint256 count) {
        if (block.timestamp > deadline[roundId]) return 0;
        for (uint256 i = 0; i < ACTORS; ++i) {
            address who = actor(i);
            if (eligibleIn[roundId][who] && status[who] == IFederation.ParticipantStatus.Active && lastCommit[who] != roundId) {
                ++count;
            }
        }
    }

    function _endExpectation(address caller, uint256 roundId) internal view returns (bytes memory) {
        IFederation.RoundStatus r = roundStatus[roundId];
        if (caller != aggregator) return _unauthorised(caller, fed.AGGREGATOR_ROLE());
        if (r == IFederation.RoundStatus.None) {
            return abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, roundId);
        }
        if (r != IFederation.RoundStatus.Open) {
            return abi.encodeWithSelector(IFederation.FederationRoundNotOpen.selector, roundId, r);
        }
        if (!phaseOver(roundId)) {
            return abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, deadline[roundId]);
        }
        return "";
    }

    function _unauthorised(address caller, bytes32 role) internal pure returns (bytes memory) {
        return abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, caller, role);
    }

    function _check(string memory action, bytes memory got, bytes memory expected) internal {
        if (keccak256(got) != keccak256(expected)) {
            ++mismatches;
            lastMismatch = action;
        }
    }
}

/// @notice Invariants of the participant and round state machine under random action sequences.
contract FederationInvariantTest is TestBase {
    Federation internal fed;
    FederationHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        address admin = address(0xA11CE);
        address aggregator = address(0xA66);
        fed = new Federation(admin, aggregator);
        handler = new FederationHandler(fed, admin, aggregator);
        handler.bootstrap();
        _targetContract(address(handler));
    }

    /// Every call succeeded or reverted exactly as the model predicted (error selector and arguments).
    function invariant_outcomesMatchModel() public view {
        _eq(handler.mismatches(), 0, string.concat("outcome differs from the model in ", handler.lastMismatch()));
    }

    function invariant_noDoubleCommit() public view {
        _eq(handler.doubleCommits(), 0, "double commits accepted");
    }

    function invariant_noCommitAfterDeadline() public view {
        _eq(handler.lateCommits(), 0, "commits after the deadline or outside an open round accepted");
    }

    function invariant_noEndBeforeCommitPhaseOver() public view {
        _eq(handler.earlyEnds(), 0, "round finalised or closed during its commit phase");
    }

    /// No round ended before its deadline while a participant active at its opening (and still active) had not committed.
    function invariant_noEligibleParticipantCutOff() public view {
        _eq(handler.cutOffs(), 0, "round ended early without an eligible participant's commit");
    }

    /// No commitment claimed more samples than its participant's approved dataset size.
    function invariant_noCommitAboveApprovedSamples() public view {
        _eq(handler.oversizedCommits(), 0, "commitment above the approved dataset size accepted");
    }

    /// No round was opened with a commit window longer than the task's maximum.
    function invariant_noRoundLongerThanTheTaskAllows() public view {
        _eq(handler.overlongRounds(), 0, "round opened with a commit window above the task's maximum");
    }

    function invariant_onlyRolesAct() public view {
        _eq(handler.unauthorisedActions(), 0, "role-gated action by a caller without the role");
    }

    /// The contract's state equals the model's, and only the latest round can be open.
    function invariant_stateMatchesModel() public view {
        _eq(fed.activeCount(), handler.active(), "activeCount");
        _eq(fed.latestRoundId(), handler.latest(), "latestRoundId");
        _eq(fed.currentModelDigest(), handler.currentModel(), "currentModelDigest");
        (uint32 version,,,, uint64 maxWindow) = fed.task();
        _eq(version, handler.taskVersion(), "task version");
        _eq(maxWindow, handler.maxCommitDuration(), "maxCommitDuration");
        for (uint256 i = 0; i < 5; ++i) {
            address who = handler.actor(i);
            (IFederation.ParticipantStatus s, uint64 last,,, uint64 samples) = fed.participant(who);
            _eq(uint256(s), uint256(handler.status(who)), "participant status");
            _eq(samples, handler.declared(who), "declaredSamples");
            _eq(last, handler.lastCommit(who), "lastCommittedRound");
        }
        uint256 latest = fed.latestRoundId();
        for (uint256 roundId = 1; roundId <= latest; ++roundId) {
            Federation.RoundInfo memory r = fed.getRound(roundId);
            _eq(uint256(r.status), uint256(handler.roundStatus(roundId)), "round status");
            _eq(r.commitCount, handler.commits(roundId), "commitCount");
            _eq(r.eligibleCount, handler.eligible(roundId), "eligibleCount");
            bool over = r.status != IFederation.RoundStatus.Open || handler.phaseOver(roundId);
            _true(fed.commitPhaseOver(roundId) == over, "commitPhaseOver");
            _true(roundId == latest || r.status != IFederation.RoundStatus.Open, "only the latest round may be open");
            _true(r.includedCount <= r.commitCount, "includedCount <= commitCount");
        }
    }
}

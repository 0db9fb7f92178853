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
    /// Commit-reveal rounds: the reveal deadline (0: not commit-reveal), the seals, and each participant's
    /// unrevealed seal with what it sealed (samples and salt).
    mapping(uint256 => uint64) public revealDeadline;
    mapping(uint256 => uint32) public seals;
    mapping(uint256 => mapping(address => bytes32)) public sealOf;
    mapping(uint256 => mapping(address => uint64)) internal _sealedSamples;
    mapping(uint256 => mapping(address => bytes32)) internal _sealedSalt;

    // ---- safety counters (each must stay zero)
    uint256 public doubleCommits;
    uint256 public lateCommits;
    uint256 public earlyEnds;
    uint256 public cutOffs;
    uint256 public unauthorisedActions;
    uint256 public oversizedCommits;
    uint256 public overlongRounds;
    uint256 public forgedReveals;
    uint256 public mismatches;
    string public lastMismatch;

    // ---- coverage counters (to see the fuzzer reached the interesting states)
    uint256 public successfulCommits;
    uint256 public finalizedRounds;
    uint256 public successfulReveals;

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

    /// @notice The one function the invariant fuzzer calls: one action, drawn with weights that keep rounds going
    /// through their phases (commits, seals and reveals are frequent; admission changes and task changes rarer).
    function step(uint256 action, uint256 a, uint256 b, uint256 c, uint256 d) external {
        uint256 k = action % 100;
        if (k < 3) this.register(a, b);
        else if (k < 6) this.admit(a, b);
        else if (k < 7) this.remove(a, b);
        else if (k < 9) this.configureTask(a, b);
        else if (k < 23) this.openRound(a, b, c, d);
        else if (k < 41) this.commitUpdate(a, b, c);
        else if (k < 55) this.sealUpdate(a, b, c);
        else if (k < 69) this.revealUpdate(a, b, c);
        else if (k < 79) this.finalizeRound(a, b, c);
        else if (k < 85) this.closeRound(a);
        else if (k < 97) this.warp(a);
        else this.warpPastDeadline(a);
    }

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
        address who = actor(actorSeed);
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
        // mostly within the task's maximum window; one time in eight zero, one in eight above the maximum
        uint64 duration = _window(durationSeed);
        uint32 minimum = _rare(minimumSeed) ? 0 : uint32(1 + (minimumSeed / 8) % 3);
        // half the rounds are commit-reveal rounds, their reveal windows mostly within the maximum too
        uint64 reveal = (minimumSeed / 64) % 2 == 0 ? 0 : _window(minimumSeed / 128) + 1;
        bool wrongBase = _rare(baseSeed);
        bytes32 base = wrongBase ? keccak256("some other model") : (currentModel == bytes32(0) ? keccak256("base") : currentModel);
        bytes memory expected = _openExpectation(caller, duration, minimum, reveal, base);
        vm.prank(caller);
        try fed.openRound(base, "bafybase", duration, minimum, reveal) returns (uint256 roundId) {
            _check("openRound", "", expected);
            if (caller != aggregator) ++unauthorisedActions;
            if (duration > maxCommitDuration || reveal > maxCommitDuration) ++overlongRounds;
            latest = roundId;
            roundStatus[roundId] = IFederation.RoundStatus.Open;
            deadline[roundId] = uint64(block.timestamp + duration);
            if (reveal != 0) revealDeadline[roundId] = uint64(block.timestamp + duration + reveal);
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

    /// @dev A window for openRound: 0 one time in eight, above the task's maximum one time in eight, else within it
    /// and at most 240 s (a few dozen steps), so that sequences see rounds through to their end.
    function _window(uint256 seed) internal view returns (uint64) {
        if (_rare(seed)) return 0;
        uint64 max = maxCommitDuration == 0 ? 1000 : maxCommitDuration;
        if (_rare(seed / 8)) return max + 1 + uint64((seed / 64) % 100);
        return uint64(1 + (seed / 64) % (max < 240 ? max : 240));
    }

    /// @dev A sample count for a commitment of `who`: within its approved size, one time in eight above it.
    function _samples(address who, uint256 seed) internal view returns (uint64) {
        uint64 approved = declared[who] == 0 ? 100 : declared[who];
        if (_rare(seed)) return approved + 1 + uint64((seed / 8) % 100);
        return uint64(1 + (seed / 8) % approved);
    }

    /// @dev The revert data the model predicts for openRound (empty: it must succeed).
    function _openExpectation(address caller, uint64 duration, uint32 minimum, uint64 reveal, bytes32 base)
        internal
        view
        returns (bytes memory)
    {
        if (caller != aggregator) return _unauthorised(caller, fed.AGGREGATOR_ROLE());
        if (taskVersion == 0) return abi.encodeWithSelector(IFederation.FederationTaskNotConfigured.selector);
        if (roundStatus[latest] == IFederation.RoundStatus.Open) {
            return abi.encodeWithSelector(IFederation.FederationRoundInProgress.selector, latest);
        }
        if (duration == 0) {
            return abi.encodeWithSelector(IFederation.FederationInvalidRound.selector, "commitDuration", 0);
        }
        if (duration > maxCommitDuration) {
            return abi.encodeWithSelector(
                IFederation.FederationCommitWindowTooLong.selector, uint256(duration), maxCommitDuration
            );
        }
        if (minimum == 0) return abi.encodeWithSelector(IFederation.FederationInvalidRound.selector, "minUpdates", 0);
        if (reveal > maxCommitDuration) {
            return abi.encodeWithSelector(
                IFederation.FederationRevealWindowTooLong.selector, uint256(reveal), maxCommitDuration
            );
        }
        if (currentModel != bytes32(0) && base != currentModel) {
            return abi.encodeWithSelector(IFederation.FederationBaseModelMismatch.selector, currentModel, base);
        }
        return "";
    }

    function commitUpdate(uint256 actorSeed, uint256 roundSeed, uint256 invalidSeed) external {
        address who = _committer(actorSeed);
        bool invalid = _rare(invalidSeed);
        // mostly within the approved size (declared sizes are 1..200), sometimes above it
        uint64 samples = _samples(who, invalidSeed / 8);
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
        if (revealDeadline[roundId] != 0) {
            return abi.encodeWithSelector(IFederation.FederationCommitRevealRound.selector, roundId);
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

    function sealUpdate(uint256 actorSeed, uint256 roundSeed, uint256 sealSeed) external {
        address who = _committer(actorSeed);
        uint256 roundId = _rare(roundSeed) ? latest + 1 - (roundSeed / 8) % 2 : latest; // mostly the latest round
        uint64 samples = _samples(who, sealSeed / 8); // sometimes above the approved size: caught at the reveal
        bytes32 salt = keccak256(abi.encode("salt", sealSeed));
        bytes32 seal = _rare(sealSeed) ? bytes32(0) : _seal(roundId, who, samples, salt);
        bytes memory expected = _participantRoundExpectation(who, roundId);
        if (expected.length == 0) {
            if (revealDeadline[roundId] == 0) {
                expected = abi.encodeWithSelector(IFederation.FederationNotCommitRevealRound.selector, roundId);
            } else if (block.timestamp > deadline[roundId]) {
                expected = abi.encodeWithSelector(IFederation.FederationCommitTooLate.selector, roundId, deadline[roundId]);
            } else if (lastCommit[who] == roundId) {
                expected = abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, who);
            } else if (seal == bytes32(0)) {
                expected = abi.encodeWithSelector(IFederation.FederationInvalidCommitment.selector, "seal");
            }
        }
        vm.prank(who);
        try fed.sealUpdate(roundId, seal) {
            _check("sealUpdate", "", expected);
            if (lastCommit[who] == roundId) ++doubleCommits;
            if (block.timestamp > deadline[roundId]) ++lateCommits;
            lastCommit[who] = roundId;
            ++seals[roundId];
            sealOf[roundId][who] = seal;
            _sealedSamples[roundId][who] = samples;
            _sealedSalt[roundId][who] = salt;
        } catch (bytes memory reason) {
            _check("sealUpdate", reason, expected);
        }
    }

    function revealUpdate(uint256 actorSeed, uint256 roundSeed, uint256 invalidSeed) external {
        address who = _revealer(actorSeed);
        uint256 roundId = _rare(roundSeed) ? latest + 1 - (roundSeed / 8) % 2 : latest;
        bool wrongSalt = _rare(invalidSeed);
        bool invalid = _rare(invalidSeed / 8);
        uint64 samples = _sealedSamples[roundId][who];
        if (samples == 0) samples = 1;
        bytes32 salt = wrongSalt ? keccak256("a guess") : _sealedSalt[roundId][who];
        bytes memory expected = _revealExpectation(who, roundId, invalid, samples, salt);
        bool forged = sealOf[roundId][who] == bytes32(0) || _seal(roundId, who, samples, salt) != sealOf[roundId][who];
        vm.prank(who);
        try fed.revealUpdate(
            roundId, invalid ? bytes32(0) : _digestOf(who, roundId), "bafyupdate", samples, bytes32(0), salt
        ) {
            _check("revealUpdate", "", expected);
            if (forged) ++forgedReveals;
            if (samples > declared[who]) ++oversizedCommits;
            sealOf[roundId][who] = bytes32(0);
            ++commits[roundId];
            ++successfulReveals;
        } catch (bytes memory reason) {
            _check("revealUpdate", reason, expected);
        }
    }

    /// @dev The revert data the model predicts for a reveal (empty: it must succeed).
    function _revealExpectation(address who, uint256 roundId, bool invalid, uint64 samples, bytes32 salt)
        internal
        view
        returns (bytes memory expected)
    {
        expected = _participantRoundExpectation(who, roundId);
        if (expected.length != 0) return expected;
        if (revealDeadline[roundId] == 0) {
            return abi.encodeWithSelector(IFederation.FederationNotCommitRevealRound.selector, roundId);
        }
        if (!phaseOver(roundId)) {
            return abi.encodeWithSelector(IFederation.FederationCommitPhaseActive.selector, roundId, deadline[roundId]);
        }
        if (block.timestamp > revealDeadline[roundId]) {
            return abi.encodeWithSelector(IFederation.FederationRevealTooLate.selector, roundId, revealDeadline[roundId]);
        }
        if (lastCommit[who] != roundId) {
            return abi.encodeWithSelector(IFederation.FederationNotSealed.selector, roundId, who);
        }
        bytes32 seal = sealOf[roundId][who];
        if (seal == bytes32(0)) return abi.encodeWithSelector(IFederation.FederationDuplicateCommit.selector, roundId, who);
        if (invalid) return abi.encodeWithSelector(IFederation.FederationInvalidCommitment.selector, "updateDigest");
        if (samples > declared[who]) {
            return abi.encodeWithSelector(IFederation.FederationTooManySamples.selector, who, samples, declared[who]);
        }
        bytes32 revealed = _seal(roundId, who, samples, salt);
        if (revealed != seal) {
            return abi.encodeWithSelector(IFederation.FederationSealMismatch.selector, roundId, who, seal, revealed);
        }
        return "";
    }

    /// @dev The participant must be active and the round open (the checks every commit, seal and reveal starts with).
    function _participantRoundExpectation(address who, uint256 roundId) internal view returns (bytes memory) {
        IFederation.ParticipantStatus s = status[who];
        IFederation.RoundStatus r = roundStatus[roundId];
        if (s == IFederation.ParticipantStatus.None) {
            return abi.encodeWithSelector(IFederation.FederationNotRegistered.selector, who);
        }
        if (s != IFederation.ParticipantStatus.Active) {
            return abi.encodeWithSelector(IFederation.FederationNotActive.selector, who, s);
        }
        if (r == IFederation.RoundStatus.None) return abi.encodeWithSelector(IFederation.FederationUnknownRound.selector, roundId);
        if (r != IFederation.RoundStatus.Open) {
            return abi.encodeWithSelector(IFederation.FederationRoundNotOpen.selector, roundId, r);
        }
        return "";
    }

    /// @dev The model's own seal formula (not the contract's `updateSeal`): the update every actor reveals is
    /// its `_digestOf`, CID "bafyupdate" and zero metadata digest.
    function _seal(uint256 roundId, address who, uint64 samples, bytes32 salt) internal pure returns (bytes32) {
        return keccak256(
            abi.encode(roundId, who, _digestOf(who, roundId), keccak256(bytes("bafyupdate")), samples, bytes32(0), salt)
        );
    }

    function _digestOf(address who, uint256 roundId) internal pure returns (bytes32) {
        return keccak256(abi.encode(who, roundId));
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
        bool early = !endable(roundId);
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

    function closeRound(uint256 callerSeed) external {
        address caller = _caller(callerSeed, aggregator);
        uint256 roundId = latest;
        bytes memory expected = _endExpectation(caller, roundId);
        bool early = !endable(roundId);
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
        vm.warp(block.timestamp + seconds_ % 60);
    }

    /// @notice Jumps just past the latest round's commit deadline or, for a commit-reveal round, sometimes just past
    /// its reveal deadline, so that sequences reach the reveal phase and the end of rounds.
    function warpPastDeadline(uint256 seed) external {
        uint256 target = seed % 4 != 0 || revealDeadline[latest] == 0 ? deadline[latest] : revealDeadline[latest];
        if (block.timestamp <= target) vm.warp(target + 1);
    }

    /// @dev Who commits or seals: one time in eight any actor; otherwise, from a seeded start, the first active one
    /// that has not committed (sealed) in the latest round yet, so that rounds fill up.
    function _committer(uint256 seed) internal view returns (address) {
        if (_rare(seed)) return actor(seed / 8);
        for (uint256 i = 0; i < ACTORS; ++i) {
            address who = actor(seed / 8 + i);
            if (status[who] == IFederation.ParticipantStatus.Active && lastCommit[who] != latest) return who;
        }
        return actor(seed / 8);
    }

    /// @dev Who reveals: one time in eight any actor; otherwise, from a seeded start, the first one with an
    /// unrevealed seal in the latest round.
    function _revealer(uint256 seed) internal view returns (address) {
        if (_rare(seed)) return actor(seed / 8);
        for (uint256 i = 0; i < ACTORS; ++i) {
            address who = actor(seed / 8 + i);
            if (sealOf[latest][who] != bytes32(0)) return who;
        }
        return actor(seed / 8);
    }

    // ------------------------------------------------------------ helpers

    /// @notice The model's answer to "is the commit phase of this open round over": the deadline has
    /// passed, or at least as many commits as participants were active when the round opened.
    function phaseOver(uint256 roundId) public view returns (bool) {
        if (block.timestamp > deadline[roundId]) return true;
        return revealDeadline[roundId] == 0 ? commits[roundId] >= eligible[roundId] : seals[roundId] >= eligible[roundId];
    }

    /// @notice The model's answer to "may this open round be ended": its commit phase is over and, in a
    /// commit-reveal round, its reveal deadline has passed or every seal was revealed.
    function endable(uint256 roundId) public view returns (bool) {
        if (revealDeadline[roundId] == 0) return phaseOver(roundId);
        if (block.timestamp > revealDeadline[roundId]) return true;
        return phaseOver(roundId) && commits[roundId] >= seals[roundId];
    }

    /// @dev How many participants would be cut off if the round ended now: before the deadline, those eligible in
    /// the round and still active that have not committed (sealed) in it; in a commit-reveal round before its
    /// reveal deadline, those still active that sealed and have not revealed.
    function _cutOff(uint256 roundId) internal view returns (uint256 count) {
        bool commitOpen = block.timestamp <= deadline[roundId];
        bool revealOpen = revealDeadline[roundId] != 0 && block.timestamp <= revealDeadline[roundId];
        for (uint256 i = 0; i < ACTORS; ++i) {
            address who = actor(i);
            if (status[who] != IFederation.ParticipantStatus.Active) continue;
            if (commitOpen && eligibleIn[roundId][who] && lastCommit[who] != roundId) ++count;
            else if (revealOpen && sealOf[roundId][who] != bytes32(0)) ++count;
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
        if (!endable(roundId)) {
            return abi.encodeWithSelector(
                IFederation.FederationRevealPhaseActive.selector, roundId, revealDeadline[roundId]
            );
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
        fed = new Federation(admin, aggregator, new address[](0));
        handler = new FederationHandler(fed, admin, aggregator);
        handler.bootstrap();
        _targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](1);
        selectors[0] = FederationHandler.step.selector;
        _targetSelector(address(handler), selectors);
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
        _eq(handler.earlyEnds(), 0, "round finalised or closed before its commit (and reveal) phase was over");
    }

    /// No round ended before its deadline while a participant active at its opening (and still active) had not committed.
    function invariant_noEligibleParticipantCutOff() public view {
        _eq(handler.cutOffs(), 0, "round ended early without an eligible participant's commit");
    }

    /// No commitment claimed more samples than its participant's approved dataset size.
    function invariant_noCommitAboveApprovedSamples() public view {
        _eq(handler.oversizedCommits(), 0, "commitment above the approved dataset size accepted");
    }

    /// No reveal was accepted that does not hash to its participant's unrevealed seal.
    function invariant_noRevealWithoutItsSeal() public view {
        _eq(handler.forgedReveals(), 0, "reveal accepted without a matching, unrevealed seal");
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
            bool endable = r.status != IFederation.RoundStatus.Open || handler.endable(roundId);
            _true(fed.revealPhaseOver(roundId) == endable, "revealPhaseOver");
            _true(r.commitReveal == (handler.revealDeadline(roundId) != 0), "commitReveal");
            _eq(r.revealDeadline, handler.revealDeadline(roundId), "revealDeadline");
            _eq(r.sealCount, handler.seals(roundId), "sealCount");
            for (uint256 i = 0; i < 5; ++i) {
                address who = handler.actor(i);
                _eq(fed.sealOf(roundId, who), handler.sealOf(roundId, who), "sealOf");
            }
            _true(roundId == latest || r.status != IFederation.RoundStatus.Open, "only the latest round may be open");
            _true(r.includedCount <= r.commitCount, "includedCount <= commitCount");
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {FederationMembership} from "./FederationMembership.sol";
import {IFederation} from "./IFederation.sol";

/// @title Federation
/// @notice The ledger of one auditable federated-learning task: participant admission, task
/// configuration, and rounds in which active participants commit the digest and CID of their model
/// update and the aggregator finalises the aggregate. The commitments themselves live in the event
/// log (the audit trail); storage holds only what the state machine needs, packed so that a commit
/// costs the same in every round.
/// A round may be opened as a commit-reveal round: participants then seal their updates during the commit
/// phase (`sealUpdate`, a salted digest nobody can copy) and reveal them after it (`revealUpdate`, which checks the
/// seal and emits the usual `UpdateCommitted`), and the round ends after its reveal phase.
/// The members govern it: each member organisation holds one vote in the `membership` token (minted to the founders
/// at deployment, on admission and burned on removal), and the admin role is held by a timelock that executes the
/// proposals they pass. Included participants attest each finalised round after replaying it (`attestRound`); under
/// a verification policy the next round opens only once enough of them attested the round positively. A finalised
/// round can be disputed (`disputeRound`), and the federation then continues from the model it was built on. An
/// excluded participant can contest its exclusion (`contestExclusion`), which the aggregator must answer.
/// A task configured with a privacy policy (`configurePrivateTask`) has an epsilon budget per participant: its rounds
/// are private rounds, in which each commitment (`commitPrivateUpdate`) carries the participant's cumulative epsilon
/// and the digest of its accountant inputs, and a claim past the budget is refused.
/// A secure-aggregation round (`openSecureRound`) has three phases: participants advertise their keys
/// (`postAdvertisement`), those who advertised commit masked inputs (`commitUpdate`, or `commitPrivateUpdate` in a
/// private round: distributed differential privacy), and those who committed post their unmasking shares
/// (`postUnmaskingShares`); the round ends after its unmask phase. The blobs are in the store, their digests and CIDs
/// in the events.
/// A signed round (`openSignedRound`) takes its commitments off chain: participants sign them until the deadline, the
/// aggregator posts the Merkle root and count of the set it collected (`postCommitmentSet`), and a participant left
/// out may then force its commitment on chain with the usual `commitUpdate` during an escape window; the round ends
/// after that window (or at once when every eligible participant signed).
/// @dev No function loops over participants or rounds. A commit writes two already non-zero slots (a private commit
/// also writes the participant's epsilon slot).
/// The custom errors, events and status enums are declared in IFederation.
contract Federation is IFederation, AccessControl {
    /// @notice Role that admits and removes participants and configures the task.
    bytes32 public constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    /// @notice Role that opens, finalises and closes rounds.
    bytes32 public constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    /// @notice Everything stored about one round.
    /// @dev The first eleven fields share one storage slot (31 bytes), which is all a commit reads of the round; the
    /// digests take one slot each; the reveal deadline and the seal count of a commit-reveal round share the last.
    /// `eligibleCount` is the number of active participants when the round opened: admission waits
    /// for the next round, so only they can commit, and the commit phase ends early once that many committed
    /// (in a commit-reveal round: sealed). `commitCount` counts `UpdateCommitted` events: commits, or reveals.
    /// `privateRound`: the round was opened while the task had a privacy budget; its commits are privacy claims.
    /// `secureRound`: a secure-aggregation round (in the first slot, so a commit reads it for free); its
    /// advertise and unmask deadlines and the advertisement count fill the reveal slot (a secure round is never
    /// commit-reveal), the unmasking count takes one more.
    /// `signedRound`: a signed round (in the first slot too, for the same reason; the commit deadline is a uint48 to
    /// make room for it); the rest of its record is in `_signed`.
    struct RoundInfo {
        RoundStatus status;
        uint48 deadline;
        uint32 minUpdates;
        uint32 commitCount;
        uint32 eligibleCount;
        uint32 taskVersion;
        uint32 includedCount;
        bool commitReveal;
        bool privateRound;
        bool secureRound;
        bool signedRound;
        bytes32 baseModelDigest;
        bytes32 modelDigest;
        bytes32 merkleRoot;
        bytes32 aggregationDigest;
        bytes32 evidenceDigest;
        uint64 revealDeadline;
        uint32 sealCount;
        uint64 advertiseDeadline;
        uint64 unmaskDeadline;
        uint32 advertisementCount;
        uint32 unmaskingCount;
    }

    /// @dev The part of a signed round's record that a commit does not read: the escape duration, then, once the
    /// aggregator posted the commitment set, the escape deadline (0 until then), the set's count, root and digest.
    struct SignedRoundData {
        uint64 escapeDuration;
        uint64 escapeDeadline;
        uint32 setCount;
        bytes32 setRoot;
        bytes32 setDigest;
    }

    /// @dev One storage slot per participant (29 bytes): a commit reads and writes only this slot of it. Block
    /// numbers are uint48 (OpenZeppelin's timepoint width), enough for 2^48 blocks. `declaredSamples` is the
    /// dataset size declared at registration; once the participant is admitted it is the approved size.
    struct ParticipantData {
        ParticipantStatus status;
        uint64 lastCommittedRound;
        uint64 declaredSamples;
        uint48 registeredBlock;
        uint48 statusChangedBlock;
    }

    /// @dev The task digests; the config CID is only in the TaskConfigured event. The version, the maximum
    /// commit duration and the epsilon budget (micro-epsilon, 0: no privacy policy) share one slot, so openRound reads
    /// them at once. `privacyPolicyDigest` is zero for a task without a privacy policy.
    struct TaskData {
        uint32 version;
        uint64 maxCommitDuration;
        uint64 epsilonBudget;
        bytes32 modelSpecDigest;
        bytes32 strategyDigest;
        bytes32 dataSchemaDigest;
        bytes32 privacyPolicyDigest;
    }

    // ---------------------------------------------------------------- state

    mapping(address participant => ParticipantData) private _participants;
    mapping(uint256 roundId => RoundInfo) private _rounds;
    mapping(uint256 roundId => mapping(address participant => bytes32 seal)) private _seals;
    /// @dev Attestation of a participant per round: 0 none, ATTESTED_OK, ATTESTED_NEGATIVE.
    mapping(uint256 roundId => mapping(address participant => uint8 attestation)) private _attestations;
    mapping(uint256 roundId => AttestationTally) private _tallies;
    /// @dev Exclusion contest of a participant per round: 0 none, CONTEST_OPEN, CONTEST_AVAILABLE, CONTEST_UNAVAILABLE.
    mapping(uint256 roundId => mapping(address participant => uint8 contest)) private _contests;
    /// @dev Cumulative epsilon of a participant (micro-epsilon), as claimed by its latest private commitment.
    mapping(address participant => uint64 epsilon) private _epsilonSpent;
    /// @dev A participant's part in a secure round: bit ADVERTISED, bit UNMASKED.
    mapping(uint256 roundId => mapping(address participant => uint8 flags)) private _secure;
    mapping(uint256 roundId => SignedRoundData) private _signed;
    TaskData private _task;
    uint64 private _latestRoundId;
    uint32 private _activeCount;
    uint64 private _currentModelRound;
    uint8 private _verificationPolicy;
    bytes32 private _currentModelDigest;

    /// @notice The membership token: one vote per member organisation, minted on admission, burned on removal.
    FederationMembership public immutable membership;

    /// @dev The positive and negative attestations of one round (one slot).
    struct AttestationTally {
        uint32 ok;
        uint32 negative;
    }

    uint8 private constant ATTESTED_OK = 1;
    uint8 private constant ATTESTED_NEGATIVE = 2;
    uint8 private constant CONTEST_OPEN = 1;
    uint8 private constant CONTEST_AVAILABLE = 2;
    uint8 private constant CONTEST_UNAVAILABLE = 3;
    uint8 private constant ADVERTISED = 1;
    uint8 private constant UNMASKED = 2;

    /// @notice Deploys the ledger and its membership token.
    /// @param admin Receives DEFAULT_ADMIN_ROLE and ADMIN_ROLE (under governance: the timelock).
    /// @param aggregator Receives AGGREGATOR_ROLE.
    /// @param founders The founding member organisations: each receives its membership token (one vote) at once.
    constructor(address admin, address aggregator, address[] memory founders) {
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _grantRole(ADMIN_ROLE, admin);
        _grantRole(AGGREGATOR_ROLE, aggregator);
        membership = new FederationMembership(founders);
    }

    // ---------------------------------------------------------------- participants

    /// @notice Registers the caller as a participant awaiting admission.
    /// @param organisation Organisation name (must not be empty).
    /// @param industry Industry of the organisation.
    /// @param publicKey Public key of the participant.
    /// @param declaredSamples Size of the participant's training dataset (number of samples, non-zero); admission
    /// approves it, and no commitment may claim more.
    function register(
        string calldata organisation,
        string calldata industry,
        bytes calldata publicKey,
        uint64 declaredSamples
    ) external {
        ParticipantData storage p = _participants[msg.sender];
        if (p.status != ParticipantStatus.None) revert FederationAlreadyRegistered(msg.sender);
        if (bytes(organisation).length == 0) revert FederationInvalidRegistration("organisation");
        if (declaredSamples == 0) revert FederationInvalidRegistration("declaredSamples");
        p.status = ParticipantStatus.Pending;
        p.declaredSamples = declaredSamples;
        p.registeredBlock = uint48(block.number);
        p.statusChangedBlock = uint48(block.number);
        emit ParticipantRegistered(msg.sender, organisation, industry, publicKey, declaredSamples);
    }

    /// @notice Admits a pending participant and approves the dataset size it declared: no commitment of it may
    /// claim more samples. The participant becomes a member (its membership token is minted, its vote self-delegated,
    /// counting from the next block) unless it is one already (a founder). Admission happens between rounds: while a
    /// round is open it is refused, so the participants eligible in a round are exactly those active when it opened.
    /// @param account The participant to admit.
    function admit(address account) external onlyRole(ADMIN_ROLE) {
        uint256 latest = _latestRoundId;
        if (_rounds[latest].status == RoundStatus.Open) revert FederationRoundInProgress(latest);
        ParticipantData storage p = _participants[account];
        if (p.status != ParticipantStatus.Pending) revert FederationInvalidStatus(account, p.status);
        p.status = ParticipantStatus.Active;
        p.statusChangedBlock = uint48(block.number);
        ++_activeCount;
        emit ParticipantAdmitted(account, msg.sender, p.declaredSamples);
        if (!membership.isMember(account)) membership.mint(account);
    }

    /// @notice Removes a pending or active participant, or a founding member that never registered, for good, at any
    /// time; its membership token (its vote) is burned if it holds one. Removal during an open round does not change
    /// that round's eligible count: its commit phase then runs to the deadline unless the removed participant had
    /// already committed.
    /// @param account The participant (or member) to remove.
    /// @param reason Why (recorded in the event).
    function remove(address account, string calldata reason) external onlyRole(ADMIN_ROLE) {
        _remove(account, reason);
    }

    /// @notice Removes the caller itself, a pending or active participant (or a founding member that never
    /// registered), for good, as `remove` does: its membership token is burned; the event names it as the actor.
    /// Under FederationIncentives it can then ask for its deposit back.
    /// @param reason Why (recorded in the event).
    function leave(string calldata reason) external {
        _remove(msg.sender, reason);
    }

    // ---------------------------------------------------------------- task

    /// @notice Sets a new task configuration without a privacy policy (its rounds are not private); the task version
    /// increases by one.
    /// @param modelSpecDigest Digest of the model specification (non-zero).
    /// @param strategyDigest Digest of the strategy configuration (non-zero).
    /// @param dataSchemaDigest Digest of the data schema (non-zero).
    /// @param configCid CID of the full configuration (non-empty).
    /// @param maxCommitDuration The longest commit window (seconds, non-zero) a round may be opened with, so that no
    /// round can be held open for long: once its deadline has passed the aggregator can always close it.
    function configureTask(
        bytes32 modelSpecDigest,
        bytes32 strategyDigest,
        bytes32 dataSchemaDigest,
        string calldata configCid,
        uint64 maxCommitDuration
    ) external onlyRole(ADMIN_ROLE) {
        uint256 latest = _latestRoundId;
        if (_rounds[latest].status == RoundStatus.Open) revert FederationRoundInProgress(latest);
        _configureTask(
            modelSpecDigest, strategyDigest, dataSchemaDigest, configCid, maxCommitDuration, false, bytes32(0), 0
        );
    }

    /// @notice Sets a new task configuration with a privacy policy, as `configureTask` does (same checks, same
    /// `TaskConfigured` event, the version increases by one), and records the policy: the rounds of this version are
    /// private rounds, and no participant's cumulative epsilon may exceed `epsilonBudget`. Emits `PrivacyPolicySet`.
    /// @param modelSpecDigest Digest of the model specification (non-zero).
    /// @param strategyDigest Digest of the strategy configuration (non-zero).
    /// @param dataSchemaDigest Digest of the data schema (non-zero).
    /// @param configCid CID of the full configuration (non-empty).
    /// @param maxCommitDuration The longest commit window (seconds, non-zero) a round may be opened with.
    /// @param privacyPolicyDigest Digest of the privacy policy of the task document (non-zero).
    /// @param epsilonBudget The total epsilon budget per participant, in micro-epsilon (ceil(epsilon * 1e6),
    /// non-zero).
    function configurePrivateTask(
        bytes32 modelSpecDigest,
        bytes32 strategyDigest,
        bytes32 dataSchemaDigest,
        string calldata configCid,
        uint64 maxCommitDuration,
        bytes32 privacyPolicyDigest,
        uint64 epsilonBudget
    ) external onlyRole(ADMIN_ROLE) {
        uint256 latest = _latestRoundId;
        if (_rounds[latest].status == RoundStatus.Open) revert FederationRoundInProgress(latest);
        _configureTask(
            modelSpecDigest,
            strategyDigest,
            dataSchemaDigest,
            configCid,
            maxCommitDuration,
            true,
            privacyPolicyDigest,
            epsilonBudget
        );
    }

    /// @notice Sets the verification policy: the percentage of a round's included participants whose positive
    /// attestations (`attestRound`) the next round needs before it can open; 0 for none.
    /// @param quorumPercent The percentage, 0 to 100.
    function setVerificationPolicy(uint8 quorumPercent) external onlyRole(ADMIN_ROLE) {
        if (quorumPercent > 100) revert FederationInvalidPolicy(quorumPercent);
        _verificationPolicy = quorumPercent;
        emit VerificationPolicySet(msg.sender, quorumPercent);
    }

    // ---------------------------------------------------------------- rounds

    /// @notice Opens the next round, recording the current number of active participants as its eligible count. With
    /// a non-zero `revealDuration` it is a commit-reveal round: `sealUpdate` during the commit phase, `revealUpdate`
    /// after it until the reveal deadline (the commit deadline + `revealDuration`), then finalise or close. While
    /// the task has a privacy budget the round is a private round (`getRound().privateRound`): commits carry privacy claims
    /// (`commitPrivateUpdate`), and it cannot be a commit-reveal round.
    /// @param baseModelDigest Digest of the model to train from; after a finalised round it must be that round's model.
    /// @param baseModelCid CID of that model.
    /// @param commitDuration Seconds from now during which commits are accepted (inclusive); at most the task's
    /// maximum commit duration.
    /// @param minUpdates Minimum number of included updates to finalise.
    /// @param revealDuration Seconds after the commit deadline during which sealed updates are revealed (inclusive);
    /// 0 for a round without commit-reveal; at most the task's maximum commit duration; 0 in a private round.
    /// @return roundId The id of the new round.
    function openRound(
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        uint64 commitDuration,
        uint32 minUpdates,
        uint64 revealDuration
    ) external onlyRole(AGGREGATOR_ROLE) returns (uint256 roundId) {
        (roundId,) = _newRound(baseModelDigest, baseModelCid, block.timestamp, commitDuration, minUpdates, revealDuration);
    }

    /// @notice Opens the next round as a secure-aggregation round, with the checks and effects of `openRound` (never
    /// commit-reveal; private while the task has a privacy budget) and three phases: until the advertise deadline
    /// (now + `advertiseDuration`) active participants advertise their keys (`postAdvertisement`); then, until the
    /// commit deadline (the advertise deadline + `commitDuration`), those who advertised commit masked inputs; then,
    /// until the unmask deadline (the commit deadline + `unmaskDuration`), those who committed post their unmasking
    /// shares (`postUnmaskingShares`). A phase ends early once everyone who can act in it did. Emits `RoundOpened`
    /// (with the commit deadline) and `SecureRoundOpened`.
    /// @param baseModelDigest Digest of the model to train from; after a finalised round it must be that round's model.
    /// @param baseModelCid CID of that model.
    /// @param advertiseDuration Seconds of the advertise phase (non-zero, at most the task's maximum commit duration).
    /// @param commitDuration Seconds of the commit phase (non-zero, at most the task's maximum commit duration).
    /// @param minUpdates Minimum number of included updates to finalise.
    /// @param unmaskDuration Seconds of the unmask phase (non-zero, at most the task's maximum commit duration).
    /// @return roundId The id of the new round.
    function openSecureRound(
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        uint64 advertiseDuration,
        uint64 commitDuration,
        uint32 minUpdates,
        uint64 unmaskDuration
    ) external onlyRole(AGGREGATOR_ROLE) returns (uint256 roundId) {
        uint256 advertiseDeadline = block.timestamp + advertiseDuration;
        RoundInfo storage r;
        (roundId, r) = _newRound(baseModelDigest, baseModelCid, advertiseDeadline, commitDuration, minUpdates, 0);
        uint64 deadline = r.deadline;
        uint256 unmaskDeadline = uint256(deadline) + unmaskDuration;
        _checkWindow("advertiseDuration", advertiseDuration, advertiseDeadline);
        _checkWindow("unmaskDuration", unmaskDuration, unmaskDeadline);
        r.secureRound = true;
        r.advertiseDeadline = uint64(advertiseDeadline);
        r.unmaskDeadline = uint64(unmaskDeadline);
        emit SecureRoundOpened(roundId, msg.sender, uint64(advertiseDeadline), deadline, uint64(unmaskDeadline));
    }

    /// @notice Opens the next round as a signed round, with the checks and effects of `openRound` (never
    /// commit-reveal; refused while the task has a privacy budget): participants sign their commitments off chain
    /// until the deadline (now + `commitDuration`) and the aggregator collects them; it then posts their set
    /// (`postCommitmentSet`), which opens an escape window of `escapeDuration` seconds in which a participant left
    /// out forces its commitment on chain with `commitUpdate`. Emits `RoundOpened` and `SignedRoundOpened`.
    /// @param baseModelDigest Digest of the model to train from; after a finalised round it must be that round's model.
    /// @param baseModelCid CID of that model.
    /// @param commitDuration Seconds of the signing (commit) phase (non-zero, at most the task's maximum).
    /// @param minUpdates Minimum number of included updates to finalise.
    /// @param escapeDuration Seconds of the escape window (non-zero, at most the task's maximum commit duration).
    /// @return roundId The id of the new round.
    function openSignedRound(
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        uint64 commitDuration,
        uint32 minUpdates,
        uint64 escapeDuration
    ) external onlyRole(AGGREGATOR_ROLE) returns (uint256 roundId) {
        RoundInfo storage r;
        (roundId, r) = _newRound(baseModelDigest, baseModelCid, block.timestamp, commitDuration, minUpdates, 0);
        uint64 budget = _task.epsilonBudget;
        if (budget != 0) revert FederationPrivateSignedRound(budget);
        uint64 deadline = r.deadline;
        _checkWindow("escapeDuration", escapeDuration, uint256(deadline) + escapeDuration);
        r.signedRound = true;
        _signed[roundId].escapeDuration = escapeDuration;
        emit SignedRoundOpened(roundId, msg.sender, deadline, escapeDuration);
    }

    /// @notice Posts the set of signed commitments the aggregator collected for an open signed round, once: after its
    /// deadline, or before it when every eligible participant signed (`count == eligibleCount`), and at the latest
    /// at the deadline + the escape duration. The round's commit count becomes `count`, and the escape window runs
    /// for the round's escape duration from now, or from the deadline for a set posted before it (the contract cannot
    /// check a set's entries: a full set padded with invalid ones must not shorten anyone's window).
    /// @param roundId The round (signed).
    /// @param setRoot Merkle root of the signed commitments (zero exactly when `count` is zero).
    /// @param count Number of signed commitments in the set (at most the round's eligible count).
    /// @param setDigest Digest of the set blob (non-zero).
    /// @param setCid CID of the set blob (non-empty).
    function postCommitmentSet(
        uint256 roundId,
        bytes32 setRoot,
        uint32 count,
        bytes32 setDigest,
        string calldata setCid
    ) external onlyRole(AGGREGATOR_ROLE) {
        RoundInfo storage r = _liveRound(roundId);
        if (!r.signedRound) revert FederationNotSignedRound(roundId);
        SignedRoundData storage sr = _signed[roundId];
        if (sr.escapeDeadline != 0) revert FederationCommitmentSetPosted(roundId);
        uint32 eligible = r.eligibleCount;
        if (count > eligible) revert FederationInvalidSetCount(roundId, count, eligible);
        uint64 deadline = r.deadline;
        if (block.timestamp <= deadline && count != eligible) revert FederationCommitPhaseActive(roundId, deadline);
        uint64 lastPostTime = deadline + sr.escapeDuration;
        if (block.timestamp > lastPostTime) revert FederationCommitmentSetTooLate(roundId, lastPostTime);
        if ((setRoot == bytes32(0)) != (count == 0)) revert FederationInvalidResult("setRoot");
        if (setDigest == bytes32(0)) revert FederationInvalidResult("setDigest");
        if (bytes(setCid).length == 0) revert FederationInvalidResult("setCid");
        // a set posted early (a full one) still leaves the window from the deadline on: its entries may be invalid
        uint64 escapeDeadline = (block.timestamp > deadline ? uint64(block.timestamp) : deadline) + sr.escapeDuration;
        sr.escapeDeadline = escapeDeadline;
        sr.setCount = count;
        sr.setRoot = setRoot;
        sr.setDigest = setDigest;
        r.commitCount = count;
        emit CommitmentSetPosted(roundId, msg.sender, setRoot, count, setDigest, setCid, escapeDeadline);
    }

    /// @notice Advertises the caller's keys for an open secure round (the digest and CID of its advertisement blob:
    /// its key-agreement public keys for the round), once, up to the advertise deadline; only a participant who
    /// advertised may commit a masked input.
    /// @param roundId The round (secure).
    /// @param digest Digest of the advertisement blob (non-zero).
    /// @param cid CID of the advertisement blob (non-empty).
    function postAdvertisement(uint256 roundId, bytes32 digest, string calldata cid) external {
        RoundInfo storage r = _secureRound(_participants[msg.sender].status, roundId);
        uint64 advertiseDeadline = r.advertiseDeadline;
        if (block.timestamp > advertiseDeadline) revert FederationAdvertiseTooLate(roundId, advertiseDeadline);
        _markSecure(roundId, ADVERTISED, digest, cid);
        ++r.advertisementCount;
        emit AdvertisementPosted(roundId, msg.sender, digest, cid);
    }

    /// @notice Posts the caller's unmasking shares for an open secure round it committed a masked input in (the
    /// digest and CID of its shares blob), once, after the commit phase and up to the unmask deadline.
    /// @param roundId The round (secure).
    /// @param digest Digest of the unmasking-shares blob (non-zero).
    /// @param cid CID of the unmasking-shares blob (non-empty).
    function postUnmaskingShares(uint256 roundId, bytes32 digest, string calldata cid) external {
        ParticipantData storage p = _participants[msg.sender];
        RoundInfo storage r = _secureRound(p.status, roundId);
        if (!_commitPhaseOver(roundId, r)) revert FederationCommitPhaseActive(roundId, r.deadline);
        uint64 unmaskDeadline = r.unmaskDeadline;
        if (block.timestamp > unmaskDeadline) revert FederationUnmaskTooLate(roundId, unmaskDeadline);
        if (p.lastCommittedRound != roundId) revert FederationNotCommitted(roundId, msg.sender);
        _markSecure(roundId, UNMASKED, digest, cid);
        ++r.unmaskingCount;
        emit UnmaskingSharesPosted(roundId, msg.sender, digest, cid);
    }

    /// @notice Commits the caller's update for an open round that is not private, once per round, up to the
    /// deadline, claiming at most the caller's approved dataset size; in a secure round (a masked input) only after
    /// its advertise phase and only if the caller advertised; in a signed round (a forced commitment) only in its
    /// escape window: after the commitment set was posted, up to the escape deadline.
    /// @dev Reads and writes two slots that are already non-zero, each read once (the fields of a slot are read
    /// together, before any branch, so the optimiser loads the slot once); the commitment itself is only in the
    /// event. `_commitPrivate` has the same checks but one: sharing it would cost this hot path 75 gas per commit
    /// (see contracts/README.md).
    /// @param roundId The round.
    /// @param updateDigest Digest of the canonical update blob (non-zero).
    /// @param cid CID of the update blob (non-empty).
    /// @param numSamples Number of training samples (non-zero, at most the approved dataset size).
    /// @param metadataDigest Digest of the update's metadata.
    // slither-disable-next-line cyclomatic-complexity (every check inline: see contracts/README.md)
    function commitUpdate(
        uint256 roundId,
        bytes32 updateDigest,
        string calldata cid,
        uint64 numSamples,
        bytes32 metadataDigest
    ) external {
        ParticipantData storage p = _participants[msg.sender];
        RoundInfo storage r = _rounds[roundId];
        uint64 lastCommittedRound;
        uint64 approvedSamples;
        uint32 commitCount;
        {
            // every field read before the first branch: one SLOAD per slot
            ParticipantStatus pStatus = p.status;
            lastCommittedRound = p.lastCommittedRound;
            approvedSamples = p.declaredSamples;
            RoundStatus rStatus = r.status;
            // commitReveal, secureRound or signedRound, the bytes 27, 29 and 30 of the slot, in one mask: no branch,
            // no extra SLOAD
            uint256 special;
            // slither-disable-next-line assembly (one masked read of the round's first slot: see contracts/README.md)
            assembly ("memory-safe") {
                special := and(sload(r.slot), shl(216, 0xffff00ff))
            }
            bool privateRound = r.privateRound;
            uint64 deadline = r.deadline;
            commitCount = r.commitCount;
            if (pStatus != ParticipantStatus.Active) {
                if (pStatus == ParticipantStatus.None) revert FederationNotRegistered(msg.sender);
                revert FederationNotActive(msg.sender, pStatus);
            }
            if (rStatus != RoundStatus.Open) {
                if (rStatus == RoundStatus.None) revert FederationUnknownRound(roundId);
                revert FederationRoundNotOpen(roundId, rStatus);
            }
            if (special != 0) deadline = _checkSpecialCommit();
            if (privateRound) revert FederationPrivacyClaimRequired(roundId);
            if (block.timestamp > deadline) revert FederationCommitTooLate(roundId, deadline);
        }
        if (lastCommittedRound == roundId) revert FederationDuplicateCommit(roundId, msg.sender);
        if (updateDigest == bytes32(0)) revert FederationInvalidCommitment("updateDigest");
        if (bytes(cid).length == 0) revert FederationInvalidCommitment("cid");
        if (numSamples == 0) revert FederationInvalidCommitment("numSamples");
        if (numSamples > approvedSamples) revert FederationTooManySamples(msg.sender, numSamples, approvedSamples);
        p.lastCommittedRound = uint64(roundId);
        r.commitCount = commitCount + 1;
        emit UpdateCommitted(roundId, msg.sender, updateDigest, cid, numSamples, metadataDigest);
    }

    /// @notice Commits the caller's update for an open private round with its privacy claim, as `commitUpdate` does
    /// (same checks, same `UpdateCommitted` event), and records the caller's cumulative epsilon: the claim may not
    /// decrease it nor exceed the task's budget. Emits `PrivacySpent` after `UpdateCommitted`. A refused claim
    /// reverts the whole commitment: nothing is stored.
    /// @param roundId The round (private).
    /// @param updateDigest Digest of the canonical update blob (non-zero).
    /// @param cid CID of the update blob (non-empty).
    /// @param numSamples Number of training samples (non-zero, at most the approved dataset size).
    /// @param metadataDigest Digest of the update's metadata.
    /// @param claimedEpsilon The caller's cumulative epsilon after this round, in micro-epsilon (rounded up): at least
    /// its recorded one (`epsilonSpent(caller)`), at most the task's budget.
    /// @param accountantDigest Digest of this round's accountant inputs, carried by the update blob (non-zero).
    function commitPrivateUpdate(
        uint256 roundId,
        bytes32 updateDigest,
        string calldata cid,
        uint64 numSamples,
        bytes32 metadataDigest,
        uint64 claimedEpsilon,
        bytes32 accountantDigest
    ) external {
        _commitPrivate(roundId, updateDigest, cid, numSamples);
        if (accountantDigest == bytes32(0)) revert FederationInvalidCommitment("accountantDigest");
        uint64 spent = _epsilonSpent[msg.sender];
        if (claimedEpsilon < spent) revert FederationPrivacyClaimDecreased(msg.sender, spent, claimedEpsilon);
        uint64 budget = _task.epsilonBudget;
        if (claimedEpsilon > budget) revert FederationPrivacyBudgetExceeded(msg.sender, spent, claimedEpsilon, budget);
        _epsilonSpent[msg.sender] = claimedEpsilon;
        emit UpdateCommitted(roundId, msg.sender, updateDigest, cid, numSamples, metadataDigest);
        emit PrivacySpent(roundId, msg.sender, claimedEpsilon, accountantDigest);
    }

    /// @notice Seals the caller's update for an open commit-reveal round during its commit phase, once per round: the
    /// seal binds the update without showing it, so nobody can copy it before the commit phase ends.
    /// @param roundId The round.
    /// @param seal keccak256(abi.encode(roundId, msg.sender, updateDigest, keccak256(bytes(cid)), numSamples,
    /// metadataDigest, salt)) of the update to reveal (`fedchain.ports.update_seal` off chain), non-zero; the salt is a secret random value.
    function sealUpdate(uint256 roundId, bytes32 seal) external {
        ParticipantData storage p = _participants[msg.sender];
        uint64 lastCommittedRound = p.lastCommittedRound;
        RoundInfo storage r = _openRound(p.status, roundId);
        uint64 deadline = r.deadline;
        if (!r.commitReveal) revert FederationNotCommitRevealRound(roundId);
        if (block.timestamp > deadline) revert FederationCommitTooLate(roundId, deadline);
        if (lastCommittedRound == roundId) revert FederationDuplicateCommit(roundId, msg.sender);
        if (seal == bytes32(0)) revert FederationInvalidCommitment("seal");
        p.lastCommittedRound = uint64(roundId);
        ++r.sealCount;
        _seals[roundId][msg.sender] = seal;
        emit UpdateSealed(roundId, msg.sender, seal);
    }

    /// @notice Reveals the caller's sealed update of a commit-reveal round, after its commit phase and up to its reveal
    /// deadline, once: the values must hash to the seal, and the reveal is recorded as the usual `UpdateCommitted`.
    /// @param roundId The round.
    /// @param updateDigest Digest of the canonical update blob (non-zero).
    /// @param cid CID of the update blob (non-empty).
    /// @param numSamples Number of training samples (non-zero, at most the approved dataset size).
    /// @param metadataDigest Digest of the update's metadata.
    /// @param salt The secret the seal was made with.
    function revealUpdate(
        uint256 roundId,
        bytes32 updateDigest,
        string calldata cid,
        uint64 numSamples,
        bytes32 metadataDigest,
        bytes32 salt
    ) external {
        RoundInfo storage r = _checkReveal(roundId, updateDigest, cid, numSamples, metadataDigest, salt);
        delete _seals[roundId][msg.sender];
        ++r.commitCount;
        emit UpdateCommitted(roundId, msg.sender, updateDigest, cid, numSamples, metadataDigest);
    }

    /// @notice Finalises an open round whose commit phase (and reveal phase, in a commit-reveal round; unmask phase, in
    /// a secure round) is over, recording the new global model.
    /// @param roundId The round.
    /// @param modelDigest Digest of the aggregated model (non-zero); becomes the current model.
    /// @param modelCid CID of the aggregated model (non-empty).
    /// @param merkleRoot Root of the Merkle tree over the included commitment leaves (non-zero).
    /// @param aggregationDigest Digest of the aggregation record (non-zero).
    /// @param evidenceDigest Digest of the evidence bundle (non-zero).
    /// @param evidenceCid CID of the evidence bundle (non-empty).
    /// @param includedCount Number of included updates: at least minUpdates, at most commitCount.
    function finalizeRound(
        uint256 roundId,
        bytes32 modelDigest,
        string calldata modelCid,
        bytes32 merkleRoot,
        bytes32 aggregationDigest,
        bytes32 evidenceDigest,
        string calldata evidenceCid,
        uint32 includedCount
    ) external onlyRole(AGGREGATOR_ROLE) {
        RoundInfo storage r = _endableRound(roundId);
        uint32 commitCount = r.commitCount;
        if (includedCount > commitCount) revert FederationInvalidIncludedCount(includedCount, commitCount);
        if (includedCount < r.minUpdates) revert FederationTooFewUpdates(roundId, includedCount, r.minUpdates);
        if (modelDigest == bytes32(0)) revert FederationInvalidResult("modelDigest");
        if (bytes(modelCid).length == 0) revert FederationInvalidResult("modelCid");
        if (merkleRoot == bytes32(0)) revert FederationInvalidResult("merkleRoot");
        if (aggregationDigest == bytes32(0)) revert FederationInvalidResult("aggregationDigest");
        if (evidenceDigest == bytes32(0)) revert FederationInvalidResult("evidenceDigest");
        if (bytes(evidenceCid).length == 0) revert FederationInvalidResult("evidenceCid");
        r.status = RoundStatus.Finalized;
        r.includedCount = includedCount;
        r.modelDigest = modelDigest;
        r.merkleRoot = merkleRoot;
        r.aggregationDigest = aggregationDigest;
        r.evidenceDigest = evidenceDigest;
        _currentModelDigest = modelDigest;
        _currentModelRound = uint64(roundId);
        emit RoundFinalized(
            roundId,
            msg.sender,
            modelDigest,
            modelCid,
            merkleRoot,
            aggregationDigest,
            evidenceDigest,
            evidenceCid,
            includedCount
        );
    }

    /// @notice Closes an open round whose commit phase (and reveal phase, in a commit-reveal round; unmask phase, in a
    /// secure round) is over, without a model (the current model is unchanged).
    /// @param roundId The round.
    /// @param reason Why (recorded in the event).
    function closeRound(uint256 roundId, string calldata reason) external onlyRole(AGGREGATOR_ROLE) {
        RoundInfo storage r = _endableRound(roundId);
        r.status = RoundStatus.Closed;
        emit RoundClosed(roundId, msg.sender, r.commitCount, reason);
    }

    // ---------------------------------------------------------------- verification and disputes

    /// @notice Attests a finalised round the caller was included in, once, after replaying it: positively (`ok`) when
    /// the replay reproduced the round's model, negatively with the digest and CID of a findings blob otherwise.
    /// @param roundId The round (finalised).
    /// @param modelDigest For a positive attestation the round's model digest; for a negative one the digest the
    /// replay computed (zero if none).
    /// @param ok Whether the replay reproduced the round's model.
    /// @param findingsDigest Digest of the findings blob (non-zero for a negative attestation).
    /// @param findingsCid CID of the findings blob (non-empty for a negative attestation).
    /// @param inclusion The caller's commitment in the round and the Merkle proof that it was included.
    function attestRound(
        uint256 roundId,
        bytes32 modelDigest,
        bool ok,
        bytes32 findingsDigest,
        string calldata findingsCid,
        Inclusion calldata inclusion
    ) external {
        RoundInfo storage r = _finalizedRound(roundId);
        if (ok) {
            bytes32 expected = r.modelDigest;
            if (modelDigest != expected) revert FederationAttestationModelMismatch(roundId, expected, modelDigest);
        } else {
            if (findingsDigest == bytes32(0)) revert FederationInvalidAttestation("findingsDigest");
            if (bytes(findingsCid).length == 0) revert FederationInvalidAttestation("findingsCid");
        }
        if (_attestations[roundId][msg.sender] != 0) revert FederationAlreadyAttested(roundId, msg.sender);
        bytes32 leaf = keccak256(
            bytes.concat(
                keccak256(
                    abi.encode(
                        roundId,
                        msg.sender,
                        inclusion.updateDigest,
                        inclusion.cidHash,
                        inclusion.numSamples,
                        inclusion.metadataDigest
                    )
                )
            )
        );
        if (!MerkleProof.verifyCalldata(inclusion.proof, r.merkleRoot, leaf)) {
            revert FederationNotIncluded(roundId, msg.sender);
        }
        AttestationTally storage tally = _tallies[roundId];
        if (ok) {
            _attestations[roundId][msg.sender] = ATTESTED_OK;
            ++tally.ok;
        } else {
            _attestations[roundId][msg.sender] = ATTESTED_NEGATIVE;
            ++tally.negative;
        }
        emit RoundAttested(roundId, msg.sender, ok, modelDigest, findingsDigest, findingsCid);
    }

    /// @notice Marks a finalised round disputed (admin: under governance, an executed proposal). When the disputed
    /// model is the current one, the federation falls back to the model the round was built on: the next round opens
    /// from it, and `currentModelRound` is 0.
    /// @param roundId The round (finalised).
    /// @param accused The party the findings accuse.
    /// @param findingsDigest Digest of the findings blob (non-zero).
    /// @param findingsCid CID of the findings blob (non-empty).
    /// @param reason Why (recorded in the event).
    function disputeRound(
        uint256 roundId,
        address accused,
        bytes32 findingsDigest,
        string calldata findingsCid,
        string calldata reason
    ) external onlyRole(ADMIN_ROLE) {
        RoundInfo storage r = _finalizedRound(roundId);
        if (findingsDigest == bytes32(0)) revert FederationInvalidDispute("findingsDigest");
        if (bytes(findingsCid).length == 0) revert FederationInvalidDispute("findingsCid");
        r.status = RoundStatus.Disputed;
        bytes32 fallbackModel = bytes32(0);
        if (r.modelDigest == _currentModelDigest) {
            fallbackModel = r.baseModelDigest;
            _currentModelDigest = fallbackModel;
            _currentModelRound = 0;
        }
        emit RoundDisputed(roundId, msg.sender, accused, findingsDigest, findingsCid, fallbackModel, reason);
    }

    /// @notice Contests the caller's exclusion from a finalised round: it announces, once, that its update blob is
    /// available (pinned) under this digest and CID, so the aggregator must fetch it again and answer. Open until the
    /// round after the next one opens.
    /// @param roundId The round (finalised).
    /// @param updateDigest Digest of the update blob (non-zero).
    /// @param cid CID of the update blob (non-empty).
    function contestExclusion(uint256 roundId, bytes32 updateDigest, string calldata cid) external {
        _checkActive(_participants[msg.sender].status);
        _finalizedRound(roundId);
        uint256 latest = _latestRoundId;
        if (latest > roundId + 1) revert FederationContestWindowClosed(roundId, latest);
        if (_contests[roundId][msg.sender] != 0) revert FederationAlreadyContested(roundId, msg.sender);
        if (updateDigest == bytes32(0)) revert FederationInvalidContest("updateDigest");
        if (bytes(cid).length == 0) revert FederationInvalidContest("cid");
        _contests[roundId][msg.sender] = CONTEST_OPEN;
        emit ExclusionContested(roundId, msg.sender, updateDigest, cid);
    }

    /// @notice Answers an exclusion contest, once (aggregator): whether the blob could be fetched this time.
    /// @param roundId The round contested.
    /// @param account The participant who contested.
    /// @param available Whether the blob is available now.
    function answerContest(uint256 roundId, address account, bool available) external onlyRole(AGGREGATOR_ROLE) {
        uint8 contest = _contests[roundId][account];
        if (contest == 0) revert FederationNoContest(roundId, account);
        if (contest != CONTEST_OPEN) revert FederationContestAnswered(roundId, account);
        _contests[roundId][account] = available ? CONTEST_AVAILABLE : CONTEST_UNAVAILABLE;
        emit ContestAnswered(roundId, account, msg.sender, available);
    }

    // ---------------------------------------------------------------- views

    /// @notice The record of a participant.
    /// @param account The participant's address.
    /// @return status Its status (None if never registered).
    /// @return lastCommittedRound The last round it committed in (0 if none).
    /// @return registeredBlock The block it registered in.
    /// @return statusChangedBlock The block of its last status change.
    /// @return declaredSamples The dataset size it declared at registration (the approved size once admitted).
    function participant(address account)
        external
        view
        returns (
            ParticipantStatus status,
            uint64 lastCommittedRound,
            uint64 registeredBlock,
            uint64 statusChangedBlock,
            uint64 declaredSamples
        )
    {
        ParticipantData storage p = _participants[account];
        return (p.status, p.lastCommittedRound, p.registeredBlock, p.statusChangedBlock, p.declaredSamples);
    }

    /// @notice Number of active participants.
    /// @return The count.
    function activeCount() external view returns (uint32) {
        return _activeCount;
    }

    /// @notice Id of the most recently opened round (0 if none).
    /// @return The round id.
    function latestRoundId() external view returns (uint256) {
        return _latestRoundId;
    }

    /// @notice Digest of the latest finalised global model (zero before the first finalised round).
    /// @return The digest.
    function currentModelDigest() external view returns (bytes32) {
        return _currentModelDigest;
    }

    /// @notice The finalised round the current model comes from; 0 for the initial model or a fallback after a
    /// dispute.
    /// @return The round id.
    function currentModelRound() external view returns (uint256) {
        return _currentModelRound;
    }

    /// @notice The verification policy: the percentage of a round's included participants whose positive
    /// attestations the next round needs to open (0: none).
    /// @return The percentage.
    function verificationPolicy() external view returns (uint8) {
        return _verificationPolicy;
    }

    /// @notice The attestations of a round.
    /// @param roundId The round.
    /// @return ok The positive attestations.
    /// @return negative The negative attestations.
    function attestationCounts(uint256 roundId) external view returns (uint32 ok, uint32 negative) {
        AttestationTally storage tally = _tallies[roundId];
        return (tally.ok, tally.negative);
    }

    /// @notice A participant's attestation of a round.
    /// @param roundId The round.
    /// @param account The participant.
    /// @return 0 none, 1 positive, 2 negative.
    function attestationOf(uint256 roundId, address account) external view returns (uint8) {
        return _attestations[roundId][account];
    }

    /// @notice The positive attestations a round needs under the current policy before the next round opens:
    /// ceil(policy * includedCount / 100); 0 under no policy.
    /// @param roundId The round.
    /// @return required The count.
    function attestationQuorum(uint256 roundId) public view returns (uint32 required) {
        return _quorum(_verificationPolicy, _rounds[roundId].includedCount);
    }

    /// @notice A participant's exclusion contest of a round.
    /// @param roundId The round.
    /// @param account The participant.
    /// @return 0 none, 1 open, 2 answered available, 3 answered unavailable.
    function contestOf(uint256 roundId, address account) external view returns (uint8) {
        return _contests[roundId][account];
    }

    /// @notice The current task configuration (version 0: not configured).
    /// @return version The task version.
    /// @return modelSpecDigest Digest of the model specification.
    /// @return strategyDigest Digest of the strategy configuration.
    /// @return dataSchemaDigest Digest of the data schema.
    /// @return maxCommitDuration The longest commit window a round may be opened with (seconds).
    function task()
        external
        view
        returns (
            uint32 version,
            bytes32 modelSpecDigest,
            bytes32 strategyDigest,
            bytes32 dataSchemaDigest,
            uint64 maxCommitDuration
        )
    {
        TaskData storage t = _task;
        return (t.version, t.modelSpecDigest, t.strategyDigest, t.dataSchemaDigest, t.maxCommitDuration);
    }

    /// @notice The privacy policy of the task in force (zero digest and budget: none, its rounds are not private).
    /// @return policyDigest Digest of the privacy policy.
    /// @return epsilonBudget The total epsilon budget per participant, in micro-epsilon.
    function privacyPolicy() external view returns (bytes32 policyDigest, uint64 epsilonBudget) {
        TaskData storage t = _task;
        return (t.privacyPolicyDigest, t.epsilonBudget);
    }

    /// @notice A participant's cumulative epsilon, as claimed by its latest private commitment (0 before any).
    /// @param account The participant.
    /// @return The cumulative epsilon, in micro-epsilon.
    function epsilonSpent(address account) external view returns (uint64) {
        return _epsilonSpent[account];
    }

    /// @notice Everything stored about a round; all zero (status None) for a round never opened.
    /// @param roundId The round.
    /// @return The round record.
    function getRound(uint256 roundId) external view returns (RoundInfo memory) {
        return _rounds[roundId];
    }

    /// @notice Whether the commit phase of a round is over: true for a finalised or closed round; for an open
    /// round, once its deadline has passed or at least `eligibleCount` participants committed (in a commit-reveal
    /// round: sealed; its reveal phase then begins; in a secure round: its advertise phase is over and every
    /// participant who advertised committed; its unmask phase then begins; in a signed round: its commitment set was
    /// posted and its escape window is over, or no set was posted by the deadline + the escape duration).
    /// @dev Evaluated at the current block's timestamp.
    /// @param roundId The round; reverts with FederationUnknownRound if it was never opened.
    /// @return True if the round may be finalised or closed (or already was).
    function commitPhaseOver(uint256 roundId) external view returns (bool) {
        RoundInfo storage r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status == RoundStatus.None) revert FederationUnknownRound(roundId);
        return status != RoundStatus.Open || _commitPhaseOver(roundId, r);
    }

    /// @notice Whether a round may be finalised or closed (or already was): for a round without commit-reveal,
    /// `commitPhaseOver`; for a commit-reveal round, once its reveal deadline has passed, or its commit phase is over
    /// and every sealed update was revealed; for a secure round, once its unmask deadline has passed, or its commit
    /// phase is over and every committer posted its unmasking shares.
    /// @dev Evaluated at the current block's timestamp.
    /// @param roundId The round; reverts with FederationUnknownRound if it was never opened.
    /// @return True if the round may be finalised or closed (or already was).
    function revealPhaseOver(uint256 roundId) external view returns (bool) {
        RoundInfo storage r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status == RoundStatus.None) revert FederationUnknownRound(roundId);
        return status != RoundStatus.Open || (_revealPhaseOver(roundId, r) && _unmaskPhaseOver(roundId, r));
    }

    /// @notice Whether the advertise phase of a secure round is over, so that masked inputs may be committed: once its
    /// advertise deadline has passed or every eligible participant advertised; true once the round is no longer open.
    /// Its other phases: `commitPhaseOver` and `revealPhaseOver` (whether it may end: its unmask phase is over); its
    /// deadlines and counts: `getRound`.
    /// @dev Evaluated at the current block's timestamp.
    /// @param roundId The round; reverts with FederationNotSecureRound unless it is a secure round.
    /// @return True once masked inputs may be committed (or the round is over).
    function advertisePhaseOver(uint256 roundId) external view returns (bool) {
        RoundInfo storage r = _rounds[roundId];
        if (!r.secureRound) revert FederationNotSecureRound(roundId);
        return r.status != RoundStatus.Open || _advertisePhaseOver(r);
    }

    /// @notice A participant's part in a secure round.
    /// @param roundId The round.
    /// @param account The participant.
    /// @return advertised Whether it advertised its keys.
    /// @return unmasked Whether it posted its unmasking shares.
    function secureParticipation(uint256 roundId, address account) external view returns (bool advertised, bool unmasked) {
        uint8 flags = _secure[roundId][account];
        return (flags & ADVERTISED != 0, flags & UNMASKED != 0);
    }

    /// @notice The seal a participant committed in a commit-reveal round and has not revealed yet (zero if none).
    /// @param roundId The round.
    /// @param account The participant.
    /// @return The seal.
    function sealOf(uint256 roundId, address account) external view returns (bytes32) {
        return _seals[roundId][account];
    }

    /// @notice The signed-round record of a round (all zero for any other round).
    /// @param roundId The round.
    /// @return signed Whether it is a signed round.
    /// @return escapeDuration Seconds of its escape window.
    /// @return escapeDeadline Last second (inclusive) of its escape window; 0 until its commitment set is posted.
    /// @return setCount Number of signed commitments in the posted set.
    /// @return setRoot Merkle root of the posted set (zero for an empty set or none posted).
    /// @return setDigest Digest of the posted set blob (zero before it is posted).
    function signedRound(uint256 roundId)
        external
        view
        returns (
            bool signed,
            uint64 escapeDuration,
            uint64 escapeDeadline,
            uint32 setCount,
            bytes32 setRoot,
            bytes32 setDigest
        )
    {
        SignedRoundData storage sr = _signed[roundId];
        return (_rounds[roundId].signedRound, sr.escapeDuration, sr.escapeDeadline, sr.setCount, sr.setRoot, sr.setDigest);
    }

    // ---------------------------------------------------------------- internal

    /// @dev Removes `account` (see `remove`); the event names the caller as the actor.
    function _remove(address account, string calldata reason) private {
        ParticipantData storage p = _participants[account];
        ParticipantStatus status = p.status;
        bool member = membership.isMember(account);
        if (status != ParticipantStatus.Pending && status != ParticipantStatus.Active) {
            if (status != ParticipantStatus.None || !member) revert FederationInvalidStatus(account, status);
        }
        p.status = ParticipantStatus.Removed;
        p.statusChangedBlock = uint48(block.number);
        if (status == ParticipantStatus.Active) --_activeCount;
        emit ParticipantRemoved(account, msg.sender, reason);
        if (member) membership.burn(account);
    }

    /// @dev The checks and effects of `openRound` (and of `openSecureRound`, whose commit phase starts at its advertise
    /// deadline): opens the next round with its commit phase from `commitStart` for `commitDuration` seconds and
    /// emits `RoundOpened`.
    // slither-disable-next-line cyclomatic-complexity (the checks of openRound, in argument order)
    function _newRound(
        bytes32 baseModelDigest,
        string calldata baseModelCid,
        uint256 commitStart,
        uint64 commitDuration,
        uint32 minUpdates,
        uint64 revealDuration
    ) private returns (uint256 roundId, RoundInfo storage r) {
        uint32 taskVersion = _task.version;
        if (taskVersion == 0) revert FederationTaskNotConfigured();
        uint256 latest = _latestRoundId;
        // slither-disable-next-line incorrect-equality (an enum state, not a balance: see contracts/README.md)
        if (_rounds[latest].status == RoundStatus.Open) revert FederationRoundInProgress(latest);
        if (baseModelDigest == bytes32(0)) revert FederationInvalidRound("baseModelDigest", 0);
        if (bytes(baseModelCid).length == 0) revert FederationInvalidRound("baseModelCid", 0);
        uint256 deadline = commitStart + commitDuration;
        uint256 revealDeadline;
        {
            uint64 maxCommitDuration = _task.maxCommitDuration;
            if (commitDuration == 0 || deadline > type(uint48).max) {
                revert FederationInvalidRound("commitDuration", commitDuration);
            }
            if (commitDuration > maxCommitDuration) {
                revert FederationCommitWindowTooLong(commitDuration, maxCommitDuration);
            }
            if (minUpdates == 0) revert FederationInvalidRound("minUpdates", 0);
            revealDeadline = _revealDeadline(deadline, revealDuration, maxCommitDuration, _task.epsilonBudget != 0);
        }
        {
            bytes32 current = _currentModelDigest;
            if (current != bytes32(0) && baseModelDigest != current) {
                revert FederationBaseModelMismatch(current, baseModelDigest);
            }
        }
        _checkAttestationQuorum();
        roundId = latest + 1;
        _latestRoundId = uint64(roundId);
        r = _rounds[roundId];
        r.status = RoundStatus.Open;
        r.deadline = uint48(deadline);
        r.minUpdates = minUpdates;
        r.eligibleCount = _activeCount;
        r.taskVersion = taskVersion;
        r.baseModelDigest = baseModelDigest;
        r.privateRound = _task.epsilonBudget != 0;
        if (revealDeadline != 0) {
            r.commitReveal = true;
            r.revealDeadline = uint64(revealDeadline);
        }
        emit RoundOpened(
            roundId,
            msg.sender,
            baseModelDigest,
            baseModelCid,
            uint64(deadline),
            minUpdates,
            taskVersion,
            uint64(revealDeadline)
        );
    }

    /// @dev The checks and effects of `commitPrivateUpdate` shared with `commitUpdate` (which has them inline, for
    /// its gas; the one difference: here the round must be private, there it must not): the round must be open, not
    /// commit-reveal, private, before its deadline; the caller active and not committed in it yet; the values a valid
    /// commitment. Reads and writes two slots that are already non-zero, each read once.
    // slither-disable-next-line cyclomatic-complexity (every check inline: see contracts/README.md)
    function _commitPrivate(uint256 roundId, bytes32 updateDigest, string calldata cid, uint64 numSamples) private {
        ParticipantData storage p = _participants[msg.sender];
        RoundInfo storage r = _rounds[roundId];
        uint64 lastCommittedRound;
        uint64 approvedSamples;
        uint32 commitCount;
        {
            // every field read before the first branch: one SLOAD per slot
            ParticipantStatus pStatus = p.status;
            lastCommittedRound = p.lastCommittedRound;
            approvedSamples = p.declaredSamples;
            RoundStatus rStatus = r.status;
            // commitReveal or secureRound, the bytes 27 and 29 of the slot, in one mask: no branch, no extra SLOAD (a
            // signed round is never private: it is refused below as any round that is not private)
            uint256 special;
            // slither-disable-next-line assembly (one masked read of the round's first slot: see contracts/README.md)
            assembly ("memory-safe") {
                special := and(sload(r.slot), shl(216, 0xff00ff))
            }
            bool privateRound = r.privateRound;
            uint64 deadline = r.deadline;
            commitCount = r.commitCount;
            if (pStatus != ParticipantStatus.Active) {
                if (pStatus == ParticipantStatus.None) revert FederationNotRegistered(msg.sender);
                revert FederationNotActive(msg.sender, pStatus);
            }
            if (rStatus != RoundStatus.Open) {
                if (rStatus == RoundStatus.None) revert FederationUnknownRound(roundId);
                revert FederationRoundNotOpen(roundId, rStatus);
            }
            if (special != 0) _checkSpecialCommit();
            if (!privateRound) revert FederationNotPrivateRound(roundId);
            if (block.timestamp > deadline) revert FederationCommitTooLate(roundId, deadline);
        }
        if (lastCommittedRound == roundId) revert FederationDuplicateCommit(roundId, msg.sender);
        if (updateDigest == bytes32(0)) revert FederationInvalidCommitment("updateDigest");
        if (bytes(cid).length == 0) revert FederationInvalidCommitment("cid");
        if (numSamples == 0) revert FederationInvalidCommitment("numSamples");
        if (numSamples > approvedSamples) revert FederationTooManySamples(msg.sender, numSamples, approvedSamples);
        p.lastCommittedRound = uint64(roundId);
        r.commitCount = commitCount + 1;
    }

    /// @dev The check of a commit (`commitUpdate`, `commitPrivateUpdate`) in a commit-reveal round, which takes none,
    /// in a secure round, which takes a masked input only after its advertise phase and from a participant who
    /// advertised in it, or (`commitUpdate` only) in a signed round, which takes a forced commitment only in its escape
    /// window. Returns the last second the commit may come: the escape deadline in a signed round, the deadline else.
    /// Takes the round id from the calldata (the first argument of both), as an argument would not fit on their stack.
    function _checkSpecialCommit() private view returns (uint64) {
        uint256 roundId = uint256(bytes32(msg.data[4:36]));
        RoundInfo storage r = _rounds[roundId];
        if (r.signedRound) {
            uint64 escapeDeadline = _signed[roundId].escapeDeadline;
            // slither-disable-next-line incorrect-equality (no escape deadline: no set posted; see contracts/README.md)
            if (escapeDeadline == 0) revert FederationEscapeWindowNotOpen(roundId);
            if (block.timestamp > escapeDeadline) revert FederationEscapeWindowClosed(roundId, escapeDeadline);
            return escapeDeadline;
        }
        if (r.commitReveal) revert FederationCommitRevealRound(roundId);
        if (!_advertisePhaseOver(r)) revert FederationAdvertisePhaseActive(roundId, r.advertiseDeadline);
        if (_secure[roundId][msg.sender] & ADVERTISED == 0) revert FederationNotAdvertised(roundId, msg.sender);
        return r.deadline;
    }

    /// @dev Reverts unless `duration` (the parameter `field` of `openSecureRound` or `openSignedRound`) is non-zero, at most the task's
    /// maximum commit duration, and its phase's deadline `phaseDeadline` fits in a uint64.
    function _checkWindow(string memory field, uint64 duration, uint256 phaseDeadline) private view {
        uint64 maxDuration = _task.maxCommitDuration;
        if (duration == 0 || phaseDeadline > type(uint64).max) revert FederationInvalidRound(field, duration);
        if (duration > maxDuration) revert FederationCommitWindowTooLong(duration, maxDuration);
    }

    /// @dev The open secure round a participant in status `pStatus` posts an advertisement or its shares in.
    function _secureRound(ParticipantStatus pStatus, uint256 roundId) private view returns (RoundInfo storage r) {
        r = _openRound(pStatus, roundId);
        if (!r.secureRound) revert FederationNotSecureRound(roundId);
    }

    /// @dev Records that the caller posted the message `bit` (ADVERTISED or UNMASKED) in the secure round, once, with
    /// a non-zero digest and a non-empty CID.
    function _markSecure(uint256 roundId, uint8 bit, bytes32 digest, string calldata cid) private {
        uint8 flags = _secure[roundId][msg.sender];
        if (flags & bit != 0) {
            if (bit == ADVERTISED) revert FederationDuplicateAdvertisement(roundId, msg.sender);
            revert FederationDuplicateUnmaskingShares(roundId, msg.sender);
        }
        if (digest == bytes32(0)) revert FederationInvalidCommitment("digest");
        if (bytes(cid).length == 0) revert FederationInvalidCommitment("cid");
        _secure[roundId][msg.sender] = flags | bit;
    }

    /// @dev Configures the next task version once no round is open (the caller checks that): see `configureTask`;
    /// with `isPrivate`, `configurePrivateTask`, which also requires a non-zero policy digest and budget and emits
    /// `PrivacyPolicySet`. A task without a privacy policy stores a zero digest and budget, which ends the privacy
    /// budget of the version before.
    function _configureTask(
        bytes32 modelSpecDigest,
        bytes32 strategyDigest,
        bytes32 dataSchemaDigest,
        string calldata configCid,
        uint64 maxCommitDuration,
        bool isPrivate,
        bytes32 privacyPolicyDigest,
        uint64 epsilonBudget
    ) private {
        if (modelSpecDigest == bytes32(0)) revert FederationInvalidTask("modelSpecDigest");
        if (strategyDigest == bytes32(0)) revert FederationInvalidTask("strategyDigest");
        if (dataSchemaDigest == bytes32(0)) revert FederationInvalidTask("dataSchemaDigest");
        if (bytes(configCid).length == 0) revert FederationInvalidTask("configCid");
        if (maxCommitDuration == 0) revert FederationInvalidTask("maxCommitDuration");
        if (isPrivate) {
            if (privacyPolicyDigest == bytes32(0)) revert FederationInvalidTask("privacyPolicyDigest");
            if (epsilonBudget == 0) revert FederationInvalidTask("epsilonBudget");
        }
        uint32 version = _task.version + 1;
        _task = TaskData(
            version,
            maxCommitDuration,
            epsilonBudget,
            modelSpecDigest,
            strategyDigest,
            dataSchemaDigest,
            privacyPolicyDigest
        );
        emit TaskConfigured(
            version, msg.sender, modelSpecDigest, strategyDigest, dataSchemaDigest, configCid, maxCommitDuration
        );
        if (isPrivate) emit PrivacyPolicySet(version, msg.sender, privacyPolicyDigest, epsilonBudget);
    }

    /// @dev The round, if it is finalised (not open, closed, disputed or unknown).
    function _finalizedRound(uint256 roundId) private view returns (RoundInfo storage r) {
        r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status != RoundStatus.Finalized) revert FederationRoundNotFinalized(roundId, status);
    }

    /// @dev Under a verification policy, reverts unless the round the current model comes from has its quorum of
    /// positive attestations.
    function _checkAttestationQuorum() private view {
        uint8 policy = _verificationPolicy;
        uint256 modelRound = _currentModelRound;
        if (policy == 0 || modelRound == 0) return;
        uint32 required = _quorum(policy, _rounds[modelRound].includedCount);
        uint32 attestations = _tallies[modelRound].ok;
        if (attestations < required) revert FederationAttestationQuorumNotMet(modelRound, attestations, required);
    }

    /// @dev ceil(policy * includedCount / 100).
    function _quorum(uint8 policy, uint32 includedCount) private pure returns (uint32) {
        return uint32((uint256(policy) * includedCount + 99) / 100);
    }

    /// @dev The round, if it is open and its commit phase (and reveal or unmask phase) is over.
    function _endableRound(uint256 roundId) private view returns (RoundInfo storage r) {
        r = _liveRound(roundId);
        if (!_commitPhaseOver(roundId, r)) {
            revert FederationCommitPhaseActive(roundId, r.signedRound ? _signedEnd(roundId, r) : uint64(r.deadline));
        }
        if (!_revealPhaseOver(roundId, r)) revert FederationRevealPhaseActive(roundId, r.revealDeadline);
        if (!_unmaskPhaseOver(roundId, r)) revert FederationUnmaskPhaseActive(roundId, r.unmaskDeadline);
    }

    /// @dev The round, if it is open.
    function _liveRound(uint256 roundId) private view returns (RoundInfo storage r) {
        r = _rounds[roundId];
        RoundStatus status = r.status;
        if (status != RoundStatus.Open) {
            if (status == RoundStatus.None) revert FederationUnknownRound(roundId);
            revert FederationRoundNotOpen(roundId, status);
        }
    }

    /// @dev The round of a valid reveal by the caller: reverts unless the round is an open commit-reveal round past
    /// its commit phase and before its reveal deadline, the caller sealed in it and has not revealed, and the values
    /// are a valid commitment that hashes to the seal.
    function _checkReveal(
        uint256 roundId,
        bytes32 updateDigest,
        string calldata cid,
        uint64 numSamples,
        bytes32 metadataDigest,
        bytes32 salt
    ) private view returns (RoundInfo storage r) {
        ParticipantData storage p = _participants[msg.sender];
        r = _openRound(p.status, roundId);
        if (!r.commitReveal) revert FederationNotCommitRevealRound(roundId);
        if (!_commitPhaseOver(roundId, r)) revert FederationCommitPhaseActive(roundId, r.deadline);
        if (block.timestamp > r.revealDeadline) revert FederationRevealTooLate(roundId, r.revealDeadline);
        if (p.lastCommittedRound != roundId) revert FederationNotSealed(roundId, msg.sender);
        bytes32 seal = _seals[roundId][msg.sender];
        if (seal == bytes32(0)) revert FederationDuplicateCommit(roundId, msg.sender); // revealed already
        if (updateDigest == bytes32(0)) revert FederationInvalidCommitment("updateDigest");
        if (bytes(cid).length == 0) revert FederationInvalidCommitment("cid");
        if (numSamples == 0) revert FederationInvalidCommitment("numSamples");
        uint64 approvedSamples = p.declaredSamples;
        if (numSamples > approvedSamples) revert FederationTooManySamples(msg.sender, numSamples, approvedSamples);
        bytes32 revealed = _updateSeal(roundId, msg.sender, updateDigest, cid, numSamples, metadataDigest, salt);
        if (revealed != seal) revert FederationSealMismatch(roundId, msg.sender, seal, revealed);
    }

    /// @dev The round a participant in status `pStatus` commits to, seals in or reveals in: it must be active and
    /// the round open.
    function _openRound(ParticipantStatus pStatus, uint256 roundId) private view returns (RoundInfo storage r) {
        _checkActive(pStatus);
        r = _liveRound(roundId);
    }

    /// @dev Reverts unless the caller, in status `pStatus`, is an active participant.
    function _checkActive(ParticipantStatus pStatus) private view {
        if (pStatus != ParticipantStatus.Active) {
            if (pStatus != ParticipantStatus.None) revert FederationNotActive(msg.sender, pStatus);
            revert FederationNotRegistered(msg.sender);
        }
    }

    /// @dev Deadline passed, or as many commits (seals, in a commit-reveal round) as participants eligible when the
    /// round opened. One slot read for a round without commit-reveal.
    /// In a secure round: its advertise phase is over and every participant who advertised committed.
    /// In a signed round: its commitment set was posted and its escape window is over (always: a set the contract cannot
    /// check must not cut off the window of a participant it leaves out); or no set was posted and the deadline + the
    /// escape duration passed (no set can come any more).
    function _commitPhaseOver(uint256 roundId, RoundInfo storage r) private view returns (bool) {
        if (r.signedRound) return block.timestamp > _signedEnd(roundId, r);
        if (block.timestamp > r.deadline) return true;
        if (r.secureRound) return _advertisePhaseOver(r) && r.commitCount >= r.advertisementCount;
        return r.commitReveal ? r.sealCount >= r.eligibleCount : r.commitCount >= r.eligibleCount;
    }

    /// @dev The advertise phase of a secure round is over: its deadline passed, or every participant eligible when the
    /// round opened advertised.
    function _advertisePhaseOver(RoundInfo storage r) private view returns (bool) {
        return block.timestamp > r.advertiseDeadline || r.advertisementCount >= r.eligibleCount;
    }

    /// @dev The unmask phase of a secure round is over (true for any other round): its deadline passed, or its commit
    /// phase is over and every committer posted its unmasking shares.
    function _unmaskPhaseOver(uint256 roundId, RoundInfo storage r) private view returns (bool) {
        if (!r.secureRound || block.timestamp > r.unmaskDeadline) return true;
        return _commitPhaseOver(roundId, r) && r.unmaskingCount >= r.commitCount;
    }

    /// @dev The last second of a signed round: its escape deadline once its commitment set was posted, the deadline +
    /// the escape duration (the last second the set may be posted) before.
    function _signedEnd(uint256 roundId, RoundInfo storage r) private view returns (uint64) {
        SignedRoundData storage sr = _signed[roundId];
        uint64 escapeDeadline = sr.escapeDeadline;
        return escapeDeadline != 0 ? escapeDeadline : r.deadline + sr.escapeDuration;
    }

    /// @dev The round may end: its commit phase is over and, in a commit-reveal round, its reveal deadline passed or
    /// every seal was revealed.
    function _revealPhaseOver(uint256 roundId, RoundInfo storage r) private view returns (bool) {
        if (!r.commitReveal) return _commitPhaseOver(roundId, r);
        if (block.timestamp > r.revealDeadline) return true;
        return _commitPhaseOver(roundId, r) && r.commitCount >= r.sealCount;
    }

    /// @dev The deadline of the reveal phase (0 without one); reverts when a reveal phase is asked for a private round
    /// (`privateRound`), when `revealDuration` exceeds the task's maximum, or when the reveal deadline would not fit in
    /// a uint64.
    function _revealDeadline(uint256 deadline, uint64 revealDuration, uint64 maxCommitDuration, bool privateRound)
        private
        pure
        returns (uint256 revealDeadline)
    {
        if (revealDuration == 0) return 0;
        if (privateRound) revert FederationInvalidRound("revealDuration", revealDuration);
        if (revealDuration > maxCommitDuration) revert FederationRevealWindowTooLong(revealDuration, maxCommitDuration);
        revealDeadline = deadline + revealDuration;
        if (revealDeadline > type(uint64).max) revert FederationInvalidRound("revealDuration", revealDuration);
    }

    /// @dev The seal of an update: keccak256(abi.encode(roundId, account, updateDigest, keccak256(bytes(cid)),
    /// numSamples, metadataDigest, salt)) (`sealUpdate`; computed off chain by `fedchain.ports.update_seal`).
    function _updateSeal(
        uint256 roundId,
        address account,
        bytes32 updateDigest,
        string calldata cid,
        uint64 numSamples,
        bytes32 metadataDigest,
        bytes32 salt
    ) private pure returns (bytes32) {
        return keccak256(abi.encode(roundId, account, updateDigest, keccak256(bytes(cid)), numSamples, metadataDigest, salt));
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IFederation
/// @notice The custom errors, events and status enums of the Federation ledger (OpenZeppelin `IAccessControl`
/// style: the contract declares behaviour, the interface declares what it can say).
/// @dev Errors carry the offending values (ERC-6093 spirit). The five invalid-argument errors
/// (`FederationInvalidRegistration`, `FederationInvalidTask`, `FederationInvalidRound`,
/// `FederationInvalidCommitment`, `FederationInvalidResult`) name the first offending parameter, in argument
/// order, in `field`: the parameter's name exactly as it appears in the function's ABI (e.g. "configCid").
/// Each of those checks refuses a zero digest, an empty string or a zero number, so the offending value is
/// implied by the field, except for `openRound`'s `commitDuration`, which is also refused when the deadline
/// would not fit in a uint48; `FederationInvalidRound` therefore carries the offending value as well.
/// Every event names its actor: the participant itself, or the admin or aggregator that acted.
interface IFederation {
    /// @notice Lifecycle of a participant: registered (Pending), admitted (Active), or Removed.
    enum ParticipantStatus {
        None,
        Pending,
        Active,
        Removed
    }

    /// @notice Lifecycle of a round: Open for commits, then Finalized (with a model) or Closed (without). A
    /// commit-reveal round is Open through its commit (sealing) phase and its reveal phase. A finalised round whose
    /// result the members refuted is Disputed (by an executed governance proposal): its model is not built on.
    enum RoundStatus {
        None,
        Open,
        Finalized,
        Closed,
        Disputed
    }

    /// @notice The proof that the caller's commitment is among the updates a finalised round included: the values of
    /// its `UpdateCommitted` event (the CID as keccak256(bytes(cid))) and the Merkle proof of its leaf
    /// (keccak256(bytes.concat(keccak256(abi.encode(roundId, participant, updateDigest, cidHash, numSamples,
    /// metadataDigest)))), OpenZeppelin's StandardMerkleTree convention) against the round's Merkle root.
    struct Inclusion {
        bytes32 updateDigest;
        bytes32 cidHash;
        uint64 numSamples;
        bytes32 metadataDigest;
        bytes32[] proof;
    }

    // ---------------------------------------------------------------- errors

    /// @notice The caller is already registered (in any status).
    /// @param participant The caller.
    error FederationAlreadyRegistered(address participant);
    /// @notice A registration with an invalid argument: an empty organisation name or a zero declared dataset size.
    /// @param field The offending parameter of `register`: "organisation" or "declaredSamples".
    error FederationInvalidRegistration(string field);
    /// @notice The participant is not in a status that allows this transition.
    /// @param participant The participant acted upon.
    /// @param status Its current status.
    error FederationInvalidStatus(address participant, ParticipantStatus status);
    /// @notice A round is open; the action must wait until it is finalised or closed.
    /// @param roundId The open round.
    error FederationRoundInProgress(uint256 roundId);
    /// @notice A task configuration with an invalid argument: a zero digest, an empty CID or a zero maximum commit
    /// duration.
    /// @param field The offending parameter of `configureTask` or `configurePrivateTask`: "modelSpecDigest",
    /// "strategyDigest", "dataSchemaDigest", "configCid", "maxCommitDuration", "privacyPolicyDigest" or
    /// "epsilonBudget".
    error FederationInvalidTask(string field);
    /// @notice No task has been configured yet.
    error FederationTaskNotConfigured();
    /// @notice The new round does not start from the latest finalised model.
    /// @param expected The latest finalised model digest.
    /// @param given The base model digest given.
    error FederationBaseModelMismatch(bytes32 expected, bytes32 given);
    /// @notice A round with an invalid argument: a zero digest, an empty CID, a zero or too long duration, or a
    /// zero minimum.
    /// @param field The offending parameter of `openRound`: "baseModelDigest", "baseModelCid", "commitDuration",
    /// "minUpdates" or "revealDuration" (a reveal deadline that would not fit in a uint64, or any reveal phase in a
    /// private round: a private round cannot be commit-reveal), or of `openSecureRound`: "advertiseDuration" or
    /// "unmaskDuration" (zero, or a deadline that would not fit in a uint64), or of `openSignedRound`: "escapeDuration"
    /// (zero, or the deadline + the escape duration would not fit in a uint64).
    /// @param value The offending value as a number: 0 for the digest, the length 0 for the CID, the duration
    /// (0, or so long that the deadline would not fit: the commit deadline is a uint48, the other deadlines uint64),
    /// 0 for the minimum, the reveal duration.
    error FederationInvalidRound(string field, uint256 value);
    /// @notice A round's commit window (or, of a secure round, its advertise or unmask window) is longer than the task
    /// allows, so it could be held open too long.
    /// @param commitDuration The duration given (seconds).
    /// @param maxCommitDuration The task's maximum commit duration (seconds).
    error FederationCommitWindowTooLong(uint256 commitDuration, uint64 maxCommitDuration);
    /// @notice A round's reveal window is longer than the task's maximum commit duration (which bounds it too).
    /// @param revealDuration The reveal duration given (seconds).
    /// @param maxCommitDuration The task's maximum commit duration (seconds).
    error FederationRevealWindowTooLong(uint256 revealDuration, uint64 maxCommitDuration);
    /// @notice The caller never registered.
    /// @param participant The caller.
    error FederationNotRegistered(address participant);
    /// @notice The caller is registered but not active.
    /// @param participant The caller.
    /// @param status Its current status.
    error FederationNotActive(address participant, ParticipantStatus status);
    /// @notice No round with this id was ever opened.
    /// @param roundId The round id given.
    error FederationUnknownRound(uint256 roundId);
    /// @notice The round exists but is not open.
    /// @param roundId The round.
    /// @param status Its current status.
    error FederationRoundNotOpen(uint256 roundId, RoundStatus status);
    /// @notice The commit deadline of the round has passed.
    /// @param roundId The round.
    /// @param deadline Its deadline (unix seconds, inclusive).
    error FederationCommitTooLate(uint256 roundId, uint64 deadline);
    /// @notice The participant already committed in this round.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationDuplicateCommit(uint256 roundId, address participant);
    /// @notice A commitment with an invalid argument: a zero digest, an empty CID or zero samples.
    /// @param field The offending parameter of `commitUpdate`, `commitPrivateUpdate` or `revealUpdate`
    /// ("updateDigest", "cid" or "numSamples"), of `commitPrivateUpdate` ("accountantDigest"), or of `sealUpdate`
    /// ("seal"), or of `postAdvertisement` and `postUnmaskingShares` ("digest" or "cid").
    error FederationInvalidCommitment(string field);
    /// @notice A commitment claims more training samples than the participant's approved dataset size.
    /// @param participant The caller.
    /// @param numSamples The sample count given.
    /// @param approvedSamples The dataset size declared at registration and approved with admission.
    error FederationTooManySamples(address participant, uint64 numSamples, uint64 approvedSamples);
    /// @notice `commitUpdate` in a commit-reveal round: commit with `sealUpdate`, then `revealUpdate`.
    /// @param roundId The round.
    error FederationCommitRevealRound(uint256 roundId);
    /// @notice `commitUpdate` in a private round (one opened while the task has a privacy budget): commit with
    /// `commitPrivateUpdate`, which carries the participant's privacy claim.
    /// @param roundId The round.
    error FederationPrivacyClaimRequired(uint256 roundId);
    /// @notice `commitPrivateUpdate` in a round that is not private (opened while the task had no privacy budget):
    /// commit with `commitUpdate`.
    /// @param roundId The round.
    error FederationNotPrivateRound(uint256 roundId);
    /// @notice A privacy claim below the participant's recorded cumulative epsilon: a cumulative epsilon never
    /// decreases.
    /// @param participant The caller.
    /// @param spent Its recorded cumulative epsilon (micro-epsilon).
    /// @param claimed The cumulative epsilon claimed (micro-epsilon).
    error FederationPrivacyClaimDecreased(address participant, uint64 spent, uint64 claimed);
    /// @notice A privacy claim that would take the participant past the task's epsilon budget.
    /// @param participant The caller.
    /// @param spent Its recorded cumulative epsilon before this commitment (micro-epsilon).
    /// @param claimed The cumulative epsilon claimed with this commitment (micro-epsilon).
    /// @param budget The task's epsilon budget per participant (micro-epsilon).
    error FederationPrivacyBudgetExceeded(address participant, uint64 spent, uint64 claimed, uint64 budget);
    /// @notice `sealUpdate` or `revealUpdate` in a round opened without a reveal phase: use `commitUpdate`.
    /// @param roundId The round.
    error FederationNotCommitRevealRound(uint256 roundId);
    /// @notice A reveal from a participant that sealed no update in this round.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationNotSealed(uint256 roundId, address participant);
    /// @notice The revealed update does not hash to the participant's seal.
    /// @param roundId The round.
    /// @param participant The caller.
    /// @param seal The seal committed in the commit phase.
    /// @param revealed The seal of the revealed values.
    error FederationSealMismatch(uint256 roundId, address participant, bytes32 seal, bytes32 revealed);
    /// @notice The reveal deadline of the round has passed.
    /// @param roundId The round.
    /// @param revealDeadline Its reveal deadline (unix seconds, inclusive).
    error FederationRevealTooLate(uint256 roundId, uint64 revealDeadline);
    /// @notice The reveal phase is still running: the reveal deadline has not passed and not every sealed update
    /// was revealed.
    /// @param roundId The round.
    /// @param revealDeadline Its reveal deadline (unix seconds, inclusive).
    error FederationRevealPhaseActive(uint256 roundId, uint64 revealDeadline);
    /// @notice The commit phase is still running: the deadline has not passed and fewer participants committed
    /// than were active when the round opened.
    /// @param roundId The round.
    /// @param deadline Its deadline (unix seconds, inclusive).
    error FederationCommitPhaseActive(uint256 roundId, uint64 deadline);
    /// @notice More updates claimed to be included than were committed.
    /// @param includedCount The count given.
    /// @param commitCount The number of commitments in the round.
    error FederationInvalidIncludedCount(uint32 includedCount, uint32 commitCount);
    /// @notice Fewer updates included than the round's minimum.
    /// @param roundId The round.
    /// @param includedCount The count given.
    /// @param minUpdates The round's minimum.
    error FederationTooFewUpdates(uint256 roundId, uint32 includedCount, uint32 minUpdates);
    /// @notice A result with an invalid argument: a zero digest or Merkle root, or an empty CID.
    /// @param field The offending parameter of `finalizeRound`: "modelDigest", "modelCid", "merkleRoot",
    /// "aggregationDigest", "evidenceDigest" or "evidenceCid"; or of `postCommitmentSet`: "setRoot" (zero with a
    /// non-zero count, or non-zero with a zero count), "setDigest" or "setCid".
    error FederationInvalidResult(string field);

    /// @notice The round is not finalised (it is unknown, open, closed or disputed).
    /// @param roundId The round.
    /// @param status Its current status.
    error FederationRoundNotFinalized(uint256 roundId, RoundStatus status);
    /// @notice A verification policy above 100 percent.
    /// @param quorumPercent The percentage given.
    error FederationInvalidPolicy(uint256 quorumPercent);
    /// @notice The caller's commitment is not among the round's included updates (no valid Merkle proof of its leaf).
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationNotIncluded(uint256 roundId, address participant);
    /// @notice The participant already attested this round.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationAlreadyAttested(uint256 roundId, address participant);
    /// @notice A positive attestation names another model than the one the round recorded.
    /// @param roundId The round.
    /// @param expected The round's model digest.
    /// @param given The model digest attested.
    error FederationAttestationModelMismatch(uint256 roundId, bytes32 expected, bytes32 given);
    /// @notice A negative attestation without its findings.
    /// @param field The offending parameter of `attestRound`: "findingsDigest" or "findingsCid".
    error FederationInvalidAttestation(string field);
    /// @notice Under a verification policy, the round the current model came from has too few positive attestations
    /// for the next round to open.
    /// @param roundId The round whose model is current.
    /// @param attestations Its positive attestations.
    /// @param required The attestations the policy requires (see `attestationQuorum`).
    error FederationAttestationQuorumNotMet(uint256 roundId, uint32 attestations, uint32 required);
    /// @notice A dispute without its findings.
    /// @param field The offending parameter of `disputeRound`: "findingsDigest" or "findingsCid".
    error FederationInvalidDispute(string field);
    /// @notice An exclusion contest after its window: the round after the next one has opened.
    /// @param roundId The round contested.
    /// @param latestRoundId The latest round opened.
    error FederationContestWindowClosed(uint256 roundId, uint256 latestRoundId);
    /// @notice The participant already contested its exclusion from this round.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationAlreadyContested(uint256 roundId, address participant);
    /// @notice An exclusion contest with an invalid argument: a zero digest or an empty CID.
    /// @param field The offending parameter of `contestExclusion`: "updateDigest" or "cid".
    error FederationInvalidContest(string field);
    /// @notice The participant did not contest its exclusion from this round.
    /// @param roundId The round.
    /// @param participant The participant named.
    error FederationNoContest(uint256 roundId, address participant);
    /// @notice The contest was already answered.
    /// @param roundId The round.
    /// @param participant The participant named.
    error FederationContestAnswered(uint256 roundId, address participant);
    /// @notice The round is not a secure-aggregation round, so it takes no advertisement nor unmasking shares.
    /// @param roundId The round.
    error FederationNotSecureRound(uint256 roundId);
    /// @notice The advertise phase of the secure round is over: its deadline passed.
    /// @param roundId The round.
    /// @param advertiseDeadline Its advertise deadline (unix seconds, inclusive).
    error FederationAdvertiseTooLate(uint256 roundId, uint64 advertiseDeadline);
    /// @notice The advertise phase of the secure round is not over yet: no masked input before it ends (its deadline
    /// passes, or every eligible participant advertised).
    /// @param roundId The round.
    /// @param advertiseDeadline Its advertise deadline (unix seconds, inclusive).
    error FederationAdvertisePhaseActive(uint256 roundId, uint64 advertiseDeadline);
    /// @notice The participant already advertised its keys in this secure round.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationDuplicateAdvertisement(uint256 roundId, address participant);
    /// @notice The participant did not advertise its keys in this secure round, so its masked input could not be
    /// unmasked: it may not commit.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationNotAdvertised(uint256 roundId, address participant);
    /// @notice The participant did not commit a masked input in this secure round, so it holds no shares to post.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationNotCommitted(uint256 roundId, address participant);
    /// @notice The participant already posted its unmasking shares in this secure round.
    /// @param roundId The round.
    /// @param participant The caller.
    error FederationDuplicateUnmaskingShares(uint256 roundId, address participant);
    /// @notice The unmask deadline of the secure round has passed.
    /// @param roundId The round.
    /// @param unmaskDeadline Its unmask deadline (unix seconds, inclusive).
    error FederationUnmaskTooLate(uint256 roundId, uint64 unmaskDeadline);
    /// @notice The unmask phase of the secure round is not over: the round cannot end before its unmask deadline
    /// passes or every committer posted its unmasking shares.
    /// @param roundId The round.
    /// @param unmaskDeadline Its unmask deadline (unix seconds, inclusive).
    error FederationUnmaskPhaseActive(uint256 roundId, uint64 unmaskDeadline);
    /// @notice A signed round asked for while the task has a privacy budget: signed private rounds are not supported
    /// (their commitments would carry no privacy claim on chain).
    /// @param epsilonBudget The task's epsilon budget per participant (micro-epsilon).
    error FederationPrivateSignedRound(uint64 epsilonBudget);
    /// @notice The round is not a signed round, so it takes no commitment set.
    /// @param roundId The round.
    error FederationNotSignedRound(uint256 roundId);
    /// @notice The commitment set of this signed round was posted already.
    /// @param roundId The round.
    error FederationCommitmentSetPosted(uint256 roundId);
    /// @notice The commitment set of a signed round comes too late: its deadline plus its escape duration has passed,
    /// so the round can only be closed.
    /// @param roundId The round.
    /// @param lastPostTime The last second (inclusive) the set could be posted: the deadline + the escape duration.
    error FederationCommitmentSetTooLate(uint256 roundId, uint64 lastPostTime);
    /// @notice A commitment set that claims more signed commitments than participants were eligible.
    /// @param roundId The round.
    /// @param count The count given.
    /// @param eligibleCount The participants active when the round opened.
    error FederationInvalidSetCount(uint256 roundId, uint32 count, uint32 eligibleCount);
    /// @notice `commitUpdate` in a signed round before its commitment set was posted: commitments are signed off
    /// chain; the forced (escape) path opens once the set is posted.
    /// @param roundId The round.
    error FederationEscapeWindowNotOpen(uint256 roundId);
    /// @notice `commitUpdate` in a signed round after its escape window.
    /// @param roundId The round.
    /// @param escapeDeadline Its escape deadline (unix seconds, inclusive).
    error FederationEscapeWindowClosed(uint256 roundId, uint64 escapeDeadline);

    // ---------------------------------------------------------------- events

    /// @notice A participant registered and awaits admission.
    /// @param participant The participant's address (the actor).
    /// @param organisation Its organisation name.
    /// @param industry Its industry.
    /// @param publicKey Its public key (for encrypted exchanges off chain).
    /// @param declaredSamples The size of its training dataset, as it declares it (number of samples).
    event ParticipantRegistered(
        address indexed participant, string organisation, string industry, bytes publicKey, uint64 declaredSamples
    );
    /// @notice A pending participant was admitted and may commit, with its declared dataset size approved: no
    /// commitment of it may claim more samples.
    /// @param participant The participant.
    /// @param admittedBy The admin who admitted it.
    /// @param approvedSamples The approved dataset size (the declared one).
    event ParticipantAdmitted(address indexed participant, address indexed admittedBy, uint64 approvedSamples);
    /// @notice A participant was removed.
    /// @param participant The participant.
    /// @param removedBy The admin who removed it.
    /// @param reason Why.
    event ParticipantRemoved(address indexed participant, address indexed removedBy, string reason);
    /// @notice The task was (re)configured.
    /// @param version The new task version (1, 2, ...).
    /// @param configuredBy The admin who configured it.
    /// @param modelSpecDigest Digest of the model specification.
    /// @param strategyDigest Digest of the aggregation strategy configuration.
    /// @param dataSchemaDigest Digest of the data schema.
    /// @param configCid CID of the full task configuration.
    /// @param maxCommitDuration The longest commit window a round of this task may be opened with (seconds).
    event TaskConfigured(
        uint32 indexed version,
        address indexed configuredBy,
        bytes32 modelSpecDigest,
        bytes32 strategyDigest,
        bytes32 dataSchemaDigest,
        string configCid,
        uint64 maxCommitDuration
    );
    /// @notice The task version just configured (its `TaskConfigured` event precedes this one in the same
    /// transaction) carries a privacy policy: its rounds are private and each participant's cumulative epsilon is
    /// bounded by the budget.
    /// @param version The task version.
    /// @param actor The admin who configured it.
    /// @param policyDigest Digest of the privacy policy (part of the task document).
    /// @param epsilonBudget The total epsilon budget per participant, in micro-epsilon (ceil(epsilon * 1e6)).
    event PrivacyPolicySet(uint32 indexed version, address indexed actor, bytes32 policyDigest, uint64 epsilonBudget);
    /// @notice A round was opened.
    /// @param roundId The new round id.
    /// @param openedBy The aggregator who opened it.
    /// @param baseModelDigest Digest of the model the participants train from.
    /// @param baseModelCid CID of that model.
    /// @param deadline Last second (inclusive) at which commits are accepted.
    /// @param minUpdates Minimum number of included updates to finalise.
    /// @param taskVersion The task version the round runs under.
    /// @param revealDeadline Last second (inclusive) of the reveal phase of a commit-reveal round; 0 for a round
    /// without one.
    event RoundOpened(
        uint256 indexed roundId,
        address indexed openedBy,
        bytes32 baseModelDigest,
        string baseModelCid,
        uint64 deadline,
        uint32 minUpdates,
        uint32 taskVersion,
        uint64 revealDeadline
    );
    /// @notice A participant sealed its update for a commit-reveal round (the update itself is revealed later).
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param seal keccak256(abi.encode(roundId, participant, updateDigest, keccak256(bytes(cid)), numSamples,
    /// metadataDigest, salt)).
    event UpdateSealed(uint256 indexed roundId, address indexed participant, bytes32 seal);
    /// @notice A participant committed its update for a round (in a commit-reveal round: revealed it).
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param updateDigest Digest of the canonical update blob.
    /// @param cid CID of the update blob.
    /// @param numSamples Number of training samples behind the update.
    /// @param metadataDigest Digest of the update's metadata.
    event UpdateCommitted(
        uint256 indexed roundId,
        address indexed participant,
        bytes32 updateDigest,
        string cid,
        uint64 numSamples,
        bytes32 metadataDigest
    );
    /// @notice A participant's privacy claim for its commitment in a private round (its `UpdateCommitted` event
    /// precedes this one in the same transaction).
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param epsilonSpent Its cumulative epsilon after this round, in micro-epsilon (rounded up).
    /// @param accountantDigest Digest of the accountant inputs of this round (steps, sampling rate, noise
    /// multiplier, delta, ...), which the update blob carries.
    event PrivacySpent(
        uint256 indexed roundId, address indexed participant, uint64 epsilonSpent, bytes32 accountantDigest
    );
    /// @notice A round was finalised with a new global model.
    /// @param roundId The round.
    /// @param finalizedBy The aggregator who finalised it.
    /// @param modelDigest Digest of the aggregated model.
    /// @param modelCid CID of the aggregated model.
    /// @param merkleRoot Root of the Merkle tree over the included commitment leaves.
    /// @param aggregationDigest Digest of the aggregation record.
    /// @param evidenceDigest Digest of the evidence bundle.
    /// @param evidenceCid CID of the evidence bundle.
    /// @param includedCount Number of updates included in the aggregate.
    event RoundFinalized(
        uint256 indexed roundId,
        address indexed finalizedBy,
        bytes32 modelDigest,
        string modelCid,
        bytes32 merkleRoot,
        bytes32 aggregationDigest,
        bytes32 evidenceDigest,
        string evidenceCid,
        uint32 includedCount
    );
    /// @notice A round was closed without a model.
    /// @param roundId The round.
    /// @param closedBy The aggregator who closed it.
    /// @param commitCount Number of commitments it received.
    /// @param reason Why.
    event RoundClosed(uint256 indexed roundId, address indexed closedBy, uint32 commitCount, string reason);
    /// @notice The verification policy was set: the percentage of a round's included participants whose positive
    /// attestations the next round needs to open (0: none).
    /// @param setBy The admin who set it.
    /// @param quorumPercent The percentage (0 to 100).
    event VerificationPolicySet(address indexed setBy, uint8 quorumPercent);
    /// @notice An included participant attested the round after replaying it.
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param ok Whether its replay reproduced the round's model.
    /// @param modelDigest The model digest attested: the round's for a positive attestation, the one the replay
    /// computed (zero if none) for a negative one.
    /// @param findingsDigest Digest of the findings blob of a negative attestation (zero for a positive one).
    /// @param findingsCid CID of that blob (empty for a positive one).
    event RoundAttested(
        uint256 indexed roundId,
        address indexed participant,
        bool ok,
        bytes32 modelDigest,
        bytes32 findingsDigest,
        string findingsCid
    );
    /// @notice A finalised round was marked disputed.
    /// @param roundId The round.
    /// @param disputedBy The admin (the timelock, executing a passed proposal) who disputed it.
    /// @param accused The party the findings accuse (the aggregator, a participant).
    /// @param findingsDigest Digest of the findings blob.
    /// @param findingsCid CID of the findings blob.
    /// @param fallbackModelDigest The model the federation continues from when the disputed model was the current one
    /// (the round's base model); zero when the current model did not change.
    /// @param reason Why.
    event RoundDisputed(
        uint256 indexed roundId,
        address indexed disputedBy,
        address indexed accused,
        bytes32 findingsDigest,
        string findingsCid,
        bytes32 fallbackModelDigest,
        string reason
    );
    /// @notice A participant contested its exclusion from a finalised round: it announces that its update is
    /// available under this digest and CID.
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param updateDigest Digest of its update blob.
    /// @param cid CID of its update blob.
    event ExclusionContested(uint256 indexed roundId, address indexed participant, bytes32 updateDigest, string cid);
    /// @notice The aggregator answered an exclusion contest after fetching the blob again.
    /// @param roundId The round.
    /// @param participant The participant who contested.
    /// @param answeredBy The aggregator who answered.
    /// @param available Whether the blob could be fetched this time.
    event ContestAnswered(
        uint256 indexed roundId, address indexed participant, address indexed answeredBy, bool available
    );
    /// @notice A round was opened as a secure-aggregation round (its `RoundOpened` event, whose deadline is the
    /// commit deadline, precedes this one in the same transaction): participants advertise their keys until
    /// `advertiseDeadline`, commit masked inputs until `deadline`, and post unmasking shares until `unmaskDeadline`.
    /// @param roundId The round.
    /// @param openedBy The aggregator who opened it.
    /// @param advertiseDeadline Last second (inclusive) of the advertise phase.
    /// @param deadline Last second (inclusive) at which masked inputs are committed.
    /// @param unmaskDeadline Last second (inclusive) of the unmask phase.
    event SecureRoundOpened(
        uint256 indexed roundId, address indexed openedBy, uint64 advertiseDeadline, uint64 deadline, uint64 unmaskDeadline
    );
    /// @notice A round was opened as a signed round (its `RoundOpened` event precedes this one in the same
    /// transaction): participants sign their commitments off chain until `deadline`, the aggregator posts their set
    /// (`postCommitmentSet`), and a participant left out may then force its commitment on chain (`commitUpdate`) for
    /// `escapeDuration` seconds.
    /// @param roundId The round.
    /// @param openedBy The aggregator who opened it.
    /// @param deadline Last second (inclusive) of the signing (commit) phase.
    /// @param escapeDuration Seconds of the escape window, counted from the posting of the set.
    event SignedRoundOpened(uint256 indexed roundId, address indexed openedBy, uint64 deadline, uint64 escapeDuration);
    /// @notice The aggregator posted the commitment set of a signed round: the Merkle root of the signed commitments
    /// it collected, their count and the set blob; the escape window runs until `escapeDeadline`.
    /// @param roundId The round.
    /// @param postedBy The aggregator who posted it.
    /// @param setRoot Merkle root of the signed commitments (zero for an empty set).
    /// @param count Number of signed commitments in the set.
    /// @param setDigest Digest of the set blob.
    /// @param setCid CID of the set blob.
    /// @param escapeDeadline Last second (inclusive) of the escape window.
    event CommitmentSetPosted(
        uint256 indexed roundId,
        address indexed postedBy,
        bytes32 setRoot,
        uint32 count,
        bytes32 setDigest,
        string setCid,
        uint64 escapeDeadline
    );
    /// @notice A participant advertised its key-agreement keys for a secure round (the advertisement blob).
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param digest Digest of the advertisement blob.
    /// @param cid CID of the advertisement blob.
    event AdvertisementPosted(uint256 indexed roundId, address indexed participant, bytes32 digest, string cid);
    /// @notice A participant who committed a masked input posted its unmasking shares for a secure round (the shares
    /// blob: self-mask shares of the survivors, key shares of the dropped).
    /// @param roundId The round.
    /// @param participant The participant (the actor).
    /// @param digest Digest of the unmasking-shares blob.
    /// @param cid CID of the unmasking-shares blob.
    event UnmaskingSharesPosted(uint256 indexed roundId, address indexed participant, bytes32 digest, string cid);
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IFederationIncentives
/// @notice The custom errors and events of FederationIncentives: native-ETH deposits that participants lock, get back
/// after leaving and a withdrawal delay, and lose (in part or whole) to a slash that an executed governance proposal
/// orders, citing a finding; and per-round ERC-20 rewards paid by Merkle claim, never more than the round's budget.
/// @dev Every refusal carries the offending value; `field` names the parameter exactly as in the function's ABI.
/// Every event names its actor: the participant itself, the admin (the timelock) or the aggregator.
interface IFederationIncentives {
    /// @notice The caller lacks the Federation role the function needs.
    /// @param caller The caller.
    /// @param role The role (the Federation's ADMIN_ROLE or AGGREGATOR_ROLE).
    error IncentivesUnauthorized(address caller, bytes32 role);
    /// @notice A deposit policy parameter is refused (a zero treasury).
    /// @param field The parameter's name.
    error IncentivesInvalidPolicy(string field);
    /// @notice No deposit is asked for: the deposit policy's amount is zero.
    /// @param participant The caller.
    error IncentivesDepositsDisabled(address participant);
    /// @notice The value sent is not the deposit the policy asks for.
    /// @param participant The caller.
    /// @param sent The value sent (wei).
    /// @param required The policy's deposit (wei).
    error IncentivesWrongDeposit(address participant, uint256 sent, uint256 required);
    /// @notice The caller is not a registered participant (Pending or Active) of the Federation.
    /// @param participant The caller.
    error IncentivesNotRegistered(address participant);
    /// @notice The caller has deposited already (a participant deposits once).
    /// @param participant The caller.
    /// @param held What it holds now (wei).
    error IncentivesAlreadyDeposited(address participant, uint256 held);
    /// @notice The participant has not left the Federation (its status is not Removed).
    /// @param participant The caller.
    /// @param status Its Federation status (0 None, 1 Pending, 2 Active, 3 Removed).
    error IncentivesStillParticipating(address participant, uint8 status);
    /// @notice The caller holds no deposit.
    /// @param participant The caller.
    error IncentivesNoDeposit(address participant);
    /// @notice The caller asked for its withdrawal already.
    /// @param participant The caller.
    /// @param availableAt When its deposit can be withdrawn (unix seconds).
    error IncentivesWithdrawalAlreadyRequested(address participant, uint64 availableAt);
    /// @notice The caller has not asked for its withdrawal.
    /// @param participant The caller.
    error IncentivesWithdrawalNotRequested(address participant);
    /// @notice The withdrawal delay has not passed.
    /// @param participant The caller.
    /// @param availableAt When the deposit can be withdrawn (unix seconds).
    error IncentivesWithdrawalDelay(address participant, uint64 availableAt);
    /// @notice A slash takes more than the participant holds.
    /// @param participant The participant.
    /// @param amount The amount asked for (wei).
    /// @param held What it holds (wei).
    error IncentivesSlashTooLarge(address participant, uint256 amount, uint256 held);
    /// @notice A slash parameter is refused: a zero amount, a zero finding digest or an empty finding CID.
    /// @param field The parameter's name.
    error IncentivesInvalidSlash(string field);
    /// @notice Nothing is owed to the caller.
    /// @param account The caller.
    error IncentivesNothingOwed(address account);
    /// @notice The round is not finalised in the Federation.
    /// @param roundId The round.
    /// @param status Its Federation status (0 None, 1 Open, 2 Finalized, 3 Closed, 4 Disputed).
    error IncentivesRoundNotFinalized(uint256 roundId, uint8 status);
    /// @notice The round's rewards were published already.
    /// @param roundId The round.
    error IncentivesAlreadyPublished(uint256 roundId);
    /// @notice The rewards' total exceeds the budget per round.
    /// @param roundId The round.
    /// @param total The total published.
    /// @param budget The budget in force.
    error IncentivesOverBudget(uint256 roundId, uint256 total, uint256 budget);
    /// @notice A rewards parameter is refused: a zero root, a zero scores digest or an empty scores CID.
    /// @param field The parameter's name.
    error IncentivesInvalidRewards(string field);
    /// @notice No rewards were published for the round.
    /// @param roundId The round.
    error IncentivesNoRewards(uint256 roundId);
    /// @notice The proof does not show the leaf (roundId, participant, amount) under the round's root.
    /// @param roundId The round.
    /// @param participant The caller.
    /// @param amount The amount claimed.
    error IncentivesInvalidProof(uint256 roundId, address participant, uint256 amount);
    /// @notice The caller claimed its reward of the round already.
    /// @param roundId The round.
    /// @param participant The caller.
    error IncentivesAlreadyClaimed(uint256 roundId, address participant);
    /// @notice The claim would take the round's claims past its budget (so even a wrong root cannot overspend).
    /// @param roundId The round.
    /// @param amount The amount claimed.
    /// @param remaining What is left of the round's budget.
    error IncentivesBudgetExceeded(uint256 roundId, uint256 amount, uint256 remaining);

    /// @notice The admin set the deposit policy.
    /// @param setBy The admin (the timelock under governance).
    /// @param amount The deposit (wei; zero: none asked for).
    /// @param withdrawalDelay Seconds between a withdrawal request and the withdrawal.
    /// @param treasury Where slashed deposits go.
    event DepositPolicySet(address indexed setBy, uint256 amount, uint64 withdrawalDelay, address treasury);
    /// @notice A participant locked its deposit.
    /// @param participant The participant.
    /// @param amount The deposit (wei).
    event Deposited(address indexed participant, uint256 amount);
    /// @notice A participant that left asked for its deposit back.
    /// @param participant The participant.
    /// @param amount What it holds (wei).
    /// @param availableAt When it can withdraw (unix seconds).
    event WithdrawalRequested(address indexed participant, uint256 amount, uint64 availableAt);
    /// @notice A participant withdrew its deposit.
    /// @param participant The participant.
    /// @param amount The amount paid (wei).
    event Withdrawn(address indexed participant, uint256 amount);
    /// @notice The admin slashed a participant's deposit, citing a finding.
    /// @param participant The participant.
    /// @param slashedBy The admin (the timelock: an executed proposal).
    /// @param amount The amount taken (wei).
    /// @param findingDigest The digest of the finding blob cited.
    /// @param findingCid The CID of the finding blob cited.
    /// @param treasury Where the amount went (owed, pulled with claimSlashed).
    event Slashed(
        address indexed participant,
        address indexed slashedBy,
        uint256 amount,
        bytes32 findingDigest,
        string findingCid,
        address treasury
    );
    /// @notice The treasury pulled the slashed funds owed to it.
    /// @param treasury The treasury.
    /// @param amount The amount paid (wei).
    event SlashedFundsWithdrawn(address indexed treasury, uint256 amount);
    /// @notice The admin set the reward budget per round.
    /// @param setBy The admin.
    /// @param perRound The budget (reward token units).
    event RewardBudgetSet(address indexed setBy, uint256 perRound);
    /// @notice The aggregator published a finalised round's rewards.
    /// @param roundId The round.
    /// @param publishedBy The aggregator.
    /// @param root The Merkle root of the (roundId, participant, amount) leaves.
    /// @param total The sum of the amounts.
    /// @param budget The budget in force (the most the round's claims can take).
    /// @param scoresDigest The digest of the scores blob.
    /// @param scoresCid The CID of the scores blob.
    event RewardsPublished(
        uint256 indexed roundId,
        address indexed publishedBy,
        bytes32 root,
        uint256 total,
        uint256 budget,
        bytes32 scoresDigest,
        string scoresCid
    );
    /// @notice A participant claimed its reward of a round.
    /// @param roundId The round.
    /// @param participant The participant.
    /// @param amount The amount paid.
    event RewardClaimed(uint256 indexed roundId, address indexed participant, uint256 amount);
}

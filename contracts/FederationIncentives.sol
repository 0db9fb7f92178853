// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Address} from "@openzeppelin/contracts/utils/Address.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Federation} from "./Federation.sol";
import {IFederation} from "./IFederation.sol";
import {IFederationIncentives} from "./IFederationIncentives.sol";

/// @title FederationIncentives
/// @notice Deposits and rewards of one Federation. A registered participant locks a native-ETH deposit once; after it
/// leaves (its Federation status is Removed) it asks for it back and withdraws it once the withdrawal delay passed.
/// The admin (under governance: the timelock, so only an executed proposal) slashes a deposit citing a finding blob
/// (digest and CID); the slashed amount is owed to the treasury, which pulls it. The aggregator publishes, once per
/// finalised round, the Merkle root of the round's (roundId, participant, amount) leaves; each participant claims its
/// amount of the ERC-20 reward token with a proof, and the round's running claimed total never exceeds the budget
/// recorded with the root, whatever the root says.
/// @dev Authority is the Federation's: its ADMIN_ROLE and AGGREGATOR_ROLE holders. Value moves only by pull payments
/// (`withdraw`, `claimSlashed`, `claim`) to the caller, each `nonReentrant` and checks-effects-interactions; native
/// value goes by OpenZeppelin's `Address.sendValue`, a recipient's refusal bubbling up. No loops.
contract FederationIncentives is IFederationIncentives, ReentrancyGuard {
    using SafeERC20 for IERC20;

    /// @dev The Federation's admin role (keccak256("ADMIN_ROLE")).
    bytes32 private constant ADMIN_ROLE = keccak256("ADMIN_ROLE");
    /// @dev The Federation's aggregator role (keccak256("AGGREGATOR_ROLE")).
    bytes32 private constant AGGREGATOR_ROLE = keccak256("AGGREGATOR_ROLE");

    /// @dev A participant's deposit: what it holds, when it may withdraw, whether it asked to, whether it ever deposited.
    struct DepositData {
        uint128 held;
        uint64 availableAt;
        bool requested;
        bool deposited;
    }

    /// @dev A round's published rewards and the running total of its claims.
    struct RoundRewardsData {
        bytes32 root;
        uint256 total;
        uint256 budget;
        uint256 claimed;
    }

    /// @notice The Federation whose participants, rounds and roles this contract follows.
    Federation public immutable federation;
    /// @notice The ERC-20 the rewards are paid in.
    IERC20 public immutable rewardToken;

    uint256 private _depositAmount;
    uint64 private _withdrawalDelay;
    address private _treasury;
    uint256 private _rewardBudget;
    mapping(address participant => DepositData) private _deposits;
    mapping(address account => uint256 amount) private _owed;
    mapping(uint256 roundId => RoundRewardsData) private _roundRewards;
    mapping(uint256 roundId => mapping(address participant => bool claimed)) private _claimed;

    /// @notice Deploys the incentives of a Federation.
    /// @param federation_ The Federation.
    /// @param rewardToken_ The reward token.
    constructor(address federation_, address rewardToken_) {
        federation = Federation(federation_);
        rewardToken = IERC20(rewardToken_);
    }

    modifier onlyFederationRole(bytes32 role) {
        if (!IAccessControl(address(federation)).hasRole(role, msg.sender)) {
            revert IncentivesUnauthorized(msg.sender, role);
        }
        _;
    }

    // ---------------------------------------------------------------- deposits

    /// @notice Sets the deposit policy (applies to deposits made from now on).
    /// @param amount The deposit a participant locks (wei; zero: none asked for).
    /// @param withdrawalDelay Seconds between a withdrawal request and the withdrawal.
    /// @param treasury Where slashed deposits go (non-zero).
    function setDepositPolicy(uint256 amount, uint64 withdrawalDelay, address treasury)
        external
        onlyFederationRole(ADMIN_ROLE)
    {
        if (treasury == address(0)) revert IncentivesInvalidPolicy("treasury");
        if (amount > type(uint128).max) revert IncentivesInvalidPolicy("amount");
        _depositAmount = amount;
        _withdrawalDelay = withdrawalDelay;
        _treasury = treasury;
        emit DepositPolicySet(msg.sender, amount, withdrawalDelay, treasury);
    }

    /// @notice Locks the caller's deposit: exactly the policy's amount, once, while it is a registered participant
    /// (Pending or Active) of the Federation.
    function deposit() external payable {
        uint256 required = _depositAmount;
        if (required == 0) revert IncentivesDepositsDisabled(msg.sender);
        IFederation.ParticipantStatus status = _status(msg.sender);
        if (status != IFederation.ParticipantStatus.Pending && status != IFederation.ParticipantStatus.Active) {
            revert IncentivesNotRegistered(msg.sender);
        }
        DepositData storage d = _deposits[msg.sender];
        if (d.deposited) revert IncentivesAlreadyDeposited(msg.sender, d.held);
        if (msg.value != required) revert IncentivesWrongDeposit(msg.sender, msg.value, required);
        d.held = uint128(msg.value);
        d.deposited = true;
        emit Deposited(msg.sender, msg.value);
    }

    /// @notice Asks for the caller's deposit back, once it has left the Federation; it can be withdrawn after the
    /// withdrawal delay, and can still be slashed until then.
    function requestWithdrawal() external {
        DepositData storage d = _deposits[msg.sender];
        if (d.held == 0) revert IncentivesNoDeposit(msg.sender);
        if (d.requested) revert IncentivesWithdrawalAlreadyRequested(msg.sender, d.availableAt);
        IFederation.ParticipantStatus status = _status(msg.sender);
        if (status != IFederation.ParticipantStatus.Removed) {
            revert IncentivesStillParticipating(msg.sender, uint8(status));
        }
        uint64 availableAt = uint64(block.timestamp) + _withdrawalDelay;
        d.requested = true;
        d.availableAt = availableAt;
        emit WithdrawalRequested(msg.sender, d.held, availableAt);
    }

    /// @notice Pays the caller what it still holds of its deposit, once the withdrawal delay has passed.
    function withdraw() external nonReentrant {
        DepositData storage d = _deposits[msg.sender];
        if (!d.requested) revert IncentivesWithdrawalNotRequested(msg.sender);
        if (block.timestamp < d.availableAt) revert IncentivesWithdrawalDelay(msg.sender, d.availableAt);
        uint256 amount = d.held;
        if (amount == 0) revert IncentivesNoDeposit(msg.sender);
        d.held = 0;
        emit Withdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    /// @notice Slashes a participant's deposit, citing the finding that makes it responsible; the amount is owed to
    /// the treasury of the deposit policy. Under governance only an executed proposal can call it.
    /// @param participant The participant.
    /// @param amount The amount to take (wei, non-zero, at most what it holds).
    /// @param findingDigest The digest of the finding blob (non-zero).
    /// @param findingCid The CID of the finding blob (non-empty).
    function slash(address participant, uint256 amount, bytes32 findingDigest, string calldata findingCid)
        external
        onlyFederationRole(ADMIN_ROLE)
    {
        if (amount == 0) revert IncentivesInvalidSlash("amount");
        if (findingDigest == bytes32(0)) revert IncentivesInvalidSlash("findingDigest");
        if (bytes(findingCid).length == 0) revert IncentivesInvalidSlash("findingCid");
        DepositData storage d = _deposits[participant];
        uint256 held = d.held;
        if (amount > held) revert IncentivesSlashTooLarge(participant, amount, held);
        address treasury = _treasury;
        d.held = uint128(held - amount);
        _owed[treasury] += amount;
        emit Slashed(participant, msg.sender, amount, findingDigest, findingCid, treasury);
    }

    /// @notice Pays the caller the slashed funds owed to it (the treasury pulls them).
    function claimSlashed() external nonReentrant {
        uint256 amount = _owed[msg.sender];
        if (amount == 0) revert IncentivesNothingOwed(msg.sender);
        _owed[msg.sender] = 0;
        emit SlashedFundsWithdrawn(msg.sender, amount);
        Address.sendValue(payable(msg.sender), amount);
    }

    // ---------------------------------------------------------------- rewards

    /// @notice Sets the reward budget per round (applies to rounds published from now on).
    /// @param perRound The budget (reward token units).
    function setRewardBudget(uint256 perRound) external onlyFederationRole(ADMIN_ROLE) {
        _rewardBudget = perRound;
        emit RewardBudgetSet(msg.sender, perRound);
    }

    /// @notice Publishes a finalised round's rewards: the Merkle root of its (roundId, participant, amount) leaves
    /// (see `rewardLeaf`), their total and the scores blob they were computed from. Once per round.
    /// @param roundId The round (Finalized in the Federation).
    /// @param root The Merkle root (non-zero).
    /// @param total The sum of the amounts (at most the budget).
    /// @param scoresDigest The digest of the scores blob (non-zero).
    /// @param scoresCid The CID of the scores blob (non-empty).
    function publishRewards(uint256 roundId, bytes32 root, uint256 total, bytes32 scoresDigest, string calldata scoresCid)
        external
        onlyFederationRole(AGGREGATOR_ROLE)
    {
        IFederation.RoundStatus status = federation.getRound(roundId).status;
        if (status != IFederation.RoundStatus.Finalized) revert IncentivesRoundNotFinalized(roundId, uint8(status));
        RoundRewardsData storage r = _roundRewards[roundId];
        if (r.root != bytes32(0)) revert IncentivesAlreadyPublished(roundId);
        if (root == bytes32(0)) revert IncentivesInvalidRewards("root");
        if (scoresDigest == bytes32(0)) revert IncentivesInvalidRewards("scoresDigest");
        if (bytes(scoresCid).length == 0) revert IncentivesInvalidRewards("scoresCid");
        uint256 budget = _rewardBudget;
        if (total > budget) revert IncentivesOverBudget(roundId, total, budget);
        r.root = root;
        r.total = total;
        r.budget = budget;
        emit RewardsPublished(roundId, msg.sender, root, total, budget, scoresDigest, scoresCid);
    }

    /// @notice Claims the caller's reward of a round with the Merkle proof of its leaf.
    /// @param roundId The round.
    /// @param amount The amount of the caller's leaf.
    /// @param proof The proof of the leaf against the round's root.
    function claim(uint256 roundId, uint256 amount, bytes32[] calldata proof) external nonReentrant {
        RoundRewardsData storage r = _roundRewards[roundId];
        bytes32 root = r.root;
        if (root == bytes32(0)) revert IncentivesNoRewards(roundId);
        if (_claimed[roundId][msg.sender]) revert IncentivesAlreadyClaimed(roundId, msg.sender);
        if (!MerkleProof.verifyCalldata(proof, root, rewardLeaf(roundId, msg.sender, amount))) {
            revert IncentivesInvalidProof(roundId, msg.sender, amount);
        }
        uint256 claimed = r.claimed;
        uint256 remaining = r.budget - claimed;
        if (amount > remaining) revert IncentivesBudgetExceeded(roundId, amount, remaining);
        _claimed[roundId][msg.sender] = true;
        r.claimed = claimed + amount;
        emit RewardClaimed(roundId, msg.sender, amount);
        rewardToken.safeTransfer(msg.sender, amount);
    }

    // ---------------------------------------------------------------- views

    /// @notice A participant's deposit.
    /// @param account The participant.
    /// @return held What it holds (wei).
    /// @return availableAt When it can withdraw (0 before it asked to).
    /// @return requested Whether it asked for its withdrawal.
    function depositOf(address account) external view returns (uint256 held, uint64 availableAt, bool requested) {
        DepositData storage d = _deposits[account];
        return (d.held, d.availableAt, d.requested);
    }

    /// @notice The deposit policy.
    /// @return amount The deposit (wei; zero: none asked for).
    /// @return withdrawalDelay Seconds between a withdrawal request and the withdrawal.
    /// @return treasury Where slashed deposits go.
    function depositPolicy() external view returns (uint256 amount, uint64 withdrawalDelay, address treasury) {
        return (_depositAmount, _withdrawalDelay, _treasury);
    }

    /// @notice The reward budget per round.
    /// @return The budget (reward token units).
    function rewardBudget() external view returns (uint256) {
        return _rewardBudget;
    }

    /// @notice A round's published rewards (all zero if none).
    /// @param roundId The round.
    /// @return root The Merkle root.
    /// @return total The total published.
    /// @return budget The budget recorded with the root.
    /// @return claimed What its claims have taken so far.
    function roundRewards(uint256 roundId)
        external
        view
        returns (bytes32 root, uint256 total, uint256 budget, uint256 claimed)
    {
        RoundRewardsData storage r = _roundRewards[roundId];
        return (r.root, r.total, r.budget, r.claimed);
    }

    /// @notice Whether an account claimed its reward of a round.
    /// @param roundId The round.
    /// @param account The account.
    /// @return True if it did.
    function hasClaimed(uint256 roundId, address account) external view returns (bool) {
        return _claimed[roundId][account];
    }

    /// @notice Slashed funds owed to an account (the treasury).
    /// @param account The account.
    /// @return The amount (wei).
    function owedTo(address account) external view returns (uint256) {
        return _owed[account];
    }

    /// @notice The Merkle leaf of a reward: keccak256(bytes.concat(keccak256(abi.encode(roundId, account, amount)))),
    /// OpenZeppelin's double hash; the tree pairs sorted, as the Federation's commitment tree.
    /// @param roundId The round.
    /// @param account The participant.
    /// @param amount Its amount.
    /// @return The leaf.
    function rewardLeaf(uint256 roundId, address account, uint256 amount) public pure returns (bytes32) {
        return keccak256(bytes.concat(keccak256(abi.encode(roundId, account, amount))));
    }

    // ---------------------------------------------------------------- internal

    /// @dev The Federation status of `account`.
    function _status(address account) private view returns (IFederation.ParticipantStatus status) {
        // slither-disable-next-line unused-return (only the status is needed: see contracts/README.md)
        (status,,,,) = federation.participant(account);
    }
}

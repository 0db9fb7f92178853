// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IERC20Errors} from "@openzeppelin/contracts/interfaces/draft-IERC6093.sol";
import {ReentrancyGuard} from "@openzeppelin/contracts/utils/ReentrancyGuard.sol";
import {Federation} from "../Federation.sol";
import {FederationIncentives} from "../FederationIncentives.sol";
import {FederationRewardToken} from "../FederationRewardToken.sol";
import {IFederation} from "../IFederation.sol";
import {IFederationIncentives} from "../IFederationIncentives.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice A Federation administered by an EOA with its incentives: the reward token minted to the admin, who funds
/// the pool, three admitted participants, a deposit policy and a budget per round.
abstract contract IncentivesFixture is TestBase {
    Federation internal fed;
    FederationIncentives internal inc;
    FederationRewardToken internal token;
    address internal admin = address(0xA11CE);
    address internal aggregator = address(0xA66);
    address internal treasury = address(0x7EA5);
    address internal alice = address(0x1001);
    address internal bob = address(0x1002);
    address internal carol = address(0x1003);
    address internal outsider = address(0xBAD);

    uint256 internal constant DEPOSIT = 1 ether;
    uint64 internal constant DELAY = 1 days;
    uint256 internal constant BUDGET = 1000e18;
    uint256 internal constant SUPPLY = 1_000_000e18;
    uint256 internal constant START = 1_700_000_000;
    string internal constant CID = "bafkreigh2akiscaildcqabsyg3dfr6chu3fgpregiymsck7e7aqa4s52zy";

    function setUp() public virtual {
        vm.warp(START);
        fed = new Federation(admin, aggregator, new address[](0));
        token = new FederationRewardToken(admin, SUPPLY);
        inc = new FederationIncentives(address(fed), address(token));
        vm.startPrank(admin);
        fed.configureTask(keccak256("spec"), keccak256("strategy"), keccak256("schema"), "bafyconfig", 1 days);
        inc.setDepositPolicy(DEPOSIT, DELAY, treasury);
        inc.setRewardBudget(BUDGET);
        bool funded = token.transfer(address(inc), SUPPLY / 2);
        vm.stopPrank();
        _true(funded, "pool funded");
        _join(alice);
        _join(bob);
        _join(carol);
    }

    function _join(address who) internal {
        vm.prank(who);
        fed.register("Org", "finance", hex"02", 1000);
        vm.prank(admin);
        fed.admit(who);
        vm.deal(who, 10 ether);
    }

    function _deposit(address who) internal {
        vm.prank(who);
        inc.deposit{value: DEPOSIT}();
    }

    /// @dev Opens a round, lets alice commit and finalises it.
    function _finalizedRound() internal returns (uint256 roundId) {
        bytes32 current = fed.currentModelDigest();
        vm.prank(aggregator);
        roundId = fed.openRound(current == bytes32(0) ? keccak256("base") : current, "bafybase", 600, 1, 0);
        vm.prank(alice);
        fed.commitUpdate(roundId, keccak256(abi.encode(alice, roundId)), CID, 100, keccak256("meta"));
        vm.warp(block.timestamp + 601); // bob and carol did not commit: the commit phase ends at the deadline
        vm.prank(aggregator);
        fed.finalizeRound(
            roundId, keccak256(abi.encode("model", roundId)), "bafymodel", keccak256("root"), keccak256("agg"),
            keccak256("ev"), "bafyev", 1
        );
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev Root of the four leaves (sorted pairs) and the proof of leaf `i`.
    function _tree4(bytes32[4] memory l, uint256 i) internal pure returns (bytes32 root, bytes32[] memory proof) {
        bytes32 n0 = _hashPair(l[0], l[1]);
        bytes32 n1 = _hashPair(l[2], l[3]);
        root = _hashPair(n0, n1);
        proof = new bytes32[](2);
        proof[0] = l[i ^ 1];
        proof[1] = i < 2 ? n1 : n0;
    }

    function _publish(uint256 roundId, bytes32 root, uint256 total) internal {
        vm.prank(aggregator);
        inc.publishRewards(roundId, root, total, keccak256("scores"), "bafyscores");
    }

    function _held(address who) internal view returns (uint256 held) {
        (held,,) = inc.depositOf(who);
    }
}

contract IncentivesTest is IncentivesFixture {
    // ------------------------------------------------------------ deposits

    function test_depositLocksTheAmountAndEmits() public {
        vm.expectEmit(true, false, false, true, address(inc));
        emit IFederationIncentives.Deposited(alice, DEPOSIT);
        _deposit(alice);
        _eq(_held(alice), DEPOSIT, "held");
        _eq(address(inc).balance, DEPOSIT, "contract balance");
    }

    function test_depositOfTheWrongAmountReverts() public {
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesWrongDeposit.selector, alice, DEPOSIT - 1, DEPOSIT)
        );
        vm.prank(alice);
        inc.deposit{value: DEPOSIT - 1}();
        _eq(_held(alice), 0, "nothing held");
    }

    function test_depositTwiceReverts() public {
        _deposit(alice);
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesAlreadyDeposited.selector, alice, DEPOSIT)
        );
        _deposit(alice);
    }

    function test_depositByAnUnregisteredAccountReverts() public {
        vm.deal(outsider, 10 ether);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesNotRegistered.selector, outsider));
        vm.prank(outsider);
        inc.deposit{value: DEPOSIT}();
    }

    function test_depositByAPendingParticipantSucceeds() public {
        address dave = address(0x1004);
        vm.prank(dave);
        fed.register("Org", "finance", hex"02", 1000);
        vm.deal(dave, 10 ether);
        _deposit(dave);
        _eq(_held(dave), DEPOSIT, "held");
    }

    function test_depositWithoutAPolicyReverts() public {
        vm.prank(admin);
        inc.setDepositPolicy(0, DELAY, treasury);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesDepositsDisabled.selector, alice));
        vm.prank(alice);
        inc.deposit{value: 0}();
    }

    function test_policyWithoutATreasuryReverts() public {
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidPolicy.selector, "treasury"));
        vm.prank(admin);
        inc.setDepositPolicy(DEPOSIT, DELAY, address(0));
    }

    function testFuzz_onlyTheAdminSetsPolicyBudgetAndSlashes(address caller) public {
        vm.assume(caller != admin);
        bytes32 role = fed.ADMIN_ROLE();
        bytes memory refused = abi.encodeWithSelector(IFederationIncentives.IncentivesUnauthorized.selector, caller, role);
        _expectRevert(refused);
        vm.prank(caller);
        inc.setDepositPolicy(DEPOSIT, DELAY, caller);
        _expectRevert(refused);
        vm.prank(caller);
        inc.setRewardBudget(1);
        _expectRevert(refused);
        vm.prank(caller);
        inc.slash(alice, 1, keccak256("finding"), "bafyfinding");
    }

    function test_onlyTheAggregatorPublishes() public {
        uint256 roundId = _finalizedRound();
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesUnauthorized.selector, admin, fed.AGGREGATOR_ROLE())
        );
        vm.prank(admin);
        inc.publishRewards(roundId, keccak256("r"), 1, keccak256("scores"), "bafyscores");
    }

    // ------------------------------------------------------------ leave and withdraw

    function test_leaveRemovesTheCallerAndNamesItAsTheActor() public {
        vm.expectEmit(true, true, false, true, address(fed));
        emit IFederation.ParticipantRemoved(alice, alice, "moving on");
        vm.prank(alice);
        fed.leave("moving on");
        (IFederation.ParticipantStatus status,,,,) = fed.participant(alice);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Removed), "removed");
        _eq(fed.activeCount(), 2, "active count");
    }

    function test_leaveByAnOutsiderReverts() public {
        _expectRevert(
            abi.encodeWithSelector(
                IFederation.FederationInvalidStatus.selector, outsider, IFederation.ParticipantStatus.None
            )
        );
        vm.prank(outsider);
        fed.leave("never joined");
    }

    function test_withdrawalRequestBeforeLeavingReverts() public {
        _deposit(alice);
        _expectRevert(
            abi.encodeWithSelector(
                IFederationIncentives.IncentivesStillParticipating.selector,
                alice,
                uint8(IFederation.ParticipantStatus.Active)
            )
        );
        vm.prank(alice);
        inc.requestWithdrawal();
    }

    function test_withdrawWithoutARequestReverts() public {
        _deposit(alice);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesWithdrawalNotRequested.selector, alice));
        vm.prank(alice);
        inc.withdraw();
    }

    function test_requestWithoutADepositReverts() public {
        vm.prank(alice);
        fed.leave("x");
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesNoDeposit.selector, alice));
        vm.prank(alice);
        inc.requestWithdrawal();
    }

    function test_withdrawalBeforeTheDelayRevertsAfterItPays() public {
        _deposit(alice);
        vm.prank(alice);
        fed.leave("done");
        uint64 availableAt = uint64(block.timestamp) + DELAY;
        vm.expectEmit(true, false, false, true, address(inc));
        emit IFederationIncentives.WithdrawalRequested(alice, DEPOSIT, availableAt);
        vm.prank(alice);
        inc.requestWithdrawal();
        _expectRevert(
            abi.encodeWithSelector(
                IFederationIncentives.IncentivesWithdrawalAlreadyRequested.selector, alice, availableAt
            )
        );
        vm.prank(alice);
        inc.requestWithdrawal();

        vm.warp(availableAt - 1);
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesWithdrawalDelay.selector, alice, availableAt)
        );
        vm.prank(alice);
        inc.withdraw();

        vm.warp(availableAt);
        uint256 before = alice.balance;
        vm.expectEmit(true, false, false, true, address(inc));
        emit IFederationIncentives.Withdrawn(alice, DEPOSIT);
        vm.prank(alice);
        inc.withdraw();
        _eq(alice.balance - before, DEPOSIT, "refunded");
        _eq(_held(alice), 0, "nothing held");
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesNoDeposit.selector, alice));
        vm.prank(alice);
        inc.withdraw();
    }

    // ------------------------------------------------------------ slash

    function test_slashMovesTheAmountToTheTreasury() public {
        _deposit(alice);
        vm.expectEmit(true, true, false, true, address(inc));
        emit IFederationIncentives.Slashed(alice, admin, DEPOSIT / 4, keccak256("finding"), "bafyfinding", treasury);
        vm.prank(admin);
        inc.slash(alice, DEPOSIT / 4, keccak256("finding"), "bafyfinding");
        _eq(_held(alice), DEPOSIT - DEPOSIT / 4, "held");
        _eq(inc.owedTo(treasury), DEPOSIT / 4, "owed");
        vm.expectEmit(true, false, false, true, address(inc));
        emit IFederationIncentives.SlashedFundsWithdrawn(treasury, DEPOSIT / 4);
        vm.prank(treasury);
        inc.claimSlashed();
        _eq(treasury.balance, DEPOSIT / 4, "treasury paid");
        _eq(inc.owedTo(treasury), 0, "nothing owed");
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesNothingOwed.selector, treasury));
        vm.prank(treasury);
        inc.claimSlashed();
    }

    function test_slashTooLargeReverts() public {
        _deposit(alice);
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesSlashTooLarge.selector, alice, DEPOSIT + 1, DEPOSIT)
        );
        vm.prank(admin);
        inc.slash(alice, DEPOSIT + 1, keccak256("finding"), "bafyfinding");
    }

    function test_invalidSlashReverts() public {
        _deposit(alice);
        vm.startPrank(admin);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidSlash.selector, "amount"));
        inc.slash(alice, 0, keccak256("finding"), "bafyfinding");
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidSlash.selector, "findingDigest"));
        inc.slash(alice, 1, bytes32(0), "bafyfinding");
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidSlash.selector, "findingCid"));
        inc.slash(alice, 1, keccak256("finding"), "");
        vm.stopPrank();
        _eq(_held(alice), DEPOSIT, "nothing slashed");
    }

    function test_slashDuringTheDelayReducesTheRefund() public {
        _deposit(alice);
        vm.prank(alice);
        fed.leave("done");
        vm.prank(alice);
        inc.requestWithdrawal();
        vm.prank(admin);
        inc.slash(alice, DEPOSIT, keccak256("finding"), "bafyfinding");
        vm.warp(block.timestamp + DELAY);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesNoDeposit.selector, alice));
        vm.prank(alice);
        inc.withdraw();
    }

    // ------------------------------------------------------------ rewards

    function _leaves(uint256 roundId, uint256[4] memory amounts, address[4] memory who)
        internal
        view
        returns (bytes32[4] memory l)
    {
        for (uint256 i = 0; i < 4; ++i) l[i] = inc.rewardLeaf(roundId, who[i], amounts[i]);
    }

    function test_rewardLeafIsTheDoubleHash() public view {
        _eq(
            inc.rewardLeaf(7, alice, 5),
            keccak256(bytes.concat(keccak256(abi.encode(uint256(7), alice, uint256(5))))),
            "leaf"
        );
    }

    function test_claimPaysOnceAndRefusesTheRest() public {
        uint256 roundId = _finalizedRound();
        address[4] memory who = [alice, bob, carol, address(0x1004)];
        uint256[4] memory amounts = [uint256(500e18), 300e18, 200e18, 0];
        bytes32[4] memory l = _leaves(roundId, amounts, who);
        (bytes32 root, bytes32[] memory proofAlice) = _tree4(l, 0);
        vm.expectEmit(true, true, false, true, address(inc));
        emit IFederationIncentives.RewardsPublished(
            roundId, aggregator, root, BUDGET, BUDGET, keccak256("scores"), "bafyscores"
        );
        _publish(roundId, root, BUDGET);

        vm.expectEmit(true, true, false, true, address(inc));
        emit IFederationIncentives.RewardClaimed(roundId, alice, 500e18);
        vm.prank(alice);
        inc.claim(roundId, 500e18, proofAlice);
        _eq(token.balanceOf(alice), 500e18, "alice paid");
        _true(inc.hasClaimed(roundId, alice), "claimed");

        // double claim
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesAlreadyClaimed.selector, roundId, alice));
        vm.prank(alice);
        inc.claim(roundId, 500e18, proofAlice);
        // a proof for another address: bob presents alice's leaf
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidProof.selector, roundId, bob, 500e18)
        );
        vm.prank(bob);
        inc.claim(roundId, 500e18, proofAlice);
        // a bad proof: bob's amount with alice's proof
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidProof.selector, roundId, bob, 300e18)
        );
        vm.prank(bob);
        inc.claim(roundId, 300e18, proofAlice);
        // a proof for another round
        uint256 other = _finalizedRound();
        _publish(other, keccak256("other root"), 1);
        (, bytes32[] memory proofBob) = _tree4(l, 1);
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidProof.selector, other, bob, 300e18)
        );
        vm.prank(bob);
        inc.claim(other, 300e18, proofBob);
        vm.prank(bob);
        inc.claim(roundId, 300e18, proofBob);
        (,,, uint256 claimed) = inc.roundRewards(roundId);
        _eq(claimed, 800e18, "claimed total");
    }

    function test_claimWithoutRewardsReverts() public {
        uint256 roundId = _finalizedRound();
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesNoRewards.selector, roundId));
        vm.prank(alice);
        inc.claim(roundId, 1, new bytes32[](0));
    }

    function test_aRootThatPaysOneParticipantDoubleIsRefusedOnceTheBudgetIsReached() public {
        uint256 roundId = _finalizedRound();
        // the leaves pay alice 600 twice over (two leaves for her) and bob 400: 1600 against a budget of 1000
        address[4] memory who = [alice, bob, alice, carol];
        uint256[4] memory amounts = [uint256(600e18), 400e18, 600e18 + 1, 0];
        bytes32[4] memory l = _leaves(roundId, amounts, who);
        (bytes32 root, bytes32[] memory p0) = _tree4(l, 0);
        (, bytes32[] memory p1) = _tree4(l, 1);
        (, bytes32[] memory p2) = _tree4(l, 2);
        _publish(roundId, root, BUDGET);
        vm.prank(alice);
        inc.claim(roundId, 600e18, p0);
        vm.prank(bob);
        inc.claim(roundId, 400e18, p1);
        // alice's second leaf is refused: claimed already, and the budget is spent
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesAlreadyClaimed.selector, roundId, alice));
        vm.prank(alice);
        inc.claim(roundId, 600e18 + 1, p2);
        (,, uint256 budget, uint256 claimed) = inc.roundRewards(roundId);
        _eq(claimed, budget, "the budget and no more");
    }

    function test_aRootOverTheBudgetIsRefusedAtClaimTime() public {
        uint256 roundId = _finalizedRound();
        address[4] memory who = [alice, bob, carol, address(0x1004)];
        uint256[4] memory amounts = [uint256(700e18), 700e18, 0, 0];
        bytes32[4] memory l = _leaves(roundId, amounts, who);
        (bytes32 root, bytes32[] memory p0) = _tree4(l, 0);
        (, bytes32[] memory p1) = _tree4(l, 1);
        _publish(roundId, root, BUDGET); // the declared total fits, the leaves do not
        vm.prank(alice);
        inc.claim(roundId, 700e18, p0);
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesBudgetExceeded.selector, roundId, 700e18, 300e18)
        );
        vm.prank(bob);
        inc.claim(roundId, 700e18, p1);
        _eq(token.balanceOf(bob), 0, "bob unpaid");
    }

    function test_publishRefusals() public {
        vm.prank(aggregator);
        uint256 open = fed.openRound(keccak256("base"), "bafybase", 600, 1, 0);
        _expectRevert(
            abi.encodeWithSelector(
                IFederationIncentives.IncentivesRoundNotFinalized.selector, open, uint8(IFederation.RoundStatus.Open)
            )
        );
        _publish(open, keccak256("r"), 1);
        vm.prank(alice);
        fed.commitUpdate(open, keccak256("u"), CID, 100, keccak256("meta"));
        vm.warp(block.timestamp + 601);
        vm.prank(aggregator);
        fed.finalizeRound(open, keccak256("m"), "bafymodel", keccak256("root"), keccak256("agg"), keccak256("ev"), "bafyev", 1);
        _expectRevert(
            abi.encodeWithSelector(IFederationIncentives.IncentivesOverBudget.selector, open, BUDGET + 1, BUDGET)
        );
        _publish(open, keccak256("r"), BUDGET + 1);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidRewards.selector, "root"));
        _publish(open, bytes32(0), 1);
        vm.startPrank(aggregator);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidRewards.selector, "scoresDigest"));
        inc.publishRewards(open, keccak256("r"), 1, bytes32(0), "bafyscores");
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesInvalidRewards.selector, "scoresCid"));
        inc.publishRewards(open, keccak256("r"), 1, keccak256("scores"), "");
        vm.stopPrank();
        _publish(open, keccak256("r"), 1);
        _expectRevert(abi.encodeWithSelector(IFederationIncentives.IncentivesAlreadyPublished.selector, open));
        _publish(open, keccak256("r2"), 1);
    }

    function test_anEmptyPoolRefusesTheClaim() public {
        FederationIncentives unfunded = new FederationIncentives(address(fed), address(token));
        vm.prank(admin);
        unfunded.setRewardBudget(BUDGET);
        uint256 roundId = _finalizedRound();
        bytes32 leaf = unfunded.rewardLeaf(roundId, alice, 1);
        vm.prank(aggregator);
        unfunded.publishRewards(roundId, leaf, 1, keccak256("scores"), "bafyscores");
        _expectRevert(
            abi.encodeWithSelector(IERC20Errors.ERC20InsufficientBalance.selector, address(unfunded), 0, 1)
        );
        vm.prank(alice);
        unfunded.claim(roundId, 1, new bytes32[](0));
        _true(!unfunded.hasClaimed(roundId, alice), "nothing claimed");
    }

    function testFuzz_claimNeverExceedsTheBudget(uint256 a, uint256 b) public {
        a = _bound(a, 0, 2 * BUDGET);
        b = _bound(b, 0, 2 * BUDGET);
        uint256 roundId = _finalizedRound();
        address[4] memory who = [alice, bob, carol, address(0x1004)];
        uint256[4] memory amounts = [a, b, 0, 0];
        bytes32[4] memory l = _leaves(roundId, amounts, who);
        (bytes32 root, bytes32[] memory p0) = _tree4(l, 0);
        (, bytes32[] memory p1) = _tree4(l, 1);
        _publish(roundId, root, 0);
        vm.prank(alice);
        try inc.claim(roundId, a, p0) {} catch {}
        vm.prank(bob);
        try inc.claim(roundId, b, p1) {} catch {}
        (,, uint256 budget, uint256 claimed) = inc.roundRewards(roundId);
        _true(claimed <= budget, "claimed <= budget");
        _eq(token.balanceOf(alice) + token.balanceOf(bob), claimed, "paid = claimed");
    }
}

/// @notice Reentrancy: a participant contract that re-enters `withdraw` from its receive hook gets nothing extra: the
/// inner call's ReentrancyGuardReentrantCall bubbles up and the whole withdrawal reverts.
contract Reenterer {
    FederationIncentives private immutable _inc;
    Federation private immutable _fed;
    bool private _armed;

    constructor(Federation fed_, FederationIncentives inc_) {
        _fed = fed_;
        _inc = inc_;
    }

    function join() external payable {
        _fed.register("Org", "x", hex"02", 1);
        _inc.deposit{value: msg.value}();
        _fed.leave("x");
        _inc.requestWithdrawal();
    }

    function pull() external {
        _armed = true;
        _inc.withdraw();
    }

    receive() external payable {
        if (_armed) {
            _armed = false;
            _inc.withdraw();
        }
    }
}

contract IncentivesReentrancyTest is IncentivesFixture {
    function test_withdrawCannotBeReentered() public {
        Reenterer r = new Reenterer(fed, inc);
        vm.deal(address(this), 10 ether);
        r.join{value: DEPOSIT}();
        _deposit(alice);
        vm.warp(block.timestamp + DELAY);
        _expectRevert(abi.encodeWithSelector(ReentrancyGuard.ReentrancyGuardReentrantCall.selector));
        r.pull();
        _eq(address(inc).balance, 2 * DEPOSIT, "nothing left the contract");
    }
}

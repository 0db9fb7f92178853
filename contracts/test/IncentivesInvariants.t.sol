// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Federation} from "../Federation.sol";
import {FederationIncentives} from "../FederationIncentives.sol";
import {FederationRewardToken} from "../FederationRewardToken.sol";
import {IFederation} from "../IFederation.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Drives deposits, leaving, withdrawal requests, withdrawals, slashes, treasury pulls, reward publication
/// (with roots whose leaves may sum past the budget) and claims, keeping ghost totals of what moved.
contract IncentivesHandler is TestBase {
    Federation internal immutable fed;
    FederationIncentives internal immutable inc;
    FederationRewardToken internal immutable token;
    address internal immutable admin;
    address internal immutable aggregator;
    address internal immutable treasury;
    uint256 internal immutable depositAmount;

    address[4] internal actors = [address(0x2001), address(0x2002), address(0x2003), address(0x2004)];
    uint256[] internal rounds;
    mapping(uint256 roundId => uint256[4] amounts) internal leafAmounts;
    mapping(uint256 roundId => bytes32[4] leaves) internal leaves;
    mapping(uint256 roundId => bool) internal published;

    uint256 public ghostDeposited;
    uint256 public ghostWithdrawn;
    uint256 public ghostSlashed;
    uint256 public ghostSlashedPaid;
    mapping(uint256 roundId => uint256 paid) public ghostPaid;

    constructor(
        Federation fed_,
        FederationIncentives inc_,
        FederationRewardToken token_,
        address admin_,
        address aggregator_,
        address treasury_,
        uint256 depositAmount_,
        uint256[] memory rounds_
    ) {
        fed = fed_;
        inc = inc_;
        token = token_;
        admin = admin_;
        aggregator = aggregator_;
        treasury = treasury_;
        depositAmount = depositAmount_;
        rounds = rounds_;
    }

    function actor(uint256 i) external view returns (address) {
        return actors[i];
    }

    function roundCount() external view returns (uint256) {
        return rounds.length;
    }

    function roundAt(uint256 i) external view returns (uint256) {
        return rounds[i];
    }

    function _status(address who) internal view returns (IFederation.ParticipantStatus status) {
        (status,,,,) = fed.participant(who);
    }

    function deposit(uint256 i) external {
        address who = actors[i % 4];
        vm.deal(who, depositAmount);
        vm.prank(who);
        try inc.deposit{value: depositAmount}() {
            ghostDeposited += depositAmount;
        } catch {}
    }

    function leave(uint256 i) external {
        address who = actors[i % 4];
        IFederation.ParticipantStatus s = _status(who);
        if (s != IFederation.ParticipantStatus.Pending && s != IFederation.ParticipantStatus.Active) return;
        vm.prank(who);
        fed.leave("leaving");
    }

    function requestWithdrawal(uint256 i) external {
        vm.prank(actors[i % 4]);
        try inc.requestWithdrawal() {} catch {}
    }

    function withdraw(uint256 i) external {
        address who = actors[i % 4];
        uint256 before = who.balance;
        vm.prank(who);
        try inc.withdraw() {
            ghostWithdrawn += who.balance - before;
        } catch {}
    }

    function slash(uint256 i, uint256 amount) external {
        address who = actors[i % 4];
        amount = _bound(amount, 0, depositAmount + 1);
        vm.prank(admin);
        try inc.slash(who, amount, keccak256("finding"), "bafyfinding") {
            ghostSlashed += amount;
        } catch {}
    }

    function claimSlashed() external {
        uint256 before = treasury.balance;
        vm.prank(treasury);
        try inc.claimSlashed() {
            ghostSlashedPaid += treasury.balance - before;
        } catch {}
    }

    function warp(uint256 seconds_) external {
        vm.warp(block.timestamp + _bound(seconds_, 0, 2 days));
    }

    function _hashPair(bytes32 a, bytes32 b) internal pure returns (bytes32) {
        return a < b ? keccak256(abi.encode(a, b)) : keccak256(abi.encode(b, a));
    }

    /// @dev Publishes a root whose four leaves pay up to the budget each (their sum may be four times the budget).
    function publish(uint256 r, uint256 a0, uint256 a1, uint256 a2, uint256 a3) external {
        uint256 roundId = rounds[r % rounds.length];
        if (published[roundId]) return;
        uint256 budget = inc.rewardBudget();
        uint256[4] memory amounts = [_bound(a0, 0, budget), _bound(a1, 0, budget), _bound(a2, 0, budget), _bound(a3, 0, budget)];
        bytes32[4] memory l;
        for (uint256 k = 0; k < 4; ++k) l[k] = inc.rewardLeaf(roundId, actors[k], amounts[k]);
        bytes32 root = _hashPair(_hashPair(l[0], l[1]), _hashPair(l[2], l[3]));
        vm.prank(aggregator);
        inc.publishRewards(roundId, root, budget, keccak256("scores"), "bafyscores");
        published[roundId] = true;
        leafAmounts[roundId] = amounts;
        leaves[roundId] = l;
    }

    function claim(uint256 r, uint256 i) external {
        uint256 roundId = rounds[r % rounds.length];
        if (!published[roundId]) return;
        uint256 k = i % 4;
        bytes32[4] memory l = leaves[roundId];
        bytes32[] memory proof = new bytes32[](2);
        proof[0] = l[k ^ 1];
        proof[1] = k < 2 ? _hashPair(l[2], l[3]) : _hashPair(l[0], l[1]);
        address who = actors[k];
        uint256 before = token.balanceOf(who);
        vm.prank(who);
        try inc.claim(roundId, leafAmounts[roundId][k], proof) {
            ghostPaid[roundId] += token.balanceOf(who) - before;
        } catch {}
    }
}

contract IncentivesInvariantsTest is TestBase {
    Federation internal fed;
    FederationIncentives internal inc;
    FederationRewardToken internal token;
    IncentivesHandler internal handler;
    address internal admin = address(0xA11CE);
    address internal aggregator = address(0xA66);
    address internal treasury = address(0x7EA5);
    address internal worker = address(0x3001);
    uint256 internal constant DEPOSIT = 1 ether;
    uint256 internal constant BUDGET = 1000e18;

    function setUp() public {
        vm.warp(1_700_000_000);
        fed = new Federation(admin, aggregator, new address[](0));
        token = new FederationRewardToken(admin, 1_000_000e18);
        inc = new FederationIncentives(address(fed), address(token));
        vm.startPrank(admin);
        fed.configureTask(keccak256("spec"), keccak256("strategy"), keccak256("schema"), "bafyconfig", 1 days);
        inc.setDepositPolicy(DEPOSIT, 1 days, treasury);
        inc.setRewardBudget(BUDGET);
        bool funded = token.transfer(address(inc), 1_000_000e18);
        vm.stopPrank();
        _true(funded, "pool funded");
        vm.prank(worker);
        fed.register("Worker", "x", hex"02", 1000);
        vm.prank(admin);
        fed.admit(worker);
        uint256[] memory rounds = new uint256[](4);
        for (uint256 r = 0; r < 4; ++r) {
            bytes32 current = fed.currentModelDigest();
            vm.prank(aggregator);
            uint256 roundId = fed.openRound(current == bytes32(0) ? keccak256("base") : current, "bafybase", 600, 1, 0);
            vm.prank(worker);
            fed.commitUpdate(roundId, keccak256(abi.encode(roundId)), "bafyupdate", 100, keccak256("meta"));
            vm.prank(aggregator);
            fed.finalizeRound(
                roundId, keccak256(abi.encode("model", roundId)), "bafymodel", keccak256("root"), keccak256("agg"),
                keccak256("ev"), "bafyev", 1
            );
            rounds[r] = roundId;
        }
        handler = new IncentivesHandler(fed, inc, token, admin, aggregator, treasury, DEPOSIT, rounds);
        for (uint256 i = 0; i < 4; ++i) {
            address who = handler.actor(i);
            vm.prank(who);
            fed.register("Org", "x", hex"02", 1000);
            if (i % 2 == 0) {
                vm.prank(admin);
                fed.admit(who);
            }
        }
        _targetContract(address(handler));
    }

    /// @notice Sum of the claims of every round <= its budget, and what the contract counts is what was paid.
    function invariant_claimsPerRoundWithinBudget() public view {
        for (uint256 i = 0; i < handler.roundCount(); ++i) {
            uint256 roundId = handler.roundAt(i);
            (,, uint256 budget, uint256 claimed) = inc.roundRewards(roundId);
            _true(claimed <= budget, "claimed <= budget");
            _eq(handler.ghostPaid(roundId), claimed, "paid = claimed");
        }
    }

    /// @notice Deposits are conserved: held = deposited - withdrawn - slashed, and the contract's balance is what is
    /// held plus what the treasury is still owed.
    function invariant_depositsConserved() public view {
        uint256 held;
        for (uint256 i = 0; i < 4; ++i) {
            (uint256 h,,) = inc.depositOf(handler.actor(i));
            held += h;
        }
        _eq(held, handler.ghostDeposited() - handler.ghostWithdrawn() - handler.ghostSlashed(), "held");
        _eq(inc.owedTo(treasury), handler.ghostSlashed() - handler.ghostSlashedPaid(), "owed");
        _eq(address(inc).balance, held + inc.owedTo(treasury), "balance");
    }
}

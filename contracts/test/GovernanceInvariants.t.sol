// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {Federation} from "../Federation.sol";
import {FederationGovernor} from "../FederationGovernor.sol";
import {FederationMembership} from "../FederationMembership.sol";
import {FederationTimelock} from "../FederationTimelock.sol";
import {IFederation} from "../IFederation.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice Drives a governed federation with random steps: registrations, admissions, removals and aggregator
/// grants passed by the members (a whole propose-vote-queue-execute cycle per step), delegations, and attempts by
/// anyone but the timelock to administer the Federation or the timelock directly, or to move a membership token.
/// An independent model predicts every outcome.
contract GovernanceHandler is TestBase {
    uint256 public constant ACTORS = 8;
    uint256 public constant FOUNDERS = 3;

    Federation public fed;
    FederationGovernor public governor;
    FederationTimelock public timelock;
    FederationMembership public membership;

    // the model
    mapping(address account => IFederation.ParticipantStatus) public status;
    mapping(address account => bool) public member;
    mapping(address account => bool) public aggregatorRole;
    uint256 public members;

    // outcomes that must never happen
    uint256 public mismatches;
    string public lastMismatch;
    uint256 public unauthorisedSuccesses;
    uint256 public tokenMoves;
    uint256 public proposals;
    uint256 public executed;

    constructor(Federation fed_, FederationGovernor governor_, FederationTimelock timelock_, address aggregator) {
        fed = fed_;
        governor = governor_;
        timelock = timelock_;
        membership = fed_.membership();
        for (uint256 i = 0; i < FOUNDERS; ++i) {
            member[actor(i)] = true;
        }
        members = FOUNDERS;
        aggregatorRole[aggregator] = true;
    }

    function actor(uint256 i) public pure returns (address) {
        return address(uint160(0xF000 + (i % ACTORS)));
    }

    /// @notice One random step.
    function step(uint256 action, uint256 seed) external {
        vm.roll(block.number + 1);
        vm.warp(block.timestamp + 1);
        address who = actor(seed);
        uint256 kind = action % 8;
        if (kind == 0) _register(who);
        else if (kind == 1) _governAdmit(who);
        else if (kind == 2) _governRemove(who);
        else if (kind == 3) _governGrantAggregator(who);
        else if (kind == 4) _delegate(who, actor(seed / ACTORS));
        else if (kind == 5) _directAdministration(who, actor(seed / ACTORS), seed / (ACTORS * ACTORS));
        else if (kind == 6) _moveToken(who, actor(seed / ACTORS), seed / (ACTORS * ACTORS));
        else _register(who);
    }

    // ------------------------------------------------------------ steps

    function _register(address who) internal {
        bool expected = status[who] == IFederation.ParticipantStatus.None; // a removed founder stays removed
        vm.prank(who);
        try fed.register("Org", "finance", hex"02", 1000) {
            _check(expected, "register accepted");
            status[who] = IFederation.ParticipantStatus.Pending;
        } catch {
            _check(!expected, "register refused");
        }
    }

    function _governAdmit(address who) internal {
        bool expected = status[who] == IFederation.ParticipantStatus.Pending;
        if (_govern(abi.encodeCall(Federation.admit, (who)))) {
            _check(expected, "admission executed");
            status[who] = IFederation.ParticipantStatus.Active;
            if (!member[who]) {
                member[who] = true;
                ++members;
            }
        } else {
            _check(!expected, "admission failed");
        }
    }

    function _governRemove(address who) internal {
        IFederation.ParticipantStatus s = status[who];
        bool removable = s == IFederation.ParticipantStatus.Pending || s == IFederation.ParticipantStatus.Active
            || (s == IFederation.ParticipantStatus.None && member[who]);
        if (member[who] && members == 1) return; // keep one member: with none, nothing could pass any more
        if (_govern(abi.encodeCall(Federation.remove, (who, "voted out")))) {
            _check(removable, "removal executed");
            status[who] = IFederation.ParticipantStatus.Removed;
            if (member[who]) {
                member[who] = false;
                --members;
            }
        } else {
            _check(!removable, "removal failed");
        }
    }

    function _governGrantAggregator(address who) internal {
        bytes32 role = fed.AGGREGATOR_ROLE();
        bool granted = _govern(abi.encodeCall(IAccessControl.grantRole, (role, who)));
        _check(granted, "aggregator grant executed");
        if (granted) aggregatorRole[who] = true;
    }

    function _delegate(address who, address to) internal {
        vm.prank(who);
        membership.delegate(to); // anyone may delegate (a non-member delegates nothing)
    }

    /// @dev Anyone but the timelock trying to administer the Federation or the timelock: always refused.
    function _directAdministration(address who, address target, uint256 which) internal {
        address caller = which % 5 == 0 ? address(governor) : which % 5 == 1 ? address(this) : who;
        bytes memory call;
        address to = address(fed);
        uint256 variant = (which / 5) % 7;
        if (variant == 0) call = abi.encodeCall(Federation.admit, (target));
        else if (variant == 1) call = abi.encodeCall(Federation.remove, (target, "direct"));
        else if (variant == 2) call = abi.encodeCall(IAccessControl.grantRole, (fed.ADMIN_ROLE(), caller));
        else if (variant == 3) call = abi.encodeCall(IAccessControl.revokeRole, (fed.ADMIN_ROLE(), address(timelock)));
        else if (variant == 4) call = abi.encodeCall(Federation.setVerificationPolicy, (10));
        else if (variant == 5) {
            to = address(timelock);
            call = abi.encodeCall(IAccessControl.grantRole, (timelock.PROPOSER_ROLE(), caller));
        } else {
            // the Governor itself may schedule (it is the timelock's proposer): anyone else may not
            if (caller == address(governor)) caller = who;
            to = address(timelock);
            call = abi.encodeCall(timelock.schedule, (address(fed), 0, abi.encodeCall(Federation.admit, (target)), 0, 0, 60));
        }
        vm.prank(caller);
        (bool ok,) = to.call(call);
        if (ok) ++unauthorisedSuccesses;
    }

    function _moveToken(address who, address to, uint256 which) internal {
        uint256 id = uint256(uint160(who));
        bool ok;
        vm.prank(who);
        if (which % 3 == 0) (ok,) = address(membership).call(abi.encodeCall(membership.transferFrom, (who, to, id)));
        else if (which % 3 == 1) (ok,) = address(membership).call(abi.encodeCall(membership.approve, (to, id)));
        else (ok,) = address(membership).call(abi.encodeCall(membership.setApprovalForAll, (to, true)));
        if (ok) ++tokenMoves;
    }

    // ------------------------------------------------------------ a whole proposal cycle

    /// @dev Proposes `data` (by an account with votes), lets every actor vote for it, queues and executes it after the
    /// delay; whether the execution succeeded. The proposal itself always passes: everyone with a vote is for it.
    function _govern(bytes memory data) internal returns (bool) {
        address proposer = _proposer();
        if (proposer == address(0)) return false;
        address[] memory targets = new address[](1);
        uint256[] memory values = new uint256[](1);
        bytes[] memory calldatas = new bytes[](1);
        (targets[0], calldatas[0]) = (address(fed), data);
        string memory description = string.concat("proposal ", _decimal(++proposals));
        bytes32 descriptionHash = keccak256(bytes(description));
        vm.prank(proposer);
        uint256 id = governor.propose(targets, values, calldatas, description);
        vm.roll(governor.proposalSnapshot(id) + 1);
        for (uint256 i = 0; i < ACTORS; ++i) {
            vm.prank(actor(i));
            governor.castVote(id, 1);
        }
        vm.roll(governor.proposalDeadline(id) + 1);
        governor.queue(targets, values, calldatas, descriptionHash);
        vm.warp(block.timestamp + timelock.getMinDelay());
        try governor.execute(targets, values, calldatas, descriptionHash) {
            ++executed;
            return true;
        } catch {
            return false;
        }
    }

    function _proposer() internal view returns (address) {
        for (uint256 i = 0; i < ACTORS; ++i) {
            if (membership.getPastVotes(actor(i), block.number - 1) > 0) return actor(i);
        }
        return address(0);
    }

    function _check(bool ok, string memory what) internal {
        if (!ok) {
            ++mismatches;
            lastMismatch = what;
        }
    }

    function _decimal(uint256 value) internal pure returns (string memory) {
        if (value == 0) return "0";
        bytes memory digits;
        while (value != 0) {
            digits = abi.encodePacked(bytes1(uint8(48 + value % 10)), digits);
            value /= 10;
        }
        return string(digits);
    }
}

/// @notice Invariants of governance: the total voting power is the number of members, membership follows the
/// admissions and removals the members voted, and only the timelock administers the Federation.
contract GovernanceInvariantTest is TestBase {
    Federation internal fed;
    FederationGovernor internal governor;
    FederationTimelock internal timelock;
    FederationMembership internal membership;
    GovernanceHandler internal handler;
    address internal constant AGGREGATOR = address(0xA66);

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.roll(100);
        address predicted = _createAddress(address(this), vm.getNonce(address(this)) + 2);
        address[] memory proposers = new address[](1);
        proposers[0] = predicted;
        address[] memory executors = new address[](1);
        timelock = new FederationTimelock(60, proposers, executors, address(0));
        address[] memory founders = new address[](3);
        (founders[0], founders[1], founders[2]) = (address(0xF000), address(0xF001), address(0xF002));
        fed = new Federation(address(timelock), AGGREGATOR, founders);
        membership = fed.membership();
        governor = new FederationGovernor(IVotes(address(membership)), timelock, 1, 5, 50);
        _eq(address(governor), predicted, "governor at its predicted address");
        handler = new GovernanceHandler(fed, governor, timelock, AGGREGATOR);
        vm.roll(101);
        _targetContract(address(handler));
        bytes4[] memory selectors = new bytes4[](1);
        selectors[0] = GovernanceHandler.step.selector;
        _targetSelector(address(handler), selectors);
    }

    function _createAddress(address deployer, uint64 nonce) internal pure returns (address) {
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xd6), bytes1(0x94), deployer, uint8(nonce))))));
    }

    /// The handler's steps really govern: an admission and a removal pass and change the membership.
    function test_handlerStepsGovernForReal() public {
        handler.step(0, 4); // actor 4 registers
        handler.step(1, 4); // the members admit it
        _eq(handler.executed(), 1, "the admission was executed");
        _eq(membership.memberCount(), 4, "a fourth member");
        _true(membership.isMember(handler.actor(4)), "actor 4 is a member");
        handler.step(2, 0); // the members remove founder 0
        _eq(membership.memberCount(), 3, "back to three");
        handler.step(1, 5); // admitting an actor that never registered fails at execution
        _eq(handler.executed(), 2, "not executed");
        _eq(handler.mismatches(), 0, "as the model predicted");
    }

    /// The total voting power (the token's supply of votes, and the votes held across all accounts) is the number of
    /// members the model counts: founders and admitted participants, minus those removed.
    function invariant_votingPowerEqualsMembers() public view {
        uint256 expected = handler.members();
        _eq(membership.memberCount(), expected, "memberCount");
        uint256 held;
        for (uint256 i = 0; i < handler.ACTORS(); ++i) {
            held += membership.getVotes(handler.actor(i));
        }
        _eq(held, expected, "votes held");
    }

    function invariant_membershipFollowsTheVotes() public view {
        for (uint256 i = 0; i < handler.ACTORS(); ++i) {
            address who = handler.actor(i);
            _true(membership.isMember(who) == handler.member(who), "membership differs from the model");
            (IFederation.ParticipantStatus status,,,,) = fed.participant(who);
            _eq(uint256(status), uint256(handler.status(who)), "participant status");
        }
    }

    /// Only the timelock changes roles, admits or removes: every direct attempt by anyone else was refused, and the
    /// admin roles are where the deployment put them.
    function invariant_onlyTheTimelockAdministers() public view {
        _eq(handler.unauthorisedSuccesses(), 0, "an administration by someone other than the timelock succeeded");
        bytes32 defaultAdmin = fed.DEFAULT_ADMIN_ROLE();
        bytes32 admin = fed.ADMIN_ROLE();
        _true(fed.hasRole(defaultAdmin, address(timelock)) && fed.hasRole(admin, address(timelock)), "timelock admin");
        address[3] memory others = [address(governor), address(handler), address(this)];
        for (uint256 i = 0; i < others.length; ++i) {
            _true(!fed.hasRole(defaultAdmin, others[i]) && !fed.hasRole(admin, others[i]), "no other admin");
            _true(!timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), others[i]), "no timelock admin");
        }
        for (uint256 i = 0; i < handler.ACTORS(); ++i) {
            address who = handler.actor(i);
            _true(!fed.hasRole(defaultAdmin, who) && !fed.hasRole(admin, who), "no member administers");
            _true(!timelock.hasRole(timelock.PROPOSER_ROLE(), who), "no member proposes to the timelock");
            _true(fed.hasRole(fed.AGGREGATOR_ROLE(), who) == handler.aggregatorRole(who), "aggregator role by vote");
        }
        _true(timelock.hasRole(timelock.PROPOSER_ROLE(), address(governor)), "the governor proposes");
    }

    function invariant_membershipTokensNeverMove() public view {
        _eq(handler.tokenMoves(), 0, "a membership token was moved or approved");
    }

    function invariant_outcomesMatchModel() public view {
        _eq(handler.mismatches(), 0, string.concat("outcome differs from the model: ", handler.lastMismatch()));
    }
}

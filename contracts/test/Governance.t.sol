// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {IAccessControl} from "@openzeppelin/contracts/access/IAccessControl.sol";
import {IGovernor} from "@openzeppelin/contracts/governance/IGovernor.sol";
import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";
import {IVotes} from "@openzeppelin/contracts/governance/utils/IVotes.sol";
import {Federation} from "../Federation.sol";
import {FederationGovernor} from "../FederationGovernor.sol";
import {FederationMembership} from "../FederationMembership.sol";
import {FederationTimelock} from "../FederationTimelock.sol";
import {IFederation} from "../IFederation.sol";
import {IFederationMembership} from "../IFederationMembership.sol";
import {TestBase} from "./utils/TestBase.sol";

/// @notice A governed federation deployed as `fedchain.chain.governance.deploy_governed` does it: the timelock (its
/// only proposer and canceller the Governor, predicted from the deployer's nonce; anyone executes; no admin), the
/// Federation administered by the timelock with three founding members, and the Governor over their votes.
abstract contract GovernedFixture is TestBase {
    FederationTimelock internal timelock;
    Federation internal fed;
    FederationGovernor internal governor;
    FederationMembership internal membership;

    address internal aggregator = address(0xA66);
    address internal f1 = address(0xF001);
    address internal f2 = address(0xF002);
    address internal f3 = address(0xF003);
    address internal newcomer = address(0x1001);
    address internal outsider = address(0xBAD);

    uint48 internal constant VOTING_DELAY = 1;
    uint32 internal constant VOTING_PERIOD = 10;
    uint256 internal constant QUORUM_PERCENT = 50;
    uint256 internal constant TIMELOCK_DELAY = 60;
    uint256 internal constant START = 1_700_000_000;
    uint256 internal constant START_BLOCK = 100;
    uint64 internal constant SAMPLES = 1000;

    function setUp() public virtual {
        vm.warp(START);
        vm.roll(START_BLOCK);
        uint64 nonce = vm.getNonce(address(this));
        address predictedGovernor = _createAddress(address(this), nonce + 2);
        address[] memory proposers = new address[](1);
        proposers[0] = predictedGovernor;
        address[] memory executors = new address[](1);
        executors[0] = address(0);
        timelock = new FederationTimelock(TIMELOCK_DELAY, proposers, executors, address(0));
        address[] memory founders = new address[](3);
        (founders[0], founders[1], founders[2]) = (f1, f2, f3);
        fed = new Federation(address(timelock), aggregator, founders);
        membership = fed.membership();
        governor = new FederationGovernor(
            IVotes(address(membership)), timelock, VOTING_DELAY, VOTING_PERIOD, QUORUM_PERCENT
        );
        _eq(address(governor), predictedGovernor, "governor at its predicted address");
        vm.roll(START_BLOCK + 1); // the founders' votes count from the block after their mint
    }

    /// @dev The address of the contract `deployer` creates with nonce `nonce` (< 0x80).
    function _createAddress(address deployer, uint64 nonce) internal pure returns (address) {
        bytes memory nonceByte = nonce == 0 ? bytes(hex"80") : abi.encodePacked(uint8(nonce));
        return address(uint160(uint256(keccak256(abi.encodePacked(bytes1(0xd6), bytes1(0x94), deployer, nonceByte)))));
    }

    function _one(bytes memory data) internal view returns (address[] memory t, uint256[] memory v, bytes[] memory c) {
        t = new address[](1);
        v = new uint256[](1);
        c = new bytes[](1);
        (t[0], c[0]) = (address(fed), data);
    }

    function _propose(address proposer, bytes memory data, string memory description) internal returns (uint256 id) {
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(data);
        vm.prank(proposer);
        id = governor.propose(t, v, c, description);
    }

    function _queue(bytes memory data, string memory description) internal {
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(data);
        governor.queue(t, v, c, keccak256(bytes(description)));
    }

    function _execute(bytes memory data, string memory description) internal {
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(data);
        governor.execute(t, v, c, keccak256(bytes(description)));
    }

    function _startVote(uint256 id) internal {
        vm.roll(governor.proposalSnapshot(id) + 1);
    }

    function _endVote(uint256 id) internal {
        vm.roll(governor.proposalDeadline(id) + 1);
    }

    function _vote(address voter, uint256 id, uint8 support) internal {
        vm.prank(voter);
        governor.castVote(id, support);
    }

    /// @dev Proposes `data`, passes it with two founders' votes, queues it and executes it after the delay.
    function _govern(bytes memory data, string memory description) internal returns (uint256 id) {
        id = _propose(f1, data, description);
        _startVote(id);
        _vote(f1, id, 1);
        _vote(f2, id, 1);
        _endVote(id);
        _queue(data, description);
        vm.warp(block.timestamp + TIMELOCK_DELAY);
        _execute(data, description);
    }

    function _register(address who) internal {
        vm.prank(who);
        fed.register("Org", "health", hex"02", SAMPLES);
    }

    function _stateBitmap(IGovernor.ProposalState a) internal pure returns (bytes32) {
        return bytes32(uint256(1) << uint8(a));
    }

    function _unexpectedState(uint256 id, IGovernor.ProposalState current, bytes32 expected)
        internal
        pure
        returns (bytes memory)
    {
        return abi.encodeWithSelector(IGovernor.GovernorUnexpectedProposalState.selector, id, current, expected);
    }

    function _state(uint256 id) internal view returns (uint256) {
        return uint256(governor.state(id));
    }
}

/// @notice The governance lifecycle and every refusal of the Governor, the timelock and the membership token.
contract GovernanceTest is GovernedFixture {
    // ------------------------------------------------------------ deployment

    function test_deploymentLeavesNoAdminButTheTimelock() public view {
        _true(fed.hasRole(fed.DEFAULT_ADMIN_ROLE(), address(timelock)), "timelock holds DEFAULT_ADMIN_ROLE");
        _true(fed.hasRole(fed.ADMIN_ROLE(), address(timelock)), "timelock holds ADMIN_ROLE");
        _true(!fed.hasRole(fed.DEFAULT_ADMIN_ROLE(), address(this)), "deployer holds no DEFAULT_ADMIN_ROLE");
        _true(!fed.hasRole(fed.ADMIN_ROLE(), address(this)), "deployer holds no ADMIN_ROLE");
        _true(timelock.hasRole(timelock.PROPOSER_ROLE(), address(governor)), "governor proposes");
        _true(timelock.hasRole(timelock.CANCELLER_ROLE(), address(governor)), "governor cancels");
        _true(timelock.hasRole(timelock.EXECUTOR_ROLE(), address(0)), "anyone executes");
        _true(!timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(this)), "deployer does not administer");
        _true(timelock.hasRole(timelock.DEFAULT_ADMIN_ROLE(), address(timelock)), "the timelock administers itself");
        _eq(address(governor.token()), address(membership), "governor counts the membership token");
        _eq(governor.timelock(), address(timelock), "governor queues in the timelock");
        _eq(membership.federation(), address(fed), "the federation owns the token");
        _eq(membership.memberCount(), 3, "three founders");
        _eq(governor.getVotes(f1, START_BLOCK), 1, "a founder's vote counts from the mint block on");
        _eq(governor.proposalThreshold(), 1, "one vote to propose");
        _eq(governor.quorum(START_BLOCK), 1, "50% of 3 members");
        _eq(keccak256(bytes(governor.CLOCK_MODE())), keccak256("mode=blocknumber&from=default"), "block clock");
    }

    function test_duplicateFounderIsRefused() public {
        address[] memory founders = new address[](2);
        (founders[0], founders[1]) = (f1, f1);
        _expectRevert(abi.encodeWithSelector(IFederationMembership.MembershipAlreadyMember.selector, f1));
        new Federation(address(timelock), aggregator, founders);
    }

    // ------------------------------------------------------------ lifecycle

    function test_governanceLifecycleAdmitsAParticipant() public {
        _register(newcomer);
        bytes memory data = abi.encodeCall(Federation.admit, (newcomer));
        uint256 id = _propose(f1, data, "admit the newcomer");
        _eq(_state(id), uint256(IGovernor.ProposalState.Pending), "pending");
        _startVote(id);
        _eq(_state(id), uint256(IGovernor.ProposalState.Active), "active");
        _vote(f1, id, 1);
        _vote(f2, id, 2);
        _vote(f3, id, 0);
        (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
        _eq(against * 100 + forVotes * 10 + abstain, 111, "one vote each");
        _endVote(id);
        _eq(_state(id), uint256(IGovernor.ProposalState.Defeated), "a tie of for and against is defeated");

        uint256 second = _propose(f1, data, "admit the newcomer, again");
        _startVote(second);
        _vote(f1, second, 1);
        _vote(f2, second, 1);
        _endVote(second);
        _eq(_state(second), uint256(IGovernor.ProposalState.Succeeded), "succeeded");
        _queue(data, "admit the newcomer, again");
        _eq(_state(second), uint256(IGovernor.ProposalState.Queued), "queued");
        _eq(governor.proposalEta(second), block.timestamp + TIMELOCK_DELAY, "eta");
        vm.warp(block.timestamp + TIMELOCK_DELAY);
        vm.expectEmit(true, true, true, true, address(fed));
        emit IFederation.ParticipantAdmitted(newcomer, address(timelock), SAMPLES);
        _execute(data, "admit the newcomer, again");
        _eq(_state(second), uint256(IGovernor.ProposalState.Executed), "executed");
        (IFederation.ParticipantStatus status,,,,) = fed.participant(newcomer);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Active), "admitted");
        _true(membership.isMember(newcomer), "a member");
        _eq(membership.delegates(newcomer), newcomer, "self-delegated at mint");
        _eq(membership.getVotes(newcomer), 1, "its vote");
        _eq(membership.memberCount(), 4, "four members");
    }

    function test_defeatedWithoutQuorum() public {
        bytes memory data = abi.encodeCall(Federation.setVerificationPolicy, (50));
        uint256 id = _propose(f1, data, "nobody votes");
        _startVote(id);
        _endVote(id);
        _eq(_state(id), uint256(IGovernor.ProposalState.Defeated), "defeated without a vote");
        _expectRevert(_unexpectedState(id, IGovernor.ProposalState.Defeated, _stateBitmap(IGovernor.ProposalState.Succeeded)));
        _queue(data, "nobody votes");

        uint256 against = _propose(f1, data, "only against");
        _startVote(against);
        _vote(f1, against, 0);
        _vote(f2, against, 0);
        _endVote(against);
        _eq(_state(against), uint256(IGovernor.ProposalState.Defeated), "against votes make no quorum");
    }

    function test_quorumCountsForAndAbstain() public {
        bytes memory data = abi.encodeCall(Federation.setVerificationPolicy, (50));
        uint256 id = _propose(f1, data, "abstain makes quorum");
        _startVote(id);
        _vote(f1, id, 1);
        _endVote(id);
        _eq(_state(id), uint256(IGovernor.ProposalState.Succeeded), "one for vote of three is the 50% quorum (floor)");
    }

    function test_doubleVoteReverts() public {
        uint256 id = _propose(f1, abi.encodeCall(Federation.setVerificationPolicy, (50)), "vote twice");
        _startVote(id);
        _vote(f1, id, 1);
        _expectRevert(abi.encodeWithSelector(IGovernor.GovernorAlreadyCastVote.selector, f1));
        _vote(f1, id, 0);
    }

    function test_nonMemberVoteHasNoWeight() public {
        uint256 id = _propose(f1, abi.encodeCall(Federation.setVerificationPolicy, (50)), "outsider votes");
        _startVote(id);
        vm.expectEmit(true, true, true, true, address(governor));
        emit IGovernor.VoteCast(outsider, id, 1, 0, "");
        _vote(outsider, id, 1);
        (uint256 against, uint256 forVotes, uint256 abstain) = governor.proposalVotes(id);
        _eq(against + forVotes + abstain, 0, "nothing counted");
        _true(governor.hasVoted(id, outsider), "recorded as voted");
        _endVote(id);
        _eq(_state(id), uint256(IGovernor.ProposalState.Defeated), "no quorum from a non-member");
    }

    function test_nonMemberCannotPropose() public {
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(abi.encodeCall(Federation.admit, (outsider)));
        _expectRevert(abi.encodeWithSelector(IGovernor.GovernorInsufficientProposerVotes.selector, outsider, 0, 1));
        vm.prank(outsider);
        governor.propose(t, v, c, "let me in");
    }

    function test_memberVotesOnlyFromTheBlockAfterItsMint() public {
        _register(newcomer);
        vm.prank(address(timelock));
        fed.admit(newcomer);
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(abi.encodeCall(Federation.setVerificationPolicy, (1)));
        _expectRevert(abi.encodeWithSelector(IGovernor.GovernorInsufficientProposerVotes.selector, newcomer, 0, 1));
        vm.prank(newcomer);
        governor.propose(t, v, c, "too early");
        vm.roll(block.number + 1);
        vm.prank(newcomer);
        governor.propose(t, v, c, "in time");
    }

    function test_voteOnPendingOrClosedProposalReverts() public {
        uint256 id = _propose(f1, abi.encodeCall(Federation.setVerificationPolicy, (50)), "vote too early and too late");
        bytes32 active = _stateBitmap(IGovernor.ProposalState.Active);
        _expectRevert(_unexpectedState(id, IGovernor.ProposalState.Pending, active));
        _vote(f1, id, 1);
        _startVote(id);
        _vote(f1, id, 1);
        _endVote(id);
        _expectRevert(_unexpectedState(id, IGovernor.ProposalState.Succeeded, active));
        _vote(f2, id, 1);
        _expectRevert(abi.encodeWithSelector(IGovernor.GovernorNonexistentProposal.selector, 42));
        _vote(f2, 42, 1);
    }

    function test_executeBeforeTheDelayReverts() public {
        bytes memory data = abi.encodeCall(Federation.setVerificationPolicy, (50));
        string memory description = "execute too early";
        uint256 id = _propose(f1, data, description);
        _startVote(id);
        _vote(f1, id, 1);
        _endVote(id);
        _queue(data, description);
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(data);
        bytes32 salt = bytes20(address(governor)) ^ keccak256(bytes(description));
        bytes32 operation = timelock.hashOperationBatch(t, v, c, 0, salt);
        _true(timelock.isOperationPending(operation) && !timelock.isOperationReady(operation), "waiting");
        vm.warp(block.timestamp + TIMELOCK_DELAY - 1);
        _expectRevert(
            abi.encodeWithSelector(
                TimelockController.TimelockUnexpectedOperationState.selector,
                operation,
                bytes32(uint256(1) << uint8(TimelockController.OperationState.Ready))
            )
        );
        _execute(data, description);
        _eq(fed.verificationPolicy(), 0, "nothing changed");
        vm.warp(block.timestamp + 1);
        _execute(data, description);
        _eq(fed.verificationPolicy(), 50, "executed once ready");
    }

    function test_executeTwiceReverts() public {
        bytes memory data = abi.encodeCall(Federation.setVerificationPolicy, (40));
        uint256 id = _govern(data, "twice");
        // under timelock control a proposal is executed from the Queued state only
        _expectRevert(_unexpectedState(id, IGovernor.ProposalState.Executed, _stateBitmap(IGovernor.ProposalState.Queued)));
        _execute(data, "twice");
    }

    function test_cancelByItsProposerWhilePending() public {
        bytes memory data = abi.encodeCall(Federation.setVerificationPolicy, (50));
        uint256 id = _propose(f1, data, "withdrawn");
        (address[] memory t, uint256[] memory v, bytes[] memory c) = _one(data);
        _expectRevert(abi.encodeWithSelector(IGovernor.GovernorUnableToCancel.selector, id, f2));
        vm.prank(f2);
        governor.cancel(t, v, c, keccak256("withdrawn"));
        vm.prank(f1);
        governor.cancel(t, v, c, keccak256("withdrawn"));
        _eq(_state(id), uint256(IGovernor.ProposalState.Canceled), "canceled");
        _startVote(id);
        _expectRevert(_unexpectedState(id, IGovernor.ProposalState.Canceled, _stateBitmap(IGovernor.ProposalState.Active)));
        _vote(f1, id, 1);

        uint256 later = _propose(f1, data, "too late to withdraw");
        _startVote(later);
        (t, v, c) = _one(data);
        _expectRevert(abi.encodeWithSelector(IGovernor.GovernorUnableToCancel.selector, later, f1));
        vm.prank(f1);
        governor.cancel(t, v, c, keccak256("too late to withdraw"));
    }

    function test_directAdminCallsAreRefusedUnderGovernance() public {
        _register(newcomer);
        bytes32 role = fed.ADMIN_ROLE();
        address[3] memory callers = [f1, address(this), address(governor)];
        for (uint256 i = 0; i < callers.length; ++i) {
            _expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, callers[i], role));
            vm.prank(callers[i]);
            fed.admit(newcomer);
        }
        bytes32 adminRole = fed.DEFAULT_ADMIN_ROLE();
        bytes32 aggregatorRole = fed.AGGREGATOR_ROLE();
        _expectRevert(abi.encodeWithSelector(IAccessControl.AccessControlUnauthorizedAccount.selector, f1, adminRole));
        vm.prank(f1);
        fed.grantRole(aggregatorRole, f1);
    }

    function test_aggregatorRoleRevokedByVote() public {
        bytes32 role = fed.AGGREGATOR_ROLE();
        _govern(abi.encodeCall(IAccessControl.revokeRole, (role, aggregator)), "revoke the aggregator");
        _true(!fed.hasRole(role, aggregator), "revoked");
        _govern(abi.encodeCall(IAccessControl.grantRole, (role, f3)), "a new aggregator");
        _true(fed.hasRole(role, f3), "granted");
    }

    // ------------------------------------------------------------ the membership token

    function test_membershipTokenIsNotTransferable() public {
        uint256 id = uint256(uint160(f1));
        _eq(membership.ownerOf(id), f1, "token id is the member's address");
        _eq(membership.tokenIdOf(f1), id, "tokenIdOf");
        bytes memory refused = abi.encodeWithSelector(IFederationMembership.MembershipNotTransferable.selector, id, f1, outsider);
        _expectRevert(refused);
        vm.prank(f1);
        membership.transferFrom(f1, outsider, id);
        _expectRevert(refused);
        vm.prank(f1);
        membership.safeTransferFrom(f1, outsider, id);
        _expectRevert(refused);
        vm.prank(f1);
        membership.approve(outsider, id);
        _expectRevert(abi.encodeWithSelector(IFederationMembership.MembershipNotTransferable.selector, 0, f1, outsider));
        vm.prank(f1);
        membership.setApprovalForAll(outsider, true);
        _eq(membership.ownerOf(id), f1, "still its holder");
        _eq(membership.balanceOf(outsider), 0, "nothing moved");
    }

    function test_onlyTheFederationMintsAndBurns() public {
        address[2] memory callers = [f1, address(timelock)];
        for (uint256 i = 0; i < callers.length; ++i) {
            _expectRevert(abi.encodeWithSelector(IFederationMembership.MembershipUnauthorized.selector, callers[i]));
            vm.prank(callers[i]);
            membership.mint(outsider);
            _expectRevert(abi.encodeWithSelector(IFederationMembership.MembershipUnauthorized.selector, callers[i]));
            vm.prank(callers[i]);
            membership.burn(f1);
        }
        _expectRevert(abi.encodeWithSelector(IFederationMembership.MembershipAlreadyMember.selector, f1));
        vm.prank(address(fed));
        membership.mint(f1);
        _expectRevert(abi.encodeWithSelector(IFederationMembership.MembershipNotMember.selector, outsider));
        vm.prank(address(fed));
        membership.burn(outsider);
    }

    function test_admissionMintsAndRemovalBurns() public {
        _register(newcomer);
        vm.prank(address(timelock));
        fed.admit(newcomer);
        _true(membership.isMember(newcomer), "minted on admission");
        vm.roll(block.number + 1);
        _eq(membership.getPastVotes(newcomer, block.number - 1), 1, "votes from the next block");
        _eq(membership.getPastTotalSupply(block.number - 1), 4, "total voting power");
        vm.prank(address(timelock));
        fed.remove(newcomer, "left");
        _true(!membership.isMember(newcomer), "burned on removal");
        _eq(membership.getVotes(newcomer), 0, "no vote left");
        _eq(membership.memberCount(), 3, "three members");
    }

    function test_founderAdmittedAsParticipantKeepsOneVote() public {
        _register(f1);
        vm.prank(address(timelock));
        fed.admit(f1);
        _eq(membership.balanceOf(f1), 1, "no second token");
        _eq(membership.memberCount(), 3, "still three members");
        vm.prank(address(timelock));
        fed.remove(f1, "left");
        _eq(membership.memberCount(), 2, "its vote is gone");
    }

    function test_founderWhoNeverRegisteredCanBeRemoved() public {
        vm.prank(address(timelock));
        fed.remove(f3, "the consortium parted ways");
        _true(!membership.isMember(f3), "burned");
        (IFederation.ParticipantStatus status,,,,) = fed.participant(f3);
        _eq(uint256(status), uint256(IFederation.ParticipantStatus.Removed), "removed for good");
        _expectRevert(
            abi.encodeWithSelector(
                IFederation.FederationInvalidStatus.selector, outsider, IFederation.ParticipantStatus.None
            )
        );
        vm.prank(address(timelock));
        fed.remove(outsider, "never a member");
    }

    function test_delegationMovesTheVoteButNotTheToken() public {
        vm.prank(f1);
        membership.delegate(f2);
        vm.roll(block.number + 1);
        _eq(membership.getVotes(f2), 2, "two votes");
        _eq(membership.getVotes(f1), 0, "none left");
        _eq(membership.ownerOf(uint256(uint160(f1))), f1, "the token stays");
        vm.prank(address(timelock));
        fed.remove(f1, "left");
        _eq(membership.getVotes(f2), 1, "the delegated vote goes with the burned token");
    }

    function test_membersAdmitAParticipantWhoThenTrainsAndVotes() public {
        _register(newcomer);
        _govern(abi.encodeCall(Federation.admit, (newcomer)), "admit the newcomer");
        vm.roll(block.number + 1);
        uint256 id = _propose(newcomer, abi.encodeCall(Federation.setVerificationPolicy, (60)), "the newcomer proposes");
        _startVote(id);
        _vote(newcomer, id, 1);
        (, uint256 forVotes,) = governor.proposalVotes(id);
        _eq(forVotes, 1, "its vote counts");
    }
}

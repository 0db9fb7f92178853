// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC721} from "@openzeppelin/contracts/token/ERC721/ERC721.sol";
import {ERC721Votes} from "@openzeppelin/contracts/token/ERC721/extensions/ERC721Votes.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IFederationMembership} from "./IFederationMembership.sol";

/// @title FederationMembership
/// @notice One vote per member organisation of a federation: a non-transferable ERC-721 whose token id is the
/// member's address, minted by the Federation contract on admission (and to the founding members at deployment) and
/// burned on removal. A mint delegates the member's vote to itself, so the vote counts from the next block
/// (OpenZeppelin `Votes`, block-number clock).
/// @dev Delegation stays allowed (a member may hand its vote to another); transfers and approvals never are.
contract FederationMembership is ERC721, EIP712, ERC721Votes, IFederationMembership {
    /// @notice The Federation contract that deployed this token: the only account that mints and burns.
    address public immutable federation;

    /// @notice Deploys the token for the calling Federation and mints one to each founding member.
    /// @param founders The founding member organisations (distinct, non-zero).
    constructor(address[] memory founders) ERC721("Fedchain Membership", "FEDM") EIP712("Fedchain Membership", "1") {
        federation = msg.sender;
        for (uint256 i = 0; i < founders.length; ++i) {
            _admitMember(founders[i]);
        }
    }

    /// @notice Mints the membership token of `member` and delegates its vote to itself (the Federation only).
    /// @param member The new member.
    function mint(address member) external {
        if (msg.sender != federation) revert MembershipUnauthorized(msg.sender);
        _admitMember(member);
    }

    /// @notice Burns the membership token of `member`: its vote is gone from the next block (the Federation only).
    /// @param member The member removed.
    function burn(address member) external {
        if (msg.sender != federation) revert MembershipUnauthorized(msg.sender);
        if (!isMember(member)) revert MembershipNotMember(member);
        _burn(_tokenId(member));
    }

    /// @notice Refused: a membership token cannot be approved for transfer.
    /// @param to The account that would be approved.
    /// @param tokenId The token.
    function approve(address to, uint256 tokenId) public view override {
        revert MembershipNotTransferable(tokenId, msg.sender, to);
    }

    /// @notice Refused: nobody may operate membership tokens for their holder.
    /// @param operator The would-be operator.
    function setApprovalForAll(address operator, bool) public view override {
        revert MembershipNotTransferable(0, msg.sender, operator);
    }

    /// @notice Whether `account` holds its membership token.
    /// @param account The account.
    /// @return True for a member.
    function isMember(address account) public view returns (bool) {
        return _ownerOf(_tokenId(account)) == account && account != address(0);
    }

    /// @notice The number of members (tokens minted minus tokens burned), which is the total voting power.
    /// @return The count.
    function memberCount() external view returns (uint256) {
        return _getTotalSupply();
    }

    /// @notice The token id of a member: its address as a number.
    /// @param member The member.
    /// @return The token id.
    function tokenIdOf(address member) external pure returns (uint256) {
        return _tokenId(member);
    }

    /// @dev Mints `member`'s token and delegates its vote to itself.
    function _admitMember(address member) private {
        if (isMember(member)) revert MembershipAlreadyMember(member);
        _mint(member, _tokenId(member));
        _delegate(member, member);
    }

    /// @dev Only mints (from the zero address) and burns (to it): any other move is refused.
    function _update(address to, uint256 tokenId, address auth) internal override(ERC721, ERC721Votes) returns (address) {
        address from = _ownerOf(tokenId);
        if (from != address(0) && to != address(0)) revert MembershipNotTransferable(tokenId, from, to);
        return super._update(to, tokenId, auth);
    }

    /// @dev Required by Solidity (ERC721 and ERC721Votes both define it); nothing here mints in batches, so nothing
    /// calls it.
    // slither-disable-next-line dead-code (an override the compiler requires: see contracts/README.md)
    function _increaseBalance(address account, uint128 amount) internal override(ERC721, ERC721Votes) {
        super._increaseBalance(account, amount);
    }

    function _tokenId(address member) private pure returns (uint256) {
        return uint256(uint160(member));
    }
}

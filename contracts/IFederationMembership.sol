// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

/// @title IFederationMembership
/// @notice The custom errors of the membership token: one non-transferable vote per member organisation.
/// @dev The token's state changes are told by OpenZeppelin's events: ERC-721 `Transfer` (a mint from, or a burn to,
/// the zero address; the actor is always the Federation contract), `DelegateChanged` and `DelegateVotesChanged`.
interface IFederationMembership {
    /// @notice Only the Federation contract mints and burns membership tokens.
    /// @param caller The caller.
    error MembershipUnauthorized(address caller);
    /// @notice The account already holds its membership token.
    /// @param member The account.
    error MembershipAlreadyMember(address member);
    /// @notice The account holds no membership token.
    /// @param member The account.
    error MembershipNotMember(address member);
    /// @notice A membership token never moves between accounts, and nobody may be approved to move one.
    /// @param tokenId The token (0 for `setApprovalForAll`).
    /// @param from Its holder (for an approval: the caller).
    /// @param to The receiver (for an approval: the would-be approved account or operator).
    error MembershipNotTransferable(uint256 tokenId, address from, address to);
}

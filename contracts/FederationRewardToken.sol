// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";

/// @title FederationRewardToken
/// @notice The reward token of a federation ("Fedchain Reward", FEDR): an OpenZeppelin ERC-20 with a fixed supply
/// minted once to a treasury (under governance: the timelock), which funds the reward pool of FederationIncentives
/// by plain transfers. Nobody can mint more.
contract FederationRewardToken is ERC20 {
    /// @notice Deploys the token and mints its whole supply.
    /// @param treasury Receives the supply (the timelock when governed, else the admin).
    /// @param supply The fixed supply, in the token's smallest unit (18 decimals).
    constructor(address treasury, uint256 supply) ERC20("Fedchain Reward", "FEDR") {
        _mint(treasury, supply);
    }
}

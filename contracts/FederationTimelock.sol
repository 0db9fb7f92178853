// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {TimelockController} from "@openzeppelin/contracts/governance/TimelockController.sol";

/// @title FederationTimelock
/// @notice The timelock that holds the Federation's admin roles: every admin action is a call it executes, once a
/// proposal of the FederationGovernor passed and its delay elapsed (OpenZeppelin `TimelockController` as published).
/// @dev Deployed with the Governor as its only proposer and canceller, the zero address as executor (anyone executes
/// a queued, delayed operation) and no admin besides itself.
contract FederationTimelock is TimelockController {
    /// @notice Deploys the timelock.
    /// @param minDelay Seconds between queueing an operation and its earliest execution.
    /// @param proposers Accounts that queue and cancel operations (the Governor).
    /// @param executors Accounts that execute ready operations (the zero address: anyone).
    /// @param admin An optional extra admin (the zero address: none, the timelock administers itself).
    constructor(uint256 minDelay, address[] memory proposers, address[] memory executors, address admin)
        TimelockController(minDelay, proposers, executors, admin)
    {}
}

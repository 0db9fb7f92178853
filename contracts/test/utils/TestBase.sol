// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.37;

import {Vm} from "forge-std/Vm.sol";

/// @title TestBase
/// @notice Minimal test base on the cheatcodes of forge-std 1.1.2's `Vm` interface. The npm release of
/// forge-std 1.1.2 ships `Test.sol` without its `ds-test` dependency, so assertions live here and fail by
/// reverting (which forge reports as a failed test). Invariant targets are declared through the
/// `targetContracts()` / `targetSenders()` / `targetSelectors()` hooks that forge reads from the test contract's ABI.
abstract contract TestBase {
    /// @dev The cheatcode address: address(uint160(uint256(keccak256("hevm cheat code")))).
    Vm internal constant vm = Vm(0x7109709ECfa91a80626fF3989D68f67F5b1DD12D);

    /// @notice Marks this contract as a test contract for tools that look for it.
    bool public constant IS_TEST = true;

    /// @notice The functions of one target contract the invariant fuzzer may call (forge-std's `FuzzSelector`).
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    address[] private _targetSenders;
    FuzzSelector[] private _targetSelectors;

    /// @notice An assertion failed.
    /// @param what What was being checked.
    /// @param got The observed value.
    /// @param want The expected value.
    error AssertionFailed(string what, bytes32 got, bytes32 want);

    /// @notice Contracts the invariant fuzzer calls.
    /// @return The targets.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    /// @notice Functions the invariant fuzzer calls (all of a target's when none are listed for it).
    /// @return The selectors, by target.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    /// @notice Senders the invariant fuzzer uses.
    /// @return The senders.
    function targetSenders() public view returns (address[] memory) {
        return _targetSenders;
    }

    function _targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function _targetSelector(address target, bytes4[] memory selectors) internal {
        _targetSelectors.push(FuzzSelector(target, selectors));
    }

    function _targetSender(address sender) internal {
        _targetSenders.push(sender);
    }

    function _eq(uint256 got, uint256 want, string memory what) internal pure {
        if (got != want) revert AssertionFailed(what, bytes32(got), bytes32(want));
    }

    function _eq(bytes32 got, bytes32 want, string memory what) internal pure {
        if (got != want) revert AssertionFailed(what, got, want);
    }

    function _eq(address got, address want, string memory what) internal pure {
        if (got != want) revert AssertionFailed(what, bytes32(uint256(uint160(got))), bytes32(uint256(uint160(want))));
    }

    function _true(bool condition, string memory what) internal pure {
        if (!condition) revert AssertionFailed(what, bytes32(0), bytes32(uint256(1)));
    }

    /// @dev `value` mapped into [min, max] (inclusive), uniformly enough for fuzzing.
    function _bound(uint256 value, uint256 min, uint256 max) internal pure returns (uint256) {
        if (min > max) revert AssertionFailed("bound: min > max", bytes32(min), bytes32(max));
        if (min == 0 && max == type(uint256).max) return value;
        return min + value % (max - min + 1);
    }

    function _expectRevert(bytes memory revertData) internal {
        vm.expectRevert(revertData);
    }
}

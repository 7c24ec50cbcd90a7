// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The Foundry cheatcodes our tests use. forge-std cannot be fetched on the
///         project's offline machines, so this declares just what we call; signatures
///         must match Foundry's exactly.
interface Vm {
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    function warp(uint256 newTimestamp) external;
    function prevrandao(uint256 newPrevrandao) external;
    function roll(uint256 newHeight) external;
    function snapshotState() external returns (uint256 snapshotId);
    function revertToState(uint256 snapshotId) external returns (bool success);
    function setBlockhash(uint256 blockNumber, bytes32 blockHash) external;
    function prank(address msgSender) external;
    function startPrank(address msgSender) external;
    function stopPrank() external;
    function expectRevert(bytes calldata revertData) external;
    function expectRevert(bytes4 revertData) external;
    function expectRevert() external;
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData) external;
    function sign(uint256 privateKey, bytes32 digest) external pure returns (uint8 v, bytes32 r, bytes32 s);
    function addr(uint256 privateKey) external pure returns (address);
    function assume(bool condition) external pure;
    function label(address account, string calldata newLabel) external;
    function toString(uint256 value) external pure returns (string memory);
    function toString(address value) external pure returns (string memory);
    function toString(bytes32 value) external pure returns (string memory);
    function toString(int256 value) external pure returns (string memory);
    function load(address target, bytes32 slot) external view returns (bytes32 data);
    function recordLogs() external;
    function getRecordedLogs() external returns (Log[] memory logs);
}

/// @notice Base of every contract test: cheatcodes, assertions, bounded fuzz inputs and
///         the hooks forge's invariant runner reads (`targetContracts`).
abstract contract Test {
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @dev A contract and the functions of it forge's invariant runner may call.
    struct FuzzSelector {
        address addr;
        bytes4[] selectors;
    }

    address[] private _targetContracts;
    FuzzSelector[] private _targetSelectors;

    /// @dev Read by forge's invariant runner: only these contracts are fuzzed.
    function targetContracts() public view returns (address[] memory) {
        return _targetContracts;
    }

    /// @dev Read by forge's invariant runner: of a target, only these functions are called.
    function targetSelectors() public view returns (FuzzSelector[] memory) {
        return _targetSelectors;
    }

    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    function targetSelector(FuzzSelector memory target) internal {
        _targetSelectors.push(target);
    }

    function assertTrue(bool condition, string memory what) internal pure {
        require(condition, what);
    }

    function assertEq(uint256 a, uint256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(int256 a, int256 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(address a, address b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bytes32 a, bytes32 b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", vm.toString(a), " != ", vm.toString(b)));
    }

    function assertEq(bool a, bool b, string memory what) internal pure {
        if (a != b) revert(string.concat(what, ": ", a ? "true" : "false", " != ", b ? "true" : "false"));
    }

    function assertLe(uint256 a, uint256 b, string memory what) internal pure {
        if (a > b) revert(string.concat(what, ": ", vm.toString(a), " > ", vm.toString(b)));
    }

    /// @dev Maps `x` into [lo, hi] uniformly enough for fuzzing, keeping small values as is.
    function bound(uint256 x, uint256 lo, uint256 hi) internal pure returns (uint256) {
        require(lo <= hi, "bound: lo > hi");
        if (x >= lo && x <= hi) return x;
        uint256 size = hi - lo;
        if (size == type(uint256).max) return x;
        return lo + (x % (size + 1));
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @notice The draws of `DcnDeals` written out from its spec, apart from the contract, so
///         that tests can predict them (and set block hashes that draw what they want):
///         whether a result is audited, which of a deal's mediators a round draws, and
///         where in the approved pool each try of an appeal's draw looks.
abstract contract DrawSpec {
    uint32 internal constant PPM = 1_000_000;

    /// The audit roll of deal `id` whose result's block has hash `blockHash`: audited when
    /// below the deal's `auditPpm`.
    function auditRoll(bytes32 blockHash, bytes32 id) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(blockHash, id, "audit"))) % PPM;
    }

    /// The deal's mediator that a round with block hash `bh` draws among the `n` not in
    /// `excluded` (type(uint256).max: none left), before any bond is looked at.
    function pickOf(bytes32 bh, bytes32 id, uint16 excluded, uint256 n) internal pure returns (uint256) {
        uint256 left;
        for (uint256 i = 0; i < n; i++) {
            if (excluded & (1 << i) == 0) left++;
        }
        if (left == 0) return type(uint256).max;
        uint256 pick = uint256(keccak256(abi.encode(bh, id, excluded))) % left;
        for (uint256 i = 0; i < n; i++) {
            if (excluded & (1 << i) != 0) continue;
            if (pick == 0) return i;
            pick--;
        }
        revert("unreachable");
    }

    /// The pool index the `k`-th try of an appeal's draw looks at, in a pool of `n`.
    function appealPick(bytes32 bh, bytes32 id, uint256 k, uint256 n) internal pure returns (uint256) {
        return uint256(keccak256(abi.encode(bh, id, "appeal", k))) % n;
    }
}

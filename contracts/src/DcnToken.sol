// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {ERC20} from "@openzeppelin/contracts/token/ERC20/ERC20.sol";
import {ERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/ERC20Permit.sol";

/// @title DcnToken
/// @notice The ERC-20 in which dcn jobs are paid and collateral is locked.
/// @dev Fixed supply, minted once to the deployer. Permit (EIP-2612) lets a client
///      approve and deposit in one transaction.
contract DcnToken is ERC20, ERC20Permit {
    constructor(uint256 initialSupply) ERC20("dcn Token", "DCN") ERC20Permit("dcn Token") {
        _mint(msg.sender, initialSupply);
    }
}

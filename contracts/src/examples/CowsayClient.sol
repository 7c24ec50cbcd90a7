// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {DcnJobBoard, IDcnJobClient} from "../DcnJobBoard.sol";

/// @title CowsayClient
/// @notice Example of a contract that buys compute: `runCowsay("moo", jobHash)` asks the
///         board to run the `cowsay` module, paid from this contract's own token balance,
///         and keeps the result hash when the board delivers it. The job hash names the
///         exact job (`dcn module hash cowsay -i Message=moo` prints it): the board delivers
///         only a deal that ran that job.
contract CowsayClient is IDcnJobClient, Ownable {
    using SafeERC20 for IERC20;

    DcnJobBoard public immutable board;
    IERC20 public immutable token;
    /// @notice Tokens paid per job.
    uint256 public price;
    /// @notice Seconds the board has to deliver.
    uint64 public timeout = 1 hours;

    mapping(uint256 => bytes32) public results;
    uint256 public lastRequestId;
    bytes32 public lastResultHash;

    event CowsayRequested(uint256 indexed requestId, string message);
    event CowsayResult(uint256 indexed requestId, bytes32 dealId, bytes32 resultHash);

    error NotBoard(address caller);

    constructor(DcnJobBoard board_, uint256 price_) Ownable(msg.sender) {
        board = board_;
        token = board_.token();
        price = price_;
    }

    /// @notice Sets the price paid per job.
    function setPrice(uint256 price_) external onlyOwner {
        price = price_;
    }

    /// @notice Asks the network to run `cowsay` with `message`: the job whose spec hashes
    ///         to `jobHash`.
    function runCowsay(string calldata message, bytes32 jobHash) external returns (uint256 requestId) {
        string[] memory inputs = new string[](1);
        inputs[0] = string.concat("Message=", message);
        token.forceApprove(address(board), price);
        requestId = board.requestJob("cowsay", inputs, jobHash, price, timeout);
        lastRequestId = requestId;
        emit CowsayRequested(requestId, message);
    }

    /// @inheritdoc IDcnJobClient
    function onJobResult(uint256 requestId, bytes32 dealId, bytes32 resultHash) external {
        if (msg.sender != address(board)) revert NotBoard(msg.sender);
        results[requestId] = resultHash;
        lastResultHash = resultHash;
        emit CowsayResult(requestId, dealId, resultHash);
    }

    /// @notice Lets the owner take back unspent tokens.
    function withdraw(address to, uint256 amount) external onlyOwner {
        token.safeTransfer(to, amount);
    }
}

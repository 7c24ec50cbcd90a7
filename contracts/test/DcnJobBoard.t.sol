// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {DcnToken} from "../src/DcnToken.sol";
import {DcnJobBoard, IDcnJobClient} from "../src/DcnJobBoard.sol";
import {CowsayClient} from "../src/examples/CowsayClient.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract RevertingClient is IDcnJobClient {
    function onJobResult(uint256, bytes32, bytes32) external pure {
        revert("client broke");
    }
}

/// A client whose callback needs most of the gas the board promises.
contract GreedyClient is IDcnJobClient {
    bytes32 public got;

    function onJobResult(uint256, bytes32, bytes32 resultHash) external {
        require(gasleft() >= 190_000, "starved");
        got = resultHash;
    }
}

contract DcnJobBoardTest is Test {
    DcnToken internal token;
    DcnJobBoard internal board;
    CowsayClient internal client;
    address internal operator = address(0x0BE7);
    uint256 internal constant PRICE = 5 ether;
    uint256 internal constant MIN_PAYMENT = 1 ether;
    uint64 internal constant MIN_TIMEOUT = 10 minutes;

    function setUp() public {
        token = new DcnToken(1_000_000 ether);
        board = new DcnJobBoard(token, operator, MIN_PAYMENT, MIN_TIMEOUT);
        client = new CowsayClient(board, PRICE);
        token.transfer(address(client), 100 ether);
    }

    function test_cowsay_request_and_delivery() public {
        uint256 id = client.runCowsay("moo");
        assertEq(id, 1, "first request");
        DcnJobBoard.Request memory r = board.getRequest(id);
        assertEq(r.requester, address(client), "requester");
        assertEq(keccak256(bytes(r.module)), keccak256("cowsay"), "module");
        assertEq(keccak256(bytes(r.inputs[0])), keccak256("Message=moo"), "inputs");
        assertEq(token.balanceOf(address(board)), PRICE, "payment held");

        vm.prank(operator);
        board.deliverResult(id, bytes32(uint256(7)), keccak256("cow"));
        assertEq(client.lastResultHash(), keccak256("cow"), "client got the result");
        assertEq(client.results(id), keccak256("cow"), "by request");
        assertEq(token.balanceOf(operator), PRICE, "operator paid");
        assertEq(uint256(board.getRequest(id).status), uint256(DcnJobBoard.Status.Delivered), "delivered");
    }

    function test_only_operator_delivers() public {
        uint256 id = client.runCowsay("moo");
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperator.selector, address(this)));
        board.deliverResult(id, 0, keccak256("cow"));
        vm.prank(address(client));
        vm.expectRevert(abi.encodeWithSelector(CowsayClient.NotBoard.selector, address(client)));
        client.onJobResult(id, 0, keccak256("forged"));
    }

    function test_deliver_refusals() public {
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.UnknownRequest.selector, 9));
        board.deliverResult(9, 0, keccak256("cow"));

        uint256 id = client.runCowsay("moo");
        vm.prank(operator);
        vm.expectRevert(DcnJobBoard.EmptyResultHash.selector);
        board.deliverResult(id, 0, 0);

        uint64 deadline = board.getRequest(id).deadline;
        vm.warp(deadline + 1);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DeadlinePassed.selector, id, deadline));
        board.deliverResult(id, 0, keccak256("cow"));
    }

    function test_refund_after_deadline_only() public {
        uint256 id = client.runCowsay("moo");
        uint64 deadline = board.getRequest(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DeadlineNotReached.selector, id, deadline));
        board.refund(id);
        vm.warp(deadline + 1);
        board.refund(id);
        assertEq(token.balanceOf(address(client)), 100 ether, "client refunded");
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOpen.selector, id, DcnJobBoard.Status.Refunded));
        board.refund(id);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOpen.selector, id, DcnJobBoard.Status.Refunded));
        board.deliverResult(id, 0, keccak256("cow"));
    }

    function test_reverting_client_does_not_block_delivery() public {
        RevertingClient bad = new RevertingClient();
        token.transfer(address(bad), PRICE);
        vm.startPrank(address(bad));
        token.approve(address(board), PRICE);
        string[] memory inputs = new string[](0);
        uint256 id = board.requestJob("cowsay", inputs, PRICE, 1 hours);
        vm.stopPrank();
        vm.prank(operator);
        board.deliverResult(id, 0, keccak256("cow"));
        assertEq(token.balanceOf(operator), PRICE, "operator still paid");
    }

    function test_a_delivery_cannot_starve_the_callback() public {
        GreedyClient greedy = new GreedyClient();
        token.transfer(address(greedy), PRICE);
        vm.startPrank(address(greedy));
        token.approve(address(board), PRICE);
        uint256 id = board.requestJob("cowsay", new string[](0), PRICE, 1 hours);
        vm.stopPrank();

        // Enough gas for everything but the callback (the 63/64 rule): refused, nothing paid.
        vm.prank(operator);
        (bool ok, bytes memory err) =
            address(board).call{gas: 210_000}(abi.encodeCall(board.deliverResult, (id, 0, keccak256("cow"))));
        assertTrue(!ok, "a starved delivery reverts");
        assertEq(bytes4(err), DcnJobBoard.InsufficientGas.selector, "with InsufficientGas");
        assertEq(uint256(board.getRequest(id).status), uint256(DcnJobBoard.Status.Open), "still open");
        assertEq(token.balanceOf(operator), 0, "operator not paid");

        // With its gas the callback runs and the client has its result.
        vm.prank(operator);
        board.deliverResult{gas: 400_000}(id, 0, keccak256("cow"));
        assertEq(greedy.got(), keccak256("cow"), "client got the result");
        assertEq(token.balanceOf(operator), PRICE, "operator paid");
    }

    function test_requests_that_pay_too_little_or_give_too_little_time_are_refused() public {
        string[] memory inputs = new string[](0);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.PaymentTooLow.selector, 0, MIN_PAYMENT));
        board.requestJob("cowsay", inputs, 0, 1 hours);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, MIN_TIMEOUT - 1));
        board.requestJob("cowsay", inputs, MIN_PAYMENT, MIN_TIMEOUT - 1);
        token.approve(address(board), MIN_PAYMENT);
        board.requestJob("cowsay", inputs, MIN_PAYMENT, MIN_TIMEOUT);

        // Only the owner changes the minimums, never to nothing.
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        board.setMinimums(0, 1);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.PaymentTooLow.selector, 0, 1));
        board.setMinimums(0, 1);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, 0));
        board.setMinimums(1, 0);
        board.setMinimums(2 ether, 1 hours);
        assertEq(board.minPayment(), 2 ether, "new minimum payment");
        assertEq(uint256(board.minTimeout()), 1 hours, "new minimum time");
    }

    function test_an_open_request_stays_with_its_operator() public {
        uint256 id = client.runCowsay("moo");
        assertEq(board.getRequest(id).operator, operator, "bound at request time");
        // The owner makes itself operator: the payment already held is not its to take.
        board.setOperator(address(this));
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperator.selector, address(this)));
        board.deliverResult(id, 0, keccak256("cow"));
        // The operator the requester chose still delivers and is paid.
        vm.prank(operator);
        board.deliverResult(id, 0, keccak256("cow"));
        assertEq(token.balanceOf(operator), PRICE, "its operator paid");
        // New requests go to the new operator.
        uint256 next = client.runCowsay("moo");
        assertEq(board.getRequest(next).operator, address(this), "new requests: new operator");
    }

    function test_request_refusals_and_operator_change() public {
        string[] memory inputs = new string[](0);
        vm.expectRevert(DcnJobBoard.EmptyModule.selector);
        board.requestJob("", inputs, 0, 1 hours);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, 0));
        board.requestJob("cowsay", inputs, 0, 0);
        board.setOperator(address(0xBEEF));
        assertEq(board.operator(), address(0xBEEF), "operator changed");
        vm.prank(operator);
        vm.expectRevert();
        board.setOperator(operator);
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DealsFixture} from "./utils/DealsFixture.sol";
import {DcnDeals} from "../src/DcnDeals.sol";
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

/// The job board against a real `DcnDeals`: its operator is the fixture's job creator, who
/// buys deals from the fixture's provider.
contract DcnJobBoardTest is DealsFixture {
    DcnJobBoard internal board;
    CowsayClient internal client;
    address internal operator;
    uint256 internal constant JOB_PAYMENT = 5 ether;
    uint256 internal constant MIN_PAYMENT = 1 ether;
    uint64 internal constant MIN_TIMEOUT = 10 minutes;
    bytes32 internal constant COW = keccak256("cow");

    function setUp() public override {
        super.setUp();
        operator = jobCreator;
        board = new DcnJobBoard(token, deals, operator, MIN_PAYMENT, MIN_TIMEOUT);
        client = new CowsayClient(board, JOB_PAYMENT);
        token.transfer(address(client), 100 ether);
    }

    /// A deal the operator bought and accepted, with result `result`.
    function paidDeal(bytes32 result) internal returns (bytes32 id) {
        id = create(newDeal());
        vm.prank(provider);
        deals.submitResult(id, result);
        vm.prank(operator);
        deals.acceptResult(id);
    }

    function operatorBalance() internal view returns (uint256) {
        return token.balanceOf(operator);
    }

    function test_cowsay_request_and_delivery() public {
        uint256 id = client.runCowsay("moo");
        assertEq(id, 1, "first request");
        DcnJobBoard.Request memory r = board.getRequest(id);
        assertEq(r.requester, address(client), "requester");
        assertEq(keccak256(bytes(r.module)), keccak256("cowsay"), "module");
        assertEq(keccak256(bytes(r.inputs[0])), keccak256("Message=moo"), "inputs");
        assertEq(token.balanceOf(address(board)), JOB_PAYMENT, "payment held");

        bytes32 deal = paidDeal(COW);
        vm.prank(operator);
        board.deliverResult(id, deal, COW);
        assertEq(board.getRequest(id).dealId, deal, "the deal that delivered it");
        assertEq(board.requestOfDeal(deal), id, "and the deal is used up");
        assertEq(client.lastResultHash(), keccak256("cow"), "client got the result");
        assertEq(client.results(id), keccak256("cow"), "by request");
        assertEq(token.balanceOf(operator), JOB_PAYMENT, "operator paid");
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
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.UnknownRequest.selector, 9));
        board.getRequest(9);

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
        token.transfer(address(bad), JOB_PAYMENT);
        vm.startPrank(address(bad));
        token.approve(address(board), JOB_PAYMENT);
        string[] memory inputs = new string[](0);
        uint256 id = board.requestJob("cowsay", inputs, JOB_PAYMENT, 1 hours);
        vm.stopPrank();
        bytes32 deal = paidDeal(COW);
        vm.prank(operator);
        board.deliverResult(id, deal, COW);
        assertEq(token.balanceOf(operator), JOB_PAYMENT, "operator still paid");
    }

    function test_a_delivery_cannot_starve_the_callback() public {
        GreedyClient greedy = new GreedyClient();
        token.transfer(address(greedy), JOB_PAYMENT);
        vm.startPrank(address(greedy));
        token.approve(address(board), JOB_PAYMENT);
        uint256 id = board.requestJob("cowsay", new string[](0), JOB_PAYMENT, 1 hours);
        vm.stopPrank();
        bytes32 deal = paidDeal(COW);

        // Enough gas for everything but the callback (the 63/64 rule): refused, nothing paid.
        vm.prank(operator);
        (bool ok, bytes memory err) =
            address(board).call{gas: 260_000}(abi.encodeCall(board.deliverResult, (id, deal, COW)));
        assertTrue(!ok, "a starved delivery reverts");
        assertEq(bytes4(err), DcnJobBoard.InsufficientGas.selector, "with InsufficientGas");
        assertEq(uint256(board.getRequest(id).status), uint256(DcnJobBoard.Status.Open), "still open");
        assertEq(token.balanceOf(operator), 0, "operator not paid");

        // With its gas the callback runs and the client has its result.
        vm.prank(operator);
        board.deliverResult{gas: 450_000}(id, deal, COW);
        assertEq(greedy.got(), keccak256("cow"), "client got the result");
        assertEq(token.balanceOf(operator), JOB_PAYMENT, "operator paid");
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
        bytes32 deal = paidDeal(COW);
        vm.prank(operator);
        board.deliverResult(id, deal, COW);
        assertEq(token.balanceOf(operator), JOB_PAYMENT, "its operator paid");
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

    // ─── deliveries are checked against DcnDeals (K5) ───

    function test_a_delivery_is_checked_against_the_deal() public {
        uint256 id = client.runCowsay("moo");

        // Not a deal at all, or a deal the operator did not buy.
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperatorsDeal.selector, bytes32(uint256(7)), address(0)));
        board.deliverResult(id, bytes32(uint256(7)), COW);
        fund(other, FUNDS);
        DcnDeals.Deal memory d = newDeal();
        d.jobCreator = other;
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(other);
        bytes32 theirs = deals.createDeal(d, sig);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperatorsDeal.selector, theirs, other));
        board.deliverResult(id, theirs, COW);

        // The operator's deal, but its provider was not paid (yet).
        bytes32 pending = create(newDeal());
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, pending, DcnDeals.State.Created));
        board.deliverResult(id, pending, COW);

        // Paid, but for another result.
        bytes32 paid = paidDeal(COW);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.ResultMismatch.selector, paid, COW, keccak256("horse")));
        board.deliverResult(id, paid, keccak256("horse"));
        assertEq(operatorBalance(), 0, "nothing paid for any of these");

        // One deal delivers one request.
        vm.prank(operator);
        board.deliverResult(id, paid, COW);
        uint256 next = client.runCowsay("moo");
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealUsed.selector, paid, id));
        board.deliverResult(next, paid, COW);
        assertEq(operatorBalance(), JOB_PAYMENT, "paid once");
    }

    function test_no_refund_while_the_claimed_deal_is_in_flight() public {
        uint256 id = client.runCowsay("moo");
        uint64 deadline = board.getRequest(id).deadline;
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 2 hours; // longer than the request gives
        bytes32 deal = create(d);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperator.selector, other));
        board.claim(id, deal);
        vm.prank(operator);
        board.claim(id, deal);

        // The request's deadline passes while the provider still works: no refund.
        vm.warp(deadline + 1);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealInFlight.selector, id, deal));
        board.refund(id);

        // The deal pays its provider after the deadline; the operator delivers in the grace.
        vm.prank(provider);
        deals.submitResult(deal, COW);
        vm.prank(operator);
        deals.acceptResult(deal);
        vm.prank(operator);
        board.deliverResult(id, deal, COW);
        assertEq(operatorBalance(), JOB_PAYMENT, "the operator that bought the job is paid");
        assertEq(client.results(id), COW, "and the client has its result");
    }

    function test_a_claim_in_flight_cannot_be_swapped_and_a_failed_one_can() public {
        uint256 id = client.runCowsay("moo");
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 10 minutes;
        bytes32 first = create(d);
        vm.prank(operator);
        board.claim(id, first);
        bytes32 second = create(newDeal());
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealInFlight.selector, id, first));
        board.claim(id, second);
        // The first deal fails (no result): the operator buys again and claims the new one.
        vm.warp(block.timestamp + 10 minutes + 1);
        deals.timeout(first);
        vm.prank(operator);
        board.claim(id, second);
        assertEq(board.getRequest(id).dealId, second, "claimed with the new deal");
    }

    function test_a_failed_deal_lets_the_requester_refund_after_the_deadline() public {
        uint256 id = client.runCowsay("moo");
        uint64 deadline = board.getRequest(id).deadline;
        bytes32 deal = create(newDeal());
        vm.prank(operator);
        board.claim(id, deal);
        vm.warp(deadline + 1);
        deals.timeout(deal); // no result: the deal failed
        board.refund(id);
        assertEq(token.balanceOf(address(client)), 100 ether, "client refunded");
    }

    function test_a_settled_claim_not_delivered_is_refunded_after_the_grace() public {
        uint256 id = client.runCowsay("moo");
        uint64 deadline = board.getRequest(id).deadline;
        bytes32 deal = paidDeal(COW);
        vm.prank(operator);
        board.claim(id, deal);
        uint64 last = deadline + board.DELIVERY_GRACE();
        vm.warp(last);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DeadlineNotReached.selector, id, last));
        board.refund(id);
        vm.warp(last + 1);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DeadlinePassed.selector, id, last));
        board.deliverResult(id, deal, COW);
        board.refund(id);
        assertEq(token.balanceOf(address(client)), 100 ether, "client refunded");
    }

    function test_only_the_claimed_deal_and_one_that_paid_its_provider_delivers() public {
        uint256 id = client.runCowsay("moo");
        // A deal of the operator that ended without paying its provider (no result).
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 10 minutes;
        bytes32 failed = create(d);
        vm.warp(block.timestamp + 10 minutes + 1);
        deals.timeout(failed);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, failed, DcnDeals.State.TimedOutNoResult));
        board.deliverResult(id, failed, COW);

        // Claimed with one deal, delivered with another: refused.
        bytes32 claimed = create(newDeal());
        vm.prank(operator);
        board.claim(id, claimed);
        bytes32 other = paidDeal(COW);
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.WrongDeal.selector, id, claimed, other));
        board.deliverResult(id, other, COW);

        // The claimed deal is challenged and no mediator rules: the result stands, the
        // provider is paid, and that result delivers the request.
        vm.prank(provider);
        deals.submitResult(claimed, COW);
        challengeAndDraw(claimed);
        vm.warp(deals.getDeal(claimed).deadline + 1);
        deals.timeout(claimed);
        assertState(claimed, DcnDeals.State.TimedOutNoVerdict);
        vm.prank(operator);
        board.deliverResult(id, claimed, COW);
        assertEq(operatorBalance(), JOB_PAYMENT, "paid for the result that stood");
    }
}

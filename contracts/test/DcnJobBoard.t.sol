// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DealsFixture, H} from "./utils/DealsFixture.sol";
import {Vm} from "./utils/Test.sol";
import {DcnDeals} from "../src/DcnDeals.sol";
import {DcnJobBoard, IDcnJobClient} from "../src/DcnJobBoard.sol";
import {CowsayClient} from "../src/examples/CowsayClient.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

contract RevertingClient is IDcnJobClient {
    function onJobResult(uint256, bytes32, bytes32) external pure {
        revert("client broke");
    }
}

/// A client whose callback reverts with 200,000 bytes: a board that copied and logged all
/// of it would pay for the copy, the memory and 1.6 million gas of log data.
contract ReturnBombClient is IDcnJobClient {
    function onJobResult(uint256, bytes32, bytes32) external pure {
        assembly {
            mstore(0, 0xB0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0)
            revert(0, 200000)
        }
    }
}

/// A client that notes the gas its callback was given, then burns it all.
contract GasHogClient is IDcnJobClient {
    uint256 public given;

    function onJobResult(uint256, bytes32, bytes32) external {
        given = gasleft();
        while (gasleft() > 1_000) {}
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
/// buys deals of the requested job from the fixture's provider.
contract DcnJobBoardTest is DealsFixture {
    DcnJobBoard internal board;
    CowsayClient internal client;
    address internal operator;
    uint256 internal constant JOB_PAYMENT = 5 ether;
    uint256 internal constant MIN_PAYMENT = 1 ether;
    uint64 internal constant MIN_TIMEOUT = 10 minutes;
    bytes32 internal constant OTHER_JOB = keccak256("cowsay Message=baa");

    function setUp() public override {
        super.setUp();
        operator = jobCreator;
        board = new DcnJobBoard(token, deals, operator, MIN_PAYMENT, MIN_TIMEOUT);
        client = new CowsayClient(board, JOB_PAYMENT);
        token.transfer(address(client), 100 ether);
    }

    /// A deal of the requested job that the operator bought and accepted.
    function paidDeal() internal returns (H memory h) {
        h = createAndSubmit(newDeal());
        accept(h);
    }

    function operatorBalance() internal view returns (uint256) {
        return token.balanceOf(operator);
    }

    function request() internal returns (uint256) {
        return client.runCowsay("moo", JOB);
    }

    function deliver(uint256 id, H memory h) internal {
        vm.prank(operator);
        board.deliverResult(id, h.id, h.t, h.c);
    }

    function expectDeliverRevert(uint256 id, H memory h, bytes memory err) internal {
        vm.prank(operator);
        vm.expectRevert(err);
        board.deliverResult(id, h.id, h.t, h.c);
    }

    function claim(uint256 id, H memory h) internal {
        vm.prank(operator);
        board.claim(id, h.id, h.t, h.c);
    }

    function expectClaimRevert(uint256 id, H memory h, bytes memory err) internal {
        vm.prank(operator);
        vm.expectRevert(err);
        board.claim(id, h.id, h.t, h.c);
    }

    function requestFrom(address requester) internal returns (uint256 id) {
        token.transfer(requester, JOB_PAYMENT);
        vm.startPrank(requester);
        token.approve(address(board), JOB_PAYMENT);
        id = board.requestJob("cowsay", new string[](0), JOB, JOB_PAYMENT, 1 hours);
        vm.stopPrank();
    }

    // ─── requests and deliveries ───

    function test_cowsay_request_and_delivery() public {
        vm.expectEmit(true, true, false, true);
        string[] memory inputs = new string[](1);
        inputs[0] = "Message=moo";
        emit DcnJobBoard.JobRequested(
            1, address(client), "cowsay", inputs, JOB, JOB_PAYMENT, uint64(block.timestamp + 1 hours)
        );
        uint256 id = request();
        assertEq(id, 1, "first request");
        DcnJobBoard.Request memory r = board.getRequest(id);
        assertEq(r.requester, address(client), "requester");
        assertEq(keccak256(bytes(r.module)), keccak256("cowsay"), "module");
        assertEq(keccak256(bytes(r.inputs[0])), keccak256("Message=moo"), "inputs");
        assertEq(r.jobHash, JOB, "the job it commits to");
        assertEq(r.operator, operator, "bound to the operator");
        assertEq(token.balanceOf(address(board)), JOB_PAYMENT, "payment held");

        H memory h = paidDeal();
        vm.expectEmit(true, true, false, true);
        emit DcnJobBoard.JobDelivered(id, h.id, RESULT);
        deliver(id, h);
        assertEq(board.getRequest(id).dealId, h.id, "the deal that delivered it");
        assertEq(board.getRequest(id).resultHash, RESULT, "its result");
        assertEq(board.requestOfDeal(h.id), id, "and the deal is used up");
        assertEq(client.lastResultHash(), RESULT, "client got the result");
        assertEq(client.results(id), RESULT, "by request");
        assertEq(operatorBalance(), JOB_PAYMENT, "operator paid");
        assertEq(uint256(board.getRequest(id).status), uint256(DcnJobBoard.Status.Delivered), "delivered");
    }

    function test_only_operator_delivers() public {
        uint256 id = request();
        H memory h = paidDeal();
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperator.selector, address(this)));
        board.deliverResult(id, h.id, h.t, h.c);
        vm.prank(address(client));
        vm.expectRevert(abi.encodeWithSelector(CowsayClient.NotBoard.selector, address(client)));
        client.onJobResult(id, 0, keccak256("forged"));
    }

    function test_deliver_refusals() public {
        H memory h = paidDeal();
        expectDeliverRevert(9, h, abi.encodeWithSelector(DcnJobBoard.UnknownRequest.selector, 9));
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.UnknownRequest.selector, 9));
        board.getRequest(9);

        uint256 id = request();
        // A deal with no result yet: its case carries none.
        H memory pending = create(newDeal());
        expectDeliverRevert(id, pending, abi.encodeWithSelector(DcnJobBoard.EmptyResultHash.selector));

        uint64 dl = board.getRequest(id).deadline;
        vm.warp(dl + 1);
        expectDeliverRevert(id, h, abi.encodeWithSelector(DcnJobBoard.DeadlinePassed.selector, id, dl));
    }

    function test_refund_after_deadline_only() public {
        uint256 id = request();
        uint64 dl = board.getRequest(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DeadlineNotReached.selector, id, dl));
        board.refund(id);
        vm.warp(dl + 1);
        vm.expectEmit(true, true, false, true);
        emit DcnJobBoard.JobRefunded(id, address(client), JOB_PAYMENT);
        board.refund(id);
        assertEq(token.balanceOf(address(client)), 100 ether, "client refunded");
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOpen.selector, id, DcnJobBoard.Status.Refunded));
        board.refund(id);
        H memory h = paidDeal();
        expectDeliverRevert(id, h, abi.encodeWithSelector(DcnJobBoard.NotOpen.selector, id, DcnJobBoard.Status.Refunded));
    }

    function test_requests_that_pay_too_little_give_too_little_time_or_name_no_job_are_refused() public {
        string[] memory inputs = new string[](0);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.PaymentTooLow.selector, 0, MIN_PAYMENT));
        board.requestJob("cowsay", inputs, JOB, 0, 1 hours);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, MIN_TIMEOUT - 1));
        board.requestJob("cowsay", inputs, JOB, MIN_PAYMENT, MIN_TIMEOUT - 1);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, 30 days + 1));
        board.requestJob("cowsay", inputs, JOB, MIN_PAYMENT, 30 days + 1);
        vm.expectRevert(DcnJobBoard.EmptyModule.selector);
        board.requestJob("", inputs, JOB, MIN_PAYMENT, 1 hours);
        // A request commits to a job: without its hash nothing could be checked.
        vm.expectRevert(DcnJobBoard.EmptyJobHash.selector);
        board.requestJob("cowsay", inputs, bytes32(0), MIN_PAYMENT, 1 hours);
        vm.expectRevert(DcnJobBoard.EmptyJobHash.selector);
        client.runCowsay("moo", bytes32(0));
        token.approve(address(board), MIN_PAYMENT);
        board.requestJob("cowsay", inputs, JOB, MIN_PAYMENT, MIN_TIMEOUT);
        assertEq(token.balanceOf(address(board)), MIN_PAYMENT, "the least request is paid in");

        // Only the owner changes the minimums, never to nothing.
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        board.setMinimums(2 ether, 1 hours);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.PaymentTooLow.selector, 0, 1));
        board.setMinimums(0, 1);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, 0));
        board.setMinimums(1, 0);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.InvalidTimeout.selector, 30 days + 1));
        board.setMinimums(1, 30 days + 1);
        board.setMinimums(2 ether, 1 hours);
        assertEq(board.minPayment(), 2 ether, "new minimum payment");
        assertEq(uint256(board.minTimeout()), 1 hours, "new minimum time");
    }

    function test_an_open_request_stays_with_its_operator() public {
        uint256 id = request();
        assertEq(board.getRequest(id).operator, operator, "bound at request time");
        board.setOperator(address(this));
        assertEq(board.operator(), address(this), "operator changed");
        H memory h = paidDeal();
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperator.selector, address(this)));
        board.deliverResult(id, h.id, h.t, h.c);
        deliver(id, h);
        assertEq(operatorBalance(), JOB_PAYMENT, "its operator paid");
        uint256 next = request();
        assertEq(board.getRequest(next).operator, address(this), "new requests: new operator");
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, operator));
        board.setOperator(operator);
    }

    function test_board_ownership_moves_in_two_steps() public {
        address next = address(0xA0A0);
        board.transferOwnership(next);
        assertEq(board.owner(), address(this), "still the owner");
        assertEq(board.pendingOwner(), next, "pending");
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, other));
        board.acceptOwnership();
        vm.prank(next);
        board.acceptOwnership();
        assertEq(board.owner(), next, "moved");
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        board.setOperator(address(this));
        vm.prank(next);
        board.setOperator(next);
    }

    // ─── the client's callback ───

    function test_a_reverting_client_does_not_block_delivery() public {
        uint256 id = requestFrom(address(new RevertingClient()));
        H memory h = paidDeal();
        vm.expectEmit(true, false, false, true);
        emit DcnJobBoard.CallbackFailed(id, abi.encodeWithSignature("Error(string)", "client broke"));
        deliver(id, h);
        assertEq(operatorBalance(), JOB_PAYMENT, "operator still paid");
        assertEq(uint256(board.getRequest(id).status), uint256(DcnJobBoard.Status.Delivered), "delivered");
    }

    function test_a_return_bomb_client_costs_the_delivery_bounded_gas() public {
        uint256 bombId = requestFrom(address(new ReturnBombClient()));
        uint256 plainId = requestFrom(address(new RevertingClient()));
        H memory bombDeal = paidDeal();
        H memory plainDeal = paidDeal();

        vm.recordLogs();
        vm.prank(operator);
        uint256 before = gasleft();
        board.deliverResult{gas: 1_000_000}(bombId, bombDeal.id, bombDeal.t, bombDeal.c);
        uint256 bombGas = before - gasleft();
        bytes memory reason;
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            if (logs[i].topics[0] == DcnJobBoard.CallbackFailed.selector) reason = abi.decode(logs[i].data, (bytes));
        }
        assertEq(reason.length, board.MAX_REVERT_BYTES(), "the reason is cut to MAX_REVERT_BYTES");
        assertEq(bytes32(_word(reason, 0)), bytes32(uint256(0xB0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0B0)), "its first bytes");

        vm.prank(operator);
        before = gasleft();
        board.deliverResult{gas: 1_000_000}(plainId, plainDeal.id, plainDeal.t, plainDeal.c);
        uint256 plainGas = before - gasleft();
        // The bomb burns its own CALLBACK_GAS; the board's part stays that of a plain revert
        // plus 256 bytes copied and logged.
        assertLe(bombGas, plainGas + board.CALLBACK_GAS() + 10_000, "a bomb costs the callback's gas and little more");
        assertEq(operatorBalance(), 2 * JOB_PAYMENT, "both delivered and paid");
    }

    function test_a_client_gets_the_callback_gas_and_no_more() public {
        GasHogClient hog = new GasHogClient();
        uint256 id = requestFrom(address(hog));
        H memory h = paidDeal();
        vm.prank(operator);
        board.deliverResult{gas: 3_000_000}(id, h.id, h.t, h.c);
        assertLe(hog.given(), board.CALLBACK_GAS(), "no more than CALLBACK_GAS");
        assertLe(board.CALLBACK_GAS() - 1_000, hog.given(), "and all of it");
        assertEq(board.CALLBACK_GAS(), 200_000, "as published");
        assertEq(board.MAX_REVERT_BYTES(), 256, "as published");
        assertEq(operatorBalance(), JOB_PAYMENT, "delivered");
    }

    function test_a_delivery_cannot_starve_the_callback() public {
        GreedyClient greedy = new GreedyClient();
        uint256 id = requestFrom(address(greedy));
        H memory h = paidDeal();

        // Enough gas for everything but the callback (the 63/64 rule): refused, nothing paid.
        vm.prank(operator);
        (bool ok, bytes memory err) =
            address(board).call{gas: 300_000}(abi.encodeCall(board.deliverResult, (id, h.id, h.t, h.c)));
        assertTrue(!ok, "a starved delivery reverts");
        assertEq(bytes4(err), DcnJobBoard.InsufficientGas.selector, "with InsufficientGas");
        assertEq(uint256(board.getRequest(id).status), uint256(DcnJobBoard.Status.Open), "still open");
        assertEq(operatorBalance(), 0, "operator not paid");

        vm.prank(operator);
        board.deliverResult{gas: 600_000}(id, h.id, h.t, h.c);
        assertEq(greedy.got(), RESULT, "client got the result");
        assertEq(operatorBalance(), JOB_PAYMENT, "operator paid");
    }

    // ─── deliveries are checked against DcnDeals (K5, ECONOMICS B1) ───

    function test_a_delivery_is_checked_against_the_deal() public {
        uint256 id = request();
        H memory h = paidDeal();

        // Terms or a case other than the deal's: DcnDeals refuses them.
        DcnDeals.Terms memory t = copy(h.t);
        t.price = 0;
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id));
        board.deliverResult(id, h.id, t, h.c);
        DcnDeals.Case memory c = copy(h.c);
        c.resultHash = keccak256("horse");
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id));
        board.deliverResult(id, h.id, h.t, c);
        // Not a deal at all.
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, bytes32(uint256(7))));
        board.deliverResult(id, bytes32(uint256(7)), h.t, h.c);

        // A deal the operator did not buy.
        fund(other, FUNDS);
        DcnDeals.Deal memory d = newDeal();
        d.jobCreator = other;
        H memory theirs = createAndSubmit(d);
        vm.prank(other);
        deals.acceptResult(theirs.id, theirs.t, theirs.c);
        expectDeliverRevert(id, theirs, abi.encodeWithSelector(DcnJobBoard.NotOperatorsDeal.selector, theirs.id, other));

        // The operator's own deal, for another job.
        d = newDeal();
        d.jobHash = OTHER_JOB;
        H memory wrongJob = createAndSubmit(d);
        accept(wrongJob);
        expectDeliverRevert(id, wrongJob, abi.encodeWithSelector(DcnJobBoard.WrongJob.selector, id, JOB, OTHER_JOB));

        // The operator's deal whose provider was not paid (yet).
        H memory pending = createAndSubmit(newDeal());
        expectDeliverRevert(
            id, pending, abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, pending.id, DcnDeals.State.ResultSubmitted)
        );
        assertEq(operatorBalance(), 0, "nothing paid for any of these");

        // One deal delivers one request.
        deliver(id, h);
        uint256 next = request();
        expectDeliverRevert(next, h, abi.encodeWithSelector(DcnJobBoard.DealUsed.selector, h.id, id));
        assertEq(operatorBalance(), JOB_PAYMENT, "paid once");
    }

    function test_the_operator_as_provider_is_refused() public {
        // A board whose operator is the provider key: its self-deal (job creator and
        // provider alike) delivers nothing, nor may it be claimed.
        DcnJobBoard own = new DcnJobBoard(token, deals, provider, MIN_PAYMENT, MIN_TIMEOUT);
        token.approve(address(own), JOB_PAYMENT);
        uint256 id = own.requestJob("cowsay", new string[](0), JOB, JOB_PAYMENT, 1 hours);
        DcnDeals.Deal memory d = newDeal();
        d.jobCreator = provider;
        H memory h = create(d);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.OperatorIsProvider.selector, h.id));
        own.claim(id, h.id, h.t, h.c);
        submit(h);
        vm.prank(provider);
        deals.acceptResult(h.id, h.t, h.c);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.OperatorIsProvider.selector, h.id));
        own.deliverResult(id, h.id, h.t, h.c);
        assertEq(token.balanceOf(address(own)), JOB_PAYMENT, "the payment stays");
    }

    function test_a_request_is_delivered_only_by_a_deal_of_its_job() public {
        // The job hash is the request's commitment: a paid deal of another job is refused at
        // the claim and at the delivery, the right one is taken.
        uint256 id = request();
        DcnDeals.Deal memory d = newDeal();
        d.jobHash = OTHER_JOB;
        H memory wrong = create(d);
        expectClaimRevert(id, wrong, abi.encodeWithSelector(DcnJobBoard.WrongJob.selector, id, JOB, OTHER_JOB));
        submit(wrong);
        accept(wrong);
        expectDeliverRevert(id, wrong, abi.encodeWithSelector(DcnJobBoard.WrongJob.selector, id, JOB, OTHER_JOB));
        H memory right = create(newDeal());
        claim(id, right);
        submit(right);
        accept(right);
        deliver(id, right);
        assertEq(client.results(id), RESULT, "the requested job's result");
    }

    function test_claim_refusals() public {
        uint256 id = request();
        H memory h = create(newDeal());
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.NotOperator.selector, other));
        board.claim(id, h.id, h.t, h.c);
        DcnDeals.Terms memory t = copy(h.t);
        t.jobHash = OTHER_JOB; // claiming it is of the requested job does not make it so
        vm.prank(operator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id));
        board.claim(id, h.id, t, h.c);
        expectClaimRevert(9, h, abi.encodeWithSelector(DcnJobBoard.UnknownRequest.selector, 9));
        vm.expectEmit(true, true, false, true);
        emit DcnJobBoard.JobClaimed(id, h.id);
        claim(id, h);
        assertEq(board.requestOfDeal(h.id), id, "the deal serves this request");
        uint256 next = request();
        expectClaimRevert(next, h, abi.encodeWithSelector(DcnJobBoard.DealUsed.selector, h.id, id));
        uint64 dl = board.getRequest(next).deadline;
        vm.warp(dl + 1);
        H memory late = create(newDeal());
        expectClaimRevert(next, late, abi.encodeWithSelector(DcnJobBoard.DeadlinePassed.selector, next, dl));
    }

    function test_no_refund_while_the_claimed_deal_is_in_flight() public {
        uint256 id = request();
        uint64 dl = board.getRequest(id).deadline;
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 2 hours; // longer than the request gives
        H memory h = create(d);
        claim(id, h);

        vm.warp(dl + 1);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealInFlight.selector, id, h.id));
        board.refund(id);
        // Submitted, then audited: still in flight.
        submitAudited(h);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealInFlight.selector, id, h.id));
        board.refund(id);
        accept(h);
        assertState(h.id, DcnDeals.State.Audited);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DealInFlight.selector, id, h.id));
        board.refund(id);
        expectDeliverRevert(id, h, abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, h.id, DcnDeals.State.Audited));
        // The audit passes: the provider is paid and the operator delivers in the grace.
        draw(h);
        mediate(h, true);
        deliver(id, h);
        assertEq(operatorBalance(), JOB_PAYMENT, "the operator that bought the job is paid");
        assertEq(client.results(id), RESULT, "and the client has its result");
    }

    function test_a_claim_in_flight_cannot_be_swapped_and_a_failed_one_can() public {
        uint256 id = request();
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 10 minutes;
        H memory first = create(d);
        claim(id, first);
        H memory second = create(newDeal());
        expectClaimRevert(id, second, abi.encodeWithSelector(DcnJobBoard.DealInFlight.selector, id, first.id));
        vm.warp(block.timestamp + 10 minutes + 1);
        timeout(first);
        claim(id, second);
        assertEq(board.getRequest(id).dealId, second.id, "claimed with the new deal");

        // A dishonest verdict fails the deal too, also while it is appealed.
        submit(second);
        challengeAndDraw(second);
        mediate(second, false);
        appeal(second, provider);
        assertState(second.id, DcnDeals.State.Appealed);
        H memory third = create(newDeal());
        claim(id, third);
        assertEq(board.getRequest(id).dealId, third.id, "claimed again");
    }

    function test_a_failed_deal_lets_the_requester_refund_after_the_deadline() public {
        uint256 id = request();
        uint64 dl = board.getRequest(id).deadline;
        H memory h = create(newDeal());
        claim(id, h);
        vm.warp(dl + 1);
        timeout(h); // no result: the deal failed
        board.refund(id);
        assertEq(token.balanceOf(address(client)), 100 ether, "client refunded");
    }

    function test_a_settled_claim_not_delivered_is_refunded_after_the_grace() public {
        uint256 id = request();
        uint64 dl = board.getRequest(id).deadline;
        H memory h = paidDeal();
        claim(id, h);
        uint64 last = dl + board.DELIVERY_GRACE();
        vm.warp(last);
        vm.expectRevert(abi.encodeWithSelector(DcnJobBoard.DeadlineNotReached.selector, id, last));
        board.refund(id);
        vm.warp(last + 1);
        expectDeliverRevert(id, h, abi.encodeWithSelector(DcnJobBoard.DeadlinePassed.selector, id, last));
        board.refund(id);
        assertEq(token.balanceOf(address(client)), 100 ether, "client refunded");
    }

    function test_which_endings_deliver() public {
        uint256 id = request();
        // No result: not paid.
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 10 minutes;
        H memory failed = create(d);
        vm.warp(block.timestamp + 10 minutes + 1);
        timeout(failed);
        expectDeliverRevert(id, failed, abi.encodeWithSelector(DcnJobBoard.EmptyResultHash.selector));

        // Claimed with one deal, delivered with another: refused.
        H memory claimed = create(newDeal());
        claim(id, claimed);
        H memory another = paidDeal();
        expectDeliverRevert(id, another, abi.encodeWithSelector(DcnJobBoard.WrongDeal.selector, id, claimed.id, another.id));

        // The claimed deal is challenged and its mediator stays silent: the result stands,
        // the provider is paid, and that result delivers the request with the case the
        // events tell (the silent mediator excluded).
        submit(claimed);
        challengeAndDraw(claimed);
        pastDeadline(claimed);
        timeout(claimed);
        assertState(claimed.id, DcnDeals.State.TimedOutNoVerdict);
        assertEq(claimed.c.excluded, 1, "the silent one excluded");
        deliver(id, claimed);
        assertEq(operatorBalance(), JOB_PAYMENT, "paid for the result that stood");

        // An honest verdict under appeal delivers: the deal's money is settled.
        uint256 next = request();
        H memory h = mediated(true);
        appeal(h, jobCreator);
        deliver(next, h);
        assertEq(client.results(next), RESULT, "delivered while appealed");

        // A dishonest verdict does not, neither does one under appeal.
        uint256 third = request();
        H memory bad = mediated(false);
        expectDeliverRevert(third, bad, abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, bad.id, DcnDeals.State.MediatedDishonest));
        appeal(bad, provider);
        expectDeliverRevert(third, bad, abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, bad.id, DcnDeals.State.Appealed));
    }

    /// An honest verdict that the job creator's appeal overturns found the result wrong:
    /// the request is not delivered with it, and the operator may buy another deal.
    function test_an_honest_verdict_overturned_on_appeal_is_not_delivered() public {
        // Upheld, an honest verdict delivers.
        uint256 first = request();
        H memory upheld = mediated(true);
        appealToPool(upheld);
        ruleAppeal(upheld, true);
        deliver(first, upheld);
        assertEq(client.results(first), RESULT, "an upheld honest verdict delivers");
        // Overturned, it found the result wrong (and slashed the deal's mediator's bond).
        uint256 id = request();
        H memory h = mediated(true);
        appealToPool(h);
        ruleAppeal(h, false);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        expectDeliverRevert(id, h, abi.encodeWithSelector(DcnJobBoard.DealNotPaid.selector, h.id, DcnDeals.State.MediatedHonest));
    }

    function _word(bytes memory b, uint256 at) internal pure returns (uint256 w) {
        assembly {
            w := mload(add(add(b, 0x20), at))
        }
    }
}

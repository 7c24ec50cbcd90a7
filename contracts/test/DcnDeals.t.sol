// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DealsFixture} from "./utils/DealsFixture.sol";
import {DcnDeals} from "../src/DcnDeals.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {WalletProvider} from "./utils/WalletProvider.sol";

/// Every transition of the deal state machine and every way each one refuses.
contract DcnDealsTest is DealsFixture {
    bytes32 internal constant RESULT = keccak256("result");

    // ─── escrow ───

    function test_deposit_and_withdraw_free_balance() public {
        assertEq(free(jobCreator), FUNDS, "deposited");
        vm.prank(jobCreator);
        deals.withdraw(40 ether);
        assertEq(free(jobCreator), FUNDS - 40 ether, "free after withdraw");
        assertEq(token.balanceOf(jobCreator), 40 ether, "tokens back");
    }

    function test_skim_returns_stray_tokens_and_leaves_every_escrow_whole() public {
        // Deployed by this test contract: it is the owner.
        assertEq(deals.owner(), address(this), "deployer owns");
        bytes32 id = create(newDeal());
        uint256 jcFree = free(jobCreator);
        uint256 pvFree = free(provider);
        uint256 booked = deals.booked();
        assertEq(booked, 2 * FUNDS, "books hold what was deposited");

        // Tokens sent straight to the contract are nobody's escrow.
        token.transfer(other, 7 ether);
        vm.prank(other);
        token.transfer(address(deals), 7 ether);
        assertEq(free(other), 0, "a plain transfer credits no escrow");

        // Only the owner skims; a stranger cannot take the stray tokens.
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, other));
        deals.skim(other);

        address sink = address(0x51F7);
        assertEq(deals.skim(sink), 7 ether, "skims exactly the excess");
        assertEq(token.balanceOf(sink), 7 ether, "sent to the named address");
        assertEq(token.balanceOf(address(deals)), booked, "held == books again");
        assertEq(deals.booked(), booked, "books untouched");
        assertEq(free(jobCreator), jcFree, "job creator's free escrow untouched");
        assertEq(free(provider), pvFree, "provider's free escrow untouched");
        assertEq(locked(jobCreator), PRICE, "the open deal's lock untouched");

        // Nothing beyond the books: nothing to skim, not even a wei of escrow.
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NothingToSkim.selector, booked, booked));
        deals.skim(sink);

        // The deal still settles from the books.
        vm.prank(provider);
        deals.submitResult(id, keccak256("result"));
        vm.prank(jobCreator);
        deals.acceptResult(id);
        vm.prank(provider);
        deals.withdraw(FUNDS + PRICE);
        assertEq(deals.booked(), booked - FUNDS - PRICE, "withdraw leaves the books");
    }

    function test_withdraw_refuses_more_than_free() public {
        create(newDeal());
        vm.prank(jobCreator);
        vm.expectRevert(
            abi.encodeWithSelector(DcnDeals.InsufficientEscrow.selector, jobCreator, FUNDS, FUNDS - PRICE)
        );
        deals.withdraw(FUNDS);
    }

    function test_zero_amounts_refused() public {
        vm.prank(jobCreator);
        vm.expectRevert(DcnDeals.ZeroAmount.selector);
        deals.withdraw(0);
        vm.prank(jobCreator);
        vm.expectRevert(DcnDeals.ZeroAmount.selector);
        deals.deposit(0);
    }

    function test_deposit_with_permit() public {
        uint256 amount = 7 ether;
        token.transfer(other, amount);
        uint256 deadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                other,
                address(deals),
                amount,
                token.nonces(other),
                deadline
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(OTHER_KEY, digest);
        vm.prank(other);
        deals.depositWithPermit(amount, deadline, v, r, s);
        assertEq(free(other), amount, "permit deposit");
    }

    // ─── createDeal ───

    function test_create_locks_price_and_collateral() public {
        DcnDeals.Deal memory d = newDeal();
        bytes32 id = create(d);
        assertEq(id, deals.dealId(d), "id is the EIP-712 digest");
        assertState(id, DcnDeals.State.Created);
        assertEq(locked(jobCreator), PRICE, "price locked");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator free");
        assertEq(locked(provider), COLLATERAL, "collateral locked");
        DcnDeals.DealInfo memory info = deals.getDeal(id);
        assertEq(info.deadline, block.timestamp + RESULT_TIMEOUT, "result deadline");
        assertEq(info.mediator, address(0), "no mediator drawn before a challenge");
        assertEq(deals.mediatorsOf(id)[0], mediator1, "the deal's mediators");
        assertEq(info.price, PRICE, "price");
    }

    function test_create_emits_event() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.expectEmit(true, true, true, true);
        emit DcnDeals.DealCreated(
            deals.dealId(d), jobCreator, provider, solver, d.jobHash, PRICE, COLLATERAL, uint64(block.timestamp) + RESULT_TIMEOUT
        );
        vm.prank(jobCreator);
        deals.createDeal(d, sig);
    }

    function test_create_only_by_job_creator() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotJobCreator.selector, other));
        deals.createDeal(d, sig);
    }

    function test_create_refuses_signature_of_another_account() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, OTHER_KEY);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.BadSignature.selector, provider));
        deals.createDeal(d, sig);
    }

    function test_a_contract_provider_signs_by_erc1271_and_is_paid() public {
        WalletProvider wallet = new WalletProvider(provider); // its owner holds PROVIDER_KEY
        fund(address(wallet), FUNDS);
        DcnDeals.Deal memory d = newDeal();
        d.provider = address(wallet);

        // A key that is not the wallet's owner does not sign for it.
        bytes memory forged = sign(d, OTHER_KEY);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.BadSignature.selector, address(wallet)));
        deals.createDeal(d, forged);

        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(jobCreator);
        bytes32 id = deals.createDeal(d, sig);
        assertEq(locked(address(wallet)), COLLATERAL, "the wallet's collateral locked");
        vm.prank(address(wallet));
        deals.submitResult(id, RESULT);
        vm.prank(jobCreator);
        deals.acceptResult(id);
        assertEq(free(address(wallet)), FUNDS + PRICE, "the wallet is paid and gets its collateral back");
        assertEq(free(jobCreator), FUNDS - PRICE, "the job creator paid the price");
    }

    function test_create_refuses_signature_over_other_terms() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        d.price = PRICE - 1; // the job creator tampers with the price
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.BadSignature.selector, provider));
        deals.createDeal(d, sig);
    }

    function test_create_refuses_malformed_signature() public {
        DcnDeals.Deal memory d = newDeal();
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.BadSignature.selector, provider));
        deals.createDeal(d, hex"1234");
    }

    function test_create_refuses_reused_deal() public {
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 1; // settled within the signature's creation window
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(jobCreator);
        bytes32 id = deals.createDeal(d, sig);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DealExists.selector, id));
        deals.createDeal(d, sig);
        // Also once the first one is settled: a signature is good for one deal only.
        vm.warp(block.timestamp + 2);
        deals.timeout(id);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DealExists.selector, id));
        deals.createDeal(d, sig);
    }

    function test_create_refuses_short_job_creator_escrow() public {
        DcnDeals.Deal memory d = newDeal();
        d.price = FUNDS + 1;
        d.collateral = FUNDS;
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.InsufficientEscrow.selector, jobCreator, FUNDS + 1, FUNDS));
        deals.createDeal(d, sig);
    }

    function test_create_refuses_short_provider_escrow() public {
        DcnDeals.Deal memory d = newDeal();
        d.collateral = FUNDS + 1;
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.InsufficientEscrow.selector, provider, FUNDS + 1, FUNDS));
        deals.createDeal(d, sig);
    }

    function test_create_refuses_bad_mediator_lists() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = new address[](0);
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.NoMediators.selector));

        d = newDeal();
        d.mediators = new address[](17);
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.TooManyMediators.selector, 17));

        d = newDeal();
        d.mediators[0] = provider;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidMediator.selector, provider));

        d = newDeal();
        d.mediators[0] = jobCreator;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidMediator.selector, jobCreator));

        d = newDeal();
        d.mediators[0] = address(0);
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidMediator.selector, address(0)));

        // One mediator named twice would be drawn again after it was excluded for silence.
        d = newDeal();
        d.mediators = mediators2();
        d.mediators[1] = mediator1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidMediator.selector, mediator1));
    }

    function test_create_refuses_bad_terms() public {
        DcnDeals.Deal memory d = newDeal();
        d.price = uint256(type(uint96).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.AmountTooLarge.selector, d.price));

        d = newDeal();
        d.collateral = FEE - 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.CollateralBelowFee.selector, FEE - 1, FEE));

        d = newDeal();
        d.resultTimeout = 0;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 0));

        d = newDeal();
        d.judgeTimeout = uint64(type(uint32).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, d.judgeTimeout));

        d = newDeal();
        d.mediationTimeout = 0;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 0));
    }

    function _expectCreateRevert(DcnDeals.Deal memory d, bytes memory err) private {
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.prank(jobCreator);
        vm.expectRevert(err);
        deals.createDeal(d, sig);
    }

    // ─── submitResult ───

    function test_submit_result() public {
        bytes32 id = create(newDeal());
        vm.warp(block.timestamp + RESULT_TIMEOUT); // the last second still counts
        vm.prank(provider);
        deals.submitResult(id, RESULT);
        assertState(id, DcnDeals.State.ResultSubmitted);
        DcnDeals.DealInfo memory info = deals.getDeal(id);
        assertEq(info.resultHash, RESULT, "result hash stored");
        assertEq(info.deadline, block.timestamp + JUDGE_TIMEOUT, "judge deadline");
    }

    function test_submit_result_refusals() public {
        bytes32 id = create(newDeal());
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotProvider.selector, other));
        deals.submitResult(id, RESULT);

        vm.prank(provider);
        vm.expectRevert(DcnDeals.EmptyResultHash.selector);
        deals.submitResult(id, bytes32(0));

        vm.prank(provider);
        deals.submitResult(id, RESULT);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.ResultSubmitted));
        deals.submitResult(id, RESULT);
    }

    function test_submit_result_after_deadline_refused() public {
        bytes32 id = create(newDeal());
        uint64 deadline = uint64(block.timestamp + RESULT_TIMEOUT);
        vm.warp(deadline + 1);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, id, deadline));
        deals.submitResult(id, RESULT);
    }

    function test_unknown_deal_refused() public {
        bytes32 id = keccak256("nope");
        vm.prank(address(0));
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.None));
        deals.submitResult(id, RESULT);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.None));
        deals.timeout(id);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.None));
        deals.mediate(id, true);
    }

    // ─── acceptResult ───

    function test_accept_pays_provider() public {
        bytes32 id = createAndSubmit(newDeal());
        vm.prank(jobCreator);
        deals.acceptResult(id);
        assertState(id, DcnDeals.State.Accepted);
        assertEq(free(provider), FUNDS + PRICE, "provider paid, collateral back");
        assertEq(locked(provider), 0, "provider unlocked");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator paid");
        assertEq(locked(jobCreator), 0, "creator unlocked");
    }

    function test_accept_refusals() public {
        bytes32 id = create(newDeal());
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Created));
        deals.acceptResult(id);

        vm.prank(provider);
        deals.submitResult(id, RESULT);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotJobCreator.selector, provider));
        deals.acceptResult(id);

        vm.prank(jobCreator);
        deals.acceptResult(id);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Accepted));
        deals.acceptResult(id);
    }

    // ─── challenge ───

    function test_challenge_locks_fee_then_a_draw_names_the_mediator() public {
        bytes32 id = createAndSubmit(newDeal());
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealChallenged(id, jobCreator, FEE, uint64(block.number));
        vm.prank(jobCreator);
        deals.challenge(id);
        assertState(id, DcnDeals.State.Challenged);
        assertEq(locked(jobCreator), PRICE + FEE, "fee locked");
        assertEq(deals.getDeal(id).mediator, address(0), "nobody drawn in the challenge's block");
        vm.roll(block.number + 1);
        vm.warp(block.timestamp + 60);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorDrawn(id, mediator1, uint64(block.timestamp) + MEDIATION_TIMEOUT);
        vm.prank(other); // anyone may draw
        assertEq(deals.draw(id), mediator1, "the only mediator");
        assertEq(deals.getDeal(id).mediator, mediator1, "drawn mediator");
        assertEq(deals.getDeal(id).deadline, block.timestamp + MEDIATION_TIMEOUT, "the mediator's time runs from the draw");
    }

    // Storage slot of `_moreMediators` (`forge inspect DcnDeals storageLayout`). The test
    // checks the slot holds the list, so a layout change fails loudly.
    uint256 internal constant MORE_MEDIATORS_SLOT = 6;

    function moreMediatorsStored(bytes32 id) internal view returns (uint256) {
        return uint256(vm.load(address(deals), keccak256(abi.encode(id, MORE_MEDIATORS_SLOT))));
    }

    function test_challenge_draws_from_every_mediator() public {
        bool[2] memory seen;
        for (uint256 i = 0; i < 16 && !(seen[0] && seen[1]); i++) {
            DcnDeals.Deal memory d = newDeal();
            d.mediators = mediators2();
            bytes32 id = createAndSubmit(d);
            assertEq(deals.mediatorsOf(id).length, 2, "both listed");
            assertEq(deals.mediatorsOf(id)[1], mediator2, "in the deal's order");
            assertEq(moreMediatorsStored(id), 1, "the second mediator is stored");
            vm.prank(jobCreator);
            deals.challenge(id);
            vm.setBlockhash(block.number, keccak256(abi.encode("block", i)));
            vm.roll(block.number + 1);
            address m = deals.draw(id);
            assertTrue(m == mediator1 || m == mediator2, "drawn from the deal's list");
            seen[m == mediator1 ? 0 : 1] = true;
            // Only the drawn mediator rules.
            address notDrawn = m == mediator1 ? mediator2 : mediator1;
            vm.prank(notDrawn);
            vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, notDrawn, m));
            deals.mediate(id, false);
            vm.prank(m);
            deals.mediate(id, true);
        }
        assertTrue(seen[0] && seen[1], "both mediators get drawn");
    }

    function test_challenge_refusals() public {
        bytes32 id = create(newDeal());
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Created));
        deals.challenge(id);

        vm.prank(provider);
        deals.submitResult(id, RESULT);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotJobCreator.selector, other));
        deals.challenge(id);

        uint64 deadline = deals.getDeal(id).deadline;
        vm.warp(deadline + 1);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, id, deadline));
        deals.challenge(id);
    }

    function test_challenge_needs_free_escrow_for_fee() public {
        DcnDeals.Deal memory d = newDeal();
        d.price = FUNDS - FEE + 1;
        d.collateral = FEE;
        bytes32 id = createAndSubmit(d);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.InsufficientEscrow.selector, jobCreator, FEE, FEE - 1));
        deals.challenge(id);
    }

    // ─── mediate ───

    function _challenged() internal returns (bytes32 id) {
        id = createAndSubmit(newDeal());
        challengeAndDraw(id);
    }

    function test_mediate_honest() public {
        bytes32 id = _challenged();
        vm.prank(mediator1);
        deals.mediate(id, true);
        assertState(id, DcnDeals.State.MediatedHonest);
        assertEq(free(provider), FUNDS + PRICE, "provider paid");
        assertEq(free(mediator1), FEE, "mediator paid by the job creator");
        assertEq(free(jobCreator), FUNDS - PRICE - FEE, "creator pays price and fee");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing locked");
    }

    function test_mediate_dishonest() public {
        bytes32 id = _challenged();
        vm.prank(mediator1);
        deals.mediate(id, false);
        assertState(id, DcnDeals.State.MediatedDishonest);
        assertEq(free(mediator1), FEE, "mediator paid from the collateral");
        assertEq(free(jobCreator), FUNDS + COLLATERAL - FEE, "creator refunded, gets the rest of the collateral");
        assertEq(free(provider), FUNDS - COLLATERAL, "provider loses its collateral");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing locked");
    }

    function test_mediate_refusals() public {
        bytes32 id = createAndSubmit(newDeal());
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.ResultSubmitted));
        deals.mediate(id, true);

        vm.prank(jobCreator);
        deals.challenge(id);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, mediator1, address(0)));
        deals.mediate(id, true); // not drawn yet
        vm.roll(block.number + 1);
        deals.draw(id);
        vm.prank(mediator2);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, mediator2, mediator1));
        deals.mediate(id, true);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, jobCreator, mediator1));
        deals.mediate(id, false);

        uint64 deadline = deals.getDeal(id).deadline;
        vm.warp(deadline + 1);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, id, deadline));
        deals.mediate(id, true);
    }

    function test_mediator_not_drawn_refused() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        bytes32 id = createAndSubmit(d);
        address drawn = challengeAndDraw(id);
        address notDrawn = drawn == mediator1 ? mediator2 : mediator1;
        vm.prank(notDrawn);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, notDrawn, drawn));
        deals.mediate(id, false);
    }

    // ─── timeout ───

    function test_timeout_without_result_refunds_and_slashes() public {
        bytes32 id = create(newDeal());
        uint64 deadline = deals.getDeal(id).deadline;
        vm.warp(deadline);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlineNotReached.selector, id, deadline));
        deals.timeout(id);
        vm.warp(deadline + 1);
        vm.prank(other); // anyone may settle
        deals.timeout(id);
        assertState(id, DcnDeals.State.TimedOutNoResult);
        assertEq(free(jobCreator), FUNDS + COLLATERAL, "refund plus slashed collateral");
        assertEq(free(provider), FUNDS - COLLATERAL, "collateral slashed");
    }

    function test_timeout_without_judgement_pays_provider() public {
        bytes32 id = createAndSubmit(newDeal());
        uint64 deadline = deals.getDeal(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlineNotReached.selector, id, deadline));
        deals.timeout(id);
        vm.warp(deadline + 1);
        deals.timeout(id);
        assertState(id, DcnDeals.State.TimedOutAccepted);
        assertEq(free(provider), FUNDS + PRICE, "provider paid");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator paid");
    }

    function test_timeout_without_verdict_lets_the_result_stand() public {
        bytes32 id = _challenged();
        uint64 deadline = deals.getDeal(id).deadline;
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlineNotReached.selector, id, deadline));
        deals.timeout(id);
        vm.warp(deadline + 1);
        deals.timeout(id);
        assertState(id, DcnDeals.State.TimedOutNoVerdict);
        assertEq(free(provider), FUNDS + PRICE, "provider paid, collateral back");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator pays the price, gets its fee back");
        assertEq(free(mediator1), 0, "the silent mediator unpaid");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing locked");
    }

    function test_timeout_refused_in_final_states() public {
        bytes32 id = createAndSubmit(newDeal());
        vm.prank(jobCreator);
        deals.acceptResult(id);
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Accepted));
        deals.timeout(id);
    }

    // ─── fuzzed amounts and deadlines ───

    function testFuzz_every_path_pays_whom_the_rules_say(
        uint96 price,
        uint96 collateral,
        uint96 fee,
        uint8 path,
        bool honest
    ) public {
        price = uint96(bound(price, 0, FUNDS / 2));
        collateral = uint96(bound(collateral, 0, FUNDS / 2));
        fee = uint96(bound(fee, 0, collateral));
        DcnDeals.Deal memory d = newDeal();
        d.price = price;
        d.collateral = collateral;
        d.mediationFee = fee;
        uint256 before = free(jobCreator) + free(provider);
        (uint256 jc0, uint256 pv0, uint256 md0) = (free(jobCreator), free(provider), free(mediator1));
        bytes32 id = create(d);
        path = uint8(bound(path, 0, 4));
        if (path == 0) {
            vm.warp(block.timestamp + RESULT_TIMEOUT + 1);
            deals.timeout(id);
        } else {
            vm.prank(provider);
            deals.submitResult(id, RESULT);
            if (path == 1) {
                vm.prank(jobCreator);
                deals.acceptResult(id);
            } else if (path == 2) {
                vm.warp(block.timestamp + JUDGE_TIMEOUT + 1);
                deals.timeout(id);
            } else {
                challengeAndDraw(id);
                if (path == 3) {
                    vm.prank(mediator1);
                    deals.mediate(id, honest);
                } else {
                    vm.warp(block.timestamp + MEDIATION_TIMEOUT + 1);
                    deals.timeout(id);
                }
            }
        }
        assertTrue(uint256(state(id)) >= uint256(DcnDeals.State.Accepted), "final state");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing left locked");
        assertEq(free(jobCreator) + free(provider) + free(mediator1), before, "tokens conserved");
        // Who is paid, by the rules of each ending (conservation alone would let a mutant
        // pay the wrong party).
        int256 p = int256(uint256(price));
        int256 c = int256(uint256(collateral));
        int256 f = int256(uint256(fee));
        int256[3] memory want; // job creator, provider, mediator
        if (path == 0) want = [c, -c, int256(0)]; // no result: refund, collateral to the job creator
        else if (path <= 2) want = [-p, p, int256(0)]; // accepted, or not judged in time
        else if (path == 3 && honest) want = [-p - f, p, f];
        else if (path == 3) want = [c - f, -c, f]; // dishonest: slashed, the mediator paid from it
        else want = [-p, p, int256(0)]; // no verdict: the result stands, the fee goes back
        assertEq(int256(free(jobCreator)) - int256(jc0), want[0], "job creator's payoff");
        assertEq(int256(free(provider)) - int256(pv0), want[1], "provider's payoff");
        assertEq(int256(free(mediator1)) - int256(md0), want[2], "mediator's payoff");
    }

    function testFuzz_result_deadline_is_inclusive(uint64 resultTimeout, uint64 wait) public {
        resultTimeout = uint64(bound(resultTimeout, 1, type(uint32).max));
        wait = uint64(bound(wait, 0, uint256(resultTimeout) * 2));
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = resultTimeout;
        bytes32 id = create(d);
        uint64 deadline = uint64(block.timestamp) + resultTimeout;
        vm.warp(block.timestamp + wait);
        vm.prank(provider);
        if (wait <= resultTimeout) {
            deals.submitResult(id, RESULT);
            assertState(id, DcnDeals.State.ResultSubmitted);
        } else {
            vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, id, deadline));
            deals.submitResult(id, RESULT);
            deals.timeout(id);
            assertState(id, DcnDeals.State.TimedOutNoResult);
        }
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DealsFixture, H} from "./utils/DealsFixture.sol";
import {DcnDeals, IMediatorPool} from "../src/DcnDeals.sol";
import {DcnEscrow} from "../src/DcnEscrow.sol";
import {DcnRegistry} from "../src/DcnRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {WalletProvider} from "./utils/WalletProvider.sol";

/// Every transition of the deal state machine, and every way each one refuses.
contract DcnDealsTest is DealsFixture {
    // ─── escrow ───

    function test_deposit_and_withdraw_free_balance() public {
        assertEq(free(jobCreator), FUNDS, "deposited");
        vm.prank(jobCreator);
        deals.withdraw(40 ether);
        assertEq(free(jobCreator), FUNDS - 40 ether, "free after withdraw");
        assertEq(token.balanceOf(jobCreator), 40 ether, "tokens back");
    }

    function test_withdraw_refuses_more_than_free() public {
        create(newDeal());
        uint256 left = FUNDS - PRICE - AUDIT_FEE;
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, jobCreator, FUNDS, left));
        deals.withdraw(FUNDS);
    }

    function test_zero_amounts_refused() public {
        vm.startPrank(jobCreator);
        vm.expectRevert(DcnEscrow.ZeroAmount.selector);
        deals.withdraw(0);
        vm.expectRevert(DcnEscrow.ZeroAmount.selector);
        deals.deposit(0);
        vm.expectRevert(DcnEscrow.ZeroAmount.selector);
        deals.postBond(0);
        vm.stopPrank();
    }

    function test_deposit_with_permit() public {
        uint256 amount = 7 ether;
        token.transfer(other, amount);
        uint256 permitDeadline = block.timestamp + 1 hours;
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                other,
                address(deals),
                amount,
                token.nonces(other),
                permitDeadline
            )
        );
        bytes32 digest = keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(OTHER_KEY, digest);
        vm.prank(other);
        deals.depositWithPermit(amount, permitDeadline, v, r, s);
        assertEq(free(other), amount, "permit deposit");
    }

    function test_skim_returns_stray_tokens_and_leaves_every_escrow_whole() public {
        assertEq(deals.owner(), address(this), "deployer owns");
        H memory h = create(newDeal());
        uint256 jcFree = free(jobCreator);
        uint256 pvFree = free(provider);
        uint256 booked = deals.booked();
        assertEq(booked, 2 * FUNDS + 4 * BOND, "books hold what was deposited, bonds included");
        assertEq(token.balanceOf(address(deals)), booked, "held == books");

        token.transfer(other, 7 ether);
        vm.prank(other);
        token.transfer(address(deals), 7 ether);
        assertEq(free(other), 0, "a plain transfer credits no escrow");

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
        assertEq(locked(jobCreator), PRICE + AUDIT_FEE, "the open deal's lock untouched");
        assertEq(bondOf(mediator1), BOND, "bonds untouched");

        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.NothingToSkim.selector, booked, booked));
        deals.skim(sink);

        submit(h);
        accept(h);
        vm.prank(provider);
        deals.withdraw(FUNDS + PRICE);
        assertEq(deals.booked(), booked - FUNDS - PRICE, "withdraw leaves the books");
    }

    // ─── bonds ───

    function test_post_bond_moves_free_escrow_into_the_bond() public {
        fund(other, 50 ether);
        uint256 booked = deals.booked();
        vm.expectEmit(true, false, false, true);
        emit DcnEscrow.BondPosted(other, 20 ether, 20 ether);
        vm.prank(other);
        deals.postBond(20 ether);
        vm.prank(other);
        deals.postBond(5 ether);
        (uint256 amount, uint64 unbondAt) = deals.bondOf(other);
        assertEq(amount, 25 ether, "bond adds up");
        assertEq(unbondAt, 0, "staying");
        assertEq(free(other), 25 ether, "taken from free escrow");
        assertEq(deals.booked(), booked, "bonds stay in the books");
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, other, 26 ether, 25 ether));
        deals.postBond(26 ether);
    }

    function test_unbond_then_withdraw_after_the_delay_only() public {
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.NoBond.selector, other));
        deals.requestUnbond();
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.NotUnbonding.selector, mediator1));
        deals.withdrawBond();

        uint64 unbondAt = uint64(block.timestamp) + deals.UNBOND_DELAY();
        vm.expectEmit(true, false, false, true);
        emit DcnEscrow.UnbondRequested(mediator1, unbondAt);
        vm.prank(mediator1);
        deals.requestUnbond();
        (, uint64 at) = deals.bondOf(mediator1);
        assertEq(at, unbondAt, "leaves after the delay");
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.Unbonding.selector, mediator1, unbondAt));
        deals.requestUnbond();
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.Unbonding.selector, mediator1, unbondAt));
        deals.postBond(1);

        // A bond withdrawn before its delay: BondLocked, to the last second.
        vm.warp(unbondAt - 1);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.BondLocked.selector, mediator1, unbondAt));
        deals.withdrawBond();

        vm.warp(unbondAt);
        vm.prank(mediator1);
        assertEq(deals.withdrawBond(), BOND, "the whole bond");
        assertEq(free(mediator1), BOND, "back in free escrow");
        (uint256 amount, uint64 after_) = deals.bondOf(mediator1);
        assertEq(amount + after_, 0, "no bond left");
        // It may come back.
        vm.prank(mediator1);
        deals.postBond(MIN_BOND);
        assertEq(bondOf(mediator1), MIN_BOND, "bonded again");
    }

    function test_the_unbonding_delay_outlasts_a_draw_and_its_appeal() public view {
        // A ruling, the appeal window, an appeal's draw and its ruling: each at most 7 days.
        assertTrue(
            deals.UNBOND_DELAY() > 3 * deals.MAX_DISPUTE_TIMEOUT() + deals.MAX_DISPUTE_TIMEOUT(),
            "delay longer than every liability of a draw"
        );
    }

    function test_the_flags_and_limits_are_as_published() public view {
        // Read by the job board (FLAG_HONEST as 1) and by clients: fixed values.
        assertEq(deals.FLAG_HONEST(), 1, "FLAG_HONEST");
        assertEq(deals.FLAG_APPEAL_BY_JOB_CREATOR(), 2, "FLAG_APPEAL_BY_JOB_CREATOR");
        assertEq(deals.FLAG_APPEAL_DONE(), 4, "FLAG_APPEAL_DONE");
        assertEq(deals.FLAG_OVERTURNED(), 8, "FLAG_OVERTURNED");
        assertEq(deals.FLAG_AUDIT(), 16, "FLAG_AUDIT");
        assertEq(deals.PPM(), 1_000_000, "PPM");
        assertEq(deals.MAX_MEDIATORS(), 16, "MAX_MEDIATORS");
        assertEq(deals.MAX_DISPUTE_TIMEOUT(), 7 days, "MAX_DISPUTE_TIMEOUT");
        assertEq(deals.APPEAL_DRAWS(), 8, "APPEAL_DRAWS");
        assertEq(deals.UNBOND_DELAY(), 30 days, "UNBOND_DELAY");
        assertEq(address(deals.token()), address(token), "token");
    }

    // ─── the network's rules and its owner ───

    function test_params_are_the_constructors_and_checked() public {
        DcnDeals.Params memory p = params();
        _assertParams(deals.params(), p);

        p.minMediators = 0;
        _expectInvalid(p);
        p = params();
        p.minMediators = 17;
        _expectInvalid(p);
        p = params();
        p.minAuditPpm = PPM + 1;
        _expectInvalid(p);
        p = params();
        p.appealWindow = 0;
        _expectInvalid(p);
        p = params();
        p.appealWindow = 7 days + 1;
        _expectInvalid(p);
        p = params();
        p.minBond = 0;
        _expectInvalid(p);
        p = params();
        p.appealFee = 0;
        _expectInvalid(p);

        // The edges are allowed, and every field is the deployment's own.
        p = DcnDeals.Params({
            minMediators: 16,
            minAuditPpm: PPM,
            appealWindow: 7 days,
            minMediationFee: 0,
            silenceSlash: 0,
            minBond: 1,
            appealFee: 1
        });
        _assertParams(new DcnDeals(token, p).params(), p);
        p = DcnDeals.Params({
            minMediators: 1,
            minAuditPpm: 0,
            appealWindow: 1,
            minMediationFee: type(uint96).max,
            silenceSlash: type(uint88).max,
            minBond: type(uint96).max,
            appealFee: type(uint96).max
        });
        _assertParams(new DcnDeals(token, p).params(), p);
        _assertParams(deals.params(), params());
    }

    function _assertParams(DcnDeals.Params memory got, DcnDeals.Params memory p) private pure {
        assertEq(got.minMediators, p.minMediators, "minMediators");
        assertEq(got.minAuditPpm, p.minAuditPpm, "minAuditPpm");
        assertEq(got.appealWindow, p.appealWindow, "appealWindow");
        assertEq(got.minMediationFee, p.minMediationFee, "minMediationFee");
        assertEq(got.silenceSlash, p.silenceSlash, "silenceSlash");
        assertEq(got.minBond, p.minBond, "minBond");
        assertEq(got.appealFee, p.appealFee, "appealFee");
    }

    function _expectInvalid(DcnDeals.Params memory p) private {
        vm.expectRevert(DcnDeals.InvalidParams.selector);
        new DcnDeals(token, p);
    }

    function test_the_registry_is_set_once_by_the_owner() public {
        assertEq(address(deals.registry()), address(registry), "set by the fixture");
        vm.expectRevert(DcnDeals.RegistryAlreadySet.selector);
        deals.setRegistry(IMediatorPool(address(1)));
        DcnDeals fresh = new DcnDeals(token, params());
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, other));
        fresh.setRegistry(IMediatorPool(address(registry)));
        vm.expectEmit(false, false, false, true);
        emit DcnDeals.RegistrySet(address(registry));
        fresh.setRegistry(IMediatorPool(address(registry)));
    }

    function test_ownership_moves_in_two_steps() public {
        address next = address(0xA0A0);
        deals.transferOwnership(next);
        assertEq(deals.owner(), address(this), "still the owner until accepted");
        assertEq(deals.pendingOwner(), next, "pending");
        // The old owner keeps its rights meanwhile; a stranger cannot accept.
        token.transfer(address(deals), 1);
        assertEq(deals.skim(address(this)), 1, "the old owner skims meanwhile");
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, other));
        deals.acceptOwnership();
        vm.prank(next);
        deals.acceptOwnership();
        assertEq(deals.owner(), next, "accepted");
        assertEq(deals.pendingOwner(), address(0), "nobody pending");
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        deals.setRegistry(IMediatorPool(address(1)));
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        deals.skim(address(this));
        token.transfer(address(deals), 1);
        vm.prank(next);
        assertEq(deals.skim(next), 1, "the new owner skims");
    }

    // ─── createDeal ───

    function test_create_locks_price_audit_fee_and_collateral() public {
        DcnDeals.Deal memory d = newDeal();
        H memory h = create(d);
        assertEq(h.id, deals.dealId(d), "id is the EIP-712 digest");
        assertState(h.id, DcnDeals.State.Created);
        assertEq(locked(jobCreator), PRICE + AUDIT_FEE, "price and audit fee locked");
        assertEq(free(jobCreator), FUNDS - PRICE - AUDIT_FEE, "creator free");
        assertEq(locked(provider), COLLATERAL, "collateral locked");
        assertEq(deadline(h.id), block.timestamp + RESULT_TIMEOUT, "result deadline");
        assertEq(drawnIndex(h.id) + flags(h.id) + mark(h.id), 0, "nothing drawn, no flags");
        // The deal committed to its terms and an empty case.
        assertEq(uint256(deals.verify(h.id, h.t, h.c)), uint256(DcnDeals.State.Created), "verify");
        (,,,,, bytes19 commit) = deals.getDeal(h.id);
        assertEq(bytes32(commit), bytes32(bytes19(keccak256(abi.encode(h.id, h.t, h.c)))), "the commitment");
    }

    function test_terms_of_a_deal() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators3();
        DcnDeals.Terms memory t = deals.termsOf(d);
        assertEq(t.jobCreator, jobCreator, "jobCreator");
        assertEq(t.provider, provider, "provider");
        assertEq(t.price, PRICE, "price");
        assertEq(t.collateral, COLLATERAL, "collateral");
        assertEq(t.mediationFee, FEE, "fee");
        assertEq(t.auditFee, AUDIT_FEE, "audit fee");
        assertEq(t.auditPpm, AUDIT_PPM, "audit ppm");
        assertEq(t.judgeTimeout, JUDGE_TIMEOUT, "judge timeout");
        assertEq(t.mediationTimeout, MEDIATION_TIMEOUT, "mediation timeout");
        assertEq(t.mediators, keccak256(abi.encode(mediator1, mediator2, mediator3)), "mediators hash");
        assertEq(t.jobHash, JOB, "job hash");
    }

    function test_create_emits_event() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.expectEmit(true, true, true, true);
        emit DcnDeals.DealCreated(deals.dealId(d), jobCreator, provider);
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

    function test_create_refuses_bad_signatures() public {
        DcnDeals.Deal memory d = newDeal();
        _expectCreateRevert(d, sign(d, OTHER_KEY), abi.encodeWithSelector(DcnDeals.BadSignature.selector, provider));
        _expectCreateRevert(d, hex"1234", abi.encodeWithSelector(DcnDeals.BadSignature.selector, provider));
        bytes memory sig = sign(d, PROVIDER_KEY);
        d.price = PRICE - 1; // the job creator tampers with the price
        _expectCreateRevert(d, sig, abi.encodeWithSelector(DcnDeals.BadSignature.selector, provider));
    }

    function test_a_contract_provider_signs_by_erc1271_and_is_paid() public {
        WalletProvider wallet = new WalletProvider(provider); // its owner holds PROVIDER_KEY
        fund(address(wallet), FUNDS);
        DcnDeals.Deal memory d = newDeal();
        d.provider = address(wallet);
        _expectCreateRevert(
            d, sign(d, OTHER_KEY), abi.encodeWithSelector(DcnDeals.BadSignature.selector, address(wallet))
        );
        H memory h = create(d);
        assertEq(locked(address(wallet)), COLLATERAL, "the wallet's collateral locked");
        submit(h);
        accept(h);
        assertEq(free(address(wallet)), FUNDS + PRICE, "the wallet is paid and gets its collateral back");
        assertEq(free(jobCreator), FUNDS - PRICE, "the job creator paid the price, its audit fee back");
    }

    function test_create_refuses_reused_deal() public {
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = 1;
        H memory h = create(d);
        bytes memory sig = sign(d, PROVIDER_KEY);
        _expectCreateRevert(d, sig, abi.encodeWithSelector(DcnDeals.DealExists.selector, h.id));
        vm.warp(block.timestamp + 2);
        timeout(h);
        _expectCreateRevert(d, sig, abi.encodeWithSelector(DcnDeals.DealExists.selector, h.id));
    }

    function test_create_refuses_short_escrow() public {
        DcnDeals.Deal memory d = newDeal();
        d.price = FUNDS - AUDIT_FEE + 1;
        d.collateral = FUNDS;
        _expectCreateRevert(
            d,
            sign(d, PROVIDER_KEY),
            abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, jobCreator, FUNDS + 1, FUNDS)
        );
        d = newDeal();
        d.collateral = FUNDS + 1;
        _expectCreateRevert(
            d,
            sign(d, PROVIDER_KEY),
            abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, provider, FUNDS + 1, FUNDS)
        );
    }

    function test_create_refuses_bad_mediator_lists() public {
        DcnDeals.Deal memory d = newDeal();
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
        d.mediators = mediators3();
        d.mediators[2] = mediator1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidMediator.selector, mediator1));
    }

    function test_create_refuses_too_few_mediators() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = new address[](0);
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.TooFewMediators.selector, 0, 1));

        DcnDeals.Params memory p = params();
        p.minMediators = 3;
        redeploy(p);
        d = newDeal();
        d.mediators = mediators2();
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.TooFewMediators.selector, 2, 3));
        d = newDeal();
        d.mediators = mediators3();
        create(d);
    }

    function test_create_refuses_fees_below_the_floor() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediationFee = MIN_FEE - 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.FeeBelowFloor.selector, MIN_FEE - 1, MIN_FEE));
        d = newDeal();
        d.auditFee = MIN_FEE - 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.FeeBelowFloor.selector, MIN_FEE - 1, MIN_FEE));
        d = newDeal();
        d.mediationFee = MIN_FEE;
        d.auditFee = MIN_FEE;
        create(d);
    }

    function test_create_refuses_an_audit_chance_below_the_minimum() public {
        DcnDeals.Deal memory d = newDeal();
        d.auditPpm = MIN_AUDIT_PPM - 1;
        _expectCreateRevert(
            d, abi.encodeWithSelector(DcnDeals.AuditChanceTooLow.selector, MIN_AUDIT_PPM - 1, MIN_AUDIT_PPM)
        );
        d = newDeal();
        d.auditPpm = PPM + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.AuditChanceTooLow.selector, PPM + 1, MIN_AUDIT_PPM));
        d = newDeal();
        d.auditPpm = MIN_AUDIT_PPM;
        create(d);
        d = newDeal();
        d.auditPpm = PPM;
        create(d);
    }

    function test_create_refuses_bad_terms() public {
        DcnDeals.Deal memory d = newDeal();
        d.price = uint256(type(uint96).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.AmountTooLarge.selector, d.price));
        d = newDeal();
        d.collateral = uint256(type(uint96).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.AmountTooLarge.selector, d.collateral));
        d = newDeal();
        d.mediationFee = uint256(type(uint96).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.AmountTooLarge.selector, d.mediationFee));
        d = newDeal();
        d.auditFee = uint256(type(uint96).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.AmountTooLarge.selector, d.auditFee));

        // A dishonest verdict always pays its mediator out of the collateral.
        d = newDeal();
        d.collateral = FEE - 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.CollateralBelowFee.selector, FEE - 1, FEE));
        d = newDeal();
        d.collateral = AUDIT_FEE;
        d.mediationFee = AUDIT_FEE;
        d.auditFee = AUDIT_FEE + 1;
        _expectCreateRevert(
            d, abi.encodeWithSelector(DcnDeals.CollateralBelowFee.selector, AUDIT_FEE, AUDIT_FEE + 1)
        );

        d = newDeal();
        d.resultTimeout = 0;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 0));
        d = newDeal();
        d.resultTimeout = uint64(type(uint32).max) + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, d.resultTimeout));
        d = newDeal();
        d.judgeTimeout = 0;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 0));
        d = newDeal();
        d.judgeTimeout = 7 days + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 7 days + 1));
        d = newDeal();
        d.mediationTimeout = 0;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 0));
        d = newDeal();
        d.mediationTimeout = 7 days + 1;
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.InvalidTimeout.selector, 7 days + 1));

        // The edges pass.
        d = newDeal();
        d.resultTimeout = type(uint32).max;
        d.judgeTimeout = 7 days;
        d.mediationTimeout = 7 days;
        d.collateral = FEE;
        d.auditFee = FEE;
        create(d);
    }

    function _expectCreateRevert(DcnDeals.Deal memory d, bytes memory err) private {
        _expectCreateRevert(d, sign(d, PROVIDER_KEY), err);
    }

    function _expectCreateRevert(DcnDeals.Deal memory d, bytes memory sig, bytes memory err) private {
        vm.prank(d.jobCreator);
        vm.expectRevert(err);
        deals.createDeal(d, sig);
    }

    // ─── cancelDeal ───

    function test_cancel_only_by_the_provider_and_only_before_creation() public {
        DcnDeals.Deal memory d = newDeal();
        bytes32 id = deals.dealId(d);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotProvider.selector, jobCreator));
        deals.cancelDeal(d);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealCancelled(id, provider);
        vm.prank(provider);
        assertEq(deals.cancelDeal(d), id, "cancels the signed id");
        assertState(id, DcnDeals.State.Cancelled);
        _expectCreateRevert(d, abi.encodeWithSelector(DcnDeals.DealIsCancelled.selector, id));
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Cancelled));
        deals.cancelDeal(d);

        DcnDeals.Deal memory e = newDeal();
        H memory h = create(e);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Created));
        deals.cancelDeal(e);
    }

    // ─── submitResult ───

    function test_submit_result_records_its_block_and_the_judge_deadline() public {
        H memory h = create(newDeal());
        vm.warp(block.timestamp + RESULT_TIMEOUT); // the last second still counts
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.ResultSubmitted(h.id, RESULT, uint64(block.timestamp + JUDGE_TIMEOUT));
        vm.prank(provider);
        deals.submitResult(h.id, h.t, RESULT);
        assertState(h.id, DcnDeals.State.ResultSubmitted);
        assertEq(deadline(h.id), block.timestamp + JUDGE_TIMEOUT, "judge deadline");
        assertEq(mark(h.id), block.number, "the block that draws the audit");
        h.c.resultHash = RESULT;
        assertCommitted(h);
    }

    function test_submit_result_refusals() public {
        H memory h = create(newDeal());
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotProvider.selector, other));
        deals.submitResult(h.id, h.t, RESULT);

        vm.prank(provider);
        vm.expectRevert(DcnDeals.EmptyResultHash.selector);
        deals.submitResult(h.id, h.t, bytes32(0));

        // Terms other than the deal's: the price raised, or another provider named.
        DcnDeals.Terms memory forged = copy(h.t);
        forged.price = h.t.price + 1;
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id));
        deals.submitResult(h.id, forged, RESULT);
        forged = deals.termsOf(newDeal());
        forged.provider = other;
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id));
        deals.submitResult(h.id, forged, RESULT);

        bytes32 unknown = keccak256("nope");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, unknown, DcnDeals.State.None));
        deals.submitResult(unknown, h.t, RESULT);

        submit(h);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id));
        deals.submitResult(h.id, h.t, RESULT); // its case is no longer empty
    }

    function test_submit_result_after_deadline_refused() public {
        H memory h = create(newDeal());
        uint64 d = deadline(h.id);
        vm.warp(d + 1);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, d));
        deals.submitResult(h.id, h.t, RESULT);
        // Once the deal timed out, the refusal names its state (its commitment is still the
        // one submitResult checks).
        timeout(h);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.TimedOutNoResult));
        deals.submitResult(h.id, h.t, RESULT);
    }

    function test_wrong_terms_or_case_are_refused_by_every_call() public {
        H memory h = create(newDeal());
        submit(h);
        DcnDeals.Case memory wrongCase = copy(h.c);
        wrongCase.resultHash = keccak256("another result");
        DcnDeals.Terms memory wrongTerms = copy(h.t);
        wrongTerms.collateral = 0;
        bytes memory err = abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, h.id);

        vm.startPrank(jobCreator);
        vm.expectRevert(err);
        deals.acceptResult(h.id, h.t, wrongCase);
        vm.expectRevert(err);
        deals.acceptResult(h.id, wrongTerms, h.c);
        vm.expectRevert(err);
        deals.challenge(h.id, h.t, wrongCase);
        vm.expectRevert(err);
        deals.challenge(h.id, wrongTerms, h.c);
        vm.expectRevert(err);
        deals.timeout(h.id, wrongTerms, h.c, h.ms);
        vm.expectRevert(err);
        deals.draw(h.id, h.t, wrongCase, h.ms);
        vm.expectRevert(err);
        deals.mediate(h.id, wrongTerms, h.c, h.ms, true);
        vm.expectRevert(err);
        deals.appeal(h.id, h.t, wrongCase);
        vm.expectRevert(err);
        deals.drawAppeal(h.id, wrongTerms, h.c);
        vm.expectRevert(err);
        deals.ruleAppeal(h.id, h.t, wrongCase, true);
        vm.expectRevert(err);
        deals.verify(h.id, wrongTerms, h.c);
        vm.stopPrank();

        // Each field of the case counts.
        wrongCase = copy(h.c);
        wrongCase.excluded = 1;
        vm.expectRevert(err);
        deals.verify(h.id, h.t, wrongCase);
        wrongCase = copy(h.c);
        wrongCase.ruledBy = mediator1;
        vm.expectRevert(err);
        deals.verify(h.id, h.t, wrongCase);
        wrongCase = copy(h.c);
        wrongCase.appealMediator = poolMediator;
        vm.expectRevert(err);
        deals.verify(h.id, h.t, wrongCase);
        // And a deal that does not exist has no commitment.
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, bytes32(0)));
        deals.verify(bytes32(0), h.t, h.c);
        assertEq(uint256(deals.verify(h.id, h.t, h.c)), uint256(DcnDeals.State.ResultSubmitted), "the real one");
    }

    // ─── acceptResult ───

    function test_accept_pays_provider_and_returns_the_audit_fee() public {
        H memory h = createAndSubmit(newDeal());
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.ResultAccepted(h.id);
        assertEq(uint256(accept(h)), uint256(DcnDeals.State.Accepted), "returns Accepted");
        assertState(h.id, DcnDeals.State.Accepted);
        assertEq(free(provider), FUNDS + PRICE, "provider paid, collateral back");
        assertEq(locked(provider), 0, "provider unlocked");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator paid, audit fee back");
        assertEq(locked(jobCreator), 0, "creator unlocked");
    }

    function test_accept_refusals() public {
        H memory h = create(newDeal());
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Created));
        deals.acceptResult(h.id, h.t, h.c);

        vm.prank(provider);
        deals.submitResult(h.id, h.t, RESULT);
        h.c.resultHash = RESULT;
        // Not in the block of the result: its hash draws the audit.
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DrawNotReady.selector, h.id, uint64(block.number)));
        deals.acceptResult(h.id, h.t, h.c);
        steerAudit(h, false);
        vm.roll(block.number + 1);

        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotJobCreator.selector, provider));
        deals.acceptResult(h.id, h.t, h.c);

        accept(h);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Accepted));
        deals.acceptResult(h.id, h.t, h.c);
    }

    function test_accept_of_an_audited_result_starts_the_audit() public {
        H memory h = create(newDeal());
        submitAudited(h);
        assertTrue(deals.auditDrawn(h.id, mark(h.id), AUDIT_PPM), "the result's block draws an audit");
        uint256 jcFree = free(jobCreator);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DealAudited(h.id, RESULT, uint64(block.number));
        assertEq(uint256(accept(h)), uint256(DcnDeals.State.Audited), "returns Audited");
        assertState(h.id, DcnDeals.State.Audited);
        assertEq(flags(h.id), deals.FLAG_AUDIT(), "an audit");
        assertEq(mark(h.id), block.number, "its mediator is drawn from this block");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "to be drawn and rule in time");
        assertEq(locked(jobCreator), PRICE + AUDIT_FEE, "price and audit fee stay locked");
        assertEq(locked(provider), COLLATERAL, "collateral stays locked");
        assertEq(free(jobCreator), jcFree, "nothing moved");
        assertCommitted(h);
    }

    function test_a_result_accepted_after_its_block_hash_is_gone_is_audited() public {
        // Its block drew no audit, but nobody can tell once the hash is gone: audited.
        H memory h = createAndSubmit(newDeal());
        uint64 submitted = mark(h.id);
        vm.roll(submitted + 257);
        assertTrue(deals.auditDrawn(h.id, submitted, AUDIT_PPM), "a gone hash draws an audit");
        assertTrue(deals.auditDrawn(h.id, submitted, 0), "at any chance");
        uint256 jcFree = free(jobCreator);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DealAudited(h.id, RESULT, uint64(block.number));
        assertEq(uint256(accept(h)), uint256(DcnDeals.State.Audited), "audited, not drawn again");
        assertState(h.id, DcnDeals.State.Audited);
        assertEq(flags(h.id), deals.FLAG_AUDIT(), "an audit");
        assertEq(mark(h.id), block.number, "its mediator is drawn from this block");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "to be drawn and rule in time");
        assertEq(locked(jobCreator), PRICE + AUDIT_FEE, "price and audit fee stay locked");
        assertEq(locked(provider), COLLATERAL, "nothing paid yet");
        assertEq(free(jobCreator), jcFree, "nothing moved");
        assertCommitted(h);
        // No second roll: the result is judged once.
        vm.roll(block.number + 1);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Audited));
        deals.acceptResult(h.id, h.t, h.c);
        // The audit passes and pays the provider.
        assertEq(draw(h), mediator1, "drawn");
        mediate(h, true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertEq(free(provider), FUNDS + PRICE, "an honest provider loses only time");
    }

    function test_a_result_whose_block_drew_an_audit_cannot_wait_for_a_second_roll() public {
        // The provider saw its block draw an audit and lets more than 256 blocks pass
        // before anyone judges: the audit stands; `timeout` draws nothing anew.
        H memory h = create(newDeal());
        submitAudited(h);
        uint64 submitted = mark(h.id);
        vm.roll(submitted + 1000);
        pastDeadline(h);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DealAudited(h.id, RESULT, uint64(block.number));
        timeout(h);
        assertState(h.id, DcnDeals.State.Audited);
        assertEq(mark(h.id), block.number, "its mediator is drawn from this block");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "the audit's round");
        assertEq(locked(provider), COLLATERAL, "nothing paid");
        assertEq(locked(jobCreator), PRICE + AUDIT_FEE, "the audit fee stays locked");
        // Nor does a block that drew no audit help, by timeout either.
        H memory g = createAndSubmit(newDeal());
        vm.roll(mark(g.id) + 257);
        pastDeadline(g);
        timeout(g);
        assertState(g.id, DcnDeals.State.Audited);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, g.id, DcnDeals.State.Audited));
        deals.acceptResult(g.id, g.t, g.c);
    }

    function test_a_result_judged_256_blocks_after_its_block_is_drawn_from_its_hash() public {
        H memory h = createAndSubmit(newDeal());
        vm.roll(mark(h.id) + 256);
        assertTrue(!deals.auditDrawn(h.id, mark(h.id), AUDIT_PPM), "the hash still draws");
        assertEq(uint256(accept(h)), uint256(DcnDeals.State.Accepted), "256 blocks: no audit drawn");
        H memory g = create(newDeal());
        submitAudited(g);
        vm.roll(mark(g.id) + 256);
        assertEq(uint256(accept(g)), uint256(DcnDeals.State.Audited), "256 blocks: an audit drawn");
    }

    function test_audit_drawn_reads_the_result_blocks_hash() public {
        H memory h = create(newDeal());
        vm.prank(provider);
        deals.submitResult(h.id, h.t, RESULT);
        assertTrue(!deals.auditDrawn(h.id, mark(h.id), PPM), "unknown until the block is sealed");
        vm.roll(block.number + 1);
        bytes32 bh = auditHash(h.id, AUDIT_PPM, true);
        vm.setBlockhash(mark(h.id), bh);
        assertTrue(deals.auditDrawn(h.id, mark(h.id), AUDIT_PPM), "drawn at this chance");
        assertTrue(!deals.auditDrawn(h.id, mark(h.id), uint32(auditRoll(bh, h.id))), "the roll is the bound");
        assertTrue(deals.auditDrawn(h.id, mark(h.id), uint32(auditRoll(bh, h.id) + 1)), "one more is drawn");
        assertTrue(deals.auditDrawn(h.id, mark(h.id), PPM), "certain at PPM");
        assertTrue(!deals.auditDrawn(h.id, mark(h.id), 0), "never at 0");
    }

    // ─── challenge ───

    function test_challenge_locks_the_fee_returns_the_audit_fee_then_a_draw_names_the_mediator() public {
        H memory h = createAndSubmit(newDeal());
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DealChallenged(h.id, RESULT, uint64(block.number));
        challenge(h);
        assertState(h.id, DcnDeals.State.Challenged);
        assertEq(locked(jobCreator), PRICE + FEE, "mediation fee locked, audit fee back");
        assertEq(free(jobCreator), FUNDS - PRICE - FEE, "free");
        assertEq(drawnIndex(h.id), 0, "nobody drawn in the challenge's block");
        assertEq(mark(h.id), block.number, "drawn from this block");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "the round's deadline");

        vm.prank(other); // anyone may draw
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DrawNotReady.selector, h.id, uint64(block.number)));
        deals.draw(h.id, h.t, h.c, h.ms);
        vm.roll(block.number + 1);
        vm.warp(block.timestamp + 60);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorDrawn(h.id, mediator1, uint64(block.timestamp) + MEDIATION_TIMEOUT);
        vm.prank(other);
        assertEq(deals.draw(h.id, h.t, h.c, h.ms), mediator1, "the only mediator");
        assertEq(drawnIndex(h.id), 1, "drawn: index 0 + 1");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "the mediator's time runs from the draw");
        vm.warp(block.timestamp + 60);
        assertEq(deals.draw(h.id, h.t, h.c, h.ms), mediator1, "drawing again returns it");
        assertEq(deadline(h.id), block.timestamp - 60 + MEDIATION_TIMEOUT, "and does not move its deadline");
    }

    function test_challenge_refusals() public {
        H memory h = create(newDeal());
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Created));
        deals.challenge(h.id, h.t, h.c);
        submit(h);
        vm.prank(other);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotJobCreator.selector, other));
        deals.challenge(h.id, h.t, h.c);
        uint64 d = deadline(h.id);
        vm.warp(d + 1);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, d));
        deals.challenge(h.id, h.t, h.c);
        vm.warp(d); // the deadline itself is in time
        challenge(h);
        // An audit of a deal already challenged: the challenge is its dispute.
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Challenged));
        deals.acceptResult(h.id, h.t, h.c);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Challenged));
        deals.challenge(h.id, h.t, h.c);
    }

    function test_a_result_whose_block_drew_an_audit_can_still_be_challenged() public {
        H memory h = create(newDeal());
        submitAudited(h);
        challenge(h);
        assertState(h.id, DcnDeals.State.Challenged);
        assertEq(flags(h.id), 0, "a challenge, not an audit");
        assertEq(locked(jobCreator), PRICE + FEE, "the mediation fee, not the audit fee, is locked");
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Challenged));
        deals.acceptResult(h.id, h.t, h.c);
    }

    function test_challenge_needs_free_escrow_for_the_fee() public {
        DcnDeals.Deal memory d = newDeal();
        d.price = FUNDS - AUDIT_FEE;
        d.mediationFee = AUDIT_FEE + 1;
        d.collateral = AUDIT_FEE + 1;
        H memory h = createAndSubmit(d);
        vm.prank(jobCreator);
        vm.expectRevert(
            abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, jobCreator, AUDIT_FEE + 1, AUDIT_FEE)
        );
        deals.challenge(h.id, h.t, h.c);
    }

    // ─── draw ───

    function test_draw_refusals() public {
        H memory h = createAndSubmit(newDeal());
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.ResultSubmitted));
        deals.draw(h.id, h.t, h.c, h.ms);
        challenge(h);
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongMediators.selector, h.id));
        deals.draw(h.id, h.t, h.c, mediators2());
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongMediators.selector, h.id));
        deals.draw(h.id, h.t, h.c, new address[](0));
    }

    function test_draw_passes_over_unbonded_mediators_and_excludes_them() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators3();
        H memory h = createAndSubmit(d);
        vm.prank(mediator1);
        deals.requestUnbond(); // leaving: drawn no more
        vm.prank(mediator2);
        deals.requestUnbond();
        challenge(h);
        bytes32 bh = drawHash(h.id, 0, 3, 0); // the block draws mediator1 first
        vm.setBlockhash(mark(h.id), bh);
        // Then, with mediator1 excluded, the same block draws again among the others.
        uint16 expected = pickOf(bh, h.id, 1, 3) == 1 ? 3 : 1;
        assertEq(draw(h), mediator3, "the one bonded mediator");
        assertEq(drawnIndex(h.id), 3, "index 2 + 1");
        assertEq(h.c.excluded, expected, "the unbonded ones the draw met are excluded");
        assertCommitted(h);
        assertEq(bondOf(mediator1) + bondOf(mediator2), 2 * BOND, "passed over, not slashed");
    }

    function test_draw_with_no_bonded_mediator_left_draws_nobody_and_the_result_stands() public {
        H memory h = createAndSubmit(newDeal());
        vm.prank(mediator1);
        deals.requestUnbond();
        challenge(h);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorMissed(h.id, mediator1, 1);
        assertEq(draw(h), address(0), "nobody");
        assertEq(h.c.excluded, 1, "the unbonded one is excluded");
        assertEq(drawnIndex(h.id), 0, "none drawn");
        assertCommitted(h);
        assertEq(bondOf(mediator1), BOND, "skipping is not a slash");
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.TimedOutNoVerdict);
        assertEq(free(provider), FUNDS + PRICE, "provider paid");
        assertEq(free(jobCreator), FUNDS - PRICE, "fee back");
    }

    function test_a_draw_older_than_256_blocks_is_postponed() public {
        H memory h = createAndSubmit(newDeal());
        challenge(h);
        vm.roll(block.number + 257);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DrawPostponed(h.id, uint64(block.number));
        assertEq(deals.draw(h.id, h.t, h.c, h.ms), address(0), "postponed");
        assertEq(mark(h.id), block.number, "drawn from a block after the postponement");
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DrawNotReady.selector, h.id, uint64(block.number)));
        deals.draw(h.id, h.t, h.c, h.ms);
        assertEq(draw(h), mediator1, "drawn");
    }

    // ─── mediate ───

    function test_mediate_honest() public {
        H memory h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealMediated(h.id, mediator1, true, uint64(block.timestamp) + APPEAL_WINDOW);
        mediate(h, true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertEq(flags(h.id), deals.FLAG_HONEST(), "honest");
        assertEq(deadline(h.id), block.timestamp + APPEAL_WINDOW, "the appeal window");
        assertEq(drawnIndex(h.id), 0, "the round is over");
        assertEq(free(provider), FUNDS + PRICE, "provider paid");
        assertEq(free(mediator1), FEE, "mediator paid by the job creator");
        assertEq(free(jobCreator), FUNDS - PRICE - FEE, "creator pays price and fee");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing locked");
        assertCommitted(h); // the case names who ruled
    }

    function test_mediate_dishonest() public {
        H memory h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        mediate(h, false);
        assertState(h.id, DcnDeals.State.MediatedDishonest);
        assertEq(flags(h.id), 0, "not honest");
        assertEq(free(mediator1), FEE, "mediator paid from the collateral");
        assertEq(free(jobCreator), FUNDS + COLLATERAL - FEE, "creator refunded, gets the rest of the collateral");
        assertEq(free(provider), FUNDS - COLLATERAL, "provider loses its collateral");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing locked");
        assertCommitted(h);
    }

    function test_mediate_refusals() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        H memory h = createAndSubmit(d);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.ResultSubmitted));
        deals.mediate(h.id, h.t, h.c, h.ms, true);

        challenge(h);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, mediator1, address(0)));
        deals.mediate(h.id, h.t, h.c, h.ms, true); // not drawn yet
        steerDraw(h, 1);
        assertEq(draw(h), mediator2, "steered");
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, mediator1, mediator2));
        deals.mediate(h.id, h.t, h.c, h.ms, true);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, jobCreator, mediator2));
        deals.mediate(h.id, h.t, h.c, h.ms, false);
        vm.prank(mediator2);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongMediators.selector, h.id));
        deals.mediate(h.id, h.t, h.c, mediators1(), true);

        uint64 dl = deadline(h.id);
        vm.warp(dl + 1);
        vm.prank(mediator2);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, dl));
        deals.mediate(h.id, h.t, h.c, h.ms, true);
        vm.warp(dl);
        mediate(h, true);
        vm.prank(mediator2);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.MediatedHonest));
        deals.mediate(h.id, h.t, h.c, h.ms, true);
    }

    // ─── appeal ───

    function test_appeal_locks_the_fee_and_starts_a_draw_from_the_pool() public {
        H memory h = mediated(true);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealAppealed(h.id, jobCreator, uint64(block.number));
        appeal(h, jobCreator); // an honest verdict: the job creator lost
        assertState(h.id, DcnDeals.State.Appealed);
        assertEq(locked(jobCreator), APPEAL_FEE, "the appeal fee locked");
        assertEq(
            flags(h.id), deals.FLAG_HONEST() | deals.FLAG_APPEAL_BY_JOB_CREATOR(), "by the job creator, of honest"
        );
        assertEq(mark(h.id), block.number, "drawn from this block");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "to be drawn in time");

        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DrawNotReady.selector, h.id, uint64(block.number)));
        deals.drawAppeal(h.id, h.t, h.c);
        steerAppeal(h, poolIndex(poolMediator), 0);
        vm.roll(block.number + 1);
        vm.warp(block.timestamp + 60);
        DcnDeals.Case memory next = copy(h.c);
        next.appealMediator = poolMediator;
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.AppealDrawn(h.id, poolMediator, uint64(block.timestamp) + MEDIATION_TIMEOUT, next);
        vm.prank(other); // anyone draws
        assertEq(deals.drawAppeal(h.id, h.t, h.c), poolMediator, "from the approved pool");
        h.c.appealMediator = poolMediator;
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "its time runs from the draw");
        assertCommitted(h);
        assertEq(drawAppeal(h), poolMediator, "drawing again returns it");
    }

    function test_appeal_refusals() public {
        H memory h = createAndSubmit(newDeal());
        accept(h);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Accepted));
        deals.appeal(h.id, h.t, h.c);

        h = mediated(false);
        // Only the loser: the provider of a dishonest verdict.
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotLoser.selector, jobCreator));
        deals.appeal(h.id, h.t, h.c);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotLoser.selector, mediator1));
        deals.appeal(h.id, h.t, h.c);

        // An appeal after its window.
        uint64 dl = deadline(h.id);
        vm.warp(dl + 1);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, dl));
        deals.appeal(h.id, h.t, h.c);
        vm.warp(dl); // its last second is in time
        appeal(h, provider);

        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.Appealed));
        deals.appeal(h.id, h.t, h.c);
    }

    function test_a_second_appeal_is_refused() public {
        H memory h = mediated(false);
        appealToPool(h);
        ruleAppeal(h, false); // upheld
        assertState(h.id, DcnDeals.State.MediatedDishonest);
        assertEq(flags(h.id) & deals.FLAG_APPEAL_DONE(), deals.FLAG_APPEAL_DONE(), "decided");
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.AlreadyAppealed.selector, h.id));
        deals.appeal(h.id, h.t, h.c);

        // Also after a lapsed appeal, and also for the other party.
        H memory g = mediated(true);
        appeal(g, jobCreator);
        pastDeadline(g);
        timeout(g);
        assertState(g.id, DcnDeals.State.MediatedHonest);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.AlreadyAppealed.selector, g.id));
        deals.appeal(g.id, g.t, g.c);
    }

    function test_an_appeal_needs_free_escrow_for_its_fee() public {
        H memory h = mediated(true);
        uint256 left = free(jobCreator);
        vm.prank(jobCreator);
        deals.withdraw(left - (APPEAL_FEE - 1));
        vm.prank(jobCreator);
        vm.expectRevert(
            abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, jobCreator, APPEAL_FEE, APPEAL_FEE - 1)
        );
        deals.appeal(h.id, h.t, h.c);
    }

    function test_draw_appeal_refusals() public {
        H memory h = mediated(true);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.MediatedHonest));
        deals.drawAppeal(h.id, h.t, h.c);
        appeal(h, jobCreator);
        // Not after the appeal's deadline: the appeal lapses instead.
        uint64 dl = deadline(h.id);
        vm.roll(block.number + 1);
        vm.warp(dl + 1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, dl));
        deals.drawAppeal(h.id, h.t, h.c);
        vm.warp(dl);
        steerAppeal(h, poolIndex(poolMediator), 0);
        assertEq(drawAppeal(h), poolMediator, "at the deadline still drawn");
    }

    function test_an_appeal_draw_older_than_256_blocks_is_postponed() public {
        H memory h = mediated(true);
        appeal(h, jobCreator);
        vm.roll(block.number + 257);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DrawPostponed(h.id, uint64(block.number));
        assertEq(deals.drawAppeal(h.id, h.t, h.c), address(0), "postponed");
        assertEq(mark(h.id), block.number, "moved to this block");
        steerAppeal(h, poolIndex(poolMediator), 0);
        assertEq(drawAppeal(h), poolMediator, "drawn from the new block");
    }

    function test_rule_appeal_refusals() public {
        H memory h = mediated(true);
        vm.prank(poolMediator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.MediatedHonest));
        deals.ruleAppeal(h.id, h.t, h.c, true);
        appeal(h, jobCreator);
        vm.prank(poolMediator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, poolMediator, address(0)));
        deals.ruleAppeal(h.id, h.t, h.c, true); // not drawn yet
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, address(0), address(0)));
        vm.prank(address(0));
        deals.ruleAppeal(h.id, h.t, h.c, true);
        steerAppeal(h, poolIndex(poolMediator), 0);
        drawAppeal(h);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, mediator1, poolMediator));
        deals.ruleAppeal(h.id, h.t, h.c, true);
        uint64 dl = deadline(h.id);
        vm.warp(dl + 1);
        vm.prank(poolMediator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, dl));
        deals.ruleAppeal(h.id, h.t, h.c, true);
        vm.warp(dl);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.AppealDecided(h.id, poolMediator, false);
        ruleAppeal(h, true);
    }

    // ─── timeout ───

    function test_timeout_without_result_refunds_and_slashes() public {
        H memory h = create(newDeal());
        uint64 dl = deadline(h.id);
        vm.warp(dl);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlineNotReached.selector, h.id, dl));
        deals.timeout(h.id, h.t, h.c, h.ms);
        vm.warp(dl + 1);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealTimedOut(h.id, DcnDeals.State.Created, DcnDeals.State.TimedOutNoResult);
        vm.prank(other); // anyone may settle
        deals.timeout(h.id, h.t, h.c, h.ms);
        assertState(h.id, DcnDeals.State.TimedOutNoResult);
        assertEq(free(jobCreator), FUNDS + COLLATERAL, "refund, audit fee back, plus the slashed collateral");
        assertEq(free(provider), FUNDS - COLLATERAL, "collateral slashed");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing locked");
    }

    function test_timeout_without_judgement_pays_provider() public {
        H memory h = createAndSubmit(newDeal());
        uint64 dl = deadline(h.id);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlineNotReached.selector, h.id, dl));
        deals.timeout(h.id, h.t, h.c, h.ms);
        vm.warp(dl + 1);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealTimedOut(h.id, DcnDeals.State.ResultSubmitted, DcnDeals.State.TimedOutAccepted);
        timeout(h);
        assertState(h.id, DcnDeals.State.TimedOutAccepted);
        assertEq(free(provider), FUNDS + PRICE, "provider paid");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator paid, audit fee back");
    }

    function test_timeout_of_an_unjudged_result_whose_block_drew_an_audit_starts_it() public {
        H memory h = create(newDeal());
        submitAudited(h);
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.Audited);
        assertEq(locked(provider), COLLATERAL, "nothing paid yet");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "the audit's round");
    }

    function test_timeout_of_a_silent_mediator_excludes_it_and_starts_a_new_round() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        H memory h = createAndSubmit(d);
        challenge(h);
        steerDraw(h, 0);
        assertEq(draw(h), mediator1, "steered");
        pastDeadline(h);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorMissed(h.id, mediator1, 1);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DealChallenged(h.id, RESULT, uint64(block.number));
        timeout(h);
        assertState(h.id, DcnDeals.State.Challenged);
        assertEq(h.c.excluded, 1, "excluded");
        assertCommitted(h);
        assertEq(drawnIndex(h.id), 0, "a new round, nobody drawn");
        assertEq(mark(h.id), block.number, "drawn from this block");
        assertEq(deadline(h.id), block.timestamp + MEDIATION_TIMEOUT, "the new round's deadline");
        assertEq(locked(jobCreator), PRICE + FEE, "the fee stays locked for the next mediator");
        assertEq(draw(h), mediator2, "the other one");
    }

    function test_timeout_refusals() public {
        H memory h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        uint64 dl = deadline(h.id);
        pastDeadline(h);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongMediators.selector, h.id));
        deals.timeout(h.id, h.t, h.c, mediators2());
        vm.warp(dl);
        mediate(h, true);
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, h.id, DcnDeals.State.MediatedHonest));
        deals.timeout(h.id, h.t, h.c, h.ms);

        H memory g = createAndSubmit(newDeal());
        accept(g);
        vm.warp(block.timestamp + 365 days);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, g.id, DcnDeals.State.Accepted));
        deals.timeout(g.id, g.t, g.c, g.ms);
        bytes32 unknown = keccak256("nope");
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, unknown, DcnDeals.State.None));
        deals.timeout(unknown, g.t, g.c, g.ms);
    }

    function test_timeout_of_an_appeal_nobody_drew_returns_the_fee() public {
        H memory h = mediated(false);
        appeal(h, provider);
        uint64 dl = deadline(h.id);
        vm.warp(dl);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlineNotReached.selector, h.id, dl));
        deals.timeout(h.id, h.t, h.c, h.ms);
        vm.warp(dl + 1);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.AppealLapsed(h.id, address(0));
        timeout(h);
        assertState(h.id, DcnDeals.State.MediatedDishonest);
        assertEq(locked(provider), 0, "the fee back");
        assertEq(flags(h.id), deals.FLAG_APPEAL_DONE(), "decided, not overturned, by the provider");
    }

    // ─── fuzzed deadlines ───

    function testFuzz_result_deadline_is_inclusive(uint64 resultTimeout, uint64 wait) public {
        resultTimeout = uint64(bound(resultTimeout, 1, type(uint32).max));
        wait = uint64(bound(wait, 0, uint256(resultTimeout) * 2));
        DcnDeals.Deal memory d = newDeal();
        d.resultTimeout = resultTimeout;
        H memory h = create(d);
        uint64 dl = uint64(block.timestamp) + resultTimeout;
        vm.warp(block.timestamp + wait);
        vm.prank(provider);
        if (wait <= resultTimeout) {
            deals.submitResult(h.id, h.t, RESULT);
            assertState(h.id, DcnDeals.State.ResultSubmitted);
        } else {
            vm.expectRevert(abi.encodeWithSelector(DcnDeals.DeadlinePassed.selector, h.id, dl));
            deals.submitResult(h.id, h.t, RESULT);
            timeout(h);
            assertState(h.id, DcnDeals.State.TimedOutNoResult);
        }
    }
}

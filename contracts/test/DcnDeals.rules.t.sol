// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DcnDeals} from "../src/DcnDeals.sol";
import {DealsFixture} from "./utils/DealsFixture.sol";

/// @notice A job creator that is a contract and tries to pick its mediator: it challenges
///         only in a block where everything it can see predicts its accomplice.
contract SteeringJobCreator {
    DcnDeals internal immutable deals;

    constructor(DcnDeals deals_) {
        deals = deals_;
    }

    function fund(uint256 amount) external {
        deals.token().approve(address(deals), amount);
        deals.deposit(amount);
    }

    function create(DcnDeals.Deal calldata deal, bytes calldata sig) external returns (bytes32) {
        return deals.createDeal(deal, sig);
    }

    function submitted(bytes32 id) external view returns (bool) {
        return deals.getDeal(id).state == DcnDeals.State.ResultSubmitted;
    }

    /// Predicts the draw of a challenge sent now for a deal naming two mediators, with the
    /// old rule (this block's randomness and time) or with the newest block hash it can see.
    function predict(bytes32 id, uint256 mode) public view returns (uint256) {
        if (mode == 0) return uint256(keccak256(abi.encode(block.prevrandao, block.timestamp, id))) % 2;
        return uint256(keccak256(abi.encode(blockhash(block.number - 1), id, uint16(0)))) % 2;
    }

    /// Challenges only if the prediction is the accomplice (mediator index `accomplice`).
    function maybeChallenge(bytes32 id, uint256 accomplice, uint256 mode) external returns (bool) {
        if (predict(id, mode) != accomplice) return false;
        deals.challenge(id);
        return true;
    }
}

/// @notice The rules that keep strangers honest: signed deals expire and can be cancelled
///         (K1), nobody picks the mediator (K2), and a silent mediator does not void a
///         correct result (K3).
contract DcnDealsRulesTest is DealsFixture {
    bytes32 internal constant RESULT = keccak256("result");

    // ─── K1: a signature expires and can be withdrawn ───

    function test_a_deal_created_after_its_deadline_reverts() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.warp(d.createDeadline + 1);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DealExpired.selector, d.createDeadline));
        deals.createDeal(d, sig);
        assertEq(locked(provider), 0, "no collateral locked");

        // The deadline itself is still in time.
        DcnDeals.Deal memory e = newDeal();
        bytes memory sigE = sign(e, PROVIDER_KEY);
        vm.warp(e.createDeadline);
        vm.prank(jobCreator);
        bytes32 id = deals.createDeal(e, sigE);
        assertState(id, DcnDeals.State.Created);
    }

    function test_a_cancelled_deal_cannot_be_created() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        bytes32 id = deals.dealId(d);

        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotProvider.selector, jobCreator));
        deals.cancelDeal(d);

        vm.expectEmit(true, true, false, true);
        emit DcnDeals.DealCancelled(id, provider);
        vm.prank(provider);
        assertEq(deals.cancelDeal(d), id, "cancels the signed id");
        assertState(id, DcnDeals.State.Cancelled);

        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DealIsCancelled.selector, id));
        deals.createDeal(d, sig);
        assertEq(locked(provider) + locked(jobCreator), 0, "nothing locked");

        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Cancelled));
        deals.cancelDeal(d);
    }

    function test_a_created_deal_cannot_be_cancelled() public {
        DcnDeals.Deal memory d = newDeal();
        bytes32 id = create(d);
        vm.prank(provider);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.Created));
        deals.cancelDeal(d);
    }

    function test_held_signatures_lock_no_more_than_the_providers_free_escrow() public {
        // The provider signed five deals of 300 collateral each with 1,000 in escrow: the
        // job creator holding all five can create three, and the fourth reverts.
        DcnDeals.Deal[5] memory held;
        bytes[5] memory sigs;
        for (uint256 i = 0; i < 5; i++) {
            held[i] = newDeal();
            held[i].collateral = 300 ether;
            held[i].mediationFee = 1 ether;
            held[i].price = 1 ether;
            sigs[i] = sign(held[i], PROVIDER_KEY);
        }
        for (uint256 i = 0; i < 3; i++) {
            vm.prank(jobCreator);
            deals.createDeal(held[i], sigs[i]);
        }
        vm.prank(jobCreator);
        vm.expectRevert(
            abi.encodeWithSelector(DcnDeals.InsufficientEscrow.selector, provider, 300 ether, FUNDS - 900 ether)
        );
        deals.createDeal(held[3], sigs[3]);
        assertEq(locked(provider), 900 ether, "three collaterals locked, no more");
    }

    /// The id the provider signs covers every term, the creation deadline included: computed
    /// here by hand from the EIP-712 rules, not with the contract's own function.
    function test_the_deal_id_is_the_eip712_digest_of_every_term() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        bytes32 typeHash = keccak256(
            "Deal(address jobCreator,address provider,address solver,address[] mediators,uint256 price,uint256 collateral,uint256 mediationFee,uint64 resultTimeout,uint64 judgeTimeout,uint64 mediationTimeout,uint64 createDeadline,bytes32 jobHash,uint256 nonce)"
        );
        bytes memory head = abi.encode(
            typeHash, d.jobCreator, d.provider, d.solver, keccak256(abi.encodePacked(d.mediators)), d.price, d.collateral
        );
        bytes memory tail = abi.encode(
            d.mediationFee, d.resultTimeout, d.judgeTimeout, d.mediationTimeout, d.createDeadline, d.jobHash, d.nonce
        );
        bytes32 domain = keccak256(
            abi.encode(
                keccak256("EIP712Domain(string name,string version,uint256 chainId,address verifyingContract)"),
                keccak256("DcnDeals"),
                keccak256("1"),
                block.chainid,
                address(deals)
            )
        );
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domain, keccak256(bytes.concat(head, tail))));
        assertEq(deals.dealId(d), digest, "dealId is the EIP-712 digest");
        assertEq(deals.DEAL_TYPEHASH(), typeHash, "type hash");
    }

    // ─── K2: nobody picks the mediator ───

    function _challengedTwo() internal returns (bytes32 id) {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        id = createAndSubmit(d);
        vm.prank(jobCreator);
        deals.challenge(id);
    }

    function test_the_draw_waits_for_the_next_block() public {
        bytes32 id = _challengedTwo();
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DrawNotReady.selector, id, uint64(block.number)));
        deals.draw(id);
        vm.roll(block.number + 1);
        address m = deals.draw(id);
        assertTrue(m == mediator1 || m == mediator2, "drawn");
        vm.roll(block.number + 5);
        assertEq(deals.draw(id), m, "a second draw returns the same mediator");
    }

    function test_a_draw_older_than_256_blocks_is_postponed_to_a_new_block() public {
        bytes32 id = _challengedTwo();
        vm.roll(block.number + 257);
        vm.expectEmit(true, false, false, true);
        emit DcnDeals.DrawPostponed(id, uint64(block.number));
        assertEq(deals.draw(id), address(0), "postponed");
        (, uint64 drawBlock) = deals.excludedMediatorsOf(id);
        assertEq(uint256(drawBlock), block.number, "drawn from a block after the postponement");
        vm.roll(block.number + 1);
        address m = deals.draw(id);
        assertTrue(m == mediator1 || m == mediator2, "drawn");
    }

    function test_only_a_challenged_deal_is_drawn() public {
        bytes32 id = createAndSubmit(newDeal());
        vm.roll(block.number + 1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongState.selector, id, DcnDeals.State.ResultSubmitted));
        deals.draw(id);
    }

    /// A job creator that sees every block's randomness, time and parent hash challenges
    /// only when they predict its accomplice. Under the old rule (randomness and time of the
    /// challenge's block) that won every time; drawn from the hash of the challenge's own
    /// block it wins about half the time, as chance would.
    function test_a_job_creator_steering_the_draw_does_no_better_than_chance() public {
        for (uint256 mode = 0; mode < 2; mode++) {
            SteeringJobCreator steerer = new SteeringJobCreator(deals);
            token.transfer(address(steerer), FUNDS);
            steerer.fund(FUNDS);
            address accomplice = mediator2;
            uint256 challenges;
            uint256 accompliceDrawn;
            uint256 entropy;
            for (uint256 k = 0; k < 64; k++) {
                DcnDeals.Deal memory d = newDeal();
                d.jobCreator = address(steerer);
                d.mediators = mediators2();
                d.price = 1 ether;
                d.collateral = 2 ether;
                d.mediationFee = 1 ether;
                bytes32 id = steerer.create(d, sign(d, PROVIDER_KEY));
                vm.prank(provider);
                deals.submitResult(id, RESULT);
                // Block after block, the job creator looks for a favourable one.
                for (uint256 b = 0; b < 16; b++) {
                    vm.roll(block.number + 1);
                    vm.warp(block.timestamp + 12);
                    vm.prevrandao(uint256(keccak256(abi.encode("randao", mode, k, b))));
                    vm.setBlockhash(block.number - 1, keccak256(abi.encode("parent", mode, k, b, entropy++)));
                    if (steerer.maybeChallenge(id, 1, mode)) {
                        challenges++;
                        // The chain seals the block after its transactions: its hash is
                        // known only from the next block on.
                        vm.setBlockhash(block.number, keccak256(abi.encode("sealed", mode, k, b, entropy++)));
                        vm.roll(block.number + 1);
                        if (deals.draw(id) == accomplice) accompliceDrawn++;
                        break;
                    }
                }
            }
            assertTrue(challenges >= 56, "the job creator found a block it liked for nearly every deal");
            // Binomial(challenges, 1/2): 3/4 is over four standard deviations above chance.
            assertTrue(accompliceDrawn * 4 <= challenges * 3, "the accomplice is drawn no more than chance");
            assertTrue(accompliceDrawn * 4 >= challenges, "and no less: the draw is not skewed");
        }
    }

    // ─── K3: a silent mediator does not void a correct result ───

    function test_a_silent_mediator_is_replaced_by_another() public {
        bytes32 id = _challengedTwo();
        vm.roll(block.number + 1);
        address first = deals.draw(id);
        address second = first == mediator1 ? mediator2 : mediator1;
        vm.warp(deals.getDeal(id).deadline + 1);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorMissed(id, first, 1);
        deals.timeout(id);
        assertState(id, DcnDeals.State.Challenged);
        assertEq(deals.getDeal(id).mediator, address(0), "a new round, not drawn yet");
        assertEq(locked(jobCreator), PRICE + FEE, "the fee stays locked for the next mediator");

        (uint16 excluded,) = deals.excludedMediatorsOf(id);
        assertEq(uint256(excluded), first == mediator1 ? 1 : 2, "the silent one is marked excluded");
        vm.roll(block.number + 1);
        assertEq(deals.draw(id), second, "the silent mediator is not drawn again");
        vm.prank(first);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, first, second));
        deals.mediate(id, true);
        vm.prank(second);
        deals.mediate(id, false);
        assertState(id, DcnDeals.State.MediatedDishonest);
        assertEq(free(second), FEE, "the mediator that ruled is paid");
        assertEq(free(first), 0, "the silent one is not");
        assertEq(free(jobCreator), FUNDS + COLLATERAL - FEE, "creator refunded with the collateral less the fee");
    }

    function test_when_every_mediator_is_silent_the_result_stands() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = new address[](16);
        for (uint256 i = 0; i < 16; i++) {
            d.mediators[i] = address(uint160(0x3E00 + i));
        }
        bytes32 id = createAndSubmit(d);
        vm.prank(jobCreator);
        deals.challenge(id);
        uint256 seen;
        for (uint256 round = 0; round < 16; round++) {
            assertState(id, DcnDeals.State.Challenged);
            vm.setBlockhash(block.number, keccak256(abi.encode("round", round)));
            vm.roll(block.number + 1);
            address m = deals.draw(id);
            uint256 bit = 1 << (uint160(m) - 0x3E00);
            assertEq(seen & bit, 0, "each round draws a mediator not drawn before");
            seen |= bit;
            vm.warp(deals.getDeal(id).deadline + 1);
            deals.timeout(id);
        }
        assertState(id, DcnDeals.State.TimedOutNoVerdict);
        assertEq(free(provider), FUNDS + PRICE, "provider paid, collateral unlocked");
        assertEq(free(jobCreator), FUNDS - PRICE, "creator pays the price, its fee comes back");
        assertEq(locked(provider) + locked(jobCreator), 0, "nothing locked");
    }

    function test_a_round_nobody_drew_excludes_the_mediator_its_block_drew() public {
        bytes32 id = _challengedTwo();
        vm.setBlockhash(block.number, keccak256("challenge block"));
        vm.warp(deals.getDeal(id).deadline + 1);
        vm.roll(block.number + 1);
        // Who the round's block drew, had anyone asked.
        uint256 snap = vm.snapshotState();
        address wouldBe = deals.draw(id);
        vm.revertToState(snap);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorMissed(id, wouldBe, 1);
        deals.timeout(id);
        vm.roll(block.number + 1);
        assertTrue(deals.draw(id) != wouldBe, "the other one rules next");
    }

    function test_a_round_too_old_to_draw_excludes_nobody() public {
        bytes32 id = _challengedTwo();
        vm.warp(deals.getDeal(id).deadline + 1);
        vm.roll(block.number + 300);
        deals.timeout(id);
        assertState(id, DcnDeals.State.Challenged);
        (uint16 excluded, uint64 drawBlock) = deals.excludedMediatorsOf(id);
        assertEq(uint256(excluded), 0, "nobody excluded");
        assertEq(uint256(drawBlock), block.number, "a new round from this block");
    }
}

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DcnDeals, IMediatorPool} from "../src/DcnDeals.sol";
import {DcnEscrow} from "../src/DcnEscrow.sol";
import {DcnRegistry} from "../src/DcnRegistry.sol";
import {DealsFixture, H} from "./utils/DealsFixture.sol";

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

    /// Predicts the draw of a challenge sent now for a deal naming two mediators, with the
    /// v1 rule (this block's randomness and time) or with the newest block hash it can see.
    function predict(bytes32 id, uint256 mode) public view returns (uint256) {
        if (mode == 0) return uint256(keccak256(abi.encode(block.prevrandao, block.timestamp, id))) % 2;
        return uint256(keccak256(abi.encode(blockhash(block.number - 1), id, uint16(0)))) % 2;
    }

    /// Challenges only if the prediction is the accomplice (mediator index `accomplice`).
    function maybeChallenge(
        bytes32 id,
        DcnDeals.Terms calldata t,
        DcnDeals.Case calldata c,
        uint256 accomplice,
        uint256 mode
    ) external returns (bool) {
        if (predict(id, mode) != accomplice) return false;
        deals.challenge(id, t, c);
        return true;
    }
}

/// @notice Who ends with what on every path of a deal (ECONOMICS P3, P5, J9, J10, M1–M5,
///         S2; THREATS K1–K3): the payoffs of the parties and mediators, counted as free
///         escrow + locked escrow + bond, on each ending.
contract DcnDealsRulesTest is DealsFixture {
    struct Wealth {
        int256 jc;
        int256 pv;
        int256 m1;
        int256 m2;
        int256 pool;
    }

    function wealth(address a) internal view returns (int256) {
        (uint256 f, uint256 l) = deals.escrowOf(a);
        return int256(f + l + bondOf(a));
    }

    function snap() internal view returns (Wealth memory w) {
        w = Wealth(wealth(jobCreator), wealth(provider), wealth(mediator1), wealth(mediator2), wealth(poolMediator));
    }

    /// Each one's payoff since `w0`, and nothing left locked.
    function assertPayoffs(Wealth memory w0, int256 jc, int256 pv, int256 m1, int256 m2, int256 pool) internal view {
        assertEq(wealth(jobCreator) - w0.jc, jc, "job creator's payoff");
        assertEq(wealth(provider) - w0.pv, pv, "provider's payoff");
        assertEq(wealth(mediator1) - w0.m1, m1, "mediator1's payoff");
        assertEq(wealth(mediator2) - w0.m2, m2, "mediator2's payoff");
        assertEq(wealth(poolMediator) - w0.pool, pool, "pool mediator's payoff");
        assertEq(locked(jobCreator) + locked(provider), 0, "nothing left locked");
    }

    int256 internal constant P = int256(PRICE);
    int256 internal constant C = int256(COLLATERAL);
    int256 internal constant F = int256(FEE);
    int256 internal constant A = int256(AUDIT_FEE);
    int256 internal constant S = int256(uint256(SILENCE_SLASH));
    int256 internal constant B = int256(uint256(MIN_BOND));
    int256 internal constant AF = int256(uint256(APPEAL_FEE));

    // ─── the happy path and the deadlines ───

    function test_happy_path_pays_the_price_and_returns_the_audit_fee() public {
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(newDeal());
        accept(h);
        assertPayoffs(w0, -P, P, 0, 0, 0);
    }

    function test_no_result_costs_the_provider_its_collateral() public {
        Wealth memory w0 = snap();
        H memory h = create(newDeal());
        pastDeadline(h);
        timeout(h);
        assertPayoffs(w0, C, -C, 0, 0, 0);
    }

    function test_a_job_creator_that_never_judges_pays_as_if_it_accepted() public {
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(newDeal());
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.TimedOutAccepted);
        assertPayoffs(w0, -P, P, 0, 0, 0);
    }

    // ─── audits (P3) ───

    function test_an_audit_passed_pays_the_provider_and_the_auditor_the_audit_fee() public {
        Wealth memory w0 = snap();
        H memory h = create(newDeal());
        submitAudited(h);
        accept(h);
        assertEq(draw(h), mediator1, "the auditor, from the deal's list");
        mediate(h, true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertEq(flags(h.id), deals.FLAG_AUDIT() | deals.FLAG_HONEST(), "an audit, passed");
        assertPayoffs(w0, -P - A, P, A, 0, 0);
    }

    function test_an_audit_failed_costs_the_provider_its_collateral_exactly_as_a_lost_challenge() public {
        // The audit: the auditor's fee comes out of the collateral, the rest to the job
        // creator, who gets its price and audit fee back.
        Wealth memory w0 = snap();
        H memory h = create(newDeal());
        submitAudited(h);
        accept(h);
        draw(h);
        mediate(h, false);
        assertState(h.id, DcnDeals.State.MediatedDishonest);
        assertEq(flags(h.id), deals.FLAG_AUDIT(), "an audit, failed");
        assertPayoffs(w0, C - A, -C, A, 0, 0);

        // The same deal challenged with the same fee ends the same for everyone.
        w0 = snap();
        DcnDeals.Deal memory d = newDeal();
        d.mediationFee = AUDIT_FEE;
        H memory g = createAndSubmit(d);
        challengeAndDraw(g);
        mediate(g, false);
        assertPayoffs(w0, C - A, -C, A, 0, 0);
    }

    function test_an_audit_drawn_when_the_job_creator_never_judges_starts_at_the_deadline() public {
        Wealth memory w0 = snap();
        H memory h = create(newDeal());
        submitAudited(h);
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.Audited);
        draw(h);
        mediate(h, false);
        assertPayoffs(w0, C - A, -C, A, 0, 0);
    }

    function test_a_silent_auditor_leaves_the_result_standing_and_pays_the_provider() public {
        // One round only, even with other mediators left: the provider is not held.
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        Wealth memory w0 = snap();
        H memory h = create(d);
        submitAudited(h);
        accept(h);
        steerDraw(h, 0);
        assertEq(draw(h), mediator1, "steered");
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.TimedOutNoVerdict);
        assertEq(h.c.excluded, 1, "excluded");
        assertCommitted(h);
        assertPayoffs(w0, -P, P + S, -S, 0, 0);
    }

    function test_an_audit_nobody_drew_slashes_the_auditor_its_block_drew() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        Wealth memory w0 = snap();
        H memory h = create(d);
        submitAudited(h);
        accept(h);
        steerDraw(h, 1);
        vm.roll(block.number + 1);
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.TimedOutNoVerdict);
        assertPayoffs(w0, -P, P + S, 0, -S, 0);
    }

    function test_audits_are_drawn_at_the_deals_chance() public {
        // 200 results, each submitted in a block of its own random hash, at 25%.
        uint256 audited;
        for (uint256 i = 0; i < 200; i++) {
            DcnDeals.Deal memory d = newDeal();
            d.auditPpm = 250_000;
            d.price = 1 ether;
            d.collateral = 2 ether;
            d.mediationFee = MIN_FEE;
            d.auditFee = MIN_FEE;
            H memory h = create(d);
            vm.prank(provider);
            deals.submitResult(h.id, h.t, RESULT);
            h.c.resultHash = RESULT;
            vm.setBlockhash(block.number, keccak256(abi.encode("chance", i)));
            vm.roll(block.number + 1);
            if (accept(h) == DcnDeals.State.Audited) audited++;
        }
        // Binomial(200, 1/4): mean 50, standard deviation 6.1; these bounds are 4 away.
        assertTrue(audited >= 25 && audited <= 75, "about a quarter audited");
        // At the network's least chance, and at none.
        uint256 none;
        for (uint256 i = 0; i < 50; i++) {
            DcnDeals.Deal memory d = newDeal();
            d.auditPpm = PPM;
            d.price = 1 ether;
            d.collateral = 2 ether;
            d.mediationFee = MIN_FEE;
            d.auditFee = MIN_FEE;
            H memory h = create(d);
            vm.prank(provider);
            deals.submitResult(h.id, h.t, RESULT);
            h.c.resultHash = RESULT;
            vm.setBlockhash(block.number, keccak256(abi.encode("certain", i)));
            vm.roll(block.number + 1);
            if (accept(h) != DcnDeals.State.Audited) none++;
        }
        assertEq(none, 0, "at PPM every result is audited");
    }

    function test_the_audit_draw_is_fixed_by_the_results_block_whoever_judges_when() public {
        // The job creator cannot pick its block: accepting in any later block (within 256)
        // draws the same.
        H memory h = create(newDeal());
        submitAudited(h);
        for (uint256 i = 0; i < 5; i++) {
            uint256 snapshot = vm.snapshotState();
            vm.roll(block.number + 1 + i * 50);
            vm.warp(block.timestamp + i * 600);
            vm.prevrandao(uint256(keccak256(abi.encode("randao", i))));
            assertEq(uint256(accept(h)), uint256(DcnDeals.State.Audited), "audited whenever accepted");
            vm.revertToState(snapshot);
        }
    }

    // ─── challenges (J2, J9, J10, M1) ───

    function test_a_challenge_of_a_correct_result_costs_the_job_creator_the_fee() public {
        Wealth memory w0 = snap();
        H memory h = mediated(true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertPayoffs(w0, -P - F, P, F, 0, 0);
    }

    function test_a_wrong_result_costs_the_provider_its_collateral() public {
        Wealth memory w0 = snap();
        H memory h = mediated(false);
        assertState(h.id, DcnDeals.State.MediatedDishonest);
        assertPayoffs(w0, C - F, -C, F, 0, 0);
    }

    function test_a_silent_mediator_is_slashed_and_replaced_by_another() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(d);
        challenge(h);
        steerDraw(h, 0);
        assertEq(draw(h), mediator1, "steered");
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.Challenged);
        assertEq(bondOf(mediator1), BOND - SILENCE_SLASH, "silence costs the bond");
        assertEq(draw(h), mediator2, "the silent mediator is not drawn again");
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, mediator1, mediator2));
        deals.mediate(h.id, h.t, h.c, h.ms, true);
        mediate(h, false);
        assertPayoffs(w0, C - F + S, -C, -S, F, 0);
    }

    function test_when_every_mediator_is_silent_the_result_stands() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = new address[](16);
        for (uint256 i = 0; i < 16; i++) {
            d.mediators[i] = address(uint160(0x3E00 + i));
            bond(d.mediators[i], BOND);
        }
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(d);
        challenge(h);
        uint256 seen;
        for (uint256 round = 0; round < 16; round++) {
            assertState(h.id, DcnDeals.State.Challenged);
            vm.setBlockhash(mark(h.id), keccak256(abi.encode("round", round)));
            address m = draw(h);
            uint256 bit = 1 << (uint160(m) - 0x3E00);
            assertEq(seen & bit, 0, "each round draws a mediator not drawn before");
            seen |= bit;
            pastDeadline(h);
            timeout(h);
        }
        assertState(h.id, DcnDeals.State.TimedOutNoVerdict);
        // The case as the events tell it (the last MediatorMissed) is the one committed.
        assertEq(h.c.excluded, type(uint16).max, "all excluded");
        assertCommitted(h);
        assertPayoffs(w0, -P + 16 * S, P, 0, 0, 0);
        for (uint256 i = 0; i < 16; i++) {
            assertEq(bondOf(d.mediators[i]), BOND - SILENCE_SLASH, "each silent one slashed once");
        }
    }

    function test_a_round_nobody_drew_slashes_the_mediator_the_draw_would_have_drawn() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        H memory h = createAndSubmit(d);
        challenge(h);
        steerDraw(h, 1);
        vm.roll(block.number + 1);
        pastDeadline(h);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.MediatorMissed(h.id, mediator2, 2);
        timeout(h);
        assertEq(bondOf(mediator2), BOND - SILENCE_SLASH, "who the round's block drew");
        assertEq(bondOf(mediator1), BOND, "not the other");
        assertEq(draw(h), mediator1, "the other one rules next");
    }

    function test_a_round_nobody_drew_passes_over_unbonded_mediators_as_the_draw_does() public {
        // The round's block draws mediator1 first, which asked to leave: draw would pass it
        // over and draw mediator2, so mediator2 is the silent one, not mediator1.
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(d);
        vm.prank(mediator1);
        deals.requestUnbond();
        challenge(h);
        steerDraw(h, 0);
        vm.roll(block.number + 1);
        pastDeadline(h);
        timeout(h);
        assertEq(h.c.excluded, 3, "both excluded: one passed over, one silent");
        assertState(h.id, DcnDeals.State.TimedOutNoVerdict);
        assertPayoffs(w0, -P + S, P, 0, -S, 0);
    }

    function test_a_round_too_old_to_draw_excludes_nobody() public {
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(d);
        challenge(h);
        pastDeadline(h);
        vm.roll(block.number + 300);
        timeout(h);
        assertState(h.id, DcnDeals.State.Challenged);
        assertEq(h.c.excluded, 0, "nobody excluded");
        assertCommitted(h);
        assertEq(mark(h.id), block.number, "a new round from this block");
        assertEq(bondOf(mediator1) + bondOf(mediator2), 2 * BOND, "nobody slashed");
        draw(h);
        mediate(h, true);
        int256 m1 = h.c.ruledBy == mediator1 ? F : int256(0);
        assertPayoffs(w0, -P - F, P, m1, F - m1, 0);
    }

    // ─── bonds (M3, M5) ───

    function test_only_bonded_mediators_are_drawn() public {
        // mediator1 holds less than the least bond; mediator2 asked to leave.
        vm.prank(mediator1);
        deals.requestUnbond();
        vm.warp(block.timestamp + deals.UNBOND_DELAY());
        vm.prank(mediator1);
        deals.withdrawBond();
        vm.prank(mediator1);
        deals.postBond(MIN_BOND - 1);
        vm.prank(mediator2);
        deals.requestUnbond();
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators3();
        H memory h = createAndSubmit(d);
        challenge(h);
        vm.setBlockhash(mark(h.id), drawHash(h.id, 0, 3, 0));
        assertEq(draw(h), mediator3, "the one bonded");
        assertTrue(h.c.excluded & 4 == 0, "the drawn one is not excluded");
        assertTrue(h.c.excluded & 1 != 0, "the one under the least bond is passed over");

        // A bond of exactly the least is drawable.
        vm.prank(mediator1);
        deals.postBond(1);
        d = newDeal();
        d.mediators = mediators3();
        H memory g = createAndSubmit(d);
        challenge(g);
        vm.setBlockhash(mark(g.id), drawHash(g.id, 0, 3, 0));
        assertEq(draw(g), mediator1, "bonded at minBond");
    }

    function test_a_mediator_that_asks_to_unbond_when_drawn_still_answers_for_its_verdict() public {
        // Every wait at its longest: the ruling, the appeal window, the appeal's draw and
        // its ruling, 7 days each. The bond must still be there for the overturn.
        DcnDeals.Params memory p = params();
        p.appealWindow = 7 days;
        redeploy(p);
        DcnDeals.Deal memory d = newDeal();
        d.mediationTimeout = 7 days;
        Wealth memory w0 = snap();
        H memory h = createAndSubmit(d);
        challengeAndDraw(h);
        uint256 t0 = block.timestamp;
        vm.prank(mediator1);
        deals.requestUnbond();
        vm.warp(t0 + 7 days);
        mediate(h, false);
        vm.warp(t0 + 14 days);
        appeal(h, provider);
        steerAppeal(h, poolIndex(poolMediator), poolIndex(poolMediator));
        vm.warp(t0 + 21 days);
        assertEq(drawAppeal(h), poolMediator, "drawn at the appeal's deadline");
        vm.warp(t0 + 28 days);
        (, uint64 unbondAt) = deals.bondOf(mediator1);
        vm.prank(mediator1);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.BondLocked.selector, mediator1, unbondAt));
        deals.withdrawBond();
        ruleAppeal(h, true);
        assertEq(flags(h.id) & deals.FLAG_OVERTURNED(), deals.FLAG_OVERTURNED(), "overturned");
        assertPayoffs(w0, C - F, -C + B - AF, F - B, 0, AF);
        // Then it leaves with what is left.
        vm.warp(unbondAt);
        vm.prank(mediator1);
        assertEq(deals.withdrawBond(), BOND - MIN_BOND, "the rest of the bond");
    }

    // ─── appeals (M3, M5, J9, P5, S2) ───

    function test_an_appeal_upheld_pays_the_appeal_mediator_the_appellants_fee() public {
        Wealth memory w0 = snap();
        H memory h = mediated(true);
        appealToPool(h);
        ruleAppeal(h, true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertEq(flags(h.id) & deals.FLAG_OVERTURNED(), 0, "upheld");
        assertPayoffs(w0, -P - F - AF, P, F, 0, AF);

        w0 = snap();
        h = mediated(false);
        appealToPool(h);
        ruleAppeal(h, false);
        assertPayoffs(w0, C - F, -C - AF, F, 0, AF);
    }

    function test_an_overturned_verdict_costs_its_mediator_up_to_the_least_bond() public {
        // An honest result ruled dishonest (J9's accomplice, or M5): the provider appeals.
        // The deal's money stays as ruled; the first mediator's bond pays the appeal
        // mediator's fee and the rest of minBond to the provider, whose fee comes back.
        Wealth memory w0 = snap();
        H memory h = mediated(false);
        appealToPool(h);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.AppealDecided(h.id, poolMediator, true);
        ruleAppeal(h, true);
        assertState(h.id, DcnDeals.State.MediatedDishonest);
        assertEq(
            flags(h.id),
            deals.FLAG_APPEAL_DONE() | deals.FLAG_OVERTURNED(),
            "by the provider, overturned, decided"
        );
        assertPayoffs(w0, C - F, -C + B - AF, F - B, 0, AF);

        // A wrong result ruled honest (P5's accomplice, or M3): the job creator appeals.
        // mediator1, left with 10, tops its bond up to be drawn again.
        assertEq(bondOf(mediator1), BOND - MIN_BOND, "what is left");
        bond(mediator1, MIN_BOND);
        w0 = snap();
        h = mediated(true);
        appealToPool(h);
        ruleAppeal(h, false);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertPayoffs(w0, -P - F + B - AF, P, F - B, 0, AF);
    }

    /// mediator1 rules `h` dishonest, then stays silent in another deal and keeps `left` of
    /// its bond; that deal is settled. Returns `h`, ready to be appealed.
    function _verdictThenShortBond(uint256 left) internal returns (H memory h) {
        // A network whose silence slash leaves mediator1 `left` of its bond.
        DcnDeals.Params memory p = params();
        p.silenceSlash = uint88(BOND - left);
        redeploy(p);
        h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        mediate(h, false);
        DcnDeals.Deal memory d = newDeal();
        d.mediators = mediators2();
        H memory g = createAndSubmit(d);
        challenge(g);
        steerDraw(g, 0);
        assertEq(draw(g), mediator1, "steered");
        pastDeadline(g);
        timeout(g);
        assertEq(bondOf(mediator1), left, "what is left of its bond");
        draw(g);
        mediate(g, true);
    }

    function test_an_overturned_mediator_with_less_than_the_least_bond_pays_what_it_has() public {
        // 12 left: the appeal mediator's fee (5) first, the other 7 to the provider.
        H memory h = _verdictThenShortBond(12 ether);
        Wealth memory w0 = snap();
        appealToPool(h);
        ruleAppeal(h, true);
        assertPayoffs(w0, 0, 12 ether - AF, -12 ether, 0, AF);
        assertEq(bondOf(mediator1), 0, "all it had");
    }

    function test_an_overturn_pays_the_appeal_mediator_first_from_a_short_bond() public {
        // 2 left, less than the appeal fee: all of it to the appeal mediator.
        H memory h = _verdictThenShortBond(2 ether);
        Wealth memory w0 = snap();
        appealToPool(h);
        ruleAppeal(h, true);
        assertPayoffs(w0, 0, 0, -2 ether, 0, 2 ether);
        assertEq(bondOf(mediator1), 0, "all it had");
    }

    function test_a_lapsed_appeal_returns_the_fee_and_slashes_a_silent_appeal_mediator() public {
        // Nobody drew: the fee comes back, the verdict stands.
        Wealth memory w0 = snap();
        H memory h = mediated(false);
        appeal(h, provider);
        pastDeadline(h);
        timeout(h);
        assertPayoffs(w0, C - F, -C, F, 0, 0);

        // Drawn and silent: the appeal mediator pays silenceSlash to the appellant.
        w0 = snap();
        h = mediated(true);
        appealToPool(h);
        pastDeadline(h);
        vm.expectEmit(true, true, false, true);
        emit DcnDeals.AppealLapsed(h.id, poolMediator);
        timeout(h);
        assertState(h.id, DcnDeals.State.MediatedHonest);
        assertPayoffs(w0, -P - F + S, P, F, 0, -S);
    }

    function test_the_appeal_draw_passes_over_the_first_mediator_the_parties_and_the_unbonded() public {
        // Pool: mediator1 (the first mediator), poolMediator, the job creator, the provider,
        // mediator2 (leaving), mediator3 (bonded).
        registry.setApproved(DcnRegistry.Role.Mediator, jobCreator, true);
        registry.setApproved(DcnRegistry.Role.Mediator, provider, true);
        registry.setApproved(DcnRegistry.Role.Mediator, mediator2, true);
        registry.setApproved(DcnRegistry.Role.Mediator, mediator3, true);
        bond(jobCreator, BOND);
        bond(provider, BOND);
        vm.prank(mediator2);
        deals.requestUnbond();
        uint256 n = registry.approvedCount(DcnRegistry.Role.Mediator);
        address[4] memory skipped = [mediator1, jobCreator, provider, mediator2];
        for (uint256 i = 0; i < 4; i++) {
            H memory h = mediated(false);
            appeal(h, provider);
            // The first look lands on one that must be passed over, the second on mediator3.
            steerAppeal(h, poolIndex(skipped[i]), poolIndex(mediator3));
            assertEq(drawAppeal(h), mediator3, "passed over to the next try");
        }
        assertEq(n, 6, "six in the pool");
    }

    function test_an_appeal_with_nobody_to_draw_lapses() public {
        // The pool holds only the first mediator: eight tries find nobody.
        registry.setApproved(DcnRegistry.Role.Mediator, poolMediator, false);
        Wealth memory w0 = snap();
        H memory h = mediated(false);
        appeal(h, provider);
        assertEq(drawAppeal(h), address(0), "none found");
        assertEq(drawnIndex(h.id), 0, "nobody drawn");
        pastDeadline(h);
        timeout(h);
        assertPayoffs(w0, C - F, -C, F, 0, 0);
    }

    function test_an_appeal_draw_tries_again_past_the_first_mediator() public {
        // Pool: mediator1 (the first mediator) and poolMediator. Each try is uniform over
        // the pool; one landing on mediator1 tries again (all eight do with chance 1/256).
        uint256 retried;
        for (uint256 i = 0; i < 32; i++) {
            DcnDeals.Deal memory d = newDeal();
            (d.price, d.collateral, d.mediationFee, d.auditFee) = (1 ether, 2 ether, 1 ether, 1 ether);
            H memory h = createAndSubmit(d);
            challengeAndDraw(h);
            mediate(h, false);
            appeal(h, provider);
            bytes32 bh = keccak256(abi.encode("appeal", i));
            vm.setBlockhash(mark(h.id), bh);
            if (appealPick(bh, h.id, 0, 2) == poolIndex(mediator1)) retried++;
            assertEq(drawAppeal(h), poolMediator, "the pool mediator");
            ruleAppeal(h, false);
        }
        assertTrue(retried >= 6 && retried <= 26, "about half the first tries land on the first mediator");
    }

    // ─── K1: a signature expires and can be withdrawn ───

    function test_a_deal_created_after_its_deadline_reverts() public {
        DcnDeals.Deal memory d = newDeal();
        bytes memory sig = sign(d, PROVIDER_KEY);
        vm.warp(d.createDeadline + 1);
        vm.prank(jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DealExpired.selector, d.createDeadline));
        deals.createDeal(d, sig);
        assertEq(locked(provider), 0, "no collateral locked");
        DcnDeals.Deal memory e = newDeal();
        bytes memory sigE = sign(e, PROVIDER_KEY);
        vm.warp(e.createDeadline);
        vm.prank(jobCreator);
        bytes32 id = deals.createDeal(e, sigE);
        assertState(id, DcnDeals.State.Created);
    }

    function test_held_signatures_lock_no_more_than_the_providers_free_escrow() public {
        DcnDeals.Deal[5] memory held;
        bytes[5] memory sigs;
        for (uint256 i = 0; i < 5; i++) {
            held[i] = newDeal();
            held[i].collateral = 300 ether;
            held[i].price = 1 ether;
            sigs[i] = sign(held[i], PROVIDER_KEY);
        }
        for (uint256 i = 0; i < 3; i++) {
            vm.prank(jobCreator);
            deals.createDeal(held[i], sigs[i]);
        }
        vm.prank(jobCreator);
        vm.expectRevert(
            abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, provider, 300 ether, FUNDS - 900 ether)
        );
        deals.createDeal(held[3], sigs[3]);
        assertEq(locked(provider), 900 ether, "three collaterals locked, no more");
    }

    /// The id the provider signs covers every term: computed here by hand from EIP-712.
    function test_the_deal_id_is_the_eip712_digest_of_every_term() public view {
        DcnDeals.Deal memory d;
        d.jobCreator = jobCreator;
        d.provider = provider;
        d.solver = solver;
        d.mediators = mediators2();
        d.price = 1;
        d.collateral = 2;
        d.mediationFee = 3;
        d.auditFee = 4;
        d.auditPpm = 5;
        d.resultTimeout = 6;
        d.judgeTimeout = 7;
        d.mediationTimeout = 8;
        d.createDeadline = 9;
        d.jobHash = bytes32(uint256(10));
        d.nonce = 11;
        bytes32 typeHash = keccak256(
            "Deal(address jobCreator,address provider,address solver,address[] mediators,uint256 price,uint256 collateral,uint256 mediationFee,uint256 auditFee,uint32 auditPpm,uint64 resultTimeout,uint64 judgeTimeout,uint64 mediationTimeout,uint64 createDeadline,bytes32 jobHash,uint256 nonce)"
        );
        bytes32 structHash = keccak256(
            bytes.concat(
                abi.encode(typeHash, jobCreator, provider, solver, keccak256(abi.encode(mediator1, mediator2))),
                abi.encode(uint256(1), uint256(2), uint256(3), uint256(4), uint256(5), uint256(6), uint256(7)),
                abi.encode(uint256(8), uint256(9), bytes32(uint256(10)), uint256(11))
            )
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
        bytes32 digest = keccak256(abi.encodePacked(hex"1901", domain, structHash));
        assertEq(deals.dealId(d), digest, "dealId is the EIP-712 digest");
        assertEq(deals.DEAL_TYPEHASH(), typeHash, "type hash");
        // Every term moves it.
        bytes32 id = deals.dealId(d);
        d.auditFee = 40;
        assertTrue(deals.dealId(d) != id, "the audit fee is signed");
        d.auditFee = 4;
        d.auditPpm = 50;
        assertTrue(deals.dealId(d) != id, "the audit chance is signed");
        d.auditPpm = 5;
        d.mediators[1] = mediator3;
        assertTrue(deals.dealId(d) != id, "the mediators are signed");
    }

    // ─── K2: nobody picks the mediator ───

    function test_a_job_creator_steering_the_draw_does_no_better_than_chance() public {
        for (uint256 mode = 0; mode < 2; mode++) {
            SteeringJobCreator steerer = new SteeringJobCreator(deals);
            token.transfer(address(steerer), FUNDS);
            steerer.fund(FUNDS);
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
                d.auditFee = 1 ether;
                H memory h;
                h.id = steerer.create(d, sign(d, PROVIDER_KEY));
                h.t = deals.termsOf(d);
                h.ms = d.mediators;
                vm.prank(provider);
                deals.submitResult(h.id, h.t, RESULT);
                h.c.resultHash = RESULT;
                for (uint256 b = 0; b < 16; b++) {
                    vm.roll(block.number + 1);
                    vm.warp(block.timestamp + 12);
                    vm.prevrandao(uint256(keccak256(abi.encode("randao", mode, k, b))));
                    vm.setBlockhash(block.number - 1, keccak256(abi.encode("parent", mode, k, b, entropy++)));
                    if (steerer.maybeChallenge(h.id, h.t, h.c, 1, mode)) {
                        challenges++;
                        // The chain seals the block after its transactions: its hash is
                        // known only from the next block on.
                        vm.setBlockhash(block.number, keccak256(abi.encode("sealed", mode, k, b, entropy++)));
                        vm.roll(block.number + 1);
                        if (deals.draw(h.id, h.t, h.c, h.ms) == mediator2) accompliceDrawn++;
                        break;
                    }
                }
            }
            assertTrue(challenges >= 56, "the job creator found a block it liked for nearly every deal");
            assertTrue(accompliceDrawn * 4 <= challenges * 3, "the accomplice is drawn no more than chance");
            assertTrue(accompliceDrawn * 4 >= challenges, "and no less: the draw is not skewed");
        }
    }

    // ─── every path, fuzzed ───

    struct Fz {
        uint256 p;
        uint256 c;
        uint256 f;
        uint256 a;
        uint256 path;
        bool v;
        bool r;
    }

    function testFuzz_every_path_pays_whom_the_rules_say(
        uint96 price,
        uint96 collateral,
        uint96 fee,
        uint96 auditFee,
        uint8 path,
        bool verdict,
        bool appealRuling
    ) public {
        Fz memory z;
        z.f = bound(fee, MIN_FEE, FUNDS / 8);
        z.a = bound(auditFee, MIN_FEE, FUNDS / 8);
        z.p = bound(price, 0, FUNDS / 4);
        uint256 least = z.f > z.a ? z.f : z.a;
        z.c = bound(collateral, least, FUNDS / 4);
        z.path = bound(path, 0, 8);
        z.v = verdict;
        z.r = appealRuling;
        DcnDeals.Deal memory d = newDeal();
        d.price = z.p;
        d.collateral = z.c;
        d.mediationFee = z.f;
        d.auditFee = z.a;
        Wealth memory w0 = snap();
        H memory h = create(d);
        int256[5] memory want = _play(h, z);
        assertPayoffs(w0, want[0], want[1], want[2], want[3], want[4]);
        assertEq(locked(jobCreator) + locked(provider) + locked(mediator1), 0, "nothing locked");
        assertTrue(uint256(state(h.id)) >= uint256(DcnDeals.State.Accepted), "settled");
        assertTrue(state(h.id) != DcnDeals.State.Audited && state(h.id) != DcnDeals.State.Appealed, "final");
        assertEq(token.balanceOf(address(deals)), deals.booked(), "tokens == books");
    }

    // Plays path `z.path` on `h`; returns the payoffs of the job creator, the provider,
    // mediator1, mediator2 and the pool mediator the rules promise.
    function _play(H memory h, Fz memory z) internal returns (int256[5] memory w) {
        int256 p = int256(z.p);
        int256 c = int256(z.c);
        int256 f = int256(z.f);
        int256 a = int256(z.a);
        if (z.path == 0) {
            pastDeadline(h);
            timeout(h);
            return [c, -c, int256(0), 0, 0];
        }
        bool audited = z.path == 3 || z.path == 4;
        submitWith(h, RESULT, audited);
        if (z.path == 1) {
            accept(h);
            return [-p, p, int256(0), 0, 0];
        }
        if (z.path == 2) {
            pastDeadline(h);
            timeout(h);
            return [-p, p, int256(0), 0, 0];
        }
        if (z.path == 3) {
            accept(h);
            draw(h);
            mediate(h, z.v);
            return z.v ? [-p - a, p, a, 0, 0] : [c - a, -c, a, 0, 0];
        }
        if (z.path == 4) {
            pastDeadline(h);
            timeout(h);
            draw(h);
            pastDeadline(h);
            timeout(h);
            return [-p, p + S, -S, 0, 0];
        }
        challengeAndDraw(h);
        if (z.path == 6) {
            pastDeadline(h);
            timeout(h);
            return [-p + S, p, -S, 0, 0];
        }
        mediate(h, z.v);
        w = z.v ? [-p - f, p, f, 0, 0] : [c - f, -c, f, 0, 0];
        if (z.path == 5) return w;
        uint256 loser = z.v ? 0 : 1;
        appealToPool(h);
        if (z.path == 7) {
            ruleAppeal(h, z.r);
            if (z.r == z.v) {
                w[loser] -= AF;
            } else {
                w[loser] += B - AF;
                w[2] -= B;
            }
            w[4] += AF;
        } else {
            pastDeadline(h);
            timeout(h);
            w[loser] += S;
            w[4] -= S;
        }
    }
}

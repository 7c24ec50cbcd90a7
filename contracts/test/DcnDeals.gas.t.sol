// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DealsFixture, H} from "./utils/DealsFixture.sol";
import {DcnDeals} from "../src/DcnDeals.sol";

/// @notice The paths whose gas the project reports, one per test, each call a transaction
///         of its own: `forge test --gas-report --match-contract DcnDealsGasTest` prints
///         each function's gas (21,000 and calldata included). Every party already holds
///         free escrow, as in a running network (a first payment into an empty escrow
///         costs 17,100 more).
contract DcnDealsGasTest is DealsFixture {
    function setUp() public override {
        super.setUp();
        fund(mediator1, 1 ether);
        fund(poolMediator, 1 ether);
    }

    /// create + submit + accept, no audit drawn.
    function test_gas_happy_path() public {
        H memory h = createAndSubmit(newDeal());
        assertEq(uint256(accept(h)), uint256(DcnDeals.State.Accepted), "accepted");
    }

    /// create + submit + challenge + draw + mediate.
    function test_gas_challenge_with_a_verdict() public {
        H memory h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        mediate(h, true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
    }

    /// create + submit + accept (audit drawn) + draw + mediate.
    function test_gas_audit() public {
        H memory h = create(newDeal());
        submitAudited(h);
        accept(h);
        draw(h);
        mediate(h, true);
        assertState(h.id, DcnDeals.State.MediatedHonest);
    }

    /// A verdict, then appeal + drawAppeal + ruleAppeal (overturned).
    function test_gas_appeal() public {
        H memory h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        mediate(h, false);
        appealToPool(h);
        ruleAppeal(h, true);
        assertState(h.id, DcnDeals.State.MediatedDishonest);
    }

    /// create + timeout (no result).
    function test_gas_no_result() public {
        H memory h = create(newDeal());
        pastDeadline(h);
        timeout(h);
        assertState(h.id, DcnDeals.State.TimedOutNoResult);
    }
}

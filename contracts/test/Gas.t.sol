// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {DealsFixture, H} from "./utils/DealsFixture.sol";
import {DcnDeals} from "../src/DcnDeals.sol";

contract GasProbe is DealsFixture {
    function test_gas_happy() public {
        H memory h = create(newDeal());
        submit(h);
        accept(h);
    }

    function test_gas_challenge() public {
        H memory h = create(newDeal());
        submit(h);
        challengeAndDraw(h);
        mediate(h, true);
    }
}

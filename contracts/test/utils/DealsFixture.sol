// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./Test.sol";
import {DcnToken} from "../../src/DcnToken.sol";
import {DcnDeals} from "../../src/DcnDeals.sol";

/// @notice Token, deals contract, funded parties and helpers to make signed deals.
abstract contract DealsFixture is Test {
    DcnToken internal token;
    DcnDeals internal deals;

    uint256 internal constant PROVIDER_KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;
    address internal provider = vm.addr(PROVIDER_KEY);
    address internal other = vm.addr(OTHER_KEY);
    address internal jobCreator = address(0xC0FFEE);
    address internal mediator1 = address(0x3ED1);
    address internal mediator2 = address(0x3ED2);
    address internal solver = address(0x5017);

    uint256 internal constant PRICE = 100 ether;
    uint256 internal constant COLLATERAL = 50 ether;
    uint256 internal constant FEE = 10 ether;
    uint64 internal constant RESULT_TIMEOUT = 1 hours;
    uint64 internal constant JUDGE_TIMEOUT = 30 minutes;
    uint64 internal constant MEDIATION_TIMEOUT = 2 hours;
    uint64 internal constant CREATE_WINDOW = 10 minutes;
    uint256 internal constant FUNDS = 1_000 ether;

    uint256 private _nonce;

    function setUp() public virtual {
        token = new DcnToken(1_000_000_000 ether);
        deals = new DcnDeals(token);
        vm.label(provider, "provider");
        vm.label(jobCreator, "jobCreator");
        fund(jobCreator, FUNDS);
        fund(provider, FUNDS);
    }

    /// Gives `who` `amount` tokens and deposits them into its escrow.
    function fund(address who, uint256 amount) internal {
        token.transfer(who, amount);
        vm.startPrank(who);
        token.approve(address(deals), amount);
        deals.deposit(amount);
        vm.stopPrank();
    }

    function mediators1() internal view returns (address[] memory m) {
        m = new address[](1);
        m[0] = mediator1;
    }

    function mediators2() internal view returns (address[] memory m) {
        m = new address[](2);
        m[0] = mediator1;
        m[1] = mediator2;
    }

    /// Default terms with a fresh nonce.
    function newDeal() internal returns (DcnDeals.Deal memory) {
        return DcnDeals.Deal({
            jobCreator: jobCreator,
            provider: provider,
            solver: solver,
            mediators: mediators1(),
            price: PRICE,
            collateral: COLLATERAL,
            mediationFee: FEE,
            resultTimeout: RESULT_TIMEOUT,
            judgeTimeout: JUDGE_TIMEOUT,
            mediationTimeout: MEDIATION_TIMEOUT,
            createDeadline: uint64(block.timestamp + CREATE_WINDOW),
            jobHash: keccak256("cowsay Message=moo"),
            nonce: ++_nonce
        });
    }

    function sign(DcnDeals.Deal memory deal, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, deals.dealId(deal));
        return abi.encodePacked(r, s, v);
    }

    function create(DcnDeals.Deal memory deal) internal returns (bytes32 id) {
        bytes memory sig = sign(deal, PROVIDER_KEY);
        vm.prank(deal.jobCreator);
        id = deals.createDeal(deal, sig);
    }

    function createAndSubmit(DcnDeals.Deal memory deal) internal returns (bytes32 id) {
        id = create(deal);
        vm.prank(deal.provider);
        deals.submitResult(id, keccak256("result"));
    }

    /// The job creator challenges; a block later anyone draws. Returns the drawn mediator.
    function challengeAndDraw(bytes32 id) internal returns (address drawn) {
        vm.prank(jobCreator);
        deals.challenge(id);
        vm.roll(block.number + 1);
        drawn = deals.draw(id);
    }

    function free(address who) internal view returns (uint256 f) {
        (f,) = deals.escrowOf(who);
    }

    function locked(address who) internal view returns (uint256 l) {
        (, l) = deals.escrowOf(who);
    }

    function state(bytes32 id) internal view returns (DcnDeals.State) {
        return deals.getDeal(id).state;
    }

    function assertState(bytes32 id, DcnDeals.State expected) internal view {
        assertEq(uint256(state(id)), uint256(expected), "deal state");
    }
}

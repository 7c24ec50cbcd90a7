// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {DcnToken} from "../src/DcnToken.sol";
import {DcnDeals} from "../src/DcnDeals.sol";

/// @notice Drives DcnDeals with random actions by a few actors: deposits, withdrawals,
///         deals with random terms, every transition, time passing. Actions that the
///         contract refuses are skipped so that each run goes deep.
contract DealsHandler is Test {
    DcnToken public immutable token;
    DcnDeals public immutable deals;
    uint256[4] internal keys = [uint256(0xA1), 0xA2, 0xA3, 0xA4];
    address[4] public actors;
    address[3] public mediatorSet = [address(0x3ED1), address(0x3ED2), address(0x3ED3)];
    bytes32[] public ids;
    uint256 internal nonce;
    /// Tokens sent to DcnDeals outside `deposit` and not skimmed yet (ghost).
    uint256 public stray;
    address public constant SINK = address(0x51F7);

    constructor(DcnToken token_, DcnDeals deals_) {
        token = token_;
        deals = deals_;
        for (uint256 i = 0; i < 4; i++) {
            actors[i] = vm.addr(keys[i]);
        }
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function allAccounts() public view returns (address[] memory list) {
        list = new address[](7);
        for (uint256 i = 0; i < 4; i++) list[i] = actors[i];
        for (uint256 i = 0; i < 3; i++) list[4 + i] = mediatorSet[i];
    }

    function deposit(uint256 who, uint256 amount) external {
        address a = actors[who % 4];
        amount = bound(amount, 1, 1_000 ether);
        token.transfer(a, amount);
        vm.startPrank(a);
        token.approve(address(deals), amount);
        deals.deposit(amount);
        vm.stopPrank();
    }

    function withdraw(uint256 who, uint256 amount) external {
        address a = actors[who % 4];
        (uint256 free,) = deals.escrowOf(a);
        if (free == 0) return;
        vm.prank(a);
        deals.withdraw(bound(amount, 1, free));
    }

    /// Someone sends tokens straight to the contract (a mistake, or a try at the books).
    function donate(uint256 amount) external {
        amount = bound(amount, 1, 100 ether);
        token.transfer(address(deals), amount);
        stray += amount;
    }

    /// The owner takes the stray tokens out; the sink gets exactly those.
    function skim() external {
        if (stray == 0) return;
        uint256 before = token.balanceOf(SINK);
        vm.prank(deals.owner());
        uint256 amount = deals.skim(SINK);
        assertEq(amount, stray, "skim takes exactly the stray tokens");
        assertEq(token.balanceOf(SINK) - before, amount, "the sink gets them");
        stray = 0;
    }

    function create(uint256 creatorSeed, uint256 providerSeed, uint256 price, uint256 collateral, uint256 fee, uint64 t)
        external
    {
        uint256 ci = creatorSeed % 4;
        uint256 pi = providerSeed % 4;
        if (ci == pi) pi = (pi + 1) % 4;
        (uint256 creatorFree,) = deals.escrowOf(actors[ci]);
        (uint256 providerFree,) = deals.escrowOf(actors[pi]);
        if (creatorFree == 0 || providerFree == 0) return;
        price = bound(price, 0, creatorFree);
        collateral = bound(collateral, 0, providerFree);
        fee = bound(fee, 0, collateral);
        address[] memory ms = new address[](1 + (t % 3));
        for (uint256 i = 0; i < ms.length; i++) ms[i] = mediatorSet[i];
        DcnDeals.Deal memory d = DcnDeals.Deal({
            jobCreator: actors[ci],
            provider: actors[pi],
            solver: address(0x5017),
            mediators: ms,
            price: price,
            collateral: collateral,
            mediationFee: fee,
            resultTimeout: uint64(bound(t, 1, 3 days)),
            judgeTimeout: uint64(bound(t >> 8, 1, 3 days)),
            mediationTimeout: uint64(bound(t >> 16, 1, 3 days)),
            jobHash: bytes32(nonce),
            nonce: ++nonce
        });
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[pi], deals.dealId(d));
        vm.prank(d.jobCreator);
        ids.push(deals.createDeal(d, abi.encodePacked(r, s, v)));
    }

    function submit(uint256 which, bytes32 resultHash) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.Created);
        if (id == 0 || block.timestamp > d.deadline || resultHash == 0) return;
        vm.prank(d.provider);
        deals.submitResult(id, resultHash);
    }

    function accept(uint256 which) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.ResultSubmitted);
        if (id == 0) return;
        vm.prank(d.jobCreator);
        deals.acceptResult(id);
    }

    function challenge(uint256 which) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.ResultSubmitted);
        if (id == 0 || block.timestamp > d.deadline) return;
        (uint256 free,) = deals.escrowOf(d.jobCreator);
        if (free < d.mediationFee) return;
        vm.prank(d.jobCreator);
        deals.challenge(id);
    }

    function mediate(uint256 which, bool honest) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.Challenged);
        if (id == 0 || block.timestamp > d.deadline) return;
        vm.prank(d.mediator);
        deals.mediate(id, honest);
    }

    function timeout(uint256 which) external {
        if (ids.length == 0) return;
        bytes32 id = ids[which % ids.length];
        DcnDeals.DealInfo memory d = deals.getDeal(id);
        if (uint256(d.state) >= uint256(DcnDeals.State.Accepted) || block.timestamp <= d.deadline) return;
        deals.timeout(id);
    }

    function passTime(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 2 days));
    }

    function _pick(uint256 which, DcnDeals.State wanted) internal view returns (bytes32, DcnDeals.DealInfo memory d) {
        uint256 n = ids.length;
        for (uint256 k = 0; k < n; k++) {
            bytes32 id = ids[(which % n + k) % n];
            d = deals.getDeal(id);
            if (d.state == wanted) return (id, d);
        }
        return (bytes32(0), d);
    }
}

/// @notice Over random sequences of actions: the tokens DcnDeals holds always equal the
///         sum of every free and locked escrow, and once every deadline has passed each deal
///         can be driven to a final state with nothing left locked.
contract DcnDealsInvariantTest is Test {
    DcnToken internal token;
    DcnDeals internal deals;
    DealsHandler internal handler;

    function setUp() public {
        token = new DcnToken(1_000_000_000 ether);
        deals = new DcnDeals(token);
        handler = new DealsHandler(token, deals);
        token.transfer(address(handler), 100_000_000 ether);
        targetContract(address(handler));
    }

    function invariant_token_balance_equals_escrow_books() public view {
        assertEq(deals.booked(), _books(), "booked == free + locked");
        assertEq(token.balanceOf(address(deals)), _books() + handler.stray(), "tokens held == books + stray");
    }

    function invariant_locked_equals_open_deals() public view {
        uint256 open;
        for (uint256 i = 0; i < handler.idCount(); i++) {
            DcnDeals.DealInfo memory d = deals.getDeal(handler.ids(i));
            if (d.state == DcnDeals.State.Created || d.state == DcnDeals.State.ResultSubmitted) {
                open += d.price + d.collateral;
            } else if (d.state == DcnDeals.State.Challenged) {
                open += d.price + d.collateral + d.mediationFee;
            }
        }
        address[] memory accounts = handler.allAccounts();
        uint256 lockedSum;
        for (uint256 i = 0; i < accounts.length; i++) {
            (, uint256 l) = deals.escrowOf(accounts[i]);
            lockedSum += l;
        }
        assertEq(lockedSum, open, "locked == what open deals hold");
    }

    /// After each run: let every deadline pass; every deal that is not final must accept
    /// `timeout` and end final, and nothing may stay locked.
    function afterInvariant() public {
        vm.warp(block.timestamp + 4 days);
        for (uint256 i = 0; i < handler.idCount(); i++) {
            bytes32 id = handler.ids(i);
            if (uint256(deals.getDeal(id).state) < uint256(DcnDeals.State.Accepted)) deals.timeout(id);
            assertTrue(uint256(deals.getDeal(id).state) >= uint256(DcnDeals.State.Accepted), "deal final");
        }
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (, uint256 l) = deals.escrowOf(accounts[i]);
            assertEq(l, 0, "nothing locked once all deadlines passed");
        }
        assertEq(token.balanceOf(address(deals)), _books() + handler.stray(), "books balance after settling");
    }

    function _books() internal view returns (uint256 sum) {
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            sum += f + l;
        }
    }
}

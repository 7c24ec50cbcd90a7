// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {DcnToken} from "../src/DcnToken.sol";
import {DcnDeals} from "../src/DcnDeals.sol";
import {WalletProvider} from "./utils/WalletProvider.sol";

/// @notice Drives DcnDeals with random actions by a few actors (four keys and a contract
///         wallet that signs by ERC-1271): deposits (plain, by permit, by a front-run
///         permit), withdrawals, deals with random terms (self-deals, 1 to 16 mediators),
///         every transition, time and blocks passing, and calls that must revert. Actions the contract would refuse
///         are skipped so that each run goes deep. A ghost ledger applies the rules to every
///         account's free and locked escrow on its own; the invariants compare it with the
///         contract after every action.
contract DealsHandler is Test {
    DcnToken public immutable token;
    DcnDeals public immutable deals;
    /// Actors 0-3 are keys; actor 4 is a WalletProvider whose owner holds keys[4].
    uint256 internal constant N = 5;
    uint256[N] internal keys = [uint256(0xA1), 0xA2, 0xA3, 0xA4, 0xA5];
    address[N] public actors;
    address[16] public mediatorSet;
    /// What the rules say each account's escrow is (ghost ledger).
    mapping(address => uint256) public ghostFree;
    mapping(address => uint256) public ghostLocked;
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
        actors[4] = address(new WalletProvider(vm.addr(keys[4])));
        for (uint256 i = 0; i < 16; i++) {
            mediatorSet[i] = address(uint160(0x3E00 + i));
        }
    }

    function _lockGhost(address a, uint256 amount) internal {
        ghostFree[a] -= amount;
        ghostLocked[a] += amount;
    }

    function _unlockGhost(address from, uint256 amount, address to) internal {
        ghostLocked[from] -= amount;
        ghostFree[to] += amount;
    }

    function _payProviderGhost(DcnDeals.DealInfo memory d) internal {
        _unlockGhost(d.jobCreator, d.price, d.provider);
        _unlockGhost(d.provider, d.collateral, d.provider);
    }

    function idCount() external view returns (uint256) {
        return ids.length;
    }

    function allAccounts() public view returns (address[] memory list) {
        list = new address[](N + 16);
        for (uint256 i = 0; i < N; i++) list[i] = actors[i];
        for (uint256 i = 0; i < 16; i++) list[N + i] = mediatorSet[i];
    }

    function deposit(uint256 who, uint256 amount) external {
        address a = actors[who % N];
        amount = bound(amount, 1, 1_000 ether);
        token.transfer(a, amount);
        vm.startPrank(a);
        token.approve(address(deals), amount);
        deals.deposit(amount);
        vm.stopPrank();
        ghostFree[a] += amount;
    }

    function _permit(uint256 i, uint256 amount, uint256 deadline) internal view returns (uint8, bytes32, bytes32) {
        bytes32 structHash = keccak256(
            abi.encode(
                keccak256("Permit(address owner,address spender,uint256 value,uint256 nonce,uint256 deadline)"),
                actors[i],
                address(deals),
                amount,
                token.nonces(actors[i]),
                deadline
            )
        );
        return vm.sign(keys[i], keccak256(abi.encodePacked("\x19\x01", token.DOMAIN_SEPARATOR(), structHash)));
    }

    /// A deposit by EIP-2612 permit, no approval first; one in three has its permit
    /// front-run (someone submits it before the deposit), which must not stop the deposit.
    function depositWithPermit(uint256 who, uint256 amount, uint256 mode) external {
        uint256 i = who % 4; // a permit is an ECDSA signature of the holder: keys only
        address a = actors[i];
        amount = bound(amount, 1, 1_000 ether);
        token.transfer(a, amount);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(i, amount, deadline);
        if (mode % 3 == 0) token.permit(a, address(deals), amount, deadline, v, r, s);
        vm.prank(a);
        deals.depositWithPermit(amount, deadline, v, r, s);
        ghostFree[a] += amount;
        assertEq(token.allowance(a, address(deals)), 0, "the permit is used up");
    }

    /// Must revert: a permit signed by another key gives no allowance, so nothing moves.
    function depositWithForgedPermit(uint256 who, uint256 amount) external {
        uint256 i = who % 4;
        address a = actors[i];
        amount = bound(amount, 1, 1_000 ether);
        token.transfer(a, amount);
        uint256 deadline = block.timestamp + 1 hours;
        (uint8 v, bytes32 r, bytes32 s) = _permit(i, amount, deadline);
        (v, r, s) = vm.sign(keys[(i + 1) % 4], keccak256(abi.encode(r, s, v)));
        vm.prank(a);
        vm.expectRevert();
        deals.depositWithPermit(amount, deadline, v, r, s);
        // The tokens stay with `a`, outside escrow: give them back to the handler.
        vm.prank(a);
        token.transfer(address(this), amount);
    }

    function withdraw(uint256 who, uint256 amount) external {
        address a = actors[who % N];
        (uint256 free,) = deals.escrowOf(a);
        if (free == 0) return;
        amount = bound(amount, 1, free);
        vm.prank(a);
        deals.withdraw(amount);
        ghostFree[a] -= amount;
    }

    /// Must revert: more than the free escrow (locked tokens are never withdrawable).
    function withdrawTooMuch(uint256 who) external {
        address a = actors[who % N];
        (uint256 free,) = deals.escrowOf(a);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.InsufficientEscrow.selector, a, free + 1, free));
        deals.withdraw(free + 1);
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
        uint256 ci = creatorSeed % N;
        uint256 pi = providerSeed % N;
        // One deal in eight is a self-deal: one account is job creator and provider.
        if (ci == pi && providerSeed % 8 != 0) pi = (pi + 1) % N;
        (uint256 creatorFree,) = deals.escrowOf(actors[ci]);
        if (creatorFree == 0) return;
        price = bound(price, 0, creatorFree);
        (uint256 providerFree,) = deals.escrowOf(actors[pi]);
        if (ci == pi) providerFree -= price;
        if (providerFree == 0) return;
        collateral = bound(collateral, 0, providerFree);
        fee = bound(fee, 0, collateral);
        address[] memory ms = new address[](1 + (t % 16));
        for (uint256 i = 0; i < ms.length; i++) ms[i] = mediatorSet[(i + (t >> 32)) % 16];
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
            createDeadline: uint64(block.timestamp),
            jobHash: bytes32(nonce),
            nonce: ++nonce
        });
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[pi], deals.dealId(d));
        vm.prank(d.jobCreator);
        ids.push(deals.createDeal(d, abi.encodePacked(r, s, v)));
        _lockGhost(d.jobCreator, price);
        _lockGhost(d.provider, collateral);
    }

    /// A deal of actor 0 with `provider` for nothing, one mediator, 1 s timeouts.
    function _plainDeal(address provider, uint64 createDeadline) internal returns (DcnDeals.Deal memory d) {
        d.jobCreator = actors[0];
        d.provider = provider;
        d.mediators = new address[](1);
        d.mediators[0] = mediatorSet[0];
        d.resultTimeout = 1;
        d.judgeTimeout = 1;
        d.mediationTimeout = 1;
        d.createDeadline = createDeadline;
        d.nonce = ++nonce;
    }

    /// Must revert: a deal for the wallet provider signed by a key that is not its owner's.
    function createForgedForWallet(uint256 signer) external {
        DcnDeals.Deal memory d = _plainDeal(actors[4], uint64(block.timestamp));
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[signer % 4], deals.dealId(d));
        vm.prank(d.jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.BadSignature.selector, actors[4]));
        deals.createDeal(d, abi.encodePacked(r, s, v));
    }

    /// Must revert: a signed deal created after its creation deadline.
    function createLate(uint256 lateBy) external {
        if (block.timestamp < 2) vm.warp(2);
        uint64 deadline = uint64(block.timestamp - bound(lateBy, 1, block.timestamp - 1));
        DcnDeals.Deal memory d = _plainDeal(actors[1], deadline);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[1], deals.dealId(d));
        vm.prank(d.jobCreator);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.DealExpired.selector, d.createDeadline));
        deals.createDeal(d, abi.encodePacked(r, s, v));
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
        _payProviderGhost(d);
    }

    function challenge(uint256 which) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.ResultSubmitted);
        if (id == 0 || block.timestamp > d.deadline) return;
        (uint256 free,) = deals.escrowOf(d.jobCreator);
        if (free < d.mediationFee) return;
        vm.prank(d.jobCreator);
        deals.challenge(id);
        _lockGhost(d.jobCreator, d.mediationFee);
    }

    function draw(uint256 which) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.Challenged);
        if (id == 0 || d.mediator != address(0)) return;
        vm.roll(block.number + 1);
        deals.draw(id);
    }

    function mediate(uint256 which, bool honest) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.Challenged);
        if (id == 0 || d.mediator == address(0) || block.timestamp > d.deadline) return;
        vm.prank(d.mediator);
        deals.mediate(id, honest);
        if (honest) {
            _payProviderGhost(d);
            _unlockGhost(d.jobCreator, d.mediationFee, d.mediator);
        } else {
            _unlockGhost(d.jobCreator, d.price + d.mediationFee, d.jobCreator);
            _unlockGhost(d.provider, d.mediationFee, d.mediator);
            _unlockGhost(d.provider, d.collateral - d.mediationFee, d.jobCreator);
        }
    }

    /// Must revert: a mediator of the deal that was not drawn rules.
    function mediateNotDrawn(uint256 which, uint256 who) external {
        (bytes32 id, DcnDeals.DealInfo memory d) = _pick(which, DcnDeals.State.Challenged);
        if (id == 0) return;
        address m = mediatorSet[who % 16];
        if (m == d.mediator) return;
        vm.prank(m);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, m, d.mediator));
        deals.mediate(id, true);
    }

    function timeout(uint256 which) external {
        if (ids.length == 0) return;
        bytes32 id = ids[which % ids.length];
        DcnDeals.DealInfo memory d = deals.getDeal(id);
        if (uint256(d.state) >= uint256(DcnDeals.State.Accepted) || block.timestamp <= d.deadline) return;
        deals.timeout(id);
        settledByTimeout(d, deals.getDeal(id).state);
    }

    /// Every deadline passes, as many times as it takes: every deal that is not final is
    /// settled by `timeout` (one call per silent mediator of a challenge).
    function settleEverything() external {
        for (uint256 i = 0; i < ids.length; i++) {
            for (uint256 round = 0; round < 17; round++) {
                DcnDeals.DealInfo memory d = deals.getDeal(ids[i]);
                if (uint256(d.state) >= uint256(DcnDeals.State.Accepted)) break;
                vm.warp(block.timestamp + 4 days);
                vm.roll(block.number + 1);
                deals.timeout(ids[i]);
                settledByTimeout(d, deals.getDeal(ids[i]).state);
            }
        }
    }

    /// What a `timeout` from `d` to `to` does to the ghost ledger.
    function settledByTimeout(DcnDeals.DealInfo memory d, DcnDeals.State to) internal {
        if (d.state == DcnDeals.State.Created) {
            _unlockGhost(d.jobCreator, d.price, d.jobCreator);
            _unlockGhost(d.provider, d.collateral, d.jobCreator);
        } else if (d.state == DcnDeals.State.ResultSubmitted) {
            _payProviderGhost(d);
        } else if (to == DcnDeals.State.TimedOutNoVerdict) {
            // No mediator left: the result stands and the fee goes back.
            _payProviderGhost(d);
            _unlockGhost(d.jobCreator, d.mediationFee, d.jobCreator);
        }
    }

    function passTime(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 2 days));
        vm.roll(block.number + 1 + secs % 300);
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

    function invariant_every_account_holds_what_the_rules_say() public view {
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            assertEq(f, handler.ghostFree(accounts[i]), "free escrow as the rules say");
            assertEq(l, handler.ghostLocked(accounts[i]), "locked escrow as the rules say");
        }
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
        handler.settleEverything();
        for (uint256 i = 0; i < handler.idCount(); i++) {
            bytes32 id = handler.ids(i);
            assertTrue(uint256(deals.getDeal(id).state) >= uint256(DcnDeals.State.Accepted), "deal final");
        }
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            assertEq(l, 0, "nothing locked once all deadlines passed");
            assertEq(f, handler.ghostFree(accounts[i]), "every account ends with what the rules say");
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

// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, Vm} from "./utils/Test.sol";
import {DrawSpec} from "./utils/DrawSpec.sol";
import {DcnToken} from "../src/DcnToken.sol";
import {DcnDeals, IMediatorPool} from "../src/DcnDeals.sol";
import {DcnEscrow} from "../src/DcnEscrow.sol";
import {DcnRegistry} from "../src/DcnRegistry.sol";
import {WalletProvider} from "./utils/WalletProvider.sol";

/// @notice Drives DcnDeals with random actions by a few actors (four keys and a contract
///         wallet that signs by ERC-1271) and 18 mediators (16 a deal may name, two only in
///         the approved pool): deposits (plain, by permit, by a front-run permit),
///         withdrawals, bonds posted, unbonded and withdrawn, deals with random terms
///         (self-deals, 1 to 16 mediators, any audit chance), every transition (audits,
///         draws and redraws, verdicts, appeals, their draws and rulings, every timeout),
///         time and blocks, stray tokens and skims, and calls that must revert, under the
///         network's rules as its deployment fixed them. Actions the contract would refuse are
///         skipped so that each run goes deep. A ghost ledger applies the rules to every
///         account's free and locked escrow and bond on its own, drawing audits, mediators
///         and appeal mediators from the spec (`DrawSpec`) and its own record of bonds; the
///         contract must agree with it after every action.
contract DealsHandler is Test, DrawSpec {
    DcnToken public immutable token;
    DcnDeals public immutable deals;
    DcnRegistry public immutable registry;
    /// Actors 0-3 are keys; actor 4 is a WalletProvider whose owner holds keys[4].
    uint256 internal constant N = 5;
    uint256[N] internal keys = [uint256(0xA1), 0xA2, 0xA3, 0xA4, 0xA5];
    address[N] public actors;
    /// 0-15: the mediators a deal may name; 16-17: approved in the pool only.
    uint256 internal constant M = 18;
    address[M] public mediatorSet;

    /// What the rules say each account holds (ghost ledger).
    mapping(address => uint256) public ghostFree;
    mapping(address => uint256) public ghostLocked;
    mapping(address => uint256) public ghostBond;
    mapping(address => uint64) public ghostUnbondAt;
    /// The network's rules, as the test deployed DcnDeals with them (fixed for its life).
    DcnDeals.Params internal rules;

    /// A deal as the handler carries it.
    struct Rec {
        bytes32 id;
        DcnDeals.Terms t;
        DcnDeals.Case c;
        address[] ms;
    }

    Rec[] internal recs;
    uint256 internal nonce;
    uint256 internal entropy;
    /// Tokens sent to DcnDeals outside `deposit` and not skimmed yet (ghost).
    uint256 public stray;
    address public constant SINK = address(0x51F7);
    /// How often each transition ran (by name), to see what a campaign reached.
    mapping(string => uint256) public count;
    bool internal initialized;

    constructor(DcnToken token_, DcnDeals deals_, DcnRegistry registry_, DcnDeals.Params memory rules_) {
        token = token_;
        deals = deals_;
        registry = registry_;
        rules = rules_;
        for (uint256 i = 0; i < 4; i++) {
            actors[i] = vm.addr(keys[i]);
        }
        actors[4] = address(new WalletProvider(vm.addr(keys[4])));
        for (uint256 i = 0; i < M; i++) {
            mediatorSet[i] = address(uint160(0x3E00 + i));
        }
    }

    /// Bonds mediators 0-11 and both pool-only ones (two of them just at the least bond);
    /// 12-15 hold none. Called once the handler has tokens; later calls do nothing.
    function init() external {
        if (initialized) return;
        initialized = true;
        for (uint256 i = 0; i < N; i++) _fund(actors[i], 2_000 ether);
        for (uint256 i = 0; i < M; i++) {
            if (i >= 12 && i < 16) continue;
            uint256 amount = i % 6 == 0 ? rules.minBond : 30 ether;
            _fund(mediatorSet[i], amount);
            vm.prank(mediatorSet[i]);
            deals.postBond(amount);
            ghostFree[mediatorSet[i]] -= amount;
            ghostBond[mediatorSet[i]] += amount;
        }
    }

    // ─── the ghost ledger ───

    function _fund(address a, uint256 amount) internal {
        token.transfer(a, amount);
        vm.startPrank(a);
        token.approve(address(deals), amount);
        deals.deposit(amount);
        vm.stopPrank();
        ghostFree[a] += amount;
    }

    function _lockGhost(address a, uint256 amount) internal {
        ghostFree[a] -= amount;
        ghostLocked[a] += amount;
    }

    function _unlockGhost(address from, uint256 amount, address to) internal {
        ghostLocked[from] -= amount;
        ghostFree[to] += amount;
    }

    function _slashGhost(address m, uint256 amount, address to) internal {
        uint256 taken = ghostBond[m] < amount ? ghostBond[m] : amount;
        ghostBond[m] -= taken;
        ghostFree[to] += taken;
    }

    function _payProviderGhost(DcnDeals.Terms storage t) internal {
        _unlockGhost(t.jobCreator, t.price, t.provider);
        _unlockGhost(t.provider, t.collateral, t.provider);
    }

    function _bondedGhost(address m) internal view returns (bool) {
        uint256 b = ghostBond[m];
        return ghostUnbondAt[m] == 0 && b >= rules.minBond && b != 0;
    }

    // The draw among a deal's mediators, bonds as the ghost knows them.
    function _drawGhost(bytes32 bh, Rec storage r, uint16 excluded) internal view returns (uint256, uint16) {
        while (true) {
            uint256 i = pickOf(bh, r.id, excluded, r.ms.length);
            if (i == type(uint256).max) return (0, excluded);
            if (_bondedGhost(r.ms[i])) return (i + 1, excluded);
            excluded |= uint16(1 << i);
        }
        revert("unreachable");
    }

    // The draw of an appeal mediator from the registry's pool.
    function _drawAppealGhost(bytes32 bh, Rec storage r) internal view returns (address) {
        uint256 n = registry.approvedCount(DcnRegistry.Role.Mediator);
        if (n == 0) return address(0);
        for (uint256 k = 0; k < 8; k++) {
            address m = registry.approvedAt(DcnRegistry.Role.Mediator, appealPick(bh, r.id, k, n));
            if (m != r.c.ruledBy && m != r.t.jobCreator && m != r.t.provider && _bondedGhost(m)) return m;
        }
        return address(0);
    }

    function _untried(uint16 excluded, uint256 n) internal pure returns (uint256 left) {
        left = n;
        for (uint256 i = 0; i < n; i++) {
            if (excluded & (1 << i) != 0) left--;
        }
    }

    // ─── reading deals ───

    function _deal(bytes32 id)
        internal
        view
        returns (DcnDeals.State s, uint64 deadline, uint64 mark, uint8 drawn, uint8 flags)
    {
        (s, deadline, mark, drawn, flags,) = deals.getDeal(id);
    }

    function _state(bytes32 id) internal view returns (DcnDeals.State s) {
        (s,,,,,) = deals.getDeal(id);
    }

    /// The first deal from `which` on in state `a` or `b`; type(uint256).max if none.
    function _pick(uint256 which, DcnDeals.State a, DcnDeals.State b) internal view returns (uint256) {
        uint256 n = recs.length;
        for (uint256 k = 0; k < n; k++) {
            uint256 i = (which % n + k) % n;
            DcnDeals.State s = _state(recs[i].id);
            if (s == a || s == b) return i;
        }
        return type(uint256).max;
    }

    function _committed(Rec storage r) internal view {
        deals.verify(r.id, r.t, r.c);
    }

    /// Moves to the next block, sealing this one with a hash of its own.
    function _nextBlock() internal {
        vm.setBlockhash(block.number, keccak256(abi.encode("block", entropy++)));
        vm.roll(block.number + 1);
    }

    function recCount() external view returns (uint256) {
        return recs.length;
    }

    function recId(uint256 i) external view returns (bytes32) {
        return recs[i].id;
    }

    /// What deal `i` holds locked, by the rules, in its current state.
    function lockedBy(uint256 i) external view returns (uint256) {
        Rec storage r = recs[i];
        DcnDeals.State s = _state(r.id);
        if (s == DcnDeals.State.Created || s == DcnDeals.State.ResultSubmitted || s == DcnDeals.State.Audited) {
            return uint256(r.t.price) + r.t.auditFee + r.t.collateral;
        }
        if (s == DcnDeals.State.Challenged) return uint256(r.t.price) + r.t.mediationFee + r.t.collateral;
        if (s == DcnDeals.State.Appealed) return rules.appealFee;
        return 0;
    }

    function allAccounts() public view returns (address[] memory list) {
        list = new address[](N + M);
        for (uint256 i = 0; i < N; i++) list[i] = actors[i];
        for (uint256 i = 0; i < M; i++) list[N + i] = mediatorSet[i];
    }

    // ─── escrow ───

    function deposit(uint256 who, uint256 amount) external {
        _fund(actors[who % N], bound(amount, 1, 1_000 ether));
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
        vm.prank(a);
        token.transfer(address(this), amount);
    }

    function withdraw(uint256 who, uint256 amount) external {
        address a = who % 3 == 0 ? mediatorSet[who % M] : actors[who % N];
        uint256 f = ghostFree[a];
        if (f == 0) return;
        amount = bound(amount, 1, f);
        vm.prank(a);
        deals.withdraw(amount);
        ghostFree[a] -= amount;
    }

    /// Must revert: more than the free escrow (locked tokens and bonds are not withdrawable).
    function withdrawTooMuch(uint256 who) external {
        address a = who % 2 == 0 ? mediatorSet[who % M] : actors[who % N];
        uint256 f = ghostFree[a];
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnEscrow.InsufficientEscrow.selector, a, f + 1, f));
        deals.withdraw(f + 1);
    }

    /// Someone sends tokens straight to the contract (a mistake, or a try at the books);
    /// one time in three the owner skims instead.
    function strayTokens(uint256 amount) external {
        if (amount % 3 == 0) this.skim();
        else this.donate(amount);
    }

    function donate(uint256 amount) external {
        amount = bound(amount, 1, 100 ether);
        token.transfer(address(deals), amount);
        stray += amount;
    }

    /// The owner takes the stray tokens out; the sink gets exactly those.
    function skim() external {
        if (stray == 0) return;
        uint256 before = token.balanceOf(SINK);
        uint256 amount = deals.skim(SINK);
        assertEq(amount, stray, "skim takes exactly the stray tokens");
        assertEq(token.balanceOf(SINK) - before, amount, "the sink gets them");
        stray = 0;
    }

    // ─── bonds ───

    /// A mediator posts (kind 0), asks to unbond (1) or withdraws its bond (2).
    function bonds(uint256 kind, uint256 who, uint256 amount) external {
        kind %= 3;
        if (kind == 0) this.postBond(who, amount);
        else if (kind == 1) this.requestUnbond(who);
        else this.withdrawBond(who);
    }

    function postBond(uint256 who, uint256 amount) external {
        address m = mediatorSet[who % M];
        amount = bound(amount, 1, 40 ether);
        if (ghostFree[m] < amount) _fund(m, amount - ghostFree[m]);
        vm.prank(m);
        if (ghostUnbondAt[m] != 0) {
            vm.expectRevert(abi.encodeWithSelector(DcnEscrow.Unbonding.selector, m, ghostUnbondAt[m]));
            deals.postBond(amount);
            return;
        }
        deals.postBond(amount);
        ghostFree[m] -= amount;
        ghostBond[m] += amount;
        count["postBond"]++;
    }

    function requestUnbond(uint256 who) external {
        address m = mediatorSet[who % M];
        vm.prank(m);
        if (ghostBond[m] == 0) {
            vm.expectRevert(abi.encodeWithSelector(DcnEscrow.NoBond.selector, m));
            deals.requestUnbond();
        } else if (ghostUnbondAt[m] != 0) {
            vm.expectRevert(abi.encodeWithSelector(DcnEscrow.Unbonding.selector, m, ghostUnbondAt[m]));
            deals.requestUnbond();
        } else {
            deals.requestUnbond();
            ghostUnbondAt[m] = uint64(block.timestamp) + deals.UNBOND_DELAY();
            count["requestUnbond"]++;
        }
    }

    function withdrawBond(uint256 who) external {
        address m = mediatorSet[who % M];
        uint64 at = ghostUnbondAt[m];
        vm.prank(m);
        if (at == 0) {
            vm.expectRevert(abi.encodeWithSelector(DcnEscrow.NotUnbonding.selector, m));
            deals.withdrawBond();
        } else if (block.timestamp < at) {
            vm.expectRevert(abi.encodeWithSelector(DcnEscrow.BondLocked.selector, m, at));
            deals.withdrawBond();
        } else {
            assertEq(deals.withdrawBond(), ghostBond[m], "the whole bond");
            ghostFree[m] += ghostBond[m];
            ghostBond[m] = 0;
            ghostUnbondAt[m] = 0;
            count["withdrawBond"]++;
        }
    }

    // ─── creating deals ───

    struct NewDeal {
        uint256 ci;
        uint256 pi;
        uint256 price;
        uint256 collateral;
        uint256 fee;
        uint256 auditFee;
        bool ok;
    }

    function create(uint256 creatorSeed, uint256 providerSeed, uint256 price, uint256 collateral, uint256 fees, uint256 t)
        external
    {
        NewDeal memory x = _amounts(creatorSeed, providerSeed, price, collateral, fees);
        if (!x.ok) return;
        DcnDeals.Deal memory d = _newDeal(x, t);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(keys[x.pi], deals.dealId(d));
        vm.prank(d.jobCreator);
        bytes32 id = deals.createDeal(d, abi.encodePacked(r, s, v));
        Rec storage rec = recs.push();
        rec.id = id;
        rec.t = deals.termsOf(d);
        rec.ms = d.mediators;
        _lockGhost(d.jobCreator, x.price + x.auditFee);
        _lockGhost(d.provider, x.collateral);
        _committed(rec);
        count["create"]++;
    }

    // Parties and amounts the parties' free escrow covers, fees at least the floor.
    function _amounts(uint256 creatorSeed, uint256 providerSeed, uint256 price, uint256 collateral, uint256 fees)
        internal
        view
        returns (NewDeal memory x)
    {
        uint256 floor = rules.minMediationFee;
        x.ci = creatorSeed % N;
        x.pi = providerSeed % N;
        // One deal in eight is a self-deal: one account is job creator and provider.
        if (x.ci == x.pi && providerSeed % 8 != 0) x.pi = (x.pi + 1) % N;
        fees = uint256(keccak256(abi.encode(fees)));
        x.fee = floor + fees % 5 ether;
        x.auditFee = floor + (fees >> 128) % 5 ether;
        uint256 least = x.fee > x.auditFee ? x.fee : x.auditFee;
        if (least == 0) least = 1;
        uint256 creatorFree = ghostFree[actors[x.ci]];
        if (creatorFree < x.auditFee) return x;
        x.price = bound(price, 0, creatorFree - x.auditFee);
        uint256 providerFree = ghostFree[actors[x.pi]];
        if (x.ci == x.pi) providerFree -= x.price + x.auditFee;
        if (providerFree < least) return x;
        x.collateral = bound(collateral, least, providerFree);
        x.ok = true;
    }

    // The deal: 1 to 16 of the mediators (at least the network's least), any audit chance
    // the network allows, timeouts up to 3 days.
    function _newDeal(NewDeal memory x, uint256 t) internal returns (DcnDeals.Deal memory d) {
        DcnDeals.Params memory p = rules;
        t = uint256(keccak256(abi.encode(t))); // the fuzzer favours small numbers: spread them
        uint256 n = p.minMediators + t % (17 - p.minMediators);
        address[] memory ms = new address[](n);
        for (uint256 i = 0; i < n; i++) ms[i] = mediatorSet[(i + (t >> 32)) % 16];
        d = DcnDeals.Deal({
            jobCreator: actors[x.ci],
            provider: actors[x.pi],
            solver: address(0x5017),
            mediators: ms,
            price: x.price,
            collateral: x.collateral,
            mediationFee: x.fee,
            auditFee: x.auditFee,
            auditPpm: uint32(bound(t >> 40, p.minAuditPpm, PPM)),
            resultTimeout: uint64(bound(t >> 72, 1, 3 days)),
            judgeTimeout: uint64(bound(t >> 104, 1, 3 days)),
            mediationTimeout: uint64(bound(t >> 136, 1, 3 days)),
            createDeadline: uint64(block.timestamp),
            jobHash: bytes32(nonce),
            nonce: ++nonce
        });
    }

    /// A deal of actor 0 with `provider` for the least fees and mediators, 1 s timeouts.
    function _plainDeal(address provider, uint64 createDeadline) internal returns (DcnDeals.Deal memory d) {
        DcnDeals.Params memory p = rules;
        d.jobCreator = actors[0];
        d.provider = provider;
        d.mediators = new address[](p.minMediators);
        for (uint256 i = 0; i < d.mediators.length; i++) d.mediators[i] = mediatorSet[i];
        d.mediationFee = p.minMediationFee;
        d.auditFee = p.minMediationFee;
        d.collateral = p.minMediationFee + 1;
        d.auditPpm = PPM;
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

    // ─── the deal's life ───

    function submit(uint256 which, bytes32 resultHash) external {
        uint256 i = _pick(which, DcnDeals.State.Created, DcnDeals.State.Created);
        if (i == type(uint256).max || resultHash == 0) return;
        Rec storage r = recs[i];
        (, uint64 deadline,,,) = _deal(r.id);
        if (block.timestamp > deadline) return;
        vm.prank(r.t.provider);
        deals.submitResult(r.id, r.t, resultHash);
        r.c.resultHash = resultHash;
        _committed(r);
        count["submit"]++;
    }

    /// What reading the audit draw of `r`'s result gives now: 0 audited because its block
    /// hash is gone (never drawn again), 1 audited by the draw, 2 not.
    function _auditOutcome(Rec storage r) internal view returns (uint256) {
        (,, uint64 mark,,) = _deal(r.id);
        if (block.number - mark > 256) return 0;
        bytes32 bh = blockhash(mark);
        return bh != 0 && auditRoll(bh, r.id) < r.t.auditPpm ? 1 : 2;
    }

    // The result was judged (accepted, or its deadline passed) with `outcome`.
    function _judgedGhost(Rec storage r, uint256 outcome, DcnDeals.State paid) internal {
        DcnDeals.State s = _state(r.id);
        if (outcome < 2) {
            // Nothing moves: the price, audit fee and collateral stay locked for the audit.
            assertEq(uint256(s), uint256(DcnDeals.State.Audited), "audited");
            (,, uint64 mark,,) = _deal(r.id);
            assertEq(mark, block.number, "the audit's round starts in this block");
            count[outcome == 0 ? "auditedHashGone" : "audited"]++;
        } else {
            assertEq(uint256(s), uint256(paid), "paid");
            _payProviderGhost(r.t);
            _unlockGhost(r.t.jobCreator, r.t.auditFee, r.t.jobCreator);
        }
    }

    function accept(uint256 which) external {
        uint256 i = _pick(which, DcnDeals.State.ResultSubmitted, DcnDeals.State.ResultSubmitted);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (,, uint64 mark,,) = _deal(r.id);
        if (block.number <= mark) _nextBlock();
        uint256 outcome = _auditOutcome(r);
        vm.prank(r.t.jobCreator);
        deals.acceptResult(r.id, r.t, r.c);
        _judgedGhost(r, outcome, DcnDeals.State.Accepted);
        count["accept"]++;
    }

    function challenge(uint256 which) external {
        uint256 i = _pick(which, DcnDeals.State.ResultSubmitted, DcnDeals.State.ResultSubmitted);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (, uint64 deadline,,,) = _deal(r.id);
        if (block.timestamp > deadline) return;
        if (ghostFree[r.t.jobCreator] + r.t.auditFee < r.t.mediationFee) return;
        vm.prank(r.t.jobCreator);
        deals.challenge(r.id, r.t, r.c);
        _unlockGhost(r.t.jobCreator, r.t.auditFee, r.t.jobCreator);
        _lockGhost(r.t.jobCreator, r.t.mediationFee);
        count["challenge"]++;
    }

    function draw(uint256 which) external {
        uint256 i = _pick(which, DcnDeals.State.Challenged, DcnDeals.State.Audited);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (,, uint64 mark, uint8 drawn,) = _deal(r.id);
        if (drawn != 0) {
            assertEq(deals.draw(r.id, r.t, r.c, r.ms), r.ms[drawn - 1], "drawing again returns the drawn one");
            return;
        }
        if (block.number <= mark) _nextBlock();
        address got = deals.draw(r.id, r.t, r.c, r.ms);
        if (block.number - mark > 256) {
            assertEq(got, address(0), "postponed");
            count["drawPostponed"]++;
            return;
        }
        (uint256 idx, uint16 excluded) = _drawGhost(blockhash(mark), r, r.c.excluded);
        assertEq(got, idx == 0 ? address(0) : r.ms[idx - 1], "drawn as the spec draws, bonds as the ledger has them");
        r.c.excluded = excluded;
        _committed(r);
        count[idx == 0 ? "drawNobody" : "draw"]++;
    }

    function mediate(uint256 which, bool honest) external {
        uint256 i = _pick(which, DcnDeals.State.Challenged, DcnDeals.State.Audited);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline,, uint8 drawn,) = _deal(r.id);
        if (drawn == 0 || block.timestamp > deadline) return;
        address m = r.ms[drawn - 1];
        vm.prank(m);
        deals.mediate(r.id, r.t, r.c, r.ms, honest);
        uint256 fee = s == DcnDeals.State.Audited ? r.t.auditFee : r.t.mediationFee;
        if (honest) {
            _payProviderGhost(r.t);
            _unlockGhost(r.t.jobCreator, fee, m);
        } else {
            _unlockGhost(r.t.jobCreator, r.t.price + fee, r.t.jobCreator);
            _unlockGhost(r.t.provider, fee, m);
            _unlockGhost(r.t.provider, r.t.collateral - fee, r.t.jobCreator);
        }
        r.c.ruledBy = m;
        _committed(r);
        count[s == DcnDeals.State.Audited ? "mediateAudit" : "mediate"]++;
    }

    /// A call that must revert, of kind `kind`.
    function misuse(uint256 kind, uint256 a, uint256 b) external {
        kind %= 7;
        if (kind == 0) this.withdrawTooMuch(a);
        else if (kind == 1) this.depositWithForgedPermit(a, b);
        else if (kind == 2) this.createForgedForWallet(a);
        else if (kind == 3) this.createLate(a);
        else if (kind == 4) this.mediateNotDrawn(a, b);
        else if (kind == 5) this.forgeTerms(a, uint96(b));
        else this.appealByWinner(a);
    }

    /// Must revert: a mediator of the deal that was not drawn rules.
    function mediateNotDrawn(uint256 which, uint256 who) external {
        uint256 i = _pick(which, DcnDeals.State.Challenged, DcnDeals.State.Audited);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (,,, uint8 drawn,) = _deal(r.id);
        address d = drawn == 0 ? address(0) : r.ms[drawn - 1];
        address m = mediatorSet[who % 16];
        if (m == d) return;
        vm.prank(m);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotMediator.selector, m, d));
        deals.mediate(r.id, r.t, r.c, r.ms, true);
    }

    /// Must revert: any call with terms other than the deal's.
    function forgeTerms(uint256 which, uint96 price) external {
        if (recs.length == 0) return;
        Rec storage r = recs[which % recs.length];
        DcnDeals.Terms memory t = r.t;
        if (price == t.price) return;
        t.price = price;
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, r.id));
        deals.verify(r.id, t, r.c);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.WrongCommitment.selector, r.id));
        deals.timeout(r.id, t, r.c, r.ms);
    }

    function _appellant(Rec storage r, uint8 flags) internal view returns (address) {
        return flags & 2 != 0 ? r.t.jobCreator : r.t.provider;
    }

    function appeal(uint256 which) external {
        uint256 i = _pick(which, DcnDeals.State.MediatedHonest, DcnDeals.State.MediatedDishonest);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline,,, uint8 flags) = _deal(r.id);
        if (flags & 4 != 0 || block.timestamp > deadline) return;
        address loser = s == DcnDeals.State.MediatedHonest ? r.t.jobCreator : r.t.provider;
        uint256 fee = rules.appealFee;
        if (ghostFree[loser] < fee) return;
        vm.prank(loser);
        deals.appeal(r.id, r.t, r.c);
        _lockGhost(loser, fee);
        count["appeal"]++;
    }

    /// Must revert: the winner of a verdict appeals it.
    function appealByWinner(uint256 which) external {
        uint256 i = _pick(which, DcnDeals.State.MediatedHonest, DcnDeals.State.MediatedDishonest);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        (DcnDeals.State s,,,, uint8 flags) = _deal(r.id);
        if (flags & 4 != 0 || r.t.jobCreator == r.t.provider) return;
        address winner = s == DcnDeals.State.MediatedHonest ? r.t.provider : r.t.jobCreator;
        vm.prank(winner);
        vm.expectRevert(abi.encodeWithSelector(DcnDeals.NotLoser.selector, winner));
        deals.appeal(r.id, r.t, r.c);
    }

    function drawAppeal(uint256 which) external {
        uint256 i = _pick(which, DcnDeals.State.Appealed, DcnDeals.State.Appealed);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        if (r.c.appealMediator != address(0)) return;
        (, uint64 deadline, uint64 mark,,) = _deal(r.id);
        if (block.timestamp > deadline) return;
        if (block.number <= mark) _nextBlock();
        address got = deals.drawAppeal(r.id, r.t, r.c);
        if (block.number - mark > 256) {
            assertEq(got, address(0), "postponed");
            return;
        }
        assertEq(got, _drawAppealGhost(blockhash(mark), r), "drawn from the pool as the spec draws");
        r.c.appealMediator = got;
        _committed(r);
        count[got == address(0) ? "drawAppealNobody" : "drawAppeal"]++;
    }

    function ruleAppeal(uint256 which, bool honest) external {
        uint256 i = _pick(which, DcnDeals.State.Appealed, DcnDeals.State.Appealed);
        if (i == type(uint256).max) return;
        Rec storage r = recs[i];
        address am = r.c.appealMediator;
        (, uint64 deadline,,, uint8 flags) = _deal(r.id);
        if (am == address(0) || block.timestamp > deadline) return;
        vm.prank(am);
        deals.ruleAppeal(r.id, r.t, r.c, honest);
        address appellant = _appellant(r, flags);
        if (honest != (flags & 1 != 0)) {
            _unlockGhost(appellant, rules.appealFee, appellant);
            uint256 minBond = rules.minBond;
            uint256 feePart = rules.appealFee < minBond ? rules.appealFee : minBond;
            _slashGhost(r.c.ruledBy, feePart, am);
            _slashGhost(r.c.ruledBy, minBond - feePart, appellant);
            count["overturned"]++;
        } else {
            _unlockGhost(appellant, rules.appealFee, am);
            count["upheld"]++;
        }
    }

    function timeout(uint256 which) external {
        if (recs.length == 0) return;
        Rec storage r = recs[which % recs.length];
        _timeout(r);
    }

    // `timeout` of `r` if its deadline has passed and it waits on one.
    function _timeout(Rec storage r) internal {
        (DcnDeals.State s, uint64 deadline, uint64 mark,,) = _deal(r.id);
        if (block.timestamp <= deadline) return;
        if (s == DcnDeals.State.Created) {
            deals.timeout(r.id, r.t, r.c, r.ms);
            _unlockGhost(r.t.jobCreator, uint256(r.t.price) + r.t.auditFee, r.t.jobCreator);
            _unlockGhost(r.t.provider, r.t.collateral, r.t.jobCreator);
            count["timeoutNoResult"]++;
        } else if (s == DcnDeals.State.ResultSubmitted) {
            if (block.number <= mark) _nextBlock();
            uint256 outcome = _auditOutcome(r);
            deals.timeout(r.id, r.t, r.c, r.ms);
            _judgedGhost(r, outcome, DcnDeals.State.TimedOutAccepted);
            count["timeoutUnjudged"]++;
        } else if (s == DcnDeals.State.Challenged || s == DcnDeals.State.Audited) {
            _silentRound(r, s == DcnDeals.State.Audited);
        } else if (s == DcnDeals.State.Appealed) {
            deals.timeout(r.id, r.t, r.c, r.ms);
            (,,,, uint8 flags) = _deal(r.id);
            address appellant = _appellant(r, flags);
            _unlockGhost(appellant, rules.appealFee, appellant);
            if (r.c.appealMediator != address(0)) {
                _slashGhost(r.c.appealMediator, rules.silenceSlash, appellant);
            }
            count["appealLapsed"]++;
        }
    }

    function _silentRound(Rec storage r, bool audit) internal {
        (,, uint64 mark, uint8 drawn,) = _deal(r.id);
        uint16 excluded = r.c.excluded;
        uint256 idx = drawn;
        if (idx == 0 && block.number > mark && block.number - mark <= 256) {
            (idx, excluded) = _drawGhost(blockhash(mark), r, excluded);
        }
        deals.timeout(r.id, r.t, r.c, r.ms);
        if (idx != 0) {
            excluded |= uint16(1 << (idx - 1));
            _slashGhost(r.ms[idx - 1], rules.silenceSlash, audit ? r.t.provider : r.t.jobCreator);
        }
        r.c.excluded = excluded;
        _committed(r);
        if (!audit && _untried(excluded, r.ms.length) > 0) {
            assertEq(uint256(_state(r.id)), uint256(DcnDeals.State.Challenged), "a new round");
            count["redraw"]++;
            return;
        }
        assertEq(uint256(_state(r.id)), uint256(DcnDeals.State.TimedOutNoVerdict), "the result stands");
        _payProviderGhost(r.t);
        _unlockGhost(r.t.jobCreator, audit ? r.t.auditFee : r.t.mediationFee, r.t.jobCreator);
        count["timeoutNoVerdict"]++;
    }

    /// Moves an open deal from `which` on up to four steps (and the next one up to two)
    /// along a path `choice` picks, so that runs reach audits, verdicts, appeals and their
    /// timeouts (by way of the actions above, called on `this`).
    function step(uint256 which, uint256 choice) external {
        uint256 i = _open(which);
        if (i == type(uint256).max) return;
        for (uint256 k = 0; k < 4; k++) {
            _step(i, uint256(keccak256(abi.encode(choice, k))));
        }
        if (choice % 2 == 0) {
            i = _open(i + 1);
            if (i == type(uint256).max) return;
            for (uint256 k = 4; k < 6; k++) {
                _step(i, uint256(keccak256(abi.encode(choice, k))));
            }
        }
    }

    /// The first deal from `which` on that can still move; type(uint256).max if none.
    function _open(uint256 which) internal view returns (uint256) {
        uint256 n = recs.length;
        for (uint256 k = 0; k < n; k++) {
            uint256 i = (which % n + k) % n;
            (DcnDeals.State s, uint64 deadline,,, uint8 flags) = _deal(recs[i].id);
            if (s == DcnDeals.State.MediatedHonest || s == DcnDeals.State.MediatedDishonest) {
                if (flags & 4 == 0 && block.timestamp <= deadline) return i;
            } else if (uint256(s) < uint256(DcnDeals.State.Accepted) || s == DcnDeals.State.Audited
                    || s == DcnDeals.State.Appealed) {
                return i;
            }
        }
        return type(uint256).max;
    }

    function _step(uint256 i, uint256 choice) internal {
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline,, uint8 drawn, uint8 flags) = _deal(r.id);
        bool late = choice % 8 == 0; // one step in eight lets the deadline pass
        if (late && s != DcnDeals.State.MediatedHonest && s != DcnDeals.State.MediatedDishonest) {
            if (block.timestamp <= deadline) vm.warp(uint256(deadline) + 1);
            this.timeout(i);
        } else if (s == DcnDeals.State.Created) {
            this.submit(i, keccak256(abi.encode("result", choice)));
        } else if (s == DcnDeals.State.ResultSubmitted) {
            if (choice % 6 == 2) vm.roll(block.number + 257); // accepted after its block hash is gone
            if (choice % 2 == 0) this.accept(i);
            else this.challenge(i);
        } else if (s == DcnDeals.State.Challenged || s == DcnDeals.State.Audited) {
            if (drawn == 0) this.draw(i);
            else this.mediate(i, choice % 3 != 0);
        } else if (s == DcnDeals.State.MediatedHonest || s == DcnDeals.State.MediatedDishonest) {
            if (flags & 4 == 0 && choice % 3 != 0) this.appeal(i);
        } else if (s == DcnDeals.State.Appealed) {
            if (r.c.appealMediator == address(0)) this.drawAppeal(i);
            else this.ruleAppeal(i, choice % 2 == 0);
        }
    }

    function passTime(uint256 secs) external {
        vm.warp(block.timestamp + bound(secs, 1, 6 hours));
        uint256 blocks = 1 + secs % 300;
        for (uint256 i = 0; i < blocks % 4; i++) _nextBlock();
        vm.roll(block.number + blocks);
    }

    /// Every deadline passes, as many times as it takes: every deal that waits on one is
    /// settled by `timeout` (one call per silent mediator, audit or appeal round).
    function settleEverything() external {
        for (uint256 i = 0; i < recs.length; i++) {
            for (uint256 round = 0; round < 40; round++) {
                DcnDeals.State s = _state(recs[i].id);
                if (
                    s != DcnDeals.State.Created && s != DcnDeals.State.ResultSubmitted
                        && s != DcnDeals.State.Challenged && s != DcnDeals.State.Audited && s != DcnDeals.State.Appealed
                ) break;
                vm.warp(block.timestamp + 8 days);
                _nextBlock();
                _timeout(recs[i]);
            }
        }
    }
}

/// @notice Over random sequences of actions: the books equal the tokens held
///         (`booked == Σ (free + locked) + Σ bonds`, balance == booked + stray), every
///         account holds what the rules say, what is locked is what open deals hold, and
///         once every deadline has passed every deal settles with nothing locked.
contract DcnDealsInvariantTest is Test {
    DcnToken internal token;
    DcnDeals internal deals;
    DcnRegistry internal registry;
    DealsHandler internal handler;

    function setUp() public {
        vm.warp(1_700_000_000);
        vm.roll(1_000);
        token = new DcnToken(1_000_000_000 ether);
        DcnDeals.Params memory rules = DcnDeals.Params({
            minMediators: 1,
            minAuditPpm: 50_000,
            appealWindow: 1 days,
            minMediationFee: 1 ether,
            silenceSlash: 2 ether,
            minBond: 10 ether,
            appealFee: 3 ether
        });
        deals = new DcnDeals(token, rules);
        registry = new DcnRegistry();
        deals.setRegistry(IMediatorPool(address(registry)));
        handler = new DealsHandler(token, deals, registry, rules);
        // The handler owns DcnDeals (two steps): it skims.
        deals.transferOwnership(address(handler));
        vm.prank(address(handler));
        deals.acceptOwnership();
        token.transfer(address(handler), 100_000_000 ether);
        handler.init();
        // The pool: four of the deals' mediators (one unbonded), both pool-only mediators,
        // and actor 0 (a party to some deals, never drawn for them).
        for (uint256 i = 0; i < 4; i++) registry.setApproved(DcnRegistry.Role.Mediator, handler.mediatorSet(i * 4), true);
        registry.setApproved(DcnRegistry.Role.Mediator, handler.mediatorSet(16), true);
        registry.setApproved(DcnRegistry.Role.Mediator, handler.mediatorSet(17), true);
        registry.setApproved(DcnRegistry.Role.Mediator, handler.actors(0), true);
        targetContract(address(handler));
        // What a run calls: each deal action is reached through `step` (named three times,
        // and `create` twice, so that runs go deep), bond and misuse actions through one
        // dispatcher each. `settleEverything` runs after each run.
        bytes4[] memory selectors = new bytes4[](13);
        selectors[0] = DealsHandler.deposit.selector;
        selectors[1] = DealsHandler.depositWithPermit.selector;
        selectors[2] = DealsHandler.withdraw.selector;
        selectors[3] = DealsHandler.strayTokens.selector;
        selectors[4] = DealsHandler.bonds.selector;
        selectors[5] = DealsHandler.create.selector;
        selectors[6] = DealsHandler.step.selector;
        selectors[7] = DealsHandler.timeout.selector;
        selectors[8] = DealsHandler.passTime.selector;
        selectors[9] = DealsHandler.step.selector;
        selectors[10] = DealsHandler.misuse.selector;
        selectors[11] = DealsHandler.create.selector;
        selectors[12] = DealsHandler.step.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    function invariant_the_books_equal_the_tokens_held() public view {
        assertEq(deals.booked(), _books(), "booked == free + locked + bonds");
        assertEq(token.balanceOf(address(deals)), deals.booked() + handler.stray(), "tokens held == books + stray");
    }

    function invariant_every_account_holds_what_the_rules_say() public view {
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            (uint256 b, uint64 at) = deals.bondOf(accounts[i]);
            assertEq(f, handler.ghostFree(accounts[i]), "free escrow as the rules say");
            assertEq(l, handler.ghostLocked(accounts[i]), "locked escrow as the rules say");
            assertEq(b, handler.ghostBond(accounts[i]), "bond as the rules say");
            assertEq(at, handler.ghostUnbondAt(accounts[i]), "unbonding as the rules say");
        }
    }

    function invariant_what_is_locked_is_what_open_deals_hold() public view {
        uint256 open;
        for (uint256 i = 0; i < handler.recCount(); i++) {
            open += handler.lockedBy(i);
        }
        address[] memory accounts = handler.allAccounts();
        uint256 lockedSum;
        for (uint256 i = 0; i < accounts.length; i++) {
            (, uint256 l) = deals.escrowOf(accounts[i]);
            lockedSum += l;
        }
        assertEq(lockedSum, open, "locked == what open deals hold");
    }

    /// After each run: let every deadline pass; every deal must settle by `timeout` with
    /// nothing locked, and every account end with what the rules say.
    function afterInvariant() public {
        handler.settleEverything();
        for (uint256 i = 0; i < handler.recCount(); i++) {
            (DcnDeals.State s,,,,,) = deals.getDeal(handler.recId(i));
            assertTrue(
                s == DcnDeals.State.Accepted || s == DcnDeals.State.MediatedHonest
                    || s == DcnDeals.State.MediatedDishonest || s == DcnDeals.State.TimedOutNoResult
                    || s == DcnDeals.State.TimedOutAccepted || s == DcnDeals.State.TimedOutNoVerdict,
                "deal settled"
            );
        }
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            assertEq(l, 0, "nothing locked once all deadlines passed");
            assertEq(f, handler.ghostFree(accounts[i]), "every account ends with what the rules say");
        }
        assertEq(deals.booked(), _books(), "books after settling");
        assertEq(token.balanceOf(address(deals)), deals.booked() + handler.stray(), "tokens after settling");
    }

    /// A fixed campaign of 600 actions drawn from a seed: the ghost ledger must agree with
    /// the contract through every path the handler knows, and every path must be reached
    /// (random runs above go wider, this one is sure to go deep).
    function test_a_long_campaign_reaches_every_path_and_keeps_the_books() public {
        for (uint256 k = 0; k < 600; k++) {
            uint256 r = uint256(keccak256(abi.encode("campaign", k)));
            uint256 a = r >> 8;
            uint256 kind = r % 16;
            if (kind < 2) handler.create(a, a >> 3, a >> 16, a >> 40, a >> 64, a >> 80);
            else if (kind < 10) handler.step(a, a >> 16);
            else if (kind == 10) handler.passTime(a % 7 == 0 ? 4 hours + 300 : a);
            else if (kind == 11) handler.timeout(a);
            else if (kind == 12) handler.bonds(a, a >> 8, a >> 16);
            else if (kind == 13) handler.misuse(a, a >> 8, a >> 16);
            else if (kind == 14 && a % 2 == 0) handler.deposit(a, a >> 8);
            else if (kind == 14) handler.depositWithPermit(a, a >> 8, a >> 16);
            else handler.strayTokens(a);
            if (k % 50 == 0) {
                invariant_the_books_equal_the_tokens_held();
                invariant_every_account_holds_what_the_rules_say();
                invariant_what_is_locked_is_what_open_deals_hold();
            }
        }
        afterInvariant();
        string[16] memory paths = [
            "submit",
            "accept",
            "audited",
            "auditedHashGone",
            "challenge",
            "draw",
            "drawPostponed",
            "mediate",
            "mediateAudit",
            "appeal",
            "drawAppeal",
            "overturned",
            "upheld",
            "appealLapsed",
            "redraw",
            "timeoutNoVerdict"
        ];
        for (uint256 i = 0; i < paths.length; i++) {
            assertTrue(handler.count(paths[i]) > 0, string.concat("the campaign reaches ", paths[i]));
        }
    }

    function _books() internal view returns (uint256 sum) {
        address[] memory accounts = handler.allAccounts();
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            (uint256 b,) = deals.bondOf(accounts[i]);
            sum += f + l + b;
        }
    }
}


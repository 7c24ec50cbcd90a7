// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, Vm} from "./Test.sol";
import {DrawSpec} from "./DrawSpec.sol";
import {DcnToken} from "../../src/DcnToken.sol";
import {DcnDeals, IMediatorPool} from "../../src/DcnDeals.sol";
import {DcnRegistry} from "../../src/DcnRegistry.sol";

/// @notice A deal as a test holds it: its id, the `Terms` and `Case` every later call passes
///         back (kept in step with the contract by the fixture's helpers), and its mediators.
struct H {
    bytes32 id;
    DcnDeals.Terms t;
    DcnDeals.Case c;
    address[] ms;
}

/// @notice Token, deals contract under the network's `Params`, a registry whose approved
///         pool the appeals draw from, funded parties, bonded mediators, and helpers that
///         make signed deals and carry their terms and case from call to call. The draws
///         (audit, mediator, appeal mediator) are written out here on their own, from the
///         spec, so that a test can set the block hash that draws what it wants.
abstract contract DealsFixture is Test, DrawSpec {
    DcnToken internal token;
    DcnDeals internal deals;
    DcnRegistry internal registry;

    uint256 internal constant PROVIDER_KEY = 0xA11CE;
    uint256 internal constant OTHER_KEY = 0xB0B;
    address internal provider = vm.addr(PROVIDER_KEY);
    address internal other = vm.addr(OTHER_KEY);
    address internal jobCreator = address(0xC0FFEE);
    address internal mediator1 = address(0x3ED1);
    address internal mediator2 = address(0x3ED2);
    address internal mediator3 = address(0x3ED3);
    /// An approved, bonded mediator that no deal names: where appeals go.
    address internal poolMediator = address(0xA99E);
    address internal solver = address(0x5017);

    // The network's rules.
    uint8 internal constant MIN_MEDIATORS = 1;
    uint32 internal constant MIN_AUDIT_PPM = 10_000;
    uint32 internal constant APPEAL_WINDOW = 1 days;
    uint96 internal constant MIN_FEE = 1 ether;
    uint88 internal constant SILENCE_SLASH = 3 ether;
    uint96 internal constant MIN_BOND = 20 ether;
    uint96 internal constant APPEAL_FEE = 5 ether;

    // A deal's terms.
    uint256 internal constant PRICE = 100 ether;
    uint256 internal constant COLLATERAL = 50 ether;
    uint256 internal constant FEE = 10 ether;
    uint256 internal constant AUDIT_FEE = 8 ether;
    uint32 internal constant AUDIT_PPM = 100_000;
    uint64 internal constant RESULT_TIMEOUT = 1 hours;
    uint64 internal constant JUDGE_TIMEOUT = 30 minutes;
    uint64 internal constant MEDIATION_TIMEOUT = 2 hours;
    uint64 internal constant CREATE_WINDOW = 10 minutes;
    bytes32 internal constant JOB = keccak256("cowsay Message=moo");
    bytes32 internal constant RESULT = keccak256("result");

    uint256 internal constant FUNDS = 1_000 ether;
    /// Each mediator's bond: more than `MIN_BOND`, so that "up to `minBond`" shows.
    uint256 internal constant BOND = 30 ether;

    uint8 internal constant MEDIATOR_ROLE = uint8(DcnRegistry.Role.Mediator);

    uint256 private _nonce;

    function params() internal pure virtual returns (DcnDeals.Params memory) {
        return DcnDeals.Params({
            minMediators: MIN_MEDIATORS,
            minAuditPpm: MIN_AUDIT_PPM,
            appealWindow: APPEAL_WINDOW,
            minMediationFee: MIN_FEE,
            silenceSlash: SILENCE_SLASH,
            minBond: MIN_BOND,
            appealFee: APPEAL_FEE
        });
    }

    function setUp() public virtual {
        vm.warp(1_700_000_000);
        vm.roll(1_000);
        token = new DcnToken(1_000_000_000 ether);
        deals = new DcnDeals(token, params());
        registry = new DcnRegistry();
        deals.setRegistry(IMediatorPool(address(registry)));
        vm.label(provider, "provider");
        vm.label(jobCreator, "jobCreator");
        vm.label(mediator1, "mediator1");
        vm.label(mediator2, "mediator2");
        vm.label(mediator3, "mediator3");
        vm.label(poolMediator, "poolMediator");
        _fundAndBond();
        // The pool also holds a deal's usual mediator: an appeal must pass over the one
        // whose verdict it judges.
        registry.setApproved(DcnRegistry.Role.Mediator, mediator1, true);
        registry.setApproved(DcnRegistry.Role.Mediator, poolMediator, true);
    }

    /// A network under the rules `p` in place of `setUp`'s (a deployment fixes its rules):
    /// a new deals contract on the same token and registry, the parties funded and the
    /// mediators bonded as `setUp` did.
    function redeploy(DcnDeals.Params memory p) internal {
        deals = new DcnDeals(token, p);
        deals.setRegistry(IMediatorPool(address(registry)));
        _fundAndBond();
    }

    function _fundAndBond() private {
        fund(jobCreator, FUNDS);
        fund(provider, FUNDS);
        bond(mediator1, BOND);
        bond(mediator2, BOND);
        bond(mediator3, BOND);
        bond(poolMediator, BOND);
    }

    // ─── money ───

    /// Gives `who` `amount` tokens and deposits them into its escrow.
    function fund(address who, uint256 amount) internal {
        token.transfer(who, amount);
        vm.startPrank(who);
        token.approve(address(deals), amount);
        deals.deposit(amount);
        vm.stopPrank();
    }

    /// `m` deposits `amount` and posts all of it as its bond.
    function bond(address m, uint256 amount) internal {
        fund(m, amount);
        vm.prank(m);
        deals.postBond(amount);
    }

    function free(address who) internal view returns (uint256 f) {
        (f,) = deals.escrowOf(who);
    }

    function locked(address who) internal view returns (uint256 l) {
        (, l) = deals.escrowOf(who);
    }

    function bondOf(address who) internal view returns (uint256 b) {
        (b,) = deals.bondOf(who);
    }

    // ─── deals ───

    function mediators1() internal view returns (address[] memory m) {
        m = new address[](1);
        m[0] = mediator1;
    }

    function mediators2() internal view returns (address[] memory m) {
        m = new address[](2);
        m[0] = mediator1;
        m[1] = mediator2;
    }

    function mediators3() internal view returns (address[] memory m) {
        m = new address[](3);
        m[0] = mediator1;
        m[1] = mediator2;
        m[2] = mediator3;
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
            auditFee: AUDIT_FEE,
            auditPpm: AUDIT_PPM,
            resultTimeout: RESULT_TIMEOUT,
            judgeTimeout: JUDGE_TIMEOUT,
            mediationTimeout: MEDIATION_TIMEOUT,
            createDeadline: uint64(block.timestamp + CREATE_WINDOW),
            jobHash: JOB,
            nonce: ++_nonce
        });
    }

    function sign(DcnDeals.Deal memory deal, uint256 key) internal view returns (bytes memory) {
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(key, deals.dealId(deal));
        return abi.encodePacked(r, s, v);
    }

    /// Creates `deal` (signed by the provider's key, sent by its job creator).
    function create(DcnDeals.Deal memory deal) internal returns (H memory h) {
        bytes memory sig = sign(deal, PROVIDER_KEY);
        vm.prank(deal.jobCreator);
        h.id = deals.createDeal(deal, sig);
        h.t = deals.termsOf(deal);
        h.ms = deal.mediators;
    }

    /// The provider submits `RESULT` in a block whose hash draws no audit; one block passes.
    function submit(H memory h) internal {
        submitWith(h, RESULT, false);
    }

    /// The provider submits `RESULT` in a block whose hash draws an audit.
    function submitAudited(H memory h) internal {
        submitWith(h, RESULT, true);
    }

    function submitWith(H memory h, bytes32 result, bool audited) internal {
        vm.prank(h.t.provider);
        deals.submitResult(h.id, h.t, result);
        h.c.resultHash = result;
        steerAudit(h, audited);
        vm.roll(block.number + 1);
    }

    function createAndSubmit(DcnDeals.Deal memory deal) internal returns (H memory h) {
        h = create(deal);
        submit(h);
    }

    function accept(H memory h) internal returns (DcnDeals.State to) {
        vm.prank(h.t.jobCreator);
        to = deals.acceptResult(h.id, h.t, h.c);
    }

    function challenge(H memory h) internal {
        vm.prank(h.t.jobCreator);
        deals.challenge(h.id, h.t, h.c);
    }

    /// Draws the current round's mediator (from the block after the round's), keeping the
    /// case's excluded set as the contract updates it.
    function draw(H memory h) internal returns (address m) {
        if (block.number <= mark(h.id)) vm.roll(mark(h.id) + 1);
        vm.recordLogs();
        m = deals.draw(h.id, h.t, h.c, h.ms);
        _sync(h);
    }

    /// The round's drawn mediator.
    function drawnOf(H memory h) internal view returns (address) {
        uint8 i = drawnIndex(h.id);
        return i == 0 ? address(0) : h.ms[i - 1];
    }

    /// The drawn mediator rules.
    function mediate(H memory h, bool honest) internal {
        address m = drawnOf(h);
        vm.prank(m);
        deals.mediate(h.id, h.t, h.c, h.ms, honest);
        h.c.ruledBy = m;
    }

    function appeal(H memory h, address who) internal {
        vm.prank(who);
        deals.appeal(h.id, h.t, h.c);
    }

    function drawAppeal(H memory h) internal returns (address m) {
        if (block.number <= mark(h.id)) vm.roll(mark(h.id) + 1);
        m = deals.drawAppeal(h.id, h.t, h.c);
        h.c.appealMediator = m;
    }

    function ruleAppeal(H memory h, bool honest) internal {
        vm.prank(h.c.appealMediator);
        deals.ruleAppeal(h.id, h.t, h.c, honest);
    }

    /// Anyone calls `timeout`, keeping the case in step.
    function timeout(H memory h) internal {
        vm.recordLogs();
        deals.timeout(h.id, h.t, h.c, h.ms);
        _sync(h);
    }

    /// Moves time past the deal's current deadline.
    function pastDeadline(H memory h) internal {
        vm.warp(uint256(deadline(h.id)) + 1);
    }

    // The excluded set grows by `MediatorMissed`; an appeal's case comes whole in `AppealDrawn`.
    function _sync(H memory h) private {
        Vm.Log[] memory logs = vm.getRecordedLogs();
        for (uint256 i = 0; i < logs.length; i++) {
            Vm.Log memory l = logs[i];
            if (l.emitter != address(deals) || l.topics.length < 2 || l.topics[1] != h.id) continue;
            if (l.topics[0] == DcnDeals.MediatorMissed.selector) h.c.excluded = abi.decode(l.data, (uint16));
        }
    }

    /// Copies of terms and a case to tamper with (a memory struct assigned is not copied).
    function copy(DcnDeals.Terms memory t) internal pure returns (DcnDeals.Terms memory) {
        return abi.decode(abi.encode(t), (DcnDeals.Terms));
    }

    function copy(DcnDeals.Case memory c) internal pure returns (DcnDeals.Case memory) {
        return abi.decode(abi.encode(c), (DcnDeals.Case));
    }

    // ─── reading a deal ───

    function state(bytes32 id) internal view returns (DcnDeals.State s) {
        (s,,,,,) = deals.getDeal(id);
    }

    function deadline(bytes32 id) internal view returns (uint64 d) {
        (, d,,,,) = deals.getDeal(id);
    }

    function mark(bytes32 id) internal view returns (uint64 m) {
        (,, m,,,) = deals.getDeal(id);
    }

    function drawnIndex(bytes32 id) internal view returns (uint8 i) {
        (,,, i,,) = deals.getDeal(id);
    }

    function flags(bytes32 id) internal view returns (uint8 f) {
        (,,,, f,) = deals.getDeal(id);
    }

    function assertState(bytes32 id, DcnDeals.State expected) internal view {
        assertEq(uint256(state(id)), uint256(expected), "deal state");
    }

    /// The terms and case the test carries are the ones the deal committed to.
    function assertCommitted(H memory h) internal view {
        deals.verify(h.id, h.t, h.c);
    }

    // ─── block hashes that draw what a test wants (the draws: `DrawSpec`) ───

    /// A block hash that draws (or not) an audit of deal `id` at chance `ppm`.
    function auditHash(bytes32 id, uint32 ppm, bool audited) internal pure returns (bytes32 bh) {
        for (uint256 i = 0; i < 100_000; i++) {
            bh = keccak256(abi.encode("audit block", id, i));
            if ((auditRoll(bh, id) < ppm) == audited) return bh;
        }
        revert("no such block hash");
    }

    function drawHash(bytes32 id, uint16 excluded, uint256 n, uint256 want) internal pure returns (bytes32 bh) {
        for (uint256 i = 0; i < 10_000; i++) {
            bh = keccak256(abi.encode("draw block", id, excluded, i));
            if (pickOf(bh, id, excluded, n) == want) return bh;
        }
        revert("no such block hash");
    }

    /// A block hash whose appeal draw looks first at pool index `first`, then at `second`.
    function appealHash(bytes32 id, uint256 n, uint256 first, uint256 second) internal pure returns (bytes32 bh) {
        for (uint256 i = 0; i < 10_000; i++) {
            bh = keccak256(abi.encode("appeal block", id, i));
            if (appealPick(bh, id, 0, n) == first && appealPick(bh, id, 1, n) == second) return bh;
        }
        revert("no such block hash");
    }

    /// Sets the hash of the deal's draw block (its `mark`) so that the audit is (not) drawn.
    function steerAudit(H memory h, bool audited) internal {
        vm.setBlockhash(mark(h.id), auditHash(h.id, h.t.auditPpm, audited));
    }

    /// Sets the hash of the current round's block so that it draws the deal's mediator `want`.
    function steerDraw(H memory h, uint256 want) internal {
        vm.setBlockhash(mark(h.id), drawHash(h.id, h.c.excluded, h.ms.length, want));
    }

    /// Sets the hash of the appeal's block so that its draw looks at pool index `first`,
    /// then `second`.
    function steerAppeal(H memory h, uint256 first, uint256 second) internal {
        uint256 n = registry.approvedCount(DcnRegistry.Role.Mediator);
        vm.setBlockhash(mark(h.id), appealHash(h.id, n, first, second));
    }

    /// Pool index of `m` (the registry's approved mediators).
    function poolIndex(address m) internal view returns (uint256) {
        uint256 n = registry.approvedCount(DcnRegistry.Role.Mediator);
        for (uint256 i = 0; i < n; i++) {
            if (registry.approvedAt(DcnRegistry.Role.Mediator, i) == m) return i;
        }
        revert("not in the pool");
    }

    // ─── paths ───

    /// A challenged deal whose mediator is drawn; returns it.
    function challengeAndDraw(H memory h) internal returns (address) {
        challenge(h);
        return draw(h);
    }

    /// A deal with a verdict: created, submitted, challenged, drawn and ruled.
    function mediated(bool honest) internal returns (H memory h) {
        h = createAndSubmit(newDeal());
        challengeAndDraw(h);
        mediate(h, honest);
    }

    /// The loser of `h`'s verdict appeals; the appeal's draw goes to `poolMediator`.
    function appealToPool(H memory h) internal returns (address appellant) {
        appellant = state(h.id) == DcnDeals.State.MediatedHonest ? h.t.jobCreator : h.t.provider;
        appeal(h, appellant);
        steerAppeal(h, poolIndex(poolMediator), poolIndex(poolMediator));
        assertEq(drawAppeal(h), poolMediator, "the appeal goes to the pool mediator");
    }
}

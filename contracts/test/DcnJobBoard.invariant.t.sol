// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test, Vm} from "./utils/Test.sol";
import {DcnToken} from "../src/DcnToken.sol";
import {DcnDeals, IMediatorPool} from "../src/DcnDeals.sol";
import {DcnRegistry} from "../src/DcnRegistry.sol";
import {DcnJobBoard, IDcnJobClient} from "../src/DcnJobBoard.sol";
import {CowsayClient} from "../src/examples/CowsayClient.sol";

/// A requester contract whose callback always reverts: its deliveries must go through anyway.
contract RevertingRequester is IDcnJobClient {
    DcnJobBoard public immutable board;

    constructor(DcnJobBoard board_) {
        board = board_;
    }

    function ask(bytes32 jobHash, uint256 payment, uint64 timeout) external returns (uint256) {
        board.token().approve(address(board), payment);
        return board.requestJob("sleep", new string[](0), jobHash, payment, timeout);
    }

    function onJobResult(uint256, bytes32, bytes32) external pure {
        revert("requester broke");
    }
}

/// @notice Drives a `DcnJobBoard` on a real `DcnDeals` with random actions: four requesters
///         (the example `CowsayClient`, a contract whose callback reverts, two plain accounts)
///         ask for jobs of a small set of job hashes; the operator buys deals through
///         DcnDeals (now and then with itself as provider, or of another job than the
///         request's; now and then another account buys one), moves them through their whole
///         life (submit, accept with audits at the deal's chance, challenge, draw, verdicts
///         honest or not, appeals upheld, overturned or lapsed, every timeout), claims
///         requests with them and delivers; anyone asks for refunds; time and blocks move.
///         A ghost applies the board's rules on its own (from what the handler did to each
///         deal, not from the board) and says of every claim, delivery and refund whether it
///         must succeed; the board must agree, and a refused call must change nothing.
contract JobBoardHandler is Test {
    DcnToken public immutable token;
    DcnDeals public immutable deals;
    DcnRegistry public immutable registry;
    DcnJobBoard public immutable board;
    CowsayClient public immutable client;
    RevertingRequester public immutable broken;

    uint256 internal constant MIN_PAYMENT = 1 ether;
    uint64 internal constant MIN_TIMEOUT = 10 minutes;
    uint256 internal constant OP_KEY = 0x0B0A;
    uint256[2] internal providerKeys = [uint256(0xB1), 0xB2];
    address public immutable operator;
    address[2] public providers;
    /// Buys deals of its own: the board must refuse them.
    address public constant OTHER_CREATOR = address(0xC1C1);
    address public constant STRANGER = address(0x5757);
    /// Requesters: 0 the example client, 1 the reverting contract, 2-3 plain accounts.
    address[4] public requesters;
    /// 0-2: the mediators deals name; 3-4: approved in the pool only.
    address[5] public mediators;
    bytes32[3] public jobs;
    DcnDeals.Params internal rules;

    /// The tokens each requester and the operator hold, by the ghost.
    mapping(address => uint256) public ghostTokens;
    /// Sum of the payments of requests neither delivered nor refunded, by the ghost.
    uint256 public heldPayments;

    enum Pay {
        InFlight,
        Paid,
        Unpaid
    }

    /// A deal as the handler carries it, and what the ghost knows of its ending.
    struct Rec {
        bytes32 id;
        DcnDeals.Terms t;
        DcnDeals.Case c;
        address[] ms;
        Pay pay;
        /// An appeal overturned its verdict.
        bool overturned;
        /// The request the board took it for (0: none).
        uint256 usedBy;
    }

    enum St {
        None,
        Open,
        Delivered,
        Refunded
    }

    /// A request as the ghost has it; `reqs[i]` is request i + 1.
    struct Req {
        address requester;
        uint256 payment;
        uint64 deadline;
        bytes32 jobHash;
        St status;
        /// 1 + the index of its claimed deal (0: unclaimed).
        uint256 deal;
    }

    Rec[] internal recs;
    Req[] internal reqs;
    mapping(bytes32 => uint256) public recOf;
    uint256 internal nonce;
    uint256 internal entropy;
    /// How often each path ran (by name), to see what a campaign reached.
    mapping(string => uint256) public count;
    bool internal initialized;

    constructor(DcnToken token_, DcnDeals deals_, DcnRegistry registry_, DcnDeals.Params memory rules_) {
        token = token_;
        deals = deals_;
        registry = registry_;
        rules = rules_;
        operator = vm.addr(OP_KEY);
        providers[0] = vm.addr(providerKeys[0]);
        providers[1] = vm.addr(providerKeys[1]);
        board = new DcnJobBoard(token_, deals_, operator, MIN_PAYMENT, MIN_TIMEOUT);
        client = new CowsayClient(board, MIN_PAYMENT);
        broken = new RevertingRequester(board);
        requesters = [address(client), address(broken), address(0xA11CE), address(0xB0B)];
        for (uint256 i = 0; i < 5; i++) mediators[i] = address(uint160(0x3E00 + i));
        jobs = [keccak256("cowsay Message=moo"), keccak256("cowsay Message=baa"), keccak256("sleep Seconds=1")];
    }

    /// Funds the parties' escrow and bonds every mediator deeply (no draw ever passes over
    /// one), once the handler has tokens.
    function init() external {
        if (initialized) return;
        initialized = true;
        _deposit(operator, 5_000 ether);
        _deposit(OTHER_CREATOR, 1_000 ether);
        _deposit(providers[0], 1_000 ether);
        _deposit(providers[1], 1_000 ether);
        for (uint256 i = 0; i < 5; i++) {
            _deposit(mediators[i], 1_000 ether);
            vm.prank(mediators[i]);
            deals.postBond(1_000 ether);
        }
    }

    // ─── helpers ───

    /// Tokens into `a`'s escrow: its wallet is unchanged.
    function _deposit(address a, uint256 amount) internal {
        token.transfer(a, amount);
        vm.startPrank(a);
        token.approve(address(deals), amount);
        deals.deposit(amount);
        vm.stopPrank();
    }

    /// Tops up `a`'s free escrow to `amount`.
    function _ensureFree(address a, uint256 amount) internal {
        (uint256 f,) = deals.escrowOf(a);
        if (f < amount) _deposit(a, amount - f);
    }

    function _deal(bytes32 id) internal view returns (DcnDeals.State s, uint64 deadline, uint64 mark, uint8 drawn, uint8 flags) {
        (s, deadline, mark, drawn, flags,) = deals.getDeal(id);
    }

    function _state(bytes32 id) internal view returns (DcnDeals.State s) {
        (s,,,,,) = deals.getDeal(id);
    }

    /// Moves to the next block, sealing this one with a hash of its own.
    function _nextBlock() internal {
        vm.setBlockhash(block.number, keccak256(abi.encode("block", entropy++)));
        vm.roll(block.number + 1);
    }

    function _committed(Rec storage r) internal view {
        deals.verify(r.id, r.t, r.c);
    }

    // ─── the ghost's rules ───

    /// The deal paid its provider for a result that stands.
    function _deliverable(Rec storage r) internal view returns (bool) {
        return r.pay == Pay.Paid && !r.overturned;
    }

    /// The deal's money is settled and no result of it stands.
    function _failed(Rec storage r) internal view returns (bool) {
        return r.pay != Pay.InFlight && !_deliverable(r);
    }

    /// Why taking deal `r` for request `q` is refused ("" if it is not).
    function _takeRefusal(Req storage q, Rec storage r) internal view returns (string memory) {
        if (r.usedBy != 0) return "used";
        if (r.t.jobCreator != operator) return "notOperators";
        if (r.t.provider == operator) return "operatorIsProvider";
        if (r.t.jobHash != q.jobHash) return "wrongJob";
        return "";
    }

    function _claimRefusal(Req storage q, Rec storage r) internal view returns (string memory) {
        if (q.status != St.Open) return "notOpen";
        if (block.timestamp > q.deadline) return "late";
        if (q.deal != 0 && !_failed(recs[q.deal - 1])) return "inFlight";
        return _takeRefusal(q, r);
    }

    function _deliverRefusal(Req storage q, uint256 di) internal view returns (string memory) {
        Rec storage r = recs[di];
        if (q.status != St.Open) return "notOpen";
        if (r.c.resultHash == 0) return "noResult";
        if (q.deal == 0) {
            if (block.timestamp > q.deadline) return "late";
            string memory why = _takeRefusal(q, r);
            if (bytes(why).length != 0) return why;
        } else {
            if (q.deal != di + 1) return "wrongDeal";
            if (block.timestamp > q.deadline + board.DELIVERY_GRACE()) return "lateInGrace";
        }
        if (!_deliverable(r)) return "notPaid";
        return "";
    }

    function _refundRefusal(Req storage q) internal view returns (string memory) {
        if (q.status != St.Open) return "notOpen";
        if (block.timestamp <= q.deadline) return "early";
        if (q.deal != 0 && !_failed(recs[q.deal - 1])) {
            if (recs[q.deal - 1].pay == Pay.InFlight) return "inFlight";
            if (block.timestamp <= q.deadline + board.DELIVERY_GRACE()) return "inGrace";
        }
        return "";
    }

    // ─── requests ───

    /// A requester asks for a job of the set; one request in eleven pays too little or
    /// gives too little or too much time, and is refused.
    function request(uint256 who, uint256 job, uint256 payment, uint256 time) external {
        uint256 w = who % 4;
        address a = requesters[w];
        bytes32 jh = jobs[job % 3];
        if (payment % 11 == 0) return _badRequest(a, jh, payment, time);
        payment = bound(payment, MIN_PAYMENT, 50 ether);
        // Half the requests give up to 3 hours, half up to 3 days.
        uint64 to = uint64(bound(time, MIN_TIMEOUT, (time >> 128) % 2 == 0 ? 3 hours : 3 days));
        token.transfer(a, payment);
        ghostTokens[a] += payment;
        uint256 id;
        if (w == 0) {
            client.setPrice(payment);
            to = client.timeout();
            id = client.runCowsay("moo", jh);
        } else if (w == 1) {
            id = broken.ask(jh, payment, to);
        } else {
            string[] memory inputs = new string[](time % 3);
            for (uint256 i = 0; i < inputs.length; i++) inputs[i] = string.concat("K", vm.toString(i), "=v");
            vm.startPrank(a);
            token.approve(address(board), payment);
            id = board.requestJob(job % 2 == 0 ? "cowsay" : "sleep", inputs, jh, payment, to);
            vm.stopPrank();
        }
        ghostTokens[a] -= payment;
        assertEq(id, reqs.length + 1, "request ids count up");
        reqs.push(Req(a, payment, uint64(block.timestamp) + to, jh, St.Open, 0));
        heldPayments += payment;
        count["request"]++;
    }

    function _badRequest(address a, bytes32 jh, uint256 payment, uint256 time) internal {
        uint256 mode = (payment >> 8) % 3;
        uint64 to = uint64(bound(time, MIN_TIMEOUT, 2 days));
        if (mode == 0) to = uint64(bound(time, 0, MIN_TIMEOUT - 1));
        else if (mode == 1) to = uint64(bound(time, 30 days + 1, 60 days));
        payment = mode == 2 ? bound(payment, 0, MIN_PAYMENT - 1) : MIN_PAYMENT;
        vm.startPrank(a);
        token.approve(address(board), payment);
        vm.expectRevert();
        board.requestJob("cowsay", new string[](0), jh, payment, to);
        vm.stopPrank();
        count["requestRefused"]++;
    }

    // ─── deals ───

    /// The operator (one deal in eight: another account) buys a deal, most often of an
    /// existing request's job; one in six has the operator as its provider. Half the
    /// deals are then claimed for a request at once.
    function buy(uint256 who, uint256 jobSeed, uint256 amounts, uint256 t, uint256 claimSeed) external {
        address jc = who % 8 == 0 ? OTHER_CREATOR : operator;
        uint256 pk = who % 6 == 1 ? OP_KEY : providerKeys[(who >> 8) % 2];
        uint256 qi = reqs.length == 0 ? 0 : _pickReq(claimSeed >> 1);
        bytes32 jh = reqs.length != 0 && jobSeed % 4 != 0 ? reqs[qi].jobHash : jobs[jobSeed % 3];
        uint256 di = _buy(jc, pk, jh, amounts, t);
        if (claimSeed % 2 == 0 && reqs.length != 0) _claim(qi, di, operator);
    }

    function _buy(address jc, uint256 pk, bytes32 jh, uint256 amounts, uint256 t) internal returns (uint256) {
        DcnDeals.Deal memory d = _newDeal(jc, vm.addr(pk), jh, amounts, t);
        _ensureFree(jc, d.price + d.auditFee + (jc == d.provider ? d.collateral : 0));
        if (jc != d.provider) _ensureFree(d.provider, d.collateral);
        (uint8 v, bytes32 r, bytes32 s) = vm.sign(pk, deals.dealId(d));
        vm.prank(jc);
        bytes32 id = deals.createDeal(d, abi.encodePacked(r, s, v));
        Rec storage rec = recs.push();
        rec.id = id;
        rec.t = deals.termsOf(d);
        rec.ms = d.mediators;
        recOf[id] = recs.length;
        _committed(rec);
        count["buy"]++;
        return recs.length - 1;
    }

    /// The operator serves a request as its service would: with the deal it claimed if
    /// that one has not failed, else a new deal of the request's job from a provider,
    /// claimed (if the board takes it); the deal moves up to four steps on, and the
    /// operator tries to deliver with it.
    function serve(uint256 reqSeed, uint256 amounts, uint256 t, uint256 choice) external {
        if (reqs.length == 0) return;
        uint256 qi = _pickReq(reqSeed);
        Req storage q = reqs[qi];
        uint256 di;
        if (q.deal != 0 && !_failed(recs[q.deal - 1])) {
            di = q.deal - 1;
        } else {
            di = _buy(operator, providerKeys[choice % 2], q.jobHash, amounts, t);
            _claim(qi, di, operator);
        }
        if (_movable(di) == di) {
            for (uint256 k = 0; k < 4; k++) {
                _step(di, uint256(keccak256(abi.encode(choice, k))));
            }
        }
        // One time in four the service goes down before it delivers.
        if ((choice >> 8) % 4 != 0) _deliver(qi, di, operator);
        count["serve"]++;
    }

    function _newDeal(address jc, address provider, bytes32 jh, uint256 amounts, uint256 t)
        internal
        returns (DcnDeals.Deal memory d)
    {
        t = uint256(keccak256(abi.encode(t)));
        amounts = uint256(keccak256(abi.encode(amounts)));
        uint256 n = 1 + t % 3;
        address[] memory ms = new address[](n);
        for (uint256 i = 0; i < n; i++) ms[i] = mediators[(i + (t >> 8)) % 3];
        uint256 fee = rules.minMediationFee + amounts % 3 ether;
        uint256 auditFee = rules.minMediationFee + (amounts >> 64) % 3 ether;
        d.jobCreator = jc;
        d.provider = provider;
        d.solver = address(0x5017);
        d.mediators = ms;
        d.price = (amounts >> 128) % 20 ether;
        d.collateral = (fee > auditFee ? fee : auditFee) + (amounts >> 192) % 10 ether;
        d.mediationFee = fee;
        d.auditFee = auditFee;
        // Half the deals at the least audit chance, the rest at any.
        d.auditPpm = uint32((t >> 16) % 2 == 0 ? rules.minAuditPpm : bound(t >> 24, rules.minAuditPpm, 1_000_000));
        d.resultTimeout = uint64(bound(t >> 64, 1, 6 hours));
        d.judgeTimeout = uint64(bound(t >> 96, 1, 6 hours));
        d.mediationTimeout = uint64(bound(t >> 128, 1, 6 hours));
        d.createDeadline = uint64(block.timestamp);
        d.jobHash = jh;
        d.nonce = ++nonce;
    }

    /// Moves a deal that can still move, from `which` on, up to four steps along a path
    /// `choice` picks.
    function step(uint256 which, uint256 choice) external {
        uint256 i = _movable(which);
        if (i == type(uint256).max) return;
        for (uint256 k = 0; k < 4; k++) {
            _step(i, uint256(keccak256(abi.encode(choice, k))));
        }
    }

    function _movable(uint256 which) internal view returns (uint256) {
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
        bool mediated = s == DcnDeals.State.MediatedHonest || s == DcnDeals.State.MediatedDishonest;
        if (choice % 8 == 0 && !mediated) {
            // One step in eight lets the deadline pass.
            if (block.timestamp <= deadline) vm.warp(uint256(deadline) + 1);
            _timeout(i);
        } else if (s == DcnDeals.State.Created) {
            _submit(i, keccak256(abi.encode("result", choice)));
        } else if (s == DcnDeals.State.ResultSubmitted) {
            if (choice % 6 == 2) vm.roll(block.number + 257); // judged after its block hash is gone
            if (choice % 2 == 0) _accept(i);
            else _challenge(i);
        } else if (s == DcnDeals.State.Challenged || s == DcnDeals.State.Audited) {
            if (drawn == 0) _draw(i);
            else _mediate(i, choice % 3 != 0);
        } else if (mediated) {
            if (flags & 4 == 0 && choice % 3 != 0) _appeal(i);
        } else if (s == DcnDeals.State.Appealed) {
            if (r.c.appealMediator == address(0)) _drawAppeal(i);
            else _ruleAppeal(i, choice % 2 == 0);
        }
    }

    function _submit(uint256 i, bytes32 result) internal {
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline,,,) = _deal(r.id);
        if (s != DcnDeals.State.Created || block.timestamp > deadline) return;
        vm.prank(r.t.provider);
        deals.submitResult(r.id, r.t, result);
        r.c.resultHash = result;
        _nextBlock();
        _committed(r);
        count["submit"]++;
    }

    function _accept(uint256 i) internal {
        Rec storage r = recs[i];
        (DcnDeals.State s,, uint64 mark,,) = _deal(r.id);
        if (s != DcnDeals.State.ResultSubmitted) return;
        if (block.number <= mark) _nextBlock();
        vm.prank(r.t.jobCreator);
        DcnDeals.State to = deals.acceptResult(r.id, r.t, r.c);
        if (to == DcnDeals.State.Accepted) {
            r.pay = Pay.Paid;
            count["accepted"]++;
        } else {
            count[to == DcnDeals.State.Audited ? "audited" : "auditPostponed"]++;
        }
    }

    function _challenge(uint256 i) internal {
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline,,,) = _deal(r.id);
        if (s != DcnDeals.State.ResultSubmitted || block.timestamp > deadline) return;
        _ensureFree(r.t.jobCreator, r.t.mediationFee);
        vm.prank(r.t.jobCreator);
        deals.challenge(r.id, r.t, r.c);
        count["challenge"]++;
    }

    function _draw(uint256 i) internal {
        Rec storage r = recs[i];
        (,, uint64 mark, uint8 drawn,) = _deal(r.id);
        if (drawn != 0) return;
        if (block.number <= mark) _nextBlock();
        deals.draw(r.id, r.t, r.c, r.ms);
        _committed(r); // every mediator is bonded: nobody is passed over
        count["draw"]++;
    }

    function _mediate(uint256 i, bool honest) internal {
        Rec storage r = recs[i];
        (, uint64 deadline,, uint8 drawn,) = _deal(r.id);
        if (drawn == 0 || block.timestamp > deadline) return;
        address m = r.ms[drawn - 1];
        vm.prank(m);
        deals.mediate(r.id, r.t, r.c, r.ms, honest);
        r.c.ruledBy = m;
        r.pay = honest ? Pay.Paid : Pay.Unpaid;
        _committed(r);
        count[honest ? "mediatedHonest" : "mediatedDishonest"]++;
    }

    function _appeal(uint256 i) internal {
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline,,, uint8 flags) = _deal(r.id);
        if (flags & 4 != 0 || block.timestamp > deadline) return;
        address loser = s == DcnDeals.State.MediatedHonest ? r.t.jobCreator : r.t.provider;
        _ensureFree(loser, rules.appealFee);
        vm.prank(loser);
        deals.appeal(r.id, r.t, r.c);
        count["appeal"]++;
    }

    function _drawAppeal(uint256 i) internal {
        Rec storage r = recs[i];
        (, uint64 deadline, uint64 mark,,) = _deal(r.id);
        if (r.c.appealMediator != address(0) || block.timestamp > deadline) return;
        if (block.number <= mark) _nextBlock();
        address got = deals.drawAppeal(r.id, r.t, r.c);
        if (got != address(0)) {
            r.c.appealMediator = got;
            count["drawAppeal"]++;
        }
        _committed(r);
    }

    function _ruleAppeal(uint256 i, bool honest) internal {
        Rec storage r = recs[i];
        (, uint64 deadline,,, uint8 flags) = _deal(r.id);
        address am = r.c.appealMediator;
        if (am == address(0) || block.timestamp > deadline) return;
        vm.prank(am);
        deals.ruleAppeal(r.id, r.t, r.c, honest);
        if (honest != (flags & 1 != 0)) {
            r.overturned = true;
            count[honest ? "overturnedDishonest" : "overturnedHonest"]++;
        } else {
            count["upheld"]++;
        }
    }

    function timeout(uint256 which) external {
        if (recs.length == 0) return;
        _timeout(which % recs.length);
    }

    // `timeout` of deal `i` if its deadline has passed and it waits on one.
    function _timeout(uint256 i) internal {
        Rec storage r = recs[i];
        (DcnDeals.State s, uint64 deadline, uint64 mark,,) = _deal(r.id);
        if (block.timestamp <= deadline) return;
        if (s == DcnDeals.State.Created) {
            deals.timeout(r.id, r.t, r.c, r.ms);
            r.pay = Pay.Unpaid;
            count["timeoutNoResult"]++;
        } else if (s == DcnDeals.State.ResultSubmitted) {
            if (block.number <= mark) _nextBlock();
            deals.timeout(r.id, r.t, r.c, r.ms);
            DcnDeals.State to = _state(r.id);
            if (to == DcnDeals.State.TimedOutAccepted) {
                r.pay = Pay.Paid;
                count["timeoutAccepted"]++;
            } else {
                count[to == DcnDeals.State.Audited ? "timeoutAudited" : "auditPostponed"]++;
            }
        } else if (s == DcnDeals.State.Challenged || s == DcnDeals.State.Audited) {
            vm.recordLogs();
            deals.timeout(r.id, r.t, r.c, r.ms);
            Vm.Log[] memory logs = vm.getRecordedLogs();
            for (uint256 k = 0; k < logs.length; k++) {
                if (logs[k].topics[0] == DcnDeals.MediatorMissed.selector && logs[k].topics[1] == r.id) {
                    r.c.excluded = abi.decode(logs[k].data, (uint16));
                }
            }
            _committed(r);
            if (_state(r.id) == DcnDeals.State.TimedOutNoVerdict) {
                r.pay = Pay.Paid;
                count["timeoutNoVerdict"]++;
            } else {
                count["redraw"]++;
            }
        } else if (s == DcnDeals.State.Appealed) {
            deals.timeout(r.id, r.t, r.c, r.ms);
            count["appealLapsed"]++;
        }
    }

    // ─── the board ───

    /// Three times in four an open request from `seed` on (one still in time or claimed,
    /// if there is one); else any.
    function _pickReq(uint256 seed) internal view returns (uint256) {
        uint256 n = reqs.length;
        if (seed % 4 == 0) return (seed >> 2) % n;
        uint256 open = type(uint256).max;
        for (uint256 k = 0; k < n; k++) {
            uint256 i = ((seed >> 2) % n + k) % n;
            Req storage q = reqs[i];
            if (q.status != St.Open) continue;
            if (q.deal != 0 || block.timestamp <= q.deadline) return i;
            if (open == type(uint256).max) open = i;
        }
        return open != type(uint256).max ? open : (seed >> 2) % n;
    }

    /// An open claimed request from `seed` on, half the time (if there is one); else as
    /// `_pickReq`.
    function _pickClaimed(uint256 seed) internal view returns (uint256) {
        uint256 n = reqs.length;
        if (seed % 2 == 0) {
            for (uint256 k = 0; k < n; k++) {
                uint256 i = ((seed >> 1) % n + k) % n;
                if (reqs[i].status == St.Open && reqs[i].deal != 0) return i;
            }
        }
        return _pickReq(seed >> 1);
    }

    /// A deal for request `q`: its claimed one (three times in four, if it has one), else
    /// one of its job not yet used (half the time), else any.
    function _pickDeal(Req storage q, uint256 seed) internal view returns (uint256) {
        uint256 n = recs.length;
        if (q.deal != 0 && seed % 4 != 0) return q.deal - 1;
        if ((seed >> 2) % 2 == 0) {
            for (uint256 k = 0; k < n; k++) {
                uint256 i = ((seed >> 3) % n + k) % n;
                if (recs[i].t.jobHash == q.jobHash && recs[i].usedBy == 0) return i;
            }
        }
        return (seed >> 3) % n;
    }

    /// Someone (the operator, one time in eight another) claims a request with a deal.
    function claim(uint256 reqSeed, uint256 dealSeed, uint256 who) external {
        if (reqs.length == 0 || recs.length == 0) return;
        uint256 qi = _pickReq(reqSeed);
        _claim(qi, _pickDeal(reqs[qi], dealSeed), who % 8 == 0 ? _notOperator(who) : operator);
    }

    function _notOperator(uint256 who) internal view returns (address) {
        uint256 k = (who >> 3) % 3;
        return k == 0 ? STRANGER : k == 1 ? providers[0] : requesters[2];
    }

    function _claim(uint256 qi, uint256 di, address caller) internal {
        Req storage q = reqs[qi];
        Rec storage r = recs[di];
        string memory why = caller != operator ? "notOperator" : _claimRefusal(q, r);
        uint256 before = token.balanceOf(address(board));
        vm.prank(caller);
        if (bytes(why).length != 0) {
            vm.expectRevert();
            board.claim(qi + 1, r.id, r.t, r.c);
            count[string.concat("claimRefused:", why)]++;
        } else {
            board.claim(qi + 1, r.id, r.t, r.c);
            count[q.deal == 0 ? "claim" : "reclaimAfterFailure"]++;
            q.deal = di + 1;
            r.usedBy = qi + 1;
        }
        assertEq(token.balanceOf(address(board)), before, "a claim moves no tokens");
    }

    /// Someone (the operator, one time in eight another) delivers a request with a deal;
    /// half the time the deal first moves up to four steps on.
    function deliver(uint256 reqSeed, uint256 dealSeed, uint256 who) external {
        if (reqs.length == 0 || recs.length == 0) return;
        uint256 qi = _pickReq(reqSeed);
        uint256 di = _pickDeal(reqs[qi], dealSeed);
        if ((who >> 8) % 2 == 0 && _movable(di) == di) {
            for (uint256 k = 0; k < 4; k++) {
                _step(di, uint256(keccak256(abi.encode(who, k))));
            }
        }
        _deliver(qi, di, who % 8 == 0 ? _notOperator(who) : operator);
    }

    function _deliver(uint256 qi, uint256 di, address caller) internal {
        Req storage q = reqs[qi];
        Rec storage r = recs[di];
        string memory why = caller != operator ? "notOperator" : _deliverRefusal(q, di);
        uint256 opBefore = token.balanceOf(operator);
        uint256 boardBefore = token.balanceOf(address(board));
        vm.prank(caller);
        if (bytes(why).length != 0) {
            vm.expectRevert();
            board.deliverResult(qi + 1, r.id, r.t, r.c);
            assertEq(token.balanceOf(address(board)), boardBefore, "a refused delivery moves no tokens");
            count[string.concat("deliverRefused:", why)]++;
            return;
        }
        bool claimed = q.deal != 0;
        board.deliverResult(qi + 1, r.id, r.t, r.c);
        q.status = St.Delivered;
        q.deal = di + 1;
        r.usedBy = qi + 1;
        heldPayments -= q.payment;
        ghostTokens[operator] += q.payment;
        assertEq(token.balanceOf(operator) - opBefore, q.payment, "the operator is paid the request's payment");
        if (q.requester == address(client)) assertEq(client.results(qi + 1), r.c.resultHash, "the client has its result");
        (DcnDeals.State s,,,, uint8 flags) = _deal(r.id);
        if (s == DcnDeals.State.Appealed) count["deliveredWhileAppealed"]++;
        else if (flags & 4 != 0) count["deliveredAfterAppeal"]++;
        count[string.concat(claimed ? "deliveredClaimed:" : "deliveredUnclaimed:", vm.toString(uint256(s)))]++;
        count["delivered"]++;
    }

    /// Anyone asks for a request's payment back.
    function refund(uint256 reqSeed, uint256 who) external {
        if (reqs.length == 0) return;
        uint256 qi = _pickClaimed(reqSeed);
        _refund(qi, who % 3 == 0 ? STRANGER : who % 3 == 1 ? operator : reqs[qi].requester);
    }

    function _refund(uint256 qi, address caller) internal returns (bool) {
        Req storage q = reqs[qi];
        string memory why = _refundRefusal(q);
        uint256 before = token.balanceOf(q.requester);
        vm.prank(caller);
        if (bytes(why).length != 0) {
            vm.expectRevert();
            board.refund(qi + 1);
            count[string.concat("refundRefused:", why)]++;
            return false;
        }
        board.refund(qi + 1);
        q.status = St.Refunded;
        heldPayments -= q.payment;
        ghostTokens[q.requester] += q.payment;
        assertEq(token.balanceOf(q.requester) - before, q.payment, "the requester gets its payment back");
        if (q.deal == 0) count["refundUnclaimed"]++;
        else if (_failed(recs[q.deal - 1])) count["refundFailed"]++;
        else count["refundAfterGrace"]++;
        return true;
    }

    // ─── time ───

    /// Time and blocks pass; one time in three, to just at or after a request's deadline
    /// or the end of its grace.
    function passTime(uint256 secs, uint256 which) external {
        if (secs % 6 == 0 && reqs.length != 0) {
            Req storage q = reqs[_pickClaimed(which)];
            uint256 grace = board.DELIVERY_GRACE();
            uint256 to = [uint256(q.deadline), q.deadline + 1, q.deadline + grace, q.deadline + grace + 1][(secs >> 2) % 4];
            if (to > block.timestamp) vm.warp(to);
        } else {
            vm.warp(block.timestamp + bound(secs, 1, 3 hours));
        }
        uint256 blocks = 1 + secs % 300;
        for (uint256 i = 0; i < blocks % 4; i++) _nextBlock();
        vm.roll(block.number + blocks);
    }

    /// Every deadline passes: every deal settles by `timeout`, then every open request
    /// must be refundable, and is refunded.
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
                _timeout(i);
            }
        }
        uint256 last;
        for (uint256 i = 0; i < reqs.length; i++) {
            if (reqs[i].deadline > last) last = reqs[i].deadline;
        }
        if (last + board.DELIVERY_GRACE() + 1 > block.timestamp) vm.warp(last + board.DELIVERY_GRACE() + 1);
        for (uint256 i = 0; i < reqs.length; i++) {
            if (reqs[i].status == St.Open) assertTrue(_refund(i, STRANGER), "an open request is refunded at the end");
        }
    }

    // ─── reading ───

    function reqCount() external view returns (uint256) {
        return reqs.length;
    }

    function reqOf(uint256 id) external view returns (Req memory) {
        return reqs[id - 1];
    }

    /// The deal request `id` is claimed with or was delivered by, by the ghost (0: none).
    function reqDealId(uint256 id) external view returns (bytes32) {
        uint256 d = reqs[id - 1].deal;
        return d == 0 ? bytes32(0) : recs[d - 1].id;
    }

    function recCount() external view returns (uint256) {
        return recs.length;
    }

    function termsOf(bytes32 id) external view returns (DcnDeals.Terms memory) {
        uint256 i = recOf[id];
        require(i != 0, "a deal the handler did not make");
        return recs[i - 1].t;
    }

    function resultOf(bytes32 id) external view returns (bytes32) {
        return recs[recOf[id] - 1].c.resultHash;
    }

    function walletHolders() external view returns (address[] memory list) {
        list = new address[](5);
        for (uint256 i = 0; i < 4; i++) list[i] = requesters[i];
        list[4] = operator;
    }

    function escrowHolders() external view returns (address[] memory list) {
        list = new address[](9);
        list[0] = operator;
        list[1] = OTHER_CREATOR;
        list[2] = providers[0];
        list[3] = providers[1];
        for (uint256 i = 0; i < 5; i++) list[4 + i] = mediators[i];
    }
}

/// @notice Over random sequences of requests, deals, claims, deliveries, refunds and time:
///         the board holds exactly the payments of open requests, every requester and the
///         operator hold what the ghost ledger says, no request is delivered by a deal of
///         another job, of another job creator or provided by the operator, nor two by one
///         deal, DcnDeals' books balance, and once every deadline has passed every request
///         ends delivered or refunded.
contract DcnJobBoardInvariantTest is Test {
    DcnToken internal token;
    DcnDeals internal deals;
    DcnRegistry internal registry;
    JobBoardHandler internal handler;
    DcnJobBoard internal board;

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
        handler = new JobBoardHandler(token, deals, registry, rules);
        board = handler.board();
        token.transfer(address(handler), 100_000_000 ether);
        handler.init();
        // The appeal pool: one of the deals' mediators and the two pool-only ones.
        registry.setApproved(DcnRegistry.Role.Mediator, handler.mediators(0), true);
        registry.setApproved(DcnRegistry.Role.Mediator, handler.mediators(3), true);
        registry.setApproved(DcnRegistry.Role.Mediator, handler.mediators(4), true);
        targetContract(address(handler));
        // Deal moves through `step` (named three times) so that deals reach their endings;
        // deliveries twice, as most are refused.
        bytes4[] memory selectors = new bytes4[](11);
        selectors[0] = JobBoardHandler.request.selector;
        selectors[1] = JobBoardHandler.buy.selector;
        selectors[2] = JobBoardHandler.step.selector;
        selectors[3] = JobBoardHandler.claim.selector;
        selectors[4] = JobBoardHandler.deliver.selector;
        selectors[5] = JobBoardHandler.refund.selector;
        selectors[6] = JobBoardHandler.passTime.selector;
        selectors[7] = JobBoardHandler.step.selector;
        selectors[8] = JobBoardHandler.deliver.selector;
        selectors[9] = JobBoardHandler.serve.selector;
        selectors[10] = JobBoardHandler.step.selector;
        targetSelector(FuzzSelector(address(handler), selectors));
    }

    function invariant_the_board_holds_exactly_the_open_payments() public view {
        uint256 open;
        for (uint256 id = 1; id <= board.requestCount(); id++) {
            DcnJobBoard.Request memory r = board.getRequest(id);
            if (r.status == DcnJobBoard.Status.Open) open += r.payment;
        }
        assertEq(token.balanceOf(address(board)), open, "board balance == payments of open requests");
        assertEq(open, handler.heldPayments(), "open payments as the ghost has them");
    }

    function invariant_every_wallet_holds_what_the_ledger_says() public view {
        address[] memory holders = handler.walletHolders();
        for (uint256 i = 0; i < holders.length; i++) {
            assertEq(token.balanceOf(holders[i]), handler.ghostTokens(holders[i]), "wallet as the ghost ledger says");
        }
    }

    function invariant_requests_are_as_the_ghost_has_them() public view {
        assertEq(board.requestCount(), handler.reqCount(), "request count");
        for (uint256 id = 1; id <= board.requestCount(); id++) {
            DcnJobBoard.Request memory r = board.getRequest(id);
            JobBoardHandler.Req memory q = handler.reqOf(id);
            assertEq(uint256(r.status), uint256(q.status), "request status as the ghost has it");
            assertEq(r.requester, q.requester, "requester");
            assertEq(r.payment, q.payment, "payment");
            assertEq(uint256(r.deadline), uint256(q.deadline), "deadline");
            assertEq(r.jobHash, q.jobHash, "job hash");
            assertEq(r.dealId, handler.reqDealId(id), "claimed deal as the ghost has it");
            assertEq(r.operator, handler.operator(), "operator");
        }
    }

    /// The new job-board rule: what is delivered is a result of the requested job, bought by
    /// the request's operator from another provider, and one deal delivers one request.
    function invariant_deliveries_are_of_the_job_and_not_self_provided() public view {
        for (uint256 id = 1; id <= board.requestCount(); id++) {
            DcnJobBoard.Request memory r = board.getRequest(id);
            if (r.dealId != 0) assertEq(board.requestOfDeal(r.dealId), id, "a deal serves one request");
            if (r.status != DcnJobBoard.Status.Delivered) continue;
            DcnDeals.Terms memory t = handler.termsOf(r.dealId);
            assertEq(t.jobHash, r.jobHash, "delivered by a deal of the requested job");
            assertTrue(t.provider != r.operator, "never provided by the operator");
            assertEq(t.jobCreator, r.operator, "bought by the request's operator");
            assertEq(r.resultHash, handler.resultOf(r.dealId), "the deal's result");
        }
    }

    function invariant_the_deals_books_balance() public view {
        _books();
    }

    /// After each run: every deadline passes, every deal settles and every request ends
    /// delivered or refunded; the board holds nothing.
    function afterInvariant() public {
        handler.settleEverything();
        for (uint256 id = 1; id <= board.requestCount(); id++) {
            DcnJobBoard.Status s = board.getRequest(id).status;
            assertTrue(s == DcnJobBoard.Status.Delivered || s == DcnJobBoard.Status.Refunded, "nothing stuck");
        }
        assertEq(token.balanceOf(address(board)), 0, "the board holds nothing at the end");
        invariant_every_wallet_holds_what_the_ledger_says();
        invariant_deliveries_are_of_the_job_and_not_self_provided();
        _books();
    }

    /// A fixed campaign drawn from a seed, in rounds of 500 actions, each round ending with
    /// every deadline passed and every request settled: the ghost must agree with the board
    /// through every path, and within eight rounds every path that matters is reached.
    function test_a_long_campaign_reaches_the_board_rules() public {
        string[24] memory paths = [
            "requestRefused",
            "claim",
            "reclaimAfterFailure",
            "delivered",
            "deliveredAfterAppeal",
            "refundUnclaimed",
            "refundFailed",
            "refundRefused:early",
            "refundRefused:inGrace",
            "claimRefused:inFlight",
            "claimRefused:wrongJob",
            "claimRefused:operatorIsProvider",
            "claimRefused:notOperators",
            "deliverRefused:wrongJob",
            "deliverRefused:operatorIsProvider",
            "deliverRefused:used",
            "deliverRefused:notPaid",
            "deliverRefused:late",
            "deliverRefused:wrongDeal",
            "audited",
            "timeoutAccepted",
            "timeoutNoVerdict",
            "overturnedHonest",
            "upheld"
        ];
        for (uint256 round = 0; round < 8 && !_reachedAll(paths); round++) {
            for (uint256 k = 0; k < 500; k++) {
                uint256 r = uint256(keccak256(abi.encode("board campaign", round, k)));
                uint256 a = r >> 8;
                uint256 kind = r % 16;
                if (kind < 2) handler.request(a, a >> 8, a >> 16, a >> 80);
                else if (kind < 4) handler.buy(a, a >> 16, a >> 40, a >> 64, a >> 100);
                else if (kind < 8) handler.step(a, a >> 16);
                else if (kind < 9) handler.claim(a, a >> 32, a >> 64);
                else if (kind < 12) handler.deliver(a, a >> 32, a >> 64);
                else if (kind < 13) handler.refund(a, a >> 32);
                else if (kind < 14) handler.passTime(a, a >> 64);
                else if (kind < 15) handler.serve(a, a >> 32, a >> 64, a >> 128);
                else handler.timeout(a);
                if (k % 50 == 0) {
                    invariant_the_board_holds_exactly_the_open_payments();
                    invariant_every_wallet_holds_what_the_ledger_says();
                    invariant_requests_are_as_the_ghost_has_them();
                    invariant_deliveries_are_of_the_job_and_not_self_provided();
                    invariant_the_deals_books_balance();
                }
            }
            afterInvariant();
        }
        for (uint256 i = 0; i < paths.length; i++) {
            assertTrue(handler.count(paths[i]) > 0, string.concat("the campaign reaches ", paths[i]));
        }
    }

    function _reachedAll(string[24] memory paths) internal view returns (bool) {
        for (uint256 i = 0; i < paths.length; i++) {
            if (handler.count(paths[i]) == 0) return false;
        }
        return true;
    }

    function _books() internal view {
        address[] memory accounts = handler.escrowHolders();
        uint256 sum;
        for (uint256 i = 0; i < accounts.length; i++) {
            (uint256 f, uint256 l) = deals.escrowOf(accounts[i]);
            (uint256 b,) = deals.bondOf(accounts[i]);
            sum += f + l + b;
        }
        assertEq(deals.booked(), sum, "booked == free + locked + bonds");
        assertEq(token.balanceOf(address(deals)), deals.booked(), "tokens held == books");
    }
}

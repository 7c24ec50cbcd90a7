// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {DcnEscrow} from "./DcnEscrow.sol";

/// @notice The approved mediators of a network (`DcnRegistry`), from which appeals draw.
interface IMediatorPool {
    function approvedCount(uint8 role) external view returns (uint256);
    function approvedAt(uint8 role, uint256 index) external view returns (address);
}

/// @title DcnDeals
/// @notice The deal state machine of the dcn compute network, over `DcnEscrow`.
///
///     Created ──submitResult──▶ ResultSubmitted ──acceptResult, no audit drawn──▶ Accepted
///        │                         │  │  └──acceptResult or timeout, audit drawn──▶ Audited ─┐
///        │ timeout                 │  └──challenge──▶ Challenged ──draw, mediate──▶ Mediated… ◀┘
///        ▼                         ▼ timeout            │ timeout (redraw; none left)   │ appeal (loser)
///     TimedOutNoResult          TimedOutAccepted        ▼                               ▼
///                                                  TimedOutNoVerdict                 Appealed ──drawAppeal,
///                                                                                    ruleAppeal or timeout──▶ Mediated…
///
/// A deal keeps one storage word: a commitment to its terms and what its life added (the
/// result hash, excluded mediators, the ruling and appeal mediators), beside its state,
/// deadline, draw block, drawn mediator and flags. Every call after `createDeal` passes
/// the `Terms` and the `Case` back as calldata; they are checked against the commitment.
/// The commitment is 152 bits of keccak256 over the deal id, the terms and the case:
/// forging terms for a stored deal is a second preimage of the id-salted hash (2^152).
/// The events tell how the case grows: `ResultSubmitted`, `DealChallenged` and
/// `DealAudited` carry the result hash, `MediatorMissed` the excluded set, `DealMediated`
/// the ruling mediator and `AppealDrawn` the whole case, so a party rebuilds it from the
/// deal's events since it joined.
///
/// Audits (P3): `submitResult` records its block; the hash of that block, which nobody
/// knows when sending, draws whether the result is audited, with the deal's `auditPpm`
/// chance. `acceptResult` (and `timeout` of an unjudged result) reads the draw: audited,
/// the deal goes to mediation as if challenged, paid by the job creator's `auditFee`
/// (locked at creation and returned when no audit is drawn); the provider is paid or
/// slashed by the verdict, like a challenge. An audit has one round: a silent auditor
/// leaves the result standing. A result judged when its block's hash is gone (more than
/// 256 blocks later) is audited: the draw is never taken again from a later block, or a
/// provider that saw its block draw an audit could wait and draw until none is drawn.
///
/// Mediators answer for their verdicts (M3, M5): they are drawn only while bonded
/// (`DcnEscrow`). A verdict settles the deal at once; within `appealWindow` the losing
/// party may `appeal`, for `appealFee`, to a second mediator drawn from the network's
/// approved pool (not the deal's list). Upheld, the appeal mediator takes the fee;
/// overturned, the first mediator's bond pays the appeal mediator and the wronged party
/// (up to `minBond`) and the fee comes back. A drawn mediator that stays silent loses
/// `silenceSlash` of its bond.
///
/// Every waiting state has a deadline after which anyone may call `timeout`, so no deal
/// stays open and no token is stranded.
contract DcnDeals is DcnEscrow, EIP712 {
    /// @notice The terms of a deal, as matched by the solver and signed by the provider
    ///         (EIP-712). The deal id is the EIP-712 digest of these terms.
    struct Deal {
        address jobCreator;
        address provider;
        address solver;
        address[] mediators;
        uint256 price;
        uint256 collateral;
        uint256 mediationFee;
        /// What the job creator pays a mediator for an audit; locked at creation.
        uint256 auditFee;
        /// The chance, in parts per million, that the result is audited.
        uint32 auditPpm;
        /// Seconds from creation for the provider to submit a result.
        uint64 resultTimeout;
        /// Seconds from result submission for the job creator to accept or challenge.
        uint64 judgeTimeout;
        /// Seconds from the draw for the drawn mediator to rule.
        uint64 mediationTimeout;
        /// Unix seconds after which `createDeal` refuses this deal.
        uint64 createDeadline;
        /// Content hash of the job spec.
        bytes32 jobHash;
        uint256 nonce;
    }

    /// @notice What later calls need of a deal's terms (`termsOf`), passed back as calldata.
    struct Terms {
        address jobCreator;
        address provider;
        uint96 price;
        uint96 collateral;
        uint96 mediationFee;
        uint96 auditFee;
        uint32 auditPpm;
        uint32 judgeTimeout;
        uint32 mediationTimeout;
        /// keccak256(abi.encodePacked(deal.mediators)).
        bytes32 mediators;
        bytes32 jobHash;
    }

    /// @notice What a deal's life added to its terms, passed back as calldata.
    struct Case {
        /// The provider's result hash; zero before `submitResult`.
        bytes32 resultHash;
        /// Bit i set: the deal's mediator i missed a deadline and is drawn no more.
        uint16 excluded;
        /// The mediator whose verdict settled the deal; zero before.
        address ruledBy;
        /// The mediator drawn for an appeal; zero before.
        address appealMediator;
    }

    /// @notice Where a deal is in its life. From `Accepted` on, the deal's money is
    ///         settled; a mediated deal may still be appealed (`Appealed`), which moves
    ///         bonds and fees only.
    enum State {
        None,
        Created,
        ResultSubmitted,
        Challenged,
        Accepted,
        MediatedHonest,
        MediatedDishonest,
        TimedOutNoResult,
        TimedOutAccepted,
        TimedOutNoVerdict,
        Cancelled,
        Audited,
        Appealed
    }

    /// @notice The network's rules for deals and disputes, fixed at deployment.
    struct Params {
        /// Fewest mediators a deal names.
        uint8 minMediators;
        /// Least audit chance of a deal, parts per million.
        uint32 minAuditPpm;
        /// Seconds after a verdict in which its loser may appeal.
        uint32 appealWindow;
        /// Least mediation and audit fee.
        uint96 minMediationFee;
        /// What a drawn mediator loses of its bond for staying silent.
        uint88 silenceSlash;
        /// Least bond of a drawable mediator; what an overturned verdict costs at most.
        uint96 minBond;
        /// What an appeal costs its appellant (refunded when the verdict is overturned).
        uint96 appealFee;
    }

    // One word per deal.
    struct Slot {
        bytes19 commit;
        State state;
        uint40 deadline;
        uint40 mark;
        uint8 drawn;
        uint8 flags;
    }

    bytes32 public constant DEAL_TYPEHASH = keccak256(
        "Deal(address jobCreator,address provider,address solver,address[] mediators,uint256 price,uint256 collateral,uint256 mediationFee,uint256 auditFee,uint32 auditPpm,uint64 resultTimeout,uint64 judgeTimeout,uint64 mediationTimeout,uint64 createDeadline,bytes32 jobHash,uint256 nonce)"
    );

    /// @notice Most mediators a deal may name.
    uint256 public constant MAX_MEDIATORS = 16;
    /// @notice Longest judge and mediation timeout, and appeal window.
    uint64 public constant MAX_DISPUTE_TIMEOUT = 7 days;
    /// @notice Audit chance of one: every result is audited.
    uint32 public constant PPM = 1_000_000;
    /// @notice Draws from the approved pool an appeal tries before giving up.
    uint256 public constant APPEAL_DRAWS = 8;

    /// @notice `flags`: the verdict that settled the deal called the provider honest.
    uint8 public constant FLAG_HONEST = 1;
    /// @notice `flags`: the appeal was made by the job creator (else by the provider).
    uint8 public constant FLAG_APPEAL_BY_JOB_CREATOR = 2;
    /// @notice `flags`: an appeal was decided (or failed); no further appeal.
    uint8 public constant FLAG_APPEAL_DONE = 4;
    /// @notice `flags`: the appeal overturned the verdict.
    uint8 public constant FLAG_OVERTURNED = 8;
    /// @notice `flags`: the dispute is (was) an audit, not a challenge.
    uint8 public constant FLAG_AUDIT = 16;

    uint8 private constant MEDIATOR_ROLE = 1;
    uint256 private constant BLOCKHASH_WINDOW = 256;

    // The network's rules (`Params`), fixed by the constructor: one immutable per field,
    // read from the code, never from storage. A network that wants other rules deploys
    // anew (as a registry names its network once).
    uint8 private immutable _minMediators;
    uint32 private immutable _minAuditPpm;
    uint32 private immutable _appealWindow;
    uint96 private immutable _minMediationFee;
    uint88 private immutable _silenceSlash;
    uint96 private immutable _minBond;
    uint96 private immutable _appealFee;

    /// @notice The registry whose approved mediators appeals are drawn from.
    IMediatorPool public registry;
    mapping(bytes32 => Slot) private _deals;

    event RegistrySet(address registry);
    event DealCreated(bytes32 indexed dealId, address indexed jobCreator, address indexed provider);
    event DealCancelled(bytes32 indexed dealId, address indexed provider);
    event ResultSubmitted(bytes32 indexed dealId, bytes32 resultHash, uint64 judgeDeadline);
    event ResultAccepted(bytes32 indexed dealId);
    event DealAudited(bytes32 indexed dealId, bytes32 resultHash, uint64 drawBlock);
    event DealChallenged(bytes32 indexed dealId, bytes32 resultHash, uint64 drawBlock);
    event MediatorDrawn(bytes32 indexed dealId, address indexed mediator, uint64 mediationDeadline);
    event DrawPostponed(bytes32 indexed dealId, uint64 drawBlock);
    event MediatorMissed(bytes32 indexed dealId, address indexed mediator, uint16 excluded);
    event DealMediated(bytes32 indexed dealId, address indexed mediator, bool providerHonest, uint64 appealDeadline);
    event DealAppealed(bytes32 indexed dealId, address indexed appellant, uint64 drawBlock);
    event AppealDrawn(bytes32 indexed dealId, address indexed mediator, uint64 deadline, Case c);
    event AppealDecided(bytes32 indexed dealId, address indexed mediator, bool overturned);
    event AppealLapsed(bytes32 indexed dealId, address indexed mediator);
    event DealTimedOut(bytes32 indexed dealId, State indexed from, State to);

    error NotJobCreator(address caller);
    error NotProvider(address caller);
    error NotMediator(address caller, address mediator);
    error NotLoser(address caller);
    error WrongState(bytes32 dealId, State state);
    error WrongCommitment(bytes32 dealId);
    error WrongMediators(bytes32 dealId);
    error DeadlinePassed(bytes32 dealId, uint64 deadline);
    error DeadlineNotReached(bytes32 dealId, uint64 deadline);
    error DealExists(bytes32 dealId);
    error BadSignature(address provider);
    error TooFewMediators(uint256 count, uint256 min);
    error TooManyMediators(uint256 count);
    error InvalidMediator(address mediator);
    error AmountTooLarge(uint256 amount);
    error InvalidTimeout(uint64 timeout);
    error CollateralBelowFee(uint256 collateral, uint256 fee);
    error FeeBelowFloor(uint256 fee, uint256 floor);
    error AuditChanceTooLow(uint32 auditPpm, uint32 min);
    error EmptyResultHash();
    error DealExpired(uint64 createDeadline);
    error DealIsCancelled(bytes32 dealId);
    error DrawNotReady(bytes32 dealId, uint64 drawBlock);
    error AlreadyAppealed(bytes32 dealId);
    error RegistryAlreadySet();
    error InvalidParams();

    /// @notice A network under the rules `params_`, fixed for the life of this contract.
    constructor(IERC20 token_, Params memory params_) DcnEscrow(token_) EIP712("DcnDeals", "1") {
        _checkParams(params_);
        _minMediators = params_.minMediators;
        _minAuditPpm = params_.minAuditPpm;
        _appealWindow = params_.appealWindow;
        _minMediationFee = params_.minMediationFee;
        _silenceSlash = params_.silenceSlash;
        _minBond = params_.minBond;
        _appealFee = params_.appealFee;
    }

    // ─── The network's rules ──────────────────────────────────────────────────

    /// @notice The network's rules, as the constructor fixed them.
    function params() external view returns (Params memory) {
        return Params({
            minMediators: _minMediators,
            minAuditPpm: _minAuditPpm,
            appealWindow: _appealWindow,
            minMediationFee: _minMediationFee,
            silenceSlash: _silenceSlash,
            minBond: _minBond,
            appealFee: _appealFee
        });
    }

    /// @notice Names the registry whose approved mediators appeals draw from; once.
    function setRegistry(IMediatorPool registry_) external onlyOwner {
        if (address(registry) != address(0)) revert RegistryAlreadySet();
        registry = registry_;
        emit RegistrySet(address(registry_));
    }

    function _checkParams(Params memory p) private pure {
        if (p.minMediators == 0 || p.minMediators > MAX_MEDIATORS || p.minAuditPpm > PPM) revert InvalidParams();
        if (p.appealWindow == 0 || p.appealWindow > MAX_DISPUTE_TIMEOUT) revert InvalidParams();
        if (p.minBond == 0 || p.appealFee == 0) revert InvalidParams();
    }

    // ─── Creation ─────────────────────────────────────────────────────────────

    /// @notice The deal id: the EIP-712 digest of `deal` under this contract's domain.
    ///         The provider signs exactly this digest.
    function dealId(Deal calldata deal) public view returns (bytes32) {
        return _hashTypedDataV4(_hashDeal(deal, _hashMediators(deal.mediators)));
    }

    /// @notice What later calls pass back of `deal`.
    function termsOf(Deal calldata deal) public pure returns (Terms memory) {
        return Terms(
            deal.jobCreator,
            deal.provider,
            uint96(deal.price),
            uint96(deal.collateral),
            uint96(deal.mediationFee),
            uint96(deal.auditFee),
            deal.auditPpm,
            uint32(deal.judgeTimeout),
            uint32(deal.mediationTimeout),
            keccak256(abi.encodePacked(deal.mediators)),
            deal.jobHash
        );
    }

    /// @notice Creates a deal signed by its provider. Sent by the job creator, at the latest
    ///         at `deal.createDeadline`; locks the job creator's price and audit fee and the
    ///         provider's collateral.
    function createDeal(Deal calldata deal, bytes calldata providerSig) external returns (bytes32 id) {
        address jobCreator = deal.jobCreator;
        address provider = deal.provider;
        if (msg.sender != jobCreator) revert NotJobCreator(msg.sender);
        if (block.timestamp > deal.createDeadline) revert DealExpired(deal.createDeadline);
        bytes32 mediatorsHash = _checkTerms(deal);
        id = _hashTypedDataV4(_hashDeal(deal, mediatorsHash));
        State state = _stateOf(id);
        if (state != State.None) {
            if (state == State.Cancelled) revert DealIsCancelled(id);
            revert DealExists(id);
        }
        if (!_signedBy(provider, id, providerSig)) revert BadSignature(provider);

        (uint256 price, uint256 collateral, uint256 auditFee, uint256 resultTimeout) = _amountsOf(deal);
        _lock(jobCreator, price + auditFee);
        _lock(provider, collateral);
        _putNew(id, _commitment(id, deal, mediatorsHash), uint40(block.timestamp + resultTimeout));
        emit DealCreated(id, jobCreator, provider);
    }

    // The words of `deal` that `createDeal` locks and times by, as `_checkTerms` bounded them.
    function _amountsOf(Deal calldata deal)
        private
        pure
        returns (uint256 price, uint256 collateral, uint256 auditFee, uint256 resultTimeout)
    {
        assembly ("memory-safe") {
            price := calldataload(add(deal, 0x80))
            collateral := calldataload(add(deal, 0xa0))
            auditFee := calldataload(add(deal, 0xe0))
            resultTimeout := calldataload(add(deal, 0x120))
        }
    }

    /// @notice The provider withdraws its signature of `deal` before the deal is created:
    ///         `createDeal` refuses it from then on.
    function cancelDeal(Deal calldata deal) external returns (bytes32 id) {
        if (msg.sender != deal.provider) revert NotProvider(msg.sender);
        id = dealId(deal);
        Slot memory s = _get(id);
        _checkState(id, s, State.None);
        s.state = State.Cancelled;
        _put(id, s);
        emit DealCancelled(id, msg.sender);
    }

    // ─── The result ───────────────────────────────────────────────────────────

    /// @notice The provider posts the hash of its result bundle, before the result
    ///         deadline. Its block draws whether the result is audited.
    function submitResult(bytes32 id, Terms calldata t, bytes32 resultHash) external {
        if (msg.sender != t.provider) revert NotProvider(msg.sender);
        if (resultHash == bytes32(0)) revert EmptyResultHash();
        // The deal's word, checked as `_load` checks it but not unpacked: this call
        // rewrites all of it but `drawn` and `flags`.
        (Slot storage p, uint256 w) = _loadWord(id, _commitment(id, t, bytes32(0), 0, address(0), address(0)), State.Created);
        uint40 deadline = uint40(w >> 160);
        if (block.timestamp > deadline) revert DeadlinePassed(id, deadline);
        // `t` matched the commitment: its judge timeout is read as it stands in calldata.
        deadline = uint40(block.timestamp + _wordOf(t, 0xe0));
        bytes19 commit = _commitment(id, t, resultHash, 0, address(0), address(0));
        uint256 submitted = uint256(State.ResultSubmitted);
        uint256 mark = block.number;
        assembly ("memory-safe") {
            // commit, state, deadline, mark (the draw block) as `_put` packs them.
            w := or(or(shr(104, commit), shl(152, submitted)), and(w, shl(240, 0xffff)))
            sstore(p.slot, or(w, or(shl(160, and(deadline, 0xffffffffff)), shl(200, and(mark, 0xffffffffff)))))
        }
        emit ResultSubmitted(id, resultHash, uint64(deadline));
    }

    /// @notice The job creator accepts the result: the provider is paid, its collateral
    ///         and the audit fee unlocked; unless the result's block drew an audit, which
    ///         then starts. From the block after `submitResult`; if that block is too old
    ///         for its hash (more than 256 blocks), the result is audited: judge in time.
    function acceptResult(bytes32 id, Terms calldata t, Case calldata c) external returns (State to) {
        if (msg.sender != t.jobCreator) revert NotJobCreator(msg.sender);
        // The deal's word, checked as `_load` checks it but not unpacked.
        (Slot storage p, uint256 w) = _loadWord(id, _commitment(id, t, c), State.ResultSubmitted);
        to = _judgeOrAudit(id, t, c, p, w, State.Accepted);
        if (to == State.Accepted) emit ResultAccepted(id);
    }

    /// @notice The job creator disputes the result before the judge deadline: its mediation
    ///         fee is locked (its audit fee comes back: a challenge is mediated anyway) and a
    ///         mediator of the deal is drawn from this block's hash.
    function challenge(bytes32 id, Terms calldata t, Case calldata c) external {
        if (msg.sender != t.jobCreator) revert NotJobCreator(msg.sender);
        Slot memory s = _load(id, _commitment(id, t, c), State.ResultSubmitted);
        _checkBeforeDeadline(id, s);
        // The audit fee comes back and the mediation fee is locked, in one write.
        _relock(t.jobCreator, t.auditFee, t.mediationFee);
        s.state = State.Challenged;
        _newRound(s, t.mediationTimeout);
        _put(id, s);
        emit DealChallenged(id, c.resultHash, uint64(block.number));
    }

    // ─── Mediation ────────────────────────────────────────────────────────────

    /// @notice Draws the mediator of a dispute's current round among the deal's bonded,
    ///         not excluded mediators, from the hash of the round's block; anyone may call
    ///         it from the next block, and again returns the same mediator. A drawn
    ///         mediator without a bond is excluded and another drawn. The drawn mediator
    ///         has `mediationTimeout` from now to rule. Returns zero if the round's block
    ///         is too old for its hash (the draw moves to this block: call again from the
    ///         next one) or no mediator is left (`timeout` then lets the result stand).
    function draw(bytes32 id, Terms calldata t, Case calldata c, address[] calldata mediators)
        external
        returns (address mediator)
    {
        Slot memory s = _loadDispute(id, t, c, mediators);
        if (s.drawn != 0) return mediators[s.drawn - 1];
        uint256 b = s.mark;
        if (block.number <= b) revert DrawNotReady(id, uint64(b));
        if (block.number - b > BLOCKHASH_WINDOW) {
            s.mark = uint40(block.number);
            _put(id, s);
            emit DrawPostponed(id, uint64(block.number));
            return address(0);
        }
        (uint256 drawn, uint16 excluded) = _drawBonded(blockhash(b), id, c.excluded, mediators);
        if (excluded != c.excluded) {
            s.commit = _commitment(id, t, c.resultHash, excluded, c.ruledBy, c.appealMediator);
        }
        if (drawn != 0) {
            mediator = mediators[drawn - 1];
            s.drawn = uint8(drawn);
            uint40 deadline = uint40(block.timestamp + t.mediationTimeout);
            s.deadline = deadline;
            emit MediatorDrawn(id, mediator, uint64(deadline));
        }
        _put(id, s);
    }

    /// @notice The drawn mediator's verdict, before the mediation deadline. It settles the
    ///         deal: honest, the provider is paid and the mediator takes the job creator's
    ///         fee; dishonest, the mediator's fee comes out of the provider's collateral and
    ///         the job creator gets its price, its fee and the rest of the collateral. The
    ///         loser may appeal within `appealWindow`.
    function mediate(bytes32 id, Terms calldata t, Case calldata c, address[] calldata mediators, bool providerHonest)
        external
    {
        Slot memory s = _loadDispute(id, t, c, mediators);
        address drawn = s.drawn == 0 ? address(0) : mediators[s.drawn - 1];
        if (msg.sender != drawn || drawn == address(0)) revert NotMediator(msg.sender, drawn);
        _checkBeforeDeadline(id, s);
        bool audit = s.state == State.Audited;
        uint96 fee = audit ? t.auditFee : t.mediationFee;
        uint8 auditFlag = s.flags & FLAG_AUDIT;
        // One write per account: the job creator's lock, the provider's lock and free
        // escrow, the mediator's free escrow.
        if (providerHonest) {
            s.state = State.MediatedHonest;
            s.flags = auditFlag | FLAG_HONEST;
            _settle(t.jobCreator, uint256(t.price) + fee, 0);
            _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);
        } else {
            s.state = State.MediatedDishonest;
            s.flags = auditFlag;
            _settle(t.jobCreator, uint256(t.price) + fee, uint256(t.price) + t.collateral);
            _settle(t.provider, t.collateral, 0);
        }
        _settle(msg.sender, 0, fee);
        s.commit = _commitment(id, t, c.resultHash, c.excluded, msg.sender, c.appealMediator);
        uint40 deadline = uint40(block.timestamp + _appealWindow);
        s.deadline = deadline;
        s.drawn = 0;
        _put(id, s);
        emit DealMediated(id, msg.sender, providerHonest, uint64(deadline));
    }

    // ─── Appeals ──────────────────────────────────────────────────────────────

    /// @notice The party a verdict went against appeals it, within the appeal window,
    ///         paying `appealFee`; a mediator from the network's approved pool will be
    ///         drawn from this block's hash. One appeal per deal.
    function appeal(bytes32 id, Terms calldata t, Case calldata c) external {
        Slot memory s = _loadAny(id, _commitment(id, t, c));
        State state = s.state;
        if (state != State.MediatedHonest && state != State.MediatedDishonest) revert WrongState(id, state);
        if (s.flags & FLAG_APPEAL_DONE != 0) revert AlreadyAppealed(id);
        bool byJobCreator = state == State.MediatedHonest;
        if (msg.sender != (byJobCreator ? t.jobCreator : t.provider)) revert NotLoser(msg.sender);
        _checkBeforeDeadline(id, s);
        _lock(msg.sender, _appealFee);
        s.state = State.Appealed;
        if (byJobCreator) s.flags |= FLAG_APPEAL_BY_JOB_CREATOR;
        _newRound(s, t.mediationTimeout);
        _put(id, s);
        emit DealAppealed(id, msg.sender, uint64(block.number));
    }

    /// @notice Draws the appeal's mediator from the network's approved, bonded mediators
    ///         who are neither a party nor the mediator appealed against; anyone may call
    ///         it from the block after the appeal until the appeal's deadline, so that an
    ///         appeal ends within `UNBOND_DELAY` of the first mediator's draw. It has
    ///         `mediationTimeout` from now to rule. Returns zero if the appeal's block is too
    ///         old (call again from the next block) or none was found (`timeout` then ends
    ///         the appeal).
    function drawAppeal(bytes32 id, Terms calldata t, Case calldata c) external returns (address mediator) {
        Slot memory s = _load(id, _commitment(id, t, c), State.Appealed);
        if (c.appealMediator != address(0)) return c.appealMediator;
        _checkBeforeDeadline(id, s);
        uint256 b = s.mark;
        if (block.number <= b) revert DrawNotReady(id, uint64(b));
        if (block.number - b > BLOCKHASH_WINDOW) {
            s.mark = uint40(block.number);
            _put(id, s);
            emit DrawPostponed(id, uint64(block.number));
            return address(0);
        }
        mediator = _drawFromPool(blockhash(b), id, t, c.ruledBy);
        if (mediator == address(0)) return address(0);
        Case memory next = c;
        next.appealMediator = mediator;
        s.commit = _commitment(id, t, next.resultHash, next.excluded, next.ruledBy, next.appealMediator);
        uint40 deadline = uint40(block.timestamp + t.mediationTimeout);
        s.deadline = deadline;
        _put(id, s);
        emit AppealDrawn(id, mediator, uint64(deadline), next);
    }

    /// @notice The appeal mediator's verdict, before its deadline. The same as the first:
    ///         upheld, the appeal fee pays the appeal mediator. The other: overturned, the
    ///         first mediator's bond (up to `minBond`) pays the appeal mediator the appeal
    ///         fee and the rest to the appellant, whose fee comes back. The deal's money
    ///         stays as the first verdict settled it.
    function ruleAppeal(bytes32 id, Terms calldata t, Case calldata c, bool providerHonest) external {
        Slot memory s = _load(id, _commitment(id, t, c), State.Appealed);
        if (msg.sender != c.appealMediator || msg.sender == address(0)) {
            revert NotMediator(msg.sender, c.appealMediator);
        }
        _checkBeforeDeadline(id, s);
        uint8 flags = s.flags;
        address appellant = flags & FLAG_APPEAL_BY_JOB_CREATOR != 0 ? t.jobCreator : t.provider;
        uint256 fee = _appealFee;
        bool overturned = providerHonest != (flags & FLAG_HONEST != 0);
        if (overturned) {
            _unlockTo(appellant, fee, appellant);
            // Up to `minBond` of the first mediator's bond: the appeal mediator's fee first,
            // the rest to the wronged party.
            uint256 slash = _minBond;
            uint256 feePart = fee < slash ? fee : slash;
            _slash(c.ruledBy, feePart, msg.sender);
            _slash(c.ruledBy, slash - feePart, appellant);
            flags |= FLAG_OVERTURNED;
        } else {
            _unlockTo(appellant, fee, msg.sender);
        }
        _endAppeal(s, flags);
        _put(id, s);
        emit AppealDecided(id, msg.sender, overturned);
    }

    // ─── Deadlines ────────────────────────────────────────────────────────────

    /// @notice Settles a deal whose current deadline has passed; anyone may call it.
    ///         Created: the job creator is refunded and gets the provider's collateral.
    ///         ResultSubmitted: the provider is paid as if accepted, unless the result's
    ///         block drew an audit (or its hash is gone), which then starts.
    ///         Challenged: the round's mediator (drawn now if nobody drew it) missed its
    ///         deadline: it is excluded, loses `silenceSlash` of its bond to the job
    ///         creator, and another is drawn in a new round; with none left the result
    ///         stands (the provider is paid, the job creator's fee comes back).
    ///         Audited: one round only; a silent auditor loses `silenceSlash` to the
    ///         provider and the result stands.
    ///         Appealed: the appeal mediator (if drawn) loses `silenceSlash` to the
    ///         appellant, whose fee comes back; the verdict stands.
    ///         A round whose block is too old to draw from excludes nobody.
    function timeout(bytes32 id, Terms calldata t, Case calldata c, address[] calldata mediators) external {
        Slot memory s = _loadAny(id, _commitment(id, t, c));
        State from = s.state;
        if (block.timestamp <= s.deadline) revert DeadlineNotReached(id, s.deadline);
        if (from == State.Created) {
            s.state = State.TimedOutNoResult;
            _put(id, s);
            // The job creator gets its price and audit fee back and the provider's collateral.
            _settle(t.jobCreator, uint256(t.price) + t.auditFee, uint256(t.price) + t.auditFee + t.collateral);
            _settle(t.provider, t.collateral, 0);
        } else if (from == State.ResultSubmitted) {
            (Slot storage p, uint256 w) = _word(id);
            s.state = _judgeOrAudit(id, t, c, p, w, State.TimedOutAccepted);
            if (s.state != State.TimedOutAccepted) return;
        } else if (from == State.Challenged || from == State.Audited) {
            _checkMediators(id, t, mediators);
            if (!_silentRound(id, t, c, s, mediators)) return;
        } else if (from == State.Appealed) {
            _lapseAppeal(id, t, c, s);
            return;
        } else {
            revert WrongState(id, from);
        }
        emit DealTimedOut(id, from, s.state);
    }

    // ─── Reading ──────────────────────────────────────────────────────────────

    /// @notice Deal `id` as stored (state `None` if unknown). `drawn` is the current
    ///         round's mediator as 1 + its index in the deal's list (0: none drawn yet);
    ///         `mark` the block that draws the current audit, mediator or appeal.
    function getDeal(bytes32 id)
        external
        view
        returns (State state, uint64 deadline, uint64 mark, uint8 drawn, uint8 flags, bytes19 commit)
    {
        Slot memory s = _get(id);
        return (s.state, s.deadline, s.mark, s.drawn, s.flags, s.commit);
    }

    /// @notice The state of deal `id`, after checking `t` and `c` against it (reverts
    ///         `WrongCommitment` otherwise): what another contract (the job board) trusts.
    function verify(bytes32 id, Terms calldata t, Case calldata c) external view returns (State) {
        Slot memory s = _get(id);
        if (s.state == State.None || s.commit != _commitment(id, t, c)) revert WrongCommitment(id);
        return s.state;
    }

    /// @notice Whether the result of deal `id` (submitted in block `mark`) is audited at
    ///         the chance `auditPpm`, as `acceptResult` and `timeout` draw it in this block:
    ///         false while block `mark` is not sealed; true once its hash is gone (more than
    ///         256 blocks old): such a result is audited.
    function auditDrawn(bytes32 id, uint64 mark, uint32 auditPpm) public view returns (bool) {
        if (block.number <= mark) return false;
        if (block.number - mark > BLOCKHASH_WINDOW) return true;
        return _auditRoll(blockhash(mark), id) % PPM < auditPpm;
    }

    // ─── Internals ────────────────────────────────────────────────────────────

    // uint256(keccak256(abi.encode(h, id, "audit"))), written out in scratch memory.
    function _auditRoll(bytes32 h, bytes32 id) private pure returns (uint256 roll) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, h)
            mstore(add(m, 0x20), id)
            mstore(add(m, 0x40), 0x60)
            mstore(add(m, 0x60), 5)
            mstore(add(m, 0x80), "audit")
            roll := keccak256(m, 0xa0)
        }
    }

    // The EIP-712 struct hash of `deal`, whose mediators hash to `mediatorsHash`: the words
    // of `deal` as they stand in calldata (each checked for its type when read, the solver
    // here, the rest by `createDeal`), the mediators' offset replaced by their hash.
    function _hashDeal(Deal calldata deal, bytes32 mediatorsHash) private pure returns (bytes32 h) {
        bytes32 typeHash = DEAL_TYPEHASH;
        address solver = deal.solver;
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, typeHash)
            calldatacopy(add(m, 0x20), deal, 0x1e0)
            mstore(add(m, 0x60), solver)
            mstore(add(m, 0x80), mediatorsHash)
            h := keccak256(m, 0x200)
        }
    }

    // keccak256(abi.encodePacked(mediators)): the addresses' words as they stand in calldata.
    function _hashMediators(address[] calldata mediators) private pure returns (bytes32 h) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            let n := shl(5, mediators.length)
            calldatacopy(m, mediators.offset, n)
            h := keccak256(m, n)
        }
    }

    // Whether `signer` signed `hash`: an ECDSA signature (65 bytes, s in the lower half, v 27
    // or 28) that recovers to it, else ERC-1271 if `signer` is a contract.
    function _signedBy(address signer, bytes32 hash, bytes calldata sig) private view returns (bool) {
        if (sig.length == 65) {
            bytes32 r;
            bytes32 s;
            uint8 v;
            assembly ("memory-safe") {
                r := calldataload(sig.offset)
                s := calldataload(add(sig.offset, 0x20))
                v := byte(0, calldataload(add(sig.offset, 0x40)))
            }
            if (uint256(s) <= 0x7FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF5D576E7357A4501DDFE92F46681B20A0) {
                // ecrecover, with v as given: the precompile recovers nobody for v not 27 or 28.
                address recovered;
                assembly ("memory-safe") {
                    let m := mload(0x40)
                    mstore(m, hash)
                    mstore(add(m, 0x20), v)
                    mstore(add(m, 0x40), r)
                    mstore(add(m, 0x60), s)
                    mstore(0, 0)
                    pop(staticcall(gas(), 1, m, 0x80, 0, 0x20))
                    recovered := mload(0)
                }
                if (recovered != address(0) && recovered == signer) return true;
            }
        }
        return signer.code.length != 0 && SignatureChecker.isValidERC1271SignatureNow(signer, hash, sig);
    }

    // The commitment of a deal created from `deal`: its terms as `termsOf` gives them (each
    // checked by `createDeal` to fit its type) and an empty case.
    function _commitment(bytes32 id, Deal calldata deal, bytes32 mediatorsHash) private pure returns (bytes19 r) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, id)
            mstore(add(m, 0x20), calldataload(deal)) // jobCreator
            mstore(add(m, 0x40), calldataload(add(deal, 0x20))) // provider
            calldatacopy(add(m, 0x60), add(deal, 0x80), 0xa0) // price, collateral, mediationFee, auditFee, auditPpm
            calldatacopy(add(m, 0x100), add(deal, 0x140), 0x40) // judgeTimeout, mediationTimeout
            mstore(add(m, 0x140), mediatorsHash)
            mstore(add(m, 0x160), calldataload(add(deal, 0x1a0))) // jobHash
            mstore(add(m, 0x180), 0)
            mstore(add(m, 0x1a0), 0)
            mstore(add(m, 0x1c0), 0)
            mstore(add(m, 0x1e0), 0)
            r := and(keccak256(m, 0x200), not(0xffffffffffffffffffffffffff))
        }
    }

    // bytes19(keccak256(abi.encode(id, t, c))), the words of `t` and `c` as they stand in
    // calldata: a word that is not the clean encoding of its field makes another commitment,
    // refused.
    function _commitment(bytes32 id, Terms calldata t, Case calldata c) private pure returns (bytes19 r) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, id)
            calldatacopy(add(m, 0x20), t, 0x160)
            calldatacopy(add(m, 0x180), c, 0x80)
            r := and(keccak256(m, 0x200), not(0xffffffffffffffffffffffffff))
        }
    }

    // The same for the case c = (resultHash, excluded, ruledBy, appealMediator).
    function _commitment(
        bytes32 id,
        Terms calldata t,
        bytes32 resultHash,
        uint16 excluded,
        address ruledBy,
        address appealMediator
    ) private pure returns (bytes19 r) {
        assembly ("memory-safe") {
            let m := mload(0x40)
            mstore(m, id)
            calldatacopy(add(m, 0x20), t, 0x160)
            mstore(add(m, 0x180), resultHash)
            mstore(add(m, 0x1a0), excluded)
            mstore(add(m, 0x1c0), ruledBy)
            mstore(add(m, 0x1e0), appealMediator)
            r := and(keccak256(m, 0x200), not(0xffffffffffffffffffffffffff))
        }
    }

    // The deal's storage word, one read, unpacked into memory: the fields of `Slot` as
    // Solidity packs them (commit in the low 152 bits, then state, deadline, mark, drawn,
    // flags).
    function _get(bytes32 id) private view returns (Slot memory s) {
        _read(id, s);
    }

    // `_get` into `s`: every path allocates its deal's memory once.
    function _read(bytes32 id, Slot memory s) private view {
        Slot storage p = _deals[id];
        assembly ("memory-safe") {
            let w := sload(p.slot)
            mstore(s, shl(104, w))
            mstore(add(s, 0x20), and(shr(152, w), 0xff))
            mstore(add(s, 0x40), and(shr(160, w), 0xffffffffff))
            mstore(add(s, 0x60), and(shr(200, w), 0xffffffffff))
            mstore(add(s, 0x80), and(shr(240, w), 0xff))
            mstore(add(s, 0xa0), shr(248, w))
        }
    }

    // The state of deal `id`: one read of its word, nothing else unpacked.
    function _stateOf(bytes32 id) private view returns (State state) {
        Slot storage p = _deals[id];
        assembly ("memory-safe") {
            state := and(shr(152, sload(p.slot)), 0xff)
        }
    }

    // Writes a new deal's word, as `_put` packs it: `commit`, state `Created`, `deadline`;
    // mark, drawn and flags zero.
    function _putNew(bytes32 id, bytes19 commit, uint40 deadline) private {
        Slot storage p = _deals[id];
        uint256 created = uint256(State.Created);
        assembly ("memory-safe") {
            sstore(p.slot, or(or(shr(104, commit), shl(152, created)), shl(160, and(deadline, 0xffffffffff))))
        }
    }

    // Packs `s` into the deal's storage word, one write.
    function _put(bytes32 id, Slot memory s) private {
        Slot storage p = _deals[id];
        assembly ("memory-safe") {
            let w := or(shr(104, mload(s)), shl(152, and(mload(add(s, 0x20)), 0xff)))
            w := or(w, shl(160, and(mload(add(s, 0x40)), 0xffffffffff)))
            w := or(w, shl(200, and(mload(add(s, 0x60)), 0xffffffffff)))
            w := or(w, shl(240, and(mload(add(s, 0x80)), 0xff)))
            w := or(w, shl(248, and(mload(add(s, 0xa0)), 0xff)))
            sstore(p.slot, w)
        }
    }

    // Deal `id`'s storage and its word, as `_put` packs it, unchecked.
    function _word(bytes32 id) private view returns (Slot storage p, uint256 w) {
        p = _deals[id];
        assembly ("memory-safe") {
            w := sload(p.slot)
        }
    }

    // Deal `id`'s storage and word, after checking as `_load` does that it is in `state`
    // with commitment `commit`.
    function _loadWord(bytes32 id, bytes19 commit, State state) private view returns (Slot storage p, uint256 w) {
        (p, w) = _word(id);
        State now_ = State(uint8(w >> 152));
        if (now_ == State.None) revert WrongState(id, State.None);
        if (bytes19(bytes32(w << 104)) != commit) revert WrongCommitment(id);
        if (now_ != state) revert WrongState(id, now_);
    }

    // The deal in `state`, after checking its commitment is `commit`.
    function _load(bytes32 id, bytes19 commit, State state) private view returns (Slot memory s) {
        _readChecked(id, commit, s);
        if (s.state != state) revert WrongState(id, s.state);
    }

    function _loadAny(bytes32 id, bytes19 commit) private view returns (Slot memory s) {
        _readChecked(id, commit, s);
    }

    function _readChecked(bytes32 id, bytes19 commit, Slot memory s) private view {
        _read(id, s);
        if (s.state == State.None) revert WrongState(id, State.None);
        if (s.commit != commit) revert WrongCommitment(id);
    }

    function _loadDispute(bytes32 id, Terms calldata t, Case calldata c, address[] calldata mediators)
        private
        view
        returns (Slot memory s)
    {
        _readChecked(id, _commitment(id, t, c), s);
        if (s.state != State.Challenged && s.state != State.Audited) revert WrongState(id, s.state);
        _checkMediators(id, t, mediators);
    }

    function _checkMediators(bytes32 id, Terms calldata t, address[] calldata mediators) private pure {
        if (_hashMediators(mediators) != t.mediators) revert WrongMediators(id);
    }

    // The result is judged by the job creator's acceptance or by its deadline: the provider
    // is paid as `paid` unless the audit draw says otherwise, or the draw's block hash is
    // gone (`auditDrawn`): then the result is audited, never drawn again from a later block
    // (THREATS A1). `w` is the deal's word at `p`, in state `ResultSubmitted` (so `drawn`
    // and `flags` are zero); this writes it without unpacking it.
    function _judgeOrAudit(bytes32 id, Terms calldata t, Case calldata c, Slot storage p, uint256 w, State paid)
        private
        returns (State)
    {
        uint256 b = uint40(w >> 200);
        if (block.number <= b) revert DrawNotReady(id, uint64(b));
        // The caller checked `t` against the deal's commitment, made of clean words: its
        // words are read as they stand in calldata, without checking each again.
        if (auditDrawn(id, uint64(b), uint32(_wordOf(t, 0xc0)))) {
            uint256 audited = uint256(State.Audited);
            uint256 flags = FLAG_AUDIT;
            // A new round, as `_newRound` starts it: its mediator from this block's hash,
            // drawn and ruling by `mediationTimeout` from now.
            uint256 deadline = uint40(block.timestamp + _wordOf(t, 0x100));
            uint256 mark = uint40(block.number);
            assembly ("memory-safe") {
                // The commit kept; state, deadline, mark, drawn (zero) and flags as `_put`
                // packs them.
                w := or(and(w, 0xffffffffffffffffffffffffffffffffffffff), shl(152, audited))
                w := or(w, or(shl(160, deadline), shl(200, mark)))
                sstore(p.slot, or(w, shl(248, flags)))
            }
            emit DealAudited(id, c.resultHash, uint64(block.number));
            return State.Audited;
        }
        uint256 state = uint256(paid);
        assembly ("memory-safe") {
            // Only the state changes.
            sstore(p.slot, or(and(w, not(shl(152, 0xff))), shl(152, state)))
        }
        // The provider gets the price and its collateral; the job creator its audit fee
        // (three uint96 amounts: no sum overflows).
        (address jobCreator, address provider, uint256 price, uint256 collateral, uint256 auditFee) = _amountsOf(t);
        unchecked {
            _settle(jobCreator, price + auditFee, auditFee);
            _settle(provider, collateral, price + collateral);
        }
        return paid;
    }

    // The words of `t` that judging a result settles with, as they stand in calldata.
    function _amountsOf(Terms calldata t)
        private
        pure
        returns (address jobCreator, address provider, uint256 price, uint256 collateral, uint256 auditFee)
    {
        assembly ("memory-safe") {
            jobCreator := calldataload(t)
            provider := calldataload(add(t, 0x20))
            price := calldataload(add(t, 0x40))
            collateral := calldataload(add(t, 0x60))
            auditFee := calldataload(add(t, 0xa0))
        }
    }

    // The word at `offset` in `t`, as it stands in calldata.
    function _wordOf(Terms calldata t, uint256 offset) private pure returns (uint256 word) {
        assembly ("memory-safe") {
            word := calldataload(add(t, offset))
        }
    }

    // The current round's mediator missed its deadline. Returns whether the deal settled.
    // Writes the deal.
    function _silentRound(bytes32 id, Terms calldata t, Case calldata c, Slot memory s, address[] calldata mediators)
        private
        returns (bool settled)
    {
        bool audit = s.state == State.Audited;
        uint16 excluded = c.excluded;
        uint256 idx = s.drawn;
        if (idx == 0) {
            // Nobody drew it: the round's block names who `draw` would have drawn (passing
            // over, and excluding, those without a bond).
            uint256 b = s.mark;
            if (block.number > b && block.number - b <= BLOCKHASH_WINDOW) {
                (idx, excluded) = _drawBonded(blockhash(b), id, excluded, mediators);
            }
        }
        if (idx != 0) {
            address missed = mediators[idx - 1];
            excluded |= uint16(1 << (idx - 1));
            _slash(missed, _silenceSlash, audit ? t.provider : t.jobCreator);
            emit MediatorMissed(id, missed, excluded);
        }
        s.drawn = 0;
        // The case grows by what `MediatorMissed` told, also when the deal settles here.
        if (excluded != c.excluded) {
            s.commit = _commitment(id, t, c.resultHash, excluded, c.ruledBy, c.appealMediator);
        }
        if (!audit && _untried(excluded, mediators.length) > 0) {
            _newRound(s, t.mediationTimeout);
            _put(id, s);
            emit DealChallenged(id, c.resultHash, uint64(block.number));
            return false;
        }
        s.state = State.TimedOutNoVerdict;
        _put(id, s);
        // The provider is paid; the job creator's fee comes back.
        _settle(t.jobCreator, uint256(t.price) + (audit ? t.auditFee : t.mediationFee), audit ? t.auditFee : t.mediationFee);
        _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);
        return true;
    }

    // The appeal's deadline passed: its mediator (if any) was silent; the verdict stands.
    // Writes the deal.
    function _lapseAppeal(bytes32 id, Terms calldata t, Case calldata c, Slot memory s) private {
        uint8 flags = s.flags;
        address appellant = flags & FLAG_APPEAL_BY_JOB_CREATOR != 0 ? t.jobCreator : t.provider;
        _unlockTo(appellant, _appealFee, appellant);
        if (c.appealMediator != address(0)) _slash(c.appealMediator, _silenceSlash, appellant);
        _endAppeal(s, flags);
        _put(id, s);
        emit AppealLapsed(id, c.appealMediator);
    }

    function _endAppeal(Slot memory s, uint8 flags) private pure {
        s.state = flags & FLAG_HONEST != 0 ? State.MediatedHonest : State.MediatedDishonest;
        s.flags = flags | FLAG_APPEAL_DONE;
    }

    // Draws an appeal mediator from the approved pool: bonded, not a party, not `first`.
    function _drawFromPool(bytes32 h, bytes32 id, Terms calldata t, address first) private view returns (address) {
        IMediatorPool pool = registry;
        if (address(pool) == address(0)) return address(0);
        uint256 n = pool.approvedCount(MEDIATOR_ROLE);
        if (n == 0) return address(0);
        uint256 minBond = _minBond;
        for (uint256 k = 0; k < APPEAL_DRAWS; k++) {
            address m = pool.approvedAt(MEDIATOR_ROLE, uint256(keccak256(abi.encode(h, id, "appeal", k))) % n);
            if (m != first && m != t.jobCreator && m != t.provider && _bonded(m, minBond)) return m;
        }
        return address(0);
    }

    // Starts a dispute round: its mediator comes from this block's hash, and it has until
    // `mediationTimeout` from now to be drawn (then from the draw to rule).
    function _newRound(Slot memory s, uint32 mediationTimeout) private view {
        s.mark = uint40(block.number);
        s.deadline = uint40(block.timestamp + mediationTimeout);
        s.drawn = 0;
    }

    // Draws among the deal's mediators not in `excluded` with block hash `h`: one without a
    // bond is excluded for good and another drawn. Returns 1 + the index of the one drawn
    // (0: none is left) and the excluded set.
    function _drawBonded(bytes32 h, bytes32 id, uint16 excluded, address[] calldata mediators)
        private
        returns (uint256 drawn, uint16 excludedNow)
    {
        uint256 minBond = _minBond;
        while (true) {
            uint256 i = _pick(h, id, excluded, mediators.length);
            if (i == type(uint256).max) return (0, excluded);
            if (_bonded(mediators[i], minBond)) return (i + 1, excluded);
            excluded |= uint16(1 << i);
            emit MediatorMissed(id, mediators[i], excluded);
        }
    }

    // The index of the mediator `h` draws among the `n` not excluded; max when none is left.
    function _pick(bytes32 h, bytes32 id, uint16 excluded, uint256 n) private pure returns (uint256) {
        uint256 left = _untried(excluded, n);
        if (left == 0) return type(uint256).max;
        uint256 pick = uint256(keccak256(abi.encode(h, id, excluded))) % left;
        for (uint256 i = 0; i < n; i++) {
            if (excluded & (1 << i) != 0) continue;
            if (pick == 0) return i;
            pick--;
        }
        return type(uint256).max;
    }

    function _untried(uint16 excluded, uint256 n) private pure returns (uint256 left) {
        left = n;
        for (uint16 x = excluded; x != 0; x &= x - 1) {
            left--;
        }
    }

    // The rules a new deal's terms must keep; returns the hash of its mediators. The terms'
    // words are read as they stand in calldata: each check below also bounds its word to
    // its type (the amounts to uint96, the chance and timeouts below uint32).
    function _checkTerms(Deal calldata deal) private view returns (bytes32 mediatorsHash) {
        address[] calldata mediators = deal.mediators;
        _checkMediators(mediators, deal.jobCreator, deal.provider, _minMediators);
        uint256 price;
        uint256 collateral;
        uint256 fee;
        uint256 auditFee;
        uint256 auditPpm;
        assembly ("memory-safe") {
            price := calldataload(add(deal, 0x80))
            collateral := calldataload(add(deal, 0xa0))
            fee := calldataload(add(deal, 0xc0))
            auditFee := calldataload(add(deal, 0xe0))
            auditPpm := calldataload(add(deal, 0x100))
        }
        _checkAmount(price);
        _checkAmount(collateral);
        _checkAmount(fee);
        _checkAmount(auditFee);
        if (fee < _minMediationFee) revert FeeBelowFloor(fee, _minMediationFee);
        if (auditFee < _minMediationFee) revert FeeBelowFloor(auditFee, _minMediationFee);
        if (collateral < fee) revert CollateralBelowFee(collateral, fee);
        if (collateral < auditFee) revert CollateralBelowFee(collateral, auditFee);
        if (auditPpm < _minAuditPpm || auditPpm > PPM) revert AuditChanceTooLow(uint32(auditPpm), _minAuditPpm);
        _checkTimeouts(deal);
        return _hashMediators(mediators);
    }

    function _checkTimeouts(Deal calldata deal) private pure {
        uint256 resultTimeout;
        uint256 judgeTimeout;
        uint256 mediationTimeout;
        assembly ("memory-safe") {
            resultTimeout := calldataload(add(deal, 0x120))
            judgeTimeout := calldataload(add(deal, 0x140))
            mediationTimeout := calldataload(add(deal, 0x160))
        }
        if (resultTimeout == 0 || resultTimeout > type(uint32).max) revert InvalidTimeout(uint64(resultTimeout));
        _checkDisputeTimeout(judgeTimeout);
        _checkDisputeTimeout(mediationTimeout);
    }

    function _checkMediators(address[] calldata mediators, address jobCreator, address provider, uint256 min)
        private
        pure
    {
        uint256 n = mediators.length;
        if (n < min) revert TooFewMediators(n, min);
        if (n > MAX_MEDIATORS) revert TooManyMediators(n);
        for (uint256 i = 0; i < n; i++) {
            address m = mediators[i];
            if (m == address(0) || m == jobCreator || m == provider) revert InvalidMediator(m);
            for (uint256 j = 0; j < i; j++) {
                if (mediators[j] == m) revert InvalidMediator(m);
            }
        }
    }

    function _checkState(bytes32 id, Slot memory s, State expected) private pure {
        if (s.state != expected) revert WrongState(id, s.state);
    }

    function _checkBeforeDeadline(bytes32 id, Slot memory s) private view {
        if (block.timestamp > s.deadline) revert DeadlinePassed(id, s.deadline);
    }

    function _checkAmount(uint256 amount) private pure returns (uint96) {
        if (amount > type(uint96).max) revert AmountTooLarge(amount);
        return uint96(amount);
    }

    function _checkDisputeTimeout(uint256 t) private pure {
        if (t == 0 || t > MAX_DISPUTE_TIMEOUT) revert InvalidTimeout(uint64(t));
    }
}

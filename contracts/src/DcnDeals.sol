// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {SignatureChecker} from "@openzeppelin/contracts/utils/cryptography/SignatureChecker.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";

/// @title DcnDeals
/// @notice Escrow and the deal state machine of the dcn compute network.
///
/// Every account keeps an escrow balance here, split into free and locked tokens. A deal
/// locks the job creator's price and the provider's collateral; each transition moves
/// locked tokens to whoever the rules pay. Every waiting state has a deadline after which
/// anyone may call `timeout`, so no deal stays open and no token is stranded.
///
///     Created ──submitResult──▶ ResultSubmitted ──acceptResult──▶ Accepted
///        │                         │      └──challenge──▶ Challenged ──mediate──▶ MediatedHonest
///        │ timeout                 │ timeout               │  ▲  │                MediatedDishonest
///        ▼                         ▼              draw, or │  │  ▼ timeout, no mediator left
///     TimedOutNoResult          TimedOutAccepted  timeout  └──┘  TimedOutNoVerdict
///                                                 (redraw)
///
/// A provider's signature is good until the deal's `createDeadline`, and the provider can
/// `cancelDeal` it before that (state `Cancelled`).
///
/// The mediator of a challenge is drawn from the hash of the challenge's block, which nobody
/// knows when sending the challenge; `draw` (anyone, from the next block) stores it. A
/// drawn mediator that misses its deadline is excluded and another is drawn; when none is
/// left the result stands (the provider is paid, the fee goes back).
///
/// Invariant: `booked == Σ (free + locked)` over all accounts, and
/// `token.balanceOf(this) >= booked`. Tokens sent here outside `deposit` are not anyone's
/// escrow; the owner (the deployer) can `skim` them out without touching the books.
///
/// The token must move exactly the amounts it is asked to: fee-on-transfer and rebasing
/// tokens are not supported (a deposit would credit more than arrived).
contract DcnDeals is EIP712, Ownable {
    using SafeERC20 for IERC20;

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
        /// Seconds from creation for the provider to submit a result.
        uint64 resultTimeout;
        /// Seconds from result submission for the job creator to accept or challenge.
        uint64 judgeTimeout;
        /// Seconds from the draw for the drawn mediator to rule.
        uint64 mediationTimeout;
        /// Unix seconds after which `createDeal` refuses this deal: the provider's signature
        /// expires then.
        uint64 createDeadline;
        /// Content hash of the job spec.
        bytes32 jobHash;
        uint256 nonce;
    }

    /// @notice Where a deal is in its life. Values from `Accepted` on are final.
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
        Cancelled
    }

    /// @notice A deal as stored, returned by `getDeal`.
    struct DealInfo {
        State state;
        address jobCreator;
        address provider;
        /// The drawn mediator of the current challenge round; zero before a draw.
        address mediator;
        uint256 price;
        uint256 collateral;
        uint256 mediationFee;
        /// Deadline of the current waiting state (unix seconds); meaningless once final.
        uint64 deadline;
        bytes32 resultHash;
    }

    /// @notice An account's escrow.
    struct Escrow {
        uint128 free;
        uint128 locked;
    }

    // Packed into six storage slots; the comments give the slot. Slot 5 is written only
    // when a challenge draws a mediator.
    struct Record {
        address jobCreator; // 0
        State state; // 0
        uint40 deadline; // 0
        uint32 judgeTimeout; // 0
        address provider; // 1
        uint96 price; // 1
        address mediator; // 2: the deal's first mediator
        uint96 collateral; // 2
        uint96 mediationFee; // 3
        uint32 mediationTimeout; // 3
        uint8 mediatorCount; // 3
        uint16 excluded; // 3: bit i set when mediator i missed its deadline
        uint64 drawBlock; // 3: the block whose hash draws the current round's mediator
        bytes32 resultHash; // 4
        address drawn; // 5: the current round's mediator, zero until drawn
    }

    bytes32 public constant DEAL_TYPEHASH = keccak256(
        "Deal(address jobCreator,address provider,address solver,address[] mediators,uint256 price,uint256 collateral,uint256 mediationFee,uint64 resultTimeout,uint64 judgeTimeout,uint64 mediationTimeout,uint64 createDeadline,bytes32 jobHash,uint256 nonce)"
    );

    /// @notice Most mediators a deal may name.
    uint256 public constant MAX_MEDIATORS = 16;

    /// @notice The token of payments, collateral and fees.
    IERC20 public immutable token;

    /// @notice Tokens the books account for: Σ (free + locked) over all accounts.
    uint256 public booked;

    mapping(address => Escrow) private _escrow;
    mapping(bytes32 => Record) private _deals;
    // Mediators after the first, stored only for deals that name more than one.
    mapping(bytes32 => address[]) private _moreMediators;

    /// @notice Blocks whose hash the EVM still returns: a draw waiting longer is postponed.
    uint256 private constant BLOCKHASH_WINDOW = 256;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event DealCreated(
        bytes32 indexed dealId,
        address indexed jobCreator,
        address indexed provider,
        address solver,
        bytes32 jobHash,
        uint256 price,
        uint256 collateral,
        uint64 resultDeadline
    );
    event ResultSubmitted(bytes32 indexed dealId, address indexed provider, bytes32 resultHash, uint64 judgeDeadline);
    event ResultAccepted(bytes32 indexed dealId, address indexed jobCreator, address indexed provider, uint256 price);
    event DealCancelled(bytes32 indexed dealId, address indexed provider);
    event DealChallenged(bytes32 indexed dealId, address indexed jobCreator, uint256 mediationFee, uint64 drawBlock);
    event MediatorDrawn(bytes32 indexed dealId, address indexed mediator, uint64 mediationDeadline);
    event DrawPostponed(bytes32 indexed dealId, uint64 drawBlock);
    event MediatorMissed(bytes32 indexed dealId, address indexed mediator, uint256 mediatorsLeft);
    event DealMediated(bytes32 indexed dealId, address indexed mediator, bool providerHonest);
    event DealTimedOut(bytes32 indexed dealId, State indexed from, State to);
    event Skimmed(address indexed to, uint256 amount);

    error ZeroAmount();
    error InsufficientEscrow(address account, uint256 needed, uint256 available);
    error NotJobCreator(address caller);
    error NotProvider(address caller);
    error NotMediator(address caller, address mediator);
    error WrongState(bytes32 dealId, State state);
    error DeadlinePassed(bytes32 dealId, uint64 deadline);
    error DeadlineNotReached(bytes32 dealId, uint64 deadline);
    error DealExists(bytes32 dealId);
    error BadSignature(address provider);
    error NoMediators();
    error TooManyMediators(uint256 count);
    error InvalidMediator(address mediator);
    error AmountTooLarge(uint256 amount);
    error InvalidTimeout(uint64 timeout);
    error CollateralBelowFee(uint256 collateral, uint256 mediationFee);
    error EmptyResultHash();
    error NothingToSkim(uint256 held, uint256 booked);
    error DealExpired(uint64 createDeadline);
    error DealIsCancelled(bytes32 dealId);
    error DrawNotReady(bytes32 dealId, uint64 drawBlock);

    constructor(IERC20 token_) EIP712("DcnDeals", "1") Ownable(msg.sender) {
        token = token_;
    }

    // ─── Escrow ───────────────────────────────────────────────────────────────

    /// @notice Moves `amount` tokens from the caller into its free escrow (needs approval).
    function deposit(uint256 amount) external {
        _deposit(amount);
    }

    /// @notice `deposit` with an EIP-2612 permit in the same transaction. A permit that was
    ///         already used (for example front-run) is ignored if the allowance suffices.
    function depositWithPermit(uint256 amount, uint256 deadline, uint8 v, bytes32 r, bytes32 s) external {
        try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}
        _deposit(amount);
    }

    /// @notice Sends `amount` of the caller's free escrow back to it.
    function withdraw(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Escrow storage e = _escrow[msg.sender];
        if (e.free < amount) revert InsufficientEscrow(msg.sender, amount, e.free);
        e.free -= uint128(amount);
        booked -= amount;
        emit Withdrawn(msg.sender, amount);
        token.safeTransfer(msg.sender, amount);
    }

    /// @notice Sends the tokens held beyond the books (sent here outside `deposit`) to `to`.
    ///         No escrow changes: every account keeps exactly what it had.
    function skim(address to) external onlyOwner returns (uint256 amount) {
        uint256 held = token.balanceOf(address(this));
        if (held <= booked) revert NothingToSkim(held, booked);
        amount = held - booked;
        emit Skimmed(to, amount);
        token.safeTransfer(to, amount);
    }

    /// @notice Free and locked escrow of `account`.
    function escrowOf(address account) external view returns (uint256 free, uint256 locked) {
        Escrow storage e = _escrow[account];
        return (e.free, e.locked);
    }

    function _deposit(uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        Escrow storage e = _escrow[msg.sender];
        e.free = SafeCast.toUint128(uint256(e.free) + amount);
        booked += amount;
        emit Deposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    // ─── Deal life cycle ──────────────────────────────────────────────────────

    /// @notice The deal id: the EIP-712 digest of `deal` under this contract's domain.
    ///         The provider signs exactly this digest.
    function dealId(Deal calldata deal) public view returns (bytes32) {
        return _hashTypedDataV4(_hashDeal(deal));
    }

    /// @notice Creates a deal signed by its provider. Sent by the job creator, at the latest
    ///         at `deal.createDeadline`; locks the job creator's `price` and the provider's
    ///         `collateral` (so no more deals are created than the provider has free escrow for).
    function createDeal(Deal calldata deal, bytes calldata providerSig) external returns (bytes32 id) {
        if (msg.sender != deal.jobCreator) revert NotJobCreator(msg.sender);
        if (block.timestamp > deal.createDeadline) revert DealExpired(deal.createDeadline);
        uint256 n = deal.mediators.length;
        if (n == 0) revert NoMediators();
        if (n > MAX_MEDIATORS) revert TooManyMediators(n);
        for (uint256 i = 0; i < n; i++) {
            address m = deal.mediators[i];
            if (m == address(0) || m == deal.jobCreator || m == deal.provider) revert InvalidMediator(m);
            for (uint256 j = 0; j < i; j++) {
                if (deal.mediators[j] == m) revert InvalidMediator(m);
            }
        }
        uint96 price = _toAmount(deal.price);
        uint96 collateral = _toAmount(deal.collateral);
        uint96 fee = _toAmount(deal.mediationFee);
        if (collateral < fee) revert CollateralBelowFee(collateral, fee);
        _checkTimeout(deal.resultTimeout);
        _checkTimeout(deal.judgeTimeout);
        _checkTimeout(deal.mediationTimeout);

        id = dealId(deal);
        Record storage d = _deals[id];
        if (d.state != State.None) {
            if (d.state == State.Cancelled) revert DealIsCancelled(id);
            revert DealExists(id);
        }
        if (!SignatureChecker.isValidSignatureNow(deal.provider, id, providerSig)) revert BadSignature(deal.provider);

        _lock(deal.jobCreator, price);
        _lock(deal.provider, collateral);

        uint40 deadline = uint40(block.timestamp + deal.resultTimeout);
        d.jobCreator = deal.jobCreator;
        d.state = State.Created;
        d.deadline = deadline;
        d.judgeTimeout = uint32(deal.judgeTimeout);
        d.provider = deal.provider;
        d.price = price;
        d.mediator = deal.mediators[0];
        d.collateral = collateral;
        d.mediationFee = fee;
        d.mediationTimeout = uint32(deal.mediationTimeout);
        d.mediatorCount = uint8(n);
        if (n > 1) _moreMediators[id] = deal.mediators[1:];

        emit DealCreated(
            id, deal.jobCreator, deal.provider, deal.solver, deal.jobHash, price, collateral, uint64(deadline)
        );
    }

    /// @notice The provider withdraws its signature of `deal` before the deal is created:
    ///         `createDeal` refuses it from then on. Sent by the provider (a contract
    ///         provider calls it itself).
    function cancelDeal(Deal calldata deal) external returns (bytes32 id) {
        if (msg.sender != deal.provider) revert NotProvider(msg.sender);
        id = dealId(deal);
        Record storage d = _deals[id];
        _checkState(id, d, State.None);
        d.state = State.Cancelled;
        emit DealCancelled(id, msg.sender);
    }

    /// @notice The provider posts the hash of its result bundle, before the result deadline.
    function submitResult(bytes32 id, bytes32 resultHash) external {
        Record storage d = _deals[id];
        if (msg.sender != d.provider) revert NotProvider(msg.sender);
        _checkState(id, d, State.Created);
        _checkBeforeDeadline(id, d);
        if (resultHash == bytes32(0)) revert EmptyResultHash();
        uint40 deadline = uint40(block.timestamp + d.judgeTimeout);
        d.state = State.ResultSubmitted;
        d.deadline = deadline;
        d.resultHash = resultHash;
        emit ResultSubmitted(id, msg.sender, resultHash, uint64(deadline));
    }

    /// @notice The job creator accepts the result: the provider is paid, collateral unlocked.
    function acceptResult(bytes32 id) external {
        Record storage d = _deals[id];
        if (msg.sender != d.jobCreator) revert NotJobCreator(msg.sender);
        _checkState(id, d, State.ResultSubmitted);
        d.state = State.Accepted;
        _payProvider(d);
        emit ResultAccepted(id, d.jobCreator, d.provider, d.price);
    }

    /// @notice The job creator disputes the result before the judge deadline: its mediation
    ///         fee is locked and a mediator of the deal will be drawn from this block's hash,
    ///         which the job creator cannot know when it sends the challenge.
    function challenge(bytes32 id) external {
        Record storage d = _deals[id];
        if (msg.sender != d.jobCreator) revert NotJobCreator(msg.sender);
        _checkState(id, d, State.ResultSubmitted);
        _checkBeforeDeadline(id, d);
        uint96 fee = d.mediationFee;
        _lock(msg.sender, fee);
        d.state = State.Challenged;
        _newRound(d);
        emit DealChallenged(id, msg.sender, fee, d.drawBlock);
    }

    /// @notice Draws the mediator of the current challenge round from the hash of the round's
    ///         block; anyone may call it from the next block on, and calling it again returns
    ///         the same mediator. The drawn mediator has `mediationTimeout` from now to rule.
    ///         If the block is too old for its hash (256 blocks), the draw is postponed to
    ///         the current block and this returns zero: call again from the next block.
    function draw(bytes32 id) external returns (address mediator) {
        Record storage d = _deals[id];
        _checkState(id, d, State.Challenged);
        mediator = d.drawn;
        if (mediator != address(0)) return mediator;
        mediator = _drawn(id, d);
        if (mediator == address(0)) {
            if (block.number <= d.drawBlock) revert DrawNotReady(id, d.drawBlock);
            d.drawBlock = uint64(block.number);
            emit DrawPostponed(id, uint64(block.number));
            return address(0);
        }
        uint40 deadline = uint40(block.timestamp + d.mediationTimeout);
        d.drawn = mediator;
        d.deadline = deadline;
        emit MediatorDrawn(id, mediator, uint64(deadline));
    }

    /// @notice The drawn mediator's verdict, before the mediation deadline.
    ///         Honest: the provider is paid and the job creator pays the mediator's fee.
    ///         Dishonest: the mediator's fee comes out of the provider's collateral; the job
    ///         creator gets its price, its fee and the rest of the collateral.
    function mediate(bytes32 id, bool providerHonest) external {
        Record storage d = _deals[id];
        _checkState(id, d, State.Challenged);
        if (msg.sender != d.drawn || msg.sender == address(0)) revert NotMediator(msg.sender, d.drawn);
        _checkBeforeDeadline(id, d);
        address jobCreator = d.jobCreator;
        uint96 fee = d.mediationFee;
        if (providerHonest) {
            d.state = State.MediatedHonest;
            _payProvider(d);
            _unlockTo(jobCreator, fee, msg.sender);
        } else {
            d.state = State.MediatedDishonest;
            uint96 collateral = d.collateral;
            _unlockTo(jobCreator, uint256(d.price) + fee, jobCreator);
            _unlockTo(d.provider, fee, msg.sender);
            _unlockTo(d.provider, collateral - fee, jobCreator);
        }
        emit DealMediated(id, msg.sender, providerHonest);
    }

    /// @notice Settles a deal whose current deadline has passed; anyone may call it.
    ///         Created: the job creator is refunded and gets the provider's collateral.
    ///         ResultSubmitted: the provider is paid as if accepted.
    ///         Challenged: the round's mediator (drawn now if nobody drew it) missed its
    ///         deadline and is excluded; another is drawn in a new round. When none is left
    ///         the result stands: the provider is paid and the job creator's fee goes back.
    ///         A round whose block is too old to draw from excludes nobody.
    function timeout(bytes32 id) external {
        Record storage d = _deals[id];
        State from = d.state;
        if (from != State.Created && from != State.ResultSubmitted && from != State.Challenged) {
            revert WrongState(id, from);
        }
        if (block.timestamp <= d.deadline) revert DeadlineNotReached(id, d.deadline);
        State to;
        address jobCreator = d.jobCreator;
        if (from == State.Created) {
            to = State.TimedOutNoResult;
            _unlockTo(jobCreator, d.price, jobCreator);
            _unlockTo(d.provider, d.collateral, jobCreator);
        } else if (from == State.ResultSubmitted) {
            to = State.TimedOutAccepted;
            _payProvider(d);
        } else {
            address missed = d.drawn;
            if (missed == address(0)) missed = _drawn(id, d);
            uint256 left = _untried(d);
            if (missed != address(0)) {
                d.excluded |= uint16(1 << _indexOf(id, d, missed));
                left -= 1;
                emit MediatorMissed(id, missed, left);
            }
            if (left > 0) {
                _newRound(d);
                d.drawn = address(0);
                emit DealChallenged(id, jobCreator, d.mediationFee, d.drawBlock);
                return;
            }
            to = State.TimedOutNoVerdict;
            _payProvider(d);
            _unlockTo(jobCreator, d.mediationFee, jobCreator);
        }
        d.state = to;
        emit DealTimedOut(id, from, to);
    }

    /// @notice The stored deal `id` (state `None` if unknown).
    function getDeal(bytes32 id) external view returns (DealInfo memory) {
        Record storage d = _deals[id];
        return DealInfo(
            d.state, d.jobCreator, d.provider, d.drawn, d.price, d.collateral, d.mediationFee, d.deadline, d.resultHash
        );
    }

    /// @notice Every mediator deal `id` named, in order (empty for an unknown deal).
    function mediatorsOf(bytes32 id) external view returns (address[] memory list) {
        Record storage d = _deals[id];
        list = new address[](d.mediatorCount);
        for (uint256 i = 0; i < list.length; i++) {
            list[i] = _mediatorAt(id, d, i);
        }
    }

    /// @notice The mediators of deal `id` that missed a deadline and are drawn no more.
    function excludedMediatorsOf(bytes32 id) external view returns (uint16 excluded, uint64 drawBlock) {
        Record storage d = _deals[id];
        return (d.excluded, d.drawBlock);
    }

    // ─── Internals ────────────────────────────────────────────────────────────

    function _hashDeal(Deal calldata deal) private pure returns (bytes32) {
        return keccak256(
            abi.encode(
                DEAL_TYPEHASH,
                deal.jobCreator,
                deal.provider,
                deal.solver,
                keccak256(abi.encodePacked(deal.mediators)),
                deal.price,
                deal.collateral,
                deal.mediationFee,
                deal.resultTimeout,
                deal.judgeTimeout,
                deal.mediationTimeout,
                deal.createDeadline,
                deal.jobHash,
                deal.nonce
            )
        );
    }

    // Starts a challenge round: its mediator comes from the hash of this block, and it has
    // until `mediationTimeout` from now to be drawn (then from the draw to rule).
    function _newRound(Record storage d) private {
        d.drawBlock = uint64(block.number);
        d.deadline = uint40(block.timestamp + d.mediationTimeout);
    }

    // The mediator the round's block hash draws among those not excluded; zero while the
    // hash is not known yet (same block) or no longer (older than 256 blocks).
    function _drawn(bytes32 id, Record storage d) private view returns (address m) {
        uint256 b = d.drawBlock;
        if (block.number <= b || block.number - b > BLOCKHASH_WINDOW) return address(0);
        uint16 excluded = d.excluded;
        uint256 pick = uint256(keccak256(abi.encode(blockhash(b), id, excluded))) % _untried(d);
        for (uint256 i = 0; m == address(0); i++) {
            if (excluded & (1 << i) != 0) continue;
            if (pick == 0) m = _mediatorAt(id, d, i);
            else pick--;
        }
    }

    function _untried(Record storage d) private view returns (uint256 n) {
        n = d.mediatorCount;
        for (uint16 x = d.excluded; x != 0; x &= x - 1) {
            n--;
        }
    }

    function _mediatorAt(bytes32 id, Record storage d, uint256 i) private view returns (address) {
        return i == 0 ? d.mediator : _moreMediators[id][i - 1];
    }

    // The index of `m` among the deal's mediators (which `createDeal` made distinct).
    function _indexOf(bytes32 id, Record storage d, address m) private view returns (uint256 i) {
        while (_mediatorAt(id, d, i) != m) {
            i++;
        }
    }

    // Provider gets the price from the job creator's lock and its collateral back.
    function _payProvider(Record storage d) private {
        address provider = d.provider;
        _unlockTo(d.jobCreator, d.price, provider);
        _unlockTo(provider, d.collateral, provider);
    }

    // Amounts are sums of at most two uint96 values, so they always fit in uint128.
    function _lock(address account, uint256 amount) private {
        Escrow storage e = _escrow[account];
        if (e.free < amount) revert InsufficientEscrow(account, amount, e.free);
        unchecked {
            e.free -= uint128(amount);
        }
        e.locked += uint128(amount);
    }

    // Moves `amount` out of `from`'s locked escrow into `to`'s free escrow.
    function _unlockTo(address from, uint256 amount, address to) private {
        if (amount == 0) return;
        _escrow[from].locked -= uint128(amount);
        _escrow[to].free += uint128(amount);
    }

    function _checkState(bytes32 id, Record storage d, State expected) private view {
        if (d.state != expected) revert WrongState(id, d.state);
    }

    function _checkBeforeDeadline(bytes32 id, Record storage d) private view {
        if (block.timestamp > d.deadline) revert DeadlinePassed(id, d.deadline);
    }

    function _toAmount(uint256 amount) private pure returns (uint96) {
        if (amount > type(uint96).max) revert AmountTooLarge(amount);
        return uint96(amount);
    }

    function _checkTimeout(uint64 t) private pure {
        if (t == 0 || t > type(uint32).max) revert InvalidTimeout(t);
    }
}

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
///        │ timeout                 │ timeout                  │                   MediatedDishonest
///        ▼                         ▼                          ▼ timeout
///     TimedOutNoResult          TimedOutAccepted           TimedOutNoVerdict
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
        /// Seconds from the challenge for the drawn mediator to rule.
        uint64 mediationTimeout;
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
        TimedOutNoVerdict
    }

    /// @notice A deal as stored, returned by `getDeal`.
    struct DealInfo {
        State state;
        address jobCreator;
        address provider;
        /// The first mediator of the deal until a challenge, then the drawn one.
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

    // Packed into five storage slots; the comments give the slot.
    struct Record {
        address jobCreator; // 0
        State state; // 0
        uint40 deadline; // 0
        uint32 judgeTimeout; // 0
        address provider; // 1
        uint96 price; // 1
        address mediator; // 2: first mediator, replaced by the drawn one at challenge
        uint96 collateral; // 2
        uint96 mediationFee; // 3
        uint32 mediationTimeout; // 3
        uint8 mediatorCount; // 3
        bytes32 resultHash; // 4
    }

    bytes32 public constant DEAL_TYPEHASH = keccak256(
        "Deal(address jobCreator,address provider,address solver,address[] mediators,uint256 price,uint256 collateral,uint256 mediationFee,uint64 resultTimeout,uint64 judgeTimeout,uint64 mediationTimeout,bytes32 jobHash,uint256 nonce)"
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
    event DealChallenged(bytes32 indexed dealId, address indexed mediator, uint256 mediationFee, uint64 mediationDeadline);
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

    /// @notice Creates a deal signed by its provider. Sent by the job creator; locks the
    ///         job creator's `price` and the provider's `collateral`.
    function createDeal(Deal calldata deal, bytes calldata providerSig) external returns (bytes32 id) {
        if (msg.sender != deal.jobCreator) revert NotJobCreator(msg.sender);
        uint256 n = deal.mediators.length;
        if (n == 0) revert NoMediators();
        if (n > MAX_MEDIATORS) revert TooManyMediators(n);
        for (uint256 i = 0; i < n; i++) {
            address m = deal.mediators[i];
            if (m == address(0) || m == deal.jobCreator || m == deal.provider) revert InvalidMediator(m);
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
        if (d.state != State.None) revert DealExists(id);
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
    ///         fee is locked and one of the deal's mediators is drawn to re-run the job.
    function challenge(bytes32 id) external {
        Record storage d = _deals[id];
        if (msg.sender != d.jobCreator) revert NotJobCreator(msg.sender);
        _checkState(id, d, State.ResultSubmitted);
        _checkBeforeDeadline(id, d);
        uint96 fee = d.mediationFee;
        _lock(msg.sender, fee);

        // Drawn when the challenge lands, so neither party knew it when the deal was made.
        uint256 n = d.mediatorCount;
        uint256 pick = uint256(keccak256(abi.encode(block.prevrandao, block.timestamp, id))) % n;
        address mediator = pick == 0 ? d.mediator : _moreMediators[id][pick - 1];
        if (n > 1) delete _moreMediators[id];

        uint40 deadline = uint40(block.timestamp + d.mediationTimeout);
        d.state = State.Challenged;
        d.deadline = deadline;
        d.mediator = mediator;
        emit DealChallenged(id, mediator, fee, uint64(deadline));
    }

    /// @notice The drawn mediator's verdict, before the mediation deadline.
    ///         Honest: the provider is paid and the job creator pays the mediator's fee.
    ///         Dishonest: the mediator's fee comes out of the provider's collateral; the job
    ///         creator gets its price, its fee and the rest of the collateral.
    function mediate(bytes32 id, bool providerHonest) external {
        Record storage d = _deals[id];
        _checkState(id, d, State.Challenged);
        if (msg.sender != d.mediator) revert NotMediator(msg.sender, d.mediator);
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
    ///         Challenged: everyone gets back what they locked; nobody is paid.
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
            to = State.TimedOutNoVerdict;
            _unlockTo(jobCreator, uint256(d.price) + d.mediationFee, jobCreator);
            _unlockTo(d.provider, d.collateral, d.provider);
        }
        d.state = to;
        emit DealTimedOut(id, from, to);
    }

    /// @notice The stored deal `id` (state `None` if unknown).
    function getDeal(bytes32 id) external view returns (DealInfo memory) {
        Record storage d = _deals[id];
        return DealInfo(
            d.state, d.jobCreator, d.provider, d.mediator, d.price, d.collateral, d.mediationFee, d.deadline, d.resultHash
        );
    }

    /// @notice Every mediator a deal named, in order; empty once a challenge has drawn one
    ///         (then `getDeal(id).mediator` is the drawn one).
    function mediatorsOf(bytes32 id) external view returns (address[] memory list) {
        Record storage d = _deals[id];
        if (d.state == State.None || d.state >= State.Challenged) return list;
        address[] storage more = _moreMediators[id];
        list = new address[](d.mediatorCount);
        list[0] = d.mediator;
        for (uint256 i = 0; i < more.length; i++) {
            list[i + 1] = more[i];
        }
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
                deal.jobHash,
                deal.nonce
            )
        );
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

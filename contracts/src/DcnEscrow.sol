// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {IERC20Permit} from "@openzeppelin/contracts/token/ERC20/extensions/IERC20Permit.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {SafeCast} from "@openzeppelin/contracts/utils/math/SafeCast.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title DcnEscrow
/// @notice The money `DcnDeals` holds: every account's escrow, split into free and locked
///         tokens, and the mediators' bonds.
///
/// A deal locks its parties' tokens; its rules move locked tokens to whoever they pay. A
/// mediator is drawn only while it holds a bond of at least the network's `minBond`, posted
/// from its free escrow; a wrong verdict overturned on appeal, or silence when drawn, takes
/// part of it. A bond leaves only `UNBOND_DELAY` after the mediator asked, and a mediator
/// asking is drawn no more: the delay outlasts every liability of a draw made before (the
/// ruling, the appeal window, the appeal's draw and the appeal's ruling, each at most 7
/// days: 28 days), with a margin so that no withdrawal shares its second with a ruling.
///
/// Invariant: `booked == Σ (free + locked) + Σ bonds` over all accounts, and
/// `token.balanceOf(this) >= booked`. Tokens sent here outside `deposit` are not anyone's
/// escrow; the owner can `skim` them out without touching the books. The token must move
/// exactly the amounts it is asked to: fee-on-transfer and rebasing tokens are not
/// supported.
abstract contract DcnEscrow is Ownable2Step {
    using SafeERC20 for IERC20;

    /// @notice An account's escrow.
    struct Escrow {
        uint128 free;
        uint128 locked;
    }

    /// @notice A mediator's bond.
    struct Bond {
        uint128 amount;
        /// Unix seconds from which it may be withdrawn; zero while the mediator stays.
        uint64 unbondAt;
    }

    /// @notice How long a bond stays after its mediator asks to leave.
    uint64 public constant UNBOND_DELAY = 30 days;

    /// @notice The token of payments, collateral, fees and bonds.
    IERC20 public immutable token;

    /// @notice Tokens the books account for: Σ (free + locked) + Σ bonds.
    uint256 public booked;

    mapping(address => Escrow) internal _escrow;
    mapping(address => Bond) internal _bonds;

    event Deposited(address indexed account, uint256 amount);
    event Withdrawn(address indexed account, uint256 amount);
    event Skimmed(address indexed to, uint256 amount);
    event BondPosted(address indexed mediator, uint256 amount, uint256 bond);
    event UnbondRequested(address indexed mediator, uint64 unbondAt);
    event BondWithdrawn(address indexed mediator, uint256 amount);
    event BondSlashed(address indexed mediator, uint256 amount, address indexed to);

    error ZeroAmount();
    error InsufficientEscrow(address account, uint256 needed, uint256 available);
    error NothingToSkim(uint256 held, uint256 booked);
    error NoBond(address mediator);
    error Unbonding(address mediator, uint64 unbondAt);
    error NotUnbonding(address mediator);
    error BondLocked(address mediator, uint64 unbondAt);

    constructor(IERC20 token_) Ownable(msg.sender) {
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

    // ─── Bonds ────────────────────────────────────────────────────────────────

    /// @notice Moves `amount` of the caller's free escrow into its mediator bond.
    function postBond(uint256 amount) external {
        if (amount == 0) revert ZeroAmount();
        Bond storage b = _bonds[msg.sender];
        if (b.unbondAt != 0) revert Unbonding(msg.sender, b.unbondAt);
        Escrow storage e = _escrow[msg.sender];
        if (e.free < amount) revert InsufficientEscrow(msg.sender, amount, e.free);
        unchecked {
            e.free -= uint128(amount);
        }
        b.amount += uint128(amount);
        emit BondPosted(msg.sender, amount, b.amount);
    }

    /// @notice The caller stops mediating: it is drawn no more, and its bond can be
    ///         withdrawn `UNBOND_DELAY` from now.
    function requestUnbond() external {
        Bond storage b = _bonds[msg.sender];
        if (b.amount == 0) revert NoBond(msg.sender);
        if (b.unbondAt != 0) revert Unbonding(msg.sender, b.unbondAt);
        b.unbondAt = uint64(block.timestamp) + UNBOND_DELAY;
        emit UnbondRequested(msg.sender, b.unbondAt);
    }

    /// @notice Moves the caller's bond back into its free escrow, once its unbonding delay
    ///         is over.
    function withdrawBond() external returns (uint256 amount) {
        Bond storage b = _bonds[msg.sender];
        if (b.unbondAt == 0) revert NotUnbonding(msg.sender);
        if (block.timestamp < b.unbondAt) revert BondLocked(msg.sender, b.unbondAt);
        amount = b.amount;
        delete _bonds[msg.sender];
        _escrow[msg.sender].free += uint128(amount);
        emit BondWithdrawn(msg.sender, amount);
    }

    /// @notice The bond of `mediator` and when it may leave (zero: it stays).
    function bondOf(address mediator) external view returns (uint256 amount, uint64 unbondAt) {
        Bond storage b = _bonds[mediator];
        return (b.amount, b.unbondAt);
    }

    // ─── Internals ────────────────────────────────────────────────────────────

    function _deposit(uint256 amount) private {
        if (amount == 0) revert ZeroAmount();
        Escrow storage e = _escrow[msg.sender];
        e.free = SafeCast.toUint128(uint256(e.free) + amount);
        booked += amount;
        emit Deposited(msg.sender, amount);
        token.safeTransferFrom(msg.sender, address(this), amount);
    }

    // Amounts are sums of at most three uint96 values, so they always fit in uint128.
    function _lock(address account, uint256 amount) internal {
        _relock(account, 0, amount);
    }

    // `account` gets `unlock` of its locked escrow back, then locks `amount` of its free
    // escrow: one read and one write of its word (free in the low 128 bits, locked in the
    // high 128, as `Escrow` packs them).
    function _relock(address account, uint256 unlock, uint256 amount) internal {
        Escrow storage e = _escrow[account];
        uint256 w;
        assembly ("memory-safe") {
            w := sload(e.slot)
        }
        uint256 free = uint128(w) + unlock;
        if (free < amount) revert InsufficientEscrow(account, amount, free);
        assembly ("memory-safe") {
            // free - amount < 2^128; locked + amount - unlock: at most three uint96 amounts
            // on top of a uint128, which panics (0x11) past 2^128 as checked fields would.
            let locked := add(shr(128, w), amount)
            if or(gt(unlock, locked), shr(128, sub(locked, unlock))) {
                mstore(0, shl(224, 0x4e487b71))
                mstore(4, 0x11)
                revert(0, 0x24)
            }
            sstore(e.slot, or(sub(free, amount), shl(128, sub(locked, unlock))))
        }
    }

    // Moves `amount` out of `from`'s locked escrow into `to`'s free escrow.
    function _unlockTo(address from, uint256 amount, address to) internal {
        if (amount == 0) return;
        if (from == to) {
            _settle(from, amount, amount);
        } else {
            _settle(from, amount, 0);
            _settle(to, 0, amount);
        }
    }

    // `account` gives up `unlock` of its locked escrow and gets `credit` into its free
    // escrow: one read and one write of its word. Underflow and overflow panic (0x11), as
    // checked arithmetic on the fields would.
    function _settle(address account, uint256 unlock, uint256 credit) internal {
        Escrow storage e = _escrow[account];
        assembly ("memory-safe") {
            let w := sload(e.slot)
            let locked := shr(128, w)
            let free := add(and(w, 0xffffffffffffffffffffffffffffffff), credit)
            if or(gt(unlock, locked), shr(128, free)) {
                mstore(0, shl(224, 0x4e487b71))
                mstore(4, 0x11)
                revert(0, 0x24)
            }
            sstore(e.slot, or(free, shl(128, sub(locked, unlock))))
        }
    }

    // Takes up to `amount` of `mediator`'s bond into `to`'s free escrow; returns what it took.
    function _slash(address mediator, uint256 amount, address to) internal returns (uint256 taken) {
        Bond storage b = _bonds[mediator];
        taken = b.amount < amount ? b.amount : amount;
        if (taken == 0) return 0;
        b.amount -= uint128(taken);
        _escrow[to].free += uint128(taken);
        emit BondSlashed(mediator, taken, to);
    }

    // Whether `mediator` may be drawn: a bond of at least `minBond`, and not leaving.
    function _bonded(address mediator, uint256 minBond) internal view returns (bool) {
        Bond storage b = _bonds[mediator];
        return b.unbondAt == 0 && b.amount >= minBond && b.amount != 0;
    }
}

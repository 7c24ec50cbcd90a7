// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";
import {DcnDeals} from "./DcnDeals.sol";

/// @notice What a contract implements to receive job results from `DcnJobBoard`.
interface IDcnJobClient {
    /// @notice Called by the board when the result of request `requestId` is delivered.
    function onJobResult(uint256 requestId, bytes32 dealId, bytes32 resultHash) external;
}

/// @title DcnJobBoard
/// @notice Lets contracts ask for off-chain jobs. A contract calls `requestJob` with a
///         module, its inputs and a payment in tokens; the board's operator (a dcn
///         service) runs the job as a job creator on the network and calls
///         `deliverResult`, which pays the operator and calls the requester back. A request
///         not delivered by its deadline can be refunded to the requester.
///
///         A request is bound to the operator of the moment it was made: a later
///         `setOperator` (by the owner) serves new requests only, so the owner cannot make
///         itself operator and take the payments already held. Requests pay at least
///         `minPayment` and give at least `minTimeout` seconds, so a request cannot make
///         the operator buy a deal for nothing or in no time.
///
///         A request commits to the job it wants: the content hash of its job spec (what
///         `dcn module hash MODULE -i K=V` prints for the module and inputs it names). The
///         operator `claim`s a request with the `DcnDeals` deal it created for it; from then
///         on the request cannot be refunded while that deal is in flight, and the operator
///         may deliver until `DELIVERY_GRACE` after the deadline. A claim and a delivery are
///         checked against `DcnDeals` (the deal's terms and case, against its commitment):
///         the deal's job is the requested one, its job creator is the operator and its
///         provider is not, the provider was paid, the result hash is the deal's, and no
///         deal serves two requests.
contract DcnJobBoard is Ownable2Step {
    using SafeERC20 for IERC20;

    enum Status {
        None,
        Open,
        Delivered,
        Refunded
    }

    struct Request {
        address requester;
        Status status;
        address operator;
        uint64 deadline;
        uint256 payment;
        bytes32 dealId;
        bytes32 resultHash;
        /// The content hash of the job spec the requester wants run.
        bytes32 jobHash;
        string module;
        string[] inputs;
    }

    /// @notice Gas forwarded to a client's `onJobResult`; a client that needs more or reverts
    ///         does not block delivery (see `CallbackFailed`).
    uint256 public constant CALLBACK_GAS = 200_000;
    /// @notice Longest time a request may give.
    uint64 public constant MAX_TIMEOUT = 30 days;
    /// @notice Time after the deadline in which a claimed request may still be delivered,
    ///         and before which it cannot be refunded unless its deal failed.
    uint64 public constant DELIVERY_GRACE = 1 days;
    /// @notice Gas a delivery must have left when it calls the client back, so that the
    ///         client really gets `CALLBACK_GAS`: the EVM keeps 1/64 of what is left
    ///         (EIP-150), and encoding and the call itself cost a little.
    uint256 public constant CALLBACK_GAS_NEEDED = CALLBACK_GAS + CALLBACK_GAS / 63 + 10_000;
    /// @notice Most bytes of a failed callback's revert data kept in `CallbackFailed`: a
    ///         client cannot make a delivery copy and log a return bomb.
    uint256 public constant MAX_REVERT_BYTES = 256;

    IERC20 public immutable token;
    /// @notice The deals contract whose deals deliver results.
    DcnDeals public immutable deals;
    /// @notice The account that serves new requests.
    address public operator;
    /// @notice Least payment of a request, token units.
    uint256 public minPayment;
    /// @notice Least time a request gives, seconds.
    uint64 public minTimeout;
    uint256 public requestCount;
    mapping(uint256 => Request) private _requests;
    /// @notice The request each deal was claimed for (0: none).
    mapping(bytes32 => uint256) public requestOfDeal;

    event OperatorChanged(address indexed operator);
    event MinimumsChanged(uint256 minPayment, uint64 minTimeout);
    event JobRequested(
        uint256 indexed requestId,
        address indexed requester,
        string module,
        string[] inputs,
        bytes32 jobHash,
        uint256 payment,
        uint64 deadline
    );
    event JobClaimed(uint256 indexed requestId, bytes32 indexed dealId);
    event JobDelivered(uint256 indexed requestId, bytes32 indexed dealId, bytes32 resultHash);
    event CallbackFailed(uint256 indexed requestId, bytes reason);
    event JobRefunded(uint256 indexed requestId, address indexed requester, uint256 payment);

    error NotOperator(address caller);
    error PaymentTooLow(uint256 payment, uint256 minPayment);
    error UnknownRequest(uint256 requestId);
    error NotOpen(uint256 requestId, Status status);
    error DeadlinePassed(uint256 requestId, uint64 deadline);
    error DeadlineNotReached(uint256 requestId, uint64 deadline);
    error InvalidTimeout(uint64 timeout);
    error EmptyModule();
    error EmptyResultHash();
    error InsufficientGas(uint256 left, uint256 needed);
    error NotOperatorsDeal(bytes32 dealId, address jobCreator);
    error DealUsed(bytes32 dealId, uint256 requestId);
    error DealInFlight(uint256 requestId, bytes32 dealId);
    error DealNotPaid(bytes32 dealId, DcnDeals.State state);
    error WrongDeal(uint256 requestId, bytes32 claimed, bytes32 given);
    error WrongJob(uint256 requestId, bytes32 requested, bytes32 dealt);
    error OperatorIsProvider(bytes32 dealId);
    error EmptyJobHash();

    constructor(IERC20 token_, DcnDeals deals_, address operator_, uint256 minPayment_, uint64 minTimeout_)
        Ownable(msg.sender)
    {
        token = token_;
        deals = deals_;
        operator = operator_;
        emit OperatorChanged(operator_);
        _setMinimums(minPayment_, minTimeout_);
    }

    /// @notice Changes the account that serves new requests (open ones keep theirs).
    function setOperator(address operator_) external onlyOwner {
        operator = operator_;
        emit OperatorChanged(operator_);
    }

    /// @notice Changes the least payment and time of new requests.
    function setMinimums(uint256 minPayment_, uint64 minTimeout_) external onlyOwner {
        _setMinimums(minPayment_, minTimeout_);
    }

    function _setMinimums(uint256 minPayment_, uint64 minTimeout_) private {
        if (minPayment_ == 0) revert PaymentTooLow(0, 1);
        if (minTimeout_ == 0 || minTimeout_ > MAX_TIMEOUT) revert InvalidTimeout(minTimeout_);
        minPayment = minPayment_;
        minTimeout = minTimeout_;
        emit MinimumsChanged(minPayment_, minTimeout_);
    }

    /// @notice Asks for `module` to be run with `inputs` ("Key=Value" each), the job whose
    ///         spec hashes to `jobHash`, paying `payment` tokens from the caller (needs
    ///         approval). The result is due within `timeout` seconds; after that the caller
    ///         can get its payment back.
    function requestJob(
        string calldata module,
        string[] calldata inputs,
        bytes32 jobHash,
        uint256 payment,
        uint64 timeout
    ) external returns (uint256 requestId) {
        if (bytes(module).length == 0) revert EmptyModule();
        if (jobHash == bytes32(0)) revert EmptyJobHash();
        if (timeout < minTimeout || timeout > MAX_TIMEOUT) revert InvalidTimeout(timeout);
        if (payment < minPayment) revert PaymentTooLow(payment, minPayment);
        requestId = ++requestCount;
        uint64 deadline = uint64(block.timestamp) + timeout;
        Request storage r = _requests[requestId];
        r.requester = msg.sender;
        r.status = Status.Open;
        r.operator = operator;
        r.deadline = deadline;
        r.payment = payment;
        r.jobHash = jobHash;
        r.module = module;
        for (uint256 i = 0; i < inputs.length; i++) {
            r.inputs.push(inputs[i]);
        }
        emit JobRequested(requestId, msg.sender, module, inputs, jobHash, payment, deadline);
        token.safeTransferFrom(msg.sender, address(this), payment);
    }

    /// @notice The request's operator names the deal it created for an open request, before
    ///         the deadline. A request whose claimed deal ended without paying its provider
    ///         (no result, or a dishonest one) can be claimed again with a new deal.
    function claim(uint256 requestId, bytes32 dealId, DcnDeals.Terms calldata t, DcnDeals.Case calldata c) external {
        Request storage r = _open(requestId);
        if (msg.sender != r.operator) revert NotOperator(msg.sender);
        if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);
        if (r.dealId != 0 && !_failed(r.dealId)) revert DealInFlight(requestId, r.dealId);
        deals.verify(dealId, t, c);
        _claim(requestId, r, dealId, t);
    }

    /// @notice The request's operator delivers the result of its deal for an open request:
    ///         the payment goes to it and the requester is called back. In time means before
    ///         the deadline, or within `DELIVERY_GRACE` after it for a request claimed in time.
    ///         The deal (its terms and case, checked against `DcnDeals`) must run the
    ///         requested job, be the operator's with another provider, have paid its
    ///         provider and carry a result; an unclaimed request is claimed by the delivery.
    function deliverResult(uint256 requestId, bytes32 dealId, DcnDeals.Terms calldata t, DcnDeals.Case calldata c)
        external
    {
        Request storage r = _open(requestId);
        if (msg.sender != r.operator) revert NotOperator(msg.sender);
        bytes32 resultHash = c.resultHash;
        if (resultHash == bytes32(0)) revert EmptyResultHash();
        DcnDeals.State state = deals.verify(dealId, t, c);
        if (r.dealId == 0) {
            if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);
            _claim(requestId, r, dealId, t);
        } else {
            if (r.dealId != dealId) revert WrongDeal(requestId, r.dealId, dealId);
            uint64 last = r.deadline + DELIVERY_GRACE;
            if (block.timestamp > last) revert DeadlinePassed(requestId, last);
        }
        (, , , , uint8 flags, ) = deals.getDeal(dealId);
        if (!_paid(state, flags)) revert DealNotPaid(dealId, state);
        r.status = Status.Delivered;
        r.resultHash = resultHash;
        emit JobDelivered(requestId, dealId, resultHash);
        token.safeTransfer(msg.sender, r.payment);
        address requester = r.requester;
        if (requester.code.length > 0) {
            // Without this, a delivery with just enough gas for everything else starves the
            // callback: it fails, is caught, and the request still counts as delivered.
            uint256 left = gasleft();
            if (left < CALLBACK_GAS_NEEDED) revert InsufficientGas(left, CALLBACK_GAS_NEEDED);
            _callBack(requestId, requester, abi.encodeCall(IDcnJobClient.onJobResult, (requestId, dealId, resultHash)));
        }
    }

    // Calls the client with `CALLBACK_GAS`; a failure is logged with at most
    // `MAX_REVERT_BYTES` of its revert data, whatever the client returns.
    function _callBack(uint256 requestId, address requester, bytes memory data) private {
        bool ok;
        bytes memory reason;
        uint256 gasLimit = CALLBACK_GAS;
        uint256 cap = MAX_REVERT_BYTES;
        assembly ("memory-safe") {
            ok := call(gasLimit, requester, 0, add(data, 0x20), mload(data), 0, 0)
            if iszero(ok) {
                let n := returndatasize()
                if gt(n, cap) { n := cap }
                reason := mload(0x40)
                mstore(reason, n)
                returndatacopy(add(reason, 0x20), 0, n)
                mstore(0x40, add(add(reason, 0x20), and(add(n, 31), not(31))))
            }
        }
        if (!ok) emit CallbackFailed(requestId, reason);
    }

    /// @notice Returns the payment of an undelivered request to its requester; anyone may
    ///         call it. Unclaimed: once its deadline has passed. Claimed: once its deal
    ///         failed (after the deadline), or `DELIVERY_GRACE` after the deadline once the
    ///         deal is settled; never while the deal is in flight.
    function refund(uint256 requestId) external {
        Request storage r = _open(requestId);
        if (block.timestamp <= r.deadline) revert DeadlineNotReached(requestId, r.deadline);
        bytes32 dealId = r.dealId;
        if (dealId != 0 && !_failed(dealId)) {
            (DcnDeals.State state, , , , , ) = deals.getDeal(dealId);
            if (!_settled(state)) revert DealInFlight(requestId, dealId);
            uint64 last = r.deadline + DELIVERY_GRACE;
            if (block.timestamp <= last) revert DeadlineNotReached(requestId, last);
        }
        r.status = Status.Refunded;
        emit JobRefunded(requestId, r.requester, r.payment);
        token.safeTransfer(r.requester, r.payment);
    }

    function _claim(uint256 requestId, Request storage r, bytes32 dealId, DcnDeals.Terms calldata t) private {
        uint256 used = requestOfDeal[dealId];
        if (used != 0) revert DealUsed(dealId, used);
        if (t.jobCreator != r.operator) revert NotOperatorsDeal(dealId, t.jobCreator);
        if (t.provider == r.operator) revert OperatorIsProvider(dealId);
        if (t.jobHash != r.jobHash) revert WrongJob(requestId, r.jobHash, t.jobHash);
        requestOfDeal[dealId] = requestId;
        r.dealId = dealId;
        emit JobClaimed(requestId, dealId);
    }

    // Settled without paying its provider: no result will come from it.
    function _failed(bytes32 dealId) private view returns (bool) {
        (DcnDeals.State s, , , , uint8 flags, ) = deals.getDeal(dealId);
        return _settled(s) && !_paid(s, flags);
    }

    // The deal's money is settled (an appeal moves only bonds and fees).
    function _settled(DcnDeals.State s) private pure returns (bool) {
        return s >= DcnDeals.State.Accepted && s != DcnDeals.State.Audited;
    }

    // The deal paid its provider for a result that stands: an honest verdict overturned on
    // appeal (FLAG_OVERTURNED, 8) found the result wrong, so it is not delivered.
    function _paid(DcnDeals.State s, uint8 flags) private pure returns (bool) {
        if (flags & 8 != 0) return false;
        if (s == DcnDeals.State.Appealed) return flags & 1 != 0;
        return s == DcnDeals.State.Accepted || s == DcnDeals.State.MediatedHonest
            || s == DcnDeals.State.TimedOutAccepted || s == DcnDeals.State.TimedOutNoVerdict;
    }

    /// @notice The request `requestId`.
    function getRequest(uint256 requestId) external view returns (Request memory) {
        if (_requests[requestId].status == Status.None) revert UnknownRequest(requestId);
        return _requests[requestId];
    }

    function _open(uint256 requestId) private view returns (Request storage r) {
        r = _requests[requestId];
        if (r.status == Status.None) revert UnknownRequest(requestId);
        if (r.status != Status.Open) revert NotOpen(requestId, r.status);
    }
}

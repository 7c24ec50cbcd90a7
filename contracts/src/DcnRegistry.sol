// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {Ownable2Step} from "@openzeppelin/contracts/access/Ownable2Step.sol";

/// @title DcnRegistry
/// @notice The one published address of a network. It holds:
///         - the network's other contracts, set once by the owner (`setNetwork`), so that
///           an RPC URL, a chain id and this address are all a machine needs to join;
///         - the services: an account registers per role with a URL and metadata (both
///           size-capped), may update it and may leave;
///         - the owner's approvals: which accounts the network's owner vouches for per
///           role. Registering is open to anyone; clients trust only the services they
///           name themselves or that are approved here.
///         Listings are paginated: a client reads `MAX_PAGE` entries per call however many
///         strangers register.
contract DcnRegistry is Ownable2Step {
    /// @notice The roles a service can take. An account may hold several.
    enum Role {
        Solver,
        Mediator,
        Provider
    }

    /// @notice One registration as returned by `get`, `list` and `listApproved`. An
    ///         approved account that is not registered has an empty `url` and
    ///         `registeredAt` 0.
    struct Service {
        address account;
        Role role;
        string url;
        string metadata;
        uint64 registeredAt;
        uint64 updatedAt;
        bool approved;
    }

    /// @notice The network's contracts, as `setNetwork` recorded them.
    struct Network {
        address token;
        address deals;
        address jobBoard;
        // An example job-board client (CowsayClient); zero if none.
        address exampleClient;
        // The block `setNetwork` ran in.
        uint64 block;
    }

    struct Entry {
        string url;
        string metadata;
        uint64 registeredAt;
        uint64 updatedAt;
        // 1-based position in `_members[role]`; 0 means not registered.
        uint32 position;
    }

    /// @notice Longest URL, in bytes.
    uint256 public constant MAX_URL_BYTES = 256;
    /// @notice Longest metadata, in bytes.
    uint256 public constant MAX_METADATA_BYTES = 1024;
    /// @notice Most entries one `list` or `listApproved` call returns.
    uint256 public constant MAX_PAGE = 100;

    mapping(Role => address[]) private _members;
    mapping(Role => mapping(address => Entry)) private _entries;
    mapping(Role => address[]) private _approved;
    // 1-based position in `_approved[role]`; 0 means not approved.
    mapping(Role => mapping(address => uint256)) private _approvedPosition;
    Network private _network;

    event ServiceRegistered(address indexed account, Role indexed role, string url, string metadata);
    event ServiceUpdated(address indexed account, Role indexed role, string url, string metadata);
    event ServiceLeft(address indexed account, Role indexed role);
    event ServiceApproved(address indexed account, Role indexed role, bool approved);
    event NetworkSet(address token, address deals, address jobBoard, address exampleClient);

    error AlreadyRegistered(address account, Role role);
    error NotRegistered(address account, Role role);
    error EmptyUrl();
    error UrlTooLong(uint256 length, uint256 max);
    error MetadataTooLong(uint256 length, uint256 max);
    error NetworkAlreadySet();
    error NetworkIncomplete();
    error NotTheirOwner(address deals, address jobBoard);

    constructor() Ownable(msg.sender) {}

    // ── the network ──

    /// @notice Records the network's contracts. Once: a registry address names one network
    ///         for good, and a new release of the contracts is a new registry. The caller
    ///         must own `deals` and `jobBoard`: nobody can publish a registry of their own
    ///         (with mediators of their choosing) over another owner's contracts.
    function setNetwork(address token, address deals, address jobBoard, address exampleClient) external onlyOwner {
        if (_network.deals != address(0)) revert NetworkAlreadySet();
        if (token == address(0) || deals == address(0) || jobBoard == address(0)) revert NetworkIncomplete();
        if (Ownable(deals).owner() != msg.sender || Ownable(jobBoard).owner() != msg.sender) {
            revert NotTheirOwner(deals, jobBoard);
        }
        _network = Network(token, deals, jobBoard, exampleClient, uint64(block.number));
        emit NetworkSet(token, deals, jobBoard, exampleClient);
    }

    /// @notice The network's contracts; all zero until `setNetwork`.
    function network() external view returns (Network memory) {
        return _network;
    }

    // ── services ──

    /// @notice Registers the caller in `role`.
    function register(Role role, string calldata url, string calldata metadata) external {
        _checkSizes(url, metadata);
        Entry storage e = _entries[role][msg.sender];
        if (e.position != 0) revert AlreadyRegistered(msg.sender, role);
        _members[role].push(msg.sender);
        e.url = url;
        e.metadata = metadata;
        e.registeredAt = uint64(block.timestamp);
        e.updatedAt = uint64(block.timestamp);
        e.position = uint32(_members[role].length);
        emit ServiceRegistered(msg.sender, role, url, metadata);
    }

    /// @notice Changes the caller's URL and metadata in `role`.
    function update(Role role, string calldata url, string calldata metadata) external {
        _checkSizes(url, metadata);
        Entry storage e = _entries[role][msg.sender];
        if (e.position == 0) revert NotRegistered(msg.sender, role);
        e.url = url;
        e.metadata = metadata;
        e.updatedAt = uint64(block.timestamp);
        emit ServiceUpdated(msg.sender, role, url, metadata);
    }

    /// @notice Removes the caller from `role`. An approval stays: it is the owner's word
    ///         about the account, not about one registration.
    function leave(Role role) external {
        Entry storage e = _entries[role][msg.sender];
        uint256 position = e.position;
        if (position == 0) revert NotRegistered(msg.sender, role);
        address[] storage members = _members[role];
        address last = members[members.length - 1];
        members[position - 1] = last;
        _entries[role][last].position = uint32(position);
        members.pop();
        delete _entries[role][msg.sender];
        emit ServiceLeft(msg.sender, role);
    }

    /// @notice Whether `account` is registered in `role`.
    function isRegistered(Role role, address account) external view returns (bool) {
        return _entries[role][account].position != 0;
    }

    /// @notice The registration of `account` in `role`; reverts if there is none.
    function get(Role role, address account) external view returns (Service memory) {
        if (_entries[role][account].position == 0) revert NotRegistered(account, role);
        return _service(role, account);
    }

    /// @notice How many accounts are registered in `role`.
    function count(Role role) external view returns (uint256) {
        return _members[role].length;
    }

    /// @notice Up to `limit` (at most `MAX_PAGE`) registrations in `role` from position
    ///         `offset`, in no particular order (a `leave` moves the last one into its
    ///         place). Empty past the end.
    function list(Role role, uint256 offset, uint256 limit) external view returns (Service[] memory) {
        return _page(role, _members[role], offset, limit);
    }

    // ── approvals ──

    /// @notice The owner vouches for `account` in `role` (or stops vouching). Setting what
    ///         is already set changes nothing.
    function setApproved(Role role, address account, bool approved) external onlyOwner {
        uint256 position = _approvedPosition[role][account];
        if (approved == (position != 0)) return;
        address[] storage list_ = _approved[role];
        if (approved) {
            list_.push(account);
            _approvedPosition[role][account] = list_.length;
        } else {
            address last = list_[list_.length - 1];
            list_[position - 1] = last;
            _approvedPosition[role][last] = position;
            list_.pop();
            delete _approvedPosition[role][account];
        }
        emit ServiceApproved(account, role, approved);
    }

    /// @notice Whether the owner approved `account` in `role`.
    function isApproved(Role role, address account) external view returns (bool) {
        return _approvedPosition[role][account] != 0;
    }

    /// @notice How many accounts are approved in `role`.
    function approvedCount(Role role) external view returns (uint256) {
        return _approved[role].length;
    }

    /// @notice The approved account at `index` (from 0) in `role` (`DcnDeals` draws appeal
    ///         mediators this way); the order changes when one is unapproved.
    function approvedAt(Role role, uint256 index) external view returns (address) {
        return _approved[role][index];
    }

    /// @notice Up to `limit` (at most `MAX_PAGE`) approved accounts in `role` from position
    ///         `offset`, with their registrations (empty for one not registered).
    function listApproved(Role role, uint256 offset, uint256 limit) external view returns (Service[] memory) {
        return _page(role, _approved[role], offset, limit);
    }

    // ── internals ──

    function _checkSizes(string calldata url, string calldata metadata) private pure {
        if (bytes(url).length == 0) revert EmptyUrl();
        if (bytes(url).length > MAX_URL_BYTES) revert UrlTooLong(bytes(url).length, MAX_URL_BYTES);
        if (bytes(metadata).length > MAX_METADATA_BYTES) {
            revert MetadataTooLong(bytes(metadata).length, MAX_METADATA_BYTES);
        }
    }

    function _service(Role role, address account) private view returns (Service memory) {
        Entry storage e = _entries[role][account];
        return Service(
            account,
            role,
            e.url,
            e.metadata,
            e.registeredAt,
            e.updatedAt,
            _approvedPosition[role][account] != 0
        );
    }

    function _page(Role role, address[] storage accounts, uint256 offset, uint256 limit)
        private
        view
        returns (Service[] memory page)
    {
        uint256 total = accounts.length;
        if (offset >= total) return new Service[](0);
        uint256 n = total - offset;
        if (n > limit) n = limit;
        if (n > MAX_PAGE) n = MAX_PAGE;
        page = new Service[](n);
        for (uint256 i = 0; i < n; i++) {
            page[i] = _service(role, accounts[offset + i]);
        }
    }
}

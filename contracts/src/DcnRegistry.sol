// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title DcnRegistry
/// @notice Services announce themselves here: an account registers per role with a URL
///         and free-form metadata, may update it and may leave. Clients find the solver's
///         URL (and the mediators and providers) by listing a role.
contract DcnRegistry {
    /// @notice The roles a service can take. An account may hold several.
    enum Role {
        Solver,
        Mediator,
        Provider
    }

    /// @notice One registration as returned by `get` and `list`.
    struct Service {
        address account;
        Role role;
        string url;
        string metadata;
        uint64 registeredAt;
        uint64 updatedAt;
    }

    struct Entry {
        string url;
        string metadata;
        uint64 registeredAt;
        uint64 updatedAt;
        // 1-based position in `_members[role]`; 0 means not registered.
        uint32 position;
    }

    mapping(Role => address[]) private _members;
    mapping(Role => mapping(address => Entry)) private _entries;

    event ServiceRegistered(address indexed account, Role indexed role, string url, string metadata);
    event ServiceUpdated(address indexed account, Role indexed role, string url, string metadata);
    event ServiceLeft(address indexed account, Role indexed role);

    error AlreadyRegistered(address account, Role role);
    error NotRegistered(address account, Role role);
    error EmptyUrl();

    /// @notice Registers the caller in `role`.
    function register(Role role, string calldata url, string calldata metadata) external {
        if (bytes(url).length == 0) revert EmptyUrl();
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
        if (bytes(url).length == 0) revert EmptyUrl();
        Entry storage e = _entries[role][msg.sender];
        if (e.position == 0) revert NotRegistered(msg.sender, role);
        e.url = url;
        e.metadata = metadata;
        e.updatedAt = uint64(block.timestamp);
        emit ServiceUpdated(msg.sender, role, url, metadata);
    }

    /// @notice Removes the caller from `role`.
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
    function get(Role role, address account) public view returns (Service memory) {
        Entry storage e = _entries[role][account];
        if (e.position == 0) revert NotRegistered(account, role);
        return Service(account, role, e.url, e.metadata, e.registeredAt, e.updatedAt);
    }

    /// @notice How many accounts are registered in `role`.
    function count(Role role) external view returns (uint256) {
        return _members[role].length;
    }

    /// @notice Every registration in `role`, in no particular order.
    function list(Role role) external view returns (Service[] memory services) {
        address[] storage members = _members[role];
        services = new Service[](members.length);
        for (uint256 i = 0; i < members.length; i++) {
            services[i] = get(role, members[i]);
        }
    }
}

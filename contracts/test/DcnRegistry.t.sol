// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {DcnRegistry} from "../src/DcnRegistry.sol";
import {Ownable} from "@openzeppelin/contracts/access/Ownable.sol";
import {DcnToken} from "../src/DcnToken.sol";
import {DcnDeals} from "../src/DcnDeals.sol";
import {DcnJobBoard} from "../src/DcnJobBoard.sol";

contract DcnRegistryTest is Test {
    DcnRegistry internal reg;
    address internal a = address(0xA);
    address internal b = address(0xB);
    address internal c = address(0xC);

    function setUp() public {
        reg = new DcnRegistry();
    }

    function test_register_get_list() public {
        vm.prank(a);
        reg.register(DcnRegistry.Role.Solver, "http://solver:8080", "{}");
        DcnRegistry.Service memory s = reg.get(DcnRegistry.Role.Solver, a);
        assertEq(s.account, a, "account");
        assertEq(keccak256(bytes(s.url)), keccak256("http://solver:8080"), "url");
        assertTrue(reg.isRegistered(DcnRegistry.Role.Solver, a), "registered");
        assertTrue(!reg.isRegistered(DcnRegistry.Role.Mediator, a), "per role");
        assertEq(reg.list(DcnRegistry.Role.Solver, 0, 100).length, 1, "listed");
        assertEq(reg.list(DcnRegistry.Role.Provider, 0, 100).length, 0, "other role empty");
    }

    function test_one_account_many_roles() public {
        vm.startPrank(a);
        reg.register(DcnRegistry.Role.Mediator, "http://m", "");
        reg.register(DcnRegistry.Role.Provider, "http://p", "gpu=1");
        vm.stopPrank();
        assertEq(reg.count(DcnRegistry.Role.Mediator), 1, "mediator");
        assertEq(reg.count(DcnRegistry.Role.Provider), 1, "provider");
    }

    function test_update() public {
        vm.startPrank(a);
        reg.register(DcnRegistry.Role.Provider, "http://old", "");
        vm.warp(block.timestamp + 10);
        reg.update(DcnRegistry.Role.Provider, "http://new", "gpu=2");
        vm.stopPrank();
        DcnRegistry.Service memory s = reg.get(DcnRegistry.Role.Provider, a);
        assertEq(keccak256(bytes(s.url)), keccak256("http://new"), "url updated");
        assertEq(keccak256(bytes(s.metadata)), keccak256("gpu=2"), "metadata updated");
        assertEq(s.updatedAt, s.registeredAt + 10, "updatedAt");
    }

    function test_leave_keeps_others() public {
        vm.prank(a);
        reg.register(DcnRegistry.Role.Provider, "http://a", "");
        vm.prank(b);
        reg.register(DcnRegistry.Role.Provider, "http://b", "");
        vm.prank(c);
        reg.register(DcnRegistry.Role.Provider, "http://c", "");
        vm.prank(a);
        reg.leave(DcnRegistry.Role.Provider);
        DcnRegistry.Service[] memory all = reg.list(DcnRegistry.Role.Provider, 0, 100);
        assertEq(all.length, 2, "two left");
        // The last one moved into the gap: the list is c, b, each once.
        assertEq(all[0].account, c, "c took a's place");
        assertEq(keccak256(bytes(all[0].url)), keccak256("http://c"), "with its own entry");
        assertEq(all[1].account, b, "b where it was");
        assertTrue(!reg.isRegistered(DcnRegistry.Role.Provider, a), "a gone");
        assertTrue(reg.isRegistered(DcnRegistry.Role.Provider, b), "b stays");
        assertTrue(reg.isRegistered(DcnRegistry.Role.Provider, c), "c stays");
        vm.prank(c);
        reg.leave(DcnRegistry.Role.Provider);
        assertEq(reg.get(DcnRegistry.Role.Provider, b).account, b, "b still found");
        vm.prank(a);
        reg.register(DcnRegistry.Role.Provider, "http://a2", "");
        assertEq(reg.count(DcnRegistry.Role.Provider), 2, "can come back");
    }

    function test_refusals() public {
        vm.prank(a);
        vm.expectRevert(DcnRegistry.EmptyUrl.selector);
        reg.register(DcnRegistry.Role.Solver, "", "");
        vm.prank(a);
        reg.register(DcnRegistry.Role.Solver, "http://s", "");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.AlreadyRegistered.selector, a, DcnRegistry.Role.Solver));
        reg.register(DcnRegistry.Role.Solver, "http://s", "");
        vm.prank(b);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotRegistered.selector, b, DcnRegistry.Role.Solver));
        reg.update(DcnRegistry.Role.Solver, "http://x", "");
        vm.prank(b);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotRegistered.selector, b, DcnRegistry.Role.Solver));
        reg.leave(DcnRegistry.Role.Solver);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotRegistered.selector, b, DcnRegistry.Role.Mediator));
        reg.get(DcnRegistry.Role.Mediator, b);
    }

    function _string(uint256 n) internal pure returns (string memory) {
        bytes memory b_ = new bytes(n);
        for (uint256 i = 0; i < n; i++) {
            b_[i] = "x";
        }
        return string(b_);
    }

    function test_sizes_are_capped() public {
        string memory url256 = _string(256);
        string memory meta1024 = _string(1024);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.UrlTooLong.selector, 257, 256));
        reg.register(DcnRegistry.Role.Solver, _string(257), "");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.MetadataTooLong.selector, 1025, 1024));
        reg.register(DcnRegistry.Role.Solver, "http://s", _string(1025));
        vm.prank(a);
        reg.register(DcnRegistry.Role.Solver, url256, meta1024);
        assertEq(bytes(reg.get(DcnRegistry.Role.Solver, a).url).length, 256, "the largest URL fits");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.UrlTooLong.selector, 257, 256));
        reg.update(DcnRegistry.Role.Solver, _string(257), "");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.MetadataTooLong.selector, 1025, 1024));
        reg.update(DcnRegistry.Role.Solver, "http://s", _string(1025));
        vm.prank(a);
        vm.expectRevert(DcnRegistry.EmptyUrl.selector);
        reg.update(DcnRegistry.Role.Solver, "", "");
        assertEq(bytes(reg.get(DcnRegistry.Role.Solver, a).metadata).length, 1024, "refused updates change nothing");
    }

    function test_list_is_paginated() public {
        for (uint256 i = 1; i <= 250; i++) {
            vm.prank(address(uint160(0x1000 + i)));
            reg.register(DcnRegistry.Role.Mediator, "http://m", "");
        }
        assertEq(reg.list(DcnRegistry.Role.Mediator, 0, 1000).length, 100, "a page is at most MAX_PAGE");
        assertEq(reg.list(DcnRegistry.Role.Mediator, 200, 100).length, 50, "the last page is short");
        assertEq(reg.list(DcnRegistry.Role.Mediator, 250, 100).length, 0, "nothing past the end");
        assertEq(reg.list(DcnRegistry.Role.Mediator, 7, 0).length, 0, "limit 0");
        DcnRegistry.Service[] memory some = reg.list(DcnRegistry.Role.Mediator, 10, 5);
        assertEq(some.length, 5, "limit");
        for (uint256 i = 0; i < 5; i++) {
            assertEq(some[i].account, address(uint160(0x1000 + 11 + i)), "the page starts at offset");
        }
        // Paging through sees every account once.
        uint256 seen;
        for (uint256 offset = 0; offset < 250; offset += 100) {
            DcnRegistry.Service[] memory page = reg.list(DcnRegistry.Role.Mediator, offset, 100);
            for (uint256 i = 0; i < page.length; i++) {
                assertEq(page[i].account, address(uint160(0x1000 + offset + i + 1)), "in order");
                seen++;
            }
        }
        assertEq(seen, 250, "all seen");
    }

    function test_only_the_owner_approves() public {
        assertEq(reg.owner(), address(this), "the deployer owns the registry");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, a));
        reg.setApproved(DcnRegistry.Role.Mediator, a, true);
        assertTrue(!reg.isApproved(DcnRegistry.Role.Mediator, a), "a stranger cannot approve itself");

        vm.prank(a);
        reg.register(DcnRegistry.Role.Mediator, "http://a", "");
        vm.prank(b);
        reg.register(DcnRegistry.Role.Mediator, "http://b", "");
        reg.setApproved(DcnRegistry.Role.Mediator, b, true);
        reg.setApproved(DcnRegistry.Role.Mediator, b, true);
        reg.setApproved(DcnRegistry.Role.Mediator, c, true);
        assertEq(reg.approvedCount(DcnRegistry.Role.Mediator), 2, "approving twice lists once");
        assertTrue(reg.isApproved(DcnRegistry.Role.Mediator, b), "b approved");
        assertTrue(!reg.isApproved(DcnRegistry.Role.Solver, b), "per role");
        assertTrue(!reg.get(DcnRegistry.Role.Mediator, a).approved, "a registered, not approved");
        assertTrue(reg.get(DcnRegistry.Role.Mediator, b).approved, "the entry says approved");

        DcnRegistry.Service[] memory ok = reg.listApproved(DcnRegistry.Role.Mediator, 0, 100);
        assertEq(ok.length, 2, "b and c");
        assertEq(ok[0].account, b, "b first");
        assertEq(keccak256(bytes(ok[0].url)), keccak256("http://b"), "with its registration");
        assertTrue(ok[0].approved, "flagged");
        assertEq(ok[1].account, c, "c, approved but not registered");
        assertEq(bytes(ok[1].url).length, 0, "no url");
        assertEq(ok[1].registeredAt, 0, "not registered");
        assertEq(reg.listApproved(DcnRegistry.Role.Mediator, 1, 100).length, 1, "paginated");
        assertEq(reg.listApproved(DcnRegistry.Role.Mediator, 2, 100).length, 0, "past the end");

        // An approval is about the account: it outlives a leave.
        vm.prank(b);
        reg.leave(DcnRegistry.Role.Mediator);
        assertTrue(reg.isApproved(DcnRegistry.Role.Mediator, b), "still approved");
        vm.prank(b);
        reg.register(DcnRegistry.Role.Mediator, "http://b2", "");
        assertTrue(reg.get(DcnRegistry.Role.Mediator, b).approved, "approved again on return");

        // Revoking keeps the others listed, each once.
        reg.setApproved(DcnRegistry.Role.Mediator, b, false);
        reg.setApproved(DcnRegistry.Role.Mediator, b, false);
        assertTrue(!reg.isApproved(DcnRegistry.Role.Mediator, b), "revoked");
        ok = reg.listApproved(DcnRegistry.Role.Mediator, 0, 100);
        assertEq(ok.length, 1, "c only");
        assertEq(ok[0].account, c, "c moved into b's place");
        reg.setApproved(DcnRegistry.Role.Mediator, c, false);
        assertEq(reg.approvedCount(DcnRegistry.Role.Mediator), 0, "none");
        reg.setApproved(DcnRegistry.Role.Mediator, a, true);
        assertEq(reg.listApproved(DcnRegistry.Role.Mediator, 0, 100)[0].account, a, "the list is reusable");
    }

    function test_revoking_from_the_middle_keeps_the_index() public {
        reg.setApproved(DcnRegistry.Role.Solver, a, true);
        reg.setApproved(DcnRegistry.Role.Solver, b, true);
        reg.setApproved(DcnRegistry.Role.Solver, c, true);
        reg.setApproved(DcnRegistry.Role.Solver, a, false);
        // c moved to a's slot; revoking c now must remove c, not b.
        reg.setApproved(DcnRegistry.Role.Solver, c, false);
        DcnRegistry.Service[] memory ok = reg.listApproved(DcnRegistry.Role.Solver, 0, 100);
        assertEq(ok.length, 1, "one left");
        assertEq(ok[0].account, b, "b stays");
        assertTrue(reg.isApproved(DcnRegistry.Role.Solver, b), "b approved");
        assertTrue(!reg.isApproved(DcnRegistry.Role.Solver, c), "c revoked");
    }

    function test_approved_at_walks_the_approved_list_in_order() public {
        DcnRegistry.Role m = DcnRegistry.Role.Mediator;
        reg.setApproved(m, a, true);
        reg.setApproved(m, b, true);
        reg.setApproved(m, c, true);
        reg.setApproved(DcnRegistry.Role.Solver, a, true);
        assertEq(reg.approvedCount(m), 3, "three mediators");
        assertEq(reg.approvedAt(m, 0), a, "a first");
        assertEq(reg.approvedAt(m, 1), b, "b second");
        assertEq(reg.approvedAt(m, 2), c, "c third");
        assertEq(reg.approvedAt(DcnRegistry.Role.Solver, 0), a, "per role");
        // Past the end: nothing to read.
        vm.expectRevert();
        reg.approvedAt(m, 3);
        vm.expectRevert();
        reg.approvedAt(DcnRegistry.Role.Provider, 0);
        // A revocation moves the last one into the gap; the count follows.
        reg.setApproved(m, a, false);
        assertEq(reg.approvedCount(m), 2, "two left");
        assertEq(reg.approvedAt(m, 0), c, "c took a's place");
        assertEq(reg.approvedAt(m, 1), b, "b stays");
        // What DcnDeals calls (role as uint8) reads the same.
        (bool ok, bytes memory out) = address(reg).staticcall(abi.encodeWithSignature("approvedAt(uint8,uint256)", 1, 1));
        assertTrue(ok, "callable with the role as a uint8");
        assertEq(abi.decode(out, (address)), b, "the same entry");
        (ok, out) = address(reg).staticcall(abi.encodeWithSignature("approvedCount(uint8)", 1));
        assertTrue(ok && abi.decode(out, (uint256)) == 2, "the count as DcnDeals reads it");
        // No such role.
        (ok,) = address(reg).staticcall(abi.encodeWithSignature("approvedCount(uint8)", 3));
        assertTrue(!ok, "a role out of range reverts");
    }

    function test_ownership_moves_in_two_steps() public {
        reg.transferOwnership(a);
        assertEq(reg.owner(), address(this), "still the owner until accepted");
        assertEq(reg.pendingOwner(), a, "a pending");
        reg.setApproved(DcnRegistry.Role.Mediator, c, true); // the owner still approves
        vm.prank(b);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, b));
        reg.acceptOwnership();
        // The owner may name another before it is accepted.
        reg.transferOwnership(b);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, a));
        reg.acceptOwnership();
        vm.prank(b);
        reg.acceptOwnership();
        assertEq(reg.owner(), b, "b owns it");
        assertEq(reg.pendingOwner(), address(0), "nobody pending");
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, address(this)));
        reg.setApproved(DcnRegistry.Role.Mediator, a, true);
        vm.prank(b);
        reg.setApproved(DcnRegistry.Role.Mediator, a, true);
        assertTrue(reg.isApproved(DcnRegistry.Role.Mediator, a), "the new owner approves");
    }

    function test_a_pending_owner_of_the_contracts_cannot_publish_them() public {
        DcnToken tok = new DcnToken(1 ether);
        DcnDeals deals = new DcnDeals(
            tok,
            DcnDeals.Params({
                minMediators: 1,
                minAuditPpm: 0,
                appealWindow: 1 days,
                minMediationFee: 0,
                silenceSlash: 0,
                minBond: 1,
                appealFee: 1
            })
        );
        DcnJobBoard board = new DcnJobBoard(tok, deals, address(this), 1, 1);
        vm.prank(a);
        DcnRegistry theirs = new DcnRegistry();
        deals.transferOwnership(a);
        board.transferOwnership(a);
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotTheirOwner.selector, address(deals), address(board)));
        theirs.setNetwork(address(tok), address(deals), address(board), address(0));
        vm.startPrank(a);
        deals.acceptOwnership();
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotTheirOwner.selector, address(deals), address(board)));
        theirs.setNetwork(address(tok), address(deals), address(board), address(0));
        board.acceptOwnership();
        theirs.setNetwork(address(tok), address(deals), address(board), address(0));
        vm.stopPrank();
        assertEq(theirs.network().deals, address(deals), "published once both are accepted");
    }

    function test_the_network_is_set_once_by_the_owner_of_its_contracts() public {
        address deals = address(new Owned(address(this)));
        address board = address(new Owned(address(this)));
        DcnRegistry.Network memory n = reg.network();
        assertEq(n.deals, address(0), "empty at first");
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(Ownable.OwnableUnauthorizedAccount.selector, a));
        reg.setNetwork(address(1), deals, board, address(4));
        vm.expectRevert(DcnRegistry.NetworkIncomplete.selector);
        reg.setNetwork(address(0), deals, board, address(4));
        vm.expectRevert(DcnRegistry.NetworkIncomplete.selector);
        reg.setNetwork(address(1), address(0), board, address(4));
        vm.expectRevert(DcnRegistry.NetworkIncomplete.selector);
        reg.setNetwork(address(1), deals, address(0), address(4));
        // Contracts someone else owns cannot be published under this registry.
        address theirs = address(new Owned(a));
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotTheirOwner.selector, theirs, board));
        reg.setNetwork(address(1), theirs, board, address(4));
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotTheirOwner.selector, deals, theirs));
        reg.setNetwork(address(1), deals, theirs, address(4));
        vm.prank(a);
        DcnRegistry impostor = new DcnRegistry();
        vm.prank(a);
        vm.expectRevert(abi.encodeWithSelector(DcnRegistry.NotTheirOwner.selector, deals, board));
        impostor.setNetwork(address(1), deals, board, address(0));

        vm.roll(42);
        reg.setNetwork(address(1), deals, board, address(0));
        n = reg.network();
        assertEq(n.token, address(1), "token");
        assertEq(n.deals, deals, "deals");
        assertEq(n.jobBoard, board, "job board");
        assertEq(n.exampleClient, address(0), "no example");
        assertEq(n.block, 42, "block");
        vm.expectRevert(DcnRegistry.NetworkAlreadySet.selector);
        reg.setNetwork(address(5), deals, board, address(8));
        assertEq(reg.network().token, address(1), "unchanged");
    }
}

/// Stands in for an Ownable contract (DcnDeals, DcnJobBoard) owned by `owner`.
contract Owned {
    address public owner;

    constructor(address owner_) {
        owner = owner_;
    }
}

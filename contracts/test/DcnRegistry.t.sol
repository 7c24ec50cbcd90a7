// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

import {Test} from "./utils/Test.sol";
import {DcnRegistry} from "../src/DcnRegistry.sol";

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
        assertEq(reg.list(DcnRegistry.Role.Solver).length, 1, "listed");
        assertEq(reg.list(DcnRegistry.Role.Provider).length, 0, "other role empty");
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
        DcnRegistry.Service[] memory all = reg.list(DcnRegistry.Role.Provider);
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
}

#!/usr/bin/env node
// Mutation testing of the contracts: applies each mutation below to a copy of contracts/,
// runs `forge test` on it, and counts the mutants the tests kill (some test fails).
// Prints one line per mutant, then `contract_mutants_killed <killed>/<total>`.
//
// Every mutation names the external function (or public constant or getter) whose rule
// it breaks and says the rule in its id; together they cover every external function of
// DcnEscrow, DcnDeals, DcnJobBoard and DcnRegistry, which the script checks against the
// ABIs in contracts/out (less EXEMPT: OpenZeppelin's own functions). DcnToken is
// OpenZeppelin's ERC-20 and permit, unchanged. A mutation whose `from` text is not found
// exactly once is an error: when the source changes, this list changes with it. Survivors
// that are equivalent to the original are listed in EQUIVALENT with the reason; any other
// survivor makes the script exit 1.
//
// Usage: node scripts/mutants.js [id-substring | DcnEscrow | DcnDeals | DcnJobBoard | DcnRegistry][,…]
//        node scripts/mutants.js --check   (only check the list against the sources and ABIs)
//        (all of them: `make mutants`)

"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn } = require("child_process");

const ROOT = path.resolve(__dirname, "..");
const E = "DcnEscrow.sol";
const D = "DcnDeals.sol";
const B = "DcnJobBoard.sol";
const R = "DcnRegistry.sol";

// [id, file, external function, from, to]
const MUTANTS = [
  // ── DcnEscrow: escrow ──
  ["deposit-credits-nothing", E, "deposit", "e.free = SafeCast.toUint128(uint256(e.free) + amount);", "e.free = SafeCast.toUint128(uint256(e.free));"],
  ["deposit-takes-no-tokens", E, "deposit", "token.safeTransferFrom(msg.sender, address(this), amount);", ""],
  ["deposit-of-nothing", E, "deposit", "function _deposit(uint256 amount) private {\n        if (amount == 0) revert ZeroAmount();", "function _deposit(uint256 amount) private {"],
  ["deposit-unbooked", E, "booked", "booked += amount;", ""],
  ["permit-skipped", E, "depositWithPermit", "try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}", ""],
  ["permit-front-run-blocks-deposit", E, "depositWithPermit", "try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}", "IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s);"],
  ["withdraw-keeps-free", E, "withdraw", "e.free -= uint128(amount);\n        booked -= amount;", "booked -= amount;"],
  ["withdraw-sends-nothing", E, "withdraw", "emit Withdrawn(msg.sender, amount);\n        token.safeTransfer(msg.sender, amount);", "emit Withdrawn(msg.sender, amount);"],
  ["withdraw-over-free", E, "withdraw", "if (e.free < amount) revert InsufficientEscrow(msg.sender, amount, e.free);\n        e.free -= uint128(amount);", "unchecked { e.free -= uint128(amount); }"],
  ["withdraw-of-nothing", E, "withdraw", "function withdraw(uint256 amount) external {\n        if (amount == 0) revert ZeroAmount();", "function withdraw(uint256 amount) external {"],
  ["withdraw-unbooked", E, "booked", "booked -= amount;", ""],
  ["skim-takes-escrow", E, "skim", "amount = held - booked;", "amount = held;"],
  ["skim-by-anyone", E, "skim", "function skim(address to) external onlyOwner returns", "function skim(address to) external returns"],
  ["skim-of-nothing", E, "skim", "if (held <= booked) revert NothingToSkim(held, booked);", ""],
  ["escrow-swapped", E, "escrowOf", "return (e.free, e.locked);", "return (e.locked, e.free);"],
  // ── DcnEscrow: bonds ──
  ["bond-costs-nothing", E, "postBond", "unchecked {\n            e.free -= uint128(amount);\n        }\n        b.amount += uint128(amount);", "b.amount += uint128(amount);"],
  ["bond-over-free", E, "postBond", "if (e.free < amount) revert InsufficientEscrow(msg.sender, amount, e.free);\n        unchecked {", "unchecked {"],
  ["bond-while-unbonding", E, "postBond", "if (b.unbondAt != 0) revert Unbonding(msg.sender, b.unbondAt);\n        Escrow storage e", "Escrow storage e"],
  ["bond-of-nothing", E, "postBond", "function postBond(uint256 amount) external {\n        if (amount == 0) revert ZeroAmount();", "function postBond(uint256 amount) external {"],
  ["unbond-without-bond", E, "requestUnbond", "if (b.amount == 0) revert NoBond(msg.sender);", ""],
  ["unbond-twice-restarts-delay", E, "requestUnbond", "if (b.amount == 0) revert NoBond(msg.sender);\n        if (b.unbondAt != 0) revert Unbonding(msg.sender, b.unbondAt);", "if (b.amount == 0) revert NoBond(msg.sender);"],
  ["unbond-at-once", E, "requestUnbond", "b.unbondAt = uint64(block.timestamp) + UNBOND_DELAY;", "b.unbondAt = uint64(block.timestamp);"],
  ["unbond-delay-shorter-than-an-appeal", E, "UNBOND_DELAY", "uint64 public constant UNBOND_DELAY = 30 days;", "uint64 public constant UNBOND_DELAY = 21 days;"],
  ["withdraw-bond-without-asking", E, "withdrawBond", "if (b.unbondAt == 0) revert NotUnbonding(msg.sender);", ""],
  ["withdraw-bond-early", E, "withdrawBond", "if (block.timestamp < b.unbondAt) revert BondLocked(msg.sender, b.unbondAt);", ""],
  ["withdraw-bond-a-second-late", E, "withdrawBond", "if (block.timestamp < b.unbondAt)", "if (block.timestamp <= b.unbondAt)"],
  ["withdraw-bond-keeps-bond", E, "withdrawBond", "delete _bonds[msg.sender];", ""],
  ["withdraw-bond-credits-nothing", E, "withdrawBond", "_escrow[msg.sender].free += uint128(amount);", ""],
  ["bond-of-hides-unbonding", E, "bondOf", "return (b.amount, b.unbondAt);", "return (b.amount, 0);"],
  ["lock-over-free", E, "createDeal", "if (free < amount) revert InsufficientEscrow(account, amount, free);", ""],
  ["unlock-keeps-lock", E, "acceptResult", "sstore(e.slot, or(free, shl(128, sub(locked, unlock))))", "sstore(e.slot, or(free, shl(128, locked)))"],
  ["slash-uncapped", E, "ruleAppeal", "taken = b.amount < amount ? b.amount : amount;", "taken = amount;"],
  ["slash-pays-nobody", E, "timeout", "b.amount -= uint128(taken);\n        _escrow[to].free += uint128(taken);", "b.amount -= uint128(taken);"],
  ["slash-keeps-bond", E, "timeout", "b.amount -= uint128(taken);\n", ""],
  ["drawn-while-unbonding", E, "draw", "return b.unbondAt == 0 && b.amount >= minBond && b.amount != 0;", "return b.amount >= minBond && b.amount != 0;"],
  ["drawn-below-least-bond", E, "draw", "return b.unbondAt == 0 && b.amount >= minBond && b.amount != 0;", "return b.unbondAt == 0 && b.amount != 0;"],
  ["least-bond-not-drawn", E, "draw", "b.amount >= minBond && b.amount != 0", "b.amount > minBond && b.amount != 0"],
  // ── DcnDeals: the network's rules (the constructor checks and fixes them; named by `params`, the getter that shows them) ──
  ["params-any-mediator-count", D, "params", "if (p.minMediators == 0 || p.minMediators > MAX_MEDIATORS || p.minAuditPpm > PPM) revert InvalidParams();", ""],
  ["params-any-appeal-window", D, "params", "if (p.appealWindow == 0 || p.appealWindow > MAX_DISPUTE_TIMEOUT) revert InvalidParams();", ""],
  ["params-no-bond-or-fee", D, "params", "if (p.minBond == 0 || p.appealFee == 0) revert InvalidParams();", ""],
  ["params-no-mediators", D, "params", "p.minMediators == 0 || p.minMediators > MAX_MEDIATORS", "p.minMediators > MAX_MEDIATORS"],
  ["params-over-max-mediators", D, "params", "p.minMediators > MAX_MEDIATORS || ", ""],
  ["params-max-mediators-refused", D, "params", "p.minMediators > MAX_MEDIATORS", "p.minMediators >= MAX_MEDIATORS"],
  ["params-audit-chance-over-one", D, "params", " || p.minAuditPpm > PPM) revert", ") revert"],
  ["params-certain-audit-refused", D, "params", "p.minAuditPpm > PPM", "p.minAuditPpm >= PPM"],
  ["params-no-appeal-window", D, "params", "p.appealWindow == 0 || ", ""],
  ["params-appeal-window-over-a-week", D, "params", " || p.appealWindow > MAX_DISPUTE_TIMEOUT) revert", ") revert"],
  ["params-week-appeal-window-refused", D, "params", "p.appealWindow > MAX_DISPUTE_TIMEOUT", "p.appealWindow >= MAX_DISPUTE_TIMEOUT"],
  ["params-no-bond", D, "params", "p.minBond == 0 || ", ""],
  ["params-free-appeal", D, "params", " || p.appealFee == 0) revert", ") revert"],
  ["params-not-stored", D, "params", "_silenceSlash = params_.silenceSlash;\n", ""],
  ["params-hidden", D, "params", "returns (Params memory) {\n        return Params({", "returns (Params memory none) {\n        if (none.minBond == 0) return none;\n        return Params({"],
  ["params-fields-swapped", D, "params", "minBond: _minBond,\n            appealFee: _appealFee", "minBond: _appealFee,\n            appealFee: _minBond"],
  ["registry-twice", D, "setRegistry", "if (address(registry) != address(0)) revert RegistryAlreadySet();", ""],
  ["registry-by-anyone", D, "setRegistry", "function setRegistry(IMediatorPool registry_) external onlyOwner {", "function setRegistry(IMediatorPool registry_) external {"],
  ["registry-not-stored", D, "registry", "registry = registry_;", ""],
  ["flag-honest-moved", D, "FLAG_HONEST", "uint8 public constant FLAG_HONEST = 1;", "uint8 public constant FLAG_HONEST = 32;"],
  ["flag-by-job-creator-moved", D, "FLAG_APPEAL_BY_JOB_CREATOR", "uint8 public constant FLAG_APPEAL_BY_JOB_CREATOR = 2;", "uint8 public constant FLAG_APPEAL_BY_JOB_CREATOR = 64;"],
  ["flag-appeal-done-moved", D, "FLAG_APPEAL_DONE", "uint8 public constant FLAG_APPEAL_DONE = 4;", "uint8 public constant FLAG_APPEAL_DONE = 128;"],
  ["flag-overturned-moved", D, "FLAG_OVERTURNED", "uint8 public constant FLAG_OVERTURNED = 8;", "uint8 public constant FLAG_OVERTURNED = 32;"],
  ["flag-audit-moved", D, "FLAG_AUDIT", "uint8 public constant FLAG_AUDIT = 16;", "uint8 public constant FLAG_AUDIT = 32;"],
  ["ppm-tenfold-smaller", D, "PPM", "uint32 public constant PPM = 1_000_000;", "uint32 public constant PPM = 100_000;"],
  ["max-mediators-15", D, "MAX_MEDIATORS", "uint256 public constant MAX_MEDIATORS = 16;", "uint256 public constant MAX_MEDIATORS = 15;"],
  ["max-dispute-timeout-6-days", D, "MAX_DISPUTE_TIMEOUT", "uint64 public constant MAX_DISPUTE_TIMEOUT = 7 days;", "uint64 public constant MAX_DISPUTE_TIMEOUT = 6 days;"],
  ["appeal-draws-once", D, "APPEAL_DRAWS", "uint256 public constant APPEAL_DRAWS = 8;", "uint256 public constant APPEAL_DRAWS = 1;"],
  ["typehash-other-type", D, "DEAL_TYPEHASH", "uint32 auditPpm,uint64 resultTimeout", "uint64 auditPpm,uint64 resultTimeout"],
  // ── DcnDeals: createDeal, cancelDeal ──
  ["id-omits-create-deadline", D, "dealId", "mstore(add(m, 0x80), mediatorsHash)\n            h := keccak256(m, 0x200)", "mstore(add(m, 0x80), mediatorsHash)\n            mstore(add(m, 0x1a0), 0)\n            h := keccak256(m, 0x200)"],
  ["id-omits-audit-fee", D, "dealId", "mstore(add(m, 0x80), mediatorsHash)\n            h := keccak256(m, 0x200)", "mstore(add(m, 0x80), mediatorsHash)\n            mstore(add(m, 0x100), 0)\n            h := keccak256(m, 0x200)"],
  ["id-omits-mediators", D, "dealId", "mstore(add(m, 0x80), mediatorsHash)\n            h := keccak256(m, 0x200)", "mstore(add(m, 0x80), 0)\n            h := keccak256(m, 0x200)"],
  ["terms-omit-mediators", D, "termsOf", "keccak256(abi.encodePacked(deal.mediators)),\n            deal.jobHash", "bytes32(0),\n            deal.jobHash"],
  ["terms-swap-fees", D, "termsOf", "uint96(deal.mediationFee),\n            uint96(deal.auditFee),", "uint96(deal.auditFee),\n            uint96(deal.mediationFee),"],
  ["create-by-anyone", D, "createDeal", "if (msg.sender != jobCreator) revert NotJobCreator(msg.sender);", ""],
  ["create-after-deadline", D, "createDeal", "if (block.timestamp > deal.createDeadline) revert DealExpired(deal.createDeadline);", ""],
  ["create-cancelled", D, "createDeal", "if (state == State.Cancelled) revert DealIsCancelled(id);", ""],
  ["create-twice", D, "createDeal", "            revert DealExists(id);\n", ""],
  ["create-unsigned", D, "createDeal", "if (!_signedBy(provider, id, providerSig)) revert BadSignature(provider);", ""],
  ["create-no-collateral-lock", D, "createDeal", "_lock(provider, collateral);", ""],
  ["create-no-audit-fee-lock", D, "createDeal", "_lock(jobCreator, price + auditFee);", "_lock(jobCreator, price);"],
  ["create-too-few-mediators", D, "createDeal", "if (n < min) revert TooFewMediators(n, min);", ""],
  ["create-too-many-mediators", D, "createDeal", "if (n > MAX_MEDIATORS) revert TooManyMediators(n);", ""],
  ["create-duplicate-mediators", D, "createDeal", "if (mediators[j] == m) revert InvalidMediator(m);", ""],
  ["create-party-as-mediator", D, "createDeal", "if (m == address(0) || m == jobCreator || m == provider) revert InvalidMediator(m);", ""],
  ["create-fee-below-floor", D, "createDeal", "if (fee < _minMediationFee) revert FeeBelowFloor(fee, _minMediationFee);", ""],
  ["create-audit-fee-below-floor", D, "createDeal", "if (auditFee < _minMediationFee) revert FeeBelowFloor(auditFee, _minMediationFee);", ""],
  ["create-collateral-below-fee", D, "createDeal", "if (collateral < fee) revert CollateralBelowFee(collateral, fee);", ""],
  ["create-collateral-below-audit-fee", D, "createDeal", "if (collateral < auditFee) revert CollateralBelowFee(collateral, auditFee);", ""],
  ["create-audit-chance-below-minimum", D, "createDeal", "auditPpm < _minAuditPpm || ", ""],
  ["create-audit-chance-above-one", D, "createDeal", " || auditPpm > PPM) revert AuditChanceTooLow", ") revert AuditChanceTooLow"],
  ["create-result-timeout-unchecked", D, "createDeal", "if (resultTimeout == 0 || resultTimeout > type(uint32).max) revert InvalidTimeout(uint64(resultTimeout));", ""],
  ["create-dispute-timeouts-unchecked", D, "createDeal", "if (t == 0 || t > MAX_DISPUTE_TIMEOUT) revert InvalidTimeout(uint64(t));", ""],
  ["create-amounts-unchecked", D, "createDeal", "if (amount > type(uint96).max) revert AmountTooLarge(amount);", ""],
  ["create-wrong-deadline", D, "createDeal", "uint40(block.timestamp + resultTimeout)", "uint40(block.timestamp + deal.judgeTimeout)"],
  ["create-commits-nothing", D, "createDeal", "_putNew(id, _commitment(id, deal, mediatorsHash),", "_putNew(id, bytes19(0),"],
  ["cancel-by-anyone", D, "cancelDeal", "if (msg.sender != deal.provider) revert NotProvider(msg.sender);\n        id = dealId(deal);", "id = dealId(deal);"],
  ["cancel-does-nothing", D, "cancelDeal", "s.state = State.Cancelled;", ""],
  ["cancel-a-created-deal", D, "cancelDeal", "_checkState(id, s, State.None);", ""],
  // ── DcnDeals: the result ──
  ["submit-by-anyone", D, "submitResult", "if (msg.sender != t.provider) revert NotProvider(msg.sender);\n        if (resultHash", "if (resultHash"],
  ["submit-empty-hash", D, "submitResult", "if (resultHash == bytes32(0)) revert EmptyResultHash();\n", ""],
  ["submit-late", D, "submitResult", "if (block.timestamp > deadline) revert DeadlinePassed(id, deadline);\n        // `t` matched", "// `t` matched"],
  ["submit-keeps-case", D, "submitResult", "bytes19 commit = _commitment(id, t, resultHash, 0, address(0), address(0));", "bytes19 commit = _commitment(id, t, bytes32(0), 0, address(0), address(0));"],
  ["submit-draw-block-unrecorded", D, "submitResult", "or(shl(160, and(deadline, 0xffffffffff)), shl(200, and(mark, 0xffffffffff)))", "shl(160, and(deadline, 0xffffffffff))"],
  ["submit-wrong-deadline", D, "submitResult", "deadline = uint40(block.timestamp + _wordOf(t, 0xe0));", "deadline = uint40(block.timestamp + _wordOf(t, 0x100));"],
  ["accept-by-anyone", D, "acceptResult", "if (msg.sender != t.jobCreator) revert NotJobCreator(msg.sender);\n        // The deal's word, checked as `_load`", "// The deal's word, checked as `_load`"],
  ["accept-keeps-audit-fee", D, "acceptResult", "_settle(jobCreator, price + auditFee, auditFee);", "_settle(jobCreator, price, 0);"],
  ["accept-pays-nobody", D, "acceptResult", "_settle(jobCreator, price + auditFee, auditFee);\n            _settle(provider, collateral, price + collateral);", "_settle(jobCreator, auditFee, auditFee);"],
  ["accept-state-unwritten", D, "acceptResult", "sstore(p.slot, or(and(w, not(shl(152, 0xff))), shl(152, state)))", "pop(state)"],
  ["accept-pays-collateral-as-price", D, "acceptResult", "price := calldataload(add(t, 0x40))", "price := calldataload(add(t, 0x60))"],
  ["audit-drawn-in-its-own-block", D, "acceptResult", "if (block.number <= b) revert DrawNotReady(id, uint64(b));\n        // The caller checked", "// The caller checked"],
  ["audit-postponed-when-its-hash-is-gone", D, "acceptResult", "if (auditDrawn(id, uint64(b), uint32(_wordOf(t, 0xc0)))) {", "if (block.number - b > BLOCKHASH_WINDOW) {\n            assembly {\n                sstore(p.slot, or(and(w, not(shl(200, 0xffffffffff))), shl(200, number())))\n            }\n            return State.ResultSubmitted;\n        }\n        if (auditDrawn(id, uint64(b), uint32(_wordOf(t, 0xc0)))) {"],
  ["audit-never-drawn", D, "acceptResult", "if (auditDrawn(id, uint64(b), uint32(_wordOf(t, 0xc0)))) {", "if (false) {"],
  ["audit-from-parent-block", D, "acceptResult", "if (auditDrawn(id, uint64(b), uint32(_wordOf(t, 0xc0)))) {", "if (auditDrawn(id, uint64(b - 1), uint32(_wordOf(t, 0xc0)))) {"],
  ["audit-no-round", D, "acceptResult", "w := or(and(w, 0xffffffffffffffffffffffffffffffffffffff), shl(152, audited))\n                w := or(w, or(shl(160, deadline), shl(200, mark)))", "w := or(and(w, not(shl(152, 0xff))), shl(152, audited))"],
  ["audit-not-flagged", D, "acceptResult", "sstore(p.slot, or(w, shl(248, flags)))", "sstore(p.slot, w)"],
  ["audit-forgets-commit", D, "acceptResult", "w := or(and(w, 0xffffffffffffffffffffffffffffffffffffff), shl(152, audited))", "w := shl(152, audited)"],
  ["audit-chance-inverted", D, "auditDrawn", "% PPM < auditPpm;", "% PPM >= auditPpm;"],
  ["audit-chance-one-more", D, "auditDrawn", "% PPM < auditPpm;", "% PPM <= auditPpm;"],
  ["audit-of-an-unsealed-block", D, "auditDrawn", "if (block.number <= mark) return false;\n", ""],
  ["audit-skipped-when-its-hash-is-gone", D, "auditDrawn", "if (block.number - mark > BLOCKHASH_WINDOW) return true;", "if (block.number - mark > BLOCKHASH_WINDOW) return false;"],
  ["audit-hash-gone-one-block-early", D, "auditDrawn", "if (block.number - mark > BLOCKHASH_WINDOW) return true;", "if (block.number - mark >= BLOCKHASH_WINDOW) return true;"],
  ["challenge-by-anyone", D, "challenge", "if (msg.sender != t.jobCreator) revert NotJobCreator(msg.sender);\n        Slot memory s = _load(id, _commitment(id, t, c), State.ResultSubmitted);\n        _checkBeforeDeadline", "Slot memory s = _load(id, _commitment(id, t, c), State.ResultSubmitted);\n        _checkBeforeDeadline"],
  ["challenge-late", D, "challenge", "State.ResultSubmitted);\n        _checkBeforeDeadline(id, s);", "State.ResultSubmitted);"],
  ["challenge-free", D, "challenge", "_relock(t.jobCreator, t.auditFee, t.mediationFee);", "_relock(t.jobCreator, t.auditFee, 0);"],
  ["challenge-keeps-audit-fee", D, "challenge", "_relock(t.jobCreator, t.auditFee, t.mediationFee);", "_relock(t.jobCreator, 0, t.mediationFee);"],
  ["challenge-no-round", D, "challenge", "s.state = State.Challenged;\n        _newRound(s, t.mediationTimeout);", "s.state = State.Challenged;"],
  // ── DcnDeals: mediation ──
  ["draw-in-its-own-block", D, "draw", "if (s.drawn != 0) return mediators[s.drawn - 1];\n        uint256 b = s.mark;\n        if (block.number <= b) revert DrawNotReady(id, uint64(b));", "if (s.drawn != 0) return mediators[s.drawn - 1];\n        uint256 b = s.mark;"],
  ["draw-from-parent-block", D, "draw", "_drawBonded(blockhash(b), id, c.excluded, mediators);", "_drawBonded(blockhash(b - 1), id, c.excluded, mediators);"],
  ["draw-keeps-round-deadline", D, "draw", "s.drawn = uint8(drawn);\n            uint40 deadline = uint40(block.timestamp + t.mediationTimeout);", "s.drawn = uint8(drawn);\n            uint40 deadline = s.deadline;"],
  ["draw-postponed-forever", D, "draw", "s.mark = uint40(block.number);\n            _put(id, s);\n            emit DrawPostponed(id, uint64(block.number));\n            return address(0);\n        }\n        (uint256 drawn", "_put(id, s);\n            emit DrawPostponed(id, uint64(block.number));\n            return address(0);\n        }\n        (uint256 drawn"],
  ["draw-ignores-exclusions", D, "draw", "if (excluded & (1 << i) != 0) continue;", ""],
  ["draw-ignores-bonds", D, "draw", "if (_bonded(mediators[i], minBond)) return (i + 1, excluded);", "return (i + 1, excluded);"],
  ["draw-forgets-exclusions", D, "draw", "if (excluded != c.excluded) {\n            s.commit = _commitment(id, t, c.resultHash, excluded, c.ruledBy, c.appealMediator);\n        }\n        if (drawn != 0) {", "if (drawn != 0) {"],
  ["draw-not-recorded", D, "draw", "s.drawn = uint8(drawn);\n", ""],
  ["draw-again-redraws", D, "draw", "if (s.drawn != 0) return mediators[s.drawn - 1];\n", ""],
  ["draw-always-the-first", D, "draw", "uint256 pick = uint256(keccak256(abi.encode(h, id, excluded))) % left;", "uint256 pick = 0;"],
  ["draw-wrong-mediators", D, "draw", "if (_hashMediators(mediators) != t.mediators) revert WrongMediators(id);", ""],
  ["untried-never-run-out", D, "timeout", "            left--;\n", ""],
  ["mediate-by-anyone", D, "mediate", "if (msg.sender != drawn || drawn == address(0)) revert NotMediator(msg.sender, drawn);", ""],
  ["mediate-late", D, "mediate", "revert NotMediator(msg.sender, drawn);\n        _checkBeforeDeadline(id, s);", "revert NotMediator(msg.sender, drawn);"],
  ["honest-fee-refunded", D, "mediate", "_settle(t.jobCreator, uint256(t.price) + fee, 0);\n            _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);\n        } else {\n            s.state = State.MediatedDishonest;\n            s.flags = auditFlag;\n            _settle(t.jobCreator, uint256(t.price) + fee, uint256(t.price) + t.collateral);\n            _settle(t.provider, t.collateral, 0);\n        }\n        _settle(msg.sender, 0, fee);", "_settle(t.jobCreator, uint256(t.price) + fee, fee);\n            _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);\n        } else {\n            s.state = State.MediatedDishonest;\n            s.flags = auditFlag;\n            _settle(t.jobCreator, uint256(t.price) + fee, uint256(t.price) + t.collateral);\n            _settle(t.provider, t.collateral, 0);\n        }\n        _settle(msg.sender, 0, providerHonest ? 0 : fee);"],
  ["honest-provider-unpaid", D, "mediate", "s.flags = auditFlag | FLAG_HONEST;\n            _settle(t.jobCreator, uint256(t.price) + fee, 0);\n            _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);", "s.flags = auditFlag | FLAG_HONEST;\n            _settle(t.jobCreator, fee, 0);"],
  ["dishonest-not-slashed", D, "mediate", "_settle(t.jobCreator, uint256(t.price) + fee, uint256(t.price) + t.collateral);\n            _settle(t.provider, t.collateral, 0);", "_settle(t.jobCreator, uint256(t.price) + fee, uint256(t.price) + fee);\n            _settle(t.provider, t.collateral, t.collateral - fee);"],
  ["dishonest-price-to-provider", D, "mediate", "_settle(t.jobCreator, uint256(t.price) + fee, uint256(t.price) + t.collateral);\n            _settle(t.provider, t.collateral, 0);", "_settle(t.jobCreator, uint256(t.price) + fee, t.collateral - fee);\n            _settle(t.provider, t.collateral, uint256(t.price) + fee);"],
  ["dishonest-mediator-unpaid", D, "mediate", "_settle(t.provider, t.collateral, 0);\n        }\n        _settle(msg.sender, 0, fee);", "_settle(t.provider, t.collateral, fee);\n        }\n        _settle(msg.sender, 0, providerHonest ? fee : 0);"],
  ["audit-paid-the-mediation-fee", D, "mediate", "uint96 fee = audit ? t.auditFee : t.mediationFee;", "uint96 fee = t.mediationFee;"],
  ["mediate-forgets-who-ruled", D, "mediate", "s.commit = _commitment(id, t, c.resultHash, c.excluded, msg.sender, c.appealMediator);", "s.commit = _commitment(id, t, c.resultHash, c.excluded, c.ruledBy, c.appealMediator);"],
  ["mediate-no-appeal-window", D, "mediate", "uint40 deadline = uint40(block.timestamp + _appealWindow);", "uint40 deadline = uint40(block.timestamp);"],
  ["mediate-loses-audit-flag", D, "mediate", "uint8 auditFlag = s.flags & FLAG_AUDIT;", "uint8 auditFlag = 0;"],
  ["mediate-honest-unflagged", D, "mediate", "s.flags = auditFlag | FLAG_HONEST;", "s.flags = auditFlag;"],
  // ── DcnDeals: appeals ──
  ["appeal-by-the-winner", D, "appeal", "bool byJobCreator = state == State.MediatedHonest;", "bool byJobCreator = state == State.MediatedDishonest;"],
  ["appeal-by-anyone", D, "appeal", "if (msg.sender != (byJobCreator ? t.jobCreator : t.provider)) revert NotLoser(msg.sender);", ""],
  ["appeal-after-its-window", D, "appeal", "revert NotLoser(msg.sender);\n        _checkBeforeDeadline(id, s);", "revert NotLoser(msg.sender);"],
  ["appeal-twice", D, "appeal", "if (s.flags & FLAG_APPEAL_DONE != 0) revert AlreadyAppealed(id);", ""],
  ["appeal-free", D, "appeal", "_lock(msg.sender, _appealFee);", ""],
  ["appeal-without-verdict", D, "appeal", "if (state != State.MediatedHonest && state != State.MediatedDishonest) revert WrongState(id, state);", ""],
  ["appeal-forgets-appellant", D, "appeal", "if (byJobCreator) s.flags |= FLAG_APPEAL_BY_JOB_CREATOR;", ""],
  ["appeal-no-round", D, "appeal", "if (byJobCreator) s.flags |= FLAG_APPEAL_BY_JOB_CREATOR;\n        _newRound(s, t.mediationTimeout);", "if (byJobCreator) s.flags |= FLAG_APPEAL_BY_JOB_CREATOR;"],
  ["draw-appeal-after-its-deadline", D, "drawAppeal", "if (c.appealMediator != address(0)) return c.appealMediator;\n        _checkBeforeDeadline(id, s);", "if (c.appealMediator != address(0)) return c.appealMediator;"],
  ["draw-appeal-in-its-own-block", D, "drawAppeal", "_checkBeforeDeadline(id, s);\n        uint256 b = s.mark;\n        if (block.number <= b) revert DrawNotReady(id, uint64(b));", "_checkBeforeDeadline(id, s);\n        uint256 b = s.mark;"],
  ["draw-appeal-postponed-forever", D, "drawAppeal", "s.mark = uint40(block.number);\n            _put(id, s);\n            emit DrawPostponed(id, uint64(block.number));\n            return address(0);\n        }\n        mediator = _drawFromPool", "_put(id, s);\n            emit DrawPostponed(id, uint64(block.number));\n            return address(0);\n        }\n        mediator = _drawFromPool"],
  ["draw-appeal-the-first-mediator", D, "drawAppeal", "if (m != first && m != t.jobCreator", "if (m != t.jobCreator"],
  ["draw-appeal-a-party", D, "drawAppeal", " && m != t.jobCreator && m != t.provider && _bonded(m, minBond)", " && _bonded(m, minBond)"],
  ["draw-appeal-the-unbonded", D, "drawAppeal", " && _bonded(m, minBond)) return m;", ") return m;"],
  ["draw-appeal-same-try-again", D, "drawAppeal", "keccak256(abi.encode(h, id, \"appeal\", k))", "keccak256(abi.encode(h, id, \"appeal\", 0))"],
  ["draw-appeal-not-recorded", D, "drawAppeal", "next.appealMediator = mediator;", ""],
  ["draw-appeal-keeps-deadline", D, "drawAppeal", "next.appealMediator);\n        uint40 deadline = uint40(block.timestamp + t.mediationTimeout);\n        s.deadline = deadline;\n        _put(id, s);\n        emit AppealDrawn", "next.appealMediator);\n        uint40 deadline = s.deadline;\n        _put(id, s);\n        emit AppealDrawn"],
  ["rule-appeal-by-anyone", D, "ruleAppeal", "if (msg.sender != c.appealMediator || msg.sender == address(0)) {\n            revert NotMediator(msg.sender, c.appealMediator);\n        }", ""],
  ["rule-appeal-late", D, "ruleAppeal", "revert NotMediator(msg.sender, c.appealMediator);\n        }\n        _checkBeforeDeadline(id, s);", "revert NotMediator(msg.sender, c.appealMediator);\n        }"],
  ["overturn-costs-no-bond", D, "ruleAppeal", "_slash(c.ruledBy, slash - feePart, appellant);", ""],
  ["overturn-keeps-the-fee", D, "ruleAppeal", "if (overturned) {\n            _unlockTo(appellant, fee, appellant);", "if (overturned) {\n            _unlockTo(appellant, fee, msg.sender);"],
  ["overturn-appeal-mediator-unpaid", D, "ruleAppeal", "_slash(c.ruledBy, feePart, msg.sender);", "_slash(c.ruledBy, feePart, appellant);"],
  ["upheld-fee-back", D, "ruleAppeal", "} else {\n            _unlockTo(appellant, fee, msg.sender);", "} else {\n            _unlockTo(appellant, fee, appellant);"],
  ["overturn-inverted", D, "ruleAppeal", "bool overturned = providerHonest != (flags & FLAG_HONEST != 0);", "bool overturned = providerHonest == (flags & FLAG_HONEST != 0);"],
  ["overturn-not-flagged", D, "ruleAppeal", "flags |= FLAG_OVERTURNED;", ""],
  ["appeal-left-open", D, "ruleAppeal", "s.flags = flags | FLAG_APPEAL_DONE;", "s.flags = flags;"],
  ["appeal-ends-honest", D, "ruleAppeal", "s.state = flags & FLAG_HONEST != 0 ? State.MediatedHonest : State.MediatedDishonest;", "s.state = State.MediatedHonest;"],
  // ── DcnDeals: deadlines ──
  ["timeout-early", D, "timeout", "if (block.timestamp <= s.deadline) revert DeadlineNotReached(id, s.deadline);", ""],
  ["timeout-at-the-deadline", D, "timeout", "if (block.timestamp <= s.deadline)", "if (block.timestamp < s.deadline)"],
  ["no-result-not-slashed", D, "timeout", "_settle(t.jobCreator, uint256(t.price) + t.auditFee, uint256(t.price) + t.auditFee + t.collateral);\n            _settle(t.provider, t.collateral, 0);", "_settle(t.jobCreator, uint256(t.price) + t.auditFee, uint256(t.price) + t.auditFee);\n            _settle(t.provider, t.collateral, t.collateral);"],
  ["no-result-keeps-audit-fee", D, "timeout", "_settle(t.jobCreator, uint256(t.price) + t.auditFee, uint256(t.price) + t.auditFee + t.collateral);", "_settle(t.jobCreator, uint256(t.price), uint256(t.price) + t.collateral);"],
  ["no-judgement-as-accepted", D, "timeout", "s.state = _judgeOrAudit(id, t, c, p, w, State.TimedOutAccepted);\n            if (s.state != State.TimedOutAccepted) return;", "s.state = _judgeOrAudit(id, t, c, p, w, State.Accepted);\n            if (s.state != State.Accepted) return;"],
  ["silent-mediator-kept", D, "timeout", "excluded |= uint16(1 << (idx - 1));", ""],
  ["silence-costs-nothing", D, "timeout", "_slash(missed, _silenceSlash, audit ? t.provider : t.jobCreator);", ""],
  ["silence-slash-to-the-other-party", D, "timeout", "audit ? t.provider : t.jobCreator);", "audit ? t.jobCreator : t.provider);"],
  ["audit-gets-more-rounds", D, "timeout", "if (!audit && _untried(excluded, mediators.length) > 0) {", "if (_untried(excluded, mediators.length) > 0) {"],
  ["no-verdict-provider-unpaid", D, "timeout", "_settle(t.jobCreator, uint256(t.price) + (audit ? t.auditFee : t.mediationFee), audit ? t.auditFee : t.mediationFee);\n        _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);", "_settle(t.jobCreator, audit ? t.auditFee : t.mediationFee, audit ? t.auditFee : t.mediationFee);"],
  ["no-verdict-fee-to-provider", D, "timeout", "_settle(t.jobCreator, uint256(t.price) + (audit ? t.auditFee : t.mediationFee), audit ? t.auditFee : t.mediationFee);\n        _settle(t.provider, t.collateral, uint256(t.price) + t.collateral);", "_settle(t.jobCreator, uint256(t.price) + (audit ? t.auditFee : t.mediationFee), 0);\n        _settle(t.provider, t.collateral, uint256(t.price) + t.collateral + (audit ? t.auditFee : t.mediationFee));"],
  ["round-nobody-drew-misses-nobody", D, "timeout", "(idx, excluded) = _drawBonded(blockhash(b), id, excluded, mediators);", ""],
  ["silent-round-forgets-case", D, "timeout", "        if (excluded != c.excluded) {\n            s.commit = _commitment(id, t, c.resultHash, excluded, c.ruledBy, c.appealMediator);\n        }\n        if (!audit", "        if (!audit"],
  ["lapse-silent-appeal-mediator-kept", D, "timeout", "if (c.appealMediator != address(0)) _slash(c.appealMediator, _silenceSlash, appellant);", ""],
  ["lapse-fee-to-the-other-party", D, "timeout", "_unlockTo(appellant, _appealFee, appellant);", "_unlockTo(appellant, _appealFee, appellant == t.provider ? t.jobCreator : t.provider);"],
  ["timeout-of-a-settled-deal", D, "timeout", "} else {\n            revert WrongState(id, from);\n        }", "} else {\n            return;\n        }"],
  ["timeout-wrong-mediators", D, "timeout", "} else if (from == State.Challenged || from == State.Audited) {\n            _checkMediators(id, t, mediators);", "} else if (from == State.Challenged || from == State.Audited) {"],
  // ── DcnDeals: reading ──
  ["getdeal-hides-drawn", D, "getDeal", "return (s.state, s.deadline, s.mark, s.drawn, s.flags, s.commit);", "return (s.state, s.deadline, s.mark, 0, s.flags, s.commit);"],
  ["verify-trusts-anything", D, "verify", "if (s.state == State.None || s.commit != _commitment(id, t, c)) revert WrongCommitment(id);", "if (s.state == State.None) revert WrongCommitment(id);"],
  ["commitment-omits-case", D, "verify", "calldatacopy(add(m, 0x180), c, 0x80)\n            r := and(keccak256(m, 0x200)", "r := and(keccak256(m, 0x180)"],
  ["load-trusts-terms", D, "challenge", "if (s.commit != commit) revert WrongCommitment(id);", ""],
  ["submit-trusts-terms", D, "submitResult", "if (bytes19(bytes32(w << 104)) != commit) revert WrongCommitment(id);", ""],
  ["submit-any-state", D, "submitResult", "if (now_ != state) revert WrongState(id, now_);", ""],
  ["submit-to-an-unknown-deal", D, "submitResult", "if (now_ == State.None) revert WrongState(id, State.None);", ""],
  ["load-any-state", D, "challenge", "if (s.state != state) revert WrongState(id, s.state);", ""],
  // ── DcnJobBoard ──
  ["request-underpaid", B, "requestJob", "if (payment < minPayment) revert PaymentTooLow(payment, minPayment);", ""],
  ["request-no-time", B, "requestJob", "if (timeout < minTimeout || timeout > MAX_TIMEOUT) revert InvalidTimeout(timeout);", ""],
  ["request-empty-module", B, "requestJob", "if (bytes(module).length == 0) revert EmptyModule();", ""],
  ["request-names-no-job", B, "requestJob", "if (jobHash == bytes32(0)) revert EmptyJobHash();", ""],
  ["request-forgets-job", B, "requestJob", "r.jobHash = jobHash;", ""],
  ["request-forgets-inputs", B, "requestJob", "r.inputs.push(inputs[i]);", ""],
  ["request-operator-unbound", B, "requestJob", "r.operator = operator;", "r.operator = owner();"],
  ["request-unpaid", B, "requestJob", "token.safeTransferFrom(msg.sender, address(this), payment);", ""],
  ["request-due-at-once", B, "requestJob", "uint64 deadline = uint64(block.timestamp) + timeout;", "uint64 deadline = uint64(block.timestamp);"],
  ["request-ids-repeat", B, "requestCount", "requestId = ++requestCount;", "requestId = requestCount + 1;"],
  ["max-timeout-doubled", B, "MAX_TIMEOUT", "uint64 public constant MAX_TIMEOUT = 30 days;", "uint64 public constant MAX_TIMEOUT = 60 days;"],
  ["minimums-by-anyone", B, "setMinimums", "function setMinimums(uint256 minPayment_, uint64 minTimeout_) external onlyOwner {", "function setMinimums(uint256 minPayment_, uint64 minTimeout_) external {"],
  ["minimums-pay-nothing", B, "setMinimums", "if (minPayment_ == 0) revert PaymentTooLow(0, 1);", ""],
  ["minimums-any-time", B, "minTimeout", "if (minTimeout_ == 0 || minTimeout_ > MAX_TIMEOUT) revert InvalidTimeout(minTimeout_);", ""],
  ["minimums-not-stored", B, "minPayment", "minPayment = minPayment_;", ""],
  ["operator-by-anyone", B, "setOperator", "function setOperator(address operator_) external onlyOwner {", "function setOperator(address operator_) external {"],
  ["operator-not-changed", B, "operator", "external onlyOwner {\n        operator = operator_;", "external onlyOwner {"],
  ["claim-by-anyone", B, "claim", "if (msg.sender != r.operator) revert NotOperator(msg.sender);\n        if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);\n        if (r.dealId != 0", "if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);\n        if (r.dealId != 0"],
  ["claim-late", B, "claim", "if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);\n        if (r.dealId != 0", "if (r.dealId != 0"],
  ["claim-swaps-in-flight", B, "claim", "if (r.dealId != 0 && !_failed(r.dealId)) revert DealInFlight(requestId, r.dealId);\n        deals.verify", "deals.verify"],
  ["claim-unverified", B, "claim", "        deals.verify(dealId, t, c);\n        _claim", "        _claim"],
  ["deliver-by-anyone", B, "deliverResult", "if (msg.sender != r.operator) revert NotOperator(msg.sender);\n        bytes32 resultHash", "bytes32 resultHash"],
  ["deliver-overturned-honest", B, "deliverResult", "if (flags & 8 != 0) return false;\n", ""],
  ["deliver-empty-result", B, "deliverResult", "if (resultHash == bytes32(0)) revert EmptyResultHash();", ""],
  ["deliver-unverified", B, "deliverResult", "DcnDeals.State state = deals.verify(dealId, t, c);", "(DcnDeals.State state, , , , , ) = deals.getDeal(dealId);"],
  ["deliver-unpaid-deal", B, "deliverResult", "if (!_paid(state, flags)) revert DealNotPaid(dealId, state);", ""],
  ["deliver-deal-twice", B, "requestOfDeal", "if (used != 0) revert DealUsed(dealId, used);", ""],
  ["deliver-deal-unrecorded", B, "requestOfDeal", "requestOfDeal[dealId] = requestId;", ""],
  ["deliver-others-deal", B, "deliverResult", "if (t.jobCreator != r.operator) revert NotOperatorsDeal(dealId, t.jobCreator);", ""],
  ["deliver-operator-as-provider", B, "deliverResult", "if (t.provider == r.operator) revert OperatorIsProvider(dealId);", ""],
  ["deliver-another-job", B, "deliverResult", "if (t.jobHash != r.jobHash) revert WrongJob(requestId, r.jobHash, t.jobHash);", ""],
  ["deliver-wrong-claimed-deal", B, "deliverResult", "if (r.dealId != dealId) revert WrongDeal(requestId, r.dealId, dealId);", ""],
  ["deliver-starves-callback", B, "CALLBACK_GAS_NEEDED", "if (left < CALLBACK_GAS_NEEDED) revert InsufficientGas(left, CALLBACK_GAS_NEEDED);", ""],
  ["deliver-pays-requester", B, "deliverResult", "token.safeTransfer(msg.sender, r.payment);", "token.safeTransfer(r.requester, r.payment);"],
  ["deliver-after-grace", B, "deliverResult", "if (block.timestamp > last) revert DeadlinePassed(requestId, last);", ""],
  ["deliver-unclaimed-late", B, "deliverResult", "if (r.dealId == 0) {\n            if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);", "if (r.dealId == 0) {"],
  ["deliver-no-callback", B, "deliverResult", "_callBack(requestId, requester, abi.encodeCall(IDcnJobClient.onJobResult, (requestId, dealId, resultHash)));", ""],
  ["deliver-keeps-request-open", B, "deliverResult", "r.status = Status.Delivered;", ""],
  ["deliver-forgets-result", B, "getRequest", "r.resultHash = resultHash;", ""],
  ["grace-none", B, "DELIVERY_GRACE", "uint64 public constant DELIVERY_GRACE = 1 days;", "uint64 public constant DELIVERY_GRACE = 0;"],
  ["callback-reason-uncapped", B, "MAX_REVERT_BYTES", "if gt(n, cap) { n := cap }", ""],
  ["callback-failure-silent", B, "deliverResult", "if (!ok) emit CallbackFailed(requestId, reason);", ""],
  ["callback-gas-unbounded", B, "CALLBACK_GAS", "ok := call(gasLimit, requester, 0, add(data, 0x20), mload(data), 0, 0)", "ok := call(gas(), requester, 0, add(data, 0x20), mload(data), 0, 0)"],
  ["refund-in-flight", B, "refund", "if (!_settled(state)) revert DealInFlight(requestId, dealId);", ""],
  ["refund-in-grace", B, "refund", "if (block.timestamp <= last) revert DeadlineNotReached(requestId, last);", ""],
  ["refund-early", B, "refund", "if (block.timestamp <= r.deadline) revert DeadlineNotReached(requestId, r.deadline);", ""],
  ["refund-to-caller", B, "refund", "token.safeTransfer(r.requester, r.payment);", "token.safeTransfer(msg.sender, r.payment);"],
  ["refund-twice", B, "refund", "r.status = Status.Refunded;", ""],
  ["refund-while-audited", B, "refund", "return s >= DcnDeals.State.Accepted && s != DcnDeals.State.Audited;", "return s >= DcnDeals.State.Accepted;"],
  ["paid-includes-no-result", B, "deliverResult", "|| s == DcnDeals.State.TimedOutAccepted || s == DcnDeals.State.TimedOutNoVerdict;", "|| s == DcnDeals.State.TimedOutAccepted || s == DcnDeals.State.TimedOutNoResult;"],
  ["paid-ignores-appealed-verdict", B, "deliverResult", "if (s == DcnDeals.State.Appealed) return flags & 1 != 0;", ""],
  ["failed-when-paid", B, "claim", "return _settled(s) && !_paid(s, flags);", "return _settled(s);"],
  ["getrequest-unknown", B, "getRequest", "if (_requests[requestId].status == Status.None) revert UnknownRequest(requestId);", ""],
  ["open-unknown", B, "refund", "if (r.status == Status.None) revert UnknownRequest(requestId);\n        if (r.status != Status.Open)", "if (r.status != Status.Open)"],
  ["open-closed", B, "refund", "if (r.status != Status.Open) revert NotOpen(requestId, r.status);", ""],
  // ── DcnRegistry ──
  ["register-no-checks", R, "register", "_checkSizes(url, metadata);\n        Entry storage e = _entries[role][msg.sender];\n        if (e.position != 0)", "Entry storage e = _entries[role][msg.sender];\n        if (e.position != 0)"],
  ["update-no-checks", R, "update", "_checkSizes(url, metadata);\n        Entry storage e = _entries[role][msg.sender];\n        if (e.position == 0)", "Entry storage e = _entries[role][msg.sender];\n        if (e.position == 0)"],
  ["empty-url-allowed", R, "register", "if (bytes(url).length == 0) revert EmptyUrl();", ""],
  ["url-cap-off-by-one", R, "register", "if (bytes(url).length > MAX_URL_BYTES)", "if (bytes(url).length >= MAX_URL_BYTES)"],
  ["url-cap-moved", R, "MAX_URL_BYTES", "uint256 public constant MAX_URL_BYTES = 256;", "uint256 public constant MAX_URL_BYTES = 512;"],
  ["metadata-uncapped", R, "update", "if (bytes(metadata).length > MAX_METADATA_BYTES) {", "if (false) {"],
  ["metadata-cap-moved", R, "MAX_METADATA_BYTES", "uint256 public constant MAX_METADATA_BYTES = 1024;", "uint256 public constant MAX_METADATA_BYTES = 2048;"],
  ["register-twice", R, "register", "if (e.position != 0) revert AlreadyRegistered(msg.sender, role);", ""],
  ["update-unregistered", R, "update", "if (e.position == 0) revert NotRegistered(msg.sender, role);\n        e.url = url;", "e.url = url;"],
  ["update-keeps-url", R, "update", "e.url = url;\n        e.metadata = metadata;\n        e.updatedAt", "e.metadata = metadata;\n        e.updatedAt"],
  ["leave-breaks-index", R, "leave", "_entries[role][last].position = uint32(position);", ""],
  ["leave-keeps-entry", R, "leave", "delete _entries[role][msg.sender];", ""],
  ["leave-unregistered", R, "leave", "uint256 position = e.position;\n        if (position == 0) revert NotRegistered(msg.sender, role);", "uint256 position = e.position;"],
  ["is-registered-always", R, "isRegistered", "return _entries[role][account].position != 0;", "return true;"],
  ["get-unregistered", R, "get", "if (_entries[role][account].position == 0) revert NotRegistered(account, role);\n        return _service", "return _service"],
  ["count-off-by-one", R, "count", "return _members[role].length;", "return _members[role].length + 1;"],
  ["page-ignores-offset", R, "list", "page[i] = _service(role, accounts[offset + i]);", "page[i] = _service(role, accounts[i]);"],
  ["page-uncapped", R, "MAX_PAGE", "if (n > MAX_PAGE) n = MAX_PAGE;", ""],
  ["page-ignores-limit", R, "list", "if (n > limit) n = limit;", ""],
  ["set-approved-by-anyone", R, "setApproved", "function setApproved(Role role, address account, bool approved) external onlyOwner {", "function setApproved(Role role, address account, bool approved) external {"],
  ["approve-twice-lists-twice", R, "setApproved", "if (approved == (position != 0)) return;", ""],
  ["revoke-breaks-index", R, "setApproved", "_approvedPosition[role][last] = position;", ""],
  ["revoke-keeps-flag", R, "setApproved", "delete _approvedPosition[role][account];", ""],
  ["is-approved-always", R, "isApproved", "return _approvedPosition[role][account] != 0;", "return true;"],
  ["approved-count-off-by-one", R, "approvedCount", "return _approved[role].length;", "return _approved[role].length + 1;"],
  ["approved-at-shifted", R, "approvedAt", "return _approved[role][index];", "return _approved[role][index == 0 ? 0 : index - 1];"],
  ["approved-at-one-role", R, "approvedAt", "return _approved[role][index];", "return _approved[Role.Mediator][index];"],
  ["list-approved-lists-everyone", R, "listApproved", "return _page(role, _approved[role], offset, limit);", "return _page(role, _members[role], offset, limit);"],
  ["entry-never-approved", R, "get", "_approvedPosition[role][account] != 0\n        );", "false\n        );"],
  ["set-network-by-anyone", R, "setNetwork", "address exampleClient) external onlyOwner {", "address exampleClient) external {"],
  ["set-network-twice", R, "setNetwork", "if (_network.deals != address(0)) revert NetworkAlreadySet();", ""],
  ["set-network-without-deals", R, "setNetwork", "|| deals == address(0) ", ""],
  ["set-network-over-others-deals", R, "setNetwork", "if (Ownable(deals).owner() != msg.sender || ", "if ("],
  ["set-network-over-others-board", R, "setNetwork", " || Ownable(jobBoard).owner() != msg.sender) {", ") {"],
  ["set-network-no-block", R, "setNetwork", "exampleClient, uint64(block.number));", "exampleClient, uint64(0));"],
  ["network-empty", R, "network", "return _network;", "Network memory empty;\n        return empty;"],
];

// External functions with no mutation of their own, and why.
const EXEMPT = {
  owner: "OpenZeppelin Ownable2Step, unchanged (its use: the *-by-anyone mutants)",
  pendingOwner: "OpenZeppelin Ownable2Step, unchanged",
  transferOwnership: "OpenZeppelin Ownable2Step, unchanged",
  acceptOwnership: "OpenZeppelin Ownable2Step, unchanged",
  renounceOwnership: "OpenZeppelin Ownable2Step, unchanged",
  eip712Domain: "OpenZeppelin EIP712, unchanged (its domain: test_the_deal_id_is_the_eip712_digest_of_every_term)",
  token: "an immutable set once in the constructor",
  deals: "an immutable set once in the constructor",
};

// Survivors that behave exactly as the original, with the reason (none today).
const EQUIVALENT = {};

function copyTree(src, dst) {
  fs.mkdirSync(dst, { recursive: true });
  for (const e of fs.readdirSync(src, { withFileTypes: true })) {
    if (["build", "cache", "out"].includes(e.name)) continue;
    const s = path.join(src, e.name);
    const d = path.join(dst, e.name);
    if (e.isDirectory()) copyTree(s, d);
    else fs.copyFileSync(s, d);
  }
}

// Runs `forge test` in `dir`; resolves to { status, output }.
function forgeTest(dir, env) {
  const forge = path.join(ROOT, "tools", "node_modules", ".bin", "forge");
  return new Promise((resolve) => {
    const child = spawn(forge, ["test", "--offline", "--fail-fast"], { cwd: dir, env });
    let output = "";
    child.stdout.on("data", (d) => (output += d));
    child.stderr.on("data", (d) => (output += d));
    child.on("close", (status) => resolve({ status, output }));
  });
}

// A copy of contracts/ beside a link to tools/, as contracts/ sits in the repository.
function workCopy() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), "dcn-mutants-"));
  fs.symlinkSync(path.join(ROOT, "tools"), path.join(work, "tools"));
  copyTree(path.join(ROOT, "contracts"), path.join(work, "contracts"));
  return work;
}

// The external functions of each deployed contract, from its committed ABI (DcnEscrow's
// are DcnDeals').
function abiFunctions() {
  const names = {};
  for (const [contract, files] of [["DcnDeals", [E, D]], ["DcnJobBoard", [B]], ["DcnRegistry", [R]]]) {
    const artifact = JSON.parse(fs.readFileSync(path.join(ROOT, "contracts", "out", `${contract}.json`), "utf8"));
    names[contract] = { files, functions: artifact.abi.filter((x) => x.type === "function").map((x) => x.name) };
  }
  return names;
}

// Checks every mutation's text against the sources, and that every external function has
// a mutation (or is EXEMPT). Returns the sources.
function checkList(selected) {
  const originals = {};
  for (const f of [E, D, B, R]) originals[f] = fs.readFileSync(path.join(ROOT, "contracts", "src", f), "utf8");
  const errors = [];
  for (const [id, file, , from] of selected) {
    const source = originals[file];
    const at = source.indexOf(from);
    if (at < 0 || source.indexOf(from, at + 1) >= 0) {
      errors.push(`mutant ${id}: its text is not found exactly once in ${file}`);
    }
  }
  const ids = new Set();
  for (const [id] of MUTANTS) {
    if (ids.has(id)) errors.push(`mutant ${id}: the id is used twice`);
    ids.add(id);
  }
  for (const [contract, { files, functions }] of Object.entries(abiFunctions())) {
    const covered = new Set(MUTANTS.filter(([, file]) => files.includes(file)).map(([, , fn]) => fn));
    for (const fn of covered) {
      if (!functions.includes(fn)) errors.push(`${contract} has no external function ${fn} (named by a mutant)`);
    }
    for (const fn of functions) {
      if (!covered.has(fn) && !EXEMPT[fn]) errors.push(`${contract}.${fn} has no mutant: add one, or say in EXEMPT why not`);
    }
  }
  if (errors.length) throw new Error(errors.join("\n") + "\nupdate scripts/mutants.js");
  return originals;
}

async function main() {
  const only = process.argv[2];
  if (only === "--check") {
    checkList(MUTANTS);
    const fns = new Set(MUTANTS.map(([, file, fn]) => `${file === E ? D : file}.${fn}`));
    console.log(`${MUTANTS.length} mutants over ${fns.size} external functions and constants; the list matches the sources`);
    return;
  }
  const wanted = only ? only.split(",") : [];
  const selected = MUTANTS.filter(
    ([id, file]) => !only || wanted.some((w) => id.includes(w) || file === `${w}.sol`),
  );
  const originals = checkList(selected);
  const env = {
    ...process.env,
    FOUNDRY_SOLC: path.join(ROOT, "scripts", "solc-shim.js"),
    FOUNDRY_GAS_REPORTS: "[]",
    // Fewer random runs than `make test` (512 fuzz, 64 invariant): enough to reach every
    // rule, and the run stays within the hour on two cores.
    FOUNDRY_FUZZ_RUNS: "128",
    FOUNDRY_INVARIANT_RUNS: "24",
  };
  // One worker per core: solc-js and the tests use one core each.
  const workers = Math.max(1, Math.min(os.cpus().length, 4));
  const works = Array.from({ length: workers }, workCopy);
  const clean = await forgeTest(path.join(works[0], "contracts"), env);
  if (clean.status !== 0) {
    process.stderr.write(clean.output);
    throw new Error("forge test fails on the unmutated contracts: fix that first");
  }

  let killed = 0;
  const survivors = [];
  const functions = new Set();
  let next = 0;
  const worker = async (work) => {
    const contracts = path.join(work, "contracts");
    while (next < selected.length) {
      const [id, file, fn, from, to] = selected[next++];
      const source = originals[file];
      const at = source.indexOf(from);
      functions.add(`${file.replace(".sol", "")}.${fn}`);
      fs.writeFileSync(path.join(contracts, "src", file), source.slice(0, at) + to + source.slice(at + from.length));
      // Forge replays the failures it persisted for the last mutant first: start clean.
      for (const d of ["invariant", "fuzz"]) fs.rmSync(path.join(contracts, "cache", d), { recursive: true, force: true });
      const r = await forgeTest(contracts, env);
      fs.writeFileSync(path.join(contracts, "src", file), source);
      if (/Compiler run failed|Error \(\d+\)/.test(r.output)) {
        throw new Error(`mutant ${id} does not compile: fix its text in scripts/mutants.js\n${r.output}`);
      }
      const dead = r.status !== 0;
      if (dead) killed++;
      else survivors.push(id);
      const verdict = dead ? "killed" : EQUIVALENT[id] ? "equivalent" : "SURVIVED";
      console.log(`mutant ${id} (${file.replace(".sol", "")}.${fn}) ${verdict}`);
    }
  };
  await Promise.all(works.map(worker));
  for (const w of works) fs.rmSync(w, { recursive: true, force: true });
  console.log(`contract_mutants_functions ${functions.size} functions`);
  console.log(`contract_mutants_killed ${killed}/${selected.length}`);
  const unexplained = survivors.filter((id) => !EQUIVALENT[id]);
  if (unexplained.length > 0) {
    console.error(`survivors with no test to kill them: ${unexplained.join(", ")}`);
    process.exit(1);
  }
}

main().catch((e) => {
  console.error(e.message);
  process.exit(2);
});

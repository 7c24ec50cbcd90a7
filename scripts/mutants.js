#!/usr/bin/env node
// Mutation testing of the contracts: applies each mutation below to a copy of contracts/,
// runs `forge test` on it, and counts the mutants the tests kill (some test fails).
// Prints one line per mutant, then `contract_mutants_killed <killed>/<total>`.
//
// Every mutation names the external function whose rule it breaks; together they cover
// every external function of DcnDeals, DcnJobBoard and DcnRegistry (DcnToken is
// OpenZeppelin's ERC-20 and permit, unchanged). A mutation whose `from` text is not found
// exactly once is an error: when the source changes, this list changes with it.
// Survivors that are equivalent to the original are listed in EQUIVALENT with the reason;
// any other survivor makes the script exit 1.
//
// Usage: node scripts/mutants.js [id-substring | DcnDeals | DcnJobBoard | DcnRegistry]
//        (all of them: `make mutants`)

"use strict";
const fs = require("fs");
const os = require("os");
const path = require("path");
const { spawn } = require("child_process");

const ROOT = path.resolve(__dirname, "..");
const D = "DcnDeals.sol";
const B = "DcnJobBoard.sol";
const R = "DcnRegistry.sol";

// [id, file, external function, from, to]
const MUTANTS = [
  // ── DcnDeals: escrow ──
  ["deposit-credits-nothing", D, "deposit", "e.free = SafeCast.toUint128(uint256(e.free) + amount);", "e.free = SafeCast.toUint128(uint256(e.free));"],
  ["deposit-books-nothing", D, "deposit", "booked += amount;", ""],
  ["permit-skipped", D, "depositWithPermit", "try IERC20Permit(address(token)).permit(msg.sender, address(this), amount, deadline, v, r, s) {} catch {}", ""],
  ["withdraw-keeps-free", D, "withdraw", "e.free -= uint128(amount);\n        booked -= amount;", "booked -= amount;"],
  ["withdraw-sends-nothing", D, "withdraw", "emit Withdrawn(msg.sender, amount);\n        token.safeTransfer(msg.sender, amount);", "emit Withdrawn(msg.sender, amount);"],
  ["withdraw-over-free", D, "withdraw", "if (e.free < amount) revert InsufficientEscrow(msg.sender, amount, e.free);\n        e.free -= uint128(amount);", "unchecked { e.free -= uint128(amount); }"],
  ["skim-takes-escrow", D, "skim", "amount = held - booked;", "amount = held;"],
  ["skim-by-anyone", D, "skim", "function skim(address to) external onlyOwner returns", "function skim(address to) external returns"],
  ["skim-nothing-check", D, "skim", "if (held <= booked) revert NothingToSkim(held, booked);", ""],
  ["escrow-swapped", D, "escrowOf", "return (e.free, e.locked);", "return (e.locked, e.free);"],
  // ── DcnDeals: createDeal and cancelDeal ──
  ["create-by-anyone", D, "createDeal", "if (msg.sender != deal.jobCreator) revert NotJobCreator(msg.sender);\n        if (block.timestamp > deal.createDeadline)", "if (block.timestamp > deal.createDeadline)"],
  ["create-after-deadline", D, "createDeal", "if (block.timestamp > deal.createDeadline) revert DealExpired(deal.createDeadline);", ""],
  ["create-cancelled", D, "createDeal", "if (d.state == State.Cancelled) revert DealIsCancelled(id);", ""],
  ["create-unsigned", D, "createDeal", "if (!SignatureChecker.isValidSignatureNow(deal.provider, id, providerSig)) revert BadSignature(deal.provider);", ""],
  ["create-no-collateral-lock", D, "createDeal", "_lock(deal.provider, collateral);", ""],
  ["create-no-price-lock", D, "createDeal", "_lock(deal.jobCreator, price);", ""],
  ["create-too-many-mediators", D, "createDeal", "if (n > MAX_MEDIATORS) revert TooManyMediators(n);", ""],
  ["create-duplicate-mediators", D, "createDeal", "if (deal.mediators[j] == m) revert InvalidMediator(m);", ""],
  ["create-party-as-mediator", D, "createDeal", "if (m == address(0) || m == deal.jobCreator || m == deal.provider) revert InvalidMediator(m);", ""],
  ["create-collateral-below-fee", D, "createDeal", "if (collateral < fee) revert CollateralBelowFee(collateral, fee);", ""],
  ["create-wrong-deadline", D, "createDeal", "uint40 deadline = uint40(block.timestamp + deal.resultTimeout);", "uint40 deadline = uint40(block.timestamp + deal.judgeTimeout);"],
  ["id-omits-create-deadline", D, "dealId", "deal.createDeadline,\n                deal.jobHash,", "deal.jobHash,"],
  ["id-omits-mediators", D, "dealId", "keccak256(abi.encodePacked(deal.mediators)),", "bytes32(0),"],
  ["cancel-by-anyone", D, "cancelDeal", "if (msg.sender != deal.provider) revert NotProvider(msg.sender);\n        id = dealId(deal);", "id = dealId(deal);"],
  ["cancel-does-nothing", D, "cancelDeal", "d.state = State.Cancelled;", ""],
  // ── DcnDeals: the deal's life ──
  ["submit-by-anyone", D, "submitResult", "if (msg.sender != d.provider) revert NotProvider(msg.sender);\n        _checkState(id, d, State.Created);", "_checkState(id, d, State.Created);"],
  ["submit-late", D, "submitResult", "_checkState(id, d, State.Created);\n        _checkBeforeDeadline(id, d);", "_checkState(id, d, State.Created);"],
  ["submit-empty-hash", D, "submitResult", "if (resultHash == bytes32(0)) revert EmptyResultHash();", ""],
  ["accept-by-anyone", D, "acceptResult", "if (msg.sender != d.jobCreator) revert NotJobCreator(msg.sender);\n        _checkState(id, d, State.ResultSubmitted);\n        d.state = State.Accepted;", "_checkState(id, d, State.ResultSubmitted);\n        d.state = State.Accepted;"],
  ["accept-pays-nobody", D, "acceptResult", "d.state = State.Accepted;\n        _payProvider(d);", "d.state = State.Accepted;"],
  ["challenge-free", D, "challenge", "_lock(msg.sender, fee);", ""],
  ["challenge-late", D, "challenge", "_checkState(id, d, State.ResultSubmitted);\n        _checkBeforeDeadline(id, d);\n        uint96 fee", "_checkState(id, d, State.ResultSubmitted);\n        uint96 fee"],
  ["challenge-by-anyone", D, "challenge", "if (msg.sender != d.jobCreator) revert NotJobCreator(msg.sender);\n        _checkState(id, d, State.ResultSubmitted);\n        _checkBeforeDeadline(id, d);", "_checkState(id, d, State.ResultSubmitted);\n        _checkBeforeDeadline(id, d);"],
  ["draw-same-block", D, "draw", "if (block.number <= b || block.number - b > BLOCKHASH_WINDOW) return address(0);", "if (block.number - b > BLOCKHASH_WINDOW) return address(0);"],
  ["draw-from-parent-block", D, "draw", "keccak256(abi.encode(blockhash(b), id, excluded))", "keccak256(abi.encode(blockhash(b - 1), id, excluded))"],
  ["draw-keeps-round-deadline", D, "draw", "uint40 deadline = uint40(block.timestamp + d.mediationTimeout);\n        d.drawn = mediator;", "uint40 deadline = d.deadline;\n        d.drawn = mediator;"],
  ["draw-never-postponed", D, "draw", "d.drawBlock = uint64(block.number);\n            emit DrawPostponed", "emit DrawPostponed"],
  ["draw-ignores-exclusions", D, "draw", "if (excluded & (1 << i) != 0) continue;", ""],
  ["mediate-by-anyone", D, "mediate", "if (msg.sender != d.drawn || msg.sender == address(0)) revert NotMediator(msg.sender, d.drawn);", ""],
  ["mediate-late", D, "mediate", "revert NotMediator(msg.sender, d.drawn);\n        _checkBeforeDeadline(id, d);", "revert NotMediator(msg.sender, d.drawn);"],
  ["honest-fee-refunded", D, "mediate", "_unlockTo(jobCreator, fee, msg.sender);", "_unlockTo(jobCreator, fee, jobCreator);"],
  ["dishonest-not-slashed", D, "mediate", "_unlockTo(d.provider, collateral - fee, jobCreator);", "_unlockTo(d.provider, collateral - fee, d.provider);"],
  ["dishonest-price-to-provider", D, "mediate", "_unlockTo(jobCreator, uint256(d.price) + fee, jobCreator);", "_unlockTo(jobCreator, uint256(d.price) + fee, d.provider);"],
  ["dishonest-mediator-unpaid", D, "mediate", "_unlockTo(d.provider, fee, msg.sender);", "_unlockTo(d.provider, fee, d.provider);"],
  ["timeout-early", D, "timeout", "if (block.timestamp <= d.deadline) revert DeadlineNotReached(id, d.deadline);", ""],
  ["no-result-not-slashed", D, "timeout", "_unlockTo(d.provider, d.collateral, jobCreator);", "_unlockTo(d.provider, d.collateral, d.provider);"],
  ["no-judgement-unpaid", D, "timeout", "to = State.TimedOutAccepted;\n            _payProvider(d);", "to = State.TimedOutAccepted;\n            _unlockTo(jobCreator, d.price, jobCreator);\n            _unlockTo(d.provider, d.collateral, d.provider);"],
  ["silent-mediator-kept", D, "timeout", "d.excluded |= uint16(1 << _indexOf(id, d, missed));", ""],
  ["no-verdict-refunds-all", D, "timeout", "to = State.TimedOutNoVerdict;\n            _payProvider(d);", "to = State.TimedOutNoVerdict;\n            _unlockTo(jobCreator, d.price, jobCreator);\n            _unlockTo(d.provider, d.collateral, d.provider);"],
  ["no-verdict-fee-kept", D, "timeout", "_unlockTo(jobCreator, d.mediationFee, jobCreator);\n        }", "_unlockTo(jobCreator, d.mediationFee, d.provider);\n        }"],
  ["no-verdict-final-at-once", D, "timeout", "if (left > 0) {", "if (false) {"],
  ["getdeal-first-mediator", D, "getDeal", "d.state, d.jobCreator, d.provider, d.drawn,", "d.state, d.jobCreator, d.provider, d.mediator,"],
  ["mediators-first-only", D, "mediatorsOf", "list[i] = _mediatorAt(id, d, i);", "list[i] = d.mediator;"],
  ["excluded-hidden", D, "excludedMediatorsOf", "return (d.excluded, d.drawBlock);", "return (0, d.drawBlock);"],
  ["lock-over-free", D, "createDeal", "if (e.free < amount) revert InsufficientEscrow(account, amount, e.free);", ""],
  ["timeouts-unchecked", D, "createDeal", "if (t == 0 || t > type(uint32).max) revert InvalidTimeout(t);", ""],
  ["amounts-unchecked", D, "createDeal", "if (amount > type(uint96).max) revert AmountTooLarge(amount);", ""],
  // ── DcnJobBoard ──
  ["request-underpaid", B, "requestJob", "if (payment < minPayment) revert PaymentTooLow(payment, minPayment);", ""],
  ["request-no-time", B, "requestJob", "if (timeout < minTimeout || timeout > MAX_TIMEOUT) revert InvalidTimeout(timeout);", ""],
  ["request-operator-unbound", B, "requestJob", "r.operator = operator;", "r.operator = owner();"],
  ["request-unpaid", B, "requestJob", "token.safeTransferFrom(msg.sender, address(this), payment);", ""],
  ["minimums-by-anyone", B, "setMinimums", "function setMinimums(uint256 minPayment_, uint64 minTimeout_) external onlyOwner {", "function setMinimums(uint256 minPayment_, uint64 minTimeout_) external {"],
  ["minimums-zero", B, "setMinimums", "if (minPayment_ == 0) revert PaymentTooLow(0, 1);", ""],
  ["operator-by-anyone", B, "setOperator", "function setOperator(address operator_) external onlyOwner {", "function setOperator(address operator_) external {"],
  ["claim-by-anyone", B, "claim", "if (msg.sender != r.operator) revert NotOperator(msg.sender);\n        if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);\n        if (r.dealId != 0", "if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);\n        if (r.dealId != 0"],
  ["claim-swaps-in-flight", B, "claim", "if (r.dealId != 0 && !_failed(r.dealId)) revert DealInFlight(requestId, r.dealId);", ""],
  ["deliver-by-anyone", B, "deliverResult", "if (msg.sender != r.operator) revert NotOperator(msg.sender);\n        if (resultHash == bytes32(0))", "if (resultHash == bytes32(0))"],
  ["deliver-unpaid-deal", B, "deliverResult", "if (!_paid(d.state)) revert DealNotPaid(dealId, d.state);", ""],
  ["deliver-other-hash", B, "deliverResult", "if (d.resultHash != resultHash) revert ResultMismatch(dealId, d.resultHash, resultHash);", ""],
  ["deliver-deal-twice", B, "deliverResult", "if (used != 0) revert DealUsed(dealId, used);", ""],
  ["deliver-others-deal", B, "deliverResult", "if (d.jobCreator != r.operator) revert NotOperatorsDeal(dealId, d.jobCreator);", ""],
  ["deliver-wrong-claimed-deal", B, "deliverResult", "if (r.dealId != dealId) revert WrongDeal(requestId, r.dealId, dealId);", ""],
  ["deliver-starves-callback", B, "deliverResult", "if (left < CALLBACK_GAS_NEEDED) revert InsufficientGas(left, CALLBACK_GAS_NEEDED);", ""],
  ["deliver-pays-requester", B, "deliverResult", "token.safeTransfer(msg.sender, r.payment);", "token.safeTransfer(r.requester, r.payment);"],
  ["deliver-after-grace", B, "deliverResult", "if (block.timestamp > last) revert DeadlinePassed(requestId, last);", ""],
  ["deliver-unclaimed-late", B, "deliverResult", "if (r.dealId == 0) {\n            if (block.timestamp > r.deadline) revert DeadlinePassed(requestId, r.deadline);", "if (r.dealId == 0) {"],
  ["refund-in-flight", B, "refund", "if (state < DcnDeals.State.Accepted) revert DealInFlight(requestId, dealId);", ""],
  ["refund-in-grace", B, "refund", "if (block.timestamp <= last) revert DeadlineNotReached(requestId, last);", ""],
  ["refund-early", B, "refund", "if (block.timestamp <= r.deadline) revert DeadlineNotReached(requestId, r.deadline);", ""],
  ["paid-includes-no-result", B, "deliverResult", "|| s == DcnDeals.State.TimedOutAccepted || s == DcnDeals.State.TimedOutNoVerdict;", "|| s == DcnDeals.State.TimedOutAccepted || s == DcnDeals.State.TimedOutNoResult;"],
  ["getrequest-unknown", B, "getRequest", "if (_requests[requestId].status == Status.None) revert UnknownRequest(requestId);", ""],
  // ── DcnRegistry ──
  ["register-no-checks", R, "register", "_checkSizes(url, metadata);\n        Entry storage e = _entries[role][msg.sender];\n        if (e.position != 0)", "Entry storage e = _entries[role][msg.sender];\n        if (e.position != 0)"],
  ["update-no-checks", R, "update", "_checkSizes(url, metadata);\n        Entry storage e = _entries[role][msg.sender];\n        if (e.position == 0)", "Entry storage e = _entries[role][msg.sender];\n        if (e.position == 0)"],
  ["empty-url-allowed", R, "register", "if (bytes(url).length == 0) revert EmptyUrl();", ""],
  ["url-cap-off-by-one", R, "register", "if (bytes(url).length > MAX_URL_BYTES)", "if (bytes(url).length >= MAX_URL_BYTES)"],
  ["metadata-uncapped", R, "update", "if (bytes(metadata).length > MAX_METADATA_BYTES) {", "if (false) {"],
  ["register-twice", R, "register", "if (e.position != 0) revert AlreadyRegistered(msg.sender, role);", ""],
  ["update-unregistered", R, "update", "if (e.position == 0) revert NotRegistered(msg.sender, role);\n        e.url = url;", "e.url = url;"],
  ["update-keeps-url", R, "update", "e.url = url;\n        e.metadata = metadata;\n        e.updatedAt", "e.metadata = metadata;\n        e.updatedAt"],
  ["leave-breaks-index", R, "leave", "_entries[role][last].position = uint32(position);", ""],
  ["leave-keeps-entry", R, "leave", "delete _entries[role][msg.sender];", ""],
  ["is-registered-always", R, "isRegistered", "return _entries[role][account].position != 0;", "return true;"],
  ["get-unregistered", R, "get", "if (_entries[role][account].position == 0) revert NotRegistered(account, role);\n        return _service", "return _service"],
  ["count-off-by-one", R, "count", "return _members[role].length;", "return _members[role].length + 1;"],
  ["page-ignores-offset", R, "list", "page[i] = _service(role, accounts[offset + i]);", "page[i] = _service(role, accounts[i]);"],
  ["page-uncapped", R, "list", "if (n > MAX_PAGE) n = MAX_PAGE;", ""],
  ["page-ignores-limit", R, "list", "if (n > limit) n = limit;", ""],
  ["set-approved-by-anyone", R, "setApproved", "function setApproved(Role role, address account, bool approved) external onlyOwner {", "function setApproved(Role role, address account, bool approved) external {"],
  ["approve-twice-lists-twice", R, "setApproved", "if (approved == (position != 0)) return;", ""],
  ["revoke-breaks-index", R, "setApproved", "_approvedPosition[role][last] = position;", ""],
  ["revoke-keeps-flag", R, "setApproved", "delete _approvedPosition[role][account];", ""],
  ["is-approved-always", R, "isApproved", "return _approvedPosition[role][account] != 0;", "return true;"],
  ["approved-count-off-by-one", R, "approvedCount", "return _approved[role].length;", "return _approved[role].length + 1;"],
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

async function main() {
  const only = process.argv[2];
  const selected = MUTANTS.filter(([id, file]) => !only || id.includes(only) || file === `${only}.sol`);
  const originals = {};
  for (const f of [D, B, R]) originals[f] = fs.readFileSync(path.join(ROOT, "contracts", "src", f), "utf8");
  const env = {
    ...process.env,
    FOUNDRY_SOLC: path.join(ROOT, "scripts", "solc-shim.js"),
    FOUNDRY_GAS_REPORTS: "[]",
    // Fewer random runs than `make test` (512 fuzz, 64 invariant): enough to reach every
    // rule, and the run stays well under an hour on two cores.
    FOUNDRY_FUZZ_RUNS: "128",
    FOUNDRY_INVARIANT_RUNS: "24",
  };
  for (const [id, file, , from] of selected) {
    const source = originals[file];
    const at = source.indexOf(from);
    if (at < 0 || source.indexOf(from, at + 1) >= 0) {
      throw new Error(`mutant ${id}: its text is not found exactly once in ${file}; update scripts/mutants.js`);
    }
  }
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

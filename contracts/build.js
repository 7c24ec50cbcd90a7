#!/usr/bin/env node
// Compiles contracts/src with the pinned solc-js and writes one artifact per deployable
// contract to contracts/out/<Name>.json: { contractName, sourceName, compiler, abi,
// bytecode, deployedBytecode, immutableReferences }. src/chain/ loads these with alloy's
// `sol!`, and compares the code found on a chain with deployedBytecode, immutables masked,
// before it trusts a network found through its registry.
//
//   node contracts/build.js          write contracts/out/
//   node contracts/build.js --check  compile and fail if contracts/out/ differs
//
// Bytecode carries no metadata hash, so artifacts depend only on the sources and the
// settings below, never on the machine or the checkout path.
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.resolve(__dirname, '..');
const solc = require(path.join(root, 'tools', 'node_modules', 'solc'));
const srcDir = path.join(__dirname, 'src');
const outDir = path.join(__dirname, 'out');
const libRoot = path.join(root, 'tools', 'node_modules');

// Contracts that get an artifact (interfaces and libraries do not).
const DEPLOYABLE = ['DcnToken', 'DcnRegistry', 'DcnDeals', 'DcnJobBoard', 'CowsayClient'];

// Keep in step with contracts/foundry.toml so tests measure the shipped bytecode.
const SETTINGS = {
  optimizer: { enabled: true, runs: 200 },
  evmVersion: 'paris',
  metadata: { bytecodeHash: 'none', appendCBOR: false },
  outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object', 'evm.deployedBytecode.immutableReferences'] } },
};

function walk(dir) {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    return e.isDirectory() ? walk(p) : e.name.endsWith('.sol') ? [p] : [];
  });
}

function compile() {
  const sources = {};
  for (const file of walk(srcDir).sort()) {
    const unit = path.relative(__dirname, file).split(path.sep).join('/');
    sources[unit] = { content: fs.readFileSync(file, 'utf8') };
  }
  const findImports = (name) => {
    const file = path.join(libRoot, name);
    if (name.startsWith('@openzeppelin/') && fs.existsSync(file)) {
      return { contents: fs.readFileSync(file, 'utf8') };
    }
    return { error: `import not found: ${name} (run scripts/setup to install OpenZeppelin)` };
  };
  const input = { language: 'Solidity', sources, settings: SETTINGS };
  const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
  const errors = (output.errors || []).filter((e) => e.severity === 'error');
  for (const e of output.errors || []) process.stderr.write(e.formattedMessage + '\n');
  if (errors.length) {
    process.stderr.write(`contracts: ${errors.length} compile error(s)\n`);
    process.exit(1);
  }
  const artifacts = {};
  for (const [unit, contracts] of Object.entries(output.contracts)) {
    if (!unit.startsWith('src/')) continue;
    for (const [name, c] of Object.entries(contracts)) {
      if (!DEPLOYABLE.includes(name)) continue;
      const artifact = {
        contractName: name,
        sourceName: unit,
        compiler: { solc: solc.version(), settings: { ...SETTINGS, outputSelection: undefined } },
        abi: c.abi,
        bytecode: '0x' + c.evm.bytecode.object,
        deployedBytecode: '0x' + c.evm.deployedBytecode.object,
        // Byte ranges of deployedBytecode that the constructor fills in: [[start, length], …].
        immutableReferences: Object.values(c.evm.deployedBytecode.immutableReferences || {})
          .flat()
          .map((r) => [r.start, r.length])
          .sort((a, b) => a[0] - b[0]),
      };
      artifacts[`${name}.json`] = JSON.stringify(artifact, null, 2) + '\n';
    }
  }
  const missing = DEPLOYABLE.filter((n) => !artifacts[`${n}.json`]);
  if (missing.length) {
    process.stderr.write(`contracts: no artifact for ${missing.join(', ')}\n`);
    process.exit(1);
  }
  return artifacts;
}

const artifacts = compile();
if (process.argv.includes('--check')) {
  const stale = Object.entries(artifacts)
    .filter(([file, text]) => {
      const p = path.join(outDir, file);
      return !fs.existsSync(p) || fs.readFileSync(p, 'utf8') !== text;
    })
    .map(([file]) => file);
  if (stale.length) {
    process.stderr.write(
      `contracts/out is stale: ${stale.join(', ')} differ from a fresh compile.\n` +
        'Run `make contracts` and commit contracts/out/.\n'
    );
    process.exit(1);
  }
  process.stdout.write(`contracts/out is up to date (${Object.keys(artifacts).length} artifacts, solc ${solc.version()})\n`);
} else {
  fs.mkdirSync(outDir, { recursive: true });
  for (const [file, text] of Object.entries(artifacts)) fs.writeFileSync(path.join(outDir, file), text);
  process.stdout.write(`wrote ${Object.keys(artifacts).length} artifacts to contracts/out (solc ${solc.version()})\n`);
}

#!/usr/bin/env node
// A native-solc stand-in that serves solc-js, so that `forge build/test --offline`
// works on machines where no solc binary can be downloaded.
//
// Forge calls `solc --version` to learn the version and `solc ... --standard-json`
// with the input on stdin. Everything else is rejected loudly.
//
// Output is written with a callback and the process exits only after stdout has
// drained: exiting early cut standard-json output over 64 KiB short.
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require(path.join(__dirname, '..', 'tools', 'node_modules', 'solc'));

const args = process.argv.slice(2);

function finish(text, code) {
  process.stdout.write(text, () => process.exit(code));
}

if (args.includes('--version')) {
  // Same shape as native solc: forge parses the `Version:` line.
  const v = solc.version().replace(/\.Emscripten\.clang$/, '.Linux.g++');
  finish(`solc, the solidity compiler commandline interface\nVersion: ${v}\n`, 0);
} else if (args.includes('--standard-json')) {
  const roots = [];
  for (let i = 0; i < args.length; i++) {
    if (['--base-path', '--include-path', '--allow-paths'].includes(args[i]) && args[i + 1]) {
      for (const p of args[i + 1].split(',')) roots.push(p);
    }
  }
  roots.push(process.cwd());
  // Forge normally sends every source in the input; this resolves anything it left out.
  const findImports = (name) => {
    for (const root of roots) {
      const candidate = path.resolve(root, name);
      if (fs.existsSync(candidate)) return { contents: fs.readFileSync(candidate, 'utf8') };
    }
    return { error: `solc-shim: import not found: ${name} (searched ${roots.join(', ')})` };
  };
  const chunks = [];
  process.stdin.on('data', (c) => chunks.push(c));
  process.stdin.on('end', () => {
    const input = Buffer.concat(chunks).toString('utf8');
    finish(solc.compile(input, { import: findImports }), 0);
  });
} else {
  process.stderr.write(`solc-shim: unsupported arguments: ${args.join(' ')}\n` +
    'This shim serves solc-js for forge; use --version or --standard-json.\n');
  process.exit(2);
}

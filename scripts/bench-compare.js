#!/usr/bin/env node
// Compares the product metrics of a commit with those of the working tree, measured
// interleaved on this machine in one run: figures from different runs or machines are not
// comparable on small, noisy machines.
//
//   node scripts/bench-compare.js REF [--rounds N] [--benches e2e,solver,...]
//   make bench-compare REF=<commit> [ROUNDS=N] [BENCHES=e2e,solver]
//
// REF is checked out (detached) into target/bench-compare/ref, and built there into a
// target directory of its own, target/bench-compare/target (with this tree's
// .cargo/config.toml): each tree's `dcn` binary and
// bench executables stay where the other's build cannot overwrite them (the e2e bench
// runs the `dcn` of its own build). The first time, that target directory is seeded with a
// copy of target/release, so only what differs is compiled (dcn itself, not RocksDB);
// later runs reuse it. Then every bench executable of both builds runs `--rounds` times
// (default 3), REF and the working tree alternately, the order swapped each round. Each
// `name value unit` line is collected; the table gives the median of each side, the
// ratio working tree / REF and every value.
'use strict';

const { execFileSync, spawnSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const ROOT = path.resolve(__dirname, '..');
const WORK = path.join(ROOT, 'target', 'bench-compare');
const REF_TREE = path.join(WORK, 'ref');
const REF_TARGET = path.join(WORK, 'target');
const METRIC = /^([a-z0-9]+(?:_[a-z0-9]+)+) ([0-9.]+) (\S+)$/;

function die(msg) {
  process.stderr.write(`bench-compare: error: ${msg}\n`);
  process.exit(1);
}
function say(msg) {
  process.stderr.write(`bench-compare: ${msg}\n`);
}

function parseArgs(argv) {
  const opts = { ref: null, rounds: 3, benches: null };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--rounds') opts.rounds = Number(argv[++i]);
    else if (a === '--benches') opts.benches = argv[++i].split(',').map((s) => s.trim()).filter(Boolean);
    else if (a === '-h' || a === '--help') {
      process.stdout.write('usage: node scripts/bench-compare.js REF [--rounds N] [--benches e2e,solver,...]\n');
      process.exit(0);
    } else if (!opts.ref) opts.ref = a;
    else die(`unexpected argument \`${a}\` (see --help)`);
  }
  if (!opts.ref) die('name the commit to compare with: make bench-compare REF=<commit>');
  if (!Number.isInteger(opts.rounds) || opts.rounds < 1) die('--rounds takes a whole number of at least 1');
  return opts;
}

function git(args, cwd = ROOT) {
  return execFileSync('git', args, { cwd, encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
}

/// Checks REF out into target/bench-compare/ref (a detached worktree of this repository).
function checkoutRef(sha) {
  const registered = git(['worktree', 'list', '--porcelain'])
    .split('\n')
    .some((l) => l === `worktree ${REF_TREE}`);
  if (!registered) {
    fs.rmSync(REF_TREE, { recursive: true, force: true });
    git(['worktree', 'prune']);
    git(['worktree', 'add', '--force', '--detach', REF_TREE, sha]);
  } else {
    git(['checkout', '--force', '--detach', sha], REF_TREE);
    git(['clean', '-fdq'], REF_TREE);
  }
  // The benches find anvil in their own tree's tools/ (scripts/setup installs it here).
  const link = path.join(REF_TREE, 'tools', 'node_modules');
  if (!fs.existsSync(link)) fs.symlinkSync(path.join(ROOT, 'tools', 'node_modules'), link);
  // Built with this tree's cargo configuration (the C++ compiler of RocksDB, for one): a
  // commit from before it would otherwise rebuild RocksDB with another compiler, for 15
  // minutes, and measure that compiler too.
  const config = path.join(ROOT, '.cargo', 'config.toml');
  if (fs.existsSync(config)) {
    fs.mkdirSync(path.join(REF_TREE, '.cargo'), { recursive: true });
    fs.copyFileSync(config, path.join(REF_TREE, '.cargo', 'config.toml'));
  }
}

/// Seeds REF's target directory with this tree's release build, once: the dependencies'
/// artifacts are the same files, so cargo builds only what differs.
function seedTarget() {
  const from = path.join(ROOT, 'target', 'release');
  const to = path.join(REF_TARGET, 'release');
  if (fs.existsSync(to) || !fs.existsSync(from)) return;
  say(`seeding ${path.relative(ROOT, REF_TARGET)} with a copy of target/release (once)`);
  fs.mkdirSync(REF_TARGET, { recursive: true });
  const r = spawnSync('cp', ['-a', '--reflink=auto', from, to], { stdio: 'inherit' });
  if (r.status !== 0) die(`copying target/release into ${to} failed`);
}

/// Builds the benches of the tree at `cwd` into `targetDir`; returns {name: executable}.
function buildBenches(cwd, targetDir, label) {
  say(`building the benches of ${label} (cargo bench --no-run)`);
  const env = { ...process.env };
  if (targetDir) env.CARGO_TARGET_DIR = targetDir;
  else delete env.CARGO_TARGET_DIR;
  const r = spawnSync('cargo', ['bench', '--no-run', '--locked', '--message-format=json-render-diagnostics'], {
    cwd,
    env,
    encoding: 'utf8',
    maxBuffer: 1 << 30,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  if (r.status !== 0) die(`building the benches of ${label} failed (see above)`);
  const benches = {};
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const m = JSON.parse(line);
    if (m.reason === 'compiler-artifact' && m.executable && m.target.kind.includes('bench')) {
      benches[m.target.name] = m.executable;
    }
  }
  return benches;
}

/// Runs one bench executable as `cargo bench` would; returns its metric lines.
function runBench(exe, cwd, name, label) {
  const t = Date.now();
  const r = spawnSync(exe, ['--bench'], { cwd, encoding: 'utf8', maxBuffer: 1 << 28, stdio: ['ignore', 'pipe', 'pipe'] });
  const secs = ((Date.now() - t) / 1000).toFixed(0);
  if (r.status !== 0) {
    say(`${name} of ${label} failed (exit ${r.status}) after ${secs} s; its stderr:\n${(r.stderr || '').slice(-4000)}`);
    return [];
  }
  say(`${name} of ${label}: ${secs} s`);
  const out = [];
  for (const line of r.stdout.split('\n')) {
    const m = METRIC.exec(line.trim());
    if (m) out.push({ name: m[1], value: Number(m[2]), unit: m[3] });
  }
  return out;
}

function median(v) {
  const s = [...v].sort((a, b) => a - b);
  const n = s.length;
  return n % 2 ? s[(n - 1) / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

function fmt(x) {
  if (x === undefined) return '—';
  if (Math.abs(x) >= 1000) return x.toFixed(0);
  if (Math.abs(x) >= 10) return x.toFixed(1);
  return x.toFixed(3);
}

function main() {
  const opts = parseArgs(process.argv.slice(2));
  let sha;
  try {
    sha = git(['rev-parse', '--verify', `${opts.ref}^{commit}`]);
  } catch {
    die(`\`${opts.ref}\` is not a commit of this repository`);
  }
  const short = sha.slice(0, 7);
  const dirty = git(['status', '--porcelain', '--untracked-files=no']) !== '';
  const head = git(['rev-parse', '--short', 'HEAD']) + (dirty ? '+changes' : '');
  checkoutRef(sha);
  seedTarget();
  const refBenches = buildBenches(REF_TREE, REF_TARGET, short);
  const newBenches = buildBenches(ROOT, null, 'the working tree');
  let names = Object.keys(newBenches).filter((n) => refBenches[n]).sort();
  if (opts.benches) {
    const unknown = opts.benches.filter((b) => !names.includes(b));
    if (unknown.length) die(`no bench named ${unknown.join(', ')} in both trees (there are: ${names.join(', ')})`);
    names = opts.benches;
  }
  const only = Object.keys(newBenches).filter((n) => !refBenches[n]);
  if (only.length) say(`only in the working tree, not compared: ${only.join(', ')}`);

  // values[metric] = { ref: [], new: [], unit }
  const values = {};
  const order = [];
  const record = (side, lines) => {
    for (const l of lines) {
      if (!values[l.name]) {
        values[l.name] = { ref: [], new: [], unit: l.unit };
        order.push(l.name);
      }
      values[l.name][side].push(l.value);
    }
  };
  for (let round = 0; round < opts.rounds; round++) {
    say(`round ${round + 1} of ${opts.rounds}`);
    for (const name of names) {
      const sides = [
        ['ref', refBenches[name], REF_TREE, short],
        ['new', newBenches[name], ROOT, head],
      ];
      if (round % 2 === 1) sides.reverse();
      for (const [side, exe, cwd, label] of sides) record(side, runBench(exe, cwd, name, label));
    }
  }

  const rows = [['metric', short, head, 'ratio', 'unit', `${short} values`, `${head} values`]];
  for (const m of order) {
    const v = values[m];
    const r = v.ref.length ? median(v.ref) : undefined;
    const n = v.new.length ? median(v.new) : undefined;
    const ratio = r !== undefined && n !== undefined && r !== 0 ? (n / r).toFixed(2) : '—';
    rows.push([m, fmt(r), fmt(n), ratio, v.unit, v.ref.map(fmt).join(' / '), v.new.map(fmt).join(' / ')]);
  }
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  process.stdout.write(`bench-compare: medians of ${opts.rounds} interleaved runs on this machine; ratio = ${head} / ${short}\n`);
  for (const r of rows) process.stdout.write(r.map((c, i) => c.padEnd(widths[i])).join('  ').trimEnd() + '\n');
}

main();

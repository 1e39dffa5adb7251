// The `mcpgate audit` score table: the production checklist run against mcpgate (hardened and in
// its default loopback config), @modelcontextprotocol/server-everything in its own Streamable HTTP
// mode, mcp-proxy and supergateway (versions pinned in bench/package.json; the last two front the
// same stdio test server), each check's result side by side.
//
//   node bench/audit.mjs [--build DIR] [--out FILE.md]     (scripts/audit-table.sh wraps it)
//
// Loopback only; every target is started here and stopped at the end. The hardened mcpgate uses
// OAuth against the e2e test identity provider (test/e2e/lib/idp.mjs), a lockfile, lazy tools and
// rate limits, and is audited with two principals' tokens and a token for another audience.
// Prints a Markdown table (pass/warn/fail/skip per check and target) and the summary per target.
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name, dflt) => (args.includes(name) ? args[args.indexOf(name) + 1] : dflt);
const BUILD = path.resolve(opt('--build', path.join(ROOT, 'build')));
const OUT = opt('--out', null);
const MG = path.join(BUILD, 'mcpgate');
const TS = path.join(BUILD, 'mcpgate-testserver');
const BIN = path.join(ROOT, 'bench/node_modules/.bin');
const EVERYTHING = path.join(ROOT, 'bench/node_modules/@modelcontextprotocol/server-everything/dist/index.js');
const { startIdp } = await import(path.join(ROOT, 'test/e2e/lib/idp.mjs'));

const freePort = () =>
  new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = s.address().port;
      s.close(() => resolve(p));
    });
  });

async function waitPort(port, ms = 20000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const ok = await new Promise((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => (c.end(), resolve(true)));
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on ${port} after ${ms} ms`);
}

function start(cmd, argv, env = {}) {
  const p = spawn(cmd, argv, { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, ...env } });
  let err = '';
  p.stderr.on('data', (c) => (err = (err + c).slice(-4000)));
  p.errText = () => err;
  return p;
}

function audit(url, extra = []) {
  return new Promise((resolve, reject) => {
    const p = spawn(MG, ['audit', url, '--json', '--fail-on', 'never', ...extra], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.on('data', (c) => (err += c));
    p.on('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`audit ${url}: exit ${code}: ${err}`))));
  });
}

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-audit-bench-'));
const procs = [];
const results = {}; // target -> report
try {
  // mcpgate hardened.
  {
    const port = await freePort();
    const resource = `http://127.0.0.1:${port}/mcp`;
    const idp = await startIdp({ audience: resource });
    procs.push({ kill: () => idp.stop() });
    await idp.addKey('RS256');
    const cfg = path.join(tmp, 'hardened.json');
    fs.writeFileSync(cfg, JSON.stringify({
      mcpServers: { test: { command: TS } },
      gateway: {
        auth: { oauth: { issuer: idp.issuer, audience: resource, required_scopes: ['mcp'] }, resource },
        tools: { mode: 'lazy' },
        pinning: 'block',
        rateLimits: { methods: ['tools/list', 'tools/call'], principal: { requests: 30, perSeconds: 60, burst: 30 } },
      },
    }));
    const lock = spawnSync(MG, ['lock', '--config', cfg], { encoding: 'utf8' });
    if (lock.status !== 0) throw new Error(`mcpgate lock: ${lock.stderr}`);
    const p = start(MG, ['serve', '--config', cfg, '--listen', `127.0.0.1:${port}`, '--log-level', 'error']);
    procs.push(p);
    await waitPort(port);
    const tok = await idp.mint({ claims: { sub: 'alice', scope: 'mcp' }, expiresIn: '30m' });
    const tok2 = await idp.mint({ claims: { sub: 'bob', scope: 'mcp' }, expiresIn: '30m' });
    const other = await idp.mint({ claims: { sub: 'alice', scope: 'mcp', aud: 'https://other.example/mcp' }, expiresIn: '30m' });
    fs.writeFileSync(path.join(tmp, 'tok'), tok);
    results['mcpgate (hardened)'] = await audit(resource, ['--token-file', path.join(tmp, 'tok'), '--token2', tok2, '--token-other-audience', other]);
  }
  // mcpgate default (embedded config: the bundled test server, loopback, no auth).
  {
    const port = await freePort();
    procs.push(start(MG, ['serve', '--listen', `127.0.0.1:${port}`, '--log-level', 'error']));
    await waitPort(port);
    results['mcpgate (default)'] = await audit(`http://127.0.0.1:${port}/mcp`);
  }
  // server-everything, its own Streamable HTTP mode.
  {
    const port = await freePort();
    procs.push(start(process.execPath, [EVERYTHING, 'streamableHttp'], { PORT: String(port) }));
    await waitPort(port);
    results['server-everything (streamableHttp)'] = await audit(`http://127.0.0.1:${port}/mcp`);
  }
  // mcp-proxy and supergateway in front of the same stdio test server.
  {
    const port = await freePort();
    procs.push(start(path.join(BIN, 'mcp-proxy'), ['--port', String(port), '--host', '127.0.0.1', '--server', 'stream', '--', TS]));
    await waitPort(port);
    results['mcp-proxy'] = await audit(`http://127.0.0.1:${port}/mcp`);
  }
  {
    const port = await freePort();
    procs.push(start(path.join(BIN, 'supergateway'), ['--stdio', TS, '--outputTransport', 'streamableHttp', '--stateful', '--port', String(port), '--logLevel', 'none']));
    await waitPort(port);
    results.supergateway = await audit(`http://127.0.0.1:${port}/mcp`);
  }
} finally {
  for (const p of procs) {
    try {
      p.kill();
    } catch {}
  }
  fs.rmSync(tmp, { recursive: true, force: true });
}

const pkg = (name) => JSON.parse(fs.readFileSync(path.join(ROOT, 'bench/node_modules', name, 'package.json'), 'utf8')).version;
const names = Object.keys(results);
const ids = results[names[0]].checks.map((c) => c.id);
const mark = { pass: 'pass', warn: '**warn**', fail: '**FAIL**', skip: 'skip' };
let md = `| check | ${names.join(' | ')} |\n|---|${names.map(() => '---').join('|')}|\n`;
for (const id of ids) md += `| \`${id}\` | ${names.map((n) => mark[results[n].checks.find((c) => c.id === id)?.status] || '-').join(' | ')} |\n`;
md += `| **pass / warn / fail / skip** | ${names.map((n) => { const s = results[n].summary; return `${s.pass} / ${s.warn} / ${s.fail} / ${s.skip}`; }).join(' | ')} |\n`;
md += `\nmcpgate ${spawnSync(MG, ['--version'], { encoding: 'utf8' }).stdout.trim().split(' ')[1]}; @modelcontextprotocol/server-everything ${pkg('@modelcontextprotocol/server-everything')}; mcp-proxy ${pkg('mcp-proxy')}; supergateway ${pkg('supergateway')}; node ${process.version}. Produced by \`scripts/audit-table.sh\`.\n`;
let ev = '\n<details><summary>Evidence of every warn and fail</summary>\n\n';
for (const n of names)
  for (const c of results[n].checks.filter((x) => x.status === 'warn' || x.status === 'fail'))
    ev += `- ${n}, \`${c.id}\` ${c.status}: ${c.evidence.replace(/\|/g, '\\|')}\n`;
ev += '\n</details>\n';
process.stdout.write(md + ev);
if (OUT) fs.writeFileSync(OUT, md + ev);
process.exit(0);

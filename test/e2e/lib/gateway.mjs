// Starting and stopping build/mcpgate for a test, plus config files, free ports and /proc helpers.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const E2E_DIR = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REPO_DIR = path.resolve(E2E_DIR, '../..');

function fromEnv(name, fallback) {
  const v = process.env[name];
  return v ? path.resolve(v) : path.resolve(E2E_DIR, fallback);
}

export const MG_BINARY = fromEnv('MG_BINARY', '../../build/mcpgate');
export const MG_TESTSERVER = fromEnv('MG_TESTSERVER', '../../build/mcpgate-testserver');
export const EVERYTHING_JS = path.join(
  E2E_DIR,
  'node_modules/@modelcontextprotocol/server-everything/dist/index.js',
);

const SCALE = Number(process.env.MG_E2E_TIMEOUT_SCALE || 1) || 1;

// A port that was free on 127.0.0.1 a moment ago.
export function freePort() {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address();
      srv.close(() => resolve(port));
    });
  });
}

// Writes `config` (object or JSON text) to a fresh temp dir; returns {dir, file, remove()}.
export function writeConfig(config) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-e2e-'));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config, null, 2));
  return { dir, file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

// Config entry for one build/mcpgate-testserver child.
export function testserver(extraArgs = [], more = {}) {
  return { command: MG_TESTSERVER, args: extraArgs, ...more };
}

// Config entry for @modelcontextprotocol/server-everything over stdio, run by this Node.
export function everythingServer(more = {}) {
  return { command: process.execPath, args: [EVERYTHING_JS, 'stdio'], ...more };
}

function httpGet(url, timeout = 1000) {
  return new Promise((resolve, reject) => {
    const req = http.get(url, { agent: false, timeout }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

// --- /proc helpers -------------------------------------------------------------------------------

// [{pid, ppid, pgid, state, comm}] for every process visible in /proc.
export function listProcesses() {
  const out = [];
  for (const name of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let stat;
    try {
      stat = fs.readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const close = stat.lastIndexOf(')');
    const comm = stat.slice(stat.indexOf('(') + 1, close);
    const f = stat.slice(close + 2).split(' ');
    out.push({ pid: Number(name), state: f[0], ppid: Number(f[1]), pgid: Number(f[2]), comm });
  }
  return out;
}

// Every live (non-zombie) descendant of pid, found through the parent links.
export function descendants(pid, procs = listProcesses()) {
  const found = [];
  const frontier = [pid];
  while (frontier.length) {
    const p = frontier.pop();
    for (const q of procs) {
      if (q.ppid === p && !found.some((x) => x.pid === q.pid)) {
        found.push(q);
        frontier.push(q.pid);
      }
    }
  }
  return found.filter((q) => q.state !== 'Z');
}

// Live processes whose process group is one of pgids.
export function processesInGroups(pgids, procs = listProcesses()) {
  return procs.filter((q) => pgids.includes(q.pgid) && q.state !== 'Z');
}

// --- the gateway --------------------------------------------------------------------------------

/*
 * Starts `mcpgate serve --config FILE --listen 127.0.0.1:PORT` and waits for /healthz == 200.
 * opts: config (object; written to a temp file), port, env (added to process.env), args (extra CLI
 *       args), binary, waitHealthy (default true), startTimeout (ms), onStart(gw).
 * Returns gw: {pid, port, base, url, proc, stderrLines(), stderrText(), logs() (parsed JSON lines),
 *              waitLog(pred, {timeout, what}) (the first log line matching pred, waited for),
 *              stop({timeout, signal}), kill(), waitExit(ms), exited, exitStatus(),
 *              children() (live descendants), readyz(), healthz(), reapLeftovers()}.
 */
export async function startGateway(opts = {}) {
  const binary = opts.binary || MG_BINARY;
  if (!fs.existsSync(binary)) {
    const e = new Error(`gateway binary not found: ${binary} (build it, or set MG_BINARY)`);
    e.noStack = true;
    throw e;
  }
  const port = opts.port || (await freePort());
  const cfg = opts.config ? writeConfig(opts.config) : null;
  const args = ['serve'];
  if (cfg) args.push('--config', cfg.file);
  args.push('--listen', `127.0.0.1:${port}`, ...(opts.args || []));

  const proc = spawn(binary, args, {
    cwd: opts.cwd || E2E_DIR,
    env: { ...process.env, ...(opts.env || {}) },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines = [];
  let partial = '';
  proc.stderr.setEncoding('utf8');
  proc.stderr.on('data', (chunk) => {
    const parts = (partial + chunk).split('\n');
    partial = parts.pop();
    lines.push(...parts);
  });
  const stdoutLines = [];
  proc.stdout.setEncoding('utf8');
  proc.stdout.on('data', (c) => stdoutLines.push(...c.split('\n').filter(Boolean)));

  let exitInfo = null;
  const exited = new Promise((resolve) => {
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal };
      resolve(exitInfo);
    });
    proc.on('error', (err) => {
      lines.push(`[harness] spawn error: ${err.message}`);
      exitInfo = { code: -1, signal: null, error: err };
      resolve(exitInfo);
    });
  });
  // Remember every descendant we ever saw, so leftovers can be found even after the gateway died.
  const seen = new Map();
  const remember = () => {
    if (exitInfo) return;
    for (const q of descendants(proc.pid)) seen.set(q.pid, q);
  };
  const watcher = setInterval(remember, 200);
  watcher.unref();

  const base = `http://127.0.0.1:${port}`;
  const gw = {
    pid: proc.pid,
    port,
    base,
    url: `${base}/mcp`,
    proc,
    config: cfg,
    get exited() {
      return exitInfo !== null;
    },
    stderrLines: () => (partial ? [...lines, partial] : lines.slice()),
    stderrText: () => gw.stderrLines().join('\n'),
    stdoutLines: () => stdoutLines.slice(),
    logs() {
      const out = [];
      for (const l of gw.stderrLines()) {
        try {
          out.push(JSON.parse(l));
        } catch {
          /* not a JSON line */
        }
      }
      return out;
    },
    // Log lines arrive on the gateway's stderr pipe, answers on a socket: nothing orders the two
    // (and the gateway writes its info lines at the end of a loop turn, after the responses), so a
    // line is awaited, never read right after the answer that follows it. Timeout scaled.
    async waitLog(pred, { timeout = 5000, what = 'a matching line' } = {}) {
      const end = Date.now() + timeout * SCALE;
      for (;;) {
        const line = gw.logs().find(pred);
        if (line) return line;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what} in the gateway log`);
        await new Promise((r) => setTimeout(r, 20));
      }
    },
    exitStatus: () => (exitInfo ? (exitInfo.signal ? `signal ${exitInfo.signal}` : `status ${exitInfo.code}`) : 'running'),
    waitExit: (ms) =>
      Promise.race([exited, new Promise((r) => setTimeout(() => r(null), ms))]),
    children: () => (exitInfo ? [] : descendants(proc.pid)),
    seenDescendants: () => [...seen.values()],
    healthz: () => httpGet(`${base}/healthz`),
    async readyz() {
      const r = await httpGet(`${base}/readyz`, 2000);
      let json = null;
      try {
        json = JSON.parse(r.body);
      } catch {
        /* leave null */
      }
      return { ...r, json };
    },
    // SIGTERM, then SIGKILL after `timeout` ms. Resolves {code, signal, killed}.
    async stop({ timeout = 10000 } = {}) {
      remember();
      if (!exitInfo) proc.kill('SIGTERM');
      let r = await gw.waitExit(timeout);
      if (!r) {
        lines.push(`[harness] gateway did not exit within ${timeout} ms of SIGTERM; sending SIGKILL`);
        proc.kill('SIGKILL');
        r = await exited;
        clearInterval(watcher);
        cfg?.remove();
        throw new Error(`gateway did not exit within ${timeout} ms of SIGTERM`);
      }
      clearInterval(watcher);
      cfg?.remove();
      return r;
    },
    kill() {
      if (!exitInfo) proc.kill('SIGKILL');
    },
    // SIGKILLs whatever descendants of the gateway are still alive (after a failed test).
    reapLeftovers() {
      const procs = listProcesses();
      for (const q of gw.seenDescendants()) {
        const now = procs.find((p) => p.pid === q.pid && p.comm === q.comm && p.state !== 'Z');
        if (now) {
          try {
            process.kill(q.pid, 'SIGKILL');
          } catch {
            /* gone */
          }
        }
      }
    },
  };
  opts.onStart?.(gw);

  if (opts.waitHealthy !== false) {
    const deadline = Date.now() + (opts.startTimeout || 10000) * SCALE;
    for (;;) {
      if (exitInfo) {
        throw new Error(`gateway exited during startup (${gw.exitStatus()})`);
      }
      try {
        const r = await gw.healthz();
        if (r.status === 200) break;
      } catch {
        /* not listening yet */
      }
      if (Date.now() > deadline) throw new Error(`gateway /healthz not 200 within ${opts.startTimeout || 10000} ms`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }
  remember();
  return gw;
}

// Polls /readyz until pred(json) is true; returns the JSON.
export async function waitReadyz(gw, pred, timeout = 10000) {
  const end = Date.now() + timeout * SCALE;
  let last;
  for (;;) {
    try {
      last = await gw.readyz();
      if (last.json && pred(last.json, last)) return last.json;
    } catch (e) {
      last = { error: e.message };
    }
    if (Date.now() > end) {
      throw new Error(`/readyz never matched within ${timeout} ms; last: ${JSON.stringify(last?.json ?? last)}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

// Infrastructure for the scale-out tests: redis-server, redis-sentinel (redis-server --sentinel)
// and nginx, each started on free loopback ports in a temp directory and stopped by the test
// (t.defer). Also a tiny RESP client for checks, and N gateway replicas sharing one Redis.
//
//   const redis = await startRedis(t, {appendonly: true});   // {port, url, stop(), start(), kill()}
//   const gws = await startReplicas(t, 3, {redisUrl: redis.url, config});
//   const lb = await startNginx(t, gws.map((g) => g.port));  // {port, url, base}
//
// Binaries come from PATH (and /usr/sbin for nginx); scripts/install-deps.sh installs them. A test
// calls requireBinaries(t, ...) first: it skips with a clear message when one is missing.
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REPO_DIR, freePort } from './gateway.mjs';
import { sleep } from './harness.mjs';

const SEARCH = [...(process.env.PATH || '').split(':'), '/usr/sbin', '/usr/local/sbin', '/sbin'];

export function which(name) {
  for (const dir of SEARCH) {
    if (!dir) continue;
    const p = path.join(dir, name);
    try {
      fs.accessSync(p, fs.constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return null;
}

export function requireBinaries(t, ...names) {
  const missing = names.filter((n) => !which(n));
  if (missing.length) {
    t.skip(`${missing.join(', ')} not installed (scripts/install-deps.sh installs redis-server and nginx-light)`);
  }
}

function tmpdir(prefix) {
  return fs.mkdtempSync(path.join(os.tmpdir(), prefix));
}

// ---- RESP ----------------------------------------------------------------------------------------

function encode(args) {
  let s = `*${args.length}\r\n`;
  for (const a of args) {
    const b = Buffer.from(String(a));
    s += `$${b.length}\r\n${b.toString('binary')}\r\n`;
  }
  return Buffer.from(s, 'binary');
}

// Parses one RESP value from buf at i: [value, next] or null when incomplete.
function parse(buf, i = 0) {
  if (i >= buf.length) return null;
  const t = String.fromCharCode(buf[i]);
  const eol = buf.indexOf('\r\n', i);
  if (eol < 0) return null;
  const line = buf.toString('utf8', i + 1, eol);
  if (t === '+') return [line, eol + 2];
  if (t === '-') return [new Error(line), eol + 2];
  if (t === ':') return [Number(line), eol + 2];
  if (t === '$') {
    const n = Number(line);
    if (n < 0) return [null, eol + 2];
    if (buf.length < eol + 2 + n + 2) return null;
    return [buf.toString('utf8', eol + 2, eol + 2 + n), eol + 2 + n + 2];
  }
  if (t === '*') {
    const n = Number(line);
    if (n < 0) return [null, eol + 2];
    const out = [];
    let j = eol + 2;
    for (let k = 0; k < n; k++) {
      const r = parse(buf, j);
      if (!r) return null;
      out.push(r[0]);
      j = r[1];
    }
    return [out, j];
  }
  throw new Error(`bad RESP type ${t}`);
}

// One command on a fresh connection; resolves the reply (Error objects for error replies).
export function redisCmd(port, args, { password, timeout = 2000 } = {}) {
  return new Promise((resolve, reject) => {
    const sock = net.connect(port, '127.0.0.1');
    let buf = Buffer.alloc(0);
    const want = password ? 2 : 1;
    const replies = [];
    const timer = setTimeout(() => {
      sock.destroy();
      reject(new Error(`redis ${args[0]} on ${port}: timeout`));
    }, timeout);
    sock.on('connect', () => {
      if (password) sock.write(encode(['AUTH', password]));
      sock.write(encode(args));
    });
    sock.on('data', (d) => {
      buf = Buffer.concat([buf, d]);
      for (;;) {
        const r = parse(buf);
        if (!r) break;
        replies.push(r[0]);
        buf = buf.subarray(r[1]);
      }
      if (replies.length >= want) {
        clearTimeout(timer);
        sock.end();
        resolve(replies[want - 1]);
      }
    });
    sock.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
  });
}

async function waitPong(port, password, ms = 5000) {
  const end = Date.now() + ms;
  for (;;) {
    try {
      const r = await redisCmd(port, ['PING'], { password, timeout: 500 });
      if (r === 'PONG') return;
    } catch {
      /* not up yet */
    }
    if (Date.now() > end) throw new Error(`redis on port ${port} did not answer PING within ${ms} ms`);
    await sleep(20);
  }
}

// ---- processes -----------------------------------------------------------------------------------

function launch(bin, args, opts = {}) {
  const proc = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: opts.cwd });
  const lines = [];
  const keep = (c) => {
    lines.push(...String(c).split('\n').filter(Boolean));
    if (lines.length > 400) lines.splice(0, lines.length - 400);
  };
  proc.stdout.on('data', keep);
  proc.stderr.on('data', keep);
  const exited = new Promise((r) => proc.on('exit', (code, signal) => r({ code, signal })));
  return { proc, lines, exited };
}

async function terminate(p, signal = 'SIGTERM', ms = 5000) {
  if (!p || p.proc.exitCode !== null || p.proc.signalCode !== null) return;
  p.proc.kill(signal);
  const r = await Promise.race([p.exited, sleep(ms).then(() => null)]);
  if (!r) {
    p.proc.kill('SIGKILL');
    await p.exited;
  }
}

/*
 * redis-server on a free port. opts: password, appendonly (persist across restarts: the data dir
 * is kept between stop() and start()), replicaof (port of a master), port.
 * Returns {port, url(db), dir, start(), stop(), kill(), logs()}.
 */
export async function startRedis(t, opts = {}) {
  const bin = which('redis-server');
  const port = opts.port || (await freePort());
  const dir = tmpdir('mcpgate-redis-');
  let p = null;
  const r = {
    port,
    dir,
    password: opts.password,
    url: (db = 0) => `redis://${opts.password ? `:${encodeURIComponent(opts.password)}@` : ''}127.0.0.1:${port}/${db}`,
    logs: () => (p ? p.lines.slice() : []),
    async start() {
      const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '',
        '--appendonly', opts.appendonly ? 'yes' : 'no', '--appendfsync', 'always', '--protected-mode', 'no'];
      if (opts.password) args.push('--requirepass', opts.password, '--masterauth', opts.password);
      if (opts.replicaof) args.push('--replicaof', '127.0.0.1', String(opts.replicaof));
      p = launch(bin, args);
      await waitPong(port, opts.password);
      return r;
    },
    async stop() {
      await terminate(p);
    },
    async kill() {
      await terminate(p, 'SIGKILL');
    },
    get pid() {
      return p?.proc.pid;
    },
  };
  t.defer(async () => {
    await terminate(p, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return r.start();
}

/* redis-server --sentinel watching the master on masterPort (name `mymaster`, quorum 1). */
export async function startSentinel(t, { masterPort, name = 'mymaster', password, downAfterMs = 1000 } = {}) {
  const bin = which('redis-server');
  const port = await freePort();
  const dir = tmpdir('mcpgate-sentinel-');
  const conf = path.join(dir, 'sentinel.conf');
  fs.writeFileSync(
    conf,
    [
      `port ${port}`,
      'bind 127.0.0.1',
      `dir ${dir}`,
      `sentinel monitor ${name} 127.0.0.1 ${masterPort} 1`,
      `sentinel down-after-milliseconds ${name} ${downAfterMs}`,
      `sentinel failover-timeout ${name} 5000`,
      `sentinel parallel-syncs ${name} 1`,
      ...(password ? [`sentinel auth-pass ${name} ${password}`] : []),
      '',
    ].join('\n'),
  );
  const p = launch(bin, [conf, '--sentinel']);
  await waitPong(port);
  t.defer(async () => {
    await terminate(p, 'SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return { port, logs: () => p.lines.slice() };
}

/*
 * deploy/nginx.conf itself (round robin, no affinity, SSE unbuffered), with the upstream servers,
 * the listen address and the writable paths substituted: what is tested is what is shipped.
 */
export function nginxConf({ port, upstreams, dir }) {
  const src = fs.readFileSync(path.join(REPO_DIR, 'deploy/nginx.conf'), 'utf8');
  const servers = upstreams.map((p) => `        server 127.0.0.1:${p} max_fails=1 fail_timeout=2s;`).join('\n');
  let out = src
    .replace(/^\s*server gateway-\d+:8080[^\n]*\n/gm, '')
    .replace(/(upstream mcpgate \{\n)/, `$1${servers}\n`)
    .replace(/^worker_processes[^\n]*/m, 'worker_processes 1;')
    .replace(/^pid [^\n]*/m, `pid ${dir}/nginx.pid;`)
    .replace(/^error_log [^\n]*/m, `error_log ${dir}/error.log warn;`)
    .replace(/\/tmp\/nginx-/g, `${dir}/`)
    .replace(/listen 8080;/, `listen 127.0.0.1:${port};`);
  if (out.includes('gateway-')) throw new Error('deploy/nginx.conf: could not substitute the upstream servers');
  return out;
}

export async function startNginx(t, upstreams) {
  const bin = which('nginx');
  const port = await freePort();
  const dir = tmpdir('mcpgate-nginx-');
  fs.writeFileSync(path.join(dir, 'nginx.conf'), nginxConf({ port, upstreams, dir }));
  const p = launch(bin, ['-p', dir, '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;']);
  const end = Date.now() + 5000;
  for (;;) {
    const ok = await new Promise((res) => {
      const s = net.connect(port, '127.0.0.1', () => {
        s.end();
        res(true);
      });
      s.on('error', () => res(false));
    });
    if (ok) break;
    if (p.proc.exitCode !== null) throw new Error(`nginx exited: ${p.lines.join(' | ')}`);
    if (Date.now() > end) throw new Error('nginx did not listen within 5 s');
    await sleep(20);
  }
  t.defer(async () => {
    await terminate(p, 'SIGQUIT', 3000);
    fs.rmSync(dir, { recursive: true, force: true });
  });
  return {
    port,
    base: `http://127.0.0.1:${port}`,
    url: `http://127.0.0.1:${port}/mcp`,
    errors: () => {
      try {
        return fs.readFileSync(path.join(dir, 'error.log'), 'utf8');
      } catch {
        return '';
      }
    },
  };
}

/* N gateways sharing redisUrl: config is the usual object; gateway.sessions.store/secret are set. */
export async function startReplicas(t, n, { redisUrl, config, env = {}, secret = 'e2e-cluster-secret-0123456789' }) {
  const out = [];
  for (let i = 0; i < n; i++) {
    const cfg = JSON.parse(JSON.stringify(config));
    cfg.gateway = cfg.gateway || {};
    cfg.gateway.sessions = { store: redisUrl, secret, ...(cfg.gateway.sessions || {}) };
    out.push(await t.gateway({ config: cfg, env }));
  }
  return out;
}

// Polls every gateway's /readyz until each reports store.ready === want.
export async function waitStore(gws, want, timeout = 10000) {
  const end = Date.now() + timeout;
  for (;;) {
    const states = await Promise.all(
      gws.map((g) => g.readyz().then((r) => r.json?.store?.ready === want).catch(() => false)),
    );
    if (states.every(Boolean)) return;
    if (Date.now() > end) throw new Error(`store.ready never became ${want} on every replica within ${timeout} ms`);
    await sleep(50);
  }
}

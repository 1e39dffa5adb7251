// A real PostgreSQL for the scale-out tests: initdb in a temp dir, postgres on a free loopback port
// (unix socket in the same dir), stopped by the test (t.defer). Debian puts the server binaries in
// /usr/lib/postgresql/<version>/bin: found with `pg_config --bindir`, else that glob.
//
//   const pg = await startPostgres(t);   // {port, url(db), sql(query, db), stop(), start(), kill()}
//   const standby = await startPostgres(t, { standbyOf: pg });   // streaming replica; promote()
//
// initdb and postgres refuse to run as root: as root both run as the unprivileged user "nobody"
// (its uid/gid; the data dir is chowned to it). initdb takes seconds, so one template cluster is
// made per test process and copied for each server. fsync is off (-F: only an OS crash would lose
// data) but commits stay synchronous: a SIGKILLed server keeps every committed session. A test calls requirePostgres(t) first: it skips
// with a clear message when the binaries are missing (scripts/install-deps.sh installs postgresql).
import { execFile, execFileSync, spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freePort } from './gateway.mjs';
import { sleep } from './harness.mjs';

let BINDIR;
function bindir() {
  if (BINDIR !== undefined) return BINDIR;
  BINDIR = null;
  const candidates = [];
  try {
    candidates.push(execFileSync('pg_config', ['--bindir'], { encoding: 'utf8' }).trim());
  } catch {
    /* libpq-dev's pg_config absent */
  }
  try {
    const base = '/usr/lib/postgresql';
    for (const v of fs.readdirSync(base).sort((a, b) => Number(b) - Number(a))) candidates.push(path.join(base, v, 'bin'));
  } catch {
    /* not Debian's layout */
  }
  for (const d of candidates) {
    if (fs.existsSync(path.join(d, 'initdb')) && fs.existsSync(path.join(d, 'postgres'))) {
      BINDIR = d;
      break;
    }
  }
  return BINDIR;
}

export function requirePostgres(t) {
  if (!bindir()) t.skip('PostgreSQL server binaries (initdb, postgres) not installed (scripts/install-deps.sh installs postgresql)');
}

// uid/gid to run the server as: ourselves, or "nobody" when root.
function runAs() {
  if (process.getuid?.() !== 0) return {};
  const uid = Number(execFileSync('id', ['-u', 'nobody'], { encoding: 'utf8' }).trim());
  const gid = Number(execFileSync('id', ['-g', 'nobody'], { encoding: 'utf8' }).trim());
  return { uid, gid };
}

function chownTree(dir, { uid, gid }) {
  if (uid === undefined) return;
  execFileSync('chown', ['-R', `${uid}:${gid}`, dir]);
}

let template = null;
function makeTemplate() {
  if (!template) {
    template = (async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-pgtemplate-'));
      const ids = runAs();
      chownTree(dir, ids);
      const data = path.join(dir, 'data');
      await new Promise((resolve, reject) =>
        execFile(path.join(bindir(), 'initdb'), ['-D', data, '-A', 'trust', '-U', 'mcpgate', '-E', 'UTF8', '--no-sync'], { ...ids }, (e, _o, err) =>
          e ? reject(new Error(`initdb failed: ${err}`)) : resolve(),
        ),
      );
      process.on('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
      return data;
    })();
  }
  return template;
}

/* One query through psql (-At: unaligned, tuples only); resolves the output, trimmed. */
export function psql(port, query, db = 'postgres') {
  return new Promise((resolve, reject) =>
    execFile(
      path.join(bindir(), 'psql'),
      ['-h', '127.0.0.1', '-p', String(port), '-U', 'mcpgate', '-d', db, '-At', '-v', 'ON_ERROR_STOP=1', '-c', query],
      { timeout: 10000 },
      (e, out, err) => (e ? reject(new Error(`psql: ${err || e.message}`)) : resolve(out.trim())),
    ),
  );
}

/*
 * postgres on a free port with a fresh copy of the template cluster and a database "mcpgate".
 * Returns {port, url(db), sql(query, db), start(), stop() (fast shutdown), kill() (SIGKILL: crash
 * recovery at the next start), logs()}.
 */
export async function startPostgres(t, { standbyOf } = {}) {
  const data0 = await makeTemplate();
  const ids = runAs();
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-pg-'));
  if (standbyOf) {
    // a streaming standby of another server of this helper (initdb's pg_hba trusts replication
    // from 127.0.0.1): pg_basebackup -R writes standby.signal and primary_conninfo
    chownTree(dir, ids);
    await new Promise((resolve, reject) =>
      execFile(
        path.join(bindir(), 'pg_basebackup'),
        ['-h', '127.0.0.1', '-p', String(standbyOf.port), '-U', 'mcpgate', '-D', path.join(dir, 'data'), '-R', '-X', 'stream', '-c', 'fast', '--no-sync'],
        { ...ids, timeout: 30000 },
        (e, _o, err) => (e ? reject(new Error(`pg_basebackup failed: ${err}`)) : resolve()),
      ),
    );
  } else {
    fs.cpSync(data0, path.join(dir, 'data'), { recursive: true });
  }
  chownTree(dir, ids);
  fs.chmodSync(path.join(dir, 'data'), 0o700);
  const port = await freePort();
  let p = null;
  let lines = [];
  const pg = {
    port,
    dir,
    url: (db = 'mcpgate') => `postgres://mcpgate@127.0.0.1:${port}/${db}`,
    sql: (q, db = 'mcpgate') => psql(port, q, db),
    logs: () => lines.slice(),
    async start() {
      p = spawn(
        path.join(bindir(), 'postgres'),
        ['-D', path.join(dir, 'data'), '-k', dir, '-p', String(port), '-h', '127.0.0.1', '-F', '-c', 'max_connections=200'],
        { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...ids }, // own group: kill() takes the backends too
      );
      const keep = (c) => {
        lines.push(...String(c).split('\n').filter(Boolean));
        if (lines.length > 400) lines = lines.slice(-400);
      };
      p.stdout.on('data', keep);
      p.stderr.on('data', keep);
      p.exited = new Promise((r) => p.on('exit', (code, signal) => r({ code, signal })));
      const end = Date.now() + 15000;
      for (;;) {
        try {
          await psql(port, 'SELECT 1');
          break;
        } catch (e) {
          if (p.exitCode !== null) throw new Error(`postgres exited: ${lines.join(' | ')}`);
          if (Date.now() > end) throw new Error(`postgres on ${port} did not accept connections: ${e.message}`);
          await sleep(50);
        }
      }
      return pg;
    },
    async stop(signal = 'SIGINT') {
      if (!p || p.exitCode !== null || p.signalCode !== null) return;
      const group = (sig) => {
        try {
          process.kill(-p.pid, sig);
        } catch {
          /* gone */
        }
      };
      if (signal === 'SIGKILL') group('SIGKILL');
      else p.kill(signal);
      await Promise.race([p.exited, sleep(10000)]);
      if (p.exitCode === null && p.signalCode === null) {
        group('SIGKILL');
        await p.exited;
      }
      if (signal === 'SIGKILL') await sleep(100); // the backends are gone too
    },
    kill() {
      return pg.stop('SIGKILL');
    },
    /* a standby becomes the primary (waits until it accepts writes) */
    promote() {
      return psql(port, 'SELECT pg_promote(true, 30)');
    },
    get pid() {
      return p?.pid;
    },
  };
  t.defer(async () => {
    await pg.stop('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  });
  await pg.start();
  if (!standbyOf) await psql(port, 'CREATE DATABASE mcpgate');
  return pg;
}

// Least privilege for children (a server's "sandbox"), end to end with real children: the probe
// fixture (build/mcpgate-probe) runs sandboxed and tries what its policy denies -- reading outside
// its Landlock allowlist, writing outside its write list, more open files than its rlimit, more
// processes than its rlimit, unshare (seccomp), a TCP socket (seccomp denyNetwork) -- next to an
// unsandboxed probe that may do all of it. A control this machine cannot apply refuses to start
// the upstream with a clear error. A case is skipped, saying why, only when the kernel lacks the
// feature or the test does not run as root (needed to switch user).
//
// Where the checkout lives does not matter: the user a sandboxed child runs as ("nobody") may not
// be able to reach it (a 0700 home or `mktemp -d` directory), so each test runs a copy of the probe
// staged in a fresh 0755 directory under /tmp, removed at the end. That an unreachable command is
// reported (by check and at start, naming the server) has its own test below.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { connect, textOf } from './lib/client.mjs';
import { waitReadyz } from './lib/gateway.mjs';
import { test, waitFor } from './lib/harness.mjs';
import { MG_PROBE, mcpgate } from './lib/policy.mjs';

const EACCES = 13;
const EPERM = 1;
const EMFILE = 24;
const EAGAIN = 11;

function kernel() {
  const r = mcpgate(['check']);
  const ll = /Landlock ABI (\d+)/.exec(r.stdout);
  return { landlock: ll ? Number(ll[1]) : 0, seccomp: /seccomp filters available/.test(r.stdout) };
}

const isRoot = process.getuid?.() === 0;

async function probe(client, tool, args = {}) {
  const r = await client.callTool({ name: tool, arguments: args });
  return JSON.parse(textOf(r));
}

// A fresh directory under /tmp (not $TMPDIR, which may be private), mode 0755, removed at the end.
function sharedDir(t, prefix) {
  const dir = fs.mkdtempSync(path.join('/tmp', prefix));
  fs.chmodSync(dir, 0o755);
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

// A directory tree the probes can reach (world-readable; the write dir world-writable), with a
// copy of the probe any user can run: {dir, file, probe, allowed, writable, secret}.
function tree(t) {
  const dir = sharedDir(t, 'mcpgate-sbx-');
  const probe = path.join(dir, 'mcpgate-probe');
  fs.copyFileSync(MG_PROBE, probe);
  fs.chmodSync(probe, 0o755);
  const allowed = path.join(dir, 'allowed');
  const writable = path.join(dir, 'writable');
  fs.mkdirSync(allowed, { mode: 0o755 });
  fs.mkdirSync(writable, { mode: 0o777 });
  fs.chmodSync(writable, 0o777);
  fs.writeFileSync(path.join(allowed, 'ok.txt'), 'fine\n', { mode: 0o644 });
  fs.writeFileSync(path.join(dir, 'secret.txt'), 'outside the allowlist\n', { mode: 0o644 });
  return { dir, file: path.join(dir, 'config.json'), probe, allowed, writable, secret: path.join(dir, 'secret.txt') };
}

test('sandbox: a sandboxed child is denied what its policy denies; an unsandboxed one is not', async (t) => {
  const k = kernel();
  if (k.landlock < 1) t.skip('this kernel has no Landlock (sandbox.landlock cannot be tested here)');
  if (!k.seccomp) t.skip('this kernel has no seccomp filters (sandbox.seccomp cannot be tested here)');
  const d = tree(t);
  const sandbox = {
    ...(isRoot ? { user: 'nobody' } : {}),
    rlimits: { openFiles: 32 },
    landlock: { read: [d.allowed], write: [d.writable] },
    seccomp: { profile: 'default', denyNetwork: true },
  };
  const config = { mcpServers: { box: { command: d.probe, sandbox }, free: { command: d.probe } } };
  fs.writeFileSync(d.file, JSON.stringify(config));
  const check = mcpgate(['check', '--config', d.file]);
  assert.equal(check.status, 0, check.stdout + check.stderr);
  assert.match(check.stdout, new RegExp(`box: ${isRoot ? 'user nobody \\(65534:65534\\), ' : ''}no_new_privs, rlimits openFiles=32, landlock ABI \\d+`));
  const gw = await t.gateway({ args: ['--config', d.file] });
  const s = await connect(gw.url);
  t.defer(() => s.close());

  const who = await probe(s.client, 'box__whoami');
  assert.equal(who.no_new_privs, 1);
  assert.equal(who.seccomp, 2); // filter mode
  assert.equal(who.nofile, 32);
  if (isRoot) assert.equal(who.uid, 65534);
  const freeWho = await probe(s.client, 'free__whoami');
  assert.equal(freeWho.no_new_privs, 0);
  assert.equal(freeWho.seccomp, 0);

  // Landlock: reads only beneath the allowlist (and system paths), writes only beneath the write list.
  assert.equal((await probe(s.client, 'box__read_file', { path: path.join(d.allowed, 'ok.txt') })).ok, true);
  const denied = await probe(s.client, 'box__read_file', { path: d.secret });
  assert.equal(denied.ok, false);
  assert.equal(denied.errno, EACCES);
  assert.equal((await probe(s.client, 'free__read_file', { path: d.secret })).ok, true);
  assert.equal((await probe(s.client, 'box__write_file', { path: path.join(d.writable, 'w.txt') })).ok, true);
  const wdenied = await probe(s.client, 'box__write_file', { path: path.join(d.dir, 'w.txt') });
  assert.equal(wdenied.errno, EACCES);
  // rlimit: open files.
  const files = await probe(s.client, 'box__open_files', { count: 100 });
  assert.equal(files.errno, EMFILE);
  assert.ok(files.opened < 32, JSON.stringify(files));
  assert.equal((await probe(s.client, 'free__open_files', { count: 100 })).opened, 100);
  // seccomp: namespaces and network sockets.
  assert.equal((await probe(s.client, 'box__unshare')).errno, EPERM);
  assert.equal((await probe(s.client, 'box__connect', { port: gw.port })).errno, EACCES);
  assert.equal((await probe(s.client, 'free__connect', { port: gw.port })).ok, true);
  // The child's environment is still exactly its own.
  const env = (await probe(s.client, 'box__env')).env;
  for (const key of Object.keys(env)) assert.ok(['PATH', 'HOME', 'LANG'].includes(key), key);

  // What was applied is logged (the wrapper's line, tagged with the upstream) and in the start line.
  await waitFor(() => gw.logs().some((l) => l.upstream === 'box' && /mcpgate-sandbox: applied .*landlock ABI/.test(l.msg ?? l.line ?? '')), {
    what: 'the sandbox log line',
  });
  await gw.waitLog((l) => l.msg === 'upstream process started' && l.upstream === 'box' && /landlock/.test(l.sandbox), { what: 'the sandboxed start' });
}, { timeout: 30000 });

test('sandbox: rlimits.processes (as another user) limits how many processes the child may start', async (t) => {
  if (!isRoot) t.skip('switching user needs root (RLIMIT_NPROC does not bind root itself)');
  const d = tree(t);
  fs.writeFileSync(
    d.file,
    JSON.stringify({ mcpServers: { box: { command: d.probe, sandbox: { user: 'nobody', rlimits: { processes: 4 } } } } }),
  );
  const gw = await t.gateway({ args: ['--config', d.file] });
  const s = await connect(gw.url);
  t.defer(() => s.close());
  const r = await probe(s.client, 'spawn', { count: 20 });
  assert.equal(r.errno, EAGAIN, JSON.stringify(r));
  assert.ok(r.spawned < 4, JSON.stringify(r));
});

test('sandbox: a control that cannot be applied here refuses to start the upstream, with a clear error', async (t) => {
  const d = tree(t);
  // As root: RLIMIT_NPROC does not bind root, so processes without another user is refused.
  // Not as root: switching user is impossible, so it is refused.
  const sandbox = isRoot ? { rlimits: { processes: 10 } } : { user: 'nobody' };
  const want = isRoot ? /not enforced for root/ : /needs the gateway to run as root/;
  fs.writeFileSync(d.file, JSON.stringify({ mcpServers: { box: { command: d.probe, sandbox }, ok: { command: d.probe } } }));
  const check = mcpgate(['check', '--config', d.file]);
  assert.equal(check.status, 1);
  assert.match(check.stdout, /box: PROBLEM: .*\(the server would not be started\)/);
  const gw = await t.gateway({ args: ['--config', d.file] });
  const rz = await waitReadyz(gw, (j) => j.upstreams.find((u) => u.name === 'box')?.error);
  const box = rz.upstreams.find((u) => u.name === 'box');
  assert.notEqual(box.state, 'ready');
  assert.match(box.error, /upstream 'box': sandbox: .*; the server is not started without it/);
  assert.match(box.error, want);
  // The other upstream is fine, and no process was ever started for box.
  const s = await connect(gw.url);
  t.defer(() => s.close());
  assert.equal((await probe(s.client, 'ok__whoami')).ok, true);
  assert.ok(!gw.logs().some((l) => l.msg === 'upstream process started' && l.upstream === 'box'));
  let err = null;
  try {
    await s.client.callTool({ name: 'box__whoami', arguments: {} });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'a call to the refused upstream fails');
});

test('sandbox: a command the sandbox user cannot reach is reported by check and at start, naming the server', async (t) => {
  if (!isRoot) t.skip('switching user needs root (without it the sandbox is refused before any path is checked)');
  const d = tree(t);
  // The probe beneath a 0700 directory (what `mktemp -d` and many home directories are).
  const hidden = path.join(d.dir, 'private');
  fs.mkdirSync(hidden, { mode: 0o700 });
  fs.chmodSync(hidden, 0o700);
  const hiddenProbe = path.join(hidden, 'mcpgate-probe');
  fs.copyFileSync(MG_PROBE, hiddenProbe);
  fs.chmodSync(hiddenProbe, 0o755);
  fs.writeFileSync(
    d.file,
    JSON.stringify({ mcpServers: { box: { command: hiddenProbe, sandbox: { user: 'nobody' } }, ok: { command: d.probe, sandbox: { user: 'nobody' } } } }),
  );
  const want = `command '${hiddenProbe}' is not reachable by user nobody (uid 65534) (directory '${hidden}' is not searchable)`;
  const check = mcpgate(['check', '--config', d.file]);
  assert.equal(check.status, 1, check.stdout + check.stderr);
  assert.ok(check.stdout.includes(`PROBLEM: server 'box': ${want}`), check.stdout);
  assert.ok(!/server 'ok'/.test(check.stdout), check.stdout);
  const gw = await t.gateway({ args: ['--config', d.file] });
  const rz = await waitReadyz(gw, (j) => j.upstreams.find((u) => u.name === 'box')?.error);
  const box = rz.upstreams.find((u) => u.name === 'box');
  assert.notEqual(box.state, 'ready');
  assert.equal(box.error, `upstream 'box': ${want}`);
  await gw.waitLog((l) => l.level === 'error' && l.msg === `upstream 'box': ${want}`, { what: 'the error line' });
  // Never started (so no 126/127 from the wrapper); the other upstream works.
  const s = await connect(gw.url);
  t.defer(() => s.close());
  assert.equal((await probe(s.client, 'ok__whoami')).uid, 65534);
  assert.ok(!gw.logs().some((l) => l.msg === 'upstream process started' && l.upstream === 'box'));
});

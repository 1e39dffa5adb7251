// Hostile upstreams (issue #4, part 4): children that print junk, one 50 MB line, floods, never
// answer, answer with wrong ids, ask for what the client never allowed, exit during initialize or
// mid-call, ignore SIGTERM, or leave children behind. For each: the caller gets a clear error
// naming the server, other sessions and servers are unaffected, the gateway's memory stays
// bounded, and no process outlives the gateway. The misbehaving server is
// fixtures/hostile-upstream.mjs (each tool does one bad thing).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { connect, textOf } from './lib/client.mjs';
import { E2E_DIR, listProcesses, testserver, waitReadyz } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { call, initSession } from './lib/http.mjs';
import { rssBound, rssKiB } from './lib/raw.mjs';

const HOSTILE = path.join(E2E_DIR, 'fixtures/hostile-upstream.mjs');
const TIMEOUT_MS = 1500; // the hostile server's timeoutMs

function hostile(args = [], more = {}) {
  return { command: process.execPath, args: [HOSTILE, ...args], timeoutMs: TIMEOUT_MS, ...more };
}

function pidfile(t) {
  const f = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-hostile-')), 'pids');
  fs.writeFileSync(f, '');
  t.defer(() => fs.rmSync(path.dirname(f), { recursive: true, force: true }));
  return f;
}

// Live (non-zombie) processes among those the fixture recorded.
function alive(file) {
  const pids = fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => Number(l.split(' ')[0]));
  const procs = listProcesses();
  return procs.filter((p) => pids.includes(p.pid) && p.state !== 'Z');
}


const ctxLogs = (gw) => gw.logs();

async function gatewayWith(t, servers, limits = {}) {
  return t.gateway({ config: { mcpServers: servers, gateway: { limits: { shutdownGraceMs: 1000, ...limits } } } });
}

// {ms, error: string|null, text}
async function timedCall(client, name, args = {}, timeout = 20000) {
  const t0 = Date.now();
  try {
    const r = await client.callTool({ name, arguments: args }, undefined, { timeout });
    return { ms: Date.now() - t0, error: r.isError ? JSON.stringify(r.content) : null, text: textOf(r) };
  } catch (e) {
    return { ms: Date.now() - t0, error: `${e.code ?? ''} ${e.message}`, text: null };
  }
}

// extra: gateway.limits; bad: more of the hostile server's entry (e.g. its timeoutMs).
async function bothServers(t, extra = {}, bad = {}) {
  const pids = pidfile(t);
  const gw = await gatewayWith(t, { bad: hostile(['--pidfile', pids], bad), good: testserver(['--name', 'good']) }, extra);
  const a = await connect(gw.url, { name: 'victim' });
  const b = await connect(gw.url, { name: 'bystander' });
  t.defer(() => a.close());
  t.defer(() => b.close());
  assert.equal((await timedCall(a.client, 'bad__ok')).text, 'ok');
  return { gw, a, b, pids };
}

// The bystander session, the good server and the bad server itself still work.
async function stillFine(ctx) {
  const g = await timedCall(ctx.b.client, 'good__echo', { message: 'still here' });
  assert.equal(g.text, 'still here', JSON.stringify(g));
  const ok = await waitFor(
    async () => {
      const r = await timedCall(ctx.b.client, 'bad__ok', {}, 3000);
      return r.text === 'ok' ? r : null;
    },
    { timeout: 8000, interval: 100, what: 'the hostile server to answer "ok" again' },
  );
  assert.equal(ok.text, 'ok');
  assert.equal((await ctx.gw.healthz()).status, 200);
}

test('non-JSON lines, arrays, truncated objects and bare values on stdout are ignored', async (t) => {
  const ctx = await bothServers(t);
  const r = await timedCall(ctx.a.client, 'bad__garbage');
  assert.equal(r.text, 'after garbage', JSON.stringify(r));
  await ctx.gw.waitLog((l) => /not JSON|not an object|not JSON-RPC/.test(l.msg), { what: 'the junk (it must be logged)' });
  await stillFine(ctx);
});

test('junk and no answer: the caller gets a timeout error naming the server', async (t) => {
  const ctx = await bothServers(t);
  const r = await timedCall(ctx.a.client, 'bad__garbage_only');
  assert.ok(r.error && /bad/.test(r.error) && /did not answer within/.test(r.error), JSON.stringify(r));
  assert.ok(r.ms < TIMEOUT_MS + scaled(1500), `took ${r.ms} ms`);
  await stillFine(ctx);
});

test('one 50 MB line: the call fails with a clear error, memory stays bounded', async (t) => {
  // The server's request budget must outlast streaming 50 MB through a pipe on a loaded machine
  // (1.5 s did not at load 10): what is tested is the line cap's error, not the timeout.
  const ctx = await bothServers(t, {}, { timeoutMs: scaled(10000) });
  const before = rssKiB(ctx.gw.pid);
  const r = await timedCall(ctx.a.client, 'bad__huge_line', {}, 30000);
  assert.ok(r.error && /maxUpstreamLineBytes/.test(r.error) && /bad/.test(r.error), JSON.stringify(r).slice(0, 300));
  await stillFine(ctx);
  const after = rssKiB(ctx.gw.pid);
  t.log(`RSS before ${before} KiB, after ${after} KiB`);
  // The line is discarded past the 16 MiB cap and its buffer freed: never 50 MB held.
  assert.ok(after - before < rssBound(40 * 1024), `RSS grew by ${after - before} KiB`);
}, { timeout: 60000 });

test('20,000 notifications during a call: delivered on the call stream (per-session child), bounded memory', async (t) => {
  // The hostile server names no request in its notifications: only a child of one session may
  // attribute them to the call in flight (on a shared child that would be no evidence: see
  // upstream-messages.test.mjs), so the server runs with isolation "session" here.
  // The answer comes after the 20,000 lines and notifications/message does not restart the
  // request's idle timer (only progress does), so the server's timeoutMs is a budget for the
  // gateway's CPU time over the whole flood (~21 mallocs per notification): ~0.2 s in a release
  // build, ~2.5 s under scripts/asan.sh (every malloc stack unwound, fast_unwind_on_malloc=0),
  // where the hostile server's 1500 ms expired before the answer was read. Not what this test
  // checks: a budget with room under sanitizers and a loaded machine, still far from a hang.
  const ctx = await bothServers(t, {}, { timeoutMs: scaled(5000), isolation: 'session' });
  const s = await initSession(ctx.gw.url);
  const before = rssKiB(ctx.gw.pid);
  const t0 = Date.now();
  const { response, others } = await call(ctx.gw.url, s, 'tools/call', { name: 'bad__flood', arguments: { count: 20000 } }, { timeout: scaled(30000) });
  t.log(`the flooded call took ${Date.now() - t0} ms (timeoutMs ${scaled(5000)})`);
  assert.equal(response.result?.content?.[0]?.text, 'flooded 20000', JSON.stringify(response));
  t.log(`${others.length} related messages before the response`);
  assert.ok(others.length > 0, 'the notifications must reach the caller');
  await stillFine(ctx);
  const after = rssKiB(ctx.gw.pid);
  t.log(`RSS before ${before} KiB, after ${after} KiB`);
  assert.ok(after - before < rssBound(32 * 1024), `RSS grew by ${after - before} KiB`);
}, { timeout: 60000 });

test('a flood of unattributed notifications is logged a bounded number of times, never broadcast, and harms nobody', async (t) => {
  const ctx = await bothServers(t);
  const r = await timedCall(ctx.a.client, 'bad__flood_after');
  assert.equal(r.text, 'flooding now');
  await waitFor(() => ctx.gw.logs().filter((l) => /not attributable/.test(l.msg)).length >= 1, {
    what: 'unattributed notifications in the log',
  });
  await stillFine(ctx);
  await sleep(300);
  // 5000 notifications: a few lines (rate limit, src/common/log.h), not one per notification
  const n = ctx.gw.logs().filter((l) => /not attributable/.test(l.msg)).length;
  t.log(`${n} log lines for 5000 unattributed notifications`);
  assert.ok(n <= 25, `${n} log lines`);
  const m = await (await fetch(`${ctx.gw.base}/metrics`)).text();
  assert.match(m, /mcpgate_upstream_unrouted_total\{upstream="bad",kind="notification"\} 5000\b/);
});

test('never answers: timeout error; a concurrent call on the same child is unaffected', async (t) => {
  const ctx = await bothServers(t);
  const hung = timedCall(ctx.a.client, 'bad__hang');
  await sleep(100);
  const ok = await timedCall(ctx.b.client, 'bad__ok');
  assert.equal(ok.text, 'ok', 'a request to the same child while another hangs');
  const r = await hung;
  assert.ok(r.error && /'bad' did not answer within 1500 ms/.test(r.error), JSON.stringify(r));
  await stillFine(ctx);
});

test('unknown and duplicate response ids: exactly one answer reaches the caller', async (t) => {
  const ctx = await bothServers(t);
  const s = await initSession(ctx.gw.url);
  const { response, others } = await call(ctx.gw.url, s, 'tools/call', { name: 'bad__unknown_id' });
  assert.equal(response.result?.content?.[0]?.text, 'first');
  assert.equal(others.filter((m) => 'result' in m || 'error' in m).length, 0, JSON.stringify(others));
  await stillFine(ctx);
});

test('a response whose id has the wrong type is not taken for ours: timeout error', async (t) => {
  const ctx = await bothServers(t);
  const r = await timedCall(ctx.a.client, 'bad__wrong_type_id');
  assert.ok(r.error && /did not answer within/.test(r.error), JSON.stringify(r));
  await ctx.gw.waitLog((l) => /id the gateway never used/.test(l.msg), { what: 'the wrongly typed id' });
  await stillFine(ctx);
});

test('server requests the client never allowed are refused to the child with -32601', async (t) => {
  const ctx = await bothServers(t);
  const r = await timedCall(ctx.a.client, 'bad__server_request');
  assert.deepEqual(JSON.parse(r.text), [{ error: -32601 }, { error: -32601 }, { error: -32601 }], JSON.stringify(r));
  await stillFine(ctx);
});

test('exit mid-call: fails at once with the exit status; restarted; others unaffected', async (t) => {
  const ctx = await bothServers(t);
  const hung = timedCall(ctx.b.client, 'bad__hang');
  await sleep(100);
  const r = await timedCall(ctx.a.client, 'bad__exit_mid_call');
  assert.ok(r.error && /'bad' exited with status 7/.test(r.error), JSON.stringify(r));
  assert.ok(r.ms < scaled(1500), `took ${r.ms} ms`);
  const h = await hung; // the other request in flight on that child fails too, at once
  assert.ok(h.error && /exited with status 7/.test(h.error) && h.ms < TIMEOUT_MS, JSON.stringify(h));
  await stillFine(ctx);
});

test('exit during initialize: clear error in calls and /readyz; the other server works', async (t) => {
  const gw = await gatewayWith(t, { bad: hostile(['--exit-during-init']), good: testserver(['--name', 'good']) });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  await waitReadyz(gw, (j) => j.upstreams.some((u) => u.name === 'bad' && /during initialize/.test(u.error || '')));
  const g = await timedCall(c.client, 'good__echo', { message: 'hi' });
  assert.equal(g.text, 'hi');
  const tools = await c.client.listTools();
  assert.ok(tools.tools.some((x) => x.name === 'good__echo'));
  assert.ok(!tools.tools.some((x) => x.name.startsWith('bad__')), 'a server that never started lists nothing');
  const r = await timedCall(c.client, 'bad__ok');
  assert.ok(r.error, JSON.stringify(r));
  t.log('call to the dead server', r);
});

test('never answers initialize: killed after the timeout, error in /readyz, no leftovers', async (t) => {
  const pids = pidfile(t);
  const gw = await gatewayWith(t, { bad: hostile(['--hang-init', '--pidfile', pids]), good: testserver(['--name', 'good']) });
  await waitReadyz(gw, (j) => j.upstreams.some((u) => u.name === 'bad' && /did not answer initialize/.test(u.error || '')));
  const c = await connect(gw.url);
  t.defer(() => c.close());
  assert.equal((await timedCall(c.client, 'good__echo', { message: 'x' })).text, 'x');
  await gw.stop();
  await waitFor(() => alive(pids).length === 0, { what: 'every hostile process to be gone' });
});

test('ignores SIGTERM and leaves children: all killed at shutdown, exit 0', async (t) => {
  const pids = pidfile(t);
  const gw = await gatewayWith(t, { bad: hostile(['--ignore-sigterm', '--pidfile', pids]) });
  const c = await connect(gw.url);
  assert.equal((await timedCall(c.client, 'spawn_orphans')).text, 'spawned');
  await c.close();
  assert.ok(alive(pids).length >= 4, `expected the server and 3 children alive: ${JSON.stringify(alive(pids))}`);
  const t0 = Date.now();
  const exit = await gw.stop({ timeout: scaled(10000) });
  const ms = Date.now() - t0;
  assert.deepEqual(exit, { code: 0, signal: null });
  t.log(`stopped in ${ms} ms`);
  assert.ok(/ignored-sigterm/.test(fs.readFileSync(pids, 'utf8')), 'the server saw SIGTERM and ignored it');
  // Children get half of shutdownGraceMs (catalog.c) before SIGKILL.
  assert.ok(ms >= 450, `stopped in ${ms} ms: SIGKILL must come only after shutdownGraceMs / 2`);
  assert.ok(ctxLogs(gw).some((l) => /did not exit after SIGTERM/.test(l.msg)), 'the SIGKILL is logged');
  await waitFor(() => alive(pids).length === 0, { timeout: 3000, what: 'no process outliving the gateway' });
});

test('exits leaving children behind: the orphans are killed at once, the server restarts', async (t) => {
  const pids = pidfile(t);
  const gw = await gatewayWith(t, { bad: hostile(['--pidfile', pids]) });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const r = await timedCall(c.client, 'spawn_orphans_exit');
  assert.ok(r.error && /exited with status 9/.test(r.error), JSON.stringify(r));
  const firstGen = fs.readFileSync(pids, 'utf8');
  const orphanPids = firstGen
    .split('\n')
    .filter((l) => l.endsWith('child'))
    .map((l) => Number(l.split(' ')[0]));
  assert.equal(orphanPids.length, 3);
  await waitFor(() => !listProcesses().some((p) => orphanPids.includes(p.pid) && p.state !== 'Z'), {
    timeout: 2000,
    what: "the dead server's children to be killed",
  });
  await waitFor(async () => (await timedCall(c.client, 'ok', {}, 2000)).text === 'ok', { timeout: 8000, what: 'restart' });
});

test('garbage before initialize is ignored; the server starts normally', async (t) => {
  const gw = await gatewayWith(t, { bad: hostile(['--garbage-before-init']) });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  assert.equal((await timedCall(c.client, 'ok')).text, 'ok');
});

// Process lifecycle: graceful SIGTERM with work in flight, no orphaned children, JSON logs.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { MG_TESTSERVER, listProcesses, processesInGroups, testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, call, eventJson, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

// Processes still alive that were the gateway's children, or share their process groups.
function leftovers(gw) {
  const procs = listProcesses();
  const seen = gw.seenDescendants();
  const alive = seen.filter((q) => procs.some((p) => p.pid === q.pid && p.comm === q.comm && p.state !== 'Z'));
  // Groups the children lived in, except the one the harness itself runs in.
  const ownGroup = procs.find((p) => p.pid === process.pid)?.pgid;
  const groups = [...new Set(seen.map((q) => q.pgid))].filter((g) => g !== ownGroup);
  const inGroups = processesInGroups(groups, procs);
  const byParent = procs.filter((p) => p.ppid === gw.pid && p.state !== 'Z');
  const all = new Map();
  for (const p of [...alive, ...inGroups, ...byParent]) all.set(p.pid, p);
  return [...all.values()];
}

test('SIGTERM with a 300 ms call in flight: the call completes, exit 0, no child left', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { a: testserver(['--name', 'a']), b: testserver(['--name', 'b']) } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  await c.client.callTool({ name: 'a__echo', arguments: { message: 'warm' } });
  await c.client.callTool({ name: 'b__echo', arguments: { message: 'warm' } });
  const kids = await waitFor(() => (gw.children().length >= 2 ? gw.children() : null), { what: 'two upstream children' });
  t.log('children', kids);
  const gwGroup = listProcesses().find((p) => p.pid === gw.pid)?.pgid;
  for (const k of kids) assert.notEqual(k.pgid, gwGroup, `child ${k.pid} shares the gateway's process group`);

  const t0 = Date.now();
  const inflight = c.client.callTool({ name: 'a__sleep', arguments: { ms: 300 } });
  await sleep(50);
  gw.proc.kill('SIGTERM');
  const r = await inflight;
  assert.ok(!r.isError, `in-flight call failed during shutdown: ${JSON.stringify(r)}`);
  assert.ok(Date.now() - t0 >= 250, 'sleep returned too early');
  const exit = await gw.waitExit(10000);
  assert.ok(exit, 'gateway did not exit within 10 s of SIGTERM');
  assert.deepEqual(exit, { code: 0, signal: null }, `gateway exit: ${JSON.stringify(exit)}`);
  await sleep(100);
  const left = leftovers(gw);
  assert.equal(left.length, 0, `processes left behind: ${JSON.stringify(left)}`);
});

// Kubernetes takes a pod out of its Service when readiness fails; a closed listener (connection
// refused) looks like a dead pod to the kubelet and to clients alike. So during the drain the
// gateway keeps accepting: /readyz 503, /healthz 200, new /mcp work 503 with Retry-After.
test('SIGTERM with a long call in flight: during the drain /readyz is 503, /healthz 200, new sessions 503 + Retry-After', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const s = await initSession(gw.url);
  const inflight = call(gw.url, s, 'tools/call', { name: 'sleep', arguments: { ms: 2000 } }, { timeout: 15000 });
  await sleep(200);
  gw.proc.kill('SIGTERM');
  await gw.waitLog((l) => l.msg === 'shutting down', { what: 'shutting down' });
  const ready = await gw.readyz();
  assert.equal(ready.status, 503, `readyz during the drain: ${ready.status} ${ready.body}`);
  assert.equal(ready.json?.status, 'stopping');
  assert.equal(ready.headers.connection, 'close', 'connections are not kept alive during the drain');
  const health = await gw.healthz();
  assert.equal(health.status, 200, 'the process is alive: liveness must not fail during the drain');
  const init = await request(gw.url, {
    headers: { Accept: ACCEPT_BOTH },
    body: rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'late', version: '1' } }),
  });
  const body = await init.text();
  assert.equal(init.status, 503, body);
  assert.ok(Number(init.headers['retry-after']) >= 1, `Retry-After: ${init.headers['retry-after']}`);
  assert.match(body, /shutting down/);
  assert.ok(!gw.exited, 'the gateway exited before its call finished');
  const r = await inflight;
  assert.equal(r.response.result?.isError ?? false, false, JSON.stringify(r.response));
  const exit = await gw.waitExit(10000);
  assert.deepEqual(exit, { code: 0, signal: null });
});

test('SIGTERM while idle with an open GET stream: prompt exit 0, stream closed', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const s = await initSession(gw.url);
  const get = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream' }) });
  assert.equal(get.status, 200);
  await waitFor(() => gw.children().length >= 1, { what: 'upstream child' });
  const t0 = Date.now();
  gw.proc.kill('SIGTERM');
  const exit = await gw.waitExit(10000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.ok(Date.now() - t0 < scaled(3000), `exit took ${Date.now() - t0} ms with nothing in flight`);
  // The GET stream ends (it must not keep the client hanging).
  const end = Date.now() + 2000;
  let ev;
  while ((ev = await get.next(Math.max(1, end - Date.now())).catch(() => 'timeout')) && ev !== 'timeout') {
    if (ev === null) break;
    assert.ok(!eventJson(ev)?.result, 'no responses on the GET stream');
  }
  assert.notEqual(ev, 'timeout', 'GET stream still open after the gateway exited');
  assert.equal(leftovers(gw).length, 0, JSON.stringify(leftovers(gw)));
});

test('SIGINT also shuts down cleanly', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  await waitFor(() => gw.children().length >= 1, { what: 'upstream child' });
  gw.proc.kill('SIGINT');
  const exit = await gw.waitExit(10000);
  assert.deepEqual(exit, { code: 0, signal: null });
  assert.equal(leftovers(gw).length, 0);
});

test('stderr is JSON lines; a spawn is logged; no secret from env in logs', async (t) => {
  const secret = 'e2e-secret-value-5f2c9a';
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver([], { env: { E2E_TOKEN: secret } }) } },
  });
  const c = await connect(gw.url);
  await c.client.callTool({ name: 'echo', arguments: { message: 'log me not' } });
  await c.close();
  const { code } = await gw.stop();
  assert.equal(code, 0);
  const lines = gw.stderrLines().filter((l) => l.trim());
  assert.ok(lines.length > 0, 'no log lines at all');
  const bad = lines.filter((l) => {
    try {
      return typeof JSON.parse(l) !== 'object';
    } catch {
      return true;
    }
  });
  assert.deepEqual(bad, [], 'every stderr line must be a JSON object');
  assert.ok(!gw.stderrText().includes(secret), 'an env value of an upstream appeared in the logs');
});

test('invalid config: exits non-zero with a message naming the problem', async (t) => {
  let err;
  try {
    await t.gateway({ config: { mcpServers: { broken: { args: ['no command'] } } }, startTimeout: 3000 });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'gateway started with an invalid config');
  // The harness records the process; it must have exited with a non-zero status.
  const gw = t.gateways[0];
  await gw.waitExit(3000);
  assert.ok(gw.exited && gw.exitStatus() !== 'status 0', gw.exitStatus());
  assert.match(gw.stderrText(), /broken/, 'error must name the server');
  t.gateways.length = 0; // nothing to stop
});

test("SIGTERM also ends an upstream's own children (its process group)", async (t) => {
  // The upstream is a shell that leaves a background grandchild and execs the testserver.
  const gw = await t.gateway({
    config: { mcpServers: { test: { command: '/bin/sh', args: ['-c', `sleep 30 & exec ${MG_TESTSERVER}`] } } },
  });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'hi' } })), 'hi');
  const kids = await waitFor(() => {
    const d = gw.children();
    return d.some((p) => p.comm === 'sleep') ? d : null;
  }, { what: 'the grandchild sleep process' });
  t.log('descendants', kids);
  gw.proc.kill('SIGTERM');
  const exit = await gw.waitExit(10000);
  assert.deepEqual(exit, { code: 0, signal: null });
  await sleep(200);
  const left = leftovers(gw);
  assert.equal(left.length, 0, `left behind: ${JSON.stringify(left)}`);
});

test('a crashed child is reaped (no zombies) and restarted', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const before = await waitFor(() => gw.children()[0], { what: 'upstream child' });
  await c.client.callTool({ name: 'crash', arguments: {} }).catch(() => {});
  const after = await waitFor(
    () => gw.children().find((p) => p.pid !== before.pid),
    { what: 'a restarted child', timeout: 5000 },
  );
  assert.notEqual(after.pid, before.pid);
  await sleep(100);
  const zombies = listProcesses().filter((p) => p.ppid === gw.pid && p.state === 'Z');
  assert.deepEqual(zombies, [], 'zombie children');
});

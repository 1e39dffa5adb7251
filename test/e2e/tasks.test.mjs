// Tasks (docs/tasks.md): a tools/call that runs as a task outlives its client's connection and is
// polled from another; bound to the principal; bounded per principal and in result size;
// cancellation reaches the upstream; the same through 3 replicas + Redis with the owner killed;
// server-everything's task-requiring tool end to end. Clients: the official SDK's task API
// (client.experimental.tasks, 2025-11-25) and raw 2026-07-28 requests (the extension).
import assert from 'node:assert/strict';
import { CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { bearer, readRecord, recordFile, recordedTestserver, tokenNew } from './lib/auth.mjs';
import { connect, textOf } from './lib/client.mjs';
import { redisCmd, requireBinaries, startRedis, startReplicas, waitStore } from './lib/cluster.mjs';
import { everythingServer, testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, call, eventJson, initSession, notification, request, rpc, sessionHeaders } from './lib/http.mjs';

const V = '2026-07-28';
const EXT = 'io.modelcontextprotocol/tasks';

// One 2026-07-28 request (the tasks extension declared unless caps says otherwise).
async function modern(url, method, params = {}, { caps = { extensions: { [EXT]: {} } }, headers = {} } = {}) {
  const body = rpc(method, {
    ...params,
    _meta: {
      'io.modelcontextprotocol/protocolVersion': V,
      'io.modelcontextprotocol/clientCapabilities': caps,
      'io.modelcontextprotocol/clientInfo': { name: 'e2e-tasks', version: '1' },
    },
  });
  const h = { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': method };
  if (method === 'tools/call') h['Mcp-Name'] = params.name;
  if (method.startsWith('tasks/')) h['Mcp-Name'] = params.taskId;
  const r = await request(url, { headers: { ...h, ...headers }, body });
  const msgs = await r.messages({ timeout: 10000 });
  return { status: r.status, headers: r.headers, response: msgs.find((m) => m && m.id === body.id) };
}

// subscriptions/listen (2026-07-28) naming task ids: every message of the stream is collected in
// `got` as it comes; `ack` resolves with the acknowledgement (or the HTTP error's body).
async function listen(url, taskIds, { caps = { extensions: { [EXT]: {} } }, headers = {} } = {}) {
  const body = rpc('subscriptions/listen', {
    notifications: { taskIds },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': V,
      'io.modelcontextprotocol/clientCapabilities': caps,
      'io.modelcontextprotocol/clientInfo': { name: 'e2e-tasks', version: '1' },
    },
  });
  const h = { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'subscriptions/listen', ...headers };
  const r = await request(url, { headers: h, body });
  if (!r.isSSE) return { status: r.status, error: (await r.json()).error, close() {} };
  const got = [];
  (async () => {
    for (;;) {
      const ev = await r.next(3600000).catch(() => null);
      if (!ev) return;
      const m = eventJson(ev);
      if (m) got.push(m);
    }
  })();
  await waitFor(() => got.length > 0, { what: 'the subscription acknowledgement' });
  const tasks = (id) => got.filter((m) => m.method === 'notifications/tasks' && m.params.taskId === id).map((m) => m.params);
  return { status: r.status, subId: body.id, got, ack: got[0], tasks, close: () => r.close() };
}

// Polls tasks/get (SDK client) until the status is terminal.
async function settle(client, taskId, timeout = scaled(10000)) {
  let last;
  await waitFor(
    async () => {
      last = await client.experimental.tasks.getTask(taskId);
      return ['completed', 'failed', 'cancelled'].includes(last.status);
    },
    { timeout, interval: 100, what: `task ${taskId} to end` },
  );
  return last;
}

// Starts tools/call as a task through the SDK's task API; returns the taskId (the stream is left).
async function startTask(client, name, args, ttl = 60000) {
  const stream = client.experimental.tasks.callToolStream({ name, arguments: args }, CallToolResultSchema, { task: { ttl } });
  for await (const m of stream) {
    if (m.type === 'taskCreated') return m.task.taskId;
    if (m.type === 'error') throw m.error;
    if (m.type === 'result') throw new Error(`no task: ${JSON.stringify(m.result)}`);
  }
  throw new Error('the stream ended without a task');
}

// The long call: 30 s, as a task; the client goes away, a new connection polls it later.
// It mostly waits, so it runs in the background (run.mjs): its 30 s overlap the tests after it.
test(
  'SDK task API: a 30 s call as a task; its client disconnects; a new connection polls it later to its result',
  async (t) => {
    const SECONDS = 30;
    const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
    const a = await connect(gw.url);
    await a.client.listTools();
    const t0 = Date.now();
    const taskId = await startTask(a.client, 'slow_compute', { seconds: SECONDS, label: 'thirty' }, 600000);
    await a.client.close(); // gone: no DELETE, no cancellation
    // Halfway through, another connection finds it still running.
    await sleep(SECONDS * 500);
    const b = await connect(gw.url);
    const mid = await b.client.experimental.tasks.getTask(taskId);
    assert.equal(mid.status, 'working', JSON.stringify(mid));
    await b.client.close();
    // Later, a third connection polls (at the task's pollInterval) until it ends.
    await sleep(Math.max(0, SECONDS * 1000 - (Date.now() - t0)));
    const c = await connect(gw.url);
    t.defer(() => c.close());
    let last;
    await waitFor(
      async () => ['completed', 'failed', 'cancelled'].includes((last = await c.client.experimental.tasks.getTask(taskId)).status),
      { timeout: scaled(30000), interval: mid.pollInterval, what: 'the 30 s task to end' },
    );
    assert.equal(last.status, 'completed', JSON.stringify(last));
    assert.ok(Date.now() - t0 >= SECONDS * 1000, 'the task ended before its 30 s');
    const res = await c.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
    assert.equal(textOf(res), `slow_compute thirty finished after ${SECONDS} s`);
  },
  { timeout: 90000, background: true },
);

test('SDK task API: a slow call as a task outlives its client; a new connection polls it to its result', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const a = await connect(gw.url);
  const caps = a.client.getServerCapabilities();
  assert.ok(caps.tasks?.requests?.tools?.call, 'initialize must declare tasks.requests.tools.call (2025-11-25)');
  assert.equal(caps.tasks.list, undefined, 'tasks/list is not offered: one caller never enumerates tasks');
  await a.client.listTools(); // the SDK learns execution.taskSupport here
  const taskId = await startTask(a.client, 'slow_compute', { seconds: 2, label: 'outlives' });
  assert.match(taskId, /^[0-9a-f]{32}$/);
  await a.client.close(); // the connection goes, no DELETE, no cancellation
  const b = await connect(gw.url);
  t.defer(() => b.close());
  const now = await b.client.experimental.tasks.getTask(taskId);
  assert.equal(now.status, 'working');
  assert.equal(typeof now.pollInterval, 'number');
  assert.equal(typeof now.ttl, 'number');
  // tasks/result waits for the outcome (2025-11-25), then the task reads completed.
  const res = await b.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
  assert.equal(textOf(res), 'slow_compute outlives finished after 2 s');
  assert.equal(res._meta?.['io.modelcontextprotocol/related-task']?.taskId, taskId);
  assert.equal((await b.client.experimental.tasks.getTask(taskId)).status, 'completed');
  // tasks/list does not exist here; an unknown id is -32602.
  await assert.rejects(b.client.experimental.tasks.listTasks(), /-32601|not found/i);
  await assert.rejects(b.client.experimental.tasks.getTask('0'.repeat(32)), (e) => e.code === -32602);
  // A tool without taskSupport ignores the task request and answers at once.
  const plain = await b.client.callTool({ name: 'echo', arguments: { message: 'plain' } });
  assert.equal(textOf(plain), 'plain');
  // A 2025-06-18 session has no tasks: params.task is ignored, tasks/* are unknown.
  const old = await initSession(gw.url, { protocolVersion: '2025-06-18' });
  assert.equal(old.result.capabilities.tasks, undefined);
  const r = await call(gw.url, old, 'tools/call', { name: 'slow_compute', arguments: { seconds: 0, label: 'old' }, task: { ttl: 1000 } });
  assert.equal(r.response.result?.content?.[0]?.text, 'slow_compute old finished after 0 s', JSON.stringify(r.response));
  const g = await call(gw.url, old, 'tasks/get', { taskId }).catch((e) => ({ error: e }));
  assert.equal(g.response?.error?.code, -32601, JSON.stringify(g.response || String(g.error)));
});

test("a task's call outlives limits.maxRequestMs (the cap of calls a client waits on); its TTL bounds it instead", async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { limits: { requestTimeoutMs: 1000, maxRequestMs: 1000 } } },
  });
  const a = await connect(gw.url);
  t.defer(() => a.close());
  await a.client.listTools();
  // the same call made plainly is cut at the cap
  const plain = await a.client.callTool({ name: 'slow_compute', arguments: { seconds: 3, label: 'plain' } }).catch((e) => ({ error: e }));
  const said = plain.error ? plain.error.message : textOf(plain);
  assert.match(said, /did not (finish|answer) within 1000 ms/, said);
  // as a task it runs to its end
  const taskId = await startTask(a.client, 'slow_compute', { seconds: 3, label: 'long' });
  const res = await a.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema);
  assert.equal(textOf(res), 'slow_compute long finished after 3 s');
  assert.equal((await a.client.experimental.tasks.getTask(taskId)).status, 'completed');
});

test('2025-11-25: the session that created a task hears notifications/tasks/status on its GET stream', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const seen = [];
  const c = await connect(gw.url, {
    setup(client) {
      client.fallbackNotificationHandler = async (n) => {
        if (n.method === 'notifications/tasks/status') seen.push(n.params);
      };
    },
  });
  t.defer(() => c.close());
  await c.client.listTools();
  const taskId = await startTask(c.client, 'slow_compute', { seconds: 1, label: 'heard' });
  await waitFor(() => seen.some((p) => p.taskId === taskId && p.status === 'completed'), {
    timeout: scaled(8000),
    what: 'a completed status notification',
  });
  const last = seen.filter((p) => p.taskId === taskId).pop();
  assert.equal(typeof last.ttl, 'number');
  assert.ok(last.lastUpdatedAt >= last.createdAt);
});

test('2025-11-25 with 2 replicas sharing sessions: a task made through one replica is heard on the GET stream the other serves', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(), config: { mcpServers: { test: testserver() } } });
  await waitStore([a, b], true);
  const s = await initSession(a.url, { protocolVersion: '2025-11-25' });
  const get = await request(b.url, { method: 'GET', headers: sessionHeaders(s), timeout: scaled(60000) });
  assert.equal(get.status, 200);
  const seen = [];
  (async () => {
    for (;;) {
      const ev = await get.next(3600000).catch(() => null);
      if (!ev) return;
      const m = eventJson(ev);
      if (m) seen.push(m);
    }
  })();
  t.defer(() => get.close());
  await sleep(scaled(300)); // b's follower catches up with the store
  const r = await call(a.url, s, 'tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'across' }, task: { ttl: 60000 } });
  const taskId = r.response.result?.task?.taskId;
  assert.ok(taskId, JSON.stringify(r.response));
  const statuses = () => seen.filter((m) => m.method === 'notifications/tasks/status' && m.params?.taskId === taskId).map((m) => m.params.status);
  await waitFor(() => statuses().includes('completed'), { timeout: scaled(10000), what: `completed on b's GET stream (heard: ${JSON.stringify(statuses())})` });
  // And the result is read through b.
  const res = await call(b.url, s, 'tasks/result', { taskId });
  assert.match(JSON.stringify(res.response.result), /across/);
});

test('notifications/cancelled while a call waits for its tool list ends the call: no task, nothing reaches the upstream', async (t) => {
  // The upstream's answers after its first one (initialize) come 2 s late: the tool list a
  // task-augmented call needs (taskSupport) is still on its way when the client cancels.
  const rec = recordFile(t);
  const gw = await t.gateway({
    config: {
      mcpServers: {
        test: {
          command: '/bin/sh',
          args: ['-c', 'tee -a "$MG_REC" | "$MG_TS" | { IFS= read -r l; printf "%s\\n" "$l"; sleep 2; exec cat; }'],
          env: { MG_REC: rec, MG_TS: process.env.MG_TESTSERVER || testserver().command },
        },
      },
    },
  });
  const sess = await initSession(gw.url);
  const req = rpc('tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'never' }, task: { ttl: 60000 } });
  const pending = request(gw.url, { headers: sessionHeaders(sess), body: req, timeout: scaled(15000) });
  await waitFor(() => /"method":"tools\/list"/.test(readRecord(rec)), { what: 'the tool list fetch' });
  const n = await request(gw.url, { headers: sessionHeaders(sess), body: notification('notifications/cancelled', { requestId: req.id }) });
  assert.equal(n.status, 202);
  const r = await pending;
  const body = await r.text();
  assert.ok(!body.includes('"taskId"'), `the cancelled call became a task: ${body}`);
  // Once a later call is answered, the list has come (the upstream answers in order): the
  // cancelled call is gone, the upstream never got it.
  const after = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: 'after' } }, { timeout: scaled(10000) });
  assert.equal(after.response.result?.content?.[0]?.text, 'after', JSON.stringify(after.response));
  assert.ok(!/"label":"never"/.test(readRecord(rec)), 'the cancelled call reached the upstream');
  const m = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(m, /^mcpgate_tasks_created_total 0$/m);
});

test('SIGTERM: a waiting tasks/result is answered at once; a running task does not keep the gateway past its grace period', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { limits: { shutdownGraceMs: 1500 } } },
  });
  const c = await connect(gw.url);
  await c.client.listTools();
  const taskId = await startTask(c.client, 'slow_compute', { seconds: 60, label: 'drained' });
  const sess = await initSession(gw.url);
  const waiting = call(gw.url, sess, 'tasks/result', { taskId }, { timeout: scaled(10000) });
  await sleep(300); // the tasks/result is waiting
  const t0 = Date.now();
  const stopped = gw.stop({ timeout: scaled(10000) });
  const r = await waiting;
  assert.ok(Date.now() - t0 < scaled(1000), 'tasks/result waited for the grace period');
  assert.equal(r.response.error?.code, -32603);
  assert.match(r.response.error.message, /shutting down; ask again/);
  const exit = await stopped;
  assert.equal(exit.code, 0, JSON.stringify(exit));
  await c.client.close().catch(() => {});
});

test('another principal gets not-found for the task and cannot cancel it; its owner can, and the upstream hears it', async (t) => {
  // Same tenant (one shared upstream), two principals.
  const alice = tokenNew(['--tenant', 'acme', '--name', 'alice']);
  const bob = tokenNew(['--tenant', 'acme', '--name', 'bob']);
  const rec = recordFile(t);
  const gw = await t.gateway({
    config: { mcpServers: { test: recordedTestserver(rec) }, gateway: { auth: { tokens: [alice.entry, bob.entry] } } },
  });
  const a = await connect(gw.url, { requestInit: { headers: bearer(alice.token) } });
  t.defer(() => a.close());
  const b = await connect(gw.url, { requestInit: { headers: bearer(bob.token) } });
  t.defer(() => b.close());
  await a.client.listTools();
  const taskId = await startTask(a.client, 'slow_compute', { seconds: 60, label: 'alices' });
  for (const op of [() => b.client.experimental.tasks.getTask(taskId), () => b.client.experimental.tasks.cancelTask(taskId)])
    await assert.rejects(op(), (e) => e.code === -32602 && /unknown task/.test(e.message));
  // Same through the 2026-07-28 wire.
  const g = await modern(gw.url, 'tasks/get', { taskId }, { headers: bearer(bob.token) });
  assert.equal(g.response.error?.code, -32602);
  assert.equal((await a.client.experimental.tasks.getTask(taskId)).status, 'working', "bob's attempts changed alice's task");
  const c = await a.client.experimental.tasks.cancelTask(taskId);
  assert.equal(c.status, 'cancelled');
  await waitFor(() => /"method":"notifications\/cancelled"/.test(readRecord(rec)), {
    what: 'notifications/cancelled to reach the upstream',
  });
  assert.equal((await a.client.experimental.tasks.getTask(taskId)).status, 'cancelled');
  // 2025-11-25: cancelling a finished task is -32602.
  await assert.rejects(a.client.experimental.tasks.cancelTask(taskId), (e) => e.code === -32602);
  // The upstream serves the next call.
  assert.equal(textOf(await a.client.callTool({ name: 'echo', arguments: { message: 'after' } })), 'after');
});

test('limits: unfinished tasks per principal (429 + Retry-After), results over maxResultBytes fail cleanly', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { tasks: { maxPerPrincipal: 2, maxResultBytes: 2048 } } },
  });
  const ids = [];
  for (let i = 0; i < 2; i++) {
    const r = await modern(gw.url, 'tools/call', { name: 'slow_compute', arguments: { seconds: 60, label: `hold${i}` } });
    assert.equal(r.response.result?.resultType, 'task', JSON.stringify(r.response));
    ids.push(r.response.result.taskId);
  }
  const third = await modern(gw.url, 'tools/call', { name: 'slow_compute', arguments: { seconds: 60, label: 'over' } });
  assert.equal(third.status, 429);
  assert.ok(Number(third.headers['retry-after']) >= 1, 'Retry-After on the refusal');
  assert.equal(third.response.error.code, -32029);
  assert.match(third.response.error.message, /too many unfinished tasks.*maxPerPrincipal/);
  // Cancelling one frees a slot.
  const ack = await modern(gw.url, 'tasks/cancel', { taskId: ids[0] });
  assert.deepEqual(Object.keys(ack.response.result).filter((k) => k !== '_meta'), ['resultType']);
  const big = await modern(gw.url, 'tools/call', { name: 'slow_compute', arguments: { seconds: 0, label: 'x'.repeat(5000) } });
  const bigId = big.response.result.taskId;
  assert.ok(bigId, JSON.stringify(big.response));
  let got;
  await waitFor(
    async () => {
      got = (await modern(gw.url, 'tasks/get', { taskId: bigId })).response.result;
      return got.status !== 'working';
    },
    { what: 'the oversized task to end' },
  );
  assert.equal(got.status, 'failed');
  assert.equal(got.result, undefined);
  assert.match(got.error.message, /over the gateway's limit for task results.*maxResultBytes/);
  assert.equal(got.error.data.maxResultBytes, 2048);
  await modern(gw.url, 'tasks/cancel', { taskId: ids[1] });
  const m = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(m, /^mcpgate_tasks_created_total 3$/m);
  assert.match(m, /^mcpgate_tasks_refused_total 1$/m);
  assert.match(m, /^mcpgate_tasks_ended_total\{status="failed"\} 1$/m);
  assert.match(m, /^mcpgate_tasks_ended_total\{status="cancelled"\} 2$/m);
  assert.match(m, /^mcpgate_tasks_running 0$/m);
});

test('TTL: a task is gone after gateway.tasks.ttlMs, and a call still running then is cancelled upstream', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() }, gateway: { tasks: { ttlMs: 1000 } } } });
  const r = await modern(gw.url, 'tools/call', { name: 'slow_compute', arguments: { seconds: 60, label: 'expires' } });
  assert.equal(r.response.result.ttlMs, 1000);
  const id = r.response.result.taskId;
  assert.equal((await modern(gw.url, 'tasks/get', { taskId: id })).response.result.status, 'working');
  const inflight = async () => Object.values((await gw.readyz()).json?.upstreams || {}).reduce((n, u) => n + (u?.inflight || 0), 0);
  await waitFor(async () => (await inflight()) === 0, { timeout: scaled(5000), what: 'the expired task\'s call to be cancelled' });
  assert.equal((await modern(gw.url, 'tasks/get', { taskId: id })).response.error?.code, -32602);
});

test('2026-07-28: discover names the extension; a required tool without it is -32021; with it, a tool error completes the task', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const r = await modern(gw.url, 'tools/call', { name: 'failing_job', arguments: {} }, { caps: {} });
  assert.equal(r.status, 400);
  assert.equal(r.response.error.code, -32021);
  assert.deepEqual(r.response.error.data.requiredCapabilities, { extensions: { [EXT]: {} } });
  const d = await modern(gw.url, 'server/discover');
  assert.ok(d.response.result.capabilities.extensions[EXT]);
  assert.equal(d.response.result.capabilities.tasks, undefined);
  const job = await modern(gw.url, 'tools/call', { name: 'failing_job', arguments: {} });
  const id = job.response.result.taskId;
  let got;
  await waitFor(async () => (got = (await modern(gw.url, 'tasks/get', { taskId: id })).response.result).status === 'completed', {
    what: 'failing_job to complete',
  });
  assert.equal(got.result.isError, true, 'a tool error is a completed task with isError');
});

test('2026-07-28: subscriptions/listen with taskIds hears notifications/tasks for its own tasks only, input_required to completed', async (t) => {
  const alice = tokenNew(['--tenant', 'acme', '--name', 'alice']);
  const bob = tokenNew(['--tenant', 'acme', '--name', 'bob']);
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { auth: { tokens: [alice.entry, bob.entry] } } },
  });
  const asA = { headers: bearer(alice.token) };
  const asB = { headers: bearer(bob.token) };
  const withInput = { elicitation: {}, extensions: { [EXT]: {} } };
  const slow = (await modern(gw.url, 'tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'heard' } }, asA)).response.result;
  const ask = (await modern(gw.url, 'tools/call', { name: 'confirm_delete', arguments: { filename: 'l.txt' } }, { ...asA, caps: withInput })).response.result;
  const bobs = (await modern(gw.url, 'tools/call', { name: 'slow_compute', arguments: { seconds: 1, label: 'bobs' } }, asB)).response.result;
  for (const r of [slow, ask, bobs]) assert.equal(r?.resultType, 'task', JSON.stringify(r));
  // Without the extension the request is refused, as the extension says.
  const noExt = await listen(gw.url, [slow.taskId], { caps: {}, ...asA });
  assert.equal(noExt.status, 400);
  assert.equal(noExt.error.code, -32021);
  assert.deepEqual(noExt.error.data.requiredCapabilities, { extensions: { [EXT]: {} } });
  // Bob's id, an unknown one and a malformed one are left out of the ack: only alice's are watched.
  const l = await listen(gw.url, [slow.taskId, bobs.taskId, 'f'.repeat(32), 'nope', ask.taskId, slow.taskId], asA);
  t.defer(() => l.close());
  assert.equal(l.ack.method, 'notifications/subscriptions/acknowledged');
  assert.equal(l.ack.params._meta['io.modelcontextprotocol/subscriptionId'], l.subId);
  assert.deepEqual(l.ack.params.notifications.taskIds.sort(), [slow.taskId, ask.taskId].sort());
  // The current state right after the ack, then each change: the DetailedTask, with the subscription id.
  await waitFor(() => l.tasks(ask.taskId).some((p) => p.status === 'input_required'), { what: 'input_required on the stream' });
  const need = l.tasks(ask.taskId).find((p) => p.status === 'input_required');
  const key = Object.keys(need.inputRequests)[0];
  assert.equal(need.inputRequests[key].method, 'elicitation/create');
  assert.equal(need._meta['io.modelcontextprotocol/subscriptionId'], l.subId);
  await modern(gw.url, 'tasks/update', { taskId: ask.taskId, inputResponses: { [key]: { action: 'accept', content: { confirm: true } } } }, asA);
  await waitFor(() => l.tasks(ask.taskId).some((p) => p.status === 'completed'), { what: 'the answered task to be heard completed' });
  await waitFor(() => l.tasks(slow.taskId).some((p) => p.status === 'completed'), { what: 'the slow task to be heard completed' });
  const done = l.tasks(slow.taskId).find((p) => p.status === 'completed');
  assert.equal(done.result.content[0].text, 'slow_compute heard finished after 1 s');
  assert.equal(typeof done.ttlMs, 'number');
  assert.ok(done.lastUpdatedAt >= done.createdAt);
  // Each state once; a finished task is not heard again; no progress or log messages on the stream.
  const states = l.tasks(slow.taskId).map((p) => p.status);
  assert.deepEqual(states, [...new Set(states)], JSON.stringify(states));
  assert.equal(l.tasks(bobs.taskId).length, 0, "another principal's task was heard");
  assert.ok(l.got.every((m) => m.method !== 'notifications/progress' && m.method !== 'notifications/message'));
  // A task that ended before anyone listened: its final state right after the ack.
  const late = await listen(gw.url, [slow.taskId], asA);
  t.defer(() => late.close());
  await waitFor(() => late.tasks(slow.taskId).length === 1, { what: 'the finished task\'s state' });
  assert.equal(late.tasks(slow.taskId)[0].status, 'completed');
  // Bob listening to alice's task gets an ack without it, and hears nothing.
  const spy = await listen(gw.url, [ask.taskId], asB);
  t.defer(() => spy.close());
  assert.deepEqual(spy.ack.params.notifications.taskIds, []);
  await sleep(300);
  assert.equal(spy.got.length, 1);
});

test("server-everything: simulate-research-query (taskSupport required) through the gateway, for every client", async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { everything: everythingServer() } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const tools = (await c.client.listTools()).tools;
  assert.equal(tools.find((x) => x.name === 'simulate-research-query')?.execution?.taskSupport, 'required');
  // Three clients at once (each research run takes ~4 s upstream).
  // The SDK's task API: a gateway task; the upstream runs its own task behind it.
  const viaSdk = (async () => {
    const taskId = await startTask(c.client, 'simulate-research-query', { topic: 'gateways' });
    return c.client.experimental.tasks.getTaskResult(taskId, CallToolResultSchema, { timeout: scaled(30000) });
  })();
  // A session client that does not use tasks (raw: the SDK refuses client-side): the gateway
  // bridges (the upstream runs its task, the client gets a plain answer).
  const viaSession = (async () => {
    const sess = await initSession(gw.url);
    return call(gw.url, sess, 'tools/call', { name: 'simulate-research-query', arguments: { topic: 'bridged' } }, {
      timeout: scaled(30000),
    });
  })();
  // 2026-07-28 with the extension: CreateTaskResult, then tasks/get to completed.
  const viaModern = (async () => {
    const m = await modern(gw.url, 'tools/call', { name: 'simulate-research-query', arguments: { topic: 'modern' } });
    const id = m.response.result?.taskId;
    assert.ok(id, JSON.stringify(m.response));
    let got;
    const messages = new Set();
    await waitFor(
      async () => {
        got = (await modern(gw.url, 'tasks/get', { taskId: id })).response.result;
        if (got.statusMessage) messages.add(got.statusMessage);
        return got.status !== 'working';
      },
      { timeout: scaled(30000), interval: 250, what: 'the research task to end' },
    );
    // The upstream's own task status (notifications/tasks/status) shows through.
    assert.ok([...messages].some((m) => /\.\.\.$/.test(m)), `no upstream stage in ${JSON.stringify([...messages])}`);
    return got;
  })();
  const [res, plain, got] = await Promise.all([viaSdk, viaSession, viaModern]);
  assert.match(textOf(res), /Research Report: gateways/);
  assert.match(plain.response.result?.content?.[0]?.text || JSON.stringify(plain.response), /Research Report: bridged/);
  assert.equal(got.status, 'completed', JSON.stringify(got));
  assert.match(got.result.content[0].text, /Research Report: modern/);
  assert.equal(got.result._meta?.['io.modelcontextprotocol/related-task'], undefined, "the upstream's task id leaked");
});

test("server-everything: cancelling a bridged call cancels the upstream's own task too", async (t) => {
  const rec = recordFile(t);
  const ev = everythingServer();
  const gw = await t.gateway({
    config: {
      mcpServers: {
        everything: {
          command: '/bin/sh',
          args: ['-c', 'tee -a "$MG_REC" | "$MG_NODE" "$MG_EV" stdio'],
          env: { MG_REC: rec, MG_NODE: ev.command, MG_EV: ev.args[0] },
        },
      },
    },
  });
  const sess = await initSession(gw.url);
  await call(gw.url, sess, 'tools/list', {}, { timeout: scaled(20000) }); // the gateway learns taskSupport
  const req = rpc('tools/call', { name: 'simulate-research-query', arguments: { topic: 'cancelled' } });
  const pending = request(gw.url, { headers: sessionHeaders(sess), body: req, timeout: scaled(20000) });
  await waitFor(() => /"method":"tasks\/result"/.test(readRecord(rec)), { timeout: scaled(10000), what: 'the bridged upstream task' });
  const n = await request(gw.url, { headers: sessionHeaders(sess), body: notification('notifications/cancelled', { requestId: req.id }) });
  assert.equal(n.status, 202);
  await waitFor(() => /"method":"tasks\/cancel"/.test(readRecord(rec)), { what: "tasks/cancel for the upstream's task" });
  // (a separate write to the upstream's stdin, which tee records separately: waited for too)
  await waitFor(() => /"method":"notifications\/cancelled"/.test(readRecord(rec)), { what: 'notifications/cancelled for its request' });
  await (await pending).text();
});

test('3 replicas + Redis: a task is read, answered and cancelled on any replica; its owner SIGKILLed, it ends failed with the reason everywhere', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const tok = tokenNew(['--tenant', 'acme', '--name', 'replicas']);
  const gws = await startReplicas(t, 3, {
    redisUrl: redis.url(),
    config: { mcpServers: { test: testserver() }, gateway: { logLevel: 'warn', auth: { tokens: [tok.entry] } } },
  });
  await waitStore(gws, true);
  const [a, b, c] = gws;
  const auth = { headers: bearer(tok.token) };
  const ask = (g, method, params, caps) => modern(g.url, method, params, { ...auth, ...(caps ? { caps } : {}) });
  // Created on a, read on b and c.
  const made = await ask(a, 'tools/call', { name: 'slow_compute', arguments: { seconds: 60, label: 'owned-by-a' } });
  const id = made.response.result.taskId;
  assert.ok(id, JSON.stringify(made.response));
  for (const g of [b, c]) assert.equal((await ask(g, 'tasks/get', { taskId: id })).response.result.status, 'working');
  // Input asked by the call on c, answered through b (the owner's inbox).
  const withInput = { elicitation: {}, extensions: { [EXT]: {} } };
  const q = await ask(c, 'tools/call', { name: 'confirm_delete', arguments: { filename: 'x.txt' } }, withInput);
  const idQ = q.response.result.taskId;
  // A listener on b hears the task running on c (broadcast "ts", read from the store on b).
  const heard = await listen(b.url, [idQ, id], auth);
  t.defer(() => heard.close());
  assert.deepEqual(heard.ack.params.notifications.taskIds.sort(), [idQ, id].sort());
  let st;
  await waitFor(async () => (st = (await ask(b, 'tasks/get', { taskId: idQ })).response.result).status === 'input_required', {
    what: 'the task on c to ask for input',
  });
  const key = Object.keys(st.inputRequests)[0];
  assert.equal(st.inputRequests[key].method, 'elicitation/create');
  await ask(b, 'tasks/update', { taskId: idQ, inputResponses: { [key]: { action: 'accept', content: { confirm: true } } } });
  await waitFor(async () => (st = (await ask(a, 'tasks/get', { taskId: idQ })).response.result).status === 'completed', {
    what: 'the answered task to complete',
  });
  assert.match(st.result.content[0].text, /x\.txt/);
  await waitFor(() => heard.tasks(idQ).some((p) => p.status === 'completed'), { what: "b's listener to hear c's task complete" });
  assert.ok(heard.tasks(idQ).some((p) => p.status === 'input_required'), JSON.stringify(heard.tasks(idQ)));
  // Cancelled on b: the call on c stops (its upstream's inflight drops), a reports cancelled.
  const onC = await ask(c, 'tools/call', { name: 'slow_compute', arguments: { seconds: 60, label: 'owned-by-c' } });
  const idC = onC.response.result.taskId;
  const inflight = async (g) => Object.values((await g.readyz()).json?.upstreams || {}).reduce((n, u) => n + (u?.inflight || 0), 0);
  await waitFor(async () => (await inflight(c)) === 1, { what: 'the call on c' });
  await ask(b, 'tasks/cancel', { taskId: idC });
  await waitFor(async () => (await inflight(c)) === 0, { what: 'the cancellation to reach c and its upstream' });
  assert.equal((await ask(a, 'tasks/get', { taskId: idC })).response.result.status, 'cancelled');
  // a dies: once its registry entry expires, every replica reports the task failed, with why.
  a.kill();
  let got;
  await waitFor(async () => (got = (await ask(b, 'tasks/get', { taskId: id })).response.result).status !== 'working', {
    timeout: scaled(10000),
    interval: 200,
    what: "the dead owner's task to end",
  });
  assert.equal(got.status, 'failed');
  assert.match(got.error.message, /replica running this task stopped/);
  assert.equal((await ask(c, 'tasks/get', { taskId: id })).response.result.status, 'failed');
  // b's listener hears the dead owner's task fail too (its watched tasks are read again).
  await waitFor(() => heard.tasks(id).some((p) => p.status === 'failed'), { timeout: scaled(10000), what: "the dead owner's task to be heard failed" });
  assert.match(heard.tasks(id).find((p) => p.status === 'failed').error.message, /replica running this task stopped/);
  // The store holds the record, never the token.
  const rec = await redisCmd(redis.port, ['GET', `mcpgate:t:${id}`]);
  assert.ok(typeof rec === 'string' && rec.includes(id), `no record for the task: ${rec}`);
  for (const k of [id, idQ, idC]) {
    const v = String(await redisCmd(redis.port, ['GET', `mcpgate:t:${k}`]));
    assert.ok(!v.includes(tok.token) && !v.includes(tok.token.slice(4)), 'a task record contains the token');
  }
});

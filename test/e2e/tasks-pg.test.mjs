// Tasks on PostgreSQL (docs/tasks.md, "On several replicas"): the 3-replica case of tasks.test.mjs
// with the session store on a real postgres (lib/postgres.mjs) instead of Redis. The task records
// live in mcpgate_tasks: a task made on one replica is read and cancelled on the others, the
// per-principal limit counts across replicas, and a task whose owner replica is SIGKILLed ends
// `failed` with the reason on every replica. The table holds no token.
import assert from 'node:assert/strict';
import { bearer, tokenNew } from './lib/auth.mjs';
import { startReplicas, waitStore } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { scaled, test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, request, rpc } from './lib/http.mjs';
import { requirePostgres, startPostgres } from './lib/postgres.mjs';

const V = '2026-07-28';
const EXT = 'io.modelcontextprotocol/tasks';

// One 2026-07-28 request with the tasks extension declared.
async function modern(url, method, params, headers) {
  const body = rpc(method, {
    ...params,
    _meta: {
      'io.modelcontextprotocol/protocolVersion': V,
      'io.modelcontextprotocol/clientCapabilities': { extensions: { [EXT]: {} } },
      'io.modelcontextprotocol/clientInfo': { name: 'e2e-tasks-pg', version: '1' },
    },
  });
  const h = { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': method, ...headers };
  if (method === 'tools/call') h['Mcp-Name'] = params.name;
  if (method.startsWith('tasks/')) h['Mcp-Name'] = params.taskId;
  const r = await request(url, { headers: h, body });
  const msgs = await r.messages({ timeout: 10000 });
  return { status: r.status, headers: r.headers, response: msgs.find((m) => m && m.id === body.id) };
}

test('3 replicas + PostgreSQL: a task is read and cancelled on any replica, counted across replicas; its owner SIGKILLed, it ends failed everywhere', async (t) => {
  requirePostgres(t);
  const pg = await startPostgres(t);
  const tok = tokenNew(['--tenant', 'acme', '--name', 'tasks-pg']);
  const gws = await startReplicas(t, 3, {
    redisUrl: pg.url(),
    config: {
      mcpServers: { test: testserver() },
      gateway: { logLevel: 'warn', auth: { tokens: [tok.entry] }, tasks: { maxPerPrincipal: 2 } },
    },
  });
  await waitStore(gws, true);
  const [a, b, c] = gws;
  const ask = (g, method, params) => modern(g.url, method, params, bearer(tok.token));
  const slow = (g, label, seconds = 60) => ask(g, 'tools/call', { name: 'slow_compute', arguments: { seconds, label } });

  // Created on a, read on b and c.
  const made = await slow(a, 'owned-by-a');
  const id = made.response?.result?.taskId;
  assert.ok(id, JSON.stringify(made.response));
  for (const g of [b, c]) assert.equal((await ask(g, 'tasks/get', { taskId: id })).response.result.status, 'working');

  // A second on c: the principal is at its limit of 2 on every replica.
  const onC = await slow(c, 'owned-by-c');
  const idC = onC.response?.result?.taskId;
  assert.ok(idC, JSON.stringify(onC.response));
  const third = await slow(b, 'one-too-many');
  assert.equal(third.status, 429, JSON.stringify(third.response));
  assert.ok(Number(third.headers['retry-after']) >= 1);
  assert.equal(third.response.error.code, -32029);

  // Cancelled on b: the call on c stops (its upstream's inflight drops), a reports cancelled, the slot is free.
  const inflight = async (g) => Object.values((await g.readyz()).json?.upstreams || {}).reduce((n, u) => n + (u?.inflight || 0), 0);
  await waitFor(async () => (await inflight(c)) === 1, { what: 'the call on c' });
  await ask(b, 'tasks/cancel', { taskId: idC });
  await waitFor(async () => (await inflight(c)) === 0, { what: 'the cancellation to reach c and its upstream' });
  assert.equal((await ask(a, 'tasks/get', { taskId: idC })).response.result.status, 'cancelled');
  const again = await slow(b, 'after-cancel', 1); // short: b must not wait for it when it stops
  assert.ok(again.response?.result?.taskId, JSON.stringify(again.response));

  // a dies: once its registry row expires, every replica reports its task failed, with why.
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
  assert.equal(await pg.sql(`SELECT status FROM mcpgate_tasks WHERE k = 'mcpgate:t:${id}'`), 'failed');

  // The table holds the records and the principal's key, never the token.
  const rows = await pg.sql('SELECT k, pk, rec FROM mcpgate_tasks');
  for (const k of [id, idC]) assert.ok(rows.includes(k), `no record for ${k}: ${rows}`);
  assert.ok(!rows.includes(tok.token) && !rows.includes(tok.token.slice(4)), 'a task record contains the token');
});

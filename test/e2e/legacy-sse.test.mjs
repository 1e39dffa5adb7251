// The 2024-11-05 HTTP+SSE transport (gateway.legacySse): GET /sse + POST /messages?sessionId=, through
// the same phases as /mcp. The official SDK's SSEClientTransport against it; auth and session
// binding; disabled -> 404 that says how to enable it; hostile inputs; cleanup when the stream
// ends; with two replicas sharing Redis: a session lives on the replica that holds its stream.
import assert from 'node:assert/strict';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { SSEClientTransport } from '@modelcontextprotocol/sdk/client/sse.js';
import {
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { bearer, tokenNew } from './lib/auth.mjs';
import { textOf } from './lib/client.mjs';
import { requireBinaries, startRedis, startReplicas } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { test, waitFor } from './lib/harness.mjs';
import { eventJson, request, rpc } from './lib/http.mjs';

const CONFIG = { mcpServers: { test: testserver() }, gateway: { legacySse: true } };

// Connects the official SDK client over SSEClientTransport to base + '/sse'.
async function sseConnect(t, base, { headers, capabilities = {}, setup, name = 'legacy-e2e' } = {}) {
  const client = new Client({ name, version: '0.9.1' }, { capabilities });
  setup?.(client);
  const transport = new SSEClientTransport(new URL(`${base}/sse`), {
    requestInit: headers ? { headers } : undefined,
  });
  await client.connect(transport);
  t.defer(() => client.close().catch(() => {}));
  return { client, transport };
}

// A raw GET /sse: returns the response and the endpoint URL its first event names.
async function openRaw(base, headers = {}) {
  const r = await request(`${base}/sse`, { method: 'GET', headers: { Accept: 'text/event-stream', ...headers } });
  assert.equal(r.status, 200, `GET /sse: ${r.status}`);
  const ev = await r.next(5000);
  assert.equal(ev?.event, 'endpoint', `first event must be endpoint: ${JSON.stringify(ev)}`);
  assert.match(ev.data, /^\/messages\?sessionId=[A-Za-z0-9_-]{43}$/);
  return { r, endpoint: `${base}${ev.data}`, sessionId: ev.data.split('=')[1] };
}

const post = (url, body, headers = {}) => request(url, { headers, body });

async function inflight(gw) {
  const j = (await gw.readyz()).json;
  const ups = Array.isArray(j?.upstreams) ? j.upstreams : Object.values(j?.upstreams || {});
  return ups.reduce((n, u) => n + (Number(u?.inflight) || 0), 0);
}

test('SDK SSEClientTransport: initialize, tools/list, tools/call, sampling, elicitation, logs, list_changed', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const sampled = [];
  const elicited = [];
  const logs = [];
  let changed = 0;
  const { client, transport } = await sseConnect(t, gw.base, {
    capabilities: { sampling: {}, elicitation: {} },
    setup: (cl) => {
      cl.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        sampled.push(req.params);
        return { role: 'assistant', content: { type: 'text', text: 'sampled-over-sse' }, model: 'm', stopReason: 'endTurn' };
      });
      cl.setRequestHandler(ElicitRequestSchema, async (req) => {
        elicited.push(req.params);
        return { action: 'accept', content: { username: 'legacy-user', email: 'l@example.com' } };
      });
      cl.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params));
      cl.setNotificationHandler(ToolListChangedNotificationSchema, () => changed++);
    },
  });
  assert.ok(client.getServerCapabilities()?.tools, 'tools capability');
  assert.ok(client.getServerVersion()?.name, 'serverInfo');
  assert.deepEqual(await client.ping(), {});
  const { tools } = await client.listTools();
  assert.ok(tools.some((x) => x.name === 'echo'), `echo missing: ${tools.map((x) => x.name)}`);
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'over legacy sse' } })), 'over legacy sse');
  // Server -> client requests, answered by POST /messages, routed back to the child that asked.
  const s = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'legacy?' } });
  assert.equal(sampled.length, 1, 'one sampling request reached the client');
  assert.match(JSON.stringify(s), /sampled-over-sse/);
  const e = await client.callTool({ name: 'test_elicitation', arguments: { message: 'who?' } });
  assert.equal(elicited.length, 1);
  assert.equal(elicited[0].message, 'who?');
  assert.ok(!e.isError && JSON.stringify(e.content).includes('legacy-user'), JSON.stringify(e));
  // Notifications unrelated to a request go to the same stream.
  assert.deepEqual(await client.setLoggingLevel('debug'), {});
  await client.callTool({ name: 'trigger_list_changed', arguments: {} }).catch(() => {});
  await waitFor(() => changed > 0, { timeout: 3000, what: 'tools/list_changed on the /sse stream' });
  // Concurrent calls on one session: each answer reaches its request.
  const many = await Promise.all(
    Array.from({ length: 8 }, (_, i) => client.callTool({ name: 'echo', arguments: { message: `m${i}` } })),
  );
  assert.deepEqual(many.map(textOf), Array.from({ length: 8 }, (_, i) => `m${i}`));
  // One warn line per session names the client still on the deprecated transport.
  const line = await gw.waitLog((l) => /legacy HTTP\+SSE session/.test(l.msg || ''), { what: 'the legacy session line' });
  assert.equal(line.client, 'legacy-e2e');
  assert.equal(line.clientVersion, '0.9.1');
  assert.ok(transport, 'transport');
});

test('2024-11-05 is negotiated as asked; Deprecation and Link headers on every legacy response', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const { r, endpoint } = await openRaw(gw.base);
  t.defer(() => r.close());
  assert.match(r.headers.deprecation, /^@\d+$/, 'Deprecation header (RFC 9745) on /sse');
  assert.match(r.headers.link, /rel="deprecation"/);
  const init = rpc('initialize', { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'old', version: '1' } });
  const p = await post(endpoint, init);
  assert.equal(p.status, 202);
  assert.match(p.headers.deprecation, /^@\d+$/, 'Deprecation header on /messages');
  const ev = await r.next(5000);
  const msg = eventJson(ev);
  assert.equal(ev.event, undefined, 'JSON-RPC goes out as default "message" events');
  assert.equal(msg.id, init.id);
  assert.equal(msg.result.protocolVersion, '2024-11-05');
  // Batches did not exist in 2024-11-05.
  const b = await post(endpoint, [rpc('ping', {}), rpc('ping', {})]);
  assert.equal(b.status, 400);
  // A request before initialize on a fresh session is refused.
  const second = await openRaw(gw.base);
  t.defer(() => second.r.close());
  const early = await post(second.endpoint, rpc('tools/list', {}));
  assert.equal(early.status, 400);
  assert.match((await early.json()).error.message, /initialize first/);
});

test('auth: the bearer token is required on /sse and /messages, and a session is bound to its principal', async (t) => {
  const a = tokenNew(['--tenant', 'acme', '--name', 'a']);
  const b = tokenNew(['--tenant', 'acme', '--name', 'b']);
  const gw = await t.gateway({
    config: { ...CONFIG, gateway: { legacySse: true, auth: { tokens: [a.entry, b.entry] } } },
  });
  // No token: the SDK transport fails to start with 401; a raw GET gets the Bearer challenge.
  await assert.rejects(sseConnect(t, gw.base), /401|Unauthorized/i);
  const raw = await request(`${gw.base}/sse`, { method: 'GET', headers: { Accept: 'text/event-stream' } });
  assert.equal(raw.status, 401);
  assert.match(raw.headers['www-authenticate'] || '', /^Bearer/);
  await raw.text();
  // A token in the query string is refused, never used.
  const q = await request(`${gw.base}/sse?access_token=${a.token}`, { method: 'GET', headers: { Accept: 'text/event-stream' } });
  assert.equal(q.status, 400);
  assert.match((await q.json()).error.message, /Authorization header/);
  // With the token: the SDK works.
  const { client } = await sseConnect(t, gw.base, { headers: bearer(a.token) });
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'authed' } })), 'authed');
  // A raw session of A: B's token on A's sessionId answers like an unknown session; no token: 401.
  const s = await openRaw(gw.base, bearer(a.token));
  t.defer(() => s.r.close());
  const init = rpc('initialize', { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'x', version: '1' } });
  const stolen = await post(s.endpoint, init, bearer(b.token));
  assert.equal(stolen.status, 404);
  assert.match((await stolen.json()).error.message, /Session not found/);
  const anon = await post(s.endpoint, init);
  assert.equal(anon.status, 401);
  await anon.text();
  // Nothing was answered on A's stream for those, and A still works.
  assert.equal((await post(s.endpoint, init, bearer(a.token))).status, 202);
  const ev = eventJson(await s.r.next(5000));
  assert.equal(ev.id, init.id);
  assert.ok(ev.result, 'A initialized its own session');
  assert.ok(!gw.stderrText().includes(a.token), 'a token reached the log');
});

test('rate limits apply to legacy calls: the -32029 error arrives on the stream', async (t) => {
  const gw = await t.gateway({
    config: { ...CONFIG, gateway: { legacySse: true, rateLimits: { principal: { requests: 2, perSeconds: 3600 } } } },
  });
  const { client } = await sseConnect(t, gw.base);
  for (let i = 0; i < 2; i++) await client.callTool({ name: 'echo', arguments: { message: `ok${i}` } });
  await assert.rejects(client.callTool({ name: 'echo', arguments: { message: 'over' } }), (e) => {
    assert.equal(e.code, -32029, String(e));
    return true;
  });
  assert.ok((await client.listTools()).tools.length > 0, 'unlimited methods still work');
});

test('CORS and tenants: a browser preflight is answered before auth; another tenant cannot use a session', async (t) => {
  const APP = 'https://app.example.com';
  const a = tokenNew(['--tenant', 'acme', '--name', 'a']);
  const g = tokenNew(['--tenant', 'globex', '--name', 'g']);
  const gw = await t.gateway({
    config: {
      ...CONFIG,
      gateway: {
        legacySse: true,
        allowedOrigins: [APP],
        cors: { allowedOrigins: [APP], allowCredentials: true },
        auth: { tokens: [a.entry, g.entry] },
      },
    },
  });
  const pre = await request(`${gw.base}/messages?sessionId=x`, {
    method: 'OPTIONS',
    headers: { origin: APP, 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type, authorization' },
  });
  await pre.text();
  assert.equal(pre.status, 204);
  assert.equal(pre.headers['access-control-allow-origin'], APP);
  const s = await openRaw(gw.base, { ...bearer(a.token), origin: APP });
  t.defer(() => s.r.close());
  assert.equal(s.r.headers['access-control-allow-origin'], APP, 'the stream carries the CORS answer');
  const init = rpc('initialize', { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'x', version: '1' } });
  const other = await post(s.endpoint, init, bearer(g.token));
  assert.equal(other.status, 404, "another tenant's token on acme's session");
  await other.text();
  assert.equal((await post(s.endpoint, init, bearer(a.token))).status, 202);
  assert.ok(eventJson(await s.r.next(5000)).result);
});

test('disabled (the default): /sse and /messages answer 404 saying how to enable the legacy transport', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  for (const [method, path] of [['GET', '/sse'], ['POST', '/messages?sessionId=abc']]) {
    const r = await request(`${gw.base}${path}`, {
      method,
      headers: { Accept: 'text/event-stream' },
      body: method === 'POST' ? rpc('ping', {}) : undefined,
    });
    assert.equal(r.status, 404, `${method} ${path}`);
    const j = await r.json();
    assert.match(j.message, /legacy HTTP\+SSE transport .* is disabled/);
    assert.match(j.message, /"legacySse": true/);
    assert.match(j.message, /\/mcp/);
  }
  await assert.rejects(sseConnect(t, gw.base), /404|Non-200/i);
});

test('hostile inputs: unknown or missing sessionId, /mcp with a legacy id, oversized body, wrong methods', async (t) => {
  const gw = await t.gateway({
    config: { ...CONFIG, gateway: { legacySse: true, limits: { maxBodyBytes: 65536 } } },
  });
  const s = await openRaw(gw.base);
  t.defer(() => s.r.close());
  const ping = rpc('ping', {});
  let r = await post(`${gw.base}/messages?sessionId=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA`, ping);
  assert.equal(r.status, 404);
  assert.match((await r.json()).error.message, /open GET \/sse again/);
  r = await post(`${gw.base}/messages`, ping);
  assert.equal(r.status, 400);
  assert.match((await r.json()).error.message, /sessionId/);
  r = await post(`${gw.base}/messages?sessionId=${'x'.repeat(500)}`, ping);
  assert.equal(r.status, 400);
  await r.text();
  r = await post(`${s.endpoint}&sessionId=other`, ping);
  assert.equal(r.status, 400, 'a repeated sessionId');
  await r.text();
  r = await post(`${s.endpoint}&token=x`, ping);
  assert.equal(r.status, 400, 'an unknown (credential-like) parameter');
  await r.text();
  // The legacy session id is not a /mcp session.
  r = await request(gw.url, {
    headers: { Accept: 'application/json, text/event-stream', 'Mcp-Session-Id': s.sessionId },
    body: ping,
  });
  assert.equal(r.status, 404);
  await r.text();
  // Oversized and malformed bodies.
  r = await post(s.endpoint, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'ping', params: { pad: 'x'.repeat(100000) } }));
  assert.equal(r.status, 413);
  await r.text();
  r = await post(s.endpoint, '{"jsonrpc":"2.0",');
  assert.equal(r.status, 400);
  await r.text();
  r = await post(s.endpoint, 'x', { 'Content-Type': 'text/plain' });
  assert.equal(r.status, 415);
  await r.text();
  r = await request(`${gw.base}/sse`, { body: ping });
  assert.equal(r.status, 405);
  await r.text();
  r = await request(s.endpoint, { method: 'GET' });
  assert.equal(r.status, 405);
  await r.text();
  r = await request(`${gw.base}/sse`, { method: 'GET', headers: { Accept: 'application/json' } });
  assert.equal(r.status, 406);
  await r.text();
  // A foreign Origin is refused before anything else.
  r = await request(`${gw.base}/sse`, { method: 'GET', headers: { Accept: 'text/event-stream', Origin: 'https://evil.example' } });
  assert.equal(r.status, 403);
  await r.text();
  // The session survived all of it.
  const init = rpc('initialize', { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'x', version: '1' } });
  assert.equal((await post(s.endpoint, init)).status, 202);
  assert.equal(eventJson(await s.r.next(5000)).result.protocolVersion, '2025-06-18');
});

test('cancellation and cleanup: a cancelled call stops upstream; closing /sse ends the session and its calls', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const { client } = await sseConnect(t, gw.base);
  const ac = new AbortController();
  const p = client.callTool({ name: 'sleep', arguments: { ms: 10000 } }, undefined, { signal: ac.signal });
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the call to be in flight' });
  ac.abort('e2e cancel');
  await assert.rejects(p);
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'the cancel to reach the upstream' });
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'after' } })), 'after');

  // A raw session with a call in flight; the client drops the stream.
  const s = await openRaw(gw.base);
  const init = rpc('initialize', { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'x', version: '1' } });
  assert.equal((await post(s.endpoint, init)).status, 202);
  await s.r.next(5000);
  assert.equal((await post(s.endpoint, rpc('tools/call', { name: 'sleep', arguments: { ms: 10000 } }))).status, 202);
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the raw call to be in flight' });
  s.r.close();
  await gw.waitLog((l) => l.msg === 'session closed' && l.reason === 'legacy HTTP+SSE stream ended', {
    what: 'the session closed with its stream',
  });
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 3000, what: 'the orphaned call cancelled upstream' });
  const after = await post(s.endpoint, rpc('ping', {}));
  assert.equal(after.status, 404, 'the session is gone with its stream');
  await after.text();
});

test('two replicas sharing Redis: a legacy session lives on the replica holding its stream', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  const sampled = [];
  let changed = 0;
  const { client } = await sseConnect(t, a.base, {
    capabilities: { sampling: {} },
    setup: (cl) => {
      cl.setRequestHandler(CreateMessageRequestSchema, async () => {
        sampled.push(1);
        return { role: 'assistant', content: { type: 'text', text: 'replica-sampled' }, model: 'm' };
      });
      cl.setNotificationHandler(ToolListChangedNotificationSchema, () => changed++);
    },
  });
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'on a' } })), 'on a');
  assert.match(JSON.stringify(await client.callTool({ name: 'test_sampling', arguments: { prompt: 'p' } })), /replica-sampled/);
  assert.equal(sampled.length, 1);
  // list_changed from a shared child reaches the legacy stream through the cluster's broadcast.
  await client.callTool({ name: 'trigger_list_changed', arguments: {} }).catch(() => {});
  await waitFor(() => changed > 0, { timeout: 5000, what: 'list_changed on the legacy stream with a shared store' });
  // The same session's POST on the other replica: 404 that says why (no affinity).
  const s = await openRaw(a.base);
  t.defer(() => s.r.close());
  const elsewhere = await post(`${b.base}/messages?sessionId=${s.sessionId}`, rpc('ping', {}));
  assert.equal(elsewhere.status, 404);
  assert.match((await elsewhere.json()).error.message, /same replica/);
  // And it is not in the shared store: /mcp on either replica does not know it.
  for (const gw of [a, b]) {
    const r = await request(gw.url, {
      headers: { Accept: 'application/json, text/event-stream', 'Mcp-Session-Id': s.sessionId },
      body: rpc('ping', {}),
    });
    assert.equal(r.status, 404);
    await r.text();
  }
  // The session on A still works.
  const init = rpc('initialize', { protocolVersion: '2024-11-05', capabilities: {}, clientInfo: { name: 'x', version: '1' } });
  assert.equal((await post(s.endpoint, init)).status, 202);
  assert.ok(eventJson(await s.r.next(5000)).result);
});

// Rate limits (gateway.rateLimits), end to end: token buckets per client (no auth) or principal,
// per tenant and per tool, tools/call only by default; a limit holds exactly under concurrent load;
// a refusal is HTTP 429 with Retry-After and RateLimit headers and a JSON-RPC error the client can
// read (code -32029, data.retryAfterMs), also on the stateless 2026-07-28 path.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { bearer, tokenNew } from './lib/auth.mjs';
import { testserver } from './lib/gateway.mjs';
import { ACCEPT_BOTH, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';
import { test } from './lib/harness.mjs';

async function post(url, sess, msg, extra = {}) {
  const r = await request(url, { headers: sessionHeaders(sess, extra), body: JSON.stringify(msg) });
  const msgs = await r.messages();
  return { status: r.status, headers: r.headers, body: msgs.find((m) => m.id === msg.id) ?? msgs[0] };
}

test('rate limit: exactly `burst` tools/call succeed under concurrent load; the rest get 429 + headers', async (t) => {
  const gw = await t.gateway({
    config: {
      mcpServers: { ts: testserver() },
      gateway: { rateLimits: { principal: { requests: 7, perSeconds: 3600 } } },
    },
  });
  // 5 sessions, 60 calls fired at once: the client address (no auth) has 7 tokens.
  const sessions = await Promise.all([0, 1, 2, 3, 4].map(() => initSession(gw.url)));
  const calls = [];
  for (let i = 0; i < 60; i++) {
    calls.push(post(gw.url, sessions[i % 5], rpc('tools/call', { name: 'echo', arguments: { message: `m${i}` } })));
  }
  const results = await Promise.all(calls);
  const ok = results.filter((r) => r.status === 200 && r.body.result);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length, 7, `statuses: ${results.map((r) => r.status).join(',')}`);
  assert.equal(limited.length, 53);
  for (const r of limited) {
    assert.equal(r.body.error.code, -32029);
    assert.match(r.body.error.message, /Too Many Requests: the client rate limit \(7 per 3600 s\) is used up; retry in \d+ s/);
    assert.equal(r.body.error.data.limit, 'client');
    assert.ok(r.body.error.data.retryAfterMs > 0 && r.body.error.data.retryAfterMs <= 3600000 / 7 + 1);
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.equal(r.headers['ratelimit-policy'], '"client";q=7;w=3600');
    assert.match(r.headers.ratelimit, /^"client";r=0;t=\d+$/);
  }
  // Successful answers carry the remaining count too.
  assert.ok(ok.some((r) => /^"client";r=0;t=\d+$/.test(r.headers.ratelimit)));
  // Only tools/call is limited by default: listing still works.
  const l = await post(gw.url, sessions[0], rpc('tools/list', {}));
  assert.equal(l.status, 200);
  assert.ok(l.body.result.tools.length > 0);
  await gw.waitLog((x) => x.msg === 'rate limited' && x.limit === 'client', { what: 'the rate limit line' });
  const m = await request(`${gw.base}/metrics`, { method: 'GET' });
  assert.match(await m.text(), /mcpgate_ratelimit_rejected_total\{limit="principal"\} 53/);
}, { timeout: 30000 });

test('rate limit: the SDK client sees the 429 and its JSON-RPC error; per-tool buckets leave other tools alone', async (t) => {
  const gw = await t.gateway({
    config: {
      mcpServers: { ts: testserver() },
      gateway: { rateLimits: { tools: { 'ech?': { requests: 2, perSeconds: 600 } } } },
    },
  });
  const s = await connect(gw.url);
  t.defer(() => s.close());
  for (let i = 0; i < 2; i++) assert.equal(textOf(await s.client.callTool({ name: 'echo', arguments: { message: 'x' } })), 'x');
  let err = null;
  try {
    await s.client.callTool({ name: 'echo', arguments: { message: 'x' } });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'third echo refused');
  // The SDK reports a non-2xx answer as a transport error carrying the HTTP status and the body,
  // which is the JSON-RPC error (code -32029, data.retryAfterMs).
  assert.equal(err.code, 429);
  const body = JSON.parse(err.message.slice(err.message.indexOf('{')));
  assert.equal(body.error.code, -32029);
  assert.equal(body.error.data.limit, 'tool');
  assert.ok(body.error.data.retryAfterMs > 0);
  // Another tool has no bucket.
  for (let i = 0; i < 5; i++) assert.match(textOf(await s.client.callTool({ name: 'test_simple_text', arguments: {} })), /./);
});

test('rate limit: per principal and per tenant with auth (static tokens); a refusal spends no other bucket', async (t) => {
  const alice = tokenNew(['--tenant', 'acme', '--name', 'alice']);
  const bob = tokenNew(['--tenant', 'acme', '--name', 'bob']);
  const carol = tokenNew(['--tenant', 'other', '--name', 'carol']);
  const gw = await t.gateway({
    config: {
      mcpServers: { ts: testserver() },
      gateway: {
        auth: { tokens: [alice.entry, bob.entry, carol.entry] },
        rateLimits: { principal: { requests: 3, perSeconds: 3600 }, tenant: { requests: 4, perSeconds: 3600 } },
      },
    },
  });
  const sess = {};
  for (const [name, tok] of [['alice', alice], ['bob', bob], ['carol', carol]]) {
    sess[name] = await initSession(gw.url, { headers: bearer(tok.token) });
  }
  const callAs = (name, tok) =>
    post(gw.url, sess[name], rpc('tools/call', { name: 'echo', arguments: { message: name } }), bearer(tok.token));
  const statuses = { alice: [], bob: [], carol: [] };
  for (let i = 0; i < 4; i++) {
    statuses.alice.push((await callAs('alice', alice)).status);
    statuses.bob.push((await callAs('bob', bob)).status);
  }
  // alice: 3 principal tokens; tenant acme: 4 tokens in all -> alice 200,200 bob 200,200 then tenant is empty.
  assert.deepEqual(statuses.alice, [200, 200, 429, 429]);
  assert.deepEqual(statuses.bob, [200, 200, 429, 429]);
  const r = await callAs('alice', alice);
  assert.equal(r.body.error.data.limit, 'tenant');
  // Another tenant is not affected.
  for (let i = 0; i < 3; i++) statuses.carol.push((await callAs('carol', carol)).status);
  assert.deepEqual(statuses.carol, [200, 200, 200]);
  assert.equal((await callAs('carol', carol)).body.error.data.limit, 'principal');
}, { timeout: 30000 });

test('rate limit: the stateless 2026-07-28 path is limited the same way', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { ts: testserver() }, gateway: { rateLimits: { principal: { requests: 1, perSeconds: 600 } } } },
  });
  const modern = (id) => ({
    jsonrpc: '2.0',
    id,
    method: 'tools/call',
    params: {
      name: 'echo',
      arguments: { message: 'hi' },
      _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
    },
  });
  const send = (id) =>
    request(gw.url, {
      headers: {
        'content-type': 'application/json',
        accept: ACCEPT_BOTH,
        'mcp-protocol-version': '2026-07-28',
        'mcp-method': 'tools/call',
        'mcp-name': 'echo',
      },
      body: JSON.stringify(modern(id)),
    });
  const a = await send(1);
  const aj = await a.json();
  assert.equal(a.status, 200, JSON.stringify(aj));
  const b = await send(2);
  const bj = await b.json();
  assert.equal(b.status, 429, JSON.stringify(bj));
  assert.equal(bj.error.code, -32029);
  assert.ok(b.headers['retry-after']);
});

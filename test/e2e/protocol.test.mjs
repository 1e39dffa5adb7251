// Streamable HTTP at the wire level (raw HTTP, no SDK): status codes, headers, batches, SSE
// streams, priming events, resumption, limits.
import assert from 'node:assert/strict';
import { testserver } from './lib/gateway.mjs';
import { sleep, test } from './lib/harness.mjs';
import {
  ACCEPT_BOTH,
  call,
  deleteSession,
  eventJson,
  initSession,
  notification,
  request,
  rpc,
  sessionHeaders,
} from './lib/http.mjs';

const CONFIG = { mcpServers: { test: testserver() } };

const initBody = (protocolVersion = '2025-11-25') =>
  rpc('initialize', { protocolVersion, capabilities: {}, clientInfo: { name: 'e2e-protocol', version: '1' } });

async function gateway(t) {
  return t.gateway({ config: CONFIG });
}

async function expectStatus(r, status, what) {
  const body = await r.text();
  assert.equal(r.status, status, `${what}: expected HTTP ${status}, got ${r.status}: ${body.slice(0, 300)}`);
  return body;
}

// Responses of a (possibly batched) reply: JSON object/array or SSE events carrying either.
async function flatMessages(r, opts) {
  const msgs = await r.messages(opts);
  return msgs.flat();
}

test('healthz 200, readyz JSON', async (t) => {
  const gw = await gateway(t);
  assert.equal((await gw.healthz()).status, 200);
  const rz = await gw.readyz();
  assert.ok(rz.json && typeof rz.json === 'object', `readyz body is not JSON: ${rz.body}`);
  assert.match(rz.headers['content-type'] || '', /application\/json/);
});

test('initialize over POST returns a session id and 2025-11-25', async (t) => {
  const gw = await gateway(t);
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: initBody() });
  assert.equal(r.status, 200);
  assert.ok(r.sessionId, 'Mcp-Session-Id header missing');
  assert.match(r.sessionId, /^[\x21-\x7e]{16,}$/, 'session id: visible ASCII, unguessably long');
  const [resp] = await flatMessages(r);
  assert.equal(resp.result.protocolVersion, '2025-11-25');
  // Every supported revision is echoed; an unknown one gets a supported one back.
  for (const v of ['2025-03-26', '2025-06-18']) {
    const s = await initSession(gw.url, { protocolVersion: v });
    assert.equal(s.protocolVersion, v);
  }
  const r2 = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: initBody('2099-01-01') });
  if (r2.status === 200) {
    const [m] = await flatMessages(r2);
    assert.ok(m.error || ['2025-03-26', '2025-06-18', '2025-11-25'].includes(m.result?.protocolVersion), JSON.stringify(m));
  } else {
    await expectStatus(r2, 400, 'initialize with an unknown protocol version');
  }
});

test('bad Accept -> 406', async (t) => {
  const gw = await gateway(t);
  let r = await request(gw.url, { headers: { Accept: 'text/html' }, body: initBody() });
  await expectStatus(r, 406, 'POST with Accept: text/html');
  const s = await initSession(gw.url);
  r = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'application/json' }) });
  await expectStatus(r, 406, 'GET with Accept: application/json');
});

test('missing session id -> 400', async (t) => {
  const gw = await gateway(t);
  await initSession(gw.url);
  const r = await request(gw.url, {
    headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': '2025-11-25' },
    body: rpc('tools/list', {}),
  });
  await expectStatus(r, 400, 'tools/list without Mcp-Session-Id');
  const g = await request(gw.url, { method: 'GET', headers: { Accept: 'text/event-stream' } });
  await expectStatus(g, 400, 'GET without Mcp-Session-Id');
});

test('unknown session -> 404; DELETE ends the session -> 404 afterwards', async (t) => {
  const gw = await gateway(t);
  let r = await request(gw.url, {
    headers: sessionHeaders({ sessionId: 'e2e-no-such-session-0123456789abcdef', protocolVersion: '2025-11-25' }),
    body: rpc('tools/list', {}),
  });
  await expectStatus(r, 404, 'unknown session');
  const s = await initSession(gw.url);
  const { response } = await call(gw.url, s, 'tools/list', {});
  assert.ok(response.result?.tools?.length > 0);
  const del = await deleteSession(gw.url, s);
  assert.ok([200, 202, 204].includes(del), `DELETE: HTTP ${del}`);
  r = await request(gw.url, { headers: sessionHeaders(s), body: rpc('tools/list', {}) });
  await expectStatus(r, 404, 'request after DELETE');
  // Session ids are case-sensitive header *values*, but header *names* are not.
  const s2 = await initSession(gw.url);
  r = await request(gw.url, {
    headers: { Accept: ACCEPT_BOTH, 'mcp-session-id': s2.sessionId, 'mcp-protocol-version': '2025-11-25' },
    body: rpc('ping'),
  });
  assert.equal(r.status, 200);
  await r.text();
});

test('Origin: foreign -> 403, localhost/127.0.0.1 with the port -> allowed, absent -> allowed', async (t) => {
  const gw = await gateway(t);
  let r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, Origin: 'http://evil.example' }, body: initBody() });
  await expectStatus(r, 403, 'Origin: http://evil.example');
  r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, Origin: 'null' }, body: initBody() });
  await expectStatus(r, 403, 'Origin: null');
  for (const o of [`http://localhost:${gw.port}`, `http://127.0.0.1:${gw.port}`]) {
    r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, Origin: o }, body: initBody() });
    assert.equal(r.status, 200, `Origin ${o} must be allowed, got ${r.status}`);
    await r.text();
  }
  // Origin is checked on every method, not only on initialize.
  const s = await initSession(gw.url);
  r = await request(gw.url, { headers: sessionHeaders(s, { Origin: 'http://evil.example' }), body: rpc('tools/list', {}) });
  await expectStatus(r, 403, 'tools/list with a foreign Origin');
  r = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream', Origin: 'https://evil.example' }) });
  await expectStatus(r, 403, 'GET with a foreign Origin');
});

test('DNS rebinding: Host evil.example.com -> 4xx (what the conformance suite sends)', async (t) => {
  const gw = await gateway(t);
  const r = await request(gw.url, {
    headers: { Accept: ACCEPT_BOTH, Host: 'evil.example.com', Origin: 'http://evil.example.com' },
    body: initBody(),
  });
  const body = await r.text();
  assert.ok(r.status >= 400 && r.status < 500, `expected 4xx, got ${r.status}: ${body.slice(0, 200)}`);
  const r2 = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, Host: 'evil.example.com' }, body: initBody() });
  const b2 = await r2.text();
  assert.ok(r2.status >= 400 && r2.status < 500, `Host alone: expected 4xx, got ${r2.status}: ${b2.slice(0, 200)}`);
  const ok = await request(gw.url, {
    headers: { Accept: ACCEPT_BOTH, Host: `127.0.0.1:${gw.port}`, Origin: `http://127.0.0.1:${gw.port}` },
    body: initBody(),
  });
  assert.equal(ok.status, 200);
  await ok.text();
});

test('bad MCP-Protocol-Version -> 400', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  const r = await request(gw.url, {
    headers: sessionHeaders(s, { 'MCP-Protocol-Version': '1999-01-01' }),
    body: rpc('tools/list', {}),
  });
  await expectStatus(r, 400, 'MCP-Protocol-Version: 1999-01-01');
  // Another *supported* revision than the negotiated one is accepted: the official conformance
  // suite (server-sse-polling, server-sse-multiple-streams) sends 2025-03-26 in 2025-11-25 sessions,
  // and the SDK's server only checks that the header names a supported version.
  for (const v of ['2025-03-26', '2025-06-18']) {
    const other = await request(gw.url, {
      headers: sessionHeaders(s, { 'MCP-Protocol-Version': v }),
      body: rpc('tools/list', {}),
    });
    const body = await other.text();
    assert.equal(other.status, 200, `MCP-Protocol-Version: ${v} in a 2025-11-25 session: HTTP ${other.status}: ${body.slice(0, 200)}`);
  }
  // Missing header inside a session: falls back to the negotiated version, works.
  const { 'MCP-Protocol-Version': _, ...noVersion } = sessionHeaders(s);
  const ok = await request(gw.url, { headers: noVersion, body: rpc('tools/list', {}) });
  assert.equal(ok.status, 200, 'missing MCP-Protocol-Version must be accepted');
  await ok.text();
});

test('notification and response POSTs -> 202 with empty body', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  const r = await request(gw.url, { headers: sessionHeaders(s), body: notification('notifications/roots/list_changed') });
  const body = await expectStatus(r, 202, 'notification');
  assert.equal(body, '', '202 must have an empty body');
  // A client response to a request nobody sent is accepted (and ignored) too.
  const r2 = await request(gw.url, { headers: sessionHeaders(s), body: { jsonrpc: '2.0', id: 'e2e-unknown', result: {} } });
  assert.ok([202, 400].includes(r2.status), `response POST: HTTP ${r2.status}`);
  await r2.text();
});

test('2025-03-26 session: JSON-RPC batch returns every response', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url, { protocolVersion: '2025-03-26' });
  const a = rpc('tools/list', {});
  const b = rpc('ping');
  const c = rpc('tools/call', { name: 'echo', arguments: { message: 'in-a-batch' } });
  const r = await request(gw.url, { headers: sessionHeaders(s), body: [a, notification('notifications/roots/list_changed'), b, c] });
  assert.equal(r.status, 200);
  let msgs;
  if (r.isSSE) {
    msgs = await flatMessages(r, { until: (ev, all) => all.map(eventJson).flat().filter((m) => m?.id !== undefined && (m.result || m.error)).length >= 3 });
  } else {
    const j = await r.json();
    assert.ok(Array.isArray(j), `batch reply must be a JSON array, got ${JSON.stringify(j).slice(0, 200)}`);
    msgs = j;
  }
  const byId = Object.fromEntries(msgs.filter((m) => 'result' in m || 'error' in m).map((m) => [m.id, m]));
  assert.ok(byId[a.id]?.result?.tools, 'tools/list response');
  assert.deepEqual(byId[b.id]?.result, {}, 'ping response');
  assert.equal(byId[c.id]?.result?.content?.[0]?.text, 'in-a-batch');
  assert.equal(Object.keys(byId).length, 3, 'exactly one response per request, none for the notification');
  // A batch of notifications only -> 202.
  const n = await request(gw.url, {
    headers: sessionHeaders(s),
    body: [notification('notifications/roots/list_changed'), notification('notifications/roots/list_changed')],
  });
  await expectStatus(n, 202, 'batch of notifications');
});

test('initialize inside a batch is rejected', async (t) => {
  const gw = await gateway(t);
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: [initBody('2025-03-26')] });
  const text = await r.text();
  if (r.status === 200) {
    // Allowed shape: a JSON-RPC error for it, and no session created.
    assert.ok(!r.sessionId, 'a batched initialize must not create a session');
    assert.match(text, /"error"/, `expected an error, got ${text.slice(0, 300)}`);
  } else {
    assert.ok(r.status >= 400 && r.status < 500, `expected 4xx, got ${r.status}`);
  }
  const r2 = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: [initBody('2025-03-26'), rpc('ping')] });
  const t2 = await r2.text();
  assert.ok(!(r2.status === 200 && r2.sessionId), `initialize + ping batch created a session: ${t2.slice(0, 200)}`);
});

test('2025-06-18 and later sessions: batches are rejected', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url, { protocolVersion: '2025-06-18' });
  const r = await request(gw.url, { headers: sessionHeaders(s), body: [rpc('ping'), rpc('ping')] });
  const text = await r.text();
  if (r.status === 200) assert.match(text, /"error"/, `batch accepted in a 2025-06-18 session: ${text.slice(0, 200)}`);
  else assert.equal(r.status, 400, `expected 400, got ${r.status}`);
});

test('JSON parse error -> 400 with -32700; invalid request -> -32600', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  let r = await request(gw.url, { headers: sessionHeaders(s), body: '{"jsonrpc": "2.0", "id": 1, "method": ' });
  const body = await expectStatus(r, 400, 'truncated JSON');
  assert.equal(JSON.parse(body).error?.code, -32700, body);
  r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: 'not json at all' });
  const b2 = await expectStatus(r, 400, 'garbage without a session');
  assert.equal(JSON.parse(b2).error?.code, -32700, b2);
  r = await request(gw.url, { headers: sessionHeaders(s), body: { jsonrpc: '2.0', id: 7, method: 42 } });
  const b3 = await r.text();
  assert.ok(r.status === 400 || r.status === 200, `invalid request: HTTP ${r.status}`);
  assert.match(b3, /-32600/, `expected -32600: ${b3.slice(0, 300)}`);
});

test('body too large -> 413', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  // Larger than the 4 MiB default limit.
  const big = JSON.stringify(rpc('tools/call', { name: 'echo', arguments: { message: 'x'.repeat(5 * 1024 * 1024) } }));
  // With Expect: 100-continue the limit must be applied from Content-Length, before the body.
  const rc = await request(gw.url, { headers: sessionHeaders(s), body: big, timeout: 15000, expectContinue: true });
  await expectStatus(rc, 413, '5 MiB body with Expect: 100-continue');
  // Without it (what fetch and the SDK do) the client is still writing when the server decides:
  // the 413 must still reach it (the server reads/discards the rest or lingers before closing).
  let r;
  try {
    r = await request(gw.url, { headers: sessionHeaders(s), body: big, timeout: 15000 });
  } catch (e) {
    assert.fail(`a client that sends the whole body never sees the 413 (connection reset: ${e.message})`);
  }
  await expectStatus(r, 413, '5 MiB body');
  // The gateway is fine afterwards.
  const { response } = await call(gw.url, s, 'ping');
  assert.deepEqual(response.result, {});
});

test('GET stream receives list_changed from trigger_list_changed', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  const get = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream' }) });
  assert.equal(get.status, 200, `GET: HTTP ${get.status}`);
  assert.ok(get.isSSE, `GET content-type ${get.contentType}`);
  t.defer(() => get.close());
  await sleep(100); // let the stream register before the notification is produced
  const { response } = await call(gw.url, s, 'tools/call', { name: 'trigger_list_changed', arguments: {} });
  assert.ok(!response.error && !response.result?.isError, JSON.stringify(response));
  let found = null;
  const seen = [];
  const end = Date.now() + 5000;
  while (!found && Date.now() < end) {
    const ev = await get.next(end - Date.now());
    if (!ev) break;
    seen.push(ev);
    const m = eventJson(ev);
    if (m?.method?.endsWith('/list_changed')) found = m;
    if (m && 'id' in m && ('result' in m || 'error' in m)) assert.fail(`a response arrived on the GET stream: ${ev.data}`);
  }
  assert.ok(found, `no list_changed on the GET stream; events: ${JSON.stringify(seen)}`);
  // Only one GET stream per session: a second concurrent one is refused (409) or replaces the first.
});

for (const version of ['2025-11-25', '2025-06-18']) {
test(`Last-Event-ID (${version}): resume a POST SSE stream with GET and get the final result`, async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url, { protocolVersion: version });
  const req = rpc('tools/call', {
    name: 'sleep',
    arguments: { ms: 1500, progressEveryMs: 200 },
    _meta: { progressToken: `e2e-resume-${version}` },
  });
  const r = await request(gw.url, { headers: sessionHeaders(s), body: req });
  assert.equal(r.status, 200);
  assert.ok(r.isSSE, `a long call with a progress token should stream (content-type ${r.contentType})`);
  const first = await r.next(3000);
  assert.ok(first, 'stream ended without any event');
  assert.ok(first.id, `first event has no id: ${JSON.stringify(first)}`);
  r.close(); // client disconnect: not a cancellation
  await sleep(700); // progress notifications sent meanwhile must be replayed
  const g = await request(gw.url, {
    method: 'GET',
    headers: sessionHeaders(s, { Accept: 'text/event-stream', 'Last-Event-ID': first.id }),
  });
  assert.equal(g.status, 200, `resume GET: HTTP ${g.status}: ${g.isSSE ? '' : await g.text()}`);
  const evs = await g.events({ timeout: 5000, until: (ev) => eventJson(ev)?.id === req.id });
  const result = evs.map(eventJson).find((m) => m?.id === req.id);
  assert.ok(result, `no final result after resumption; events: ${JSON.stringify(evs)}`);
  assert.ok(result.result && !result.result.isError, JSON.stringify(result));
  for (const ev of evs) assert.notEqual(ev.id, first.id, 'the event named in Last-Event-ID must not be replayed');
  // Every progress notification arrives exactly once across the two connections, in order.
  const progress = [first, ...evs].map(eventJson).filter((m) => m?.method === 'notifications/progress');
  const values = progress.map((m) => m.params.progress);
  assert.deepEqual(values, [200, 400, 600, 800, 1000, 1200, 1400], `progress seen: ${JSON.stringify(values)}`);
  for (const m of progress) assert.equal(m.params.progressToken, `e2e-resume-${version}`);
  // Resuming with an id the session never issued is refused (or yields nothing), never other data.
  const bad = await request(gw.url, {
    method: 'GET',
    headers: sessionHeaders(s, { Accept: 'text/event-stream', 'Last-Event-ID': 'e2e-bogus-event-id' }),
  });
  if (bad.status === 200) {
    const evs2 = await bad.events({ timeout: 300, until: () => true }).catch(() => []);
    assert.ok(!evs2.some((e) => eventJson(e)?.id === req.id), 'bogus Last-Event-ID replayed another stream');
    bad.close();
  } else {
    await bad.text();
    assert.ok(bad.status >= 400 && bad.status < 500, `bogus Last-Event-ID: HTTP ${bad.status}`);
  }
}, { timeout: 20000 });
}

async function sseEventsOfCall(gw, s) {
  const req = rpc('tools/call', {
    name: 'sleep',
    arguments: { ms: 200, progressEveryMs: 50 },
    _meta: { progressToken: `prime-${s.protocolVersion}` },
  });
  const r = await request(gw.url, { headers: sessionHeaders(s), body: req });
  assert.equal(r.status, 200);
  if (!r.isSSE) {
    await r.text();
    return null;
  }
  return r.events({ timeout: 5000 });
}

test('priming event (id + empty data) only for 2025-11-25 sessions', async (t) => {
  const gw = await gateway(t);
  const s25 = await initSession(gw.url, { protocolVersion: '2025-11-25' });
  const evs = await sseEventsOfCall(gw, s25);
  assert.ok(evs, '2025-11-25: a streamed call is expected to use SSE');
  assert.ok(evs.length > 0);
  assert.ok(evs[0].id && !evs[0].data, `2025-11-25: the first event must be a priming event, got ${JSON.stringify(evs[0])}`);
  // Event ids are unique across the streams of one session.
  const evs2 = await sseEventsOfCall(gw, s25);
  const ids1 = evs.map((e) => e.id).filter(Boolean);
  const ids2 = (evs2 || []).map((e) => e.id).filter(Boolean);
  assert.deepEqual(ids1.filter((id) => ids2.includes(id)), [], `SSE ids reused across streams: ${ids1} / ${ids2}`);
  for (const v of ['2025-06-18', '2025-03-26']) {
    const s = await initSession(gw.url, { protocolVersion: v });
    const e2 = await sseEventsOfCall(gw, s);
    if (e2) {
      for (const ev of e2) assert.ok(ev.data, `${v}: event without data would crash old clients: ${JSON.stringify(ev)}`);
    }
    // Nor on the GET stream (opened here; its headers are checked in the next test).
    const g = request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream' }) });
    await call(gw.url, s, 'tools/call', { name: 'trigger_list_changed', arguments: {} });
    const gr = await g;
    if (gr.status === 200) {
      const ev = await gr.next(2000).catch(() => null);
      gr.close();
      assert.ok(!ev || ev.data, `${v}: GET stream sent an event without data: ${JSON.stringify(ev)}`);
    } else {
      await gr.text();
    }
  }
});

test('GET stream: status and headers are sent at once, for every protocol revision', async (t) => {
  const gw = await gateway(t);
  for (const v of ['2025-11-25', '2025-06-18', '2025-03-26']) {
    const s = await initSession(gw.url, { protocolVersion: v });
    let g;
    try {
      g = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream' }), timeout: 1000 });
    } catch (e) {
      // An idle stream whose headers wait for the first event looks dead to clients and proxies;
      // an SSE comment line (": ok") is enough to flush them without sending an event.
      assert.fail(`${v}: no response headers within 1 s on an idle GET stream (${e.message})`);
    }
    assert.equal(g.status, 200);
    assert.ok(g.isSSE, g.contentType);
    g.close();
  }
});

test('unknown method -> -32601; tools/call of unknown tool -> error', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  const { response } = await call(gw.url, s, 'no/such/method', {});
  assert.equal(response.error?.code, -32601, JSON.stringify(response));
  const { response: r2 } = await call(gw.url, s, 'tools/call', { name: 'no_such_tool', arguments: {} });
  assert.ok(r2.error || r2.result?.isError, JSON.stringify(r2));
});

test('request ids are echoed exactly (string and integer)', async (t) => {
  const gw = await gateway(t);
  const s = await initSession(gw.url);
  for (const id of ['e2e-string-id', 0, 9007199254740991, 'x'.repeat(200)]) {
    const r = await request(gw.url, { headers: sessionHeaders(s), body: { jsonrpc: '2.0', id, method: 'ping' } });
    const msgs = await flatMessages(r, { until: (ev) => eventJson(ev)?.result !== undefined });
    const resp = msgs.find((m) => 'result' in m);
    assert.deepEqual(resp?.id, id, `id ${JSON.stringify(id)} came back as ${JSON.stringify(resp?.id)}`);
  }
});

// The stateless 2026-07-28 revision on the same /mcp endpoint, translated onto a 2025-11-25 stdio
// upstream: validation, discovery, cache hints, MRTR, subscriptions/listen, cancellation, and a
// session-era client using the same upstream at the same time.
import assert from 'node:assert/strict';
import http from 'node:http';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, eventJson, request, rpc } from './lib/http.mjs';

const V = '2026-07-28';
const CONFIG = { mcpServers: { test: testserver() } };

function meta(caps = {}, extra = {}) {
  return {
    'io.modelcontextprotocol/protocolVersion': V,
    'io.modelcontextprotocol/clientCapabilities': caps,
    'io.modelcontextprotocol/clientInfo': { name: 'e2e-modern', version: '1' },
    ...extra,
  };
}

// One modern request with correct headers unless overridden.
async function modern(url, method, params = {}, { caps = {}, headers = {}, metaExtra = {}, timeout } = {}) {
  const body = rpc(method, { ...params, _meta: meta(caps, metaExtra) });
  const h = { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': method };
  if (method === 'tools/call' || method === 'prompts/get') h['Mcp-Name'] = params.name;
  if (method === 'resources/read') h['Mcp-Name'] = params.uri;
  const r = await request(url, { headers: { ...h, ...headers }, body, timeout });
  const msgs = await r.messages({ timeout: timeout || 10000 });
  const response = msgs.find((m) => m && m.id === body.id);
  return { status: r.status, response, msgs, r };
}

test('server/discover: versions, capabilities, serverInfo, cache hints', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const { status, response } = await modern(gw.url, 'server/discover');
  assert.equal(status, 200);
  const res = response.result;
  assert.equal(res.resultType, 'complete');
  assert.ok(res.supportedVersions.includes(V) && res.supportedVersions.includes('2025-11-25'));
  assert.ok(res.capabilities.tools);
  assert.equal(res._meta['io.modelcontextprotocol/serverInfo'].name, 'mcpgate');
  assert.equal(typeof res.ttlMs, 'number');
  assert.ok(['public', 'private'].includes(res.cacheScope));
});

test('lists carry resultType, ttlMs and cacheScope; calls carry resultType', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  for (const m of ['tools/list', 'prompts/list', 'resources/list', 'resources/templates/list']) {
    const { status, response } = await modern(gw.url, m);
    assert.equal(status, 200, m);
    assert.equal(response.result.resultType, 'complete', m);
    assert.equal(typeof response.result.ttlMs, 'number', m);
    assert.equal(response.result.cacheScope, 'public', m);
  }
  const { response } = await modern(gw.url, 'tools/call', { name: 'echo', arguments: { message: 'hello' } });
  assert.equal(response.result.resultType, 'complete');
  assert.equal(response.result.content[0].text, 'hello');
  const rd = await modern(gw.url, 'resources/read', { uri: 'test://static-text' });
  assert.equal(rd.response.result.resultType, 'complete');
  assert.equal(rd.response.result.cacheScope, 'private');
  const nf = await modern(gw.url, 'resources/read', { uri: 'test://no-such-resource' });
  assert.equal(nf.response.error.code, -32602, 'resource not found is -32602 in 2026-07-28');
});

test('header and _meta validation: -32020, -32022, 404 -32601, missing capabilities', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const cases = [
    ['version header differs from _meta', 'tools/list', {}, { headers: { 'MCP-Protocol-Version': '2025-11-25' } }, 400, -32020],
    ['Mcp-Method missing', 'tools/list', {}, { headers: { 'Mcp-Method': undefined } }, 400, -32020],
    ['Mcp-Method differs', 'tools/list', {}, { headers: { 'Mcp-Method': 'prompts/list' } }, 400, -32020],
    ['Mcp-Name missing', 'tools/call', { name: 'echo', arguments: { message: 'x' } }, { headers: { 'Mcp-Name': undefined } }, 400, -32020],
    ['Mcp-Name differs', 'tools/call', { name: 'echo', arguments: { message: 'x' } }, { headers: { 'Mcp-Name': 'sleep' } }, 400, -32020],
    ['unknown method', 'no/such', {}, {}, 404, -32601],
    ['ping was removed', 'ping', {}, {}, 404, -32601],
    ['logging/setLevel was removed', 'logging/setLevel', { level: 'info' }, {}, 404, -32601],
  ];
  for (const [what, method, params, opts, status, code] of cases) {
    const r = await modern(gw.url, method, params, opts);
    assert.equal(r.status, status, `${what}: HTTP ${r.status} ${JSON.stringify(r.response)}`);
    assert.equal(r.response?.error?.code, code, `${what}: ${JSON.stringify(r.response)}`);
  }
  // Base64 sentinel in Mcp-Name is decoded before the comparison.
  const enc = `=?base64?${Buffer.from('echo').toString('base64')}?=`;
  const ok = await modern(gw.url, 'tools/call', { name: 'echo', arguments: { message: 'b64' } }, { headers: { 'Mcp-Name': enc } });
  assert.equal(ok.status, 200, JSON.stringify(ok.response));
  // Unsupported version: 400 -32022 with the supported list.
  const body = rpc('tools/list', { _meta: { ...meta(), 'io.modelcontextprotocol/protocolVersion': '2099-01-01' } });
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': '2099-01-01', 'Mcp-Method': 'tools/list' }, body });
  assert.equal(r.status, 400);
  const e = await r.json();
  assert.equal(e.error.code, -32022);
  assert.ok(e.error.data.supported.includes(V));
  assert.equal(e.error.data.requested, '2099-01-01');
  // clientCapabilities is required.
  const b2 = rpc('tools/list', { _meta: { 'io.modelcontextprotocol/protocolVersion': V } });
  const r2 = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/list' }, body: b2 });
  assert.equal(r2.status, 400);
});

test('GET and DELETE answer 405 for 2026-07-28 clients', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  for (const method of ['GET', 'DELETE']) {
    const r = await request(gw.url, { method, headers: { Accept: 'text/event-stream', 'MCP-Protocol-Version': V } });
    assert.equal(r.status, 405, method);
    await r.text();
  }
});

test('MRTR: an upstream sampling request becomes input_required; the retry resumes the same call', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const params = { name: 'test_sampling', arguments: { prompt: 'capital of France?' } };
  const first = await modern(gw.url, 'tools/call', params, { caps: { sampling: {} } });
  assert.equal(first.status, 200);
  const res = first.response.result;
  assert.equal(res.resultType, 'input_required', JSON.stringify(res));
  const [key, req] = Object.entries(res.inputRequests)[0];
  assert.equal(req.method, 'sampling/createMessage');
  assert.equal(typeof res.requestState, 'string');
  const answer = { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'e2e' };
  // Tampered state is refused.
  const bad = res.requestState.slice(0, -4) + (res.requestState.endsWith('AAAA') ? 'BBBB' : 'AAAA');
  const tampered = await modern(gw.url, 'tools/call', { ...params, requestState: bad, inputResponses: { [key]: answer } }, { caps: { sampling: {} } });
  assert.equal(tampered.status, 400);
  // State presented on a different request (other arguments) is refused.
  const other = await modern(gw.url, 'tools/call', { name: 'test_sampling', arguments: { prompt: 'other' }, requestState: res.requestState, inputResponses: { [key]: answer } }, { caps: { sampling: {} } });
  assert.equal(other.status, 400);
  // The real retry completes the suspended call.
  const second = await modern(gw.url, 'tools/call', { ...params, requestState: res.requestState, inputResponses: { [key]: answer } }, { caps: { sampling: {} } });
  assert.equal(second.status, 200, JSON.stringify(second.response));
  assert.equal(second.response.result.resultType, 'complete');
  assert.match(second.response.result.content[0].text, /Paris/);
  // Replaying the same state again fails clearly (the call is over), never hangs.
  const replay = await modern(gw.url, 'tools/call', { ...params, requestState: res.requestState, inputResponses: { [key]: answer } }, { caps: { sampling: {} } });
  assert.equal(replay.status, 400);
});

test('MRTR: elicitation round trip; a client without the capability gets 400 -32021', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const params = { name: 'test_elicitation', arguments: { message: 'who are you?' } };
  const first = await modern(gw.url, 'tools/call', params, { caps: { elicitation: {} } });
  const res = first.response.result;
  assert.equal(res.resultType, 'input_required');
  const [key, req] = Object.entries(res.inputRequests)[0];
  assert.equal(req.method, 'elicitation/create');
  const second = await modern(gw.url, 'tools/call', { ...params, requestState: res.requestState, inputResponses: { [key]: { action: 'accept', content: { username: 'octocat', email: 'o@example.com' } } } }, { caps: { elicitation: {} } });
  assert.equal(second.response.result.resultType, 'complete');
  assert.match(second.response.result.content[0].text, /octocat/);
  const none = await modern(gw.url, 'tools/call', params, { caps: {} });
  assert.equal(none.status, 400);
  assert.equal(none.response.error.code, -32021);
  assert.ok(none.response.error.data.requiredCapabilities.elicitation);
});

test('progress on a modern call arrives on its SSE response stream', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const r = await modern(gw.url, 'tools/call', { name: 'test_tool_with_progress', arguments: {} }, { metaExtra: { progressToken: 'p-modern' } });
  assert.equal(r.status, 200);
  const progress = r.msgs.filter((m) => m.method === 'notifications/progress');
  assert.ok(progress.length >= 3, JSON.stringify(r.msgs));
  assert.ok(progress.every((p) => p.params.progressToken === 'p-modern'));
  assert.equal(r.response.result.resultType, 'complete');
  assert.equal(r.r.headers?.['x-accel-buffering'] ?? 'no', 'no');
});

test('subscriptions/listen: acknowledged first, list_changed tagged with the subscription id', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const body = rpc('subscriptions/listen', { notifications: { toolsListChanged: true, promptsListChanged: false }, _meta: meta() });
  const listen = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'subscriptions/listen' }, body });
  assert.equal(listen.status, 200);
  assert.ok(listen.isSSE);
  t.defer(() => listen.close());
  let ev = await listen.next(3000);
  while (ev && !ev.data) ev = await listen.next(3000); // skip comments
  const ack = eventJson(ev);
  assert.equal(ack.method, 'notifications/subscriptions/acknowledged');
  assert.equal(ack.params._meta['io.modelcontextprotocol/subscriptionId'], body.id);
  assert.equal(ack.params.notifications.toolsListChanged, true);
  assert.ok(!ack.params.notifications.promptsListChanged);
  await modern(gw.url, 'tools/call', { name: 'trigger_list_changed', arguments: {} });
  let got = null;
  const end = Date.now() + 5000;
  while (!got && Date.now() < end) {
    const e = await listen.next(end - Date.now());
    if (!e) break;
    const m = eventJson(e);
    if (m && m.method === 'notifications/tools/list_changed') got = m;
  }
  assert.ok(got, 'no tools/list_changed on the listen stream');
  assert.equal(got.params._meta['io.modelcontextprotocol/subscriptionId'], body.id);
});

test('closing the response stream cancels the modern call upstream', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const inflight = async () => ((await gw.readyz()).json.upstreams || []).reduce((n, u) => n + (u.inflight || 0), 0);
  const body = JSON.stringify(rpc('tools/call', { name: 'sleep', arguments: { ms: 20000 }, _meta: meta() }));
  const u = new URL(gw.url);
  const req = http.request({
    host: u.hostname, port: u.port, path: u.pathname, method: 'POST', agent: false,
    headers: { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(body), Accept: ACCEPT_BOTH,
      'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'sleep' },
  });
  req.on('error', () => {});
  req.end(body);
  await waitFor(async () => (await inflight()) === 1, { what: 'the sleep to be in flight' });
  req.destroy(); // the client goes away before any response: that is the cancellation
  await waitFor(async () => (await inflight()) === 0, { timeout: 3000, what: 'the upstream call to be cancelled' });
});

test('a 2026-07-28 client and a 2025-06-18 client share one legacy upstream at the same time', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const legacy = await connect(gw.url, { protocolVersion: '2025-06-18' });
  t.defer(() => legacy.close());
  const jobs = [];
  for (let i = 0; i < 50; i++) {
    jobs.push(modern(gw.url, 'tools/call', { name: 'echo', arguments: { message: `m${i}` } }).then((r) => assert.equal(r.response.result.content[0].text, `m${i}`)));
    jobs.push(legacy.client.callTool({ name: 'echo', arguments: { message: `l${i}` } }).then((r) => assert.equal(textOf(r), `l${i}`)));
  }
  await Promise.all(jobs);
});

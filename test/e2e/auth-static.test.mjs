// Static bearer tokens (gateway.auth.tokens): `mcpgate token new`, 401 challenges, query-string
// refusal, sessions bound to their principal, rate limiting of failures, the secure default for
// non-loopback binds, and proof that no client token reaches the upstream (stdin, env).
import assert from 'node:assert/strict';
import { bearer, readRecord, recordFile, recordedTestserver, tokenNew } from './lib/auth.mjs';
import { connect, textOf } from './lib/client.mjs';
import { freePort, testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { ACCEPT_BOTH, call, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

const init = () =>
  rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'e2e-auth', version: '1' } });

async function status(r) {
  await r.text();
  return r.status;
}

test('token new prints a token once and an entry that works pasted as is', async (t) => {
  const a = tokenNew(['--tenant', 'acme', '--scope', 'tools', '--name', 'ci']);
  assert.match(a.token, /^mgt_[A-Za-z0-9_-]{43}$/);
  assert.deepEqual(Object.keys(a.entry), ['name', 'sha256', 'tenant', 'scopes']);
  assert.equal(a.entry.tenant, 'acme');
  assert.deepEqual(a.entry.scopes, ['tools']);
  assert.ok(!JSON.stringify(a.entry).includes(a.token), 'the entry must not contain the token');
  assert.notEqual(tokenNew(['--tenant', 'acme']).token, a.token);

  const rec = recordFile(t);
  const gw = await t.gateway({
    config: { mcpServers: { test: recordedTestserver(rec) }, gateway: { auth: { tokens: [a.entry] } } },
  });
  // No credentials: 401 with a Bearer challenge (static tokens only: no metadata to point at).
  let r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: init() });
  assert.equal(await status(r), 401);
  assert.match(r.headers['www-authenticate'], /^Bearer realm="mcpgate"/);
  // A wrong token: 401 invalid_token.
  r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer('mgt_wrong') }, body: init() });
  assert.equal(await status(r), 401);
  assert.match(r.headers['www-authenticate'], /error="invalid_token"/);
  // Another scheme.
  r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, Authorization: 'Basic eDp5' }, body: init() });
  assert.equal(await status(r), 401);
  // The right one: the official SDK client completes a call.
  const c = await connect(gw.url, { requestInit: { headers: bearer(a.token) } });
  t.defer(() => c.close());
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'hello-static' } })), 'hello-static');
  const env = JSON.parse(textOf(await c.client.callTool({ name: 'get_env', arguments: {} })));
  assert.ok(!JSON.stringify(env).includes(a.token), 'the upstream env carries the client token');
  assert.ok(!Object.keys(env).some((k) => /authorization/i.test(k)));
  const seen = readRecord(rec);
  assert.ok(seen.includes('hello-static'), 'the recording works');
  assert.ok(!seen.includes(a.token), 'the client token reached the upstream');
  assert.ok(!seen.includes(a.token.slice(4)), 'part of the client token reached the upstream');
  // Tokens never in the gateway's logs either.
  assert.ok(!gw.stderrText().includes(a.token), 'the token appears in the gateway log');
  assert.ok(!gw.stderrText().includes('mgt_wrong'), 'a refused token appears in the gateway log');
  await gw.waitLog((l) => l.msg === 'authentication failed', { what: 'failures logged (without tokens)' });
});

test('a token in the query string is refused with 400, with and without auth', async (t) => {
  const a = tokenNew(['--tenant', 'acme']);
  for (const auth of [undefined, { tokens: [a.entry] }]) {
    const gw = await t.gateway({ config: { mcpServers: { test: testserver() }, gateway: auth ? { auth } : {} } });
    for (const q of ['access_token', 'token', 'ACCESS_TOKEN', 'api_key']) {
      const r = await request(`${gw.url}?${q}=${a.token}`, { headers: { Accept: ACCEPT_BOTH, ...bearer(a.token) }, body: init() });
      const body = await r.text();
      assert.equal(r.status, 400, `${q}: ${body}`);
      assert.match(body, /Authorization header/);
      assert.ok(!body.includes(a.token), 'the error echoes the token');
    }
    // A parameter mcpgate does not read is refused too (query.test.mjs has the rest).
    const r = await request(`${gw.url}?x=1`, { headers: { Accept: ACCEPT_BOTH, ...bearer(a.token) }, body: init() });
    assert.equal(await status(r), 400);
    // No query string: fine.
    assert.equal(await status(await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(a.token) }, body: init() })), 200);
    assert.ok(!gw.stderrText().includes(a.token));
  }
});

test('a session is bound to its principal: other tokens get 404 on POST, GET, resumption and DELETE', async (t) => {
  const a = tokenNew(['--tenant', 'acme', '--name', 'alice']);
  const b = tokenNew(['--tenant', 'acme', '--name', 'bob']); // same tenant, another principal
  const c = tokenNew(['--tenant', 'globex']);
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { auth: { tokens: [a.entry, b.entry, c.entry] } } },
  });
  const sa = await initSession(gw.url, { headers: bearer(a.token) });
  // A call that streams (progress) so there is an event id to resume.
  const { others } = await call(gw.url, sa, 'tools/call', {
    name: 'sleep',
    arguments: { ms: 60, progressEveryMs: 20 },
    _meta: { progressToken: 'p1' },
  }, { headers: bearer(a.token) });
  assert.ok(others.length > 0, 'expected progress notifications');
  const r0 = await request(gw.url, {
    headers: sessionHeaders(sa, bearer(a.token)),
    body: rpc('tools/call', { name: 'sleep', arguments: { ms: 50, progressEveryMs: 10 }, _meta: { progressToken: 'p2' } }),
  });
  const evs = await r0.events({ until: (e, all) => all.length >= 2 });
  const eventId = evs.find((e) => e.id)?.id;
  assert.ok(eventId, 'no SSE event id to resume');
  for (const intruder of [b, c]) {
    const h = (extra = {}) => sessionHeaders(sa, { ...bearer(intruder.token), ...extra });
    const post = await request(gw.url, { headers: h(), body: rpc('tools/call', { name: 'echo', arguments: { message: 'x' } }) });
    const postBody = await post.text();
    assert.equal(post.status, 404, `POST: ${postBody}`);
    const get = await request(gw.url, { method: 'GET', headers: h({ Accept: 'text/event-stream' }) });
    assert.equal(await status(get), 404, 'GET stream');
    const resume = await request(gw.url, { method: 'GET', headers: h({ Accept: 'text/event-stream', 'Last-Event-ID': eventId }) });
    assert.equal(await status(resume), 404, 'resumption');
    const del = await request(gw.url, { method: 'DELETE', headers: h() });
    assert.equal(await status(del), 404, 'DELETE');
    // Exactly what an unknown session gets: no hint that it exists.
    const unknown = await request(gw.url, {
      headers: { ...h(), 'Mcp-Session-Id': 'no-such-session' },
      body: rpc('tools/call', { name: 'echo', arguments: { message: 'x' } }),
    });
    assert.equal(await unknown.text(), postBody);
  }
  // The owner still has the session.
  const ok = await call(gw.url, sa, 'tools/call', { name: 'echo', arguments: { message: 'still-mine' } }, { headers: bearer(a.token) });
  assert.equal(ok.response.result.content[0].text, 'still-mine');
  // No token at all, with the session id: 401 (sessions never authenticate).
  const anon = await request(gw.url, { headers: sessionHeaders(sa), body: rpc('ping') });
  assert.equal(await status(anon), 401);
});

test('repeated failures from one address are answered 429 with Retry-After, even for a good token', async (t) => {
  const a = tokenNew(['--tenant', 'acme']);
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver() },
      gateway: { auth: { tokens: [a.entry], failure_limit: { max: 3, window_s: 60, block_s: 2 } } },
    },
  });
  const codes = [];
  for (let i = 0; i < 4; i++) {
    const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(`guess-${i}`) }, body: init() });
    codes.push(await status(r));
  }
  assert.deepEqual(codes, [401, 401, 401, 429]);
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(a.token) }, body: init() });
  assert.equal(await status(r), 429);
  assert.ok(Number(r.headers['retry-after']) >= 1);
  await new Promise((res) => setTimeout(res, 2100));
  const r2 = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(a.token) }, body: init() });
  assert.equal(await status(r2), 200);
  await gw.waitLog((l) => l.msg === 'client blocked after repeated authentication failures', { what: 'the block' });
});

test('secure default: a non-loopback bind starts with auth configured and refuses without', async (t) => {
  const a = tokenNew(['--tenant', 'acme']);
  const port = await freePort();
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { auth: { tokens: [a.entry] } } },
    args: ['--listen', `0.0.0.0:${port}`],
    port,
  });
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(a.token) }, body: init() });
  assert.equal(await status(r), 200);
  const port2 = await freePort();
  const bad = await t.gateway({
    config: { mcpServers: { test: testserver() } },
    args: ['--listen', `0.0.0.0:${port2}`],
    port: port2,
    waitHealthy: false,
  });
  const exit = await bad.waitExit(5000);
  assert.equal(exit?.code, 2);
  assert.match(bad.stderrText(), /refusing to listen/);
  // An invalid auth config is a config error, not a way around the refusal.
  const bad2 = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { auth: { tokens: [{ name: 'x', token: 'plaintext' }] } } },
    args: ['--listen', `0.0.0.0:${port2}`],
    port: port2,
    waitHealthy: false,
  });
  const exit2 = await bad2.waitExit(5000);
  assert.equal(exit2?.code, 2);
  assert.match(bad2.stderrText(), /plaintext tokens are never accepted/);
  assert.ok(!bad2.stderrText().includes('plaintext"'), 'the plaintext value is echoed');
});

// Scale-out (issue #7): three gateway replicas sharing a real redis-server behind a real nginx
// balancing round robin (no affinity), driven by official-SDK clients. Also: a replica SIGKILLed
// in the middle of the run, a Redis restart, per-session children forwarded to their replica and
// lost with it, DELETE everywhere, drain on SIGTERM, the internal endpoint's key. Sentinel
// failover lives in sentinel.test.mjs; the same against PostgreSQL in replicas-pg.test.mjs.
// Infrastructure: lib/cluster.mjs; the big run: lib/replica-run.mjs.
import assert from 'node:assert/strict';
import { requireBinaries, redisCmd, startNginx, startRedis, startReplicas, waitStore } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';
import { SESSIONS, bigRun } from './lib/replica-run.mjs';
import { ACCEPT_BOTH, call, eventJson, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

const CONFIG = {
  mcpServers: { test: testserver(), iso: testserver([], { isolation: 'session' }) },
  gateway: { logLevel: 'warn', limits: { maxSessions: 100000 } },
};

async function redisRun(t, kill) {
  requireBinaries(t, 'redis-server', 'nginx');
  const redis = await startRedis(t);
  const store = { name: 'redis', url: redis.url(0), sessionKeys: () => redisCmd(redis.port, ['KEYS', 'mcpgate:s:*']) };
  await bigRun(t, { kill, store, config: CONFIG });
}

test(`${SESSIONS} SDK sessions through nginx round robin over 3 replicas + redis: zero failures`, async (t) => {
  await redisRun(t, false);
}, { timeout: 120000 });

test(`the same run with one replica SIGKILLed midway: every session survives, failed calls fail fast and succeed when retried`, async (t) => {
  await redisRun(t, true);
}, { timeout: 120000 });

// ---- Redis restart -------------------------------------------------------------------------------

test('Redis restarted during a run: replicas report not-ready and 503 + Retry-After, then recover by themselves', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t, { appendonly: true });
  const gws = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore(gws, true);
  const pids = gws.map((g) => g.pid);
  const sessions = [];
  for (let i = 0; i < 10; i++) sessions.push(await initSession(gws[i % 2].url));
  for (const [i, s] of sessions.entries()) {
    const { response } = await call(gws[(i + 1) % 2].url, s, 'tools/call', { name: 'test__echo', arguments: { message: `a${i}` } });
    assert.equal(response.result.content[0].text, `a${i}`);
  }
  await redis.stop();
  await waitStore(gws, false, 8000);
  for (const g of gws) {
    const r = await g.readyz();
    assert.equal(r.status, 503);
    assert.ok(r.json.store.error, JSON.stringify(r.json.store));
  }
  // nothing is served from a copy that was not verified now
  const r = await request(gws[0].url, { headers: sessionHeaders(sessions[0]), body: rpc('ping') });
  assert.equal(r.status, 503);
  assert.ok(Number(r.headers['retry-after']) >= 1);
  assert.match((await r.json()).error.message, /session store unavailable/);
  const i2 = await request(gws[1].url, { headers: { Accept: ACCEPT_BOTH }, body: rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'x', version: '1' } }) });
  assert.equal(i2.status, 503);
  await redis.start();
  await waitStore(gws, true, 15000);
  for (const [i, s] of sessions.entries()) {
    const { response } = await call(gws[i % 2].url, s, 'tools/call', { name: 'test__echo', arguments: { message: `b${i}` } });
    assert.equal(response.result.content[0].text, `b${i}`);
  }
  assert.deepEqual(gws.map((g) => g.pid), pids);
  assert.ok(gws.every((g) => !g.exited));
}, { timeout: 60000 });

// ---- isolation "session": forwarded to the owner, lost with it -------------------------------------

test('isolation "session": calls are forwarded to the replica running the child; when it dies the client gets an explicit error once, then a fresh child', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a, b], true);
  const s = await initSession(a.url, { capabilities: { sampling: {} } });
  // The first request that needs the children claims them for its replica: b.
  const { response: list } = await call(b.url, s, 'tools/list', {});
  assert.ok(list.result.tools.some((x) => x.name === 'iso__echo'));
  const { response: e1 } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'via a' } });
  assert.equal(e1.result?.content?.[0]?.text, 'via a', JSON.stringify(e1));
  assert.ok((await a.readyz()).json.store.forwarded >= 1, 'a forwarded nothing');
  const metrics = await (await request(a.base + '/metrics', { method: 'GET' })).text();
  assert.match(metrics, /^mcpgate_forwarded_requests_total [1-9]/m);
  assert.match(metrics, /^mcpgate_session_store_up 1$/m);
  // Sampling from b's child during a call made through a: the request reaches the client through a,
  // and the client's answer, posted to a, reaches b's child.
  const msg = rpc('tools/call', { name: 'iso__test_sampling', arguments: { prompt: 'hi' } });
  const r = await request(a.url, { headers: sessionHeaders(s), body: msg });
  assert.equal(r.status, 200);
  assert.ok(r.isSSE);
  let ev;
  let samplingReq;
  while ((ev = await r.next(10000))) {
    const m = eventJson(ev);
    if (m?.method === 'sampling/createMessage') {
      samplingReq = m;
      break;
    }
  }
  assert.ok(samplingReq, 'no sampling request');
  assert.match(samplingReq.id, /^mg-[a-z0-9]+-\d+$/);
  const answer = { jsonrpc: '2.0', id: samplingReq.id, result: { role: 'assistant', content: { type: 'text', text: 'sampled!' }, model: 'm', stopReason: 'endTurn' } };
  const ar = await request(a.url, { headers: sessionHeaders(s), body: answer });
  assert.equal(ar.status, 202);
  let final;
  while ((ev = await r.next(10000))) {
    const m = eventJson(ev);
    if (m?.id === msg.id) {
      final = m;
      break;
    }
  }
  assert.ok(final?.result, JSON.stringify(final));
  assert.match(JSON.stringify(final.result), /sampled!/);
  // b dies: its child's state is gone. The next call says so, explicitly; the one after works.
  b.kill();
  await b.waitExit(5000);
  const { response: lost } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'x' } });
  assert.equal(lost.error?.data?.reason, 'upstream_state_lost', JSON.stringify(lost));
  assert.match(lost.error.message, /upstream state lost/);
  const { response: fresh } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'fresh' } });
  assert.equal(fresh.result.content[0].text, 'fresh');
  const owner = await redisCmd(redis.port, ['HGET', `mcpgate:s:_:${s.sessionId}`, 'o']);
  assert.equal(owner, (await a.readyz()).json.store.replica);
}, { timeout: 60000 });

test('a replica that died with the child of an idle session: the store marks the state lost, reported once', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a, b], true);
  const s = await initSession(a.url);
  await call(b.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'claim' } });
  const breplica = (await b.readyz()).json.store.replica;
  b.kill();
  await b.waitExit(5000);
  // b's registry entry expires (3 s); the next request's load marks the owner lost
  await waitFor(async () => (await redisCmd(redis.port, ['EXISTS', `mcpgate:r:${breplica}`])) === 0, {
    timeout: 6000,
    what: 'the registry entry of the dead replica to expire',
  });
  const { response: ping } = await call(a.url, s, 'ping', {});
  assert.ok(ping.result);
  assert.match(await redisCmd(redis.port, ['HGET', `mcpgate:s:_:${s.sessionId}`, 'o']), /^!/);
  const { response: lost } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'x' } });
  assert.equal(lost.error?.data?.reason, 'upstream_state_lost', JSON.stringify(lost));
  const { response: ok } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'y' } });
  assert.equal(ok.result.content[0].text, 'y');
}, { timeout: 60000 });

// ---- DELETE, GET streams, drain, the internal endpoint -----------------------------------------

test('DELETE on one replica ends the session everywhere at once (GET streams elsewhere end, copies answer 404)', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b, c] = await startReplicas(t, 3, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a, b, c], true);
  const s = await initSession(a.url);
  await call(b.url, s, 'ping', {}); // b has a copy now
  const get = await request(c.url, { method: 'GET', headers: { ...sessionHeaders(s), Accept: 'text/event-stream' } });
  assert.equal(get.status, 200);
  const prime = await get.next(5000);
  assert.match(prime.id, /^0-\d+$/);
  const d = await request(a.url, { method: 'DELETE', headers: sessionHeaders(s) });
  assert.equal(d.status, 200);
  assert.equal(await get.next(5000), null, 'the GET stream on c did not end');
  for (const g of [a, b, c]) {
    const r = await request(g.url, { headers: sessionHeaders(s), body: rpc('ping') });
    assert.equal(r.status, 404, `replica ${g.port}`);
  }
}, { timeout: 30000 });

test('SIGTERM drains: SSE streams get a retry hint and end, the in-flight call finishes and is resumed on another replica', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a, b], true);
  const s = await initSession(a.url);
  const get = await request(a.url, { method: 'GET', headers: { ...sessionHeaders(s), Accept: 'text/event-stream' } });
  await get.next(5000); // priming
  const msg = rpc('tools/call', { name: 'test__sleep', arguments: { ms: 1500, progressEveryMs: 100 }, _meta: { progressToken: 'pt' } });
  const post = await request(a.url, { headers: sessionHeaders(s), body: msg });
  assert.ok(post.isSSE);
  let last;
  let ev;
  while ((ev = await post.next(5000))) {
    last = ev.id || last;
    if (eventJson(ev)?.method === 'notifications/progress') break;
  }
  const exit = a.stop({ timeout: 15000 });
  // both streams end with a retry hint
  const getRest = await get.events({ timeout: 5000 });
  assert.ok(getRest.some((e) => e.retry > 0), `GET stream: ${JSON.stringify(getRest)}`);
  const postRest = await post.events({ timeout: 5000 });
  assert.ok(postRest.some((e) => e.retry > 0), `POST stream: ${JSON.stringify(postRest)}`);
  for (const e of postRest) last = e.id || last;
  // new requests to a are refused (it stops accepting); b resumes the POST stream to its end
  const resumed = await request(b.url, { method: 'GET', headers: { ...sessionHeaders(s), Accept: 'text/event-stream', 'Last-Event-ID': last } });
  assert.equal(resumed.status, 200);
  const msgs = (await resumed.events({ timeout: 10000 })).map(eventJson).filter(Boolean);
  const final = msgs.find((m) => m.id === msg.id);
  assert.equal(final?.result?.content?.[0]?.text, 'slept 1500', JSON.stringify(msgs));
  const { code, signal } = await exit;
  assert.equal(code, 0, `signal ${signal}`);
}, { timeout: 40000 });

test('the internal forwarding endpoint needs the cluster key and is not exposed by nginx; without a shared store it does not exist', async (t) => {
  requireBinaries(t, 'redis-server', 'nginx');
  const redis = await startRedis(t);
  const [a] = await startReplicas(t, 1, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a], true);
  const path = '/mcpgate/internal/v1/forward';
  const body = { scope: '_', session: 'x', principal: null, msg: rpc('ping') };
  let r = await request(a.base + path, { body });
  assert.equal(r.status, 403);
  r = await request(a.base + '/mcpgate/internal/v1/modern', { body, headers: { Accept: ACCEPT_BOTH } });
  assert.equal(r.status, 403);
  r = await request(a.base + path, { body, headers: { 'X-Mcpgate-Cluster-Key': 'wrong-wrong-wrong-wrong' } });
  assert.equal(r.status, 403);
  r = await request(a.base + path, { body, headers: { 'X-Mcpgate-Cluster-Key': 'e2e-cluster-secret-0123456789' } });
  assert.equal(r.status, 404); // no such session
  const lb = await startNginx(t, [a.port]);
  r = await request(lb.base + path, { body, headers: { 'X-Mcpgate-Cluster-Key': 'e2e-cluster-secret-0123456789' } });
  assert.equal(r.status, 404);
  const m = await t.gateway({ config: CONFIG });
  r = await request(m.base + path, { body, headers: { 'X-Mcpgate-Cluster-Key': 'e2e-cluster-secret-0123456789' } });
  assert.equal(r.status, 404);
});

test('MCPGATE_SESSION_STORE overrides the config; a TLS URL is refused with the sidecar explanation, before listening', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const gw = await t.gateway({ config: CONFIG, env: { MCPGATE_SESSION_STORE: redis.url(3) } });
  await waitStore([gw], true);
  const rz = await gw.readyz();
  assert.equal(rz.json.store.backend, 'redis');
  assert.match(rz.json.store.target, /\/3$/);
  const bad = await t.gateway({ config: CONFIG, env: { MCPGATE_SESSION_STORE: 'rediss://:secret-pw@127.0.0.1:6380/0' }, waitHealthy: false });
  const ex = await bad.waitExit(5000);
  assert.equal(ex?.code, 2);
  assert.match(bad.stderrText(), /sidecar/);
  assert.doesNotMatch(bad.stderrText(), /secret-pw/);
});

test('notifications/cancelled sent to another replica stops the call where it runs', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a, b], true);
  const s = await initSession(a.url);
  const inflight = async (g) => (await g.readyz()).json.upstreams.find((u) => u.name === 'test').inflight;
  const msg = rpc('tools/call', { name: 'test__sleep', arguments: { ms: 10000 } });
  const pending = request(a.url, { headers: sessionHeaders(s), body: msg, timeout: 15000 });
  await waitFor(async () => (await inflight(a)) === 1, { what: 'the call to be in flight on a' });
  const t0 = Date.now();
  const n = await request(b.url, {
    headers: sessionHeaders(s),
    body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: msg.id, reason: 'e2e' } },
  });
  assert.equal(n.status, 202);
  await waitFor(async () => (await inflight(a)) === 0, { timeout: 3000, what: 'the upstream call on a to be cancelled' });
  assert.ok(Date.now() - t0 < 3000);
  (await pending).close();
});

test('a new GET after a dropped one succeeds (no 409); a cancelled call is not answered and its stream resumes to 204', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a] = await startReplicas(t, 1, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a], true);
  const s = await initSession(a.url);
  const get = (extra = {}) => request(a.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream', ...extra }) });
  const g1 = await get();
  assert.equal(g1.status, 200);
  g1.close();
  const g2 = await get();
  assert.equal(g2.status, 200, `second GET after a drop: HTTP ${g2.status}`);
  g2.close();
  const msg = rpc('tools/call', { name: 'test__sleep', arguments: { ms: 10000, progressEveryMs: 100 }, _meta: { progressToken: 'rc' } });
  const r = await request(a.url, { headers: sessionHeaders(s), body: msg, timeout: 15000 });
  assert.ok(r.isSSE);
  const seen = [];
  while (!seen.some((e) => eventJson(e)?.method === 'notifications/progress')) seen.push(await r.next(3000));
  const n = await request(a.url, {
    headers: sessionHeaders(s),
    body: { jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: msg.id, reason: 'e2e' } },
  });
  assert.equal(n.status, 202);
  const all = [...seen, ...(await r.events({ timeout: 3000 }))];
  assert.deepEqual(all.map(eventJson).filter((m) => m?.id === msg.id), [], 'the cancelled call was answered');
  const res = await get({ 'Last-Event-ID': all.filter((e) => e.id).pop().id });
  assert.equal(res.status, 204, `resume of the finished stream: HTTP ${res.status}`);
});

test('with auth: a session binds to its principal on every replica; another tenant or principal gets 404 everywhere', async (t) => {
  requireBinaries(t, 'redis-server');
  const { tokenNew, bearer } = await import('./lib/auth.mjs');
  const alice = tokenNew(['--tenant', 'acme', '--scope', 'tools', '--name', 'alice']);
  const bob = tokenNew(['--tenant', 'acme', '--scope', 'tools', '--name', 'bob']);
  const eve = tokenNew(['--tenant', 'other', '--scope', 'tools', '--name', 'eve']);
  const redis = await startRedis(t);
  const config = { ...CONFIG, gateway: { ...CONFIG.gateway, auth: { tokens: [alice.entry, bob.entry, eve.entry] } } };
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config });
  await waitStore([a, b], true);
  const s = await initSession(a.url, { headers: bearer(alice.token) });
  const { response } = await call(b.url, s, 'tools/call', { name: 'test__echo', arguments: { message: 'mine' } }, { headers: bearer(alice.token) });
  assert.equal(response.result.content[0].text, 'mine');
  for (const g of [a, b]) {
    for (const who of [bob, eve]) {
      const r = await request(g.url, { headers: sessionHeaders(s, bearer(who.token)), body: rpc('ping') });
      assert.equal(r.status, 404, `${who.entry.name} on ${g.port}`);
    }
  }
  // the record is keyed by tenant: nothing under another tenant's scope
  assert.equal(await redisCmd(redis.port, ['EXISTS', `mcpgate:s:acme:${s.sessionId}`]), 1);
  assert.equal(await redisCmd(redis.port, ['EXISTS', `mcpgate:s:other:${s.sessionId}`]), 0);
  const rec = JSON.parse(await redisCmd(redis.port, ['HGET', `mcpgate:s:acme:${s.sessionId}`, 'r']));
  assert.equal(rec.principal.tenant, 'acme');
  assert.doesNotMatch(JSON.stringify(rec), new RegExp(alice.token));
});

test('2026-07-28 MRTR: a retry that lands on another replica is proxied to the one holding the parked call', async (t) => {
  requireBinaries(t, 'redis-server');
  const V = '2026-07-28';
  const key = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
  const redis = await startRedis(t);
  const config = { ...CONFIG, gateway: { ...CONFIG.gateway, requestStateKey: key } };
  const [a, b, c] = await startReplicas(t, 3, { redisUrl: redis.url(0), config });
  await waitStore([a, b, c], true);
  const modern = async (url, params) => {
    const body = rpc('tools/call', {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': V,
        'io.modelcontextprotocol/clientCapabilities': { elicitation: {} },
        'io.modelcontextprotocol/clientInfo': { name: 'e2e', version: '1' },
      },
    });
    const r = await request(url, {
      headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call', 'Mcp-Name': params.name },
      body,
    });
    const msgs = await r.messages({ timeout: 10000 });
    return { status: r.status, response: msgs.find((m) => m?.id === body.id) };
  };
  const params = { name: 'test__test_elicitation', arguments: { message: 'who are you?' } };
  const first = await modern(a.url, params);
  const res = first.response.result;
  assert.equal(res.resultType, 'input_required', JSON.stringify(first.response));
  const [k] = Object.keys(res.inputRequests);
  const answer = { action: 'accept', content: { username: 'octocat', email: 'o@example.com' } };
  const second = await modern(b.url, { ...params, requestState: res.requestState, inputResponses: { [k]: answer } });
  assert.equal(second.status, 200);
  assert.equal(second.response.result.resultType, 'complete', JSON.stringify(second.response));
  assert.match(second.response.result.content[0].text, /octocat/);
  // the replica holding a parked call dies: a retry elsewhere gets the documented -32602, at once
  const third = await modern(a.url, params);
  a.kill();
  await a.waitExit(5000);
  const t0 = Date.now();
  const lost = await modern(c.url, { ...params, requestState: third.response.result.requestState, inputResponses: { [k]: answer } });
  assert.equal(lost.status, 400);
  assert.equal(lost.response.error.code, -32602);
  assert.match(lost.response.error.message, /no longer waiting/);
  assert.ok(Date.now() - t0 < 5000);
});

test('a stream resumed after its replica was SIGKILLed: what was written is replayed, then the request gets an explicit error', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config: CONFIG });
  await waitStore([a, b], true);
  const s = await initSession(b.url);
  const msg = rpc('tools/call', { name: 'test__sleep', arguments: { ms: 20000, progressEveryMs: 100 }, _meta: { progressToken: 'k' } });
  const post = await request(a.url, { headers: sessionHeaders(s), body: msg });
  assert.ok(post.isSSE);
  let first;
  let ev;
  while ((ev = await post.next(5000))) {
    if (eventJson(ev)?.method === 'notifications/progress') {
      first = ev.id;
      break;
    }
  }
  await sleep(300); // a few more events reach the log
  a.kill();
  await a.waitExit(5000);
  const t0 = Date.now();
  const r = await request(b.url, { method: 'GET', headers: { ...sessionHeaders(s), Accept: 'text/event-stream', 'Last-Event-ID': first } });
  assert.equal(r.status, 200);
  const msgs = (await r.events({ timeout: 10000 })).map(eventJson).filter(Boolean);
  const ms = Date.now() - t0;
  assert.ok(msgs.some((m) => m.method === 'notifications/progress'), 'the events after Last-Event-ID were not replayed');
  const final = msgs.find((m) => m.id === msg.id);
  assert.equal(final?.error?.data?.reason, 'replica_gone', JSON.stringify(msgs.slice(-2)));
  assert.ok(ms < 6000, `the error took ${ms} ms`);
});

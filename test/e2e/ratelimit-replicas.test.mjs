// Rate limits shared by every replica (issue #9): three gateways on one redis-server behind nginx
// round robin take tokens from the same buckets (gateway.rateLimits.store unset = "redis" when the
// sessions are in Redis), so N concurrent calls against K tokens give exactly K successes however
// the balancer spreads them; with Redis gone a limited call fails closed (503 + Retry-After).
// Infrastructure: lib/cluster.mjs.
import assert from 'node:assert/strict';
import { requireBinaries, startNginx, startRedis, startReplicas, waitStore } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

const K = 7;
const N = 60;

async function post(url, sess, msg) {
  const r = await request(url, { headers: sessionHeaders(sess), body: JSON.stringify(msg), timeout: 20000 });
  const msgs = await r.messages();
  return { status: r.status, headers: r.headers, body: msgs.find((m) => m.id === msg.id) ?? msgs[0] };
}

function modernCall(url, id) {
  return request(url, {
    headers: {
      'content-type': 'application/json',
      accept: ACCEPT_BOTH,
      'mcp-protocol-version': '2026-07-28',
      'mcp-method': 'tools/call',
      'mcp-name': 'echo',
    },
    body: JSON.stringify({
      jsonrpc: '2.0',
      id,
      method: 'tools/call',
      params: {
        name: 'echo',
        arguments: { message: 'hi' },
        _meta: { 'io.modelcontextprotocol/protocolVersion': '2026-07-28', 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    }),
  });
}

test('rate limit across 3 replicas: N concurrent calls through nginx against K tokens give exactly K successes', async (t) => {
  requireBinaries(t, 'redis-server', 'nginx');
  const redis = await startRedis(t);
  const config = {
    mcpServers: { ts: testserver() },
    // every call arrives from nginx's address: one "client" bucket, shared through Redis
    gateway: { logLevel: 'info', rateLimits: { principal: { requests: K, perSeconds: 3600 } } },
  };
  const gws = await startReplicas(t, 3, { redisUrl: redis.url(0), config });
  await waitStore(gws, true);
  for (const g of gws) assert.ok(g.logs().some((x) => x.msg === 'rate limits' && /^redis/.test(x.store)));
  const lb = await startNginx(t, gws.map((g) => g.port));

  const sessions = await Promise.all([0, 1, 2, 3, 4, 5].map(() => initSession(lb.url)));
  const calls = [];
  for (let i = 0; i < N; i++) {
    calls.push(post(lb.url, sessions[i % sessions.length], rpc('tools/call', { name: 'echo', arguments: { message: `m${i}` } })));
  }
  const results = await Promise.all(calls);
  const ok = results.filter((r) => r.status === 200 && r.body?.result);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length, K, `statuses: ${results.map((r) => r.status).join(',')}`);
  assert.equal(limited.length, N - K);
  for (const r of limited) {
    assert.equal(r.body.error.code, -32029);
    assert.equal(r.body.error.data.limit, 'client');
    assert.ok(Number(r.headers['retry-after']) >= 1);
    assert.match(r.headers.ratelimit, /^"client";r=0;t=\d+$/);
  }
  // the refusals came from more than one replica, and add up to N - K
  const rejected = await Promise.all(
    gws.map(async (g) => {
      const m = await request(`${g.base}/metrics`, { method: 'GET' });
      const x = /mcpgate_ratelimit_rejected_total\{limit="principal"\} (\d+)/.exec(await m.text());
      return x ? Number(x[1]) : 0;
    }),
  );
  assert.equal(rejected.reduce((a, b) => a + b, 0), N - K, `per replica: ${rejected.join(',')}`);
  assert.ok(rejected.filter((n) => n > 0).length >= 2, `per replica: ${rejected.join(',')}`);
  // the bucket is a Redis key with a TTL (idle buckets expire once full again)
  const { redisCmd } = await import('./lib/cluster.mjs');
  const keys = await redisCmd(redis.port, ['KEYS', 'mcpgate:rl:*']);
  assert.deepEqual(keys, ['mcpgate:rl:ip:127.0.0.1']);
  const pttl = await redisCmd(redis.port, ['PTTL', keys[0]]);
  assert.ok(pttl > 0 && pttl <= 3600 * 1000 + 1000, `pttl ${pttl}`);

  // Redis gone: a limited stateless call is refused with 503 + Retry-After, never let through
  await redis.stop();
  await waitStore(gws, false, 8000);
  const r = await modernCall(gws[0].url, 1);
  const j = await r.json();
  assert.equal(r.status, 503, JSON.stringify(j));
  assert.ok(Number(r.headers['retry-after']) >= 1);
  assert.equal(j.error?.code, -32029, JSON.stringify(j));
  assert.equal(j.error.data.limit, 'store');
  await waitFor(() => gws[0].logs().some((x) => /rate-limit store unavailable/.test(x.msg)), { what: 'the outage log line' });
}, { timeout: 60000 });

test('rate limit: store "redis" without a Redis session store refuses to start', async (t) => {
  let err = null;
  try {
    await t.gateway({
      config: {
        mcpServers: { ts: testserver() },
        gateway: { rateLimits: { store: 'redis', principal: { requests: 1, perSeconds: 60 } } },
      },
    });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'the gateway started');
  assert.match(String(err.message || err), /exited during startup \(status 2\)/);
});

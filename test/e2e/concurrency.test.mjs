// Many concurrent SDK sessions through one gateway and one upstream child: no failures, no mix-ups.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

const SESSIONS = Number(process.env.MG_E2E_SESSIONS || 200);
const CALLS = Number(process.env.MG_E2E_CALLS || 20);

test(`${SESSIONS} concurrent sessions x ${CALLS} echo calls, each result is its own argument`, async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const failures = [];
  let ok = 0;
  const clients = [];
  t.defer(() => Promise.all(clients.map((c) => c.close())));
  const t0 = Date.now();
  const sessions = Array.from({ length: SESSIONS }, async (_, i) => {
    let c;
    try {
      c = await connect(gw.url, { name: `e2e-conc-${i}` });
      clients.push(c);
    } catch (e) {
      failures.push(`session ${i}: connect: ${e.message}`);
      return;
    }
    for (let j = 0; j < CALLS; j++) {
      const msg = `s${i}-c${j}-${Math.random().toString(36).slice(2)}`;
      try {
        const r = await c.client.callTool({ name: 'echo', arguments: { message: msg } });
        const got = textOf(r);
        if (r.isError || got !== msg) failures.push(`session ${i} call ${j}: sent ${msg}, got ${JSON.stringify(r).slice(0, 200)}`);
        else ok++;
      } catch (e) {
        failures.push(`session ${i} call ${j}: ${e.message}`);
      }
    }
  });
  await Promise.all(sessions);
  const ms = Date.now() - t0;
  t.log(`${ok} calls ok in ${ms} ms (${Math.round((ok * 1000) / ms)} calls/s)`);
  console.log(`     concurrency: ${ok} echo calls in ${ms} ms over ${SESSIONS} sessions`);
  assert.equal(failures.length, 0, `${failures.length} failures, first: ${failures.slice(0, 5).join(' | ')}`);
  assert.equal(ok, SESSIONS * CALLS);
  // Sessions are all still valid; DELETE them all (close()) and the gateway stays healthy.
  await Promise.all(clients.map((c) => c.close()));
  assert.equal((await gw.healthz()).status, 200);
}, { timeout: 120000 });

test('one session, 100 echo calls in parallel (maxInflightPerSession 128)', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { limits: { maxInflightPerSession: 128 } } },
  });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const msgs = Array.from({ length: 100 }, (_, i) => `par-${i}-${Math.random()}`);
  const res = await Promise.all(msgs.map((m) => c.client.callTool({ name: 'echo', arguments: { message: m } })));
  res.forEach((r, i) => assert.equal(textOf(r), msgs[i]));
}, { timeout: 30000 });

test('per-session in-flight limit (default 64): the excess is refused at once with 429, the rest succeed', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const s = await initSession(gw.url);
  const N = 80;
  const results = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const t0 = Date.now();
      const msg = rpc('tools/call', { name: 'sleep', arguments: { ms: 500 } }, `lim-${i}`);
      const r = await request(gw.url, { headers: sessionHeaders(s), body: msg, timeout: 10000 });
      const body = await r.text();
      return { status: r.status, ms: Date.now() - t0, retryAfter: r.headers['retry-after'], body };
    }),
  );
  const ok = results.filter((r) => r.status === 200);
  const limited = results.filter((r) => r.status === 429);
  t.log('statuses', results.map((r) => r.status).join(','));
  assert.equal(ok.length + limited.length, N, `unexpected statuses: ${results.filter((r) => ![200, 429].includes(r.status)).map((r) => r.status)}`);
  assert.ok(ok.length >= 60 && ok.length <= 64, `${ok.length} calls admitted (limit 64)`);
  for (const r of limited) {
    assert.ok(r.ms < 400, `a refused call took ${r.ms} ms`);
    assert.ok(r.retryAfter, '429 without Retry-After');
    assert.equal(JSON.parse(r.body).error?.code, -32603, r.body);
  }
  for (const r of ok) assert.match(r.body, /slept 500/);
});

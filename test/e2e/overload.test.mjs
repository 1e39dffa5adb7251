// Overload of one upstream: requests beyond gateway.limits.maxInflightPerUpstream are refused at
// once with HTTP 503 and Retry-After (so clients and balancers back off), never queued without
// bound and never reported as a bare 200.
import assert from 'node:assert/strict';
import { testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

test('calls over maxInflightPerUpstream get 503 + Retry-After; the others complete', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { limits: { maxInflightPerUpstream: 4 } } },
  });
  const s = await initSession(gw.url);
  const results = await Promise.all(
    Array.from({ length: 12 }, async () => {
      const r = await request(gw.url, {
        headers: sessionHeaders(s),
        body: rpc('tools/call', { name: 'sleep', arguments: { ms: 300 } }),
      });
      const msgs = await r.messages();
      return { status: r.status, retryAfter: r.headers['retry-after'], msg: msgs[0] };
    }),
  );
  const ok = results.filter((r) => r.status === 200 && r.msg?.result);
  const shed = results.filter((r) => r.status === 503);
  assert.equal(ok.length + shed.length, results.length, JSON.stringify(results));
  assert.ok(ok.length >= 1 && ok.length <= 4, `${ok.length} calls completed with a limit of 4`);
  assert.ok(shed.length >= 8, `${shed.length} calls shed`);
  for (const r of shed) {
    assert.equal(r.retryAfter, '1');
    assert.match(r.msg.error.message, /too many requests in flight/);
  }
});

// Cancellation and timeouts: a cancelled or timed-out call stops occupying the upstream.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';

// Sum of "inflight" over the upstreams in /readyz (0 when the field is absent).
async function inflight(gw) {
  const j = (await gw.readyz()).json;
  const ups = Array.isArray(j?.upstreams) ? j.upstreams : Object.values(j?.upstreams || {});
  return ups.reduce((n, u) => n + (Number(u?.inflight) || 0), 0);
}

test('notifications/cancelled from the client stops the upstream call', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const ac = new AbortController();
  const p = c.client.callTool({ name: 'sleep', arguments: { ms: 10000 } }, undefined, { signal: ac.signal });
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the call to be in flight' });
  ac.abort('e2e cancel');
  await assert.rejects(p);
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'inflight to drop to 0 after cancel' });
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'next' } })), 'next');
});

test('a client that disconnects mid-call does not cancel it (2025-11-25 semantics)', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const c = await connect(gw.url);
  const p = c.client.callTool({ name: 'sleep', arguments: { ms: 600 } }).catch(() => null);
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the call to be in flight' });
  await c.client.close(); // drops the connection without DELETE
  await p;
  await sleep(150);
  assert.equal(await inflight(gw), 1, 'a dropped connection cancelled the upstream call');
  // The call runs to completion upstream (its result is kept for resumption or dropped).
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 3000, what: 'the call to finish upstream' });
});

test('per-server timeoutMs: a slow call fails with a timeout error and is cancelled upstream', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { slow: testserver([], { timeoutMs: 300 }) } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const t0 = Date.now();
  let err = null;
  try {
    const r = await c.client.callTool({ name: 'sleep', arguments: { ms: 5000 } }, undefined, { timeout: 10000 });
    if (r.isError) err = JSON.stringify(r.content);
  } catch (e) {
    err = e.message;
  }
  const ms = Date.now() - t0;
  assert.ok(err, 'a call past timeoutMs must fail');
  assert.ok(ms >= 250 && ms < scaled(2000), `timed out after ${ms} ms (timeoutMs 300)`);
  assert.match(err, /time|slow/i, err);
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'inflight 0 after the timeout' });
  // A fast call still works.
  assert.equal(textOf(await c.client.callTool({ name: 'sleep', arguments: { ms: 10 } })), 'slept 10');
  await sleep(10);
});

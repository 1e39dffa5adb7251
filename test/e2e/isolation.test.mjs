// Upstream pools ("instances") and per-session children ("isolation": "session").
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';

const upstreamKids = (gw) => gw.children().filter((p) => p.comm.startsWith('mcpgate-testser'));

test('instances: 3 starts a pool of three children and spreads slow calls over them', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { pool: testserver([], { instances: 3 }) } } });
  await waitFor(() => upstreamKids(gw).length === 3, { what: 'three children' });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  // Each child also runs calls concurrently, so this is mostly a routing/accounting check.
  const t0 = Date.now();
  const res = await Promise.all(
    Array.from({ length: 9 }, (_, i) => c.client.callTool({ name: 'sleep', arguments: { ms: 300 + i } })),
  );
  res.forEach((r, i) => assert.equal(textOf(r), `slept ${300 + i}`));
  assert.ok(Date.now() - t0 < 2000, 'calls were serialized');
  assert.equal(upstreamKids(gw).length, 3);
});

test('isolation "session": one child per session, gone after DELETE', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { iso: testserver([], { isolation: 'session' }) } } });
  const base = upstreamKids(gw).length; // a template child may or may not be kept
  const sessions = [];
  for (let i = 0; i < 3; i++) {
    const c = await connect(gw.url);
    sessions.push(c);
    t.defer(() => c.close());
    assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: `s${i}` } })), `s${i}`);
  }
  await waitFor(() => upstreamKids(gw).length >= base + 3, { what: 'a child per session' });
  const pids = new Set(upstreamKids(gw).map((p) => p.pid));
  // Session state is separate: dynamic_tool toggled in one session only.
  await sessions[0].client.callTool({ name: 'trigger_list_changed', arguments: {} });
  await waitFor(async () => (await sessions[0].client.listTools()).tools.some((x) => x.name === 'dynamic_tool'), {
    what: 'dynamic_tool in session 0',
  });
  const other = (await sessions[1].client.listTools()).tools.map((x) => x.name);
  assert.ok(!other.includes('dynamic_tool'), 'a session saw another session\'s child state');
  for (const c of sessions) await c.close();
  await waitFor(() => upstreamKids(gw).filter((p) => pids.has(p.pid)).length <= base, {
    what: 'per-session children to exit after DELETE',
    timeout: 5000,
  });
  await sleep(50);
});

// The keep-alive pool of a plain http:// remote upstream (src/http/h1client.c, ADR 0017): calls
// reuse connections, and an upstream that closes idle connections (Node's keepAliveTimeout, as
// most servers do; it says so in Keep-Alive: timeout=N, and the client stops using a connection
// before that) costs nothing but a new connection: no call fails, not even the ones that cannot
// be repeated (tools/call).
import assert from 'node:assert/strict';
import { startRemoteUpstream } from './fixtures/remote-upstream.mjs';
import { connect, textOf } from './lib/client.mjs';
import { sleep, test } from './lib/harness.mjs';

test('a plain http:// upstream: calls reuse its connections; idle connections it closes are replaced without failing a call', async (t) => {
  const u = await startRemoteUpstream();
  t.defer(() => u.close());
  u.server.keepAliveTimeout = 100; // "Keep-Alive: timeout=0"; Node closes an idle connection after ~1.1 s
  let conns = 0;
  u.server.on('connection', () => conns++);
  const gw = await t.gateway({ config: { mcpServers: { r: { url: u.url } }, gateway: { egress: { allowCidrs: ['127.0.0.0/8'] } } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const echo = (await c.client.listTools()).tools.find((x) => x.name.endsWith('echo')).name;
  const call = async (i) => {
    const r = await c.client.callTool({ name: echo, arguments: { text: `m${i}` } });
    assert.ok(!r.isError, JSON.stringify(r));
    assert.match(textOf(r), new RegExp(`m${i}`));
  };
  await call(0);
  const base = conns;
  for (let i = 1; i <= 30; i++) await call(i); // back to back: one connection serves them all
  assert.ok(conns - base <= 1, `30 sequential calls opened ${conns - base} connections`);
  await sleep(1400); // the idle connection is closed (by the client at 250 ms, or by the upstream)
  const before = conns;
  await call(100);
  assert.ok(conns > before, 'a new connection after the upstream closed the idle one');
  await call(101);
  assert.equal(conns, before + 1, 'and that one is reused');
  await Promise.all(Array.from({ length: 20 }, (_, i) => call(200 + i)));
  const posts = u.log.filter((e) => e.method === 'POST' && e.body.includes('"method":"tools/call"'));
  assert.equal(posts.length, 53, 'every call reached the upstream exactly once');
});

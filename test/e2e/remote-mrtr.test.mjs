// 2025 session clients onto a 2026-07-28-only remote upstream: the upstream's input_required results
// become elicitation requests on the client's session stream, the gateway retries the upstream with
// inputResponses and the requestState it was given (two rounds here), a client without the
// capability gets a clear -32021 error, and cancelling while the client is asked ends the call
// without a retry reaching the upstream. The upstream is fixtures/remote-upstream.mjs (modern mode:
// tool "ask"), which records every request it receives.
import assert from 'node:assert/strict';
import { ElicitRequestSchema, ListRootsRequestSchema, LoggingMessageNotificationSchema, ResourceUpdatedNotificationSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { startRemoteUpstream } from './fixtures/remote-upstream.mjs';
import { connect, textOf } from './lib/client.mjs';
import { ACCEPT_BOTH, call, initSession, request, rpc } from './lib/http.mjs';
import { waitReadyz } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';

const LOOPBACK = { egress: { allowCidrs: ['127.0.0.0/8'] } };

async function setup(t) {
  const u = await startRemoteUpstream({ modern: true });
  t.defer(() => u.close());
  const gw = await t.gateway({ config: { mcpServers: { m: { url: u.url } }, gateway: LOOPBACK } });
  await waitReadyz(gw, (j) => j.upstreams[0].state === 'ready' && j.upstreams[0].era === '2026-07-28 (stateless)');
  return { u, gw };
}

async function client(t, gw, opts = {}) {
  const c = await connect(gw.url, opts);
  t.defer(() => c.close());
  return c.client;
}

const askCalls = (u) =>
  u.log.filter((x) => x.method === 'POST' && x.body.includes('"tools/call"')).map((x) => JSON.parse(x.body)).filter((m) => m.params?.name === 'ask');

test('a 2025 client answers a 2026-only upstream\'s input_required as elicitation, two rounds', async (t) => {
  const { u, gw } = await setup(t);
  const asked = [];
  const cl = await client(t, gw, {
    capabilities: { elicitation: {} },
    setup: (c) =>
      c.setRequestHandler(ElicitRequestSchema, async (r) => {
        // Only the input-key hint may ride along (a chained gateway serving a 2026 client needs it).
        const meta = Object.keys(r.params._meta ?? {}).filter((k) => k !== 'io.mcpgate/inputKey');
        asked.push(meta.length === 0 ? r.params.message : `an unexpected _meta reached the client: ${JSON.stringify(r.params._meta)}`);
        return r.params.message === 'your name?' ? { action: 'accept', content: { name: 'Ada' } } : { action: 'accept', content: {} };
      }),
  });
  const r = await cl.callTool({ name: 'ask', arguments: { x: 1 } });
  assert.equal(textOf(r), 'modern ask: Ada accept');
  assert.deepEqual(asked, ['your name?', 'confirm Ada?']);
  const calls = askCalls(u);
  assert.equal(calls.length, 3);
  // the client's capabilities were declared upstream; each retry carries the state it was given,
  // the answers of its round only, and the same arguments
  assert.deepEqual(calls[0].params._meta['io.modelcontextprotocol/clientCapabilities'], { elicitation: {} });
  assert.equal(calls[0].params.inputResponses, undefined);
  assert.equal(calls[1].params.requestState, 'r1');
  assert.deepEqual(calls[1].params.inputResponses, { name: { action: 'accept', content: { name: 'Ada' } } });
  assert.equal(calls[2].params.requestState, 'r2:Ada');
  assert.deepEqual(Object.keys(calls[2].params.inputResponses), ['confirm']);
  for (const c of calls) assert.deepEqual(c.params.arguments, { x: 1 });
  // and the session goes on
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'after' } })), 'modern: after');
});

test('a 2025 client without the elicitation capability gets a clear -32021 error, not a hang', async (t) => {
  const { u, gw } = await setup(t);
  const cl = await client(t, gw);
  let err;
  try {
    await cl.callTool({ name: 'ask', arguments: {} });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'the call did not fail');
  assert.equal(err.code, -32021);
  assert.match(err.message, /server needs elicitation \(elicitation\/create\).*did not declare it/);
  assert.equal(askCalls(u).length, 1, 'no retry without answers');
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'still' } })), 'modern: still');
});

test('an error answer from the client ends the call with a sentence naming it', async (t) => {
  const { u, gw } = await setup(t);
  const cl = await client(t, gw, {
    capabilities: { elicitation: {} },
    setup: (c) =>
      c.setRequestHandler(ElicitRequestSchema, async () => {
        throw new Error('user closed the dialog');
      }),
  });
  await assert.rejects(cl.callTool({ name: 'ask', arguments: {} }), /answered the 'm' server's request for input \(name\) with an error: .*user closed the dialog/);
  assert.equal(askCalls(u).length, 1);
});

test('cancelling a call while its client is asked ends it: no retry reaches the upstream', async (t) => {
  const { u, gw } = await setup(t);
  const ac = new AbortController();
  let release;
  const held = new Promise((r) => (release = r));
  const cl = await client(t, gw, {
    capabilities: { elicitation: {} },
    setup: (c) =>
      c.setRequestHandler(ElicitRequestSchema, async () => {
        ac.abort('the user went away');
        await held;
        return { action: 'accept', content: { name: 'late' } };
      }),
  });
  await assert.rejects(cl.callTool({ name: 'ask', arguments: {} }, undefined, { signal: ac.signal }));
  release();
  await sleep(300);
  assert.equal(askCalls(u).length, 1, 'the late answer reached the upstream as a retry');
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'ok' } })), 'modern: ok');
});

test('a 2026-07-28 client gets the gateway\'s own input_required for each round; its retries reach the parked upstream call', async (t) => {
  const { u, gw } = await setup(t);
  const V = '2026-07-28';
  const caps = { elicitation: {} };
  const call = async (extra = {}, c = caps) => {
    const body = rpc('tools/call', { name: 'ask', arguments: { y: 2 }, ...extra, _meta: { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': c, 'io.modelcontextprotocol/clientInfo': { name: 'e2e', version: '1' } } });
    const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call', 'Mcp-Name': 'ask' }, body });
    const msgs = await r.messages({ timeout: 10000 });
    return { status: r.status, response: msgs.find((m) => m && m.id === body.id) };
  };
  const first = (await call()).response.result;
  assert.equal(first.resultType, 'input_required', JSON.stringify(first));
  const [k1, r1] = Object.entries(first.inputRequests)[0];
  assert.equal(r1.params.message, 'your name?');
  assert.equal(k1, 'name', "the upstream's own input key");
  assert.equal(r1.params._meta, undefined, 'a gateway hint reached the client');
  assert.notEqual(first.requestState, 'r1', 'the upstream\'s state reached the client');
  const second = (await call({ requestState: first.requestState, inputResponses: { [k1]: { action: 'accept', content: { name: 'Grace' } } } })).response.result;
  assert.equal(second.resultType, 'input_required', JSON.stringify(second));
  const [k2, r2] = Object.entries(second.inputRequests)[0];
  assert.equal(r2.params.message, 'confirm Grace?');
  assert.equal(k2, 'confirm');
  const third = (await call({ requestState: second.requestState, inputResponses: { [k2]: { action: 'decline' } } })).response.result;
  assert.equal(third.resultType, 'complete');
  assert.equal(third.content[0].text, 'modern ask: Grace decline');
  assert.equal(askCalls(u).length, 3);
  const none = await call({}, {});
  assert.equal(none.response.error.code, -32021, JSON.stringify(none.response));
});

test('ping and logging/setLevel of a 2025 client are answered by the gateway; the level reaches the 2026-only upstream in each request', async (t) => {
  const { u, gw } = await setup(t);
  const logs = [];
  const cl = await client(t, gw, { setup: (c) => c.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params)) });
  await cl.ping();
  assert.equal(textOf(await cl.callTool({ name: 'logs', arguments: {} })), 'no level');
  await cl.setLoggingLevel('warning');
  assert.equal(textOf(await cl.callTool({ name: 'logs', arguments: {} })), 'level warning');
  assert.deepEqual(logs.map((l) => l.data), ['logged at warning']);
  assert.ok(!u.log.some((x) => /"(ping|logging\/setLevel)"/.test(x.body)), 'ping or logging/setLevel reached a 2026-only upstream');
  const err = gw.logs().filter((l) => l.level === 'warn' || l.level === 'error');
  assert.deepEqual(err.filter((l) => /logging|ping/.test(JSON.stringify(l))), []);
});

test('ping, logging/setLevel and resources/subscribe sent while a per-session 2026-only upstream is still being discovered are answered by the gateway too', async (t) => {
  const u = await startRemoteUpstream({ modern: true, discoverDelayMs: 1000 });
  t.defer(() => u.close());
  const gw = await t.gateway({ config: { mcpServers: { m: { url: u.url, isolation: 'session' } }, gateway: LOOPBACK } });
  const sess = await initSession(gw.url);
  // at once, while the session's upstream is still in server/discover
  const t1 = Date.now();
  const rs = await Promise.all([
    call(gw.url, sess, 'ping', {}),
    call(gw.url, sess, 'logging/setLevel', { level: 'warning' }),
    call(gw.url, sess, 'resources/subscribe', { uri: 'test://doc' }),
  ]);
  for (const r of rs) assert.deepEqual(r.response.result, {}, JSON.stringify(r.response));
  assert.ok(u.discoveredAt > t1, 'the premise: the requests were sent before server/discover was answered');
  const c = await call(gw.url, sess, 'tools/call', { name: 'logs', arguments: {} });
  assert.equal(c.response.result.content[0].text, 'level warning', JSON.stringify(c.response));
  assert.ok(!u.log.some((x) => /"(ping|logging\/setLevel|resources\/(un)?subscribe)"/.test(x.body)), 'a removed method reached the 2026-only upstream');
  await waitFor(() => u.log.some((x) => x.body.includes('"subscriptions/listen"') && x.body.includes('test://doc')), { what: 'a listen stream for test://doc' });
});

test('resources/subscribe of a 2025 client becomes the 2026-only upstream\'s subscriptions/listen; updates reach the subscribed session only', async (t) => {
  const { u, gw } = await setup(t);
  const updates = [[], []];
  const mk = (i) => client(t, gw, { setup: (c) => c.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates[i].push(n.params.uri)) });
  const a = await mk(0);
  const b = await mk(1);
  assert.deepEqual((await a.listResources()).resources.map((r) => r.uri), ['test://doc']);
  await a.subscribeResource({ uri: 'test://doc' });
  const control = (body) => fetch(u.url.replace('/mcp', '/_control'), { method: 'POST', body: JSON.stringify(body) });
  const listens = () => u.log.filter((x) => x.body.includes('"subscriptions/listen"')).map((x) => JSON.parse(x.body));
  await waitFor(() => listens().some((m) => m.params.notifications.resourceSubscriptions.includes('test://doc')), { what: 'a listen stream for test://doc' });
  await sleep(200); // the stream is open at the upstream
  await control({ updated: 'test://doc' });
  await waitFor(() => updates[0].length === 1, { what: 'the update' });
  assert.deepEqual(updates, [['test://doc'], []]);
  assert.ok(!u.log.some((x) => /"resources\/(un)?subscribe"/.test(x.body)), 'resources/subscribe reached a 2026-only upstream');
  await a.unsubscribeResource({ uri: 'test://doc' });
  await waitFor(() => listens().at(-1).params.notifications.resourceSubscriptions.length === 0, { what: 'a listen stream without test://doc' });
  await sleep(200);
  await control({ updated: 'test://doc' });
  await sleep(300);
  assert.deepEqual(updates, [['test://doc'], []]);
  void b;
});

test('one round asking two things (elicitation and roots) is answered whole; progress of the final round reaches the client', async (t) => {
  const { u, gw } = await setup(t);
  const cl = await client(t, gw, {
    capabilities: { elicitation: {}, roots: {} },
    setup: (c) => {
      c.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: { name: 'Lin' } }));
      c.setRequestHandler(ListRootsRequestSchema, async () => ({ roots: [{ uri: 'file:///work', name: 'work' }] }));
    },
  });
  const progress = [];
  const r = await cl.callTool({ name: 'askboth', arguments: {} }, undefined, { onprogress: (p) => progress.push(p.progress) });
  assert.equal(textOf(r), 'Lin at file:///work');
  assert.deepEqual(progress, [1]);
  const calls = u.log.filter((x) => x.body.includes('"askboth"')).map((x) => JSON.parse(x.body));
  assert.equal(calls.length, 2);
  assert.deepEqual(Object.keys(calls[1].params.inputResponses).sort(), ['where', 'who']);
  assert.deepEqual(calls[0].params._meta['io.modelcontextprotocol/clientCapabilities'], { elicitation: {}, roots: {} });
  // a client that declared only one of the two gets -32021 naming the other
  const half = await client(t, gw, { capabilities: { elicitation: {} }, setup: (c) => c.setRequestHandler(ElicitRequestSchema, async () => ({ action: 'accept', content: {} })) });
  await assert.rejects(half.callTool({ name: 'askboth', arguments: {} }), (e) => e.code === -32021 && /roots \(roots\/list\)/.test(e.message));
});

test('an upstream that never stops asking is cut off after 16 rounds with an error saying so', async (t) => {
  const { u, gw } = await setup(t);
  let asked = 0;
  const cl = await client(t, gw, {
    capabilities: { elicitation: {} },
    setup: (c) => c.setRequestHandler(ElicitRequestSchema, async () => (asked++, { action: 'accept', content: {} })),
  });
  await assert.rejects(cl.callTool({ name: 'askloop', arguments: {} }), /asked the client for input more than 16 times/);
  assert.equal(asked, 16);
  assert.equal(u.log.filter((x) => x.body.includes('"askloop"')).length, 17);
});

test('tools/list_changed on the 2026-only upstream\'s listen stream reaches 2025 sessions', async (t) => {
  const { u, gw } = await setup(t);
  let changed = 0;
  const cl = await client(t, gw, { setup: (c) => c.setNotificationHandler(ToolListChangedNotificationSchema, () => changed++) });
  await cl.listTools();
  await waitFor(() => u.log.some((x) => x.body.includes('"subscriptions/listen"')), { what: 'the listen stream' });
  await sleep(200);
  await fetch(u.url.replace('/mcp', '/_control'), { method: 'POST', body: JSON.stringify({ listChanged: true }) });
  await waitFor(() => changed > 0, { what: 'notifications/tools/list_changed' });
});

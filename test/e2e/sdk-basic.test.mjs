// SDK client through the gateway fronting one mcpgate-testserver: every basic feature.
import assert from 'node:assert/strict';
import {
  CallToolResultSchema,
  CreateMessageRequestSchema,
  ElicitRequestSchema,
  LoggingMessageNotificationSchema,
  ResourceUpdatedNotificationSchema,
  ToolListChangedNotificationSchema,
} from '@modelcontextprotocol/sdk/types.js';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';

// One upstream: tool/prompt names are not namespaced.
const CONFIG = { mcpServers: { test: testserver() } };

async function setup(t, clientOpts = {}) {
  const gw = await t.gateway({ config: CONFIG });
  const c = await connect(gw.url, clientOpts);
  t.defer(() => c.close());
  return { gw, c, client: c.client };
}

test('initialize: session id, protocol version, capabilities', async (t) => {
  const { c, client } = await setup(t);
  assert.ok(c.sessionId, 'gateway must assign an Mcp-Session-Id');
  assert.match(c.sessionId, /^[\x21-\x7e]+$/, 'session id must be visible ASCII');
  assert.equal(c.transport.protocolVersion, '2025-11-25');
  const caps = client.getServerCapabilities();
  for (const k of ['tools', 'prompts', 'resources', 'logging', 'completions']) {
    assert.ok(caps?.[k], `server capability ${k} missing: ${JSON.stringify(caps)}`);
  }
  assert.ok(client.getServerVersion()?.name, 'serverInfo.name missing');
  assert.deepEqual(await client.ping(), {});
});

test('tools/list: un-namespaced names, valid schemas', async (t) => {
  const { client } = await setup(t);
  const { tools } = await client.listTools();
  const names = tools.map((x) => x.name);
  for (const n of ['echo', 'sleep', 'crash', 'get_env', 'test_simple_text', 'test_sampling', 'test_elicitation']) {
    assert.ok(names.includes(n), `tool ${n} missing from ${names.join(', ')}`);
  }
  assert.ok(!names.some((n) => n.includes('__')), `single upstream must not be namespaced: ${names.join(', ')}`);
  for (const tool of tools) {
    assert.equal(tool.inputSchema?.type, 'object', `tool ${tool.name} inputSchema.type`);
    assert.ok(tool.description, `tool ${tool.name} has no description`);
  }
  const js = tools.find((x) => x.name === 'json_schema_2020_12_tool');
  if (js) {
    assert.equal(js.inputSchema.$schema, 'https://json-schema.org/draft/2020-12/schema', '$schema must pass through');
    assert.ok(js.inputSchema.$defs, '$defs must pass through');
  }
});

test('tools/call echo and content types', async (t) => {
  const { client } = await setup(t);
  const msg = 'héllo, gateway ✓ "quoted" \\ back\nslash';
  const r = await client.callTool({ name: 'echo', arguments: { message: msg } });
  assert.equal(textOf(r), msg);
  assert.ok(!r.isError);
  const img = await client.callTool({ name: 'test_image_content', arguments: {} });
  const ib = img.content.find((b) => b.type === 'image');
  assert.ok(ib?.data && ib?.mimeType, 'image content');
  const mixed = await client.callTool({ name: 'test_multiple_content_types', arguments: {} });
  assert.ok(mixed.content.length >= 2);
  const err = await client.callTool({ name: 'test_error_handling', arguments: {} });
  assert.equal(err.isError, true);
});

test('unknown tool is a JSON-RPC error or isError result', async (t) => {
  const { client } = await setup(t);
  let r;
  try {
    r = await client.callTool({ name: 'no_such_tool_xyz', arguments: {} });
  } catch (e) {
    assert.match(String(e.code ?? e.message), /-32602|-32601|not found|unknown/i);
    return;
  }
  assert.equal(r.isError, true, `expected an error, got ${JSON.stringify(r)}`);
});

test('prompts: list, get simple, get with arguments', async (t) => {
  const { client } = await setup(t);
  const { prompts } = await client.listPrompts();
  const names = prompts.map((p) => p.name);
  for (const n of ['test_simple_prompt', 'test_prompt_with_arguments']) assert.ok(names.includes(n), `${n} in ${names}`);
  const simple = await client.getPrompt({ name: 'test_simple_prompt' });
  assert.ok(simple.messages.length > 0);
  const withArgs = await client.getPrompt({
    name: 'test_prompt_with_arguments',
    arguments: { arg1: 'firstValue', arg2: 'secondValue' },
  });
  const text = JSON.stringify(withArgs.messages);
  assert.ok(text.includes('firstValue') && text.includes('secondValue'), text);
});

test('resources: list, read text and binary, subscribe', async (t) => {
  const { client } = await setup(t);
  const { resources } = await client.listResources();
  const uris = resources.map((r) => r.uri);
  assert.ok(uris.includes('test://static-text'), uris.join(', '));
  const text = await client.readResource({ uri: 'test://static-text' });
  assert.equal(text.contents[0].uri, 'test://static-text');
  assert.ok(text.contents[0].text);
  const bin = await client.readResource({ uri: 'test://static-binary' });
  assert.ok(bin.contents[0].blob);
  assert.deepEqual(await client.subscribeResource({ uri: 'test://watched-resource' }), {});
  assert.deepEqual(await client.unsubscribeResource({ uri: 'test://watched-resource' }), {});
  await assert.rejects(client.readResource({ uri: 'test://does-not-exist-xyz' }), 'unknown resource must fail');
});

test('resource templates: list and read', async (t) => {
  const { client } = await setup(t);
  const { resourceTemplates } = await client.listResourceTemplates();
  assert.ok(
    resourceTemplates.some((x) => x.uriTemplate === 'test://template/{id}/data'),
    JSON.stringify(resourceTemplates),
  );
  const r = await client.readResource({ uri: 'test://template/123/data' });
  assert.equal(r.contents[0].uri, 'test://template/123/data');
  assert.ok(JSON.stringify(r.contents[0]).includes('123'));
});

test('completion/complete', async (t) => {
  const { client } = await setup(t);
  const r = await client.complete({
    ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
    argument: { name: 'arg1', value: 'par' },
  });
  assert.ok(Array.isArray(r.completion?.values), JSON.stringify(r));
});

test('logging: setLevel and log notifications during a call', async (t) => {
  const logs = [];
  const { client } = await setup(t, {
    setup: (cl) => cl.setNotificationHandler(LoggingMessageNotificationSchema, (n) => logs.push(n.params)),
  });
  assert.deepEqual(await client.setLoggingLevel('debug'), {});
  const r = await client.callTool({ name: 'test_tool_with_logging', arguments: {} });
  assert.ok(!r.isError);
  await waitFor(() => logs.length >= 3, { timeout: 2000, what: `3 log notifications (got ${logs.length})` });
  for (const l of logs) assert.ok(l.level && 'data' in l, JSON.stringify(l));
});

test('progress notifications reach the progress callback', async (t) => {
  const { client } = await setup(t);
  const progress = [];
  const r = await client.request(
    { method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {} } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p) },
  );
  assert.ok(!r.isError);
  assert.ok(progress.length >= 3, `expected >= 3 progress notifications, got ${JSON.stringify(progress)}`);
  for (let i = 1; i < progress.length; i++) assert.ok(progress[i].progress >= progress[i - 1].progress, 'increasing');
});

test('two sessions using the same progress token do not mix', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  t.defer(() => a.close());
  t.defer(() => b.close());
  const pa = [];
  const pb = [];
  // The SDK derives the token from its own request id, so both sessions send the same token.
  const call = (c, sink) =>
    c.client.request(
      { method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {} } },
      CallToolResultSchema,
      { onprogress: (p) => sink.push(p) },
    );
  const z = await connect(gw.url);
  t.defer(() => z.close());
  const base = [];
  await call(z, base); // how many notifications one call produces
  assert.ok(base.length >= 1);
  await Promise.all([call(a, pa), call(b, pb)]);
  assert.equal(pa.length, base.length, `session A got ${pa.length} progress notifications, expected ${base.length}`);
  assert.equal(pb.length, base.length, `session B got ${pb.length} progress notifications, expected ${base.length}`);
});

test('sampling: upstream sampling/createMessage is routed to the client', async (t) => {
  const seen = [];
  const { client } = await setup(t, {
    capabilities: { sampling: {} },
    setup: (cl) =>
      cl.setRequestHandler(CreateMessageRequestSchema, async (req) => {
        seen.push(req.params);
        return {
          role: 'assistant',
          content: { type: 'text', text: 'sampled-answer-42' },
          model: 'e2e-model',
          stopReason: 'endTurn',
        };
      }),
  });
  const r = await client.callTool({ name: 'test_sampling', arguments: { prompt: 'what is the answer?' } });
  assert.equal(seen.length, 1, 'client must receive exactly one sampling request');
  assert.ok(JSON.stringify(seen[0].messages).includes('what is the answer?'));
  assert.ok(!r.isError, JSON.stringify(r));
  assert.ok(JSON.stringify(r.content).includes('sampled-answer-42'), JSON.stringify(r));
});

test('elicitation: upstream elicitation/create is routed to the client', async (t) => {
  const seen = [];
  const { client } = await setup(t, {
    capabilities: { elicitation: {} },
    setup: (cl) =>
      cl.setRequestHandler(ElicitRequestSchema, async (req) => {
        seen.push(req.params);
        return { action: 'accept', content: { username: 'e2e-user', email: 'e2e@example.com' } };
      }),
  });
  const r = await client.callTool({ name: 'test_elicitation', arguments: { message: 'who are you?' } });
  assert.equal(seen.length, 1);
  assert.equal(seen[0].message, 'who are you?');
  // The upstream's io.mcpgate/relatedRequestId hint is for the gateway: it names ids the client never saw.
  assert.equal(seen[0]._meta?.['io.mcpgate/relatedRequestId'], undefined, JSON.stringify(seen[0]._meta));
  assert.ok(!r.isError, JSON.stringify(r));
  assert.ok(JSON.stringify(r.content).includes('e2e-user'), JSON.stringify(r));
});

test('a call that outlives its HTTP request still completes (SDK SSE stream)', async (t) => {
  const { client } = await setup(t);
  const t0 = Date.now();
  const r = await client.callTool({ name: 'sleep', arguments: { ms: 400 } });
  assert.ok(!r.isError, JSON.stringify(r));
  assert.ok(Date.now() - t0 >= 350, 'sleep returned too early');
  await sleep(10);
});

test('tools/list_changed reaches the client and the catalog is refreshed', async (t) => {
  let changed = 0;
  const { client } = await setup(t, {
    setup: (cl) => cl.setNotificationHandler(ToolListChangedNotificationSchema, () => changed++),
  });
  const before = (await client.listTools()).tools.map((x) => x.name);
  assert.ok(!before.includes('dynamic_tool'));
  const r = await client.callTool({ name: 'trigger_list_changed', arguments: {} });
  assert.equal(textOf(r), 'ok');
  await waitFor(() => changed > 0, { timeout: 3000, what: 'notifications/tools/list_changed' });
  const after = await waitFor(
    async () => {
      const names = (await client.listTools()).tools.map((x) => x.name);
      return names.includes('dynamic_tool') ? names : null;
    },
    { timeout: 3000, what: 'dynamic_tool to appear in tools/list' },
  );
  assert.ok(after.includes('echo'));
  const dyn = await client.callTool({ name: 'dynamic_tool', arguments: {} });
  assert.ok(!dyn.isError, JSON.stringify(dyn));
});

test('resources/updated reaches the subscribed session only', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const updates = { a: [], b: [] };
  const mk = (k) =>
    connect(gw.url, {
      setup: (cl) => cl.setNotificationHandler(ResourceUpdatedNotificationSchema, (n) => updates[k].push(n.params)),
    });
  const a = await mk('a');
  const b = await mk('b');
  t.defer(() => a.close());
  t.defer(() => b.close());
  await a.client.subscribeResource({ uri: 'test://watched-resource' });
  assert.equal(textOf(await b.client.callTool({ name: 'trigger_resource_update', arguments: {} })), 'ok');
  await waitFor(() => updates.a.length > 0, { timeout: 3000, what: 'notifications/resources/updated on the subscriber' });
  assert.equal(updates.a[0].uri, 'test://watched-resource');
  await sleep(200);
  assert.equal(updates.b.length, 0, 'a session that did not subscribe got resources/updated');
});

test('upstream pagination: every tool is listed through the gateway', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { big: testserver(['--tools', '300', '--page-size', '40']) } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const names = new Set();
  let cursor;
  let pages = 0;
  do {
    const r = await c.client.listTools(cursor ? { cursor } : {});
    for (const x of r.tools) {
      assert.ok(!names.has(x.name), `duplicate tool ${x.name}`);
      names.add(x.name);
    }
    cursor = r.nextCursor;
    assert.ok(++pages < 100, 'endless pagination');
  } while (cursor);
  for (let i = 0; i < 300; i++) assert.ok(names.has(`gen_${i}`), `gen_${i} missing (${names.size} tools seen)`);
  assert.ok(names.has('echo'));
  assert.equal(textOf(await c.client.callTool({ name: 'gen_299', arguments: { message: 'last' } })), 'last');
  await assert.rejects(c.client.listTools({ cursor: 'e2e-bogus-cursor' }), 'a bogus cursor must be an error');
});

// A server->client request (sampling) from a shared stdio child carries no link to the client
// request that caused it. With other sessions' calls in flight on the same child the gateway
// either attributes it correctly or fails the call clearly; it never hangs or misroutes it.
async function samplingWhileBusy(t, config) {
  const gw = await t.gateway({ config });
  const busy = await connect(gw.url, { capabilities: { sampling: {} } });
  let misrouted = 0;
  busy.client.setRequestHandler(CreateMessageRequestSchema, async () => {
    misrouted++;
    return { role: 'assistant', content: { type: 'text', text: 'WRONG-SESSION' }, model: 'x' };
  });
  const asker = await connect(gw.url, {
    capabilities: { sampling: {} },
    setup: (cl) =>
      cl.setRequestHandler(CreateMessageRequestSchema, async () => ({
        role: 'assistant',
        content: { type: 'text', text: 'right-session' },
        model: 'x',
      })),
  });
  t.defer(() => busy.close());
  t.defer(() => asker.close());
  const sleeping = busy.client.callTool({ name: 'sleep', arguments: { ms: 1500 } });
  await sleep(100);
  const t0 = Date.now();
  let r;
  try {
    r = await asker.client.callTool({ name: 'test_sampling', arguments: { prompt: 'p' } }, undefined, { timeout: 5000 });
  } catch (e) {
    r = { isError: true, content: [{ type: 'text', text: e.message }] };
  }
  const ms = Date.now() - t0;
  await sleeping;
  assert.equal(misrouted, 0, 'sampling request delivered to the wrong session');
  return { r, ms };
}

test('sampling with isolation "session" while another session has a call in flight', async (t) => {
  const { r } = await samplingWhileBusy(t, { mcpServers: { test: testserver([], { isolation: 'session' }) } });
  assert.ok(!r.isError, JSON.stringify(r));
  assert.ok(JSON.stringify(r.content).includes('right-session'), JSON.stringify(r));
});

test('sampling on a shared child while another session has a call in flight: right session or clear error', async (t) => {
  const { r, ms } = await samplingWhileBusy(t, CONFIG);
  t.log('result', r, ms);
  if (r.isError) assert.ok(ms < 2000, `error took ${ms} ms`);
  else assert.ok(JSON.stringify(r.content).includes('right-session'), JSON.stringify(r));
});

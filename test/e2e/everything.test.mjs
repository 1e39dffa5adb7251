// The gateway fronting @modelcontextprotocol/server-everything (a real third-party server, stdio).
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { CallToolResultSchema, CreateMessageRequestSchema } from '@modelcontextprotocol/sdk/types.js';
import { connect, textOf } from './lib/client.mjs';
import { EVERYTHING_JS, everythingServer } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';

const CONFIG = { mcpServers: { everything: everythingServer() } };

async function setup(t, clientOpts = {}, config = CONFIG) {
  if (!fs.existsSync(EVERYTHING_JS)) throw new Error(`${EVERYTHING_JS} missing: run npm ci in test/e2e`);
  // server-everything is a Node program: its first initialize takes a few hundred ms.
  const gw = await t.gateway({ config });
  const c = await connect(gw.url, clientOpts);
  t.defer(() => c.close());
  return { gw, client: c.client };
}

test('tools: list and call echo, get-sum, get-tiny-image, structured content', async (t) => {
  const { client } = await setup(t);
  const { tools } = await client.listTools();
  const names = tools.map((x) => x.name);
  for (const n of ['echo', 'get-sum', 'get-tiny-image', 'get-structured-content', 'trigger-long-running-operation']) {
    assert.ok(names.includes(n), `${n} missing from ${names.join(', ')}`);
  }
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'through the gate' } })), 'Echo: through the gate');
  assert.match(textOf(await client.callTool({ name: 'get-sum', arguments: { a: 2, b: 40 } })), /42/);
  const img = await client.callTool({ name: 'get-tiny-image', arguments: {} });
  const block = img.content.find((b) => b.type === 'image');
  assert.ok(block?.data && block.mimeType === 'image/png', 'image block');
  const sc = await client.callTool({ name: 'get-structured-content', arguments: { location: 'Chicago' } });
  assert.equal(typeof sc.structuredContent?.temperature, 'number', JSON.stringify(sc));
  const ann = await client.callTool({ name: 'get-annotated-message', arguments: { messageType: 'success', includeImage: false } });
  assert.ok(ann.content[0].annotations, 'content annotations must pass through');
});

test('tools: long-running operation reports progress through the gateway', async (t) => {
  const { client } = await setup(t);
  const progress = [];
  const r = await client.request(
    { method: 'tools/call', params: { name: 'trigger-long-running-operation', arguments: { duration: 1, steps: 4 } } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p) },
  );
  assert.match(textOf(r), /completed/i);
  assert.equal(progress.length, 4, JSON.stringify(progress));
  assert.deepEqual(
    progress.map((p) => p.progress),
    [1, 2, 3, 4],
  );
});

test('tools: invalid arguments are reported, not fatal', async (t) => {
  const { client } = await setup(t);
  let failed = false;
  try {
    const r = await client.callTool({ name: 'get-sum', arguments: { a: 'not a number' } });
    failed = r.isError === true;
  } catch {
    failed = true;
  }
  assert.ok(failed, 'bad arguments must produce an error');
  // The upstream keeps working.
  assert.equal(textOf(await client.callTool({ name: 'echo', arguments: { message: 'still here' } })), 'Echo: still here');
});

// server-everything names no request in its sampling/createMessage (stdio carries no relation):
// only a child of one session may take "the call in flight" for evidence of whose it is.
const samplingClient = {
  capabilities: { sampling: {} },
  setup: (cl) =>
    cl.setRequestHandler(CreateMessageRequestSchema, async () => ({
      role: 'assistant',
      content: { type: 'text', text: 'from-the-e2e-client' },
      model: 'e2e',
      stopReason: 'endTurn',
    })),
};

test('sampling request from server-everything reaches the client (isolation "session")', async (t) => {
  const { client } = await setup(t, samplingClient, {
    mcpServers: { everything: everythingServer({ isolation: 'session' }) },
  });
  const { tools } = await client.listTools();
  if (!tools.some((x) => x.name === 'trigger-sampling-request')) {
    t.skip('server-everything did not offer trigger-sampling-request (it registers it per client capability)');
  }
  const r = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
  assert.ok(JSON.stringify(r.content).includes('from-the-e2e-client'), JSON.stringify(r));
});

test('sampling request from a shared server-everything: refused to the server with a sentence, never guessed', async (t) => {
  const { client } = await setup(t, samplingClient);
  const { tools } = await client.listTools();
  if (!tools.some((x) => x.name === 'trigger-sampling-request')) {
    t.skip('server-everything did not offer trigger-sampling-request (it registers it per client capability)');
  }
  const r = await client.callTool({ name: 'trigger-sampling-request', arguments: { prompt: 'hi', maxTokens: 10 } });
  const text = JSON.stringify(r.content);
  assert.ok(!text.includes('from-the-e2e-client'), text);
  assert.match(text, /does not name which of the 1 requests in flight it serves/);
});

test('resources: list, read static, read templated text and blob', async (t) => {
  const { client } = await setup(t);
  const { resources } = await client.listResources();
  assert.ok(resources.length > 0);
  const first = await client.readResource({ uri: resources[0].uri });
  assert.equal(first.contents[0].uri, resources[0].uri);
  const { resourceTemplates } = await client.listResourceTemplates();
  const tpls = resourceTemplates.map((x) => x.uriTemplate);
  assert.ok(tpls.includes('demo://resource/dynamic/text/{resourceId}'), tpls.join(', '));
  const txt = await client.readResource({ uri: 'demo://resource/dynamic/text/1' });
  assert.match(txt.contents[0].text, /Resource 1/);
  const blob = await client.readResource({ uri: 'demo://resource/dynamic/blob/2' });
  assert.match(Buffer.from(blob.contents[0].blob, 'base64').toString(), /Resource 2/);
});

test('prompts: list, get simple and with arguments, completion', async (t) => {
  const { client } = await setup(t);
  const { prompts } = await client.listPrompts();
  const names = prompts.map((p) => p.name);
  for (const n of ['simple-prompt', 'args-prompt', 'completable-prompt']) assert.ok(names.includes(n), names.join(', '));
  const simple = await client.getPrompt({ name: 'simple-prompt' });
  assert.ok(simple.messages.length > 0);
  const withArgs = await client.getPrompt({ name: 'args-prompt', arguments: { city: 'Lisbon', state: 'LX' } });
  assert.match(JSON.stringify(withArgs.messages), /Lisbon/);
  const comp = await client.complete({
    ref: { type: 'ref/prompt', name: 'completable-prompt' },
    argument: { name: 'department', value: 'E' },
  });
  assert.deepEqual(comp.completion.values, ['Engineering']);
});

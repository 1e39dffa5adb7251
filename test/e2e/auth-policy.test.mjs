// Authorization (gateway.auth.rules): per tenant and per scope allow/deny lists decide which
// upstreams, tools, prompts and resources a principal sees; tools/list shows only what it may call
// and a call outside it is refused exactly like an unknown name. The same for prompts and resources.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { bearer } from './lib/auth.mjs';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { request } from './lib/http.mjs';
import { test } from './lib/harness.mjs';

function mkToken(tenant, name, scopes = []) {
  const token = 'mgt_' + crypto.randomBytes(32).toString('base64url');
  const sha256 = crypto.createHash('sha256').update(token).digest('hex');
  return { token, entry: { name, sha256, tenant, scopes } };
}

test('rules filter tools, prompts and resources per tenant and scope; calls outside are refused', async (t) => {
  const acme = mkToken('acme', 'acme-ci');
  const root = mkToken('acme', 'acme-root', ['admin']);
  const stranger = mkToken('initech', 'initech-ci');
  const gw = await t.gateway({
    config: {
      mcpServers: { alpha: testserver(['--name', 'alpha']), beta: testserver(['--name', 'beta']) },
      gateway: {
        auth: {
          tokens: [acme.entry, root.entry, stranger.entry],
          rules: [
            {
              tenant: 'acme',
              allow: ['alpha/echo', 'alpha/test_simple_prompt', 'alpha/test://static-text', 'beta/*echo*'],
              deny: ['*/get_env'],
            },
            { scope: 'admin', allow: ['*'] },
          ],
        },
      },
    },
  });
  const c = await connect(gw.url, { requestInit: { headers: bearer(acme.token) } });
  t.defer(() => c.close());
  const tools = (await c.client.listTools()).tools.map((x) => x.name).sort();
  assert.deepEqual(tools, ['alpha__echo', 'beta__echo']);
  assert.equal(textOf(await c.client.callTool({ name: 'alpha__echo', arguments: { message: 'ok' } })), 'ok');
  for (const name of ['alpha__sleep', 'beta__get_env', 'alpha__get_env']) {
    await assert.rejects(c.client.callTool({ name, arguments: {} }), (e) => {
      assert.equal(e.code, -32602);
      assert.match(e.message, /unknown tool/);
      return true;
    }, name);
  }
  const prompts = (await c.client.listPrompts()).prompts.map((x) => x.name);
  assert.deepEqual(prompts, ['alpha__test_simple_prompt']);
  await c.client.getPrompt({ name: 'alpha__test_simple_prompt' });
  await assert.rejects(c.client.getPrompt({ name: 'alpha__test_prompt_with_image' }));
  const resources = (await c.client.listResources()).resources.map((x) => x.uri);
  assert.deepEqual(resources, ['test://static-text']);
  assert.deepEqual((await c.client.listResourceTemplates()).resourceTemplates, []);
  await c.client.readResource({ uri: 'test://static-text' });
  await assert.rejects(c.client.readResource({ uri: 'test://static-binary' }), (e) => e.code === -32002);
  await assert.rejects(c.client.subscribeResource({ uri: 'test://watched-resource' }));

  // A scope widens it (deny still wins).
  const r = await connect(gw.url, { requestInit: { headers: bearer(root.token) } });
  t.defer(() => r.close());
  const rootTools = (await r.client.listTools()).tools.map((x) => x.name);
  assert.ok(rootTools.includes('alpha__sleep') && rootTools.includes('beta__test_simple_text'));
  assert.ok(!rootTools.includes('alpha__get_env'), 'deny of the tenant rule still applies');

  // No rule for this tenant: nothing (default deny once rules exist).
  const s = await connect(gw.url, { requestInit: { headers: bearer(stranger.token) } });
  t.defer(() => s.close());
  assert.deepEqual((await s.client.listTools()).tools, []);
  await assert.rejects(s.client.callTool({ name: 'alpha__echo', arguments: { message: 'x' } }));
  await gw.waitLog((l) => l.msg === 'refused by gateway.auth.rules' && l.tenant === 'initech', { what: 'the refusal for initech' });
});

test('2026-07-28 stateless requests are authenticated and filtered the same way', async (t) => {
  const acme = mkToken('acme', 'acme-ci');
  const gw = await t.gateway({
    config: {
      mcpServers: { alpha: testserver(['--name', 'alpha']) },
      gateway: { auth: { tokens: [acme.entry], rules: [{ tenant: 'acme', allow: ['alpha/echo'] }] } },
    },
  });
  const V = '2026-07-28';
  const modern = async (method, params, headers = {}) => {
    const body = {
      jsonrpc: '2.0',
      id: 1,
      method,
      params: {
        ...params,
        _meta: { 'io.modelcontextprotocol/protocolVersion': V, 'io.modelcontextprotocol/clientCapabilities': {} },
      },
    };
    const h = { Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': V, 'Mcp-Method': method, ...headers };
    if (method === 'tools/call') h['Mcp-Name'] = params.name;
    const r = await request(gw.url, { headers: h, body });
    const msgs = r.status === 200 ? await r.messages() : [await r.json()];
    return { status: r.status, msg: msgs.find((m) => m && (m.result || m.error)), r };
  };
  assert.equal((await modern('tools/list', {})).status, 401);
  const list = await modern('tools/list', {}, bearer(acme.token));
  assert.equal(list.status, 200);
  assert.deepEqual(list.msg.result.tools.map((x) => x.name), ['echo']);
  assert.equal(list.msg.result.cacheScope, 'private');
  const ok = await modern('tools/call', { name: 'echo', arguments: { message: 'm' } }, bearer(acme.token));
  assert.equal(ok.msg.result.content[0].text, 'm');
  const no = await modern('tools/call', { name: 'get_env', arguments: {} }, bearer(acme.token));
  assert.ok(no.msg.error, JSON.stringify(no.msg));
});

// Two upstreams: namespaced names, routing, and one broken upstream that must not take the other down.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver, waitReadyz } from './lib/gateway.mjs';
import { scaled, test } from './lib/harness.mjs';

const READY = /^(ready|up|ok|running|healthy)$/i;

// Maps upstream name -> state string from /readyz, whatever its exact shape:
// {upstreams: {name: {state}}}, {upstreams: [{name, state}]}, {servers: ...}, {name: "state"}.
export function upstreamStates(json) {
  const out = {};
  const stateOf = (v) => (typeof v === 'string' ? v : v?.state ?? v?.status ?? (v?.ready === true ? 'ready' : v?.ready === false ? 'down' : undefined));
  const visit = (coll) => {
    if (Array.isArray(coll)) {
      for (const v of coll) if (v && typeof v === 'object' && v.name) out[v.name] = stateOf(v);
    } else if (coll && typeof coll === 'object') {
      for (const [k, v] of Object.entries(coll)) {
        const s = stateOf(v);
        if (typeof s === 'string') out[k] = s;
      }
    }
  };
  visit(json?.upstreams ?? json?.servers ?? json?.mcpServers ?? json);
  return out;
}

function twoServers(betaEntry) {
  return {
    mcpServers: {
      alpha: testserver(['--name', 'alpha'], { env: { E2E_WHO: 'alpha' } }),
      beta: betaEntry ?? testserver(['--name', 'beta'], { env: { E2E_WHO: 'beta' } }),
    },
  };
}

async function envOf(client, tool) {
  const r = await client.callTool({ name: tool, arguments: {} });
  assert.ok(!r.isError, `${tool}: ${JSON.stringify(r)}`);
  return JSON.parse(textOf(r));
}

test('two upstreams: tools and prompts are namespaced <server>__<name>', async (t) => {
  const gw = await t.gateway({ config: twoServers() });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const { tools } = await c.client.listTools();
  const names = tools.map((x) => x.name);
  for (const n of ['alpha__echo', 'beta__echo', 'alpha__get_env', 'beta__get_env']) {
    assert.ok(names.includes(n), `${n} missing from ${names.join(', ')}`);
  }
  assert.ok(!names.includes('echo'), 'bare names must not appear with two upstreams');
  assert.ok(names.every((n) => n.startsWith('alpha__') || n.startsWith('beta__')), names.join(', '));
  const { prompts } = await c.client.listPrompts();
  const pn = prompts.map((p) => p.name);
  assert.ok(pn.includes('alpha__test_simple_prompt') && pn.includes('beta__test_simple_prompt'), pn.join(', '));
  const p = await c.client.getPrompt({
    name: 'beta__test_prompt_with_arguments',
    arguments: { arg1: 'one', arg2: 'two' },
  });
  assert.match(JSON.stringify(p.messages), /one/);
});

test('two upstreams: calls are routed to the right child', async (t) => {
  const gw = await t.gateway({ config: twoServers(), env: { MG_E2E_SECRET: 'must-not-leak' } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  assert.equal(textOf(await c.client.callTool({ name: 'alpha__echo', arguments: { message: 'to-alpha' } })), 'to-alpha');
  assert.equal(textOf(await c.client.callTool({ name: 'beta__echo', arguments: { message: 'to-beta' } })), 'to-beta');
  assert.equal((await envOf(c.client, 'alpha__get_env')).E2E_WHO, 'alpha');
  assert.equal((await envOf(c.client, 'beta__get_env')).E2E_WHO, 'beta');
  // Declared env only: a variable of the gateway's own environment must not leak to children.
  const env = await envOf(c.client, 'alpha__get_env');
  assert.equal(env.MG_E2E_SECRET, undefined, 'gateway environment leaked into the child');
  const ready = await waitReadyz(gw, (j) => {
    const s = upstreamStates(j);
    return READY.test(s.alpha ?? '') && READY.test(s.beta ?? '');
  });
  t.log('readyz', ready);
}, { timeout: 20000 });

async function brokenUpstreamCase(t, betaEntry) {
  const gw = await t.gateway({ config: twoServers(betaEntry) });
  // The healthy upstream serves while the broken one is down (and maybe retried with backoff).
  const ready = await waitReadyz(gw, (j) => {
    const s = upstreamStates(j);
    return READY.test(s.alpha ?? '') && s.beta !== undefined && !READY.test(s.beta);
  });
  t.log('readyz', ready);
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const { tools } = await c.client.listTools();
  const names = tools.map((x) => x.name);
  assert.ok(names.includes('alpha__echo'), names.join(', '));
  assert.equal(textOf(await c.client.callTool({ name: 'alpha__echo', arguments: { message: 'ok' } })), 'ok');
  // Calling the broken one fails quickly with an error, it does not hang.
  const t0 = Date.now();
  let failed = false;
  try {
    const r = await c.client.callTool({ name: 'beta__echo', arguments: { message: 'x' } }, undefined, { timeout: 5000 });
    failed = r.isError === true;
  } catch (e) {
    failed = true;
    t.log('beta__echo error:', e.message);
  }
  assert.ok(failed, 'a call to the broken upstream must fail');
  assert.ok(Date.now() - t0 < scaled(3000), 'a call to a down upstream must fail fast');
  // Still healthy afterwards.
  assert.equal(textOf(await c.client.callTool({ name: 'alpha__echo', arguments: { message: 'again' } })), 'again');
  assert.equal((await gw.healthz()).status, 200);
  const states = upstreamStates((await gw.readyz()).json);
  assert.ok(READY.test(states.alpha) && !READY.test(states.beta), JSON.stringify(states));
}

test('upstream whose command does not exist: the other keeps working; /readyz names it', async (t) => {
  await brokenUpstreamCase(t, { command: '/nonexistent/e2e/no-such-server', args: [] });
}, { timeout: 20000 });

test('upstream that fails initialize (--fail-init): the other keeps working; /readyz names it', async (t) => {
  await brokenUpstreamCase(t, testserver(['--name', 'beta', '--fail-init']));
}, { timeout: 20000 });

test('disabled upstream is not started and not listed', async (t) => {
  const cfg = twoServers(testserver(['--name', 'beta'], { disabled: true }));
  const gw = await t.gateway({ config: cfg });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const names = (await c.client.listTools()).tools.map((x) => x.name);
  assert.ok(!names.some((n) => n.startsWith('beta__')), names.join(', '));
  assert.ok(names.length > 0);
});

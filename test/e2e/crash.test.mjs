// An upstream child that dies: in-flight calls fail fast and name the server; it is restarted.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver, waitReadyz } from './lib/gateway.mjs';
import { scaled, test, waitFor } from './lib/harness.mjs';

const FAST = scaled(1000); // "fails fast": within 1 s (relaxed by MG_E2E_TIMEOUT_SCALE)

const NAME = 'crashy';
const CONFIG = { mcpServers: { [NAME]: testserver(['--name', NAME]) } };

// Runs a tool call; resolves {ms, error (string) | null, result}. An isError result counts as error.
async function timedCall(client, name, args, timeout = 10000) {
  const t0 = Date.now();
  try {
    const result = await client.callTool({ name, arguments: args }, undefined, { timeout });
    const error = result.isError ? JSON.stringify(result.content) : null;
    return { ms: Date.now() - t0, error, result };
  } catch (e) {
    return { ms: Date.now() - t0, error: `${e.code ?? ''} ${e.message}`, result: null };
  }
}

test('crash: the call fails within 1 s naming the server; later calls succeed after restart', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'before' } })), 'before');
  const r = await timedCall(c.client, 'crash', {});
  t.log('crash call', r);
  assert.ok(r.error, `crash must produce an error, got ${JSON.stringify(r.result)}`);
  assert.ok(r.ms < FAST, `error took ${r.ms} ms`);
  assert.ok(r.error.includes(NAME), `error must name the server '${NAME}': ${r.error}`);
  // Restarted with backoff: echo works again on the same session.
  const after = await waitFor(
    async () => {
      const x = await timedCall(c.client, 'echo', { message: 'after' }, 2000);
      return x.error ? null : x;
    },
    { timeout: 5000, interval: 100, what: 'echo to succeed after the restart' },
  );
  assert.equal(textOf(after.result), 'after');
  await waitReadyz(gw, (j) => JSON.stringify(j).includes(NAME));
  // And a second crash is handled the same way.
  const r2 = await timedCall(c.client, 'crash', {});
  assert.ok(r2.error && r2.ms < FAST, JSON.stringify(r2));
  await waitFor(async () => !(await timedCall(c.client, 'echo', { message: 'x' }, 2000)).error, {
    timeout: 5000,
    interval: 100,
    what: 'second restart',
  });
});

test("crash: another session's in-flight sleep on the same child fails fast", async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  t.defer(() => a.close());
  t.defer(() => b.close());
  const sleeping = timedCall(a.client, 'sleep', { ms: 5000 });
  await new Promise((r) => setTimeout(r, 300));
  const tCrash = Date.now();
  const crash = await timedCall(b.client, 'crash', {});
  assert.ok(crash.error, 'crash call must fail');
  const s = await sleeping;
  const afterCrash = Date.now() - tCrash;
  t.log('sleep call', s, 'finished', afterCrash, 'ms after the crash call started');
  assert.ok(s.error, `in-flight sleep must fail when its child dies, got ${JSON.stringify(s.result)}`);
  assert.ok(afterCrash < FAST + 500, `in-flight sleep failed ${afterCrash} ms after the crash (should be immediate)`);
  assert.ok(s.error.includes(NAME), `error must name the server: ${s.error}`);
  // Both sessions recover.
  for (const c of [a, b]) {
    await waitFor(async () => !(await timedCall(c.client, 'echo', { message: 'ok' }, 2000)).error, {
      timeout: 5000,
      interval: 100,
      what: 'echo after restart',
    });
  }
});

test('crash: the gateway does not hang when the child keeps crashing', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  for (let i = 0; i < 3; i++) {
    await waitFor(async () => !(await timedCall(c.client, 'echo', { message: 'ok' }, 2000)).error, {
      timeout: 8000,
      interval: 100,
      what: `restart ${i}`,
    });
    const r = await timedCall(c.client, 'crash', {});
    assert.ok(r.error && r.ms < FAST, JSON.stringify(r));
  }
  assert.equal((await gw.healthz()).status, 200);
}, { timeout: 40000 });

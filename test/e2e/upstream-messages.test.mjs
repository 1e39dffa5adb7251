// Messages from upstreams that name no request, noise from upstreams, and how a failed start is
// reported: a shared child's unrelated log lines never reach a bystander session; roots are not
// declared to a shared child and a stray roots/list is refused with a true sentence; isolation
// "tenant"; a flood of junk is logged a bounded number of times; a child that exits during
// initialize is explained to the client in its terms and to the operator (log at warn, /readyz)
// with its last stderr lines, secrets masked.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import path from 'node:path';
import { LoggingMessageNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connect, textOf } from './lib/client.mjs';
import { E2E_DIR, waitReadyz } from './lib/gateway.mjs';
import { bearer } from './lib/auth.mjs';
import { sleep, test, waitFor, scaled } from './lib/harness.mjs';

const FIXTURE = path.join(E2E_DIR, 'fixtures', 'noisy-upstream.mjs');
const noisy = (args = [], more = {}) => ({ command: process.execPath, args: [FIXTURE, ...args], ...more });

function logsOf(client) {
  const seen = [];
  client.setNotificationHandler(LoggingMessageNotificationSchema, (n) => seen.push(n.params));
  return seen;
}

test('shared child: a log line no request asked for never reaches the session whose call is in flight', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { noisy: noisy() } } });
  let aLogs, bLogs;
  const a = await connect(gw.url, { setup: (cl) => (aLogs = logsOf(cl)) });
  t.defer(() => a.close());
  const b = await connect(gw.url, { setup: (cl) => (bLogs = logsOf(cl)) });
  t.defer(() => b.close());
  await a.client.setLoggingLevel('debug'); // A asks for the server's logs; B does not
  const long = b.client.callTool({ name: 'long', arguments: { ms: 2000 } }); // the only call in flight
  await sleep(200);
  assert.equal(textOf(await a.client.callTool({ name: 'log_later', arguments: { delay_ms: 300, count: 3, tag: 'A' } })), 'scheduled');
  await waitFor(() => aLogs.filter((l) => /^A /.test(l.data)).length === 3, { what: "A's three log lines", timeout: 5000 });
  assert.equal(textOf(await long), 'done 2000');
  await sleep(100);
  assert.deepEqual(bLogs.filter((l) => /^A /.test(l.data)), [], "B received A's log lines");
});

test('shared child: a roots/list with nothing in flight is refused with a true sentence; roots.listChanged only per session', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { shared: noisy(['--roots-at-start']), own: noisy([], { isolation: 'session' }) } },
  });
  const line = await gw.waitLog((l) => l.upstream === 'shared' && /roots\/list/.test(l.msg || ''), {
    what: 'the refusal of roots/list',
  });
  assert.match(line.msg, /no client request was in flight on server 'shared'/);
  assert.ok(!gw.logs().some((l) => /several requests in flight/.test(l.msg || '')), 'false claim in the log');
  // the child heard the same sentence
  await gw.waitLog((l) => /roots\/list answer: .*no client request was in flight/.test(l.msg || ''), {
    what: 'the answer the child got',
  });
  const c = await connect(gw.url, { capabilities: { roots: { listChanged: true }, sampling: {} } });
  t.defer(() => c.close());
  const shared = JSON.parse(textOf(await c.client.callTool({ name: 'shared__caps', arguments: {} })));
  const own = JSON.parse(textOf(await c.client.callTool({ name: 'own__caps', arguments: {} })));
  assert.deepEqual(shared.roots, {}, 'a shared child serves no one client\'s roots list');
  assert.ok(shared.sampling && shared.elicitation, JSON.stringify(shared));
  assert.deepEqual(own.roots, { listChanged: true }, 'roots not declared to a per-session child');
});

function mkToken(tenant, name) {
  const token = 'mgt_' + crypto.randomBytes(32).toString('base64url');
  const sha256 = crypto.createHash('sha256').update(token).digest('hex');
  return { token, entry: { name, sha256, tenant, scopes: ['tools'] } };
}

test('isolation "tenant": one child pool per tenant; a shared server serving several tenants is warned about', async (t) => {
  const a1 = mkToken('acme', 'a1');
  const a2 = mkToken('acme', 'a2');
  const b1 = mkToken('globex', 'b1');
  const gw = await t.gateway({
    config: {
      mcpServers: { perTenant: noisy([], { isolation: 'tenant' }), common: noisy() },
      gateway: { auth: { tokens: [a1, a2, b1].map((x) => x.entry) } },
    },
  });
  await gw.waitLog((l) => l.level === 'warn' && l.upstream === 'common' && /shared by every tenant/.test(l.msg), {
    what: 'the start-up warning for the shared server',
  });
  assert.ok(!gw.logs().some((l) => l.upstream === 'perTenant' && /shared by every tenant/.test(l.msg || '')));
  const pidVia = async (tok) => {
    const c = await connect(gw.url, { requestInit: { headers: bearer(tok.token) } });
    t.defer(() => c.close());
    return textOf(await c.client.callTool({ name: 'perTenant__pid', arguments: {} }));
  };
  const pa1 = await pidVia(a1);
  const pa2 = await pidVia(a2);
  const pb1 = await pidVia(b1);
  assert.equal(pa1, pa2, 'two principals of one tenant should share its pool');
  assert.notEqual(pa1, pb1, 'two tenants got the same child');
  const r = await gw.readyz();
  const u = r.json.upstreams.find((x) => x.name === 'perTenant');
  assert.equal(u.isolation, 'tenant');
  assert.equal(u.pools, 2);
});

test('a flood of junk from an upstream is logged a bounded number of times; the gateway stays responsive', async (t) => {
  const gw = await t.gateway({
    config: {
      mcpServers: {
        junk: { command: 'sh', args: ['-c', 'yes not-json & yes stderr-noise >&2 & wait'] },
        good: noisy(),
      },
    },
  });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const t0 = Date.now();
  let calls = 0;
  while (Date.now() - t0 < scaled(3000)) {
    const s = Date.now();
    assert.match(textOf(await c.client.callTool({ name: 'good__pid', arguments: {} })), /^\d+$/);
    assert.ok(Date.now() - s < scaled(1000), `a call took ${Date.now() - s} ms during the flood`);
    calls++;
    await sleep(50);
  }
  const junk = gw.logs().filter((l) => l.upstream === 'junk');
  t.log(`${calls} calls answered; ${junk.length} log lines about 'junk' in 3 s`);
  assert.ok(junk.length < 300, `${junk.length} log lines for one noisy upstream`);
  await gw.waitLog((l) => l.upstream === 'junk' && l.stream === 'stderr', { what: 'some stderr lines' });
  await gw.waitLog((l) => l.upstream === 'junk' && /not JSON/.test(l.msg), { what: 'some junk lines' });
});

test('exit during initialize: the client hears it in its terms; stderr (masked) at warn and in /readyz', async (t) => {
  const gw = await t.gateway({
    config: {
      mcpServers: { quitter: noisy(['--exit-during-init', '3'], { env: { API_KEY: 'sk-live-0123456789abcdef' } }) },
    },
  });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  let err;
  try {
    await c.client.callTool({ name: 'pid', arguments: {} });
  } catch (e) {
    err = e;
  }
  assert.ok(err, 'the call should fail');
  assert.match(err.message, /the 'quitter' server failed to start \(exit status 3\); ask the gateway's operator/);
  assert.doesNotMatch(err.message, /logged above|stderr/);
  const warn = await gw.waitLog((l) => l.level === 'warn' && /quitter' exited with status 3 during initialize/.test(l.msg), {
    what: 'the warn line with the stderr tail',
  });
  assert.ok(Array.isArray(warn.stderr) && warn.stderr.length >= 3, JSON.stringify(warn));
  assert.ok(warn.stderr.some((s) => /fatal: backend refused the key/.test(s)), JSON.stringify(warn.stderr));
  assert.ok(warn.stderr.some((s) => s === 'noisy: using key *** for the backend'), JSON.stringify(warn.stderr));
  assert.ok(warn.stderr.some((s) => /Bearer \*\*\*/.test(s)), JSON.stringify(warn.stderr));
  const all = gw.stderrText();
  assert.ok(!all.includes('sk-live-0123456789abcdef'), 'the env secret reached the log');
  assert.ok(!all.includes('abcdefghijklmnop123'), 'the bearer token reached the log');
  const r = await waitReadyz(gw, (j) => j.upstreams.some((u) => u.name === 'quitter' && u.stderr));
  const u = r.upstreams.find((x) => x.name === 'quitter');
  assert.ok(u.stderr.includes('noisy: using key *** for the backend'), JSON.stringify(u));
  assert.ok(!JSON.stringify(r).includes('sk-live'), 'the secret reached /readyz');
});

// An upstream's own list_changed reaches only the sessions and listeners that can see that server:
// a tenant pool's (isolation "tenant") goes to its tenant's sessions only, and a server that
// gateway.auth.rules hide from a principal is never heard of by it. Four principals (two of tenant
// ta, one each of tb and tc) hold sessions with GET streams open, and tc also a 2026-07-28
// subscriptions/listen stream; each server in turn changes its tools list.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { requireBinaries, startRedis, waitStore } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, call, collectMethods, eventJson, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

const TOOLS = 'notifications/tools/list_changed';

function token(name, tenant) {
  const t = 'mgt_' + crypto.randomBytes(32).toString('base64url');
  return { t, name, tenant, entry: { name, sha256: crypto.createHash('sha256').update(t).digest('hex'), tenant, scopes: [] } };
}

test('an upstream\'s list_changed reaches only its tenant\'s sessions and the principals the rules let see it', async (t) => {
  const a = token('a', 'ta'), a2 = token('a2', 'ta'), b = token('b', 'tb'), c = token('c', 'tc');
  const gw = await t.gateway({
    config: {
      mcpServers: {
        perten: testserver(['--name', 'perten'], { isolation: 'tenant' }),
        common: testserver(['--name', 'common']),
        secret: testserver(['--name', 'secret']),
      },
      gateway: {
        auth: {
          tokens: [a, a2, b, c].map((x) => x.entry),
          rules: [
            { tenant: 'ta', allow: ['perten', 'common', 'secret'] },
            { tenant: 'tb', allow: ['perten', 'common', 'secret'] },
            { tenant: 'tc', allow: ['perten', 'common'] },
          ],
        },
      },
    },
  });
  const open = async (tok) => {
    const headers = { Authorization: `Bearer ${tok.t}` };
    const s = await initSession(gw.url, { headers });
    const get = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, headers), timeout: scaled(120000) });
    assert.equal(get.status, 200);
    const l = collectMethods(get);
    t.defer(() => l.stop());
    return { ...l, s, headers, name: tok.name };
  };
  const all = [await open(a), await open(a2), await open(b), await open(c)];
  const [la, la2, lb, lc] = all;

  // tc's 2026-07-28 listener: stateless, its principal from the token.
  const V = '2026-07-28';
  const body = rpc('subscriptions/listen', {
    notifications: { toolsListChanged: true },
    _meta: {
      'io.modelcontextprotocol/protocolVersion': V,
      'io.modelcontextprotocol/clientCapabilities': {},
      'io.modelcontextprotocol/clientInfo': { name: 'e2e-reach', version: '1' },
    },
  });
  const listen = await request(gw.url, {
    headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'subscriptions/listen', Authorization: `Bearer ${c.t}` },
    body,
    timeout: scaled(120000),
  });
  assert.equal(listen.status, 200);
  let ev = await listen.next(scaled(5000));
  while (ev && !ev.data) ev = await listen.next(scaled(5000));
  assert.equal(eventJson(ev).method, 'notifications/subscriptions/acknowledged');
  const ll = collectMethods(listen);
  t.defer(() => ll.stop());
  const listeners = [...all, { ...ll, name: 'c (2026 listener)' }];

  // Every tenant's pool of perten exists before the first change (a pool starts on first use).
  for (const l of all) {
    const r = await call(gw.url, l.s, 'tools/call', { name: 'perten__echo', arguments: { message: 'x' } }, { headers: l.headers });
    assert.equal(r.response.result?.content?.[0]?.text, 'x', JSON.stringify(r.response));
  }

  // by calls the server's trigger_list_changed; the listeners named in hear get tools/list_changed
  // and, a bounded wait after the last of them did, the others got nothing.
  const step = async (what, by, server, hear) => {
    const from = listeners.map((l) => l.got.filter((m) => m === TOOLS).length);
    const r = await call(gw.url, by.s, 'tools/call', { name: `${server}__trigger_list_changed`, arguments: {} }, { headers: by.headers });
    assert.equal(r.response.result?.content?.[0]?.text, 'ok', `${what}: ${JSON.stringify(r.response)}`);
    const heard = () => listeners.map((l, i) => l.got.filter((m) => m === TOOLS).length > from[i]);
    await waitFor(() => hear.every((n) => heard()[listeners.findIndex((l) => l.name === n)]), {
      timeout: scaled(10000),
      what: `${what}: ${hear.join(', ')} hear tools/list_changed`,
    });
    await sleep(scaled(400)); // the fan-out is debounced 50 ms: ample time for a stray one to show up
    const got = listeners.filter((l, i) => heard()[i]).map((l) => l.name);
    assert.deepEqual(got.sort(), [...hear].sort(), `${what}: who heard tools/list_changed`);
  };
  // A tenant pool: its tenant's two sessions only; not tb's, not tc's session or listener.
  await step('ta\'s pool of perten', la, 'perten', ['a', 'a2']);
  await step('tb\'s pool of perten', lb, 'perten', ['b']);
  // A shared server the rules hide from tc.
  await step('secret (hidden from tc)', la2, 'secret', ['a', 'a2', 'b']);
  // A shared server everyone sees: every session and the listener (the control).
  await step('common (everyone)', lc, 'common', ['a', 'a2', 'b', 'c', 'c (2026 listener)']);
  // tc's own pool of perten: its session and its listener.
  await step('tc\'s pool of perten', lc, 'perten', ['c', 'c (2026 listener)']);
}, { timeout: 120000 });

test('with 2 replicas sharing sessions, the bus carries whose change it is: each replica tells only the streams it reaches, once', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const a = token('a', 'ta'), b = token('b', 'tb');
  const config = {
    mcpServers: {
      perten: testserver(['--name', 'perten'], { isolation: 'tenant' }),
      common: testserver(['--name', 'common']),
      secret: testserver(['--name', 'secret']),
    },
    gateway: {
      sessions: { store: redis.url(0), secret: 'e2e-cluster-secret-0123456789' },
      auth: {
        tokens: [a, b].map((x) => x.entry),
        rules: [
          { tenant: 'ta', allow: ['perten', 'common'] },
          { tenant: 'tb', allow: ['perten', 'common', 'secret'] },
        ],
      },
    },
  };
  const gws = [await t.gateway({ config }), await t.gateway({ config })];
  await waitStore(gws, true);
  // Each session is made on one replica and listens on the other.
  const open = async (tok, made, listens) => {
    const headers = { Authorization: `Bearer ${tok.t}` };
    const s = await initSession(gws[made].url, { headers });
    const get = await request(gws[listens].url, { method: 'GET', headers: sessionHeaders(s, headers), timeout: scaled(120000) });
    assert.equal(get.status, 200);
    const l = collectMethods(get);
    t.defer(() => l.stop());
    return { ...l, s, headers, url: gws[made].url };
  };
  const la = await open(a, 0, 1), lb = await open(b, 1, 0);
  await sleep(scaled(300)); // the followers catch up with the store
  const step = async (what, by, server, hear) => {
    const from = { a: la.got.length, b: lb.got.length };
    const r = await call(by.url, by.s, 'tools/call', { name: `${server}__trigger_list_changed`, arguments: {} }, { headers: by.headers });
    assert.equal(r.response.result?.content?.[0]?.text, 'ok', `${what}: ${JSON.stringify(r.response)}`);
    const told = (k) => (k === 'a' ? la : lb).got.slice(from[k]).filter((m) => m === TOOLS).length;
    await waitFor(() => hear.every((k) => told(k) > 0), { timeout: scaled(10000), what: `${what}: tools/list_changed to ${hear.join(' and ')}` });
    await sleep(scaled(400));
    for (const k of ['a', 'b']) assert.equal(told(k), hear.includes(k) ? 1 : 0, `${what}: session ${k} was told ${told(k)} times`);
  };
  await step('ta\'s pool of perten', la, 'perten', ['a']);
  await step('secret (hidden from ta)', lb, 'secret', ['b']);
  await step('common (both)', la, 'common', ['a', 'b']);
}, { timeout: 60000 });

// Hot reload sends list_changed only to the sessions whose catalog can have changed: two
// sessions of two tenants (gateway.auth.rules give each one server of its own and one shared
// server) listen on their GET streams while the config changes. A server only one tenant can see
// changes: that session hears it, the other does not. A rule for one tenant changes: only its
// session hears it. A gateway.tools filter for one tenant: only its session hears tools changed.
// The profile one session chose changes: only it hears tools changed, and its next tools/list
// follows the new profile. The shared server changes: both hear it. With replicas sharing
// sessions, each replica tells the GET streams it serves, once per reload that concerns them.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { requireBinaries, startRedis, waitStore } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { call, collectMethods as listen, initSession, request, sessionHeaders } from './lib/http.mjs';
import { configDir } from './lib/policy.mjs';

function token() {
  const t = 'mgt_' + crypto.randomBytes(32).toString('base64url');
  return { t, sha256: crypto.createHash('sha256').update(t).digest('hex') };
}

test('reload: list_changed goes only to the sessions whose catalog changed', async (t) => {
  const a = token(), b = token();
  const c = configDir(t, undefined, 'mcpgate-reload-lc-');
  const base = {
    servers: {
      common: ['--name', 'common'],
      onlya: ['--name', 'onlya'],
      onlyb: ['--name', 'onlyb'],
      toolsa: ['--name', 'toolsa', '--tools-only'],
    },
    rules: { a: ['common', 'onlya', 'toolsa'], b: ['common', 'onlyb'] },
    tools: { profiles: { pa: { deny: ['none'] }, pb: { deny: ['none'] } } },
  };
  const write = (v) =>
    fs.writeFileSync(
      c.file,
      JSON.stringify({
        mcpServers: Object.fromEntries(Object.entries(v.servers).map(([k, args]) => [k, testserver(args)])),
        gateway: {
          limits: { shutdownGraceMs: 2000 },
          auth: {
            tokens: [
              { name: 'a', sha256: a.sha256, tenant: 'ta', scopes: [] },
              { name: 'b', sha256: b.sha256, tenant: 'tb', scopes: [] },
            ],
            rules: [
              { tenant: 'ta', allow: v.rules.a },
              { tenant: 'tb', allow: v.rules.b },
            ],
          },
          tools: v.tools,
        },
      }),
    );
  write(base);
  const gw = await t.gateway({ args: ['--config', c.file] });
  const open = async (tok, profile) => {
    const headers = { Authorization: `Bearer ${tok.t}` };
    const s = await initSession(`${gw.url}?profile=${profile}`, { headers });
    const get = await request(gw.url, { method: 'GET', headers: sessionHeaders(s, headers), timeout: scaled(120000) });
    assert.equal(get.status, 200);
    return { ...listen(get), s, headers };
  };
  const la = await open(a, 'pa'), lb = await open(b, 'pb');
  const tools = async (l) =>
    (await call(gw.url, l.s, 'tools/list', {}, { headers: l.headers })).response.result.tools.map((x) => x.name).sort();
  let reloads = 0;
  // Reloads to v; returns once the sessions that should hear tools/list_changed did, and a
  // bounded wait after it brought the others nothing.
  const step = async (what, v, hear) => {
    const from = { a: la.got.length, b: lb.got.length };
    write(v);
    gw.proc.kill('SIGHUP');
    reloads++;
    await waitFor(async () => (await gw.readyz()).json.config.reloads === reloads, { timeout: 10000, what: `${what}: the reload` });
    const since = (l, k) => l.got.slice(from[k]);
    await waitFor(() => hear.every((k) => since(k === 'a' ? la : lb, k).includes('notifications/tools/list_changed')), {
      timeout: 5000,
      what: `${what}: tools/list_changed to ${hear.join(' and ')}`,
    });
    await sleep(scaled(400)); // the former fan-out was debounced 50 ms: ample time to show up
    for (const k of ['a', 'b'])
      if (!hear.includes(k))
        assert.deepEqual(since(k === 'a' ? la : lb, k), [], `${what}: session ${k} was told its lists changed`);
    return { a: since(la, 'a'), b: since(lb, 'b') };
  };
  // A server only tenant a sees changes (a restart with another entry): a hears it, b does not.
  const v1 = { ...base, servers: { ...base.servers, onlya: ['--name', 'onlya-2'] } };
  await step('onlya changed', v1, ['a']);
  // A rule for tenant b changes: b hears it.
  const v2 = { ...v1, rules: { ...v1.rules, b: ['common', 'onlyb', 'onlya/echo'] } };
  await step('the rule of tenant b changed', v2, ['b']);
  // gateway.tools hides a tool from tenant a only: a hears tools changed.
  const v3 = { ...v2, tools: { ...v2.tools, tenants: { ta: { deny: ['common__echo'] } } } };
  await step('the tool filter of tenant a changed', v3, ['a']);
  assert.ok(!(await tools(la)).includes('common__echo'));
  assert.ok((await tools(lb)).includes('common__echo'));
  // The profile session b chose hides a tool: b hears it, and lists without it.
  const v3b = { ...v3, tools: { ...v3.tools, profiles: { ...v3.tools.profiles, pb: { deny: ['common__echo'] } } } };
  await step('the profile of session b changed', v3b, ['b']);
  assert.ok(!(await tools(lb)).includes('common__echo'), 'the changed profile did not apply to the session that chose it');
  // The server everyone sees changes: both hear it.
  const v4 = { ...v3b, servers: { ...v3b.servers, common: ['--name', 'common-2'] } };
  await step('common changed', v4, ['a', 'b']);
  // A server only b could see is removed: b hears it.
  const v5 = { ...v4, servers: { common: v4.servers.common, onlya: v4.servers.onlya, toolsa: v4.servers.toolsa } };
  await step('onlyb removed', v5, ['b']);
  // A server that offers tools alone is removed: its session hears of tools, not of prompts or
  // resources.
  const { toolsa, ...v6servers } = v5.servers;
  const heard = await step('toolsa removed', { ...v5, servers: v6servers }, ['a']);
  assert.deepEqual(heard.a, ['notifications/tools/list_changed']);
  const logs = gw.logs().filter((l) => l.msg === 'configuration reloaded');
  assert.deepEqual(logs.map((l) => l.sessionsNotified), [1, 1, 1, 1, 2, 1, 1]);
  la.stop();
  lb.stop();
}, { timeout: 60000 });

test('reload with 2 replicas sharing sessions: each tells the GET streams it serves, once, and only the sessions concerned', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const a = token(), b = token();
  const c = configDir(t, undefined, 'mcpgate-reload-lc-rep-');
  const files = ['r0.json', 'r1.json'].map((n) => path.join(c.dir, n));
  const write = (servers) => {
    for (const f of files)
      fs.writeFileSync(
        f,
        JSON.stringify({
          mcpServers: Object.fromEntries(Object.entries(servers).map(([k, args]) => [k, testserver(args)])),
          gateway: {
            sessions: { store: redis.url(0), secret: 'e2e-cluster-secret-0123456789' },
            auth: {
              tokens: [
                { name: 'a', sha256: a.sha256, tenant: 'ta', scopes: [] },
                { name: 'b', sha256: b.sha256, tenant: 'tb', scopes: [] },
              ],
              rules: [
                { tenant: 'ta', allow: ['common', 'onlya'] },
                { tenant: 'tb', allow: ['common', 'onlyb'] },
              ],
            },
          },
        }),
      );
  };
  const servers = { common: ['--name', 'common'], onlya: ['--name', 'onlya'], onlyb: ['--name', 'onlyb'] };
  write(servers);
  const gws = [];
  for (const f of files) gws.push(await t.gateway({ args: ['--config', f] }));
  await waitStore(gws, true);
  // Each session is made on one replica and listens on the other.
  const open = async (tok, made, listens) => {
    const headers = { Authorization: `Bearer ${tok.t}` };
    const s = await initSession(gws[made].url, { headers });
    const get = await request(gws[listens].url, { method: 'GET', headers: sessionHeaders(s, headers), timeout: scaled(120000) });
    assert.equal(get.status, 200);
    return listen(get);
  };
  const la = await open(a, 0, 1), lb = await open(b, 1, 0);
  await sleep(scaled(300)); // the followers catch up with the store
  let reloads = 0;
  const step = async (what, next, hear) => {
    const from = { a: la.got.length, b: lb.got.length };
    write(next);
    for (const g of gws) g.proc.kill('SIGHUP');
    reloads++;
    for (const g of gws)
      await waitFor(async () => (await g.readyz()).json.config.reloads === reloads, { timeout: 10000, what: `${what}: the reload` });
    const told = (k) => (k === 'a' ? la : lb).got.slice(from[k]).filter((m) => m === 'notifications/tools/list_changed').length;
    await waitFor(() => hear.every((k) => told(k) > 0), { timeout: 5000, what: `${what}: tools/list_changed to ${hear.join(' and ')}` });
    await sleep(scaled(400));
    for (const k of ['a', 'b']) assert.equal(told(k), hear.includes(k) ? 1 : 0, `${what}: session ${k} was told ${told(k)} times`);
  };
  const v1 = { ...servers, onlya: ['--name', 'onlya-2'] };
  await step('onlya changed', v1, ['a']);
  await step('common changed', { ...v1, common: ['--name', 'common-2'] }, ['a', 'b']);
  la.stop();
  lb.stop();
}, { timeout: 60000 });

// Scale-out on PostgreSQL (issue #19): the replica tests of replicas.test.mjs and
// ratelimit-replicas.test.mjs against a real postgres started by the test (lib/postgres.mjs), so a
// team without Redis runs several replicas with the same guarantees. To keep CI time, the big run
// is the harder variant only (a replica SIGKILLed midway); the rest is what differs by backend:
// the schema step, records keyed by tenant, owner liveness through the registry, PostgreSQL
// restarted under load (503 + Retry-After, recovery without restarting a replica), failover to a
// promoted standby followed through a multi-host spec, and rate-limit buckets shared exactly. Infrastructure: lib/postgres.mjs, lib/cluster.mjs, lib/replica-run.mjs.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { requireBinaries, startNginx, startReplicas, waitStore } from './lib/cluster.mjs';
import { MG_BINARY, testserver } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';
import { call, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';
import { requirePostgres, startPostgres } from './lib/postgres.mjs';
import { SESSIONS, bigRun } from './lib/replica-run.mjs';

const CONFIG = {
  mcpServers: { test: testserver(), iso: testserver([], { isolation: 'session' }) },
  gateway: { logLevel: 'warn', limits: { maxSessions: 100000 } },
};

test(`${SESSIONS} SDK sessions through nginx over 3 replicas + postgres, one replica SIGKILLed midway: every session survives`, async (t) => {
  requirePostgres(t);
  requireBinaries(t, 'nginx');
  const pg = await startPostgres(t);
  const store = {
    name: 'postgres',
    url: pg.url(),
    sessionKeys: async () => (await pg.sql("SELECT k FROM mcpgate_sessions WHERE expires > now()")).split('\n').filter(Boolean),
  };
  await bigRun(t, { kill: true, store, config: CONFIG });
  // the events went through the logs table and NOTIFY; nothing was left waiting for a payload row
  assert.ok(Number(await pg.sql('SELECT count(*) FROM mcpgate_schema')) === 2);
}, { timeout: 150000 });

test('PostgreSQL restarted under load: replicas report not-ready and answer 503 + Retry-After, then recover by themselves', async (t) => {
  requirePostgres(t);
  const pg = await startPostgres(t);
  const gws = await startReplicas(t, 2, { redisUrl: pg.url(), config: CONFIG });
  await waitStore(gws, true);
  assert.equal((await gws[0].readyz()).json.store.backend, 'postgres');
  const pids = gws.map((g) => g.pid);
  const sessions = [];
  for (let i = 0; i < 8; i++) sessions.push(await initSession(gws[i % 2].url));
  // load: every session calls through the other replica in a loop until told to stop
  const seen = { ok: 0, unavailable: 0, other: [] };
  let running = true;
  const loops = sessions.map(async (s, i) => {
    for (let n = 0; running; n++) {
      const g = gws[(i + n) % 2];
      const r = await request(g.url, { headers: sessionHeaders(s), body: rpc('tools/call', { name: 'test__echo', arguments: { message: `m${n}` } }), timeout: 15000 }).catch((e) => ({ status: 0, e }));
      if (r.status === 200) {
        const msgs = await r.messages();
        if (msgs.some((m) => m?.result?.content?.[0]?.text === `m${n}`)) seen.ok++;
        else seen.other.push(JSON.stringify(msgs).slice(0, 200));
      } else if (r.status === 503 && Number(r.headers['retry-after']) >= 1) {
        seen.unavailable++;
        await r.text?.().catch(() => {});
        await sleep(50);
      } else {
        seen.other.push(`HTTP ${r.status} ${r.e?.message || (await r.text?.().catch(() => ''))} at ${Date.now()}`);
      }
    }
  });
  await waitFor(() => seen.ok >= 40, { timeout: 10000, what: 'calls before the restart' });
  await pg.kill(); // a crash: no goodbye to the connections
  await waitStore(gws, false, 8000);
  for (const g of gws) {
    const r = await g.readyz();
    assert.equal(r.status, 503);
    assert.ok(r.json.store.error, JSON.stringify(r.json.store));
  }
  await waitFor(() => seen.unavailable >= 4, { timeout: 5000, what: '503s while the database is down' });
  const okBefore = seen.ok;
  await sleep(500);
  await pg.start(); // crash recovery, same data
  await waitStore(gws, true, 20000);
  await waitFor(() => seen.ok >= okBefore + 40, { timeout: 15000, what: 'calls after the restart' });
  running = false;
  await Promise.all(loops);
  assert.deepEqual(seen.other, [], 'answers other than the echo or 503 + Retry-After');
  assert.deepEqual(gws.map((g) => g.pid), pids);
  assert.ok(gws.every((g) => !g.exited));
  const reconnects = (await gws[0].readyz()).json.store.reconnects;
  assert.ok(reconnects >= 1, `reconnects ${reconnects}`);
}, { timeout: 90000 });

test('postgres failover: the primary dies, the standby is promoted, replicas with a multi-host spec follow it and the sessions go on', async (t) => {
  requirePostgres(t);
  const primary = await startPostgres(t);
  const standby = await startPostgres(t, { standbyOf: primary });
  const spec = `postgresql://mcpgate@127.0.0.1:${primary.port},127.0.0.1:${standby.port}/mcpgate?target_session_attrs=read-write&connect_timeout=2`;
  const gws = await startReplicas(t, 2, { redisUrl: spec, config: CONFIG });
  await waitStore(gws, true);
  const sessions = [];
  for (let i = 0; i < 6; i++) sessions.push(await initSession(gws[i % 2].url));
  // the records reached the standby (streaming replication is asynchronous)
  await waitFor(async () => Number(await standby.sql('SELECT count(*) FROM mcpgate_sessions')) === 6, {
    timeout: 10000,
    what: 'the sessions on the standby',
  });
  await primary.kill();
  await waitStore(gws, false, 8000);
  await standby.promote();
  await waitStore(gws, true, 20000);
  for (const [i, s] of sessions.entries()) {
    const { response } = await call(gws[(i + 1) % 2].url, s, 'tools/call', { name: 'test__echo', arguments: { message: `after ${i}` } });
    assert.equal(response.result?.content?.[0]?.text, `after ${i}`, JSON.stringify(response));
  }
  assert.match((await gws[0].readyz()).json.store.server, new RegExp(`:${standby.port}/`));
}, { timeout: 60000 });

test('postgres: records keyed by tenant and bound to the principal; a dead owner is marked lost through the registry', async (t) => {
  requirePostgres(t);
  const { tokenNew, bearer } = await import('./lib/auth.mjs');
  const alice = tokenNew(['--tenant', 'acme', '--scope', 'tools', '--name', 'alice']);
  const eve = tokenNew(['--tenant', 'other', '--scope', 'tools', '--name', 'eve']);
  const pg = await startPostgres(t);
  const config = { ...CONFIG, gateway: { ...CONFIG.gateway, auth: { tokens: [alice.entry, eve.entry] } } };
  const [a, b] = await startReplicas(t, 2, { redisUrl: pg.url(), config });
  await waitStore([a, b], true);
  const s = await initSession(a.url, { headers: bearer(alice.token) });
  const { response } = await call(b.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'mine' } }, { headers: bearer(alice.token) });
  assert.equal(response.result.content[0].text, 'mine');
  for (const g of [a, b]) {
    const r = await request(g.url, { headers: sessionHeaders(s, bearer(eve.token)), body: rpc('ping') });
    assert.equal(r.status, 404);
  }
  assert.equal(await pg.sql(`SELECT count(*) FROM mcpgate_sessions WHERE k = 'mcpgate:s:acme:${s.sessionId}'`), '1');
  assert.equal(await pg.sql(`SELECT count(*) FROM mcpgate_sessions WHERE k = 'mcpgate:s:other:${s.sessionId}'`), '0');
  const rec = JSON.parse(await pg.sql(`SELECT rec FROM mcpgate_sessions WHERE k = 'mcpgate:s:acme:${s.sessionId}'`));
  assert.equal(rec.principal.tenant, 'acme');
  assert.doesNotMatch(JSON.stringify(rec), new RegExp(alice.token));
  // b claimed the children; b dies; its registry row expires; the next load marks the owner lost
  const breplica = (await b.readyz()).json.store.replica;
  assert.equal(await pg.sql(`SELECT owner FROM mcpgate_sessions WHERE k = 'mcpgate:s:acme:${s.sessionId}'`), breplica);
  b.kill();
  await b.waitExit(5000);
  await waitFor(async () => (await pg.sql(`SELECT count(*) FROM mcpgate_values WHERE k = 'mcpgate:r:${breplica}' AND expires > now()`)) === '0', {
    timeout: 6000,
    what: 'the registry row of the dead replica to expire',
  });
  const { response: lost } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'x' } }, { headers: bearer(alice.token) });
  assert.equal(lost.error?.data?.reason, 'upstream_state_lost', JSON.stringify(lost));
  const { response: fresh } = await call(a.url, s, 'tools/call', { name: 'iso__echo', arguments: { message: 'y' } }, { headers: bearer(alice.token) });
  assert.equal(fresh.result.content[0].text, 'y');
}, { timeout: 60000 });

test('postgres: MCPGATE_SESSION_STORE selects it; with migrate false an unmigrated database keeps /readyz 503 until `mcpgate store migrate`', async (t) => {
  requirePostgres(t);
  const pg = await startPostgres(t);
  await pg.sql('CREATE DATABASE later');
  const config = { ...CONFIG, gateway: { ...CONFIG.gateway, sessions: { migrate: false, secret: 'e2e-cluster-secret-0123456789' } } };
  const gw = await t.gateway({ config, env: { MCPGATE_SESSION_STORE: pg.url('later') } });
  await sleep(1000);
  const rz = await gw.readyz();
  assert.equal(rz.status, 503);
  assert.equal(rz.json.store.backend, 'postgres');
  assert.match(rz.json.store.error, /mcpgate store migrate/);
  const m = spawnSync(MG_BINARY, ['store', 'migrate', '--store', pg.url('later')], { encoding: 'utf8' });
  assert.equal(m.status, 0, m.stderr);
  assert.match(m.stdout, /schema at version 2 \(was 0\)/);
  await waitStore([gw], true, 15000);
  const s = await initSession(gw.url);
  const { response } = await call(gw.url, s, 'tools/call', { name: 'test__echo', arguments: { message: 'hi' } });
  assert.equal(response.result.content[0].text, 'hi');
  // a spec libpq cannot parse is refused before listening, without echoing a password
  const bad = await t.gateway({ config: CONFIG, env: { MCPGATE_SESSION_STORE: 'host=x password=pw-secret nosuch=1' }, waitHealthy: false });
  const ex = await bad.waitExit(5000);
  assert.equal(ex?.code, 2);
  assert.match(bad.stderrText(), /libpq cannot parse/);
  assert.doesNotMatch(bad.stderrText(), /pw-secret/);
}, { timeout: 60000 });

test('rate limit across 3 replicas on postgres: N concurrent calls through nginx against K tokens give exactly K successes; down = 503', async (t) => {
  requirePostgres(t);
  requireBinaries(t, 'nginx');
  const K = 7;
  const N = 60;
  const pg = await startPostgres(t);
  const config = {
    mcpServers: { ts: testserver() },
    gateway: { logLevel: 'info', rateLimits: { principal: { requests: K, perSeconds: 3600 } } },
  };
  const gws = await startReplicas(t, 3, { redisUrl: pg.url(), config });
  await waitStore(gws, true);
  for (const g of gws) assert.ok(g.logs().some((x) => x.msg === 'rate limits' && /^postgres/.test(x.store)));
  const lb = await startNginx(t, gws.map((g) => g.port));
  const sessions = await Promise.all([0, 1, 2, 3, 4, 5].map(() => initSession(lb.url)));
  const results = await Promise.all(
    Array.from({ length: N }, async (_, i) => {
      const msg = rpc('tools/call', { name: 'echo', arguments: { message: `m${i}` } });
      const r = await request(lb.url, { headers: sessionHeaders(sessions[i % sessions.length]), body: JSON.stringify(msg), timeout: 20000 });
      const msgs = await r.messages();
      return { status: r.status, headers: r.headers, body: msgs.find((m) => m.id === msg.id) ?? msgs[0] };
    }),
  );
  const ok = results.filter((r) => r.status === 200 && r.body?.result);
  const limited = results.filter((r) => r.status === 429);
  assert.equal(ok.length, K, `statuses: ${results.map((r) => r.status).join(',')}`);
  assert.equal(limited.length, N - K);
  for (const r of limited) {
    assert.equal(r.body.error.code, -32029);
    assert.ok(Number(r.headers['retry-after']) >= 1);
  }
  assert.equal(await pg.sql('SELECT k FROM mcpgate_buckets'), 'mcpgate:rl:ip:127.0.0.1');
  const ttl = Number(await pg.sql('SELECT (extract(epoch FROM expires - now()) * 1000)::bigint FROM mcpgate_buckets'));
  assert.ok(ttl > 0 && ttl <= 3600 * 1000 + 1000, `ttl ${ttl}`);
  await pg.stop();
  await waitStore(gws, false, 8000);
  const r = await request(gws[0].url, { headers: sessionHeaders(sessions[0]), body: rpc('tools/call', { name: 'echo', arguments: { message: 'x' } }) });
  assert.equal(r.status, 503);
  assert.ok(Number(r.headers['retry-after']) >= 1);
}, { timeout: 60000 });

// Hot reload (SIGHUP, `mcpgate reload`, gateway.watchConfig): 50 sessions keep calling two servers
// while the config changes 10 times (one server's entry changes each time, the other's never): no
// call is lost on either; a config with problems is refused whole (logged, counted, /readyz stays
// ready with the old digest); what cannot change at runtime is listed in /readyz. Servers added
// under load start and join the catalog (list_changed), removed ones leave it at once while their
// calls in flight finish; rate limits and auth rules apply to the next request.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { MG_BINARY, testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { eventJson, initSession, request, sessionHeaders } from './lib/http.mjs';
import { configDir } from './lib/policy.mjs';

const SESSIONS = 50;

async function callTool(url, sess, name, message, id) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { ...sessionHeaders(sess), 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { message } } }),
  });
  const text = await r.text();
  if (r.status !== 200) return `HTTP ${r.status}: ${text.slice(0, 200)}`;
  const m = JSON.parse(text);
  const got = m.result?.content?.[0]?.text;
  return got === message ? null : `got ${text.slice(0, 300)}`;
}

async function readyz(gw) {
  return (await gw.readyz()).json;
}

test(`reload under load: ${SESSIONS} sessions calling while the config changes 10 times; no call lost`, async (t) => {
  const c = configDir(t, undefined, 'mcpgate-reload-');
  const write = (n, extra = {}) =>
    fs.writeFileSync(
      c.file,
      JSON.stringify({
        mcpServers: { steady: testserver(), moving: testserver(['--name', `moving-${n}`]) },
        gateway: { limits: { shutdownGraceMs: 5000 } },
        ...extra,
      }),
    );
  write(0);
  const gw = await t.gateway({ args: ['--config', c.file] });
  const first = await readyz(gw);
  assert.match(first.config.digest, /^[0-9a-f]{16}$/);
  const servers = () => gw.children().filter((p) => p.comm.startsWith('mcpgate-tests')).map((p) => p.pid);
  await waitFor(() => servers().length === 2, { what: 'both servers running' });
  const before = servers();
  const sessions = await Promise.all(Array.from({ length: SESSIONS }, () => initSession(gw.url)));
  // One session listens on its GET stream: a changed server's catalog means list_changed.
  const get = await request(gw.url, { method: 'GET', headers: sessionHeaders(sessions[0]) });
  assert.equal(get.status, 200);
  const failures = { steady: [], moving: [] };
  let calls = 0;
  let stop = false;
  const loops = sessions.map(async (s, i) => {
    for (let j = 0; !stop; j++) {
      for (const server of ['steady', 'moving']) {
        const err = await callTool(gw.url, s, `${server}__echo`, `s${i}-${j}-${server}`, j * 2 + (server === 'moving'));
        calls++;
        if (err) failures[server].push(`session ${i} call ${j}: ${err}`);
      }
    }
  });
  let digest = first.config.digest;
  for (let n = 1; n <= 10; n++) {
    await sleep(scaled(150));
    write(n);
    if (n % 2) gw.proc.kill('SIGHUP');
    else {
      const r = spawnSync(MG_BINARY, ['reload', '--listen', `127.0.0.1:${gw.port}`], { encoding: 'utf8' });
      assert.equal(r.status, 0, r.stdout + r.stderr);
    }
    const rz = await waitFor(async () => {
      const j = await readyz(gw);
      return j.config.reloads === n && j;
    }, { timeout: scaled(10000), what: `reload ${n} in /readyz` });
    assert.notEqual(rz.config.digest, digest);
    assert.deepEqual(rz.config.restartNeeded, []);
    assert.equal(rz.ready, true);
    digest = rz.config.digest;
  }
  // A config with a problem: refused whole, counted, the running one stays.
  fs.writeFileSync(c.file, JSON.stringify({ mcpServers: { steady: testserver() }, gateway: { limits: { maxBodyBytes: 'big' } } }));
  gw.proc.kill('SIGHUP');
  await gw.waitLog((l) => /^reload failed/.test(l.msg) && l.problems.some((p) => /maxBodyBytes/.test(p)), {
    what: 'the failed reload with its problem',
  });
  const after = await readyz(gw);
  assert.equal(after.ready, true);
  assert.equal(after.config.digest, digest);
  assert.equal(after.config.reloadFailures, 1);
  await sleep(scaled(300));
  stop = true;
  await Promise.all(loops);
  t.log(`${calls} calls during 10 reloads`);
  assert.ok(calls > SESSIONS * 4, `only ${calls} calls`);
  assert.deepEqual(failures.steady, [], 'a call of the unchanged server failed');
  assert.deepEqual(failures.moving, [], 'a call of the changed server failed');
  // The unchanged server kept its child; the changed one runs its last entry.
  await waitFor(() => servers().length === 2, { what: 'the old children of the changed server stopped' });
  const now = servers();
  assert.equal(before.filter((p) => now.includes(p)).length, 1, 'the unchanged server was restarted');
  const m = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(m, /mcpgate_config_reloads_total\{result="ok"\} 10/);
  assert.match(m, /mcpgate_config_reloads_total\{result="failed"\} 1/);
  assert.match(m, new RegExp(`mcpgate_config_info\\{digest="${digest}"\\} 1`));
  const evs = await get.events({ until: (ev) => eventJson(ev)?.method === 'notifications/tools/list_changed', timeout: scaled(5000) });
  assert.ok(evs.some((ev) => eventJson(ev)?.method === 'notifications/tools/list_changed'), 'no list_changed after a reload');
  const reloaded = gw.logs().filter((l) => l.msg === 'configuration reloaded');
  assert.equal(reloaded.length, 10);
  for (const l of reloaded) {
    assert.deepEqual(l.unchanged, ['steady']);
    assert.deepEqual(l.restarted, ['moving']);
  }
}, { timeout: 120000 });

test('reload: gateway.tools and limits apply to the next request; other gateway keys wait for a restart; watchConfig', async (t) => {
  const c = configDir(t, undefined, 'mcpgate-reload-');
  const base = { mcpServers: { one: testserver() }, gateway: { watchConfig: true } };
  fs.writeFileSync(c.file, JSON.stringify(base));
  const gw = await t.gateway({ args: ['--config', c.file] });
  const s = await initSession(gw.url);
  const names = async () => {
    const r = await fetch(gw.url, {
      method: 'POST',
      headers: { ...sessionHeaders(s), 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    return (await r.json()).result.tools.map((x) => x.name);
  };
  assert.ok((await names()).includes('sleep'));
  // An editor's save: a new file renamed over the old one. A tool filter, a limit, an added server.
  const save = (obj) => {
    fs.writeFileSync(c.file + '.tmp', JSON.stringify(obj));
    fs.renameSync(c.file + '.tmp', c.file);
  };
  save({
    mcpServers: { one: testserver(), two: testserver() },
    gateway: { watchConfig: true, limits: { maxSessions: 5 }, tools: { deny: ['*sleep'] } },
  });
  let rz = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 1 && j;
  }, { timeout: scaled(10000), what: 'the watched file reloaded' });
  assert.deepEqual(rz.config.restartNeeded, []);
  assert.equal(rz.ready, true);
  // Two servers now: the tools carry their server's prefix; the added one serves at once.
  await waitFor(async () => (await names()).includes('two__echo'), { what: 'the added server in tools/list' });
  assert.ok(!(await names()).some((n) => n.endsWith('sleep')), 'gateway.tools.deny did not apply to the next tools/list');
  assert.equal(await callTool(gw.url, s, 'one__sleep', 'x', 7) !== null, true, 'a denied tool could still be called');
  assert.equal(await callTool(gw.url, s, 'two__echo', 'hi', 8), null);
  // A key held in runtime state (the legacy SSE routes) changes: listed, and then nothing of gateway.* is switched.
  save({
    mcpServers: { one: testserver() },
    gateway: { watchConfig: true, tools: { deny: ['echo'] }, legacySse: true },
  });
  rz = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 2 && j;
  }, { timeout: scaled(10000), what: 'the second reload' });
  assert.deepEqual(rz.config.restartNeeded.sort(), ['gateway.legacySse', 'gateway.limits', 'gateway.tools']);
  // "two" removed: one server again, its tools without a prefix; gateway.* not half-applied.
  assert.ok((await names()).includes('echo'), 'a half-applied gateway section');
  assert.ok(!(await names()).some((n) => n.startsWith('two__')), 'the removed server is still listed');
});

test('reload: gateway.allowedHosts and allowedOrigins apply to the next request', async (t) => {
  const c = configDir(t, undefined, 'mcpgate-reload-');
  const write = (gateway) => fs.writeFileSync(c.file, JSON.stringify({ mcpServers: { one: testserver() }, gateway }));
  write({});
  const gw = await t.gateway({ args: ['--config', c.file] });
  const port = new URL(gw.url).port;
  const init = (headers) => request(gw.url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream', ...headers },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'reload-origin', version: '1' } } }),
  });
  const APP = 'https://app.example.com';
  const before = [await init({ Host: `mcp.example.com:${port}` }), await init({ Origin: APP })];
  assert.deepEqual(before.map((r) => r.status), [403, 403]);
  const session = await initSession(gw.url);
  write({ allowedHosts: ['mcp.example.com'], allowedOrigins: [APP] });
  gw.proc.kill('SIGHUP');
  await waitFor(async () => (await readyz(gw)).config.reloads === 1, { timeout: scaled(10000), what: 'the reload' });
  assert.deepEqual((await readyz(gw)).config.restartNeeded, []);
  const after = [await init({ Host: `mcp.example.com:${port}` }), await init({ Origin: APP }), await init({ Origin: 'https://evil.example' })];
  assert.deepEqual(after.map((r) => r.status), [200, 200, 403]);
  assert.equal(await callTool(gw.url, session, 'echo', 'still here', 2), null); // the running session is untouched
  // And back: the next request is checked against the new lists again.
  write({});
  gw.proc.kill('SIGHUP');
  await waitFor(async () => (await readyz(gw)).config.reloads === 2, { timeout: scaled(10000), what: 'the second reload' });
  assert.equal((await init({ Origin: APP })).status, 403);
});

test('reload: a server added under load joins the catalog; a removed one leaves it while its call in flight completes', async (t) => {
  const c = configDir(t, undefined, 'mcpgate-reload-');
  const write = (servers) =>
    fs.writeFileSync(c.file, JSON.stringify({ mcpServers: servers, gateway: { limits: { shutdownGraceMs: scaled(20000) } } }));
  const base = { steady: testserver(['--name', 'steady']), other: testserver(['--name', 'other']) };
  write(base);
  const gw = await t.gateway({ args: ['--config', c.file] });
  const servers = () => gw.children().filter((p) => p.comm.startsWith('mcpgate-tests')).map((p) => p.pid);
  await waitFor(() => servers().length === 2, { what: 'both servers running' });
  const sessions = await Promise.all(Array.from({ length: 10 }, () => initSession(gw.url)));
  const get = await request(gw.url, { method: 'GET', headers: sessionHeaders(sessions[0]) });
  assert.equal(get.status, 200);
  const list = async (s) => {
    const r = await fetch(gw.url, {
      method: 'POST',
      headers: { ...sessionHeaders(s), 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }),
    });
    return (await r.json()).result.tools.map((x) => x.name);
  };
  assert.ok(!(await list(sessions[1])).includes('extra__echo'));
  const failures = [];
  let calls = 0;
  let stop = false;
  const loops = sessions.map(async (s, i) => {
    for (let j = 0; !stop; j++) {
      const err = await callTool(gw.url, s, 'steady__echo', `s${i}-${j}`, j);
      calls++;
      if (err) failures.push(`session ${i} call ${j}: ${err}`);
    }
  });
  const reloaded = async (n) =>
    waitFor(async () => {
      const j = await readyz(gw);
      return j.config.reloads === n && j;
    }, { timeout: scaled(10000), what: `reload ${n} in /readyz` });
  // Added under load.
  await sleep(scaled(200));
  write({ ...base, extra: testserver(['--name', 'extra']) });
  gw.proc.kill('SIGHUP');
  let rz = await reloaded(1);
  assert.deepEqual(rz.config.restartNeeded, []);
  const evs = await get.events({ until: (ev) => eventJson(ev)?.method === 'notifications/tools/list_changed', timeout: scaled(5000), close: false });
  assert.ok(evs.some((ev) => eventJson(ev)?.method === 'notifications/tools/list_changed'), 'no list_changed after adding a server');
  await waitFor(async () => (await list(sessions[1])).includes('extra__echo'), { what: 'the added server in tools/list' });
  assert.equal(await callTool(gw.url, sessions[2], 'extra__echo', 'new', 1), null);
  await waitFor(() => servers().length === 3, { what: 'the added server running' });
  const log = gw.logs().find((l) => l.msg === 'configuration reloaded');
  assert.deepEqual(log.added, ['extra']);
  assert.deepEqual(log.unchanged.sort(), ['other', 'steady']);
  // Removed with a call in flight: gone from the catalog for the next request, the call completes.
  const inflight = fetch(gw.url, {
    method: 'POST',
    headers: { ...sessionHeaders(sessions[3]), 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'extra__sleep', arguments: { ms: scaled(1500) } } }),
  }).then((r) => r.text());
  await sleep(scaled(300));
  write(base);
  gw.proc.kill('SIGHUP');
  rz = await reloaded(2);
  assert.deepEqual(rz.config.restartNeeded, []);
  assert.deepEqual(rz.upstreams.map((u) => u.name).sort(), ['other', 'steady']);
  const after = await list(sessions[1]);
  assert.ok(!after.some((n) => n.startsWith('extra__')), `the removed server is still listed: ${after}`);
  assert.ok(after.includes('steady__echo'));
  const refused = await callTool(gw.url, sessions[2], 'extra__echo', 'gone', 2);
  assert.match(refused ?? '', /unknown tool/, 'a call to the removed server was routed');
  const text = await inflight;
  assert.match(text, /slept/, `the call in flight did not complete: ${text.slice(0, 300)}`);
  await waitFor(() => servers().length === 2, { timeout: scaled(10000), what: 'the removed server stopped' });
  const removedLog = gw.logs().filter((l) => l.msg === 'configuration reloaded')[1];
  assert.deepEqual(removedLog.removed, ['extra']);
  // Added back under the same name: a fresh slot, listed once, its metrics labelled once.
  write({ ...base, extra: testserver(['--name', 'extra']) });
  gw.proc.kill('SIGHUP');
  await reloaded(3);
  await waitFor(async () => (await list(sessions[1])).filter((n) => n === 'extra__echo').length === 1, { what: 'the server added back' });
  const m = await (await fetch(`${gw.base}/metrics`)).text();
  const labelled = m.split('\n').filter((l) => l.startsWith('mcpgate_upstream_unrouted_total{') && l.includes('"extra"') && l.includes('notification'));
  assert.equal(labelled.length, 1, labelled.join('\n'));
  stop = true;
  await Promise.all(loops);
  get.close();
  t.log(`${calls} calls while servers were added and removed`);
  assert.ok(calls > 10, `only ${calls} calls`);
  assert.deepEqual(failures, [], 'a call of the unchanged server failed');
}, { timeout: 120000 });

test('reload: a changed rate limit and auth rule apply to the next request', async (t) => {
  const token = 'mgt_' + crypto.randomBytes(32).toString('base64url');
  const sha256 = crypto.createHash('sha256').update(token).digest('hex');
  const c = configDir(t, undefined, 'mcpgate-reload-');
  const write = (rules, requests) =>
    fs.writeFileSync(
      c.file,
      JSON.stringify({
        mcpServers: { alpha: testserver(['--name', 'alpha']), beta: testserver(['--name', 'beta']) },
        gateway: {
          auth: { tokens: [{ name: 'ci', sha256, tenant: 'acme', scopes: [] }], rules },
          rateLimits: { principal: { requests, perSeconds: 3600, burst: requests } },
        },
      }),
    );
  write([{ tenant: 'acme', allow: ['alpha/echo'] }], 1000);
  const gw = await t.gateway({ args: ['--config', c.file] });
  const headers = { Authorization: `Bearer ${token}` };
  const s = await initSession(gw.url, { headers });
  const call = async (name, id) => {
    const r = await fetch(gw.url, {
      method: 'POST',
      headers: { ...sessionHeaders(s), ...headers, 'Content-Type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: { message: 'm' } } }),
    });
    const text = await r.text();
    return { status: r.status, msg: JSON.parse(text) };
  };
  assert.equal((await call('alpha__echo', 1)).msg.result?.content?.[0]?.text, 'm');
  assert.match((await call('beta__echo', 2)).msg.error?.message ?? '', /unknown tool/);
  // The rule now allows beta/echo, the principal gets 2 calls.
  write([{ tenant: 'acme', allow: ['alpha/echo', 'beta/echo'] }], 2);
  gw.proc.kill('SIGHUP');
  const rz = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 1 && j;
  }, { timeout: scaled(10000), what: 'the reload' });
  assert.deepEqual(rz.config.restartNeeded, []);
  const applied = gw.logs().find((l) => l.msg === 'configuration reloaded').applied.sort();
  assert.deepEqual(applied, ['gateway.auth', 'gateway.rateLimits']);
  assert.equal((await call('beta__echo', 3)).msg.result?.content?.[0]?.text, 'm', 'the new auth rule did not apply');
  assert.equal((await call('alpha__echo', 4)).msg.result?.content?.[0]?.text, 'm');
  const limited = await call('alpha__echo', 5);
  assert.equal(limited.status, 429, JSON.stringify(limited.msg));
  assert.equal(limited.msg.error?.code, -32029);
  // Rate limits turned off, then on again with another rule: each applies to the next request.
  const writeRaw = (gateway) =>
    fs.writeFileSync(c.file, JSON.stringify({ mcpServers: { alpha: testserver(['--name', 'alpha']), beta: testserver(['--name', 'beta']) }, gateway }));
  const auth = { tokens: [{ name: 'ci', sha256, tenant: 'acme', scopes: [] }], rules: [{ tenant: 'acme', allow: ['alpha/echo', 'beta/echo'] }] };
  const reloadTo = async (gateway, n) => {
    writeRaw(gateway);
    gw.proc.kill('SIGHUP');
    const j = await waitFor(async () => {
      const r = await readyz(gw);
      return r.config.reloads === n && r;
    }, { timeout: scaled(10000), what: `reload ${n}` });
    assert.deepEqual(j.config.restartNeeded, []);
  };
  await reloadTo({ auth }, 2);
  for (let i = 0; i < 4; i++) assert.equal((await call('alpha__echo', 10 + i)).status, 200, 'rate limits still on after they were removed');
  await reloadTo({ auth, rateLimits: { principal: { requests: 1, perSeconds: 3600, burst: 1 } } }, 3);
  assert.equal((await call('beta__echo', 20)).status, 200);
  assert.equal((await call('beta__echo', 21)).status, 429, 'rate limits turned on by a reload did not apply');
  // A token change is not a rules-only change: a new auth runtime serves the next request
  // (reload-auth.test.mjs tests it in depth).
  const other = crypto.createHash('sha256').update('x').digest('hex');
  fs.writeFileSync(
    c.file,
    JSON.stringify({
      mcpServers: { alpha: testserver(['--name', 'alpha']), beta: testserver(['--name', 'beta']) },
      gateway: {
        auth: { tokens: [{ name: 'ci', sha256: other, tenant: 'acme', scopes: [] }], rules: [{ tenant: 'acme', allow: ['*'] }] },
        rateLimits: { principal: { requests: 2, perSeconds: 3600, burst: 2 } },
      },
    }),
  );
  gw.proc.kill('SIGHUP');
  const rz2 = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 4 && j;
  }, { timeout: scaled(10000), what: 'the token change reload' });
  assert.deepEqual(rz2.config.restartNeeded, []);
  assert.equal((await call('beta__echo', 30)).status, 401, 'the removed token still accepted');
});

test('reload: a changed isolation takes fresh children; a removed session-isolated server stops each session\'s own child', async (t) => {
  const c = configDir(t, undefined, 'mcpgate-reload-');
  const write = (servers) => fs.writeFileSync(c.file, JSON.stringify({ mcpServers: servers, gateway: { limits: { shutdownGraceMs: scaled(10000) } } }));
  const steady = testserver(['--name', 'steady']);
  write({ steady, iso: testserver(['--name', 'iso'], { isolation: 'session' }) });
  const gw = await t.gateway({ args: ['--config', c.file] });
  const servers = () => gw.children().filter((p) => p.comm.startsWith('mcpgate-tests')).map((p) => p.pid);
  const [a, b] = await Promise.all([initSession(gw.url), initSession(gw.url)]);
  assert.equal(await callTool(gw.url, a, 'iso__echo', 'a1', 1), null);
  assert.equal(await callTool(gw.url, b, 'iso__echo', 'b1', 1), null);
  await waitFor(() => servers().length === 3, { what: 'steady and one iso child per session' });
  const own = servers();
  // isolation "session" -> "shared": both sessions now share one new child; their own ones stop.
  write({ steady, iso: testserver(['--name', 'iso'], { isolation: 'shared' }) });
  gw.proc.kill('SIGHUP');
  const rz = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 1 && j;
  }, { timeout: scaled(10000), what: 'the reload' });
  assert.deepEqual(rz.config.restartNeeded, []);
  assert.deepEqual(gw.logs().find((l) => l.msg === 'configuration reloaded').restarted, ['iso']);
  assert.equal(rz.upstreams.find((u) => u.name === 'iso').isolation, 'shared');
  assert.equal(await callTool(gw.url, a, 'iso__echo', 'a2', 2), null);
  assert.equal(await callTool(gw.url, b, 'iso__echo', 'b2', 2), null);
  await waitFor(() => servers().length === 2, { timeout: scaled(10000), what: 'the sessions\' own children stopped' });
  assert.equal(servers().filter((p) => own.includes(p)).length, 1, 'only steady should have kept its child');
  // Back to "session", then removed: each session's own child stops, the tools are gone.
  write({ steady, iso: testserver(['--name', 'iso'], { isolation: 'session' }) });
  gw.proc.kill('SIGHUP');
  await waitFor(async () => (await readyz(gw)).config.reloads === 2, { what: 'the second reload' });
  assert.equal(await callTool(gw.url, a, 'iso__echo', 'a3', 3), null);
  await waitFor(() => servers().length === 2, { timeout: scaled(10000), what: 'the shared iso child stopped, a\'s own one running' });
  write({ steady, other: testserver(['--name', 'other']) });
  gw.proc.kill('SIGHUP');
  await waitFor(async () => (await readyz(gw)).config.reloads === 3, { what: 'the third reload' });
  assert.match((await callTool(gw.url, a, 'iso__echo', 'a4', 4)) ?? '', /unknown tool/);
  assert.equal(await callTool(gw.url, a, 'other__echo', 'a5', 5), null);
  await waitFor(() => servers().length === 2, { timeout: scaled(10000), what: 'a\'s own iso child stopped (steady and other remain)' });
});

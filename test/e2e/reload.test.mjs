// Hot reload (SIGHUP, `mcpgate reload`, gateway.watchConfig): 50 sessions keep calling two servers
// while the config changes 10 times (one server's entry changes each time, the other's never): no
// call is lost on either; a config with problems is refused whole (logged, counted, /readyz stays
// ready with the old digest); what cannot change at runtime is listed in /readyz.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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

test('reload: gateway.tools and limits apply to the next request; added servers and other gateway keys wait for a restart; watchConfig', async (t) => {
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
    gateway: { watchConfig: true, limits: { maxSessions: 5 }, tools: { deny: ['sleep'] } },
  });
  let rz = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 1 && j;
  }, { timeout: scaled(10000), what: 'the watched file reloaded' });
  assert.deepEqual(rz.config.restartNeeded, ['mcpServers.two (added)']);
  await gw.waitLog((l) => /need a restart/.test(l.msg) && /mcpServers\.two/.test(l.msg), { what: 'the restart-needed line' });
  assert.equal(rz.ready, true);
  assert.ok(!(await names()).includes('sleep'), 'gateway.tools.deny did not apply to the next tools/list');
  assert.equal(await callTool(gw.url, s, 'sleep', 'x', 7) !== null, true, 'a denied tool could still be called');
  // A key held in runtime state (auth) changes: listed, and then nothing of gateway.* is switched.
  save({
    mcpServers: { one: testserver() },
    gateway: { watchConfig: true, tools: { deny: ['echo'] }, allowedHosts: ['mcp.example.com'] },
  });
  rz = await waitFor(async () => {
    const j = await readyz(gw);
    return j.config.reloads === 2 && j;
  }, { timeout: scaled(10000), what: 'the second reload' });
  assert.deepEqual(rz.config.restartNeeded.sort(), ['gateway.allowedHosts', 'gateway.limits', 'gateway.tools']);
  assert.ok((await names()).includes('echo'), 'a half-applied gateway section');
});

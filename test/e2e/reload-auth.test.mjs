// Hot reload of gateway.auth (docs/operations.md "Reload"): a rotated static token and a changed
// OAuth issuer apply to the next request; a request started before the reload (a tool call in
// flight, or a request waiting in the auth phase for the old issuer's keys) finishes on the auth
// runtime it started with; sessions stay bound to their principal when it is the same one
// (same token name and tenant), and the protected-resource metadata names the new issuer.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import { bearer } from './lib/auth.mjs';
import { freePort, testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { initSession, sessionHeaders } from './lib/http.mjs';
import { startIdp } from './lib/idp.mjs';
import { configDir } from './lib/policy.mjs';

const sha = (s) => crypto.createHash('sha256').update(s).digest('hex');
const newToken = () => 'mgt_' + crypto.randomBytes(32).toString('base64url');

async function callTool(url, sess, headers, name, args, id) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { ...(sess ? sessionHeaders(sess) : { Accept: 'application/json, text/event-stream', 'MCP-Protocol-Version': '2025-11-25' }), ...headers, 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method: 'tools/call', params: { name, arguments: args } }),
  });
  const text = await r.text();
  let msg = null;
  try {
    msg = JSON.parse(text);
  } catch {
    msg = text;
  }
  return { status: r.status, msg };
}

async function reloaded(gw, n) {
  return waitFor(async () => {
    const j = (await gw.readyz()).json;
    return j.config.reloads === n && j;
  }, { timeout: scaled(10000), what: `reload ${n} in /readyz` });
}

test('reload: a rotated static token is refused on the next request, the new one accepted; a call in flight completes; the session stays bound', async (t) => {
  const oldTok = newToken();
  const newTok = newToken();
  const c = configDir(t, undefined, 'mcpgate-reload-auth-');
  const write = (tokens) =>
    fs.writeFileSync(c.file, JSON.stringify({ mcpServers: { test: testserver() }, gateway: { auth: { tokens } } }));
  write([{ name: 'ci', sha256: sha(oldTok), tenant: 'acme' }, { name: 'other', sha256: sha(newToken()), tenant: 'acme' }]);
  const gw = await t.gateway({ args: ['--config', c.file] });
  const s = await initSession(gw.url, { headers: bearer(oldTok) });
  assert.equal((await callTool(gw.url, s, bearer(oldTok), 'echo', { message: 'a' }, 1)).msg.result?.content?.[0]?.text, 'a');
  // A call in flight on the old token when the reload lands.
  const inflight = callTool(gw.url, s, bearer(oldTok), 'sleep', { ms: scaled(1500) }, 2);
  await sleep(scaled(300));
  // "ci" gets a new token (same name and tenant: the same principal); "other" is dropped.
  write([{ name: 'ci', sha256: sha(newTok), tenant: 'acme' }]);
  gw.proc.kill('SIGHUP');
  const rz = await reloaded(gw, 1);
  assert.deepEqual(rz.config.restartNeeded, []);
  const log = gw.logs().find((l) => l.msg === 'configuration reloaded');
  assert.deepEqual(log.applied, ['gateway.auth']);
  const refused = await callTool(gw.url, s, bearer(oldTok), 'echo', { message: 'b' }, 3);
  assert.equal(refused.status, 401, 'the rotated-out token was still accepted after the reload');
  const ok = await callTool(gw.url, s, bearer(newTok), 'echo', { message: 'c' }, 4);
  assert.equal(ok.status, 200, JSON.stringify(ok.msg));
  assert.equal(ok.msg.result?.content?.[0]?.text, 'c', 'the session of the same principal was not kept');
  const done = await inflight;
  assert.equal(done.status, 200, 'the call in flight across the reload failed: ' + JSON.stringify(done.msg));
  assert.ok(!done.msg.error && !done.msg.result?.isError, JSON.stringify(done.msg));
  // A new session with the new token works too; the whole log has no token.
  const s2 = await initSession(gw.url, { headers: bearer(newTok) });
  assert.equal((await callTool(gw.url, s2, bearer(newTok), 'echo', { message: 'd' }, 5)).msg.result?.content?.[0]?.text, 'd');
  const all = JSON.stringify(gw.logs());
  assert.ok(!all.includes(oldTok) && !all.includes(newTok), 'a token in the log');
});

test('reload: a changed OAuth issuer applies to the next request; a request waiting for the old issuer\'s keys finishes on it', async (t) => {
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const idp1 = await startIdp({ audience: resource });
  t.defer(() => idp1.stop());
  const idp2 = await startIdp({ audience: resource });
  t.defer(() => idp2.stop());
  await idp1.addKey('RS256');
  const kid2 = await idp2.addKey('ES256');
  const c = configDir(t, undefined, 'mcpgate-reload-auth-');
  const write = (issuer) =>
    fs.writeFileSync(
      c.file,
      JSON.stringify({
        mcpServers: { test: testserver() },
        gateway: {
          auth: {
            oauth: { issuer, audience: resource, required_scopes: ['mcp'], jwks_min_refresh_interval_s: 0, clock_skew_s: 5 },
            resource,
            failure_limit: { max: 1000 },
          },
        },
      }),
    );
  write(idp1.issuer);
  const gw = await t.gateway({ port, args: ['--config', c.file] });
  const tok1 = await idp1.mint();
  const s = await initSession(gw.url, { headers: bearer(tok1) });
  assert.equal((await callTool(gw.url, s, bearer(tok1), 'echo', { message: 'a' }, 1)).msg.result?.content?.[0]?.text, 'a');
  // A token signed with a key the gateway has not seen yet: the request waits for a (slow) JWKS
  // refresh of the old issuer, and the reload lands meanwhile.
  const kidNew = await idp1.addKey('RS256');
  const tokLate = await idp1.mint({ kid: kidNew });
  idp1.jwksDelayMs = scaled(1500);
  const jwksBefore = idp1.stats.jwks;
  const waiting = callTool(gw.url, s, bearer(tokLate), 'echo', { message: 'late' }, 2);
  await waitFor(() => idp1.stats.jwks > jwksBefore, { what: 'the JWKS refresh for the unknown key' });
  write(idp2.issuer);
  gw.proc.kill('SIGHUP');
  const rz = await reloaded(gw, 1);
  assert.deepEqual(rz.config.restartNeeded, []);
  // The next request: the old issuer's token is refused (the new generation knows only idp2)...
  const old = await callTool(gw.url, null, bearer(tok1), 'echo', { message: 'b' }, 3);
  assert.equal(old.status, 401, `a token of the old issuer was accepted after the reload: ${JSON.stringify(old.msg)}`);
  // ...the new issuer's is accepted (a new session: a principal of another issuer is another one).
  const tok2 = await idp2.mint({ kid: kid2 });
  const s2 = await initSession(gw.url, { headers: bearer(tok2) });
  assert.equal((await callTool(gw.url, s2, bearer(tok2), 'echo', { message: 'c' }, 4)).msg.result?.content?.[0]?.text, 'c');
  const foreign = await callTool(gw.url, s, bearer(tok2), 'echo', { message: 'x' }, 5);
  assert.notEqual(foreign.status, 200, 'a session of the old issuer\'s principal served a principal of the new issuer');
  // The request that waited for the old issuer's keys finished on the old generation.
  const late = await waiting;
  assert.equal(late.status, 200, 'the request waiting in the auth phase across the reload failed: ' + JSON.stringify(late.msg));
  assert.equal(late.msg.result?.content?.[0]?.text, 'late');
  // The metadata names the new issuer.
  const prm = await (await fetch(`${gw.base}/.well-known/oauth-protected-resource/mcp`)).json();
  assert.deepEqual(prm.authorization_servers, [idp2.issuer]);
  // Back to the first issuer: its tokens work again.
  idp1.jwksDelayMs = 0;
  write(idp1.issuer);
  gw.proc.kill('SIGHUP');
  await reloaded(gw, 2);
  assert.equal((await callTool(gw.url, s, bearer(tok1), 'echo', { message: 'e' }, 6)).msg.result?.content?.[0]?.text, 'e');
});

test('reload: removing gateway.auth from a gateway on a non-loopback address is refused whole', async (t) => {
  const tok = newToken();
  const c = configDir(t, undefined, 'mcpgate-reload-auth-');
  fs.writeFileSync(c.file, JSON.stringify({ mcpServers: { test: testserver() }, gateway: { auth: { tokens: [{ name: 'ci', sha256: sha(tok) }] } } }));
  const port = await freePort();
  const gw = await t.gateway({ port, args: ['--config', c.file, '--listen', `0.0.0.0:${port}`] });
  fs.writeFileSync(c.file, JSON.stringify({ mcpServers: { test: testserver() } }));
  gw.proc.kill('SIGHUP');
  await gw.waitLog((l) => /^reload failed/.test(l.msg) && l.problems.some((p) => /gateway\.auth is gone/.test(p)), {
    what: 'the refused reload',
  });
  const rz = (await gw.readyz()).json;
  assert.equal(rz.config.reloadFailures, 1);
  assert.equal(rz.config.reloads, 0);
  const r = await callTool(gw.url, null, {}, 'echo', { message: 'x' }, 1);
  assert.equal(r.status, 401, 'the gateway stopped asking for a token');
});

// OAuth 2.1 resource server (gateway.auth.oauth) against a test identity provider started here
// (lib/idp.mjs: keys generated at test time, discovery, JWKS, introspection): valid RS256/ES256
// tokens, key rotation, every refusal with its status and no upstream call, RFC 9728 metadata and
// challenges, AS metadata for 2025-03-26 clients, IdP outages, introspection, the SDK client.
import assert from 'node:assert/strict';
import { bearer, readRecord, recordFile, recordedTestserver } from './lib/auth.mjs';
import { connect, textOf } from './lib/client.mjs';
import { freePort } from './lib/gateway.mjs';
import { test, waitFor } from './lib/harness.mjs';
import { ACCEPT_BOTH, call, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';
import { startIdp } from './lib/idp.mjs';

const init = () =>
  rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'e2e-oauth', version: '1' } });

// IdP + gateway; the gateway's canonical resource URI is its own loopback URL.
async function setup(t, { oauth = {}, idpOpts = {}, keys = ['RS256'], record = false, auth = {} } = {}) {
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const idp = await startIdp({ audience: resource, ...idpOpts });
  t.defer(() => idp.stop());
  const kids = [];
  for (const alg of keys) kids.push(await idp.addKey(alg));
  const rec = record ? recordFile(t) : null;
  const gw = await t.gateway({
    port,
    config: {
      mcpServers: { test: rec ? recordedTestserver(rec) : recordedTestserver('/dev/null') },
      gateway: {
        auth: {
          oauth: {
            issuer: idp.issuer,
            audience: resource,
            required_scopes: ['mcp'],
            jwks_min_refresh_interval_s: 0,
            clock_skew_s: 5,
            ...oauth,
          },
          resource,
          failure_limit: { max: 1000 },
          ...auth,
        },
      },
    },
  });
  return { idp, gw, kids, rec, resource };
}

async function status(r) {
  await r.text();
  return r.status;
}

test('valid RS256 and ES256 tokens are accepted; the SDK client completes a call with a bearer token', async (t) => {
  const { idp, gw, kids } = await setup(t, { keys: ['RS256', 'ES256'] });
  for (const kid of kids) {
    const tok = await idp.mint({ kid });
    const s = await initSession(gw.url, { headers: bearer(tok) });
    const { response } = await call(gw.url, s, 'tools/call', { name: 'echo', arguments: { message: kid } }, { headers: bearer(tok) });
    assert.equal(response.result.content[0].text, kid);
  }
  const tok = await idp.mint({ kid: kids[1], claims: { sub: 'sdk-user' } });
  const c = await connect(gw.url, { requestInit: { headers: bearer(tok) } });
  t.defer(() => c.close());
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'via-sdk' } })), 'via-sdk');
  assert.ok(!gw.stderrText().includes(tok));
});

test('refused tokens: right status, WWW-Authenticate, and no upstream call', async (t) => {
  const { idp, gw, kids, rec, resource } = await setup(t, { record: true, keys: ['RS256'] });
  const good = await idp.mint();
  const sess = await initSession(gw.url, { headers: bearer(good) });
  const stranger = await idp.addKey('RS256'); // signs, but is never published
  idp.removeKey(stranger);
  const now = Math.floor(Date.now() / 1000);
  const cases = [
    ['expired', await idp.mint({ claims: { exp: now - 60, iat: now - 400 } }), 401, /expired/],
    ['not yet valid', await idp.mint({ claims: { nbf: now + 600 } }), 401, /not yet valid/],
    ['wrong issuer', await idp.mint({ claims: { iss: 'https://evil.example' } }), 401, /issuer/],
    ['wrong audience', await idp.mint({ claims: { aud: 'https://other.example/mcp' } }), 401, /audience/],
    ['alg none', idp.algNone(), 401, /malformed|none/],
    ['HS256 signed with the public key', idp.hs256WithPublicKey(kids[0]), 401, /none and HMAC/],
    ['unknown kid after refresh', await idp.mint({ kid: stranger }), 401, /unknown key/],
    ['tampered payload', idp.tamper(good, { sub: 'admin', scope: 'mcp admin' }), 401, /signature/],
    ['missing scope', await idp.mint({ claims: { scope: 'tools' } }), 403, /insufficient_scope/],
  ];
  const jwksBefore = idp.stats.jwks;
  for (const [what, tok, want, pattern] of cases) {
    const marker = `marker-${what.replace(/\W+/g, '-')}`;
    const r = await request(gw.url, {
      headers: sessionHeaders(sess, bearer(tok)),
      body: rpc('tools/call', { name: 'echo', arguments: { message: marker } }),
    });
    const body = await r.text();
    assert.equal(r.status, want, `${what}: ${body}`);
    const challenge = r.headers['www-authenticate'] || '';
    assert.match(challenge, pattern, `${what}: ${challenge}`);
    assert.match(challenge, new RegExp(`resource_metadata="http://127\\.0\\.0\\.1:${gw.port}/\\.well-known/oauth-protected-resource/mcp"`));
    if (want === 403) assert.match(challenge, /scope="mcp tools"/, 'needed + granted scopes');
    assert.ok(!body.includes(tok), `${what}: the body echoes the token`);
  }
  // One refresh for the unknown kid (interval 0 here), none for the others.
  assert.equal(idp.stats.jwks - jwksBefore, 1);
  // Query-string token.
  const q = await request(`${gw.url}?access_token=${good}`, { headers: sessionHeaders(sess, bearer(good)), body: rpc('ping') });
  assert.equal(await status(q), 400);
  // The positive control reaches the upstream; none of the refused ones did.
  await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: 'marker-control' } }, { headers: bearer(good) });
  const seen = readRecord(rec);
  assert.ok(seen.includes('marker-control'));
  for (const [what] of cases) assert.ok(!seen.includes(`marker-${what.replace(/\W+/g, '-')}`), `${what} reached the upstream`);
  for (const [, tok] of cases) assert.ok(!seen.includes(tok.split('.')[2] || tok), 'a token reached the upstream');
  assert.ok(!seen.includes(good.split('.')[2]), 'the good token reached the upstream');
  const log = gw.stderrText();
  for (const [, tok] of cases) assert.ok(!log.includes(tok), 'a token in the log');
  assert.ok(!log.includes(good));
  void resource;
});

test('RFC 9728 metadata, the 401 challenge, and AS metadata on the MCP origin for 2025-03-26 clients', async (t) => {
  const { idp, gw, resource } = await setup(t);
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH }, body: init() });
  assert.equal(await status(r), 401);
  const ch = r.headers['www-authenticate'];
  assert.match(ch, /^Bearer /);
  assert.ok(!/error=/.test(ch), 'no error code without credentials (RFC 6750 3.1)');
  assert.match(ch, /scope="mcp"/);
  const url = /resource_metadata="([^"]+)"/.exec(ch)[1];
  for (const u of [url, `${gw.base}/.well-known/oauth-protected-resource`]) {
    const m = await request(u, { method: 'GET' });
    assert.equal(m.status, 200, u);
    const doc = await m.json();
    assert.equal(doc.resource, resource);
    assert.deepEqual(doc.authorization_servers, [idp.issuer]);
    assert.deepEqual(doc.scopes_supported, ['mcp']);
    assert.deepEqual(doc.bearer_methods_supported, ['header']);
  }
  const other = await request(`${gw.base}/.well-known/oauth-protected-resource/other`, { method: 'GET' });
  assert.equal(await status(other), 404);
  await waitFor(() => idp.stats.metadata > 0, { what: 'discovery' });
  const as = await request(`${gw.base}/.well-known/oauth-authorization-server`, { method: 'GET' });
  assert.equal(as.status, 200);
  const meta = await as.json();
  assert.equal(meta.issuer, idp.issuer);
  assert.equal(meta.token_endpoint, `${idp.base}/token`);
});

test('key rotation: a new kid is fetched on first sight, a retired kid is refused', async (t) => {
  const { idp, gw, kids } = await setup(t, { keys: ['ES256'] });
  const old = await idp.mint({ kid: kids[0] });
  const s = await initSession(gw.url, { headers: bearer(old) });
  const fresh = await idp.addKey('RS256');
  idp.removeKey(kids[0]);
  const tok = await idp.mint({ kid: fresh });
  const { response } = await call(gw.url, s, 'tools/call', { name: 'echo', arguments: { message: 'rotated' } }, { headers: bearer(tok) });
  assert.equal(response.result.content[0].text, 'rotated', 'same principal, new key: same session');
  const r = await request(gw.url, { headers: sessionHeaders(s, bearer(old)), body: rpc('ping') });
  assert.equal(await status(r), 401, 'the retired key is gone from the refreshed set');
});

test('refreshes for unknown kids are rate limited; the last good keys survive an IdP outage', async (t) => {
  const { idp, gw, kids } = await setup(t, { oauth: { jwks_min_refresh_interval_s: 60 } });
  const good = await idp.mint({ kid: kids[0] });
  const s = await initSession(gw.url, { headers: bearer(good) });
  await waitFor(() => idp.stats.jwks >= 1, { what: 'first JWKS fetch' });
  // The startup fetch counts as the last attempt: an unknown kid now is refused without a fetch.
  const before = idp.stats.jwks;
  const stranger = await idp.addKey('RS256');
  idp.removeKey(stranger);
  for (let i = 0; i < 5; i++) {
    const r = await request(gw.url, { headers: sessionHeaders(s, bearer(await idp.mint({ kid: stranger }))), body: rpc('ping') });
    assert.equal(await status(r), 401);
  }
  assert.equal(idp.stats.jwks, before, 'unknown kids hammered the JWKS endpoint');
  // Outage: cached keys keep working.
  idp.down = true;
  const { response } = await call(gw.url, s, 'tools/call', { name: 'echo', arguments: { message: 'cached' } }, { headers: bearer(good) });
  assert.equal(response.result.content[0].text, 'cached');
});

test('IdP unreachable at start: 503 with Retry-After, then tokens work once it is back', async (t) => {
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const idp = await startIdp({ audience: resource });
  t.defer(() => idp.stop());
  await idp.addKey('RS256');
  idp.down = true;
  const gw = await t.gateway({
    port,
    config: {
      mcpServers: { test: recordedTestserver('/dev/null') },
      gateway: { auth: { oauth: { issuer: idp.issuer, audience: resource, jwks_min_refresh_interval_s: 0 } } },
    },
  });
  const tok = await idp.mint();
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(tok) }, body: init() });
  assert.equal(await status(r), 503);
  assert.ok(r.headers['retry-after']);
  idp.down = false;
  await waitFor(
    async () => (await status(await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(tok) }, body: init() }))) === 200,
    { what: 'the gateway to recover', timeout: 8000, interval: 200 },
  );
});

test('opaque tokens through RFC 7662 introspection (discovered endpoint, client credentials, cache)', async (t) => {
  const { idp, gw, resource } = await setup(t, {
    oauth: { introspection: { client_id: 'mcpgate', client_secret: 'gateway-secret', cache_s: 60 } },
  });
  await waitFor(() => idp.stats.metadata > 0 && idp.stats.jwks > 0, { what: 'discovery' });
  const good = idp.opaque({ sub: 'carol' });
  const s = await initSession(gw.url, { headers: bearer(good) });
  const n = idp.stats.introspect;
  const { response } = await call(gw.url, s, 'tools/call', { name: 'echo', arguments: { message: 'opaque' } }, { headers: bearer(good) });
  assert.equal(response.result.content[0].text, 'opaque');
  assert.equal(idp.stats.introspect, n, 'the second request should come from the cache');
  assert.match(idp.stats.lastIntrospectAuth, /^Basic /);
  for (const [what, tok, want] of [
    ['inactive', idp.opaque({ active: false }), 401],
    ['unknown', 'opaque_not_issued_by_anyone', 401],
    ['other audience', idp.opaque({ aud: 'https://other.example/mcp' }), 401],
    ['missing scope', idp.opaque({ scope: 'tools' }), 403],
  ]) {
    const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(tok) }, body: init() });
    assert.equal(await status(r), want, what);
  }
  void resource;
});

test('tenant from a claim; a session created by one subject is 404 for another of the same IdP', async (t) => {
  const { idp, gw } = await setup(t, { oauth: { tenant_claim: 'tid' } });
  const alice = await idp.mint({ claims: { sub: 'alice', tid: 'acme' } });
  const mallory = await idp.mint({ claims: { sub: 'mallory', tid: 'acme' } });
  const aliceElsewhere = await idp.mint({ claims: { sub: 'alice', tid: 'globex' } });
  const noTenant = await idp.mint({ claims: { sub: 'alice' } });
  const s = await initSession(gw.url, { headers: bearer(alice) });
  for (const tok of [mallory, aliceElsewhere]) {
    const r = await request(gw.url, { headers: sessionHeaders(s, bearer(tok)), body: rpc('ping') });
    assert.equal(await status(r), 404);
  }
  const r = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(noTenant) }, body: init() });
  assert.equal(await status(r), 401);
  const again = await idp.mint({ claims: { sub: 'alice', tid: 'acme' } });
  const ok = await request(gw.url, { headers: sessionHeaders(s, bearer(again)), body: rpc('ping') });
  assert.equal(await status(ok), 200, 'a fresh token of the same principal keeps the session');
});

test('requests waiting for a JWKS refresh: many at once share one fetch; a client that leaves is dropped', async (t) => {
  const { idp, gw } = await setup(t);
  await waitFor(() => idp.stats.jwks >= 1, { what: 'first JWKS fetch' });
  const fresh = await idp.addKey('ES256');
  const tok = await idp.mint({ kid: fresh });
  idp.jwksDelayMs = 400;
  const before = idp.stats.jwks;
  // One client gives up while its request waits for the keys.
  const leaver = await request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(tok) }, body: init(), timeout: 100 }).catch((e) => e);
  assert.ok(leaver instanceof Error, 'the request should have been waiting');
  const rs = await Promise.all(
    Array.from({ length: 20 }, () => request(gw.url, { headers: { Accept: ACCEPT_BOTH, ...bearer(tok) }, body: init() })),
  );
  for (const r of rs) assert.equal(await status(r), 200);
  assert.equal(idp.stats.jwks - before, 1, 'waiting requests must share one refresh');
  idp.jwksDelayMs = 0;
  assert.equal((await gw.healthz()).status, 200);
});

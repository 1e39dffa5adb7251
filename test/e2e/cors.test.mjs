// CORS (gateway.cors), end to end: off by default (OPTIONS is 405, no CORS headers); with an
// allowlist, preflights are answered (204 allow / 403 deny) before auth, responses carry
// Access-Control-Allow-Origin for allowed origins only; "*" never with credentials; the Origin
// check (gateway.allowedOrigins) still applies on its own.
import assert from 'node:assert/strict';
import { testserver } from './lib/gateway.mjs';
import { mcpgate } from './lib/policy.mjs';
import { ACCEPT_BOTH, LATEST, request, rpc } from './lib/http.mjs';
import { test } from './lib/harness.mjs';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const APP = 'https://app.example.com';
const OTHER = 'https://other.example.com';

function preflight(url, origin, method = 'POST', headers = 'content-type, mcp-session-id, mcp-protocol-version, authorization') {
  const h = { origin, 'access-control-request-method': method };
  if (headers) h['access-control-request-headers'] = headers;
  return request(url, { method: 'OPTIONS', headers: h });
}

function initialize(url, origin) {
  return request(url, {
    headers: { 'content-type': 'application/json', accept: ACCEPT_BOTH, ...(origin ? { origin } : {}) },
    body: JSON.stringify(
      rpc('initialize', { protocolVersion: LATEST, capabilities: {}, clientInfo: { name: 'browser', version: '1' } }),
    ),
  });
}

test('cors: off by default: OPTIONS is 405 and no response carries CORS headers', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { ts: testserver() }, gateway: { allowedOrigins: [APP] } } });
  const p = await preflight(gw.url, APP);
  await p.text();
  assert.equal(p.status, 405);
  assert.equal(p.headers['access-control-allow-origin'], undefined);
  const r = await initialize(gw.url, APP);
  await r.text();
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], undefined);
});

test('cors: preflight allowed for a listed origin, denied for others, for other methods and headers', async (t) => {
  const gw = await t.gateway({
    config: {
      mcpServers: { ts: testserver() },
      gateway: {
        allowedOrigins: [APP, OTHER], // the Origin check lets both talk to the gateway...
        cors: { allowedOrigins: [APP], allowCredentials: true, maxAgeSeconds: 120 }, // ...only APP may read answers
      },
    },
  });
  const ok = await preflight(gw.url, APP);
  assert.equal(await ok.text(), '');
  assert.equal(ok.status, 204);
  assert.equal(ok.headers['access-control-allow-origin'], APP);
  assert.equal(ok.headers['access-control-allow-credentials'], 'true');
  assert.equal(ok.headers['access-control-allow-methods'], 'GET, POST, DELETE');
  assert.equal(ok.headers['access-control-allow-headers'], 'content-type, mcp-session-id, mcp-protocol-version, authorization');
  assert.equal(ok.headers['access-control-max-age'], '120');
  assert.match(ok.headers.vary, /origin/i);
  // Mcp-Param-* headers (2026-07-28) are allowed by prefix.
  const mp = await preflight(gw.url, APP, 'POST', 'content-type, mcp-method, mcp-name, mcp-param-region');
  await mp.text();
  assert.equal(mp.status, 204);

  for (const [origin, method, headers, why] of [
    [OTHER, 'POST', 'content-type', /Origin is not in gateway.cors.allowedOrigins/],
    [APP, 'PUT', 'content-type', /method not allowed/],
    [APP, 'POST', 'content-type, x-evil', /a requested header is not allowed/],
  ]) {
    const d = await preflight(gw.url, origin, method, headers);
    const body = await d.text();
    assert.equal(d.status, 403, `${origin} ${method} ${headers}`);
    assert.match(body, why);
    assert.equal(d.headers['access-control-allow-origin'], origin === APP ? APP : undefined);
    assert.equal(d.headers['access-control-allow-methods'], undefined);
  }

  // Actual requests: the allowed origin can read the answer (and the session id header).
  const r = await initialize(gw.url, APP);
  await r.text();
  assert.equal(r.status, 200);
  assert.equal(r.headers['access-control-allow-origin'], APP);
  assert.match(r.headers['access-control-expose-headers'], /mcp-session-id/);
  assert.ok(r.headers['mcp-session-id']);
  // OTHER passes the Origin check but gets no CORS headers: the browser will not expose the answer.
  const o = await initialize(gw.url, OTHER);
  await o.text();
  assert.equal(o.status, 200);
  assert.equal(o.headers['access-control-allow-origin'], undefined);
  // The Origin check is independent of CORS: an origin in neither list is refused outright.
  const evil = await initialize(gw.url, 'https://evil.example');
  await evil.text();
  assert.equal(evil.status, 403);
  const ep = await preflight(gw.url, 'https://evil.example');
  await ep.text();
  assert.equal(ep.status, 403);
  assert.equal(ep.headers['access-control-allow-origin'], undefined);
  // OPTIONS that is not a preflight (no Access-Control-Request-Method) stays 405.
  const plain = await request(gw.url, { method: 'OPTIONS', headers: { origin: APP } });
  await plain.text();
  assert.equal(plain.status, 405);
});

test('cors: preflight is answered before auth; "*" without credentials; never "*" with credentials', async (t) => {
  const gw = await t.gateway({
    config: {
      mcpServers: { ts: testserver() },
      gateway: {
        allowedOrigins: [APP],
        auth: { tokens: [{ name: 'x', sha256: 'a'.repeat(64), tenant: 't' }] },
        cors: { allowedOrigins: ['*'] },
      },
    },
  });
  const p = await preflight(gw.url, APP);
  await p.text();
  assert.equal(p.status, 204); // no credentials on a preflight, yet not 401
  assert.equal(p.headers['access-control-allow-origin'], '*');
  assert.equal(p.headers['access-control-allow-credentials'], undefined);
  const r = await initialize(gw.url, APP); // no token: 401, readable by the page (WWW-Authenticate exposed)
  await r.text();
  assert.equal(r.status, 401);
  assert.equal(r.headers['access-control-allow-origin'], '*');
  assert.match(r.headers['access-control-expose-headers'], /www-authenticate/);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-cors-'));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'c.json');
  fs.writeFileSync(
    file,
    JSON.stringify({ mcpServers: { ts: testserver() }, gateway: { cors: { allowedOrigins: ['*'], allowCredentials: true } } }),
  );
  const c = mcpgate(['check', '--config', file]);
  assert.equal(c.status, 1);
  assert.match(c.stderr, /"\*" cannot be combined with allowCredentials: true/);
});

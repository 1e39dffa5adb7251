// Query parameters on /mcp: names are percent-decoded ("+" is a space, case ignored) before they are
// compared, so "?access%5Ftoken=" is refused like "?access_token=", as is any name that carries a
// credential (key, auth, password, x-api-key...); any parameter other than the ones mcpgate reads
// (profile) is refused with a 400 that names it and never echoes a value. ?profile=NAME works.
import assert from 'node:assert/strict';
import { bearer, tokenNew } from './lib/auth.mjs';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { ACCEPT_BOTH, request, rpc } from './lib/http.mjs';

const init = () =>
  rpc('initialize', { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'e2e-query', version: '1' } });
const PROFILES = { only_echo: { allow: ['echo'] } };

async function post(gw, query, headers = {}) {
  const r = await request(`${gw.url}?${query}`, { headers: { Accept: ACCEPT_BOTH, ...headers }, body: init() });
  const text = await r.text();
  let json = null;
  try {
    json = JSON.parse(text);
  } catch {
    /* SSE or not JSON */
  }
  return { status: r.status, text, message: json?.error?.message ?? '' };
}

test('credential-looking query names are refused after percent-decoding, with and without auth', async (t) => {
  const a = tokenNew(['--tenant', 'acme']);
  const SECRET = a.token;
  const names = [
    'access%5Ftoken', 'access%5ftoken', 'ACCESS%5FTOKEN', '%61ccess_token', 'access_%74oken', 'Access_Token',
    'key', 'KEY', 'auth', 'password', 'passwd', 'x-api-key', 'X-Api-Key', 'x%2Dapi%2Dkey', 'api-key', 'apikey',
    'client_secret', 'secret', 'jwt', 'id_token', 'refresh_token', 'session_token', 'authorization', 'bearer',
    'access+token', 'access%20token', 'access-token',
  ];
  for (const auth of [undefined, { tokens: [a.entry] }]) {
    const gw = await t.gateway({ config: { mcpServers: { test: testserver() }, gateway: auth ? { auth } : {} } });
    const failures = [];
    for (const n of names) {
      const r = await post(gw, `${n}=${SECRET}`, bearer(a.token));
      if (r.status !== 400) failures.push(`${n}: HTTP ${r.status}`);
      else if (!/query string/.test(r.message) || !/Authorization/.test(r.message)) failures.push(`${n}: message ${JSON.stringify(r.message)}`);
      if (r.text.includes(SECRET)) failures.push(`${n}: the answer echoes the value`);
    }
    // A credential name after an allowed one is found too.
    const late = await post(gw, `profile=only_echo&x%2Dapi%2Dkey=${SECRET}`, bearer(a.token));
    if (late.status !== 400) failures.push(`profile then x-api-key: HTTP ${late.status}`);
    assert.deepEqual(failures, [], `auth ${auth ? 'on' : 'off'}:\n  ${failures.join('\n  ')}`);
    assert.ok(!gw.stderrText().includes(SECRET), 'a query value reached the log');
  }
});

test('unknown query parameters on /mcp: 400 naming the parameter, never its value', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() }, gateway: { tools: { profiles: PROFILES } } } });
  const cases = [
    ['x=1', /'x'/],
    ['foo=sensitive-value', /'foo'/],
    ['sessionId=abc', /'sessionId'/],
    ['profile=only_echo&debug=sensitive-value', /'debug'/],
    ['Profile=only_echo', /'Profile'/], // names are case-sensitive for what mcpgate reads
    ['%zz=1', /query/],
    ['na%00me=1', /query/],
    ['profile=only_echo&profile=only_echo', /profile.*more than once|more than once.*profile/],
  ];
  for (const [q, re] of cases) {
    const r = await post(gw, q);
    assert.equal(r.status, 400, `${q}: ${r.text.slice(0, 200)}`);
    assert.match(r.message, re, `${q}: ${r.message}`);
    assert.match(r.message, /profile/, `${q}: the message should say which parameters exist`);
    assert.ok(!r.text.includes('sensitive-value'), `${q}: the value is echoed: ${r.message}`);
  }
  // The same on GET and DELETE.
  for (const method of ['GET', 'DELETE']) {
    const r = await request(`${gw.url}?x=1`, { method, headers: { Accept: 'text/event-stream' } });
    assert.equal(r.status, 400, method);
    assert.match(await r.text(), /'x'/);
  }
  // Other paths are not /mcp: their query strings are not read, and not refused.
  assert.equal((await request(`${gw.base}/healthz?x=1`, { method: 'GET' })).status, 200);
});

test('?profile=NAME still selects a profile (plain and percent-encoded), empty query strings pass', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() }, gateway: { tools: { profiles: PROFILES } } } });
  for (const q of ['profile=only_echo', '%70rofile=only_echo', 'profile=only%5Fecho', '&profile=only_echo&']) {
    const c = await connect(`${gw.url}?${q}`);
    t.defer(() => c.close());
    const listed = (await c.client.listTools()).tools.map((x) => x.name);
    assert.deepEqual(listed, ['echo'], `${q}: ${listed.join(', ')}`);
    assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'q' } })), 'q');
  }
  for (const q of ['', '&']) assert.equal((await post(gw, q)).status, 200, `?${q}`);
});

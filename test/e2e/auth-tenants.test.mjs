// Tenant isolation at scale: 50 tenants x 20 sessions, each tenant with two principals (static
// tokens). Every attempt to use another principal's session id, GET stream or resumption id fails
// with 404, and no response to anyone ever carries another session's data.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { bearer } from './lib/auth.mjs';
import { testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { eventJson, initSession, request, rpc, sessionHeaders } from './lib/http.mjs';

const TENANTS = 50;
const SESSIONS = 20;
const MARK = /t\d+-s\d+-[0-9a-f]{8}/g;

// Runs fn over items with at most `limit` in flight.
async function pool(items, limit, fn) {
  let next = 0;
  const workers = Array.from({ length: limit }, async () => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i], i);
    }
  });
  await Promise.all(workers);
}

function mkToken(tenant, name) {
  const token = 'mgt_' + crypto.randomBytes(32).toString('base64url');
  const sha256 = crypto.createHash('sha256').update(token).digest('hex');
  return { token, entry: { name, sha256, tenant, scopes: ['tools'] } };
}

test('50 tenants x 20 sessions: no principal can reach another principal\'s session, stream or events', async (t) => {
  const owners = [];
  const peers = [];
  for (let i = 0; i < TENANTS; i++) {
    owners.push(mkToken(`tenant${i}`, `owner${i}`));
    peers.push(mkToken(`tenant${i}`, `peer${i}`)); // same tenant, another principal
  }
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver() },
      gateway: {
        auth: { tokens: [...owners, ...peers].map((x) => x.entry), failure_limit: { max: 100000 } },
        limits: { maxInflightPerUpstream: 100000 },
      },
    },
  });
  const t0 = Date.now();
  const sessions = [];
  for (let ti = 0; ti < TENANTS; ti++)
    for (let si = 0; si < SESSIONS; si++)
      sessions.push({ ti, si, marker: `t${ti}-s${si}-${crypto.randomBytes(4).toString('hex')}` });

  // 1. Every owner opens its sessions and runs a streamed call whose events carry its marker.
  await pool(sessions, 48, async (x) => {
    const h = bearer(owners[x.ti].token);
    x.sess = await initSession(gw.url, { headers: h });
    const msg = rpc('tools/call', {
      name: 'sleep',
      arguments: { ms: 4, progressEveryMs: 1 },
      _meta: { progressToken: x.marker },
    });
    const r = await request(gw.url, { headers: sessionHeaders(x.sess, h), body: msg });
    assert.equal(r.status, 200);
    const evs = await r.events({ timeout: 10000 });
    x.eventId = evs.find((e) => e.id && e.hasData)?.id;
    assert.ok(x.eventId, 'no event id');
    for (const e of evs) for (const m of e.data.match(MARK) || []) assert.equal(m, x.marker, 'foreign data on a stream');
  });
  t.log(`setup ${Date.now() - t0} ms`);

  // 2. Attacks: another tenant's owner and the same tenant's other principal.
  const refusals = { post: 0, get: 0, resume: 0, delete: 0 };
  const check = async (r, what) => {
    const body = await r.text();
    assert.equal(r.status, 404, `${what}: HTTP ${r.status} ${body.slice(0, 200)}`);
    assert.ok(!MARK.test(body), `${what}: a refusal carries session data`);
    MARK.lastIndex = 0;
    refusals[what]++;
  };
  await pool(sessions, 48, async (x) => {
    const intruders = [owners[(x.ti + 1) % TENANTS], peers[x.ti]];
    for (const who of intruders) {
      const h = (extra = {}) => sessionHeaders(x.sess, { ...bearer(who.token), ...extra });
      await check(await request(gw.url, { headers: h(), body: rpc('tools/call', { name: 'echo', arguments: { message: 'steal' } }) }), 'post');
      await check(await request(gw.url, { method: 'GET', headers: h({ Accept: 'text/event-stream' }) }), 'get');
      await check(
        await request(gw.url, { method: 'GET', headers: h({ Accept: 'text/event-stream', 'Last-Event-ID': x.eventId }) }),
        'resume',
      );
      await check(await request(gw.url, { method: 'DELETE', headers: h() }), 'delete');
    }
  });
  assert.deepEqual(refusals, { post: 2000, get: 2000, resume: 2000, delete: 2000 });

  // 3. Every owner still has its session, and replay gives back exactly its own events.
  await pool(sessions, 48, async (x) => {
    const h = bearer(owners[x.ti].token);
    const r = await request(gw.url, {
      method: 'GET',
      headers: sessionHeaders(x.sess, { ...h, Accept: 'text/event-stream', 'Last-Event-ID': x.eventId.replace(/-\d+$/, '-0') }),
    });
    assert.equal(r.status, 200);
    const evs = await r.events({ timeout: 10000 });
    const found = evs.flatMap((e) => e.data.match(MARK) || []);
    assert.ok(found.length > 0, 'replay lost the owner\'s events');
    for (const m of found) assert.equal(m, x.marker, 'replay carries another session\'s data');
    const result = evs.map(eventJson).find((m) => m && m.result);
    assert.match(result.result.content[0].text, /^slept 4$/);
  });
  const secs = (Date.now() - t0) / 1000;
  t.log(`total ${secs} s`);
  assert.ok(secs < 30, `took ${secs} s`);
  assert.equal((await gw.readyz()).json.sessions, TENANTS * SESSIONS, 'a session was deleted by an intruder');
}, { timeout: 90000 });

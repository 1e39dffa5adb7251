// Cancellation and timeouts: a cancelled or timed-out call stops occupying the upstream.
import assert from 'node:assert/strict';
import { ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { connect, textOf } from './lib/client.mjs';
import { eventJson, initSession, notification, request, rpc, sessionHeaders } from './lib/http.mjs';
import { testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';

// Sum of "inflight" over the upstreams in /readyz (0 when the field is absent).
async function inflight(gw) {
  const j = (await gw.readyz()).json;
  const ups = Array.isArray(j?.upstreams) ? j.upstreams : Object.values(j?.upstreams || {});
  return ups.reduce((n, u) => n + (Number(u?.inflight) || 0), 0);
}

test('notifications/cancelled from the client stops the upstream call', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const ac = new AbortController();
  const p = c.client.callTool({ name: 'sleep', arguments: { ms: 10000 } }, undefined, { signal: ac.signal });
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the call to be in flight' });
  ac.abort('e2e cancel');
  await assert.rejects(p);
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'inflight to drop to 0 after cancel' });
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'next' } })), 'next');
});

test('a client that disconnects mid-call does not cancel it (2025-11-25 semantics)', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const c = await connect(gw.url);
  const p = c.client.callTool({ name: 'sleep', arguments: { ms: 600 } }).catch(() => null);
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the call to be in flight' });
  await c.client.close(); // drops the connection without DELETE
  await p;
  await sleep(150);
  assert.equal(await inflight(gw), 1, 'a dropped connection cancelled the upstream call');
  // The call runs to completion upstream (its result is kept for resumption or dropped).
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 3000, what: 'the call to finish upstream' });
});

test('per-server timeoutMs: a slow call fails with a timeout error and is cancelled upstream', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { slow: testserver([], { timeoutMs: 300 }) } } });
  const c = await connect(gw.url);
  t.defer(() => c.close());
  const t0 = Date.now();
  let err = null;
  try {
    const r = await c.client.callTool({ name: 'sleep', arguments: { ms: 5000 } }, undefined, { timeout: 10000 });
    if (r.isError) err = JSON.stringify(r.content);
  } catch (e) {
    err = e.message;
  }
  const ms = Date.now() - t0;
  assert.ok(err, 'a call past timeoutMs must fail');
  assert.ok(ms >= 250 && ms < scaled(2000), `timed out after ${ms} ms (timeoutMs 300)`);
  assert.match(err, /time|slow/i, err);
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'inflight 0 after the timeout' });
  // A fast call still works.
  assert.equal(textOf(await c.client.callTool({ name: 'sleep', arguments: { ms: 10 } })), 'slept 10');
  await sleep(10);
});

// ---- a cancelled request is not answered (2025-11-25 cancellation: the receiver SHOULD NOT
// respond), and the SDK's reconnect after it never ends in 409s (issue 18, item 7) ----

const cancelNote = (id) => notification('notifications/cancelled', { requestId: id, reason: 'e2e cancel' });

// Log lines of the gateway's request log with this HTTP status.
const withStatus = (gw, status) => gw.logs().filter((l) => l.msg === 'request' && l.status === status);

test('SDK 1.32.2: a call cancelled through AbortSignal mid-stream leaves the client working, without 409s', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const errors = [];
  const listChanged = [];
  const c = await connect(gw.url, {
    setup(client) {
      client.onerror = (e) => errors.push(String(e?.message || e));
      client.setNotificationHandler(ToolListChangedNotificationSchema, (n) => listChanged.push(n));
    },
  });
  t.defer(() => c.close());
  // A call that streams (progress): its POST answer is an SSE stream with ids the SDK resumes from.
  const ac = new AbortController();
  let progressSeen = 0;
  const p = c.client.callTool({ name: 'sleep', arguments: { ms: 20000, progressEveryMs: 100 } }, undefined, {
    signal: ac.signal,
    onprogress: () => progressSeen++,
    timeout: 30000,
  });
  await waitFor(() => progressSeen >= 2, { what: 'progress on the streamed call' });
  ac.abort('e2e cancel');
  await assert.rejects(p);
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'the upstream call to be cancelled' });
  // The SDK resumes the ended stream after 1 s and, on an empty answer, opens a plain GET after
  // another second, retrying a refusal twice (1 s, 1.5 s): 5 s covers the whole sequence.
  await sleep(scaled(5000));
  assert.deepEqual(withStatus(gw, 409), [], `409s in the log: ${JSON.stringify(withStatus(gw, 409))}`);
  assert.deepEqual(errors, [], 'the SDK reported transport errors after the cancel');
  // The SDK did resume the ended stream, was told nothing is left, and opened no second GET.
  await gw.waitLog((l) => l.msg === 'request' && l.http === 'GET' && l.method === 'resume' && l.status === 204, {
    what: 'the SDK resuming the cancelled call\'s stream (204)',
  });
  const plainGets = gw.logs().filter((l) => l.msg === 'request' && l.http === 'GET' && l.method !== 'resume');
  assert.equal(plainGets.length, 1, `plain GETs: ${JSON.stringify(plainGets)}`);
  // Further calls work, and the GET stream still delivers.
  assert.equal(textOf(await c.client.callTool({ name: 'echo', arguments: { message: 'after' } })), 'after');
  await c.client.callTool({ name: 'trigger_list_changed', arguments: {} });
  await waitFor(() => listChanged.length > 0, { what: 'tools/list_changed on the GET stream after the cancel' });
  assert.deepEqual(withStatus(gw, 409), []);
}, { timeout: 30000 });

test('a cancelled request streaming SSE: the stream ends without a JSON-RPC response; resuming it yields 204', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const s = await initSession(gw.url);
  const req = rpc('tools/call', { name: 'sleep', arguments: { ms: 20000, progressEveryMs: 100 }, _meta: { progressToken: 'c1' } });
  const r = await request(gw.url, { headers: sessionHeaders(s), body: req });
  assert.equal(r.status, 200);
  assert.ok(r.isSSE, `a call with progress should stream (content-type ${r.contentType})`);
  const seen = [];
  while (!seen.some((e) => eventJson(e)?.method === 'notifications/progress')) seen.push(await r.next(3000));
  const n = await request(gw.url, { headers: sessionHeaders(s), body: cancelNote(req.id) });
  assert.equal(n.status, 202);
  await n.text();
  const rest = await r.events({ timeout: 3000 }); // the stream ends
  const all = [...seen, ...rest];
  const answered = all.map(eventJson).filter((m) => m && m.id === req.id);
  assert.deepEqual(answered, [], 'a cancelled request was answered');
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'the upstream call to be cancelled' });
  // Resuming the ended stream from its last event: nothing is left, and 204 says so (an empty 200
  // SSE answer makes the SDK fall back to a plain GET).
  const last = all.filter((e) => e.id).pop();
  const g = await request(gw.url, {
    method: 'GET',
    headers: sessionHeaders(s, { Accept: 'text/event-stream', 'Last-Event-ID': last.id }),
  });
  assert.equal(g.status, 204, `resume of a finished stream: HTTP ${g.status}: ${await g.text()}`);
  // Resuming from an earlier event still replays what followed it, then ends.
  const g2 = await request(gw.url, {
    method: 'GET',
    headers: sessionHeaders(s, { Accept: 'text/event-stream', 'Last-Event-ID': all.find((e) => e.id).id }),
  });
  assert.equal(g2.status, 200);
  const replay = await g2.events({ timeout: 3000 });
  assert.ok(replay.some((e) => eventJson(e)?.method === 'notifications/progress'), JSON.stringify(replay));
  assert.ok(!replay.some((e) => eventJson(e)?.id === req.id), 'the replay answered the cancelled request');
  const ok = await request(gw.url, { headers: sessionHeaders(s), body: rpc('ping') });
  assert.equal(ok.status, 200);
}, { timeout: 20000 });

test('a cancelled request waiting for JSON: an empty text/event-stream answer, no JSON-RPC response', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const s = await initSession(gw.url);
  const req = rpc('tools/call', { name: 'sleep', arguments: { ms: 20000 } });
  const pending = request(gw.url, { headers: sessionHeaders(s), body: req, timeout: 15000 });
  await waitFor(async () => (await inflight(gw)) === 1, { what: 'the call to be in flight' });
  const n = await request(gw.url, { headers: sessionHeaders(s), body: cancelNote(req.id) });
  assert.equal(n.status, 202);
  const r = await pending;
  const body = await r.text();
  assert.equal(r.status, 200);
  assert.match(r.contentType, /^text\/event-stream/);
  assert.equal(body, '', 'a cancelled request was answered');
  await waitFor(async () => (await inflight(gw)) === 0, { timeout: 2000, what: 'the upstream call to be cancelled' });
});

test('GET stream: a new GET after the previous connection dropped succeeds and is the only one fed', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { test: testserver() } } });
  const s = await initSession(gw.url);
  const get = () => request(gw.url, { method: 'GET', headers: sessionHeaders(s, { Accept: 'text/event-stream' }) });
  const g1 = await get();
  assert.equal(g1.status, 200);
  g1.close(); // the client's connection drops; the gateway writes nothing to it meanwhile
  const g2 = await get();
  assert.equal(g2.status, 200, `second GET after a drop: HTTP ${g2.status}: ${g2.isSSE ? '' : await g2.text()}`);
  // A third GET while the second is live replaces it: the second ends, only the third is fed.
  const g3 = await get();
  assert.equal(g3.status, 200, `GET replacing a live one: HTTP ${g3.status}`);
  const ended = await g2.events({ timeout: 3000 });
  assert.ok(!ended.some((e) => eventJson(e)), `the replaced GET stream still got messages: ${JSON.stringify(ended)}`);
  const res = await request(gw.url, { headers: sessionHeaders(s), body: rpc('tools/call', { name: 'trigger_list_changed', arguments: {} }) });
  await res.text();
  const ev = await g3.events({ timeout: 3000, until: (e) => eventJson(e)?.method?.endsWith('/list_changed') });
  assert.ok(ev.some((e) => eventJson(e)?.method?.endsWith('/list_changed')), JSON.stringify(ev));
  g3.close();
  assert.deepEqual(withStatus(gw, 409), []);
});

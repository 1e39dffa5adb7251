// The big scale-out run shared by replicas.test.mjs (Redis) and replicas-pg.test.mjs (PostgreSQL):
// SESSIONS official-SDK sessions of CALLS calls each through nginx round robin over 3 replicas of
// one shared store, with server notifications, a GET stream, a POST stream cut and resumed with
// Last-Event-ID on whichever replica, isolation "session" children forwarded to their replica, and
// optionally a replica SIGKILLed at 40 %. bigRun(t, {kill, store: {name, url, sessionKeys()}, config}).
import assert from 'node:assert/strict';
import { CallToolResultSchema, LoggingMessageNotificationSchema, ToolListChangedNotificationSchema } from '@modelcontextprotocol/sdk/types.js';
import { Client, StreamableHTTPClientTransport, textOf } from './client.mjs';
import { startNginx, startReplicas, waitStore } from './cluster.mjs';
import { scaled, sleep, waitFor, withTimeout } from './harness.mjs';

// 300 x 20 as issue #7 asks; 50 under sanitizers (MG_E2E_TIMEOUT_SCALE > 1), which are ~5x slower.
export const SESSIONS = Number(process.env.MG_E2E_REPLICA_SESSIONS || (Number(process.env.MG_E2E_TIMEOUT_SCALE || 1) > 1 ? 50 : 300));
export const CALLS = Number(process.env.MG_E2E_REPLICA_CALLS || 20);
const CALL_TIMEOUT = 20000; // a call that takes longer has hung: the test fails, it is never retried


// ---- one SDK session, as a real client would run it ------------------------------------------

// Failures a client sees when a replica dies under it; anything else is a bug.
function transient(e) {
  const reason = e?.data?.reason;
  if (reason === 'upstream_state_lost' || reason === 'replica_gone') return true;
  if ([502, 503, 504].includes(e?.code)) return true; // nginx: the replica's connection broke
  const m = String(e?.message || e);
  return /HTTP 50[234]|50[234] Bad Gateway|fetch failed|ECONNRESET|ECONNREFUSED|socket|other side closed|terminated|SSE stream disconnected|UND_ERR|network/i.test(
    m,
  );
}

// fetch for the SDK transport that cuts one POST response stream after its first progress event
// (a dropped connection, as a client sees one), counts resumptions, and measures failures.
function instrumentedFetch(tally) {
  return async (url, init = {}) => {
    const headers = new Headers(init.headers);
    if ((init.method || 'GET') === 'GET' && headers.get('last-event-id')) tally.resumes++;
    const res = await fetch(url, init);
    const body = typeof init.body === 'string' ? init.body : '';
    if (init.method !== 'POST' || !body.includes('cut-me') || !(res.headers.get('content-type') || '').startsWith('text/event-stream'))
      return res;
    const reader = res.body.getReader();
    let seen = Buffer.alloc(0);
    let sent = 0;
    const stream = new ReadableStream({
      async pull(ctrl) {
        const { value, done } = await reader.read();
        if (done) {
          ctrl.close();
          return;
        }
        seen = Buffer.concat([seen, Buffer.from(value)]);
        // cut right after the first complete progress event: nothing after it reaches the SDK
        const m = /notifications\/progress[^\n]*\n\n/.exec(seen.toString('latin1'));
        if (!m) {
          ctrl.enqueue(new Uint8Array(seen.subarray(sent)));
          sent = seen.length;
          return;
        }
        const end = m.index + m[0].length;
        if (end > sent) ctrl.enqueue(new Uint8Array(seen.subarray(sent, end)));
        tally.cuts++;
        reader.cancel().catch(() => {});
        ctrl.error(new TypeError('connection dropped (simulated by the test)'));
      },
      cancel() {
        reader.cancel().catch(() => {});
      },
    });
    return new Response(stream, { status: res.status, statusText: res.statusText, headers: res.headers });
  };
}

async function connectSession(url, i, tally) {
  for (let attempt = 0; ; attempt++) {
    const client = new Client({ name: `replicas-${i}`, version: '1.0.0' }, { capabilities: {} });
    client.setNotificationHandler(LoggingMessageNotificationSchema, () => tally.logs++);
    client.setNotificationHandler(ToolListChangedNotificationSchema, () => tally.listChanged++);
    const transport = new StreamableHTTPClientTransport(new URL(url), {
      fetch: instrumentedFetch(tally),
      reconnectionOptions: { initialReconnectionDelay: 100, maxReconnectionDelay: 1000, reconnectionDelayGrowFactor: 1.5, maxRetries: 8 },
    });
    transport.onerror = () => {};
    const t0 = Date.now();
    try {
      await withTimeout(client.connect(transport, { timeout: CALL_TIMEOUT }), CALL_TIMEOUT + 1000, 'connect');
      return { client, transport };
    } catch (e) {
      await client.close().catch(() => {});
      if (!transient(e) || attempt >= 5) throw e;
      tally.retries.push({ step: 'connect', ms: Date.now() - t0, error: String(e.message || e).slice(0, 120) });
      await sleep(50);
    }
  }
}

// Runs fn until it succeeds; transient failures are retried (and their latency recorded).
async function retried(tally, step, fn) {
  for (let attempt = 0; ; attempt++) {
    const t0 = Date.now();
    try {
      return await fn();
    } catch (e) {
      if (!transient(e) || attempt >= 5) throw new Error(`${step}: ${e.message || e}${e?.data ? ' ' + JSON.stringify(e.data) : ''}`);
      const kind = e?.data?.reason || ([502, 503, 504].includes(e?.code) ? `http ${e.code}` : 'connection');
      tally.retries.push({ step, kind, ms: Date.now() - t0, error: String(e.message || e).slice(0, 160) });
      await sleep(50);
    }
  }
}

async function runSession(url, i, tally, onCall) {
  const { client, transport } = await connectSession(url, i, tally);
  const opts = { timeout: CALL_TIMEOUT };
  try {
    const tools = await retried(tally, 'tools/list', () => client.listTools(undefined, opts));
    const names = tools.tools.map((t) => t.name);
    assert.ok(names.includes('test__echo') && names.includes('iso__echo'), `tools/list: ${names.slice(0, 5)}`);
    for (let j = 0; j < CALLS; j++) {
      let r;
      if (j === 3) {
        // server notifications on the request's own stream (from the session's own child, which
        // may run on another replica: they are relayed)
        r = await retried(tally, 'logging', () => client.callTool({ name: 'iso__test_tool_with_logging', arguments: {} }, CallToolResultSchema, opts));
      } else if (j === 7) {
        // a notification from the session's own child, on the session's GET stream (any replica)
        r = await retried(tally, 'list_changed', () => client.callTool({ name: 'iso__trigger_list_changed', arguments: {} }, CallToolResultSchema, opts));
      } else if (j === 11) {
        // the resumed stream: the POST response is cut after its first progress event; the SDK
        // resumes it with GET + Last-Event-ID, which nginx sends to whichever replica
        r = await retried(tally, 'resume', () =>
          client.callTool(
            { name: 'test__sleep', arguments: { ms: 400, progressEveryMs: 50 }, _meta: { 'dev.mcpgate.e2e/tag': 'cut-me' } },
            CallToolResultSchema,
            { ...opts, onprogress: () => tally.progress++ },
          ),
        );
        assert.equal(textOf(r), 'slept 400');
      } else {
        const name = j % 5 === 4 ? 'iso__echo' : 'test__echo';
        const msg = `s${i}-c${j}-${Math.random().toString(36).slice(2)}`;
        r = await retried(tally, name, () => client.callTool({ name, arguments: { message: msg } }, CallToolResultSchema, opts));
        assert.equal(textOf(r), msg, `${name}: sent ${msg}, got ${JSON.stringify(r).slice(0, 200)}`);
      }
      assert.ok(!r.isError, `call ${j}: ${JSON.stringify(r).slice(0, 200)}`);
      tally.calls++;
      onCall?.();
    }
    // The list_changed went to the GET stream; give it a moment to arrive. When that stream lived
    // on a killed replica, the SDK reconnects it (with Last-Event-ID, replayed from the store) on its own
    // backoff: slower under sanitizers, hence the scaled wait.
    await waitFor(() => tally.listChanged > 0, { timeout: scaled(8000), what: `session ${i}: tools/list_changed on the GET stream` });
    await retried(tally, 'DELETE', () => transport.terminateSession());
  } finally {
    await client.close().catch(() => {});
  }
}

// "http 502 x40, upstream_state_lost x30, ..." for the summary line
function kinds(retries) {
  const n = {};
  for (const r of retries) n[r.kind || r.step] = (n[r.kind || r.step] || 0) + 1;
  return Object.entries(n)
    .map(([k, v]) => `${k} x${v}`)
    .join(', ');
}

export async function bigRun(t, { kill, store, config }) {
  const gws = await startReplicas(t, 3, { redisUrl: store.url, config });
  await waitStore(gws, true);
  const lb = await startNginx(t, gws.map((g) => g.port));
  const total = SESSIONS * CALLS;
  let done = 0;
  let killedAt = 0;
  const onCall = () => {
    done++;
    if (kill && !killedAt && done >= total * 0.4) {
      killedAt = Date.now();
      gws[1].kill(); // SIGKILL: no drain, no goodbye
    }
  };
  const tallies = [];
  const failures = [];
  const t0 = Date.now();
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, i) => {
      const tally = { calls: 0, logs: 0, progress: 0, listChanged: 0, resumes: 0, cuts: 0, retries: [] };
      tallies.push(tally);
      await sleep((i % 50) * 10); // a ramp, as clients arrive
      try {
        await runSession(lb.url, i, tally, onCall);
      } catch (e) {
        failures.push(`session ${i}: ${e.message}`);
      }
    }),
  );
  const ms = Date.now() - t0;
  const sum = (k) => tallies.reduce((a, x) => a + x[k], 0);
  const retries = tallies.flatMap((x) => x.retries);
  const slowest = retries.reduce((a, r) => Math.max(a, r.ms), 0);
  const line =
    `${SESSIONS} sessions x ${CALLS} calls via nginx over 3 replicas + ${store.name} in ${ms} ms: ${sum('calls')} calls ok, ` +
    `${sum('logs')} log + ${sum('progress')} progress + ${sum('listChanged')} list_changed notifications, ` +
    `${sum('cuts')} streams cut and ${sum('resumes')} resumptions, ${retries.length} retried failures ` +
    `(slowest failure ${slowest} ms${retries.length ? ': ' + kinds(retries) : ''})` +
    (kill ? `, replica 2 SIGKILLed at ${killedAt - t0} ms` : '');
  console.log(`     replicas: ${line}`);
  t.log(line);
  if (retries.length) t.log('retried:', JSON.stringify(retries.slice(0, 20)));
  assert.equal(failures.length, 0, `${failures.length} sessions failed; first: ${failures.slice(0, 5).join(' | ')}`);
  assert.equal(sum('calls'), total);
  for (const [i, x] of tallies.entries()) {
    assert.ok(x.logs >= 3, `session ${i}: ${x.logs} log notifications`);
    assert.ok(x.progress >= 1, `session ${i}: no progress notification`);
    assert.ok(x.cuts >= 1 && x.resumes >= 1, `session ${i}: cut ${x.cuts}, resumed ${x.resumes}`);
  }
  if (!kill) assert.equal(retries.length, 0, `failures without a replica dying: ${JSON.stringify(retries.slice(0, 5))}`);
  else {
    assert.ok(killedAt > 0, 'the replica was never killed');
    // calls in flight on the dead replica failed fast, with a connection error (then succeeded)
    assert.ok(slowest < 10000, `a failure took ${slowest} ms to surface`);
  }
  // every session is gone from the store (DELETE reached it through any replica)
  assert.deepEqual(await store.sessionKeys(), []);
  // the survivors are healthy and ready
  for (const g of gws) if (!g.exited) assert.equal((await g.readyz()).status, 200);
}


// gateway.tracing: W3C trace context in (HTTP traceparent or params._meta), spans out over OTLP/HTTP
// JSON to a receiver built with the official OpenTelemetry JS packages (lib/otlp.mjs): parentage,
// names, MCP semantic-convention attributes, the context the upstream receives, sampling, and an
// unreachable collector costing only a counter.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { bearer, readRecord, recordFile, recordedTestserver, tokenNew } from './lib/auth.mjs';
import { spawnSync } from 'node:child_process';
import { MG_BINARY, freePort, testserver, writeConfig } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';
import { requireBinaries, startRedis, startReplicas, waitStore } from './lib/cluster.mjs';
import { startIdp } from './lib/idp.mjs';
import { ACCEPT_BOTH, call, initSession, request, rpc } from './lib/http.mjs';
import { clientSpan, startReceiver } from './lib/otlp.mjs';

const SECRET_ARG = 'arg-value-that-must-never-be-traced-7731';

function byName(spans, name, kind) {
  return spans.filter((s) => s.name === name && (kind === undefined || s.kind === kind));
}

async function metric(gw, name, labels = '') {
  const r = await fetch(`${gw.base}/metrics`);
  const text = await r.text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels}`));
  return line ? Number(line.trim().split(/\s+/).pop()) : NaN;
}

test('a tools/call yields a server span under the caller, child spans for phases and the upstream, and the upstream gets the context', async (t) => {
  const rcv = await startReceiver(t);
  const rec = recordFile(t);
  const tok = tokenNew(['--tenant', 'acme', '--name', 'tracer']);
  const gw = await t.gateway({
    config: {
      mcpServers: { test: recordedTestserver(rec) },
      gateway: {
        auth: { tokens: [tok.entry] },
        rateLimits: { principal: { requests: 100, perSeconds: 60 } },
        tracing: { endpoint: rcv.url, sampleRatio: 1 },
      },
    },
  });
  const client = clientSpan(rcv.url);
  const headers = { ...bearer(tok.token), ...client.headers };
  const sess = await initSession(gw.url, { headers });
  const { response } = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: SECRET_ARG } }, { headers });
  assert.equal(response.result.content[0].text, SECRET_ARG);
  await client.end(); // the SDK exports its own span to the same receiver

  const spans = await rcv.waitSpans(
    (s) => byName(s, 'tools/call echo', 3).length === 1 && s.some((x) => x.spanId === client.spanId),
    'the tools/call spans and the client span',
  );
  const mine = spans.filter((s) => s.traceId === client.traceId);
  const clientS = mine.find((s) => s.spanId === client.spanId);
  assert.ok(clientS, 'the span of the SDK exporter reached the same receiver');
  // The HTTP request span of the tools/call POST: child of the client's span.
  const httpSpans = mine.filter((s) => s.name === 'POST /mcp' && s.kind === 2);
  assert.ok(httpSpans.length >= 2, `POST /mcp spans (initialize, initialized, call): ${mine.map((s) => s.name)}`);
  for (const h of httpSpans) {
    assert.equal(h.parentSpanId, client.spanId, 'an HTTP span is a child of the caller');
    assert.equal(h.service, 'mcpgate');
    assert.equal(h.attrs['http.request.method'], 'POST');
  }
  const server = byName(mine, 'tools/call echo', 2);
  assert.equal(server.length, 1, `one MCP server span: ${mine.map((s) => `${s.name}/${s.kind}`)}`);
  const srv = server[0];
  const callHttp = httpSpans.find((h) => h.spanId === srv.parentSpanId);
  assert.ok(callHttp, 'the MCP server span is a child of its HTTP request span');
  assert.equal(callHttp.attrs['http.response.status_code'], 200);
  assert.equal(srv.attrs['mcp.method.name'], 'tools/call');
  assert.equal(srv.attrs['gen_ai.tool.name'], 'echo');
  assert.equal(srv.attrs['gen_ai.operation.name'], 'execute_tool');
  assert.equal(srv.attrs['mcp.protocol.version'], '2025-11-25');
  assert.equal(srv.attrs['mcpgate.server'], 'test');
  assert.equal(srv.attrs['mcpgate.tenant'], 'acme');
  assert.match(srv.attrs['mcpgate.principal.hash'], /^[0-9a-f]{12}$/);
  assert.match(srv.attrs['mcp.session.id'], /^[0-9a-f]{12}$/, 'the session id is hashed');
  assert.notEqual(srv.attrs['mcp.session.id'], sess.sessionId);
  assert.ok(srv.attrs['jsonrpc.request.id'] !== undefined);
  assert.equal(srv.status, undefined, 'a successful call has no error status');
  // Children of the server span: the rate limit phase and the upstream request.
  const rate = mine.find((s) => s.name === 'mcpgate.rate_limit' && s.parentSpanId === srv.spanId);
  assert.ok(rate, 'a rate limit span under the call');
  const up = byName(mine, 'tools/call echo', 3)[0];
  assert.equal(up.parentSpanId, srv.spanId, 'the upstream span is a child of the call');
  assert.equal(up.attrs['network.transport'], 'pipe');
  assert.equal(up.attrs['mcpgate.server'], 'test');
  // Static tokens answer at once: a phase that does not wait costs no span.
  assert.ok(!mine.some((s) => s.name === 'mcpgate.auth'), 'an auth span without a wait');
  // The upstream received the context of the upstream span in params._meta.
  const line = readRecord(rec)
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l))
    .find((m) => m.method === 'tools/call');
  assert.equal(line.params._meta.traceparent, `00-${client.traceId}-${up.spanId}-01`);
  // ... as the last member of the client's params, as written (the line's text, not a re-dump)
  const raw = readRecord(rec).split('\n').find((l) => l.includes('"method":"tools/call"'));
  const ts = line.params._meta.tracestate === undefined ? '' : `,"tracestate":${JSON.stringify(line.params._meta.tracestate)}`;
  assert.ok(
    raw.includes(`"params":{"name":"echo","arguments":{"message":"${SECRET_ARG}"},"_meta":{"traceparent":"00-${client.traceId}-${up.spanId}-01"${ts}}}`),
    raw,
  );
  // Never argument values, tokens or the session id in what was exported.
  const all = rcv.bodies.map((b) => b.body).join('\n');
  assert.ok(!all.includes(SECRET_ARG), 'an argument value was exported');
  assert.ok(!all.includes(tok.token), 'the bearer token was exported');
  assert.ok(!all.includes(sess.sessionId), 'the raw session id was exported');
  assert.ok(rcv.bodies.every((b) => !b.error && b.contentType === 'application/json'), JSON.stringify(rcv.bodies.map((b) => b.error)));
});

test('_meta.traceparent parents the call; errors carry the JSON-RPC code; sampleRatio 0 follows the caller only', async (t) => {
  const rcv = await startReceiver(t);
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { tracing: { endpoint: rcv.url, sampleRatio: 0 } } },
  });
  // No context at all: ratio 0 records nothing.
  const plain = await initSession(gw.url);
  await call(gw.url, plain, 'tools/call', { name: 'echo', arguments: { message: 'untraced' } });
  // A sampled context in _meta only (the 2026 way): the call is traced under it.
  const metaTrace = '0af7651916cd43dd8448eb211c80319c';
  const metaParent = 'b7ad6b7169203331';
  await call(gw.url, plain, 'tools/call', {
    name: 'echo',
    arguments: { message: 'traced by meta' },
    _meta: { traceparent: `00-${metaTrace}-${metaParent}-01`, tracestate: 'vendor=abc' },
  });
  // An unknown tool: the error code on the span.
  await call(gw.url, plain, 'tools/call', {
    name: 'no_such_tool',
    arguments: {},
    _meta: { traceparent: `00-${metaTrace}-${metaParent}-01` },
  });
  // A tool error (a result with isError, answered from the upstream's bytes): both spans say so.
  const toolErr = await call(gw.url, plain, 'tools/call', {
    name: 'test_error_handling',
    arguments: {},
    _meta: { traceparent: `00-${metaTrace}-${metaParent}-01` },
  });
  assert.equal(toolErr.response.result?.isError, true, JSON.stringify(toolErr.response));
  // A context whose sampled flag is off: nothing.
  await call(gw.url, plain, 'tools/call', {
    name: 'echo',
    arguments: { message: 'not sampled' },
    _meta: { traceparent: `00-${'1'.repeat(32)}-${'2'.repeat(16)}-00` },
  });
  const spans = await rcv.waitSpans(
    (s) =>
      byName(s, 'tools/call no_such_tool', 2).length === 1 &&
      byName(s, 'tools/call echo', 3).length >= 1 &&
      byName(s, 'tools/call test_error_handling', 3).length === 1,
  );
  await sleep(1500); // one more export period: nothing else may arrive
  const server = byName(spans, 'tools/call echo', 2);
  assert.equal(server.length, 1, `only the _meta-sampled call is traced: ${spans.map((s) => `${s.name}/${s.traceId}`)}`);
  assert.equal(server[0].traceId, metaTrace);
  assert.equal(server[0].parentSpanId, metaParent);
  assert.equal(server[0].traceState, 'vendor=abc', 'tracestate passed on');
  assert.ok(spans.every((s) => s.traceId === metaTrace), 'no span of an unsampled or context-less request');
  const bad = byName(spans, 'tools/call no_such_tool', 2)[0];
  assert.equal(bad.status?.code, 2);
  assert.equal(bad.attrs['rpc.response.status_code'], '-32602');
  assert.equal(bad.attrs['error.type'], '-32602');
  for (const kind of [2, 3]) {
    const te = byName(spans, 'tools/call test_error_handling', kind)[0];
    assert.equal(te?.status?.code, 2, `kind ${kind}: ${JSON.stringify(te)}`);
    assert.equal(te.attrs['error.type'], 'tool_error');
  }
  // Invalid contexts are ignored, not trusted.
  const before = spans.length;
  await call(gw.url, plain, 'tools/call', {
    name: 'echo',
    arguments: { message: 'x' },
    _meta: { traceparent: `00-${'0'.repeat(32)}-${metaParent}-01` },
  });
  await sleep(1500);
  assert.equal(spans.length, before, 'an all-zero trace id started a trace');
});

test('2026-07-28: _meta carries the context; an MRTR round is a span under the call', async (t) => {
  const rcv = await startReceiver(t);
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { tracing: { endpoint: rcv.url, sampleRatio: 0 } } },
  });
  const V = '2026-07-28';
  const traceId = '5b8aa5a2d2c872e8321cf37308d69df2';
  const send = async (params) => {
    const body = rpc('tools/call', {
      ...params,
      _meta: {
        'io.modelcontextprotocol/protocolVersion': V,
        'io.modelcontextprotocol/clientCapabilities': { sampling: {} },
        'io.modelcontextprotocol/clientInfo': { name: 'e2e-trace', version: '1' },
        traceparent: `00-${traceId}-051581bf3cb55c13-01`,
      },
    });
    const r = await request(gw.url, {
      headers: { Accept: ACCEPT_BOTH, 'MCP-Protocol-Version': V, 'Mcp-Method': 'tools/call', 'Mcp-Name': params.name },
      body,
    });
    return (await r.messages()).find((m) => m && m.id === body.id);
  };
  const params = { name: 'test_sampling', arguments: { prompt: 'capital?' } };
  const first = await send(params);
  assert.equal(first.result.resultType, 'input_required', JSON.stringify(first));
  const [key] = Object.keys(first.result.inputRequests);
  const answer = { role: 'assistant', content: { type: 'text', text: 'Paris' }, model: 'e2e' };
  const second = await send({ ...params, requestState: first.result.requestState, inputResponses: { [key]: answer } });
  assert.equal(second.result.resultType, 'complete');
  const spans = await rcv.waitSpans((s) => byName(s, 'tools/call test_sampling', 2).length === 1, 'the MRTR call span');
  const call = byName(spans, 'tools/call test_sampling', 2)[0];
  assert.equal(call.traceId, traceId);
  assert.equal(call.parentSpanId, '051581bf3cb55c13');
  assert.equal(call.attrs['mcp.protocol.version'], V);
  assert.equal(call.attrs['mcp.session.id'], undefined, 'no session in 2026-07-28');
  const round = spans.find((s) => s.name === 'mcpgate.mrtr_round');
  assert.ok(round, `an MRTR round span: ${spans.map((s) => s.name)}`);
  assert.equal(round.parentSpanId, call.spanId);
  assert.equal(round.attrs['mcpgate.mrtr.round'], 1);
  const up = byName(spans, 'tools/call test_sampling', 3)[0];
  assert.equal(up.parentSpanId, call.spanId);
  assert.ok(BigInt(round.endTimeUnixNano) <= BigInt(call.endTimeUnixNano));
});

test('an auth phase that waits (token introspection) gets its span under the HTTP request', async (t) => {
  const rcv = await startReceiver(t);
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const idp = await startIdp({ audience: resource });
  t.defer(() => idp.stop());
  await idp.addKey('RS256');
  const gw = await t.gateway({
    port,
    config: {
      mcpServers: { test: testserver() },
      gateway: {
        auth: {
          oauth: {
            issuer: idp.issuer,
            audience: resource,
            required_scopes: ['mcp'],
            introspection: { client_id: 'mcpgate', client_secret: 'gateway-secret', cache_s: 0 },
          },
          resource,
        },
        tracing: { endpoint: rcv.url, sampleRatio: 1 },
      },
    },
  });
  await waitFor(() => idp.stats.metadata > 0 && idp.stats.jwks > 0, { what: 'discovery' });
  const token = idp.opaque({ sub: 'carol' });
  const client = clientSpan(rcv.url);
  const headers = { ...bearer(token), ...client.headers };
  const sess = await initSession(gw.url, { headers });
  await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: 'x' } }, { headers });
  const spans = await rcv.waitSpans((s) => byName(s, 'tools/call echo', 2).length === 1, 'the call span');
  const callSpan = byName(spans, 'tools/call echo', 2)[0];
  const auth = spans.find((s) => s.name === 'mcpgate.auth' && s.parentSpanId === callSpan.parentSpanId);
  assert.ok(auth, `an auth span beside the call, under its HTTP span: ${spans.map((s) => s.name)}`);
  assert.equal(auth.traceId, client.traceId);
  assert.ok(!rcv.bodies.some((b) => b.body.includes(token)), 'the token was exported');
});

test('two replicas: a call forwarded to the replica running the session\'s children continues the trace there', async (t) => {
  requireBinaries(t, 'redis-server');
  const rcv = await startReceiver(t);
  const redis = await startRedis(t);
  const config = {
    mcpServers: { iso: testserver([], { isolation: 'session' }) },
    gateway: { tracing: { endpoint: rcv.url, sampleRatio: 1 } },
  };
  const [a, b] = await startReplicas(t, 2, { redisUrl: redis.url(0), config });
  await waitStore([a, b], true);
  const client = clientSpan(rcv.url);
  const s = await initSession(a.url, { headers: client.headers });
  await call(b.url, s, 'tools/list', {}, { headers: client.headers }); // b runs the children now
  const { response } = await call(a.url, s, 'tools/call', { name: 'echo', arguments: { message: 'via a' } }, { headers: client.headers });
  assert.equal(response.result?.content?.[0]?.text, 'via a', JSON.stringify(response));
  const spans = await rcv.waitSpans((x) => byName(x, 'tools/call echo', 2).length === 2, 'both replicas\' call spans');
  const calls = byName(spans, 'tools/call echo', 2).filter((x) => x.traceId === client.traceId);
  assert.equal(calls.length, 2, `one call span per replica in the client's trace: ${spans.map((x) => x.name)}`);
  const [onA, onB] = calls[0].parentSpanId === calls[1].spanId ? [calls[1], calls[0]] : [calls[0], calls[1]];
  assert.equal(onB.parentSpanId, onA.spanId, 'the owner replica\'s call span is a child of the forwarding one');
  assert.ok(byName(spans, 'tools/call echo', 3).some((x) => x.parentSpanId === onB.spanId), 'the upstream span is on the owner');
  // The session phase waits for Redis on every replica: its span sits under the HTTP span.
  const httpIds = new Set(spans.filter((x) => x.name === 'POST /mcp').map((x) => x.spanId));
  assert.ok(spans.some((x) => x.name === 'mcpgate.session' && httpIds.has(x.parentSpanId)), 'a session lookup span');
});

test('an unreachable collector costs a counter, never a call', async (t) => {
  const dead = `http://127.0.0.1:${await freePort()}/v1/traces`;
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { tracing: { endpoint: dead, sampleRatio: 1 } } },
  });
  const sess = await initSession(gw.url);
  for (let i = 0; i < 20; i++) {
    const { response } = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: `m${i}` } });
    assert.equal(response.result.content[0].text, `m${i}`);
  }
  let failed = NaN;
  const end = Date.now() + 8000;
  while (Date.now() < end) {
    failed = await metric(gw, 'mcpgate_trace_exports_failed_total');
    if (failed > 0) break;
    await sleep(200);
  }
  assert.ok(failed > 0, `mcpgate_trace_exports_failed_total: ${failed}`);
  assert.ok((await metric(gw, 'mcpgate_trace_spans_total', '{outcome="failed"}')) > 0);
  await gw.waitLog((l) => l.msg === 'trace export failed; spans of this batch are dropped', { what: 'one warn line' });
});

test('an endpoint named by host (looked up and pinned) and one given by IP both go through the lean HTTP/1.1 client: libcurl is never loaded', async (t) => {
  for (const host of ['localhost', '127.0.0.1']) {
    const rcv = await startReceiver(t);
    const gw = await t.gateway({
      config: { mcpServers: { test: testserver() }, gateway: { tracing: { endpoint: rcv.url.replace('127.0.0.1', host), sampleRatio: 1 } } },
    });
    const sess = await initSession(gw.url);
    const { response } = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: host } });
    assert.equal(response.result.content[0].text, host);
    const spans = await rcv.waitSpans((s) => byName(s, 'tools/call echo', 3).length === 1, `the upstream span via ${host}`);
    assert.equal(byName(spans, 'tools/call echo', 2).length, 1);
    const b = rcv.bodies.find((x) => x.body.includes('tools/call echo'));
    assert.equal(b.contentType, 'application/json');
    assert.equal(b.headers['content-length'], String(Buffer.byteLength(b.body)), 'a body of the length announced');
    assert.match(b.headers['user-agent'], /^mcpgate\//);
    await waitFor(async () => (await metric(gw, 'mcpgate_trace_spans_total', '{outcome="exported"}')) >= 3, { what: 'exported spans counted' });
    // libcurl is loaded at its first use (common/lazylib.c): the export never needed it
    const maps = fs.readFileSync(`/proc/${gw.pid}/maps`, 'utf8');
    assert.ok(!/libcurl/.test(maps), `libcurl was loaded for an export to ${host}`);
  }
});

test('an endpoint named by host that is down at first: exports fail and are counted, calls do not; once it is up, spans arrive', async (t) => {
  const port = await freePort();
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver() },
      gateway: { tracing: { endpoint: `http://localhost:${port}/v1/traces`, sampleRatio: 1 } },
    },
  });
  const sess = await initSession(gw.url);
  const calls = async (tag) => {
    for (let i = 0; i < 5; i++) {
      const { response } = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: `${tag}${i}` } });
      assert.equal(response.result.content[0].text, `${tag}${i}`);
    }
  };
  await calls('down');
  await waitFor(async () => (await metric(gw, 'mcpgate_trace_exports_failed_total')) > 0, { what: 'a failed export counted' });
  const rcv = await startReceiver(t, { port });
  await calls('up');
  // the failed address is looked up again, and the next exports reach the collector
  await rcv.waitSpans((s) => byName(s, 'tools/call echo', 3).length >= 1, 'spans after the collector came up');
  const maps = fs.readFileSync(`/proc/${gw.pid}/maps`, 'utf8');
  assert.ok(!/libcurl/.test(maps), 'libcurl was loaded');
});

test('config: tracing needs an http(s) endpoint and a ratio in 0..1', async (t) => {
  const bad = [
    [{ sampleRatio: 1 }, /"endpoint" is required/],
    [{ endpoint: 'ftp://collector/v1/traces' }, /must be an http:\/\/ or https:\/\/ URL/],
    [{ endpoint: 'http://collector/v1/traces', sampleRatio: 2 }, /sampleRatio: must be a number from 0 to 1/],
    [{ endpoint: 'http://collector/v1/traces', sampleRatoi: 1 }, /did you mean "sampleRatio"/],
  ];
  for (const [tracing, want] of bad) {
    const c = writeConfig({ mcpServers: { test: testserver() }, gateway: { tracing } });
    t.defer(c.remove);
    const r = spawnSync(MG_BINARY, ['check', '--config', c.file], { encoding: 'utf8' });
    assert.notEqual(r.status, 0, `accepted: ${JSON.stringify(tracing)}`);
    assert.match(r.stdout + r.stderr, want);
  }
  const ok = writeConfig({
    mcpServers: { test: testserver() },
    gateway: { legacySse: true, tracing: { endpoint: 'https://user:s3cret@c:4318/v1/traces', sampleRatio: 0.25 } },
  });
  t.defer(ok.remove);
  const r = spawnSync(MG_BINARY, ['check', '--config', ok.file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.match(r.stdout, /tracing: OTLP\/HTTP JSON to https:\/\/c:4318\/v1\/traces, sampleRatio 0.25/);
  assert.ok(!r.stdout.includes('s3cret'), 'check printed the endpoint credentials');
  assert.match(r.stdout, /transports: \/mcp \(Streamable HTTP\) and the deprecated 2024-11-05 HTTP\+SSE/);
});

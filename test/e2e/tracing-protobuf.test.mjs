// gateway.tracing "protocol": "http/protobuf" and "headers": spans exported as OTLP/HTTP binary
// protobuf (application/x-protobuf) with the collector's credentials, read by the e2e receiver's
// decoder (lib/otlp.mjs), which is itself checked here against the official OpenTelemetry JS
// serializer (@opentelemetry/otlp-transformer, the one the SDK's exporters use); the header value
// never appears in the log; spans of a call that ends during the shutdown grace period still reach
// the collector (the shutdown's last export).
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { JsonTraceSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { MG_BINARY, testserver, writeConfig } from './lib/gateway.mjs';
import { scaled, sleep, test } from './lib/harness.mjs';
import { call, initSession } from './lib/http.mjs';
import { clientSpan, decodeExportProtobuf, parseExport, startReceiver } from './lib/otlp.mjs';

const SECRET_ARG = 'arg-value-never-traced-5521';

test('the receiver\'s protobuf decoder reads what the official OpenTelemetry serializer writes', async () => {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(mem)] });
  const tracer = provider.getTracer('decoder-check');
  const parent = tracer.startSpan('parent', { kind: 1 });
  parent.setAttribute('s', 'text é');
  parent.setAttribute('i', -32602);
  parent.setAttribute('big', 2 ** 40);
  parent.setStatus({ code: 2, message: 'boom' });
  parent.end();
  tracer.startSpan('plain').end();
  await provider.forceFlush();
  const finished = mem.getFinishedSpans();
  const fromProto = parseExport(decodeExportProtobuf(Buffer.from(ProtobufTraceSerializer.serializeRequest(finished))));
  const fromJson = parseExport(Buffer.from(JsonTraceSerializer.serializeRequest(finished)).toString('utf8'));
  assert.equal(fromProto.length, 2);
  for (const want of fromJson) {
    const got = fromProto.find((s) => s.spanId === want.spanId);
    assert.ok(got, `span ${want.name} missing from the protobuf decoding`);
    for (const k of ['traceId', 'name', 'kind', 'startTimeUnixNano', 'endTimeUnixNano', 'service', 'scope']) {
      assert.equal(String(got[k]), String(want[k]), `${want.name}.${k}`);
    }
    assert.deepEqual(got.attrs, want.attrs, `${want.name} attributes`);
    assert.equal(got.status?.code ?? 0, want.status?.code ?? 0);
    assert.equal(got.status?.message ?? '', want.status?.message ?? '');
  }
  await provider.shutdown();
});

test('http/protobuf: a tools/call\'s spans reach the collector as OTLP protobuf with the configured headers; the header never reaches the log', async (t) => {
  const rcv = await startReceiver(t);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-otlp-'));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const key = 'otlp-key-' + crypto.randomBytes(12).toString('hex');
  fs.writeFileSync(path.join(dir, 'otlp-key'), key + '\n');
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver() },
      gateway: {
        tracing: {
          endpoint: rcv.url,
          sampleRatio: 1,
          protocol: 'http/protobuf',
          headers: { Authorization: `Bearer \${file:${path.join(dir, 'otlp-key')}}`, 'X-Tenant': 'ops' },
        },
      },
    },
  });
  const client = clientSpan(rcv.url); // the SDK's own exporter (JSON) to the same receiver
  const sess = await initSession(gw.url, { headers: client.headers });
  const { response } = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: SECRET_ARG } }, { headers: client.headers });
  assert.equal(response.result.content[0].text, SECRET_ARG);
  const bad = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: 7 }, { headers: client.headers });
  assert.ok(bad.response.error || bad.response.result?.isError, JSON.stringify(bad.response));
  await client.end();
  const spans = await rcv.waitSpans(
    (s) => s.filter((x) => x.name === 'tools/call echo' && x.kind === 2).length >= 2 && s.some((x) => x.spanId === client.spanId),
    'the protobuf spans of both calls and the client span',
  );
  const protoBodies = rcv.bodies.filter((b) => b.contentType === 'application/x-protobuf');
  assert.ok(protoBodies.length >= 1, `content types: ${rcv.bodies.map((b) => b.contentType)}`);
  assert.ok(rcv.bodies.every((b) => !b.error), rcv.bodies.map((b) => b.error).filter(Boolean).join('; '));
  for (const b of protoBodies) {
    assert.equal(b.headers.authorization, `Bearer ${key}`);
    assert.equal(b.headers['x-tenant'], 'ops');
    assert.ok(!b.body.includes(SECRET_ARG), 'an argument value was exported');
    assert.ok(!b.body.includes(sess.sessionId), 'the raw session id was exported');
  }
  const mine = spans.filter((s) => s.traceId === client.traceId);
  const server = mine.filter((s) => s.name === 'tools/call echo' && s.kind === 2);
  assert.equal(server.length, 2);
  for (const srv of server) {
    assert.equal(srv.service, 'mcpgate');
    assert.equal(srv.scope, 'mcpgate');
    assert.equal(srv.attrs['mcp.method.name'], 'tools/call');
    assert.equal(srv.attrs['gen_ai.tool.name'], 'echo');
    assert.match(srv.attrs['mcp.session.id'], /^[0-9a-f]{12}$/);
    const http = mine.find((h) => h.spanId === srv.parentSpanId);
    assert.ok(http && http.name === 'POST /mcp', 'the MCP span is a child of its HTTP span');
    assert.equal(http.parentSpanId, client.spanId, 'the HTTP span is a child of the caller (read from protobuf)');
    assert.ok(BigInt(srv.endTimeUnixNano) >= BigInt(srv.startTimeUnixNano));
  }
  const upstream = mine.filter((s) => s.kind === 3 && server.some((srv) => srv.spanId === s.parentSpanId));
  assert.ok(upstream.length >= 2, `client spans to the upstream: ${mine.map((s) => `${s.name}/${s.kind}`)}`);
  const log = gw.logs().map((l) => JSON.stringify(l)).join('\n');
  assert.ok(!log.includes(key), 'the collector header value was logged');
});

test('shutdown: the spans of a call ending during the grace period are exported by the last flush', async (t) => {
  const rcv = await startReceiver(t);
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver() },
      gateway: { limits: { shutdownGraceMs: scaled(10000) }, tracing: { endpoint: rcv.url, sampleRatio: 1, protocol: 'http/protobuf' } },
    },
  });
  const sess = await initSession(gw.url);
  const pending = call(gw.url, sess, 'tools/call', { name: 'sleep', arguments: { ms: scaled(800) } }, { timeout: scaled(15000) });
  await sleep(scaled(200));
  gw.proc.kill('SIGTERM');
  const { response } = await pending;
  assert.ok(response.result, `the call in flight at SIGTERM: ${JSON.stringify(response)}`);
  const exit = await gw.waitExit(scaled(15000));
  assert.ok(exit, 'the gateway did not exit');
  const sleeps = rcv.spans.filter((s) => s.name === 'tools/call sleep' && s.kind === 2);
  assert.equal(sleeps.length, 1, `the call's span after shutdown: ${rcv.spans.map((s) => s.name)}`);
});

test('config: tracing.protocol and tracing.headers are checked', async (t) => {
  const bad = [
    [{ endpoint: 'http://c/v1/traces', protocol: 'grpc' }, /protocol: must be "http\/json" \(the default\) or "http\/protobuf"/],
    [{ endpoint: 'http://c/v1/traces', headers: ['x'] }, /headers: must be an object/],
    [{ endpoint: 'http://c/v1/traces', headers: { 'Content-Type': 'x' } }, /is set by the exporter itself/],
    [{ endpoint: 'http://c/v1/traces', headers: { 'bad name': 'x' } }, /not a valid header name/],
    [{ endpoint: 'http://c/v1/traces', headers: { Authorization: '${env:MG_E2E_UNSET_OTLP_KEY}' } }, /MG_E2E_UNSET_OTLP_KEY/],
  ];
  for (const [tracing, want] of bad) {
    const c = writeConfig({ mcpServers: { test: testserver() }, gateway: { tracing } });
    t.defer(c.remove);
    const r = spawnSync(MG_BINARY, ['check', '--config', c.file], { encoding: 'utf8', env: { ...process.env, MG_E2E_UNSET_OTLP_KEY: '' } });
    assert.notEqual(r.status, 0, `accepted: ${JSON.stringify(tracing)}`);
    assert.match(r.stdout + r.stderr, want);
  }
  const ok = writeConfig({
    mcpServers: { test: testserver() },
    gateway: { tracing: { endpoint: 'http://c/v1/traces', protocol: 'http/protobuf', headers: { Authorization: 'Bearer literal-secret-123' } } },
  });
  t.defer(ok.remove);
  const r = spawnSync(MG_BINARY, ['check', '--config', ok.file], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stdout + r.stderr);
  assert.ok(!(r.stdout + r.stderr).includes('literal-secret-123'), 'check printed the header value');
});

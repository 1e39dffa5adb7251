// An OTLP/HTTP trace receiver on loopback and a traced client, written with the official
// OpenTelemetry JS packages (pinned in package.json): the client's span comes from the SDK
// (BasicTracerProvider), its context goes out through the W3C propagator, and the SDK's own OTLP
// exporter sends that span to the same receiver as the gateway, so one parser reads both: a span of
// the gateway that the receiver reads like the SDK's is what any collector will read.
import http from 'node:http';
import { context, defaultTextMapSetter, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { BasicTracerProvider, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { freePort } from './gateway.mjs';
import { waitFor } from './harness.mjs';

// Reads an OTLP ExportTraceServiceRequest in the JSON mapping: every span flattened with its
// resource's service.name. Throws on anything that is not that shape.
export function parseExport(body) {
  const req = typeof body === 'string' ? JSON.parse(body) : body;
  if (!Array.isArray(req.resourceSpans)) throw new Error(`no resourceSpans in ${body.slice(0, 200)}`);
  const out = [];
  for (const rs of req.resourceSpans) {
    const service = (rs.resource?.attributes || []).find((a) => a.key === 'service.name')?.value?.stringValue;
    for (const ss of rs.scopeSpans || []) {
      for (const s of ss.spans || []) {
        if (!/^[0-9a-f]{32}$/.test(s.traceId) || !/^[0-9a-f]{16}$/.test(s.spanId)) {
          throw new Error(`span ids are not lowercase hex: ${JSON.stringify(s)}`);
        }
        if (s.parentSpanId && !/^[0-9a-f]{16}$/.test(s.parentSpanId)) throw new Error(`bad parentSpanId ${s.parentSpanId}`);
        if (!(BigInt(s.endTimeUnixNano) >= BigInt(s.startTimeUnixNano))) throw new Error(`span ends before it starts: ${s.name}`);
        const attrs = {};
        for (const a of s.attributes || []) {
          const v = a.value || {};
          attrs[a.key] = v.stringValue ?? (v.intValue !== undefined ? Number(v.intValue) : v.boolValue ?? v.doubleValue);
        }
        out.push({ ...s, service, scope: ss.scope?.name, attrs });
      }
    }
  }
  return out;
}

// A minimal protobuf reader for the OTLP messages (opentelemetry-proto field numbers; wire types
// 0 varint, 1 fixed64, 2 length-delimited, 5 fixed32). Yields [fieldNumber, wireType, value]:
// value is a BigInt for 0/1/5 and a Buffer for 2. Throws on anything truncated or unknown.
function* fields(buf) {
  let pos = 0;
  const varint = () => {
    let r = 0n;
    for (let shift = 0n; ; shift += 7n) {
      if (pos >= buf.length || shift > 63n) throw new Error('truncated or overlong varint');
      const b = buf[pos++];
      r |= BigInt(b & 0x7f) << shift;
      if (!(b & 0x80)) return r;
    }
  };
  while (pos < buf.length) {
    const tag = Number(varint());
    const num = tag >>> 3;
    const wire = tag & 7;
    if (wire === 0) yield [num, wire, varint()];
    else if (wire === 1) {
      if (pos + 8 > buf.length) throw new Error('truncated fixed64');
      yield [num, wire, buf.readBigUInt64LE(pos)];
      pos += 8;
    } else if (wire === 5) {
      if (pos + 4 > buf.length) throw new Error('truncated fixed32');
      yield [num, wire, BigInt(buf.readUInt32LE(pos))];
      pos += 4;
    } else if (wire === 2) {
      const n = Number(varint());
      if (pos + n > buf.length) throw new Error('truncated length-delimited field');
      yield [num, wire, buf.subarray(pos, pos + n)];
      pos += n;
    } else throw new Error(`wire type ${wire} is not used by OTLP`);
  }
}

const toInt64 = (u) => BigInt.asIntN(64, u);

function anyValue(buf) {
  for (const [n, , v] of fields(buf)) {
    if (n === 1) return { stringValue: v.toString('utf8') };
    if (n === 2) return { boolValue: v !== 0n };
    if (n === 3) return { intValue: toInt64(v).toString() };
    if (n === 4) {
      const b = Buffer.alloc(8);
      b.writeBigUInt64LE(v);
      return { doubleValue: b.readDoubleLE(0) };
    }
  }
  return {};
}

function keyValue(buf) {
  const kv = {};
  for (const [n, , v] of fields(buf)) {
    if (n === 1) kv.key = v.toString('utf8');
    if (n === 2) kv.value = anyValue(v);
  }
  return kv;
}

function span(buf) {
  const s = { attributes: [] };
  for (const [n, w, v] of fields(buf)) {
    if (n === 1) s.traceId = v.toString('hex');
    else if (n === 2) s.spanId = v.toString('hex');
    else if (n === 3) s.traceState = v.toString('utf8');
    else if (n === 4 && v.length > 0) s.parentSpanId = v.toString('hex');
    else if (n === 5) s.name = v.toString('utf8');
    else if (n === 6) s.kind = Number(v);
    else if (n === 7 && w === 1) s.startTimeUnixNano = v.toString();
    else if (n === 8 && w === 1) s.endTimeUnixNano = v.toString();
    else if (n === 9) s.attributes.push(keyValue(v));
    else if (n === 15) {
      const st = {};
      for (const [sn, , sv] of fields(v)) {
        if (sn === 2) st.message = sv.toString('utf8');
        if (sn === 3) st.code = Number(sv);
      }
      if (st.code || st.message) s.status = st; // STATUS_CODE_UNSET is no status, as in JSON
    }
  }
  return s;
}

// Reads an OTLP ExportTraceServiceRequest in the binary protobuf encoding into the JSON mapping's
// shape ({resourceSpans: [{resource, scopeSpans: [{scope, spans}]}]}): ids as lowercase hex,
// times and int64 values as decimal strings.
export function decodeExportProtobuf(buf) {
  const req = { resourceSpans: [] };
  for (const [n, , rsBuf] of fields(buf)) {
    if (n !== 1) continue;
    const rs = { resource: { attributes: [] }, scopeSpans: [] };
    for (const [rn, , rv] of fields(rsBuf)) {
      if (rn === 1) for (const [an, , av] of fields(rv)) if (an === 1) rs.resource.attributes.push(keyValue(av));
      if (rn === 2) {
        const ss = { scope: {}, spans: [] };
        for (const [sn, , sv] of fields(rv)) {
          if (sn === 1) {
            for (const [cn, , cv] of fields(sv)) {
              if (cn === 1) ss.scope.name = cv.toString('utf8');
              if (cn === 2) ss.scope.version = cv.toString('utf8');
            }
          }
          if (sn === 2) ss.spans.push(span(sv));
        }
        rs.scopeSpans.push(ss);
      }
    }
    req.resourceSpans.push(rs);
  }
  return req;
}

// Starts the receiver: {url, spans, bodies, requests, waitSpans(pred), close()}. status: what it
// answers (200 by default); port: where it listens (a free one by default). A body sent as
// application/x-protobuf is decoded (decodeExportProtobuf); every body keeps its request headers.
export async function startReceiver(t, { status = 200, port: at } = {}) {
  const port = at ?? (await freePort());
  const spans = [];
  const bodies = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const raw = Buffer.concat(chunks);
      const proto = req.headers['content-type'] === 'application/x-protobuf';
      const body = proto ? raw.toString('latin1') : raw.toString('utf8'); // protobuf: bytes, greppable
      bodies.push({ body, contentType: req.headers['content-type'], path: req.url, headers: req.headers });
      try {
        spans.push(...parseExport(proto ? decodeExportProtobuf(raw) : body));
      } catch (e) {
        bodies.at(-1).error = e.message;
      }
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end('{}');
    });
  });
  await new Promise((ok) => server.listen(port, '127.0.0.1', ok));
  const rcv = {
    url: `http://127.0.0.1:${port}/v1/traces`,
    spans,
    bodies,
    get requests() {
      return requests;
    },
    async waitSpans(pred, what = 'spans') {
      await waitFor(() => pred(spans), { timeout: 8000, what });
      return spans;
    },
    close: () => new Promise((ok) => server.close(ok)),
  };
  t.defer(() => rcv.close());
  return rcv;
}

// A client span from the OpenTelemetry SDK, exported to url when ended. Returns {span, headers
// (traceparent, tracestate), traceId, spanId, end()}.
export function clientSpan(url, name = 'mcp client') {
  const provider = new BasicTracerProvider({
    spanProcessors: [new SimpleSpanProcessor(new OTLPTraceExporter({ url }))],
  });
  const span = provider.getTracer('mcpgate-e2e').startSpan(name);
  const headers = {};
  const ctx = trace.setSpan(context.active(), span);
  new W3CTraceContextPropagator().inject(ctx, headers, defaultTextMapSetter);
  const sc = span.spanContext();
  return {
    span,
    headers,
    traceId: sc.traceId,
    spanId: sc.spanId,
    async end() {
      span.end();
      await provider.forceFlush();
      await provider.shutdown();
    },
  };
}

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
  const req = JSON.parse(body);
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

// Starts the receiver: {url, spans, bodies, requests, waitSpans(pred), close()}. status: what it
// answers (200 by default).
export async function startReceiver(t, { status = 200 } = {}) {
  const port = await freePort();
  const spans = [];
  const bodies = [];
  let requests = 0;
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      requests++;
      const body = Buffer.concat(chunks).toString('utf8');
      bodies.push({ body, contentType: req.headers['content-type'], path: req.url });
      try {
        spans.push(...parseExport(body));
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

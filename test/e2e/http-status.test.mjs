// Status lines: every status the gateway sends carries its standard reason phrase (RFC 9110 §15),
// not "Error" (clients print it: "Failed to open SSE stream: Error"). Each status is reached the
// way a client reaches it, over a raw socket so the status line is read as sent.
import assert from 'node:assert/strict';
import { tokenNew } from './lib/auth.mjs';
import { testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { initSession, request, sessionHeaders } from './lib/http.mjs';
import { buildPost, rawResponses } from './lib/raw.mjs';

const REASONS = {
  200: 'OK',
  202: 'Accepted',
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  406: 'Not Acceptable',
  204: 'No Content',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  429: 'Too Many Requests',
  503: 'Service Unavailable',
};
const ping = (id = 1) => ({ jsonrpc: '2.0', id, method: 'ping' });

// Every answer also names the gateway once ("server: mcpgate", added by src/http/server.c on_req
// since h2o's own server_name is off): noted per status line, checked at the end.
const unnamed = [];
async function statusLine(port, bytes) {
  const r = await rawResponses(port, bytes, { timeout: 3000, max: 1 });
  assert.ok(r.responses.length >= 1, `no response to ${bytes.toString('latin1').split('\r\n')[0]}`);
  const { statusLine: line, headers } = r.responses[0];
  if (headers.server !== 'mcpgate') unnamed.push(`${line}: server ${JSON.stringify(headers.server)}`);
  return line;
}

test('every status line has its standard reason phrase (204 400 401 403 404 405 406 413 415 429 503)', async (t) => {
  const gw = await t.gateway({
    config: { mcpServers: { test: testserver() }, gateway: { limits: { maxBodyBytes: 1024, maxInflightPerSession: 1 } } },
  });
  const s = await initSession(gw.url, { protocolVersion: '2025-06-18' });
  const s03 = await initSession(gw.url, { protocolVersion: '2025-03-26' });
  const S = { 'Mcp-Session-Id': s.sessionId, 'MCP-Protocol-Version': '2025-06-18' };
  const got = {};
  got[200] = await statusLine(gw.port, buildPost(ping(), S));
  got[202] = await statusLine(gw.port, buildPost({ jsonrpc: '2.0', method: 'notifications/x' }, S));
  got[400] = await statusLine(gw.port, buildPost(ping()));
  got[403] = await statusLine(gw.port, buildPost(ping(), { ...S, Host: 'evil.example' }));
  got[404] = await statusLine(gw.port, 'GET /nowhere HTTP/1.1\r\nHost: localhost\r\n\r\n');
  got[405] = await statusLine(gw.port, buildPost(undefined, { ...S, 'Content-Length': '0' }, { method: 'PUT' }));
  got[406] = await statusLine(gw.port, buildPost(ping(), { ...S, Accept: 'application/json' }));
  got[413] = await statusLine(gw.port, buildPost({ ...ping(), params: { pad: 'x'.repeat(1500) } }, S));
  got[415] = await statusLine(gw.port, buildPost(ping(), { ...S, 'Content-Type': 'text/plain' }));
  got[429] = await statusLine(gw.port, buildPost([ping(1), ping(2)], { 'Mcp-Session-Id': s03.sessionId }));
  // 204: resuming a stream that finished, from its last event (nothing left to send). (409 is no
  // longer sent on /mcp: a new GET takes the GET stream over, docs/eras.md.)
  const call = await request(gw.url, {
    method: 'POST',
    headers: sessionHeaders(s),
    body: { jsonrpc: '2.0', id: 7, method: 'tools/call', params: { name: 'test_tool_with_progress', arguments: {}, _meta: { progressToken: 't' } } },
  });
  assert.equal(call.status, 200);
  assert.ok(call.isSSE, 'progress first switches the answer to SSE');
  const ids = [...(await call.text()).matchAll(/^id: (.+)$/gm)].map((m) => m[1]);
  assert.ok(ids.length > 0, 'the SSE answer carries event ids');
  got[204] = await statusLine(gw.port, buildPost(undefined, { ...S, Accept: 'text/event-stream', 'Content-Type': null, 'Last-Event-ID': ids.at(-1) }, { method: 'GET' }));

  // 401: a gateway with auth, no credentials.
  const a = tokenNew(['--tenant', 'acme']);
  const authed = await t.gateway({ config: { mcpServers: { test: testserver() }, gateway: { auth: { tokens: [a.entry] } } } });
  got[401] = await statusLine(authed.port, buildPost(ping()));
  // 503: /readyz of a gateway whose only upstream cannot start.
  const down = await t.gateway({ config: { mcpServers: { broken: { command: '/bin/false' } } } });
  got[503] = await statusLine(down.port, 'GET /readyz HTTP/1.1\r\nHost: localhost\r\n\r\n');

  const wrong = Object.entries(REASONS)
    .filter(([code, reason]) => got[code] !== `HTTP/1.1 ${code} ${reason}`)
    .map(([code, reason]) => `${code}: got ${JSON.stringify(got[code])}, want "HTTP/1.1 ${code} ${reason}"`);
  assert.deepEqual(wrong, [], wrong.join('\n'));
  assert.deepEqual(unnamed, [], `each answer carries "server: mcpgate" once:\n${unnamed.join('\n')}`);
});

// Request smuggling on keep-alive HTTP/1.1 connections (RFC 9112 §6.1, §6.3, §3.2): a request whose
// framing or target is ambiguous (Content-Length with Transfer-Encoding, several Content-Length or
// Transfer-Encoding fields, several Host fields, an empty or missing Host on HTTP/1.1) is answered
// 400 and its connection closed, on every path, so the bytes after its body never run as a second
// request. Each case pipelines a smuggled "GET /healthz" behind the bad request and checks that
// exactly one response (the 400) comes back and the server closes the connection; a control case
// shows that the same pipelining of a good request does get the second response.
import assert from 'node:assert/strict';
import { testserver } from './lib/gateway.mjs';
import { scaled, test } from './lib/harness.mjs';
import { rawResponses } from './lib/raw.mjs';

const CONFIG = { mcpServers: { test: testserver() } };
const PATHS = ['/mcp', '/healthz', '/readyz', '/metrics', '/.well-known/oauth-protected-resource'];
const SMUGGLED = 'GET /healthz HTTP/1.1\r\nHost: localhost\r\nX-Smuggled: 1\r\n\r\n';
const MCP = 'Content-Type: application/json\r\nAccept: application/json, text/event-stream\r\n';

// [name, (path) -> bytes]: each request is followed by SMUGGLED on the same connection.
const CASES = [
  ['Content-Length then Transfer-Encoding', (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\n${MCP}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['Transfer-Encoding then Content-Length', (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\n${MCP}Transfer-Encoding: chunked\r\nContent-Length: 5\r\n\r\n0\r\n\r\n`],
  ['two different Content-Length values', (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\n${MCP}Content-Length: 0\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n`],
  ['two equal Content-Length values', (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\n${MCP}Content-Length: 0\r\nContent-Length: 0\r\n\r\n`],
  ['Content-Length as a list', (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\n${MCP}Content-Length: 0, 0\r\n\r\n`],
  ['two Transfer-Encoding fields', (p) => `POST ${p} HTTP/1.1\r\nHost: localhost\r\n${MCP}Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['Content-Length on a chunked HTTP/1.0 request', (p) => `POST ${p} HTTP/1.0\r\nHost: localhost\r\nConnection: keep-alive\r\n${MCP}Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n`],
  ['two Host fields (evil first)', (p) => `GET ${p} HTTP/1.1\r\nHost: evil.example\r\nHost: localhost\r\n\r\n`],
  ['two equal Host fields', (p) => `GET ${p} HTTP/1.1\r\nHost: localhost\r\nHost: localhost\r\n\r\n`],
  ['an empty Host on HTTP/1.1', (p) => `GET ${p} HTTP/1.1\r\nHost: \r\n\r\n`],
  ['a blank Host on HTTP/1.1', (p) => `GET ${p} HTTP/1.1\r\nHost:    \r\n\r\n`],
  ['no Host on HTTP/1.1', (p) => `GET ${p} HTTP/1.1\r\nAccept: */*\r\n\r\n`],
];

test('ambiguous framing or Host: 400, connection closed, the smuggled request never answered (every path)', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  // Control: a good request with the same pipelined tail gets both answers (so a smuggled
  // request that ran would be seen below).
  for (const p of PATHS) {
    const r = await rawResponses(gw.port, `GET ${p} HTTP/1.1\r\nHost: localhost\r\n\r\n${SMUGGLED}`, { max: 2 });
    assert.equal(r.responses.length, 2, `control ${p}: ${JSON.stringify(r.responses.map((x) => x.statusLine))}`);
    assert.equal(r.responses[1].status, 200, `control ${p}: the pipelined /healthz was not answered`);
  }
  const failures = [];
  for (const p of PATHS) {
    for (const [name, make] of CASES) {
      const r = await rawResponses(gw.port, make(p) + SMUGGLED, { timeout: scaled(2000) }); // ends at the close: the bound only matters on failure
      const lines = r.responses.map((x) => x.statusLine);
      const what = `${name} on ${p}: got ${JSON.stringify(lines)}, closed ${r.closed}`;
      if (r.responses.length !== 1) failures.push(`${what} (the smuggled request was answered)`);
      else if (r.responses[0].status !== 400) failures.push(`${what} (want 400)`);
      else if (!r.closed) failures.push(`${what} (the connection stayed open)`);
      else if (r.trailing !== '') failures.push(`${what} (bytes after the 400: ${JSON.stringify(r.trailing.slice(0, 80))})`);
    }
  }
  assert.deepEqual(failures, [], `${failures.length} cases failed:\n  ${failures.join('\n  ')}`);
  // The gateway's own 400 says what was wrong, names no value, and says Connection: close.
  const r = await rawResponses(gw.port, `POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nContent-Length: 44\r\n\r\n${SMUGGLED}`);
  assert.equal(r.responses[0].statusLine, 'HTTP/1.1 400 Bad Request');
  assert.equal(r.responses[0].headers.connection, 'close');
  assert.match(JSON.parse(r.responses[0].body).error.message, /Content-Length/);
  const h = await rawResponses(gw.port, 'GET /healthz HTTP/1.1\r\nHost: evil.example\r\nHost: localhost\r\n\r\n');
  assert.match(JSON.parse(h.responses[0].body).error.message, /Host/);
  assert.ok(!h.responses[0].body.includes('evil.example'), 'the 400 echoes a header value');
  // The gateway still serves normally.
  assert.equal((await gw.healthz()).status, 200);
}, { timeout: 90000 });

test('well-formed requests keep working: HTTP/1.0 without Host, chunked, keep-alive pipelining', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  // HTTP/1.0 has no Host requirement.
  let r = await rawResponses(gw.port, 'GET /healthz HTTP/1.0\r\n\r\n');
  assert.equal(r.responses.length, 1);
  assert.equal(r.responses[0].status, 200);
  // A chunked body without Content-Length, then a pipelined request: both answered.
  const ping = '{"jsonrpc":"2.0","id":1,"method":"ping"}';
  r = await rawResponses(
    gw.port,
    `POST /healthz HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\n\r\n${ping.length.toString(16)}\r\n${ping}\r\n0\r\n\r\n${SMUGGLED}`,
    { max: 2 },
  );
  assert.deepEqual(r.responses.map((x) => x.status), [200, 200]);
  // One Content-Length, then a pipelined request: both answered.
  r = await rawResponses(gw.port, `POST /healthz HTTP/1.1\r\nHost: localhost\r\nContent-Length: ${ping.length}\r\n\r\n${ping}${SMUGGLED}`, { max: 2 });
  assert.deepEqual(r.responses.map((x) => x.status), [200, 200]);
});

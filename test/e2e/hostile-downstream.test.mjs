// Hostile clients (issue #4, part 3): a table of bad requests, each with the HTTP status and
// JSON-RPC error code it must get, sent over raw sockets (lib/raw.mjs) to one gateway; then the
// cases a table cannot hold: 100 MB bodies, slow drips (slowloris), many idle connections,
// abrupt disconnects mid-request and mid-stream, duplicate in-flight ids. After each part the
// gateway answers normally, its RSS has not grown beyond a small bound and the upstream child
// was never disturbed (same pid, no restart).
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { scaled, sleep, test, waitFor } from './lib/harness.mjs';
import { call, eventJson, initSession, request, sessionHeaders } from './lib/http.mjs';
import { buildPost, idleConnections, rawRequest, rssBound, rssKiB } from './lib/raw.mjs';

const IDLE_MS = 1500; // gateway.limits.httpIdleTimeoutMs in this file
const CONFIG = {
  mcpServers: { test: testserver() },
  gateway: { limits: { httpIdleTimeoutMs: IDLE_MS, maxInflightPerSession: 16 } },
};
const MAX_BODY = 4 * 1024 * 1024; // the default maxBodyBytes


// ---- the table -----------------------------------------------------------------------------------
//
// Each case: [name, request, expectation]. request is a Buffer/string (raw bytes; "{SID}" and
// "{SID03}" are replaced by a live 2025-06-18 / 2025-03-26 session id), or a function (ctx) ->
// bytes. expectation: {status (number or array), code (JSON-RPC error code in the body, or
// 'none' for no body check), msg (RegExp on error.message)}; status 0 means "connection closed
// without a response" is acceptable, listed explicitly.

const SID = '{SID}';
const S = { 'Mcp-Session-Id': SID, 'MCP-Protocol-Version': '2025-06-18' };
const ping = (id = 1) => ({ jsonrpc: '2.0', id, method: 'ping' });
const P = (body, headers = {}, more) => buildPost(body, { ...S, ...headers }, more);
const PARSE = { status: 400, code: -32700 };
const INVALID = { status: 400, code: -32600 };
const OK = { status: 200, code: 'none' };
const NOTFOUND = { status: 200, code: -32601 };
const PARAMS = { status: 200, code: -32602 };

const cases = [];
const add = (name, req, exp) => cases.push([name, req, exp]);

// 1. Invalid and truncated JSON.
const badJson = [
  '',
  ' ',
  '{',
  '}',
  '[',
  ']',
  '{"jsonrpc":"2.0"',
  '{"jsonrpc":"2.0","id":1,"method":"ping"',
  '{"jsonrpc":"2.0","id":1,"method":"ping"}}',
  '{"jsonrpc":"2.0","id":1,"method":"ping"} x',
  '{"jsonrpc":"2.0","id":1,"method":"ping"}{"jsonrpc":"2.0","id":2,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1,"method":"pi',
  '{"jsonrpc":"2.0","id":1,"method":"ping\\',
  '{"jsonrpc":"2.0","id":1,"method":"\\x41"}',
  '{"jsonrpc":"2.0","id":1,"method":"\\u12"}',
  '{"jsonrpc":"2.0","id":1,,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1,"method":"ping",}',
  '{"jsonrpc":"2.0" "id":1}',
  "{'jsonrpc':'2.0','id':1,'method':'ping'}",
  '{jsonrpc:"2.0",id:1,method:"ping"}',
  '{"jsonrpc":"2.0","id":01,"method":"ping"}',
  '{"jsonrpc":"2.0","id":NaN,"method":"ping"}',
  '{"jsonrpc":"2.0","id":Infinity,"method":"ping"}',
  '{"jsonrpc":"2.0","id":-,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1e,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1,"method":"ping"} // comment',
  '/* c */ {"jsonrpc":"2.0","id":1,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":tru}}',
  '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":nul}}',
  '{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":"\t"}}',
  '\ufeff{"jsonrpc":"2.0","id":1,"method":"ping"}',
  'null',
  'true',
  '42',
  '"ping"',
  '{"jsonrpc":"2.0","id":1,"id":2,"method":"ping"}',
  '{"jsonrpc":"2.0","id":1,"method":"ping","method":"tools/list"}',
  '{"jsonrpc":"2.0","id":123456789012345678901234567890,"method":"ping"}',
  '[' + '{"jsonrpc":"2.0","id":1,"method":"ping"},'.repeat(3) + ']',
];
badJson.forEach((b, i) => add(`invalid JSON #${i + 1}: ${JSON.stringify(b).slice(0, 40)}`, P(b), PARSE));

// 2. Valid JSON that is not a valid JSON-RPC message.
const notRpc = [
  {},
  [],
  [1],
  { jsonrpc: '2.0' },
  { jsonrpc: '1.0', id: 1, method: 'ping' },
  { jsonrpc: 2.0, id: 1, method: 'ping' },
  { id: 1, method: 'ping' },
  { jsonrpc: '2.0', id: 1, method: 42 },
  { jsonrpc: '2.0', id: 1, method: null },
  { jsonrpc: '2.0', id: 1, method: ['ping'] },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: 'x' },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: 7 },
  { jsonrpc: '2.0', id: 1, method: 'ping', params: null },
  { jsonrpc: '2.0', id: 1, method: 'ping', result: {} },
  { jsonrpc: '2.0', id: 1, result: {}, error: { code: 1, message: 'x' } },
  { jsonrpc: '2.0', id: 1, error: 'bad' },
  { jsonrpc: '2.0', id: 1, error: { code: 'x', message: 'm' } },
  { jsonrpc: '2.0', id: {}, error: { code: 1, message: 'm' } },
  { jsonrpc: '2.0', result: {} },
];
notRpc.forEach((b, i) => add(`not JSON-RPC #${i + 1}: ${JSON.stringify(b).slice(0, 50)}`, P(b), INVALID));

// 3. Ids of the wrong type or null on a request.
for (const id of [null, true, false, 1.5, -0.5, 1e300, {}, { a: 1 }, [], [1], 1.0e-5]) {
  add(`request id ${JSON.stringify(id)}`, P({ jsonrpc: '2.0', id, method: 'ping' }), INVALID);
}
// ...and unusual but valid ids: answered, id echoed.
for (const id of [0, -1, 9007199254740991, '', ' ', 'é', 'x'.repeat(1000), '\u0001']) {
  add(`valid odd id ${JSON.stringify(id).slice(0, 20)}`, P({ jsonrpc: '2.0', id, method: 'ping' }), { ...OK, id });
}

// 4. Invalid UTF-8 (inside strings, keys, between tokens) and NUL bytes.
const utf8Bad = [
  [0xff],
  [0xfe],
  [0xc0, 0xaf], // overlong '/'
  [0xe0, 0x80, 0xaf], // overlong
  [0xf0, 0x80, 0x80, 0xaf], // overlong
  [0xed, 0xa0, 0x80], // UTF-16 surrogate
  [0xed, 0xbf, 0xbf],
  [0xf4, 0x90, 0x80, 0x80], // above U+10FFFF
  [0xf5, 0x80, 0x80, 0x80],
  [0xc3], // truncated
  [0xe2, 0x82], // truncated
  [0x80], // lone continuation
  [0xc3, 0x28],
];
const inString = (bytes) =>
  Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":"'), Buffer.from(bytes), Buffer.from('","method":"ping"}')]);
const inKey = (bytes) =>
  Buffer.concat([Buffer.from('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"'), Buffer.from(bytes), Buffer.from('":1}}')]);
utf8Bad.forEach((b, i) => add(`invalid UTF-8 in a string #${i + 1}`, P(inString(b)), PARSE));
utf8Bad.slice(0, 5).forEach((b, i) => add(`invalid UTF-8 in a key #${i + 1}`, P(inKey(b)), PARSE));
add('invalid UTF-8 between tokens', P(Buffer.from([0x7b, 0xff, 0x7d])), PARSE);
add('raw NUL inside a string', P(inString([0x00])), PARSE);
add('raw NUL after the value', P(Buffer.concat([Buffer.from(JSON.stringify(ping())), Buffer.from([0])])), PARSE);
add('raw NUL before the value', P(Buffer.concat([Buffer.from([0]), Buffer.from(JSON.stringify(ping()))])), PARSE);
add('escaped \\u0000 in a string', P('{"jsonrpc":"2.0","id":"a\\u0000b","method":"ping"}'), PARSE);
add('escaped \\u0000 in a key', P('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"\\u0000":1}}'), PARSE);
add('lone surrogate escape \\ud800', P('{"jsonrpc":"2.0","id":"\\ud800","method":"ping"}'), PARSE);
add('only NUL bytes', P(Buffer.alloc(64)), PARSE);
add('UTF-16 body', P(Buffer.from(JSON.stringify(ping()), 'utf16le')), PARSE);

// 5. Deep nesting (depth limit 64 by default) and near-limit shapes.
const nest = (n, o = '[', c = ']') => o.repeat(n) + c.repeat(n);
const objNest = (n) => '{"a":'.repeat(n) + '1' + '}'.repeat(n);
add('10,000-deep arrays', P(nest(10000)), { ...INVALID, msg: /deeper/ });
add('10,000-deep objects', P(objNest(10000)), { ...INVALID, msg: /deeper/ });
add('10,000 unclosed [', P('['.repeat(10000)), { ...INVALID, msg: /deeper/ });
add('65-deep params', P(`{"jsonrpc":"2.0","id":1,"method":"ping","params":${nest(64)}}`), { ...INVALID, msg: /deeper/ });
add('64-deep params: within the limit', P(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"a":${nest(62)}}}`), OK);
add('brackets inside strings do not count', P(`{"jsonrpc":"2.0","id":"${'['.repeat(5000)}","method":"ping"}`), OK);
add('escaped quote then brackets', P(`{"jsonrpc":"2.0","id":"\\"${'{'.repeat(100)}","method":"ping"}`), OK);
add('100,000 closing brackets', P(']'.repeat(100000)), PARSE);

// 6. Unknown methods and bad params: answered in JSON-RPC with 200.
for (const m of [
  'foo',
  '',
  ' ping',
  'PING',
  'tools/unknown',
  'rpc.discover',
  'initialize/',
  'notifications/initialized',
  'x'.repeat(10000),
  'résumé',
  '../../etc/passwd',
]) {
  add(`unknown method ${JSON.stringify(m).slice(0, 30)}`, P({ jsonrpc: '2.0', id: 5, method: m }), NOTFOUND);
}
add('method with an escaped NUL', P('{"jsonrpc":"2.0","id":5,"method":"tools/list\\u0000"}'), PARSE);
add('tools/call without params', P({ jsonrpc: '2.0', id: 1, method: 'tools/call' }), PARAMS);
add('tools/call with array params', P({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: ['echo'] }), PARAMS);
add('tools/call name not a string', P({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 7 } }), PARAMS);
add('tools/call unknown tool', P({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'nope' } }), PARAMS);
add('tools/call 64 KB name', P({ jsonrpc: '2.0', id: 1, method: 'tools/call', params: { name: 'n'.repeat(65536) } }), PARAMS);
add('prompts/get unknown', P({ jsonrpc: '2.0', id: 1, method: 'prompts/get', params: { name: 'nope' } }), PARAMS);
add('resources/read without uri', P({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: {} }), PARAMS);
add('resources/read uri not a string', P({ jsonrpc: '2.0', id: 1, method: 'resources/read', params: { uri: [] } }), PARAMS);
add('logging/setLevel bad level', P({ jsonrpc: '2.0', id: 1, method: 'logging/setLevel', params: { level: 'loud' } }), PARAMS);
add('tools/list bad cursor', P({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'mg1.x' } }), PARAMS);
add('tools/list cursor past the end', P({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 'mg1.99999999' } }), PARAMS);
add('tools/list cursor not a string', P({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: { cursor: 5 } }), PARAMS);
add('completion/complete bad ref', P({ jsonrpc: '2.0', id: 1, method: 'completion/complete', params: { ref: { type: 'x' } } }), PARAMS);
add('unknown notification: accepted', P({ jsonrpc: '2.0', method: 'notifications/whatever' }), { status: 202, code: 'none' });
add('cancel for an unknown id: accepted', P({ jsonrpc: '2.0', method: 'notifications/cancelled', params: { requestId: 'zz' } }), { status: 202, code: 'none' });
add('response to no server request', P({ jsonrpc: '2.0', id: 'mg-999', result: {} }), { ...INVALID, msg: /does not match/ });
add('error response to no server request', P({ jsonrpc: '2.0', id: 5, error: { code: 1, message: 'x' } }), { ...INVALID, msg: /does not match/ });

// 7. Requests before initialize (no session), and initialize misuse.
const noSess = (b, h = {}) => buildPost(b, h);
for (const m of ['tools/list', 'tools/call', 'ping', 'resources/list', 'prompts/list']) {
  add(`${m} before initialize`, noSess({ jsonrpc: '2.0', id: 1, method: m }), { ...INVALID, msg: /Mcp-Session-Id header is required/ });
}
add('notification before initialize', noSess({ jsonrpc: '2.0', method: 'notifications/initialized' }), INVALID);
add('GET before initialize', buildPost(undefined, { Accept: 'text/event-stream', 'Content-Type': null }, { method: 'GET' }), INVALID);
add('DELETE before initialize', buildPost(undefined, { 'Content-Type': null }, { method: 'DELETE' }), INVALID);
add('initialize without params', noSess({ jsonrpc: '2.0', id: 1, method: 'initialize' }), { status: 400, code: -32602 });
add('initialize protocolVersion a number', noSess({ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: 2025 } }), { status: 400, code: -32602 });
add('initialize as a notification', noSess({ jsonrpc: '2.0', method: 'initialize', params: { protocolVersion: '2025-06-18' } }), INVALID);
add('initialize in a batch', noSess([{ jsonrpc: '2.0', id: 1, method: 'initialize', params: { protocolVersion: '2025-03-26' } }]), INVALID);
add('empty batch', P([]), INVALID);
add('batch on a 2025-06-18 session', P([ping(1), ping(2)]), { ...INVALID, msg: /batches/ });
add('batch with one bad element', P([ping(1), { jsonrpc: '2.0', id: null, method: 'ping' }], { 'Mcp-Session-Id': '{SID03}', 'MCP-Protocol-Version': null }), INVALID);
add('batch over maxInflightPerSession', P(Array.from({ length: 17 }, (_, i) => ping(i + 1)), { 'Mcp-Session-Id': '{SID03}', 'MCP-Protocol-Version': null }), { status: 429, code: -32603 });
add('batch of 100 notifications', P(Array.from({ length: 100 }, () => ({ jsonrpc: '2.0', method: 'notifications/x' })), { 'Mcp-Session-Id': '{SID03}', 'MCP-Protocol-Version': null }), { status: 202, code: 'none' });
add('batch of 101 notifications (maxBatchItems)', P(Array.from({ length: 101 }, () => ({ jsonrpc: '2.0', method: 'notifications/x' })), { 'Mcp-Session-Id': '{SID03}', 'MCP-Protocol-Version': null }), { ...INVALID, msg: /maxBatchItems/ });

// 8. Content-Type and Accept.
const CT = (v) => P(ping(), { 'Content-Type': v });
// "application/jsonx" and friends passed a 16-byte prefix compare before the media type was parsed.
for (const v of [null, '', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application', 'json', 'application/jso', 'text/json', 'application/jsonx', 'application/json-seq', 'application/json-patch+json', 'application/json5']) {
  add(`Content-Type ${JSON.stringify(v)}`, CT(v), { status: 415, code: -32600 });
}
for (const v of ['application/json; charset=utf-8', 'APPLICATION/JSON', 'application/json;charset=UTF-8', 'application/json ; charset=utf-8']) {
  add(`Content-Type ${JSON.stringify(v)}: accepted`, CT(v), OK);
}
const AC = (v) => P(ping(), { Accept: v });
for (const v of [null, '', 'application/json', 'text/event-stream', 'text/html', 'application/*', 'text/*', 'application/json text/event-stream', 'x'.repeat(8000)]) {
  add(`Accept ${JSON.stringify(v).slice(0, 40)}`, AC(v), { status: 406, code: -32600 });
}
for (const v of ['*/*', 'application/*, text/*', 'text/event-stream, application/json', 'application/json;q=0.9, text/event-stream;q=0.1', ' application/json ,  text/event-stream ']) {
  add(`Accept ${JSON.stringify(v)}: accepted`, AC(v), OK);
}
add('GET with Accept application/json only', buildPost(undefined, { ...S, 'Content-Type': null, Accept: 'application/json' }, { method: 'GET' }), { status: 406, code: -32600 });

// 9. Huge and duplicated headers (h2o refuses over 100 headers or ~400 KB of head: 400, closed).
const many = (n) => Object.fromEntries(Array.from({ length: n }, (_, i) => [`X-Pad-${i}`, 'v']));
add('90 extra headers: accepted', P(ping(), many(90)), OK);
add('150 extra headers', P(ping(), many(150)), { status: [400, 0], code: 'none' });
add('one 64 KB header: accepted', P(ping(), { 'X-Big': 'a'.repeat(65536) }), OK);
add('one 600 KB header', P(ping(), { 'X-Big': 'a'.repeat(600000) }), { status: [400, 413, 0], code: 'none' });
add('64 KB Accept header', P(ping(), { Accept: 'application/json, text/event-stream, ' + 'x/y, '.repeat(13000) }), OK);
add('duplicated Mcp-Session-Id', buildPost(ping(), [['Mcp-Session-Id', SID], ['Mcp-Session-Id', SID]]), { ...INVALID, msg: /invalid Mcp-Session-Id/ });
add('duplicated MCP-Protocol-Version', buildPost(ping(), [['Mcp-Session-Id', SID], ['MCP-Protocol-Version', '2025-06-18'], ['MCP-Protocol-Version', '2025-06-18']]), { ...INVALID, msg: /MCP-Protocol-Version/ });
add('duplicated Origin', buildPost(ping(), [['Mcp-Session-Id', SID], ['Origin', 'http://localhost'], ['Origin', 'http://localhost']]), { status: 403, code: -32600 });
add('two Content-Length values', Buffer.from(`POST /mcp HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: ${SID}\r\nContent-Length: 5\r\nContent-Length: 40\r\n\r\n{"jsonrpc":"2.0","id":1,"method":"ping"}`, 'latin1'), { status: [400, 0], code: 'none' });
add('Content-Length not a number', P(ping(), { 'Content-Length': 'abc' }), { status: [400, 0], code: 'none' });
add('negative Content-Length', P(ping(), { 'Content-Length': '-1' }), { status: [400, 0], code: 'none' });
add('Content-Length shorter than the body', P(ping(), { 'Content-Length': '10' }), PARSE);
add('Transfer-Encoding with a bad chunk size', Buffer.concat([P(undefined, { 'Transfer-Encoding': 'chunked' }), Buffer.from('zz\r\n{}\r\n0\r\n\r\n')]), { status: [400, 0], code: 'none' });
add('chunked body', Buffer.concat([P(undefined, { 'Transfer-Encoding': 'chunked' }), Buffer.from('28\r\n{"jsonrpc":"2.0","id":1,"method":"ping"}\r\n0\r\n\r\n')]), OK);
add('chunked body split in 1-byte chunks', Buffer.concat([P(undefined, { 'Transfer-Encoding': 'chunked' }), Buffer.from([...JSON.stringify(ping())].map((c) => `1\r\n${c}\r\n`).join('') + '0\r\n\r\n')]), OK);
add('header with a NUL byte', P(ping(), { 'X-A': 'a\u0000b' }), { status: [400, 0], code: 'none' });
add('header line without a colon', Buffer.from(`POST /mcp HTTP/1.1\r\nHost: localhost\r\nBogus\r\nContent-Length: 0\r\n\r\n`, 'latin1'), { status: [400, 0], code: 'none' });
// h2o folds the continuation into X-A; the request then lacks a Content-Type.
add('obs-fold continuation line', Buffer.from(`POST /mcp HTTP/1.1\r\nHost: localhost\r\nX-A: a\r\n  b\r\nContent-Length: 0\r\n\r\n`, 'latin1'), { status: [400, 415, 0], code: 'none' });

// 10. Session ids: missing, malformed, oversized, unknown.
const SES = (v) => buildPost(ping(), { 'Mcp-Session-Id': v });
add('empty Mcp-Session-Id', SES(''), { ...INVALID, msg: /Mcp-Session-Id/ });
for (const v of ['x'.repeat(64), 'x'.repeat(100), 'x'.repeat(10000), 'x'.repeat(60000)]) {
  add(`Mcp-Session-Id of ${v.length} bytes`, SES(v), { ...INVALID, msg: /invalid Mcp-Session-Id/ });
}
for (const v of ['nope', 'x'.repeat(63), SID.slice(0, 3) + 'zz', '../../etc/passwd', '%00', 'é', ' {SID}x', '{SID}x', 'x{SID}', '0']) {
  add(`unknown Mcp-Session-Id ${JSON.stringify(v).slice(0, 20)}`, SES(v), { status: 404, code: -32001 });
}
add('Mcp-Session-Id with a tab inside', SES('ab\tcd'), { status: [404, 400], code: 'none' });
add('MCP-Protocol-Version unknown', P(ping(), { 'MCP-Protocol-Version': '1999-01-01' }), { ...INVALID, msg: /MCP-Protocol-Version/ });
add('MCP-Protocol-Version empty', P(ping(), { 'MCP-Protocol-Version': '' }), INVALID);
add('MCP-Protocol-Version 10 KB', P(ping(), { 'MCP-Protocol-Version': '2025-06-18'.repeat(1000) }), INVALID);
add('MCP-Protocol-Version other supported: tolerated', P(ping(), { 'MCP-Protocol-Version': '2025-03-26' }), OK);

// 11. Last-Event-ID on GET.
const GET = (lei, more = {}) =>
  buildPost(undefined, { ...S, 'Content-Type': null, Accept: 'text/event-stream', ...(lei === null ? {} : { 'Last-Event-ID': lei }), ...more }, { method: 'GET' });
// Stream 1 of the session exists: every one of these would resume it if parsed loosely (sscanf
// took "1--1", "1-+1" and wrapped "4294967297-1" onto stream 1 before the strict parser).
for (const v of ['', 'abc', '1', '1-', '-1', '-1-1', '1--1', '1-+1', '+1-1', '1-1x', '1.5-1', '99999-1', '4294967296-1', '4294967297-1', '18446744073709551617-1', '1-99999999999999999999', 'x'.repeat(47), 'x'.repeat(5000), '1- 1', '0x1-1', '1-1-1']) {
  add(`Last-Event-ID ${JSON.stringify(v).slice(0, 24)}`, GET(v), { ...INVALID, msg: /Last-Event-ID/ });
}
add('Last-Event-ID duplicated', buildPost(undefined, [['Mcp-Session-Id', SID], ['Accept', 'text/event-stream'], ['Last-Event-ID', '1-1'], ['Last-Event-ID', '1-1']], { method: 'GET' }), { ...INVALID, msg: /Last-Event-ID/ });
add('Last-Event-ID naming no stream of this session', (ctx) => GET(`${ctx.otherStream}-1`), { ...INVALID, msg: /Last-Event-ID/ });
// A finished stream with nothing after the named event: 204, no body (a resumption that ends there;
// an empty 200 stream made the TypeScript SDK fall back to a plain GET; see docs/eras.md).
add('Last-Event-ID seq beyond the end of a finished stream: 204, nothing replayed', (ctx) => GET(`${ctx.ownStream}-9999999999999999999`), { status: 204, code: 'none' });

// 12. Host / Origin (DNS rebinding).
for (const h of ['evil.example', 'evil.example:8080', 'localhost.evil.example', '127.0.0.1.nip.io', '[::1]evil', 'localhost:evil', '0.0.0.0']) {
  add(`Host ${JSON.stringify(h)}`, P(ping(), { Host: h }), { status: 403, code: -32600 });
}
// HTTP/1.1 needs one non-empty Host (RFC 9112 §3.2; smuggling.test.mjs has the rest).
add('Host ""', P(ping(), { Host: '' }), { ...INVALID, msg: /Host/ });
for (const o of ['null', 'http://evil.example', 'https://localhost.evil.example', 'http://localhost@evil.example', 'file://', 'http://localhost/path', 'http://[::1]x', 'chrome-extension://abc']) {
  add(`Origin ${JSON.stringify(o)}`, P(ping(), { Origin: o }), { status: 403, code: -32600 });
}
add('HTTP/1.0 without Host', Buffer.from(`POST /mcp HTTP/1.0\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nMcp-Session-Id: ${SID}\r\nContent-Length: 40\r\n\r\n${JSON.stringify(ping())}`, 'latin1'), { status: 403, code: -32600 });

// 13. Methods, paths and framing that are not HTTP/1.1 as the gateway speaks it.
for (const m of ['PUT', 'PATCH', 'OPTIONS', 'HEAD', 'TRACE', 'FOO']) {
  add(`${m} /mcp`, buildPost(undefined, { ...S, 'Content-Length': '0' }, { method: m }), m === 'HEAD' ? { status: 405, code: 'none' } : { status: 405, code: -32600 });
}
for (const p of ['/mcp/', '/MCP', '/mcp/../mcp2', '/%6dcp', '/', '/mcp%00', '/' + 'a'.repeat(8000)]) {
  add(`path ${JSON.stringify(p).slice(0, 20)}`, P(ping(), {}, { path: p }), { status: [404, 400], code: 'none' });
}
add('unknown query parameter on /mcp', P(ping(), {}, { path: '/mcp?x=1' }), { ...INVALID, msg: /'x'/ });
// Tolerated by h2o (RFC 9112 allows bare LF; its request head limit is ~400 KB).
add('bare LF line ends: tolerated', Buffer.from(P(ping()).toString('latin1').replace(/\r\n/g, '\n'), 'latin1'), OK);
add('request line of 100 KB: routed, 404', Buffer.from(`GET /${'a'.repeat(100000)} HTTP/1.1\r\nHost: localhost\r\n\r\n`, 'latin1'), { status: 404, code: 'none' });
for (const [name, bytes] of [
  ['not HTTP at all', 'hello there\r\n\r\n'],
  ['HTTP/0.9 request line', 'GET /mcp\r\n\r\n'],
  ['HTTP/9.9', 'GET /mcp HTTP/9.9\r\nHost: localhost\r\n\r\n'],
  ['binary junk', Buffer.from(Array.from({ length: 512 }, (_, i) => (i * 37) & 0xff))],
  ['TLS ClientHello on a plain port', Buffer.from('160301002e010000', 'hex')],
  ['h2 preface then junk', Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), Buffer.alloc(64, 0xff)])],
]) {
  add(name, typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes, { status: [400, 0], code: 'none' });
}

// 14. Bodies over maxBodyBytes (gateway: 413 JSON up to 2x; beyond, h2o refuses at once).
add('body of maxBodyBytes + 1', P('{"jsonrpc":"2.0","id":1,"method":"ping","params":{"p":"' + 'x'.repeat(MAX_BODY) + '"}}'), { status: 413, code: -32600 });
add('Content-Length 100 MB, body not sent', P(undefined, { 'Content-Length': String(100 * 1024 * 1024) }), { status: [413, 0], code: 'none' });
add('Content-Length 2^63', P(undefined, { 'Content-Length': '9223372036854775808' }), { status: [400, 413, 0], code: 'none' });

// ---- running the table -----------------------------------------------------------------------

function subst(buf, ctx) {
  let s = buf.toString('latin1');
  s = s.replaceAll('{SID03}', ctx.sid03).replaceAll('{SID}', ctx.sid);
  return Buffer.from(s, 'latin1');
}

function check(name, r, exp) {
  const want = [].concat(exp.status);
  if (!want.includes(r.status)) return `${name}: HTTP ${r.status} (want ${want.join('|')}) ${String(r.body ?? '').slice(0, 160)}`;
  if (r.status === 0 || exp.code === 'none' && exp.id === undefined) return null;
  const j = r.json;
  if (exp.code === 'none') {
    if (exp.id !== undefined && (!j || JSON.stringify(j.id) !== JSON.stringify(exp.id))) return `${name}: id not echoed: ${r.body.slice(0, 120)}`;
    return null;
  }
  if (!j || typeof j !== 'object' || !j.error) return `${name}: no JSON-RPC error in the body: ${String(r.body).slice(0, 160)}`;
  if (j.jsonrpc !== '2.0') return `${name}: not a JSON-RPC 2.0 message: ${r.body.slice(0, 120)}`;
  if (j.error.code !== exp.code) return `${name}: error code ${j.error.code} (want ${exp.code}): ${j.error.message}`;
  if (typeof j.error.message !== 'string' || j.error.message.length < 8) return `${name}: unclear message ${JSON.stringify(j.error.message)}`;
  if (exp.msg && !exp.msg.test(j.error.message)) return `${name}: message ${JSON.stringify(j.error.message)} does not match ${exp.msg}`;
  return null;
}

async function upstreamState(gw) {
  const j = (await gw.readyz()).json;
  const u = j.upstreams.find((x) => x.name === 'test');
  return { restarts: u.restarts, state: u.state, pids: gw.children().map((c) => c.pid).sort() };
}

async function healthyAfter(t, gw, before, sess) {
  // The gateway answers normally: a tools/call through the untouched upstream.
  const r = await call(gw.url, sess, 'tools/call', { name: 'echo', arguments: { message: 'still fine' } });
  assert.equal(r.response.result?.content?.[0]?.text, 'still fine', JSON.stringify(r.response));
  const after = await upstreamState(gw);
  assert.equal(after.state, 'ready');
  assert.equal(after.restarts, before.up.restarts, 'the upstream was restarted');
  assert.deepEqual(after.pids, before.up.pids, 'the upstream child changed');
  const rss = rssKiB(gw.pid);
  t.log(`RSS ${before.rss} KiB -> ${rss} KiB (+${rss - before.rss})`);
  return rss - before.rss;
}

async function baseline(gw) {
  const s = await initSession(gw.url, { protocolVersion: '2025-06-18' });
  await call(gw.url, s, 'tools/call', { name: 'echo', arguments: { message: 'warm' } });
  return { sess: s, up: await upstreamState(gw), rss: rssKiB(gw.pid) };
}

test(`table: ${cases.length} bad requests, each with its status and JSON-RPC error`, async (t) => {
  assert.ok(cases.length >= 200, `only ${cases.length} cases`);
  const gw = await t.gateway({ config: CONFIG });
  const before = await baseline(gw);
  const sid = before.sess.sessionId;
  const s03 = await initSession(gw.url, { protocolVersion: '2025-03-26' });
  // Two finished SSE streams to resume: one of this session, one of another session.
  const own = await call(gw.url, before.sess, 'tools/call', { name: 'sleep', arguments: { ms: 20, progressEveryMs: 5, _meta: {} }, _meta: { progressToken: 'p' } });
  const other = await initSession(gw.url);
  await call(gw.url, other, 'tools/call', { name: 'sleep', arguments: { ms: 20, progressEveryMs: 5 }, _meta: { progressToken: 'q' } });
  const ctx = { sid, sid03: s03.sessionId, ownStream: 1, otherStream: 999 };
  t.log('own stream', own.http.isSSE);

  const failures = [];
  const t0 = Date.now();
  for (const [name, req, exp] of cases) {
    const bytes = subst(typeof req === 'function' ? req(ctx) : req, ctx);
    const r = await rawRequest(gw.port, bytes, { timeout: scaled(5000) });
    const problem = check(name, r, exp);
    if (problem) failures.push(problem);
    if (gw.exited) {
      failures.push(`${name}: the gateway exited (${gw.exitStatus()})`);
      break;
    }
  }
  t.log(`${cases.length} cases in ${Date.now() - t0} ms`);
  assert.deepEqual(failures, [], `${failures.length} of ${cases.length} cases failed:\n  ${failures.join('\n  ')}`);
  const grown = await healthyAfter(t, gw, before, before.sess);
  assert.ok(grown < rssBound(24 * 1024), `RSS grew by ${grown} KiB over the table`);
}, { timeout: 120000 });

// ---- what a table cannot hold -------------------------------------------------------------------

test('100 MB bodies (declared, streamed, chunked): refused without buffering them', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const before = await baseline(gw);
  const big = Buffer.alloc(100 * 1024 * 1024, 0x20);
  const streamed = await rawRequest(gw.port, Buffer.concat([P(undefined, { 'Mcp-Session-Id': before.sess.sessionId, 'Content-Length': String(big.length) }), big]), { timeout: scaled(20000) });
  assert.ok([413, 0].includes(streamed.status), `streamed 100 MB: HTTP ${streamed.status}`);
  const chunked = await rawRequest(gw.port, null, {
    timeout: scaled(20000),
    chunks: [
      [P(undefined, { 'Mcp-Session-Id': before.sess.sessionId, 'Transfer-Encoding': 'chunked' }), 0],
      ...Array.from({ length: 100 }, () => [Buffer.concat([Buffer.from('100000\r\n'), big.subarray(0, 0x100000), Buffer.from('\r\n')]), 0]),
      ['0\r\n\r\n', 0],
    ],
  });
  assert.ok([413, 0].includes(chunked.status), `chunked 100 MB: HTTP ${chunked.status}`);
  const mid = await rawRequest(gw.port, Buffer.concat([P(undefined, { 'Mcp-Session-Id': before.sess.sessionId, 'Content-Length': String(6 * 1024 * 1024) }), big.subarray(0, 6 * 1024 * 1024)]), { timeout: scaled(20000) });
  assert.equal(mid.status, 413, 'a 6 MB body (between maxBodyBytes and twice it) gets the JSON 413');
  assert.equal(mid.json?.error?.code, -32600);
  const grown = await healthyAfter(t, gw, before, before.sess);
  assert.ok(grown < rssBound(32 * 1024), `RSS grew by ${grown} KiB after 200 MB of refused bodies`);
}, { timeout: 60000 });

test('slow drips (slowloris): closed after httpIdleTimeoutMs while others are served at once', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const before = await baseline(gw);
  const full = P(ping(), { 'Mcp-Session-Id': before.sess.sessionId }).toString('latin1');
  const head = full.slice(0, full.indexOf('\r\n\r\n') + 4);
  const N = 100;
  const t0 = Date.now();
  const drips = [];
  for (let i = 0; i < N; i++) {
    const bytes = i % 2 ? head + full.slice(head.length) : full; // half drip the head, half the body
    const start = i % 2 ? head.length : 0;
    const chunks = [[bytes.slice(0, start), 0], ...[...bytes.slice(start)].map((c) => [c, 200])];
    drips.push(rawRequest(gw.port, null, { chunks, timeout: scaled(IDLE_MS * 4) }));
  }
  // Meanwhile normal requests are answered promptly.
  const lat = [];
  for (let i = 0; i < 10; i++) {
    const t1 = Date.now();
    await call(gw.url, before.sess, 'ping', {});
    lat.push(Date.now() - t1);
    await sleep(50);
  }
  t.log('latencies during the drip', lat);
  assert.ok(Math.max(...lat) < scaled(500), `a normal request took ${Math.max(...lat)} ms during the slowloris`);
  const rs = await Promise.all(drips);
  const closedAt = rs.map((r) => r.ms);
  t.log('slow connections closed after (ms)', Math.min(...closedAt), Math.max(...closedAt));
  for (const r of rs) {
    assert.ok(r.closed && !r.timedOut, 'a slow connection was not closed by the gateway');
    assert.ok(r.ms < IDLE_MS + scaled(1500), `a slow connection lived ${r.ms} ms`);
  }
  assert.ok(Date.now() - t0 < IDLE_MS + scaled(3000));
  const grown = await healthyAfter(t, gw, before, before.sess);
  assert.ok(grown < rssBound(16 * 1024), `RSS grew by ${grown} KiB`);
}, { timeout: 30000 });

test('2000 idle connections: served meanwhile, all closed after httpIdleTimeoutMs', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const before = await baseline(gw);
  const t0 = Date.now();
  const socks = await idleConnections(gw.port, 2000);
  t.log(`2000 connections open in ${Date.now() - t0} ms`);
  const r = await call(gw.url, before.sess, 'tools/call', { name: 'echo', arguments: { message: 'busy' } });
  assert.equal(r.response.result.content[0].text, 'busy');
  await waitFor(() => socks.every((s) => s.closedAt !== null), { timeout: IDLE_MS + 5000, what: 'every idle connection closed by the gateway' });
  const lived = Math.max(...socks.map((s) => s.closedAt - t0));
  t.log(`last idle connection closed after ${lived} ms`);
  const grown = await healthyAfter(t, gw, before, before.sess);
  assert.ok(grown < rssBound(16 * 1024), `RSS grew by ${grown} KiB`);
}, { timeout: 30000 });

test('abrupt disconnects mid-request and mid-stream: the call goes on, resumable, nothing leaks', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const before = await baseline(gw);
  const sid = before.sess.sessionId;
  const callMsg = (id, ms) => ({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'sleep', arguments: { ms, progressEveryMs: 50 }, _meta: { progressToken: `t${id}` } } });
  for (let round = 0; round < 20; round++) {
    const full = P(callMsg(100 + round, 200), { 'Mcp-Session-Id': sid });
    // mid-headers, mid-body, right after the body
    for (const cut of [20, full.length - 10, full.length]) {
      const r = await rawRequest(gw.port, null, { chunks: [[full.subarray(0, cut), 0]], timeout: 30 });
      assert.ok(r.timedOut || r.closed);
    }
  }
  // Mid-stream: take the first SSE event, drop the connection, resume with Last-Event-ID.
  const r = await request(gw.url, { headers: sessionHeaders(before.sess), body: callMsg(7, 400) });
  assert.ok(r.isSSE, 'a call with progress answers as SSE');
  let first = await r.next(5000);
  while (first && !first.hasData) first = await r.next(5000); // the priming event, if any
  assert.ok(first?.id, 'an event with an id');
  r.close();
  await sleep(450);
  const resumed = await request(gw.url, { method: 'GET', headers: sessionHeaders(before.sess, { Accept: 'text/event-stream', 'Last-Event-ID': first.id }) });
  assert.equal(resumed.status, 200);
  const evs = await resumed.events({ timeout: 5000 });
  const final = evs.map(eventJson).find((m) => m && m.id === 7);
  assert.ok(final?.result, `the rest of the stream, response included: ${JSON.stringify(evs)}`);
  // Mid-response of a JSON answer: the client goes before the answer; the gateway does not care.
  for (let i = 0; i < 20; i++) {
    const x = await rawRequest(gw.port, P({ jsonrpc: '2.0', id: 900 + i, method: 'tools/call', params: { name: 'sleep', arguments: { ms: 100 } } }, { 'Mcp-Session-Id': sid }), { timeout: 20 });
    assert.ok(x.timedOut);
  }
  await sleep(300);
  const grown = await healthyAfter(t, gw, before, before.sess);
  assert.ok(grown < rssBound(16 * 1024), `RSS grew by ${grown} KiB`);
}, { timeout: 60000 });

test('duplicate in-flight ids: each request gets its own answer', async (t) => {
  const gw = await t.gateway({ config: CONFIG });
  const before = await baseline(gw);
  const mk = (msg) => ({ jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: 'echo', arguments: { message: msg } } });
  const slow = { jsonrpc: '2.0', id: 42, method: 'tools/call', params: { name: 'sleep', arguments: { ms: 200 } } };
  const [a, b, c] = await Promise.all([
    request(gw.url, { headers: sessionHeaders(before.sess), body: slow }),
    request(gw.url, { headers: sessionHeaders(before.sess), body: mk('second') }),
    request(gw.url, { headers: sessionHeaders(before.sess), body: mk('third') }),
  ]);
  const [ma, mb, mc] = await Promise.all([a.messages(), b.messages(), c.messages()]);
  assert.equal(ma.find((m) => m.id === 42)?.result?.content?.[0]?.text, 'slept 200');
  assert.equal(mb.find((m) => m.id === 42)?.result?.content?.[0]?.text, 'second');
  assert.equal(mc.find((m) => m.id === 42)?.result?.content?.[0]?.text, 'third');
  // In one batch (2025-03-26): both answered, in a batch response.
  const s03 = await initSession(gw.url, { protocolVersion: '2025-03-26' });
  const r = await request(gw.url, { headers: sessionHeaders(s03), body: [mk('x'), mk('y')] });
  const msgs = await r.messages();
  assert.deepEqual(msgs.map((m) => m.result?.content?.[0]?.text).sort(), ['x', 'y']);
  // The SDK client still works on its own session.
  const cl = await connect(gw.url);
  t.defer(() => cl.close());
  assert.equal(textOf(await cl.client.callTool({ name: 'echo', arguments: { message: 'sdk' } })), 'sdk');
  await healthyAfter(t, gw, before, before.sess);
});

// A tools/call's params reach a stdio upstream as the same line whether the client's body was
// canonical (copied as bytes, docs/adr/0019-params-as-lent-bytes.md) or not (whitespace, escapes,
// reals: dumped from the tree), and a batch (never lent) writes that line too.
import assert from 'node:assert/strict';
import { readRecord, recordFile, recordedTestserver } from './lib/auth.mjs';
import { test, waitFor } from './lib/harness.mjs';
import { eventJson, initSession, request, sessionHeaders } from './lib/http.mjs';

// The arguments every body below carries, in one spelling or another.
const ARGS_COMPACT = '{"message":"é/x","n":-3,"big":9007199254740993,"list":[1,true,null,{},[]],"o":{"a":"b"}}';
const LINE_PARAMS = `{"name":"echo","arguments":${ARGS_COMPACT}}`;

const bodies = (id) => [
  // canonical: the text is copied into the child's line
  `{"jsonrpc":"2.0","id":${id},"method":"tools/call","params":${LINE_PARAMS}}`,
  // params first, id last: still canonical params
  `{"params":${LINE_PARAMS},"method":"tools/call","jsonrpc":"2.0","id":${id + 1}}`,
  // whitespace and escapes the dumper does not write (\u00e9, \/, \u006f): dumped from the tree
  `{ "jsonrpc" : "2.0", "id" : ${id + 2}, "method" : "tools/call", "params" : { "name" : "echo", ` +
    `"arguments" : { "message" : "\\u00e9\\/x", "n" : -3, "big" : 9007199254740993, "list" : [ 1 , true , null , { } , [ ] ], "o" : { "a" : "b" } } } }`,
  `{"jsonrpc":"2.0","id":${id + 3},"method":"tools/call","params":{"name":"ech\\u006f","arguments":${ARGS_COMPACT}}}`,
  // whitespace inside params only
  `{"jsonrpc":"2.0","id":${id + 4},"method":"tools/call","params":{ "name":"echo",\n"arguments":${ARGS_COMPACT}\t}}`,
];

async function post(gw, sess, body, ids) {
  const r = await request(gw.url, { headers: sessionHeaders(sess), body });
  assert.equal(r.status, 200, `HTTP ${r.status} for ${body}`);
  const want = new Set(ids);
  const answered = (j) => (Array.isArray(j) ? j.some((m) => want.has(m.id)) : want.has(j?.id));
  await r.messages({ until: (ev) => answered(eventJson(ev)) });
}

test('tools/call params: the same line to the child for canonical, spaced, escaped and batched bodies', async (t) => {
  const rec = recordFile(t);
  const gw = await t.gateway({ config: { mcpServers: { test: recordedTestserver(rec) } } });
  const sess = await initSession(gw.url, { protocolVersion: '2025-03-26' }); // batches allowed
  const first = 1000;
  const texts = bodies(first);
  for (let i = 0; i < texts.length; i++) await post(gw, sess, texts[i], [first + i]);
  // a batch of one request: never lent, always dumped
  await post(gw, sess, `[{"jsonrpc":"2.0","id":${first + 10},"method":"tools/call","params":${LINE_PARAMS}}]`, [first + 10]);
  // a real: dumped as jansson writes it (1.50 -> 1.5), not as sent
  await post(gw, sess, `{"jsonrpc":"2.0","id":${first + 11},"method":"tools/call","params":{"name":"echo","arguments":{"r":1.50}}}`, [first + 11]);

  const calls = () =>
    readRecord(rec)
      .split('\n')
      .filter((l) => l.includes('"method":"tools/call"'));
  await waitFor(() => calls().length >= texts.length + 2, { what: 'every call written to the upstream' });
  const lines = calls();
  // The gateway's own id is the last member; everything before it is the same for every body.
  const strip = (l) => {
    const m = /^(.*),"id":(\d+)\}$/.exec(l);
    assert.ok(m, `a request line ends with the gateway's id: ${l}`);
    return m[1];
  };
  const want = `{"jsonrpc":"2.0","method":"tools/call","params":${LINE_PARAMS}`;
  for (const l of lines.slice(0, texts.length + 1)) assert.equal(strip(l), want);
  assert.equal(strip(lines[texts.length + 1]), '{"jsonrpc":"2.0","method":"tools/call","params":{"name":"echo","arguments":{"r":1.5}}');
});

// The path skips its "_meta" and "task" lookups for a lent params whose members it walked once:
// a progress token and a task request in canonical params must still be seen, and a params with
// more members than that walk takes (or "task" only inside arguments) must still be read.
test('tools/call params: a canonical _meta.progressToken is replaced and a task member taken off', async (t) => {
  const rec = recordFile(t);
  const gw = await t.gateway({ config: { mcpServers: { test: recordedTestserver(rec) } } });
  const sess = await initSession(gw.url, { protocolVersion: '2025-03-26' });
  const many = Array.from({ length: 8 }, (_, i) => `"x${i}":${i}`).join(',');
  const cases = [
    { params: `{"name":"echo","arguments":{"message":"p1"},"_meta":{"progressToken":"client-tok"}}`, tok: true },
    { params: `{"_meta":{"progressToken":77},"name":"echo","arguments":{"message":"p2"}}`, tok: true },
    { params: `{"name":"echo","arguments":{"message":"p3"},"task":{"ttl":1000}}`, task: true },
    { params: `{"name":"echo","arguments":{"message":"p4","task":{"ttl":5}}}`, nested: true },
    { params: `{"name":"echo",${many},"arguments":{"message":"p5"},"_meta":{"progressToken":"t5"}}`, tok: true },
  ];
  for (let i = 0; i < cases.length; i++)
    await post(gw, sess, `{"jsonrpc":"2.0","id":${2000 + i},"method":"tools/call","params":${cases[i].params}}`, [2000 + i]);
  const calls = () =>
    readRecord(rec)
      .split('\n')
      .filter((l) => l.includes('"method":"tools/call"'))
      .map((l) => JSON.parse(l));
  await waitFor(() => calls().length >= cases.length, { what: 'every call written to the upstream' });
  const lines = calls();
  for (let i = 0; i < cases.length; i++) {
    const m = lines[i];
    assert.equal(m.params.arguments.message, `p${i + 1}`);
    if (cases[i].tok) assert.equal(m.params._meta?.progressToken, m.id, `the gateway's token, not the client's: ${JSON.stringify(m)}`);
    else assert.equal(m.params._meta, undefined);
    if (cases[i].task) assert.equal(m.params.task, undefined, 'the client task request stays with the gateway');
    if (cases[i].nested) assert.deepEqual(m.params.arguments.task, { ttl: 5 }, 'arguments are the tool\'s business');
  }
});

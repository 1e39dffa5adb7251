// The call journal (gateway.journal): 10,000 calls from 50 sessions chain and verify with
// `mcpgate journal verify`, across rotated files; edits, deletions, reordering and a missing file
// are caught; the file holds no token and no argument value unless gateway.journal.arguments is on;
// outcomes (result, tool error, error, refusal by rule) and the request's trace id are recorded.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { bearer, tokenNew } from './lib/auth.mjs';
import { MG_BINARY, testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { ACCEPT_BOTH, initSession, sessionHeaders } from './lib/http.mjs';

const SESSIONS = 50;
const CALLS = Number(process.env.MG_E2E_JOURNAL_CALLS || 200); // per session: 10,000 in all

function tempDir(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-journal-'));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

function verify(args) {
  const r = spawnSync(MG_BINARY, ['journal', 'verify', ...args], { encoding: 'utf8' });
  return { code: r.status, out: r.stdout + r.stderr };
}

function journalFiles(file) {
  const dir = path.dirname(file);
  const base = path.basename(file);
  const rotated = fs
    .readdirSync(dir)
    .filter((n) => n.startsWith(base + '.') && /^\d+$/.test(n.slice(base.length + 1)))
    .sort()
    .map((n) => path.join(dir, n));
  return [...rotated, file];
}

const readLines = (f) => fs.readFileSync(f, 'utf8').split('\n').filter(Boolean);

// Keep-alive fetch of one JSON-RPC request in a session; returns the response message.
async function rpcCall(url, sess, headers, method, params, id) {
  const r = await fetch(url, {
    method: 'POST',
    headers: { ...sessionHeaders(sess, headers), 'Content-Type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id, method, params }),
  });
  const text = await r.text();
  if (r.status !== 200) throw new Error(`${method}: HTTP ${r.status}: ${text.slice(0, 200)}`);
  if ((r.headers.get('content-type') || '').includes('text/event-stream')) {
    const data = text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6)));
    return data.find((m) => m.id === id);
  }
  return JSON.parse(text);
}

test(`${SESSIONS} sessions x ${CALLS} calls: the chain verifies across rotated files; no token or argument in it; tampering is caught`, async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'journal.jsonl');
  const keyFile = path.join(dir, 'journal.key');
  fs.writeFileSync(keyFile, crypto.randomBytes(32).toString('base64') + '\n');
  const tok = tokenNew(['--tenant', 'acme', '--name', 'auditor-test']);
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver() },
      gateway: {
        auth: { tokens: [tok.entry] },
        journal: { path: file, hmacKey: `\${file:${keyFile}}`, maxBytes: 1024 * 1024, checkpointEvery: 500 },
      },
    },
  });
  const auth = bearer(tok.token);
  const secrets = [];
  const t0 = Date.now();
  // 2025-03-26 sessions send their calls in JSON-RPC batches of BATCH (each item is one call, journaled
  // on its own): the same 10,000 calls in a tenth of the HTTP requests, so the test stays fast.
  const BATCH = 10;
  await Promise.all(
    Array.from({ length: SESSIONS }, async (_, i) => {
      const sess = await initSession(gw.url, { headers: auth, protocolVersion: '2025-03-26' });
      for (let j = 0; j < CALLS; j += BATCH) {
        const batch = [];
        for (let k = j; k < j + BATCH && k < CALLS; k++) {
          const secret = `arg-secret-${i}-${k}-${crypto.randomBytes(4).toString('hex')}`;
          if (k === 0) secrets.push(secret);
          batch.push({ jsonrpc: '2.0', id: k + 1, method: 'tools/call', params: { name: 'echo', arguments: { message: secret } } });
        }
        const r = await fetch(gw.url, {
          method: 'POST',
          headers: { ...sessionHeaders(sess, auth), 'Content-Type': 'application/json' },
          body: JSON.stringify(batch),
        });
        const got = await r.json();
        assert.equal(r.status, 200);
        assert.equal(got.length, batch.length);
        for (const m of got) assert.equal(m.result?.content?.[0]?.text, batch.find((b) => b.id === m.id).params.arguments.message);
      }
    }),
  );
  t.log(`${SESSIONS * CALLS} calls in ${Date.now() - t0} ms`);
  // One of each other journaled method and outcome, with a trace id on the request.
  const sess = await initSession(gw.url, { headers: auth });
  const trace = crypto.randomBytes(16).toString('hex');
  const th = { ...auth, traceparent: `00-${trace}-${crypto.randomBytes(8).toString('hex')}-01` };
  await rpcCall(gw.url, sess, th, 'prompts/get', { name: 'test_simple_prompt' }, 1);
  await rpcCall(gw.url, sess, th, 'resources/read', { uri: 'test://watched-resource' }, 2);
  await rpcCall(gw.url, sess, th, 'tools/call', { name: 'test_error_handling', arguments: {} }, 3);
  const unknown = await rpcCall(gw.url, sess, th, 'tools/call', { name: 'no_such_tool', arguments: {} }, 4);
  assert.ok(unknown.error);
  await rpcCall(gw.url, sess, th, 'completion/complete', {
    ref: { type: 'ref/prompt', name: 'test_prompt_with_arguments' },
    argument: { name: 'arg1', value: 'completion-secret' },
  }, 5);
  // argsSha256 is the SHA-256 of the arguments' compact JSON whether the request's params text is
  // hashed as sent (no whitespace, no escapes) or the arguments are written again (escapes).
  const argsCanonical = { message: 'caf\u00e9 \u20ac [}{,:]', n: [1, -2, { b: null }], t: true, e: {} };
  const argsEscaped = { s: 'q"uote\\ /', n: [3] };
  await rpcCall(gw.url, sess, auth, 'tools/call', { name: 'no_such_tool', arguments: argsCanonical }, 6);
  await rpcCall(gw.url, sess, auth, 'tools/call', { name: 'no_such_tool', arguments: argsEscaped }, 7);
  const { code } = await gw.stop();
  assert.equal(code, 0);

  const files = journalFiles(file);
  assert.ok(files.length >= 3, `expected rotation into several files, got ${files.length}`);
  let v = verify(['--key', keyFile, file]);
  assert.equal(v.code, 0, v.out);
  assert.match(v.out, /intact: \d+ lines in \d+ file\(s\).*every HMAC verified/);
  assert.doesNotMatch(v.out, /warning/, 'a cleanly stopped gateway ends its journal with a checkpoint');

  const all = files.flatMap(readLines);
  const text = all.join('\n');
  const recs = all.map((l) => JSON.parse(l));
  const calls = recs.filter((r) => r.kind === 'call');
  assert.equal(calls.filter((r) => r.name === 'echo' && r.outcome === 'result').length, SESSIONS * CALLS);
  recs.forEach((r, i) => assert.equal(r.seq, i + 1));
  assert.ok(!text.includes(tok.token) && !text.includes(tok.token.slice(4)), 'the bearer token is in the journal');
  for (const s of secrets) assert.ok(!text.includes(s), `argument value ${s} is in the journal`);
  assert.ok(!text.includes('completion-secret'));
  const echo = calls.find((r) => r.name === 'echo');
  assert.equal(echo.principal, tok.entry.name);
  assert.equal(echo.tenant, 'acme');
  assert.equal(echo.server, 'test');
  assert.equal(echo.client.name, 'mcpgate-e2e-raw');
  assert.match(echo.argsSha256, /^[0-9a-f]{64}$/);
  const sha = (v) => crypto.createHash('sha256').update(JSON.stringify(v)).digest('hex');
  const unknownArgs = calls.filter((r) => r.name === 'no_such_tool' && r.trace === '').map((r) => r.argsSha256);
  assert.deepEqual(unknownArgs, [sha(argsCanonical), sha(argsEscaped)]);
  // each session's records carry its own hash and the client's name (written once per session)
  const echoes = calls.filter((r) => r.name === 'echo');
  assert.equal(new Set(echoes.map((r) => r.session)).size, SESSIONS);
  assert.ok(echoes.every((r) => /^[0-9a-f]{12}$/.test(r.session) && r.client.name === 'mcpgate-e2e-raw'));
  const read = calls.find((r) => r.method === 'resources/read');
  assert.equal(read.argsSha256, crypto.createHash('sha256').update('').digest('hex'), 'no arguments: the hash of nothing');
  assert.ok(Number.isInteger(echo.us));
  const traced = calls.filter((r) => r.trace === trace);
  assert.deepEqual(
    traced.map((r) => [r.method, r.outcome]),
    [
      ['prompts/get', 'result'],
      ['resources/read', 'result'],
      ['tools/call', 'toolError'],
      ['tools/call', 'error'],
      ['completion/complete', 'result'],
    ],
  );
  assert.equal(traced[1].name, 'test://watched-resource');
  assert.equal(traced[3].code, unknown.error.code);
  assert.equal(traced[4].name, 'test_prompt_with_arguments');

  // Tampering: each case on a pristine copy of the files.
  const pristine = new Map(files.map((f) => [f, fs.readFileSync(f)]));
  const restore = () => pristine.forEach((b, f) => fs.writeFileSync(f, b));
  const rewrite = (f, fn) => fs.writeFileSync(f, fn(readLines(f)).join('\n') + '\n');
  const cases = [
    ['an edited line', () => rewrite(files[1], (ls) => ls.map((l, i) => (i === 10 ? l.replace('"echo"', '"ech0"') : l))), /broken/],
    ['a deleted line', () => rewrite(files[0], (ls) => ls.filter((_, i) => i !== 20)), /broken/],
    ['two lines swapped', () => rewrite(files.at(-1), (ls) => { [ls[3], ls[4]] = [ls[4], ls[3]]; return ls; }), /broken/],
    ['the end of a rotated file cut off', () => rewrite(files[0], (ls) => ls.slice(0, -5)), /broken/],
    ['a rotated file removed', () => fs.rmSync(files[1]), /broken/],
    ['the first file removed', () => fs.rmSync(files[0]), /starts at seq/],
    ['a forged checkpoint (recomputed chain, wrong key)', () => {
      // Rewrite the live file's chain after an edit with correct hashes: only the HMAC tells.
      const ls = readLines(files.at(-1)).map((l) => JSON.parse(l));
      let prev = ls[0].prev;
      const out = ls.map((r, i) => {
        if (i === 2 && r.kind === 'call') r.name = 'forged';
        r.prev = prev;
        const line = JSON.stringify(r);
        prev = crypto.createHash('sha256').update(line).digest('hex');
        return line;
      });
      fs.writeFileSync(files.at(-1), out.join('\n') + '\n');
    }, /HMAC/],
  ];
  for (const [what, tamper, expect] of cases) {
    tamper();
    v = verify(['--key', keyFile, file]);
    assert.equal(v.code, 1, `${what}: verify exit ${v.code}: ${v.out}`);
    assert.match(v.out, expect, what);
    assert.match(v.out, /:\d+: broken/, `${what}: the first broken line is named`);
    restore();
  }
  assert.equal(verify(['--key', keyFile, file]).code, 0);
  // Without the key the chain is still checked; --config takes the path and key from the config.
  assert.equal(verify([file]).code, 0);
}, { timeout: 180000 });

test('arguments: true records the arguments; refusals name their rule; an unopenable journal stops serve', async (t) => {
  const dir = tempDir(t);
  const file = path.join(dir, 'j.jsonl');
  const gw = await t.gateway({
    config: {
      mcpServers: { test: testserver([], { tools: { deny: ['sleep'] } }) },
      gateway: { journal: { path: file, arguments: true } },
    },
  });
  const sess = await initSession(gw.url);
  await rpcCall(gw.url, sess, {}, 'tools/call', { name: 'echo', arguments: { message: 'visible-arg' } }, 1);
  const refused = await rpcCall(gw.url, sess, {}, 'tools/call', { name: 'sleep', arguments: { ms: 1 } }, 2);
  assert.ok(refused.error);
  await gw.stop();
  const recs = readLines(file).map((l) => JSON.parse(l));
  const calls = recs.filter((r) => r.kind === 'call');
  assert.deepEqual(calls[0].arguments, { message: 'visible-arg' });
  assert.equal(calls[0].argsSha256, crypto.createHash('sha256').update('{"message":"visible-arg"}').digest('hex'));
  assert.equal(calls[1].outcome, 'refused');
  assert.equal(calls[1].rule, 'toolFilter');
  assert.equal(calls[1].trace, '');
  assert.equal(recs[0].kind, 'open');
  assert.equal(recs.at(-1).kind, 'checkpoint');
  assert.equal(recs.at(-1).hmac, undefined, 'no key: unkeyed checkpoints');
  const v = verify([file]);
  assert.equal(v.code, 0, v.out);

  const bad = spawnSync(
    MG_BINARY,
    ['serve', '--listen', '127.0.0.1:0', '--config', writeTemp(dir, { mcpServers: { test: testserver() }, gateway: { journal: { path: path.join(dir, 'missing', 'j.jsonl') } } })],
    { encoding: 'utf8', timeout: 10000 },
  );
  assert.equal(bad.status, 2, bad.stderr);
  assert.match(bad.stderr, /gateway\.journal: cannot open the journal .*missing.*No such file or directory/);
});

function writeTemp(dir, obj) {
  const f = path.join(dir, `cfg-${crypto.randomBytes(4).toString('hex')}.json`);
  fs.writeFileSync(f, JSON.stringify(obj));
  return f;
}

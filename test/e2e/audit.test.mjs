// `mcpgate audit`: the production checklist against live targets.
// - mcpgate hardened (OAuth via a test IdP, lockfile, lazy tools, rate limits): no warn, no fail;
// - mcpgate's default loopback config: exactly the expected warnings;
// - a small server (fixtures/audit-target.mjs) that breaks one behaviour at a time: exactly that
//   check changes from the baseline;
// - hostile targets (garbage, hangs, floods, dropped connections): the audit ends, within its
//   limits, with a report;
// - --json keeps its shape, --sarif validates against the SARIF 2.1.0 schema, --config audits
//   pins, publishers, the lockfile, credentials and the stdio servers' tools; --replica against
//   two independent gateways (fail) and two replicas sharing Redis (pass).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Ajv from 'ajv';
import { startAuditTarget } from './fixtures/audit-target.mjs';
import { startRemoteUpstream } from './fixtures/remote-upstream.mjs';
import { E2E_DIR, MG_BINARY, REPO_DIR, freePort, testserver } from './lib/gateway.mjs';
import { scaled, test } from './lib/harness.mjs';
import { configDir, mcpgate } from './lib/policy.mjs';
import { startIdp } from './lib/idp.mjs';
import { requireBinaries, startRedis, startReplicas, waitStore } from './lib/cluster.mjs';

// Runs the audit without blocking this process's loop (targets may live in it).
// --rate 100 unless the test sets one: the default 20/s pacing is exercised by the first test.
function audit(args, { timeout = scaled(90000) } = {}) {
  if (!args.includes('--rate') && !args.includes('--config')) args = [...args, '--rate', '100'];
  return new Promise((resolve, reject) => {
    const p = spawn(MG_BINARY, ['audit', ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '', err = '';
    p.stdout.on('data', (c) => (out += c));
    p.stderr.on('data', (c) => (err += c));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeout);
    p.on('error', reject);
    p.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout: out, stderr: err });
    });
  });
}

async function auditJson(args, opts) {
  const r = await audit([...args, '--json', '--fail-on', 'never'], opts);
  assert.equal(r.status, 0, `audit exited ${r.status} ${r.signal || ''}: ${r.stderr}\n${r.stdout}`);
  const doc = JSON.parse(r.stdout);
  return { doc, byId: Object.fromEntries(doc.checks.map((c) => [c.id, c])), r };
}

const bad = (doc) => doc.checks.filter((c) => c.status === 'warn' || c.status === 'fail').map((c) => `${c.id}: ${c.status}: ${c.evidence}`);

test('audit: the JSON report keeps its shape, every check has evidence, skips say why', async (t) => {
  const target = await startAuditTarget();
  t.defer(() => target.stop());
  const { doc } = await auditJson([target.url, '--rate', '20']);
  const validate = new Ajv({ allErrors: true }).compile(JSON.parse(fs.readFileSync(path.join(REPO_DIR, 'docs/schemas/audit-report.schema.json'), 'utf8')));
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5)));
  assert.deepEqual(Object.keys(doc).sort(), ['checks', 'summary', 'target']);
  assert.equal(doc.target, target.url);
  for (const c of doc.checks) {
    assert.deepEqual(Object.keys(c).sort(), ['evidence', 'fix', 'group', 'id', 'status', 'title']);
    assert.ok(['pass', 'warn', 'fail', 'skip'].includes(c.status));
    assert.ok(c.evidence.length > 3, `${c.id} has no evidence`);
    if (c.status === 'warn' || c.status === 'fail') assert.ok(c.fix.length > 10, `${c.id} has no fix`);
  }
  for (const id of ['transport.dns-rebinding', 'transport.cors', 'auth.required', 'auth.query-token'])
    assert.ok(doc.checks.some((c) => c.id === id), `${id} missing`);
  const sum = { pass: 0, warn: 0, fail: 0, skip: 0 };
  for (const c of doc.checks) sum[c.status]++;
  assert.deepEqual(doc.summary, sum);
  // The baseline breaks nothing but auth (loopback, no token configured): a warning only.
  assert.deepEqual(bad(doc).map((s) => s.split(':')[0]), ['auth.required']);
});

// Each break flips exactly its own check, nothing else.
const BREAKS = {
  'dns-rebinding': ['transport.dns-rebinding', 'fail'],
  cors: ['transport.cors', 'fail'],
  'query-token': ['auth.query-token', 'warn'],
  'session-entropy': ['session.id-entropy', 'fail'],
  'unknown-session': ['session.unknown-404', 'fail'],
  'tool-count': ['context.tool-count', 'warn'],
  'description-scan': ['supply.description-scan', 'fail'],
  'definitions-change': ['supply.definitions-stable', 'fail'],
  'body-limit': ['robust.body-limit', 'warn'],
  malformed: ['robust.malformed-json', 'warn'],
  'rate-limit': ['robust.rate-limit', 'warn'],
  'error-bodies': ['robust.error-bodies', 'fail'],
  'legacy-sse': ['transport.legacy-sse', 'warn'],
  'header-mismatch': ['modern.header-mismatch', 'fail'],
  'request-state': ['modern.request-state', 'warn'],
  tenant: ['tenant.cross-session', 'fail'],
  'tenant-notify': ['tenant.cross-session', 'fail'],
};

test('audit: a server that breaks one behaviour fails exactly that check', async (t) => {
  const base = await startAuditTarget();
  t.defer(() => base.stop());
  const { byId: ref } = await auditJson([base.url]);
  const one = async ([brk, [id, want]]) => {
    const target = await startAuditTarget({ brk });
    try {
      const { byId } = await auditJson([target.url]);
      assert.equal(byId[id].status, want, `--break ${brk}: ${id} is ${byId[id].status}: ${byId[id].evidence}`);
      const changed = Object.keys(byId).filter((k) => byId[k].status !== ref[k].status);
      assert.deepEqual(changed, [id], `--break ${brk} changed ${changed.map((k) => `${k} (${byId[k].evidence})`).join('; ')}`);
    } finally {
      await target.stop();
    }
  };
  const todo = Object.entries(BREAKS);
  while (todo.length) await Promise.all(todo.splice(0, 4).map(one));
}, { timeout: 240000 });

test('audit: hostile targets (garbage, hangs, floods, dropped connections) end in a report within the limits', async (t) => {
  for (const hostile of ['garbage', 'hang', 'flood', 'close']) {
    const target = await startAuditTarget({ hostile });
    try {
      const started = Date.now();
      const r = await audit([target.url, '--json', '--fail-on', 'never', '--timeout', '800', '--time-limit', '20', '--max-requests', '120']);
      assert.equal(r.signal, null, `${hostile}: killed by ${r.signal}\n${r.stderr}`);
      assert.equal(r.status, 0, `${hostile}: exit ${r.status}\n${r.stderr}`);
      const doc = JSON.parse(r.stdout);
      assert.ok(doc.checks.length >= 30, hostile);
      assert.ok(Date.now() - started < scaled(40000), `${hostile}: took ${Date.now() - started} ms`);
      if (hostile !== 'garbage') {
        // Nothing was learned: no check may claim a pass it did not see (plain-http/bind are facts of the URL).
        const passes = doc.checks.filter((c) => c.status === 'pass').map((c) => c.id);
        for (const id of passes) assert.ok(['transport.plain-http', 'transport.bind', 'transport.legacy-sse', 'transport.cors'].includes(id), `${hostile}: ${id} passed: ${JSON.stringify(doc.checks.find((c) => c.id === id))}`);
      }
    } finally {
      await target.stop();
    }
  }
}, { timeout: 180000 });

test('audit: mcpgate in its default loopback config shows the expected warnings only', async (t) => {
  const gw = await t.gateway({});
  const { doc } = await auditJson([gw.url]);
  const warned = bad(doc).map((s) => s.split(':').slice(0, 2).join(':'));
  // No auth on loopback, the bundled test server's 42 tools without lazy mode, no rate limits.
  assert.deepEqual(warned.sort(), ['auth.required: warn', 'context.lazy: warn', 'context.tool-count: warn', 'robust.rate-limit: warn']);
  assert.equal(doc.checks.find((c) => c.id === 'transport.dns-rebinding').status, 'pass');
  assert.equal(doc.checks.find((c) => c.id === 'modern.header-mismatch').status, 'pass');
});

test('audit: mcpgate hardened (OAuth, lock, lazy, rate limits) passes every check it can run', async (t) => {
  const port = await freePort();
  const resource = `http://127.0.0.1:${port}/mcp`;
  const idp = await startIdp({ audience: resource });
  t.defer(() => idp.stop());
  await idp.addKey('RS256');
  const config = {
    mcpServers: { test: testserver() },
    gateway: {
      auth: { oauth: { issuer: idp.issuer, audience: resource, required_scopes: ['mcp'] }, resource, failure_limit: { max: 1000 } },
      tools: { mode: 'lazy' },
      pinning: 'block',
      rateLimits: { methods: ['tools/list', 'tools/call'], principal: { requests: 30, perSeconds: 60, burst: 30 } },
    },
  };
  const c = configDir(t, config);
  const lock = mcpgate(['lock', '--config', c.file]);
  assert.equal(lock.status, 0, lock.stdout + lock.stderr);
  const gw = await t.gateway({ port, args: ['--config', c.file] });
  const tok = await idp.mint({ claims: { sub: 'alice', scope: 'mcp' }, expiresIn: '30m' });
  const tok2 = await idp.mint({ claims: { sub: 'bob', scope: 'mcp' }, expiresIn: '30m' });
  const other = await idp.mint({ claims: { sub: 'alice', scope: 'mcp', aud: 'https://other.example/mcp' }, expiresIn: '30m' });
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-audit-'));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'tok'), tok);
  const rec = path.join(dir, 'rec.json');
  const { doc } = await auditJson([gw.url, '--token-file', path.join(dir, 'tok'), '--token2', tok2, '--token-other-audience', other, '--record', rec,
    '--call', 'test_elicitation', '--call-args', '{"message":"audit"}']);
  assert.deepEqual(bad(doc), []);
  const ran = doc.checks.filter((x) => x.status === 'pass').map((x) => x.id);
  for (const id of ['auth.required', 'auth.www-authenticate', 'auth.metadata', 'auth.query-token', 'auth.token-lifetime',
    'auth.token-audience', 'auth.other-audience', 'session.other-principal', 'robust.rate-limit', 'tenant.cross-session',
    'transport.dns-rebinding', 'modern.request-state'])
    assert.ok(ran.includes(id), `${id} did not pass: ${JSON.stringify(doc.checks.find((x) => x.id === id))}`);
  // --call: the elicitation tool answered input_required and its altered requestState was refused.
  assert.match(doc.checks.find((x) => x.id === 'modern.request-state').evidence, /test_elicitation answered input_required; its requestState altered .* -> HTTP 400/);
  // The recording never holds a token; replaying it gives the same verdicts without a target.
  const recText = fs.readFileSync(rec, 'utf8');
  for (const secret of [tok, tok2, other]) assert.ok(!recText.includes(secret), 'a token leaked into the recording');
  const replay = await auditJson(['--replay', rec]);
  assert.deepEqual(replay.doc.checks.map((x) => [x.id, x.status]), doc.checks.map((x) => [x.id, x.status]));
}, { timeout: 120000 });

test('audit: --sarif validates against the SARIF 2.1.0 schema; --fail-on sets the exit status', async (t) => {
  const target = await startAuditTarget({ brk: 'cors' });
  t.defer(() => target.stop());
  const r = await audit([target.url, '--sarif', '--fail-on', 'never']);
  assert.equal(r.status, 0, r.stderr);
  const sarif = JSON.parse(r.stdout);
  const schema = JSON.parse(fs.readFileSync(path.join(E2E_DIR, 'fixtures/sarif-schema-2.1.0.json'), 'utf8'));
  // The OASIS schema is draft-04; its only draft-04 keyword is the top-level "id" (ajv 8 reads draft-07).
  schema.$id = schema.id;
  delete schema.id;
  delete schema.$schema;
  const ajv = new Ajv({ strict: false, validateFormats: false, allErrors: true });
  const validate = ajv.compile(schema);
  assert.ok(validate(sarif), JSON.stringify(validate.errors?.slice(0, 5)));
  const res = sarif.runs[0].results;
  const cors = res.find((x) => x.ruleId === 'transport.cors');
  assert.equal(cors.level, 'error');
  assert.equal(sarif.runs[0].tool.driver.rules[cors.ruleIndex].id, 'transport.cors');
  assert.ok(res.some((x) => x.kind === 'pass' && x.level === 'none'));
  assert.ok(res.some((x) => x.kind === 'notApplicable'));

  assert.equal((await audit([target.url, '--fail-on', 'fail'])).status, 1);
  const ok = await startAuditTarget();
  t.defer(() => ok.stop());
  const fine = await audit([ok.url, '--fail-on', 'fail', '--progress']);
  assert.equal(fine.status, 0, fine.stdout);
  assert.match(fine.stderr, /mcpgate audit: \d+ requests, [\d.]+ s: /);
  assert.match(fine.stdout, /^Transport$/m);
  assert.match(fine.stdout, /WARN {2}auth\.required/);
  assert.match(fine.stdout, /fix: require a bearer token .*docs\/audit\.md#auth/);
  assert.equal((await audit([ok.url, '--fail-on', 'warn'])).status, 1);
  assert.equal((await audit(['ftp://x'])).status, 2);
  const q = await audit(['http://127.0.0.1:1/mcp?access_token=secret']);
  assert.equal(q.status, 2);
  assert.match(q.stderr, /query looks like it holds a credential/);
});

test('audit --config: pins, publishers, lockfile, credentials, lazy mode, and the stdio servers\' tools', async (t) => {
  const c = configDir(t, {
    mcpServers: {
      ts: testserver(),
      // PATH '/nonexistent': these cannot start here (no package downloads in tests); their packages
      // are still audited and their tool checks skip with the reason.
      latest: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory@latest'], env: { PATH: '/nonexistent', API_KEY: 'your-api-key-here' } },
      pinned: { command: 'npx', args: ['-y', '@modelcontextprotocol/server-memory@2026.1.1'], env: { PATH: '/nonexistent' } },
      pypkg: { command: 'uvx', args: ['mcp-server-fetch'], env: { PATH: '/nonexistent' } },
    },
    gateway: { audit: { trustedPublishers: ['@modelcontextprotocol/', 'mcp-server-fetch'] } },
  });
  const r = await audit(['--config', c.file, '--json', '--fail-on', 'never', '--timeout', String(scaled(8000))]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const doc = JSON.parse(r.stdout);
  const validate = new Ajv({ allErrors: true }).compile(JSON.parse(fs.readFileSync(path.join(REPO_DIR, 'docs/schemas/audit-report.schema.json'), 'utf8')));
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5)));
  const get = (id, server) => doc.checks.find((x) => x.id === id && x.server === server);
  assert.equal(get('supply.pinned', 'latest').status, 'fail');
  assert.equal(get('supply.pinned', 'pinned').status, 'pass');
  assert.equal(get('supply.pinned', 'pypkg').status, 'fail');
  assert.equal(get('supply.pinned', 'ts').status, 'skip');
  assert.equal(get('supply.publishers', 'pinned').status, 'pass');
  assert.equal(get('supply.publishers', 'pypkg').status, 'pass');
  assert.equal(get('env.credentials', undefined).status, 'fail');
  assert.match(get('env.credentials', undefined).evidence, /latest\.env\.API_KEY/);
  assert.doesNotMatch(r.stdout, /your-api-key-here/);
  assert.equal(get('supply.lockfile', undefined).status, 'warn');
  assert.equal(get('auth.required', undefined).status, 'warn');
  assert.equal(get('context.tool-count', 'ts').status, 'warn');
  assert.equal(get('context.lazy', undefined).status, 'warn');
  assert.equal(get('supply.definitions-stable', 'ts').status, 'pass');
  assert.equal(get('supply.description-scan', 'ts').status, 'pass');
  assert.equal(get('context.tool-count', 'pinned').status, 'skip'); // could not start here: skip with the reason
  assert.ok(get('context.tool-count', 'pinned').evidence.length > 10);
}, { timeout: 120000 });

test('audit --replica: two independent gateways break sessions; replicas sharing a Redis store keep them', async (t) => {
  const a = await t.gateway({});
  const b = await t.gateway({});
  const apart = await auditJson([a.url, '--replica', b.url]);
  assert.equal(apart.byId['session.replica'].status, 'fail', apart.byId['session.replica'].evidence);
  assert.match(apart.byId['session.replica'].evidence, /HTTP 404/);
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const config = { mcpServers: { test: testserver() } };
  const [r1, r2] = await startReplicas(t, 2, { redisUrl: redis.url(0), config });
  await waitStore([r1, r2], true);
  const shared = await auditJson([r1.url, '--replica', r2.url]);
  assert.equal(shared.byId['session.replica'].status, 'pass', shared.byId['session.replica'].evidence);
}, { timeout: 60000 });

test('audit --config: remote entries: the entry\'s own checks, the SSRF guard, then the URL probes with its headers', async (t) => {
  const SECRET = 'remote-audit-secret-4f1c9a';
  const up = await startRemoteUpstream({ checkAuth: (req) => req.headers.authorization === `Bearer ${SECRET}` });
  t.defer(() => up.close());
  const tok = path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'mg-audit-remote-')), 'tok');
  fs.writeFileSync(tok, SECRET);
  const u = new URL(up.url);
  const mcpServers = {
    good: { url: up.url, headers: { Authorization: `Bearer \${file:${tok}}` } },
    literal: { url: up.url, headers: { 'X-Api-Key': 'literal-key-77e2b0' } },
    plain: { url: 'http://192.0.2.10/mcp' }, // TEST-NET-1: beyond loopback, not reachable, never probed
    private: { url: 'https://10.1.2.3/mcp' },
    qtoken: { url: `http://127.0.0.1:${u.port}/mcp?api_key=query-secret-31d7` },
    oauth: { url: 'https://192.0.2.11/mcp', auth: { type: 'client_credentials', tokenUrl: 'https://192.0.2.11/token', clientId: 'gw', clientSecret: `\${file:${tok}}` } },
    // Credential endpoints go through the same guard: a private token URL, a metadata issuer, an allowed one.
    tokpriv: { url: 'https://10.1.2.4/mcp', auth: { type: 'client_credentials', tokenUrl: 'https://10.9.8.7/token', clientId: 'gw', clientSecret: `\${file:${tok}}` } },
    issmeta: { url: 'https://10.1.2.5/mcp', auth: { type: 'client_credentials', issuer: 'https://169.254.169.254', clientId: 'gw', clientSecret: `\${file:${tok}}` } },
    tokok: { url: 'https://10.1.2.6/mcp', auth: { type: 'client_credentials', tokenUrl: 'http://127.0.0.1:9/token', clientId: 'gw', clientSecret: `\${file:${tok}}` } },
  };
  const c = configDir(t, { mcpServers, gateway: { egress: { allowCidrs: ['127.0.0.1/32'] } } });
  const r = await audit(['--config', c.file, '--json', '--fail-on', 'never', '--timeout', String(scaled(4000)), '--rate', '100']);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const doc = JSON.parse(r.stdout);
  const validate = new Ajv({ allErrors: true }).compile(JSON.parse(fs.readFileSync(path.join(REPO_DIR, 'docs/schemas/audit-report.schema.json'), 'utf8')));
  assert.ok(validate(doc), JSON.stringify(validate.errors?.slice(0, 5)));
  const get = (id, server) => doc.checks.find((x) => x.id === id && x.server === server) || { status: 'absent' };
  // Secrets are never printed: the header values, the query credential.
  for (const s of [SECRET, 'literal-key-77e2b0', 'query-secret-31d7']) assert.ok(!r.stdout.includes(s) && !r.stderr.includes(s), s);
  // The entry's own checks.
  assert.equal(get('transport.plain-http', 'good').status, 'pass'); // http to loopback
  assert.equal(get('transport.plain-http', 'plain').status, 'fail');
  assert.equal(get('transport.plain-http', 'private').status, 'pass');
  assert.equal(get('auth.query-token', 'qtoken').status, 'fail');
  assert.match(get('auth.query-token', 'qtoken').evidence, /api_key/);
  assert.equal(get('auth.upstream-credentials', 'good').status, 'pass');
  assert.match(get('auth.upstream-credentials', 'good').evidence, /Authorization \(literal\+file:/);
  assert.equal(get('auth.upstream-credentials', 'literal').status, 'warn');
  assert.match(get('auth.upstream-credentials', 'literal').evidence, /X-Api-Key \(literal\)/);
  assert.equal(get('auth.upstream-credentials', 'oauth').status, 'pass');
  assert.match(get('auth.upstream-credentials', 'oauth').evidence, /client_credentials/);
  assert.equal(get('auth.upstream-credentials', 'plain').status, 'skip');
  // The SSRF guard: loopback allowed by allowCidrs; a private or reserved address refused, not probed.
  assert.equal(get('transport.egress', 'good').status, 'pass');
  assert.match(get('transport.egress', 'good').evidence, /allowCidrs/);
  assert.equal(get('transport.egress', 'private').status, 'fail');
  assert.match(get('transport.egress', 'private').evidence, /10\.1\.2\.3 \(private\).*not probed/);
  assert.equal(get('transport.streamable-http', 'private').status, 'skip');
  const egress = (server) => doc.checks.filter((x) => x.id === 'transport.egress' && x.server === server);
  const cred = (server) => egress(server).find((x) => /^auth\.(tokenUrl|issuer) /.test(x.evidence)) || { status: 'absent' };
  assert.equal(cred('tokpriv').status, 'fail');
  assert.match(cred('tokpriv').evidence, /auth\.tokenUrl 10\.9\.8\.7 resolves to 10\.9\.8\.7 \(private\).*every call fails/);
  assert.equal(cred('issmeta').status, 'fail');
  assert.match(cred('issmeta').evidence, /auth\.issuer 169\.254\.169\.254 .*every call fails/);
  assert.equal(cred('tokok').status, 'pass');
  assert.match(cred('tokok').evidence, /auth\.tokenUrl 127\.0\.0\.1 .*allowCidrs/);
  assert.equal(cred('good').status, 'absent'); // no auth: only its URL is judged
  assert.equal(egress('tokpriv')[0].status, 'fail'); // its own URL first, judged apart
  assert.equal(get('transport.streamable-http', 'qtoken').status, 'skip');
  // Probed with its credential: served, and refused without it.
  assert.equal(get('transport.streamable-http', 'good').status, 'pass');
  assert.equal(get('auth.required', 'good').status, 'pass');
  assert.equal(get('transport.streamable-http', 'literal').status, 'skip'); // 401: its header is not the credential
  // The gateway's own listing answers the context checks of a remote server.
  assert.equal(get('context.tool-count', 'good').status, 'pass');
  // Where the credential went: to the entry's URL only, in the Authorization header, never in a query.
  assert.ok(up.log.length > 10);
  for (const e of up.log) {
    assert.ok(!(e.path + JSON.stringify(e.headers)).includes('query-secret'), 'the query credential was sent');
    if (e.headers.authorization) assert.equal(e.headers.authorization, `Bearer ${SECRET}`);
  }
  assert.ok(up.log.some((e) => e.method === 'POST' && !e.headers.authorization), 'no unauthenticated probe');

  // Without allowCidrs the gateway refuses loopback: the audit says so and sends nothing.
  const before = up.log.length;
  const c2 = configDir(t, { mcpServers: { good: mcpServers.good } });
  const r2 = await audit(['--config', c2.file, '--json', '--fail-on', 'never', '--timeout', String(scaled(4000))]);
  const doc2 = JSON.parse(r2.stdout);
  const eg = doc2.checks.find((x) => x.id === 'transport.egress' && x.server === 'good');
  assert.equal(eg.status, 'fail');
  assert.match(eg.evidence, /127\.0\.0\.1 \(loopback\).*SSRF/);
  assert.equal(up.log.length, before, 'a refused entry was probed');
}, { timeout: 180000 });

test('audit --config: robustness over stdio: malformed line, unknown method, oversized line', async (t) => {
  const fixture = path.join(E2E_DIR, 'fixtures', 'stdio-robust.mjs');
  const modes = ['', 'silent-parse', 'die-on-parse', 'wrong-unknown', 'mute-unknown', 'die-on-big'];
  const mcpServers = Object.fromEntries(modes.map((m) => [m || 'good', { command: process.execPath, args: [fixture, ...(m ? [m] : [])] }]));
  const c = configDir(t, { mcpServers });
  const r = await audit(['--config', c.file, '--json', '--fail-on', 'never', '--timeout', String(scaled(3000))]);
  assert.equal(r.status, 0, r.stderr + r.stdout);
  const doc = JSON.parse(r.stdout);
  const get = (id, server) => doc.checks.find((x) => x.id === id && x.server === server) || { status: 'absent' };
  const want = {
    good: ['pass', 'pass', 'pass'],
    'silent-parse': ['warn', 'pass', 'pass'],
    'die-on-parse': ['fail', 'skip', 'skip'], // dead after the first probe: the rest has nobody to ask
    'wrong-unknown': ['pass', 'warn', 'pass'],
    'mute-unknown': ['pass', 'fail', 'pass'],
    'die-on-big': ['pass', 'pass', 'fail'],
  };
  for (const [server, [mal, unk, big]] of Object.entries(want)) {
    const got = [get('robust.malformed-json', server), get('robust.unknown-method', server), get('robust.body-limit', server)];
    assert.deepEqual(got.map((x) => x.status), [mal, unk, big], `${server}: ${got.map((x) => x.evidence).join(' | ')}`);
  }
  assert.match(get('robust.malformed-json', 'good').evidence, /parse error -32700/);
  assert.match(get('robust.body-limit', 'die-on-big').evidence, /2097152 bytes/);
}, { timeout: 120000 });

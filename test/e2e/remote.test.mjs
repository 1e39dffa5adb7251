// Remote upstreams: servers reached over Streamable HTTP (url/serverUrl/httpUrl), the SSRF guard,
// credentials (static headers, per tenant, never the client's token), TLS with a test CA, faults.
// The upstream is fixtures/remote-upstream.mjs (in this process; it records every request it
// receives) or @modelcontextprotocol/server-everything in its streamableHttp mode.
import assert from 'node:assert/strict';
import { execFile, execFileSync, spawn } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { ElicitRequestSchema, CallToolResultSchema } from '@modelcontextprotocol/sdk/types.js';
import { startRemoteUpstream } from './fixtures/remote-upstream.mjs';
import { bearer } from './lib/auth.mjs';
import { startIdp } from './lib/idp.mjs';
import { connect, textOf } from './lib/client.mjs';
import { EVERYTHING_JS, MG_BINARY, freePort, testserver, waitReadyz, writeConfig } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';
import { startReceiver } from './lib/otlp.mjs';

const LOOPBACK = { egress: { allowCidrs: ['127.0.0.0/8'] } };

async function upstream(t, opts) {
  const u = await startRemoteUpstream(opts);
  t.defer(() => u.close());
  return u;
}

async function client(t, gw, opts = {}) {
  const c = await connect(gw.url, opts);
  t.defer(() => c.close());
  return c.client;
}

async function callError(cl, name, args = {}) {
  try {
    const r = await cl.callTool({ name, arguments: args });
    return r.isError ? textOf(r) : `no error: ${JSON.stringify(r).slice(0, 200)}`;
  } catch (e) {
    return e.message;
  }
}

function mkToken(tenant, name) {
  const token = 'mgt_' + crypto.randomBytes(24).toString('base64url');
  return { token, entry: { name, sha256: crypto.createHash('sha256').update(token).digest('hex'), tenant, scopes: ['tools'] } };
}

test('a remote Streamable HTTP server: tools, progress on an SSE answer, elicitation round trip, static header, readyz era', async (t) => {
  const u = await upstream(t);
  const gw = await t.gateway({
    config: {
      mcpServers: { r: { url: u.url, headers: { 'X-Api-Key': '${env:R_KEY}' } } },
      gateway: LOOPBACK,
    },
    env: { R_KEY: 'static-key-123' },
  });
  const cl = await client(t, gw, {
    capabilities: { elicitation: {} },
    setup: (c) => c.setRequestHandler(ElicitRequestSchema, async (r) => ({ action: 'accept', content: { name: `Ada (${r.params.message})` } })),
  });
  const names = (await cl.listTools()).tools.map((x) => x.name);
  assert.ok(names.includes('echo') && names.includes('ask'), names.join(','));
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'through' } })), 'through');
  const progress = [];
  const r = await cl.request({ method: 'tools/call', params: { name: 'progress', arguments: { steps: 3 } } }, CallToolResultSchema, {
    onprogress: (p) => progress.push(p.progress),
  });
  assert.equal(textOf(r), 'done');
  assert.deepEqual(progress, [1, 2, 3]);
  assert.match(textOf(await cl.callTool({ name: 'ask', arguments: {} })), /Ada \(Your name\?\)/);
  // every request carried the static header; the secret is not in the gateway's log
  const posts = u.log.filter((x) => x.method === 'POST');
  assert.ok(posts.length >= 5 && posts.every((x) => x.headers['x-api-key'] === 'static-key-123'));
  assert.ok(posts[0].body.includes('"server/discover"') && posts[1].body.includes('"initialize"'), 'the fallback table: discover, then initialize');
  assert.ok(posts.slice(2).every((x) => x.headers['mcp-session-id']), 'session id kept after initialize');
  const rz = await waitReadyz(gw, (j) => j.upstreams[0].state === 'ready');
  assert.equal(rz.upstreams[0].kind, 'remote');
  assert.equal(rz.upstreams[0].breaker, 'closed');
  assert.match(rz.upstreams[0].era, /^2025-11-25 \(Streamable HTTP\)$/);
  assert.equal(rz.upstreams[0].http, 'http/1.1');
  assert.ok(!gw.stderrText().includes('static-key-123'), 'a header value reached the log');
  // stopping the gateway ends the upstream session with DELETE
  await gw.stop();
  assert.ok(u.log.some((x) => x.method === 'DELETE' && x.headers['mcp-session-id']), 'DELETE on stop');
});

test('the client\'s bearer token never reaches a remote upstream; tenant A\'s key for A, never B\'s; a tenant without one is refused', async (t) => {
  const u = await upstream(t);
  const a = mkToken('acme', 'alice');
  const b = mkToken('globex', 'bob');
  const c = mkToken('initech', 'carol');
  const gw = await t.gateway({
    config: {
      mcpServers: {
        r: {
          url: u.url,
          isolation: 'tenant',
          tenantCredentials: {
            acme: { headers: { Authorization: 'Bearer key-for-acme' } },
            globex: { headers: { Authorization: 'Bearer ${env:GLOBEX_KEY}' } },
          },
        },
      },
      gateway: { ...LOOPBACK, auth: { tokens: [a.entry, b.entry, c.entry] } },
    },
    env: { GLOBEX_KEY: 'key-for-globex' },
  });
  const ca = await client(t, gw, { requestInit: { headers: bearer(a.token) } });
  const cb = await client(t, gw, { requestInit: { headers: bearer(b.token) } });
  assert.equal(textOf(await ca.callTool({ name: 'whoami', arguments: {} })), 'Bearer key-for-acme');
  assert.equal(textOf(await cb.callTool({ name: 'whoami', arguments: {} })), 'Bearer key-for-globex');
  assert.equal(textOf(await ca.callTool({ name: 'whoami', arguments: {} })), 'Bearer key-for-acme');
  const cc = await client(t, gw, { requestInit: { headers: bearer(c.token) } });
  assert.match(await callError(cc, 'whoami'), /no credential for your tenant/);
  const seen = JSON.stringify(u.log);
  for (const tok of [a.token, b.token, c.token]) assert.ok(!seen.includes(tok), 'a client token reached the upstream');
  // no request of initech's ever left the gateway with some other tenant's key
  assert.ok(u.log.every((x) => ['Bearer key-for-acme', 'Bearer key-for-globex'].includes(x.headers.authorization)));
});

test('SSRF guard: loopback by name or address is refused without gateway.egress.allowCidrs; redirects are not followed', async (t) => {
  const u = await upstream(t);
  const port = u.port;
  const gw = await t.gateway({
    config: {
      mcpServers: {
        byname: { url: `http://localhost:${port}/mcp` },
        byaddr: { url: `http://127.0.0.1:${port}/mcp` },
        meta: { url: 'http://169.254.169.254/latest/meta-data' },
      },
    },
  });
  const rz = await waitReadyz(gw, (j) => j.upstreams.every((x) => x.breaker === 'refused'));
  const err = Object.fromEntries(rz.upstreams.map((x) => [x.name, x.error]));
  assert.match(err.byname, /resolves to (127\.0\.0\.1|::1) \(loopback\).*gateway\.egress\.allowCidrs/);
  assert.match(err.byaddr, /127\.0\.0\.1 \(loopback\)/);
  assert.match(err.meta, /169\.254\.169\.254 \(metadata\)/);
  assert.equal(u.log.length, 0, 'nothing reached the loopback server');
  const metrics = await (await fetch(`${gw.base}/metrics`)).text();
  assert.match(metrics, /mcpgate_upstream_breaker_open\{upstream="byname",state="refused"\} 1/);
  const cl = await client(t, gw);
  assert.match(await callError(cl, 'byname__echo'), /unknown tool|not reachable|not available/);

  // allowed loopback, but the endpoint redirects to the metadata address: not followed
  const gw2 = await t.gateway({
    config: { mcpServers: { r: { url: `http://127.0.0.1:${port}/redirect` } }, gateway: LOOPBACK },
  });
  const rz2 = await waitReadyz(gw2, (j) => j.upstreams[0].error);
  assert.match(rz2.upstreams[0].error, /redirect \(HTTP 302\).*not followed/);
  assert.ok(u.log.every((x) => x.path === '/redirect'));
});

test('SSRF guard on credential endpoints: a token URL, an issuer and a token-exchange endpoint outside allowCidrs are refused; a discovery document naming another origin is not followed', async (t) => {
  const u = await upstream(t);
  // a "credential server" on 127.0.0.2 (loopback, but not inside the allowance below): discovery + token
  const trap = { log: [] };
  const srv = http.createServer((req, res) => {
    trap.log.push(req.url);
    res.setHeader('content-type', 'application/json');
    if (req.url.startsWith('/.well-known/')) res.end(JSON.stringify({ issuer: trap.base, token_endpoint: `${trap.base}/token` }));
    else res.end(JSON.stringify({ access_token: 'trap-token', token_type: 'Bearer', expires_in: 3600 }));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.2', r));
  t.defer(() => new Promise((r) => srv.close(r)));
  trap.base = `http://127.0.0.2:${srv.address().port}`;
  // an allowed issuer whose metadata names the metadata address as its token endpoint
  const meta = http.createServer((req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ issuer: `http://127.0.0.1:${meta.address().port}`, token_endpoint: 'http://169.254.169.254/latest/token' }));
  });
  await new Promise((r) => meta.listen(0, '127.0.0.1', r));
  t.defer(() => new Promise((r) => meta.close(r)));
  const cc = { type: 'client_credentials', clientId: 'gw', clientSecret: 's3cret-value' };
  const only = { egress: { allowCidrs: ['127.0.0.1/32'] } };
  const gw = await t.gateway({
    config: {
      mcpServers: {
        tokenurl: { url: u.url, auth: { ...cc, tokenUrl: `${trap.base}/token` } },
        issuer: { url: u.url, auth: { ...cc, issuer: trap.base } },
        exchange: { url: u.url, auth: { ...cc, type: 'token_exchange', tokenUrl: `${trap.base}/token` } },
        othorigin: { url: u.url, auth: { ...cc, issuer: `http://127.0.0.1:${meta.address().port}` } },
      },
      gateway: only,
    },
  });
  const rz = await waitReadyz(gw, (j) => j.upstreams.every((x) => x.error));
  const err = Object.fromEntries(rz.upstreams.map((x) => [x.name, x.error]));
  assert.match(err.tokenurl, /token endpoint http:\/\/127\.0\.0\.2:\d+\/token could not be reached: 127\.0\.0\.2: refused: .*127\.0\.0\.2 \(loopback\).*gateway\.egress\.allowCidrs/);
  assert.match(err.exchange, /token endpoint .* could not be reached: .*127\.0\.0\.2 \(loopback\)/);
  assert.match(err.issuer, /issuer http:\/\/127\.0\.0\.2:\d+'s metadata could not be fetched: .*127\.0\.0\.2 \(loopback\).*allowCidrs/);
  assert.match(err.othorigin, /names a token_endpoint of another origin \(http:\/\/169\.254\.169\.254\/latest\/token\); it is not used/);
  assert.deepEqual(trap.log, [], 'nothing reached the address outside allowCidrs');
  assert.ok(!gw.stderrText().includes('s3cret-value'), 'the client secret in the log');

  // the control: with 127.0.0.0/8 allowed, the same token URL is used (the guard, not the network, refused)
  const gw2 = await t.gateway({
    config: { mcpServers: { tokenurl: { url: u.url, auth: { ...cc, tokenUrl: `${trap.base}/token` } } }, gateway: LOOPBACK },
  });
  await waitReadyz(gw2, (j) => j.upstreams[0].state === 'ready');
  assert.deepEqual(trap.log, ['/token']);
  assert.ok(u.log.some((x) => x.headers && x.headers.authorization === 'Bearer trap-token'), 'the token was used');
});

test('faults: upstream down at start then up, 5xx, slow first byte, endless SSE, 100 MB body, dying mid-stream, 404 on the session', async (t) => {
  const port = await freePort();
  const gw = await t.gateway({
    config: {
      mcpServers: { r: { url: `http://127.0.0.1:${port}/mcp`, timeoutMs: 3000, firstByteTimeoutMs: 1500, maxResponseBytes: 1048576 } },
      gateway: LOOPBACK,
    },
  });
  const down = await waitReadyz(gw, (j) => j.upstreams[0].state === 'backoff');
  assert.match(down.upstreams[0].error, /cannot connect/);
  const u = await upstream(t, { port });
  await waitReadyz(gw, (j) => j.upstreams[0].state === 'ready', 40000);
  const cl = await client(t, gw);
  assert.match(await callError(cl, 'fail', { status: 503 }), /'r' server failed \(HTTP 503\)/);
  assert.match(await callError(cl, 'slow', { ms: 4000 }), /did not answer/);
  assert.match(await callError(cl, 'endless'), /did not answer|in time/);
  const rss0 = Number(fs.readFileSync(`/proc/${gw.pid}/statm`, 'utf8').split(' ')[1]) * 4;
  assert.match(await callError(cl, 'big', { mb: 100 }), /exceeds 1048576 bytes/);
  const rss1 = Number(fs.readFileSync(`/proc/${gw.pid}/statm`, 'utf8').split(' ')[1]) * 4;
  assert.ok(rss1 - rss0 < 64 * 1024, `RSS grew by ${rss1 - rss0} KiB on a 100 MB answer`);
  assert.match(await callError(cl, 'die'), /connection to the 'r' server broke|ended its answer/);
  // the server forgets its sessions: the lost call says so, the next one gets a new session
  await fetch(`http://127.0.0.1:${port}/_control`, { method: 'POST', body: JSON.stringify({ dropSessions: true }) });
  assert.match(await callError(cl, 'echo', { text: 'x' }), /lost its session/);
  await waitFor(async () => (await cl.callTool({ name: 'echo', arguments: { text: 'again' } })).content?.[0]?.text === 'again', {
    what: 'a call on the new upstream session',
  });
  const inits = u.log.filter((x) => x.body.includes('"initialize"'));
  assert.ok(inits.length >= 2, 'a new session was initialized');
});

test('notifications on the upstream GET stream reach clients (tools list_changed)', async (t) => {
  const u = await upstream(t);
  const gw = await t.gateway({ config: { mcpServers: { r: { url: u.url } }, gateway: LOOPBACK } });
  let changed = 0;
  const { ToolListChangedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
  const cl = await client(t, gw, { setup: (c) => c.setNotificationHandler(ToolListChangedNotificationSchema, () => changed++) });
  await cl.listTools();
  await waitFor(() => u.log.some((x) => x.method === 'GET'), { what: 'the upstream GET stream' });
  await sleep(100);
  await fetch(u.url.replace('/mcp', '/_control'), {
    method: 'POST',
    body: JSON.stringify({ notify: { jsonrpc: '2.0', method: 'notifications/tools/list_changed' } }),
  });
  await waitFor(() => changed > 0, { what: 'list_changed at the client' });
});

test('a mixed config: a stdio server and server-everything over Streamable HTTP served as one endpoint; check --probe', async (t) => {
  if (!fs.existsSync(EVERYTHING_JS)) throw new Error(`${EVERYTHING_JS} missing: run npm ci in test/e2e`);
  const port = await freePort();
  const ev = spawn(process.execPath, [EVERYTHING_JS, 'streamableHttp'], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  t.defer(() => ev.kill('SIGKILL'));
  await waitFor(
    () =>
      new Promise((res) => {
        const s = net.connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
        s.on('error', () => res(false));
      }),
    { timeout: 15000, what: 'server-everything listening' },
  );
  const config = {
    mcpServers: { local: testserver(), everything: { type: 'streamable-http', serverUrl: `http://127.0.0.1:${port}/mcp` } },
    gateway: LOOPBACK,
  };
  const gw = await t.gateway({ config });
  const cl = await client(t, gw);
  const names = (await cl.listTools()).tools.map((x) => x.name);
  assert.ok(names.includes('everything__echo') && names.some((n) => n.startsWith('local__')), names.join(','));
  assert.equal(textOf(await cl.callTool({ name: 'everything__echo', arguments: { message: 'hi' } })), 'Echo: hi');
  assert.match(textOf(await cl.callTool({ name: 'everything__get-sum', arguments: { a: 2, b: 40 } })), /42/);
  const cfg = writeConfig(config);
  t.defer(() => cfg.remove());
  const out = execFileSync(MG_BINARY, ['check', '--config', cfg.file, '--probe'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(out, /everything: remote, state ready, era 2025-\d\d-\d\d \(Streamable HTTP\), over http\/1\.1, \d+ tools/);
  assert.match(out, /local: stdio, state ready, era [0-9-]+ \(stdio\), \d+ tools/);
});

test('TLS: a test CA given as "ca" verifies the server; without it the certificate is refused; HTTP/2 where the server offers it', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mg-tls-'));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const sh = (args) => execFileSync('openssl', args, { cwd: dir, stdio: 'ignore' });
  sh(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '1', '-subj', '/CN=mcpgate test CA', '-keyout', 'ca.key', '-out', 'ca.pem']);
  sh(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=localhost', '-keyout', 'srv.key', '-out', 'srv.csr']);
  fs.writeFileSync(path.join(dir, 'ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  sh(['x509', '-req', '-in', 'srv.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '1', '-extfile', 'ext.cnf', '-out', 'srv.pem']);
  const tls = { cert: fs.readFileSync(path.join(dir, 'srv.pem')), key: fs.readFileSync(path.join(dir, 'srv.key')) };
  const u = await upstream(t, { tls });
  const u2 = await upstream(t, { tls, h2: true }); // offers h2 by ALPN, accepts HTTP/1.1 too
  const ca = path.join(dir, 'ca.pem');
  const gw = await t.gateway({
    config: {
      mcpServers: { good: { url: u.url, ca }, bad: { url: u.url }, two: { url: u2.url, ca } },
      gateway: LOOPBACK,
    },
  });
  const up = (j, n) => j.upstreams.find((x) => x.name === n);
  const rz = await waitReadyz(gw, (j) => up(j, 'good').state === 'ready' && up(j, 'two').state === 'ready' && up(j, 'bad').error);
  assert.match(up(rz, 'bad').error, /certificate|SSL|issuer/i);
  assert.equal(up(rz, 'two').http, 'h2', 'HTTP/2 is used where the server offers it');
  assert.equal(up(rz, 'good').http, 'http/1.1', 'an HTTP/1.1-only TLS server');
  const cl = await client(t, gw);
  assert.equal(textOf(await cl.callTool({ name: 'good__echo', arguments: { text: 'tls' } })), 'tls');
  // over h2: a call, and one answered as an SSE stream (progress notifications, then the result)
  assert.equal(textOf(await cl.callTool({ name: 'two__echo', arguments: { text: 'h2' } })), 'h2');
  const progress = [];
  const pr = await cl.request({ method: 'tools/call', params: { name: 'two__progress', arguments: { steps: 2 } } }, CallToolResultSchema, {
    onprogress: (p) => progress.push(p.progress),
  });
  assert.equal(textOf(pr), 'done');
  assert.deepEqual(progress, [1, 2]);
  const posts = u2.log.filter((x) => x.method === 'POST');
  assert.ok(posts.length >= 3 && posts.every((x) => x.httpVersion === '2.0'), JSON.stringify(posts.map((x) => x.httpVersion)));
  const status = await (await fetch(`${gw.base}/status`)).text();
  assert.match(status, /Streamable HTTP\), h2/);
  const pc = writeConfig({ mcpServers: { two: { url: u2.url, ca } }, gateway: LOOPBACK });
  t.defer(() => pc.remove());
  // async: the fixture answers from this process
  const out = await new Promise((res, rej) => execFile(MG_BINARY, ['check', '--probe', '--config', pc.file], { encoding: 'utf8' }, (e, so) => (e ? rej(e) : res(so))));
  assert.match(out, /two: remote, state ready, era 2025-11-25 \(Streamable HTTP\), over h2, \d+ tools/);
});

test('config: remote entries are checked (bad type, stdio keys, URL credentials, tenantCredentials without tenant isolation, bad CIDR)', async () => {
  const cfg = writeConfig({
    mcpServers: {
      a: { url: 'http://x.example/mcp', type: 'websocket' },
      b: { url: 'http://x.example/mcp', command: 'npx' },
      c: { url: 'http://user:pw@x.example/mcp' },
      d: { url: 'http://x.example/mcp', tenantCredentials: { t: { headers: { Authorization: 'x' } } } },
      e: { httpUrl: 'ftp://x.example/' },
      f: { url: 'https://x.example/mcp', headers: { Host: 'evil' } },
    },
    gateway: { egress: { allowCidrs: ['10.0.0.0/33'] } },
  });
  let out = '';
  try {
    execFileSync(MG_BINARY, ['check', '--config', cfg.file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    out = e.stdout + e.stderr;
  }
  cfg.remove();
  assert.match(out, /server 'a': type: must be "http"/);
  assert.match(out, /server 'b': command: belongs to a stdio server/);
  assert.match(out, /server 'c': url: credentials in the URL/);
  assert.match(out, /server 'd': tenantCredentials needs "isolation": "tenant"/);
  assert.match(out, /server 'e': httpUrl: must be an http:\/\/ or https:\/\/ URL/);
  assert.match(out, /server 'f': headers "Host": is set by the gateway itself/);
  assert.match(out, /allowCidrs\[0\]: the prefix length/);
});

test('era detection: a 2026-07-28-only server is found by server/discover and served statelessly to a 2025 client', async (t) => {
  const u = await upstream(t, { modern: true });
  const gw = await t.gateway({ config: { mcpServers: { m: { url: u.url, headers: { Authorization: 'Bearer upstream-key' } } }, gateway: LOOPBACK } });
  const rz = await waitReadyz(gw, (j) => j.upstreams[0].state === 'ready');
  assert.equal(rz.upstreams[0].era, '2026-07-28 (stateless)');
  const cl = await client(t, gw);
  assert.deepEqual((await cl.listTools()).tools.map((x) => x.name).sort(), ['ask', 'askboth', 'askloop', 'echo', 'logs', 'whoami']);
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'hi' } })), 'modern: hi');
  assert.equal(textOf(await cl.callTool({ name: 'whoami', arguments: {} })), 'Bearer upstream-key');
  // never initialize, never a session, GET or DELETE; every POST carried the headers the server checks
  assert.ok(!u.log.some((x) => x.body.includes('"initialize"')), 'initialize sent to a 2026-only server');
  assert.ok(u.log.every((x) => x.method === 'POST' && !x.headers['mcp-session-id']));
  assert.ok(u.log.every((x) => x.headers['mcp-protocol-version'] === '2026-07-28' && x.headers['mcp-method']));
  await gw.stop();
  assert.ok(!u.log.some((x) => x.method === 'DELETE'));
});

async function startEverything(t, mode) {
  if (!fs.existsSync(EVERYTHING_JS)) throw new Error(`${EVERYTHING_JS} missing: run npm ci in test/e2e`);
  const port = await freePort();
  const ev = spawn(process.execPath, [EVERYTHING_JS, mode], { env: { ...process.env, PORT: String(port) }, stdio: 'ignore' });
  t.defer(() => ev.kill('SIGKILL'));
  await waitFor(
    () =>
      new Promise((res) => {
        const s = net.connect(port, '127.0.0.1', () => (s.destroy(), res(true)));
        s.on('error', () => res(false));
      }),
    { timeout: 15000, what: `server-everything ${mode} listening` },
  );
  return port;
}

test('server-everything in its sse mode: type "sse", and found by the fallback (initialize refused, then HTTP+SSE)', async (t) => {
  const port = await startEverything(t, 'sse');
  const gw = await t.gateway({
    config: {
      mcpServers: { typed: { type: 'sse', url: `http://127.0.0.1:${port}/sse` }, probed: { url: `http://127.0.0.1:${port}/sse` } },
      gateway: LOOPBACK,
    },
  });
  const rz = await waitReadyz(gw, (j) => j.upstreams.every((x) => x.state === 'ready'), 20000);
  for (const u of rz.upstreams) assert.match(u.era, /\(HTTP\+SSE\)$/, JSON.stringify(u));
  const progress = [];
  const cl = await client(t, gw);
  assert.equal(textOf(await cl.callTool({ name: 'typed__echo', arguments: { message: 'old' } })), 'Echo: old');
  assert.equal(textOf(await cl.callTool({ name: 'probed__echo', arguments: { message: 'probed' } })), 'Echo: probed');
  const r = await cl.request(
    { method: 'tools/call', params: { name: 'typed__trigger-long-running-operation', arguments: { duration: 1, steps: 3 } } },
    CallToolResultSchema,
    { onprogress: (p) => progress.push(p.progress) },
  );
  assert.match(textOf(r), /completed/i);
  assert.deepEqual(progress, [1, 2, 3]);
});

test("OAuth client credentials: the gateway's own token (resource = the server URL), cached, refreshed near expiry and once on a 401; never the client's", async (t) => {
  const idp = await startIdp({ audience: 'unused', clientId: 'gw-client', clientSecret: 'gw-secret' });
  t.defer(() => idp.stop());
  idp.tokenTtl = 3600;
  const u = await upstream(t, { checkAuth: (req) => idp.issued.has((req.headers.authorization || '').replace(/^Bearer /, '')) });
  const client = mkToken('acme', 'alice');
  const cfg = (auth) => ({
    mcpServers: { r: { url: u.url, auth: { type: 'client_credentials', clientId: 'gw-client', clientSecret: '${env:CC_SECRET}', scope: 'mcp:tools', ...auth } } },
    gateway: { ...LOOPBACK, auth: { tokens: [client.entry] } },
  });
  const gw = await t.gateway({ config: cfg({ issuer: idp.issuer }), env: { CC_SECRET: 'gw-secret' } });
  const cl = await (async () => {
    const c = await connect(gw.url, { requestInit: { headers: bearer(client.token) } });
    t.defer(() => c.close());
    return c.client;
  })();
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'a' } })), 'a');
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'b' } })), 'b');
  assert.equal(idp.stats.tokenRequests.length, 1, 'the token is cached');
  const tr = idp.stats.tokenRequests[0];
  assert.equal(tr.grant_type, 'client_credentials');
  assert.equal(tr.resource, u.url, 'RFC 8707 resource = the server URL');
  assert.equal(tr.scope, 'mcp:tools');
  // revoked at the IdP: the upstream answers 401, the gateway gets a new token and the call succeeds
  idp.issued.clear();
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'c' } })), 'c');
  assert.equal(idp.stats.tokenRequests.length, 2, 'one new token after the 401');
  const seen = JSON.stringify(u.log);
  assert.ok(!seen.includes(client.token), "the client's token reached the upstream");
  assert.ok(!gw.stderrText().includes('gw-secret') && ![...idp.issued.keys()].some((k) => gw.stderrText().includes(k)), 'a secret in the log');

  // short-lived tokens are refreshed before they expire; a wrong secret is a clear error
  idp.tokenTtl = 2;
  const gw2 = await t.gateway({ config: cfg({ tokenUrl: `${idp.base}/token` }), env: { CC_SECRET: 'gw-secret' } });
  const c2 = await connect(gw2.url, { requestInit: { headers: bearer(client.token) } });
  t.defer(() => c2.close());
  const before = idp.stats.tokenRequests.length;
  await c2.client.callTool({ name: 'echo', arguments: { text: 'x' } });
  await sleep(2100);
  assert.equal(textOf(await c2.client.callTool({ name: 'echo', arguments: { text: 'y' } })), 'y');
  assert.ok(idp.stats.tokenRequests.length >= before + 1, 'refreshed before expiry');
  const gw3 = await t.gateway({ config: cfg({ tokenUrl: `${idp.base}/token` }), env: { CC_SECRET: 'wrong' } });
  const rz = await waitReadyz(gw3, (j) => j.upstreams[0].error);
  assert.match(rz.upstreams[0].error, /token endpoint .* answered HTTP 401: invalid_client/);
});

test('isolation "session": an upstream session per client session, DELETE when the client deletes; cancellation forwarded; the GET stream resumes with Last-Event-ID', async (t) => {
  const u = await upstream(t);
  const gw = await t.gateway({ config: { mcpServers: { r: { url: u.url, isolation: 'session' } }, gateway: LOOPBACK } });
  const a = await connect(gw.url);
  const b = await connect(gw.url);
  await a.client.callTool({ name: 'echo', arguments: { text: 'a' } });
  await b.client.callTool({ name: 'echo', arguments: { text: 'b' } });
  const sids = new Set(u.log.filter((x) => x.headers['mcp-session-id']).map((x) => x.headers['mcp-session-id']));
  assert.equal(sids.size, 2, 'one upstream session per client session');
  // a cancelled call: notifications/cancelled reaches the upstream with the upstream's request id
  const ac = new AbortController();
  const p = a.client.callTool({ name: 'slow', arguments: { ms: 3000 } }, undefined, { signal: ac.signal }).catch((e) => e);
  await waitFor(() => u.log.some((x) => x.body.includes('"slow"')), { what: 'the slow call upstream' });
  const slowId = JSON.parse(u.log.find((x) => x.body.includes('"slow"')).body).id;
  ac.abort('user gave up');
  await p;
  await waitFor(() => u.log.some((x) => x.body.includes('notifications/cancelled') && JSON.parse(x.body).params?.requestId === slowId), {
    what: 'notifications/cancelled upstream',
  });
  // the upstream drops its GET streams: the gateway reconnects naming the last event it got
  await waitFor(() => u.log.filter((x) => x.method === 'GET').length >= 2, { what: 'two GET streams' });
  await fetch(u.url.replace('/mcp', '/_control'), { method: 'POST', body: JSON.stringify({ notify: { jsonrpc: '2.0', method: 'notifications/tools/list_changed' } }) });
  await sleep(200);
  await fetch(u.url.replace('/mcp', '/_control'), { method: 'POST', body: JSON.stringify({ closeStreams: true }) });
  await waitFor(() => u.log.some((x) => x.method === 'GET' && /^ev-\d+$/.test(x.headers['last-event-id'] || '')), {
    timeout: 10000,
    what: 'a GET with Last-Event-ID',
  });
  // the client deletes its session: its upstream session is deleted too
  const sa = u.log.find((x) => x.body.includes('"text":"a"')).headers['mcp-session-id'];
  await a.close();
  await waitFor(() => u.log.some((x) => x.method === 'DELETE' && x.headers['mcp-session-id'] === sa), { what: 'DELETE upstream' });
  await b.close();
});

test('a list is retried after a 5xx; five failures in a row open the circuit breaker until a new session starts', async (t) => {
  const u = await upstream(t);
  const gw = await t.gateway({ config: { mcpServers: { r: { url: u.url } }, gateway: LOOPBACK } });
  await waitReadyz(gw, (j) => j.upstreams[0].state === 'ready');
  await fetch(u.url.replace('/mcp', '/_control'), { method: 'POST', body: JSON.stringify({ failLists: 1 }) });
  const cl = await client(t, gw);
  assert.ok((await cl.listTools()).tools.length > 0, 'the list after one 503');
  const lists = u.log.filter((x) => x.body.includes('"tools/list"'));
  assert.ok(lists.length >= 2, `tools/list sent ${lists.length} times`);
  for (let i = 0; i < 5; i++) assert.match(await callError(cl, 'fail', { status: 502 }), /HTTP 502/);
  await gw.waitLog((l) => l.msg === 'remote upstream unavailable' && /circuit breaker is open/.test(l.error), { what: 'the breaker opening' });
  await waitReadyz(gw, (j) => j.upstreams[0].state === 'ready' && j.upstreams[0].breaker === 'closed');
  assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text: 'back' } })), 'back');
});

test("RFC 8693 token exchange: each caller's call carries a token exchanged for its own, never the raw token; a refused exchange fails that caller only", async (t) => {
  const idp = await startIdp({ audience: 'unused', clientId: 'gw-client', clientSecret: 'gw-secret' });
  t.defer(() => idp.stop());
  const u = await upstream(t, { checkAuth: (req) => idp.issued.has((req.headers.authorization || '').replace(/^Bearer /, '')) });
  const alice = mkToken('acme', 'alice');
  const bob = mkToken('acme', 'bob');
  const gw = await t.gateway({
    config: {
      mcpServers: { r: { url: u.url, auth: { type: 'token_exchange', tokenUrl: `${idp.base}/token`, clientId: 'gw-client', clientSecret: 'gw-secret' } } },
      gateway: { ...LOOPBACK, auth: { tokens: [alice.entry, bob.entry] } },
    },
  });
  const ca = await connect(gw.url, { requestInit: { headers: bearer(alice.token) } });
  t.defer(() => ca.close());
  const cb = await connect(gw.url, { requestInit: { headers: bearer(bob.token) } });
  t.defer(() => cb.close());
  const wa = textOf(await ca.client.callTool({ name: 'whoami', arguments: {} }));
  const wb = textOf(await cb.client.callTool({ name: 'whoami', arguments: {} }));
  assert.match(wa, /^Bearer te_/);
  assert.equal(idp.issued.get(wa.slice(7)).subject, alice.token, "alice's call carries the token exchanged for alice's");
  assert.equal(idp.issued.get(wb.slice(7)).subject, bob.token);
  assert.equal(idp.issued.get(wa.slice(7)).resource, u.url);
  assert.equal(textOf(await ca.client.callTool({ name: 'whoami', arguments: {} })), wa, 'cached per caller');
  const seen = JSON.stringify(u.log);
  assert.ok(!seen.includes(alice.token) && !seen.includes(bob.token), 'a raw client token reached the upstream');
  // the IdP refuses to exchange bob's token from now on: bob's new calls fail, alice's go on
  idp.refuseSubjects.add(bob.token);
  idp.issued.delete(wb.slice(7));
  assert.match(await callError(cb.client, 'whoami'), /token exchange .* refused the caller's token/);
  assert.equal(textOf(await ca.client.callTool({ name: 'whoami', arguments: {} })), wa);
});

test("a key in a remote server's URL query never shows: not in the log, /readyz, /status or `mcpgate check`", async (t) => {
  const port = await freePort(); // nothing listens: every attempt fails and is logged
  const secret = 'qk_' + crypto.randomBytes(12).toString('hex');
  const config = { mcpServers: { q: { url: `http://127.0.0.1:${port}/mcp?api_key=${secret}` } }, gateway: LOOPBACK };
  const gw = await t.gateway({ config });
  const down = await waitReadyz(gw, (j) => j.upstreams[0].state === 'backoff');
  assert.match(down.upstreams[0].error, /cannot connect/);
  assert.match(down.upstreams[0].error, /\/mcp\?\.\.\./, 'the URL is shown without its query');
  const status = await (await fetch(`${gw.base}/status`)).text();
  const cfg = writeConfig(config);
  t.defer(() => cfg.remove());
  let out = '';
  try {
    out = execFileSync(MG_BINARY, ['check', '--config', cfg.file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (e) {
    out = String(e.stdout) + String(e.stderr);
  }
  for (const [where, text] of [['log', gw.stderrText()], ['/readyz', JSON.stringify(down)], ['/status', status], ['check', out]])
    assert.ok(!text.includes(secret), `${where} shows the URL's key`);
});

test('a call carries its W3C trace context to a remote upstream as traceparent/tracestate headers (and in _meta)', async (t) => {
  const u = await upstream(t);
  const gw = await t.gateway({ config: { mcpServers: { r: { url: u.url } }, gateway: LOOPBACK } });
  const cl = await client(t, gw);
  const trace = crypto.randomBytes(16).toString('hex');
  const parent = crypto.randomBytes(8).toString('hex');
  const tp = `00-${trace}-${parent}-01`;
  const r = await cl.callTool({ name: 'echo', arguments: { text: 'traced' }, _meta: { traceparent: tp, tracestate: 'vendor=abc' } });
  assert.equal(textOf(r), 'traced');
  const post = u.log.find((x) => x.method === 'POST' && x.body.includes('"traced"'));
  assert.ok(post, 'the call reached the upstream');
  assert.equal(post.headers.traceparent, tp, 'the header carries the context the call has');
  assert.equal(post.headers.tracestate, 'vendor=abc');
  assert.equal(JSON.parse(post.body).params._meta.traceparent, tp);
  // a value that could split a header line never becomes one
  await cl.callTool({ name: 'echo', arguments: { text: 'bad' }, _meta: { traceparent: `00-${trace}-${parent}-01\r\nx-injected: 1` } });
  const bad = u.log.find((x) => x.method === 'POST' && x.body.includes('"bad"'));
  assert.equal(bad.headers.traceparent, undefined);
  assert.equal(bad.headers['x-injected'], undefined);
});

test('with gateway.tracing, a remote call carries its upstream span\'s context in _meta and as headers; a client\'s _meta keys are kept', async (t) => {
  const u = await upstream(t);
  const rcv = await startReceiver(t);
  const gw = await t.gateway({
    config: { mcpServers: { r: { url: u.url } }, gateway: { ...LOOPBACK, tracing: { endpoint: rcv.url, sampleRatio: 1 } } },
  });
  const trace = crypto.randomBytes(16).toString('hex');
  const parent = crypto.randomBytes(8).toString('hex');
  const headers = { traceparent: `00-${trace}-${parent}-01`, tracestate: 'vendor=abc' };
  const cl = await client(t, gw, { requestInit: { headers } });
  const seen = [];
  for (const [text, opts] of [['plain', undefined], ['progress', { onprogress: () => {} }]]) {
    assert.equal(textOf(await cl.callTool({ name: 'echo', arguments: { text } }, undefined, opts)), text);
    const post = u.log.find((x) => x.method === 'POST' && x.body.includes(`"${text}"`));
    assert.ok(post, 'the call reached the upstream');
    const params = JSON.parse(post.body).params;
    const tp = params._meta.traceparent;
    assert.match(tp, new RegExp(`^00-${trace}-[0-9a-f]{16}-01$`), 'the call\'s trace, the gateway\'s span');
    assert.notEqual(tp.split('-')[2], parent);
    assert.equal(post.headers.traceparent, tp, 'the header carries what _meta carries');
    assert.equal(params._meta.tracestate, 'vendor=abc');
    assert.equal(post.headers.tracestate, 'vendor=abc');
    if (opts) assert.ok(params._meta.progressToken !== undefined, `the client's progressToken is kept: ${post.body}`);
    else assert.deepEqual(Object.keys(params), ['name', 'arguments', '_meta'], post.body);
    seen.push(tp);
  }
  assert.notEqual(seen[0], seen[1], 'each call has its own upstream span');
  // The upstream spans themselves: a remote upstream is reached over TCP, not a pipe.
  const ids = seen.map((tp) => tp.split('-')[2]);
  const spans = await rcv.waitSpans((all) => ids.every((id) => all.some((x) => x.spanId === id)), 'the upstream spans');
  for (const id of ids) {
    const up = spans.find((x) => x.spanId === id);
    assert.equal(up.kind, 3, 'a client span');
    assert.equal(up.attrs['network.transport'], 'tcp');
    assert.equal(up.attrs['mcpgate.server'], 'r');
  }
});

test("a remote result reaches the client as the upstream wrote it, with the client's id (integer or string): JSON or one SSE event, canonical text or not, isError; an answer to another id is not taken", async (t) => {
  const u = await upstream(t);
  const gw = await t.gateway({ config: { mcpServers: { r: { url: u.url } }, gateway: LOOPBACK } });
  const post = async (msg, sid) => {
    const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
    if (sid) Object.assign(headers, { 'mcp-session-id': sid, 'mcp-protocol-version': '2025-11-25' });
    const r = await fetch(gw.url, { method: 'POST', headers, body: JSON.stringify(msg) });
    const text = await r.text();
    const sse = (r.headers.get('content-type') || '').startsWith('text/event-stream');
    const body = sse
      ? text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => JSON.parse(l.slice(6))).find((m) => m.id !== undefined)
      : text ? JSON.parse(text) : null;
    return { sid: r.headers.get('mcp-session-id'), body, text };
  };
  const { sid } = await post({ jsonrpc: '2.0', id: 0, method: 'initialize', params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'raw', version: '1' } } });
  assert.ok(sid, 'a session');
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' }, sid);
  const bodies = {
    canonical: String.raw`{"jsonrpc":"2.0","id":{ID},"result":{"content":[{"type":"text","text":"café \"q\"\n\u001F"}]}}`,
    spaced: String.raw`{ "jsonrpc": "2.0", "id": {ID}, "result": { "content": [{"type":"text","text":"a\/b \u00e9"}], "score": 1.5 } }`,
    isError: String.raw`{"jsonrpc":"2.0","id":{ID},"result":{"content":[{"type":"text","text":"no"}],"isError":true}}`,
    idFirst: String.raw`{"id":{ID},"result":{"content":[]},"jsonrpc":"2.0"}`,
  };
  for (const [name, body] of Object.entries(bodies))
    for (const sse of [false, true])
      for (const id of [7, 's-1']) {
        const r = await post({ jsonrpc: '2.0', id, method: 'tools/call', params: { name: 'bytes', arguments: { body, sse } } }, sid);
        const want = JSON.parse(body.replaceAll('{ID}', '1')).result;
        assert.deepEqual(r.body?.id, id, `${name} sse=${sse} id=${id}: ${r.text.slice(0, 300)}`);
        assert.deepEqual(r.body?.result, want, `${name} sse=${sse} id=${id}: ${r.text.slice(0, 300)}`);
      }
  // a result for an id the gateway did not send: not this call's answer
  const other = await post({ jsonrpc: '2.0', id: 9, method: 'tools/call', params: { name: 'bytes', arguments: { body: '{"jsonrpc":"2.0","id":987654,"result":{"content":[]}}' } } }, sid);
  assert.equal(other.body?.id, 9);
  assert.ok(other.body?.error && !other.body.result, other.text.slice(0, 300));
  assert.match(other.body.error.message, /without a response/);
});

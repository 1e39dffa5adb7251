#!/usr/bin/env node
// Tool-definition token benchmark (issue #8), on real catalogs recorded from npm servers
// (test/fixture/catalogs/, served by build/mcpgate-testserver --catalog through build/mcpgate).
//
//   cd bench/tokens && npm ci && node tokens.mjs [--json FILE] [--verbose]
//
// Reports:
//   1. the estimator (src/toolsearch/tokens.c, via `mcpgate tools --json --definitions`) against a
//      real BPE tokenizer (gpt-tokenizer: o200k_base and cl100k_base), per tool and in total;
//   2. the initial tools/list of the gateway in mode "all" and mode "lazy" (estimated, and measured
//      with o200k_base on the actual response), and the cut;
//   3. search_tools over the lazy gateway: top-5 hit rate of the queries in
//      test/fixture/catalogs/queries.json, with every miss and what was returned instead.
// Exit status 0 when the targets hold (>= 150 tools, lazy list <= 1500 estimated tokens and >= 97%
// cut, >= 60 queries with >= 90% top-5 hits), 1 otherwise.
import { spawn, execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { encode as o200k } from 'gpt-tokenizer/encoding/o200k_base';
import { encode as cl100k } from 'gpt-tokenizer/encoding/cl100k_base';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const REPO = path.resolve(HERE, '../..');
const BINARY = path.resolve(process.env.MG_BINARY || path.join(REPO, 'build/mcpgate'));
const TESTSERVER = path.resolve(process.env.MG_TESTSERVER || path.join(REPO, 'build/mcpgate-testserver'));
const CATALOGS = path.join(REPO, 'test/fixture/catalogs');
const argv = process.argv.slice(2);
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : null;
const verbose = argv.includes('--verbose');

const TARGET = { tools: 150, lazyTokens: 1500, cut: 97, queries: 60, hitRate: 90 };

function catalogConfig(tools) {
  const mcpServers = {};
  for (const f of fs.readdirSync(CATALOGS).sort()) {
    if (!f.endsWith('.json') || f === 'queries.json') continue;
    const name = f.slice(0, -5);
    mcpServers[name] = { command: TESTSERVER, args: ['--name', name, '--catalog', path.join(CATALOGS, f)] };
  }
  return { mcpServers, gateway: { tools } };
}

function writeConfig(cfg) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-tokens-'));
  const file = path.join(dir, 'config.json');
  fs.writeFileSync(file, JSON.stringify(cfg, null, 1));
  return { file, remove: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

async function startGateway(cfgFile) {
  const port = await freePort();
  const proc = spawn(BINARY, ['serve', '--config', cfgFile, '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  proc.stderr.on('data', (d) => (stderr += d));
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      const r = await fetch(`${base}/readyz`);
      const j = await r.json();
      if (j.status === 'ok') return { proc, base, url: `${base}/mcp`, stderr: () => stderr };
    } catch {
      /* not listening yet */
    }
    await sleep(50);
  }
  proc.kill('SIGKILL');
  throw new Error(`gateway did not become ready: ${stderr.slice(-2000)}`);
}

async function stopGateway(gw) {
  const done = new Promise((r) => gw.proc.on('exit', r));
  gw.proc.kill('SIGTERM');
  await done;
}

// A minimal session-era MCP client over fetch (JSON answers; the gateway answers these itself).
async function session(url) {
  let id = 0;
  const headers = { 'content-type': 'application/json', accept: 'application/json, text/event-stream' };
  const post = async (msg) => {
    const r = await fetch(url, { method: 'POST', headers, body: JSON.stringify(msg) });
    const text = await r.text();
    if (r.status === 202) return null;
    if (!r.ok) throw new Error(`${msg.method}: HTTP ${r.status}: ${text}`);
    const body = r.headers.get('content-type')?.startsWith('text/event-stream')
      ? JSON.parse(text.split('\n').filter((l) => l.startsWith('data: ')).map((l) => l.slice(6)).pop())
      : JSON.parse(text);
    if (body.error) throw new Error(`${msg.method}: ${JSON.stringify(body.error)}`);
    return { body, headers: r.headers };
  };
  const init = await post({
    jsonrpc: '2.0',
    id: ++id,
    method: 'initialize',
    params: { protocolVersion: '2025-11-25', capabilities: {}, clientInfo: { name: 'bench-tokens', version: '1' } },
  });
  headers['mcp-session-id'] = init.headers.get('mcp-session-id');
  headers['mcp-protocol-version'] = '2025-11-25';
  await post({ jsonrpc: '2.0', method: 'notifications/initialized' });
  return {
    request: async (method, params) => (await post({ jsonrpc: '2.0', id: ++id, method, params })).body.result,
    close: () => fetch(url, { method: 'DELETE', headers }).catch(() => {}),
  };
}

const pct = (x) => `${x.toFixed(1)}%`;
const fmt = (n) => n.toLocaleString('en-US');

async function main() {
  for (const f of [BINARY, TESTSERVER]) if (!fs.existsSync(f)) throw new Error(`${f} not found: build first (make)`);
  const report = {};

  // 1. Estimator vs BPE.
  const all = writeConfig(catalogConfig({ mode: 'all' }));
  const measured = JSON.parse(
    execFileSync(BINARY, ['tools', '--config', all.file, '--json', '--definitions'], { maxBuffer: 64 << 20 }).toString(),
  );
  let est = 0,
    o = 0,
    c = 0,
    apeO = 0,
    apeC = 0,
    worst = null,
    n = 0;
  const perServer = [];
  for (const s of measured.servers) {
    let se = 0,
      so = 0;
    for (const t of s.tools) {
      const text = JSON.stringify(t.definition);
      const to = o200k(text).length,
        tc = cl100k(text).length;
      est += t.tokens;
      o += to;
      c += tc;
      se += t.tokens;
      so += to;
      const e = Math.abs(t.tokens - to) / to;
      apeO += e;
      apeC += Math.abs(t.tokens - tc) / tc;
      if (!worst || e > worst.err) worst = { tool: t.exposed, est: t.tokens, o200k: to, err: e };
      n++;
    }
    perServer.push({ server: s.name, tools: s.tools.length, estimated: se, o200k: so, errorPercent: so ? (100 * (se - so)) / so : 0 });
  }
  report.estimator = {
    tools: n,
    estimated: est,
    o200k: o,
    cl100k: c,
    totalErrorPercentO200k: (100 * (est - o)) / o,
    totalErrorPercentCl100k: (100 * (est - c)) / c,
    meanAbsErrorPercentO200k: (100 * apeO) / n,
    meanAbsErrorPercentCl100k: (100 * apeC) / n,
    worstTool: worst && { ...worst, err: 100 * worst.err },
    perServer,
  };
  report.catalog = {
    servers: measured.servers.length,
    tools: measured.totals.tools,
    estimatedTokens: measured.totals.tokens,
    compactTokens: measured.totals.compactTokens,
    compactCutPercent: measured.totals.compactCutPercent,
    lazyEstimatedTokens: measured.lazy.tokens,
    warnings: measured.warnings,
  };

  // 2. Initial tools/list through the gateway, both modes.
  const lazy = writeConfig(catalogConfig({ mode: 'lazy' }));
  const lazyEst = JSON.parse(execFileSync(BINARY, ['tools', '--config', lazy.file, '--json']).toString()).lazy.tokens;
  const lists = {};
  for (const [mode, cfg] of [['all', all], ['lazy', lazy]]) {
    const gw = await startGateway(cfg.file);
    try {
      const s = await session(gw.url);
      const r = await s.request('tools/list', {});
      lists[mode] = { tools: r.tools.length, o200k: o200k(JSON.stringify(r.tools)).length, names: r.tools.map((t) => t.name) };
      if (mode === 'lazy') {
        // 3. Search quality.
        const { queries } = JSON.parse(fs.readFileSync(path.join(CATALOGS, 'queries.json'), 'utf8'));
        const misses = [];
        let hits = 0,
          top1 = 0;
        const t0 = process.hrtime.bigint();
        for (const { q, expect } of queries) {
          const res = await s.request('tools/call', { name: 'search_tools', arguments: { query: q, limit: 5 } });
          const text = res.content[0].text;
          const json = text.indexOf('\n') >= 0 ? text.slice(text.indexOf('\n') + 1) : '[]';
          const got = JSON.parse(json).map((t) => t.name);
          const hit = got.some((g) => expect.includes(g));
          if (hit) hits++;
          else misses.push({ query: q, expected: expect, got });
          if (expect.includes(got[0])) top1++;
          if (verbose) console.log(`${hit ? 'HIT ' : 'MISS'} ${q} -> ${got.join(', ')}`);
        }
        const ms = Number(process.hrtime.bigint() - t0) / 1e6;
        report.search = {
          queries: queries.length,
          top5Hits: hits,
          top5HitRatePercent: (100 * hits) / queries.length,
          top1HitRatePercent: (100 * top1) / queries.length,
          meanLatencyMs: ms / queries.length,
          misses,
        };
        const after = await s.request('tools/list', {});
        report.search.toolsListedAfterSearches = after.tools.length;
      }
      await s.close();
    } finally {
      await stopGateway(gw);
    }
  }
  all.remove();
  lazy.remove();
  report.toolsList = {
    all: { tools: lists.all.tools, estimatedTokens: measured.totals.tokens, o200k: lists.all.o200k },
    lazy: { tools: lists.lazy.tools, names: lists.lazy.names, estimatedTokens: lazyEst, o200k: lists.lazy.o200k },
    cutPercentEstimated: 100 * (1 - lazyEst / measured.totals.tokens),
    cutPercentO200k: 100 * (1 - lists.lazy.o200k / lists.all.o200k),
  };

  // Report.
  const e = report.estimator,
    l = report.toolsList,
    q = report.search;
  console.log(`Catalog: ${report.catalog.tools} tools from ${report.catalog.servers} servers (test/fixture/catalogs)`);
  console.log(
    `Estimator vs BPE over ${e.tools} tool definitions: estimated ${fmt(e.estimated)}, o200k_base ${fmt(e.o200k)} ` +
      `(total error ${pct(e.totalErrorPercentO200k)}, mean |error| per tool ${pct(e.meanAbsErrorPercentO200k)}), ` +
      `cl100k_base ${fmt(e.cl100k)} (total ${pct(e.totalErrorPercentCl100k)}, mean |error| ${pct(e.meanAbsErrorPercentCl100k)})`,
  );
  console.log(`  worst tool: ${e.worstTool.tool}: estimated ${e.worstTool.est}, o200k ${e.worstTool.o200k} (${pct(e.worstTool.err)})`);
  for (const s of e.perServer)
    console.log(`  ${s.server.padEnd(20)} ${String(s.tools).padStart(3)} tools  est ${String(s.estimated).padStart(6)}  o200k ${String(s.o200k).padStart(6)}  ${pct(s.errorPercent).padStart(6)}`);
  console.log(
    `Initial tools/list, mode all:  ${l.all.tools} tools, ${fmt(l.all.estimatedTokens)} estimated tokens (${fmt(l.all.o200k)} o200k)`,
  );
  console.log(
    `Initial tools/list, mode lazy: ${l.lazy.tools} tool(s) [${l.lazy.names.join(', ')}], ${fmt(l.lazy.estimatedTokens)} estimated tokens (${fmt(l.lazy.o200k)} o200k)`,
  );
  console.log(`Cut: ${pct(l.cutPercentEstimated)} estimated, ${pct(l.cutPercentO200k)} o200k`);
  console.log(`Compaction (mode all, gateway.tools.compact): ${fmt(report.catalog.compactTokens)} tokens (-${pct(report.catalog.compactCutPercent)})`);
  console.log(
    `search_tools: ${q.top5Hits}/${q.queries} queries find a right tool in the top 5 (${pct(q.top5HitRatePercent)}; top 1: ${pct(q.top1HitRatePercent)}), ${q.meanLatencyMs.toFixed(2)} ms per search over HTTP`,
  );
  for (const m of q.misses) console.log(`  MISS "${m.query}": expected ${m.expected.join(' | ')}; got ${m.got.join(', ') || '(nothing)'}`);
  const ok =
    report.catalog.tools >= TARGET.tools &&
    l.lazy.estimatedTokens <= TARGET.lazyTokens &&
    l.cutPercentEstimated >= TARGET.cut &&
    q.queries >= TARGET.queries &&
    q.top5HitRatePercent >= TARGET.hitRate;
  report.targets = { ...TARGET, met: ok };
  console.log(
    `Targets (>= ${TARGET.tools} tools, lazy <= ${TARGET.lazyTokens} tokens and >= ${TARGET.cut}% cut, >= ${TARGET.queries} queries at >= ${TARGET.hitRate}% top-5): ${ok ? 'MET' : 'NOT MET'}`,
  );
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2) + '\n');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`bench/tokens: ${e.stack || e}`);
  process.exit(2);
});

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
//   3. search_tools over the lazy gateway: top-5 and top-1 hit rates of the query sets --
//      test/fixture/catalogs/queries.json (the project's 85) and the two halves of phrasings.json
//      (issue #15: "tune", studied while tuning, and "heldout", never studied) -- with every miss of
//      the studied sets and what was returned instead (held-out misses are counted, not shown);
//   4. the search index in process (build/mcpgate-searchbench --json --scale 1000): build time,
//      memory and search latency percentiles for the 153 tools and for 1,000 tools (the 489 real
//      tools of test/fixture/catalogs and catalogs/more, then copies), and the hit rates with the
//      336 more real tools as distractors.
// Exit status 0 when the targets hold (>= 150 tools, lazy list <= 1500 estimated tokens and >= 97%
// cut, >= 60 project queries at >= 90% top-5; held-out half >= 90% top-5 and >= 60% top-1; at 1,000
// tools search p99 <= 2 ms, build <= 50 ms, index <= 20 MB, lazy list <= 1500 tokens), 1 otherwise.
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
const SEARCHBENCH = path.resolve(process.env.MG_SEARCHBENCH || path.join(REPO, 'build/mcpgate-searchbench'));
const CATALOGS = path.join(REPO, 'test/fixture/catalogs');
const argv = process.argv.slice(2);
const jsonOut = argv.includes('--json') ? argv[argv.indexOf('--json') + 1] : null;
const verbose = argv.includes('--verbose');

const TARGET = {
  tools: 150,
  lazyTokens: 1500,
  cut: 97,
  queries: 60,
  hitRate: 90,
  heldoutTop5: 90,
  heldoutTop1: 60,
  scaleTools: 1000,
  p99Ms: 2,
  buildMs: 50,
  indexMB: 20,
};

function catalogConfig(tools) {
  const mcpServers = {};
  for (const f of fs.readdirSync(CATALOGS).sort()) {
    if (!f.endsWith('.json') || f === 'queries.json' || f === 'phrasings.json') continue;
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
        // 3. Search quality, per query set.
        const { queries } = JSON.parse(fs.readFileSync(path.join(CATALOGS, 'queries.json'), 'utf8'));
        const phr = JSON.parse(fs.readFileSync(path.join(CATALOGS, 'phrasings.json'), 'utf8'));
        const sets = [
          ['project', queries, true],
          ['tune', phr.tune, true],
          ['heldout', phr.heldout, false],
        ];
        report.search = { sets: {} };
        const t0 = process.hrtime.bigint();
        let total = 0;
        for (const [name, list, studied] of sets) {
          const misses = [];
          let hits = 0,
            top1 = 0;
          for (const { q, expect } of list) {
            const res = await s.request('tools/call', { name: 'search_tools', arguments: { query: q, limit: 5 } });
            const got = res.structuredContent.match === 'none' ? [] : res.structuredContent.tools.map((t) => t.name);
            const hit = got.some((g) => expect.includes(g));
            if (hit) hits++;
            else if (studied) misses.push({ query: q, expected: expect, got });
            if (expect.includes(got[0])) top1++;
            if (verbose && studied) console.log(`${hit ? 'HIT ' : 'MISS'} ${name} ${q} -> ${got.join(', ')}`);
            total++;
          }
          report.search.sets[name] = {
            queries: list.length,
            top5Hits: hits,
            top5HitRatePercent: (100 * hits) / list.length,
            top1Hits: top1,
            top1HitRatePercent: (100 * top1) / list.length,
            misses: studied ? misses : undefined,
          };
        }
        report.search.meanLatencyMsOverHttp = Number(process.hrtime.bigint() - t0) / 1e6 / total;
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

  // 4. The index in process, at 153 and 1,000 tools.
  let index = null;
  if (fs.existsSync(SEARCHBENCH)) {
    index = JSON.parse(
      execFileSync(SEARCHBENCH, ['--json', '--scale', String(TARGET.scaleTools), '--runs', '20', '--catalogs', CATALOGS], {
        maxBuffer: 16 << 20,
      }).toString(),
    );
    report.index = index;
  }

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
  console.log(`search_tools over HTTP (${q.meanLatencyMsOverHttp.toFixed(2)} ms per search, round trip included):`);
  for (const [name, r] of Object.entries(q.sets)) {
    console.log(
      `  ${name.padEnd(8)} ${String(r.top5Hits).padStart(3)}/${r.queries} in the top 5 (${pct(r.top5HitRatePercent)}), top 1 ${r.top1Hits} (${pct(r.top1HitRatePercent)})`,
    );
    for (const m of r.misses || []) console.log(`    MISS "${m.query}": expected ${m.expected.join(' | ')}; got ${m.got.join(', ') || '(nothing)'}`);
  }
  let scaleOk = false;
  if (index) {
    for (const c of index.cost)
      console.log(
        `index, ${String(c.tools).padStart(5)} tools: build ${c.buildMedianMs.toFixed(2)} ms (median; worst ${c.buildMaxMs.toFixed(2)}, first of a process ${c.buildFirstMs.toFixed(2)}), ` +
          `${(c.indexBytes / 1048576).toFixed(2)} MB, search p50 ${c.searchP50Ms.toFixed(3)} ms, p99 ${c.searchP99Ms.toFixed(3)} ms, max ${c.searchMaxMs.toFixed(3)} ms (CPU time, in process); lazy first tools/list ${c.lazyListTokens} tokens`,
      );
    const w = index.qualityWithDistractors;
    if (w)
      console.log(
        `with ${w.tools} real tools (catalogs/more as distractors, strict): ` +
          Object.entries(w.sets)
            .map(([n, r]) => `${n} top-5 ${pct((100 * r.top5) / r.queries)} top-1 ${pct((100 * r.top1) / r.queries)}`)
            .join('; '),
      );
    const big = index.cost.find((c) => c.tools >= TARGET.scaleTools);
    scaleOk =
      !!big &&
      big.searchP99Ms <= TARGET.p99Ms &&
      big.buildMedianMs <= TARGET.buildMs &&
      big.indexBytes <= TARGET.indexMB * 1048576 &&
      big.lazyListTokens <= TARGET.lazyTokens;
  } else {
    console.log(`index figures: ${SEARCHBENCH} not found (build it: cmake --build build --target mcpgate-searchbench)`);
  }
  const held = q.sets.heldout,
    proj = q.sets.project;
  const ok =
    report.catalog.tools >= TARGET.tools &&
    l.lazy.estimatedTokens <= TARGET.lazyTokens &&
    l.cutPercentEstimated >= TARGET.cut &&
    proj.queries >= TARGET.queries &&
    proj.top5HitRatePercent >= TARGET.hitRate &&
    held.top5HitRatePercent >= TARGET.heldoutTop5 &&
    held.top1HitRatePercent >= TARGET.heldoutTop1 &&
    scaleOk;
  report.targets = { ...TARGET, met: ok };
  console.log(
    `Targets (>= ${TARGET.tools} tools, lazy <= ${TARGET.lazyTokens} tokens and >= ${TARGET.cut}% cut, >= ${TARGET.queries} project queries at >= ${TARGET.hitRate}% top-5, ` +
      `held-out >= ${TARGET.heldoutTop5}% top-5 and >= ${TARGET.heldoutTop1}% top-1, at ${TARGET.scaleTools} tools p99 <= ${TARGET.p99Ms} ms, build <= ${TARGET.buildMs} ms, index <= ${TARGET.indexMB} MB, lazy list <= ${TARGET.lazyTokens} tokens): ${ok ? 'MET' : 'NOT MET'}`,
  );
  if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(report, null, 2) + '\n');
  process.exit(ok ? 0 : 1);
}

main().catch((e) => {
  console.error(`bench/tokens: ${e.stack || e}`);
  process.exit(2);
});

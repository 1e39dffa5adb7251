// bench/report.mjs - turns the JSON lines of bench/run.sh into markdown tables.
//
// Input: one `mcpgate-bench --json` object per line, its label "<target>:<scenario>" (scenarios:
// load-small, sat, load-big, huge, open, hold-<N>, cold), plus lines {"note": "..."} for skipped runs.
// Output (stdout): throughput/latency with the mcpgate/peer ratio, open-loop latency, RSS per idle
// session, cold start, errors by kind. Usage: node bench/report.mjs results.jsonl
// Read next: bench/run.sh (what produced the lines), tools/bench/README.md (the JSON keys).
import { readFileSync } from 'node:fs';

const rows = readFileSync(process.argv[2], 'utf8')
  .split('\n')
  .filter((l) => l.trim().startsWith('{'))
  .map((l) => JSON.parse(l));
const runs = rows.filter((r) => r.label);
const notes = rows.filter((r) => r.note).map((r) => r.note);
for (const r of runs) {
  const i = r.label.indexOf(':');
  r.target = r.label.slice(0, i);
  r.scenario = r.label.slice(i + 1);
}

const f = (x, d = 2) => (x === undefined || x === null || x < 0 ? 'n/a' : Number(x).toFixed(d));
// failed or unsent calls / failed sessions
const fails = (r) => `${r.calls.failed + r.calls.unsent} / ${r.sessions.failed}`;
const out = [];
const table = (head, body) => {
  out.push('| ' + head.join(' | ') + ' |');
  out.push('|' + head.map(() => '---').join('|') + '|');
  for (const b of body) out.push('| ' + b.join(' | ') + ' |');
  out.push('');
};

// The gateway's cost: calls/s through mcpgate (fronting the instant upstream, and the test server)
// as a fraction of the bare HTTP stack's raw POSTs, in the same run (issue 12's speed target: >= 0.8
// with the instant upstream).
{
  const body = [];
  for (const scenario of ['load-small', 'sat', 'load-big']) {
    const bare = runs.find((r) => r.target === 'bare' && r.scenario === scenario);
    if (!bare || !(bare.calls.per_s > 0)) continue;
    for (const t of ['mcpgate-instant', 'mcpgate']) {
      const g = runs.find((r) => r.target === t && r.scenario === scenario);
      if (g) body.push([scenario, t, f(g.calls.per_s, 0), f(bare.calls.per_s, 0), f(g.calls.per_s / bare.calls.per_s, 2)]);
    }
  }
  if (body.length) {
    out.push('### Gateway against the bare HTTP stack (same run)');
    out.push('');
    table(['scenario', 'target', 'calls/s', 'bare calls/s', 'fraction of bare'], body);
  }
}

for (const [scenario, title] of [
  ['load-small', 'Closed loop, small'],
  ['sat', 'Closed loop, saturation (fixed duration)'],
  ['load-big', 'Closed loop, many sessions'],
  ['huge', 'Closed loop, HUGE_SESSIONS'],
]) {
  const rs = runs.filter((r) => r.scenario === scenario);
  if (!rs.length) continue;
  const gw = rs.find((r) => r.target === 'mcpgate');
  out.push(`### ${title} (each session: initialize, initialized, tools/list, K × tools/call echo, DELETE)`);
  out.push('');
  table(
    ['target', 'sessions', scenario === 'sat' ? 'duration' : 'calls/session', 'calls/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'failed calls / sessions', 'mcpgate/peer'],
    rs.map((r) => [
      r.target,
      r.sessions.requested,
      r.calls.duration_s && scenario === 'sat'
        ? `${f(r.calls.duration_s, 0)} s`
        : Math.round((r.calls.ok + r.calls.failed + r.calls.unsent) / Math.max(1, r.sessions.requested)),
      f(r.calls.per_s, 0),
      f(r.calls.latency_ms.p50),
      f(r.calls.latency_ms.p99),
      f(r.calls.latency_ms.p999),
      f(r.calls.latency_ms.max),
      fails(r),
      gw && r.target !== 'mcpgate' && r.calls.per_s > 0 ? f(gw.calls.per_s / r.calls.per_s, 1) + '×' : '',
    ]),
  );
}

const open = runs.filter((r) => r.scenario === 'open');
if (open.length) {
  out.push('### Open loop (fixed total rate; latency from each call\'s scheduled time, no coordinated omission)');
  out.push('');
  const gw = open.find((r) => r.target === 'mcpgate');
  table(
    ['target', 'sessions', 'rate calls/s', 'achieved calls/s', 'p50 ms', 'p99 ms', 'p99.9 ms', 'max ms', 'failed calls / sessions', 'peer p99 / mcpgate p99'],
    open.map((r) => [
      r.target,
      r.sessions.requested,
      f(r.rate, 0),
      f(r.calls.per_s, 0),
      f(r.calls.latency_ms.p50),
      f(r.calls.latency_ms.p99),
      f(r.calls.latency_ms.p999),
      f(r.calls.latency_ms.max),
      fails(r),
      gw && r.target !== 'mcpgate' && gw.calls.latency_ms.p99 > 0
        ? f(r.calls.latency_ms.p99 / gw.calls.latency_ms.p99, 1) + '×'
        : '',
    ]),
  );
}

const hold = runs.filter((r) => r.scenario.startsWith('hold-'));
if (hold.length) {
  out.push('### Memory per idle session (fresh target; RSS of the process tree before and 1 s after opening N sessions)');
  out.push('');
  table(
    ['target', 'sessions', 'ok', 'setup s', 'RSS before MiB', 'RSS with sessions MiB', 'KiB / session', 'processes', 'failed sessions'],
    hold.map((r) => [
      r.target,
      r.sessions.requested,
      r.sessions.ok,
      f(r.sessions.setup_s),
      r.rss ? f(r.rss.before_kb / 1024, 1) : 'n/a',
      r.rss && r.rss.sessions_kb ? f(r.rss.sessions_kb / 1024, 1) : 'n/a',
      r.rss ? f(r.rss.per_session_kb, 1) : 'n/a',
      r.rss ? r.rss.processes : 'n/a',
      r.sessions.failed,
    ]),
  );
}

const cold = runs.filter((r) => r.scenario === 'cold');
if (cold.length) {
  out.push('### Cold start (exec → /healthz 200, exec → first successful tool call; median of the repetitions)');
  out.push('');
  const by = new Map();
  for (const r of cold) {
    if (!by.has(r.target)) by.set(r.target, []);
    by.get(r.target).push(r);
  }
  const med = (xs) => {
    const s = xs.filter((x) => x >= 0).sort((a, b) => a - b);
    return s.length ? s[Math.floor((s.length - 1) / 2)] : -1;
  };
  table(
    ['target', 'runs', 'exec→healthz ms', 'exec→first call ms'],
    [...by].map(([t, rs]) => [
      t,
      rs.length,
      f(med(rs.map((r) => r.cold_start_ms.healthz)), 1),
      f(med(rs.map((r) => r.cold_start_ms.first_call)), 1),
    ]),
  );
}

const errs = runs.filter((r) => Object.keys(r.errors).length);
if (errs.length) {
  out.push('### Errors by kind');
  out.push('');
  table(
    ['target', 'scenario', 'errors (first message of each kind)'],
    errs.map((r) => [
      r.target,
      r.scenario,
      Object.entries(r.errors)
        .map(([k, v]) => `${k} ×${v}` + (r.error_samples && r.error_samples[k] ? ` (${r.error_samples[k].replace(/\|/g, '\\|')})` : ''))
        .join('; '),
    ]),
  );
}
if (notes.length) {
  out.push('### Notes');
  out.push('');
  for (const n of notes) out.push('- ' + n);
  out.push('');
}
process.stdout.write(out.join('\n'));

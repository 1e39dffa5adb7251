// Minimal test registry and per-test context shared by run.mjs and the *.test.mjs files.
//
// A test file calls test(name, fn, {timeout, background}) at import time; run.mjs imports the
// file, takes the registered tests and runs them one after the other. A `background` test (one
// that mostly waits, e.g. for a 30 s tool call) starts when its file is reached and runs alongside
// the tests that follow, in this file and the next ones; run.mjs awaits it before its summary, so
// its wait costs no wall time. fn receives a context `t`:
//   t.gateway(opts)   start build/mcpgate (see gateway.mjs); stopped with SIGTERM at the end of
//                     the test, which fails unless it exits 0. Its stderr is printed on failure.
//   t.defer(fn)       cleanup, run LIFO after the test whatever its outcome.
//   t.skip(reason)    end the test as skipped.
//   t.log(...)        buffered; printed only when the test fails.
//   t.signal          AbortSignal aborted when the test times out.
import { startGateway } from './gateway.mjs';

export class SkipError extends Error {}

const registry = [];
let currentFile = null;

export function setCurrentFile(f) {
  currentFile = f;
}

export function takeRegistered() {
  return registry.splice(0, registry.length);
}

const SCALE = Number(process.env.MG_E2E_TIMEOUT_SCALE || 1) || 1;

export function scaled(ms) {
  return Math.round(ms * SCALE);
}

export function test(name, fn, opts = {}) {
  registry.push({ name, fn, file: currentFile, timeout: scaled(opts.timeout ?? 30000), background: Boolean(opts.background) });
}

export function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// Polls fn() until it returns a truthy value or the time runs out (then throws with `what`).
export async function waitFor(fn, { timeout = 5000, interval = 25, what = 'condition' } = {}) {
  const end = Date.now() + scaled(timeout);
  let last;
  for (;;) {
    try {
      last = await fn();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`timed out waiting for ${what}` + (last instanceof Error ? `: ${last.message}` : ''));
    }
    await sleep(interval);
  }
}

export function withTimeout(promise, ms, what = 'operation') {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, rej) => {
      timer = setTimeout(() => rej(new Error(`${what} did not finish within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export class TestContext {
  constructor(name) {
    this.name = name;
    this.gateways = [];
    this.cleanups = [];
    this.logs = [];
    this.controller = new AbortController();
    this.signal = this.controller.signal;
  }

  log(...args) {
    this.logs.push(args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' '));
  }

  defer(fn) {
    this.cleanups.push(fn);
  }

  skip(reason) {
    throw new SkipError(reason);
  }

  async gateway(opts = {}) {
    const gw = await startGateway({ ...opts, onStart: (g) => this.gateways.push(g) });
    return gw;
  }

  // Runs cleanups, then stops every gateway still running. Returns a list of problems that make
  // an otherwise passing test fail (a gateway that did not exit 0 on SIGTERM).
  async finish(failed) {
    const problems = [];
    this.controller.abort();
    while (this.cleanups.length) {
      const fn = this.cleanups.pop();
      try {
        await withTimeout(Promise.resolve().then(fn), scaled(10000), 'cleanup');
      } catch (e) {
        if (!failed) problems.push(`cleanup failed: ${e.message}`);
      }
    }
    for (const gw of this.gateways) {
      if (gw.exited) continue;
      try {
        const { code, signal } = await gw.stop({ timeout: scaled(failed ? 3000 : 10000) });
        if (!failed && (code !== 0 || signal)) {
          problems.push(`gateway exited with ${signal ? 'signal ' + signal : 'status ' + code} on SIGTERM`);
        }
      } catch (e) {
        if (!failed) problems.push(e.message);
      }
    }
    for (const gw of this.gateways) gw.reapLeftovers();
    return problems;
  }

  // What to print when the test failed: buffered log lines and each gateway's stderr.
  diagnostics() {
    const out = [];
    if (this.logs.length) out.push('  --- test log ---', ...this.logs.map((l) => '  ' + l));
    this.gateways.forEach((gw, i) => {
      const lines = gw.stderrLines();
      const tail = lines.slice(-Number(process.env.MG_E2E_STDERR_LINES || 200));
      out.push(
        `  --- gateway #${i + 1} stderr (pid ${gw.pid}, ${lines.length} lines` +
          (tail.length < lines.length ? `, last ${tail.length}` : '') +
          `, exit ${gw.exitStatus()}) ---`,
      );
      out.push(...tail.map((l) => '  | ' + l));
    });
    return out.join('\n');
  }
}

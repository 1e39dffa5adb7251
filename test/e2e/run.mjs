#!/usr/bin/env node
// mcpgate end-to-end test runner.
//
//   node run.mjs [FILE.test.mjs ...] [--grep TEXT] [--bail]
//
// Runs every test/e2e/*.test.mjs (or the files given), one test at a time, each under its own
// timeout; a test registered with {background: true} starts when reached and runs alongside the
// rest (awaited before the summary; a stray error while it runs is counted to the test in front). Prints one line per test and ends with `e2e: N passed, N failed[, N skipped]`; exits 1
// when anything failed. Environment:
//   MG_BINARY             gateway binary (default ../../build/mcpgate from this directory)
//   MG_TESTSERVER         stdio fixture server (default ../../build/mcpgate-testserver)
//   MG_E2E_TIMEOUT_SCALE  multiplies every timeout (e.g. 3 for sanitizer builds)
//   MG_E2E_STDERR_LINES   gateway stderr lines printed for a failed test (default 200)
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { E2E_DIR, MG_BINARY, MG_TESTSERVER } from './lib/gateway.mjs';
import { SkipError, TestContext, setCurrentFile, takeRegistered } from './lib/harness.mjs';

const argv = process.argv.slice(2);
let grep = null;
let bail = false;
const files = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--grep') grep = argv[++i];
  else if (argv[i] === '--bail') bail = true;
  else files.push(path.resolve(argv[i]));
}
if (!files.length) {
  for (const f of fs.readdirSync(E2E_DIR).sort()) if (f.endsWith('.test.mjs')) files.push(path.join(E2E_DIR, f));
}

// A stray rejection or exception belongs to whichever test is running; record it there.
let current = null;
const strays = [];
process.on('unhandledRejection', (e) => (current ? current.strays.push(e) : strays.push(e)));
process.on('uncaughtException', (e) => (current ? current.strays.push(e) : strays.push(e)));

console.log(`e2e: gateway ${MG_BINARY}${fs.existsSync(MG_BINARY) ? '' : ' (MISSING)'}`);
console.log(`e2e: testserver ${MG_TESTSERVER}${fs.existsSync(MG_TESTSERVER) ? '' : ' (MISSING)'}`);

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];
const started = Date.now();
const background = []; // runOne promises of {background: true} tests

function reason(e) {
  if (e instanceof Error) return e.message.split('\n')[0];
  return String(e);
}

async function runOne(tc) {
  const label = `${path.basename(tc.file, '.test.mjs')} > ${tc.name}`;
  const t = new TestContext(tc.name);
  t.strays = [];
  if (!tc.background) current = t;
  const t0 = Date.now();
  let err = null;
  let timer;
  try {
    await Promise.race([
      Promise.resolve().then(() => tc.fn(t)),
      new Promise((_, rej) => {
        timer = setTimeout(() => rej(new Error(`timed out after ${tc.timeout} ms`)), tc.timeout);
      }),
    ]);
  } catch (e) {
    err = e;
  } finally {
    clearTimeout(timer);
  }
  if (!err && t.strays.length) err = t.strays[0];
  const skip = err instanceof SkipError;
  const problems = await t.finish(Boolean(err) && !skip);
  if (!err && problems.length) err = new Error(problems.join('; '));
  if (!tc.background) current = null;
  const ms = Date.now() - t0;
  if (skip) {
    skipped++;
    console.log(`skip ${label}: ${err.message}`);
  } else if (err) {
    failed++;
    failures.push(label);
    console.log(`FAIL ${label}: ${reason(err)} (${ms} ms)`);
    if (err instanceof Error && err.stack && !err.noStack) {
      console.log(err.stack.split('\n').slice(0, 12).map((l) => '  ' + l).join('\n'));
    }
    const d = t.diagnostics();
    if (d) console.log(d);
  } else {
    passed++;
    console.log(`ok   ${label} (${ms} ms)`);
  }
  return !err || skip;
}

outer: for (const file of files) {
  setCurrentFile(file);
  let tests;
  try {
    await import(pathToFileURL(file).href);
    tests = takeRegistered();
  } catch (e) {
    failed++;
    failures.push(path.basename(file));
    console.log(`FAIL ${path.basename(file, '.test.mjs')}: could not load: ${reason(e)}`);
    if (e?.stack) console.log(e.stack.split('\n').slice(0, 8).map((l) => '  ' + l).join('\n'));
    continue;
  }
  for (const tc of tests) {
    if (grep && !`${path.basename(file)} ${tc.name}`.includes(grep)) continue;
    if (tc.background) {
      background.push(runOne(tc));
      continue;
    }
    const ok = await runOne(tc);
    if (!ok && bail) break outer;
  }
}
await Promise.all(background);

for (const e of strays) {
  failed++;
  console.log(`FAIL (outside any test): ${reason(e)}`);
}
const secs = ((Date.now() - started) / 1000).toFixed(1);
if (failures.length) console.log(`\n${failures.length} failed (${secs} s):\n${failures.map((f) => '  ' + f).join('\n')}`);
else console.log(`\nall done in ${secs} s`);
console.log(`e2e: ${passed} passed, ${failed} failed` + (skipped ? `, ${skipped} skipped` : ''));
// Sockets of SDK clients a failed test left open must not keep the process alive.
process.exit(failed ? 1 : 0);

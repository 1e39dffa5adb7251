// Helpers for the auth-*.test.mjs files: bearer headers, `mcpgate token new`, and an upstream that
// records every line the gateway writes to it (stdin), to prove no client token ever reaches it.
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MG_BINARY, MG_TESTSERVER } from './gateway.mjs';

export const bearer = (token) => ({ Authorization: `Bearer ${token}` });

// Runs `mcpgate token new ARGS` and returns {token, entry (the parsed gateway.auth.tokens entry), stdout}.
export function tokenNew(args) {
  const stdout = execFileSync(MG_BINARY, ['token', 'new', ...args], { encoding: 'utf8' });
  const token = /^token: (\S+)$/m.exec(stdout)?.[1];
  const entry = JSON.parse(stdout.trim().split('\n').pop());
  return { token, entry, stdout };
}

// A fresh file for an upstream's recording; removed by t.defer.
export function recordFile(t) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'mcpgate-rec-'));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  return path.join(dir, 'stdin.log');
}

// build/mcpgate-testserver behind `tee`: every line the gateway sends the upstream lands in file.
// No shell sees the gateway's data: sh only wires the pipe (the file and binary come from env).
export function recordedTestserver(file, args = [], more = {}) {
  return {
    command: '/bin/sh',
    args: ['-c', 'tee -a "$MG_REC" | "$MG_TS" "$@"', 'sh', ...args],
    env: { MG_REC: file, MG_TS: MG_TESTSERVER, ...(more.env || {}) },
    ...Object.fromEntries(Object.entries(more).filter(([k]) => k !== 'env')),
  };
}

export const readRecord = (file) => (fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '');

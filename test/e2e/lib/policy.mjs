// Helpers for the policy tests (pinning, scanning, credentials, sandbox, rate limits, CORS):
// a config file in a temp dir of its own (its lockfile, config.lock, goes beside it), and running a
// CLI command.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MG_BINARY, MG_TESTSERVER } from './gateway.mjs';
import { scaled } from './harness.mjs';

// The sandbox probe fixture (test/fixture/probe), built beside mcpgate-testserver.
export const MG_PROBE = process.env.MG_PROBE || path.join(path.dirname(MG_TESTSERVER), 'mcpgate-probe');

// Writes config to DIR/config.json in a fresh temp dir (removed by t.defer); returns {dir, file, lock}.
export function configDir(t, config, prefix = 'mcpgate-pol-') {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  t.defer(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'config.json');
  if (config !== undefined) fs.writeFileSync(file, JSON.stringify(config, null, 2));
  return { dir, file, lock: path.join(dir, 'config.lock') };
}

// Runs `mcpgate ARGS` to completion: {status, stdout, stderr}.
export function mcpgate(args, opts = {}) {
  const r = spawnSync(MG_BINARY, args, { encoding: 'utf8', timeout: scaled(60000), ...opts });
  return { status: r.status, stdout: r.stdout || '', stderr: r.stderr || '' };
}

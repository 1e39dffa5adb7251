// Credentials exactly as configured, end to end: each child sees only its own declared variables
// (plus PATH, HOME, LANG) -- never another child's, never the gateway's; --env-file supplies
// ${env:} fallbacks and {SERVICE}_MCP_{KEY} entries; `mcpgate check` names each value's source and
// length but never the value; an empty or missing value is an error, never passed on.
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { connect, textOf } from './lib/client.mjs';
import { testserver } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { configDir, mcpgate } from './lib/policy.mjs';

const INHERITED = new Set(['PATH', 'HOME', 'LANG']);

async function envOf(client, tool) {
  const r = await client.callTool({ name: tool, arguments: {} });
  assert.ok(!r.isError, JSON.stringify(r));
  return JSON.parse(textOf(r));
}

function setup(t, envFileText, extraServers = {}) {
  const c = configDir(t, undefined, 'mcpgate-cred-');
  const envFile = path.join(c.dir, '.env.mcp');
  fs.writeFileSync(envFile, envFileText);
  const config = {
    mcpServers: {
      alpha: testserver(['--name', 'alpha'], { env: { ALPHA_SECRET: 'alpha-literal-secret', SHARED: '${env:SHARED_FROM_FILE}' } }),
      'beta-srv': testserver(['--name', 'beta']),
      ...extraServers,
    },
  };
  fs.writeFileSync(c.file, JSON.stringify(config));
  return { ...c, envFile };
}

test('credentials: a child sees only its declared variables, not another child\'s nor the gateway\'s', async (t) => {
  const c = setup(t, 'BETA_SRV_MCP_TOKEN=beta-token-from-file\nSHARED_FROM_FILE=shared-value\n# GATEWAY_ONLY is not for children\n');
  const gw = await t.gateway({
    args: ['--config', c.file, '--env-file', c.envFile],
    env: { GATEWAY_SECRET: 'gateway-only-secret' },
  });
  const s = await connect(gw.url);
  t.defer(() => s.close());
  const a = await envOf(s.client, 'alpha__get_env');
  const b = await envOf(s.client, 'beta-srv__get_env');
  assert.equal(a.ALPHA_SECRET, 'alpha-literal-secret');
  assert.equal(a.SHARED, 'shared-value'); // ${env:} fell back to the --env-file
  assert.equal(b.TOKEN, 'beta-token-from-file'); // {SERVICE}_MCP_{KEY}
  // Nothing else: not the other child's, not the gateway's, not the env-file's other entries.
  for (const [env, declared] of [
    [a, ['ALPHA_SECRET', 'SHARED']],
    [b, ['TOKEN']],
  ]) {
    for (const k of Object.keys(env)) assert.ok(declared.includes(k) || INHERITED.has(k), `unexpected variable ${k}`);
    assert.equal(env.GATEWAY_SECRET, undefined);
    assert.equal(env.SHARED_FROM_FILE, undefined);
    assert.equal(env.BETA_SRV_MCP_TOKEN, undefined);
  }
  assert.equal(a.TOKEN, undefined);
  assert.equal(b.ALPHA_SECRET, undefined);
  // Secrets never reach the log.
  assert.doesNotMatch(gw.stderrText(), /beta-token-from-file|alpha-literal-secret|shared-value|gateway-only-secret/);
}, { timeout: 20000 });

test('credentials: mcpgate check names the source and length of each value, never the value', async (t) => {
  const c = setup(t, 'BETA_SRV_MCP_TOKEN=beta-token-from-file\nSHARED_FROM_FILE=shared-value\n');
  const r = mcpgate(['check', '--config', c.file, '--env-file', c.envFile], {
    env: { ...process.env, SHARED_FROM_FILE: '' },
  });
  // SHARED_FROM_FILE is set but empty in the process: that wins over the file and is an error.
  assert.equal(r.status, 1);
  assert.match(r.stderr, /\$\{env:SHARED_FROM_FILE\} is set but empty in the gateway's environment \(which wins over the --env-file/);
  const env = { ...process.env };
  delete env.SHARED_FROM_FILE;
  const ok = mcpgate(['check', '--config', c.file, '--env-file', c.envFile], { env });
  assert.equal(ok.status, 0, ok.stderr);
  assert.match(ok.stdout, /env ALPHA_SECRET: from literal, 20 bytes/);
  assert.match(ok.stdout, /env SHARED: from envfile:SHARED_FROM_FILE, 12 bytes/);
  assert.match(ok.stdout, /env TOKEN: from envfile:BETA_SRV_MCP_TOKEN, 20 bytes/);
  assert.match(ok.stdout, /credentials: each server gets only its env above/);
  assert.doesNotMatch(ok.stdout + ok.stderr, /beta-token-from-file|alpha-literal-secret|shared-value/);
  // The process environment wins over the file for ${env:}.
  const pe = mcpgate(['check', '--config', c.file, '--env-file', c.envFile], { env: { ...env, SHARED_FROM_FILE: 'from-proc' } });
  assert.match(pe.stdout, /env SHARED: from env:SHARED_FROM_FILE, 9 bytes/);
});

test('credentials: empty, missing and doubly-set values are errors; serve refuses to start', async (t) => {
  const c = setup(t, 'BETA_SRV_MCP_TOKEN=\nALPHA_MCP_ALPHA_SECRET=x\n');
  const env = { ...process.env };
  delete env.SHARED_FROM_FILE;
  const r = mcpgate(['check', '--config', c.file, '--env-file', c.envFile], { env });
  assert.equal(r.status, 1);
  assert.match(r.stderr, /server 'beta-srv': env TOKEN: BETA_SRV_MCP_TOKEN is empty in .*\.env\.mcp \(line 1\)/);
  assert.match(r.stderr, /server 'alpha': env ALPHA_SECRET is set both in the config and by ALPHA_MCP_ALPHA_SECRET/);
  assert.match(r.stderr, /\$\{env:SHARED_FROM_FILE\} is not set in the gateway's environment nor in the --env-file/);
  const s = mcpgate(['serve', '--config', c.file, '--env-file', c.envFile, '--listen', '127.0.0.1:1'], { env });
  assert.equal(s.status, 2);
  assert.match(s.stderr, /BETA_SRV_MCP_TOKEN is empty/);
  const missing = mcpgate(['check', '--config', c.file, '--env-file', path.join(c.dir, 'nope.env')], { env });
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /--env-file .*nope\.env: cannot be read: No such file or directory/);
});

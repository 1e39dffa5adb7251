// `mcpgate check` on the commands of a config, as a newcomer writes them: a typo ("npxx"), the
// arguments inside "command" ("npx -y pkg"), a Windows `cmd /c` entry, a PATH of the server's own.
// Each is an error naming the server (exit 1); serve refuses to start only that server, with the
// same sentence in /readyz, and the others keep working.
import assert from 'node:assert/strict';
import { connect, textOf } from './lib/client.mjs';
import { testserver, waitReadyz } from './lib/gateway.mjs';
import { test } from './lib/harness.mjs';
import { configDir, mcpgate } from './lib/policy.mjs';

test('check: a command that is not on the PATH, or has its arguments inside it, is an error naming the server', (t) => {
  const c = configDir(t, {
    mcpServers: {
      typo: { command: 'npxx' },
      inline: { command: 'npx -y @modelcontextprotocol/server-memory' },
      windows: { command: 'cmd', args: ['/c', 'npx', '-y', '@modelcontextprotocol/server-memory'] },
      ownpath: { command: 'sh', env: { PATH: '/nonexistent' } },
      fine: { command: 'sh' },
      off: { command: 'npxx', disabled: true },
    },
  });
  const r = mcpgate(['check', '--config', c.file]);
  assert.equal(r.status, 1, r.stdout + r.stderr);
  assert.match(r.stdout, /PROBLEM: server 'typo': command 'npxx' is not on the PATH the server gets \(the gateway's PATH\)/);
  assert.match(
    r.stdout,
    /PROBLEM: server 'inline': command 'npx \.\.\.' has its arguments inside it .*move the arguments into args: "command": "npx" and, as "args", the 2 words after it/,
  );
  assert.match(r.stdout, /PROBLEM: server 'windows': command 'cmd' with args \["\/c", \.\.\.\] is a Windows cmd\.exe entry .*"command": "npx" and, as "args", the 2 arguments after it/);
  assert.match(r.stdout, /PROBLEM: server 'ownpath': command 'sh' is not on the PATH the server gets \(the PATH in its env\)/);
  assert.doesNotMatch(r.stdout, /server 'fine'|server 'off'/);
  assert.match(r.stdout, /: 4 problems \(the lines marked PROBLEM above\)\n$/);
  assert.doesNotMatch(r.stdout, /OK/);

  const ok = configDir(t, { mcpServers: { fine: { command: 'sh' } } });
  const r2 = mcpgate(['check', '--config', ok.file]);
  assert.equal(r2.status, 0, r2.stdout + r2.stderr);
  assert.match(r2.stdout, /: OK\n$/);
});

test('serve: a server whose command is wrong is not started, with the same sentence; the others work', async (t) => {
  const gw = await t.gateway({ config: { mcpServers: { inline: { command: 'npx -y @modelcontextprotocol/server-memory' }, ts: testserver() } } });
  const rz = await waitReadyz(gw, (j) => j.upstreams.find((u) => u.name === 'inline')?.error);
  const u = rz.upstreams.find((x) => x.name === 'inline');
  assert.match(u.error, /^upstream 'inline': command 'npx \.\.\.' has its arguments inside it .*move the arguments into args/);
  assert.doesNotMatch(u.error, /server-memory/); // arguments are counted, never shown (one may be a secret)
  await gw.waitLog((l) => l.level === 'error' && /upstream 'inline': .*move the arguments into args/.test(l.msg), { what: 'the error line' });
  const s = await connect(gw.url);
  t.defer(() => s.close());
  assert.equal(textOf(await s.client.callTool({ name: 'ts__echo', arguments: { message: 'hi' } })), 'hi');
  assert.ok(!gw.logs().some((l) => l.msg === 'upstream process started' && l.upstream === 'inline'));
});

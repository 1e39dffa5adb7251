// Reload across replicas sharing one session store (docs/operations.md "Reload"): each replica
// reads its own file; /readyz config.digest (and mcpgate_config_info) is the SHA-256 prefix of
// the file each runs, so a rollout can be checked: the same file gives the same digest on both,
// a replica reloaded with a changed file differs until the other one is reloaded too.
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { testserver } from './lib/gateway.mjs';
import { requireBinaries, startRedis, waitStore } from './lib/cluster.mjs';
import { scaled, test, waitFor } from './lib/harness.mjs';
import { call, initSession } from './lib/http.mjs';
import { configDir } from './lib/policy.mjs';

const digestOf = (file) => crypto.createHash('sha256').update(fs.readFileSync(file)).digest('hex').slice(0, 16);

async function metricDigest(gw) {
  const text = await (await fetch(`${gw.base}/metrics`)).text();
  return text.match(/mcpgate_config_info\{digest="([0-9a-f]+)"\} 1/)?.[1];
}

test('reload with 2 replicas: the same file gives the same /readyz digest; one replica reloaded with a changed file differs until the other follows', async (t) => {
  requireBinaries(t, 'redis-server');
  const redis = await startRedis(t);
  const c = configDir(t, undefined, 'mcpgate-reload-rep-');
  const files = ['a.json', 'b.json'].map((n) => path.join(c.dir, n));
  const write = (file, extra = {}) =>
    fs.writeFileSync(
      file,
      JSON.stringify({
        mcpServers: { test: testserver() },
        gateway: { sessions: { store: redis.url(0), secret: 'e2e-cluster-secret-0123456789' }, ...extra },
      }),
    );
  for (const f of files) write(f);
  const gws = [];
  for (const f of files) gws.push(await t.gateway({ args: ['--config', f] }));
  await waitStore(gws, true);
  const digests = async () => Promise.all(gws.map(async (g) => (await g.readyz()).json.config.digest));
  let [a, b] = await digests();
  assert.equal(a, b, 'the same file on both replicas gives different digests');
  assert.equal(a, digestOf(files[0]), 'the digest is not the prefix of the file\'s SHA-256');
  assert.deepEqual(await Promise.all(gws.map(metricDigest)), [a, a]);

  // Replica B gets a new file (a tool filter) and reloads; A still runs the old one.
  write(files[1], { tools: { deny: ['sleep'] } });
  gws[1].proc.kill('SIGHUP');
  await waitFor(async () => (await gws[1].readyz()).json.config.reloads === 1, { timeout: scaled(10000), what: 'B reloaded' });
  [a, b] = await digests();
  assert.notEqual(a, b, 'a replica reloaded with a changed file shows the same digest');
  assert.equal(b, digestOf(files[1]));
  assert.equal(await metricDigest(gws[1]), b);
  assert.equal(await metricDigest(gws[0]), a);
  const rzB = (await gws[1].readyz()).json;
  assert.deepEqual(rzB.config.restartNeeded, []);
  // A session made on A is served by B under B's configuration (shared store), and vice versa.
  const s = await initSession(gws[0].url);
  const { response } = await call(gws[1].url, s, 'tools/call', { name: 'echo', arguments: { message: 'x' } });
  assert.equal(response.result?.content?.[0]?.text, 'x');

  // The rollout reaches A: the digests agree again.
  write(files[0], { tools: { deny: ['sleep'] } });
  gws[0].proc.kill('SIGHUP');
  await waitFor(async () => (await gws[0].readyz()).json.config.reloads === 1, { timeout: scaled(10000), what: 'A reloaded' });
  [a, b] = await digests();
  assert.equal(a, b, 'both replicas run the same file but show different digests');
  assert.equal(a, digestOf(files[0]));
});

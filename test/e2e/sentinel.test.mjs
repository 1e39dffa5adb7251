// Redis Sentinel (issue #7): one master, one replica, one sentinel (quorum 1). Two gateway replicas
// use redis-sentinel://; the master is SIGKILLed; the sentinel promotes the replica and the
// gateways follow the new master by themselves: readiness comes back, sessions made before the
// failover keep working. Infrastructure: lib/cluster.mjs.
import assert from 'node:assert/strict';
import { redisCmd, requireBinaries, startRedis, startReplicas, startSentinel, waitStore } from './lib/cluster.mjs';
import { testserver } from './lib/gateway.mjs';
import { sleep, test, waitFor } from './lib/harness.mjs';
import { call, initSession } from './lib/http.mjs';

const CONFIG = { mcpServers: { test: testserver() }, gateway: { logLevel: 'warn' } };

test('Sentinel: the master is killed, the gateways follow the promoted replica and every session survives', async (t) => {
  requireBinaries(t, 'redis-server');
  const password = 'sentinel-e2e-pw';
  const master = await startRedis(t, { password });
  const replica = await startRedis(t, { password, replicaof: master.port });
  await waitFor(async () => /master_link_status:up/.test(await redisCmd(replica.port, ['INFO', 'replication'], { password })), {
    timeout: 10000,
    what: 'the replica to sync',
  });
  const sentinel = await startSentinel(t, { masterPort: master.port, password });
  await waitFor(async () => (await redisCmd(sentinel.port, ['SENTINEL', 'replicas', 'mymaster'])).length === 1, {
    timeout: 15000,
    what: 'the sentinel to discover the replica',
  });
  const url = `redis-sentinel://:${password}@127.0.0.1:${sentinel.port}/mymaster/0`;
  const gws = await startReplicas(t, 2, { redisUrl: url, config: CONFIG });
  await waitStore(gws, true);
  assert.equal((await gws[0].readyz()).json.store.master, `127.0.0.1:${master.port}`);
  const sessions = [];
  for (let i = 0; i < 20; i++) sessions.push(await initSession(gws[i % 2].url));
  for (const [i, s] of sessions.entries()) {
    const { response } = await call(gws[(i + 1) % 2].url, s, 'tools/call', { name: 'echo', arguments: { message: `m${i}` } });
    assert.equal(response.result.content[0].text, `m${i}`);
  }
  // everything written so far is on the replica before the master dies
  assert.ok((await redisCmd(master.port, ['WAIT', '1', '2000'], { password })) >= 1);
  const t0 = Date.now();
  await master.kill();
  await waitStore(gws, false, 5000);
  // the sentinel promotes the replica; the gateways ask it again and reconnect
  await waitStore(gws, true, 30000);
  const failover = Date.now() - t0;
  for (const g of gws) assert.equal((await g.readyz()).json.store.master, `127.0.0.1:${replica.port}`);
  const role = await redisCmd(replica.port, ['ROLE'], { password });
  assert.equal(role[0], 'master');
  for (const [i, s] of sessions.entries()) {
    const { response } = await call(gws[i % 2].url, s, 'tools/call', { name: 'echo', arguments: { message: `n${i}` } });
    assert.equal(response.result?.content?.[0]?.text, `n${i}`, JSON.stringify(response));
  }
  const fresh = await initSession(gws[0].url);
  const { response } = await call(gws[1].url, fresh, 'ping', {});
  assert.ok(response.result);
  console.log(`     sentinel: gateways ready on the promoted replica ${failover} ms after the master was killed`);
  await sleep(10);
}, { timeout: 60000 });

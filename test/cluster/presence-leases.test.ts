/**
 * Cluster-wide presence and leases: two `lifeline serve` nodes on a real three-node NATS cluster.
 * Each node's session view lists the devices connected to the other node; a lease held by a live
 * worker on node A is refused to a worker on node B (LEASE_HELD); once node A is gone (kill -9),
 * its live record lapses and node B grants the next epoch (which fences epoch 1; the store side of
 * fencing across nodes is in concurrent-appends.test.ts).
 */
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ExponentialBackoff, LifelineError, connect } from '../../src/sdk/index.js';
import type { LifelineSession } from '../../src/sdk/index.js';
import { api } from '../support/http.js';
import { adminToken, createSession, killAllRelays, sessionToken, spawnRelay } from '../support/relay-process.js';
import { startNatsCluster } from '../support/nats-cluster.js';
import type { NatsCluster } from '../support/nats-cluster.js';
import { waitFor } from '../support/wait.js';

let cluster: NatsCluster;
const sessions: LifelineSession[] = [];

beforeAll(async () => {
  cluster = await startNatsCluster();
});
afterEach(async () => {
  for (const s of sessions.splice(0)) s.close();
  await killAllRelays();
});
afterAll(async () => {
  await cluster?.stop();
});

async function client(url: string, sessionId: string, participant: string, role: 'user' | 'agent'): Promise<LifelineSession> {
  const s = await connect({ url, token: await sessionToken(sessionId, participant, role), reconnect: new ExponentialBackoff({ initialMs: 20, maxMs: 200 }) });
  sessions.push(s);
  return s;
}

interface Participant {
  participant: string;
  online: boolean;
  devices: { device: string; state: string }[];
}

async function participants(url: string, sessionId: string): Promise<Participant[]> {
  const res = await api(url, 'GET', `/v1/sessions/${sessionId}`, { token: await adminToken() });
  expect(res.status).toBe(200);
  return (res.json as { participants: Participant[] }).participants;
}

describe('two relay nodes: presence and leases are cluster-wide', () => {
  it('each node lists the devices connected to the other', async () => {
    const store = `${cluster.storeSpec}?prefix=pl${process.pid}a`;
    const [a, b] = await Promise.all([spawnRelay({ store }), spawnRelay({ store })]);
    const sessionId = await createSession(a.url);
    await client(a.url, sessionId, 'alice', 'user');
    const bot = await client(b.url, sessionId, 'bot', 'agent');
    for (const url of [a.url, b.url]) {
      await waitFor(async () => {
        const ps = await participants(url, sessionId);
        return ps.some((p) => p.participant === 'alice' && p.online) && ps.some((p) => p.participant === 'bot' && p.online);
      }, { message: `both participants online as seen from ${url}` });
    }
    bot.close();
    await waitFor(async () => !(await participants(a.url, sessionId)).some((p) => p.participant === 'bot'), { message: 'node A sees the bot gone' });
    expect((await participants(a.url, sessionId)).map((p) => p.participant)).toEqual(['alice']);
  });

  it('a lease held live on node A is refused on node B; once A is gone, B grants the next epoch', async () => {
    const store = `${cluster.storeSpec}?prefix=pl${process.pid}b`;
    const [a, b] = await Promise.all([spawnRelay({ store, args: ['--lease-ttl-ms', '300'] }), spawnRelay({ store, args: ['--lease-ttl-ms', '300'] })]);
    const sessionId = await createSession(a.url);
    const w1 = await client(a.url, sessionId, 'worker-1', 'agent');
    const first = await w1.claim('agent');
    expect(first.epoch).toBe(1);
    await w1.sendText('from w1');

    const w2 = await client(b.url, sessionId, 'worker-2', 'agent');
    const refused = await w2.claim('agent').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(LifelineError);
    expect((refused as LifelineError).code).toBe('LEASE_HELD');

    // The holder's node dies: its live record lapses, and node B grants the next epoch.
    await a.kill('SIGKILL');
    const second = await waitFor(
      () =>
        w2.claim('agent').then(
          (g) => g,
          () => undefined,
        ),
      { timeoutMs: 20_000, intervalMs: 200, message: 'worker-2 gets the lease on node B' },
    );
    expect(second.epoch).toBe(2);
    await w2.sendText('from w2');
  });
});

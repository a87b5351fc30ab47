/**
 * Two relay nodes' stores (two NatsStores, each connected to a different server of a real
 * three-node cluster) appending to one session at the same time: never two events with one
 * offset, never out of order, producer state shared, and each node's watch sees the other's
 * events once committed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Origin } from '../../src/protocol/index.js';
import type { AppendEntry, StoredEvent } from '../../src/store/index.js';
import { NatsStore } from '../../src/store/nats/index.js';
import { startNatsCluster } from '../support/nats-cluster.js';
import type { NatsCluster } from '../support/nats-cluster.js';
import { waitFor } from '../support/wait.js';

let cluster: NatsCluster;
const stores: NatsStore[] = [];
let n = 0;

beforeAll(async () => {
  cluster = await startNatsCluster();
});
afterAll(async () => {
  for (const s of stores.splice(0)) await s.close();
  await cluster?.stop();
});

async function twoNodes(opts: { duplicateWindowMs?: number } = {}): Promise<[NatsStore, NatsStore]> {
  const prefix = `cc${process.pid}x${++n}`;
  const a = await NatsStore.open({ servers: [cluster.servers[0]!], prefix, replicas: 3, ...opts });
  const b = await NatsStore.open({ servers: [cluster.servers[1]!], prefix, replicas: 3, ...opts });
  stores.push(a, b);
  return [a, b];
}

const FROM_A: Origin = { participant: 'alice', device: 'a', role: 'user' };
const FROM_B: Origin = { participant: 'bot', device: 'b', role: 'agent' };

function text(sessionId: string, from: Origin, t: string, producer?: { id: string; epoch: number; seq: number }): AppendEntry {
  return { sessionId, ...(producer ? { producer } : {}), event: { ts: Date.now(), from, kind: 'text.delta', data: { text: t } } };
}

describe('two nodes appending to one session at once', () => {
  it('hand out every offset once, in order, and both read the same timeline', async () => {
    const [a, b] = await twoNodes();
    await a.createSession({ id: 's', createdAt: Date.now(), expiresAt: null, metadata: {} });
    const ROUNDS = 60;
    const acked: { who: string; text: string; seq: number }[] = [];
    for (let i = 0; i < ROUNDS; i++) {
      const [x, y] = await Promise.all([
        a.append([text('s', FROM_A, `a${i}`, { id: 'pa', epoch: 0, seq: i })]),
        b.append([text('s', FROM_B, `b${i}x`, { id: 'pb', epoch: 0, seq: 2 * i }), text('s', FROM_B, `b${i}y`, { id: 'pb', epoch: 0, seq: 2 * i + 1 })]),
      ]);
      for (const [o, t] of [
        [x[0]!, `a${i}`],
        [y[0]!, `b${i}x`],
        [y[1]!, `b${i}y`],
      ] as const) {
        expect(o.status).toBe('appended');
        if (o.status === 'appended') acked.push({ who: t[0]!, text: t, seq: o.seq });
      }
    }
    const seqs = acked.map((e) => e.seq).sort((p, q) => p - q);
    expect(seqs).toEqual(Array.from({ length: 3 * ROUNDS }, (_, i) => i + 1));
    // Each node's own appends got increasing offsets in the order it made them.
    for (const who of ['a', 'b']) {
      const mine = acked.filter((e) => e.who === who).map((e) => e.seq);
      expect(mine).toEqual([...mine].sort((p, q) => p - q));
    }
    const fromA = await a.read('s', 0, 1000);
    const fromB = await b.read('s', 0, 1000);
    expect(fromA.map((e) => e.seq)).toEqual(seqs);
    expect(fromB).toEqual(fromA);
    const bySeq = new Map(fromA.map((e) => [e.seq, (e.data as { text: string }).text]));
    for (const e of acked) expect(bySeq.get(e.seq)).toBe(e.text);
    expect(await a.head('s')).toBe(3 * ROUNDS);
    expect(await b.producer('s', 'pa')).toEqual({ id: 'pa', epoch: 0, seq: ROUNDS - 1 });
    expect(await a.producer('s', 'pb')).toEqual({ id: 'pb', epoch: 0, seq: 2 * ROUNDS - 1 });
  });

  it('many concurrent appends per node (pipelined, batched) still give unique consecutive offsets', async () => {
    const [a, b] = await twoNodes();
    await b.createSession({ id: 'p', createdAt: Date.now(), expiresAt: null, metadata: {} });
    const PER = 300;
    const calls = [];
    for (let i = 0; i < PER; i++) {
      calls.push(a.append([text('p', FROM_A, `a${i}`, { id: 'pa', epoch: 0, seq: i })]));
      calls.push(b.append([text('p', FROM_B, `b${i}`, { id: 'pb', epoch: 0, seq: i })]));
    }
    const outcomes = (await Promise.all(calls)).flat();
    const seqs = outcomes.map((o) => (o.status === 'appended' ? o.seq : -1));
    expect([...seqs].sort((p, q) => p - q)).toEqual(Array.from({ length: 2 * PER }, (_, i) => i + 1));
    // Per producer, offsets follow producer order.
    const aSeqs = seqs.filter((_, i) => i % 2 === 0);
    const bSeqs = seqs.filter((_, i) => i % 2 === 1);
    expect(aSeqs).toEqual([...aSeqs].sort((p, q) => p - q));
    expect(bSeqs).toEqual([...bSeqs].sort((p, q) => p - q));
    const events = await b.read('p', 0, 10_000);
    expect(events.map((e) => e.seq)).toEqual(Array.from({ length: 2 * PER }, (_, i) => i + 1));
    // Batching: far fewer publishes than appends.
    expect(a.publishes + b.publishes).toBeLessThan(2 * PER);
  });

  it('a retry through the other node is a duplicate with the original offset, also after the duplicate window', async () => {
    const [a, b] = await twoNodes({ duplicateWindowMs: 1000 });
    await a.createSession({ id: 'r', createdAt: Date.now(), expiresAt: null, metadata: {} });
    expect(await a.append([text('r', FROM_A, 'one', { id: 'p', epoch: 0, seq: 0 })])).toEqual([{ status: 'appended', seq: 1 }]);
    expect(await b.append([text('r', FROM_A, 'one', { id: 'p', epoch: 0, seq: 0 })])).toEqual([{ status: 'duplicate', seq: 1 }]);
    // Past JetStream's own duplicate window (1 s here), producer state in the stream still decides.
    await new Promise((r) => setTimeout(r, 1500));
    expect(await b.append([text('r', FROM_A, 'one', { id: 'p', epoch: 0, seq: 0 })])).toEqual([{ status: 'duplicate', seq: 1 }]);
    const fresh = await NatsStore.open({ servers: [cluster.servers[2]!], prefix: `cc${process.pid}x${n}`, replicas: 3 });
    stores.push(fresh);
    expect(await fresh.append([text('r', FROM_A, 'one', { id: 'p', epoch: 0, seq: 0 })])).toEqual([{ status: 'duplicate', seq: 1 }]);
    expect(await fresh.head('r')).toBe(1);
  });

  it('a lease claimed on one node fences the holder appending through the other', async () => {
    const [a, b] = await twoNodes();
    await a.createSession({ id: 'l', createdAt: Date.now(), expiresAt: null, metadata: {} });
    expect(await a.claimLease('l', 'agent', 'w1', 0)).toMatchObject({ epoch: 1 });
    expect(await a.append([text('l', FROM_B, 'w1', { id: '@agent', epoch: 1, seq: 0 })])).toEqual([{ status: 'appended', seq: 1 }]);
    expect(await b.claimLease('l', 'agent', 'w2', 0)).toBeUndefined();
    expect(await b.claimLease('l', 'agent', 'w2', 1)).toMatchObject({ holder: 'w2', epoch: 2 });
    expect(await a.append([text('l', FROM_B, 'late', { id: '@agent', epoch: 1, seq: 1 })])).toEqual([
      { status: 'rejected', code: 'STALE_EPOCH', current: { id: '@agent', epoch: 2, seq: -1 } },
    ]);
    expect(await a.lease('l', 'agent')).toEqual({ sessionId: 'l', role: 'agent', holder: 'w2', epoch: 2 });
  });

  it("each node's watch delivers the other's events once committed, in order", async () => {
    const [a, b] = await twoNodes();
    await a.createSession({ id: 'w', createdAt: Date.now(), expiresAt: null, metadata: {} });
    const seenOnA: StoredEvent[] = [];
    const watch = a.watchCommitted('w', 0, (events) => seenOnA.push(...events));
    try {
      for (let i = 0; i < 20; i++) await b.append([text('w', FROM_B, `b${i}`)]);
      const audio = new Uint8Array([1, 2, 3, 250]);
      await b.append([{ sessionId: 'w', event: { ts: Date.now(), from: FROM_B, kind: 'audio.frame', track: 'mic', data: { codec: 'opus' }, bin: audio } }]);
      await waitFor(() => seenOnA.length >= 21, { message: 'A sees B’s 21 events' });
      expect(seenOnA.map((e) => e.seq)).toEqual(Array.from({ length: 21 }, (_, i) => i + 1));
      expect([...seenOnA[20]!.bin!]).toEqual([...audio]);
    } finally {
      watch.stop();
    }
  });
});

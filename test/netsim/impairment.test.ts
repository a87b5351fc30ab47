import { describe, expect, it } from 'vitest';
import {
  DelayQueue,
  ImpairedLink,
  NO_IMPAIRMENT,
  deriveSeed,
  isNetsimError,
  mergeImpairment,
  mulberry32,
  type Impairment,
} from '../../native-free-bench/netsim/index.js';
import { until } from './helpers.js';

describe('random', () => {
  it('mulberry32 is deterministic per seed and stays in [0, 1)', () => {
    const a = mulberry32(42);
    const b = mulberry32(42);
    const c = mulberry32(43);
    const xs = Array.from({ length: 1000 }, () => a());
    expect(Array.from({ length: 1000 }, () => b())).toEqual(xs);
    expect(Array.from({ length: 1000 }, () => c())).not.toEqual(xs);
    expect(xs.every((x) => x >= 0 && x < 1)).toBe(true);
    const mean = xs.reduce((s, x) => s + x, 0) / xs.length;
    expect(mean).toBeGreaterThan(0.45);
    expect(mean).toBeLessThan(0.55);
  });

  it('deriveSeed gives distinct streams for one seed', () => {
    const seeds = new Set([0, 1, 2, 3].map((s) => deriveSeed(7, s)));
    expect(seeds.size).toBe(4);
    expect(deriveSeed(7, 1)).toBe(deriveSeed(7, 1));
  });
});

describe('mergeImpairment', () => {
  it('applies a patch over a base and keeps the rest', () => {
    const next = mergeImpairment(NO_IMPAIRMENT, { delayMs: 20, loss: 0.5 });
    expect(next).toEqual({ ...NO_IMPAIRMENT, delayMs: 20, loss: 0.5 });
    expect(mergeImpairment(next, { rateBytesPerSec: null }).rateBytesPerSec).toBeNull();
  });

  it.each<[string, Record<string, unknown>]>([
    ['negative delay', { delayMs: -1 }],
    ['NaN jitter', { jitterMs: Number.NaN }],
    ['loss above 1', { loss: 1.5 }],
    ['negative loss', { loss: -0.1 }],
    ['zero rate', { rateBytesPerSec: 0 }],
    ['infinite delay', { delayMs: Number.POSITIVE_INFINITY }],
    ['string blackhole', { blackhole: 'yes' }],
    ['unknown key', { latency: 5 }],
  ])('rejects %s with NETSIM_ERR_BAD_OPTION', (_, patch) => {
    let err: unknown;
    try {
      mergeImpairment(NO_IMPAIRMENT, patch as Partial<Impairment>);
    } catch (e) {
      err = e;
    }
    expect(isNetsimError(err, 'NETSIM_ERR_BAD_OPTION')).toBe(true);
  });
});

describe('DelayQueue', () => {
  it('delivers an item that is already due synchronously when the queue is empty', () => {
    const out: number[] = [];
    const q = new DelayQueue<number>({ deliver: (n) => out.push(n) });
    q.push(1, q.now());
    expect(out).toEqual([1]);
    expect(q.timerArmed).toBe(false);
  });

  it('releases by due time, FIFO among equal due times, never early', async () => {
    const out: { n: number; late: number }[] = [];
    const due = new Map<number, number>();
    const q = new DelayQueue<number>({ deliver: (n) => out.push({ n, late: q.now() - (due.get(n) as number) }) });
    const t0 = q.now();
    const plan: [number, number][] = [[1, 30], [2, 10], [3, 10], [4, 20], [5, 10], [6, 0.5]];
    for (const [n, d] of plan) {
      due.set(n, t0 + d);
      q.push(n, t0 + d);
    }
    await until(() => out.length === plan.length, 'all delivered');
    expect(out.map((o) => o.n)).toEqual([6, 2, 3, 5, 4, 1]);
    for (const o of out) expect(o.late).toBeGreaterThanOrEqual(0);
    expect(q.timerArmed).toBe(false);
  });

  it('holds everything while paused, then releases in order; close() drops the rest', async () => {
    const out: number[] = [];
    const q = new DelayQueue<number>({ deliver: (n) => out.push(n) });
    q.pause();
    const t0 = q.now();
    for (let i = 0; i < 5; i++) q.push(i, t0);
    expect(q.timerArmed).toBe(false);
    await new Promise((r) => setTimeout(r, 10));
    expect(out).toEqual([]);
    q.resume();
    expect(out).toEqual([0, 1, 2, 3, 4]);
    q.push(9, q.now() + 1000);
    expect(q.timerArmed).toBe(true);
    expect(q.close()).toEqual([9]);
    expect(q.timerArmed).toBe(false);
    q.push(10, 0);
    expect(out).toEqual([0, 1, 2, 3, 4]);
  });
});

describe('ImpairedLink', () => {
  function lostIndices(stream: number, extra: Partial<Impairment>): number[] {
    const lost: number[] = [];
    const link = new ImpairedLink<number>({ seed: 5, stream, impairment: { loss: 0.3, ...extra }, send: () => undefined });
    for (let i = 0; i < 500; i++) {
      const before = link.stats().dropped.loss;
      link.offer(i, 10);
      if (link.stats().dropped.loss > before) lost.push(i);
    }
    link.close();
    return lost;
  }

  it('draws loss from its own stream: other impairments do not shift which packets are lost', () => {
    const plain = lostIndices(0, {});
    expect(plain.length).toBeGreaterThan(100);
    expect(plain.length).toBeLessThan(200);
    expect(lostIndices(0, {})).toEqual(plain);
    expect(lostIndices(0, { jitterMs: 5, delayMs: 5 })).toEqual(plain);
    expect(lostIndices(0, { rateBytesPerSec: 1000, queueLimitBytes: 1e9 })).toEqual(plain);
    expect(lostIndices(1, {})).not.toEqual(plain);
  });

  it('keeps the counter invariant: received = forwarded + dropped + queued', () => {
    const link = new ImpairedLink<number>({ seed: 1, stream: 0, impairment: { loss: 0.2, delayMs: 1000 }, send: () => undefined });
    for (let i = 0; i < 100; i++) link.offer(i, 7);
    link.impairment = mergeImpairment(link.impairment, { blackhole: true });
    for (let i = 0; i < 10; i++) link.offer(i, 7);
    const s = link.stats();
    const dropped = Object.values(s.dropped).reduce((a, b) => a + b, 0);
    expect(s.received).toEqual({ packets: 110, bytes: 770 });
    expect(s.forwarded.packets + dropped + s.queued.packets).toBe(110);
    expect(s.dropped.blackhole).toBe(10);
    expect(link.timerArmed).toBe(true);
    link.close();
    expect(link.timerArmed).toBe(false);
  });
});

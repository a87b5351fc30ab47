import { describe, expect, it } from 'vitest';
import { LifelineError, formatOffset } from '../../src/protocol/index.js';
import type { TimelineEvent } from '../../src/protocol/index.js';
import { LiveSession } from '../../src/timeline/live-session.js';
import { ALICE, range, seqs, track, turn } from './fixtures.js';

function ev(seq: number): TimelineEvent {
  return { offset: formatOffset(seq), ts: seq, from: ALICE, kind: 'text.delta', data: { text: `t${seq}` } };
}

function publishRange(live: LiveSession, from: number, to: number): void {
  for (let s = from; s <= to; s++) live.publish(s, ev(s));
}

describe('LiveSession ring', () => {
  it('starts empty at the stored head: nothing newer, older positions must go to the store', () => {
    const live = new LiveSession('s', 5, 4);
    expect(live.head).toBe(5);
    expect(live.fromRing(5, 10)).toEqual([]);
    expect(live.fromRing(4, 10)).toBeUndefined();
    expect(live.fromRing(0, 10)).toBeUndefined();
  });

  it('serves contiguous events after a position, bounded by max', () => {
    const live = new LiveSession('s', 0, 8);
    publishRange(live, 1, 5);
    expect(seqs(live.fromRing(0, 10)!)).toEqual([1, 2, 3, 4, 5]);
    expect(seqs(live.fromRing(2, 2)!)).toEqual([3, 4]);
    expect(seqs(live.fromRing(4, 10)!)).toEqual([5]);
    expect(live.fromRing(5, 10)).toEqual([]);
  });

  it('wraps around: keeps exactly the newest ringSize events, in order across the wrap', () => {
    const live = new LiveSession('s', 0, 4);
    publishRange(live, 1, 10); // slots hold 9, 10, 7, 8
    expect(live.head).toBe(10);
    expect(live.fromRing(5, 10)).toBeUndefined(); // 6 was overwritten
    expect(seqs(live.fromRing(6, 10)!)).toEqual([7, 8, 9, 10]);
    expect(seqs(live.fromRing(7, 2)!)).toEqual([8, 9]); // crosses the physical end of the array
    expect(seqs(live.fromRing(8, 10)!)).toEqual([9, 10]);
    // Every window over many wraps is right.
    publishRange(live, 11, 103);
    for (let after = 99; after <= 103; after++) {
      expect(seqs(live.fromRing(after, 10)!)).toEqual(range(after + 1, 103));
    }
    expect(live.fromRing(98, 10)).toBeUndefined();
  });

  it('ignores publishes it already knows', () => {
    const live = new LiveSession('s', 3, 4);
    live.publish(2, ev(2));
    live.publish(3, ev(3));
    expect(live.head).toBe(3);
    expect(live.fromRing(2, 10)).toBeUndefined();
    publishRange(live, 4, 5);
    live.publish(4, { ...ev(4), data: { text: 'impostor' } });
    expect(live.fromRing(3, 10)!.map((e) => e.data)).toEqual([{ text: 't4' }, { text: 't5' }]);
  });

  it('restarts the ring at a gap: never serves a range with a hole, and never stale slots', () => {
    const live = new LiveSession('s', 0, 4);
    publishRange(live, 1, 3);
    live.publish(6, ev(6)); // 4 and 5 were committed while nobody held the session live
    expect(live.head).toBe(6);
    expect(seqs(live.fromRing(5, 10)!)).toEqual([6]);
    expect(live.fromRing(4, 10)).toBeUndefined();
    expect(live.fromRing(3, 10)).toBeUndefined(); // 3 is still physically in a slot, but 4, 5 are not
    expect(live.fromRing(0, 10)).toBeUndefined();
    // After the gap the ring fills and wraps as usual.
    publishRange(live, 7, 11);
    expect(live.fromRing(6, 10)).toBeUndefined();
    expect(seqs(live.fromRing(7, 10)!)).toEqual([8, 9, 10, 11]);
  });

  it('restarts at a gap that lands on an exact multiple of the ring size', () => {
    const live = new LiveSession('s', 0, 4);
    publishRange(live, 1, 4);
    live.publish(9, ev(9)); // same slot as 1 and 5
    expect(seqs(live.fromRing(8, 10)!)).toEqual([9]);
    expect(live.fromRing(4, 10)).toBeUndefined();
    expect(live.fromRing(7, 10)).toBeUndefined();
  });
});

describe('LiveSession waiting', () => {
  it('wakes every waiter at the next publish', async () => {
    const live = new LiveSession('s', 0, 4);
    const a = track(live.waitForMore().promise);
    const b = track(live.waitForMore().promise);
    await turn();
    expect(a.settled() || b.settled()).toBe(false);
    live.publish(1, ev(1));
    await Promise.all([a.promise, b.promise]);
  });

  it('a waiter armed after a publish waits for the next one', async () => {
    const live = new LiveSession('s', 0, 4);
    live.publish(1, ev(1));
    const w = track(live.waitForMore().promise);
    await turn();
    expect(w.settled()).toBe(false);
    live.publish(2, ev(2));
    await w.promise;
  });

  it('cancel resolves that waiter only and is idempotent', async () => {
    const live = new LiveSession('s', 0, 4);
    const a = live.waitForMore();
    const b = track(live.waitForMore().promise);
    a.cancel();
    a.cancel();
    await a.promise;
    await turn();
    expect(b.settled()).toBe(false);
    live.publish(1, ev(1));
    await b.promise;
  });

  it('close wakes waiters, forgets the ring, keeps the first reason, and later waits resolve at once', async () => {
    const live = new LiveSession('s', 0, 4);
    publishRange(live, 1, 3);
    const w = live.waitForMore();
    const first = new LifelineError('SESSION_EXPIRED');
    live.close(first);
    live.close(new LifelineError('SHUTTING_DOWN'));
    await w.promise;
    expect(live.closedWith).toBe(first);
    expect(live.fromRing(0, 10)).toBeUndefined();
    await live.waitForMore().promise;
  });
});

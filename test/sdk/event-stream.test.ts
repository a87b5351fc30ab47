import { describe, expect, it, vi } from 'vitest';
import { formatOffset } from '../../src/protocol/index.js';
import type { TimelineEvent } from '../../src/protocol/index.js';
import { EventStream } from '../../src/sdk/event-stream.js';

function ev(seq: number): TimelineEvent {
  return { offset: formatOffset(seq), ts: seq, from: { participant: 'a', device: 'd', role: 'user' }, kind: 'text.delta', data: { text: `t${seq}` } };
}

const seqOf = (e: TimelineEvent): number => Number(e.offset);
const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

function stream(limit = 4) {
  const onDrained = vi.fn();
  const onResume = vi.fn();
  return { s: new EventStream(limit, onDrained, onResume), onDrained, onResume };
}

async function take(it: AsyncIterator<TimelineEvent>, n: number): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const r = await it.next();
    if (r.done) break;
    out.push(seqOf(r.value));
  }
  return out;
}

describe('EventStream', () => {
  it('keeps every event that arrives before the first iterator, and is full once it holds limit', async () => {
    const { s } = stream(4);
    for (let i = 1; i <= 3; i++) s.push(ev(i));
    expect(s.full).toBe(false);
    s.push(ev(4));
    expect(s.full).toBe(true); // stop acknowledging: the relay stops sending after its window
    s.push(ev(5)); // what was already in flight is still kept: nothing is dropped
    s.push(ev(6));
    const it = s[Symbol.asyncIterator]();
    expect(await take(it, 3)).toEqual([1, 2, 3]);
    expect(s.full).toBe(false); // 3 left in the claimed queue
    expect(await take(it, 3)).toEqual([4, 5, 6]);
    s.push(ev(7));
    expect(await take(it, 1)).toEqual([7]);
  });

  it('with on(event) listeners the early buffer keeps only the newest limit events and never fills', async () => {
    const s = new EventStream(4, () => {}, () => {}, () => true);
    for (let i = 1; i <= 6; i++) s.push(ev(i));
    expect(s.full).toBe(false); // listeners have seen every event: never stall them
    expect(await take(s[Symbol.asyncIterator](), 4)).toEqual([3, 4, 5, 6]);
  });

  it('hands the early buffer to the first iterator only', async () => {
    const { s } = stream(4);
    s.push(ev(1));
    const first = s[Symbol.asyncIterator]();
    const second = s[Symbol.asyncIterator]();
    s.push(ev(2));
    expect(await take(first, 2)).toEqual([1, 2]);
    expect(await take(second, 1)).toEqual([2]);
  });

  it('delivers to a waiting iterator and to every iterator', async () => {
    const { s } = stream(4);
    const a = s[Symbol.asyncIterator]();
    const b = s[Symbol.asyncIterator]();
    const pa = take(a, 2);
    const pb = take(b, 2);
    await turn();
    s.push(ev(1));
    s.push(ev(2));
    expect(await pa).toEqual([1, 2]);
    expect(await pb).toEqual([1, 2]);
  });

  it('is full while an iterator holds limit events, and calls onDrained as it empties', async () => {
    const { s, onDrained } = stream(3);
    const it = s[Symbol.asyncIterator]();
    s.push(ev(1));
    s.push(ev(2));
    expect(s.full).toBe(false);
    s.push(ev(3));
    expect(s.full).toBe(true);
    s.push(ev(4)); // still queued: the session stops acknowledging, it does not drop
    expect(s.full).toBe(true);
    onDrained.mockClear();
    expect(await take(it, 1)).toEqual([1]);
    expect(s.full).toBe(true); // 3 left
    expect(await take(it, 1)).toEqual([2]); // 2 left = limit - 1: room again
    expect(s.full).toBe(false);
    expect(onDrained).toHaveBeenCalledTimes(1);
    expect(await take(it, 2)).toEqual([3, 4]);
    expect(onDrained).toHaveBeenCalledTimes(2); // and once more when empty
  });

  it('one slow iterator makes the stream full even if another keeps up', async () => {
    const { s } = stream(2);
    const slow = s[Symbol.asyncIterator]();
    const fast = s[Symbol.asyncIterator]();
    s.push(ev(1));
    s.push(ev(2));
    await take(fast, 2);
    expect(s.full).toBe(true);
    await take(slow, 1);
    expect(s.full).toBe(false);
  });

  it('reset forgets queued and early events', async () => {
    const early = stream(4);
    early.s.push(ev(1));
    early.s.reset();
    early.s.push(ev(2));
    expect(await take(early.s[Symbol.asyncIterator](), 1)).toEqual([2]);

    const { s } = stream(4);
    const it = s[Symbol.asyncIterator]();
    s.push(ev(1));
    s.push(ev(2));
    s.reset();
    expect(s.full).toBe(false);
    s.push(ev(9));
    expect(await take(it, 1)).toEqual([9]);
  });

  it('resume resets, calls back with the position, and returns the stream', async () => {
    const { s, onResume } = stream(4);
    const it = s[Symbol.asyncIterator]();
    s.push(ev(5));
    const again = s.resume(formatOffset(2));
    expect(again).toBe(s);
    expect(onResume).toHaveBeenCalledWith(formatOffset(2));
    s.push(ev(3));
    expect(await take(it, 1)).toEqual([3]);
  });

  it('end finishes iterators after what they hold, wakes waiters, and ignores later pushes', async () => {
    const { s } = stream(4);
    const holding = s[Symbol.asyncIterator]();
    const waiting = s[Symbol.asyncIterator]();
    s.push(ev(1));
    await take(waiting, 1);
    const pending = waiting.next();
    s.end();
    expect(await pending).toEqual({ done: true, value: undefined });
    s.push(ev(2));
    expect(await take(holding, 5)).toEqual([1]);
    expect(await holding.next()).toEqual({ done: true, value: undefined });
    // An iterator started after end sees the end at once.
    expect(await s[Symbol.asyncIterator]().next()).toEqual({ done: true, value: undefined });
  });

  it('break out of for-await releases the iterator (return) so it no longer holds the stream full', async () => {
    const { s, onDrained } = stream(2);
    const seen: number[] = [];
    const loop = (async () => {
      for await (const e of s) {
        seen.push(seqOf(e));
        if (seqOf(e) === 2) break;
      }
    })();
    await turn();
    for (let i = 1; i <= 4; i++) s.push(ev(i));
    expect(s.full).toBe(true);
    onDrained.mockClear();
    await loop;
    expect(seen).toEqual([1, 2]);
    expect(onDrained).toHaveBeenCalled(); // the session may acknowledge again
    expect(s.full).toBe(false); // 3 and 4 were left in a queue nobody reads: it is gone
    for (let i = 5; i <= 10; i++) s.push(ev(i));
    expect(s.full).toBe(false);
    const next = s[Symbol.asyncIterator]();
    s.push(ev(11));
    expect(await take(next, 1)).toEqual([11]);
  });

  it('return() on an explicit iterator finishes it and calls onDrained', async () => {
    const { s, onDrained } = stream(2);
    const it = s[Symbol.asyncIterator]();
    s.push(ev(1));
    s.push(ev(2));
    expect(s.full).toBe(true);
    onDrained.mockClear();
    expect(await it.return!()).toEqual({ done: true, value: undefined });
    expect(s.full).toBe(false);
    expect(onDrained).toHaveBeenCalledTimes(1);
  });
});

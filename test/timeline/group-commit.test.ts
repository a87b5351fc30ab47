import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatOffset } from '../../src/protocol/index.js';
import type { AppendResult } from '../../src/timeline/index.js';
import { Timeline } from '../../src/timeline/index.js';
import { GroupCommitter } from '../../src/timeline/group-commit.js';
import { InstrumentedStore, range, text, track, turn, turns } from './fixtures.js';

const offsetsOf = (results: AppendResult[][]): string[] =>
  results.flat().map((r) => {
    if (!r.ok) throw r.error;
    return r.offset;
  });

describe('group commit through the timeline', () => {
  let store: InstrumentedStore;
  let timeline: Timeline;

  beforeEach(async () => {
    store = new InstrumentedStore();
    timeline = new Timeline(store);
    await timeline.createSession({ id: 'a' });
    await timeline.createSession({ id: 'b' });
  });

  afterEach(() => timeline.close());

  it('commits appends made in the same turn in one store transaction, in call order', async () => {
    const results = await Promise.all(range(1, 200).map((n) => timeline.append('a', [text(n)])));
    expect(store.appendCalls).toHaveLength(1);
    expect(store.appendCalls[0]).toHaveLength(200);
    expect(offsetsOf(results)).toEqual(range(1, 200).map(formatOffset));
    const stored = await store.inner.read('a', 0, 1000);
    expect(stored.map((e) => e.data)).toEqual(range(1, 200).map((n) => ({ text: `t${n}` })));
  });

  it('splits at maxBatch, never splitting one append call', async () => {
    await timeline.close();
    store = new InstrumentedStore();
    timeline = new Timeline(store, { maxBatch: 10 });
    await timeline.createSession({ id: 'a' });
    const calls = [
      ...range(1, 25).map((n) => timeline.append('a', [text(n)])),
      timeline.append('a', range(26, 40).map(text)), // 15 entries: larger than a batch, goes alone
      ...range(41, 45).map((n) => timeline.append('a', [text(n)])),
    ];
    const results = await Promise.all(calls);
    expect(store.appendCalls.map((c) => c.length)).toEqual([10, 10, 5, 15, 5]);
    expect(offsetsOf(results)).toEqual(range(1, 45).map(formatOffset));
  });

  it('appends that arrive while a commit is in flight form the next batch', async () => {
    const release = store.hold();
    const first = timeline.append('a', [text(1)]);
    await store.appendCalled(1);
    const rest = range(2, 100).map((n) => timeline.append('a', [text(n)]));
    await turns(3);
    expect(store.appendCalls).toHaveLength(1); // nothing overtakes the batch in flight
    release();
    const results = await Promise.all([first, ...rest]);
    expect(store.appendCalls.map((c) => c.length)).toEqual([1, 99]);
    expect(offsetsOf(results)).toEqual(range(1, 100).map(formatOffset));
  });

  it('keeps per-session order when sessions interleave in one batch', async () => {
    const calls: Promise<AppendResult[]>[] = [];
    const expected: { session: string; n: number }[] = [];
    for (let i = 1; i <= 60; i++) {
      const session = i % 3 === 0 ? 'b' : 'a';
      calls.push(timeline.append(session, [text(i)]));
      expected.push({ session, n: i });
    }
    const results = await Promise.all(calls);
    expect(store.appendCalls).toHaveLength(1);
    for (const session of ['a', 'b']) {
      const mine = expected.map((e, i) => ({ ...e, r: results[i]![0]! })).filter((e) => e.session === session);
      expect(mine.map((e) => (e.r.ok ? e.r.offset : 'x'))).toEqual(range(1, mine.length).map(formatOffset));
      const stored = await store.inner.read(session, 0, 100);
      expect(stored.map((e) => e.data)).toEqual(mine.map((e) => ({ text: `t${e.n}` })));
    }
  });

  it('a failing store append rejects every append of that batch, writes nothing, and later appends work', async () => {
    const boom = new Error('disk on fire');
    store.failNext(boom);
    const batch = range(1, 3).map((n) => track(timeline.append('a', [text(n)])));
    for (const b of batch) await expect(b.promise).rejects.toBe(boom);
    expect(store.appendCalls).toHaveLength(1);
    expect(await store.inner.head('a')).toBe(0);
    const [later] = await timeline.append('a', [text(4)]);
    expect(later).toEqual({ ok: true, offset: formatOffset(1), duplicate: false });
  });

  it('a failed batch does not take the queued batch behind it down', async () => {
    const release = store.hold();
    const failing = track(timeline.append('a', [text(1)]));
    await store.appendCalled(1);
    const queued = [timeline.append('a', [text(2)]), timeline.append('a', [text(3)])];
    release(new Error('transaction aborted'));
    await expect(failing.promise).rejects.toThrow('transaction aborted');
    expect(offsetsOf(await Promise.all(queued))).toEqual([formatOffset(1), formatOffset(2)]);
    expect(store.appendCalls.map((c) => c.length)).toEqual([1, 2]);
  });
});

describe('GroupCommitter', () => {
  it('drain resolves at once when idle, and after the commit in flight otherwise', async () => {
    const store = new InstrumentedStore();
    await store.createSession({ id: 's', createdAt: 0, expiresAt: null, metadata: {} });
    const committed: number[] = [];
    const gc = new GroupCommitter(store, 100, (entries) => committed.push(entries.length));
    await gc.drain();

    const release = store.hold();
    const entry = { sessionId: 's', event: { ts: 0, from: text(0).from, kind: 'text.delta' as const, data: { text: 'x' } } };
    const a = track(gc.submit([entry, entry]));
    expect(gc.backlog).toBe(2);
    const drained = track(gc.drain());
    await store.appendCalled(1);
    expect(gc.backlog).toBe(0); // taken into the batch in flight
    const b = track(gc.submit([entry]));
    expect(gc.backlog).toBe(1);
    await turns(3);
    expect(drained.settled()).toBe(false);
    release();
    await drained.promise;
    // drain waits for what was submitted before it *and* what joined while it waited
    expect(a.settled() && b.settled()).toBe(true);
    expect(committed).toEqual([2, 1]);
    expect(gc.backlog).toBe(0);
    await turn();
  });
});

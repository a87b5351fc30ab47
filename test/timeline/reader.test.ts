import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatOffset } from '../../src/protocol/index.js';
import type { TimelineEvent } from '../../src/protocol/index.js';
import { Timeline } from '../../src/timeline/index.js';
import type { TimelineReader } from '../../src/timeline/index.js';
import { InstrumentedStore, collect, range, rejectionCode, seqs, text, texts, track, turn, turns } from './fixtures.js';

let store: InstrumentedStore;
let timeline: Timeline;

async function fill(session: string, from: number, to: number): Promise<void> {
  await Promise.all(range(from, to).map((n) => timeline.append(session, [text(n)])));
}

beforeEach(async () => {
  store = new InstrumentedStore();
  timeline = new Timeline(store, { ringSize: 16 });
  await timeline.createSession({ id: 's' });
});

afterEach(() => timeline.close());

describe('commit before deliver', () => {
  it('a live reader gets nothing until the store has committed', async () => {
    const log: string[] = [];
    const reader = await timeline.reader('s', 0);
    const got = track(reader.next(10).then((events) => (log.push('delivered'), events)));
    const release = store.hold();
    const appended = timeline.append('s', [text(1)]);
    await store.appendCalled(1);
    await turns(5);
    expect(got.settled()).toBe(false);
    expect(await store.inner.head('s')).toBe(0);
    log.push('commit');
    release();
    await appended;
    expect(seqs(await got.promise)).toEqual([1]);
    expect(log).toEqual(['commit', 'delivered']);
    reader.close();
  });

  it('does not deliver from memory while the store has not acknowledged the commit', async () => {
    // The store already wrote the batch but its append has not resolved (e.g. fsync pending):
    // a reader at the head waits on the ring, which is only fed after the commit resolves.
    const reader = await timeline.reader('s', 0);
    const got = track(reader.next(10));
    const release = store.hold({ visible: true });
    const appended = track(timeline.append('s', [text(1), text(2)]));
    await store.appendCalled(1);
    await turns(5);
    expect(got.settled()).toBe(false);
    expect(appended.settled()).toBe(false);
    release();
    expect(seqs(await got.promise)).toEqual([1, 2]);
    await appended.promise;
    reader.close();
  });

  it('events of a failed commit are never delivered', async () => {
    const reader = await timeline.reader('s', 0);
    const got = track(reader.next(10));
    store.failNext(new Error('io error'));
    await expect(timeline.append('s', [text('lost')])).rejects.toThrow('io error');
    await turns(3);
    expect(got.settled()).toBe(false);
    await timeline.append('s', [text('kept')]);
    const events = await got.promise;
    expect(texts(events)).toEqual(['tkept']);
    expect(seqs(events)).toEqual([1]);
    reader.close();
  });
});

describe('TimelineReader', () => {
  it('catches up from the store, then goes live from the ring', async () => {
    await fill('s', 1, 40);
    const reader = await timeline.reader('s', 0);
    const catchUp = await collect(reader, 40, 15);
    expect(seqs(catchUp)).toEqual(range(1, 40));
    expect(texts(catchUp)).toEqual(range(1, 40).map((n) => `t${n}`));
    const readsAfterCatchUp = store.readCalls.length;
    expect(readsAfterCatchUp).toBeGreaterThan(0);

    const live = track(collect(reader, 10));
    await turn();
    await fill('s', 41, 50);
    expect(seqs(await live.promise)).toEqual(range(41, 50));
    expect(store.readCalls.length).toBe(readsAfterCatchUp); // served from memory
    expect(reader.cursor).toBe(50);
    reader.close();
  });

  it('starts after the given position', async () => {
    await fill('s', 1, 10);
    const reader = await timeline.reader('s', 7);
    expect(seqs(await collect(reader, 3))).toEqual([8, 9, 10]);
    reader.close();
  });

  it('a reader that falls far behind the ring still gets every event, once, in order', async () => {
    const reader = await timeline.reader('s', 0);
    const received: TimelineEvent[] = [];
    const consuming = (async () => {
      while (received.length < 1000) {
        const batch = await reader.next(7);
        if (batch.length === 0) throw new Error('reader ended early');
        received.push(...batch);
        // a slow consumer: yields a few turns per batch while the producer races ahead
        await turns(2);
      }
    })();
    for (let chunk = 0; chunk < 50; chunk++) {
      await fill('s', chunk * 20 + 1, chunk * 20 + 20);
    }
    await consuming;
    expect(seqs(received)).toEqual(range(1, 1000));
    expect(texts(received)).toEqual(range(1, 1000).map((n) => `t${n}`));
    expect(store.readCalls.length).toBeGreaterThan(0); // it did fall back to the store
    reader.close();
  });

  it('a reader far behind a ring that has wrapped many times recovers from the store', async () => {
    const reader = await timeline.reader('s', 0);
    await fill('s', 1, 1000); // one batch, 1000 publishes into a ring of 16
    expect(seqs(await collect(reader, 1000, 100))).toEqual(range(1, 1000));
    reader.close();
  });

  it('seek moves the next batch', async () => {
    await fill('s', 1, 10);
    const reader = await timeline.reader('s', 0);
    expect(seqs(await collect(reader, 10))).toEqual(range(1, 10));
    reader.seek(3);
    expect(reader.cursor).toBe(3);
    expect(seqs(await reader.next(2))).toEqual([4, 5]);
    reader.seek(9);
    expect(seqs(await reader.next(10))).toEqual([10]);
    reader.close();
  });

  it('seek while waiting resolves the pending next with [] and the next call starts at the new position', async () => {
    await fill('s', 1, 5);
    const reader = await timeline.reader('s', 5);
    const waiting = reader.next(10);
    await turn();
    reader.seek(2);
    expect(await waiting).toEqual([]);
    expect(seqs(await reader.next(10))).toEqual([3, 4, 5]);
    reader.close();
  });

  it('close while waiting resolves next with [] and releases the live session', async () => {
    const reader = await timeline.reader('s', 0);
    expect(timeline.liveSessions).toBe(1);
    const waiting = track(reader.next(10));
    await turns(2);
    expect(waiting.settled()).toBe(false);
    reader.close();
    expect(await waiting.promise).toEqual([]);
    expect(reader.closed).toBe(true);
    expect(await reader.next(10)).toEqual([]);
    reader.close(); // idempotent: releases only once
    expect(timeline.liveSessions).toBe(0);
  });

  it('close during a store read resolves next with []', async () => {
    await fill('s', 1, 5);
    const reader = await timeline.reader('s', 0);
    const pending = reader.next(10); // goes to the store (the ring is empty)
    reader.close();
    expect(await pending).toEqual([]);
  });

  it('refuses a position beyond the head with OFFSET_OUT_OF_RANGE and holds nothing', async () => {
    await fill('s', 1, 3);
    expect(await rejectionCode(timeline.reader('s', 4))).toBe('OFFSET_OUT_OF_RANGE');
    expect(timeline.liveSessions).toBe(0);
    const atHead = await timeline.reader('s', 3);
    const waiting = track(atHead.next(5));
    await fill('s', 4, 4);
    expect(seqs(await waiting.promise)).toEqual([4]);
    atHead.close();
  });

  it('refuses unknown sessions with SESSION_NOT_FOUND', async () => {
    expect(await rejectionCode(timeline.reader('nope', 0))).toBe('SESSION_NOT_FOUND');
    expect(timeline.liveSessions).toBe(0);
  });

  it('several readers see identical timelines whatever their batch size', async () => {
    await fill('s', 1, 30);
    const readers: TimelineReader[] = [];
    for (const at of [0, 0, 0]) readers.push(await timeline.reader('s', at));
    expect(timeline.liveSessions).toBe(1);
    const results = readers.map((r, i) => collect(r, 200, [1, 7, 64][i]));
    for (let chunk = 0; chunk < 17; chunk++) await fill('s', 31 + chunk * 10, 40 + chunk * 10);
    const [a, b, c] = await Promise.all(results);
    expect(seqs(a!)).toEqual(range(1, 200));
    expect(b).toEqual(a);
    expect(c).toEqual(a);
    for (const r of readers) r.close();
    expect(timeline.liveSessions).toBe(0);
  });

  it('delivers ts, origin, kind, track and binary payloads as appended', async () => {
    const reader = await timeline.reader('s', 0);
    const bin = new Uint8Array([1, 2, 3]);
    await timeline.append('s', [{ from: text(0).from, kind: 'audio.frame', track: 'mic', data: { codec: 'opus' }, bin }]);
    const [live] = await reader.next(1);
    expect(live).toMatchObject({ offset: formatOffset(1), from: text(0).from, kind: 'audio.frame', track: 'mic', data: { codec: 'opus' } });
    expect(live!.bin).toEqual(bin);
    reader.close();
    const late = await timeline.reader('s', 0); // from the store this time
    const [stored] = await late.next(1);
    expect(stored).toEqual(live);
    late.close();
  });
});

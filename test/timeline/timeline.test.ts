import { afterEach, describe, expect, it, vi } from 'vitest';
import { LifelineError, formatOffset } from '../../src/protocol/index.js';
import { Timeline } from '../../src/timeline/index.js';
import type { AppendResult, TimelineObserver } from '../../src/timeline/index.js';
import { InstrumentedStore, collect, range, rejectionCode, seqs, text, track, turn, turns } from './fixtures.js';

const T0 = 1_700_000_000_000;

/** A timeline on an instrumented memory store with a clock the test moves. */
function setup(opts: { maxBacklog?: number; observer?: TimelineObserver } = {}) {
  const clock = { now: T0 };
  const store = new InstrumentedStore();
  const timeline = new Timeline(store, { ringSize: 16, now: () => clock.now, ...opts });
  return { clock, store, timeline };
}

let current: Timeline | undefined;
afterEach(async () => {
  vi.useRealTimers();
  await current?.close();
  current = undefined;
});

function open(opts: Parameters<typeof setup>[0] = {}) {
  const s = setup(opts);
  current = s.timeline;
  return s;
}

describe('sessions', () => {
  it('creates sessions with the injected clock and reports their head', async () => {
    const { timeline } = open();
    const rec = await timeline.createSession({ id: 's', ttlSeconds: 1.5, metadata: { app: 'demo' } });
    expect(rec).toEqual({ id: 's', createdAt: T0, expiresAt: T0 + 1500, idleTtlMs: null, metadata: { app: 'demo' } });
    expect((await timeline.createSession()).id).toMatch(/^[0-9a-f]{24}$/);
    expect(await rejectionCode(timeline.createSession({ id: 's' }))).toBe('SESSION_EXISTS');
    await timeline.append('s', [text(1), text(2)]);
    expect(await timeline.describe('s')).toMatchObject({ id: 's', head: formatOffset(2) });
    expect(await rejectionCode(timeline.session('nope'))).toBe('SESSION_NOT_FOUND');
    expect(await rejectionCode(timeline.append('nope', [text(1)]))).toBe('SESSION_NOT_FOUND');
  });

  it('answers a producer retry with the original offset and refuses a stale epoch', async () => {
    const observer = { rejected: vi.fn() };
    const { timeline } = open({ observer });
    await timeline.createSession({ id: 's' });
    const p = (epoch: number, seq: number) => ({ ...text(`${epoch}/${seq}`), producer: { id: 'p', epoch, seq } });
    expect(await timeline.append('s', [p(0, 0), p(0, 1)])).toMatchObject([{ ok: true, offset: formatOffset(1) }, { ok: true, offset: formatOffset(2) }]);
    expect(await timeline.append('s', [p(0, 1)])).toEqual([{ ok: true, offset: formatOffset(2), duplicate: true }]);
    await timeline.append('s', [p(1, 0)]);
    const [stale] = await timeline.append('s', [p(0, 2)]);
    expect(stale!.ok).toBe(false);
    expect((stale as Extract<AppendResult, { ok: false }>).error.code).toBe('STALE_EPOCH');
    expect((stale as Extract<AppendResult, { ok: false }>).current).toEqual({ id: 'p', epoch: 1, seq: 0 });
    expect(observer.rejected).toHaveBeenCalledWith('STALE_EPOCH');
    expect(await timeline.head('s')).toBe(3);
  });
});

describe('TTL', () => {
  it('an expired session refuses appends and readers with SESSION_EXPIRED, before any sweep', async () => {
    const { clock, timeline, store } = open();
    await timeline.createSession({ id: 's', ttlSeconds: 10 });
    await timeline.append('s', [text(1)]);
    clock.now = T0 + 9_999;
    await timeline.append('s', [text(2)]);
    clock.now = T0 + 10_000;
    expect(await rejectionCode(timeline.append('s', [text(3)]))).toBe('SESSION_EXPIRED');
    expect(await rejectionCode(timeline.reader('s', 0))).toBe('SESSION_EXPIRED');
    expect(await rejectionCode(timeline.session('s'))).toBe('SESSION_EXPIRED');
    expect(await store.inner.head('s')).toBe(2);
    // A timeline that has not cached the record judges it the same way.
    const fresh = new Timeline(store, { now: () => clock.now });
    expect(await rejectionCode(fresh.append('s', [text(3)]))).toBe('SESSION_EXPIRED');
  });

  it('sweepExpired deletes expired sessions only; their waiting readers end with SESSION_EXPIRED', async () => {
    const observer = { sessionsExpired: vi.fn() };
    const { clock, timeline, store } = open({ observer });
    await timeline.createSession({ id: 'short', ttlSeconds: 5 });
    await timeline.createSession({ id: 'long', ttlSeconds: 60 });
    await timeline.createSession({ id: 'forever' });
    await timeline.append('short', [text(1)]);
    const reader = await timeline.reader('short', 1);
    const waiting = track(reader.next(10));
    const survivor = await timeline.reader('long', 0);
    const survivorWaiting = track(survivor.next(10));

    expect(await timeline.sweepExpired()).toBe(0);
    expect(observer.sessionsExpired).not.toHaveBeenCalled();
    clock.now = T0 + 5_000;
    expect(await timeline.sweepExpired()).toBe(1);
    expect(observer.sessionsExpired).toHaveBeenCalledWith(1);

    expect(await rejectionCode(waiting.promise)).toBe('SESSION_EXPIRED');
    expect(await rejectionCode(reader.next(10))).toBe('SESSION_EXPIRED'); // and stays ended
    reader.close();
    expect(await store.inner.getSession('short')).toBeUndefined();
    expect(await store.inner.getSession('long')).toBeDefined();
    expect(await store.inner.getSession('forever')).toBeDefined();
    expect(timeline.liveSessions).toBe(1);
    await turns(2);
    expect(survivorWaiting.settled()).toBe(false);
    await timeline.append('long', [text(1)]);
    expect(seqs(await survivorWaiting.promise)).toEqual([1]);
    survivor.close();
  });

  it('the sweeper runs on its interval and leaves no timer after close', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { clock, timeline, store } = open();
    await timeline.createSession({ id: 's', ttlSeconds: 1 });
    const onError = vi.fn();
    expect(vi.getTimerCount()).toBe(0);
    timeline.startSweeper(1000, onError);
    timeline.startSweeper(1000, onError); // idempotent
    expect(vi.getTimerCount()).toBe(1);
    clock.now = T0 + 1_000;
    await vi.advanceTimersByTimeAsync(1000);
    await turns(2);
    expect(await store.inner.getSession('s')).toBeUndefined();
    expect(onError).not.toHaveBeenCalled();
    await timeline.close();
    expect(vi.getTimerCount()).toBe(0);
    timeline.startSweeper(1000, onError);
    expect(vi.getTimerCount()).toBe(0);
  });

  it('a sweeper started only after close starts no timer', async () => {
    vi.useFakeTimers({ toFake: ['setInterval', 'clearInterval'] });
    const { timeline } = open();
    await timeline.close();
    timeline.startSweeper(1000, () => {});
    expect(vi.getTimerCount()).toBe(0);
  });
});

describe('deleteSession', () => {
  it('ends waiting readers with SESSION_NOT_FOUND and forgets the session', async () => {
    const { timeline, store } = open();
    await timeline.createSession({ id: 's' });
    await timeline.append('s', [text(1)]);
    const a = await timeline.reader('s', 1);
    const b = await timeline.reader('s', 0);
    const waiting = track(a.next(10));
    expect(await timeline.deleteSession('s')).toBe(true);
    expect(await rejectionCode(waiting.promise)).toBe('SESSION_NOT_FOUND');
    expect(await rejectionCode(b.next(10))).toBe('SESSION_NOT_FOUND');
    a.close();
    b.close();
    expect(timeline.liveSessions).toBe(0);
    expect(await store.inner.getSession('s')).toBeUndefined();
    expect(await rejectionCode(timeline.append('s', [text(2)]))).toBe('SESSION_NOT_FOUND');
    expect(await rejectionCode(timeline.reader('s', 0))).toBe('SESSION_NOT_FOUND');
    expect(await timeline.deleteSession('s')).toBe(false);
  });
});

/** Opens a reader while `race` runs; what the reader ends up with: an error code, events, or 'hung'. */
async function readerRacing(timeline: Timeline, id: string, race: () => Promise<unknown>): Promise<string> {
  const opening = timeline.reader(id, 0).then(
    async (r) => {
      try {
        const events = await Promise.race([r.next(10), new Promise<'hung'>((res) => setTimeout(() => res('hung'), 200))]);
        return events === 'hung' ? events : 'events';
      } catch (e) {
        return e instanceof LifelineError ? e.code : String(e);
      } finally {
        r.close();
      }
    },
    (e: unknown) => (e instanceof LifelineError ? e.code : String(e)),
  );
  await race();
  return opening;
}

describe('sessions ending while a reader opens', () => {
  it('deleteSession: the reader is refused or ended, never left waiting', async () => {
    const { timeline } = open();
    await timeline.createSession({ id: 's' });
    expect(await readerRacing(timeline, 's', () => timeline.deleteSession('s'))).toBe('SESSION_NOT_FOUND');
    expect(timeline.liveSessions).toBe(0);
  });

  it('sweepExpired: the reader is refused or ended, never left waiting', async () => {
    const { timeline, clock } = open();
    await timeline.createSession({ id: 's', ttlSeconds: 1 });
    const outcome = await readerRacing(timeline, 's', async () => {
      clock.now = T0 + 1000;
      await timeline.sweepExpired();
    });
    expect(['SESSION_EXPIRED', 'SESSION_NOT_FOUND']).toContain(outcome);
    expect(timeline.liveSessions).toBe(0);
  });
});

describe('back-pressure', () => {
  it('refuses appends beyond maxBacklog with OUTBOX_FULL, without writing them', async () => {
    const { timeline, store } = open({ maxBacklog: 4 });
    await timeline.createSession({ id: 's' });
    const accepted = range(1, 4).map((n) => timeline.append('s', [text(n)]));
    expect(timeline.backlog).toBe(4);
    const [refused] = await timeline.append('s', [text(5)]);
    expect(refused!.ok).toBe(false);
    expect((refused as Extract<AppendResult, { ok: false }>).error.code).toBe('OUTBOX_FULL');
    const many = await timeline.append('s', [text(6), text(7)]);
    expect(many.map((r) => (r.ok ? 'ok' : r.error.code))).toEqual(['OUTBOX_FULL', 'OUTBOX_FULL']);
    const results = await Promise.all(accepted);
    expect(results.flat().map((r) => (r.ok ? r.offset : r.error.code))).toEqual(range(1, 4).map(formatOffset));
    expect(await store.inner.head('s')).toBe(4);
    expect(timeline.backlog).toBe(0);
    expect(await timeline.append('s', [text(8), text(9), text(10), text(11)])).toHaveLength(4);
  });

  it('one append larger than maxBacklog is refused whole', async () => {
    const { timeline, store } = open({ maxBacklog: 3 });
    await timeline.createSession({ id: 's' });
    const results = await timeline.append('s', range(1, 4).map(text));
    expect(results.every((r) => !r.ok && r.error.code === 'OUTBOX_FULL')).toBe(true);
    expect(store.appendCalls).toHaveLength(0);
  });
});

describe('close', () => {
  it('drains pending commits, ends readers with SHUTTING_DOWN, closes the store, then refuses new work', async () => {
    const { timeline, store } = open();
    await timeline.createSession({ id: 's' });
    const reader = await timeline.reader('s', 0);
    const release = store.hold();
    const pending = range(1, 3).map((n) => track(timeline.append('s', [text(n)])));
    await store.appendCalled(1);
    const queued = track(timeline.append('s', [text(4)])); // queued behind the batch in flight
    const closing = track(timeline.close());
    await turns(3);
    expect(closing.settled()).toBe(false);
    expect(store.closed).toBe(false);
    release();
    await closing.promise;
    for (const p of [...pending, queued]) expect((await p.promise)[0]!.ok).toBe(true);
    expect(store.closed).toBe(true);
    // The reader was live: it got the committed events from its ring, then the shutdown.
    expect(await rejectionCode(reader.next(10))).toBe('SHUTTING_DOWN');
    reader.close();
    expect(await rejectionCode(timeline.append('s', [text(5)]))).toBe('SHUTTING_DOWN');
    expect(await rejectionCode(timeline.reader('s', 0))).toBe('SHUTTING_DOWN');
    expect(await rejectionCode(timeline.createSession())).toBe('SHUTTING_DOWN');
    await timeline.close(); // idempotent
  });

  it('an append that began before close but had not reached the committer is refused, not lost', async () => {
    const { timeline, store } = open();
    // A session this timeline has not cached: append() must look it up first.
    await store.createSession({ id: 's', createdAt: T0, expiresAt: null, metadata: {} });
    const appending = track(timeline.append('s', [text(1)]));
    const closing = timeline.close();
    await closing;
    const outcome = await appending.promise.then(
      (r) => (r[0]!.ok ? 'committed' : r[0]!.error.code),
      (e: unknown) => (e instanceof LifelineError ? e.code : String(e)),
    );
    // Either committed before the store closed, or refused as SHUTTING_DOWN: never another error.
    expect(['committed', 'SHUTTING_DOWN']).toContain(outcome);
    await turn();
    expect(store.appendCalls.length === 0 || outcome === 'committed').toBe(true);
  });

  it('a reader requested concurrently with close does not hang: it is refused or ended', async () => {
    const { timeline } = open();
    await timeline.createSession({ id: 's' });
    const opening = timeline.reader('s', 0).then(
      async (r) => {
        try {
          return await Promise.race([r.next(10).then(() => 'events'), new Promise((res) => setTimeout(() => res('hung'), 200))]);
        } catch (e) {
          return e instanceof LifelineError ? e.code : String(e);
        } finally {
          r.close();
        }
      },
      (e: unknown) => (e instanceof LifelineError ? e.code : String(e)),
    );
    await timeline.close();
    expect(await opening).toBe('SHUTTING_DOWN');
    expect(timeline.liveSessions).toBe(0);
  });

  it('end-to-end: readers collect what was committed before close', async () => {
    const { timeline } = open();
    await timeline.createSession({ id: 's' });
    const reader = await timeline.reader('s', 0);
    const got = collect(reader, 5);
    await Promise.all(range(1, 5).map((n) => timeline.append('s', [text(n)])));
    expect(seqs(await got)).toEqual(range(1, 5));
    reader.close();
  });
});

import { expect } from 'vitest';
import { LifelineError } from '../../src/protocol/index.js';
import type { ErrorCode, Origin, ProducerRef, ProducerState, TimelineEvent } from '../../src/protocol/index.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import type { AppendEntry, AppendOutcome, SessionRecord, Store, StoredEvent, LeaseRecord } from '../../src/store/index.js';
import type { AppendInput, TimelineReader } from '../../src/timeline/index.js';

export const ALICE: Origin = { participant: 'alice', device: 'phone-1', role: 'user' };

/** A text event to append; `n` ends up in data.text so order can be checked. */
export function text(n: number | string): AppendInput {
  return { from: ALICE, kind: 'text.delta', data: { text: `t${n}` } };
}

/** The numbers `text()` put in a list of events. */
export function texts(events: readonly TimelineEvent[]): string[] {
  return events.map((e) => (e.data as { text: string }).text);
}

export function seqs(events: readonly TimelineEvent[]): number[] {
  return events.map((e) => Number(e.offset));
}

export const range = (from: number, to: number): number[] => Array.from({ length: to - from + 1 }, (_, i) => from + i);

/** Resolves after the current I/O turn (the group committer flushes on setImmediate). */
export const turn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

export async function turns(n: number): Promise<void> {
  for (let i = 0; i < n; i++) await turn();
}

/** The code of the LifelineError a promise rejects with (fails the test if it resolves). */
export async function rejectionCode(p: Promise<unknown>): Promise<ErrorCode> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, 'expected a rejection').toBeInstanceOf(LifelineError);
  return (err as LifelineError).code;
}

/** Tracks whether a promise has settled, without consuming its rejection twice. */
export function track<T>(p: Promise<T>): { settled: () => boolean; promise: Promise<T> } {
  let settled = false;
  const promise = p.finally(() => {
    settled = true;
  });
  promise.catch(() => {});
  return { settled: () => settled, promise };
}

/** Pulls from a reader until `count` events arrived (or the reader returned an empty batch). */
export async function collect(reader: TimelineReader, count: number, max = 64): Promise<TimelineEvent[]> {
  const out: TimelineEvent[] = [];
  while (out.length < count) {
    const batch = await reader.next(Math.min(max, count - out.length));
    if (batch.length === 0) break;
    out.push(...batch);
  }
  return out;
}

interface Hold {
  /** true: the batch is applied to the inner store at once and only its promise waits (written, not yet acknowledged). */
  visible: boolean;
  released: Promise<void>;
  fail: Error | undefined;
}

/**
 * A thin Store that delegates to a MemoryStore and records what passes through: every append
 * batch, every read. It can hold appends (delay the commit) and fail them. A wrapper, not a mock:
 * the data lives in a real MemoryStore.
 */
export class InstrumentedStore implements Store {
  readonly kind = 'instrumented';
  readonly inner = new MemoryStore();
  /** The entries of each store.append call, in call order. */
  readonly appendCalls: AppendEntry[][] = [];
  readonly readCalls: { sessionId: string; afterSeq: number; limit: number }[] = [];
  /** Append calls that have completed (resolved or rejected). */
  settledAppends = 0;
  #hold: Hold | undefined;
  #failures: Error[] = [];
  #callWaiters: { n: number; resolve: () => void }[] = [];

  /**
   * Holds every append from now on until the returned release is called (with an error to fail
   * the held appends instead).
   */
  hold(opts: { visible?: boolean } = {}): (fail?: Error) => void {
    let release!: () => void;
    const hold: Hold = { visible: opts.visible ?? false, released: new Promise<void>((r) => (release = r)), fail: undefined };
    this.#hold = hold;
    return (fail?: Error) => {
      hold.fail = fail;
      if (this.#hold === hold) this.#hold = undefined;
      release();
    };
  }

  /** The next `n` append calls throw this error (nothing is written). */
  failNext(err: Error, n = 1): void {
    for (let i = 0; i < n; i++) this.#failures.push(err);
  }

  /** Resolves once store.append has been called `n` times in total. */
  appendCalled(n: number): Promise<void> {
    if (this.appendCalls.length >= n) return Promise.resolve();
    return new Promise((resolve) => this.#callWaiters.push({ n, resolve }));
  }

  createSession(record: SessionRecord): Promise<void> {
    return this.inner.createSession(record);
  }

  getSession(id: string): Promise<SessionRecord | undefined> {
    return this.inner.getSession(id);
  }

  deleteSession(id: string): Promise<boolean> {
    return this.inner.deleteSession(id);
  }

  expiredSessions(now: number, limit: number): Promise<string[]> {
    return this.inner.expiredSessions(now, limit);
  }

  closeSession(sessionId: string, producer: ProducerRef | undefined, at: number): Promise<AppendOutcome> {
    return this.inner.closeSession(sessionId, producer, at);
  }

  forkSession(record: SessionRecord, sourceId: string, uptoSeq: number, tail?: Omit<StoredEvent, 'seq'>): Promise<void> {
    return this.inner.forkSession(record, sourceId, uptoSeq, tail);
  }

  forkCount(id: string): Promise<number> {
    return this.inner.forkCount(id);
  }

  tombstoneSession(id: string, at: number): Promise<boolean> {
    return this.inner.tombstoneSession(id, at);
  }

  touchSession(id: string, at: number): Promise<void> {
    return this.inner.touchSession(id, at);
  }

  async append(entries: readonly AppendEntry[]): Promise<AppendOutcome[]> {
    this.appendCalls.push([...entries]);
    for (const w of this.#callWaiters.filter((x) => x.n <= this.appendCalls.length)) {
      this.#callWaiters.splice(this.#callWaiters.indexOf(w), 1);
      w.resolve();
    }
    try {
      const failure = this.#failures.shift();
      const hold = this.#hold;
      if (!hold) {
        if (failure) throw failure;
        return await this.inner.append(entries);
      }
      if (hold.visible) {
        const outcomes = await this.inner.append(entries);
        await hold.released;
        return outcomes;
      }
      await hold.released;
      if (hold.fail) throw hold.fail;
      if (failure) throw failure;
      return await this.inner.append(entries);
    } finally {
      this.settledAppends++;
    }
  }

  read(sessionId: string, afterSeq: number, limit: number): Promise<StoredEvent[]> {
    this.readCalls.push({ sessionId, afterSeq, limit });
    return this.inner.read(sessionId, afterSeq, limit);
  }

  head(sessionId: string): Promise<number | undefined> {
    return this.inner.head(sessionId);
  }

  producer(sessionId: string, producerId: string): Promise<ProducerState | undefined> {
    return this.inner.producer(sessionId, producerId);
  }

  listSessions(after: string | undefined, limit: number): Promise<SessionRecord[]> {
    return this.inner.listSessions(after, limit);
  }

  lease(sessionId: string, role: string): Promise<LeaseRecord | undefined> {
    return this.inner.lease(sessionId, role);
  }

  claimLease(sessionId: string, role: string, holder: string, expectedEpoch: number): Promise<LeaseRecord | undefined> {
    return this.inner.claimLease(sessionId, role, holder, expectedEpoch);
  }

  releaseLease(sessionId: string, role: string, holder: string, epoch: number): Promise<boolean> {
    return this.inner.releaseLease(sessionId, role, holder, epoch);
  }

  commitCursor(sessionId: string, consumer: string, seq: number): Promise<void> {
    return this.inner.commitCursor(sessionId, consumer, seq);
  }

  cursor(sessionId: string, consumer: string): Promise<number> {
    return this.inner.cursor(sessionId, consumer);
  }

  closed = false;

  async close(): Promise<void> {
    this.closed = true;
    await this.inner.close();
  }
}

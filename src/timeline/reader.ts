import { LifelineError, formatOffset } from '../protocol/index.js';
import type { TimelineEvent } from '../protocol/index.js';
import type { Store, StoredEvent } from '../store/index.js';
import type { LiveSession } from './live-session.js';

export function toTimelineEvent(e: StoredEvent): TimelineEvent {
  return {
    offset: formatOffset(e.seq),
    ts: e.ts,
    from: e.from,
    kind: e.kind,
    ...(e.track !== undefined ? { track: e.track } : {}),
    data: e.data,
    ...(e.bin !== undefined ? { bin: e.bin } : {}),
  };
}

/**
 * Reads one session's timeline from a position onwards: catch-up from the store, then live from the
 * ring, falling back to the store whenever it falls behind. Pull-based: the caller asks for the
 * next batch when it can take it, so a slow consumer never makes anything pile up in memory.
 */
export class TimelineReader {
  readonly sessionId: string;
  #cursor: number;
  readonly #store: Store;
  readonly #live: LiveSession;
  readonly #release: () => void;
  #closed = false;
  #cancelWait: (() => void) | undefined;

  constructor(sessionId: string, afterSeq: number, store: Store, live: LiveSession, release: () => void) {
    this.sessionId = sessionId;
    this.#cursor = afterSeq;
    this.#store = store;
    this.#live = live;
    this.#release = release;
  }

  /** Sequence number of the last event handed out (the next batch starts after it). */
  get cursor(): number {
    return this.#cursor;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Moves the reader; the next batch starts after `afterSeq`. */
  seek(afterSeq: number): void {
    this.#cursor = afterSeq;
    this.#cancelWait?.();
  }

  /**
   * The next events after the cursor, at most `max`, waiting until there is at least one.
   * Returns an empty array when the reader was closed or moved while waiting, and — only with
   * `endAtClose` — when it has read everything of a closed timeline (see `atClosedEnd`); without
   * it a reader at the end of a closed timeline just keeps waiting, as for any quiet timeline.
   * Throws the session's LifelineError when the session ends (expired, deleted).
   */
  async next(max: number, opts: { endAtClose?: boolean } = {}): Promise<TimelineEvent[]> {
    const endAtClose = opts.endAtClose === true;
    for (;;) {
      if (this.#closed) return [];
      const ended = this.#live.closedWith;
      if (ended) throw ended;
      const cursor = this.#cursor;
      const ring = this.#live.fromRing(cursor, max);
      if (ring && ring.length > 0) return this.#advance(cursor, ring);
      if (endAtClose && ring !== undefined && this.#live.streamClosed) return [];
      // Arm the wake-up before looking at the store, so a publish in between is not missed.
      const wait = this.#live.waitForMore();
      this.#cancelWait = wait.cancel;
      if (ring === undefined) {
        const stored = await this.#store.read(this.sessionId, cursor, max);
        if (stored.length > 0 && !this.#closed && this.#cursor === cursor) {
          wait.cancel();
          return this.#advance(cursor, stored.map(toTimelineEvent));
        }
        if (this.#cursor !== cursor) {
          wait.cancel();
          continue;
        }
        if (endAtClose && this.#live.streamClosed && stored.length === 0) {
          wait.cancel();
          return [];
        }
      }
      await wait.promise;
      this.#cancelWait = undefined;
      if (this.#cursor !== cursor) return [];
    }
  }

  /** True while the reader has handed out every event committed so far. */
  get caughtUp(): boolean {
    return this.#cursor >= this.#live.head;
  }

  /** True once the reader has every event of a closed timeline: next() will return [] at once. */
  get atClosedEnd(): boolean {
    return this.#live.streamClosed && this.#cursor >= this.#live.head;
  }

  #advance(from: number, events: TimelineEvent[]): TimelineEvent[] {
    if (this.#cursor !== from) return [];
    this.#cursor = from + events.length;
    return events;
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#cancelWait?.();
    this.#release();
  }
}

export function sessionEndedError(id: string, why: 'expired' | 'deleted'): LifelineError {
  return why === 'expired'
    ? new LifelineError('SESSION_EXPIRED', `session ${id} has expired`)
    : new LifelineError('SESSION_NOT_FOUND', `session ${id} was deleted`);
}

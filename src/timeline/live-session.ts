import { LifelineError } from '../protocol/index.js';
import type { TimelineEvent } from '../protocol/index.js';

/**
 * The in-memory side of one session while someone reads it: the most recent committed events in a
 * bounded ring, and the readers waiting for the next one. Readers pull; nothing is ever queued per
 * reader, so a slow reader costs no memory: once it falls behind the ring it reads from the store.
 */
export class LiveSession {
  readonly id: string;
  /** Sequence number of the newest committed event known here. */
  head: number;
  readonly #ring: (TimelineEvent | undefined)[];
  #ringStart = 1; // seq of the oldest event in the ring
  #ringCount = 0;
  #waiters = new Set<() => void>();
  #closed: LifelineError | undefined;
  #streamClosed = false;
  readers = 0;

  constructor(id: string, head: number, ringSize: number) {
    this.id = id;
    this.head = head;
    this.#ring = new Array<TimelineEvent | undefined>(ringSize);
    this.#ringStart = head + 1;
  }

  get closedWith(): LifelineError | undefined {
    return this.#closed;
  }

  /** The timeline is closed (Durable Streams closure): nothing will follow the head. */
  get streamClosed(): boolean {
    return this.#streamClosed;
  }

  /** Marks the timeline closed and wakes every waiting reader (they drain, then stop waiting). */
  markClosed(): void {
    if (this.#streamClosed) return;
    this.#streamClosed = true;
    this.#wake();
  }

  /** Adds events committed in order (seq = head + 1, …) and wakes every waiting reader. */
  publish(seq: number, event: TimelineEvent): void {
    if (seq <= this.head) return; // already known (e.g. read back by a reader before publish)
    const size = this.#ring.length;
    if (seq !== this.head + 1) {
      // A gap can only mean events committed while nobody held this session live; restart the ring.
      this.#ringStart = seq;
      this.#ringCount = 0;
    }
    this.#ring[(seq - 1) % size] = event;
    if (this.#ringCount < size) this.#ringCount++;
    else this.#ringStart++;
    this.head = seq;
    this.#wake();
  }

  /**
   * Events after `afterSeq` that are still in the ring, at most `max`; undefined when the ring no
   * longer holds seq afterSeq + 1 (the reader must go to the store).
   */
  fromRing(afterSeq: number, max: number): TimelineEvent[] | undefined {
    const first = afterSeq + 1;
    if (first > this.head) return [];
    if (first < this.#ringStart || this.#ringCount === 0) return undefined;
    const size = this.#ring.length;
    const last = Math.min(this.head, afterSeq + max);
    const out: TimelineEvent[] = [];
    for (let s = first; s <= last; s++) {
      const e = this.#ring[(s - 1) % size];
      if (!e) return undefined;
      out.push(e);
    }
    return out;
  }

  /** Resolves at the next publish or close. */
  waitForMore(): { promise: Promise<void>; cancel: () => void } {
    let wake!: () => void;
    const promise = new Promise<void>((resolve) => {
      wake = resolve;
    });
    if (this.#closed) {
      wake();
      return { promise, cancel: () => {} };
    }
    this.#waiters.add(wake);
    return {
      promise,
      cancel: () => {
        if (this.#waiters.delete(wake)) wake();
      },
    };
  }

  close(reason: LifelineError): void {
    this.#closed ??= reason;
    this.#ring.fill(undefined);
    this.#ringCount = 0;
    this.#wake();
  }

  #wake(): void {
    const waiters = this.#waiters;
    this.#waiters = new Set();
    for (const w of waiters) w();
  }
}

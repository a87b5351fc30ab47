import type { TimelineEvent } from '../protocol/index.js';

interface Consumer {
  queue: TimelineEvent[];
  wake: (() => void) | undefined;
  done: boolean;
}

/**
 * The session's events as async iterables. Each iterator has its own queue; the session stops
 * acknowledging (so the relay stops sending) while any queue is full, which bounds memory however
 * slowly the app consumes. Events that arrive before the first iterator starts are kept so that
 * `for await` started late misses nothing: when that early buffer is full the session stops
 * acknowledging too — unless the app consumes through `on('event')` listeners, which have seen
 * every event; then the early buffer keeps only the newest `limit` events and never stalls them.
 */
export class EventStream implements AsyncIterable<TimelineEvent> {
  readonly #consumers = new Set<Consumer>();
  readonly #limit: number;
  readonly #onDrained: () => void;
  readonly #onResume: (lastEventId: string) => void;
  readonly #hasListeners: () => boolean;
  #early: TimelineEvent[] = [];
  #claimed = false;
  #ended = false;

  constructor(limit: number, onDrained: () => void, onResume: (lastEventId: string) => void, hasListeners: () => boolean = () => false) {
    this.#limit = limit;
    this.#onDrained = onDrained;
    this.#onResume = onResume;
    this.#hasListeners = hasListeners;
  }

  /** True while some iterator (or the unclaimed early buffer) holds `limit` events: stop acknowledging. */
  get full(): boolean {
    if (!this.#claimed && this.#early.length >= this.#limit && !this.#hasListeners()) return true;
    for (const c of this.#consumers) if (c.queue.length >= this.#limit) return true;
    return false;
  }

  push(event: TimelineEvent): void {
    if (this.#ended) return;
    if (!this.#claimed) {
      this.#early.push(event);
      // Listeners saw every event: keep only the newest. Without listeners nothing is dropped;
      // `full` stops acknowledgements, so the relay stops sending.
      if (this.#early.length > this.#limit && this.#hasListeners()) this.#early.shift();
      return;
    }
    for (const c of this.#consumers) {
      c.queue.push(event);
      const wake = c.wake;
      c.wake = undefined;
      wake?.();
    }
  }

  /** Forgets queued events (the session moved its read position). */
  reset(): void {
    this.#early = [];
    for (const c of this.#consumers) c.queue.length = 0;
  }

  /**
   * Re-reads the timeline after `lastEventId` (an offset, `-1` for the start) and returns the
   * stream, which then yields from there on: every event once, in order, then live.
   */
  resume(lastEventId: string): AsyncIterable<TimelineEvent> {
    this.reset();
    this.#onResume(lastEventId);
    return this;
  }

  end(): void {
    this.#ended = true;
    for (const c of this.#consumers) {
      c.done = true;
      c.wake?.();
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<TimelineEvent> {
    const c: Consumer = { queue: this.#claimed ? [] : this.#early, wake: undefined, done: this.#ended };
    this.#claimed = true;
    this.#early = [];
    this.#consumers.add(c);
    const finish = (): IteratorResult<TimelineEvent> => {
      this.#consumers.delete(c);
      c.done = true;
      this.#onDrained();
      return { done: true, value: undefined };
    };
    return {
      next: async () => {
        for (;;) {
          const event = c.queue.shift();
          if (event) {
            if (c.queue.length === this.#limit - 1 || c.queue.length === 0) this.#onDrained();
            return { done: false, value: event };
          }
          if (c.done) return finish();
          await new Promise<void>((resolve) => (c.wake = resolve));
        }
      },
      return: async () => finish(),
    };
  }
}
